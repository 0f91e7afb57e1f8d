//! `honeybee agent run`: keeps the node's services running, journals their events, and
//! keeps one connection to the core — reconnecting with jittered backoff — over which it
//! sends telemetry, answers commands, applies configuration and renews its certificate.

use crate::captures::{CaptureSpool, NewCapture};
use crate::config::{AgentConfig, AgentPaths};
use crate::enroll::load_identity;
use crate::health::{HealthSampler, rss_bytes};
use crate::services::{Limits, ServiceManager};
use crate::sink::{EventSink, now_ms};
use crate::spool::Spool;
use crate::transport::{
    FrameIoError, client_config_with, come_back, connect_attempt, endpoint_for, read_frame,
    write_frame,
};
use honeybee_pki::files::write_private;
use honeybee_pki::keys::{KeyPair, make_csr};
use honeybee_proto::codec::FrameLimit;
use honeybee_proto::config::NodeConfig;
use honeybee_proto::control::{AgentMsg, Command, CoreMsg, Health, Hello, NodeMode};
use honeybee_proto::event::EventBatch;
use honeybee_proto::reconnect::{ComeBack, Reconnect};
use honeybee_proto::session::{AgentSession, BATCH_EVENTS};
use honeybee_proto::stream::{StreamKind, close};
pub use honeybee_proto::timing::Timing;
use honeybee_proto::{Role, WIRE_VERSION, alpn};
use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, mpsc, watch};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] crate::config::AgentConfigError),
    #[error("identity: {0}")]
    Identity(String),
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
    #[error("the node's certificate has expired; enrol again with a new token")]
    Expired,
    #[error("metrics: {0}")]
    Metrics(String),
    /// A verified upgrade (or a rollback) asks for this executable to replace the
    /// process; the caller execs it (see `upgrade::slots`).
    #[error("restarting into {}", .0.display())]
    Restart(PathBuf),
}

/// How to run an agent.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub data_dir: PathBuf,
    pub mode: NodeMode,
    pub limits: Limits,
    /// Run the honeypot listeners the core configures. Harnesses that inject synthetic
    /// events (netsim, benchmarks) turn this off; everything else stays the same.
    pub services: bool,
    /// The session's timers: health interval, acknowledgement stall, reconnection
    /// backoff, QUIC keep-alive and idle timeout (production defaults; tests compress).
    pub timing: Timing,
    /// Serve `/metrics` here whatever `agent.toml` says (`honeybee up --metrics`).
    pub metrics: Option<SocketAddr>,
}

impl AgentOptions {
    /// A full node with default limits and its services on.
    pub fn full(data_dir: PathBuf) -> Self {
        AgentOptions {
            data_dir,
            mode: NodeMode::Full,
            limits: Limits::default(),
            services: true,
            timing: Timing::default(),
            metrics: None,
        }
    }
}

/// The node's current certificate and key, replaced on renewal.
struct Identity {
    ca_der: Vec<u8>,
    cert_der: Vec<u8>,
    /// The intermediate that issued `cert_der`, if a joined core's did (sent after it).
    chain: Vec<Vec<u8>>,
    key: KeyPair,
    /// When this certificate was obtained. The CA backdates notBefore for clock skew, so
    /// the lifetime that renewal is scheduled on runs from here, not from notBefore.
    obtained_ms: i64,
    not_after_ms: i64,
}

impl Identity {
    fn load(paths: &AgentPaths) -> Result<Identity, AgentError> {
        let (ca_der, cert_der, key) = load_identity(paths).map_err(AgentError::Identity)?;
        let (not_before_ms, not_after_ms) = honeybee_pki::identity::validity_ms(&cert_der)
            .map_err(|e| AgentError::Identity(e.to_string()))?;
        // The identity file is rewritten exactly when a certificate arrives.
        let obtained_ms = std::fs::metadata(paths.identity())
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(not_before_ms)
            .clamp(not_before_ms, not_after_ms);
        Ok(Identity {
            ca_der,
            cert_der,
            chain: crate::enroll::load_chain(paths),
            key,
            obtained_ms,
            not_after_ms,
        })
    }

