//! Remote upgrade from the dashboard: `GET /api/upgrades` (the agent version each online
//! node reported, the packages the core can send, which nodes run an older version than
//! the newest package, and each node's last upgrade outcome as the core audited it) and
//! `POST /api/upgrades` (admins: send the package to one node, or to every outdated
//! online node). The core does the sending, signing and auditing (`honeybee node
//! upgrade` is the same request); the nodes report back into the audit log, which is
//! where the outcome is read from.

use crate::auth::{AdminOnly, Authed};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, unexpected};
use axum::Json;
use axum::extract::State;
use honeybee_proto::NodeId;
use honeybee_proto::admin::{
    AdminRequest as Req, AdminResponse as Resp, AuditEntry, NodeInfo, PackageInfo,
};
use honeybee_proto::upgrade::version_cmp;
use serde::Deserialize;
use serde_json::{Value, json};
use std::cmp::Ordering;

/// Audit rows read to find each node's last upgrade outcome (newest first).
const AUDIT_SCAN: u32 = 2_000;

/// The newest package: what the dashboard offers.
fn newest(packages: &[PackageInfo]) -> Option<&PackageInfo> {
    packages
        .iter()
        .max_by(|a, b| version_cmp(&a.version, &b.version))
}

/// An online node running something older than `offer`.
fn outdated(n: &NodeInfo, offer: Option<&str>) -> bool {
    match (n.online && !n.revoked, n.agent_version.as_deref(), offer) {
        (true, Some(v), Some(o)) => version_cmp(v, o) == Ordering::Less,
        _ => false,
    }
}

/// A node's last upgrade step from the audit rows (newest first): `sent` (the core sent
/// it; no report yet), `installing` (verified, restarting into it), `done` (the new
/// version runs and was welcomed), `failed` (refused, or verified but not installable in
/// place; `detail` says why) or `rolled_back` (it died or was not welcomed in time, and
/// the node went back to what it ran).
pub fn outcome(node: &str, rows: &[AuditEntry]) -> Option<Value> {
    let me = format!("node:{node}");
    let sent_prefix = format!("node={node} ");
    let row = rows.iter().find(|r| {
        r.action == "node.upgrade"
            && (r.actor == me || (r.outcome == "sent" && r.detail.starts_with(&sent_prefix)))
    })?;
    let version = row
        .detail
        .split_whitespace()
        .find_map(|w| w.strip_prefix("version="))
        .unwrap_or("")
        .to_owned();
    let detail = match row.detail.split_once(' ') {
        Some((first, rest)) if first.starts_with("version=") => rest.to_owned(),
        _ => row.detail.clone(),
    };
    let not_in_place =
        detail.contains("not upgraded in place") || detail.contains("not installed in place");
    let state = match row.outcome.as_str() {
        "sent" => "sent",
        "ok" if detail.starts_with("upgraded:") => "done",
        "ok" if not_in_place => "failed",
        "ok" => "installing",
        "rolled_back" => "rolled_back",
        _ => "failed",
    };
    Some(json!({
        "state": state,
        "version": version,
        "time_ms": row.time_ms,
        "detail": detail,
    }))
}

struct Picture {
    core_version: String,
    packages: Vec<PackageInfo>,
    nodes: Vec<NodeInfo>,
}

async fn picture(app: &AppState, user: &str) -> ApiResult<Picture> {
    let Resp::UpgradeInfo {
        core_version,
        packages,
    } = app.ask(user, Req::UpgradeInfo).await?
    else {
        return Err(unexpected());
    };
    let Resp::Nodes(nodes) = app.ask(user, Req::ListNodes).await? else {
        return Err(unexpected());
    };
    Ok(Picture {
        core_version,
        packages,
        nodes,
    })
}

