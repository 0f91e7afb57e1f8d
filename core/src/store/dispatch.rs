//! [`Store`]: the store as one runtime value, whichever backend holds the data. Every
//! method forwards to the backend; the `match` is exhaustive, so a backend that lacks a
//! method, or has it with another signature, does not compile.

use super::{
    CaptureRecord, CertRecord, DeviceActivity, HealthRow, InsertOutcome, ModuleCredential,
    NewAlert, NodeRecord, PgStore, SqliteStore, StoreError, TokenRecord, TokenRefusal,
};
use honeybee_proto::admin::{
    AlertInfo, AuditEntry, EventCursor, EventQuery, EventSearch, KeyCount, Stats, StatsQuery,
    StoredEvent, TokenInfo,
};
use honeybee_proto::config::NodeConfig;
use honeybee_proto::event::Event;
use honeybee_proto::module::Permission;
use honeybee_proto::{NodeId, Role, Serial, TokenId};

/// The core's store. Cheap to clone (every backend is a handle to shared state). All
/// methods are cancellation-safe in the sense that a dropped future never leaves a
/// half-applied write: a write is applied whole or not at all, and answered only after
/// it is committed.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Store {
    /// The embedded default: one file, one writer thread.
    Sqlite(SqliteStore),
    /// A PostgreSQL server (`[store] url`).
    Postgres(PgStore),
}

impl From<PgStore> for Store {
    fn from(s: PgStore) -> Store {
        Store::Postgres(s)
    }
}

impl From<SqliteStore> for Store {
    fn from(s: SqliteStore) -> Store {
        Store::Sqlite(s)
    }
}

/// Calls the same method on whichever backend `$s` is.
macro_rules! on_backend {
    ($s:expr, $b:ident => $call:expr) => {
        match $s {
            Store::Sqlite($b) => $call,
            Store::Postgres($b) => $call,
        }
    };
}

impl Store {
    /// Opens the store `[store]` names: the SQLite file at `sqlite_path`, or the
    /// PostgreSQL database at its URL (password from the environment or the password
    /// file). Fails with a clear error when the server is unreachable, refuses the
    /// credentials, or has a schema newer than this binary.
    pub async fn open(
        cfg: &crate::config::StoreConfig,
        sqlite_path: &std::path::Path,
    ) -> Result<Store, StoreError> {
        use crate::config::StoreConfig;
        match cfg {
            StoreConfig::Sqlite => Ok(Store::Sqlite(SqliteStore::open(sqlite_path)?)),
            StoreConfig::Postgres { url, .. } => {
                let password = cfg.password().map_err(|why| StoreError::Open {
                    location: "store.password_file".into(),
                    source: why.into(),
                })?;
                Ok(Store::Postgres(
                    PgStore::open(url, password.as_deref()).await?,
                ))
            }
        }
    }

    /// Which backend this is, for logs and errors.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Where the next page of a search continues after the page that ended with `last`.
    pub fn cursor_after(last: &StoredEvent) -> EventCursor {
        EventCursor {
            time_ms: last.event.time_ms,
            node: last.node.clone(),
            seq: last.event.seq,
        }
    }

    /// Flushes queued writes and stops the store; later writes fail with
    /// [`StoreError::Closed`].
    pub async fn close(&self) -> Result<(), StoreError> {
        on_backend!(self, b => b.close().await)
    }

    // ---------------------------------------------------------------- events

