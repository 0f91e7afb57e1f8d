//! UMAC (RFC 4418) with AES-128, as OpenSSH uses it for `umac-64@openssh.com`,
//! `umac-128@openssh.com` and their `-etm` variants: the key is the 16-byte MAC key from
//! the key exchange, the nonce is the packet sequence number as a big-endian 64-bit
//! integer, and the message is the packet (the sequence number is not prepended, unlike
//! HMAC). No maintained crate implements UMAC, hence this module; it follows the RFC's
//! pseudocode step by step and is checked against the RFC's test vectors below.
//!
//! Only the messages SSH can produce are supported: at most 2^24 bytes, where UMAC's L2
//! hash stays under the 64-bit prime (the 128-bit extension of RFC 4418 section 5.3 is
//! never reached, since SSH packets are limited to a few hundred KiB). Longer input gets
//! a tag that never verifies.

use aes::Aes128;
use byteorder::{BigEndian, ByteOrder, LittleEndian};
use cipher::{BlockCipherEncrypt, KeyInit};
use subtle::ConstantTimeEq;

use super::{Mac, MacAlgorithm};

/// The longest message handled (RFC 4418: beyond this L2-HASH switches to POLY-128).
const MAX_MESSAGE: usize = 1 << 24;
/// NH's key and block size in bytes (L1-HASH works on 1024-byte chunks).
const L1_CHUNK: usize = 1024;
/// 2^64 - 59, the POLY-64 prime.
const P64: u64 = 0xFFFF_FFFF_FFFF_FFC5;
/// 2^36 - 5, the L3-HASH prime.
const P36: u64 = 0x0000_000F_FFFF_FFFB;

pub(crate) struct UmacAlgorithm {
    /// Tag length in bytes: 8 for UMAC-64, 16 for UMAC-128.
    pub(crate) tag_len: usize,
    pub(crate) etm: bool,
}

impl MacAlgorithm for UmacAlgorithm {
    fn key_len(&self) -> usize {
        16
    }

    fn make_mac(&self, key: &[u8]) -> Box<dyn Mac + Send> {
        Box::new(UmacMac {
            umac: Umac::new(key, self.tag_len),
            etm: self.etm,
        })
    }
}

struct UmacMac {
    umac: Umac,
    etm: bool,
}

impl Mac for UmacMac {
    fn mac_len(&self) -> usize {
        self.umac.tag_len
    }

    fn is_etm(&self) -> bool {
        self.etm
    }

    fn compute(&self, sequence_number: u32, payload: &[u8], output: &mut [u8]) {
        let nonce = u64::from(sequence_number).to_be_bytes();
        let tag = self.umac.tag(payload, &nonce);
        let n = output.len().min(self.umac.tag_len);
        #[allow(clippy::indexing_slicing)] // n is at most both lengths
        output[..n].copy_from_slice(&tag[..n]);
    }

    fn verify(&self, sequence_number: u32, payload: &[u8], mac: &[u8]) -> bool {
        if payload.len() > MAX_MESSAGE || mac.len() != self.umac.tag_len {
            return false;
        }
        let nonce = u64::from(sequence_number).to_be_bytes();
        let tag = self.umac.tag(payload, &nonce);
        #[allow(clippy::indexing_slicing)] // tag_len <= 16
        tag[..self.umac.tag_len].ct_eq(mac).into()
    }
}

/// One UHASH iteration's keys (RFC 4418 section 5.1), already in integer form.
struct Iteration {
    /// L1Key_i as 256 32-bit big-endian words.
    l1: [u32; L1_CHUNK / 4],
    /// k64 of L2-HASH, masked.
    l2: u64,
    /// L3Key1_i's eight 8-byte words, each reduced mod p36.
    l3_1: [u64; 8],
    /// L3Key2_i.
    l3_2: u32,
}

/// A keyed UMAC instance producing `tag_len`-byte tags (4, 8, 12 or 16).
pub(crate) struct Umac {
    tag_len: usize,
    /// The PDF's AES key K' = KDF(K, 0, 16).
    pdf: Aes128,
    iterations: Vec<Iteration>,
}

