//! The SMTP dialogue of Debian 12's Postfix 3.7 smtpd (Debian's `main.cf`, SASL through
//! Dovecot, `smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated
//! defer_unauth_destination`, seen from outside `mynetworks`), as a sans-IO state
//! machine: one input line in, the reply bytes and what the connection does next out.
//! Reply texts, codes and the order of checks are Postfix's (compared byte for byte in
//! `tests/smtp_oracle.rs`). Nothing is ever queued for delivery.

use super::addr;
use base64::Engine;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// `smtpd_soft_error_limit`: from this many errors on, every reply waits
/// `smtpd_error_sleep_time` (1 s).
pub(crate) const SOFT_ERRORS: u32 = 10;
/// `smtpd_hard_error_limit`: the next command after this many errors is refused with 421.
const HARD_ERRORS: u32 = 20;

/// Accounts the local recipient table has besides those of the shell's `/etc/passwd`:
/// Postfix's own, and postmaster, which smtpd always accepts.
const MAIL_USERS: &[&str] = &["postfix", "postmaster"];

/// Whether `user` (lower-case) is a local account: one the emulated shell's
/// `/etc/passwd` lists, so that VRFY and RCPT agree with what an intruder reads there.
fn known_user(user: &str) -> bool {
    MAIL_USERS.contains(&user) || crate::services::shell::accounts::is_base_user(user)
}

/// What every connection of one service shares.
#[derive(Debug)]
pub(crate) struct Config {
    /// `myhostname`.
    pub host: String,
    /// `message_size_limit`.
    pub max_message: u64,
    pub max_recipients: usize,
    pub max_commands: u32,
    /// The queue file's inode, the second half of a queue id; grows with every message.
    pub inode: AtomicU64,
}

impl Config {
    /// A Postfix short queue id: the microseconds of the time in five hex digits, then
    /// the queue file's inode number in hex (`9B82A98C2A8`).
    fn queue_id(&self) -> String {
        let usec = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_micros())
            .unwrap_or(0);
        let inode = self.inode.fetch_add(1, Ordering::Relaxed);
        format!("{usec:05X}{inode:X}")
    }
}

/// A login the client tried (always refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Login {
    pub mechanism: &'static str,
    pub username: String,
    pub password: String,
}

/// What the connection does after the reply.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Read the next command.
    Command,
    /// Send the reply, then close.
    Close,
    /// Send the reply, discard buffered plaintext, start TLS.
    StartTls,
    /// Read a DATA message up to the lone dot, then call [`Machine::data_done`].
    Data,
    /// Read exactly `size` raw bytes of a BDAT chunk, then call [`Machine::bdat_done`].
    Bdat { size: u64 },
}

/// The answer to one input line.
#[derive(Debug)]
pub(crate) struct Step {
    /// Reply lines, CRLF-terminated (empty when there is nothing to say yet).
    pub reply: String,
    pub next: Next,
    /// Errors have piled up: Postfix sleeps before this reply.
    pub slow: bool,
    /// A refused login (the reply comes after the SASL failure delay).
    pub login: Option<Login>,
    /// A cap was hit (recorded as `LimitReached`).
    pub limit: Option<String>,
}

#[derive(Debug)]
enum AuthWait {
    Plain,
    LoginUser,
    LoginPass(String),
}

/// One connection's SMTP state.
#[derive(Debug)]
pub(crate) struct Machine {
    cfg: std::sync::Arc<Config>,
    local: IpAddr,
    tls: bool,
    helo: Option<String>,
    mail: Option<String>,
    rcpts: Vec<String>,
    /// The SIZE= of the last MAIL command; like smtpd's `msg_size`, it survives a
    /// refused MAIL until the transaction is reset.
    msg_size: u64,
    errors: u32,
    commands: u32,
    auth: Option<AuthWait>,
    /// A BDAT transfer under way: bytes so far, or `None` once a chunk was refused
    /// (later chunks are discarded until the last one).
    bdat: Option<Option<u64>>,
    /// The chunk being read: its LAST flag, and the transfer's state before it.
    chunk: (bool, Option<Option<u64>>),
    /// Recipients smtpd still counts after a last BDAT chunk over the size limit ended
    /// the transaction (its `rcpt_count` is not reset there): they count toward the
    /// recipient limit of the next transaction, and a DATA before the next MAIL crashes
    /// Debian's smtpd 3.7.11 (signal 11: the connection just closes).
    ghost_rcpts: usize,
}

