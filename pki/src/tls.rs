//! rustls configs for the core's listener, mTLS clients and enrolling nodes.
//!
//! All configs are TLS 1.3 only, use the ring provider passed explicitly, and never resume
//! sessions (so a revoked node cannot come back on an old ticket). Certificate names are
//! never checked by rustls: chains are verified against the CA, then the SPIFFE id in the
//! single URI SAN decides who the peer is.
//!
//! The deployment's root CA is the only trust anchor. A core that joined with `honeybee
//! core join` issues from an intermediate CA (pathlen 0): its peers send that intermediate
//! after their leaf, the core sends it in its own chain, and the listener also fills it in
//! for clients that send their leaf alone. The denylist is checked against the serial of
//! the intermediate as well as the leaf's.

use std::fmt;
use std::sync::Arc;

use honeybee_proto::ids::Role;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError,
    RootCertStore, ServerConfig, SignatureScheme,
};

use crate::identity::{self, IdentityError, spki_pin, trust_domain_from_ca_cert};
use crate::revocation::RevocationList;

/// Most intermediates taken from a peer's chain (HoneyBee chains have at most one); the
/// rest are ignored, so a peer cannot make path building search a long list.
pub const MAX_INTERMEDIATES: usize = 3;

/// Text every pin-mismatch error carries; see [`is_pin_mismatch`].
pub const PIN_MISMATCH: &str = "CA pin mismatch";

/// Why a TLS config could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("the CA certificate is not a HoneyBee CA: {0}")]
    NotHoneyBeeCa(#[source] IdentityError),
    #[error("the CA certificate cannot be a trust anchor: {0}")]
    TrustAnchor(#[source] rustls::Error),
    #[error("could not build the client certificate verifier: {0}")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    #[error("rustls rejected the configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// Why a verifier rejected a peer whose chain may otherwise be fine. Carried inside
/// `rustls::Error::InvalidCertificate(CertificateError::Other(..))`, so its text reaches
/// whoever sees the handshake error (quinn surfaces only text).
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerRejected {
    #[error(
        "CA pin mismatch: the core's CA key does not match the pin in the token \
         (possible interception, or a token from another deployment)"
    )]
    PinMismatch,
    #[error("peer certificate has no usable HoneyBee identity: {0}")]
    Identity(IdentityError),
    #[error("peer is in trust domain {got:?}, expected {expected:?}")]
    TrustDomain { got: String, expected: String },
    #[error("peer has role {got}, expected {expected}")]
    Role { got: Role, expected: Role },
}

// rustls renders `CertificateError::Other` with Debug; make that the readable message.
impl fmt::Debug for PeerRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn reject(why: PeerRejected) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(why))))
}

/// Whether an error's text (all quinn hands back) says the core failed the pin check.
pub fn is_pin_mismatch(err_text: &str) -> bool {
    err_text.contains(PIN_MISMATCH)
}

/// Whether a rustls error is the pin-mismatch rejection.
pub fn is_pin_mismatch_error(err: &rustls::Error) -> bool {
    match err {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(e))) => matches!(
            e.downcast_ref::<PeerRejected>(),
            Some(PeerRejected::PinMismatch)
        ),
        _ => false,
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn ca_roots(ca_der: &[u8]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_der.to_vec()))
        .map_err(TlsError::TrustAnchor)?;
    Ok(roots)
}

/// Checks a verified end-entity certificate's SPIFFE id against what we expect.
fn check_identity(
    end_entity: &CertificateDer<'_>,
    trust_domain: &str,
    role: Option<Role>,
) -> Result<identity::PeerIdentity, rustls::Error> {
    let peer =
        identity::peer_identity(end_entity).map_err(|e| reject(PeerRejected::Identity(e)))?;
    if peer.spiffe.trust_domain != trust_domain {
        return Err(reject(PeerRejected::TrustDomain {
            got: peer.spiffe.trust_domain,
            expected: trust_domain.to_owned(),
        }));
    }
    if let Some(expected) = role
        && peer.spiffe.role != expected
    {
        return Err(reject(PeerRejected::Role {
            got: peer.spiffe.role,
            expected,
        }));
    }
    Ok(peer)
}

