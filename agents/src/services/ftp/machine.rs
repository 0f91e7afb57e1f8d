//! Sans-IO vsFTPd 3.0.3 session: one command in, one [`Step`] out. The driver in
//! `mod.rs` does the I/O a step asks for (replies, the failed-login delay, the passive
//! data listener, transfers) and reports back what happened.

use super::fs::{FakeFs, Kind, dot_lines, list_line, name, resolve};
use super::parse::Command;
use super::uploads::Stored;
use std::borrow::Cow;

/// What the driver does next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send these reply lines (each ends with CRLF).
    Reply(String),
    /// A password was given: decide it (the node's login memory and policy) and tell
    /// the machine with [`Machine::login`].
    Check { username: String, password: String },
    /// A password was given: record the attempt; on failure wait the delay first; send
    /// `reply`; close afterwards if `close`.
    Login {
        username: String,
        password: String,
        success: bool,
        reply: String,
        close: bool,
    },
    /// Open a passive data listener and announce it (`227` or `229`).
    Passive { extended: bool },
    /// Send `data` on the data connection: `opening` first, `done` after.
    Send {
        data: Vec<u8>,
        opening: String,
        done: &'static str,
    },
    /// Receive an upload for `path` on the data connection, then call
    /// [`Machine::stored`].
    Receive { path: String, opening: String },
    /// Send this reply, then close.
    Close(String),
}

fn reply(s: &str) -> Step {
    Step::Reply(format!("{s}\r\n"))
}

const FEAT: &str = "211-Features:\r\n EPRT\r\n EPSV\r\n MDTM\r\n PASV\r\n REST STREAM\r\n SIZE\r\n TVFS\r\n211 End\r\n";
const HELP: &str = "214-The following commands are recognized.\r\n ABOR ACCT ALLO APPE CDUP CWD  DELE EPRT EPSV FEAT HELP LIST MDTM MKD\r\n MODE NLST NOOP OPTS PASS PASV PORT PWD  QUIT REIN REST RETR RMD  RNFR\r\n RNTO SITE SIZE SMNT STAT STOR STOU STRU SYST TYPE USER XCUP XCWD XMKD\r\n XPWD XRMD\r\n214 Help OK.\r\n";

/// Users vsftpd treats as anonymous. Debian's `/etc/vsftpd.conf` has
/// `anonymous_enable=NO`, so they never get in, whatever the login policy says.
pub(crate) fn is_anonymous(user: &str) -> bool {
    user.eq_ignore_ascii_case("anonymous") || user.eq_ignore_ascii_case("ftp")
}

/// One control connection's state.
#[derive(Debug)]
pub(crate) struct Machine {
    max_failures: u32,
    client_ip: String,
    user: Option<String>,
    logged_in: Option<String>,
    failures: u32,
    cwd: String,
    binary: bool,
    /// A passive listener is open and not yet used by a transfer.
    passive: bool,
    /// PORT/EPRT named the client's own address: the next transfer "fails to connect"
    /// (the honeypot never connects out).
    active: bool,
    rename_from: Option<String>,
    fs: FakeFs,
    /// Uploads of this source deleted or renamed: to be forgotten across connections.
    forgotten: Vec<String>,
    /// `SITE UMASK` (vsftpd's default `local_umask` is 077).
    umask: u32,
}

impl Machine {
    /// A session on the reference machine's account (the unit tests' and the fuzz
    /// harness's).
    pub(crate) fn new(max_failures: u32, client_ip: String, uploads: Vec<Stored>) -> Self {
        Machine::on(FakeFs::default(), max_failures, client_ip, uploads)
    }

    /// A session in `fs` (the node's account) for `client_ip`, whose earlier uploads
    /// (still remembered) are listed.
    pub(crate) fn on(
        mut fs: FakeFs,
        max_failures: u32,
        client_ip: String,
        uploads: Vec<Stored>,
    ) -> Self {
        for u in uploads {
            fs.add(
                &u.path,
                Kind::File {
                    size: u.size,
                    content: u.content.map(Cow::Owned),
                    upload: true,
                },
                ls_date(u.at, u.at),
            );
        }
        Machine {
            max_failures,
            client_ip,
            user: None,
            logged_in: None,
            failures: 0,
            cwd: "/".into(),
            binary: false,
            passive: false,
            active: false,
            rename_from: None,
            fs,
            forgotten: Vec::new(),
            umask: 0o077,
        }
    }

