//! Remote upgrade, the core's side: an offer signed with the deployment's CA key, and the
//! upgrade stream the core opens to a node with the offer and the package (see
//! `honeybee_proto::upgrade` for the layout and what the node checks).

use honeybee_pki::Ca;
use honeybee_proto::codec::{self};
use honeybee_proto::stream::StreamKind;
use honeybee_proto::upgrade::{OFFER_LIMIT, PackageKind, UpgradeOffer};
use tokio::io::{AsyncWrite, AsyncWriteExt};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpgradeError {
    #[error("the CA key cannot sign: {0}")]
    Key(String),
    #[error(transparent)]
    Offer(#[from] honeybee_proto::upgrade::BadOffer),
    #[error("sending the package: {0}")]
    Send(String),
}

/// Signs an offer of `package` as `version`.
pub fn offer(
    ca: &Ca,
    version: &str,
    kind: PackageKind,
    package: &[u8],
    rollback_after_s: u32,
) -> Result<UpgradeOffer, UpgradeError> {
    let digest = ring::digest::digest(&ring::digest::SHA256, package);
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(digest.as_ref());
    let mut offer = UpgradeOffer {
        version: version.to_owned(),
        kind,
        size: package.len() as u64,
        sha256,
        rollback_after_s,
        signature: Vec::new(),
    };
    offer.signature = sign(ca, &offer.signed_message())?;
    offer.validate()?;
    Ok(offer)
}

/// An ECDSA P-256 / SHA-256 signature (ASN.1 DER) by the CA key.
fn sign(ca: &Ca, msg: &[u8]) -> Result<Vec<u8>, UpgradeError> {
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
    let key = honeybee_pki::KeyPair::from_pem(&ca.key_pem())
        .map_err(|e| UpgradeError::Key(e.to_string()))?;
    let rng = ring::rand::SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        key.private_key_der().secret_der(),
        &rng,
    )
    .map_err(|e| UpgradeError::Key(e.to_string()))?;
    pair.sign(&rng, msg)
        .map(|s| s.as_ref().to_vec())
        .map_err(|e| UpgradeError::Key(e.to_string()))
}

/// Writes a whole upgrade stream: the kind byte, the offer frame, the package.
pub async fn write_stream<W: AsyncWrite + Unpin>(
    w: &mut W,
    offer: &UpgradeOffer,
    package: &[u8],
) -> Result<(), UpgradeError> {
    let frame = codec::encode(offer, OFFER_LIMIT).map_err(|e| UpgradeError::Send(e.to_string()))?;
    let send = |e: std::io::Error| UpgradeError::Send(e.to_string());
    w.write_all(&[StreamKind::Upgrade as u8])
        .await
        .map_err(send)?;
    w.write_all(&frame).await.map_err(send)?;
    w.write_all(package).await.map_err(send)?;
    w.flush().await.map_err(send)
}

/// Sends an upgrade to a node over its live connection, on a stream of its own.
pub async fn send(
    conn: &quinn::Connection,
    offer: &UpgradeOffer,
    package: &[u8],
) -> Result<(), UpgradeError> {
    let mut stream = conn
        .open_uni()
        .await
        .map_err(|e| UpgradeError::Send(e.to_string()))?;
    write_stream(&mut stream, offer, package).await?;
    stream
        .finish()
        .map_err(|e| UpgradeError::Send(e.to_string()))
}

/// The folder of the core's data directory that holds agent packages, one file per
/// version: `honeybee-agent-VERSION` (the executable).
pub const PACKAGES_DIR: &str = "packages";
/// How long a node gives a new version to be welcomed before it rolls back.
pub const ROLLBACK_AFTER_S: u32 = 120;

/// `AdminRequest::UpgradeNodes`: signs the package once and sends it to each node, each
/// on its own task; the nodes report what they did (see [`reported`]).
pub async fn start(
    shared: &std::sync::Arc<crate::server::Shared>,
    node: Option<honeybee_proto::NodeId>,
    version: Option<String>,
    sha256: Option<[u8; 32]>,
    actor: &str,
) -> honeybee_proto::admin::AdminResponse {
    use honeybee_proto::admin::AdminResponse as R;
    let version = version.unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned());
    let (offer, package) = match load(shared, &version, sha256) {
        Ok(x) => x,
        Err(e) => return R::Error(e),
    };
    let live = shared.registry.live_connections();
    let targets: Vec<_> = match &node {
        Some(n) => match live.into_iter().find(|(id, _)| id == n) {
            Some(t) => vec![t],
            None => return R::Error(format!("node {n} is not online")),
        },
        None => live,
    };
    let package = std::sync::Arc::new(package);
    let mut out = Vec::new();
    for (id, conn) in targets {
        let detail = format!(
            "node={id} version={version} sha256={} bytes={}",
            hex::encode(offer.sha256),
            offer.size
        );
        shared.audit(actor, "node.upgrade", "sent", None, &detail);
        let (task_offer, package, who) = (offer.clone(), package.clone(), id.clone());
        tokio::spawn(async move {
            if let Err(e) = send(&conn, &task_offer, &package).await {
                tracing::warn!(node = %who, error = %e, "upgrade not sent");
            }
        });
        out.push((id, Ok(format!("sending {version} ({} bytes)", offer.size))));
    }
    R::Upgrades(out)
}

