//! The enrolment handler (`honeybee-enroll/1`): a one-time token and a CSR in, a
//! certificate out. Server authentication only; failures are rate limited per source.
//! Through a relay, the token must name that relay (label `relay=<id>`); a token's relay
//! label becomes the node's relay assignment either way.
//!
//! A token for role `core` (`honeybee core join-token`) is a join token: the CSR is the
//! joining core's intermediate CA key and the answer its intermediate certificate, signed
//! by the root (only a core holding the root signs one; see `join.rs`).

use crate::audit::{MAX_PEER_TEXT_CHARS, peer_text};
use crate::frame_io::{read_frame_within, write_frame};
use crate::relay::FlowPath;
use crate::server::Shared;
use crate::store::{NodeRecord, TokenRefusal};
use honeybee_pki::ca::IssueRequest;
use honeybee_pki::token::hash_secret;
use honeybee_proto::codec::FrameLimit;
use honeybee_proto::enroll::{EnrollRefusal, EnrollRequest, EnrollResponse, Enrolled};
use honeybee_proto::stream::close;
use honeybee_proto::{NodeId, Role, WIRE_VERSION};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an enrolling peer has to send its request.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// `via`: the relay flow this enrolment came through, if it did.
pub async fn handle(conn: quinn::Connection, shared: &Arc<Shared>, via: Option<FlowPath>) {
    // Behind a relay, limits and the audit use the node's own LAN address.
    let remote = via.as_ref().map_or(conn.remote_address(), |v| v.downstream);
    let (mut send, mut recv) = match tokio::time::timeout(REQUEST_DEADLINE, conn.accept_bi()).await
    {
        Ok(Ok(s)) => s,
        _ => {
            conn.close(close::PROTOCOL.into(), b"expected an enrolment request");
            return;
        }
    };
    // One request per connection: no further stream is ever granted.
    conn.set_max_concurrent_bi_streams(0u32.into());
    let req: EnrollRequest =
        match read_frame_within(&mut recv, FrameLimit::ENROLL, REQUEST_DEADLINE).await {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(%remote, error = %e, "malformed enrolment request");
                shared.enroll_limiter.failed(remote.ip(), Instant::now());
                conn.close(close::PROTOCOL.into(), b"malformed enrolment request");
                return;
            }
        };
    let relay = via.as_ref().map(|v| &v.relay);
    let response = match enroll(&req, remote, relay, shared).await {
        Ok(e) => EnrollResponse::Enrolled(e),
        Err(r) => EnrollResponse::Refused(r),
    };
    if write_frame(&mut send, &response, FrameLimit::ENROLL)
        .await
        .is_ok()
    {
        let _ = send.finish();
    }
    // Let the client read the answer and close; don't wait on a silent peer.
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
}

/// The relay a token assigns its nodes to: its `relay` label.
pub fn token_relay(labels: &[(String, String)]) -> Option<&str> {
    labels
        .iter()
        .find(|(k, _)| k == RELAY_LABEL)
        .map(|(_, v)| v.as_str())
}

/// The token label that names the relay a node is assigned to.
pub const RELAY_LABEL: &str = "relay";

