//! The emulated commands and the executor of parsed lines (pipes, `&&`/`||`,
//! redirections into the session's overlay). Output mimics Debian 12's coreutils, procps
//! and bash closely enough for the checks intruders run; `wget`, `curl`, `tftp` and
//! `ftpget` record the URL as an [`Effect::Download`] and fail as a host without egress
//! would, without any network access.

use super::budget::MAX_BUFFER;
use super::fs::{self, FsError, Kind, Node};
use super::{Effect, State};
use honeybee_proto::event::{MAX_FIELD_LEN, clamp};
use std::borrow::Cow;
use std::fmt::Write as _;

/// Most downloads recorded from one command (a URL list in a loop is still bounded).
const MAX_DOWNLOADS_PER_COMMAND: usize = 16;

/// The session's output of one line, bounded.
#[derive(Debug)]
pub(super) struct Io {
    out: Vec<u8>,
    err: Vec<u8>,
    /// With a terminal both streams are the same.
    merge: bool,
    cap: usize,
    pub capped: bool,
    /// Standard output is the session's terminal (not a pipe, file or `$( )`).
    pub terminal: bool,
}

impl Io {
    pub(super) fn new(merge: bool, cap: usize) -> Io {
        Io {
            out: Vec::new(),
            err: Vec::new(),
            merge,
            cap,
            capped: false,
            terminal: merge,
        }
    }

    pub(super) fn push(&mut self, to_err: bool, data: &[u8]) {
        let used = self.out.len() + self.err.len();
        let room = self.cap.saturating_sub(used);
        if data.len() > room {
            self.capped = true;
        }
        let data = &data[..data.len().min(room)];
        if to_err && !self.merge {
            self.err.extend_from_slice(data);
        } else {
            self.out.extend_from_slice(data);
        }
    }

    pub(super) fn into_parts(self) -> (Vec<u8>, Vec<u8>) {
        (self.out, self.err)
    }
}

/// What one command produced. Each stream holds at most [`MAX_BUFFER`] bytes: what
/// would go past it is cut as it is written, so no command can build a larger buffer
/// however many operands it has.
#[derive(Debug, Default)]
pub(super) struct Out {
    pub(super) out: Vec<u8>,
    pub(super) err: Vec<u8>,
    pub(super) status: i32,
    /// Something was cut at MAX_BUFFER (reported as the line's output cap).
    pub(super) cut: bool,
}

/// Appends what fits under [`MAX_BUFFER`]; `false` when something was cut.
fn capped_extend(buf: &mut Vec<u8>, data: &[u8]) -> bool {
    let room = MAX_BUFFER.saturating_sub(buf.len());
    let n = data.len().min(room);
    buf.extend_from_slice(&data[..n]);
    n == data.len()
}

impl Out {
    pub(super) fn ok(text: impl Into<Vec<u8>>) -> Out {
        let mut out = text.into();
        let cut = out.len() > MAX_BUFFER;
        out.truncate(MAX_BUFFER);
        Out {
            out,
            cut,
            ..Out::default()
        }
    }

    pub(super) fn fail(status: i32, err: impl Into<Vec<u8>>) -> Out {
        let mut err = err.into();
        let cut = err.len() > MAX_BUFFER;
        err.truncate(MAX_BUFFER);
        Out {
            err,
            status,
            cut,
            ..Out::default()
        }
    }

    pub(super) fn line(&mut self, s: &str) {
        let whole =
            capped_extend(&mut self.out, s.as_bytes()) && capped_extend(&mut self.out, b"\n");
        self.cut |= !whole;
    }

    pub(super) fn eline(&mut self, s: &str) {
        let whole =
            capped_extend(&mut self.err, s.as_bytes()) && capped_extend(&mut self.err, b"\n");
        self.cut |= !whole;
    }

    /// Appends raw output; `false` when it was cut.
    pub(super) fn put(&mut self, data: &[u8]) -> bool {
        let whole = capped_extend(&mut self.out, data);
        self.cut |= !whole;
        whole
    }

    /// Bytes stdout may still take.
    pub(super) fn room(&self) -> usize {
        MAX_BUFFER.saturating_sub(self.out.len())
    }

    /// Either stream is full: a command stops working on further operands.
    pub(super) fn full(&self) -> bool {
        self.out.len() >= MAX_BUFFER || self.err.len() >= MAX_BUFFER
    }
}

/// The prefix of `data` the line's data budget lets a command copy (at most `room`).
pub(super) fn take<'a>(st: &State, data: &'a [u8], room: usize) -> &'a [u8] {
    let want = data.len().min(room);
    &data[..st.budget.take_data(want)]
}

/// Runs one line (or an exec request's whole text, or `sh -c`'s script) with bash's
/// grammar: see `exec`. Every part is charged to the line's budget before it is
/// expanded or run; once the budget is exhausted nothing more runs (the caller reports
/// it).
pub(super) fn run_line(st: &mut State, line: &str, io: &mut Io) {
    super::exec::run_script(st, line, io);
}

pub(super) fn write_file(
    st: &mut State,
    f: &str,
    data: &[u8],
    append: bool,
) -> Result<(), FsError> {
    let path = fs::normalize(&st.cwd, &st.home, f);
    if !may_write(st, &path) || super::busybox::read_only(st, &path) {
        return Err(FsError::Denied);
    }
    // Appending copies the file as it is: that copy is data too, charged before it.
    let existing = if append {
        st.fs.stat(&path).map_or(0, |n| n.data.len())
    } else {
        0
    };
    let want = existing.saturating_add(data.len());
    if st.budget.take_data(want) < want {
        return Err(FsError::NoSpace);
    }
    let (uid, now) = (st.uid, st.now);
    st.fs.write(&path, data, append, uid, now)
}

/// A non-root user writes only under home and the temporary directories.
fn may_write(st: &State, path: &str) -> bool {
    st.uid == 0
        || path == "/dev/null"
        || [st.home.as_str(), "/tmp", "/var/tmp", "/dev/shm"]
            .iter()
            .any(|d| path == *d || path.starts_with(&format!("{d}/")))
}

pub(super) struct Ctx<'a> {
    pub(super) stdin: &'a [u8],
    /// The output goes to the terminal (columns for `ls`).
    pub(super) out_tty: bool,
}

fn is_assignment(w: &str) -> Option<(&str, &str)> {
    let (k, v) = w.split_once('=')?;
    let valid = !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    valid.then_some((k, v))
}