    fn quic_config(&self, timing: &Timing) -> Result<quinn::ClientConfig, String> {
        let tls = honeybee_pki::tls::client_config(
            &self.ca_der,
            std::iter::once(&self.cert_der)
                .chain(&self.chain)
                .map(|c| c.clone().into())
                .collect(),
            self.key.private_key_der(),
            Role::Core,
            alpn::NODE,
        )
        .map_err(|e| e.to_string())?;
        client_config_with(tls, timing)
    }

    /// When to renew: about 2/3 into the lifetime, with jitter so a fleet enrolled
    /// together does not renew together.
    fn renew_at_ms(&self) -> i64 {
        honeybee_proto::session::renew_at_ms(
            self.obtained_ms,
            self.not_after_ms,
            rand::random::<u64>(),
        )
    }
}

/// Everything the connection loop shares with the rest of the agent.
struct State {
    paths: AgentPaths,
    cfg: AgentConfig,
    mode: NodeMode,
    timing: Timing,
    spool: Spool,
    captures: CaptureSpool,
    run_services: bool,
    services: Mutex<ServiceManager>,
    connected: watch::Sender<bool>,
    /// The live, welcomed connection to the core (a relay forwards over it).
    core_conn: watch::Sender<Option<quinn::Connection>>,
    connections: AtomicU64,
    identity: std::sync::RwLock<Identity>,
    health: std::sync::Mutex<HealthSampler>,
}

/// A running agent, for callers that embed it (`honeybee up`, netsim, benchmarks).
pub struct Agent {
    state: Arc<State>,
    sink: EventSink,
    connection: tokio::task::JoinHandle<Result<(), AgentError>>,
    ingest: tokio::task::JoinHandle<()>,
    /// The `/metrics` server, when metrics are on.
    exporter: Option<tokio::task::JoinHandle<()>>,
}

impl Agent {
    /// Starts services (from the last known configuration), the spool and the connection.
    pub async fn start(opts: AgentOptions) -> Result<Agent, AgentError> {
        honeybee_pki::install_crypto_provider();
        let paths = AgentPaths::new(&opts.data_dir);
        let cfg = AgentConfig::load(&paths)?;
        let identity = Identity::load(&paths)?;
        if identity.not_after_ms <= now_ms() {
            return Err(AgentError::Expired);
        }
        let metrics_listen = match opts.metrics {
            Some(a) => Some(a),
            None => cfg.metrics.validate().map_err(AgentError::Metrics)?,
        };
        let spool = Spool::open(&paths.spool(), cfg.spool_max_events)?;
        let captures = CaptureSpool::open(
            &paths.captures(),
            crate::captures::DEFAULT_MAX_PENDING_BYTES,
        )
        .map_err(|e| AgentError::Identity(format!("capture spool: {e}")))?;
        let (sink, rx) = EventSink::channel(4096);
        let metrics = Arc::new(crate::metrics::AgentMetrics::new());
        let ingest = tokio::spawn(crate::metrics::ingest(spool.clone(), rx, metrics.clone()));
        let mut services =
            ServiceManager::new(sink.clone(), opts.data_dir.clone(), opts.limits.clone())
                .with_captures(captures.clone());
        // Keep honeypotting with the last known configuration while the core is away.
        if opts.services
            && let Some(last) = load_node_config(&paths)
        {
            services.apply(&last).await;
        }
        let state = Arc::new(State {
            paths,
            cfg,
            mode: opts.mode,
            timing: opts.timing,
            spool,
            captures,
            run_services: opts.services,
            services: Mutex::new(services),
            identity: std::sync::RwLock::new(identity),
            health: std::sync::Mutex::new(HealthSampler::new()),
            connected: watch::channel(false).0,
            core_conn: watch::channel(None).0,
            connections: AtomicU64::new(0),
        });
        tracing::info!(
            node = state.cfg.node_id,
            core = state.cfg.core,
            "agent starting"
        );
        crate::metrics::clear_addr(&opts.data_dir);
        let exporter = match metrics_listen {
            Some(a) => {
                let weak = Arc::downgrade(&state);
                let live = move || weak.upgrade().map(|s| live_metrics(&s));
                let served = crate::metrics::serve(a, &opts.data_dir, metrics, live).await;
                Some(served.map_err(AgentError::Metrics)?)
            }
            None => None,
        };
        if crate::upgrade::slots::restart_enabled() {
            tokio::spawn(crate::upgrade::slots::watchdog(opts.data_dir.clone()));
        }
        let connection = tokio::spawn(connection_loop(state.clone()));
        Ok(Agent {
            state,
            sink,
            connection,
            ingest,
            exporter,
        })
    }

