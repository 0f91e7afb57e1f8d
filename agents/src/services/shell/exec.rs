//! The executor of parsed command lines: lists, `&&`/`||`, `&`, pipelines, subshells,
//! groups, loops, `if`, `case`, functions, `[[ ]]`, `(( ))`, redirections and
//! here-documents, over brush-parser's syntax tree.
//!
//! Everything runs in this process over the session's [`State`]: a pipeline's stages run
//! one after the other with the previous stage's output as input; `$( )`, `( )` and the
//! stages of a pipeline run on a copy of the shell's variables, as bash's subshells do.
//! Every command, loop iteration, function call and substitution is charged to the
//! line's work budget before it runs; the walk of the tree is at most [`MAX_NEST`] deep.

use super::budget::MAX_BUFFER;
use super::commands::{self, Ctx, Io, Out};
use super::expand::{self, Res};
use super::parse::{self, Open, Syntax};
use super::{State, builtins};
use brush_parser::ast::{
    self, AndOr, Command, CompoundCommand, CompoundList, IoFileRedirectKind, IoFileRedirectTarget,
    IoRedirect, Pipeline, SeparatorOperator,
};
use std::sync::Arc;

/// `bash -c`'s error prefixes name the script line of the command (`err_prefix` is a
/// `&'static str` shared with every command, so the texts are fixed).
const LINE_PREFIXES: [&str; 64] = [
    "bash: line 1: ",
    "bash: line 2: ",
    "bash: line 3: ",
    "bash: line 4: ",
    "bash: line 5: ",
    "bash: line 6: ",
    "bash: line 7: ",
    "bash: line 8: ",
    "bash: line 9: ",
    "bash: line 10: ",
    "bash: line 11: ",
    "bash: line 12: ",
    "bash: line 13: ",
    "bash: line 14: ",
    "bash: line 15: ",
    "bash: line 16: ",
    "bash: line 17: ",
    "bash: line 18: ",
    "bash: line 19: ",
    "bash: line 20: ",
    "bash: line 21: ",
    "bash: line 22: ",
    "bash: line 23: ",
    "bash: line 24: ",
    "bash: line 25: ",
    "bash: line 26: ",
    "bash: line 27: ",
    "bash: line 28: ",
    "bash: line 29: ",
    "bash: line 30: ",
    "bash: line 31: ",
    "bash: line 32: ",
    "bash: line 33: ",
    "bash: line 34: ",
    "bash: line 35: ",
    "bash: line 36: ",
    "bash: line 37: ",
    "bash: line 38: ",
    "bash: line 39: ",
    "bash: line 40: ",
    "bash: line 41: ",
    "bash: line 42: ",
    "bash: line 43: ",
    "bash: line 44: ",
    "bash: line 45: ",
    "bash: line 46: ",
    "bash: line 47: ",
    "bash: line 48: ",
    "bash: line 49: ",
    "bash: line 50: ",
    "bash: line 51: ",
    "bash: line 52: ",
    "bash: line 53: ",
    "bash: line 54: ",
    "bash: line 55: ",
    "bash: line 56: ",
    "bash: line 57: ",
    "bash: line 58: ",
    "bash: line 59: ",
    "bash: line 60: ",
    "bash: line 61: ",
    "bash: line 62: ",
    "bash: line 63: ",
    "bash: line 64: ",
];

/// Deepest walk of nested compound commands, function calls and substitutions.
const MAX_NEST: u32 = 48;

/// Control flow leaving a command early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Break(u32),
    Continue(u32),
    Return,
    /// An expansion error: the rest of the line does not run (the status is `$?`).
    Abort(i32),
}

/// The command stops: the budget ran out or `st.flow`/`st.exit` says why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stop;

/// Standard input of the command being run, shared by the commands of a compound
/// command (`while read l; do …; done < f`): what one reads the next does not see.
#[derive(Debug, Default)]
pub(crate) struct Input {
    data: Vec<u8>,
    pos: usize,
}

impl Input {
    fn new(data: Vec<u8>) -> Input {
        Input { data, pos: 0 }
    }

    pub(crate) fn rest(&self) -> &[u8] {
        &self.data[self.pos.min(self.data.len())..]
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.data.len());
    }
}

fn stopped(st: &State) -> bool {
    st.budget.is_exhausted() || st.exit.is_some() || st.flow.is_some()
}

/// Stops the line on the depth dimension (the walk would go deeper than allowed).
fn too_deep(st: &State) {
    while st.budget.enter() {}
}

/// Runs a whole text at the top of a line (a typed line, an exec request, `sh -c`).
pub(crate) fn run_script(st: &mut State, text: &str, io: &mut Io) {
    if !st.budget.command() {
        return;
    }
    match parse::parse(text) {
        Ok(p) => run_program(st, io, &p),
        Err(Syntax::TooDeep) => too_deep(st),
        Err(Syntax::Incomplete(Open::Eof))
            if !st.tty
                && let Some((fixed, warning)) = close_heredoc(text) =>
        {
            // `bash -c` ends an open here-document at the end of the script, warns, and
            // runs it.
            io.push(true, warning.as_bytes());
            if let Ok(p) = parse::parse(&fixed) {
                run_program(st, io, &p);
            }
        }
        Err(e) => {
            // bash runs the complete commands before the error, then reports it.
            let lines: Vec<&str> = text.split('\n').collect();
            let upto = match &e {
                Syntax::Unexpected { line, .. } => line.saturating_sub(1),
                _ => lines.len().saturating_sub(1),
            };
            for n in (1..=upto.min(lines.len())).rev().take(8) {
                if let Ok(p) = parse::parse(&lines[..n].join("\n")) {
                    run_program(st, io, &p);
                    break;
                }
            }
            if st.exit.is_some() || st.budget.is_exhausted() {
                return;
            }
            let msg = syntax_message(st, &e, &lines);
            io.push(true, msg.as_bytes());
            st.status = 2;
        }
    }
}

