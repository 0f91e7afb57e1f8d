//! Sign-in rate limiting, sans-IO (time passed in): failed attempts are counted per
//! source address and per user name in a sliding window; past the limit, every attempt
//! for that key is refused (even a correct one) until the window has moved on.
//!
//! An attempt takes its place in the count *before* its password is hashed (it is
//! "in flight" until its outcome is known), so parallel requests cannot all pass the check
//! while none has failed yet: at most `limit` guesses per key are ever evaluated per
//! window, however many arrive at once. [`HashGate`] bounds how many argon2 hashes (about
//! 19 MiB of memory each) run at once, and how many requests may wait for one; past that a
//! request is refused at once instead of queueing.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Failed attempts allowed per key within the window.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_source: usize,
    pub per_user: usize,
    pub window: Duration,
    /// Keys tracked at most per kind; the oldest are forgotten first.
    pub max_keys: usize,
    /// Password hashes (sign-in checks, new accounts) computed at once, dashboard-wide.
    pub max_concurrent_hashes: usize,
    /// Requests that may wait for a hash slot; one more is refused at once (429).
    pub max_queued_hashes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_source: 20,
            per_user: 5,
            window: Duration::from_secs(300),
            max_keys: 10_000,
            max_concurrent_hashes: 2,
            max_queued_hashes: 16,
        }
    }
}

#[derive(Debug)]
struct Window<K> {
    fails: HashMap<K, VecDeque<Duration>>,
    /// Attempts begun and not yet finished, per key. Bounded by the requests in flight,
    /// which [`HashGate`] bounds; an entry goes when its count reaches zero.
    pending: HashMap<K, usize>,
    limit: usize,
}

impl<K: Hash + Eq + Clone> Window<K> {
    fn new(limit: usize) -> Self {
        Window {
            fails: HashMap::new(),
            pending: HashMap::new(),
            limit,
        }
    }

    fn reserve(&mut self, key: K) {
        *self.pending.entry(key).or_default() += 1;
    }

    fn release(&mut self, key: &K) {
        if let Some(n) = self.pending.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.pending.remove(key);
            }
        }
    }

    fn prune(&mut self, key: &K, now: Duration, window: Duration) {
        if let Some(q) = self.fails.get_mut(key) {
            while q.front().is_some_and(|t| now.saturating_sub(*t) >= window) {
                q.pop_front();
            }
            if q.is_empty() {
                self.fails.remove(key);
            }
        }
    }

    /// Seconds until `key` may try again, if its failures plus its attempts in flight
    /// reach the limit.
    fn blocked(&mut self, key: &K, now: Duration, window: Duration) -> Option<u64> {
        self.prune(key, now, window);
        let pending = self.pending.get(key).copied().unwrap_or(0);
        let fails = self.fails.get(key).map_or(0, VecDeque::len);
        if fails + pending < self.limit {
            return None;
        }
        match self.fails.get(key).and_then(|q| q.front()) {
            // Full of failures: until the oldest leaves the window.
            Some(oldest) if fails >= self.limit => Some(
                (window.saturating_sub(now.saturating_sub(*oldest)))
                    .as_secs()
                    .max(1),
            ),
            // Full only because of attempts still being checked: they end within a second
            // or two, and may succeed.
            _ => Some(1),
        }
    }

    fn fail(&mut self, key: K, now: Duration, window: Duration, max_keys: usize) {
        if self.fails.len() >= max_keys && !self.fails.contains_key(&key) {
            // Bounded memory under a spray of sources: forget everything that has expired,
            // and if that is not enough, the key whose latest failure is oldest.
            self.fails
                .retain(|_, q| q.back().is_some_and(|t| now.saturating_sub(*t) < window));
            if self.fails.len() >= max_keys
                && let Some(k) = self
                    .fails
                    .iter()
                    .min_by_key(|(_, q)| q.back().copied())
                    .map(|(k, _)| k.clone())
            {
                self.fails.remove(&k);
            }
        }
        let q = self.fails.entry(key).or_default();
        q.push_back(now);
        while q.len() > self.limit {
            q.pop_front();
        }
    }
}