    /// Stores events from `node`, skipping any (node, seq) already stored; answers after
    /// the commit.
    pub async fn insert_events(
        &self,
        node: &NodeId,
        received_ms: i64,
        events: Vec<Event>,
    ) -> Result<InsertOutcome, StoreError> {
        on_backend!(self, b => b.insert_events(node, received_ms, events).await)
    }
    /// Retention: deletes events observed before `before_ms` (and their enrichments), at
    /// most `batch` per transaction so ingest is never held up for long; returns how many
    /// went.
    pub async fn prune_events(&self, before_ms: i64, batch: u32) -> Result<u64, StoreError> {
        on_backend!(self, b => b.prune_events(before_ms, batch).await)
    }
    /// The highest seq stored for `node`, 0 if none: an agent that lost its spool
    /// continues above it.
    pub async fn max_seq(&self, node: &NodeId) -> Result<u64, StoreError> {
        on_backend!(self, b => b.max_seq(node).await)
    }
    /// Newest first (by observation time); see [`super::effective_limit`].
    pub async fn query_events(&self, q: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        on_backend!(self, b => b.query_events(q).await)
    }
    /// Events stored after row id `after_id`, oldest first (store order), at most `limit`,
    /// each with its row id; and the newest row id stored now (0 if none).
    pub async fn events_after(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<(Vec<(i64, StoredEvent)>, i64), StoreError> {
        on_backend!(self, b => b.events_after(after_id, limit).await)
    }
    pub async fn count_events(&self, node: Option<&NodeId>) -> Result<u64, StoreError> {
        on_backend!(self, b => b.count_events(node).await)
    }
    /// The store's size in bytes (SQLite: database and write-ahead log on disk;
    /// PostgreSQL: `pg_database_size` of its database).
    pub async fn size_bytes(&self) -> Result<u64, StoreError> {
        on_backend!(self, b => b.size_bytes().await)
    }
    /// Newest first (time, node, seq descending), one page after `q.before`.
    pub async fn search_events(&self, q: &EventSearch) -> Result<Vec<StoredEvent>, StoreError> {
        on_backend!(self, b => b.search_events(q).await)
    }
    /// (matching events up to `MAX_EVENT_COUNT`, whether the count stopped there).
    pub async fn count_matching(&self, q: &EventSearch) -> Result<(u64, bool), StoreError> {
        on_backend!(self, b => b.count_matching(q).await)
    }
    pub async fn get_event(
        &self,
        node: &NodeId,
        seq: u64,
    ) -> Result<Option<StoredEvent>, StoreError> {
        on_backend!(self, b => b.get_event(node, seq).await)
    }
    /// Counts over a time range: totals, series per service and node, top-N lists.
    pub async fn stats(&self, q: &StatsQuery) -> Result<Stats, StoreError> {
        on_backend!(self, b => b.stats(q).await)
    }
    /// The `top` most frequent command lines of the named services (all when empty).
    pub async fn top_commands(
        &self,
        since_ms: i64,
        until_ms: i64,
        services: &[String],
        top: u32,
    ) -> Result<Vec<KeyCount>, StoreError> {
        on_backend!(self, b => b.top_commands(since_ms, until_ms, services, top).await)
    }

    // ---------------------------------------------------------------- nodes

    /// Inserts the node or replaces every field — except that a node on the revocation
    /// denylist stays revoked.
    pub async fn upsert_node(&self, rec: NodeRecord) -> Result<(), StoreError> {
        on_backend!(self, b => b.upsert_node(rec).await)
    }
    pub async fn get_node(&self, id: &NodeId) -> Result<Option<NodeRecord>, StoreError> {
        on_backend!(self, b => b.get_node(id).await)
    }
    pub async fn list_nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        on_backend!(self, b => b.list_nodes().await)
    }
    /// Sets online state and last-seen time; `addr: None` keeps the last known address.
    /// Returns whether the node exists.
    pub async fn set_node_online(
        &self,
        id: &NodeId,
        online: bool,
        addr: Option<String>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        on_backend!(self, b => b.set_node_online(id, online, addr, now_ms).await)
    }
    /// Sets the relay a node is assigned to (`None`: none). False if there is no such node.
    pub async fn set_node_relay(
        &self,
        id: &NodeId,
        relay: Option<&NodeId>,
    ) -> Result<bool, StoreError> {
        on_backend!(self, b => b.set_node_relay(id, relay).await)
    }
    /// Writes many nodes' latest health reports in one transaction; `last_seen_ms` is
    /// raised to each row's time, never lowered. Rows of unknown nodes are skipped.
    /// Returns how many nodes were updated.
    pub async fn set_nodes_health(&self, rows: Vec<HealthRow>) -> Result<usize, StoreError> {
        on_backend!(self, b => b.set_nodes_health(rows).await)
    }
    /// Agent time of the node's newest stored event.
    pub async fn last_event_ms(&self, id: &NodeId) -> Result<Option<i64>, StoreError> {
        on_backend!(self, b => b.last_event_ms(id).await)
    }
    /// Per (node, aggregator service, device address): the newest `device_log` /
    /// `device_trap` event's time and how many there are (`honeybee nodes`' devices).
    pub async fn device_activity(&self) -> Result<Vec<DeviceActivity>, StoreError> {
        on_backend!(self, b => b.device_activity().await)
    }
    pub async fn set_node_config(
        &self,
        id: &NodeId,
        config: &NodeConfig,
    ) -> Result<bool, StoreError> {
        on_backend!(self, b => b.set_node_config(id, config).await)
    }
    /// Marks every node offline (at core start); returns how many were online.
    pub async fn mark_all_offline(&self) -> Result<u64, StoreError> {
        on_backend!(self, b => b.mark_all_offline().await)
    }

