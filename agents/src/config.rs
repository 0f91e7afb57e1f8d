//! The agent's data directory and `agent.toml`, written by enrolment and read by `run`.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const CONFIG_FILE: &str = "agent.toml";

/// Where everything lives in an agent's data directory.
#[derive(Debug, Clone)]
pub struct AgentPaths {
    pub root: PathBuf,
}

impl AgentPaths {
    pub fn new(root: &Path) -> Self {
        AgentPaths {
            root: root.to_owned(),
        }
    }
    pub fn config(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("pki").join("ca.crt")
    }
    /// The node's certificate and private key in one 0600 file, so a renewal replaces
    /// both with one atomic rename.
    pub fn identity(&self) -> PathBuf {
        self.root.join("pki").join("node.pem")
    }
    pub fn spool(&self) -> PathBuf {
        self.root.join("spool.db")
    }
    pub fn captures(&self) -> PathBuf {
        self.root.join("spool-captures")
    }
    /// The last configuration the core pushed, so services run while the core is away.
    pub fn node_config(&self) -> PathBuf {
        self.root.join("node-config.bin")
    }
}

/// `agent.toml` as written on disk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// This node's id, as the core issued it.
    pub node_id: String,
    pub trust_domain: String,
    /// The core's `host:port` (the host may be a DNS name), or `srv:DOMAIN` to find it by
    /// the SRV records of `_honeybee._udp.DOMAIN` (see `resolve.rs`).
    pub core: String,
    /// `IP:PORT` of the DNS server to ask instead of the system's (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_server: Option<std::net::SocketAddr>,
    /// Most events kept in the spool while the core is unreachable.
    #[serde(default = "d_spool")]
    pub spool_max_events: u64,
    /// `[metrics]`: Prometheus metrics on a loopback port; off by default.
    #[serde(default, skip_serializing_if = "crate::metrics::MetricsConfig::is_off")]
    pub metrics: crate::metrics::MetricsConfig,
}

fn d_spool() -> u64 {
    1_000_000
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentConfigError {
    #[error(
        "cannot read {path}: {source} (enrol first: `honeybee agent enroll --token … --data-dir …`)"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
}

impl AgentConfig {
    pub fn load(paths: &AgentPaths) -> Result<AgentConfig, AgentConfigError> {
        let path = paths.config();
        let text = std::fs::read_to_string(&path).map_err(|source| AgentConfigError::Read {
            path: path.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| AgentConfigError::Parse {
            path,
            message: e.to_string(),
        })
    }

    pub fn to_toml(&self) -> String {
        format!(
            "# HoneyBee agent configuration, written by `honeybee agent enroll`.\n{}",
            toml::to_string_pretty(self).unwrap_or_default()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_example_parses() {
        let c: AgentConfig = toml::from_str(include_str!("../../configs/agent.toml")).unwrap();
        assert_eq!(c.core, "core.example.org:7443");
        assert_eq!(c.dns_server, None);
        let again: AgentConfig = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(again, c);
        let with_dns = AgentConfig {
            core: "srv:example.org".into(),
            dns_server: Some("127.0.0.1:5353".parse().unwrap()),
            ..c
        };
        let text = with_dns.to_toml();
        assert!(text.contains("dns_server = \"127.0.0.1:5353\""), "{text}");
        assert_eq!(toml::from_str::<AgentConfig>(&text).unwrap(), with_dns);
        assert!(toml::from_str::<AgentConfig>(&text.replace(":5353", "")).is_err());
    }
}
