//! Typed events: what an agent saw, with the fields every event shares.

use crate::ids::SessionId;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Longest string field the core accepts in an event (usernames, command lines, …).
pub const MAX_FIELD_LEN: usize = 4096;
/// Most raw bytes an event may carry (first bytes of a banner connection).
pub const MAX_DATA_LEN: usize = 4096;
/// Most ports one `ScanDetected` event lists.
pub const MAX_SCAN_PORTS: usize = 1024;
/// Most events in one telemetry batch.
pub const MAX_BATCH_EVENTS: usize = 4096;

/// One observation by one node. The node id is not carried: the core takes it from the
/// authenticated connection, so an agent cannot speak for another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Per-node sequence number assigned by the agent's spool; the core dedupes on it.
    pub seq: u64,
    /// When the agent observed it, milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// Service instance that saw it (`ssh`, `banner`, …).
    pub service: String,
    /// The attacker session it belongs to, if any.
    pub session: Option<SessionId>,
    /// The attacker's address.
    pub src: Option<SocketAddr>,
    /// The honeypot address that was contacted.
    pub dst: Option<SocketAddr>,
    pub kind: EventKind,
}

/// What happened. New variants go at the end: postcard encodes the variant index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EventKind {
    /// A peer connected to a service.
    Connect,
    /// The session ended.
    Disconnect {
        duration_ms: u64,
        bytes_in: u64,
        bytes_out: u64,
    },
    /// A login attempt.
    AuthAttempt(AuthAttempt),
    /// A command line typed or executed in an emulated shell.
    Command { line: String },
    /// The first bytes a peer sent to a banner or unknown service (bounded).
    Data { bytes: Vec<u8>, truncated: bool },
    /// A safety cap was hit (connections per source, total, upload size, …).
    LimitReached { limit: String, detail: String },
    /// A service could not do what it was configured to (bind failed, …).
    ServiceError { message: String },
    /// One port scan from one source: the distinct ports it touched (sorted, at most
    /// [`MAX_SCAN_PORTS`] of them), how many connections, and how long it lasted.
    ScanDetected {
        ports: Vec<u16>,
        count: u32,
        duration_ms: u64,
        distinct_ports: u32,
    },
    /// One HTTP request to a web persona.
    HttpRequest(HttpRequest),
    /// A service stored a capture (transcript, upload, large body) of this session; the
    /// content itself travels on a capture stream.
    Capture {
        /// `transcript`, `upload`, `body`, `other`.
        kind: String,
        /// Hex SHA-256 of the content, as `honeybee captures` lists it.
        sha256: String,
        size: u64,
        /// File name or URL path, where there is one.
        name: Option<String>,
    },
    /// An attempt to make the honeypot fetch something (`wget`/`curl` in a shell, Redis
    /// `SLAVEOF`, …). Recorded, never fetched.
    Download { url: String, tool: String },
    /// One scan across the network: the core saw one source probe many nodes within its
    /// correlation window. Same kind name as a node's own `ScanDetected`; the core stores
    /// it under node `core`, service `correlator`.
    NetworkScanDetected {
        /// Sorted node ids, at most [`MAX_SCAN_NODES`].
        nodes: Vec<String>,
        /// Sorted, distinct, at most [`MAX_SCAN_PORTS`].
        ports: Vec<u16>,
        count: u32,
        duration_ms: u64,
        distinct_nodes: u32,
        distinct_ports: u32,
    },
    /// A name-poisoning responder (the Responder family) answered a detectors service's
    /// query for a name nobody holds; one event per incident. `src` is the responder.
    PoisoningDetected(NetworkAlert),
    /// Something a detectors service saw on the local network (ARP spoofing, a rogue DHCP
    /// server or router); one event per incident. `src` is the offender where known.
    NetworkAnomaly(NetworkAlert),
    /// A syslog message from a device listed on an aggregator service; `src` is the
    /// device's address.
    DeviceLog(DeviceLog),
    /// An SNMP trap from a device listed on an aggregator service; `src` is the device's
    /// address.
    DeviceTrap(DeviceTrap),
    /// Honey-credentials a detectors service offered to a name-poisoning responder (an
    /// NTLM exchange toward it, as a victim's would be); `src` is the responder.
    HoneyCredentialsOffered(HoneyCredentialOffer),
    /// Credentials once offered to a poisoner were used against a HoneyBee service: the
    /// core stores it under node `core`, service `correlator`; `src` is who used them.
    HoneyCredentialUsed(HoneyCredentialUse),
}

