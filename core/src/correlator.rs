//! Drives the cross-node [`SweepDetector`](crate::sweep::SweepDetector): node handlers offer
//! the probes they store, a task ticks the detector and stores each finished network scan
//! as a `scan_detected` event of the pseudo-node `core` (and offers it to modules).
//!
//! In a cluster of cores only the elected one runs the detector, fed with every core's
//! probes (`cluster/correlate.rs`); the others drop theirs.
//!
//! Offering never blocks ingest: the queue is bounded and a full queue drops the probe,
//! counted in the log.

use crate::server::Shared;
use crate::sweep::{SweepConfig, SweepDetector, SweepReport};
use honeybee_proto::NodeId;
use honeybee_proto::event::{Event, EventKind};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Probes waiting for the detector.
const QUEUE: usize = 16_384;
/// The node id and service name of the events the correlator stores.
pub const CORE_NODE: &str = "core";
pub const SERVICE: &str = "correlator";

/// One probe a node saw: a source touching ports of that node.
#[derive(Debug)]
pub struct Probe {
    pub src: IpAddr,
    pub node: NodeId,
    pub ports: Vec<u16>,
}

/// The sending side, held in [`Shared`]; `None` inside when correlation is off.
#[derive(Debug)]
pub struct Correlator {
    tx: Option<mpsc::Sender<Probe>>,
    dropped: AtomicU64,
}

impl Correlator {
    /// A correlator and the receiver its task drains; `enabled = false` makes `offer` a no-op.
    pub fn new(enabled: bool) -> (Correlator, Option<mpsc::Receiver<Probe>>) {
        if !enabled {
            return (
                Correlator {
                    tx: None,
                    dropped: AtomicU64::new(0),
                },
                None,
            );
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            Correlator {
                tx: Some(tx),
                dropped: AtomicU64::new(0),
            },
            Some(rx),
        )
    }

    /// Offers the probes among newly stored events of `node`: connections, and the ports
    /// of a node's own scan reports. Events of the correlator itself are never offered.
    pub fn offer<'a>(&self, node: &NodeId, events: impl IntoIterator<Item = &'a Event>) {
        let Some(tx) = &self.tx else { return };
        if node.as_str() == CORE_NODE {
            return;
        }
        for e in events {
            let Some(src) = e.src else { continue };
            let ports = match &e.kind {
                EventKind::Connect => match e.dst {
                    Some(d) => vec![d.port()],
                    None => continue,
                },
                EventKind::ScanDetected { ports, .. } => ports.clone(),
                _ => continue,
            };
            let probe = Probe {
                src: src.ip(),
                node: node.clone(),
                ports,
            };
            if tx.try_send(probe).is_err() {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(dropped = n, "scan correlation queue full; probes dropped");
                }
            }
        }
    }
}

/// Runs the detector until the core stops (the task is aborted then).
pub async fn run(mut rx: mpsc::Receiver<Probe>, shared: Arc<Shared>, cfg: SweepConfig) {
    let mut detector = SweepDetector::new(cfg);
    let started = tokio::time::Instant::now();
    let now = || started.elapsed().as_millis() as u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // In a cluster only the elected core correlates (`cluster/correlate.rs`); the
        // others drop their probes, which reach it through its tail of their events, and
        // a core that stops correlating forgets its sweeps (the new one starts afresh:
        // a sweep is never reported twice).
        let leading = shared.cluster.as_ref().is_none_or(|c| c.correlating());
        if !leading && detector.tracked() > 0 {
            detector = SweepDetector::new(cfg);
        }
        let reports = tokio::select! {
            probe = rx.recv() => match probe {
                Some(_) if !leading => Vec::new(),
                Some(p) => {
                    let t = now();
                    let mut out = Vec::new();
                    for port in p.ports {
                        out.extend(detector.observe(p.src, &p.node, port, t));
                    }
                    out
                }
                None => return,
            },
            _ = tick.tick() => if leading { detector.tick(now()) } else { Vec::new() },
        };
        for r in reports {
            store(&shared, r).await;
        }
    }
}

/// Sequence numbers for the pseudo-node (one clock in `Shared`, for every event the core
/// records itself): the wall clock in microseconds, kept strictly
/// increasing, so they stay unique across core restarts without a counter on disk.
///
/// Several cores on one database (`cluster/`) share the pseudo-node: each takes its own
/// slot (0 to [`SeqClock::SLOTS`] − 1, unique among live cores) and its numbers are
/// `ms × 1000 + slot`, stepping by 1000, so two cores never make the same number.
#[derive(Debug, Default)]
pub struct SeqClock {
    last: u64,
    /// `None`: a single core (every microsecond is its own).
    slot: Option<u16>,
}

impl SeqClock {
    /// Slots of a millisecond: at most this many cores record events at once.
    pub const SLOTS: u16 = 1000;

    /// The clock of a core in a cluster, in `slot` (below [`SeqClock::SLOTS`]).
    pub fn in_slot(slot: u16) -> SeqClock {
        SeqClock {
            last: 0,
            slot: Some(slot % Self::SLOTS),
        }
    }

    pub fn next_seq(&mut self) -> u64 {
        let now_us = u64::try_from(crate::now_ms()).unwrap_or(0) * 1000;
        self.last = match self.slot {
            None => now_us.max(self.last + 1),
            Some(slot) => (now_us + u64::from(slot)).max(self.last + u64::from(Self::SLOTS)),
        };
        self.last
    }
}

async fn store(shared: &Arc<Shared>, r: SweepReport) {
    tracing::info!(src = %r.src, nodes = r.distinct_nodes, ports = r.distinct_ports, count = r.count, "network scan detected");
    let kind = EventKind::NetworkScanDetected {
        nodes: r.nodes.iter().map(|n| n.as_str().to_owned()).collect(),
        ports: r.ports,
        count: r.count,
        duration_ms: r.duration_ms,
        distinct_nodes: r.distinct_nodes,
        distinct_ports: r.distinct_ports,
    };
    shared
        .record_core_event(SERVICE, Some(std::net::SocketAddr::new(r.src, 0)), kind)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clustered_clocks_never_meet_and_each_increases() {
        let mut clocks: Vec<SeqClock> = (0..3).map(SeqClock::in_slot).collect();
        let mut seen = std::collections::HashSet::new();
        let mut last = [0u64; 3];
        // A burst far past one number per millisecond per core.
        for _ in 0..5000 {
            for (i, c) in clocks.iter_mut().enumerate() {
                let s = c.next_seq();
                assert!(s > last[i]);
                assert_eq!(s % 1000, i as u64);
                assert!(seen.insert(s), "{s} made twice");
                last[i] = s;
            }
        }
    }

    #[test]
    fn seq_clock_is_strictly_increasing() {
        let mut c = SeqClock::default();
        let a = c.next_seq();
        let b = c.next_seq();
        assert!(b > a);
    }
}