/// Runs one simple command. Commands that run the rest of their arguments as a command
/// (`sudo`, `nohup`, `time`, `nice`, `timeout`, also by path) are followed in a loop over
/// sub-slices of `argv`: nothing is copied and the stack does not grow, and each hop is
/// charged to the line's budget as one command and one level of nesting.
pub(super) fn command(st: &mut State, argv: &[String], ctx: &Ctx<'_>) -> Out {
    let mut argv = argv;
    let mut hops = 0u32;
    let out = loop {
        if !st.budget.command() {
            break Out::default();
        }
        // `A=b` alone sets a variable; `A=b cmd` runs cmd (the variable is ignored).
        let first_cmd = argv.iter().position(|w| is_assignment(w).is_none());
        let Some(first) = first_cmd else {
            for w in argv {
                if let Some((k, v)) = is_assignment(w) {
                    st.set_var(k, v);
                }
            }
            break Out::default();
        };
        argv = &argv[first..];
        if st.profile.busybox.is_some() {
            break super::busybox::command(st, argv, ctx);
        }
        let args = &argv[1..];
        let name: Cow<'_, str> = if argv[0].contains('/') {
            if is_script(st, &argv[0]) {
                // A script run by path: its interpreter reads it (the emulated shell).
                break sh(st, "bash", argv, ctx);
            }
            match resolve_path(st, &argv[0]) {
                Ok(base) => Cow::Owned(base),
                Err(out) => break out,
            }
        } else {
            Cow::Borrowed(argv[0].as_str())
        };
        let rest = match name.as_ref() {
            "sudo" => {
                // Options, and the values of those that take one (`-u root`).
                let mut k = 0;
                while let Some(a) = args.get(k).filter(|a| a.starts_with('-')) {
                    let with_value = matches!(
                        a.as_str(),
                        "-u" | "-g" | "-p" | "-C" | "-D" | "-r" | "-t" | "-T" | "-U"
                    );
                    k += if with_value { 2 } else { 1 };
                }
                let k = k.min(args.len());
                if k == args.len() && args.iter().any(|a| a == "-l" || a == "--list") {
                    break sudo_list(st);
                }
                if k == args.len() {
                    break Out::fail(1, "usage: sudo -h | -K | -k | -V\n");
                }
                &args[k..]
            }
            "nohup" | "time" | "nice" | "timeout" => {
                let skip = usize::from(name == "timeout").min(args.len());
                if skip == args.len() {
                    break Out::default();
                }
                &args[skip..]
            }
            _ => break builtin(st, &name, args, ctx),
        };
        if !st.budget.enter() {
            break Out::default();
        }
        hops += 1;
        argv = rest;
    };
    for _ in 0..hops {
        st.budget.leave();
    }
    out
}

/// `sudo -l`: root's rights under Debian's /etc/sudoers, wrapped at 80 columns as sudo
/// wraps them; a user would need the password, which sudo cannot read without a
/// terminal.
fn sudo_list(st: &State) -> Out {
    if st.uid != 0 {
        return Out::fail(
            1,
            "sudo: a terminal is required to read the password; either use the -S option to read from standard input or configure an askpass helper\nsudo: a password is required\n",
        );
    }
    let host = &st.profile.hostname;
    Out::ok(format!(
        "Matching Defaults entries for root on {host}:\n    env_reset, mail_badpass,\n    secure_path=/usr/local/sbin\\:/usr/local/bin\\:/usr/sbin\\:/usr/bin\\:/sbin\\:/bin,\n    use_pty\n\nUser root may run the following commands on {host}:\n    (ALL : ALL) ALL\n"
    ))
}

pub(super) fn builtin(st: &mut State, name: &str, args: &[String], ctx: &Ctx<'_>) -> Out {
    match name {
        // The machine's own facts come from the node's persona (see `sysinfo`).
        "uname" | "hostname" | "uptime" | "w" | "who" | "ps" | "free" | "df" | "nproc"
        | "lscpu" | "date" | "ip" | "pgrep" | "pkill" | "pidof" => {
            super::sysinfo::run(st, name, args).unwrap_or_default()
        }
        "id" => id(st, args),
        "whoami" => Out::ok(format!("{}\n", st.user)),
        "pwd" => Out::ok(format!("{}\n", st.cwd)),
        "cd" => cd(st, args),
        "ls" | "dir" => ls(st, args, ctx, false),
        "ll" => ls(st, &[&["-l".to_owned()][..], args].concat(), ctx, false),
        "cat" => cat(st, args, ctx),
        "echo" => echo(args),
        "wget" => wget(st, args),
        "curl" => curl(st, args, ctx.out_tty),
        "tftp" | "ftpget" | "busybox" => not_found_but_record(st, name, args),
        "chmod" => chmod(st, args),
        "chown" | "chgrp" => chown(st, name, args),
        "rm" => rm(st, args),
        "mkdir" => mkdir(st, args),
        "rmdir" => rmdir(st, args),
        "touch" => touch(st, args),
        "cp" | "mv" => cp_mv(st, name, args),
        "history" => history(st, args),
        // Only a login shell logs out; `bash -c` from sshd is not one.
        "logout" if !st.tty => Out::fail(
            1,
            format!("{}logout: not login shell: use `exit'\n", st.err_prefix),
        ),
        "exit" | "logout" => {
            let code = args
                .first()
                .and_then(|a| a.parse::<i32>().ok())
                .unwrap_or(st.status);
            st.exit = Some(code);
            Out {
                status: code,
                ..Out::default()
            }
        }
        "clear" | "reset" => Out::ok("\x1b[H\x1b[2J\x1b[3J"),
        "export" | "unset" => super::builtins::run(st, name, args, ctx).unwrap_or_default(),
        "env" | "printenv" if args.is_empty() => {
            let mut o = Out::default();
            for (k, v) in &st.env {
                o.line(&format!("{k}={v}"));
            }
            o
        }
        "which" | "command" => which(st, name, args),
        // Shell builtins with bash's own texts live in `builtins`.
        "true" | ":" | "kill" | "set" | "alias" | "unalias" | "type" | "enable" | "printf"
        | "jobs" | "declare" | "typeset" | "readonly" | "shift" | "local" | "test" | "["
        | "let" | "wait" | "hash" | "ulimit" => {
            super::builtins::run(st, name, args, ctx).unwrap_or_default()
        }
        "stty" => stty(st, args),
        "sync" | "shopt" | "source" | "." | "mesg" | "service" | "systemctl" => Out::default(),
        "false" => super::builtins::run(st, name, args, ctx).unwrap_or_default(),
        "wc" => wc(st, args, ctx),
        "sh" | "bash" | "dash" => sh(st, name, args, ctx),
        "su" => Out::default(),
        // The text utilities and system tools live by family under `coreutils/`.
        _ => super::coreutils::run(st, name, args, ctx).unwrap_or_else(|| {
            Out::fail(127, format!("{}{name}: command not found\n", st.err_prefix))
        }),
    }
}

/// `stty`: `size` prints the pty's rows and columns (scripts and bots read it); without a
/// terminal stty fails as coreutils' does on a pipe or socket. Settings are accepted and
/// change nothing.
fn stty(st: &State, args: &[String]) -> Out {
    if !st.tty {
        return Out::fail(
            1,
            "stty: 'standard input': Inappropriate ioctl for device\n".to_string(),
        );
    }
    let mut o = Out::default();
    if args.first().map(String::as_str) == Some("size") {
        let (rows, columns) = st.tty_size;
        o.line(&format!("{rows} {columns}"));
    }
    o
}

/// An executable text file outside the program directories (`./setup.sh`, a dropped
/// script): run by the kernel's `#!` line or, without one, by bash itself.
fn is_script(st: &State, given: &str) -> bool {
    let path = fs::normalize(&st.cwd, &st.home, given);
    let resolved = st.fs.resolve(&path);
    if resolved.starts_with("/usr/bin/") || resolved.starts_with("/usr/sbin/") {
        return false;
    }
    st.fs.stat(&path).is_some_and(|n| {
        n.kind == Kind::File && n.mode & 0o111 != 0 && !n.data.is_empty() && !n.data.contains(&0)
    })
}

/// `./x`, `/bin/ls`: our own commands run by path (`Ok` with the command's name);
/// anything else cannot run here (`Err` with what the shell answers).
fn resolve_path(st: &State, given: &str) -> Result<String, Out> {
    let path = fs::normalize(&st.cwd, &st.home, given);
    let resolved = st.fs.resolve(&path);
    let e = st.err_prefix;
    match st.fs.stat(&path) {
        None => Err(Out::fail(
            127,
            format!("{e}{given}: No such file or directory\n"),
        )),
        Some(n) if n.kind == Kind::Dir => {
            Err(Out::fail(126, format!("{e}{given}: Is a directory\n")))
        }
        Some(n) if n.mode & 0o111 == 0 => {
            Err(Out::fail(126, format!("{e}{given}: Permission denied\n")))
        }
        Some(_) if resolved.starts_with("/usr/bin/") || resolved.starts_with("/usr/sbin/") => {
            let (_, base) = fs::split(&resolved);
            Ok(base.to_owned())
        }
        Some(n) if n.data.starts_with(b"#!") || n.data.is_empty() => Err(Out::default()),
        Some(_) => Err(Out::fail(
            126,
            format!("{e}{given}: cannot execute binary file: Exec format error\n"),
        )),
    }
}

