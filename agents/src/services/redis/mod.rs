//! Redis honeypot: speaks RESP2 like a real `redis-server` of the configured version,
//! records every command, and answers the attacks on exposed Redis (AUTH brute force,
//! CONFIG SET dir + SAVE, SLAVEOF rogue masters, MODULE LOAD, EVAL sandbox escapes)
//! without doing any of them.

pub(crate) mod command_table;
pub(crate) mod commands;
pub(crate) mod info;
pub(crate) mod keyspace;
pub(crate) mod resp;
pub(crate) mod value;

use super::ServiceContext;
use super::conn::Session;
use commands::{Clock, Conn, Settings};
use honeybee_proto::capture::CaptureKind;
use honeybee_proto::config::{LoginPolicy, RedisOptions};
use honeybee_proto::event::{EventKind, MAX_FIELD_LEN, clamp};
use resp::{Caps, Parsed};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// Most commands one connection may run; then it is closed (and that is an event).
const MAX_COMMANDS: u64 = 20_000;
/// Replies are flushed once this many bytes are pending, pipelined or not.
const FLUSH_AT: usize = 64 * 1024;
/// Longest a flush may take. A peer that sends but never reads would otherwise keep its
/// pending replies (and the task) for the whole session; past this it is dropped, and
/// that is a `redis_write_deadline` event. The node's idle timeout, if shorter, applies.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most reply bytes one connection may be sent in its life; then it is closed
/// (`redis_output`). Memory is bounded per reply; this bounds what a 7-byte `GET k`
/// repeated 20,000 times can make the sensor send.
const MAX_CONN_REPLY_BYTES: u64 = 64 * 1024 * 1024;

/// A configured redis service.
#[derive(Debug)]
pub(crate) struct RedisService {
    settings: Arc<Settings>,
    caps: Caps,
    idle_timeout: Duration,
    write_timeout: Duration,
    open: Arc<AtomicU64>,
}

