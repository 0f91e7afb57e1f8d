//! Connection caps shared by every service of a node: in total and per source, with
//! rate-limited reporting so a flood of refused connections cannot flood the spool.
//!
//! Sans-IO: the caller passes the current time in, so the logic is tested without sleeping.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often at most one `LimitReached` event is reported per source (and for the total cap).
pub(crate) const REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// Above this many remembered reports the map is pruned of stale entries; a flood from
/// more distinct sources than [`MAX_REPORT_KEYS`] within one interval goes unreported
/// (but the connections are still refused).
const PRUNE_AT: usize = 1024;
const MAX_REPORT_KEYS: usize = 8192;

/// Which cap refused a connection; the names are the `limit` field of `LimitReached`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cap {
    Total,
    PerSource,
}

impl Cap {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Cap::Total => "sessions_total",
            Cap::PerSource => "sessions_per_source",
        }
    }
}

/// A refused connection, with the detail to report if this one should be reported.
#[derive(Debug)]
pub(crate) struct Refused {
    pub cap: Cap,
    /// `Some` at most once per [`REPORT_INTERVAL`] per source (per node for the total cap).
    pub report: Option<String>,
}

/// The unit a per-source cap counts: one IPv4 address, or one IPv6 /64 (a single host
/// usually owns a whole /64 and can rotate addresses within it for free).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SourceKey {
    V4([u8; 4]),
    V6Prefix([u8; 8]),
}

impl SourceKey {
    pub(crate) fn of(ip: IpAddr) -> SourceKey {
        match ip {
            IpAddr::V4(v4) => SourceKey::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => SourceKey::V4(v4.octets()),
                None => {
                    let o = v6.octets();
                    let mut p = [0u8; 8];
                    p.copy_from_slice(&o[..8]);
                    SourceKey::V6Prefix(p)
                }
            },
        }
    }
}