impl Machine {
    pub(crate) fn new(cfg: std::sync::Arc<Config>, local: IpAddr, tls: bool) -> Machine {
        Machine {
            cfg,
            local,
            tls,
            helo: None,
            mail: None,
            rcpts: Vec::new(),
            msg_size: 0,
            errors: 0,
            commands: 0,
            auth: None,
            bdat: None,
            chunk: (false, None),
            ghost_rcpts: 0,
        }
    }

    pub(crate) fn greeting(&self) -> String {
        format!("220 {} ESMTP Postfix (Debian/GNU)\r\n", self.cfg.host)
    }

    pub(crate) fn timeout(&self) -> String {
        format!("421 4.4.2 {} Error: timeout exceeded\r\n", self.cfg.host)
    }

    /// Whether the next line answers an AUTH challenge rather than being a command.
    pub(crate) fn in_auth(&self) -> bool {
        self.auth.is_some()
    }

    pub(crate) fn helo(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    pub(crate) fn mail_from(&self) -> Option<&str> {
        self.mail.as_deref()
    }

    pub(crate) fn rcpts(&self) -> &[String] {
        &self.rcpts
    }

    /// Builds the step for `text`, counting it as an error when it is one (4xx, 5xx), as
    /// smtpd counts a failed command.
    fn step(&mut self, text: String, next: Next) -> Step {
        let slow = self.errors >= SOFT_ERRORS;
        if text.starts_with(['4', '5']) {
            self.errors += 1;
        }
        let mut reply = text;
        reply.push_str("\r\n");
        Step {
            reply,
            next,
            slow,
            login: None,
            limit: None,
        }
    }

    fn reply(&mut self, text: impl Into<String>) -> Step {
        self.step(text.into(), Next::Command)
    }

    fn reset(&mut self) {
        self.mail = None;
        self.rcpts.clear();
        self.msg_size = 0;
        self.bdat = None;
        self.ghost_rcpts = 0;
    }

    /// One line from the client, without its line ending.
    pub(crate) fn line(&mut self, line: &[u8]) -> Step {
        // One char per byte (Latin-1), so that what the client sent is echoed back byte
        // for byte as smtpd does, UTF-8 or not; [`latin1`] turns replies back to bytes.
        let text: String = line.iter().map(|&b| char::from(b)).collect();
        if let Some(wait) = self.auth.take() {
            return self.auth_response(wait, text.trim());
        }
        if self.errors >= HARD_ERRORS {
            return self.step(
                format!("421 4.7.0 {} Error: too many errors", self.cfg.host),
                Next::Close,
            );
        }
        self.commands += 1;
        if self.commands > self.cfg.max_commands {
            let mut s = self.step(
                format!("421 4.7.0 {} Error: too many errors", self.cfg.host),
                Next::Close,
            );
            s.limit = Some(format!(
                "more than {} SMTP commands on one connection",
                self.cfg.max_commands
            ));
            return s;
        }
        // smtputf8_enable = yes: a command line must be UTF-8.
        if std::str::from_utf8(line).is_err() {
            return self.reply("500 5.5.2 Error: bad UTF-8 syntax");
        }
        let text = text.trim_start_matches([' ', '\t']);
        let (verb, arg) = match text.find([' ', '\t']) {
            Some(i) => (&text[..i], text[i..].trim_start_matches([' ', '\t'])),
            None => (text, ""),
        };
        let arg = arg.trim_end_matches([' ', '\t']);
        if verb.is_empty() {
            return self.reply("500 5.5.2 Error: bad syntax");
        }
        let verb = verb.to_ascii_uppercase();
        // smtpd_forbidden_commands = CONNECT GET POST regexp:{{/^[^A-Z]/ Bogus}}
        if !verb.as_bytes()[0].is_ascii_alphabetic() || ["CONNECT", "GET", "POST"].contains(&&*verb)
        {
            return self.step(
                "221 2.7.0 Error: I can break rules, too. Goodbye.".into(),
                Next::Close,
            );
        }
        match verb.as_str() {
            "HELO" | "EHLO" => self.helo_cmd(&verb, arg),
            "MAIL" => self.mail_cmd(arg),
            "RCPT" => self.rcpt_cmd(arg),
            "DATA" => self.data_cmd(arg),
            "BDAT" => self.bdat_cmd(arg),
            "RSET" if arg.is_empty() => {
                self.reset();
                self.reply("250 2.0.0 Ok")
            }
            "RSET" => self.reply("501 5.5.4 Syntax: RSET"),
            "NOOP" => self.reply("250 2.0.0 Ok"),
            "QUIT" => self.step("221 2.0.0 Bye".into(), Next::Close),
            "VRFY" => self.vrfy_cmd(arg),
            "ETRN" => self.etrn_cmd(arg),
            "STARTTLS" => self.starttls_cmd(arg),
            "AUTH" => self.auth_cmd(arg),
            _ => self.reply("500 5.5.2 Error: command not recognized"),
        }
    }

    fn helo_cmd(&mut self, verb: &str, arg: &str) -> Step {
        if arg.is_empty() {
            return self.reply(format!("501 Syntax: {verb} hostname"));
        }
        self.reset();
        self.helo = Some(arg.to_owned());
        let host = &self.cfg.host;
        if verb == "HELO" {
            return self.reply(format!("250 {host}"));
        }
        let mut lines = vec![
            host.clone(),
            "PIPELINING".into(),
            format!("SIZE {}", self.cfg.max_message),
            "VRFY".into(),
            "ETRN".into(),
        ];
        if !self.tls {
            lines.push("STARTTLS".into());
        }
        for k in [
            "AUTH PLAIN LOGIN",
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
            "DSN",
            "SMTPUTF8",
            "CHUNKING",
        ] {
            lines.push(k.into());
        }
        let n = lines.len();
        let text: Vec<String> = lines
            .into_iter()
            .enumerate()
            .map(|(i, l)| format!("250{}{l}", if i + 1 == n { ' ' } else { '-' }))
            .collect();
        self.reply(text.join("\r\n"))
    }

    fn mail_cmd(&mut self, arg: &str) -> Step {
        if self.bdat.is_some() {
            return self.reply("503 5.5.1 Error: MAIL after BDAT");
        }
        if self.mail.is_some() {
            return self.reply("503 5.5.1 Error: nested MAIL command");
        }
        let Some(rest) = strip_keyword(arg, "FROM:") else {
            return self.reply("501 5.5.4 Syntax: MAIL FROM:<address>");
        };
        let Some(p) = addr::split(rest) else {
            return self.reply("501 5.1.7 Bad sender address syntax");
        };
        for param in &p.params {
            let (k, v) = param.split_once('=').unwrap_or((param, ""));
            match k.to_ascii_uppercase().as_str() {
                "SIZE" => match v.parse::<u64>() {
                    Ok(n) if v.bytes().all(|b| b.is_ascii_digit()) => self.msg_size = n,
                    _ => return self.reply("501 5.5.4 Bad message size syntax"),
                },
                "BODY" if ["7BIT", "8BITMIME"].contains(&v.to_ascii_uppercase().as_str()) => {}
                "SMTPUTF8" | "RET" | "ENVID" | "AUTH" => {}
                _ => return self.reply(format!("555 5.5.4 Unsupported option: {param}")),
            }
        }
        if self.msg_size > self.cfg.max_message {
            return self.reply("552 5.3.4 Message size exceeds fixed limit");
        }
        self.mail = Some(p.addr);
        self.reply("250 2.1.0 Ok")
    }

    fn rcpt_cmd(&mut self, arg: &str) -> Step {
        if self.mail.is_none() {
            return self.reply("503 5.5.1 Error: need MAIL command");
        }
        let Some(rest) = strip_keyword(arg, "TO:") else {
            return self.reply("501 5.5.4 Syntax: RCPT TO:<address>");
        };
        let p = match addr::split(rest) {
            Some(p) if !p.addr.is_empty() => p,
            _ => return self.reply("501 5.1.3 Bad recipient address syntax"),
        };
        if self.rcpts.len() + self.ghost_rcpts >= self.cfg.max_recipients {
            return self.reply("452 4.5.3 Error: too many recipients");
        }
        for param in &p.params {
            let k = param.split_once('=').map_or(*param, |(k, _)| k);
            if !["NOTIFY", "ORCPT"].contains(&k.to_ascii_uppercase().as_str()) {
                return self.reply(format!("555 5.5.4 Unsupported option: {param}"));
            }
        }
        match self.check_recipient(&p.addr) {
            Err(refusal) => self.reply(refusal),
            Ok(()) => {
                self.rcpts.push(p.addr);
                self.reply("250 2.1.5 Ok")
            }
        }
    }

    /// Relay restrictions, then the local recipient table: `Ok` for a local account.
    fn check_recipient(&self, address: &str) -> Result<(), String> {
        let (user, domain) = addr::parts(address);
        let local = match domain {
            None => true,
            Some(d) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                d == self.cfg.host.to_ascii_lowercase()
                    || d == "localhost"
                    || d.strip_prefix('[')
                        .and_then(|x| x.strip_suffix(']'))
                        .and_then(|ip| ip.parse::<IpAddr>().ok())
                        .is_some_and(|ip| ip == self.local)
            }
        };
        let shown = addr::shown(address);
        if !local {
            return Err(format!("454 4.7.1 <{shown}>: Relay access denied"));
        }
        // recipient_delimiter = +
        let base = user.split('+').next().unwrap_or(user).to_ascii_lowercase();
        if known_user(&base) {
            Ok(())
        } else {
            Err(format!(
                "550 5.1.1 <{shown}>: Recipient address rejected: User unknown in local recipient table"
            ))
        }
    }

