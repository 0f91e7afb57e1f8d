//! Per-source failure limiting: after N failures in a minute an address is refused until
//! its window ends. Bounded in memory whatever the number of sources.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most addresses tracked; past it, expired entries are swept and, if still full, the
/// newcomer is treated as limited (fail closed under a spray of sources).
const MAX_TRACKED: usize = 65_536;

#[derive(Debug)]
pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    state: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl FailureLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        FailureLimiter {
            max_failures,
            window,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// True if `ip` may try again now.
    pub fn allowed(&self, ip: IpAddr, now: Instant) -> bool {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.get(&ip) {
            Some((start, n)) if now.duration_since(*start) < self.window => *n < self.max_failures,
            Some(_) => true,
            None => state.len() < MAX_TRACKED,
        }
    }

    /// Records one failure from `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.len() >= MAX_TRACKED {
            let window = self.window;
            state.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        if state.len() >= MAX_TRACKED && !state.contains_key(&ip) {
            return;
        }
        let entry = state.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_then_forgives() {
        let l = FailureLimiter::new(3, Duration::from_secs(60));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.allowed(ip, t0));
            l.failed(ip, t0);
        }
        assert!(!l.allowed(ip, t0));
        assert!(l.allowed("192.0.2.2".parse().unwrap(), t0));
        assert!(l.allowed(ip, t0 + Duration::from_secs(61)));
    }
}
