//! Glue between the sans-IO shell and a live session: the transcript on the wall clock,
//! streamed to the capture spool as the session runs (one chunk in memory, not the
//! recording), its upload as a capture, and the shell's effects as events.

use super::Effect;
use super::asciicast::{Recorded, Recorder};
use crate::captures::{CaptureSpool, CaptureSpoolError, CaptureWriter};
use crate::services::conn::Session;
use honeybee_proto::capture::CaptureKind;
use honeybee_proto::event::{EventKind, MAX_FIELD_LEN, clamp};
use honeybee_proto::ids::SessionId;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;
use tokio::task::JoinHandle;

/// Recorded bytes gathered before they are written to the spool.
const CHUNK: usize = 64 * 1024;
/// Most recorded bytes held while the previous chunk is still being written: a disk that
/// cannot keep up stops the recording (`transcript` limit) rather than growing memory.
const MAX_BACKLOG: usize = 4 * CHUNK;

/// What a finished chunk write hands back.
type Written = (Option<CaptureWriter>, Result<(), CaptureSpoolError>);

/// Where the recording goes as it runs.
#[derive(Debug)]
enum Store {
    /// No spool (services run without an agent): the recording is counted, not kept.
    None,
    /// Ready for the next chunk; the writer is created with the first one.
    Idle(Option<CaptureWriter>),
    /// A chunk is being written on the blocking pool.
    Busy(JoinHandle<Written>),
    /// The spool refused a chunk: what was written before is kept, nothing more.
    Failed(Option<CaptureWriter>),
}

/// A session's asciicast recording, timed from its start.
#[derive(Debug)]
pub(crate) struct Transcript {
    rec: Recorder,
    start: Instant,
    cap: usize,
    store: Store,
    spool: Option<CaptureSpool>,
    service: String,
    session: SessionId,
    time_ms: i64,
}

impl Transcript {
    pub(crate) fn new(cap: usize, session: &Session) -> Transcript {
        let time_ms = crate::sink::now_ms();
        Transcript {
            rec: Recorder::new(time_ms / 1000, cap),
            start: Instant::now(),
            cap,
            store: if session.captures.is_some() {
                Store::Idle(None)
            } else {
                Store::None
            },
            spool: session.captures.clone(),
            service: session.service.to_string(),
            session: session.id,
            time_ms,
        }
    }

    fn check(&mut self, r: Recorded, effects: &mut Vec<Effect>) {
        if r == Recorded::CapReached {
            effects.push(Effect::Limit {
                limit: "transcript",
                detail: format!("transcript reached {} bytes; recording stopped", self.cap),
            });
        }
        self.drain(effects);
    }

    /// Hands a full chunk to the blocking pool (never waits for the disk here: these
    /// calls come from protocol handlers, some under a lock).
    fn drain(&mut self, effects: &mut Vec<Effect>) {
        if self.rec.pending_len() < CHUNK {
            return;
        }
        self.poll_busy(effects);
        match &mut self.store {
            Store::None | Store::Failed(_) => {
                // Nothing will keep these bytes: drop them as they come.
                let _ = self.rec.take_pending();
            }
            Store::Busy(_) => {
                if self.rec.pending_len() > MAX_BACKLOG {
                    self.rec.stop();
                    let _ = self.rec.take_pending();
                    effects.push(Effect::Limit {
                        limit: "transcript",
                        detail: "capture spool writes fell behind; recording stopped".into(),
                    });
                    // What reached the disk is still kept.
                }
            }
            Store::Idle(w) => {
                let writer = w.take();
                let chunk = self.rec.take_pending();
                let Some(spool) = self.spool.clone() else {
                    return;
                };
                let (service, session, time_ms) =
                    (self.service.clone(), self.session, self.time_ms);
                let spawn = tokio::runtime::Handle::try_current();
                let job = move || -> Written {
                    let mut w = match writer {
                        Some(w) => w,
                        None => match spool.writer(
                            CaptureKind::Transcript,
                            service,
                            Some(session),
                            time_ms,
                        ) {
                            Ok(w) => w,
                            Err(e) => return (None, Err(e)),
                        },
                    };
                    let r = w.write(&chunk);
                    (Some(w), r)
                };
                self.store = match spawn {
                    Ok(rt) => Store::Busy(rt.spawn_blocking(job)),
                    // Outside a runtime (unit tests) the write is done here.
                    Err(_) => settle(job(), &mut self.rec, effects),
                };
            }
        }
    }

    /// Takes the result of a chunk write that has finished, without waiting.
    fn poll_busy(&mut self, effects: &mut Vec<Effect>) {
        let Store::Busy(h) = &mut self.store else {
            return;
        };
        if !h.is_finished() {
            return;
        }
        let mut cx = Context::from_waker(Waker::noop());
        let done = match Pin::new(h).poll(&mut cx) {
            Poll::Ready(Ok(done)) => done,
            Poll::Ready(Err(e)) => (None, Err(std::io::Error::other(e.to_string()).into())),
            Poll::Pending => return,
        };
        self.store = settle(done, &mut self.rec, effects);
    }

