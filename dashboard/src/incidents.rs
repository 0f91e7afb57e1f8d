//! Incidents: the core's alerts grouped as the operator works them. Alerts about one source
//! address against one node and service, each within [`WINDOW`] of the last, are one
//! incident with a count, first and last seen, the rules that fired, its highest severity,
//! and the sessions and captures involved. Incidents are acknowledged one or many at a time
//! (their alerts are acknowledged in the core too). An ignore list by source (address or
//! CIDR block) or destination port keeps noise out: matching alerts are counted, not grouped.
//!
//! Why here and not in the core: alerts stay the core's record (modules publish them, the
//! CLI lists them); grouping, the ignore list and sorting are how one console presents
//! them, so they live in the dashboard's own SQLite file (`dashboard/incidents.db`) beside
//! its accounts, and no core schema or protocol changes. The dashboard learns each alert's
//! source, service, session and port from the event the alert names (one `GetEvent`).

use crate::auth::{AdminOnly, Authed};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, unexpected};
use crate::users::now_ms;
use axum::Json;
use axum::extract::{Path, Query, State};
use honeybee_proto::NodeId;
use honeybee_proto::admin::{AdminRequest as Req, AdminResponse as Resp, AlertInfo};
use honeybee_proto::event::EventKind;
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::path::Path as FsPath;
use std::sync::{Arc, Mutex};

/// Alerts of one source/node/service further apart than this start a new incident.
pub const WINDOW_MS: i64 = 3600 * 1000;
/// Alerts asked of the core per sync when nothing was missed (more if there is a gap).
const SYNC_PAGE: u32 = 200;
/// Most alerts one sync groups (the rest wait for the next).
const SYNC_MAX: usize = 5000;
/// Most entries in the ignore list.
pub const MAX_IGNORES: usize = 1000;
/// Most incidents one bulk acknowledgement names.
pub const MAX_ACK: usize = 1000;
/// Most alerts acknowledged in the core per bulk acknowledgement.
const MAX_CORE_ACKS: usize = 2000;
/// Incidents per page at most.
pub const MAX_PAGE: u32 = 500;
/// Alerts an incident's detail lists at most (newest).
const DETAIL_ALERTS: u32 = 500;
/// Acknowledged incidents are forgotten this long after their last alert (the core keeps
/// the alerts themselves).
pub const KEEP_ACKED_MS: i64 = 90 * 24 * 3600 * 1000;
/// Most incidents kept; past it the oldest acknowledged ones go first.
pub const MAX_INCIDENTS: i64 = 200_000;

const SEVERITIES: [&str; 5] = ["info", "low", "medium", "high", "critical"];

fn sev_rank(s: &str) -> i64 {
    SEVERITIES.iter().position(|x| *x == s).unwrap_or(2) as i64
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS incidents (
    id        INTEGER PRIMARY KEY,
    source    TEXT    NOT NULL,
    node      TEXT    NOT NULL,
    service   TEXT    NOT NULL,
    severity  TEXT    NOT NULL,
    sev_rank  INTEGER NOT NULL,
    rules     TEXT    NOT NULL,
    title     TEXT    NOT NULL,
    count     INTEGER NOT NULL,
    sessions  INTEGER NOT NULL DEFAULT 0,
    first_ms  INTEGER NOT NULL,
    last_ms   INTEGER NOT NULL,
    acked_ms  INTEGER,
    acked_by  TEXT
);
CREATE INDEX IF NOT EXISTS incidents_key ON incidents (source, node, service, last_ms);
CREATE INDEX IF NOT EXISTS incidents_last ON incidents (last_ms);
CREATE TABLE IF NOT EXISTS incident_alerts (
    alert_id  INTEGER PRIMARY KEY,
    incident  INTEGER NOT NULL,
    time_ms   INTEGER NOT NULL,
    module    TEXT    NOT NULL,
    rule      TEXT    NOT NULL,
    severity  TEXT    NOT NULL,
    title     TEXT    NOT NULL,
    body      TEXT    NOT NULL,
    node      TEXT,
    seq       INTEGER,
    session   TEXT,
    capture   TEXT,
    port      INTEGER
);
CREATE INDEX IF NOT EXISTS incident_alerts_incident ON incident_alerts (incident, time_ms);
CREATE TABLE IF NOT EXISTS ignore_list (
    id         INTEGER PRIMARY KEY,
    kind       TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    note       TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    created_by TEXT    NOT NULL,
    hits       INTEGER NOT NULL DEFAULT 0
);
";

/// What the dashboard learned about one alert from the event it names (or its body).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertContext {
    pub source: Option<IpAddr>,
    pub service: Option<String>,
    pub session: Option<String>,
    pub capture: Option<String>,
    pub port: Option<u16>,
}

/// The rule that raised an alert: the alerts module's rule types are recognised by their
/// titles (the alert record carries no rule name); the core's own alerts and other
/// modules' are named by module.
pub fn rule_of(a: &AlertInfo) -> String {
    let t = a.title.as_str();
    let r = if a.module == "core" && t.ends_with("is degraded") {
        "node_degraded"
    } else if t.starts_with("Successful login as") {
        "login_success"
    } else if t.starts_with("Login attempt as watched user") {
        "auth_username"
    } else if t.starts_with("Scan from") {
        "scan_detected"
    } else if t.starts_with("New capture") {
        "new_capture"
    } else if t.starts_with("Source ") && t.contains(" seen on ") {
        "source_on_nodes"
    } else {
        return a.module.clone();
    };
    r.to_owned()
}

