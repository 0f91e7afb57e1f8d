//! SMTP honeypot: Debian 12's Postfix 3.7 as a mail server with SASL and STARTTLS would
//! answer from outside its networks. Open-relay probes get Postfix's "Relay access
//! denied", AUTH PLAIN/LOGIN credentials are recorded and refused, messages to local
//! accounts are "queued" and captured. Nothing is ever delivered or relayed: this
//! service opens no connection of its own.
//!
//! The dialogue is the sans-IO [`machine`]; this file reads lines (Postfix's 2048-byte
//! `line_length_limit`: the rest of a longer command line is dropped), answers
//! pipelined commands in one write, reads messages under the size cap, and upgrades to
//! TLS.

mod addr;
mod capture;
pub(crate) mod machine;
mod tls;

use super::ServiceContext;
use super::conn::Session;
use honeybee_proto::config::SmtpOptions;
use honeybee_proto::event::{AuthAttempt, AuthMethod, EventKind, MAX_FIELD_LEN, clamp};
use machine::{Config, Machine, Next, Step};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// Postfix's `line_length_limit`.
const MAX_LINE: usize = 2048;
/// `smtpd_error_sleep_time`.
const ERROR_SLEEP: Duration = Duration::from_secs(1);
/// Replies of a pipelined batch are sent once this much is waiting (Postfix's output
/// buffer is 4 KiB), so a client that sends and never reads holds little.
const OUT_FLUSH: usize = 8 * 1024;
/// A TLS handshake that takes longer is abandoned.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// A configured smtp service.
#[derive(Debug)]
pub(crate) struct SmtpService {
    cfg: Arc<Config>,
    tls: Arc<rustls::ServerConfig>,
    idle_timeout: Duration,
    auth_delay: Duration,
}

/// How a conversation ended.
enum End {
    Close,
    StartTls,
}

impl SmtpService {
    pub(crate) fn new(opts: &SmtpOptions, ctx: &ServiceContext) -> Result<Self, String> {
        let p = ctx.persona.persona();
        let host = if !opts.hostname.is_empty() {
            opts.hostname.clone()
        } else if p.hostname.contains('.') {
            p.hostname.clone()
        } else {
            // Postfix appends `mydomain`, which is the resolver's domain or "localdomain".
            format!("{}.{}", p.hostname, p.net.search.unwrap_or("localdomain"))
        };
        let tls = tls::server_config(&ctx.data_dir, p)?;
        // Queue file inode numbers: somewhere in a filesystem's used range, per node.
        let seed = u64::from_str_radix(p.machine_id.get(..8).unwrap_or("0"), 16).unwrap_or(0);
        Ok(SmtpService {
            cfg: Arc::new(Config {
                host,
                max_message: u64::from(opts.max_message_bytes),
                max_recipients: opts.max_recipients as usize,
                max_commands: opts.max_commands,
                inode: AtomicU64::new(0x10_0000 + seed % 0xe0_0000),
            }),
            tls,
            idle_timeout: ctx.idle_timeout,
            auth_delay: Duration::from_millis(u64::from(opts.auth_failure_delay_ms)),
        })
    }

