//! The agent↔core session as sans-IO state machines, as quinn-proto is to quinn: no
//! tokio, no sockets, no clock. The drivers (`honeybee-agent`'s `runtime.rs`, the core's
//! `node.rs` and `ingest.rs`) read frames, write frames and sleep; the decisions are made
//! here, so tests drive both sides on virtual time (netsim's `tests/session.rs`).
//!
//! Time is a [`Duration`] since any epoch the driver likes (the connection's start, or a
//! virtual clock); deadlines come back on the same scale.
//!
//! - [`AgentSession`]: hello sent → awaiting welcome (handshake deadline) → established
//!   (the telemetry window of [`WINDOW_BATCHES`] batches in flight, the acknowledgement
//!   stall) → closed, with the reason the agent logs.
//! - [`CoreSession`]: the hello (first control message, never twice), the welcome's
//!   `last_seq`, and what to do with one telemetry batch. Deduplication itself is by
//!   `(node, seq)` in the store, event by event; a batch whose events are all stored is
//!   acknowledged again and stores nothing.

use crate::WIRE_VERSION;
use crate::event::{EventBatch, MAX_BATCH_EVENTS};
use crate::timing::Timing;
use std::collections::VecDeque;
use std::time::Duration;

/// Events per telemetry batch the agent reads from its spool.
pub const BATCH_EVENTS: usize = 512;
/// Batches sent and not yet acknowledged before the agent waits.
pub const WINDOW_BATCHES: usize = 32;

/// Where an agent's session stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    /// Hello sent; the welcome is due by the handshake deadline.
    AwaitingWelcome,
    /// Welcomed: telemetry flows.
    Established,
    /// Over; the reason is what the agent logs as it reconnects.
    Closed(String),
}

/// The agent's side of one connection.
#[derive(Debug, Clone)]
pub struct AgentSession {
    state: AgentState,
    ack_stall: Duration,
    /// When the welcome is due (while awaiting it).
    welcome_due: Duration,
    handshake_deadline: Duration,
    window: usize,
    /// The sequence ranges of the batches sent and not yet acknowledged, oldest first.
    in_flight: VecDeque<(u64, u64)>,
    /// The last acknowledgement, or the moment the window last became non-empty: the
    /// stall clock runs from the later of the two while something is in flight.
    last_ack: Duration,
    /// Highest sequence number sent on this connection; a new connection starts at 0
    /// and so resends everything unacknowledged (the core dedupes).
    cursor: u64,
}

impl AgentSession {
    /// A session whose hello was sent at `now`.
    pub fn new(now: Duration, timing: &Timing) -> AgentSession {
        AgentSession {
            state: AgentState::AwaitingWelcome,
            ack_stall: timing.ack_stall,
            welcome_due: now + timing.handshake_deadline,
            handshake_deadline: timing.handshake_deadline,
            window: WINDOW_BATCHES,
            in_flight: VecDeque::new(),
            last_ack: now,
            cursor: 0,
        }
    }

    /// The same with another window (tests, simulations).
    pub fn with_window(mut self, window: usize) -> AgentSession {
        self.window = window.max(1);
        self
    }

