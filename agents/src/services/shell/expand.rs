//! Word expansion as bash does it, in bash's order: brace expansion, then tilde,
//! parameter, command and arithmetic expansion, field splitting on `IFS`, globbing
//! against the session's fake filesystem, quote removal.
//!
//! Every byte an expansion makes is charged to the line's expansion budget before it is
//! kept; brace sequences are counted before they are generated; globbing and pattern
//! matching charge their iterations first. A command substitution runs in this
//! emulator (never on the host), one nesting level deeper in the budget.

use super::State;
use super::commands::Io;
use super::exec::{self, Flow, Stop};
use brush_parser::ParserOptions;
use brush_parser::word::{
    self, Parameter, ParameterExpr, ParameterTestType, ParameterTransformOp, SpecialParameter,
    SubstringMatchKind, TildeExpr, WordPiece, WordPieceWithSource,
};

pub(super) type Res<T> = Result<T, Stop>;

/// Most words one brace expansion or one glob may make.
const MAX_WORDS: usize = 4096;

fn options() -> ParserOptions {
    ParserOptions {
        enable_extended_globbing: false,
        ..ParserOptions::default()
    }
}

/// Charges `n` bytes of expansion output; the line stops when they do not fit.
pub(super) fn charge(st: &State, n: usize) -> Res<()> {
    if n > st.budget.expansion_room() {
        st.budget.expanded(0, true);
        return Err(Stop);
    }
    if st.budget.expanded(n, false) {
        Ok(())
    } else {
        Err(Stop)
    }
}

/// The value of a variable or special parameter by name (`None` when unset).
pub(super) fn lookup(st: &State, name: &str) -> Option<String> {
    st.lookup(name)
}

/// One field being built: its text, the same as a glob pattern (quoted glob characters
/// escaped), and whether any unquoted glob character is in it.
#[derive(Debug, Default, Clone)]
struct Field {
    lit: String,
    pat: String,
    /// The same as an extended regular expression (`[[ =~ ]]`): quoted characters escaped.
    re: String,
    glob: bool,
}

#[derive(Debug)]
struct Fields {
    done: Vec<Field>,
    cur: Field,
    started: bool,
    /// Assignment values, redirection targets, patterns: no splitting, no globbing.
    split: bool,
    ifs: String,
}

fn is_glob_char(c: char) -> bool {
    matches!(c, '*' | '?' | '[' | ']' | '\\')
}

impl Fields {
    fn new(st: &State, split: bool) -> Fields {
        Fields {
            done: Vec::new(),
            cur: Field::default(),
            started: false,
            split,
            ifs: st.lookup("IFS").unwrap_or_else(|| " \t\n".into()),
        }
    }

    fn quoted(&mut self, s: &str) {
        self.started = true;
        self.cur.lit.push_str(s);
        for c in s.chars() {
            if is_glob_char(c) {
                self.cur.pat.push('\\');
            }
            self.cur.pat.push(c);
            if "\\.+*?()|[]{}^$".contains(c) {
                self.cur.re.push('\\');
            }
            self.cur.re.push(c);
        }
    }

    fn literal(&mut self, s: &str) {
        self.started = true;
        self.cur.lit.push_str(s);
        self.cur.pat.push_str(s);
        self.cur.re.push_str(s);
        if s.contains(['*', '?', '[']) {
            self.cur.glob = true;
        }
    }

    fn end(&mut self) {
        if self.started {
            self.done.push(std::mem::take(&mut self.cur));
        }
        self.started = false;
    }

    /// An unquoted expansion's value: split on IFS, glob characters stay active.
    fn expanded(&mut self, s: &str) {
        if !self.split {
            self.literal(s);
            return;
        }
        let ifs = self.ifs.clone();
        let mut pending_sep = false;
        for c in s.chars() {
            if ifs.contains(c) {
                if c.is_whitespace() {
                    pending_sep = true;
                } else {
                    // A non-blank separator ends a field, even an empty one.
                    self.started = true;
                    self.end();
                    pending_sep = false;
                }
                continue;
            }
            if pending_sep {
                self.end();
                pending_sep = false;
            }
            let mut b = [0u8; 4];
            self.literal(c.encode_utf8(&mut b));
        }
        if pending_sep {
            self.end();
        }
    }

    fn finish(mut self) -> Vec<Field> {
        self.end();
        self.done
    }
}

/// Expands the words of a command into its argument vector.
pub(super) fn words(st: &mut State, io: &mut Io, words: &[String]) -> Res<Vec<String>> {
    let mut out = Vec::new();
    for w in words {
        for b in braces(st, w)? {
            let fields = fields(st, io, &b, true)?;
            for f in fields {
                if f.glob
                    && let Some(found) = glob(st, &f.pat)?
                {
                    out.extend(found);
                    continue;
                }
                out.push(f.lit);
            }
        }
    }
    Ok(out)
}

