//! Text filters as coreutils 9.1 (and util-linux's `rev`) print them on Debian 12 in the
//! C.UTF-8 locale: `cut sort uniq tr tee base64 md5sum sha1sum sha256sum od nl rev seq
//! yes basename dirname head tail`. Inputs are the session's files or stdin, already
//! bounded by MAX_BUFFER and the line's data budget; every per-line or per-value loop
//! charges the line's iteration budget first.

use super::super::State;
use super::super::budget::MAX_BUFFER;
use super::super::commands::{self, Ctx, Out, take};
use super::getopt::{self, Opts};
use super::{lines_of, load, load_all, may_write, path_of, usage_error};
use std::cmp::Ordering;
use std::fmt::Write as _;

pub(super) fn run(st: &mut State, name: &str, args: &[String], ctx: &Ctx<'_>) -> Option<Out> {
    Some(match name {
        "cut" => cut(st, args, ctx),
        "sort" => sort(st, args, ctx),
        "uniq" => uniq(st, args, ctx),
        "tr" => tr(st, args, ctx),
        "tee" => tee(st, args, ctx),
        "base64" => base64(st, args, ctx),
        "md5sum" | "sha1sum" | "sha256sum" => digest(st, name, args, ctx),
        "od" => od(st, args, ctx),
        "nl" => nl(st, args, ctx),
        "rev" => rev(st, args, ctx),
        "seq" => seq(st, args),
        "yes" => yes(st, args),
        "basename" => basename(args),
        "dirname" => dirname(args),
        "head" | "tail" => head_tail(st, name, args, ctx),
        "xargs" => xargs(st, args, ctx),
        _ => return None,
    })
}

/// coreutils quotes operands in messages with the locale's quotes: C.UTF-8 has ‘ ’.
pub(super) fn q(s: &str) -> String {
    format!("\u{2018}{s}\u{2019}")
}

fn opts(
    name: &str,
    args: &[String],
    flags: &str,
    with_value: &str,
    longs: &[getopt::Long],
) -> Result<Opts, Out> {
    getopt::parse(name, args, flags, with_value, longs, 1)
}

macro_rules! try_opts {
    ($e:expr) => {
        match $e {
            Ok(o) => o,
            Err(out) => return out,
        }
    };
}

// ---- cut ------------------------------------------------------------------------------

/// 1-based inclusive ranges, sorted and merged.
fn parse_list(spec: &str, what: &str) -> Result<Vec<(usize, usize)>, String> {
    let mut v = Vec::new();
    for part in spec.split([',', ' ']) {
        if part.is_empty() {
            return Err(format!("invalid {what} value {}", q(spec)));
        }
        let num = |s: &str| -> Result<usize, String> {
            s.parse::<usize>()
                .map_err(|_| format!("invalid {what} value {}", q(s)))
        };
        let (lo, hi) = match part.split_once('-') {
            None => {
                let n = num(part)?;
                (n, n)
            }
            Some(("", "")) => return Err("invalid range with no endpoint: -".into()),
            Some(("", h)) => (1, num(h)?),
            Some((l, "")) => (num(l)?, usize::MAX),
            Some((l, h)) => (num(l)?, num(h)?),
        };
        if lo == 0 {
            return Err(if what == "field" {
                "fields are numbered from 1".into()
            } else {
                "byte/character positions are numbered from 1".into()
            });
        }
        if hi < lo {
            return Err("invalid decreasing range".into());
        }
        v.push((lo, hi));
    }
    v.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (lo, hi) in v {
        match merged.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    Ok(merged)
}

fn in_list(list: &[(usize, usize)], n: usize) -> bool {
    list.iter().any(|&(lo, hi)| lo <= n && n <= hi)
}

fn cut(st: &State, args: &[String], ctx: &Ctx<'_>) -> Out {
    let o = try_opts!(opts(
        "cut",
        args,
        "nsz",
        "bcdf",
        &[
            ("bytes", 'b', true),
            ("characters", 'c', true),
            ("delimiter", 'd', true),
            ("fields", 'f', true),
            ("only-delimited", 's', false),
            ("complement", 'C', false),
            ("output-delimiter", 'O', true),
            ("zero-terminated", 'z', false),
        ]
    ));
    let kinds: Vec<char> = ['b', 'c', 'f'].into_iter().filter(|c| o.has(*c)).collect();
    let kind = match kinds[..] {
        [] => {
            return usage_error(
                "cut",
                "you must specify a list of bytes, characters, or fields",
                1,
            );
        }
        [k] => k,
        _ => return usage_error("cut", "only one list may be specified", 1),
    };
    let fields = kind == 'f';
    let delim = match o.value('d') {
        Some(d) if d.chars().count() > 1 => {
            return usage_error("cut", "the delimiter must be a single character", 1);
        }
        Some(d) => d.bytes().next().unwrap_or(0),
        None => b'\t',
    };
    if !fields && o.has('d') {
        return usage_error(
            "cut",
            "an input delimiter may be specified only when operating on fields",
            1,
        );
    }
    if !fields && o.has('s') {
        return usage_error(
            "cut",
            "suppressing non-delimited lines makes sense\n\tonly when operating on fields",
            1,
        );
    }
    let what = if fields { "field" } else { "byte/character" };
    let list = match parse_list(o.value(kind).unwrap_or(""), what) {
        Ok(l) => l,
        Err(e) => return usage_error("cut", &e, 1),
    };
    let complement = o.has('C');
    let out_delim: Vec<u8> = match o.value('O') {
        Some(d) => d.as_bytes().to_vec(),
        None if fields => vec![delim],
        None => Vec::new(),
    };
    let mut out = Out::default();
    let data = load_all(st, "cut", &o.operands, ctx, &mut out);
    let Some(lines) = lines_of(st, &data) else {
        return out;
    };
    for line in lines {
        if out.full() {
            break;
        }
        let mut res: Vec<u8> = Vec::new();
        if fields {
            if !line.contains(&delim) {
                if o.has('s') {
                    continue;
                }
                res.extend_from_slice(line);
            } else {
                let parts: Vec<&[u8]> = line.split(|&b| b == delim).collect();
                if !st.budget.iterations(parts.len() as u64 / 16) {
                    break;
                }
                let mut first = true;
                for (i, p) in parts.iter().enumerate() {
                    if in_list(&list, i + 1) != complement {
                        if !first {
                            res.extend_from_slice(&out_delim);
                        }
                        first = false;
                        res.extend_from_slice(p);
                    }
                }
            }
        } else {
            let mut prev: Option<usize> = None;
            for (i, &b) in line.iter().enumerate() {
                if in_list(&list, i + 1) != complement {
                    if prev.is_some_and(|p| p + 1 != i) {
                        res.extend_from_slice(&out_delim);
                    }
                    prev = Some(i);
                    res.push(b);
                }
            }
        }
        res.push(b'\n');
        out.put(&res);
    }
    out
}

// ---- sort -----------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, Default)]
struct Mods {
    numeric: bool,
    human: bool,
    general: bool,
    reverse: bool,
    fold: bool,
    blanks: bool,
}

#[derive(Debug, Clone, Copy)]
struct Key {
    sf: usize,
    sc: usize,
    /// End field (0: end of line) and character (0: end of the field).
    ef: usize,
    ec: usize,
    mods: Mods,
    /// The key named modifiers of its own (else the global ones apply).
    own: bool,
}

fn parse_mods(s: &str, m: &mut Mods) -> Result<bool, ()> {
    let mut any = false;
    for c in s.chars() {
        any = true;
        match c {
            'n' => m.numeric = true,
            'h' => m.human = true,
            'g' => m.general = true,
            'r' => m.reverse = true,
            'f' => m.fold = true,
            'b' => m.blanks = true,
            'd' | 'i' | 'M' | 'V' | 'R' => {}
            _ => return Err(()),
        }
    }
    Ok(any)
}

fn parse_key(spec: &str) -> Result<Key, String> {
    let bad = || {
        format!(
            "invalid number at field start: invalid count at start of {}",
            q(spec)
        )
    };
    let (start, end) = match spec.split_once(',') {
        Some((s, e)) => (s, Some(e)),
        None => (spec, None),
    };
    let mut mods = Mods::default();
    let split_num = |s: &str| -> (String, String) {
        let n: String = s
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        (n.clone(), s[n.len()..].to_owned())
    };
    let (sn, smods) = split_num(start);
    let (sf, sc) = match sn.split_once('.') {
        Some((f, c)) => (f.parse().map_err(|_| bad())?, c.parse().map_err(|_| bad())?),
        None => (sn.parse::<usize>().map_err(|_| bad())?, 1),
    };
    if sf == 0 {
        return Err("field number is zero: invalid field specification ".to_owned() + &q(spec));
    }
    let mut own = parse_mods(&smods, &mut mods).map_err(|()| {
        format!(
            "stray character in field spec: invalid field specification {}",
            q(spec)
        )
    })?;
    let (mut ef, mut ec) = (0, 0);
    if let Some(e) = end {
        let (en, emods) = split_num(e);
        (ef, ec) = match en.split_once('.') {
            Some((f, c)) => (f.parse().map_err(|_| bad())?, c.parse().map_err(|_| bad())?),
            None => (en.parse::<usize>().map_err(|_| bad())?, 0),
        };
        own |= parse_mods(&emods, &mut mods).map_err(|()| {
            format!(
                "stray character in field spec: invalid field specification {}",
                q(spec)
            )
        })?;
    }
    Ok(Key {
        sf,
        sc,
        ef,
        ec,
        mods,
        own,
    })
}

/// Start offsets of fields: with a separator, after each one; else each field begins
/// with the blanks before it (coreutils' rule).
fn field_bounds(line: &[u8], tab: Option<u8>) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    match tab {
        Some(t) => {
            let mut s = 0;
            for (i, &b) in line.iter().enumerate() {
                if b == t {
                    v.push((s, i));
                    s = i + 1;
                }
            }
            v.push((s, line.len()));
        }
        None => {
            let mut i = 0;
            while i < line.len() {
                let s = i;
                while i < line.len() && (line[i] == b' ' || line[i] == b'\t') {
                    i += 1;
                }
                while i < line.len() && line[i] != b' ' && line[i] != b'\t' {
                    i += 1;
                }
                v.push((s, i));
            }
        }
    }
    v
}

