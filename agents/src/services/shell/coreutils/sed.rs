//! GNU sed 4.9 as loaders use it: `-n -e -f -i -E/-r -s`, line, `$`, `/re/`, `first~step`
//! and range addresses with `!`, and the commands `s y p P d D n N g G h H x q Q = a i c
//! b t T : { } r l`. Regexes are POSIX basic or extended, matched by the `regex` crate
//! (linear time). Every command executed costs one iteration of the line's budget, so a
//! `:a;ba` loop stops at the budget; pattern and hold space growth is charged as data.

use super::super::State;
use super::super::budget::MAX_BUFFER;
use super::super::commands::{Ctx, Out};
use super::posix_re;
use super::{load, may_write, path_of};
use regex::bytes::Regex;

#[derive(Debug, Clone)]
enum Addr {
    Line(usize),
    Last,
    /// `None`: the empty regex, the last one used.
    Re(Option<Regex>),
    Step(usize, usize),
}

#[derive(Debug, Clone)]
enum Addr2 {
    To(Addr),
    Plus(usize),
    Multiple(usize),
}

#[derive(Debug, Clone)]
enum Repl {
    Lit(Vec<u8>),
    Group(usize),
    Upper,
    Lower,
    UpperOne,
    LowerOne,
    EndCase,
}

#[derive(Debug, Clone)]
enum Kind {
    /// Index of the matching `}`.
    Block(usize),
    EndBlock,
    S {
        re: Option<Regex>,
        repl: Vec<Repl>,
        global: bool,
        nth: usize,
        print: bool,
    },
    Y([u8; 256]),
    Print,
    PrintFirst,
    Delete,
    DeleteFirst,
    Next,
    NextAppend,
    Quit(i32, bool),
    LineNo,
    Append(Vec<u8>),
    Insert(Vec<u8>),
    Change(Vec<u8>),
    Hold,
    HoldAppend,
    Get,
    GetAppend,
    Exchange,
    Label,
    Branch(Option<String>),
    BranchIf(Option<String>, bool),
    ReadFile(String),
    List,
    Zap,
}

#[derive(Debug, Clone)]
struct Cmd {
    a1: Option<Addr>,
    a2: Option<Addr2>,
    neg: bool,
    kind: Kind,
}

struct Parser<'a> {
    s: &'a [char],
    i: usize,
    extended: bool,
}

