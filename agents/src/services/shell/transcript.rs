//! Glue between the sans-IO shell and a live session: the transcript on the wall clock,
//! its upload as a capture, and the shell's effects as events.

use super::Effect;
use super::asciicast::{Recorded, Recorder};
use crate::services::conn::Session;
use honeybee_proto::capture::CaptureKind;
use honeybee_proto::event::{EventKind, MAX_FIELD_LEN, clamp};
use std::time::Instant;

/// A session's asciicast recording, timed from its start.
#[derive(Debug)]
pub(crate) struct Transcript {
    rec: Recorder,
    start: Instant,
    cap: usize,
}

impl Transcript {
    pub(crate) fn new(cap: usize) -> Transcript {
        Transcript {
            rec: Recorder::new(crate::sink::now_ms() / 1000, cap),
            start: Instant::now(),
            cap,
        }
    }

    fn check(&self, r: Recorded, effects: &mut Vec<Effect>) {
        if r == Recorded::CapReached {
            effects.push(Effect::Limit {
                limit: "transcript",
                detail: format!("transcript reached {} bytes; recording stopped", self.cap),
            });
        }
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

    /// Spools the recording as a `Transcript` capture (which emits the `Capture` event).
    /// An empty recording (a client that opened a channel and left) is not kept.
    pub(crate) async fn upload(self, session: &Session, meta: Vec<(String, String)>) {
        if self.rec.is_empty() {
            return;
        }
        let content = self.rec.finish();
        let name = format!("{}.cast", session.id);
        session
            .capture(CaptureKind::Transcript, Some(name), meta, content)
            .await;
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
