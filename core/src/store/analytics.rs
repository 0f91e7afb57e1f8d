//! Event search and aggregates for the dashboard, in SQL: filtered pages of events with a
//! keyset cursor, and the counts behind the overview, analytics and reports.
//!
//! Event details the schema has no column for (passwords, command lines, request paths)
//! live in the postcard body; three SQL functions registered on every read connection
//! decode it (`hb_text`, `hb_password`, `hb_command`), so filtering, grouping and
//! `LIMIT` all still happen inside SQLite.

use super::{SqliteStore, StoreError, effective_limit};
use honeybee_proto::NodeId;
use honeybee_proto::admin::{
    CredentialCount, EventCursor, EventSearch, GeoCount, KeyCount, Series, Stats, StatsQuery,
    StoredEvent,
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
        _ => {}
    }
    parts.join("\n").to_lowercase()
}

/// Registers the functions this module's SQL uses on one connection.
pub(super) fn register_functions(c: &Connection) -> rusqlite::Result<()> {
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

/// SQL `WHERE` clauses and their arguments for a search.
pub(super) fn where_clause(q: &EventSearch) -> Result<(String, Vec<Value>), StoreError> {
    let mut clauses: Vec<&str> = Vec::new();
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
        clauses.push("node = ?");
        args.push(Value::Text(node.as_str().to_owned()));
    }
    if let Some(service) = &q.service {
        clauses.push("service = ?");
        args.push(Value::Text(service.clone()));
    }
    if let Some(kind) = &q.kind {
        clauses.push("kind = ?");
        args.push(Value::Text(kind.clone()));
    }
    if let Some(src) = q.src.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        if src.ends_with('.') || src.ends_with(':') {
            // A prefix: the index on src_ip serves a range scan.
            clauses.push("(src_ip >= ? AND src_ip < ?)");
            args.push(Value::Text(src.to_owned()));
            args.push(Value::Text(format!("{src}\u{10ffff}")));
        } else {
            clauses.push("src_ip = ?");
            args.push(Value::Text(src.to_owned()));
        }
    }
    if let Some(session) = &q.session {
        clauses.push("session = ?");
        args.push(Value::Text(session.to_hex()));
    }
    if let Some(since) = q.since_ms {
        clauses.push("time_ms >= ?");
        args.push(Value::Integer(since));
    }
    if let Some(until) = q.until_ms {
        clauses.push("time_ms < ?");
        args.push(Value::Integer(until));
    }
    if let Some(c) = &q.before {
        let seq = i64::try_from(c.seq).map_err(|_| StoreError::SeqOutOfRange(c.seq))?;
        clauses.push("(time_ms, node, seq) < (?, ?, ?)");
        args.push(Value::Integer(c.time_ms));
        args.push(Value::Text(c.node.as_str().to_owned()));
        args.push(Value::Integer(seq));
    }
    if let Some(text) = q.text.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        clauses.push("(instr(hb_text(body), ?) > 0 OR instr(node, ?) > 0)");
        let t = text.to_lowercase();
        args.push(Value::Text(t.clone()));
        args.push(Value::Text(t));
    }
    let sql = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    Ok((sql, args))
}

