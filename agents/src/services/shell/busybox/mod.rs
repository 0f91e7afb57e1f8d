//! The BusyBox persona of the emulated shell: what a SOHO router's telnet login lands
//! in. The grammar, expansion and execution engine are the Debian shell's (`exec`,
//! `expand`); this module swaps what makes a shell *BusyBox's*: the applet table and
//! `busybox` multi-call entry (`/bin/busybox ECCHI` → `ECCHI: applet not found`), ash's
//! prompt, banner, variables and error words (`-sh: foo: not found`), BusyBox-format
//! `ls`/`ps`/`dd`/`wc`/`free`/`df`, and a router's root filesystem whose `/bin/echo`
//! is a MIPS ELF of the SoC the persona's router model has (see `device`).
//!
//! A shell runs as BusyBox when its [`Profile`] carries a [`Router`]: [`wanted`] decides
//! that from the node's services (the `router` profile: an admin page on lighttpd and
//! no Debian server program beside it).

pub(crate) mod applets;
pub(crate) mod device;
pub(crate) mod rootfs;

use super::commands::{self, Ctx, Out};
use super::fs::{self, BaseFs, Fs, FsError, Kind};
use super::{Profile, Shell, ShellLimits, State};
use crate::persona::{NodePersona, Program};
pub(crate) use device::Router;
use std::sync::Arc;

/// What an applet needs besides the session's state.
pub(crate) struct Env {
    pub router: Arc<Router>,
    /// ash's prefix of its own errors: `-sh: ` at the login shell, `sh: ` for `sh -c`.
    pub prefix: &'static str,
}

/// Whether a node's shell is a router's BusyBox: it serves a lighttpd admin page and
/// runs none of the Debian server's programs (the `router` profile, with SSH or not).
pub(crate) fn wanted(node: &NodePersona) -> bool {
    let l = node.listeners();
    l.iter().any(|x| x.program == Program::Lighttpd)
        && !l.iter().any(|x| {
            matches!(
                x.program,
                Program::Apache
                    | Program::Vsftpd
                    | Program::Redis
                    | Program::Mysqld
                    | Program::Mariadb
                    | Program::Postfix
            )
        })
}

/// The profile of a BusyBox router service.
pub(crate) fn profile(node: &Arc<NodePersona>, hostname: &str) -> Arc<Profile> {
    let p = node.persona();
    let router = Router::of(p);
    // The persona's own name, as every other service of the node shows it (the login
    // prompt, the certificate, the realism check's consistency test).
    let hostname = if hostname.is_empty() {
        p.hostname.clone()
    } else {
        hostname.to_owned()
    };
    let base = BaseFs::from_nodes(
        Arc::clone(node),
        rootfs::nodes(&router, &hostname, p.boot_time),
    );
    Arc::new(Profile {
        hostname,
        node: Arc::clone(node),
        base: Arc::new(base),
        busybox: Some(Arc::new(router)),
    })
}

/// Makes a new session a BusyBox login: every account of the firmware is uid 0, the
/// environment is what busybox `login` sets, no bash aliases.
pub(super) fn adapt(sh: &mut Shell, limits: &ShellLimits) {
    if sh.st.profile.busybox.is_none() {
        return;
    }
    let st = &mut sh.st;
    st.fs = Fs::new(Arc::clone(&st.profile.base), limits.overlay);
    st.uid = 0;
    st.home = if st.user == "root" { "/root" } else { "/" }.to_owned();
    st.cwd = st.home.clone();
    st.oldpwd = st.home.clone();
    let mut env = vec![
        ("USER".to_owned(), st.user.clone()),
        ("LOGNAME".to_owned(), st.user.clone()),
        ("HOME".to_owned(), st.home.clone()),
        ("SHELL".to_owned(), "/bin/sh".to_owned()),
        (
            "PATH".to_owned(),
            "/bin:/sbin:/usr/bin:/usr/sbin".to_owned(),
        ),
    ];
    if st.tty {
        env.push(("TERM".to_owned(), "vt102".to_owned()));
    }
    st.env = env;
    st.aliases.clear();
    st.err_prefix = if st.tty { "-sh: " } else { "sh: " };
}

/// A PID as the router shows it: the node's PID counter is a Debian server's (in the
/// hundreds of thousands), a router's 2.6 kernel counts below 32768.
pub(crate) fn small_pid(p: u32) -> u32 {
    if p == 0 { 0 } else { 600 + p % 31_000 }
}

