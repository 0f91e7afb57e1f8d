//! Pre-aggregated event counts for the Overview and Analytics pages.
//!
//! At 1.4 million events a day the eleven `GROUP BY` statements behind one `Stats` read
//! every event of the range: 5–7 s for a day and about a minute for a week on either
//! backend (BENCHMARKS.md). Two small tables hold the same counts per minute instead:
//!
//! - `event_counts (minute, service, kind, n)`: the total, per service and per kind;
//! - `node_counts (minute, node, n)`: per node.
//!
//! (Two narrow tables rather than one keyed by all three: a minute of a busy fleet holds
//! a few dozen (service, kind) pairs and one row per active node, where (node, service,
//! kind) together would hold nearly as many rows as events.)
//!
//! They are written in the same transaction as the events they count (insert adds, the
//! retention's delete subtracts), so they never drift from the events table; a resent
//! batch adds only the rows that were really new. `minute` is `floor(time_ms / 60000)`
//! ([`minute_of`] in Rust, [`MINUTE_SQL`] in SQL; the same for negative times).
//!
//! A query reads whole minutes from these tables and the rest from `events`: a minute is
//! taken from the counts when it lies wholly inside the range and inside one bucket;
//! otherwise (the partial minutes at the ends of the range, the minute a bucket boundary
//! cuts) its events are counted from `events` as before. So any range and bucket gets
//! exactly the answer the plain `GROUP BY` gives — the conformance suite compares the
//! two — and it is fast when the range spans many minutes and few bucket boundaries
//! fall inside a minute (the dashboard's ranges: at most ~100 such minutes).

use super::StoreError;
use super::analytics::{Arg, MAX_TOP};
use honeybee_proto::admin::{KeyCount, Series, StatsQuery};
use std::collections::{BTreeMap, HashMap};