// ---- system information -------------------------------------------------------------

/// `id NAME` for an account of `/etc/passwd` other than the session's: its own group
/// only (the system accounts have no supplementary groups).
fn id_of(st: &State, name: &str, flags: &str) -> Out {
    let accounts = st.accounts();
    let Some(a) = accounts.user(name) else {
        return Out::fail(1, format!("id: \u{2018}{name}\u{2019}: no such user\n"));
    };
    let group = accounts.group_name(a.gid).unwrap_or("nogroup");
    let named = flags.contains('n');
    let text = if flags.contains('u') {
        if named {
            a.name.to_owned()
        } else {
            a.uid.to_string()
        }
    } else if flags.contains('g') || flags.contains('G') {
        if named {
            group.to_owned()
        } else {
            a.gid.to_string()
        }
    } else {
        format!(
            "uid={}({}) gid={}({group}) groups={}({group})",
            a.uid, a.name, a.gid, a.gid
        )
    };
    Out::ok(format!("{text}\n"))
}

fn id(st: &State, args: &[String]) -> Out {
    let (uid, user) = (st.uid, st.user.as_str());
    let flags: String = args
        .iter()
        .filter(|a| a.starts_with('-'))
        .flat_map(|a| a[1..].chars())
        .collect();
    // `id USER` for another account of the machine (coreutils' layout).
    if let Some(name) = args.iter().find(|a| !a.starts_with('-'))
        && name != user
    {
        return id_of(st, name, &flags);
    }
    if flags.contains('u') {
        return Out::ok(if flags.contains('n') {
            format!("{user}\n")
        } else {
            format!("{uid}\n")
        });
    }
    if flags.contains('g') {
        return Out::ok(if flags.contains('n') {
            format!("{user}\n")
        } else {
            format!("{uid}\n")
        });
    }
    // -G: every group, as numbers or (-n) names.
    if flags.contains('G') {
        let groups: &[(u32, &str)] = if uid == 0 {
            &[]
        } else {
            &[
                (24, "cdrom"),
                (25, "floppy"),
                (27, "sudo"),
                (29, "audio"),
                (30, "dip"),
                (44, "video"),
                (46, "plugdev"),
                (100, "users"),
                (106, "netdev"),
            ]
        };
        let mut words = vec![if flags.contains('n') {
            user.to_owned()
        } else {
            uid.to_string()
        }];
        for (gid, name) in groups {
            words.push(if flags.contains('n') {
                (*name).to_owned()
            } else {
                gid.to_string()
            });
        }
        return Out::ok(format!("{}\n", words.join(" ")));
    }
    if uid == 0 {
        Out::ok("uid=0(root) gid=0(root) groups=0(root)\n")
    } else {
        Out::ok(format!(
            "uid={uid}({user}) gid={uid}({user}) groups={uid}({user}),24(cdrom),25(floppy),27(sudo),29(audio),30(dip),44(video),46(plugdev),100(users),106(netdev)\n"
        ))
    }
}

// ---- files ----------------------------------------------------------------------------

fn path_of(st: &State, p: &str) -> String {
    fs::normalize(&st.cwd, &st.home, p)
}

fn cd(st: &mut State, args: &[String]) -> Out {
    let target = match args.first().map(String::as_str) {
        None | Some("~") => st.home.clone(),
        Some("-") => st.oldpwd.clone(),
        Some(p) => path_of(st, p),
    };
    if args.len() > 1 {
        return Out::fail(1, format!("{}cd: too many arguments\n", st.err_prefix));
    }
    let shown = args.first().cloned().unwrap_or_default();
    match st.fs.stat(&target) {
        None => Out::fail(
            1,
            format!("{}cd: {shown}: No such file or directory\n", st.err_prefix),
        ),
        Some(n) if n.kind != Kind::Dir => Out::fail(
            1,
            format!("{}cd: {shown}: Not a directory\n", st.err_prefix),
        ),
        Some(_) if st.uid != 0 && target.starts_with("/root") => Out::fail(
            1,
            format!("{}cd: {shown}: Permission denied\n", st.err_prefix),
        ),
        Some(_) => {
            st.oldpwd = std::mem::replace(&mut st.cwd, target);
            if args.first().is_some_and(|a| a == "-") {
                Out::ok(format!("{}\n", st.cwd))
            } else {
                Out::default()
            }
        }
    }
}

fn split_flags(args: &[String]) -> (String, Vec<&String>) {
    let mut flags = String::new();
    let mut rest = Vec::new();
    let mut only_operands = false;
    for a in args {
        if !only_operands && a == "--" {
            only_operands = true;
        } else if !only_operands && a.starts_with("--") {
            match a.as_str() {
                "--all" => flags.push('a'),
                "--recursive" => flags.push('r'),
                "--force" => flags.push('f'),
                "--parents" => flags.push('p'),
                "--lines" => flags.push('l'),
                _ => {}
            }
        } else if !only_operands && a.starts_with('-') && a.len() > 1 {
            flags.push_str(&a[1..]);
        } else {
            rest.push(a);
        }
    }
    (flags, rest)
}

