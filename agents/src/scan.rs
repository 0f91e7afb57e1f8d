//! Port-scan detection, sans-IO: connections go in with the time, one report per scan
//! comes out.
//!
//! **The rule.** For each source address the detector keeps the connections of the last
//! `window`. When they touch at least `min_ports` distinct destination ports the source is
//! *scanning*, and every later connection from it joins the same scan. The scan ends when
//! the source has been quiet for a whole `window` (seen by [`ScanDetector::tick`]); only
//! then is it reported, once, with all its distinct ports (sorted, at most
//! [`MAX_SCAN_PORTS`] listed; `distinct_ports` counts them all), its connection count and
//! its duration (first to last connection). A new scan from the same source can be
//! reported after that. A scan that goes on for [`MAX_SCAN_MS`] is reported then and a new
//! one begins, so a slow endless scan is still reported.
//!
//! **Memory is bounded:** at most `max_sources` sources are tracked (the least recently
//! seen is evicted — reported first if it was scanning), each keeps at most
//! [`WINDOW_HITS_CAP`] recent connections, and at most [`MAX_SCANNING`] sources are
//! scanning at once (each holds an 8 KiB port bitmap).

use honeybee_proto::event::MAX_SCAN_PORTS;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// Recent connections kept per source for the sliding window.
pub const WINDOW_HITS_CAP: usize = 256;
/// Sources in the scanning state at once.
pub const MAX_SCANNING: usize = 128;
/// A scan that lasts this long is reported and a new one begins.
pub const MAX_SCAN_MS: u64 = 10 * 60 * 1000;

/// Thresholds of a [`ScanDetector`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanConfig {
    /// Distinct destination ports within `window_ms` that make a scan (at least 2).
    pub min_ports: usize,
    pub window_ms: u64,
    pub max_sources: usize,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            min_ports: 5,
            window_ms: 10_000,
            max_sources: 1024,
        }
    }
}

/// One finished (or evicted) scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanReport {
    pub src: IpAddr,
    /// Sorted, distinct, at most [`MAX_SCAN_PORTS`].
    pub ports: Vec<u16>,
    pub count: u32,
    pub duration_ms: u64,
    pub distinct_ports: u32,
}

#[derive(Debug)]
struct Scan {
    first_ms: u64,
    last_ms: u64,
    count: u32,
    seen: Box<[u64; 1024]>,
    distinct: u32,
}

impl Scan {
    fn new(first_ms: u64) -> Self {
        Scan {
            first_ms,
            last_ms: first_ms,
            count: 0,
            seen: Box::new([0; 1024]),
            distinct: 0,
        }
    }

    fn add(&mut self, port: u16, now_ms: u64) {
        self.count = self.count.saturating_add(1);
        self.last_ms = self.last_ms.max(now_ms);
        let (word, bit) = (usize::from(port / 64), port % 64);
        if self.seen[word] & (1 << bit) == 0 {
            self.seen[word] |= 1 << bit;
            self.distinct = self.distinct.saturating_add(1);
        }
    }

    fn report(&self, src: IpAddr) -> ScanReport {
        let mut ports = Vec::new();
        'words: for (w, bits) in self.seen.iter().enumerate() {
            let mut bits = *bits;
            while bits != 0 {
                if ports.len() >= MAX_SCAN_PORTS {
                    break 'words;
                }
                let b = bits.trailing_zeros();
                ports.push((w as u16) * 64 + b as u16);
                bits &= bits - 1;
            }
        }
        ScanReport {
            src,
            ports,
            count: self.count,
            duration_ms: self.last_ms - self.first_ms,
            distinct_ports: self.distinct,
        }
    }
}

#[derive(Debug, Default)]
struct Source {
    last_ms: u64,
    /// (time, port) of the connections in the window, oldest first; unused while scanning.
    recent: VecDeque<(u64, u16)>,
    scan: Option<Scan>,
}

/// Per-source sliding-window scan detector; see the module documentation for the rule.
#[derive(Debug)]
pub struct ScanDetector {
    cfg: ScanConfig,
    sources: HashMap<IpAddr, Source>,
    scanning: usize,
}

