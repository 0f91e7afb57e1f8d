//! The commands beyond the shell's own builtins, grouped by family (text filters, file
//! tools, system and network tools). Each takes the session, its arguments and its stdin
//! and returns what Debian 12's program would print; nothing runs on the host.
//!
//! Every family charges the line's budget before it works: data it copies or produces
//! through [`take`] / [`State::budget`]'s `take_data`, and loop iterations (lines,
//! fields, regex tests, interpreter steps) through its `iterations`, so however large the
//! input or however the program loops, one line stays within its budget.

mod awk;
mod files;
mod getopt;
mod grep;
mod misc;
mod posix_re;
mod sed;
mod sys;
mod text;

use super::State;
use super::budget::MAX_BUFFER;
use super::commands::{Ctx, Out, take};
use super::fs::{self, FsError};

/// Runs `name` when one of the families knows it; `None` sends the shell on to
/// "command not found".
pub(super) fn run(st: &mut State, name: &str, args: &[String], ctx: &Ctx<'_>) -> Option<Out> {
    if let Some(o) = text::run(st, name, args, ctx) {
        return Some(o);
    }
    match name {
        "awk" | "mawk" => return Some(awk::run(st, args, ctx)),
        "sed" => return Some(sed::run(st, args, ctx)),
        "grep" => return Some(grep::run(st, args, ctx)),
        "egrep" | "fgrep" => {
            let flag = if name == "egrep" { "-E" } else { "-F" };
            let args: Vec<String> = std::iter::once(flag.to_owned())
                .chain(args.iter().cloned())
                .collect();
            let mut o = grep::run(st, &args, ctx);
            let mut err =
                format!("{name}: warning: {name} is obsolescent; using grep {flag}\n").into_bytes();
            err.append(&mut o.err);
            o.err = err;
            return Some(o);
        }
        _ => {}
    }
    if let Some(o) = files::run(st, name, args, ctx) {
        return Some(o);
    }
    if let Some(o) = sys::run(st, name, args, ctx) {
        return Some(o);
    }
    misc::run(st, name, args, ctx)
}

/// A path operand as the session sees it.
pub(super) fn path_of(st: &State, p: &str) -> String {
    fs::normalize(&st.cwd, &st.home, p)
}

/// What a non-root user may not read: the shadow file and root's home.
pub(super) fn unreadable(st: &State, path: &str) -> bool {
    st.uid != 0 && (path == "/etc/shadow" || path == "/root" || path.starts_with("/root/"))
}

/// A non-root user writes only under home and the temporary directories.
pub(super) fn may_write(st: &State, path: &str) -> bool {
    st.uid == 0
        || path == "/dev/null"
        || [st.home.as_str(), "/tmp", "/var/tmp", "/dev/shm"]
            .iter()
            .any(|d| path == *d || path.starts_with(&format!("{d}/")))
}

/// The bytes of one input operand (`-` is stdin), copied as far as the buffer cap and
/// the line's data budget allow; `Err` with the reason's words.
pub(super) fn load(st: &State, op: &str, ctx: &Ctx<'_>) -> Result<Vec<u8>, FsError> {
    if op == "-" {
        return Ok(take(st, ctx.stdin, MAX_BUFFER).to_vec());
    }
    let path = path_of(st, op);
    if unreadable(st, &path) {
        return Err(FsError::Denied);
    }
    // Reading /dev/zero or /dev/urandom never ends; those who read them say how much.
    let d = st.fs.read(&path)?;
    Ok(take(st, d, MAX_BUFFER).to_vec())
}

/// The joined input of a filter: its operands in order (none means stdin). Errors are
/// reported as `name: op: reason` and make the status 1.
pub(super) fn load_all(
    st: &State,
    name: &str,
    ops: &[String],
    ctx: &Ctx<'_>,
    o: &mut Out,
) -> Vec<u8> {
    if ops.is_empty() {
        return take(st, ctx.stdin, MAX_BUFFER).to_vec();
    }
    let mut data = Vec::new();
    for op in ops {
        if data.len() >= MAX_BUFFER || o.full() || !st.budget.iterations(1) {
            break;
        }
        match load(st, op, ctx) {
            Ok(d) => {
                let room = MAX_BUFFER - data.len();
                data.extend_from_slice(&d[..d.len().min(room)]);
            }
            Err(e) => {
                o.eline(&format!("{name}: {op}: {}", e.text()));
                o.status = 1;
            }
        }
    }
    data
}

/// `name: MSG` and the usual pointer to `--help`, with `status`.
pub(super) fn usage_error(name: &str, msg: &str, status: i32) -> Out {
    Out::fail(
        status,
        format!("{name}: {msg}\nTry '{name} --help' for more information.\n"),
    )
}

/// Splits data into lines, each without its `\n`; a last line without one counts too.
/// Charges one iteration per line before anything is done with them.
pub(super) fn lines_of<'a>(st: &State, data: &'a [u8]) -> Option<Vec<&'a [u8]>> {
    let mut v: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    if data.ends_with(b"\n") || data.is_empty() {
        v.pop();
    }
    st.budget
        .iterations(u64::try_from(v.len()).unwrap_or(u64::MAX))
        .then_some(v)
}

#[cfg(test)]
mod tests;
