//! Telnet honeypot: option negotiation as Linux telnetd does it, a `login:`/`Password:`
//! prompt under the service's login policy (every attempt recorded, failures delayed,
//! the connection closed after the cap), then the emulated shell with an asciicast
//! transcript of the logged-in session.

use super::ServiceContext;
use super::conn::Session;
use super::login::{LoginBook, pam_delay};
use super::shell::pool::{self, LinePool};
use super::shell::telnet_codec::{self, OPENING, PROBE, TelnetCodec, TelnetEvent};
use super::shell::transcript::{self, Transcript};
use super::shell::{Effect, Login, Profile, Shell, ShellLimits};
use honeybee_proto::config::{LoginPolicy, TelnetOptions};
use honeybee_proto::event::{AuthAttempt, AuthMethod, EventKind, MAX_FIELD_LEN, clamp};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::sync::watch;

/// Longest user name or password kept; the rest of a longer line is dropped.
const MAX_LOGIN_LINE: usize = 256;

/// A configured telnet service.
#[derive(Debug)]
pub(crate) struct TelnetService {
    banner: String,
    policy: Arc<LoginPolicy>,
    /// The node's login memory, shared with SSH (one set of system accounts).
    logins: Arc<LoginBook>,
    remember_s: u64,
    profile: Arc<Profile>,
    /// A failed login waits about this long (see [`pam_delay`]).
    delay: Duration,
    max_attempts: u32,
    transcript_cap: usize,
    idle_timeout: Duration,
}

/// Where the login dialogue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    User,
    Password,
}

/// The login prompt's line editor: echoes the user name (the server has the ECHO
/// option), never the password.
#[derive(Debug)]
struct LoginLine {
    phase: Phase,
    buf: Vec<u8>,
    last_cr: bool,
}

/// What one byte did to the login line.
#[derive(Debug, PartialEq, Eq)]
enum LineStep {
    Echo(Vec<u8>),
    Done(Vec<u8>),
    /// Ctrl-D on an empty line: the peer leaves.
    Quit,
}

impl LoginLine {
    fn new() -> LoginLine {
        LoginLine {
            phase: Phase::User,
            buf: Vec::new(),
            last_cr: false,
        }
    }

    fn feed(&mut self, b: u8) -> LineStep {
        let after_cr = std::mem::replace(&mut self.last_cr, b == b'\r');
        let echo = self.phase == Phase::User;
        match b {
            b'\n' if after_cr => LineStep::Echo(Vec::new()),
            b'\r' | b'\n' => LineStep::Done(std::mem::take(&mut self.buf)),
            0x7f | 0x08 => {
                if self.buf.pop().is_some() && echo {
                    LineStep::Echo(b"\x08 \x08".to_vec())
                } else {
                    LineStep::Echo(Vec::new())
                }
            }
            0x03 | 0x15 => {
                self.buf.clear();
                LineStep::Echo(Vec::new())
            }
            0x04 if self.buf.is_empty() => LineStep::Quit,
            0..=0x1f => LineStep::Echo(Vec::new()),
            b => {
                if self.buf.len() < MAX_LOGIN_LINE {
                    self.buf.push(b);
                    LineStep::Echo(if echo { vec![b] } else { Vec::new() })
                } else {
                    LineStep::Echo(Vec::new())
                }
            }
        }
    }
}

/// Writes to the peer with IAC escaped; `false` once the peer is gone.
async fn send<W: AsyncWrite + Unpin>(w: &mut W, data: &[u8]) -> bool {
    if data.is_empty() {
        return true;
    }
    w.write_all(&telnet_codec::escape(data)).await.is_ok()
}

impl TelnetService {
    pub(crate) fn new(opts: &TelnetOptions, ctx: &ServiceContext) -> Result<Self, String> {
        if !super::shell::valid_hostname(&opts.hostname) {
            return Err("hostname: 1 to 64 of a-z, A-Z, 0-9, '-', '.'".into());
        }
        if opts.max_auth_attempts == 0 {
            return Err("max_auth_attempts must be at least 1".into());
        }
        if opts.banner.len() > 4096 {
            return Err("banner: at most 4096 bytes".into());
        }
        Ok(TelnetService {
            banner: opts.banner.clone(),
            policy: Arc::new(opts.login.clone()),
            logins: Arc::clone(&ctx.logins),
            remember_s: opts.remember.secs(),
            profile: Profile::for_node(&ctx.persona, &opts.hostname),
            delay: Duration::from_millis(u64::from(opts.auth_failure_delay_ms.min(10_000))),
            max_attempts: opts.max_auth_attempts,
            transcript_cap: opts
                .max_transcript_bytes
                .min(honeybee_proto::config::MAX_TRANSCRIPT_BYTES)
                as usize,
            idle_timeout: ctx.idle_timeout,
        })
    }

