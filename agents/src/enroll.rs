//! `honeybee agent enroll`: make a key pair here, check the core against the token's CA
//! pin before sending anything, send a CSR with the one-time token, store what comes back.

use crate::config::{AgentConfig, AgentPaths};
use crate::transport::{client_config, endpoint_for, read_frame, write_frame};
use honeybee_pki::files::{der_to_pem_cert, write_private, write_public};
use honeybee_pki::keys::{KeyPair, make_csr};
use honeybee_pki::token::Token;
use honeybee_proto::codec::FrameLimit;
use honeybee_proto::enroll::{EnrollRefusal, EnrollRequest, EnrollResponse};
use honeybee_proto::{NodeId, Role, WIRE_VERSION, alpn};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Connection attempts before enrolment gives up on an unreachable core.
pub const ATTEMPTS: u32 = 4;

/// Why enrolment failed; each says what the operator should do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollError {
    #[error("malformed token: {0}")]
    MalformedToken(String),
    #[error(
        "{0} is already enrolled (agent.toml exists); use another --data-dir or delete it deliberately"
    )]
    AlreadyEnrolled(PathBuf),
    #[error(
        "the server at {addr} does not hold the CA pinned in the token: possible interception (man in the middle), or a token from another deployment. Nothing was sent."
    )]
    PinMismatch { addr: SocketAddr },
    #[error("core unreachable at {core} after {attempts} attempts: {last_error}")]
    Unreachable {
        core: String,
        attempts: u32,
        last_error: String,
    },
    #[error("enrolment refused by the core: {0}")]
    Refused(EnrollRefusal),
    #[error("enrolment failed: {0}")]
    Other(String),
}

impl EnrollError {
    /// Whether this is the token-expired refusal (for callers that branch on it).
    pub fn refusal(&self) -> Option<&EnrollRefusal> {
        match self {
            EnrollError::Refused(r) => Some(r),
            _ => None,
        }
    }
}

/// What a successful enrolment produced.
#[derive(Debug, Clone)]
pub struct EnrollReport {
    pub node_id: NodeId,
    pub role: Role,
    pub core: String,
    pub not_after_ms: i64,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Enrols this machine with the core named in `token`, writing into `data_dir`.
pub async fn enroll(token: &str, data_dir: &Path) -> Result<EnrollReport, EnrollError> {
    enroll_via(token, data_dir, None).await
}

/// [`enroll`], reaching the core at `core` instead of the token's address — a relay on
/// this node's network (`HOST:PORT` or `srv:DOMAIN`). The node then keeps using that
/// address. The core is still checked against the token's CA pin, end to end.
pub async fn enroll_via(
    token: &str,
    data_dir: &Path,
    core: Option<&str>,
) -> Result<EnrollReport, EnrollError> {
    honeybee_pki::install_crypto_provider();
    let mut token = Token::decode(token).map_err(|e| EnrollError::MalformedToken(e.to_string()))?;
    if let Some(core) = core {
        honeybee_pki::token::validate_addr(core).map_err(|e| EnrollError::Other(e.to_string()))?;
        token.core_addr = core.to_owned();
    }
    let paths = AgentPaths::new(data_dir);
    if paths.config().exists() {
        return Err(EnrollError::AlreadyEnrolled(data_dir.to_owned()));
    }
    let other = |e: &dyn std::fmt::Display| EnrollError::Other(e.to_string());
    let key = KeyPair::generate().map_err(|e| other(&e))?;
    let csr_der = make_csr(&key).map_err(|e| other(&e))?;
    let request = EnrollRequest {
        wire_version: WIRE_VERSION,
        token_id: token.id,
        secret: token.secret,
        csr_der,
        hostname: hostname(),
    };
    let tls = honeybee_pki::tls::enroll_client_config(token.ca_pin, alpn::ENROLL)
        .map_err(|e| other(&e))?;
    let quic = client_config(tls).map_err(|e| other(&e))?;

    let mut last_error = String::new();
    let mut response = None;
    let mut server_certs = Vec::new();
    'attempts: for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 * (1 << attempt))).await;
        }
        let addrs = match crate::resolve::resolve(&token.core_addr, None).await {
            Ok(a) => a,
            Err(e) => {
                last_error = e.to_string();
                continue;
            }
        };
        for addr in addrs {
            match exchange(&quic, addr, &request).await {
                Ok((r, certs)) => {
                    response = Some(r);
                    server_certs = certs;
                    break 'attempts;
                }
                Err(Attempt::Pin) => return Err(EnrollError::PinMismatch { addr }),
                Err(Attempt::Failed(e)) => {
                    tracing::info!(%addr, attempt, error = %e, "enrolment attempt failed");
                    last_error = e;
                }
            }
        }
    }
    let Some(response) = response else {
        return Err(EnrollError::Unreachable {
            core: token.core_addr.clone(),
            attempts: ATTEMPTS,
            last_error,
        });
    };
    let enrolled = match response {
        EnrollResponse::Enrolled(e) => e,
        EnrollResponse::Refused(r) => return Err(EnrollError::Refused(r)),
        _ => {
            return Err(other(
                &"the core answered with something this agent does not understand",
            ));
        }
    };
    // The CA the core sent must be the one the token pinned.
    let ca_pin = honeybee_pki::identity::spki_pin(&enrolled.ca_der).map_err(|e| other(&e))?;
    if ca_pin != token.ca_pin {
        return Err(EnrollError::PinMismatch {
            addr: "0.0.0.0:0".parse().expect("literal"),
        });
    }
    let trust_domain = honeybee_pki::identity::spiffe_id_from_cert(&enrolled.cert_der)
        .map_err(|e| other(&e))?
        .trust_domain;

    std::fs::create_dir_all(data_dir.join("pki")).map_err(|e| other(&e))?;
    write_public(
        &paths.ca_cert(),
        der_to_pem_cert(&enrolled.ca_der).as_bytes(),
    )
    .map_err(|e| other(&e))?;
    // A joined core's intermediate issued the certificate: keep it after the leaf (taken
    // from the chain the core presented), so every core of the deployment can verify it.
    let chain = peer_chain(&enrolled.cert_der, &server_certs, &enrolled.ca_der);
    let identity = identity_pem(&key, &enrolled.cert_der, &chain);
    write_private(&paths.identity(), identity.as_bytes()).map_err(|e| other(&e))?;
    let cfg = AgentConfig {
        node_id: enrolled.node_id.to_string(),
        trust_domain,
        core: token.core_addr.clone(),
        dns_server: None,
        spool_max_events: 1_000_000,
        metrics: Default::default(),
    };
    write_public(&paths.config(), cfg.to_toml().as_bytes()).map_err(|e| other(&e))?;
    Ok(EnrollReport {
        node_id: enrolled.node_id,
        role: enrolled.role,
        core: token.core_addr,
        not_after_ms: enrolled.not_after_ms,
    })
}