fn err_at(i: usize, msg: &str) -> String {
    format!("-e expression #1, char {i}: {msg}")
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.i += 1;
        }
    }

    fn number(&mut self) -> Option<usize> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        if start == self.i {
            return None;
        }
        let s: String = self.s[start..self.i].iter().collect();
        Some(s.parse().unwrap_or(usize::MAX))
    }

    /// Text up to an unescaped `delim`; `\delim` becomes `delim`, `\n` a newline when
    /// `newline_escape`, other escapes stay for the regex translator.
    fn delimited(&mut self, delim: char, keep_escapes: bool) -> Result<String, String> {
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(String::new());
            };
            self.i += 1;
            if c == delim {
                return Ok(out);
            }
            if c == '\\' {
                let Some(n) = self.peek() else {
                    return Err(String::new());
                };
                self.i += 1;
                if n == delim {
                    out.push(n);
                } else if n == 'n' && !keep_escapes {
                    out.push('\n');
                } else {
                    out.push('\\');
                    out.push(n);
                }
                continue;
            }
            if c == '[' && keep_escapes {
                // A bracket expression may hold the delimiter unescaped.
                out.push(c);
                let mut first = true;
                while let Some(b) = self.peek() {
                    if b == '\n' {
                        break;
                    }
                    self.i += 1;
                    out.push(b);
                    if b == '[' && matches!(self.peek(), Some(':' | '.' | '=')) {
                        continue;
                    }
                    if b == ']' && !first {
                        break;
                    }
                    if !(first && b == '^') {
                        first = false;
                    }
                }
                continue;
            }
            out.push(c);
        }
    }

    fn regex(&mut self, delim: char) -> Result<Option<Regex>, String> {
        let pat = self
            .delimited(delim, true)
            .map_err(|_| err_at(self.i, "unterminated address regex"))?;
        let icase = if self.peek() == Some('I') {
            self.i += 1;
            true
        } else {
            false
        };
        if pat.is_empty() {
            return Ok(None);
        }
        posix_re::compile(&pat, self.extended, icase)
            .map(Some)
            .map_err(|e| err_at(self.i, &e))
    }

    fn addr(&mut self) -> Result<Option<Addr>, String> {
        match self.peek() {
            Some('$') => {
                self.i += 1;
                Ok(Some(Addr::Last))
            }
            Some('/') => {
                self.i += 1;
                Ok(Some(Addr::Re(self.regex('/')?)))
            }
            Some('\\') => {
                self.i += 1;
                let Some(d) = self.peek() else {
                    return Err(err_at(self.i, "unexpected `,'"));
                };
                self.i += 1;
                Ok(Some(Addr::Re(self.regex(d)?)))
            }
            Some(c) if c.is_ascii_digit() => {
                let n = self.number().unwrap_or(0);
                if self.peek() == Some('~') {
                    self.i += 1;
                    let step = self.number().unwrap_or(0);
                    return Ok(Some(Addr::Step(n, step)));
                }
                if n == 0 {
                    return Err(err_at(self.i, "invalid usage of line address 0"));
                }
                Ok(Some(Addr::Line(n)))
            }
            _ => Ok(None),
        }
    }

    /// Text of `a`, `i`, `c`: `a text`, `a\` newline `text`, with `\` line joins.
    fn text_arg(&mut self) -> Vec<u8> {
        self.skip_ws();
        if self.peek() == Some('\\') {
            self.i += 1;
            if self.peek() == Some('\n') {
                self.i += 1;
            }
        }
        let mut out = String::new();
        while let Some(c) = self.peek() {
            self.i += 1;
            match c {
                '\\' => {
                    if let Some(n) = self.peek() {
                        self.i += 1;
                        out.push(if n == 't' { '\t' } else { n });
                    }
                }
                '\n' => break,
                c => out.push(c),
            }
        }
        out.push('\n');
        out.into_bytes()
    }

    fn label(&mut self) -> Option<String> {
        self.skip_ws();
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c != ';' && c != '\n' && c != '}')
        {
            self.i += 1;
        }
        let l: String = self.s[start..self.i].iter().collect();
        let l = l.trim().to_owned();
        (!l.is_empty()).then_some(l)
    }

    fn replacement(text: &str) -> Vec<Repl> {
        let mut v = Vec::new();
        let mut lit = Vec::new();
        let mut it = text.chars().peekable();
        let flush = |lit: &mut Vec<u8>, v: &mut Vec<Repl>| {
            if !lit.is_empty() {
                v.push(Repl::Lit(std::mem::take(lit)));
            }
        };
        while let Some(c) = it.next() {
            match c {
                '&' => {
                    flush(&mut lit, &mut v);
                    v.push(Repl::Group(0));
                }
                '\\' => match it.next() {
                    Some(d @ '0'..='9') => {
                        flush(&mut lit, &mut v);
                        v.push(Repl::Group(d as usize - '0' as usize));
                    }
                    Some('n') => lit.push(b'\n'),
                    Some('t') => lit.push(b'\t'),
                    Some('U') => {
                        flush(&mut lit, &mut v);
                        v.push(Repl::Upper);
                    }
                    Some('L') => {
                        flush(&mut lit, &mut v);
                        v.push(Repl::Lower);
                    }
                    Some('u') => {
                        flush(&mut lit, &mut v);
                        v.push(Repl::UpperOne);
                    }
                    Some('l') => {
                        flush(&mut lit, &mut v);
                        v.push(Repl::LowerOne);
                    }
                    Some('E') => {
                        flush(&mut lit, &mut v);
                        v.push(Repl::EndCase);
                    }
                    Some(o) => {
                        let mut b = [0u8; 4];
                        lit.extend_from_slice(o.encode_utf8(&mut b).as_bytes());
                    }
                    None => lit.push(b'\\'),
                },
                c => {
                    let mut b = [0u8; 4];
                    lit.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                }
            }
        }
        flush(&mut lit, &mut v);
        v
    }

    fn end_of_command(&mut self) -> Result<(), String> {
        self.skip_ws();
        match self.peek() {
            None | Some(';' | '\n') => {
                if self.peek().is_some() {
                    self.i += 1;
                }
                Ok(())
            }
            Some('}' | '#') => Ok(()),
            Some(_) => Err(err_at(self.i + 1, "extra characters after command")),
        }
    }

    fn parse(&mut self) -> Result<Vec<Cmd>, String> {
        let mut cmds: Vec<Cmd> = Vec::new();
        let mut open: Vec<usize> = Vec::new();
        loop {
            while matches!(self.peek(), Some(' ' | '\t' | '\n' | ';')) {
                self.i += 1;
            }
            let Some(c) = self.peek() else { break };
            if c == '#' {
                while self.peek().is_some_and(|c| c != '\n') {
                    self.i += 1;
                }
                continue;
            }
            let a1 = self.addr()?;
            let mut a2 = None;
            if a1.is_some() && self.peek() == Some(',') {
                self.i += 1;
                self.skip_ws();
                a2 = match self.peek() {
                    Some('+') => {
                        self.i += 1;
                        Some(Addr2::Plus(self.number().unwrap_or(0)))
                    }
                    Some('~') => {
                        self.i += 1;
                        Some(Addr2::Multiple(self.number().unwrap_or(0)))
                    }
                    _ => match self.addr()? {
                        Some(a) => Some(Addr2::To(a)),
                        None => return Err(err_at(self.i, "unexpected `,'")),
                    },
                };
            }
            self.skip_ws();
            let mut neg = false;
            while self.peek() == Some('!') {
                neg = true;
                self.i += 1;
                self.skip_ws();
            }
            let Some(c) = self.peek() else {
                return Err(err_at(self.i, "missing command"));
            };
            self.i += 1;
            let kind = match c {
                '{' => {
                    open.push(cmds.len());
                    Kind::Block(0)
                }
                '}' => {
                    let Some(start) = open.pop() else {
                        return Err(err_at(self.i, "unexpected `}'"));
                    };
                    let end = cmds.len();
                    cmds[start].kind = Kind::Block(end);
                    Kind::EndBlock
                }
                's' => {
                    let Some(d) = self.peek() else {
                        return Err(err_at(self.i, "unterminated `s' command"));
                    };
                    self.i += 1;
                    let pat = self
                        .delimited(d, true)
                        .map_err(|_| err_at(self.i, "unterminated `s' command"))?;
                    let rep = self
                        .delimited(d, true)
                        .map_err(|_| err_at(self.i, "unterminated `s' command"))?;
                    let (mut global, mut nth, mut print, mut icase) = (false, 1, false, false);
                    loop {
                        match self.peek() {
                            Some('g') => global = true,
                            Some('p') => print = true,
                            Some('i' | 'I') => icase = true,
                            Some('m' | 'M') => {}
                            Some('e') => {
                                return Err(err_at(self.i + 1, "unknown option to `s'"));
                            }
                            Some(c) if c.is_ascii_digit() => {
                                nth = self.number().unwrap_or(1).max(1);
                                continue;
                            }
                            _ => break,
                        }
                        self.i += 1;
                    }
                    let re = if pat.is_empty() {
                        None
                    } else {
                        Some(
                            posix_re::compile(&pat, self.extended, icase)
                                .map_err(|e| err_at(self.i, &e))?,
                        )
                    };
                    Kind::S {
                        re,
                        repl: Self::replacement(&rep),
                        global,
                        nth,
                        print,
                    }
                }
                'y' => {
                    let Some(d) = self.peek() else {
                        return Err(err_at(self.i, "unterminated `y' command"));
                    };
                    self.i += 1;
                    let a = self
                        .delimited(d, false)
                        .map_err(|_| err_at(self.i, "unterminated `y' command"))?;
                    let b = self
                        .delimited(d, false)
                        .map_err(|_| err_at(self.i, "unterminated `y' command"))?;
                    let unesc = |s: &str| s.replace("\\\\", "\\");
                    let (a, b): (Vec<char>, Vec<char>) =
                        (unesc(&a).chars().collect(), unesc(&b).chars().collect());
                    if a.len() != b.len() {
                        return Err(err_at(
                            self.i,
                            "strings for `y' command are different lengths",
                        ));
                    }
                    let mut map: [u8; 256] = std::array::from_fn(|i| i as u8);
                    for (x, y) in a.iter().zip(&b) {
                        if let (Ok(x), Ok(y)) = (u8::try_from(*x as u32), u8::try_from(*y as u32)) {
                            map[x as usize] = y;
                        }
                    }
                    Kind::Y(map)
                }
                'p' => Kind::Print,
                'P' => Kind::PrintFirst,
                'd' => Kind::Delete,
                'D' => Kind::DeleteFirst,
                'n' => Kind::Next,
                'N' => Kind::NextAppend,
                'q' | 'Q' => {
                    self.skip_ws();
                    let code = self.number().unwrap_or(0);
                    Kind::Quit(i32::try_from(code).unwrap_or(0), c == 'q')
                }
                '=' => Kind::LineNo,
                'a' => Kind::Append(self.text_arg()),
                'i' => Kind::Insert(self.text_arg()),
                'c' => Kind::Change(self.text_arg()),
                'h' => Kind::Hold,
                'H' => Kind::HoldAppend,
                'g' => Kind::Get,
                'G' => Kind::GetAppend,
                'x' => Kind::Exchange,
                'l' => Kind::List,
                'z' => Kind::Zap,
                ':' => {
                    if a1.is_some() {
                        return Err(err_at(self.i, ": doesn't want any addresses"));
                    }
                    let l = self.label();
                    if l.is_none() {
                        return Err(err_at(self.i, "\":\" lacks a label"));
                    }
                    cmds.push(Cmd {
                        a1: None,
                        a2: None,
                        neg: false,
                        kind: Kind::Label,
                    });
                    // The label's name is kept in a parallel entry.
                    cmds.push(Cmd {
                        a1: None,
                        a2: None,
                        neg: false,
                        kind: Kind::Branch(Some(format!(":{}", l.unwrap_or_default()))),
                    });
                    if self.peek() == Some(';') {
                        self.i += 1;
                    }
                    continue;
                }
                'b' => Kind::Branch(self.label()),
                't' => Kind::BranchIf(self.label(), true),
                'T' => Kind::BranchIf(self.label(), false),
                'r' | 'R' => {
                    self.skip_ws();
                    let start = self.i;
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.i += 1;
                    }
                    Kind::ReadFile(self.s[start..self.i].iter().collect())
                }
                'w' | 'W' => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.i += 1;
                    }
                    Kind::Label
                }
                'e' => return Err(err_at(self.i, "e/r/w commands disabled in sandbox mode")),
                other => return Err(err_at(self.i, &format!("unknown command: `{other}'"))),
            };
            let text_cmd = matches!(
                kind,
                Kind::Append(_) | Kind::Insert(_) | Kind::Change(_) | Kind::ReadFile(_)
            );
            let is_branch = matches!(kind, Kind::Branch(_) | Kind::BranchIf(..));
            cmds.push(Cmd { a1, a2, neg, kind });
            if !text_cmd && !matches!(c, '{') {
                if is_branch && self.peek() == Some('}') {
                    continue;
                }
                self.end_of_command()?;
            }
        }
        if !open.is_empty() {
            return Err(err_at(self.i, "unmatched `{'"));
        }
        Ok(cmds)
    }
}