    /// Serves one connection until the peer leaves, a deadline passes or `stop` says so.
    pub(crate) async fn serve<S>(
        &self,
        session: &Session,
        mut stream: S,
        mut stop: watch::Receiver<bool>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut m = Machine::new(Arc::clone(&self.cfg), session.dst.ip(), false);
        if stream.write_all(m.greeting().as_bytes()).await.is_err() {
            return;
        }
        match self.converse(session, &mut stream, &mut m, &mut stop).await {
            End::Close => {
                let _ = tokio::time::timeout(Duration::from_millis(500), stream.shutdown()).await;
            }
            End::StartTls => {
                // Something other than a TLS handshake record (a client that goes on in
                // plaintext) is dropped without an alert, as Postfix's OpenSSL does.
                let mut first = [0u8; 1];
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.read_exact(&mut first)).await {
                    Ok(Ok(_)) if first[0] == 0x16 => {}
                    _ => return,
                }
                let (r, w) = tokio::io::split(stream);
                let stream = tokio::io::join(std::io::Cursor::new(first).chain(r), w);
                let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&self.tls));
                let mut tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                    .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(session = %session.id, error = %e, "STARTTLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                // RFC 3207: everything known before TLS is forgotten.
                let mut m = Machine::new(Arc::clone(&self.cfg), session.dst.ip(), true);
                // A second STARTTLS is refused by the machine, so this ends in Close.
                let _ = self.converse(session, &mut tls, &mut m, &mut stop).await;
                let _ = tokio::time::timeout(Duration::from_millis(500), tls.shutdown()).await;
            }
        }
    }

    /// Commands until the connection closes or asks for TLS. Input buffered past a
    /// STARTTLS is dropped, as Postfix does (a plaintext injection defence).
    async fn converse<S>(
        &self,
        session: &Session,
        stream: &mut S,
        m: &mut Machine,
        stop: &mut watch::Receiver<bool>,
    ) -> End
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut input = Input::default();
        let end = self.commands(session, stream, m, stop, &mut input).await;
        // A BDAT message whose last chunk never came is still evidence.
        if let Some(msg) = input.bdat.take() {
            self.keep_partial(session, m, msg).await;
        }
        end
    }

    async fn commands<S>(
        &self,
        session: &Session,
        stream: &mut S,
        m: &mut Machine,
        stop: &mut watch::Receiver<bool>,
        input: &mut Input,
    ) -> End
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut out = Vec::new();
        loop {
            while let Some(line) = input.line() {
                let auth_reply = m.in_auth();
                if !auth_reply {
                    let text = String::from_utf8_lossy(&line);
                    session
                        .emit(EventKind::Command {
                            line: clamp(&text, MAX_FIELD_LEN),
                        })
                        .await;
                }
                let step = m.line(&line);
                let next = self.deliver(session, stream, &mut out, step).await;
                let follow = match next {
                    Some(Next::Command) => continue,
                    Some(Next::Data) => self.read_data(session, stream, input, m, stop).await,
                    Some(Next::Bdat { size }) => {
                        self.read_bdat(session, stream, input, m, stop, size).await
                    }
                    Some(Next::StartTls) => return End::StartTls,
                    Some(Next::Close) | None => return End::Close,
                };
                match follow {
                    Some(step) => match self.deliver(session, stream, &mut out, step).await {
                        Some(Next::Command) => {}
                        _ => return End::Close,
                    },
                    None => return End::Close,
                }
            }
            if !out.is_empty() && stream.write_all(&out).await.is_err() {
                return End::Close;
            }
            out.clear();
            match self.fill(stream, input, stop).await {
                Fill::Data => {}
                Fill::Closed => return End::Close,
                Fill::Idle => {
                    let _ = stream.write_all(m.timeout().as_bytes()).await;
                    return End::Close;
                }
            }
        }
    }

    /// Records what `step` carries and queues (or, before a pause or a change of
    /// state, sends) its reply. `None` when the peer is gone.
    async fn deliver<S>(
        &self,
        session: &Session,
        stream: &mut S,
        out: &mut Vec<u8>,
        step: Step,
    ) -> Option<Next>
    where
        S: AsyncWrite + Unpin,
    {
        if let Some(limit) = step.limit {
            session
                .emit(EventKind::LimitReached {
                    limit: "smtp_commands".into(),
                    detail: limit,
                })
                .await;
        }
        let pause = if let Some(login) = step.login {
            tracing::info!(session = %session.id, src = %session.src, username = %clamp(&login.username, 64), "smtp login attempt");
            session
                .emit(EventKind::AuthAttempt(AuthAttempt {
                    method: AuthMethod::Password,
                    username: clamp(&login.username, MAX_FIELD_LEN),
                    password: Some(clamp(&login.password, MAX_FIELD_LEN)),
                    key_fingerprint: None,
                    key_algorithm: None,
                    client_version: Some(login.mechanism.to_owned()),
                    success: false,
                }))
                .await;
            self.auth_delay
        } else if step.slow {
            ERROR_SLEEP
        } else {
            Duration::ZERO
        };
        if !pause.is_zero() {
            if !out.is_empty() && stream.write_all(out).await.is_err() {
                return None;
            }
            out.clear();
            tokio::time::sleep(pause).await;
        }
        out.extend_from_slice(&machine::latin1(&step.reply));
        if step.next != Next::Command || out.len() >= OUT_FLUSH {
            if stream.write_all(out).await.is_err() {
                return None;
            }
            out.clear();
        }
        Some(step.next)
    }

    async fn fill<S>(
        &self,
        stream: &mut S,
        input: &mut Input,
        stop: &mut watch::Receiver<bool>,
    ) -> Fill
    where
        S: AsyncRead + Unpin,
    {
        let mut chunk = [0u8; 4096];
        tokio::select! {
            r = tokio::time::timeout(self.idle_timeout, stream.read(&mut chunk)) => match r {
                Ok(Ok(0)) | Ok(Err(_)) => Fill::Closed,
                Err(_) => Fill::Idle,
                Ok(Ok(n)) => {
                    input.buf.extend_from_slice(&chunk[..n]);
                    Fill::Data
                }
            },
            () = super::stopped(stop) => Fill::Closed,
        }
    }

    /// Reads a DATA message up to its lone dot, streaming it into a capture.
    async fn read_data<S>(
        &self,
        session: &Session,
        stream: &mut S,
        input: &mut Input,
        m: &mut Machine,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<Step>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut msg = capture::Message::start(session, self.cfg.max_message).await;
        let mut at_line_start = true;
        loop {
            // Everything decidable in the buffer goes to the message.
            loop {
                let b = &input.buf;
                if at_line_start && b.first() == Some(&b'.') {
                    match b.get(1) {
                        None => break,
                        Some(b'\n') => {
                            input.buf.drain(..2);
                            return Some(self.message_done(session, m, msg).await);
                        }
                        Some(b'\r') => match b.get(2) {
                            None => break,
                            Some(b'\n') => {
                                input.buf.drain(..3);
                                return Some(self.message_done(session, m, msg).await);
                            }
                            Some(_) => {}
                        },
                        Some(_) => {}
                    }
                    // Dot-stuffing: the leading dot is the client's, not the message's.
                    input.buf.drain(..1);
                }
                if input.buf.is_empty() {
                    break;
                }
                match input.buf.iter().position(|&c| c == b'\n') {
                    Some(i) => {
                        msg.push(&input.buf[..=i]).await;
                        input.buf.drain(..=i);
                        at_line_start = true;
                    }
                    None => {
                        msg.push(&input.buf).await;
                        input.buf.clear();
                        at_line_start = false;
                    }
                }
            }
            match self.fill(stream, input, stop).await {
                Fill::Data => {}
                Fill::Closed => {
                    self.keep_partial(session, m, msg).await;
                    return None;
                }
                Fill::Idle => {
                    let _ = stream.write_all(m.timeout().as_bytes()).await;
                    self.keep_partial(session, m, msg).await;
                    return None;
                }
            }
        }
    }

    /// A message cut off by the peer or a deadline is still evidence.
    async fn keep_partial(&self, session: &Session, m: &Machine, msg: capture::Message) {
        let meta = envelope(m);
        msg.finish(session, "message (incomplete)", meta).await;
    }

    async fn message_done(
        &self,
        session: &Session,
        m: &mut Machine,
        msg: capture::Message,
    ) -> Step {
        let mut meta = envelope(m);
        let (step, id) = m.data_done(msg.size);
        if let Some(id) = &id {
            meta.push(("queue_id".into(), id.clone()));
        }
        msg.finish(session, "message", meta).await;
        step
    }

    /// Reads one BDAT chunk of `size` bytes (kept when it belongs to a message).
    async fn read_bdat<S>(
        &self,
        session: &Session,
        stream: &mut S,
        input: &mut Input,
        m: &mut Machine,
        stop: &mut watch::Receiver<bool>,
        size: u64,
    ) -> Option<Step>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let keep = m.bdat_keeps();
        let mut chunk = input.bdat.take().filter(|_| keep);
        if keep && chunk.is_none() {
            chunk = Some(capture::Message::start(session, self.cfg.max_message).await);
        }
        let mut left = size;
        let mut last_byte = None;
        loop {
            let n = usize::try_from(left)
                .unwrap_or(usize::MAX)
                .min(input.buf.len());
            if n > 0 {
                last_byte = input.buf.get(n - 1).copied();
                if let Some(c) = chunk.as_mut() {
                    c.push(&input.buf[..n]).await;
                }
                input.buf.drain(..n);
                left -= n as u64;
            }
            if left == 0 {
                break;
            }
            match self.fill(stream, input, stop).await {
                Fill::Data => {}
                Fill::Closed | Fill::Idle => {
                    if let Some(c) = chunk {
                        self.keep_partial(session, m, c).await;
                    }
                    return None;
                }
            }
        }
        let meta = envelope(m);
        let last = m.bdat_is_last();
        let (step, id) = m.bdat_done(size, last_byte.is_none_or(|b| b == b'\n'));
        match (chunk, last) {
            (Some(c), true) => {
                let mut meta = meta;
                if let Some(id) = id {
                    meta.push(("queue_id".into(), id));
                }
                c.finish(session, "message", meta).await;
            }
            (Some(c), false) => input.bdat = Some(c),
            (None, _) => {}
        }
        Some(step)
    }
}