impl ScanDetector {
    pub fn new(cfg: ScanConfig) -> Self {
        ScanDetector {
            cfg: ScanConfig {
                min_ports: cfg.min_ports.clamp(2, WINDOW_HITS_CAP),
                window_ms: cfg.window_ms.max(1),
                max_sources: cfg.max_sources.max(1),
            },
            sources: HashMap::new(),
            scanning: 0,
        }
    }

    /// Nothing tracked: the caller need not call [`ScanDetector::tick`].
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    pub fn tracked(&self) -> usize {
        self.sources.len()
    }

    /// Records one connection from `src` to `port` at `now_ms` (any monotonic clock).
    /// Returns the reports of scans that had to be evicted to make room, usually none.
    pub fn observe(&mut self, src: IpAddr, port: u16, now_ms: u64) -> Vec<ScanReport> {
        let mut out = Vec::new();
        if !self.sources.contains_key(&src) && self.sources.len() >= self.cfg.max_sources {
            self.evict_oldest(false, &mut out);
        }
        let s = self.sources.entry(src).or_default();
        s.last_ms = s.last_ms.max(now_ms);

        if let Some(scan) = &mut s.scan {
            if now_ms.saturating_sub(scan.first_ms) < MAX_SCAN_MS {
                scan.add(port, now_ms);
                return out;
            }
            // Too long: report what there is and start afresh.
            out.push(scan.report(src));
            s.scan = None;
            self.scanning -= 1;
            // Re-borrow after the counter changed.
            return self.observe_window(src, port, now_ms, out);
        }
        self.observe_window(src, port, now_ms, out)
    }

    fn observe_window(
        &mut self,
        src: IpAddr,
        port: u16,
        now_ms: u64,
        mut out: Vec<ScanReport>,
    ) -> Vec<ScanReport> {
        let window = self.cfg.window_ms;
        let min_ports = self.cfg.min_ports;
        let Some(s) = self.sources.get_mut(&src) else {
            return out;
        };

        while s
            .recent
            .front()
            .is_some_and(|(t, _)| now_ms.saturating_sub(*t) >= window)
        {
            s.recent.pop_front();
        }
        if s.recent.len() >= WINDOW_HITS_CAP {
            s.recent.pop_front();
        }
        s.recent.push_back((now_ms, port));
        let mut ports: Vec<u16> = s.recent.iter().map(|(_, p)| *p).collect();
        ports.sort_unstable();
        ports.dedup();
        if ports.len() < min_ports {
            return out;
        }
        let first_ms = s.recent.front().map_or(now_ms, |(t, _)| *t);
        let mut scan = Scan::new(first_ms);
        for (t, p) in s.recent.drain(..) {
            scan.add(p, t);
        }
        s.scan = Some(scan);
        self.scanning += 1;
        if self.scanning > MAX_SCANNING {
            self.evict_oldest(true, &mut out);
        }
        out
    }

    /// Reports the scans whose source has been quiet for a window, and forgets sources
    /// with nothing left in their window. Call it about every `window / 4` while
    /// [`ScanDetector::is_empty`] is false.
    pub fn tick(&mut self, now_ms: u64) -> Vec<ScanReport> {
        let window = self.cfg.window_ms;
        let mut out = Vec::new();
        let mut scanning = self.scanning;
        self.sources.retain(|src, s| {
            if now_ms.saturating_sub(s.last_ms) < window {
                return true;
            }
            if let Some(scan) = s.scan.take() {
                out.push(scan.report(*src));
                scanning -= 1;
            }
            false
        });
        self.scanning = scanning;
        out.sort_by_key(|r| r.src);
        out
    }

    /// Reports every scan in progress and forgets everything (on shutdown).
    pub fn drain(&mut self) -> Vec<ScanReport> {
        let mut out: Vec<ScanReport> = self
            .sources
            .drain()
            .filter_map(|(src, s)| s.scan.map(|scan| scan.report(src)))
            .collect();
        self.scanning = 0;
        out.sort_by_key(|r| r.src);
        out
    }

