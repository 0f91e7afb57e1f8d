//! STARTTLS with the certificate Debian's postfix uses out of the box: `ssl-cert`'s
//! "snakeoil" one. On a real Debian box Apache and Postfix present the same
//! /etc/ssl/certs/ssl-cert-snakeoil.pem, so this is the very certificate the node's
//! WordPress HTTPS service shows (made by `http/cert.rs` from the same subject, kept
//! once per node in its data directory), and TLS is negotiated as OpenSSL 3.0 does it
//! (`http::tls_config`), without ALPN (Postfix offers none).

use crate::persona::Persona;
use crate::services::http::{cert, tls_config};
use std::path::Path;
use std::sync::Arc;

/// The snakeoil subject exactly as the HTTPS service derives it for a WordPress
/// (Apache) node, so both load the same files: the host name, ten years from a few
/// minutes into the installation (when ssl-cert's postinst ran).
pub(crate) fn snakeoil(node: &Persona) -> cert::Subject {
    let mut d = node.stream("https-cert");
    cert::Subject {
        style: cert::Style::Snakeoil,
        country: None,
        organization: String::new(),
        common_name: node.hostname.clone(),
        not_before: node.install_time + d.range(240, 1500),
        days: 3650,
    }
}

/// The node's snakeoil certificate (made on first use) as a TLS server configuration.
pub(crate) fn server_config(
    dir: &Path,
    node: &Persona,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let cert = cert::load_or_create(dir, &snakeoil(node)).map_err(|e| e.to_string())?;
    let mut config = (*tls_config(cert)?).clone();
    config.alpn_protocols.clear();
    Ok(Arc::new(config))
}
