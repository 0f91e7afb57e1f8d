//! The module protocol: what modules (in any language) and the core say to each other.
//!
//! One catalogue for both transports: u32 big-endian length + a JSON body, on the TCP shim
//! and on a bidirectional stream of `honeybee-module/1`. JSON rather than postcard because
//! module authors write it by hand in every language; `modules/PROTOCOL.md` is the
//! contract. Messages are internally tagged by `"type"`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the module protocol this core speaks.
pub const MODULE_PROTOCOL: u32 = 1;
/// Largest frame body either side may send.
pub const MAX_MODULE_FRAME: u32 = 1024 * 1024;

/// A permission a module may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Permission {
    #[serde(rename = "events:read")]
    EventsRead,
    #[serde(rename = "nodes:read")]
    NodesRead,
    #[serde(rename = "nodes:command")]
    NodesCommand,
    #[serde(rename = "alerts:write")]
    AlertsWrite,
    #[serde(rename = "enrich:write")]
    EnrichWrite,
    #[serde(rename = "captures:read")]
    CapturesRead,
}

impl Permission {
    pub const ALL: [Permission; 6] = [
        Permission::EventsRead,
        Permission::NodesRead,
        Permission::NodesCommand,
        Permission::AlertsWrite,
        Permission::EnrichWrite,
        Permission::CapturesRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::EventsRead => "events:read",
            Permission::NodesRead => "nodes:read",
            Permission::NodesCommand => "nodes:command",
            Permission::AlertsWrite => "alerts:write",
            Permission::EnrichWrite => "enrich:write",
            Permission::CapturesRead => "captures:read",
        }
    }

    pub fn parse(s: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// Which events a subscription wants. Every non-empty list must match (AND across
/// fields, OR within a list); an empty filter matches every event.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    /// Event kinds (`auth_attempt`, `connect`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// Node labels that must all be present with these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Source addresses or CIDR prefixes (`203.0.113.0/24`, `2001:db8::/32`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
}

/// Module → core.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModuleRequest {
    /// First message. On the shim it carries the module credential.
    Hello {
        name: String,
        version: String,
        protocol: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credential: Option<String>,
        /// Permissions the module wants; it gets the intersection with what it was granted.
        #[serde(default)]
        permissions: Vec<String>,
    },
    Subscribe {
        id: u64,
        #[serde(default)]
        filter: EventFilter,
    },
    Unsubscribe {
        id: u64,
    },
    /// `what`: `nodes`, `events`, `captures` or `stats`.
    Query {
        id: u64,
        what: String,
        #[serde(default)]
        params: serde_json::Value,
    },
    /// A command to a node (`ping`, `status`).
    Command {
        id: u64,
        node: String,
        command: String,
    },
    Alert {
        id: u64,
        severity: String,
        title: String,
        #[serde(default)]
        body: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event: Option<EventRef>,
    },
    /// Facts attached to an event (geo, ASN, reputation …), shown with it.
    Enrich {
        id: u64,
        event: EventRef,
        data: BTreeMap<String, serde_json::Value>,
    },
    /// A note attached to an event by a person or a module.
    Annotate {
        id: u64,
        event: EventRef,
        text: String,
    },
    Log {
        level: String,
        message: String,
    },
    Ping {
        id: u64,
    },
}

/// Names one stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRef {
    pub node: String,
    pub seq: u64,
}

/// Core → module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ModuleMessage {
    Welcome {
        module: String,
        protocol: u32,
        permissions: Vec<String>,
    },
    /// One event matching subscription `sub`, in the ECS-named JSON of `honeybee events --json`.
    Event { sub: u64, event: serde_json::Value },
    /// Events this module's queue had no room for since the last notice.
    Missed { count: u64 },
    /// Answer to a request with an `id`.
    Result {
        id: u64,
        #[serde(default)]
        data: serde_json::Value,
    },
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        code: ErrorCode,
        message: String,
    },
}

/// Machine-readable error codes; the message says the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not JSON, or not a known message.
    BadRequest,
    /// Authentication failed.
    Unauthenticated,
    /// The module lacks the permission this request needs.
    Forbidden,
    /// The named node, subscription or event does not exist.
    NotFound,
    /// A limit was hit (frame size, rate, subscriptions).
    Limit,
    /// The protocol version is not supported.
    Unsupported,
    /// The core failed; see its log.
    Internal,
    /// The node did not answer in time.
    Timeout,
}

impl ModuleRequest {
    /// The request id, for error replies.
    pub fn id(&self) -> Option<u64> {
        match self {
            ModuleRequest::Subscribe { id, .. }
            | ModuleRequest::Unsubscribe { id }
            | ModuleRequest::Query { id, .. }
            | ModuleRequest::Command { id, .. }
            | ModuleRequest::Alert { id, .. }
            | ModuleRequest::Enrich { id, .. }
            | ModuleRequest::Annotate { id, .. }
            | ModuleRequest::Ping { id } => Some(*id),
            ModuleRequest::Hello { .. } | ModuleRequest::Log { .. } => None,
        }
    }
}

/// Encodes a message as one frame: u32 big-endian length, then JSON.
pub fn encode_json<T: Serialize>(msg: &T) -> Result<Vec<u8>, crate::EncodeError> {
    let mut out = vec![0u8; 4];
    serde_json::to_writer(&mut out, msg)
        .map_err(|e| crate::EncodeError::Serialize(e.to_string()))?;
    let body = out.len() - 4;
    if body > MAX_MODULE_FRAME as usize {
        return Err(crate::EncodeError::TooLarge {
            len: body,
            max: MAX_MODULE_FRAME,
        });
    }
    out[..4].copy_from_slice(&(body as u32).to_be_bytes());
    Ok(out)
}

/// Decodes one JSON frame body.
pub fn decode_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, crate::DecodeError> {
    serde_json::from_slice(body).map_err(|e| crate::DecodeError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape_is_what_protocol_md_says() {
        let hello: ModuleRequest = serde_json::from_str(
            r#"{"type":"hello","name":"geo","version":"1.0","protocol":1,"credential":"hbm1.x","permissions":["events:read","enrich:write"]}"#,
        )
        .unwrap();
        assert!(matches!(hello, ModuleRequest::Hello { ref name, .. } if name == "geo"));
        let sub: ModuleRequest = serde_json::from_str(
            r#"{"type":"subscribe","id":1,"filter":{"kinds":["auth_attempt"],"labels":{"site":"paris"},"sources":["10.0.0.0/8"]}}"#,
        )
        .unwrap();
        assert_eq!(sub.id(), Some(1));
        let err = ModuleMessage::Error {
            id: Some(3),
            code: ErrorCode::Forbidden,
            message: "no".into(),
        };
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"type":"error","id":3,"code":"forbidden","message":"no"}"#
        );
        assert!(serde_json::from_str::<ModuleRequest>(r#"{"type":"hello","bogus":1}"#).is_err());
        assert_eq!(
            Permission::parse("nodes:command"),
            Some(Permission::NodesCommand)
        );
    }

    #[test]
    fn frames_round_trip_and_cap() {
        let f = encode_json(&ModuleRequest::Ping { id: 9 }).unwrap();
        let len = u32::from_be_bytes([f[0], f[1], f[2], f[3]]) as usize;
        assert_eq!(len, f.len() - 4);
        let back: ModuleRequest = decode_json(&f[4..]).unwrap();
        assert_eq!(back, ModuleRequest::Ping { id: 9 });
        let big = ModuleRequest::Log {
            level: "info".into(),
            message: "x".repeat(MAX_MODULE_FRAME as usize),
        };
        assert!(encode_json(&big).is_err());
    }
}
