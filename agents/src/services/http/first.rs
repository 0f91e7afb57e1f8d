//! The first request head of a connection, read before hyper sees it.
//!
//! hyper answers a head it cannot parse with a bare `400` (no `Server`, no body) and an
//! oversized one with a bare `431`; no lighttpd or Apache does that, so a scanner that
//! sends a TLS hello, RTSP or binary junk to the port would see a tell. Reading the first
//! head here, with the same parser hyper uses (`httparse`) and the same limits, lets the
//! service answer those with the persona's own error page. A head that parses is handed to
//! hyper untouched, followed by the rest of the stream (`HeadStream::replay`). Later requests on a
//! keep-alive connection are hyper's alone; a peer that first sent a valid request is
//! speaking HTTP.

use super::persona::{self, Reply};
use std::io;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut chunk = [0u8; 4096];
    // Bytes seen at the last parse: `None` before the first.
    let mut parsed: Option<usize> = None;
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

/// Writes the persona's error page for `status` as a complete HTTP/1.1 response that
/// closes the connection, with the headers hyper would have written for it.
pub(crate) async fn refuse<S: AsyncWrite + Unpin>(
    stream: &mut S,
    persona: honeybee_proto::config::HttpPersona,
    server: &str,
    status: u16,
) -> io::Result<()> {
    let bytes = serialize(persona::error_page(persona, status), server);
    stream.write_all(&bytes).await?;
    stream.flush().await?;
    stream.shutdown().await
}

fn serialize(reply: Reply, server: &str) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\n",
        reply.status,
        persona::reason(reply.status),
        reply.content_type
    );
    for (name, value) in &reply.headers {
        // Persona headers are ASCII names and values; anything else is left out, as
        // `response()` does for hyper.
        if value
            .bytes()
            .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
        {
            head += &format!("{}: {value}\r\n", title_case(name));
        }
    }
    head += &format!(
        "Server: {server}\r\nConnection: close\r\nContent-Length: {}\r\nDate: {}\r\n\r\n",
        reply.body.len(),
        httpdate::fmt_http_date(std::time::SystemTime::now())
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(&reply.body);
    out
}

/// `x-powered-by` → `X-Powered-By`, as hyper writes with `title_case_headers`.
fn title_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper { c.to_ascii_uppercase() } else { c });
        upper = c == '-';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use honeybee_proto::config::HttpPersona;

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

    #[test]
    fn refusals_carry_the_persona_page_and_server() {
        let out = serialize(
            persona::error_page(HttpPersona::Router, 400),
            "lighttpd/1.4.59",
        );
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(head.contains("\r\nServer: lighttpd/1.4.59\r\n"), "{head}");
        assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
        assert!(head.contains("\r\nDate: "), "{head}");
        assert!(body.contains("400 - Bad Request"), "{body}");
        assert_eq!(title_case("x-powered-by"), "X-Powered-By");
    }
}
