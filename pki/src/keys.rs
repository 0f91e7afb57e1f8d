//! Node key pairs (ECDSA P-256) and the CSRs made from them.
//!
//! Keys are made where they are used and never travel: a node sends only a CSR.

use std::fmt;

use rcgen::{CertificateParams, DistinguishedName, PKCS_ECDSA_P256_SHA256};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::PkiError;

/// An ECDSA P-256 key pair. Debug output never shows the private key.
pub struct KeyPair(rcgen::KeyPair);

impl KeyPair {
    /// A fresh key from the system RNG.
    pub fn generate() -> Result<KeyPair, PkiError> {
        rcgen::KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map(KeyPair)
            .map_err(PkiError::KeyGeneration)
    }

    /// Reads a PKCS#8 PEM private key ("PRIVATE KEY"); only P-256 keys are accepted so a
    /// stray file of another kind fails here rather than at the first handshake.
    pub fn from_pem(pem: &str) -> Result<KeyPair, PkiError> {
        let key = rcgen::KeyPair::from_pem(pem).map_err(PkiError::KeyParse)?;
        if key.algorithm() != &PKCS_ECDSA_P256_SHA256 {
            return Err(PkiError::KeyAlgorithm);
        }
        Ok(KeyPair(key))
    }

    /// The private key as PKCS#8 PEM. Write it with [`crate::files::write_private`].
    pub fn to_pem(&self) -> String {
        self.0.serialize_pem()
    }

    /// The private key for rustls.
    pub fn private_key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.0.serialize_der()))
    }

    /// The public key as SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> Vec<u8> {
        rcgen::PublicKeyData::subject_public_key_info(&self.0)
    }

    pub(crate) fn into_rcgen(self) -> rcgen::KeyPair {
        self.0
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyPair(ECDSA P-256, private key elided)")
    }
}

/// A CSR (DER) for `key`. It carries no names: the CA takes only the public key from it and
/// decides everything else from the token and the role.
pub fn make_csr(key: &KeyPair) -> Result<Vec<u8>, PkiError> {
    let mut params = CertificateParams::default();
    // rcgen's default subject is "rcgen self signed cert"; an empty one says what we mean.
    params.distinguished_name = DistinguishedName::new();
    let csr = params.serialize_request(&key.0).map_err(PkiError::Csr)?;
    Ok(csr.der().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip() {
        let k = KeyPair::generate().unwrap();
        let pem = k.to_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let k2 = KeyPair::from_pem(&pem).unwrap();
        assert_eq!(k.public_key_der(), k2.public_key_der());
        assert!(!format!("{k:?}").contains("BEGIN"));
    }

    #[test]
    fn rejects_other_algorithms() {
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        assert!(matches!(
            KeyPair::from_pem(&ed.serialize_pem()),
            Err(PkiError::KeyAlgorithm)
        ));
        assert!(KeyPair::from_pem("nonsense").is_err());
    }

    #[test]
    fn csr_parses() {
        let k = KeyPair::generate().unwrap();
        let der = make_csr(&k).unwrap();
        rcgen::CertificateSigningRequestParams::from_der(&der.as_slice().into()).unwrap();
    }
}
