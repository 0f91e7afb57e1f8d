//! HoneyBee patch: OpenSSH's host key rotation extension, server side. After
//! authentication sshd announces every host key it holds (`hostkeys-00@openssh.com`,
//! sshd.c `notify_hostkeys`), and proves it holds the private halves when the client asks
//! (`hostkeys-prove-00@openssh.com`, serverloop.c `server_input_hostkeys_prove`).

use std::sync::Arc;

use bytes::Bytes;
use ssh_encoding::{Decode, Encode, Reader};
use ssh_key::Algorithm;

use super::Session;
use crate::helpers::sign_with_hash_alg;
use crate::keys::PrivateKeyWithHashAlg;
use crate::session::EncryptedState;
use crate::{Error, msg};

/// Keys one prove request may name: sshd holds at most a handful, and each costs a
/// signature.
const MAX_PROVE_KEYS: usize = 16;

impl Session {
    /// Sends `hostkeys-00@openssh.com` right after USERAUTH_SUCCESS, as sshd does, if
    /// [`super::Config::announce_host_keys`] is set. Delayed compression
    /// (zlib@openssh.com) starts with it: USERAUTH_SUCCESS is flushed first, in the
    /// pre-authentication state.
    pub(crate) fn announce_host_keys(&mut self) -> Result<(), Error> {
        if !self.common.config.announce_host_keys {
            return Ok(());
        }
        self.flush()?;
        let common = &mut self.common;
        let Some(enc) = common.encrypted.as_mut() else {
            return Ok(());
        };
        if matches!(enc.state, EncryptedState::InitCompression) {
            if enc.server_compression.is_deferred() {
                enc.server_compression
                    .init_compress(common.packet_writer.compress());
            }
            enc.state = EncryptedState::Authenticated;
        }
        let mut blobs = Vec::new();
        for key in &common.config.keys {
            blobs.push(key.public_key().to_bytes()?);
        }
        push_packet!(enc.write, {
            enc.write.push(msg::GLOBAL_REQUEST);
            "hostkeys-00@openssh.com".encode(&mut enc.write)?;
            0u8.encode(&mut enc.write)?;
            for b in &blobs {
                b.encode(&mut enc.write)?;
            }
        });
        Ok(())
    }

    /// Answers `hostkeys-prove-00@openssh.com`: for each key blob, in order, a signature
    /// over string "hostkeys-prove-00@openssh.com" || string session_id || string blob.
    /// An RSA key signs with the key exchange's RSA algorithm, else rsa-sha2-512. A blob
    /// that is none of ours, or a malformed request, gets REQUEST_FAILURE.
    pub(crate) fn prove_host_keys<R: Reader>(&mut self, r: &mut R) -> Result<(), Error> {
        // sshd (serverloop.c, 8.9 on): the RSA algorithm of the key exchange if it used
        // RSA, else rsa-sha2-512 if the client's KEXINIT offered it (every OpenSSH
        // client since 7.2 does; not tracked here), else SHA-1.
        let rsa_hash = match &self.host_key_algorithm {
            Some(Algorithm::Rsa { hash: Some(h) }) => Some(*h),
            _ => Some(ssh_key::HashAlg::Sha512),
        };
        let Some(session_id) = self.common.encrypted.as_ref().map(|e| e.session_id.clone()) else {
            return Ok(());
        };
        let mut sigs = Vec::new();
        let mut ok = true;
        while !r.is_finished() {
            let Ok(blob) = Bytes::decode(r) else {
                ok = false;
                break;
            };
            let key = self.common.config.keys.iter().find(|k| {
                k.public_key()
                    .to_bytes()
                    .is_ok_and(|b| b.as_slice() == blob.as_ref())
            });
            let Some(key) = key.filter(|_| sigs.len() < MAX_PROVE_KEYS) else {
                ok = false;
                break;
            };
            let mut signed = Vec::new();
            "hostkeys-prove-00@openssh.com".encode(&mut signed)?;
            session_id.as_ref().encode(&mut signed)?;
            blob.as_ref().encode(&mut signed)?;
            let hash = if key.algorithm().is_rsa() {
                rsa_hash
            } else {
                None
            };
            let key = PrivateKeyWithHashAlg::new(Arc::new(key.clone()), hash);
            sigs.push(sign_with_hash_alg(&key, &signed)?);
        }
        if !ok || sigs.is_empty() {
            self.request_failure();
            return Ok(());
        }
        if self.common.wants_reply
            && let Some(ref mut enc) = self.common.encrypted
        {
            self.common.wants_reply = false;
            push_packet!(enc.write, {
                enc.write.push(msg::REQUEST_SUCCESS);
                for s in &sigs {
                    s.encode(&mut enc.write)?;
                }
            });
        }
        Ok(())
    }
}
