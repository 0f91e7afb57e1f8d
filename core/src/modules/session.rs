//! One module connection, whatever the transport: authenticate the hello, then serve
//! requests (each on its own task, so a slow command never blocks event delivery) while a
//! writer streams matching events, missed-event notices and answers back.

use super::{LiveModule, filter::CompiledFilter};
use crate::bus::{Delivery, ModuleQueue};
use crate::server::Shared;
use honeybee_proto::admin::EventQuery;
use honeybee_proto::control::Command;
use honeybee_proto::module::{
    ErrorCode, MAX_MODULE_FRAME, MODULE_PROTOCOL, ModuleMessage, ModuleRequest, Permission,
    decode_json, encode_json,
};
use honeybee_proto::{NodeId, TokenId};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// A module that sends nothing for this long is disconnected (SDKs ping every 30 s):
/// the production value of `Timing::module_idle`. The hello deadline and a frame's
/// deadline are `Timing::module_hello` and `Timing::module_frame`.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Deliveries a module's queue holds.
pub const QUEUE_CAPACITY: usize = 8192;
/// Consecutive misses after which a module that does not read is disconnected.
pub const MAX_LAG: u64 = 100_000;
/// Subscriptions per module.
pub const MAX_SUBSCRIPTIONS: usize = 64;
/// Requests of one module being handled at once.
pub const MAX_IN_FLIGHT: usize = 64;
/// Most events in one `events_after` answer.
pub const REPLAY_PAGE: u32 = 1000;
/// An `events_after` answer stops adding events past this many bytes (the frame limit is 1 MiB).
pub const REPLAY_BYTES: usize = 768 * 1024;

/// How the peer proved who it is.
#[derive(Debug, Clone)]
pub enum Auth {
    /// TCP shim: a credential in the hello.
    Credential,
    /// QUIC: a verified module certificate for this name, with its granted permissions.
    Certificate {
        name: String,
        granted: Vec<Permission>,
        /// The permissions come from a stored grant (false: the dashboard's role).
        by_grant: bool,
    },
}

#[derive(Debug)]
enum ReadError {
    Closed,
    Timeout,
    TooLarge(u32),
    Io,
}

/// Reads one frame: its first byte may take `wait_for_header`, the rest of it at most
/// `frame_deadline` from there.
async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    wait_for_header: Duration,
    frame_deadline: Duration,
) -> Result<Vec<u8>, ReadError> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(wait_for_header, r.read(&mut first)).await {
        Err(_) => return Err(ReadError::Timeout),
        Ok(Ok(0)) => return Err(ReadError::Closed),
        Ok(Ok(_)) => {}
        Ok(Err(_)) => return Err(ReadError::Io),
    }
    // Slowloris: once a frame has begun, all of it must arrive promptly.
    tokio::time::timeout(frame_deadline, async {
        let mut rest = [0u8; 3];
        r.read_exact(&mut rest).await.map_err(|_| ReadError::Io)?;
        let len = u32::from_be_bytes([first[0], rest[0], rest[1], rest[2]]);
        if len > MAX_MODULE_FRAME {
            return Err(ReadError::TooLarge(len));
        }
        let mut body = vec![0u8; len as usize];
        r.read_exact(&mut body).await.map_err(|_| ReadError::Io)?;
        Ok(body)
    })
    .await
    .map_err(|_| ReadError::Timeout)?
}

