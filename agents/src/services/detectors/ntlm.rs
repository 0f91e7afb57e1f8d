//! NTLM client messages for the honey-credential offer (MS-NLMP): NEGOTIATE, the parse of
//! a server's CHALLENGE (hostile input: size-capped, every offset checked), and an
//! AUTHENTICATE carrying a honey user and an NTLMv2 response computed from a honey
//! password. Sans-IO; the primitives are RustCrypto's `md4`, `md-5` and `hmac`.

use hmac::{Hmac, KeyInit, Mac};
use md4::{Digest, Md4};
use md5_digest::Md5;

/// Largest CHALLENGE message accepted (a real one is a few hundred bytes).
pub const MAX_CHALLENGE: usize = 2048;
/// Largest target-info block echoed back in the NTLMv2 blob.
pub const MAX_TARGET_INFO: usize = 1024;

const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";
/// UNICODE, REQUEST_TARGET, NTLM, ALWAYS_SIGN, EXTENDED_SESSIONSECURITY, VERSION, 128, 56:
/// what a Windows client asks for, without signing or key exchange.
pub const FLAGS: u32 = 0xa208_8205;
/// Windows 10 22H2 (10.0.19045), NTLM revision 15.
const VERSION: [u8; 8] = [10, 0, 0x65, 0x4a, 0, 0, 0, 15];

/// Why a CHALLENGE was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("larger than {MAX_CHALLENGE} bytes")]
    TooLarge,
    #[error("not an NTLM CHALLENGE message")]
    NotChallenge,
    #[error("a field points outside the message")]
    OutOfBounds,
    #[error("target info larger than {MAX_TARGET_INFO} bytes")]
    TargetInfoTooLarge,
}

/// What the client needs from a server's CHALLENGE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub flags: u32,
    pub server_challenge: [u8; 8],
    pub target_info: Vec<u8>,
}

/// The NEGOTIATE message (no domain or workstation supplied).
pub fn negotiate() -> Vec<u8> {
    let mut m = Vec::with_capacity(40);
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&1u32.to_le_bytes());
    m.extend_from_slice(&FLAGS.to_le_bytes());
    m.extend_from_slice(&[0; 16]); // domain and workstation: empty, offset 0
    m.extend_from_slice(&VERSION);
    m
}

fn secbuf(m: &[u8], at: usize) -> Result<&[u8], ChallengeError> {
    let f = m.get(at..at + 8).ok_or(ChallengeError::OutOfBounds)?;
    let len = usize::from(u16::from_le_bytes([f[0], f[1]]));
    let off = u32::from_le_bytes([f[4], f[5], f[6], f[7]]) as usize;
    if len == 0 {
        return Ok(&[]);
    }
    m.get(off..off.checked_add(len).ok_or(ChallengeError::OutOfBounds)?)
        .ok_or(ChallengeError::OutOfBounds)
}

/// Parses a server's CHALLENGE (type 2) message.
pub fn parse_challenge(m: &[u8]) -> Result<Challenge, ChallengeError> {
    if m.len() > MAX_CHALLENGE {
        return Err(ChallengeError::TooLarge);
    }
    if m.len() < 32 || &m[..8] != SIGNATURE || m[8..12] != 2u32.to_le_bytes() {
        return Err(ChallengeError::NotChallenge);
    }
    let flags = u32::from_le_bytes([m[20], m[21], m[22], m[23]]);
    let mut server_challenge = [0u8; 8];
    server_challenge.copy_from_slice(&m[24..32]);
    // The target info field is absent in the oldest servers' messages.
    let target_info = if m.len() >= 48 { secbuf(m, 40)? } else { &[] };
    if target_info.len() > MAX_TARGET_INFO {
        return Err(ChallengeError::TargetInfoTooLarge);
    }
    Ok(Challenge {
        flags,
        server_challenge,
        target_info: target_info.to_vec(),
    })
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    let mut h = <Hmac<Md5> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        h.update(p);
    }
    h.finalize().into_bytes().into()
}

/// NTOWFv2: HMAC-MD5 keyed with the NT hash (MD4 of the UTF-16LE password) over the
/// upper-cased user and the domain.
pub fn ntowf_v2(password: &str, user: &str, domain: &str) -> [u8; 16] {
    let nt_hash: [u8; 16] = Md4::digest(utf16le(password)).into();
    hmac_md5(
        &nt_hash,
        &[&utf16le(&user.to_uppercase()), &utf16le(domain)],
    )
}