fn key_slice<'a>(line: &'a [u8], k: &Key, tab: Option<u8>) -> &'a [u8] {
    let f = field_bounds(line, tab);
    let skip_blanks = |mut p: usize, end: usize| {
        while p < end && (line[p] == b' ' || line[p] == b'\t') {
            p += 1;
        }
        p
    };
    let start = match f.get(k.sf - 1) {
        None => return &[],
        Some(&(s, e)) => {
            let s = if k.mods.blanks { skip_blanks(s, e) } else { s };
            (s + k.sc.saturating_sub(1)).min(line.len())
        }
    };
    let end = if k.ef == 0 {
        line.len()
    } else {
        match f.get(k.ef - 1) {
            None => line.len(),
            Some(&(s, e)) => {
                if k.ec == 0 {
                    e
                } else {
                    let s = if k.mods.blanks { skip_blanks(s, e) } else { s };
                    (s + k.ec).min(e.max(s + k.ec)).min(line.len())
                }
            }
        }
    };
    if end <= start { &[] } else { &line[start..end] }
}

/// The number at the start of `s` (after blanks) as sort -n reads it; none is 0.
fn leading_number(s: &[u8]) -> f64 {
    let t = String::from_utf8_lossy(s);
    let t = t.trim_start_matches([' ', '\t']);
    let mut end = 0;
    let b = t.as_bytes();
    if end < b.len() && b[end] == b'-' {
        end += 1;
    }
    let digits_start = end;
    while end < b.len() && b[end].is_ascii_digit() {
        end += 1;
    }
    if end < b.len() && b[end] == b'.' {
        end += 1;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
    }
    if end == digits_start {
        return 0.0;
    }
    t[..end].parse().unwrap_or(0.0)
}

fn human_number(s: &[u8]) -> (i32, f64) {
    let n = leading_number(s);
    let t = String::from_utf8_lossy(s);
    let t = t.trim_start_matches([' ', '\t']);
    let rest = t.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-');
    let rank = match rest.chars().next() {
        Some('K' | 'k') => 1,
        Some('M') => 2,
        Some('G') => 3,
        Some('T') => 4,
        Some('P') => 5,
        Some('E') => 6,
        _ => 0,
    };
    let sign = if n < 0.0 { -1 } else { 1 };
    (if n == 0.0 { 0 } else { sign * (rank + 1) }, n)
}

fn compare_with(a: &[u8], b: &[u8], m: &Mods) -> Ordering {
    let ord = if m.numeric || m.general {
        leading_number(a)
            .partial_cmp(&leading_number(b))
            .unwrap_or(Ordering::Equal)
    } else if m.human {
        let (ra, na) = human_number(a);
        let (rb, nb) = human_number(b);
        ra.cmp(&rb)
            .then(na.partial_cmp(&nb).unwrap_or(Ordering::Equal))
    } else if m.fold {
        let up = |x: &[u8]| -> Vec<u8> { x.iter().map(u8::to_ascii_uppercase).collect() };
        up(a).cmp(&up(b))
    } else {
        a.cmp(b)
    };
    if m.reverse { ord.reverse() } else { ord }
}

fn sort(st: &mut State, args: &[String], ctx: &Ctx<'_>) -> Out {
    let o = match getopt::parse(
        "sort",
        args,
        "bcCdfghiMnrRsuVz",
        "kotST",
        &[
            ("numeric-sort", 'n', false),
            ("human-numeric-sort", 'h', false),
            ("general-numeric-sort", 'g', false),
            ("reverse", 'r', false),
            ("unique", 'u', false),
            ("key", 'k', true),
            ("field-separator", 't', true),
            ("ignore-case", 'f', false),
            ("ignore-leading-blanks", 'b', false),
            ("output", 'o', true),
            ("stable", 's', false),
            ("check", 'c', false),
            ("buffer-size", 'S', true),
            ("temporary-directory", 'T', true),
            ("parallel", 'P', true),
            ("version-sort", 'V', false),
            ("random-sort", 'R', false),
            ("zero-terminated", 'z', false),
            ("dictionary-order", 'd', false),
        ],
        2,
    ) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let mut global = Mods::default();
    for (c, _) in &o.opts {
        let _ = parse_mods(&c.to_string(), &mut global);
    }
    let tab = match o.value('t') {
        Some(t) if t.len() > 1 && t != "\\0" => {
            return Out::fail(2, format!("sort: multi-character tab {}\n", q(t)));
        }
        Some(t) => Some(t.bytes().next().unwrap_or(0)),
        None => None,
    };
    let mut keys = Vec::new();
    for (c, v) in &o.opts {
        if *c == 'k' {
            match parse_key(v.as_deref().unwrap_or("")) {
                Ok(mut k) => {
                    if !k.own {
                        k.mods = global;
                    }
                    keys.push(k);
                }
                Err(e) => return usage_error("sort", &e, 2),
            }
        }
    }
    let mut out = Out::default();
    let data = load_all(st, "sort", &o.operands, ctx, &mut out);
    if out.status != 0 {
        out.status = 2;
        out.err = String::from_utf8_lossy(&out.err)
            .replace("sort: ", "sort: cannot read: ")
            .into_bytes();
        // sort reads all its inputs before it writes: a missing one means no output.
        return out;
    }
    let Some(mut lines) = lines_of(st, &data) else {
        return out;
    };
    // n log n comparisons, each charged as one iteration, before the sort runs.
    let n = lines.len() as u64;
    let cost = n.saturating_mul(64 - n.leading_zeros() as u64 + 1);
    if !st.budget.iterations(cost) {
        return out;
    }
    let last_resort = !o.has('s') && !o.has('u');
    let cmp = |a: &&[u8], b: &&[u8]| -> Ordering {
        let by_keys = if keys.is_empty() {
            let mut m = global;
            m.reverse = false;
            compare_with(a, b, &m)
        } else {
            keys.iter()
                .map(|k| {
                    let mut m = k.mods;
                    if !k.own {
                        m.reverse = false;
                    }
                    compare_with(key_slice(a, k, tab), key_slice(b, k, tab), &m)
                })
                .find(|o| *o != Ordering::Equal)
                .unwrap_or(Ordering::Equal)
        };
        let ord = if by_keys == Ordering::Equal && last_resort {
            a.cmp(b)
        } else {
            by_keys
        };
        if global.reverse { ord.reverse() } else { ord }
    };
    let keys_equal = |a: &[u8], b: &[u8]| -> bool {
        if keys.is_empty() {
            let mut m = global;
            m.reverse = false;
            compare_with(a, b, &m) == Ordering::Equal
        } else {
            keys.iter().all(|k| {
                compare_with(key_slice(a, k, tab), key_slice(b, k, tab), &k.mods) == Ordering::Equal
            })
        }
    };
    if o.has('c') || o.has('C') {
        for (i, w) in lines.windows(2).enumerate() {
            let bad = match cmp(&w[0], &w[1]) {
                Ordering::Greater => true,
                Ordering::Equal => o.has('u'),
                Ordering::Less => false,
            };
            if bad {
                if !o.has('C') {
                    let src = o.operands.first().map_or("-", String::as_str);
                    out.eline(&format!(
                        "sort: {src}:{}: disorder: {}",
                        i + 2,
                        String::from_utf8_lossy(w[1])
                    ));
                }
                out.status = 1;
                break;
            }
        }
        return out;
    }
    lines.sort_by(cmp);
    if o.has('u') {
        lines.dedup_by(|b, a| keys_equal(a, b));
    }
    let mut res = Out::default();
    for l in &lines {
        if !res.put(l) || !res.put(b"\n") {
            break;
        }
    }
    if let Some(f) = o.value('o') {
        let path = path_of(st, f);
        let data = std::mem::take(&mut res.out);
        let granted = st.budget.take_data(data.len());
        let w = if !may_write(st, &path) {
            Err(super::super::fs::FsError::Denied)
        } else if granted < data.len() {
            return out;
        } else {
            let (uid, now) = (st.uid, st.now);
            st.fs.write(&path, &data, false, uid, now)
        };
        if let Err(e) = w {
            return Out::fail(2, format!("sort: open failed: {f}: {}\n", e.text()));
        }
    }
    res.err = out.err;
    res
}

