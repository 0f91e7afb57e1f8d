//! Cross-node scan correlation, sans-IO: probes reported by different nodes go in with the
//! time, one report per network-wide scan comes out.
//!
//! **The rule.** Each node only sees its own ports; a scanner sweeping a network shows up
//! as a few connections on each of many nodes. For each source address the detector keeps
//! the (node, port) hits of the last `window`. When they span at least `min_nodes`
//! distinct nodes the source is *sweeping*, and every later hit joins the same sweep. The
//! sweep ends when the source has been quiet for a whole `window` (seen by
//! [`SweepDetector::tick`]); only then is it reported, once, with its nodes, ports,
//! hit count and duration. A sweep that lasts [`MAX_SWEEP_MS`] is reported then and a new
//! one begins.
//!
//! **Memory is bounded:** at most `max_sources` sources are tracked (the least recently
//! seen is evicted, reported first if it was sweeping), each keeps at most
//! [`WINDOW_HITS_CAP`] recent hits, at most [`MAX_SWEEPING`] sources sweep at once, and a
//! sweep remembers at most [`MAX_SWEEP_NODES`] nodes and [`MAX_SCAN_PORTS`] ports (the
//! counts go on).

use honeybee_proto::NodeId;
use honeybee_proto::event::MAX_SCAN_PORTS;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;

/// Recent hits kept per source for the sliding window.
pub const WINDOW_HITS_CAP: usize = 256;
/// Sources in the sweeping state at once.
pub const MAX_SWEEPING: usize = 256;
/// Nodes one sweep lists.
pub const MAX_SWEEP_NODES: usize = 256;
/// A sweep that lasts this long is reported and a new one begins.
pub const MAX_SWEEP_MS: u64 = 10 * 60 * 1000;

/// Thresholds of a [`SweepDetector`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepConfig {
    /// Distinct nodes within `window_ms` that make a sweep (at least 2).
    pub min_nodes: usize,
    pub window_ms: u64,
    pub max_sources: usize,
}

impl Default for SweepConfig {
    fn default() -> Self {
        SweepConfig {
            min_nodes: 3,
            window_ms: 60_000,
            max_sources: 4096,
        }
    }
}

/// One finished (or evicted) sweep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub src: IpAddr,
    /// Sorted, distinct, at most [`MAX_SWEEP_NODES`].
    pub nodes: Vec<NodeId>,
    /// Sorted, distinct, at most [`MAX_SCAN_PORTS`].
    pub ports: Vec<u16>,
    pub count: u32,
    pub duration_ms: u64,
    pub distinct_nodes: u32,
    pub distinct_ports: u32,
}

#[derive(Debug)]
struct Sweep {
    first_ms: u64,
    last_ms: u64,
    count: u32,
    nodes: BTreeSet<NodeId>,
    distinct_nodes: u32,
    ports: BTreeSet<u16>,
    distinct_ports: u32,
}

impl Sweep {
    fn new(first_ms: u64) -> Self {
        Sweep {
            first_ms,
            last_ms: first_ms,
            count: 0,
            nodes: BTreeSet::new(),
            distinct_nodes: 0,
            ports: BTreeSet::new(),
            distinct_ports: 0,
        }
    }

    fn add(&mut self, node: &NodeId, port: u16, now_ms: u64) {
        self.count = self.count.saturating_add(1);
        self.last_ms = self.last_ms.max(now_ms);
        // Past the caps the lists stop growing; the counts of new ones go on only while
        // they can still be told apart, which is the honest figure we have.
        if !self.nodes.contains(node) && self.nodes.len() < MAX_SWEEP_NODES {
            self.nodes.insert(node.clone());
            self.distinct_nodes += 1;
        }
        if !self.ports.contains(&port) && self.ports.len() < MAX_SCAN_PORTS {
            self.ports.insert(port);
            self.distinct_ports += 1;
        }
    }

