//! Persistence of what intruders write: a node keeps each source's filesystem changes
//! (files, `~/.ssh/authorized_keys`, crontabs, deletions) and gives them back to the next
//! SSH or Telnet session from that source, for the services' `remember` time, bounded,
//! in its data directory (`shell-overlays.bin`).
//!
//! A real box keeps the key a bot planted: one that logs in again and finds its
//! `authorized_keys` gone has met a honeypot. Keyed as the login memory is (an IPv4
//! address or an IPv6 /64), shared by SSH and Telnet (one machine).
//!
//! Concurrent sessions from one source merge per path: a session's end writes only the
//! paths it changed since it started (a three-way merge against what it loaded), so two
//! sessions that write different files both keep theirs, and for one path the session
//! that ends last wins.
//!
//! The table ([`Table`]) is sans-IO (the caller passes Unix seconds); [`OverlayStore`]
//! wraps it with a lock and the file, written as `login.rs` writes its own: versioned,
//! checksummed, atomic, size-checked before reading.

use super::fs::{Fs, Kind, Node};
use crate::services::limits::SourceKey;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// File name of the persisted table inside the agent's data directory.
pub(crate) const OVERLAYS_FILE: &str = "shell-overlays.bin";

/// Sources kept at most; past it the least recently seen is forgotten.
pub(crate) const MAX_SOURCES: usize = 4096;

/// Bytes kept per source (paths, contents and [`ENTRY_OVERHEAD`] each): above a
/// session's overlay cap (256 KiB), so that whatever one session holds is kept whole.
pub(crate) const MAX_SOURCE_BYTES: usize = 1024 * 1024;

/// Entries kept per source (a session's overlay holds at most 256).
pub(crate) const MAX_SOURCE_ENTRIES: usize = 1024;

/// Bytes kept for all sources together; past it the least recently seen go first.
pub(crate) const MAX_TOTAL_BYTES: usize = 64 * 1024 * 1024;

/// What one entry costs beyond its path and data (its record's fixed fields).
const ENTRY_OVERHEAD: usize = 40;

/// Longest path kept (Linux's PATH_MAX).
const MAX_PATH: usize = 4096;

/// Longest memory kept whatever the services ask.
const MAX_TTL_S: u64 = honeybee_proto::config::Remember::MAX_SECS;

/// A change is written to disk at most this long after it happened.
const SAVE_DELAY: Duration = Duration::from_secs(2);

const MAGIC: &[u8; 8] = b"HBOVLAY1";
const SRC_LEN: usize = 9;
const SOURCE_HEADER: usize = SRC_LEN + 8 + 4;
const CHECKSUM_LEN: usize = 32;

/// The largest file a full table makes; anything larger is not ours.
pub(crate) const MAX_FILE_BYTES: usize =
    MAGIC.len() + 4 + MAX_SOURCES * SOURCE_HEADER + MAX_TOTAL_BYTES + CHECKSUM_LEN;

type Src = [u8; SRC_LEN];

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

/// One kept file, directory or link, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    kind: Kind,
    mode: u32,
    uid: u32,
    mtime: i64,
    shown_size: Option<u64>,
    data: Vec<u8>,
}

impl Record {
    fn of(n: &Node) -> Record {
        Record {
            kind: n.kind,
            mode: n.mode,
            uid: n.uid,
            mtime: n.mtime,
            shown_size: n.shown_size,
            data: n.data.to_vec(),
        }
    }

    fn node(&self) -> Node {
        Node {
            kind: self.kind,
            mode: self.mode,
            uid: self.uid,
            data: Cow::Owned(self.data.clone()),
            shown_size: self.shown_size,
            mtime: self.mtime,
        }
    }
}

fn kind_byte(k: Kind) -> u8 {
    match k {
        Kind::Dir => 1,
        Kind::File => 2,
        Kind::Symlink => 3,
        Kind::CharDev => 4,
    }
}

fn kind_of(b: u8) -> Option<Kind> {
    Some(match b {
        1 => Kind::Dir,
        2 => Kind::File,
        3 => Kind::Symlink,
        4 => Kind::CharDev,
        _ => return None,
    })
}

