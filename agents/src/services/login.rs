//! Login memory of a node's system accounts (SSH and Telnet): counts password attempts
//! per source and user across connections, remembers the password that got in and
//! accepts it again later (and no other for that user from that source), bounded in
//! sources and users, persisted atomically in the agent's data directory.
//!
//! A real Debian box has one password per account: a bot that guessed `root/123456` gets
//! in again with it tomorrow, and `root/other` never works. Without memory, a honeypot
//! that lets "the third attempt" in admits a different password each connection and
//! refuses the one that worked a minute ago: a one-probe tell.
//!
//! The table ([`Table`]) is sans-IO: the caller passes the time in (Unix seconds, so the
//! timestamps stay meaningful across restarts). [`LoginBook`] wraps it with a lock and
//! the file. One book per node, shared by SSH and Telnet: both log into the same
//! `/etc/shadow` on the box they imitate, so a password that worked over SSH is the one
//! Telnet accepts too.

use super::limits::SourceKey;
use honeybee_proto::config::LoginPolicy;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// File name of the persisted table inside the agent's data directory.
pub(crate) const LOGIN_MEMORY_FILE: &str = "login-memory.bin";

/// Sources remembered at most; past it the least recently seen source without an
/// accepted password is forgotten first.
pub(crate) const MAX_SOURCES: usize = 4096;

/// Users remembered per source. When all are taken by accepted passwords, further users
/// from that source are refused (never admitted without being remembered).
pub(crate) const MAX_USERS_PER_SOURCE: usize = 8;

/// Longest memory kept whatever the services ask (as [`honeybee_proto::config::Remember`]).
const MAX_TTL_S: u64 = honeybee_proto::config::Remember::MAX_SECS;

/// A change is written to disk at most this long after it happened.
const SAVE_DELAY: Duration = Duration::from_secs(2);

const MAGIC: &[u8; 8] = b"HBLOGIN1";
const DIGEST_LEN: usize = 8;
const SRC_LEN: usize = 9;
const USER_RECORD: usize = DIGEST_LEN + 4 + 1 + DIGEST_LEN + 8;
const SOURCE_HEADER: usize = SRC_LEN + 1;
const CHECKSUM_LEN: usize = 32;

/// The largest file a full table makes; anything larger is not ours.
pub(crate) const MAX_FILE_BYTES: usize = MAGIC.len()
    + 4
    + MAX_SOURCES * (SOURCE_HEADER + MAX_USERS_PER_SOURCE * USER_RECORD)
    + CHECKSUM_LEN;

/// A source as stored: a tag (4 or 6) and the IPv4 address or the IPv6 /64 prefix.
type Src = [u8; SRC_LEN];

/// A truncated SHA-256: the table compares names and passwords, it never shows them
/// (events already carry them), so 8 bytes keep it small and collisions negligible.
type Digest = [u8; DIGEST_LEN];

fn src_of(key: SourceKey) -> Src {
    let mut s = [0u8; SRC_LEN];
    match key {
        SourceKey::V4(o) => {
            s[0] = 4;
            s[1..5].copy_from_slice(&o);
        }
        SourceKey::V6Prefix(p) => {
            s[0] = 6;
            s[1..9].copy_from_slice(&p);
        }
    }
    s
}

fn valid_src(s: &Src) -> bool {
    match s[0] {
        4 => s[5..].iter().all(|&b| b == 0),
        6 => true,
        _ => false,
    }
}