/// ash's line editing has no bracketed paste: readline's switches come out.
pub(super) fn strip_paste(out: &mut Vec<u8>) {
    for seq in [super::line_editor::PASTE_OFF, super::line_editor::PASTE_ON] {
        while let Some(i) = out.windows(seq.len()).position(|w| w == seq) {
            out.drain(i..i + seq.len());
        }
    }
}

/// ash's prompt with no PS1 of the firmware's: `# ` for root.
pub(super) fn prompt(st: &State) -> String {
    if st.uid == 0 { "# " } else { "$ " }.to_owned()
}

/// What an interactive ash prints before its first prompt.
pub(super) fn greeting(r: &Router) -> String {
    format!(
        "\n\nBusyBox v{} ({}) built-in shell (ash)\nEnter 'help' for a list of built-in commands.\n\n",
        device::VERSION,
        r.build
    )
}

/// The variables ash has without anyone setting them (`None`: unset).
pub(super) fn fixed_var(st: &State, name: &str) -> Option<String> {
    Some(match name {
        "PPID" => st.parent_pid().to_string(),
        "IFS" => " \t\n".into(),
        "PS1" => prompt(st),
        "PS2" => "> ".into(),
        "PS4" => "+ ".into(),
        "OPTIND" => "1".into(),
        "OLDPWD" if st.oldpwd != st.cwd => st.oldpwd.clone(),
        _ => return None,
    })
}

/// Whether `path` (normalized) lies on the firmware's read-only squashfs: everything
/// but the tmpfs mounts (`/var`, where `/tmp` leads, and `/dev`).
pub(crate) fn read_only(st: &State, path: &str) -> bool {
    if st.profile.busybox.is_none() {
        return false;
    }
    let (parent, name) = fs::split(path);
    let parent = st.fs.resolve(parent);
    let full = if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    };
    let full = if st.fs.lstat(&full).is_some_and(|n| n.kind == Kind::Symlink) {
        st.fs.resolve(&full)
    } else {
        full
    };
    !["/var", "/dev", "/proc", "/sys"]
        .iter()
        .any(|m| full == *m || full.starts_with(&format!("{m}/")))
}

/// The first operand of a file applet that would change the read-only root, with the
/// applet's words for it.
fn read_only_error(st: &State, name: &str, args: &[String]) -> Option<String> {
    let ops: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let targets: Vec<&String> = match name {
        "cp" | "mv" | "ln" => ops.last().copied().into_iter().collect(),
        "chmod" => ops.iter().skip(1).copied().collect(),
        "rm" | "mkdir" | "touch" | "rmdir" => ops,
        _ => return None,
    };
    let f = targets
        .into_iter()
        .find(|f| read_only(st, &fs::normalize(&st.cwd, &st.home, f)))?;
    let why = "Read-only file system";
    Some(match name {
        "rm" => format!("rm: can't remove '{f}': {why}\n"),
        "mkdir" => format!("mkdir: can't create directory '{f}': {why}\n"),
        "rmdir" => format!("rmdir: '{f}': {why}\n"),
        "cp" => format!("cp: can't create '{f}': {why}\n"),
        "mv" => format!(
            "mv: can't rename '{}': {why}\n",
            args.first().map_or("", |a| a.as_str())
        ),
        other => format!("{other}: {f}: {why}\n"),
    })
}

/// ash's words when a redirection's file cannot be opened.
pub(super) fn redirect_error(st: &State, f: &str, e: FsError, write: bool) -> Option<String> {
    st.profile.busybox.as_ref()?;
    let p = st.err_prefix;
    if write && read_only(st, &fs::normalize(&st.cwd, &st.home, f)) {
        return Some(format!("{p}can't create {f}: Read-only file system\n"));
    }
    Some(if write {
        let why = match e {
            FsError::NotFound => "nonexistent directory",
            other => other.text(),
        };
        format!("{p}can't create {f}: {why}\n")
    } else {
        let why = match e {
            FsError::NotFound => "no such file",
            FsError::IsDir => "Is a directory",
            other => other.text(),
        };
        format!("{p}can't open {f}: {why}\n")
    })
}

/// ash's words for a script it cannot parse.
pub(super) fn syntax_message(st: &State, e: &super::parse::Syntax) -> Option<String> {
    use super::parse::{Open, Syntax};
    st.profile.busybox.as_ref()?;
    let what = match e {
        Syntax::Unexpected { token, .. } => format!("unexpected \"{token}\""),
        Syntax::Incomplete(Open::Matching('\'' | '"' | '`')) => "unterminated quoted string".into(),
        Syntax::Incomplete(Open::Matching(c)) => {
            format!("unexpected end of file (expecting \"{c}\")")
        }
        Syntax::Incomplete(Open::Eof) => "unexpected end of file".into(),
        Syntax::TooDeep => "nesting too deep".into(),
    };
    Some(format!("{}syntax error: {what}\n", st.err_prefix))
}