/// `key=value` pairs of an alert body (the alerts module writes its details so).
fn body_field<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    body.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .filter(|v| !v.is_empty() && *v != "None" && *v != "null")
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What an alert's body says when it names no event (new_capture).
pub fn context_from_body(body: &str) -> AlertContext {
    AlertContext {
        source: None,
        service: body_field(body, "service").map(str::to_owned),
        session: body_field(body, "session")
            .filter(|s| is_hex(s, 16))
            .map(str::to_owned),
        capture: body_field(body, "sha256")
            .filter(|s| is_hex(s, 64))
            .map(str::to_lowercase),
        port: None,
    }
}

/// One entry of the ignore list.
#[derive(Debug, Clone, PartialEq)]
pub enum Ignore {
    Source(IpAddr, u8),
    Port(u16),
}

impl Ignore {
    pub fn parse(kind: &str, value: &str) -> Result<Ignore, String> {
        let value = value.trim();
        match kind {
            "source" => {
                let (ip, bits) = match value.split_once('/') {
                    Some((ip, bits)) => (ip, Some(bits)),
                    None => (value, None),
                };
                let ip: IpAddr = ip.parse().map_err(|_| {
                    format!("{value:?} is not an IP address or CIDR block (203.0.113.0/24)")
                })?;
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let bits = match bits {
                    None => max,
                    Some(b) => b
                        .parse::<u8>()
                        .ok()
                        .filter(|b| *b <= max)
                        .ok_or_else(|| format!("prefix length must be 0 to {max}"))?,
                };
                Ok(Ignore::Source(ip, bits))
            }
            "port" => value
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .map(Ignore::Port)
                .ok_or_else(|| format!("{value:?} is not a port (1 to 65535)")),
            other => Err(format!(
                "kind {other:?}: an ignore entry is by source or port"
            )),
        }
    }

    pub fn matches(&self, c: &AlertContext) -> bool {
        match self {
            Ignore::Source(net, bits) => c
                .source
                .is_some_and(|ip| crate::query::in_cidr(ip, *net, *bits)),
            Ignore::Port(p) => c.port == Some(*p),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IncidentsError {
    #[error("incident database: {0}")]
    Db(#[from] rusqlite::Error),
}

/// The incident database.
#[derive(Clone)]
pub struct Incidents {
    conn: Arc<Mutex<Connection>>,
    /// One sync with the core at a time (the feed and a request may both want one).
    pub sync_lock: Arc<tokio::sync::Mutex<()>>,
}

/// Filters and order of an incident list.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ListQuery {
    /// Comma-separated severities.
    pub severity: Option<String>,
    /// `open` (default), `acknowledged` or `all`.
    pub state: Option<String>,
    pub rule: Option<String>,
    /// Source address, node or service containing this text.
    pub q: Option<String>,
    /// Last seen at or after / before (ms).
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// `last_seen` (default), `first_seen`, `count`, `severity`, `source`, `node`, `service`.
    pub sort: Option<String>,
    /// `desc` (default) or `asc`.
    pub order: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

fn sort_column(s: Option<&str>) -> Result<&'static str, String> {
    Ok(match s.unwrap_or("last_seen") {
        "last_seen" => "last_ms",
        "first_seen" => "first_ms",
        "count" => "count",
        "severity" => "sev_rank",
        "source" => "source",
        "node" => "node",
        "service" => "service",
        "sessions" => "sessions",
        other => {
            return Err(format!(
                "sort {other:?}: one of last_seen, first_seen, count, severity, source, node, service, sessions"
            ));
        }
    })
}

fn incident_json(r: &rusqlite::Row) -> rusqlite::Result<Value> {
    let rules: String = r.get(6)?;
    Ok(json!({
        "id": r.get::<_, i64>(0)?,
        "source": Some(r.get::<_, String>(1)?).filter(|s| !s.is_empty()),
        "node": Some(r.get::<_, String>(2)?).filter(|s| !s.is_empty()),
        "service": Some(r.get::<_, String>(3)?).filter(|s| !s.is_empty()),
        "severity": r.get::<_, String>(4)?,
        "rules": rules.split(',').filter(|s| !s.is_empty()).collect::<Vec<_>>(),
        "title": r.get::<_, String>(7)?,
        "count": r.get::<_, i64>(8)?,
        "sessions": r.get::<_, i64>(9)?,
        "first_seen_ms": r.get::<_, i64>(10)?,
        "last_seen_ms": r.get::<_, i64>(11)?,
        "acked_ms": r.get::<_, Option<i64>>(12)?,
        "acked_by": r.get::<_, Option<String>>(13)?,
        "state": if r.get::<_, Option<i64>>(12)?.is_some() { "acknowledged" } else { "open" },
    }))
}

const COLUMNS: &str = "id, source, node, service, severity, sev_rank, rules, title, count, \
                       sessions, first_ms, last_ms, acked_ms, acked_by";

impl Incidents {
    pub fn open(path: &FsPath) -> Result<Incidents, IncidentsError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Incidents {
            conn: Arc::new(Mutex::new(conn)),
            sync_lock: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, IncidentsError> {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&mut c)?)
    }

    fn meta(&self, k: &str) -> Result<i64, IncidentsError> {
        self.with(|c| {
            Ok(
                c.query_row("SELECT v FROM meta WHERE k = ?1", [k], |r| r.get(0))
                    .optional()?
                    .unwrap_or(0),
            )
        })
    }

    /// The newest alert id already grouped.
    pub fn high_water(&self) -> Result<i64, IncidentsError> {
        self.meta("high_water")
    }

    /// Alerts dropped by the ignore list so far.
    pub fn ignored(&self) -> Result<i64, IncidentsError> {
        self.meta("ignored")
    }

    pub fn ignores(&self) -> Result<Vec<(i64, Ignore)>, IncidentsError> {
        self.with(|c| {
            let mut st = c.prepare_cached("SELECT id, kind, value FROM ignore_list ORDER BY id")?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, kind, value) = row?;
                if let Ok(i) = Ignore::parse(&kind, &value) {
                    out.push((id, i));
                }
            }
            Ok(out)
        })
    }

