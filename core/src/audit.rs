//! Audit hygiene for what unauthenticated peers cause: their text is clamped and
//! escaped before it is written, and their refusals are aggregated per source, reason and
//! window, so a stream of failed attempts writes a bounded number of rows, with counts.
//! Sans-IO: time is passed in; the caller writes the rows that come out.

use honeybee_proto::text::is_unsafe;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Characters of peer-supplied text (a hostname, say) an audit row keeps.
pub const MAX_PEER_TEXT_CHARS: usize = 64;

/// `s` clamped to `max_chars` characters, with every control character (C0, C1), bidi
/// override or isolate, zero-width or other format character, and backslash written as
/// an escape (`\u{202e}`), so an audit row shows what was sent and a terminal printing it
/// does nothing. A clamped text ends in `…(+N bytes)`.
pub fn peer_text(s: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for (taken, (i, c)) in s.char_indices().enumerate() {
        if taken == max_chars {
            let _ = write!(out, "…(+{} bytes)", s.len() - i);
            return out;
        }
        if c == '\\' {
            out.push_str("\\\\");
        } else if is_unsafe(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// How refusals from unauthenticated peers are aggregated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestConfig {
    /// One source's repeats of one refusal within this window are one summary row.
    pub window: Duration,
    /// Most (source, reason) pairs tracked; past it the least recently seen is flushed
    /// (its summary written) and forgotten.
    pub max_tracked: usize,
    /// Most first-sighting rows per window across all sources; past it refusals from
    /// further sources are only counted, in one row per window.
    pub max_rows_per_window: u32,
}

impl Default for DigestConfig {
    fn default() -> Self {
        DigestConfig {
            window: Duration::from_secs(60),
            max_tracked: 4096,
            max_rows_per_window: 256,
        }
    }
}

/// One audit row the digest wants written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestRow {
    pub actor: String,
    pub outcome: String,
    /// The source (already grouped: an IPv6 /64 shows as its prefix), if one applies.
    pub source: Option<String>,
    pub detail: String,
}

#[derive(Debug)]
struct Tracked {
    window_start: Instant,
    last_seen: Instant,
    /// Refusals after the first in this window: written as one summary row.
    repeats: u64,
    actor: String,
    outcome: String,
}

/// Aggregates refusals: the first refusal of a (source, reason) in a window is written at
/// once, with its detail; repeats are counted and written as one row when the window ends
/// (or the entry is evicted). So one source writes at most two rows per reason per
/// window, and the whole digest at most `max_rows_per_window` first rows per window plus
/// one overflow row, whatever the rate of attempts.
#[derive(Debug)]
pub struct RefusalDigest {
    cfg: DigestConfig,
    tracked: HashMap<(IpAddr, &'static str), Tracked>,
    /// The current global window: its start, first rows written in it, and refusals not
    /// itemised because the row budget was spent (count, distinct sources seen).
    global_start: Option<Instant>,
    rows_this_window: u32,
    overflow: u64,
}

impl RefusalDigest {
    pub fn new(cfg: DigestConfig) -> Self {
        RefusalDigest {
            cfg,
            tracked: HashMap::new(),
            global_start: None,
            rows_this_window: 0,
            overflow: 0,
        }
    }

    /// One refusal of kind `reason` (a short stable name) from `source`. Returns the rows
    /// to write now: the first sighting in a window, and summaries of windows that ended.
    /// `detail` is only built when a row is written.
    pub fn refused(
        &mut self,
        source: IpAddr,
        reason: &'static str,
        actor: &str,
        outcome: &str,
        detail: impl FnOnce() -> String,
        now: Instant,
    ) -> Vec<DigestRow> {
        let mut rows = self.roll_global(now);
        let key = (crate::ratelimit::source_key(source), reason);
        if let Some(t) = self.tracked.get_mut(&key) {
            if now.saturating_duration_since(t.window_start) < self.cfg.window {
                t.repeats += 1;
                t.last_seen = now;
                t.actor = actor.to_owned();
                return rows;
            }
            // Its window ended: summarise it, and this refusal opens a new one.
            if let Some(t) = self.tracked.remove(&key) {
                rows.extend(summary(key.0, t, self.cfg.window));
            }
        }
        if self.rows_this_window >= self.cfg.max_rows_per_window {
            self.overflow += 1;
            return rows;
        }
        if self.tracked.len() >= self.cfg.max_tracked {
            rows.extend(self.evict_oldest());
        }
        self.rows_this_window += 1;
        self.tracked.insert(
            key,
            Tracked {
                window_start: now,
                last_seen: now,
                repeats: 0,
                actor: actor.to_owned(),
                outcome: outcome.to_owned(),
            },
        );
        rows.push(DigestRow {
            actor: actor.to_owned(),
            outcome: outcome.to_owned(),
            source: Some(key.0.to_string()),
            detail: detail(),
        });
        rows
    }

    /// Summaries of every window that has ended by `now`; call it periodically so a
    /// source that stopped still gets its count written.
    pub fn flush(&mut self, now: Instant) -> Vec<DigestRow> {
        let mut rows = self.roll_global(now);
        let window = self.cfg.window;
        let ended: Vec<(IpAddr, &'static str)> = self
            .tracked
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(t.window_start) >= window)
            .map(|(k, _)| *k)
            .collect();
        for key in ended {
            if let Some(t) = self.tracked.remove(&key) {
                rows.extend(summary(key.0, t, window));
            }
        }
        rows
    }

    /// (source, reason) pairs tracked now.
    pub fn tracked(&self) -> usize {
        self.tracked.len()
    }

    fn roll_global(&mut self, now: Instant) -> Vec<DigestRow> {
        let start = *self.global_start.get_or_insert(now);
        if now.saturating_duration_since(start) < self.cfg.window {
            return Vec::new();
        }
        self.global_start = Some(now);
        self.rows_this_window = 0;
        let overflow = std::mem::take(&mut self.overflow);
        if overflow == 0 {
            return Vec::new();
        }
        vec![DigestRow {
            actor: "enroll".into(),
            outcome: format!("refused: {overflow} more refusals not itemised"),
            source: None,
            detail: format!(
                "more than {} sources were refused within {}s; only the first were itemised",
                self.cfg.max_rows_per_window,
                self.cfg.window.as_secs()
            ),
        }]
    }

    fn evict_oldest(&mut self) -> Option<DigestRow> {
        let key = *self
            .tracked
            .iter()
            .min_by_key(|(_, t)| t.last_seen)
            .map(|(k, _)| k)?;
        let t = self.tracked.remove(&key)?;
        summary(key.0, t, self.cfg.window)
    }
}

fn summary(source: IpAddr, t: Tracked, window: Duration) -> Option<DigestRow> {
    (t.repeats > 0).then(|| DigestRow {
        actor: t.actor,
        outcome: format!("{} (repeated {} more times)", t.outcome, t.repeats),
        source: Some(source.to_string()),
        detail: format!(
            "{} further refusals within {}s of the first",
            t.repeats,
            window.as_secs()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_text_clamps_and_escapes() {
        assert_eq!(peer_text("web-01", 64), "web-01");
        assert_eq!(
            peer_text("a\u{1b}[2Jb\u{202e}c\\", 64),
            "a\\u{1b}[2Jb\\u{202e}c\\\\"
        );
        let long = "x".repeat(16 * 1024);
        let t = peer_text(&long, MAX_PEER_TEXT_CHARS);
        assert!(
            t.starts_with(&"x".repeat(64)) && t.ends_with("…(+16320 bytes)"),
            "{t}"
        );
        assert!(t.len() < 100);
        assert_eq!(peer_text("ééé", 2), "éé…(+2 bytes)");
    }

    fn refuse(d: &mut RefusalDigest, ip: &str, reason: &'static str, t: Instant) -> Vec<DigestRow> {
        d.refused(
            ip.parse().unwrap(),
            reason,
            "token:x",
            reason,
            || "d".into(),
            t,
        )
    }

    /// 10,000 refusals from one source within a window: one row at once, one summary row
    /// with the count when the window ends.
    #[test]
    fn repeats_become_one_counted_row() {
        let mut d = RefusalDigest::new(DigestConfig::default());
        let t0 = Instant::now();
        let mut rows = Vec::new();
        for i in 0..10_000u64 {
            rows.extend(refuse(
                &mut d,
                "192.0.2.1",
                "bad_secret",
                t0 + Duration::from_millis(i),
            ));
        }
        assert_eq!(rows.len(), 1);
        rows.extend(d.flush(t0 + Duration::from_secs(61)));
        assert_eq!(rows.len(), 2);
        assert!(
            rows[1].outcome.contains("repeated 9999 more times"),
            "{rows:?}"
        );
        // Another reason from the same source is its own row.
        let other = refuse(&mut d, "192.0.2.1", "expired", t0 + Duration::from_secs(62));
        assert_eq!(other.len(), 1);
    }

    /// Many sources: at most `max_rows_per_window` first rows, the rest one overflow row;
    /// the table never grows past its cap.
    #[test]
    fn many_sources_are_bounded() {
        let cfg = DigestConfig {
            window: Duration::from_secs(60),
            max_tracked: 100,
            max_rows_per_window: 150,
        };
        let mut d = RefusalDigest::new(cfg);
        let t0 = Instant::now();
        let mut rows = Vec::new();
        for i in 0..70_000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            for _ in 0..2 {
                rows.extend(d.refused(ip, "bad_secret", "a", "o", || "d".into(), t0));
            }
            assert!(d.tracked() <= 100);
        }
        // 150 first rows, 50 of them evicted with their one repeat summarised.
        assert_eq!(rows.len(), 150 + 50, "{}", rows.len());
        let later = d.flush(t0 + Duration::from_secs(60));
        assert!(
            later
                .iter()
                .any(|r| r.outcome.contains("139700 more refusals")),
            "{later:?}"
        );
        assert!(later.len() <= 101, "{}", later.len());
    }
}
