//! TLS to the PostgreSQL server: libpq's `sslmode` and `sslrootcert` read from the
//! `[store] url`, carried out with rustls on the ring provider (tokio-postgres-rustls
//! makes rustls a tokio-postgres connector, with SCRAM channel binding).
//!
//! The modes are libpq's: `disable` (plain), `prefer` (the default: TLS if the server
//! offers it, certificate not checked), `require` (TLS or nothing; certificate not
//! checked, unless `sslrootcert` is given, which makes it `verify-ca`, as libpq does),
//! `verify-ca` (the chain must end at a CA in `sslrootcert`) and `verify-full` (that, and
//! the certificate must name the host of the URL). tokio-postgres knows only the first
//! three and no `sslrootcert`, so both are taken out of the URL here and the driver is
//! told `require` for the verifying modes; the verifier decides the rest. There is no
//! default CA file (libpq's `~/.postgresql/root.crt`): a verifying mode without
//! `sslrootcert` is refused, saying so.

use crate::store::{BoxError, StoreError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_postgres::config::SslMode;

/// The connector the pool uses for every connection.
pub(super) type Connector = tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// What the URL asks for, and the URL as tokio-postgres can parse it.
#[derive(Debug)]
pub(crate) struct Settings {
    pub mode: Mode,
    pub root: Option<PathBuf>,
    /// The URL without `sslrootcert`, and with `sslmode=require` for a verifying mode.
    pub driver_url: String,
}

fn url_error(why: String) -> StoreError {
    StoreError::Open {
        location: "the [store] url".into(),
        source: why.into(),
    }
}

fn parse_mode(v: &str) -> Result<Mode, StoreError> {
    Ok(match v {
        "disable" => Mode::Disable,
        "prefer" => Mode::Prefer,
        "require" => Mode::Require,
        "verify-ca" => Mode::VerifyCa,
        "verify-full" => Mode::VerifyFull,
        other => {
            return Err(url_error(format!(
                "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
            )));
        }
    })
}

/// `%XX` escapes of a URL query value decoded (a path may carry them).
fn percent_decode(v: &str) -> Result<String, StoreError> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| url_error(format!("bad %-escape in sslrootcert={v}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| url_error(format!("sslrootcert={v} is not UTF-8")))
}

/// Takes `sslmode` and `sslrootcert` out of a `postgres://` URL (query parameters) or a
/// `key=value` string (unquoted values).
pub(crate) fn settings(url: &str) -> Result<Settings, StoreError> {
    let mut mode = None;
    let mut root = None;
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let driver_url = if is_url {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&') {
                    match pair.split_once('=') {
                        Some(("sslmode", v)) => mode = Some(parse_mode(v)?),
                        Some(("sslrootcert", v)) => root = Some(percent_decode(v)?),
                        _ => kept.push(pair),
                    }
                }
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for word in url.split_whitespace() {
            match word.split_once('=') {
                Some(("sslmode", v)) => mode = Some(parse_mode(v)?),
                Some(("sslrootcert", v)) => root = Some(v.to_owned()),
                _ => kept.push(word),
            }
        }
        kept.join(" ")
    };
    let root = root.filter(|r| !r.is_empty()).map(PathBuf::from);
    let mode = match (mode.unwrap_or(Mode::Prefer), &root) {
        // libpq: "if a root CA file exists, require behaves as verify-ca".
        (Mode::Require, Some(_)) => Mode::VerifyCa,
        (m @ (Mode::VerifyCa | Mode::VerifyFull), None) => {
            return Err(url_error(format!(
                "sslmode={} needs sslrootcert=<file>: the PEM file of the CA that signed the \
                 database server's certificate (add it to [store] url, e.g. \
                 ?sslmode=verify-full&sslrootcert=/etc/honeybee/pg-ca.pem)",
                if m == Mode::VerifyCa {
                    "verify-ca"
                } else {
                    "verify-full"
                }
            )));
        }
        (m, _) => m,
    };
    Ok(Settings {
        mode,
        root,
        driver_url,
    })
}

impl Settings {
    /// What tokio-postgres is told.
    pub(super) fn driver_mode(&self) -> SslMode {
        match self.mode {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
        }
    }

    /// The rustls connector for these settings (reads the CA file).
    pub(super) fn connector(&self) -> Result<Connector, StoreError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match (&self.root, self.mode) {
            (Some(path), Mode::VerifyCa | Mode::VerifyFull) => {
                let roots = Arc::new(load_roots(path)?);
                let full =
                    WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
                        .build()
                        .map_err(|e| url_error(format!("sslrootcert={}: {e}", path.display())))?;
                if self.mode == Mode::VerifyFull {
                    full
                } else {
                    Arc::new(NameUnchecked {
                        roots: Some(roots),
                        algs: provider.signature_verification_algorithms,
                    })
                }
            }
            _ => Arc::new(NameUnchecked {
                roots: None,
                algs: provider.signature_verification_algorithms,
            }),
        };
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Worker(format!("TLS configuration: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(cfg))
    }
}

/// The CA certificates of a PEM file.
fn load_roots(path: &std::path::Path) -> Result<RootCertStore, StoreError> {
    let shown = path.display();
    let pem = std::fs::read(path)
        .map_err(|e| url_error(format!("cannot read sslrootcert={shown}: {e}")))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| url_error(format!("sslrootcert={shown} is not PEM: {e:?}")))?;
        roots
            .add(cert)
            .map_err(|e| url_error(format!("sslrootcert={shown}: a bad certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(url_error(format!(
            "sslrootcert={shown} holds no certificate (expected the PEM of the CA that signed \
             the database server's certificate)"
        )));
    }
    Ok(roots)
}