/// `sh -c SCRIPT ARGS…`: the script runs whole (multi-line compound commands work) as a
/// child shell: its variables, functions, directory and positional parameters do not
/// outlive it. The copy is charged like a subshell's.
pub(crate) fn run_child(st: &mut State, script: &str, args: &[String], io: &mut Io) {
    let Some(saved) = Saved::take(st) else {
        return;
    };
    st.positional = args.to_vec();
    let (loops, functions) = (st.loops, st.functions_running);
    st.loops = 0;
    st.functions_running = 0;
    run_script(st, script, io);
    st.loops = loops;
    st.functions_running = functions;
    // Nothing of the child's control flow reaches its parent.
    if let Some(Flow::Abort(code)) = st.flow.take() {
        st.status = code;
    }
    saved.restore(st);
}

/// The script with its last here-document closed, and bash's warning about it.
fn close_heredoc(text: &str) -> Option<(String, String)> {
    let at = text
        .match_indices("<<")
        .map(|(i, _)| i)
        .filter(|&i| !text[i + 2..].starts_with('<') && (i == 0 || !text[..i].ends_with('<')))
        .last()?;
    let rest = text[at + 2..].trim_start_matches('-').trim_start();
    let rest = rest.trim_start_matches(['\'', '"', '\\']);
    let delim: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    if delim.is_empty() {
        return None;
    }
    let fixed = format!("{text}\n{delim}");
    parse::parse(&fixed).ok()?;
    let line = text[..at].matches('\n').count() + 1;
    let lines = text.split('\n').count();
    let prefix = format!("bash: line {lines}: ");
    Some((
        fixed,
        format!(
            "{prefix}warning: here-document at line {line} delimited by end-of-file (wanted `{delim}')\n"
        ),
    ))
}

/// bash's text for a syntax error, interactive (`-bash: …`) or `bash -c` (two lines).
pub(crate) fn syntax_message(st: &State, e: &Syntax, lines: &[&str]) -> String {
    if let Some(m) = super::busybox::syntax_message(st, e) {
        return m;
    }
    let n = lines.len();
    let (head, line) = match e {
        Syntax::Unexpected { token, line } => (
            format!("syntax error near unexpected token `{token}'"),
            Some(*line),
        ),
        Syntax::Incomplete(Open::Matching(c)) => {
            let line = if *c == ')' { n + 1 } else { n };
            (
                format!("unexpected EOF while looking for matching `{c}'"),
                Some(line),
            )
        }
        Syntax::Incomplete(Open::Eof) => {
            ("syntax error: unexpected end of file".into(), Some(n + 1))
        }
        Syntax::TooDeep => ("syntax error: nesting too deep".into(), None),
    };
    if st.tty {
        return format!("-bash: {head}\n");
    }
    let line = line.unwrap_or(1);
    let mut msg = format!("bash: -c: line {line}: {head}\n");
    if let (Syntax::Unexpected { .. }, Some(src)) = (e, lines.get(line.saturating_sub(1))) {
        msg.push_str(&format!("bash: -c: line {line}: `{src}'\n"));
    }
    msg
}

fn run_program(st: &mut State, io: &mut Io, p: &ast::Program) {
    let mut input = Input::default();
    for c in &p.complete_commands {
        if stopped(st) {
            break;
        }
        list(st, io, &mut input, c);
    }
    // An expansion error ends the line with its status.
    if let Some(Flow::Abort(s)) = st.flow {
        st.status = s;
        if !st.tty && st.depth_of_scripts == 0 {
            st.exit = Some(s);
        }
    }
    if st.depth_of_scripts == 0 {
        st.flow = None;
    }
}

/// Runs `text` (a `$( )` or backquotes) one level deeper, on a copy of the variables;
/// returns its stdout.
pub(crate) fn capture(st: &mut State, io: &mut Io, text: &str) -> Res<Vec<u8>> {
    if !st.budget.enter() {
        return Err(Stop);
    }
    let saved = match Saved::take(st) {
        Some(s) => s,
        None => {
            st.budget.leave();
            return Err(Stop);
        }
    };
    let mut sub = Io::new(false, MAX_BUFFER);
    nested(st, &mut sub, text);
    saved.restore(st);
    st.budget.leave();
    if let Some(code) = st.exit.take() {
        st.status = code;
    }
    st.flow = None;
    st.subst_status = Some(st.status);
    io.capped |= sub.capped;
    let (out, err) = sub.into_parts();
    io.push(true, &err);
    if st.budget.is_exhausted() {
        return Err(Stop);
    }
    Ok(out)
}

