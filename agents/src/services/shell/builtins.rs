//! Shell builtins whose texts intruders see and fingerprint: `type`, `enable`,
//! `printf`, `jobs`, `kill`, `read`, `export`/`declare`, `set`, `shift`, `local`,
//! `alias`/`unalias`, `unset`, `test`/`[`, `let`, `true`/`false`/`:`, and the
//! evaluation of `[[ ]]`. Texts follow bash 5.2 on Debian 12.

use super::commands::{Ctx, Io, Out};
use super::exec::Stop;
use super::expand::{self, Res};
use super::{State, fs};
use brush_parser::ast::{BinaryPredicate, ExtendedTestExpr, TestExpr, UnaryPredicate};
use std::fmt::Write as _;

/// bash 5.2's builtins, in `enable`'s order.
pub(super) const BUILTINS: [&str; 61] = [
    ".",
    ":",
    "[",
    "alias",
    "bg",
    "bind",
    "break",
    "builtin",
    "caller",
    "cd",
    "command",
    "compgen",
    "complete",
    "compopt",
    "continue",
    "declare",
    "dirs",
    "disown",
    "echo",
    "enable",
    "eval",
    "exec",
    "exit",
    "export",
    "false",
    "fc",
    "fg",
    "getopts",
    "hash",
    "help",
    "history",
    "jobs",
    "kill",
    "let",
    "local",
    "logout",
    "mapfile",
    "popd",
    "printf",
    "pushd",
    "pwd",
    "read",
    "readarray",
    "readonly",
    "return",
    "set",
    "shift",
    "shopt",
    "source",
    "suspend",
    "test",
    "times",
    "trap",
    "true",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "wait",
];

pub(super) const KEYWORDS: [&str; 22] = [
    "if", "then", "else", "elif", "fi", "case", "esac", "for", "select", "while", "until", "do",
    "done", "in", "function", "time", "{", "}", "!", "[[", "]]", "coproc",
];

/// Most arguments `test` takes (its parser is recursive).
const MAX_TEST_ARGS: usize = 64;

/// Runs a builtin of this module; `None` when `name` is not one.
pub(super) fn run(st: &mut State, name: &str, args: &[String], ctx: &Ctx<'_>) -> Option<Out> {
    let _ = ctx;
    Some(match name {
        "type" => type_(st, args),
        "enable" => enable(args),
        "printf" => printf(st, args),
        "jobs" => jobs(st),
        "kill" => kill(st, args),
        "export" => export(st, args),
        "declare" | "typeset" | "readonly" => declare(st, name, args),
        "set" => set(st, args),
        "shift" => shift(st, args),
        "local" => local(st, args),
        "alias" => alias(st, args),
        "unalias" => unalias(st, args),
        "unset" => unset(st, args),
        "test" | "[" => test(st, name, args),
        "let" => let_(st, args),
        "hash" => hash(st, args),
        "ulimit" => ulimit(st, args),
        "true" | ":" | "wait" => Out::default(),
        "false" => Out {
            status: 1,
            ..Out::default()
        },
        _ => return None,
    })
}

/// The first executable file named `name` on `$PATH`.
fn on_path(st: &State, name: &str) -> Option<String> {
    let path = st.lookup("PATH").unwrap_or_default();
    path.split(':').filter(|d| !d.is_empty()).find_map(|d| {
        let p = format!("{}/{name}", d.trim_end_matches('/'));
        st.fs
            .stat(&p)
            .is_some_and(|n| n.kind == super::fs::Kind::File && n.mode & 0o111 != 0)
            .then_some(p)
    })
}

/// `hash`: a fresh `bash -c` has remembered nothing; names are looked up on `$PATH`
/// (and remembered only for that one command, as the table dies with the shell).
fn hash(st: &State, args: &[String]) -> Out {
    let names: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if args.iter().any(|a| a == "-r") && names.is_empty() {
        return Out::default();
    }
    if names.is_empty() {
        return Out::ok("hash: hash table empty\n");
    }
    let mut o = Out::default();
    for n in names {
        if n.contains('/') {
            continue;
        }
        if on_path(st, n).is_none() {
            o.err
                .extend_from_slice(format!("{}hash: {n}: not found\n", st.err_prefix).as_bytes());
            o.status = 1;
        }
    }
    o
}

/// Unlimited (`RLIM_INFINITY`).
const UNLIMITED: Option<u64> = None;

/// `fs.nr_open`: root may raise `-n` up to this and no further.
const NR_OPEN: u64 = 1_048_576;

