//! STARTTLS: the certificate Debian's postfix uses out of the box, `ssl-cert`'s
//! "snakeoil" one (self-signed, the host name as subject and subject alternative name,
//! ten years), made once per node and kept in its data directory.

use honeybee_pki::files::{pem_to_der_certs, write_private, write_public};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;

const CERT_FILE: &str = "smtp-snakeoil.pem";
const KEY_FILE: &str = "smtp-snakeoil.key";
/// Larger files are not ours.
const MAX_FILE: u64 = 64 * 1024;

fn read_small(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE).read_to_string(&mut text))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text)
}

/// The node's snakeoil certificate for `host`, made on first use, dated from when the
/// persona's system was installed (when `ssl-cert` made it).
pub(crate) fn server_config(
    dir: &Path,
    host: &str,
    installed: i64,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    if !(cert_path.exists() && key_path.exists()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut params =
            CertificateParams::new(vec![host.to_owned()]).map_err(|e| e.to_string())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host);
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::DnsName(
            host.to_owned()
                .try_into()
                .map_err(|e: rcgen::Error| e.to_string())?,
        )];
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        params.not_before =
            epoch + std::time::Duration::from_secs(u64::try_from(installed).unwrap_or(0));
        params.not_after = params.not_before + std::time::Duration::from_secs(86_400 * 3650);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        // Key first: a crash between the writes leaves no certificate without its key.
        write_private(&key_path, key.serialize_pem().as_bytes())
            .map_err(|e| format!("{}: {e}", key_path.display()))?;
        write_public(&cert_path, cert.pem().as_bytes())
            .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    }
    let chain = pem_to_der_certs(&read_small(&cert_path)?).map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_slice(read_small(&key_path)?.as_bytes())
        .map_err(|e| format!("{}: {e}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("SMTP certificate {}: {e}", cert_path.display()))?;
    Ok(Arc::new(config))
}