    pub fn state(&self) -> &AgentState {
        &self.state
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, AgentState::Closed(_))
    }

    /// Why the session closed, once it has.
    pub fn close_reason(&self) -> Option<&str> {
        match &self.state {
            AgentState::Closed(r) => Some(r),
            _ => None,
        }
    }

    /// Batches sent and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The welcome arrived at `now`. Returns the sequence number the spool must continue
    /// above (`Spool::ensure_after`): the core's highest stored for this node.
    pub fn on_welcome(&mut self, now: Duration, last_seq: u64) -> Option<u64> {
        if self.state != AgentState::AwaitingWelcome {
            return None;
        }
        self.state = AgentState::Established;
        self.last_ack = now;
        Some(last_seq)
    }

    /// The first message from the core was not a welcome.
    pub fn on_not_welcomed(&mut self) {
        self.close("the core did not welcome us".into());
    }

    /// The driver's own reason to end the session (a stream error, the connection lost).
    pub fn close(&mut self, reason: String) {
        if !self.is_closed() {
            self.state = AgentState::Closed(reason);
        }
    }

    /// Whether a batch may be sent now, and from where: `Some(after)` asks the driver to
    /// read up to [`BATCH_EVENTS`] events with a sequence number above `after` and send
    /// them (then [`AgentSession::on_sent`]). `None` while the window is full, before the
    /// welcome and after the close.
    pub fn poll_transmit(&self) -> Option<u64> {
        (self.state == AgentState::Established && self.in_flight.len() < self.window)
            .then_some(self.cursor)
    }

    /// A batch of the events `first..=last` was sent at `now`.
    pub fn on_sent(&mut self, now: Duration, first: u64, last: u64) {
        if self.in_flight.is_empty() {
            self.last_ack = now;
        }
        self.in_flight.push_back((first, last));
        self.cursor = self.cursor.max(last);
    }

    /// The core acknowledged `first..=last` at `now`. Returns the range the spool may
    /// drop (`Spool::ack`), which is every acknowledged range.
    ///
    /// The core acknowledges each batch once, over exactly the range it was sent with,
    /// which frees its place in the window. An acknowledgement of no batch in flight (a
    /// repeat) frees nothing: counting it would let a lost batch leave the window while
    /// its events were still unacknowledged, and the stall clock would never run for it.
    pub fn on_ack(&mut self, now: Duration, first: u64, last: u64) -> (u64, u64) {
        if let Some(i) = self.in_flight.iter().position(|r| *r == (first, last)) {
            self.in_flight.remove(i);
        }
        self.last_ack = now;
        (first, last)
    }

    /// The next deadline: the welcome's while awaiting it, the acknowledgement stall's
    /// while batches are in flight, none otherwise.
    pub fn poll_timeout(&self) -> Option<Duration> {
        match self.state {
            AgentState::AwaitingWelcome => Some(self.welcome_due),
            AgentState::Established if !self.in_flight.is_empty() => {
                Some(self.last_ack + self.ack_stall)
            }
            _ => None,
        }
    }

    /// Time has reached `now`: closes the session when a deadline has passed. Returns
    /// the reason when it closed here.
    pub fn handle_timeout(&mut self, now: Duration) -> Option<String> {
        let due = self.poll_timeout()?;
        if now < due {
            return None;
        }
        let reason = match self.state {
            AgentState::AwaitingWelcome => format!(
                "no welcome within {} ms",
                self.handshake_deadline.as_millis()
            ),
            _ => format!(
                "no acknowledgement from the core for {} ms",
                self.ack_stall.as_millis()
            ),
        };
        self.close(reason.clone());
        Some(reason)
    }
}

/// When an agent asks to renew its certificate: about 2/3 into the lifetime that runs
/// from when it was obtained, less a jitter of up to 1/15 of the lifetime taken from
/// `random`, so a fleet enrolled together does not renew together.
pub fn renew_at_ms(obtained_ms: i64, not_after_ms: i64, random: u64) -> i64 {
    let life = (not_after_ms - obtained_ms).max(1);
    let jitter = (random % (life as u64 / 15 + 1)) as i64;
    obtained_ms + life * 2 / 3 - jitter
}

/// Why the core closes a node's connection at the session level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreClose {
    /// A protocol violation (closed with the PROTOCOL code).
    Protocol(&'static str),
    /// A batch over [`MAX_BATCH_EVENTS`] (closed with the LIMIT code).
    Limit(&'static str),
    /// The agent's hello names a wire version this core does not speak (closed with the
    /// PROTOCOL code and a reason that tells the operator which side to upgrade).
    WireVersion { agent: u16 },
}

impl std::fmt::Display for CoreClose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CoreClose::Protocol(why) | CoreClose::Limit(why) => f.write_str(why),
            CoreClose::WireVersion { agent } => write!(
                f,
                "agent speaks wire version {agent}, this core speaks {WIRE_VERSION}: \
                 install the same HoneyBee release on both"
            ),
        }
    }
}

