//! The editor against bytes captured from real bash 5.2 in a pty (TERM=xterm, 80
//! columns, `PS1='P$ '`): each expected string below is what bash wrote for the keys.

use super::*;
use proptest::prelude::*;

/// (directory as typed, entries): (name, dir, link to dir).
type Tree = Vec<(&'static str, Vec<(&'static str, bool, bool)>)>;

struct Fake {
    history: Vec<String>,
    commands: Vec<&'static str>,
    files: Tree,
}

impl Context for Fake {
    fn prompt(&self) -> String {
        "P$ ".into()
    }
    fn history(&self) -> &[String] {
        &self.history
    }
    fn commands(&self, prefix: &str) -> Vec<Candidate> {
        let mut v: Vec<Candidate> = self
            .commands
            .iter()
            .filter(|c| c.starts_with(prefix))
            .map(|c| Candidate {
                name: (*c).into(),
                dir: false,
                link_dir: false,
            })
            .collect();
        v.extend(self.paths("", prefix).into_iter().filter(|c| c.dir));
        v
    }
    fn paths(&self, dir: &str, prefix: &str) -> Vec<Candidate> {
        self.files
            .iter()
            .filter(|(d, _)| *d == dir)
            .flat_map(|(_, v)| v.iter())
            .filter(|(n, _, _)| n.starts_with(prefix))
            .map(|&(n, dir, link_dir)| Candidate {
                name: n.into(),
                dir,
                link_dir,
            })
            .collect()
    }
}

fn fake() -> Fake {
    Fake {
        history: Vec::new(),
        commands: vec![
            "echo", "ed", "editor", "editres", "egrep", "elfedit", "elif", "else", "enable",
            "enc2xs", "encguess", "env", "envsubst", "eqn", "esac", "etags", "eval", "ex", "exec",
            "exit", "expand", "expiry", "export", "expr", "ls", "cat",
        ],
        files: vec![
            (
                "/etc/",
                [
                    ("security", true, false),
                    ("selinux", true, false),
                    ("sensors.d", true, false),
                    ("sensors3.conf", false, false),
                    ("services", false, false),
                    ("sgml", true, false),
                    ("shadow", false, false),
                    ("shadow-", false, false),
                    ("shells", false, false),
                    ("skel", true, false),
                    ("ssh", true, false),
                    ("ssl", true, false),
                    ("subgid", false, false),
                    ("subuid", false, false),
                    ("sudo.conf", false, false),
                    ("sudo_logsrvd.conf", false, false),
                    ("sudoers", false, false),
                    ("sudoers.d", true, false),
                    ("sv", true, false),
                    ("sysctl.conf", false, false),
                    ("sysctl.d", true, false),
                    ("syslog.conf", false, false),
                    ("syslog.d", true, false),
                    ("systemd", true, false),
                    ("host.conf", false, false),
                    ("hostname", false, false),
                    ("hosts", false, false),
                    ("hosts.allow", false, false),
                    ("hosts.deny", false, false),
                ]
                .to_vec(),
            ),
            ("/", vec![("bin", false, true), ("boot", true, false)]),
            (
                "",
                vec![
                    ("Desktop", true, false),
                    ("docs", true, false),
                    ("docfile", false, false),
                    ("a b", false, false),
                ],
            ),
        ],
    }
}

/// Feeds each step's keys and returns what each wrote, with the last event.
fn run(e: &mut Editor, ctx: &Fake, steps: &[&[u8]]) -> (Vec<String>, Option<Event>) {
    let mut outs = Vec::new();
    let mut last = None;
    for keys in steps {
        let mut out = Vec::new();
        for &b in *keys {
            if let Some(ev) = e.feed(b, ctx, &mut out) {
                last = Some(ev);
            }
        }
        outs.push(String::from_utf8_lossy(&out).into_owned());
    }
    (outs, last)
}

#[test]
fn enter_turns_bracketed_paste_off() {
    let (out, ev) = run(&mut Editor::new(4096), &fake(), &[b"echo hi", b"\r"]);
    assert_eq!(out, ["echo hi", "\r\n\x1b[?2004l\r"]);
    assert_eq!(ev, Some(Event::Line(b"echo hi".to_vec())));
}