// ---- uniq -----------------------------------------------------------------------------

fn uniq(st: &mut State, args: &[String], ctx: &Ctx<'_>) -> Out {
    let o = try_opts!(opts(
        "uniq",
        args,
        "cdDiuz",
        "fsw",
        &[
            ("count", 'c', false),
            ("repeated", 'd', false),
            ("all-repeated", 'D', false),
            ("ignore-case", 'i', false),
            ("unique", 'u', false),
            ("skip-fields", 'f', true),
            ("skip-chars", 's', true),
            ("check-chars", 'w', true),
        ]
    ));
    if o.operands.len() > 2 {
        return usage_error("uniq", &format!("extra operand {}", q(&o.operands[2])), 1);
    }
    let num = |c: char| -> Result<usize, Out> {
        match o.value(c) {
            None => Ok(if c == 'w' { usize::MAX } else { 0 }),
            Some(v) => v.parse().map_err(|_| {
                let what = match c {
                    'f' => "number of fields to skip",
                    's' => "number of bytes to skip",
                    _ => "number of bytes to compare",
                };
                Out::fail(1, format!("uniq: {v}: invalid {what}\n"))
            }),
        }
    };
    let (skip_f, skip_c, check) = match (num('f'), num('s'), num('w')) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
    let mut out = Out::default();
    let input: Vec<String> = o.operands.iter().take(1).cloned().collect();
    let data = load_all(st, "uniq", &input, ctx, &mut out);
    if out.status != 0 {
        return out;
    }
    let Some(lines) = lines_of(st, &data) else {
        return out;
    };
    let key = |l: &[u8]| -> Vec<u8> {
        let mut i = 0;
        for _ in 0..skip_f {
            while i < l.len() && (l[i] == b' ' || l[i] == b'\t') {
                i += 1;
            }
            while i < l.len() && l[i] != b' ' && l[i] != b'\t' {
                i += 1;
            }
        }
        let i = (i + skip_c).min(l.len());
        let end = i.saturating_add(check).min(l.len());
        let k = &l[i..end];
        if o.has('i') {
            k.to_ascii_lowercase()
        } else {
            k.to_vec()
        }
    };
    let mut groups: Vec<(usize, usize)> = Vec::new(); // (first index, count)
    let mut prev: Option<Vec<u8>> = None;
    for (i, l) in lines.iter().enumerate() {
        let k = key(l);
        if prev.as_ref() == Some(&k) {
            if let Some(g) = groups.last_mut() {
                g.1 += 1;
            }
        } else {
            groups.push((i, 1));
            prev = Some(k);
        }
    }
    let mut res = Out::default();
    for (first, count) in groups {
        if res.full() {
            break;
        }
        if (o.has('d') || o.has('D')) && count < 2 || o.has('u') && count > 1 {
            continue;
        }
        let shown: Vec<usize> = if o.has('D') {
            (first..first + count).collect()
        } else {
            vec![first]
        };
        for i in shown {
            let mut line = Vec::new();
            if o.has('c') {
                line.extend_from_slice(format!("{count:>7} ").as_bytes());
            }
            line.extend_from_slice(lines[i]);
            line.push(b'\n');
            res.put(&line);
        }
    }
    if let Some(f) = o.operands.get(1) {
        let path = path_of(st, f);
        let data = std::mem::take(&mut res.out);
        if st.budget.take_data(data.len()) < data.len() {
            return res;
        }
        let (uid, now) = (st.uid, st.now);
        let w = if may_write(st, &path) {
            st.fs.write(&path, &data, false, uid, now)
        } else {
            Err(super::super::fs::FsError::Denied)
        };
        if let Err(e) = w {
            return Out::fail(1, format!("uniq: {f}: {}\n", e.text()));
        }
    }
    res
}

// ---- tr -------------------------------------------------------------------------------

fn class(name: &str) -> Option<Vec<u8>> {
    let f: fn(&u8) -> bool = match name {
        "alpha" => u8::is_ascii_alphabetic,
        "digit" => u8::is_ascii_digit,
        "alnum" => u8::is_ascii_alphanumeric,
        "upper" => u8::is_ascii_uppercase,
        "lower" => u8::is_ascii_lowercase,
        "space" => |b| b" \t\n\r\x0b\x0c".contains(b),
        "blank" => |b| *b == b' ' || *b == b'\t',
        "punct" => u8::is_ascii_punctuation,
        "print" => |b| (0x20..0x7f).contains(b),
        "graph" => u8::is_ascii_graphic,
        "cntrl" => u8::is_ascii_control,
        "xdigit" => u8::is_ascii_hexdigit,
        _ => return None,
    };
    Some((0u8..=255).filter(f).collect())
}

/// One escape at `s[i]` (after the backslash): the byte and how many bytes it used.
fn tr_escape(s: &[u8], i: usize) -> (u8, usize) {
    match s.get(i) {
        None => (b'\\', 0),
        Some(b'n') => (b'\n', 1),
        Some(b't') => (b'\t', 1),
        Some(b'r') => (b'\r', 1),
        Some(b'a') => (7, 1),
        Some(b'b') => (8, 1),
        Some(b'f') => (12, 1),
        Some(b'v') => (11, 1),
        Some(b'0'..=b'7') => {
            let mut v = 0u32;
            let mut n = 0;
            while n < 3 && i + n < s.len() && (b'0'..=b'7').contains(&s[i + n]) {
                v = v * 8 + u32::from(s[i + n] - b'0');
                n += 1;
            }
            ((v & 0xff) as u8, n)
        }
        Some(&c) => (c, 1),
    }
}

/// Expands a tr set: escapes, `a-z` ranges, `[:class:]`, `[c*n]`.
fn tr_set(spec: &str) -> Result<Vec<u8>, String> {
    let s = spec.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'['
            && s.get(i + 1) == Some(&b':')
            && let Some(end) = spec[i + 2..].find(":]")
        {
            {
                let name = &spec[i + 2..i + 2 + end];
                match class(name) {
                    Some(c) => out.extend(c),
                    None => return Err(format!("invalid character class {}", q(name))),
                }
                i += end + 4;
                continue;
            }
        }
        if s[i] == b'['
            && s.get(i + 2) == Some(&b'*')
            && let Some(end) = spec[i + 3..].find(']')
        {
            {
                let c = s[i + 1];
                let n: usize = spec[i + 3..i + 3 + end].parse().unwrap_or(0);
                out.extend(std::iter::repeat_n(c, n.min(256)));
                i += end + 4;
                continue;
            }
        }
        let (c, used) = if s[i] == b'\\' {
            let (c, n) = tr_escape(s, i + 1);
            (c, n + 1)
        } else {
            (s[i], 1)
        };
        i += used;
        if s.get(i) == Some(&b'-') && i + 1 < s.len() {
            let (hi, n) = if s[i + 1] == b'\\' {
                let (c, n) = tr_escape(s, i + 2);
                (c, n + 1)
            } else {
                (s[i + 1], 1)
            };
            if hi < c {
                return Err(format!(
                    "range-endpoints of '{}-{}' are in reverse collating sequence order",
                    c as char, hi as char
                ));
            }
            out.extend(c..=hi);
            i += 1 + n;
            continue;
        }
        out.push(c);
    }
    Ok(out)
}

