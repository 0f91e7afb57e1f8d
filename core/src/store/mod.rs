//! The core's persistent store: events, nodes, certificates, the revocation denylist,
//! enrolment tokens, the audit log and capture metadata.
//!
//! [`Store`] is the interface the rest of the core uses, so that a PostgreSQL backend can
//! serve deployments that outgrow one machine; [`SqliteStore`] is the embedded default.
//!
//! Every write is acknowledged only after the transaction that carries it has committed,
//! so "acked" means durable (within SQLite's `synchronous=NORMAL` guarantees in WAL mode:
//! a committed transaction survives a process crash; a power cut may lose the last few).

mod analytics;
mod console;
mod modules;
mod sqlite;
#[cfg(test)]
mod tests;

use honeybee_proto::admin::{
    AuditEntry, EventQuery, EventSearch, NodeInfo, Stats, StatsQuery, StoredEvent, TokenInfo,
};
use honeybee_proto::config::NodeConfig;
use honeybee_proto::control::Health;
use honeybee_proto::event::Event;
use honeybee_proto::{NodeId, Role, Serial, SessionId, TokenId};
use std::future::Future;
use std::path::PathBuf;

pub use analytics::{MAX_BUCKETS, MAX_TOP, searchable_text};
pub use modules::{ModuleCredential, NewAlert};
pub use sqlite::SqliteStore;

/// Most rows one query returns, whatever the caller asks for.
pub const MAX_QUERY_LIMIT: u32 = 10_000;
/// Rows returned when a query says `limit: 0`.
pub const DEFAULT_QUERY_LIMIT: u32 = 100;

/// The limit a query actually uses: 0 means [`DEFAULT_QUERY_LIMIT`], and nothing goes over
/// [`MAX_QUERY_LIMIT`].
pub fn effective_limit(limit: u32) -> u32 {
    match limit {
        0 => DEFAULT_QUERY_LIMIT,
        n => n.min(MAX_QUERY_LIMIT),
    }
}

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("cannot open database at {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "database at {path} is locked by another process (is another core running on this data directory?)"
    )]
    Locked { path: PathBuf },
    #[error(
        "schema version {found} of database at {path} is newer than this binary supports ({supported}); run a newer honeybee"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot encode {what} for storage: {why}")]
    Encode { what: &'static str, why: String },
    /// A stored row could not be read back (a bad blob, an id that no longer parses).
    #[error("stored {what} {key} is unreadable: {why}")]
    Corrupt {
        what: &'static str,
        key: String,
        why: String,
    },
    /// SQLite integers are signed; no honest agent gets anywhere near this.
    #[error("event seq {0} is out of range (at most 2^63 - 1)")]
    SeqOutOfRange(u64),
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    #[error("unknown certificate {serial} for node {node}")]
    UnknownCert { serial: Serial, node: NodeId },
    /// The transaction that carried this write did not commit; the write did not happen.
    #[error("write batch failed to commit: {0}")]
    BatchFailed(String),
    #[error("the store is closed")]
    Closed,
    #[error("store worker failed: {0}")]
    Worker(String),
}

/// What [`Store::insert_events`] did with a batch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InsertOutcome {
    pub inserted: u64,
    /// Events whose (node, seq) was already stored; an agent resending after a lost ack.
    pub duplicates: u64,
    /// Sequence numbers stored by this call, in batch order: what the event bus publishes,
    /// so subscribers never see a resent duplicate.
    pub new_seqs: Vec<u64>,
    /// The store's row id of each event in `new_seqs` (same order): the order events were
    /// stored in, which live readers use to resume after a reconnect (`events_after`).
    pub new_ids: Vec<i64>,
}

/// A node as the registry knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRecord {
    pub id: NodeId,
    pub name: String,
    pub role: Role,
    pub labels: Vec<(String, String)>,
    /// Serial of the node's current certificate.
    pub serial: Serial,
    pub cert_not_after_ms: i64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub addr: Option<String>,
    pub online: bool,
    pub revoked: bool,
    pub health: Option<Health>,
    pub config: NodeConfig,
    /// The relay this node is assigned to: the only relay allowed to carry its connection
    /// (a token's `relay` label, or `honeybee node assign-relay`).
    pub via_relay: Option<NodeId>,
}

