//! JSON and one-line text views of stored events for the CLI, with Elastic Common Schema
//! field names where ECS has one (`source.ip`, `user.name`, `event.action`, …), and the
//! JSON views of nodes and audit rows (`honeybee nodes --json`, `honeybee audit --json`;
//! the end-to-end tests read the same documents through an in-process admin client).

use honeybee_proto::admin::{AuditEntry, NodeHealthInfo, NodeInfo, StoredEvent};
use honeybee_proto::control::NodeMode;
use honeybee_proto::event::EventKind;
use serde_json::{Map, Value, json};
use std::time::{Duration, UNIX_EPOCH};

/// RFC 3339 UTC time with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

fn addr(a: Option<std::net::SocketAddr>) -> Value {
    match a {
        Some(a) => json!({"ip": a.ip().to_string(), "port": a.port()}),
        None => Value::Null,
    }
}

/// The JSON document for one event, with the store's row id as `event.id` (ECS keyword,
/// so a decimal string): the cursor live readers resume from (`events_after`).
pub fn event_json_with_id(e: &StoredEvent, id: i64) -> Value {
    let mut doc = event_json(e);
    if let Some(ev) = doc.get_mut("event").and_then(Value::as_object_mut) {
        ev.insert("id".into(), Value::String(id.to_string()));
    }
    doc
}