fn error(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> ModuleMessage {
    ModuleMessage::Error {
        id,
        code,
        message: message.into(),
    }
}

fn frame(msg: &ModuleMessage) -> Vec<u8> {
    encode_json(msg).unwrap_or_else(|e| {
        encode_json(&error(
            None,
            ErrorCode::Internal,
            format!("answer too large: {e}"),
        ))
        .unwrap_or_default()
    })
}

/// The event frame built around pre-rendered JSON, so fan-out costs a copy, not a serialisation.
fn event_frame(d: &Delivery) -> Vec<u8> {
    let head = format!("{{\"type\":\"event\",\"sub\":{},\"event\":", d.sub);
    let len = head.len() + d.event.json.len() + 1;
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(d.event.json.as_bytes());
    out.push(b'}');
    out
}

/// Parses `hbm1.<id hex>.<secret hex>`.
pub fn parse_credential(s: &str) -> Option<(TokenId, [u8; 32])> {
    let rest = s.trim().strip_prefix("hbm1.")?;
    let (id, secret) = rest.split_once('.')?;
    let id = TokenId::from_hex(id).ok()?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(secret, &mut out).ok()?;
    Some((id, out))
}

/// Serves one module connection until it ends.
pub async fn serve<R, W>(
    mut r: R,
    mut w: W,
    auth: Auth,
    peer: SocketAddr,
    transport: &'static str,
    shared: Arc<Shared>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let timing = shared.cfg.timing;
    let body = match read_frame(&mut r, timing.module_hello, timing.module_frame).await {
        Ok(b) => b,
        Err(e) => {
            tracing::info!(%peer, error = ?e, "module connection dropped before hello");
            let msg = match e {
                ReadError::TooLarge(n) => error(
                    None,
                    ErrorCode::Limit,
                    format!("frame of {n} bytes exceeds {MAX_MODULE_FRAME}"),
                ),
                _ => error(
                    None,
                    ErrorCode::BadRequest,
                    "expected a hello frame within 5 s",
                ),
            };
            let _ = w.write_all(&frame(&msg)).await;
            return;
        }
    };
    let by_grant = match &auth {
        Auth::Credential => true,
        Auth::Certificate { by_grant, .. } => *by_grant,
    };
    let (name, version, granted) = match authenticate(&body, &auth, peer, &shared).await {
        Ok(v) => v,
        Err(msg) => {
            let _ = w.write_all(&frame(&msg)).await;
            let _ = w.shutdown().await;
            return;
        }
    };
    let welcome = ModuleMessage::Welcome {
        module: name.clone(),
        protocol: MODULE_PROTOCOL,
        permissions: granted.iter().map(|p| p.as_str().to_owned()).collect(),
    };
    if w.write_all(&frame(&welcome)).await.is_err() {
        return;
    }
    let (queue, deliveries) = ModuleQueue::new(QUEUE_CAPACITY, MAX_LAG);
    let subscriptions = Arc::new(AtomicU32::new(0));
    let conn_id = shared.modules.register(
        &name,
        LiveModule {
            conn_id: 0,
            transport,
            version: version.clone(),
            permissions: granted.clone(),
            queue: queue.clone(),
            subscriptions: subscriptions.clone(),
            kick: Arc::new(tokio::sync::Notify::new()),
            by_grant,
        },
    );
    let kick = shared.modules.kick_handle(&name, conn_id);
    shared.audit(
        &format!("module:{name}"),
        "module.connect",
        "ok",
        Some(peer.to_string()),
        &format!("transport={transport} version={version}"),
    );
    tracing::info!(module = name, %peer, transport, "module connected");

    let (answers_tx, answers_rx) = mpsc::channel::<Vec<u8>>(256);
    let writer = tokio::spawn(write_loop(w, deliveries, answers_rx, queue.clone()));
    let ctx = Arc::new(Ctx {
        name: name.clone(),
        granted,
        shared: shared.clone(),
        queue: queue.clone(),
        answers: answers_tx,
        subs: std::sync::Mutex::new(HashMap::new()),
        subscriptions,
    });
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let reason = loop {
        let body = tokio::select! {
            b = read_frame(&mut r, timing.module_idle, timing.module_frame) => b,
            _ = queue.lag_notify.notified() => break "lagging",
            _ = async { match &kick { Some(k) => k.notified().await, None => std::future::pending().await } } => break "replaced or unloaded",
        };
        let body = match body {
            Ok(b) => b,
            Err(ReadError::Closed) | Err(ReadError::Io) => break "closed",
            Err(ReadError::Timeout) => {
                let _ = ctx
                    .answers
                    .send(frame(&error(
                        None,
                        ErrorCode::Limit,
                        "idle or slow frame; closing",
                    )))
                    .await;
                break "timeout";
            }
            Err(ReadError::TooLarge(n)) => {
                let _ = ctx
                    .answers
                    .send(frame(&error(
                        None,
                        ErrorCode::Limit,
                        format!("frame of {n} bytes exceeds {MAX_MODULE_FRAME}"),
                    )))
                    .await;
                break "oversized frame";
            }
        };
        let req: ModuleRequest = match decode_json(&body) {
            Ok(r) => r,
            Err(e) => {
                // A malformed frame gets an error frame; the connection survives it.
                let _ = ctx
                    .answers
                    .send(frame(&error(None, ErrorCode::BadRequest, e.to_string())))
                    .await;
                continue;
            }
        };
        // Bounded concurrency: a module that floods requests waits here, and stops being read.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break "closed";
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let id = req.id();
            let answer = match ctx.handle(req).await {
                Ok(Some(data)) => Some(ModuleMessage::Result {
                    id: id.unwrap_or(0),
                    data,
                }),
                Ok(None) => None,
                Err((code, message)) => Some(error(id, code, message)),
            };
            if let Some(a) = answer {
                let _ = ctx.answers.send(frame(&a)).await;
            }
        });
    };
    if reason == "lagging" {
        let _ = ctx
            .answers
            .send(frame(&error(
                None,
                ErrorCode::Limit,
                format!("disconnected: missed more than {MAX_LAG} events in a row"),
            )))
            .await;
    }
    for key in ctx
        .subs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain()
        .map(|(_, k)| k)
    {
        shared.bus.unsubscribe(key);
    }
    // Let queued answers (the reason for closing) go out, then stop the writer.
    drop(ctx);
    let _ = tokio::time::timeout(Duration::from_millis(500), writer).await;
    shared.modules.unregister(&name, conn_id);
    tracing::info!(module = name, %peer, reason, "module disconnected");
}