/// Whether stats read the count tables (true but in the benchmark's "before" pass).
static USE_COUNTS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Turns reading the count tables off (`false`) or on, for every store in this process;
/// they are kept up to date either way. For `honeybee-bench --only search`, which times
/// the same store answering both ways; nothing else calls it.
#[doc(hidden)]
pub fn set_event_counts(on: bool) {
    USE_COUNTS.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// The width of one cell of the count tables.
pub(crate) const MINUTE_MS: i64 = 60_000;

/// `floor(time_ms / 60000)` in SQL, with no intermediate that can overflow.
pub(crate) const MINUTE_SQL: &str = "(CASE WHEN time_ms >= 0 THEN time_ms / 60000 \
     ELSE -((-(time_ms + 1)) / 60000) - 1 END)";

/// Most minutes cut by a bucket boundary (counted from `events`) in one query; beyond
/// this the plain statements answer the whole range (see [`Plan::of`]).
pub(crate) const MAX_RAW_STRETCHES: usize = 128;

/// Times beyond ±2^50 ms (35,000 years) are never read from the counts, so no bucket
/// arithmetic on them can overflow an `i64` in SQL.
const SAFE_MS: i64 = 1 << 50;

/// The minute `time_ms` falls in (see [`MINUTE_SQL`]).
pub(crate) fn minute_of(time_ms: i64) -> i64 {
    time_ms.div_euclid(MINUTE_MS)
}

/// Upsert of one `event_counts` delta (`?1..?4`: minute, service, kind, n). The sum may
/// reach zero after retention; such rows are deleted by the retention that zeroed them.
pub(crate) const UPSERT_EVENT_COUNT: &str = "INSERT INTO event_counts (minute, service, kind, n) VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT (minute, service, kind) DO UPDATE SET n = event_counts.n + excluded.n";
/// Upsert of one `node_counts` delta (`?1..?3`: minute, node, n).
pub(crate) const UPSERT_NODE_COUNT: &str = "INSERT INTO node_counts (minute, node, n) \
     VALUES (?1, ?2, ?3) \
     ON CONFLICT (minute, node) DO UPDATE SET n = node_counts.n + excluded.n";

/// Counts of the events stored (`+1` each) or deleted (`-1` each) by one write, folded by
/// cell, ready to be added to the tables.
#[derive(Debug, Default)]
pub(crate) struct Deltas {
    pub events: HashMap<(i64, String, String), i64>,
    pub nodes: HashMap<(i64, String), i64>,
}

impl Deltas {
    pub fn add(&mut self, node: &str, time_ms: i64, service: &str, kind: &str, by: i64) {
        let m = minute_of(time_ms);
        *self
            .events
            .entry((m, service.to_owned(), kind.to_owned()))
            .or_default() += by;
        *self.nodes.entry((m, node.to_owned())).or_default() += by;
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.nodes.is_empty()
    }

    /// The `event_counts` deltas in key order (so two writers touching the same rows lock
    /// them in the same order), zero deltas left out.
    pub fn event_rows(&self) -> Vec<(i64, &str, &str, i64)> {
        let mut v: Vec<_> = self
            .events
            .iter()
            .filter(|&(_, &n)| n != 0)
            .map(|((m, s, k), &n)| (*m, s.as_str(), k.as_str(), n))
            .collect();
        v.sort_unstable();
        v
    }

    /// The `node_counts` deltas in key order, zero deltas left out.
    pub fn node_rows(&self) -> Vec<(i64, &str, i64)> {
        let mut v: Vec<_> = self
            .nodes
            .iter()
            .filter(|&(_, &n)| n != 0)
            .map(|((m, node), &n)| (*m, node.as_str(), n))
            .collect();
        v.sort_unstable();
        v
    }
}

/// The statements that add the counts of every event with `id` in `[?1, ?2)`: the
/// migration's backfill and the PostgreSQL writer's staged path (where which rows were
/// new is known only to the server).
pub(crate) fn add_ids_sql() -> [String; 2] {
    [
        format!(
            "INSERT INTO event_counts (minute, service, kind, n) \
             SELECT {MINUTE_SQL}, service, kind, COUNT(*) FROM events \
             WHERE id >= ?1 AND id < ?2 GROUP BY 1, 2, 3 \
             ON CONFLICT (minute, service, kind) DO UPDATE SET n = event_counts.n + excluded.n"
        ),
        format!(
            "INSERT INTO node_counts (minute, node, n) \
             SELECT {MINUTE_SQL}, node, COUNT(*) FROM events \
             WHERE id >= ?1 AND id < ?2 GROUP BY 1, 2 \
             ON CONFLICT (minute, node) DO UPDATE SET n = node_counts.n + excluded.n"
        ),
    ]
}

/// Deletes the cells retention emptied (minutes before `?1`, the cutoff's minute + 1).
pub(crate) const DROP_EMPTY: [&str; 2] = [
    "DELETE FROM event_counts WHERE minute < ?1 AND n = 0",
    "DELETE FROM node_counts WHERE minute < ?1 AND n = 0",
];

/// Rows of ids to backfill per transaction when a store gains the count tables: big
/// enough that 10 million events take ~100 transactions, small enough that none holds
/// the write lock for long.
/// (Seven in tests, so a test store of a few dozen events is counted in several.)
pub(crate) const BACKFILL_IDS: i64 = if cfg!(test) { 7 } else { 100_000 };

/// How a [`StatsQuery`] is split between the count tables and `events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Minutes `[lo, hi)` whose usable cells are read from the counts (a cell a bucket
    /// boundary cuts is skipped by the SQL and is in `raw`).
    pub minutes: (i64, i64),
    /// Time stretches `[from, to)` whose events are counted from `events`, sorted,
    /// disjoint.
    pub raw: Vec<(i64, i64)>,
}

