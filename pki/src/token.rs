//! One-time enrolment tokens: the one line an operator copies to a new node.
//!
//! A token carries its public id, a 256-bit secret, the SHA-256 pin of the CA's public key
//! and the core's address. The core stores only [`hash_secret`] of the secret.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use honeybee_proto::ids::TokenId;
use ring::rand::{SecureRandom, SystemRandom};

use crate::identity::sha256;

/// Every token starts with this; the digit is the format version.
pub const PREFIX: &str = "hbt1.";

/// Longest input [`Token::decode`] looks at. A real token is about 130 characters plus the
/// address; the cap keeps a pasted file from being decoded.
pub const MAX_ENCODED_LEN: usize = 1024;

/// Longest core address a token may carry (a DNS name of 253 plus `:65535`, or brackets).
pub const MAX_ADDR_LEN: usize = 261;

/// An enrolment token. Debug output never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub id: TokenId,
    pub secret: [u8; 32],
    pub ca_pin: [u8; 32],
    /// `host:port`; host is a DNS name, an IPv4 address or a bracketed IPv6 address.
    pub core_addr: String,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("id", &self.id)
            .field("secret", &"<elided>")
            .field("ca_pin", &hex::encode(self.ca_pin))
            .field("core_addr", &self.core_addr)
            .finish()
    }
}

/// Why a string is not a usable token. The messages are meant for the operator who pasted it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error("not a HoneyBee token: it should start with {PREFIX}")]
    WrongPrefix,
    #[error("token is too long ({0} bytes); was more than the token pasted?")]
    TooLong(usize),
    #[error("token is damaged: it contains characters that are not base64url")]
    BadEncoding,
    #[error("token is incomplete: it was probably cut off when copied")]
    Truncated,
    #[error("token is damaged: its contents do not decode")]
    Malformed,
    #[error("token's core address {addr:?} is invalid: {why}")]
    AddressInvalid { addr: String, why: &'static str },
}

/// The on-the-wire shape; a tuple so the encoding has no field names and stays short.
type Wire = (TokenId, [u8; 32], [u8; 32], String);

/// Why [`Token::generate`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenGenerateError {
    #[error("the system random number generator failed")]
    Rng,
    #[error(transparent)]
    Address(TokenError),
}

impl Token {
    /// A fresh token with a random id and secret.
    ///
    /// Checks `core_addr` now, so a bad address is reported to the operator who typed it
    /// rather than to the one who later pastes the token.
    pub fn generate(ca_pin: [u8; 32], core_addr: String) -> Result<Token, TokenGenerateError> {
        validate_addr(&core_addr).map_err(TokenGenerateError::Address)?;
        let rng = SystemRandom::new();
        let mut id = [0u8; 8];
        let mut secret = [0u8; 32];
        rng.fill(&mut id).map_err(|_| TokenGenerateError::Rng)?;
        rng.fill(&mut secret).map_err(|_| TokenGenerateError::Rng)?;
        Ok(Token {
            id: TokenId(id),
            secret,
            ca_pin,
            core_addr,
        })
    }

    /// `hbt1.` + base64url (no padding) of the postcard encoding: one line, no spaces, safe
    /// in a shell argument.
    pub fn encode(&self) -> String {
        let wire: Wire = (self.id, self.secret, self.ca_pin, self.core_addr.clone());
        // postcard into a Vec fails only on allocation failure or unsupported serde types,
        // neither of which applies to this tuple.
        let bytes = postcard::to_allocvec(&wire).unwrap_or_default();
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Parses a token as an operator pasted it (surrounding whitespace is ignored).
    pub fn decode(s: &str) -> Result<Token, TokenError> {
        let s = s.trim();
        if s.len() > MAX_ENCODED_LEN {
            return Err(TokenError::TooLong(s.len()));
        }
        let body = s.strip_prefix(PREFIX).ok_or(TokenError::WrongPrefix)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| TokenError::BadEncoding)?;
        let (wire, rest): (Wire, _) = postcard::take_from_bytes(&bytes).map_err(|e| match e {
            postcard::Error::DeserializeUnexpectedEnd => TokenError::Truncated,
            _ => TokenError::Malformed,
        })?;
        if !rest.is_empty() {
            return Err(TokenError::Malformed);
        }
        let (id, secret, ca_pin, core_addr) = wire;
        validate_addr(&core_addr)?;
        Ok(Token {
            id,
            secret,
            ca_pin,
            core_addr,
        })
    }

    /// What the core stores instead of the secret.
    pub fn secret_hash(&self) -> [u8; 32] {
        hash_secret(&self.secret)
    }
}

/// SHA-256 of a token secret. A plain hash is enough: the secret has 256 random bits, so
/// there is nothing for a slow hash to protect against.
pub fn hash_secret(secret: &[u8; 32]) -> [u8; 32] {
    sha256(secret)
}

/// Whether `secret` hashes to `stored_hash`, in time independent of where they differ.
pub fn verify_secret(secret: &[u8; 32], stored_hash: &[u8; 32]) -> bool {
    let h = hash_secret(secret);
    let diff = h
        .iter()
        .zip(stored_hash)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    // black_box keeps the optimiser from turning the fold into an early-exit compare.
    std::hint::black_box(diff) == 0
}

