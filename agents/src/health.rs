//! Process health for reports: uptime, CPU use since the last sample, resident memory.

use std::time::Instant;

/// Samples this process's CPU time and memory from `/proc/self`.
#[derive(Debug)]
pub struct HealthSampler {
    started: Instant,
    last: Option<(Instant, u64)>,
}

impl Default for HealthSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthSampler {
    pub fn new() -> Self {
        HealthSampler {
            started: Instant::now(),
            last: None,
        }
    }

    pub fn uptime_s(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Percent of one core used since the previous call (0 on the first).
    pub fn cpu_percent(&mut self) -> f32 {
        let Some(ticks) = cpu_ticks() else {
            return 0.0;
        };
        let now = Instant::now();
        let pct = match self.last {
            Some((t, prev)) => {
                let secs = now.duration_since(t).as_secs_f32();
                let used = ticks.saturating_sub(prev) as f32 / clock_ticks_per_sec();
                if secs > 0.0 { 100.0 * used / secs } else { 0.0 }
            }
            None => 0.0,
        };
        self.last = Some((now, ticks));
        pct
    }
}

/// utime + stime of this process, in clock ticks.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may contain spaces; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn clock_ticks_per_sec() -> f32 {
    // USER_HZ is 100 on every Linux ABI we run on.
    100.0
}

/// Resident set size in bytes.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_sane() {
        let mut h = HealthSampler::new();
        assert_eq!(h.cpu_percent(), 0.0);
        assert!(rss_bytes() > 0);
        assert!(h.cpu_percent() >= 0.0);
    }
}