fn tr(st: &State, args: &[String], ctx: &Ctx<'_>) -> Out {
    let o = try_opts!(opts(
        "tr",
        args,
        "cCdst",
        "",
        &[
            ("complement", 'c', false),
            ("delete", 'd', false),
            ("squeeze-repeats", 's', false),
            ("truncate-set1", 't', false)
        ]
    ));
    let del = o.has('d');
    let squeeze = o.has('s');
    let comp = o.has('c') || o.has('C');
    let ops = &o.operands;
    let need = if del && squeeze {
        2
    } else if del || squeeze {
        1
    } else {
        2
    };
    if ops.is_empty() {
        return usage_error("tr", "missing operand", 1);
    }
    if ops.len() < need {
        let msg = if del && squeeze {
            format!(
                "missing operand after {}\nTwo strings must be given when both deleting and squeezing repeats.",
                q(&ops[0])
            )
        } else {
            format!(
                "missing operand after {}\nTwo strings must be given when translating.",
                q(&ops[0])
            )
        };
        return usage_error("tr", &msg, 1);
    }
    let max = if del && !squeeze { 1 } else { 2 };
    if ops.len() > max {
        let mut msg = format!("extra operand {}", q(&ops[max]));
        if del && !squeeze {
            msg.push_str("\nOnly one string may be given when deleting without squeezing repeats.");
        }
        return usage_error("tr", &msg, 1);
    }
    let set1 = match tr_set(&ops[0]) {
        Ok(s) => s,
        Err(e) => return Out::fail(1, format!("tr: {e}\n")),
    };
    let set2 = match ops.get(1).map(|s| tr_set(s)) {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => return Out::fail(1, format!("tr: {e}\n")),
        None => None,
    };
    let mut in1 = [false; 256];
    for &b in &set1 {
        in1[b as usize] = true;
    }
    if comp {
        for x in &mut in1 {
            *x = !*x;
        }
    }
    let data = take(st, ctx.stdin, MAX_BUFFER);
    if !st.budget.iterations(data.len() as u64 / 64) {
        return Out::default();
    }
    let mut map: [u8; 256] = std::array::from_fn(|i| i as u8);
    let mut squeeze_set = [false; 256];
    let translating = !del && set2.is_some();
    if translating {
        let s2 = set2.clone().unwrap_or_default();
        if s2.is_empty() {
            return Out::fail(
                1,
                "tr: when not truncating set1, string2 must be non-empty\n",
            );
        }
        if comp {
            // Every byte not in set1 maps to set2's last byte (as coreutils does for a
            // complemented set with one target).
            let last = *s2.last().unwrap_or(&0);
            let mut k = 0;
            for b in 0..256usize {
                if in1[b] {
                    map[b] = *s2.get(k).unwrap_or(&last);
                    k += 1;
                }
            }
        } else {
            let last = *s2.last().unwrap_or(&0);
            for (i, &b) in set1.iter().enumerate() {
                if o.has('t') && i >= s2.len() {
                    break;
                }
                map[b as usize] = *s2.get(i).unwrap_or(&last);
            }
        }
        for &b in &s2 {
            squeeze_set[b as usize] = true;
        }
    } else if squeeze {
        match (&set2, del) {
            (Some(s2), true) => {
                for &b in s2 {
                    squeeze_set[b as usize] = true;
                }
            }
            _ => squeeze_set = in1,
        }
    }
    let mut res = Vec::with_capacity(data.len());
    let mut last: Option<u8> = None;
    for &b in data {
        if del && in1[b as usize] {
            continue;
        }
        let c = map[b as usize];
        if squeeze && squeeze_set[c as usize] && last == Some(c) {
            continue;
        }
        last = Some(c);
        res.push(c);
    }
    Out::ok(res)
}

// ---- tee ------------------------------------------------------------------------------

fn tee(st: &mut State, args: &[String], ctx: &Ctx<'_>) -> Out {
    let o = try_opts!(opts(
        "tee",
        args,
        "aip",
        "",
        &[
            ("append", 'a', false),
            ("ignore-interrupts", 'i', false),
            ("output-error", 'p', false)
        ]
    ));
    let data = take(st, ctx.stdin, MAX_BUFFER).to_vec();
    let mut out = Out::default();
    for f in &o.operands {
        if !st.budget.iterations(1) {
            break;
        }
        let path = path_of(st, f);
        if st.budget.take_data(data.len()) < data.len() {
            break;
        }
        let (uid, now) = (st.uid, st.now);
        let r = if may_write(st, &path) {
            st.fs.write(&path, &data, o.has('a'), uid, now)
        } else {
            Err(super::super::fs::FsError::Denied)
        };
        if let Err(e) = r {
            out.eline(&format!("tee: {f}: {}", e.text()));
            out.status = 1;
        }
    }
    out.put(&data);
    out
}

// ---- base64 ---------------------------------------------------------------------------

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_value(c: u8) -> Option<u32> {
    B64.iter().position(|&x| x == c).map(|p| p as u32)
}

/// Decodes as coreutils does: newlines skipped, `=` only at the end of a quantum; on
/// bad input the bytes decoded so far and `false`.
fn b64_decode(data: &[u8], ignore_garbage: bool) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(data.len() / 4 * 3);
    let mut quad: Vec<u8> = Vec::with_capacity(4);
    let mut ended = false;
    for &c in data {
        if c == b'\n' {
            continue;
        }
        if ended {
            return (out, false);
        }
        if c != b'=' && b64_value(c).is_none() {
            if ignore_garbage {
                continue;
            }
            return (out, false);
        }
        quad.push(c);
        if quad.len() == 4 {
            let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
            if pad > 2 || quad[..4 - pad].contains(&b'=') {
                return (out, false);
            }
            let mut v = 0u32;
            for &c in &quad[..4 - pad] {
                v = (v << 6) | b64_value(c).unwrap_or(0);
            }
            v <<= 6 * pad as u32;
            let bytes = [(v >> 16) as u8, (v >> 8) as u8, v as u8];
            out.extend_from_slice(&bytes[..3 - pad]);
            quad.clear();
            if pad > 0 {
                ended = true;
            }
        }
    }
    if !quad.is_empty() {
        // An incomplete quantum: what it holds is decoded, then the input is invalid.
        if quad.len() >= 2 && !quad.contains(&b'=') {
            let mut v = 0u32;
            for &c in &quad {
                v = (v << 6) | b64_value(c).unwrap_or(0);
            }
            v <<= 6 * (4 - quad.len()) as u32;
            let bytes = [(v >> 16) as u8, (v >> 8) as u8, v as u8];
            out.extend_from_slice(&bytes[..quad.len() - 1]);
        }
        return (out, false);
    }
    (out, true)
}

fn base64(st: &State, args: &[String], ctx: &Ctx<'_>) -> Out {
    let o = try_opts!(opts(
        "base64",
        args,
        "di",
        "w",
        &[
            ("decode", 'd', false),
            ("ignore-garbage", 'i', false),
            ("wrap", 'w', true)
        ]
    ));
    if o.operands.len() > 1 {
        return usage_error("base64", &format!("extra operand {}", q(&o.operands[1])), 1);
    }
    let wrap = match o.value('w') {
        None => 76,
        Some(w) => match w.parse::<usize>() {
            Ok(n) => n,
            Err(_) => return Out::fail(1, format!("base64: invalid wrap size: {}\n", q(w))),
        },
    };
    let data = match o.operands.first() {
        None => take(st, ctx.stdin, MAX_BUFFER).to_vec(),
        Some(f) => match load(st, f, ctx) {
            Ok(d) => d,
            Err(e) => return Out::fail(1, format!("base64: {f}: {}\n", e.text())),
        },
    };
    if !st.budget.iterations(data.len() as u64 / 64) {
        return Out::default();
    }
    if o.has('d') {
        let (dec, ok) = b64_decode(&data, o.has('i'));
        let mut out = Out::default();
        out.put(&dec);
        if !ok {
            out.eline("base64: invalid input");
            out.status = 1;
        }
        return out;
    }
    let mut enc = Vec::with_capacity(data.len() / 3 * 4 + 4);
    for chunk in data.chunks(3) {
        let v = chunk
            .iter()
            .enumerate()
            .fold(0u32, |v, (i, &b)| v | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                enc.push(B64[((v >> (18 - 6 * i)) & 63) as usize]);
            } else {
                enc.push(b'=');
            }
        }
    }
    let mut out = Out::default();
    if wrap == 0 {
        out.put(&enc);
    } else {
        for line in enc.chunks(wrap) {
            if !out.put(line) || !out.put(b"\n") {
                break;
            }
        }
        return out;
    }
    out
}

// ---- md5sum sha1sum sha256sum ---------------------------------------------------------

