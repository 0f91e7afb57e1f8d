//! The one way a service reports what it saw: an [`EventSink`] in front of the disk spool.

use honeybee_proto::event::EventKind;
use honeybee_proto::ids::SessionId;
use std::net::SocketAddr;
use tokio::sync::mpsc;

/// An event as a service produces it; the spool gives it a sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub time_ms: i64,
    pub service: String,
    pub session: Option<SessionId>,
    pub src: Option<SocketAddr>,
    pub dst: Option<SocketAddr>,
    pub kind: EventKind,
}

impl NewEvent {
    /// An event stamped with the current time.
    pub fn now(
        service: &str,
        session: Option<SessionId>,
        src: Option<SocketAddr>,
        dst: Option<SocketAddr>,
        kind: EventKind,
    ) -> Self {
        NewEvent {
            time_ms: now_ms(),
            service: service.to_owned(),
            session,
            src,
            dst,
            kind,
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A fresh random session id.
pub fn new_session_id() -> SessionId {
    SessionId(rand::random())
}

/// Cloneable handle services use to report events. Bounded: when the spool writer falls
/// behind, `emit` waits, which slows the attacker's session rather than losing events.
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: mpsc::Sender<NewEvent>,
}

impl EventSink {
    /// A sink and the receiver the spool writer drains.
    pub fn channel(capacity: usize) -> (EventSink, mpsc::Receiver<NewEvent>) {
        let (tx, rx) = mpsc::channel(capacity);
        (EventSink { tx }, rx)
    }

    /// Reports an event. Only fails once the agent is shutting down.
    pub async fn emit(&self, event: NewEvent) {
        if self.tx.send(event).await.is_err() {
            tracing::debug!("event dropped: agent is shutting down");
        }
    }
}