/// Expands one word to one string: assignment values, redirection targets, `case`
/// words, here-strings (no brace expansion, no splitting, no globbing).
pub(super) fn string(st: &mut State, io: &mut Io, w: &str) -> Res<String> {
    let f = fields(st, io, w, false)?;
    Ok(f.into_iter().map(|f| f.lit).collect::<Vec<_>>().join(" "))
}

/// Expands a word used as a pattern (`case`, `[[ == ]]`, `${x#…}`): quoted characters
/// come back escaped so that they match only themselves.
pub(super) fn pattern(st: &mut State, io: &mut Io, w: &str) -> Res<String> {
    let f = fields(st, io, w, false)?;
    Ok(f.into_iter().map(|f| f.pat).collect::<Vec<_>>().join(" "))
}

/// Expands the right side of `[[ =~ ]]`: quoted parts match literally.
pub(super) fn regex(st: &mut State, io: &mut Io, w: &str) -> Res<String> {
    let f = fields(st, io, w, false)?;
    Ok(f.into_iter().map(|f| f.re).collect::<Vec<_>>().join(" "))
}

/// The body of a here-document whose delimiter was not quoted.
pub(super) fn heredoc(st: &mut State, io: &mut Io, doc: &str) -> Res<String> {
    let pieces = match super::parse::guard(|| word::parse_heredoc(doc, &options())) {
        Some(Ok(p)) => p,
        _ => return Ok(doc.to_owned()),
    };
    let mut f = Fields::new(st, false);
    for p in &pieces {
        piece(st, io, &p.piece, &mut f, true)?;
    }
    Ok(f.finish().into_iter().map(|f| f.lit).collect())
}

fn fields(st: &mut State, io: &mut Io, w: &str, split: bool) -> Res<Vec<Field>> {
    // A plain word (a loader's base64 payload, most arguments) has nothing to expand:
    // it skips brush-parser's word parser and so its process-wide cache.
    if !w.contains(['$', '`', '\'', '"', '\\', '~']) {
        let mut f = Fields::new(st, split);
        f.literal(w);
        return Ok(f.finish());
    }
    let pieces = match super::parse::guard(|| word::parse(w, &options())) {
        Some(Ok(p)) => p,
        _ => {
            let mut f = Fields::new(st, split);
            f.quoted(w);
            return Ok(f.finish());
        }
    };
    let mut f = Fields::new(st, split);
    for p in &pieces {
        piece(st, io, &p.piece, &mut f, false)?;
    }
    Ok(f.finish())
}

fn is_all_args(pieces: &[WordPieceWithSource]) -> bool {
    matches!(
        pieces,
        [WordPieceWithSource {
            piece: WordPiece::ParameterExpansion(ParameterExpr::Parameter {
                parameter: Parameter::Special(SpecialParameter::AllPositionalParameters {
                    concatenate: false
                }),
                ..
            }),
            ..
        }]
    )
}

fn piece(st: &mut State, io: &mut Io, p: &WordPiece, f: &mut Fields, quoted: bool) -> Res<()> {
    if st.budget.is_exhausted() {
        return Err(Stop);
    }
    match p {
        WordPiece::Text(s) => {
            if quoted {
                f.quoted(s);
            } else {
                f.literal(s);
            }
        }
        WordPiece::SingleQuotedText(s) => f.quoted(s),
        WordPiece::AnsiCQuotedText(s) => f.quoted(&String::from_utf8_lossy(&ansi_c(s))),
        WordPiece::DoubleQuotedSequence(inner) | WordPiece::GettextDoubleQuotedSequence(inner) => {
            if !is_all_args(inner) {
                f.started = true;
            }
            for i in inner {
                piece(st, io, &i.piece, f, true)?;
            }
        }
        WordPiece::TildeExpansion(t) => {
            let v = match t {
                TildeExpr::Home => st.lookup("HOME").unwrap_or_else(|| st.home.clone()),
                TildeExpr::UserHome(u) if u == "root" => "/root".into(),
                TildeExpr::UserHome(u) if *u == st.user => st.home.clone(),
                TildeExpr::UserHome(u) => format!("~{u}"),
                TildeExpr::WorkingDir => st.cwd.clone(),
                TildeExpr::OldWorkingDir => st.oldpwd.clone(),
                _ => "~".into(),
            };
            f.quoted(&v);
        }
        WordPiece::ParameterExpansion(expr) => {
            if let ParameterExpr::Parameter {
                parameter:
                    Parameter::Special(SpecialParameter::AllPositionalParameters { concatenate: false }),
                ..
            } = expr
                && quoted
            {
                // "$@": one field per positional parameter.
                let args = st.positional.clone();
                charge(st, args.iter().map(String::len).sum())?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.end();
                    }
                    f.quoted(a);
                }
                return Ok(());
            }
            let v = param(st, io, expr)?;
            charge(st, v.len())?;
            if quoted {
                f.quoted(&v);
            } else {
                f.expanded(&v);
            }
        }
        WordPiece::CommandSubstitution(text) => {
            let v = substitute(st, io, text)?;
            if quoted {
                f.quoted(&v);
            } else {
                f.expanded(&v);
            }
        }
        WordPiece::BackquotedCommandSubstitution(text) => {
            // Inside backquotes `\$`, `` \` `` and `\\` stand for the character.
            let mut t = String::with_capacity(text.len());
            let mut it = text.chars().peekable();
            while let Some(c) = it.next() {
                if c == '\\'
                    && let Some(&n) = it.peek()
                    && matches!(n, '$' | '`' | '\\')
                {
                    t.push(n);
                    it.next();
                    continue;
                }
                t.push(c);
            }
            let v = substitute(st, io, &t)?;
            if quoted {
                f.quoted(&v);
            } else {
                f.expanded(&v);
            }
        }
        WordPiece::EscapeSequence(s) => {
            let rest = s.strip_prefix('\\').unwrap_or(s);
            if rest != "\n" {
                f.quoted(rest);
            }
        }
        WordPiece::ArithmeticExpression(e) => {
            let text = heredoc(st, io, &e.value)?;
            let v = arith(st, io, &text, "")?;
            let v = v.to_string();
            charge(st, v.len())?;
            if quoted {
                f.quoted(&v);
            } else {
                f.expanded(&v);
            }
        }
    }
    Ok(())
}