/// Parses and runs text inside the line (`$( )`, `eval`, `source`): syntax errors are
/// reported, an expansion error stops only this text.
fn nested(st: &mut State, io: &mut Io, text: &str) {
    if !st.budget.command() {
        return;
    }
    st.nest += 1;
    if st.nest > MAX_NEST {
        too_deep(st);
    } else {
        match parse::parse(text) {
            Ok(p) => {
                st.depth_of_scripts += 1;
                let mut input = Input::default();
                for c in &p.complete_commands {
                    if stopped(st) {
                        break;
                    }
                    list(st, io, &mut input, c);
                }
                st.depth_of_scripts -= 1;
            }
            Err(Syntax::TooDeep) => too_deep(st),
            Err(e) => {
                let lines: Vec<&str> = text.split('\n').collect();
                let msg = syntax_message(st, &e, &lines);
                io.push(true, msg.as_bytes());
                st.status = 2;
            }
        }
    }
    st.nest -= 1;
}

/// What a subshell must not change in its parent.
pub(crate) struct Saved {
    env: Vec<(String, String)>,
    unexported: Vec<String>,
    cwd: String,
    oldpwd: String,
    positional: Vec<String>,
    functions: Vec<(String, Arc<ast::FunctionBody>)>,
    aliases: Vec<(String, String)>,
    errexit: bool,
}

impl Saved {
    /// The copy is data too: charged before it is made.
    pub(crate) fn take(st: &State) -> Option<Saved> {
        let bytes: usize = st.env.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
            + st.positional.iter().map(String::len).sum::<usize>()
            + st.functions.len() * 64;
        if st.budget.take_data(bytes) < bytes {
            return None;
        }
        Some(Saved {
            env: st.env.clone(),
            unexported: st.unexported.clone(),
            cwd: st.cwd.clone(),
            oldpwd: st.oldpwd.clone(),
            positional: st.positional.clone(),
            functions: st.functions.clone(),
            aliases: st.aliases.clone(),
            errexit: st.errexit,
        })
    }

    pub(crate) fn restore(self, st: &mut State) {
        st.env = self.env;
        st.unexported = self.unexported;
        st.cwd = self.cwd;
        st.oldpwd = self.oldpwd;
        st.positional = self.positional;
        st.functions = self.functions;
        st.aliases = self.aliases;
        st.errexit = self.errexit;
    }
}

pub(crate) fn list(st: &mut State, io: &mut Io, inp: &mut Input, l: &CompoundList) {
    for item in &l.0 {
        if stopped(st) {
            return;
        }
        let ast::CompoundListItem(ao, sep) = item;
        match sep {
            SeparatorOperator::Async => background(st, io, ao),
            SeparatorOperator::Sequence => {
                and_or(st, io, inp, ao);
                if st.errexit
                    && st.status != 0
                    && st.conditions == 0
                    && ao.additional.is_empty()
                    && !ao.first.bang
                    && st.exit.is_none()
                {
                    st.exit = Some(st.status);
                }
            }
        }
    }
}

fn background(st: &mut State, io: &mut Io, ao: &ast::AndOrList) {
    st.jobs += 1;
    if st.next_pid == 0 {
        st.next_pid = st.fresh_pid();
    }
    st.next_pid += 1 + (st.next_pid % 7);
    let pid = st.next_pid;
    if st.tty {
        let msg = format!("[{}] {pid}\n", st.jobs);
        io.push(true, msg.as_bytes());
    }
    // The job runs now, with no input, in a subshell of its own.
    if let Some(saved) = Saved::take(st) {
        let mut input = Input::default();
        and_or(st, io, &mut input, ao);
        saved.restore(st);
        st.exit = None;
        st.flow = None;
    }
    let text = clip_text(&format!("{ao}"));
    st.done_jobs.push((st.jobs, text));
    st.last_bg = Some(pid);
    st.status = 0;
}

fn clip_text(s: &str) -> String {
    honeybee_proto::event::clamp(s.trim(), 200)
}

fn and_or(st: &mut State, io: &mut Io, inp: &mut Input, ao: &ast::AndOrList) {
    // Every pipeline but the last is a condition: `set -e` does not end the shell there.
    st.conditions += u32::from(!ao.additional.is_empty());
    pipeline(st, io, inp, &ao.first);
    let n = ao.additional.len();
    for (i, next) in ao.additional.iter().enumerate() {
        if stopped(st) {
            break;
        }
        if i + 1 == n {
            st.conditions -= 1;
        }
        match next {
            AndOr::And(p) if st.status == 0 => pipeline(st, io, inp, p),
            AndOr::Or(p) if st.status != 0 => pipeline(st, io, inp, p),
            _ => {}
        }
        if i + 1 == n {
            st.conditions += 1;
        }
    }
    st.conditions -= u32::from(n > 0);
}

