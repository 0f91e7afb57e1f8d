//! The live side: the WebSocket (`/api/ws`) and the feeds behind it. Events come from the
//! core as they are stored, over the module protocol (`honeybee-module/1`, the dashboard's
//! certificate, a subscription with an empty filter); node changes and alerts come from
//! polling the admin API every second, which also records each node's health history.

use crate::auth::{self, Authed};
use crate::error::ApiError;
use crate::state::{AppState, HealthSample};
use crate::views;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
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
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

/// How often the core is asked for nodes and alerts.
const POLL: Duration = Duration::from_secs(1);
/// How often a WebSocket re-checks that its session is still valid (one indexed lookup in
/// the users database): a deleted user's or an expired session's page learns within this.
const SESSION_RECHECK: Duration = Duration::from_secs(5);
/// The close code (application range, 4000-4999) that tells the browser its session ended,
/// so it returns to sign-in instead of reconnecting forever. Its reason is
/// [`CLOSE_UNAUTHENTICATED_REASON`].
pub const CLOSE_UNAUTHENTICATED: u16 = 4401;
pub const CLOSE_UNAUTHENTICATED_REASON: &str = "unauthenticated";

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

/// `/api/ws?last_id=N`: a browser that reconnects says the last event id it has.
#[derive(Debug, serde::Deserialize)]
pub struct WsQuery {
    last_id: Option<i64>,
}

pub async fn ws(
    State(app): State<AppState>,
    a: Authed,
    Query(q): Query<WsQuery>,
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
        .on_upgrade(move |socket| serve_socket(app, a, socket, q.last_id)))
}

/// What a reconnecting browser is sent before live messages: the kept events after its
/// `last_id`, preceded by a `missed` message when some of what it lacks is no longer kept.
fn resume_messages(
    app: &AppState,
    last_id: Option<i64>,
) -> (broadcast::Receiver<Arc<str>>, Vec<Arc<str>>) {
    let start = app.subscribe_live(last_id.unwrap_or(i64::MAX));
    let mut out = Vec::new();
    if let Some(last) = last_id {
        // Everything after `floor` was kept; what lies between `last` and it is gone.
        let floor = match start.oldest {
            Some(oldest) => oldest - 1,
            None => app.live_from.load(Ordering::Relaxed),
        };
        if floor > last && last >= 0 {
            out.push(Arc::from(
                json!({"type": "missed", "count": floor - last, "reason": "reconnect"}).to_string(),
            ));
        }
        out.extend(start.replay.into_iter().map(|(_, text)| text));
    }
    (start.rx, out)
}

async fn serve_socket(app: AppState, a: Authed, mut socket: WebSocket, last_id: Option<i64>) {
    let (mut rx, replay) = resume_messages(&app, last_id);
    for text in replay {
        if socket
            .send(Message::Text(text.to_string().into()))
            .await
            .is_err()
        {
            return;
        }
    }
    let mut recheck = tokio::time::interval(SESSION_RECHECK);
    recheck.tick().await;
    tracing::debug!(user = %a.user(), "websocket opened");
    let mut close = None;
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
                // Only a definite "no such session" ends it; a failed lookup (busy
                // database) is tried again at the next tick.
                if matches!(auth::lookup(&app, a.token.clone()).await, Ok(None)) {
                    tracing::debug!(user = %a.user(), "websocket closed: the session ended");
                    close = Some(CloseFrame {
                        code: CLOSE_UNAUTHENTICATED,
                        reason: CLOSE_UNAUTHENTICATED_REASON.into(),
                    });
                    break;
                }
            }
        }
    }
    let _ = socket.send(Message::Close(close)).await;
}

/// Starts the feeds; they run until the returned handles are aborted.
pub fn spawn_feeds(app: AppState) -> Vec<tokio::task::JoinHandle<()>> {
    vec![
        tokio::spawn(event_feed(app.clone())),
        tokio::spawn(poll_feed(app)),
    ]
}