/// The envelope of the message being captured, as capture metadata.
fn envelope(m: &Machine) -> Vec<(String, String)> {
    let mut meta = Vec::new();
    if let Some(h) = m.helo() {
        meta.push(("helo".into(), clamp(&machine::readable(h), 256)));
    }
    if let Some(f) = m.mail_from() {
        meta.push(("mail_from".into(), clamp(&machine::readable(f), 256)));
    }
    for r in m.rcpts().iter().take(32) {
        meta.push(("rcpt_to".into(), clamp(&machine::readable(r), 256)));
    }
    meta
}

enum Fill {
    Data,
    Closed,
    Idle,
}

/// Bytes received and not yet used.
#[derive(Default)]
struct Input {
    buf: Vec<u8>,
    /// Dropping the rest of a command line longer than [`MAX_LINE`].
    skipping: bool,
    /// A BDAT message whose last chunk has not come yet.
    bdat: Option<capture::Message>,
}

impl Input {
    /// The next complete command line, without its line ending.
    fn line(&mut self) -> Option<Vec<u8>> {
        loop {
            let nl = self.buf.iter().position(|&c| c == b'\n');
            if self.skipping {
                match nl {
                    Some(i) => {
                        self.buf.drain(..=i);
                        self.skipping = false;
                        continue;
                    }
                    None => {
                        self.buf.clear();
                        return None;
                    }
                }
            }
            return match nl {
                Some(i) if i <= MAX_LINE => {
                    let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    Some(line)
                }
                _ if self.buf.len() > MAX_LINE => {
                    let line: Vec<u8> = self.buf.drain(..MAX_LINE).collect();
                    self.skipping = true;
                    Some(line)
                }
                _ => None,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_and_their_rest_dropped() {
        let mut i = Input::default();
        i.buf.extend_from_slice(b"NOOP ");
        i.buf.extend(std::iter::repeat_n(b'a', 3000));
        i.buf.extend_from_slice(b"\r\nQUIT\r\nHALF");
        let first = i.line().unwrap();
        assert_eq!(first.len(), MAX_LINE);
        assert_eq!(i.line().unwrap(), b"QUIT");
        assert_eq!(i.line(), None);
        assert_eq!(i.buf, b"HALF");
    }
}
