//! GNU grep 3.8 (Debian 12) over the fake filesystem: basic, extended and fixed-string
//! patterns (several with `-e` or newlines), `-i -v -c -l -L -q -s -n -h -H -o -w -x
//! -m`, recursion with `-r`, file-name prefixes when more than one file is searched,
//! binary files ("binary file matches" on stderr), and grep's exit statuses (0 selected,
//! 1 none, 2 trouble unless `-q` selected a line). Matching is the `regex` crate's
//! (linear time) through [`posix_re`]; every line tested is charged to the budget.

use super::super::commands::{Ctx, Out, take};
use super::super::fs::Kind;
use super::getopt::{self, Long};
use super::{State, path_of, posix_re, unreadable};
use crate::services::shell::budget::MAX_BUFFER;
use regex::bytes::{Regex, RegexBuilder};

const LONGS: &[Long] = &[
    ("extended-regexp", 'E', false),
    ("fixed-strings", 'F', false),
    ("basic-regexp", 'G', false),
    ("perl-regexp", 'P', false),
    ("regexp", 'e', true),
    ("file", 'f', true),
    ("ignore-case", 'i', false),
    ("no-ignore-case", '\u{1}', false),
    ("invert-match", 'v', false),
    ("word-regexp", 'w', false),
    ("line-regexp", 'x', false),
    ("count", 'c', false),
    ("files-with-matches", 'l', false),
    ("files-without-match", 'L', false),
    ("quiet", 'q', false),
    ("silent", 'q', false),
    ("no-messages", 's', false),
    ("line-number", 'n', false),
    ("with-filename", 'H', false),
    ("no-filename", 'h', false),
    ("only-matching", 'o', false),
    ("max-count", 'm', true),
    ("recursive", 'r', false),
    ("dereference-recursive", 'R', false),
    ("text", 'a', false),
    ("color", '\u{2}', false),
    ("colour", '\u{2}', false),
    ("binary-files", '\u{3}', true),
    ("include", '\u{4}', true),
    ("exclude", '\u{5}', true),
];

/// Most files one recursive search visits.
const MAX_FILES: usize = 4096;

struct Opts {
    invert: bool,
    count: bool,
    list: bool,
    list_without: bool,
    quiet: bool,
    silent: bool,
    number: bool,
    only: bool,
    text: bool,
    max: Option<u64>,
    prefix: bool,
    /// What testing one line costs per 64 bytes of it: the patterns' size (a lazy DFA
    /// over thousands of alternatives is not free), charged before each test.
    pat_cost: u64,
}

pub(super) fn run(st: &State, args: &[String], ctx: &Ctx<'_>) -> Out {
    // `--color=auto` and friends: the value is not grep's business here.
    let args: Vec<String> = args
        .iter()
        .map(|a| match a.split_once('=') {
            Some(("--color" | "--colour", _)) => "--color".to_owned(),
            _ => a.clone(),
        })
        .collect();
    let o = match getopt::parse(
        "grep",
        &args,
        "EFGPiyvwxclLqsnHhorRaIUz",
        "efmABCd",
        LONGS,
        2,
    ) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let mut operands = o.operands.clone();
    let mut patterns: Vec<String> = Vec::new();
    let mut have_e = false;
    for (c, v) in &o.opts {
        if *c == 'e' {
            have_e = true;
            patterns.extend(v.as_deref().unwrap_or("").split('\n').map(str::to_owned));
        }
    }
    if !have_e {
        if operands.is_empty() {
            return Out::fail(
                2,
                "Usage: grep [OPTION]... PATTERNS [FILE]...\nTry 'grep --help' for more information.\n",
            );
        }
        let p = operands.remove(0);
        patterns.extend(p.split('\n').map(str::to_owned));
    }
    let icase = o.has('i') || o.has('y');
    let fixed = o.has('F');
    let extended = o.has('E') || o.has('P');
    let re = match build(&patterns, fixed, extended, icase, o.has('w'), o.has('x')) {
        Ok(r) => r,
        Err(e) => return Out::fail(2, format!("grep: {e}\n")),
    };
    let recursive = o.has('r') || o.has('R');
    if operands.is_empty() && recursive {
        operands.push(".".into());
    }
    let max = match o.value('m') {
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n < 0 => None,
            Ok(n) => Some(u64::try_from(n).unwrap_or(0)),
            Err(_) => return Out::fail(2, "grep: invalid max count\n"),
        },
        None => None,
    };
    let opts = Opts {
        invert: o.has('v'),
        count: o.has('c'),
        list: o.has('l'),
        list_without: o.has('L'),
        quiet: o.has('q'),
        silent: o.has('s'),
        number: o.has('n'),
        only: o.has('o'),
        text: o.has('a'),
        max,
        pat_cost: 1 + u64::try_from(patterns.iter().map(|p| p.len() + 1).sum::<usize>() / 64)
            .unwrap_or(u64::MAX),
        // GNU: names when more than one operand, or when -r goes into a directory.
        prefix: operands.len() > 1
            || recursive
                && operands.iter().any(|op| {
                    st.fs
                        .stat(&path_of(st, op))
                        .is_some_and(|n| n.kind == Kind::Dir)
                }),
    };
    // Later of -h/-H wins, as with getopt's last flag.
    let opts = Opts {
        prefix: match o.opts.iter().rev().find(|(c, _)| *c == 'h' || *c == 'H') {
            Some(('H', _)) => true,
            Some(_) => false,
            None => opts.prefix,
        },
        ..opts
    };
    let mut out = Out::default();
    let mut selected = false;
    let mut trouble = false;
    if operands.is_empty() {
        let data = take(st, ctx.stdin, MAX_BUFFER);
        selected |= search(st, &re, data, "(standard input)", &opts, &mut out);
    } else {
        let mut files: Vec<(String, String)> = Vec::new();
        for op in &operands {
            let path = path_of(st, op);
            match st.fs.stat(&path) {
                Some(n) if n.kind == Kind::Dir && recursive => walk(st, op, &path, &mut files),
                _ => files.push((op.clone(), path)),
            }
        }
        for (shown, path) in files {
            if (opts.quiet && selected) || out.full() || !st.budget.iterations(1) {
                break;
            }
            if unreadable(st, &path) {
                trouble = true;
                if !opts.silent {
                    out.eline(&format!("grep: {shown}: Permission denied"));
                }
                continue;
            }
            match st.fs.stat(&path) {
                None => {
                    trouble = true;
                    if !opts.silent {
                        out.eline(&format!("grep: {shown}: No such file or directory"));
                    }
                }
                Some(n) if n.kind == Kind::Dir => {
                    if !recursive {
                        trouble = true;
                        if !opts.silent {
                            out.eline(&format!("grep: {shown}: Is a directory"));
                        }
                    }
                }
                Some(_) => {
                    let data = st.fs.read(&path).unwrap_or(b"");
                    let data = take(st, data, MAX_BUFFER);
                    selected |= search(st, &re, data, &shown, &opts, &mut out);
                }
            }
        }
    }
    out.status = if selected && (opts.quiet || !trouble) {
        0
    } else if trouble {
        2
    } else if selected {
        0
    } else {
        1
    };
    out
}