/// Honey-credentials offered to a responder. Strings are clamped to [`MAX_FIELD_LEN`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoneyCredentialOffer {
    /// How they were offered: `http-ntlm`.
    pub protocol: String,
    pub username: String,
    pub domain: String,
    /// The honey password (nothing real: generated per node and offer).
    pub password: String,
    /// The responder they went to.
    pub responder: std::net::IpAddr,
    /// The honey-name it answered for.
    pub honey_name: String,
    /// `sent` (the responder got the NTLM AUTHENTICATE), else why not (`connect_failed`,
    /// `timeout`, `no_ntlm`, `bad_challenge`, …).
    pub outcome: String,
}

/// A use of offered honey-credentials, linked back to the offer. Strings are clamped to
/// [`MAX_FIELD_LEN`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoneyCredentialUse {
    pub username: String,
    pub domain: String,
    /// The node whose detectors offered them, when, and to which responder.
    pub offered_by: String,
    pub offered_at_ms: i64,
    pub responder: std::net::IpAddr,
    /// Where they were used: the node and service of the login attempt.
    pub node: String,
    pub service: String,
    /// Whether that login was let in.
    pub success: bool,
}

/// Most variable bindings one [`DeviceTrap`] keeps.
pub const MAX_TRAP_VARBINDS: usize = 32;

/// One syslog message from an aggregated device. Strings are clamped to
/// [`MAX_FIELD_LEN`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceLog {
    /// The device as the aggregator's configuration names it.
    pub device: String,
    /// `udp` or `tcp`.
    pub transport: String,
    /// `rfc5424`, `rfc3164` or `bare` (no recognisable header).
    pub format: String,
    /// 0-23 (1, user, when the line had no priority).
    pub facility: u8,
    /// 0 (emergency) to 7 (debug) (5, notice, when the line had no priority).
    pub severity: u8,
    /// The header's timestamp as sent (the device's clock, not checked).
    pub timestamp: Option<String>,
    /// The header's host name as sent (the device names itself; `device` is who it is).
    pub hostname: Option<String>,
    pub app: Option<String>,
    pub procid: Option<String>,
    pub msgid: Option<String>,
    pub structured_data: Option<String>,
    pub message: String,
    /// The message was longer than what was kept.
    pub truncated: bool,
}

/// One SNMP trap (or inform) from an aggregated device. Strings are clamped to
/// [`MAX_FIELD_LEN`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceTrap {
    /// The device as the aggregator's configuration names it.
    pub device: String,
    /// 1 (SNMPv1) or 2 (SNMPv2c).
    pub version: u8,
    /// `snmpTrapOID.0` (an SNMPv1 trap's translated as RFC 3584 says).
    pub trap_oid: String,
    /// SNMPv1: the agent address the trap names.
    pub agent_addr: Option<std::net::IpAddr>,
    /// (OID, value as text), at most [`MAX_TRAP_VARBINDS`].
    pub varbinds: Vec<(String, String)>,
    /// An InformRequest (the aggregator answers it with its Response).
    pub inform: bool,
}

/// Most MAC addresses one [`NetworkAlert`] lists.
pub const MAX_ALERT_MACS: usize = 8;

/// One incident seen by a network detector: what, who, how often. Strings are clamped to
/// [`MAX_FIELD_LEN`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkAlert {
    /// The incident's kind: `llmnr`, `nbt-ns`, `mdns` (comma-joined, for poisoning);
    /// `arp_spoof`, `arp_mac_changed`, `arp_duplicate_ip`, `arp_gratuitous_flood`,
    /// `rogue_dhcp`, `rogue_router_advertisement`.
    pub what: String,
    /// The address concerned: the responder, the claimed IP, the rogue server.
    pub ip: Option<std::net::IpAddr>,
    /// MAC addresses seen for it (`aa:bb:cc:dd:ee:ff`), the offender's first; at most
    /// [`MAX_ALERT_MACS`].
    pub macs: Vec<String>,
    /// What was expected instead (the known MAC, the allowed servers), where known.
    pub expected: Option<String>,
    /// Packets in the incident.
    pub count: u32,
    /// First to last packet of the incident.
    pub duration_ms: u64,
    /// More facts: the honey-names answered, the address and router offered, …
    pub detail: String,
}

/// Most nodes one `NetworkScanDetected` event lists.
pub const MAX_SCAN_NODES: usize = 256;

/// Most headers one `HttpRequest` event keeps.
pub const MAX_HTTP_HEADERS: usize = 64;

/// An HTTP request as a web persona saw it. Strings are clamped to [`MAX_FIELD_LEN`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub version: String,
    /// At most [`MAX_HTTP_HEADERS`], in arrival order, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub user_agent: Option<String>,
    /// The body up to the service's inline cap (at most [`MAX_DATA_LEN`]).
    pub body: Vec<u8>,
    /// The body was longer than `body` (the whole of it is a capture, if under the cap).
    pub body_truncated: bool,
    /// The status the persona answered with.
    pub status: u16,
}