/// Evaluates arithmetic; an error is printed and stops the line as bash's does.
pub(super) fn arith(st: &mut State, io: &mut Io, text: &str, what: &str) -> Res<i64> {
    match super::arith::eval(st, text) {
        Ok(v) if !st.budget.is_exhausted() => Ok(v),
        Ok(_) => Err(Stop),
        Err(msg) => {
            let line = format!("{}{what}{msg}\n", st.err_prefix);
            io.push(true, line.as_bytes());
            st.flow = Some(Flow::Abort(1));
            Err(Stop)
        }
    }
}

/// `$( … )`: runs `text` in this emulator one nesting level deeper; its stdout (less
/// trailing newlines) is the value, its stderr goes on to the caller's.
pub(super) fn substitute(st: &mut State, io: &mut Io, text: &str) -> Res<String> {
    let out = exec::capture(st, io, text)?;
    let mut s = String::from_utf8_lossy(&out).replace('\0', "");
    while s.ends_with('\n') {
        s.pop();
    }
    charge(st, s.len())?;
    Ok(s)
}

fn special_value(st: &State, p: &Parameter) -> Option<String> {
    match p {
        Parameter::Positional(0) => st.lookup("0"),
        Parameter::Positional(n) => st.positional.get(*n as usize - 1).cloned(),
        Parameter::Special(s) => match s {
            SpecialParameter::AllPositionalParameters { concatenate } => {
                let sep = if *concatenate {
                    st.lookup("IFS")
                        .map_or(" ".to_owned(), |i| i.chars().take(1).collect())
                } else {
                    " ".into()
                };
                Some(st.positional.join(&sep))
            }
            SpecialParameter::PositionalParameterCount => Some(st.positional.len().to_string()),
            SpecialParameter::LastExitStatus => Some(st.status.to_string()),
            SpecialParameter::CurrentOptionFlags => Some(st.option_flags()),
            SpecialParameter::ProcessId => Some(st.shell_pid().to_string()),
            SpecialParameter::LastBackgroundProcessId => st.last_bg.map(|p| p.to_string()),
            SpecialParameter::ShellName => st.lookup("0"),
        },
        Parameter::Named(n) => st.lookup(n),
        Parameter::NamedWithIndex { name, index } => {
            if index == "0" || index == "@" || index == "*" {
                st.lookup(name)
            } else {
                None
            }
        }
        Parameter::NamedWithAllIndices { name, .. } => st.lookup(name),
    }
}

fn param_name(p: &Parameter) -> String {
    match p {
        Parameter::Positional(n) => n.to_string(),
        Parameter::Special(s) => match s {
            SpecialParameter::AllPositionalParameters { concatenate: true } => "*".into(),
            SpecialParameter::AllPositionalParameters { .. } => "@".into(),
            SpecialParameter::PositionalParameterCount => "#".into(),
            SpecialParameter::LastExitStatus => "?".into(),
            SpecialParameter::CurrentOptionFlags => "-".into(),
            SpecialParameter::ProcessId => "$".into(),
            SpecialParameter::LastBackgroundProcessId => "!".into(),
            SpecialParameter::ShellName => "0".into(),
        },
        Parameter::Named(n)
        | Parameter::NamedWithIndex { name: n, .. }
        | Parameter::NamedWithAllIndices { name: n, .. } => n.clone(),
    }
}

fn value(st: &State, p: &Parameter, indirect: bool) -> Option<String> {
    let v = special_value(st, p);
    if indirect {
        return v.and_then(|n| st.lookup(&n));
    }
    v
}