    /// Reports events as a service would (spooled, then delivered).
    pub fn sink(&self) -> &EventSink {
        &self.sink
    }

    /// Queues a capture for delivery.
    pub fn capture(
        &self,
        c: NewCapture,
    ) -> Result<honeybee_proto::capture::CaptureHeader, crate::captures::CaptureSpoolError> {
        self.state.captures.add(c)
    }

    pub fn spool(&self) -> &Spool {
        &self.state.spool
    }

    pub fn captures(&self) -> &CaptureSpool {
        &self.state.captures
    }

    /// Whether the agent has a live, welcomed connection to the core.
    pub fn connected(&self) -> watch::Receiver<bool> {
        self.state.connected.subscribe()
    }

    /// The live, welcomed connection to the core, when there is one.
    pub fn core_connection(&self) -> watch::Receiver<Option<quinn::Connection>> {
        self.state.core_conn.subscribe()
    }

    /// Connections made (welcomed) so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::Relaxed)
    }

    /// Stops services, flushes what they reported into the spool and closes it.
    pub async fn stop(self) -> Result<(), AgentError> {
        let Agent {
            state,
            sink,
            connection,
            ingest,
            exporter,
        } = self;
        if let Some(e) = exporter {
            e.abort();
        }
        connection.abort();
        let result = match connection.await {
            Ok(r) => r,
            Err(_) => Ok(()),
        };
        state.services.lock().await.shutdown().await;
        // Once every sender is gone the ingest task drains the channel and ends.
        drop(sink);
        let _ = tokio::time::timeout(Duration::from_secs(5), ingest).await;
        state.spool.close().await;
        result
    }

    /// Waits until the connection loop gives up (an expired certificate) — never, otherwise.
    pub async fn wait(&mut self) -> Result<(), AgentError> {
        match (&mut self.connection).await {
            Ok(r) => r,
            Err(_) => Ok(()),
        }
    }
}

/// Runs the agent until `shutdown` completes.
pub async fn run(opts: AgentOptions, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
    let mut agent = Agent::start(opts).await?;
    let failed = tokio::select! {
        r = agent.wait() => Some(r),
        _ = shutdown => {
            tracing::info!("agent shutting down");
            None
        }
        p = crate::upgrade::slots::restart_requested() => Some(Err(AgentError::Restart(p))),
    };
    let stopped = agent.stop().await;
    match failed {
        Some(r) => r,
        None => stopped,
    }
}

/// What `/metrics` reads from the running agent.
fn live_metrics(s: &State) -> crate::metrics::Live {
    crate::metrics::Live {
        spool_depth: s.spool.depth(),
        spool_dropped: s.spool.dropped(),
        connections: s.connections.load(Ordering::Relaxed),
        connected: *s.connected.borrow(),
        capture_spool_bytes: s.captures.used_bytes(),
    }
}

fn load_node_config(paths: &AgentPaths) -> Option<NodeConfig> {
    let bytes = std::fs::read(paths.node_config()).ok()?;
    postcard::from_bytes(&bytes).ok()
}

fn save_node_config(paths: &AgentPaths, cfg: &NodeConfig) {
    if let Ok(bytes) = postcard::to_allocvec(cfg)
        && let Err(e) = honeybee_pki::files::write_public(&paths.node_config(), &bytes)
    {
        tracing::warn!(error = %e, "could not persist node config");
    }
}

