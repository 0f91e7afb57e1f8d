//! The core's Prometheus metrics: counters the hot paths bump (handshakes, ingest), the
//! figures read at scrape time from the state that already holds them (connections,
//! queues, modules), the store's size (sampled: on PostgreSQL it is a query), the rates
//! `honeybee status` shows, and the loopback `/metrics` endpoint (`[metrics] listen` in
//! `core.toml`, off by default).
//!
//! `prometheus-client` (the Prometheus project's own Rust client) rather than the
//! `metrics` facade: its registries are values, not one process-wide recorder, so a core
//! and an agent in one process (`honeybee up`) each serve their own metrics, and tests
//! that start several cores never see each other's counts.

pub mod http;

use crate::server::{CoreError, Shared};
use honeybee_proto::admin::CoreLoad;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Every name starts with this (`honeybee_core_…`).
const PREFIX: &str = "honeybee_core";
/// How often the rates of `honeybee status` are sampled, and over how many samples.
const RATE_TICK: Duration = Duration::from_secs(1);
const RATE_WINDOW: usize = 10;
/// How often the store's size is sampled (for `/metrics` and `honeybee status`): on
/// PostgreSQL it is a query (`pg_database_size`), which a scrape should not wait for.
const STORE_SIZE_TICK: Duration = Duration::from_secs(15);
/// The file beside `core.toml` that holds the bound metrics address while the core runs
/// (as `core.addr` and `shim.addr` do), so tests and tools find a port-0 listener.
pub const ADDR_FILE: &str = "metrics.addr";

type Reason = [(&'static str, &'static str); 1];

/// The counters the core's tasks bump; everything else is read when scraped.
#[derive(Debug)]
pub struct CoreMetrics {
    registry: Registry,
    handshakes: Counter,
    handshake_failures: Family<Reason, Counter>,
    refused: Counter,
    ingest_batches: Counter,
    ingest_events: Family<[(&'static str, &'static str); 1], Counter>,
    commit_seconds: Histogram,
    commits_in_flight: Gauge,
    rates: Mutex<VecDeque<Sample>>,
    listen: OnceLock<SocketAddr>,
    /// The store's size at the last sample ([`STORE_SIZE_TICK`]).
    store_bytes: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    handshakes: u64,
    failures: u64,
    events: u64,
}