/// The NTLMv2 and LMv2 responses (MS-NLMP 3.3.2) for a CHALLENGE, given the client's
/// challenge and the time as a FILETIME (100 ns since 1601).
pub fn ntlmv2_responses(
    key: &[u8; 16],
    server_challenge: &[u8; 8],
    client_challenge: &[u8; 8],
    filetime: u64,
    target_info: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let mut temp = Vec::with_capacity(32 + target_info.len());
    temp.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 0]);
    temp.extend_from_slice(&filetime.to_le_bytes());
    temp.extend_from_slice(client_challenge);
    temp.extend_from_slice(&[0; 4]);
    temp.extend_from_slice(target_info);
    temp.extend_from_slice(&[0; 4]);
    let proof = hmac_md5(key, &[server_challenge, &temp]);
    let mut nt = proof.to_vec();
    nt.extend_from_slice(&temp);
    let mut lm = hmac_md5(key, &[server_challenge, client_challenge]).to_vec();
    lm.extend_from_slice(client_challenge);
    (nt, lm)
}

/// The honey identity an AUTHENTICATE carries.
#[derive(Debug, Clone)]
pub struct Identity<'a> {
    pub user: &'a str,
    pub domain: &'a str,
    pub password: &'a str,
    pub workstation: &'a str,
}

/// The AUTHENTICATE (type 3) message answering `ch`, without MIC or session key (the
/// target info is echoed unchanged, so the server asks for none).
pub fn authenticate(
    id: &Identity<'_>,
    ch: &Challenge,
    client_challenge: [u8; 8],
    filetime: u64,
) -> Vec<u8> {
    let key = ntowf_v2(id.password, id.user, id.domain);
    let (nt, lm) = ntlmv2_responses(
        &key,
        &ch.server_challenge,
        &client_challenge,
        filetime,
        &ch.target_info,
    );
    let (domain, user, ws) = (
        utf16le(id.domain),
        utf16le(id.user),
        utf16le(id.workstation),
    );
    // Signature, type, six security buffers, flags, version; no MIC.
    const HEADER: usize = 72;
    let mut payload = Vec::new();
    let mut fields = Vec::new();
    for part in [&lm, &nt, &domain, &user, &ws] {
        fields.push(((HEADER + payload.len()) as u32, part.len() as u16));
        payload.extend_from_slice(part);
    }
    let mut m = Vec::with_capacity(HEADER + payload.len());
    m.extend_from_slice(SIGNATURE);
    m.extend_from_slice(&3u32.to_le_bytes());
    for (off, len) in fields {
        m.extend_from_slice(&len.to_le_bytes());
        m.extend_from_slice(&len.to_le_bytes());
        m.extend_from_slice(&off.to_le_bytes());
    }
    // Encrypted random session key: none.
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(&((HEADER + payload.len()) as u32).to_le_bytes());
    m.extend_from_slice(&(FLAGS & ch.flags | 0x0000_0001).to_le_bytes());
    m.extend_from_slice(&VERSION);
    m.extend_from_slice(&payload);
    m
}

/// The user, domain, workstation and NT response of an AUTHENTICATE message, as a
/// server (a test's responder) reads them; `None` if malformed.
pub fn parse_authenticate(m: &[u8]) -> Option<(String, String, String, Vec<u8>)> {
    if m.len() < 64 || &m[..8] != SIGNATURE || m[8..12] != 3u32.to_le_bytes() {
        return None;
    }
    let text = |at| -> Option<String> {
        let b = secbuf(m, at).ok()?;
        let units: Vec<u16> = b
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16(&units).ok()
    };
    let nt = secbuf(m, 20).ok()?.to_vec();
    Some((text(36)?, text(28)?, text(44)?, nt))
}