    pub(crate) fn output(&mut self, data: &[u8], effects: &mut Vec<Effect>) {
        let r = self.rec.output(self.start.elapsed(), data);
        self.check(r, effects);
    }

    pub(crate) fn input(&mut self, data: &[u8], effects: &mut Vec<Effect>) {
        let r = self.rec.input(self.start.elapsed(), data);
        self.check(r, effects);
    }

    pub(crate) fn resize(&mut self, width: u32, height: u32, effects: &mut Vec<Effect>) {
        let r = self.rec.resize(self.start.elapsed(), width, height);
        self.check(r, effects);
    }

    pub(crate) fn set_env(&mut self, key: &str, value: &str) {
        self.rec.set_env(key, value);
    }

    /// Stores the rest of the recording and commits it as a `Transcript` capture (and its
    /// `Capture` event). An empty recording (a client that opened a channel and left) is
    /// not kept.
    pub(crate) async fn upload(mut self, session: &Session, meta: Vec<(String, String)>) {
        if self.rec.is_empty() {
            return;
        }
        let Some(spool) = self.spool.clone() else {
            tracing::debug!(session = %session.id, "transcript dropped: no capture spool");
            return;
        };
        let mut refused = None;
        let writer = match std::mem::replace(&mut self.store, Store::None) {
            Store::None => return,
            Store::Idle(w) => w,
            Store::Failed(w) => w,
            Store::Busy(h) => match h.await {
                Ok((w, Ok(()))) => w,
                Ok((w, Err(e))) => {
                    refused = Some(e);
                    w
                }
                Err(e) => {
                    tracing::error!(session = %session.id, error = %e, "transcript write failed");
                    return;
                }
            },
        };
        // After a refusal what was written is kept; the rest is not.
        let rest = if refused.is_none() {
            self.rec.finish()
        } else {
            Vec::new()
        };
        let (service, id, time_ms) = (self.service.clone(), self.session, self.time_ms);
        let done = tokio::task::spawn_blocking(move || {
            let mut w = match writer {
                Some(w) => w,
                None => spool.writer(CaptureKind::Transcript, service, Some(id), time_ms)?,
            };
            let wrote = if rest.is_empty() {
                Ok(())
            } else {
                w.write(&rest)
            };
            if w.size() == 0 {
                return wrote.map(|()| None);
            }
            let size = w.size();
            let header = w.finish(meta)?;
            Ok(Some((header, size, wrote.err())))
        })
        .await;
        let (committed, late) = match done {
            Ok(Ok(Some((header, size, late)))) => (Some((header, size)), late),
            Ok(Ok(None)) => (None, None),
            Ok(Err(e)) => (None, Some(e)),
            Err(e) => {
                tracing::error!(session = %session.id, error = %e, "transcript capture task failed");
                return;
            }
        };
        if let Some(e) = refused.or(late) {
            tracing::warn!(session = %session.id, error = %e, "transcript not spooled whole");
            session
                .emit(EventKind::LimitReached {
                    limit: "capture_spool".into(),
                    detail: clamp(&e.to_string(), MAX_FIELD_LEN),
                })
                .await;
        }
        if let Some((header, size)) = committed {
            session
                .emit(EventKind::Capture {
                    kind: CaptureKind::Transcript.name().to_owned(),
                    sha256: hex::encode(header.sha256),
                    size,
                    name: Some(format!("{}.cast", session.id)),
                })
                .await;
        }
    }
}

/// The store after a chunk write: ready for the next one, or failed (recording stops).
fn settle(done: Written, rec: &mut Recorder, effects: &mut Vec<Effect>) -> Store {
    match done {
        (w, Ok(())) => Store::Idle(w),
        (w, Err(e)) => {
            rec.stop();
            let _ = rec.take_pending();
            effects.push(Effect::Limit {
                limit: "capture_spool",
                detail: format!("transcript: {e}; recording stopped"),
            });
            Store::Failed(w)
        }
    }
}

/// Emits the events the shell asked for, in order.
pub(crate) async fn emit(session: &Session, effects: Vec<Effect>) {
    for e in effects {
        let kind = match e {
            Effect::Command(line) => {
                tracing::debug!(session = %session.id, line = %line, "shell command");
                EventKind::Command { line }
            }
            Effect::Download { url, tool } => {
                tracing::info!(session = %session.id, url = %url, tool = %tool, "download attempt recorded");
                EventKind::Download { url, tool }
            }
            Effect::Limit { limit, detail } => {
                tracing::info!(session = %session.id, limit, "shell cap reached");
                EventKind::LimitReached {
                    limit: limit.to_owned(),
                    detail: clamp(&detail, MAX_FIELD_LEN),
                }
            }
        };
        session.emit(kind).await;
    }
}