fn hash_hex(name: &str, data: &[u8]) -> String {
    let bytes: Vec<u8> = match name {
        "md5sum" => md5::compute(data).0.to_vec(),
        "sha1sum" => ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data)
            .as_ref()
            .to_vec(),
        _ => ring::digest::digest(&ring::digest::SHA256, data)
            .as_ref()
            .to_vec(),
    };
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn digest(st: &State, name: &str, args: &[String], ctx: &Ctx<'_>) -> Out {
    let o = try_opts!(opts(
        name,
        args,
        "bctwz",
        "",
        &[
            ("binary", 'b', false),
            ("check", 'c', false),
            ("text", 't', false),
            ("warn", 'w', false),
            ("quiet", 'Q', false),
            ("status", 'S', false),
            ("strict", 'T', false),
            ("tag", 'G', false),
            ("zero", 'z', false),
        ]
    ));
    let ops: Vec<String> = if o.operands.is_empty() {
        vec!["-".into()]
    } else {
        o.operands.clone()
    };
    let mut out = Out::default();
    if o.has('c') {
        return digest_check(st, name, &o, &ops, ctx);
    }
    for f in &ops {
        if out.full() || !st.budget.iterations(1) {
            break;
        }
        match load(st, f, ctx) {
            Ok(d) => {
                if !st.budget.iterations(d.len() as u64 / 64) {
                    break;
                }
                let h = hash_hex(name, &d);
                if o.has('G') {
                    let algo = match name {
                        "md5sum" => "MD5",
                        "sha1sum" => "SHA1",
                        _ => "SHA256",
                    };
                    out.line(&format!("{algo} ({f}) = {h}"));
                } else {
                    let mark = if o.has('b') { '*' } else { ' ' };
                    out.line(&format!("{h} {mark}{f}"));
                }
            }
            Err(e) => {
                out.eline(&format!("{name}: {f}: {}", e.text()));
                out.status = 1;
            }
        }
    }
    out
}

fn digest_check(st: &State, name: &str, o: &Opts, ops: &[String], ctx: &Ctx<'_>) -> Out {
    let mut out = Out::default();
    let hex_len = match name {
        "md5sum" => 32,
        "sha1sum" => 40,
        _ => 64,
    };
    let (mut failed, mut unreadable, mut proper) = (0, 0, 0);
    for f in ops {
        let list = match load(st, f, ctx) {
            Ok(d) => d,
            Err(e) => {
                out.eline(&format!("{name}: {f}: {}", e.text()));
                out.status = 1;
                continue;
            }
        };
        let Some(lines) = lines_of(st, &list) else {
            return out;
        };
        let mut f_proper = 0;
        for l in lines {
            let l = String::from_utf8_lossy(l);
            let Some((h, file)) = l.split_at_checked(hex_len) else {
                continue;
            };
            let Some(file) = file
                .strip_prefix(" ")
                .map(|f| f.trim_start_matches([' ', '*']))
            else {
                continue;
            };
            if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            f_proper += 1;
            match load(st, file, ctx) {
                Ok(d) => {
                    if hash_hex(name, &d) == h.to_ascii_lowercase() {
                        if !o.has('Q') && !o.has('S') {
                            out.line(&format!("{file}: OK"));
                        }
                    } else {
                        failed += 1;
                        if !o.has('S') {
                            out.line(&format!("{file}: FAILED"));
                        }
                    }
                }
                Err(e) => {
                    unreadable += 1;
                    if !o.has('S') {
                        out.eline(&format!("{name}: {file}: {}", e.text()));
                        out.line(&format!("{file}: FAILED open or read"));
                    }
                }
            }
        }
        if f_proper == 0 {
            let algo = match name {
                "md5sum" => "MD5",
                "sha1sum" => "SHA1",
                _ => "SHA256",
            };
            out.eline(&format!(
                "{name}: {f}: no properly formatted {algo} checksum lines found"
            ));
            out.status = 1;
        }
        proper += f_proper;
    }
    if !o.has('S') {
        if unreadable > 0 {
            let s = if unreadable == 1 { "" } else { "s" };
            out.eline(&format!(
                "{name}: WARNING: {unreadable} listed file{s} could not be read"
            ));
        }
        if failed > 0 {
            let s = if failed == 1 { " did" } else { "s did" };
            out.eline(&format!(
                "{name}: WARNING: {failed} computed checksum{s} NOT match"
            ));
        }
    }
    if failed > 0 || unreadable > 0 || proper == 0 {
        out.status = 1;
    }
    out
}

// ---- od -------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OdFmt {
    Char,
    Named,
    /// radix letter ('o', 'x', 'u', 'd'), size in bytes
    Int(char, usize),
}

impl OdFmt {
    fn size(self) -> usize {
        match self {
            OdFmt::Char | OdFmt::Named => 1,
            OdFmt::Int(_, n) => n,
        }
    }

    /// Printed width of one value, its leading space included.
    fn width(self) -> usize {
        match self {
            OdFmt::Char | OdFmt::Named => 4,
            OdFmt::Int(r, n) => {
                let bits = 8 * n as u32;
                let digits = match r {
                    'o' => bits.div_ceil(3) as usize,
                    'x' => 2 * n,
                    'u' => (u64::MAX >> (64 - bits)).to_string().len(),
                    _ => (i64::MIN >> (64 - bits)).to_string().len(),
                };
                digits + 1
            }
        }
    }

    fn render(self, bytes: &[u8]) -> String {
        match self {
            OdFmt::Char => {
                let b = bytes[0];
                let s = match b {
                    0 => "\\0".to_owned(),
                    7 => "\\a".to_owned(),
                    8 => "\\b".to_owned(),
                    12 => "\\f".to_owned(),
                    b'\n' => "\\n".to_owned(),
                    b'\r' => "\\r".to_owned(),
                    b'\t' => "\\t".to_owned(),
                    11 => "\\v".to_owned(),
                    0x20..=0x7e => (b as char).to_string(),
                    _ => format!("{b:03o}"),
                };
                format!("{s:>4}")
            }
            OdFmt::Named => {
                const NAMES: [&str; 33] = [
                    "nul", "soh", "stx", "etx", "eot", "enq", "ack", "bel", "bs", "ht", "nl", "vt",
                    "ff", "cr", "so", "si", "dle", "dc1", "dc2", "dc3", "dc4", "nak", "syn", "etb",
                    "can", "em", "sub", "esc", "fs", "gs", "rs", "us", "sp",
                ];
                let b = bytes[0] & 0x7f;
                let s = match b {
                    0..=32 => NAMES[b as usize].to_owned(),
                    127 => "del".to_owned(),
                    _ => (b as char).to_string(),
                };
                format!("{s:>4}")
            }
            OdFmt::Int(r, n) => {
                let mut v = 0u64;
                for (i, &b) in bytes.iter().enumerate().take(n) {
                    v |= u64::from(b) << (8 * i);
                }
                let w = self.width();
                match r {
                    'o' => format!("{:>w$}", format!("{v:0d$o}", d = w - 1)),
                    'x' => format!("{:>w$}", format!("{v:0d$x}", d = w - 1)),
                    'u' => format!("{v:>w$}"),
                    _ => {
                        let bits = 8 * n as u32;
                        let sv = ((v << (64 - bits)) as i64) >> (64 - bits);
                        format!("{sv:>w$}")
                    }
                }
            }
        }
    }
}

fn od_type(spec: &str) -> Result<Vec<(OdFmt, bool)>, String> {
    let mut v = Vec::new();
    let b = spec.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        i += 1;
        let f = match c {
            'c' => OdFmt::Char,
            'a' => OdFmt::Named,
            'o' | 'x' | 'u' | 'd' => {
                let digits: String = spec[i..].chars().take_while(char::is_ascii_digit).collect();
                i += digits.len();
                let n = match digits.as_str() {
                    "" => 4,
                    d => d.parse().unwrap_or(0),
                };
                let n = if digits.is_empty() {
                    match spec[i..].chars().next() {
                        Some('C') => {
                            i += 1;
                            1
                        }
                        Some('S') => {
                            i += 1;
                            2
                        }
                        Some('I') => {
                            i += 1;
                            4
                        }
                        Some('L') => {
                            i += 1;
                            8
                        }
                        _ => n,
                    }
                } else {
                    n
                };
                if ![1, 2, 4, 8].contains(&n) {
                    return Err(format!("invalid type string {}", q(spec)));
                }
                OdFmt::Int(c, n)
            }
            _ => {
                return Err(format!(
                    "invalid character '{c}' in type string {}",
                    q(spec)
                ));
            }
        };
        let z = b.get(i) == Some(&b'z');
        if z {
            i += 1;
        }
        v.push((f, z));
    }
    Ok(v)
}