    fn evict_oldest(&mut self, scanning_only: bool, out: &mut Vec<ScanReport>) {
        let victim = self
            .sources
            .iter()
            .filter(|(_, s)| !scanning_only || s.scan.is_some())
            .min_by_key(|(ip, s)| (s.last_ms, **ip))
            .map(|(ip, _)| *ip);
        if let Some(ip) = victim
            && let Some(s) = self.sources.remove(&ip)
            && let Some(scan) = s.scan
        {
            out.push(scan.report(ip));
            self.scanning -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    fn det(min_ports: usize, window_ms: u64, max_sources: usize) -> ScanDetector {
        ScanDetector::new(ScanConfig {
            min_ports,
            window_ms,
            max_sources,
        })
    }

    #[test]
    fn one_report_per_scan_after_quiet_window() {
        let mut d = det(5, 10_000, 16);
        let mut t = 1_000;
        for p in [22u16, 80, 443, 8080, 8443, 3306, 80, 5432] {
            assert!(d.observe(ip(1), p, t).is_empty());
            t += 100;
        }
        // Still scanning: nothing yet, however often ticked.
        assert!(d.tick(t).is_empty());
        assert!(d.tick(t + 9_000).is_empty());
        let last = t - 100;
        let r = d.tick(last + 10_000);
        assert_eq!(
            r,
            vec![ScanReport {
                src: ip(1),
                ports: vec![22, 80, 443, 3306, 5432, 8080, 8443],
                count: 8,
                duration_ms: 700,
                distinct_ports: 7,
            }]
        );
        assert!(d.is_empty());
        assert!(d.tick(last + 20_000).is_empty());
    }

    #[test]
    fn below_threshold_or_spread_out_is_no_scan() {
        let mut d = det(5, 10_000, 16);
        for (i, p) in [1u16, 2, 3, 4].iter().enumerate() {
            d.observe(ip(2), *p, i as u64);
        }
        // The same port many times is not a scan.
        for i in 0..50 {
            d.observe(ip(3), 22, i);
        }
        // Five ports, but 3 s apart: never five in one 10 s window.
        for i in 0..5u16 {
            d.observe(ip(4), 100 + i, u64::from(i) * 3_000);
        }
        assert!(d.tick(100_000).is_empty());
        assert!(d.is_empty());
    }

    #[test]
    fn new_scan_after_quiet_period_is_reported_again() {
        let mut d = det(3, 1_000, 16);
        for p in 1..=3 {
            d.observe(ip(1), p, 0);
        }
        assert_eq!(d.tick(1_000).len(), 1);
        for p in 10..=12 {
            d.observe(ip(1), p, 5_000);
        }
        let r = d.tick(6_000);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].ports, vec![10, 11, 12]);
    }

    #[test]
    fn endless_scan_is_reported_in_slices() {
        let mut d = det(2, 1_000, 16);
        let mut reports = Vec::new();
        let mut t = 0;
        while t <= MAX_SCAN_MS + 1_000 {
            reports.extend(d.observe(ip(1), (t / 500 % 60_000) as u16 + 1, t));
            t += 500;
        }
        assert_eq!(reports.len(), 1);
        assert!(reports[0].duration_ms < MAX_SCAN_MS);
    }

    #[test]
    fn memory_is_bounded_and_evicted_scans_are_reported() {
        let mut d = det(2, 10_000, 4);
        d.observe(ip(1), 1, 0);
        d.observe(ip(1), 2, 1);
        let mut evicted = Vec::new();
        for n in 2..=200u8 {
            evicted.extend(d.observe(ip(n), 1, u64::from(n) * 10));
            assert!(d.tracked() <= 4);
        }
        assert_eq!(evicted.len(), 1);
        assert_eq!(evicted[0].src, ip(1));
        assert_eq!(evicted[0].ports, vec![1, 2]);

        // A full-range scan lists at most MAX_SCAN_PORTS but counts them all.
        let mut d = det(5, 10_000, 4);
        for p in 1..=u16::MAX {
            d.observe(ip(9), p, 0);
        }
        let r = d.drain();
        assert_eq!(r[0].ports.len(), MAX_SCAN_PORTS);
        assert_eq!(r[0].distinct_ports, 65535);
        assert!(r[0].ports.windows(2).all(|w| w[0] < w[1]));
    }
}