    fn data_cmd(&mut self, arg: &str) -> Step {
        if self.mail.is_none() && self.ghost_rcpts > 0 {
            return Step {
                reply: String::new(),
                next: Next::Close,
                slow: false,
                login: None,
                limit: None,
            };
        }
        if self.rcpts.is_empty() {
            return if self.mail.is_none() {
                self.reply("503 5.5.1 Error: need RCPT command")
            } else {
                self.reply("554 5.5.1 Error: no valid recipients")
            };
        }
        if !arg.is_empty() {
            return self.reply("501 5.5.4 Syntax: DATA");
        }
        self.step("354 End data with <CR><LF>.<CR><LF>".into(), Next::Data)
    }

    /// The message of a DATA command was read (`size` bytes, dots unstuffed). The reply,
    /// and the queue id the message got (none when it was refused).
    pub(crate) fn data_done(&mut self, size: u64) -> (Step, Option<String>) {
        self.reset();
        if size > self.cfg.max_message {
            return (self.reply("552 5.3.4 Error: message file too big"), None);
        }
        let id = self.cfg.queue_id();
        (
            self.reply(format!("250 2.0.0 Ok: queued as {id}")),
            Some(id),
        )
    }

    fn bdat_cmd(&mut self, arg: &str) -> Step {
        let words: Vec<&str> = arg.split_whitespace().collect();
        let size = match words.as_slice() {
            [n] | [n, _] if n.bytes().all(|b| b.is_ascii_digit()) => n.parse::<u64>().ok(),
            _ => None,
        };
        let last = words.get(1).map(|w| w.eq_ignore_ascii_case("LAST"));
        let (Some(size), None | Some(true)) = (size, last) else {
            return self.step("521 5.5.4 Syntax: BDAT count [LAST]".into(), Next::Close);
        };
        // The chunk is read (and dropped) even when the command is refused: the client
        // sends it anyway.
        self.chunk = (last == Some(true), self.bdat);
        Step {
            reply: String::new(),
            next: Next::Bdat { size },
            slow: false,
            login: None,
            limit: None,
        }
    }

