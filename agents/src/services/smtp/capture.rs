//! A message (DATA or BDAT) streamed into the capture spool as it arrives, so a
//! connection never holds more than one block of it in memory.

use crate::captures::CaptureWriter;
use crate::services::conn::Session;
use honeybee_proto::capture::CaptureKind;
use honeybee_proto::event::{EventKind, MAX_FIELD_LEN, clamp};

/// Bytes gathered before they are written out (off the async threads).
const BLOCK: usize = 64 * 1024;

/// One message being captured.
pub(crate) struct Message {
    writer: Option<CaptureWriter>,
    pending: Vec<u8>,
    /// Bytes received, kept or not.
    pub size: u64,
    /// Most bytes kept; past it the rest is counted and dropped.
    cap: u64,
    failed: Option<String>,
}

impl Message {
    pub(crate) async fn start(session: &Session, cap: u64) -> Message {
        let writer = match session.captures.clone() {
            None => None,
            Some(spool) => {
                let service = session.service.to_string();
                let id = session.id;
                tokio::task::spawn_blocking(move || {
                    spool.writer(
                        CaptureKind::Upload,
                        service,
                        Some(id),
                        crate::sink::now_ms(),
                    )
                })
                .await
                .ok()
                .and_then(Result::ok)
            }
        };
        Message {
            writer,
            pending: Vec::new(),
            size: 0,
            cap,
            failed: None,
        }
    }

    pub(crate) async fn push(&mut self, bytes: &[u8]) {
        let kept = self.size.min(self.cap);
        let room = usize::try_from(self.cap - kept).unwrap_or(usize::MAX);
        self.size += bytes.len() as u64;
        if self.writer.is_some() {
            self.pending
                .extend_from_slice(&bytes[..bytes.len().min(room)]);
            if self.pending.len() >= BLOCK {
                self.flush().await;
            }
        }
    }

    async fn flush(&mut self) {
        let Some(mut w) = self.writer.take() else {
            self.pending.clear();
            return;
        };
        let block = std::mem::take(&mut self.pending);
        match tokio::task::spawn_blocking(move || {
            let r = w.write(&block);
            (w, r)
        })
        .await
        {
            Ok((w, Ok(()))) => self.writer = Some(w),
            Ok((_, Err(e))) => self.failed = Some(e.to_string()),
            Err(e) => self.failed = Some(e.to_string()),
        }
    }

    /// Commits the capture and records it (or why it could not be kept).
    pub(crate) async fn finish(
        mut self,
        session: &Session,
        name: &str,
        meta: Vec<(String, String)>,
    ) {
        self.flush().await;
        if self.size > self.cap {
            session
                .emit(EventKind::LimitReached {
                    limit: "smtp_message_bytes".into(),
                    detail: format!("message of {} bytes kept up to {}", self.size, self.cap),
                })
                .await;
        }
        if let Some(e) = self.failed.take() {
            session
                .emit(EventKind::LimitReached {
                    limit: "capture_spool".into(),
                    detail: clamp(&e, MAX_FIELD_LEN),
                })
                .await;
            return;
        }
        let Some(w) = self.writer.take().filter(|w| w.size() > 0) else {
            return;
        };
        let size = w.size();
        match tokio::task::spawn_blocking(move || w.finish(meta)).await {
            Ok(Ok(header)) => {
                session
                    .emit(EventKind::Capture {
                        kind: CaptureKind::Upload.name().to_owned(),
                        sha256: hex::encode(header.sha256),
                        size,
                        name: Some(clamp(name, MAX_FIELD_LEN)),
                    })
                    .await;
            }
            Ok(Err(e)) => {
                session
                    .emit(EventKind::LimitReached {
                        limit: "capture_spool".into(),
                        detail: clamp(&e.to_string(), MAX_FIELD_LEN),
                    })
                    .await;
            }
            Err(_) => {}
        }
    }
}