async fn enroll(
    req: &EnrollRequest,
    remote: std::net::SocketAddr,
    relay: Option<&NodeId>,
    shared: &Arc<Shared>,
) -> Result<Enrolled, EnrollRefusal> {
    let actor = format!("token:{}", req.token_id);
    let source = Some(remote.to_string());
    // Anyone who reaches the port gets here: refusals are aggregated per source, reason
    // and window, and the hostname (up to a frame of any text) is clamped and escaped.
    let refuse = |r: EnrollRefusal| {
        shared.audit_refusal(
            remote.ip(),
            refusal_name(&r),
            &actor,
            &peer_text(&format!("refused: {r}"), 512),
            || format!("host={}", peer_text(&req.hostname, MAX_PEER_TEXT_CHARS)),
        );
        r
    };
    if !shared.enroll_limiter.allowed(remote.ip(), Instant::now()) {
        return Err(refuse(EnrollRefusal::RateLimited));
    }
    if req.wire_version != WIRE_VERSION {
        return Err(refuse(EnrollRefusal::BadRequest(format!(
            "wire version {} is not supported (core speaks {WIRE_VERSION})",
            req.wire_version
        ))));
    }
    // Through a relay, the token must name that relay, checked before the token is
    // consumed so a node pointed at the wrong relay does not burn its token.
    if let Some(relay) = relay {
        let named = match shared.store.list_tokens().await {
            Ok(tokens) => tokens
                .into_iter()
                .find(|t| t.id == req.token_id)
                .and_then(|t| token_relay(&t.labels).map(str::to_owned)),
            Err(e) => {
                tracing::error!(error = %e, "token lookup failed");
                return Err(refuse(EnrollRefusal::Internal));
            }
        };
        if named.as_deref() != Some(relay.as_str()) {
            return Err(refuse(EnrollRefusal::RelayNotAllowed(relay.to_string())));
        }
    }
    // A joined core cannot sign core CAs: say so before the token is consumed, so the
    // operator can still present it to the root core.
    if !shared.ca.is_root() {
        match shared.store.list_tokens().await {
            Ok(tokens)
                if tokens
                    .iter()
                    .any(|t| t.id == req.token_id && t.role == Role::Core) =>
            {
                return Err(refuse(EnrollRefusal::BadRequest(NOT_ROOT.into())));
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "token lookup failed");
                return Err(refuse(EnrollRefusal::Internal));
            }
        }
    }
    let now = crate::now_ms();
    let token = match shared
        .store
        .consume_token(req.token_id, hash_secret(&req.secret), now)
        .await
    {
        Ok(Ok(t)) => t,
        Ok(Err(refusal)) => {
            let r = match refusal {
                TokenRefusal::Unknown => EnrollRefusal::UnknownToken,
                TokenRefusal::BadSecret => EnrollRefusal::BadSecret,
                TokenRefusal::Revoked => EnrollRefusal::Revoked,
                TokenRefusal::Expired => EnrollRefusal::Expired,
                TokenRefusal::UsedUp => EnrollRefusal::UsedUp,
            };
            if matches!(r, EnrollRefusal::UnknownToken | EnrollRefusal::BadSecret) {
                shared.enroll_limiter.failed(remote.ip(), Instant::now());
            }
            return Err(refuse(r));
        }
        Err(e) => {
            tracing::error!(error = %e, "token lookup failed");
            return Err(refuse(EnrollRefusal::Internal));
        }
    };

    if token.role == Role::Core {
        return join_core(req, &token, relay, shared, now, &refuse).await;
    }
    // Again from the consumed record, which is authoritative.
    let assigned = match token_relay(&token.labels).map(NodeId::new) {
        Some(Ok(r)) => Some(r),
        Some(Err(_)) => return Err(refuse(EnrollRefusal::BadRequest("bad relay label".into()))),
        None => None,
    };
    if relay.is_some() && assigned.as_ref() != relay {
        return Err(refuse(EnrollRefusal::RelayNotAllowed(
            relay.map(|r| r.to_string()).unwrap_or_default(),
        )));
    }
    let node_id = pick_node_id(shared, &token.name, token.uses_total).await?;
    let issued = shared
        .ca
        .sign_csr(
            &req.csr_der,
            &IssueRequest {
                role: token.role,
                id: node_id.clone(),
                lifetime: shared.cfg.agent_cert_lifetime,
            },
        )
        .map_err(|e| refuse(EnrollRefusal::BadCsr(e.to_string())))?;

    let hostname = honeybee_proto::event::clamp(&req.hostname, 255);
    let shown_host = peer_text(&hostname, MAX_PEER_TEXT_CHARS);
    let record = NodeRecord {
        id: node_id.clone(),
        name: if hostname.is_empty() {
            token.name.clone()
        } else {
            hostname.clone()
        },
        role: token.role,
        labels: token.labels.clone(),
        serial: issued.serial,
        cert_not_after_ms: issued.not_after_ms,
        first_seen_ms: now,
        last_seen_ms: now,
        addr: Some(remote.to_string()),
        online: false,
        revoked: false,
        health: None,
        config: shared.cfg.default_node_config.clone(),
        via_relay: assigned,
    };
    let stored = async {
        shared.store.upsert_node(record).await?;
        shared
            .store
            .record_cert(
                issued.serial,
                &node_id,
                token.role,
                now,
                issued.not_after_ms,
            )
            .await
    }
    .await;
    if let Err(e) = stored {
        tracing::error!(error = %e, "could not record enrolled node");
        return Err(refuse(EnrollRefusal::Internal));
    }
    shared.audit(
        &actor,
        "enroll",
        "ok",
        source.clone(),
        &format!(
            "node={node_id} role={} serial={} host={shown_host}{}",
            token.role,
            issued.serial,
            relay.map(|r| format!(" via relay {r}")).unwrap_or_default()
        ),
    );
    Ok(Enrolled {
        node_id,
        role: token.role,
        cert_der: issued.der,
        ca_der: shared.ca.cert_der().to_vec(),
        not_after_ms: issued.not_after_ms,
    })
}