/// Every file under a directory, in name order (grep's own order is the directory's,
/// which has no fixed order on ext4 either).
fn walk(st: &State, shown: &str, path: &str, files: &mut Vec<(String, String)>) {
    let mut stack = vec![(shown.trim_end_matches('/').to_owned(), path.to_owned())];
    let mut dirs = 0;
    while let Some((shown, path)) = stack.pop() {
        dirs += 1;
        if dirs > MAX_FILES || files.len() > MAX_FILES || !st.budget.iterations(1) {
            return;
        }
        let Ok(entries) = st.fs.list(&path) else {
            continue;
        };
        let mut subdirs = Vec::new();
        for (name, node) in entries {
            let s = if shown.is_empty() {
                name.clone()
            } else {
                format!("{shown}/{name}")
            };
            let p = if path == "/" {
                format!("/{name}")
            } else {
                format!("{path}/{name}")
            };
            match node.kind {
                Kind::Dir => subdirs.push((s, p)),
                // `-r` does not follow links below the operands.
                Kind::Symlink | Kind::CharDev => {}
                Kind::File => files.push((s, p)),
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
}

fn build(
    patterns: &[String],
    fixed: bool,
    extended: bool,
    icase: bool,
    word: bool,
    line: bool,
) -> Result<Regex, String> {
    let mut parts = Vec::new();
    for p in patterns {
        if fixed {
            parts.push(regex::escape(p));
        } else {
            // GNU's words for a pattern's faults; the size is bounded by the regex
            // crate's compile limits below, not by a cap on the text.
            parts.push(posix_re::translate(p, extended)?);
        }
    }
    let joined = parts
        .iter()
        .map(|p| format!("(?:{p})"))
        .collect::<Vec<_>>()
        .join("|");
    let wrapped = if line {
        format!("^(?:{joined})$")
    } else if word {
        format!(r"\b(?:{joined})\b")
    } else {
        joined
    };
    RegexBuilder::new(&wrapped)
        .case_insensitive(icase)
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .nest_limit(64)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => "Regular expression too big".to_owned(),
            _ => "Invalid regular expression".to_owned(),
        })
}

/// Searches one input; true when a line was selected.
fn search(st: &State, re: &Regex, data: &[u8], name: &str, o: &Opts, out: &mut Out) -> bool {
    let binary = !o.text && data.contains(&0);
    let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if data.ends_with(b"\n") || data.is_empty() {
        lines.pop();
    }
    let mut n: u64 = 0;
    let mut text = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if o.max.is_some_and(|m| n >= m) {
            break;
        }
        let cost = o
            .pat_cost
            .saturating_mul(1 + u64::try_from(l.len() / 64).unwrap_or(u64::MAX));
        if out.full() || !st.budget.iterations(cost) {
            break;
        }
        if re.is_match(l) == o.invert {
            continue;
        }
        n += 1;
        if o.quiet || o.list || o.list_without || o.count || binary {
            if o.quiet || o.list || o.list_without {
                break;
            }
            continue;
        }
        let lead = match (o.prefix, o.number) {
            (true, true) => format!("{name}:{}:", i + 1),
            (true, false) => format!("{name}:"),
            (false, true) => format!("{}:", i + 1),
            (false, false) => String::new(),
        };
        if o.only {
            if o.invert {
                continue;
            }
            for m in re.find_iter(l) {
                if m.as_bytes().is_empty() {
                    continue;
                }
                text.extend_from_slice(lead.as_bytes());
                text.extend_from_slice(m.as_bytes());
                text.push(b'\n');
            }
        } else {
            text.extend_from_slice(lead.as_bytes());
            text.extend_from_slice(l);
            text.push(b'\n');
        }
        if text.len() >= out.room() {
            break;
        }
    }
    if o.quiet {
        return n > 0;
    }
    if o.count {
        if o.prefix {
            out.line(&format!("{name}:{n}"));
        } else {
            out.line(&n.to_string());
        }
    }
    if o.list && n > 0 {
        out.line(name);
    }
    if o.list_without && n == 0 {
        out.line(name);
    }
    if !o.count && !o.list && !o.list_without {
        if binary && n > 0 {
            out.eline(&format!("grep: {name}: binary file matches"));
        } else {
            out.put(&text);
        }
    }
    n > 0
}
