//! HTTP/2 over TLS (ALPN `h2`) as lighttpd 1.4.69 speaks it, for the lighttpd personas
//! (router, PLC). Framing, HPACK and flow control are the `h2` crate's; every request
//! is turned back into the HTTP/1.1 head lighttpd's HTTP/2 layer makes of it and goes
//! through the same checks, routing, events and captures as an HTTP/1.1 request
//! (`Conn::handle`), and its response is sent as HEADERS (lighttpd's header order,
//! lower-case, no `Connection`) and DATA frames. What a fingerprinter reads before any
//! request is lighttpd's, byte for byte (compared by `tests/http_tls.rs`): its SETTINGS
//! frame and connection WINDOW_UPDATE, sent as soon as TLS is up, and a GOAWAY
//! (PROTOCOL_ERROR, last stream 0) for a client preface that is not one. `h2` cannot send
//! lighttpd's `SETTINGS_NO_RFC7540_PRIORITIES` (0x9) and sends its WINDOW_UPDATE only
//! after reading the preface, so the opening is written here and `h2`'s own SETTINGS and
//! first WINDOW_UPDATE (the same values) are dropped on the way out ([`Shim`]).

use super::{
    Conn, HEADER_TIMEOUT, KEEP_ALIVE_IDLE, LINGER, MAX_HEAD, MAX_HEADERS, MAX_REQUESTS_PER_CONN,
    request,
};
use crate::services::stopped;
use bytes::Bytes;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The ALPN name of HTTP/2 over TLS.
pub(crate) const ALPN: &[u8] = b"h2";
/// The client connection preface (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Streams a client may have open at once (lighttpd's `SETTINGS_MAX_CONCURRENT_STREAMS`).
pub(crate) const MAX_STREAMS: u32 = 8;
/// Each stream's receive window (lighttpd's `SETTINGS_INITIAL_WINDOW_SIZE`).
const STREAM_WINDOW: u32 = 65_536;
/// Largest header list a client may send (lighttpd's `SETTINGS_MAX_HEADER_LIST_SIZE`);
/// the head made of it is still refused with `431` past [`MAX_HEAD`], as lighttpd does.
pub(crate) const MAX_HEADER_LIST: u32 = 65_535;
/// The connection's receive window after lighttpd's WINDOW_UPDATE (65535 + 196609).
const CONNECTION_WINDOW: u32 = 262_144;
/// Streams the client may reset before they are accepted (CVE-2023-44487, "rapid
/// reset"): past it the connection ends with GOAWAY ENHANCE_YOUR_CALM.
pub(crate) const MAX_PENDING_RESETS: usize = 20;
/// Streams `h2` may reset for the client's protocol errors before it ends the
/// connection with ENHANCE_YOUR_CALM.
const MAX_ERROR_RESETS: usize = 64;
/// Reset streams remembered at once.
const MAX_RESET_STREAMS: usize = 16;
/// Response bytes buffered per stream for a client that does not read.
const MAX_SEND_BUFFER: usize = 128 * 1024;

/// What lighttpd 1.4.69 sends first on an HTTP/2 connection, before it has read
/// anything: SETTINGS (MAX_CONCURRENT_STREAMS 8, INITIAL_WINDOW_SIZE 65536,
/// MAX_HEADER_LIST_SIZE 65535, ENABLE_CONNECT_PROTOCOL 1, NO_RFC7540_PRIORITIES 1, in
/// this order) and a connection WINDOW_UPDATE of 196609. Recorded from the real server.
pub(crate) const OPENING: [u8; 52] = [
    0, 0, 30, 4, 0, 0, 0, 0, 0, // SETTINGS, 30 bytes, stream 0
    0, 3, 0, 0, 0, 8, // MAX_CONCURRENT_STREAMS
    0, 4, 0, 1, 0, 0, // INITIAL_WINDOW_SIZE
    0, 6, 0, 0, 0xff, 0xff, // MAX_HEADER_LIST_SIZE
    0, 8, 0, 0, 0, 1, // ENABLE_CONNECT_PROTOCOL
    0, 9, 0, 0, 0, 1, // NO_RFC7540_PRIORITIES
    0, 0, 4, 8, 0, 0, 0, 0, 0, // WINDOW_UPDATE, 4 bytes, stream 0
    0, 3, 0, 1, // 196609
];

