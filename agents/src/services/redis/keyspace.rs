//! The one keyspace of a Redis service on a node, shared by all its connections as a
//! real instance's is: 16 databases, bounded in total and per source (so one attacker
//! cannot fill it for everyone), with the CONFIG SET values, and persisted atomically
//! to the agent's data directory so that it lives for days, as a real instance does.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use super::info::CONFIG_DEFAULTS;
use super::value::{ELEMENT_OVERHEAD, MAX_ELEMENTS, Reader, Value};

/// Databases, as `databases 16`.
pub(crate) const DATABASES: usize = 16;
/// Most keys the node's keyspace holds, all databases and sources together.
pub(crate) const MAX_KEYS: usize = 4096;
/// Most bytes of keys and values the node's keyspace holds.
pub(crate) const MAX_BYTES: usize = 4 * 1024 * 1024;
/// Most keys one source may own (a quarter of the node's): a single attacker can never
/// take the keyspace from the others.
pub(crate) const SOURCE_KEYS: usize = MAX_KEYS / 4;
/// Most bytes of keys and values one source may own.
pub(crate) const SOURCE_BYTES: usize = MAX_BYTES / 4;
/// Largest single value (APPEND cannot grow one past it): every value fits one reply.
pub(crate) const MAX_VALUE: usize = 128 * 1024;
/// Most bytes of CONFIG SET values the node keeps.
pub(crate) const MAX_CONFIG_BYTES: usize = 64 * 1024;
/// A `redis_keyspace` event is recorded at most this often per kind of refusal.
const REPORT_EVERY_MS: i64 = 60_000;
/// At most this often, after a change, the snapshot is written.
pub(crate) const SAVE_EVERY: Duration = Duration::from_secs(5);
/// The largest snapshot file read: everything above plus per-entry framing.
const MAX_FILE_BYTES: usize = MAX_BYTES + MAX_KEYS * ENTRY_FRAMING + MAX_CONFIG_BYTES * 2 + 4096;
const ENTRY_FRAMING: usize = 1 + 16 + 8 + 8 + 4 + 1 + 4 + 16;
/// Every element is charged [`ELEMENT_OVERHEAD`] bytes, more than its framing in the file.
const _: () = assert!(ELEMENT_OVERHEAD >= 8);
/// Snapshots with typed values (lists, hashes, sets, sorted sets, streams).
const MAGIC: &[u8; 8] = b"HBREDIS2";
/// The earlier form, strings only: still read.
const MAGIC_V1: &[u8; 8] = b"HBREDIS1";
const NO_EXPIRY: i64 = i64::MIN;

/// Who owns a key: an IPv4 address (as IPv4-mapped IPv6) or an IPv6 /64, as the login
/// memory counts sources.
pub(crate) type Source = [u8; 16];

/// The source of a peer address.
pub(crate) fn source_of(ip: IpAddr) -> Source {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_ipv6_mapped().octets(),
            None => {
                let mut o = v6.octets();
                o[8..].fill(0);
                o
            }
        },
    }
}

/// One stored value.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub value: Value,
    /// `value.size()`, kept so that releasing a big collection costs O(1).
    size: usize,
    pub expires_unix_ms: Option<i64>,
    /// Who wrote it last; charged for it.
    owner: Source,
    /// When it was written last: forgotten `retention` after that.
    written_ms: i64,
}

impl Entry {
    /// When it was written last (OBJECT IDLETIME).
    pub(crate) fn written_ms(&self) -> i64 {
        self.written_ms
    }
}

/// Why a write was refused (both answered with Redis's OOM error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The node's keyspace is full.
    Node,
    /// This source owns its whole share.
    Source,
}