/// KDF(K, index, numbytes) of RFC 4418 section 3.2.1.
fn kdf(aes: &Aes128, index: u8, numbytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(numbytes + 16);
    let mut counter: u64 = 1;
    while out.len() < numbytes {
        let mut block = [0u8; 16];
        block[7] = index;
        BigEndian::write_u64(&mut block[8..], counter);
        let mut b = block.into();
        aes.encrypt_block(&mut b);
        let b: [u8; 16] = b.into();
        out.extend_from_slice(&b);
        counter += 1;
    }
    out.truncate(numbytes);
    out
}

impl Umac {
    /// `key` must be 16 bytes (russh hands `key_len()` bytes); `tag_len` a multiple of 4
    /// up to 16.
    pub(crate) fn new(key: &[u8], tag_len: usize) -> Self {
        let mut k = [0u8; 16];
        let n = key.len().min(16);
        #[allow(clippy::indexing_slicing)]
        k[..n].copy_from_slice(&key[..n]);
        let aes = Aes128::new(&k.into());
        let iters = (tag_len / 4).clamp(1, 4);
        let pdf_key = kdf(&aes, 0, 16);
        let mut pk = [0u8; 16];
        pk.copy_from_slice(&pdf_key);
        let l1 = kdf(&aes, 1, L1_CHUNK + (iters - 1) * 16);
        let l2 = kdf(&aes, 2, iters * 24);
        let l3_1 = kdf(&aes, 3, iters * 64);
        let l3_2 = kdf(&aes, 4, iters * 4);
        #[allow(clippy::indexing_slicing)] // the KDF outputs are sized for `iters`
        let iterations = (0..iters)
            .map(|i| {
                let mut l1w = [0u32; L1_CHUNK / 4];
                for (j, w) in l1w.iter_mut().enumerate() {
                    *w = BigEndian::read_u32(&l1[i * 16 + j * 4..]);
                }
                let mut l3 = [0u64; 8];
                for (j, w) in l3.iter_mut().enumerate() {
                    *w = BigEndian::read_u64(&l3_1[i * 64 + j * 8..]) % P36;
                }
                Iteration {
                    l1: l1w,
                    l2: BigEndian::read_u64(&l2[i * 24..]) & 0x01FF_FFFF_01FF_FFFF,
                    l3_1: l3,
                    l3_2: BigEndian::read_u32(&l3_2[i * 4..]),
                }
            })
            .collect();
        Umac {
            tag_len: iters * 4,
            pdf: Aes128::new(&pk.into()),
            iterations,
        }
    }

    /// UMAC(K, M, Nonce) for an 8-byte nonce; the first `tag_len` bytes are the tag.
    /// A message over [`MAX_MESSAGE`] gets an all-zero hash (`verify` refuses it).
    pub(crate) fn tag(&self, message: &[u8], nonce: &[u8; 8]) -> [u8; 16] {
        let mut out = self.pdf(nonce);
        if message.len() > MAX_MESSAGE {
            return out;
        }
        for (i, it) in self.iterations.iter().enumerate() {
            let h = uhash_iteration(it, message);
            #[allow(clippy::indexing_slicing)] // at most 4 iterations
            for (o, b) in out[i * 4..i * 4 + 4].iter_mut().zip(h.to_be_bytes()) {
                *o ^= b;
            }
        }
        out
    }

    /// PDF(K, Nonce, taglen) of RFC 4418 section 3.2.2, left-aligned in 16 bytes.
    fn pdf(&self, nonce: &[u8; 8]) -> [u8; 16] {
        // For 4- and 8-byte tags the nonce's low bits pick a slice of one AES block.
        let index = match self.tag_len {
            4 => usize::from(nonce[7] & 3),
            8 => usize::from(nonce[7] & 1),
            _ => 0,
        };
        let mut block = [0u8; 16];
        block[..8].copy_from_slice(nonce);
        block[7] &= !(index as u8);
        let mut b = block.into();
        self.pdf.encrypt_block(&mut b);
        let t: [u8; 16] = b.into();
        let mut out = [0u8; 16];
        let start = index * self.tag_len;
        #[allow(clippy::indexing_slicing)] // index * tag_len + tag_len <= 16
        out[..self.tag_len].copy_from_slice(&t[start..start + self.tag_len]);
        out
    }
}

