//! The emulated shell behind the SSH and telnet honeypots: a sans-IO session state
//! machine (line editing, prompt, `exec`), a fake Debian filesystem, the commands
//! intruders type first, and the asciicast recorder and telnet codec the drivers use.
//!
//! **Invariant:** nothing here executes attacker input or touches the network or the real
//! filesystem: every command is emulated over [`fs::Fs`], `wget`/`curl` only record the URL.

pub(crate) mod accounts;
mod arith;
pub(crate) mod asciicast;
pub(crate) mod budget;
mod builtins;
pub(crate) mod busybox;
pub(crate) mod commands;
pub(crate) mod coreutils;
mod exec;
mod expand;
pub(crate) mod fs;
pub(crate) mod line_editor;
mod parse;
pub(crate) mod persist;
pub(crate) mod pool;
pub(crate) mod sysinfo;
pub(crate) mod telnet_codec;
pub(crate) mod transcript;
pub(crate) mod wtmp;

use budget::{Budget, BudgetLimits};
use fs::{BaseFs, Fs, Node, OverlayLimits};
use std::borrow::Cow;
use std::cell::Cell;
use std::net::IpAddr;
use std::sync::Arc;

/// Most shell functions a session may define.
pub(crate) const MAX_FUNCTIONS: usize = 64;
/// Longest text gathered over continuation lines (`> ` prompts) before it runs anyway.
const MAX_PENDING: usize = 16 * 1024;
/// Most bytes of all variables together (each value is also capped).
const MAX_VAR_BYTES: usize = 256 * 1024;
/// Longest value of one variable.
const MAX_VALUE: usize = 64 * 1024;

/// What every session of one service shares: the node's persona, the host name and the
/// base filesystem made from them.
#[derive(Debug)]
pub(crate) struct Profile {
    pub hostname: String,
    pub node: Arc<crate::persona::NodePersona>,
    base: Arc<BaseFs>,
    /// A router's BusyBox shell instead of Debian's bash (see `busybox`).
    pub busybox: Option<Arc<busybox::Router>>,
}

impl Profile {
    /// A service's profile: `hostname` if the operator configured one, else the
    /// persona's own.
    pub(crate) fn for_node(
        node: &Arc<crate::persona::NodePersona>,
        hostname: &str,
    ) -> Arc<Profile> {
        if busybox::wanted(node) {
            return busybox::profile(node, hostname);
        }
        let hostname = if hostname.is_empty() {
            node.persona().hostname.as_str()
        } else {
            hostname
        };
        Arc::new(Profile {
            hostname: hostname.to_owned(),
            node: Arc::clone(node),
            base: Arc::new(BaseFs::new(Arc::clone(node), hostname)),
            busybox: None,
        })
    }

    /// The fixed reference machine (unit tests, fuzzing): see `Persona::reference`.
    pub(crate) fn new(hostname: &str) -> Arc<Profile> {
        Profile::for_node(&crate::persona::NodePersona::reference(hostname), hostname)
    }
}

/// Checks a configured host name: what `hostname(1)` would accept, or empty for the
/// persona's own.
pub(crate) fn valid_hostname(h: &str) -> bool {
    h.is_empty()
        || h.len() <= 64
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && !h.starts_with(['-', '.'])
}

/// Per-session safety caps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShellLimits {
    /// Longest input line typed at the prompt; the rest is dropped (and reported once).
    pub max_line: usize,
    /// Longest SSH exec command (`ssh host 'script'`). Loaders send whole payloads this
    /// way (`echo <base64> | base64 -d > /tmp/x`), and sshd and bash take them whole, so
    /// this is far above `max_line`; the line's work budget still bounds what it does.
    pub max_exec: usize,
    /// Most command lines per session; past it the session ends.
    pub max_commands: u32,
    /// Most output bytes of one line; the rest is cut.
    pub max_line_output: usize,
    /// Most output bytes of a whole session; past it the session ends.
    pub max_session_output: usize,
    pub overlay: OverlayLimits,
    /// The work one command line may do (see [`budget`]).
    pub budget: BudgetLimits,
}

impl Default for ShellLimits {
    fn default() -> Self {
        ShellLimits {
            max_line: 4096,
            max_exec: 128 * 1024,
            max_commands: 1000,
            max_line_output: 256 * 1024,
            max_session_output: 2 * 1024 * 1024,
            overlay: OverlayLimits::default(),
            budget: BudgetLimits::default(),
        }
    }
}

