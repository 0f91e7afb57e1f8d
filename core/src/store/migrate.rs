//! `honeybee store migrate`: copies a SQLite store into an empty PostgreSQL database,
//! table by table, values unchanged (both schemas encode ids as hex text, typed values as
//! postcard, labels as JSON), row ids kept so live readers' positions and alert ids stay
//! valid. The core must be stopped: opening the SQLite store takes its lock.

use super::{PgStore, SqliteStore, StoreError};
use rusqlite::types::Value;
use tokio_postgres::types::ToSql;

/// How a column's SQLite value becomes a PostgreSQL parameter.
#[derive(Clone, Copy)]
enum Col {
    Int,
    Int32,
    Text,
    Blob,
    Bool,
    Float,
}

/// A table: its name, its columns (SQLite expression, PostgreSQL name, kind), and whether
/// it has an identity `id`.
type Table = (
    &'static str,
    &'static [(&'static str, &'static str, Col)],
    bool,
);

/// Every table, its columns (SQLite expression, PostgreSQL name, kind), and whether it has
/// an identity `id` whose sequence must move past the copied ids.
const TABLES: &[Table] = {
    use Col::*;
    &[
        (
            "events",
            &[
                ("id", "id", Int),
                ("node", "node", Text),
                ("seq", "seq", Int),
                ("time_ms", "time_ms", Int),
                ("received_ms", "received_ms", Int),
                ("service", "service", Text),
                ("kind", "kind", Text),
                ("src_ip", "src_ip", Text),
                ("src_port", "src_port", Int32),
                ("session", "session", Text),
                ("username", "username", Text),
                ("password", "password", Text),
                ("command", "command", Text),
                ("search_text", "search_text", Text),
                ("body", "body", Blob),
            ],
            true,
        ),
        (
            "nodes",
            &[
                ("id", "id", Text),
                ("name", "name", Text),
                ("role", "role", Text),
                ("labels", "labels", Text),
                ("serial", "serial", Text),
                ("cert_not_after_ms", "cert_not_after_ms", Int),
                ("first_seen_ms", "first_seen_ms", Int),
                ("last_seen_ms", "last_seen_ms", Int),
                ("addr", "addr", Text),
                ("online", "online", Bool),
                ("revoked", "revoked", Bool),
                ("health", "health", Blob),
                ("config", "config", Blob),
                ("via_relay", "via_relay", Text),
            ],
            false,
        ),
        (
            "certs",
            &[
                ("serial", "serial", Text),
                ("node", "node", Text),
                ("role", "role", Text),
                ("issued_ms", "issued_ms", Int),
                ("not_after_ms", "not_after_ms", Int),
                ("superseded_by", "superseded_by", Text),
                ("revoked", "revoked", Bool),
            ],
            false,
        ),
        (
            "revoked_nodes",
            &[("node", "node", Text), ("revoked_ms", "revoked_ms", Int)],
            false,
        ),
        (
            "tokens",
            &[
                ("id", "id", Text),
                ("secret_hash", "secret_hash", Blob),
                ("role", "role", Text),
                ("name", "name", Text),
                ("labels", "labels", Text),
                ("created_ms", "created_ms", Int),
                ("expires_ms", "expires_ms", Int),
                ("uses_total", "uses_total", Int),
                ("uses_left", "uses_left", Int),
                ("revoked", "revoked", Bool),
            ],
            false,
        ),
        (
            "audit",
            &[
                ("id", "id", Int),
                ("time_ms", "time_ms", Int),
                ("actor", "actor", Text),
                ("action", "action", Text),
                ("outcome", "outcome", Text),
                ("source", "source", Text),
                ("detail", "detail", Text),
            ],
            true,
        ),
        (
            "captures",
            &[
                ("rowid", "id", Int),
                ("sha256", "sha256", Text),
                ("size", "size", Int),
                ("kind", "kind", Text),
                ("node", "node", Text),
                ("service", "service", Text),
                ("session", "session", Text),
                ("time_ms", "time_ms", Int),
                ("meta", "meta", Text),
            ],
            true,
        ),
        (
            "capture_sightings",
            &[
                ("id", "id", Int),
                ("sha256", "sha256", Text),
                ("node", "node", Text),
                ("service", "service", Text),
                ("session", "session", Text),
                ("time_ms", "time_ms", Int),
                ("meta", "meta", Text),
            ],
            true,
        ),
        (
            "module_credentials",
            &[
                ("id", "id", Text),
                ("name", "name", Text),
                ("secret_hash", "secret_hash", Text),
                ("permissions", "permissions", Text),
                ("created_ms", "created_ms", Int),
                ("revoked", "revoked", Bool),
            ],
            false,
        ),
        (
            "alerts",
            &[
                ("id", "id", Int),
                ("time_ms", "time_ms", Int),
                ("module", "module", Text),
                ("severity", "severity", Text),
                ("title", "title", Text),
                ("body", "body", Text),
                ("node", "node", Text),
                ("seq", "seq", Int),
                ("acked_ms", "acked_ms", Int),
                ("acked_by", "acked_by", Text),
            ],
            true,
        ),
        (
            "enrichments",
            &[
                ("id", "id", Int),
                ("node", "node", Text),
                ("seq", "seq", Int),
                ("module", "module", Text),
                ("kind", "kind", Text),
                ("data", "data", Text),
                ("time_ms", "time_ms", Int),
                ("geo_country", "geo_country", Text),
                ("geo_lat", "geo_lat", Float),
                ("geo_lon", "geo_lon", Float),
            ],
            true,
        ),
    ]
};

