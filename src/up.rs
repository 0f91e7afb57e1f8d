//! `honeybee up`: the one command for a first look. Initialises the data directory if it
//! is empty, runs the core, enrols a local full node through a real one-time token over
//! QUIC + mTLS on loopback, runs it and the dashboard, and says what runs where. Ctrl-C
//! stops it all cleanly.

use anyhow::Context;
use honeybee_agent::runtime::AgentOptions;
use honeybee_core::init::{CorePaths, InitOptions};
use honeybee_proto::Role;
use honeybee_proto::admin::TokenSpec;
use honeybee_proto::config::NodeConfig;
use honeybee_proto::profile::Profile;
use std::path::Path;
use std::time::Duration;

/// Where `--metrics` serves the core's and the local node's `/metrics`.
const CORE_METRICS: &str = "127.0.0.1:9464";
const AGENT_METRICS: &str = honeybee_agent::metrics::DEFAULT_LISTEN;

/// `addr` when nothing listens there now: a busy metrics port must not stop the rest of
/// the first look (the line printed says so instead).
fn free_port(addr: &str) -> Option<std::net::SocketAddr> {
    let a: std::net::SocketAddr = addr.parse().ok()?;
    std::net::TcpListener::bind(a).ok().map(|_| a)
}

/// Resolves on Ctrl-C or SIGTERM; the handler is installed at the call, so call it before
/// starting anything (see [`honeybee_agent::runtime::shutdown_signal`]).
pub fn wait_for_signal() -> impl std::future::Future<Output = ()> {
    honeybee_agent::runtime::shutdown_signal()
}