/// `ulimit`'s rows: (the `-a` label, option, soft, hard) of a Debian 12 session started
/// by sshd under systemd (systemd's `LimitNOFILE=1024:524288`, `LimitMEMLOCK=8M`, core
/// files off but allowed); the process and signal limits follow the machine's memory
/// as the kernel sets them (`max_threads / 2`).
fn ulimit_rows(st: &State) -> [(&'static str, char, Option<u64>, Option<u64>); 17] {
    let mem_kib = st.profile.node.persona().mem_kib;
    let nproc = Some(mem_kib / 128 / 2);
    let mut rows = [
        (
            "real-time non-blocking time  (microseconds, -R)",
            'R',
            UNLIMITED,
            UNLIMITED,
        ),
        (
            "core file size              (blocks, -c)",
            'c',
            Some(0),
            UNLIMITED,
        ),
        (
            "data seg size               (kbytes, -d)",
            'd',
            UNLIMITED,
            UNLIMITED,
        ),
        (
            "scheduling priority                 (-e)",
            'e',
            Some(0),
            Some(0),
        ),
        (
            "file size                   (blocks, -f)",
            'f',
            UNLIMITED,
            UNLIMITED,
        ),
        (
            "pending signals                     (-i)",
            'i',
            nproc,
            nproc,
        ),
        (
            "max locked memory           (kbytes, -l)",
            'l',
            Some(8192),
            Some(8192),
        ),
        (
            "max memory size             (kbytes, -m)",
            'm',
            UNLIMITED,
            UNLIMITED,
        ),
        (
            "open files                          (-n)",
            'n',
            Some(1024),
            Some(524_288),
        ),
        (
            "pipe size                (512 bytes, -p)",
            'p',
            Some(8),
            Some(8),
        ),
        (
            "POSIX message queues         (bytes, -q)",
            'q',
            Some(819_200),
            Some(819_200),
        ),
        (
            "real-time priority                  (-r)",
            'r',
            Some(0),
            Some(0),
        ),
        (
            "stack size                  (kbytes, -s)",
            's',
            Some(8192),
            UNLIMITED,
        ),
        (
            "cpu time                   (seconds, -t)",
            't',
            UNLIMITED,
            UNLIMITED,
        ),
        (
            "max user processes                  (-u)",
            'u',
            nproc,
            nproc,
        ),
        (
            "virtual memory              (kbytes, -v)",
            'v',
            UNLIMITED,
            UNLIMITED,
        ),
        (
            "file locks                          (-x)",
            'x',
            UNLIMITED,
            UNLIMITED,
        ),
    ];
    for (c, soft, hard) in &st.ulimits {
        if let Some(r) = rows.iter_mut().find(|r| r.1 == *c) {
            r.2 = *soft;
            r.3 = *hard;
        }
    }
    rows
}

/// `ulimit` as bash's builtin over setrlimit(2): a value sets the soft and hard limit
/// (`-S`/`-H` one of them) and is kept for the session; a soft limit above the hard one
/// is `Invalid argument`, raising a hard limit without root (or `-n` past `nr_open`
/// even as root) `Operation not permitted`; the pipe size cannot be set.
fn ulimit(st: &mut State, args: &[String]) -> Out {
    let rows = ulimit_rows(st);
    let mut letters = Vec::new();
    let mut value = None;
    let (mut soft_only, mut hard_only) = (false, false);
    for a in args {
        if let Some(f) = a.strip_prefix('-').filter(|f| !f.is_empty()) {
            for c in f.chars() {
                match c {
                    'H' => hard_only = true,
                    'S' => soft_only = true,
                    'a' => letters.extend(rows.iter().map(|r| r.1)),
                    c if rows.iter().any(|r| r.1 == c) => letters.push(c),
                    c => {
                        return Out::fail(
                            2,
                            format!(
                                "{}ulimit: -{c}: invalid option\nulimit: usage: ulimit [-SHabcdefiklmnpqrstuvxPRT] [limit]\n",
                                st.err_prefix
                            ),
                        );
                    }
                }
            }
        } else {
            value = Some(a.as_str());
        }
    }
    // With both or neither of -S and -H a value sets both; shown is the soft one.
    let (set_soft, set_hard) = match (soft_only, hard_only) {
        (true, false) => (true, false),
        (false, true) => (false, true),
        _ => (true, true),
    };
    let show_hard = hard_only && !soft_only;
    if let Some(v) = value {
        let c = letters.last().copied().unwrap_or('f');
        let Some(&(label, _, soft, hard)) = rows.iter().find(|r| r.1 == c) else {
            return Out::default();
        };
        let new = match v {
            "unlimited" => UNLIMITED,
            "hard" => hard,
            "soft" => soft,
            n => match n.parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    return Out::fail(1, format!("{}ulimit: {v}: invalid number\n", st.err_prefix));
                }
            },
        };
        let new_soft = if set_soft { new } else { soft };
        let new_hard = if set_hard { new } else { hard };
        let above = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (None, Some(_)) => true,
            (Some(a), Some(b)) => a > b,
            _ => false,
        };
        let what = label.split("  ").next().unwrap_or(label).trim();
        let error = if c == 'p' || above(new_soft, new_hard) {
            Some("Invalid argument")
        } else if (above(new_hard, hard) && st.uid != 0)
            || (c == 'n' && above(new_hard, Some(NR_OPEN)))
        {
            Some("Operation not permitted")
        } else {
            None
        };
        if let Some(e) = error {
            return Out::fail(
                1,
                format!(
                    "{}ulimit: {what}: cannot modify limit: {e}\n",
                    st.err_prefix
                ),
            );
        }
        if st.ulimits.len() < 32 {
            st.ulimits.retain(|(x, _, _)| *x != c);
            st.ulimits.push((c, new_soft, new_hard));
        }
        return Out::default();
    }
    if letters.is_empty() {
        letters.push('f');
    }
    let all = args.iter().any(|a| a.starts_with('-') && a.contains('a')) || letters.len() > 1;
    let mut o = Out::default();
    for r in rows.iter().filter(|r| letters.contains(&r.1)) {
        let v = if show_hard { r.3 } else { r.2 };
        let v = v.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
        if all {
            o.line(&format!("{} {v}", r.0));
        } else {
            o.line(&v);
        }
    }
    o
}

fn err(st: &State, status: i32, text: &str) -> Out {
    Out::fail(status, format!("{}{text}\n", st.err_prefix))
}

