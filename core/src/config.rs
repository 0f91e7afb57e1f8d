//! Core configuration: the raw `core.toml` as written by people, and the validated
//! runtime form the core runs on (parse, don't validate).

use honeybee_proto::config::{ExtensionOptions, NodeConfig, PortRange, ServiceConfig, ServiceKind};
use honeybee_proto::profile::Profile;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// File name of the core's configuration inside the data directory.
pub const CONFIG_FILE: &str = "core.toml";

/// `core.toml` as written on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCoreConfig {
    pub trust_domain: String,
    /// UDP address the QUIC endpoint binds.
    pub listen: String,
    /// `host:port` that agents are told to reach (IP or DNS name); goes into tokens.
    pub advertise: String,
    #[serde(default)]
    pub certs: RawCerts,
    #[serde(default)]
    pub limits: RawLimits,
    /// The profile a newly enrolled node runs (`linux-server`, `router`, `ics`, or `all`
    /// for a demo; see `honeybee_proto::profile`), with `default_services` laid over it.
    /// Absent with no `default_services` either: `linux-server`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The address the profile's services listen on (default `0.0.0.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_address: Option<String>,
    /// Services a newly enrolled agent runs until an operator changes them: beside the
    /// profile's, or replacing those of the same name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_services: Vec<RawService>,
    #[serde(default)]
    pub modules: RawModules,
    #[serde(default)]
    pub scan_correlation: RawScanCorrelation,
    /// Managed modules the core starts and supervises.
    #[serde(default, rename = "module", skip_serializing_if = "Vec::is_empty")]
    pub managed_modules: Vec<RawModule>,
    /// `[metrics]`: Prometheus metrics on a loopback port; off by default.
    #[serde(default, skip_serializing_if = "RawMetrics::is_off")]
    pub metrics: RawMetrics,
    /// `[store]`: where the core keeps its data; absent, the SQLite file in the data
    /// directory.
    #[serde(default, skip_serializing_if = "RawStore::is_default")]
    pub store: RawStore,
}

/// `[store]` of `core.toml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// Empty (the default): SQLite, `honeybee.db` in the data directory. Otherwise a
    /// `postgres://user@host:port/database` URL, without the password.
    #[serde(default)]
    pub url: String,
    /// A file holding the database password (first line). The environment variable
    /// `HONEYBEE_STORE_PASSWORD` wins over it. Never in the URL, the audit log or a
    /// command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// Retention: events older than this (by observation time) are deleted, in batches,
    /// e.g. "90d". Absent: kept for ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_events: Option<String>,
    /// Where captures' contents go (content-addressed, `<aa>/<sha256>`); absent, the data
    /// directory's `captures/`. Cores that share one PostgreSQL point this at one shared
    /// directory (NFS, CephFS, …) so that every core can serve every capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captures_dir: Option<PathBuf>,
    /// PostgreSQL only, where several cores may share the database: how long a node's lease
    /// outlives its core's last renewal (renewed every third of it), so how long a crashed
    /// core's nodes stay marked online. 3s to 10m; absent, 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ttl: Option<String>,
}

impl RawStore {
    pub fn is_default(&self) -> bool {
        *self == RawStore::default()
    }

    /// `retain_events` as a duration (None: keep every event).
    pub fn retain_events(&self) -> Result<Option<Duration>, ConfigError> {
        self.retain_events
            .as_deref()
            .map(|v| duration("store.retain_events", v))
            .transpose()
    }

    /// `lease_ttl` as a duration, within its bounds.
    pub fn lease_ttl(&self) -> Result<Duration, ConfigError> {
        let Some(v) = self.lease_ttl.as_deref() else {
            return Ok(crate::cluster::LEASE_TTL);
        };
        let d = duration("store.lease_ttl", v)?;
        if d > MAX_LEASE_TTL {
            return Err(ConfigError::Invalid {
                key: "store.lease_ttl",
                value: v.into(),
                why: "must be at most 10m".into(),
            });
        }
        Ok(d)
    }

    /// `captures_dir`, which must be absolute (a relative one would depend on the
    /// directory the core happens to start in).
    pub fn captures_dir(&self) -> Result<Option<PathBuf>, ConfigError> {
        match &self.captures_dir {
            None => Ok(None),
            Some(d) if d.is_absolute() => Ok(Some(d.clone())),
            Some(d) => Err(ConfigError::Invalid {
                key: "store.captures_dir",
                value: d.display().to_string(),
                why: "give an absolute path, e.g. /srv/honeybee/captures".into(),
            }),
        }
    }

    pub fn validate(&self) -> Result<StoreConfig, ConfigError> {
        let url = self.url.trim();
        if url.is_empty() {
            if self.password_file.is_some() {
                return Err(ConfigError::Invalid {
                    key: "store.password_file",
                    value: String::new(),
                    why: "only a PostgreSQL store (store.url) takes a password".into(),
                });
            }
            return Ok(StoreConfig::Sqlite);
        }
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError::Invalid {
                key: "store.url",
                value: url.into(),
                why: "expected postgres://USER@HOST:PORT/DATABASE, or \"\" for SQLite".into(),
            });
        }
        if url_has_password(url) {
            return Err(ConfigError::Invalid {
                key: "store.url",
                value: "(not shown: it holds a password)".into(),
                why: "keep the password out of core.toml's URL: set HONEYBEE_STORE_PASSWORD or \
                      store.password_file"
                    .into(),
            });
        }
        Ok(StoreConfig::Postgres {
            url: url.into(),
            password_file: self.password_file.clone(),
        })
    }
}

/// Whether a `postgres://` URL carries `user:password@`.
fn url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// The validated `[store]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    Sqlite,
    Postgres {
        url: String,
        password_file: Option<PathBuf>,
    },
}

