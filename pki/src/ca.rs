//! The deployment's certificate authority: creation, loading, and CSR signing.
//!
//! The CA signs only CSRs and copies nothing from a CSR but its public key: the SAN, key
//! usage, EKU, `IsCa::NoCa` and validity all come from the [`IssueRequest`], which the core
//! builds from the token and the role.
//!
//! A deployment has one root CA (made by `honeybee core init`). A core that joined with
//! `honeybee core join` holds an intermediate CA instead (pathlen 0, its key made on that
//! core): [`Ca::load_intermediate`] loads it, and certificates it issues chain through it
//! to the root, which stays every verifier's only trust anchor.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use honeybee_proto::ids::{NodeId, Role, Serial};
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SanType, SerialNumber,
    SubjectPublicKeyInfo,
};
use ring::rand::{SecureRandom, SystemRandom};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;

use crate::PkiError;
use crate::files::der_to_pem_cert;
use crate::identity::{self, IdentityError, SpiffeId, SpiffeIdError, validate_trust_domain};
use crate::keys::{KeyPair, make_csr};

/// How long a new CA lives.
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// A new CA is backdated so nodes with slightly slow clocks accept it at once.
const CA_BACKDATE: Duration = Duration::from_secs(3600);
/// Leaf certificates are backdated by this much to tolerate clock skew between nodes.
const LEAF_BACKDATE: Duration = Duration::from_secs(5 * 60);

/// Why the CA could not be created, loaded, or could not issue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    #[error("invalid trust domain: {0}")]
    TrustDomain(#[source] SpiffeIdError),
    #[error("key error: {0}")]
    Key(#[source] PkiError),
    #[error("could not read the CA certificate: {0}")]
    CaCert(String),
    #[error("the CA certificate is not a HoneyBee CA: {0}")]
    NotHoneyBeeCa(#[source] IdentityError),
    #[error("the CA certificate is for trust domain {in_cert:?}, not {expected:?}")]
    TrustDomainMismatch { in_cert: String, expected: String },
    #[error("the CA private key does not belong to the CA certificate")]
    KeyMismatch,
    #[error("the CSR is not valid DER: {0}")]
    CsrParse(String),
    #[error("the CSR's signature does not verify")]
    CsrSignature,
    #[error("the CSR's key is not ECDSA P-256")]
    CsrKeyAlgorithm,
    #[error("certificate lifetime must be positive and end before the CA expires")]
    Lifetime,
    #[error("the system random number generator failed")]
    Rng,
    #[error("certificate generation failed: {0}")]
    Generate(#[source] rcgen::Error),
    #[error("only the deployment's root CA signs core CAs; this core holds an intermediate")]
    NotRoot,
    #[error("the intermediate CA certificate is not signed by the root CA")]
    NotIssuedByRoot,
}

/// Longest CSR [`Ca::sign_csr`] and [`Ca::sign_intermediate_csr`] parse. A P-256 CSR is
/// about 250 bytes; anything near this is not one of ours.
pub const MAX_CSR_LEN: usize = 4096;

/// How long a core's intermediate CA lives (capped at the root's own expiry). There is
/// no automatic renewal of intermediates yet: a core joins again before this runs out.
pub const INTERMEDIATE_LIFETIME: Duration = Duration::from_secs(5 * 365 * 24 * 3600);

/// What to put in a certificate: everything but the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRequest {
    pub role: Role,
    pub id: NodeId,
    pub lifetime: Duration,
}

/// A freshly issued certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    pub der: Vec<u8>,
    pub serial: Serial,
    pub not_after_ms: i64,
}

impl IssuedCert {
    pub fn pem(&self) -> String {
        der_to_pem_cert(&self.der)
    }
}

/// The CA: the root certificate, the issuing key and the trust domain it speaks for.
///
/// For the root CA the issuing key is the root's; for a joined core's intermediate CA it
/// is the intermediate's, and [`Ca::chain_der`] holds the intermediate certificate that
/// goes between the leaves it issues and the root.
pub struct Ca {
    /// The root CA certificate: the trust anchor, and what tokens pin.
    cert_der: Vec<u8>,
    /// Certificates between issued leaves and the root (empty for the root CA).
    chain: Vec<Vec<u8>>,
    /// Holds the issuing CA's subject, key identifier method and private key.
    issuer: Issuer<'static, rcgen::KeyPair>,
    trust_domain: String,
    pin: [u8; 32],
    /// The issuing certificate's notAfter (no leaf may outlive it).
    not_after_ms: i64,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("trust_domain", &self.trust_domain)
            .field("pin", &hex::encode(self.pin))
            .finish_non_exhaustive()
    }
}