/// The JSON document for one event.
pub fn event_json(e: &StoredEvent) -> Value {
    let ev = &e.event;
    let mut doc = Map::new();
    doc.insert("@timestamp".into(), rfc3339(ev.time_ms).into());
    doc.insert(
        "event".into(),
        json!({"action": ev.kind.name(), "sequence": ev.seq, "ingested": rfc3339(e.received_ms)}),
    );
    doc.insert("observer".into(), json!({"name": e.node.as_str()}));
    doc.insert("service".into(), json!({"name": ev.service}));
    if let Some(s) = ev.session {
        doc.insert("session".into(), json!({"id": s.to_hex()}));
    }
    doc.insert("source".into(), addr(ev.src));
    doc.insert("destination".into(), addr(ev.dst));
    let detail = match &ev.kind {
        EventKind::AuthAttempt(a) => {
            doc.insert("user".into(), json!({"name": a.username}));
            json!({
                "method": a.method.name(),
                "password": a.password,
                "key_fingerprint": a.key_fingerprint,
                "key_algorithm": a.key_algorithm,
                "client_version": a.client_version,
                "success": a.success,
            })
        }
        EventKind::Command { line } => {
            doc.insert("process".into(), json!({"command_line": line}));
            Value::Null
        }
        EventKind::Data { bytes, truncated } => json!({
            "data_hex": hex::encode(bytes),
            "data_text": String::from_utf8_lossy(bytes),
            "truncated": truncated,
        }),
        EventKind::Disconnect {
            duration_ms,
            bytes_in,
            bytes_out,
        } => json!({"duration_ms": duration_ms, "bytes_in": bytes_in, "bytes_out": bytes_out}),
        EventKind::LimitReached { limit, detail } => json!({"limit": limit, "detail": detail}),
        EventKind::ServiceError { message } => json!({"error": message}),
        EventKind::ScanDetected {
            ports,
            count,
            duration_ms,
            distinct_ports,
        } => json!({"scan": {
            "scope": "node",
            "ports": ports,
            "count": count,
            "duration_ms": duration_ms,
            "distinct_ports": distinct_ports,
        }}),
        EventKind::HttpRequest(r) => {
            let headers: Map<String, Value> = r
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.clone())))
                .collect();
            doc.insert(
                "http".into(),
                json!({
                    "version": r.version,
                    "request": {
                        "method": r.method,
                        "headers": headers,
                        "body": {
                            "content": String::from_utf8_lossy(&r.body),
                            "truncated": r.body_truncated,
                        },
                    },
                    "response": {"status_code": r.status},
                }),
            );
            doc.insert("url".into(), json!({"path": r.path, "query": r.query}));
            if let Some(ua) = &r.user_agent {
                doc.insert("user_agent".into(), json!({"original": ua}));
            }
            Value::Null
        }
        EventKind::Capture {
            kind,
            sha256,
            size,
            name,
        } => {
            doc.insert(
                "file".into(),
                json!({"hash": {"sha256": sha256}, "size": size, "name": name}),
            );
            json!({"capture": {"kind": kind}})
        }
        EventKind::Download { url, tool } => {
            doc.insert("url".into(), json!({"original": url}));
            json!({"download": {"tool": tool}})
        }
        EventKind::NetworkScanDetected {
            nodes,
            ports,
            count,
            duration_ms,
            distinct_nodes,
            distinct_ports,
        } => json!({"scan": {
            "scope": "network",
            "nodes": nodes,
            "ports": ports,
            "count": count,
            "duration_ms": duration_ms,
            "distinct_nodes": distinct_nodes,
            "distinct_ports": distinct_ports,
        }}),
        EventKind::PoisoningDetected(a) | EventKind::NetworkAnomaly(a) => json!({"network": {
            "what": a.what,
            "ip": a.ip.map(|ip| ip.to_string()),
            "macs": a.macs,
            "expected": a.expected,
            "count": a.count,
            "duration_ms": a.duration_ms,
            "detail": a.detail,
        }}),
        EventKind::DeviceLog(l) => {
            doc.insert(
                "log".into(),
                json!({"syslog": {
                    "facility": {"code": l.facility},
                    "severity": {"code": l.severity},
                    "hostname": l.hostname,
                    "appname": l.app,
                    "procid": l.procid,
                    "msgid": l.msgid,
                    "structured_data": l.structured_data,
                    "version": if l.format == "rfc5424" { Some("1") } else { None },
                }}),
            );
            doc.insert("message".into(), json!(l.message));
            json!({"device": {
                "name": l.device,
                "transport": l.transport,
                "format": l.format,
                "timestamp": l.timestamp,
                "truncated": l.truncated,
            }})
        }
        EventKind::DeviceTrap(t) => json!({"device": {"name": t.device}, "snmp": {
            "version": t.version,
            "trap_oid": t.trap_oid,
            "agent_addr": t.agent_addr.map(|a| a.to_string()),
            "varbinds": t.varbinds.iter().map(|(k, v)| json!({"oid": k, "value": v})).collect::<Vec<_>>(),
            "inform": t.inform,
        }}),
        EventKind::HoneyCredentialsOffered(o) => json!({"honey_credentials": {
            "protocol": o.protocol,
            "username": o.username,
            "domain": o.domain,
            "password": o.password,
            "responder": o.responder.to_string(),
            "honey_name": o.honey_name,
            "outcome": o.outcome,
        }}),
        EventKind::HoneyCredentialUsed(u) => json!({"honey_credentials": {
            "username": u.username,
            "domain": u.domain,
            "offered_by": u.offered_by,
            "offered_at_ms": u.offered_at_ms,
            "responder": u.responder.to_string(),
            "used_on_node": u.node,
            "used_on_service": u.service,
            "success": u.success,
        }}),
        _ => Value::Null,
    };
    if !detail.is_null() {
        doc.insert("honeybee".into(), detail);
    }
    let mut doc = Value::Object(doc);
    merge_enrichments(&mut doc, e);
    doc
}

/// Puts what modules attached into the document: `enrich` data under its dotted ECS keys
/// (`source.geo.country_iso_code` → `source.geo.country_iso_code`), annotations in a list.
fn merge_enrichments(doc: &mut Value, e: &StoredEvent) {
    let mut notes = Vec::new();
    for en in &e.enrichments {
        let Ok(Value::Object(data)) = serde_json::from_str::<Value>(&en.data) else {
            continue;
        };
        if en.kind == "annotation" {
            notes.push(json!({"module": en.module, "text": data.get("text").cloned().unwrap_or(Value::Null)}));
            continue;
        }
        for (key, value) in data {
            set_path(doc, &key, value);
        }
    }
    if !notes.is_empty() {
        set_path(doc, "honeybee.annotations", Value::Array(notes));
    }
}

fn set_path(doc: &mut Value, dotted: &str, value: Value) {
    let mut cur = doc;
    let parts: Vec<&str> = dotted.split('.').filter(|p| !p.is_empty()).collect();
    let Some((last, path)) = parts.split_last() else {
        return;
    };
    for p in path {
        if !cur.get(*p).is_some_and(Value::is_object) {
            if let Value::Object(m) = cur {
                m.insert((*p).to_owned(), Value::Object(Map::new()));
            } else {
                return;
            }
        }
        cur = match cur.get_mut(*p) {
            Some(next) => next,
            None => return,
        };
    }
    if let Value::Object(m) = cur {
        m.insert((*last).to_owned(), value);
    }
}