/// A source's changes by path; `None` is a deleted base entry.
pub(crate) type Entries = BTreeMap<String, Option<Record>>;

fn cost(path: &str, e: &Option<Record>) -> usize {
    ENTRY_OVERHEAD + path.len() + e.as_ref().map_or(0, |r| r.data.len())
}

fn entries_cost(entries: &Entries) -> usize {
    entries.iter().map(|(p, e)| cost(p, e)).sum()
}

#[derive(Debug)]
struct SourceEntry {
    /// Position in the eviction order (larger = more recent).
    tick: u64,
    /// Unix seconds of the last session that ended with these changes.
    last: u64,
    entries: Entries,
    cost: usize,
}

/// The sans-IO store: per source, the changes its sessions left.
#[derive(Debug)]
pub(crate) struct Table {
    sources: HashMap<Src, SourceEntry>,
    /// Eviction order: least recently seen first.
    order: BTreeMap<u64, Src>,
    tick: u64,
    total: usize,
    max_sources: usize,
    max_total: usize,
}

impl Table {
    pub(crate) fn new(max_sources: usize, max_total: usize) -> Table {
        Table {
            sources: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            total: 0,
            max_sources: max_sources.max(1),
            max_total,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.sources.len()
    }

    fn remove(&mut self, src: &Src) {
        if let Some(e) = self.sources.remove(src) {
            self.order.remove(&e.tick);
            self.total = self.total.saturating_sub(e.cost);
        }
    }

    fn touch(&mut self, src: &Src) {
        if let Some(e) = self.sources.get_mut(src) {
            self.order.remove(&e.tick);
            self.tick += 1;
            e.tick = self.tick;
            self.order.insert(self.tick, *src);
        }
    }

    /// Forgets sources not seen for longer than the longest a service remembers.
    fn expire(&mut self, now: u64) {
        let stale: Vec<Src> = self
            .sources
            .iter()
            .filter(|(_, e)| now.saturating_sub(e.last) > MAX_TTL_S)
            .map(|(s, _)| *s)
            .collect();
        for s in stale {
            self.remove(&s);
        }
    }

    /// The changes kept for `src` if its last session ended within `remember_s`.
    pub(crate) fn load(&mut self, src: SourceKey, remember_s: u64, now: u64) -> Entries {
        let src = src_of(src);
        let fresh = match self.sources.get(&src) {
            None => return Entries::new(),
            Some(e) => now.saturating_sub(e.last) <= remember_s.min(MAX_TTL_S),
        };
        if !fresh {
            self.remove(&src);
            return Entries::new();
        }
        self.touch(&src);
        self.sources
            .get(&src)
            .map(|e| e.entries.clone())
            .unwrap_or_default()
    }

    /// Records the end of a session from `src` that started with `loaded` and ends with
    /// `now_entries`: the paths it changed replace the kept ones (a three-way merge, so
    /// that a concurrent session's other paths stay). If the merge would exceed a
    /// source's bounds, the session's own state is kept instead.
    pub(crate) fn save(&mut self, src: SourceKey, loaded: &Entries, ended: Entries, now: u64) {
        let src = src_of(src);
        self.expire(now);
        let mut merged = match self.sources.get(&src) {
            Some(e) => e.entries.clone(),
            None => loaded.clone(),
        };
        let mut changed = false;
        for (p, l) in loaded {
            if !ended.contains_key(p) {
                merged.remove(p);
                changed = true;
            } else if ended.get(p) != Some(l) {
                changed = true;
            }
        }
        for (p, e) in &ended {
            if loaded.get(p) != Some(e) {
                merged.insert(p.clone(), e.clone());
                changed = true;
            }
        }
        if !changed && !self.sources.contains_key(&src) && ended.is_empty() {
            // A session that left nothing behind is not worth a slot.
            return;
        }
        let mut entries = merged;
        let mut c = entries_cost(&entries);
        if c > MAX_SOURCE_BYTES || entries.len() > MAX_SOURCE_ENTRIES {
            entries = ended;
            c = entries_cost(&entries);
        }
        self.remove(&src);
        if entries.is_empty() || c > MAX_SOURCE_BYTES || entries.len() > MAX_SOURCE_ENTRIES {
            return;
        }
        self.insert(src, now, entries, c);
    }

    fn insert(&mut self, src: Src, last: u64, entries: Entries, cost: usize) {
        while self.sources.len() >= self.max_sources || self.total + cost > self.max_total {
            let Some((_, victim)) = self.order.iter().next().map(|(t, s)| (*t, *s)) else {
                break;
            };
            self.remove(&victim);
        }
        if self.total + cost > self.max_total {
            return;
        }
        self.tick += 1;
        self.order.insert(self.tick, src);
        self.total += cost;
        self.sources.insert(
            src,
            SourceEntry {
                tick: self.tick,
                last,
                entries,
                cost,
            },
        );
    }

    /// The table as the file stores it: magic, count, sources (least recently seen
    /// first), SHA-256 of all before.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.total + self.len() * SOURCE_HEADER);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.sources.len() as u32).to_le_bytes());
        for src in self.order.values() {
            let Some(e) = self.sources.get(src) else {
                continue;
            };
            out.extend_from_slice(src);
            out.extend_from_slice(&e.last.to_le_bytes());
            out.extend_from_slice(&(e.entries.len() as u32).to_le_bytes());
            for (p, r) in &e.entries {
                out.extend_from_slice(&(p.len() as u16).to_le_bytes());
                out.extend_from_slice(p.as_bytes());
                match r {
                    None => out.push(0),
                    Some(r) => {
                        out.push(kind_byte(r.kind));
                        out.extend_from_slice(&r.mode.to_le_bytes());
                        out.extend_from_slice(&r.uid.to_le_bytes());
                        out.extend_from_slice(&r.mtime.to_le_bytes());
                        out.push(u8::from(r.shown_size.is_some()));
                        out.extend_from_slice(&r.shown_size.unwrap_or(0).to_le_bytes());
                        out.extend_from_slice(&(r.data.len() as u32).to_le_bytes());
                        out.extend_from_slice(&r.data);
                    }
                }
            }
        }
        let sum = ring::digest::digest(&ring::digest::SHA256, &out);
        out.extend_from_slice(sum.as_ref());
        out
    }

