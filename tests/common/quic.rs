//! Raw QUIC clients for tests that play a node, an admin or an attacker by hand.

use honeybee_pki::ca::{Ca, IssueRequest};
use honeybee_pki::keys::KeyPair;
use honeybee_proto::{NodeId, Role};
use rustls::pki_types::CertificateDer;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// The deployment's CA, loaded from its data directory (tests may mint certificates).
pub fn load_ca(core_dir: &Path) -> Ca {
    let cert = std::fs::read_to_string(core_dir.join("pki/ca.crt")).unwrap();
    let key = std::fs::read_to_string(core_dir.join("pki/ca.key")).unwrap();
    Ca::from_pem(&cert, &key, "test.honeybee").unwrap()
}

/// A client identity: certificate chain and key.
pub struct ClientId {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: KeyPair,
}

pub fn issue(ca: &Ca, role: Role, id: &str) -> ClientId {
    let (key, cert) = ca
        .issue_with_new_key(&IssueRequest {
            role,
            id: NodeId::new(id).unwrap(),
            lifetime: Duration::from_secs(3600),
        })
        .unwrap();
    ClientId {
        chain: vec![cert.der.into()],
        key,
    }
}

/// The identity an enrolled agent directory holds.
pub fn agent_identity(agent_dir: &Path) -> ClientId {
    let paths = honeybee_agent::config::AgentPaths::new(agent_dir);
    let (_, cert, key) = honeybee_agent::enroll::load_identity(&paths).unwrap();
    ClientId {
        chain: vec![cert.into()],
        key,
    }
}

/// Connects with mutual TLS on `alpn`. Returns the connection, or the handshake error.
pub async fn connect(
    addr: SocketAddr,
    ca_der: &[u8],
    id: &ClientId,
    alpn: &[u8],
) -> Result<(quinn::Endpoint, quinn::Connection), String> {
    honeybee_pki::install_crypto_provider();
    let tls = honeybee_pki::tls::client_config(
        ca_der,
        id.chain.clone(),
        id.key.private_key_der(),
        Role::Core,
        alpn,
    )
    .map_err(|e| e.to_string())?;
    connect_with(addr, tls).await
}

pub async fn connect_with(
    addr: SocketAddr,
    tls: rustls::ClientConfig,
) -> Result<(quinn::Endpoint, quinn::Connection), String> {
    let cfg = honeybee_agent::transport::client_config(tls)?;
    let ep = honeybee_agent::transport::endpoint_for(addr).map_err(|e| e.to_string())?;
    let conn = ep
        .connect_with(cfg, addr, "honeybee-core")
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    Ok((ep, conn))
}

/// Waits for the connection to end and returns why, or panics after `limit`.
pub async fn closed_within(conn: &quinn::Connection, limit: Duration) -> quinn::ConnectionError {
    tokio::time::timeout(limit, conn.closed())
        .await
        .unwrap_or_else(|_| panic!("connection still open after {limit:?}"))
}

/// The application error code the core closed with, if it was an application close.
pub fn app_code(e: &quinn::ConnectionError) -> Option<u64> {
    match e {
        quinn::ConnectionError::ApplicationClosed(c) => Some(c.error_code.into_inner()),
        _ => None,
    }
}
