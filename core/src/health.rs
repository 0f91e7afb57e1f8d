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
    /// The latest report and when it came: what `honeybee nodes` and the dashboard show
    /// for a node connected to this core ([`HealthBoard::latest`]), whatever the store
    /// holds.
    latest: Health,
    latest_ms: i64,
    /// [`fingerprint`] of `latest`.
    latest_fp: u64,
    /// The fingerprint and report time of the report the store holds (written by the
    /// flusher or by the caller); `None` before the first.
    saved: Option<(u64, i64)>,
    /// `latest` must reach the store at the next flush.
    due: bool,
}

/// How old the store's copy of a live node's report may grow while nothing in it but
/// the figures that move with every report (uptime, CPU, memory, spool depth, active
/// sessions) changes: one write per node per minute instead of one per report.
pub const STORE_MAX_AGE_MS: i64 = 60_000;

/// What a report says that is not expected to change from one report to the next: each
/// service's name, kind, address, whether it runs and its error, the spool's drop count
/// and the certificate's expiry. A report whose fingerprint differs from the stored one's
/// is written at the next flush; the moving figures (uptime, CPU, memory, spool depth,
/// active sessions) are not in it.
pub fn fingerprint(h: &Health) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut s = std::collections::hash_map::DefaultHasher::new();
    h.services.len().hash(&mut s);
    for v in &h.services {
        (&v.name, &v.kind, &v.listen, v.running, &v.error).hash(&mut s);
    }
    (h.spool_dropped, h.cert_not_after_ms).hash(&mut s);
    s.finish()
}

/// The latest assessment and report per node, in memory (one entry per node that
/// reported since the core started; nodes are few and known).
///
/// Reports reach the store in batches, not one write each: 10,000 nodes reporting every
/// 10 s are 1,000 reports a second, and one store write per report (a queued job, a
/// savepoint, a wakeup of the writer thread and of the reporting task) was half of an
/// idle core's CPU. The server's flusher takes [`HealthBoard::take_unsaved`] every
/// [`flush_interval`] and writes them in one transaction. And only the reports that
/// matter: a report is written when its [`fingerprint`] differs from the stored
/// report's, when the stored one is [`STORE_MAX_AGE_MS`] old, or when its node
/// disconnects ([`HealthBoard::disconnected`]); the other reports only replace the
/// latest one here, which the admin API's node list shows for live nodes
/// ([`HealthBoard::latest`]).
#[derive(Debug, Default)]
pub struct HealthBoard {
    nodes: Mutex<HashMap<NodeId, Entry>>,
}

/// How often unsaved reports go to the store: a fifth of the health interval (2 s on
/// production timing), so a change in what a node reports reaches the store within that.
pub fn flush_interval(timing: &honeybee_proto::timing::Timing) -> std::time::Duration {
    (timing.health_interval / 5).max(std::time::Duration::from_millis(10))
}

