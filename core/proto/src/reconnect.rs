//! When an agent tries to reach its core again (sans-IO: the caller passes the clock and
//! the randomness).
//!
//! Two situations look alike on the wire and must not be treated alike:
//!
//! - A core the agent was connected to went away (a restart, a crash, a cut). It was
//!   reachable a moment ago, so it is most likely back within seconds: the agent tries
//!   again after 100 ms to 1 s (full jitter) for [`QUICK_WINDOW`], each attempt starting
//!   from a [`QUICK_INITIAL_RTT`] round-trip estimate, so QUIC retransmits its Initial
//!   0.3, 0.9, 2.1 and 4.5 s after the first packet rather than 1, 3 and 7 s: an attempt
//!   made while the core's port was unbound used to decide when its agent came back.
//!   Attempts are not abandoned early: a core busy with a storm answers late, and an
//!   attempt given up and made again is a second handshake for it (measured: abandoning
//!   unanswered attempts after 2.5 s brought 2,000 agents back in 10.1 s, against 7.1 s
//!   on the old schedule, on the same machine; BENCHMARKS.md, fleet storm). For the
//!   same reason an attempt that fails ends the quick probes ([`Reconnect::on_failed`]):
//!   the exponential backoff takes over, from [`QUICK_MAX`].
//! - A core that has not answered for longer, or never did: jittered exponential backoff
//!   from [`Timing::reconnect_min`] to [`Timing::reconnect_max`], with the full handshake
//!   deadline, so a core that is truly down is not hammered.
//!
//! On a clean shutdown the core closes every connection with [`close::SHUTDOWN`] and a
//! [`ComeBack`] in the close reason: when to return (`after`) and over how long a window
//! to spread the fleet (`spread`, sized to the number of connections so a big fleet does
//! not arrive within one millisecond). The agent clamps both (a hostile or buggy core can
//! neither make its agents spin nor park them for long) and ignores a reason it cannot
//! read, which then counts as a connection lost without a word.
//!
//! [`close::SHUTDOWN`]: crate::stream::close::SHUTDOWN
//! [`Timing::reconnect_min`]: crate::timing::Timing::reconnect_min
//! [`Timing::reconnect_max`]: crate::timing::Timing::reconnect_max

use crate::stream::close;
use crate::timing::Timing;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// For this long after a connection is lost, attempts are quick probes.
pub const QUICK_WINDOW: Duration = Duration::from_secs(30);
/// The round-trip estimate a quick attempt starts from, instead of QUIC's default 333 ms,
/// so the Initials of one attempt go out at 0.3, 0.9, 2.1 and 4.5 s rather than 1, 3
/// and 7 s. Once the core answers, the measured round trip replaces it.
pub const QUICK_INITIAL_RTT: Duration = Duration::from_millis(100);
/// Quick probes wait at least this much between them, whatever the core says.
pub const QUICK_MIN: Duration = Duration::from_millis(100);
/// The first quick wait is at most this; each one after may be twice as long, up to
/// [`QUICK_MAX`] (full jitter in between).
pub const QUICK_FIRST: Duration = Duration::from_millis(250);
pub const QUICK_MAX: Duration = Duration::from_secs(1);

/// The most an agent accepts for a [`ComeBack`]'s `after` and `spread`: beyond this a
/// core's hint would only keep its fleet away (the exponential backoff reaches 30 s).
pub const MAX_AFTER: Duration = Duration::from_secs(30);
pub const MAX_SPREAD: Duration = Duration::from_secs(30);
/// The least spread an agent accepts: a core cannot line its whole fleet up on one instant.
pub const MIN_SPREAD: Duration = Duration::from_millis(250);
/// How many returning agents per second a core plans for when it sizes `spread`
/// ([`ComeBack::for_fleet`]): about what one core on two loaded cores completes (BENCHMARKS.md,
/// fleet storm), so the planned window is about as long as admitting the fleet takes.
pub const PLANNED_ARRIVALS_PER_S: usize = 1_000;

/// The version of [`ComeBack`]'s encoding; a reason of another version is ignored.
pub const COME_BACK_VERSION: u8 = 1;

/// A core's "come back": what it puts in the close reason of a clean shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComeBack {
    /// Wait at least this long,
    pub after: Duration,
    /// then a random part of this window, so the fleet arrives spread out.
    pub spread: Duration,
}

/// The encoded form: versioned, postcard, milliseconds.
#[derive(Serialize, Deserialize)]
struct Wire {
    version: u8,
    after_ms: u32,
    spread_ms: u32,
}

