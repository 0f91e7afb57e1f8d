//! Generic TCP banner service: sends a fixed greeting, records the peer's first bytes
//! (bounded, under a deadline), then closes.

use super::conn::Session;
use honeybee_proto::config::BannerOptions;
use honeybee_proto::event::{EventKind, MAX_DATA_LEN};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout_at};

/// Validated banner options.
#[derive(Debug)]
pub(crate) struct BannerService {
    banner: Vec<u8>,
    max_capture: usize,
    read_timeout: Duration,
}

impl BannerService {
    pub(crate) fn new(opts: &BannerOptions) -> Self {
        BannerService {
            banner: opts.banner.as_bytes().to_vec(),
            // The wire format caps the bytes one event may carry.
            max_capture: (opts.max_capture_bytes as usize).min(MAX_DATA_LEN),
            read_timeout: Duration::from_millis(u64::from(opts.read_timeout_ms)),
        }
    }

    /// Serves one connection; returns when it is done and the stream can be dropped.
    pub(crate) async fn serve<S>(&self, session: &Session, mut stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let deadline = Instant::now() + self.read_timeout;
        if !self.banner.is_empty() {
            match timeout_at(deadline, stream.write_all(&self.banner)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(session = %session.id, error = %e, "banner write failed");
                    return;
                }
                Err(_) => return,
            }
        }
        // One byte past the cap tells whether the peer sent more than was kept.
        let mut buf = vec![0u8; self.max_capture + 1];
        let mut filled = 0;
        while filled < buf.len() {
            match timeout_at(deadline, stream.read(&mut buf[filled..])).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(n)) => filled += n,
            }
        }
        if filled > 0 {
            let truncated = filled > self.max_capture;
            buf.truncate(filled.min(self.max_capture));
            session
                .emit(EventKind::Data {
                    bytes: buf,
                    truncated,
                })
                .await;
        }
        // A polite close: the peer sees FIN rather than a reset. Bounded, since a peer that
        // does not read can stall it.
        let _ = tokio::time::timeout(Duration::from_millis(500), stream.shutdown()).await;
    }
}
