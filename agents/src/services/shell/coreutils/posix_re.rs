//! POSIX basic and extended regular expressions (GNU flavour: `\+ \? \|` in basic,
//! `\< \> \w \s`) translated into the `regex` crate's syntax. The crate matches in time
//! linear in the input and its compiled size is capped here, so no pattern an intruder
//! writes can make a match run away; back-references, which need backtracking, are
//! refused as an invalid pattern.

use regex::bytes::{Regex, RegexBuilder};

/// Largest compiled program and lazy-DFA cache one pattern may use.
const SIZE_LIMIT: usize = 1 << 20;
/// Longest pattern accepted (an expanded line is at most a few KiB anyway).
const MAX_PATTERN: usize = 8 * 1024;

/// Compiles a POSIX pattern. `Err` carries GNU's words for the common faults.
pub(super) fn compile(pat: &str, extended: bool, icase: bool) -> Result<Regex, String> {
    if pat.len() > MAX_PATTERN {
        return Err("Regular expression too big".into());
    }
    let translated = translate(pat, extended)?;
    RegexBuilder::new(&translated)
        .case_insensitive(icase)
        .dot_matches_new_line(true)
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(SIZE_LIMIT)
        .nest_limit(64)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => "Regular expression too big".to_owned(),
            _ => "Invalid regular expression".to_owned(),
        })
}

/// A character for inside a Rust class, escaped when the class syntax would read it.
fn class_char(c: char, out: &mut String) {
    if matches!(c, '\\' | '[' | ']' | '-' | '^' | '&' | '~') {
        out.push('\\');
    }
    out.push(c);
}

fn literal(c: char, out: &mut String) {
    let mut buf = [0u8; 4];
    out.push_str(&regex::escape(c.encode_utf8(&mut buf)));
}

/// Translates a bracket expression starting after its `[`; returns the index after `]`.
fn bracket(chars: &[char], mut i: usize, out: &mut String) -> Result<usize, String> {
    out.push('[');
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    let mut first = true;
    let mut items = 0;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err("Unmatched [, [^, [:, [., or [=".into());
        };
        if c == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        if c == '[' && matches!(chars.get(i + 1), Some(':' | '=' | '.')) {
            let kind = chars[i + 1];
            let rest: String = chars[i + 2..].iter().collect();
            let close = format!("{kind}]");
            let Some(end) = rest.find(&close) else {
                return Err("Unmatched [, [^, [:, [., or [=".into());
            };
            let name: String = rest[..end].to_owned();
            let used = name.chars().count();
            if kind == ':' {
                const CLASSES: [&str; 12] = [
                    "alpha", "digit", "alnum", "upper", "lower", "space", "blank", "punct",
                    "print", "graph", "cntrl", "xdigit",
                ];
                if !CLASSES.contains(&name.as_str()) {
                    return Err("Invalid character class name".into());
                }
                out.push_str(&format!("[:{name}:]"));
            } else {
                for ch in name.chars() {
                    class_char(ch, out);
                }
            }
            i += 2 + used + 2;
            items += 1;
            continue;
        }
        // A range `a-z` (a `-` first or last is itself).
        if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|&e| e != ']') {
            let e = chars[i + 2];
            if e < c {
                return Err("Invalid range end".into());
            }
            class_char(c, out);
            out.push('-');
            class_char(e, out);
            i += 3;
        } else {
            class_char(c, out);
            i += 1;
        }
        items += 1;
    }
    if items == 0 {
        return Err("Unmatched [, [^, [:, [., or [=".into());
    }
    out.push(']');
    Ok(i)
}

/// A `{m,n}` interval at `chars[i]` (after `{` or `\{`): its text and end index.
fn interval(chars: &[char], i: usize, extended: bool) -> Option<(String, usize)> {
    let mut j = i;
    let mut body = String::new();
    while let Some(&c) = chars.get(j) {
        if c.is_ascii_digit() || c == ',' {
            body.push(c);
            j += 1;
        } else {
            break;
        }
    }
    let close = if extended {
        (chars.get(j) == Some(&'}')).then_some(j + 1)
    } else {
        (chars.get(j) == Some(&'\\') && chars.get(j + 1) == Some(&'}')).then_some(j + 2)
    }?;
    if body.is_empty() || body.starts_with(',') && body.len() == 1 {
        return None;
    }
    let body = if body.starts_with(',') {
        format!("0{body}")
    } else {
        body
    };
    // Bounded: a huge count would only make the compiled program too big anyway.
    let ok = body
        .split(',')
        .all(|n| n.is_empty() || n.parse::<u32>().is_ok_and(|v| v <= 1000));
    ok.then(|| (format!("{{{body}}}"), close))
}

