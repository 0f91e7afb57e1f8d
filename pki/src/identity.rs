//! SPIFFE ids and the identity facts (id, serial, expiry, key pin) read from a certificate.
//!
//! Authorisation in HoneyBee is decided from a certificate's single URI SAN alone, after
//! the chain has been verified, so the parsing here is deliberately strict.

use std::fmt;
use std::str::FromStr;

use honeybee_proto::ids::{NodeId, Role, Serial};
use ring::digest;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

const SCHEME: &str = "spiffe://";

/// Longest trust domain we accept; SPIFFE allows 255 bytes.
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// `spiffe://<trust-domain>/<role>/<id>`: who a certificate speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    pub trust_domain: String,
    pub role: Role,
    pub id: NodeId,
}

/// Why a string is not a HoneyBee SPIFFE id (or trust domain).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpiffeIdError {
    #[error("SPIFFE id must start with spiffe://")]
    Scheme,
    #[error("trust domain {0:?} must be 1 to 255 characters of a-z, 0-9, '.' and '-'")]
    TrustDomain(String),
    #[error("SPIFFE id path must be /<role>/<id>")]
    Path,
    #[error(transparent)]
    Role(honeybee_proto::ids::InvalidId),
    #[error(transparent)]
    Id(honeybee_proto::ids::InvalidId),
}

/// Checks a trust domain: lowercase `[a-z0-9.-]`, 1 to 255 bytes.
pub fn validate_trust_domain(td: &str) -> Result<(), SpiffeIdError> {
    let ok = !td.is_empty()
        && td.len() <= MAX_TRUST_DOMAIN_LEN
        && td
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        // Cap what we echo: the input may be a peer's.
        Err(SpiffeIdError::TrustDomain(td.chars().take(80).collect()))
    }
}

impl SpiffeId {
    pub fn new(trust_domain: &str, role: Role, id: NodeId) -> Result<SpiffeId, SpiffeIdError> {
        validate_trust_domain(trust_domain)?;
        Ok(SpiffeId {
            trust_domain: trust_domain.to_owned(),
            role,
            id,
        })
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}/{}", self.trust_domain, self.role, self.id)
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s.strip_prefix(SCHEME).ok_or(SpiffeIdError::Scheme)?;
        let mut parts = rest.split('/');
        // split always yields at least one item, so the first is the trust domain.
        let td = parts.next().unwrap_or_default();
        validate_trust_domain(td)?;
        let (Some(role), Some(id), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(SpiffeIdError::Path);
        };
        let role = role.parse::<Role>().map_err(SpiffeIdError::Role)?;
        let id = NodeId::new(id).map_err(SpiffeIdError::Id)?;
        Ok(SpiffeId {
            trust_domain: td.to_owned(),
            role,
            id,
        })
    }
}

/// Why identity facts could not be read from a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    #[error("certificate is not valid DER X.509: {0}")]
    Parse(String),
    #[error("certificate has trailing bytes after its DER")]
    TrailingData,
    #[error("certificate must carry exactly one URI SAN, found {0}")]
    UriSanCount(usize),
    #[error("certificate's URI SAN is not a HoneyBee SPIFFE id: {0}")]
    Spiffe(#[from] SpiffeIdError),
    #[error("certificate serial is {0} bytes; HoneyBee serials are 16")]
    SerialLength(usize),
    #[error("certificate is not a HoneyBee CA certificate: {0}")]
    NotHoneyBeeCa(&'static str),
}

fn parse(cert_der: &[u8]) -> Result<X509Certificate<'_>, IdentityError> {
    let (rest, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| IdentityError::Parse(e.to_string()))?;
    if !rest.is_empty() {
        return Err(IdentityError::TrailingData);
    }
    Ok(cert)
}