fn tested(v: &Option<String>, t: &ParameterTestType) -> bool {
    match t {
        ParameterTestType::UnsetOrNull => v.as_deref().is_none_or(str::is_empty),
        ParameterTestType::Unset => v.is_none(),
    }
}

fn param(st: &mut State, io: &mut Io, expr: &ParameterExpr) -> Res<String> {
    Ok(match expr {
        ParameterExpr::Parameter {
            parameter,
            indirect,
        } => value(st, parameter, *indirect).unwrap_or_default(),
        ParameterExpr::UseDefaultValues {
            parameter,
            indirect,
            test_type,
            default_value,
        } => {
            let v = value(st, parameter, *indirect);
            if tested(&v, test_type) {
                string(st, io, default_value.as_deref().unwrap_or(""))?
            } else {
                v.unwrap_or_default()
            }
        }
        ParameterExpr::AssignDefaultValues {
            parameter,
            indirect,
            test_type,
            default_value,
        } => {
            let v = value(st, parameter, *indirect);
            if tested(&v, test_type) {
                let d = string(st, io, default_value.as_deref().unwrap_or(""))?;
                if let Parameter::Named(n) = parameter {
                    st.set_var(n, &d);
                } else {
                    let msg = format!(
                        "{}${}: cannot assign in this way\n",
                        st.err_prefix,
                        param_name(parameter)
                    );
                    io.push(true, msg.as_bytes());
                    st.flow = Some(Flow::Abort(1));
                    return Err(Stop);
                }
                d
            } else {
                v.unwrap_or_default()
            }
        }
        ParameterExpr::IndicateErrorIfNullOrUnset {
            parameter,
            indirect,
            test_type,
            error_message,
        } => {
            let v = value(st, parameter, *indirect);
            if tested(&v, test_type) {
                let msg = match error_message {
                    Some(m) => string(st, io, m)?,
                    None if matches!(test_type, ParameterTestType::UnsetOrNull) => {
                        "parameter null or not set".into()
                    }
                    None => "parameter not set".into(),
                };
                let line = format!("{}{}: {msg}\n", st.err_prefix, param_name(parameter));
                io.push(true, line.as_bytes());
                // ash's non-interactive status is 2, bash's 127.
                let status = match (st.tty, st.profile.busybox.is_some()) {
                    (true, _) => 1,
                    (false, true) => 2,
                    (false, false) => 127,
                };
                st.flow = Some(Flow::Abort(status));
                return Err(Stop);
            }
            v.unwrap_or_default()
        }
        ParameterExpr::UseAlternativeValue {
            parameter,
            indirect,
            test_type,
            alternative_value,
        } => {
            let v = value(st, parameter, *indirect);
            if tested(&v, test_type) {
                String::new()
            } else {
                string(st, io, alternative_value.as_deref().unwrap_or(""))?
            }
        }
        ParameterExpr::ParameterLength {
            parameter,
            indirect,
        } => match parameter {
            Parameter::Special(SpecialParameter::AllPositionalParameters { .. }) => {
                st.positional.len().to_string()
            }
            _ => value(st, parameter, *indirect)
                .unwrap_or_default()
                .chars()
                .count()
                .to_string(),
        },
        ParameterExpr::RemoveSmallestSuffixPattern {
            parameter,
            indirect,
            pattern: p,
        }
        | ParameterExpr::RemoveLargestSuffixPattern {
            parameter,
            indirect,
            pattern: p,
        }
        | ParameterExpr::RemoveSmallestPrefixPattern {
            parameter,
            indirect,
            pattern: p,
        }
        | ParameterExpr::RemoveLargestPrefixPattern {
            parameter,
            indirect,
            pattern: p,
        } => {
            let v = value(st, parameter, *indirect).unwrap_or_default();
            let pat = pattern(st, io, p.as_deref().unwrap_or(""))?;
            let (suffix, largest) = match expr {
                ParameterExpr::RemoveSmallestSuffixPattern { .. } => (true, false),
                ParameterExpr::RemoveLargestSuffixPattern { .. } => (true, true),
                ParameterExpr::RemoveSmallestPrefixPattern { .. } => (false, false),
                _ => (false, true),
            };
            remove_affix(st, &v, &pat, suffix, largest)?
        }
        ParameterExpr::Substring {
            parameter,
            indirect,
            offset,
            length,
        } => {
            let v: Vec<char> = value(st, parameter, *indirect)
                .unwrap_or_default()
                .chars()
                .collect();
            let n = v.len() as i64;
            let off_text = heredoc(st, io, &offset.value)?;
            let mut off = arith(st, io, &off_text, "")?;
            if off < 0 {
                off = (n + off).max(0);
            }
            let off = off.min(n);
            let end = match length {
                None => n,
                Some(l) => {
                    let lt = heredoc(st, io, &l.value)?;
                    let l = arith(st, io, &lt, "")?;
                    if l < 0 {
                        (n + l).max(off)
                    } else {
                        (off + l).min(n)
                    }
                }
            };
            v[off as usize..end.max(off) as usize].iter().collect()
        }
        ParameterExpr::Transform {
            parameter,
            indirect,
            op,
        } => {
            let v = value(st, parameter, *indirect);
            match op {
                ParameterTransformOp::Quoted => v.map(|v| quote(&v)).unwrap_or_default(),
                ParameterTransformOp::ToUpperCase => v.unwrap_or_default().to_uppercase(),
                ParameterTransformOp::ToLowerCase => v.unwrap_or_default().to_lowercase(),
                ParameterTransformOp::CapitalizeInitial => first_char(&v.unwrap_or_default(), true),
                ParameterTransformOp::ExpandEscapeSequences => {
                    String::from_utf8_lossy(&ansi_c(&v.unwrap_or_default())).into_owned()
                }
                _ => v.unwrap_or_default(),
            }
        }
        ParameterExpr::UppercaseFirstChar {
            parameter,
            indirect,
            ..
        } => first_char(&value(st, parameter, *indirect).unwrap_or_default(), true),
        ParameterExpr::LowercaseFirstChar {
            parameter,
            indirect,
            ..
        } => first_char(&value(st, parameter, *indirect).unwrap_or_default(), false),
        ParameterExpr::UppercasePattern {
            parameter,
            indirect,
            ..
        } => value(st, parameter, *indirect)
            .unwrap_or_default()
            .to_uppercase(),
        ParameterExpr::LowercasePattern {
            parameter,
            indirect,
            ..
        } => value(st, parameter, *indirect)
            .unwrap_or_default()
            .to_lowercase(),
        ParameterExpr::ReplaceSubstring {
            parameter,
            indirect,
            pattern: p,
            replacement,
            match_kind,
        } => {
            let v = value(st, parameter, *indirect).unwrap_or_default();
            let pat = pattern(st, io, p)?;
            let rep = string(st, io, replacement.as_deref().unwrap_or(""))?;
            replace(st, &v, &pat, &rep, match_kind)?
        }
        ParameterExpr::VariableNames { prefix, .. } => {
            let mut names: Vec<&str> = st
                .env
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| k.starts_with(prefix.as_str()))
                .collect();
            names.sort_unstable();
            names.join(" ")
        }
        ParameterExpr::MemberKeys { variable_name, .. } => {
            if st.lookup(variable_name).is_some() {
                "0".into()
            } else {
                String::new()
            }
        }
    })
}