fn valid_name(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The file a command name resolves to through `PATH`.
pub(super) fn path_lookup(st: &State, name: &str) -> Option<String> {
    let path = st.lookup("PATH").unwrap_or_default();
    path.split(':').filter(|d| !d.is_empty()).find_map(|d| {
        let p = format!("{}/{name}", d.trim_end_matches('/'));
        st.fs
            .stat(&p)
            .filter(|n| n.kind == fs::Kind::File && n.mode & 0o111 != 0)
            .map(|_| p)
    })
}

fn type_(st: &State, args: &[String]) -> Out {
    let mut o = Out::default();
    let mut flags = String::new();
    let names: Vec<&String> = args
        .iter()
        .filter(|a| {
            if a.starts_with('-') && a.len() > 1 {
                flags.push_str(&a[1..]);
                false
            } else {
                true
            }
        })
        .collect();
    let terse = flags.contains('t');
    let path_only = flags.contains('p') || flags.contains('P');
    for n in names {
        if !st.budget.iterations(1) {
            break;
        }
        let n = n.as_str();
        let found = if let Some((_, v)) = st
            .aliases
            .iter()
            .find(|(k, _)| k == n)
            .filter(|_| st.tty && !path_only)
        {
            if terse {
                "alias".into()
            } else {
                format!("{n} is aliased to `{v}'")
            }
        } else if KEYWORDS.contains(&n) && !path_only {
            if terse {
                "keyword".into()
            } else {
                format!("{n} is a shell keyword")
            }
        } else if let Some((_, body)) = st
            .functions
            .iter()
            .find(|(k, _)| k == n)
            .filter(|_| !path_only)
        {
            if terse {
                "function".into()
            } else {
                format!("{n} is a function\n{}", function_text(n, body))
            }
        } else if BUILTINS.contains(&n) && !path_only {
            if terse {
                "builtin".into()
            } else {
                format!("{n} is a shell builtin")
            }
        } else if let Some(p) = path_lookup(st, n) {
            if terse {
                "file".into()
            } else if path_only {
                p
            } else {
                format!("{n} is {p}")
            }
        } else {
            if !terse && !path_only {
                o.eline(&format!("{}type: {n}: not found", st.err_prefix));
            }
            o.status = 1;
            continue;
        };
        o.line(found.trim_end_matches('\n'));
    }
    o
}

/// `a | b && c` spaced as bash prints it.
fn and_or_text(ao: &brush_parser::ast::AndOrList) -> String {
    use brush_parser::ast::{AndOr, Pipeline};
    let pipe = |p: &Pipeline| {
        let cmds: Vec<String> = p.seq.iter().map(ToString::to_string).collect();
        format!("{}{}", if p.bang { "! " } else { "" }, cmds.join(" | "))
    };
    let mut s = pipe(&ao.first);
    for next in &ao.additional {
        match next {
            AndOr::And(p) => s.push_str(&format!(" && {}", pipe(p))),
            AndOr::Or(p) => s.push_str(&format!(" || {}", pipe(p))),
        }
    }
    s
}

/// A function as `type` and `declare -f` print it: bash re-indents the body, one
/// command a line, four spaces, `;` between them.
fn function_text(name: &str, body: &brush_parser::ast::FunctionBody) -> String {
    use brush_parser::ast::{CompoundCommand, SeparatorOperator};
    if let CompoundCommand::BraceGroup(g) = &body.0
        && body.1.is_none()
    {
        let items: Vec<String> = g
            .list
            .0
            .iter()
            .map(|i| match i.1 {
                SeparatorOperator::Async => format!("{} &", and_or_text(&i.0)),
                SeparatorOperator::Sequence => and_or_text(&i.0),
            })
            .collect();
        return format!("{name} () \n{{ \n    {}\n}}", items.join(";\n    "));
    }
    format!("{name} () \n{body}")
}

fn enable(args: &[String]) -> Out {
    let mut o = Out::default();
    if args.iter().all(|a| a.starts_with('-')) {
        for b in BUILTINS {
            o.line(&format!("enable {b}"));
        }
    }
    o
}

fn jobs(st: &mut State) -> Out {
    let mut o = Out::default();
    let n = st.done_jobs.len();
    for (i, (id, cmd)) in st.done_jobs.drain(..).enumerate() {
        let mark = if i + 1 == n {
            '+'
        } else if i + 2 == n {
            '-'
        } else {
            ' '
        };
        o.line(&format!("[{id}]{mark}  {:<24}{cmd}", "Done"));
    }
    o
}

const SIGNALS: [&str; 31] = [
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
    "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
    "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "POLL", "PWR", "SYS",
];

fn signal(s: &str) -> Option<u32> {
    if let Ok(n) = s.parse::<u32>() {
        return (n <= 64).then_some(n);
    }
    let s = s.trim_start_matches("SIG");
    SIGNALS
        .iter()
        .position(|x| x.eq_ignore_ascii_case(s))
        .map(|i| i as u32 + 1)
}

fn kill(st: &mut State, args: &[String]) -> Out {
    let mut sig = 15u32;
    let mut i = 0;
    let mut o = Out::default();
    if args.is_empty() {
        return err(
            st,
            2,
            "kill: usage: kill [-s sigspec | -n signum | -sigspec] pid | jobspec ... or kill -l [sigspec]",
        );
    }
    while let Some(a) = args.get(i) {
        match a.as_str() {
            "-l" | "-L" => {
                let mut line = String::new();
                for (k, s) in SIGNALS.iter().enumerate() {
                    let _ = write!(line, "{:>2}) SIG{s:<8}", k + 1);
                    if k % 5 == 4 {
                        o.line(line.trim_end());
                        line.clear();
                    } else {
                        line.push('\t');
                    }
                }
                if !line.is_empty() {
                    o.line(line.trim_end());
                }
                return o;
            }
            "-s" | "-n" => {
                match args.get(i + 1).and_then(|s| signal(s)) {
                    Some(s) => sig = s,
                    None => {
                        let s = args.get(i + 1).cloned().unwrap_or_default();
                        return err(st, 1, &format!("kill: {s}: invalid signal specification"));
                    }
                }
                i += 2;
            }
            "--" => {
                i += 1;
                break;
            }
            a if a.starts_with('-') && a.len() > 1 => {
                match signal(&a[1..]) {
                    Some(s) => sig = s,
                    None => {
                        return err(
                            st,
                            1,
                            &format!("kill: {}: invalid signal specification", &a[1..]),
                        );
                    }
                }
                i += 1;
            }
            _ => break,
        }
    }
    for t in &args[i.min(args.len())..] {
        if let Some(job) = t.strip_prefix('%') {
            o.eline(&format!("{}kill: %{job}: no such job", st.err_prefix));
            o.status = 1;
            continue;
        }
        let Ok(pid) = t.parse::<i64>() else {
            o.eline(&format!(
                "{}kill: {t}: arguments must be process or job IDs",
                st.err_prefix
            ));
            o.status = 1;
            continue;
        };
        let me = i64::from(st.shell_pid());
        if pid == me || pid == -me || pid == 0 || pid == -1 {
            // The shell itself: SIGKILL always ends it; an interactive bash ignores
            // SIGTERM and SIGINT.
            let fatal = match sig {
                0 => false,
                9 => true,
                15 | 2 | 3 => !st.tty,
                20..=22 | 17 | 18 | 19 | 23 | 28 => false,
                _ => true,
            };
            if fatal {
                st.exit = Some(128 + sig as i32);
                st.killed = true;
                return o;
            }
            continue;
        }
        let known = (1..1000).contains(&pid)
            || pid == i64::from(st.parent_pid())
            || pid == i64::from(st.parent_pid()) - 1
            || st.last_bg == Some(pid as u32);
        if !known {
            o.eline(&format!("{}kill: ({pid}) - No such process", st.err_prefix));
            o.status = 1;
        } else if st.uid != 0 && pid < 1000 {
            o.eline(&format!(
                "{}kill: ({pid}) - Operation not permitted",
                st.err_prefix
            ));
            o.status = 1;
        }
    }
    o
}

/// A value as `declare -p` and `export -p` print it.
fn dquote(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        if matches!(c, '"' | '\\' | '$' | '`') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

fn exported_sorted(st: &State) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = st
        .env
        .iter()
        .filter(|(k, _)| !st.unexported.contains(k))
        .cloned()
        .collect();
    // bash exports PWD and SHLVL itself (and OLDPWD, valueless until a `cd`).
    for (k, val) in [
        ("PWD", Some(st.cwd.clone())),
        ("SHLVL", Some("1".to_owned())),
        ("OLDPWD", st.lookup("OLDPWD")),
    ] {
        if !st.env.iter().any(|(n, _)| n == k) {
            v.push((k.to_owned(), val.unwrap_or_else(|| "\u{0}".to_owned())));
        }
    }
    v.sort();
    v
}

fn export(st: &mut State, args: &[String]) -> Out {
    let mut o = Out::default();
    let unexport = args.iter().any(|a| a == "-n");
    let names: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if names.is_empty() {
        for (k, v) in exported_sorted(st) {
            if v == "\u{0}" {
                o.line(&format!("declare -x {k}"));
            } else {
                o.line(&format!("declare -x {k}={}", dquote(&v)));
            }
        }
        return o;
    }
    for a in names {
        let (k, v) = match a.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (a.as_str(), None),
        };
        if !valid_name(k) {
            o.eline(&format!(
                "{}export: `{a}': not a valid identifier",
                st.err_prefix
            ));
            o.status = 1;
            continue;
        }
        if let Some(v) = v {
            st.set_var(k, v);
        }
        if unexport {
            if !st.unexported.iter().any(|x| x == k) {
                st.unexported.push(k.to_owned());
            }
        } else {
            st.unexported.retain(|x| x != k);
        }
    }
    o
}