impl ComeBack {
    /// The hint for a core closing `connections` connections: come back at once, spread
    /// over the time admitting them takes at [`PLANNED_ARRIVALS_PER_S`].
    pub fn for_fleet(connections: usize) -> ComeBack {
        let spread_ms = (connections as u64).saturating_mul(1_000) / PLANNED_ARRIVALS_PER_S as u64;
        ComeBack {
            after: Duration::ZERO,
            spread: Duration::from_millis(spread_ms).clamp(MIN_SPREAD, MAX_SPREAD),
        }
    }

    /// The close reason: `text` for people (what an older agent or a packet capture
    /// shows), a NUL, then the encoded hint.
    pub fn reason(&self, text: &str) -> Vec<u8> {
        let wire = Wire {
            version: COME_BACK_VERSION,
            after_ms: u32::try_from(self.after.as_millis()).unwrap_or(u32::MAX),
            spread_ms: u32::try_from(self.spread.as_millis()).unwrap_or(u32::MAX),
        };
        let mut out = Vec::with_capacity(text.len() + 12);
        out.extend_from_slice(text.replace('\0', " ").as_bytes());
        out.push(0);
        // A struct of three integers always encodes.
        out.extend_from_slice(&postcard::to_allocvec(&wire).unwrap_or_default());
        out
    }

    /// The hint in a connection's close, if it is a clean shutdown's and readable, with
    /// both durations clamped ([`MAX_AFTER`], [`MIN_SPREAD`]..=[`MAX_SPREAD`]).
    pub fn from_close(code: u32, reason: &[u8]) -> Option<ComeBack> {
        if code != close::SHUTDOWN {
            return None;
        }
        let nul = reason.iter().position(|&b| b == 0)?;
        let wire: Wire = match postcard::take_from_bytes::<Wire>(&reason[nul + 1..]) {
            Ok((w, [])) => w,
            _ => return None,
        };
        if wire.version != COME_BACK_VERSION {
            return None;
        }
        Some(ComeBack {
            after: Duration::from_millis(wire.after_ms.into()).min(MAX_AFTER),
            spread: Duration::from_millis(wire.spread_ms.into()).clamp(MIN_SPREAD, MAX_SPREAD),
        })
    }

    /// The human part of a close reason written by [`ComeBack::reason`] (all of it when
    /// there is no NUL), for logs.
    pub fn text(reason: &[u8]) -> String {
        let end = reason.iter().position(|&b| b == 0).unwrap_or(reason.len());
        String::from_utf8_lossy(&reason[..end]).into_owned()
    }
}

/// The next attempt: how long to wait first, and whether it is a quick one (starting from
/// [`QUICK_INITIAL_RTT`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    pub wait: Duration,
    pub quick: bool,
}

/// One agent's reconnection schedule. Times are the caller's clock (any monotonic
/// origin), passed in so tests drive it without sleeping.
#[derive(Debug, Clone)]
pub struct Reconnect {
    min: Duration,
    max: Duration,
    /// The next exponential wait (before jitter).
    backoff: Duration,
    /// Quick probes until this time, if a connection was lost recently.
    quick_until: Option<Duration>,
    /// Quick probes made since the loss (sets the quick wait's cap).
    quick_made: u32,
    /// The core's hint, for the first attempt after the loss only.
    hint: Option<ComeBack>,
}

impl Reconnect {
    /// An agent that has not reached its core yet: exponential backoff.
    pub fn new(timing: &Timing) -> Reconnect {
        Reconnect {
            min: timing.reconnect_min,
            max: timing.reconnect_max.max(timing.reconnect_min),
            backoff: timing.reconnect_min,
            quick_until: None,
            quick_made: 0,
            hint: None,
        }
    }

    /// The core welcomed the agent: the schedule starts over.
    pub fn on_welcomed(&mut self) {
        self.backoff = self.min;
        self.quick_until = None;
        self.quick_made = 0;
        self.hint = None;
    }

    /// The connection the agent was welcomed on ended at `now`, with the core's hint if it
    /// gave one ([`ComeBack::from_close`]).
    pub fn on_lost(&mut self, now: Duration, hint: Option<ComeBack>) {
        let hinted = hint.map_or(Duration::ZERO, |h| h.after + h.spread);
        self.quick_until = Some(now + hinted + QUICK_WINDOW);
        self.quick_made = 0;
        self.hint = hint;
        // Should the core stay away past the quick window, the exponential backoff goes
        // on from the quick waits' cap, not from its minimum.
        self.backoff = QUICK_MAX.clamp(self.min, self.max);
    }

    /// An attempt failed (no handshake within the deadline, or the core closed the
    /// connection before its welcome): the quick probes end and the exponential backoff
    /// goes on from [`QUICK_MAX`]. A core that answers a storm late must see fewer
    /// attempts, not more: with 2,000 agents retrying every 100 ms to 1 s after each
    /// failed handshake, a debug-built core spent its time on handshakes it had already
    /// lost and never caught up (the netsim storm test ran out of 8 minutes).
    pub fn on_failed(&mut self) {
        self.quick_until = None;
        self.hint = None;
    }