pub async fn list(State(app): State<AppState>, a: Authed) -> ApiResult<Json<Value>> {
    let p = picture(&app, a.user()).await?;
    let rows = match app.ask(a.user(), Req::Audit { limit: AUDIT_SCAN }).await? {
        Resp::Audit(rows) => rows,
        _ => return Err(unexpected()),
    };
    let offer = newest(&p.packages).map(|p| p.version.clone());
    let nodes: Vec<Value> = p
        .nodes
        .iter()
        .filter(|n| !n.revoked && n.role != honeybee_proto::Role::Relay)
        .map(|n| {
            json!({
                "id": n.id.as_str(),
                "name": n.name,
                "online": n.online,
                "version": n.agent_version,
                "outdated": outdated(n, offer.as_deref()),
                "last": outcome(n.id.as_str(), &rows),
            })
        })
        .collect();
    Ok(Json(json!({
        "core_version": p.core_version,
        "offer": offer,
        "packages": p.packages.iter().map(|p| json!({"version": p.version, "bytes": p.bytes})).collect::<Vec<_>>(),
        "outdated": nodes.iter().filter(|n| n["outdated"] == true).count(),
        "nodes": nodes,
    })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UpgradeBody {
    /// One node; absent: every outdated online node.
    node: Option<String>,
    /// The package's version; absent: the newest package.
    version: Option<String>,
}

pub async fn start(
    State(app): State<AppState>,
    AdminOnly(a): AdminOnly,
    Json(body): Json<UpgradeBody>,
) -> ApiResult<Json<Value>> {
    let p = picture(&app, a.user()).await?;
    let version = match body.version {
        Some(v) => v,
        None => newest(&p.packages)
            .map(|p| p.version.clone())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "the core has no agent package to send: put the new agent executable in \
                     the core's data directory as packages/honeybee-agent-VERSION",
                )
            })?,
    };
    let one = body.node.is_some();
    let targets: Vec<NodeId> = match body.node {
        Some(n) => vec![NodeId::new(n).map_err(|e| ApiError::bad_request(e.to_string()))?],
        None => p
            .nodes
            .iter()
            .filter(|n| outdated(n, Some(&version)))
            .map(|n| n.id.clone())
            .collect(),
    };
    let mut results = Vec::new();
    for node in targets {
        let answer = app
            .ask(
                a.user(),
                Req::UpgradeNodes {
                    node: Some(node.clone()),
                    version: Some(version.clone()),
                    sha256: None,
                },
            )
            .await;
        let (sent, detail) = match answer {
            Ok(Resp::Upgrades(list)) => match list.into_iter().next() {
                Some((_, Ok(what))) => (true, what),
                Some((_, Err(why))) => (false, why),
                None => (false, "the node is not online".to_owned()),
            },
            Ok(_) => return Err(unexpected()),
            // One node named: its refusal is the answer (400 with the core's reason).
            Err(e) if one => return Err(e),
            Err(e) => (false, e.message),
        };
        results.push(json!({"node": node.as_str(), "sent": sent, "detail": detail}));
    }
    Ok(Json(json!({"version": version, "results": results})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(actor: &str, outcome: &str, detail: &str) -> AuditEntry {
        AuditEntry {
            time_ms: 1,
            actor: actor.into(),
            action: "node.upgrade".into(),
            outcome: outcome.into(),
            source: None,
            detail: detail.into(),
        }
    }

    #[test]
    fn the_newest_row_of_the_node_is_its_outcome() {
        let rows = vec![
            row(
                "node:b",
                "ok",
                "version=0.2.0 upgraded: 0.2.0 runs and was welcomed",
            ),
            row(
                "node:a",
                "rolled_back",
                "version=0.2.0 rolled back: 0.2.0 died",
            ),
            row(
                "dashboard:d/admin",
                "sent",
                "node=a version=0.2.0 sha256=00 bytes=3",
            ),
        ];
        assert_eq!(outcome("a", &rows).unwrap()["state"], "rolled_back");
        assert_eq!(outcome("b", &rows).unwrap()["state"], "done");
        assert_eq!(outcome("b", &rows).unwrap()["version"], "0.2.0");
        assert!(outcome("c", &rows).is_none());
        let sent = vec![row(
            "admin:x",
            "sent",
            "node=c version=0.2.0 sha256=00 bytes=3",
        )];
        assert_eq!(outcome("c", &sent).unwrap()["state"], "sent");
        let embedded = vec![row(
            "node:c",
            "ok",
            "version=0.2.0 received 3 bytes, …; this agent runs inside another program and is not upgraded in place",
        )];
        assert_eq!(outcome("c", &embedded).unwrap()["state"], "failed");
    }
}
