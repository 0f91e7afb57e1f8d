//! What each CLI command does: a request to the running core over `honeybee-admin/1`
//! (never the database directly), and the output, as a table or as JSON.

use crate::term::say;
use anyhow::{Context, bail};
use honeybee_core::admin_client::AdminClient;
use honeybee_core::json::{audit_json, event_json, event_line, mode_name, node_json, rfc3339};
use honeybee_proto::admin::{AdminRequest, AdminResponse, EventQuery, NodeInfo, TokenSpec};
use honeybee_proto::control::Command;
use honeybee_proto::{NodeId, Role, TokenId};
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

async fn ask(data_dir: &Path, req: AdminRequest) -> anyhow::Result<AdminResponse> {
    let client = AdminClient::connect(data_dir).await?;
    let resp = client.request(&req).await;
    client.close().await;
    Ok(resp?)
}

fn node_id(s: &str) -> anyhow::Result<NodeId> {
    NodeId::new(s).map_err(|e| anyhow::anyhow!("{e}"))
}

fn unexpected(r: AdminResponse) -> anyhow::Error {
    anyhow::anyhow!("unexpected answer from the core: {r:?}")
}

/// `honeybee store migrate --from sqlite:PATH --to postgres://…`.
pub async fn store_migrate(from: &str, to: &str) -> anyhow::Result<()> {
    let Some(path) = from.strip_prefix("sqlite:") else {
        anyhow::bail!("--from must be sqlite:PATH (the core's honeybee.db)");
    };
    let store = honeybee_core::config::RawStore {
        url: to.to_owned(),
        ..Default::default()
    };
    // The same checks as [store] url (scheme; no password in the URL).
    store.validate()?;
    let password = std::env::var("HONEYBEE_STORE_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    let report = honeybee_core::store::migrate::sqlite_to_postgres(
        std::path::Path::new(path),
        to,
        password.as_deref(),
    )
    .await?;
    for (table, rows) in report {
        say!("  {table:<20} {rows} rows");
    }
    say!("copied; now set [store] url = \"{to}\" in core.toml and start the core");
    Ok(())
}

pub fn core_init(
    data_dir: &Path,
    trust_domain: String,
    listen: SocketAddr,
    advertise: Option<String>,
    store: Option<String>,
) -> anyhow::Result<()> {
    let store = honeybee_core::config::RawStore {
        url: store.unwrap_or_default(),
        ..Default::default()
    };
    let r = honeybee_core::init::init_with_store(
        data_dir,
        &honeybee_core::init::InitOptions {
            trust_domain,
            listen,
            advertise,
        },
        store.clone(),
    )?;
    if !store.url.is_empty() {
        say!("  store         {}", store.url);
    }
    say!("initialised {}", r.data_dir.display());
    say!("  trust domain  {}", r.trust_domain);
    say!("  QUIC listen   {} (udp)", r.listen);
    say!("  advertised    {}", r.advertise);
    say!("  CA pin        sha256:{}", r.ca_pin_hex);
    if r.ca_key_sealed {
        say!(
            "  CA key        sealed with the passphrase from the environment; the core needs it to start"
        );
    } else {
        say!(
            "  CA key        not sealed (set {} before `core init`, or run `core seal-ca-key`)",
            honeybee_core::init::CA_PASSPHRASE_ENV
        );
    }
    say!("next: honeybee core run --data-dir {}", data_dir.display());
    Ok(())
}

/// `honeybee core join`: a new core's data directory from a join token.
pub async fn core_join(
    token: &str,
    data_dir: &Path,
    listen: SocketAddr,
    advertise: Option<String>,
    store: String,
) -> anyhow::Result<()> {
    let store = honeybee_core::config::RawStore {
        url: store,
        ..Default::default()
    };
    let opts = honeybee_core::init::InitOptions {
        trust_domain: String::new(),
        listen,
        advertise,
    };
    let r = honeybee_core::join::join(token, data_dir, opts, store.clone()).await?;
    say!("joined: {}", r.data_dir.display());
    say!("  trust domain  {}", r.trust_domain);
    say!(
        "  root CA pin   sha256:{} (checked against the token)",
        r.ca_pin_hex
    );
    say!(
        "  core CA       pki/intermediate.crt, its key made here (the root key stays on the root core)"
    );
    say!("  QUIC listen   {} (udp)", r.listen);
    say!("  advertised    {}", r.advertise);
    say!("  store         {}", store.url);
    say!("next: honeybee core run --data-dir {}", data_dir.display());
    Ok(())
}

pub fn seal_ca_key(data_dir: &Path) -> anyhow::Result<()> {
    let path = honeybee_core::init::seal_ca_key(data_dir)?;
    say!(
        "sealed {}; the core now needs the passphrase ({} or {}) to start",
        path.display(),
        honeybee_core::init::CA_PASSPHRASE_ENV,
        honeybee_core::init::CA_PASSPHRASE_FILE_ENV
    );
    Ok(())
}

