//! JSON views of what the core answers, in the shapes `API.md` promises.

use honeybee_proto::admin::{AlertInfo, CaptureInfo, NodeInfo, StoredEvent, TokenInfo};
use serde_json::{Map, Value, json};

fn labels(l: &[(String, String)]) -> Value {
    Value::Object(
        l.iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect::<Map<_, _>>(),
    )
}

/// `full`, `extension` or `relay`: what the node said in its hello while online, else
/// inferred from its role and services.
fn mode(n: &NodeInfo) -> &'static str {
    use honeybee_proto::control::NodeMode;
    match n.mode {
        Some(NodeMode::Full) => return "full",
        Some(NodeMode::Extension) => return "extension",
        Some(NodeMode::Relay) => return "relay",
        _ => {}
    }
    if n.role == honeybee_proto::Role::Relay {
        return "relay";
    }
    match &n.health {
        Some(h) if !h.services.is_empty() && h.services.iter().all(|s| s.kind == "extension") => {
            "extension"
        }
        _ => "full",
    }
}

pub fn node(n: &NodeInfo) -> Value {
    json!({
        "id": n.id.as_str(),
        "name": n.name,
        "role": n.role.as_str(),
        "mode": mode(n),
        // The agent version the node reported in its hello; null while offline.
        "version": n.agent_version,
        "online": n.online,
        "revoked": n.revoked,
        "last_seen_ms": n.last_seen_ms,
        "first_seen_ms": n.first_seen_ms,
        "cert_not_after_ms": n.cert_not_after_ms,
        "addr": n.addr,
        // The relay of the live connection, else the one the node is assigned to.
        "via": n.via.as_ref().or(n.relay.as_ref()).map(|r| r.as_str()),
        "labels": labels(&n.labels),
        "health": n.health.as_ref().map(|h| serde_json::to_value(h).unwrap_or(Value::Null)),
        // Several cores: the core holding the live connection. (Not the health's age:
        // it changes with every poll, and the live feed sends a node only when its view
        // changes; `last_seen_ms` dates a node's stored health.)
        "core": n.core,
    })
}

/// A node with the core's health assessment merged in: `state` (healthy / degraded /
/// offline), `services_up` of `services_total`, `spool_dropped` (since the last report),
/// `last_event_ms`, `problems`. Without an assessment the state follows `online`.
pub fn node_with_health(n: &NodeInfo, health: &[honeybee_proto::admin::NodeHealthInfo]) -> Value {
    let mut v = node(n);
    let h = health.iter().find(|h| h.node == n.id);
    if let Value::Object(o) = &mut v {
        let state = match h {
            Some(h) => h.state.as_str(),
            None if n.online => "healthy",
            None => "offline",
        };
        o.insert("state".into(), state.into());
        o.insert("services_up".into(), h.map_or(0, |h| h.services_up).into());
        o.insert(
            "services_total".into(),
            h.map_or(0, |h| h.services_total).into(),
        );
        o.insert(
            "spool_dropped".into(),
            h.map_or(0, |h| h.spool_dropped).into(),
        );
        o.insert(
            "last_event_ms".into(),
            h.and_then(|h| h.last_event_ms).into(),
        );
        o.insert(
            "problems".into(),
            h.map(|h| h.problems.clone()).unwrap_or_default().into(),
        );
    }
    v
}

/// The `@timestamp` of an event document as ms since the epoch.
fn timestamp_ms(doc: &Value) -> Option<i64> {
    let t = humantime::parse_rfc3339(doc.get("@timestamp")?.as_str()?).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64)
}

/// An event document (the core's ECS JSON) with `event.time_ms` added.
pub fn with_time_ms(mut doc: Value) -> Value {
    if let Some(ms) = timestamp_ms(&doc)
        && let Some(Value::Object(ev)) = doc.get_mut("event")
    {
        ev.insert("time_ms".into(), ms.into());
    }
    doc
}

pub fn event(e: &StoredEvent) -> Value {
    let mut doc = honeybee_core::json::event_json(e);
    if let Some(Value::Object(ev)) = doc.get_mut("event") {
        ev.insert("time_ms".into(), e.event.time_ms.into());
    }
    doc
}

pub fn alert(a: &AlertInfo) -> Value {
    json!({
        "id": a.id, "time_ms": a.time_ms, "module": a.module, "severity": a.severity,
        "title": a.title, "body": a.body, "node": a.node, "seq": a.seq,
        "acked_ms": a.acked_ms, "acked_by": a.acked_by,
    })
}

pub fn token(t: &TokenInfo) -> Value {
    json!({
        "id": t.id.to_hex(), "role": t.role.as_str(), "name": t.name,
        "labels": labels(&t.labels), "created_ms": t.created_ms, "expires_ms": t.expires_ms,
        "uses_total": t.uses_total, "uses_left": t.uses_left, "revoked": t.revoked,
    })
}

pub fn capture(c: &CaptureInfo) -> Value {
    json!({
        "sha256": hex::encode(c.sha256), "size": c.size, "kind": c.kind,
        "node": c.node.as_str(), "service": c.service,
        "session": c.session.map(|s| s.to_hex()), "time_ms": c.time_ms,
        "meta": labels(&c.meta),
    })
}
