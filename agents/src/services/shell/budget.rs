//! One work budget per command line of the emulated shell: how deep commands may nest,
//! how many commands and loop iterations may run, how many argument, expansion and data
//! bytes may be made. Every place that multiplies work (wrappers such as `sudo`, `sh -c`,
//! variable expansion, commands that read many files) asks the budget *before* it copies
//! or allocates, so one line cannot exhaust the agent however it is built. When a
//! dimension runs out the line stops, as a process the kernel killed would, and the
//! session reports it as a `LimitReached` event with the limit `shell_budget`.
//!
//! The counters are [`Cell`]s so that commands holding only `&State` can charge them.

use std::cell::Cell;

/// Most bytes any one command may hold in one output buffer (stdout or stderr); the rest
/// is cut, as the line's own output cap cuts it. Also bounds what a filter (`grep`,
/// `head`, `wc`, …) joins from its file operands.
pub(crate) const MAX_BUFFER: usize = 256 * 1024;

/// Which part of the budget ran out; the name goes into the `LimitReached` detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dimension {
    /// Nesting of commands that run commands (`sudo`, `nohup`, `sh -c`, …).
    Depth,
    /// Commands, wrapper hops, list parts and script lines run.
    Commands,
    /// Loop iterations inside commands (operands, lines scanned, pattern tests).
    Iterations,
    /// Bytes of the argument vectors of all commands run.
    ArgBytes,
    /// Bytes variable expansion produced, over every (re-)parse of the line.
    Expansion,
    /// Bytes commands read into buffers or produced as output, pipes included.
    Data,
}

impl Dimension {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Dimension::Depth => "nesting depth",
            Dimension::Commands => "commands",
            Dimension::Iterations => "iterations",
            Dimension::ArgBytes => "argument bytes",
            Dimension::Expansion => "expansion bytes",
            Dimension::Data => "data bytes",
        }
    }
}

/// The size of the budget of one command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BudgetLimits {
    pub max_depth: u32,
    pub max_commands: u32,
    pub max_iterations: u64,
    pub max_arg_bytes: usize,
    pub max_expansion: usize,
    pub max_data: usize,
    /// Download attempts recorded (as events) from one line; more still fail as they
    /// would, but are counted instead of recorded.
    pub max_downloads: u32,
}

impl Default for BudgetLimits {
    fn default() -> Self {
        // Generous for anything a person or a dropper script types (a 4 KiB line holds
        // at most about 2,000 commands; an exec script of up to 128 KiB, a loader's
        // base64 payload, expands within `max_expansion`), small enough that the worst
        // line costs a few MiB and a few milliseconds of one core.
        BudgetLimits {
            max_depth: 16,
            max_commands: 4096,
            max_iterations: 2_000_000,
            max_arg_bytes: 256 * 1024,
            max_expansion: 256 * 1024,
            max_data: 4 * 1024 * 1024,
            max_downloads: 64,
        }
    }
}

/// The budget of the line being run; [`Budget::reset`] starts a new line.
#[derive(Debug)]
pub(crate) struct Budget {
    limits: BudgetLimits,
    depth: Cell<u32>,
    commands: Cell<u32>,
    iterations: Cell<u64>,
    arg_bytes: Cell<usize>,
    expansion: Cell<usize>,
    data: Cell<usize>,
    downloads: Cell<u32>,
    exhausted: Cell<Option<Dimension>>,
}

impl Budget {
    pub(crate) fn new(limits: BudgetLimits) -> Budget {
        Budget {
            limits,
            depth: Cell::new(0),
            commands: Cell::new(0),
            iterations: Cell::new(0),
            arg_bytes: Cell::new(0),
            expansion: Cell::new(0),
            data: Cell::new(0),
            downloads: Cell::new(0),
            exhausted: Cell::new(None),
        }
    }

    /// A fresh budget for the next command line.
    pub(crate) fn reset(&self) {
        self.depth.set(0);
        self.commands.set(0);
        self.iterations.set(0);
        self.arg_bytes.set(0);
        self.expansion.set(0);
        self.data.set(0);
        self.downloads.set(0);
        self.exhausted.set(None);
    }

    /// The dimension that ran out, if one did: the line must stop.
    #[cfg(test)]
    pub(crate) fn exhausted(&self) -> Option<Dimension> {
        self.exhausted.get()
    }

    pub(crate) fn is_exhausted(&self) -> bool {
        self.exhausted.get().is_some()
    }

    /// Marks the line as out of budget; the first dimension is the one reported.
    fn exhaust(&self, d: Dimension) -> bool {
        if self.exhausted.get().is_none() {
            self.exhausted.set(Some(d));
        }
        false
    }

    /// What the session reports when the line was stopped.
    pub(crate) fn detail(&self) -> Option<String> {
        let d = self.exhausted.get()?;
        let l = self.limits;
        let limit = match d {
            Dimension::Depth => l.max_depth.to_string(),
            Dimension::Commands => l.max_commands.to_string(),
            Dimension::Iterations => l.max_iterations.to_string(),
            Dimension::ArgBytes => l.max_arg_bytes.to_string(),
            Dimension::Expansion => l.max_expansion.to_string(),
            Dimension::Data => l.max_data.to_string(),
        };
        Some(format!(
            "command line stopped: {} budget of {limit} exhausted",
            d.name()
        ))
    }

