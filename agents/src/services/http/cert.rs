//! The HTTPS persona's certificate: self-signed, made once per node and subject, and kept
//! in the node's data directory so its fingerprint stays the same across restarts, as a
//! real device's would. It looks like a device's: CN and O from the options, an ECDSA
//! key, a random serial, issued some months ago and valid for ten years.

use honeybee_pki::files::{pem_to_der_certs, write_private, write_public};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256, SerialNumber,
    date_time_ymd,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Largest certificate or key file read back (ours are well under 2 KiB).
const MAX_FILE: u64 = 64 * 1024;
/// How long the certificate is valid, in years, from its issue date.
const VALID_YEARS: i32 = 10;

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
fn paths(dir: &Path, common_name: &str, organization: &str) -> (PathBuf, PathBuf) {
    let mut subject = Vec::with_capacity(common_name.len() + organization.len() + 1);
    subject.extend_from_slice(common_name.as_bytes());
    subject.push(0);
    subject.extend_from_slice(organization.as_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA256, &subject);
    let tag = hex::encode(&digest.as_ref()[..8]);
    (
        dir.join(format!("https-{tag}.crt")),
        dir.join(format!("https-{tag}.key")),
    )
}

/// Loads the certificate for this subject from `dir`, or makes and stores one.
pub(crate) fn load_or_create(
    dir: &Path,
    common_name: &str,
    organization: &str,
) -> Result<DeviceCert, CertError> {
    let (cert_path, key_path) = paths(dir, common_name, organization);
    if cert_path.exists() && key_path.exists() {
        return load(&cert_path, &key_path);
    }
    std::fs::create_dir_all(dir).map_err(|source| CertError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let (cert_pem, key_pem) = generate(common_name, organization)?;
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
    tracing::info!(path = %cert_path.display(), cn = common_name, "HTTPS certificate created");
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

/// A new self-signed certificate and key, both PEM.
fn generate(common_name: &str, organization: &str) -> Result<(String, String), CertError> {
    let rng = SystemRandom::new();
    let mut random = [0u8; 18];
    rng.fill(&mut random).map_err(|_| CertError::Random)?;

    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    if !organization.is_empty() {
        dn.push(DnType::OrganizationName, organization);
    }
    params.distinguished_name = dn;
    // Positive, 16 bytes, like the serials device firmwares generate.
    let mut serial = random[..16].to_vec();
    serial[0] = (serial[0] & 0x7f).max(1);
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    // Issued 30 to 540 days ago, at midnight: a device that has been running a while.
    let now_days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(19_000) as i64;
    let age = 30 + i64::from(u16::from_le_bytes([random[16], random[17]]) % 511);
    let (y, m, d) = civil_from_days(now_days - age);
    params.not_before = date_time_ymd(y, m, d);
    // Feb 29 has no twin ten years on in most cases.
    params.not_after = date_time_ymd(y + VALID_YEARS, m, d.min(28));

    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
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

    #[test]
    fn created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path(), "192.168.0.1", "ACME Networks").unwrap();
        let b = load_or_create(dir.path(), "192.168.0.1", "ACME Networks").unwrap();
        assert_eq!(a.chain, b.chain);
        let c = load_or_create(dir.path(), "router.lan", "ACME Networks").unwrap();
        assert_ne!(a.chain, c.chain);
        let (_, key_path) = paths(dir.path(), "192.168.0.1", "ACME Networks");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A damaged file is an error, not a silent new identity.
        std::fs::write(&a.cert_path, "junk").unwrap();
        assert!(load_or_create(dir.path(), "192.168.0.1", "ACME Networks").is_err());
    }
}
