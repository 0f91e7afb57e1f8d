//! What every honeypot connection shares whatever the protocol: its session identity and
//! events, a byte-counting stream, and a kill switch that ends the connection at the
//! session deadline or on shutdown even when a protocol library owns the stream.

use crate::captures::{CaptureSpool, NewCapture};
use crate::sink::{EventSink, NewEvent};
use honeybee_proto::capture::CaptureKind;
use honeybee_proto::event::{EventKind, MAX_FIELD_LEN, clamp};
use honeybee_proto::ids::SessionId;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most bytes of the peer's first input kept for protocol code that needs them after a
/// library consumed them (the SSH client's identification line is at most 255 bytes).
pub(crate) const HEAD_CAP: usize = 256;

/// One attacker connection as the events see it.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub service: Arc<str>,
    pub id: SessionId,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub sink: EventSink,
    /// Where captures go; `None` in tests that run services without an agent.
    pub captures: Option<CaptureSpool>,
}

impl Session {
    /// Spools `content` for upload to the core and records it as a `Capture` event of
    /// this session. A full spool is reported as `LimitReached` (the content is lost,
    /// never the event). Returns the hex SHA-256 when the capture was spooled.
    pub(crate) async fn capture(
        &self,
        kind: CaptureKind,
        name: Option<String>,
        meta: Vec<(String, String)>,
        content: Vec<u8>,
    ) -> Option<String> {
        let size = content.len() as u64;
        let Some(spool) = self.captures.clone() else {
            tracing::debug!(session = %self.id, size, "capture dropped: no capture spool");
            return None;
        };
        let new = NewCapture {
            kind,
            service: self.service.to_string(),
            session: Some(self.id),
            time_ms: crate::sink::now_ms(),
            meta,
            content,
        };
        // Hashing and two file writes: off the async threads.
        let added = tokio::task::spawn_blocking(move || spool.add(new)).await;
        match added {
            Ok(Ok(header)) => {
                let sha256 = hex::encode(header.sha256);
                self.emit(EventKind::Capture {
                    kind: kind.name().to_owned(),
                    sha256: sha256.clone(),
                    size,
                    name: name.map(|n| clamp(&n, MAX_FIELD_LEN)),
                })
                .await;
                Some(sha256)
            }
            Ok(Err(e)) => {
                tracing::warn!(session = %self.id, error = %e, "capture not spooled");
                self.emit(EventKind::LimitReached {
                    limit: "capture_spool".into(),
                    detail: clamp(&e.to_string(), MAX_FIELD_LEN),
                })
                .await;
                None
            }
            Err(e) => {
                tracing::error!(session = %self.id, error = %e, "capture task failed");
                None
            }
        }
    }

    pub(crate) async fn emit(&self, kind: EventKind) {
        self.sink
            .emit(NewEvent::now(
                &self.service,
                Some(self.id),
                Some(self.src),
                Some(self.dst),
                kind,
            ))
            .await;
    }
}

/// Counters of a [`TapStream`], readable while the stream is owned elsewhere.
#[derive(Debug, Default)]
pub(crate) struct Tap {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    head: Mutex<Vec<u8>>,
}

impl Tap {
    pub(crate) fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }

    pub(crate) fn bytes_out(&self) -> u64 {
        self.bytes_out.load(Ordering::Relaxed)
    }

    /// The first (at most [`HEAD_CAP`]) bytes the peer sent.
    pub(crate) fn head(&self) -> Vec<u8> {
        self.head.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn record_in(&self, data: &[u8]) {
        self.bytes_in
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        let mut head = self.head.lock().unwrap_or_else(|e| e.into_inner());
        let room = HEAD_CAP.saturating_sub(head.len());
        if room > 0 {
            head.extend_from_slice(&data[..room.min(data.len())]);
        }
    }
}

/// A future that resolves when the connection must end.
pub(crate) type Kill = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A stream that counts bytes into a [`Tap`] and fails every read and write once its
/// kill future has resolved. The kill future is polled on every I/O so that its waker is
/// registered: a task parked on a read wakes up and sees the error.
pub(crate) struct TapStream<S> {
    inner: S,
    tap: Arc<Tap>,
    kill: Kill,
    killed: bool,
}

impl<S> TapStream<S> {
    pub(crate) fn new(inner: S, tap: Arc<Tap>, kill: Kill) -> Self {
        TapStream {
            inner,
            tap,
            kill,
            killed: false,
        }
    }

    fn check_kill(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if !self.killed && self.kill.as_mut().poll(cx).is_ready() {
            self.killed = true;
        }
        if self.killed {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "session deadline or shutdown",
            ))
        } else {
            Ok(())
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TapStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_kill(cx)?;
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            this.tap.record_in(&buf.filled()[before..]);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TapStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.check_kill(cx)?;
        let r = Pin::new(&mut this.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = r {
            this.tap.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.check_kill(cx)?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.killed {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn counts_and_kills() {
        let (a, mut b) = tokio::io::duplex(64);
        let tap = Arc::new(Tap::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let kill: Kill = Box::pin(async move {
            let _ = rx.await;
        });
        let mut s = TapStream::new(a, tap.clone(), kill);
        b.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hello");
        s.write_all(b"abc").await.unwrap();
        assert_eq!((tap.bytes_in(), tap.bytes_out()), (5, 3));
        assert_eq!(tap.head(), b"hello");
        // A read parked on the stream wakes up when the kill future resolves.
        let reader = tokio::spawn(async move { s.read(&mut buf).await });
        tokio::task::yield_now().await;
        tx.send(()).unwrap();
        assert!(reader.await.unwrap().is_err());
    }
}
