//! Remote upgrade of a node: what the core sends on an upgrade stream.
//!
//! The core opens a unidirectional stream to the node ([`crate::stream::StreamKind::Upgrade`],
//! the only kind the core opens), writes one [`UpgradeOffer`] frame (at most
//! [`OFFER_LIMIT`]), then exactly `size` bytes of the package, and finishes the stream.
//! The offer is signed by the deployment's CA key over [`UpgradeOffer::signed_message`]
//! (ECDSA P-256, SHA-256, ASN.1 DER), so a node installs only a package that its own CA
//! approved, byte for byte (`sha256`), and checks the signature before it reads the
//! package at all.

use crate::codec::FrameLimit;
use serde::{Deserialize, Serialize};

/// Largest package a node accepts; checked before a byte of it is read.
pub const MAX_PACKAGE_BYTES: u64 = 256 * 1024 * 1024;
/// Largest offer frame.
pub const OFFER_LIMIT: FrameLimit = FrameLimit(16 * 1024);
/// Prefixes the signed message, so a CA signature made for anything else (a
/// certificate's TBS, which starts with a DER SEQUENCE byte) can never pass as an
/// upgrade's, and an upgrade's never as anything else.
pub const SIGNING_CONTEXT: &[u8] = b"honeybee-upgrade/1\0";
/// Longest version string.
pub const MAX_VERSION_LEN: usize = 64;
/// A DER ECDSA P-256 signature is at most 72 bytes; anything much longer is not one.
pub const MAX_SIGNATURE_LEN: usize = 128;
/// Bounds of the time a new version has to be welcomed by the core before the node
/// goes back to the old one.
pub const MIN_ROLLBACK_S: u32 = 10;
pub const MAX_ROLLBACK_S: u32 = 3600;

/// What the package is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PackageKind {
    /// The `honeybee-agent` executable itself.
    Binary,
    /// A Debian package of `honeybee-agent` (`scripts/package.sh`).
    Deb,
}

/// The first frame of an upgrade stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpgradeOffer {
    /// The version the package holds (`honeybee-agent --version`'s number).
    pub version: String,
    pub kind: PackageKind,
    /// Exactly this many package bytes follow the frame.
    pub size: u64,
    /// SHA-256 of those bytes.
    pub sha256: [u8; 32],
    /// Seconds the new version has to connect and be welcomed before the node rolls
    /// back to the version it ran before.
    pub rollback_after_s: u32,
    /// The CA's signature over [`UpgradeOffer::signed_message`].
    pub signature: Vec<u8>,
}

/// Why an offer is malformed (before any signature is checked).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("upgrade offer: {0}")]
pub struct BadOffer(pub &'static str);

impl UpgradeOffer {
    /// The bytes the CA signs: the context, then every field but the signature.
    pub fn signed_message(&self) -> Vec<u8> {
        let fields = (
            &self.version,
            self.kind,
            self.size,
            self.sha256,
            self.rollback_after_s,
        );
        let mut msg = SIGNING_CONTEXT.to_vec();
        // Serialising a tuple of plain values into a Vec cannot fail.
        msg.extend(postcard::to_allocvec(&fields).unwrap_or_default());
        msg
    }

    /// Checks the bounds a node relies on before it reads the package.
    pub fn validate(&self) -> Result<(), BadOffer> {
        if self.version.is_empty()
            || self.version.len() > MAX_VERSION_LEN
            || !self
                .version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".+~-_".contains(&b))
            || self.version.starts_with(['.', '-'])
        {
            return Err(BadOffer(
                "version must be 1-64 characters of letters, digits and . + ~ - _",
            ));
        }
        if self.size == 0 || self.size > MAX_PACKAGE_BYTES {
            return Err(BadOffer("package size is 0 or over the limit"));
        }
        if !(MIN_ROLLBACK_S..=MAX_ROLLBACK_S).contains(&self.rollback_after_s) {
            return Err(BadOffer("rollback_after_s is out of range"));
        }
        if self.signature.is_empty() || self.signature.len() > MAX_SIGNATURE_LEN {
            return Err(BadOffer("signature missing or too long"));
        }
        Ok(())
    }
}

/// Orders versions as release numbers: dot-separated numbers compared as numbers
/// (`0.10.0` after `0.9.0`), a pre-release (`1.0.0-rc1`) before its release, anything
/// that is not a number compared as text.
pub fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let split = |v: &str| -> (String, Option<String>) {
        match v.split_once('-') {
            Some((core, pre)) => (core.to_owned(), Some(pre.to_owned())),
            None => (v.to_owned(), None),
        }
    };
    let ((ca, pa), (cb, pb)) = (split(a), split(b));
    let (mut xa, mut xb) = (ca.split('.'), cb.split('.'));
    loop {
        match (xa.next(), xb.next()) {
            (None, None) => break,
            (x, y) => {
                let (x, y) = (x.unwrap_or("0"), y.unwrap_or("0"));
                let o = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    _ => x.cmp(y),
                };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
        }
    }
    match (pa, pb) {
        (None, None) => std::cmp::Ordering::Equal,
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some(x), Some(y)) => x.cmp(&y),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_order_as_releases() {
        assert_eq!(version_cmp("0.1.0", "0.1.0"), std::cmp::Ordering::Equal);
        assert_eq!(version_cmp("0.9.0", "0.10.0"), std::cmp::Ordering::Less);
        assert_eq!(version_cmp("0.1", "0.1.0"), std::cmp::Ordering::Equal);
        assert_eq!(version_cmp("1.0.0-rc1", "1.0.0"), std::cmp::Ordering::Less);
        assert_eq!(version_cmp("0.99.0", "0.1.0"), std::cmp::Ordering::Greater);
    }

    use super::*;

    fn offer() -> UpgradeOffer {
        UpgradeOffer {
            version: "0.2.0".into(),
            kind: PackageKind::Binary,
            size: 10,
            sha256: [7; 32],
            rollback_after_s: 120,
            signature: vec![1; 70],
        }
    }

    #[test]
    fn every_field_but_the_signature_is_signed() {
        let a = offer();
        let base = a.signed_message();
        assert!(base.starts_with(SIGNING_CONTEXT));
        let mut b = a.clone();
        b.signature = vec![2; 70];
        assert_eq!(b.signed_message(), base);
        for change in [
            (|o: &mut UpgradeOffer| o.version.push('1')) as fn(&mut UpgradeOffer),
            |o| o.kind = PackageKind::Deb,
            |o| o.size += 1,
            |o| o.sha256[0] ^= 1,
            |o| o.rollback_after_s += 1,
        ] {
            let mut c = a.clone();
            change(&mut c);
            assert_ne!(c.signed_message(), base);
        }
    }

    #[test]
    fn bounds() {
        assert!(offer().validate().is_ok());
        for bad in [
            (|o: &mut UpgradeOffer| o.version = "../x".into()) as fn(&mut UpgradeOffer),
            |o| o.version = String::new(),
            |o| o.version = "1".repeat(65),
            |o| o.size = 0,
            |o| o.size = MAX_PACKAGE_BYTES + 1,
            |o| o.rollback_after_s = 1,
            |o| o.signature = Vec::new(),
            |o| o.signature = vec![0; 200],
        ] {
            let mut o = offer();
            bad(&mut o);
            assert!(o.validate().is_err(), "{o:?}");
        }
    }
}