fn declare(st: &mut State, name: &str, args: &[String]) -> Out {
    let mut o = Out::default();
    let flags: String = args
        .iter()
        .filter(|a| a.starts_with('-') || a.starts_with('+'))
        .flat_map(|a| a[1..].chars())
        .collect();
    let names: Vec<&String> = args
        .iter()
        .filter(|a| !a.starts_with('-') && !a.starts_with('+'))
        .collect();
    if flags.contains('F') || flags.contains('f') {
        for (f, body) in &st.functions {
            if names.is_empty() || names.contains(&f) {
                if flags.contains('F') {
                    o.line(&format!("declare -f {f}"));
                } else {
                    o.line(&function_text(f, body));
                }
            }
        }
        return o;
    }
    if names.is_empty() {
        if flags.contains('x') {
            for (k, v) in exported_sorted(st) {
                if v == "\u{0}" {
                    o.line(&format!("declare -x {k}"));
                } else {
                    o.line(&format!("declare -x {k}={}", dquote(&v)));
                }
            }
            return o;
        }
        if flags.contains('p') || name == "readonly" {
            let mut all = st.env.clone();
            all.sort();
            for (k, v) in all {
                let f = if st.unexported.contains(&k) {
                    "--"
                } else {
                    "-x"
                };
                o.line(&format!("declare {f} {k}={}", dquote(&v)));
            }
            return o;
        }
        return set(st, &[]);
    }
    for a in names {
        let (k, v) = match a.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (a.as_str(), None),
        };
        if !valid_name(k) {
            o.eline(&format!(
                "{}{name}: `{a}': not a valid identifier",
                st.err_prefix
            ));
            o.status = 1;
            continue;
        }
        if flags.contains('p') {
            match st.lookup(k) {
                Some(v) => {
                    let f = if st.unexported.iter().any(|x| x == k) {
                        "--"
                    } else {
                        "-x"
                    };
                    o.line(&format!("declare {f} {k}={}", dquote(&v)));
                }
                None => {
                    o.eline(&format!("{}declare: {k}: not found", st.err_prefix));
                    o.status = 1;
                }
            }
            continue;
        }
        if st.functions_running > 0 && !flags.contains('g') && name != "readonly" {
            local_one(st, k);
        }
        match v {
            Some(v) => st.assign(k, v),
            None if st.lookup(k).is_none() => {}
            None => {}
        }
        if flags.contains('x') {
            st.unexported.retain(|x| x != k);
        }
        if name == "readonly" || flags.contains('r') {
            st.readonly.push(k.to_owned());
        }
    }
    o
}

/// A value as `set` prints it: bare when it is plain, else single-quoted.
fn set_quote(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_/.:-,+@%=".contains(c))
    {
        v.to_owned()
    } else if v.chars().any(|c| c.is_control()) {
        format!("$'{}'", v.escape_default())
    } else {
        format!("'{}'", v.replace('\'', "'\\''"))
    }
}

fn set(st: &mut State, args: &[String]) -> Out {
    let mut o = Out::default();
    if args.is_empty() {
        let mut all = st.env.clone();
        all.sort();
        for (k, v) in all {
            o.line(&format!("{k}={}", set_quote(&v)));
        }
        for (f, body) in &st.functions {
            o.line(&function_text(f, body));
        }
        return o;
    }
    let mut i = 0;
    while let Some(a) = args.get(i) {
        if a == "--" {
            i += 1;
            st.positional = args[i..].to_vec();
            return o;
        }
        if a == "-o" || a == "+o" {
            match args.get(i + 1).map(String::as_str) {
                Some("errexit") => st.errexit = a == "-o",
                Some(_) => {}
                None => {
                    o.line(&format!(
                        "errexit        \t{}",
                        if st.errexit { "on" } else { "off" }
                    ));
                }
            }
            i += 2;
            continue;
        }
        if let Some(f) = a.strip_prefix('-').or_else(|| a.strip_prefix('+')) {
            let on = a.starts_with('-');
            for c in f.chars() {
                if c == 'e' {
                    st.errexit = on;
                } else if !"xuvfnhBCHPTbkmpt".contains(c) {
                    return Out::fail(
                        2,
                        format!(
                            "{}set: -{c}: invalid option\nset: usage: set [-abefhkmnptuvxBCEHPT] [-o option-name] [--] [-] [arg ...]\n",
                            st.err_prefix
                        ),
                    );
                }
            }
            i += 1;
            continue;
        }
        st.positional = args[i..].to_vec();
        break;
    }
    o
}

fn shift(st: &mut State, args: &[String]) -> Out {
    let n = match args.first() {
        None => 1,
        Some(a) => match a.parse::<usize>() {
            Ok(n) => n,
            Err(_) => return err(st, 1, &format!("shift: {a}: numeric argument required")),
        },
    };
    if n > st.positional.len() {
        return Out {
            status: 1,
            ..Out::default()
        };
    }
    st.positional.drain(..n);
    Out::default()
}

/// Saves a variable's value in the running function's frame (once).
fn local_one(st: &mut State, k: &str) {
    let old = st.lookup(k);
    if let Some(frame) = st.locals.last_mut()
        && !frame.iter().any(|(n, _)| n == k)
        && frame.len() < 256
    {
        frame.push((k.to_owned(), old));
    }
}

