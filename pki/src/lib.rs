//! HoneyBee's PKI: the CA, CSR signing, enrolment tokens, identities and rustls configs.
//!
//! **Invariant:** this crate never opens a socket. It turns bytes into certificates, tokens
//! and rustls configs; the core and the agents own all I/O.

pub mod ca;
pub mod files;
pub mod identity;
pub mod keys;
pub mod revocation;
pub mod sealed;
pub mod tls;
pub mod token;

pub use ca::{Ca, CaError, IssueRequest, IssuedCert};
pub use identity::{IdentityError, PeerIdentity, SpiffeId, SpiffeIdError};
pub use keys::{KeyPair, make_csr};
pub use revocation::RevocationList;
pub use token::{Token, TokenError};

/// Error from key handling and PEM conversion (the small local operations in [`keys`] and
/// [`files`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    #[error("could not generate a key pair: {0}")]
    KeyGeneration(#[source] rcgen::Error),
    #[error("could not read the private key: {0}")]
    KeyParse(#[source] rcgen::Error),
    #[error("unsupported private key algorithm: HoneyBee keys are ECDSA P-256")]
    KeyAlgorithm,
    #[error("could not build a certificate signing request: {0}")]
    Csr(#[source] rcgen::Error),
    #[error("invalid PEM: {0}")]
    Pem(String),
    #[error("no certificate found in PEM input")]
    NoCertificate,
}

/// Installs the ring provider as the process default.
///
/// HoneyBee builds its own configs with an explicit provider, but quinn and other libraries
/// may ask for the process default; with both ring and aws-lc absent from the default
/// features rustls cannot pick one itself. Idempotent: a second call (or another crate
/// having installed one first) is fine.
pub fn install_crypto_provider() {
    // Err means a provider is already installed; either way the process has one.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
