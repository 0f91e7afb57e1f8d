//! A server process's own CPU time and resident memory, read from `/proc/PID/stat` and
//! `/proc/PID/status`, so a figure counts the server's work and not the load generator's.

use anyhow::{Context, Result, anyhow};
use std::time::Duration;

/// Linux reports `utime`/`stime` in USER_HZ ticks, which is 100 on every architecture
/// Linux supports (it is fixed in the ABI, independent of the kernel's HZ).
const USER_HZ: u64 = 100;

/// CPU time of `pid` so far, two ways: the process's `utime + stime` (every thread that
/// ever ran, but in 10 ms ticks) and the sum of its live threads' run time from
/// `/proc/PID/task/*/schedstat` (nanoseconds, but a thread that exited is gone).
fn cpu_times(pid: u32) -> Result<(Duration, Duration)> {
    Ok((
        stat_cpu_time(pid)?,
        sched_cpu_time(pid).unwrap_or(Duration::ZERO),
    ))
}

fn sched_cpu_time(pid: u32) -> Option<Duration> {
    let mut ns: u64 = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread may exit between listing and reading.
        if let Ok(s) = std::fs::read_to_string(path) {
            ns += s.split_whitespace().next()?.parse::<u64>().ok()?;
        }
    }
    Some(Duration::from_nanos(ns))
}

/// `utime + stime` of every thread of `pid` so far.
fn stat_cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    parse_cpu_ticks(&stat)
        .map(|ticks| Duration::from_millis(ticks * 1000 / USER_HZ))
        .ok_or_else(|| anyhow!("cannot parse /proc/{pid}/stat"))
}

/// `utime + stime` in ticks. The command name (field 2) may hold spaces and parentheses,
/// so fields are counted from the last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")": field 3 (state) is index 0, so utime (14) is 11 and stime (15) is 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident set size of `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    parse_rss_kib(&status).ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))
}

fn parse_rss_kib(status: &str) -> Option<u64> {
    status_kib(status, "VmRSS:")
}

/// The private part of `pid`'s resident memory in KiB (`RssAnon`): heap, stacks and
/// other anonymous pages. What RSS adds on top is mostly the executable's and shared
/// libraries' code mapped from the page cache, which other processes share and the
/// kernel can drop at any time.
pub fn anon_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    status_kib(&status, "RssAnon:").ok_or_else(|| anyhow!("no RssAnon in /proc/{pid}/status"))
}

fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The soft limit on open files of `pid` (`/proc/PID/limits`), to check that a server
/// can hold the connections a measurement opens.
pub fn open_files_limit(pid: u32) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
}

/// CPU time and RSS of a process between two points.
#[derive(Debug, Clone, Copy)]
pub struct Meter {
    pid: u32,
    start: (Duration, Duration),
}

impl Meter {
    pub fn start(pid: u32) -> Result<Meter> {
        Ok(Meter {
            pid,
            start: cpu_times(pid)?,
        })
    }

    /// CPU time the process used since `start`: the larger of the two readings' deltas
    /// (ticks are coarse; schedstat misses threads that exited meanwhile).
    pub fn cpu(&self) -> Result<Duration> {
        let (ticks, sched) = cpu_times(self.pid)?;
        Ok(ticks
            .saturating_sub(self.start.0)
            .max(sched.saturating_sub(self.start.1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_names() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 3 0 100 1000000 500 18446744073709551615";
        assert_eq!(parse_cpu_ticks(line), Some(325));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        assert_eq!(parse_cpu_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn parses_rss() {
        let status =
            "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t   5120 kB\nRssAnon:\t 1024 kB\nThreads:\t3\n";
        assert_eq!(parse_rss_kib(status), Some(5120));
        assert_eq!(status_kib(status, "RssAnon:"), Some(1024));
        assert_eq!(parse_rss_kib("Name:\tkthread\n"), None);
    }

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(rss_kib(pid).unwrap() >= anon_kib(pid).unwrap());
        let m = Meter::start(pid).unwrap();
        // Burn a little CPU so the reading moves; only its sign is checked.
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(
            m.cpu().unwrap() > Duration::ZERO,
            "schedstat counts nanoseconds"
        );
        assert!(sched_cpu_time(pid).is_some());
        assert!(open_files_limit(pid).unwrap_or(0) > 0);
    }
}
