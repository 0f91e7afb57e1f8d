//! The realism check on the node page: `GET /api/nodes/{id}/check` (the latest report
//! the core holds, or `null`) and `POST /api/nodes/{id}/check` (run one now; admins only,
//! since it sends probe traffic to the node's services). The JSON is the CLI's
//! `honeybee node check --json` document.

use crate::auth::{AdminOnly, Authed};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, unexpected};
use axum::Json;
use axum::extract::{Path, State};
use honeybee_proto::NodeId;
use honeybee_proto::admin::{AdminRequest as Req, AdminResponse as Resp};
use honeybee_proto::realism::RealismRecord;
use serde_json::{Value, json};

fn node_id(s: &str) -> ApiResult<NodeId> {
    NodeId::new(s).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// A record as JSON: totals first, then the report as the wire type serialises it.
pub fn view(node: &NodeId, r: &RealismRecord) -> Value {
    let (passed, total) = r.report.totals();
    json!({
        "node": node.as_str(),
        "received_ms": r.received_ms,
        "passed": passed,
        "total": total,
        "report": r.report,
    })
}

pub async fn latest(
    State(app): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = node_id(&id)?;
    let Resp::Realism(r) = app
        .ask(a.user(), Req::GetRealism { node: id.clone() })
        .await?
    else {
        return Err(unexpected());
    };
    Ok(Json(r.map_or(Value::Null, |r| view(&id, &r))))
}

pub async fn run(
    State(app): State<AppState>,
    AdminOnly(a): AdminOnly,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = node_id(&id)?;
    let Resp::Realism(Some(r)) = app
        .ask(a.user(), Req::CheckRealism { node: id.clone() })
        .await?
    else {
        return Err(unexpected());
    };
    Ok(Json(view(&id, &r)))
}