/// Something the driver must turn into an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    /// A command line, whole, as typed.
    Command(String),
    /// Something tried to fetch a URL; never fetched.
    Download { url: String, tool: String },
    /// A per-session cap was hit.
    Limit { limit: &'static str, detail: String },
}

/// What the driver sends and records after one input.
#[derive(Debug, Default)]
pub(crate) struct Reply {
    /// For a pty this holds everything (stderr merged, `\r\n` line ends).
    pub stdout: Vec<u8>,
    /// Only without a pty.
    pub stderr: Vec<u8>,
    pub effects: Vec<Effect>,
    /// The shell ended with this status; the driver closes the channel.
    pub exit: Option<u32>,
}

/// Where a session comes from and who it is, for `w`, prompts and the home directory.
#[derive(Debug, Clone)]
pub(crate) struct Login {
    pub user: String,
    pub src: IpAddr,
    /// Unix seconds.
    pub now: i64,
}

/// The state commands work on.
#[derive(Debug)]
pub(crate) struct State {
    pub profile: Arc<Profile>,
    pub fs: Fs,
    pub cwd: String,
    pub oldpwd: String,
    pub home: String,
    pub user: String,
    pub uid: u32,
    pub env: Vec<(String, String)>,
    pub history: Vec<String>,
    /// `$?`
    pub status: i32,
    pub effects: Vec<Effect>,
    /// Unix seconds, as of the current input.
    pub now: i64,
    pub login_time: i64,
    pub src: IpAddr,
    /// Set by `exit`/`logout`.
    pub exit: Option<i32>,
    /// Interactive with a terminal (`-bash: ` errors, columns in `ls`).
    pub tty: bool,
    /// The terminal's rows and columns (`stty size`), as the client's pty has them.
    pub tty_size: (u32, u32),
    /// The work budget of the command line being run; reset for each line.
    pub budget: Budget,
    /// Prefix of the shell's own errors: `-bash: ` interactive, `bash: line 1: ` for exec.
    pub err_prefix: &'static str,
    /// `$1`…: set by `set --`, function calls.
    pub positional: Vec<String>,
    /// `$0` of a nested shell (`sh -c '…' name`, `sh script`); `None`: the session's.
    pub arg0: Option<String>,
    /// Shell functions (the parsed body is shared, never copied per call).
    pub functions: Vec<(String, Arc<brush_parser::ast::FunctionBody>)>,
    /// Aliases (applied in interactive sessions only, as bash does).
    pub aliases: Vec<(String, String)>,
    /// Variables that are set but not exported (`A=b` without `export`).
    pub unexported: Vec<String>,
    pub readonly: Vec<String>,
    /// `$!`
    pub last_bg: Option<u32>,
    next_pid: u32,
    /// Background jobs started (their numbers), and those finished whose `Done` notice
    /// is still to show.
    jobs: u32,
    done_jobs: Vec<(u32, String)>,
    /// A `break`, `continue`, `return` or expansion error unwinding the executor.
    flow: Option<exec::Flow>,
    /// `set -e`
    errexit: bool,
    /// How deep the executor's walk is (compound commands, calls, substitutions).
    nest: u32,
    /// Loops, conditions, function calls and nested scripts being run.
    loops: u32,
    conditions: u32,
    functions_running: u32,
    depth_of_scripts: u32,
    /// Saved values of `local` variables, one frame per function call.
    locals: Vec<Vec<(String, Option<String>)>>,
    /// Status of the last command substitution of the command being expanded.
    subst_status: Option<i32>,
    /// `kill -9 $$`: the session ends without `logout`.
    killed: bool,
    /// Logged in over telnet: the process table shows telnetd and login, not sshd.
    pub telnet: bool,
    rng: Cell<u32>,
    /// Resource limits `ulimit` changed: (option letter, soft, hard), `None` for
    /// unlimited; the others are the defaults (see `builtins::ulimit`).
    pub ulimits: Vec<(char, Option<u64>, Option<u64>)>,
}

/// Most environment variables a session may set.
const MAX_ENV: usize = 256;
/// Most history entries kept; the oldest go first, as in bash.
const MAX_HISTORY: usize = 500;
/// Most bytes of history kept per session (500 lines of 4 KiB would be 2 MiB).
const MAX_HISTORY_BYTES: usize = 64 * 1024;

impl State {
    /// `$$`
    pub(crate) fn shell_pid(&self) -> u32 {
        if self.profile.busybox.is_some() {
            return busybox::small_pid(self.fs.shell_pid());
        }
        self.fs.shell_pid()
    }