/// The listener's client verifier: webpki chain checks, then our identity and revocation
/// checks. Client certificates are optional at the TLS layer because the enrolment ALPN has
/// none; the core's ALPN router refuses unauthenticated peers on every other ALPN.
#[derive(Debug)]
struct ClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    trust_domain: String,
    revocation: RevocationList,
    /// This core's own intermediate (if it has one), for clients that send a leaf alone.
    known: Vec<CertificateDer<'static>>,
}

/// The first [`MAX_INTERMEDIATES`] offered intermediates, then `known` ones.
fn candidates<'a>(
    offered: &[CertificateDer<'a>],
    known: &[CertificateDer<'static>],
) -> Vec<CertificateDer<'a>> {
    offered
        .iter()
        .take(MAX_INTERMEDIATES)
        .cloned()
        .chain(known.iter().cloned())
        .collect()
}

/// Whether a certificate that could have issued `end_entity` (same subject as its
/// issuer) among `intermediates` is revoked by serial. A decoy with the same subject does
/// not hide a revoked one: every match is checked.
fn issuer_revoked(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    revocation: &RevocationList,
) -> bool {
    use x509_parser::prelude::FromDer;
    let Ok((_, leaf)) = x509_parser::certificate::X509Certificate::from_der(end_entity) else {
        return false;
    };
    let issuer = leaf.tbs_certificate.issuer.as_raw();
    intermediates.iter().any(|c| {
        x509_parser::certificate::X509Certificate::from_der(c)
            .is_ok_and(|(_, c)| c.tbs_certificate.subject.as_raw() == issuer)
            && identity::serial_from_cert(c).is_ok_and(|s| revocation.is_serial_revoked(&s))
    })
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // The root signs leaves directly or through one core's intermediate: a few offered
        // certificates and our own intermediate are all path building ever needs.
        let intermediates = candidates(intermediates, &self.known);
        self.inner
            .verify_client_cert(end_entity, &intermediates, now)?;
        let peer = check_identity(end_entity, &self.trust_domain, None)?;
        if self.revocation.is_serial_revoked(&peer.serial)
            || self.revocation.is_node_revoked(&peer.spiffe.id)
            || issuer_revoked(end_entity, &intermediates, &self.revocation)
        {
            tracing::info!(spiffe = %peer.spiffe, serial = %peer.serial, "rejected revoked client certificate");
            return Err(rustls::Error::InvalidCertificate(CertificateError::Revoked));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The core's listener config.
///
/// `chain` is `[core cert, CA cert]`, or `[core cert, intermediate, CA cert]` on a joined
/// core: the CA certificate is sent so enrolling nodes can check it against their token's
/// pin, and the intermediate is also filled in for clients that send their leaf alone. Client auth is offered but optional, because the
/// enrolment ALPN has no client certificate; the core's ALPN router must refuse peers
/// without one (quinn's `Connection::peer_identity()` is `None`) on every other ALPN. A client certificate that is
/// presented must chain to the CA, carry a well-formed SPIFFE id in the CA's trust domain,
/// and be revoked neither by serial nor by node id.
pub fn server_config(
    ca_der: &[u8],
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    revocation: RevocationList,
    alpns: &[&[u8]],
) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let trust_domain = trust_domain_from_ca_cert(ca_der).map_err(TlsError::NotHoneyBeeCa)?;
    let inner =
        WebPkiClientVerifier::builder_with_provider(Arc::new(ca_roots(ca_der)?), provider.clone())
            .allow_unauthenticated()
            .build()
            .map_err(TlsError::Verifier)?;
    let known = chain
        .iter()
        .skip(1)
        .filter(|c| c.as_ref() != ca_der)
        .cloned()
        .collect();
    let verifier = Arc::new(ClientVerifier {
        inner,
        trust_domain,
        revocation,
        known,
    });
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Config)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(TlsError::Config)?;
    cfg.session_storage = Arc::new(NoServerSessionStorage {});
    cfg.send_tls13_tickets = 0;
    cfg.max_early_data_size = 0;
    cfg.alpn_protocols = alpns.iter().map(|a| a.to_vec()).collect();
    Ok(cfg)
}