/// One iteration of UHASH (RFC 4418 section 5.1): L1, then L2 for long messages, then L3.
fn uhash_iteration(it: &Iteration, m: &[u8]) -> u32 {
    let (hi, lo) = if m.len() <= L1_CHUNK {
        (0, l1_chunk(it, m))
    } else {
        // L2-HASH over the L1 outputs, one 64-bit word per 1024-byte chunk.
        let mut y: u64 = 1;
        for chunk in m.chunks(L1_CHUNK) {
            y = poly64_step(it.l2, y, l1_chunk(it, chunk));
        }
        (0, y)
    };
    l3(it, hi, lo)
}

/// NH(K, M) plus the chunk's bit length, for one chunk of at most 1024 bytes (the last
/// one zero-padded to a nonzero multiple of 32 bytes), with the message read as
/// little-endian words (RFC 4418's ENDIAN-SWAP).
fn l1_chunk(it: &Iteration, chunk: &[u8]) -> u64 {
    let bits = (chunk.len() as u64) * 8;
    let padded_len = chunk.len().div_ceil(32).max(1) * 32;
    let mut y: u64 = 0;
    let mut words = [0u32; 8];
    for block in 0..padded_len / 32 {
        let mut bytes = [0u8; 32];
        let start = block * 32;
        let end = (start + 32).min(chunk.len());
        #[allow(clippy::indexing_slicing)] // start < end <= chunk.len(), or an empty tail
        if start < end {
            bytes[..end - start].copy_from_slice(&chunk[start..end]);
        }
        for (w, b) in words.iter_mut().zip(bytes.chunks_exact(4)) {
            *w = LittleEndian::read_u32(b);
        }
        #[allow(clippy::indexing_slicing)] // block < 32, so block * 8 + 7 < 256
        let k = &it.l1[block * 8..block * 8 + 8];
        for j in 0..4 {
            #[allow(clippy::indexing_slicing)]
            let a = u64::from(words[j].wrapping_add(k[j]));
            #[allow(clippy::indexing_slicing)]
            let b = u64::from(words[j + 4].wrapping_add(k[j + 4]));
            y = y.wrapping_add(a.wrapping_mul(b));
        }
    }
    y.wrapping_add(bits)
}

/// (k * y + m) mod p64 with 128-bit intermediates.
fn mul_add_p64(k: u64, y: u64, m: u64) -> u64 {
    ((u128::from(k) * u128::from(y) + u128::from(m)) % u128::from(P64)) as u64
}

/// One word of POLY(64, 2^64 - 2^32, k, M) (RFC 4418 section 5.3).
fn poly64_step(k: u64, y: u64, m: u64) -> u64 {
    if m >= 0xFFFF_FFFF_0000_0000 {
        // Words too large to be residues are split with the marker p - 1.
        let y = mul_add_p64(k, y, P64 - 1);
        mul_add_p64(k, y, m - 59)
    } else {
        mul_add_p64(k, y, m)
    }
}

