//! The capture spool: files an agent must deliver (session transcripts, uploads, large
//! bodies), kept on disk as `<sha256>.bin` plus `<sha256>.hdr` until the core confirms it
//! stored them, so an upload cut halfway is simply sent again after reconnecting.

use honeybee_proto::capture::CaptureHeader;
use ring::digest;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Notify;

/// Most capture bytes kept waiting on disk; past it new captures are refused (and said so).
pub const DEFAULT_MAX_PENDING_BYTES: u64 = 512 * 1024 * 1024;

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
    pub kind: honeybee_proto::capture::CaptureKind,
    pub service: String,
    pub session: Option<honeybee_proto::SessionId>,
    pub time_ms: i64,
    pub meta: Vec<(String, String)>,
    pub content: Vec<u8>,
}

/// Handle to the capture spool directory; cheap to clone.
#[derive(Debug, Clone)]
pub struct CaptureSpool {
    dir: PathBuf,
    max_pending: u64,
    /// Signalled when a capture is added.
    pub added: Arc<Notify>,
}

impl CaptureSpool {
    pub fn open(dir: &Path, max_pending: u64) -> std::io::Result<CaptureSpool> {
        std::fs::create_dir_all(dir)?;
        // A crash between the two writes of `add` leaves a lone file: drop it.
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
        Ok(CaptureSpool {
            dir: dir.to_owned(),
            max_pending,
            added: Arc::new(Notify::new()),
        })
    }

    fn pending_bytes(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Stores a capture for delivery and returns its header. Identical content already
    /// waiting is delivered once.
    pub fn add(&self, c: NewCapture) -> Result<CaptureHeader, CaptureSpoolError> {
        let pending = self.pending_bytes();
        if pending + c.content.len() as u64 > self.max_pending {
            return Err(CaptureSpoolError::Full {
                pending,
                max: self.max_pending,
            });
        }
        let sha256: [u8; 32] = digest::digest(&digest::SHA256, &c.content)
            .as_ref()
            .try_into()
            .expect("SHA-256 is 32 bytes");
        let header = CaptureHeader {
            size: c.content.len() as u64,
            sha256,
            kind: c.kind,
            service: c.service,
            session: c.session,
            time_ms: c.time_ms,
            meta: c.meta,
        };
        let name = hex::encode(sha256);
        let hdr =
            postcard::to_allocvec(&header).map_err(|e| std::io::Error::other(e.to_string()))?;
        // Content first, header last: a header on disk means the content is complete.
        honeybee_pki::files::write_public(&self.dir.join(format!("{name}.bin")), &c.content)?;
        honeybee_pki::files::write_public(&self.dir.join(format!("{name}.hdr")), &hdr)?;
        self.added.notify_one();
        Ok(header)
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

    /// Forgets a capture the core stored (or refused for good).
    pub fn remove(&self, sha256: &[u8; 32]) {
        let name = hex::encode(sha256);
        let _ = std::fs::remove_file(self.dir.join(format!("{name}.hdr")));
        let _ = std::fs::remove_file(self.dir.join(format!("{name}.bin")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use honeybee_proto::capture::CaptureKind;

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
        assert!(matches!(
            s.add(cap(&[0; 200])),
            Err(CaptureSpoolError::Full { .. })
        ));
        s.remove(&h.sha256);
        assert!(s.pending().is_empty());
        // A lone content file (crash before the header was written) is cleaned up.
        std::fs::write(dir.path().join("ab.bin"), b"x").unwrap();
        let s = CaptureSpool::open(dir.path(), 100).unwrap();
        assert!(s.pending().is_empty());
        assert!(!dir.path().join("ab.bin").exists());
    }
}