    fn report(&self, src: IpAddr) -> SweepReport {
        SweepReport {
            src,
            nodes: self.nodes.iter().cloned().collect(),
            ports: self.ports.iter().copied().collect(),
            count: self.count,
            duration_ms: self.last_ms - self.first_ms,
            distinct_nodes: self.distinct_nodes,
            distinct_ports: self.distinct_ports,
        }
    }
}

#[derive(Debug, Default)]
struct Source {
    last_ms: u64,
    /// (time, node, port) of the hits in the window, oldest first; unused while sweeping.
    recent: VecDeque<(u64, NodeId, u16)>,
    sweep: Option<Sweep>,
}

/// Per-source sliding-window sweep detector; see the module documentation for the rule.
#[derive(Debug)]
pub struct SweepDetector {
    cfg: SweepConfig,
    sources: HashMap<IpAddr, Source>,
    sweeping: usize,
}

impl SweepDetector {
    pub fn new(cfg: SweepConfig) -> Self {
        SweepDetector {
            cfg: SweepConfig {
                min_nodes: cfg.min_nodes.clamp(2, WINDOW_HITS_CAP),
                window_ms: cfg.window_ms.max(1),
                max_sources: cfg.max_sources.max(1),
            },
            sources: HashMap::new(),
            sweeping: 0,
        }
    }

    pub fn tracked(&self) -> usize {
        self.sources.len()
    }

    /// Records that `node` saw `src` probe `port` at `now_ms` (any monotonic clock).
    /// Returns reports of sweeps that ended early (evicted, or too long), usually none.
    pub fn observe(
        &mut self,
        src: IpAddr,
        node: &NodeId,
        port: u16,
        now_ms: u64,
    ) -> Vec<SweepReport> {
        let mut out = Vec::new();
        if !self.sources.contains_key(&src) && self.sources.len() >= self.cfg.max_sources {
            self.evict_oldest(&mut out);
        }
        let s = self.sources.entry(src).or_default();
        s.last_ms = s.last_ms.max(now_ms);
        if let Some(sweep) = &mut s.sweep {
            if now_ms.saturating_sub(sweep.first_ms) < MAX_SWEEP_MS {
                sweep.add(node, port, now_ms);
                return out;
            }
            out.push(sweep.report(src));
            s.sweep = None;
            self.sweeping -= 1;
        }
        self.observe_window(src, node, port, now_ms, &mut out);
        out
    }

    fn observe_window(
        &mut self,
        src: IpAddr,
        node: &NodeId,
        port: u16,
        now_ms: u64,
        out: &mut Vec<SweepReport>,
    ) {
        let window = self.cfg.window_ms;
        let Some(s) = self.sources.get_mut(&src) else {
            return;
        };
        while s
            .recent
            .front()
            .is_some_and(|(t, _, _)| now_ms.saturating_sub(*t) >= window)
        {
            s.recent.pop_front();
        }
        if s.recent.len() >= WINDOW_HITS_CAP {
            s.recent.pop_front();
        }
        s.recent.push_back((now_ms, node.clone(), port));
        let nodes: BTreeSet<&NodeId> = s.recent.iter().map(|(_, n, _)| n).collect();
        if nodes.len() < self.cfg.min_nodes {
            return;
        }
        // Threshold crossed: the hits in the window become the start of the sweep.
        if self.sweeping >= MAX_SWEEPING {
            self.evict_oldest_sweeping(src, out);
        }
        let Some(s) = self.sources.get_mut(&src) else {
            return;
        };
        let first = s.recent.front().map_or(now_ms, |(t, _, _)| *t);
        let mut sweep = Sweep::new(first);
        for (t, n, p) in s.recent.drain(..) {
            sweep.add(&n, p, t);
        }
        s.sweep = Some(sweep);
        self.sweeping += 1;
    }

    /// Reports sweeps whose source has been quiet for a window, and forgets sources with
    /// nothing in their window. Call it about once a second.
    pub fn tick(&mut self, now_ms: u64) -> Vec<SweepReport> {
        let window = self.cfg.window_ms;
        let mut out = Vec::new();
        let mut ended = 0;
        self.sources.retain(|src, s| {
            if now_ms.saturating_sub(s.last_ms) < window {
                return true;
            }
            if let Some(sweep) = &s.sweep {
                out.push(sweep.report(*src));
                ended += 1;
            }
            false
        });
        self.sweeping -= ended;
        out
    }