fn first_char(v: &str, upper: bool) -> String {
    let mut c = v.chars();
    match c.next() {
        None => String::new(),
        Some(f) if upper => f.to_uppercase().chain(c).collect(),
        Some(f) => f.to_lowercase().chain(c).collect(),
    }
}

/// `${x@Q}` and `printf %q`-like single quoting.
pub(super) fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "'\\''"))
}

/// Charges the worst case of one pattern match against `len` characters.
fn charge_match(st: &State, pat: &[char], len: usize) -> Res<()> {
    let cost = (pat.len() as u64 + 1).saturating_mul(len as u64 + 1);
    if st.budget.iterations(cost) {
        Ok(())
    } else {
        Err(Stop)
    }
}

fn remove_affix(st: &State, v: &str, pat: &str, suffix: bool, largest: bool) -> Res<String> {
    let chars: Vec<char> = v.chars().collect();
    let p: Vec<char> = pat.chars().collect();
    let n = chars.len();
    let order: Vec<usize> = if largest == suffix {
        (0..=n).collect()
    } else {
        (0..=n).rev().collect()
    };
    for i in order {
        let part = if suffix { &chars[i..] } else { &chars[..i] };
        // Smallest prefix: shortest first; largest suffix: starts earliest first.
        charge_match(st, &p, part.len())?;
        if matches(&p, part) {
            let rest = if suffix { &chars[..i] } else { &chars[i..] };
            return Ok(rest.iter().collect());
        }
    }
    Ok(v.to_owned())
}

