//! Event search and aggregates for the dashboard, in SQL: filtered pages of events with a
//! keyset cursor, and the counts behind the overview, analytics and reports.
//!
//! The SQL is written once for every backend: it reads only plain columns (the searchable
//! ones are derived at insert, see `codec::EventRow`), uses `?` / `?N` placeholders that
//! the PostgreSQL backend renumbers to `$N`, and differs by [`Dialect`] only where the
//! engines name a function differently (substring search).

use super::rollup::{Counted, Plan, Tally};
use super::{SqliteStore, StoreError, effective_limit};
use honeybee_proto::NodeId;
use honeybee_proto::admin::{
    CredentialCount, EventSearch, GeoCount, KeyCount, Series, Stats, StatsQuery, StoredEvent,
};
use honeybee_proto::event::{Event, EventKind};
use rusqlite::functions::FunctionFlags;
use rusqlite::types::Value;
use rusqlite::{Connection, params, params_from_iter};
use std::collections::BTreeMap;

/// Most buckets one series may have; a wider range needs a larger bucket.
pub const MAX_BUCKETS: i64 = 10_000;
/// Most entries of a top-N list.
pub const MAX_TOP: u32 = 100;
/// Longest free-text or source filter accepted.
const MAX_FILTER_LEN: usize = 256;

/// Which engine's SQL to write where they differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// SQL that is true when `haystack` contains `needle` (as the next `?` argument,
    /// which this pushes onto `args`). PostgreSQL gets `LIKE '%needle%'` with every
    /// wildcard in the needle escaped: the same test as `strpos` (a literal substring),
    /// in the form its trigram indexes (`pg_trgm`, see `postgres::trigram`) can serve.
    fn contains(self, haystack: &str, needle: &str, args: &mut Vec<Arg>) -> String {
        match self {
            Dialect::Sqlite => {
                args.push(Arg::Text(needle.to_owned()));
                format!("instr({haystack}, ?) > 0")
            }
            Dialect::Postgres => {
                args.push(Arg::Text(like_substring(needle)));
                format!("{haystack} LIKE ? ESCAPE '\\'")
            }
        }
    }
}

/// A `LIKE` pattern (escape character `\\`) that matches any text containing `s`.
pub(crate) fn like_substring(s: &str) -> String {
    let mut p = String::with_capacity(s.len() + 2);
    p.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// A query argument, whatever the backend.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Int(i64),
    Text(String),
}

impl From<Arg> for Value {
    fn from(a: Arg) -> Value {
        match a {
            Arg::Int(i) => Value::Integer(i),
            Arg::Text(s) => Value::Text(s),
        }
    }
}

fn decode(body: &[u8]) -> Option<Event> {
    postcard::from_bytes(body).ok()
}
/// Everything searchable about an event that has no column of its own, lower-cased.
pub fn searchable_text(ev: &Event) -> String {
    let mut parts: Vec<String> = vec![ev.service.clone(), ev.kind.name().into()];
    if let Some(s) = ev.src {
        parts.push(s.to_string());
    }
    if let Some(s) = ev.session {
        parts.push(s.to_hex());
    }
    match &ev.kind {
        EventKind::AuthAttempt(a) => {
            parts.push(a.username.clone());
            parts.extend(a.password.clone());
            parts.extend(a.key_fingerprint.clone());
            parts.extend(a.client_version.clone());
        }
        EventKind::Command { line } => parts.push(line.clone()),
        EventKind::Data { bytes, .. } => parts.push(String::from_utf8_lossy(bytes).into_owned()),
        EventKind::LimitReached { limit, detail } => {
            parts.push(limit.clone());
            parts.push(detail.clone());
        }
        EventKind::ServiceError { message } => parts.push(message.clone()),
        EventKind::HttpRequest(r) => {
            parts.push(r.method.clone());
            parts.push(r.path.clone());
            parts.extend(r.query.clone());
            parts.extend(r.user_agent.clone());
            parts.extend(r.headers.iter().map(|(k, v)| format!("{k}: {v}")));
            parts.push(String::from_utf8_lossy(&r.body).into_owned());
        }
        EventKind::Capture {
            kind, sha256, name, ..
        } => {
            parts.push(kind.clone());
            parts.push(sha256.clone());
            parts.extend(name.clone());
        }
        EventKind::Download { url, tool } => {
            parts.push(url.clone());
            parts.push(tool.clone());
        }
        EventKind::DeviceLog(l) => {
            parts.push(l.device.clone());
            parts.extend(l.hostname.clone());
            parts.extend(l.app.clone());
            parts.extend(l.msgid.clone());
            parts.extend(l.structured_data.clone());
            parts.push(l.message.clone());
        }
        EventKind::DeviceTrap(t) => {
            parts.push(t.device.clone());
            parts.push(t.trap_oid.clone());
            parts.extend(t.varbinds.iter().map(|(k, v)| format!("{k} = {v}")));
        }
        _ => {}
    }
    parts.join("\n").to_lowercase()
}