impl StoreConfig {
    /// The PostgreSQL password: `HONEYBEE_STORE_PASSWORD`, else the first line of the
    /// password file, else none.
    pub fn password(&self) -> Result<Option<String>, String> {
        let StoreConfig::Postgres { password_file, .. } = self else {
            return Ok(None);
        };
        if let Ok(p) = std::env::var("HONEYBEE_STORE_PASSWORD")
            && !p.is_empty()
        {
            return Ok(Some(p));
        }
        match password_file {
            Some(f) => std::fs::read_to_string(f)
                .map(|s| Some(s.lines().next().unwrap_or("").to_owned()))
                .map_err(|e| format!("cannot read store.password_file {}: {e}", f.display())),
            None => Ok(None),
        }
    }
}

/// `[metrics]` of `core.toml` (and of `agent.toml`, which has its own copy of this type).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// TCP `IP:PORT` of `/metrics`; empty (the default) turns metrics off.
    #[serde(default)]
    pub listen: String,
    /// Allow an address other than loopback. The endpoint has no authentication and
    /// tells whoever asks how many sensors there are and how busy they are.
    #[serde(default)]
    pub allow_non_loopback: bool,
}

impl RawMetrics {
    pub fn is_off(&self) -> bool {
        self.listen.trim().is_empty() && !self.allow_non_loopback
    }

    /// The address to serve on, `None` when off; refuses a non-loopback one unless
    /// `allow_non_loopback`.
    pub fn validate(&self) -> Result<Option<SocketAddr>, ConfigError> {
        let v = self.listen.trim();
        if v.is_empty() {
            return Ok(None);
        }
        let a: SocketAddr = v.parse().map_err(|e| ConfigError::Invalid {
            key: "metrics.listen",
            value: v.into(),
            why: format!("{e}; expected IP:PORT such as 127.0.0.1:9464, or \"\" to disable"),
        })?;
        if !a.ip().is_loopback() && !self.allow_non_loopback {
            return Err(ConfigError::Invalid {
                key: "metrics.listen",
                value: v.into(),
                why: "metrics have no authentication: keep them on loopback, or set \
                      metrics.allow_non_loopback = true behind a firewall"
                    .into(),
            });
        }
        Ok(Some(a))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModules {
    /// TCP address of the module shim; empty disables it. Loopback by default: modules
    /// elsewhere should use QUIC with a module certificate.
    #[serde(default = "d_shim")]
    pub shim_listen: String,
    #[serde(default = "d_mod_conns")]
    pub max_connections: u32,
    #[serde(default = "d_mod_conns_src")]
    pub max_connections_per_source: u32,
    /// Wrap the shim in TLS (the core's certificate). Required when `shim_listen` is not
    /// a loopback address.
    #[serde(default)]
    pub shim_tls: bool,
}

impl Default for RawModules {
    fn default() -> Self {
        RawModules {
            shim_listen: d_shim(),
            max_connections: d_mod_conns(),
            max_connections_per_source: d_mod_conns_src(),
            shim_tls: false,
        }
    }
}

fn d_shim() -> String {
    "127.0.0.1:7444".into()
}
fn d_mod_conns() -> u32 {
    256
}
fn d_mod_conns_src() -> u32 {
    128
}

/// `[scan_correlation]`: one source probing many nodes within a window becomes one
/// network-wide `scan_detected` event (node `core`, service `correlator`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScanCorrelation {
    /// Distinct nodes a source must touch within `window_ms`; 0 turns correlation off.
    #[serde(default = "d_sweep_nodes")]
    pub min_nodes: u32,
    /// Sliding window, and the quiet time that ends a network scan.
    #[serde(default = "d_sweep_window")]
    pub window_ms: u64,
}

impl Default for RawScanCorrelation {
    fn default() -> Self {
        RawScanCorrelation {
            min_nodes: d_sweep_nodes(),
            window_ms: d_sweep_window(),
        }
    }
}

fn d_sweep_nodes() -> u32 {
    3
}
fn d_sweep_window() -> u64 {
    60_000
}

/// A `[[module]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModule {
    pub name: String,
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub permissions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCerts {
    #[serde(default = "d_agent_lifetime")]
    pub agent_lifetime: String,
    #[serde(default = "d_admin_lifetime")]
    pub admin_lifetime: String,
    #[serde(default = "d_core_lifetime")]
    pub core_lifetime: String,
}

impl Default for RawCerts {
    fn default() -> Self {
        RawCerts {
            agent_lifetime: d_agent_lifetime(),
            admin_lifetime: d_admin_lifetime(),
            core_lifetime: d_core_lifetime(),
        }
    }
}

fn d_agent_lifetime() -> String {
    "24h".into()
}
fn d_admin_lifetime() -> String {
    "365days".into()
}
fn d_core_lifetime() -> String {
    "365days".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    #[serde(default = "d_max_connections")]
    pub max_connections: u32,
    #[serde(default = "d_enroll_failures")]
    pub enroll_failures_per_minute: u32,
    #[serde(default = "d_max_capture")]
    pub max_capture_bytes: u64,
    #[serde(default = "d_streams")]
    pub max_streams_per_node: u32,
    /// Audit log retention: rows kept at most (the oldest go first).
    #[serde(default = "d_audit_rows")]
    pub audit_max_rows: u64,
    /// Audit log retention: rows older than this go (`90days`, `1y`).
    #[serde(default = "d_audit_age")]
    pub audit_max_age: String,
    /// Certificate renewals one node may ask for per hour (at least twice what the agent
    /// certificate lifetime needs: 3 h / lifetime).
    #[serde(default = "d_renewals")]
    pub node_renewals_per_hour: u32,
    /// Telemetry events one node may send per second, sustained; past it the core holds
    /// the node's batches (and acks) back, so the agent's spool waits.
    #[serde(default = "d_events_rate")]
    pub node_events_per_second: u32,
    /// Events one node may send at once above that rate (a backlog after an outage).
    #[serde(default = "d_events_burst")]
    pub node_event_burst: u32,
    /// Capture bytes one node may upload per hour; past it uploads are refused.
    #[serde(default = "d_capture_rate")]
    pub node_capture_bytes_per_hour: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            max_connections: d_max_connections(),
            enroll_failures_per_minute: d_enroll_failures(),
            max_capture_bytes: d_max_capture(),
            max_streams_per_node: d_streams(),
            audit_max_rows: d_audit_rows(),
            audit_max_age: d_audit_age(),
            node_renewals_per_hour: d_renewals(),
            node_events_per_second: d_events_rate(),
            node_event_burst: d_events_burst(),
            node_capture_bytes_per_hour: d_capture_rate(),
        }
    }
}