fn od(st: &State, args: &[String], ctx: &Ctx<'_>) -> Out {
    let o = try_opts!(opts(
        "od",
        args,
        "abcdfhilosvxBDHOX",
        "AjNtwS",
        &[
            ("address-radix", 'A', true),
            ("skip-bytes", 'j', true),
            ("read-bytes", 'N', true),
            ("format", 't', true),
            ("output-duplicates", 'v', false),
            ("width", 'w', true),
            ("endian", 'E', true),
        ]
    ));
    let radix = match o.value('A') {
        None => 'o',
        Some(r @ ("o" | "d" | "x" | "n")) => r.chars().next().unwrap_or('o'),
        Some(r) => {
            return usage_error(
                "od",
                &format!(
                    "invalid output address radix '{r}'; it must be one character from [doxn]"
                ),
                1,
            );
        }
    };
    let mut fmts: Vec<(OdFmt, bool)> = Vec::new();
    for (c, v) in &o.opts {
        let f = match c {
            'a' => OdFmt::Named,
            'b' => OdFmt::Int('o', 1),
            'c' => OdFmt::Char,
            'd' => OdFmt::Int('u', 2),
            'o' => OdFmt::Int('o', 2),
            's' => OdFmt::Int('d', 2),
            'x' | 'h' => OdFmt::Int('x', 2),
            'i' => OdFmt::Int('d', 4),
            'l' => OdFmt::Int('d', 8),
            'D' => OdFmt::Int('u', 4),
            'O' => OdFmt::Int('o', 4),
            'X' | 'H' => OdFmt::Int('x', 4),
            't' => match od_type(v.as_deref().unwrap_or("")) {
                Ok(t) => {
                    fmts.extend(t);
                    continue;
                }
                Err(e) => return Out::fail(1, format!("od: {e}\n")),
            },
            _ => continue,
        };
        fmts.push((f, false));
    }
    if fmts.is_empty() {
        fmts.push((OdFmt::Int('o', 2), false));
    }
    let num = |c: char| -> Option<usize> {
        o.value(c).and_then(|v| {
            if let Some(h) = v.strip_prefix("0x") {
                usize::from_str_radix(h, 16).ok()
            } else {
                v.parse().ok()
            }
        })
    };
    let skip = num('j').unwrap_or(0);
    let width = num('w').unwrap_or(16).clamp(1, 256);
    let mut out = Out::default();
    let data = load_all(st, "od", &o.operands, ctx, &mut out);
    if out.status != 0 && data.is_empty() {
        return out;
    }
    let mut data = &data[skip.min(data.len())..];
    if let Some(n) = num('N') {
        data = &data[..n.min(data.len())];
    }
    let lines = data.len().div_ceil(width);
    if !st.budget.iterations(lines as u64) {
        return out;
    }
    let addr = |a: usize| -> String {
        match radix {
            'o' => format!("{a:07o}"),
            'd' => format!("{a:07}"),
            'x' => format!("{a:06x}"),
            _ => String::new(),
        }
    };
    // With several formats every column is as wide as the widest per byte needs.
    let per_byte = fmts
        .iter()
        .map(|(f, _)| f.width().div_ceil(f.size()))
        .max()
        .unwrap_or(4);
    let multi = fmts.len() > 1;
    let mut prev: Option<&[u8]> = None;
    let mut starred = false;
    for (k, chunk) in data.chunks(width).enumerate() {
        if out.full() {
            break;
        }
        let offset = skip + k * width;
        if !o.has('v') && prev == Some(chunk) && chunk.len() == width {
            if !starred {
                out.line("*");
                starred = true;
            }
            continue;
        }
        starred = false;
        prev = Some(chunk);
        for (n, (f, z)) in fmts.iter().enumerate() {
            let mut line = if n == 0 {
                addr(offset)
            } else if radix == 'n' {
                String::new()
            } else {
                " ".repeat(addr(0).len())
            };
            let size = f.size();
            for word in chunk.chunks(size) {
                let mut buf = [0u8; 8];
                buf[..word.len()].copy_from_slice(word);
                let s = f.render(&buf[..size]);
                if multi {
                    let w = per_byte * size;
                    let _ = write!(line, "{s:>w$}");
                } else {
                    line.push_str(&s);
                }
            }
            if *z {
                let full = if multi {
                    per_byte * width
                } else {
                    width / size * f.width()
                };
                let used = if multi {
                    per_byte * chunk.len().div_ceil(size) * size
                } else {
                    chunk.len().div_ceil(size) * f.width()
                };
                line.push_str(&" ".repeat(full.saturating_sub(used)));
                line.push_str("  >");
                for &b in chunk {
                    line.push(if (0x20..0x7f).contains(&b) {
                        b as char
                    } else {
                        '.'
                    });
                }
                line.push('<');
            }
            out.line(&line);
        }
    }
    if radix != 'n' {
        out.line(&addr(skip + data.len()));
    }
    out
}

// ---- nl -------------------------------------------------------------------------------

fn nl(st: &State, args: &[String], ctx: &Ctx<'_>) -> Out {
    let o = try_opts!(opts(
        "nl",
        args,
        "p",
        "bdfhilnsvw",
        &[
            ("body-numbering", 'b', true),
            ("number-width", 'w', true),
            ("number-separator", 's', true),
            ("starting-line-number", 'v', true),
            ("line-increment", 'i', true),
            ("number-format", 'n', true),
        ]
    ));
    let style = o.value('b').unwrap_or("t");
    let width: usize = o
        .value('w')
        .and_then(|w| w.parse().ok())
        .unwrap_or(6)
        .min(64);
    let sep = o.value('s').unwrap_or("\t");
    let mut n: i64 = o.value('v').and_then(|w| w.parse().ok()).unwrap_or(1);
    let incr: i64 = o.value('i').and_then(|w| w.parse().ok()).unwrap_or(1);
    let fmt = o.value('n').unwrap_or("rn");
    let mut out = Out::default();
    let data = load_all(st, "nl", &o.operands, ctx, &mut out);
    let Some(lines) = lines_of(st, &data) else {
        return out;
    };
    for l in lines {
        if out.full() {
            break;
        }
        let number = match style {
            "a" => true,
            "n" => false,
            _ => !l.is_empty(),
        };
        let mut line = Vec::new();
        if number {
            let s = match fmt {
                "ln" => format!("{n:<width$}"),
                "rz" => format!("{n:0width$}"),
                _ => format!("{n:>width$}"),
            };
            line.extend_from_slice(s.as_bytes());
            line.extend_from_slice(sep.as_bytes());
            n += incr;
        } else {
            line.extend_from_slice(" ".repeat(width + sep.len()).as_bytes());
        }
        line.extend_from_slice(l);
        line.push(b'\n');
        out.put(&line);
    }
    out
}

// ---- rev ------------------------------------------------------------------------------

fn rev(st: &State, args: &[String], ctx: &Ctx<'_>) -> Out {
    let ops: Vec<String> = args
        .iter()
        .filter(|a| !a.starts_with('-') || *a == "-")
        .cloned()
        .collect();
    let mut out = Out::default();
    let mut err = Out::default();
    let data = if ops.is_empty() {
        take(st, ctx.stdin, MAX_BUFFER).to_vec()
    } else {
        let mut d = Vec::new();
        for f in &ops {
            match load(st, f, ctx) {
                Ok(x) => {
                    d.extend_from_slice(&x[..x.len().min(MAX_BUFFER - d.len().min(MAX_BUFFER))])
                }
                Err(e) => {
                    err.eline(&format!("rev: cannot open {f}: {}", e.text()));
                    err.status = 1;
                }
            }
        }
        d
    };
    let Some(lines) = lines_of(st, &data) else {
        return out;
    };
    let n = lines.len();
    for (i, l) in lines.into_iter().enumerate() {
        let s = String::from_utf8_lossy(l);
        let r: String = s.chars().rev().collect();
        out.put(r.as_bytes());
        if i + 1 < n || data.ends_with(b"\n") {
            out.put(b"\n");
        }
    }
    out.err = err.err;
    out.status = err.status;
    out
}

// ---- seq ------------------------------------------------------------------------------