    /// Paths of this source's uploads deleted or renamed since the last call.
    pub(crate) fn take_forgotten(&mut self) -> Vec<String> {
        std::mem::take(&mut self.forgotten)
    }

    fn forget_if_upload(&mut self, path: &str) {
        if matches!(
            self.fs.get(path).map(|e| &e.kind),
            Some(Kind::File { upload: true, .. })
        ) {
            self.forgotten.push(path.to_owned());
        }
    }

    /// The driver could not open the passive listener.
    pub(crate) fn passive_failed(&mut self) {
        self.passive = false;
    }

    /// An upload to `path` of `size` bytes finished (`date` as `ls -l` shows it);
    /// `content` if it is small enough to be downloaded again.
    pub(crate) fn stored(&mut self, path: &str, size: u64, date: String, content: Option<Vec<u8>>) {
        self.fs.add(
            path,
            Kind::File {
                size,
                content: content.map(Cow::Owned),
                upload: true,
            },
            date,
        );
    }

    /// The answer to one command.
    pub(crate) fn command(&mut self, cmd: &Command) -> Step {
        let arg = cmd.arg.as_str();
        match cmd.verb.as_str() {
            "USER" => return self.user(arg),
            "PASS" => return self.pass(arg),
            "QUIT" => return Step::Close("221 Goodbye.\r\n".into()),
            "FEAT" => return Step::Reply(FEAT.into()),
            "OPTS" => {
                return if arg.eq_ignore_ascii_case("UTF8 ON") {
                    reply("200 Always in UTF8 mode.")
                } else {
                    reply("501 Option not understood.")
                };
            }
            _ => {}
        }
        if self.logged_in.is_none() {
            return reply("530 Please login with USER and PASS.");
        }
        match cmd.verb.as_str() {
            "SYST" => reply("215 UNIX Type: L8"),
            "PWD" | "XPWD" => reply(&format!("257 \"{}\" is the current directory", self.cwd)),
            "CWD" | "XCWD" => self.cwd(arg),
            "CDUP" | "XCUP" => self.cwd(".."),
            "TYPE" => match arg.to_ascii_uppercase().as_str() {
                "I" | "L 8" => {
                    self.binary = true;
                    reply("200 Switching to Binary mode.")
                }
                "A" | "A N" => {
                    self.binary = false;
                    reply("200 Switching to ASCII mode.")
                }
                _ => reply("500 Unrecognised TYPE command."),
            },
            "MODE" if arg.eq_ignore_ascii_case("S") => reply("200 Mode set to S."),
            "MODE" => reply("504 Bad MODE command."),
            "STRU" if arg.eq_ignore_ascii_case("F") => reply("200 Structure set to F."),
            "STRU" => reply("504 Bad STRU command."),
            "PASV" => {
                self.passive = true;
                self.active = false;
                Step::Passive { extended: false }
            }
            "EPSV" if arg.eq_ignore_ascii_case("ALL") => reply("200 EPSV ALL ok."),
            "EPSV" => {
                self.passive = true;
                self.active = false;
                Step::Passive { extended: true }
            }
            // vsftpd accepts an active address that is the client's own (and refuses any
            // other). The honeypot never connects out: the transfer that follows fails
            // as vsftpd's does when the client is not listening.
            "PORT" => match port_ip(arg) {
                Some(ip) if ip == self.client_ip => {
                    self.set_active();
                    reply("200 PORT command successful. Consider using PASV.")
                }
                _ => reply("500 Illegal PORT command."),
            },
            "EPRT" => match eprt_ip(arg) {
                Some(ip) if ip == self.client_ip => {
                    self.set_active();
                    reply("200 EPRT command successful. Consider using EPSV.")
                }
                Some(_) => reply("500 Illegal EPRT command."),
                None => reply("500 Bad EPRT command."),
            },
            "LIST" | "NLST" => self.list(cmd.verb == "NLST", arg),
            "RETR" => self.retr(arg),
            "STOR" | "APPE" | "STOU" => self.stor(arg),
            "SIZE" => match self.fs.file(&self.path(arg)) {
                Some((size, _, _)) => reply(&format!("213 {size}")),
                None => reply("550 Could not get file size."),
            },
            // The same day as the listing shows (at noon, or at the listed time).
            "MDTM" => match self.fs.file(&self.path(arg)) {
                Some((_, _, date)) => reply(&format!("213 {}", mdtm(date))),
                None => reply("550 Could not get file modification time."),
            },
            "REIN" | "SMNT" | "ACCT" => reply(&format!("502 {} not implemented.", cmd.verb)),
            "DELE" => {
                let p = self.path(arg);
                self.forget_if_upload(&p);
                if self.fs.file(&p).is_some() && self.fs.remove(&p) {
                    reply("250 Delete operation successful.")
                } else {
                    reply("550 Delete operation failed.")
                }
            }
            "MKD" | "XMKD" => {
                let p = self.path(arg);
                if arg.is_empty() || self.fs.get(&p).is_some() || p == "/" {
                    reply("550 Create directory operation failed.")
                } else if self.fs.add(&p, Kind::Dir, "Mar 14  2023".into()) {
                    reply(&format!("257 \"{p}\" created"))
                } else {
                    reply("550 Create directory operation failed.")
                }
            }
            "RMD" | "XRMD" => {
                let p = self.path(arg);
                if p != "/" && self.fs.is_dir(&p) && self.fs.remove(&p) {
                    reply("250 Remove directory operation successful.")
                } else {
                    reply("550 Remove directory operation failed.")
                }
            }
            "RNFR" => {
                let p = self.path(arg);
                if self.fs.get(&p).is_some() {
                    self.rename_from = Some(p);
                    reply("350 Ready for RNTO.")
                } else {
                    reply("550 RNFR command failed.")
                }
            }
            "RNTO" => match self.rename_from.take() {
                Some(from) => {
                    self.forget_if_upload(&from);
                    let to = self.path(arg);
                    let kind = self.fs.get(&from).map(|e| e.kind.clone());
                    let renamed = kind.is_some_and(|k| self.fs.add(&to, k, "Mar 14  2023".into()));
                    if renamed {
                        self.fs.remove(&from);
                        reply("250 Rename successful.")
                    } else {
                        reply("550 Rename failed.")
                    }
                }
                None => reply("503 RNFR required first."),
            },
            "REST" => {
                let n: u64 = arg.trim().parse().unwrap_or(0);
                reply(&format!("350 Restart position accepted ({n})."))
            }
            "ABOR" => reply("225 No transfer to ABOR."),
            "NOOP" => reply("200 NOOP ok."),
            "ALLO" => reply("202 ALLO command ignored."),
            "HELP" => Step::Reply(HELP.into()),
            "STAT" if arg.trim().is_empty() => Step::Reply(self.stat()),
            // STAT with a path: its listing on the control connection.
            "STAT" => {
                let lines = self.listing(false, true, arg);
                Step::Reply(format!(
                    "213-Status follows:\r\n{lines}213 End of status\r\n"
                ))
            }
            "SITE" => {
                // vsftpd's texts (postlogin.c); a local user's, which the oracle's
                // anonymous session cannot show.
                let mut words = arg.split(' ').filter(|w| !w.is_empty());
                let sub = words.next().unwrap_or("").to_ascii_uppercase();
                match sub.as_str() {
                    "CHMOD" => match (words.next(), words.next()) {
                        (Some(_), Some(path)) if self.fs.get(&self.path(path)).is_some() => {
                            reply("200 SITE CHMOD command ok.")
                        }
                        (Some(_), Some(_)) => reply("550 SITE CHMOD command failed."),
                        _ => reply("501 SITE CHMOD needs 2 arguments."),
                    },
                    "UMASK" => match words.next().and_then(|m| u32::from_str_radix(m, 8).ok()) {
                        Some(m) => {
                            self.umask = m & 0o777;
                            reply(&format!("200 UMASK set to {:04o}", self.umask))
                        }
                        None => reply(&format!("200 Your current UMASK is {:04o}", self.umask)),
                    },
                    "HELP" => reply("214 CHMOD UMASK HELP"),
                    _ => reply("500 Unknown SITE command."),
                }
            }
            _ => reply("500 Unknown command."),
        }
    }