fn d_audit_rows() -> u64 {
    1_000_000
}
fn d_audit_age() -> String {
    "180days".into()
}
fn d_renewals() -> u32 {
    crate::budget::BudgetConfig::default().renewals_per_hour
}
fn d_events_rate() -> u32 {
    crate::budget::BudgetConfig::default().events_per_second
}
fn d_events_burst() -> u32 {
    crate::budget::BudgetConfig::default().event_burst
}
fn d_capture_rate() -> u64 {
    crate::budget::BudgetConfig::default().capture_bytes_per_hour
}

fn d_max_connections() -> u32 {
    10_000
}
fn d_enroll_failures() -> u32 {
    5
}
fn d_max_capture() -> u64 {
    honeybee_proto::capture::DEFAULT_MAX_CAPTURE_BYTES
}
fn d_streams() -> u32 {
    64
}

/// One default service, in the shape people write: the common keys, and the options of
/// its kind (checked against that kind's options, so a misspelt key is an error).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawService {
    pub name: String,
    /// `ssh`, `telnet`, `http`, `ftp`, `redis`, `mysql`, `modbus`, `smtp`, `banner`,
    /// `extension`, `detectors` or `aggregator`.
    pub kind: String,
    pub listen: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The kind's options (see `configs/services.toml`); absent ones take their defaults.
    #[serde(flatten)]
    pub options: toml::Table,
}

fn yes() -> bool {
    true
}

/// Why a configuration could not be used; says which key and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read {path}: {source} (run `honeybee core init --data-dir …` first?)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key} = {value:?} is not valid: {why}")]
    Invalid {
        key: &'static str,
        value: String,
        why: String,
    },
}

/// The validated configuration the core runs on.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub data_dir: PathBuf,
    pub trust_domain: String,
    pub listen: SocketAddr,
    pub advertise: String,
    pub agent_cert_lifetime: Duration,
    pub admin_cert_lifetime: Duration,
    pub core_cert_lifetime: Duration,
    pub max_connections: u32,
    pub enroll_failures_per_minute: u32,
    pub max_capture_bytes: u64,
    pub max_streams_per_node: u32,
    /// Audit retention: most rows kept, and the oldest age kept.
    pub audit_max_rows: u64,
    pub audit_max_age: Duration,
    /// Per-node budgets (renewals, events, capture bytes).
    pub node_budgets: crate::budget::BudgetConfig,
    pub default_node_config: NodeConfig,
    /// None: the shim is off.
    pub shim_listen: Option<SocketAddr>,
    pub module_max_connections: u32,
    pub module_max_connections_per_source: u32,
    pub shim_tls: bool,
    pub managed_modules: Vec<honeybee_proto::admin::ModuleSpec>,
    /// None: cross-node scan correlation is off.
    pub scan_correlation: Option<crate::sweep::SweepConfig>,
    /// Where `/metrics` is served (`[metrics] listen`); None: off.
    pub metrics_listen: Option<SocketAddr>,
    /// Where the data lives (`[store]`).
    pub store: StoreConfig,
    /// Events older than this are deleted (`[store] retain_events`); None: kept.
    pub retain_events: Option<Duration>,
    /// Captures' contents (`[store] captures_dir`); None: the data directory's `captures/`.
    pub captures_dir: Option<PathBuf>,
    /// A node lease's time to live (`[store] lease_ttl`; PostgreSQL, see `cluster/`).
    pub lease_ttl: Duration,
    /// The session timers (production defaults; not in the TOML file: tests and netsim
    /// scenarios compress them, see `honeybee_proto::timing`).
    pub timing: honeybee_proto::timing::Timing,
}

/// The longest `[store] lease_ttl`: a crashed core's nodes would stay marked online that
/// long.
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(600);

fn duration(key: &'static str, v: &str) -> Result<Duration, ConfigError> {
    let d = humantime::parse_duration(v).map_err(|e| ConfigError::Invalid {
        key,
        value: v.into(),
        why: format!("{e} (examples: 90s, 15m, 24h, 30days)"),
    })?;
    if d < Duration::from_secs(3) {
        return Err(ConfigError::Invalid {
            key,
            value: v.into(),
            why: "must be at least 3s".into(),
        });
    }
    Ok(d)
}

impl RawCoreConfig {
    /// The defaults `core init` writes.
    pub fn new(trust_domain: &str, listen: SocketAddr, advertise: &str) -> Self {
        let host = if listen.ip().is_loopback() {
            listen.ip().to_string()
        } else {
            "0.0.0.0".into()
        };
        RawCoreConfig {
            trust_domain: trust_domain.into(),
            listen: listen.to_string(),
            advertise: advertise.into(),
            certs: RawCerts::default(),
            limits: RawLimits::default(),
            profile: Some(Profile::DEFAULT.name().into()),
            profile_address: Some(host),
            default_services: Vec::new(),
            modules: RawModules::default(),
            scan_correlation: RawScanCorrelation::default(),
            managed_modules: Vec::new(),
            metrics: RawMetrics::default(),
            store: RawStore::default(),
        }
    }