    /// Groups one alert (in id order; ids at or below the high-water mark are skipped).
    /// Returns the incident it joined, or `None` when ignored or already grouped.
    pub fn add(
        &self,
        a: &AlertInfo,
        ctx: &AlertContext,
        ignores: &[(i64, Ignore)],
    ) -> Result<Option<i64>, IncidentsError> {
        let rule = rule_of(a);
        let hit = ignores
            .iter()
            .find(|(_, i)| i.matches(ctx))
            .map(|(id, _)| *id);
        self.with(|c| {
            let tx = c.transaction()?;
            let seen: i64 = tx
                .query_row("SELECT v FROM meta WHERE k = 'high_water'", [], |r| r.get(0))
                .optional()?
                .unwrap_or(0);
            if a.id <= seen {
                return Ok(None);
            }
            tx.execute(
                "INSERT INTO meta (k, v) VALUES ('high_water', ?1) ON CONFLICT (k) DO UPDATE SET v = ?1",
                [a.id],
            )?;
            if let Some(id) = hit {
                tx.execute("UPDATE ignore_list SET hits = hits + 1 WHERE id = ?1", [id])?;
                tx.execute(
                    "INSERT INTO meta (k, v) VALUES ('ignored', 1) ON CONFLICT (k) DO UPDATE SET v = v + 1",
                    [],
                )?;
                tx.commit()?;
                return Ok(None);
            }
            let source = ctx.source.map(|s| s.to_string()).unwrap_or_default();
            let node = a.node.clone().unwrap_or_default();
            let service = ctx.service.clone().unwrap_or_default();
            // The open incident of this source/node/service whose last alert is recent.
            let found: Option<(i64, String)> = tx
                .query_row(
                    "SELECT id, rules FROM incidents WHERE source = ?1 AND node = ?2 AND service = ?3 \
                     AND acked_ms IS NULL AND last_ms >= ?4 ORDER BY last_ms DESC LIMIT 1",
                    params![source, node, service, a.time_ms - WINDOW_MS],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let new_session = match &ctx.session {
                Some(s) => !tx
                    .query_row(
                        "SELECT EXISTS (SELECT 1 FROM incident_alerts ia JOIN incidents i ON i.id = ia.incident \
                         WHERE ia.session = ?1 AND i.source = ?2 AND i.node = ?3 AND i.service = ?4 \
                         AND i.acked_ms IS NULL AND i.last_ms >= ?5)",
                        params![s, source, node, service, a.time_ms - WINDOW_MS],
                        |r| r.get::<_, bool>(0),
                    )?,
                None => false,
            };
            let id = match found {
                Some((id, rules)) => {
                    let rules = if rules.split(',').any(|r| r == rule) {
                        rules
                    } else {
                        format!("{rules}{rule},")
                    };
                    tx.execute(
                        "UPDATE incidents SET count = count + 1, sessions = sessions + ?2, \
                         first_ms = MIN(first_ms, ?3), last_ms = MAX(last_ms, ?3), rules = ?4, \
                         title = CASE WHEN ?3 >= last_ms THEN ?5 ELSE title END, \
                         severity = CASE WHEN ?6 > sev_rank THEN ?7 ELSE severity END, \
                         sev_rank = MAX(sev_rank, ?6) WHERE id = ?1",
                        params![
                            id,
                            i64::from(new_session),
                            a.time_ms,
                            rules,
                            a.title,
                            sev_rank(&a.severity),
                            a.severity
                        ],
                    )?;
                    id
                }
                None => {
                    tx.execute(
                        "INSERT INTO incidents (source, node, service, severity, sev_rank, rules, title, \
                         count, sessions, first_ms, last_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?9, ?9)",
                        params![
                            source,
                            node,
                            service,
                            a.severity,
                            sev_rank(&a.severity),
                            format!(",{rule},"),
                            a.title,
                            i64::from(ctx.session.is_some()),
                            a.time_ms
                        ],
                    )?;
                    tx.last_insert_rowid()
                }
            };
            tx.execute(
                "INSERT OR IGNORE INTO incident_alerts (alert_id, incident, time_ms, module, rule, severity, \
                 title, body, node, seq, session, capture, port) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    a.id,
                    id,
                    a.time_ms,
                    a.module,
                    rule,
                    a.severity,
                    a.title,
                    a.body,
                    a.node,
                    a.seq.map(|s| s as i64),
                    ctx.session,
                    ctx.capture,
                    ctx.port
                ],
            )?;
            tx.commit()?;
            Ok(Some(id))
        })
    }