    // ---------------------------------------------------------------- certificates

    pub async fn record_cert(
        &self,
        serial: Serial,
        node: &NodeId,
        role: Role,
        issued_ms: i64,
        not_after_ms: i64,
    ) -> Result<(), StoreError> {
        on_backend!(self, b => b.record_cert(serial, node, role, issued_ms, not_after_ms).await)
    }
    /// Records a renewal: `old` is superseded by `new`, and the node's current serial and
    /// expiry move to `new`, in one transaction.
    pub async fn supersede_cert(
        &self,
        node: &NodeId,
        old: Serial,
        new: Serial,
        new_not_after_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        on_backend!(self, b => b.supersede_cert(node, old, new, new_not_after_ms, now_ms).await)
    }
    pub async fn cert(&self, serial: Serial) -> Result<Option<CertRecord>, StoreError> {
        on_backend!(self, b => b.cert(serial).await)
    }

    // ---------------------------------------------------------------- revocation

    /// Puts the node on the denylist, marks it revoked and offline, and revokes every
    /// certificate it was issued; returns those serials.
    pub async fn revoke_node(&self, id: &NodeId, now_ms: i64) -> Result<Vec<Serial>, StoreError> {
        on_backend!(self, b => b.revoke_node(id, now_ms).await)
    }
    /// The whole denylist: revoked serials and revoked node ids.
    pub async fn revoked(&self) -> Result<(Vec<Serial>, Vec<NodeId>), StoreError> {
        on_backend!(self, b => b.revoked().await)
    }

    // ---------------------------------------------------------------- tokens

