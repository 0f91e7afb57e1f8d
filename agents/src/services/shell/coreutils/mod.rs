//! The commands beyond the shell's own builtins, grouped by family (text filters, file
//! tools, system and network tools). Each takes the session, its arguments and its stdin
//! and returns what Debian 12's program would print; nothing runs on the host.

use super::State;
use super::commands::{Ctx, Out};

/// Runs `name` when one of the families knows it; `None` sends the shell on to
/// "command not found".
pub(super) fn run(st: &mut State, name: &str, args: &[String], ctx: &Ctx<'_>) -> Option<Out> {
    let _ = (st, args, ctx);
    match name {
        _ => None,
    }
}
