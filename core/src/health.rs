//! A node's health state (healthy / degraded / offline), assessed here and nowhere else.
//!
//! The core is the one place that sees every health report, knows each node's
//! configuration (which services are enabled) and whether it has a live connection, and
//! can raise an alert; the CLI and the dashboard only display what it answers to
//! `AdminRequest::NodeHealth`.

use honeybee_proto::NodeId;
use honeybee_proto::admin::{NodeHealthInfo, NodeState};
use honeybee_proto::config::NodeConfig;
use honeybee_proto::control::Health;
use std::collections::HashMap;

pub use crate::store::HealthRow;
use std::sync::Mutex;

/// Most problem lines kept per node (a node may configure many services).
const MAX_PROBLEMS: usize = 16;
/// Longest problem line: the error text comes from the node, which may be hostile.
const MAX_PROBLEM_LEN: usize = 256;

/// What one health report says, before the connection state is known.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Assessment {
    pub degraded: bool,
    pub services_up: u32,
    pub services_total: u32,
    /// Drops between this report and the previous one.
    pub spool_dropped: u64,
    pub problems: Vec<String>,
}

/// Assesses `h`. `prev_dropped` is the previous report's cumulative `spool_dropped`
/// (`None` on the first report: nothing to compare with, so no drops are counted).
/// Services are counted only when enabled in `config`; a service missing from `config`
/// (the configuration changed since the report) counts as enabled.
pub fn assess(h: &Health, prev_dropped: Option<u64>, config: Option<&NodeConfig>) -> Assessment {
    let mut a = Assessment::default();
    for s in &h.services {
        let enabled = config
            .and_then(|c| c.services.iter().find(|c| c.name == s.name))
            .is_none_or(|c| c.enabled);
        if !enabled {
            continue;
        }
        a.services_total += 1;
        if s.running {
            a.services_up += 1;
        } else if a.problems.len() < MAX_PROBLEMS {
            let why = s.error.as_deref().unwrap_or("not listening");
            let line = format!("{} ({}): {why}", s.name, s.listen);
            a.problems
                .push(honeybee_proto::event::clamp(&line, MAX_PROBLEM_LEN));
        }
    }
    // A restarted agent counts from zero again: a smaller number is not a drop.
    a.spool_dropped = prev_dropped.map_or(0, |p| h.spool_dropped.saturating_sub(p));
    if a.spool_dropped > 0 && a.problems.len() < MAX_PROBLEMS {
        a.problems.push(format!(
            "spool dropped {} events since the last report",
            a.spool_dropped
        ));
    }
    a.degraded = a.services_up < a.services_total || a.spool_dropped > 0;
    a
}

#[derive(Debug)]
struct Entry {
    prev_dropped: u64,
    last: Assessment,
    /// The latest report and when it came, not yet written to the store (see
    /// [`HealthBoard::take_unsaved`]): one per node, a newer report replaces it.
    unsaved: Option<(Health, i64)>,
}

/// The latest assessment per node, in memory (one entry per node that reported since
/// the core started; nodes are few and known).
///
/// Reports reach the store in batches, not one write each: 10,000 nodes reporting every
/// 10 s are 1,000 reports a second, and one store write per report (a queued job, a
/// savepoint, a wakeup of the writer thread and of the reporting task) was half of an
/// idle core's CPU. The server's flusher takes [`HealthBoard::take_unsaved`] every
/// [`flush_interval`] and writes them in one transaction.
#[derive(Debug, Default)]
pub struct HealthBoard {
    nodes: Mutex<HashMap<NodeId, Entry>>,
}

/// How often unsaved reports go to the store: a fifth of the health interval (2 s on
/// production timing), so what `honeybee nodes` and the dashboard show from the store
/// lags the latest report by at most that.
pub fn flush_interval(timing: &honeybee_proto::timing::Timing) -> std::time::Duration {
    (timing.health_interval / 5).max(std::time::Duration::from_millis(10))
}

impl HealthBoard {
    /// Records a report; true when the node has just become degraded (it was not
    /// degraded, or had not reported, before). A node that stays degraded, or reconnects
    /// degraded, is not reported again: one alert per transition, not per report.
    ///
    /// The report is kept as the node's unsaved one (received at `time_ms`) until the
    /// next [`HealthBoard::take_unsaved`].
    pub fn report(
        &self,
        node: &NodeId,
        h: Health,
        time_ms: i64,
        config: Option<&NodeConfig>,
    ) -> bool {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let prev = nodes.get(node);
        let was_degraded = prev.is_some_and(|e| e.last.degraded);
        let a = assess(&h, prev.map(|e| e.prev_dropped), config);
        let became = a.degraded && !was_degraded;
        let entry = Entry {
            prev_dropped: h.spool_dropped,
            last: a,
            unsaved: Some((h, time_ms)),
        };
        // No key clone for a node that has reported before (all but its first report).
        match nodes.get_mut(node) {
            Some(e) => *e = entry,
            None => {
                nodes.insert(node.clone(), entry);
            }
        }
        became
    }

