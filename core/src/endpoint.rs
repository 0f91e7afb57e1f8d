//! The QUIC endpoint: one UDP port, every ALPN, and the router that hands each accepted
//! connection to the handler for its ALPN after checking the peer's role. The same loop
//! and router serve the relayed endpoint (nodes behind relays, see `relay/`).

use crate::server::Shared;
use honeybee_pki::identity::{PeerIdentity, peer_identity};
use honeybee_proto::stream::close;
use honeybee_proto::timing::Timing;
use honeybee_proto::{Role, alpn};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Handshakes in flight above which unvalidated addresses must first answer a Retry.
const RETRY_ABOVE_HANDSHAKES: usize = 256;

/// Transport settings shared by the core and its clients, on production timing.
pub fn transport_config(max_uni_streams: u32) -> quinn::TransportConfig {
    transport_config_with(&Timing::default(), max_uni_streams)
}

/// Transport settings with the keep-alive and idle timeout of `timing`.
pub fn transport_config_with(timing: &Timing, max_uni_streams: u32) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(timing.keep_alive));
    // An idle timeout past QUIC's VarInt range (2^62 ms) means "never".
    t.max_idle_timeout(timing.idle_timeout.try_into().ok());
    t.max_concurrent_uni_streams(max_uni_streams.into());
    t.max_concurrent_bidi_streams(16u32.into());
    t
}

/// Connection-level receive window of a connection whose ALPN and peer are not checked
/// yet, and of every enrolment connection: room for one enrolment request
/// ([`FrameLimit::ENROLL`](honeybee_proto::codec::FrameLimit::ENROLL)) and its length.
pub const UNAUTHENTICATED_RECEIVE_WINDOW: u32 = 64 * 1024;

/// What a connection may open and buffer once its ALPN (and, for mTLS ALPNs, its peer's
/// role) has been checked. Every connection starts with the enrolment limits; these are
/// raised by [`apply_limits`] only for the ALPN that needs more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlpnLimits {
    pub bidi_streams: u32,
    pub uni_streams: u32,
    /// Connection-level flow-control window: the most unread bytes the peer may have in
    /// flight across all its streams.
    pub receive_window: u32,
}

impl AlpnLimits {
    /// `honeybee-enroll/1`: one request on one bidirectional stream, nothing else.
    pub const ENROLL: AlpnLimits = AlpnLimits {
        bidi_streams: 1,
        uni_streams: 0,
        receive_window: UNAUTHENTICATED_RECEIVE_WINDOW,
    };
    /// `honeybee-admin/1`: one bidirectional stream per request (the dashboard may have
    /// a few in flight); no unidirectional streams.
    pub const ADMIN: AlpnLimits = AlpnLimits {
        bidi_streams: 16,
        uni_streams: 0,
        receive_window: 4 * 1024 * 1024,
    };
    /// `honeybee-module/1`: the module's one session stream.
    pub const MODULE: AlpnLimits = AlpnLimits {
        bidi_streams: 1,
        uni_streams: 0,
        receive_window: 2 * 1024 * 1024,
    };

    /// `honeybee/1`: the control stream, and `max_uni_streams` telemetry and capture
    /// streams at once (a relay raises its bidirectional streams itself, one per flow).
    pub fn node(max_uni_streams: u32) -> AlpnLimits {
        AlpnLimits {
            bidi_streams: 1,
            uni_streams: max_uni_streams,
            receive_window: 16 * 1024 * 1024,
        }
    }
}

/// Raises (or lowers) a connection's stream limits and receive window to `limits`.
pub fn apply_limits(conn: &quinn::Connection, limits: AlpnLimits) {
    conn.set_max_concurrent_bi_streams(limits.bidi_streams.into());
    conn.set_max_concurrent_uni_streams(limits.uni_streams.into());
    conn.set_receive_window(limits.receive_window.into());
}

/// The server's transport settings: those of an unauthenticated connection (the
/// enrolment limits, no QUIC datagrams). ALPN is known only after the handshake, so every
/// connection starts this small and [`route`] raises what an authenticated ALPN needs.
pub fn server_transport_config() -> quinn::TransportConfig {
    server_transport_config_with(&Timing::default())
}

