//! The admin CLI's side of `honeybee-admin/1`: finds the running core from its data
//! directory and sends requests with the admin certificate.

use crate::frame_io::{FrameIoError, read_frame, write_frame};
use crate::init::CorePaths;
use honeybee_proto::admin::{AdminRequest, AdminResponse};
use honeybee_proto::codec::FrameLimit;
use honeybee_proto::{Role, alpn};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminClientError {
    #[error("{0}")]
    Setup(String),
    #[error(
        "cannot reach the core at {addr}: {why}. Is it running (`honeybee core run` or `honeybee up`) with this --data-dir?"
    )]
    Unreachable { addr: SocketAddr, why: String },
    #[error("the core closed the request: {0}")]
    Stream(#[from] FrameIoError),
    #[error("{0}")]
    Refused(String),
}

pub struct AdminClient {
    conn: quinn::Connection,
    _endpoint: quinn::Endpoint,
}

/// The core's QUIC address as the running core recorded it, else from `core.toml`.
pub fn core_address(data_dir: &Path) -> Result<SocketAddr, AdminClientError> {
    let paths = CorePaths::new(data_dir);
    if let Ok(text) = std::fs::read_to_string(paths.addr_file())
        && let Ok(a) = text.trim().parse()
    {
        return Ok(a);
    }
    let cfg = crate::config::load(data_dir).map_err(|e| AdminClientError::Setup(e.to_string()))?;
    let mut a = cfg.listen;
    if a.ip().is_unspecified() {
        a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Ok(a)
}

/// A quinn client endpoint on an ephemeral port of the right address family.
pub fn client_endpoint(
    tls: rustls::ClientConfig,
    target: SocketAddr,
) -> Result<quinn::Endpoint, String> {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| format!("TLS configuration unusable for QUIC: {e}"))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(Arc::new(crate::endpoint::transport_config(16)));
    let bind: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let mut ep =
        quinn::Endpoint::client(bind).map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    ep.set_default_client_config(cfg);
    Ok(ep)
}

fn read(path: &Path) -> Result<String, AdminClientError> {
    std::fs::read_to_string(path).map_err(|e| {
        AdminClientError::Setup(format!(
            "cannot read {}: {e} (is this the core's --data-dir?)",
            path.display()
        ))
    })
}

impl AdminClient {
    pub async fn connect(data_dir: &Path) -> Result<AdminClient, AdminClientError> {
        honeybee_pki::install_crypto_provider();
        let paths = CorePaths::new(data_dir);
        let addr = core_address(data_dir)?;
        let setup = |e: &dyn std::fmt::Display| AdminClientError::Setup(e.to_string());
        let ca = honeybee_pki::files::pem_to_der_certs(&read(&paths.ca_cert())?)
            .map_err(|e| setup(&e))?;
        let ca = ca
            .into_iter()
            .next()
            .ok_or_else(|| setup(&"pki/ca.crt holds no certificate"))?;
        let chain = honeybee_pki::files::pem_to_der_certs(&read(&paths.admin_cert())?)
            .map_err(|e| setup(&e))?;
        let key = honeybee_pki::keys::KeyPair::from_pem(&read(&paths.admin_key())?)
            .map_err(|e| setup(&e))?;
        AdminClient::connect_with(addr, ca.as_ref(), chain, &key).await
    }

    /// Connects to the core at `addr` with any certificate the admin API accepts (the
    /// admin's, or the dashboard's).
    pub async fn connect_with(
        addr: SocketAddr,
        ca_der: &[u8],
        chain: Vec<rustls::pki_types::CertificateDer<'static>>,
        key: &honeybee_pki::keys::KeyPair,
    ) -> Result<AdminClient, AdminClientError> {
        honeybee_pki::install_crypto_provider();
        let setup = |e: &dyn std::fmt::Display| AdminClientError::Setup(e.to_string());
        let tls = honeybee_pki::tls::client_config(
            ca_der,
            chain,
            key.private_key_der(),
            Role::Core,
            alpn::ADMIN,
        )
        .map_err(|e| setup(&e))?;
        let endpoint = client_endpoint(tls, addr).map_err(|e| setup(&e))?;
        let connecting =
            endpoint
                .connect(addr, "honeybee-core")
                .map_err(|e| AdminClientError::Unreachable {
                    addr,
                    why: e.to_string(),
                })?;
        let conn = match tokio::time::timeout(Duration::from_secs(5), connecting).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(AdminClientError::Unreachable {
                    addr,
                    why: e.to_string(),
                });
            }
            Err(_) => {
                return Err(AdminClientError::Unreachable {
                    addr,
                    why: "no answer within 5 s".into(),
                });
            }
        };
        Ok(AdminClient {
            conn,
            _endpoint: endpoint,
        })
    }

    /// Sends one request and waits for its response; an `Error` response becomes `Err`.
    pub async fn request(&self, req: &AdminRequest) -> Result<AdminResponse, AdminClientError> {
        let (mut send, mut recv) = self
            .conn
            .open_bi()
            .await
            .map_err(|e| AdminClientError::Refused(e.to_string()))?;
        write_frame(&mut send, req, FrameLimit::ADMIN_REQUEST).await?;
        let _ = send.finish();
        match read_frame(&mut recv, FrameLimit::ADMIN_RESPONSE).await? {
            AdminResponse::Error(e) => Err(AdminClientError::Refused(e)),
            other => Ok(other),
        }
    }

    /// The QUIC connection, for tests that open streams by hand.
    #[cfg(test)]
    pub(crate) fn connection(&self) -> &quinn::Connection {
        &self.conn
    }

    /// True once the connection is gone (the core stopped or closed it).
    pub fn is_closed(&self) -> bool {
        self.conn.close_reason().is_some()
    }

    pub async fn close(self) {
        self.conn.close(0u32.into(), b"done");
        self._endpoint.wait_idle().await;
    }
}
