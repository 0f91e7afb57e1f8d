//! Every timer of the agent↔core and module↔core sessions in one value.
//!
//! Production runs on [`Timing::default`]. Tests and netsim scenarios that must outlast a
//! timer (a partition longer than the idle timeout, a stalled acknowledgement) run on
//! [`Timing::compressed`] instead of waiting out 30 s of real time: the same code paths,
//! with every duration divided by the same factor, so their ratios (keep-alive under
//! the idle timeout, health reports under the stall deadline) still hold.
//!
//! Both ends of a QUIC connection take the smaller idle timeout of the two, so a core and
//! its agents should run on the same value; a test that compresses one compresses both.

use std::time::Duration;

/// The timers, with their production values in [`Timing::default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// QUIC keep-alive interval of every connection (both ends).
    pub keep_alive: Duration,
    /// QUIC idle timeout: a connection silent this long is dead (both ends).
    pub idle_timeout: Duration,
    /// How long a new connection has to send its hello (core) or a client to get
    /// connected (agent) before it is dropped and retried.
    pub handshake_deadline: Duration,
    /// A telemetry or capture stream that delivers nothing for this long is closed by the
    /// core (the agent resends from its spool on the next stream).
    pub stream_stall: Duration,
    /// The agent gives up on a connection whose acknowledgements stop for this long
    /// while it has events in flight, and reconnects.
    pub ack_stall: Duration,
    /// How often an agent reports its health.
    pub health_interval: Duration,
    /// First and largest wait between an agent's reconnection attempts (jittered,
    /// doubling from the first to the largest).
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// How often the core closes the connections of revoked certificates.
    pub revocation_sweep: Duration,
    /// How long the core waits for an agent to answer a command.
    pub command_timeout: Duration,
    /// Module sessions: the hello deadline, one frame's deadline once started, and the
    /// silence after which the core closes the session (modules ping well within it).
    pub module_hello: Duration,
    pub module_frame: Duration,
    pub module_idle: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            keep_alive: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            handshake_deadline: Duration::from_secs(10),
            stream_stall: Duration::from_secs(30),
            ack_stall: Duration::from_secs(60),
            health_interval: Duration::from_secs(10),
            reconnect_min: Duration::from_millis(250),
            reconnect_max: Duration::from_secs(30),
            revocation_sweep: Duration::from_millis(500),
            command_timeout: Duration::from_secs(10),
            module_hello: Duration::from_secs(5),
            module_frame: Duration::from_secs(10),
            module_idle: Duration::from_secs(90),
        }
    }
}

/// No timer is compressed below this: a loaded 2-core machine must still complete a
/// handshake and a round trip within the shortest one.
const FLOOR: Duration = Duration::from_millis(50);

impl Timing {
    /// The production timings divided by `factor` (at least 1), none below 50 ms.
    /// `Timing::compressed(10)` turns the 30 s idle timeout into 3 s.
    pub fn compressed(factor: u32) -> Timing {
        let f = factor.max(1);
        let c = |d: Duration| (d / f).max(FLOOR);
        let d = Timing::default();
        Timing {
            keep_alive: c(d.keep_alive),
            idle_timeout: c(d.idle_timeout),
            handshake_deadline: c(d.handshake_deadline),
            stream_stall: c(d.stream_stall),
            ack_stall: c(d.ack_stall),
            health_interval: c(d.health_interval),
            reconnect_min: c(d.reconnect_min),
            reconnect_max: c(d.reconnect_max),
            revocation_sweep: c(d.revocation_sweep),
            command_timeout: c(d.command_timeout),
            module_hello: c(d.module_hello),
            module_frame: c(d.module_frame),
            module_idle: c(d.module_idle),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_keeps_the_ratios_that_matter() {
        for f in [1, 2, 10, 30] {
            let t = Timing::compressed(f);
            assert!(t.keep_alive < t.idle_timeout, "factor {f}");
            assert!(t.health_interval < t.stream_stall, "factor {f}");
            assert!(t.reconnect_min <= t.reconnect_max, "factor {f}");
            assert!(t.module_hello <= t.module_idle, "factor {f}");
        }
        assert_eq!(Timing::compressed(1), Timing::default());
        assert_eq!(Timing::compressed(0), Timing::default());
        assert_eq!(Timing::compressed(10).idle_timeout, Duration::from_secs(3));
    }

    #[test]
    fn nothing_is_compressed_below_the_floor() {
        let t = Timing::compressed(u32::MAX);
        assert_eq!(t.revocation_sweep, FLOOR);
        assert_eq!(t.idle_timeout, FLOOR);
    }
}