    /// A page of incidents: (rows, total matching, open incidents overall).
    pub fn list(&self, q: &ListQuery) -> Result<(Vec<Value>, i64, i64), ApiError> {
        let mut clauses: Vec<String> = Vec::new();
        let mut args: Vec<Sql> = Vec::new();
        match q.state.as_deref().unwrap_or("open") {
            "open" => clauses.push("acked_ms IS NULL".into()),
            "acknowledged" => clauses.push("acked_ms IS NOT NULL".into()),
            "all" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "state {other:?}: open, acknowledged or all"
                )));
            }
        }
        if let Some(sev) = q.severity.as_deref().filter(|s| !s.trim().is_empty()) {
            let mut marks = Vec::new();
            for s in sev.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if !SEVERITIES.contains(&s) {
                    return Err(ApiError::bad_request(format!(
                        "severity {s:?}: one of {}",
                        SEVERITIES.join(", ")
                    )));
                }
                marks.push("?");
                args.push(Sql::Text(s.to_owned()));
            }
            clauses.push(format!("severity IN ({})", marks.join(",")));
        }
        if let Some(rule) = q.rule.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            if rule.len() > 64 || rule.contains(',') {
                return Err(ApiError::bad_request(
                    "rule: a rule name (at most 64 bytes)",
                ));
            }
            clauses.push("instr(rules, ?) > 0".into());
            args.push(Sql::Text(format!(",{rule},")));
        }
        if let Some(text) = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            if text.len() > 256 {
                return Err(ApiError::bad_request("q is longer than 256 bytes"));
            }
            clauses.push(
                "(instr(lower(source), ?1x) > 0 OR instr(lower(node), ?1x) > 0 OR instr(lower(service), ?1x) > 0 OR instr(lower(title), ?1x) > 0)"
                    .replace("?1x", "?"),
            );
            for _ in 0..4 {
                args.push(Sql::Text(text.to_lowercase()));
            }
        }
        if let Some(s) = q.since_ms {
            clauses.push("last_ms >= ?".into());
            args.push(Sql::Integer(s));
        }
        if let Some(u) = q.until_ms {
            clauses.push("first_ms < ?".into());
            args.push(Sql::Integer(u));
        }
        let col = sort_column(q.sort.as_deref()).map_err(ApiError::bad_request)?;
        let dir = match q.order.as_deref().unwrap_or("desc") {
            "desc" => "DESC",
            "asc" => "ASC",
            _ => return Err(ApiError::bad_request("order is asc or desc")),
        };
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND "))
        };
        let limit = i64::from(q.limit.unwrap_or(50).clamp(1, MAX_PAGE));
        let offset = i64::from(q.offset.unwrap_or(0).min(1_000_000));
        let sql = format!(
            "SELECT {COLUMNS} FROM incidents{filter} ORDER BY {col} {dir}, id {dir} LIMIT {limit} OFFSET {offset}"
        );
        let count_sql = format!("SELECT COUNT(*) FROM incidents{filter}");
        self.with(|c| {
            let rows = {
                let mut st = c.prepare(&sql)?;
                st.query_map(params_from_iter(args.iter()), incident_json)?
                    .collect::<Result<Vec<_>, _>>()?
            };
            let total: i64 =
                c.query_row(&count_sql, params_from_iter(args.iter()), |r| r.get(0))?;
            let open: i64 = c.query_row(
                "SELECT COUNT(*) FROM incidents WHERE acked_ms IS NULL",
                [],
                |r| r.get(0),
            )?;
            Ok((rows, total, open))
        })
        .map_err(ApiError::internal)
    }

    /// One incident with its newest alerts.
    pub fn get(&self, id: i64) -> Result<Option<Value>, IncidentsError> {
        self.with(|c| {
            let Some(mut inc) = c
                .query_row(
                    &format!("SELECT {COLUMNS} FROM incidents WHERE id = ?1"),
                    [id],
                    incident_json,
                )
                .optional()?
            else {
                return Ok(None);
            };
            let mut st = c.prepare_cached(
                "SELECT alert_id, time_ms, module, rule, severity, title, body, node, seq, session, capture, port \
                 FROM incident_alerts WHERE incident = ?1 ORDER BY time_ms DESC, alert_id DESC LIMIT ?2",
            )?;
            let alerts = st
                .query_map(params![id, DETAIL_ALERTS], |r| {
                    Ok(json!({
                        "id": r.get::<_, i64>(0)?,
                        "time_ms": r.get::<_, i64>(1)?,
                        "module": r.get::<_, String>(2)?,
                        "rule": r.get::<_, String>(3)?,
                        "severity": r.get::<_, String>(4)?,
                        "title": r.get::<_, String>(5)?,
                        "body": r.get::<_, String>(6)?,
                        "node": r.get::<_, Option<String>>(7)?,
                        "seq": r.get::<_, Option<i64>>(8)?,
                        "session": r.get::<_, Option<String>>(9)?,
                        "capture": r.get::<_, Option<String>>(10)?,
                        "port": r.get::<_, Option<i64>>(11)?,
                    }))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut sessions: Vec<String> = c
                .prepare_cached(
                    "SELECT DISTINCT session FROM incident_alerts WHERE incident = ?1 AND session IS NOT NULL LIMIT 200",
                )?
                .query_map([id], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            sessions.sort();
            if let Value::Object(o) = &mut inc {
                o.insert("alerts".into(), alerts.into());
                o.insert("session_ids".into(), sessions.into());
            }
            Ok(Some(inc))
        })
    }

    /// Marks incidents acknowledged; returns (incidents newly acknowledged, their alert ids).
    pub fn ack(&self, ids: &[i64], by: &str, now: i64) -> Result<(u64, Vec<i64>), IncidentsError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let mut n = 0;
            let mut alerts = Vec::new();
            for id in ids {
                let changed = tx.execute(
                    "UPDATE incidents SET acked_ms = ?2, acked_by = ?3 WHERE id = ?1 AND acked_ms IS NULL",
                    params![id, now, by],
                )?;
                if changed > 0 {
                    n += 1;
                    let mut st =
                        tx.prepare_cached("SELECT alert_id FROM incident_alerts WHERE incident = ?1")?;
                    for a in st.query_map([id], |r| r.get::<_, i64>(0))? {
                        alerts.push(a?);
                    }
                }
            }
            tx.commit()?;
            Ok((n, alerts))
        })
    }

    pub fn ignore_list(&self) -> Result<Vec<Value>, IncidentsError> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, kind, value, note, created_ms, created_by, hits FROM ignore_list ORDER BY id",
            )?;
            st.query_map([], |r| {
                Ok(json!({
                    "id": r.get::<_, i64>(0)?,
                    "kind": r.get::<_, String>(1)?,
                    "value": r.get::<_, String>(2)?,
                    "note": r.get::<_, String>(3)?,
                    "created_ms": r.get::<_, i64>(4)?,
                    "created_by": r.get::<_, String>(5)?,
                    "hits": r.get::<_, i64>(6)?,
                }))
            })?
            .collect()
        })
    }

    /// Adds an entry (validated); returns its id, or the reason it was refused.
    pub fn add_ignore(
        &self,
        kind: &str,
        value: &str,
        note: &str,
        by: &str,
    ) -> Result<Result<i64, String>, IncidentsError> {
        if let Err(e) = Ignore::parse(kind, value) {
            return Ok(Err(e));
        }
        if note.len() > 256 {
            return Ok(Err("note: at most 256 bytes".into()));
        }
        self.with(|c| {
            let n: i64 = c.query_row("SELECT COUNT(*) FROM ignore_list", [], |r| r.get(0))?;
            if n as usize >= MAX_IGNORES {
                return Ok(Err(format!("the ignore list holds at most {MAX_IGNORES} entries")));
            }
            let dup: bool = c.query_row(
                "SELECT EXISTS (SELECT 1 FROM ignore_list WHERE kind = ?1 AND value = ?2)",
                params![kind, value.trim()],
                |r| r.get(0),
            )?;
            if dup {
                return Ok(Err(format!("{kind} {} is already ignored", value.trim())));
            }
            c.execute(
                "INSERT INTO ignore_list (kind, value, note, created_ms, created_by) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![kind, value.trim(), note, now_ms(), by],
            )?;
            Ok(Ok(c.last_insert_rowid()))
        })
    }

    /// (open incidents, open ones that are critical or high).
    pub fn open_counts(&self) -> Result<(i64, i64), IncidentsError> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*), COALESCE(SUM(sev_rank >= 3), 0) FROM incidents WHERE acked_ms IS NULL",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
    }

    /// Forgets acknowledged incidents older than [`KEEP_ACKED_MS`], and the oldest
    /// acknowledged ones past [`MAX_INCIDENTS`]; returns how many went. Open incidents stay.
    pub fn prune(&self, now: i64) -> Result<u64, IncidentsError> {
        self.with(|c| {
            let tx = c.transaction()?;
            let mut gone = tx.execute(
                "DELETE FROM incidents WHERE acked_ms IS NOT NULL AND last_ms < ?1",
                [now - KEEP_ACKED_MS],
            )? as u64;
            let total: i64 = tx.query_row("SELECT COUNT(*) FROM incidents", [], |r| r.get(0))?;
            if total > MAX_INCIDENTS {
                gone += tx.execute(
                    "DELETE FROM incidents WHERE id IN (SELECT id FROM incidents \
                     WHERE acked_ms IS NOT NULL ORDER BY last_ms LIMIT ?1)",
                    [total - MAX_INCIDENTS],
                )? as u64;
            }
            tx.execute(
                "DELETE FROM incident_alerts WHERE incident NOT IN (SELECT id FROM incidents)",
                [],
            )?;
            tx.commit()?;
            Ok(gone)
        })
    }

    pub fn delete_ignore(&self, id: i64) -> Result<bool, IncidentsError> {
        self.with(|c| Ok(c.execute("DELETE FROM ignore_list WHERE id = ?1", [id])? > 0))
    }
}

