//! The live side: the WebSocket (`/api/ws`) and the feeds behind it. Events come from the
//! core as they are stored, over the module protocol (`honeybee-module/1`, the dashboard's
//! certificate, a subscription with an empty filter); node changes and alerts come from
//! polling the admin API every second, which also records each node's health history.

use crate::auth::{self, Authed};
use crate::error::ApiError;
use crate::state::{AppState, HealthSample};
use crate::views;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use honeybee_proto::admin::{AdminRequest, AdminResponse, NodeInfo};
use honeybee_proto::module::{
    EventFilter, MAX_MODULE_FRAME, MODULE_PROTOCOL, ModuleMessage, ModuleRequest, decode_json,
    encode_json,
};
use honeybee_proto::{Role, alpn};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// How often the core is asked for nodes and alerts.
const POLL: Duration = Duration::from_secs(1);
/// How often a WebSocket re-checks that its session is still valid.
const SESSION_RECHECK: Duration = Duration::from_secs(15);

/// `Origin` (when a browser sends one) must name the host the request came to.
fn origin_ok(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(Ok(host))) = (
        origin.to_str(),
        headers.get(header::HOST).map(|h| h.to_str()),
    ) else {
        return false;
    };
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or("");
    origin_host.eq_ignore_ascii_case(host)
}

pub async fn ws(
    State(app): State<AppState>,
    a: Authed,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    if !origin_ok(&headers) {
        return Err(ApiError::forbidden(
            "WebSocket Origin does not match this dashboard's address",
        ));
    }
    Ok(upgrade
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| serve_socket(app, a, socket)))
}

async fn serve_socket(app: AppState, a: Authed, mut socket: WebSocket) {
    let mut rx = app.live.subscribe();
    let mut recheck = tokio::time::interval(SESSION_RECHECK);
    recheck.tick().await;
    tracing::debug!(user = %a.user(), "websocket opened");
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let text = match msg {
                    Ok(t) => t.to_string(),
                    Err(RecvError::Lagged(n)) => json!({"type": "lagged", "missed": n}).to_string(),
                    Err(RecvError::Closed) => break,
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                // Pings are answered by the library; anything else is ignored.
                Some(Ok(_)) => {}
            },
            _ = recheck.tick() => {
                if !matches!(auth::lookup(&app, a.token.clone()).await, Ok(Some(_))) {
                    break;
                }
            }
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

/// Starts the feeds; they run until the returned handles are aborted.
pub fn spawn_feeds(app: AppState) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(event_feed(app.clone())),
        tokio::spawn(poll_feed(app)),
    ]
}

async fn event_feed(app: AppState) {
    let mut backoff = Duration::from_millis(250);
    loop {
        match stream_events(&app).await {
            Ok(()) => backoff = Duration::from_millis(250),
            Err(e) => {
                tracing::warn!(error = %e, "live event stream from the core interrupted");
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

async fn write_msg(send: &mut quinn::SendStream, req: &ModuleRequest) -> Result<(), String> {
    let frame = encode_json(req).map_err(|e| e.to_string())?;
    send.write_all(&frame).await.map_err(|e| e.to_string())
}

async fn read_msg(recv: &mut quinn::RecvStream) -> Result<ModuleMessage, String> {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len).await.map_err(|e| e.to_string())?;
    let len = u32::from_be_bytes(len);
    if len > MAX_MODULE_FRAME {
        return Err(format!("frame of {len} bytes from the core"));
    }
    let mut body = vec![0u8; len as usize];
    recv.read_exact(&mut body)
        .await
        .map_err(|e| e.to_string())?;
    decode_json(&body).map_err(|e| e.to_string())
}

/// One connection's worth of live events; returns when it ends.
async fn stream_events(app: &AppState) -> Result<(), String> {
    let addr = app.core.core_addr().map_err(|e| e.to_string())?;
    let (ca, chain, key) = app.core.tls_identity();
    let tls = honeybee_pki::tls::client_config(
        &ca,
        chain,
        key.private_key_der(),
        Role::Core,
        alpn::MODULE,
    )
    .map_err(|e| e.to_string())?;
    let endpoint = honeybee_core::admin_client::client_endpoint(tls, addr)?;
    let conn = tokio::time::timeout(
        Duration::from_secs(5),
        endpoint
            .connect(addr, "honeybee-core")
            .map_err(|e| e.to_string())?,
    )
    .await
    .map_err(|_| "no answer within 5 s".to_string())?
    .map_err(|e| e.to_string())?;
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    write_msg(
        &mut send,
        &ModuleRequest::Hello {
            name: "dashboard".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            protocol: MODULE_PROTOCOL,
            credential: None,
            permissions: vec!["events:read".into()],
        },
    )
    .await?;
    match read_msg(&mut recv).await? {
        ModuleMessage::Welcome { .. } => {}
        other => return Err(format!("expected welcome, got {other:?}")),
    }
    write_msg(
        &mut send,
        &ModuleRequest::Subscribe {
            id: 1,
            filter: EventFilter::default(),
        },
    )
    .await?;
    tracing::info!(core = %addr, "live event stream from the core open");
    loop {
        match read_msg(&mut recv).await? {
            ModuleMessage::Event { event, .. } => {
                app.broadcast(&json!({"type": "event", "event": views::with_time_ms(event)}));
            }
            ModuleMessage::Missed { count } => {
                tracing::warn!(count, "the core dropped live events for the dashboard");
            }
            ModuleMessage::Error {
                id: None, message, ..
            } => return Err(message),
            _ => {}
        }
    }
}

fn sample(n: &NodeInfo) -> Option<HealthSample> {
    let h = n.health.as_ref()?;
    Some(HealthSample {
        time_ms: n.last_seen_ms,
        cpu_percent: h.cpu_percent,
        rss_bytes: h.rss_bytes,
        spool_events: h.spool_depth,
        spool_dropped: h.spool_dropped,
        active_sessions: h
            .services
            .iter()
            .map(|s| u64::from(s.active_sessions))
            .sum(),
        uptime_s: h.uptime_s,
    })
}

async fn poll_feed(app: AppState) {
    let mut known: HashMap<String, Value> = HashMap::new();
    let mut newest_alert: Option<i64> = None;
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match app.core.request(None, AdminRequest::ListNodes).await {
            Ok(AdminResponse::Nodes(nodes)) => {
                for n in &nodes {
                    let v = views::node(n);
                    let id = n.id.as_str();
                    if known.get(id) != Some(&v) {
                        if let Some(s) = sample(n) {
                            app.record_health(id, s);
                        }
                        app.broadcast(&json!({"type": "node", "node": v}));
                        known.insert(id.to_owned(), v);
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "polling nodes failed");
                continue;
            }
        }
        if let Ok(AdminResponse::Alerts(alerts)) = app
            .core
            .request(None, AdminRequest::ListAlerts { limit: 50 })
            .await
        {
            let max = alerts.iter().map(|a| a.id).max();
            if let Some(seen) = newest_alert {
                let mut fresh: Vec<_> = alerts.iter().filter(|a| a.id > seen).collect();
                fresh.sort_by_key(|a| a.id);
                for a in fresh {
                    app.broadcast(&json!({"type": "alert", "alert": views::alert(a)}));
                }
            }
            newest_alert = newest_alert.max(max).or(Some(0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    #[test]
    fn origin_must_match_host() {
        assert!(origin_ok(&h(&[("host", "127.0.0.1:8080")])));
        assert!(origin_ok(&h(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(!origin_ok(&h(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example")
        ])));
        assert!(!origin_ok(&h(&[("origin", "http://127.0.0.1:8080")])));
    }
}