    /// Reads a table written by [`Table::encode`]; anything malformed is an error (the
    /// caller starts empty). Sources older than the longest memory are dropped.
    pub(crate) fn decode(bytes: &[u8], now: u64) -> Result<Table, String> {
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
            return Err("not a shell overlay file".into());
        }
        let count = u32::from_le_bytes(r.array()?) as usize;
        if count > MAX_SOURCES {
            return Err(format!("{count} sources, more than {MAX_SOURCES}"));
        }
        let mut t = Table::new(MAX_SOURCES, MAX_TOTAL_BYTES);
        for _ in 0..count {
            let src: Src = r.array()?;
            if !valid_src(&src) {
                return Err("bad source".into());
            }
            let last = u64::from_le_bytes(r.array()?);
            let n = u32::from_le_bytes(r.array()?) as usize;
            if n > MAX_SOURCE_ENTRIES {
                return Err(format!("{n} entries for one source"));
            }
            let mut entries = Entries::new();
            let mut c = 0usize;
            for _ in 0..n {
                let len = usize::from(u16::from_le_bytes(r.array()?));
                if len == 0 || len > MAX_PATH {
                    return Err("bad path length".into());
                }
                let path = std::str::from_utf8(r.take(len)?).map_err(|_| "path not UTF-8")?;
                if !path.starts_with('/') || path.contains('\0') {
                    return Err("bad path".into());
                }
                let rec = match r.array::<1>()?[0] {
                    0 => None,
                    k => {
                        let kind = kind_of(k).ok_or("bad kind")?;
                        let mode = u32::from_le_bytes(r.array()?);
                        let uid = u32::from_le_bytes(r.array()?);
                        let mtime = i64::from_le_bytes(r.array()?);
                        let has = r.array::<1>()?[0];
                        let shown = u64::from_le_bytes(r.array()?);
                        let shown_size = match has {
                            0 => None,
                            1 => Some(shown),
                            _ => return Err("bad size flag".into()),
                        };
                        let dlen = u32::from_le_bytes(r.array()?) as usize;
                        // Checked before taking: the reader never allocates past the body.
                        if dlen > MAX_SOURCE_BYTES {
                            return Err("entry too large".into());
                        }
                        let data = r.take(dlen)?.to_vec();
                        Some(Record {
                            kind,
                            mode: mode & 0o7777,
                            uid,
                            mtime,
                            shown_size,
                            data,
                        })
                    }
                };
                c += cost(path, &rec);
                if c > MAX_SOURCE_BYTES {
                    return Err("source over its byte bound".into());
                }
                if entries.insert(path.to_owned(), rec).is_some() {
                    return Err("path twice for one source".into());
                }
            }
            if t.sources.contains_key(&src) {
                return Err("source twice".into());
            }
            if now.saturating_sub(last) <= MAX_TTL_S && !entries.is_empty() {
                t.insert(src, last, entries, c);
            }
        }
        if !r.0.is_empty() {
            return Err("trailing bytes".into());
        }
        Ok(t)
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

/// What a session started with: needed at its end for the merge.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    src: Option<IpAddr>,
    entries: Entries,
}