fn mode_string(n: &Node) -> String {
    let mut s = String::with_capacity(10);
    s.push(match n.kind {
        Kind::Dir => 'd',
        Kind::File => '-',
        Kind::Symlink => 'l',
        Kind::CharDev => 'c',
    });
    for shift in [6u32, 3, 0] {
        let bits = (n.mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let x = bits & 1 != 0;
        let special = match shift {
            6 => n.mode & 0o4000 != 0,
            3 => n.mode & 0o2000 != 0,
            _ => n.mode & 0o1000 != 0,
        };
        s.push(match (special, x, shift) {
            (true, true, 0) => 't',
            (true, false, 0) => 'T',
            (true, true, _) => 's',
            (true, false, _) => 'S',
            (false, true, _) => 'x',
            (false, false, _) => '-',
        });
    }
    s
}

fn ls(st: &State, args: &[String], ctx: &Ctx<'_>, _: bool) -> Out {
    let (flags, operands) = split_flags(args);
    let long = flags.contains('l') || flags.contains('n') || flags.contains('g');
    let human = flags.contains('h');
    let all = flags.contains('a');
    let almost = flags.contains('A');
    let dir_only = flags.contains('d');
    let one = flags.contains('1') || !ctx.out_tty;
    let operands: Vec<String> = if operands.is_empty() {
        vec![".".into()]
    } else {
        operands.into_iter().cloned().collect()
    };
    let mut o = Out::default();
    let mut files: Vec<(String, Node, u64)> = Vec::new();
    let mut dirs: Vec<(String, String)> = Vec::new();
    for op in &operands {
        if o.full() || !st.budget.iterations(1) {
            break;
        }
        let path = path_of(st, op);
        match st.fs.lstat(&path) {
            None => {
                o.eline(&format!(
                    "ls: cannot access '{op}': No such file or directory"
                ));
                o.status = 2;
            }
            Some(n) => {
                let is_dir = st.fs.stat(&path).is_some_and(|t| t.kind == Kind::Dir);
                let follow = is_dir && (n.kind == Kind::Dir || !long);
                if dir_only || !follow {
                    files.push((op.clone(), n.clone(), links(st, &path, n)));
                } else if st.uid != 0 && path.starts_with("/root") {
                    o.eline(&format!(
                        "ls: cannot open directory '{op}': Permission denied"
                    ));
                    o.status = 2;
                } else {
                    dirs.push((op.clone(), path));
                }
            }
        }
    }
    // GNU ls lists its operands sorted: files first, then each directory.
    files.sort_by(|a, b| a.0.cmp(&b.0));
    dirs.sort_by(|a, b| a.0.cmp(&b.0));
    let headers = dirs.len() + files.len() > 1;
    let mut first = true;
    if !files.is_empty() {
        render(st, &mut o, &files, (long, human), one, false);
        first = false;
    }
    for (shown, path) in dirs {
        if o.full() || !st.budget.iterations(1) {
            break;
        }
        let mut entries: Vec<(String, Node, u64)> = Vec::new();
        if all {
            if let Some(n) = st.fs.stat(&path) {
                entries.push((".".into(), n.clone(), links(st, &path, n)));
            }
            let (parent, _) = fs::split(&path);
            if let Some(n) = st.fs.stat(parent) {
                entries.push(("..".into(), n.clone(), links(st, parent, n)));
            }
        }
        if let Ok(list) = st.fs.list(&path) {
            if !st
                .budget
                .iterations(u64::try_from(list.len()).unwrap_or(u64::MAX))
            {
                break;
            }
            for (name, n) in list {
                if name.starts_with('.') && !(all || almost) {
                    continue;
                }
                let child = if path == "/" {
                    format!("/{name}")
                } else {
                    format!("{path}/{name}")
                };
                let l = if long { links(st, &child, n) } else { 1 };
                entries.push((name, n.clone(), l));
            }
        }
        if !first {
            o.put(b"\n");
        }
        first = false;
        if headers {
            o.line(&format!("{shown}:"));
        }
        render(st, &mut o, &entries, (long, human), one, true);
    }
    o
}

/// A directory's link count: its own entry, its `.` and each subdirectory's `..`.
fn links(st: &State, path: &str, n: &Node) -> u64 {
    if n.kind != Kind::Dir {
        return 1;
    }
    let subdirs = st
        .fs
        .list(path)
        .map_or(0, |l| l.iter().filter(|(_, c)| c.kind == Kind::Dir).count());
    2 + subdirs as u64
}

/// 1K blocks a file occupies on ext4: whole 4 KiB blocks; links and devices none.
fn blocks(n: &Node) -> u64 {
    match n.kind {
        Kind::Symlink | Kind::CharDev => 0,
        _ => n.size().div_ceil(4096) * 4,
    }
}

/// `ls -h`'s sizes: powers of 1024, rounded up, one decimal below 10.
pub(super) fn human_size(n: u64) -> String {
    if n < 1024 {
        return n.to_string();
    }
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < 6 {
        v /= 1024.0;
        unit += 1;
    }
    let suffix = ["", "K", "M", "G", "T", "P", "E"][unit];
    if v < 10.0 {
        let t = (v * 10.0).ceil() / 10.0;
        if t >= 10.0 {
            format!("{}{suffix}", t.ceil() as u64)
        } else {
            format!("{t:.1}{suffix}")
        }
    } else {
        let t = v.ceil() as u64;
        if t >= 1024 && unit < 6 {
            format!("1.0{}", ["", "K", "M", "G", "T", "P", "E"][unit + 1])
        } else {
            format!("{t}{suffix}")
        }
    }
}

fn render(
    st: &State,
    o: &mut Out,
    entries: &[(String, Node, u64)],
    (long, human): (bool, bool),
    one: bool,
    total: bool,
) {
    if long {
        if total {
            let blocks: u64 = entries.iter().map(|(_, n, _)| blocks(n)).sum();
            if human {
                o.line(&format!("total {}", human_size(blocks * 1024)));
            } else {
                o.line(&format!("total {blocks}"));
            }
        }
        let size_of = |n: &Node| match n.kind {
            // Devices show their major and minor numbers; /dev/tty is (5, 0).
            Kind::CharDev => {
                let minor = n.size();
                format!("{}, {minor}", if minor == 0 { 5 } else { 1 })
            }
            _ if human => human_size(n.size()),
            _ => n.size().to_string(),
        };
        let size_w = entries
            .iter()
            .map(|(_, n, _)| size_of(n).len())
            .max()
            .unwrap_or(1);
        let links_w = entries
            .iter()
            .map(|(_, _, l)| l.to_string().len())
            .max()
            .unwrap_or(1);
        let user_w = entries
            .iter()
            .map(|(_, n, _)| st.user_name(n.uid).len())
            .max()
            .unwrap_or(4);
        for (name, n, links) in entries {
            let owner = st.user_name(n.uid);
            let mut line = format!(
                "{} {links:>links_w$} {owner:<user_w$} {owner:<user_w$} {:>size_w$} {} {name}",
                mode_string(n),
                size_of(n),
                ls_date(
                    super::sysinfo::local_seconds(st, n.mtime),
                    super::sysinfo::local_seconds(st, st.now)
                )
            );
            if n.kind == Kind::Symlink {
                let _ = write!(line, " -> {}", String::from_utf8_lossy(&n.data));
            }
            o.line(&line);
        }
        return;
    }
    if entries.is_empty() {
        return;
    }
    if one {
        for (name, _, _) in entries {
            o.line(name);
        }
        return;
    }
    // Columns, filled top to bottom as ls does, for an 80-column terminal.
    let width = entries
        .iter()
        .map(|(n, _, _)| n.chars().count())
        .max()
        .unwrap_or(1)
        + 2;
    let cols = (80 / width).max(1);
    let rows = entries.len().div_ceil(cols);
    for r in 0..rows {
        let mut line = String::new();
        for c in 0..cols {
            if let Some((name, _, _)) = entries.get(c * rows + r) {
                let _ = write!(line, "{name:<width$}");
            }
        }
        o.line(line.trim_end());
    }
}

fn cat(st: &State, args: &[String], ctx: &Ctx<'_>) -> Out {
    let (_, files) = split_flags(args);
    if files.is_empty() {
        return Out::ok(take(st, ctx.stdin, MAX_BUFFER).to_vec());
    }
    let mut o = Out::default();
    // Each operand is copied only as far as the buffer and the data budget allow,
    // before it is copied; once either is spent, cat stops as a killed cat would.
    for f in files {
        if o.full() || !st.budget.iterations(1) {
            break;
        }
        if f == "-" {
            let d = take(st, ctx.stdin, o.room());
            o.put(d);
            if d.len() < ctx.stdin.len() {
                o.cut = true;
                break;
            }
            continue;
        }
        let path = path_of(st, f);
        if st.uid != 0 && (path == "/etc/shadow" || path.starts_with("/root/")) {
            o.eline(&format!("cat: {f}: Permission denied"));
            o.status = 1;
            continue;
        }
        match st.fs.read(&path) {
            Ok(d) => {
                let part = take(st, d, o.room());
                o.put(part);
                if part.len() < d.len() {
                    o.cut = true;
                    break;
                }
            }
            Err(e) => {
                o.eline(&format!("cat: {f}: {}", e.text()));
                o.status = 1;
            }
        }
    }
    o
}

fn echo(args: &[String]) -> Out {
    let mut newline = true;
    let mut escapes = false;
    let mut i = 0;
    while let Some(a) = args.get(i) {
        let is_flag =
            a.len() > 1 && a.starts_with('-') && a[1..].chars().all(|c| "neE".contains(c));
        if !is_flag {
            break;
        }
        for c in a[1..].chars() {
            match c {
                'n' => newline = false,
                'e' => escapes = true,
                _ => escapes = false,
            }
        }
        i += 1;
    }
    let text = args[i..].join(" ");
    let mut out = if escapes {
        unescape(&text)
    } else {
        text.into_bytes()
    };
    if newline {
        out.push(b'\n');
    }
    Out::ok(out)
}

/// `echo -e` escapes: `\n`, `\t`, `\\`, `\xHH`, `\0NNN`, `\c` (stop).
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 >= b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        i += 1;
        match b[i] {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'a' => out.push(7),
            b'e' => out.push(0x1b),
            b'\\' => out.push(b'\\'),
            b'c' => return out,
            b'x' => {
                let hex: Vec<u8> = b[i + 1..]
                    .iter()
                    .take(2)
                    .take_while(|c| c.is_ascii_hexdigit())
                    .copied()
                    .collect();
                if hex.is_empty() {
                    out.extend_from_slice(b"\\x");
                } else {
                    let v = u8::from_str_radix(std::str::from_utf8(&hex).unwrap_or("0"), 16)
                        .unwrap_or(0);
                    out.push(v);
                    i += hex.len();
                }
            }
            b'0' => {
                let oct: Vec<u8> = b[i + 1..]
                    .iter()
                    .take(3)
                    .take_while(|c| (b'0'..=b'7').contains(c))
                    .copied()
                    .collect();
                let v =
                    u32::from_str_radix(std::str::from_utf8(&oct).unwrap_or("0"), 8).unwrap_or(0);
                out.push((v & 0xff) as u8);
                i += oct.len();
            }
            c => {
                out.push(b'\\');
                out.push(c);
            }
        }
        i += 1;
    }
    out
}