/// The sign-in limiter: one window per source, one per user name.
#[derive(Debug)]
pub struct LoginLimiter {
    limits: Limits,
    sources: Window<IpAddr>,
    users: Window<String>,
}

impl LoginLimiter {
    pub fn new(limits: Limits) -> Self {
        LoginLimiter {
            limits,
            sources: Window::new(limits.per_source),
            users: Window::new(limits.per_user),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// `Some(seconds)` when this source or user must wait before trying again.
    pub fn check(&mut self, source: IpAddr, user: &str, now: Duration) -> Option<u64> {
        let w = self.limits.window;
        let user = user.to_lowercase();
        let a = self.sources.blocked(&source, now, w);
        let b = self.users.blocked(&user, now, w);
        a.max(b)
    }

    /// Checks and, when allowed, counts this attempt as in flight for its source and its
    /// user, in one step: `Err(seconds)` when it must wait. Every `Ok` must be followed by
    /// exactly one [`LoginLimiter::finish`].
    pub fn begin(&mut self, source: IpAddr, user: &str, now: Duration) -> Result<(), u64> {
        if let Some(wait) = self.check(source, user, now) {
            return Err(wait);
        }
        self.sources.reserve(source);
        self.users.reserve(user.to_lowercase());
        Ok(())
    }

    /// Ends an attempt [`LoginLimiter::begin`] let through; `failed` counts it against the
    /// source and the user.
    pub fn finish(&mut self, source: IpAddr, user: &str, now: Duration, failed: bool) {
        let user = user.to_lowercase();
        self.sources.release(&source);
        self.users.release(&user);
        if failed {
            let (w, m) = (self.limits.window, self.limits.max_keys);
            self.sources.fail(source, now, w, m);
            self.users.fail(user, now, w, m);
        }
    }

    pub fn failed(&mut self, source: IpAddr, user: &str, now: Duration) {
        let (w, m) = (self.limits.window, self.limits.max_keys);
        self.sources.fail(source, now, w, m);
        self.users.fail(user.to_lowercase(), now, w, m);
    }
}

/// What the hash gate has done, for tests and the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HashStats {
    /// Hashes computed.
    pub hashed: u64,
    /// Requests refused because every slot and every queue place was taken.
    pub refused_busy: u64,
    /// The most hashes that ever ran at once.
    pub peak_concurrent: usize,
}

/// Bounds password hashing dashboard-wide: at most `max_concurrent_hashes` run at once (on
/// blocking threads), at most `max_queued_hashes` requests wait for a slot, and a request
/// beyond that is refused without waiting.
#[derive(Debug)]
pub struct HashGate {
    admission: Arc<Semaphore>,
    slots: Arc<Semaphore>,
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    hashed: Arc<AtomicU64>,
    refused: AtomicU64,
}

/// A place in the hash queue (see [`HashGate::admit`]).
#[derive(Debug)]
pub struct Admitted {
    _place: OwnedSemaphorePermit,
}

impl HashGate {
    pub fn new(limits: &Limits) -> HashGate {
        let slots = limits.max_concurrent_hashes.max(1);
        HashGate {
            admission: Arc::new(Semaphore::new(slots + limits.max_queued_hashes)),
            slots: Arc::new(Semaphore::new(slots)),
            running: Arc::default(),
            peak: Arc::default(),
            hashed: Arc::default(),
            refused: AtomicU64::new(0),
        }
    }