/// Registers the body-decoding functions on one connection, for the migration that fills
/// in the searchable columns of rows stored before they existed (`sqlite::backfill_v3`).
/// No query uses them.
pub(super) fn register_backfill_functions(c: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    c.create_scalar_function("hb_text", 1, flags, |ctx| {
        let body: Vec<u8> = ctx.get(0)?;
        Ok(decode(&body).map(|e| searchable_text(&e)))
    })?;
    c.create_scalar_function("hb_password", 1, flags, |ctx| {
        let body: Vec<u8> = ctx.get(0)?;
        Ok(decode(&body).and_then(|e| match e.kind {
            EventKind::AuthAttempt(a) => a.password,
            _ => None,
        }))
    })?;
    c.create_scalar_function("hb_command", 1, flags, |ctx| {
        let body: Vec<u8> = ctx.get(0)?;
        Ok(decode(&body).and_then(|e| match e.kind {
            EventKind::Command { line } => Some(line),
            _ => None,
        }))
    })?;
    Ok(())
}

/// SQL `WHERE` clauses (with `?` placeholders) and their arguments for a search.
pub(crate) fn where_clause(
    q: &EventSearch,
    dialect: Dialect,
) -> Result<(String, Vec<Arg>), StoreError> {
    let mut clauses: Vec<String> = Vec::new();
    let mut args = Vec::new();
    if let Some(kind) = &q.kind
        && !EventKind::NAMES.contains(&kind.as_str())
    {
        return Err(StoreError::InvalidQuery(format!(
            "unknown event kind {kind:?}; expected one of {}",
            EventKind::NAMES.join(", ")
        )));
    }
    for (what, v) in [("src", &q.src), ("text", &q.text)] {
        if v.as_ref().is_some_and(|v| v.len() > MAX_FILTER_LEN) {
            return Err(StoreError::InvalidQuery(format!(
                "{what} filter is longer than {MAX_FILTER_LEN} bytes"
            )));
        }
    }
    if let Some(node) = &q.node {
        clauses.push("node = ?".into());
        args.push(Arg::Text(node.as_str().to_owned()));
    }
    if let Some(service) = &q.service {
        clauses.push("service = ?".into());
        args.push(Arg::Text(service.clone()));
    }
    if let Some(kind) = &q.kind {
        clauses.push("kind = ?".into());
        args.push(Arg::Text(kind.clone()));
    }
    if let Some(src) = q.src.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        if src.ends_with('.') || src.ends_with(':') {
            // A prefix: the index on src_ip serves a range scan (byte order: the
            // PostgreSQL schema gives src_ip the "C" collation).
            clauses.push("(src_ip >= ? AND src_ip < ?)".into());
            args.push(Arg::Text(src.to_owned()));
            args.push(Arg::Text(format!("{src}\u{10ffff}")));
        } else {
            clauses.push("src_ip = ?".into());
            args.push(Arg::Text(src.to_owned()));
        }
    }
    if let Some(session) = &q.session {
        clauses.push("session = ?".into());
        args.push(Arg::Text(session.to_hex()));
    }
    if let Some(since) = q.since_ms {
        clauses.push("time_ms >= ?".into());
        args.push(Arg::Int(since));
    }
    if let Some(until) = q.until_ms {
        clauses.push("time_ms < ?".into());
        args.push(Arg::Int(until));
    }
    if let Some(c) = &q.before {
        let seq = i64::try_from(c.seq).map_err(|_| StoreError::SeqOutOfRange(c.seq))?;
        clauses.push("(time_ms, node, seq) < (?, ?, ?)".into());
        args.push(Arg::Int(c.time_ms));
        args.push(Arg::Text(c.node.as_str().to_owned()));
        args.push(Arg::Int(seq));
    }
    if let Some(text) = q.text.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let t = text.to_lowercase();
        let in_text = dialect.contains("search_text", &t, &mut args);
        let in_node = dialect.contains("node", &t, &mut args);
        clauses.push(format!("({in_text} OR {in_node})"));
    }
    let sql = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    Ok((sql, args))
}

