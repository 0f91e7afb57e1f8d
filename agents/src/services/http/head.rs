//! A stream wrapper that keeps the first bytes a peer sent, so that a connection hyper
//! refuses as unparsable (a TLS hello, RTSP, a binary probe) is still recorded.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The first bytes read, shared with whoever reports them.
#[derive(Debug, Default)]
pub(crate) struct Head {
    bytes: Mutex<Vec<u8>>,
    cap: usize,
}

impl Head {
    pub(crate) fn new(cap: usize) -> Arc<Head> {
        Arc::new(Head {
            bytes: Mutex::new(Vec::new()),
            cap,
        })
    }

    /// The bytes kept, and whether the peer sent more.
    pub(crate) fn take(&self) -> (Vec<u8>, bool) {
        let mut b = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        let truncated = b.len() > self.cap;
        b.truncate(self.cap);
        (std::mem::take(&mut *b), truncated)
    }

    fn record(&self, data: &[u8]) {
        let mut b = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        // One byte past the cap says that there was more.
        let room = (self.cap + 1).saturating_sub(b.len());
        b.extend_from_slice(&data[..room.min(data.len())]);
    }
}

/// Records the first bytes read into its [`Head`]; bytes handed back with
/// [`HeadStream::replay`] are read again first, and not recorded twice.
pub(crate) struct HeadStream<S> {
    inner: S,
    head: Arc<Head>,
    replay: Vec<u8>,
    replayed: usize,
}

impl<S> HeadStream<S> {
    pub(crate) fn new(inner: S, head: Arc<Head>) -> Self {
        HeadStream {
            inner,
            head,
            replay: Vec::new(),
            replayed: 0,
        }
    }

    /// Bytes already read from this stream that the next reader must see again before
    /// whatever the peer sends next (the first request head, read before hyper).
    pub(crate) fn replay(&mut self, bytes: Vec<u8>) {
        self.replay = bytes;
        self.replayed = 0;
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HeadStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.replayed < this.replay.len() {
            let n = (this.replay.len() - this.replayed).min(buf.remaining());
            buf.put_slice(&this.replay[this.replayed..this.replayed + n]);
            this.replayed += n;
            if this.replayed == this.replay.len() {
                this.replay = Vec::new();
                this.replayed = 0;
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            this.head.record(&buf.filled()[before..]);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeadStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn keeps_the_first_bytes_only() {
        let (a, mut b) = tokio::io::duplex(64);
        let head = Head::new(4);
        let mut s = HeadStream::new(a, Arc::clone(&head));
        b.write_all(b"abc").await.unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(s.read(&mut buf).await.unwrap(), 3);
        assert_eq!(head.take(), (b"abc".to_vec(), false));
        b.write_all(b"defgh").await.unwrap();
        let _ = s.read(&mut buf).await.unwrap();
        assert_eq!(head.take(), (b"defg".to_vec(), true));
    }

    #[tokio::test]
    async fn replayed_bytes_come_first_and_are_not_recorded_twice() {
        let (a, mut b) = tokio::io::duplex(64);
        let head = Head::new(64);
        let mut s = HeadStream::new(a, Arc::clone(&head));
        b.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut first = [0u8; 18];
        s.read_exact(&mut first).await.unwrap();
        s.replay(first.to_vec());
        b.write_all(b"next bytes").await.unwrap();
        drop(b);
        let mut all = Vec::new();
        s.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"GET / HTTP/1.1\r\n\r\nnext bytes");
        assert_eq!(head.take().0, b"GET / HTTP/1.1\r\n\r\nnext bytes");
    }
}