fn pipeline(st: &mut State, io: &mut Io, inp: &mut Input, p: &Pipeline) {
    // A bare `!` is a pipeline of no commands (a fuzz finding through the telnet path):
    // it runs nothing and, negating the empty command's success, ends with status 1 as
    // in bash.
    if p.seq.is_empty() {
        if p.bang {
            st.status = 1;
        }
        return;
    }
    if p.bang {
        st.conditions += 1;
    }
    if p.seq.len() == 1 {
        command(st, io, inp, &p.seq[0]);
    } else {
        let last = p.seq.len() - 1;
        let mut data: Option<Vec<u8>> = None;
        for (i, c) in p.seq.iter().enumerate() {
            if st.budget.is_exhausted() {
                break;
            }
            let Some(saved) = Saved::take(st) else {
                break;
            };
            let mut own;
            let stage_in: &mut Input = match data.take() {
                Some(d) => {
                    own = Input::new(d);
                    &mut own
                }
                None => &mut *inp,
            };
            if i < last {
                let mut sub = Io::new(false, MAX_BUFFER);
                command(st, &mut sub, stage_in, c);
                io.capped |= sub.capped;
                let (out, err) = sub.into_parts();
                io.push(true, &err);
                data = Some(out);
            } else {
                command(st, io, stage_in, c);
            }
            saved.restore(st);
            if let Some(code) = st.exit.take() {
                st.status = code;
            }
            if matches!(
                st.flow,
                Some(Flow::Break(_) | Flow::Continue(_) | Flow::Return)
            ) {
                st.flow = None;
            }
            // A stage of a pipeline cannot borrow the outer input twice.
            if data.is_none() && i < last {
                data = Some(Vec::new());
            }
        }
    }
    if p.bang {
        st.conditions -= 1;
        st.status = i32::from(st.status == 0);
    }
    if p.timed.is_some() {
        io.push(true, b"\nreal\t0m0.001s\nuser\t0m0.000s\nsys\t0m0.001s\n");
    }
}

pub(crate) fn command(st: &mut State, io: &mut Io, inp: &mut Input, c: &Command) {
    match c {
        Command::Simple(s) => simple(st, io, inp, s),
        Command::Compound(cc, redirs) => {
            let r: Vec<&IoRedirect> = redirs.iter().flat_map(|l| l.0.iter()).collect();
            redirected(st, io, inp, &r, &mut |st, io, inp| {
                compound(st, io, inp, cc)
            });
        }
        Command::Function(f) => {
            let name = f.fname.value.clone();
            let body = Arc::new(f.body.clone());
            if let Some(e) = st.functions.iter_mut().find(|(n, _)| *n == name) {
                e.1 = body;
            } else if st.functions.len() < super::MAX_FUNCTIONS {
                st.functions.push((name, body));
            }
            st.status = 0;
        }
        Command::ExtendedTest(t, redirs) => {
            let r: Vec<&IoRedirect> = redirs.iter().flat_map(|l| l.0.iter()).collect();
            redirected(st, io, inp, &r, &mut |st, io, _| {
                if !st.budget.command() {
                    return;
                }
                st.nest += 1;
                let v = if st.nest > MAX_NEST {
                    too_deep(st);
                    Err(Stop)
                } else {
                    builtins::ext_test(st, io, &t.expr)
                };
                st.nest -= 1;
                if let Ok(v) = v {
                    st.status = i32::from(!v);
                } else if st.flow.is_none() {
                    st.status = 2;
                }
            });
        }
    }
}

fn compound(st: &mut State, io: &mut Io, inp: &mut Input, cc: &CompoundCommand) {
    st.nest += 1;
    if st.nest > MAX_NEST {
        too_deep(st);
    } else {
        compound_inner(st, io, inp, cc);
    }
    st.nest -= 1;
}

/// Runs a loop body; `true` when the loop must end (break, return, a stop).
fn loop_body(st: &mut State, io: &mut Io, inp: &mut Input, body: &CompoundList) -> bool {
    st.loops += 1;
    list(st, io, inp, body);
    st.loops -= 1;
    match st.flow {
        Some(Flow::Break(n)) => {
            st.flow = if n > 1 {
                Some(Flow::Break(n - 1))
            } else {
                None
            };
            true
        }
        Some(Flow::Continue(n)) => {
            if n > 1 {
                st.flow = Some(Flow::Continue(n - 1));
                true
            } else {
                st.flow = None;
                false
            }
        }
        Some(_) => true,
        None => st.budget.is_exhausted() || st.exit.is_some(),
    }
}

fn condition(st: &mut State, io: &mut Io, inp: &mut Input, l: &CompoundList) -> bool {
    st.conditions += 1;
    list(st, io, inp, l);
    st.conditions -= 1;
    st.status == 0
}