    /// `$PPID`: the user's sshd session process.
    pub(crate) fn parent_pid(&self) -> u32 {
        if self.profile.busybox.is_some() {
            return self.fs.pids().map_or(0, |p| busybox::small_pid(p.sshd + 1));
        }
        self.fs.pids().map_or(0, |p| p.sshd + 1)
    }

    /// A PID past those the session has shown (for background jobs).
    pub(crate) fn fresh_pid(&self) -> u32 {
        self.fs.pids().map_or(24_000, |p| p.line) + 2
    }

    /// `$0`: `-bash` for a login shell, `bash` for `bash -c`.
    pub(crate) fn shell_name(&self) -> &'static str {
        if self.profile.busybox.is_some() {
            return if self.tty { "-sh" } else { "sh" };
        }
        if self.tty { "-bash" } else { "bash" }
    }

    /// `$-`
    pub(crate) fn option_flags(&self) -> String {
        let base = if self.tty { "himBHs" } else { "hBc" };
        if self.errexit {
            format!("e{base}")
        } else {
            base.into()
        }
    }

    /// A variable or special parameter by name; `None` when unset.
    pub(crate) fn lookup(&self, name: &str) -> Option<String> {
        match name {
            "?" => return Some(self.status.to_string()),
            "$" | "BASHPID" => return Some(self.shell_pid().to_string()),
            "#" => return Some(self.positional.len().to_string()),
            "0" => {
                return Some(
                    self.arg0
                        .clone()
                        .unwrap_or_else(|| self.shell_name().into()),
                );
            }
            "-" => return Some(self.option_flags()),
            "!" => return self.last_bg.map(|p| p.to_string()),
            "PWD" => return Some(self.cwd.clone()),
            "RANDOM" => {
                // xorshift: a different number each time, as bash's.
                let mut x = self.rng.get();
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                self.rng.set(x);
                return Some((x % 32768).to_string());
            }
            "SECONDS" => return Some((self.now - self.login_time).max(0).to_string()),
            _ => {}
        }
        if let Some(n) = name.parse::<usize>().ok().filter(|n| *n > 0) {
            return self.positional.get(n - 1).cloned();
        }
        if let Some((_, v)) = self.env.iter().find(|(k, _)| k == name) {
            return Some(v.clone());
        }
        if self.profile.busybox.is_some() {
            return busybox::fixed_var(self, name);
        }
        let fixed = match name {
            "PPID" => self.parent_pid().to_string(),
            "UID" | "EUID" => self.uid.to_string(),
            "HOSTNAME" => self.profile.hostname.clone(),
            "BASH_VERSION" => "5.2.15(1)-release".into(),
            "BASH" => "/bin/bash".into(),
            "SHLVL" => "1".into(),
            "OSTYPE" => "linux-gnu".into(),
            "HOSTTYPE" => "x86_64".into(),
            "MACHTYPE" => "x86_64-pc-linux-gnu".into(),
            "IFS" => " \t\n".into(),
            "OLDPWD" if self.oldpwd != self.cwd => self.oldpwd.clone(),
            "PS1" if self.tty => "\\u@\\h:\\w\\$ ".into(),
            "PS2" => "> ".into(),
            // bash's own default when the environment has none (an exec without a pty).
            "TERM" => "dumb".into(),
            "OPTIND" => "1".into(),
            "LINENO" => "1".into(),
            _ => return None,
        };
        Some(fixed)
    }

    pub(crate) fn readonly(&self, name: &str) -> bool {
        self.readonly.iter().any(|k| k == name)
    }

    /// Sets a variable bash would not export (a plain `A=b`): a new name stays
    /// unexported, an exported one stays exported.
    pub(crate) fn assign(&mut self, name: &str, value: &str) {
        let new = !self.env.iter().any(|(k, _)| k == name);
        self.set_var(name, value);
        if new
            && self.env.iter().any(|(k, _)| k == name)
            && !self.unexported.iter().any(|k| k == name)
        {
            self.unexported.push(name.to_owned());
        }
    }

    /// Sets a variable; each value is capped, and all of them together.
    pub(crate) fn set_var(&mut self, name: &str, value: &str) {
        if self.readonly(name) {
            return;
        }
        let mut value = honeybee_proto::event::clamp(value, MAX_VALUE);
        let used: usize = self
            .env
            .iter()
            .filter(|(k, _)| k != name)
            .map(|(k, v)| k.len() + v.len())
            .sum();
        let room = MAX_VAR_BYTES.saturating_sub(used + name.len());
        if value.len() > room {
            value = honeybee_proto::event::clamp(&value, room);
        }
        if let Some(e) = self.env.iter_mut().find(|(k, _)| k == name) {
            e.1 = value;
        } else if self.env.len() < MAX_ENV {
            self.env
                .push((honeybee_proto::event::clamp(name, 64), value));
        }
    }

    pub(crate) fn unset_var(&mut self, name: &str) {
        self.env.retain(|(k, _)| k != name);
        self.unexported.retain(|k| k != name);
    }

    /// The name `ls`, `stat` and `find` show for `uid`: the session's user for 1000, the
    /// machine's accounts otherwise.
    pub(crate) fn user_name(&self, uid: u32) -> &str {
        match uid {
            1000 if self.uid == 1000 => &self.user,
            _ => self.accounts().name_of(uid).unwrap_or("root"),
        }
    }

    /// The machine's accounts (`/etc/passwd` and the rest are made from them).
    pub(crate) fn accounts(&self) -> &accounts::Accounts {
        self.profile.base.accounts()
    }

    pub(crate) fn prompt(&self) -> String {
        if self.profile.busybox.is_some() {
            return busybox::prompt(self);
        }
        let cwd = match self.cwd.strip_prefix(&self.home) {
            Some(rest) if self.home != "/" && (rest.is_empty() || rest.starts_with('/')) => {
                format!("~{rest}")
            }
            _ => self.cwd.clone(),
        };
        let sign = if self.uid == 0 { '#' } else { '$' };
        format!("{}@{}:{cwd}{sign} ", self.user, self.profile.hostname)
    }
}