fn replace(st: &State, v: &str, pat: &str, rep: &str, kind: &SubstringMatchKind) -> Res<String> {
    let chars: Vec<char> = v.chars().collect();
    let p: Vec<char> = pat.chars().collect();
    let n = chars.len();
    if p.is_empty() {
        return Ok(v.to_owned());
    }
    // The longest match starting at `i`, if any.
    let longest_at = |i: usize, anchored_end: bool| -> Res<Option<usize>> {
        for j in (i..=n).rev() {
            if anchored_end && j != n {
                continue;
            }
            charge_match(st, &p, j - i)?;
            if matches(&p, &chars[i..j]) {
                return Ok(Some(j));
            }
        }
        Ok(None)
    };
    match kind {
        SubstringMatchKind::Prefix => Ok(match longest_at(0, false)? {
            Some(j) => format!("{rep}{}", chars[j..].iter().collect::<String>()),
            None => v.to_owned(),
        }),
        SubstringMatchKind::Suffix => {
            for i in 0..=n {
                if let Some(j) = longest_at(i, true)? {
                    let _ = j;
                    return Ok(format!("{}{rep}", chars[..i].iter().collect::<String>()));
                }
            }
            Ok(v.to_owned())
        }
        SubstringMatchKind::FirstOccurrence | SubstringMatchKind::Anywhere => {
            let all = matches!(kind, SubstringMatchKind::Anywhere);
            let mut out = String::new();
            let mut i = 0;
            let mut replaced = false;
            while i < n {
                if (all || !replaced)
                    && let Some(j) = longest_at(i, false)?
                    && j > i
                {
                    charge(st, rep.len())?;
                    out.push_str(rep);
                    i = j;
                    replaced = true;
                    continue;
                }
                out.push(chars[i]);
                i += 1;
            }
            Ok(out)
        }
    }
}

/// `$'…'` and `echo -e`-style escapes.
pub(super) fn ansi_c(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 >= b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        i += 1;
        let c = b[i];
        i += 1;
        match c {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'e' | b'E' => out.push(0x1b),
            b'f' => out.push(0x0c),
            b'v' => out.push(0x0b),
            b'\\' => out.push(b'\\'),
            b'\'' => out.push(b'\''),
            b'"' => out.push(b'"'),
            b'x' => {
                let mut v = 0u32;
                let mut k = 0;
                while k < 2 && i < b.len() && b[i].is_ascii_hexdigit() {
                    v = v * 16 + (b[i] as char).to_digit(16).unwrap_or(0);
                    i += 1;
                    k += 1;
                }
                if k == 0 {
                    out.extend_from_slice(b"\\x");
                } else {
                    out.push(v as u8);
                }
            }
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                let mut k = 1;
                while k < 3 && i < b.len() && (b'0'..=b'7').contains(&b[i]) {
                    v = v * 8 + u32::from(b[i] - b'0');
                    i += 1;
                    k += 1;
                }
                out.push(v as u8);
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    out
}

// ---- patterns -----------------------------------------------------------------------

/// Whether `s` matches the glob pattern `p` (`*`, `?`, `[…]`, `\x`). The loop is the
/// classic one that backtracks to the last `*` only: O(len(p) × len(s)) steps at most,
/// which callers charge before calling.
pub(super) fn matches(p: &[char], s: &[char]) -> bool {
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                '?' if si < s.len() => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                '[' if si < s.len() => {
                    if let Some((ok, next)) = class(p, pi, s[si]) {
                        if ok {
                            pi = next;
                            si += 1;
                            continue;
                        }
                    } else if s[si] == '[' {
                        pi += 1;
                        si += 1;
                        continue;
                    }
                }
                '\\' if pi + 1 < p.len() && si < s.len() && p[pi + 1] == s[si] => {
                    pi += 2;
                    si += 1;
                    continue;
                }
                c if c != '\\' && c != '?' && c != '[' && si < s.len() && c == s[si] => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                _ => {}
            }
        } else if si == s.len() {
            return true;
        }
        match star {
            Some((sp, ss)) if ss < s.len() => {
                star = Some((sp, ss + 1));
                pi = sp + 1;
                si = ss + 1;
            }
            _ => return false,
        }
    }
}

/// A bracket expression at `p[i]`: whether `c` is in it and where it ends; `None` when
/// the bracket is not closed (then `[` is a plain character).
fn class(p: &[char], i: usize, c: char) -> Option<(bool, usize)> {
    let mut j = i + 1;
    let negate = matches!(p.get(j), Some('!' | '^'));
    if negate {
        j += 1;
    }
    let mut found = false;
    let mut first = true;
    while j < p.len() {
        let x = p[j];
        if x == ']' && !first {
            return Some((found != negate, j + 1));
        }
        first = false;
        if x == '[' && p.get(j + 1) == Some(&':') {
            let rest: String = p[j + 2..].iter().collect();
            if let Some(end) = rest.find(":]") {
                let name = &rest[..end];
                found |= match name {
                    "alpha" => c.is_alphabetic(),
                    "digit" => c.is_ascii_digit(),
                    "alnum" => c.is_alphanumeric(),
                    "upper" => c.is_uppercase(),
                    "lower" => c.is_lowercase(),
                    "space" => c.is_whitespace(),
                    "punct" => c.is_ascii_punctuation(),
                    "xdigit" => c.is_ascii_hexdigit(),
                    _ => false,
                };
                j += 2 + name.chars().count() + 2;
                continue;
            }
        }
        let x = if x == '\\' && j + 1 < p.len() {
            j += 1;
            p[j]
        } else {
            x
        };
        if p.get(j + 1) == Some(&'-') && p.get(j + 2).is_some_and(|e| *e != ']') {
            let hi = p[j + 2];
            found |= x <= c && c <= hi;
            j += 3;
        } else {
            found |= x == c;
            j += 1;
        }
    }
    None
}