/// Reads and signs `packages/honeybee-agent-VERSION`, refusing it unless it has
/// `sha256` when one is given.
fn load(
    shared: &crate::server::Shared,
    version: &str,
    sha256: Option<[u8; 32]>,
) -> Result<(UpgradeOffer, Vec<u8>), String> {
    // The version names a file: the offer's rules (no '/', no leading '.') come first.
    let probe = UpgradeOffer {
        version: version.to_owned(),
        kind: PackageKind::Binary,
        size: 1,
        sha256: [0; 32],
        rollback_after_s: ROLLBACK_AFTER_S,
        signature: vec![0],
    };
    probe.validate().map_err(|e| e.to_string())?;
    let path = shared
        .cfg
        .data_dir
        .join(PACKAGES_DIR)
        .join(format!("honeybee-agent-{version}"));
    let len = std::fs::metadata(&path)
        .map_err(|e| format!("no package for {version}: {}: {e}", path.display()))?
        .len();
    if len > honeybee_proto::upgrade::MAX_PACKAGE_BYTES {
        return Err(format!("{} is larger than a node accepts", path.display()));
    }
    let package = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let offer = offer(
        &shared.ca,
        version,
        PackageKind::Binary,
        &package,
        ROLLBACK_AFTER_S,
    )
    .map_err(|e| e.to_string())?;
    if let Some(want) = sha256
        && want != offer.sha256
    {
        return Err(format!(
            "{} has SHA-256 {}, not the {} asked for: refusing to send it",
            path.display(),
            hex::encode(offer.sha256),
            hex::encode(want)
        ));
    }
    Ok((offer, package))
}

/// How a node's report of a rollback begins (see `honeybee_agent::upgrade::slots`).
pub const ROLLED_BACK: &str = "rolled back";

/// `AdminRequest::UpgradeInfo`: the core's version and the packages it can send, by
/// version (file names `honeybee-agent-VERSION` whose version an offer accepts).
pub fn info(shared: &crate::server::Shared) -> honeybee_proto::admin::AdminResponse {
    use honeybee_proto::admin::{AdminResponse as R, PackageInfo};
    let dir = shared.cfg.data_dir.join(PACKAGES_DIR);
    let mut packages = Vec::new();
    // Bounded: a packages folder is written by the operator; past 1,000 entries the
    // rest are not listed.
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten().take(1000) {
            let name = e.file_name();
            let Some(version) = name
                .to_str()
                .and_then(|n| n.strip_prefix("honeybee-agent-"))
            else {
                continue;
            };
            let probe = UpgradeOffer {
                version: version.to_owned(),
                kind: PackageKind::Binary,
                size: 1,
                sha256: [0; 32],
                rollback_after_s: ROLLBACK_AFTER_S,
                signature: vec![0],
            };
            let Ok(meta) = e.metadata() else { continue };
            if !meta.is_file() || probe.validate().is_err() {
                continue;
            }
            packages.push(PackageInfo {
                version: version.to_owned(),
                bytes: meta.len(),
            });
        }
    }
    packages.sort_by(|a, b| a.version.cmp(&b.version));
    R::UpgradeInfo {
        core_version: env!("CARGO_PKG_VERSION").to_owned(),
        packages,
    }
}

/// A node's `UpgradeReport`: audited (the CLI and dashboard read the audit log).
pub fn reported(
    shared: &crate::server::Shared,
    node: &honeybee_proto::NodeId,
    version: &str,
    result: &Result<String, String>,
) {
    let clamp = |s: &str| honeybee_proto::event::clamp(s, 512);
    // A node that went back to its previous version says so first thing on its next
    // connection (`rolled back: …`): its own outcome, so nobody has to parse details.
    let (outcome, detail) = match result {
        Ok(what) => ("ok", clamp(what)),
        Err(why) if why.starts_with(ROLLED_BACK) => ("rolled_back", clamp(why)),
        Err(why) => ("refused", clamp(why)),
    };
    tracing::info!(%node, version, outcome, detail, "upgrade report");
    shared.audit(
        &format!("node:{node}"),
        "node.upgrade",
        outcome,
        None,
        &format!("version={} {detail}", clamp(version)),
    );
}