    pub fn validate(self, data_dir: &Path) -> Result<CoreConfig, ConfigError> {
        let listen: SocketAddr = self.listen.parse().map_err(|e| ConfigError::Invalid {
            key: "listen",
            value: self.listen.clone(),
            why: format!("{e}; expected IP:PORT such as 0.0.0.0:7443"),
        })?;
        // The same syntax tokens carry: HOST:PORT, [v6]:PORT, or srv:DOMAIN (SRV lookup).
        honeybee_pki::token::validate_addr(&self.advertise).map_err(|e| ConfigError::Invalid {
            key: "advertise",
            value: self.advertise.clone(),
            why: e.to_string(),
        })?;
        // No profile and no list (a core.toml from before profiles without services):
        // the default profile.
        let profile = match (&self.profile, self.default_services.is_empty()) {
            (None, true) => Some(Profile::DEFAULT.name().to_owned()),
            (p, _) => p.clone(),
        };
        let base = profile_services(
            "profile",
            profile.as_deref(),
            self.profile_address.as_deref(),
        )?;
        let mut services = Vec::new();
        for s in self.default_services {
            services.push(raw_service(s)?);
        }
        let default_node_config = NodeConfig {
            services: honeybee_proto::profile::overlay(base, services),
        };
        default_node_config
            .validate()
            .map_err(|e| ConfigError::Invalid {
                key: "default_services",
                value: e.service.clone(),
                why: e.why,
            })?;
        if self.limits.max_connections == 0 {
            return Err(ConfigError::Invalid {
                key: "limits.max_connections",
                value: "0".into(),
                why: "must be at least 1".into(),
            });
        }
        let shim_listen = match self.modules.shim_listen.trim() {
            "" => None,
            a => Some(a.parse::<SocketAddr>().map_err(|e| ConfigError::Invalid {
                key: "modules.shim_listen",
                value: a.into(),
                why: format!("{e}; expected IP:PORT such as 127.0.0.1:7444, or \"\" to disable"),
            })?),
        };
        if let Some(a) = shim_listen
            && !a.ip().is_loopback()
            && !self.modules.shim_tls
        {
            return Err(ConfigError::Invalid {
                key: "modules.shim_listen",
                value: a.to_string(),
                why: "a shim bound beyond loopback must use TLS: set modules.shim_tls = true"
                    .into(),
            });
        }
        let mut managed_modules = Vec::new();
        for m in self.managed_modules {
            honeybee_proto::NodeId::new(m.name.clone()).map_err(|e| ConfigError::Invalid {
                key: "module.name",
                value: m.name.clone(),
                why: e.why.into(),
            })?;
            for p in &m.permissions {
                if honeybee_proto::module::Permission::parse(p).is_none() {
                    return Err(ConfigError::Invalid {
                        key: "module.permissions",
                        value: p.clone(),
                        why: "known: events:read, nodes:read, nodes:command, alerts:write, enrich:write, captures:read".into(),
                    });
                }
            }
            managed_modules.push(honeybee_proto::admin::ModuleSpec {
                name: m.name,
                command: m.command,
                args: m.args,
                permissions: m.permissions,
            });
        }
        let l = &self.limits;
        let at_least = |key: &'static str, v: u64, min: u64| {
            if v < min {
                Err(ConfigError::Invalid {
                    key,
                    value: v.to_string(),
                    why: format!("must be at least {min}"),
                })
            } else {
                Ok(())
            }
        };
        at_least("limits.audit_max_rows", l.audit_max_rows, 1_000)?;
        at_least(
            "limits.node_renewals_per_hour",
            l.node_renewals_per_hour.into(),
            1,
        )?;
        at_least(
            "limits.node_events_per_second",
            l.node_events_per_second.into(),
            1,
        )?;
        at_least("limits.node_event_burst", l.node_event_burst.into(), 1)?;
        // One capture of the largest size allowed must fit in a node's hour.
        at_least(
            "limits.node_capture_bytes_per_hour",
            l.node_capture_bytes_per_hour,
            l.max_capture_bytes,
        )?;
        let audit_max_age = duration("limits.audit_max_age", &l.audit_max_age)?;
        let agent_cert_lifetime = duration("certs.agent_lifetime", &self.certs.agent_lifetime)?;
        // An honest agent renews at about 2/3 of its certificate's lifetime; the budget
        // always allows twice that, so short lifetimes (tests, cautious deployments) are
        // never refused their renewals.
        let honest_renewals = (3 * 3600 / agent_cert_lifetime.as_secs().max(1)).max(1);
        let node_budgets = crate::budget::BudgetConfig {
            renewals_per_hour: l
                .node_renewals_per_hour
                .max(u32::try_from(honest_renewals).unwrap_or(u32::MAX)),
            events_per_second: l.node_events_per_second,
            event_burst: l.node_event_burst,
            capture_bytes_per_hour: l.node_capture_bytes_per_hour,
        };
        let audit_max_rows = l.audit_max_rows;
        let sc = &self.scan_correlation;
        let scan_correlation = match sc.min_nodes {
            0 => None,
            2..=256 if (1_000..=3_600_000).contains(&sc.window_ms) => {
                Some(crate::sweep::SweepConfig {
                    min_nodes: sc.min_nodes as usize,
                    window_ms: sc.window_ms,
                    ..Default::default()
                })
            }
            _ => {
                return Err(ConfigError::Invalid {
                    key: "scan_correlation",
                    value: format!("min_nodes = {}, window_ms = {}", sc.min_nodes, sc.window_ms),
                    why: "min_nodes is 0 (off) or 2 to 256; window_ms is 1000 to 3600000".into(),
                });
            }
        };
        Ok(CoreConfig {
            metrics_listen: self.metrics.validate()?,
            store: self.store.validate()?,
            retain_events: self.store.retain_events()?,
            captures_dir: self.store.captures_dir()?,
            lease_ttl: self.store.lease_ttl()?,
            scan_correlation,
            shim_listen,
            module_max_connections: self.modules.max_connections.max(1),
            module_max_connections_per_source: self.modules.max_connections_per_source.max(1),
            managed_modules,
            shim_tls: self.modules.shim_tls,
            data_dir: data_dir.to_owned(),
            trust_domain: self.trust_domain,
            listen,
            advertise: self.advertise,
            agent_cert_lifetime,
            admin_cert_lifetime: duration("certs.admin_lifetime", &self.certs.admin_lifetime)?,
            core_cert_lifetime: duration("certs.core_lifetime", &self.certs.core_lifetime)?,
            max_connections: self.limits.max_connections,
            enroll_failures_per_minute: self.limits.enroll_failures_per_minute.max(1),
            max_capture_bytes: self.limits.max_capture_bytes,
            max_streams_per_node: self.limits.max_streams_per_node.max(4),
            audit_max_rows,
            audit_max_age,
            node_budgets,
            default_node_config,
            timing: honeybee_proto::timing::Timing::default(),
        })
    }
}