fn seq(st: &State, args: &[String]) -> Out {
    // Negative numbers are operands, not options.
    let mut sep = "\n".to_owned();
    let mut equal = false;
    let mut format: Option<String> = None;
    let mut nums: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let is_num =
            a.starts_with('-') && a[1..].starts_with(|c: char| c.is_ascii_digit() || c == '.');
        if is_num || !a.starts_with('-') || a == "-" {
            nums.push(a.clone());
            continue;
        }
        match a.as_str() {
            "-w" | "--equal-width" => equal = true,
            "-s" | "--separator" => sep = it.next().cloned().unwrap_or_default(),
            "-f" | "--format" => format = it.next().cloned(),
            s if s.starts_with("-s") => sep = s[2..].to_owned(),
            s if s.starts_with("--separator=") => sep = s[12..].to_owned(),
            s if s.starts_with("-f") => format = Some(s[2..].to_owned()),
            s => {
                return usage_error("seq", &format!("invalid option -- '{}'", &s[1..2]), 1);
            }
        }
    }
    if nums.is_empty() {
        return usage_error("seq", "missing operand", 1);
    }
    if nums.len() > 3 {
        return usage_error("seq", &format!("extra operand {}", q(&nums[3])), 1);
    }
    let mut vals = Vec::new();
    for n in &nums {
        match n.parse::<f64>() {
            Ok(v) if v.is_finite() => vals.push(v),
            _ => {
                return usage_error(
                    "seq",
                    &format!("invalid floating point argument: {}", q(n)),
                    1,
                );
            }
        }
    }
    let decimals = |s: &str| s.split_once('.').map_or(0, |(_, d)| d.len());
    let (first, step, last) = match vals[..] {
        [l] => (1.0, 1.0, l),
        [f, l] => (f, 1.0, l),
        [f, s, l] => (f, s, l),
        _ => (1.0, 1.0, 0.0),
    };
    if step == 0.0 {
        return usage_error(
            "seq",
            &format!("invalid Zero increment value: {}", q(&nums[1])),
            1,
        );
    }
    let prec = match nums.len() {
        1 => 0,
        2 => decimals(&nums[0]),
        _ => decimals(&nums[0]).max(decimals(&nums[1])),
    };
    let render = |v: f64| -> String {
        match &format {
            Some(f) => super::awk::c_format_one(f, v),
            None => format!("{v:.prec$}"),
        }
    };
    let width = if equal {
        render(first).len().max(render(last).len())
    } else {
        0
    };
    let mut out = Out::default();
    let mut i: u64 = 0;
    let mut first_item = true;
    loop {
        let v = first + step * i as f64;
        if (step > 0.0 && v > last) || (step < 0.0 && v < last) {
            break;
        }
        if out.full() || !st.budget.iterations(1) {
            break;
        }
        let mut s = render(v);
        if equal && s.len() < width {
            let neg = s.starts_with('-');
            let digits = s.trim_start_matches('-');
            s = format!(
                "{}{}{digits}",
                if neg { "-" } else { "" },
                "0".repeat(width - s.len())
            );
        }
        if !first_item {
            out.put(sep.as_bytes());
        }
        first_item = false;
        out.put(s.as_bytes());
        i += 1;
    }
    if !first_item {
        out.put(b"\n");
    }
    out
}

// ---- yes ------------------------------------------------------------------------------

/// Prints its line until the output buffer is full: a real `yes` runs until the reader
/// goes away, and every reader here stops within MAX_BUFFER.
fn yes(st: &State, args: &[String]) -> Out {
    let mut line = if args.is_empty() {
        "y".to_owned()
    } else {
        args.join(" ")
    };
    line.push('\n');
    let want = MAX_BUFFER - MAX_BUFFER % line.len().max(1);
    let granted = st.budget.take_data(want);
    let mut out = Vec::with_capacity(granted);
    while out.len() + line.len() <= granted {
        out.extend_from_slice(line.as_bytes());
    }
    Out::ok(out)
}

// ---- basename dirname -----------------------------------------------------------------

fn base_of(p: &str, suffix: Option<&str>) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return if p.is_empty() {
            String::new()
        } else {
            "/".into()
        };
    }
    let b = t.rsplit('/').next().unwrap_or(t);
    match suffix {
        Some(s) if !s.is_empty() && b.len() > s.len() && b.ends_with(s) => {
            b[..b.len() - s.len()].to_owned()
        }
        _ => b.to_owned(),
    }
}

fn basename(args: &[String]) -> Out {
    let o = try_opts!(opts(
        "basename",
        args,
        "az",
        "s",
        &[
            ("multiple", 'a', false),
            ("suffix", 's', true),
            ("zero", 'z', false)
        ]
    ));
    let end = if o.has('z') { "\0" } else { "\n" };
    if o.operands.is_empty() {
        return usage_error("basename", "missing operand", 1);
    }
    let mut out = Out::default();
    if o.has('a') || o.has('s') {
        for p in &o.operands {
            out.put(format!("{}{end}", base_of(p, o.value('s'))).as_bytes());
        }
        return out;
    }
    if o.operands.len() > 2 {
        return usage_error(
            "basename",
            &format!("extra operand {}", q(&o.operands[2])),
            1,
        );
    }
    let s = base_of(&o.operands[0], o.operands.get(1).map(String::as_str));
    Out::ok(format!("{s}{end}"))
}

fn dir_of(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return if p.starts_with('/') {
            "/".into()
        } else {
            ".".into()
        };
    }
    match t.rfind('/') {
        None => ".".into(),
        Some(i) => {
            let d = t[..i].trim_end_matches('/');
            if d.is_empty() {
                "/".into()
            } else {
                d.to_owned()
            }
        }
    }
}

fn dirname(args: &[String]) -> Out {
    let o = try_opts!(opts("dirname", args, "z", "", &[("zero", 'z', false)]));
    if o.operands.is_empty() {
        return usage_error("dirname", "missing operand", 1);
    }
    let end = if o.has('z') { "\0" } else { "\n" };
    let mut out = Out::default();
    for p in &o.operands {
        out.put(format!("{}{end}", dir_of(p)).as_bytes());
    }
    out
}

// ---- xargs ----------------------------------------------------------------------------

/// Words of xargs' input: blanks separate, quotes and backslashes group.
fn xargs_words(data: &[u8]) -> Vec<String> {
    let mut v = Vec::new();
    let mut w = Vec::new();
    let mut in_word = false;
    let mut i = 0;
    while i < data.len() {
        let c = data[i];
        i += 1;
        match c {
            b' ' | b'\t' | b'\n' => {
                if in_word {
                    v.push(String::from_utf8_lossy(&std::mem::take(&mut w)).into_owned());
                    in_word = false;
                }
            }
            b'\'' | b'"' => {
                in_word = true;
                while i < data.len() && data[i] != c {
                    w.push(data[i]);
                    i += 1;
                }
                i += 1;
            }
            b'\\' if i < data.len() => {
                in_word = true;
                w.push(data[i]);
                i += 1;
            }
            c => {
                in_word = true;
                w.push(c);
            }
        }
    }
    if in_word {
        v.push(String::from_utf8_lossy(&w).into_owned());
    }
    v
}

/// Runs its command (default `echo`) over words of stdin, through the emulated shell's
/// own commands; every run is one more command of the line's budget.
fn xargs(st: &mut State, args: &[String], ctx: &Ctx<'_>) -> Out {
    let mut i = 0;
    let (mut per, mut repl, mut nul, mut no_empty, mut trace, mut lines) =
        (None::<usize>, None::<String>, false, false, false, false);
    let mut delim: Option<u8> = None;
    while i < args.len() && args[i].starts_with('-') && args[i] != "-" {
        let a = args[i].clone();
        i += 1;
        let mut val = |rest: &str| -> Option<String> {
            if !rest.is_empty() {
                Some(rest.to_owned())
            } else if i < args.len() {
                i += 1;
                Some(args[i - 1].clone())
            } else {
                None
            }
        };
        match a.as_str() {
            "--" => break,
            "-0" | "--null" => nul = true,
            "-r" | "--no-run-if-empty" => no_empty = true,
            "-t" | "--verbose" => trace = true,
            "-x" | "-p" => {}
            s if s.starts_with("-n") => match val(&s[2..]).and_then(|v| v.parse().ok()) {
                Some(n) if n > 0 => per = Some(n),
                _ => return Out::fail(1, "xargs: value for -n option should be >= 1\n"),
            },
            s if s.starts_with("-L") => {
                lines = true;
                per = val(&s[2..]).and_then(|v| v.parse().ok()).or(Some(1));
            }
            s if s.starts_with("-I") => {
                repl = val(&s[2..]);
                lines = true;
            }
            s if s.starts_with("-P") || s.starts_with("-s") => {
                let _ = val(&s[2..]);
            }
            s if s.starts_with("-d") => {
                let d = val(&s[2..]).unwrap_or_default();
                delim = Some(match d.as_str() {
                    "\\n" => b'\n',
                    "\\t" => b'\t',
                    _ => d.bytes().next().unwrap_or(b'\n'),
                });
            }
            s => {
                return usage_error(
                    "xargs",
                    &format!("invalid option -- '{}'", &s[1..2.min(s.len())]),
                    1,
                );
            }
        }
    }
    let cmd: Vec<String> = if i < args.len() {
        args[i..].to_vec()
    } else {
        vec!["echo".into()]
    };
    let data = take(st, ctx.stdin, MAX_BUFFER).to_vec();
    let items: Vec<String> = if nul || delim.is_some() {
        let d = if nul { 0 } else { delim.unwrap_or(b'\n') };
        let mut v: Vec<String> = data
            .split(|&b| b == d)
            .map(|x| String::from_utf8_lossy(x).into_owned())
            .collect();
        if data.ends_with(&[d]) || data.is_empty() {
            v.pop();
        }
        v
    } else if lines && repl.is_some() {
        data.split(|&b| b == b'\n')
            .map(|l| String::from_utf8_lossy(l).trim_start().to_owned())
            .filter(|l| !l.is_empty())
            .collect()
    } else {
        xargs_words(&data)
    };
    if !st.budget.iterations(items.len() as u64) {
        return Out::default();
    }
    let batches: Vec<Vec<String>> = if items.is_empty() {
        if no_empty || repl.is_some() {
            Vec::new()
        } else {
            vec![Vec::new()]
        }
    } else if repl.is_some() {
        items.into_iter().map(|x| vec![x]).collect()
    } else {
        match per {
            Some(n) => items.chunks(n).map(<[String]>::to_vec).collect(),
            None => vec![items],
        }
    };
    let mut out = Out::default();
    for batch in batches {
        if out.full() || st.budget.is_exhausted() {
            break;
        }
        let argv: Vec<String> = match &repl {
            Some(r) => cmd
                .iter()
                .map(|w| w.replace(r.as_str(), &batch[0]))
                .collect(),
            None => cmd.iter().cloned().chain(batch).collect(),
        };
        let bytes: usize = argv.iter().map(|a| a.len() + 1).sum();
        if !st.budget.arg_bytes(bytes) {
            break;
        }
        if trace {
            out.eline(&argv.join(" "));
        }
        let sub = Ctx {
            stdin: b"",
            out_tty: false,
        };
        let r = commands::command(st, &argv, &sub);
        out.put(&r.out);
        if r.status == 127 && r.err.ends_with(b"command not found\n") {
            out.eline(&format!("xargs: {}: No such file or directory", argv[0]));
            out.status = 127;
            break;
        }
        out.err.extend_from_slice(&r.err);
        if r.status == 255 {
            out.eline(&format!(
                "xargs: {}: exited with status 255; aborting",
                argv[0]
            ));
            out.status = 124;
            break;
        }
        if r.status != 0 {
            out.status = 123;
        }
    }
    out
}