/// One human-readable line for one event.
pub fn event_line(e: &StoredEvent) -> String {
    let ev = &e.event;
    let src = ev.src.map(|a| a.to_string()).unwrap_or_else(|| "-".into());
    let what = match &ev.kind {
        EventKind::AuthAttempt(a) => {
            let cred = match (&a.password, &a.key_fingerprint) {
                (Some(p), _) => format!("password={p:?}"),
                (None, Some(k)) => format!("key={k}"),
                _ => String::new(),
            };
            let outcome = if a.success { "accepted" } else { "failed" };
            format!(
                "user={:?} {cred} ({}, {outcome})",
                a.username,
                a.method.name()
            )
        }
        EventKind::Command { line } => format!("cmd={line:?}"),
        EventKind::Data { bytes, truncated } => format!(
            "data={:?}{}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(80)]),
            if *truncated { " (truncated)" } else { "" }
        ),
        EventKind::Disconnect {
            duration_ms,
            bytes_in,
            bytes_out,
        } => format!("after {duration_ms} ms, {bytes_in} B in, {bytes_out} B out"),
        EventKind::LimitReached { limit, detail } => format!("{limit}: {detail}"),
        EventKind::ServiceError { message } => message.clone(),
        EventKind::ScanDetected {
            ports,
            count,
            duration_ms,
            distinct_ports,
        } => {
            let shown: Vec<String> = ports.iter().take(20).map(u16::to_string).collect();
            let more = if ports.len() > 20 { ",…" } else { "" };
            format!(
                "{distinct_ports} ports [{}{more}] in {count} connections over {duration_ms} ms",
                shown.join(",")
            )
        }
        EventKind::HttpRequest(r) => {
            let q = r
                .query
                .as_deref()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            format!("{} {}{q} -> {}", r.method, r.path, r.status)
        }
        EventKind::Capture {
            kind,
            sha256,
            size,
            name,
        } => format!(
            "{kind} {sha256} ({size} B){}",
            name.as_deref()
                .map(|n| format!(" {n:?}"))
                .unwrap_or_default()
        ),
        EventKind::Download { url, tool } => format!("{tool} {url:?} (not fetched)"),
        EventKind::NetworkScanDetected {
            nodes,
            ports,
            count,
            duration_ms,
            ..
        } => {
            let shown: Vec<String> = ports.iter().take(20).map(u16::to_string).collect();
            let more = if ports.len() > 20 { ",…" } else { "" };
            format!(
                "network scan of {} nodes [{}] ports [{}{more}] in {count} probes over {duration_ms} ms",
                nodes.len(),
                nodes.join(","),
                shown.join(",")
            )
        }
        EventKind::PoisoningDetected(a) | EventKind::NetworkAnomaly(a) => {
            let ip = a.ip.map(|ip| ip.to_string()).unwrap_or_else(|| "-".into());
            let expected = a
                .expected
                .as_deref()
                .map(|x| format!(" (expected {x})"))
                .unwrap_or_default();
            format!(
                "{} {ip} macs [{}]{expected} x{} over {} ms: {}",
                a.what,
                a.macs.join(","),
                a.count,
                a.duration_ms,
                a.detail
            )
        }
        EventKind::DeviceLog(l) => format!(
            "device {} {} <{}.{}> {}{}{:?}{}",
            l.device,
            l.transport,
            l.facility,
            l.severity,
            l.hostname
                .as_deref()
                .map(|h| format!("{h} "))
                .unwrap_or_default(),
            l.app
                .as_deref()
                .map(|a| format!("{a}: "))
                .unwrap_or_default(),
            l.message,
            if l.truncated { " (truncated)" } else { "" }
        ),
        EventKind::DeviceTrap(t) => {
            let vbs: Vec<String> = t
                .varbinds
                .iter()
                .take(8)
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect();
            format!(
                "device {} snmpv{} {}{} [{}]",
                t.device,
                t.version,
                if t.inform { "inform " } else { "trap " },
                t.trap_oid,
                vbs.join(" ")
            )
        }
        EventKind::HoneyCredentialsOffered(o) => format!(
            "honey-credentials {}\\{} offered to {} ({} answered {}): {}",
            o.domain, o.username, o.responder, o.protocol, o.honey_name, o.outcome
        ),
        EventKind::HoneyCredentialUsed(u) => format!(
            "honey-credentials {}\\{} used on {}/{}{}: offered by {} to poisoner {}",
            u.domain,
            u.username,
            u.node,
            u.service,
            if u.success { " (let in)" } else { "" },
            u.offered_by,
            u.responder
        ),
        _ => String::new(),
    };
    let mut what = what;
    for en in &e.enrichments {
        if let Ok(Value::Object(data)) = serde_json::from_str::<Value>(&en.data) {
            let facts: Vec<String> = data
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        k.rsplit('.').next().unwrap_or(k),
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string())
                    )
                })
                .collect();
            what.push_str(&format!(" [{}]", facts.join(" ")));
        }
    }
    format!(
        "{} {} {} {} {} {}",
        rfc3339(ev.time_ms),
        e.node,
        ev.service,
        ev.kind.name(),
        src,
        what
    )
}

