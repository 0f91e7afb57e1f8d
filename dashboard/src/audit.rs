//! `GET /api/audit` (admins): the core's audit log, newest first, a page at a time, with an
//! optional case-insensitive text filter. The core answers only "the newest N rows" (N at
//! most [`SCAN`]), so paging and filtering happen here within that bounded window: the
//! newest 10,000 rows are reachable, which the answer says (`capped`).

use crate::auth::AdminOnly;
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, unexpected};
use axum::Json;
use axum::extract::{Query, State};
use honeybee_proto::admin::{AdminRequest as Req, AdminResponse as Resp, AuditEntry};
use serde::Deserialize;
use serde_json::{Value, json};

/// Most rows the core returns for one audit request (its store's query cap).
pub const SCAN: u32 = 10_000;
/// Most rows one page carries.
pub const MAX_PAGE: u32 = 500;
/// Longest text filter accepted, in bytes.
pub const MAX_FILTER: usize = 200;

#[derive(Deserialize, Default)]
pub struct AuditQuery {
    limit: Option<u32>,
    offset: Option<u32>,
    q: Option<String>,
    /// Only rows at or after this time (ms): a relative range resolved by the page.
    since_ms: Option<i64>,
}

/// What to ask the core for and which rows to answer, from the query; errors are 400s.
#[derive(Debug, PartialEq)]
pub struct Plan {
    pub ask: u32,
    pub offset: usize,
    pub limit: usize,
    pub needle: Option<String>,
    pub since_ms: Option<i64>,
}

pub fn plan(q: &AuditQuery) -> Result<Plan, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let offset = q.offset.unwrap_or(0);
    if offset >= SCAN {
        return Err(ApiError::bad_request(format!(
            "offset: at most {} (the newest {SCAN} audit rows can be paged)",
            SCAN - 1
        )));
    }
    let needle =
        q.q.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_lowercase);
    if needle.as_ref().is_some_and(|n| n.len() > MAX_FILTER) {
        return Err(ApiError::bad_request(format!(
            "q: at most {MAX_FILTER} bytes"
        )));
    }
    // Without a filter the rows up to this page (and one more, to know whether there is
    // a next page) suffice; a filter needs the whole window.
    let ask = if needle.is_some() || q.since_ms.is_some() {
        SCAN
    } else {
        (offset + limit + 1).min(SCAN)
    };
    Ok(Plan {
        ask,
        offset: offset as usize,
        limit: limit as usize,
        needle,
        since_ms: q.since_ms,
    })
}

fn matches(a: &AuditEntry, needle: &str) -> bool {
    [
        a.actor.as_str(),
        a.action.as_str(),
        a.outcome.as_str(),
        a.source.as_deref().unwrap_or(""),
        a.detail.as_str(),
    ]
    .iter()
    .any(|f| f.to_lowercase().contains(needle))
}

/// The page `p` selects from `rows` (newest first, as the core answered).
pub fn page(p: &Plan, rows: &[AuditEntry]) -> Value {
    let picked: Vec<&AuditEntry> = rows
        .iter()
        .filter(|a| p.needle.as_deref().is_none_or(|n| matches(a, n)))
        .filter(|a| p.since_ms.is_none_or(|s| a.time_ms >= s))
        .skip(p.offset)
        .take(p.limit + 1)
        .collect();
    let more = picked.len() > p.limit;
    let entries: Vec<Value> = picked
        .iter()
        .take(p.limit)
        .map(|a| {
            json!({"time_ms": a.time_ms, "actor": a.actor, "action": a.action,
                   "outcome": a.outcome, "source": a.source, "detail": a.detail})
        })
        .collect();
    json!({
        "entries": entries,
        "offset": p.offset,
        "limit": p.limit,
        "more": more,
        "scanned": rows.len(),
        "capped": rows.len() as u64 >= u64::from(SCAN),
    })
}

pub async fn audit(
    State(app): State<AppState>,
    AdminOnly(a): AdminOnly,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<Value>> {
    let p = plan(&q)?;
    let Resp::Audit(rows) = app.ask(a.user(), Req::Audit { limit: p.ask }).await? else {
        return Err(unexpected());
    };
    Ok(Json(page(&p, &rows)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: i64, action: &str) -> AuditEntry {
        AuditEntry {
            time_ms: 1_000_000 - i,
            actor: format!("dashboard:d/user{}", i % 3),
            action: action.into(),
            outcome: "ok".into(),
            source: Some("127.0.0.1:5000".into()),
            detail: format!("row={i}"),
        }
    }

    fn q(limit: Option<u32>, offset: Option<u32>, text: Option<&str>) -> AuditQuery {
        AuditQuery {
            limit,
            offset,
            q: text.map(str::to_owned),
            since_ms: None,
        }
    }

    #[test]
    fn pages_without_a_filter_ask_only_what_they_show() {
        let p = plan(&q(Some(10), Some(20), None)).unwrap();
        assert_eq!(p.ask, 31);
        let rows: Vec<_> = (0..31).map(|i| row(i, "node.config")).collect();
        let v = page(&p, &rows);
        let e = v["entries"].as_array().unwrap();
        assert_eq!(e.len(), 10);
        assert_eq!(e[0]["detail"], "row=20");
        assert_eq!(v["more"], true);
        let v = page(&p, &rows[..30]);
        assert_eq!(v["more"], false, "no row past this page");
    }

    #[test]
    fn a_filter_scans_the_window_and_pages_the_matches() {
        let p = plan(&q(Some(2), Some(1), Some("  NODE.REVOKE "))).unwrap();
        assert_eq!(p.ask, SCAN);
        let rows: Vec<_> = (0..20)
            .map(|i| {
                row(
                    i,
                    if i % 5 == 0 {
                        "node.revoke"
                    } else {
                        "events.search"
                    },
                )
            })
            .collect();
        let v = page(&p, &rows);
        let e = v["entries"].as_array().unwrap();
        assert_eq!(
            e.iter()
                .map(|x| x["detail"].as_str().unwrap())
                .collect::<Vec<_>>(),
            ["row=5", "row=10"]
        );
        assert_eq!(v["more"], true);
        assert_eq!(v["scanned"], 20);
        assert_eq!(v["capped"], false);
    }

    #[test]
    fn a_range_keeps_the_rows_since_its_start() {
        let mut query = q(Some(50), None, None);
        query.since_ms = Some(1_000_000 - 4);
        let p = plan(&query).unwrap();
        assert_eq!(p.ask, SCAN);
        let rows: Vec<_> = (0..20).map(|i| row(i, "node.config")).collect();
        let v = page(&p, &rows);
        assert_eq!(v["entries"].as_array().unwrap().len(), 5, "rows 0..=4");
        assert_eq!(v["more"], false);
    }

    #[test]
    fn limits_are_clamped_and_hostile_input_refused() {
        assert_eq!(plan(&q(Some(0), None, None)).unwrap().limit, 1);
        assert_eq!(plan(&q(Some(u32::MAX), None, None)).unwrap().limit, 500);
        assert!(plan(&q(None, Some(SCAN), None)).is_err());
        assert!(plan(&q(None, Some(u32::MAX), None)).is_err());
        assert_eq!(plan(&q(None, Some(SCAN - 1), None)).unwrap().ask, SCAN);
        assert!(plan(&q(None, None, Some(&"x".repeat(MAX_FILTER + 1)))).is_err());
        assert!(plan(&q(None, None, Some(""))).unwrap().needle.is_none());
    }
}