    pub async fn create_token(&self, rec: TokenRecord) -> Result<(), StoreError> {
        on_backend!(self, b => b.create_token(rec).await)
    }
    /// Atomically checks and uses one use of a token. Of concurrent consumers of the last
    /// use, exactly one gets `Ok(Ok(_))`.
    pub async fn consume_token(
        &self,
        id: TokenId,
        presented_secret_hash: [u8; 32],
        now_ms: i64,
    ) -> Result<Result<TokenRecord, TokenRefusal>, StoreError> {
        on_backend!(self, b => b.consume_token(id, presented_secret_hash, now_ms).await)
    }
    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        on_backend!(self, b => b.list_tokens().await)
    }
    /// Returns whether the token exists.
    pub async fn revoke_token(&self, id: TokenId) -> Result<bool, StoreError> {
        on_backend!(self, b => b.revoke_token(id).await)
    }

    // ---------------------------------------------------------------- audit

    pub async fn audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        on_backend!(self, b => b.audit(entry).await)
    }
    /// Queues an audit entry without waiting for its commit; a failure is logged. Never
    /// blocks, so it may be called from synchronous code and from `Drop`.
    pub fn audit_nowait(&self, entry: AuditEntry) {
        on_backend!(self, b => b.audit_nowait(entry))
    }
    /// Newest first.
    pub async fn list_audit(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        on_backend!(self, b => b.list_audit(limit).await)
    }
    /// Retention: deletes rows older than `before_ms`, then the oldest rows past the
    /// newest `max_rows`; returns how many went.
    pub async fn prune_audit(&self, max_rows: u64, before_ms: i64) -> Result<u64, StoreError> {
        on_backend!(self, b => b.prune_audit(max_rows, before_ms).await)
    }
    pub async fn count_audit(&self) -> Result<u64, StoreError> {
        on_backend!(self, b => b.count_audit().await)
    }

    // ---------------------------------------------------------------- captures

    /// Records a sighting of a capture; true if its content was not stored before. The
    /// service name comes from the node's capture header: a NUL in it is stored as U+2400
    /// on every backend (PostgreSQL's `text` refuses NUL, and the capture with it).
    pub async fn insert_capture(&self, mut rec: CaptureRecord) -> Result<bool, StoreError> {
        rec.service = super::codec::text_col(rec.service);
        on_backend!(self, b => b.insert_capture(rec).await)
    }
    /// Newest first (by first sighting).
    pub async fn list_captures(&self, limit: u32) -> Result<Vec<CaptureRecord>, StoreError> {
        on_backend!(self, b => b.list_captures(limit).await)
    }
    pub async fn get_capture(&self, sha256: [u8; 32]) -> Result<Option<CaptureRecord>, StoreError> {
        on_backend!(self, b => b.get_capture(sha256).await)
    }
    /// Every sighting of one capture, oldest first.
    pub async fn capture_sightings(
        &self,
        sha256: [u8; 32],
    ) -> Result<Vec<CaptureRecord>, StoreError> {
        on_backend!(self, b => b.capture_sightings(sha256).await)
    }

    // ---------------------------------------------------------------- modules

    pub async fn create_module_credential(&self, c: ModuleCredential) -> Result<(), StoreError> {
        on_backend!(self, b => b.create_module_credential(c).await)
    }
    pub async fn module_credential(
        &self,
        id: TokenId,
    ) -> Result<Option<ModuleCredential>, StoreError> {
        on_backend!(self, b => b.module_credential(id).await)
    }
    /// The permissions of module `name`: those of its newest unrevoked credential.
    pub async fn module_permissions(
        &self,
        name: &str,
    ) -> Result<Option<Vec<Permission>>, StoreError> {
        on_backend!(self, b => b.module_permissions(name).await)
    }
    /// Revokes every credential issued to module `name`; returns how many.
    pub async fn revoke_module_credentials(&self, name: &str) -> Result<u64, StoreError> {
        on_backend!(self, b => b.revoke_module_credentials(name).await)
    }
    pub async fn insert_alert(&self, a: NewAlert) -> Result<i64, StoreError> {
        on_backend!(self, b => b.insert_alert(a).await)
    }
    /// (all alerts, those not acknowledged).
    pub async fn count_alerts(&self) -> Result<(u64, u64), StoreError> {
        on_backend!(self, b => b.count_alerts().await)
    }
    /// Newest first.
    pub async fn list_alerts(&self, limit: u32) -> Result<Vec<AlertInfo>, StoreError> {
        on_backend!(self, b => b.list_alerts(limit).await)
    }
    pub async fn ack_alert(&self, id: i64, by: &str, now_ms: i64) -> Result<bool, StoreError> {
        on_backend!(self, b => b.ack_alert(id, by, now_ms).await)
    }
    /// Attaches data to a stored event. Returns false if no such event exists.
    pub async fn insert_enrichment(
        &self,
        node: &NodeId,
        seq: u64,
        module: &str,
        kind: &str,
        data_json: String,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        on_backend!(self, b => b.insert_enrichment(node, seq, module, kind, data_json, now_ms).await)
    }
    /// Fills in the enrichments of each event.
    pub async fn attach_enrichments(
        &self,
        events: Vec<StoredEvent>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        on_backend!(self, b => b.attach_enrichments(events).await)
    }
}
