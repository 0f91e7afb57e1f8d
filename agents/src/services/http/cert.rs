//! The HTTPS persona's certificate: self-signed, made once per node and subject, and kept
//! in the node's data directory so its fingerprint stays the same across restarts, as a
//! real machine's would. It is the certificate the imitated machine would have made for
//! itself, field for field as OpenSSL 3.0 writes it (checked against Debian's openssl by
//! `tests/http_tls.rs`): an RSA 2048 key, a 20-byte random serial, sha256WithRSA, UTF8String
//! names, validity to the second from the moment the machine made it, and either
//!
//! - [`Style::Snakeoil`]: Debian's `ssl-cert` "snakeoil" certificate (what Apache's
//!   `default-ssl` site and lighttpd configurations on Debian use): CN = the host name,
//!   basicConstraints CA:FALSE, subjectAltName DNS:host, subjectKeyIdentifier; made when
//!   the package was installed, valid 3650 days; or
//! - [`Style::Device`]: what `openssl req -x509` makes with the default `openssl.cnf`
//!   (a device's first boot): subjectKeyIdentifier, authorityKeyIdentifier (key id),
//!   basicConstraints critical CA:TRUE.

use honeybee_pki::files::{pem_to_der_certs, write_private, write_public};
use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, DnValue, KeyPair,
    PKCS_RSA_SHA256, SerialNumber, date_time_ymd,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Which machine made the certificate, and so which extensions it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Snakeoil,
    Device,
}

/// What the certificate says, decided from the node's persona (see `mod.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subject {
    pub style: Style,
    /// `C=` (two letters, a PrintableString as OpenSSL writes it), if any.
    pub country: Option<&'static str>,
    pub organization: String,
    pub common_name: String,
    /// When the machine made it (Unix seconds): notBefore.
    pub not_before: i64,
    /// Validity in days (`openssl req -days`).
    pub days: u32,
}

/// RSA modulus size of `openssl req -newkey rsa` and ssl-cert's `default_bits`.
const RSA_BITS: usize = 2048;

/// Largest certificate or key file read back (ours are well under 2 KiB).
const MAX_FILE: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum CertError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a usable PEM file: {why}")]
    Parse { path: PathBuf, why: String },
    #[error("cannot make the HTTPS certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("no randomness available")]
    Random,
}

/// A certificate and its key, ready for rustls.
#[derive(Debug)]
pub(crate) struct DeviceCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub cert_path: PathBuf,
}

/// Files of the certificate for this subject: several HTTPS services with different
/// subjects on one node each keep their own.
fn paths(dir: &Path, subject: &Subject) -> (PathBuf, PathBuf) {
    let mut id = Vec::with_capacity(subject.common_name.len() + subject.organization.len() + 8);
    id.extend_from_slice(b"v2\0");
    id.push(subject.style as u8);
    id.extend_from_slice(subject.common_name.as_bytes());
    id.push(0);
    id.extend_from_slice(subject.organization.as_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA256, &id);
    let tag = hex::encode(&digest.as_ref()[..8]);
    (
        dir.join(format!("https-{tag}.crt")),
        dir.join(format!("https-{tag}.key")),
    )
}