impl RedisService {
    /// `service` names the keyspace's snapshot in the data directory
    /// (`redis-<service>.bin`), loaded here.
    pub(crate) fn new(
        opts: &RedisOptions,
        ctx: &ServiceContext,
        service: &str,
    ) -> Result<Self, String> {
        let requirepass = match &opts.login {
            LoginPolicy::Credentials(list) => {
                list.first().map(|(_, p)| p.clone()).unwrap_or_default()
            }
            _ => "foobared".into(),
        };
        let boot = crate::sink::now_ms();
        let node = keyspace::Node::open(
            &ctx.data_dir,
            service,
            Duration::from_secs(opts.persist.secs()),
            boot,
        );
        Ok(RedisService {
            settings: Arc::new(Settings {
                facts: info::ServerFacts::new(
                    &opts.version,
                    requirepass,
                    boot,
                    &ctx.persona.persona().kernel.release(),
                ),
                require_auth: opts.require_auth,
                login: opts.login.clone(),
                node,
            }),
            caps: Caps::default(),
            idle_timeout: ctx.idle_timeout,
            write_timeout: ctx.idle_timeout.min(WRITE_TIMEOUT),
            open: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Serves one connection until the peer leaves, a deadline passes or `stop` says so.
    pub(crate) async fn serve<S>(
        &self,
        session: &Session,
        mut stream: S,
        stop: watch::Receiver<bool>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        let _open = OpenGuard(&self.open);
        let mut conn = Conn::new(
            Arc::clone(&self.settings),
            session.src,
            session.dst,
            open,
            clock(),
        );
        let mut buf: Vec<u8> = Vec::new();
        // Remembers its progress through a partial request: a request trickled in a byte
        // per read is not parsed again from its start on every read.
        let mut parser = resp::Parser::new(self.caps);
        let mut out: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut commands = 0u64;
        let mut sent = 0u64;
        let deadline = self.write_timeout;
        'conn: loop {
            // Everything complete in the buffer is answered before reading again.
            loop {
                match parser.parse(&buf) {
                    Ok(Parsed::Incomplete) => break,
                    Ok(Parsed::Skip { consumed }) => {
                        buf.drain(..consumed);
                    }
                    Ok(Parsed::Request { args, consumed }) => {
                        buf.drain(..consumed);
                        commands += 1;
                        if commands > MAX_COMMANDS {
                            session
                                .emit(EventKind::LimitReached {
                                    limit: "redis_commands".into(),
                                    detail: format!(
                                        "more than {MAX_COMMANDS} commands on one connection"
                                    ),
                                })
                                .await;
                            break 'conn;
                        }
                        let line = clamp(&resp::render_args(&args), MAX_FIELD_LEN);
                        session.emit(EventKind::Command { line }).await;
                        let mut outcome = conn.execute(&args, clock());
                        for e in outcome.events {
                            session.emit(e).await;
                        }
                        if let Some(cap) = outcome.capture {
                            session
                                .capture(CaptureKind::Upload, Some(cap.path), cap.meta, cap.content)
                                .await;
                        }
                        // A blocking command with nothing to give: what is pending goes
                        // out, then its timeout answer after the (capped) wait, or never
                        // if the peer leaves; what the peer sends meanwhile is kept
                        // (bounded) for after, as Redis queues it.
                        if let Some(wait) = outcome.block {
                            if !flush(session, &mut stream, &mut out, deadline).await {
                                return;
                            }
                            let until = tokio::time::Instant::now() + wait;
                            let mut retry = tokio::time::interval(BLOCKED_RETRY);
                            retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                            loop {
                                tokio::select! {
                                    () = tokio::time::sleep_until(until) => break,
                                    _ = retry.tick() => {
                                        // Another client pushed what it waits for.
                                        if let Some(mut o) = conn.retry_blocked(&args, clock()) {
                                            for e in o.events.drain(..) {
                                                session.emit(e).await;
                                            }
                                            outcome = o;
                                            break;
                                        }
                                    }
                                    r = stream.read(&mut chunk), if buf.len() < BLOCKED_INPUT => match r {
                                        Ok(0) | Err(_) => return,
                                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                                    },
                                    () = stopped(stop.clone()) => break 'conn,
                                }
                            }
                        }
                        if let Some(r) = outcome.reply {
                            let size = r.wire_len();
                            sent = sent.saturating_add(size as u64);
                            if sent > MAX_CONN_REPLY_BYTES {
                                session
                                    .emit(EventKind::LimitReached {
                                        limit: "redis_output".into(),
                                        detail: format!(
                                            "more than {MAX_CONN_REPLY_BYTES} reply bytes on one connection"
                                        ),
                                    })
                                    .await;
                                break 'conn;
                            }
                            // A big reply is not stacked on a full buffer: what is pending
                            // leaves first, so at most one buffer's worth is held.
                            if out.len() + size > FLUSH_AT
                                && !flush(session, &mut stream, &mut out, deadline).await
                            {
                                return;
                            }
                            // Exactly its size: a doubling growth would hold twice that.
                            out.reserve_exact(size);
                            r.encode_proto(&mut out, conn.resp3());
                        }
                        if outcome.discard_pending {
                            out.clear();
                        }
                        if outcome.close {
                            break 'conn;
                        }
                        if out.len() >= FLUSH_AT
                            && !flush(session, &mut stream, &mut out, deadline).await
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(session = %session.id, error = %e, "redis protocol error");
                        if let Some(r) = e.reply() {
                            out.extend_from_slice(&r);
                        } else {
                            session
                                .emit(EventKind::LimitReached {
                                    limit: "redis_request".into(),
                                    detail: format!("request over {} bytes", self.caps.max_request),
                                })
                                .await;
                        }
                        break 'conn;
                    }
                }
            }
            if !flush(session, &mut stream, &mut out, deadline).await {
                return;
            }
            // A big reply leaves a big allocation behind; idle connections give it back.
            if out.capacity() > 2 * FLUSH_AT {
                out = Vec::new();
            }
            let n = tokio::select! {
                r = tokio::time::timeout(self.idle_timeout, stream.read(&mut chunk)) => match r {
                    Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                    Ok(Ok(n)) => n,
                },
                () = stopped(stop.clone()) => break 'conn,
            };
            // The parser refuses any request over the cap, so the buffer never holds
            // more than one request's worth plus one read.
            // A big request leaves a big allocation behind; idle connections give it back.
            if buf.is_empty() && buf.capacity() > 16 * 1024 {
                buf = Vec::new();
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let _ = flush(session, &mut stream, &mut out, deadline).await;
        let _ = tokio::time::timeout(Duration::from_millis(500), stream.shutdown()).await;
    }
}

/// How often a waiting blocking pop looks again for data another client pushed.
const BLOCKED_RETRY: Duration = Duration::from_millis(100);

/// Most bytes read from a peer while its blocking command waits (more waits unread).
const BLOCKED_INPUT: usize = 64 * 1024;

async fn stopped(mut stop: watch::Receiver<bool>) {
    super::stopped(&mut stop).await;
}

/// Writes what is pending within `deadline`; false if the peer is gone or does not read
/// (then recorded as `redis_write_deadline`, and the connection is dropped).
async fn flush<S: AsyncWrite + Unpin>(
    session: &Session,
    stream: &mut S,
    out: &mut Vec<u8>,
    deadline: Duration,
) -> bool {
    if out.is_empty() {
        return true;
    }
    let pending = out.len();
    let written = tokio::time::timeout(deadline, stream.write_all(out)).await;
    out.clear();
    match written {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            tracing::debug!(session = %session.id, pending, "redis peer does not read; dropped");
            session
                .emit(EventKind::LimitReached {
                    limit: "redis_write_deadline".into(),
                    detail: format!(
                        "{pending} reply bytes not taken within {} s: connection dropped",
                        deadline.as_secs_f32()
                    ),
                })
                .await;
            false
        }
    }
}

fn clock() -> Clock {
    Clock {
        unix_ms: crate::sink::now_ms(),
    }
}

/// Counts the service's open connections (INFO's `connected_clients`).
struct OpenGuard<'a>(&'a AtomicU64);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