#[test]
fn cursor_and_emacs_keys_as_readline_redraws_them() {
    let (out, ev) = run(
        &mut Editor::new(4096),
        &fake(),
        &[
            b"ab",
            b"\x1b[D\x1b[D",
            b"X",
            b"\x1b[C",
            b"\x1b[3~",
            b"\x01",
            b"\x05",
            b"\x0b",
            b"\x01\x0b",
            b"abc def",
            b"\x17",
            b"\x0c",
            b"\x1bb",
            b"\x1b[H",
            b"\x1b[F",
            b"\x1bOH",
            b"\x08",
            b"\r",
        ],
    );
    let want = [
        "ab",
        "\x08\x08",
        "\x1b[1@X",
        "a",
        "\x1b[K",
        "\x08\x08",
        "Xa",
        "",
        "\x08\x08\x1b[K",
        "abc def",
        "\x08\x08\x08\x1b[K",
        "\x1b[H\x1b[2JP$ abc ",
        "\x08\x08\x08\x08",
        "",
        "abc ",
        "\x08\x08\x08\x08",
        "\x07",
        "\r\n\x1b[?2004l\r",
    ];
    assert_eq!(out, want);
    assert_eq!(ev, Some(Event::Line(b"abc ".to_vec())));
}

#[test]
fn a_line_reaching_the_last_column_wraps_as_readline_makes_it() {
    let mut keys = b"echo ".to_vec();
    keys.extend(std::iter::repeat_n(b'x', 80));
    let (out, _) = run(&mut Editor::new(4096), &fake(), &[&keys]);
    // "P$ echo " and 72 x's fill the 80 columns.
    assert!(out[0].contains(&format!("echo {} \r{}", "x".repeat(72), "x".repeat(8))));
}

#[test]
fn backspace_and_the_ends_of_the_line() {
    let (out, _) = run(
        &mut Editor::new(4096),
        &fake(),
        &[
            b"ab", b"\x7f", b"\x7f", b"\x7f", b"\x02", b"x", b"\x06", b"\x02", b"\x1b[C",
        ],
    );
    assert_eq!(
        out,
        [
            "ab",
            "\x08 \x08",
            "\x08 \x08",
            "\x07",
            "\x07",
            "x",
            "\x07",
            "\x08",
            "x"
        ]
    );
}

#[test]
fn history_with_the_arrows() {
    let mut ctx = fake();
    ctx.history = vec!["echo X b".into()];
    let (out, _) = run(
        &mut Editor::new(4096),
        &ctx,
        &[b"\x1b[A", b"\x1b[A", b"\x1b[B", b"\x1b[B"],
    );
    assert_eq!(out, ["echo X b", "\x07", "\rP$ \x1b[K", "\x07"]);
    // What was typed comes back after browsing, and a recalled line runs.
    ctx.history = vec!["ls -la".into(), "ls /tmp".into()];
    let mut e = Editor::new(4096);
    let (out, ev) = run(
        &mut e,
        &ctx,
        &[b"ls", b"\x10", b"\x10", b"\x0e", b"\x0e", b"\x10\r"],
    );
    assert_eq!(out[1], " /tmp");
    assert_eq!(out[2], "\x08\x08\x08\x08\x1b[1P-la");
    assert_eq!(out[4], "\x08\x08\x08\x08\x08\x1b[K");
    assert_eq!(ev, Some(Event::Line(b"ls /tmp".to_vec())));
}

#[test]
fn tab_completes_commands_and_paths() {
    let ctx = fake();
    let cases: &[(&[u8], &str)] = &[
        (b"ech\t", "echo "),
        (b"ls /etc/sud\t", "ls /etc/sud\x07o"),
        (b"ls /bi\t", "ls /bin"),
        (b"Desk\t", "Desktop/"),
        (b"ls a\t", "ls a\\ b "),
        (b"cat /etc/hostn\t", "cat /etc/hostname "),
        (b"ls /nowhere/x\t", "ls /nowhere/x\x07"),
    ];
    for (keys, want) in cases {
        let (out, _) = run(&mut Editor::new(4096), &ctx, &[keys]);
        assert_eq!(out[0], *want, "{}", String::from_utf8_lossy(keys));
    }
}