/// [`server_transport_config`] on the given timing.
pub fn server_transport_config_with(timing: &Timing) -> quinn::TransportConfig {
    let mut t = transport_config_with(timing, AlpnLimits::ENROLL.uni_streams);
    t.max_concurrent_bidi_streams(AlpnLimits::ENROLL.bidi_streams.into());
    t.receive_window(AlpnLimits::ENROLL.receive_window.into());
    // Nothing in the protocol uses QUIC datagrams; quinn would otherwise buffer 1.25 MB
    // of them per connection for a reader that never comes.
    t.datagram_receive_buffer_size(None);
    t.keep_alive_interval(Some(server_keep_alive(timing)));
    t
}

/// The server's keep-alive: half the idle timeout, longer than the clients' own
/// (`Timing::keep_alive`). quinn restarts the keep-alive timer on every packet received,
/// so a client that pings, or an agent that reports its health every 10 s, is never
/// pinged by the core: at the clients' interval both ends pinged every idle connection,
/// a packet and its acknowledgement each way for nothing, 1,000 a second at 10,000
/// agents. A client that stays silent is still pinged well within the idle timeout.
pub fn server_keep_alive(timing: &Timing) -> Duration {
    (timing.idle_timeout / 2).max(timing.keep_alive)
}

/// Builds the server side of the endpoint from the core's rustls configuration.
/// `_max_uni_streams` is kept for callers that build bare endpoints; the core's own limits
/// per ALPN are [`AlpnLimits`], applied after the handshake.
pub fn server_config(
    tls: rustls::ServerConfig,
    _max_uni_streams: u32,
) -> Result<quinn::ServerConfig, String> {
    server_config_with(tls, &Timing::default())
}

/// [`server_config`] on the given timing (the core's `cfg.timing`).
pub fn server_config_with(
    tls: rustls::ServerConfig,
    timing: &Timing,
) -> Result<quinn::ServerConfig, String> {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| format!("TLS configuration unusable for QUIC: {e}"))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    cfg.transport_config(Arc::new(server_transport_config_with(timing)));
    cfg.migration(true);
    Ok(cfg)
}

/// Accepts connections until the endpoint closes. `relayed`: the endpoint is the one
/// behind relay flows, whose peers' paths are looked up in the relay hub.
pub async fn accept_loop(endpoint: quinn::Endpoint, shared: Arc<Shared>, relayed: bool) {
    while let Some(incoming) = endpoint.accept().await {
        let live = shared.connections.load(Ordering::Relaxed);
        if live >= shared.cfg.max_connections as usize {
            tracing::warn!(remote = %incoming.remote_address(), live, "connection refused: at max_connections");
            shared.metrics.connection_refused();
            incoming.refuse();
            continue;
        }
        let handshaking = shared.handshaking.load(Ordering::Relaxed);
        if handshaking > RETRY_ABOVE_HANDSHAKES && !incoming.remote_address_validated() {
            // Under a burst, make unvalidated sources prove their address first so
            // spoofed Initials cost us one packet, not a handshake.
            let _ = incoming.retry();
            continue;
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            shared.handshaking.fetch_add(1, Ordering::Relaxed);
            let remote = incoming.remote_address();
            let conn = match tokio::time::timeout(Duration::from_secs(10), incoming).await {
                Ok(Ok(c)) => Some(c),
                Ok(Err(e)) => {
                    tracing::info!(%remote, error = %e, "handshake failed");
                    shared.metrics.handshake_failed("error");
                    None
                }
                Err(_) => {
                    tracing::info!(%remote, "handshake timed out");
                    shared.metrics.handshake_failed("timeout");
                    None
                }
            };
            shared.handshaking.fetch_sub(1, Ordering::Relaxed);
            if let Some(conn) = conn {
                shared.metrics.handshake_done();
                shared.connections.fetch_add(1, Ordering::Relaxed);
                route(conn, &shared, relayed).await;
                shared.connections.fetch_sub(1, Ordering::Relaxed);
            }
        });
    }
}

/// The ALPN the peer negotiated.
fn negotiated_alpn(conn: &quinn::Connection) -> Option<Vec<u8>> {
    conn.handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .protocol
}