    fn login_prompt(&self) -> Vec<u8> {
        format!("{} login: ", self.profile.hostname).into_bytes()
    }

    /// Serves one connection until the peer leaves, a deadline passes or `stop` says so.
    pub(crate) async fn serve<S>(
        &self,
        session: &Session,
        stream: S,
        mut stop: watch::Receiver<bool>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut rd, mut wr) = tokio::io::split(stream);
        // As netkit telnetd: the option requests first, the rest once the client speaks.
        if wr.write_all(PROBE).await.is_err() {
            return;
        }
        let mut buf = vec![0u8; 4096];
        let first = tokio::select! {
            r = tokio::time::timeout(self.idle_timeout, rd.read(&mut buf)) => match r {
                Ok(Ok(n)) if n > 0 => n,
                _ => return,
            },
            () = super::stopped(&mut stop) => return,
        };
        let mut opening = OPENING.to_vec();
        opening.extend_from_slice(&telnet_codec::escape(self.banner.as_bytes()));
        opening.extend_from_slice(b"\r\n");
        opening.extend_from_slice(&self.login_prompt());
        if wr.write_all(&opening).await.is_err() {
            return;
        }
        let mut conn = Conn {
            svc: self,
            session,
            codec: TelnetCodec::default(),
            line: LoginLine::new(),
            user: String::new(),
            failures: 0,
            size: (80, 24),
            shell: None,
            transcript: None,
        };
        let mut n = first;
        loop {
            if !conn.input(&buf[..n], &mut wr).await {
                break;
            }
            n = tokio::select! {
                r = tokio::time::timeout(self.idle_timeout, rd.read(&mut buf)) => match r {
                    Ok(Ok(n)) if n > 0 => n,
                    _ => break,
                },
                () = super::stopped(&mut stop) => break,
            };
        }
        let _ = tokio::time::timeout(super::SHUTDOWN_GRACE, wr.shutdown()).await;
        if let Some(t) = conn.transcript.take() {
            let meta = vec![
                ("channel".to_owned(), "telnet".to_owned()),
                ("user".to_owned(), clamp(&conn.user, 256)),
            ];
            t.upload(session, meta).await;
        }
    }
}

/// One connection's state.
struct Conn<'a> {
    svc: &'a TelnetService,
    session: &'a Session,
    codec: TelnetCodec,
    line: LoginLine,
    user: String,
    failures: u32,
    /// From NAWS; the transcript's size.
    size: (u32, u32),
    /// After a successful login; out of here while a line runs in the [`LinePool`].
    shell: Option<Shell>,
    /// After a successful login, with the shell.
    transcript: Option<Transcript>,
}