// ------------------------------------------------------------------ sync with the core

/// The source, service, session, capture and port of an alert's event.
async fn context_of(app: &AppState, a: &AlertInfo) -> AlertContext {
    let mut ctx = context_from_body(&a.body);
    let (Some(node), Some(seq)) = (a.node.as_deref(), a.seq) else {
        return ctx;
    };
    let Ok(node) = NodeId::new(node) else {
        return ctx;
    };
    if let Ok(Resp::Events(ev)) = app.core.request(None, Req::GetEvent { node, seq }).await
        && let Some(e) = ev.first()
    {
        ctx.source = e.event.src.map(|s| s.ip().to_canonical());
        ctx.service = Some(e.event.service.clone());
        ctx.session = e.event.session.map(|s| s.to_hex()).or(ctx.session);
        ctx.port = e.event.dst.map(|d| d.port());
        if let EventKind::Capture { sha256, .. } = &e.event.kind
            && is_hex(sha256, 64)
        {
            ctx.capture = Some(sha256.to_lowercase());
        }
    }
    ctx
}

/// Groups every alert the core has that is newer than the high-water mark. Returns how
/// many were looked at.
///
/// With `wait` false (a request), a sync already running is not waited for: the request
/// answers what is grouped so far (a first sync of thousands of alerts takes a while).
pub async fn sync(app: &AppState, wait: bool) -> Result<usize, ApiError> {
    let _one = if wait {
        app.incidents.sync_lock.lock().await
    } else {
        match app.incidents.sync_lock.try_lock() {
            Ok(g) => g,
            Err(_) => return Ok(0),
        }
    };
    let seen = app.incidents.high_water().map_err(ApiError::internal)?;
    let mut limit = SYNC_PAGE;
    let fresh = loop {
        let Resp::Alerts(list) = app
            .core
            .request(None, Req::ListAlerts { limit })
            .await
            .map_err(crate::state::link_error)?
        else {
            return Err(unexpected());
        };
        let full = list.len() as u32 >= limit;
        let oldest = list.iter().map(|a| a.id).min().unwrap_or(0);
        // A full page whose oldest alert is still new: there may be more; ask for the most.
        if full && oldest > seen + 1 && limit < 10_000 {
            limit = 10_000;
            continue;
        }
        break list;
    };
    let mut fresh: Vec<AlertInfo> = fresh.into_iter().filter(|a| a.id > seen).collect();
    fresh.sort_by_key(|a| a.id);
    fresh.truncate(SYNC_MAX);
    if fresh.is_empty() {
        return Ok(0);
    }
    let ignores = app.incidents.ignores().map_err(ApiError::internal)?;
    for a in &fresh {
        let ctx = context_of(app, a).await;
        app.incidents
            .add(a, &ctx, &ignores)
            .map_err(ApiError::internal)?;
    }
    Ok(fresh.len())
}

