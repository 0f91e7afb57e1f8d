//! Request bodies read frame by frame and streamed to the capture spool as they arrive:
//! a connection holds a bounded prefix (what the personas parse and the event shows) and
//! one pending chunk, never the body, whatever `max_body_bytes` allows.

use super::BODY_TIMEOUT;
use super::request::Framing;
use crate::captures::{CaptureSpool, CaptureSpoolError, CaptureWriter};
use crate::services::conn::Session;
use honeybee_proto::capture::CaptureKind;
use honeybee_proto::event::{EventKind, MAX_FIELD_LEN, clamp};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

/// Bytes of a body kept in memory for the personas (login forms, XML-RPC calls) and the
/// event's inline copy. A form login is a few hundred bytes; 64 KiB holds an XML-RPC
/// `system.multicall` up to the 512 values the persona reads out of one call.
pub(crate) const PERSONA_PREFIX: usize = 64 * 1024;
/// Bytes gathered before they are written to the spool: one write per chunk, not one per
/// frame (a slow client sends many tiny frames).
pub(crate) const FLUSH_AT: usize = 64 * 1024;

/// How reading a request body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyEnd {
    Complete,
    /// Longer than `max_body_bytes` (announced or sent).
    TooLarge,
    TimedOut,
    Broken,
}

/// A body as far as the request handler needs it once read.
#[derive(Debug)]
pub(crate) struct Body {
    /// The first [`PERSONA_PREFIX`] bytes (never fewer than the inline cap allows).
    pub prefix: Vec<u8>,
    /// Every byte received (at most `max_body_bytes`).
    pub size: u64,
    pub end: BodyEnd,
    /// The capture in progress, once the body passed the inline cap.
    capture: Option<Stream>,
}

/// A body capture being streamed to the spool on the blocking pool.
#[derive(Debug)]
struct Stream {
    spool: Option<CaptureSpool>,
    writer: Option<CaptureWriter>,
    /// Bytes not yet written; at most [`FLUSH_AT`] plus one frame.
    pending: Vec<u8>,
    /// Why the spool refused the capture; nothing is kept then.
    failed: Option<CaptureSpoolError>,
    service: String,
    session: honeybee_proto::ids::SessionId,
    time_ms: i64,
}

impl Stream {
    fn new(session: &Session) -> Stream {
        Stream {
            spool: session.captures.clone(),
            writer: None,
            pending: Vec::new(),
            failed: None,
            service: session.service.to_string(),
            session: session.id,
            time_ms: crate::sink::now_ms(),
        }
    }

    /// Writes what is pending (creating the capture file on the first write). After a
    /// refusal nothing more is written and the partial file is gone.
    async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let Some(spool) = self.spool.clone() else {
            // No spool (services run without an agent): counted, not kept.
            self.pending.clear();
            return;
        };
        if self.failed.is_some() {
            self.pending.clear();
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let writer = self.writer.take();
        let (service, session, time_ms) = (self.service.clone(), self.session, self.time_ms);
        let done = tokio::task::spawn_blocking(move || {
            let mut w = match writer {
                Some(w) => w,
                None => match spool.writer(CaptureKind::Body, service, Some(session), time_ms) {
                    Ok(w) => w,
                    Err(e) => return (None, pending, Err(e)),
                },
            };
            let r = w.write(&pending);
            (Some(w), pending, r)
        })
        .await;
        match done {
            Ok((w, mut pending, Ok(()))) => {
                self.writer = w;
                pending.clear();
                // The buffer is reused for the next chunk.
                self.pending = pending;
            }
            Ok((w, _, Err(e))) => {
                // Like a capture that does not fit: none of it is kept.
                self.failed = Some(e);
                drop_writer(w).await;
            }
            Err(e) => {
                self.failed = Some(CaptureSpoolError::Io(std::io::Error::other(e.to_string())));
            }
        }
    }
}

/// Drops a writer (which deletes its partial file) off the async threads.
async fn drop_writer(w: Option<CaptureWriter>) {
    if let Some(w) = w {
        let _ = tokio::task::spawn_blocking(move || drop(w)).await;
    }
}

