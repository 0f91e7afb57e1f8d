//! The admin API on `honeybee-admin/1`: one bidirectional stream per request.

use crate::config::NodeConfig;
use crate::control::Health;
use crate::event::Event;
use crate::ids::{NodeId, Role, Serial, SessionId, TokenId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AdminRequest {
    Status,
    ListNodes,
    ListEvents(EventQuery),
    RevokeNode {
        node: NodeId,
    },
    GetNodeConfig {
        node: NodeId,
    },
    SetNodeConfig {
        node: NodeId,
        config: NodeConfig,
    },
    SendCommand {
        node: NodeId,
        command: crate::control::Command,
    },
    Audit {
        limit: u32,
    },
    CreateToken(TokenSpec),
    ListTokens,
    RevokeToken {
        id: TokenId,
    },
    ListAlerts {
        limit: u32,
    },
    AckAlert {
        id: i64,
    },
    /// A credential for an externally run module (shim) with these permissions.
    CreateModuleCredential {
        name: String,
        permissions: Vec<String>,
    },
    /// Start a managed module process now (and keep it supervised).
    LoadModule(ModuleSpec),
    /// Stop a managed module (gracefully, then by force) and forget it.
    UnloadModule {
        name: String,
    },
    ListModules,
    /// Sign a CSR for a module that connects over QUIC, granting it these permissions.
    IssueModuleCert {
        name: String,
        permissions: Vec<String>,
        csr_der: Vec<u8>,
    },
    /// The newest captures (one row per distinct content, its first sighting).
    ListCaptures {
        limit: u32,
    },
    /// Up to `max_len` bytes of one capture's content from `offset`; a client fetches a
    /// large capture in several requests (see [`MAX_CAPTURE_CHUNK`]).
    GetCapture {
        sha256: [u8; 32],
        offset: u64,
        max_len: u32,
    },
    /// Allow `node` to reach the core through relay `relay` (`None`: through no relay).
    AssignRelay {
        node: NodeId,
        relay: Option<NodeId>,
    },
    /// Events by any combination of filters, newest first, one page at a time.
    SearchEvents(EventSearch),
    /// One stored event.
    GetEvent {
        node: NodeId,
        seq: u64,
    },
    /// Counts for the dashboard's overview, analytics and reports, aggregated by the store.
    Stats(StatsQuery),
    /// Sign a CSR for the dashboard backend (role `dashboard`); its key never travels.
    IssueDashboardCert {
        name: String,
        csr_der: Vec<u8>,
    },
    /// A request the dashboard makes for one of its signed-in users: audited as both.
    /// Only the dashboard may send it. `request` is another request's postcard encoding
    /// (bytes rather than a nested value, so decoding never recurses); it may not be
    /// `OnBehalf` again.
    OnBehalf {
        user: String,
        request: Vec<u8>,
    },
    /// Each node's health state as the core assesses it (see [`NodeHealthInfo`]).
    NodeHealth,
    /// How many alerts there are, and how many are not acknowledged.
    AlertCounts,
    /// How many stored events match these filters (`before` and `limit` are ignored),
    /// counted up to [`MAX_EVENT_COUNT`].
    CountEvents(EventSearch),
    /// The most frequent command lines in `[since_ms, until_ms)` of the services named
    /// (all services when empty): the dashboard names its shell services (SSH, Telnet),
    /// so FTP verbs and Redis/MySQL commands do not crowd out what attackers typed.
    TopCommands {
        since_ms: i64,
        until_ms: i64,
        services: Vec<String>,
        top: u32,
    },
    /// Run the realism check on `node` now (it must be online); answered with
    /// [`AdminResponse::Realism`] holding the new record.
    CheckRealism {
        node: NodeId,
    },
    /// The latest realism check of `node` the core holds, if any.
    GetRealism {
        node: NodeId,
    },
    /// What the core is doing now: connections, handshake and ingest rates, queues
    /// (`honeybee status`); answered with [`AdminResponse::Load`]. A core from before it
    /// answers an error, and the CLI then shows `Status` alone.
    Load,
    /// Send the agent package of `version` (default: the core's own) from the core's
    /// `packages/` folder to `node`, or to every live node when `None`, over each node's
    /// connection, signed by the CA. `sha256`: refuse unless the package has this hash.
    /// Answered with [`AdminResponse::Upgrades`].
    UpgradeNodes {
        node: Option<NodeId>,
        version: Option<String>,
        sha256: Option<[u8; 32]>,
    },
    /// Every device listed on an aggregator service of any node (printers, cameras, NAS
    /// that send syslog or SNMP traps through an agent), with when it was last heard from
    /// and how many events it sent; answered with [`AdminResponse::Devices`].
    ListDevices,
    /// The agent packages the core can send (its `packages/` folder) and its own version;
    /// answered with [`AdminResponse::UpgradeInfo`].
    UpgradeInfo,
    /// The cores serving the fleet (several on one PostgreSQL; one otherwise), with the
    /// nodes each holds; answered with [`AdminResponse::Cores`].
    ListCores,
    /// Revoke every credential and certificate grant of module `name` and close its
    /// connection, on whichever core it is connected to (a managed module is also
    /// unloaded by `UnloadModule`, on the core that runs it). Answered with `Done`.
    RevokeModule {
        name: String,
    },
}

/// Most events [`AdminRequest::CountEvents`] counts; past it the answer says `capped`.
pub const MAX_EVENT_COUNT: u64 = 1_000_000;

/// Most content bytes one `GetCapture` answer carries.
pub const MAX_CAPTURE_CHUNK: u32 = 8 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AdminResponse {
    Status(CoreStatus),
    Nodes(Vec<NodeInfo>),
    Events(Vec<StoredEvent>),
    NodeConfig(NodeConfig),
    Audit(Vec<AuditEntry>),
    Token {
        id: TokenId,
        token: String,
    },
    Tokens(Vec<TokenInfo>),
    CommandResult(Result<String, String>),
    Alerts(Vec<AlertInfo>),
    ModuleCredential {
        credential: String,
    },
    Modules(Vec<ModuleInfo>),
    ModuleCert {
        cert_der: Vec<u8>,
        ca_der: Vec<u8>,
        not_after_ms: i64,
    },
    Done,
    Error(String),
    Captures(Vec<CaptureInfo>),
    CaptureChunk {
        info: CaptureInfo,
        offset: u64,
        data: Vec<u8>,
    },
    /// One page of [`AdminRequest::SearchEvents`]; `next` continues after its last event.
    EventPage {
        events: Vec<StoredEvent>,
        next: Option<EventCursor>,
    },
    Stats(Stats),
    /// Answer to [`AdminRequest::NodeHealth`], one entry per known node.
    NodeHealth(Vec<NodeHealthInfo>),
    /// Answer to [`AdminRequest::AlertCounts`].
    AlertCounts {
        total: u64,
        open: u64,
    },
    /// Answer to [`AdminRequest::CountEvents`]; `capped`: at least `count` match.
    EventCount {
        count: u64,
        capped: bool,
    },
    /// Answer to [`AdminRequest::TopCommands`].
    TopCommands(Vec<KeyCount>),
    /// Answer to [`AdminRequest::CheckRealism`] and [`AdminRequest::GetRealism`].
    Realism(Option<crate::realism::RealismRecord>),
    /// Answer to [`AdminRequest::Load`].
    Load(CoreLoad),
    /// Answer to [`AdminRequest::UpgradeNodes`]: per node, what was sent or why not.
    Upgrades(Vec<(NodeId, Result<String, String>)>),
    /// Answer to [`AdminRequest::ListDevices`].
    Devices(Vec<DeviceInfo>),
    /// Answer to [`AdminRequest::UpgradeInfo`].
    UpgradeInfo {
        /// The core's own version (what `UpgradeNodes` sends when no version is named).
        core_version: String,
        /// Every package in the core's `packages/` folder, by version.
        packages: Vec<PackageInfo>,
    },
    /// Answer to [`AdminRequest::ListCores`].
    Cores(Vec<ClusterCoreInfo>),
}

/// One core of the deployment, as [`AdminRequest::ListCores`] lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterCoreInfo {
    /// The core's identity (32 hex digits; `standalone` for a core on SQLite).
    pub id: String,
    pub listen: String,
    pub advertise: String,
    pub version: String,
    pub started_ms: i64,
    /// Since its last heartbeat (it renews its leases every 10 s), by the database's clock.
    pub heartbeat_age_ms: i64,
    /// Nodes whose live connection it holds (unexpired leases).
    pub nodes: u64,
    /// Whether this is the core that answered.
    pub this_core: bool,
    /// The core's load: live for the core that answered, as of its last heartbeat for
    /// the others (each writes it with its heartbeat).
    pub connections: u64,
    pub handshakes_per_s: f64,
    pub ingest_events_per_s: f64,
    /// Modules connected to it, and the deliveries waiting in their queues in all.
    pub modules: u64,
    pub module_queued: u64,
}