fn compound_inner(st: &mut State, io: &mut Io, inp: &mut Input, cc: &CompoundCommand) {
    match cc {
        CompoundCommand::BraceGroup(g) => list(st, io, inp, &g.list),
        CompoundCommand::Subshell(s) => {
            if !st.budget.command() {
                return;
            }
            let Some(saved) = Saved::take(st) else {
                return;
            };
            list(st, io, inp, &s.list);
            saved.restore(st);
            if let Some(code) = st.exit.take() {
                st.status = code;
            }
            if let Some(Flow::Abort(s)) = st.flow {
                st.status = s;
            }
            st.flow = None;
        }
        CompoundCommand::ForClause(f) => {
            let values = match &f.values {
                None => st.positional.clone(),
                Some(ws) => {
                    let raw: Vec<String> = ws.iter().map(|w| w.value.clone()).collect();
                    match expand::words(st, io, &raw) {
                        Ok(v) => v,
                        Err(Stop) => return,
                    }
                }
            };
            st.status = 0;
            for v in values {
                if !st.budget.iterations(1) || !st.budget.command() {
                    return;
                }
                st.set_var(&f.variable_name, &v);
                if loop_body(st, io, inp, &f.body.list) {
                    break;
                }
            }
        }
        CompoundCommand::ArithmeticForClause(f) => {
            let eval =
                |st: &mut State, io: &mut Io, e: &Option<ast::UnexpandedArithmeticExpr>| match e {
                    None => Ok(1),
                    Some(e) => {
                        let t = expand::heredoc(st, io, &e.value)?;
                        expand::arith(st, io, &t, "((: ")
                    }
                };
            if eval(st, io, &f.initializer).is_err() {
                return;
            }
            st.status = 0;
            loop {
                if !st.budget.iterations(1) || !st.budget.command() {
                    return;
                }
                match eval(st, io, &f.condition) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(_) => return,
                }
                if loop_body(st, io, inp, &f.body.list) {
                    break;
                }
                if eval(st, io, &f.updater).is_err() {
                    return;
                }
            }
        }
        CompoundCommand::CaseClause(c) => {
            let Ok(word) = expand::string(st, io, &c.value.value) else {
                return;
            };
            let w: Vec<char> = word.chars().collect();
            st.status = 0;
            let mut fall = false;
            for item in &c.cases {
                let mut hit = fall;
                if !hit {
                    for p in &item.patterns {
                        let Ok(pat) = expand::pattern(st, io, &p.value) else {
                            return;
                        };
                        let pc: Vec<char> = pat.chars().collect();
                        if !st
                            .budget
                            .iterations((pc.len() as u64 + 1) * (w.len() as u64 + 1))
                        {
                            return;
                        }
                        if expand::matches(&pc, &w) {
                            hit = true;
                            break;
                        }
                    }
                }
                if !hit {
                    continue;
                }
                if let Some(body) = &item.cmd {
                    list(st, io, inp, body);
                }
                if stopped(st) {
                    return;
                }
                match item.post_action {
                    ast::CaseItemPostAction::ExitCase => return,
                    ast::CaseItemPostAction::UnconditionallyExecuteNextCaseItem => fall = true,
                    ast::CaseItemPostAction::ContinueEvaluatingCases => fall = false,
                }
            }
        }
        CompoundCommand::IfClause(i) => {
            if condition(st, io, inp, &i.condition) {
                if !stopped(st) {
                    list(st, io, inp, &i.then);
                }
                return;
            }
            if stopped(st) {
                return;
            }
            for e in i.elses.iter().flatten() {
                match &e.condition {
                    Some(c) => {
                        if condition(st, io, inp, c) {
                            if !stopped(st) {
                                list(st, io, inp, &e.body);
                            }
                            return;
                        }
                        if stopped(st) {
                            return;
                        }
                    }
                    None => {
                        list(st, io, inp, &e.body);
                        return;
                    }
                }
            }
            st.status = 0;
        }
        CompoundCommand::WhileClause(w) | CompoundCommand::UntilClause(w) => {
            let until = matches!(cc, CompoundCommand::UntilClause(_));
            let mut status = 0;
            loop {
                if !st.budget.iterations(1) || !st.budget.command() {
                    return;
                }
                let ok = condition(st, io, inp, &w.0);
                if stopped(st) {
                    // `break` in the condition ends the loop too.
                    if matches!(st.flow, Some(Flow::Break(_))) {
                        st.flow = None;
                    }
                    break;
                }
                if ok == until {
                    break;
                }
                let end = loop_body(st, io, inp, &w.1.list);
                status = st.status;
                if end {
                    break;
                }
            }
            if st.flow.is_none() && !st.budget.is_exhausted() {
                st.status = status;
            }
        }
        CompoundCommand::Arithmetic(a) => {
            if !st.budget.command() {
                return;
            }
            let Ok(t) = expand::heredoc(st, io, &a.expr.value) else {
                return;
            };
            match expand::arith(st, io, &t, "((: ") {
                Ok(v) => st.status = i32::from(v == 0),
                Err(Stop) => {
                    // In `(( ))` an error fails the command only.
                    if let Some(Flow::Abort(_)) = st.flow {
                        st.flow = None;
                        st.status = 1;
                    }
                }
            }
        }
        CompoundCommand::Coprocess(c) => {
            let mut input = Input::default();
            command(st, io, &mut input, &c.body);
            st.status = 0;
        }
    }
}

/// Where one of stdout/stderr goes after the redirections.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Dest {
    Out,
    Err,
    File(String, bool),
    Null,
}

/// Runs `body` with `redirects` applied: stdin from a file, a here-document or a
/// here-string; stdout/stderr into files or onto each other.
fn redirected(
    st: &mut State,
    io: &mut Io,
    inp: &mut Input,
    redirects: &[&IoRedirect],
    body: &mut dyn FnMut(&mut State, &mut Io, &mut Input),
) {
    if redirects.is_empty() {
        body(st, io, inp);
        return;
    }
    let mut dest = [Dest::Out, Dest::Out, Dest::Err];
    let mut stdin: Option<Vec<u8>> = None;
    for r in redirects {
        match apply(st, io, r, &mut dest, &mut stdin) {
            Ok(()) => {}
            Err(Some(msg)) => {
                io.push(true, msg.as_bytes());
                st.status = 1;
                return;
            }
            Err(None) => return,
        }
    }
    // `> f` makes (or empties) the file before the command runs, as open(2) would.
    for d in &dest[1..] {
        if let Dest::File(f, false) = d
            && let Err(e) = commands::write_file(st, f, b"", false)
        {
            let msg = super::busybox::redirect_error(st, f, e, true)
                .unwrap_or_else(|| format!("{}{f}: {}\n", st.err_prefix, e.text()));
            io.push(true, msg.as_bytes());
            st.status = 1;
            return;
        }
    }
    let mut own;
    let inp: &mut Input = match stdin {
        Some(d) => {
            own = Input::new(d);
            &mut own
        }
        None => &mut *inp,
    };
    if dest[1] == Dest::Out && dest[2] == Dest::Err {
        body(st, io, inp);
        return;
    }
    let mut sub = Io::new(false, MAX_BUFFER);
    sub.terminal = io.terminal && dest[1] == Dest::Out;
    body(st, &mut sub, inp);
    io.capped |= sub.capped;
    let (out, err) = sub.into_parts();
    let mut failed = false;
    for (data, d) in [(err, &dest[2]), (out, &dest[1])] {
        match d {
            Dest::Out => io.push(false, &data),
            Dest::Err => io.push(true, &data),
            Dest::Null => {}
            Dest::File(f, _) => {
                if data.is_empty() {
                    continue;
                }
                if let Err(e) = commands::write_file(st, f, &data, true) {
                    let msg = format!("{}{f}: {}\n", st.err_prefix, e.text());
                    io.push(true, msg.as_bytes());
                    failed = true;
                }
            }
        }
    }
    if failed {
        st.status = 1;
    }
}