/// What the core does with one telemetry batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchDecision {
    /// Nothing in it: store nothing, acknowledge nothing.
    Empty,
    /// Store its events (the store skips any `(node, seq)` it already has), then, once
    /// committed, acknowledge `first..=last`: the smallest and largest sequence numbers
    /// in the batch, invalid and duplicate events included, since resending them would
    /// never do better.
    Commit { first: u64, last: u64 },
    /// Close the connection.
    Close(CoreClose),
}

/// The core's side of one node connection.
#[derive(Debug, Clone, Default)]
pub struct CoreSession {
    welcomed: bool,
}

impl CoreSession {
    pub fn new() -> CoreSession {
        CoreSession::default()
    }

    pub fn is_welcomed(&self) -> bool {
        self.welcomed
    }

    /// A control message arrived; `is_hello` says whether it is a hello. The first must
    /// be one and no later one may be. `Ok(true)` means: answer with a welcome carrying
    /// [`CoreSession::welcome_last_seq`].
    pub fn on_control(&mut self, is_hello: bool) -> Result<bool, CoreClose> {
        match (self.welcomed, is_hello) {
            (false, true) => {
                self.welcomed = true;
                Ok(true)
            }
            (false, false) => Err(CoreClose::Protocol("first control message must be hello")),
            (true, true) => Err(CoreClose::Protocol("hello sent twice")),
            (true, false) => Ok(false),
        }
    }

    /// The first control message was a hello naming `wire_version`: welcome it only if
    /// the agent speaks this core's version, since frames of another version would be
    /// misread rather than refused.
    pub fn on_hello(&mut self, wire_version: u16) -> Result<(), CoreClose> {
        self.on_control(true)?;
        if wire_version != WIRE_VERSION {
            self.welcomed = false;
            return Err(CoreClose::WireVersion {
                agent: wire_version,
            });
        }
        Ok(())
    }

    /// The `last_seq` of the welcome: the highest sequence number committed for the node
    /// (0 for none), so an agent whose spool was lost continues above it.
    pub fn welcome_last_seq(committed_max: Option<u64>) -> u64 {
        committed_max.unwrap_or(0)
    }

    /// What to do with a batch of events with these sequence numbers.
    pub fn on_batch(&self, seqs: impl ExactSizeIterator<Item = u64>) -> BatchDecision {
        decide_batch(seqs)
    }
}

/// [`CoreSession::on_batch`] for a decoded batch.
pub fn decide(batch: &EventBatch) -> BatchDecision {
    decide_batch(batch.events.iter().map(|e| e.seq))
}