/// An agent package the core can send with [`AdminRequest::UpgradeNodes`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageInfo {
    pub version: String,
    pub bytes: u64,
}

/// A device that cannot run an agent, reported through an aggregator service of `node`:
/// one node-like entry of `honeybee nodes` and the dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// The aggregating node.
    pub node: NodeId,
    /// Its aggregator service.
    pub service: String,
    /// As the service lists it.
    pub name: String,
    pub address: String,
    /// What it is (`printer`, `camera`, …); may be empty.
    pub kind: String,
    /// Its newest event's time (the agent's clock), if it has any stored.
    pub last_seen_ms: Option<i64>,
    /// Its stored events (`device_log` and `device_trap`).
    pub events: u64,
}

/// The core's load as `honeybee status` shows it; the same figures are Prometheus
/// metrics when `[metrics] listen` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoreLoad {
    /// Live QUIC connections, every ALPN.
    pub connections: u64,
    pub handshakes_in_flight: u64,
    /// Per second over the last ten seconds.
    pub handshakes_per_s: f64,
    pub handshake_failures_per_s: f64,
    /// Events of nodes' telemetry stored per second, over the last ten seconds.
    pub ingest_events_per_s: f64,
    /// Telemetry batches waiting for the store's writer.
    pub ingest_commits_in_flight: u64,
    /// Deliveries waiting in each connected module's queue, by module name.
    pub module_queues: Vec<(String, u64)>,
    /// The store's database and write-ahead log on disk.
    pub store_bytes: u64,
    /// Where `/metrics` is served, when it is.
    pub metrics_listen: Option<String>,
    /// Several cores on one PostgreSQL: the module bus's tail of the other cores' events.
    pub bus_tail: Option<BusTail>,
}

