//! Telnet honeypot as Debian 12's inetutils-telnetd with login(1) behind it: its option
//! negotiation (see `telnet_codec`), its host line, login's prompts with the pty's line
//! editing and echo, PAM's delay and "Login incorrect", login's five tries and 60 s
//! timeout, all under the service's login policy (every attempt recorded); then the
//! emulated shell with an asciicast transcript of the logged-in session. The oracle is
//! `agents/tests/telnet_oracle.rs`.

use super::ServiceContext;
use super::conn::Session;
use super::login::{LoginBook, pam_delay};
use super::shell::persist::{Loaded, OverlayStore};
use super::shell::pool::{self, LinePool};
use super::shell::telnet_codec::{self, PROBE, TelnetCodec, TelnetEvent};
use super::shell::transcript::{self, Transcript};
use super::shell::{Effect, Login, Profile, Shell, ShellLimits};
use honeybee_proto::config::{LoginPolicy, TelnetOptions};
use honeybee_proto::event::{AuthAttempt, AuthMethod, EventKind, MAX_FIELD_LEN, clamp};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::sync::watch;

/// A tty's canonical-mode line (N_TTY_BUF_SIZE less the newline); more is dropped.
const MAX_LOGIN_LINE: usize = 4095;
/// telnetd with a client that talks but leaves requests unanswered waits for ever; we
/// go on after this long (see [`TelnetCodec::give_up`]).
const NEGOTIATION_GRACE: Duration = Duration::from_secs(2);
/// login(1)'s LOGIN_TIMEOUT (login.defs default): the whole dialogue, not per attempt.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// A configured telnet service.
#[derive(Debug)]
pub(crate) struct TelnetService {
    banner: String,
    policy: Arc<LoginPolicy>,
    /// The node's login memory, shared with SSH (one set of system accounts).
    logins: Arc<LoginBook>,
    remember_s: u64,
    /// What intruders wrote, kept per source for `remember` (shared with SSH).
    overlays: Arc<OverlayStore>,
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

/// The login prompt's line as the pty's line discipline edits it (canonical mode with
/// Debian's defaults: ECHO, ECHOE, ECHOK, ECHOCTL, ECHOKE, ICRNL, IXON, ISIG; erase
/// DEL, kill ^U, werase ^W, reprint ^R, lnext ^V, eof ^D): the user name is echoed,
/// the password is not.
#[derive(Debug)]
struct LoginLine {
    phase: Phase,
    buf: Vec<u8>,
    /// After ^V: the next byte is taken literally.
    lnext: bool,
}

/// What one byte did to the login line.
#[derive(Debug, PartialEq, Eq)]
enum LineStep {
    Echo(Vec<u8>),
    /// Enter, or ^D after some text.
    Done(Vec<u8>),
    /// ^D on an empty line: end of file for login.
    Eof,
    /// ^C: SIGINT kills login, and telnetd ends the connection.
    Interrupt,
    /// ^\: SIGQUIT, echoed first.
    Quit,
}

/// How the tty echoes a byte (ECHOCTL): control characters as `^X`.
fn echo_form(b: u8) -> Vec<u8> {
    match b {
        b'\t' => vec![b'\t'],
        0..=0x1f => vec![b'^', b + 0x40],
        0x7f => b"^?".to_vec(),
        b => vec![b],
    }
}

impl LoginLine {
    fn new() -> LoginLine {
        LoginLine {
            phase: Phase::User,
            buf: Vec::new(),
            lnext: false,
        }
    }

    fn echo(&self, what: Vec<u8>) -> LineStep {
        LineStep::Echo(if self.phase == Phase::User {
            what
        } else {
            Vec::new()
        })
    }

    /// Erases the last byte; what the tty sends to rub it out (two columns for `^X`).
    fn rub_out(&mut self) -> Vec<u8> {
        match self.buf.pop() {
            Some(b) => b"\x08 \x08".repeat(echo_form(b).len()),
            None => Vec::new(),
        }
    }

    fn push(&mut self, b: u8) -> LineStep {
        if self.buf.len() >= MAX_LOGIN_LINE {
            return LineStep::Echo(Vec::new());
        }
        self.buf.push(b);
        self.echo(echo_form(b))
    }

