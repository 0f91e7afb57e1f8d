//! Node configuration that the core pushes to an agent: which services run, and how.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The whole service set of one node. The agent converges to it: starts what is new,
/// stops what is gone, restarts what changed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NodeConfig {
    pub services: Vec<ServiceConfig>,
}

/// One honeypot service instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceConfig {
    /// Instance name, unique on the node; events carry it as their `service`.
    pub name: String,
    pub listen: SocketAddr,
    pub enabled: bool,
    pub kind: ServiceKind,
}

/// Which protocol a service speaks, with its options. New variants go at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ServiceKind {
    Ssh(SshOptions),
    Banner(BannerOptions),
}

impl ServiceKind {
    pub fn name(&self) -> &'static str {
        match self {
            ServiceKind::Ssh(_) => "ssh",
            ServiceKind::Banner(_) => "banner",
        }
    }
}

/// SSH honeypot options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SshOptions {
    /// Identification string sent to clients, without the trailing CRLF. It should match a
    /// real OpenSSH release so scanners name the product.
    pub server_id: String,
    /// Delay before a failed login is answered, as OpenSSH does.
    pub auth_failure_delay_ms: u32,
    /// Most authentication attempts per connection before it is closed.
    pub max_auth_attempts: u32,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            server_id: "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3".into(),
            auth_failure_delay_ms: 300,
            max_auth_attempts: 6,
        }
    }
}

/// Generic TCP banner options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BannerOptions {
    /// Sent on connect; may be empty to wait silently.
    pub banner: String,
    /// Most bytes recorded from the peer.
    pub max_capture_bytes: u32,
    /// How long to wait for the peer's first bytes.
    pub read_timeout_ms: u32,
}

impl Default for BannerOptions {
    fn default() -> Self {
        BannerOptions {
            banner: "220 mail.example.com ESMTP Postfix (Debian/GNU)\r\n".into(),
            max_capture_bytes: 1024,
            read_timeout_ms: 10_000,
        }
    }
}

/// Why a node configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid service config {service:?}: {why}")]
pub struct InvalidConfig {
    pub service: String,
    pub why: String,
}

impl NodeConfig {
    /// Checks what both sides rely on: unique names, unique listen addresses, sane caps.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let mut names = std::collections::HashSet::new();
        let mut addrs = std::collections::HashSet::new();
        for s in &self.services {
            let bad = |why: &str| InvalidConfig {
                service: s.name.clone(),
                why: why.into(),
            };
            if s.name.is_empty()
                || s.name.len() > 64
                || !s
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            {
                return Err(bad("name must be 1 to 64 of a-z, A-Z, 0-9, '-', '_'"));
            }
            if !names.insert(&s.name) {
                return Err(bad("duplicate service name"));
            }
            // Port 0 asks the OS for a free port, so two such services never collide.
            if s.enabled && s.listen.port() != 0 && !addrs.insert(s.listen) {
                return Err(bad("another enabled service listens on the same address"));
            }
            match &s.kind {
                ServiceKind::Ssh(o) => {
                    if !o.server_id.starts_with("SSH-2.0-") || o.server_id.len() > 200 {
                        return Err(bad(
                            "server_id must start with SSH-2.0- (at most 200 bytes)",
                        ));
                    }
                    if o.auth_failure_delay_ms > 10_000 || o.max_auth_attempts == 0 {
                        return Err(bad(
                            "auth_failure_delay_ms <= 10000, max_auth_attempts >= 1",
                        ));
                    }
                }
                ServiceKind::Banner(o) => {
                    if o.banner.len() > 4096
                        || o.max_capture_bytes as usize > crate::event::MAX_DATA_LEN
                    {
                        return Err(bad("banner <= 4096 bytes, max_capture_bytes <= 4096"));
                    }
                }
            }
        }
        Ok(())
    }

    pub fn service_mut(&mut self, name: &str) -> Option<&mut ServiceConfig> {
        self.services.iter_mut().find(|s| s.name == name)
    }
}