/// Connects, serves, and reconnects, forever: quick probes right after a core that
/// welcomed us goes away (at the time its close says, if it said), jittered exponential
/// backoff for a core that stays away or was never reached (`honeybee_proto::reconnect`).
async fn connection_loop(state: Arc<State>) -> Result<(), AgentError> {
    let timing = state.timing;
    let clock = tokio::time::Instant::now();
    let mut schedule = Reconnect::new(&timing);
    let mut quick = false;
    let mut endpoints: Vec<(bool, quinn::Endpoint)> = Vec::new();
    // The address of a core that went away without a come-back, and when: tried last for
    // a while, so a crashed core's agents reach the next core without first waiting out a
    // handshake deadline on the dead one (`resolve::demote`).
    let mut vanished: Option<(SocketAddr, Duration)> = None;
    loop {
        if state.identity.read().map(|i| i.not_after_ms).unwrap_or(0) <= now_ms() {
            return Err(AgentError::Expired);
        }
        let mut addrs = match crate::resolve::resolve(&state.cfg.core, state.cfg.dns_server).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "cannot resolve the core");
                Vec::new()
            }
        };
        if let Some((lost, at)) = vanished
            && clock.elapsed().saturating_sub(at) < crate::resolve::DEMOTE_LOST_FOR
        {
            crate::resolve::demote(&mut addrs, lost);
        }
        for addr in addrs {
            let ep = match endpoints.iter().find(|(v4, _)| *v4 == addr.is_ipv4()) {
                Some((_, ep)) => ep.clone(),
                None => match endpoint_for(addr) {
                    Ok(ep) => {
                        endpoints.push((addr.is_ipv4(), ep.clone()));
                        ep
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot open a UDP socket");
                        continue;
                    }
                },
            };
            match connect(&ep, addr, &state, quick).await {
                Ok(conn) => {
                    tracing::info!(%addr, "connected to core");
                    let welcomed = state.connections.load(Ordering::Relaxed);
                    let (why, hint) = serve(conn, &state).await;
                    state.connected.send_replace(false);
                    state.core_conn.send_replace(None);
                    tracing::warn!(%addr, reason = why, come_back = ?hint, "disconnected from core");
                    // A core that closes before its welcome (full, refusing us) is not
                    // one that went away: the schedule goes on as for a failed attempt.
                    if state.connections.load(Ordering::Relaxed) == welcomed {
                        schedule.on_failed();
                    } else {
                        // A clean shutdown says when to come back to this core; without
                        // one it may be gone for good (crashed, cut off).
                        vanished = hint.is_none().then(|| (addr, clock.elapsed()));
                        schedule.on_welcomed();
                        schedule.on_lost(clock.elapsed(), hint);
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(%addr, error = e, "cannot connect to core");
                    schedule.on_failed();
                }
            }
        }
        let next = schedule.next(clock.elapsed(), rand::random());
        quick = next.quick;
        tokio::time::sleep(next.wait).await;
    }
}

async fn connect(
    ep: &quinn::Endpoint,
    addr: SocketAddr,
    state: &State,
    quick: bool,
) -> Result<quinn::Connection, String> {
    let cfg = state
        .identity
        .read()
        .map_err(|_| "identity lock poisoned".to_string())?
        .quic_config(&state.timing)?;
    connect_attempt(ep, cfg, addr, quick, &state.timing).await
}

/// Serves one connection until it ends; returns why it ended, and the core's "come back"
/// if it closed the connection with one.
async fn serve(conn: quinn::Connection, state: &Arc<State>) -> (String, Option<ComeBack>) {
    let result = serve_inner(&conn, state).await;
    // Read before our own close, which would otherwise be the reason on record.
    let hint = come_back(&conn);
    conn.close(close::NORMAL.into(), b"bye");
    let why = match (result, &hint) {
        // The reason's text without the encoded hint, which is logged on its own.
        (_, Some(_)) => match conn.close_reason() {
            Some(quinn::ConnectionError::ApplicationClosed(c)) => ComeBack::text(&c.reason),
            _ => "closed".into(),
        },
        (Ok(()), None) => conn
            .close_reason()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "closed".into()),
        (Err(e), None) => e,
    };
    (why, hint)
}

