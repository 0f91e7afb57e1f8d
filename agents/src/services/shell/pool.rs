//! The node's pool for emulated-shell command lines (SSH and Telnet): a line that may
//! run commands goes to tokio's blocking pool, and at most 2 × cores (4 to 32) lines
//! run at once per agent process. One line may do up to its whole work budget (about 200 ms
//! in a debug build), so on the async workers many sessions typing such lines would
//! stall every other service of the node (HTTP, Redis, the agent's telemetry); here
//! they only wait for a permit, and the blocking pool cannot grow past the bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::Semaphore;

/// Fewest and most lines in flight per node, whatever the core count.
const MIN_LINES: usize = 4;
const MAX_LINES: usize = 32;

/// Bounds and runs shell lines off the async workers.
#[derive(Debug)]
pub(crate) struct LinePool {
    permits: Arc<Semaphore>,
    counters: Arc<Counters>,
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
            counters: Arc::default(),
        }
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

    /// Runs `f` on the blocking pool once a permit is free; `None` if it panicked.
    ///
    /// The permit moves into the blocking closure, so it is held while the line runs
    /// even when the awaiting session goes away (dropping this future does not stop
    /// the closure): the bound counts work, not waiting sessions.
    pub(crate) async fn run<R, F>(&self, f: F) -> Option<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        // The semaphore is never closed, so acquiring fails only if it were.
        let permit = Arc::clone(&self.permits).acquire_owned().await.ok()?;
        let counters = Arc::clone(&self.counters);
        let job = tokio::task::spawn_blocking(move || {
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
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_limit_lines_are_in_flight() {
        let pool = Arc::new(LinePool::new(2));
        let done = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let pool = Arc::clone(&pool);
            let done = Arc::clone(&done);
            tasks.push(tokio::spawn(async move {
                pool.run(move || {
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
            p.run(move || {
                let _ = started_tx.send(());
                let _ = rx.recv_timeout(Duration::from_secs(10));
            })
            .await
        });
        started.await.expect("first line started");
        first.abort();
        let _ = first.await;
        let p = Arc::clone(&pool);
        let second = tokio::spawn(async move { p.run(|| 1).await });
        // The second line can only start once the first has ended.
        let _ = tx.send(());
        assert_eq!(second.await.expect("task"), Some(1));
        assert_eq!(pool.peak(), 1);
        assert_eq!(pool.run(|| -> u8 { panic!("boom") }).await, None);
        assert_eq!(pool.run(|| 2).await, Some(2));
    }

    #[test]
    fn only_line_ends_need_the_pool() {
        assert!(!runs_a_line(b"ls -la"));
        assert!(!runs_a_line(b"\x7f\x03\x04"));
        assert!(runs_a_line(b"ls\r"));
        assert!(runs_a_line(b"\n"));
    }
}