/// Rows per PostgreSQL transaction.
const CHUNK: usize = 5_000;

fn param(
    table: &str,
    col: &str,
    kind: Col,
    v: Value,
) -> Result<Box<dyn ToSql + Sync + Send>, StoreError> {
    let bad = || StoreError::Corrupt {
        what: "migrated value",
        key: format!("{table}.{col}"),
        why: "unexpected type".into(),
    };
    Ok(match (kind, v) {
        (Col::Int, Value::Null) => Box::new(None::<i64>),
        (Col::Int, Value::Integer(i)) => Box::new(i),
        (Col::Int32, Value::Null) => Box::new(None::<i32>),
        (Col::Int32, Value::Integer(i)) => Box::new(i32::try_from(i).map_err(|_| bad())?),
        (Col::Text, Value::Null) => Box::new(None::<String>),
        // A NUL stored by SQLite before it was mapped at insert: PostgreSQL refuses it.
        (Col::Text, Value::Text(s)) => Box::new(super::codec::text_col(s)),
        (Col::Blob, Value::Null) => Box::new(None::<Vec<u8>>),
        (Col::Blob, Value::Blob(b)) => Box::new(b),
        (Col::Bool, Value::Integer(i)) => Box::new(i != 0),
        (Col::Float, Value::Null) => Box::new(None::<f64>),
        (Col::Float, Value::Real(f)) => Box::new(f),
        (Col::Float, Value::Integer(i)) => Box::new(i as f64),
        _ => return Err(bad()),
    })
}

/// Copies every table of the SQLite store at `sqlite_path` into the PostgreSQL database
/// at `url` (which must hold no events, nodes or tokens yet). Returns rows copied per
/// table.
pub async fn sqlite_to_postgres(
    sqlite_path: &std::path::Path,
    url: &str,
    password: Option<&str>,
) -> Result<Vec<(&'static str, u64)>, StoreError> {
    // Opening takes the lock (no core may be running on it) and brings the schema to the
    // version this binary writes, which is the one the column list names.
    let sqlite = SqliteStore::open(sqlite_path)?;
    let pg = PgStore::open(url, password).await?;
    let mut client = pg.raw_client().await?;
    for t in ["events", "nodes", "tokens", "audit"] {
        let n: i64 = client
            .query_one(&format!("SELECT COUNT(*) FROM {t}"), &[])
            .await?
            .get(0);
        if n > 0 {
            return Err(StoreError::InvalidQuery(format!(
                "the PostgreSQL database at {} already holds {t}; migrate into an empty one",
                pg.location()
            )));
        }
    }
    let mut report = Vec::new();
    for &(table, cols, identity) in TABLES {
        let select = format!(
            "SELECT {} FROM {table} ORDER BY 1",
            cols.iter().map(|c| c.0).collect::<Vec<_>>().join(", ")
        );
        let insert = format!(
            "INSERT INTO {table} ({}) {} VALUES ({})",
            cols.iter().map(|c| c.1).collect::<Vec<_>>().join(", "),
            if identity {
                "OVERRIDING SYSTEM VALUE"
            } else {
                ""
            },
            (1..=cols.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut copied = 0u64;
        let mut offset = 0i64;
        loop {
            let sel = format!("{select} LIMIT {CHUNK} OFFSET {offset}");
            let ncols = cols.len();
            let rows: Vec<Vec<Value>> = sqlite
                .read(move |c| {
                    let mut stmt = c.prepare(&sel)?;
                    let rows =
                        stmt.query_map([], |r| (0..ncols).map(|i| r.get::<_, Value>(i)).collect())?;
                    Ok(rows.collect::<Result<Vec<_>, _>>()?)
                })
                .await?;
            if rows.is_empty() {
                break;
            }
            let n = rows.len();
            let tx = client.transaction().await?;
            let stmt = tx.prepare(&insert).await?;
            for row in rows {
                let params = row
                    .into_iter()
                    .zip(cols)
                    .map(|(v, c)| param(table, c.1, c.2, v))
                    .collect::<Result<Vec<_>, _>>()?;
                tx.execute(&stmt, &super::postgres::arg_refs(&params))
                    .await?;
            }
            tx.commit().await?;
            copied += n as u64;
            offset += n as i64;
            if n < CHUNK {
                break;
            }
        }
        if identity {
            client
                .execute(
                    &format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                         COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                    ),
                    &[],
                )
                .await?;
        }
        report.push((table, copied));
    }
    // The count tables (`rollup`) are derived from `events`: counted here from the rows
    // just copied, in batches, as a store migrated to schema version 6 is.
    client
        .execute(
            "INSERT INTO count_backfill (next_id, end_id) \
             SELECT MIN(id), MAX(id) + 1 FROM events HAVING COUNT(*) > 0",
            &[],
        )
        .await?;
    drop(client);
    pg.backfill_counts().await?;
    pg.close().await?;
    sqlite.close().await?;
    Ok(report)
}