/// `"8000-8100,9000"` → ranges. Bounds are checked by `NodeConfig::validate`.
pub fn parse_ports(v: &str) -> Result<Vec<PortRange>, ConfigError> {
    let bad = |why: &str| ConfigError::Invalid {
        key: "service.ports",
        value: v.into(),
        why: why.into(),
    };
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .map_err(|_| bad("expected ports 1-65535 like \"8000-8100,9000\""))
    };
    let mut out = Vec::new();
    for part in v.split(',').filter(|p| !p.trim().is_empty()) {
        let (start, end) = match part.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => {
                let p = port(part)?;
                (p, p)
            }
        };
        out.push(PortRange { start, end });
    }
    if out.is_empty() {
        return Err(bad("no ports"));
    }
    Ok(out)
}

/// An extension service's options as written: ports as `"8000-8100,9000"`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawExtension {
    ports: String,
    banner: Option<String>,
    max_capture_bytes: Option<u32>,
    read_timeout_ms: Option<u32>,
    recheck_s: Option<u32>,
    scan_min_ports: Option<u32>,
    scan_window_ms: Option<u32>,
}

fn raw_service(s: RawService) -> Result<ServiceConfig, ConfigError> {
    // An extension service's listen is just its bind address; `IP` means `IP:0`.
    let listen_text = match s.listen.parse::<std::net::IpAddr>() {
        Ok(ip) if s.kind == "extension" || s.kind == "detectors" => {
            SocketAddr::new(ip, 0).to_string()
        }
        _ => s.listen.clone(),
    };
    let listen: SocketAddr = listen_text.parse().map_err(|e| ConfigError::Invalid {
        key: "service.listen",
        value: s.listen.clone(),
        why: format!("{e}; expected IP:PORT such as 0.0.0.0:2222"),
    })?;
    fn opts<T: serde::de::DeserializeOwned>(
        s: &RawService,
        table: toml::Table,
    ) -> Result<T, ConfigError> {
        T::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError::Invalid {
            key: "service",
            value: s.name.clone(),
            why: format!("{} options: {}", s.kind, e.to_string().trim()),
        })
    }
    let table = s.options.clone();
    let kind = match s.kind.as_str() {
        "ssh" => ServiceKind::Ssh(opts(&s, table)?),
        "banner" => ServiceKind::Banner(opts(&s, table)?),
        "smtp" => ServiceKind::Smtp(opts(&s, table)?),
        "telnet" => ServiceKind::Telnet(opts(&s, table)?),
        "http" => ServiceKind::Http(opts(&s, table)?),
        "ftp" => ServiceKind::Ftp(opts(&s, table)?),
        "redis" => ServiceKind::Redis(opts(&s, table)?),
        "mysql" => ServiceKind::Mysql(opts(&s, table)?),
        "modbus" => ServiceKind::Modbus(opts(&s, table)?),
        "detectors" => ServiceKind::Detectors(opts(&s, table)?),
        "aggregator" => ServiceKind::Aggregator(opts(&s, table)?),
        "extension" => {
            let r: RawExtension = opts(&s, table)?;
            let d = ExtensionOptions::default();
            ServiceKind::Extension(ExtensionOptions {
                ports: parse_ports(&r.ports)?,
                banner: r.banner.unwrap_or_default(),
                max_capture_bytes: r.max_capture_bytes.unwrap_or(d.max_capture_bytes),
                read_timeout_ms: r.read_timeout_ms.unwrap_or(d.read_timeout_ms),
                recheck_s: r.recheck_s.unwrap_or(d.recheck_s),
                scan_min_ports: r.scan_min_ports.unwrap_or(d.scan_min_ports),
                scan_window_ms: r.scan_window_ms.unwrap_or(d.scan_window_ms),
            })
        }
        other => {
            return Err(ConfigError::Invalid {
                key: "service.kind",
                value: other.into(),
                why: "supported kinds: ssh, telnet, http, ftp, redis, mysql, modbus, smtp, banner, extension, detectors, aggregator".into(),
            });
        }
    };
    Ok(ServiceConfig {
        name: s.name,
        listen,
        enabled: s.enabled,
        kind,
    })
}

