//! `honeybee core join`: a second core joins a deployment with a one-time join token.
//!
//! The joining core makes an intermediate CA key here, checks the root core against the
//! root's pin in the token (before anything is sent), and sends only a CSR over
//! `honeybee-enroll/1`; the root core consumes the token (role `core`, single use, at
//! most 15 minutes) and answers with the intermediate certificate (pathlen 0) and the
//! root certificate. The root key never leaves the root core, and the database password
//! comes from the operator (`--store`), never from the token. See SECURITY.md.

use crate::config::RawStore;
use crate::frame_io::{read_frame, write_frame};
use crate::init::{InitError, InitOptions, InitReport, Joined};
use honeybee_pki::ca::Ca;
use honeybee_pki::token::Token;
use honeybee_pki::{KeyPair, make_csr};
use honeybee_proto::codec::FrameLimit;
use honeybee_proto::enroll::{EnrollRefusal, EnrollRequest, EnrollResponse};
use honeybee_proto::{Role, WIRE_VERSION, alpn};
use rustls::pki_types::CertificateDer;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// Longest a join token may live (15 minutes).
pub const MAX_TOKEN_TTL_S: u64 = 900;

/// The core's TLS chain: its leaf, its intermediate if it joined, then the root (sent so
/// enrolling nodes can check it against their token's pin).
pub fn server_chain(leaf: CertificateDer<'static>, ca: &Ca) -> Vec<CertificateDer<'static>> {
    let mut chain = vec![leaf];
    chain.extend(
        ca.chain_der()
            .iter()
            .map(|c| CertificateDer::from(c.clone())),
    );
    chain.push(CertificateDer::from(ca.cert_der().to_vec()));
    chain
}

/// Why `core join` failed. The messages are for the operator who ran it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    #[error("not a usable join token: {0}")]
    Token(String),
    #[error(
        "the core at {addr} does not hold the root CA pinned in the join token: possible \
         interception (man in the middle), or a token from another deployment. Nothing was sent."
    )]
    PinMismatch { addr: SocketAddr },
    #[error("cannot reach the core at {addr}: {why}")]
    Unreachable { addr: String, why: String },
    #[error("the core refused the join: {0}")]
    Refused(EnrollRefusal),
    #[error("the core's answer is not a core CA: {0}")]
    BadAnswer(String),
    #[error(transparent)]
    Init(#[from] InitError),
}

/// Joins the deployment named in `token`, writing a new core's data directory.
/// `opts.trust_domain` is ignored: it is taken from the root certificate.
pub async fn join(
    token: &str,
    data_dir: &Path,
    opts: InitOptions,
    store: RawStore,
) -> Result<InitReport, JoinError> {
    honeybee_pki::install_crypto_provider();
    let token = Token::decode(token).map_err(|e| JoinError::Token(e.to_string()))?;
    if crate::init::CorePaths::new(data_dir).is_initialised() {
        return Err(InitError::AlreadyInitialised(data_dir.to_owned()).into());
    }
    let other = |e: &dyn std::fmt::Display| JoinError::BadAnswer(e.to_string());
    let unreachable = |why: String| JoinError::Unreachable {
        addr: token.core_addr.clone(),
        why,
    };
    if token.core_addr.starts_with("srv:") {
        return Err(unreachable(
            "join tokens need a host:port (the core's advertise address), not srv:".into(),
        ));
    }
    let addr = tokio::net::lookup_host(&token.core_addr)
        .await
        .map_err(|e| unreachable(e.to_string()))?
        .next()
        .ok_or_else(|| unreachable("the name has no address".into()))?;

    // The intermediate's key is made here and never leaves this machine.
    let key = KeyPair::generate().map_err(|e| other(&e))?;
    let request = EnrollRequest {
        wire_version: WIRE_VERSION,
        token_id: token.id,
        secret: token.secret,
        csr_der: make_csr(&key).map_err(|e| other(&e))?,
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default(),
    };
    let tls = honeybee_pki::tls::enroll_client_config(token.ca_pin, alpn::ENROLL)
        .map_err(|e| other(&e))?;
    let endpoint = crate::admin_client::client_endpoint(tls, addr).map_err(unreachable)?;
    let connecting = endpoint
        .connect(addr, "honeybee-core")
        .map_err(|e| unreachable(e.to_string()))?;
    let conn = match tokio::time::timeout(Duration::from_secs(10), connecting).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            let text = e.to_string();
            return Err(if honeybee_pki::tls::is_pin_mismatch(&text) {
                JoinError::PinMismatch { addr }
            } else {
                unreachable(text)
            });
        }
        Err(_) => return Err(unreachable("no answer within 10 s".into())),
    };
    let response: Result<EnrollResponse, String> = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        write_frame(&mut send, &request, FrameLimit::ENROLL)
            .await
            .map_err(|e| e.to_string())?;
        let _ = send.finish();
        tokio::time::timeout(
            Duration::from_secs(15),
            read_frame(&mut recv, FrameLimit::ENROLL),
        )
        .await
        .map_err(|_| "the core did not answer within 15 s".to_owned())?
        .map_err(|e| e.to_string())
    }
    .await;
    conn.close(0u32.into(), b"joined");
    let _ = tokio::time::timeout(Duration::from_millis(50), endpoint.wait_idle()).await;
    let enrolled = match response.map_err(unreachable)? {
        EnrollResponse::Enrolled(e) => e,
        EnrollResponse::Refused(r) => return Err(JoinError::Refused(r)),
        _ => return Err(other(&"an answer this version does not understand")),
    };
    if enrolled.role != Role::Core {
        return Err(other(&format!(
            "the token was for role {}, not a core (use `honeybee core join-token`)",
            enrolled.role
        )));
    }
    // The root sent in the answer must be the one pinned (the handshake checked the one
    // the core presented; this is the one written to disk).
    if honeybee_pki::identity::spki_pin(&enrolled.ca_der).ok() != Some(token.ca_pin) {
        return Err(JoinError::PinMismatch { addr });
    }
    let trust_domain = honeybee_pki::identity::trust_domain_from_ca_cert(&enrolled.ca_der)
        .map_err(|e| other(&e))?;
    let opts = InitOptions {
        trust_domain,
        ..opts
    };
    let joined = Joined {
        root_der: enrolled.ca_der,
        intermediate_der: enrolled.cert_der,
        key,
    };
    Ok(crate::init::init_joined(data_dir, &opts, store, joined)?)
}
