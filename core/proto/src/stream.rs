//! Stream layout on a node connection.
//!
//! The agent opens bidirectional stream 0 as the control stream. Every unidirectional
//! stream starts with one [`StreamKind`] byte that tells the core how to read the rest:
//! a telemetry batch (one frame), or a capture (a header frame, then raw content).
//! The core opens one kind itself: an upgrade (an offer frame, then the package; see
//! `upgrade.rs`).

/// The first byte of every unidirectional stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StreamKind {
    Telemetry = 1,
    Capture = 2,
    /// Core → node: a signed agent package (`crate::upgrade`).
    Upgrade = 3,
}

impl StreamKind {
    pub fn from_byte(b: u8) -> Result<Self, UnknownStreamKind> {
        match b {
            1 => Ok(StreamKind::Telemetry),
            2 => Ok(StreamKind::Capture),
            3 => Ok(StreamKind::Upgrade),
            other => Err(UnknownStreamKind(other)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown stream kind {0:#04x}")]
pub struct UnknownStreamKind(pub u8);

/// Application error codes used when closing a connection or resetting a stream.
pub mod close {
    /// Normal shutdown.
    pub const NORMAL: u32 = 0;
    /// The peer sent bytes that do not parse, or broke the stream layout.
    pub const PROTOCOL: u32 = 1;
    /// The peer's certificate does not grant the role this ALPN needs.
    pub const FORBIDDEN: u32 = 2;
    /// The node was revoked.
    pub const REVOKED: u32 = 3;
    /// A newer connection from the same node replaced this one.
    pub const REPLACED: u32 = 4;
    /// The core is shutting down.
    pub const SHUTDOWN: u32 = 5;
    /// A limit was exceeded (frame size, rate, streams).
    pub const LIMIT: u32 = 6;
    /// A capture upload did not match its header.
    pub const CAPTURE_REJECTED: u32 = 7;
    /// The core could not serve the connection for a reason of its own (its store
    /// failed): nothing is wrong with the peer, which reconnects and resends.
    pub const UNAVAILABLE: u32 = 8;
}