/// `profile`: the local node's service set (`--profile`); `None` keeps what the node
/// has (a new node gets the core's default profile, `linux-server`). `metrics`: serve
/// `/metrics` of the core and the local node (`--metrics`).
pub async fn up(data_dir: &Path, profile: Option<Profile>, metrics: bool) -> anyhow::Result<()> {
    // Handle SIGTERM from here on: one during start-up must still mean a clean stop.
    let stop = wait_for_signal();
    let paths = CorePaths::new(data_dir);
    if !paths.is_initialised() {
        let r = honeybee_core::init::init(
            data_dir,
            &InitOptions {
                trust_domain: "honeybee.local".into(),
                listen: "127.0.0.1:7443".parse().expect("literal"),
                advertise: None,
            },
        )?;
        eprintln!(
            "initialised {} (CA pin sha256:{})",
            data_dir.display(),
            r.ca_pin_hex
        );
    }
    let mut cfg = honeybee_core::config::load(data_dir)?;
    if metrics && cfg.metrics_listen.is_none() {
        cfg.metrics_listen = free_port(CORE_METRICS);
    }
    let core = honeybee_core::Core::start_with(cfg).await?;
    let core_addr = core.local_addr()?;

    let agent_dir = data_dir.join("local-agent");
    if !agent_dir.join(honeybee_agent::config::CONFIG_FILE).exists() {
        let spec = TokenSpec {
            role: Role::Agent,
            name: "local".into(),
            ttl_s: 300,
            uses: 1,
            labels: vec![("site".into(), "local".into())],
        };
        let (_, token) = core
            .shared()
            .create_token(&spec, "core:up")
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        let r = honeybee_agent::enroll::enroll(&token, &agent_dir)
            .await
            .context("enrolling the local node")?;
        eprintln!("enrolled local node {} over QUIC + mTLS", r.node_id);
    }
    // The local node's services: the profile asked for, else what it already has.
    let node_id = honeybee_agent::config::AgentConfig::load(
        &honeybee_agent::config::AgentPaths::new(&agent_dir),
    )
    .map(|c| c.node_id)
    .context("reading the local node's configuration")?;
    let node = honeybee_proto::NodeId::new(node_id.clone())
        .map_err(|e| anyhow::anyhow!("local node id {node_id:?}: {}", e.why))?;
    let store = &core.shared().store;
    if let Some(p) = profile {
        let config = NodeConfig {
            services: p.services(std::net::IpAddr::from([127, 0, 0, 1])),
        };
        config.validate()?;
        store.set_node_config(&node, &config).await?;
        // As `honeybee node config` is audited.
        core.shared().audit(
            "core:up",
            "node.config",
            "ok",
            None,
            &format!("node={node} profile={p}"),
        );
    }
    let services = store
        .get_node(&node)
        .await?
        .map(|n| n.config.services)
        .unwrap_or_default();
    let shown = profile.or_else(|| {
        Profile::ALL.into_iter().find(|p| {
            let mine = p.services(std::net::IpAddr::from([127, 0, 0, 1]));
            mine.len() == services.len()
                && mine
                    .iter()
                    .zip(&services)
                    .all(|(a, b)| a.name == b.name && a.kind == b.kind)
        })
    });

    let mut agent_opts = AgentOptions::full(agent_dir.clone());
    let agent_cfg = honeybee_agent::config::AgentConfig::load(
        &honeybee_agent::config::AgentPaths::new(&agent_dir),
    )?;
    let agent_metrics = match agent_cfg.metrics.validate() {
        Ok(Some(a)) => Some(a),
        _ if metrics => {
            agent_opts.metrics = free_port(AGENT_METRICS);
            agent_opts.metrics
        }
        _ => None,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(honeybee_agent::runtime::run(agent_opts, async {
        let _ = stop_rx.await;
    }));

    // The dashboard is part of the first look, but a busy port must not stop the rest.
    let dashboard = match crate::dashboard::up(data_dir).await {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("dashboard not started: {e:#}");
            None
        }
    };

    let d = data_dir.display();
    println!();
    println!("HoneyBee is up.");
    println!("  core (QUIC, udp)   {core_addr}");
    println!(
        "  local node         local  (data in {})",
        agent_dir.display()
    );
    match shown {
        Some(p) => println!("  profile            {p}: {}", p.describe()),
        None => println!("  profile            (the node's own service list)"),
    }
    for s in services.iter().filter(|s| s.enabled) {
        println!("  honeypot {:<9} {} ({})", s.name, s.listen, s.kind.name());
    }
    let core_metrics = core.shared().metrics.listen_addr();
    if let Some(a) = core_metrics {
        println!("  metrics (http)     http://{a}/metrics   (core, Prometheus text)");
    }
    if let Some(a) = agent_metrics {
        println!("  metrics (http)     http://{a}/metrics   (local node)");
    }
    if metrics && (core_metrics.is_none() || agent_metrics.is_none()) {
        println!(
            "  metrics            {} busy: set [metrics] listen in core.toml / agent.toml",
            if core_metrics.is_none() {
                CORE_METRICS
            } else {
                AGENT_METRICS
            }
        );
    }
    if let Some(shim) = core.shared().shim_addr {
        println!("  module shim (tcp)  {shim}   (see modules/PROTOCOL.md)");
    }
    if let Some((d, first_admin)) = &dashboard {
        println!("  dashboard (web)    {}", d.url);
        match first_admin {
            Some(line) => println!("    {line}"),
            None => println!(
                "    sign in with the admin password shown when it was created \
                 (or set HONEYBEE_DASHBOARD_ADMIN_PASSWORD before the first start)"
            ),
        }
    }
    println!();
    let has = |name: &str| services.iter().any(|s| s.enabled && s.kind.name() == name);
    let mut tries = Vec::new();
    if has("ssh") {
        tries.push("ssh -p 2222 root@127.0.0.1        (the third password for a user gets a shell and keeps working; all are recorded)");
    }
    if has("telnet") {
        tries.push("telnet 127.0.0.1 2323");
    }
    if has("http") {
        tries.push("curl http://127.0.0.1:8081/");
    }
    if has("redis") {
        tries.push("redis-cli -p 6380 INFO");
    }
    if has("mysql") {
        tries.push("mysql -h 127.0.0.1 -P 3307 -u root -p");
    }
    if has("ftp") {
        tries.push("curl -T FILE ftp://127.0.0.1:2121/");
    }
    for (i, t) in tries.iter().enumerate() {
        println!("{}{t}", if i == 0 { "Try it:   " } else { "          " });
    }
    if shown != Some(Profile::All) {
        println!(
            "Profiles: honeybee up --profile linux-server | router | ics   (one believable machine each)"
        );
        println!(
            "          honeybee up --profile all   (every service at once: a demo, not a believable machine)"
        );
    } else {
        println!(
            "Note:     the `all` profile runs every service on one node: a demo, no real machine looks like this"
        );
    }
    println!("Captures: honeybee captures --data-dir {d}   (session transcripts, uploads, bodies)");
    println!("Watch:    honeybee events --data-dir {d}");
    println!("Nodes:    honeybee nodes --data-dir {d}");
    println!("Enrol another machine:  honeybee token create --data-dir {d} --name NAME");
    println!("Stop:     Ctrl-C");
    println!();

    stop.await;
    eprintln!("stopping: flushing the local node's spool, then the core");
    let _ = stop_tx.send(());
    match tokio::time::timeout(Duration::from_secs(15), agent).await {
        Ok(Ok(Err(e))) => eprintln!("local node stopped with an error: {e}"),
        Err(_) => eprintln!("local node did not stop within 15 s"),
        _ => {}
    }
    if let Some((d, _)) = dashboard {
        d.shutdown().await;
    }
    core.shutdown().await;
    Ok(())
}