enum Attempt {
    Pin,
    Failed(String),
}

async fn exchange(
    quic: &quinn::ClientConfig,
    addr: SocketAddr,
    request: &EnrollRequest,
) -> Result<(EnrollResponse, Vec<Vec<u8>>), Attempt> {
    let failed = |e: &dyn std::fmt::Display| Attempt::Failed(e.to_string());
    let endpoint = endpoint_for(addr).map_err(|e| failed(&e))?;
    let connecting = endpoint
        .connect_with(quic.clone(), addr, "honeybee-core")
        .map_err(|e| failed(&e))?;
    let conn = match tokio::time::timeout(Duration::from_secs(5), connecting).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            let text = e.to_string();
            return Err(if honeybee_pki::tls::is_pin_mismatch(&text) {
                Attempt::Pin
            } else {
                Attempt::Failed(text)
            });
        }
        Err(_) => return Err(Attempt::Failed("no answer within 5 s".into())),
    };
    let result = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| failed(&e))?;
        write_frame(&mut send, request, FrameLimit::ENROLL)
            .await
            .map_err(|e| failed(&e))?;
        let _ = send.finish();
        tokio::time::timeout(
            Duration::from_secs(10),
            read_frame(&mut recv, FrameLimit::ENROLL),
        )
        .await
        .map_err(|_| Attempt::Failed("the core did not answer within 10 s".into()))?
        .map_err(|e| failed(&e))
    }
    .await;
    let certs = server_certs(&conn);
    conn.close(0u32.into(), b"enrolled");
    // Give the close a moment to leave; waiting for full idleness would cost ~80 ms a
    // handshake, and the core stops waiting for us on its own anyway.
    let _ = tokio::time::timeout(Duration::from_millis(20), endpoint.wait_idle()).await;
    result.map(|r| (r, certs))
}

/// The certificates a core presented in its handshake.
pub fn server_certs(conn: &quinn::Connection) -> Vec<Vec<u8>> {
    conn.peer_identity()
        .and_then(|i| {
            i.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .map(|v| v.iter().map(|c| c.to_vec()).collect())
        .unwrap_or_default()
}

/// The intermediates (from a core's handshake `certs`) that issued `leaf`; empty when the
/// root (`ca_der`) issued it.
pub fn peer_chain(leaf: &[u8], certs: &[Vec<u8>], ca_der: &[u8]) -> Vec<Vec<u8>> {
    let candidates: Vec<&[u8]> = certs.iter().skip(1).map(Vec::as_slice).collect();
    honeybee_pki::identity::issuing_chain(leaf, &candidates, ca_der)
}

/// The identity file: key, leaf, then the leaf's intermediates.
pub fn identity_pem(key: &KeyPair, leaf: &[u8], chain: &[Vec<u8>]) -> String {
    let mut pem = format!("{}{}", key.to_pem(), der_to_pem_cert(leaf));
    for c in chain {
        pem.push_str(&der_to_pem_cert(c));
    }
    pem
}

/// The intermediates after the leaf in the identity file (none for a root-issued leaf).
pub fn load_chain(paths: &AgentPaths) -> Vec<Vec<u8>> {
    std::fs::read_to_string(paths.identity())
        .ok()
        .and_then(|t| honeybee_pki::files::pem_to_der_certs(&t).ok())
        .map(|v| v.iter().skip(1).map(|c| c.to_vec()).collect())
        .unwrap_or_default()
}

/// Reads the CA certificate and the node identity (certificate + key) from disk.
pub fn load_identity(paths: &AgentPaths) -> Result<(Vec<u8>, Vec<u8>, KeyPair), String> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    let ca = honeybee_pki::files::pem_to_der_certs(&read(&paths.ca_cert())?)
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or("pki/ca.crt holds no certificate")?;
    let ident = read(&paths.identity())?;
    let cert = honeybee_pki::files::pem_to_der_certs(&ident)
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or("pki/node.pem holds no certificate")?;
    let key = KeyPair::from_pem(&ident).map_err(|e| format!("pki/node.pem: {e}"))?;
    Ok((ca.as_ref().to_vec(), cert.as_ref().to_vec(), key))
}