/// A node mode's name as the CLI shows it.
pub fn mode_name(mode: NodeMode) -> &'static str {
    match mode {
        NodeMode::Full => "full",
        NodeMode::Extension => "extension",
        NodeMode::Relay => "relay",
        _ => "other",
    }
}

/// The JSON document for one node, with the core's health assessment when there is one
/// (`state`, `services_up`, …; an older core without that answer leaves them out).
pub fn node_json(n: &NodeInfo, assessed: Option<&NodeHealthInfo>) -> Value {
    let mut v = json!({
        "id": n.id.as_str(), "name": n.name, "role": n.role.as_str(), "labels": n.labels,
        "serial": n.serial.to_hex(), "cert_not_after": rfc3339(n.cert_not_after_ms),
        "first_seen": rfc3339(n.first_seen_ms), "last_seen": rfc3339(n.last_seen_ms),
        "addr": n.addr, "online": n.online, "revoked": n.revoked,
        "mode": n.mode.map(mode_name), "via": n.via.as_ref().map(|v| v.as_str()),
        "version": n.agent_version,
        "relay": n.relay.as_ref().map(|r| r.as_str()),
        "core": n.core, "health_age_ms": n.health_age_ms,
        "health": n.health.as_ref().map(|h| json!({
            "uptime_s": h.uptime_s, "cpu_percent": h.cpu_percent, "rss_bytes": h.rss_bytes,
            "spool_depth": h.spool_depth, "spool_dropped": h.spool_dropped,
            "services": h.services.iter().map(|s| json!({"name": s.name, "kind": s.kind, "listen": s.listen,
                "running": s.running, "error": s.error, "active_sessions": s.active_sessions})).collect::<Vec<_>>(),
        })),
    });
    if let (Some(h), Some(o)) = (assessed, v.as_object_mut()) {
        o.insert("state".into(), json!(h.state.as_str()));
        o.insert("services_up".into(), json!(h.services_up));
        o.insert("services_total".into(), json!(h.services_total));
        o.insert("spool_dropped".into(), json!(h.spool_dropped));
        o.insert("last_event".into(), json!(h.last_event_ms.map(rfc3339)));
        o.insert("problems".into(), json!(h.problems));
    }
    v
}

/// The JSON object for one aggregated device (`honeybee nodes --json`, under its node).
pub fn device_json(d: &honeybee_proto::admin::DeviceInfo) -> Value {
    json!({"name": d.name, "address": d.address, "kind": d.kind, "service": d.service,
           "node": d.node.as_str(), "last_seen": d.last_seen_ms.map(rfc3339), "events": d.events})
}

/// The JSON document for one audit row.
pub fn audit_json(a: &AuditEntry) -> Value {
    json!({"@timestamp": rfc3339(a.time_ms), "actor": a.actor, "action": a.action,
           "outcome": a.outcome, "source": a.source, "detail": a.detail})
}

#[cfg(test)]
mod tests {
    use super::*;
    use honeybee_proto::event::{Event, NetworkAlert};
    use honeybee_proto::ids::NodeId;