/// A profile's services on `address` (default `0.0.0.0`); none without a profile.
fn profile_services(
    key: &'static str,
    profile: Option<&str>,
    address: Option<&str>,
) -> Result<Vec<ServiceConfig>, ConfigError> {
    let Some(name) = profile else {
        return Ok(Vec::new());
    };
    let profile = Profile::parse(name).map_err(|e| ConfigError::Invalid {
        key,
        value: name.to_owned(),
        why: e.to_string(),
    })?;
    let address = address.unwrap_or("0.0.0.0");
    let host = address
        .parse::<std::net::IpAddr>()
        .map_err(|e| ConfigError::Invalid {
            key: "profile_address",
            value: address.to_owned(),
            why: format!("{e}; expected an IP address such as 0.0.0.0"),
        })?;
    Ok(profile.services(host))
}

/// A service list file (`[[service]]` tables, see `configs/services.toml`) as a node
/// config: the services of its `profile`, if it names one, with the listed ones laid
/// over them (a listed service replaces the profile's of the same name).
pub fn services_from_toml(text: &str) -> Result<NodeConfig, ConfigError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        #[serde(default)]
        profile: Option<String>,
        #[serde(default)]
        profile_address: Option<String>,
        #[serde(default)]
        service: Vec<RawService>,
    }
    let file: File = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: PathBuf::from("services file"),
        message: e.to_string(),
    })?;
    let base = profile_services(
        "profile",
        file.profile.as_deref(),
        file.profile_address.as_deref(),
    )?;
    let services = file
        .service
        .into_iter()
        .map(raw_service)
        .collect::<Result<Vec<_>, _>>()?;
    let cfg = NodeConfig {
        services: honeybee_proto::profile::overlay(base, services),
    };
    cfg.validate().map_err(|e| ConfigError::Invalid {
        key: "service",
        value: e.service.clone(),
        why: e.why,
    })?;
    Ok(cfg)
}

/// A node config in the `[[service]]` shape [`services_from_toml`] reads, so an operator
/// (or the dashboard's editor) can change it and send it back.
pub fn services_to_toml(cfg: &NodeConfig) -> Result<String, ConfigError> {
    #[derive(Serialize)]
    struct File {
        service: Vec<RawService>,
    }
    let bad = |name: &str, e: &dyn std::fmt::Display| ConfigError::Invalid {
        key: "service",
        value: name.to_owned(),
        why: format!("cannot be written as TOML: {e}"),
    };
    fn table<T: Serialize>(v: &T) -> Result<toml::Table, toml::ser::Error> {
        toml::Table::try_from(v)
    }
    let mut service = Vec::new();
    for s in &cfg.services {
        let options = match &s.kind {
            ServiceKind::Ssh(o) => table(o),
            ServiceKind::Banner(o) => table(o),
            ServiceKind::Telnet(o) => table(o),
            ServiceKind::Http(o) => table(o),
            ServiceKind::Ftp(o) => table(o),
            ServiceKind::Redis(o) => table(o),
            ServiceKind::Mysql(o) => table(o),
            ServiceKind::Modbus(o) => table(o),
            ServiceKind::Smtp(o) => table(o),
            ServiceKind::Detectors(o) => table(o),
            ServiceKind::Aggregator(o) => table(o),
            ServiceKind::Extension(o) => table(o).map(|mut t| {
                let ports: Vec<String> = o
                    .ports
                    .iter()
                    .map(|r| {
                        if r.start == r.end {
                            r.start.to_string()
                        } else {
                            format!("{}-{}", r.start, r.end)
                        }
                    })
                    .collect();
                t.insert("ports".into(), toml::Value::String(ports.join(",")));
                t
            }),
            other => {
                return Err(bad(
                    &s.name,
                    &format!("kind {} is not known here", other.name()),
                ));
            }
        }
        .map_err(|e| bad(&s.name, &e))?;
        let listen = match s.kind {
            ServiceKind::Extension(_) | ServiceKind::Detectors(_) => s.listen.ip().to_string(),
            _ => s.listen.to_string(),
        };
        service.push(RawService {
            name: s.name.clone(),
            kind: s.kind.name().into(),
            listen,
            enabled: s.enabled,
            options,
        });
    }
    toml::to_string(&File { service }).map_err(|e| bad("*", &e))
}