#[test]
fn second_tab_lists_in_readlines_columns() {
    let ctx = fake();
    let (out, _) = run(&mut Editor::new(4096), &ctx, &[b"e", b"\t", b"\t"]);
    assert_eq!(out[1], "\x07");
    assert_eq!(
        out[2],
        "\r\necho      egrep     enable    envsubst  eval      expand    \r\ned        elfedit   enc2xs    eqn       ex        expiry    \r\neditor    elif      encguess  esac      exec      export    \r\neditres   else      env       etags     exit      expr      \r\nP$ e"
    );
    let (out, _) = run(&mut Editor::new(4096), &ctx, &[b"ls /etc/s", b"\t", b"\t"]);
    assert_eq!(out[1], "\x07");
    assert_eq!(
        out[2],
        "\r\nsecurity/          shadow             subgid             sv/\r\nselinux/           shadow-            subuid             sysctl.conf\r\nsensors.d/         shells             sudo.conf          sysctl.d/\r\nsensors3.conf      skel/              sudo_logsrvd.conf  syslog.conf\r\nservices           ssh/               sudoers            syslog.d/\r\nsgml/              ssl/               sudoers.d/         systemd/\r\nP$ ls /etc/s"
    );
    let (out, _) = run(&mut Editor::new(4096), &ctx, &[b"ls doc", b"\t", b"\t"]);
    assert_eq!(out[1..], ["\x07", "\r\ndocfile  docs/    \r\nP$ ls doc"]);
    let (out, _) = run(
        &mut Editor::new(4096),
        &ctx,
        &[b"cat /etc/host", b"\t", b"\t"],
    );
    assert_eq!(
        out[2],
        "\r\nhost.conf    hostname     hosts        hosts.allow  hosts.deny   \r\nP$ cat /etc/host"
    );
}

#[test]
fn many_matches_ask_first() {
    let mut ctx = fake();
    let names: Vec<&'static str> = (0..150)
        .map(|i| &*Box::leak(format!("cmd{i:03}").into_boxed_str()))
        .collect();
    ctx.commands = names;
    let (out, _) = run(&mut Editor::new(4096), &ctx, &[b"\t", b"\t", b"x", b"n"]);
    // The 150 commands and the two directories here.
    assert_eq!(out[1], "\r\nDisplay all 152 possibilities? (y or n)");
    assert_eq!(out[2], "\x07");
    assert_eq!(out[3], "\r\nP$ ");
    // One name a line here (the widest is 8 columns: 9 fit): 17 rows, one screen.
    let (out, _) = run(&mut Editor::new(4096), &ctx, &[b"\t\t", b"y"]);
    assert!(out[1].starts_with("\r\nDesktop/") && out[1].ends_with("\r\nP$ "));
    // Names over 39 columns, one a line: readline's pager, 23 rows a screen.
    ctx.commands = (0..60)
        .map(|i| {
            &*Box::leak(format!("a-long-command-name-number-{i:03}-xxxxxxxxxxxx").into_boxed_str())
        })
        .collect();
    ctx.files.clear();
    let (out, _) = run(
        &mut Editor::new(4096),
        &ctx,
        &[b"a\t", b"\t\t", b"z", b" ", b"\r", b"q"],
    );
    assert_eq!(out[0], "a\x07-long-command-name-number-0");
    assert_eq!(out[1].matches("\r\n").count(), 24);
    assert!(out[1].ends_with("-022-xxxxxxxxxxxx\r\n--More--"));
    assert_eq!(out[2], "\x07");
    assert!(out[3].starts_with("\r\x1b[K\ra-long-command-name-number-023-"));
    assert!(out[3].ends_with("-045-xxxxxxxxxxxx\r\n--More--"));
    assert_eq!(
        out[4],
        "\r\x1b[K\ra-long-command-name-number-046-xxxxxxxxxxxx\r\n--More--"
    );
    assert_eq!(out[5], "\r\x1b[K\rP$ a-long-command-name-number-0");
}

#[test]
fn pasted_text_is_highlighted_until_the_next_key() {
    let (out, ev) = run(
        &mut Editor::new(4096),
        &fake(),
        &[b"\x1b[200~echo pasted\x1b[201~", b"\r"],
    );
    assert_eq!(
        out,
        [
            "\x1b[7mecho pasted\x1b[27m",
            "\rP$ echo pasted\r\n\x1b[?2004l\r"
        ]
    );
    assert_eq!(ev, Some(Event::Line(b"echo pasted".to_vec())));
    let (out, _) = run(&mut Editor::new(4096), &fake(), &[b"\x1b[200~ab\x1b[201~c"]);
    assert_eq!(out, ["\x1b[7mab\x1b[27m\x08\x08abc"]);
    // A paste's newlines stay in the line; Enter runs it all.
    let (_, ev) = run(
        &mut Editor::new(4096),
        &fake(),
        &[b"\x1b[200~line1\rline2\x1b[201~", b"\r"],
    );
    assert_eq!(ev, Some(Event::Line(b"line1\nline2".to_vec())));
}

