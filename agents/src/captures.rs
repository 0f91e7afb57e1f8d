//! The capture spool: files an agent must deliver (session transcripts, uploads, large
//! bodies), kept on disk as `<sha256>.bin` plus `<sha256>.hdr` until the core confirms it
//! stored them, so an upload cut halfway is simply sent again after reconnecting.
//!
//! Content is streamed to disk ([`CaptureWriter`]): a service never needs to hold a whole
//! upload in memory. The size cap is a reservation, not a check: every byte is reserved
//! (one atomic compare-and-swap) before it is written and given back if it is not kept,
//! so concurrent captures together can never take the spool past its cap.

use honeybee_proto::SessionId;
use honeybee_proto::capture::{CaptureHeader, CaptureKind};
use ring::digest;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Most capture bytes kept waiting on disk; past it new captures are refused (and said so).
pub const DEFAULT_MAX_PENDING_BYTES: u64 = 512 * 1024 * 1024;

/// Suffix of a capture still being written; such files are removed when the spool opens.
const PART: &str = "part";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureSpoolError {
    #[error("capture spool is full ({pending} bytes pending, limit {max})")]
    Full { pending: u64, max: u64 },
    #[error("capture spool: {0}")]
    Io(#[from] std::io::Error),
}

/// What a service hands over: the content and the facts for its header.
#[derive(Debug, Clone)]
pub struct NewCapture {
    pub kind: CaptureKind,
    pub service: String,
    pub session: Option<SessionId>,
    pub time_ms: i64,
    pub meta: Vec<(String, String)>,
    pub content: Vec<u8>,
}

/// Handle to the capture spool directory; cheap to clone.
#[derive(Debug, Clone)]
pub struct CaptureSpool {
    dir: PathBuf,
    max_pending: u64,
    /// Bytes of `.bin` and `.hdr` files on disk plus bytes reserved by captures being
    /// written; never above `max_pending`.
    used: Arc<AtomicU64>,
    /// Held while a capture is committed (renamed into place, header written) or removed,
    /// so identical content committed twice, or committed while removed, is counted once.
    commit: Arc<Mutex<()>>,
    /// Signalled when a capture is added.
    pub added: Arc<Notify>,
}

impl CaptureSpool {
    pub fn open(dir: &Path, max_pending: u64) -> std::io::Result<CaptureSpool> {
        std::fs::create_dir_all(dir)?;
        // A crash between the two writes of a commit leaves a lone file, a crash during a
        // streamed capture a `.part` file: drop them.
        for entry in std::fs::read_dir(dir)? {
            let p = entry?.path();
            let other = match p.extension().and_then(|e| e.to_str()) {
                Some("bin") => p.with_extension("hdr"),
                Some("hdr") => p.with_extension("bin"),
                _ => {
                    let _ = std::fs::remove_file(&p);
                    continue;
                }
            };
            if !other.exists() {
                let _ = std::fs::remove_file(&p);
            }
        }
        let on_disk = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        Ok(CaptureSpool {
            dir: dir.to_owned(),
            max_pending,
            used: Arc::new(AtomicU64::new(on_disk)),
            commit: Arc::new(Mutex::new(())),
            added: Arc::new(Notify::new()),
        })
    }

    /// Bytes the spool holds or has promised to captures being written.
    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// The cap on [`used_bytes`](Self::used_bytes).
    pub fn max_bytes(&self) -> u64 {
        self.max_pending
    }

    /// Takes `n` bytes of the cap, or refuses without taking any.
    fn reserve(&self, n: u64) -> Result<(), CaptureSpoolError> {
        let max = self.max_pending;
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|t| *t <= max)
            })
            .map(|_| ())
            .map_err(|pending| CaptureSpoolError::Full { pending, max })
    }

    fn release(&self, n: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            });
    }

    fn lock_commit(&self) -> std::sync::MutexGuard<'_, ()> {
        // The guard protects no data, only ordering: a poisoned lock is still usable.
        self.commit.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a capture whose content is streamed in with [`CaptureWriter::write`].
    /// Nothing is kept (and nothing stays reserved) unless [`CaptureWriter::finish`]
    /// succeeds.
    pub fn writer(
        &self,
        kind: CaptureKind,
        service: String,
        session: Option<SessionId>,
        time_ms: i64,
    ) -> Result<CaptureWriter, CaptureSpoolError> {
        let tmp = self.dir.join(format!(
            "{}.{PART}",
            hex::encode(rand::random::<[u8; 16]>())
        ));
        // create_new: never follow a symlink or reuse a file planted at the name.
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        Ok(CaptureWriter {
            spool: self.clone(),
            file: Some(file),
            tmp,
            hasher: digest::Context::new(&digest::SHA256),
            size: 0,
            reserved: 0,
            kind,
            service,
            session,
            time_ms,
        })
    }

    /// Stores a capture for delivery and returns its header. Identical content already
    /// waiting is delivered once.
    pub fn add(&self, c: NewCapture) -> Result<CaptureHeader, CaptureSpoolError> {
        // Checked before the file is even created; `write` reserves it for real.
        if self.used_bytes().saturating_add(c.content.len() as u64) > self.max_pending {
            return Err(CaptureSpoolError::Full {
                pending: self.used_bytes(),
                max: self.max_pending,
            });
        }
        let mut w = self.writer(c.kind, c.service, c.session, c.time_ms)?;
        w.write(&c.content)?;
        w.finish(c.meta)
    }

    /// Captures waiting for delivery, oldest first.
    pub fn pending(&self) -> Vec<(CaptureHeader, PathBuf)> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<(std::time::SystemTime, CaptureHeader, PathBuf)> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "hdr"))
            .filter_map(|p| {
                let bytes = std::fs::read(&p).ok()?;
                let header: CaptureHeader = postcard::from_bytes(&bytes).ok()?;
                let modified = std::fs::metadata(&p).and_then(|m| m.modified()).ok()?;
                Some((modified, header, p.with_extension("bin")))
            })
            .collect();
        out.sort_by_key(|(t, _, _)| *t);
        out.into_iter().map(|(_, h, p)| (h, p)).collect()
    }

    /// Forgets a capture the core stored (or refused for good), giving its bytes back.
    pub fn remove(&self, sha256: &[u8; 32]) {
        let name = hex::encode(sha256);
        let _guard = self.lock_commit();
        for ext in ["hdr", "bin"] {
            let p = self.dir.join(format!("{name}.{ext}"));
            if let Ok(m) = std::fs::symlink_metadata(&p)
                && std::fs::remove_file(&p).is_ok()
            {
                self.release(m.len());
            }
        }
    }
}