impl Body {
    fn new(capacity: usize) -> Body {
        Body {
            prefix: Vec::with_capacity(capacity.min(PERSONA_PREFIX)),
            size: 0,
            end: BodyEnd::Complete,
            capture: None,
        }
    }

    /// A body that was refused unread (its announced length is over the cap).
    pub(crate) fn refused() -> Body {
        let mut b = Body::new(0);
        b.end = BodyEnd::TooLarge;
        b
    }

    /// A request without a body.
    pub(crate) fn empty() -> Body {
        Body::new(0)
    }

    /// Takes `data` in: the prefix keeps what fits, the capture (started once the body
    /// passes `inline`) gets all of it.
    async fn take(&mut self, data: &[u8], inline: usize, session: &Session) {
        self.size += data.len() as u64;
        if let Some(c) = &mut self.capture {
            // What is pending leaves first, so the buffer never grows past one chunk
            // (or one frame, if a frame is larger).
            if c.pending.len() + data.len() > FLUSH_AT {
                c.flush().await;
            }
            c.pending.extend_from_slice(data);
        } else if self.size > inline as u64 {
            // Everything before is still whole in the prefix (inline ≤ PERSONA_PREFIX).
            let mut c = Stream::new(session);
            c.pending
                .reserve_exact(FLUSH_AT.max(self.prefix.len() + data.len()));
            c.pending.extend_from_slice(&self.prefix);
            c.pending.extend_from_slice(data);
            self.capture = Some(c);
        }
        let room = PERSONA_PREFIX.saturating_sub(self.prefix.len());
        self.prefix.extend_from_slice(&data[..data.len().min(room)]);
        if let Some(c) = &mut self.capture
            && c.pending.len() >= FLUSH_AT
        {
            c.flush().await;
        }
    }

    /// Ends the body: a body over the cap is not kept; any other body past the inline cap
    /// becomes a `Body` capture and its `Capture` event (or `LimitReached capture_spool`).
    pub(crate) async fn finish(
        &mut self,
        session: &Session,
        name: &str,
        meta: Vec<(String, String)>,
    ) {
        let Some(mut c) = self.capture.take() else {
            return;
        };
        if self.end == BodyEnd::TooLarge {
            // The 413 is the record (`http_body`); the first bytes are not kept.
            drop_writer(c.writer.take()).await;
            return;
        }
        c.flush().await;
        if c.spool.is_none() {
            tracing::debug!(session = %session.id, size = self.size, "capture dropped: no capture spool");
            return;
        }
        let result = match (c.writer.take(), c.failed.take()) {
            (Some(w), None) => tokio::task::spawn_blocking(move || w.finish(meta))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string()).into())),
            (w, Some(e)) => {
                drop_writer(w).await;
                Err(e)
            }
            (None, None) => return,
        };
        match result {
            Ok(header) => {
                session
                    .emit(EventKind::Capture {
                        kind: CaptureKind::Body.name().to_owned(),
                        sha256: hex::encode(header.sha256),
                        size: self.size,
                        name: Some(clamp(name, MAX_FIELD_LEN)),
                    })
                    .await;
            }
            Err(e) => {
                tracing::warn!(session = %session.id, error = %e, "capture not spooled");
                session
                    .emit(EventKind::LimitReached {
                        limit: "capture_spool".into(),
                        detail: clamp(&e.to_string(), MAX_FIELD_LEN),
                    })
                    .await;
            }
        }
    }
}

/// Reads the body `framing` announces, from `buf` (the bytes already read past the head)
/// and then the stream, up to `max` bytes, all of it under the body deadline, streaming
/// it to the spool once it passes `inline` bytes. What follows the body (a pipelined
/// request) is left in `buf`. Call [`Body::finish`] after.
pub(crate) async fn read_framed<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    framing: Framing,
    max: usize,
    inline: usize,
    session: &Session,
) -> Body {
    // Trust an announced length only as far as the cap allows.
    let hint = match framing {
        Framing::Length(n) => n.min(max as u64) as usize,
        _ => 0,
    };
    let mut out = Body::new(hint.min(inline.max(1024)));
    let deadline = Instant::now() + BODY_TIMEOUT;
    let mut r = Reader {
        stream,
        buf,
        deadline,
    };
    out.end = match framing {
        Framing::None => BodyEnd::Complete,
        Framing::Length(n) => r.data(n, &mut out, max, inline, session).await,
        Framing::Chunked => r.chunked(&mut out, max, inline, session).await,
    };
    out
}