impl Plan {
    /// The split for `q`, or `None` when the counts cannot help (no whole minute in the
    /// range, times out of the safe range, or more than [`MAX_RAW_STRETCHES`] minutes cut
    /// by bucket boundaries): then the plain statements answer.
    pub fn of(q: &StatsQuery) -> Option<Plan> {
        let (since, until, bucket) = (q.since_ms, q.until_ms, q.bucket_ms);
        if !USE_COUNTS.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        if since < -SAFE_MS || until > SAFE_MS || bucket <= 0 || until <= since {
            return None;
        }
        // Whole minutes inside the range.
        let lo = since.div_euclid(MINUTE_MS) + i64::from(since.rem_euclid(MINUTE_MS) != 0);
        let hi = minute_of(until);
        if lo >= hi {
            return None;
        }
        let mut raw = Vec::new();
        if since < lo * MINUTE_MS {
            raw.push((since, lo * MINUTE_MS));
        }
        // Each bucket boundary inside the whole minutes that is not on a minute: its
        // minute goes to `events`.
        let first = (lo * MINUTE_MS - since).div_euclid(bucket) + 1;
        let mut k = first;
        let mut cut = 0usize;
        // Checked: a bucket may be as wide as an i64 (one bucket for any range).
        while let Some(b) = k.checked_mul(bucket).and_then(|x| x.checked_add(since)) {
            if b >= hi * MINUTE_MS {
                break;
            }
            if b.rem_euclid(MINUTE_MS) != 0 {
                cut += 1;
                if cut > MAX_RAW_STRETCHES {
                    return None;
                }
                let m = minute_of(b) * MINUTE_MS;
                match raw.last_mut() {
                    Some(last) if last.1 >= m => last.1 = last.1.max(m + MINUTE_MS),
                    _ => raw.push((m, m + MINUTE_MS)),
                }
            }
            k += 1;
        }
        if hi * MINUTE_MS < until {
            match raw.last_mut() {
                Some(last) if last.1 >= hi * MINUTE_MS => last.1 = until,
                _ => raw.push((hi * MINUTE_MS, until)),
            }
        }
        Some(Plan {
            minutes: (lo, hi),
            raw,
        })
    }

    /// The three statements (and arguments) whose rows [`Tally::add`] folds, each row
    /// `(service, kind, node, bucket start, count)` with `''` for a column it does not
    /// group by.
    pub fn statements(&self, q: &StatsQuery) -> Vec<(String, Vec<Arg>)> {
        let (since, bucket) = (q.since_ms, q.bucket_ms);
        let (lo, hi) = self.minutes;
        // A cell is used when its first and last millisecond fall in one bucket. The
        // arithmetic is guarded by the range inside a CASE (evaluated in order on every
        // engine), so a cell of an absurd minute (an agent may send any time) outside it
        // can never overflow PostgreSQL's bigint, whichever order the planner tests in.
        let cell = "minute >= ?1 AND minute < ?2 \
             AND CASE WHEN minute >= ?1 AND minute < ?2 \
               THEN (minute * 60000 - ?3) / ?4 = (minute * 60000 + 59999 - ?3) / ?4 \
               ELSE FALSE END";
        let t = "(minute * 60000 - ?3) / ?4 * ?4 + ?3";
        let cell_args = || {
            vec![
                Arg::Int(lo),
                Arg::Int(hi),
                Arg::Int(since),
                Arg::Int(bucket),
            ]
        };
        let mut out = vec![
            (
                format!(
                    "SELECT service, kind, '' AS node, {t} AS t, CAST(SUM(n) AS BIGINT) \
                     FROM event_counts WHERE {cell} GROUP BY service, kind, t"
                ),
                cell_args(),
            ),
            (
                format!(
                    "SELECT '' AS service, '' AS kind, node, {t} AS t, CAST(SUM(n) AS BIGINT) \
                     FROM node_counts WHERE {cell} GROUP BY node, t"
                ),
                cell_args(),
            ),
        ];
        if !self.raw.is_empty() {
            let mut args = vec![Arg::Int(since), Arg::Int(bucket)];
            let mut ors = Vec::with_capacity(self.raw.len());
            // Numbered, as `?1`/`?2` above are (the PostgreSQL backend renumbers `?N`
            // to `$N` and a bare `?` from 1).
            for &(from, to) in &self.raw {
                let i = args.len() + 1;
                ors.push(format!("(time_ms >= ?{i} AND time_ms < ?{})", i + 1));
                args.push(Arg::Int(from));
                args.push(Arg::Int(to));
            }
            out.push((
                format!(
                    "SELECT service, kind, node, (time_ms - ?1) / ?2 * ?2 + ?1 AS t, COUNT(*) \
                     FROM events WHERE {} GROUP BY service, kind, node, t",
                    ors.join(" OR ")
                ),
                args,
            ));
        }
        out
    }
}