pub(super) fn translate(pat: &str, extended: bool) -> Result<String, String> {
    let chars: Vec<char> = pat.chars().collect();
    let mut out = String::with_capacity(pat.len() * 2);
    // Whether a repetition here would have nothing to repeat (start, after `(` or `|`).
    let mut at_start = true;
    let mut depth = 0usize;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let was_start = at_start;
        at_start = false;
        match c {
            '\\' => {
                let Some(&n) = chars.get(i + 1) else {
                    return Err("Trailing backslash".into());
                };
                i += 2;
                match n {
                    '(' if !extended => {
                        out.push('(');
                        depth += 1;
                        at_start = true;
                    }
                    ')' if !extended => {
                        if depth == 0 {
                            return Err("Unmatched ) or \\)".into());
                        }
                        depth -= 1;
                        out.push(')');
                    }
                    '|' if !extended => {
                        out.push('|');
                        at_start = true;
                    }
                    '{' if !extended => match interval(&chars, i, false) {
                        Some((t, end)) if !was_start => {
                            out.push_str(&t);
                            i = end;
                        }
                        _ => return Err("Invalid preceding regular expression".into()),
                    },
                    '+' | '?' if !extended => {
                        if was_start {
                            literal(n, &mut out);
                        } else {
                            out.push(n);
                        }
                    }
                    '<' | '>' => out.push_str("\\b"),
                    'b' | 'B' | 'w' | 'W' | 's' | 'S' => {
                        out.push('\\');
                        out.push(n);
                    }
                    '`' => out.push_str("\\A"),
                    '\'' => out.push_str("\\z"),
                    'n' => out.push_str("\\n"),
                    't' => out.push_str("\\t"),
                    '1'..='9' => return Err("Invalid back reference".into()),
                    other => literal(other, &mut out),
                }
            }
            '[' => {
                i = bracket(&chars, i + 1, &mut out)?;
            }
            '(' if extended => {
                if chars.get(i + 1) == Some(&')') {
                    // `()` matches the empty string.
                    out.push_str("(?:)");
                    i += 2;
                    continue;
                }
                out.push('(');
                depth += 1;
                at_start = true;
                i += 1;
            }
            ')' if extended => {
                if depth == 0 {
                    literal(')', &mut out);
                } else {
                    depth -= 1;
                    out.push(')');
                }
                i += 1;
            }
            '|' if extended => {
                out.push('|');
                at_start = true;
                i += 1;
            }
            '{' if extended => match interval(&chars, i + 1, true) {
                Some((t, end)) if !was_start => {
                    out.push_str(&t);
                    i = end;
                }
                _ => {
                    literal('{', &mut out);
                    i += 1;
                }
            },
            '*' | '+' | '?' if extended || c == '*' => {
                if was_start {
                    literal(c, &mut out);
                } else {
                    out.push(c);
                    // `a**` is `a*` in POSIX; the crate refuses a repeated repetition.
                    while matches!(chars.get(i + 1), Some('*' | '+' | '?')) {
                        i += 1;
                    }
                }
                i += 1;
            }
            '^' => {
                if extended || was_start {
                    out.push('^');
                    at_start = true;
                } else {
                    literal('^', &mut out);
                }
                i += 1;
            }
            '$' => {
                let at_end = i + 1 == chars.len()
                    || (!extended
                        && chars.get(i + 1) == Some(&'\\')
                        && matches!(chars.get(i + 2), Some(')' | '|')));
                if extended || at_end {
                    out.push('$');
                } else {
                    literal('$', &mut out);
                }
                i += 1;
            }
            '.' => {
                out.push('.');
                i += 1;
            }
            other => {
                literal(other, &mut out);
                i += 1;
            }
        }
    }
    if depth > 0 {
        return Err("Unmatched ( or \\(".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, ext: bool, s: &str) -> bool {
        compile(p, ext, false).unwrap().is_match(s.as_bytes())
    }

    #[test]
    fn basic_and_extended() {
        assert!(m("a\\+b", false, "aab"));
        assert!(m("a+b", false, "a+b"));
        assert!(!m("a+b", false, "aab"));
        assert!(m("a+b", true, "aab"));
        assert!(m("\\(ab\\)*c", false, "ababc"));
        assert!(m("(ab)|x", false, "(ab)|x"));
        assert!(m("^[[:digit:]]\\{3\\}$", false, "123"));
        assert!(m("[]a]", false, "]"));
        assert!(m("[^a-c]", true, "d"));
        assert!(m("*a", false, "*a"));
        assert!(m("a{x", true, "a{x"));
        assert!(m("\\<word\\>", false, "a word here"));
        assert!(compile("\\(a\\)\\1", false, false).is_err());
        assert!(compile("[a", false, false).is_err());
        assert!(compile("a\\{99999\\}", false, false).is_err());
    }
}
