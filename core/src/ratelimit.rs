//! Per-source failure limiting: after N failures in a window a source is refused until
//! its window ends. Sans-IO (time is passed in) and bounded in memory whatever the number
//! of sources: IPv6 sources count per /64 (what one host or subscriber usually holds),
//! and when the table is full the oldest entries are evicted, never the newcomer refused.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most sources tracked at once.
pub const MAX_TRACKED: usize = 65_536;
/// When the table is full and nothing in it has expired, this share of it (the oldest
/// windows) is evicted at once, so eviction costs O(n) once per `n / EVICT_DIVISOR`
/// newcomers rather than per newcomer.
const EVICT_DIVISOR: usize = 16;

/// The unit a source is counted in: an IPv4 address (IPv4-mapped IPv6 addresses too), or
/// the /64 prefix of an IPv6 address.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(bits))
            }
        },
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    start: Instant,
    failures: u32,
}

#[derive(Debug)]
pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    capacity: usize,
    state: Mutex<HashMap<IpAddr, Entry>>,
}

impl FailureLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self::with_capacity(max_failures, window, MAX_TRACKED)
    }

    /// A limiter that tracks at most `capacity` sources (at least 16).
    pub fn with_capacity(max_failures: u32, window: Duration, capacity: usize) -> Self {
        FailureLimiter {
            max_failures,
            window,
            capacity: capacity.max(16),
            state: Mutex::new(HashMap::new()),
        }
    }

    /// True if `ip` may try again now. A source not tracked (never failed, or evicted)
    /// is always evaluated: a full table never locks newcomers out.
    pub fn allowed(&self, ip: IpAddr, now: Instant) -> bool {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.get(&source_key(ip)) {
            Some(e) if now.saturating_duration_since(e.start) < self.window => {
                e.failures < self.max_failures
            }
            _ => true,
        }
    }

    /// Records one failure from `ip`.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let key = source_key(ip);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.len() >= self.capacity && !state.contains_key(&key) {
            self.make_room(&mut state, now);
        }
        let entry = state.entry(key).or_insert(Entry {
            start: now,
            failures: 0,
        });
        if now.saturating_duration_since(entry.start) >= self.window {
            *entry = Entry {
                start: now,
                failures: 0,
            };
        }
        entry.failures = entry.failures.saturating_add(1);
    }

    /// How many sources are tracked now.
    pub fn tracked(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Drops expired windows; if that frees nothing, the oldest windows go. Evicting a
    /// source forgives its failures, which costs a brute-forcer more sources than it
    /// gains guesses (and a 256-bit token secret is not guessed anyway); refusing every
    /// newcomer instead would let one spray lock every honest node out.
    fn make_room(&self, state: &mut HashMap<IpAddr, Entry>, now: Instant) {
        let window = self.window;
        state.retain(|_, e| now.saturating_duration_since(e.start) < window);
        if state.len() < self.capacity {
            return;
        }
        let evict = (self.capacity / EVICT_DIVISOR).max(1);
        let mut starts: Vec<Instant> = state.values().map(|e| e.start).collect();
        let (_, cut, _) = starts.select_nth_unstable(evict - 1);
        let cut = *cut;
        let mut left = evict;
        state.retain(|_, e| {
            if left > 0 && e.start <= cut {
                left -= 1;
                false
            } else {
                true
            }
        });
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

    /// The attack: 70,000 distinct sources fail within one window. The table stays at its
    /// cap, and a source never seen before is still evaluated (allowed, then counted and
    /// limited like any other) instead of being refused because the table is full.
    #[test]
    fn a_spray_of_sources_evicts_instead_of_locking_newcomers_out() {
        let l = FailureLimiter::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..70_000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            l.failed(ip, t0 + Duration::from_micros(u64::from(i)));
            l.failed(ip, t0 + Duration::from_micros(u64::from(i)));
        }
        assert!(l.tracked() <= MAX_TRACKED, "{}", l.tracked());
        let t1 = t0 + Duration::from_secs(1);
        let newcomer: IpAddr = "198.51.100.7".parse().unwrap();
        assert!(l.allowed(newcomer, t1), "a new source is evaluated");
        l.failed(newcomer, t1);
        l.failed(newcomer, t1);
        assert!(!l.allowed(newcomer, t1), "and limited once it fails");
        // The most recent sprayers are still limited; the oldest were evicted.
        let recent = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + 69_999));
        assert!(!l.allowed(recent, t1));
        assert!(l.allowed(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000)), t1));
    }

    /// One host with a /64 cannot get a fresh allowance per address.
    #[test]
    fn ipv6_counts_per_64() {
        let l = FailureLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3u16 {
            let ip: IpAddr = format!("2001:db8:1:2::{:x}", i + 1).parse().unwrap();
            l.failed(ip, t0);
        }
        assert!(!l.allowed("2001:db8:1:2:ffff::9".parse().unwrap(), t0));
        assert!(l.allowed("2001:db8:1:3::1".parse().unwrap(), t0));
        // IPv4-mapped addresses count as the IPv4 address.
        let v4: IpAddr = "192.0.2.9".parse().unwrap();
        for _ in 0..3 {
            l.failed("::ffff:192.0.2.9".parse().unwrap(), t0);
        }
        assert!(!l.allowed(v4, t0));
    }
}
