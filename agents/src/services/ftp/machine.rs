//! Sans-IO vsFTPd 3.0.3 session: one command in, one [`Step`] out. The driver in
//! `mod.rs` does the I/O a step asks for (replies, the failed-login delay, the passive
//! data listener, transfers) and reports back what happened.

use super::fs::{FakeFs, Kind, list_line, name, resolve};
use super::parse::Command;
use honeybee_proto::config::LoginPolicy;

/// What the driver does next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send these reply lines (each ends with CRLF).
    Reply(String),
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

const FEAT: &str = "211-Features:\r\n EPRT\r\n EPSV\r\n MDTM\r\n PASV\r\n REST STREAM\r\n SIZE\r\n TVFS\r\n UTF8\r\n211 End\r\n";
const HELP: &str = "214-The following commands are recognized.\r\n ABOR ACCT ALLO APPE CDUP CWD  DELE EPRT EPSV FEAT HELP LIST MDTM MKD\r\n MODE NLST NOOP OPTS PASS PASV PORT PWD  QUIT REIN REST RETR RMD  RNFR\r\n RNTO SITE SIZE SMNT STAT STOR STOU STRU SYST TYPE USER XCUP XCWD XMKD\r\n XPWD XRMD\r\n214 Help OK.\r\n";

/// One control connection's state.
#[derive(Debug)]
pub(crate) struct Machine {
    policy: LoginPolicy,
    max_failures: u32,
    client_ip: String,
    user: Option<String>,
    logged_in: Option<String>,
    failures: u32,
    cwd: String,
    binary: bool,
    /// A passive listener is open and not yet used by a transfer.
    passive: bool,
    rename_from: Option<String>,
    fs: FakeFs,
}

impl Machine {
    pub(crate) fn new(policy: LoginPolicy, max_failures: u32, client_ip: String) -> Self {
        Machine {
            policy,
            max_failures,
            client_ip,
            user: None,
            logged_in: None,
            failures: 0,
            cwd: "/".into(),
            binary: false,
            passive: false,
            rename_from: None,
            fs: FakeFs::default(),
        }
    }

    /// The driver could not open the passive listener.
    pub(crate) fn passive_failed(&mut self) {
        self.passive = false;
    }