/// The keyspace itself (behind [`Node`]'s lock).
#[derive(Debug)]
pub(crate) struct Keyspace {
    dbs: Vec<BTreeMap<Vec<u8>, Entry>>,
    keys: usize,
    bytes: usize,
    /// Keys and bytes owned per source; a source owning nothing is not in the map, so it
    /// holds at most [`MAX_KEYS`] sources.
    owners: HashMap<Source, (usize, usize)>,
    /// CONFIG SET values.
    pub config: BTreeMap<&'static str, Vec<u8>>,
    config_bytes: usize,
    pub changes_since_save: u64,
    pub last_save_unix: i64,
    pub saves: u64,
    retention_ms: i64,
    /// No entry expires (by TTL or retention) before this.
    next_sweep: i64,
    /// Bumped on every change; the saver compares it with what it wrote last.
    generation: u64,
    last_report: [i64; 2],
}

impl Keyspace {
    pub(crate) fn new(retention: Duration, boot_unix_ms: i64) -> Keyspace {
        Keyspace {
            dbs: (0..DATABASES).map(|_| BTreeMap::new()).collect(),
            keys: 0,
            bytes: 0,
            owners: HashMap::new(),
            config: BTreeMap::new(),
            config_bytes: 0,
            changes_since_save: 0,
            last_save_unix: boot_unix_ms / 1000 + 3,
            saves: 0,
            retention_ms: i64::try_from(retention.as_millis()).unwrap_or(i64::MAX),
            next_sweep: i64::MAX,
            generation: 0,
            last_report: [i64::MIN; 2],
        }
    }

    pub(crate) fn keys(&self) -> usize {
        self.keys
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Keys and bytes `src` owns.
    pub(crate) fn owned_by(&self, src: &Source) -> (usize, usize) {
        self.owners.get(src).copied().unwrap_or((0, 0))
    }

    pub(crate) fn db(&self, db: usize) -> &BTreeMap<Vec<u8>, Entry> {
        &self.dbs[db]
    }

    pub(crate) fn get(&self, db: usize, key: &[u8]) -> Option<&Entry> {
        self.dbs[db].get(key)
    }

    fn touched(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        self.changes_since_save += 1;
    }

    /// True once per [`REPORT_EVERY_MS`] per kind of refusal: a flood is one event a
    /// minute, not one per command.
    pub(crate) fn should_report(&mut self, r: Refusal, now: i64) -> bool {
        let last = &mut self.last_report[r as usize];
        if now.saturating_sub(*last) >= REPORT_EVERY_MS {
            *last = now;
            true
        } else {
            false
        }
    }

    fn release(&mut self, key_len: usize, e: &Entry) {
        self.release_size(key_len + e.size, e.owner);
    }

    fn release_size(&mut self, size: usize, owner: Source) {
        self.keys -= 1;
        self.bytes = self.bytes.saturating_sub(size);
        if let Some(o) = self.owners.get_mut(&owner) {
            o.0 = o.0.saturating_sub(1);
            o.1 = o.1.saturating_sub(size);
            if o.0 == 0 {
                self.owners.remove(&owner);
            }
        }
    }

    fn account(&mut self, key_len: usize, e: &Entry) {
        let size = key_len + e.size;
        self.keys += 1;
        self.bytes += size;
        let o = self.owners.entry(e.owner).or_insert((0, 0));
        o.0 += 1;
        o.1 += size;
        let due = self.due(e);
        self.next_sweep = self.next_sweep.min(due);
    }

    fn due(&self, e: &Entry) -> i64 {
        let forgotten = e.written_ms.saturating_add(self.retention_ms);
        e.expires_unix_ms.map_or(forgotten, |t| t.min(forgotten))
    }

    /// Stores `value` under `key`, owned by `src` from now on; refused (and the key keeps
    /// its old value) past the node's bounds or `src`'s share.
    pub(crate) fn store(
        &mut self,
        db: usize,
        key: &[u8],
        value: Value,
        expires: Option<i64>,
        src: Source,
        now: i64,
    ) -> Result<(), Refusal> {
        let vsize = value.size();
        self.check(db, key, vsize, src)?;
        if let Some(e) = self.dbs[db].remove(key) {
            self.release(key.len(), &e);
        }
        let e = Entry {
            value,
            size: vsize,
            expires_unix_ms: expires,
            owner: src,
            written_ms: now,
        };
        self.account(key.len(), &e);
        self.dbs[db].insert(key.to_vec(), e);
        self.touched();
        Ok(())
    }

    /// Whether `key` may hold a value of `vsize` bytes written by `src`: the node's
    /// bounds and `src`'s share, counting what the key holds now as released.
    fn check(&self, db: usize, key: &[u8], vsize: usize, src: Source) -> Result<(), Refusal> {
        let need = key.len() + vsize;
        let old = self.dbs[db].get(key).map(|e| (e.owner, key.len() + e.size));
        let (old_size, old_mine) = match old {
            Some((owner, size)) => (size, if owner == src { size } else { 0 }),
            None => (0, 0),
        };
        let node_keys = self.keys + usize::from(old.is_none());
        let node_bytes = self.bytes - old_size + need;
        if vsize > MAX_VALUE || node_keys > MAX_KEYS || node_bytes > MAX_BYTES {
            return Err(Refusal::Node);
        }
        let (mine_keys, mine_bytes) = self.owned_by(&src);
        let src_keys = mine_keys + usize::from(old.is_none_or(|(o, _)| o != src));
        let src_bytes = mine_bytes - old_mine + need;
        if src_keys > SOURCE_KEYS || src_bytes > SOURCE_BYTES {
            return Err(Refusal::Source);
        }
        Ok(())
    }

    /// Changes the value under `key` in place (a new one of `kind`'s `empty` form if
    /// there is none), charged to `src` from now on, its TTL kept. `grow` bounds the
    /// bytes `f` may add and `add` the elements: both are checked against the bounds
    /// before `f` runs, so nothing is allocated past them. A collection left empty is
    /// deleted, as in Redis. The caller has checked the value's type.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn update<R>(
        &mut self,
        db: usize,
        key: &[u8],
        empty: impl FnOnce() -> Value,
        grow: usize,
        add: usize,
        src: Source,
        now: i64,
        f: impl FnOnce(&mut Value) -> R,
    ) -> Result<R, Refusal> {
        let (old_size, old_elements) = self.dbs[db]
            .get(key)
            .map_or((0, 0), |e| (e.size, e.value.elements()));
        if old_elements.saturating_add(add) > MAX_ELEMENTS {
            return Err(Refusal::Node);
        }
        self.check(db, key, old_size.saturating_add(grow), src)?;
        let (mut value, expires) = match self.dbs[db].remove(key) {
            Some(e) => {
                self.release(key.len(), &e);
                (e.value, e.expires_unix_ms)
            }
            None => (empty(), None),
        };
        let r = f(&mut value);
        self.touched();
        if !value.is_empty_collection() {
            let e = Entry {
                size: value.size(),
                value,
                expires_unix_ms: expires,
                owner: src,
                written_ms: now,
            };
            self.account(key.len(), &e);
            self.dbs[db].insert(key.to_vec(), e);
        }
        Ok(r)
    }