/// Whether an NT response is the NTLMv2 response of `password` for this user and
/// domain to `server_challenge` (what a poisoner's cracking would confirm).
pub fn verify_ntlmv2(
    nt_response: &[u8],
    server_challenge: &[u8; 8],
    user: &str,
    domain: &str,
    password: &str,
) -> bool {
    if nt_response.len() < 16 + 28 {
        return false;
    }
    let key = ntowf_v2(password, user, domain);
    let (proof, temp) = nt_response.split_at(16);
    hmac_md5(&key, &[server_challenge, temp]) == proof
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// MS-NLMP 4.2.4: the NTLMv2 test vectors (User / Domain / Password, server challenge
    /// 0123456789abcdef, client challenge aa…aa, time 0, target info "Domain"/"Server").
    #[test]
    fn ms_nlmp_ntlmv2_vectors() {
        let nt_hash: [u8; 16] = Md4::digest(utf16le("Password")).into();
        assert_eq!(nt_hash.to_vec(), hex("a4f49c406510bdcab6824ee7c30fd852"));
        let key = ntowf_v2("Password", "User", "Domain");
        assert_eq!(key.to_vec(), hex("0c868a403bfd7a93a3001ef22ef02e3f"));
        let server = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
        let client = [0xaa; 8];
        let target_info =
            hex("02000c0044006f006d00610069006e00 01000c005300650072007600650072000000 0000");
        let (nt, lm) = ntlmv2_responses(&key, &server, &client, 0, &target_info);
        assert_eq!(
            lm,
            hex("86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa"),
            "LMv2"
        );
        assert_eq!(nt[..16].to_vec(), hex("68cd0ab851e51c96aabc927bebef6a1c"));
        assert!(verify_ntlmv2(&nt, &server, "User", "Domain", "Password"));
        assert!(!verify_ntlmv2(&nt, &server, "User", "Domain", "password"));
    }

    fn challenge_msg(target_info: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(SIGNATURE);
        m.extend_from_slice(&2u32.to_le_bytes());
        m.extend_from_slice(&[0, 0, 0, 0, 56, 0, 0, 0]); // target name: empty
        m.extend_from_slice(&0xe289_8215u32.to_le_bytes());
        m.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        m.extend_from_slice(&[0; 8]);
        let len = target_info.len() as u16;
        m.extend_from_slice(&len.to_le_bytes());
        m.extend_from_slice(&len.to_le_bytes());
        m.extend_from_slice(&56u32.to_le_bytes());
        m.extend_from_slice(&VERSION);
        m.extend_from_slice(target_info);
        m
    }

    #[test]
    fn authenticate_round_trips_through_a_servers_parse() {
        let ch = parse_challenge(&challenge_msg(
            b"\x02\x00\x04\x00S\x00M\x00\x00\x00\x00\x00",
        ))
        .unwrap();
        assert_eq!(ch.server_challenge, [1, 2, 3, 4, 5, 6, 7, 8]);
        let id = Identity {
            user: "j.miller",
            domain: "CORP",
            password: "Autumn2024!",
            workstation: "DESKTOP-4F2K",
        };
        let m = authenticate(&id, &ch, [9; 8], 133_000_000_000_000_000);
        let (user, domain, ws, nt) = parse_authenticate(&m).unwrap();
        assert_eq!(
            (user.as_str(), domain.as_str(), ws.as_str()),
            ("j.miller", "CORP", "DESKTOP-4F2K")
        );
        assert!(verify_ntlmv2(
            &nt,
            &ch.server_challenge,
            "j.miller",
            "CORP",
            "Autumn2024!"
        ));
        assert_eq!(&negotiate()[..12], b"NTLMSSP\0\x01\0\0\0");
    }

    #[test]
    fn hostile_challenges_are_refused() {
        assert_eq!(
            parse_challenge(&vec![0; MAX_CHALLENGE + 1]),
            Err(ChallengeError::TooLarge)
        );
        assert_eq!(
            parse_challenge(b"NTLMSSP\0"),
            Err(ChallengeError::NotChallenge)
        );
        let mut m = challenge_msg(&[0; 16]);
        m[44..48].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_challenge(&m), Err(ChallengeError::OutOfBounds));
        let big = challenge_msg(&vec![0; MAX_TARGET_INFO + 1]);
        assert_eq!(
            parse_challenge(&big),
            Err(ChallengeError::TargetInfoTooLarge)
        );
        assert!(parse_authenticate(&[0xff; 100]).is_none());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_challenges_never_panic(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let mut m = SIGNATURE.to_vec();
            m.extend_from_slice(&2u32.to_le_bytes());
            m.extend_from_slice(&b);
            let _ = parse_challenge(&m);
            let _ = parse_challenge(&b);
            let _ = parse_authenticate(&b);
        }
    }
}