/// The user a login becomes: the name as given when it is a plausible account name,
/// else root.
fn account_name(user: &str) -> String {
    let ok = !user.is_empty()
        && user.len() <= 32
        && user
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && !user.starts_with('-');
    if ok { user.to_owned() } else { "root".into() }
}

/// One emulated shell session.
#[derive(Debug)]
pub(crate) struct Shell {
    st: State,
    limits: ShellLimits,
    /// The line being read without a terminal.
    line: Vec<u8>,
    /// The line editor (readline's part) with a terminal.
    editor: line_editor::Editor,
    /// The terminal's size, for completion listings.
    columns: usize,
    rows: usize,
    /// The first prompt was shown: a line is being edited whenever the shell is here.
    prompted: bool,
    line_capped: bool,
    commands: u32,
    output: usize,
    ended: bool,
    /// Lines of a command that is not complete yet (an open quote, `if`, `&&`, here-
    /// document): bash prompts with `> ` and reads on.
    pending: String,
}

impl Shell {
    /// A session for `login`; `tty` when the client asked for a terminal (SSH pty-req,
    /// every telnet session).
    pub(crate) fn new(
        profile: Arc<Profile>,
        login: &Login,
        tty: bool,
        limits: ShellLimits,
    ) -> Shell {
        let user = account_name(&login.user);
        let uid = if user == "root" { 0 } else { 1000 };
        let home = if uid == 0 {
            "/root".to_owned()
        } else {
            format!("/home/{user}")
        };
        let mut fs = Fs::new(Arc::clone(&profile.base), limits.overlay);
        if uid != 0 {
            let t = fs::INSTALL_TIME + 3 * 86_400;
            fs.provision(
                &home,
                Node {
                    kind: fs::Kind::Dir,
                    mode: 0o755,
                    uid,
                    data: Cow::Borrowed(b""),
                    shown_size: None,
                    mtime: t,
                },
            );
            for (name, content) in [(".bashrc", fs::BASHRC), (".profile", "")] {
                fs.provision(
                    &format!("{home}/{name}"),
                    Node {
                        kind: fs::Kind::File,
                        mode: 0o644,
                        uid,
                        data: Cow::Borrowed(content.as_bytes()),
                        shown_size: None,
                        mtime: t,
                    },
                );
            }
            // The installer's first user: its lines in the account files, after the
            // installer's own accounts (unless the name is already a system account).
            let accounts = profile.base.accounts();
            if accounts.user(&user).is_none() {
                let login = accounts::LoginUser {
                    name: &user,
                    home: &home,
                };
                let p = profile.node.persona();
                let hash = accounts::password_field(&format!("{}{user}", p.machine_id));
                for (path, mode, content) in [
                    ("/etc/passwd", 0o644, accounts.passwd(Some(login))),
                    ("/etc/group", 0o644, accounts.group(Some(login))),
                    ("/etc/gshadow", 0o640, accounts.gshadow(Some(login))),
                    (
                        "/etc/shadow",
                        0o640,
                        accounts.shadow(
                            &accounts::password_field(&p.machine_id),
                            p.install_time / 86_400,
                            Some((login, &hash)),
                        ),
                    ),
                ] {
                    fs.provision(
                        path,
                        Node {
                            kind: fs::Kind::File,
                            mode,
                            uid: 0,
                            data: Cow::Owned(content.into_bytes()),
                            shown_size: None,
                            mtime: t,
                        },
                    );
                }
            }
        }
        // The login records `last` reads: the admin's previous login (the one the
        // greeting names) and, with a terminal, this session's (see `wtmp`).
        if profile.busybox.is_none() {
            let p = profile.node.persona();
            let records = wtmp::records(
                &p.kernel.release(),
                p.boot_time,
                (login.now - p.last_login_ago, p.last_login_src),
                tty.then_some((login.now, login.src, user.as_str())),
            );
            let mtime = records.last().map_or(p.boot_time, |r| r.sec);
            fs.provision(
                "/var/log/wtmp",
                Node {
                    kind: fs::Kind::File,
                    mode: 0o664,
                    uid: 0,
                    data: Cow::Owned(wtmp::encode(&records)),
                    shown_size: None,
                    mtime,
                },
            );
        }
        let path = if uid == 0 {
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        } else {
            "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games"
        };
        let mut env = vec![
            ("HOME".to_owned(), home.clone()),
            ("USER".to_owned(), user.clone()),
            ("LOGNAME".to_owned(), user.clone()),
            ("SHELL".to_owned(), "/bin/bash".to_owned()),
            ("PATH".to_owned(), path.to_owned()),
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
        ];
        // sshd sets TERM only for a session with a pty (the client's value replaces
        // this); without one a real session has none at all.
        if tty {
            env.push(("TERM".to_owned(), "xterm".to_owned()));
        }
        // Exported by the session's ~/.bashrc (fs::BASHRC), for its `ls` aliases: Debian's
        // bash reads it for `bash -c` from sshd too (SSH_SOURCE_BASHRC).
        env.push(("LS_OPTIONS".to_owned(), "--color=auto".to_owned()));
        let mut shell = Shell {
            st: State {
                profile,
                fs,
                cwd: home.clone(),
                oldpwd: home.clone(),
                home,
                user,
                uid,
                env,
                history: Vec::new(),
                status: 0,
                effects: Vec::new(),
                now: login.now,
                login_time: login.now,
                src: login.src,
                exit: None,
                tty,
                tty_size: (24, 80),
                budget: Budget::new(limits.budget),
                err_prefix: if tty { "-bash: " } else { "bash: line 1: " },
                positional: Vec::new(),
                arg0: None,
                functions: Vec::new(),
                // What the session's ~/.bashrc (fs::BASHRC) defines (expanded only when
                // interactive, as bash does).
                aliases: vec![
                    ("ls".into(), "ls $LS_OPTIONS".into()),
                    ("ll".into(), "ls $LS_OPTIONS -l".into()),
                ],
                unexported: Vec::new(),
                readonly: Vec::new(),
                last_bg: None,
                next_pid: 0,
                jobs: 0,
                done_jobs: Vec::new(),
                flow: None,
                errexit: false,
                nest: 0,
                loops: 0,
                conditions: 0,
                functions_running: 0,
                depth_of_scripts: 0,
                locals: Vec::new(),
                subst_status: None,
                killed: false,
                telnet: false,
                ulimits: Vec::new(),
                rng: Cell::new(u32::try_from(login.now & 0x7fff_ffff).unwrap_or(1) | 1),
            },
            limits,
            line: Vec::new(),
            editor: line_editor::Editor::new(limits.max_line),
            columns: 80,
            rows: 24,
            prompted: false,
            line_capped: false,
            commands: 0,
            output: 0,
            ended: false,
            pending: String::new(),
        };
        busybox::adapt(&mut shell, &limits);
        shell
    }