async fn authenticate(
    body: &[u8],
    auth: &Auth,
    peer: SocketAddr,
    shared: &Shared,
) -> Result<(String, String, Vec<Permission>), ModuleMessage> {
    let hello: ModuleRequest = decode_json(body)
        .map_err(|e| error(None, ErrorCode::BadRequest, format!("bad hello: {e}")))?;
    let ModuleRequest::Hello {
        name,
        version,
        protocol,
        credential,
        permissions,
    } = hello
    else {
        return Err(error(
            None,
            ErrorCode::BadRequest,
            "the first message must be hello",
        ));
    };
    if protocol != MODULE_PROTOCOL {
        return Err(error(
            None,
            ErrorCode::Unsupported,
            format!("protocol {protocol} is not supported; this core speaks {MODULE_PROTOCOL}"),
        ));
    }
    let version = honeybee_proto::event::clamp(&version, 64);
    let (name, allowed) = match auth {
        Auth::Certificate {
            name: cert_name,
            granted,
            ..
        } => {
            if &name != cert_name {
                return Err(error(
                    None,
                    ErrorCode::Unauthenticated,
                    format!("certificate is for module {cert_name:?}, not {name:?}"),
                ));
            }
            (name, granted.clone())
        }
        Auth::Credential => {
            let now = Instant::now();
            if !shared.module_limiter.allowed(peer.ip(), now) {
                return Err(error(
                    None,
                    ErrorCode::Limit,
                    "too many failed attempts from this address; wait a minute",
                ));
            }
            let fail = |why: &str| {
                shared.module_limiter.failed(peer.ip(), Instant::now());
                shared.audit(
                    // The name is the peer's, unauthenticated: clamped and escaped.
                    &format!(
                        "module:{}",
                        crate::audit::peer_text(&name, crate::audit::MAX_PEER_TEXT_CHARS)
                    ),
                    "module.connect",
                    &format!("refused: {why}"),
                    Some(peer.to_string()),
                    "",
                );
                error(
                    None,
                    ErrorCode::Unauthenticated,
                    format!("module credential refused: {why}"),
                )
            };
            let Some((id, secret)) = credential.as_deref().and_then(parse_credential) else {
                return Err(fail("missing or malformed credential (expected hbm1.…)"));
            };
            let stored = shared
                .store
                .module_credential(id)
                .await
                .map_err(|e| error(None, ErrorCode::Internal, e.to_string()))?;
            let Some(stored) = stored else {
                return Err(fail("unknown credential"));
            };
            if !honeybee_pki::token::verify_secret(&secret, &stored.secret_hash) {
                return Err(fail("wrong secret"));
            }
            if stored.revoked {
                return Err(fail("credential revoked"));
            }
            if stored.name != name {
                return Err(fail("credential belongs to another module"));
            }
            (name, stored.permissions)
        }
    };
    // The module gets what it asked for, within what it was granted.
    let mut granted = Vec::new();
    for p in &permissions {
        match Permission::parse(p) {
            Some(p) if allowed.contains(&p) => granted.push(p),
            Some(p) => tracing::warn!(
                module = name,
                permission = p.as_str(),
                "requested permission not granted"
            ),
            None => {
                return Err(error(
                    None,
                    ErrorCode::BadRequest,
                    format!("unknown permission {p:?}"),
                ));
            }
        }
    }
    if permissions.is_empty() {
        granted = allowed;
    }
    granted.sort();
    granted.dedup();
    Ok((name, version, granted))
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut w: W,
    mut deliveries: mpsc::Receiver<Delivery>,
    mut answers: mpsc::Receiver<Vec<u8>>,
    queue: Arc<ModuleQueue>,
) {
    let mut notice = tokio::time::interval(Duration::from_secs(1));
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        tokio::select! {
            biased;
            a = answers.recv() => match a {
                Some(bytes) => buf.extend_from_slice(&bytes),
                None => break,
            },
            d = deliveries.recv() => match d {
                Some(d) => {
                    buf.extend_from_slice(&event_frame(&d));
                    // Coalesce what is already queued into one write.
                    while buf.len() < 256 * 1024 {
                        match deliveries.try_recv() {
                            Ok(d) => buf.extend_from_slice(&event_frame(&d)),
                            Err(_) => break,
                        }
                    }
                }
                None => break,
            },
            _ = notice.tick() => {
                let missed = queue.missed.swap(0, Ordering::Relaxed);
                if missed > 0 {
                    buf.extend_from_slice(&frame(&ModuleMessage::Missed { count: missed }));
                }
            }
        }
        if !buf.is_empty() {
            if w.write_all(&buf).await.is_err() {
                break;
            }
            buf.clear();
        }
    }
    let _ = w.flush().await;
    let _ = w.shutdown().await;
}

