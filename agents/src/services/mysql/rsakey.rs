//! The MySQL 8.0 persona's RSA key pair, for caching_sha2_password without TLS: the
//! client asks for the public key, encrypts the password with it (OAEP with SHA-1, as
//! libmysqlclient and libmariadb do), and the server decrypts it, so the password is
//! recorded on that path too. MySQL 8.0 makes the pair on first start
//! (`caching_sha2_password_auto_generate_rsa_keys`, 2048 bits, `private_key.pem` and
//! `public_key.pem` in its data directory); the honeypot makes one per node and keeps it.

use honeybee_pki::files::{write_private, write_public};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use std::io::Read;
use std::path::Path;

/// MySQL's auto-generated keys are 2048 bits.
const BITS: usize = 2048;
/// Largest key file read back.
const MAX_FILE: u64 = 64 * 1024;
/// The only ciphertext length a 2048-bit key decrypts.
pub(super) const CIPHERTEXT_LEN: usize = BITS / 8;

/// The key pair and the public key as the server sends it (PEM, SubjectPublicKeyInfo).
pub(super) struct RsaKeys {
    private: rsa::RsaPrivateKey,
    pub public_pem: String,
}

impl std::fmt::Debug for RsaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RsaKeys { .. }")
    }
}

impl RsaKeys {
    /// The password a client encrypted: OAEP-decrypted, then un-XORed with the scramble
    /// (the plaintext is the NUL-terminated password XOR the scramble, cyclically).
    pub(super) fn password(&self, ciphertext: &[u8], scramble: &[u8; 20]) -> Option<Vec<u8>> {
        if ciphertext.len() != CIPHERTEXT_LEN {
            return None;
        }
        let plain = self
            .private
            .decrypt(rsa::Oaep::<sha1::Sha1>::new(), ciphertext)
            .ok()?;
        let mut pw: Vec<u8> = plain
            .iter()
            .zip(scramble.iter().cycle())
            .map(|(a, b)| a ^ b)
            .collect();
        if pw.last() == Some(&0) {
            pw.pop();
        }
        Some(pw)
    }
}

fn read_small(path: &Path) -> Result<String, String> {
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE).read_to_string(&mut text))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text)
}

/// Loads the node's pair from `data_dir/mysql`, or makes and stores one.
pub(super) fn load_or_create(data_dir: &Path) -> Result<RsaKeys, String> {
    let dir = data_dir.join("mysql");
    let key_path = dir.join("private_key.pem");
    let private = if key_path.exists() {
        rsa::RsaPrivateKey::from_pkcs8_pem(&read_small(&key_path)?)
            .map_err(|e| format!("{}: {e}", key_path.display()))?
    } else {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let key = generate()?;
        let pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| format!("MySQL RSA key: {e}"))?;
        write_private(&key_path, pem.as_bytes())
            .map_err(|e| format!("{}: {e}", key_path.display()))?;
        key
    };
    let public_pem = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| format!("MySQL RSA key: {e}"))?;
    let pub_path = dir.join("public_key.pem");
    if !pub_path.exists() {
        write_public(&pub_path, public_pem.as_bytes())
            .map_err(|e| format!("{}: {e}", pub_path.display()))?;
    }
    Ok(RsaKeys {
        private,
        public_pem,
    })
}

/// A new key from a ChaCha20 generator seeded by the system's randomness (rsa wants a
/// `rand_core` 0.10 generator).
fn generate() -> Result<rsa::RsaPrivateKey, String> {
    use rand_chacha::rand_core::SeedableRng;
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| "no randomness for the MySQL RSA key".to_owned())?;
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
    seed.fill(0);
    rsa::RsaPrivateKey::new(&mut rng, BITS).map_err(|e| format!("MySQL RSA key: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_encrypted_as_clients_do_is_recovered() {
        use rand_chacha::rand_core::SeedableRng;
        let dir = tempfile::tempdir().unwrap();
        let keys = load_or_create(dir.path()).unwrap();
        assert!(keys.public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        // Kept: a second load gives the same key.
        let again = load_or_create(dir.path()).unwrap();
        assert_eq!(again.public_pem, keys.public_pem);
        let scramble = [0x5au8; 20];
        let plain: Vec<u8> = b"hunter2\0"
            .iter()
            .zip(scramble.iter().cycle())
            .map(|(a, b)| a ^ b)
            .collect();
        let mut rng = rand_chacha::ChaCha20Rng::from_seed([1; 32]);
        let ct = keys
            .private
            .to_public_key()
            .encrypt(&mut rng, rsa::Oaep::<sha1::Sha1>::new(), &plain)
            .unwrap();
        assert_eq!(
            keys.password(&ct, &scramble).as_deref(),
            Some(&b"hunter2"[..])
        );
        assert_eq!(keys.password(&ct[1..], &scramble), None);
    }
}
