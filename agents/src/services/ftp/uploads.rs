//! What each source uploaded, remembered across connections: on a real server a file
//! put there yesterday is still in today's listing and can be downloaded again. Kept
//! per source (IPv4 address or IPv6 /64) for the service's `remember` time, bounded in
//! sources, files and bytes, and persisted atomically in the agent's data directory like
//! the login memory. The bytes of each upload are also captured as before; this book
//! only keeps small files' content so that `RETR` gives them back.

use crate::services::limits::SourceKey;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Sources remembered at most; past it the least recently active one goes.
const MAX_SOURCES: usize = 1024;
/// Files remembered per source; past it the oldest goes.
const MAX_FILES: usize = 32;
/// Largest upload whose content is kept for `RETR` (larger ones are listed only).
pub(crate) const MAX_CONTENT: usize = 64 * 1024;
/// Content kept across all sources; past it the oldest contents are dropped.
const MAX_TOTAL_CONTENT: usize = 8 * 1024 * 1024;
/// The file is never trusted to be smaller than this.
const MAX_FILE_BYTES: usize = MAX_TOTAL_CONTENT * 2 + 4 * 1024 * 1024;

/// One remembered upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stored {
    /// Absolute, normalised path in the fake tree.
    pub path: String,
    pub size: u64,
    /// When it was uploaded (Unix seconds): its listing date.
    pub at: u64,
    /// The bytes, for uploads up to [`MAX_CONTENT`] while the budget allows.
    pub content: Option<Vec<u8>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Table {
    /// Source (as text) → its uploads, oldest first.
    sources: HashMap<String, Vec<Stored>>,
}

impl Table {
    fn expire(&mut self, now: u64, ttl: u64) {
        for files in self.sources.values_mut() {
            files.retain(|f| f.at.saturating_add(ttl) > now);
        }
        self.sources.retain(|_, f| !f.is_empty());
    }

    fn content_bytes(&self) -> usize {
        self.sources
            .values()
            .flatten()
            .filter_map(|f| f.content.as_ref().map(Vec::len))
            .sum()
    }

    fn add(&mut self, src: String, file: Stored) {
        if !self.sources.contains_key(&src) && self.sources.len() >= MAX_SOURCES {
            let oldest = self
                .sources
                .iter()
                .min_by_key(|(_, f)| f.iter().map(|x| x.at).max().unwrap_or(0))
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.sources.remove(&k);
            }
        }
        let files = self.sources.entry(src).or_default();
        files.retain(|f| f.path != file.path);
        if files.len() >= MAX_FILES {
            files.remove(0);
        }
        files.push(file);
        // Over the content budget: drop the oldest contents (the files stay listed).
        let mut total = self.content_bytes();
        while total > MAX_TOTAL_CONTENT {
            let oldest = self
                .sources
                .values_mut()
                .flatten()
                .filter(|f| f.content.is_some())
                .min_by_key(|f| f.at);
            match oldest {
                Some(f) => {
                    total -= f.content.as_ref().map_or(0, Vec::len);
                    f.content = None;
                }
                None => break,
            }
        }
    }

    fn remove(&mut self, src: &str, path: &str) {
        if let Some(files) = self.sources.get_mut(src) {
            files.retain(|f| f.path != path);
        }
    }
}

/// The uploads of one FTP service, shared by its connections.
#[derive(Debug)]
pub(crate) struct UploadBook {
    table: Mutex<Table>,
    path: Option<PathBuf>,
    ttl: u64,
}

fn src_key(ip: std::net::IpAddr) -> String {
    match SourceKey::of(ip) {
        SourceKey::V4(o) => std::net::Ipv4Addr::from(o).to_string(),
        SourceKey::V6Prefix(p) => hex::encode(p),
    }
}

fn now() -> u64 {
    u64::try_from(crate::sink::now_ms() / 1000).unwrap_or(0)
}

