//! Per-node budgets: token buckets for certificate renewals, telemetry events and capture
//! bytes, so one noisy or compromised node cannot starve the store or the CA. Sans-IO:
//! time is passed in; the node handler decides what to do with the answer (delay acks,
//! refuse a renewal or a capture) and reports `limit_reached`, at most once per node and
//! limit per [`REPORT_INTERVAL`].

use honeybee_proto::NodeId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one `limit_reached` event (or throttled audit row) per node and limit per
/// interval; the occurrences in between are counted into the next one.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(60);
/// Nodes whose buckets are kept; past it, nodes whose buckets are full again (idle ones,
/// which lose nothing by being forgotten) are dropped.
const MAX_NODES: usize = 100_000;

/// A token bucket: `capacity` tokens, refilled at `rate` per second. `reserve` may go into
/// debt, which later callers wait out: that is what turns a flood into backpressure.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(capacity: f64, rate_per_s: f64, now: Instant) -> Self {
        TokenBucket {
            capacity: capacity.max(1.0),
            rate: rate_per_s.max(f64::MIN_POSITIVE),
            tokens: capacity.max(1.0),
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate).min(self.capacity);
        self.at = self.at.max(now);
    }

    /// Takes `n` tokens now (at most a full bucket's worth, so a request larger than the
    /// burst can still pass, alone), going into debt if there are not enough. Returns how
    /// long the caller must wait before acting so that the rate holds; zero if none.
    pub fn reserve(&mut self, n: f64, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= n.min(self.capacity);
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((-self.tokens / self.rate).min(86_400.0 * 365.0))
        }
    }

    /// Takes `n` tokens if there are that many; otherwise takes nothing.
    pub fn try_take(&mut self, n: f64, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.capacity
    }
}

/// The budgets every node gets (`[limits]` in core.toml).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetConfig {
    /// Certificate renewals per hour (the bucket holds this many).
    pub renewals_per_hour: u32,
    /// Telemetry events per second, sustained.
    pub events_per_second: u32,
    /// Events a node may send at once above the rate (a backlog after an outage).
    pub event_burst: u32,
    /// Capture bytes per hour (the bucket holds an hour's worth).
    pub capture_bytes_per_hour: u64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            renewals_per_hour: 6,
            events_per_second: 2_000,
            event_burst: 50_000,
            capture_bytes_per_hour: 4 * 1024 * 1024 * 1024,
        }
    }
}

/// What a node ran out of. Also names what is throttled for reporting only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Renewals,
    Events,
    CaptureBytes,
    /// Not a budget: batches with invalid events, audited at most once per interval.
    InvalidEvents,
}

impl Limit {
    /// The `limit` field of the `limit_reached` event: the config key that sets it.
    pub fn name(self) -> &'static str {
        match self {
            Limit::Renewals => "node_renewals_per_hour",
            Limit::Events => "node_events_per_second",
            Limit::CaptureBytes => "node_capture_bytes_per_hour",
            Limit::InvalidEvents => "invalid_events",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug)]
struct NodeBudget {
    renewals: TokenBucket,
    events: TokenBucket,
    capture: TokenBucket,
    /// Per [`Limit`]: when it was last reported, and occurrences since.
    reported: [Option<Instant>; 4],
    pending: [u64; 4],
}

/// Every node's buckets.
#[derive(Debug)]
pub struct NodeBudgets {
    cfg: BudgetConfig,
    nodes: Mutex<HashMap<NodeId, NodeBudget>>,
}