fn unix_now() -> Duration {
    // A clock before 1970 is broken beyond what we can fix; treat it as the epoch.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// rcgen takes `time::OffsetDateTime` but does not re-export `time`; x509-parser's
/// `ASN1Time::to_datetime` hands out the same type, which spares us a direct dependency.
fn asn1_time(unix: Duration) -> Result<ASN1Time, CaError> {
    let secs = i64::try_from(unix.as_secs()).map_err(|_| CaError::Lifetime)?;
    ASN1Time::from_timestamp(secs).map_err(|_| CaError::Lifetime)
}

/// 16 random bytes whose first byte is 0x01..=0x7f, so the DER INTEGER is positive and
/// exactly 16 bytes long (no sign padding, no stripped leading zero) and round-trips to the
/// same [`Serial`].
fn random_serial() -> Result<Serial, CaError> {
    let mut b = [0u8; 16];
    SystemRandom::new().fill(&mut b).map_err(|_| CaError::Rng)?;
    b[0] &= 0x7f;
    if b[0] == 0 {
        b[0] = 1;
    }
    Ok(Serial(b))
}

impl Ca {
    /// Creates a new self-signed CA for `trust_domain`.
    pub fn generate(trust_domain: &str) -> Result<Ca, CaError> {
        validate_trust_domain(trust_domain).map_err(CaError::TrustDomain)?;
        let key = KeyPair::generate().map_err(CaError::Key)?.into_rcgen();
        let now = unix_now();

        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("HoneyBee CA ({trust_domain})"));
        params.distinguished_name = dn;
        // The trust domain travels in the CA certificate (SPIFFE's spiffe://<td> form), so
        // whoever holds the certificate knows which trust domain to demand of peers.
        params.subject_alt_names = vec![SanType::URI(uri(&format!("spiffe://{trust_domain}"))?)];
        // pathlen 1: the root may sign one level of core CAs (`core join`). Roots made
        // before said 0; webpki ignores a trust anchor's constraints, so they still work.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = asn1_time(now.saturating_sub(CA_BACKDATE))?.to_datetime();
        params.not_after = asn1_time(now + CA_LIFETIME)?.to_datetime();
        params.serial_number = Some(SerialNumber::from_slice(&random_serial()?.0));

        let cert = params.self_signed(&key).map_err(CaError::Generate)?;
        let cert_der = cert.der().to_vec();
        Ca::assemble(cert_der, Issuer::new(params, key), trust_domain)
    }

    /// Loads a CA from its PEM certificate and PKCS#8 PEM key, checking that the key belongs
    /// to the certificate and that the certificate is for `trust_domain`.
    pub fn from_pem(cert_pem: &str, key_pem: &str, trust_domain: &str) -> Result<Ca, CaError> {
        let ca = Ca::load_pem(cert_pem, key_pem)?;
        if ca.trust_domain != trust_domain {
            return Err(CaError::TrustDomainMismatch {
                in_cert: ca.trust_domain,
                expected: trust_domain.to_owned(),
            });
        }
        Ok(ca)
    }

    /// Loads a CA from PEM, taking the trust domain from the certificate itself.
    pub fn load_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, CaError> {
        let certs =
            crate::files::pem_to_der_certs(cert_pem).map_err(|e| CaError::CaCert(e.to_string()))?;
        let [cert_der] = <[_; 1]>::try_from(certs)
            .map_err(|v| CaError::CaCert(format!("expected one certificate, found {}", v.len())))?;
        let cert_der = cert_der.to_vec();
        let trust_domain =
            identity::trust_domain_from_ca_cert(&cert_der).map_err(CaError::NotHoneyBeeCa)?;
        let key = KeyPair::from_pem(key_pem)
            .map_err(CaError::Key)?
            .into_rcgen();
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| CaError::CaCert(e.to_string()))?;
        if parsed.tbs_certificate.subject_pki.raw != key.subject_public_key_info().as_slice() {
            return Err(CaError::KeyMismatch);
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der.as_slice().into(), key)
            .map_err(|e| CaError::CaCert(e.to_string()))?;
        Ca::assemble(cert_der, issuer, &trust_domain)
    }

    /// Loads a joined core's intermediate CA: the root certificate (the trust anchor), the
    /// intermediate certificate and its key. Checks that the key belongs to the
    /// intermediate, that the root signed it, and that both are for `trust_domain`.
    pub fn load_intermediate(
        root_pem: &str,
        intermediate_pem: &str,
        key_pem: &str,
        trust_domain: &str,
    ) -> Result<Ca, CaError> {
        let one = |pem: &str| -> Result<Vec<u8>, CaError> {
            let certs =
                crate::files::pem_to_der_certs(pem).map_err(|e| CaError::CaCert(e.to_string()))?;
            let [der] = <[_; 1]>::try_from(certs).map_err(|v| {
                CaError::CaCert(format!("expected one certificate, found {}", v.len()))
            })?;
            Ok(der.to_vec())
        };
        let root_der = one(root_pem)?;
        let inter_der = one(intermediate_pem)?;
        for der in [&root_der, &inter_der] {
            let td = identity::trust_domain_from_ca_cert(der).map_err(CaError::NotHoneyBeeCa)?;
            if td != trust_domain {
                return Err(CaError::TrustDomainMismatch {
                    in_cert: td,
                    expected: trust_domain.to_owned(),
                });
            }
        }
        let key = KeyPair::from_pem(key_pem)
            .map_err(CaError::Key)?
            .into_rcgen();
        let (_, root) = x509_parser::parse_x509_certificate(&root_der)
            .map_err(|e| CaError::CaCert(e.to_string()))?;
        let (_, inter) = x509_parser::parse_x509_certificate(&inter_der)
            .map_err(|e| CaError::CaCert(e.to_string()))?;
        if inter.tbs_certificate.subject_pki.raw != key.subject_public_key_info().as_slice() {
            return Err(CaError::KeyMismatch);
        }
        inter
            .verify_signature(Some(root.public_key()))
            .map_err(|_| CaError::NotIssuedByRoot)?;
        let issuer = Issuer::from_ca_cert_der(&inter_der.as_slice().into(), key)
            .map_err(|e| CaError::CaCert(e.to_string()))?;
        let mut ca = Ca::assemble(root_der, issuer, trust_domain)?;
        ca.not_after_ms = ca
            .not_after_ms
            .min(identity::not_after_ms(&inter_der).map_err(CaError::NotHoneyBeeCa)?);
        ca.chain = vec![inter_der];
        Ok(ca)
    }

    fn assemble(
        cert_der: Vec<u8>,
        issuer: Issuer<'static, rcgen::KeyPair>,
        trust_domain: &str,
    ) -> Result<Ca, CaError> {
        let pin = identity::spki_pin(&cert_der).map_err(CaError::NotHoneyBeeCa)?;
        let not_after_ms = identity::not_after_ms(&cert_der).map_err(CaError::NotHoneyBeeCa)?;
        Ok(Ca {
            cert_der,
            chain: Vec::new(),
            issuer,
            trust_domain: trust_domain.to_owned(),
            pin,
            not_after_ms,
        })
    }

    /// The root CA certificate: the trust anchor every peer is given.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The certificates between this CA's leaves and the root, to send after a leaf
    /// (empty for the root CA; the intermediate for a joined core).
    pub fn chain_der(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// Whether this is the deployment's root CA (it can sign other cores' CAs).
    pub fn is_root(&self) -> bool {
        self.chain.is_empty()
    }

    pub fn cert_pem(&self) -> String {
        der_to_pem_cert(&self.cert_der)
    }

    /// The issuing CA's private key as PKCS#8 PEM. Write it with [`crate::files::write_private`].
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// SHA-256 of the CA certificate's SubjectPublicKeyInfo: what tokens pin.
    pub fn pin(&self) -> [u8; 32] {
        self.pin
    }

    /// The CA certificate's notAfter in Unix milliseconds.
    pub fn not_after_ms(&self) -> i64 {
        self.not_after_ms
    }

    /// Signs a CSR: verifies its signature (proof the requester holds the key), then issues
    /// a certificate for its public key with contents taken from `req` alone.
    pub fn sign_csr(&self, csr_der: &[u8], req: &IssueRequest) -> Result<IssuedCert, CaError> {
        let public_key = csr_public_key(csr_der)?;

        let now = unix_now();
        let not_after = now.checked_add(req.lifetime).ok_or(CaError::Lifetime)?;
        let not_after_ms = i64::try_from(not_after.as_millis()).map_err(|_| CaError::Lifetime)?;
        // A leaf outliving its CA would fail verification anyway; refusing here says why.
        if req.lifetime.is_zero() || not_after_ms > self.not_after_ms {
            return Err(CaError::Lifetime);
        }

        let spiffe = SpiffeId::new(&self.trust_domain, req.role, req.id.clone())
            .map_err(CaError::TrustDomain)?;
        let serial = random_serial()?;

        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        // The CN is only for humans reading the certificate; authorisation uses the SAN.
        dn.push(DnType::CommonName, req.id.as_str());
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::URI(uri(&spiffe.to_string())?)];
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match req.role {
            // The core serves every ALPN and may also dial out as a client.
            Role::Core => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            _ => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        params.not_before = asn1_time(now.saturating_sub(LEAF_BACKDATE))?.to_datetime();
        params.not_after = asn1_time(not_after)?.to_datetime();
        params.serial_number = Some(SerialNumber::from_slice(&serial.0));
        params.use_authority_key_identifier_extension = true;

        let cert = params
            .signed_by(&public_key, &self.issuer)
            .map_err(CaError::Generate)?;
        let der = cert.der().to_vec();
        // Read the expiry back from the certificate: it is what peers will enforce, and
        // X.509 time has whole seconds only.
        let not_after_ms = identity::not_after_ms(&der).map_err(CaError::NotHoneyBeeCa)?;
        tracing::debug!(spiffe = %spiffe, serial = %serial, not_after_ms, "issued certificate");
        Ok(IssuedCert {
            der,
            serial,
            not_after_ms,
        })
    }

    /// Signs a joining core's CSR as an intermediate CA (`honeybee core join`): CA with
    /// pathlen 0, certificate and CRL signing only, the trust domain's SPIFFE URI, named
    /// for `id`. As in [`Ca::sign_csr`] only the CSR's public key is used: whatever
    /// extensions (CA flag, path length, names) it asks for are ignored. Only the root CA
    /// signs these.
    pub fn sign_intermediate_csr(
        &self,
        csr_der: &[u8],
        id: &NodeId,
        lifetime: Duration,
    ) -> Result<IssuedCert, CaError> {
        if !self.is_root() {
            return Err(CaError::NotRoot);
        }
        let public_key = csr_public_key(csr_der)?;
        let now = unix_now();
        let not_after_ms = self.not_after_ms.min(
            i64::try_from(now.saturating_add(lifetime).as_millis())
                .map_err(|_| CaError::Lifetime)?,
        );
        if lifetime.is_zero() || not_after_ms <= i64::try_from(now.as_millis()).unwrap_or(0) {
            return Err(CaError::Lifetime);
        }
        let not_after = Duration::from_millis(not_after_ms as u64);
        let serial = random_serial()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            format!("HoneyBee core CA {id} ({})", self.trust_domain),
        );
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::URI(uri(&format!(
            "spiffe://{}",
            self.trust_domain
        ))?)];
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = asn1_time(now.saturating_sub(LEAF_BACKDATE))?.to_datetime();
        params.not_after = asn1_time(not_after)?.to_datetime();
        params.serial_number = Some(SerialNumber::from_slice(&serial.0));
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&public_key, &self.issuer)
            .map_err(CaError::Generate)?;
        let der = cert.der().to_vec();
        let not_after_ms = identity::not_after_ms(&der).map_err(CaError::NotHoneyBeeCa)?;
        tracing::info!(core = %id, serial = %serial, not_after_ms, "issued a core CA");
        Ok(IssuedCert {
            der,
            serial,
            not_after_ms,
        })
    }

    /// Makes a key and a certificate for it, for principals created on the core itself
    /// (the core's own certificate, the admin CLI). Goes through [`Ca::sign_csr`] so that
    /// CSR signing stays the only way a certificate is issued.
    pub fn issue_with_new_key(&self, req: &IssueRequest) -> Result<(KeyPair, IssuedCert), CaError> {
        let key = KeyPair::generate().map_err(CaError::Key)?;
        let csr = make_csr(&key).map_err(CaError::Key)?;
        let cert = self.sign_csr(&csr, req)?;
        Ok((key, cert))
    }
}