/// One capture being streamed into the spool. Each [`write`](Self::write) reserves its
/// bytes first; dropping the writer without [`finish`](Self::finish) deletes the partial
/// file and gives the reservation back.
pub struct CaptureWriter {
    spool: CaptureSpool,
    file: Option<File>,
    tmp: PathBuf,
    hasher: digest::Context,
    size: u64,
    /// Bytes of the cap this writer holds (content so far, then the header).
    reserved: u64,
    kind: CaptureKind,
    service: String,
    session: Option<SessionId>,
    time_ms: i64,
}

impl std::fmt::Debug for CaptureWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureWriter")
            .field("tmp", &self.tmp)
            .field("size", &self.size)
            .field("reserved", &self.reserved)
            .finish_non_exhaustive()
    }
}

impl CaptureWriter {
    /// Appends `data`, all or nothing: `Full` when the spool has no room for it (what
    /// was written before stays, and can still be finished).
    pub fn write(&mut self, data: &[u8]) -> Result<(), CaptureSpoolError> {
        let n = data.len() as u64;
        self.spool.reserve(n)?;
        self.reserved += n;
        let Some(file) = self.file.as_mut() else {
            return Err(std::io::Error::other("capture already finished").into());
        };
        // On a failed write the reservation stays with the writer and is released on drop.
        file.write_all(data)?;
        self.hasher.update(data);
        self.size += n;
        Ok(())
    }

    /// Content bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Commits the capture (content first, header last: a header on disk means the
    /// content is complete) and returns its header. Content already waiting in the spool
    /// is kept once.
    pub fn finish(
        mut self,
        meta: Vec<(String, String)>,
    ) -> Result<CaptureHeader, CaptureSpoolError> {
        let Some(file) = self.file.take() else {
            return Err(std::io::Error::other("capture already finished").into());
        };
        file.sync_all()?;
        drop(file);
        let sha256: [u8; 32] = self
            .hasher
            .clone()
            .finish()
            .as_ref()
            .try_into()
            .map_err(|_| std::io::Error::other("SHA-256 is not 32 bytes"))?;
        let header = CaptureHeader {
            size: self.size,
            sha256,
            kind: self.kind,
            service: std::mem::take(&mut self.service),
            session: self.session,
            time_ms: self.time_ms,
            meta,
        };
        let hdr =
            postcard::to_allocvec(&header).map_err(|e| std::io::Error::other(e.to_string()))?;
        let name = hex::encode(sha256);
        let bin = self.spool.dir.join(format!("{name}.bin"));
        let hdr_path = self.spool.dir.join(format!("{name}.hdr"));
        let spool = self.spool.clone();
        let _guard = spool.lock_commit();
        if hdr_path.exists() {
            // Already waiting: this copy is dropped (on drop) and its bytes given back.
            return Ok(header);
        }
        spool.reserve(hdr.len() as u64)?;
        self.reserved += hdr.len() as u64;
        std::fs::rename(&self.tmp, &bin)?;
        if let Err(e) = honeybee_pki::files::write_public(&hdr_path, &hdr) {
            // Without its header the content would never be sent: take it back out.
            let _ = std::fs::remove_file(&bin);
            return Err(e.into());
        }
        // Committed: the bytes now belong to the files on disk, released by `remove`.
        self.reserved = 0;
        spool.added.notify_one();
        Ok(header)
    }
}