/// What a request handler needs.
struct Ctx {
    name: String,
    granted: Vec<Permission>,
    shared: Arc<Shared>,
    queue: Arc<ModuleQueue>,
    answers: mpsc::Sender<Vec<u8>>,
    /// Module's subscription id → bus key.
    subs: std::sync::Mutex<HashMap<u64, u64>>,
    subscriptions: Arc<AtomicU32>,
}

type Answer = Result<Option<Value>, (ErrorCode, String)>;

impl Ctx {
    fn need(&self, p: Permission) -> Result<(), (ErrorCode, String)> {
        if self.granted.contains(&p) {
            Ok(())
        } else {
            Err((
                ErrorCode::Forbidden,
                format!("this module lacks the {} permission", p.as_str()),
            ))
        }
    }

    async fn handle(&self, req: ModuleRequest) -> Answer {
        let internal = |e: &dyn std::fmt::Display| (ErrorCode::Internal, e.to_string());
        let node_id = |s: &str| NodeId::new(s).map_err(|e| (ErrorCode::BadRequest, e.to_string()));
        match req {
            ModuleRequest::Hello { .. } => Err((ErrorCode::BadRequest, "hello sent twice".into())),
            ModuleRequest::Ping { .. } => Ok(Some(json!("pong"))),
            ModuleRequest::Log { level, message } => {
                let message = honeybee_proto::event::clamp(&message, 4096);
                match level.as_str() {
                    "error" => tracing::error!(module = self.name, "{message}"),
                    "warn" => tracing::warn!(module = self.name, "{message}"),
                    _ => tracing::info!(module = self.name, "{message}"),
                }
                Ok(None)
            }
            ModuleRequest::Subscribe { id, filter } => {
                self.need(Permission::EventsRead)?;
                let compiled =
                    CompiledFilter::compile(&filter).map_err(|e| (ErrorCode::BadRequest, e))?;
                let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
                if subs.len() >= MAX_SUBSCRIPTIONS && !subs.contains_key(&id) {
                    return Err((
                        ErrorCode::Limit,
                        format!("at most {MAX_SUBSCRIPTIONS} subscriptions"),
                    ));
                }
                let key = self.shared.bus.subscribe(id, compiled, self.queue.clone());
                if let Some(old) = subs.insert(id, key) {
                    self.shared.bus.unsubscribe(old);
                }
                self.subscriptions
                    .store(subs.len() as u32, Ordering::Relaxed);
                Ok(Some(json!({"subscribed": id})))
            }
            ModuleRequest::Unsubscribe { id } => {
                let mut subs = self.subs.lock().unwrap_or_else(|p| p.into_inner());
                let key = subs
                    .remove(&id)
                    .ok_or((ErrorCode::NotFound, format!("no subscription {id}")))?;
                self.shared.bus.unsubscribe(key);
                self.subscriptions
                    .store(subs.len() as u32, Ordering::Relaxed);
                Ok(Some(json!({"unsubscribed": id})))
            }
            ModuleRequest::Query { what, params, .. } => self.query(&what, &params).await,
            ModuleRequest::Command { node, command, .. } => {
                self.need(Permission::NodesCommand)?;
                let node = node_id(&node)?;
                let command = match command.as_str() {
                    "ping" => Command::Ping,
                    "status" => Command::Status,
                    other => {
                        return Err((
                            ErrorCode::BadRequest,
                            format!("unknown command {other:?}; known: ping, status"),
                        ));
                    }
                };
                self.shared.audit(
                    &format!("module:{}", self.name),
                    "node.command",
                    "sent",
                    None,
                    &format!("node={node} command={command:?}"),
                );
                match self.shared.registry.command(&node, command).await {
                    Ok(Ok(out)) => Ok(Some(
                        json!({"node": node.as_str(), "ok": true, "output": out}),
                    )),
                    Ok(Err(e)) => Ok(Some(
                        json!({"node": node.as_str(), "ok": false, "error": e}),
                    )),
                    Err(crate::registry::SendError::Timeout(..)) => {
                        Err((ErrorCode::Timeout, "the node did not answer in time".into()))
                    }
                    Err(e) => Err((ErrorCode::NotFound, e.to_string())),
                }
            }
            ModuleRequest::Alert {
                severity,
                title,
                body,
                event,
                ..
            } => {
                self.need(Permission::AlertsWrite)?;
                if !["info", "low", "medium", "high", "critical"].contains(&severity.as_str()) {
                    return Err((
                        ErrorCode::BadRequest,
                        "severity must be info, low, medium, high or critical".into(),
                    ));
                }
                let id = self
                    .shared
                    .store
                    .insert_alert(crate::store::NewAlert {
                        time_ms: crate::now_ms(),
                        module: self.name.clone(),
                        severity,
                        title: honeybee_proto::event::clamp(&title, 512),
                        body: honeybee_proto::event::clamp(&body, 16 * 1024),
                        node: event.as_ref().map(|e| e.node.clone()),
                        seq: event.as_ref().map(|e| e.seq),
                    })
                    .await
                    .map_err(|e| internal(&e))?;
                Ok(Some(json!({"alert": id})))
            }
            ModuleRequest::Enrich { event, data, .. } => {
                self.need(Permission::EnrichWrite)?;
                let text = serde_json::to_string(&data).map_err(|e| internal(&e))?;
                if text.len() > 16 * 1024 {
                    return Err((ErrorCode::Limit, "enrichment over 16 KiB".into()));
                }
                self.attach(&event.node, event.seq, "enrich", text).await
            }
            ModuleRequest::Annotate { event, text, .. } => {
                self.need(Permission::EnrichWrite)?;
                let text = json!({"text": honeybee_proto::event::clamp(&text, 4096)}).to_string();
                self.attach(&event.node, event.seq, "annotation", text)
                    .await
            }
        }
    }

