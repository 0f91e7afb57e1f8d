//! The admin API on `honeybee-admin/1`: one bidirectional stream per request.

use crate::config::NodeConfig;
use crate::control::Health;
use crate::event::Event;
use crate::ids::{NodeId, Role, Serial, TokenId};
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
}

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
}

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
