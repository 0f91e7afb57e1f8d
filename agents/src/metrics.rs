//! The agent's Prometheus metrics: sessions per service, events spooled and dropped, the
//! spool's depth, connections and reconnects to the core, on a loopback `/metrics`
//! (`[metrics] listen` in `agent.toml`, off by default).
//!
//! `prometheus-client` registries are values, not one process-wide recorder, so an agent
//! beside a core in one process (`honeybee up`) serves only its own figures.

pub mod http;

use crate::sink::NewEvent;
use crate::spool::Spool;
use honeybee_proto::event::EventKind;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::mpsc;

const PREFIX: &str = "honeybee_agent";
/// The file in the agent's data directory that holds the bound metrics address while
/// the agent runs, so tests and tools find a port-0 listener.
pub const ADDR_FILE: &str = "metrics.addr";
/// The port `honeybee up --metrics` gives the local node (the core takes 9464).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9465";

/// `[metrics]` of `agent.toml` (the core's `core.toml` has the same section).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// TCP `IP:PORT` of `/metrics`; empty (the default) turns metrics off.
    #[serde(default)]
    pub listen: String,
    /// Allow an address other than loopback. The endpoint has no authentication and
    /// tells whoever asks that this machine is a honeypot sensor.
    #[serde(default)]
    pub allow_non_loopback: bool,
}

impl MetricsConfig {
    pub fn is_off(&self) -> bool {
        self.listen.trim().is_empty() && !self.allow_non_loopback
    }

    /// The address to serve on, `None` when off; refuses a non-loopback one unless
    /// `allow_non_loopback`.
    pub fn validate(&self) -> Result<Option<SocketAddr>, String> {
        let v = self.listen.trim();
        if v.is_empty() {
            return Ok(None);
        }
        let a: SocketAddr = v.parse().map_err(|e| {
            format!("metrics.listen = {v:?}: {e}; expected IP:PORT such as {DEFAULT_LISTEN}")
        })?;
        if !a.ip().is_loopback() && !self.allow_non_loopback {
            return Err(format!(
                "metrics.listen = {v:?}: metrics have no authentication and would tell anyone \
                 who asks that this is a sensor; keep them on loopback, or set \
                 metrics.allow_non_loopback = true behind a firewall"
            ));
        }
        Ok(Some(a))
    }
}

type ServiceLabel = [(&'static str, String); 1];

/// The counters the agent bumps as events pass; the rest is read when scraped.
#[derive(Debug)]
pub struct AgentMetrics {
    registry: Registry,
    sessions: Family<ServiceLabel, Counter>,
    active: Family<ServiceLabel, Gauge>,
    spooled: Counter,
}

/// What is read from the running agent at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Live {
    pub spool_depth: u64,
    pub spool_dropped: u64,
    /// Welcomed connections to the core since the agent started.
    pub connections: u64,
    pub connected: bool,
    /// Bytes of captures waiting for upload.
    pub capture_spool_bytes: u64,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl AgentMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let sessions = Family::<ServiceLabel, Counter>::default();
        registry.register(
            "sessions",
            "Attacker sessions (connections) a honeypot service accepted",
            sessions.clone(),
        );
        let active = Family::<ServiceLabel, Gauge>::default();
        registry.register(
            "sessions_active",
            "Attacker sessions open now",
            active.clone(),
        );
        let spooled = Counter::default();
        registry.register(
            "events_spooled",
            "Events journaled to the disk spool",
            spooled.clone(),
        );
        // A gauge of 1 with the version as a label (`*_build_info`, as Prometheus' own):
        // the OpenMetrics `info` type is unknown to the classic text format's parsers
        // (promtool check metrics refuses it).
        let build = Family::<[(&'static str, &'static str); 1], Gauge>::default();
        build
            .get_or_create(&[("version", crate::upgrade::VERSION)])
            .set(1);
        registry.register(
            "build_info",
            "The running agent's version (always 1)",
            build,
        );
        AgentMetrics {
            registry,
            sessions,
            active,
            spooled,
        }
    }

    /// Counts what one event says about sessions, before it is spooled.
    fn saw(&self, e: &NewEvent) {
        match e.kind {
            EventKind::Connect => {
                let l = [("service", e.service.clone())];
                self.sessions.get_or_create(&l).inc();
                self.active.get_or_create(&l).inc();
            }
            EventKind::Disconnect { .. } => {
                let g = self.active.get_or_create(&[("service", e.service.clone())]);
                // A session that began before a restart ends at zero, not below.
                if g.get() > 0 {
                    g.dec();
                }
            }
            _ => {}
        }
    }

    /// The whole exposition: counters, then `live`.
    pub fn render(&self, live: Live) -> String {
        let mut r = Registry::with_prefix(PREFIX);
        let counter = |r: &mut Registry, name: &str, help: &str, v: u64| {
            let c = Counter::<u64>::default();
            c.inc_by(v);
            r.register(name, help, c);
        };
        let gauge = |r: &mut Registry, name: &str, help: &str, v: u64| {
            let g = Gauge::<i64>::default();
            g.set(v as i64);
            r.register(name, help, g);
        };
        counter(
            &mut r,
            "events_dropped",
            "Events the full spool discarded, oldest first (spool_max_events)",
            live.spool_dropped,
        );
        gauge(
            &mut r,
            "spool_depth",
            "Events in the spool not yet acknowledged by the core",
            live.spool_depth,
        );
        gauge(
            &mut r,
            "capture_spool_bytes",
            "Bytes of captures (transcripts, uploads) waiting for upload",
            live.capture_spool_bytes,
        );
        counter(
            &mut r,
            "connections",
            "Connections to the core that were welcomed",
            live.connections,
        );
        counter(
            &mut r,
            "reconnects",
            "Welcomed connections to the core after the first",
            live.connections.saturating_sub(1),
        );
        gauge(
            &mut r,
            "connected",
            "1 while a welcomed connection to the core is up",
            live.connected as u64,
        );
        let mut out = String::with_capacity(4 * 1024);
        // Writing to a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry);
        let _ = encode_registry(&mut out, &r);
        let _ = encode_eof(&mut out);
        out
    }
}