/// What a core's module bus tail has done since it started (`CoreLoad::bus_tail`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BusTail {
    /// Other cores' events offered to this core's module subscriptions.
    pub tailed: u64,
    /// Events waiting now for a hole in their node's sequence to fill.
    pub held: u64,
    /// Events offered after a later one of their node (the hole filled too late).
    pub late: u64,
    /// Holes in a node's sequence the tail stopped waiting for.
    pub skipped: u64,
}

/// A stored capture as `honeybee captures` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureInfo {
    pub sha256: [u8; 32],
    pub size: u64,
    /// `transcript`, `upload`, `body`, `other`.
    pub kind: String,
    pub node: NodeId,
    pub service: String,
    pub session: Option<crate::ids::SessionId>,
    pub time_ms: i64,
    pub meta: Vec<(String, String)>,
}

/// The filters of [`AdminRequest::SearchEvents`]; every one that is set must match.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EventSearch {
    pub node: Option<NodeId>,
    pub service: Option<String>,
    pub kind: Option<String>,
    /// The attacker's address: an IP, or a prefix of one ending in `.` or `:` (`203.0.113.`).
    pub src: Option<String>,
    /// Case-insensitive text anywhere in the event (user, password, command, path, …).
    pub text: Option<String>,
    pub session: Option<SessionId>,
    /// Observed at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Observed before this time (ms since the epoch).
    pub until_ms: Option<i64>,
    /// Continue after this event (from a previous page's `next`).
    pub before: Option<EventCursor>,
    /// Most events returned; the core caps it.
    pub limit: u32,
}

