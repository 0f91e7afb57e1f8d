//! The probes' socket helpers: every connect, read and write bounded by a deadline and
//! every read by a byte cap, so a wedged service cannot hold the check.

use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Duration, Instant, timeout_at};

/// Most bytes any one probe reads from one connection.
pub const MAX_READ: usize = 64 * 1024;

/// A plain or TLS stream.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One probe connection with its deadline.
pub struct Conn {
    s: Box<dyn Stream>,
    deadline: Instant,
    /// Bytes read past what a caller consumed (after a line, a packet).
    pending: Vec<u8>,
    read_total: usize,
}

impl Conn {
    pub async fn open(addr: SocketAddr, deadline: Instant) -> Result<Conn, String> {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                Ok(Conn {
                    s: Box::new(s),
                    deadline,
                    pending: Vec::new(),
                    read_total: 0,
                })
            }
            Ok(Err(e)) => Err(format!("(cannot connect: {e})")),
            Err(_) => Err("(connect timed out)".into()),
        }
    }

    /// A connection over TLS (HTTPS), the handshake within the same deadline.
    pub async fn open_tls(addr: SocketAddr, deadline: Instant) -> Result<Conn, String> {
        let tcp = match timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(format!("(cannot connect: {e})")),
            Err(_) => return Err("(connect timed out)".into()),
        };
        let _ = tcp.set_nodelay(true);
        let connector = tokio_rustls::TlsConnector::from(super::tls::client_config()?);
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        match timeout_at(deadline, connector.connect(name, tcp)).await {
            Ok(Ok(s)) => Ok(Conn {
                s: Box::new(s),
                deadline,
                pending: Vec::new(),
                read_total: 0,
            }),
            Ok(Err(e)) => Err(format!("(TLS handshake failed: {e})")),
            Err(_) => Err("(TLS handshake timed out)".into()),
        }
    }

    /// Plain or TLS.
    pub async fn open_any(addr: SocketAddr, deadline: Instant, tls: bool) -> Result<Conn, String> {
        if tls {
            Conn::open_tls(addr, deadline).await
        } else {
            Conn::open(addr, deadline).await
        }
    }

    pub async fn send(&mut self, b: &[u8]) -> Result<(), String> {
        let write = async {
            self.s.write_all(b).await?;
            self.s.flush().await
        };
        match timeout_at(self.deadline, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("(write failed: {e})")),
            Err(_) => Err("(write timed out)".into()),
        }
    }

    /// Reads more bytes into `pending`; `false` at end of stream, cap or deadline.
    async fn fill(&mut self, until: Instant) -> bool {
        if self.read_total >= MAX_READ {
            return false;
        }
        let mut buf = [0u8; 4096];
        let until = until.min(self.deadline);
        match timeout_at(until, self.s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                self.read_total += n;
                self.pending.extend_from_slice(&buf[..n]);
                true
            }
            _ => false,
        }
    }

    /// Everything until the peer closes, goes quiet for `idle`, or the deadline.
    pub async fn read_rest(&mut self, idle: Duration) -> Vec<u8> {
        while self.fill(Instant::now() + idle).await {}
        std::mem::take(&mut self.pending)
    }

    /// Bytes up to and including the first `\n` (or whatever came before the peer
    /// stopped, if no line end came).
    pub async fn read_line(&mut self) -> Vec<u8> {
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                return self.pending.drain(..=i).collect();
            }
            if !self.fill(self.deadline).await {
                return std::mem::take(&mut self.pending);
            }
        }
    }

    /// Exactly `n` bytes, or `None` if the peer stopped first.
    pub async fn read_exact(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.pending.len() < n {
            if !self.fill(self.deadline).await {
                return None;
            }
        }
        Some(self.pending.drain(..n).collect())
    }

    /// Reads until `done(bytes so far)` says the answer is whole; what came, if not.
    pub async fn read_until(&mut self, done: impl Fn(&[u8]) -> Option<usize>) -> Vec<u8> {
        loop {
            if let Some(n) = done(&self.pending) {
                let n = n.min(self.pending.len());
                return self.pending.drain(..n).collect();
            }
            if !self.fill(self.deadline).await {
                return std::mem::take(&mut self.pending);
            }
        }
    }
}