impl NodeRecord {
    /// The admin API's view of this node.
    pub fn to_info(&self) -> NodeInfo {
        NodeInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            role: self.role,
            labels: self.labels.clone(),
            serial: self.serial,
            cert_not_after_ms: self.cert_not_after_ms,
            first_seen_ms: self.first_seen_ms,
            last_seen_ms: self.last_seen_ms,
            addr: self.addr.clone(),
            online: self.online,
            revoked: self.revoked,
            health: self.health.clone(),
            mode: None,
            via: None,
            relay: self.via_relay.clone(),
        }
    }
}

/// One issued certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRecord {
    pub serial: Serial,
    pub node: NodeId,
    pub role: Role,
    pub issued_ms: i64,
    pub not_after_ms: i64,
    /// The certificate that replaced this one at renewal.
    pub superseded_by: Option<Serial>,
    pub revoked: bool,
}

/// An enrolment token. Only the SHA-256 of its secret is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: TokenId,
    pub secret_hash: [u8; 32],
    pub role: Role,
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub uses_total: u32,
    pub uses_left: u32,
    pub revoked: bool,
}

impl std::fmt::Debug for TokenRecord {
    // The hash is not a secret, but it has no business in logs either.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRecord")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("name", &self.name)
            .field("labels", &self.labels)
            .field("created_ms", &self.created_ms)
            .field("expires_ms", &self.expires_ms)
            .field("uses_total", &self.uses_total)
            .field("uses_left", &self.uses_left)
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

impl TokenRecord {
    /// The admin API's view of this token (no hash).
    pub fn info(&self) -> TokenInfo {
        TokenInfo {
            id: self.id,
            role: self.role,
            name: self.name.clone(),
            labels: self.labels.clone(),
            created_ms: self.created_ms,
            expires_ms: self.expires_ms,
            uses_total: self.uses_total,
            uses_left: self.uses_left,
            revoked: self.revoked,
        }
    }
}

/// Why a token was not accepted. Checked in this order, so a wrong secret never learns
/// whether the token is revoked, expired or used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenRefusal {
    #[error("unknown token")]
    Unknown,
    #[error("wrong token secret")]
    BadSecret,
    #[error("token has been revoked")]
    Revoked,
    #[error("token has expired")]
    Expired,
    #[error("token has already been used")]
    UsedUp,
}

impl TokenRefusal {
    /// Short stable name for audit entries and metrics.
    pub fn name(self) -> &'static str {
        match self {
            TokenRefusal::Unknown => "unknown",
            TokenRefusal::BadSecret => "bad_secret",
            TokenRefusal::Revoked => "revoked",
            TokenRefusal::Expired => "expired",
            TokenRefusal::UsedUp => "used_up",
        }
    }
}

/// A capture's metadata (its content lives in the core's content-addressed directory).
/// As returned by [`Store::get_capture`] and [`Store::list_captures`] the node, service,
/// session, time and meta are those of the first sighting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureRecord {
    pub sha256: [u8; 32],
    pub size: u64,
    pub kind: String,
    pub node: NodeId,
    pub service: String,
    pub session: Option<SessionId>,
    pub time_ms: i64,
    pub meta: Vec<(String, String)>,
}