/// The certificate's URI SANs. A duplicated SAN extension is an error in x509-parser,
/// which is what we want: two extensions could smuggle a second identity.
fn uri_sans<'a>(cert: &'a X509Certificate<'_>) -> Result<Vec<&'a str>, IdentityError> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| IdentityError::Parse(e.to_string()))?;
    Ok(san
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::URI(u) => Some(*u),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

fn spiffe_of(cert: &X509Certificate<'_>) -> Result<SpiffeId, IdentityError> {
    match uri_sans(cert)?.as_slice() {
        [one] => Ok(one.parse()?),
        many => Err(IdentityError::UriSanCount(many.len())),
    }
}

fn serial_of(cert: &X509Certificate<'_>) -> Result<Serial, IdentityError> {
    let mut raw = cert.raw_serial();
    // DER adds a leading zero to keep a positive integer positive when its top bit is set.
    if raw.len() > 1 && raw[0] == 0 {
        raw = &raw[1..];
    }
    if raw.len() > 16 {
        return Err(IdentityError::SerialLength(raw.len()));
    }
    let mut out = [0u8; 16];
    out[16 - raw.len()..].copy_from_slice(raw);
    Ok(Serial(out))
}

fn not_after_of(cert: &X509Certificate<'_>) -> i64 {
    cert.validity().not_after.timestamp().saturating_mul(1000)
}

/// The certificate's SPIFFE id; it must have exactly one URI SAN and it must parse.
pub fn spiffe_id_from_cert(cert_der: &[u8]) -> Result<SpiffeId, IdentityError> {
    spiffe_of(&parse(cert_der)?)
}

/// The certificate's serial as 16 bytes (shorter serials are left-padded with zeros).
pub fn serial_from_cert(cert_der: &[u8]) -> Result<Serial, IdentityError> {
    serial_of(&parse(cert_der)?)
}

/// The certificates among `candidates` that could have issued `leaf` (subject equal to
/// its issuer), other than `root`, at most 3: what a node sends after its leaf when a
/// joined core's intermediate issued it (empty when the root issued it directly). The
/// candidates are what that core sent in its own TLS chain; whether they really signed
/// the leaf is for the verifiers, which check the whole chain up to the root.
pub fn issuing_chain(leaf: &[u8], candidates: &[&[u8]], root: &[u8]) -> Vec<Vec<u8>> {
    let Ok(leaf) = parse(leaf) else {
        return Vec::new();
    };
    let issuer = leaf.tbs_certificate.issuer.as_raw();
    candidates
        .iter()
        .filter(|c| **c != root)
        .filter(|c| parse(c).is_ok_and(|c| c.tbs_certificate.subject.as_raw() == issuer))
        .take(3)
        .map(|c| c.to_vec())
        .collect()
}

/// The certificate's notAfter in Unix milliseconds.
pub fn not_after_ms(cert_der: &[u8]) -> Result<i64, IdentityError> {
    Ok(not_after_of(&parse(cert_der)?))
}

/// The certificate's notBefore and notAfter in Unix milliseconds (agents schedule renewal
/// at about 2/3 of this span).
pub fn validity_ms(cert_der: &[u8]) -> Result<(i64, i64), IdentityError> {
    let cert = parse(cert_der)?;
    let not_before = cert.validity().not_before.timestamp().saturating_mul(1000);
    Ok((not_before, not_after_of(&cert)))
}

/// SHA-256 of the certificate's SubjectPublicKeyInfo DER: the pin a token carries.
///
/// Pinning the key rather than the whole certificate lets the CA certificate be re-issued
/// (say, to extend it) without invalidating tokens already handed out.
pub fn spki_pin(cert_der: &[u8]) -> Result<[u8; 32], IdentityError> {
    let cert = parse(cert_der)?;
    Ok(sha256(cert.tbs_certificate.subject_pki.raw))
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Everything the core needs to know about a verified peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    pub spiffe: SpiffeId,
    pub serial: Serial,
    pub not_after_ms: i64,
}

/// Reads a peer's identity from its (already verified) end-entity certificate.
pub fn peer_identity(cert_der: &[u8]) -> Result<PeerIdentity, IdentityError> {
    let cert = parse(cert_der)?;
    Ok(PeerIdentity {
        spiffe: spiffe_of(&cert)?,
        serial: serial_of(&cert)?,
        not_after_ms: not_after_of(&cert),
    })
}

/// The trust domain a HoneyBee CA certificate is for, from its single URI SAN
/// `spiffe://<trust-domain>` (the form SPIFFE uses to name a trust domain).
///
/// Carrying it in the CA certificate means anything holding the CA certificate knows the
/// trust domain to demand of peers, without a separate setting that could disagree.
pub fn trust_domain_from_ca_cert(ca_der: &[u8]) -> Result<String, IdentityError> {
    let cert = parse(ca_der)?;
    if !cert.is_ca() {
        return Err(IdentityError::NotHoneyBeeCa("it is not a CA certificate"));
    }
    let uris = uri_sans(&cert)?;
    let [uri] = uris.as_slice() else {
        return Err(IdentityError::UriSanCount(uris.len()));
    };
    let td = uri
        .strip_prefix(SCHEME)
        .ok_or(IdentityError::NotHoneyBeeCa("its URI SAN is not spiffe://"))?;
    validate_trust_domain(td)?;
    Ok(td.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_round_trip() {
        let s = "spiffe://hb.example/agent/office-printer-1";
        let id: SpiffeId = s.parse().unwrap();
        assert_eq!(id.trust_domain, "hb.example");
        assert_eq!(id.role, Role::Agent);
        assert_eq!(id.id.as_str(), "office-printer-1");
        assert_eq!(id.to_string(), s);
    }

    #[test]
    fn spiffe_rejects() {
        for bad in [
            "",
            "http://hb/agent/a",
            "spiffe://",
            "spiffe:///agent/a",
            "spiffe://HB/agent/a",
            "spiffe://hb/agent",
            "spiffe://hb/agent/",
            "spiffe://hb/agent/a/b",
            "spiffe://hb/root/a",
            "spiffe://hb/agent/A",
            "spiffe://hb:443/agent/a",
            "spiffe://hb/agent/a?x=1",
            "spiffe://hb/agent/a#f",
            "spiffe://user@hb/agent/a",
            "spiffe://hb//agent/a",
        ] {
            assert!(
                bad.parse::<SpiffeId>().is_err(),
                "{bad:?} should be rejected"
            );
        }
        let long = format!("spiffe://{}/agent/a", "a".repeat(256));
        assert!(long.parse::<SpiffeId>().is_err());
        let max = format!("spiffe://{}/agent/a", "a".repeat(255));
        assert!(max.parse::<SpiffeId>().is_ok());
    }

    #[test]
    fn garbage_cert_is_an_error() {
        assert!(matches!(
            spiffe_id_from_cert(b"not a cert"),
            Err(IdentityError::Parse(_))
        ));
        assert!(serial_from_cert(&[]).is_err());
    }
}