/// Applies one redirection; `Err(Some(message))` when it fails, `Err(None)` when the
/// line stops.
fn apply(
    st: &mut State,
    io: &mut Io,
    r: &IoRedirect,
    dest: &mut [Dest; 3],
    stdin: &mut Option<Vec<u8>>,
) -> Result<(), Option<String>> {
    let target = |st: &mut State, io: &mut Io, w: &ast::Word| -> Result<String, Option<String>> {
        expand::string(st, io, &w.value).map_err(|_| None)
    };
    match r {
        IoRedirect::File(fd, kind, t) => {
            let default_fd = match kind {
                IoFileRedirectKind::Read
                | IoFileRedirectKind::DuplicateInput
                | IoFileRedirectKind::ReadAndWrite => 0,
                _ => 1,
            };
            let fd = fd.unwrap_or(default_fd);
            match (kind, t) {
                (IoFileRedirectKind::Read, IoFileRedirectTarget::Filename(w)) => {
                    let f = target(st, io, w)?;
                    let path = super::fs::normalize(&st.cwd, &st.home, &f);
                    match st.fs.read(&path) {
                        Ok(d) => {
                            let d = commands::take(st, d, MAX_BUFFER).to_vec();
                            if fd == 0 {
                                *stdin = Some(d);
                            }
                        }
                        Err(e) => {
                            return Err(Some(
                                super::busybox::redirect_error(st, &f, e, false).unwrap_or_else(
                                    || format!("{}{f}: {}\n", st.err_prefix, e.text()),
                                ),
                            ));
                        }
                    }
                }
                (
                    IoFileRedirectKind::Write
                    | IoFileRedirectKind::Clobber
                    | IoFileRedirectKind::Append,
                    IoFileRedirectTarget::Filename(w),
                ) => {
                    let f = target(st, io, w)?;
                    if f.is_empty() {
                        return Err(Some(format!(
                            "{}: No such file or directory\n",
                            st.err_prefix
                        )));
                    }
                    let append = matches!(kind, IoFileRedirectKind::Append);
                    if let Some(d) = dest.get_mut(fd as usize).filter(|_| fd >= 1) {
                        *d = if f == "/dev/null" {
                            Dest::Null
                        } else {
                            Dest::File(f, append)
                        };
                    }
                }
                (IoFileRedirectKind::DuplicateOutput, IoFileRedirectTarget::Fd(n))
                    if (1..=2).contains(&fd) && (1..=2).contains(n) =>
                {
                    dest[fd as usize] = dest[*n as usize].clone();
                }
                (IoFileRedirectKind::DuplicateOutput, IoFileRedirectTarget::Duplicate(w)) => {
                    let v = target(st, io, w)?;
                    match v.parse::<usize>() {
                        Ok(n) if (1..=2).contains(&n) && (1..=2).contains(&fd) => {
                            dest[fd as usize] = dest[n].clone();
                        }
                        Ok(_) => {}
                        Err(_) if v == "-" => {
                            if (1..=2).contains(&fd) {
                                dest[fd as usize] = Dest::Null;
                            }
                        }
                        Err(_) => {
                            dest[1] = Dest::File(v.clone(), false);
                            dest[2] = Dest::File(v, false);
                        }
                    }
                }
                _ => {}
            }
        }
        IoRedirect::HereDocument(fd, doc) => {
            let mut body = if doc.requires_expansion {
                expand::heredoc(st, io, &doc.doc.value).map_err(|_| None)?
            } else {
                doc.doc.value.clone()
            };
            if doc.remove_tabs {
                body = body
                    .split_inclusive('\n')
                    .map(|l| l.trim_start_matches('\t'))
                    .collect();
            }
            if fd.unwrap_or(0) == 0 {
                *stdin = Some(body.into_bytes());
            }
        }
        IoRedirect::HereString(fd, w) => {
            let mut v = target(st, io, w)?;
            v.push('\n');
            if fd.unwrap_or(0) == 0 {
                *stdin = Some(v.into_bytes());
            }
        }
        IoRedirect::OutputAndError(w, append) => {
            let f = target(st, io, w)?;
            let d = if f == "/dev/null" {
                Dest::Null
            } else {
                Dest::File(f, *append)
            };
            dest[1] = d.clone();
            dest[2] = d;
        }
    }
    Ok(())
}