fn uri(s: &str) -> Result<Ia5String, CaError> {
    Ia5String::try_from(s).map_err(CaError::Generate)
}

/// Parses a CSR, verifies its self-signature and returns its public key, and nothing else.
///
/// We parse with x509-parser directly rather than through rcgen's CSR parser because that
/// one also interprets (and rejects unknown) requested extensions we are going to ignore.
fn csr_public_key(csr_der: &[u8]) -> Result<SubjectPublicKeyInfo, CaError> {
    if csr_der.len() > MAX_CSR_LEN {
        return Err(CaError::CsrParse(format!(
            "{} bytes is more than the {MAX_CSR_LEN} a CSR may have",
            csr_der.len()
        )));
    }
    let (rest, csr) = X509CertificationRequest::from_der(csr_der)
        .map_err(|e| CaError::CsrParse(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CaError::CsrParse("trailing bytes".into()));
    }
    csr.verify_signature().map_err(|_| CaError::CsrSignature)?;
    let spki = SubjectPublicKeyInfo::from_der(csr.certification_request_info.subject_pki.raw)
        .map_err(|_| CaError::CsrKeyAlgorithm)?;
    if spki.algorithm() != &PKCS_ECDSA_P256_SHA256 {
        return Err(CaError::CsrKeyAlgorithm);
    }
    Ok(spki)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_is_shareable_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Ca>();
    }
}
