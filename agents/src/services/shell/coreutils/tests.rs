//! The families through the whole shell: budget bounds (runaway programs stop at the
//! line's budget, big inputs stay within the buffer cap) and the stories that must agree
//! with `which` (what is installed and what is not).

use super::super::{Effect, Login, Profile, Shell, ShellLimits};

fn exec_as(line: &str, user: &str) -> (String, String, u32, Vec<Effect>) {
    let login = Login {
        user: user.into(),
        src: "203.0.113.9".parse().unwrap(),
        now: 1_713_090_151,
    };
    let mut s = Shell::new(
        Profile::new("web-prod-02"),
        &login,
        false,
        ShellLimits::default(),
    );
    let r = s.exec(line.as_bytes(), 1_713_090_200);
    (
        String::from_utf8_lossy(&r.stdout).into_owned(),
        String::from_utf8_lossy(&r.stderr).into_owned(),
        r.exit.unwrap_or(0),
        r.effects,
    )
}

fn exec(line: &str) -> (String, String, u32, Vec<Effect>) {
    exec_as(line, "root")
}

fn stopped_by_budget(effects: &[Effect]) -> bool {
    effects.iter().any(|e| {
        matches!(
            e,
            Effect::Limit {
                limit: "shell_budget",
                ..
            }
        )
    })
}

#[test]
fn awk_infinite_loop_hits_the_budget() {
    let (out, _, code, eff) = exec("awk 'BEGIN { while (1) x++ }'");
    assert!(stopped_by_budget(&eff), "{eff:?}");
    assert_eq!((out.as_str(), code), ("", 137));
    let (_, _, code, eff) = exec("awk 'BEGIN { s = \"ab\"; while (1) s = s s }'");
    assert!(stopped_by_budget(&eff), "{eff:?}");
    assert_eq!(code, 137);
    let (_, err, code, _) = exec("awk 'function f(n) { return f(n + 1) } BEGIN { f(1) }'");
    assert_eq!(
        (err.as_str(), code),
        ("awk: run time error: function call nesting too deep\n", 2)
    );
}

#[test]
fn sed_branch_loop_hits_the_budget() {
    let (_, _, code, eff) = exec("echo a | sed ':a;ba'");
    assert!(stopped_by_budget(&eff), "{eff:?}");
    assert_eq!(code, 137);
    let (_, _, code, eff) = exec("echo a | sed ':a;s/a/aa/;ta'");
    assert!(stopped_by_budget(&eff), "{eff:?}");
    assert_eq!(code, 137);
}

#[test]
fn big_inputs_stay_bounded() {
    // 2 MiB asked of yes and sort: the pipe holds at most one buffer, the sort is paid for.
    let (out, _, code, _) = exec("yes 0123456789abcdef | head -c 2097152 | sort | wc -c");
    assert_eq!(code, 0);
    let n: usize = out.trim().parse().unwrap();
    assert!(n <= super::MAX_BUFFER, "{n}");
    let (out, _, _, _) = exec("seq 1000000000 | tail -n 1");
    assert!(out.len() < 16, "{out}");
    let (out, _, _, _) = exec("yes A | head -c 5000 | wc -c");
    assert_eq!(out, "5000\n");
    let (_, _, code, _) = exec("dd if=/dev/zero bs=1M count=100000 | wc -c");
    assert_eq!(code, 0);
}

#[test]
fn hostile_regexes_and_formats_are_refused_or_bounded() {
    let (_, err, code, _) = exec("echo a | sed 's/\\(a\\)\\1/x/'");
    assert_eq!(code, 1, "{err}");
    let (_, _, code, _) = exec("echo a | awk '{ printf \"%999999999d\", 1 }' | wc -c");
    assert_eq!(code, 0);
    let (out, _, _, _) = exec("echo a | grep -c a; echo aaaa | sed -E 's/(a|aa)*$/x/'");
    assert!(out.ends_with("x\n"), "{out}");
}

#[test]
fn installed_programs_agree_with_which() {
    for (cmd, installed) in [
        ("python3", false),
        ("ifconfig", false),
        ("netstat", false),
        ("perl", true),
        ("awk", true),
        ("sed", true),
        ("od", true),
        ("xargs", true),
    ] {
        let (out, _, _, _) = exec(&format!("which {cmd}"));
        assert_eq!(!out.is_empty(), installed, "which {cmd}: {out}");
        let (_, err, code, _) = exec(&format!("{cmd} --version < /dev/null"));
        assert_eq!(
            code == 127 && err.contains("command not found"),
            !installed,
            "{cmd}: {code} {err}"
        );
    }
}