/// Why one connection to the core ended, and whether it had been established (a hello
/// answered), which resets the retry backoff.
struct StreamEnd {
    established: bool,
    reason: String,
}

async fn event_feed(app: AppState) {
    let mut backoff = BACKOFF_MIN;
    let mut cursor = Cursor::default();
    loop {
        let end = stream_events(&app, &mut cursor).await;
        if end.established {
            // A healthy connection that ended (core restart, network blip): normal, retry soon.
            backoff = BACKOFF_MIN;
            tracing::info!(reason = %end.reason, retry_ms = backoff.as_millis() as u64,
                "live event stream from the core ended; reconnecting and resuming");
        } else {
            tracing::warn!(reason = %end.reason, retry_ms = backoff.as_millis() as u64,
                "could not open the live event stream from the core; retrying");
        }
        tokio::time::sleep(backoff).await;
        if !end.established {
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
}

/// First retry after the core connection ends; doubled after each failed try.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// Longest wait between tries.
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// The core closes a module connection after 90 s without a message: ping well within it.
pub const KEEPALIVE: Duration = Duration::from_secs(30);
/// Events replayed from the store after a reconnect before the dashboard gives up and
/// tells browsers how many it skipped.
pub const MAX_REPLAY: u64 = 10_000;
/// Live events held while the replay runs (they are sent after it, in order).
const MAX_HELD: usize = 20_000;
/// Events waiting for a lower id before they are sent; past this they go out anyway.
const MAX_WAITING: usize = 8192;
/// How long an event waits for a lower id (published a moment later by a concurrent batch)
/// before the hole is accepted. A hole that is never filled is an event the core told us
/// it dropped (`missed`).
const REORDER_WAIT: Duration = Duration::from_secs(1);
/// Accepted holes remembered, so an event that fills one late is still sent once.
const MAX_SKIPPED: usize = 8192;

/// Which stored events (by store row id) have been sent to browsers: every id up to
/// `done` but those in `skipped`. Ids are assigned in store order without holes, but
/// concurrent batches can be published slightly out of order: an event whose lower
/// neighbour has not arrived waits in `waiting` (briefly), so browsers see store order.
#[derive(Default)]
struct Cursor {
    /// `None` until the first connection says where the store is.
    done: Option<i64>,
    waiting: std::collections::BTreeMap<i64, Value>,
    /// When the oldest waiting event started waiting.
    since: Option<tokio::time::Instant>,
    skipped: std::collections::BTreeSet<i64>,
}

impl Cursor {
    /// Sends one stored event to browsers (in id order) unless it was sent already.
    fn forward(&mut self, app: &impl Sink, id: Option<i64>, event: Value) {
        let Some(id) = id else {
            // A core without event ids: forwarded as is, without resume.
            app.send(None, event);
            return;
        };
        let done = *self.done.get_or_insert(id - 1);
        if id <= done {
            // Already sent, unless it fills a hole accepted earlier.
            if self.skipped.remove(&id) {
                app.send(Some(id), event);
            }
            return;
        }
        self.waiting.entry(id).or_insert(event);
        self.drain(app, false);
    }

    /// Sends waiting events that follow `done` without a hole; with `force`, all of them.
    fn drain(&mut self, app: &impl Sink, force: bool) {
        while let Some(first) = self.waiting.first_key_value().map(|(k, _)| *k) {
            let done = self.done.unwrap_or(first - 1);
            if first != done + 1 && !force && self.waiting.len() <= MAX_WAITING {
                break;
            }
            let Some((id, event)) = self.waiting.pop_first() else {
                break;
            };
            if id > done + 1 && id - done <= MAX_SKIPPED as i64 {
                self.skipped.extend(done + 1..id);
                while self.skipped.len() > MAX_SKIPPED {
                    self.skipped.pop_first();
                }
            }
            self.done = Some(id);
            app.send(Some(id), event);
        }
        self.since = match self.waiting.is_empty() {
            true => None,
            false => self.since.or(Some(tokio::time::Instant::now())),
        };
    }

    /// When waiting events should be sent even though a lower id has not come.
    fn deadline(&self) -> Option<tokio::time::Instant> {
        self.since.map(|s| s + REORDER_WAIT)
    }
}

/// Where the cursor sends events: the browsers (tests collect them instead).
trait Sink {
    fn send(&self, id: Option<i64>, event: Value);
}

impl Sink for AppState {
    fn send(&self, id: Option<i64>, event: Value) {
        match id {
            Some(id) => self.broadcast_event(
                id,
                &json!({"type": "event", "id": id, "event": views::with_time_ms(event)}),
            ),
            None => self.broadcast(&json!({"type": "event", "event": views::with_time_ms(event)})),
        }
    }
}

/// The store row id the core puts in `event.id` (a decimal string).
fn event_id(event: &Value) -> Option<i64> {
    let v = event.get("event")?.get("id")?;
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_i64())
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

/// Replay progress on one connection.
struct Replay {
    /// The outstanding `events_after` request.
    query_id: u64,
    /// The last id the replay asked after or received.
    after: i64,
    /// Events replayed so far on this connection.
    sent: u64,
    /// Live events that arrived meanwhile, sent once the replay is done.
    held: Vec<(Option<i64>, Value)>,
}

/// One connection's worth of live events; returns when it ends.
async fn stream_events(app: &AppState, cursor: &mut Cursor) -> StreamEnd {
    let mut established = false;
    let reason = match run_stream(app, cursor, &mut established).await {
        Ok(()) => "closed".to_string(),
        Err(e) => e,
    };
    StreamEnd {
        established,
        reason,
    }
}

async fn run_stream(
    app: &AppState,
    cursor: &mut Cursor,
    established: &mut bool,
) -> Result<(), String> {
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
    *established = true;
    // Reading frames is not cancel-safe, so one task reads and the loop below selects on
    // its channel and the keepalive timer.
    let (frames_tx, mut frames) = tokio::sync::mpsc::channel::<Result<ModuleMessage, String>>(256);
    let reader = tokio::spawn(async move {
        loop {
            let m = read_msg(&mut recv).await;
            let stop = m.is_err();
            if frames_tx.send(m).await.is_err() || stop {
                break;
            }
        }
    });
    let _reader = AbortOnDrop(reader);
    // Subscribe first, then ask the store what came after the cursor: an event stored in
    // between arrives both ways and is sent once.
    write_msg(
        &mut send,
        &ModuleRequest::Subscribe {
            id: 1,
            filter: EventFilter::default(),
        },
    )
    .await?;
    let mut next_id = 2u64;
    let mut replay = Some(Replay {
        query_id: next_id,
        after: cursor.done.unwrap_or(0),
        sent: 0,
        held: Vec::new(),
    });
    // On the first connection there is nothing to resume: ask only where the store is.
    let first = cursor.done.is_none();
    write_msg(
        &mut send,
        &events_after(
            next_id,
            cursor.done.unwrap_or(i64::MAX),
            if first { 1 } else { 1000 },
        ),
    )
    .await?;
    next_id += 1;
    tracing::info!(core = %addr, resume_after = ?cursor.done, "live event stream from the core open");
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    keepalive.tick().await;
    loop {
        // Events waiting for a lower id go out after a moment (not during a replay,
        // which may bring that id).
        let reorder = replay.is_none().then(|| cursor.deadline()).flatten();
        let msg = tokio::select! {
            _ = async {
                match reorder {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => {
                cursor.drain(app, true);
                continue;
            }
            m = frames.recv() => match m {
                Some(m) => m?,
                None => return Err("reader stopped".into()),
            },
            _ = keepalive.tick() => {
                write_msg(&mut send, &ModuleRequest::Ping { id: next_id }).await?;
                next_id += 1;
                continue;
            }
        };
        match msg {
            ModuleMessage::Event { event, .. } => {
                let id = event_id(&event);
                match replay.as_mut() {
                    Some(r) if r.held.len() < MAX_HELD => r.held.push((id, event)),
                    // Held too many: the replay is abandoned below, counted as missed.
                    Some(_) => {}
                    None => cursor.forward(app, id, event),
                }
            }
            ModuleMessage::Result { id, data }
                if replay.as_ref().is_some_and(|r| r.query_id == id) =>
            {
                let Some(mut r) = replay.take() else { continue };
                let page = match data.get("events") {
                    Some(Value::Array(page)) => page.clone(),
                    _ => Vec::new(),
                };
                let more = data.get("more").and_then(Value::as_bool).unwrap_or(false);
                let newest = data.get("newest_id").and_then(Value::as_i64).unwrap_or(0);
                if first {
                    // Nothing to resume: live from here on.
                    cursor.done = Some(newest);
                    app.live_from.store(newest, Ordering::Relaxed);
                } else {
                    for ev in page {
                        let id = event_id(&ev);
                        if let Some(id) = id {
                            r.after = r.after.max(id);
                        }
                        cursor.forward(app, id, ev);
                        r.sent += 1;
                    }
                }
                let held_full = r.held.len() >= MAX_HELD;
                if !first && more && r.sent < MAX_REPLAY && !held_full {
                    r.query_id = next_id;
                    next_id += 1;
                    write_msg(&mut send, &events_after(r.query_id, r.after, 1000)).await?;
                    replay = Some(r);
                    continue;
                }
                let mut held = std::mem::take(&mut r.held);
                if !first && (more || held_full) {
                    let (missed, rest) = skip_gap(app, cursor, newest, held);
                    tracing::warn!(
                        missed,
                        "too many events stored while the live stream was down; skipped"
                    );
                    app.broadcast(
                        &json!({"type": "missed", "count": missed, "reason": "reconnect"}),
                    );
                    held = rest;
                }
                held.sort_by_key(|(id, _)| *id);
                for (id, ev) in held {
                    cursor.forward(app, id, ev);
                }
                tracing::info!(
                    replayed = r.sent,
                    "live event stream caught up with the store"
                );
            }
            ModuleMessage::Error {
                id: Some(id),
                message,
                ..
            } if replay.as_ref().is_some_and(|r| r.query_id == id) => {
                // A core without `events_after`: live events only, and browsers are told
                // that some may be missing.
                tracing::warn!(error = %message, "the core cannot replay events; some may be missing");
                if !first {
                    app.broadcast(&json!({"type": "missed", "count": null, "reason": "reconnect"}));
                }
                if let Some(r) = replay.take() {
                    for (id, ev) in r.held {
                        cursor.forward(app, id, ev);
                    }
                }
            }
            ModuleMessage::Missed { count } => {
                tracing::warn!(count, "the core dropped live events for the dashboard");
                app.broadcast(&json!({"type": "missed", "count": count, "reason": "core"}));
            }
            ModuleMessage::Error {
                id: None, message, ..
            } => return Err(message),
            _ => {}
        }
    }
}

/// Gives up replaying: every event up to `newest` neither sent nor held is counted (the
/// caller tells browsers how many); the cursor moves past them. Returns that count and the
/// held events still to send.
fn skip_gap(
    app: &impl Sink,
    cursor: &mut Cursor,
    newest: i64,
    mut held: Vec<(Option<i64>, Value)>,
) -> (i64, Vec<(Option<i64>, Value)>) {
    let done = cursor.done.unwrap_or(newest);
    held.sort_by_key(|(id, _)| *id);
    held.dedup_by(|a, b| a.0.is_some() && a.0 == b.0);
    let in_gap = |id: i64| id > done && id <= newest;
    let held_in_gap = held
        .iter()
        .filter(|(id, _)| id.is_some_and(|i| in_gap(i) && !cursor.waiting.contains_key(&i)))
        .count() as i64;
    let waiting_in_gap = cursor.waiting.keys().filter(|i| in_gap(**i)).count() as i64;
    let missed = (newest - done - held_in_gap - waiting_in_gap).max(0);
    // What arrived inside the skipped range is still sent, in order, then the cursor jumps.
    let (gap, rest): (Vec<_>, Vec<_>) =
        held.into_iter().partition(|(id, _)| id.is_some_and(in_gap));
    for (id, ev) in gap {
        cursor.forward(app, id, ev);
    }
    cursor.drain(app, true);
    cursor.done = Some(cursor.done.unwrap_or(newest).max(newest));
    (missed, rest)
}

fn events_after(id: u64, after_id: i64, limit: u32) -> ModuleRequest {
    ModuleRequest::Query {
        id,
        what: "events_after".into(),
        params: json!({"after_id": after_id, "limit": limit}),
    }
}

/// Aborts the frame reader when the connection's loop ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
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
                // The health state rides along so a node turning degraded updates live.
                let health = match app.core.request(None, AdminRequest::NodeHealth).await {
                    Ok(AdminResponse::NodeHealth(h)) => h,
                    _ => Vec::new(),
                };
                for n in &nodes {
                    let v = views::node_with_health(n, &health);
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

    // The core drops a module connection after IDLE_TIMEOUT without a message.
    const _: () =
        assert!(KEEPALIVE.as_secs() * 2 < honeybee_core::modules::session::IDLE_TIMEOUT.as_secs());

    /// Collects what the cursor sends.
    #[derive(Default)]
    struct Got(std::sync::Mutex<Vec<Option<i64>>>);

    impl Sink for Got {
        fn send(&self, id: Option<i64>, _event: Value) {
            self.0.lock().unwrap().push(id);
        }
    }

    impl Got {
        fn ids(&self) -> Vec<i64> {
            self.0.lock().unwrap().iter().map(|i| i.unwrap()).collect()
        }
    }

    fn started_at(done: i64) -> Cursor {
        Cursor {
            done: Some(done),
            ..Cursor::default()
        }
    }

    #[test]
    fn cursor_sends_in_id_order_and_once() {
        let got = Got::default();
        let mut c = started_at(10);
        for id in [11, 13, 12, 12, 11, 14, 9] {
            c.forward(&got, Some(id), json!({}));
        }
        assert_eq!(got.ids(), [11, 12, 13, 14]);
        assert!(c.deadline().is_none(), "nothing waits");
    }

    #[test]
    fn a_hole_waits_then_is_accepted_and_filled_late_once() {
        let got = Got::default();
        let mut c = started_at(0);
        c.forward(&got, Some(1), json!({}));
        c.forward(&got, Some(3), json!({}));
        c.forward(&got, Some(4), json!({}));
        assert_eq!(got.ids(), [1], "3 and 4 wait for 2");
        assert!(c.deadline().is_some());
        // The wait is over: the hole is accepted.
        c.drain(&got, true);
        assert_eq!(got.ids(), [1, 3, 4]);
        // 2 arrives late after all: sent once, late; a second copy is not.
        c.forward(&got, Some(2), json!({}));
        c.forward(&got, Some(2), json!({}));
        c.forward(&got, Some(5), json!({}));
        assert_eq!(got.ids(), [1, 3, 4, 2, 5]);
    }

    #[test]
    fn giving_up_a_replay_counts_exactly_what_is_skipped() {
        let got = Got::default();
        let mut c = started_at(100);
        // Live events held during the replay: 150 (inside the gap) and 301, 302 (after).
        let held = vec![
            (Some(302), json!({})),
            (Some(150), json!({})),
            (Some(301), json!({})),
            (Some(150), json!({})),
        ];
        let (missed, rest) = skip_gap(&got, &mut c, 300, held);
        // 101..=300 is 200 events, one of which (150) is sent.
        assert_eq!(missed, 199);
        assert_eq!(got.ids(), [150]);
        for (id, ev) in rest {
            c.forward(&got, id, ev);
        }
        assert_eq!(got.ids(), [150, 301, 302]);
    }

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
