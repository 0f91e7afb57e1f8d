//! FTP honeypot imitating Debian 12's vsFTPd 3.0.3 with its default configuration
//! (`anonymous_enable=NO`, local users, here with `write_enable=YES`): logins of system
//! accounts per the login policy and the node's login memory (shared with SSH and
//! Telnet; `anonymous`/`ftp` never get in), a fake directory tree, passive-mode
//! transfers, and uploads streamed to the capture spool and remembered per source
//! (`uploads`). Active mode (PORT/EPRT) is accepted for the client's own address, as
//! vsftpd does, but the transfer then fails to connect: the honeypot never connects out.
//!
//! `parse.rs` splits and parses command lines, `machine.rs` is the sans-IO session, `fs.rs`
//! the fake tree; this file is the driver that does the I/O they ask for.

mod fs;
pub(crate) mod machine;
pub(crate) mod parse;
mod uploads;

use super::ServiceContext;
use super::conn::Session;
use super::login::{LoginBook, pam_delay};
use super::stopped;
use crate::captures::{CaptureSpoolError, CaptureWriter};
use honeybee_proto::capture::CaptureKind;
use honeybee_proto::config::{FtpOptions, LoginPolicy};
use honeybee_proto::event::{AuthAttempt, AuthMethod, EventKind, MAX_FIELD_LEN, clamp};
use machine::{Machine, Step};
use parse::{Command, Line, LineBuffer};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, timeout, timeout_at};
use uploads::UploadBook;

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
    logins: Arc<LoginBook>,
    remember_s: u64,
    uploads: Arc<UploadBook>,
    /// The node's account (its WordPress site's files).
    site: fs::Site,
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
            failure_delay: Duration::from_millis(u64::from(opts.auth_failure_delay_ms.min(10_000))),
            max_failures: opts.max_login_failures.max(1),
            idle_timeout: ctx.idle_timeout,
            logins: Arc::clone(&ctx.logins),
            remember_s: opts.remember.secs(),
            // One book per node (a second FTP service on the node opens its own copy;
            // the last one saved wins).
            uploads: UploadBook::open(Some(&ctx.data_dir), "ftp-uploads.bin", opts.remember.secs()),
            site: fs::Site::of(ctx.persona.persona()),
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
            machine: Machine::on(
                fs::FakeFs::new(&self.site, now_secs() as i64),
                self.max_failures,
                session.src.ip().to_canonical().to_string(),
                self.uploads.files(session.src.ip()),
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
                let flow = self.step(step).await;
                for path in self.machine.take_forgotten() {
                    self.svc.uploads.remove(self.session.src.ip(), &path).await;
                }
                if flow == Flow::Close {
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

    async fn step(&mut self, mut step: Step) -> Flow {
        if let Step::Check { username, password } = step {
            let success = !machine::is_anonymous(&username)
                && self.svc.logins.attempt(
                    self.session.src.ip(),
                    &username,
                    &password,
                    &self.svc.policy,
                    self.svc.remember_s,
                );
            step = self.machine.login(success, password);
        }
        match step {
            Step::Check { .. } => Flow::Continue,
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
                        () = tokio::time::sleep(pam_delay(self.svc.failure_delay)) => {}
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
        // The upload goes straight to the capture spool as it arrives: the session holds
        // one chunk, never the file.
        let mut upload = Upload::start(self.session).await;
        let mut kept = 0usize;
        // The first bytes, for `RETR` of the upload later (small uploads only).
        let mut small: Option<Vec<u8>> = Some(Vec::new());
        let mut chunk = vec![0u8; DATA_CHUNK];
        let outcome: Received = tokio::select! {
            r = timeout(TRANSFER_TIMEOUT, async {
                loop {
                    let n = match timeout(DATA_IDLE_TIMEOUT, conn.read(&mut chunk)).await {
                        Ok(Ok(0)) => return Received::Complete,
                        Ok(Ok(n)) => n,
                        _ => return Received::Cut,
                    };
                    // Checked before anything is stored: at most `max` bytes are kept.
                    let take = n.min(max - kept);
                    if let Some(s) = &mut small {
                        if s.len() + take <= uploads::MAX_CONTENT {
                            s.extend_from_slice(&chunk[..take]);
                        } else {
                            small = None;
                        }
                    }
                    if take > 0 {
                        let (back, stored) = upload.write(chunk, take).await;
                        chunk = back;
                        if !stored {
                            return Received::SpoolFull;
                        }
                        kept += take;
                    }
                    if n > take {
                        return Received::OverCap;
                    }
                }
            }) => r.unwrap_or(Received::Cut),
            () = stopped(&mut self.stop) => Received::Cut,
        };
        drop(conn);
        let size = kept as u64;
        if outcome == Received::OverCap {
            limit(
                self.session,
                "ftp_upload",
                format!("STOR {} over {max} bytes", clamp(&path, 256)),
            )
            .await;
        }
        let meta = vec![
            ("filename".to_owned(), fs::name(&path).to_owned()),
            ("path".to_owned(), path.clone()),
            (
                "complete".to_owned(),
                (outcome == Received::Complete).to_string(),
            ),
        ];
        upload.finish(self.session, &path, meta).await;
        match outcome {
            Received::Complete => {
                let now = now_secs();
                self.machine
                    .stored(&path, size, machine::ls_date(now, now), small.clone());
                self.svc
                    .uploads
                    .add(
                        self.session.src.ip(),
                        uploads::Stored {
                            path: path.clone(),
                            size,
                            at: now,
                            content: small,
                        },
                    )
                    .await;
                self.write(b"226 Transfer complete.\r\n").await
            }
            Received::OverCap => self.write(b"552 Exceeded storage allocation.\r\n").await,
            // What vsftpd says when the disk fills up under it.
            Received::SpoolFull => self.write(b"451 Failure writing to local file.\r\n").await,
            Received::Cut => self.write(b"426 Failure reading network stream.\r\n").await,
        }
    }
}

/// How an upload's data connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Received {
    /// The client closed it: the whole file.
    Complete,
    /// More than `max_upload_bytes` came; the first `max_upload_bytes` are kept.
    OverCap,
    /// The capture spool had no more room; what was stored before is kept.
    SpoolFull,
    /// Timed out, reset or shut down.
    Cut,
}

/// One upload being streamed into the capture spool (or, without a spool, counted and
/// dropped). Disk I/O runs on the blocking pool, one chunk at a time.
struct Upload {
    writer: Option<CaptureWriter>,
    /// Set when the spool refused bytes: reported once the upload ends.
    full: Option<CaptureSpoolError>,
}

impl Upload {
    async fn start(session: &Session) -> Upload {
        let Some(spool) = session.captures.clone() else {
            tracing::debug!(session = %session.id, "upload not kept: no capture spool");
            return Upload {
                writer: None,
                full: None,
            };
        };
        let service = session.service.to_string();
        let id = session.id;
        let made = tokio::task::spawn_blocking(move || {
            spool.writer(
                CaptureKind::Upload,
                service,
                Some(id),
                crate::sink::now_ms(),
            )
        })
        .await;
        match made {
            Ok(Ok(w)) => Upload {
                writer: Some(w),
                full: None,
            },
            Ok(Err(e)) => {
                tracing::warn!(session = %session.id, error = %e, "upload capture not started");
                Upload {
                    writer: None,
                    full: Some(e),
                }
            }
            Err(_) => Upload {
                writer: None,
                full: None,
            },
        }
    }

    /// Stores `chunk[..n]` and hands the buffer back; false when the spool refused it
    /// (or failed), after which nothing more is stored.
    async fn write(&mut self, chunk: Vec<u8>, n: usize) -> (Vec<u8>, bool) {
        let Some(mut w) = self.writer.take() else {
            // No spool at all: the bytes are counted and dropped. A spool that failed
            // earlier has already ended the transfer.
            return (chunk, self.full.is_none());
        };
        let done = tokio::task::spawn_blocking(move || {
            let r = w.write(&chunk[..n]);
            (w, chunk, r)
        })
        .await;
        match done {
            Ok((w, chunk, Ok(()))) => {
                self.writer = Some(w);
                (chunk, true)
            }
            Ok((w, chunk, Err(e))) => {
                // Keep what was stored so far; it is finished (truncated) at the end.
                self.writer = Some(w);
                self.full = Some(e);
                (chunk, false)
            }
            Err(_) => (vec![0u8; DATA_CHUNK], false),
        }
    }

    /// Commits what was stored as a capture (none for an empty upload) and records it,
    /// or records why it could not be kept.
    async fn finish(mut self, session: &Session, path: &str, meta: Vec<(String, String)>) {
        let mut result = None;
        if let Some(w) = self.writer.take().filter(|w| w.size() > 0) {
            let size = w.size();
            let done = tokio::task::spawn_blocking(move || w.finish(meta)).await;
            result = Some((size, done));
        }
        if let Some(e) = self.full.take() {
            session
                .emit(EventKind::LimitReached {
                    limit: "capture_spool".into(),
                    detail: clamp(&format!("STOR {}: {e}", clamp(path, 256)), MAX_FIELD_LEN),
                })
                .await;
        }
        match result {
            Some((size, Ok(Ok(header)))) => {
                session
                    .emit(EventKind::Capture {
                        kind: CaptureKind::Upload.name().to_owned(),
                        sha256: hex::encode(header.sha256),
                        size,
                        name: Some(clamp(path, MAX_FIELD_LEN)),
                    })
                    .await;
            }
            Some((_, Ok(Err(e)))) => {
                tracing::warn!(session = %session.id, error = %e, "upload capture not spooled");
                session
                    .emit(EventKind::LimitReached {
                        limit: "capture_spool".into(),
                        detail: clamp(&e.to_string(), MAX_FIELD_LEN),
                    })
                    .await;
            }
            Some((_, Err(e))) => {
                tracing::error!(session = %session.id, error = %e, "upload capture task failed");
            }
            None => {}
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

fn now_secs() -> u64 {
    u64::try_from(crate::sink::now_ms() / 1000).unwrap_or(0)
}