/// A server config without client authentication, for the module shim when it is bound
/// beyond loopback: the module authenticates with its credential inside the channel; the
/// channel gives it confidentiality and the core's identity. TLS 1.3 only, no resumption.
pub fn server_config_no_client_auth(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerConfig, TlsError> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Config)?;
    cfg.session_storage = Arc::new(NoServerSessionStorage {});
    cfg.send_tls13_tickets = 0;
    cfg.max_early_data_size = 0;
    Ok(cfg)
}

/// Verifies the core for an mTLS client: chain to the CA, then SPIFFE role and trust domain.
#[derive(Debug)]
struct ServerVerifier {
    roots: Arc<RootCertStore>,
    trust_domain: String,
    expected_role: Role,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        // A joined core sends its intermediate (and the root, our anchor already).
        let intermediates = candidates(intermediates, &[]);
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            &intermediates,
            now,
            self.algs.all,
        )?;
        check_identity(end_entity, &self.trust_domain, Some(self.expected_role))?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

fn client_builder(
    provider: Arc<CryptoProvider>,
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, TlsError> {
    ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Config)
}

fn finish_client(mut cfg: ClientConfig, alpn: &[u8]) -> ClientConfig {
    cfg.resumption = Resumption::disabled();
    cfg.enable_early_data = false;
    cfg.alpn_protocols = vec![alpn.to_vec()];
    cfg
}

/// An mTLS client config (agents, relays, modules, admin) that accepts only a server whose
/// certificate chains to the CA and whose SPIFFE id has `expected_server_role` in the CA's
/// trust domain. The server name passed to the connection is ignored.
pub fn client_config(
    ca_der: &[u8],
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    expected_server_role: Role,
    alpn: &[u8],
) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let verifier = Arc::new(ServerVerifier {
        roots: Arc::new(ca_roots(ca_der)?),
        trust_domain: trust_domain_from_ca_cert(ca_der).map_err(TlsError::NotHoneyBeeCa)?,
        expected_role: expected_server_role,
        algs: provider.signature_verification_algorithms,
    });
    let cfg = client_builder(provider)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)
        .map_err(TlsError::Config)?;
    Ok(finish_client(cfg, alpn))
}

/// Verifies the core for an enrolling node that knows only the CA's pin: the core must send
/// a CA certificate whose key matches the pin, and its own certificate must chain to it and
/// name the core.
#[derive(Debug)]
struct EnrollVerifier {
    pin: [u8; 32],
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for EnrollVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(ca) = intermediates
            .iter()
            .find(|c| spki_pin(c).is_ok_and(|p| p == self.pin))
        else {
            tracing::warn!(
                offered = intermediates.len(),
                "core's CA does not match the token's pin"
            );
            return Err(reject(PeerRejected::PinMismatch));
        };
        // Only the pinned key matters in the anchor: whoever sent a doctored copy of the CA
        // certificate still cannot sign a leaf with the CA's key.
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let parsed = ParsedCertificate::try_from(end_entity)?;
        // A joined core's leaf chains through its intermediate, sent beside the root.
        let others: Vec<_> = intermediates
            .iter()
            .filter(|c| c.as_ref() != ca.as_ref())
            .take(MAX_INTERMEDIATES)
            .cloned()
            .collect();
        verify_server_cert_signed_by_trust_anchor(&parsed, &roots, &others, now, self.algs.all)?;
        let trust_domain =
            trust_domain_from_ca_cert(ca).map_err(|e| reject(PeerRejected::Identity(e)))?;
        check_identity(end_entity, &trust_domain, Some(Role::Core))?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// The enrolling node's config: no client certificate, the core checked against `ca_pin`
/// before anything is sent. A failed pin check surfaces as an error whose text satisfies
/// [`is_pin_mismatch`].
pub fn enroll_client_config(ca_pin: [u8; 32], alpn: &[u8]) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let verifier = Arc::new(EnrollVerifier {
        pin: ca_pin,
        algs: provider.signature_verification_algorithms,
    });
    let cfg = client_builder(provider)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(finish_client(cfg, alpn))
}