fn digest(domain: &[u8], text: &str) -> Digest {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(domain);
    ctx.update(text.as_bytes());
    let full = ctx.finish();
    let mut d = [0u8; DIGEST_LEN];
    d.copy_from_slice(&full.as_ref()[..DIGEST_LEN]);
    d
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct UserEntry {
    user: Digest,
    /// Failed attempts counted toward the policy (before a password was accepted).
    failures: u32,
    /// The password that got in; then the only one that does.
    password: Option<Digest>,
    /// Unix seconds of the last attempt (failures) or of the last login (accepted).
    last: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SourceEntry {
    /// Position in the eviction order (larger = more recent).
    tick: u64,
    users: Vec<UserEntry>,
}

impl SourceEntry {
    fn pinned(&self) -> bool {
        self.users.iter().any(|u| u.password.is_some())
    }

    fn last(&self) -> u64 {
        self.users.iter().map(|u| u.last).max().unwrap_or(0)
    }
}

/// The sans-IO login memory: per source, per user, failures and the accepted password.
#[derive(Debug)]
pub(crate) struct Table {
    sources: HashMap<Src, SourceEntry>,
    /// Eviction order: sources without an accepted password first, then least recently
    /// touched first.
    order: BTreeSet<(bool, u64, Src)>,
    tick: u64,
    max_sources: usize,
}

impl Table {
    pub(crate) fn new(max_sources: usize) -> Table {
        Table {
            sources: HashMap::new(),
            order: BTreeSet::new(),
            tick: 0,
            max_sources: max_sources.max(1),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.sources.len()
    }

    /// Decides one password attempt of `user` from `src` at `now` under `policy`, with
    /// memories older than `remember_s` forgotten, and records it.
    ///
    /// - A user with an accepted password from this source: that password and only it.
    /// - Otherwise the policy decides, with the failures counted from this source for
    ///   this user; the password it accepts becomes the remembered one.
    /// - `Never` records nothing: there is nothing to remember.
    pub(crate) fn attempt(
        &mut self,
        src: SourceKey,
        user: &str,
        password: &str,
        policy: &LoginPolicy,
        remember_s: u64,
        now: u64,
    ) -> bool {
        if matches!(policy, LoginPolicy::Never) {
            return false;
        }
        let remember_s = remember_s.min(MAX_TTL_S);
        let src = src_of(src);
        let user_d = digest(b"user\0", user);
        let pass_d = digest(b"pass\0", password);
        self.expire(now);
        if !self.sources.contains_key(&src) {
            while self.sources.len() >= self.max_sources {
                let Some(&(_, _, victim)) = self.order.first() else {
                    break;
                };
                self.remove(&victim);
            }
            self.tick += 1;
            self.sources.insert(
                src,
                SourceEntry {
                    tick: self.tick,
                    users: Vec::new(),
                },
            );
            self.order.insert((false, self.tick, src));
        }
        let Some(entry) = self.sources.get_mut(&src) else {
            return false;
        };
        self.order.remove(&(entry.pinned(), entry.tick, src));
        self.tick += 1;
        entry.tick = self.tick;
        // This service's own memory may be shorter than the table's.
        entry
            .users
            .retain(|u| now.saturating_sub(u.last) <= remember_s);
        let success = decide(entry, user_d, pass_d, policy, user, password, now);
        self.order.insert((entry.pinned(), entry.tick, src));
        success
    }

    /// Forgets sources whose newest memory is older than the longest a service keeps.
    fn expire(&mut self, now: u64) {
        for pinned in [false, true] {
            loop {
                let first = self
                    .order
                    .range((pinned, 0, [0; SRC_LEN])..)
                    .next()
                    .copied();
                let Some((p, _, src)) = first else { break };
                if p != pinned {
                    break;
                }
                let stale = self
                    .sources
                    .get(&src)
                    .is_none_or(|e| now.saturating_sub(e.last()) > MAX_TTL_S);
                if !stale {
                    break;
                }
                self.remove(&src);
            }
        }
    }

    fn remove(&mut self, src: &Src) {
        if let Some(e) = self.sources.remove(src) {
            self.order.remove(&(e.pinned(), e.tick, *src));
        } else {
            self.order.retain(|(_, _, s)| s != src);
        }
    }

    /// The table as the file stores it: magic, count, records, SHA-256 of all before.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.sources.len() * (SOURCE_HEADER + USER_RECORD));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.sources.len() as u32).to_le_bytes());
        // Oldest first, so that loading replays the eviction order.
        for &(_, _, src) in &self.order {
            let Some(e) = self.sources.get(&src) else {
                continue;
            };
            out.extend_from_slice(&src);
            out.push(e.users.len() as u8);
            for u in &e.users {
                out.extend_from_slice(&u.user);
                out.extend_from_slice(&u.failures.to_le_bytes());
                out.push(u8::from(u.password.is_some()));
                out.extend_from_slice(&u.password.unwrap_or_default());
                out.extend_from_slice(&u.last.to_le_bytes());
            }
        }
        let sum = ring::digest::digest(&ring::digest::SHA256, &out);
        out.extend_from_slice(sum.as_ref());
        out
    }

    /// Reads a table written by [`Table::encode`]; anything malformed is an error (the
    /// caller starts empty). Memories older than the longest kept are dropped.
    pub(crate) fn decode(bytes: &[u8], max_sources: usize, now: u64) -> Result<Table, String> {
        if bytes.len() > MAX_FILE_BYTES {
            return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
        }
        let body_len = bytes.len().checked_sub(CHECKSUM_LEN).ok_or("truncated")?;
        let (body, sum) = bytes.split_at(body_len);
        if ring::digest::digest(&ring::digest::SHA256, body).as_ref() != sum {
            return Err("checksum mismatch".into());
        }
        let mut r = Reader(body);
        if r.take(MAGIC.len())? != MAGIC {
            return Err("not a login memory file".into());
        }
        let count = u32::from_le_bytes(r.array()?) as usize;
        if count > MAX_SOURCES {
            return Err(format!("{count} sources, more than {MAX_SOURCES}"));
        }
        let mut t = Table::new(max_sources);
        for _ in 0..count {
            let src: Src = r.array()?;
            if !valid_src(&src) {
                return Err("bad source".into());
            }
            let n = usize::from(r.array::<1>()?[0]);
            if n > MAX_USERS_PER_SOURCE {
                return Err(format!("{n} users for one source"));
            }
            let mut users = Vec::with_capacity(n);
            for _ in 0..n {
                let user: Digest = r.array()?;
                let failures = u32::from_le_bytes(r.array()?);
                let has = r.array::<1>()?[0];
                let password: Digest = r.array()?;
                let last = u64::from_le_bytes(r.array()?);
                let password = match has {
                    0 => None,
                    1 => Some(password),
                    _ => return Err("bad password flag".into()),
                };
                if users.iter().any(|u: &UserEntry| u.user == user) {
                    return Err("user twice for one source".into());
                }
                if now.saturating_sub(last) <= MAX_TTL_S {
                    users.push(UserEntry {
                        user,
                        failures,
                        password,
                        last,
                    });
                }
            }
            if users.is_empty() || t.sources.contains_key(&src) {
                continue;
            }
            while t.sources.len() >= t.max_sources {
                let Some(&(_, _, victim)) = t.order.first() else {
                    break;
                };
                t.remove(&victim);
            }
            t.tick += 1;
            let e = SourceEntry {
                tick: t.tick,
                users,
            };
            t.order.insert((e.pinned(), e.tick, src));
            t.sources.insert(src, e);
        }
        if !r.0.is_empty() {
            return Err("trailing bytes".into());
        }
        Ok(t)
    }
}

/// The decision for one attempt on one source's entry.
fn decide(
    entry: &mut SourceEntry,
    user_d: Digest,
    pass_d: Digest,
    policy: &LoginPolicy,
    user: &str,
    password: &str,
    now: u64,
) -> bool {
    let idx = match entry.users.iter().position(|u| u.user == user_d) {
        Some(i) => i,
        None => {
            if entry.users.len() >= MAX_USERS_PER_SOURCE {
                // Forget the stalest user without an accepted password; if every slot
                // holds one, this user cannot be remembered and so is not let in.
                let Some(victim) = entry
                    .users
                    .iter()
                    .enumerate()
                    .filter(|(_, u)| u.password.is_none())
                    .min_by_key(|(_, u)| u.last)
                    .map(|(i, _)| i)
                else {
                    return false;
                };
                entry.users.swap_remove(victim);
            }
            entry.users.push(UserEntry {
                user: user_d,
                failures: 0,
                password: None,
                last: now,
            });
            entry.users.len() - 1
        }
    };
    let u = &mut entry.users[idx];
    if let Some(known) = u.password {
        if known == pass_d {
            u.last = now;
            return true;
        }
        return false;
    }
    u.last = now;
    if policy.accepts(u.failures, user, password) {
        u.password = Some(pass_d);
        true
    } else {
        u.failures = u.failures.saturating_add(1);
        false
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated".into());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
}

/// The node's login memory: the table behind a lock, saved to `dir` shortly after each
/// change (and at shutdown), loaded from it at start.
#[derive(Debug)]
pub(crate) struct LoginBook {
    table: Mutex<Table>,
    file: crate::statefile::DelayedFile,
}

impl LoginBook {
    /// Loads `dir`'s file if there is a valid one; a missing file is an empty table, a
    /// corrupt one is ignored with a warning (and replaced at the next save).
    pub(crate) fn open(dir: &Path) -> Arc<LoginBook> {
        let path = dir.join(LOGIN_MEMORY_FILE);
        let table = match crate::statefile::read_bounded(&path, MAX_FILE_BYTES) {
            Ok(None) => Table::new(MAX_SOURCES),
            Ok(Some(bytes)) => match Table::decode(&bytes, MAX_SOURCES, unix_now()) {
                Ok(t) => {
                    tracing::info!(path = %path.display(), sources = t.len(), "login memory loaded");
                    t
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "login memory ignored: corrupt");
                    Table::new(MAX_SOURCES)
                }
            },
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "login memory ignored: unreadable");
                Table::new(MAX_SOURCES)
            }
        };
        Arc::new(LoginBook {
            table: Mutex::new(table),
            file: crate::statefile::DelayedFile::new(path, SAVE_DELAY, "the login memory"),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // Every update leaves the table consistent before it can panic, if it ever did.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides and records one password attempt (see [`Table::attempt`]) and schedules
    /// a save.
    pub(crate) fn attempt(
        self: &Arc<Self>,
        ip: std::net::IpAddr,
        user: &str,
        password: &str,
        policy: &LoginPolicy,
        remember_s: u64,
    ) -> bool {
        let ok = self.lock().attempt(
            SourceKey::of(ip),
            user,
            password,
            policy,
            remember_s,
            unix_now(),
        );
        if !matches!(policy, LoginPolicy::Never) {
            self.schedule_save();
        }
        ok
    }

    fn schedule_save(self: &Arc<Self>) {
        crate::statefile::DelayedFile::schedule(self);
    }

    /// Writes the table now (in a blocking thread); a failure is logged, not fatal.
    pub(crate) async fn save(self: &Arc<Self>) {
        crate::statefile::DelayedFile::save_now(self).await;
    }
}

impl crate::statefile::Snapshot for LoginBook {
    fn file(&self) -> &crate::statefile::DelayedFile {
        &self.file
    }

    fn snapshot(&self) -> Vec<u8> {
        self.lock().encode()
    }
}

fn unix_now() -> u64 {
    u64::try_from(crate::sink::now_ms() / 1000).unwrap_or(0)
}

/// A failure delay as Linux-PAM draws it: `base` times 1 ± 25%, distributed as the sum
/// of three uniform draws (so near `base` more often than at the edges).
pub(crate) fn pam_delay(base: Duration) -> Duration {
    if base.is_zero() {
        return base;
    }
    let sum: f64 = (0..3).map(|_| rand::random::<f64>()).sum();
    let factor = 1.0 + (sum / 3.0 - 0.5) / 2.0;
    base.mul_f64(factor.clamp(0.75, 1.25))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    const DAY: u64 = 86_400;
    const WEEK: u64 = 7 * DAY;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> SourceKey {
        SourceKey::of(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
    }

    #[test]
    fn after_attempts_counts_per_source_and_user_across_connections() {
        let p = LoginPolicy::AfterAttempts(2);
        let mut t = Table::new(16);
        let a = v4(10, 0, 0, 1);
        // One try per "connection": the third gets in, whatever its password.
        assert!(!t.attempt(a, "root", "1", &p, WEEK, 100));
        assert!(!t.attempt(a, "root", "2", &p, WEEK, 101));
        // Another user and another source have counts of their own.
        assert!(!t.attempt(a, "admin", "x", &p, WEEK, 102));
        assert!(!t.attempt(v4(10, 0, 0, 2), "root", "3", &p, WEEK, 103));
        assert!(t.attempt(a, "root", "3", &p, WEEK, 104));
        // Remembered: the same again, and no other password for root from there.
        assert!(t.attempt(a, "root", "3", &p, WEEK, 200));
        assert!(!t.attempt(a, "root", "1", &p, WEEK, 201));
        assert!(!t.attempt(a, "root", "4", &p, WEEK, 202));
        assert!(t.attempt(a, "root", "3", &p, WEEK, 203));
        // The other source's root is still counting.
        assert!(!t.attempt(v4(10, 0, 0, 2), "root", "5", &p, WEEK, 204));
        assert!(t.attempt(v4(10, 0, 0, 2), "root", "6", &p, WEEK, 205));
    }

    #[test]
    fn always_pins_the_first_password_and_never_remembers_nothing() {
        let mut t = Table::new(16);
        let a = v4(192, 0, 2, 1);
        assert!(t.attempt(a, "root", "first", &LoginPolicy::Always, WEEK, 1));
        assert!(!t.attempt(a, "root", "second", &LoginPolicy::Always, WEEK, 2));
        assert!(t.attempt(a, "admin", "second", &LoginPolicy::Always, WEEK, 3));
        assert!(!t.attempt(a, "root", "first", &LoginPolicy::Never, WEEK, 4));
        let mut n = Table::new(16);
        assert!(!n.attempt(a, "root", "x", &LoginPolicy::Never, WEEK, 1));
        assert_eq!(n.len(), 0);
    }

    #[test]
    fn credentials_admit_one_password_per_user_and_source() {
        let p = LoginPolicy::Credentials(vec![
            ("root".into(), "a".into()),
            ("root".into(), "b".into()),
        ]);
        let mut t = Table::new(16);
        let a = v4(192, 0, 2, 1);
        assert!(!t.attempt(a, "root", "zzz", &p, WEEK, 1));
        assert!(t.attempt(a, "root", "b", &p, WEEK, 2));
        assert!(!t.attempt(a, "root", "a", &p, WEEK, 3));
        assert!(t.attempt(v4(192, 0, 2, 2), "root", "a", &p, WEEK, 4));
    }

    #[test]
    fn memories_expire_after_remember() {
        let p = LoginPolicy::AfterAttempts(1);
        let mut t = Table::new(16);
        let a = v4(10, 1, 1, 1);
        assert!(!t.attempt(a, "root", "x", &p, DAY, 0));
        assert!(t.attempt(a, "root", "y", &p, DAY, 10));
        assert!(t.attempt(a, "root", "y", &p, DAY, 10 + DAY));
        assert!(!t.attempt(a, "root", "z", &p, DAY, 10 + DAY + 1));
        // A day after its last use the password is forgotten: counting starts again.
        let later = 10 + 2 * DAY + 2;
        assert!(!t.attempt(a, "root", "z", &p, DAY, later));
        assert!(t.attempt(a, "root", "z", &p, DAY, later + 1));
    }

    #[test]
    fn ipv6_counts_per_64() {
        let p = LoginPolicy::AfterAttempts(1);
        let mut t = Table::new(16);
        let ip = |last: u16| {
            SourceKey::of(IpAddr::V6(Ipv6Addr::new(
                0x2001, 0xdb8, 1, 2, 0, 0, 0, last,
            )))
        };
        assert!(!t.attempt(ip(1), "root", "x", &p, WEEK, 1));
        assert!(t.attempt(ip(2), "root", "y", &p, WEEK, 2));
        assert!(!t.attempt(ip(3), "root", "x", &p, WEEK, 3));
    }

    #[test]
    fn users_per_source_are_bounded_and_keep_accepted_passwords() {
        let p = LoginPolicy::Always;
        let mut t = Table::new(16);
        let a = v4(10, 2, 2, 2);
        assert!(t.attempt(a, "root", "pw", &p, WEEK, 1));
        // Failures of many other users push out other failures, not root's password.
        let q = LoginPolicy::AfterAttempts(5);
        for i in 0..1000 {
            assert!(!t.attempt(a, &format!("u{i}"), "x", &q, WEEK, 2 + i));
        }
        assert!(t.sources.get(&src_of(a)).unwrap().users.len() <= MAX_USERS_PER_SOURCE);
        assert!(!t.attempt(a, "root", "other", &p, WEEK, 2000));
        assert!(t.attempt(a, "root", "pw", &p, WEEK, 2001));
        // Every slot taken by an accepted password: a further user is not let in.
        for i in 1..MAX_USERS_PER_SOURCE {
            assert!(t.attempt(a, &format!("x{i}"), "pw", &p, WEEK, 3000));
        }
        assert!(!t.attempt(a, "one-too-many", "pw", &p, WEEK, 3001));
        assert!(t.attempt(a, "root", "pw", &p, WEEK, 3002));
    }

    #[test]
    fn spray_of_100k_sources_stays_bounded_and_keeps_accepted_sources() {
        let mut t = Table::new(MAX_SOURCES);
        let p = LoginPolicy::AfterAttempts(2);
        let keep = v4(203, 0, 113, 7);
        assert!(t.attempt(keep, "root", "a", &LoginPolicy::Always, WEEK, 1));
        for i in 0..100_000u32 {
            let [_, b, c, d] = i.to_be_bytes();
            assert!(!t.attempt(
                v4(10, b, c, d),
                "root",
                "x",
                &p,
                WEEK,
                2 + u64::from(i) / 100
            ));
            assert!(t.len() <= MAX_SOURCES);
            assert_eq!(t.order.len(), t.len());
        }
        assert_eq!(t.len(), MAX_SOURCES);
        // Failures were evicted before the source whose password got in.
        assert!(t.attempt(keep, "root", "a", &p, WEEK, 5000));
        assert!(!t.attempt(keep, "root", "b", &p, WEEK, 5001));
        let bytes = t.encode();
        assert!(bytes.len() <= MAX_FILE_BYTES, "{}", bytes.len());
        // Nothing seen for longer than the longest memory is kept at all.
        let far = 5001 + MAX_TTL_S + 1;
        assert!(!t.attempt(v4(1, 1, 1, 1), "root", "x", &p, WEEK, far));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn survives_encode_decode_and_refuses_corruption() {
        let p = LoginPolicy::AfterAttempts(1);
        let mut t = Table::new(16);
        let a = v4(10, 3, 3, 3);
        let b = SourceKey::of(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)));
        assert!(!t.attempt(a, "root", "x", &p, WEEK, 10));
        assert!(t.attempt(a, "root", "y", &p, WEEK, 11));
        assert!(!t.attempt(b, "admin", "x", &p, WEEK, 12));
        let bytes = t.encode();
        let mut back = Table::decode(&bytes, 16, 20).unwrap();
        assert_eq!(back.len(), 2);
        assert!(back.attempt(a, "root", "y", &p, WEEK, 30));
        assert!(!back.attempt(a, "root", "x", &p, WEEK, 31));
        // admin's one failure was remembered: the next attempt is the one after it.
        assert!(back.attempt(b, "admin", "z", &p, WEEK, 32));

        for n in [0, 1, 8, 12, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                Table::decode(&bytes[..n], 16, 20).is_err(),
                "truncated at {n}"
            );
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(Table::decode(&bad, 16, 20).is_err(), "flipped byte {i}");
        }
        assert!(Table::decode(&vec![0u8; MAX_FILE_BYTES + 1], 16, 20).is_err());
    }

    #[tokio::test]
    async fn book_survives_a_restart_and_ignores_a_corrupt_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = LoginPolicy::AfterAttempts(1);
        let ip: IpAddr = "198.51.100.4".parse().unwrap();
        {
            let book = LoginBook::open(dir.path());
            assert!(!book.attempt(ip, "root", "one", &p, WEEK));
            assert!(book.attempt(ip, "root", "two", &p, WEEK));
            book.save().await;
        }
        let book = LoginBook::open(dir.path());
        assert!(book.attempt(ip, "root", "two", &p, WEEK));
        assert!(!book.attempt(ip, "root", "one", &p, WEEK));
        // Only the file itself is left, no temporary names.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(LOGIN_MEMORY_FILE)]);

        std::fs::write(dir.path().join(LOGIN_MEMORY_FILE), b"HBLOGIN1 garbage").unwrap();
        let book = LoginBook::open(dir.path());
        assert_eq!(book.lock().len(), 0);
        assert!(!book.attempt(ip, "root", "two", &p, WEEK));
        assert!(book.attempt(ip, "root", "three", &p, WEEK));
        book.save().await;
        let book = LoginBook::open(dir.path());
        assert!(book.attempt(ip, "root", "three", &p, WEEK));
    }

    #[test]
    fn pam_delay_stays_within_a_quarter() {
        let base = Duration::from_secs(2);
        for _ in 0..1000 {
            let d = pam_delay(base);
            assert!(
                d >= Duration::from_millis(1500) && d <= Duration::from_millis(2500),
                "{d:?}"
            );
        }
        assert_eq!(pam_delay(Duration::ZERO), Duration::ZERO);
    }
}