impl NodeBudgets {
    pub fn new(cfg: BudgetConfig) -> Self {
        NodeBudgets {
            cfg,
            nodes: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> BudgetConfig {
        self.cfg
    }

    fn with<T>(&self, node: &NodeId, now: Instant, f: impl FnOnce(&mut NodeBudget) -> T) -> T {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        if nodes.len() >= MAX_NODES && !nodes.contains_key(node) {
            nodes.retain(|_, b| {
                !(b.renewals.is_full(now) && b.events.is_full(now) && b.capture.is_full(now))
            });
        }
        let cfg = self.cfg;
        let b = nodes.entry(node.clone()).or_insert_with(|| NodeBudget {
            renewals: TokenBucket::new(
                f64::from(cfg.renewals_per_hour),
                f64::from(cfg.renewals_per_hour) / 3600.0,
                now,
            ),
            events: TokenBucket::new(
                f64::from(cfg.event_burst),
                f64::from(cfg.events_per_second),
                now,
            ),
            capture: TokenBucket::new(
                cfg.capture_bytes_per_hour as f64,
                cfg.capture_bytes_per_hour as f64 / 3600.0,
                now,
            ),
            reported: [None; 4],
            pending: [0; 4],
        });
        f(b)
    }

    /// Reserves `n` events for `node`; returns how long to hold the batch (and its ack)
    /// so the node stays within its rate. Zero when within budget.
    pub fn events(&self, node: &NodeId, n: u64, now: Instant) -> Duration {
        self.with(node, now, |b| b.events.reserve(n as f64, now))
    }

    /// Whether `node` may renew its certificate now.
    pub fn renewal(&self, node: &NodeId, now: Instant) -> bool {
        self.with(node, now, |b| b.renewals.try_take(1.0, now))
    }

    /// Whether `node` may upload `bytes` more capture bytes now.
    pub fn capture(&self, node: &NodeId, bytes: u64, now: Instant) -> bool {
        self.with(node, now, |b| b.capture.try_take(bytes as f64, now))
    }

    /// Counts one occurrence of `limit` for `node`. Returns `Some(count)` (occurrences
    /// since the last report, this one included) when it is time to report, at most once
    /// per [`REPORT_INTERVAL`] per node and limit.
    pub fn report(&self, node: &NodeId, limit: Limit, now: Instant) -> Option<u64> {
        self.with(node, now, |b| {
            let i = limit.index();
            b.pending[i] += 1;
            let due =
                b.reported[i].is_none_or(|t| now.saturating_duration_since(t) >= REPORT_INTERVAL);
            if !due {
                return None;
            }
            b.reported[i] = Some(now);
            Some(std::mem::take(&mut b.pending[i]))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    #[test]
    fn events_within_burst_pass_then_wait_at_the_rate() {
        let b = NodeBudgets::new(BudgetConfig {
            events_per_second: 100,
            event_burst: 1000,
            ..Default::default()
        });
        let t0 = Instant::now();
        let a = node("a");
        assert_eq!(b.events(&a, 1000, t0), Duration::ZERO);
        // 500 more: 5 s at 100/s.
        assert_eq!(b.events(&a, 500, t0), Duration::from_secs(5));
        // Another node is not affected.
        assert_eq!(b.events(&node("b"), 1000, t0), Duration::ZERO);
        // After the debt is paid and a little more, a small batch passes at once.
        assert_eq!(
            b.events(&a, 100, t0 + Duration::from_secs(6)),
            Duration::ZERO
        );
        // A batch larger than the burst costs a full bucket, so it can pass alone.
        let c = node("c");
        assert_eq!(b.events(&c, 5000, t0), Duration::ZERO);
    }

    #[test]
    fn renewals_and_captures_are_refused_past_the_budget() {
        let b = NodeBudgets::new(BudgetConfig {
            renewals_per_hour: 2,
            capture_bytes_per_hour: 1000,
            ..Default::default()
        });
        let t0 = Instant::now();
        let a = node("a");
        assert!(b.renewal(&a, t0) && b.renewal(&a, t0));
        assert!(!b.renewal(&a, t0));
        assert!(b.renewal(&a, t0 + Duration::from_secs(1800)));
        assert!(b.capture(&a, 600, t0));
        assert!(!b.capture(&a, 600, t0));
        assert!(b.capture(&a, 400, t0));
        assert!(b.capture(&a, 600, t0 + Duration::from_secs(3600)));
    }

    #[test]
    fn reports_are_throttled_and_counted() {
        let b = NodeBudgets::new(BudgetConfig::default());
        let t0 = Instant::now();
        let a = node("a");
        assert_eq!(b.report(&a, Limit::Events, t0), Some(1));
        for i in 1..=1000 {
            assert_eq!(
                b.report(&a, Limit::Events, t0 + Duration::from_millis(i)),
                None
            );
        }
        assert_eq!(b.report(&a, Limit::Renewals, t0), Some(1));
        assert_eq!(
            b.report(&a, Limit::Events, t0 + REPORT_INTERVAL),
            Some(1001)
        );
    }
}
