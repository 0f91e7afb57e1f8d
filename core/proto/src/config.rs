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
    /// Extension node: many ports beside real services, see [`ExtensionOptions`].
    Extension(ExtensionOptions),
}

impl ServiceKind {
    pub fn name(&self) -> &'static str {
        match self {
            ServiceKind::Ssh(_) => "ssh",
            ServiceKind::Banner(_) => "banner",
            ServiceKind::Extension(_) => "extension",
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

/// Most ports one extension service may cover (after expanding its ranges).
pub const MAX_EXTENSION_PORTS: usize = 1024;

/// An inclusive range of TCP ports; a single port is `start == end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

/// Extension service options: listen on every configured port that no real service of
/// the host holds, answer like a banner service, and detect port scans.
///
/// The bind address is the service's `listen` IP; its port must be 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtensionOptions {
    pub ports: Vec<PortRange>,
    /// Sent on connect; empty (the default) to answer with nothing.
    pub banner: String,
    /// Most bytes recorded from the peer.
    pub max_capture_bytes: u32,
    /// How long to wait for the peer's first bytes.
    pub read_timeout_ms: u32,
    /// How often the host's listening sockets are read again.
    pub recheck_s: u32,
    /// Distinct ports from one source within `scan_window_ms` that make a scan; 0 turns
    /// scan detection off.
    pub scan_min_ports: u32,
    /// The scan detector's sliding window, and the quiet time that ends a scan.
    pub scan_window_ms: u32,
}

impl Default for ExtensionOptions {
    fn default() -> Self {
        ExtensionOptions {
            ports: Vec::new(),
            banner: String::new(),
            max_capture_bytes: 1024,
            read_timeout_ms: 5_000,
            recheck_s: 30,
            scan_min_ports: 5,
            scan_window_ms: 10_000,
        }
    }
}

impl ExtensionOptions {
    /// The configured ports, expanded, sorted and deduplicated. Callers validate first;
    /// this stops at [`MAX_EXTENSION_PORTS`] anyway.
    pub fn port_list(&self) -> Vec<u16> {
        let mut out = std::collections::BTreeSet::new();
        for r in &self.ports {
            for p in r.start..=r.end {
                if out.len() >= MAX_EXTENSION_PORTS {
                    break;
                }
                out.insert(p);
            }
        }
        out.into_iter().collect()
    }

    fn check(&self) -> Result<(), &'static str> {
        if self.ports.is_empty() || self.ports.len() > MAX_EXTENSION_PORTS {
            return Err("ports: 1 to 1024 ranges");
        }
        let mut total = 0usize;
        for r in &self.ports {
            if r.start == 0 || r.start > r.end {
                return Err("ports: each range needs 1 <= start <= end");
            }
            total += usize::from(r.end - r.start) + 1;
        }
        if total > MAX_EXTENSION_PORTS {
            return Err("ports: at most 1024 ports in all");
        }
        if self.banner.len() > 4096 || self.max_capture_bytes as usize > crate::event::MAX_DATA_LEN
        {
            return Err("banner <= 4096 bytes, max_capture_bytes <= 4096");
        }
        if self.read_timeout_ms > 600_000 {
            return Err("read_timeout_ms <= 600000");
        }
        if !(1..=86_400).contains(&self.recheck_s) {
            return Err("recheck_s: 1 to 86400");
        }
        if self.scan_min_ports != 0 && !(2..=256).contains(&self.scan_min_ports) {
            return Err("scan_min_ports: 0 (off) or 2 to 256");
        }
        if !(100..=3_600_000).contains(&self.scan_window_ms) {
            return Err("scan_window_ms: 100 to 3600000");
        }
        Ok(())
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
                ServiceKind::Extension(o) => {
                    if s.listen.port() != 0 {
                        return Err(bad("an extension service's listen port must be 0"));
                    }
                    o.check().map_err(bad)?;
                }
            }
        }
        Ok(())
    }

    pub fn service_mut(&mut self, name: &str) -> Option<&mut ServiceConfig> {
        self.services.iter_mut().find(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(ports: Vec<PortRange>) -> NodeConfig {
        NodeConfig {
            services: vec![ServiceConfig {
                name: "ext".into(),
                listen: "0.0.0.0:0".parse().unwrap(),
                enabled: true,
                kind: ServiceKind::Extension(ExtensionOptions {
                    ports,
                    ..Default::default()
                }),
            }],
        }
    }

    #[test]
    fn extension_ports_are_bounded() {
        let r = |start, end| PortRange { start, end };
        assert!(ext(vec![r(8000, 8100), r(9000, 9000)]).validate().is_ok());
        assert!(ext(vec![]).validate().is_err());
        assert!(ext(vec![r(0, 10)]).validate().is_err());
        assert!(ext(vec![r(10, 9)]).validate().is_err());
        assert!(ext(vec![r(1, 65535)]).validate().is_err());
        assert!(ext(vec![r(1000, 1600), r(2000, 2600)]).validate().is_err());
        let o = ExtensionOptions {
            ports: vec![r(5, 7), r(6, 8), r(1, 1)],
            ..Default::default()
        };
        assert_eq!(o.port_list(), vec![1, 5, 6, 7, 8]);
        let mut c = ext(vec![r(1, 2)]);
        c.services[0].listen = "0.0.0.0:80".parse().unwrap();
        assert!(c.validate().is_err());
    }
}