/// `Usage: NAME …` after a bad option (the short form; `--help` gives the long one).
pub(crate) fn short_usage(name: &str) -> String {
    let u = match name {
        "wc" => "wc [-clwL] [FILE]...",
        "uname" => "uname [-amnrspvio]",
        "sleep" => "sleep [N]...",
        "expr" => "expr EXPRESSION",
        _ => "",
    };
    format!(
        "BusyBox v{} multi-call binary.\n\nUsage: {u}\n",
        device::VERSION
    )
}

/// Runs one simple command as BusyBox's ash would: an applet (by name, by a link's path
/// or as `busybox APPLET`), an ash builtin, a script or a dropped program; anything
/// else is `not found`.
pub(super) fn command(st: &mut State, argv: &[String], ctx: &Ctx<'_>) -> Out {
    let Some(router) = st.profile.busybox.clone() else {
        return Out::default();
    };
    let env = Env {
        router,
        prefix: st.err_prefix,
    };
    let mut argv = argv;
    // `busybox X` and `nohup X` run the rest: followed in a loop over sub-slices, each
    // hop charged to the line's budget as one command.
    let mut by_name = false;
    let mut hops = 0u32;
    let out = loop {
        if argv.is_empty() {
            break Out::default();
        }
        let word = argv[0].as_str();
        let name: String = if by_name {
            word.rsplit('/').next().unwrap_or(word).to_owned()
        } else if word.contains('/') {
            match by_path(st, &env, argv, ctx) {
                Ok(n) => n,
                Err(o) => break o,
            }
        } else {
            word.to_owned()
        };
        by_name = false;
        let next = match name.as_str() {
            "busybox" => match argv.get(1).map(String::as_str) {
                None => {
                    break Out::ok(applets::busybox_usage(&env.router.banner(), &names(), 80));
                }
                Some("--list") => {
                    let mut o = Out::default();
                    for n in names() {
                        o.line(n);
                    }
                    break o;
                }
                Some("--list-full") => {
                    let mut o = Out::default();
                    for a in applets::APPLETS {
                        let dir = match a.at {
                            applets::Where::Bin => "bin/",
                            applets::Where::Sbin => "sbin/",
                            applets::Where::UsrBin => "usr/bin/",
                            applets::Where::UsrSbin => "usr/sbin/",
                            applets::Where::Nowhere => "",
                        };
                        o.line(&format!("{dir}{}", a.name));
                    }
                    break o;
                }
                Some(a) => {
                    let base = a.rsplit('/').next().unwrap_or(a);
                    if !applets::is_applet(base) && base != "busybox" {
                        break Out::fail(127, format!("{base}: applet not found\n"));
                    }
                    by_name = true;
                    &argv[1..]
                }
            },
            "nohup" if argv.len() > 1 => &argv[1..],
            _ => break applet(st, &env, &name, &argv[1..], ctx),
        };
        if !st.budget.enter() || !st.budget.command() {
            break Out::default();
        }
        hops += 1;
        argv = next;
    };
    for _ in 0..hops {
        st.budget.leave();
    }
    out
}

/// The applet names, as `busybox` lists them.
fn names() -> Vec<&'static str> {
    applets::APPLETS.iter().map(|a| a.name).collect()
}

/// A command given by path: an applet's link runs the applet; a script runs in a
/// child shell; a dropped program of the router's architecture "runs" (silently); any
/// other file fails as ash fails on it.
fn by_path(st: &mut State, env: &Env, argv: &[String], ctx: &Ctx<'_>) -> Result<String, Out> {
    let word = argv[0].as_str();
    let path = fs::normalize(&st.cwd, &st.home, word);
    let p = env.prefix;
    let Some(n) = st.fs.stat(&path) else {
        return Err(Out::fail(127, format!("{p}{word}: not found\n")));
    };
    if n.kind == Kind::Dir || n.mode & 0o111 == 0 {
        return Err(Out::fail(126, format!("{p}{word}: Permission denied\n")));
    }
    let resolved = st.fs.resolve(&path);
    let base = word.rsplit('/').next().unwrap_or(word).to_owned();
    if resolved == "/bin/busybox" {
        if base == "busybox" || applets::is_applet(&base) {
            return Ok(base);
        }
        return Err(Out::fail(127, format!("{base}: applet not found\n")));
    }
    let data = &n.data;
    if data.starts_with(b"\x7fELF") {
        let ours = env.router.elf();
        if data.as_ref() == ours.as_slice() {
            // One of the firmware's daemons started again: it forks into the
            // background and is quiet.
            return Err(Out::default());
        }
        let le = env.router.soc.little_endian;
        let machine = data.get(18..20).map(|m| {
            if data.get(5) == Some(&1) {
                u16::from_le_bytes([m[0], m[1]])
            } else {
                u16::from_be_bytes([m[0], m[1]])
            }
        });
        let order_ok = data.get(5) == Some(&if le { 1 } else { 2 });
        if machine == Some(8) && order_ok {
            return Err(Out::default());
        }
        // The kernel refuses it (ENOEXEC) and ash reads it as a script.
        return Err(Out::fail(
            2,
            format!("{word}: line 1: syntax error: unexpected word (expecting \")\")\n"),
        ));
    }
    let args: Vec<String> = argv.to_vec();
    Err(commands::builtin(st, "sh", &args, ctx))
}