    /// A place in the queue, or `None` (answer 429) when the queue is full.
    pub fn admit(&self) -> Option<Admitted> {
        match self.admission.clone().try_acquire_owned() {
            Ok(p) => Some(Admitted { _place: p }),
            Err(_) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Waits for a slot, then runs `f` (a hash) on a blocking thread. The slot is held by
    /// the blocking work itself: a caller that goes away (the client hung up) does not
    /// free it before the hash has finished, so the bound holds for work, not requests.
    pub async fn run<T: Send + 'static>(
        &self,
        admitted: Admitted,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        let slot = match self.slots.clone().acquire_owned().await {
            Ok(s) => s,
            // The semaphore is never closed; run unbounded rather than fail sign-in.
            Err(_) => return tokio::task::spawn_blocking(f).await,
        };
        let (running, peak, hashed) =
            (self.running.clone(), self.peak.clone(), self.hashed.clone());
        let r = tokio::task::spawn_blocking(move || {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let r = f();
            hashed.fetch_add(1, Ordering::Relaxed);
            running.fetch_sub(1, Ordering::SeqCst);
            drop(slot);
            r
        })
        .await;
        drop(admitted);
        r
    }

    pub fn stats(&self) -> HashStats {
        HashStats {
            hashed: self.hashed.load(Ordering::Relaxed),
            refused_busy: self.refused.load(Ordering::Relaxed),
            peak_concurrent: self.peak.load(Ordering::SeqCst),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn per_user_limit_then_window_moves_on() {
        let mut l = LoginLimiter::new(Limits::default());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for i in 0..5 {
            assert_eq!(l.check(ip, "root", s(i)), None);
            l.failed(ip, "root", s(i));
        }
        let wait = l
            .check(ip, "ROOT", s(10))
            .expect("blocked, whatever the case");
        assert!(wait > 0 && wait <= 300);
        assert_eq!(l.check(ip, "alice", s(10)), None, "other users unaffected");
        assert_eq!(l.check(ip, "root", s(301)), None, "window passed");
    }

    #[test]
    fn per_source_limit_covers_every_user() {
        let mut l = LoginLimiter::new(Limits::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..20u64 {
            l.failed(ip, &format!("u{i}"), s(1));
        }
        assert!(l.check(ip, "fresh", s(2)).is_some());
        assert!(
            l.check("192.0.2.2".parse().unwrap(), "fresh", s(2))
                .is_none()
        );
    }

    #[test]
    fn attempts_in_flight_count_before_they_fail() {
        // The race: many attempts begin before any has failed. Only `per_user` may begin.
        let mut l = LoginLimiter::new(Limits::default());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let begun = (0..500)
            .filter(|_| l.begin(ip, "admin", s(1)).is_ok())
            .count();
        assert_eq!(begun, 5);
        assert_eq!(l.begin(ip, "Admin", s(1)), Err(1), "in flight: retry soon");
        for _ in 0..begun {
            l.finish(ip, "admin", s(2), true);
        }
        let wait = l.begin(ip, "admin", s(3)).expect_err("five failures now");
        assert!(wait > 1 && wait <= 300, "{wait}");
        assert!(l.users.pending.is_empty() && l.sources.pending.is_empty());
        assert!(l.begin(ip, "admin", s(302)).is_ok(), "window passed");
    }

    #[test]
    fn a_success_frees_its_place() {
        let mut l = LoginLimiter::new(Limits::default());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..100 {
            l.begin(ip, "admin", s(1)).unwrap();
            l.finish(ip, "admin", s(1), false);
        }
        assert!(l.users.pending.is_empty());
        assert_eq!(l.check(ip, "admin", s(1)), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hash_gate_bounds_concurrency_and_queue() {
        let gate = Arc::new(HashGate::new(&Limits {
            max_concurrent_hashes: 2,
            max_queued_hashes: 3,
            ..Limits::default()
        }));
        // Five admitted (2 running + 3 waiting); every later request is refused at once.
        let admitted: Vec<_> = (0..50).filter_map(|_| gate.admit()).collect();
        assert_eq!(admitted.len(), 5);
        assert_eq!(gate.stats().refused_busy, 45);
        let tasks: Vec<_> = admitted
            .into_iter()
            .map(|a| {
                let g = gate.clone();
                tokio::spawn(async move {
                    g.run(a, || std::thread::sleep(Duration::from_millis(20)))
                        .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let st = gate.stats();
        assert_eq!(st.hashed, 5);
        assert!(st.peak_concurrent <= 2, "{st:?}");
        assert!(gate.admit().is_some(), "places come back");
    }

    #[test]
    fn memory_is_bounded() {
        let mut l = LoginLimiter::new(Limits {
            max_keys: 100,
            ..Limits::default()
        });
        for i in 0..10_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            l.failed(ip, &format!("user{i}"), s(u64::from(i) / 100));
        }
        assert!(l.sources.fails.len() <= 100);
        assert!(l.users.fails.len() <= 100);
    }
}