    fn evict_oldest(&mut self, out: &mut Vec<SweepReport>) {
        let Some((&src, _)) = self.sources.iter().min_by_key(|(_, s)| s.last_ms) else {
            return;
        };
        if let Some(s) = self.sources.remove(&src)
            && let Some(sweep) = s.sweep
        {
            out.push(sweep.report(src));
            self.sweeping -= 1;
        }
    }

    fn evict_oldest_sweeping(&mut self, except: IpAddr, out: &mut Vec<SweepReport>) {
        let oldest = self
            .sources
            .iter()
            .filter(|(ip, s)| **ip != except && s.sweep.is_some())
            .min_by_key(|(_, s)| s.last_ms)
            .map(|(ip, _)| *ip);
        if let Some(ip) = oldest
            && let Some(s) = self.sources.get_mut(&ip)
            && let Some(sweep) = s.sweep.take()
        {
            out.push(sweep.report(ip));
            self.sweeping -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    fn cfg() -> SweepConfig {
        SweepConfig {
            min_nodes: 3,
            window_ms: 1_000,
            max_sources: 16,
        }
    }

    #[test]
    fn one_report_per_sweep_across_nodes() {
        let mut d = SweepDetector::new(cfg());
        let mut t = 0;
        for node in ["a", "b", "c", "d"] {
            for port in [22, 80, 443] {
                assert!(d.observe(ip(1), &n(node), port, t).is_empty());
                t += 10;
            }
        }
        assert!(d.tick(t + 500).is_empty(), "still inside the quiet window");
        let r = d.tick(t + 2_000);
        assert_eq!(r.len(), 1);
        let r = &r[0];
        assert_eq!(r.src, ip(1));
        assert_eq!(r.nodes, vec![n("a"), n("b"), n("c"), n("d")]);
        assert_eq!(r.ports, vec![22, 80, 443]);
        assert_eq!(r.count, 12);
        assert_eq!(r.duration_ms, 110);
        assert_eq!(r.distinct_nodes, 4);
        assert_eq!(d.tracked(), 0);
    }

    #[test]
    fn many_ports_on_one_node_or_slow_probes_are_not_a_sweep() {
        let mut d = SweepDetector::new(cfg());
        for port in 1..200 {
            d.observe(ip(2), &n("a"), port, u64::from(port));
        }
        // Two nodes, then a third long after the window: never three at once.
        d.observe(ip(3), &n("a"), 22, 0);
        d.observe(ip(3), &n("b"), 22, 10);
        d.observe(ip(3), &n("c"), 22, 5_000);
        assert!(d.tick(10_000).is_empty());
    }

    #[test]
    fn sources_are_bounded_and_evicted_sweeps_are_reported() {
        let mut d = SweepDetector::new(cfg());
        for node in ["a", "b", "c"] {
            d.observe(ip(1), &n(node), 22, 0);
        }
        let mut reports = Vec::new();
        for i in 0..40u8 {
            reports.extend(d.observe(ip(100 + i), &n("a"), 22, 100 + u64::from(i)));
        }
        assert!(d.tracked() <= 16);
        assert_eq!(
            reports.len(),
            1,
            "the sweeping source was evicted and reported"
        );
        assert_eq!(reports[0].src, ip(1));
    }

    #[test]
    fn an_endless_sweep_is_reported_in_parts() {
        let mut d = SweepDetector::new(cfg());
        let mut reports = Vec::new();
        let mut t = 0;
        while t < MAX_SWEEP_MS + 5_000 {
            for node in ["a", "b", "c"] {
                reports.extend(d.observe(ip(9), &n(node), 23, t));
            }
            t += 500;
        }
        assert_eq!(reports.len(), 1);
        assert!(reports[0].duration_ms < MAX_SWEEP_MS);
        reports.extend(d.tick(t + 10_000));
        assert_eq!(reports.len(), 2);
    }
}
