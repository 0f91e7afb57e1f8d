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