/// Where a page of events ended: events sort by time, then node, then seq, all descending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCursor {
    pub time_ms: i64,
    pub node: NodeId,
    pub seq: u64,
}

/// What [`AdminRequest::Stats`] counts: events observed in `[since_ms, until_ms)`,
/// in buckets of `bucket_ms`, with the `top` most frequent values of each list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsQuery {
    pub since_ms: i64,
    pub until_ms: i64,
    pub bucket_ms: i64,
    pub top: u32,
}

/// A count per key, most frequent first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyCount {
    pub key: String,
    pub count: u64,
}

/// Counts per bucket start time (ms), buckets with no events left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub key: String,
    pub points: Vec<(i64, u64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CredentialCount {
    pub username: String,
    pub password: String,
    pub count: u64,
}

/// Events from one country, where a module (geo) enriched their source address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeoCount {
    pub country: String,
    /// Mean of `source.geo.location` where the enrichment had one.
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub count: u64,
}

/// The answer to [`AdminRequest::Stats`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub events_total: u64,
    pub total: Vec<(i64, u64)>,
    pub by_service: Vec<Series>,
    pub by_node: Vec<Series>,
    pub by_kind: Vec<KeyCount>,
    pub top_sources: Vec<KeyCount>,
    pub top_services: Vec<KeyCount>,
    pub top_nodes: Vec<KeyCount>,
    pub top_credentials: Vec<CredentialCount>,
    pub top_commands: Vec<KeyCount>,
    pub geo: Vec<GeoCount>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EventQuery {
    pub node: Option<NodeId>,
    pub service: Option<String>,
    pub kind: Option<String>,
    /// Only events observed at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Most events returned, newest first; the core caps it.
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenSpec {
    pub role: Role,
    pub name: String,
    pub ttl_s: u64,
    pub uses: u32,
    pub labels: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoreStatus {
    pub version: String,
    pub trust_domain: String,
    pub listen: String,
    pub advertise: String,
    pub uptime_s: u64,
    /// Nodes connected to this core (with several cores, [`AdminRequest::ListCores`]
    /// counts each core's).
    pub nodes_online: u32,
    pub nodes_total: u32,
    pub events_total: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: NodeId,
    pub name: String,
    pub role: Role,
    pub labels: Vec<(String, String)>,
    pub serial: Serial,
    pub cert_not_after_ms: i64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub addr: Option<String>,
    pub online: bool,
    pub revoked: bool,
    pub health: Option<Health>,
    /// What the node said it is in its hello (full, extension, relay); `None` while it
    /// is offline.
    pub mode: Option<crate::control::NodeMode>,
    /// The relay its live connection comes through; `None` when offline or direct.
    pub via: Option<NodeId>,
    /// The relay the node is assigned to (the only relay allowed to carry it).
    pub relay: Option<NodeId>,
    /// The agent version the node reported in its hello (clamped to 64 bytes); `None`
    /// while it is offline.
    pub agent_version: Option<String>,
    /// Several cores on one PostgreSQL: the core holding the node's live connection (its
    /// 32-hex-digit id, from the node's unexpired lease); `None` offline or on one core.
    pub core: Option<String>,
    /// How old `health` is, ms: the age of the latest report when the answering core
    /// holds the node; the age of the store's copy (which the holding core refreshes
    /// when the report changes and at least once a minute) when another core holds it.
    /// `None` without a report.
    pub health_age_ms: Option<i64>,
}

/// An event as stored by the core: the agent's event plus what the core knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub node: NodeId,
    pub received_ms: i64,
    pub event: Event,
    /// What modules attached to the event (geo, ASN, notes …).
    pub enrichments: Vec<EnrichmentInfo>,
}

/// One enrichment or annotation a module attached to an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrichmentInfo {
    pub module: String,
    /// `enrich` or `annotation`.
    pub kind: String,
    /// A JSON object: ECS-style dotted keys for `enrich`, `{"text": …}` for annotations.
    pub data: String,
}

