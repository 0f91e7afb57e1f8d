//! The editor against bytes captured from real bash 5.2 in a pty (TERM=xterm, 80
//! columns, `PS1='P$ '`): each expected string below is what bash wrote for the keys.

use super::*;
use proptest::prelude::*;

/// (directory as typed, entries): (name, dir, link to dir).
type Tree = Vec<(&'static str, Vec<(&'static str, bool, bool)>)>;

struct Fake {
    history: Vec<String>,
    cols: usize,
    utf8: bool,
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
    fn columns(&self) -> usize {
        self.cols
    }
    fn utf8(&self) -> bool {
        self.utf8
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
        cols: 80,
        utf8: false,
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

/// Keys and what real bash 5.2 wrote for each step (captured in a pty with TERM=xterm,
/// `PS1='P$ '` and this history, by `script`-style runs of `bash --norc --noprofile -i`;
/// a step that accepts or interrupts the line is cut where the shell's own output
/// begins). Each case starts on a fresh prompt.
const HISTORY: [&str; 4] = ["echo one", "ls -la /tmp", "cat /etc/passwd", "echo two"];

/// ^R at 80 columns.
const SEARCH: &[(&[&[u8]], &[&str])] = &[
    (
        &[b"\x12", b"l", b"s", b"\x12", b"\x12", b"\x12", b"\x0d"],
        &[
            "\x0d(reverse-i-search)`': ",
            "\x08\x08\x08l': ls -\x1b[7ml\x1b[27ma /tmp\x08\x08\x08\x08\x08\x08\x08",
            "\x08\x08\x08\x08\x08\x08\x08\x1b[1@s': \x1b[7mls\x1b[27m -l\x08\x08\x08\x08\x08",
            "\x07\x0d(\x1b[7@failed reverse-i-search)`ls': ls\x08\x08",
            "\x07",
            "\x07",
            "\x0d\x1b[28PP$ \x0d\x0a\x1b[?2004l\x0d",
        ],
    ),
    (
        &[
            b"\x12", b"o", b"\x12", b"\x12", b"\x12", b"\x7f", b"\x7f", b"\x7f",
        ],
        &[
            "\x0d(reverse-i-search)`': ",
            "\x08\x08\x08o': echo tw\x1b[7mo\x1b[27m\x08",
            "\x08\x08\x08\x08\x1b[7mo\x1b[27m two\x08\x08\x08\x08\x08",
            "o \x1b[7mo\x1b[27mne\x08\x08\x08",
            "\x08\x08\x1b[7mo\x1b[27m o\x08\x08\x08",
            "\x07\x07\x0d(failed reverse-i-search)`': echo one\x08\x08\x08\x08\x08",
            "\x07\x07\x07\x0d(failed reverse-i-search)`': echo one\x08\x08\x08\x08\x08",
            "\x07\x07\x07\x0d(failed reverse-i-search)`': echo one\x08\x08\x08\x08\x08",
        ],
    ),
    (
        &[
            b"\x12", b"e", b"c", b"h", b"o", b"x", b"y", b"\x7f", b"\x7f", b"\x7f",
        ],
        &[
            "\x0d(reverse-i-search)`': ",
            "\x08\x08\x08e': \x1b[7me\x1b[27mcho two\x08\x08\x08\x08\x08\x08\x08\x08",
            "\x08\x08\x08\x1b[1@c': \x1b[7mec\x1b[27m\x08\x08",
            "\x08\x08\x08\x1b[1@h': \x1b[7mech\x1b[27m\x08\x08\x08",
            "\x08\x08\x08\x1b[1@o': \x1b[7mecho\x1b[27m\x08\x08\x08\x08",
            "\x07\x0d(\x1b[8@failed reverse-i-search)`echox': echo\x08\x08\x08\x08",
            "\x07\x08\x08\x08\x1b[1@y': ",
            "\x07\x08\x08\x08\x08\x1b[1P': ",
            "\x0d(\x1b[8Preverse-i-search)`echo': \x1b[7mecho\x1b[27m\x08\x08\x08\x08",
            "\x08\x08\x08\x08\x1b[1P': \x1b[7mech\x1b[27mo\x08\x08\x08\x08",
        ],
    ),
    (
        &[b"\x12", b"ca", b"\x01"],
        &[
            "\x0d(reverse-i-search)`': ",
            "\x08\x08\x08c': e\x1b[7mc\x1b[27mho two\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08a': \x1b[7mca\x1b[27mt /etc/passwd\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08",
            "\x0d\x1b[21PP$ ca\x08\x08",
        ],
    ),
    (
        &[b"\x12", b"ca", b"\x05"],
        &[
            "\x0d(reverse-i-search)`': ",
            "\x08\x08\x08c': e\x1b[7mc\x1b[27mho two\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08a': \x1b[7mca\x1b[27mt /etc/passwd\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08",
            "\x0d\x1b[21PP$ ca\x08\x08cat /etc/passwd",
        ],
    ),
    (
        &[b"\x12", b"ca", b"\x1b[D"],
        &[
            "\x0d(reverse-i-search)`': ",
            "\x08\x08\x08c': e\x1b[7mc\x1b[27mho two\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08a': \x1b[7mca\x1b[27mt /etc/passwd\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08",
            "\x0d\x1b[21PP$ ca\x08\x08\x07",
        ],
    ),
    (
        &[b"\x12", b"ca", b"\x1b[C"],
        &[
            "\x0d(reverse-i-search)`': ",
            "\x08\x08\x08c': e\x1b[7mc\x1b[27mho two\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08a': \x1b[7mca\x1b[27mt /etc/passwd\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08",
            "\x0d\x1b[21PP$ ca\x08\x08c",
        ],
    ),
    (
        &[b"\x12", b"ca", b"\x1b[A"],
        &[
            "\x0d(reverse-i-search)`': ",
            "\x08\x08\x08c': e\x1b[7mc\x1b[27mho two\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08a': \x1b[7mca\x1b[27mt /etc/passwd\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08",
            "\x0d\x1b[21PP$ ca\x08\x08\x1b[4Pls -la /tmp",
        ],
    ),
    (
        &[b"\x12", b"ca", b"\x1b"],
        &[
            "\x0d(reverse-i-search)`': ",
            "\x08\x08\x08c': e\x1b[7mc\x1b[27mho two\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08a': \x1b[7mca\x1b[27mt /etc/passwd\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08",
            "\x0d\x1b[21PP$ ca\x08\x08",
        ],
    ),
    (
        &[b"\x12", b"\x07"],
        &["\x0d(reverse-i-search)`': ", "\x0dP$ \x1b[K"],
    ),
    (
        &[b"\x12", b"ab", b"\x03"],
        &[
            "\x0d(reverse-i-search)`': ",
            "\x08\x08\x08a': cat /etc/p\x1b[7ma\x1b[27msswd\x08\x08\x08\x08\x08\x07\x0d(\x1b[8@failed reverse-i-search)`ab': cat /etc/pa\x08",
            "^C\x1b[?2004l\x0d\x1b[?2004h\x1b[?2004l\x0d\x0d\x0a",
        ],
    ),
    (&[b"\x12", b"\x12"], &["\x0d(reverse-i-search)`': ", ""]),
    (
        &[b"ab\x12", b"\x7f"],
        &[
            "ab\x0d(reverse-i-search)`': ab",
            "\x07\x07\x07\x0d(failed reverse-i-search)`': ab",
        ],
    ),
    (
        &[b"echo hi", b"\x12", b"e", b"c", b"\x12", b"x", b"\x07"],
        &[
            "echo hi",
            "\x0d(reverse-i-search)`': echo hi",
            "\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x1b[1@e': \x1b[7me\x1b[27m\x08",
            "\x08\x08\x08\x1b[1@c': \x1b[7mec\x1b[27m\x08\x08",
            "\x1b[7mec\x1b[27mho two\x08\x08\x08\x08\x08\x08\x08\x08",
            "\x07\x0d(\x1b[8@failed reverse-i-search)`ecx': ec\x08\x08",
            "\x0dP$ echo hi\x1b[K",
        ],
    ),
    (
        &[b"\x12", b"cat", b"\x17", b"\x17", b"\x19"],
        &[
            "\x0d(reverse-i-search)`': ",
            "\x08\x08\x08c': e\x1b[7mc\x1b[27mho two\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08a': \x1b[7mca\x1b[27mt /etc/passwd\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x1b[1@t': \x1b[7mcat\x1b[27m\x08\x08\x08",
            "\x07",
            "\x07",
            "\x08\x08\x08 /etc/passwd': \x1b[7mcat /etc/passwd\x1b[27m\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08",
        ],
    ),
    (
        &[b"\x12", b"o", b"\x0d"],
        &[
            "\x0d(reverse-i-search)`': ",
            "\x08\x08\x08o': echo tw\x1b[7mo\x1b[27m\x08",
            "\x0d\x1b[20PP$ echo two\x08\x0d\x0a\x1b[?2004l\x0d",
        ],
    ),
    (
        &[b"\x12", b"tmp", b"\x1b\x12", b"\x12"],
        &[
            "\x0d(reverse-i-search)`': ",
            "\x08\x08\x08t': echo \x1b[7mt\x1b[27mwo\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08m': ls -la /\x1b[7mtm\x1b[27mp\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08p': ls -la /\x1b[7mtmp\x1b[27m\x08\x08\x08",
            "\x0d\x1b[22PP$ ls -la /tmp\x08\x08\x08\x07",
            "\x0d(reverse-i-search)`': ls -la /tmp\x08\x08\x08",
        ],
    ),
    (
        &[b"\x1b[A\x1b[A", b"\x12", b"e", b"\x12", b"\x0a"],
        &[
            "echo two\x0dP$ cat /etc/passwd",
            "\x0d(reverse-i-search)`': cat /etc/passwd",
            "\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x1b[1@e': cat /\x1b[7me\x1b[27m\x08",
            "\x08\x08\x08\x08\x08\x1b[7Pecho on\x1b[7me\x1b[27m\x08",
            "\x0d\x1b[20PP$ echo one\x08",
        ],
    ),
    (
        &[b"\x12", b"ls", b"\x09"],
        &[
            "\x0d(reverse-i-search)`': ",
            "\x08\x08\x08l': ls -\x1b[7ml\x1b[27ma /tmp\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x1b[1@s': \x1b[7mls\x1b[27m -l\x08\x08\x08\x08\x08",
            "\x0d\x1b[21PP$ ls\x08\x08\x07",
        ],
    ),
];
/// A line wider than the terminal, at 30 columns.
const WRAPPED: &[(&[&[u8]], &[&str])] = &[
    (&[b"echo aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd", b"\x1b[D", b"\x01", b"\x05", b"\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D", b"X", b"\x7f", b"\x7f", b"\x1b[3~", b"\x1b[C"], &["echo aaaaaaaaaabbbbbbbbbbcc \x0dccccccccdddddddddd", "\x08", "\x1b[A\x0dP$ ", "\x0d\x0a\x0dccccccccdddddddddd", "\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08", "\x1b[1@X", "\x08\x1b[1P", "cccc\x1b[1P\x0dcc", "cccc\x1b[1P\x0dcc", "c"]),
    (&[b"echo aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd", b"\x01", b"\x03"], &["echo aaaaaaaaaabbbbbbbbbbcc \x0dccccccccdddddddddd", "\x1b[A\x0dP$ ", "^C\x0d\x0a\x0d\x1b[?2004l\x0d\x1b[?2004h\x1b[?2004l\x0d\x0d\x0a"]),
    (&[b"echo aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd", b"\x01", b"\x0d"], &["echo aaaaaaaaaabbbbbbbbbbcc \x0dccccccccdddddddddd", "\x1b[A\x0dP$ ", "\x0d\x0a\x0d\x0d\x0a\x1b[?2004l\x0d"]),
    (&[b"echo aaaaaaaaaabbbbbbbbbbcc", b"\x0d"], &["echo aaaaaaaaaabbbbbbbbbbcc \x0d", "\x1b[AP$ echo aaaaaaaaaabbbbbbbbbbc\x1b[Kc\x0d\x0a\x1b[?2004l\x0d"]),
    (&[b"echo aaaaaaaaaabbbbbbbbbbcc", b"\x7f", b"x"], &["echo aaaaaaaaaabbbbbbbbbbcc \x0d", "\x1b[AP$ echo aaaaaaaaaabbbbbbbbbbc\x1b[K\x0d\x0a\x0d\x1b[K\x1b[AP$ echo aaaaaaaaaabbbbbbbbbbc", "x \x0d"]),
    (&[b"echo aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd", b"\x01", b"\x0c"], &["echo aaaaaaaaaabbbbbbbbbbcc \x0dccccccccdddddddddd", "\x1b[A\x0dP$ ", "\x1b[H\x1b[2JP$ echo aaaaaaaaaabbbbbbbbbbccc\x0dccccccccdddddddddd\x1b[A\x0dP$ "]),
    (&[b"echo aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd", b"\x01", b"\x1bf", b"\x1bf", b"\x1bf", b"\x1bb", b"\x02", b"\x06", b"\x06", b"\x06", b"\x06"], &["echo aaaaaaaaaabbbbbbbbbbcc \x0dccccccccdddddddddd", "\x1b[A\x0dP$ ", "echo", "\x0d\x0a\x0dccccccccdddddddddd", "", "\x1b[A\x0dP$ echo ", "\x08", " ", "a", "a", "a"]),
    (&[b"echo aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd", b"\x01", b"\x0b"], &["echo aaaaaaaaaabbbbbbbbbbcc \x0dccccccccdddddddddd", "\x1b[A\x0dP$ ", "\x1b[K\x0d\x0a\x0d\x1b[K\x1b[AP$ "]),
    (&[b"echo aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd", b"\x01\x1bf", b"\x15"], &["echo aaaaaaaaaabbbbbbbbbbcc \x0dccccccccdddddddddd", "\x1b[A\x0dP$ echo", "\x08\x08\x08\x08 aaaaaaaaaabbbbbbbbbbcccc\x0d\x0a\x0dcccc\x1b[4P\x1b[A\x08"]),
    (&[b"echo aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd", b"\x01\x1bf\x1bf", b"\x17", b"\x1bd"], &["echo aaaaaaaaaabbbbbbbbbbcc \x0dccccccccdddddddddd", "\x1b[A\x0dP$ echo\x0d\x0a\x0dccccccccdddddddddd", "\x1b[A\x0dP$ echo \x1b[K\x0d\x0a\x0d\x1b[K\x1b[AP$ echo ", ""]),
    (&[b"echo aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd", b"\x01", b"Z", b"\x04", b"\x1b[3~"], &["echo aaaaaaaaaabbbbbbbbbbcc \x0dccccccccdddddddddd", "\x1b[A\x0dP$ ", "Zecho aaaaaaaaaabbbbbbbbbb\x0d\x0a\x0dcccccccc\x1b[1@c\x1b[A\x08\x08\x08\x08\x08", "cho aaaaaaaaaabbbbbbbbbbc\x0d\x0a\x0dcccccccc\x1b[1P\x1b[A\x08\x08\x08\x08", "ho aaaaaaaaaabbbbbbbbbbc\x0d\x0a\x0dccccccc\x1b[1P\x1b[A\x08\x08\x08"]),
    (&[b"echo aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd", b"\x1b[A", b"\x1b[B", b"\x1b[A\x1b[A"], &["echo aaaaaaaaaabbbbbbbbbbcc \x0dccccccccdddddddddd", "\x1b[A\x0dP$ echo two\x1b[K\x0d\x0a\x0d\x1b[K\x1b[AP$ echo two", "\x08\x08\x08aaaaaaaaaabbbbbbbbbbccc\x0dccccccccdddddddddd", "\x1b[A\x0dP$ echo two\x1b[K\x0d\x0a\x0d\x1b[K\x1b[AP$ echo two\x0dP$ cat /etc/passwd"]),
    (&[b"echo one two three four five six seven eight nine ten eleven twelve thirteen", b"\x12", b"o", b"\x12", b"\x12", b"\x12", b"\x07"], &["echo one two three four fiv \x0de six seven eight nine ten ele \x0dven twelve thirteen", "\x1b[A\x1b[A\x0d(reverse-i-search)`': echo one two three four five six seven eight nine ten eleven twelve t\x0dthirteen", "\x1b[A\x1b[A\x1b[A-i-search)`o': echo one two three f\x1b[7mo\x1b[27mur five six seven eight nine ten eleven twelve \x1b[1@t\x1b[A\x1b[Atwo three f", "\x0de tw\x1b[7mo\x1b[27m three fo\x0de tw", "\x1b[Aerse-i-search)`o': echo \x1b[7mo\x1b[27m\x0d\x0a\x0de two\x1b[Arse-i-search)`o': echo ", "\x08\x08\x1b[7mo\x1b[27m o\x08\x08\x08", "\x0dP$ echo one two three four five six seven eight nine ten el\x0d\x0a\x0d\x1b[11Pven twelve thirteen\x0d\x0a\x0d\x1b[K\x1b[Aven twelve thirteen"]),
    (&[b"echo one two three four five six seven eight nine ten eleven twelve thirteen", b"\x12", b"t", b"\x1b[A"], &["echo one two three four fiv \x0de six seven eight nine ten ele \x0dven twelve thirteen", "\x1b[A\x1b[A\x0d(reverse-i-search)`': echo one two three four five six seven eight nine ten eleven twelve t\x0dthirteen", "\x1b[A\x1b[A\x1b[A-i-search)`t': echo one two three four five six seven eight nine ten eleven twelve \x1b[1@thir\x1b[7mt\x1b[27m\x08", "\x1b[A\x1b[A\x1b[A\x0dP$ echo one two three four five six seven eight nine ten el\x0d\x0a\x0d\x1b[11Pven twelve thirteen\x0d\x0a\x0d\x1b[K\x1b[Aven twelve thir\x1b[A\x1b[A\x08\x08\x08\x08\x08\x08\x08two\x1b[K\x0d\x0a\x0d\x1b[K\x0d\x0a\x0d\x1b[K\x1b[A\x1b[AP$ echo two"]),
    (&[b"xxxxxxxxxxxxxxxxxxxxxxxxxxx", b"\x08\x08\x08", b"abcdef", b"\x05", b"\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f"], &["xxxxxxxxxxxxxxxxxxxxxxxxxxx \x0d", "\x1b[AP$ xxxxxxxxxxxxxxxxxxxxxxxxxx\x1b[K\x0d\x0a\x0d\x1b[K\x1b[AP$ xxxxxxxxxxxxxxxxxxxxxxxxxx\x08 \x08\x08 \x08", "abc \x0ddef", "", "\x08 \x08\x08 \x08\x08 \x08\x1b[AP$ xxxxxxxxxxxxxxxxxxxxxxxxabc \x0d\x1b[K\x1b[AP$ xxxxxxxxxxxxxxxxxxxxxxxxab\x1b[K\x0d\x0a\x0d\x1b[K\x1b[AP$ xxxxxxxxxxxxxxxxxxxxxxxxab\x08 \x08\x08 \x08\x08 \x08\x08 \x08"]),
(&[b"echo aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd", b"\x01", b"\x1b[200~PASTED\x1b[201~", b"q"], &["echo aaaaaaaaaabbbbbbbbbbcc \x0dccccccccdddddddddd", "\x1b[A\x0dP$ ", "\x1b[7mPASTED\x1b[27mecho aaaaaaaaaabbbbbbb\x1b[6@bbbccc\x1b[A\x1b[7mED\x1b[27m", "\x0dP$ PASTEDqecho aaaaaaaaaa\x0d\x0a\x0dbbbb\x1b[1@b\x1b[ASTEDq"]),
];

fn replay(cases: &[(&[&[u8]], &[&str])], cols: usize) -> String {
    let mut report = String::new();
    for (keys, want) in cases {
        let mut ctx = fake();
        ctx.cols = cols;
        ctx.history = HISTORY.iter().map(|s| s.to_string()).collect();
        let (got, _) = run(&mut Editor::new(4096), &ctx, keys);
        if got != *want {
            report.push_str(&format!(
                "\nkeys {:?}\nreal {want:?}\nours {got:?}\n",
                keys.iter()
                    .map(|k| String::from_utf8_lossy(k))
                    .collect::<Vec<_>>()
            ));
        }
    }
    report
}

#[test]
fn reverse_search_as_readline_shows_it() {
    let report = replay(SEARCH, 80);
    assert!(report.is_empty(), "{report}");
}

#[test]
fn wrapped_lines_redrawn_as_readline_does() {
    let report = replay(WRAPPED, 30);
    assert!(report.is_empty(), "{report}");
}

#[test]
fn a_search_accepted_and_its_line_run() {
    let mut ctx = fake();
    ctx.history = HISTORY.iter().map(|s| s.to_string()).collect();
    let mut e = Editor::new(4096);
    let (_, ev) = run(&mut e, &ctx, &[b"\x12ls", b"\r"]);
    assert_eq!(ev, Some(Event::Line(b"ls -la /tmp".to_vec())));
    // ^R ^R searches for the last search's string again.
    let (out, _) = run(&mut e, &ctx, &[b"\x12", b"\x12"]);
    // (bash 5.2's bytes: the prompt with the string, then the match.)
    assert_eq!(out[0], "\r(reverse-i-search)`': ");
    assert_eq!(
        out[1],
        "\x08\x08\x08\x1b[2@ls': \x1b[7mls\x1b[27m -la /tmp\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08"
    );
    // ^G leaves the line as it was.
    let (_, ev) = run(&mut e, &ctx, &[b"\x07abc\r"]);
    assert_eq!(ev, Some(Event::Line(b"abc".to_vec())));
}

#[test]
fn the_search_string_is_capped() {
    let mut ctx = fake();
    ctx.history = vec!["x".repeat(1000)];
    let mut e = Editor::new(4096);
    let keys = vec![b'x'; 1000];
    let (_, _) = run(&mut e, &ctx, &[b"\x12", &keys]);
    let Some(s) = &e.search else {
        panic!("still searching")
    };
    assert_eq!(s.string_len(), search::MAX_SEARCH);
    // ^Y adds no more either.
    let (_, _) = run(&mut e, &ctx, &[b"\x19\x19"]);
    let Some(s) = &e.search else {
        panic!("still searching")
    };
    assert_eq!(s.string_len(), search::MAX_SEARCH);
}

#[test]
fn the_width_is_the_terminals() {
    // The same 50 characters wrap at 40 columns and not at 80.
    let mut ctx = fake();
    ctx.cols = 40;
    let keys = vec![b'y'; 50];
    let (out, _) = run(&mut Editor::new(4096), &ctx, &[&keys, b"\x01"]);
    assert_eq!(out[0], format!("{} \r{}", "y".repeat(37), "y".repeat(13)));
    assert_eq!(out[1], "\x1b[A\rP$ ");
    ctx.cols = 80;
    let (out, _) = run(&mut Editor::new(4096), &ctx, &[&keys, b"\x01"]);
    assert_eq!(out[0], "y".repeat(50));
    assert_eq!(out[1], "\rP$ ");
}

#[test]
fn hostile_bytes_in_a_search_and_a_narrow_terminal() {
    let mut ctx = fake();
    ctx.history = vec!["\x1b[2J\x07\u{7f}".into(), "ü\tx".into(), String::new()];
    for cols in [0, 1, 2, 3, 7] {
        ctx.cols = cols;
        let mut e = Editor::new(64);
        let hostile: &[&[u8]] = &[
            b"\x12\x1b\x12\x7f\x7f\x17\x19\x12\x12\xff\xc3\x12",
            b"\x12\x00\x12\x07\x12\x0a\x12\x03",
            b"\x1b[200~\x12\x1b[201~\x12\x1b[A\x12\x1b[B\x12",
            b"\x12\t\t\t\x0c\x15\x0b\x12\x05\x01\x12\x0e\x10\x12\r",
        ];
        for chunk in hostile {
            let mut out = Vec::new();
            for &b in *chunk {
                let _ = e.feed(b, &ctx, &mut out);
                assert!(e.line().len() <= 64);
                assert!(e.cursor <= e.line().len());
            }
        }
    }
}

/// One step of a resize case: keys, or the terminal resized to a width (SIGWINCH).
#[derive(Debug, Clone, Copy)]
enum Step {
    K(&'static [u8]),
    W(usize),
}

const LONG: &[u8] = b"echo aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd";
const LONGER: &[u8] = b"echo aaaaaaaaaabbbbbbbbbbccccccccccddddddddddeeeeeeeeeeffffffffff";

/// Resizes with a line being edited, from bash 5.2.15 in a pty (TERM=xterm, 24 rows,
/// `PS1='P$ '`, history `echo one`), the pty resized with TIOCSWINSZ as a terminal
/// does: (width at first, steps, what each step wrote). The oracle below runs the
/// same cases against a live bash.
#[allow(clippy::type_complexity)]
const RESIZES: &[(usize, &[Step], &[&str])] = &[
    // An empty line, a short one.
    (80, &[Step::W(60)], &["\r\x1b[K\rP$ "]),
    (80, &[Step::K(b"echo hello"), Step::W(60)], &["echo hello", "\r\x1b[K\rP$ echo hello"]),
    // A wrapped line: cleared from the bottom screen line up, then drawn at the new width.
    (30, &[Step::K(LONG), Step::W(40)], &["echo aaaaaaaaaabbbbbbbbbbcc \rccccccccdddddddddd", "\r\x1b[K\r\x1b[A\x1b[K\rP$ echo aaaaaaaaaabbbbbbbbbbccccccccccddd\rdddddddd"]),
    (30, &[Step::K(LONG), Step::W(20)], &["echo aaaaaaaaaabbbbbbbbbbcc \rccccccccdddddddddd", "\r\x1b[K\r\x1b[A\x1b[K\rP$ echo aaaaaaaaaabbb\rbbbbbbbbccccccccccddd\rdddddddd"]),
    // The cursor on the first screen line: down to the last first.
    (30, &[Step::K(LONG), Step::K(b"\x01"), Step::W(40)], &["echo aaaaaaaaaabbbbbbbbbbcc \rccccccccdddddddddd", "\x1b[A\rP$ ", "\r\r\n\r\x1b[K\r\x1b[A\x1b[K\rP$ echo aaaaaaaaaabbbbbbbbbbccccccccccddd\rdddddddd\x1b[A\rP$ "]),
    // The cursor in the middle of a line on three screen lines.
    (30, &[Step::K(LONGER), Step::K(b"\x01\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06"), Step::W(50)], &["echo aaaaaaaaaabbbbbbbbbbcc \rccccccccddddddddddeeeeeeeeeeff \rffffffff", "\x1b[A\x1b[A\rP$ echo aaaaaaaaaabbbbbbbbbbc\r\n\rcccccc", "\r\r\n\r\x1b[K\r\x1b[A\x1b[K\r\x1b[A\x1b[K\rP$ echo aaaaaaaaaabbbbbbbbbbccccccccccddddddddddeee\reeeeeeeeffffffffff\x1b[Abbbbbbbbbbcccccccc"]),
    (80, &[Step::K(b"echo hello"), Step::K(b"\x02\x02"), Step::W(30)], &["echo hello", "\x08\x08", "\r\x1b[K\rP$ echo hello\x08\x08"]),
    // Editing goes on at the new width.
    (30, &[Step::K(LONG), Step::W(40), Step::K(b"xyz"), Step::K(b"\x01")], &["echo aaaaaaaaaabbbbbbbbbbcc \rccccccccdddddddddd", "\r\x1b[K\r\x1b[A\x1b[K\rP$ echo aaaaaaaaaabbbbbbbbbbccccccccccddd\rdddddddd", "xyz", "\x1b[A\rP$ "]),
    (20, &[Step::K(LONG), Step::K(b"\x02\x02\x02"), Step::W(45), Step::K(b"Q")], &["echo aaaaaaaaaabb \rbbbbbbbbccccccccccdd \rdddddddd", "\x08\x08\x08", "\r\x1b[K\r\x1b[A\x1b[K\r\x1b[A\x1b[K\rP$ echo aaaaaaaaaabbbbbbbbbbccccccccccdddddddd\rddd\r", "\x1b[1@Q"]),
    // A paste still coming: the line as it was before it.
    (80, &[Step::K(b"ab\x1b[200~xy"), Step::W(60), Step::K(b"z\x1b[201~")], &["ab", "\r\x1b[K\rP$ ab", "\x1b[7mxyz\x1b[27m"]),
    // ^R: the search's prompt and its highlighted match.
    (80, &[Step::K(b"\x12on"), Step::W(60), Step::K(b"e")], &["\r(reverse-i-search)`': \x08\x08\x08o': echo \x1b[7mo\x1b[27mne\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x1b[1@n': echo \x1b[7mon\x1b[27m\x08\x08", "\r\x1b[K\r(reverse-i-search)`on': echo \x1b[7mon\x1b[27me\x08\x08\x08", "\x08\x08\x08\x08\x08\x08\x08\x08e': echo \x1b[7mone\x1b[27m\x08\x08\x08"]),
    (80, &[Step::K(b"\x12"), Step::W(60), Step::K(b"o")], &["\r(reverse-i-search)`': ", "\r\x1b[K\r(reverse-i-search)`': ", "\x08\x08\x08o': echo \x1b[7mo\x1b[27mne\x08\x08\x08"]),
    (80, &[Step::K(b"\x12on"), Step::W(30)], &["\r(reverse-i-search)`': \x08\x08\x08o': echo \x1b[7mo\x1b[27mne\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x08\x1b[1@n': echo \x1b[7mon\x1b[27m\x08\x08", "\r\x1b[K\r(reverse-i-search)`on': echo \x1b[7mo\x1b[27m\x1b[7mn\x1b[27m\r\x1b[7mn\x1b[27me\x1b[Aeverse-i-search)`on': echo "]),
    (30, &[Step::K(b"\x12on"), Step::W(40)], &["\r(reverse-i-search)`': \x08\x08\x08o': echo \x1b[7mo\x1b[27mne\re\x1b[Areverse-i-search)`o': echo \x08\x08\x08\x08\x08\x08\x08\x08n': echo \x1b[7mo\x1b[27m\x1b[7mn\x1b[27me\x1b[Aeverse-i-search)`on': echo ", "\r\r\n\r\x1b[K\r\x1b[A\x1b[K\r(reverse-i-search)`on': echo \x1b[7mon\x1b[27me\x08\x08\x08"]),
];

/// Feeds `steps` at `cols` columns to a fresh editor; what each step wrote.
fn run_resizing(cols: usize, history: &[&str], steps: &[Step], utf8: bool) -> Vec<String> {
    let mut ctx = fake();
    ctx.cols = cols;
    ctx.utf8 = utf8;
    ctx.history = history.iter().map(|s| s.to_string()).collect();
    let mut e = Editor::new(4096);
    let mut outs = Vec::new();
    for step in steps {
        let mut out = Vec::new();
        match *step {
            Step::K(keys) => {
                for &b in keys {
                    let _ = e.feed(b, &ctx, &mut out);
                }
            }
            Step::W(w) => {
                let old = ctx.cols;
                ctx.cols = w;
                e.resize(old, &ctx, &mut out);
            }
        }
        outs.push(String::from_utf8_lossy(&out).into_owned());
    }
    outs
}

#[test]
fn a_resize_redraws_the_line_as_readline_does() {
    let mut report = String::new();
    for (cols, steps, want) in RESIZES {
        let got = run_resizing(*cols, &["echo one"], steps, false);
        if got != *want {
            report.push_str(&format!(
                "\nsteps {steps:?} at {cols}\nreal {want:?}\nours {got:?}\n"
            ));
        }
    }
    assert!(report.is_empty(), "{report}");
}

#[test]
fn a_resize_at_odd_widths_never_panics() {
    // 0 and 1 are 80 to readline; a huge width is one screen line.
    let widths = [0, 1, 2, 3, 1000, 65535, usize::MAX / 4];
    for &from in &widths {
        for &to in &widths {
            for keys in [
                &b""[..],
                LONGER,
                b"\x12o",
                b"ab\x1b[200~xy",
                b"\xc3\xbc\xc3",
            ] {
                let mut ctx = fake();
                ctx.cols = from;
                ctx.history = vec!["echo one".into()];
                let mut e = Editor::new(64);
                let mut out = Vec::new();
                for &b in keys {
                    let _ = e.feed(b, &ctx, &mut out);
                }
                ctx.cols = to;
                let mut redraw = Vec::new();
                e.resize(from, &ctx, &mut redraw);
                // One redraw: a bounded clear and the prompt and line once.
                assert!(redraw.len() <= 16 * 80 + 4 * 64 + 256, "{}", redraw.len());
                let _ = e.feed(b'x', &ctx, &mut out);
            }
        }
    }
}

proptest! {
    #[test]
    fn any_bytes_never_panic_and_stay_bounded(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..20)
    ) {
        let mut ctx = fake();
        ctx.history = vec!["a".into(), "long line ü".into()];
        // Narrow: most keys redraw a wrapped line.
        ctx.cols = 1 + chunks.len() % 12;
        ctx.utf8 = chunks.len() % 2 == 0;
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

#[test]
fn utf8_characters_as_readline_decodes_them() {
    // (length in bytes, columns)
    assert_eq!(char_at(b"a", 0), (1, 1));
    assert_eq!(char_at("é".as_bytes(), 0), (2, 1));
    assert_eq!(char_at("€".as_bytes(), 0), (3, 1));
    assert_eq!(char_at("漢".as_bytes(), 0), (3, 2));
    assert_eq!(char_at("😀".as_bytes(), 0), (4, 2));
    assert_eq!(char_at("\u{301}".as_bytes(), 0), (2, 0));
    // Invalid: a byte alone, one column (a lone lead, a truncated sequence, a stray
    // continuation, 0xff, an overlong form, a surrogate).
    for bad in [
        &b"\xc3"[..],
        b"\xc3a",
        b"\xe2\x82",
        b"\x80",
        b"\xff",
        b"\xc0\xaf",
        b"\xed\xa0\x80",
    ] {
        assert_eq!(char_at(bad, 0), (1, 1), "{bad:?}");
    }
    assert_eq!(char_width('\u{7}'), 1);
    assert_eq!(char_width('\u{a0}'), 1);
    assert_eq!(char_width('\u{ff21}'), 2);
    assert_eq!(typed(b"\xc3"), Typed::Incomplete);
    assert_eq!(typed(b"\xe2\x82"), Typed::Incomplete);
    assert_eq!(typed(b"\xc3\xa9"), Typed::Complete);
    assert_eq!(typed(b"\xc3\xc3"), Typed::Invalid);
    assert_eq!(typed(b"\xff"), Typed::Invalid);
    assert_eq!(typed(b"\x80"), Typed::Invalid);
}

#[test]
fn character_boundaries_skip_combining_marks() {
    let s = "aé漢e\u{301}\u{302}x".as_bytes();
    // a=0, é=1..3, 漢=3..6, e=6, U+0301=7..9, U+0302=9..11, x=11
    assert_eq!(next_char(s, 0), 1);
    assert_eq!(next_char(s, 1), 3);
    assert_eq!(next_char(s, 3), 6);
    assert_eq!(next_char(s, 6), 11);
    assert_eq!(next_char(s, 11), 12);
    assert_eq!(next_char(s, 12), 12);
    assert_eq!(prev_char(s, 12), 11);
    assert_eq!(prev_char(s, 11), 6);
    assert_eq!(prev_char(s, 9), 6);
    assert_eq!(prev_char(s, 6), 3);
    assert_eq!(prev_char(s, 3), 1);
    assert_eq!(prev_char(s, 1), 0);
    assert_eq!(prev_char(s, 0), 0);
    // Invalid bytes split as decoding from the start splits them.
    let s = b"\xc3\xc3\xa9\x80\x80\x80\x80\x80z\xe2\x82";
    assert_eq!(prev_char(s, s.len()), s.len() - 1);
    assert_eq!(prev_char(s, s.len() - 1), s.len() - 2);
    assert_eq!(prev_char(s, 9), 8);
    assert_eq!(prev_char(s, 4), 3);
    assert_eq!(prev_char(s, 3), 1);
    assert_eq!(prev_char(s, 1), 0);
    // Against a plain scan from the start, everywhere, on awkward bytes.
    let s = b"\xf0\x9f\x98\x80\xf0\x9f\x98\xe2\x82\xac\xcc\x81\xbf\xc3\xa9\xcc\x81a";
    let mut starts = vec![(0, true)];
    let mut p = 0;
    while p < s.len() {
        let (len, w) = char_at(s, p);
        starts.last_mut().unwrap().1 = w != 0;
        p += len;
        starts.push((p, true));
    }
    for &(i, _) in &starts {
        let want = starts
            .iter()
            .filter(|&&(k, nonzero)| k < i && nonzero)
            .map(|&(k, _)| k)
            .next_back()
            .unwrap_or(0);
        assert_eq!(prev_char(s, i), want, "at {i}");
    }
}

/// Keys in a UTF-8 locale (bytes from bash 5.2.15 with `LANG=C.UTF-8`, 80 columns).
#[test]
fn utf8_keys_as_readline_shows_them() {
    let mut ctx = fake();
    ctx.utf8 = true;
    let mut e = Editor::new(4096);
    let (out, _) = run(
        &mut e,
        &ctx,
        &[
            "é".as_bytes(),
            b"ab",
            b"\x1b[D",
            b"\x1b[D",
            b"\x1b[D",
            b"\x7f",
            b"x",
        ],
    );
    assert_eq!(
        out,
        [
            "é",
            "ab",
            "\x08",
            "\x08",
            "\x08",
            "\x07",
            "xéab\x08\x08\x08"
        ]
    );
    let mut e = Editor::new(4096);
    let (out, _) = run(&mut e, &ctx, &[b"echo hello", b"\x01", b"\x1b[C"]);
    assert_eq!(out[1], "\r\x1b[C\x1b[C\x1b[C");
    assert_eq!(out[2], "\x1b[C");
    let mut e = Editor::new(4096);
    let (out, _) = run(&mut e, &ctx, &["aé€".as_bytes(), b"\x7f", b"\x7f", b"\x7f"]);
    assert_eq!(out[1..], ["\x08\x1b[K", "\x08\x1b[K", "\x08\x1b[K"]);
    let mut e = Editor::new(4096);
    let (out, _) = run(
        &mut e,
        &ctx,
        &["漢字".as_bytes(), b"x", b"\x01", b"\x1b[C", b"\x7f"],
    );
    assert_eq!(
        out[2..],
        [
            "\r\x1b[C\x1b[C\x1b[C",
            "\x1b[C\x1b[C",
            "\x08\x08\x1b[2P字x\x08\x08\x08"
        ]
    );
    // A lead byte waits for its character; an ASCII key goes in before it; an invalid
    // sequence lets its first byte in alone, the rest waits (bash 5.2.15).
    let mut e = Editor::new(4096);
    let (out, _) = run(&mut e, &ctx, &[b"\xc3", b"\xa9", b"\xc3", b"a", b"\xff"]);
    assert_eq!(out[..2], ["", "é"]);
    assert_eq!(e.line(), b"\xc3\xa9a\xc3");
    assert_eq!(e.pending, b"\xff");
}

/// 100,000 multibyte characters typed, pasted and searched for stay within the
/// line's cap; the pending bytes within one character.
#[test]
fn a_flood_of_multibyte_characters_is_capped() {
    let mut ctx = fake();
    ctx.utf8 = true;
    ctx.cols = 20;
    ctx.history = vec!["漢字 é".into()];
    let flood: Vec<u8> = "é漢😀e\u{301}\u{ff}".repeat(20_000).into_bytes();
    let mut e = Editor::new(4096);
    let mut out = Vec::new();
    for &b in &flood {
        out.clear();
        let _ = e.feed(b, &ctx, &mut out);
        assert!(e.line().len() <= 4096);
        assert!(e.pending.len() <= MAX_CHAR);
    }
    assert!(e.overflowed);
    assert!(
        std::str::from_utf8(e.line()).is_ok(),
        "whole characters only"
    );
    // Motions and deletions over the full line.
    for keys in [
        &b"\x01\x1bf\x1bf\x1b[C\x04\x05\x1bb\x1b\x7f\x02\x7f"[..],
        b"\x17\x15",
    ] {
        for &b in keys {
            let _ = e.feed(b, &ctx, &mut out);
        }
    }
    let pasted = [&b"\x1b[200~"[..], &flood, b"\x1b[201~"].concat();
    for &b in &pasted {
        let _ = e.feed(b, &ctx, &mut out);
        assert!(e.line().len() <= 4096);
    }
    for &b in [&b"\x03\x12"[..], &flood[..3000]].concat().iter() {
        out.clear();
        let _ = e.feed(b, &ctx, &mut out);
        if let Some(s) = &e.search {
            assert!(s.string_len() <= search::MAX_SEARCH);
        }
        assert!(e.pending.len() <= MAX_CHAR);
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
        cols: usize,
        /// bash runs with `LANG=C.UTF-8` (readline's multibyte redisplay).
        utf8: bool,
    }

    impl Context for Real {
        fn prompt(&self) -> String {
            "P$ ".into()
        }
        fn history(&self) -> &[String] {
            &self.history
        }
        fn columns(&self) -> usize {
            self.cols
        }
        fn utf8(&self) -> bool {
            self.utf8
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

    fn real_bash(root: &std::path::Path, steps: &[&[u8]], cols: usize, utf8: bool) -> Vec<u8> {
        let lang = if utf8 { "LANG=C.UTF-8 " } else { "" };
        let cmd = format!(
            "stty cols {cols} rows 24; cd {}; exec env -i {lang}TERM=xterm 'PS1=P$ ' HOME={} \
             PATH={}/bin HISTFILE={}/hist /bin/bash --norc --noprofile -i",
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

    /// The cases run beside bash in the C locale and again in C.UTF-8 (readline's
    /// multibyte redisplay writes other bytes even for ASCII lines).
    const CASES: &[&[&[u8]]] = &[
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
        // ^R.
        &[b"\x12", b"l", b"s", b"\x12", b"\x12"],
        &[b"\x12", b"o", b"\x12", b"\x7f", b"\x7f"],
        &[b"echo hi", b"\x12", b"e", b"c", b"\x12", b"x", b"\x07"],
        &[b"\x12", b"ec", b"\x05"],
        &[b"\x12", b"tmp", b"\x1b[D", b"\x1b[A"],
        &[b"\x12", b"on", b"\x17", b"\x19", b"\x0a"],
        // A paste inside the line, and one with a newline.
        &[b"abc", b"\x01\x06", b"\x1b[200~XY\x1b[201~", b"z"],
        &[b"\x1b[200~one\rtwo\x1b[201~", b"x"],
    ];
    /// A terminal 30 columns wide: lines that wrap (`LONG` above).
    const NARROW: &[&[&[u8]]] = &[
        &[LONG, b"\x01", b"\x1bf", b"\x1b[C", b"X", b"\x7f", b"\x05"],
        &[LONG, b"\x1b[A", b"\x1b[B", b"\x1b[D\x1b[D"],
        &[LONG, b"\x01", b"\x0b"],
        &[LONG, b"\x01", b"\x06\x06\x06\x06\x06\x04", b"\x15"],
        &[LONG, b"\x12", b"s", b"\x12", b"\x07"],
        &[b"echo abcdefghijklmnopqrstuvw", b"\x7f", b"\x7f", b"yz"],
    ];

    /// UTF-8 text (C.UTF-8 only), 80 columns: typing, motions, deletion, wide
    /// characters, invalid bytes, a paste, ^R.
    const UTF8_CASES: &[&[&[u8]]] = &[
        &["echo héllo wörld €".as_bytes()],
        &[
            "aé€漢x".as_bytes(),
            b"\x1b[D",
            b"\x1b[D",
            b"\x1b[D",
            b"\x1b[C",
            b"\x01",
            b"\x05",
            b"\x02",
            b"\x06",
        ],
        &["café".as_bytes(), b"\x7f", b"\x7f"],
        &["naïve".as_bytes(), b"\x1b[D", b"\x1b[D", b"\x7f", b"X"],
        &["echo über straße".as_bytes(), b"\x17", b"\x17"],
        &["écho ü".as_bytes(), b"\x1b[D", b"\x15"],
        &[
            "echo héllo wörld".as_bytes(),
            b"\x1bb",
            b"\x1bb",
            b"\x1bf",
            b"\x1bd",
            b"\x1b\x7f",
        ],
        &[
            "echo 漢字テスト".as_bytes(),
            b"\x1b[D",
            b"\x1b[D",
            b"x",
            b"\x7f",
            b"\x01",
            b"\x0b",
        ],
        &["echo 😀x".as_bytes(), b"\x1b[D", b"\x1b[D", b"\x1b[C", b"y"],
        &["éab".as_bytes(), b"\x01", b"x", b"\x04", b"\x1b[3~"],
        &[
            "cafe\u{301} ok".as_bytes(),
            b"\x1b[D\x1b[D\x1b[D",
            b"\x1b[D",
            b"\x7f",
        ],
        // Invalid bytes: one column each.
        &[b"echo \xff\xfe", b"\x1b[D", b"x", b"\x05", b"\x7f"],
        &[b"a\xc3b", b"\xc3\xa9", b"\x01", b"\x1b[C\x1b[C"],
        &[b"\xc3\xc3\xa9z", b"\x1b[D\x1b[D", b"\x7f"],
        // Pasted, searched, completed.
        &[
            b"x\x1b[200~h\xc3\xa9llo \xe2\x82\xac\x1b[201~",
            b"y",
            b"\x1b[D",
        ],
        &[b"\x12", "é".as_bytes(), b"\x7f", b"o"],
        &["ls caf".as_bytes(), b"\t"],
        &["ls ü".as_bytes(), b"\t", b"\t"],
    ];

    /// UTF-8 lines wrapping at 20 columns, wide characters at the margin.
    const UTF8_NARROW: &[&[&[u8]]] = &[
        &[
            "echo éééééééééééééééééééééé".as_bytes(),
            b"\x01",
            b"\x05",
            b"\x1b[D",
            b"\x7f",
        ],
        &[
            "echo x漢字漢字漢字漢字".as_bytes(),
            b"\x01",
            b"\x05",
            b"\x7f",
            b"\x7f",
        ],
        &[
            "echo aé漢字aé漢字aé漢字aé漢字".as_bytes(),
            b"\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D",
            b"X",
            b"\x01",
            b"\x1bf",
            "ü".as_bytes(),
        ],
        &["echo 漢字漢字漢字漢".as_bytes(), b"\x1b[D", b"\x7f", b"ab"],
        &["echo xx漢字漢字漢字漢字漢".as_bytes(), b"\x01", b"\x0b"],
    ];

    /// The temporary tree both shells complete over.
    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::create_dir_all(root.join("Desktop")).unwrap();
        for f in [
            "docfile",
            "a b",
            "notes.txt",
            "notes.md",
            ".hidden",
            "café.txt",
            "über1",
            "über2",
        ] {
            std::fs::write(root.join(f), "").unwrap();
        }
        for f in ["zqalpha", "zqbeta", "zqgamma"] {
            let p = root.join("bin").join(f);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::os::unix::fs::symlink(root.join("docs"), root.join("linkdir")).unwrap();
        dir
    }

    /// Each case (width, keys) beside real bash; the number identical and a report of
    /// the others.
    fn compare(utf8: bool, cases: &[(usize, &[&[u8]])]) -> (usize, String) {
        if Command::new("script").arg("--version").output().is_err() {
            panic!("script (util-linux) is needed to run real bash in a pty");
        }
        let dir = tree();
        let root = dir.path();
        let mut ctx = Real {
            root: root.to_owned(),
            history: vec!["echo one".to_owned(), "ls -la /tmp".to_owned()],
            cols: 80,
            utf8,
        };
        let mut report = String::new();
        let mut same = 0;
        for &(cols, steps) in cases {
            ctx.cols = cols;
            let real = real_bash(root, steps, cols, utf8);
            let mine = ours(&ctx, steps);
            if real == mine {
                same += 1;
            } else {
                report.push_str(&format!(
                    "\nkeys {:?} at {cols}\nreal {:?}\nours {:?}\n",
                    steps
                        .iter()
                        .map(|s| String::from_utf8_lossy(s))
                        .collect::<Vec<_>>(),
                    String::from_utf8_lossy(&real),
                    String::from_utf8_lossy(&mine)
                ));
            }
        }
        (same, report)
    }

    fn widths<'a>(
        wide: &'a [&'a [&'a [u8]]],
        narrow: &'a [&'a [&'a [u8]]],
        cols: usize,
    ) -> impl Iterator<Item = (usize, &'a [&'a [u8]])> {
        wide.iter()
            .map(|c| (80, *c))
            .chain(narrow.iter().map(move |c| (cols, *c)))
    }

    #[test]
    fn keys_match_real_bash_in_a_pty_slow() {
        let all: Vec<_> = widths(CASES, NARROW, 30).collect();
        let (same, report) = compare(false, &all);
        eprintln!("line editor oracle: {same}/{} cases identical", all.len());
        assert!(report.is_empty(), "{report}");
    }

    /// The same keys and the UTF-8 cases with bash in `LANG=C.UTF-8`, as the shell
    /// advertises it.
    #[test]
    fn utf8_keys_match_real_bash_in_a_pty_slow() {
        let all: Vec<_> = widths(CASES, NARROW, 30)
            .chain(widths(UTF8_CASES, UTF8_NARROW, 20))
            .collect();
        let (same, report) = compare(true, &all);
        eprintln!(
            "line editor oracle, C.UTF-8: {same}/{} cases identical",
            all.len()
        );
        assert!(report.is_empty(), "{report}");
    }

    /// Bash in a pty of its own (`openpty`), resized with TIOCSWINSZ as a terminal
    /// does (the kernel sends SIGWINCH): what it wrote after its first prompt, step by
    /// step. `script` cannot resize, hence the pty here.
    fn real_bash_resizing(
        root: &std::path::Path,
        cols: usize,
        steps: &[Step],
        utf8: bool,
    ) -> Vec<u8> {
        use std::os::fd::{FromRawFd, OwnedFd};
        use std::os::unix::process::CommandExt;
        use std::sync::{Arc, Mutex};
        let size = |cols: usize| libc::winsize {
            ws_row: 24,
            ws_col: u16::try_from(cols).unwrap(),
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let (mut master, mut slave) = (0, 0);
        let ws = size(cols);
        // SAFETY: openpty writes two descriptors; the pointers are valid.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &ws,
            )
        };
        assert_eq!(rc, 0, "openpty");
        // SAFETY: both descriptors are fresh and owned here.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        // SAFETY: fcntl on a descriptor we own.
        unsafe {
            libc::fcntl(
                std::os::fd::AsRawFd::as_raw_fd(&master),
                libc::F_SETFD,
                libc::FD_CLOEXEC,
            )
        };
        std::fs::write(root.join("hist"), "echo one\n").unwrap();
        let mut cmd = Command::new("/bin/bash");
        cmd.args(["--norc", "--noprofile", "-i"])
            .env_clear()
            .env("LANG", if utf8 { "C.UTF-8" } else { "C" })
            .env("TERM", "xterm")
            .env("PS1", "P$ ")
            .env("HOME", root)
            .env("PATH", "/usr/bin:/bin")
            .env("HISTFILE", root.join("hist"))
            .current_dir(root)
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("/bin/bash");
        drop(cmd);
        let mut writer = std::fs::File::from(master);
        let mut reader = writer.try_clone().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once bash has exited.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let prompt = [PASTE_ON, b"P$ "].concat();
        let ends_with_prompt = || seen.lock().unwrap().ends_with(&prompt);
        for _ in 0..100 {
            if ends_with_prompt() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(200));
        let start = seen.lock().unwrap().len();
        for step in steps {
            match *step {
                Step::K(keys) => {
                    // Key by key: readline skips redisplay while more input is waiting.
                    for &b in keys {
                        writer.write_all(&[b]).unwrap();
                        std::thread::sleep(Duration::from_millis(40));
                    }
                }
                Step::W(w) => {
                    let ws = size(w);
                    // SAFETY: TIOCSWINSZ reads a winsize.
                    let rc = unsafe {
                        libc::ioctl(
                            std::os::fd::AsRawFd::as_raw_fd(&writer),
                            libc::TIOCSWINSZ,
                            &ws,
                        )
                    };
                    assert_eq!(rc, 0, "TIOCSWINSZ");
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let end = seen.lock().unwrap().len();
        let _ = writer.write_all(b"\x03");
        std::thread::sleep(Duration::from_millis(200));
        let _ = writer.write_all(b"exit\r");
        let mut waited = 0;
        while child.try_wait().ok().flatten().is_none() && waited < 50 {
            std::thread::sleep(Duration::from_millis(100));
            waited += 1;
        }
        if waited >= 50 {
            let _ = child.kill();
            let _ = child.wait();
        }
        drop(writer);
        let _ = thread.join();
        let all = seen.lock().unwrap();
        all[start..end].to_vec()
    }

    /// The recorded resize cases against a live bash 5.2 (the recording may be stale
    /// only if bash changes; this says so).
    #[test]
    fn resizes_match_real_bash_in_a_pty_slow() {
        resizes_beside_real_bash(false, &[]);
    }

    /// The same in C.UTF-8, and lines of UTF-8 text and wide characters resized.
    #[test]
    fn utf8_resizes_match_real_bash_in_a_pty_slow() {
        resizes_beside_real_bash(
            true,
            &[
                (
                    20,
                    &[
                        Step::K("echo 漢字漢字漢字漢字x".as_bytes()),
                        Step::W(30),
                        Step::W(15),
                    ],
                ),
                (
                    30,
                    &[
                        Step::K("echo éèêëéèêëéèêëéèêëéèêëéèêë".as_bytes()),
                        Step::K(b"\x01"),
                        Step::W(17),
                    ],
                ),
            ],
        );
    }

    fn resizes_beside_real_bash(utf8: bool, more: &[(usize, &[Step])]) {
        let dir = tempfile::tempdir().unwrap();
        let (mut same, mut report) = (0, String::new());
        let all: Vec<(usize, &[Step])> = RESIZES
            .iter()
            .map(|(c, s, _)| (*c, *s))
            .chain(more.iter().copied())
            .collect();
        for (cols, steps) in &all {
            let real = real_bash_resizing(dir.path(), *cols, steps, utf8);
            let ours = run_resizing(*cols, &["echo one"], steps, utf8).concat();
            if real == ours.as_bytes() {
                same += 1;
            } else {
                report.push_str(&format!(
                    "\nsteps {steps:?} at {cols}\nreal {:?}\nours {ours:?}\n",
                    String::from_utf8_lossy(&real)
                ));
            }
        }
        eprintln!(
            "line editor resizes (utf8 {utf8}): {same}/{} cases identical to real bash",
            all.len()
        );
        assert!(report.is_empty(), "{report}");
    }

    /// Random key sequences (a fixed seed) on a line that wraps at 24 columns, beside
    /// real bash: editing keys, the arrows, ^R with the bell and ^G, pastes, ^L.
    #[test]
    fn random_keys_match_real_bash_in_a_pty_slow() {
        const KEYS: &[&[u8]] = &[
            b"abc",
            b"x",
            b"hello ",
            b"\x01",
            b"\x05",
            b"\x02",
            b"\x06",
            b"\x7f",
            b"\x08",
            b"\x0b",
            b"\x15",
            b"\x17",
            b"\x1bb",
            b"\x1bf",
            b"\x1bd",
            b"\x1b\x7f",
            b"\x1b[D",
            b"\x1b[C",
            b"\x1b[H",
            b"\x1b[F",
            b"\x1b[A",
            b"\x1b[B",
            b"\x1b[3~",
            b"\x12",
            b"\x12e",
            b"\x12o",
            b"\x12ls",
            b"\x07",
            b"\x12\x12",
            b"\x1b[200~pa ste\x1b[201~",
            b"\x0c",
        ];
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        let mut ctx = Real {
            root: root.to_owned(),
            history: vec!["echo one".to_owned(), "ls -la /tmp".to_owned()],
            cols: 24,
            utf8: false,
        };
        let mut seed: u64 = 0x5eed_1e57;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as usize) % n
        };
        let (mut same, mut report) = (0, String::new());
        const CASES: usize = 12;
        for _ in 0..CASES {
            let mut steps: Vec<Vec<u8>> =
                vec![[b"echo ".as_slice(), &vec![b'q'; next(60)]].concat()];
            for _ in 0..3 + next(6) {
                steps.push(KEYS[next(KEYS.len())].to_vec());
            }
            let steps: Vec<&[u8]> = steps.iter().map(|s| s.as_slice()).collect();
            ctx.cols = 24;
            let real = real_bash(root, &steps, 24, false);
            let mine = ours(&ctx, &steps);
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
        eprintln!("line editor, random keys: {same}/{CASES} cases identical");
        assert!(report.is_empty(), "{report}");
    }
}