    async fn attach(&self, node: &str, seq: u64, kind: &str, data: String) -> Answer {
        let node = NodeId::new(node).map_err(|e| (ErrorCode::BadRequest, e.to_string()))?;
        match self
            .shared
            .store
            .insert_enrichment(&node, seq, &self.name, kind, data, crate::now_ms())
            .await
        {
            Ok(true) => Ok(Some(json!({"attached": true}))),
            Ok(false) => Err((ErrorCode::NotFound, format!("no event {node}/{seq}"))),
            Err(e) => Err((ErrorCode::Internal, e.to_string())),
        }
    }

    async fn query(&self, what: &str, params: &Value) -> Answer {
        let internal = |e: &dyn std::fmt::Display| (ErrorCode::Internal, e.to_string());
        let limit = params
            .get("limit")
            .and_then(Value::as_u64)
            .unwrap_or(100)
            .min(10_000) as u32;
        match what {
            "nodes" => {
                self.need(Permission::NodesRead)?;
                let nodes = self
                    .shared
                    .store
                    .list_nodes()
                    .await
                    .map_err(|e| internal(&e))?;
                Ok(Some(Value::Array(
                    nodes
                        .iter()
                        .map(|n| {
                            json!({"id": n.id.as_str(), "name": n.name, "role": n.role.as_str(), "labels": n.labels,
                                   "online": self.shared.registry.is_online(&n.id), "revoked": n.revoked,
                                   "addr": n.addr,
                                   // The store's may be a minute behind the latest report.
                                   "last_seen": crate::json::rfc3339(
                                       n.last_seen_ms.max(self.shared.health.latest_ms(&n.id).unwrap_or(0)))})
                        })
                        .collect(),
                )))
            }
            "events" => {
                self.need(Permission::EventsRead)?;
                let text = |k: &str| params.get(k).and_then(Value::as_str).map(str::to_owned);
                let q = EventQuery {
                    node: text("node")
                        .map(NodeId::new)
                        .transpose()
                        .map_err(|e| (ErrorCode::BadRequest, e.to_string()))?,
                    service: text("service"),
                    kind: text("kind"),
                    since_ms: params.get("since_ms").and_then(Value::as_i64),
                    limit,
                };
                let events = self
                    .shared
                    .store
                    .query_events(&q)
                    .await
                    .map_err(|e| (ErrorCode::BadRequest, e.to_string()))?;
                let events = self
                    .shared
                    .store
                    .attach_enrichments(events)
                    .await
                    .map_err(|e| internal(&e))?;
                Ok(Some(Value::Array(
                    events.iter().map(crate::json::event_json).collect(),
                )))
            }
            "events_after" => {
                self.need(Permission::EventsRead)?;
                let after_id = match params.get("after_id") {
                    None => 0,
                    Some(v) => v.as_i64().filter(|n| *n >= 0).ok_or((
                        ErrorCode::BadRequest,
                        "after_id must be a non-negative integer".to_string(),
                    ))?,
                };
                let limit = params
                    .get("limit")
                    .and_then(Value::as_u64)
                    .unwrap_or(u64::from(REPLAY_PAGE))
                    .clamp(1, u64::from(REPLAY_PAGE)) as u32;
                let (rows, newest_id) = self
                    .shared
                    .store
                    .events_after(after_id, limit)
                    .await
                    .map_err(|e| internal(&e))?;
                let full = rows.len() as u32 == limit;
                // Stop before the answer could pass the frame limit; the reader asks again.
                let mut bytes = 0usize;
                let mut events = Vec::with_capacity(rows.len());
                let mut cut = false;
                for (id, ev) in &rows {
                    let doc = crate::json::event_json_with_id(ev, *id);
                    bytes += doc.to_string().len() + 1;
                    if bytes > REPLAY_BYTES && !events.is_empty() {
                        cut = true;
                        break;
                    }
                    events.push(doc);
                }
                Ok(Some(json!({
                    "events": events,
                    "more": full || cut,
                    "newest_id": newest_id,
                })))
            }
            "captures" => {
                self.need(Permission::CapturesRead)?;
                let caps = self
                    .shared
                    .store
                    .list_captures(limit)
                    .await
                    .map_err(|e| internal(&e))?;
                Ok(Some(Value::Array(
                    caps.iter()
                        .map(|c| json!({"sha256": hex::encode(c.sha256), "size": c.size, "kind": c.kind, "node": c.node.as_str(),
                                        "service": c.service, "session": c.session.map(|s| s.to_hex()), "time": crate::json::rfc3339(c.time_ms)}))
                        .collect(),
                )))
            }
            "stats" => {
                if !self.granted.contains(&Permission::EventsRead)
                    && !self.granted.contains(&Permission::NodesRead)
                {
                    return Err((
                        ErrorCode::Forbidden,
                        "stats need events:read or nodes:read".into(),
                    ));
                }
                let nodes = self
                    .shared
                    .store
                    .list_nodes()
                    .await
                    .map_err(|e| internal(&e))?;
                Ok(Some(json!({
                    "events_total": self.shared.store.count_events(None).await.map_err(|e| internal(&e))?,
                    "nodes_total": nodes.len(),
                    "nodes_online": self.shared.registry.online_count(),
                    "modules_connected": self.shared.modules.connected_count(),
                    "subscriptions": self.shared.bus.subscription_count(),
                })))
            }
            other => Err((
                ErrorCode::BadRequest,
                format!(
                    "unknown query {other:?}; known: nodes, events, events_after, captures, stats"
                ),
            )),
        }
    }
}

