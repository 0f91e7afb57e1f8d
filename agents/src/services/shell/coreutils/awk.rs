//! `awk`, which on Debian 12 is mawk 1.3.4: the language loaders and one-liners use —
//! patterns (`BEGIN`, `END`, expressions, `/re/`, ranges), fields and `NF`/`NR`/`FS`/
//! `OFS`, variables and arrays, `if`/`while`/`do`/`for`/`for (k in a)`, `print` and
//! `printf` (also `> file`, `>> file`, `| cmd`), user functions and the string and
//! number built-ins, `getline`, `system()` (run by the emulated shell, never the host).
//!
//! Bounds: the program text is parsed with a nesting cap; every statement, loop turn and
//! call costs one iteration of the line's budget and every string a concatenation,
//! `sprintf` or `gsub` builds is charged as data, so `while(1)` or `s = s s` stops at the
//! budget. Call depth, field numbers, `printf` widths and open files are capped.

use super::super::State;
use super::super::budget::MAX_BUFFER;
use super::super::commands::{self, Ctx, Out};
use super::posix_re;
use super::{load, may_write, path_of};
use regex::bytes::Regex;
use std::collections::HashMap;

/// Deepest nesting of the program text (expressions and statements).
const MAX_NEST: usize = 100;
/// Deepest user-function recursion.
const MAX_CALLS: usize = 64;
/// Highest field number (mawk refuses more too).
const MAX_FIELD: usize = 32_767;
/// Widest `printf` field or precision.
const MAX_WIDTH: usize = 4096;
/// Most compiled dynamic regexes kept.
const MAX_REGEXES: usize = 64;

// ---- values ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Val {
    Uninit,
    Num(f64),
    Str(String),
    /// Input that looks like a number compares as one (fields, `-v`, `getline`).
    StrNum(String),
}

/// strtod's prefix: the number at the start of `s`, 0 when none.
fn str_to_num(s: &str) -> f64 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let b = t.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let ds = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i == ds || (i == ds + 1 && b[ds] == b'.') {
        let rest = t[ds..].to_ascii_lowercase();
        let sign = if ds > 0 && b[0] == b'-' { -1.0 } else { 1.0 };
        if rest.starts_with("inf") {
            return sign * f64::INFINITY;
        }
        if rest.starts_with("nan") {
            return f64::NAN;
        }
        return 0.0;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            i = j;
        }
    }
    t[..i].parse().unwrap_or(0.0)
}

fn looks_numeric(s: &str) -> bool {
    let t = s.trim_matches([' ', '\t', '\n']);
    if t.is_empty() {
        return false;
    }
    let b = t.as_bytes();
    let mut i = 0;
    if b[i] == b'+' || b[i] == b'-' {
        i += 1;
    }
    let mut digits = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if s == i {
            return false;
        }
    }
    i == b.len()
}

/// A number as mawk prints it: integers in int range as `%d`, the rest with `fmt`.
fn num_to_str(v: f64, fmt: &str) -> String {
    if v.is_nan() {
        return if v.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if v.is_infinite() {
        return if v < 0.0 { "-inf" } else { "inf" }.into();
    }
    if v == v.trunc() && v.abs() <= 2_147_483_647.0 {
        return format!("{}", v as i64);
    }
    format_one(fmt, &[Val::Num(v)]).0
}

impl Val {
    fn num(&self) -> f64 {
        match self {
            Val::Uninit => 0.0,
            Val::Num(n) => *n,
            Val::Str(s) | Val::StrNum(s) => str_to_num(s),
        }
    }

    fn str_with(&self, fmt: &str) -> String {
        match self {
            Val::Uninit => String::new(),
            Val::Num(n) => num_to_str(*n, fmt),
            Val::Str(s) | Val::StrNum(s) => s.clone(),
        }
    }

    fn is_true(&self) -> bool {
        match self {
            Val::Uninit => false,
            Val::Num(n) => *n != 0.0,
            Val::Str(s) => !s.is_empty(),
            Val::StrNum(s) => {
                if looks_numeric(s) {
                    str_to_num(s) != 0.0
                } else {
                    !s.is_empty()
                }
            }
        }
    }

    fn numeric_for_compare(&self) -> bool {
        match self {
            Val::Uninit | Val::Num(_) => true,
            Val::StrNum(s) => looks_numeric(s),
            Val::Str(_) => false,
        }
    }
}

// ---- printf ---------------------------------------------------------------------------

/// C's `%e` exponent form: `1.5e+03`.
fn c_exp(v: f64, prec: usize, upper: bool) -> String {
    let s = format!("{v:.prec$e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let e: i32 = exp.parse().unwrap_or(0);
    let sign = if e < 0 { '-' } else { '+' };
    let out = format!("{mant}e{sign}{:02}", e.abs());
    if upper { out.to_uppercase() } else { out }
}

fn strip_zeros(s: &str) -> String {
    if let Some((m, e)) = s.split_once(['e', 'E']) {
        let sep = if s.contains('E') { 'E' } else { 'e' };
        let m = if m.contains('.') {
            m.trim_end_matches('0').trim_end_matches('.')
        } else {
            m
        };
        return format!("{m}{sep}{e}");
    }
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s.to_owned()
    }
}

fn c_general(v: f64, prec: usize, upper: bool, alt: bool) -> String {
    let p = prec.max(1);
    if v == 0.0 {
        let s = if alt {
            format!("{:.*}", p - 1, 0.0)
        } else {
            "0".into()
        };
        return if v.is_sign_negative() {
            format!("-{s}")
        } else {
            s
        };
    }
    let e_form = c_exp(v, p - 1, upper);
    let exp: i32 = e_form
        .rsplit(['e', 'E'])
        .next()
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    let s = if exp < -4 || exp >= p as i32 {
        e_form
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        format!("{v:.decimals$}")
    };
    if alt { s } else { strip_zeros(&s) }
}

fn special(v: f64, upper: bool) -> Option<String> {
    let s = if v.is_nan() {
        if v.is_sign_negative() { "-nan" } else { "nan" }
    } else if v.is_infinite() {
        if v < 0.0 { "-inf" } else { "inf" }
    } else {
        return None;
    };
    Some(if upper {
        s.to_uppercase()
    } else {
        s.to_owned()
    })
}

/// Formats `fmt` with `args` as C's printf does (mawk passes doubles and strings);
/// `bool` is false when there were too few arguments.
fn format_one(fmt: &str, args: &[Val]) -> (String, bool) {
    let mut out = String::new();
    let b = fmt.as_bytes();
    let mut i = 0;
    let mut ai = 0;
    let mut enough = true;
    let mut next = |ai: &mut usize| -> Val {
        let v = args.get(*ai).cloned();
        *ai += 1;
        v.unwrap_or_else(|| {
            enough = false;
            Val::Uninit
        })
    };
    while i < b.len() {
        if b[i] != b'%' {
            let start = i;
            while i < b.len() && b[i] != b'%' {
                i += 1;
            }
            out.push_str(&fmt[start..i]);
            continue;
        }
        i += 1;
        if i < b.len() && b[i] == b'%' {
            out.push('%');
            i += 1;
            continue;
        }
        let (mut left, mut plus, mut space, mut alt, mut zero) =
            (false, false, false, false, false);
        while i < b.len() {
            match b[i] {
                b'-' => left = true,
                b'+' => plus = true,
                b' ' => space = true,
                b'#' => alt = true,
                b'0' => zero = true,
                _ => break,
            }
            i += 1;
        }
        let mut width = 0usize;
        if i < b.len() && b[i] == b'*' {
            let w = next(&mut ai).num();
            if w < 0.0 {
                left = true;
            }
            width = (w.abs() as usize).min(MAX_WIDTH);
            i += 1;
        } else {
            while i < b.len() && b[i].is_ascii_digit() {
                width = (width * 10 + (b[i] - b'0') as usize).min(MAX_WIDTH);
                i += 1;
            }
        }
        let mut prec: Option<usize> = None;
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let mut p = 0usize;
            if i < b.len() && b[i] == b'*' {
                p = (next(&mut ai).num().max(0.0) as usize).min(MAX_WIDTH);
                i += 1;
            } else {
                while i < b.len() && b[i].is_ascii_digit() {
                    p = (p * 10 + (b[i] - b'0') as usize).min(MAX_WIDTH);
                    i += 1;
                }
            }
            prec = Some(p);
        }
        while i < b.len() && matches!(b[i], b'h' | b'l' | b'L' | b'q' | b'j' | b'z' | b't') {
            i += 1;
        }
        let Some(&conv) = b.get(i) else {
            out.push('%');
            break;
        };
        i += 1;
        let sign_of = |neg: bool| -> &'static str {
            if neg {
                "-"
            } else if plus {
                "+"
            } else if space {
                " "
            } else {
                ""
            }
        };
        let (body, sign, numeric): (String, &str, bool) = match conv {
            b'd' | b'i' => {
                let v = next(&mut ai).num();
                match special(v, false) {
                    Some(s) => (s, "", false),
                    None => {
                        let n = v.trunc().clamp(i64::MIN as f64, i64::MAX as f64) as i64;
                        let mut digits = n.unsigned_abs().to_string();
                        if let Some(p) = prec {
                            if p == 0 && n == 0 {
                                digits.clear();
                            } else if digits.len() < p {
                                digits = format!("{}{digits}", "0".repeat(p - digits.len()));
                            }
                        }
                        (digits, sign_of(n < 0), prec.is_none())
                    }
                }
            }
            b'o' | b'x' | b'X' | b'u' => {
                let v = next(&mut ai).num();
                let n = if v < 0.0 {
                    (v.trunc() as i64) as u64
                } else {
                    v.trunc().min(u64::MAX as f64) as u64
                };
                let mut digits = match conv {
                    b'o' => format!("{n:o}"),
                    b'x' => format!("{n:x}"),
                    b'X' => format!("{n:X}"),
                    _ => n.to_string(),
                };
                if let Some(p) = prec
                    && digits.len() < p
                {
                    digits = format!("{}{digits}", "0".repeat(p - digits.len()));
                }
                if alt && n != 0 {
                    match conv {
                        b'x' => digits = format!("0x{digits}"),
                        b'X' => digits = format!("0X{digits}"),
                        b'o' if !digits.starts_with('0') => digits = format!("0{digits}"),
                        _ => {}
                    }
                }
                (digits, "", prec.is_none())
            }
            b'e' | b'E' | b'f' | b'F' | b'g' | b'G' => {
                let v = next(&mut ai).num();
                let upper = conv.is_ascii_uppercase();
                match special(v, upper) {
                    Some(s) => {
                        let neg = s.starts_with('-');
                        (s.trim_start_matches('-').to_owned(), sign_of(neg), false)
                    }
                    None => {
                        let p = prec.unwrap_or(6);
                        let s = match conv {
                            b'e' | b'E' => c_exp(v.abs(), p, upper),
                            b'f' | b'F' => format!("{:.p$}", v.abs()),
                            _ => c_general(v.abs(), p, upper, alt),
                        };
                        (
                            s,
                            sign_of(v.is_sign_negative() && v != 0.0 || v < 0.0),
                            true,
                        )
                    }
                }
            }
            b'c' => {
                let v = next(&mut ai);
                let s = match v {
                    Val::Num(n) => {
                        let c = (n as i64 & 0xff) as u8;
                        if c == 0 {
                            String::new()
                        } else {
                            char::from_u32(u32::from(c))
                                .map(String::from)
                                .unwrap_or_default()
                        }
                    }
                    other => other
                        .str_with("%.6g")
                        .chars()
                        .next()
                        .map(String::from)
                        .unwrap_or_default(),
                };
                (s, "", false)
            }
            b's' => {
                let mut s = next(&mut ai).str_with("%.6g");
                if let Some(p) = prec
                    && s.len() > p
                {
                    let mut cut = p;
                    while !s.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    s.truncate(cut);
                }
                (s, "", false)
            }
            other => {
                // Unknown conversions print as written.
                out.push('%');
                out.push(other as char);
                continue;
            }
        };
        let len = sign.len() + body.chars().count();
        if len >= width {
            out.push_str(sign);
            out.push_str(&body);
        } else if left {
            out.push_str(sign);
            out.push_str(&body);
            out.push_str(&" ".repeat(width - len));
        } else if zero && numeric {
            out.push_str(sign);
            out.push_str(&"0".repeat(width - len));
            out.push_str(&body);
        } else {
            out.push_str(&" ".repeat(width - len));
            out.push_str(sign);
            out.push_str(&body);
        }
    }
    (out, enough)
}