/// One applet or ash builtin by name.
fn applet(st: &mut State, env: &Env, name: &str, args: &[String], ctx: &Ctx<'_>) -> Out {
    if !applets::is_applet(name) && !applets::ASH_BUILTINS.contains(&name) && name != "busybox" {
        return Out::fail(127, format!("{}{name}: not found\n", env.prefix));
    }
    let wants_help = args.first().is_some_and(|a| a == "--help");
    if wants_help && let Some(u) = applets::usage(env, name) {
        let mut o = Out::fail(0, u);
        o.status = 0;
        return o;
    }
    // Too few operands: the applet's usage, as `bb_show_usage` prints it.
    let needed = match name {
        "rm" | "mkdir" | "touch" | "rmdir" => 1,
        "cp" | "mv" | "ln" | "chmod" => 2,
        _ => 0,
    };
    let operands = args
        .iter()
        .filter(|a| !a.starts_with('-') || a.len() == 1)
        .count();
    let rm_f = name == "rm" && args.iter().any(|a| a.starts_with('-') && a.contains('f'));
    if operands < needed
        && !rm_f
        && let Some(u) = applets::usage(env, name)
    {
        return Out::fail(1, u);
    }
    if let Some(e) = read_only_error(st, name, args) {
        return Out::fail(1, e);
    }
    match name {
        "ls" => applets::ls(st, args, ctx),
        "ps" => applets::ps(st),
        "dd" => applets::dd(st, env, args, ctx),
        "wc" => applets::wc(st, args, ctx),
        "cat" if args.first().is_some_and(|a| a == "-n") => {
            let o = applets::rewrite_cat(commands::builtin(st, "cat", &args[1..], ctx));
            applets::number_lines(o)
        }
        "cat" => applets::rewrite_cat(commands::builtin(st, "cat", args, ctx)),
        // `\c` ends the output there, newline included.
        "echo"
            if args
                .first()
                .is_some_and(|a| a.starts_with("-") && a.contains('e'))
                && args.iter().any(|a| a.contains("\\c")) =>
        {
            let mut o = commands::builtin(st, "echo", args, ctx);
            if o.out.last() == Some(&b'\n') {
                o.out.pop();
            }
            o
        }
        "expr" => applets::expr(args),
        "hexdump" => applets::hexdump(st, args, ctx),
        "uname" => applets::uname(st, env, args),
        "free" => applets::free(env),
        "df" => applets::df(env),
        "mount" if args.is_empty() => applets::mount(env),
        "uptime" => applets::uptime(st),
        "whoami" => Out::ok("root\n"),
        "id" if args.is_empty() => Out::ok("uid=0(root) gid=0(root)\n"),
        "hostname" if args.is_empty() => Out::ok(format!("{}\n", st.profile.hostname)),
        "kill" => applets::kill(st, env, args),
        "wget" => applets::wget(st, env, args),
        "tftp" => applets::tftp(st, env, args),
        "help" => Out::ok(applets::help()),
        "cd" | "chdir" => cd(st, env, args, ctx),
        "type" => type_of(st, args, false),
        "command" if args.first().is_some_and(|a| a == "-v") => type_of(st, &args[1..], true),
        "sleep" => match args.first() {
            None => Out::fail(1, short_usage("sleep")),
            Some(a)
                if a.trim_end_matches(['s', 'm', 'h', 'd'])
                    .parse::<f64>()
                    .is_ok() =>
            {
                Out::default()
            }
            Some(a) => Out::fail(1, format!("sleep: invalid number '{a}'\n")),
        },
        "which" => {
            let mut o = Out::default();
            for a in args {
                match applets::APPLETS.iter().find(|x| x.name == a) {
                    Some(x) if x.at != applets::Where::Nowhere => {
                        let dir = match x.at {
                            applets::Where::Bin => "/bin",
                            applets::Where::Sbin => "/sbin",
                            applets::Where::UsrBin => "/usr/bin",
                            _ => "/usr/sbin",
                        };
                        o.line(&format!("{dir}/{a}"));
                    }
                    _ => o.status = 1,
                }
            }
            o
        }
        // A nested interactive shell would read the terminal: it ends at once here.
        "sh" | "ash" if args.is_empty() => Out::default(),
        "sh" | "ash" => commands::builtin(st, "sh", args, ctx),
        "reboot" | "halt" | "poweroff" | "sync" | "crond" | "telnetd" | "syslogd" | "klogd"
        | "udhcpc" | "getty" | "init" | "mdev" | "login" => Out::default(),
        _ => {
            let o = commands::builtin(st, name, args, ctx);
            if o.status == 127 && o.out.is_empty() && o.err.ends_with(b"command not found\n") {
                // An applet the Debian shell has no emulation of: it does nothing here.
                return Out::default();
            }
            applets::rewrite_errors(name, o)
        }
    }
}