fn local(st: &mut State, args: &[String]) -> Out {
    let mut o = Out::default();
    for a in args.iter().filter(|a| !a.starts_with('-')) {
        let (k, v) = match a.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (a.as_str(), None),
        };
        if !valid_name(k) {
            o.eline(&format!(
                "{}local: `{a}': not a valid identifier",
                st.err_prefix
            ));
            o.status = 1;
            continue;
        }
        local_one(st, k);
        st.assign(k, v.unwrap_or(""));
    }
    o
}

fn alias(st: &mut State, args: &[String]) -> Out {
    let mut o = Out::default();
    let args: Vec<&String> = args.iter().filter(|a| *a != "-p").collect();
    if args.is_empty() {
        let mut all = st.aliases.clone();
        all.sort();
        for (k, v) in all {
            o.line(&format!("alias {k}='{}'", v.replace('\'', "'\\''")));
        }
        return o;
    }
    for a in args {
        match a.split_once('=') {
            Some((k, v)) => {
                if let Some(e) = st.aliases.iter_mut().find(|(n, _)| n == k) {
                    e.1 = v.to_owned();
                } else if st.aliases.len() < 64 {
                    st.aliases
                        .push((k.to_owned(), honeybee_proto::event::clamp(v, 1024)));
                }
            }
            None => match st.aliases.iter().find(|(n, _)| n == a) {
                Some((k, v)) => o.line(&format!("alias {k}='{}'", v.replace('\'', "'\\''"))),
                None => {
                    o.eline(&format!("{}alias: {a}: not found", st.err_prefix));
                    o.status = 1;
                }
            },
        }
    }
    o
}

fn unalias(st: &mut State, args: &[String]) -> Out {
    let mut o = Out::default();
    if args.is_empty() {
        return err(st, 2, "unalias: usage: unalias [-a] name [name ...]");
    }
    for a in args {
        if a == "-a" {
            st.aliases.clear();
            continue;
        }
        let before = st.aliases.len();
        st.aliases.retain(|(n, _)| n != a);
        if st.aliases.len() == before {
            o.eline(&format!("{}unalias: {a}: not found", st.err_prefix));
            o.status = 1;
        }
    }
    o
}

fn unset(st: &mut State, args: &[String]) -> Out {
    let mut o = Out::default();
    let functions = args.iter().any(|a| a == "-f");
    for a in args.iter().filter(|a| !a.starts_with('-')) {
        if functions {
            st.functions.retain(|(n, _)| n != a);
            continue;
        }
        if st.readonly(a) {
            o.eline(&format!(
                "{}unset: {a}: cannot unset: readonly variable",
                st.err_prefix
            ));
            o.status = 1;
            continue;
        }
        if st.lookup(a).is_some() || st.env.iter().any(|(k, _)| k == a) {
            st.unset_var(a);
        } else {
            st.functions.retain(|(n, _)| n != a);
        }
    }
    o
}

fn let_(st: &mut State, args: &[String]) -> Out {
    if args.is_empty() {
        return err(st, 1, "let: expression expected");
    }
    let mut last = 0;
    for a in args {
        match super::arith::eval(st, a) {
            Ok(v) => last = v,
            Err(m) => return err(st, 1, &format!("let: {m}")),
        }
    }
    Out {
        status: i32::from(last == 0),
        ..Out::default()
    }
}

/// `read`: one line from `input`; returns what it printed and how many bytes it used.
pub(super) fn read(st: &mut State, args: &[String], input: &[u8]) -> (Out, usize) {
    let mut raw = false;
    let mut names = Vec::new();
    let mut nchars: Option<usize> = None;
    let mut delim = b'\n';
    let mut i = 0;
    while let Some(a) = args.get(i) {
        match a.as_str() {
            "-r" => raw = true,
            "-s" | "-e" => {}
            "-p" | "-t" | "-u" | "-a" | "-i" => i += 1,
            "-n" | "-N" => {
                nchars = args.get(i + 1).and_then(|n| n.parse().ok());
                i += 1;
            }
            "-d" => {
                delim = args.get(i + 1).and_then(|d| d.bytes().next()).unwrap_or(0);
                i += 1;
            }
            s if s.starts_with('-') && s.len() > 1 => {
                if s.contains('r') {
                    raw = true;
                }
            }
            s => {
                if !valid_name(s) {
                    return (
                        err(st, 1, &format!("read: `{s}': not a valid identifier")),
                        0,
                    );
                }
                names.push(s.to_owned());
            }
        }
        i += 1;
    }
    if input.is_empty() {
        for n in &names {
            st.assign(n, "");
        }
        return (
            Out {
                status: 1,
                ..Out::default()
            },
            0,
        );
    }
    let (line, used, complete) = {
        let limit = nchars.unwrap_or(usize::MAX).min(input.len());
        match input[..limit].iter().position(|&b| b == delim) {
            Some(p) => (&input[..p], p + 1, true),
            None => (&input[..limit], limit, nchars.is_some()),
        }
    };
    let mut text = String::from_utf8_lossy(line).into_owned();
    if !raw {
        let mut s = String::with_capacity(text.len());
        let mut it = text.chars();
        while let Some(c) = it.next() {
            if c == '\\' {
                if let Some(n) = it.next() {
                    s.push(n);
                }
            } else {
                s.push(c);
            }
        }
        text = s;
    }
    if names.is_empty() {
        st.assign("REPLY", &text);
    } else {
        let ifs = st.lookup("IFS").unwrap_or_else(|| " \t\n".into());
        let mut rest = text.trim_matches(|c: char| ifs.contains(c) && c.is_whitespace());
        for (k, n) in names.iter().enumerate() {
            if k + 1 == names.len() {
                st.assign(
                    n,
                    rest.trim_end_matches(|c: char| ifs.contains(c) && c.is_whitespace()),
                );
                break;
            }
            let end = rest.find(|c: char| ifs.contains(c)).unwrap_or(rest.len());
            st.assign(n, &rest[..end]);
            rest = rest[end..].trim_start_matches(|c: char| ifs.contains(c) && c.is_whitespace());
            if let Some(r) = rest.strip_prefix(|c: char| ifs.contains(c) && !c.is_whitespace()) {
                rest = r;
            }
        }
    }
    (
        Out {
            status: i32::from(!complete),
            ..Out::default()
        },
        used,
    )
}