    /// Whether the BDAT chunk being read belongs to a message that is kept.
    pub(crate) fn bdat_keeps(&self) -> bool {
        !self.rcpts.is_empty() && !matches!(self.chunk.1, Some(None))
    }

    pub(crate) fn bdat_is_last(&self) -> bool {
        self.chunk.0
    }

    /// The BDAT chunk announced last (`size` bytes) was read. The reply, and the queue id
    /// when it completed a kept message.
    pub(crate) fn bdat_done(
        &mut self,
        size: u64,
        ends_with_newline: bool,
    ) -> (Step, Option<String>) {
        let (last, state) = self.chunk;
        let so_far = match state {
            Some(None) => {
                self.bdat = if last { None } else { Some(None) };
                return (
                    self.reply(format!(
                        "551 5.0.0 Discarded {size} bytes after earlier error"
                    )),
                    None,
                );
            }
            Some(Some(n)) => n,
            None => 0,
        };
        if self.rcpts.is_empty() {
            self.bdat = if last { None } else { Some(None) };
            let text = if self.mail.is_none() {
                "503 5.5.1 Error: need RCPT command"
            } else {
                "554 5.5.1 Error: no valid recipients"
            };
            return (self.reply(text), None);
        }
        let total = so_far + size;
        if total > self.cfg.max_message {
            self.bdat = if last { None } else { Some(None) };
            if last {
                let counted = self.rcpts.len();
                self.reset();
                self.ghost_rcpts = counted;
            }
            return (
                self.reply("552 5.3.4 Chunk exceeds message size limit"),
                None,
            );
        }
        if !last {
            self.bdat = Some(Some(total));
            return (self.reply(format!("250 2.0.0 Ok: {size} bytes")), None);
        }
        // Postfix ends an unterminated last line itself, and counts it.
        let total = total + if ends_with_newline { 0 } else { 2 };
        self.reset();
        let id = self.cfg.queue_id();
        (
            self.reply(format!("250 2.0.0 Ok: {total} bytes queued as {id}")),
            Some(id),
        )
    }