/// What the count statements answered, folded into the parts of `Stats` they serve.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// (service, kind) -> bucket start -> count.
    by_service_kind: BTreeMap<(String, String), BTreeMap<i64, i64>>,
    /// node -> bucket start -> count.
    by_node: BTreeMap<String, BTreeMap<i64, i64>>,
}

/// The parts of `Stats` the counts answer.
pub(crate) struct Counted {
    pub events_total: u64,
    pub total: Vec<(i64, u64)>,
    pub by_service: Vec<Series>,
    pub by_node: Vec<Series>,
    pub by_kind: Vec<KeyCount>,
    pub top_services: Vec<KeyCount>,
    pub top_nodes: Vec<KeyCount>,
}

impl Tally {
    /// One row of the `stmt`-th statement of [`Plan::statements`]: the first counts
    /// per (service, kind), the second per node, the third (from `events`) both.
    pub fn add(
        &mut self,
        stmt: usize,
        service: String,
        kind: String,
        node: String,
        t: i64,
        n: i64,
    ) {
        if stmt != 1 {
            *self
                .by_service_kind
                .entry((service, kind))
                .or_default()
                .entry(t)
                .or_default() += n;
        }
        if stmt != 0 {
            *self.by_node.entry(node).or_default().entry(t).or_default() += n;
        }
    }

