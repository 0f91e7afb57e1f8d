//! Differential test of `last` against util-linux's: the session's own
//! `/var/log/wtmp` bytes are written to a file named `wtmp` and read by the real
//! `last -f` (with the machine's zone in `TZ`), and by ours; the outputs must be equal.
//! Also: `ls -l`, `stat` and `wc -c` see a file of whole 384-byte records, and an
//! emptied file empties `last`.

use super::*;

fn real_last(wtmp: &[u8], zone: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("wtmp");
    std::fs::write(&f, wtmp).unwrap();
    let out = std::process::Command::new("last")
        .args(args)
        .arg("-f")
        .arg(&f)
        .env_clear()
        .env("TZ", zone)
        .env("LANG", "C.UTF-8")
        .output()
        .expect("this test needs util-linux's last");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ours(s: &mut Shell, args: &str) -> String {
    let r = s.exec(
        format!("last {args} -f /var/log/wtmp").as_bytes(),
        1_713_090_200,
    );
    text(&r.stdout)
}

#[test]
fn last_reads_wtmp_as_util_linux_does() {
    let cases: &[&[&str]] = &[
        &[],
        &["-n", "1"],
        &["-2"],
        &["-a"],
        &["-i"],
        &["reboot"],
        &["root"],
        &["pts/0"],
        &["nobody"],
    ];
    let mut report = String::new();
    for user in ["root", "pi"] {
        let mut s = shell_with(false, ShellLimits::default(), user);
        let zone = s.st.profile.node.persona().zone.name;
        let bytes = s.st.fs.read("/var/log/wtmp").unwrap().to_vec();
        for args in cases {
            let want = real_last(&bytes, zone, args);
            let got = ours(&mut s, &args.join(" "));
            if want != got {
                report.push_str(&format!(
                    "{user} {args:?}\n  real: {want:?}\n  ours: {got:?}\n"
                ));
            }
        }
    }
    // With a terminal the session's own login is there; the real `last` finds its sshd
    // gone (it is not a process here) where ours finds it alive.
    let mut s = shell_with(true, ShellLimits::default(), "root");
    let zone = s.st.profile.node.persona().zone.name;
    let bytes = s.st.fs.read("/var/log/wtmp").unwrap().to_vec();
    let want = real_last(&bytes, zone, &[]).replace("   gone - no logout", "  still logged in");
    let r = s.exec(b"last -f /var/log/wtmp", 1_713_090_200);
    // A terminal's output has CR LF line ends.
    let got = text(&r.stdout).replace("\r\n", "\n");
    if want != got {
        report.push_str(&format!("tty\n  real: {want:?}\n  ours: {got:?}\n"));
    }
    assert!(report.is_empty(), "{report}");
    assert!(
        got.starts_with("root     pts/0        203.0.113.9 "),
        "{got}"
    );
}

#[test]
fn wtmp_size_matches_its_records_and_wiping_empties_last() {
    let mut s = shell(false);
    let r = s.exec(
        b"wc -c < /var/log/wtmp; stat -c %s /var/log/wtmp",
        1_713_090_200,
    );
    assert_eq!(text(&r.stdout), "1536\n1536\n");
    let r = s.exec(b"ls -l /var/log/wtmp", 1_713_090_200);
    assert!(text(&r.stdout).starts_with("-rw-rw-r-- 1 root root 1536 "));
    let r = s.exec(b"last | grep -c pts/0", 1_713_090_200);
    assert_eq!(text(&r.stdout), "1\n");
    let r = s.exec(b"> /var/log/wtmp; last", 1_713_090_200);
    let out = text(&r.stdout);
    assert!(out.starts_with("\nwtmp begins "), "{out}");
    let r = s.exec(b"rm /var/log/wtmp; last", 1_713_090_200);
    assert_eq!(
        text(&r.stderr),
        "last: cannot open /var/log/wtmp: No such file or directory\n"
    );
}