/// The modes that do not check the server's name: `verify-ca` (`roots`: the chain must
/// end at one of them) and `prefer` / `require` without a CA (`None`: the certificate is
/// taken as it comes, libpq's meaning of these modes). The handshake's signature is
/// always checked.
#[derive(Debug)]
struct NameUnchecked {
    roots: Option<Arc<RootCertStore>>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for NameUnchecked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.algs.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// The rustls error under a failed connection, if TLS is what failed.
fn rustls_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    for _ in 0..16 {
        let c = cur?;
        if let Some(r) = c.downcast_ref::<rustls::Error>() {
            return Some(r);
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(r) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(r);
        }
        cur = c.source();
    }
    None
}

/// A connection refused by TLS, as an operator can act on it; `None` if TLS is not why.
pub(super) fn tls_refusal(location: &str, e: &tokio_postgres::Error) -> Option<StoreError> {
    let r = rustls_cause(e)?;
    let hint = match r {
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        | rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature) => {
            "the database server's certificate is not signed by a CA in sslrootcert: set \
             sslrootcert in [store] url to the PEM file of the CA that signed the server's \
             certificate (the server's ssl_cert_file), or have the server use a certificate \
             from that CA"
        }
        rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForName
            | rustls::CertificateError::NotValidForNameContext { .. },
        ) => {
            "the database server's certificate does not name the host in [store] url: connect \
             by a name (or IP address) the certificate lists as a subject alternative name, or \
             use sslmode=verify-ca to check the CA only"
        }
        rustls::Error::InvalidCertificate(
            rustls::CertificateError::Expired
            | rustls::CertificateError::ExpiredContext { .. }
            | rustls::CertificateError::NotValidYet
            | rustls::CertificateError::NotValidYetContext { .. },
        ) => "the database server's certificate is expired or not yet valid: renew it",
        rustls::Error::InvalidCertificate(_) => {
            "the database server's certificate was refused: check sslrootcert and the \
             server's ssl_cert_file"
        }
        _ => {
            "the TLS handshake with the database server failed: check that the server has \
             ssl=on with TLS 1.3 available (ssl_max_protocol_version), and sslmode in \
             [store] url"
        }
    };
    let source: BoxError = format!("TLS: {r}; {hint}").into();
    Some(StoreError::Open {
        location: location.into(),
        source,
    })
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
