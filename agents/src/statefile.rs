//! Small state files an agent keeps between runs (the login memory, the kept shell
//! overlays, Redis keyspaces): read with a size bound, written whole and atomically, and
//! (`DelayedFile`) saved shortly after a change by one writer at a time.
//!
//! Both files hold what attackers wrote, so the reader never trusts the size on disk and
//! the writer never leaves half a file behind a crash.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The file's bytes, at most `max + 1` of them (so a caller can refuse a file that is too
/// large without reading all of it); `None` if it does not exist.
pub(crate) fn read_bounded(path: &Path, max: usize) -> std::io::Result<Option<Vec<u8>>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.take(max as u64 + 1).read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// Writes `bytes` under a temporary name with mode 0600, syncs, renames it over `path`
/// and syncs the directory: a crash leaves the old file or the new one, never half of one.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    honeybee_pki::files::write_private(path, bytes)
}

/// What a [`DelayedFile`] saves: the owner hands out its file and a snapshot of its state.
pub(crate) trait Snapshot: Send + Sync + 'static {
    fn file(&self) -> &DelayedFile;
    fn snapshot(&self) -> Vec<u8>;
}

/// A state file written a moment after a change rather than at every change (a burst of
/// attempts or sessions costs one write), by one writer at a time, so the newest snapshot
/// is the one left in place. Shared by the login memory and the kept shell overlays.
#[derive(Debug)]
pub(crate) struct DelayedFile {
    path: PathBuf,
    delay: Duration,
    /// What the log calls it when a save fails ("the login memory").
    what: &'static str,
    /// A save is scheduled.
    scheduled: AtomicBool,
    writing: Mutex<()>,
}

impl DelayedFile {
    pub(crate) fn new(path: PathBuf, delay: Duration, what: &'static str) -> DelayedFile {
        DelayedFile {
            path,
            delay,
            what,
            scheduled: AtomicBool::new(false),
            writing: Mutex::new(()),
        }
    }

    /// Schedules a save `delay` from now unless one is already scheduled (outside a tokio
    /// runtime nothing is scheduled; the next save or shutdown writes it).
    pub(crate) fn schedule<T: Snapshot>(owner: &Arc<T>) {
        let file = owner.file();
        if file.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            file.scheduled.store(false, Ordering::Release);
            return;
        };
        let owner = Arc::clone(owner);
        rt.spawn(async move {
            tokio::time::sleep(owner.file().delay).await;
            DelayedFile::save_now(&owner).await;
        });
    }

    /// Writes the owner's state now (in a blocking thread); a failure is logged, not fatal.
    pub(crate) async fn save_now<T: Snapshot>(owner: &Arc<T>) {
        let owner = Arc::clone(owner);
        let _ = tokio::task::spawn_blocking(move || DelayedFile::save_blocking(&*owner)).await;
    }

    fn save_blocking<T: Snapshot>(owner: &T) {
        let file = owner.file();
        let _w = file.writing.lock().unwrap_or_else(|e| e.into_inner());
        // Cleared before the snapshot: a change after it schedules another save.
        file.scheduled.store(false, Ordering::Release);
        let bytes = owner.snapshot();
        if let Err(e) = write_atomically(&file.path, &bytes) {
            tracing::warn!(path = %file.path.display(), error = %e, "cannot save {}", file.what);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("state.bin");
        assert!(read_bounded(&path, 8).unwrap().is_none());
        write_atomically(&path, b"0123456789").unwrap();
        assert_eq!(read_bounded(&path, 64).unwrap().unwrap(), b"0123456789");
        // A file over the bound is read only one byte past it.
        assert_eq!(read_bounded(&path, 4).unwrap().unwrap(), b"01234");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