/// One number through a printf format (for `seq -f`).
pub(super) fn c_format_one(fmt: &str, v: f64) -> String {
    format_one(fmt, &[Val::Num(v)]).0
}

// ---- lexer ----------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Re(String),
    Name(String),
    /// A name directly followed by `(`: a function call.
    Func(String),
    Builtin(&'static str),
    Kw(&'static str),
    P(&'static str),
    Nl,
    Eof,
}

const KEYWORDS: [&str; 18] = [
    "BEGIN", "END", "function", "func", "if", "else", "while", "for", "do", "break", "continue",
    "next", "exit", "return", "delete", "in", "getline", "print",
];
const BUILTINS: [&str; 22] = [
    "length", "substr", "index", "split", "sub", "gsub", "match", "sprintf", "sin", "cos", "atan2",
    "exp", "log", "sqrt", "int", "rand", "srand", "tolower", "toupper", "system", "close",
    "fflush",
];
const PUNCT: [&str; 38] = [
    "+=", "-=", "*=", "/=", "%=", "^=", "==", "<=", ">=", "!=", "++", "--", "&&", "||", ">>", "!~",
    "{", "}", "(", ")", "[", "]", ";", ",", "+", "-", "*", "/", "%", "^", "!", ">", "<", "|", "?",
    ":", "~", "=",
];

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('/') => out.push('/'),
            Some('a') => out.push('\x07'),
            Some('b') => out.push('\x08'),
            Some('f') => out.push('\x0c'),
            Some('v') => out.push('\x0b'),
            Some(d @ '0'..='7') => {
                let mut v = d as u32 - '0' as u32;
                for _ in 0..2 {
                    match it.peek() {
                        Some(&e @ '0'..='7') => {
                            v = v * 8 + (e as u32 - '0' as u32);
                            it.next();
                        }
                        _ => break,
                    }
                }
                out.push(char::from_u32(v & 0xff).unwrap_or('\0'));
            }
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, String> {
    let s: Vec<char> = src.chars().collect();
    let mut toks: Vec<(Tok, usize)> = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < s.len() {
        let c = s[i];
        let operand_before = matches!(
            toks.last().map(|t| &t.0),
            Some(Tok::Num(_) | Tok::Str(_) | Tok::Name(_) | Tok::Builtin(_) | Tok::Re(_))
                | Some(Tok::P(")" | "]" | "++" | "--"))
        );
        match c {
            ' ' | '\t' | '\r' => i += 1,
            '\\' if s.get(i + 1) == Some(&'\n') => {
                i += 2;
                line += 1;
            }
            '\n' => {
                toks.push((Tok::Nl, line));
                line += 1;
                i += 1;
            }
            '#' => {
                while i < s.len() && s[i] != '\n' {
                    i += 1;
                }
            }
            '"' => {
                let mut raw = String::new();
                i += 1;
                loop {
                    let Some(&ch) = s.get(i) else {
                        return Err(format!(
                            "line {line}: runaway string constant \"{} ...",
                            raw.chars().take(10).collect::<String>()
                        ));
                    };
                    i += 1;
                    match ch {
                        '"' => break,
                        '\\' => {
                            raw.push('\\');
                            if let Some(&n) = s.get(i) {
                                raw.push(n);
                                i += 1;
                            }
                        }
                        '\n' => {
                            return Err(format!(
                                "line {line}: runaway string constant \"{} ...",
                                raw.chars().take(10).collect::<String>()
                            ));
                        }
                        o => raw.push(o),
                    }
                }
                toks.push((Tok::Str(unescape(&raw)), line));
            }
            '/' if !operand_before => {
                let mut raw = String::new();
                i += 1;
                let mut in_bracket = false;
                loop {
                    let Some(&ch) = s.get(i) else {
                        return Err(format!(
                            "line {line}: runaway regular expression /{} ...",
                            raw.chars().take(10).collect::<String>()
                        ));
                    };
                    i += 1;
                    match ch {
                        '/' if !in_bracket => break,
                        '\\' => {
                            if s.get(i) == Some(&'/') {
                                raw.push('/');
                            } else {
                                raw.push('\\');
                                if let Some(&n) = s.get(i) {
                                    raw.push(n);
                                }
                            }
                            i += 1;
                        }
                        '[' => {
                            in_bracket = true;
                            raw.push(ch);
                        }
                        ']' => {
                            in_bracket = false;
                            raw.push(ch);
                        }
                        '\n' => {
                            return Err(format!(
                                "line {line}: runaway regular expression /{} ...",
                                raw.chars().take(10).collect::<String>()
                            ));
                        }
                        o => raw.push(o),
                    }
                }
                toks.push((Tok::Re(raw), line));
            }
            c if c.is_ascii_digit()
                || (c == '.' && s.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                while i < s.len() && (s[i].is_ascii_digit() || s[i] == '.') {
                    i += 1;
                }
                if i < s.len() && (s[i] == 'e' || s[i] == 'E') {
                    let mut j = i + 1;
                    if j < s.len() && (s[j] == '+' || s[j] == '-') {
                        j += 1;
                    }
                    if j < s.len() && s[j].is_ascii_digit() {
                        while j < s.len() && s[j].is_ascii_digit() {
                            j += 1;
                        }
                        i = j;
                    }
                }
                let text: String = s[start..i].iter().collect();
                toks.push((Tok::Num(str_to_num(&text)), line));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == '_') {
                    i += 1;
                }
                let word: String = s[start..i].iter().collect();
                let tok = if let Some(k) = KEYWORDS.iter().find(|k| **k == word) {
                    Tok::Kw(k)
                } else if word == "printf" {
                    Tok::Kw("printf")
                } else if let Some(b) = BUILTINS.iter().find(|b| **b == word) {
                    Tok::Builtin(b)
                } else if s.get(i) == Some(&'(') {
                    Tok::Func(word)
                } else {
                    Tok::Name(word)
                };
                toks.push((tok, line));
            }
            '$' => {
                toks.push((Tok::P("$"), line));
                i += 1;
            }
            _ => {
                let rest: String = s[i..s.len().min(i + 3)].iter().collect();
                if rest.starts_with("**") {
                    return Err(format!("line {line}: syntax error at or near *"));
                }
                let Some(p) = PUNCT.iter().find(|p| rest.starts_with(**p)) else {
                    return Err(format!("line {line}: syntax error at or near {c}"));
                };
                toks.push((Tok::P(p), line));
                i += p.len();
            }
        }
    }
    toks.push((Tok::Eof, line));
    Ok(toks)
}

// ---- syntax tree ----------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Expr {
    Num(f64),
    Str(String),
    /// A regex literal: matches `$0` where a value is wanted.
    Re(String),
    Field(Box<Expr>),
    Var(String),
    Index(String, Vec<Expr>),
    Assign(Option<&'static str>, Box<Expr>, Box<Expr>),
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Match(bool, Box<Expr>, Box<Expr>),
    Cmp(&'static str, Box<Expr>, Box<Expr>),
    Arith(&'static str, Box<Expr>, Box<Expr>),
    Concat(Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
    Plus(Box<Expr>),
    IncDec {
        pre: bool,
        delta: f64,
        lv: Box<Expr>,
    },
    In(Vec<Expr>, String),
    Builtin(&'static str, Vec<Expr>),
    Call(String, Vec<Expr>),
    Group(Box<Expr>),
    /// `getline [var] [< file]`, `cmd | getline [var]`.
    Getline {
        var: Option<Box<Expr>>,
        file: Option<Box<Expr>>,
        cmd: Option<Box<Expr>>,
    },
}

#[derive(Debug, Clone)]
enum Redir {
    File(Expr, bool),
    Pipe(Expr),
}

#[derive(Debug, Clone)]
enum Stmt {
    Expr(Expr),
    Print(Vec<Expr>, Option<Redir>),
    Printf(Vec<Expr>, Option<Redir>),
    If(Expr, Box<Stmt>, Option<Box<Stmt>>),
    While(Expr, Box<Stmt>),
    Do(Box<Stmt>, Expr),
    For(Option<Expr>, Option<Expr>, Option<Expr>, Box<Stmt>),
    ForIn(String, String, Box<Stmt>),
    Block(Vec<Stmt>),
    Next,
    Exit(Option<Expr>),
    Return(Option<Expr>),
    Break,
    Continue,
    Delete(String, Option<Vec<Expr>>),
}

#[derive(Debug, Clone)]
enum Pattern {
    Begin,
    End,
    All,
    Expr(Expr),
    Range(Expr, Expr),
}

#[derive(Debug, Clone)]
struct Func {
    params: Vec<String>,
    body: Vec<Stmt>,
}

#[derive(Debug, Default)]
struct Program {
    items: Vec<(Pattern, Option<Vec<Stmt>>)>,
    funcs: HashMap<String, Func>,
}

// ---- parser ---------------------------------------------------------------------------

struct Parser {
    toks: Vec<(Tok, usize)>,
    i: usize,
    depth: usize,
    /// Inside `print`'s arguments, a bare `>` is a redirection.
    no_gt: bool,
    no_in: bool,
}

type PResult<T> = Result<T, String>;

impl Parser {
    fn peek(&self) -> &Tok {
        &self.toks[self.i.min(self.toks.len() - 1)].0
    }

    fn line(&self) -> usize {
        self.toks[self.i.min(self.toks.len() - 1)].1
    }

    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn is_p(&self, p: &str) -> bool {
        matches!(self.peek(), Tok::P(x) if *x == p)
    }

    fn is_kw(&self, k: &str) -> bool {
        matches!(self.peek(), Tok::Kw(x) if *x == k)
    }

    fn error(&self) -> String {
        let near = match self.peek() {
            Tok::Eof => "end of file".to_owned(),
            Tok::Nl => "end of line".to_owned(),
            Tok::Num(n) => num_to_str(*n, "%.6g"),
            Tok::Str(s) => format!("\"{s}\""),
            Tok::Re(r) => format!("/{r}/"),
            Tok::Name(n) | Tok::Func(n) => n.clone(),
            Tok::Builtin(b) | Tok::Kw(b) | Tok::P(b) => (*b).to_owned(),
        };
        format!("line {}: syntax error at or near {near}", self.line())
    }

    fn expect(&mut self, p: &str) -> PResult<()> {
        if self.is_p(p) {
            self.bump();
            Ok(())
        } else {
            Err(self.error())
        }
    }

    fn nl(&mut self) {
        while matches!(self.peek(), Tok::Nl) {
            self.bump();
        }
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_NEST {
            return Err(format!("line {}: nesting too deep", self.line()));
        }
        Ok(())
    }

    fn program(&mut self) -> PResult<Program> {
        let mut p = Program::default();
        loop {
            while matches!(self.peek(), Tok::Nl) || self.is_p(";") {
                self.bump();
            }
            match self.peek().clone() {
                Tok::Eof => break,
                Tok::Kw("function" | "func") => {
                    self.bump();
                    let name = match self.bump() {
                        Tok::Name(n) | Tok::Func(n) => n,
                        _ => return Err(self.error()),
                    };
                    self.expect("(")?;
                    let mut params = Vec::new();
                    while let Tok::Name(n) = self.peek().clone() {
                        self.bump();
                        params.push(n);
                        if self.is_p(",") {
                            self.bump();
                            self.nl();
                        }
                    }
                    self.expect(")")?;
                    self.nl();
                    let body = self.block()?;
                    p.funcs.insert(name, Func { params, body });
                }
                Tok::Kw("BEGIN") => {
                    self.bump();
                    self.nl();
                    let b = self.block()?;
                    p.items.push((Pattern::Begin, Some(b)));
                }
                Tok::Kw("END") => {
                    self.bump();
                    self.nl();
                    let b = self.block()?;
                    p.items.push((Pattern::End, Some(b)));
                }
                Tok::P("{") => {
                    let b = self.block()?;
                    p.items.push((Pattern::All, Some(b)));
                }
                _ => {
                    let e = self.expr()?;
                    let pat = if self.is_p(",") {
                        self.bump();
                        self.nl();
                        Pattern::Range(e, self.expr()?)
                    } else {
                        Pattern::Expr(e)
                    };
                    let action = if self.is_p("{") {
                        Some(self.block()?)
                    } else {
                        None
                    };
                    p.items.push((pat, action));
                }
            }
        }
        Ok(p)
    }

    fn block(&mut self) -> PResult<Vec<Stmt>> {
        self.enter()?;
        if !self.is_p("{") {
            return Err(self.error());
        }
        self.bump();
        let mut v = Vec::new();
        loop {
            while matches!(self.peek(), Tok::Nl) || self.is_p(";") {
                self.bump();
            }
            if self.is_p("}") {
                self.bump();
                break;
            }
            if matches!(self.peek(), Tok::Eof) {
                // mawk counts the end of the program as one more line.
                return Err(format!(
                    "line {}: missing }} near end of file",
                    self.line() + 1
                ));
            }
            v.push(self.stmt()?);
        }
        self.depth -= 1;
        Ok(v)
    }

    fn simple_end(&mut self) -> PResult<()> {
        match self.peek() {
            Tok::Nl | Tok::P(";") => {
                self.bump();
                Ok(())
            }
            Tok::P("}") | Tok::Eof => Ok(()),
            _ => Err(self.error()),
        }
    }

    fn stmt(&mut self) -> PResult<Stmt> {
        self.enter()?;
        let s = self.stmt_inner()?;
        self.depth -= 1;
        Ok(s)
    }

    fn body(&mut self) -> PResult<Stmt> {
        self.nl();
        if self.is_p(";") {
            self.bump();
            return Ok(Stmt::Block(Vec::new()));
        }
        self.stmt()
    }

    fn stmt_inner(&mut self) -> PResult<Stmt> {
        match self.peek().clone() {
            Tok::P("{") => Ok(Stmt::Block(self.block()?)),
            Tok::Kw("if") => {
                self.bump();
                self.expect("(")?;
                let c = self.expr()?;
                self.expect(")")?;
                let then = self.body()?;
                // `else` may follow newlines or a `;`.
                let save = self.i;
                while matches!(self.peek(), Tok::Nl) || self.is_p(";") {
                    self.bump();
                }
                let els = if self.is_kw("else") {
                    self.bump();
                    Some(Box::new(self.body()?))
                } else {
                    self.i = save;
                    None
                };
                Ok(Stmt::If(c, Box::new(then), els))
            }
            Tok::Kw("while") => {
                self.bump();
                self.expect("(")?;
                let c = self.expr()?;
                self.expect(")")?;
                if self.is_p(";") {
                    self.bump();
                    return Ok(Stmt::While(c, Box::new(Stmt::Block(Vec::new()))));
                }
                Ok(Stmt::While(c, Box::new(self.body()?)))
            }
            Tok::Kw("do") => {
                self.bump();
                let b = self.body()?;
                while matches!(self.peek(), Tok::Nl) || self.is_p(";") {
                    self.bump();
                }
                if !self.is_kw("while") {
                    return Err(self.error());
                }
                self.bump();
                self.expect("(")?;
                let c = self.expr()?;
                self.expect(")")?;
                self.simple_end()?;
                Ok(Stmt::Do(Box::new(b), c))
            }
            Tok::Kw("for") => {
                self.bump();
                self.expect("(")?;
                // for (k in a)
                if let (Tok::Name(k), Tok::Kw("in"), Tok::Name(a), Tok::P(")")) = (
                    self.toks[self.i].0.clone(),
                    self.toks.get(self.i + 1).map_or(Tok::Eof, |t| t.0.clone()),
                    self.toks.get(self.i + 2).map_or(Tok::Eof, |t| t.0.clone()),
                    self.toks.get(self.i + 3).map_or(Tok::Eof, |t| t.0.clone()),
                ) {
                    self.i += 4;
                    let b = self.body()?;
                    return Ok(Stmt::ForIn(k, a, Box::new(b)));
                }
                let init = if self.is_p(";") {
                    None
                } else {
                    Some(self.expr()?)
                };
                self.expect(";")?;
                self.nl();
                let cond = if self.is_p(";") {
                    None
                } else {
                    Some(self.expr()?)
                };
                self.expect(";")?;
                self.nl();
                let step = if self.is_p(")") {
                    None
                } else {
                    Some(self.expr()?)
                };
                self.expect(")")?;
                if self.is_p(";") {
                    self.bump();
                    return Ok(Stmt::For(
                        init,
                        cond,
                        step,
                        Box::new(Stmt::Block(Vec::new())),
                    ));
                }
                let b = self.body()?;
                Ok(Stmt::For(init, cond, step, Box::new(b)))
            }
            Tok::Kw(k @ ("next" | "break" | "continue")) => {
                self.bump();
                self.simple_end()?;
                Ok(match k {
                    "next" => Stmt::Next,
                    "break" => Stmt::Break,
                    _ => Stmt::Continue,
                })
            }
            Tok::Kw(k @ ("exit" | "return")) => {
                self.bump();
                let e = if matches!(self.peek(), Tok::Nl | Tok::Eof | Tok::P(";" | "}")) {
                    None
                } else {
                    Some(self.expr()?)
                };
                self.simple_end()?;
                Ok(if k == "exit" {
                    Stmt::Exit(e)
                } else {
                    Stmt::Return(e)
                })
            }
            Tok::Kw("delete") => {
                self.bump();
                let Tok::Name(a) = self.bump() else {
                    return Err(self.error());
                };
                let idx = if self.is_p("[") {
                    self.bump();
                    let v = self.expr_list("]")?;
                    Some(v)
                } else {
                    None
                };
                self.simple_end()?;
                Ok(Stmt::Delete(a, idx))
            }
            Tok::Kw(k @ ("print" | "printf")) => {
                self.bump();
                let saved = self.no_gt;
                self.no_gt = true;
                let mut args = Vec::new();
                if !matches!(
                    self.peek(),
                    Tok::Nl | Tok::Eof | Tok::P(";" | "}" | ">" | ">>" | "|")
                ) {
                    // `print (a, b)` is the list in parentheses.
                    args.push(self.expr()?);
                    while self.is_p(",") {
                        self.bump();
                        self.nl();
                        args.push(self.expr()?);
                    }
                }
                self.no_gt = saved;
                if args.len() == 1
                    && let Expr::Group(inner) = &args[0]
                    && let Expr::Builtin("__list", items) = inner.as_ref()
                {
                    args = items.clone();
                }
                let redir = match self.peek() {
                    Tok::P(">") => {
                        self.bump();
                        Some(Redir::File(self.concat_expr()?, false))
                    }
                    Tok::P(">>") => {
                        self.bump();
                        Some(Redir::File(self.concat_expr()?, true))
                    }
                    Tok::P("|") => {
                        self.bump();
                        Some(Redir::Pipe(self.concat_expr()?))
                    }
                    _ => None,
                };
                self.simple_end()?;
                if k == "printf" {
                    if args.is_empty() {
                        return Err(self.error());
                    }
                    Ok(Stmt::Printf(args, redir))
                } else {
                    Ok(Stmt::Print(args, redir))
                }
            }
            _ => {
                let e = self.expr()?;
                self.simple_end()?;
                Ok(Stmt::Expr(e))
            }
        }
    }

    fn expr_list(&mut self, close: &str) -> PResult<Vec<Expr>> {
        let mut v = vec![self.expr()?];
        while self.is_p(",") {
            self.bump();
            self.nl();
            v.push(self.expr()?);
        }
        self.expect(close)?;
        Ok(v)
    }

    fn expr(&mut self) -> PResult<Expr> {
        self.enter()?;
        let e = self.ternary()?;
        self.depth -= 1;
        Ok(e)
    }

    fn ternary(&mut self) -> PResult<Expr> {
        let c = self.or()?;
        if self.is_p("?") {
            self.bump();
            self.nl();
            let a = self.expr()?;
            self.nl();
            self.expect(":")?;
            self.nl();
            let b = self.expr()?;
            return Ok(Expr::Cond(Box::new(c), Box::new(a), Box::new(b)));
        }
        let assign_op = match self.peek() {
            Tok::P("=") => Some(None),
            Tok::P(p @ ("+=" | "-=" | "*=" | "/=" | "%=" | "^=")) => Some(Some(&p[..1])),
            _ => None,
        };
        if let Some(op) = assign_op
            && matches!(c, Expr::Var(_) | Expr::Index(..) | Expr::Field(_))
        {
            self.bump();
            self.nl();
            let rhs = self.expr()?;
            let op: Option<&'static str> = op.map(|o| match o {
                "+" => "+",
                "-" => "-",
                "*" => "*",
                "/" => "/",
                "%" => "%",
                _ => "^",
            });
            return Ok(Expr::Assign(op, Box::new(c), Box::new(rhs)));
        }
        Ok(c)
    }

    fn or(&mut self) -> PResult<Expr> {
        let mut l = self.and()?;
        while self.is_p("||") {
            self.bump();
            self.nl();
            let r = self.and()?;
            l = Expr::Or(Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn and(&mut self) -> PResult<Expr> {
        let mut l = self.in_expr()?;
        while self.is_p("&&") {
            self.bump();
            self.nl();
            let r = self.in_expr()?;
            l = Expr::And(Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn in_expr(&mut self) -> PResult<Expr> {
        let mut l = self.matching()?;
        while self.is_kw("in") && !self.no_in {
            self.bump();
            let Tok::Name(a) = self.bump() else {
                return Err(self.error());
            };
            let keys = match l {
                Expr::Group(g) => match *g {
                    Expr::Builtin("__list", items) => items,
                    other => vec![other],
                },
                other => vec![other],
            };
            l = Expr::In(keys, a);
        }
        Ok(l)
    }

    fn matching(&mut self) -> PResult<Expr> {
        let mut l = self.comparison()?;
        loop {
            let neg = match self.peek() {
                Tok::P("~") => false,
                Tok::P("!~") => true,
                _ => break,
            };
            self.bump();
            let r = self.comparison()?;
            l = Expr::Match(neg, Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn comparison(&mut self) -> PResult<Expr> {
        let l = self.concat_expr()?;
        let op = match self.peek() {
            Tok::P(p @ ("<" | "<=" | "==" | "!=" | ">=")) => *p,
            Tok::P(">") if !self.no_gt => ">",
            _ => return Ok(l),
        };
        self.bump();
        let r = self.concat_expr()?;
        Ok(Expr::Cmp(op, Box::new(l), Box::new(r)))
    }

    fn starts_operand(&self) -> bool {
        match self.peek() {
            Tok::Num(_)
            | Tok::Str(_)
            | Tok::Re(_)
            | Tok::Name(_)
            | Tok::Func(_)
            | Tok::Builtin(_) => true,
            Tok::P("$" | "(" | "!" | "++" | "--" | "-" | "+") => {
                !matches!(self.peek(), Tok::P("-" | "+"))
            }
            Tok::Kw("getline") => false,
            _ => false,
        }
    }

    fn concat_expr(&mut self) -> PResult<Expr> {
        let mut l = self.additive()?;
        while self.starts_operand() && !self.is_kw("in") {
            let r = self.additive()?;
            l = Expr::Concat(Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn additive(&mut self) -> PResult<Expr> {
        let mut l = self.multiplicative()?;
        loop {
            let op = match self.peek() {
                Tok::P("+") => "+",
                Tok::P("-") => "-",
                _ => break,
            };
            self.bump();
            let r = self.multiplicative()?;
            l = Expr::Arith(op, Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn multiplicative(&mut self) -> PResult<Expr> {
        let mut l = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::P("*") => "*",
                Tok::P("/") => "/",
                Tok::P("%") => "%",
                _ => break,
            };
            self.bump();
            let r = self.unary()?;
            l = Expr::Arith(op, Box::new(l), Box::new(r));
        }
        Ok(l)
    }

    fn unary(&mut self) -> PResult<Expr> {
        self.enter()?;
        let e = match self.peek() {
            Tok::P("!") => {
                self.bump();
                Expr::Not(Box::new(self.unary()?))
            }
            Tok::P("-") => {
                self.bump();
                Expr::Neg(Box::new(self.unary()?))
            }
            Tok::P("+") => {
                self.bump();
                Expr::Plus(Box::new(self.unary()?))
            }
            _ => self.power()?,
        };
        self.depth -= 1;
        Ok(e)
    }

    fn power(&mut self) -> PResult<Expr> {
        let base = self.postfix()?;
        if self.is_p("^") {
            self.bump();
            // Right-associative, and binds tighter than unary minus on its left only.
            let exp = self.unary()?;
            return Ok(Expr::Arith("^", Box::new(base), Box::new(exp)));
        }
        Ok(base)
    }

    fn postfix(&mut self) -> PResult<Expr> {
        if let Tok::P(p @ ("++" | "--")) = self.peek().clone() {
            self.bump();
            let lv = self.primary()?;
            if !matches!(lv, Expr::Var(_) | Expr::Index(..) | Expr::Field(_)) {
                return Err(self.error());
            }
            return Ok(Expr::IncDec {
                pre: true,
                delta: if p == "++" { 1.0 } else { -1.0 },
                lv: Box::new(lv),
            });
        }
        let e = self.primary()?;
        if matches!(e, Expr::Var(_) | Expr::Index(..) | Expr::Field(_))
            && let Tok::P(p @ ("++" | "--")) = self.peek().clone()
        {
            self.bump();
            return Ok(Expr::IncDec {
                pre: false,
                delta: if p == "++" { 1.0 } else { -1.0 },
                lv: Box::new(e),
            });
        }
        // `cmd | getline [var]`
        if self.is_p("|")
            && matches!(
                self.toks.get(self.i + 1).map(|t| &t.0),
                Some(Tok::Kw("getline"))
            )
        {
            self.bump();
            self.bump();
            let var = self.getline_var()?;
            return Ok(Expr::Getline {
                var,
                file: None,
                cmd: Some(Box::new(e)),
            });
        }
        Ok(e)
    }

    fn getline_var(&mut self) -> PResult<Option<Box<Expr>>> {
        Ok(match self.peek() {
            Tok::Name(_) | Tok::P("$") => Some(Box::new(self.primary()?)),
            _ => None,
        })
    }

    fn primary(&mut self) -> PResult<Expr> {
        self.enter()?;
        let e = self.primary_inner()?;
        self.depth -= 1;
        Ok(e)
    }

    fn primary_inner(&mut self) -> PResult<Expr> {
        match self.bump() {
            Tok::Num(n) => Ok(Expr::Num(n)),
            Tok::Str(s) => Ok(Expr::Str(s)),
            Tok::Re(r) => Ok(Expr::Re(r)),
            Tok::P("$") => {
                let e = if let Tok::P(p @ ("++" | "--")) = self.peek().clone() {
                    self.bump();
                    let lv = self.primary()?;
                    Expr::IncDec {
                        pre: true,
                        delta: if p == "++" { 1.0 } else { -1.0 },
                        lv: Box::new(lv),
                    }
                } else if self.is_p("-") {
                    self.bump();
                    Expr::Neg(Box::new(self.primary()?))
                } else {
                    self.primary()?
                };
                Ok(Expr::Field(Box::new(e)))
            }
            Tok::P("(") => {
                let saved = (self.no_gt, self.no_in);
                self.no_gt = false;
                self.no_in = false;
                let first = self.expr()?;
                let e = if self.is_p(",") {
                    let mut items = vec![first];
                    while self.is_p(",") {
                        self.bump();
                        self.nl();
                        items.push(self.expr()?);
                    }
                    Expr::Builtin("__list", items)
                } else {
                    first
                };
                self.no_gt = saved.0;
                self.no_in = saved.1;
                self.expect(")")?;
                Ok(Expr::Group(Box::new(e)))
            }
            Tok::P("!") => Ok(Expr::Not(Box::new(self.unary()?))),
            Tok::P("-") => Ok(Expr::Neg(Box::new(self.unary()?))),
            Tok::Name(n) => {
                if self.is_p("[") {
                    self.bump();
                    let idx = self.expr_list("]")?;
                    Ok(Expr::Index(n, idx))
                } else {
                    Ok(Expr::Var(n))
                }
            }
            Tok::Func(n) => {
                self.expect("(")?;
                let args = if self.is_p(")") {
                    self.bump();
                    Vec::new()
                } else {
                    self.expr_list(")")?
                };
                Ok(Expr::Call(n, args))
            }
            Tok::Builtin(b) => {
                if !self.is_p("(") {
                    if b == "length" {
                        return Ok(Expr::Builtin("length", Vec::new()));
                    }
                    return Err(self.error());
                }
                self.bump();
                let args = if self.is_p(")") {
                    self.bump();
                    Vec::new()
                } else {
                    self.expr_list(")")?
                };
                Ok(Expr::Builtin(b, args))
            }
            Tok::Kw("getline") => {
                let var = self.getline_var()?;
                let file = if self.is_p("<") {
                    self.bump();
                    Some(Box::new(self.primary()?))
                } else {
                    None
                };
                Ok(Expr::Getline {
                    var,
                    file,
                    cmd: None,
                })
            }
            _ => {
                self.i = self.i.saturating_sub(1);
                Err(self.error())
            }
        }
    }
}

// ---- interpreter ----------------------------------------------------------------------

enum Ctl {
    Next,
    Exit,
    Break,
    Continue,
    Return(Val),
    /// The budget ran out or the output is full: stop everything.
    Stop,
    /// A fatal run-time error (mawk's message, exit 2).
    Fatal(String),
}

type R<T> = Result<T, Ctl>;

#[derive(Debug, Default, Clone)]
struct Array {
    map: HashMap<String, Val>,
    order: Vec<String>,
}

impl Array {
    fn get(&mut self, k: &str) -> Val {
        if let Some(v) = self.map.get(k) {
            return v.clone();
        }
        // A reference creates the element, as in every awk.
        self.set(k, Val::Uninit);
        Val::Uninit
    }

    fn set(&mut self, k: &str, v: Val) {
        if self.map.insert(k.to_owned(), v).is_none() {
            self.order.push(k.to_owned());
        }
    }

    fn remove(&mut self, k: &str) {
        if self.map.remove(k).is_some() {
            self.order.retain(|x| x != k);
        }
    }
}

enum Input {
    Data(String, Vec<u8>),
    Assign(String, String),
}

struct Frame {
    vars: HashMap<String, Val>,
    arrays: HashMap<String, Array>,
    /// Parameters that name a caller's array.
    alias: HashMap<String, String>,
}

struct Interp<'a> {
    st: &'a mut State,
    prog: Program,
    vars: HashMap<String, Val>,
    arrays: HashMap<String, Array>,
    frames: Vec<Frame>,
    record: String,
    fields: Vec<String>,
    nf: usize,
    out: Vec<u8>,
    err: Vec<u8>,
    files: Vec<(String, bool, Vec<u8>)>,
    pipes: Vec<(String, Vec<u8>)>,
    regexes: HashMap<String, Regex>,
    inputs: Vec<Input>,
    input_idx: usize,
    /// The current input's records not yet read.
    pending: std::collections::VecDeque<String>,
    /// Output of `cmd | getline` and lines of `getline < file`, by name.
    readers: HashMap<String, std::collections::VecDeque<String>>,
    range_active: Vec<bool>,
    exit_code: i32,
    rand_state: u64,
    seed: f64,
    ctx_stdin: Vec<u8>,
}

fn as_key(v: &Val) -> String {
    v.str_with("%.6g")
}

impl Interp<'_> {
    fn tick(&self) -> R<()> {
        if self.st.budget.iterations(1) {
            Ok(())
        } else {
            Err(Ctl::Stop)
        }
    }

    fn charge(&self, n: usize) -> R<()> {
        if n > MAX_BUFFER {
            // A string past any buffer: the process would run out of memory. The line
            // stops as one the kernel killed (the whole data budget is claimed).
            let _ = self.st.budget.take_data(usize::MAX);
            return Err(Ctl::Stop);
        }
        if self.st.budget.take_data(n) < n {
            Err(Ctl::Stop)
        } else {
            Ok(())
        }
    }

    fn var_str(&self, name: &str) -> String {
        self.vars
            .get(name)
            .map(|v| v.str_with("%.6g"))
            .unwrap_or_default()
    }

    fn convfmt(&self) -> String {
        let f = self.var_str("CONVFMT");
        if f.is_empty() { "%.6g".into() } else { f }
    }

    fn ofmt(&self) -> String {
        let f = self.var_str("OFMT");
        if f.is_empty() { "%.6g".into() } else { f }
    }

    fn to_s(&self, v: &Val) -> String {
        v.str_with(&self.convfmt())
    }

    fn regex(&mut self, pat: &str) -> R<Regex> {
        if let Some(r) = self.regexes.get(pat) {
            return Ok(r.clone());
        }
        if !self.st.budget.iterations(pat.len() as u64 / 4 + 1) {
            return Err(Ctl::Stop);
        }
        let r = posix_re::compile(pat, true, false).map_err(|e| {
            Ctl::Fatal(format!(
                "awk: run time error: regular expression compile failed ({e})\n{pat}\n"
            ))
        })?;
        if self.regexes.len() >= MAX_REGEXES {
            self.regexes.clear();
        }
        self.regexes.insert(pat.to_owned(), r.clone());
        Ok(r)
    }

    fn regex_of(&mut self, e: &Expr) -> R<Regex> {
        match e {
            Expr::Re(r) => self.regex(r),
            other => {
                let v = self.eval(other)?;
                let s = self.to_s(&v);
                self.regex(&s)
            }
        }
    }

    // -- fields --

    fn split_record(&mut self) -> R<()> {
        let fs = self.var_str("FS");
        let rec = std::mem::take(&mut self.record);
        self.fields = self.split_with(&rec, &fs)?;
        self.nf = self.fields.len();
        self.record = rec;
        Ok(())
    }

    fn split_with(&mut self, s: &str, fs: &str) -> R<Vec<String>> {
        if !self.st.budget.iterations(s.len() as u64 / 32 + 1) {
            return Err(Ctl::Stop);
        }
        if s.is_empty() {
            return Ok(Vec::new());
        }
        Ok(if fs == " " {
            s.split([' ', '\t', '\n'])
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        } else if fs.chars().count() == 1 && fs != "\\" {
            s.split(fs).map(str::to_owned).collect()
        } else if fs == "\t" {
            s.split('\t').map(str::to_owned).collect()
        } else {
            let re = self.regex(fs)?;
            let mut v = Vec::new();
            let mut last = 0;
            for m in re.find_iter(s.as_bytes()) {
                if m.start() == m.end() {
                    continue;
                }
                v.push(String::from_utf8_lossy(&s.as_bytes()[last..m.start()]).into_owned());
                last = m.end();
            }
            v.push(String::from_utf8_lossy(&s.as_bytes()[last..]).into_owned());
            v
        })
    }

    fn rebuild_record(&mut self) -> R<()> {
        let ofs = self.var_str("OFS");
        let total: usize = self.fields.iter().map(|f| f.len() + ofs.len()).sum();
        self.charge(total)?;
        self.record = self.fields[..self.nf.min(self.fields.len())].join(&ofs);
        Ok(())
    }

    fn get_field(&mut self, i: usize) -> R<Val> {
        if i == 0 {
            return Ok(Val::StrNum(self.record.clone()));
        }
        Ok(match self.fields.get(i - 1) {
            Some(f) if i <= self.nf => Val::StrNum(f.clone()),
            _ => Val::Uninit,
        })
    }

    fn set_field(&mut self, i: usize, v: String) -> R<()> {
        if i == 0 {
            self.charge(v.len())?;
            self.record = v;
            return self.split_record();
        }
        if i > MAX_FIELD {
            return Err(Ctl::Fatal(format!(
                "awk: program limit exceeded: maximum number of fields size={MAX_FIELD}\n"
            )));
        }
        self.charge(i.saturating_sub(self.fields.len()))?;
        while self.fields.len() < i {
            self.fields.push(String::new());
        }
        self.fields[i - 1] = v;
        self.nf = self.nf.max(i);
        self.rebuild_record()
    }

    fn field_index(&mut self, e: &Expr) -> R<usize> {
        let v = self.eval(e)?.num();
        if v < 0.0 {
            return Err(Ctl::Fatal(format!(
                "awk: run time error: negative field index ${}\n",
                v as i64
            )));
        }
        let i = v as usize;
        if i > MAX_FIELD {
            return Err(Ctl::Fatal(format!(
                "awk: program limit exceeded: maximum number of fields size={MAX_FIELD}\n"
            )));
        }
        Ok(i)
    }

    // -- variables --

    fn get_var(&mut self, name: &str) -> Val {
        if let Some(f) = self.frames.last()
            && let Some(v) = f.vars.get(name)
        {
            return v.clone();
        }
        match name {
            "NF" => Val::Num(self.nf as f64),
            _ => self.vars.get(name).cloned().unwrap_or(Val::Uninit),
        }
    }

    fn set_var(&mut self, name: &str, v: Val) -> R<()> {
        if let Some(f) = self.frames.last_mut()
            && f.vars.contains_key(name)
        {
            f.vars.insert(name.to_owned(), v);
            return Ok(());
        }
        if name == "NF" {
            let n = (v.num().max(0.0) as usize).min(MAX_FIELD);
            self.charge(n.saturating_sub(self.fields.len()))?;
            self.fields.resize(n.max(self.fields.len()), String::new());
            self.nf = n;
            self.fields.truncate(n);
            return self.rebuild_record();
        }
        self.vars.insert(name.to_owned(), v);
        Ok(())
    }

    /// The array a name means here: a local, an aliased caller's array, or a global.
    fn array(&mut self, name: &str) -> &mut Array {
        let mut target = name.to_owned();
        let mut depth = self.frames.len();
        while depth > 0 {
            let f = &self.frames[depth - 1];
            if f.arrays.contains_key(&target) {
                return self.frames[depth - 1]
                    .arrays
                    .get_mut(&target)
                    .expect("checked");
            }
            match f.alias.get(&target) {
                Some(a) => {
                    target = a.clone();
                    depth -= 1;
                }
                None => break,
            }
        }
        self.arrays.entry(target).or_default()
    }

    fn key(&mut self, idx: &[Expr]) -> R<String> {
        let mut parts = Vec::with_capacity(idx.len());
        for e in idx {
            let v = self.eval(e)?;
            parts.push(as_key(&match v {
                Val::Num(n) => Val::Str(num_to_str(n, &self.convfmt())),
                o => o,
            }));
        }
        let subsep = self
            .vars
            .get("SUBSEP")
            .map(|v| v.str_with("%.6g"))
            .unwrap_or_else(|| "\x1c".into());
        Ok(parts.join(&subsep))
    }

    fn assign(&mut self, lv: &Expr, v: Val) -> R<()> {
        match lv {
            Expr::Var(n) => self.set_var(n, v),
            Expr::Index(n, idx) => {
                let k = self.key(idx)?;
                self.array(n).set(&k, v);
                Ok(())
            }
            Expr::Field(e) => {
                let i = self.field_index(e)?;
                let s = self.to_s(&v);
                self.set_field(i, s)
            }
            Expr::Group(g) => self.assign(g, v),
            _ => Ok(()),
        }
    }

    // -- evaluation --

    fn eval(&mut self, e: &Expr) -> R<Val> {
        Ok(match e {
            Expr::Num(n) => Val::Num(*n),
            Expr::Str(s) => Val::Str(s.clone()),
            Expr::Re(r) => {
                let re = self.regex(r)?;
                self.tick()?;
                Val::Num(f64::from(u8::from(re.is_match(self.record.as_bytes()))))
            }
            Expr::Group(g) => match g.as_ref() {
                Expr::Builtin("__list", items) => {
                    let k = self.key(items)?;
                    Val::Str(k)
                }
                inner => self.eval(inner)?,
            },
            Expr::Field(i) => {
                let i = self.field_index(i)?;
                self.get_field(i)?
            }
            Expr::Var(n) => self.get_var(n),
            Expr::Index(n, idx) => {
                let k = self.key(idx)?;
                self.array(n).get(&k)
            }
            Expr::Assign(op, lv, rhs) => {
                let r = self.eval(rhs)?;
                let v = match op {
                    None => match r {
                        Val::Uninit => Val::Uninit,
                        other => other,
                    },
                    Some(op) => {
                        let l = self.eval(lv)?.num();
                        Val::Num(arith(op, l, r.num()))
                    }
                };
                self.assign(lv, v.clone())?;
                v
            }
            Expr::Cond(c, a, b) => {
                if self.eval(c)?.is_true() {
                    self.eval(a)?
                } else {
                    self.eval(b)?
                }
            }
            Expr::And(a, b) => Val::Num(f64::from(u8::from(
                self.eval(a)?.is_true() && self.eval(b)?.is_true(),
            ))),
            Expr::Or(a, b) => Val::Num(f64::from(u8::from(
                self.eval(a)?.is_true() || self.eval(b)?.is_true(),
            ))),
            Expr::Not(a) => Val::Num(f64::from(u8::from(!self.eval(a)?.is_true()))),
            Expr::Match(neg, l, r) => {
                let s = self.eval(l)?;
                let s = self.to_s(&s);
                let re = self.regex_of(r)?;
                if !self.st.budget.iterations(s.len() as u64 / 64 + 1) {
                    return Err(Ctl::Stop);
                }
                Val::Num(f64::from(u8::from(re.is_match(s.as_bytes()) != *neg)))
            }
            Expr::Cmp(op, l, r) => {
                let a = self.eval(l)?;
                let b = self.eval(r)?;
                let ord = if a.numeric_for_compare() && b.numeric_for_compare() {
                    a.num().partial_cmp(&b.num())
                } else {
                    Some(self.to_s(&a).as_bytes().cmp(self.to_s(&b).as_bytes()))
                };
                use std::cmp::Ordering::*;
                let t = match (*op, ord) {
                    (_, None) => *op == "!=",
                    ("<", Some(o)) => o == Less,
                    ("<=", Some(o)) => o != Greater,
                    (">", Some(o)) => o == Greater,
                    (">=", Some(o)) => o != Less,
                    ("==", Some(o)) => o == Equal,
                    (_, Some(o)) => o != Equal,
                };
                Val::Num(f64::from(u8::from(t)))
            }
            Expr::Arith(op, l, r) => {
                let a = self.eval(l)?.num();
                let b = self.eval(r)?.num();
                if (*op == "/" || *op == "%") && b == 0.0 {
                    // mawk prints inf/nan rather than failing.
                }
                Val::Num(arith(op, a, b))
            }
            Expr::Concat(l, r) => {
                let a = self.eval(l)?;
                let b = self.eval(r)?;
                let (a, b) = (self.to_s(&a), self.to_s(&b));
                self.charge(a.len() + b.len())?;
                Val::Str(a + &b)
            }
            Expr::Neg(a) => Val::Num(-self.eval(a)?.num()),
            Expr::Plus(a) => Val::Num(self.eval(a)?.num()),
            Expr::IncDec { pre, delta, lv } => {
                let old = self.eval(lv)?.num();
                self.assign(lv, Val::Num(old + delta))?;
                Val::Num(if *pre { old + delta } else { old })
            }
            Expr::In(idx, a) => {
                let k = self.key(idx)?;
                Val::Num(f64::from(u8::from(self.array(a).map.contains_key(&k))))
            }
            Expr::Builtin(name, args) => self.builtin(name, args)?,
            Expr::Call(name, args) => self.call(name, args)?,
            Expr::Getline { var, file, cmd } => {
                self.getline(var.as_deref(), file.as_deref(), cmd.as_deref())?
            }
        })
    }

    fn call(&mut self, name: &str, args: &[Expr]) -> R<Val> {
        self.tick()?;
        let Some(f) = self.prog.funcs.get(name).cloned() else {
            return Err(Ctl::Fatal(format!(
                "awk: line 1: function {name} never defined\n"
            )));
        };
        if self.frames.len() >= MAX_CALLS {
            return Err(Ctl::Fatal(
                "awk: run time error: function call nesting too deep\n".into(),
            ));
        }
        let mut frame = Frame {
            vars: HashMap::new(),
            arrays: HashMap::new(),
            alias: HashMap::new(),
        };
        for (k, p) in f.params.iter().enumerate() {
            match args.get(k) {
                Some(Expr::Var(n)) if self.is_array(n) => {
                    frame.alias.insert(p.clone(), n.clone());
                }
                Some(e) => {
                    let v = self.eval(e)?;
                    frame.vars.insert(p.clone(), v);
                }
                None => {
                    // Extra parameters are locals: scalars until used as arrays.
                    frame.vars.insert(p.clone(), Val::Uninit);
                }
            }
        }
        self.frames.push(frame);
        let r = self.exec_block(&f.body);
        self.frames.pop();
        match r {
            Ok(()) => Ok(Val::Uninit),
            Err(Ctl::Return(v)) => Ok(v),
            Err(other) => Err(other),
        }
    }

    fn is_array(&self, name: &str) -> bool {
        if let Some(f) = self.frames.last() {
            if f.arrays.contains_key(name) || f.alias.contains_key(name) {
                return true;
            }
            if f.vars.contains_key(name) {
                return false;
            }
        }
        self.arrays.contains_key(name)
    }

    fn local_array_param(&mut self, name: &str) {
        // A scalar parameter used as an array becomes a local array.
        if let Some(f) = self.frames.last_mut()
            && f.vars.remove(name).is_some()
        {
            f.arrays.insert(name.to_owned(), Array::default());
        }
    }

    fn builtin(&mut self, name: &str, args: &[Expr]) -> R<Val> {
        self.tick()?;
        let num = |me: &mut Self, i: usize| -> R<f64> {
            match args.get(i) {
                Some(e) => Ok(me.eval(e)?.num()),
                None => Ok(0.0),
            }
        };
        Ok(match name {
            "length" => match args.first() {
                None => Val::Num(self.record.len() as f64),
                Some(Expr::Var(n)) if self.is_array(n) => {
                    let n = n.clone();
                    Val::Num(self.array(&n).map.len() as f64)
                }
                Some(e) => {
                    let v = self.eval(e)?;
                    Val::Num(self.to_s(&v).len() as f64)
                }
            },
            "substr" => {
                let v = match args.first() {
                    Some(e) => self.eval(e)?,
                    None => Val::Uninit,
                };
                let s = self.to_s(&v);
                let len = s.len() as f64;
                let start = num(self, 1)?;
                let start = if start.is_nan() { 0.0 } else { start.round() };
                let count = if args.len() > 2 {
                    let c = num(self, 2)?;
                    if c.is_nan() { 0.0 } else { c.round() }
                } else {
                    f64::INFINITY
                };
                let from = start.max(1.0);
                let to = (start + count).min(len + 1.0);
                if to <= from {
                    Val::Str(String::new())
                } else {
                    let (a, b) = (from as usize - 1, to as usize - 1);
                    Val::Str(String::from_utf8_lossy(&s.as_bytes()[a..b]).into_owned())
                }
            }
            "index" => {
                let a = self.eval(args.first().unwrap_or(&Expr::Str(String::new())))?;
                let b = self.eval(args.get(1).unwrap_or(&Expr::Str(String::new())))?;
                let (a, b) = (self.to_s(&a), self.to_s(&b));
                if !self.st.budget.iterations((a.len() as u64 / 64) + 1) {
                    return Err(Ctl::Stop);
                }
                Val::Num(a.find(&b).map_or(0.0, |p| (p + 1) as f64))
            }
            "split" => {
                let v = self.eval(args.first().unwrap_or(&Expr::Str(String::new())))?;
                let s = self.to_s(&v);
                let Some(Expr::Var(arr)) = args.get(1) else {
                    return Err(Ctl::Fatal(
                        "awk: line 1: type error in arg(2) in call to split\n".into(),
                    ));
                };
                let fs = match args.get(2) {
                    Some(Expr::Re(r)) => r.clone(),
                    Some(e) => {
                        let v = self.eval(e)?;
                        self.to_s(&v)
                    }
                    None => self.var_str("FS"),
                };
                let parts = self.split_with(&s, &fs)?;
                self.charge(s.len())?;
                let arr = arr.clone();
                self.local_array_param(&arr);
                let a = self.array(&arr);
                *a = Array::default();
                let n = parts.len();
                for (i, p) in parts.into_iter().enumerate() {
                    a.set(&(i + 1).to_string(), Val::StrNum(p));
                }
                Val::Num(n as f64)
            }
            "sub" | "gsub" => {
                let re = self.regex_of(args.first().unwrap_or(&Expr::Str(String::new())))?;
                let repl = self.eval(args.get(1).unwrap_or(&Expr::Str(String::new())))?;
                let repl = self.to_s(&repl);
                let target = args
                    .get(2)
                    .cloned()
                    .unwrap_or(Expr::Field(Box::new(Expr::Num(0.0))));
                let v = self.eval(&target)?;
                let s = self.to_s(&v);
                if !self.st.budget.iterations(s.len() as u64 / 16 + 1) {
                    return Err(Ctl::Stop);
                }
                let mut res = Vec::with_capacity(s.len());
                let mut last = 0;
                let mut n = 0;
                for m in re.find_iter(s.as_bytes()) {
                    res.extend_from_slice(&s.as_bytes()[last..m.start()]);
                    let mut it = repl.bytes().peekable();
                    while let Some(c) = it.next() {
                        match c {
                            b'\\' if matches!(it.peek(), Some(b'&' | b'\\')) => {
                                res.push(it.next().unwrap_or(b'\\'));
                            }
                            b'&' => res.extend_from_slice(m.as_bytes()),
                            c => res.push(c),
                        }
                    }
                    last = m.end();
                    n += 1;
                    if name == "sub" {
                        break;
                    }
                    if res.len() > MAX_BUFFER {
                        return Err(Ctl::Stop);
                    }
                }
                if n > 0 {
                    res.extend_from_slice(&s.as_bytes()[last..]);
                    self.charge(res.len())?;
                    let out = String::from_utf8_lossy(&res).into_owned();
                    self.assign(&target, Val::Str(out))?;
                }
                Val::Num(f64::from(n))
            }
            "match" => {
                let v = self.eval(args.first().unwrap_or(&Expr::Str(String::new())))?;
                let s = self.to_s(&v);
                let re = self.regex_of(args.get(1).unwrap_or(&Expr::Str(String::new())))?;
                let (start, len) = match re.find(s.as_bytes()) {
                    Some(m) => ((m.start() + 1) as f64, (m.end() - m.start()) as f64),
                    None => (0.0, -1.0),
                };
                self.vars.insert("RSTART".into(), Val::Num(start));
                self.vars.insert("RLENGTH".into(), Val::Num(len));
                Val::Num(start)
            }
            "sprintf" => {
                let mut vals = Vec::new();
                for a in args {
                    vals.push(self.eval(a)?);
                }
                if vals.is_empty() {
                    return Ok(Val::Str(String::new()));
                }
                let fmt = self.to_s(&vals[0]);
                let (s, _) = format_one(&fmt, &vals[1..]);
                self.charge(s.len())?;
                Val::Str(s)
            }
            "sin" => Val::Num(num(self, 0)?.sin()),
            "cos" => Val::Num(num(self, 0)?.cos()),
            "atan2" => {
                let y = num(self, 0)?;
                Val::Num(y.atan2(num(self, 1)?))
            }
            "exp" => Val::Num(num(self, 0)?.exp()),
            "log" => {
                let v = num(self, 0)?;
                // glibc's log of a negative number is -nan.
                Val::Num(if v < 0.0 { -f64::NAN } else { v.ln() })
            }
            "sqrt" => {
                let v = num(self, 0)?;
                Val::Num(if v < 0.0 { -f64::NAN } else { v.sqrt() })
            }
            "int" => Val::Num(num(self, 0)?.trunc()),
            "rand" => {
                self.rand_state = self
                    .rand_state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                Val::Num((self.rand_state >> 11) as f64 / (1u64 << 53) as f64)
            }
            "srand" => {
                let prev = self.seed;
                let s = if args.is_empty() {
                    self.st.now as f64
                } else {
                    num(self, 0)?
                };
                self.seed = s;
                self.rand_state = s.to_bits();
                Val::Num(prev)
            }
            "tolower" | "toupper" => {
                let v = self.eval(args.first().unwrap_or(&Expr::Str(String::new())))?;
                let s = self.to_s(&v);
                Val::Str(if name == "tolower" {
                    s.to_ascii_lowercase()
                } else {
                    s.to_ascii_uppercase()
                })
            }
            "system" => {
                let v = self.eval(args.first().unwrap_or(&Expr::Str(String::new())))?;
                let cmd = self.to_s(&v);
                let (out, err, status) = self.shell(&cmd, &[])?;
                self.emit(&out)?;
                self.err.extend_from_slice(&err);
                Val::Num(f64::from(status))
            }
            "close" => {
                let v = self.eval(args.first().unwrap_or(&Expr::Str(String::new())))?;
                let name = self.to_s(&v);
                self.readers.remove(&name);
                self.close_pipe(&name)?;
                self.flush_file(&name);
                Val::Num(0.0)
            }
            "fflush" => Val::Num(0.0),
            _ => Val::Uninit,
        })
    }

    /// Runs `cmd` through the emulated shell (`sh -c`); never on the host.
    fn shell(&mut self, cmd: &str, stdin: &[u8]) -> R<(Vec<u8>, Vec<u8>, i32)> {
        let argv = vec!["sh".to_owned(), "-c".to_owned(), cmd.to_owned()];
        let ctx = Ctx {
            stdin,
            out_tty: false,
        };
        let saved = self.st.status;
        let o = commands::command(self.st, &argv, &ctx);
        self.st.status = saved;
        if self.st.budget.is_exhausted() {
            return Err(Ctl::Stop);
        }
        Ok((o.out, o.err, o.status))
    }

    /// Writes what `print > name` collected to the session's file; `false` on failure.
    fn flush_file(&mut self, name: &str) -> bool {
        let Some(p) = self.files.iter().position(|(n, _, _)| n == name) else {
            return true;
        };
        let (name, append, data) = self.files.remove(p);
        let path = path_of(self.st, &name);
        let (uid, now) = (self.st.uid, self.st.now);
        let r = if may_write(self.st, &path) {
            self.st.fs.write(&path, &data, append, uid, now)
        } else {
            Err(super::super::fs::FsError::Denied)
        };
        r.is_ok()
    }

    fn close_pipe(&mut self, name: &str) -> R<()> {
        if let Some(p) = self.pipes.iter().position(|(n, _)| n == name) {
            let (cmd, data) = self.pipes.remove(p);
            let (out, err, _) = self.shell(&cmd, &data)?;
            self.emit(&out)?;
            self.err.extend_from_slice(&err);
        }
        Ok(())
    }

    fn getline(&mut self, var: Option<&Expr>, file: Option<&Expr>, cmd: Option<&Expr>) -> R<Val> {
        self.tick()?;
        let source = match (file, cmd) {
            (Some(f), _) => {
                let v = self.eval(f)?;
                Some((self.to_s(&v), false))
            }
            (_, Some(c)) => {
                let v = self.eval(c)?;
                Some((self.to_s(&v), true))
            }
            _ => None,
        };
        let line = match source {
            None => {
                let Some(l) = self.next_record()? else {
                    return Ok(Val::Num(0.0));
                };
                let nr = self.get_var("NR").num() + 1.0;
                self.vars.insert("NR".into(), Val::Num(nr));
                let fnr = self.get_var("FNR").num() + 1.0;
                self.vars.insert("FNR".into(), Val::Num(fnr));
                l
            }
            Some((name, is_cmd)) => {
                if !self.readers.contains_key(&name) {
                    if self.readers.len() >= 16 {
                        return Ok(Val::Num(-1.0));
                    }
                    let data = if is_cmd {
                        self.shell(&name, &[])?.0
                    } else {
                        let ctx = Ctx {
                            stdin: &self.ctx_stdin,
                            out_tty: false,
                        };
                        match load(self.st, &name, &ctx) {
                            Ok(d) => d,
                            Err(_) => return Ok(Val::Num(-1.0)),
                        }
                    };
                    let text = String::from_utf8_lossy(&data).into_owned();
                    let mut q: std::collections::VecDeque<String> =
                        text.split('\n').map(str::to_owned).collect();
                    if text.ends_with('\n') || text.is_empty() {
                        q.pop_back();
                    }
                    self.readers.insert(name.clone(), q);
                }
                match self.readers.get_mut(&name).and_then(|q| q.pop_front()) {
                    Some(l) => {
                        let nr = self.get_var("NR").num() + 1.0;
                        self.vars.insert("NR".into(), Val::Num(nr));
                        l
                    }
                    None => return Ok(Val::Num(0.0)),
                }
            }
        };
        match var {
            Some(v) => self.assign(v, Val::StrNum(line))?,
            None => self.set_field(0, line)?,
        }
        Ok(Val::Num(1.0))
    }

    fn emit(&mut self, data: &[u8]) -> R<()> {
        if self.out.len() + data.len() > MAX_BUFFER {
            let room = MAX_BUFFER - self.out.len();
            self.out.extend_from_slice(&data[..room]);
            return Err(Ctl::Stop);
        }
        self.out.extend_from_slice(data);
        Ok(())
    }

    fn write_to(&mut self, redir: Option<&Redir>, data: &[u8]) -> R<()> {
        match redir {
            None => self.emit(data),
            Some(Redir::File(f, append)) => {
                let v = self.eval(f)?;
                let name = self.to_s(&v);
                if name == "/dev/stdout" || name == "-" {
                    return self.emit(data);
                }
                if name == "/dev/stderr" {
                    self.err.extend_from_slice(data);
                    return Ok(());
                }
                match self.files.iter_mut().find(|(n, _, _)| *n == name) {
                    Some(entry) => {
                        if entry.2.len() + data.len() > MAX_BUFFER {
                            return Err(Ctl::Stop);
                        }
                        entry.2.extend_from_slice(data);
                    }
                    None => {
                        if self.files.len() >= 16 {
                            return Err(Ctl::Fatal(format!(
                                "awk: cannot open \"{name}\" for output\n"
                            )));
                        }
                        self.files.push((name, *append, data.to_vec()));
                    }
                }
                Ok(())
            }
            Some(Redir::Pipe(c)) => {
                let v = self.eval(c)?;
                let name = self.to_s(&v);
                match self.pipes.iter_mut().find(|(n, _)| *n == name) {
                    Some(entry) => {
                        if entry.1.len() + data.len() > MAX_BUFFER {
                            return Err(Ctl::Stop);
                        }
                        entry.1.extend_from_slice(data);
                    }
                    None => {
                        if self.pipes.len() >= 16 {
                            return Err(Ctl::Stop);
                        }
                        self.pipes.push((name, data.to_vec()));
                    }
                }
                Ok(())
            }
        }
    }

    fn exec_block(&mut self, b: &[Stmt]) -> R<()> {
        for s in b {
            self.exec(s)?;
        }
        Ok(())
    }

    fn exec(&mut self, s: &Stmt) -> R<()> {
        self.tick()?;
        match s {
            Stmt::Expr(e) => {
                self.eval(e)?;
            }
            Stmt::Print(args, redir) => {
                let mut line = Vec::new();
                if args.is_empty() {
                    line.extend_from_slice(self.record.as_bytes());
                } else {
                    let ofs = self.var_str("OFS");
                    let ofmt = self.ofmt();
                    for (i, a) in args.iter().enumerate() {
                        if i > 0 {
                            line.extend_from_slice(ofs.as_bytes());
                        }
                        let v = self.eval(a)?;
                        line.extend_from_slice(v.str_with(&ofmt).as_bytes());
                    }
                }
                line.extend_from_slice(self.var_str("ORS").as_bytes());
                self.charge(line.len())?;
                self.write_to(redir.as_ref(), &line)?;
            }
            Stmt::Printf(args, redir) => {
                let mut vals = Vec::with_capacity(args.len());
                for a in args {
                    vals.push(self.eval(a)?);
                }
                let fmt = self.to_s(&vals[0]);
                let (s, enough) = format_one(&fmt, &vals[1..]);
                if !enough {
                    let nr = self.get_var("NR").num();
                    let fnr = self.get_var("FNR").num();
                    let file = self.var_str("FILENAME");
                    return Err(Ctl::Fatal(format!(
                        "awk: run time error: not enough arguments passed to printf(\"{fmt}\")\n\tFILENAME=\"{file}\" FNR={fnr} NR={nr}\n"
                    )));
                }
                self.charge(s.len())?;
                self.write_to(redir.as_ref(), s.as_bytes())?;
            }
            Stmt::If(c, a, b) => {
                if self.eval(c)?.is_true() {
                    self.exec(a)?;
                } else if let Some(b) = b {
                    self.exec(b)?;
                }
            }
            Stmt::While(c, body) => {
                while self.eval(c)?.is_true() {
                    self.tick()?;
                    match self.exec(body) {
                        Err(Ctl::Break) => break,
                        Err(Ctl::Continue) | Ok(()) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Stmt::Do(body, c) => loop {
                self.tick()?;
                match self.exec(body) {
                    Err(Ctl::Break) => break,
                    Err(Ctl::Continue) | Ok(()) => {}
                    Err(e) => return Err(e),
                }
                if !self.eval(c)?.is_true() {
                    break;
                }
            },
            Stmt::For(init, cond, step, body) => {
                if let Some(i) = init {
                    self.eval(i)?;
                }
                loop {
                    self.tick()?;
                    if let Some(c) = cond
                        && !self.eval(c)?.is_true()
                    {
                        break;
                    }
                    match self.exec(body) {
                        Err(Ctl::Break) => break,
                        Err(Ctl::Continue) | Ok(()) => {}
                        Err(e) => return Err(e),
                    }
                    if let Some(s) = step {
                        self.eval(s)?;
                    }
                }
            }
            Stmt::ForIn(k, a, body) => {
                let keys = self.array(a).order.clone();
                if !self.st.budget.iterations(keys.len() as u64) {
                    return Err(Ctl::Stop);
                }
                for key in keys {
                    if !self.array(a).map.contains_key(&key) {
                        continue;
                    }
                    self.set_var(k, Val::StrNum(key))?;
                    match self.exec(body) {
                        Err(Ctl::Break) => break,
                        Err(Ctl::Continue) | Ok(()) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            Stmt::Block(b) => self.exec_block(b)?,
            Stmt::Next => return Err(Ctl::Next),
            Stmt::Exit(e) => {
                if let Some(e) = e {
                    self.exit_code = self.eval(e)?.num() as i32;
                }
                return Err(Ctl::Exit);
            }
            Stmt::Return(e) => {
                let v = match e {
                    Some(e) => self.eval(e)?,
                    None => Val::Uninit,
                };
                return Err(Ctl::Return(v));
            }
            Stmt::Break => return Err(Ctl::Break),
            Stmt::Continue => return Err(Ctl::Continue),
            Stmt::Delete(a, idx) => match idx {
                None => *self.array(a) = Array::default(),
                Some(idx) => {
                    let k = self.key(idx)?;
                    let len = self.array(a).order.len() as u64;
                    if !self.st.budget.iterations(len / 64 + 1) {
                        return Err(Ctl::Stop);
                    }
                    self.array(a).remove(&k);
                }
            },
        }
        Ok(())
    }

    /// The next record of the main input, moving through the operands (and their
    /// `var=value` assignments) as they come.
    fn next_record(&mut self) -> R<Option<String>> {
        loop {
            if let Some(r) = self.pending.pop_front() {
                return Ok(Some(r));
            }
            let Some(input) = self.inputs.get(self.input_idx) else {
                return Ok(None);
            };
            self.input_idx += 1;
            match input {
                Input::Assign(k, v) => {
                    let (k, v) = (k.clone(), v.clone());
                    self.set_var(&k, Val::StrNum(unescape(&v)))?;
                }
                Input::Data(name, data) => {
                    let name = name.clone();
                    let text = String::from_utf8_lossy(data).into_owned();
                    self.vars.insert("FILENAME".into(), Val::Str(name));
                    self.vars.insert("FNR".into(), Val::Num(0.0));
                    let rs = self.var_str("RS");
                    let mut recs: Vec<String> = if rs.is_empty() {
                        text.split("\n\n")
                            .map(|p| p.trim_matches('\n').to_owned())
                            .filter(|p| !p.is_empty())
                            .collect()
                    } else if rs.chars().count() == 1 {
                        let mut v: Vec<String> =
                            text.split(rs.as_str()).map(str::to_owned).collect();
                        if text.ends_with(rs.as_str()) || text.is_empty() {
                            v.pop();
                        }
                        v
                    } else {
                        let re = self.regex(&rs)?;
                        let mut v: Vec<String> = Vec::new();
                        let mut last = 0;
                        for m in re.find_iter(text.as_bytes()) {
                            v.push(
                                String::from_utf8_lossy(&text.as_bytes()[last..m.start()])
                                    .into_owned(),
                            );
                            last = m.end();
                        }
                        if last < text.len() {
                            v.push(text[last..].to_owned());
                        }
                        v
                    };
                    if !self.st.budget.iterations(recs.len() as u64) {
                        return Err(Ctl::Stop);
                    }
                    self.pending = recs.drain(..).collect();
                }
            }
        }
    }

    fn pattern_matches(&mut self, k: usize) -> R<bool> {
        let (pat, _) = &self.prog.items[k];
        match pat.clone() {
            Pattern::All => Ok(true),
            Pattern::Begin | Pattern::End => Ok(false),
            Pattern::Expr(e) => Ok(self.eval(&e)?.is_true()),
            Pattern::Range(a, b) => {
                if self.range_active[k] {
                    if self.eval(&b)?.is_true() {
                        self.range_active[k] = false;
                    }
                    Ok(true)
                } else if self.eval(&a)?.is_true() {
                    if !self.eval(&b)?.is_true() {
                        self.range_active[k] = true;
                    }
                    Ok(true)
                } else {
                    Ok(false)
                }
            }
        }
    }

    fn run_items(&mut self) -> R<()> {
        for k in 0..self.prog.items.len() {
            if matches!(self.prog.items[k].0, Pattern::Begin | Pattern::End) {
                continue;
            }
            self.tick()?;
            if !self.pattern_matches(k)? {
                continue;
            }
            match self.prog.items[k].1.clone() {
                Some(action) => self.exec_block(&action)?,
                None => {
                    let mut line = self.record.clone().into_bytes();
                    line.extend_from_slice(self.var_str("ORS").as_bytes());
                    self.emit(&line)?;
                }
            }
        }
        Ok(())
    }

    fn run_special(&mut self, which: fn(&Pattern) -> bool) -> R<()> {
        let blocks: Vec<Vec<Stmt>> = self
            .prog
            .items
            .iter()
            .filter(|(p, _)| which(p))
            .filter_map(|(_, a)| a.clone())
            .collect();
        for b in blocks {
            match self.exec_block(&b) {
                Ok(()) | Err(Ctl::Next) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// BEGIN, the records, END; `Err` only for a fatal error's message.
    fn run(&mut self) -> Result<(), String> {
        let fatal = |c: Ctl| -> Result<bool, String> {
            match c {
                Ctl::Fatal(m) => Err(m),
                Ctl::Stop => Ok(false),
                _ => Ok(true),
            }
        };
        match self.run_special(|p| matches!(p, Pattern::Begin)) {
            Ok(()) => {}
            Err(Ctl::Exit) => {
                return match self.run_special(|p| matches!(p, Pattern::End)) {
                    Err(c) => fatal(c).map(|_| ()),
                    Ok(()) => Ok(()),
                };
            }
            Err(c) => return fatal(c).map(|_| ()),
        }
        let has_main = self
            .prog
            .items
            .iter()
            .any(|(p, _)| !matches!(p, Pattern::Begin));
        if !has_main {
            return Ok(());
        }
        loop {
            let rec = match self.next_record() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(c) => return fatal(c).map(|_| ()),
            };
            let nr = self.get_var("NR").num() + 1.0;
            self.vars.insert("NR".into(), Val::Num(nr));
            let fnr = self.get_var("FNR").num() + 1.0;
            self.vars.insert("FNR".into(), Val::Num(fnr));
            self.record = rec;
            if let Err(c) = self.split_record() {
                return fatal(c).map(|_| ());
            }
            match self.run_items() {
                Ok(()) | Err(Ctl::Next) => {}
                Err(Ctl::Exit) => break,
                Err(c) => {
                    if !fatal(c)? {
                        return Ok(());
                    }
                }
            }
        }
        match self.run_special(|p| matches!(p, Pattern::End)) {
            Ok(()) | Err(Ctl::Exit) => Ok(()),
            Err(c) => fatal(c).map(|_| ()),
        }
    }
}

fn arith(op: &str, a: f64, b: f64) -> f64 {
    match op {
        "+" => a + b,
        "-" => a - b,
        "*" => a * b,
        "/" => a / b,
        "%" => a % b,
        _ => a.powf(b),
    }
}

const USAGE: &str = "Usage: mawk [Options] [Program] [file ...]\n\nProgram:\n    The -f option value is the name of a file containing program text.\n    If no -f option is given, a \"--\" ends option processing; the following\n    parameters are the program text.\n\nOptions:\n    -f program-file  Program  text is read from file instead of from the\n                     command-line.  Multiple -f options are accepted.\n    -F value         sets the field separator, FS, to value.\n    -v var=value     assigns value to program variable var.\n    --               unambiguous end of options.\n\n    Implementation-specific options are prefixed with \"-W\".  They can be\n    abbreviated:\n\n    -W version       show version information and exit.\n    -W dump          show assembler-like listing of program and exit.\n    -W help          show this message and exit.\n    -W interactive   set unbuffered output, line-buffered input.\n    -W exec file     use file as program as well as last option.\n    -W random=number set initial random seed.\n    -W sprintf=number adjust size of sprintf buffer.\n    -W posix_space   do not consider \"\\n\" a space.\n    -W usage         show this message and exit.\n";

const VERSION: &str = "mawk 1.3.4 20200120\nCopyright 2008-2019,2020, Thomas E. Dickey\nCopyright 1991-1996,2014, Michael D. Brennan\n\nrandom-funcs:       srandom/random\nregex-funcs:        internal\ncompiled limits:\nsprintf buffer      8192\nmaximum-integer     2147483647\n";

fn valid_name(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub(super) fn run(st: &mut State, args: &[String], ctx: &Ctx<'_>) -> Out {
    let mut fs: Option<String> = None;
    let mut assigns: Vec<(String, String)> = Vec::new();
    let mut progs: Vec<String> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            i += 1;
            break;
        }
        if !a.starts_with('-') || a == "-" {
            break;
        }
        i += 1;
        let (flag, attached) = (&a[..2.min(a.len())], &a[2.min(a.len())..]);
        let mut value = || -> Option<String> {
            if !attached.is_empty() {
                Some(attached.to_owned())
            } else if i < args.len() {
                i += 1;
                Some(args[i - 1].clone())
            } else {
                None
            }
        };
        match flag {
            "-F" => match value() {
                Some(v) => fs = Some(v),
                None => {
                    return Out::fail(
                        2,
                        "awk: option requires an argument -- F\n".to_owned() + USAGE,
                    );
                }
            },
            "-v" => match value() {
                Some(v) => match v.split_once('=') {
                    Some((k, val)) if valid_name(k) => assigns.push((k.to_owned(), val.to_owned())),
                    _ => return Out::fail(2, format!("awk: improper assignment: -v {v}\n")),
                },
                None => {
                    return Out::fail(
                        2,
                        "awk: option requires an argument -- v\n".to_owned() + USAGE,
                    );
                }
            },
            "-f" => match value() {
                Some(f) => match load(st, &f, ctx) {
                    Ok(d) => progs.push(String::from_utf8_lossy(&d).into_owned()),
                    Err(_) => return Out::fail(2, format!("awk: couldn't open file {f}\n")),
                },
                None => {
                    return Out::fail(
                        2,
                        "awk: option requires an argument -- f\n".to_owned() + USAGE,
                    );
                }
            },
            "-W" => {
                let v = value().unwrap_or_default();
                if v.starts_with('v') {
                    return Out::ok(VERSION);
                }
                if v.starts_with('h') || v.starts_with('u') {
                    return Out::ok(USAGE);
                }
            }
            _ => {
                if a == "--version" || a == "-version" {
                    return Out::ok(VERSION);
                }
                return Out::fail(2, format!("awk: not an option: {a}\n"));
            }
        }
    }
    if progs.is_empty() {
        match args.get(i) {
            Some(p) => {
                progs.push(p.clone());
                i += 1;
            }
            None => return Out::fail(2, USAGE),
        }
    }
    let src = progs.join("\n");
    if !st.budget.iterations(src.len() as u64 / 4 + 1) {
        return Out::default();
    }
    let prog = match lex(&src).and_then(|toks| {
        Parser {
            toks,
            i: 0,
            depth: 0,
            no_gt: false,
            no_in: false,
        }
        .program()
    }) {
        Ok(p) => p,
        Err(e) => return Out::fail(2, format!("awk: {e}\n")),
    };
    let mut o = Out::default();
    // The operands: files, `-` (stdin), and `var=value` assignments, in order.
    let mut inputs = Vec::new();
    let mut any_file = false;
    let ops: Vec<String> = args[i..].to_vec();
    for op in &ops {
        if let Some((k, v)) = op.split_once('=')
            && valid_name(k)
        {
            inputs.push(Input::Assign(k.to_owned(), v.to_owned()));
            continue;
        }
        any_file = true;
        match load(st, op, ctx) {
            Ok(d) => inputs.push(Input::Data(op.clone(), d)),
            Err(e) => {
                // mawk opens its inputs as it reaches them; a missing one ends the run.
                o.eline(&format!("awk: cannot open {op} ({})", e.text()));
                o.status = 2;
                break;
            }
        }
    }
    if !any_file && o.status == 0 {
        inputs.push(Input::Data(
            String::new(),
            super::super::commands::take(st, ctx.stdin, MAX_BUFFER).to_vec(),
        ));
    }
    let n_items = prog.items.len();
    let mut it = Interp {
        st,
        prog,
        vars: HashMap::new(),
        arrays: HashMap::new(),
        frames: Vec::new(),
        record: String::new(),
        fields: Vec::new(),
        nf: 0,
        out: Vec::new(),
        err: Vec::new(),
        files: Vec::new(),
        pipes: Vec::new(),
        regexes: HashMap::new(),
        inputs,
        input_idx: 0,
        pending: Default::default(),
        readers: HashMap::new(),
        range_active: vec![false; n_items],
        exit_code: 0,
        rand_state: 0x853c_49e6_748f_ea9b,
        seed: 0.0,
        ctx_stdin: ctx.stdin.to_vec(),
    };
    for (k, v) in [
        (
            "FS",
            fs.map_or_else(
                || " ".to_owned(),
                |f| {
                    if f == "t" {
                        "\t".to_owned()
                    } else {
                        unescape(&f)
                    }
                },
            ),
        ),
        ("OFS", " ".into()),
        ("ORS", "\n".into()),
        ("RS", "\n".into()),
        ("SUBSEP", "\x1c".into()),
        ("CONVFMT", "%.6g".into()),
        ("OFMT", "%.6g".into()),
        ("FILENAME", String::new()),
    ] {
        it.vars.insert(k.into(), Val::Str(v));
    }
    for (k, v) in [
        ("NR", 0.0),
        ("FNR", 0.0),
        ("RSTART", 0.0),
        ("RLENGTH", -1.0),
    ] {
        it.vars.insert(k.into(), Val::Num(v));
    }
    it.vars
        .insert("ARGC".into(), Val::Num((ops.len() + 1) as f64));
    let mut argv = Array::default();
    argv.set("0", Val::Str("awk".into()));
    for (n, a) in ops.iter().enumerate() {
        argv.set(&(n + 1).to_string(), Val::StrNum(a.clone()));
    }
    it.arrays.insert("ARGV".into(), argv);
    let mut env = Array::default();
    for (k, v) in &it.st.env {
        env.set(k, Val::StrNum(v.clone()));
    }
    it.arrays.insert("ENVIRON".into(), env);
    for (k, v) in assigns {
        it.vars.insert(k, Val::StrNum(unescape(&v)));
    }
    let failed = it.run().err();
    // Open pipes run now (what `print | "sh"` feeds them), then files are written.
    let pipes: Vec<String> = it.pipes.iter().map(|(n, _)| n.clone()).collect();
    for p in pipes {
        if it.close_pipe(&p).is_err() {
            break;
        }
    }
    let names: Vec<String> = it.files.iter().map(|(n, _, _)| n.clone()).collect();
    let mut file_errs = Vec::new();
    for name in names {
        if !it.flush_file(&name) {
            file_errs.push(format!("awk: cannot open \"{name}\" for output\n"));
        }
    }
    o.put(&it.out);
    o.err.extend_from_slice(&it.err);
    o.status = if o.status != 0 {
        o.status
    } else {
        it.exit_code
    };
    if let Some(msg) = failed {
        o.err.extend_from_slice(msg.as_bytes());
        o.status = 2;
    }
    for e in file_errs {
        o.err.extend_from_slice(e.as_bytes());
        o.status = 2;
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printf_like_c() {
        let f = |fmt: &str, v: Vec<Val>| format_one(fmt, &v).0;
        assert_eq!(
            f(
                "%5.2f|%-4d|%x",
                vec![Val::Num(1.23456), Val::Num(42.0), Val::Num(255.0)]
            ),
            " 1.23|42  |ff"
        );
        assert_eq!(f("%e", vec![Val::Num(12345.678)]), "1.234568e+04");
        assert_eq!(f("%g", vec![Val::Num(0.0001234)]), "0.0001234");
        assert_eq!(f("%g", vec![Val::Num(1e20)]), "1e+20");
        assert_eq!(f("%G", vec![Val::Num(1e-10)]), "1E-10");
        assert_eq!(f("%05d", vec![Val::Num(-42.0)]), "-0042");
        assert_eq!(num_to_str(0.1 + 0.2, "%.6g"), "0.3");
        assert_eq!(num_to_str(2147483648.0, "%.6g"), "2.14748e+09");
        assert_eq!(num_to_str(17.0 / 3.0, "%.6g"), "5.66667");
    }

    #[test]
    fn parses_common_programs() {
        for p in [
            "{print $1}",
            "NR==1",
            "/re/ {print $NF}",
            "BEGIN{FS=\":\"} {n++} END{print n}",
            "{ for (i = 1; i <= NF; i++) s += $i } END { printf \"%d\\n\", s }",
            "function f(a, b) { return a + b } BEGIN { print f(1, 2) }",
            "{ a[$1]++ } END { for (k in a) print k, a[k] }",
            "BEGIN { while (1) x++ }",
            "{ if ($1 > 5) print; else print \"small\" }",
            "BEGIN { \"id\" | getline x; print x }",
        ] {
            let toks = lex(p).unwrap();
            Parser {
                toks,
                i: 0,
                depth: 0,
                no_gt: false,
                no_in: false,
            }
            .program()
            .unwrap_or_else(|e| panic!("{p}: {e}"));
        }
    }

    #[test]
    fn nesting_is_capped() {
        let p = format!("BEGIN {{ x = {}1{} }}", "(".repeat(5000), ")".repeat(5000));
        let toks = lex(&p).unwrap();
        assert!(
            Parser {
                toks,
                i: 0,
                depth: 0,
                no_gt: false,
                no_in: false
            }
            .program()
            .is_err()
        );
    }
}