fn range_args(q: &StatsQuery) -> Result<(), StoreError> {
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
    let sql = format!(
        "SELECT {column}, ((time_ms - ?1) / ?3) * ?3 + ?1 AS t, COUNT(*) FROM events \
         WHERE time_ms >= ?1 AND time_ms < ?2 GROUP BY {column}, t ORDER BY {column}, t"
    );
    let mut stmt = c.prepare_cached(&sql)?;
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

fn stats_blocking(c: &Connection, q: &StatsQuery) -> Result<Stats, StoreError> {
    let (since, until, top) = (q.since_ms, q.until_ms, q.top.min(MAX_TOP));
    let events_total: i64 = c
        .prepare_cached("SELECT COUNT(*) FROM events WHERE time_ms >= ?1 AND time_ms < ?2")?
        .query_row(params![since, until], |r| r.get(0))?;
    let mut total = Vec::new();
    {
        let mut stmt = c.prepare_cached(
            "SELECT ((time_ms - ?1) / ?3) * ?3 + ?1 AS t, COUNT(*) FROM events \
             WHERE time_ms >= ?1 AND time_ms < ?2 GROUP BY t ORDER BY t",
        )?;
        let mut rows = stmt.query(params![since, until, q.bucket_ms])?;
        while let Some(r) = rows.next()? {
            total.push((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?.max(0) as u64));
        }
    }
    let top_of = |column: &str, extra: &str| {
        format!(
            "SELECT {column} AS k, COUNT(*) AS n FROM events \
             WHERE time_ms >= ?1 AND time_ms < ?2 AND {column} IS NOT NULL {extra} \
             GROUP BY k ORDER BY n DESC, k LIMIT ?3"
        )
    };
    let by_kind = key_counts(c, &top_of("kind", ""), since, until, MAX_TOP)?;
    // A source counts once per connection, not once per event of it.
    let top_sources = key_counts(
        c,
        &top_of("src_ip", "AND kind = 'connect'"),
        since,
        until,
        top,
    )?;
    let top_services = key_counts(c, &top_of("service", ""), since, until, top)?;
    let top_nodes = key_counts(c, &top_of("node", ""), since, until, top)?;
    let top_commands = key_counts(
        c,
        &top_of("hb_command(body)", "AND kind = 'command'"),
        since,
        until,
        top,
    )?;
    let mut top_credentials = Vec::new();
    {
        let mut stmt = c.prepare_cached(
            "SELECT username, hb_password(body) AS p, COUNT(*) AS n FROM events \
             WHERE time_ms >= ?1 AND time_ms < ?2 AND kind = 'auth_attempt' \
             GROUP BY username, p HAVING p IS NOT NULL ORDER BY n DESC, username, p LIMIT ?3",
        )?;
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
        // One row per enriched event (several modules may enrich one event), then per
        // country.
        let mut stmt = c.prepare_cached(
            "SELECT country, AVG(lat), AVG(lon), COUNT(*) AS n FROM ( \
               SELECT MAX(json_extract(en.data, '$.\"source.geo.country_iso_code\"')) AS country, \
                      MAX(json_extract(en.data, '$.\"source.geo.location.lat\"')) AS lat, \
                      MAX(json_extract(en.data, '$.\"source.geo.location.lon\"')) AS lon \
               FROM events e JOIN enrichments en ON en.node = e.node AND en.seq = e.seq \
               WHERE e.time_ms >= ?1 AND e.time_ms < ?2 AND en.kind = 'enrich' \
                 AND json_valid(en.data) \
               GROUP BY e.node, e.seq) \
             WHERE country IS NOT NULL GROUP BY country ORDER BY n DESC, country",
        )?;
        let mut rows = stmt.query(params![since, until])?;
        while let Some(r) = rows.next()? {
            let country: Value = r.get(0)?;
            let country = match country {
                Value::Text(s) => s,
                Value::Integer(i) => i.to_string(),
                _ => continue,
            };
            geo.push(GeoCount {
                country,
                lat: r.get(1)?,
                lon: r.get(2)?,
                count: r.get::<_, i64>(3)?.max(0) as u64,
            });
        }
    }
    Ok(Stats {
        events_total: events_total.max(0) as u64,
        total,
        by_service: series(c, "service", q)?,
        by_node: series(c, "node", q)?,
        by_kind,
        top_sources,
        top_services,
        top_nodes,
        top_credentials,
        top_commands,
        geo,
    })
}

impl SqliteStore {
    /// Newest first (time, node, seq descending), `limit` events (see [`effective_limit`])
    /// after `q.before`.
    pub async fn search_events(&self, q: &EventSearch) -> Result<Vec<StoredEvent>, StoreError> {
        let (clause, mut args) = where_clause(q)?;
        let sql = format!(
            "SELECT node, received_ms, body, id FROM events{clause} \
             ORDER BY time_ms DESC, node DESC, seq DESC LIMIT ?"
        );
        args.push(Value::Integer(effective_limit(q.limit).into()));
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(args))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                super::sqlite::push_stored_event(&mut out, row)?;
            }
            Ok(out)
        })
        .await
    }

    /// Where the page that ended with `last` continues.
    pub fn cursor_after(last: &StoredEvent) -> EventCursor {
        EventCursor {
            time_ms: last.event.time_ms,
            node: last.node.clone(),
            seq: last.event.seq,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use honeybee_proto::SessionId;
    use honeybee_proto::event::{AuthAttempt, AuthMethod};

    fn ev(seq: u64, time_ms: i64, service: &str, src: &str, kind: EventKind) -> Event {
        Event {
            seq,
            time_ms,
            service: service.into(),
            session: Some(SessionId([seq as u8 % 3; 8])),
            src: Some(src.parse().unwrap()),
            dst: None,
            kind,
        }
    }

    fn auth(user: &str, pass: &str) -> EventKind {
        EventKind::AuthAttempt(AuthAttempt {
            method: AuthMethod::Password,
            username: user.into(),
            password: Some(pass.into()),
            key_fingerprint: None,
            key_algorithm: None,
            client_version: None,
            success: false,
        })
    }

    async fn fixture() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("honeybee.db")).unwrap();
        let a = NodeId::new("a").unwrap();
        let b = NodeId::new("b").unwrap();
        let mut evs = Vec::new();
        for i in 0..30u64 {
            let t = 60_000 * (i as i64 / 10) + i as i64;
            let kind = match i % 3 {
                0 => EventKind::Connect,
                1 => auth("root", if i % 2 == 0 { "123456" } else { "toor" }),
                _ => EventKind::Command {
                    line: format!("uname -{}", if i < 20 { "a" } else { "r" }),
                },
            };
            evs.push(ev(i + 1, t, "ssh", "203.0.113.7:4000", kind));
        }
        s.insert_events(&a, 1, evs).await.unwrap();
        s.insert_events(
            &b,
            1,
            vec![
                ev(1, 5, "banner", "198.51.100.9:1", EventKind::Connect),
                ev(2, 6, "banner", "198.51.100.9:1", auth("Admin", "Secret")),
            ],
        )
        .await
        .unwrap();
        (dir, s)
    }

    #[tokio::test]
    async fn pages_cover_every_event_once() {
        let (_d, s) = fixture().await;
        let mut seen = Vec::new();
        let mut q = EventSearch {
            limit: 7,
            ..Default::default()
        };
        loop {
            let page = s.search_events(&q).await.unwrap();
            seen.extend(
                page.iter()
                    .map(|e| (e.event.time_ms, e.node.clone(), e.event.seq)),
            );
            if page.len() < 7 {
                break;
            }
            q.before = Some(SqliteStore::cursor_after(page.last().unwrap()));
        }
        assert_eq!(seen.len(), 32);
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.reverse();
        assert_eq!(seen, sorted, "newest first, no repeats");
    }

    #[tokio::test]
    async fn filters_combine() {
        let (_d, s) = fixture().await;
        let search = |q: EventSearch| {
            let s = s.clone();
            async move { s.search_events(&q).await.unwrap() }
        };
        let r = search(EventSearch {
            text: Some("SECRET".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].node.as_str(), "b");
        let r = search(EventSearch {
            text: Some("uname -r".into()),
            ..Default::default()
        })
        .await;
        assert!(
            r.iter().all(
                |e| matches!(&e.event.kind, EventKind::Command { line } if line == "uname -r")
            )
        );
        assert_eq!(r.len(), 4);
        let r = search(EventSearch {
            src: Some("198.51.".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(r.len(), 2);
        let r = search(EventSearch {
            src: Some("203.0.113.7".into()),
            kind: Some("connect".into()),
            since_ms: Some(60_000),
            until_ms: Some(120_000),
            ..Default::default()
        })
        .await;
        assert_eq!(
            r.iter().map(|e| e.event.seq).collect::<Vec<_>>(),
            vec![19, 16, 13]
        );
        let r = search(EventSearch {
            session: Some(SessionId([1; 8])),
            node: Some(NodeId::new("a").unwrap()),
            ..Default::default()
        })
        .await;
        assert!(!r.is_empty() && r.iter().all(|e| e.event.session == Some(SessionId([1; 8]))));
        assert!(
            s.search_events(&EventSearch {
                kind: Some("bogus".into()),
                ..Default::default()
            })
            .await
            .is_err()
        );
        let one = s
            .get_event(&NodeId::new("b").unwrap(), 2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(one.event.seq, 2);
        assert!(
            s.get_event(&NodeId::new("b").unwrap(), 9)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn stats_count_in_sql() {
        let (_d, s) = fixture().await;
        let st = s
            .stats(&StatsQuery {
                since_ms: 0,
                until_ms: 180_000,
                bucket_ms: 60_000,
                top: 5,
            })
            .await
            .unwrap();
        assert_eq!(st.events_total, 32);
        assert_eq!(st.total, vec![(0, 12), (60_000, 10), (120_000, 10)]);
        let ssh = st.by_service.iter().find(|s| s.key == "ssh").unwrap();
        assert_eq!(ssh.points, vec![(0, 10), (60_000, 10), (120_000, 10)]);
        assert_eq!(st.by_node.len(), 2);
        assert_eq!(st.top_services[0].key, "ssh");
        assert_eq!(st.top_sources[0].key, "203.0.113.7");
        assert_eq!(st.top_sources[0].count, 10);
        let creds: u64 = st.top_credentials.iter().map(|c| c.count).sum();
        assert_eq!(creds, 11);
        assert!(
            st.top_credentials
                .iter()
                .any(|c| c.username == "Admin" && c.password == "Secret" && c.count == 1)
        );
        assert_eq!(st.top_commands[0].key, "uname -a");
        assert_eq!(st.top_commands[0].count, 6);
        assert!(st.geo.is_empty());
        assert!(
            s.stats(&StatsQuery {
                since_ms: 0,
                until_ms: 1_000_000_000,
                bucket_ms: 1,
                top: 5,
            })
            .await
            .is_err()
        );
    }
}