fn decide_batch(seqs: impl ExactSizeIterator<Item = u64>) -> BatchDecision {
    if seqs.len() > MAX_BATCH_EVENTS {
        return BatchDecision::Close(CoreClose::Limit("telemetry batch has too many events"));
    }
    let mut range: Option<(u64, u64)> = None;
    for s in seqs {
        range = Some(match range {
            None => (s, s),
            Some((a, b)) => (a.min(s), b.max(s)),
        });
    }
    match range {
        None => BatchDecision::Empty,
        Some((first, last)) => BatchDecision::Commit { first, last },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn no_welcome_within_the_handshake_deadline_closes() {
        let t = Timing::default();
        let mut a = AgentSession::new(ms(0), &t);
        assert_eq!(a.poll_transmit(), None);
        assert_eq!(a.poll_timeout(), Some(t.handshake_deadline));
        assert_eq!(a.handle_timeout(t.handshake_deadline - ms(1)), None);
        assert_eq!(
            a.handle_timeout(t.handshake_deadline).as_deref(),
            Some("no welcome within 10000 ms")
        );
        assert!(a.is_closed());
        assert_eq!(a.on_welcome(ms(1), 5), None);
    }

    #[test]
    fn window_fills_and_acks_open_it() {
        let t = Timing::default();
        let mut a = AgentSession::new(ms(0), &t).with_window(2);
        assert_eq!(a.on_welcome(ms(1), 7), Some(7));
        assert_eq!(a.poll_timeout(), None, "nothing in flight: no stall clock");
        assert_eq!(a.poll_transmit(), Some(0));
        a.on_sent(ms(5), 1, 10);
        assert_eq!(a.poll_transmit(), Some(10));
        a.on_sent(ms(6), 11, 20);
        assert_eq!(a.poll_transmit(), None, "window full");
        assert_eq!(a.poll_timeout(), Some(ms(5) + t.ack_stall));
        assert_eq!(a.on_ack(ms(9), 1, 10), (1, 10));
        assert_eq!(a.poll_transmit(), Some(20));
        assert_eq!(a.poll_timeout(), Some(ms(9) + t.ack_stall));
        // A repeated acknowledgement frees no place in the window.
        a.on_sent(ms(10), 21, 30);
        a.on_ack(ms(11), 1, 10);
        assert_eq!(a.poll_transmit(), None);
        assert_eq!(a.on_ack(ms(12), 21, 30), (21, 30));
        assert_eq!(a.on_ack(ms(13), 11, 20), (11, 20));
        assert_eq!(a.in_flight(), 0);
        assert_eq!(a.poll_timeout(), None);
    }

    #[test]
    fn a_stalled_acknowledgement_closes_with_the_reason() {
        let t = Timing::compressed(30);
        let mut a = AgentSession::new(ms(0), &t);
        a.on_welcome(ms(0), 0);
        a.on_sent(ms(100), 1, 3);
        let due = ms(100) + t.ack_stall;
        assert_eq!(a.handle_timeout(due - ms(1)), None);
        assert_eq!(
            a.handle_timeout(due).as_deref(),
            Some("no acknowledgement from the core for 2000 ms")
        );
        assert_eq!(a.poll_transmit(), None);
    }

    #[test]
    fn the_core_takes_one_hello_first() {
        let mut c = CoreSession::new();
        assert_eq!(
            c.clone().on_control(false),
            Err(CoreClose::Protocol("first control message must be hello"))
        );
        assert_eq!(c.on_control(true), Ok(true));
        assert_eq!(c.on_control(false), Ok(false));
        assert_eq!(
            c.on_control(true),
            Err(CoreClose::Protocol("hello sent twice"))
        );
        assert_eq!(CoreSession::welcome_last_seq(None), 0);
        assert_eq!(CoreSession::welcome_last_seq(Some(9)), 9);
    }

    #[test]
    fn a_hello_of_another_wire_version_is_refused_with_what_to_do() {
        let mut c = CoreSession::new();
        let err = c.on_hello(WIRE_VERSION + 1).unwrap_err();
        assert_eq!(
            err,
            CoreClose::WireVersion {
                agent: WIRE_VERSION + 1
            }
        );
        let text = err.to_string();
        assert!(
            text.contains(&format!("wire version {}", WIRE_VERSION + 1)),
            "{text}"
        );
        assert!(text.contains("install the same HoneyBee release"), "{text}");
        assert!(!c.is_welcomed());
        let mut ok = CoreSession::new();
        assert_eq!(ok.on_hello(WIRE_VERSION), Ok(()));
        assert!(ok.is_welcomed());
        assert_eq!(
            ok.on_hello(WIRE_VERSION),
            Err(CoreClose::Protocol("hello sent twice"))
        );
    }

    #[test]
    fn batches_are_acknowledged_over_their_whole_range() {
        let c = CoreSession::new();
        assert_eq!(c.on_batch([0u64; 0].into_iter()), BatchDecision::Empty);
        assert_eq!(
            c.on_batch([5, 3, 9].into_iter()),
            BatchDecision::Commit { first: 3, last: 9 }
        );
        assert_eq!(
            c.on_batch(vec![1u64; MAX_BATCH_EVENTS + 1].into_iter()),
            BatchDecision::Close(CoreClose::Limit("telemetry batch has too many events"))
        );
    }

    #[test]
    fn renewal_is_due_about_two_thirds_in() {
        assert_eq!(renew_at_ms(0, 3000, 0), 2000);
        for r in [1, 77, u64::MAX] {
            let at = renew_at_ms(0, 3000, r);
            assert!((1800..=2000).contains(&at), "{at}");
        }
    }
}