const NOT_ROOT: &str = "this core holds an intermediate CA; present the join token to \
                        the core that holds the deployment's root CA";

/// A join token's answer: the joining core's intermediate CA, signed by the root. The
/// core is not a node (no node record); its CA's serial is recorded so that the denylist
/// can revoke it, which cuts off every certificate it issued.
async fn join_core(
    req: &EnrollRequest,
    token: &crate::store::TokenRecord,
    relay: Option<&NodeId>,
    shared: &Arc<Shared>,
    now: i64,
    refuse: &impl Fn(EnrollRefusal) -> EnrollRefusal,
) -> Result<Enrolled, EnrollRefusal> {
    if relay.is_some() {
        return Err(refuse(EnrollRefusal::BadRequest(
            "a core joins directly, not through a relay".into(),
        )));
    }
    if !shared.ca.is_root() {
        return Err(refuse(EnrollRefusal::BadRequest(NOT_ROOT.into())));
    }
    let id =
        NodeId::new(&token.name).map_err(|e| refuse(EnrollRefusal::BadRequest(e.to_string())))?;
    let issued = shared
        .ca
        .sign_intermediate_csr(&req.csr_der, &id, honeybee_pki::ca::INTERMEDIATE_LIFETIME)
        .map_err(|e| refuse(EnrollRefusal::BadCsr(e.to_string())))?;
    if let Err(e) = shared
        .store
        .record_cert(issued.serial, &id, Role::Core, now, issued.not_after_ms)
        .await
    {
        tracing::error!(error = %e, "could not record the joined core's CA");
        return Err(refuse(EnrollRefusal::Internal));
    }
    shared.audit(
        &format!("token:{}", req.token_id),
        "core.join",
        "ok",
        None,
        &format!(
            "core={id} intermediate serial={} host={}",
            issued.serial,
            peer_text(&req.hostname, MAX_PEER_TEXT_CHARS)
        ),
    );
    Ok(Enrolled {
        node_id: id,
        role: Role::Core,
        cert_der: issued.der,
        ca_der: shared.ca.cert_der().to_vec(),
        not_after_ms: issued.not_after_ms,
    })
}

/// A short stable name per refusal kind: what the audit digest aggregates on.
fn refusal_name(r: &EnrollRefusal) -> &'static str {
    match r {
        EnrollRefusal::UnknownToken => "unknown_token",
        EnrollRefusal::BadSecret => "bad_secret",
        EnrollRefusal::Expired => "expired",
        EnrollRefusal::UsedUp => "used_up",
        EnrollRefusal::Revoked => "revoked",
        EnrollRefusal::RateLimited => "rate_limited",
        EnrollRefusal::BadCsr(_) => "bad_csr",
        EnrollRefusal::BadRequest(_) => "bad_request",
        EnrollRefusal::Internal => "internal",
        EnrollRefusal::RelayNotAllowed(_) => "relay_not_allowed",
        _ => "other",
    }
}

/// The token's name for a single-use token whose name is free; otherwise the name with
/// a random suffix, so multi-use tokens give every node its own id.
async fn pick_node_id(
    shared: &Shared,
    name: &str,
    uses_total: u32,
) -> Result<NodeId, EnrollRefusal> {
    let base = NodeId::new(name).map_err(|e| EnrollRefusal::BadRequest(e.to_string()))?;
    if uses_total == 1 && matches!(shared.store.get_node(&base).await, Ok(None)) {
        return Ok(base);
    }
    for _ in 0..8 {
        let stem: String = name.chars().take(NodeId::MAX_LEN - 7).collect();
        let candidate = NodeId::new(format!("{stem}-{:06x}", rand::random::<u32>() & 0xff_ffff))
            .map_err(|e| EnrollRefusal::BadRequest(e.to_string()))?;
        if matches!(shared.store.get_node(&candidate).await, Ok(None)) {
            return Ok(candidate);
        }
    }
    Err(EnrollRefusal::Internal)
}