    /// The reports received since the last call, the latest per node, for one batched
    /// store write.
    pub fn take_unsaved(&self) -> Vec<HealthRow> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        nodes
            .iter_mut()
            .filter_map(|(node, e)| {
                let (health, time_ms) = e.unsaved.take()?;
                Some(HealthRow {
                    node: node.clone(),
                    health,
                    time_ms,
                })
            })
            .collect()
    }

    /// The node's health for display: offline without a live connection, otherwise the
    /// latest assessment (healthy before its first report: nothing known to be wrong).
    pub fn info(&self, node: &NodeId, online: bool, last_event_ms: Option<i64>) -> NodeHealthInfo {
        let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let a = nodes.get(node).map(|e| e.last.clone()).unwrap_or_default();
        let state = if !online {
            NodeState::Offline
        } else if a.degraded {
            NodeState::Degraded
        } else {
            NodeState::Healthy
        };
        NodeHealthInfo {
            node: node.clone(),
            state,
            services_up: a.services_up,
            services_total: a.services_total,
            spool_dropped: a.spool_dropped,
            last_event_ms,
            problems: a.problems,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use honeybee_proto::control::ServiceStatus;

    fn svc(name: &str, running: bool) -> ServiceStatus {
        ServiceStatus {
            name: name.into(),
            kind: "ssh".into(),
            listen: "127.0.0.1:22".into(),
            running,
            error: (!running).then(|| "Address already in use".into()),
            active_sessions: 0,
        }
    }

    #[test]
    fn failed_services_degrade_and_alert_once() {
        let board = HealthBoard::default();
        let node: NodeId = "n1".parse().expect("node id");
        let mut h = Health {
            services: vec![svc("a", false), svc("b", false)],
            ..Health::default()
        };
        assert!(board.report(&node, h.clone(), 0, None));
        assert!(
            !board.report(&node, h.clone(), 0, None),
            "one alert per transition"
        );
        let i = board.info(&node, true, None);
        assert_eq!(
            (i.state, i.services_up, i.services_total),
            (NodeState::Degraded, 0, 2)
        );
        assert!(i.problems[0].contains("Address already in use"));
        // A hostile node's error text is bounded.
        let mut long = svc("c", false);
        long.error = Some("x".repeat(100_000));
        let other: NodeId = "n2".parse().expect("node id");
        let h2 = Health {
            services: vec![long; 100],
            ..Health::default()
        };
        assert!(board.report(&other, h2.clone(), 0, None));
        let p = board.info(&other, true, None).problems;
        assert_eq!(p.len(), MAX_PROBLEMS);
        assert!(
            p.iter().all(|l| l.len() <= MAX_PROBLEM_LEN + 4),
            "{:?}",
            p[0].len()
        );
        assert_eq!(board.info(&node, false, None).state, NodeState::Offline);
        h.services = vec![svc("a", true), svc("b", true)];
        assert!(!board.report(&node, h.clone(), 0, None));
        assert_eq!(board.info(&node, true, None).state, NodeState::Healthy);
        h.spool_dropped = 5;
        assert!(
            board.report(&node, h.clone(), 0, None),
            "drops since the last report degrade"
        );
        assert_eq!(board.info(&node, true, None).spool_dropped, 5);
        assert!(!board.report(&node, h.clone(), 0, None));
        assert_eq!(board.info(&node, true, None).state, NodeState::Healthy);
    }

    #[test]
    fn unsaved_reports_are_one_per_node_and_taken_once() {
        let board = HealthBoard::default();
        let (a, b): (NodeId, NodeId) = ("a".parse().expect("id"), "b".parse().expect("id"));
        // A node reporting far more often than the flush keeps one unsaved report: the
        // pending writes are bounded by the number of nodes, not of reports.
        for uptime in 0..10_000u64 {
            let h = Health {
                uptime_s: uptime,
                ..Health::default()
            };
            board.report(&a, h, uptime as i64, None);
        }
        board.report(&b, Health::default(), 7, None);
        let mut rows = board.take_unsaved();
        rows.sort_by(|x, y| x.node.as_str().cmp(y.node.as_str()));
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].health.uptime_s, rows[0].time_ms), (9_999, 9_999));
        assert_eq!((&rows[1].node, rows[1].time_ms), (&b, 7));
        assert!(board.take_unsaved().is_empty(), "taken once");
        // The assessment stays after its report is taken.
        assert_eq!(board.info(&a, true, None).state, NodeState::Healthy);
    }
}
