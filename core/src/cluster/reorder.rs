//! Per-node order for the module bus tail (sans-IO: time is passed in).
//!
//! A node's batches can commit out of order on the core that stores them (a later
//! stream's batch reaching the group writer first), so a read by id can see seq 51–100
//! before 1–50. A node's sequence numbers are contiguous from 1 (the agent's spool
//! numbers them), so an event is offered as soon as it follows the last one offered;
//! one that leaves a hole waits for the hole to fill, at most [`HOLD`] — a hole that
//! never fills (events the core refused as invalid, a spool that dropped its oldest, a
//! sequence moved forward) is then passed over. An event behind the last one offered
//! (its hole was passed over before it came) is offered at once and counted late.
//!
//! Bounds: at most [`MAX_HELD`] events wait in all; past it everything held is offered.
//! The pseudo-node `core` (the cores' own events, numbered by time and slot, never
//! contiguous) is never held.

use crate::bus::BusEvent;
use honeybee_proto::NodeId;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an event waits for a hole before it in its node's sequence to fill.
pub const HOLD: Duration = Duration::from_secs(2);
/// Events held in all at most.
pub const MAX_HELD: usize = 20_000;
/// Nodes remembered at most (their next expected sequence number); past it, those with
/// nothing held are forgotten and start afresh.
const MAX_NODES: usize = 100_000;

#[derive(Debug, Default)]
struct NodeOrder {
    /// The sequence number that may be offered at once; `None` until one was offered.
    next: Option<u64>,
    held: BTreeMap<u64, Arc<BusEvent>>,
    /// When the hole at the head of `held` was first waited on.
    since: Option<Instant>,
}

/// What [`Reorder::push`] and [`Reorder::release`] counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Events offered after a later event of their node.
    pub late: u64,
    /// Holes passed over.
    pub skipped: u64,
}

#[derive(Debug, Default)]
pub struct Reorder {
    nodes: HashMap<NodeId, NodeOrder>,
    holding: HashSet<NodeId>,
    held: usize,
}

impl Reorder {
    /// Events waiting for a hole.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Forgets everything (nobody listens any more).
    pub fn clear(&mut self) {
        *self = Reorder::default();
    }

    /// Takes events in (node, seq) order; what may be offered now goes to `out`.
    pub fn push(
        &mut self,
        events: Vec<Arc<BusEvent>>,
        now: Instant,
        out: &mut Vec<Arc<BusEvent>>,
        counts: &mut Counts,
    ) {
        if self.nodes.len() > MAX_NODES {
            self.nodes.retain(|_, o| !o.held.is_empty());
        }
        for e in events {
            if e.node.as_str() == crate::correlator::CORE_NODE {
                out.push(e);
                continue;
            }
            let o = self.nodes.entry(e.node.clone()).or_default();
            match o.next {
                Some(next) if e.seq < next => {
                    counts.late += 1;
                    out.push(e);
                }
                _ => {
                    if o.held.insert(e.seq, e.clone()).is_none() {
                        self.held += 1;
                    }
                    o.since.get_or_insert(now);
                    self.holding.insert(e.node.clone());
                }
            }
        }
        self.release(now, out, counts);
    }

    /// Offers what follows its node's last offered event, and what waited past [`HOLD`]
    /// (or everything, past [`MAX_HELD`]).
    pub fn release(&mut self, now: Instant, out: &mut Vec<Arc<BusEvent>>, counts: &mut Counts) {
        let force = self.held > MAX_HELD;
        let mut done = Vec::new();
        for node in &self.holding {
            let Some(o) = self.nodes.get_mut(node) else {
                done.push(node.clone());
                continue;
            };
            while let Some((&seq, _)) = o.held.first_key_value() {
                let expected = o.next.unwrap_or(1);
                let overdue = force || o.since.is_some_and(|t| now.duration_since(t) >= HOLD);
                if seq > expected && !overdue {
                    break;
                }
                if seq > expected {
                    counts.skipped += 1;
                }
                let (seq, e) = o.held.pop_first().expect("a first entry");
                self.held -= 1;
                o.next = Some(seq + 1);
                out.push(e);
                // A new head: a hole after it is waited on afresh.
                o.since = Some(now);
            }
            if o.held.is_empty() {
                o.since = None;
                done.push(node.clone());
            }
        }
        for n in done {
            self.holding.remove(&n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(node: &str, seq: u64) -> Arc<BusEvent> {
        Arc::new(BusEvent {
            node: NodeId::new(node).unwrap(),
            seq,
            kind: "command",
            service: "ssh".into(),
            src_ip: None,
            labels: Arc::new(Vec::new()),
            json: "{}".into(),
        })
    }

    fn seqs(v: &[Arc<BusEvent>]) -> Vec<(String, u64)> {
        v.iter().map(|e| (e.node.to_string(), e.seq)).collect()
    }

    #[test]
    fn a_later_batch_waits_for_the_earlier_one() {
        let t = Instant::now();
        let mut r = Reorder::default();
        let (mut out, mut c) = (Vec::new(), Counts::default());
        r.push(
            vec![ev("a", 3), ev("a", 4), ev("b", 1)],
            t,
            &mut out,
            &mut c,
        );
        assert_eq!(seqs(&out), [("b".into(), 1)]);
        assert_eq!(r.held(), 2);
        out.clear();
        r.push(vec![ev("a", 1), ev("a", 2)], t, &mut out, &mut c);
        assert_eq!(
            seqs(&out),
            [
                ("a".into(), 1),
                ("a".into(), 2),
                ("a".into(), 3),
                ("a".into(), 4)
            ]
        );
        assert_eq!((r.held(), c), (0, Counts::default()));
    }

    #[test]
    fn a_hole_that_never_fills_is_passed_over_after_the_hold_and_a_straggler_is_late() {
        let t = Instant::now();
        let mut r = Reorder::default();
        let (mut out, mut c) = (Vec::new(), Counts::default());
        r.push(vec![ev("a", 1), ev("a", 5)], t, &mut out, &mut c);
        assert_eq!(seqs(&out), [("a".into(), 1)]);
        r.release(t + HOLD / 2, &mut out, &mut c);
        assert_eq!(out.len(), 1, "still waiting");
        r.release(t + HOLD, &mut out, &mut c);
        assert_eq!(seqs(&out), [("a".into(), 1), ("a".into(), 5)]);
        assert_eq!(c.skipped, 1);
        out.clear();
        r.push(vec![ev("a", 3), ev("a", 6)], t + HOLD, &mut out, &mut c);
        assert_eq!(seqs(&out), [("a".into(), 3), ("a".into(), 6)]);
        assert_eq!(c.late, 1);
    }

    #[test]
    fn the_cores_own_events_are_never_held_and_the_hold_is_bounded() {
        let t = Instant::now();
        let mut r = Reorder::default();
        let (mut out, mut c) = (Vec::new(), Counts::default());
        r.push(
            vec![ev("core", 17_001), ev("core", 9_002)],
            t,
            &mut out,
            &mut c,
        );
        assert_eq!(out.len(), 2);
        out.clear();
        // Every event leaves a hole: past MAX_HELD all of it is offered at once, in order.
        let many: Vec<_> = (0..=MAX_HELD as u64).map(|i| ev("a", 2 * i + 3)).collect();
        r.push(many, t, &mut out, &mut c);
        assert_eq!(r.held(), 0);
        assert_eq!(out.len(), MAX_HELD + 1);
        assert!(out.windows(2).all(|w| w[0].seq < w[1].seq));
    }
}