    /// An upload to `path` of `size` bytes finished (`date` as `ls -l` shows it).
    pub(crate) fn stored(&mut self, path: &str, size: u64, date: String) {
        self.fs.add(
            path,
            Kind::File {
                size,
                content: None,
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
                Step::Passive { extended: false }
            }
            "EPSV" if arg.eq_ignore_ascii_case("ALL") => reply("200 EPSV ALL ok."),
            "EPSV" => {
                self.passive = true;
                Step::Passive { extended: true }
            }
            // Active mode would make the honeypot connect out: refused, as vsftpd does
            // when the address is not the client's.
            "PORT" => reply("500 Illegal PORT command."),
            "EPRT" => reply("500 Illegal EPRT command."),
            "LIST" | "NLST" => self.list(cmd.verb == "NLST", arg),
            "RETR" => self.retr(arg),
            "STOR" | "APPE" | "STOU" => self.stor(arg),
            "SIZE" => match self.fs.file(&self.path(arg)) {
                Some((size, _, _)) => reply(&format!("213 {size}")),
                None => reply("550 Could not get file size."),
            },
            "MDTM" => match self.fs.file(&self.path(arg)) {
                Some(_) => reply("213 20230314021507"),
                None => reply("550 Could not get file modification time."),
            },
            "DELE" => {
                let p = self.path(arg);
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
            "STAT" => Step::Reply(self.stat()),
            "SITE" => {
                let sub = arg.split(' ').next().unwrap_or("").to_ascii_uppercase();
                match sub.as_str() {
                    "CHMOD" => reply("200 SITE CHMOD command ok."),
                    "UMASK" => reply("200 Umask set to 0022."),
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
        if let Some(user) = &self.logged_in {
            let _ = user;
            return reply("230 Already logged in.");
        }
        let Some(username) = self.user.take() else {
            return reply("503 Login with USER first.");
        };
        let success = self.policy.accepts(self.failures, &username, arg);
        if success {
            self.logged_in = Some(username.clone());
            Step::Login {
                username,
                password: arg.to_owned(),
                success: true,
                reply: "230 Login successful.\r\n".into(),
                close: false,
            }
        } else {
            self.failures += 1;
            Step::Login {
                username,
                password: arg.to_owned(),
                success: false,
                reply: "530 Login incorrect.\r\n".into(),
                close: self.failures >= self.max_failures,
            }
        }
    }

    fn path(&self, arg: &str) -> String {
        resolve(&self.cwd, arg.trim_end_matches(['\r', '\n']))
    }

    fn cwd(&mut self, arg: &str) -> Step {
        let p = self.path(arg);
        if self.fs.is_dir(&p) {
            self.cwd = p;
            reply("250 Directory successfully changed.")
        } else {
            reply("550 Failed to change directory.")
        }
    }

    fn list(&mut self, names_only: bool, arg: &str) -> Step {
        if !std::mem::take(&mut self.passive) {
            return reply("425 Use PORT or PASV first.");
        }
        // `LIST -la` and friends: options are ignored, the first other word is the path.
        let target = arg
            .split(' ')
            .find(|w| !w.is_empty() && !w.starts_with('-'))
            .map_or_else(|| self.cwd.clone(), |w| self.path(w));
        let mut data = String::new();
        if self.fs.is_dir(&target) {
            for e in self.fs.children(&target) {
                if names_only {
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
        Step::Send {
            data: data.into_bytes(),
            opening: "150 Here comes the directory listing.\r\n".into(),
            done: "226 Directory send OK.\r\n",
        }
    }

    fn retr(&mut self, arg: &str) -> Step {
        if !self.passive {
            return reply("425 Use PORT or PASV first.");
        }
        let p = self.path(arg);
        match self.fs.file(&p) {
            Some((size, Some(content), _)) => {
                self.passive = false;
                let mode = if self.binary { "BINARY" } else { "ASCII" };
                Step::Send {
                    data: content.to_vec(),
                    opening: format!(
                        "150 Opening {mode} mode data connection for {} ({size} bytes).\r\n",
                        name(&p)
                    ),
                    done: "226 Transfer complete.\r\n",
                }
            }
            _ => reply("550 Failed to open file."),
        }
    }

    fn stor(&mut self, arg: &str) -> Step {
        if !self.passive {
            return reply("425 Use PORT or PASV first.");
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

    fn logged_in() -> Machine {
        let mut m = Machine::new(LoginPolicy::Always, 3, "10.0.0.9".into());
        assert_eq!(
            text(run(&mut m, "USER ftp")),
            "331 Please specify the password.\r\n"
        );
        assert!(matches!(
            run(&mut m, "PASS x"),
            Step::Login { success: true, .. }
        ));
        m
    }

    #[test]
    fn login_follows_the_policy() {
        let mut m = Machine::new(LoginPolicy::AfterAttempts(1), 3, "10.0.0.9".into());
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
            run(&mut m, "PASS 123"),
            Step::Login { success: true, .. }
        ));
        assert_eq!(text(run(&mut m, "SYST")), "215 UNIX Type: L8\r\n");
        assert_eq!(
            text(run(&mut m, "USER other")),
            "530 Can't change to another user.\r\n"
        );
    }

    #[test]
    fn closes_after_max_failures() {
        let mut m = Machine::new(LoginPolicy::Never, 2, "10.0.0.9".into());
        run(&mut m, "USER a");
        assert!(matches!(
            run(&mut m, "PASS 1"),
            Step::Login { close: false, .. }
        ));
        run(&mut m, "USER a");
        assert!(matches!(
            run(&mut m, "PASS 2"),
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
        assert_eq!(
            text(run(&mut m, "PORT 127,0,0,1,4,1")),
            "500 Illegal PORT command.\r\n"
        );
        assert_eq!(
            text(run(&mut m, "EPRT |1|127.0.0.1|1025|")),
            "500 Illegal EPRT command.\r\n"
        );
        assert_eq!(
            text(run(&mut m, "SITE EXEC /bin/sh")),
            "500 Unknown SITE command.\r\n"
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
        assert_eq!(
            text(run(&mut m, "RETR /backup/db_2023-03-14.sql.gz")),
            "550 Failed to open file.\r\n"
        );
        match run(&mut m, "RETR notes.txt") {
            Step::Send { data, opening, .. } => {
                assert!(
                    opening.starts_with("150 Opening ASCII mode data connection for notes.txt (")
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
        m.stored("/upload/x.sh", 42, "Jan 01 00:00".into());
        assert_eq!(text(run(&mut m, "SIZE /upload/x.sh")), "213 42\r\n");
        run(&mut m, "PASV");
        match run(&mut m, "NLST upload") {
            Step::Send { data, .. } => assert_eq!(data, b"x.sh\r\n"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            text(run(&mut m, "DELE upload/x.sh")),
            "250 Delete operation successful.\r\n"
        );
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
