//! The node's pool for emulated-shell command lines (SSH and Telnet): a line that may
//! run commands goes to tokio's blocking pool, and at most 2 × cores (4 to 32) lines
//! run at once per agent process. One line may do up to its whole work budget (about 200 ms
//! in a debug build), so on the async workers many sessions typing such lines would
//! stall every other service of the node (HTTP, Redis, the agent's telemetry); here
//! they only wait for a permit, and the blocking pool cannot grow past the bound.
//! One source (an IPv4 address or an IPv6 /64) holds at most half the permits at once,
//! so a line from another source always finds one free however many sessions it opens.

use crate::services::limits::SourceKey;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Fewest and most lines in flight per node, whatever the core count.
const MIN_LINES: usize = 4;
const MAX_LINES: usize = 32;

/// Past this many entries, the source map drops those nobody holds or awaits before it
/// adds one. Entries normally go as their last line ends; this catches the ones left by
/// a session that went away while it waited. What stays is one entry per source with a
/// line running or awaited, so the map is bounded by the node's session caps.
const PRUNE_SOURCES_AT: usize = 256;

type Sources = Mutex<HashMap<SourceKey, Arc<Semaphore>>>;

/// Bounds and runs shell lines off the async workers.
#[derive(Debug)]
pub(crate) struct LinePool {
    permits: Arc<Semaphore>,
    /// Permits one source may hold at once: half the bound, at least one.
    share: usize,
    /// Each busy source's share; an entry goes once no line of it runs or waits.
    sources: Arc<Sources>,
    counters: Arc<Counters>,
}

fn lock(sources: &Sources) -> MutexGuard<'_, HashMap<SourceKey, Arc<Semaphore>>> {
    // No critical section can leave the map half-updated, so a poisoned lock is fine.
    sources.lock().unwrap_or_else(|e| e.into_inner())
}

/// One of a source's permits; on drop it gives the permit back, then removes the
/// source's entry if nobody else holds or awaits it (only the map's reference is left).
struct SourcePermit {
    permit: Option<OwnedSemaphorePermit>,
    key: SourceKey,
    sources: Arc<Sources>,
}

impl Drop for SourcePermit {
    fn drop(&mut self) {
        // The permit holds a reference to the semaphore: drop it before counting them.
        drop(self.permit.take());
        let mut map = lock(&self.sources);
        // Waiters clone the entry under this lock, so a count of 1 means none is left.
        if map
            .get(&self.key)
            .is_some_and(|s| Arc::strong_count(s) == 1)
        {
            map.remove(&self.key);
        }
    }
}

/// Lines in flight now, and the most there ever were (what the bound test checks).
#[derive(Debug, Default)]
struct Counters {
    in_flight: AtomicUsize,
    peak: AtomicUsize,
}

/// Takes a line off the in-flight count when its closure ends, even by a panic.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl LinePool {
    /// A pool running at most `limit` lines at once (at least one).
    pub(crate) fn new(limit: usize) -> LinePool {
        let limit = limit.max(1);
        LinePool {
            permits: Arc::new(Semaphore::new(limit)),
            share: (limit / 2).max(1),
            sources: Arc::default(),
            counters: Arc::default(),
        }
    }

    /// The semaphore of `key`'s share, made if the source has none.
    fn source(&self, key: SourceKey) -> Arc<Semaphore> {
        let mut map = lock(&self.sources);
        if !map.contains_key(&key) && map.len() >= PRUNE_SOURCES_AT {
            map.retain(|_, s| Arc::strong_count(s) > 1);
        }
        Arc::clone(
            map.entry(key)
                .or_insert_with(|| Arc::new(Semaphore::new(self.share))),
        )
    }

    /// Sources with an entry in the map now.
    #[cfg(test)]
    fn sources_len(&self) -> usize {
        lock(&self.sources).len()
    }

    /// The one pool of this agent process (one node): twice the cores, 4 to 32 lines.
    pub(crate) fn node() -> &'static LinePool {
        static NODE: OnceLock<LinePool> = OnceLock::new();
        NODE.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            LinePool::new((2 * cores).clamp(MIN_LINES, MAX_LINES))
        })
    }

    /// The most lines that were ever in flight at once.
    #[cfg(test)]
    pub(crate) fn peak(&self) -> usize {
        self.counters.peak.load(Ordering::SeqCst)
    }

    /// Runs `f`, a line from a session whose peer is `src`, on the blocking pool once
    /// both a permit of `src`'s share and a node permit are free; `None` if it panicked.
    ///
    /// The source's permit is taken first, so a source's surplus lines wait in its own
    /// queue and not in the node's, ahead of other sources. Both permits move into the
    /// blocking closure, so they are held while the line runs even when the awaiting
    /// session goes away (dropping this future does not stop the closure): the bounds
    /// count work, not waiting sessions.
    pub(crate) async fn run<R, F>(&self, src: IpAddr, f: F) -> Option<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let key = SourceKey::of(src);
        let mut share = SourcePermit {
            permit: None,
            key,
            sources: Arc::clone(&self.sources),
        };
        // The semaphores are never closed, so acquiring fails only if they were.
        share.permit = Some(self.source(key).acquire_owned().await.ok()?);
        let permit = Arc::clone(&self.permits).acquire_owned().await.ok()?;
        let counters = Arc::clone(&self.counters);
        let job = tokio::task::spawn_blocking(move || {
            // Dropped in reverse order: the node permit, then the source's share.
            let _share = share;
            let _permit = permit;
            let now = counters.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            counters.peak.fetch_max(now, Ordering::SeqCst);
            // Declared after the permit, so dropped before it: the count falls before
            // the next line can start.
            let _in_flight = InFlight(&counters.in_flight);
            f()
        });
        match job.await {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, "shell line failed");
                None
            }
        }
    }
}