/// One page of a search: SQL and arguments.
pub(crate) fn search_sql(
    q: &EventSearch,
    dialect: Dialect,
) -> Result<(String, Vec<Arg>), StoreError> {
    let (clause, mut args) = where_clause(q, dialect)?;
    let sql = format!(
        "SELECT node, received_ms, body, id FROM events{clause} \
         ORDER BY time_ms DESC, node DESC, seq DESC LIMIT ?"
    );
    args.push(Arg::Int(effective_limit(q.limit).into()));
    Ok((sql, args))
}

pub(crate) fn range_args(q: &StatsQuery) -> Result<(), StoreError> {
    if q.until_ms <= q.since_ms {
        return Err(StoreError::InvalidQuery(
            "the time range is empty: until must be after since".into(),
        ));
    }
    if q.bucket_ms <= 0 {
        return Err(StoreError::InvalidQuery("bucket must be positive".into()));
    }
    if (q.until_ms - q.since_ms) / q.bucket_ms > MAX_BUCKETS {
        return Err(StoreError::InvalidQuery(format!(
            "more than {MAX_BUCKETS} buckets; choose a larger bucket or a shorter range"
        )));
    }
    Ok(())
}

/// The statements behind [`Stats`], shared by every backend. Arguments: `?1` since, `?2`
/// until, `?3` the bucket width (series) or the list length (top-N lists).
pub(crate) mod stats_sql {
    /// (count): ?1 ?2.
    pub const EVENTS_TOTAL: &str =
        "SELECT COUNT(*) FROM events WHERE time_ms >= ?1 AND time_ms < ?2";
    /// (bucket start, count): ?1 ?2 ?3 = bucket.
    pub const TOTAL: &str = "SELECT ((time_ms - ?1) / ?3) * ?3 + ?1 AS t, COUNT(*) FROM events \
         WHERE time_ms >= ?1 AND time_ms < ?2 GROUP BY t ORDER BY t";
    /// (key, bucket start, count) per `column`: ?1 ?2 ?3 = bucket.
    pub fn series(column: &str) -> String {
        format!(
            "SELECT {column}, ((time_ms - ?1) / ?3) * ?3 + ?1 AS t, COUNT(*) FROM events \
             WHERE time_ms >= ?1 AND time_ms < ?2 GROUP BY {column}, t ORDER BY {column}, t"
        )
    }
    /// (key, count), most frequent first: ?1 ?2 ?3 = top.
    pub fn top_of(column: &str, extra: &str) -> String {
        format!(
            "SELECT {column} AS k, COUNT(*) AS n FROM events \
             WHERE time_ms >= ?1 AND time_ms < ?2 AND {column} IS NOT NULL {extra} \
             GROUP BY {column} ORDER BY n DESC, k LIMIT ?3"
        )
    }
    pub fn by_kind() -> String {
        top_of("kind", "")
    }
    /// A source counts once per connection, not once per event of it.
    pub fn top_sources() -> String {
        top_of("src_ip", "AND kind = 'connect'")
    }
    pub fn top_services() -> String {
        top_of("service", "")
    }
    pub fn top_nodes() -> String {
        top_of("node", "")
    }
    pub fn top_commands() -> String {
        top_of("command", "AND kind = 'command'")
    }
    /// (username, password, count): ?1 ?2 ?3 = top.
    pub const TOP_CREDENTIALS: &str = "SELECT username, password, COUNT(*) AS n FROM events \
         WHERE time_ms >= ?1 AND time_ms < ?2 AND kind = 'auth_attempt' AND password IS NOT NULL \
         GROUP BY username, password ORDER BY n DESC, username, password LIMIT ?3";
    /// (country, lat, lon, count): ?1 ?2. One row per enriched event (several modules may
    /// enrich one event), then per country.
    pub const GEO: &str = "SELECT country, AVG(lat), AVG(lon), COUNT(*) AS n FROM ( \
           SELECT MAX(en.geo_country) AS country, MAX(en.geo_lat) AS lat, \
                  MAX(en.geo_lon) AS lon \
           FROM events e JOIN enrichments en ON en.node = e.node AND en.seq = e.seq \
           WHERE e.time_ms >= ?1 AND e.time_ms < ?2 AND en.kind = 'enrich' \
           GROUP BY e.node, e.seq) AS g \
         WHERE country IS NOT NULL GROUP BY country ORDER BY n DESC, country";
}

