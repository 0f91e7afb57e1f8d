//! Remote upgrade, the node's side: read an upgrade stream the core opened, check the
//! offer's signature against the deployment's CA before reading the package, stream the
//! package to a file while hashing it, and keep it only when size and SHA-256 match.
//! What is kept is an executable file beside the agent's data, ready to be installed;
//! nothing received is run before all of that has passed.

use crate::transport::{FrameIoError, read_frame};
use honeybee_proto::upgrade::{MAX_PACKAGE_BYTES, OFFER_LIMIT, PackageKind, UpgradeOffer};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

pub mod slots;

/// The folder of an agent's data directory that received packages are kept in.
pub const DIR: &str = "upgrade";

/// The version this agent reports in its hello and compares offers with: the crate's,
/// unless it was built with the `version-override` feature and `HONEYBEE_VERSION_OVERRIDE`
/// set at compile time. That is how the end-to-end upgrade test makes a real second build
/// of a different version (`tests/upgrade.rs`); no release build sets either.
#[cfg(feature = "version-override")]
pub const VERSION: &str = match option_env!("HONEYBEE_VERSION_OVERRIDE") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};
/// The version this agent reports in its hello and compares offers with.
#[cfg(not(feature = "version-override"))]
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpgradeError {
    #[error("reading the offer: {0}")]
    Frame(#[from] FrameIoError),
    #[error(transparent)]
    Offer(#[from] honeybee_proto::upgrade::BadOffer),
    #[error("the offer is not signed by this deployment's CA")]
    Signature,
    #[error("the CA certificate is unusable: {0}")]
    Ca(String),
    #[error("version {0} is the one running")]
    SameVersion(String),
    #[error("the package ended after {got} of {want} bytes")]
    Truncated { got: u64, want: u64 },
    #[error("more bytes than the offer announced")]
    TooLong,
    #[error("the package's SHA-256 is not the offer's")]
    Hash,
    #[error("package kind not supported by this agent")]
    Kind,
    #[error("writing the package: {0}")]
    Io(#[from] std::io::Error),
}

/// A package that passed every check, in its file.
#[derive(Debug, Clone)]
pub struct Received {
    pub offer: UpgradeOffer,
    pub path: PathBuf,
}

/// Checks `offer.signature` against the public key of the CA certificate `ca_der`.
pub fn verify_offer(ca_der: &[u8], offer: &UpgradeOffer) -> Result<(), UpgradeError> {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(ca_der)
        .map_err(|e| UpgradeError::Ca(e.to_string()))?;
    let point = cert
        .tbs_certificate
        .subject_pki
        .subject_public_key
        .data
        .as_ref();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, point)
        .verify(&offer.signed_message(), &offer.signature)
        .map_err(|_| UpgradeError::Signature)
}

/// Reads an upgrade stream after its kind byte: the offer, checked and verified, then the
/// package into `data_dir/upgrade/`. `running`: this agent's version (an offer of the same
/// version is refused: there is nothing to do).
pub async fn receive<R: AsyncRead + Unpin>(
    r: &mut R,
    ca_der: &[u8],
    data_dir: &Path,
    running: &str,
) -> Result<Received, UpgradeError> {
    let offer = read_offer(r, ca_der, running).await?;
    fetch_package(r, offer, data_dir).await
}

/// The offer frame, checked: bounds, the CA's signature, not the running version.
pub async fn read_offer<R: AsyncRead + Unpin>(
    r: &mut R,
    ca_der: &[u8],
    running: &str,
) -> Result<UpgradeOffer, UpgradeError> {
    let offer: UpgradeOffer = read_frame(r, OFFER_LIMIT).await?;
    offer.validate()?;
    // The signature first: a stranger's offer costs one frame, never its package.
    verify_offer(ca_der, &offer)?;
    if offer.version == running {
        return Err(UpgradeError::SameVersion(offer.version));
    }
    Ok(offer)
}

/// The package after a verified offer, into `data_dir/upgrade/`.
pub async fn fetch_package<R: AsyncRead + Unpin>(
    r: &mut R,
    offer: UpgradeOffer,
    data_dir: &Path,
) -> Result<Received, UpgradeError> {
    let name = match offer.kind {
        PackageKind::Binary => format!("honeybee-agent-{}", offer.version),
        PackageKind::Deb => format!("honeybee-agent_{}.deb", offer.version),
        _ => return Err(UpgradeError::Kind),
    };
    let dir = data_dir.join(DIR);
    tokio::fs::create_dir_all(&dir).await?;
    let partial = dir.join(format!(".{name}.partial"));
    let result = fetch(r, &offer, &partial).await;
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(e);
    }
    let path = dir.join(name);
    tokio::fs::rename(&partial, &path).await?;
    Ok(Received { offer, path })
}

/// Streams exactly `offer.size` bytes into `path` (0700, owner only) while hashing them,
/// then requires the stream to end and the hash to match.
async fn fetch<R: AsyncRead + Unpin>(
    r: &mut R,
    offer: &UpgradeOffer,
    path: &Path,
) -> Result<(), UpgradeError> {
    debug_assert!(offer.size <= MAX_PACKAGE_BYTES);
    let mut opts = tokio::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o700);
    let mut file = opts.open(path).await?;
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0u64;
    while got < offer.size {
        let want = (offer.size - got).min(buf.len() as u64) as usize;
        let n = r.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(UpgradeError::Truncated {
                got,
                want: offer.size,
            });
        }
        hash.update(&buf[..n]);
        file.write_all(&buf[..n]).await?;
        got += n as u64;
    }
    if r.read(&mut buf[..1]).await? != 0 {
        return Err(UpgradeError::TooLong);
    }
    if hash.finish().as_ref() != offer.sha256 {
        return Err(UpgradeError::Hash);
    }
    file.sync_all().await?;
    Ok(())
}