#[test]
fn interrupt_and_end_of_file() {
    let (out, ev) = run(&mut Editor::new(4096), &fake(), &[b"ab\x03"]);
    assert_eq!(out, ["ab^C\x1b[?2004l\r\x1b[?2004h\x1b[?2004l\r\r\n"]);
    assert_eq!(ev, Some(Event::Interrupt));
    let (out, ev) = run(&mut Editor::new(4096), &fake(), &[b"\x04"]);
    assert_eq!(out, ["\x1b[?2004l\r\r\n"]);
    assert_eq!(ev, Some(Event::Eof));
}

#[test]
fn escape_sequences_split_across_reads() {
    let mut ctx = fake();
    ctx.history = vec!["uname -a".into()];
    let mut e = Editor::new(4096);
    let (out, _) = run(&mut e, &ctx, &[b"\x1b", b"[", b"A"]);
    assert_eq!(out, ["", "", "uname -a"]);
    // An unknown or overlong sequence is swallowed.
    let (out, _) = run(
        &mut e,
        &ctx,
        &[b"\x1b[1;2;3;4;5;6;7;8;9;10;11;12;13;14Z", b"x"],
    );
    assert_eq!(out, ["", "x"]);
}

#[test]
fn the_line_is_capped() {
    let mut e = Editor::new(8);
    let (out, _) = run(&mut e, &fake(), &[b"0123456789"]);
    assert_eq!(out, ["01234567"]);
    assert!(e.overflowed);
    assert_eq!(e.line(), b"01234567");
}

#[test]
fn bang_bang_expands_as_bash_does() {
    let h = vec!["echo hi".to_owned()];
    assert_eq!(expand_bang(b"!!", &[]), Err(()));
    assert_eq!(expand_bang(b"ls", &h), Ok(None));
    assert_eq!(expand_bang(b"!! x", &h), Ok(Some(b"echo hi x".to_vec())));
    assert_eq!(expand_bang(b"echo '!!'", &h), Ok(None));
    assert_eq!(expand_bang(b"echo \\!!", &h), Ok(None));
    assert_eq!(
        expand_bang(b"echo \"!!\"", &h),
        Ok(Some(b"echo \"echo hi\"".to_vec()))
    );
}

proptest! {
    #[test]
    fn any_bytes_never_panic_and_stay_bounded(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..20)
    ) {
        let mut ctx = fake();
        ctx.history = vec!["a".into(), "long line ü".into()];
        let mut e = Editor::new(64);
        for c in &chunks {
            let mut out = Vec::new();
            for &b in c {
                let _ = e.feed(b, &ctx, &mut out);
                prop_assert!(e.line().len() <= 64);
                prop_assert!(e.cursor <= e.line().len());
            }
            // A listing is the largest thing one byte writes.
            prop_assert!(out.len() <= c.len() * 2048 + 64);
        }
    }
}

/// The editor beside real bash 5.2 in a pty (`script`, 80 columns), key by key: the
/// bytes written after the first prompt must be the same. Paths complete over a
/// temporary directory both see; each case ends with ^C so that nothing runs.
mod oracle {
    use super::*;
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    use std::time::Duration;

    /// The real file system under `root`, for completion.
    struct Real {
        root: std::path::PathBuf,
        history: Vec<String>,
    }

