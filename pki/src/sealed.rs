//! A private key at rest under a passphrase: the standard PKCS#8 `ENCRYPTED PRIVATE KEY`
//! (PBES2 with scrypt and AES-256-CBC, RFC 8018 / RFC 7914), so `openssl pkey` opens the
//! same file with the same passphrase. Used for the CA key; nothing here is home-made
//! cryptography, only the choice of parameters.

use pkcs8::der::pem::PemLabel;
use pkcs8::der::zeroize::Zeroizing;
use pkcs8::pkcs5::{pbes2, scrypt};
use pkcs8::{EncryptedPrivateKeyInfo, LineEnding, PrivateKeyInfo, SecretDocument};
use ring::rand::{SecureRandom, SystemRandom};

/// Shortest passphrase accepted for sealing.
pub const MIN_PASSPHRASE_LEN: usize = 12;

/// scrypt cost: N = 2^14, r = 8, p = 5, one of OWASP's recommended equivalents (to N = 2^17,
/// p = 1) and the one OpenSSL opens within its default 32 MiB scrypt memory limit, so
/// `openssl pkey` can still read the file. Opening costs this once, when the core starts.
const SCRYPT_LOG_N: u8 = 14;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 5;

/// Refuses to open a sealed key whose KDF would need more than this much memory (scrypt:
/// 128 · N · r bytes) or time (scrypt's p, PBKDF2's iterations): the file names its own
/// cost, and a tampered one must not make the core allocate gigabytes or spin for hours.
const MAX_SCRYPT_MEMORY: u64 = 256 << 20;
const MAX_SCRYPT_P: u16 = 16;
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    #[error("the passphrase must be at least {MIN_PASSPHRASE_LEN} characters")]
    ShortPassphrase,
    #[error("the key is not a PKCS#8 PEM private key: {0}")]
    NotAKey(String),
    #[error("the key is not sealed (no ENCRYPTED PRIVATE KEY block)")]
    NotSealed,
    #[error(
        "the sealed key uses parameters HoneyBee does not open (PBES2 only, with scrypt up to 256 MiB and p ≤ 16, or PBKDF2 up to 10 million iterations)"
    )]
    Parameters,
    #[error("the passphrase does not open the key")]
    WrongPassphrase,
    #[error("the system random number generator failed")]
    Rng,
    #[error("could not seal the key: {0}")]
    Seal(String),
}

/// Whether `pem` holds a sealed (encrypted) private key.
pub fn is_sealed(pem: &str) -> bool {
    pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
}

/// Seals a PKCS#8 PEM private key (`PRIVATE KEY`) under `passphrase`.
pub fn seal_pem(key_pem: &str, passphrase: &str) -> Result<String, SealError> {
    if passphrase.chars().count() < MIN_PASSPHRASE_LEN {
        return Err(SealError::ShortPassphrase);
    }
    let (label, doc) =
        SecretDocument::from_pem(key_pem).map_err(|e| SealError::NotAKey(e.to_string()))?;
    if label != PrivateKeyInfo::PEM_LABEL {
        return Err(SealError::NotAKey(format!("PEM label {label:?}")));
    }
    let info =
        PrivateKeyInfo::try_from(doc.as_bytes()).map_err(|e| SealError::NotAKey(e.to_string()))?;
    let rng = SystemRandom::new();
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    rng.fill(&mut salt).map_err(|_| SealError::Rng)?;
    rng.fill(&mut iv).map_err(|_| SealError::Rng)?;
    let cost = scrypt::Params::new(SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P, 32)
        .map_err(|e| SealError::Seal(e.to_string()))?;
    let params = pbes2::Parameters::scrypt_aes256cbc(cost, &salt, &iv)
        .map_err(|e| SealError::Seal(e.to_string()))?;
    let sealed = info
        .encrypt_with_params(params, passphrase.as_bytes())
        .map_err(|e| SealError::Seal(e.to_string()))?;
    let pem: Zeroizing<String> = sealed
        .to_pem(EncryptedPrivateKeyInfo::PEM_LABEL, LineEnding::LF)
        .map_err(|e| SealError::Seal(e.to_string()))?;
    Ok(pem.to_string())
}