impl EventKind {
    /// Stable name used for storage, filters and JSON output.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Connect => "connect",
            EventKind::Disconnect { .. } => "disconnect",
            EventKind::AuthAttempt(_) => "auth_attempt",
            EventKind::Command { .. } => "command",
            EventKind::Data { .. } => "data",
            EventKind::LimitReached { .. } => "limit_reached",
            EventKind::ServiceError { .. } => "service_error",
            EventKind::ScanDetected { .. } => "scan_detected",
            EventKind::HttpRequest(_) => "http_request",
            EventKind::Capture { .. } => "capture",
            EventKind::Download { .. } => "download",
            EventKind::NetworkScanDetected { .. } => "scan_detected",
            EventKind::PoisoningDetected(_) => "poisoning_detected",
            EventKind::NetworkAnomaly(_) => "network_anomaly",
            EventKind::DeviceLog(_) => "device_log",
            EventKind::DeviceTrap(_) => "device_trap",
            EventKind::HoneyCredentialsOffered(_) => "honey_credentials_offered",
            EventKind::HoneyCredentialUsed(_) => "honey_credential_used",
        }
    }

    /// Every kind name, for validating filters.
    pub const NAMES: [&'static str; 17] = [
        "connect",
        "disconnect",
        "auth_attempt",
        "command",
        "data",
        "limit_reached",
        "service_error",
        "scan_detected",
        "http_request",
        "capture",
        "download",
        "poisoning_detected",
        "network_anomaly",
        "device_log",
        "device_trap",
        "honey_credentials_offered",
        "honey_credential_used",
    ];
}

/// How a login was attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AuthMethod {
    None,
    Password,
    PublicKey,
    KeyboardInteractive,
}

impl AuthMethod {
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::Password => "password",
            AuthMethod::PublicKey => "publickey",
            AuthMethod::KeyboardInteractive => "keyboard-interactive",
        }
    }
}

/// A login attempt on a honeypot service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthAttempt {
    pub method: AuthMethod,
    pub username: String,
    pub password: Option<String>,
    /// `SHA256:…` fingerprint of an offered public key.
    pub key_fingerprint: Option<String>,
    pub key_algorithm: Option<String>,
    /// The client's software version string, where the protocol has one.
    pub client_version: Option<String>,
    pub success: bool,
}

/// Why the core refused an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event field {field} is invalid: {why}")]
pub struct InvalidEvent {
    pub field: &'static str,
    pub why: &'static str,
}