async fn serve_inner(conn: &quinn::Connection, state: &Arc<State>) -> Result<(), String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    let hello = AgentMsg::Hello(Hello {
        wire_version: WIRE_VERSION,
        agent_version: crate::upgrade::VERSION.into(),
        mode: state.mode,
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default(),
    });
    write_frame(&mut send, &hello, FrameLimit::CONTROL)
        .await
        .map_err(|e| e.to_string())?;
    // The session's decisions (welcome deadline, telemetry window, acknowledgement
    // stall) are `honeybee_proto::session`'s, on a clock that starts at the hello.
    let epoch = tokio::time::Instant::now();
    let mut session = AgentSession::new(Duration::ZERO, &state.timing);
    let welcome_due = session
        .poll_timeout()
        .unwrap_or(state.timing.handshake_deadline);
    let welcome = match tokio::time::timeout_at(
        epoch + welcome_due,
        read_frame::<CoreMsg, _>(&mut recv, FrameLimit::CONTROL),
    )
    .await
    {
        Ok(read) => read.map_err(|e| format!("welcome: {e}"))?,
        Err(_) => {
            return Err(session
                .handle_timeout(epoch.elapsed().max(welcome_due))
                .unwrap_or_else(|| "no welcome".into()));
        }
    };
    let CoreMsg::Welcome {
        config, last_seq, ..
    } = welcome
    else {
        session.on_not_welcomed();
        return Err(session.close_reason().unwrap_or_default().to_owned());
    };
    if let Some(after) = session.on_welcome(epoch.elapsed(), last_seq) {
        state.spool.ensure_after(after);
    }
    let session = std::sync::Mutex::new(session);
    apply_config(state, &config).await;
    state.connections.fetch_add(1, Ordering::Relaxed);
    state.connected.send_replace(true);
    state.core_conn.send_replace(Some(conn.clone()));

    let (out_tx, mut out_rx) = mpsc::channel::<AgentMsg>(256);
    let writer = async move {
        while let Some(msg) = out_rx.recv().await {
            if write_frame(&mut send, &msg, FrameLimit::CONTROL)
                .await
                .is_err()
            {
                break;
            }
        }
    };
    let acked = Arc::new(tokio::sync::Notify::new());
    let telemetry = send_telemetry(conn, state, &session, epoch, acked.clone());
    let uploading = Arc::new(std::sync::Mutex::new(HashSet::<[u8; 32]>::new()));
    let uploads = send_captures(conn, state, uploading.clone());
    if let Some((version, result)) = crate::upgrade::slots::welcomed(&state.paths.root) {
        let _ = out_tx
            .send(AgentMsg::UpgradeReport { version, result })
            .await;
    }
    let periodic = periodic(state, out_tx.clone());
    let ca_der = state
        .identity
        .read()
        .map(|i| i.ca_der.clone())
        .unwrap_or_default();
    let upgrades = crate::upgrade::accept(
        conn.clone(),
        ca_der,
        state.paths.root.clone(),
        out_tx.clone(),
    );
    let control = async {
        let mut pending_key: Option<KeyPair> = None;
        let mut renew_tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            // The acknowledgement stall's deadline, while batches are in flight.
            let stall_at = lock(&session).poll_timeout();
            let stall = tokio::time::sleep_until(epoch + stall_at.unwrap_or_default());
            let msg = tokio::select! {
                m = read_frame::<CoreMsg, _>(&mut recv, FrameLimit::CONTROL) => Some(m),
                _ = stall, if stall_at.is_some() => {
                    if let Some(why) = lock(&session).handle_timeout(epoch.elapsed()) {
                        return Err(why);
                    }
                    None
                }
                _ = renew_tick.tick() => None,
            };
            let msg = match msg {
                None => None,
                Some(Ok(m)) => Some(m),
                Some(Err(FrameIoError::Closed)) | Some(Err(FrameIoError::Io(_))) => return Ok(()),
                Some(Err(e)) => return Err(format!("control stream: {e}")),
            };
            if let Some(msg) = msg {
                match msg {
                    CoreMsg::Ack { first, last } => {
                        let (first, last) = lock(&session).on_ack(epoch.elapsed(), first, last);
                        state.spool.ack(first, last);
                        acked.notify_one();
                    }
                    CoreMsg::Config(cfg) => apply_config(state, &cfg).await,
                    CoreMsg::CaptureStored { sha256 } => {
                        state.captures.remove(&sha256);
                        uploading.lock().map(|mut u| u.remove(&sha256)).ok();
                    }
                    CoreMsg::CaptureRejected { sha256, reason } => {
                        // Sending the same bytes again cannot succeed: drop it, loudly.
                        tracing::error!(sha256 = %hex::encode(sha256), reason, "capture refused by the core; discarded");
                        state.captures.remove(&sha256);
                        uploading.lock().map(|mut u| u.remove(&sha256)).ok();
                    }
                    CoreMsg::Command {
                        id,
                        command: Command::CheckRealism,
                    } => crate::realism::answer(
                        state.services.lock().await.realism_targets(),
                        id,
                        out_tx.clone(),
                    ),
                    CoreMsg::Command { id, command } => {
                        let result = run_command(state, command).await;
                        let _ = out_tx.send(AgentMsg::CommandResult { id, result }).await;
                    }
                    CoreMsg::Renewed(Ok(cert)) => match pending_key.take() {
                        Some(key) => install_renewed(state, key, cert.cert_der, conn)?,
                        None => tracing::warn!("unsolicited certificate ignored"),
                    },
                    CoreMsg::Renewed(Err(e)) => {
                        tracing::error!(error = e, "certificate renewal refused");
                        pending_key = None;
                    }
                    _ => {}
                }
            }
            if pending_key.is_none() && renewal_due(state) {
                match renewal_request() {
                    Ok((key, csr_der)) => {
                        pending_key = Some(key);
                        let _ = out_tx.send(AgentMsg::RenewRequest { csr_der }).await;
                    }
                    Err(e) => tracing::error!(error = e, "cannot make a renewal request"),
                }
            }
        }
    };
    tokio::select! {
        r = control => r,
        r = telemetry => r,
        r = uploads => r,
        _ = periodic => Ok(()),
        _ = upgrades => Ok(()),
        _ = writer => Ok(()),
        e = conn.closed() => Err(e.to_string()),
    }
}

