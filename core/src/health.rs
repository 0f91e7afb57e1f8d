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
}

/// The latest assessment per node, in memory (one entry per node that reported since
/// the core started; nodes are few and known).
#[derive(Debug, Default)]
pub struct HealthBoard {
    nodes: Mutex<HashMap<NodeId, Entry>>,
}

impl HealthBoard {
    /// Records a report; true when the node has just become degraded (it was not
    /// degraded, or had not reported, before). A node that stays degraded, or reconnects
    /// degraded, is not reported again: one alert per transition, not per report.
    pub fn report(&self, node: &NodeId, h: &Health, config: Option<&NodeConfig>) -> bool {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let prev = nodes.get(node);
        let was_degraded = prev.is_some_and(|e| e.last.degraded);
        let a = assess(h, prev.map(|e| e.prev_dropped), config);
        let became = a.degraded && !was_degraded;
        nodes.insert(
            node.clone(),
            Entry {
                prev_dropped: h.spool_dropped,
                last: a,
            },
        );
        became
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
        assert!(board.report(&node, &h, None));
        assert!(!board.report(&node, &h, None), "one alert per transition");
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
        assert!(board.report(&other, &h2, None));
        let p = board.info(&other, true, None).problems;
        assert_eq!(p.len(), MAX_PROBLEMS);
        assert!(
            p.iter().all(|l| l.len() <= MAX_PROBLEM_LEN + 4),
            "{:?}",
            p[0].len()
        );
        assert_eq!(board.info(&node, false, None).state, NodeState::Offline);
        h.services = vec![svc("a", true), svc("b", true)];
        assert!(!board.report(&node, &h, None));
        assert_eq!(board.info(&node, true, None).state, NodeState::Healthy);
        h.spool_dropped = 5;
        assert!(
            board.report(&node, &h, None),
            "drops since the last report degrade"
        );
        assert_eq!(board.info(&node, true, None).spool_dropped, 5);
        assert!(!board.report(&node, &h, None));
        assert_eq!(board.info(&node, true, None).state, NodeState::Healthy);
    }
}