    fn feed(&mut self, b: u8) -> LineStep {
        if std::mem::take(&mut self.lnext) {
            // The `^` shown for ^V is overwritten by what follows.
            return self.push(b);
        }
        match b {
            b'\r' | b'\n' => LineStep::Done(std::mem::take(&mut self.buf)),
            0x7f => {
                let e = self.rub_out();
                self.echo(e)
            }
            0x15 => {
                let mut e = Vec::new();
                while !self.buf.is_empty() {
                    e.extend(self.rub_out());
                }
                self.echo(e)
            }
            0x17 => {
                let mut e = Vec::new();
                while self.buf.last().is_some_and(|c| c.is_ascii_whitespace()) {
                    e.extend(self.rub_out());
                }
                while self.buf.last().is_some_and(|c| !c.is_ascii_whitespace()) {
                    e.extend(self.rub_out());
                }
                self.echo(e)
            }
            0x12 => {
                let mut e = b"^R\r\n".to_vec();
                for &c in &self.buf {
                    e.extend(echo_form(c));
                }
                self.echo(e)
            }
            0x16 => {
                self.lnext = true;
                self.echo(b"^\x08".to_vec())
            }
            0x04 if self.buf.is_empty() => LineStep::Eof,
            0x04 => LineStep::Done(std::mem::take(&mut self.buf)),
            0x03 => LineStep::Interrupt,
            0x1c => LineStep::Quit,
            0x1a => {
                // SIGTSTP, which login ignores; the signal flushes the line.
                self.buf.clear();
                self.echo(b"^Z".to_vec())
            }
            // XON/XOFF flow control, never seen by login.
            0x11 | 0x13 => LineStep::Echo(Vec::new()),
            b => self.push(b),
        }
    }
}

/// Writes the terminal's output as telnetd does (see [`telnet_codec::escape_nvt`]).
async fn send_nvt<W: AsyncWrite + Unpin>(w: &mut W, data: &[u8], binary: bool) -> bool {
    if data.is_empty() {
        return true;
    }
    w.write_all(&telnet_codec::escape_nvt(data, binary))
        .await
        .is_ok()
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
            overlays: Arc::clone(&ctx.overlays),
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

    /// What telnetd prints before login starts (its `-h`-less host information: system,
    /// release, host name and the pty), then the operator's banner if any, then login's
    /// prompt.
    fn opening(&self) -> Vec<u8> {
        let release = self.profile.node.persona().kernel.release();
        // A router's BusyBox telnetd prints no host line: login's prompt comes first.
        let mut out = if self.profile.busybox.is_some() {
            Vec::new()
        } else {
            format!(
                "\r\nLinux {release} ({}) (pts/0)\r\n\r\n",
                self.profile.hostname
            )
            .into_bytes()
        };
        out.extend_from_slice(&telnet_codec::escape(self.banner.as_bytes()));
        out.extend_from_slice(&self.login_prompt());
        out
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
        // As inetutils telnetd: its requests first, the rest as the client answers.
        if wr.write_all(PROBE).await.is_err() {
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
            term: None,
            login_deadline: None,
            shell: None,
            transcript: None,
            loaded: Loaded::default(),
        };
        let mut buf = vec![0u8; 4096];
        loop {
            // Waiting on a client that talks but does not negotiate ends after a grace;
            // the login dialogue ends at login's own timeout.
            let (wait, grace) = if !conn.codec.ready() && conn.codec.heard() {
                (NEGOTIATION_GRACE.min(self.idle_timeout), true)
            } else if let (Some(d), None) = (conn.login_deadline, conn.shell.as_ref()) {
                (
                    d.saturating_duration_since(tokio::time::Instant::now())
                        .min(self.idle_timeout),
                    false,
                )
            } else {
                (self.idle_timeout, false)
            };
            let read = tokio::select! {
                r = tokio::time::timeout(wait, rd.read(&mut buf)) => r,
                () = super::stopped(&mut stop) => break,
            };
            let ok = match read {
                Ok(Ok(n)) if n > 0 => {
                    let d = conn.codec.decode(&buf[..n]);
                    conn.input(d, &mut wr).await
                }
                Ok(_) => false,
                Err(_) if grace && !conn.codec.ready() => {
                    let d = conn.codec.give_up();
                    conn.input(d, &mut wr).await
                }
                Err(_) => {
                    if conn.shell.is_none()
                        && conn
                            .login_deadline
                            .is_some_and(|d| d <= tokio::time::Instant::now())
                    {
                        let msg = format!(
                            "\r\nLogin timed out after {} seconds.\r\n",
                            LOGIN_TIMEOUT.as_secs()
                        );
                        let _ = send(&mut wr, msg.as_bytes()).await;
                    }
                    false
                }
            };
            if !ok {
                break;
            }
        }
        let _ = tokio::time::timeout(super::SHUTDOWN_GRACE, wr.shutdown()).await;
        // What the session wrote is there for its source's next one.
        if let Some(shell) = conn.shell.as_mut() {
            self.overlays.keep(&conn.loaded, shell.files().0);
        }
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
    /// From TTYPE, for the shell's `TERM`.
    term: Option<String>,
    /// Set when login starts: login(1) gives up after [`LOGIN_TIMEOUT`].
    login_deadline: Option<tokio::time::Instant>,
    /// After a successful login; out of here while a line runs in the [`LinePool`].
    shell: Option<Shell>,
    /// After a successful login, with the shell.
    transcript: Option<Transcript>,
    /// What the shell's filesystem started with from earlier sessions.
    loaded: Loaded,
}

impl Conn<'_> {
    /// Handles one decoded chunk from the peer; `false` when the connection must end.
    async fn input<S: AsyncWrite + Unpin>(
        &mut self,
        d: telnet_codec::Decoded,
        wr: &mut WriteHalf<S>,
    ) -> bool {
        if !d.reply.is_empty() && wr.write_all(&d.reply).await.is_err() {
            return false;
        }
        if d.ready {
            self.login_deadline = Some(tokio::time::Instant::now() + LOGIN_TIMEOUT);
            if wr.write_all(&self.svc.opening()).await.is_err() {
                return false;
            }
        }
        let mut effects = Vec::new();
        for e in d.events {
            match e {
                TelnetEvent::WindowSize(w, h) => {
                    self.size = (u32::from(w).max(1), u32::from(h).max(1));
                    if let Some(t) = self.transcript.as_mut() {
                        t.resize(self.size.0, self.size.1, &mut effects);
                    }
                    // At the prompt the shell redraws the line being edited, as bash
                    // does on SIGWINCH (a line running has the shell out of here).
                    if let Some(sh) = self.shell.as_mut() {
                        let reply = sh.set_size(self.size.0, self.size.1);
                        effects.extend(reply.effects);
                        if let Some(t) = self.transcript.as_mut() {
                            t.output(&reply.stdout, &mut effects);
                        }
                        let sent = reply.stdout.is_empty()
                            || send_nvt(wr, &reply.stdout, self.codec.binary_out()).await;
                        if !sent || reply.exit.is_some() {
                            transcript::emit(self.session, effects).await;
                            return false;
                        }
                    }
                }
                TelnetEvent::TerminalType(t) => self.term = Some(t),
            }
        }
        let mut data = d.data;
        if d.interrupt {
            // telnetd signals the terminal's process: login dies, a shell sees ^C.
            if self.shell.is_none() {
                return false;
            }
            data.push(0x03);
        }
        let mut data: &[u8] = &data;
        // The echo of this chunk, sent when a line is done or the chunk ends: a signal
        // in between flushes it unsent, as the pty's flush does.
        let mut echo = Vec::new();
        while !data.is_empty() {
            if self.shell.is_some() {
                return self.shell_input(data, effects, wr).await;
            }
            let b = data[0];
            data = &data[1..];
            let step = self.line.feed(b);
            if let LineStep::Echo(e) = step {
                echo.extend(e);
                continue;
            }
            if let LineStep::Interrupt | LineStep::Quit = step {
                // SIGINT or SIGQUIT kills login; telnetd flushes and sends a data mark.
                let mark = if step == LineStep::Interrupt {
                    "^C"
                } else {
                    "^\\"
                };
                let _ = wr.write_all(&[telnet_codec::IAC, telnet_codec::DM]).await;
                let _ = send(wr, mark.as_bytes()).await;
                return false;
            }
            if !send(wr, &std::mem::take(&mut echo)).await {
                return false;
            }
            match step {
                LineStep::Echo(_) | LineStep::Interrupt | LineStep::Quit => {}
                LineStep::Eof if self.line.phase == Phase::User => {
                    // End of file for the name: PAM's conversation fails.
                    if !send(wr, b"\r\n").await || !self.failed(wr).await {
                        return false;
                    }
                }
                LineStep::Eof => {
                    if !self.line_done(Vec::new(), wr).await {
                        return false;
                    }
                }
                LineStep::Done(line) => {
                    if !self.line_done(line, wr).await {
                        return false;
                    }
                }
            }
        }
        if !send(wr, &echo).await {
            return false;
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
        let ok = send_nvt(wr, &reply.stdout, self.codec.binary_out()).await;
        transcript::emit(self.session, effects).await;
        ok && reply.exit.is_none()
    }

    /// A user name or password line was entered. The tty echoes the newline of the name;
    /// login's password reader prints its own.
    async fn line_done<S: AsyncWrite + Unpin>(
        &mut self,
        line: Vec<u8>,
        wr: &mut WriteHalf<S>,
    ) -> bool {
        let text = clamp(&String::from_utf8_lossy(&line), MAX_FIELD_LEN);
        match self.line.phase {
            Phase::User => {
                // An empty name is asked for a password too (and fails).
                self.user = text;
                self.line.phase = Phase::Password;
                send(wr, b"\r\nPassword: ").await
            }
            Phase::Password => {
                self.line.phase = Phase::User;
                if !send(wr, b"\r\n").await {
                    return false;
                }
                let success = !self.user.is_empty()
                    && self.svc.logins.attempt(
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
                self.failed(wr).await
            }
        }
    }

    /// A failed attempt: PAM's delay, login's message, and after the last try its
    /// farewell and the end of the connection.
    async fn failed<S: AsyncWrite + Unpin>(&mut self, wr: &mut WriteHalf<S>) -> bool {
        self.failures += 1;
        tokio::time::sleep(pam_delay(self.svc.delay)).await;
        if !send(wr, b"\r\nLogin incorrect\r\n").await {
            return false;
        }
        if self.failures >= self.svc.max_attempts {
            let bye = format!("Maximum number of tries exceeded ({})\r\n", self.failures);
            let _ = send(wr, bye.as_bytes()).await;
            return false;
        }
        send(wr, &self.svc.login_prompt()).await
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
        shell.set_telnet();
        // What this source wrote in earlier sessions is still there.
        self.loaded =
            self.svc
                .overlays
                .restore(self.session.src.ip(), self.svc.remember_s, shell.files().0);
        // Before the first prompt: nothing to redraw.
        let _ = shell.set_size(self.size.0, self.size.1);
        let term = self.term.clone().unwrap_or_else(|| "network".into());
        shell.set_env("TERM", &term);
        let mut t = Transcript::new(self.svc.transcript_cap, self.session);
        let mut effects = Vec::new();
        t.resize(self.size.0, self.size.1, &mut effects);
        // The recording's player needs a real terminal type ("network" is telnetd's
        // stand-in when the client names none).
        t.set_env("TERM", self.term.as_deref().unwrap_or("xterm"));
        t.set_env("SHELL", "/bin/bash");
        let greeting = shell.greeting().stdout;
        t.output(&greeting, &mut effects);
        self.shell = Some(shell);
        self.transcript = Some(t);
        let ok = send_nvt(wr, &greeting, self.codec.binary_out()).await;
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

    fn feed_all(l: &mut LoginLine, bytes: &[u8]) -> (Vec<u8>, Vec<LineStep>) {
        let mut echo = Vec::new();
        let mut other = Vec::new();
        for &b in bytes {
            match l.feed(b) {
                LineStep::Echo(e) => echo.extend(e),
                s => other.push(s),
            }
        }
        (echo, other)
    }

    #[test]
    fn login_line_edits_and_echoes_as_the_tty_does() {
        // What the real telnetd's pty echoed for these keys (see telnet_oracle).
        let mut l = LoginLine::new();
        let (echo, done) = feed_all(&mut l, b"ab\x7fc\x08d\x15root\x17x\r");
        assert_eq!(
            echo,
            b"ab\x08 \x08c^Hd\x08 \x08\x08 \x08\x08 \x08\x08 \x08\x08 \x08root\x08 \x08\x08 \x08\x08 \x08\x08 \x08x"
        );
        assert_eq!(done, vec![LineStep::Done(b"x".to_vec())]);
        let (echo, _) = feed_all(&mut l, b"a\x12b\x16\x01\x00");
        assert_eq!(echo, b"a^R\r\nab^\x08^A^@");
        assert_eq!(l.feed(0x04), LineStep::Done(b"ab\x01\x00".to_vec()));
        assert_eq!(l.feed(0x04), LineStep::Eof);
        assert_eq!(l.feed(0x03), LineStep::Interrupt);
        assert_eq!(l.feed(0x1c), LineStep::Quit);
    }

    #[test]
    fn login_line_hides_the_password_and_is_capped() {
        let mut l = LoginLine::new();
        l.phase = Phase::Password;
        let (echo, done) = feed_all(&mut l, b"s3cr\x7fet\n");
        assert!(echo.is_empty());
        assert_eq!(done, vec![LineStep::Done(b"s3cet".to_vec())]);
        for _ in 0..10_000 {
            l.feed(b'a');
        }
        match l.feed(b'\r') {
            LineStep::Done(v) => assert_eq!(v.len(), MAX_LOGIN_LINE),
            other => panic!("{other:?}"),
        }
        // Every byte value, in any order, is handled without a panic.
        let mut l = LoginLine::new();
        for b in 0..=255u8 {
            let _ = l.feed(b);
            let _ = l.feed(0x7f);
        }
    }
}