    /// SWAPDB: two databases trade places (their keys keep their owners).
    pub(crate) fn swap(&mut self, a: usize, b: usize) {
        self.dbs.swap(a, b);
        self.touched();
    }

    /// RENAME: the value, TTL and owner move to `to` (charged to `src`, who renamed it);
    /// refused, nothing changes. `Ok(false)`: no such key.
    pub(crate) fn rename(
        &mut self,
        db: usize,
        from: &[u8],
        to: &[u8],
        src: Source,
        now: i64,
    ) -> Result<bool, Refusal> {
        if from == to {
            return Ok(self.dbs[db].contains_key(from));
        }
        let Some(e) = self.dbs[db].remove(from) else {
            return Ok(false);
        };
        self.release(from.len(), &e);
        match self.store(db, to, e.value.clone(), e.expires_unix_ms, src, now) {
            Ok(()) => Ok(true),
            Err(r) => {
                // What was released fits again.
                self.account(from.len(), &e);
                self.dbs[db].insert(from.to_vec(), e);
                Err(r)
            }
        }
    }

    pub(crate) fn remove(&mut self, db: usize, key: &[u8]) -> Option<Entry> {
        let e = self.dbs[db].remove(key)?;
        self.release(key.len(), &e);
        self.touched();
        Some(e)
    }