/// lighttpd's answer to a bad client preface: GOAWAY, last stream 0, PROTOCOL_ERROR.
const GOAWAY_PROTOCOL_ERROR: [u8; 17] = [0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// Serves one HTTP/2 connection: after the TLS handshake chose `h2` (`got` empty), or
/// when a connection began with the start of the preface (`got`, prior knowledge).
pub(super) async fn serve<S>(
    conn: Arc<Conn>,
    mut io: S,
    mut stop: watch::Receiver<bool>,
    mut got: Vec<u8>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if write_all(&mut io, &OPENING).await.is_err() {
        return;
    }
    let read = tokio::select! {
        r = tokio::time::timeout(HEADER_TIMEOUT, read_preface(&mut io, &mut got)) => r,
        () = stopped(&mut stop) => return,
    };
    match read {
        Ok(true) if got.starts_with(PREFACE) => {}
        Ok(true) => {
            // Not HTTP/2 after all: lighttpd's GOAWAY, and the bytes are the record.
            conn.unparsable(false, &got).await;
            if write_all(&mut io, &GOAWAY_PROTOCOL_ERROR).await.is_ok() {
                let _ = tokio::time::timeout(LINGER, io.shutdown()).await;
            }
            return;
        }
        // Gone or silent before a whole preface: what came is still recorded.
        _ => {
            conn.unparsable(false, &got).await;
            return;
        }
    }
    // What followed the preface in the same reads goes to `h2` after it.
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(MAX_STREAMS)
        .initial_window_size(STREAM_WINDOW)
        .max_header_list_size(MAX_HEADER_LIST)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .enable_connect_protocol()
        .max_pending_accept_reset_streams(MAX_PENDING_RESETS)
        .max_local_error_reset_streams(Some(MAX_ERROR_RESETS))
        .max_concurrent_reset_streams(MAX_RESET_STREAMS)
        .max_send_buffer_size(MAX_SEND_BUFFER);
    let shim = Shim::new(io, got);
    let handshake = tokio::select! {
        r = tokio::time::timeout(HEADER_TIMEOUT, builder.handshake::<_, Bytes>(shim)) => r,
        () = stopped(&mut stop) => return,
    };
    let Ok(Ok(mut h2c)) = handshake else {
        return;
    };

    let mut tasks = JoinSet::new();
    let mut accepted = 0u32;
    // lighttpd ends an HTTP/2 connection that has had no open request for its
    // keep-alive idle time with one GOAWAY (NO_ERROR).
    let mut idle_since = Instant::now();
    loop {
        let idle = tasks.is_empty();
        tokio::select! {
            next = h2c.accept() => match next {
                // A bounded number of requests per connection, as over HTTP/1.1 (also
                // what a rapid-reset flood that outpaces the pending-reset count can
                // cost): past it streams are refused, and the idle deadline ends the
                // connection once the last answer has had its time to leave.
                Some(Ok((_, mut respond))) if accepted >= MAX_REQUESTS_PER_CONN => {
                    respond.send_reset(h2::Reason::REFUSED_STREAM);
                }
                Some(Ok((req, respond))) => {
                    accepted += 1;
                    tasks.spawn(stream(Arc::clone(&conn), req, respond));
                    if accepted >= MAX_REQUESTS_PER_CONN {
                        h2c.graceful_shutdown();
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(session = %conn.session.id, error = %e, "HTTP/2 connection error");
                    break;
                }
                None => break,
            },
            Some(_) = tasks.join_next(), if !idle => {
                if tasks.is_empty() {
                    idle_since = Instant::now();
                }
            }
            () = tokio::time::sleep_until(idle_since + KEEP_ALIVE_IDLE), if idle => {
                close(&mut h2c).await;
                break;
            }
            () = stopped(&mut stop) => {
                close(&mut h2c).await;
                break;
            }
        }
    }
    if accepted > 0 {
        tracing::debug!(session = %conn.session.id, streams = accepted, "HTTP/2 connection ended");
    }
}

/// One GOAWAY (NO_ERROR, the last stream processed) and the end of the connection, with
/// a moment for the frame to leave.
async fn close<S>(h2c: &mut h2::server::Connection<S, Bytes>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    h2c.abrupt_shutdown(h2::Reason::NO_ERROR);
    let _ = tokio::time::timeout(LINGER, async {
        while let Some(Ok(_)) = h2c.accept().await {}
    })
    .await;
}

/// Reads until `got` holds at least a preface's length, or the peer closes (`false`).
async fn read_preface<S: AsyncRead + Unpin>(io: &mut S, got: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    while got.len() < PREFACE.len() {
        match io.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    }
    true
}

async fn write_all<S: AsyncWrite + Unpin>(io: &mut S, bytes: &[u8]) -> io::Result<()> {
    tokio::time::timeout(super::BODY_TIMEOUT, async {
        io.write_all(bytes).await?;
        io.flush().await
    })
    .await
    .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

/// One request stream: the head lighttpd would make of it, checked, served and recorded
/// by the HTTP/1.1 path, and the response sent back as HEADERS and DATA.
async fn stream(
    conn: Arc<Conn>,
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
) {
    let (parts, recv) = req.into_parts();
    let text = head_text(&parts);
    let out = if text.len() > MAX_HEAD {
        let r = request::Refusal {
            status: 431,
            minor: 1,
        };
        conn.unparsable(true, &text).await;
        conn.refusal(r)
    } else {
        match request::parse_as(&text, MAX_HEADERS, false) {
            Ok(head) => {
                let mut body = RecvBody {
                    recv,
                    pending: Bytes::new(),
                };
                conn.handle(&head, &mut body, &mut Vec::new()).await.0
            }
            Err(r) => {
                conn.unparsable(false, &text).await;
                conn.refusal(r)
            }
        }
    };
    let Some((response, body)) = response_of(&out) else {
        respond.send_reset(h2::Reason::INTERNAL_ERROR);
        return;
    };
    // lighttpd: the body in DATA frames, then an empty DATA that ends the stream; a
    // response without a body ends with its HEADERS.
    let empty = body.is_empty();
    let Ok(mut send) = respond.send_response(response, empty) else {
        return;
    };
    if !empty {
        let _ = send.send_data(Bytes::copy_from_slice(body), false);
        let _ = send.send_data(Bytes::new(), true);
    }
}

/// The HTTP/1.1 head lighttpd's HTTP/2 layer makes of a request: the method, `:path`,
/// `Host` from `:authority` (unless a `host` field came), then the fields as sent. A
/// value `h2` let through that could not stand in a head (a CR, LF or NUL) leaves the
/// head unparsable, so the request is refused as lighttpd refuses such a field.
fn head_text(parts: &http::request::Parts) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .as_bytes();
    out.extend_from_slice(if target.is_empty() { b"/" } else { target });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !parts.headers.contains_key(http::header::HOST)
        && let Some(a) = parts.uri.authority()
    {
        out.extend_from_slice(b"Host: ");
        out.extend_from_slice(a.as_str().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        let v = value.as_bytes();
        if v.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
            out.extend_from_slice(b"\x01");
        } else {
            out.extend_from_slice(v);
        }
        out.extend_from_slice(b"\r\n");
        if out.len() > MAX_HEAD + 1 {
            break;
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The response the HTTP/1.1 path wrote, as HTTP/2 sends it: the status and the header
/// fields in their order, lower-case, without the connection-specific ones; and the body.
fn response_of(out: &[u8]) -> Option<(http::Response<()>, &[u8])> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Response::new(&mut headers);
    let Ok(httparse::Status::Complete(len)) = parsed.parse(out) else {
        return None;
    };
    let mut response = http::Response::builder().status(parsed.code?);
    for h in parsed.headers.iter() {
        if ["connection", "keep-alive", "transfer-encoding", "upgrade"]
            .iter()
            .any(|c| h.name.eq_ignore_ascii_case(c))
        {
            continue;
        }
        response = response.header(h.name, h.value);
    }
    Some((response.body(()).ok()?, &out[len..]))
}

/// A request stream's DATA as a byte stream for the HTTP/1.1 body reader (which holds
/// the body deadline and caps); the window is given back as the bytes are taken.
struct RecvBody {
    recv: h2::RecvStream,
    pending: Bytes,
}

impl AsyncRead for RecvBody {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.pending.is_empty() {
            match self.recv.poll_data(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(io::Error::other(e))),
                Poll::Ready(Some(Ok(data))) => {
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    self.pending = data;
                }
            }
        }
        let n = self.pending.len().min(buf.remaining());
        buf.put_slice(&self.pending.split_to(n));
        Poll::Ready(Ok(()))
    }
}

/// The TLS stream as `h2` sees it: the preface (and whatever came with it) read again
/// first, and `h2`'s own SETTINGS and first connection WINDOW_UPDATE left out, since
/// lighttpd's ([`OPENING`], with the same values) went first. Every other frame passes
/// untouched; once both are gone the shim only forwards.
struct Shim<S> {
    io: S,
    replay: Vec<u8>,
    replayed: usize,
    drop_settings: bool,
    drop_window: bool,
    /// The head of the outgoing frame being looked at.
    head: [u8; 9],
    head_len: usize,
    /// Bytes of the current outgoing frame still to leave out or to pass.
    skip: usize,
    pass: usize,
    /// Filtered bytes not yet written (at most one of `h2`'s writes).
    out: Vec<u8>,
}

impl<S> Shim<S> {
    fn new(io: S, replay: Vec<u8>) -> Self {
        Shim {
            io,
            replay,
            replayed: 0,
            drop_settings: true,
            drop_window: true,
            head: [0; 9],
            head_len: 0,
            skip: 0,
            pass: 0,
            out: Vec::new(),
        }
    }

    fn filtering(&self) -> bool {
        self.drop_settings || self.drop_window || self.skip > 0 || self.pass > 0
    }

    /// Takes `buf` through the filter into `out`.
    fn filter(&mut self, buf: &[u8]) {
        let mut i = 0;
        while i < buf.len() {
            let rest = buf.len() - i;
            if self.skip > 0 {
                let n = self.skip.min(rest);
                self.skip -= n;
                i += n;
            } else if self.pass > 0 {
                let n = self.pass.min(rest);
                self.out.extend_from_slice(&buf[i..i + n]);
                self.pass -= n;
                i += n;
            } else if !(self.drop_settings || self.drop_window) {
                self.out.extend_from_slice(&buf[i..]);
                i = buf.len();
            } else {
                let n = (9 - self.head_len).min(rest);
                self.head[self.head_len..self.head_len + n].copy_from_slice(&buf[i..i + n]);
                self.head_len += n;
                i += n;
                if self.head_len < 9 {
                    continue;
                }
                self.head_len = 0;
                let h = self.head;
                let len = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
                let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
                if self.drop_settings && h[3] == 4 && h[4] & 1 == 0 {
                    self.drop_settings = false;
                    self.skip = len;
                } else if self.drop_window && h[3] == 8 && stream == 0 {
                    self.drop_window = false;
                    self.skip = len;
                } else {
                    self.out.extend_from_slice(&h);
                    self.pass = len;
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> Shim<S> {
    /// Writes what the filter kept; `Pending` until all of it is written.
    fn poll_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            match Pin::new(&mut self.io).poll_write(cx, &self.out) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.out.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Shim<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
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
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Shim<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.poll_out(cx)?.is_pending() {
            return Poll::Pending;
        }
        if !this.filtering() {
            return Pin::new(&mut this.io).poll_write(cx, buf);
        }
        this.filter(buf);
        // Taken whole; what is kept leaves now or before the next write or flush.
        let _ = this.poll_out(cx)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.poll_out(cx)?.is_pending() {
            return Poll::Pending;
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.poll_out(cx)?.is_pending() {
            return Poll::Pending;
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `h2`'s opening (its SETTINGS, then a SETTINGS ACK and its WINDOW_UPDATE) goes
    /// through the filter in pieces of every size: only the ACK is left.
    #[test]
    fn filter_drops_h2s_opening_only() {
        let settings = [0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 8];
        let ack = [0, 0, 0, 4, 1, 0, 0, 0, 0];
        let window = [0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 3, 0, 1];
        let ping = [0, 0, 8, 6, 1, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        let all = [&settings[..], &ack, &window, &ping, &window].concat();
        for step in 1..all.len() {
            let mut shim = Shim::new((), Vec::new());
            for piece in all.chunks(step) {
                shim.filter(piece);
            }
            assert_eq!(shim.out, [&ack[..], &ping, &window].concat(), "{step}");
            assert!(!shim.filtering());
        }
    }

    #[test]
    fn opening_is_lighttpds_frames() {
        assert_eq!(OPENING[..9], [0, 0, 30, 4, 0, 0, 0, 0, 0]);
        assert_eq!(OPENING[39..48], [0, 0, 4, 8, 0, 0, 0, 0, 0]);
        assert_eq!(
            u32::from_be_bytes(OPENING[48..52].try_into().unwrap()),
            CONNECTION_WINDOW - 65_535
        );
    }

    #[test]
    fn responses_lose_connection_fields() {
        let out = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 3\r\nConnection: close\r\nDate: d\r\nServer: lighttpd/1.4.69\r\n\r\nabc";
        let (r, body) = response_of(out).unwrap();
        assert_eq!(r.status(), 404);
        let names: Vec<&str> = r.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type", "content-length", "date", "server"]);
        assert_eq!(body, b"abc");
    }
}
