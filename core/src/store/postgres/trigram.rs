//! Trigram indexes for free-text search on PostgreSQL.
//!
//! Free-text search is a substring test on `events.search_text` and `events.node`
//! (`analytics::where_clause`), which a B-tree cannot serve: without another index every
//! free-text total and every rare word's page reads the whole table (2.4–5.2 s at 10
//! million events, BENCHMARKS.md). `pg_trgm`'s GIN indexes serve `LIKE '%…%'`, which
//! is how the PostgreSQL dialect writes the test.
//!
//! `pg_trgm` ships with PostgreSQL (Debian's `postgresql-15`, or `postgresql-contrib` on
//! other distributions) and is a trusted extension, so a database owner may create it.
//! Where it cannot be created (not installed, or the role may not create extensions) the
//! store still opens and searches give the same answers, only by reading every row: a
//! warning at every start says so and how to fix it; the indexes are made at the first
//! start after the extension appears. Refusing to start instead would take a working
//! deployment down over a speed-up.

use crate::store::StoreError;

const INDEXES: &str = "CREATE INDEX IF NOT EXISTS events_search_trgm \
       ON events USING gin (search_text gin_trgm_ops); \
     CREATE INDEX IF NOT EXISTS events_node_trgm ON events USING gin (node gin_trgm_ops)";

/// Makes the extension and the indexes if they are missing. Runs inside the migration
/// transaction (under its advisory lock, so two cores starting at once do not both
/// build them). Building them on a big table takes minutes, once.
pub(super) async fn ensure(
    tx: &deadpool_postgres::Transaction<'_>,
    location: &str,
) -> Result<(), StoreError> {
    let have: bool = tx
        .query_one(
            "SELECT to_regclass('events_search_trgm') IS NOT NULL \
               AND to_regclass('events_node_trgm') IS NOT NULL",
            &[],
        )
        .await?
        .try_get(0)?;
    if have {
        return Ok(());
    }
    // A failed CREATE EXTENSION must not abort the migration's transaction.
    tx.batch_execute("SAVEPOINT hb_trgm").await?;
    if let Err(e) = tx
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        .await
    {
        tx.batch_execute("ROLLBACK TO SAVEPOINT hb_trgm").await?;
        tracing::warn!(
            location,
            error = %e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_owned()),
            "the pg_trgm extension is not available, so free-text search reads every event \
             (same answers, slower on a big store); install it (Debian: part of \
             postgresql-<version>; elsewhere postgresql-contrib) or have a superuser run \
             CREATE EXTENSION pg_trgm in this database, then restart the core"
        );
        return Ok(());
    }
    tracing::info!(
        location,
        "building the trigram indexes for free-text search (once)"
    );
    tx.batch_execute(INDEXES).await?;
    tx.batch_execute("RELEASE SAVEPOINT hb_trgm").await?;
    Ok(())
}