/// How long one upgrade stream may take from its first byte to its last.
const STREAM_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

/// Serves the upgrade streams the core opens on `conn`, one at a time, until the
/// connection closes; what became of each is reported on the control stream.
pub async fn accept(
    conn: quinn::Connection,
    ca_der: Vec<u8>,
    data_dir: std::path::PathBuf,
    report: tokio::sync::mpsc::Sender<honeybee_proto::control::AgentMsg>,
) {
    use honeybee_proto::stream::{StreamKind, close};
    while let Ok(mut recv) = conn.accept_uni().await {
        let mut kind = [0u8; 1];
        let first = tokio::time::timeout(STREAM_DEADLINE, recv.read_exact(&mut kind)).await;
        if !matches!(first, Ok(Ok(()))) || kind[0] != StreamKind::Upgrade as u8 {
            let _ = recv.stop(close::PROTOCOL.into());
            continue;
        }
        let work = async {
            let offer = read_offer(&mut recv, &ca_der, VERSION)
                .await
                .map_err(|e| (String::new(), e))?;
            let version = offer.version.clone();
            fetch_package(&mut recv, offer, &data_dir)
                .await
                .map_err(|e| (version, e))
        };
        let (version, result) = match tokio::time::timeout(STREAM_DEADLINE, work).await {
            Ok(Ok(r)) => {
                tracing::info!(version = r.offer.version, path = %r.path.display(), "upgrade package received and verified");
                let next = match r.offer.kind {
                    PackageKind::Binary => slots::stage(&data_dir, &r.offer),
                    // Installing a Debian package needs root and dpkg: not done in place.
                    _ => {
                        "a Debian package is not installed in place: install it with dpkg -i".into()
                    }
                };
                (
                    r.offer.version.clone(),
                    Ok(format!(
                        "received {} bytes, CA signature and SHA-256 verified, kept as {}; {next}",
                        r.offer.size,
                        r.path.display()
                    )),
                )
            }
            Ok(Err((version, e))) => {
                tracing::warn!(version, error = %e, "upgrade package refused");
                let _ = recv.stop(close::CAPTURE_REJECTED.into());
                (version, Err(e.to_string()))
            }
            Err(_) => {
                let _ = recv.stop(close::LIMIT.into());
                (
                    String::new(),
                    Err("the upgrade stream took too long".into()),
                )
            }
        };
        let msg = honeybee_proto::control::AgentMsg::UpgradeReport { version, result };
        if report.send(msg).await.is_err() {
            return;
        }
    }
}