impl UploadBook {
    /// Opens the book saved at `dir/name` (an unreadable or corrupt file is ignored:
    /// it holds what attackers sent, never trusted); `dir` `None`: in memory only.
    pub(crate) fn open(dir: Option<&Path>, name: &str, ttl: u64) -> Arc<UploadBook> {
        let path = dir.map(|d| d.join(name));
        let mut table = path
            .as_deref()
            .and_then(|p| {
                crate::statefile::read_bounded(p, MAX_FILE_BYTES)
                    .ok()
                    .flatten()
            })
            .filter(|b| b.len() <= MAX_FILE_BYTES)
            .and_then(|b| postcard::from_bytes::<Table>(&b).ok())
            .unwrap_or_default();
        // A file edited by hand is brought back within the bounds.
        table.sources.retain(|_, f| {
            f.truncate(MAX_FILES);
            true
        });
        while table.sources.len() > MAX_SOURCES {
            let Some(k) = table.sources.keys().next().cloned() else {
                break;
            };
            table.sources.remove(&k);
        }
        for f in table.sources.values_mut().flatten() {
            if f.content.as_ref().is_some_and(|c| c.len() > MAX_CONTENT) {
                f.content = None;
            }
        }
        table.expire(now(), ttl);
        Arc::new(UploadBook {
            table: Mutex::new(table),
            path,
            ttl,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The uploads `ip` made that are still remembered.
    pub(crate) fn files(&self, ip: std::net::IpAddr) -> Vec<Stored> {
        let mut t = self.lock();
        t.expire(now(), self.ttl);
        t.sources.get(&src_key(ip)).cloned().unwrap_or_default()
    }

    /// Records an upload and saves the book.
    pub(crate) async fn add(self: &Arc<Self>, ip: std::net::IpAddr, file: Stored) {
        self.lock().add(src_key(ip), file);
        self.save().await;
    }

    /// Forgets an upload (deleted or renamed by its source) and saves the book.
    pub(crate) async fn remove(self: &Arc<Self>, ip: std::net::IpAddr, path: &str) {
        self.lock().remove(&src_key(ip), path);
        self.save().await;
    }

    async fn save(self: &Arc<Self>) {
        let Some(path) = self.path.clone() else {
            return;
        };
        let me = Arc::clone(self);
        let _ = tokio::task::spawn_blocking(move || {
            let bytes = match postcard::to_allocvec(&*me.lock()) {
                Ok(b) => b,
                Err(_) => return,
            };
            if let Err(e) = crate::statefile::write_atomically(&path, &bytes) {
                tracing::warn!(path = %path.display(), error = %e, "cannot save the FTP uploads");
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, at: u64, content: Option<usize>) -> Stored {
        Stored {
            path: path.into(),
            size: 5,
            at,
            content: content.map(|n| vec![b'x'; n]),
        }
    }

    #[test]
    fn bounded_in_files_sources_and_content() {
        let mut t = Table::default();
        for i in 0..100 {
            t.add("a".into(), file(&format!("/upload/{i}"), i, Some(10)));
        }
        assert_eq!(t.sources["a"].len(), MAX_FILES);
        for i in 0..(MAX_SOURCES as u64 + 50) {
            t.add(format!("s{i}"), file("/x", i + 1000, None));
        }
        assert!(t.sources.len() <= MAX_SOURCES);
        for i in 0..200 {
            t.add(
                format!("big{}", i % 3),
                file(&format!("/b{i}"), 5000 + i, Some(MAX_CONTENT)),
            );
        }
        assert!(t.content_bytes() <= MAX_TOTAL_CONTENT);
        t.expire(u64::MAX / 2, 10);
        assert!(t.sources.is_empty());
    }

    #[tokio::test]
    async fn survives_a_restart_and_ignores_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let ip: std::net::IpAddr = "10.0.0.9".parse().unwrap();
        let book = UploadBook::open(Some(dir.path()), "up.bin", 3600);
        book.add(ip, file("/upload/a.sh", now(), Some(3))).await;
        let again = UploadBook::open(Some(dir.path()), "up.bin", 3600);
        assert_eq!(again.files(ip).len(), 1);
        assert!(again.files("10.0.0.8".parse().unwrap()).is_empty());
        again.remove(ip, "/upload/a.sh").await;
        assert!(
            UploadBook::open(Some(dir.path()), "up.bin", 3600)
                .files(ip)
                .is_empty()
        );
        std::fs::write(dir.path().join("up.bin"), b"\xff\xff\xff garbage").unwrap();
        assert!(
            UploadBook::open(Some(dir.path()), "up.bin", 3600)
                .files(ip)
                .is_empty()
        );
    }
}
