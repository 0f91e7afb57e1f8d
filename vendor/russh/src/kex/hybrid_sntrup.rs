//! `sntrup761x25519-sha512` (and its older name `sntrup761x25519-sha512@openssh.com`):
//! OpenSSH's hybrid of Streamlined NTRU Prime 761 and X25519, its default key exchange
//! since 9.0 (draft-ietf-sshm-ntruprime-ssh; OpenSSH's kexsntrup761x25519.c).
//!
//! The client sends its sntrup761 public key then its X25519 public key; the server
//! answers with the sntrup761 ciphertext then its X25519 public key. The shared secret is
//! SHA-512(sntrup761 key || raw X25519 key), encoded as an SSH string (not an mpint), and
//! the exchange hash is SHA-512 over the usual fields.

use curve25519_dalek::montgomery::MontgomeryPoint;
use log::debug;
use sha2::Digest;
use ssh_encoding::{Encode, Writer};

use super::{KexAlgorithm, KexAlgorithmImplementor, KexType, SharedSecret, compute_keys};
use crate::mac;
use crate::session::Exchange;
use crate::{CryptoVec, Error, cipher, msg};

const SNTRUP761_PUBLIC_KEY_SIZE: usize = sntrup761::PUBLIC_KEY_SIZE;
const SNTRUP761_CIPHERTEXT_SIZE: usize = sntrup761::CIPHERTEXT_SIZE;
const X25519_PUBLIC_KEY_SIZE: usize = 32;

pub struct Sntrup761X25519KexType {}

impl KexType for Sntrup761X25519KexType {
    fn make(&self) -> KexAlgorithm {
        Sntrup761X25519Kex {
            sntrup_secret: None,
            x25519_secret: None,
            k_pq: None,
            k_cl: None,
        }
        .into()
    }
}

#[doc(hidden)]
pub struct Sntrup761X25519Kex {
    sntrup_secret: Option<Box<sntrup761::DecapsulationKey>>,
    x25519_secret: Option<[u8; 32]>,
    k_pq: Option<[u8; sntrup761::SHARED_SECRET_SIZE]>,
    k_cl: Option<MontgomeryPoint>,
}

impl std::fmt::Debug for Sntrup761X25519Kex {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "Sntrup761X25519Kex {{ sntrup_secret: [hidden], x25519_secret: [hidden], k_pq: [hidden], k_cl: [hidden] }}",
        )
    }
}

impl Sntrup761X25519Kex {
    /// SHA-512(k_pq || k_cl), the key both sides derive from.
    fn combined_key(&self) -> Result<sha2::digest::Output<sha2::Sha512>, Error> {
        let k_pq = self.k_pq.as_ref().ok_or(Error::KexInit)?;
        let k_cl = self.k_cl.as_ref().ok_or(Error::KexInit)?;
        let mut hasher = sha2::Sha512::new();
        hasher.update(k_pq);
        hasher.update(k_cl.0);
        Ok(hasher.finalize())
    }
}

impl KexAlgorithmImplementor for Sntrup761X25519Kex {
    fn skip_exchange(&self) -> bool {
        false
    }

    fn server_dh(&mut self, exchange: &mut Exchange, payload: &[u8]) -> Result<(), Error> {
        debug!("server_dh (hybrid sntrup761)");

        if payload.first() != Some(&msg::KEX_HYBRID_INIT) {
            return Err(Error::Inconsistent);
        }
        let len_bytes = payload.get(1..5).ok_or(Error::Inconsistent)?;
        let c_init_len =
            u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        if c_init_len != SNTRUP761_PUBLIC_KEY_SIZE + X25519_PUBLIC_KEY_SIZE {
            return Err(Error::Kex);
        }
        let c_init = payload.get(5..5 + c_init_len).ok_or(Error::Inconsistent)?;
        let (c_pk2_bytes, c_pk1_bytes) = c_init.split_at(SNTRUP761_PUBLIC_KEY_SIZE);

        let c_pk2 = sntrup761::EncapsulationKey::try_from(c_pk2_bytes).map_err(|_| Error::Kex)?;
        let mut c_pk1 = MontgomeryPoint([0; 32]);
        c_pk1.0.copy_from_slice(c_pk1_bytes);

        // The crate's own ChaCha20 generator, seeded from the system's: keeps this module
        // independent of which `rand` version the crate was built against.
        let (s_ct2, k_pq) = c_pk2.encapsulate_deterministic(rand::random::<[u8; 32]>());

        let s_secret = rand::random::<[u8; 32]>();
        let s_pk1 = MontgomeryPoint::mul_base_clamped(s_secret);
        let k_cl = c_pk1.mul_clamped(s_secret);
        if k_cl.0 == [0u8; 32] {
            debug!("client sent a low-order curve25519 pubkey");
            return Err(Error::Kex);
        }

        exchange.server_ephemeral.clear();
        exchange.server_ephemeral.extend_from_slice(s_ct2.as_ref());
        exchange.server_ephemeral.extend_from_slice(&s_pk1.0);

        let mut k = [0u8; sntrup761::SHARED_SECRET_SIZE];
        k.copy_from_slice(k_pq.as_ref());
        self.k_pq = Some(k);
        self.k_cl = Some(k_cl);
        Ok(())
    }

