//! The relay's flow table, sans-IO: which LAN source address has which flow, a cap on
//! flows, a byte budget per flow (token bucket), and idle expiry. Time is passed in.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Identifies one flow for its whole life; never reused.
pub type FlowId = u64;

/// What a relay allows its downstream nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowLimits {
    /// Flows (downstream source addresses) at once.
    pub max_flows: usize,
    /// A flow with no datagram from its node for this long is closed. Nodes send a
    /// keep-alive every 10 s, so a live node never idles out.
    pub idle: Duration,
    /// Sustained bytes per second one flow may send towards the core.
    pub bytes_per_sec: u64,
    /// Bytes one flow may send in a burst.
    pub burst_bytes: u64,
}

impl Default for FlowLimits {
    fn default() -> Self {
        FlowLimits {
            max_flows: 256,
            idle: Duration::from_secs(60),
            bytes_per_sec: 8 * 1024 * 1024,
            burst_bytes: 16 * 1024 * 1024,
        }
    }
}

/// The table's answer for one datagram from the LAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Forward on this existing flow.
    Existing(FlowId),
    /// A new source: open this flow, then forward.
    New(FlowId),
    /// Drop: the flow cap is reached.
    TooManyFlows,
    /// Drop: this flow has spent its byte budget for now.
    OverBudget(FlowId),
}

#[derive(Debug)]
struct Entry {
    id: FlowId,
    last_seen: Instant,
    tokens: u64,
    refilled: Instant,
}

#[derive(Debug)]
pub struct FlowTable {
    limits: FlowLimits,
    flows: HashMap<SocketAddr, Entry>,
    next: FlowId,
}

impl FlowTable {
    pub fn new(limits: FlowLimits) -> Self {
        FlowTable {
            limits,
            flows: HashMap::new(),
            next: 1,
        }
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Accounts for a datagram of `len` bytes from `from` and says what to do with it.
    pub fn admit(&mut self, from: SocketAddr, len: usize, now: Instant) -> Admit {
        let limits = &self.limits;
        let len = len as u64;
        if let Some(e) = self.flows.get_mut(&from) {
            e.last_seen = now;
            let earned = now.saturating_duration_since(e.refilled).as_secs_f64()
                * limits.bytes_per_sec as f64;
            if earned >= 1.0 {
                e.tokens = (e.tokens.saturating_add(earned as u64)).min(limits.burst_bytes);
                e.refilled = now;
            }
            if e.tokens < len {
                return Admit::OverBudget(e.id);
            }
            e.tokens -= len;
            return Admit::Existing(e.id);
        }
        if self.flows.len() >= limits.max_flows {
            return Admit::TooManyFlows;
        }
        let id = self.next;
        self.next += 1;
        self.flows.insert(
            from,
            Entry {
                id,
                last_seen: now,
                tokens: limits.burst_bytes.saturating_sub(len),
                refilled: now,
            },
        );
        Admit::New(id)
    }

    /// Forgets flow `id` of `from` (its stream ended); a newer flow of the same source
    /// is left alone. Returns whether it was removed.
    pub fn ended(&mut self, from: SocketAddr, id: FlowId) -> bool {
        if self.flows.get(&from).is_some_and(|e| e.id == id) {
            self.flows.remove(&from);
            return true;
        }
        false
    }

    /// Removes and returns the flows idle for longer than the limit.
    pub fn expire(&mut self, now: Instant) -> Vec<(SocketAddr, FlowId)> {
        let idle = self.limits.idle;
        let stale: Vec<(SocketAddr, FlowId)> = self
            .flows
            .iter()
            .filter(|(_, e)| now.saturating_duration_since(e.last_seen) >= idle)
            .map(|(a, e)| (*a, e.id))
            .collect();
        for (a, _) in &stale {
            self.flows.remove(a);
        }
        stale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    fn limits() -> FlowLimits {
        FlowLimits {
            max_flows: 2,
            idle: Duration::from_secs(60),
            bytes_per_sec: 1000,
            burst_bytes: 3000,
        }
    }

    #[test]
    fn one_flow_per_source_and_a_cap() {
        let t0 = Instant::now();
        let mut t = FlowTable::new(limits());
        let Admit::New(a) = t.admit(addr(1), 100, t0) else {
            panic!()
        };
        assert_eq!(t.admit(addr(1), 100, t0), Admit::Existing(a));
        let Admit::New(b) = t.admit(addr(2), 100, t0) else {
            panic!()
        };
        assert_ne!(a, b);
        assert_eq!(t.admit(addr(3), 100, t0), Admit::TooManyFlows);
        assert!(t.ended(addr(1), a));
        let Admit::New(c) = t.admit(addr(3), 100, t0) else {
            panic!()
        };
        assert!(c > b, "ids are never reused");
    }

    #[test]
    fn ended_ignores_a_stale_id() {
        let t0 = Instant::now();
        let mut t = FlowTable::new(limits());
        let Admit::New(old) = t.admit(addr(1), 10, t0) else {
            panic!()
        };
        assert!(t.ended(addr(1), old));
        let Admit::New(new) = t.admit(addr(1), 10, t0) else {
            panic!()
        };
        assert!(
            !t.ended(addr(1), old),
            "the old flow's end must not close the new"
        );
        assert_eq!(t.admit(addr(1), 10, t0), Admit::Existing(new));
    }

    #[test]
    fn byte_budget_refills_over_time() {
        let t0 = Instant::now();
        let mut t = FlowTable::new(limits());
        let Admit::New(a) = t.admit(addr(1), 1500, t0) else {
            panic!()
        };
        assert_eq!(t.admit(addr(1), 1500, t0), Admit::Existing(a));
        // Burst of 3000 spent.
        assert_eq!(t.admit(addr(1), 1, t0), Admit::OverBudget(a));
        // 1000 bytes/s: half a second later, 500 bytes.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(t.admit(addr(1), 400, t1), Admit::Existing(a));
        assert_eq!(t.admit(addr(1), 400, t1), Admit::OverBudget(a));
        // Never more than the burst, however long the wait.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!(t.admit(addr(1), 3000, t2), Admit::Existing(a));
        assert_eq!(t.admit(addr(1), 100, t2), Admit::OverBudget(a));
        // Another source has its own budget.
        assert!(matches!(t.admit(addr(2), 3000, t2), Admit::New(_)));
    }

    #[test]
    fn idle_flows_expire_and_active_ones_stay() {
        let t0 = Instant::now();
        let mut t = FlowTable::new(limits());
        let Admit::New(a) = t.admit(addr(1), 10, t0) else {
            panic!()
        };
        let Admit::New(_) = t.admit(addr(2), 10, t0) else {
            panic!()
        };
        let t1 = t0 + Duration::from_secs(50);
        t.admit(addr(2), 10, t1);
        assert!(t.expire(t1).is_empty());
        let t2 = t0 + Duration::from_secs(61);
        assert_eq!(t.expire(t2), vec![(addr(1), a)]);
        assert_eq!(t.len(), 1);
        assert_eq!(t.expire(t0 + Duration::from_secs(200)).len(), 1);
        assert!(t.is_empty());
    }
}