impl Conn<'_> {
    /// Handles one chunk from the peer; `false` when the connection must end.
    async fn input<S: AsyncWrite + Unpin>(&mut self, chunk: &[u8], wr: &mut WriteHalf<S>) -> bool {
        let d = self.codec.decode(chunk);
        if !d.reply.is_empty() && wr.write_all(&d.reply).await.is_err() {
            return false;
        }
        let mut effects = Vec::new();
        for e in d.events {
            let TelnetEvent::WindowSize(w, h) = e;
            self.size = (u32::from(w).max(1), u32::from(h).max(1));
            if let Some(t) = self.transcript.as_mut() {
                t.resize(self.size.0, self.size.1, &mut effects);
            }
        }
        let mut data: &[u8] = &d.data;
        while !data.is_empty() {
            if self.shell.is_some() {
                return self.shell_input(data, effects, wr).await;
            }
            let b = data[0];
            data = &data[1..];
            match self.line.feed(b) {
                LineStep::Echo(e) => {
                    if !send(wr, &e).await {
                        return false;
                    }
                }
                LineStep::Quit => return false,
                LineStep::Done(line) => {
                    if !self.line_done(line, wr).await {
                        return false;
                    }
                }
            }
        }
        transcript::emit(self.session, effects).await;
        true
    }

    /// Feeds the logged-in shell; `false` when the connection must end. A chunk that
    /// may run a command line runs in the node's [`LinePool`], off the async workers;
    /// the session waits for it, so line N's output is sent before line N+1 runs.
    async fn shell_input<S: AsyncWrite + Unpin>(
        &mut self,
        data: &[u8],
        mut effects: Vec<Effect>,
        wr: &mut WriteHalf<S>,
    ) -> bool {
        let (Some(mut shell), Some(t)) = (self.shell.take(), self.transcript.as_mut()) else {
            return false;
        };
        t.input(data, &mut effects);
        let now = now_s();
        let reply = if pool::runs_a_line(data) {
            let typed = data.to_vec();
            let done = LinePool::node()
                .run(self.session.src.ip(), move || {
                    let reply = shell.input(&typed, now);
                    (shell, reply)
                })
                .await;
            let Some((back, reply)) = done else {
                // The line panicked (a bug): this session ends, the node goes on.
                transcript::emit(self.session, effects).await;
                return false;
            };
            self.shell = Some(back);
            reply
        } else {
            let reply = shell.input(data, now);
            self.shell = Some(shell);
            reply
        };
        effects.extend(reply.effects);
        t.output(&reply.stdout, &mut effects);
        let ok = send(wr, &reply.stdout).await;
        transcript::emit(self.session, effects).await;
        ok && reply.exit.is_none()
    }

    /// A user name or password line was entered.
    async fn line_done<S: AsyncWrite + Unpin>(
        &mut self,
        line: Vec<u8>,
        wr: &mut WriteHalf<S>,
    ) -> bool {
        let text = clamp(&String::from_utf8_lossy(&line), MAX_FIELD_LEN);
        match self.line.phase {
            Phase::User => {
                if text.is_empty() {
                    let mut again = b"\r\n".to_vec();
                    again.extend_from_slice(&self.svc.login_prompt());
                    return send(wr, &again).await;
                }
                self.user = text;
                self.line.phase = Phase::Password;
                send(wr, b"\r\nPassword: ").await
            }
            Phase::Password => {
                self.line.phase = Phase::User;
                let success = self.svc.logins.attempt(
                    self.session.src.ip(),
                    &self.user,
                    &text,
                    &self.svc.policy,
                    self.svc.remember_s,
                );
                tracing::debug!(session = %self.session.id, username = %self.user, success, "telnet login attempt");
                self.session
                    .emit(EventKind::AuthAttempt(AuthAttempt {
                        method: AuthMethod::Password,
                        username: self.user.clone(),
                        password: Some(text),
                        key_fingerprint: None,
                        key_algorithm: None,
                        client_version: None,
                        success,
                    }))
                    .await;
                if success {
                    return self.start_shell(wr).await;
                }
                self.failures += 1;
                tokio::time::sleep(pam_delay(self.svc.delay)).await;
                if !send(wr, b"\r\nLogin incorrect\r\n").await {
                    return false;
                }
                if self.failures >= self.svc.max_attempts {
                    return false;
                }
                send(wr, &self.svc.login_prompt()).await
            }
        }
    }

    async fn start_shell<S: AsyncWrite + Unpin>(&mut self, wr: &mut WriteHalf<S>) -> bool {
        let login = Login {
            user: self.user.clone(),
            src: self.session.src.ip(),
            now: now_s(),
        };
        let mut shell = Shell::new(
            Arc::clone(&self.svc.profile),
            &login,
            true,
            ShellLimits::default(),
        );
        let mut t = Transcript::new(self.svc.transcript_cap, self.session);
        let mut effects = Vec::new();
        t.resize(self.size.0, self.size.1, &mut effects);
        t.set_env("TERM", "xterm");
        t.set_env("SHELL", "/bin/bash");
        let mut greeting = b"\r\n".to_vec();
        greeting.extend(shell.greeting().stdout);
        t.output(&greeting, &mut effects);
        self.shell = Some(shell);
        self.transcript = Some(t);
        let ok = send(wr, &greeting).await;
        transcript::emit(self.session, effects).await;
        ok
    }
}

fn now_s() -> i64 {
    crate::sink::now_ms() / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_line_echoes_the_user_not_the_password() {
        let mut l = LoginLine::new();
        assert_eq!(l.feed(b'r'), LineStep::Echo(b"r".to_vec()));
        assert_eq!(l.feed(b'x'), LineStep::Echo(b"x".to_vec()));
        assert_eq!(l.feed(0x7f), LineStep::Echo(b"\x08 \x08".to_vec()));
        assert_eq!(l.feed(b'\r'), LineStep::Done(b"r".to_vec()));
        assert_eq!(l.feed(b'\n'), LineStep::Echo(Vec::new()));
        l.phase = Phase::Password;
        assert_eq!(l.feed(b's'), LineStep::Echo(Vec::new()));
        assert_eq!(l.feed(b'\n'), LineStep::Done(b"s".to_vec()));
        for _ in 0..1000 {
            l.feed(b'a');
        }
        match l.feed(b'\r') {
            LineStep::Done(v) => assert_eq!(v.len(), MAX_LOGIN_LINE),
            other => panic!("{other:?}"),
        }
        assert_eq!(l.feed(0x04), LineStep::Quit);
    }
}