/// Keeps incidents current in the background (requests also sync before answering).
pub async fn feed(app: AppState) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u64 = 0;
    loop {
        tick.tick().await;
        // Once an hour (and at start): forget old acknowledged incidents.
        if ticks.is_multiple_of(1800) {
            let inc = app.incidents.clone();
            match tokio::task::spawn_blocking(move || inc.prune(now_ms())).await {
                Ok(Ok(n)) if n > 0 => {
                    tracing::info!(incidents = n, "old acknowledged incidents forgotten")
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "pruning incidents failed"),
                _ => {}
            }
        }
        ticks += 1;
        match sync(&app, true).await {
            Ok(n) if n > 0 => {
                app.broadcast(&json!({"type": "incidents", "incidents": {"grouped": n}}));
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e.message, "grouping alerts into incidents failed"),
        }
    }
}

// ------------------------------------------------------------------ REST

pub async fn list(
    State(app): State<AppState>,
    _a: Authed,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    // A core that cannot be reached still leaves what was grouped before readable.
    let synced = sync(&app, false).await.is_ok();
    let inc = app.incidents.clone();
    let (rows, total, open) = tokio::task::spawn_blocking(move || inc.list(&q))
        .await
        .map_err(ApiError::internal)??;
    let ignored = app.incidents.ignored().map_err(ApiError::internal)?;
    Ok(Json(json!({
        "incidents": rows, "total": total, "open": open, "ignored_alerts": ignored,
        "window_ms": WINDOW_MS, "synced": synced,
    })))
}

pub async fn one(
    State(app): State<AppState>,
    _a: Authed,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let _ = sync(&app, false).await;
    app.incidents
        .get(id)
        .map_err(ApiError::internal)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no incident {id}")))
}

#[derive(Deserialize)]
pub struct AckBody {
    ids: Vec<i64>,
}