impl Default for CoreMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl CoreMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let handshakes = Counter::default();
        registry.register(
            "handshakes",
            "QUIC handshakes completed (every ALPN: nodes, enrolment, admin, modules)",
            handshakes.clone(),
        );
        let handshake_failures = Family::<Reason, Counter>::default();
        registry.register(
            "handshake_failures",
            "QUIC handshakes that failed (reason: error or timeout)",
            handshake_failures.clone(),
        );
        let refused = Counter::default();
        registry.register(
            "connections_refused",
            "Connection attempts refused at limits.max_connections",
            refused.clone(),
        );
        let ingest_batches = Counter::default();
        registry.register(
            "ingest_batches",
            "Telemetry batches committed to the store",
            ingest_batches.clone(),
        );
        let ingest_events = Family::<[(&'static str, &'static str); 1], Counter>::default();
        registry.register(
            "ingest_events",
            "Events of nodes' telemetry batches, by outcome: stored, duplicate (a resend, \
             ignored) or invalid (dropped)",
            ingest_events.clone(),
        );
        // 0.5 ms .. ~4 s: a batched SQLite commit is usually milliseconds.
        let commit_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register_with_unit(
            "ingest_commit_duration",
            "Time from handing a telemetry batch to the store to its commit",
            Unit::Seconds,
            commit_seconds.clone(),
        );
        let commits_in_flight = Gauge::default();
        registry.register(
            "ingest_commits_in_flight",
            "Telemetry batches waiting for the store's writer (its queue, as ingest sees it)",
            commits_in_flight.clone(),
        );
        // A gauge of 1 with the version as a label (`*_build_info`, as Prometheus' own):
        // the OpenMetrics `info` type is unknown to the classic text format's parsers
        // (promtool check metrics refuses it).
        let build = Family::<[(&'static str, &'static str); 1], Gauge>::default();
        build
            .get_or_create(&[("version", env!("CARGO_PKG_VERSION"))])
            .set(1);
        registry.register("build_info", "The running core's version (always 1)", build);
        // Every series from the start, so a dashboard shows 0 rather than nothing.
        for r in ["error", "timeout"] {
            let _ = handshake_failures.get_or_create(&[("reason", r)]);
        }
        for o in ["stored", "duplicate", "invalid"] {
            let _ = ingest_events.get_or_create(&[("outcome", o)]);
        }
        CoreMetrics {
            registry,
            handshakes,
            handshake_failures,
            refused,
            ingest_batches,
            ingest_events,
            commit_seconds,
            commits_in_flight,
            rates: Mutex::new(VecDeque::with_capacity(RATE_WINDOW + 1)),
            listen: OnceLock::new(),
            store_bytes: AtomicU64::new(0),
        }
    }

    pub fn handshake_done(&self) {
        self.handshakes.inc();
    }

    /// `reason`: `error` or `timeout`.
    pub fn handshake_failed(&self, reason: &'static str) {
        self.handshake_failures
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    pub fn connection_refused(&self) {
        self.refused.inc();
    }

    /// Call just before a batch goes to the store; `invalid`: events validation dropped.
    /// The guard counts the batch as in flight until [`Commit::done`] or drop.
    pub fn commit_start(&self, invalid: usize) -> Commit<'_> {
        self.ingest_events
            .get_or_create(&[("outcome", "invalid")])
            .inc_by(invalid as u64);
        self.commits_in_flight.inc();
        Commit {
            m: self,
            started: Instant::now(),
        }
    }

    /// The bound address of `/metrics`, when it is served.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.get().copied()
    }

    fn totals(&self) -> Sample {
        let failures = ["error", "timeout"]
            .iter()
            .map(|r| {
                self.handshake_failures
                    .get_or_create(&[("reason", r)])
                    .get()
            })
            .sum();
        Sample {
            at: Instant::now(),
            handshakes: self.handshakes.get(),
            failures,
            events: self
                .ingest_events
                .get_or_create(&[("outcome", "stored")])
                .get(),
        }
    }

    fn tick(&self) {
        let s = self.totals();
        let mut r = self.rates.lock().unwrap_or_else(|p| p.into_inner());
        r.push_back(s);
        while r.len() > RATE_WINDOW + 1 {
            r.pop_front();
        }
    }

    /// Per-second rates of (handshakes, handshake failures, stored events) over the last
    /// [`RATE_WINDOW`] samples; zero until two samples exist.
    fn rates(&self) -> (f64, f64, f64) {
        let r = self.rates.lock().unwrap_or_else(|p| p.into_inner());
        let (Some(a), Some(b)) = (r.front(), r.back()) else {
            return (0.0, 0.0, 0.0);
        };
        let dt = b.at.duration_since(a.at).as_secs_f64();
        if dt <= 0.0 {
            return (0.0, 0.0, 0.0);
        }
        let per = |x: u64, y: u64| y.saturating_sub(x) as f64 / dt;
        (
            per(a.handshakes, b.handshakes),
            per(a.failures, b.failures),
            per(a.events, b.events),
        )
    }
}

/// A telemetry batch on its way into the store (see [`CoreMetrics::commit_start`]).
pub struct Commit<'a> {
    m: &'a CoreMetrics,
    started: Instant,
}

impl Commit<'_> {
    pub fn done(self, outcome: &crate::store::InsertOutcome) {
        let m = self.m;
        m.commit_seconds
            .observe(self.started.elapsed().as_secs_f64());
        m.ingest_batches.inc();
        m.ingest_events
            .get_or_create(&[("outcome", "stored")])
            .inc_by(outcome.inserted);
        m.ingest_events
            .get_or_create(&[("outcome", "duplicate")])
            .inc_by(outcome.duplicates);
    }
}

impl Drop for Commit<'_> {
    fn drop(&mut self) {
        self.m.commits_in_flight.dec();
    }
}

/// Starts the rate sampler and, when `[metrics] listen` is set, binds and serves
/// `/metrics`. A configured address that cannot be bound stops the core: an operator
/// who asked for metrics should not find out from an empty dashboard.
pub async fn start(
    shared: &Arc<Shared>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Result<(), CoreError> {
    let addr_file = shared.cfg.data_dir.join(ADDR_FILE);
    let _ = std::fs::remove_file(&addr_file);
    let sampler = Arc::downgrade(shared);
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(RATE_TICK);
        loop {
            tick.tick().await;
            match sampler.upgrade() {
                Some(s) => s.metrics.tick(),
                None => return,
            }
        }
    });
    // The store's size (the gauge and `honeybee status`): sampled at once, then every
    // STORE_SIZE_TICK, in a task of its own, so that a database slow to answer never
    // holds up the core's start.
    let sampler = Arc::downgrade(shared);
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(STORE_SIZE_TICK);
        loop {
            tick.tick().await;
            match sampler.upgrade() {
                Some(s) => sample_store_size(&s).await,
                None => return,
            }
        }
    });
    let Some(want) = shared.cfg.metrics_listen else {
        return Ok(());
    };
    let listener = tokio::net::TcpListener::bind(want).await.map_err(|e| {
        CoreError::Other(format!(
            "cannot listen for metrics on {want}: {e} (change [metrics] listen in core.toml)"
        ))
    })?;
    let bound = listener.local_addr().unwrap_or(want);
    let _ = shared.metrics.listen.set(bound);
    let _ = honeybee_pki::files::write_public(&addr_file, bound.to_string().as_bytes());
    tracing::info!(listen = %bound, "metrics served at /metrics");
    let weak = Arc::downgrade(shared);
    tasks.spawn(http::serve(listener, move || match weak.upgrade() {
        Some(s) => render(&s),
        None => String::new(),
    }));
    Ok(())
}

