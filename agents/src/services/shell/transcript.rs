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
use std::sync::mpsc;
use std::time::Instant;

/// Recorded bytes gathered before they are written to the spool.
const CHUNK: usize = 64 * 1024;
/// Most recorded bytes held while the previous chunk is still being written; past it the
/// session waits for that write (back-pressure on a disk that cannot keep up: memory
/// stays bounded and the recording loses nothing).
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
    /// A chunk is being written on the blocking pool; its result comes on the channel.
    Busy(mpsc::Receiver<Written>),
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

    /// Hands a full chunk to the blocking pool. Never waits for the disk here (these calls
    /// come from protocol handlers, some under a lock) unless the previous chunk is still
    /// being written and the backlog is full.
    fn drain(&mut self, effects: &mut Vec<Effect>) {
        if self.rec.pending_len() < CHUNK {
            return;
        }
        self.poll_busy(self.rec.pending_len() > MAX_BACKLOG, effects);
        match &mut self.store {
            Store::None | Store::Failed(_) => {
                // Nothing will keep these bytes: drop them as they come.
                let _ = self.rec.take_pending();
            }
            // Still writing, backlog within bounds: the chunk waits.
            Store::Busy(_) => {}
            Store::Idle(w) => {
                let writer = w.take();
                let chunk = self.rec.take_pending();
                let Some(spool) = self.spool.clone() else {
                    return;
                };
                let (service, session, time_ms) =
                    (self.service.clone(), self.session, self.time_ms);
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
                self.store = match tokio::runtime::Handle::try_current() {
                    Ok(rt) => {
                        let (tx, rx) = mpsc::sync_channel(1);
                        // The result is sent back; if the job panics the sender is dropped
                        // and the receiver sees it.
                        drop(rt.spawn_blocking(move || {
                            let _ = tx.send(job());
                        }));
                        Store::Busy(rx)
                    }
                    // Outside a runtime (unit tests) the write is done here.
                    Err(_) => settle(job(), &mut self.rec, effects),
                };
            }
        }
    }

    /// Takes the result of a chunk write that has finished; with `wait`, waits for it.
    fn poll_busy(&mut self, wait: bool, effects: &mut Vec<Effect>) {
        let Store::Busy(rx) = &self.store else {
            return;
        };
        let done = if wait {
            rx.recv().map_err(|_| mpsc::TryRecvError::Disconnected)
        } else {
            rx.try_recv()
        };
        let done = match done {
            Ok(done) => done,
            Err(mpsc::TryRecvError::Empty) => return,
            Err(mpsc::TryRecvError::Disconnected) => (
                None,
                Err(std::io::Error::other("transcript write task failed").into()),
            ),
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
            Store::Busy(rx) => match tokio::task::spawn_blocking(move || rx.recv()).await {
                Ok(Ok((w, Ok(())))) => w,
                Ok(Ok((w, Err(e)))) => {
                    refused = Some(e);
                    w
                }
                _ => {
                    tracing::error!(session = %session.id, "transcript write task failed");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::{EventSink, new_session_id};
    use std::sync::Arc;

    fn session(
        spool: Option<CaptureSpool>,
    ) -> (Session, tokio::sync::mpsc::Receiver<crate::sink::NewEvent>) {
        let (sink, rx) = EventSink::channel(1024);
        let s = Session {
            service: Arc::from("telnet"),
            id: new_session_id(),
            src: "203.0.113.9:40000".parse().unwrap(),
            dst: "192.0.2.10:23".parse().unwrap(),
            sink,
            captures: spool,
        };
        (s, rx)
    }

    fn on_disk(dir: &std::path::Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    }

    /// Types `n` records of 4 KiB, giving the blocking pool time to catch up as a real
    /// session's pauses would.
    async fn type_records(t: &mut Transcript, n: usize, effects: &mut Vec<Effect>) {
        for _ in 0..n {
            t.input(&[b'a'; 4096], effects);
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn recording_streams_and_the_capture_is_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let spool = CaptureSpool::open(dir.path(), 64 << 20).unwrap();
        let (s, mut rx) = session(Some(spool.clone()));
        let mut t = Transcript::new(8 << 20, &s);
        let mut effects = Vec::new();
        t.resize(100, 30, &mut effects);
        t.set_env("TERM", "vt100");
        type_records(&mut t, 256, &mut effects).await;
        assert!(effects.is_empty(), "{effects:?}");
        // Held in memory: at most the backlog and one record, whatever the length.
        assert!(t.rec.pending_len() <= MAX_BACKLOG + 8192);
        t.upload(&s, vec![]).await;
        let e = rx.recv().await.unwrap();
        let EventKind::Capture { kind, size, .. } = e.kind else {
            panic!("{e:?}")
        };
        assert_eq!(kind, "transcript");
        let pending = spool.pending();
        let content = std::fs::read(&pending[0].1).unwrap();
        assert_eq!(content.len() as u64, size);
        let text = String::from_utf8(content).unwrap();
        let mut lines = text.lines();
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with(r#"{"version":2,"width":100,"height":30,"#)
        );
        assert_eq!(lines.count(), 256, "every record, in one file");
        assert_eq!(spool.used_bytes(), on_disk(dir.path()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_spool_stops_the_recording_and_keeps_what_was_stored() {
        let dir = tempfile::tempdir().unwrap();
        let spool = CaptureSpool::open(dir.path(), 200 * 1024).unwrap();
        let (s, mut rx) = session(Some(spool.clone()));
        let mut t = Transcript::new(8 << 20, &s);
        let mut effects = Vec::new();
        type_records(&mut t, 512, &mut effects).await;
        // Wait (bounded) for the last write to settle, as more typing would.
        for _ in 0..200 {
            if effects.iter().any(|e| {
                matches!(
                    e,
                    Effect::Limit {
                        limit: "capture_spool",
                        ..
                    }
                )
            }) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            type_records(&mut t, 16, &mut effects).await;
        }
        assert!(
            effects.iter().any(|e| matches!(
                e,
                Effect::Limit {
                    limit: "capture_spool",
                    ..
                }
            )),
            "{effects:?}"
        );
        assert_eq!(t.rec.pending_len(), 0, "nothing more is held");
        t.upload(&s, vec![]).await;
        let e = rx.recv().await.unwrap();
        let EventKind::Capture { size, .. } = e.kind else {
            panic!("{e:?}")
        };
        assert!(size > 0 && size <= 200 * 1024, "{size}");
        // What was kept is whole lines: a valid (shorter) asciicast.
        let content = std::fs::read(&spool.pending()[0].1).unwrap();
        assert!(content.ends_with(b"]\n"));
        assert!(spool.used_bytes() <= 200 * 1024);
        assert_eq!(spool.used_bytes(), on_disk(dir.path()));
    }

    #[tokio::test]
    async fn without_a_spool_nothing_is_held() {
        let (s, _rx) = session(None);
        let mut t = Transcript::new(8 << 20, &s);
        let mut effects = Vec::new();
        type_records(&mut t, 256, &mut effects).await;
        assert!(t.rec.pending_len() < CHUNK + 8192);
        t.upload(&s, vec![]).await;
    }
}