fn parse_mode(spec: &str, old: u32) -> Option<u32> {
    if !spec.is_empty() && spec.bytes().all(|b| (b'0'..=b'7').contains(&b)) && spec.len() <= 4 {
        return u32::from_str_radix(spec, 8).ok();
    }
    let mut mode = old;
    for clause in spec.split(',') {
        let op_at = clause.find(['+', '-', '='])?;
        let (who, rest) = clause.split_at(op_at);
        let op = rest.chars().next()?;
        let perms = &rest[1..];
        let mut mask = 0u32;
        for c in if who.is_empty() { "a" } else { who }.chars() {
            mask |= match c {
                'u' => 0o700,
                'g' => 0o070,
                'o' => 0o007,
                'a' => 0o777,
                _ => return None,
            };
        }
        let mut bits = 0u32;
        for c in perms.chars() {
            bits |= match c {
                'r' => 0o444,
                'w' => 0o222,
                'x' | 'X' => 0o111,
                's' | 't' => 0,
                _ => return None,
            };
        }
        let bits = bits & mask;
        mode = match op {
            '+' => mode | bits,
            '-' => mode & !bits,
            _ => (mode & !mask) | bits,
        };
    }
    Some(mode)
}

fn chmod(st: &mut State, args: &[String]) -> Out {
    // Modes like `-x` look like flags; take the first operand-like word as the mode.
    let words: Vec<&String> = args
        .iter()
        .filter(|a| !matches!(a.as_str(), "-R" | "-v" | "-f" | "--"))
        .collect();
    let Some((mode, files)) = words.split_first() else {
        return Out::fail(
            1,
            "chmod: missing operand\nTry 'chmod --help' for more information.\n",
        );
    };
    if files.is_empty() {
        return Out::fail(
            1,
            format!(
                "chmod: missing operand after '{mode}'\nTry 'chmod --help' for more information.\n"
            ),
        );
    }
    let mut o = Out::default();
    // The mode is parsed again for each file (it may depend on the file's mode).
    let per_file = 1 + u64::try_from(mode.len() / 16).unwrap_or(u64::MAX);
    for f in files {
        if o.full() || !st.budget.iterations(per_file) {
            break;
        }
        let path = path_of(st, f);
        let Some(old) = st.fs.stat(&path).map(|n| n.mode) else {
            o.eline(&format!(
                "chmod: cannot access '{f}': No such file or directory"
            ));
            o.status = 1;
            continue;
        };
        let Some(new) = parse_mode(mode, old) else {
            return Out::fail(
                1,
                format!(
                    "chmod: invalid mode: '{mode}'\nTry 'chmod --help' for more information.\n"
                ),
            );
        };
        if !may_write(st, &path) {
            o.eline(&format!(
                "chmod: changing permissions of '{f}': Operation not permitted"
            ));
            o.status = 1;
            continue;
        }
        if let Err(e) = st.fs.chmod(&path, new) {
            o.eline(&format!(
                "chmod: changing permissions of '{f}': {}",
                e.text()
            ));
            o.status = 1;
        }
    }
    o
}

fn chown(st: &State, name: &str, args: &[String]) -> Out {
    let (_, ops) = split_flags(args);
    let mut o = Out::default();
    for f in ops.iter().skip(1) {
        if st.fs.stat(&path_of(st, f)).is_none() {
            o.eline(&format!(
                "{name}: cannot access '{f}': No such file or directory"
            ));
            o.status = 1;
        }
    }
    o
}

fn rm(st: &mut State, args: &[String]) -> Out {
    let (flags, files) = split_flags(args);
    let recursive = flags.contains('r') || flags.contains('R');
    let force = flags.contains('f');
    if files.is_empty() && !force {
        return Out::fail(
            1,
            "rm: missing operand\nTry 'rm --help' for more information.\n",
        );
    }
    let mut o = Out::default();
    for f in files {
        let path = path_of(st, f);
        let r = if may_write(st, &path) {
            st.fs.remove(&path, recursive, false)
        } else {
            Err(FsError::Denied)
        };
        match r {
            Ok(()) => {}
            Err(FsError::NotFound) if force => {}
            Err(e) => {
                o.eline(&format!("rm: cannot remove '{f}': {}", e.text()));
                o.status = 1;
            }
        }
    }
    o
}

fn mkdir(st: &mut State, args: &[String]) -> Out {
    let (flags, dirs) = split_flags(args);
    let parents = flags.contains('p');
    if dirs.is_empty() {
        return Out::fail(
            1,
            "mkdir: missing operand\nTry 'mkdir --help' for more information.\n",
        );
    }
    let mut o = Out::default();
    let (uid, now) = (st.uid, st.now);
    for d in dirs {
        let path = path_of(st, d);
        if !may_write(st, &path) {
            o.eline(&format!(
                "mkdir: cannot create directory ‘{d}’: Permission denied"
            ));
            o.status = 1;
            continue;
        }
        let r = if parents {
            let mut acc = String::new();
            let mut r = Ok(());
            for part in path.split('/').filter(|p| !p.is_empty()) {
                acc.push('/');
                acc.push_str(part);
                match st.fs.stat(&acc) {
                    Some(n) if n.kind == Kind::Dir => {}
                    Some(_) => {
                        r = Err(FsError::Exists);
                        break;
                    }
                    None => {
                        if let Err(e) = st.fs.mkdir(&acc, uid, now) {
                            r = Err(e);
                            break;
                        }
                    }
                }
            }
            r
        } else {
            st.fs.mkdir(&path, uid, now)
        };
        if let Err(e) = r {
            o.eline(&format!(
                "mkdir: cannot create directory ‘{d}’: {}",
                e.text()
            ));
            o.status = 1;
        }
    }
    o
}