    /// Enters one more level of commands running commands; `false` (and the line stops)
    /// past the depth limit. Every successful `enter` is paired with a [`Budget::leave`].
    pub(crate) fn enter(&self) -> bool {
        if self.is_exhausted() {
            return false;
        }
        let d = self.depth.get();
        if d >= self.limits.max_depth {
            return self.exhaust(Dimension::Depth);
        }
        self.depth.set(d + 1);
        true
    }

    pub(crate) fn leave(&self) {
        self.depth.set(self.depth.get().saturating_sub(1));
    }

    /// One more command (or wrapper hop, list part, script line) is about to run.
    pub(crate) fn command(&self) -> bool {
        if self.is_exhausted() {
            return false;
        }
        let n = self.commands.get().saturating_add(1);
        if n > self.limits.max_commands {
            return self.exhaust(Dimension::Commands);
        }
        self.commands.set(n);
        true
    }

    /// `n` more loop iterations inside a command.
    pub(crate) fn iterations(&self, n: u64) -> bool {
        if self.is_exhausted() {
            return false;
        }
        let total = self.iterations.get().saturating_add(n);
        if total > self.limits.max_iterations {
            return self.exhaust(Dimension::Iterations);
        }
        self.iterations.set(total);
        true
    }

    /// A command with `n` bytes of arguments is about to run.
    pub(crate) fn arg_bytes(&self, n: usize) -> bool {
        if self.is_exhausted() {
            return false;
        }
        let total = self.arg_bytes.get().saturating_add(n);
        if total > self.limits.max_arg_bytes {
            return self.exhaust(Dimension::ArgBytes);
        }
        self.arg_bytes.set(total);
        true
    }

    /// How many more bytes variable expansion may produce on this line.
    pub(crate) fn expansion_room(&self) -> usize {
        if self.is_exhausted() {
            return 0;
        }
        self.limits
            .max_expansion
            .saturating_sub(self.expansion.get())
    }

    /// Records what a parse expanded; `cut` when it wanted more than
    /// [`Budget::expansion_room`] allowed (the line then stops).
    pub(crate) fn expanded(&self, n: usize, cut: bool) -> bool {
        self.expansion.set(self.expansion.get().saturating_add(n));
        if cut {
            return self.exhaust(Dimension::Expansion);
        }
        !self.is_exhausted()
    }

    /// One more download attempt: `true` while it may still be recorded. Never stops
    /// the line.
    pub(crate) fn download(&self) -> bool {
        let n = self.downloads.get().saturating_add(1);
        self.downloads.set(n);
        n <= self.limits.max_downloads
    }

    /// Download attempts of this line that were not recorded.
    pub(crate) fn downloads_dropped(&self) -> u32 {
        self.downloads
            .get()
            .saturating_sub(self.limits.max_downloads)
    }

    /// Asks for `want` bytes of data (to read into a buffer or to produce as output):
    /// returns how many may be copied, fewer (and the line stops) when the budget runs
    /// out.
    pub(crate) fn take_data(&self, want: usize) -> usize {
        if self.is_exhausted() {
            return 0;
        }
        let used = self.data.get();
        let room = self.limits.max_data.saturating_sub(used);
        let granted = want.min(room);
        self.data.set(used + granted);
        if granted < want {
            self.exhaust(Dimension::Data);
        }
        granted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Budget {
        Budget::new(BudgetLimits {
            max_depth: 2,
            max_commands: 3,
            max_iterations: 10,
            max_arg_bytes: 100,
            max_expansion: 50,
            max_data: 1000,
            max_downloads: 2,
        })
    }

    #[test]
    fn each_dimension_stops_at_its_limit_and_reset_refills() {
        let b = small();
        assert!(b.enter() && b.enter());
        assert!(!b.enter());
        assert_eq!(b.exhausted(), Some(Dimension::Depth));
        assert!(!b.command(), "an exhausted budget refuses everything");
        b.reset();

        assert!(b.command() && b.command() && b.command());
        assert!(!b.command());
        assert_eq!(b.exhausted(), Some(Dimension::Commands));
        b.reset();

        assert!(b.iterations(10));
        assert!(!b.iterations(1));
        assert_eq!(b.exhausted(), Some(Dimension::Iterations));
        b.reset();

        assert!(b.arg_bytes(60));
        assert!(!b.arg_bytes(41));
        assert_eq!(b.exhausted(), Some(Dimension::ArgBytes));
        b.reset();

        assert_eq!(b.expansion_room(), 50);
        assert!(b.expanded(30, false));
        assert_eq!(b.expansion_room(), 20);
        assert!(!b.expanded(20, true));
        assert_eq!(b.exhausted(), Some(Dimension::Expansion));
        assert_eq!(b.expansion_room(), 0);
        b.reset();

        assert_eq!(b.take_data(600), 600);
        assert_eq!(b.take_data(600), 400);
        assert_eq!(b.exhausted(), Some(Dimension::Data));
        assert_eq!(b.take_data(1), 0);
        assert!(b.detail().unwrap().contains("data bytes budget of 1000"));
        b.reset();

        assert!(b.download() && b.download());
        assert!(!b.download() && !b.download());
        assert_eq!(b.downloads_dropped(), 2);
        assert!(!b.is_exhausted(), "downloads never stop a line");
        b.reset();
        assert_eq!(b.downloads_dropped(), 0);
        assert_eq!(b.exhausted(), None);
        assert!(b.detail().is_none());
    }

    #[test]
    fn leaving_gives_depth_back() {
        let b = small();
        for _ in 0..100 {
            assert!(b.enter());
            b.leave();
        }
        assert!(!b.is_exhausted());
    }
}