/// Loads the certificate for this subject from `dir`, or makes and stores one.
pub(crate) fn load_or_create(dir: &Path, subject: &Subject) -> Result<DeviceCert, CertError> {
    let (cert_path, key_path) = paths(dir, subject);
    if cert_path.exists() && key_path.exists() {
        return load(&cert_path, &key_path);
    }
    std::fs::create_dir_all(dir).map_err(|source| CertError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let (cert_pem, key_pem) = generate(subject)?;
    // Key first: a crash between the two writes leaves no certificate, so the pair is
    // made again rather than a certificate without its key.
    write_private(&key_path, key_pem.as_bytes()).map_err(|source| CertError::Io {
        path: key_path.clone(),
        source,
    })?;
    write_public(&cert_path, cert_pem.as_bytes()).map_err(|source| CertError::Io {
        path: cert_path.clone(),
        source,
    })?;
    tracing::info!(path = %cert_path.display(), cn = %subject.common_name, "HTTPS certificate created");
    load(&cert_path, &key_path)
}

fn read_small(path: &Path) -> Result<String, CertError> {
    let io_err = |source| CertError::Io {
        path: path.to_owned(),
        source,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(io_err)?
        .take(MAX_FILE)
        .read_to_string(&mut text)
        .map_err(io_err)?;
    Ok(text)
}

fn load(cert_path: &Path, key_path: &Path) -> Result<DeviceCert, CertError> {
    let chain = pem_to_der_certs(&read_small(cert_path)?).map_err(|e| CertError::Parse {
        path: cert_path.to_owned(),
        why: e.to_string(),
    })?;
    let key = PrivateKeyDer::from_pem_slice(read_small(key_path)?.as_bytes()).map_err(|e| {
        CertError::Parse {
            path: key_path.to_owned(),
            why: e.to_string(),
        }
    })?;
    Ok(DeviceCert {
        chain,
        key,
        cert_path: cert_path.to_owned(),
    })
}

/// A new RSA key as PKCS#8 DER (what `openssl req -nodes` writes, as
/// `-----BEGIN PRIVATE KEY-----`).
fn rsa_key() -> Result<Vec<u8>, CertError> {
    use rand_chacha::rand_core::SeedableRng;
    use russh::keys::ssh_key;
    let mut seed = [0u8; 32];
    SystemRandom::new()
        .fill(&mut seed)
        .map_err(|_| CertError::Random)?;
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
    seed.fill(0);
    let key = ssh_key::private::RsaKeypair::random(&mut rng, RSA_BITS)
        .map(ssh_key::PrivateKey::from)
        .map_err(|_| CertError::Random)?;
    russh::keys::pkcs8::encode_pkcs8(&key).map_err(|_| CertError::Random)
}

/// DER of a short definite length.
fn der_len(n: usize) -> Vec<u8> {
    match n {
        0..=127 => vec![n as u8],
        128..=255 => vec![0x81, n as u8],
        _ => vec![0x82, (n >> 8) as u8, n as u8],
    }
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_len(content.len()));
    out.extend_from_slice(content);
    out
}

fn extension(oid: &[u64], critical: bool, content: Vec<u8>) -> CustomExtension {
    let mut e = CustomExtension::from_oid_content(oid, content);
    e.set_criticality(critical);
    e
}

const SUBJECT_KEY_ID: &[u64] = &[2, 5, 29, 14];
const SUBJECT_ALT_NAME: &[u64] = &[2, 5, 29, 17];
const BASIC_CONSTRAINTS: &[u64] = &[2, 5, 29, 19];
const AUTHORITY_KEY_ID: &[u64] = &[2, 5, 29, 35];

/// The certificate's parameters for `key`, in OpenSSL's order of extensions.
fn params(subject: &Subject, key: &KeyPair, serial: &[u8]) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if let Some(c) = subject.country
        && let Ok(c) = rcgen::string::PrintableString::try_from(c)
    {
        dn.push(DnType::CountryName, DnValue::PrintableString(c));
    }
    if !subject.organization.is_empty() {
        dn.push(
            DnType::OrganizationName,
            DnValue::Utf8String(subject.organization.clone()),
        );
    }
    dn.push(
        DnType::CommonName,
        DnValue::Utf8String(subject.common_name.clone()),
    );
    params.distinguished_name = dn;
    params.serial_number = Some(SerialNumber::from_slice(serial));
    let epoch = date_time_ymd(1970, 1, 1);
    let from = u64::try_from(subject.not_before).unwrap_or(0);
    params.not_before = epoch + std::time::Duration::from_secs(from);
    params.not_after =
        params.not_before + std::time::Duration::from_secs(u64::from(subject.days) * 86_400);
    // The key identifier as OpenSSL computes it: SHA-1 of the public key's bits.
    let ski = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        key.public_key_raw(),
    );
    let ski = &ski.as_ref()[..20];
    params.custom_extensions = match subject.style {
        Style::Snakeoil => vec![
            // basicConstraints = CA:FALSE (not critical), subjectAltName = DNS:host.
            extension(BASIC_CONSTRAINTS, false, der(0x30, &[])),
            extension(
                SUBJECT_ALT_NAME,
                false,
                der(0x30, &der(0x82, subject.common_name.as_bytes())),
            ),
            extension(SUBJECT_KEY_ID, false, der(0x04, ski)),
        ],
        Style::Device => vec![
            extension(SUBJECT_KEY_ID, false, der(0x04, ski)),
            extension(AUTHORITY_KEY_ID, false, der(0x30, &der(0x80, ski))),
            extension(BASIC_CONSTRAINTS, true, der(0x30, &[0x01, 0x01, 0xff])),
        ],
    };
    params
}

/// A new self-signed certificate and key, both PEM.
fn generate(subject: &Subject) -> Result<(String, String), CertError> {
    let mut serial = [0u8; 20];
    SystemRandom::new()
        .fill(&mut serial)
        .map_err(|_| CertError::Random)?;
    // OpenSSL's 159 random bits: a positive 20-byte integer.
    serial[0] = (serial[0] & 0x7f).max(1);
    let key_der = rsa_key()?;
    let key = KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls::pki_types::PrivatePkcs8KeyDer::from(key_der),
        &PKCS_RSA_SHA256,
    )?;
    let cert = params(subject, &key, &serial).self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian; Howard
/// Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m as u8, d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_000), (2024, 10, 4));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    pub(crate) fn subject(cn: &str) -> Subject {
        Subject {
            style: Style::Device,
            country: Some("CN"),
            organization: "TP-Link Technologies Co., Ltd.".into(),
            common_name: cn.into(),
            not_before: 1_586_422_605,
            days: 3650,
        }
    }

    #[test]
    fn created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path(), &subject("192.168.0.1")).unwrap();
        let b = load_or_create(dir.path(), &subject("192.168.0.1")).unwrap();
        assert_eq!(a.chain, b.chain);
        let c = load_or_create(dir.path(), &subject("router.lan")).unwrap();
        assert_ne!(a.chain, c.chain);
        let (_, key_path) = paths(dir.path(), &subject("192.168.0.1"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A damaged file is an error, not a silent new identity.
        std::fs::write(&a.cert_path, "junk").unwrap();
        assert!(load_or_create(dir.path(), &subject("192.168.0.1")).is_err());
    }
}