/// Names of commands that read all of their standard input.
fn reads_stdin(name: &str) -> bool {
    matches!(
        name,
        "cat"
            | "grep"
            | "egrep"
            | "fgrep"
            | "head"
            | "tail"
            | "wc"
            | "sort"
            | "uniq"
            | "tr"
            | "sed"
            | "awk"
            | "cut"
            | "tee"
            | "xargs"
            | "base64"
            | "sh"
            | "bash"
            | "dash"
            | "md5sum"
            | "sha1sum"
            | "sha256sum"
            | "od"
            | "xxd"
            | "rev"
            | "nl"
    )
}

fn simple(st: &mut State, io: &mut Io, inp: &mut Input, s: &ast::SimpleCommand) {
    if !st.budget.command() {
        return;
    }
    let mut assigns: Vec<(&ast::Assignment, &ast::Word)> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut redirects: Vec<&IoRedirect> = Vec::new();
    for item in s.prefix.iter().flat_map(|p| p.0.iter()) {
        match item {
            ast::CommandPrefixOrSuffixItem::AssignmentWord(a, w) => assigns.push((a, w)),
            ast::CommandPrefixOrSuffixItem::IoRedirect(r) => redirects.push(r),
            ast::CommandPrefixOrSuffixItem::Word(w) => words.push(w.value.clone()),
            ast::CommandPrefixOrSuffixItem::ProcessSubstitution(..) => {
                words.push("/dev/fd/63".into());
            }
        }
    }
    if let Some(w) = &s.word_or_name {
        words.push(w.value.clone());
    }
    for item in s.suffix.iter().flat_map(|p| p.0.iter()) {
        match item {
            ast::CommandPrefixOrSuffixItem::IoRedirect(r) => redirects.push(r),
            ast::CommandPrefixOrSuffixItem::Word(w)
            | ast::CommandPrefixOrSuffixItem::AssignmentWord(_, w) => words.push(w.value.clone()),
            ast::CommandPrefixOrSuffixItem::ProcessSubstitution(..) => {
                words.push("/dev/fd/63".into());
            }
        }
    }
    // Aliases of an interactive shell apply to the first word as typed.
    if st.tty
        && let Some(first) = words.first()
        && let Some((_, v)) = st.aliases.iter().find(|(n, _)| n == first)
    {
        let mut w: Vec<String> = v.split_whitespace().map(str::to_owned).collect();
        if !w.is_empty() {
            w.extend(words.drain(1..));
            words = w;
        }
    }
    // A script's runtime errors name the line of the command they come from.
    if !st.tty && st.depth_of_scripts == 0 && st.profile.busybox.is_none() {
        let line = s
            .word_or_name
            .as_ref()
            .and_then(|w| w.loc.as_ref())
            .map_or(1, |l| l.start.line);
        if let Some(p) = LINE_PREFIXES.get(line.saturating_sub(1)) {
            st.err_prefix = p;
        }
    }
    st.subst_status = None;
    let argv = match expand::words(st, io, &words) {
        Ok(a) => a,
        Err(Stop) => return,
    };
    // Values of the assignments, expanded before anything runs.
    let mut values = Vec::with_capacity(assigns.len());
    for (a, _) in &assigns {
        let v = match &a.value {
            ast::AssignmentValue::Scalar(w) => expand::string(st, io, &w.value),
            ast::AssignmentValue::Array(items) => {
                let raw: Vec<String> = items.iter().map(|(_, w)| w.value.clone()).collect();
                expand::words(st, io, &raw).map(|v| v.join(" "))
            }
        };
        let Ok(v) = v else {
            return;
        };
        let name = match &a.name {
            ast::AssignmentName::VariableName(n) | ast::AssignmentName::ArrayElementName(n, _) => {
                n.clone()
            }
        };
        let v = if a.append {
            format!("{}{v}", st.lookup(&name).unwrap_or_default())
        } else {
            v
        };
        values.push((name, v));
    }
    let arg_bytes: usize = argv.iter().map(|a| a.len() + 1).sum::<usize>()
        + values
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum::<usize>();
    if !st.budget.arg_bytes(arg_bytes) {
        return;
    }
    if argv.is_empty() {
        for (k, v) in &values {
            if st.readonly(k) {
                let msg = format!("{}{k}: readonly variable\n", st.err_prefix);
                io.push(true, msg.as_bytes());
                st.status = 1;
                return;
            }
            st.assign(k, v);
        }
        let status = st.subst_status.unwrap_or(0);
        st.status = status;
        if !redirects.is_empty() {
            redirected(st, io, inp, &redirects, &mut |_, _, _| {});
            if st.status == 0 {
                st.status = status;
            }
        }
        return;
    }
    // `A=b cmd`: the variables hold for that command only.
    let mut old = Vec::with_capacity(values.len());
    for (k, v) in &values {
        old.push((k.clone(), st.lookup(k), st.unexported.contains(k)));
        st.set_var(k, v);
    }
    redirected(st, io, inp, &redirects, &mut |st, io, inp| {
        run_argv(st, io, inp, &argv);
    });
    for (k, v, unexported) in old.into_iter().rev() {
        match v {
            Some(v) => st.set_var(&k, &v),
            None => st.unset_var(&k),
        }
        if unexported && !st.unexported.contains(&k) {
            st.unexported.push(k);
        }
    }
}

