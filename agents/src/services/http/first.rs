//! Reading one request head off the connection, under the head size and header count
//! caps, with `httparse` (what lighttpd-like servers parse, and nothing hand-rolled):
//! the verdict is a complete head, bytes that are not HTTP (`400`), or a head over the
//! caps (`431`). Every request of a connection is read here; `request.rs` then checks
//! the parsed head the way lighttpd does.

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// What the first bytes of a connection were.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum First {
    /// A complete request head (the bytes read, returned beside, may hold more).
    Request,
    /// Not HTTP (`400`) or a head over the limits (`431`): answer with this status.
    Refuse(u16),
    /// The peer closed, or sent no complete head in time.
    Gone,
}

/// Reads until the buffered bytes hold a complete request head, are not HTTP, or exceed
/// `max_len` bytes or `max_headers` header lines.
pub(crate) async fn read_first<S: AsyncRead + Unpin>(
    stream: &mut S,
    max_len: usize,
    max_headers: usize,
    timeout: Duration,
) -> (First, Vec<u8>) {
    read_head(
        stream,
        Vec::with_capacity(1024),
        max_len,
        max_headers,
        timeout,
    )
    .await
}

/// [`read_first`] for any request of a connection: `buf` holds the bytes already read
/// past the previous request (a pipelined request, or its start).
pub(crate) async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    mut buf: Vec<u8>,
    max_len: usize,
    max_headers: usize,
    timeout: Duration,
) -> (First, Vec<u8>) {
    if !buf.is_empty()
        && let Some(first) = classify(&buf, max_len, max_headers)
    {
        return (first, buf);
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut chunk = [0u8; 4096];
    // Bytes seen at the last parse: `None` before the first.
    let mut parsed: Option<usize> = (!buf.is_empty()).then_some(buf.len());
    loop {
        let room = (max_len + 1).saturating_sub(buf.len()).min(chunk.len());
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut chunk[..room])).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) | Err(_) => return (First::Gone, buf),
        };
        if n == 0 {
            return (First::Gone, buf);
        }
        buf.extend_from_slice(&chunk[..n]);
        // Parse the first read (a binary probe fails at its first byte), then when a line
        // ends or another 512 bytes came: a peer that drips bytes must not make every
        // byte cost a parse of everything before it.
        let due = match parsed {
            None => true,
            Some(at) => chunk[..n].contains(&b'\n') || buf.len() >= at + 512,
        };
        let verdict = if due || buf.len() > max_len {
            parsed = Some(buf.len());
            classify(&buf, max_len, max_headers)
        } else {
            None
        };
        if let Some(first) = verdict {
            return (first, buf);
        }
    }
}

/// The verdict on `buf` so far, or `None` if more bytes are needed.
fn classify(buf: &[u8], max_len: usize, max_headers: usize) -> Option<First> {
    let mut headers = vec![httparse::EMPTY_HEADER; max_headers];
    match httparse::Request::new(&mut headers).parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= max_len => Some(First::Request),
        Ok(httparse::Status::Complete(_)) => Some(First::Refuse(431)),
        Ok(httparse::Status::Partial) if buf.len() > max_len => Some(First::Refuse(431)),
        Ok(httparse::Status::Partial) => None,
        Err(httparse::Error::TooManyHeaders) => Some(First::Refuse(431)),
        Err(_) => Some(First::Refuse(400)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn first(input: &[u8]) -> First {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        client.write_all(input).await.unwrap();
        drop(client);
        read_first(&mut server, 16 * 1024, 100, Duration::from_secs(5))
            .await
            .0
    }

    #[tokio::test]
    async fn heads_are_classified_like_hyper_would() {
        assert_eq!(
            first(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await,
            First::Request
        );
        // A body after the head is left for hyper.
        assert_eq!(
            first(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc").await,
            First::Request
        );
        assert_eq!(first(b"SSH-2.0-Go\r\n").await, First::Refuse(400));
        // A TLS ClientHello on the plain port: refused at its first byte.
        assert_eq!(
            first(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03").await,
            First::Refuse(400)
        );
        assert_eq!(first(b"GET / HTTP/1.1\r\nHost: x\r\n").await, First::Gone);
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..101 {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(first(&many).await, First::Refuse(431));
        let mut huge = b"GET / HTTP/1.1\r\nX: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', 20 * 1024));
        assert_eq!(first(&huge).await, First::Refuse(431));
    }
}