/// Checks `host:port` where host is a DNS name, an IPv4 address or `[IPv6]`, or
/// `srv:DOMAIN` (the agent finds the core by the SRV records of `_honeybee._udp.DOMAIN`).
/// `srv:` followed by digits only is the host `srv` and a port.
pub fn validate_addr(addr: &str) -> Result<(), TokenError> {
    let bad = |why| TokenError::AddressInvalid {
        addr: addr.chars().take(80).collect(),
        why,
    };
    if addr.len() > MAX_ADDR_LEN {
        return Err(bad("too long"));
    }
    if let Some(domain) = addr.strip_prefix("srv:")
        && (domain.is_empty() || !domain.bytes().all(|b| b.is_ascii_digit()))
    {
        return if is_dns_name(domain) {
            Ok(())
        } else {
            Err(bad("srv: must be followed by a DNS name"))
        };
    }
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let (v6, port) = rest
            .split_once("]:")
            .ok_or_else(|| bad("an IPv6 address must be written [addr]:port"))?;
        v6.parse::<Ipv6Addr>()
            .map_err(|_| bad("not a valid IPv6 address"))?;
        (None, port)
    } else {
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| bad("expected host:port"))?;
        (Some(host), port)
    };
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("port must be a number from 1 to 65535"));
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 => {}
        _ => return Err(bad("port must be a number from 1 to 65535")),
    }
    let Some(host) = host else { return Ok(()) };
    if host.contains(':') {
        return Err(bad("an IPv6 address must be written [addr]:port"));
    }
    if host.parse::<Ipv4Addr>().is_ok() {
        return Ok(());
    }
    if is_dns_name(host) {
        Ok(())
    } else {
        Err(bad("host must be a DNS name, an IPv4 address or [IPv6]"))
    }
}

fn is_dns_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > 253 {
        return false;
    }
    let labels_ok = host.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    // An all-numeric dotted name that failed to parse as IPv4 (e.g. 300.1.1.1) is a typo,
    // not a host name.
    let last = host.rsplit('.').next().unwrap_or_default();
    labels_ok && !last.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Token {
        Token::generate([7; 32], "core.example.net:7443".into()).unwrap()
    }

    #[test]
    fn round_trip() {
        for addr in [
            "core.example.net:7443",
            "192.0.2.1:7443",
            "[2001:db8::1]:7443",
            "srv:example.net",
        ] {
            let t = Token::generate([9; 32], addr.into()).unwrap();
            let s = t.encode();
            assert!(s.starts_with(PREFIX));
            assert!(!s.contains(char::is_whitespace));
            assert_eq!(Token::decode(&format!("  {s}\n")).unwrap(), t);
        }
    }

    #[test]
    fn tokens_differ() {
        let (a, b) = (sample(), sample());
        assert_ne!(a.id, b.id);
        assert_ne!(a.secret, b.secret);
    }

    #[test]
    fn decode_errors() {
        let s = sample().encode();
        assert_eq!(Token::decode("hbt2.abc"), Err(TokenError::WrongPrefix));
        assert_eq!(Token::decode(""), Err(TokenError::WrongPrefix));
        assert!(
            TokenError::WrongPrefix
                .to_string()
                .contains("should start with hbt1.")
        );
        assert_eq!(
            Token::decode(&format!("{s}!")),
            Err(TokenError::BadEncoding)
        );
        assert_eq!(
            Token::decode(&s[..PREFIX.len() + 40]),
            Err(TokenError::Truncated)
        );
        let long = format!("{PREFIX}{}", "A".repeat(MAX_ENCODED_LEN));
        assert!(matches!(Token::decode(&long), Err(TokenError::TooLong(_))));

        // Trailing bytes after a valid token.
        let t = sample();
        let mut bytes =
            postcard::to_allocvec(&(t.id, t.secret, t.ca_pin, t.core_addr.clone())).unwrap();
        bytes.push(0);
        let enc = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert_eq!(Token::decode(&enc), Err(TokenError::Malformed));

        // An address that is not host:port.
        let bytes = postcard::to_allocvec(&(t.id, t.secret, t.ca_pin, "no port")).unwrap();
        let enc = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert!(matches!(
            Token::decode(&enc),
            Err(TokenError::AddressInvalid { .. })
        ));
    }

    #[test]
    fn addresses() {
        for ok in [
            "core:7443",
            "core.example.net.:1",
            "10.0.0.1:65535",
            "[::1]:7443",
            "a-b.c:7443",
            "srv:example.net",
            "srv:example.net.",
            "srv:core",
            "srv:7443",
        ] {
            assert!(validate_addr(ok).is_ok(), "{ok}");
        }
        for bad in [
            "core",
            "core:",
            "core:0",
            "core:65536",
            "core:+1",
            ":7443",
            "::1:7443",
            "[::1]",
            "[nope]:7443",
            "300.1.1.1:7443",
            "-core:7443",
            "co re:7443",
            "core..x:7443",
            "http://core:7443",
            "srv:",
            "srv:example.net:7443",
            "srv:_honeybee._udp.example.net",
            "srv:-x.net",
            "srv:1.2.3.4",
        ] {
            assert!(validate_addr(bad).is_err(), "{bad}");
        }
        assert!(Token::generate([0; 32], "bad".into()).is_err());
    }

    #[test]
    fn secret_check() {
        let t = sample();
        let h = t.secret_hash();
        assert!(verify_secret(&t.secret, &h));
        let mut wrong = t.secret;
        wrong[31] ^= 1;
        assert!(!verify_secret(&wrong, &h));
        assert!(!format!("{t:?}").contains(&hex::encode(t.secret)));
    }
}