fn run_argv(st: &mut State, io: &mut Io, inp: &mut Input, argv: &[String]) {
    // `exec cmd` replaces the shell: the command runs, then the shell ends. Leading
    // `exec`s are stripped in a loop (never one call per word).
    let skip = argv.iter().take_while(|a| *a == "exec").count();
    if skip > 0 && skip < argv.len() {
        run_argv(st, io, inp, &argv[skip..]);
        st.exit = Some(st.status);
        return;
    }
    let name = argv[0].as_str();
    let args = &argv[1..];
    if let Some(body) = st
        .functions
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, b)| Arc::clone(b))
    {
        call(st, io, inp, &body, args);
        return;
    }
    match name {
        "eval" => {
            let text = args.join(" ");
            if !st.budget.enter() {
                return;
            }
            nested(st, io, &text);
            st.budget.leave();
            return;
        }
        "source" | "." => {
            let Some(f) = args.first() else {
                let msg = format!(
                    "{}{name}: filename argument required\n{name}: usage: {name} filename [arguments]\n",
                    st.err_prefix
                );
                io.push(true, msg.as_bytes());
                st.status = 2;
                return;
            };
            let path = super::fs::normalize(&st.cwd, &st.home, f);
            let text = match st.fs.read(&path) {
                Ok(d) => {
                    String::from_utf8_lossy(commands::take(st, d, parse::MAX_SOURCE)).into_owned()
                }
                Err(e) => {
                    let msg = format!("{}{f}: {}\n", st.err_prefix, e.text());
                    io.push(true, msg.as_bytes());
                    st.status = 1;
                    return;
                }
            };
            if !st.budget.enter() {
                return;
            }
            st.status = 0;
            nested(st, io, &text);
            if st.flow == Some(Flow::Return) {
                st.flow = None;
            }
            st.budget.leave();
            return;
        }
        "return" => {
            if st.functions_running == 0 && st.depth_of_scripts == 0 {
                let msg = format!(
                    "{}return: can only `return' from a function or sourced script\n",
                    st.err_prefix
                );
                io.push(true, msg.as_bytes());
                st.status = 2;
                return;
            }
            if let Some(a) = args.first() {
                st.status = a.parse::<i64>().map_or(2, |n| (n & 0xff) as i32);
            }
            st.flow = Some(Flow::Return);
            return;
        }
        "break" | "continue" => {
            let n = args
                .first()
                .and_then(|a| a.parse::<u32>().ok())
                .unwrap_or(1)
                .max(1);
            if st.loops == 0 {
                let msg = format!(
                    "{}{name}: only meaningful in a `for', `while', or `until' loop\n",
                    st.err_prefix
                );
                io.push(true, msg.as_bytes());
                st.status = 0;
                return;
            }
            let n = n.min(st.loops);
            st.flow = Some(if name == "break" {
                Flow::Break(n)
            } else {
                Flow::Continue(n)
            });
            st.status = 0;
            return;
        }
        "read" => {
            let (o, used) = builtins::read(st, args, inp.rest());
            inp.consume(used);
            finish(st, io, o);
            return;
        }
        "local" if st.functions_running == 0 => {
            let msg = format!("{}local: can only be used in a function\n", st.err_prefix);
            io.push(true, msg.as_bytes());
            st.status = 1;
            return;
        }
        "exec" if args.is_empty() => {
            st.status = 0;
            return;
        }
        _ => {}
    }
    let ctx = Ctx {
        stdin: inp.rest(),
        out_tty: io.terminal,
    };
    let out = commands::command(st, argv, &ctx);
    if reads_stdin(name) {
        inp.consume(usize::MAX);
    }
    finish(st, io, out);
}

/// Charges what a command produced as data and hands it to the line's output.
fn finish(st: &mut State, io: &mut Io, mut out: Out) {
    io.capped |= out.cut;
    if !st.budget.is_exhausted() {
        let want = out.out.len() + out.err.len();
        let granted = st.budget.take_data(want);
        if granted < want {
            let keep_err = out.err.len().min(granted);
            out.err.truncate(keep_err);
            out.out.truncate(granted - keep_err);
        }
    }
    io.push(true, &out.err);
    io.push(false, &out.out);
    st.status = out.status;
}

fn call(st: &mut State, io: &mut Io, inp: &mut Input, body: &ast::FunctionBody, args: &[String]) {
    if !st.budget.enter() {
        return;
    }
    st.nest += 1;
    if st.nest > MAX_NEST {
        too_deep(st);
        st.nest -= 1;
        st.budget.leave();
        return;
    }
    let saved_args = std::mem::replace(&mut st.positional, args.to_vec());
    st.locals.push(Vec::new());
    st.functions_running += 1;
    let r: Vec<&IoRedirect> = body.1.iter().flat_map(|l| l.0.iter()).collect();
    let cc = &body.0;
    redirected(st, io, inp, &r, &mut |st, io, inp| {
        compound(st, io, inp, cc)
    });
    if st.flow == Some(Flow::Return) {
        st.flow = None;
    }
    st.functions_running -= 1;
    if let Some(frame) = st.locals.pop() {
        for (k, v) in frame.into_iter().rev() {
            match v {
                Some(v) => st.set_var(&k, &v),
                None => st.unset_var(&k),
            }
        }
    }
    st.positional = saved_args;
    st.nest -= 1;
    st.budget.leave();
}