// -------------------------------------------------------------------- SQLite

fn key_counts(
    c: &Connection,
    sql: &str,
    since: i64,
    until: i64,
    top: u32,
) -> Result<Vec<KeyCount>, StoreError> {
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map(params![since, until, top], |r| {
        Ok(KeyCount {
            key: r.get(0)?,
            count: r.get::<_, i64>(1)?.max(0) as u64,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn series(c: &Connection, column: &str, q: &StatsQuery) -> Result<Vec<Series>, StoreError> {
    let mut stmt = c.prepare_cached(&stats_sql::series(column))?;
    let mut rows = stmt.query(params![q.since_ms, q.until_ms, q.bucket_ms])?;
    let mut out: BTreeMap<String, Vec<(i64, u64)>> = BTreeMap::new();
    while let Some(r) = rows.next()? {
        let key: String = r.get(0)?;
        let t: i64 = r.get(1)?;
        let n: i64 = r.get(2)?;
        out.entry(key).or_default().push((t, n.max(0) as u64));
    }
    Ok(out
        .into_iter()
        .map(|(key, points)| Series { key, points })
        .collect())
}

/// The parts of `Stats` the count tables serve, from the plain statements over `events`.
fn counted_from_events(c: &Connection, q: &StatsQuery) -> Result<Counted, StoreError> {
    let (since, until, top) = (q.since_ms, q.until_ms, q.top.min(MAX_TOP));
    let events_total: i64 = c
        .prepare_cached(stats_sql::EVENTS_TOTAL)?
        .query_row(params![since, until], |r| r.get(0))?;
    let mut total = Vec::new();
    {
        let mut stmt = c.prepare_cached(stats_sql::TOTAL)?;
        let mut rows = stmt.query(params![since, until, q.bucket_ms])?;
        while let Some(r) = rows.next()? {
            total.push((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?.max(0) as u64));
        }
    }
    Ok(Counted {
        events_total: events_total.max(0) as u64,
        total,
        by_service: series(c, "service", q)?,
        by_node: series(c, "node", q)?,
        by_kind: key_counts(c, &stats_sql::by_kind(), since, until, MAX_TOP)?,
        top_services: key_counts(c, &stats_sql::top_services(), since, until, top)?,
        top_nodes: key_counts(c, &stats_sql::top_nodes(), since, until, top)?,
    })
}

/// The same parts from the count tables where they cover the range (see `rollup`).
fn counted_from_counts(c: &Connection, q: &StatsQuery) -> Result<Option<Counted>, StoreError> {
    let Some(plan) = Plan::of(q) else {
        return Ok(None);
    };
    let pending: bool = c
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM count_backfill)")?
        .query_row([], |r| r.get(0))?;
    if pending {
        return Ok(None);
    }
    let mut tally = Tally::default();
    for (i, (sql, args)) in plan.statements(q).into_iter().enumerate() {
        let mut stmt = c.prepare_cached(&sql)?;
        let mut rows = stmt.query(params_from_iter(args.into_iter().map(Value::from)))?;
        while let Some(r) = rows.next()? {
            tally.add(i, r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
        }
    }
    Ok(Some(tally.finish(q.top)?))
}

fn stats_blocking(c: &Connection, q: &StatsQuery) -> Result<Stats, StoreError> {
    let (since, until, top) = (q.since_ms, q.until_ms, q.top.min(MAX_TOP));
    let counted = match counted_from_counts(c, q)? {
        Some(counted) => counted,
        None => counted_from_events(c, q)?,
    };
    let top_sources = key_counts(c, &stats_sql::top_sources(), since, until, top)?;
    let top_commands = key_counts(c, &stats_sql::top_commands(), since, until, top)?;
    let mut top_credentials = Vec::new();
    {
        let mut stmt = c.prepare_cached(stats_sql::TOP_CREDENTIALS)?;
        let mut rows = stmt.query(params![since, until, top])?;
        while let Some(r) = rows.next()? {
            top_credentials.push(CredentialCount {
                username: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                password: r.get(1)?,
                count: r.get::<_, i64>(2)?.max(0) as u64,
            });
        }
    }
    let mut geo = Vec::new();
    {
        let mut stmt = c.prepare_cached(stats_sql::GEO)?;
        let mut rows = stmt.query(params![since, until])?;
        while let Some(r) = rows.next()? {
            geo.push(GeoCount {
                country: r.get(0)?,
                lat: r.get(1)?,
                lon: r.get(2)?,
                count: r.get::<_, i64>(3)?.max(0) as u64,
            });
        }
    }
    Ok(Stats {
        events_total: counted.events_total,
        total: counted.total,
        by_service: counted.by_service,
        by_node: counted.by_node,
        by_kind: counted.by_kind,
        top_sources,
        top_services: counted.top_services,
        top_nodes: counted.top_nodes,
        top_credentials,
        top_commands,
        geo,
    })
}

impl SqliteStore {
    /// Newest first (time, node, seq descending), `limit` events (see [`effective_limit`])
    /// after `q.before`.
    pub async fn search_events(&self, q: &EventSearch) -> Result<Vec<StoredEvent>, StoreError> {
        let (sql, args) = search_sql(q, Dialect::Sqlite)?;
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(args.into_iter().map(Value::from)))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                super::sqlite::push_stored_event(&mut out, row)?;
            }
            Ok(out)
        })
        .await
    }

    pub async fn get_event(
        &self,
        node: &NodeId,
        seq: u64,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let node = node.as_str().to_owned();
        let seq = i64::try_from(seq).map_err(|_| StoreError::SeqOutOfRange(seq))?;
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT node, received_ms, body, id FROM events WHERE node = ?1 AND seq = ?2",
            )?;
            let mut rows = stmt.query(params![node, seq])?;
            let mut out = Vec::new();
            if let Some(row) = rows.next()? {
                super::sqlite::push_stored_event(&mut out, row)?;
            }
            Ok(out.pop())
        })
        .await
    }

    pub async fn stats(&self, q: &StatsQuery) -> Result<Stats, StoreError> {
        range_args(q)?;
        let q = q.clone();
        self.read(move |c| stats_blocking(c, &q)).await
    }
}
