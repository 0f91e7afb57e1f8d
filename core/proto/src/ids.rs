//! Newtypes for identities: node ids, roles, certificate serials, sessions and tokens.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Error for an identifier that does not meet its syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {why}")]
pub struct InvalidId {
    pub what: &'static str,
    pub value: String,
    pub why: &'static str,
}

/// The role a certificate grants; the path segment after the trust domain in its SPIFFE id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Role {
    Core,
    Agent,
    Relay,
    Module,
    Dashboard,
    Admin,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Core,
        Role::Agent,
        Role::Relay,
        Role::Module,
        Role::Dashboard,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Core => "core",
            Role::Agent => "agent",
            Role::Relay => "relay",
            Role::Module => "module",
            Role::Dashboard => "dashboard",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Role {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| InvalidId {
                what: "role",
                value: s.to_owned(),
                why: "expected one of core, agent, relay, module, dashboard, admin",
            })
    }
}

/// A node's (or any principal's) id: 1 to 64 characters of `[a-z0-9._-]`, starting with
/// a letter or digit. Safe to use in a SPIFFE path, a file name and a log line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct NodeId(String);

impl NodeId {
    pub const MAX_LEN: usize = 64;

    pub fn new(s: impl Into<String>) -> Result<Self, InvalidId> {
        let s = s.into();
        let bad = |why| InvalidId {
            what: "id",
            value: s.chars().take(80).collect(),
            why,
        };
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err(bad("must be 1 to 64 characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        {
            return Err(bad("only a-z, 0-9, '.', '_' and '-' are allowed"));
        }
        if !s.as_bytes()[0].is_ascii_alphanumeric() {
            return Err(bad("must start with a letter or digit"));
        }
        Ok(NodeId(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NodeId::new(s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl FromStr for NodeId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeId::new(s)
    }
}

macro_rules! hex_id {
    ($(#[$m:meta])* $name:ident, $n:expr, $what:expr) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub [u8; $n]);

        impl $name {
            pub fn to_hex(&self) -> String {
                self.0.iter().map(|b| format!("{b:02x}")).collect()
            }
            pub fn from_hex(s: &str) -> Result<Self, InvalidId> {
                let bad = |why| InvalidId { what: $what, value: s.chars().take(80).collect(), why };
                if s.len() != $n * 2 {
                    return Err(bad(concat!("must be ", stringify!($n), " bytes of hex")));
                }
                let mut out = [0u8; $n];
                for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
                    let hi = (chunk[0] as char).to_digit(16).ok_or_else(|| bad("not hex"))?;
                    let lo = (chunk[1] as char).to_digit(16).ok_or_else(|| bad("not hex"))?;
                    out[i] = (hi * 16 + lo) as u8;
                }
                Ok($name(out))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::from_hex(s)
            }
        }
    };
}

hex_id!(
    /// A certificate serial: 128 random bits.
    Serial, 16, "serial"
);
hex_id!(
    /// A one-time token's public id (the secret is separate and never stored).
    TokenId, 8, "token id"
);
hex_id!(
    /// One attacker session (a TCP connection to a honeypot service), shared by its events.
    SessionId, 8, "session id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_rules() {
        assert!(NodeId::new("office-printer-1").is_ok());
        assert!(NodeId::new("a").is_ok());
        assert!(NodeId::new("").is_err());
        assert!(NodeId::new("-x").is_err());
        assert!(NodeId::new("Upper").is_err());
        assert!(NodeId::new("a/b").is_err());
        assert!(NodeId::new("x".repeat(65)).is_err());
    }

    #[test]
    fn hex_round_trip() {
        let s = Serial([0xab; 16]);
        assert_eq!(Serial::from_hex(&s.to_hex()).unwrap(), s);
        assert!(Serial::from_hex("zz").is_err());
        assert!(TokenId::from_hex("0123456789abcdeg").is_err());
    }

    #[test]
    fn role_parse() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().is_err());
    }
}