    /// Sets or clears a key's expiry; false if there is no such key.
    pub(crate) fn set_expiry(&mut self, db: usize, key: &[u8], at: Option<i64>) -> bool {
        let Some(e) = self.dbs[db].get_mut(key) else {
            return false;
        };
        e.expires_unix_ms = at;
        let due = e.written_ms.saturating_add(self.retention_ms);
        let due = at.map_or(due, |t| t.min(due));
        self.next_sweep = self.next_sweep.min(due);
        self.touched();
        true
    }

    /// Empties one database, or all of them.
    pub(crate) fn flush(&mut self, db: Option<usize>) {
        let range = match db {
            Some(d) => d..d + 1,
            None => 0..DATABASES,
        };
        for d in range {
            for (k, e) in std::mem::take(&mut self.dbs[d]) {
                self.release(k.len(), &e);
            }
        }
        self.touched();
    }

    /// Drops what has expired (its TTL, or `retention` since it was written). Runs over
    /// the keyspace only when something is due, so a command costs O(1) otherwise.
    pub(crate) fn sweep(&mut self, now: i64) {
        if now < self.next_sweep {
            return;
        }
        let mut next = i64::MAX;
        let mut gone = Vec::new();
        for d in 0..DATABASES {
            let retention = self.retention_ms;
            self.dbs[d].retain(|k, e| {
                let forgotten = e.written_ms.saturating_add(retention);
                let due = e.expires_unix_ms.map_or(forgotten, |t| t.min(forgotten));
                if due <= now {
                    gone.push((k.len() + e.size, e.owner));
                    false
                } else {
                    next = next.min(due);
                    true
                }
            });
        }
        self.next_sweep = next;
        if !gone.is_empty() {
            for (size, owner) in gone {
                self.release_size(size, owner);
            }
            self.generation = self.generation.wrapping_add(1);
        }
    }

    /// Sets a CONFIG value; false when the node's CONFIG bytes would pass their cap.
    pub(crate) fn config_set(&mut self, name: &'static str, value: Vec<u8>) -> bool {
        let old = self.config.get(name).map_or(0, Vec::len);
        let after = self.config_bytes - old + value.len();
        if after > MAX_CONFIG_BYTES {
            return false;
        }
        self.config_bytes = after;
        self.config.insert(name, value);
        self.generation = self.generation.wrapping_add(1);
        true
    }

    /// Records a SAVE / BGSAVE.
    pub(crate) fn saved(&mut self, now_unix_ms: i64) {
        self.changes_since_save = 0;
        self.last_save_unix = now_unix_ms / 1000;
        self.saves += 1;
        self.generation = self.generation.wrapping_add(1);
    }