    fn stored(kind: EventKind) -> StoredEvent {
        StoredEvent {
            node: NodeId::new("office-1").unwrap(),
            received_ms: 1_700_000_000_000,
            event: Event {
                seq: 7,
                time_ms: 1_700_000_000_000,
                service: "office-watch".into(),
                session: None,
                src: Some("10.77.0.1:0".parse().unwrap()),
                dst: None,
                kind,
            },
            enrichments: Vec::new(),
        }
    }

    fn spoof() -> NetworkAlert {
        NetworkAlert {
            what: "arp_spoof".into(),
            ip: Some("10.77.0.1".parse().unwrap()),
            macs: vec!["02:00:00:00:00:66".into()],
            expected: Some("02:00:00:00:00:01".into()),
            count: 500,
            duration_ms: 1200,
            detail: "gateway claimed".into(),
        }
    }

    /// The detectors' incidents show their facts in `honeybee events` and `--json`, not
    /// only their action name.
    #[test]
    fn network_incidents_have_their_facts_in_both_views() {
        let e = stored(EventKind::NetworkAnomaly(spoof()));
        let doc = event_json(&e);
        assert_eq!(doc["event"]["action"], "network_anomaly");
        assert_eq!(doc["honeybee"]["network"]["what"], "arp_spoof");
        assert_eq!(doc["honeybee"]["network"]["ip"], "10.77.0.1");
        assert_eq!(doc["honeybee"]["network"]["count"], 500);
        assert_eq!(doc["honeybee"]["network"]["expected"], "02:00:00:00:00:01");
        let line = event_line(&e);
        assert!(
            line.contains(
                "arp_spoof 10.77.0.1 macs [02:00:00:00:00:66] (expected 02:00:00:00:00:01) x500 over 1200 ms: gateway claimed"
            ),
            "{line}"
        );
        let mut poison = spoof();
        poison.what = "llmnr".into();
        poison.expected = None;
        let doc = event_json(&stored(EventKind::PoisoningDetected(poison)));
        assert_eq!(doc["event"]["action"], "poisoning_detected");
        assert_eq!(doc["honeybee"]["network"]["what"], "llmnr");
        assert!(doc["honeybee"]["network"]["expected"].is_null());
    }

    /// A device's syslog line and trap show the device and what it said in both views; a
    /// message with control characters is escaped in the text line.
    #[test]
    fn device_events_name_the_device_in_both_views() {
        use honeybee_proto::event::{DeviceLog, DeviceTrap};
        let e = stored(EventKind::DeviceLog(DeviceLog {
            device: "printer-3f".into(),
            transport: "udp".into(),
            format: "rfc3164".into(),
            facility: 3,
            severity: 4,
            timestamp: Some("Dec  7 06:40:01".into()),
            hostname: Some("prn".into()),
            app: Some("lpd".into()),
            procid: None,
            msgid: None,
            structured_data: None,
            message: "paper jam\x1b[2J".into(),
            truncated: false,
        }));
        let doc = event_json(&e);
        assert_eq!(doc["event"]["action"], "device_log");
        assert_eq!(doc["honeybee"]["device"]["name"], "printer-3f");
        assert_eq!(doc["log"]["syslog"]["severity"]["code"], 4);
        assert_eq!(doc["log"]["syslog"]["appname"], "lpd");
        assert_eq!(doc["message"], "paper jam\x1b[2J");
        let line = event_line(&e);
        assert!(
            line.contains(r#"device printer-3f udp <3.4> prn lpd: "paper jam\u{1b}[2J""#),
            "{line}"
        );
        let t = stored(EventKind::DeviceTrap(DeviceTrap {
            device: "ups".into(),
            version: 2,
            trap_oid: "1.3.6.1.6.3.1.1.5.3".into(),
            agent_addr: None,
            varbinds: vec![("1.3.6.1.2.1.1.5.0".into(), "ups-1".into())],
            inform: false,
        }));
        let doc = event_json(&t);
        assert_eq!(doc["honeybee"]["device"]["name"], "ups");
        assert_eq!(doc["honeybee"]["snmp"]["trap_oid"], "1.3.6.1.6.3.1.1.5.3");
        assert_eq!(doc["honeybee"]["snmp"]["varbinds"][0]["value"], "ups-1");
        let line = event_line(&t);
        assert!(
            line.contains(
                r#"device ups snmpv2 trap 1.3.6.1.6.3.1.1.5.3 [1.3.6.1.2.1.1.5.0="ups-1"]"#
            ),
            "{line}"
        );
    }
}