impl Drop for CaptureWriter {
    fn drop(&mut self) {
        if self.reserved > 0 {
            // Not committed (or a duplicate): the partial file goes, and so does its share.
            self.file = None;
            let _ = std::fs::remove_file(&self.tmp);
            self.spool.release(self.reserved);
        } else if self.file.is_some() {
            // Nothing written: just the empty file.
            self.file = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(content: &[u8]) -> NewCapture {
        NewCapture {
            kind: CaptureKind::Upload,
            service: "ftp".into(),
            session: None,
            time_ms: 1,
            meta: vec![],
            content: content.to_vec(),
        }
    }

    fn on_disk(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    }

    #[test]
    fn add_list_remove_and_cap() {
        let dir = tempfile::tempdir().unwrap();
        let s = CaptureSpool::open(dir.path(), 100).unwrap();
        let h = s.add(cap(b"hello")).unwrap();
        assert_eq!(h.size, 5);
        s.add(cap(b"hello")).unwrap();
        let p = s.pending();
        assert_eq!(p.len(), 1, "identical content is spooled once");
        assert_eq!(std::fs::read(&p[0].1).unwrap(), b"hello");
        assert_eq!(s.used_bytes(), on_disk(dir.path()), "counted once");
        assert!(matches!(
            s.add(cap(&[0; 200])),
            Err(CaptureSpoolError::Full { .. })
        ));
        s.remove(&h.sha256);
        assert!(s.pending().is_empty());
        assert_eq!(s.used_bytes(), 0);
        // A lone content file (crash before the header was written) and a partial
        // streamed capture are cleaned up.
        std::fs::write(dir.path().join("ab.bin"), b"x").unwrap();
        std::fs::write(dir.path().join("cd.part"), b"x").unwrap();
        let s = CaptureSpool::open(dir.path(), 100).unwrap();
        assert!(s.pending().is_empty());
        assert!(!dir.path().join("ab.bin").exists());
        assert!(!dir.path().join("cd.part").exists());
        assert_eq!(s.used_bytes(), 0);
    }

    #[test]
    fn streamed_capture_is_on_disk_before_it_is_finished() {
        let dir = tempfile::tempdir().unwrap();
        let s = CaptureSpool::open(dir.path(), 1 << 20).unwrap();
        let mut w = s
            .writer(CaptureKind::Upload, "ftp".into(), None, 1)
            .unwrap();
        for _ in 0..4 {
            w.write(&[7u8; 1000]).unwrap();
        }
        assert_eq!(
            on_disk(dir.path()),
            4000,
            "the content is on disk, not in memory"
        );
        assert_eq!(s.used_bytes(), 4000);
        let h = w.finish(vec![("k".into(), "v".into())]).unwrap();
        assert_eq!(h.size, 4000);
        assert_eq!(
            h.sha256.as_ref(),
            digest::digest(&digest::SHA256, &[7u8; 4000]).as_ref()
        );
        assert_eq!(s.used_bytes(), on_disk(dir.path()));
        // An abandoned writer leaves nothing behind, reserved or on disk.
        let before = s.used_bytes();
        let mut w = s
            .writer(CaptureKind::Upload, "ftp".into(), None, 1)
            .unwrap();
        w.write(&[1u8; 5000]).unwrap();
        drop(w);
        assert_eq!(s.used_bytes(), before);
        assert_eq!(on_disk(dir.path()), before);
    }

    #[test]
    fn a_full_spool_refuses_the_write_and_keeps_what_fits() {
        let dir = tempfile::tempdir().unwrap();
        let s = CaptureSpool::open(dir.path(), 3000).unwrap();
        let mut w = s
            .writer(CaptureKind::Upload, "ftp".into(), None, 1)
            .unwrap();
        w.write(&[1u8; 2000]).unwrap();
        assert!(matches!(
            w.write(&[1u8; 2000]),
            Err(CaptureSpoolError::Full { max: 3000, .. })
        ));
        assert_eq!(w.size(), 2000);
        let h = w.finish(vec![]).unwrap();
        assert_eq!(h.size, 2000);
        assert!(s.used_bytes() <= 3000);
        assert_eq!(s.used_bytes(), on_disk(dir.path()));
    }

    #[test]
    fn concurrent_captures_never_overshoot_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let max = 64 * 1024;
        let s = CaptureSpool::open(dir.path(), max).unwrap();
        let barrier = Arc::new(std::sync::Barrier::new(16));
        let threads: Vec<_> = (0..16u8)
            .map(|i| {
                let s = s.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    // Distinct content, each one alone well under the cap.
                    s.add(cap(&[i; 10_000])).is_ok()
                })
            })
            .collect();
        let stored = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|ok| *ok)
            .count();
        assert!((1..16).contains(&stored), "{stored} stored");
        assert!(
            on_disk(dir.path()) <= max,
            "{} > {max}",
            on_disk(dir.path())
        );
        assert_eq!(s.used_bytes(), on_disk(dir.path()));
        assert_eq!(s.pending().len(), stored);
    }
}