/// The parts of the program that change while it runs.
struct Run<'a> {
    st: &'a State,
    cmds: Vec<Cmd>,
    active: Vec<Option<usize>>,
    last_re: Option<Regex>,
    lines: Vec<&'a [u8]>,
    /// Whether the input's last line ended with a newline.
    final_newline: bool,
    idx: usize,
    quiet: bool,
    out: Vec<u8>,
    append_queue: Vec<u8>,
    ctx: &'a Ctx<'a>,
}

fn grow(st: &State, n: usize) -> bool {
    st.budget.take_data(n) == n
}

impl Run<'_> {
    fn re<'r>(&'r mut self, re: &'r Option<Regex>) -> Option<Regex> {
        match re {
            Some(r) => {
                self.last_re = Some(r.clone());
                Some(r.clone())
            }
            None => self.last_re.clone(),
        }
    }

    fn matches(&mut self, a: &Addr, ps: &[u8]) -> bool {
        let n = self.idx + 1;
        match a {
            Addr::Line(l) => n == *l,
            Addr::Last => self.idx + 1 >= self.lines.len(),
            Addr::Re(r) => {
                let r = r.clone();
                self.re(&r).is_some_and(|r| r.is_match(ps))
            }
            Addr::Step(first, step) => {
                if *step == 0 {
                    n == *first
                } else {
                    n >= *first && (n - *first).is_multiple_of(*step)
                }
            }
        }
    }

    fn selected(&mut self, k: usize, ps: &[u8]) -> bool {
        let cmd = self.cmds[k].clone();
        let Some(a1) = &cmd.a1 else {
            return !cmd.neg;
        };
        let n = self.idx + 1;
        let hit = match &cmd.a2 {
            None => self.matches(a1, ps),
            Some(a2) => {
                if let Some(end) = self.active[k] {
                    // In a range: does this line end it?
                    let ends = match a2 {
                        Addr2::To(Addr::Line(_)) | Addr2::Plus(_) | Addr2::Multiple(_) => n >= end,
                        Addr2::To(a) => self.matches(a, ps),
                    };
                    if ends {
                        self.active[k] = None;
                    }
                    true
                } else if self.matches(a1, ps) {
                    let end = match a2 {
                        Addr2::To(Addr::Line(l)) => Some(*l),
                        Addr2::Plus(p) => Some(n + p),
                        Addr2::Multiple(m) => Some(if *m == 0 {
                            n
                        } else {
                            n.div_ceil(*m).max(1) * *m
                        }),
                        _ => None,
                    };
                    match end {
                        Some(e) if e <= n => {}
                        Some(e) => self.active[k] = Some(e),
                        None => self.active[k] = Some(usize::MAX),
                    }
                    true
                } else {
                    false
                }
            }
        };
        hit != cmd.neg
    }

    fn emit(&mut self, data: &[u8], newline: bool) {
        if self.out.len() < MAX_BUFFER {
            self.out.extend_from_slice(data);
            if newline {
                self.out.push(b'\n');
            }
        }
    }

    fn substitute(&mut self, ps: &mut Vec<u8>, k: usize) -> bool {
        let Kind::S {
            re,
            repl,
            global,
            nth,
            print,
        } = self.cmds[k].kind.clone()
        else {
            return false;
        };
        let Some(re) = self.re(&re) else {
            return false;
        };
        let mut res = Vec::with_capacity(ps.len());
        let mut last = 0;
        let mut count = 0;
        let mut done = false;
        for caps in re.captures_iter(ps) {
            if !self.st.budget.iterations(1) {
                return false;
            }
            let Some(m) = caps.get(0) else { continue };
            count += 1;
            if count < nth {
                continue;
            }
            res.extend_from_slice(&ps[last..m.start()]);
            expand(&repl, &caps, &mut res);
            last = m.end();
            done = true;
            if !global {
                break;
            }
            if res.len() > MAX_BUFFER {
                break;
            }
        }
        if !done {
            return false;
        }
        res.extend_from_slice(&ps[last..]);
        if res.len() > ps.len() && !grow(self.st, res.len() - ps.len()) {
            return false;
        }
        *ps = res;
        if print {
            let p = ps.clone();
            self.emit(&p, true);
        }
        true
    }

    fn flush_appends(&mut self) {
        let q = std::mem::take(&mut self.append_queue);
        self.emit(&q, false);
    }

    fn end_cycle(&mut self, ps: &[u8], autoprint: bool) {
        if autoprint && !self.quiet {
            let nl = self.idx + 1 < self.lines.len() || self.final_newline;
            self.emit(ps, nl);
        }
        self.flush_appends();
    }

    /// Runs the program over all lines; the exit status.
    fn run(&mut self) -> i32 {
        let mut hold: Vec<u8> = Vec::new();
        let mut ps: Vec<u8>;
        self.idx = 0;
        let mut restart_with: Option<Vec<u8>> = None;
        while self.idx < self.lines.len() {
            ps = match restart_with.take() {
                Some(p) => p,
                None => self.lines[self.idx].to_vec(),
            };
            let mut pc = 0;
            let mut subst_flag = false;
            let mut autoprint = true;
            let mut quit: Option<(i32, bool)> = None;
            let mut restart = false;
            while pc < self.cmds.len() {
                if !self.st.budget.iterations(1) || self.out.len() >= MAX_BUFFER {
                    return 0;
                }
                if !self.selected(pc, &ps) {
                    pc = match self.cmds[pc].kind {
                        Kind::Block(end) => end + 1,
                        _ => pc + 1,
                    };
                    continue;
                }
                let kind = self.cmds[pc].kind.clone();
                pc += 1;
                match kind {
                    Kind::Block(_) | Kind::EndBlock | Kind::Label => {}
                    Kind::S { .. } => {
                        if self.substitute(&mut ps, pc - 1) {
                            subst_flag = true;
                        }
                    }
                    Kind::Y(map) => {
                        for b in &mut ps {
                            *b = map[*b as usize];
                        }
                    }
                    Kind::Print => {
                        let p = ps.clone();
                        self.emit(&p, true);
                    }
                    Kind::PrintFirst => {
                        let end = ps.iter().position(|&b| b == b'\n').unwrap_or(ps.len());
                        let p = ps[..end].to_vec();
                        self.emit(&p, true);
                    }
                    Kind::Delete => {
                        autoprint = false;
                        break;
                    }
                    Kind::DeleteFirst => {
                        if let Some(i) = ps.iter().position(|&b| b == b'\n') {
                            restart_with = Some(ps[i + 1..].to_vec());
                            restart = true;
                        }
                        autoprint = false;
                        break;
                    }
                    Kind::Next => {
                        if self.idx + 1 >= self.lines.len() {
                            // No next line: GNU sed prints and exits without running the rest.
                            break;
                        }
                        self.end_cycle(&ps, true);
                        self.idx += 1;
                        ps = self.lines[self.idx].to_vec();
                    }
                    Kind::NextAppend => {
                        if self.idx + 1 >= self.lines.len() {
                            break;
                        }
                        self.flush_appends();
                        self.idx += 1;
                        let next = self.lines[self.idx];
                        if !grow(self.st, next.len() + 1) {
                            return 0;
                        }
                        ps.push(b'\n');
                        ps.extend_from_slice(next);
                    }
                    Kind::Quit(code, print) => {
                        quit = Some((code, print));
                        autoprint = print;
                        break;
                    }
                    Kind::LineNo => {
                        let s = format!("{}\n", self.idx + 1);
                        self.emit(s.as_bytes(), false);
                    }
                    Kind::Append(t) => self.append_queue.extend_from_slice(&t),
                    Kind::ReadFile(f) => {
                        if let Ok(d) = load(self.st, &f, self.ctx) {
                            self.append_queue.extend_from_slice(&d);
                        }
                    }
                    Kind::Insert(t) => self.emit(&t, false),
                    Kind::Change(t) => {
                        // In a range, the text replaces the whole range (printed at its end).
                        let k = pc - 1;
                        if self.cmds[k].a2.is_none() || self.active[k].is_none() {
                            self.emit(&t, false);
                        }
                        autoprint = false;
                        break;
                    }
                    Kind::Hold => {
                        if !grow(self.st, ps.len()) {
                            return 0;
                        }
                        hold = ps.clone();
                    }
                    Kind::HoldAppend => {
                        if !grow(self.st, ps.len() + 1) {
                            return 0;
                        }
                        hold.push(b'\n');
                        hold.extend_from_slice(&ps);
                    }
                    Kind::Get => {
                        if !grow(self.st, hold.len()) {
                            return 0;
                        }
                        ps = hold.clone();
                    }
                    Kind::GetAppend => {
                        if !grow(self.st, hold.len() + 1) {
                            return 0;
                        }
                        ps.push(b'\n');
                        ps.extend_from_slice(&hold);
                    }
                    Kind::Exchange => std::mem::swap(&mut ps, &mut hold),
                    Kind::Zap => ps.clear(),
                    Kind::List => {
                        let mut s = String::new();
                        for &b in &ps {
                            match b {
                                b'\\' => s.push_str("\\\\"),
                                b'\n' => s.push_str("\\n"),
                                b'\t' => s.push_str("\\t"),
                                7 => s.push_str("\\a"),
                                8 => s.push_str("\\b"),
                                12 => s.push_str("\\f"),
                                13 => s.push_str("\\r"),
                                11 => s.push_str("\\v"),
                                0x20..=0x7e => s.push(b as char),
                                _ => s.push_str(&format!("\\{b:03o}")),
                            }
                        }
                        // Lines are folded at 69 characters plus `\`.
                        let chars: Vec<char> = s.chars().collect();
                        for chunk in chars.chunks(69) {
                            let part: String = chunk.iter().collect();
                            if chunk.len() == 69 {
                                self.emit(format!("{part}\\\n").as_bytes(), false);
                            } else {
                                self.emit(part.as_bytes(), false);
                            }
                        }
                        self.emit(b"$\n", false);
                    }
                    Kind::Branch(label) | Kind::BranchIf(label, _)
                        if label.as_deref().is_some_and(|l| l.starts_with(':')) => {}
                    Kind::Branch(label) => pc = self.jump(label.as_deref()),
                    Kind::BranchIf(label, on_success) => {
                        if subst_flag == on_success {
                            pc = self.jump(label.as_deref());
                        }
                        subst_flag = false;
                    }
                }
            }
            self.end_cycle(&ps, autoprint);
            if let Some((code, _)) = quit {
                return code;
            }
            if restart {
                // `D` with more in the pattern space starts over without reading.
                if restart_with.as_ref().is_some_and(Vec::is_empty) {
                    restart_with = None;
                    self.idx += 1;
                }
                continue;
            }
            self.idx += 1;
        }
        0
    }

    /// Where a branch goes: after the named label, or the end of the program.
    fn jump(&self, label: Option<&str>) -> usize {
        let Some(l) = label else {
            return self.cmds.len();
        };
        let want = format!(":{l}");
        self.cmds
            .iter()
            .position(|c| matches!(&c.kind, Kind::Branch(Some(n)) if *n == want))
            .map_or(self.cmds.len(), |p| p + 1)
    }
}