    /// The next attempt, at `now`; `random` is a fresh random number.
    pub fn next(&mut self, now: Duration, random: u64) -> Attempt {
        if let Some(h) = self.hint.take() {
            self.quick_made += 1;
            return Attempt {
                wait: h.after.max(QUICK_MIN) + jitter(h.spread, random),
                quick: true,
            };
        }
        if self.quick_until.is_some_and(|until| now < until) {
            let cap = QUICK_FIRST
                .saturating_mul(1 << self.quick_made.min(8))
                .min(QUICK_MAX);
            self.quick_made += 1;
            return Attempt {
                wait: QUICK_MIN + jitter(cap - QUICK_MIN, random),
                quick: true,
            };
        }
        self.quick_until = None;
        let wait = self.backoff + jitter(self.backoff / 2, random);
        self.backoff = (self.backoff * 2).min(self.max);
        Attempt { wait, quick: false }
    }
}

/// A uniformly random duration in `0..=window` (millisecond steps).
fn jitter(window: Duration, random: u64) -> Duration {
    Duration::from_millis(random % (window.as_millis() as u64 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn randoms() -> impl Iterator<Item = u64> {
        // A fixed xorshift sequence: deterministic, and covering the whole range.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        std::iter::from_fn(move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Some(x)
        })
    }

    #[test]
    fn a_hint_round_trips_and_the_text_stays_readable() {
        let h = ComeBack {
            after: Duration::from_millis(1_500),
            spread: Duration::from_millis(4_000),
        };
        let r = h.reason("core shutting down");
        assert_eq!(ComeBack::from_close(close::SHUTDOWN, &r), Some(h));
        assert_eq!(ComeBack::text(&r), "core shutting down");
        assert_eq!(ComeBack::text(b"plain reason"), "plain reason");
        // Only a clean shutdown's close carries one.
        assert_eq!(ComeBack::from_close(close::NORMAL, &r), None);
        assert_eq!(ComeBack::from_close(close::REVOKED, &r), None);
    }

    #[test]
    fn unreadable_reasons_are_no_hint() {
        let good = ComeBack::for_fleet(10).reason("bye");
        let cases: Vec<Vec<u8>> = vec![
            b"core shutting down".to_vec(),
            b"bye\0".to_vec(),
            b"bye\0\x01\xff".to_vec(),
            [good.clone(), vec![0]].concat(),
            good[..good.len() - 1].to_vec(),
        ];
        for c in cases {
            assert_eq!(ComeBack::from_close(close::SHUTDOWN, &c), None, "{c:?}");
        }
        let mut other_version = good.clone();
        other_version[4] = COME_BACK_VERSION + 1;
        assert_eq!(ComeBack::from_close(close::SHUTDOWN, &other_version), None);
    }

    #[test]
    fn a_hostile_hint_is_clamped() {
        // Far future, and a zero window that would line the fleet up on one instant.
        let long = ComeBack {
            after: Duration::from_secs(u32::MAX as u64),
            spread: Duration::ZERO,
        };
        let got = ComeBack::from_close(close::SHUTDOWN, &long.reason("x")).unwrap();
        assert_eq!(got.after, MAX_AFTER);
        assert_eq!(got.spread, MIN_SPREAD);
        let wide = ComeBack {
            after: Duration::ZERO,
            spread: Duration::from_secs(86_400),
        };
        let got = ComeBack::from_close(close::SHUTDOWN, &wide.reason("x")).unwrap();
        assert_eq!(got.spread, MAX_SPREAD);

        // Whatever the hint, an agent neither spins (every wait at least QUICK_MIN) nor
        // stays away past MAX_AFTER + MAX_SPREAD.
        let t = Timing::default();
        for hint in [
            long,
            wide,
            ComeBack {
                after: Duration::ZERO,
                spread: Duration::ZERO,
            },
        ] {
            let read = ComeBack::from_close(close::SHUTDOWN, &hint.reason("x"));
            let mut r = Reconnect::new(&t);
            r.on_welcomed();
            r.on_lost(Duration::ZERO, read);
            let mut now = Duration::ZERO;
            for random in randoms().take(200) {
                let a = r.next(now, random);
                assert!(a.wait >= QUICK_MIN, "{hint:?}: {a:?}");
                assert!(a.wait <= MAX_AFTER + MAX_SPREAD, "{hint:?}: {a:?}");
                now += a.wait;
            }
        }
    }

    #[test]
    fn the_fleet_spread_grows_with_the_fleet_within_bounds() {
        assert_eq!(ComeBack::for_fleet(0).spread, MIN_SPREAD);
        assert_eq!(ComeBack::for_fleet(2_000).spread, 2 * S);
        assert_eq!(ComeBack::for_fleet(10_000).spread, 10 * S);
        assert_eq!(ComeBack::for_fleet(usize::MAX).spread, MAX_SPREAD);
        assert_eq!(ComeBack::for_fleet(10_000).after, Duration::ZERO);
    }

    #[test]
    fn a_core_never_reached_gets_exponential_backoff() {
        let t = Timing::default();
        let mut r = Reconnect::new(&t);
        let mut now = Duration::ZERO;
        let mut floor = t.reconnect_min;
        for random in randoms().take(20) {
            let a = r.next(now, random);
            assert!(!a.quick);
            assert!(
                a.wait >= floor && a.wait <= floor + floor / 2,
                "{a:?} at {floor:?}"
            );
            floor = (floor * 2).min(t.reconnect_max);
            now += a.wait;
        }
        assert_eq!(floor, t.reconnect_max);
    }

    #[test]
    fn a_lost_core_is_probed_quickly_then_backed_off() {
        let t = Timing::default();
        let mut r = Reconnect::new(&t);
        r.on_welcomed();
        r.on_lost(10 * S, None);
        let mut now = 10 * S;
        let mut quick = 0;
        for random in randoms().take(500) {
            let a = r.next(now, random);
            if !a.quick {
                break;
            }
            assert!(a.wait >= QUICK_MIN && a.wait <= QUICK_MAX, "{a:?}");
            quick += 1;
            // Each attempt fails after a while (refused, or its handshake deadline).
            now += a.wait + Duration::from_millis(2_500);
        }
        // About QUICK_WINDOW / (2.5 s + the waits), and no more: then the
        // exponential backoff from QUICK_MAX, growing to reconnect_max.
        assert!((8..=13).contains(&quick), "{quick} quick probes");
        assert!(now >= 10 * S + QUICK_WINDOW);
        let mut last = Duration::ZERO;
        for random in randoms().take(12) {
            let a = r.next(now, random);
            assert!(!a.quick);
            assert!(a.wait >= QUICK_MAX, "{a:?}");
            last = a.wait;
            now += a.wait;
        }
        assert!(last >= t.reconnect_max, "{last:?}");
    }

    #[test]
    fn a_failed_attempt_ends_the_quick_probes() {
        let t = Timing::default();
        for hint in [
            None,
            Some(ComeBack {
                after: Duration::ZERO,
                spread: 2 * S,
            }),
        ] {
            let mut r = Reconnect::new(&t);
            r.on_welcomed();
            r.on_lost(10 * S, hint);
            let mut now = 10 * S;
            let first = r.next(now, 7);
            assert!(first.quick, "{first:?}");
            // The core took the handshake but never welcomed us, or no handshake in time:
            // from here on the waits grow, starting at QUICK_MAX, inside the quick window.
            r.on_failed();
            let mut last = Duration::ZERO;
            for random in randoms().take(8) {
                now += Duration::from_millis(100);
                let a = r.next(now, random);
                assert!(!a.quick, "{a:?}");
                assert!(a.wait >= QUICK_MAX && a.wait >= last / 2, "{a:?}");
                last = a.wait;
            }
            assert!(last >= 16 * S, "{last:?}");
            // A welcome starts over: the next loss gets its quick probe again.
            r.on_welcomed();
            r.on_lost(now, None);
            assert!(r.next(now, 3).quick);
        }
    }

    #[test]
    fn the_first_attempt_after_a_hint_falls_in_its_window() {
        let t = Timing::default();
        let hint = ComeBack {
            after: 2 * S,
            spread: 4 * S,
        };
        let mut waits = Vec::new();
        for random in randoms().take(1_000) {
            let mut r = Reconnect::new(&t);
            r.on_welcomed();
            r.on_lost(Duration::ZERO, Some(hint));
            let a = r.next(Duration::ZERO, random);
            assert!(a.quick);
            assert!(a.wait >= 2 * S && a.wait <= 6 * S, "{a:?}");
            waits.push(a.wait);
            // The hint is used once; then quick probes, for longer than without a hint.
            let b = r.next(a.wait, random);
            assert!(b.quick && b.wait <= QUICK_MAX);
            assert!(r.next(QUICK_WINDOW + 5 * S, random).quick);
        }
        // Spread over the window, not bunched at one end.
        let early = waits.iter().filter(|w| **w < 4 * S).count();
        assert!(
            (400..=600).contains(&early),
            "{early} of 1000 in the first half"
        );
    }

    #[test]
    fn a_welcome_starts_the_schedule_over() {
        let t = Timing::default();
        let mut r = Reconnect::new(&t);
        for random in randoms().take(10) {
            r.next(Duration::ZERO, random);
        }
        r.on_welcomed();
        let a = r.next(Duration::ZERO, 0);
        assert_eq!(
            a,
            Attempt {
                wait: t.reconnect_min,
                quick: false
            }
        );
    }
}