    fn user(&mut self, arg: &str) -> Step {
        if self.logged_in.is_some() {
            return reply("530 Can't change to another user.");
        }
        self.user = Some(arg.to_owned());
        reply("331 Please specify the password.")
    }

    fn pass(&mut self, arg: &str) -> Step {
        if self.logged_in.is_some() {
            return reply("230 Already logged in.");
        }
        let Some(username) = self.user.clone() else {
            return reply("503 Login with USER first.");
        };
        Step::Check {
            username,
            password: arg.to_owned(),
        }
    }

    /// The decision on the password a [`Step::Check`] asked about.
    pub(crate) fn login(&mut self, success: bool, password: String) -> Step {
        let username = self.user.take().unwrap_or_default();
        if success {
            self.logged_in = Some(username.clone());
            Step::Login {
                username,
                password,
                success: true,
                reply: "230 Login successful.\r\n".into(),
                close: false,
            }
        } else {
            self.failures += 1;
            Step::Login {
                username,
                password,
                success: false,
                reply: "530 Login incorrect.\r\n".into(),
                close: self.failures >= self.max_failures,
            }
        }
    }

    fn set_active(&mut self) {
        self.active = true;
        self.passive = false;
    }

    /// Whether a transfer may start: `Err` with the reply when it may not. A transfer
    /// after PORT/EPRT "fails to connect".
    fn data_channel(&mut self) -> Result<(), Step> {
        if std::mem::take(&mut self.active) {
            return Err(reply("425 Failed to establish connection."));
        }
        if !self.passive {
            return Err(reply("425 Use PORT or PASV first."));
        }
        Ok(())
    }

