//! Sign-in rate limiting, sans-IO (time passed in): failed attempts are counted per
//! source address and per user name in a sliding window; past the limit, every attempt
//! for that key is refused (even a correct one) until the window has moved on.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::time::Duration;

/// Failed attempts allowed per key within the window.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_source: usize,
    pub per_user: usize,
    pub window: Duration,
    /// Keys tracked at most per kind; the oldest are forgotten first.
    pub max_keys: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_source: 20,
            per_user: 5,
            window: Duration::from_secs(300),
            max_keys: 10_000,
        }
    }
}

#[derive(Debug)]
struct Window<K> {
    fails: HashMap<K, VecDeque<Duration>>,
    limit: usize,
}

impl<K: Hash + Eq + Clone> Window<K> {
    fn new(limit: usize) -> Self {
        Window {
            fails: HashMap::new(),
            limit,
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

    /// Seconds until `key` may try again, if it is over the limit.
    fn blocked(&mut self, key: &K, now: Duration, window: Duration) -> Option<u64> {
        self.prune(key, now, window);
        let q = self.fails.get(key)?;
        if q.len() < self.limit {
            return None;
        }
        let oldest = *q.front()?;
        Some(
            (window.saturating_sub(now.saturating_sub(oldest)))
                .as_secs()
                .max(1),
        )
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

    /// `Some(seconds)` when this source or user must wait before trying again.
    pub fn check(&mut self, source: IpAddr, user: &str, now: Duration) -> Option<u64> {
        let w = self.limits.window;
        let user = user.to_lowercase();
        let a = self.sources.blocked(&source, now, w);
        let b = self.users.blocked(&user, now, w);
        a.max(b)
    }

    pub fn failed(&mut self, source: IpAddr, user: &str, now: Duration) {
        let (w, m) = (self.limits.window, self.limits.max_keys);
        self.sources.fail(source, now, w, m);
        self.users.fail(user.to_lowercase(), now, w, m);
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
