//! Differential test of `ulimit` against real bash: each line runs in real bash as a
//! user without privileges (`setpriv` to nobody, limits set by `prlimit` to the
//! session's defaults where they matter) and in our shell as a non-root login; stdout,
//! stderr and status must be equal. Every line starts by lowering the hard `-n` limit
//! to 4096 (the real side starts there already: the container's own hard limit is lower
//! than Debian's 524288), so both sides then start from the same limits.
//! What only root can do (raise a hard limit, `-n` up to `nr_open`) cannot be compared
//! here (the test's root lacks CAP_SYS_RESOURCE) and is checked by a unit test.

use super::*;

const PREFIX: &str = "ulimit -Hn 4096; ";

const LINES: &[&str] = &[
    "ulimit -n; ulimit -Hn; ulimit -Sn",
    "ulimit -n 2048; ulimit -n; ulimit -Hn",
    "ulimit -n 8000; echo $?; ulimit -n",
    "ulimit -Sn 3000; ulimit -Sn 5000; echo $?; ulimit -n; ulimit -Hn",
    "ulimit -c 10; ulimit -c; ulimit -Hc; ulimit -c unlimited; echo $?; ulimit -c",
    "ulimit -Sc 7; ulimit -c; ulimit -Hc; ulimit -Sc unlimited; ulimit -c",
    "ulimit -p 16; echo $?; ulimit -p",
    "ulimit -Hn 512; echo $?; ulimit -Hn",
    "ulimit -Sn 100; ulimit -n hard; ulimit -n; ulimit -Sn 200; ulimit -Hn soft; ulimit -Hn",
    "ulimit -n abc; echo $?",
    "ulimit -s 4096; ulimit -s; ulimit -Hs",
    "ulimit -n unlimited; echo $?",
    "ulimit -Hc 100; ulimit -c 200; echo $?; ulimit -c",
    "ulimit -l 100; ulimit -l; ulimit -l 9000; echo $?",
    "ulimit -HSn 2000; ulimit -n; ulimit -Hn",
    "ulimit -n 3000; (ulimit -n)",
];

fn real_bash(line: &str) -> Option<(String, String, u32)> {
    let out = std::process::Command::new("prlimit")
        .args([
            "--nofile=1024:4096",
            "--core=0:unlimited",
            "--stack=8388608:unlimited",
            "--memlock=8388608:8388608",
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "bash",
            "--norc",
            "--noprofile",
            "-c",
            line,
        ])
        .current_dir("/")
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        .output()
        .ok()?;
    Some((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        u32::try_from(out.status.code().unwrap_or(-1) & 0xff).unwrap_or(255),
    ))
}

#[test]
fn ulimit_matches_real_bash() {
    assert!(
        real_bash("true").is_some_and(|r| r.2 == 0),
        "this test needs root, bash, and prlimit and setpriv (util-linux)"
    );
    let mut report = String::new();
    for line in LINES {
        let line = format!("{PREFIX}{line}");
        let want = real_bash(&line).unwrap();
        let mut s = shell_with(false, ShellLimits::default(), "pi");
        let r = s.exec(line.as_bytes(), 1_713_090_200);
        let got = (text(&r.stdout), text(&r.stderr), r.exit.unwrap_or(255));
        if got != want {
            report.push_str(&format!("{line:?}\n  bash: {want:?}\n  ours: {got:?}\n"));
        }
    }
    assert!(report.is_empty(), "{report}");
}

/// Root raises a hard limit (CAP_SYS_RESOURCE), keeps it for the session, and still
/// cannot pass `fs.nr_open` for `-n`.
#[test]
fn root_raises_limits_and_keeps_them() {
    let mut s = shell(false);
    let r = s.exec(
        b"ulimit -n; ulimit -Hn; ulimit -n 65535; ulimit -n; ulimit -Hn; ulimit -n 2000000; echo $?; ulimit -n unlimited; ulimit -n; ulimit -c unlimited; ulimit -c; ulimit -Hu 100; ulimit -u 200; ulimit -u",
        1_713_090_200,
    );
    assert_eq!(
        text(&r.stdout),
        "1024\n524288\n65535\n65535\n1\n65535\nunlimited\n200\n"
    );
    assert_eq!(
        text(&r.stderr),
        "bash: line 1: ulimit: open files: cannot modify limit: Operation not permitted\nbash: line 1: ulimit: open files: cannot modify limit: Operation not permitted\nbash: line 1: ulimit: max user processes: cannot modify limit: Invalid argument\n"
    );
    let r = s.exec(b"ulimit -n", 1_713_090_201);
    assert_eq!(text(&r.stdout), "65535\n");
}
