//! Store queries for the dashboard's operator console that the analytics module does not
//! answer: how many events match a search (a total above a page of results), and the top
//! command lines of chosen services (the shell services, so FTP verbs and Redis commands
//! do not crowd out what attackers typed).

use super::analytics::{Arg, Dialect, where_clause};
use super::{MAX_TOP, SqliteStore, StoreError};
use honeybee_proto::admin::{EventSearch, KeyCount, MAX_EVENT_COUNT};
use rusqlite::params_from_iter;
use rusqlite::types::Value;

/// Most service names one top-commands query may name.
pub const MAX_SERVICES: usize = 64;

/// How many events match a search, as SQL and arguments: `before` and `limit` of the
/// search are ignored (the total is of every page), and the count stops one past
/// [`MAX_EVENT_COUNT`].
pub(crate) fn count_matching_sql(
    q: &EventSearch,
    dialect: Dialect,
) -> Result<(String, Vec<Arg>), StoreError> {
    let q = EventSearch {
        before: None,
        ..q.clone()
    };
    let (clause, mut args) = where_clause(&q, dialect)?;
    // The inner LIMIT bounds the work of a filter the indexes cannot serve (text).
    let sql = format!("SELECT COUNT(*) FROM (SELECT 1 FROM events{clause} LIMIT ?) AS m");
    args.push(Arg::Int(MAX_EVENT_COUNT as i64 + 1));
    Ok((sql, args))
}

/// (count, whether it stopped at the cap) from what [`count_matching_sql`] counted.
pub(crate) fn capped_count(n: i64) -> (u64, bool) {
    let n = n.max(0) as u64;
    (n.min(MAX_EVENT_COUNT), n > MAX_EVENT_COUNT)
}

/// The top command lines of some services, as SQL and arguments.
pub(crate) fn top_commands_sql(
    since_ms: i64,
    until_ms: i64,
    services: &[String],
    top: u32,
) -> Result<(String, Vec<Arg>), StoreError> {
    if services.len() > MAX_SERVICES {
        return Err(StoreError::InvalidQuery(format!(
            "at most {MAX_SERVICES} services per query"
        )));
    }
    let mut args = vec![Arg::Int(since_ms), Arg::Int(until_ms)];
    let mut sql = String::from(
        "SELECT command AS k, COUNT(*) AS n FROM events \
         WHERE time_ms >= ? AND time_ms < ? AND kind = 'command' AND command IS NOT NULL",
    );
    if !services.is_empty() {
        sql.push_str(" AND service IN (");
        sql.push_str(&vec!["?"; services.len()].join(","));
        sql.push(')');
        args.extend(services.iter().map(|s| Arg::Text(s.clone())));
    }
    sql.push_str(" GROUP BY command ORDER BY n DESC, k LIMIT ?");
    args.push(Arg::Int(i64::from(top.min(MAX_TOP))));
    Ok((sql, args))
}

impl SqliteStore {
    /// (matching events, counted up to [`MAX_EVENT_COUNT`]; whether the count stopped
    /// there). `before` and `limit` of the search are ignored: the total is of every page.
    pub async fn count_matching(&self, q: &EventSearch) -> Result<(u64, bool), StoreError> {
        let (sql, args) = count_matching_sql(q, Dialect::Sqlite)?;
        self.read(move |c| {
            let n: i64 = c
                .prepare_cached(&sql)?
                .query_row(params_from_iter(args.into_iter().map(Value::from)), |r| {
                    r.get(0)
                })?;
            Ok(capped_count(n))
        })
        .await
    }

    /// The `top` most frequent command lines in `[since_ms, until_ms)` from the named
    /// services (every service when `services` is empty).
    pub async fn top_commands(
        &self,
        since_ms: i64,
        until_ms: i64,
        services: &[String],
        top: u32,
    ) -> Result<Vec<KeyCount>, StoreError> {
        let (sql, args) = top_commands_sql(since_ms, until_ms, services, top)?;
        self.read(move |c| {
            let mut stmt = c.prepare(&sql)?;
            let rows =
                stmt.query_map(params_from_iter(args.into_iter().map(Value::from)), |r| {
                    Ok(KeyCount {
                        key: r.get(0)?,
                        count: r.get::<_, i64>(1)?.max(0) as u64,
                    })
                })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }
}