    /// The same values, in the same order, as the plain statements of
    /// `analytics::stats_sql` give: series by key then time, top lists by count
    /// descending then key; nothing with a zero count.
    pub fn finish(self, top: u32) -> Result<Counted, StoreError> {
        let cnt = |n: i64| -> Result<u64, StoreError> {
            u64::try_from(n).map_err(|_| {
                StoreError::Worker(format!("event count tables hold a negative count ({n})"))
            })
        };
        let mut total: BTreeMap<i64, i64> = BTreeMap::new();
        let mut services: BTreeMap<String, BTreeMap<i64, i64>> = BTreeMap::new();
        let mut kinds: BTreeMap<String, i64> = BTreeMap::new();
        for ((service, kind), points) in self.by_service_kind {
            for (t, n) in points {
                *total.entry(t).or_default() += n;
                *services
                    .entry(service.clone())
                    .or_default()
                    .entry(t)
                    .or_default() += n;
                *kinds.entry(kind.clone()).or_default() += n;
            }
        }
        let series = |m: BTreeMap<String, BTreeMap<i64, i64>>| -> Result<Vec<Series>, StoreError> {
            let mut out = Vec::new();
            for (key, points) in m {
                let points = points
                    .into_iter()
                    .filter(|&(_, n)| n != 0)
                    .map(|(t, n)| Ok((t, cnt(n)?)))
                    .collect::<Result<Vec<_>, StoreError>>()?;
                if !points.is_empty() {
                    out.push(Series { key, points });
                }
            }
            Ok(out)
        };
        let top_of = |sums: Vec<(String, i64)>, top: u32| -> Result<Vec<KeyCount>, StoreError> {
            let mut v = sums
                .into_iter()
                .filter(|(_, n)| *n != 0)
                .map(|(key, n)| {
                    Ok(KeyCount {
                        key,
                        count: cnt(n)?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
            v.truncate(top as usize);
            Ok(v)
        };
        let sum = |points: &BTreeMap<i64, i64>| points.values().sum::<i64>();
        let service_sums: Vec<(String, i64)> =
            services.iter().map(|(k, p)| (k.clone(), sum(p))).collect();
        let node_sums: Vec<(String, i64)> = self
            .by_node
            .iter()
            .map(|(k, p)| (k.clone(), sum(p)))
            .collect();
        let events_total = cnt(total.values().sum())?;
        let total = total
            .into_iter()
            .filter(|&(_, n)| n != 0)
            .map(|(t, n)| Ok((t, cnt(n)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let top = top.min(MAX_TOP);
        Ok(Counted {
            events_total,
            total,
            by_kind: top_of(kinds.into_iter().collect(), MAX_TOP)?,
            top_services: top_of(service_sums, top)?,
            top_nodes: top_of(node_sums, top)?,
            by_service: series(services)?,
            by_node: series(self.by_node)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(since: i64, until: i64, bucket: i64) -> StatsQuery {
        StatsQuery {
            since_ms: since,
            until_ms: until,
            bucket_ms: bucket,
            top: 10,
        }
    }

    /// Every millisecond of the range is either in a usable cell or in exactly one raw
    /// stretch, never both, never neither (checked minute by minute and at the edges).
    fn check_partition(q: &StatsQuery) {
        let Some(p) = Plan::of(q) else { return };
        let in_raw = |t: i64| p.raw.iter().filter(|&&(a, b)| a <= t && t < b).count();
        let usable = |t: i64| {
            let m = minute_of(t);
            let (s, e) = (m * MINUTE_MS, m * MINUTE_MS + MINUTE_MS - 1);
            m >= p.minutes.0
                && m < p.minutes.1
                && (s - q.since_ms) / q.bucket_ms == (e - q.since_ms) / q.bucket_ms
        };
        let mut probes = vec![q.since_ms, q.until_ms - 1];
        let mut t = q.since_ms;
        while t < q.until_ms {
            probes.extend([t, t + MINUTE_MS - 1, minute_of(t) * MINUTE_MS]);
            t += MINUTE_MS / 3;
        }
        for k in 0..=(q.until_ms - q.since_ms) / q.bucket_ms {
            let b = q.since_ms + k * q.bucket_ms;
            probes.extend([b - 1, b, b + 1]);
        }
        for t in probes {
            if t < q.since_ms || t >= q.until_ms {
                continue;
            }
            let r = in_raw(t);
            assert!(r <= 1, "{t} in {r} raw stretches of {p:?}");
            assert_eq!(r == 1, !usable(t), "{t} of {q:?}: {p:?}");
        }
        for w in p.raw.windows(2) {
            assert!(w[0].1 <= w[1].0, "{p:?}");
        }
    }

    #[test]
    fn every_instant_is_counted_once() {
        for (s, u, b) in [
            (0, 3_600_000, 60_000),
            (17, 3_600_017, 60_000),
            (1_000, 86_401_000, 900_000),
            (-7_200_123, 5_000_000, 6_300_000),
            (59_999, 180_001, 1),
            (123_456, 987_654, 45_000),
            (0, 600_000, 600_000),
            (30_000, 90_000, 1_000),
            (-60_000, 0, 60_000),
        ] {
            check_partition(&q(s, u, b));
        }
    }

    #[test]
    fn too_many_partial_minutes_fall_back_to_events() {
        // A bucket of 61 s cuts nearly every minute.
        assert!(Plan::of(&q(0, 61_000 * 1000, 61_000)).is_none());
        // Less than a whole minute.
        assert!(Plan::of(&q(10, 59_000, 1_000)).is_none());
        // Aligned: nothing from events.
        let p = Plan::of(&q(0, 3_600_000, 60_000)).unwrap();
        assert!(p.raw.is_empty());
        // Out of the safe range.
        assert!(Plan::of(&q(i64::MIN, 0, i64::MAX)).is_none());
        // One bucket as wide as an i64: no boundary inside, no overflow.
        let p = Plan::of(&q(1 << 49, (1 << 49) + 10_000_000, i64::MAX)).unwrap();
        assert_eq!(p.raw.len(), 2, "{p:?}");
    }

    #[test]
    fn minute_sql_matches_rust_at_the_edges() {
        for t in [
            i64::MIN,
            -60_001,
            -60_000,
            -59_999,
            -1,
            0,
            59_999,
            60_000,
            i64::MAX,
        ] {
            let sql = if t >= 0 {
                t / 60_000
            } else {
                -((-(t + 1)) / 60_000) - 1
            };
            assert_eq!(sql, minute_of(t), "{t}");
        }
    }
}