/// Longest chunk-size line, and all trailer lines together, accepted in a chunked body.
const MAX_CHUNK_LINE: usize = 1024;
const MAX_TRAILERS: usize = 8 * 1024;
/// Bytes read from the stream at a time.
const READ_CHUNK: usize = 16 * 1024;

struct Reader<'a, S> {
    stream: &'a mut S,
    buf: &'a mut Vec<u8>,
    deadline: Instant,
}

impl<S: AsyncRead + Unpin> Reader<'_, S> {
    /// Reads more bytes into the buffer: `Err` with how the body ended if none came.
    async fn fill(&mut self) -> Result<(), BodyEnd> {
        let mut chunk = [0u8; READ_CHUNK];
        match tokio::time::timeout_at(self.deadline, self.stream.read(&mut chunk)).await {
            Err(_) => Err(BodyEnd::TimedOut),
            Ok(Ok(0)) | Ok(Err(_)) => Err(BodyEnd::Broken),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }

    /// `n` bytes of body data.
    async fn data(
        &mut self,
        mut n: u64,
        out: &mut Body,
        max: usize,
        inline: usize,
        session: &Session,
    ) -> BodyEnd {
        while n > 0 {
            if self.buf.is_empty()
                && let Err(end) = self.fill().await
            {
                return end;
            }
            let take = (self.buf.len() as u64).min(n) as usize;
            let room = (max as u64).saturating_sub(out.size) as usize;
            if take > room {
                out.take(&self.buf[..room], inline, session).await;
                self.buf.clear();
                return BodyEnd::TooLarge;
            }
            out.take(&self.buf[..take], inline, session).await;
            self.buf.drain(..take);
            n -= take as u64;
        }
        BodyEnd::Complete
    }

    /// A chunked body, decoded with `httparse::parse_chunk_size`; trailers are skipped.
    async fn chunked(
        &mut self,
        out: &mut Body,
        max: usize,
        inline: usize,
        session: &Session,
    ) -> BodyEnd {
        loop {
            let size = match httparse::parse_chunk_size(self.buf) {
                Ok(httparse::Status::Complete((used, size))) => {
                    self.buf.drain(..used);
                    size
                }
                Ok(httparse::Status::Partial) if self.buf.len() <= MAX_CHUNK_LINE => {
                    if let Err(end) = self.fill().await {
                        return end;
                    }
                    continue;
                }
                _ => return BodyEnd::Broken,
            };
            if size == 0 {
                return self.trailers().await;
            }
            let end = self.data(size, out, max, inline, session).await;
            if end != BodyEnd::Complete {
                return end;
            }
            while self.buf.len() < 2 {
                if let Err(end) = self.fill().await {
                    return end;
                }
            }
            if !self.buf.starts_with(b"\r\n") {
                return BodyEnd::Broken;
            }
            self.buf.drain(..2);
        }
    }

    /// Trailer lines up to the blank line that ends a chunked body.
    async fn trailers(&mut self) -> BodyEnd {
        let mut seen = 0;
        loop {
            match self.buf.windows(2).position(|w| w == b"\r\n") {
                Some(0) => {
                    self.buf.drain(..2);
                    return BodyEnd::Complete;
                }
                Some(i) => {
                    seen += i + 2;
                    self.buf.drain(..i + 2);
                }
                None => {
                    if let Err(end) = self.fill().await {
                        return end;
                    }
                }
            }
            if seen > MAX_TRAILERS || self.buf.len() > MAX_TRAILERS {
                return BodyEnd::Broken;
            }
        }
    }
}