    /// The snapshot file's bytes: a header, the CONFIG values, every entry with its
    /// absolute expiry, owner and write time, then a SHA-256 of all that.
    pub(crate) fn encode(&self, now: i64) -> Vec<u8> {
        let mut b = Vec::with_capacity(64 + self.bytes + self.keys * ENTRY_FRAMING);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&now.to_le_bytes());
        b.extend_from_slice(&self.last_save_unix.to_le_bytes());
        b.extend_from_slice(&self.saves.to_le_bytes());
        b.extend_from_slice(&(self.config.len() as u32).to_le_bytes());
        for (name, value) in &self.config {
            b.push(name.len() as u8);
            b.extend_from_slice(name.as_bytes());
            b.extend_from_slice(&(value.len() as u32).to_le_bytes());
            b.extend_from_slice(value);
        }
        b.extend_from_slice(&(self.keys as u32).to_le_bytes());
        for (db, map) in self.dbs.iter().enumerate() {
            for (k, e) in map {
                b.push(db as u8);
                b.extend_from_slice(&e.owner);
                b.extend_from_slice(&e.written_ms.to_le_bytes());
                b.extend_from_slice(&e.expires_unix_ms.unwrap_or(NO_EXPIRY).to_le_bytes());
                b.extend_from_slice(&(k.len() as u32).to_le_bytes());
                b.extend_from_slice(k);
                e.value.encode(&mut b);
            }
        }
        let sum = ring::digest::digest(&ring::digest::SHA256, &b);
        b.extend_from_slice(sum.as_ref());
        b
    }

    /// Reads a snapshot, checking everything: its checksum, every length and count, the
    /// bounds, the databases and the CONFIG names. What has expired by `now`, or was
    /// written more than `retention` ago, is left out.
    pub(crate) fn decode(
        bytes: &[u8],
        now: i64,
        retention: Duration,
        boot_unix_ms: i64,
    ) -> Result<Keyspace, String> {
        if bytes.len() > MAX_FILE_BYTES {
            return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
        }
        let body_len = bytes
            .len()
            .checked_sub(32)
            .ok_or_else(|| "too short".to_owned())?;
        let (body, sum) = bytes.split_at(body_len);
        if ring::digest::digest(&ring::digest::SHA256, body).as_ref() != sum {
            return Err("checksum mismatch".into());
        }
        let mut r = Reader(body);
        let typed = match r.take(8)? {
            m if m == MAGIC => true,
            m if m == MAGIC_V1 => false,
            _ => return Err("not a Redis keyspace snapshot".into()),
        };
        let mut ks = Keyspace::new(retention, boot_unix_ms);
        let _saved_at = r.i64()?;
        ks.last_save_unix = r.i64()?;
        ks.saves = u64::from_le_bytes(r.array()?);
        let configs = r.u32()? as usize;
        if configs > CONFIG_DEFAULTS.len() {
            return Err("too many CONFIG values".into());
        }
        for _ in 0..configs {
            let n = r.take(1)?[0] as usize;
            let name = r.take(n)?;
            let Some((known, _)) = CONFIG_DEFAULTS.iter().find(|(c, _)| c.as_bytes() == name)
            else {
                return Err("unknown CONFIG name".into());
            };
            let len = r.u32()? as usize;
            let value = r.take(len)?.to_vec();
            if !ks.config_set(known, value) {
                return Err("CONFIG values over their cap".into());
            }
        }
        let entries = r.u32()? as usize;
        if entries > MAX_KEYS {
            return Err("too many keys".into());
        }
        for _ in 0..entries {
            let db = r.take(1)?[0] as usize;
            if db >= DATABASES {
                return Err("database out of range".into());
            }
            let owner: Source = r.array()?;
            let written_ms = r.i64()?;
            let expires = match r.i64()? {
                NO_EXPIRY => None,
                t => Some(t),
            };
            let klen = r.u32()? as usize;
            let key = r.take(klen)?.to_vec();
            let value = if typed {
                Value::decode(&mut r, MAX_VALUE)?
            } else {
                let vlen = r.u32()? as usize;
                Value::Str(r.take(vlen)?.to_vec())
            };
            if ks.dbs[db].contains_key(&key) {
                return Err("duplicate key".into());
            }
            let e = Entry {
                size: value.size(),
                value,
                expires_unix_ms: expires,
                owner,
                written_ms: written_ms.min(now),
            };
            if ks.due(&e) <= now {
                continue;
            }
            if e.size > MAX_VALUE || ks.bytes + klen + e.size > MAX_BYTES {
                return Err("keyspace over its bounds".into());
            }
            ks.account(klen, &e);
            ks.dbs[db].insert(key, e);
        }
        if !r.0.is_empty() {
            return Err("trailing bytes".into());
        }
        ks.changes_since_save = 0;
        Ok(ks)
    }
}

/// The keyspace of one Redis service on this node, shared by its connections. The lock
/// is held for one command at a time and never across an await.
#[derive(Debug)]
pub(crate) struct Node {
    state: Mutex<Keyspace>,
    /// `redis-<service>.bin` in the agent's data directory; `None` keeps it in memory.
    path: Option<PathBuf>,
    /// The generation written last.
    saved: AtomicU64,
    /// One writer at a time (the periodic saver and the final save).
    writing: Mutex<()>,
}

