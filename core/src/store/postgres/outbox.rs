//! The events table read as an outbox: the reads of the module bus across cores
//! (`cluster/tail.rs`).
//!
//! Reading by id is exact because ids follow commit order: every writer of `events`
//! holds the events lock from before its ids are taken until it commits
//! (`event_writer.rs`), so once id N is visible every lower id is visible or will never
//! exist (rolled back, or deleted by retention). No row can appear behind a cursor.

use super::PgStore;
use crate::store::StoreError;
use crate::store::codec::{labels_from_json, stored_event};
use honeybee_proto::admin::StoredEvent;

/// One event another core stored, with its row id and its node's labels (what module
/// filters match on; none for the pseudo-node `core`, which has no `nodes` row).
#[derive(Debug)]
pub struct OutboxRow {
    pub id: i64,
    pub event: StoredEvent,
    pub labels: Vec<(String, String)>,
}

/// Rows of other origins after the cursor, up to a top read before, in id order. A
/// row with no origin (stored before schema version 4, or by `honeybee store migrate`)
/// is another core's: it is not this core's own ingest.
const AFTER_SQL: &str = "SELECT e.id, e.node, e.received_ms, e.body, n.labels \
     FROM events e LEFT JOIN nodes n ON n.id = e.node \
     WHERE e.id > $1 AND e.id <= $2 \
       AND e.origin IS DISTINCT FROM CAST($3::text AS uuid) \
     ORDER BY e.id LIMIT $4";

impl PgStore {
    /// The highest event id stored (0 for none): everything up to it is committed.
    pub async fn events_top(&self) -> Result<i64, StoreError> {
        let c = self.raw_client().await?;
        Ok(c.query_one("SELECT COALESCE(MAX(id), 0) FROM events", &[])
            .await?
            .try_get(0)?)
    }

    /// At most `limit` events with `after < id <= upto` that a core other than `me` (32
    /// hex digits) stored, in id order.
    pub async fn events_from_others(
        &self,
        me: &str,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let c = self.raw_client().await?;
        let stmt = c.prepare_cached(AFTER_SQL).await?;
        let rows = c.query(&stmt, &[&after, &upto, &me, &limit]).await?;
        rows.iter()
            .map(|r| {
                let id: i64 = r.try_get(0)?;
                let body: &[u8] = r.try_get(3)?;
                let event = stored_event(r.try_get(1)?, r.try_get(2)?, body, id)?;
                let labels = match r.try_get::<_, Option<&str>>(4)? {
                    Some(l) => labels_from_json("node", event.node.as_str(), l)?,
                    None => Vec::new(),
                };
                Ok(OutboxRow { id, event, labels })
            })
            .collect()
    }
}