/// An alert a module published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertInfo {
    pub id: i64,
    pub time_ms: i64,
    pub module: String,
    pub severity: String,
    pub title: String,
    pub body: String,
    pub node: Option<String>,
    pub seq: Option<u64>,
    pub acked_ms: Option<i64>,
    pub acked_by: Option<String>,
}

/// A managed module: a process the core starts, supervises and stops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleSpec {
    pub name: String,
    pub command: String,
    pub args: Vec<String>,
    pub permissions: Vec<String>,
}

/// A module as `honeybee module list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleInfo {
    pub name: String,
    /// `connected`, `starting`, `restarting`, `stopped`, …
    pub state: String,
    pub managed: bool,
    /// `shim`, `quic` or empty when not connected.
    pub transport: String,
    pub version: String,
    pub permissions: Vec<String>,
    pub subscriptions: u32,
    pub queue_depth: u64,
    pub dropped: u64,
    pub pid: Option<u32>,
    pub restarts: u32,
    /// How the module's last process ended (`exit code 1`, `killed by signal 9`), for a
    /// managed module that has exited at least once.
    pub last_exit: Option<String>,
    /// The last lines the managed module wrote (stdout and stderr, oldest first, at most
    /// [`MODULE_LOG_TAIL`]): why a crash-looping module keeps dying.
    pub log_tail: Vec<String>,
}

/// Most output lines [`ModuleInfo::log_tail`] keeps.
pub const MODULE_LOG_TAIL: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub time_ms: i64,
    /// Who acted: `admin:<id>`, `token:<id>`, `node:<id>`, `core`.
    pub actor: String,
    pub action: String,
    /// `ok` or the reason for failure.
    pub outcome: String,
    pub source: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: TokenId,
    pub role: Role,
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub uses_total: u32,
    pub uses_left: u32,
    pub revoked: bool,
}

/// A node's health as one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum NodeState {
    /// Connected, every enabled service listening, no spool drops in the last report.
    Healthy,
    /// Connected, but an enabled service is not listening or the spool dropped events.
    Degraded,
    /// No live connection.
    Offline,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Healthy => "healthy",
            NodeState::Degraded => "degraded",
            NodeState::Offline => "offline",
        }
    }
}

/// The core's assessment of one node (computed in `honeybee-core`'s `health.rs` only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeHealthInfo {
    pub node: NodeId,
    pub state: NodeState,
    /// Enabled services listening, of `services_total` enabled services.
    pub services_up: u32,
    pub services_total: u32,
    /// Events the spool discarded between the node's last two health reports.
    pub spool_dropped: u64,
    /// Agent time of the node's newest stored event.
    pub last_event_ms: Option<i64>,
    /// Why it is degraded, one line each (service errors are the agent's text).
    pub problems: Vec<String>,
    /// As [`NodeInfo::core`]: the core holding the node's live connection, in a cluster.
    pub core: Option<String>,
    /// As [`NodeInfo::health_age_ms`]: how old the report assessed here is.
    pub health_age_ms: Option<i64>,
}