impl Event {
    /// Checks the bounds the core relies on; the agent applies the same caps when it
    /// builds events, so a refusal means a broken or hostile agent.
    pub fn validate(&self) -> Result<(), InvalidEvent> {
        let long = |field, s: &str| {
            if s.len() > MAX_FIELD_LEN {
                Err(InvalidEvent {
                    field,
                    why: "too long",
                })
            } else {
                Ok(())
            }
        };
        if self.service.is_empty() || self.service.len() > 64 {
            return Err(InvalidEvent {
                field: "service",
                why: "must be 1 to 64 bytes",
            });
        }
        match &self.kind {
            EventKind::AuthAttempt(a) => {
                long("username", &a.username)?;
                long("password", a.password.as_deref().unwrap_or(""))?;
                long(
                    "key_fingerprint",
                    a.key_fingerprint.as_deref().unwrap_or(""),
                )?;
                long("key_algorithm", a.key_algorithm.as_deref().unwrap_or(""))?;
                long("client_version", a.client_version.as_deref().unwrap_or(""))?;
            }
            EventKind::Command { line } => long("line", line)?,
            EventKind::Data { bytes, .. } if bytes.len() > MAX_DATA_LEN => {
                return Err(InvalidEvent {
                    field: "bytes",
                    why: "too long",
                });
            }
            EventKind::LimitReached { limit, detail } => {
                long("limit", limit)?;
                long("detail", detail)?;
            }
            EventKind::ServiceError { message } => long("message", message)?,
            EventKind::ScanDetected { ports, .. } => {
                if ports.len() > MAX_SCAN_PORTS {
                    return Err(InvalidEvent {
                        field: "ports",
                        why: "too many",
                    });
                }
                if ports.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(InvalidEvent {
                        field: "ports",
                        why: "must be sorted and distinct",
                    });
                }
            }
            EventKind::HttpRequest(r) => {
                long("method", &r.method)?;
                long("path", &r.path)?;
                long("query", r.query.as_deref().unwrap_or(""))?;
                long("version", &r.version)?;
                long("user_agent", r.user_agent.as_deref().unwrap_or(""))?;
                if r.headers.len() > MAX_HTTP_HEADERS {
                    return Err(InvalidEvent {
                        field: "headers",
                        why: "too many",
                    });
                }
                for (k, v) in &r.headers {
                    long("headers", k)?;
                    long("headers", v)?;
                }
                if r.body.len() > MAX_DATA_LEN {
                    return Err(InvalidEvent {
                        field: "body",
                        why: "too long",
                    });
                }
            }
            EventKind::Capture {
                kind, sha256, name, ..
            } => {
                long("kind", kind)?;
                long("sha256", sha256)?;
                long("name", name.as_deref().unwrap_or(""))?;
            }
            EventKind::Download { url, tool } => {
                long("url", url)?;
                long("tool", tool)?;
            }
            EventKind::NetworkScanDetected { nodes, ports, .. } => {
                if nodes.len() > MAX_SCAN_NODES || nodes.iter().any(|n| n.len() > 64) {
                    return Err(InvalidEvent {
                        field: "nodes",
                        why: "too many or too long",
                    });
                }
                if ports.len() > MAX_SCAN_PORTS || ports.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(InvalidEvent {
                        field: "ports",
                        why: "too many, or not sorted and distinct",
                    });
                }
            }
            EventKind::PoisoningDetected(a) | EventKind::NetworkAnomaly(a) => {
                long("what", &a.what)?;
                long("expected", a.expected.as_deref().unwrap_or(""))?;
                long("detail", &a.detail)?;
                if a.macs.len() > MAX_ALERT_MACS || a.macs.iter().any(|m| m.len() > 64) {
                    return Err(InvalidEvent {
                        field: "macs",
                        why: "too many or too long",
                    });
                }
            }
            EventKind::DeviceLog(l) => {
                if l.device.is_empty() || l.device.len() > 64 {
                    return Err(InvalidEvent {
                        field: "device",
                        why: "must be 1 to 64 bytes",
                    });
                }
                long("transport", &l.transport)?;
                long("format", &l.format)?;
                for f in [
                    &l.timestamp,
                    &l.hostname,
                    &l.app,
                    &l.procid,
                    &l.msgid,
                    &l.structured_data,
                ] {
                    long("header", f.as_deref().unwrap_or(""))?;
                }
                long("message", &l.message)?;
            }
            EventKind::DeviceTrap(t) => {
                if t.device.is_empty() || t.device.len() > 64 {
                    return Err(InvalidEvent {
                        field: "device",
                        why: "must be 1 to 64 bytes",
                    });
                }
                long("trap_oid", &t.trap_oid)?;
                if t.varbinds.len() > MAX_TRAP_VARBINDS {
                    return Err(InvalidEvent {
                        field: "varbinds",
                        why: "too many",
                    });
                }
                for (k, v) in &t.varbinds {
                    long("varbinds", k)?;
                    long("varbinds", v)?;
                }
            }
            EventKind::HoneyCredentialsOffered(o) => {
                for (f, v) in [
                    ("protocol", &o.protocol),
                    ("username", &o.username),
                    ("domain", &o.domain),
                    ("password", &o.password),
                    ("honey_name", &o.honey_name),
                    ("outcome", &o.outcome),
                ] {
                    long(f, v)?;
                }
            }
            EventKind::HoneyCredentialUsed(u) => {
                for (f, v) in [
                    ("username", &u.username),
                    ("domain", &u.domain),
                    ("offered_by", &u.offered_by),
                    ("node", &u.node),
                    ("service", &u.service),
                ] {
                    long(f, v)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Truncates `s` to at most `max` bytes on a character boundary; agents use it on every
/// attacker-controlled string before it becomes an event.
pub fn clamp(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// A batch of events on one telemetry stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventBatch {
    pub events: Vec<Event>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamp_respects_char_boundaries() {
        assert_eq!(clamp("héllo", 2), "h");
        assert_eq!(clamp("abc", 10), "abc");
    }

    #[test]
    fn validate_caps_fields() {
        let mut e = Event {
            seq: 1,
            time_ms: 0,
            service: "ssh".into(),
            session: None,
            src: None,
            dst: None,
            kind: EventKind::Command {
                line: "x".repeat(MAX_FIELD_LEN + 1),
            },
        };
        assert!(e.validate().is_err());
        e.kind = EventKind::Connect;
        assert!(e.validate().is_ok());
        e.kind = EventKind::ScanDetected {
            ports: vec![1, 2, 3],
            count: 3,
            duration_ms: 5,
            distinct_ports: 3,
        };
        assert!(e.validate().is_ok());
        e.kind = EventKind::ScanDetected {
            ports: vec![2, 1],
            count: 2,
            duration_ms: 5,
            distinct_ports: 2,
        };
        assert!(e.validate().is_err());
        e.service.clear();
        assert!(e.validate().is_err());
    }
}