/// Drains the services' sink into the spool (as [`Spool::ingest`]), counting sessions
/// and spooled events on the way.
pub async fn ingest(spool: Spool, mut rx: mpsc::Receiver<NewEvent>, metrics: Arc<AgentMetrics>) {
    const APPEND_BATCH: usize = 1024;
    let mut buf = Vec::with_capacity(APPEND_BATCH);
    while rx.recv_many(&mut buf, APPEND_BATCH).await > 0 {
        buf.iter().for_each(|e| metrics.saw(e));
        let n = buf.len() as u64;
        if let Err(e) = spool.append(std::mem::take(&mut buf)).await {
            tracing::error!(error = %e, "events could not be spooled");
            return;
        }
        metrics.spooled.inc_by(n);
    }
}

/// Binds `listen`, records the bound address in `data_dir`, and returns the task that
/// serves `/metrics` from `live()` (`None` once the agent is gone).
pub async fn serve(
    listen: SocketAddr,
    data_dir: &Path,
    metrics: Arc<AgentMetrics>,
    live: impl Fn() -> Option<Live> + Send + Sync + 'static,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        format!(
            "cannot listen for metrics on {listen}: {e} (change [metrics] listen in agent.toml)"
        )
    })?;
    let bound = listener.local_addr().unwrap_or(listen);
    let _ =
        honeybee_pki::files::write_public(&data_dir.join(ADDR_FILE), bound.to_string().as_bytes());
    tracing::info!(listen = %bound, "metrics served at /metrics");
    Ok(tokio::spawn(http::serve(listener, move || {
        live().map(|l| metrics.render(l)).unwrap_or_default()
    })))
}

/// Forgets a bound address of an earlier run (metrics off now, or about to be rebound).
pub fn clear_addr(data_dir: &Path) {
    let _ = std::fs::remove_file(data_dir.join(ADDR_FILE));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_counts_render_with_conventional_names() {
        let m = AgentMetrics::new();
        let ev = |kind| NewEvent::now("ssh", None, None, None, kind);
        m.saw(&ev(EventKind::Connect));
        m.saw(&ev(EventKind::Connect));
        m.saw(&ev(EventKind::Disconnect {
            duration_ms: 1,
            bytes_in: 0,
            bytes_out: 0,
        }));
        let out = m.render(Live {
            spool_depth: 7,
            spool_dropped: 2,
            connections: 3,
            connected: true,
            capture_spool_bytes: 0,
        });
        for line in [
            "honeybee_agent_sessions_total{service=\"ssh\"} 2",
            "honeybee_agent_sessions_active{service=\"ssh\"} 1",
            "honeybee_agent_events_dropped_total 2",
            "honeybee_agent_spool_depth 7",
            "honeybee_agent_reconnects_total 2",
            "honeybee_agent_connected 1",
            "# EOF",
        ] {
            assert!(
                out.lines().any(|l| l == line),
                "{line:?} missing in:\n{out}"
            );
        }
    }

    #[test]
    fn a_non_loopback_address_needs_consent() {
        let mut c = MetricsConfig {
            listen: "0.0.0.0:9465".into(),
            allow_non_loopback: false,
        };
        assert!(c.validate().unwrap_err().contains("loopback"));
        c.allow_non_loopback = true;
        assert_eq!(c.validate().unwrap(), Some("0.0.0.0:9465".parse().unwrap()));
        assert_eq!(MetricsConfig::default().validate().unwrap(), None);
        assert!(MetricsConfig::default().is_off());
    }
}