    fn path(&self, arg: &str) -> String {
        resolve(&self.cwd, arg.trim_end_matches(['\r', '\n']))
    }

    fn cwd(&mut self, arg: &str) -> Step {
        if arg.trim().is_empty() {
            return reply("550 Failed to change directory.");
        }
        let p = self.path(arg);
        if self.fs.is_dir(&p) {
            self.cwd = p;
            reply("250 Directory successfully changed.")
        } else {
            reply("550 Failed to change directory.")
        }
    }

    fn list(&mut self, names_only: bool, arg: &str) -> Step {
        if let Err(step) = self.data_channel() {
            return step;
        }
        self.passive = false;
        let all = arg
            .split(' ')
            .any(|w| w.starts_with('-') && w.contains('a'));
        let data = self.listing(names_only, all, arg);
        Step::Send {
            data: data.into_bytes(),
            opening: "150 Here comes the directory listing.\r\n".into(),
            done: "226 Directory send OK.\r\n",
        }
    }

    /// What `LIST`/`NLST` (or `STAT path`) show for `arg`: options are ignored but `-a`,
    /// the first other word is the path.
    fn listing(&self, names_only: bool, all: bool, arg: &str) -> String {
        let given = arg
            .split(' ')
            .find(|w| !w.is_empty() && !w.starts_with('-'));
        let target = given.map_or_else(|| self.cwd.clone(), |w| self.path(w));
        // NLST of a named directory prefixes each name with it, as vsftpd does.
        let prefix = given.map_or(String::new(), |g| format!("{}/", g.trim_end_matches('/')));
        let mut data = String::new();
        if self.fs.is_dir(&target) {
            let children = self.fs.children(&target);
            if all && !names_only {
                // A directory links to itself, its parent and each subdirectory.
                let links = |dir: &str| {
                    2 + self
                        .fs
                        .children(dir)
                        .iter()
                        .filter(|e| e.kind == Kind::Dir)
                        .count()
                };
                let parent = super::fs::parent(&target);
                data.push_str(&dot_lines(
                    (&self.fs.date_of(&target), links(&target)),
                    (&self.fs.date_of(parent), links(parent)),
                ));
            }
            for e in children {
                if names_only {
                    data.push_str(&prefix);
                    data.push_str(name(&e.path));
                    data.push_str("\r\n");
                } else {
                    data.push_str(&list_line(e));
                }
            }
        } else if let Some(e) = self.fs.get(&target) {
            data = if names_only {
                format!("{}\r\n", name(&e.path))
            } else {
                list_line(e)
            };
        }
        data
    }

