//! FTP honeypot imitating vsFTPd 3.0.3: logins per the login policy, a fake directory
//! tree, passive-mode transfers, and uploads kept as captures. Active mode (PORT/EPRT)
//! is refused: the honeypot never connects out.
//!
//! `parse.rs` splits and parses command lines, `machine.rs` is the sans-IO session, `fs.rs`
//! the fake tree; this file is the driver that does the I/O they ask for.

mod fs;
pub(crate) mod machine;
pub(crate) mod parse;

use super::ServiceContext;
use super::conn::Session;
use super::stopped;
use honeybee_proto::capture::CaptureKind;
use honeybee_proto::config::{FtpOptions, LoginPolicy};
use honeybee_proto::event::{AuthAttempt, AuthMethod, EventKind, MAX_FIELD_LEN, clamp};
use machine::{Machine, Step};
use parse::{Command, Line, LineBuffer};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, timeout, timeout_at};

/// Commands one session may send before it is closed.
const MAX_COMMANDS: u32 = 2000;
/// Time the client gets to connect to a passive listener once a transfer is asked for.
const DATA_ACCEPT_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest pause inside a transfer.
const DATA_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest transfer, however active.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(300);
/// Time a reply may take to leave when the peer does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections from other addresses a passive listener turns away before giving up.
const MAX_FOREIGN_DATA_CONNS: u32 = 8;
/// How long, and how much, a closing session still reads from the peer.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;
/// Read size on the data connection.
const DATA_CHUNK: usize = 64 * 1024;

/// A configured ftp service.
#[derive(Debug)]
pub(crate) struct FtpService {
    greeting: String,
    policy: LoginPolicy,
    max_upload: usize,
    pasv_address: Option<IpAddr>,
    failure_delay: Duration,
    max_failures: u32,
    idle_timeout: Duration,
}

/// Whether the session goes on after a step.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

/// What a session's driver holds besides the state machine.
struct Driver<'a, S> {
    svc: &'a FtpService,
    session: &'a Session,
    stream: S,
    machine: Machine,
    /// The passive listener, at most one at a time.
    passive: Option<TcpListener>,
    stop: watch::Receiver<bool>,
}

impl FtpService {
    pub(crate) fn new(opts: &FtpOptions, ctx: &ServiceContext) -> Result<Self, String> {
        if opts.banner.contains(['\r', '\n']) {
            return Err("banner must be one line".into());
        }
        Ok(FtpService {
            greeting: format!("220 {}\r\n", opts.banner),
            policy: opts.login.clone(),
            max_upload: opts.max_upload_bytes as usize,
            pasv_address: opts.pasv_address,
            failure_delay: Duration::from_millis(u64::from(opts.auth_failure_delay_ms)),
            max_failures: opts.max_login_failures.max(1),
            idle_timeout: ctx.idle_timeout,
        })
    }

