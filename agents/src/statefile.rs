//! Small state files an agent keeps between runs (the login memory, Redis keyspaces):
//! read with a size bound, written whole and atomically.
//!
//! Both files hold what attackers wrote, so the reader never trusts the size on disk and
//! the writer never leaves half a file behind a crash.

use std::io::Read;
use std::path::Path;

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
