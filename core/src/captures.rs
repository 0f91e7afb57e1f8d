//! Content-addressed capture files: `captures/<first two hex>/<sha256 hex>`, written to a
//! temporary file while hashing, verified against the uploader's header, then renamed.

use ring::digest;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    #[error("capture is {got} bytes but its header announced {expected}")]
    SizeMismatch { expected: u64, got: u64 },
    #[error("capture content does not match its SHA-256 (header {expected}, content {got})")]
    HashMismatch { expected: String, got: String },
    #[error("capture of {size} bytes is over the limit of {max} bytes")]
    TooLarge { size: u64, max: u64 },
    #[error("capture storage: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone)]
pub struct CaptureStore {
    dir: PathBuf,
}

impl CaptureStore {
    pub fn new(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir.join("tmp"))?;
        Ok(CaptureStore {
            dir: dir.to_owned(),
        })
    }

    /// Where the content with this hash lives (whether or not it exists).
    pub fn path_of(&self, sha256: &[u8; 32]) -> PathBuf {
        let h = hex::encode(sha256);
        self.dir.join(&h[..2]).join(h)
    }

    /// Starts receiving a capture of `expected_size` bytes.
    pub async fn begin(&self, expected_size: u64) -> Result<PendingCapture, CaptureError> {
        let tmp = self
            .dir
            .join("tmp")
            .join(format!("{:016x}.part", rand::random::<u64>()));
        let file = tokio::fs::File::create(&tmp).await?;
        Ok(PendingCapture {
            store: self.clone(),
            tmp,
            file: Some(file),
            hasher: digest::Context::new(&digest::SHA256),
            received: 0,
            expected_size,
        })
    }
}

/// A capture being received; dropping it without [`finish`](Self::finish) deletes the part.
pub struct PendingCapture {
    store: CaptureStore,
    tmp: PathBuf,
    file: Option<tokio::fs::File>,
    hasher: digest::Context,
    received: u64,
    expected_size: u64,
}

impl PendingCapture {
    /// Appends a chunk; refuses to go past the announced size.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), CaptureError> {
        let got = self.received + chunk.len() as u64;
        if got > self.expected_size {
            return Err(CaptureError::SizeMismatch {
                expected: self.expected_size,
                got,
            });
        }
        self.hasher.update(chunk);
        if let Some(f) = self.file.as_mut() {
            f.write_all(chunk).await?;
        }
        self.received = got;
        Ok(())
    }

    /// Verifies size and hash, then moves the content into place. Returns true if the
    /// content was new (false if an identical capture was already stored).
    pub async fn finish(mut self, expected_sha256: &[u8; 32]) -> Result<bool, CaptureError> {
        if self.received != self.expected_size {
            return Err(CaptureError::SizeMismatch {
                expected: self.expected_size,
                got: self.received,
            });
        }
        let got = self.hasher.clone().finish();
        if got.as_ref() != expected_sha256 {
            return Err(CaptureError::HashMismatch {
                expected: hex::encode(expected_sha256),
                got: hex::encode(got.as_ref()),
            });
        }
        let mut file = self.file.take().expect("file present until finish");
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        let dest = self.store.path_of(expected_sha256);
        if tokio::fs::try_exists(&dest).await? {
            tokio::fs::remove_file(&self.tmp).await?;
            return Ok(false);
        }
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::rename(&self.tmp, &dest).await?;
        Ok(true)
    }
}

impl Drop for PendingCapture {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(b: &[u8]) -> [u8; 32] {
        digest::digest(&digest::SHA256, b)
            .as_ref()
            .try_into()
            .unwrap()
    }

    #[tokio::test]
    async fn stores_verifies_and_dedupes() {
        let dir = tempfile::tempdir().unwrap();
        let s = CaptureStore::new(dir.path()).unwrap();
        let mut p = s.begin(5).await.unwrap();
        p.write(b"hel").await.unwrap();
        p.write(b"lo").await.unwrap();
        assert!(p.finish(&sha(b"hello")).await.unwrap());
        assert_eq!(std::fs::read(s.path_of(&sha(b"hello"))).unwrap(), b"hello");
        let mut p = s.begin(5).await.unwrap();
        p.write(b"hello").await.unwrap();
        assert!(!p.finish(&sha(b"hello")).await.unwrap());
    }

    #[tokio::test]
    async fn refuses_mismatch_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = CaptureStore::new(dir.path()).unwrap();
        let mut p = s.begin(5).await.unwrap();
        p.write(b"hellx").await.unwrap();
        assert!(matches!(
            p.finish(&sha(b"hello")).await,
            Err(CaptureError::HashMismatch { .. })
        ));
        let mut p = s.begin(2).await.unwrap();
        assert!(p.write(b"abc").await.is_err());
        drop(p);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }
}