#[test]
fn system_tools_tell_one_story() {
    let (_, err, code, _) = exec_as("dmesg", "admin");
    assert_eq!(
        (err.as_str(), code),
        (
            "dmesg: read kernel buffer failed: Operation not permitted\n",
            1
        )
    );
    let (_, err, code, _) = exec_as("apt-get install -y curl", "admin");
    assert!(
        err.contains(
            "E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)"
        ),
        "{err}"
    );
    assert_eq!(code, 100);
    let (out, err, code, _) = exec("apt-get update");
    assert!(
        out.contains("Err:1") && err.contains("Temporary failure resolving"),
        "{out}{err}"
    );
    assert_eq!(code, 0);
    let (ip, _, _, _) = exec("ip addr");
    let (host, _, _, _) = exec("hostname -I");
    let addr = host.split_whitespace().next().unwrap_or("?").to_owned();
    assert!(ip.contains(&format!("inet {addr}/")), "{ip}\n{host}");
    let (out, _, _, _) = exec("ip route");
    assert!(out.starts_with("default via "), "{out}");
    let (out, _, _, _) = exec("ss -tln");
    assert!(out.starts_with("State  Recv-Q Send-Q"), "{out}");
    let (out, _, _, _) = exec("top -b -n1 | head -1");
    assert!(out.starts_with("top - "), "{out}");
    let (out, _, _, _) = exec("perl -e 'print \"A\" x 5'");
    assert_eq!(out, "AAAAA");
    let (_, err, code, _) = exec("perl nope.pl");
    assert_eq!(
        (err.as_str(), code),
        (
            "Can't open perl script \"nope.pl\": No such file or directory\n",
            2
        )
    );
    let (_, err, code, _) = exec("vi /etc/passwd");
    assert!(
        err.starts_with("Vim: Warning: Output is not to a terminal"),
        "{err}"
    );
    assert_eq!(code, 1);
    let (out, _, _, _) = exec("less /etc/hostname");
    assert_eq!(out, "web-prod-02\n");
}

#[test]
fn sleep_really_waits_but_is_bounded() {
    let t = std::time::Instant::now();
    let (_, _, code, _) = exec("sleep 0.2");
    assert_eq!(code, 0);
    assert!(t.elapsed() >= std::time::Duration::from_millis(150));
    let (_, err, code, _) = exec("sleep x");
    assert_eq!(code, 1, "{err}");
}

#[test]
fn xargs_runs_emulated_commands() {
    assert_eq!(exec("echo a b c | xargs echo").0, "a b c\n");
    assert_eq!(exec("printf 'a\\nb\\n' | xargs -n1 echo x").0, "x a\nx b\n");
    assert_eq!(
        exec("printf 'a\\nb\\n' | xargs -I{} echo '<{}>'").0,
        "<a>\n<b>\n"
    );
    let (_, err, code, _) = exec("echo a | xargs nosuchcmd");
    assert_eq!(
        (err.as_str(), code),
        ("xargs: nosuchcmd: No such file or directory\n", 127)
    );
}

#[test]
fn every_program_ls_shows_runs() {
    let (listing, _, _, _) = exec("ls /usr/bin /usr/sbin");
    let names: Vec<&str> = listing
        .lines()
        .filter(|l| !l.is_empty() && !l.ends_with(':'))
        .collect();
    assert!(names.len() > 80, "{listing}");
    for n in names {
        if matches!(n, "reboot" | "shutdown") {
            continue;
        }
        let (_, err, code, _) = exec(&format!("{n} --version < /dev/null"));
        assert!(
            !(code == 127 && err.contains("command not found")),
            "{n} is in /usr/bin but not found: {err}"
        );
    }
    let (_, err, code, _) = exec_as("reboot", "admin");
    assert_eq!(code, 1, "{err}");
    let (_, _, code, _) = exec("reboot; echo never");
    assert_eq!(code, 255);
}

#[test]
fn gzip_round_trips_in_the_overlay() {
    let (out, err, code, _) =
        exec("cd /tmp && echo hello > a && gzip a && ls a* && gunzip -c a.gz && zcat a.gz | wc -c");
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        ("a.gz\nhello\n6\n", "", 0)
    );
    let (_, err, code, _) = exec("echo x | gzip -d");
    assert_eq!(
        (err.as_str(), code),
        ("\ngzip: stdin: not in gzip format\n", 1)
    );
}