/// Opens a sealed key: the plain PKCS#8 PEM (`PRIVATE KEY`), zeroized when dropped.
pub fn open_pem(sealed_pem: &str, passphrase: &str) -> Result<Zeroizing<String>, SealError> {
    let (label, doc) =
        SecretDocument::from_pem(sealed_pem).map_err(|e| SealError::NotAKey(e.to_string()))?;
    if label != EncryptedPrivateKeyInfo::PEM_LABEL {
        return Err(SealError::NotSealed);
    }
    let info = EncryptedPrivateKeyInfo::try_from(doc.as_bytes())
        .map_err(|e| SealError::NotAKey(e.to_string()))?;
    // Check the cost before running the KDF: the file decides how much memory it takes.
    let affordable = match &info.encryption_algorithm {
        pkcs8::pkcs5::EncryptionScheme::Pbes2(p) => match &p.kdf {
            pbes2::Kdf::Scrypt(s) => {
                let memory = 128u64
                    .saturating_mul(s.cost_parameter)
                    .saturating_mul(u64::from(s.block_size));
                memory <= MAX_SCRYPT_MEMORY && s.parallelization <= MAX_SCRYPT_P
            }
            pbes2::Kdf::Pbkdf2(p) => p.iteration_count <= MAX_PBKDF2_ITERATIONS,
            _ => false,
        },
        _ => false,
    };
    if !affordable {
        return Err(SealError::Parameters);
    }
    let plain = info
        .decrypt(passphrase.as_bytes())
        .map_err(|_| SealError::WrongPassphrase)?;
    // A wrong passphrase usually fails the padding check; when it does not, the bytes are
    // not a PKCS#8 structure.
    PrivateKeyInfo::try_from(plain.as_bytes()).map_err(|_| SealError::WrongPassphrase)?;
    plain
        .to_pem(PrivateKeyInfo::PEM_LABEL, LineEnding::LF)
        .map_err(|e| SealError::NotAKey(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyPair;

    const PASS: &str = "correct horse battery";

    #[test]
    fn seal_open_round_trip_and_refusals() {
        let key = KeyPair::generate().unwrap();
        let plain = key.to_pem();
        assert!(!is_sealed(&plain));
        let sealed = seal_pem(&plain, PASS).unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains(plain.lines().nth(1).unwrap()));
        let opened = open_pem(&sealed, PASS).unwrap();
        // The same key comes back.
        assert_eq!(
            KeyPair::from_pem(&opened).unwrap().public_key_der(),
            key.public_key_der()
        );
        assert!(matches!(
            open_pem(&sealed, "not the passphrase"),
            Err(SealError::WrongPassphrase)
        ));
        assert!(matches!(
            seal_pem(&plain, "short"),
            Err(SealError::ShortPassphrase)
        ));
        assert!(matches!(open_pem(&plain, PASS), Err(SealError::NotSealed)));
        assert!(matches!(
            open_pem("garbage", PASS),
            Err(SealError::NotAKey(_))
        ));
        // Two seals of one key differ (fresh salt and IV).
        assert_ne!(seal_pem(&plain, PASS).unwrap(), sealed);
    }

    #[test]
    fn refuses_costs_a_file_should_not_impose() {
        let key = KeyPair::generate().unwrap();
        let (_, doc) = SecretDocument::from_pem(&key.to_pem()).unwrap();
        let info = PrivateKeyInfo::try_from(doc.as_bytes()).unwrap();
        // Cheap to make (N = 2^10) but asks for more parallel passes than allowed.
        let cost = scrypt::Params::new(10, 8, 17, 32).unwrap();
        let params = pbes2::Parameters::scrypt_aes256cbc(cost, &[7u8; 16], &[9u8; 16]).unwrap();
        let pem = info
            .encrypt_with_params(params, PASS)
            .unwrap()
            .to_pem(EncryptedPrivateKeyInfo::PEM_LABEL, LineEnding::LF)
            .unwrap();
        assert!(matches!(open_pem(&pem, PASS), Err(SealError::Parameters)));
    }

    #[test]
    fn openssl_opens_what_we_seal() {
        let ok = std::process::Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(ok, "openssl is needed (scripts/test.sh installs it)");
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        let path = dir.path().join("ca.key");
        std::fs::write(&path, seal_pem(&key.to_pem(), PASS).unwrap()).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["pkey", "-in"])
            .arg(&path)
            .args(["-passin", &format!("pass:{PASS}"), "-pubout"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pem = String::from_utf8(out.stdout).unwrap();
        assert!(pem.contains("BEGIN PUBLIC KEY"), "{pem}");
    }
}