    fn retr(&mut self, arg: &str) -> Step {
        if let Err(step) = self.data_channel() {
            return step;
        }
        let p = self.path(arg);
        match self.fs.file(&p) {
            Some((size, Some(content), _)) => {
                self.passive = false;
                // vsftpd sends BINARY whatever TYPE says (`ascii_download_enable=NO`).
                Step::Send {
                    data: content.to_vec(),
                    opening: format!(
                        "150 Opening BINARY mode data connection for {} ({size} bytes).\r\n",
                        arg.trim_end_matches(['\r', '\n'])
                    ),
                    done: "226 Transfer complete.\r\n",
                }
            }
            _ => reply("550 Failed to open file."),
        }
    }

    fn stor(&mut self, arg: &str) -> Step {
        if let Err(step) = self.data_channel() {
            return step;
        }
        let p = self.path(arg);
        if arg.is_empty()
            || p == "/"
            || self.fs.is_dir(&p)
            || !self.fs.is_dir(super::fs::parent(&p))
        {
            return reply("553 Could not create file.");
        }
        self.passive = false;
        Step::Receive {
            path: p,
            opening: "150 Ok to send data.\r\n".into(),
        }
    }

    fn stat(&self) -> String {
        let user = self.logged_in.as_deref().unwrap_or("");
        let mode = if self.binary { "BINARY" } else { "ASCII" };
        format!(
            "211-FTP server status:\r\n     Connected to {}\r\n     Logged in as {user}\r\n     TYPE: {mode}\r\n     No session bandwidth limit\r\n     Session timeout in seconds is 300\r\n     Control connection is plain text\r\n     Data connections will be plain text\r\n     At session startup, client count was 1\r\n     vsFTPd 3.0.3 - secure, fast, stable\r\n211 End of status\r\n",
            self.client_ip
        )
    }
}

/// The address of a `PORT h1,h2,h3,h4,p1,p2` argument, as text.
fn port_ip(arg: &str) -> Option<String> {
    let n: Vec<u8> = arg
        .trim()
        .split(',')
        .map(|p| p.trim().parse::<u8>().ok())
        .collect::<Option<_>>()?;
    match n.as_slice() {
        [a, b, c, d, _, _] => Some(std::net::Ipv4Addr::new(*a, *b, *c, *d).to_string()),
        _ => None,
    }
}

/// The address of an `EPRT |1|ip|port|` argument, as canonical text.
fn eprt_ip(arg: &str) -> Option<String> {
    let arg = arg.trim();
    let delim = arg.chars().next()?;
    let parts: Vec<&str> = arg.split(delim).collect();
    match parts.as_slice() {
        ["", proto, ip, port, ""] if matches!(*proto, "1" | "2") => {
            port.parse::<u16>().ok()?;
            let ip: std::net::IpAddr = ip.parse().ok()?;
            Some(ip.to_canonical().to_string())
        }
        _ => None,
    }
}