/// The persistent store. Construction is backend-specific (a file path for SQLite, a URL
/// for a future PostgreSQL backend), so it is not part of the trait. All methods are cancellation-safe in the sense that a dropped
/// future never leaves a half-applied write: a write is applied whole or not at all.
pub trait Store: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// Flushes queued writes and stops the store; later calls fail with
    /// [`StoreError::Closed`].
    fn close(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    // --- events
    /// Stores events from `node`, skipping any (node, seq) already stored.
    fn insert_events(
        &self,
        node: &NodeId,
        received_ms: i64,
        events: Vec<Event>,
    ) -> impl Future<Output = Result<InsertOutcome, StoreError>> + Send;
    /// The highest seq stored for `node`, 0 if none: an agent that lost its spool
    /// continues above it.
    fn max_seq(&self, node: &NodeId) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Newest first (by observation time); see [`effective_limit`].
    fn query_events(
        &self,
        q: &EventQuery,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;
    fn count_events(
        &self,
        node: Option<&NodeId>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Newest first (time, node, seq descending), one page after `q.before`; see
    /// [`effective_limit`].
    fn search_events(
        &self,
        q: &EventSearch,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;
    fn get_event(
        &self,
        node: &NodeId,
        seq: u64,
    ) -> impl Future<Output = Result<Option<StoredEvent>, StoreError>> + Send;
    /// Counts over a time range: totals, series per service and node, top-N lists.
    fn stats(&self, q: &StatsQuery) -> impl Future<Output = Result<Stats, StoreError>> + Send;

    // --- nodes
    /// Inserts the node or replaces every field — except that a node on the revocation
    /// denylist stays revoked.
    fn upsert_node(&self, rec: NodeRecord) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn get_node(
        &self,
        id: &NodeId,
    ) -> impl Future<Output = Result<Option<NodeRecord>, StoreError>> + Send;
    fn list_nodes(&self) -> impl Future<Output = Result<Vec<NodeRecord>, StoreError>> + Send;
    /// Sets online state and last-seen time; `addr: None` keeps the last known address.
    /// Returns whether the node exists.
    fn set_node_online(
        &self,
        id: &NodeId,
        online: bool,
        addr: Option<String>,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Returns whether the node exists.
    fn set_node_health(
        &self,
        id: &NodeId,
        health: &Health,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Returns whether the node exists.
    fn set_node_config(
        &self,
        id: &NodeId,
        config: &NodeConfig,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Marks every node offline (at core start: no connection survives a restart).
    /// Returns how many were online.
    fn mark_all_offline(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    // --- certificates
    fn record_cert(
        &self,
        serial: Serial,
        node: &NodeId,
        role: Role,
        issued_ms: i64,
        not_after_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Records a renewal: `old` is superseded by `new` (recorded here if not already),
    /// and the node's current serial and expiry move to `new`, in one transaction.
    fn supersede_cert(
        &self,
        node: &NodeId,
        old: Serial,
        new: Serial,
        new_not_after_ms: i64,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn cert(
        &self,
        serial: Serial,
    ) -> impl Future<Output = Result<Option<CertRecord>, StoreError>> + Send;

    // --- revocation
    /// Puts the node on the denylist, marks it revoked and offline, and revokes every
    /// certificate it was issued; returns those serials.
    fn revoke_node(
        &self,
        id: &NodeId,
        now_ms: i64,
    ) -> impl Future<Output = Result<Vec<Serial>, StoreError>> + Send;
    /// The whole denylist: revoked serials and revoked node ids.
    fn revoked(
        &self,
    ) -> impl Future<Output = Result<(Vec<Serial>, Vec<NodeId>), StoreError>> + Send;

    // --- tokens
    fn create_token(&self, rec: TokenRecord)
    -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Atomically checks and uses one use of a token. Of concurrent consumers of the last
    /// use, exactly one gets `Ok(Ok(_))`. The returned record has `uses_left` after the use.
    fn consume_token(
        &self,
        id: TokenId,
        presented_secret_hash: [u8; 32],
        now_ms: i64,
    ) -> impl Future<Output = Result<Result<TokenRecord, TokenRefusal>, StoreError>> + Send;
    fn list_tokens(&self) -> impl Future<Output = Result<Vec<TokenInfo>, StoreError>> + Send;
    /// Returns whether the token exists.
    fn revoke_token(&self, id: TokenId) -> impl Future<Output = Result<bool, StoreError>> + Send;

    // --- audit
    fn audit(&self, entry: AuditEntry) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Newest first; see [`effective_limit`].
    fn list_audit(
        &self,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<AuditEntry>, StoreError>> + Send;
    /// Retention: deletes rows older than `before_ms`, then the oldest rows past the
    /// newest `max_rows`; returns how many went.
    fn prune_audit(
        &self,
        max_rows: u64,
        before_ms: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    fn count_audit(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    // --- captures
    /// Records a sighting of a capture; returns true if its content was not stored before.
    fn insert_capture(
        &self,
        rec: CaptureRecord,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Newest first (by first sighting); see [`effective_limit`].
    fn list_captures(
        &self,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<CaptureRecord>, StoreError>> + Send;
    fn get_capture(
        &self,
        sha256: [u8; 32],
    ) -> impl Future<Output = Result<Option<CaptureRecord>, StoreError>> + Send;
    /// Every sighting of one capture, oldest first.
    fn capture_sightings(
        &self,
        sha256: [u8; 32],
    ) -> impl Future<Output = Result<Vec<CaptureRecord>, StoreError>> + Send;
}