/// L3-HASH (RFC 4418 section 5.4) of the 16-byte L2 output `hi || lo`.
fn l3(it: &Iteration, hi: u64, lo: u64) -> u32 {
    let mut m = [0u8; 16];
    BigEndian::write_u64(&mut m[..8], hi);
    BigEndian::write_u64(&mut m[8..], lo);
    let mut y: u64 = 0;
    for (pair, k) in m.chunks_exact(2).zip(it.l3_1) {
        // Both factors are below 2^36, the sum of eight products fits in u64 after each
        // reduction.
        y = (y + u64::from(BigEndian::read_u16(pair)) * k) % P36;
    }
    (y as u32) ^ it.l3_2
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: &[u8; 16] = b"abcdefghijklmnop";
    const N: &[u8; 8] = b"bcdefghi";

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn tag(msg: &[u8], len: usize) -> String {
        hex(&Umac::new(K, len).tag(msg, N)[..len])
    }

    /// RFC 4418 appendix A (32-, 64- and 96-bit tags); 128-bit tags from the same
    /// construction (their first 12 bytes are the 96-bit tag), as Nettle's tests list them.
    #[test]
    fn rfc4418_vectors() {
        let a = |n: usize| vec![b'a'; n];
        let cases: Vec<(Vec<u8>, &str, &str, &str, &str)> = vec![
            (
                vec![],
                "113145fb",
                "6e155fad26900be1",
                "32fedb100c79ad58f07ff764",
                "32fedb100c79ad58f07ff7643cc60465",
            ),
            (
                a(3),
                "3b91d102",
                "44b5cb542f220104",
                "185e4fe905cba7bd85e4c2dc",
                "185e4fe905cba7bd85e4c2dc3d117d8d",
            ),
            (
                a(1 << 10),
                "599b350b",
                "26bf2f5d60118bd9",
                "7a54abe04af82d60fb298c3c",
                "7a54abe04af82d60fb298c3cbd195bcb",
            ),
            (
                a(1 << 15),
                "58dcf532",
                "27f8ef643b0d118d",
                "7b136bd911e4b734286ef2be",
                "7b136bd911e4b734286ef2be501f2c3c",
            ),
            (
                a(1 << 20),
                "db6364d1",
                "a4477e87e9f55853",
                "f8acfa3ac31cfeea047f7b11",
                "f8acfa3ac31cfeea047f7b115b03bef5",
            ),
            (
                b"abc".to_vec(),
                "abf3a3a0",
                "d4d7b9f6bd4fbfcf",
                "883c3d4b97a61976ffcf2323",
                "",
            ),
            (
                b"abc".repeat(500),
                "abeb3c8b",
                "d4cf26ddefd5c01a",
                "8824a260c53c66a36c9260a6",
                "",
            ),
        ];
        for (msg, t32, t64, t96, t128) in cases {
            assert_eq!(tag(&msg, 4), t32, "UMAC-32, {} bytes", msg.len());
            assert_eq!(tag(&msg, 8), t64, "UMAC-64, {} bytes", msg.len());
            assert_eq!(tag(&msg, 12), t96, "UMAC-96, {} bytes", msg.len());
            let t = tag(&msg, 16);
            assert!(t.starts_with(t96), "UMAC-128, {} bytes: {t}", msg.len());
            if !t128.is_empty() {
                assert_eq!(t, t128, "UMAC-128, {} bytes", msg.len());
            }
        }
    }

    #[test]
    fn ssh_mac_uses_the_sequence_number_as_nonce() {
        let alg = UmacAlgorithm {
            tag_len: 8,
            etm: true,
        };
        let mac = alg.make_mac(K);
        assert!(mac.is_etm());
        let mut out = [0u8; 8];
        mac.compute(0x6263_6465, b"", &mut out);
        // Nonce 0x0000000062636465: a different nonce from the RFC's, so a different pad.
        assert_ne!(hex(&out), "6e155fad26900be1");
        assert!(mac.verify(0x6263_6465, b"", &out));
        assert!(!mac.verify(0x6263_6466, b"", &out));
        assert!(!mac.verify(0x6263_6465, b"x", &out));
        assert!(!mac.verify(0x6263_6465, b"", &out[..4]));
    }

    #[test]
    fn oversized_message_never_verifies() {
        let mac = UmacAlgorithm {
            tag_len: 16,
            etm: false,
        }
        .make_mac(K);
        let big = vec![0u8; MAX_MESSAGE + 1];
        let mut out = [0u8; 16];
        mac.compute(1, &big, &mut out);
        assert!(!mac.verify(1, &big, &out));
    }
}