fn parse_permissions(permissions: &[String]) -> Result<Vec<Permission>, String> {
    permissions
        .iter()
        .map(|p| {
            Permission::parse(p).ok_or_else(|| {
                format!(
                    "unknown permission {p:?}; known: {}",
                    Permission::ALL
                        .iter()
                        .map(|p| p.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        })
        .collect()
}

/// Signs a module's CSR (role `module`, id = its name) and records its grant, so it can
/// connect over QUIC. The key was made where the module runs; only the CSR travels.
pub async fn issue_module_cert(
    shared: &Shared,
    name: &str,
    permissions: &[String],
    csr_der: &[u8],
    actor: &str,
) -> Result<(Vec<u8>, i64), String> {
    let id = NodeId::new(name).map_err(|e| format!("module name: {e}"))?;
    let perms = parse_permissions(permissions)?;
    let issued = shared
        .ca
        .sign_csr(
            csr_der,
            &honeybee_pki::ca::IssueRequest {
                role: honeybee_proto::Role::Module,
                id: id.clone(),
                lifetime: shared.cfg.admin_cert_lifetime,
            },
        )
        .map_err(|e| format!("certificate request refused: {e}"))?;
    // No shim secret: this grant is reachable only with the certificate.
    store_grant(shared, TokenId(rand::random()), &id, [0; 32], perms).await?;
    shared.audit(
        actor,
        "module.cert",
        "ok",
        None,
        &format!(
            "module={name} serial={} permissions={}",
            issued.serial,
            permissions.join(",")
        ),
    );
    Ok((issued.der, issued.not_after_ms))
}

/// Records a module's grant: its permissions under its name, reachable with the secret
/// whose hash is given (all zeros for certificate-only grants).
async fn store_grant(
    shared: &Shared,
    id: TokenId,
    name: &NodeId,
    secret_hash: [u8; 32],
    permissions: Vec<Permission>,
) -> Result<(), String> {
    shared
        .store
        .create_module_credential(crate::store::ModuleCredential {
            id,
            name: name.to_string(),
            secret_hash,
            permissions,
            created_ms: crate::now_ms(),
            revoked: false,
        })
        .await
        .map_err(|e| e.to_string())
}

/// Makes a shim credential for module `name` and stores its hash.
pub async fn create_credential(
    shared: &Shared,
    name: &str,
    permissions: &[String],
    actor: &str,
) -> Result<String, String> {
    let name_ok = NodeId::new(name).map_err(|e| format!("module name: {e}"))?;
    let perms = parse_permissions(permissions)?;
    let id = TokenId(rand::random());
    let secret: [u8; 32] = rand::random();
    let hash = honeybee_pki::token::hash_secret(&secret);
    store_grant(shared, id, &name_ok, hash, perms).await?;
    shared.audit(
        actor,
        "module.credential",
        "ok",
        None,
        &format!("module={name} permissions={}", permissions.join(",")),
    );
    Ok(format!("hbm1.{}.{}", id.to_hex(), hex::encode(secret)))
}
