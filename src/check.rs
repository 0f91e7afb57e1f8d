//! `honeybee node check NODE [--json]`: runs the realism check on a live node (it probes
//! its own services on loopback against references recorded from the real programs) and
//! prints the score per service and each failing check.

use crate::term::say;
use anyhow::bail;
use honeybee_core::admin_client::AdminClient;
use honeybee_proto::NodeId;
use honeybee_proto::admin::{AdminRequest, AdminResponse};
use honeybee_proto::realism::RealismRecord;
use std::path::Path;

pub async fn node_check(data_dir: &Path, node: &str, json: bool) -> anyhow::Result<()> {
    let node = NodeId::new(node).map_err(|e| anyhow::anyhow!("{e}"))?;
    let client = AdminClient::connect(data_dir).await?;
    let resp = client
        .request(&AdminRequest::CheckRealism { node: node.clone() })
        .await;
    client.close().await;
    let record = match resp? {
        AdminResponse::Realism(Some(r)) => r,
        AdminResponse::Error(e) => bail!("{e}"),
        r => bail!("unexpected answer from the core: {r:?}"),
    };
    if json {
        println!("{}", to_json(&node, &record));
    } else {
        print_table(&node, &record);
    }
    Ok(())
}

/// The record as one JSON document, with the totals and the node added.
pub fn to_json(node: &NodeId, r: &RealismRecord) -> serde_json::Value {
    let (passed, total) = r.report.totals();
    serde_json::json!({
        "node": node.as_str(),
        "received_ms": r.received_ms,
        "passed": passed,
        "total": total,
        "report": r.report,
    })
}

fn print_table(node: &NodeId, r: &RealismRecord) {
    let (passed, total) = r.report.totals();
    say!(
        "node {node}: {passed}/{total} checks passed in {:.1} s",
        r.report.duration_ms as f64 / 1000.0
    );
    say!("{:<14} {:<12} {:>9}  REFERENCE", "SERVICE", "KIND", "SCORE");
    for s in &r.report.services {
        let score = match &s.skipped {
            Some(_) => "skipped".to_owned(),
            None => format!("{}/{}", s.passed, s.total),
        };
        let reference = s.skipped.as_deref().unwrap_or(&s.reference);
        say!("{:<14} {:<12} {:>9}  {}", s.name, s.kind, score, reference);
    }
    for s in &r.report.services {
        for f in &s.failures {
            say!("");
            say!("FAIL {} {}", s.name, f.check);
            say!("  expected: {}", f.expected);
            say!("  got:      {}", f.got);
        }
    }
}
