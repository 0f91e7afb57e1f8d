//! The realism check on the core's side: `honeybee node check` and the dashboard ask a
//! node to probe its own services (`Command::CheckRealism`, answered with a
//! `RealismReport` as JSON text); the core keeps each node's latest report in memory
//! (lost on restart: a check takes seconds to run again) and serves it on the admin API.

use crate::server::Shared;
use honeybee_proto::NodeId;
use honeybee_proto::admin::AdminResponse;
use honeybee_proto::control::Command;
use honeybee_proto::realism::{RealismRecord, RealismReport};
use std::collections::HashMap;
use std::sync::Mutex;

/// Most nodes whose latest report is kept; past it the oldest report goes.
const MAX_NODES: usize = 16_384;

/// Each node's latest realism report.
#[derive(Debug, Default)]
pub struct RealismBoard {
    latest: Mutex<HashMap<NodeId, RealismRecord>>,
}

impl RealismBoard {
    pub fn get(&self, node: &NodeId) -> Option<RealismRecord> {
        self.lock().get(node).cloned()
    }

    pub fn put(&self, node: NodeId, record: RealismRecord) {
        let mut m = self.lock();
        if m.len() >= MAX_NODES && !m.contains_key(&node) {
            let oldest = m
                .iter()
                .min_by_key(|(_, r)| r.received_ms)
                .map(|(n, _)| n.clone());
            if let Some(n) = oldest {
                m.remove(&n);
            }
        }
        m.insert(node, record);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, RealismRecord>> {
        self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Decodes a node's answer: JSON text of a report, clamped whatever the node sent.
pub fn parse_report(text: &str) -> Result<RealismReport, String> {
    RealismReport::from_json(text)
        .map_err(|e| format!("the node's realism report is malformed: {e}"))
}

/// `AdminRequest::CheckRealism`: runs the check on `node` and keeps its report.
pub async fn check(shared: &Shared, node: &NodeId, actor: &str, remote: &str) -> AdminResponse {
    if matches!(shared.store.get_node(node).await, Ok(None)) {
        return AdminResponse::Error(format!("no node {node}; see `honeybee nodes`"));
    }
    if !shared.registry.is_online(node) {
        return AdminResponse::Error(format!(
            "node {node} is offline; the realism check runs on the node itself (see `honeybee nodes`)"
        ));
    }
    let answer = shared.registry.command(node, Command::CheckRealism).await;
    let outcome = match answer {
        Ok(Ok(text)) => parse_report(&text),
        Ok(Err(e)) => Err(format!("node {node} could not run the check: {e}")),
        Err(e) => Err(e.to_string()),
    };
    match outcome {
        Ok(report) => {
            let (passed, total) = report.totals();
            let record = RealismRecord {
                received_ms: crate::now_ms(),
                report,
            };
            shared.realism.put(node.clone(), record.clone());
            shared.audit(
                actor,
                "node.check",
                "ok",
                Some(remote.into()),
                &format!("node={node} passed={passed} total={total}"),
            );
            AdminResponse::Realism(Some(record))
        }
        Err(e) => AdminResponse::Error(e),
    }
}

/// `AdminRequest::GetRealism`: the latest report, if the node was checked since the core
/// started.
pub fn latest(shared: &Shared, node: &NodeId) -> AdminResponse {
    AdminResponse::Realism(shared.realism.get(node))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(at: i64) -> RealismRecord {
        RealismRecord {
            received_ms: at,
            report: RealismReport::default(),
        }
    }

    #[test]
    fn board_keeps_the_latest_per_node() {
        let b = RealismBoard::default();
        let n = NodeId::new("n1").unwrap();
        assert!(b.get(&n).is_none());
        b.put(n.clone(), record(1));
        b.put(n.clone(), record(2));
        assert_eq!(b.get(&n).unwrap().received_ms, 2);
    }

    #[test]
    fn malformed_or_oversized_reports_are_refused_or_clamped() {
        assert!(parse_report("{").is_err());
        assert!(parse_report("[]").is_err());
        let long = "x".repeat(10_000);
        let text = format!(
            r#"{{"started_ms":0,"duration_ms":1,"services":[{{"name":"{long}","kind":"ssh","reference":"","passed":0,"total":1,"failures":[],"skipped":null}}]}}"#
        );
        let r = parse_report(&text).unwrap();
        assert!(r.services[0].name.len() < 1000);
    }
}