// ---- head tail ------------------------------------------------------------------------

/// `5`, `-5`, `+5`, `5k`, `2M`: (sign, value); `None` when invalid.
fn count_arg(s: &str) -> Option<(char, u64)> {
    let (sign, rest) = match s.chars().next() {
        Some(c @ ('+' | '-')) => (c, &s[1..]),
        _ => (' ', s),
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match &rest[digits.len()..] {
        "" => 1,
        "b" => 512,
        "k" | "K" | "KiB" => 1024,
        "kB" | "KB" => 1000,
        "M" | "MiB" => 1 << 20,
        "MB" => 1_000_000,
        "G" | "GiB" => 1 << 30,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    Some((sign, n.saturating_mul(mult)))
}

fn head_tail(st: &State, name: &str, args: &[String], ctx: &Ctx<'_>) -> Out {
    let head = name == "head";
    // `-5` is `-n 5`; `+5` (tail) is `-n +5`.
    let mut args: Vec<String> = args.to_vec();
    if let Some(a) = args.first()
        && a.len() > 1
        && (a.starts_with('-') || (!head && a.starts_with('+')))
        && a[1..].chars().next().is_some_and(|c| c.is_ascii_digit())
    {
        let v = if a.starts_with('+') {
            a.clone()
        } else {
            a[1..].to_owned()
        };
        let v = v.trim_end_matches(['c', 'l', 'f']).to_owned();
        args[0] = if a.ends_with('c') {
            "-c".into()
        } else {
            "-n".into()
        };
        args.insert(1, v);
    }
    let o = try_opts!(opts(
        name,
        &args,
        "fFqvz",
        "cns",
        &[
            ("bytes", 'c', true),
            ("lines", 'n', true),
            ("quiet", 'q', false),
            ("silent", 'q', false),
            ("verbose", 'v', false),
            ("follow", 'f', false),
            ("zero-terminated", 'z', false),
            ("sleep-interval", 's', true),
            ("retry", 'R', false),
            ("pid", 'p', true),
        ]
    ));
    let bytes_mode = o
        .opts
        .iter()
        .rev()
        .find(|(c, _)| *c == 'c' || *c == 'n')
        .is_some_and(|(c, _)| *c == 'c');
    let spec = o.value(if bytes_mode { 'c' } else { 'n' }).unwrap_or("10");
    let Some((sign, n)) = count_arg(spec) else {
        let what = if bytes_mode { "bytes" } else { "lines" };
        return Out::fail(
            1,
            format!("{name}: invalid number of {what}: {}\n", q(spec)),
        );
    };
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    let ops: Vec<String> = if o.operands.is_empty() {
        vec!["-".into()]
    } else {
        o.operands.clone()
    };
    let headers = (ops.len() > 1 && !o.has('q')) || o.has('v');
    let mut out = Out::default();
    let mut first = true;
    for f in &ops {
        if out.full() || !st.budget.iterations(1) {
            break;
        }
        let data = match load_head_input(
            st,
            f,
            ctx,
            if head && sign != '-' { Some(n) } else { None },
            bytes_mode,
        ) {
            Ok(d) => d,
            Err(e) => {
                let msg = format!("{name}: cannot open '{f}' for reading: {}", e.text());
                out.eline(&msg);
                out.status = 1;
                continue;
            }
        };
        if headers {
            let shown = if f == "-" {
                "standard input"
            } else {
                f.as_str()
            };
            let sep = if first { "" } else { "\n" };
            out.put(format!("{sep}==> {shown} <==\n").as_bytes());
        }
        first = false;
        let part: &[u8] = if bytes_mode {
            match (head, sign) {
                (true, '-') => &data[..data.len().saturating_sub(n)],
                (true, _) => &data[..n.min(data.len())],
                (false, '+') => &data[n.saturating_sub(1).min(data.len())..],
                (false, _) => &data[data.len().saturating_sub(n)..],
            }
        } else {
            // Offsets just after each newline.
            let ends: Vec<usize> = data
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i + 1)
                .collect();
            if !st.budget.iterations(ends.len() as u64) {
                break;
            }
            let total = ends.len() + usize::from(!data.is_empty() && !data.ends_with(b"\n"));
            let start_of = |k: usize| {
                if k == 0 {
                    0
                } else {
                    ends.get(k - 1).copied().unwrap_or(data.len())
                }
            };
            match (head, sign) {
                (true, '-') => &data[..start_of(total.saturating_sub(n))],
                (true, _) => &data[..start_of(n.min(total))],
                (false, '+') => &data[start_of(n.saturating_sub(1).min(total))..],
                (false, _) => &data[start_of(total.saturating_sub(n))..],
            }
        };
        out.put(part);
    }
    out
}

/// The input of `head`/`tail`: endless devices give only what head asks for.
fn load_head_input(
    st: &State,
    f: &str,
    ctx: &Ctx<'_>,
    want: Option<usize>,
    bytes: bool,
) -> Result<Vec<u8>, super::super::fs::FsError> {
    let path = path_of(st, f);
    if f != "-" && (path == "/dev/zero" || path == "/dev/urandom" || path == "/dev/random") {
        let n = if bytes {
            want.unwrap_or(MAX_BUFFER)
        } else {
            MAX_BUFFER / 16
        };
        return Ok(device_bytes(st, &path, n.min(MAX_BUFFER)));
    }
    load(st, f, ctx)
}

/// `n` bytes of `/dev/zero` or `/dev/urandom` (a fixed-seed generator: never the host's
/// randomness, never the same across calls because of the session clock), charged.
pub(super) fn device_bytes(st: &State, path: &str, n: usize) -> Vec<u8> {
    let n = st.budget.take_data(n);
    if path == "/dev/zero" {
        return vec![0; n];
    }
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ (st.now as u64).wrapping_mul(0x2545_f491_4f6c_dd1d);
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_and_merge() {
        assert_eq!(parse_list("3,1-2", "field").unwrap(), vec![(1, 3)]);
        assert_eq!(parse_list("2-", "field").unwrap(), vec![(2, usize::MAX)]);
        assert!(parse_list("0", "field").is_err());
        assert!(parse_list("3-1", "field").is_err());
    }

    #[test]
    fn base64_round_trip_and_errors() {
        assert_eq!(b64_decode(b"aGkK\n", false), (b"hi\n".to_vec(), true));
        assert_eq!(b64_decode(b"aGk", false), (b"hi".to_vec(), false));
        assert!(!b64_decode(b"aGk=x", false).1);
    }

    #[test]
    fn names() {
        assert_eq!(base_of("/usr/bin/", None), "bin");
        assert_eq!(base_of("a.sh", Some(".sh")), "a");
        assert_eq!(dir_of("/usr/bin/"), "/usr");
        assert_eq!(dir_of("a"), ".");
        assert_eq!(dir_of("/a"), "/");
        assert_eq!(dir_of("//"), "/");
    }
}