    /// A variable from the client (SSH `env`, the pty's `TERM`).
    pub(crate) fn set_env(&mut self, key: &str, value: &str) {
        let valid = !key.is_empty()
            && key.len() <= 64
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if valid {
            self.st.set_var(key, value);
        }
    }

    pub(crate) fn ended(&self) -> bool {
        self.ended
    }

    /// The terminal's size (SSH pty size, telnet NAWS), for line wrapping and completion
    /// listings. A change while a line is being edited at the prompt is bash's SIGWINCH:
    /// readline clears the line and draws the prompt and the line again at the new
    /// width (the bytes are in the reply; they count against the session's output cap).
    /// Nothing before the first prompt, after the end, without a terminal, for a size
    /// readline sees as the same (the kernel sends no SIGWINCH for the same size; a
    /// width of 1 is 80 to readline, as 80 is), or on a BusyBox persona (its
    /// line editor's redraw is not imitated). A line running takes the shell away from
    /// its driver, so a change then is only the size the next prompt uses.
    pub(crate) fn set_size(&mut self, columns: u32, rows: u32) -> Reply {
        let mut r = Reply::default();
        let old = line_editor::screen_size(self.columns, self.rows);
        let old_columns = self.columns;
        self.columns = usize::try_from(columns.clamp(1, 1000)).unwrap_or(80);
        self.rows = usize::try_from(rows.clamp(2, 1000)).unwrap_or(24);
        self.st.tty_size = (rows.clamp(2, 1000), columns.clamp(1, 1000));
        // readline redraws only when its idea of the size changed (a width of 1 is 80
        // to it, as 80 is).
        let changed = line_editor::screen_size(self.columns, self.rows) != old;
        if changed
            && self.prompted
            && !self.ended
            && self.st.tty
            && self.st.profile.busybox.is_none()
        {
            let ctx = line_editor::ShellContext {
                st: &self.st,
                continuing: !self.pending.is_empty(),
                columns: self.columns,
                rows: self.rows,
            };
            self.editor.resize(old_columns, &ctx, &mut r.stdout);
            // One redraw per change, charged like any output: a flood of changes ends
            // the session at its output cap.
            self.charge_session_output(r.stdout.len(), &mut r);
        }
        r
    }