/// An `ls` date (`Mar 14  2023` or `Dec 06 23:09`) as MDTM's `YYYYMMDDhhmmss`: a date
/// with a year at noon; one with a time in the current year.
fn mdtm(date: &str) -> String {
    let f: Vec<&str> = date.split_whitespace().collect();
    let month = f
        .first()
        .and_then(|m| MONTHS.iter().position(|x| x == m))
        .map_or(1, |i| i + 1);
    let day: u32 = f.get(1).and_then(|d| d.parse().ok()).unwrap_or(1);
    match f.get(2) {
        Some(t) if t.contains(':') => {
            let now = u64::try_from(crate::sink::now_ms() / 1000).unwrap_or(0);
            let (y, _, _) = crate::services::http::civil_from_days((now / 86_400) as i64);
            let hm = t.replace(':', "");
            format!("{y:04}{month:02}{day:02}{hm:0>4}00")
        }
        Some(y) => format!("{y:0>4}{month:02}{day:02}120000"),
        None => "19700101000000".into(),
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `secs` as vsftpd's `ls -l` shows it at `now`: `Dec 06 23:09` within six months,
/// else `Dec 06  2025` (the day always two digits).
pub(crate) fn ls_date(secs: u64, now: u64) -> String {
    let (y, m, d) = crate::services::http::civil_from_days((secs / 86_400) as i64);
    let month = MONTHS[usize::from(m.clamp(1, 12)) - 1];
    if now.abs_diff(secs) < 182 * 86_400 {
        format!(
            "{month} {d:02} {:02}:{:02}",
            secs / 3600 % 24,
            secs / 60 % 60
        )
    } else {
        format!("{month} {d:02}  {y}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(m: &mut Machine, line: &str) -> Step {
        m.command(&Command::parse(line.as_bytes()))
    }

    fn text(s: Step) -> String {
        match s {
            Step::Reply(t) | Step::Close(t) => t,
            other => panic!("{other:?}"),
        }
    }

    /// PASS with the driver's decision.
    fn pass(m: &mut Machine, line: &str, success: bool) -> Step {
        match run(m, line) {
            Step::Check { password, .. } => m.login(success, password),
            other => other,
        }
    }

    fn logged_in() -> Machine {
        let mut m = Machine::new(3, "10.0.0.9".into(), Vec::new());
        assert_eq!(
            text(run(&mut m, "USER www")),
            "331 Please specify the password.\r\n"
        );
        assert!(matches!(
            pass(&mut m, "PASS x", true),
            Step::Login { success: true, .. }
        ));
        m
    }

    #[test]
    fn login_follows_the_policy() {
        let mut m = Machine::new(3, "10.0.0.9".into(), Vec::new());
        assert_eq!(
            text(run(&mut m, "SYST")),
            "530 Please login with USER and PASS.\r\n"
        );
        assert_eq!(
            text(run(&mut m, "PASS x")),
            "503 Login with USER first.\r\n"
        );
        run(&mut m, "USER root");
        assert_eq!(
            run(&mut m, "PASS toor"),
            Step::Check {
                username: "root".into(),
                password: "toor".into()
            }
        );
        assert_eq!(
            m.login(false, "toor".into()),
            Step::Login {
                username: "root".into(),
                password: "toor".into(),
                success: false,
                reply: "530 Login incorrect.\r\n".into(),
                close: false
            }
        );
        // PASS again without USER: the user is forgotten after a failure.
        assert_eq!(
            text(run(&mut m, "PASS y")),
            "503 Login with USER first.\r\n"
        );
        run(&mut m, "USER root");
        assert!(matches!(
            pass(&mut m, "PASS 123", true),
            Step::Login { success: true, .. }
        ));
        assert_eq!(text(run(&mut m, "SYST")), "215 UNIX Type: L8\r\n");
        assert_eq!(
            text(run(&mut m, "USER other")),
            "530 Can't change to another user.\r\n"
        );
    }

    #[test]
    fn earlier_uploads_are_listed_with_vsftpd_dates() {
        let at = 1_765_015_740; // 2025-12-06 10:09 UTC
        let mut m = Machine::new(
            3,
            "10.0.0.9".into(),
            vec![Stored {
                path: "/upload/a.sh".into(),
                size: 4,
                at,
                content: Some(b"id\n\n".to_vec()),
            }],
        );
        run(&mut m, "USER www");
        pass(&mut m, "PASS x", true);
        run(&mut m, "PASV");
        match run(&mut m, "LIST -la upload") {
            Step::Send { data, .. } => {
                let s = String::from_utf8(data).unwrap();
                assert!(
                    s.starts_with("drwxr-xr-x    2 1000     1000         4096 "),
                    "{s}"
                );
                assert!(
                    s.ends_with("-rw-------    1 1000     1000            4 Dec 06 10:09 a.sh\r\n"),
                    "{s}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(ls_date(at, at + 86_400), "Dec 06 10:09");
        assert_eq!(mdtm("Feb 26  2024"), "20240226120000");
        assert!(mdtm("Dec 06 10:09").ends_with("1206100900"));
        assert_eq!(ls_date(at, at + 365 * 86_400), "Dec 06  2025");
    }

    #[test]
    fn anonymous_is_refused_as_debian_configures_vsftpd() {
        assert!(is_anonymous("anonymous") && is_anonymous("FTP"));
        assert!(!is_anonymous("admin"));
    }

    #[test]
    fn closes_after_max_failures() {
        let mut m = Machine::new(2, "10.0.0.9".into(), Vec::new());
        run(&mut m, "USER a");
        assert!(matches!(
            pass(&mut m, "PASS 1", false),
            Step::Login { close: false, .. }
        ));
        run(&mut m, "USER a");
        assert!(matches!(
            pass(&mut m, "PASS 2", false),
            Step::Login {
                close: true,
                success: false,
                ..
            }
        ));
    }

    #[test]
    fn navigation_and_modes() {
        let mut m = logged_in();
        assert_eq!(
            text(run(&mut m, "PWD")),
            "257 \"/\" is the current directory\r\n"
        );
        assert_eq!(
            text(run(&mut m, "CWD www")),
            "250 Directory successfully changed.\r\n"
        );
        assert_eq!(
            text(run(&mut m, "PWD")),
            "257 \"/www\" is the current directory\r\n"
        );
        assert_eq!(
            text(run(&mut m, "CWD /nope")),
            "550 Failed to change directory.\r\n"
        );
        assert_eq!(
            text(run(&mut m, "CDUP")),
            "250 Directory successfully changed.\r\n"
        );
        assert_eq!(
            text(run(&mut m, "TYPE I")),
            "200 Switching to Binary mode.\r\n"
        );
        assert_eq!(
            text(run(&mut m, "TYPE X")),
            "500 Unrecognised TYPE command.\r\n"
        );
        assert_eq!(text(run(&mut m, "MODE S")), "200 Mode set to S.\r\n");
        assert_eq!(text(run(&mut m, "STRU R")), "504 Bad STRU command.\r\n");
        // Active mode: the client's own address is accepted, as vsftpd does, and the
        // transfer then fails to connect; any other address is refused.
        assert_eq!(
            text(run(&mut m, "PORT 127,0,0,1,4,1")),
            "500 Illegal PORT command.\r\n"
        );
        assert_eq!(
            text(run(&mut m, "PORT 10,0,0,9,4,1")),
            "200 PORT command successful. Consider using PASV.\r\n"
        );
        assert_eq!(
            text(run(&mut m, "LIST")),
            "425 Failed to establish connection.\r\n"
        );
        assert_eq!(text(run(&mut m, "LIST")), "425 Use PORT or PASV first.\r\n");
        assert_eq!(
            text(run(&mut m, "EPRT |1|10.0.0.9|1025|")),
            "200 EPRT command successful. Consider using EPSV.\r\n"
        );
        assert_eq!(
            text(run(&mut m, "EPRT |1|127.0.0.1|1025|")),
            "500 Illegal EPRT command.\r\n"
        );
        assert_eq!(text(run(&mut m, "EPRT junk")), "500 Bad EPRT command.\r\n");
        assert!(text(run(&mut m, "STAT")).contains("Logged in as www\r\n"));
        assert_eq!(
            text(run(&mut m, "SITE EXEC /bin/sh")),
            "500 Unknown SITE command.\r\n"
        );
        assert_eq!(
            text(run(&mut m, "SITE CHMOD 777 notes.txt")),
            "200 SITE CHMOD command ok.\r\n"
        );
        assert_eq!(
            text(run(&mut m, "SITE CHMOD 777 nope")),
            "550 SITE CHMOD command failed.\r\n"
        );
        assert_eq!(
            text(run(&mut m, "SITE UMASK")),
            "200 Your current UMASK is 0077\r\n"
        );
        assert_eq!(
            text(run(&mut m, "SITE UMASK 022")),
            "200 UMASK set to 0022\r\n"
        );
        assert_eq!(text(run(&mut m, "FROB")), "500 Unknown command.\r\n");
        assert!(text(run(&mut m, "SIZE notes.txt")).starts_with("213 "));
        assert!(text(run(&mut m, "STAT")).contains("Connected to 10.0.0.9"));
        assert_eq!(text(run(&mut m, "QUIT")), "221 Goodbye.\r\n");
    }

    #[test]
    fn transfers_need_passive_and_consume_it() {
        let mut m = logged_in();
        assert_eq!(text(run(&mut m, "LIST")), "425 Use PORT or PASV first.\r\n");
        assert_eq!(run(&mut m, "PASV"), Step::Passive { extended: false });
        match run(&mut m, "LIST -la") {
            Step::Send { data, .. } => {
                let s = String::from_utf8(data).unwrap();
                assert!(
                    s.contains(" backup\r\n") && s.contains(" notes.txt\r\n"),
                    "{s}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(text(run(&mut m, "NLST")), "425 Use PORT or PASV first.\r\n");
        assert_eq!(run(&mut m, "EPSV"), Step::Passive { extended: true });
        // The backups are listed with their sizes but cannot be fetched.
        let db = m.fs.children("/backup")[0].path.clone();
        assert!(
            db.starts_with("/backup/db_") && db.ends_with(".sql.gz"),
            "{db}"
        );
        assert_eq!(
            text(run(&mut m, &format!("RETR {db}"))),
            "550 Failed to open file.\r\n"
        );
        match run(&mut m, "RETR notes.txt") {
            Step::Send { data, opening, .. } => {
                assert!(
                    opening.starts_with("150 Opening BINARY mode data connection for notes.txt (")
                );
                assert!(!data.is_empty());
            }
            other => panic!("{other:?}"),
        }
        run(&mut m, "PASV");
        assert_eq!(
            run(&mut m, "STOR upload/x.sh"),
            Step::Receive {
                path: "/upload/x.sh".into(),
                opening: "150 Ok to send data.\r\n".into()
            }
        );
        m.stored(
            "/upload/x.sh",
            42,
            "Jan 01 00:00".into(),
            Some(b"echo".to_vec()),
        );
        run(&mut m, "PASV");
        match run(&mut m, "RETR /upload/x.sh") {
            Step::Send { data, .. } => assert_eq!(data, b"echo"),
            other => panic!("{other:?}"),
        }
        assert_eq!(text(run(&mut m, "SIZE /upload/x.sh")), "213 42\r\n");
        run(&mut m, "PASV");
        match run(&mut m, "NLST upload") {
            // A named directory prefixes the names, as vsftpd's NLST does.
            Step::Send { data, .. } => assert_eq!(data, b"upload/x.sh\r\n"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            text(run(&mut m, "DELE upload/x.sh")),
            "250 Delete operation successful.\r\n"
        );
        assert_eq!(m.take_forgotten(), ["/upload/x.sh"]);
        assert_eq!(
            text(run(&mut m, "DELE upload/x.sh")),
            "550 Delete operation failed.\r\n"
        );
        assert_eq!(text(run(&mut m, "MKD tools")), "257 \"/tools\" created\r\n");
        assert_eq!(
            text(run(&mut m, "RMD tools")),
            "250 Remove directory operation successful.\r\n"
        );
        run(&mut m, "PASV");
        assert_eq!(
            text(run(&mut m, "STOR nodir/x")),
            "553 Could not create file.\r\n"
        );
    }
}