    fn vrfy_cmd(&mut self, arg: &str) -> Step {
        if arg.is_empty() {
            return self.reply("501 5.5.4 Syntax: VRFY address [SMTPUTF8]");
        }
        let checked = match addr::split(arg) {
            Some(p)
                if !p.addr.is_empty()
                    && p.params.iter().all(|x| x.eq_ignore_ascii_case("SMTPUTF8")) =>
            {
                self.check_recipient(&p.addr)
            }
            _ => Err("501 5.1.3 Bad recipient address syntax".into()),
        };
        match checked {
            // The address as the client wrote it, without the SMTPUTF8 flag.
            Ok(()) => {
                let token = arg.split([' ', '\t']).next().unwrap_or(arg);
                self.reply(format!("252 2.0.0 {token}"))
            }
            Err(e) => self.reply(e),
        }
    }

    fn etrn_cmd(&mut self, arg: &str) -> Step {
        if self.mail.is_some() {
            return self.reply("503 Error: MAIL transaction in progress");
        }
        if arg.is_empty() || arg.contains([' ', '\t']) {
            return self.reply("500 Syntax: ETRN domain");
        }
        self.reply(format!("459 <{arg}>: service unavailable"))
    }

    fn starttls_cmd(&mut self, arg: &str) -> Step {
        if !arg.is_empty() {
            return self.reply("501 5.5.4 Syntax: STARTTLS");
        }
        if self.tls {
            return self.reply("554 5.5.1 Error: TLS already active");
        }
        self.step("220 2.0.0 Ready to start TLS".into(), Next::StartTls)
    }

    fn auth_cmd(&mut self, arg: &str) -> Step {
        if self.mail.is_some() {
            return self.reply("503 5.5.1 Error: MAIL transaction in progress");
        }
        let words: Vec<&str> = arg.split_whitespace().collect();
        let (mech, initial) = match words.as_slice() {
            [m] => (*m, None),
            [m, i] => (*m, Some(*i)),
            _ => return self.reply("501 5.5.4 Syntax: AUTH mechanism"),
        };
        let mech = mech.to_ascii_uppercase();
        if mech != "PLAIN" && mech != "LOGIN" {
            return self
                .reply("535 5.7.8 Error: authentication failed: Invalid authentication mechanism");
        }
        let decoded = match initial {
            None => None,
            Some("=") => Some(Vec::new()),
            Some(b64) => match base64::engine::general_purpose::STANDARD.decode(b64) {
                Ok(d) => Some(d),
                Err(_) => {
                    return self.reply(
                        "535 5.7.8 Error: authentication failed: Invalid base64 data in initial response",
                    );
                }
            },
        };
        match (mech.as_str(), decoded) {
            ("PLAIN", None) => self.challenge(AuthWait::Plain, ""),
            ("PLAIN", Some(d)) => self.plain(&d),
            (_, None) => self.challenge(AuthWait::LoginUser, "VXNlcm5hbWU6"),
            (_, Some(user)) => self.challenge(
                AuthWait::LoginPass(String::from_utf8_lossy(&user).into_owned()),
                "UGFzc3dvcmQ6",
            ),
        }
    }

    fn challenge(&mut self, wait: AuthWait, text: &str) -> Step {
        self.auth = Some(wait);
        self.reply(format!("334 {text}"))
    }

