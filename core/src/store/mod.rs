//! The core's persistent store: events, nodes, certificates, the revocation denylist,
//! enrolment tokens, the audit log and capture metadata.
//!
//! [`Store`] is the interface the rest of the core uses: a runtime value, an enum of the
//! backends, that every caller goes through ([`SqliteStore`] is the embedded default).
//! Why an enum and not `Arc<dyn Trait>`: the set of backends is closed and known to this
//! crate, the interface is ~50 async methods (an object-safe trait would box every
//! future), and an exhaustive `match` in one place makes a method that one backend lacks
//! a compile error rather than a runtime "unsupported".
//!
//! Every write is acknowledged only after the transaction that carries it has committed,
//! so "acked" means durable (within SQLite's `synchronous=NORMAL` guarantees in WAL mode:
//! a committed transaction survives a process crash; a power cut may lose the last few).

mod analytics;
mod codec;
mod console;
mod dispatch;
pub mod migrate;
mod modules;
#[cfg(test)]
pub(crate) mod pg_test_server;
pub(crate) mod postgres;
mod rollup;
mod sqlite;
#[cfg(test)]
mod tests;

use honeybee_proto::admin::{NodeInfo, TokenInfo};
use honeybee_proto::config::NodeConfig;
use honeybee_proto::control::Health;
use honeybee_proto::{NodeId, Role, Serial, SessionId, TokenId};
use std::path::PathBuf;

pub use analytics::{MAX_BUCKETS, MAX_TOP, searchable_text};
pub use modules::{ModuleCredential, NewAlert};
pub use postgres::PgStore;
#[doc(hidden)]
pub use rollup::set_event_counts;
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

/// A backend's own error, boxed so no driver's types leak into [`StoreError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `location` is a file path or a URL without its password.
    #[error("cannot open database at {location}: {source}")]
    Open {
        location: String,
        #[source]
        source: BoxError,
    },
    #[error(
        "database at {path} is locked by another process (is another core running on this data directory?)"
    )]
    Locked { path: PathBuf },
    #[error(
        "schema version {found} of database at {location} is newer than this binary supports ({supported}); run a newer honeybee"
    )]
    SchemaTooNew {
        location: String,
        found: i64,
        supported: i64,
    },
    /// An error of the database engine, whichever backend it is.
    #[error("database error: {0}")]
    Database(#[source] BoxError),
    /// The database server could not be reached (or went away); the core retries and
    /// agents keep their events spooled meanwhile.
    #[error("cannot reach the database server at {location}: {why}")]
    Unreachable { location: String, why: String },
    #[error(
        "the database server at {location} refused the credentials: {why} (check the user in [store] url and the password in HONEYBEE_STORE_PASSWORD or [store] password_file)"
    )]
    AuthFailed { location: String, why: String },
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

/// What the events of one device address on one aggregator service add up to (see
/// [`Store::device_activity`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceActivity {
    pub node: NodeId,
    pub service: String,
    /// The device's address as events store it (`src_ip`).
    pub address: String,
    pub last_ms: i64,
    pub events: u64,
}

/// The SQL of [`Store::device_activity`], the same on every backend: the `events_kind_time`
/// index finds the device events, however many others there are.
pub(crate) const DEVICE_ACTIVITY_SQL: &str = "SELECT node, service, src_ip, MAX(time_ms), \
     COUNT(*) FROM events WHERE kind IN ('device_log', 'device_trap') AND src_ip IS NOT NULL \
     GROUP BY node, service, src_ip";

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
            agent_version: None,
            core: None,
            health_age_ms: None,
        }
    }
}

/// One node's latest health report, written with others in one batch
/// ([`Store::set_nodes_health`]): `nodes.health`, and `last_seen_ms` raised to `time_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthRow {
    pub node: NodeId,
    pub health: Health,
    pub time_ms: i64,
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

pub use dispatch::Store;