    /// The session came in over telnet (inetd, telnetd and login are its parents).
    pub(crate) fn set_telnet(&mut self) {
        self.st.telnet = true;
    }

    /// The session's filesystem, home and uid: the SSH driver shares one overlay between
    /// a connection's shells and its SFTP/scp channels.
    pub(crate) fn files(&mut self) -> (&mut Fs, &str, u32) {
        (&mut self.st.fs, &self.st.home, self.st.uid)
    }

    /// What an interactive login shows before the first prompt.
    pub(crate) fn greeting(&mut self) -> Reply {
        let mut r = Reply::default();
        if self.st.tty {
            sysinfo::before_line(&mut self.st);
            let text = match &self.st.profile.busybox {
                Some(r) => busybox::greeting(r),
                None => {
                    let (kernel, last) = sysinfo::login_banner(&self.st);
                    format!("{kernel}{}{last}", fs::MOTD)
                }
            };
            r.stdout = crlf(text.as_bytes());
            self.show_prompt(&mut r);
            self.prompted = true;
        }
        r
    }

    /// Feeds bytes the client typed (or piped, without a terminal).
    pub(crate) fn input(&mut self, data: &[u8], now: i64) -> Reply {
        self.st.now = now;
        let mut r = Reply::default();
        if self.ended {
            return r;
        }
        for &b in data {
            if self.st.tty {
                self.tty_byte(b, &mut r);
            } else {
                self.raw_byte(b, &mut r);
            }
            if self.ended {
                break;
            }
        }
        r
    }

    /// The client closed its input: a pending line runs, then the shell ends as bash
    /// does on end of file.
    pub(crate) fn eof(&mut self, now: i64) -> Reply {
        self.st.now = now;
        let mut r = Reply::default();
        if self.ended {
            return r;
        }
        // A command still open at the end runs (and fails as bash's does), so that what
        // was typed is recorded either way.
        if (!self.st.tty && !self.line.is_empty()) || !self.pending.is_empty() {
            let line = if self.st.tty {
                Vec::new()
            } else {
                std::mem::take(&mut self.line)
            };
            self.run_complete(&line, &mut r);
        }
        if !self.ended {
            if self.st.tty {
                r.stdout.extend_from_slice(b"logout\r\n");
            }
            self.finish(&mut r, self.st.status);
        }
        r
    }

    /// Runs an SSH exec request: one command line, then the exit status.
    pub(crate) fn exec(&mut self, command: &[u8], now: i64) -> Reply {
        self.st.now = now;
        let mut r = Reply::default();
        let line = &command[..command.len().min(self.limits.max_exec)];
        if line.len() < command.len() {
            r.effects.push(Effect::Limit {
                limit: "shell_line",
                detail: format!(
                    "exec command longer than {} bytes cut",
                    self.limits.max_exec
                ),
            });
        }
        // A multi-line exec runs line by line, as `bash -c` does.
        let text = String::from_utf8_lossy(line).into_owned();
        r.effects.push(Effect::Command(honeybee_proto::event::clamp(
            &text,
            honeybee_proto::event::MAX_FIELD_LEN,
        )));
        // The whole text is one script, as `bash -c` parses it.
        self.execute(&text, &mut r);
        if !self.ended {
            let status = self.st.exit.unwrap_or(self.st.status);
            self.finish(&mut r, status);
        }
        r
    }