pub async fn ack(
    State(app): State<AppState>,
    AdminOnly(a): AdminOnly,
    Json(b): Json<AckBody>,
) -> ApiResult<Json<Value>> {
    if b.ids.is_empty() || b.ids.len() > MAX_ACK {
        return Err(ApiError::bad_request(format!(
            "ids: 1 to {MAX_ACK} incident ids"
        )));
    }
    let (n, alerts) = app
        .incidents
        .ack(&b.ids, a.user(), now_ms())
        .map_err(ApiError::internal)?;
    // The core's alerts follow, so its open count and `honeybee alerts` agree.
    let mut core_acked = 0;
    for id in alerts.iter().take(MAX_CORE_ACKS) {
        if app.ask(a.user(), Req::AckAlert { id: *id }).await.is_ok() {
            core_acked += 1;
        }
    }
    tracing::info!(by = %a.user(), incidents = n, alerts = core_acked, "incidents acknowledged");
    app.broadcast(&json!({"type": "incidents", "incidents": {"acked": n}}));
    Ok(Json(json!({"acked": n, "alerts_acked": core_acked})))
}

pub async fn ignores(State(app): State<AppState>, _a: Authed) -> ApiResult<Json<Value>> {
    Ok(Json(Value::Array(
        app.incidents.ignore_list().map_err(ApiError::internal)?,
    )))
}

#[derive(Deserialize)]
pub struct IgnoreBody {
    kind: String,
    value: String,
    #[serde(default)]
    note: String,
}

pub async fn ignore_add(
    State(app): State<AppState>,
    AdminOnly(a): AdminOnly,
    Json(b): Json<IgnoreBody>,
) -> ApiResult<Json<Value>> {
    match app
        .incidents
        .add_ignore(&b.kind, &b.value, &b.note, a.user())
        .map_err(ApiError::internal)?
    {
        Ok(id) => {
            tracing::info!(by = %a.user(), kind = %b.kind, value = %b.value, "ignore entry added");
            Ok(Json(
                json!({"id": id, "kind": b.kind, "value": b.value.trim()}),
            ))
        }
        Err(m) => Err(ApiError::bad_request(m)),
    }
}

