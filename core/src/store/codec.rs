//! What every backend stores the same way: an event's indexed and searchable columns
//! (derived once, at insert, so search and analytics are plain SQL on any engine), the
//! postcard and JSON encodings of typed values, and the geo columns of an enrichment.

use super::StoreError;
use super::analytics::searchable_text;
use honeybee_proto::admin::StoredEvent;
use honeybee_proto::event::{Event, EventKind};
use honeybee_proto::{NodeId, Role};

/// An event prepared for insertion: indexed and searchable columns plus its postcard body.
pub(crate) struct EventRow {
    pub seq: i64,
    pub time_ms: i64,
    pub service: String,
    pub kind: &'static str,
    pub src_ip: Option<String>,
    pub src_port: Option<u16>,
    pub session: Option<String>,
    pub username: Option<String>,
    /// The password of an `auth_attempt`, for the top-credentials list.
    pub password: Option<String>,
    /// The line of a `command`, for the top-commands lists.
    pub command: Option<String>,
    /// [`searchable_text`]: what free-text search looks in, lower-cased.
    pub search_text: String,
    pub body: Vec<u8>,
}

/// What a derived text column holds instead of a NUL: PostgreSQL's `text` cannot hold
/// NUL at all (the whole statement fails, and a batch an agent resends would fail every
/// time, so one hostile byte in a username would stall the node's telemetry), so both
/// backends store U+2400 SYMBOL FOR NULL in the searchable columns and answer alike. The
/// postcard body keeps the exact bytes.
pub(crate) const NUL_SHOWN_AS: char = '\u{2400}';

/// `s` fit for a text column on every backend (see [`NUL_SHOWN_AS`]).
pub(crate) fn text_col(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', &NUL_SHOWN_AS.to_string())
    } else {
        s
    }
}

impl EventRow {
    pub fn new(ev: Event) -> Result<EventRow, StoreError> {
        let body = encode("event", &ev)?;
        let search_text = text_col(searchable_text(&ev));
        let kind = ev.kind.name();
        let Event {
            seq,
            time_ms,
            service,
            session,
            src,
            kind: event_kind,
            ..
        } = ev;
        let (username, password, command) = match event_kind {
            EventKind::AuthAttempt(a) => (Some(a.username), a.password, None),
            EventKind::Command { line } => (None, None, Some(line)),
            _ => (None, None, None),
        };
        Ok(EventRow {
            seq: i64::try_from(seq).map_err(|_| StoreError::SeqOutOfRange(seq))?,
            time_ms,
            service: text_col(service),
            kind,
            src_ip: src.map(|a| a.ip().to_string()),
            src_port: src.map(|a| a.port()),
            session: session.map(|s| hex::encode(s.0)),
            username: username.map(text_col),
            password: password.map(text_col),
            command: command.map(text_col),
            search_text,
            body,
        })
    }
}

/// The geo columns of an enrichment (country, latitude, longitude), read from its JSON
/// object's flat keys as the GeoIP module writes them. Anything else is `None`.
pub(crate) fn enrichment_geo(data_json: &str) -> (Option<String>, Option<f64>, Option<f64>) {
    let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(data_json)
    else {
        return (None, None, None);
    };
    let country = match m.get("source.geo.country_iso_code") {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    };
    let num = |k: &str| m.get(k).and_then(serde_json::Value::as_f64);
    (
        country,
        num("source.geo.location.lat"),
        num("source.geo.location.lon"),
    )
}

pub(crate) fn corrupt(
    what: &'static str,
    key: impl Into<String>,
    why: impl ToString,
) -> StoreError {
    StoreError::Corrupt {
        what,
        key: key.into(),
        why: why.to_string(),
    }
}

/// Adds a decoded row to a list, or skips it with a warning if it does not decode: one bad
/// row must not hide all the others. Database errors still fail the whole read.
pub(crate) fn push_or_skip<T>(
    out: &mut Vec<T>,
    item: Result<T, StoreError>,
) -> Result<(), StoreError> {
    match item {
        Ok(v) => out.push(v),
        Err(e @ StoreError::Corrupt { .. }) => {
            tracing::warn!(error = %e, "skipping unreadable stored row");
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

pub(crate) fn encode<T: serde::Serialize>(
    what: &'static str,
    v: &T,
) -> Result<Vec<u8>, StoreError> {
    postcard::to_allocvec(v).map_err(|e| StoreError::Encode {
        what,
        why: e.to_string(),
    })
}

pub(crate) fn labels_to_json(labels: &[(String, String)]) -> Result<String, StoreError> {
    serde_json::to_string(labels).map_err(|e| StoreError::Encode {
        what: "labels",
        why: e.to_string(),
    })
}

pub(crate) fn labels_from_json(
    what: &'static str,
    key: &str,
    s: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    serde_json::from_str(s).map_err(|e| corrupt(what, key, format!("labels: {e}")))
}

/// Compares secret hashes in time independent of where they differ.
pub(crate) fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A stored event from its columns; `Corrupt` if the body or node id does not decode.
pub(crate) fn stored_event(
    node: String,
    received_ms: i64,
    body: &[u8],
    id: i64,
) -> Result<StoredEvent, StoreError> {
    let node = NodeId::new(node.clone()).map_err(|e| corrupt("event", node, e))?;
    let event: Event =
        postcard::from_bytes(body).map_err(|e| corrupt("event", id.to_string(), e))?;
    Ok(StoredEvent {
        node,
        received_ms,
        event,
        enrichments: Vec::new(),
    })
}

pub(crate) fn role_col(what: &'static str, key: &str, s: &str) -> Result<Role, StoreError> {
    s.parse().map_err(|e| corrupt(what, key, e))
}