fn rmdir(st: &mut State, args: &[String]) -> Out {
    let (_, dirs) = split_flags(args);
    let mut o = Out::default();
    for d in dirs {
        let path = path_of(st, d);
        let r = match st.fs.stat(&path) {
            None => Err(FsError::NotFound),
            Some(n) if n.kind != Kind::Dir => Err(FsError::NotDir),
            Some(_) if !may_write(st, &path) => Err(FsError::Denied),
            Some(_) => st.fs.remove(&path, false, true),
        };
        if let Err(e) = r {
            o.eline(&format!("rmdir: failed to remove '{d}': {}", e.text()));
            o.status = 1;
        }
    }
    o
}

fn touch(st: &mut State, args: &[String]) -> Out {
    // `-r FILE` (timestomping: a dropped file dated as /bin/ls) and `-d @SECONDS` take a
    // value; the other flags change nothing here.
    let mut when = st.now;
    let mut files: Vec<&String> = Vec::new();
    let mut no_create = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-r" | "--reference" => {
                let Some(r) = it.next() else {
                    return Out::fail(
                        1,
                        "touch: option requires an argument -- 'r'\nTry 'touch --help' for more information.\n",
                    );
                };
                match st.fs.stat(&path_of(st, r)) {
                    Some(n) => when = n.mtime,
                    None => {
                        return Out::fail(
                            1,
                            format!(
                                "touch: failed to get attributes of '{r}': No such file or directory\n"
                            ),
                        );
                    }
                }
            }
            "-d" | "--date" => match it.next().and_then(|d| d.strip_prefix('@')?.parse().ok()) {
                Some(t) => when = t,
                None => return Out::fail(1, "touch: invalid date format\n"),
            },
            "-t" => {
                it.next();
            }
            "-c" | "--no-create" => no_create = true,
            f if f.starts_with('-') && f.len() > 1 => no_create |= f.contains('c'),
            _ => files.push(a),
        }
    }
    if files.is_empty() {
        return Out::fail(
            1,
            "touch: missing file operand\nTry 'touch --help' for more information.\n",
        );
    }
    let mut o = Out::default();
    let uid = st.uid;
    for f in files {
        let path = path_of(st, f);
        if no_create && st.fs.stat(&path).is_none() {
            continue;
        }
        let r = if may_write(st, &path) {
            st.fs.touch(&path, uid, when)
        } else {
            Err(FsError::Denied)
        };
        if let Err(e) = r {
            o.eline(&format!("touch: cannot touch '{f}': {}", e.text()));
            o.status = 1;
        }
    }
    o
}

fn cp_mv(st: &mut State, name: &str, args: &[String]) -> Out {
    let (_, ops) = split_flags(args);
    let [src, dst] = ops[..] else {
        return Out::fail(
            1,
            format!("{name}: missing file operand\nTry '{name} --help' for more information.\n"),
        );
    };
    let sp = path_of(st, src);
    let mut dp = path_of(st, dst);
    let data = match st.fs.stat(&sp) {
        None => {
            return Out::fail(
                1,
                format!("{name}: cannot stat '{src}': No such file or directory\n"),
            );
        }
        Some(n) if n.kind == Kind::Dir => {
            return Out::fail(
                1,
                format!("{name}: -r not specified; omitting directory '{src}'\n"),
            );
        }
        Some(n) => {
            let d = take(st, &n.data, MAX_BUFFER);
            if d.len() < n.data.len() {
                // Out of data budget: the line stops before anything is written.
                return Out::default();
            }
            (d.to_vec(), n.mode)
        }
    };
    if st.fs.stat(&dp).is_some_and(|n| n.kind == Kind::Dir) {
        let (_, base) = fs::split(&sp);
        dp = format!("{}/{base}", dp.trim_end_matches('/'));
    }
    if !may_write(st, &dp) {
        return Out::fail(
            1,
            format!("{name}: cannot create regular file '{dst}': Permission denied\n"),
        );
    }
    let (uid, now) = (st.uid, st.now);
    if let Err(e) = st
        .fs
        .write(&dp, &data.0, false, uid, now)
        .and_then(|()| st.fs.chmod(&dp, data.1))
    {
        return Out::fail(
            1,
            format!("{name}: cannot create regular file '{dst}': {}\n", e.text()),
        );
    }
    if name == "mv" {
        let _ = st.fs.remove(&sp, false, false);
    }
    Out::default()
}

fn history(st: &mut State, args: &[String]) -> Out {
    if args.first().is_some_and(|a| a == "-c") {
        st.history.clear();
        return Out::default();
    }
    let mut o = Out::default();
    for (i, h) in st.history.iter().enumerate() {
        if o.full() || !st.budget.iterations(1) {
            break;
        }
        o.line(&format!("{:>5}  {h}", i + 1));
    }
    o
}

fn which(st: &State, name: &str, args: &[String]) -> Out {
    let mut o = Out::default();
    let names: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    for n in names {
        if o.full() || !st.budget.iterations(1) {
            break;
        }
        let found = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin"]
            .iter()
            .map(|d| format!("{d}/{n}"))
            .find(|p| st.fs.stat(p).is_some_and(|x| x.kind == Kind::File));
        match (found, name) {
            (Some(p), "type") => o.line(&format!("{n} is {p}")),
            (Some(p), _) => o.line(&p),
            (None, "type") => {
                o.eline(&format!("{}type: {n}: not found", st.err_prefix));
                o.status = 1;
            }
            (None, _) => o.status = 1,
        }
    }
    o
}

// ---- text filters ---------------------------------------------------------------------

/// The input of a filter: its file operands, or stdin.
fn filter_input(st: &State, name: &str, files: &[&String], ctx: &Ctx<'_>) -> (Vec<u8>, Out) {
    let mut o = Out::default();
    if files.is_empty() {
        return (take(st, ctx.stdin, MAX_BUFFER).to_vec(), o);
    }
    // Joined only up to MAX_BUFFER and the data budget, checked before each copy.
    let mut data = Vec::new();
    for f in files {
        if data.len() >= MAX_BUFFER || o.full() || !st.budget.iterations(1) {
            break;
        }
        match st.fs.read(&path_of(st, f)) {
            Ok(d) => {
                let part = take(st, d, MAX_BUFFER - data.len());
                data.extend_from_slice(part);
                if part.len() < d.len() {
                    o.cut = true;
                    break;
                }
            }
            Err(e) => {
                o.eline(&format!("{name}: {f}: {}", e.text()));
                o.status = if name == "grep" { 2 } else { 1 };
            }
        }
    }
    (data, o)
}