    fn client_dh(
        &mut self,
        client_ephemeral: &mut Vec<u8>,
        writer: &mut impl Writer,
    ) -> Result<(), Error> {
        let (pk, sk) = sntrup761::generate_key_from_seed(rand::random::<[u8; 32]>());

        let x25519_secret = rand::random::<[u8; 32]>();
        let x25519_pk = MontgomeryPoint::mul_base_clamped(x25519_secret);

        client_ephemeral.clear();
        client_ephemeral.extend(pk.as_ref());
        client_ephemeral.extend(&x25519_pk.0);

        msg::KEX_HYBRID_INIT.encode(writer)?;
        client_ephemeral.as_slice().encode(writer)?;

        self.sntrup_secret = Some(Box::new(sk));
        self.x25519_secret = Some(x25519_secret);
        Ok(())
    }

    fn compute_shared_secret(&mut self, remote_pubkey_: &[u8]) -> Result<(), Error> {
        if remote_pubkey_.len() != SNTRUP761_CIPHERTEXT_SIZE + X25519_PUBLIC_KEY_SIZE {
            return Err(Error::Kex);
        }
        let (s_ct2_bytes, s_pk1_bytes) = remote_pubkey_.split_at(SNTRUP761_CIPHERTEXT_SIZE);
        let s_ct2 = sntrup761::Ciphertext::try_from(s_ct2_bytes).map_err(|_| Error::KexInit)?;

        let sk = self.sntrup_secret.take().ok_or(Error::KexInit)?;
        let k_pq = sk.decapsulate(&s_ct2);
        let mut s_pk1 = MontgomeryPoint([0; 32]);
        s_pk1.0.copy_from_slice(s_pk1_bytes);

        let x25519_secret = self.x25519_secret.take().ok_or(Error::KexInit)?;
        let k_cl = s_pk1.mul_clamped(x25519_secret);
        if k_cl.0 == [0u8; 32] {
            debug!("server sent a low-order curve25519 pubkey");
            return Err(Error::Kex);
        }

        let mut k = [0u8; sntrup761::SHARED_SECRET_SIZE];
        k.copy_from_slice(k_pq.as_ref());
        self.k_pq = Some(k);
        self.k_cl = Some(k_cl);
        Ok(())
    }

    fn shared_secret_bytes(&self) -> Option<&[u8]> {
        // As for ML-KEM: the X25519 part; the hybrid key is derived in compute_keys.
        self.k_cl.as_ref().map(|k| k.0.as_slice())
    }

    fn compute_exchange_hash(
        &self,
        key: &[u8],
        exchange: &Exchange,
        buffer: &mut CryptoVec,
    ) -> Result<Vec<u8>, Error> {
        buffer.clear();
        exchange.client_id.encode(buffer)?;
        exchange.server_id.encode(buffer)?;
        exchange.client_kex_init.encode(buffer)?;
        exchange.server_kex_init.encode(buffer)?;

        buffer.extend(key);

        exchange.client_ephemeral.encode(buffer)?;
        exchange.server_ephemeral.encode(buffer)?;

        let k = self.combined_key()?;
        (*k).encode(buffer)?;

        let mut hasher = sha2::Sha512::new();
        hasher.update(&buffer);
        Ok(hasher.finalize().to_vec())
    }

    fn compute_keys(
        &self,
        session_id: &[u8],
        exchange_hash: &[u8],
        cipher: cipher::Name,
        remote_to_local_mac: mac::Name,
        local_to_remote_mac: mac::Name,
        is_server: bool,
    ) -> Result<super::cipher::CipherPair, Error> {
        let k = self.combined_key()?;
        let shared_secret = SharedSecret::from_string(&k)?;
        compute_keys::<sha2::Sha512>(
            Some(&shared_secret),
            session_id,
            exchange_hash,
            cipher,
            remote_to_local_mac,
            local_to_remote_mac,
            is_server,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> Sntrup761X25519Kex {
        Sntrup761X25519Kex {
            sntrup_secret: None,
            x25519_secret: None,
            k_pq: None,
            k_cl: None,
        }
    }

    #[test]
    fn both_sides_agree() {
        let (mut client, mut server) = (fresh(), fresh());
        let mut client_ephemeral = Vec::new();
        let mut init = Vec::new();
        client.client_dh(&mut client_ephemeral, &mut init).unwrap();
        assert_eq!(
            client_ephemeral.len(),
            SNTRUP761_PUBLIC_KEY_SIZE + X25519_PUBLIC_KEY_SIZE
        );
        let mut exchange = Exchange::default();
        server.server_dh(&mut exchange, &init).unwrap();
        assert_eq!(
            exchange.server_ephemeral.len(),
            SNTRUP761_CIPHERTEXT_SIZE + X25519_PUBLIC_KEY_SIZE
        );
        client
            .compute_shared_secret(&exchange.server_ephemeral)
            .unwrap();
        assert_eq!(
            client.combined_key().unwrap(),
            server.combined_key().unwrap()
        );
    }

    #[test]
    fn short_or_truncated_init_is_refused() {
        let mut server = fresh();
        let mut exchange = Exchange::default();
        assert!(server.server_dh(&mut exchange, &[]).is_err());
        assert!(server.server_dh(&mut exchange, &[30, 0, 0]).is_err());
        let mut init = vec![30, 0, 0, 0x04, 0xa6]; // 1190 bytes announced
        init.extend_from_slice(&[1; 100]);
        assert!(server.server_dh(&mut exchange, &init).is_err());
    }
}
