//! The fleet's identities: `core init` in a temp directory, then one certificate per
//! simulated agent minted by the harness from the core's own CA (`Ca::issue_with_new_key`,
//! the same signing path enrolment uses) and recorded in the core's store as enrolment
//! records it (`upsert_node` + `record_cert`), before the core process starts. Enrolling
//! 10,000 agents through tokens would measure enrolment (its own figure), not the fleet.

use anyhow::{Context, Result, anyhow};
use honeybee_core::init::{CorePaths, InitOptions, init, load_ca};
use honeybee_core::store::{NodeRecord, SqliteStore};
use honeybee_pki::ca::IssueRequest;
use honeybee_proto::{NodeId, Role, alpn};
use std::net::SocketAddr;
use std::path::Path;

pub const TRUST_DOMAIN: &str = "fleet.honeybee";

/// `core init` on `addr`, with the module shim off and `max_connections` raised to hold
/// the fleet (the default, 10,000, is a production limit the 10k run would hit) with an
/// eighth to spare: agents that reconnect under load hold a second connection until the
/// core closes their old one, and the harness's admin client must still get in.
pub fn init_core(dir: &Path, addr: SocketAddr, agents: usize) -> Result<()> {
    init(
        dir,
        &InitOptions {
            trust_domain: TRUST_DOMAIN.into(),
            listen: addr,
            advertise: None,
        },
    )
    .context("core init")?;
    let path = dir.join("core.toml");
    let max = max_connections(agents);
    let mut section = String::new();
    let cfg = std::fs::read_to_string(&path)?
        .lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with('[') {
                section = t.to_owned();
            }
            if t.starts_with("shim_listen") {
                "shim_listen = \"\"".to_owned()
            } else if section == "[limits]" && t.starts_with("max_connections") {
                format!("max_connections = {max}")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&path, cfg + "\n")?;
    Ok(())
}

/// The fleet core's `max_connections` for `agents` agents.
pub fn max_connections(agents: usize) -> usize {
    (agents + agents / 8 + 256).max(10_000)
}

/// Mints `n` agent identities and records them in the store of the (stopped) core at
/// `dir`; returns each agent's QUIC client config (mTLS with its own certificate).
pub async fn mint(dir: &Path, n: usize) -> Result<Vec<quinn::ClientConfig>> {
    let cfg = honeybee_core::config::load(dir).map_err(|e| anyhow!("core config: {e}"))?;
    let paths = CorePaths::new(dir);
    let ca = std::sync::Arc::new(load_ca(&paths, &cfg.trust_domain)?);
    let lifetime = cfg.agent_cert_lifetime;
    // Key generation and signing on every core, in chunks.
    let workers = std::thread::available_parallelism().map_or(2, |p| p.get());
    let chunk = n.div_ceil(workers).max(1);
    let mut handles = Vec::new();
    for start in (0..n).step_by(chunk) {
        let ca = ca.clone();
        let end = (start + chunk).min(n);
        handles.push(tokio::task::spawn_blocking(move || {
            (start..end)
                .map(|i| {
                    let id = NodeId::new(format!("sim{i:05}")).map_err(|e| anyhow!("{e}"))?;
                    let (key, cert) = ca
                        .issue_with_new_key(&IssueRequest {
                            role: Role::Agent,
                            id: id.clone(),
                            lifetime,
                        })
                        .map_err(|e| anyhow!("issue: {e}"))?;
                    anyhow::Ok((id, key, cert))
                })
                .collect::<Result<Vec<_>>>()
        }));
    }
    let mut issued = Vec::with_capacity(n);
    for h in handles {
        issued.extend(h.await??);
    }
    let store = SqliteStore::open(&paths.database())?;
    let now = honeybee_core::now_ms();
    let mut quic = Vec::with_capacity(n);
    for (id, key, cert) in issued {
        store
            .upsert_node(NodeRecord {
                id: id.clone(),
                name: id.as_str().to_owned(),
                role: Role::Agent,
                labels: vec![],
                serial: cert.serial,
                cert_not_after_ms: cert.not_after_ms,
                first_seen_ms: now,
                last_seen_ms: now,
                addr: None,
                online: false,
                revoked: false,
                health: None,
                config: cfg.default_node_config.clone(),
                via_relay: None,
            })
            .await?;
        store
            .record_cert(cert.serial, &id, Role::Agent, now, cert.not_after_ms)
            .await?;
        let tls = honeybee_pki::tls::client_config(
            ca.cert_der(),
            vec![cert.der.into()],
            key.private_key_der(),
            Role::Core,
            alpn::NODE,
        )
        .map_err(|e| anyhow!("client tls: {e}"))?;
        quic.push(honeybee_agent::transport::client_config(tls).map_err(|e| anyhow!(e))?);
    }
    store.close().await?;
    Ok(quic)
}