fn unescape_pattern(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    let mut it = p.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            if let Some(n) = it.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn has_glob(p: &str) -> bool {
    let mut esc = false;
    for c in p.chars() {
        if esc {
            esc = false;
        } else if c == '\\' {
            esc = true;
        } else if matches!(c, '*' | '?' | '[') {
            return true;
        }
    }
    false
}

/// Globs `pat` against the fake filesystem: the sorted matches, or `None` when nothing
/// matches (bash then keeps the word as it is).
fn glob(st: &State, pat: &str) -> Res<Option<Vec<String>>> {
    let absolute = pat.starts_with('/');
    // (what is shown, the absolute path)
    let mut cands: Vec<(String, String)> = vec![if absolute {
        ("/".into(), "/".into())
    } else {
        (String::new(), st.cwd.clone())
    }];
    let comps: Vec<&str> = pat.split('/').filter(|c| !c.is_empty()).collect();
    for (k, comp) in comps.iter().enumerate() {
        let last = k + 1 == comps.len();
        let mut next = Vec::new();
        for (shown, path) in &cands {
            let join = |name: &str| -> (String, String) {
                let s = if last {
                    format!("{shown}{name}")
                } else {
                    format!("{shown}{name}/")
                };
                let p = if path == "/" {
                    format!("/{name}")
                } else {
                    format!("{path}/{name}")
                };
                (s, p)
            };
            if !has_glob(comp) {
                let name = unescape_pattern(comp);
                let (s, p) = join(&name);
                if st.fs.stat(&p).is_some() {
                    next.push((s, p));
                }
                continue;
            }
            let Ok(list) = st.fs.list(path) else {
                continue;
            };
            if !st.budget.iterations(list.len() as u64 + 1) {
                return Err(Stop);
            }
            let pc: Vec<char> = comp.chars().collect();
            let dot = comp.starts_with('.') || comp.starts_with("\\.");
            for (name, node) in list {
                if name.starts_with('.') && !dot {
                    continue;
                }
                if !last && node.kind == super::fs::Kind::File {
                    continue;
                }
                let nc: Vec<char> = name.chars().collect();
                charge_match(st, &pc, nc.len())?;
                if matches(&pc, &nc) {
                    next.push(join(&name));
                    if next.len() > MAX_WORDS {
                        break;
                    }
                }
            }
        }
        cands = next;
        if cands.is_empty() {
            return Ok(None);
        }
    }
    let mut out: Vec<String> = cands.into_iter().map(|(s, _)| s).collect();
    out.sort();
    out.truncate(MAX_WORDS);
    charge(st, out.iter().map(|s| s.len() + 1).sum())?;
    Ok(Some(out))
}

// ---- brace expansion ------------------------------------------------------------------

/// Skips a quoted or `$…` region starting at `i`; returns the index after it.
fn skip_quoted(b: &[u8], i: usize) -> usize {
    match b[i] {
        b'\\' => (i + 2).min(b.len()),
        b'\'' => b[i + 1..]
            .iter()
            .position(|&c| c == b'\'')
            .map_or(b.len(), |p| i + 2 + p),
        b'"' => {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            (j + 1).min(b.len())
        }
        b'$' if matches!(b.get(i + 1), Some(b'{' | b'(')) => {
            let (open, close) = if b[i + 1] == b'{' {
                (b'{', b'}')
            } else {
                (b'(', b')')
            };
            let mut depth = 0usize;
            let mut j = i + 1;
            while j < b.len() {
                if b[j] == open {
                    depth += 1;
                } else if b[j] == close {
                    depth -= 1;
                    if depth == 0 {
                        return j + 1;
                    }
                }
                j += 1;
            }
            b.len()
        }
        _ => i + 1,
    }
}

/// The first brace expression of `w`: (start, end exclusive, its alternatives).
fn first_brace(w: &str) -> Option<(usize, usize, Vec<String>)> {
    let b = w.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' | b'\'' | b'"' | b'$' => {
                let j = skip_quoted(b, i);
                i = if j > i { j } else { i + 1 };
            }
            b'{' => {
                // Find the matching close at depth 0 and the top-level commas.
                let mut depth = 0usize;
                let mut j = i;
                let mut commas = Vec::new();
                let mut close = None;
                while j < b.len() {
                    match b[j] {
                        b'\\' | b'\'' | b'"' | b'$' => {
                            let k = skip_quoted(b, j);
                            j = if k > j { k } else { j + 1 };
                            continue;
                        }
                        b'{' => depth += 1,
                        b'}' => {
                            depth -= 1;
                            if depth == 0 {
                                close = Some(j);
                                break;
                            }
                        }
                        b',' if depth == 1 => commas.push(j),
                        _ => {}
                    }
                    j += 1;
                }
                if let Some(c) = close {
                    if !commas.is_empty() {
                        let mut alts = Vec::new();
                        let mut start = i + 1;
                        for &k in &commas {
                            alts.push(w[start..k].to_owned());
                            start = k + 1;
                        }
                        alts.push(w[start..c].to_owned());
                        return Some((i, c + 1, alts));
                    }
                    if let Some(seq) = sequence(&w[i + 1..c]) {
                        return Some((i, c + 1, seq));
                    }
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    None
}

/// `{1..5}`, `{a..e}`, `{10..1..3}`, `{01..10}`: the words, or `None` when the text is
/// not a sequence. The count is checked before anything is made.
fn sequence(inner: &str) -> Option<Vec<String>> {
    let parts: Vec<&str> = inner.split("..").collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    let step: i64 = match parts.get(2) {
        Some(s) => s.parse().ok()?,
        None => 1,
    };
    let step = step.unsigned_abs().max(1) as i64;
    if let (Ok(a), Ok(b)) = (parts[0].parse::<i64>(), parts[1].parse::<i64>()) {
        let count = (a.abs_diff(b) / step as u64).saturating_add(1);
        if count > MAX_WORDS as u64 {
            return Some(vec![String::new(); MAX_WORDS + 1]);
        }
        let width = if (parts[0].starts_with('0') && parts[0].len() > 1)
            || (parts[1].starts_with('0') && parts[1].len() > 1)
            || parts[0].starts_with("-0")
        {
            parts[0].len().max(parts[1].len())
        } else {
            0
        };
        let mut out = Vec::new();
        let mut v = a;
        for _ in 0..count {
            out.push(if width > 0 {
                if v < 0 {
                    format!("-{:0w$}", -v, w = width - 1)
                } else {
                    format!("{v:0width$}")
                }
            } else {
                v.to_string()
            });
            v = if a <= b { v + step } else { v - step };
        }
        return Some(out);
    }
    let (mut x, mut y) = (parts[0].chars(), parts[1].chars());
    let (a, b) = (x.next()?, y.next()?);
    if x.next().is_some() || y.next().is_some() || !a.is_ascii() || !b.is_ascii() {
        return None;
    }
    let (a, b) = (a as u8, b as u8);
    let mut out = Vec::new();
    let mut v = i64::from(a);
    let count = (a.abs_diff(b) as i64) / step + 1;
    for _ in 0..count {
        out.push(((v as u8) as char).to_string());
        v = if a <= b { v + step } else { v - step };
    }
    Some(out)
}

/// Brace expansion of one word, breadth first over a bounded work list: every word made
/// is charged as expansion bytes before it is kept.
pub(super) fn braces(st: &State, w: &str) -> Res<Vec<String>> {
    if !w.contains('{') {
        return Ok(vec![w.to_owned()]);
    }
    let mut todo = vec![w.to_owned()];
    let mut out = Vec::new();
    let mut made = 0usize;
    while let Some(cur) = todo.pop() {
        if !st.budget.iterations(1) {
            return Err(Stop);
        }
        match first_brace(&cur) {
            None => out.push(cur),
            Some((s, e, alts)) => {
                made += alts.len();
                if made > MAX_WORDS {
                    // As bash would run out of memory long before: the line stops.
                    charge(st, usize::MAX)?;
                }
                let (pre, post) = (&cur[..s], &cur[e..]);
                let bytes: usize = alts.iter().map(|a| pre.len() + a.len() + post.len()).sum();
                charge(st, bytes)?;
                for a in alts.iter().rev() {
                    todo.push(format!("{pre}{a}{post}"));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        matches(
            &p.chars().collect::<Vec<_>>(),
            &s.chars().collect::<Vec<_>>(),
        )
    }

    #[test]
    fn glob_patterns() {
        assert!(m("*.sh", "a.sh"));
        assert!(!m("*.sh", "a.shx"));
        assert!(m("a?c", "abc"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[!a-c]x", "bx"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("*", ""));
        assert!(m("[[:digit:]]*", "1ab"));
        assert!(m("a*b*c", "aXbYc"));
    }

    #[test]
    fn brace_sequences() {
        assert_eq!(first_brace("a{b,c}d").unwrap().2, vec!["b", "c"]);
        assert_eq!(sequence("1..3").unwrap(), vec!["1", "2", "3"]);
        assert_eq!(sequence("5..1..2").unwrap(), vec!["5", "3", "1"]);
        assert_eq!(sequence("01..03").unwrap(), vec!["01", "02", "03"]);
        assert_eq!(sequence("a..c").unwrap(), vec!["a", "b", "c"]);
        assert!(first_brace("'{a,b}'").is_none());
        assert!(first_brace("${x}").is_none());
        assert!(sequence("1..99999999999").unwrap().len() > MAX_WORDS);
    }
}