fn expand(repl: &[Repl], caps: &regex::bytes::Captures<'_>, out: &mut Vec<u8>) {
    #[derive(PartialEq)]
    enum Case {
        None,
        Upper,
        Lower,
    }
    let mut case = Case::None;
    let mut one: Option<bool> = None;
    let push = |data: &[u8], case: &Case, one: &mut Option<bool>, out: &mut Vec<u8>| {
        for (i, &b) in data.iter().enumerate() {
            let b = match (i, one.take_if(|_| i == 0)) {
                (0, Some(true)) => b.to_ascii_uppercase(),
                (0, Some(false)) => b.to_ascii_lowercase(),
                _ => match case {
                    Case::Upper => b.to_ascii_uppercase(),
                    Case::Lower => b.to_ascii_lowercase(),
                    Case::None => b,
                },
            };
            out.push(b);
        }
    };
    for r in repl {
        match r {
            Repl::Lit(l) => push(l, &case, &mut one, out),
            Repl::Group(g) => {
                if let Some(m) = caps.get(*g) {
                    push(m.as_bytes(), &case, &mut one, out);
                }
            }
            Repl::Upper => case = Case::Upper,
            Repl::Lower => case = Case::Lower,
            Repl::EndCase => case = Case::None,
            Repl::UpperOne => one = Some(true),
            Repl::LowerOne => one = Some(false),
        }
    }
}