/// The session, whatever a panicking holder left it as.
fn lock(session: &std::sync::Mutex<AgentSession>) -> std::sync::MutexGuard<'_, AgentSession> {
    session.lock().unwrap_or_else(|p| p.into_inner())
}

fn renewal_due(state: &State) -> bool {
    state
        .identity
        .read()
        .map(|i| now_ms() >= i.renew_at_ms())
        .unwrap_or(false)
}

fn renewal_request() -> Result<(KeyPair, Vec<u8>), String> {
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let csr = make_csr(&key).map_err(|e| e.to_string())?;
    Ok((key, csr))
}

/// Writes the renewed certificate and its key in one atomic file replacement, then uses
/// them for every later connection. The live connection carries on untouched.
///
/// The core that renewed it may be another core than the one that issued the last one:
/// its intermediate (from the chain it presented on `conn`) replaces the old one.
fn install_renewed(
    state: &State,
    key: KeyPair,
    cert_der: Vec<u8>,
    conn: &quinn::Connection,
) -> Result<(), String> {
    let (_, not_after_ms) =
        honeybee_pki::identity::validity_ms(&cert_der).map_err(|e| e.to_string())?;
    let ca_der = state
        .identity
        .read()
        .map(|i| i.ca_der.clone())
        .unwrap_or_default();
    let chain = crate::enroll::peer_chain(&cert_der, &crate::enroll::server_certs(conn), &ca_der);
    let pem = crate::enroll::identity_pem(&key, &cert_der, &chain);
    write_private(&state.paths.identity(), pem.as_bytes())
        .map_err(|e| format!("cannot store renewed certificate: {e}"))?;
    let mut id = state
        .identity
        .write()
        .map_err(|_| "identity lock poisoned")?;
    id.cert_der = cert_der;
    id.chain = chain;
    id.key = key;
    id.obtained_ms = now_ms();
    id.not_after_ms = not_after_ms;
    tracing::info!(not_after_ms, "certificate renewed");
    Ok(())
}

async fn apply_config(state: &State, cfg: &NodeConfig) {
    if let Err(e) = cfg.validate() {
        tracing::error!(error = %e, "configuration from the core refused");
        return;
    }
    save_node_config(&state.paths, cfg);
    if state.run_services {
        state.services.lock().await.apply(cfg).await;
    }
}

async fn run_command(state: &State, command: Command) -> Result<String, String> {
    match command {
        Command::Ping => Ok("pong".into()),
        Command::Status => {
            let h = health(state).await;
            Ok(format!(
                "{{\"uptime_s\":{},\"rss_bytes\":{},\"spool_depth\":{},\"spool_dropped\":{},\"services\":{}}}",
                h.uptime_s,
                h.rss_bytes,
                h.spool_depth,
                h.spool_dropped,
                h.services.len()
            ))
        }
        Command::ReleasePort { service, port } => {
            state
                .services
                .lock()
                .await
                .release_port(&service, port)
                .await
        }
        _ => Err("command not supported by this agent".into()),
    }
}

