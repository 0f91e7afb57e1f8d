//! TLS for the MySQL 8.0 persona. MySQL 8.0 makes itself a CA and a server certificate
//! on first start (`auto_generate_certs`): subjects
//! `CN=MySQL_Server_<version>_Auto_Generated_CA_Certificate` and
//! `…_Server_Certificate`, the server's signed by the CA. The same pair is made once per
//! node and version and kept in the data directory, so the fingerprint scanners record
//! stays put across restarts. (MySQL's keys are RSA 2048; these are ECDSA P-256, which is
//! what rcgen can generate with ring.)

use honeybee_pki::files::{pem_to_der_certs, write_private, write_public};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
    PKCS_ECDSA_P256_SHA256, SerialNumber, date_time_ymd,
};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Largest certificate or key file read back.
const MAX_FILE: u64 = 64 * 1024;

/// The rustls configuration for `version`, with its certificate made if missing.
pub(super) fn server_config(
    data_dir: &Path,
    version: &str,
) -> Result<Arc<rustls::ServerConfig>, String> {
    // The version goes into file names: keep it to what a version is made of.
    let tag: String = version
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(40)
        .collect();
    let dir = data_dir.join("mysql");
    let cert_path = dir.join(format!("server-cert-{tag}.pem"));
    let key_path = dir.join(format!("server-key-{tag}.pem"));
    if !(cert_path.exists() && key_path.exists()) {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (chain, key) = generate(version).map_err(|e| format!("MySQL certificate: {e}"))?;
        write_private(&key_path, key.as_bytes())
            .map_err(|e| format!("{}: {e}", key_path.display()))?;
        write_public(&cert_path, chain.as_bytes())
            .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    }
    let chain = pem_to_der_certs(&read_small(&cert_path)?)
        .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    let key = PrivateKeyDer::from_pem_slice(read_small(&key_path)?.as_bytes())
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("MySQL certificate {}: {e}", cert_path.display()))?;
    Ok(Arc::new(config))
}

fn read_small(path: &Path) -> Result<String, String> {
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE).read_to_string(&mut text))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text)
}

fn params(cn: &str, serial: u8, days: i64) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    // MySQL numbers its two certificates 1 and 2.
    p.serial_number = Some(SerialNumber::from_slice(&[serial]));
    let (y, m, d) = crate::services::http::civil_from_days(days);
    p.not_before = date_time_ymd(y, m, d);
    // Ten years, as MySQL's.
    p.not_after = date_time_ymd(y + 10, m, d.min(28));
    p
}

/// The chain (server certificate, then the CA) and the server key, PEM.
fn generate(version: &str) -> Result<(String, String), rcgen::Error> {
    let now_days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(19_000) as i64;
    // Made when the server was first started, some months ago.
    let days = now_days - rand::random_range(30..400);
    let mut ca = params(
        &format!("MySQL_Server_{version}_Auto_Generated_CA_Certificate"),
        1,
        days,
    );
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?)?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let server = params(
        &format!("MySQL_Server_{version}_Auto_Generated_Server_Certificate"),
        2,
        days,
    )
    .signed_by(&key, &ca)?;
    Ok((format!("{}{}", server.pem(), ca.pem()), key.serialize_pem()))
}