    fn finish(&mut self, r: &mut Reply, status: i32) {
        self.ended = true;
        r.exit = Some(u32::try_from(status & 0xff).unwrap_or(0));
    }

    fn raw_byte(&mut self, b: u8, r: &mut Reply) {
        match b {
            b'\n' => {
                let line = std::mem::take(&mut self.line);
                self.line_capped = false;
                self.run(&line, r);
            }
            b'\r' => {}
            b => self.push_line_byte(b, r, false),
        }
    }

    fn push_line_byte(&mut self, b: u8, r: &mut Reply, echo: bool) {
        if self.line.len() < self.limits.max_line {
            self.line.push(b);
            if echo {
                r.stdout.push(b);
            }
        } else if !self.line_capped {
            self.line_capped = true;
            r.effects.push(Effect::Limit {
                limit: "shell_line",
                detail: format!("input line longer than {} bytes cut", self.limits.max_line),
            });
        }
    }

    /// The prompt (PS2 inside an open command), with bracketed paste turned on as
    /// readline does before each line.
    fn show_prompt(&self, r: &mut Reply) {
        if self.st.profile.busybox.is_none() {
            r.stdout.extend_from_slice(line_editor::PASTE_ON);
        }
        if self.pending.is_empty() {
            r.stdout.extend_from_slice(self.st.prompt().as_bytes());
        } else {
            r.stdout.extend_from_slice(b"> ");
        }
    }

    fn tty_byte(&mut self, b: u8, r: &mut Reply) {
        let ctx = line_editor::ShellContext {
            st: &self.st,
            continuing: !self.pending.is_empty(),
            columns: self.columns,
            rows: self.rows,
        };
        let mut out = Vec::new();
        let event = self.editor.feed(b, &ctx, &mut out);
        if self.st.profile.busybox.is_some() {
            busybox::strip_paste(&mut out);
        }
        r.stdout.extend_from_slice(&out);
        // A listing or a redraw turns one byte into many: they count against the
        // session's output cap like any command's output.
        if out.len() > 8 {
            self.charge_session_output(out.len(), r);
        }
        if std::mem::take(&mut self.editor.overflowed) && !self.line_capped {
            self.line_capped = true;
            r.effects.push(Effect::Limit {
                limit: "shell_line",
                detail: format!("input line longer than {} bytes cut", self.limits.max_line),
            });
        }
        match event {
            None => {}
            Some(line_editor::Event::Line(line)) => {
                self.line_capped = false;
                self.run(&line, r);
                if !self.ended {
                    self.show_prompt(r);
                }
            }
            Some(line_editor::Event::Interrupt) => {
                self.pending.clear();
                self.st.status = 130;
                self.show_prompt(r);
            }
            Some(line_editor::Event::Eof) if !self.pending.is_empty() => {
                // End of file inside an open command: bash reports it and prompts again.
                self.run_complete(b"", r);
                if !self.ended {
                    self.show_prompt(r);
                }
            }
            Some(line_editor::Event::Eof) => {
                r.stdout.extend_from_slice(b"logout\r\n");
                self.finish(r, self.st.status);
            }
        }
    }

    /// Runs one typed line: one `Command` effect, then its commands. At a terminal `!!`
    /// is expanded first and the expanded line shown, as bash does.
    fn run(&mut self, line: &[u8], r: &mut Reply) {
        if self.st.tty {
            match line_editor::expand_bang(line, &self.st.history) {
                Ok(None) => {}
                Ok(Some(expanded)) => {
                    r.stdout.extend_from_slice(&expanded);
                    r.stdout.extend_from_slice(b"\r\n");
                    self.run_line(&expanded, r, false);
                    return;
                }
                Err(()) => {
                    // Recorded, never run.
                    r.effects.push(Effect::Command(honeybee_proto::event::clamp(
                        &String::from_utf8_lossy(line),
                        honeybee_proto::event::MAX_FIELD_LEN,
                    )));
                    r.stdout
                        .extend_from_slice(b"-bash: !!: event not found\r\n");
                    return;
                }
            }
        }
        self.run_line(line, r, false);
    }