async fn health(state: &State) -> Health {
    let services = state.services.lock().await.status();
    let (uptime_s, cpu_percent) = match state.health.lock() {
        Ok(mut h) => (h.uptime_s(), h.cpu_percent()),
        Err(_) => (0, 0.0),
    };
    Health {
        uptime_s,
        cpu_percent,
        rss_bytes: rss_bytes(),
        services,
        spool_depth: state.spool.depth(),
        spool_dropped: state.spool.dropped(),
        cert_not_after_ms: state.identity.read().map(|i| i.not_after_ms).unwrap_or(0),
    }
}

/// Health now and every interval; also wakes the control loop's renewal check.
async fn periodic(state: &State, out: mpsc::Sender<AgentMsg>) {
    let mut tick = tokio::time::interval(state.timing.health_interval);
    loop {
        tick.tick().await;
        if out
            .send(AgentMsg::Health(health(state).await))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Sends every unacknowledged event in the spool, oldest first, then follows new ones,
/// as far as the session's window allows.
async fn send_telemetry(
    conn: &quinn::Connection,
    state: &State,
    session: &std::sync::Mutex<AgentSession>,
    epoch: tokio::time::Instant,
    acked: Arc<tokio::sync::Notify>,
) -> Result<(), String> {
    // Everything unacknowledged is resent on a new connection; the core dedupes.
    loop {
        let next = lock(session).poll_transmit();
        let Some(cursor) = next else {
            acked.notified().await;
            continue;
        };
        let appended = state.spool.appended.notified();
        let events = state
            .spool
            .read_after(cursor, BATCH_EVENTS)
            .await
            .map_err(|e| e.to_string())?;
        let (Some(first), Some(last)) =
            (events.first().map(|e| e.seq), events.last().map(|e| e.seq))
        else {
            // Nothing new: wait for the spool, with a timeout in case a wakeup was missed.
            let _ = tokio::time::timeout(Duration::from_secs(1), appended).await;
            continue;
        };
        let mut stream = conn.open_uni().await.map_err(|e| e.to_string())?;
        stream
            .write_all(&[StreamKind::Telemetry as u8])
            .await
            .map_err(|e| e.to_string())?;
        write_frame(&mut stream, &EventBatch { events }, FrameLimit::TELEMETRY)
            .await
            .map_err(|e| e.to_string())?;
        let _ = stream.finish();
        lock(session).on_sent(epoch.elapsed(), first, last);
    }
}

/// Uploads every spooled capture not already in flight on this connection, each on its
/// own stream; the core's `CaptureStored` removes it from the spool.
async fn send_captures(
    conn: &quinn::Connection,
    state: &State,
    uploading: Arc<std::sync::Mutex<HashSet<[u8; 32]>>>,
) -> Result<(), String> {
    use tokio::io::AsyncReadExt;
    loop {
        let added = state.captures.added.notified();
        for (header, path) in state.captures.pending() {
            let fresh = uploading
                .lock()
                .map(|mut u| u.insert(header.sha256))
                .unwrap_or(false);
            if !fresh {
                continue;
            }
            let mut file = match tokio::fs::File::open(&path).await {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(error = %e, path = %path.display(), "spooled capture unreadable");
                    continue;
                }
            };
            let mut stream = conn.open_uni().await.map_err(|e| e.to_string())?;
            stream
                .write_all(&[StreamKind::Capture as u8])
                .await
                .map_err(|e| e.to_string())?;
            write_frame(&mut stream, &header, FrameLimit::CAPTURE_HEADER)
                .await
                .map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = file.read(&mut buf).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                stream
                    .write_all(&buf[..n])
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let _ = stream.finish();
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), added).await;
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM, what systemd sends. The SIGTERM handler is
/// installed when this is called, not when the future is first polled, so a SIGTERM that
/// arrives while the caller is still starting up is not lost to the default action, which
/// would end the process without shutting services down or flushing anything. Used by
/// `honeybee-agent run` and by every long-running `honeybee` command.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    if let Err(e) = &term {
        tracing::warn!(error = %e, "cannot handle SIGTERM; only Ctrl-C stops cleanly");
    }
    async move {
        let term = async {
            match term {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: shutting down"),
            _ = term => tracing::info!("SIGTERM: shutting down"),
        }
    }
}