pub(super) fn run(st: &mut State, args: &[String], ctx: &Ctx<'_>) -> Out {
    let mut scripts: Vec<String> = Vec::new();
    let mut files: Vec<String> = Vec::new();
    let (mut quiet, mut extended, mut in_place, mut separate) = (false, false, None, false);
    let mut i = 0;
    let usage = "Usage: sed [OPTION]... {script-only-if-no-other-script} [input-file]...\n\n";
    while i < args.len() {
        let a = &args[i];
        i += 1;
        match a.as_str() {
            "-n" | "--quiet" | "--silent" => quiet = true,
            "-E" | "-r" | "--regexp-extended" => extended = true,
            "-s" | "--separate" => separate = true,
            "-u" | "--unbuffered" | "-z" | "--posix" | "--debug" | "--sandbox" => {}
            "-e" | "--expression" => match args.get(i) {
                Some(s) => {
                    scripts.push(s.clone());
                    i += 1;
                }
                None => {
                    return Out::fail(
                        1,
                        format!("sed: option requires an argument -- 'e'\n{usage}"),
                    );
                }
            },
            "-f" | "--file" => match args.get(i) {
                Some(f) => {
                    i += 1;
                    match load(st, f, ctx) {
                        Ok(d) => scripts.push(
                            String::from_utf8_lossy(&d)
                                .trim_end_matches('\n')
                                .to_owned(),
                        ),
                        Err(e) => {
                            return Out::fail(
                                1,
                                format!("sed: couldn't open file {f}: {}\n", e.text()),
                            );
                        }
                    }
                }
                None => {
                    return Out::fail(
                        1,
                        format!("sed: option requires an argument -- 'f'\n{usage}"),
                    );
                }
            },
            "--" => {
                files.extend(args[i..].iter().cloned());
                break;
            }
            s if s.starts_with("--in-place") => {
                in_place = Some(
                    s.split_once('=')
                        .map(|(_, v)| v.to_owned())
                        .unwrap_or_default(),
                );
                separate = true;
            }
            s if s.starts_with("--expression=") => scripts.push(s[13..].to_owned()),
            s if s.starts_with('-') && s.len() > 1 && !s.starts_with("--") => {
                // Clustered short options: `-ne`, `-i.bak`, `-Ei`.
                let letters: Vec<char> = s[1..].chars().collect();
                let mut k = 0;
                while k < letters.len() {
                    match letters[k] {
                        'n' => quiet = true,
                        'E' | 'r' => extended = true,
                        's' => separate = true,
                        'u' | 'z' => {}
                        'i' => {
                            in_place = Some(letters[k + 1..].iter().collect());
                            separate = true;
                            break;
                        }
                        'e' => {
                            let rest: String = letters[k + 1..].iter().collect();
                            if rest.is_empty() {
                                match args.get(i) {
                                    Some(s) => {
                                        scripts.push(s.clone());
                                        i += 1;
                                    }
                                    None => {
                                        return Out::fail(
                                            1,
                                            format!(
                                                "sed: option requires an argument -- 'e'\n{usage}"
                                            ),
                                        );
                                    }
                                }
                            } else {
                                scripts.push(rest);
                            }
                            break;
                        }
                        c => {
                            return Out::fail(1, format!("sed: invalid option -- '{c}'\n{usage}"));
                        }
                    }
                    k += 1;
                }
            }
            s if s.starts_with("--") => {
                return Out::fail(1, format!("sed: unrecognized option '{s}'\n{usage}"));
            }
            _ => files.push(a.clone()),
        }
    }
    if scripts.is_empty() {
        if files.is_empty() {
            return Out::fail(1, usage.to_owned());
        }
        scripts.push(files.remove(0));
    }
    let script = scripts.join("\n");
    if !st.budget.iterations(script.len() as u64 / 8 + 1) {
        return Out::default();
    }
    let chars: Vec<char> = script.chars().collect();
    let mut p = Parser {
        s: &chars,
        i: 0,
        extended,
    };
    let cmds = match p.parse() {
        Ok(c) => c,
        Err(e) => return Out::fail(1, format!("sed: {e}\n")),
    };
    if in_place.is_some() && files.is_empty() {
        return Out::fail(1, "sed: no input files\n");
    }
    let mut o = Out::default();
    // Inputs: one stream of all files, or each file alone (-s, -i).
    let mut inputs: Vec<(Option<String>, Vec<u8>)> = Vec::new();
    let mut joined = Vec::new();
    if files.is_empty() {
        inputs.push((
            None,
            super::super::commands::take(st, ctx.stdin, MAX_BUFFER).to_vec(),
        ));
    } else {
        for f in &files {
            if !st.budget.iterations(1) {
                break;
            }
            match load(st, f, ctx) {
                Ok(d) => {
                    if separate {
                        inputs.push((Some(f.clone()), d));
                    } else {
                        joined.extend_from_slice(
                            &d[..d.len().min(MAX_BUFFER.saturating_sub(joined.len()))],
                        );
                    }
                }
                Err(e) => {
                    let msg = if e == super::super::fs::FsError::IsDir {
                        format!("sed: couldn't edit {f}: not a regular file")
                    } else {
                        format!("sed: can't read {f}: {}", e.text())
                    };
                    o.eline(&msg);
                    o.status = 2;
                }
            }
        }
        if !separate {
            inputs.push((None, joined));
        }
    }
    let n_cmds = cmds.len();
    for (name, data) in inputs {
        let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
        if data.ends_with(b"\n") || data.is_empty() {
            lines.pop();
        }
        if !st.budget.iterations(lines.len() as u64) {
            break;
        }
        let st_ref: &State = st;
        let mut r = Run {
            st: st_ref,
            cmds: cmds.clone(),
            active: vec![None; n_cmds],
            last_re: None,
            lines,
            final_newline: data.ends_with(b"\n"),
            idx: 0,
            quiet,
            out: Vec::new(),
            append_queue: Vec::new(),
            ctx,
        };
        let code = r.run();
        let result = std::mem::take(&mut r.out);
        drop(r);
        match (&in_place, name) {
            (Some(suffix), Some(f)) => {
                let path = path_of(st, &f);
                let (uid, now) = (st.uid, st.now);
                if !suffix.is_empty() && may_write(st, &path) {
                    // `-i.bak` keeps the original; a `*` in the suffix is the file's name.
                    let (dir, base) = super::super::fs::split(&path);
                    let backup = if suffix.contains('*') {
                        let b = suffix.replace('*', base);
                        if b.contains('/') {
                            path_of(st, &b)
                        } else {
                            format!("{}/{b}", dir.trim_end_matches('/'))
                        }
                    } else {
                        format!("{path}{suffix}")
                    };
                    if st.budget.take_data(data.len()) == data.len() {
                        let _ = st.fs.write(&backup, &data, false, uid, now);
                    }
                }
                let w = if may_write(st, &path) {
                    st.fs.write(&path, &result, false, uid, now)
                } else {
                    Err(super::super::fs::FsError::Denied)
                };
                if let Err(e) = w {
                    o.eline(&format!(
                        "sed: couldn't open temporary file {}/sedXXXXXX: {}",
                        super::super::fs::split(&path).0,
                        e.text()
                    ));
                    o.status = 4;
                    return o;
                }
            }
            _ => {
                o.put(&result);
            }
        }
        if code != 0 {
            o.status = code;
            break;
        }
    }
    o
}