/// GNU wc (coreutils 9.1): counts in the order lines, words, characters, bytes, whatever
/// the order of the flags; one line per operand and a `total` line for several; the
/// column width from the total size of the regular files named (`compute_number_width`):
/// 1 for a single count of a single operand, at least 7 when a non-regular file (a pipe,
/// a directory, a device) is among them; operands that cannot be opened do not count.
fn wc(st: &State, args: &[String], ctx: &Ctx<'_>) -> Out {
    let (flags, files) = split_flags(args);
    let any = |c: char| flags.contains(c);
    let (lines, words, chars, bytes) = if any('l') || any('w') || any('m') || any('c') {
        (any('l'), any('w'), any('m'), any('c'))
    } else {
        (true, true, false, true)
    };
    let wanted = [lines, words, chars, bytes].iter().filter(|&&b| b).count();
    let count = |data: &[u8]| -> [usize; 4] {
        let text = String::from_utf8_lossy(data);
        [
            data.iter().filter(|&&b| b == b'\n').count(),
            text.split_whitespace().count(),
            text.chars()
                .filter(|&c| c != char::REPLACEMENT_CHARACTER)
                .count(),
            data.len(),
        ]
    };
    let render = |c: &[usize; 4], width: usize, name: Option<&str>| -> String {
        let shown: Vec<String> = [lines, words, chars, bytes]
            .iter()
            .zip(c)
            .filter(|(on, _)| **on)
            .map(|(_, n)| format!("{n:>width$}"))
            .collect();
        match name {
            Some(n) => format!("{} {n}", shown.join(" ")),
            None => shown.join(" "),
        }
    };
    if files.is_empty() {
        let (data, mut o) = filter_input(st, "wc", &files, ctx);
        // Standard input is a pipe here: not a regular file.
        let width = if wanted == 1 { 1 } else { 7 };
        o.line(&render(&count(&data), width, None));
        return o;
    }
    let nodes: Vec<Option<&Node>> = files.iter().map(|f| st.fs.stat(&path_of(st, f))).collect();
    let width = if wanted == 1 && files.len() == 1 {
        1
    } else {
        let minimum = if nodes.iter().flatten().any(|n| n.kind != Kind::File) {
            7
        } else {
            1
        };
        let total: u64 = nodes
            .iter()
            .flatten()
            .filter(|n| n.kind == Kind::File)
            .map(|n| n.size())
            .sum();
        total.to_string().len().max(minimum)
    };
    let mut o = Out::default();
    let mut sum = [0usize; 4];
    for (f, node) in files.iter().zip(&nodes) {
        if o.full() || !st.budget.iterations(1) {
            break;
        }
        let c = match node {
            None => {
                o.eline(&format!("wc: {f}: No such file or directory"));
                o.status = 1;
                continue;
            }
            Some(n) if n.kind == Kind::Dir => {
                o.eline(&format!("wc: {f}: Is a directory"));
                o.status = 1;
                [0; 4]
            }
            Some(n) => {
                let d = take(st, &n.data, MAX_BUFFER);
                if d.len() < n.data.len() {
                    o.cut = true;
                }
                count(d)
            }
        };
        for (t, v) in sum.iter_mut().zip(c) {
            *t += v;
        }
        o.line(&render(&c, width, Some(f)));
    }
    if files.len() > 1 {
        o.line(&render(&sum, width, Some("total")));
    }
    o
}

fn sh(st: &mut State, name: &str, args: &[String], ctx: &Ctx<'_>) -> Out {
    if let Some(i) = args.iter().position(|a| a == "-c") {
        let Some(script) = args.get(i + 1) else {
            return Out::fail(2, format!("{name}: -c: option requires an argument\n"));
        };
        // A nested shell is one more level of the line's budget, and its script (made
        // by expansion, so possibly far longer than a typed line) runs on what is left
        // of the same budget: re-parsing cannot multiply the work.
        if !st.budget.enter() {
            return Out::default();
        }
        let mut io = Io::new(false, MAX_BUFFER);
        // `sh -c SCRIPT NAME ARGS…`: NAME is the child's `$0` (else the shell's name).
        let arg0 = args.get(i + 2).cloned().unwrap_or_else(|| name.to_owned());
        let saved = st.arg0.replace(arg0);
        super::exec::run_child(st, script, args.get(i + 3..).unwrap_or(&[]), &mut io);
        st.arg0 = saved;
        st.budget.leave();
        // `exit` inside `sh -c` ends that shell only.
        let status = st.exit.take().unwrap_or(st.status);
        let cut = io.capped;
        let (out, err) = io.into_parts();
        return Out {
            out,
            err,
            status,
            cut,
        };
    }
    // The script is stdin (`… | base64 -d | sh`) or a file operand (`sh setup.sh`); the
    // words after the file are its positional parameters.
    let (script, params, arg0) = match args.iter().position(|a| !a.starts_with('-')) {
        None => (
            take(st, ctx.stdin, MAX_BUFFER).to_vec(),
            &[][..],
            name.to_owned(),
        ),
        Some(i) => {
            let f = &args[i];
            let path = path_of(st, f);
            match st.fs.stat(&path).map(|n| n.kind) {
                Some(Kind::Dir) if name == "sh" || name == "dash" => {
                    return Out::fail(2, format!("{name}: 0: cannot open {f}: Is a directory\n"));
                }
                Some(Kind::Dir) => {
                    return Out::fail(126, format!("{name}: {f}: Is a directory\n"));
                }
                Some(_) => (
                    take(st, st.fs.read(&path).unwrap_or(b""), MAX_BUFFER).to_vec(),
                    &args[i + 1..],
                    f.clone(),
                ),
                None if name == "sh" || name == "dash" => {
                    return Out::fail(2, format!("{name}: 0: cannot open {f}: No such file\n"));
                }
                None => {
                    return Out::fail(127, format!("{name}: {f}: No such file or directory\n"));
                }
            }
        }
    };
    // A binary (a dropped ELF, a stub) is not a script: the shell fails on its bytes.
    if script.contains(&0) {
        return Out::fail(
            2,
            format!("{name}: 1: Syntax error: word unexpected (expecting \")\")\n"),
        );
    }
    let script = String::from_utf8_lossy(&script).into_owned();
    if script.trim().is_empty() || !st.budget.enter() {
        return Out::default();
    }
    let mut io = Io::new(false, MAX_BUFFER);
    let saved = st.arg0.replace(arg0);
    super::exec::run_child(st, &script, params, &mut io);
    st.arg0 = saved;
    st.budget.leave();
    let status = st.exit.take().unwrap_or(st.status);
    let cut = io.capped;
    let (out, err) = io.into_parts();
    Out {
        out,
        err,
        status,
        cut,
    }
}

// ---- downloads ------------------------------------------------------------------------

/// The host and port of a URL as wget/curl would connect to them.
fn url_host(url: &str) -> (String, u16) {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => ("http".into(), url),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let default_port = match scheme.as_str() {
        "https" => 443,
        "ftp" => 21,
        "tftp" => 69,
        _ => 80,
    };
    if let Some(v6) = authority.strip_prefix('[') {
        let (h, p) = v6.split_once(']').unwrap_or((v6, ""));
        let port = p
            .strip_prefix(':')
            .and_then(|p| p.parse().ok())
            .unwrap_or(default_port);
        return (h.to_owned(), port);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() => {
            (h.to_owned(), p.parse().unwrap_or(default_port))
        }
        _ => (authority.to_owned(), default_port),
    }
}

fn is_ip(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok()
}

fn record_download(st: &mut State, url: &str, tool: &str) {
    // Per line, not only per command: a script of thousands of `wget`s must not become
    // thousands of events.
    if !st.budget.download() {
        return;
    }
    st.effects.push(Effect::Download {
        url: clamp(url, MAX_FIELD_LEN),
        tool: tool.to_owned(),
    });
}

/// Operands of a command whose options in `with_value` (short letters, long names)
/// take a value.
fn operands<'a>(
    args: &'a [String],
    short_with_value: &str,
    long_with_value: &[&str],
) -> (String, Vec<&'a String>) {
    let mut flags = String::new();
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(long) = a.strip_prefix("--") {
            if !long.contains('=') && long_with_value.contains(&long) {
                it.next();
            }
            flags.push_str(&format!(" {long}"));
        } else if a.starts_with('-') && a.len() > 1 {
            let letters = &a[1..];
            for (i, c) in letters.char_indices() {
                flags.push(c);
                if short_with_value.contains(c) {
                    // The value is the rest of this word, or the next word.
                    if i + c.len_utf8() == letters.len() {
                        it.next();
                    }
                    break;
                }
            }
        } else {
            out.push(a);
        }
    }
    (flags, out)
}