    fn auth_response(&mut self, wait: AuthWait, line: &str) -> Step {
        if line == "*" {
            return self.reply("501 5.7.0 Authentication aborted");
        }
        let Ok(d) = base64::engine::general_purpose::STANDARD.decode(line) else {
            return self.reply(
                "535 5.7.8 Error: authentication failed: Invalid base64 data in continued response",
            );
        };
        match wait {
            AuthWait::Plain => self.plain(&d),
            AuthWait::LoginUser => self.challenge(
                AuthWait::LoginPass(String::from_utf8_lossy(&d).into_owned()),
                "UGFzc3dvcmQ6",
            ),
            AuthWait::LoginPass(username) => self.refuse(Login {
                mechanism: "LOGIN",
                username,
                password: String::from_utf8_lossy(&d).into_owned(),
            }),
        }
    }

    /// `authzid NUL authcid NUL password`.
    fn plain(&mut self, d: &[u8]) -> Step {
        let mut parts = d.splitn(3, |&b| b == 0);
        let (_authz, user, pass) = (parts.next(), parts.next(), parts.next());
        let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
        self.refuse(Login {
            mechanism: "PLAIN",
            username: text(user),
            password: text(pass),
        })
    }

    fn refuse(&mut self, login: Login) -> Step {
        let mut s = self.reply("535 5.7.8 Error: authentication failed: (reason unavailable)");
        s.login = Some(login);
        s
    }
}

/// The bytes of `text` whose chars are all at most U+00FF (replies, and client text
/// read one char per byte); anything above (never produced) becomes `?`.
pub(crate) fn latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(c).unwrap_or(b'?'))
        .collect()
}

/// Client text read one char per byte, as UTF-8 for the events.
pub(crate) fn readable(text: &str) -> String {
    String::from_utf8_lossy(&latin1(text)).into_owned()
}