impl std::fmt::Display for SourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceKey::V4(o) => write!(f, "{}", std::net::Ipv4Addr::from(*o)),
            SourceKey::V6Prefix(p) => {
                let mut o = [0u8; 16];
                o[..8].copy_from_slice(p);
                write!(f, "{}/64", Ipv6Addr::from(o))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ReportKey {
    Total,
    Source(SourceKey),
}

#[derive(Debug)]
struct Report {
    at: Instant,
    /// Refusals not reported since `at`.
    suppressed: u64,
}

#[derive(Debug, Default)]
struct Inner {
    total: usize,
    per_source: HashMap<SourceKey, usize>,
    reports: HashMap<ReportKey, Report>,
}

/// Counts open sessions; a [`Permit`] is one open session and gives its slot back on drop.
#[derive(Debug)]
pub(crate) struct ConnLimiter {
    max_total: usize,
    max_per_source: usize,
    inner: Mutex<Inner>,
}

impl ConnLimiter {
    pub(crate) fn new(max_total: usize, max_per_source: usize) -> Arc<Self> {
        Arc::new(ConnLimiter {
            max_total,
            max_per_source,
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The critical sections cannot leave the counts half-updated, so a poisoned lock
        // is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a slot for a connection from `ip`, or says which cap refused it.
    pub(crate) fn try_acquire(
        self: &Arc<Self>,
        ip: IpAddr,
        now: Instant,
    ) -> Result<Permit, Refused> {
        let key = SourceKey::of(ip);
        let mut inner = self.lock();
        let from_source = inner.per_source.get(&key).copied().unwrap_or(0);
        let cap = if inner.total >= self.max_total {
            Cap::Total
        } else if from_source >= self.max_per_source {
            Cap::PerSource
        } else {
            inner.total += 1;
            *inner.per_source.entry(key).or_insert(0) += 1;
            return Ok(Permit {
                limiter: Arc::clone(self),
                key,
            });
        };
        let (report_key, what) = match cap {
            Cap::Total => (
                ReportKey::Total,
                format!(
                    "{} sessions open on this node (cap {})",
                    inner.total, self.max_total
                ),
            ),
            Cap::PerSource => (
                ReportKey::Source(key),
                format!(
                    "{from_source} sessions open from {key} (cap {})",
                    self.max_per_source
                ),
            ),
        };
        let report = should_report(&mut inner.reports, report_key, now).map(|suppressed| {
            if suppressed > 0 {
                format!("{what}; {suppressed} more refused since the last report")
            } else {
                what
            }
        });
        Err(Refused { cap, report })
    }

    /// Sessions open now, in total.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.lock().total
    }
}

/// Decides whether a refusal is reported now; `Some(n)` means yes, with `n` refusals
/// suppressed since the previous report.
fn should_report(
    reports: &mut HashMap<ReportKey, Report>,
    key: ReportKey,
    now: Instant,
) -> Option<u64> {
    if let Some(r) = reports.get_mut(&key) {
        if now.saturating_duration_since(r.at) < REPORT_INTERVAL {
            r.suppressed = r.suppressed.saturating_add(1);
            return None;
        }
        let suppressed = r.suppressed;
        *r = Report {
            at: now,
            suppressed: 0,
        };
        return Some(suppressed);
    }
    if reports.len() >= PRUNE_AT {
        reports.retain(|_, r| now.saturating_duration_since(r.at) < REPORT_INTERVAL);
    }
    if reports.len() >= MAX_REPORT_KEYS {
        return None;
    }
    reports.insert(
        key,
        Report {
            at: now,
            suppressed: 0,
        },
    );
    Some(0)
}

/// One open session's slot.
#[derive(Debug)]
pub(crate) struct Permit {
    limiter: Arc<ConnLimiter>,
    key: SourceKey,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut inner = self.limiter.lock();
        inner.total = inner.total.saturating_sub(1);
        if let Some(n) = inner.per_source.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                inner.per_source.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_source_cap_and_release() {
        let l = ConnLimiter::new(10, 2);
        let t = Instant::now();
        let a = l.try_acquire(ip("10.0.0.1"), t).unwrap();
        let _b = l.try_acquire(ip("10.0.0.1"), t).unwrap();
        let r = l.try_acquire(ip("10.0.0.1"), t).unwrap_err();
        assert_eq!(r.cap, Cap::PerSource);
        assert!(r.report.as_deref().unwrap().contains("10.0.0.1"));
        // Another source is unaffected.
        let _c = l.try_acquire(ip("10.0.0.2"), t).unwrap();
        drop(a);
        assert_eq!(l.open(), 2);
        assert!(l.try_acquire(ip("10.0.0.1"), t).is_ok());
    }

    #[test]
    fn total_cap() {
        let l = ConnLimiter::new(2, 5);
        let t = Instant::now();
        let _a = l.try_acquire(ip("10.0.0.1"), t).unwrap();
        let _b = l.try_acquire(ip("10.0.0.2"), t).unwrap();
        let r = l.try_acquire(ip("10.0.0.3"), t).unwrap_err();
        assert_eq!(r.cap, Cap::Total);
        assert_eq!(r.cap.name(), "sessions_total");
    }

    #[test]
    fn reports_are_rate_limited() {
        let l = ConnLimiter::new(10, 0);
        let t = Instant::now();
        assert!(
            l.try_acquire(ip("10.0.0.1"), t)
                .unwrap_err()
                .report
                .is_some()
        );
        for i in 1..5 {
            let r = l
                .try_acquire(ip("10.0.0.1"), t + Duration::from_secs(i))
                .unwrap_err();
            assert!(r.report.is_none());
        }
        // Another source gets its own report.
        assert!(
            l.try_acquire(ip("10.0.0.9"), t)
                .unwrap_err()
                .report
                .is_some()
        );
        let r = l
            .try_acquire(ip("10.0.0.1"), t + REPORT_INTERVAL)
            .unwrap_err();
        assert!(r.report.unwrap().contains("4 more refused"));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        assert_eq!(
            SourceKey::of(ip("2001:db8::1")),
            SourceKey::of(ip("2001:db8::ffff:2"))
        );
        assert_ne!(
            SourceKey::of(ip("2001:db8::1")),
            SourceKey::of(ip("2001:db8:0:1::1"))
        );
        assert_eq!(
            SourceKey::of(ip("::ffff:10.0.0.1")),
            SourceKey::of(ip("10.0.0.1"))
        );
        assert_eq!(
            SourceKey::of(ip("2001:db8::1")).to_string(),
            "2001:db8::/64"
        );
    }

    #[test]
    fn report_map_is_bounded() {
        let l = ConnLimiter::new(10, 0);
        let t = Instant::now();
        for i in 0..(MAX_REPORT_KEYS as u32 + 100) {
            let _ = l.try_acquire(IpAddr::from(i.to_be_bytes()), t);
        }
        assert!(l.lock().reports.len() <= MAX_REPORT_KEYS);
        // Once the interval has passed, stale entries are pruned and reporting resumes.
        let later = t + REPORT_INTERVAL;
        assert!(
            l.try_acquire(ip("192.0.2.1"), later)
                .unwrap_err()
                .report
                .is_some()
        );
        assert!(l.lock().reports.len() < 10);
    }
}