pub async fn core_run(data_dir: &Path) -> anyhow::Result<()> {
    // Handle SIGTERM from here on: one during start-up must still mean a clean stop.
    let stop = crate::up::wait_for_signal();
    let core = honeybee_core::Core::start(data_dir).await?;
    // A log record, not a bare line: under `--log-format json` stderr is all JSON.
    tracing::info!(listen = %core.local_addr()?, "core running (udp); Ctrl-C to stop");
    stop.await;
    core.shutdown().await;
    Ok(())
}

fn parse_labels(s: Option<&str>) -> anyhow::Result<Vec<(String, String)>> {
    let Some(s) = s else { return Ok(Vec::new()) };
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .with_context(|| format!("label {p:?} is not k=v"))?;
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() || k.len() > 64 || v.len() > 256 {
                bail!("label {p:?}: key 1-64 bytes, value at most 256 bytes");
            }
            Ok((k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// The token `honeybee token create` asks for, from its flags.
pub fn token_spec(
    role: &str,
    name: String,
    ttl: &str,
    uses: u32,
    labels: Option<&str>,
) -> anyhow::Result<TokenSpec> {
    let role: Role = role.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let ttl = humantime::parse_duration(ttl)
        .with_context(|| format!("--ttl {ttl:?} (examples: 15m, 1h)"))?;
    Ok(TokenSpec {
        role,
        name,
        ttl_s: ttl.as_secs().max(1),
        uses,
        labels: parse_labels(labels)?,
    })
}

/// Asks the core for a token; returns its text.
pub async fn new_token(data_dir: &Path, spec: TokenSpec) -> anyhow::Result<String> {
    match ask(data_dir, AdminRequest::CreateToken(spec)).await? {
        AdminResponse::Token { token, .. } => Ok(token),
        r => Err(unexpected(r)),
    }
}

pub async fn token_create(data_dir: &Path, spec: TokenSpec) -> anyhow::Result<()> {
    let token = new_token(data_dir, spec).await?;
    say!("{token}");
    Ok(())
}

pub async fn token_list(data_dir: &Path, json: bool) -> anyhow::Result<()> {
    let AdminResponse::Tokens(tokens) = ask(data_dir, AdminRequest::ListTokens).await? else {
        bail!("unexpected answer from the core");
    };
    let now = honeybee_core::now_ms();
    let state = |t: &honeybee_proto::admin::TokenInfo| {
        if t.revoked {
            "revoked"
        } else if t.expires_ms <= now {
            "expired"
        } else if t.uses_left == 0 {
            "used"
        } else {
            "active"
        }
    };
    if json {
        let v: Vec<_> = tokens
            .iter()
            .map(|t| {
                json!({"id": t.id.to_hex(), "role": t.role.as_str(), "name": t.name, "labels": t.labels,
                       "created": rfc3339(t.created_ms), "expires": rfc3339(t.expires_ms),
                       "uses_total": t.uses_total, "uses_left": t.uses_left, "revoked": t.revoked, "state": state(t)})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        say!(
            "{:<16}  {:<6}  {:<20}  {:<8}  {:>9}  expires",
            "ID",
            "ROLE",
            "NAME",
            "STATE",
            "USES LEFT"
        );
        for t in &tokens {
            say!(
                "{:<16}  {:<6}  {:<20}  {:<8}  {:>9}  {}",
                t.id,
                t.role,
                t.name,
                state(t),
                t.uses_left,
                rfc3339(t.expires_ms)
            );
        }
    }
    Ok(())
}

pub async fn token_revoke(data_dir: &Path, id: &str) -> anyhow::Result<()> {
    let id = TokenId::from_hex(id).map_err(|e| anyhow::anyhow!("{e}"))?;
    ask(data_dir, AdminRequest::RevokeToken { id }).await?;
    say!("token {id} revoked");
    Ok(())
}

pub async fn agent_enroll(token: &str, data_dir: &Path, core: Option<&str>) -> anyhow::Result<()> {
    let r = honeybee_agent::enroll::enroll_via(token, data_dir, core).await?;
    say!(
        "enrolled as {} (role {}) with core {}; certificate valid until {}",
        r.node_id,
        r.role,
        r.core,
        rfc3339(r.not_after_ms)
    );
    say!("next: honeybee agent run --data-dir {}", data_dir.display());
    Ok(())
}

/// `--mode`: `full`, `extension` or `relay`. An extension node is an agent whose
/// configuration holds extension services; a relay also carries other nodes' QUIC to the
/// core. The mode is what the agent tells the core in its hello.
pub fn node_mode(mode: &str) -> anyhow::Result<honeybee_proto::control::NodeMode> {
    use honeybee_proto::control::NodeMode;
    match mode {
        "full" => Ok(NodeMode::Full),
        "extension" => Ok(NodeMode::Extension),
        "relay" => Ok(NodeMode::Relay),
        other => bail!("unknown mode {other:?}; known: full, extension, relay"),
    }
}

pub async fn agent_run(
    data_dir: &Path,
    mode: &str,
    relay_listen: SocketAddr,
) -> anyhow::Result<()> {
    let mut opts = honeybee_agent::runtime::AgentOptions::full(data_dir.to_owned());
    opts.mode = node_mode(mode)?;
    if opts.mode == honeybee_proto::control::NodeMode::Relay {
        let limits = honeybee_agent::relay::flows::FlowLimits::default();
        honeybee_agent::relay::run(opts, relay_listen, limits, crate::up::wait_for_signal())
            .await?;
    } else {
        // Remote upgrade: this process may hand over to an upgraded executable.
        honeybee_agent::upgrade::slots::run_in_place(opts, crate::up::wait_for_signal()).await?;
    }
    Ok(())
}

pub async fn nodes(data_dir: &Path, json: bool) -> anyhow::Result<()> {
    let AdminResponse::Nodes(nodes) = ask(data_dir, AdminRequest::ListNodes).await? else {
        bail!("unexpected answer from the core");
    };
    // The core assesses health (healthy / degraded / offline); an older core without
    // that answer leaves the state out.
    let health: Vec<honeybee_proto::admin::NodeHealthInfo> =
        match ask(data_dir, AdminRequest::NodeHealth).await {
            Ok(AdminResponse::NodeHealth(h)) => h,
            _ => Vec::new(),
        };
    let health_of = |n: &NodeInfo| health.iter().find(|h| h.node == n.id);
    // Devices reported through an aggregator (printers, cameras, …); an older core
    // without that answer lists none.
    let devices: Vec<honeybee_proto::admin::DeviceInfo> =
        match ask(data_dir, AdminRequest::ListDevices).await {
            Ok(AdminResponse::Devices(d)) => d,
            _ => Vec::new(),
        };
    let devices_of = |n: &NodeInfo| {
        devices
            .iter()
            .filter(|d| d.node == n.id)
            .collect::<Vec<_>>()
    };
    if json {
        let v: Vec<_> = nodes
            .iter()
            .map(|n| {
                let mut v = node_json(n, health_of(n));
                let ds: Vec<_> = devices_of(n)
                    .into_iter()
                    .map(honeybee_core::json::device_json)
                    .collect();
                if let (false, Some(o)) = (ds.is_empty(), v.as_object_mut()) {
                    o.insert("devices".into(), serde_json::Value::Array(ds));
                }
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    say!(
        "{:<24}  {:<6}  {:<9}  {:<10}  {:<14}  {:<22}  {:<24}  {:<24}  services",
        "NODE",
        "ROLE",
        "MODE",
        "VERSION",
        "STATE",
        "ADDRESS",
        "PATH",
        "LAST SEEN"
    );
    for n in &nodes {
        let h = health_of(n);
        let state = if n.revoked {
            "revoked".to_owned()
        } else if let Some(h) = h {
            // Several cores: how old the assessed report is (a node on another core
            // shows the store's copy).
            let age = h
                .health_age_ms
                .filter(|_| {
                    h.core.is_some() && h.state != honeybee_proto::admin::NodeState::Offline
                })
                .map(|ms| format!(" ({}s old)", ms / 1000))
                .unwrap_or_default();
            format!(
                "{} {}/{}{age}",
                h.state.as_str(),
                h.services_up,
                h.services_total
            )
        } else if n.online {
            "online".to_owned()
        } else {
            "offline".to_owned()
        };
        let services = n
            .health
            .as_ref()
            .map(|h| {
                h.services
                    .iter()
                    .map(|s| {
                        format!(
                            "{}@{}{}",
                            s.name,
                            s.listen,
                            if s.running { "" } else { "(down)" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        // Online: the path in use. Offline: the relay it is assigned to, if any.
        let mut path = match (&n.via, &n.relay) {
            (Some(v), _) => format!("via relay {v}"),
            (None, Some(r)) if !n.online => format!("(relay {r})"),
            _ => "direct".to_owned(),
        };
        // Several cores: which one holds the live connection (its id's first 8 digits,
        // as `honeybee cores` lists them in full).
        if let Some(c) = n.core.as_deref().filter(|_| n.online) {
            path.push_str(&format!(" @{}", c.get(..8).unwrap_or(c)));
        }
        say!(
            "{:<24}  {:<6}  {:<9}  {:<10}  {:<14}  {:<22}  {:<24}  {:<24}  {}",
            n.id,
            n.role,
            n.mode.map(mode_name).unwrap_or("-"),
            // What the agent said in its hello; unknown while it is offline.
            n.agent_version.as_deref().unwrap_or("-"),
            state,
            n.addr.as_deref().unwrap_or("-"),
            path,
            rfc3339(n.last_seen_ms),
            services
        );
        // Each device this node aggregates, as a node-like row under it.
        for d in devices_of(n) {
            say!(
                "{:<24}  {:<6}  {:<9}  {:<10}  {:<14}  {:<22}  {:<24}  {:<24}  {} events ({})",
                format!("  └ {}", d.name),
                "device",
                if d.kind.is_empty() { "-" } else { &d.kind },
                "-",
                if d.events > 0 { "reporting" } else { "silent" },
                d.address,
                format!("via {}", n.id),
                d.last_seen_ms.map_or_else(|| "never".to_owned(), rfc3339),
                d.events,
                d.service
            );
        }
    }
    Ok(())
}

pub async fn node_assign_relay(
    data_dir: &Path,
    node: &str,
    relay: Option<&str>,
) -> anyhow::Result<()> {
    let node = node_id(node)?;
    let relay = relay.map(node_id).transpose()?;
    match ask(
        data_dir,
        AdminRequest::AssignRelay {
            node: node.clone(),
            relay: relay.clone(),
        },
    )
    .await?
    {
        AdminResponse::Done => {}
        AdminResponse::Error(e) => bail!("{e}"),
        r => return Err(unexpected(r)),
    }
    match relay {
        Some(r) => {
            say!("node {node} may now reach the core through relay {r} (and no other relay)")
        }
        None => say!("node {node} is assigned to no relay; it must reach the core directly"),
    }
    Ok(())
}

pub async fn node_revoke(data_dir: &Path, node: &str) -> anyhow::Result<()> {
    let node = node_id(node)?;
    ask(data_dir, AdminRequest::RevokeNode { node: node.clone() }).await?;
    say!("node {node} revoked; its connection is closed and its certificates no longer work");
    Ok(())
}

/// Edits requested by `honeybee node config`.
pub struct ConfigChange {
    pub file: Option<PathBuf>,
    pub enable: Vec<String>,
    pub disable: Vec<String>,
    pub listen: Vec<String>,
}

impl ConfigChange {
    fn is_empty(&self) -> bool {
        self.file.is_none()
            && self.enable.is_empty()
            && self.disable.is_empty()
            && self.listen.is_empty()
    }
}

pub async fn node_config(
    data_dir: &Path,
    node: &str,
    change: ConfigChange,
    json: bool,
) -> anyhow::Result<()> {
    let node = node_id(node)?;
    let client = AdminClient::connect(data_dir).await?;
    let AdminResponse::NodeConfig(mut cfg) = client
        .request(&AdminRequest::GetNodeConfig { node: node.clone() })
        .await?
    else {
        bail!("unexpected answer from the core");
    };
    if !change.is_empty() {
        if let Some(f) = &change.file {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            cfg = honeybee_core::config::services_from_toml(&text)?;
        }
        for (names, enabled) in [(&change.enable, true), (&change.disable, false)] {
            for name in names {
                cfg.service_mut(name)
                    .with_context(|| format!("node {node} has no service {name:?}"))?
                    .enabled = enabled;
            }
        }
        for l in &change.listen {
            let (name, addr) = l.split_once('=').context("--listen takes NAME=IP:PORT")?;
            let addr: SocketAddr = addr
                .parse()
                .with_context(|| format!("--listen {l:?}: bad IP:PORT"))?;
            cfg.service_mut(name)
                .with_context(|| format!("node {node} has no service {name:?}"))?
                .listen = addr;
        }
        client
            .request(&AdminRequest::SetNodeConfig {
                node: node.clone(),
                config: cfg.clone(),
            })
            .await?;
    }
    client.close().await;
    if json {
        let v: Vec<_> = cfg
            .services
            .iter()
            .map(|s| json!({"name": s.name, "kind": s.kind.name(), "listen": s.listen.to_string(), "enabled": s.enabled}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for s in &cfg.services {
            say!(
                "{:<12} {:<8} {:<22} {}",
                s.name,
                s.kind.name(),
                s.listen,
                if s.enabled { "enabled" } else { "disabled" }
            );
        }
    }
    Ok(())
}

pub async fn node_command(
    data_dir: &Path,
    node: &str,
    command: &str,
    args: &[String],
) -> anyhow::Result<()> {
    let command = match (command, args) {
        ("ping", []) => Command::Ping,
        ("status", []) => Command::Status,
        ("release-port", [service, port]) => Command::ReleasePort {
            service: service.clone(),
            port: port
                .parse()
                .map_err(|_| anyhow::anyhow!("port must be 1-65535, got {port:?}"))?,
        },
        ("ping" | "status", _) => bail!("{command} takes no arguments"),
        ("release-port", _) => bail!("usage: release-port SERVICE PORT"),
        (other, _) => bail!("unknown command {other:?}; known: ping, status, release-port"),
    };
    match ask(
        data_dir,
        AdminRequest::SendCommand {
            node: node_id(node)?,
            command,
        },
    )
    .await?
    {
        AdminResponse::CommandResult(Ok(out)) => {
            // The node's own words: several lines, possibly from a compromised node.
            println!("{}", crate::term::term_safe_lines(&out));
            Ok(())
        }
        AdminResponse::CommandResult(Err(e)) => bail!("the node answered with an error: {e}"),
        r => Err(unexpected(r)),
    }
}

/// Filters for `honeybee events`.
pub struct EventFilter {
    pub node: Option<String>,
    pub service: Option<String>,
    pub kind: Option<String>,
    pub since: Option<String>,
    pub limit: u32,
}

pub async fn events(data_dir: &Path, f: EventFilter, json: bool) -> anyhow::Result<()> {
    if let Some(k) = &f.kind
        && !honeybee_proto::event::EventKind::NAMES.contains(&k.as_str())
    {
        bail!(
            "unknown --kind {k:?}; known: {}",
            honeybee_proto::event::EventKind::NAMES.join(", ")
        );
    }
    let since_ms = match &f.since {
        Some(s) => {
            let d = humantime::parse_duration(s)
                .with_context(|| format!("--since {s:?} (examples: 10m, 2h)"))?;
            Some(honeybee_core::now_ms() - d.as_millis() as i64)
        }
        None => None,
    };
    let q = EventQuery {
        node: f.node.as_deref().map(node_id).transpose()?,
        service: f.service,
        kind: f.kind,
        since_ms,
        limit: f.limit,
    };
    let AdminResponse::Events(events) = ask(data_dir, AdminRequest::ListEvents(q)).await? else {
        bail!("unexpected answer from the core");
    };
    if json {
        let v: Vec<_> = events.iter().map(event_json).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for e in &events {
            say!("{}", event_line(e));
        }
    }
    Ok(())
}

/// `honeybee cores`: every core of the deployment, the one asked marked `*`.
pub async fn cores(data_dir: &Path, json: bool) -> anyhow::Result<()> {
    let AdminResponse::Cores(cores) = ask(data_dir, AdminRequest::ListCores).await? else {
        bail!("unexpected answer from the core");
    };
    if json {
        let v: Vec<_> = cores.iter().map(core_json).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_cores(&cores);
    }
    Ok(())
}

fn core_json(c: &honeybee_proto::admin::ClusterCoreInfo) -> serde_json::Value {
    json!({"id": c.id, "listen": c.listen, "advertise": c.advertise,
           "version": c.version, "started": rfc3339(c.started_ms),
           "heartbeat_age_ms": c.heartbeat_age_ms, "nodes": c.nodes,
           "connections": c.connections, "handshakes_per_s": c.handshakes_per_s,
           "ingest_events_per_s": c.ingest_events_per_s, "modules": c.modules,
           "module_queued": c.module_queued, "this": c.this_core})
}

/// One line per core: what `honeybee cores` prints and `honeybee status` lists.
fn print_cores(cores: &[honeybee_proto::admin::ClusterCoreInfo]) {
    say!(
        "  {:<32} {:<22} {:>6} {:>6} {:>9} {:>8} {:>10} VERSION",
        "CORE",
        "ADVERTISE",
        "NODES",
        "CONNS",
        "INGEST/S",
        "MODULES",
        "HEARTBEAT"
    );
    for c in cores {
        say!(
            "{} {:<32} {:<22} {:>6} {:>6} {:>9.1} {:>8} {:>8}ms {}",
            if c.this_core { '*' } else { ' ' },
            c.id,
            c.advertise,
            c.nodes,
            c.connections,
            c.ingest_events_per_s,
            c.modules,
            c.heartbeat_age_ms,
            c.version
        );
    }
}

pub async fn audit(data_dir: &Path, json: bool, limit: u32) -> anyhow::Result<()> {
    let AdminResponse::Audit(entries) = ask(data_dir, AdminRequest::Audit { limit }).await? else {
        bail!("unexpected answer from the core");
    };
    if json {
        let v: Vec<_> = entries.iter().map(audit_json).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for a in &entries {
            say!(
                "{} {:<24} {:<14} {:<30} {} {}",
                rfc3339(a.time_ms),
                a.actor,
                a.action,
                a.outcome,
                a.source.as_deref().unwrap_or("-"),
                a.detail
            );
        }
    }
    Ok(())
}

pub async fn status(data_dir: &Path, json: bool) -> anyhow::Result<()> {
    let client = AdminClient::connect(data_dir).await?;
    let status = client.request(&AdminRequest::Status).await;
    // A core from before `Load` answers an error: show what it has.
    let load = match client.request(&AdminRequest::Load).await {
        Ok(AdminResponse::Load(l)) => Some(l),
        _ => None,
    };
    // Every core serving the fleet with its load (one row on a single core); a core from
    // before `ListCores` answers an error and the list is left out.
    let cores = match client.request(&AdminRequest::ListCores).await {
        Ok(AdminResponse::Cores(c)) => c,
        _ => Vec::new(),
    };
    client.close().await;
    let AdminResponse::Status(s) = status? else {
        bail!("unexpected answer from the core");
    };
    if json {
        let mut doc = json!({"version": s.version, "trust_domain": s.trust_domain, "listen": s.listen, "advertise": s.advertise,
                   "uptime_s": s.uptime_s, "nodes_online": s.nodes_online, "nodes_total": s.nodes_total, "events_total": s.events_total});
        if let Some(l) = &load {
            doc["load"] = json!({
                "connections": l.connections,
                "handshakes_in_flight": l.handshakes_in_flight,
                "handshakes_per_s": l.handshakes_per_s,
                "handshake_failures_per_s": l.handshake_failures_per_s,
                "ingest_events_per_s": l.ingest_events_per_s,
                "ingest_commits_in_flight": l.ingest_commits_in_flight,
                "module_queues": l.module_queues.iter().map(|(m, d)| json!({"module": m, "depth": d})).collect::<Vec<_>>(),
                "store_bytes": l.store_bytes,
                "metrics_listen": l.metrics_listen,
                "bus_tail": l.bus_tail.as_ref().map(|t| json!({"tailed": t.tailed, "held": t.held,
                    "late": t.late, "skipped": t.skipped})),
            });
        }
        if !cores.is_empty() {
            doc["cores"] = serde_json::Value::Array(cores.iter().map(core_json).collect());
            doc["nodes_online_all_cores"] = json!(cores.iter().map(|c| c.nodes).sum::<u64>());
        }
        println!("{doc}");
    } else {
        say!(
            "HoneyBee core {} ({}), up {} s",
            s.version,
            s.trust_domain,
            s.uptime_s
        );
        say!("  listen {} (udp), advertised as {}", s.listen, s.advertise);
        if cores.len() > 1 {
            // Several cores: every core's online nodes, and this one's share.
            say!(
                "  nodes {} online of {} ({} on this core), {} events stored",
                cores.iter().map(|c| c.nodes).sum::<u64>(),
                s.nodes_total,
                s.nodes_online,
                s.events_total
            );
        } else {
            say!(
                "  nodes {} online of {}, {} events stored",
                s.nodes_online,
                s.nodes_total,
                s.events_total
            );
        }
        if let Some(l) = load {
            say!(
                "  connections {} ({} handshaking), handshakes {:.1}/s ({:.1}/s failed)",
                l.connections,
                l.handshakes_in_flight,
                l.handshakes_per_s,
                l.handshake_failures_per_s
            );
            say!(
                "  ingest {:.1} events/s, {} batches waiting for the store, store {:.1} MiB",
                l.ingest_events_per_s,
                l.ingest_commits_in_flight,
                l.store_bytes as f64 / (1024.0 * 1024.0)
            );
            let queued: u64 = l.module_queues.iter().map(|(_, d)| d).sum();
            let fullest = l.module_queues.iter().max_by_key(|(_, d)| *d);
            match fullest {
                Some((m, d)) => say!(
                    "  module queues {} queued in {} modules (fullest: {} with {})",
                    queued,
                    l.module_queues.len(),
                    m,
                    d
                ),
                None => say!("  module queues: no module connected"),
            }
            if let Some(t) = &l.bus_tail {
                say!(
                    "  module bus tail: {} events from other cores, {} held for a hole, {} late, {} holes passed over",
                    t.tailed,
                    t.held,
                    t.late,
                    t.skipped
                );
            }
            if let Some(a) = l.metrics_listen {
                say!("  metrics http://{a}/metrics");
            }
        }
        if cores.len() > 1 {
            say!("  cores ({}, * this one):", cores.len());
            print_cores(&cores);
        }
    }
    Ok(())
}

pub async fn alerts(
    data_dir: &Path,
    json: bool,
    limit: u32,
    ack: Option<i64>,
) -> anyhow::Result<()> {
    if let Some(id) = ack {
        ask(data_dir, AdminRequest::AckAlert { id }).await?;
        say!("alert {id} acknowledged");
        return Ok(());
    }
    let AdminResponse::Alerts(alerts) = ask(data_dir, AdminRequest::ListAlerts { limit }).await?
    else {
        bail!("unexpected answer from the core");
    };
    if json {
        let v: Vec<_> = alerts
            .iter()
            .map(|a| {
                json!({"id": a.id, "@timestamp": rfc3339(a.time_ms), "module": a.module, "severity": a.severity,
                       "title": a.title, "body": a.body, "node": a.node, "seq": a.seq,
                       "acknowledged": a.acked_ms.map(rfc3339), "acknowledged_by": a.acked_by})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for a in &alerts {
            say!(
                "{:>5} {} {:<8} {:<12} {}{}",
                a.id,
                rfc3339(a.time_ms),
                a.severity,
                a.module,
                a.title,
                if a.acked_ms.is_some() {
                    "  (acknowledged)"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}

pub async fn captures(data_dir: &Path, json: bool, limit: u32) -> anyhow::Result<()> {
    let list = match ask(data_dir, AdminRequest::ListCaptures { limit }).await? {
        AdminResponse::Captures(c) => c,
        other => return Err(unexpected(other)),
    };
    if json {
        let v: Vec<_> = list
            .iter()
            .map(|c| {
                json!({"sha256": hex::encode(c.sha256), "size": c.size, "kind": c.kind,
                       "node": c.node.as_str(), "service": c.service,
                       "session": c.session.map(|s| s.to_hex()),
                       "@timestamp": rfc3339(c.time_ms),
                       "meta": c.meta.iter().cloned().collect::<std::collections::BTreeMap<_, _>>()})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if list.is_empty() {
        say!("no captures yet");
    }
    for c in &list {
        say!(
            "{} {:<10} {:>10} B  {:<12} {:<10} {}  {}",
            rfc3339(c.time_ms),
            c.kind,
            c.size,
            c.node.as_str(),
            c.service,
            c.session.map(|s| s.to_hex()).unwrap_or_else(|| "-".into()),
            hex::encode(c.sha256)
        );
    }
    Ok(())
}

pub async fn capture_get(data_dir: &Path, hash: &str, output: &Path) -> anyhow::Result<()> {
    use honeybee_proto::admin::MAX_CAPTURE_CHUNK;
    let sha256: [u8; 32] = hex::decode(hash.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            anyhow::anyhow!("{hash:?} is not a SHA-256 (64 hex digits); see `honeybee captures`")
        })?;
    let client = AdminClient::connect(data_dir).await?;
    let mut content = Vec::new();
    let fetched = async {
        loop {
            let req = AdminRequest::GetCapture {
                sha256,
                offset: content.len() as u64,
                max_len: MAX_CAPTURE_CHUNK,
            };
            match client.request(&req).await? {
                AdminResponse::CaptureChunk { info, data, .. } => {
                    if data.is_empty() && (content.len() as u64) < info.size {
                        bail!("the core sent an empty chunk before the end of the capture");
                    }
                    content.extend_from_slice(&data);
                    if content.len() as u64 >= info.size {
                        return Ok(());
                    }
                }
                other => return Err(unexpected(other)),
            }
        }
    }
    .await;
    client.close().await;
    fetched?;
    let got = ring::digest::digest(&ring::digest::SHA256, &content);
    if got.as_ref() != sha256 {
        bail!("the content fetched does not match its hash; nothing was written");
    }
    if output.as_os_str() == "-" {
        use std::io::Write;
        std::io::stdout().write_all(&content)?;
        return Ok(());
    }
    // Write beside the target and rename, so a partial file never carries the name.
    let tmp = output.with_extension("part");
    std::fs::write(&tmp, &content).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, output).with_context(|| format!("writing {}", output.display()))?;
    eprintln!("{} bytes written to {}", content.len(), output.display());
    Ok(())
}

pub async fn module_token(
    data_dir: &Path,
    name: String,
    permissions: Vec<String>,
) -> anyhow::Result<()> {
    match ask(
        data_dir,
        AdminRequest::CreateModuleCredential { name, permissions },
    )
    .await?
    {
        AdminResponse::ModuleCredential { credential } => {
            say!("{credential}");
            Ok(())
        }
        r => Err(unexpected(r)),
    }
}

pub async fn module_load(
    data_dir: &Path,
    name: String,
    permissions: Vec<String>,
    command: Vec<String>,
) -> anyhow::Result<()> {
    let (cmd, args) = command
        .split_first()
        .context("a command to run is required after --")?;
    let spec = honeybee_proto::admin::ModuleSpec {
        name: name.clone(),
        command: cmd.clone(),
        args: args.to_vec(),
        permissions,
    };
    ask(data_dir, AdminRequest::LoadModule(spec)).await?;
    say!("module {name} loaded; `honeybee module list` shows its state");
    Ok(())
}

pub async fn module_revoke(data_dir: &Path, name: String) -> anyhow::Result<()> {
    ask(data_dir, AdminRequest::RevokeModule { name: name.clone() }).await?;
    say!("module {name}: every credential and grant revoked, its connection closed");
    Ok(())
}

pub async fn module_unload(data_dir: &Path, name: String) -> anyhow::Result<()> {
    ask(data_dir, AdminRequest::UnloadModule { name: name.clone() }).await?;
    say!("module {name} unloaded");
    Ok(())
}

/// Crash-looping, as the dashboard's Modules page marks it: a managed module that has been
/// restarted and is not connected now.
fn module_crash_looping(m: &honeybee_proto::admin::ModuleInfo) -> bool {
    m.managed && m.restarts > 0 && m.state != "connected"
}

/// The EXIT column: the code alone (`3`), `sig N` for a signal, `-` before any exit.
fn module_exit_cell(last_exit: Option<&str>) -> String {
    match last_exit {
        None => "-".into(),
        Some(e) => {
            if let Some(code) = e.strip_prefix("exit code ") {
                code.into()
            } else if let Some(sig) = e.strip_prefix("killed by signal ") {
                format!("sig {sig}")
            } else {
                e.into()
            }
        }
    }
}

pub async fn module_list(data_dir: &Path, json: bool, verbose: bool) -> anyhow::Result<()> {
    let AdminResponse::Modules(modules) = ask(data_dir, AdminRequest::ListModules).await? else {
        bail!("unexpected answer from the core");
    };
    if json {
        let v: Vec<_> = modules
            .iter()
            .map(|m| {
                json!({"name": m.name, "state": m.state, "managed": m.managed, "transport": m.transport, "version": m.version,
                       "permissions": m.permissions, "subscriptions": m.subscriptions, "queue_depth": m.queue_depth,
                       "dropped": m.dropped, "pid": m.pid, "restarts": m.restarts, "last_exit": m.last_exit,
                       "crash_looping": module_crash_looping(m), "log_tail": m.log_tail})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        say!(
            "{:<16} {:<11} {:<8} {:<5} {:>5} {:>6} {:>8} {:>8} {:>6}  permissions",
            "MODULE",
            "STATE",
            "MANAGED",
            "VIA",
            "SUBS",
            "QUEUE",
            "DROPPED",
            "RESTARTS",
            "EXIT"
        );
        for m in &modules {
            say!(
                "{:<16} {:<11} {:<8} {:<5} {:>5} {:>6} {:>8} {:>8} {:>6}  {}{}",
                m.name,
                m.state,
                if m.managed { "yes" } else { "no" },
                if m.transport.is_empty() {
                    "-"
                } else {
                    &m.transport
                },
                m.subscriptions,
                m.queue_depth,
                m.dropped,
                m.restarts,
                module_exit_cell(m.last_exit.as_deref()),
                m.permissions.join(","),
                if module_crash_looping(m) {
                    "  [crash-looping]"
                } else {
                    ""
                }
            );
        }
        if verbose {
            for m in modules.iter().filter(|m| m.managed) {
                say!("");
                match &m.last_exit {
                    Some(e) => say!("{} (last process: {e}), last output:", m.name),
                    None => say!("{}, last output:", m.name),
                }
                if m.log_tail.is_empty() {
                    say!("  (none)");
                }
                for line in &m.log_tail {
                    say!("  {line}");
                }
            }
        }
    }
    Ok(())
}

pub async fn module_cert(
    data_dir: &Path,
    name: String,
    permissions: Vec<String>,
    out: &Path,
) -> anyhow::Result<()> {
    if out.join("module.pem").exists() {
        bail!(
            "{} already holds a module identity; use another --out",
            out.display()
        );
    }
    let key = honeybee_pki::keys::KeyPair::generate()?;
    let csr_der = honeybee_pki::keys::make_csr(&key)?;
    let core = honeybee_core::admin_client::core_address(data_dir)?;
    let req = AdminRequest::IssueModuleCert {
        name: name.clone(),
        permissions,
        csr_der,
    };
    let AdminResponse::ModuleCert {
        cert_der,
        ca_der,
        not_after_ms,
    } = ask(data_dir, req).await?
    else {
        bail!("unexpected answer from the core");
    };
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let pem = format!(
        "{}{}",
        key.to_pem(),
        honeybee_pki::files::der_to_pem_cert(&cert_der)
    );
    honeybee_pki::files::write_private(&out.join("module.pem"), pem.as_bytes())?;
    honeybee_pki::files::write_public(
        &out.join("ca.crt"),
        honeybee_pki::files::der_to_pem_cert(&ca_der).as_bytes(),
    )?;
    let toml = format!(
        "# HoneyBee module identity, written by `honeybee module cert`.\nname = {name:?}\ncore = \"{core}\"\n"
    );
    honeybee_pki::files::write_public(&out.join("module.toml"), toml.as_bytes())?;
    say!(
        "module {name} may connect over QUIC until {}; identity in {}",
        rfc3339(not_after_ms),
        out.display()
    );
    Ok(())
}