/// `arg` after a case-insensitive `keyword` (`FROM:`, `TO:`).
fn strip_keyword<'a>(arg: &'a str, keyword: &str) -> Option<&'a str> {
    let head = arg.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword)
        .then(|| &arg[keyword.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn machine() -> Machine {
        Machine::new(
            Arc::new(Config {
                host: "mx.example.org".into(),
                max_message: 10_240_000,
                max_recipients: 2,
                max_commands: 50,
                inode: AtomicU64::new(0x98c2a8),
            }),
            "192.0.2.7".parse().unwrap(),
            false,
        )
    }

    fn say(m: &mut Machine, line: &str) -> String {
        m.line(line.as_bytes()).reply
    }

    #[test]
    fn relay_is_denied_and_local_mail_accepted() {
        let mut m = machine();
        assert!(say(&mut m, "EHLO x").ends_with("250 CHUNKING\r\n"));
        assert_eq!(say(&mut m, "MAIL FROM:<a@b.c>"), "250 2.1.0 Ok\r\n");
        assert_eq!(
            say(&mut m, "RCPT TO:<v@gmail.com>"),
            "454 4.7.1 <v@gmail.com>: Relay access denied\r\n"
        );
        assert_eq!(
            say(&mut m, "RCPT TO:<root@[192.0.2.7]>"),
            "250 2.1.5 Ok\r\n"
        );
        assert_eq!(
            say(&mut m, "RCPT TO:<nobody2@mx.example.org>"),
            "550 5.1.1 <nobody2@mx.example.org>: Recipient address rejected: User unknown in local recipient table\r\n"
        );
        assert_eq!(say(&mut m, "RCPT TO:postmaster"), "250 2.1.5 Ok\r\n");
        assert_eq!(
            say(&mut m, "RCPT TO:<root@localhost>"),
            "452 4.5.3 Error: too many recipients\r\n"
        );
        let s = m.line(b"DATA");
        assert_eq!(s.next, Next::Data);
        let (s, id) = m.data_done(10);
        assert!(
            s.reply.starts_with("250 2.0.0 Ok: queued as "),
            "{}",
            s.reply
        );
        assert!(id.unwrap().ends_with("98C2A8"));
    }

    #[test]
    fn auth_is_captured_and_refused() {
        let mut m = machine();
        let s = m.line(b"AUTH PLAIN AGZvbwBiYXI=");
        assert_eq!(
            s.reply,
            "535 5.7.8 Error: authentication failed: (reason unavailable)\r\n"
        );
        let l = s.login.unwrap();
        assert_eq!((l.username.as_str(), l.password.as_str()), ("foo", "bar"));
        assert_eq!(say(&mut m, "AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
        assert!(m.in_auth());
        assert_eq!(say(&mut m, "Zm9v"), "334 UGFzc3dvcmQ6\r\n");
        let s = m.line(b"YmF6");
        assert_eq!(s.login.unwrap().password, "baz");
        assert_eq!(say(&mut m, "AUTH PLAIN"), "334 \r\n");
        assert_eq!(say(&mut m, "*"), "501 5.7.0 Authentication aborted\r\n");
        assert_eq!(
            say(&mut m, "AUTH CRAM-MD5"),
            "535 5.7.8 Error: authentication failed: Invalid authentication mechanism\r\n"
        );
    }

    #[test]
    fn errors_pile_up_and_bogus_commands_close() {
        let mut m = machine();
        for i in 0..20 {
            let s = m.line(b"XYZZY");
            assert_eq!(s.slow, i >= 10);
        }
        let s = m.line(b"NOOP");
        assert_eq!(s.next, Next::Close);
        assert_eq!(
            s.reply,
            "421 4.7.0 mx.example.org Error: too many errors\r\n"
        );
        let mut m = machine();
        let s = m.line(b"GET / HTTP/1.1");
        assert_eq!(s.next, Next::Close);
        assert!(m.line(b"").reply.starts_with("500 5.5.2 Error: bad syntax"));
    }

    proptest::proptest! {
        /// A hostile client's lines (commands, near-commands, binary) never panic the
        /// machine, and every reply is whole CRLF-terminated lines.
        #[test]
        fn arbitrary_lines_never_panic(
            lines in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
                    proptest::sample::select(vec![
                        b"EHLO x".to_vec(), b"MAIL FROM:<a@b> SIZE=99".to_vec(),
                        b"RCPT TO:<root@localhost>".to_vec(), b"RCPT TO:<x@y>".to_vec(),
                        b"DATA".to_vec(), b"BDAT 3".to_vec(), b"BDAT 2 LAST".to_vec(),
                        b"AUTH LOGIN".to_vec(), b"AUTH PLAIN".to_vec(), b"*".to_vec(),
                        b"Zm9v".to_vec(), b"RSET".to_vec(), b"STARTTLS".to_vec(),
                        b"VRFY <@a:>".to_vec(), b"MAIL FROM:<@>".to_vec(),
                    ]),
                ],
                0..60,
            ),
        ) {
            let mut m = machine();
            for l in &lines {
                let s = m.line(l);
                proptest::prop_assert!(s.reply.is_empty() || s.reply.ends_with("\r\n"));
                let s = match s.next {
                    Next::Data => m.data_done(l.len() as u64).0,
                    Next::Bdat { size } => m.bdat_done(size, l.len() % 2 == 0).0,
                    Next::Close => break,
                    _ => s,
                };
                proptest::prop_assert!(s.reply.is_empty() || s.reply.ends_with("\r\n"));
            }
        }
    }

    #[test]
    fn an_oversized_last_chunk_leaves_smtpd_counting() {
        let mut m = machine();
        say(&mut m, "MAIL FROM:<a@b>");
        say(&mut m, "RCPT TO:<root@localhost>");
        let s = m.line(b"BDAT 20000000 LAST");
        assert_eq!(s.next, Next::Bdat { size: 20_000_000 });
        let (s, _) = m.bdat_done(20_000_000, true);
        assert_eq!(s.reply, "552 5.3.4 Chunk exceeds message size limit\r\n");
        assert_eq!(
            say(&mut m, "RCPT TO:<root@localhost>"),
            "503 5.5.1 Error: need MAIL command\r\n"
        );
        // DATA now: smtpd dies, the client sees the connection close.
        let s = m.line(b"DATA");
        assert_eq!((s.reply.as_str(), s.next), ("", Next::Close));
    }

    #[test]
    fn size_is_sticky_as_in_smtpd() {
        let mut m = machine();
        assert!(say(&mut m, "MAIL FROM:<a@b> SIZE=20000000").starts_with("552 5.3.4"));
        assert!(say(&mut m, "MAIL FROM:<a@b> FOO=1").starts_with("555 5.5.4"));
        assert!(say(&mut m, "MAIL FROM:<a@b>").starts_with("552 5.3.4"));
        assert_eq!(say(&mut m, "RSET"), "250 2.0.0 Ok\r\n");
        assert_eq!(say(&mut m, "MAIL FROM:<a@b>"), "250 2.1.0 Ok\r\n");
    }
}