/// A filesystem's changes as the table keeps them.
fn changes_of(fs: &Fs) -> Entries {
    fs.changes()
        .map(|(p, n)| (p.to_owned(), n.map(Record::of)))
        .collect()
}

/// The node's kept overlays: the table behind a lock, saved to the data directory
/// shortly after each change (and at shutdown), loaded from it at start.
#[derive(Debug)]
pub(crate) struct OverlayStore {
    table: Mutex<Table>,
    file: crate::statefile::DelayedFile,
}

impl OverlayStore {
    /// Loads `dir`'s file if there is a valid one; a missing file is an empty store, a
    /// corrupt or oversized one is ignored with a warning (and replaced at the next save).
    pub(crate) fn open(dir: &Path) -> Arc<OverlayStore> {
        let path = dir.join(OVERLAYS_FILE);
        let empty = || Table::new(MAX_SOURCES, MAX_TOTAL_BYTES);
        let table = match crate::statefile::read_bounded(&path, MAX_FILE_BYTES) {
            Ok(None) => empty(),
            Ok(Some(bytes)) => match Table::decode(&bytes, unix_now()) {
                Ok(t) => {
                    tracing::info!(path = %path.display(), sources = t.len(), "shell overlays loaded");
                    t
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "shell overlays ignored: corrupt");
                    empty()
                }
            },
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "shell overlays ignored: unreadable");
                empty()
            }
        };
        Arc::new(OverlayStore {
            table: Mutex::new(table),
            file: crate::statefile::DelayedFile::new(path, SAVE_DELAY, "the shell overlays"),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts what `ip`'s earlier sessions left into `fs` (within its bounds) and returns
    /// what the session's end needs.
    pub(crate) fn restore(&self, ip: IpAddr, remember_s: u64, fs: &mut Fs) -> Loaded {
        let kept = self.lock().load(SourceKey::of(ip), remember_s, unix_now());
        let mut entries = Entries::new();
        for (p, r) in kept {
            if fs.restore(&p, r.as_ref().map(Record::node)) {
                entries.insert(p, r);
            }
        }
        Loaded {
            src: Some(ip),
            entries,
        }
    }

    /// Keeps what the session that started with `loaded` leaves in `fs`, and schedules
    /// a save.
    pub(crate) fn keep(self: &Arc<Self>, loaded: &Loaded, fs: &Fs) {
        let Some(ip) = loaded.src else { return };
        let ended = changes_of(fs);
        if ended.is_empty() && loaded.entries.is_empty() {
            return;
        }
        self.lock()
            .save(SourceKey::of(ip), &loaded.entries, ended, unix_now());
        self.schedule_save();
    }

    fn schedule_save(self: &Arc<Self>) {
        crate::statefile::DelayedFile::schedule(self);
    }

    /// Writes the table now (in a blocking thread); a failure is logged, not fatal.
    pub(crate) async fn save(self: &Arc<Self>) {
        crate::statefile::DelayedFile::save_now(self).await;
    }
}

impl crate::statefile::Snapshot for OverlayStore {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const DAY: u64 = 86_400;

    fn v4(d: u8) -> SourceKey {
        SourceKey::of(IpAddr::V4(Ipv4Addr::new(10, 0, 0, d)))
    }

    fn file(data: &[u8]) -> Option<Record> {
        Some(Record {
            kind: Kind::File,
            mode: 0o644,
            uid: 0,
            mtime: 1,
            shown_size: None,
            data: data.to_vec(),
        })
    }

    fn one(path: &str, data: &[u8]) -> Entries {
        Entries::from([(path.to_owned(), file(data))])
    }

    #[test]
    fn kept_per_source_for_remember() {
        let mut t = Table::new(16, MAX_TOTAL_BYTES);
        t.save(v4(1), &Entries::new(), one("/tmp/x", b"hi"), 100);
        assert_eq!(t.load(v4(1), DAY, 200), one("/tmp/x", b"hi"));
        assert!(t.load(v4(2), DAY, 200).is_empty());
        // Past the service's memory the source is forgotten.
        assert!(t.load(v4(1), DAY, 100 + DAY + 1).is_empty());
        assert_eq!(t.len(), 0);
        // Sessions that leave nothing take no slot.
        t.save(v4(3), &Entries::new(), Entries::new(), 5);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn concurrent_sessions_merge_per_path() {
        let mut t = Table::new(16, MAX_TOTAL_BYTES);
        t.save(v4(1), &Entries::new(), one("/tmp/base", b"0"), 1);
        let a = t.load(v4(1), DAY, 2);
        let b = t.load(v4(1), DAY, 2);
        let mut ea = a.clone();
        ea.insert("/tmp/a".into(), file(b"a"));
        let mut eb = b.clone();
        eb.remove("/tmp/base");
        eb.insert("/tmp/b".into(), file(b"b"));
        t.save(v4(1), &a, ea, 3);
        t.save(v4(1), &b, eb, 4);
        let got = t.load(v4(1), DAY, 5);
        let names: Vec<&str> = got.keys().map(String::as_str).collect();
        assert_eq!(names, ["/tmp/a", "/tmp/b"]);
    }

    #[test]
    fn sources_and_bytes_are_bounded_least_recent_first() {
        let mut t = Table::new(4, MAX_TOTAL_BYTES);
        for d in 1..=5 {
            t.save(v4(d), &Entries::new(), one("/f", b"x"), u64::from(d));
        }
        assert_eq!(t.len(), 4);
        assert!(t.load(v4(1), DAY, 10).is_empty());
        // Loading counts as being seen: 2 survives the next eviction, 3 does not.
        assert!(!t.load(v4(2), DAY, 10).is_empty());
        t.save(v4(6), &Entries::new(), one("/f", b"x"), 11);
        assert!(t.load(v4(3), DAY, 12).is_empty());
        assert!(!t.load(v4(2), DAY, 12).is_empty());

        // The total bound evicts too.
        let big = vec![b'z'; 300 * 1024];
        let mut t = Table::new(4096, 1024 * 1024);
        for d in 1..=10 {
            t.save(v4(d), &Entries::new(), one("/big", &big), 1);
            assert!(t.total <= 1024 * 1024);
        }
        assert_eq!(t.len(), 3);
        // One source's bound: an oversized session is not kept.
        let mut huge = Entries::new();
        for i in 0..5 {
            huge.insert(format!("/h{i}"), file(&big));
        }
        t.save(v4(99), &Entries::new(), huge, 2);
        assert!(t.load(v4(99), DAY, 3).is_empty());
    }

    #[test]
    fn survives_encode_decode_and_refuses_corruption() {
        let mut t = Table::new(16, MAX_TOTAL_BYTES);
        let mut e = one("/root/.ssh/authorized_keys", b"ssh-rsa AAAA x\n");
        e.insert("/etc/motd".into(), None);
        e.insert(
            "/tmp/d".into(),
            Some(Record {
                kind: Kind::Dir,
                mode: 0o755,
                uid: 1000,
                mtime: -5,
                shown_size: Some(7),
                data: Vec::new(),
            }),
        );
        t.save(v4(1), &Entries::new(), e.clone(), 10);
        let v6 = SourceKey::of("2001:db8::1".parse().unwrap());
        t.save(v6, &Entries::new(), one("/tmp/six", b"6"), 11);
        let bytes = t.encode();
        let mut back = Table::decode(&bytes, 20).unwrap();
        assert_eq!(back.load(v4(1), DAY, 20), e);
        assert_eq!(back.load(v6, DAY, 20), one("/tmp/six", b"6"));
        for n in [0, 1, 8, 12, bytes.len() / 2, bytes.len() - 1] {
            assert!(Table::decode(&bytes[..n], 20).is_err(), "truncated at {n}");
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(Table::decode(&bad, 20).is_err(), "flipped byte {i}");
        }
        // A well-checksummed file with a hostile length is refused before allocating.
        let mut hostile = MAGIC.to_vec();
        hostile.extend_from_slice(&1u32.to_le_bytes());
        hostile.extend_from_slice(&src_of(v4(1)));
        hostile.extend_from_slice(&10u64.to_le_bytes());
        hostile.extend_from_slice(&1u32.to_le_bytes());
        hostile.extend_from_slice(&2u16.to_le_bytes());
        hostile.extend_from_slice(b"/x");
        hostile.push(2);
        hostile.extend_from_slice(&[0u8; 4 + 4 + 8 + 1 + 8]);
        hostile.extend_from_slice(&u32::MAX.to_le_bytes());
        let sum = ring::digest::digest(&ring::digest::SHA256, &hostile);
        hostile.extend_from_slice(sum.as_ref());
        assert!(Table::decode(&hostile, 20).is_err());
        // Forgotten after the longest memory, even across a restart.
        assert_eq!(Table::decode(&bytes, 11 + MAX_TTL_S + 1).unwrap().len(), 0);
        assert!(Table::decode(&vec![0u8; MAX_FILE_BYTES + 1], 20).is_err());
    }

    #[tokio::test]
    async fn store_survives_a_restart_and_ignores_a_corrupt_file() {
        use super::super::{Login, Profile, Shell, ShellLimits};
        let dir = tempfile::tempdir().unwrap();
        let ip: IpAddr = "198.51.100.4".parse().unwrap();
        let other: IpAddr = "198.51.100.5".parse().unwrap();
        let profile = Profile::new("web01");
        let login = Login {
            user: "admin".into(),
            src: ip,
            now: 1,
        };
        let shell = || Shell::new(Arc::clone(&profile), &login, false, ShellLimits::default());
        {
            let store = OverlayStore::open(dir.path());
            let mut sh = shell();
            let loaded = store.restore(ip, DAY, sh.files().0);
            let (fs, _, _) = sh.files();
            fs.write("/tmp/x", b"hello", false, 1000, 5).unwrap();
            store.keep(&loaded, fs);
            // The provisioned home and passwd are the session's identity, not kept.
            let t = store.lock().load(SourceKey::of(ip), DAY, unix_now());
            assert_eq!(t.keys().collect::<Vec<_>>(), ["/tmp/x"]);
            store.save().await;
        }
        let store = OverlayStore::open(dir.path());
        let mut sh = shell();
        let _ = store.restore(ip, DAY, sh.files().0);
        assert_eq!(sh.files().0.read("/tmp/x").unwrap(), b"hello");
        let mut sh2 = shell();
        let _ = store.restore(other, DAY, sh2.files().0);
        assert!(sh2.files().0.read("/tmp/x").is_err());

        std::fs::write(dir.path().join(OVERLAYS_FILE), b"HBOVLAY1 garbage").unwrap();
        let store = OverlayStore::open(dir.path());
        assert_eq!(store.lock().len(), 0);
    }
}