/// Loads and validates `D/core.toml`.
pub fn load(data_dir: &Path) -> Result<CoreConfig, ConfigError> {
    let path = data_dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let raw: RawCoreConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.clone(),
        message: e.to_string(),
    })?;
    raw.validate(data_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented example service list is a valid one, every option it sets included.
    #[test]
    fn the_documented_service_list_validates() {
        let text = include_str!("../../configs/services.toml");
        let cfg = services_from_toml(text).expect("configs/services.toml is valid");
        assert!(cfg.services.len() >= 9, "{}", cfg.services.len());
    }

    #[test]
    fn defaults_validate() {
        let raw = RawCoreConfig::new(
            "example.org",
            "127.0.0.1:7443".parse().unwrap(),
            "127.0.0.1:7443",
        );
        let text = toml::to_string(&raw).unwrap();
        let back: RawCoreConfig = toml::from_str(&text).unwrap();
        let c = back.validate(Path::new("/tmp")).unwrap();
        assert_eq!(c.agent_cert_lifetime, Duration::from_secs(86400));
        // A new core's nodes run the default profile, on the core's loopback address.
        let kinds: Vec<&str> = c
            .default_node_config
            .services
            .iter()
            .map(|s| s.kind.name())
            .collect();
        assert_eq!(kinds, ["ssh", "http", "http", "ftp", "redis", "mysql"]);
        assert!(c.default_node_config.services[0].listen.ip().is_loopback());
    }

    #[test]
    fn shipped_examples_are_valid() {
        let raw: RawCoreConfig = toml::from_str(include_str!("../../configs/core.toml")).unwrap();
        let c = raw.validate(Path::new("/tmp")).unwrap();
        assert_eq!(c.advertise, "core.example.org:7443");
        let svc = services_from_toml(include_str!("../../configs/services.toml")).unwrap();
        assert_eq!(svc.services.len(), 12);
        let kinds: Vec<&str> = svc.services.iter().map(|s| s.kind.name()).collect();
        assert_eq!(
            kinds,
            [
                "ssh",
                "telnet",
                "http",
                "http",
                "ftp",
                "redis",
                "mysql",
                "modbus",
                "smtp",
                "extension",
                "detectors",
                "aggregator"
            ]
        );
        let ServiceKind::Telnet(t) = &svc.services[1].kind else {
            panic!("the second example is telnet");
        };
        assert!(t.login.accepts(0, "root", "xc3511") && !t.login.accepts(5, "root", "x"));
        let ServiceKind::Http(h) = &svc.services[3].kind else {
            panic!("the fourth example is https");
        };
        assert!(h.tls);
        let ServiceKind::Extension(ext) = &svc.services[9].kind else {
            panic!("the last example is an extension service");
        };
        assert!(!svc.services[9].enabled);
        assert_eq!(ext.port_list().len(), 101 + 1);
        let ServiceKind::Aggregator(agg) = &svc.services[11].kind else {
            panic!("the twelfth example is an aggregator");
        };
        assert!(!svc.services[11].enabled);
        assert_eq!(agg.devices.len(), 3);
        assert_eq!(
            agg.device("::ffff:192.168.1.41".parse().unwrap())
                .map(|d| d.name.as_str()),
            Some("cam-lobby"),
            "a v4-mapped sender is its IPv4 device"
        );
    }

    #[test]
    fn services_toml_round_trips() {
        let raw = RawCoreConfig::new("x", "127.0.0.1:7443".parse().unwrap(), "h:1");
        let c = raw.validate(Path::new("/tmp")).unwrap();
        let mut cfg = c.default_node_config.clone();
        cfg.services.extend(
            services_from_toml(include_str!("../../configs/services.toml"))
                .unwrap()
                .services,
        );
        let mut names = std::collections::HashSet::new();
        cfg.services.retain(|s| names.insert(s.name.clone()));
        let text = services_to_toml(&cfg).unwrap();
        assert_eq!(services_from_toml(&text).unwrap(), cfg, "{text}");
    }

    #[test]
    fn service_options_are_checked_by_kind() {
        let err = services_from_toml(
            "[[service]]\nname = \"f\"\nkind = \"ftp\"\nlisten = \"127.0.0.1:0\"\nbanerr = \"x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("banerr"), "{err}");
        let err = services_from_toml(
            "[[service]]\nname = \"s\"\nkind = \"gopher\"\nlisten = \"127.0.0.1:0\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("supported kinds"), "{err}");
        let ok = services_from_toml(
            "[[service]]\nname = \"r\"\nkind = \"redis\"\nlisten = \"127.0.0.1:0\"\nrequire_auth = true\nlogin = { credentials = [[\"default\", \"s3cret\"]] }\n",
        )
        .unwrap();
        let ServiceKind::Redis(r) = &ok.services[0].kind else {
            panic!("redis");
        };
        assert!(r.require_auth && r.login.accepts(0, "default", "s3cret"));
    }

    /// A profile expands to its services; listed services replace those of the same name
    /// or are added; an unknown profile is refused with the list of known ones; a
    /// core.toml without profile and services runs the default profile.
    #[test]
    fn profiles_expand_and_listed_services_override() {
        let text = "profile = \"router\"\nprofile_address = \"127.0.0.1\"\n\
            [[service]]\nname = \"telnet\"\nkind = \"telnet\"\nlisten = \"127.0.0.1:23\"\n\
            [[service]]\nname = \"http\"\nkind = \"http\"\nlisten = \"127.0.0.1:8081\"\nenabled = false\n\
            [[service]]\nname = \"ssh\"\nkind = \"ssh\"\nlisten = \"127.0.0.1:22\"\n";
        let cfg = services_from_toml(text).unwrap();
        let names: Vec<(&str, u16, bool)> = cfg
            .services
            .iter()
            .map(|s| (s.name.as_str(), s.listen.port(), s.enabled))
            .collect();
        assert_eq!(
            names,
            [
                ("telnet", 23, true),
                ("http", 8081, false),
                ("ssh", 22, true)
            ]
        );
        let e = services_from_toml("profile = \"workstation\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("profile") && e.contains("linux-server, router, ics or all"),
            "{e}"
        );
        let ics = services_from_toml("profile = \"ics\"\n").unwrap();
        assert_eq!(ics.services.len(), 2);
        assert!(ics.services[0].listen.ip().is_unspecified());

        let mut raw = RawCoreConfig::new("x", "127.0.0.1:7443".parse().unwrap(), "h:1");
        raw.profile = None;
        raw.profile_address = None;
        let c = raw.clone().validate(Path::new("/tmp")).unwrap();
        assert_eq!(c.default_node_config.services.len(), 6);
        raw.profile = Some("all".into());
        let c = raw.clone().validate(Path::new("/tmp")).unwrap();
        assert_eq!(c.default_node_config.services.len(), 10);
        raw.profile = Some("nope".into());
        let e = raw.validate(Path::new("/tmp")).unwrap_err().to_string();
        assert!(e.contains("profile = \"nope\""), "{e}");
    }

    /// A profile's services written out as `[[default_services]]` (as the e2e harness
    /// does, on free ports) read back as the same services.
    #[test]
    fn a_profile_listed_as_default_services_reads_back() {
        let raw = RawCoreConfig::new("x", "127.0.0.1:7443".parse().unwrap(), "h:1");
        let mut text = toml::to_string(&raw).unwrap();
        let mut all = NodeConfig {
            services: Profile::All.services(std::net::IpAddr::from([127, 0, 0, 1])),
        };
        for s in &mut all.services {
            s.listen.set_port(0);
        }
        let listed = services_to_toml(&all)
            .unwrap()
            .replace("[[service]]", "[[default_services]]")
            .replace("[service.", "[default_services.");
        text = text.replace("profile = \"linux-server\"", "profile = \"all\"");
        text.push('\n');
        text.push_str(&listed);
        let raw: RawCoreConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let c = raw.validate(Path::new("/tmp")).unwrap();
        assert_eq!(c.default_node_config, all);
    }

    #[test]
    fn extension_ports_parse() {
        let r = parse_ports("8000-8002, 9000,").unwrap();
        assert_eq!(
            r,
            vec![
                PortRange {
                    start: 8000,
                    end: 8002
                },
                PortRange {
                    start: 9000,
                    end: 9000
                }
            ]
        );
        for bad in ["", "x", "1-", "70000", "1-2-3"] {
            assert!(parse_ports(bad).is_err(), "{bad}");
        }
        let text = "[[service]]\nname = \"e\"\nkind = \"extension\"\nlisten = \"127.0.0.1\"\nports = \"1-2000\"\n";
        let e = services_from_toml(text).unwrap_err().to_string();
        assert!(e.contains("1024"), "{e}");
    }

    /// `[store] lease_ttl`: 30 s by default, 3 s to 10 min, refused outside naming the key.
    #[test]
    fn lease_ttl_has_bounds() {
        let mut raw = RawCoreConfig::new("x", "127.0.0.1:7443".parse().unwrap(), "h:1");
        let ttl =
            |raw: &RawCoreConfig| raw.clone().validate(Path::new("/tmp")).map(|c| c.lease_ttl);
        assert_eq!(ttl(&raw).unwrap(), Duration::from_secs(30));
        for (v, ok) in [
            ("3s", true),
            ("10m", true),
            ("2s", false),
            ("11m", false),
            ("x", false),
        ] {
            raw.store.lease_ttl = Some(v.into());
            match ttl(&raw) {
                Ok(d) => assert!(ok, "{v} accepted as {d:?}"),
                Err(e) => {
                    assert!(!ok, "{v} refused: {e}");
                    assert!(e.to_string().contains("store.lease_ttl"), "{e}");
                }
            }
        }
    }

    /// `[store] captures_dir` is taken when absolute, refused (naming the key) when
    /// relative, and absent by default (the data directory's `captures/`).
    #[test]
    fn captures_dir_must_be_absolute() {
        let mut raw = RawCoreConfig::new("x", "127.0.0.1:7443".parse().unwrap(), "h:1");
        assert_eq!(
            raw.clone()
                .validate(Path::new("/tmp"))
                .unwrap()
                .captures_dir,
            None
        );
        raw.store.captures_dir = Some("shared/captures".into());
        let e = raw
            .clone()
            .validate(Path::new("/tmp"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("store.captures_dir"), "{e}");
        let text = toml::to_string(&raw)
            .unwrap()
            .replace("\"shared/captures\"", "\"/srv/hb/captures\"");
        let raw: RawCoreConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            raw.validate(Path::new("/tmp")).unwrap().captures_dir,
            Some(PathBuf::from("/srv/hb/captures"))
        );
    }

    #[test]
    fn bad_values_say_which_key() {
        let mut raw = RawCoreConfig::new("x", "127.0.0.1:7443".parse().unwrap(), "h:1");
        raw.certs.agent_lifetime = "soon".into();
        let e = raw.validate(Path::new("/tmp")).unwrap_err().to_string();
        assert!(e.contains("certs.agent_lifetime"), "{e}");
        let mut raw = RawCoreConfig::new("x", "127.0.0.1:7443".parse().unwrap(), "h:1");
        raw.limits.node_capture_bytes_per_hour = 10;
        let e = raw.validate(Path::new("/tmp")).unwrap_err().to_string();
        assert!(e.contains("limits.node_capture_bytes_per_hour"), "{e}");
    }

    /// Retention and budgets have defaults, and a core.toml written before they existed
    /// still loads with them.
    #[test]
    fn limits_default_when_absent() {
        let raw = RawCoreConfig::new("x", "127.0.0.1:7443".parse().unwrap(), "h:1");
        let mut text = toml::to_string(&raw).unwrap();
        for key in [
            "audit_max_rows",
            "audit_max_age",
            "node_renewals_per_hour",
            "node_events_per_second",
            "node_event_burst",
            "node_capture_bytes_per_hour",
        ] {
            let line = text
                .lines()
                .find(|l| l.starts_with(key))
                .unwrap()
                .to_owned();
            text = text.replace(&format!("{line}\n"), "");
        }
        let c = toml::from_str::<RawCoreConfig>(&text)
            .unwrap()
            .validate(Path::new("/tmp"))
            .unwrap();
        assert_eq!(c.audit_max_rows, 1_000_000);
        assert_eq!(c.audit_max_age, Duration::from_secs(180 * 86_400));
        assert_eq!(c.node_budgets, crate::budget::BudgetConfig::default());
        // A short certificate lifetime raises the renewal budget to twice its need.
        let mut raw = RawCoreConfig::new("x", "127.0.0.1:7443".parse().unwrap(), "h:1");
        raw.certs.agent_lifetime = "6s".into();
        let c = raw.validate(Path::new("/tmp")).unwrap();
        assert_eq!(c.node_budgets.renewals_per_hour, 1800);
    }
}