// ---- printf ---------------------------------------------------------------------------

/// `printf %q`: bash's backslash quoting.
fn q_quote(v: &str) -> String {
    if v.is_empty() {
        return "''".into();
    }
    if v.chars().any(|c| c.is_control()) {
        let mut s = String::from("$'");
        for c in v.chars() {
            match c {
                '\n' => s.push_str("\\n"),
                '\t' => s.push_str("\\t"),
                '\r' => s.push_str("\\r"),
                '\'' => s.push_str("\\'"),
                '\\' => s.push_str("\\\\"),
                c if c.is_control() => {
                    let _ = write!(s, "\\{:03o}", c as u32);
                }
                c => s.push(c),
            }
        }
        s.push('\'');
        return s;
    }
    let mut s = String::with_capacity(v.len() * 2);
    for c in v.chars() {
        if !(c.is_alphanumeric() || "_/.:-,+@%=".contains(c)) {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

fn number(st: &State, a: &str, o: &mut Out) -> i64 {
    let t = a.trim();
    if let Some(c) = t.strip_prefix('\'').or_else(|| t.strip_prefix('"')) {
        return c.chars().next().map_or(0, |c| c as i64);
    }
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let v = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()
    } else if body.len() > 1 && body.starts_with('0') {
        i64::from_str_radix(body, 8).ok()
    } else if body.is_empty() {
        Some(0)
    } else {
        body.parse().ok()
    };
    match v {
        Some(v) => {
            if neg {
                -v
            } else {
                v
            }
        }
        None => {
            o.eline(&format!("{}printf: {a}: invalid number", st.err_prefix));
            o.status = 1;
            0
        }
    }
}

fn pad(s: &str, width: usize, left: bool, zero: bool) -> String {
    let n = s.chars().count();
    if n >= width {
        return s.to_owned();
    }
    let fill = width - n;
    if left {
        format!("{s}{}", " ".repeat(fill))
    } else if zero {
        let (sign, digits) = match s.strip_prefix('-') {
            Some(d) => ("-", d),
            None => ("", s),
        };
        format!("{sign}{}{digits}", "0".repeat(fill))
    } else {
        format!("{}{s}", " ".repeat(fill))
    }
}

fn printf(st: &mut State, args: &[String]) -> Out {
    let mut o = Out::default();
    let args: &[String] = if args.first().is_some_and(|a| a == "--") {
        &args[1..]
    } else {
        args
    };
    let Some(fmt) = args.first() else {
        return err(st, 2, "printf: usage: printf [-v var] format [arguments]");
    };
    if fmt == "-v" {
        return err(st, 2, "printf: -v: option not supported here");
    }
    let fmt: Vec<char> = fmt.chars().collect();
    let rest = &args[1..];
    let mut next = 0usize;
    loop {
        let before = next;
        let mut i = 0;
        while i < fmt.len() {
            if o.full() || !st.budget.iterations(1) {
                return o;
            }
            let c = fmt[i];
            if c == '\\' {
                let mut esc = String::from('\\');
                i += 1;
                // One escape: `\x41`, `\0101`, `\n`.
                if i < fmt.len() {
                    esc.push(fmt[i]);
                    i += 1;
                    let more = match esc.as_bytes()[1] {
                        b'x' => 2,
                        b'0'..=b'7' => 3,
                        _ => 0,
                    };
                    let mut k = 0;
                    while k < more && i < fmt.len() && fmt[i].is_ascii_hexdigit() {
                        esc.push(fmt[i]);
                        i += 1;
                        k += 1;
                    }
                }
                o.put(&expand::ansi_c(&esc));
                continue;
            }
            if c != '%' {
                let mut b = [0u8; 4];
                o.put(c.encode_utf8(&mut b).as_bytes());
                i += 1;
                continue;
            }
            i += 1;
            if fmt.get(i) == Some(&'%') {
                o.put(b"%");
                i += 1;
                continue;
            }
            let (mut left, mut zero, mut plus, mut space) = (false, false, false, false);
            while let Some(&f) = fmt.get(i) {
                match f {
                    '-' => left = true,
                    '0' => zero = true,
                    '+' => plus = true,
                    ' ' => space = true,
                    '#' => {}
                    _ => break,
                }
                i += 1;
            }
            let mut width = 0usize;
            if fmt.get(i) == Some(&'*') {
                let a = rest.get(next).cloned().unwrap_or_default();
                next += 1;
                let w = number(st, &a, &mut o);
                if w < 0 {
                    left = true;
                }
                width = w.unsigned_abs() as usize;
                i += 1;
            }
            while let Some(d) = fmt.get(i).and_then(|c| c.to_digit(10)) {
                width = width.saturating_mul(10).saturating_add(d as usize);
                i += 1;
            }
            let mut prec: Option<usize> = None;
            if fmt.get(i) == Some(&'.') {
                i += 1;
                let mut p = 0usize;
                if fmt.get(i) == Some(&'*') {
                    let a = rest.get(next).cloned().unwrap_or_default();
                    next += 1;
                    p = number(st, &a, &mut o).max(0) as usize;
                    i += 1;
                }
                while let Some(d) = fmt.get(i).and_then(|c| c.to_digit(10)) {
                    p = p.saturating_mul(10).saturating_add(d as usize);
                    i += 1;
                }
                prec = Some(p);
            }
            // Padding never makes more than the buffer can hold.
            width = width.min(o.room());
            let prec = prec.map(|p| p.min(o.room()));
            let Some(&conv) = fmt.get(i) else {
                o.eline(&format!(
                    "{}printf: `%': missing format character",
                    st.err_prefix
                ));
                o.status = 1;
                return o;
            };
            i += 1;
            let arg = rest.get(next).cloned();
            if "sbqdiuxXocfeEgG".contains(conv) {
                next += 1;
            }
            let a = arg.unwrap_or_default();
            let text = match conv {
                's' => match prec {
                    Some(p) => a.chars().take(p).collect(),
                    None => a.clone(),
                },
                'b' => {
                    let bytes = expand::ansi_c(&a);
                    String::from_utf8_lossy(&bytes).into_owned()
                }
                'q' => q_quote(&a),
                'c' => a.chars().next().map(String::from).unwrap_or_default(),
                'd' | 'i' => {
                    let v = number(st, &a, &mut o);
                    let mut s = v.to_string();
                    if let Some(p) = prec {
                        s = pad(&s, p, false, true);
                    }
                    if v >= 0 && plus {
                        s.insert(0, '+');
                    } else if v >= 0 && space {
                        s.insert(0, ' ');
                    }
                    s
                }
                'u' => (number(st, &a, &mut o) as u64).to_string(),
                'x' => format!("{:x}", number(st, &a, &mut o)),
                'X' => format!("{:X}", number(st, &a, &mut o)),
                'o' => format!("{:o}", number(st, &a, &mut o)),
                'f' | 'e' | 'E' | 'g' | 'G' => {
                    let v: f64 = a.trim().parse().unwrap_or_else(|_| {
                        if !a.is_empty() {
                            o.eline(&format!("{}printf: {a}: invalid number", st.err_prefix));
                            o.status = 1;
                        }
                        0.0
                    });
                    let p = prec.unwrap_or(6).min(64);
                    match conv {
                        'e' | 'E' => {
                            let s = format!("{v:.p$e}");
                            // Rust writes `1.5e2`; C writes `1.500000e+02`.
                            let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
                            let e: i32 = e.parse().unwrap_or(0);
                            let s = format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
                            if conv == 'E' { s.to_uppercase() } else { s }
                        }
                        _ => format!("{v:.p$}"),
                    }
                }
                other => {
                    o.eline(&format!(
                        "{}printf: `{other}': invalid format character",
                        st.err_prefix
                    ));
                    o.status = 1;
                    return o;
                }
            };
            let text = if conv == 'b'
                && let Some(cut) = text.find('\u{0}')
                && a.contains("\\c")
            {
                text[..cut].to_owned()
            } else {
                text
            };
            let zero_ok = zero && !left && "diuxXo".contains(conv) && prec.is_none();
            o.put(pad(&text, width, left, zero_ok).as_bytes());
        }
        // The format is reused while arguments are left, as long as it takes some.
        if next >= rest.len() || next == before {
            break;
        }
    }
    o
}

// ---- test, [ and [[ ---------------------------------------------------------------------

fn file_test(st: &State, p: &UnaryPredicate, path: &str) -> bool {
    let full = fs::normalize(&st.cwd, &st.home, path);
    if path.is_empty() {
        return false;
    }
    let node = st.fs.stat(&full);
    match p {
        UnaryPredicate::FileExists => node.is_some(),
        UnaryPredicate::FileExistsAndIsDir => node.is_some_and(|n| n.kind == fs::Kind::Dir),
        UnaryPredicate::FileExistsAndIsRegularFile => {
            node.is_some_and(|n| n.kind == fs::Kind::File)
        }
        UnaryPredicate::FileExistsAndIsSymlink => st
            .fs
            .lstat(&full)
            .is_some_and(|n| n.kind == fs::Kind::Symlink),
        UnaryPredicate::FileExistsAndIsNotZeroLength => node.is_some_and(|n| n.size() > 0),
        UnaryPredicate::FileExistsAndIsReadable => {
            node.is_some_and(|n| st.uid == 0 || n.mode & 0o444 != 0 && !full.starts_with("/root"))
        }
        UnaryPredicate::FileExistsAndIsWritable => {
            node.is_some_and(|n| st.uid == 0 || (n.uid == st.uid && n.mode & 0o200 != 0))
        }
        UnaryPredicate::FileExistsAndIsExecutable => node.is_some_and(|n| n.mode & 0o111 != 0),
        UnaryPredicate::FileExistsAndOwnedByEffectiveUserId
        | UnaryPredicate::FileExistsAndOwnedByEffectiveGroupId => {
            node.is_some_and(|n| n.uid == st.uid)
        }
        UnaryPredicate::FileExistsAndIsSetuid => node.is_some_and(|n| n.mode & 0o4000 != 0),
        UnaryPredicate::FileExistsAndIsSetgid => node.is_some_and(|n| n.mode & 0o2000 != 0),
        UnaryPredicate::FileExistsAndHasStickyBit => node.is_some_and(|n| n.mode & 0o1000 != 0),
        UnaryPredicate::FileExistsAndIsCharSpecialFile => {
            node.is_some() && full.starts_with("/dev/")
        }
        _ => false,
    }
}

fn unary(st: &State, p: &UnaryPredicate, v: &str) -> bool {
    match p {
        UnaryPredicate::StringHasZeroLength => v.is_empty(),
        UnaryPredicate::StringHasNonZeroLength => !v.is_empty(),
        UnaryPredicate::ShellVariableIsSetAndAssigned => st.lookup(v).is_some(),
        UnaryPredicate::FdIsOpenTerminal => st.tty && matches!(v, "0" | "1" | "2"),
        UnaryPredicate::ShellOptionEnabled | UnaryPredicate::ShellVariableIsSetAndNameRef => false,
        _ => file_test(st, p, v),
    }
}

fn int(st: &State, v: &str, what: &str) -> Result<i64, Out> {
    v.trim().parse::<i64>().map_err(|_| {
        Out::fail(
            2,
            format!(
                "{}{what}: {v}: integer expression expected\n",
                st.err_prefix
            ),
        )
    })
}

fn compare(p: &BinaryPredicate, a: i64, b: i64) -> bool {
    match p {
        BinaryPredicate::ArithmeticEqualTo => a == b,
        BinaryPredicate::ArithmeticNotEqualTo => a != b,
        BinaryPredicate::ArithmeticLessThan => a < b,
        BinaryPredicate::ArithmeticLessThanOrEqualTo => a <= b,
        BinaryPredicate::ArithmeticGreaterThan => a > b,
        _ => a >= b,
    }
}

fn is_arith(p: &BinaryPredicate) -> bool {
    matches!(
        p,
        BinaryPredicate::ArithmeticEqualTo
            | BinaryPredicate::ArithmeticNotEqualTo
            | BinaryPredicate::ArithmeticLessThan
            | BinaryPredicate::ArithmeticLessThanOrEqualTo
            | BinaryPredicate::ArithmeticGreaterThan
            | BinaryPredicate::ArithmeticGreaterThanOrEqualTo
    )
}

fn files_compare(st: &State, p: &BinaryPredicate, a: &str, b: &str) -> bool {
    let m = |x: &str| {
        st.fs
            .stat(&fs::normalize(&st.cwd, &st.home, x))
            .map(|n| n.mtime)
    };
    match p {
        BinaryPredicate::FilesReferToSameDeviceAndInodeNumbers => {
            m(a).is_some()
                && fs::normalize(&st.cwd, &st.home, a) == fs::normalize(&st.cwd, &st.home, b)
        }
        BinaryPredicate::LeftFileIsNewerOrExistsWhenRightDoesNot => match (m(a), m(b)) {
            (Some(x), Some(y)) => x > y,
            (Some(_), None) => true,
            _ => false,
        },
        _ => match (m(a), m(b)) {
            (Some(x), Some(y)) => x < y,
            (None, Some(_)) => true,
            _ => false,
        },
    }
}

fn test_expr(st: &State, e: &TestExpr, what: &str) -> Result<bool, Out> {
    Ok(match e {
        TestExpr::False => false,
        TestExpr::Literal(s) => !s.is_empty(),
        TestExpr::And(a, b) => test_expr(st, a, what)? && test_expr(st, b, what)?,
        TestExpr::Or(a, b) => test_expr(st, a, what)? || test_expr(st, b, what)?,
        TestExpr::Not(a) => !test_expr(st, a, what)?,
        TestExpr::Parenthesized(a) => test_expr(st, a, what)?,
        TestExpr::UnaryTest(p, v) => unary(st, p, v),
        TestExpr::BinaryTest(p, a, b) => {
            if is_arith(p) {
                compare(p, int(st, a, what)?, int(st, b, what)?)
            } else {
                match p {
                    BinaryPredicate::StringExactlyMatchesPattern
                    | BinaryPredicate::StringExactlyMatchesString => a == b,
                    BinaryPredicate::StringDoesNotExactlyMatchPattern
                    | BinaryPredicate::StringDoesNotExactlyMatchString => a != b,
                    BinaryPredicate::LeftSortsBeforeRight => a < b,
                    BinaryPredicate::LeftSortsAfterRight => a > b,
                    BinaryPredicate::StringContainsSubstring
                    | BinaryPredicate::StringMatchesRegex => a.contains(b.as_str()),
                    _ => files_compare(st, p, a, b),
                }
            }
        }
    })
}

fn test(st: &mut State, name: &str, args: &[String]) -> Out {
    let args: &[String] = if name == "[" {
        match args.split_last() {
            Some((last, rest)) if last == "]" => rest,
            _ => return err(st, 2, "[: missing `]'"),
        }
    } else {
        args
    };
    if args.len() > MAX_TEST_ARGS || !st.budget.iterations(args.len() as u64 + 1) {
        return err(st, 2, &format!("{name}: too many arguments"));
    }
    let expr = match super::parse::guard(|| brush_parser::test_command::parse(args)) {
        Some(Ok(e)) => e,
        _ => {
            let msg = if args.len() > 3 {
                format!("{name}: too many arguments")
            } else {
                let what = args.get(1).or(args.first()).cloned().unwrap_or_default();
                format!("{name}: {what}: binary operator expected")
            };
            return err(st, 2, &msg);
        }
    };
    match test_expr(st, &expr, name) {
        Ok(v) => Out {
            status: i32::from(!v),
            ..Out::default()
        },
        Err(o) => o,
    }
}

/// Evaluates `[[ … ]]`: operands are expanded without splitting or globbing; the right
/// side of `==`/`!=` is a pattern; arithmetic operators take expressions.
pub(super) fn ext_test(st: &mut State, io: &mut Io, e: &ExtendedTestExpr) -> Res<bool> {
    if !st.budget.iterations(1) {
        return Err(Stop);
    }
    Ok(match e {
        ExtendedTestExpr::And(a, b) => ext_test(st, io, a)? && ext_test(st, io, b)?,
        ExtendedTestExpr::Or(a, b) => ext_test(st, io, a)? || ext_test(st, io, b)?,
        ExtendedTestExpr::Not(a) => !ext_test(st, io, a)?,
        ExtendedTestExpr::Parenthesized(a) => ext_test(st, io, a)?,
        ExtendedTestExpr::UnaryTest(p, w) => {
            let v = expand::string(st, io, &w.value)?;
            unary(st, p, &v)
        }
        ExtendedTestExpr::BinaryTest(p, a, b) => {
            let left = expand::string(st, io, &a.value)?;
            match p {
                BinaryPredicate::StringExactlyMatchesPattern
                | BinaryPredicate::StringDoesNotExactlyMatchPattern
                | BinaryPredicate::StringExactlyMatchesString
                | BinaryPredicate::StringDoesNotExactlyMatchString => {
                    let pat: Vec<char> = expand::pattern(st, io, &b.value)?.chars().collect();
                    let l: Vec<char> = left.chars().collect();
                    let cost = (pat.len() as u64 + 1) * (l.len() as u64 + 1);
                    if !st.budget.iterations(cost) {
                        return Err(Stop);
                    }
                    let m = expand::matches(&pat, &l);
                    if matches!(
                        p,
                        BinaryPredicate::StringExactlyMatchesPattern
                            | BinaryPredicate::StringExactlyMatchesString
                    ) {
                        m
                    } else {
                        !m
                    }
                }
                p if is_arith(p) => {
                    let right = expand::string(st, io, &b.value)?;
                    let x = expand::arith(st, io, &left, "")?;
                    let y = expand::arith(st, io, &right, "")?;
                    compare(p, x, y)
                }
                _ => {
                    let right = if matches!(p, BinaryPredicate::StringMatchesRegex) {
                        expand::regex(st, io, &b.value)?
                    } else {
                        expand::string(st, io, &b.value)?
                    };
                    match p {
                        BinaryPredicate::LeftSortsBeforeRight => left < right,
                        BinaryPredicate::LeftSortsAfterRight => left > right,
                        BinaryPredicate::StringMatchesRegex => {
                            match regex_match(st, &left, &right) {
                                Some(m) => m,
                                None => {
                                    st.flow = None;
                                    return Err(Stop);
                                }
                            }
                        }
                        _ => files_compare(st, p, &left, &right),
                    }
                }
            }
        }
    })
}

/// `=~`: POSIX extended regular expressions through the `regex` crate (linear-time
/// matching, compiled size capped); an invalid expression is status 2 in bash.
fn regex_match(st: &mut State, s: &str, re: &str) -> Option<bool> {
    if !st.budget.iterations((s.len() + re.len()) as u64 + 1) {
        return Some(false);
    }
    let r = regex::RegexBuilder::new(re)
        .size_limit(256 * 1024)
        .dfa_size_limit(256 * 1024)
        .build()
        .ok()?;
    match r.find(s) {
        Some(m) => {
            st.assign("BASH_REMATCH", m.as_str());
            Some(true)
        }
        None => {
            st.assign("BASH_REMATCH", "");
            Some(false)
        }
    }
}