pub async fn ignore_delete(
    State(app): State<AppState>,
    AdminOnly(a): AdminOnly,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    if !app
        .incidents
        .delete_ignore(id)
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::not_found(format!("no ignore entry {id}")));
    }
    tracing::info!(by = %a.user(), id, "ignore entry removed");
    Ok(Json(json!({"deleted": id})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: i64, time_ms: i64, severity: &str, title: &str) -> AlertInfo {
        AlertInfo {
            id,
            time_ms,
            module: "alerts".into(),
            severity: severity.into(),
            title: title.into(),
            body: String::new(),
            node: Some("n1".into()),
            seq: Some(id as u64),
            acked_ms: None,
            acked_by: None,
        }
    }

    fn ctx(src: &str, session: &str, port: u16) -> AlertContext {
        AlertContext {
            source: Some(src.parse().unwrap()),
            service: Some("ssh".into()),
            session: Some(session.into()),
            capture: None,
            port: Some(port),
        }
    }

    fn q(extra: impl FnOnce(&mut ListQuery)) -> ListQuery {
        let mut l = ListQuery {
            state: Some("all".into()),
            ..Default::default()
        };
        extra(&mut l);
        l
    }

    #[test]
    fn one_source_node_service_within_the_window_is_one_incident() {
        let dir = tempfile::tempdir().unwrap();
        let inc = Incidents::open(&dir.path().join("i.db")).unwrap();
        let login = "Successful login as \"root\" on n1 (ssh) from 203.0.113.7";
        let watched = "Login attempt as watched user \"root\" on n1 (ssh) from 203.0.113.7";
        let a = inc
            .add(
                &alert(1, 1000, "medium", watched),
                &ctx("203.0.113.7", "aa", 22),
                &[],
            )
            .unwrap()
            .unwrap();
        let b = inc
            .add(
                &alert(2, 2000, "critical", login),
                &ctx("203.0.113.7", "bb", 22),
                &[],
            )
            .unwrap()
            .unwrap();
        assert_eq!(a, b);
        // Another source, then the first source after the window: two more incidents.
        let c = inc
            .add(
                &alert(3, 3000, "high", watched),
                &ctx("198.51.100.1", "cc", 22),
                &[],
            )
            .unwrap()
            .unwrap();
        let d = inc
            .add(
                &alert(4, 2000 + WINDOW_MS + 1, "low", watched),
                &ctx("203.0.113.7", "dd", 22),
                &[],
            )
            .unwrap()
            .unwrap();
        assert!(c != a && d != a && d != c);
        // Already grouped ids are skipped.
        assert_eq!(
            inc.add(
                &alert(2, 2000, "critical", login),
                &ctx("203.0.113.7", "bb", 22),
                &[]
            )
            .unwrap(),
            None
        );
        let first = inc.get(a).unwrap().unwrap();
        assert_eq!(first["count"], 2);
        assert_eq!(first["sessions"], 2);
        assert_eq!(first["severity"], "critical");
        assert_eq!(first["rules"], json!(["auth_username", "login_success"]));
        assert_eq!(first["first_seen_ms"], 1000);
        assert_eq!(first["last_seen_ms"], 2000);
        assert_eq!(first["session_ids"], json!(["aa", "bb"]));
        // Filters and sorting.
        let (rows, total, open) = inc
            .list(&q(|l| l.severity = Some("critical,high".into())))
            .unwrap();
        assert_eq!((rows.len(), total, open), (2, 2, 3));
        let (rows, _, _) = inc
            .list(&q(|l| l.rule = Some("login_success".into())))
            .unwrap();
        assert_eq!(rows.len(), 1);
        let (rows, _, _) = inc
            .list(&q(|l| {
                l.sort = Some("count".into());
                l.order = Some("desc".into())
            }))
            .unwrap();
        assert_eq!(rows[0]["id"], a);
        let (rows, _, _) = inc
            .list(&q(|l| {
                l.sort = Some("source".into());
                l.order = Some("asc".into())
            }))
            .unwrap();
        assert_eq!(rows[0]["source"], "198.51.100.1");
        assert!(
            inc.list(&q(|l| l.sort = Some("id; DROP TABLE x".into())))
                .is_err()
        );
        assert!(
            inc.list(&q(|l| l.severity = Some("urgent".into())))
                .is_err()
        );
        // Bulk acknowledgement: both, once; an acknowledged incident does not grow.
        let (n, alerts) = inc.ack(&[a, c], "admin", 5000).unwrap();
        assert_eq!(n, 2);
        assert_eq!(alerts.len(), 3);
        assert_eq!(inc.ack(&[a], "admin", 6000).unwrap().0, 0);
        let (_, _, open) = inc.list(&q(|_| {})).unwrap();
        assert_eq!(open, 1);
        // Pruning forgets acknowledged incidents long past, not open ones.
        assert_eq!(inc.prune(2000 + KEEP_ACKED_MS).unwrap(), 0);
        assert_eq!(inc.prune(3001 + KEEP_ACKED_MS).unwrap(), 2);
        assert!(inc.get(a).unwrap().is_none() && inc.get(d).unwrap().is_some());
        let e = inc
            .add(
                &alert(5, 2500, "high", watched),
                &ctx("203.0.113.7", "ee", 22),
                &[],
            )
            .unwrap()
            .unwrap();
        assert!(e != a);
    }

    #[test]
    fn ignore_list_by_source_block_and_port() {
        let dir = tempfile::tempdir().unwrap();
        let inc = Incidents::open(&dir.path().join("i.db")).unwrap();
        assert!(
            inc.add_ignore("source", "10.0.0.0/8", "lab", "admin")
                .unwrap()
                .is_ok()
        );
        assert!(inc.add_ignore("port", "2323", "", "admin").unwrap().is_ok());
        assert!(
            inc.add_ignore("source", "10.0.0.0/33", "", "admin")
                .unwrap()
                .is_err()
        );
        assert!(inc.add_ignore("port", "0", "", "admin").unwrap().is_err());
        assert!(
            inc.add_ignore("port", "70000", "", "admin")
                .unwrap()
                .is_err()
        );
        assert!(inc.add_ignore("host", "x", "", "admin").unwrap().is_err());
        assert!(
            inc.add_ignore("port", "2323", "", "admin")
                .unwrap()
                .is_err()
        );
        let ig = inc.ignores().unwrap();
        let t = "Scan from x";
        assert_eq!(
            inc.add(&alert(1, 1, "high", t), &ctx("10.1.2.3", "a", 22), &ig)
                .unwrap(),
            None
        );
        assert_eq!(
            inc.add(
                &alert(2, 2, "high", t),
                &ctx("::ffff:10.1.2.3", "a", 22),
                &ig
            )
            .unwrap(),
            None
        );
        assert_eq!(
            inc.add(&alert(3, 3, "high", t), &ctx("203.0.113.9", "a", 2323), &ig)
                .unwrap(),
            None
        );
        assert!(
            inc.add(&alert(4, 4, "high", t), &ctx("203.0.113.9", "a", 22), &ig)
                .unwrap()
                .is_some()
        );
        assert_eq!(inc.ignored().unwrap(), 3);
        assert_eq!(inc.ignore_list().unwrap()[0]["hits"], 2);
        let id = inc.ignore_list().unwrap()[0]["id"].as_i64().unwrap();
        assert!(inc.delete_ignore(id).unwrap());
        assert!(!inc.delete_ignore(id).unwrap());
    }

    #[test]
    fn rules_and_body_context() {
        let mut a = alert(
            1,
            1,
            "high",
            "New capture 0123456789abcdef (upload, 5 bytes) on n1",
        );
        assert_eq!(rule_of(&a), "new_capture");
        a.title = "node n1 is degraded".into();
        a.module = "core".into();
        assert_eq!(rule_of(&a), "node_degraded");
        a.module = "mine".into();
        a.title = "something".into();
        assert_eq!(rule_of(&a), "mine");
        let sha = "ab".repeat(32);
        let c = context_from_body(&format!(
            "sha256={sha} size=5 kind=upload service=ftp session=0011223344556677"
        ));
        assert_eq!(c.capture.as_deref(), Some(sha.as_str()));
        assert_eq!(c.service.as_deref(), Some("ftp"));
        assert_eq!(c.session.as_deref(), Some("0011223344556677"));
        let c = context_from_body("sha256=../../etc session=None");
        assert_eq!((c.capture, c.session), (None, None));
    }
}