/// Whether feeding `data` to a shell may run a command line (a line ends only at CR or
/// LF); other input is line editing and echo, cheap enough for the async worker.
pub(crate) fn runs_a_line(data: &[u8]) -> bool {
    data.iter().any(|&b| b == b'\r' || b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Condvar;
    use std::time::{Duration, Instant};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_limit_lines_are_in_flight() {
        let pool = Arc::new(LinePool::new(2));
        let done = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let pool = Arc::clone(&pool);
            let done = Arc::clone(&done);
            tasks.push(tokio::spawn(async move {
                pool.run(ip("10.0.0.1"), move || {
                    // Long enough that the 16 lines overlap if nothing held them back.
                    std::thread::sleep(Duration::from_millis(20));
                    done.fetch_add(1, Ordering::SeqCst);
                    7
                })
                .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.expect("task"), Some(7));
        }
        assert_eq!(done.load(Ordering::SeqCst), 16);
        assert!(pool.peak() <= 2, "peak {} over the bound", pool.peak());
        assert!(pool.peak() >= 1);
        assert_eq!(pool.counters.in_flight.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_waiter_keeps_the_bound_and_a_panic_is_reported() {
        let pool = Arc::new(LinePool::new(1));
        // The session awaiting this line goes away; the line still holds its permit.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
        let p = Arc::clone(&pool);
        let first = tokio::spawn(async move {
            p.run(ip("10.0.0.1"), move || {
                let _ = started_tx.send(());
                let _ = rx.recv_timeout(Duration::from_secs(10));
            })
            .await
        });
        started.await.expect("first line started");
        first.abort();
        let _ = first.await;
        let p = Arc::clone(&pool);
        let second = tokio::spawn(async move { p.run(ip("10.0.0.1"), || 1).await });
        // The second line can only start once the first has ended.
        let _ = tx.send(());
        assert_eq!(second.await.expect("task"), Some(1));
        assert_eq!(pool.peak(), 1);
        assert_eq!(
            pool.run(ip("10.0.0.1"), || -> u8 { panic!("boom") }).await,
            None
        );
        assert_eq!(pool.run(ip("10.0.0.1"), || 2).await, Some(2));
    }

    /// A gate the test opens once; lines wait on it (bounded by a generous timeout).
    #[derive(Default)]
    struct Gate {
        open: Mutex<bool>,
        cv: Condvar,
    }

    impl Gate {
        fn wait(&self) {
            let g = self.open.lock().expect("gate");
            let _ = self
                .cv
                .wait_timeout_while(g, Duration::from_secs(30), |open| !*open)
                .expect("gate");
        }
        fn open(&self) {
            *self.open.lock().expect("gate") = true;
            self.cv.notify_all();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_source_holds_at_most_half_and_another_source_still_runs() {
        let pool = Arc::new(LinePool::new(4));
        let gate = Arc::new(Gate::default());
        let a_running = Arc::new(AtomicUsize::new(0));
        let a_peak = Arc::new(AtomicUsize::new(0));
        let a_started = Arc::new(AtomicUsize::new(0));
        // Source A: 16 lines from many sessions (one /64), all held until the gate opens.
        let mut lines = Vec::new();
        for i in 0..16u16 {
            let (pool, gate) = (Arc::clone(&pool), Arc::clone(&gate));
            let (running, peak, started) = (
                Arc::clone(&a_running),
                Arc::clone(&a_peak),
                Arc::clone(&a_started),
            );
            let src = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i));
            lines.push(tokio::spawn(async move {
                pool.run(src, move || {
                    started.fetch_add(1, Ordering::SeqCst);
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    gate.wait();
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        // Wait (bounded) until A holds its whole share.
        let deadline = Instant::now() + Duration::from_secs(30);
        while a_running.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(a_running.load(Ordering::SeqCst), 2, "A never got its share");
        // Source B's line runs to the end while every A line is still held.
        let b = tokio::time::timeout(Duration::from_secs(30), pool.run(ip("192.0.2.7"), || "ok"))
            .await
            .expect("B's line waited behind A's");
        assert_eq!(b, Some("ok"));
        let started = a_started.load(Ordering::SeqCst);
        assert_eq!(started, 2, "A ran more than its share");
        assert!(16 - started > 0, "A had no line queued");
        // B's entry went as its line ended; A's stays while A has lines.
        assert_eq!(pool.sources_len(), 1);
        gate.open();
        for l in lines {
            assert_eq!(l.await.expect("task"), Some(()));
        }
        assert_eq!(a_started.load(Ordering::SeqCst), 16);
        assert!(
            a_peak.load(Ordering::SeqCst) <= 2,
            "A held {}",
            a_peak.load(Ordering::SeqCst)
        );
        assert!(pool.peak() <= 4);
        // Idle sources leave nothing behind.
        assert_eq!(pool.sources_len(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_source_map_stays_bounded_with_many_sources_and_cancelled_waiters() {
        let pool = Arc::new(LinePool::new(2));
        // Many distinct sources, one line each: every entry goes when its line ends.
        for i in 0..(2 * PRUNE_SOURCES_AT as u32) {
            let src = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert_eq!(pool.run(src, || 1).await, Some(1));
        }
        assert_eq!(pool.sources_len(), 0);
        // Sessions of one source that go away while queued on its share: the entry
        // goes once the line that held the share ends.
        let gate = Arc::new(Gate::default());
        let (held_tx, held) = tokio::sync::oneshot::channel::<()>();
        let g = Arc::clone(&gate);
        let p = Arc::clone(&pool);
        let x = ip("198.51.100.1");
        let holder = tokio::spawn(async move {
            p.run(x, move || {
                let _ = held_tx.send(());
                g.wait();
            })
            .await
        });
        held.await.expect("holder started");
        let mut waiters = Vec::new();
        for _ in 0..32 {
            let p = Arc::clone(&pool);
            waiters.push(tokio::spawn(async move { p.run(x, || ()).await }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        for w in waiters {
            w.abort();
            let _ = w.await;
        }
        assert_eq!(pool.sources_len(), 1);
        gate.open();
        assert_eq!(holder.await.expect("task"), Some(()));
        assert_eq!(pool.sources_len(), 0);
        // Entries nobody holds (as a waiter cancelled at the wrong moment could leave)
        // are pruned once the map reaches its threshold.
        for i in 0..(2 * PRUNE_SOURCES_AT as u32) {
            let src = IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + i));
            drop(pool.source(SourceKey::of(src)));
        }
        assert!(
            pool.sources_len() <= PRUNE_SOURCES_AT,
            "{} entries",
            pool.sources_len()
        );
        assert_eq!(pool.run(ip("198.51.100.2"), || 3).await, Some(3));
    }

    #[test]
    fn only_line_ends_need_the_pool() {
        assert!(!runs_a_line(b"ls -la"));
        assert!(!runs_a_line(b"\x7f\x03\x04"));
        assert!(runs_a_line(b"ls\r"));
        assert!(runs_a_line(b"\n"));
    }
}