    /// Serves one connection until the peer leaves, a deadline passes or `stop` says so.
    pub(crate) async fn serve<S>(&self, session: &Session, stream: S, stop: watch::Receiver<bool>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut d = Driver {
            svc: self,
            session,
            stream,
            machine: Machine::new(
                self.policy.clone(),
                self.max_failures,
                session.src.ip().to_canonical().to_string(),
            ),
            passive: None,
            stop,
        };
        d.run().await;
        let _ = timeout(Duration::from_millis(500), d.stream.shutdown()).await;
        // A lingering close: what the peer still sends is read and dropped for a moment,
        // so the kernel does not answer it with a reset that could discard the last reply.
        let _ = timeout(LINGER, async {
            let mut sink = [0u8; 4096];
            let mut total = 0;
            while total < LINGER_BYTES {
                match d.stream.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
        })
        .await;
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Driver<'_, S> {
    async fn run(&mut self) {
        if self.write(self.svc.greeting.as_bytes()).await == Flow::Close {
            return;
        }
        let mut lines = LineBuffer::default();
        let mut buf = [0u8; 2048];
        let mut commands = 0u32;
        loop {
            while let Some(line) = lines.next_line() {
                let line = match line {
                    Line::Complete(l) => l,
                    Line::TooLong => {
                        limit(
                            self.session,
                            "ftp_line",
                            format!("command line over {} bytes", parse::MAX_LINE),
                        )
                        .await;
                        let _ = self.write(b"500 Input line too long.\r\n").await;
                        return;
                    }
                };
                commands += 1;
                if commands > MAX_COMMANDS {
                    limit(
                        self.session,
                        "ftp_commands",
                        format!("more than {MAX_COMMANDS} commands"),
                    )
                    .await;
                    let _ = self.write(b"421 Too many commands.\r\n").await;
                    return;
                }
                let cmd = Command::parse(&line);
                // The password is in the AuthAttempt; it is not also a command.
                if cmd.verb != "PASS" {
                    self.session
                        .emit(EventKind::Command {
                            line: clamp(&String::from_utf8_lossy(&line), MAX_FIELD_LEN),
                        })
                        .await;
                }
                let step = self.machine.command(&cmd);
                if self.step(step).await == Flow::Close {
                    return;
                }
            }
            let read = tokio::select! {
                r = timeout(self.svc.idle_timeout, self.stream.read(&mut buf)) => r,
                () = stopped(&mut self.stop) => {
                    let _ = self.write(b"421 Service not available, remote server has closed connection.\r\n").await;
                    return;
                }
            };
            match read {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => lines.feed(&buf[..n]),
                Err(_) => {
                    let _ = self.write(b"421 Timeout.\r\n").await;
                    return;
                }
            }
        }
    }

    async fn step(&mut self, step: Step) -> Flow {
        match step {
            Step::Reply(text) => self.write(text.as_bytes()).await,
            Step::Close(text) => {
                let _ = self.write(text.as_bytes()).await;
                Flow::Close
            }
            Step::Login {
                username,
                password,
                success,
                reply,
                close,
            } => {
                tracing::info!(session = %self.session.id, src = %self.session.src, username = %clamp(&username, 64), success, "ftp login attempt");
                self.session
                    .emit(EventKind::AuthAttempt(AuthAttempt {
                        method: AuthMethod::Password,
                        username: clamp(&username, MAX_FIELD_LEN),
                        password: Some(clamp(&password, MAX_FIELD_LEN)),
                        key_fingerprint: None,
                        key_algorithm: None,
                        client_version: None,
                        success,
                    }))
                    .await;
                if !success {
                    tokio::select! {
                        () = tokio::time::sleep(self.svc.failure_delay) => {}
                        () = stopped(&mut self.stop) => return Flow::Close,
                    }
                }
                let flow = self.write(reply.as_bytes()).await;
                if close { Flow::Close } else { flow }
            }
            Step::Passive { extended } => self.open_passive(extended).await,
            Step::Send {
                data,
                opening,
                done,
            } => self.send(&data, &opening, done).await,
            Step::Receive { path, opening } => self.receive(path, &opening).await,
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Flow {
        match timeout(WRITE_TIMEOUT, self.stream.write_all(bytes)).await {
            Ok(Ok(())) => Flow::Continue,
            _ => Flow::Close,
        }
    }

    /// Binds a new passive listener on the address the client reached us at (dropping
    /// any previous one) and announces it.
    async fn open_passive(&mut self, extended: bool) -> Flow {
        self.passive = None;
        let local = self.session.dst.ip();
        let listener = match TcpListener::bind(SocketAddr::new(local, 0)).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(session = %self.session.id, error = %e, "passive listener failed");
                self.machine.passive_failed();
                return self
                    .write(b"425 Could not open passive connection.\r\n")
                    .await;
            }
        };
        let port = match listener.local_addr() {
            Ok(a) => a.port(),
            Err(_) => {
                self.machine.passive_failed();
                return self
                    .write(b"425 Could not open passive connection.\r\n")
                    .await;
            }
        };
        let reply = if extended {
            format!("229 Entering Extended Passive Mode (|||{port}|)\r\n")
        } else {
            match self.svc.pasv_address.unwrap_or(local).to_canonical() {
                IpAddr::V4(ip) => {
                    let [a, b, c, d] = ip.octets();
                    format!(
                        "227 Entering Passive Mode ({a},{b},{c},{d},{},{}).\r\n",
                        port >> 8,
                        port & 0xff
                    )
                }
                IpAddr::V6(_) => {
                    self.machine.passive_failed();
                    return self.write(b"425 PASV is IPv4 only; use EPSV.\r\n").await;
                }
            }
        };
        self.passive = Some(listener);
        self.write(reply.as_bytes()).await
    }

    /// The client's data connection: from the session's own address only, within the
    /// deadline. Whatever happens, the listener is gone afterwards.
    async fn accept_data(&mut self) -> Option<TcpStream> {
        let listener = self.passive.take()?;
        let want = self.session.src.ip().to_canonical();
        let deadline = Instant::now() + DATA_ACCEPT_TIMEOUT;
        let mut foreign = 0;
        loop {
            match timeout_at(deadline, listener.accept()).await {
                Ok(Ok((s, peer))) if peer.ip().to_canonical() == want => return Some(s),
                Ok(Ok((_, peer))) => {
                    tracing::info!(session = %self.session.id, data_peer = %peer, "data connection from a foreign address refused");
                    foreign += 1;
                    if foreign >= MAX_FOREIGN_DATA_CONNS {
                        return None;
                    }
                }
                Ok(Err(_)) | Err(_) => return None,
            }
        }
    }

    async fn send(&mut self, data: &[u8], opening: &str, done: &str) -> Flow {
        let Some(mut conn) = self.accept_data().await else {
            return self.write(b"425 Failed to establish connection.\r\n").await;
        };
        if self.write(opening.as_bytes()).await == Flow::Close {
            return Flow::Close;
        }
        let sent = tokio::select! {
            r = timeout(TRANSFER_TIMEOUT, async {
                for chunk in data.chunks(DATA_CHUNK) {
                    timeout(DATA_IDLE_TIMEOUT, conn.write_all(chunk)).await.ok()?.ok()?;
                }
                timeout(DATA_IDLE_TIMEOUT, conn.shutdown()).await.ok()?.ok()
            }) => r.ok().flatten().is_some(),
            () = stopped(&mut self.stop) => return Flow::Close,
        };
        drop(conn);
        if sent {
            self.write(done.as_bytes()).await
        } else {
            self.write(b"426 Failure writing network stream.\r\n").await
        }
    }

    async fn receive(&mut self, path: String, opening: &str) -> Flow {
        let Some(mut conn) = self.accept_data().await else {
            return self.write(b"425 Failed to establish connection.\r\n").await;
        };
        if self.write(opening.as_bytes()).await == Flow::Close {
            return Flow::Close;
        }
        let max = self.svc.max_upload;
        let mut content = Vec::new();
        let mut chunk = vec![0u8; DATA_CHUNK];
        // Ok(true): the whole file; Ok(false): over the cap; Err: cut off.
        let outcome: Result<bool, ()> = tokio::select! {
            r = timeout(TRANSFER_TIMEOUT, async {
                loop {
                    let n = match timeout(DATA_IDLE_TIMEOUT, conn.read(&mut chunk)).await {
                        Ok(Ok(0)) => return Ok(true),
                        Ok(Ok(n)) => n,
                        _ => return Err(()),
                    };
                    // Checked before growing the buffer: at most `max` bytes are ever held.
                    let room = max - content.len();
                    if n > room {
                        content.extend_from_slice(&chunk[..room]);
                        return Ok(false);
                    }
                    content.extend_from_slice(&chunk[..n]);
                }
            }) => r.unwrap_or(Err(())),
            () = stopped(&mut self.stop) => Err(()),
        };
        drop(conn);
        let size = content.len() as u64;
        let complete = outcome == Ok(true);
        if outcome == Ok(false) {
            limit(
                self.session,
                "ftp_upload",
                format!("STOR {} over {max} bytes", clamp(&path, 256)),
            )
            .await;
        }
        if !content.is_empty() {
            let meta = vec![
                ("filename".to_owned(), fs::name(&path).to_owned()),
                ("path".to_owned(), path.clone()),
                ("complete".to_owned(), complete.to_string()),
            ];
            self.session
                .capture(CaptureKind::Upload, Some(path.clone()), meta, content)
                .await;
        }
        match outcome {
            Ok(true) => {
                self.machine.stored(&path, size, ls_date_now());
                self.write(b"226 Transfer complete.\r\n").await
            }
            Ok(false) => self.write(b"552 Exceeded storage allocation.\r\n").await,
            Err(()) => self.write(b"426 Failure reading network stream.\r\n").await,
        }
    }
}

/// Reports a cap the session hit.
async fn limit(session: &Session, limit: &str, detail: String) {
    tracing::info!(session = %session.id, src = %session.src, limit, "ftp cap reached");
    session
        .emit(EventKind::LimitReached {
            limit: limit.to_owned(),
            detail,
        })
        .await;
}

/// Now as `ls -l` shows a recent file: `Mar 14 02:15`.
fn ls_date_now() -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (_, m, d) = super::http::civil_from_days((secs / 86_400) as i64);
    let month = MONTHS[usize::from(m.clamp(1, 12)) - 1];
    format!(
        "{month} {d:>2} {:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60
    )
}