impl HealthBoard {
    /// Records a report; true when the node has just become degraded (it was not
    /// degraded, or had not reported, before). A node that stays degraded, or reconnects
    /// degraded, is not reported again: one alert per transition, not per report.
    ///
    /// `written`: the caller has written this report (received at `time_ms`) to the
    /// store itself. Otherwise it is written at the next [`HealthBoard::take_unsaved`]
    /// if it differs from the stored one in its [`fingerprint`] or the stored one is
    /// [`STORE_MAX_AGE_MS`] old.
    pub fn report(
        &self,
        node: &NodeId,
        h: Health,
        time_ms: i64,
        config: Option<&NodeConfig>,
        written: bool,
    ) -> bool {
        let fp = fingerprint(&h);
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let prev = nodes.get(node);
        let was_degraded = prev.is_some_and(|e| e.last.degraded);
        let a = assess(&h, prev.map(|e| e.prev_dropped), config);
        let became = a.degraded && !was_degraded;
        let (saved, due) = if written {
            (Some((fp, time_ms)), false)
        } else {
            let saved = prev.and_then(|e| e.saved);
            let stale = saved.is_none_or(|(sfp, sms)| {
                sfp != fp || time_ms.saturating_sub(sms) >= STORE_MAX_AGE_MS
            });
            (saved, stale || prev.is_some_and(|e| e.due))
        };
        let entry = Entry {
            prev_dropped: h.spool_dropped,
            last: a,
            latest: h,
            latest_ms: time_ms,
            latest_fp: fp,
            saved,
            due,
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

    /// The node's connection has ended: its latest report goes to the store at the next
    /// flush if the store does not hold it, so an offline node's stored health is its
    /// last report.
    pub fn disconnected(&self, node: &NodeId) {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = nodes.get_mut(node)
            && e.saved != Some((e.latest_fp, e.latest_ms))
        {
            e.due = true;
        }
    }

    /// The reports due since the last call, the latest per node, for one batched store
    /// write; they count as stored from now on.
    pub fn take_unsaved(&self) -> Vec<HealthRow> {
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        nodes
            .iter_mut()
            .filter(|(_, e)| e.due)
            .map(|(node, e)| {
                e.due = false;
                e.saved = Some((e.latest_fp, e.latest_ms));
                HealthRow {
                    node: node.clone(),
                    health: e.latest.clone(),
                    time_ms: e.latest_ms,
                }
            })
            .collect()
    }

    /// The node's latest report and when it came, if it reported since the core
    /// started. The store's copy may be up to [`STORE_MAX_AGE_MS`] older (plus one
    /// [`flush_interval`]); for a node connected to this core this is the one to show.
    pub fn latest(&self, node: &NodeId) -> Option<(Health, i64)> {
        let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        nodes.get(node).map(|e| (e.latest.clone(), e.latest_ms))
    }

    /// When the node's latest report came, if it reported since the core started.
    pub fn latest_ms(&self, node: &NodeId) -> Option<i64> {
        let nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        nodes.get(node).map(|e| e.latest_ms)
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
        let health_age_ms = nodes
            .get(node)
            .map(|e| crate::now_ms().saturating_sub(e.latest_ms).max(0));
        NodeHealthInfo {
            node: node.clone(),
            state,
            services_up: a.services_up,
            services_total: a.services_total,
            spool_dropped: a.spool_dropped,
            last_event_ms,
            problems: a.problems,
            core: None,
            health_age_ms,
        }
    }
}

/// The health of a node connected to another core of a cluster (`core`), assessed from
/// the store's copy of its latest report, which is `age_ms` old: the holding core keeps
/// the live reports in its own memory and writes one when it changes and at least once
/// a minute ([`STORE_MAX_AGE_MS`]). One report has no previous one to compare with, so
/// spool drops between reports are not known here and count as none; everything else is
/// assessed as the holding core does.
pub fn assess_stored(
    node: &NodeId,
    stored: Option<&Health>,
    config: &NodeConfig,
    last_event_ms: Option<i64>,
    core: String,
    age_ms: Option<i64>,
) -> NodeHealthInfo {
    let a = stored
        .map(|h| assess(h, None, Some(config)))
        .unwrap_or_default();
    NodeHealthInfo {
        node: node.clone(),
        state: if a.degraded {
            NodeState::Degraded
        } else {
            NodeState::Healthy
        },
        services_up: a.services_up,
        services_total: a.services_total,
        spool_dropped: 0,
        last_event_ms,
        problems: a.problems,
        core: Some(core),
        health_age_ms: stored.and(age_ms),
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
        assert!(board.report(&node, h.clone(), 0, None, false));
        assert!(
            !board.report(&node, h.clone(), 0, None, false),
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
        assert!(board.report(&other, h2.clone(), 0, None, false));
        let p = board.info(&other, true, None).problems;
        assert_eq!(p.len(), MAX_PROBLEMS);
        assert!(
            p.iter().all(|l| l.len() <= MAX_PROBLEM_LEN + 4),
            "{:?}",
            p[0].len()
        );
        assert_eq!(board.info(&node, false, None).state, NodeState::Offline);
        h.services = vec![svc("a", true), svc("b", true)];
        assert!(!board.report(&node, h.clone(), 0, None, false));
        assert_eq!(board.info(&node, true, None).state, NodeState::Healthy);
        h.spool_dropped = 5;
        assert!(
            board.report(&node, h.clone(), 0, None, false),
            "drops since the last report degrade"
        );
        assert_eq!(board.info(&node, true, None).spool_dropped, 5);
        assert!(!board.report(&node, h.clone(), 0, None, false));
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
            board.report(&a, h, uptime as i64, None, false);
        }
        board.report(&b, Health::default(), 7, None, false);
        let mut rows = board.take_unsaved();
        rows.sort_by(|x, y| x.node.as_str().cmp(y.node.as_str()));
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].health.uptime_s, rows[0].time_ms), (9_999, 9_999));
        assert_eq!((&rows[1].node, rows[1].time_ms), (&b, 7));
        assert!(board.take_unsaved().is_empty(), "taken once");
        // The assessment stays after its report is taken.
        assert_eq!(board.info(&a, true, None).state, NodeState::Healthy);
    }

    /// Reports every 10 s from a node whose services do not change.
    fn steady(uptime_s: u64) -> Health {
        Health {
            uptime_s,
            cpu_percent: (uptime_s % 7) as f32,
            rss_bytes: 1000 + uptime_s,
            spool_depth: uptime_s % 3,
            services: vec![svc("a", true), svc("b", true)],
            ..Health::default()
        }
    }

    #[test]
    fn a_steady_node_reaches_the_store_once_a_minute_and_changes_at_once() {
        let board = HealthBoard::default();
        let n: NodeId = "n".parse().expect("id");
        let mut written = Vec::new();
        // Ten minutes of reports every 10 s, a flush after each: the first report, then
        // one a minute; the moving figures alone never make a write.
        for k in 0..60u64 {
            let t = (k * 10_000) as i64;
            let mut h = steady(k * 10);
            h.services[0].active_sessions = k as u32;
            board.report(&n, h, t, None, false);
            written.extend(board.take_unsaved().into_iter().map(|r| r.time_ms));
            // What the node list shows is always the latest report.
            assert_eq!(
                board.latest(&n).map(|(h, ms)| (h.uptime_s, ms)),
                Some((k * 10, t))
            );
        }
        let minutes: Vec<i64> = (0..10).map(|m| m * STORE_MAX_AGE_MS).collect();
        assert_eq!(written, minutes);
        // A service that stops is written at the next flush, not a minute later.
        let t0 = 600_000;
        let mut h = steady(600);
        h.services[1].running = false;
        h.services[1].error = Some("Address already in use".into());
        board.report(&n, h.clone(), t0, None, false);
        let rows = board.take_unsaved();
        assert_eq!(rows.len(), 1);
        assert!(!rows[0].health.services[1].running);
        // So are a changed error, a new service, spool drops and a renewed certificate.
        let changes: [fn(&mut Health); 4] = [
            |h| h.services[1].error = Some("Permission denied".into()),
            |h| h.services.push(svc("c", true)),
            |h| h.spool_dropped += 1,
            |h| h.cert_not_after_ms += 1,
        ];
        for (i, change) in changes.iter().enumerate() {
            let t = t0 + 10_000 * (i as i64 + 1);
            change(&mut h);
            board.report(&n, h.clone(), t, None, false);
            let rows = board.take_unsaved();
            assert_eq!(
                rows.iter().map(|r| r.time_ms).collect::<Vec<_>>(),
                [t],
                "change {i}"
            );
        }
        // A change is written even if a later report (before the flush) changes it back:
        // the store gets the latest.
        let t1 = t0 + 100_000;
        let mut changed = h.clone();
        changed.services[0].running = false;
        board.report(&n, changed, t1, None, false);
        board.report(&n, h.clone(), t1 + 1, None, false);
        assert_eq!(board.take_unsaved().len(), 1);
        assert!(board.take_unsaved().is_empty());
    }

    #[test]
    fn a_report_the_caller_wrote_is_not_written_again_and_a_disconnect_writes_the_last() {
        let board = HealthBoard::default();
        let n: NodeId = "n".parse().expect("id");
        // A connection's first report, written by the caller.
        board.report(&n, steady(0), 0, None, true);
        assert!(board.take_unsaved().is_empty());
        // The minute counts from the written report.
        board.report(&n, steady(10), 10_000, None, false);
        assert!(board.take_unsaved().is_empty());
        // The node goes away: its last report, newer than the store's, is written once.
        board.disconnected(&n);
        let rows = board.take_unsaved();
        assert_eq!((rows.len(), rows[0].health.uptime_s), (1, 10));
        board.disconnected(&n);
        assert!(
            board.take_unsaved().is_empty(),
            "the store holds the last report"
        );
        // A node that never reported has nothing to write.
        board.disconnected(&"other".parse().expect("id"));
        assert!(board.take_unsaved().is_empty());
        assert_eq!(board.latest_ms(&n), Some(10_000));
    }
}
