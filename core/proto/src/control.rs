//! Messages on a node's control stream (bidirectional stream 0).

use crate::config::NodeConfig;
use crate::ids::NodeId;
use serde::{Deserialize, Serialize};

/// Agent → core.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AgentMsg {
    /// First message on every connection.
    Hello(Hello),
    /// Sent every health interval.
    Health(Health),
    /// Answer to [`CoreMsg::Command`].
    CommandResult {
        id: u64,
        result: Result<String, String>,
    },
    /// A CSR for a fresh key pair, sent at about 2/3 of the certificate's lifetime.
    RenewRequest { csr_der: Vec<u8> },
    /// What became of an upgrade stream (`crate::upgrade`): `Ok` with what was done,
    /// or why the package was refused.
    UpgradeReport {
        version: String,
        result: Result<String, String>,
    },
}

/// Core → agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CoreMsg {
    /// Answer to hello: who the core thinks this node is, and its configuration.
    Welcome {
        node_id: NodeId,
        config: NodeConfig,
        /// Highest sequence number the core has stored for this node; an agent whose
        /// spool was lost continues above it so its new events are not taken as duplicates.
        last_seq: u64,
    },
    /// Events with `first..=last` are durably stored; the agent may drop them.
    Ack { first: u64, last: u64 },
    /// A capture upload was stored (or was already there).
    CaptureStored { sha256: [u8; 32] },
    /// A capture upload was refused; the agent must not retry it unchanged.
    CaptureRejected { sha256: [u8; 32], reason: String },
    /// A new configuration; the agent applies it without restarting.
    Config(NodeConfig),
    /// A command to run; the agent answers with [`AgentMsg::CommandResult`].
    Command { id: u64, command: Command },
    /// Answer to a renewal request.
    Renewed(Result<RenewedCert, String>),
}

/// Commands the core can send to a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Command {
    /// Liveness check; answered with "pong".
    Ping,
    /// A summary of the node's state as JSON text.
    Status,
    /// Stop listening on `port` of extension service `service`; the port stays released
    /// until the node's configuration of that service changes.
    ReleasePort { service: String, port: u16 },
    /// Probe the node's own services on loopback as a scanner would and compare them
    /// with the recorded references; answered with a
    /// [`crate::realism::RealismReport`] as JSON text.
    CheckRealism,
}

/// What kind of agent this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum NodeMode {
    Full,
    Extension,
    Relay,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub wire_version: u16,
    pub agent_version: String,
    pub mode: NodeMode,
    pub hostname: String,
}

/// A node's periodic health report.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Health {
    pub uptime_s: u64,
    /// Process CPU use since the previous report, percent of one core.
    pub cpu_percent: f32,
    pub rss_bytes: u64,
    pub services: Vec<ServiceStatus>,
    /// Events written to the spool and not yet acknowledged.
    pub spool_depth: u64,
    /// Events the spool discarded because it was full, since the agent started.
    pub spool_dropped: u64,
    pub cert_not_after_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    pub kind: String,
    pub listen: String,
    pub running: bool,
    pub error: Option<String>,
    pub active_sessions: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenewedCert {
    pub cert_der: Vec<u8>,
    pub not_after_ms: i64,
}