impl Node {
    /// A keyspace that is never written to disk (unit tests).
    pub(crate) fn memory(retention: Duration, boot_unix_ms: i64) -> Arc<Node> {
        Arc::new(Node {
            state: Mutex::new(Keyspace::new(retention, boot_unix_ms)),
            path: None,
            saved: AtomicU64::new(0),
            writing: Mutex::new(()),
        })
    }

    /// Loads `redis-<service>.bin` from `dir` (an unreadable or corrupt one is moved
    /// aside to `.corrupt`, with a warning, and the keyspace starts empty), and starts
    /// the periodic saver when a runtime is there to run it.
    pub(crate) fn open(
        dir: &Path,
        service: &str,
        retention: Duration,
        boot_unix_ms: i64,
    ) -> Arc<Node> {
        let path = dir.join(file_name(service));
        let now = crate::sink::now_ms();
        let state = match crate::statefile::read_bounded(&path, MAX_FILE_BYTES) {
            Ok(None) => Keyspace::new(retention, boot_unix_ms),
            Ok(Some(bytes)) => match Keyspace::decode(&bytes, now, retention, boot_unix_ms) {
                Ok(ks) => {
                    tracing::info!(path = %path.display(), keys = ks.keys(), "redis keyspace loaded");
                    ks
                }
                Err(e) => {
                    set_aside(&path);
                    tracing::warn!(path = %path.display(), error = %e, "redis keyspace snapshot ignored: corrupt");
                    Keyspace::new(retention, boot_unix_ms)
                }
            },
            Err(e) => {
                set_aside(&path);
                tracing::warn!(path = %path.display(), error = %e, "redis keyspace snapshot ignored: unreadable");
                Keyspace::new(retention, boot_unix_ms)
            }
        };
        let generation = state.generation;
        let node = Arc::new(Node {
            state: Mutex::new(state),
            path: Some(path),
            saved: AtomicU64::new(generation),
            writing: Mutex::new(()),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(save_periodically(Arc::downgrade(&node)));
        }
        node
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Keyspace> {
        // Every change leaves the keyspace consistent before anything could panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the snapshot if anything changed since the last write (blocking).
    pub(crate) fn save(&self) {
        let Some(path) = &self.path else { return };
        let _w = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let (generation, bytes) = {
            let ks = self.lock();
            if ks.generation == self.saved.load(Ordering::Acquire) {
                return;
            }
            // Encoded under the lock (a copy of ≤ 4 MiB), written without it.
            (ks.generation, ks.encode(crate::sink::now_ms()))
        };
        match crate::statefile::write_atomically(path, &bytes) {
            Ok(()) => self.saved.store(generation, Ordering::Release),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot save the redis keyspace")
            }
        }
    }
}

impl Drop for Node {
    /// The last connection and the service are gone (shutdown, reconfiguration): what
    /// changed since the last periodic save is written now.
    fn drop(&mut self) {
        self.save();
    }
}

async fn save_periodically(node: Weak<Node>) {
    let mut tick = tokio::time::interval(SAVE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(n) = node.upgrade() else { return };
        let _ = tokio::task::spawn_blocking(move || n.save()).await;
    }
}

/// `redis-<service>.bin`, the service name kept to characters safe in a file name.
pub(crate) fn file_name(service: &str) -> String {
    let safe: String = service
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("redis-{safe}.bin")
}

fn set_aside(path: &Path) {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".corrupt");
    let _ = std::fs::rename(path, PathBuf::from(aside));
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;
    const WEEK: Duration = Duration::from_secs(7 * 86_400);
    const A: Source = [1; 16];
    const B: Source = [2; 16];

    #[test]
    fn snapshot_round_trips_and_keeps_absolute_expiry() {
        let mut ks = Keyspace::new(WEEK, T0);
        ks.store(0, b"a", Value::Str(b"1".to_vec()), None, A, T0)
            .unwrap();
        ks.store(3, b"b", Value::Str(b"2".to_vec()), Some(T0 + 60_000), B, T0)
            .unwrap();
        ks.store(
            3,
            b"gone",
            Value::Str(b"x".to_vec()),
            Some(T0 + 1_000),
            B,
            T0,
        )
        .unwrap();
        assert!(ks.config_set("dir", b"/tmp".to_vec()));
        let bytes = ks.encode(T0);
        let back = Keyspace::decode(&bytes, T0 + 2_000, WEEK, T0).unwrap();
        assert_eq!(back.keys(), 2);
        assert_eq!(
            back.get(3, b"b").unwrap().expires_unix_ms,
            Some(T0 + 60_000)
        );
        assert_eq!(back.get(0, b"a").unwrap().value, Value::Str(b"1".to_vec()));
        assert_eq!(
            back.config.get("dir").map(Vec::as_slice),
            Some(&b"/tmp"[..])
        );
        assert_eq!(back.owned_by(&B), (1, 2));
        // Written more than the retention ago: forgotten on load.
        let later = Keyspace::decode(&bytes, T0 + WEEK.as_millis() as i64, WEEK, T0).unwrap();
        assert_eq!(later.keys(), 0);
        // Any flipped byte is refused, and so is a truncated file.
        for i in [0, 9, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(Keyspace::decode(&bad, T0, WEEK, T0).is_err(), "byte {i}");
        }
        assert!(Keyspace::decode(&bytes[..bytes.len() - 5], T0, WEEK, T0).is_err());
    }

    #[test]
    fn a_source_cannot_take_more_than_its_share() {
        let mut ks = Keyspace::new(WEEK, T0);
        for i in 0..SOURCE_KEYS {
            ks.store(
                0,
                format!("a{i}").as_bytes(),
                Value::Str(vec![]),
                None,
                A,
                T0,
            )
            .unwrap();
        }
        assert_eq!(
            ks.store(0, b"one-more", Value::Str(vec![]), None, A, T0),
            Err(Refusal::Source)
        );
        // Overwriting its own key is fine, another source still has room.
        ks.store(0, b"a0", Value::Str(b"x".to_vec()), None, A, T0)
            .unwrap();
        ks.store(0, b"b", Value::Str(b"x".to_vec()), None, B, T0)
            .unwrap();
        // Taking over another's key charges the new writer and frees the old owner.
        ks.store(0, b"a1", Value::Str(b"y".to_vec()), None, B, T0)
            .unwrap();
        assert_eq!(ks.owned_by(&B).0, 2);
        ks.store(0, b"again", Value::Str(vec![]), None, A, T0)
            .unwrap();
        ks.flush(None);
        assert_eq!((ks.keys(), ks.bytes(), ks.owners.len()), (0, 0, 0));
    }

    #[test]
    fn the_node_bound_holds_for_many_sources() {
        let mut ks = Keyspace::new(WEEK, T0);
        let value = vec![b'v'; 1000];
        let mut refused = 0;
        for s in 0..16u8 {
            for i in 0..1000 {
                if ks
                    .store(
                        0,
                        format!("{s}-{i}").as_bytes(),
                        Value::Str(value.clone()),
                        None,
                        [s; 16],
                        T0,
                    )
                    .is_err()
                {
                    refused += 1;
                }
            }
        }
        assert!(refused > 0);
        assert!(ks.keys() <= MAX_KEYS && ks.bytes() <= MAX_BYTES);
    }

    #[test]
    fn sweep_drops_expired_and_retained_keys() {
        let mut ks = Keyspace::new(Duration::from_secs(100), T0);
        ks.store(0, b"ttl", Value::Str(vec![]), Some(T0 + 10), A, T0)
            .unwrap();
        ks.store(0, b"old", Value::Str(vec![]), None, A, T0)
            .unwrap();
        ks.sweep(T0 + 10);
        assert!(ks.get(0, b"ttl").is_none() && ks.get(0, b"old").is_some());
        ks.sweep(T0 + 100_000);
        assert_eq!((ks.keys(), ks.owners.len()), (0, 0));
    }

    #[test]
    fn sources_are_addresses_or_v6_slash_64() {
        let v4: IpAddr = "127.0.0.2".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        assert_eq!(source_of(v4), source_of(mapped));
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        assert_eq!(source_of(a), source_of(b));
        assert_ne!(source_of(v4), source_of(a));
    }
}