/// Where an applet's link is, as `type` and `command -v` name it.
fn applet_path(name: &str) -> Option<String> {
    let a = applets::APPLETS.iter().find(|x| x.name == name)?;
    let dir = match a.at {
        applets::Where::Bin => "/bin",
        applets::Where::Sbin => "/sbin",
        applets::Where::UsrBin => "/usr/bin",
        applets::Where::UsrSbin => "/usr/sbin",
        applets::Where::Nowhere => return None,
    };
    Some(format!("{dir}/{name}"))
}

/// ash's `type NAME…` (`brief`: `command -v`).
fn type_of(st: &State, args: &[String], brief: bool) -> Out {
    let mut o = Out::default();
    for n in args {
        let is_builtin = applets::ASH_BUILTINS.contains(&n.as_str());
        let is_fn = st.functions.iter().any(|(f, _)| f == n);
        let alias = st.aliases.iter().find(|(a, _)| a == n);
        match (brief, alias, is_fn, is_builtin, applet_path(n)) {
            (true, Some((a, v)), ..) => o.line(&format!("alias {a}='{v}'")),
            (false, Some((a, v)), ..) => o.line(&format!("{a} is an alias for {v}")),
            (true, None, true, ..) | (true, None, false, true, _) => o.line(n),
            (false, None, true, ..) => o.line(&format!("{n} is a function")),
            (false, None, false, true, _) => {
                let special = matches!(
                    n.as_str(),
                    "." | ":"
                        | "break"
                        | "continue"
                        | "eval"
                        | "exec"
                        | "exit"
                        | "export"
                        | "readonly"
                        | "return"
                        | "set"
                        | "shift"
                        | "source"
                        | "times"
                        | "trap"
                        | "unset"
                );
                if special {
                    o.line(&format!("{n} is a special shell builtin"));
                } else {
                    o.line(&format!("{n} is a shell builtin"));
                }
            }
            (true, None, false, false, Some(p)) => o.line(&p),
            (false, None, false, false, Some(p)) => o.line(&format!("{n} is {p}")),
            (true, None, false, false, None) => o.status = 127,
            (false, None, false, false, None) => {
                o.line(&format!("{n}: not found"));
                o.status = 127;
            }
        }
    }
    o
}

/// ash's `cd`: its own words for a target that is missing or not a directory.
fn cd(st: &mut State, env: &Env, args: &[String], ctx: &Ctx<'_>) -> Out {
    let target = match args.first().map(String::as_str) {
        None => st.home.clone(),
        Some("-") => st.oldpwd.clone(),
        Some(t) => t.to_owned(),
    };
    let path = fs::normalize(&st.cwd, &st.home, &target);
    let why = match st.fs.stat(&path) {
        None => Some("No such file or directory"),
        Some(n) if n.kind != Kind::Dir => Some("Not a directory"),
        _ => None,
    };
    if let Some(why) = why {
        let at = if st.tty {
            String::new()
        } else {
            "line 0: ".into()
        };
        return Out::fail(
            2,
            format!("{}cd: {at}can't cd to {target}: {why}\n", env.prefix),
        );
    }
    let mut o = commands::builtin(st, "cd", &[path], ctx);
    if args.first().is_some_and(|a| a == "-") {
        o.out = format!("{}\n", st.cwd).into_bytes();
    }
    o
}

#[cfg(test)]
mod tests;