fn wget(st: &mut State, args: &[String]) -> Out {
    let (flags, urls) = operands(
        args,
        "OoaPUetTwlADRIXQ",
        &[
            "output-document",
            "output-file",
            "append-output",
            "directory-prefix",
            "user-agent",
            "header",
            "tries",
            "timeout",
            "wait",
            "user",
            "password",
            "post-data",
            "body-data",
            "method",
            "referer",
            "execute",
            "limit-rate",
            "bind-address",
        ],
    );
    if urls.is_empty() {
        return Out::fail(
            1,
            "wget: missing URL\nUsage: wget [OPTION]... [URL]...\n\nTry `wget --help' for more options.\n",
        );
    }
    let quiet = flags.contains('q') || flags.contains(" quiet");
    let mut o = Out::default();
    for url in urls.into_iter().take(MAX_DOWNLOADS_PER_COMMAND) {
        record_download(st, url, "wget");
        if quiet {
            o.status = 4;
            continue;
        }
        let shown = if url.contains("://") {
            url.clone()
        } else {
            format!("http://{url}")
        };
        let (host, port) = url_host(url);
        o.eline(&format!(
            "--{}--  {shown}",
            datetime_iso(super::sysinfo::local_seconds(st, st.now))
        ));
        if is_ip(&host) {
            o.eline(&format!(
                "Connecting to {host}:{port}... failed: Connection refused."
            ));
        } else {
            o.eline(&format!(
                "Resolving {host} ({host})... failed: Temporary failure in name resolution."
            ));
            o.eline(&format!("wget: unable to resolve host address '{host}'"));
        }
        o.status = 4;
    }
    o
}

/// curl's progress meter as it stands when a transfer fails before any byte.
const CURL_METER_HEAD: &str = "  % Total    % Received % Xferd  Average Speed   Time    Time     Time  Current\n                                 Dload  Upload   Total   Spent    Left  Speed\n";
const CURL_METER_ZERO: &str =
    "\r  0     0    0     0    0     0      0      0 --:--:-- --:--:-- --:--:--     0";

fn curl(st: &mut State, args: &[String], out_tty: bool) -> Out {
    let (flags, urls) = operands(
        args,
        "oXHdAuexmwTFbcKrCEUyYzDQt",
        &[
            "output",
            "request",
            "header",
            "data",
            "data-raw",
            "data-binary",
            "data-urlencode",
            "user-agent",
            "user",
            "referer",
            "proxy",
            "max-time",
            "connect-timeout",
            "write-out",
            "upload-file",
            "form",
            "cookie",
            "cookie-jar",
            "config",
            "range",
            "retry",
            "output-dir",
            "resolve",
            "interface",
        ],
    );
    if urls.is_empty() {
        return Out::fail(
            2,
            "curl: try 'curl --help' or 'curl --manual' for more information\n",
        );
    }
    // -s hides errors unless -S brings them back.
    let _ = flags;
    // Short letters of one word, up to one that takes a value (`-fsSLo file`).
    const CURL_VALUE: &str = "oXHdAuexmwTFbcKrCEUyYzDQt";
    let short = |c: char| {
        args.iter()
            .filter(|a| a.starts_with('-') && !a.starts_with("--"))
            .any(|a| {
                a[1..]
                    .chars()
                    .scan(false, |stop, l| {
                        let seen = !*stop;
                        *stop |= CURL_VALUE.contains(l);
                        seen.then_some(l)
                    })
                    .any(|l| l == c)
            })
    };
    let long = |name: &str| args.iter().any(|a| a.strip_prefix("--") == Some(name));
    let quiet = short('s') || long("silent");
    let silent = quiet && !(short('S') || long("show-error"));
    // The meter shows (on stderr) unless -s, whenever the body does not go to a
    // terminal: a pipe, a file (-o, -O), an exec session's channel.
    let to_file = short('o') || short('O') || long("output") || long("remote-name");
    let meter = !quiet && (to_file || !out_tty);
    let mut o = Out::default();
    for url in urls.into_iter().take(MAX_DOWNLOADS_PER_COMMAND) {
        record_download(st, url, "curl");
        let (host, port) = url_host(url);
        let (status, msg) = if is_ip(&host) {
            (
                7,
                format!(
                    "curl: (7) Failed to connect to {host} port {port} after 0 ms: Couldn't connect to server"
                ),
            )
        } else {
            (6, format!("curl: (6) Could not resolve host: {host}"))
        };
        if meter {
            let mut m = String::from(CURL_METER_HEAD);
            m.push_str(CURL_METER_ZERO);
            // A refused connection updates the meter once more, and ends its line.
            if status == 7 {
                m.push_str(CURL_METER_ZERO);
                m.push('\n');
            }
            o.err.extend_from_slice(m.as_bytes());
        }
        if !silent {
            o.eline(&msg);
        }
        o.status = status;
    }
    o
}

/// Tools Debian does not ship but droppers try anyway: the URL is still worth keeping.
fn not_found_but_record(st: &mut State, name: &str, args: &[String]) -> Out {
    let words: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let url = match name {
        // tftp -g -r FILE HOST | tftp HOST -c get FILE
        "tftp" => {
            let file = args
                .iter()
                .position(|a| a == "-r")
                .and_then(|i| args.get(i + 1))
                .or_else(|| {
                    args.iter()
                        .position(|a| a == "get")
                        .and_then(|i| args.get(i + 1))
                });
            let host = words
                .iter()
                .find(|w| Some(**w) != file && w.as_str() != "get" && w.as_str() != "-c");
            host.map(|h| format!("tftp://{h}/{}", file.map_or("", |f| f.as_str())))
        }
        // ftpget [-u U -p P] HOST LOCAL REMOTE
        "ftpget" => {
            let mut rest = Vec::new();
            let mut it = args.iter();
            while let Some(a) = it.next() {
                if matches!(a.as_str(), "-u" | "-p" | "-P") {
                    it.next();
                } else if !a.starts_with('-') {
                    rest.push(a);
                }
            }
            match rest[..] {
                [h, _, r, ..] => Some(format!("ftp://{h}/{r}")),
                [h, l] => Some(format!("ftp://{h}/{l}")),
                _ => None,
            }
        }
        // busybox wget URL, busybox tftp …
        _ => match args.first().map(String::as_str) {
            Some("wget") | Some("curl") => {
                let tool = args[0].clone();
                let _ = if tool == "wget" {
                    wget(st, &args[1..])
                } else {
                    curl(st, &args[1..], false)
                };
                None
            }
            _ => None,
        },
    };
    if let Some(u) = url {
        record_download(st, &u, name);
    }
    Out::fail(127, format!("{}{name}: command not found\n", st.err_prefix))
}

// ---- time -----------------------------------------------------------------------------

/// (year, month 1-12, day, weekday 0=Sunday) of a Unix day number.
fn civil(days: i64) -> (i64, u32, u32, u32) {
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    let wd = (days + 4).rem_euclid(7) as u32;
    (y, m, d, wd)
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn hms(t: i64) -> (i64, i64, i64) {
    let s = t.rem_euclid(86_400);
    (s / 3600, (s % 3600) / 60, s % 60)
}

fn datetime_iso(t: i64) -> String {
    let (y, m, d, _) = civil(t.div_euclid(86_400));
    let (hh, mm, ss) = hms(t);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}")
}

/// `Feb 10 11:06` for the last six months, `Feb 10  2023` before.
fn ls_date(t: i64, now: i64) -> String {
    let (y, m, d, _) = civil(t.div_euclid(86_400));
    let (hh, mm, _) = hms(t);
    let mon = MONTHS[(m - 1) as usize];
    if (now - t).abs() < 183 * 86_400 {
        format!("{mon} {d:2} {hh:02}:{mm:02}")
    } else {
        format!("{mon} {d:2}  {y}")
    }
}