/// The verified identity of the peer's client certificate, if it sent one.
fn client_identity(conn: &quinn::Connection) -> Option<PeerIdentity> {
    let certs = conn
        .peer_identity()?
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    peer_identity(certs.first()?.as_ref()).ok()
}

async fn route(conn: quinn::Connection, shared: &Arc<Shared>, relayed: bool) {
    let remote = conn.remote_address();
    let via = if relayed {
        match shared.relays.attach(remote, &conn) {
            Some(path) => Some(path),
            None => {
                conn.close(close::NORMAL.into(), b"relay path closed");
                return;
            }
        }
    } else {
        None
    };
    let Some(alpn) = negotiated_alpn(&conn) else {
        conn.close(close::PROTOCOL.into(), b"no ALPN");
        return;
    };
    if alpn == alpn::ENROLL {
        crate::enroll::handle(conn, shared, via).await;
        return;
    }
    // Every other ALPN is mutual TLS: the chain was verified by rustls; authorisation
    // comes from the SAN alone, here.
    let Some(peer) = client_identity(&conn) else {
        tracing::info!(%remote, "refused: no client certificate on an mTLS ALPN");
        conn.close(close::FORBIDDEN.into(), b"client certificate required");
        return;
    };
    if peer.spiffe.trust_domain != shared.cfg.trust_domain {
        conn.close(close::FORBIDDEN.into(), b"wrong trust domain");
        return;
    }
    let role = peer.spiffe.role;
    let allowed: &[Role] = if via.is_some() {
        // Behind a relay only agents: no relay of relays, and admins and modules talk to
        // the core directly.
        if alpn == alpn::NODE {
            &[Role::Agent]
        } else {
            &[]
        }
    } else if alpn == alpn::NODE {
        &[Role::Agent, Role::Relay]
    } else if alpn == alpn::ADMIN {
        // The dashboard backend is an operators' console: the admin API, audited as itself.
        &[Role::Admin, Role::Dashboard]
    } else if alpn == alpn::MODULE {
        &[Role::Module, Role::Dashboard]
    } else {
        &[]
    };
    if !allowed.contains(&role) {
        let relay = via.as_ref().map(|v| v.relay.as_str()).unwrap_or("");
        tracing::warn!(%remote, peer = %peer.spiffe, alpn = %String::from_utf8_lossy(&alpn), relay, "refused: role not allowed on this ALPN");
        let (outcome, why): (&str, &[u8]) = match &via {
            Some(_) => (
                "forbidden role through a relay",
                b"role not allowed through a relay",
            ),
            None => ("forbidden role for ALPN", b"role not allowed on this ALPN"),
        };
        let detail = match &via {
            Some(v) => format!("{} via relay {}", String::from_utf8_lossy(&alpn), v.relay),
            None => String::from_utf8_lossy(&alpn).into_owned(),
        };
        shared.audit(
            &format!("{}:{}", role, peer.spiffe.id),
            "connect",
            outcome,
            Some(via.as_ref().map_or(remote, |v| v.downstream).to_string()),
            &detail,
        );
        conn.close(close::FORBIDDEN.into(), why);
        return;
    }
    let limits = if alpn == alpn::NODE {
        AlpnLimits::node(shared.cfg.max_streams_per_node)
    } else if alpn == alpn::MODULE {
        AlpnLimits::MODULE
    } else {
        AlpnLimits::ADMIN
    };
    apply_limits(&conn, limits);
    if alpn == alpn::NODE {
        crate::node::handle(conn, peer, shared, via).await;
    } else if alpn == alpn::MODULE {
        crate::modules::quic::handle(conn, peer, shared).await;
    } else {
        crate::admin::handle(conn, peer, shared).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_pings_only_clients_that_stay_silent() {
        for f in [1, 10, 30, 1000] {
            let t = Timing::compressed(f);
            let k = server_keep_alive(&t);
            // Later than any client's own keep-alive and health report (so those reset
            // it), and early enough to keep a silent client's connection open.
            assert!(k > t.keep_alive || k == t.idle_timeout, "factor {f}: {k:?}");
            assert!(k <= t.idle_timeout, "factor {f}");
        }
        assert_eq!(
            server_keep_alive(&Timing::default()),
            Duration::from_secs(15)
        );
    }
}