/// Reads the store's size into [`CoreMetrics`]; a failed read keeps the last sample.
async fn sample_store_size(shared: &Shared) {
    match shared.store.size_bytes().await {
        Ok(n) => shared.metrics.store_bytes.store(n, Ordering::Relaxed),
        Err(e) => tracing::debug!(error = %e, "store size not sampled"),
    }
}

/// The whole exposition: the counters, then what is read from the core's state now.
pub fn render(shared: &Shared) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let live = live_registry(shared);
    // Writing to a String cannot fail.
    let _ = encode_registry(&mut out, &shared.metrics.registry);
    let _ = encode_registry(&mut out, &live);
    let _ = encode_eof(&mut out);
    out
}

type ModuleLabel = [(&'static str, String); 1];

/// Gauges and per-module counters made from the state that already keeps them, so the
/// hot paths pay nothing for them.
fn live_registry(shared: &Shared) -> Registry {
    let mut r = Registry::with_prefix(PREFIX);
    let gauge = |r: &mut Registry, name: &str, help: &str, v: i64| {
        let g = Gauge::<i64>::default();
        g.set(v);
        r.register(name, help, g);
    };
    gauge(
        &mut r,
        "connections",
        "Live QUIC connections (every ALPN)",
        shared.connections.load(Ordering::Relaxed) as i64,
    );
    gauge(
        &mut r,
        "handshakes_in_flight",
        "QUIC handshakes under way",
        shared.handshaking.load(Ordering::Relaxed) as i64,
    );
    gauge(
        &mut r,
        "nodes_online",
        "Nodes (agents and relays) with a live, welcomed connection",
        shared.registry.online_count() as i64,
    );
    gauge(
        &mut r,
        "modules_connected",
        "Modules connected over QUIC or the TCP shim",
        shared.modules.connected_count() as i64,
    );
    gauge(
        &mut r,
        "bus_subscriptions",
        "Event subscriptions of connected modules",
        shared.bus.subscription_count() as i64,
    );
    let g = Gauge::<i64>::default();
    g.set(shared.metrics.store_bytes.load(Ordering::Relaxed) as i64);
    r.register_with_unit(
        "store_size",
        "Size of the store, sampled every 15 s (SQLite: database and write-ahead log on disk; PostgreSQL: pg_database_size)",
        Unit::Bytes,
        g,
    );
    let g = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    g.set(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
            - shared.started.elapsed().as_secs_f64(),
    );
    r.register_with_unit(
        "start_time",
        "When the core started, since the Unix epoch",
        Unit::Seconds,
        g,
    );

    if let Some(c) = &shared.cluster {
        // The module bus's tail of the other cores' events (`cluster/tail.rs`).
        let t = &c.counters;
        let counter = |r: &mut Registry, name: &str, help: &str, v: u64| {
            let c = Counter::<u64>::default();
            c.inc_by(v);
            r.register(name, help, c);
        };
        counter(
            &mut r,
            "bus_tail_events",
            "Other cores' events offered to this core's module subscriptions",
            t.tailed.load(Ordering::Relaxed),
        );
        counter(
            &mut r,
            "bus_tail_late",
            "Other cores' events offered after a later event of their node",
            t.tail_late.load(Ordering::Relaxed),
        );
        counter(
            &mut r,
            "bus_tail_skipped",
            "Holes in a node's sequence the module bus tail stopped waiting for",
            t.tail_skipped.load(Ordering::Relaxed),
        );
        gauge(
            &mut r,
            "bus_tail_held",
            "Other cores' events held back, waiting for a hole in their node's sequence",
            t.tail_held.load(Ordering::Relaxed) as i64,
        );
    }

    let deliveries = Family::<ModuleLabel, Counter>::default();
    let misses = Family::<ModuleLabel, Counter>::default();
    let depth = Family::<ModuleLabel, Gauge>::default();
    for (name, m) in shared.modules.snapshot() {
        let l = [("module", name)];
        deliveries.get_or_create(&l).inc_by(m.delivered);
        misses.get_or_create(&l).inc_by(m.dropped);
        depth.get_or_create(&l).set(m.queue_depth as i64);
    }
    r.register(
        "bus_deliveries",
        "Events queued for a module (since that module's connection began)",
        deliveries,
    );
    r.register(
        "bus_misses",
        "Events a module missed because its queue was full (since its connection began)",
        misses,
    );
    r.register(
        "bus_queue_depth",
        "Deliveries waiting in a module's queue",
        depth,
    );
    r
}

/// What `honeybee status` shows of the core's load (`AdminRequest::Load`).
pub fn load(shared: &Shared) -> CoreLoad {
    let (handshakes_per_s, handshake_failures_per_s, ingest_events_per_s) = shared.metrics.rates();
    let mut module_queues: Vec<(String, u64)> = shared
        .modules
        .snapshot()
        .into_iter()
        .map(|(n, m)| (n, m.queue_depth))
        .collect();
    module_queues.sort();
    CoreLoad {
        connections: shared.connections.load(Ordering::Relaxed) as u64,
        handshakes_in_flight: shared.handshaking.load(Ordering::Relaxed) as u64,
        handshakes_per_s,
        handshake_failures_per_s,
        ingest_events_per_s,
        ingest_commits_in_flight: shared.metrics.commits_in_flight.get().max(0) as u64,
        module_queues,
        store_bytes: shared.metrics.store_bytes.load(Ordering::Relaxed),
        metrics_listen: shared.metrics.listen_addr().map(|a| a.to_string()),
        bus_tail: shared.cluster.as_ref().map(|c| {
            let t = &c.counters;
            honeybee_proto::admin::BusTail {
                tailed: t.tailed.load(Ordering::Relaxed),
                held: t.tail_held.load(Ordering::Relaxed),
                late: t.tail_late.load(Ordering::Relaxed),
                skipped: t.tail_skipped.load(Ordering::Relaxed),
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_conventional_names() {
        let m = CoreMetrics::new();
        m.handshake_done();
        m.handshake_failed("timeout");
        let c = m.commit_start(2);
        c.done(&crate::store::InsertOutcome {
            inserted: 3,
            duplicates: 1,
            ..Default::default()
        });
        let mut out = String::new();
        encode_registry(&mut out, &m.registry).unwrap();
        for line in [
            "honeybee_core_handshakes_total 1",
            "honeybee_core_handshake_failures_total{reason=\"timeout\"} 1",
            "honeybee_core_ingest_events_total{outcome=\"stored\"} 3",
            "honeybee_core_ingest_events_total{outcome=\"duplicate\"} 1",
            "honeybee_core_ingest_events_total{outcome=\"invalid\"} 2",
            "honeybee_core_ingest_commit_duration_seconds_count 1",
            "honeybee_core_ingest_commits_in_flight 0",
            "# UNIT honeybee_core_ingest_commit_duration_seconds seconds",
        ] {
            assert!(
                out.lines().any(|l| l == line),
                "{line:?} missing in:\n{out}"
            );
        }
    }

    #[test]
    fn metrics_stay_on_loopback_unless_allowed() {
        use crate::config::RawMetrics;
        let mut m = RawMetrics {
            listen: "192.0.2.1:9464".into(),
            allow_non_loopback: false,
        };
        assert!(m.validate().unwrap_err().to_string().contains("loopback"));
        m.allow_non_loopback = true;
        assert_eq!(
            m.validate().unwrap(),
            Some("192.0.2.1:9464".parse().unwrap())
        );
        m.listen = "[::1]:9464".into();
        m.allow_non_loopback = false;
        assert_eq!(m.validate().unwrap(), Some("[::1]:9464".parse().unwrap()));
        assert_eq!(RawMetrics::default().validate().unwrap(), None);
        assert!(
            RawMetrics {
                listen: "nope".into(),
                ..Default::default()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn rates_come_from_the_window() {
        let m = CoreMetrics::new();
        assert_eq!(m.rates(), (0.0, 0.0, 0.0));
        m.tick();
        for _ in 0..20 {
            m.handshake_done();
        }
        std::thread::sleep(Duration::from_millis(20));
        m.tick();
        let (h, f, e) = m.rates();
        assert!(h > 0.0, "{h}");
        assert_eq!((f, e), (0.0, 0.0));
    }
}