    impl Context for Real {
        fn prompt(&self) -> String {
            "P$ ".into()
        }
        fn history(&self) -> &[String] {
            &self.history
        }
        fn commands(&self, prefix: &str) -> Vec<Candidate> {
            let mut v = self.paths("bin/", prefix);
            v.retain(|c| !c.dir);
            v.extend(self.paths("", prefix).into_iter().filter(|c| c.dir));
            v
        }
        fn paths(&self, dir: &str, prefix: &str) -> Vec<Candidate> {
            let Ok(rd) = std::fs::read_dir(self.root.join(dir)) else {
                return Vec::new();
            };
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if !name.starts_with(prefix)
                        || (name.starts_with('.') && !prefix.starts_with('.'))
                    {
                        return None;
                    }
                    let lt = e.file_type().ok()?;
                    let target_dir = std::fs::metadata(e.path()).is_ok_and(|m| m.is_dir());
                    Some(Candidate {
                        name,
                        dir: lt.is_dir(),
                        link_dir: lt.is_symlink() && target_dir,
                    })
                })
                .collect()
        }
    }

    fn real_bash(root: &std::path::Path, steps: &[&[u8]]) -> Vec<u8> {
        let cmd = format!(
            "stty cols 80 rows 24; cd {}; exec env -i TERM=xterm 'PS1=P$ ' HOME={} PATH={}/bin \
             HISTFILE={}/hist /bin/bash --norc --noprofile -i",
            root.display(),
            root.display(),
            root.display(),
            root.display()
        );
        // Each bash appends its history on exit: start from the same file every time.
        std::fs::write(root.join("hist"), "echo one\nls -la /tmp\n").unwrap();
        let mut child = Command::new("script")
            .args(["-qfec", &cmd, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("script (util-linux)");
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = stdout.read_to_end(&mut all);
            all
        });
        std::thread::sleep(Duration::from_millis(700));
        for step in steps {
            // Key by key: readline skips redisplay while more input is waiting.
            for &b in *step {
                stdin.write_all(&[b]).unwrap();
                stdin.flush().unwrap();
                std::thread::sleep(Duration::from_millis(40));
            }
            std::thread::sleep(Duration::from_millis(150));
        }
        stdin.write_all(b"\x03").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        stdin.write_all(b"exit\r").unwrap();
        drop(stdin);
        let _ = child.wait();
        let all = reader.join().unwrap();
        let start = all
            .windows(PASTE_ON.len() + 3)
            .position(|w| w == b"\x1b[?2004hP$ ")
            .expect("a prompt")
            + PASTE_ON.len()
            + 3;
        // Up to the prompt after the final ^C.
        let end = all
            .windows(PASTE_ON.len() + 3)
            .rposition(|w| w == b"\x1b[?2004hP$ ")
            .map_or(all.len(), |i| i + PASTE_ON.len() + 3);
        all[start..end.max(start)].to_vec()
    }

    fn ours(ctx: &Real, steps: &[&[u8]]) -> Vec<u8> {
        let mut e = Editor::new(4096);
        let mut out = Vec::new();
        for step in steps.iter().copied().chain([&b"\x03"[..]]) {
            for &b in step {
                if e.feed(b, ctx, &mut out) == Some(Event::Interrupt) {
                    out.extend_from_slice(PASTE_ON);
                    out.extend_from_slice(b"P$ ");
                }
            }
        }
        out
    }

    #[test]
    fn keys_match_real_bash_in_a_pty_slow() {
        if Command::new("script").arg("--version").output().is_err() {
            panic!("script (util-linux) is needed to run real bash in a pty");
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::create_dir_all(root.join("Desktop")).unwrap();
        for f in ["docfile", "a b", "notes.txt", "notes.md", ".hidden"] {
            std::fs::write(root.join(f), "").unwrap();
        }
        for f in ["zqalpha", "zqbeta", "zqgamma"] {
            let p = root.join("bin").join(f);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::os::unix::fs::symlink(root.join("docs"), root.join("linkdir")).unwrap();
        let history = vec!["echo one".to_owned(), "ls -la /tmp".to_owned()];
        let ctx = Real {
            root: root.to_owned(),
            history,
        };
        let cases: &[&[&[u8]]] = &[
            &[
                b"echo hello",
                b"\x1b[D",
                b"\x1b[D",
                b"X",
                b"\x1b[C",
                b"\x7f",
                b"\x01",
                b"\x05",
            ],
            &[
                b"abc def ghi",
                b"\x17",
                b"\x1bb",
                b"\x1bd",
                b"\x02",
                b"\x06",
                b"\x0b",
            ],
            &[
                b"\x1b[A", b"\x1b[A", b"\x1b[A", b"\x1b[B", b"\x1b[B", b"\x1b[B",
            ],
            &[b"ls", b"\x1b[A", b"\x1b[B"],
            &[b"x\x1b[200~pasted text\x1b[201~", b"y"],
            &[b"cat not", b"\t", b"\t"],
            &[b"cat doc", b"\t", b"\t"],
            &[b"ls a", b"\t"],
            &[b"ls linkd", b"\t"],
            &[b"zq", b"\t", b"\t"],
            &[b"zqb", b"\t"],
            &[b"Desk", b"\t"],
            &[b"cat .h", b"\t"],
            &[b"ab", b"\x0c"],
            &[b"echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"],
        ];
        let mut report = String::new();
        let mut same = 0;
        for steps in cases {
            let real = real_bash(root, steps);
            let mine = ours(&ctx, steps);
            if real == mine {
                same += 1;
            } else {
                report.push_str(&format!(
                    "\nkeys {:?}\nreal {:?}\nours {:?}\n",
                    steps
                        .iter()
                        .map(|s| String::from_utf8_lossy(s))
                        .collect::<Vec<_>>(),
                    String::from_utf8_lossy(&real),
                    String::from_utf8_lossy(&mine)
                ));
            }
        }
        eprintln!("line editor oracle: {same}/{} cases identical", cases.len());
        assert!(report.is_empty(), "{report}");
    }
}