    /// Runs what is pending with `line`, complete or not (end of input).
    fn run_complete(&mut self, line: &[u8], r: &mut Reply) {
        self.run_line(line, r, true);
    }

    fn run_line(&mut self, line: &[u8], r: &mut Reply, at_end: bool) {
        let mut text = String::from_utf8_lossy(line).into_owned();
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            text = if at_end && text.is_empty() {
                pending
            } else {
                format!("{pending}\n{text}")
            };
        } else if text.trim().is_empty() {
            return;
        }
        // An open quote, compound command, `&&` or here-document: read on (bash's PS2).
        if !at_end
            && text.len() < MAX_PENDING
            && matches!(parse::parse(&text), Err(parse::Syntax::Incomplete(_)))
        {
            self.pending = text;
            return;
        }
        r.effects.push(Effect::Command(honeybee_proto::event::clamp(
            &text,
            honeybee_proto::event::MAX_FIELD_LEN,
        )));
        self.st.history.push(text.clone());
        let mut bytes: usize = self.st.history.iter().map(String::len).sum();
        while self.st.history.len() > MAX_HISTORY || bytes > MAX_HISTORY_BYTES {
            bytes -= self.st.history[0].len();
            self.st.history.remove(0);
        }
        self.execute(&text, r);
        if self.ended {
            return;
        }
        if let Some(status) = self.st.exit {
            if self.st.tty && !self.st.killed && self.st.profile.busybox.is_none() {
                r.stdout.extend_from_slice(b"logout\r\n");
            }
            self.finish(r, status);
        }
    }

    fn execute(&mut self, text: &str, r: &mut Reply) {
        self.commands += 1;
        if self.commands > self.limits.max_commands {
            r.effects.push(Effect::Limit {
                limit: "shell_commands",
                detail: format!("more than {} command lines", self.limits.max_commands),
            });
            self.finish(r, 1);
            return;
        }
        let mut io = commands::Io::new(self.st.tty, self.limits.max_line_output);
        self.st.budget.reset();
        sysinfo::before_line(&mut self.st);
        commands::run_line(&mut self.st, text, &mut io);
        // The line's background jobs have ended: an interactive bash says so before the
        // next prompt.
        let done = std::mem::take(&mut self.st.done_jobs);
        if self.st.tty && !self.st.budget.is_exhausted() {
            let n = done.len();
            for (i, (id, cmd)) in done.into_iter().enumerate() {
                let mark = match n - i {
                    1 => '+',
                    2 => '-',
                    _ => ' ',
                };
                let line = format!("[{id}]{mark}  {:<24}{cmd}\n", "Done");
                io.push(false, line.as_bytes());
            }
        }
        self.st.jobs = 0;
        let dropped = self.st.budget.downloads_dropped();
        if dropped > 0 {
            self.st.effects.push(Effect::Limit {
                limit: "shell_budget",
                detail: format!("{dropped} more download attempts on one line not recorded"),
            });
        }
        if let Some(detail) = self.st.budget.detail() {
            // The line stopped as a process the kernel killed would; the session goes
            // on with a fresh budget for the next line.
            io.push(true, b"Killed\n");
            self.st.status = 137;
            self.st.effects.push(Effect::Limit {
                limit: "shell_budget",
                detail,
            });
        }
        r.effects.append(&mut self.st.effects);
        if io.capped {
            r.effects.push(Effect::Limit {
                limit: "shell_output",
                detail: format!(
                    "output of one line over {} bytes cut",
                    self.limits.max_line_output
                ),
            });
        }
        let (out, err) = io.into_parts();
        if self.st.tty {
            r.stdout.extend_from_slice(&crlf(&out));
        } else {
            r.stdout.extend_from_slice(&out);
            r.stderr.extend_from_slice(&err);
        }
        self.charge_session_output(out.len() + err.len(), r);
    }

    /// Counts `n` bytes against the session's output cap; past it the session ends with
    /// a `shell_output` limit (once).
    fn charge_session_output(&mut self, n: usize, r: &mut Reply) {
        self.output = self.output.saturating_add(n);
        if self.output > self.limits.max_session_output && !self.ended {
            r.effects.push(Effect::Limit {
                limit: "shell_output",
                detail: format!(
                    "session output over {} bytes",
                    self.limits.max_session_output
                ),
            });
            self.finish(r, 1);
        }
    }
}

/// `\n` to `\r\n`, as a terminal's output processing does.
pub(crate) fn crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 16);
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

#[cfg(test)]
mod tests;
