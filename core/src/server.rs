//! The running core: loads its data directory, opens the store, binds the endpoint and
//! supervises the tasks behind it until shutdown.

use crate::budget::Limit;
use crate::captures::CaptureStore;
use crate::config::{self, CoreConfig};
use crate::init::{self, CorePaths};
use crate::ratelimit::FailureLimiter;
use crate::registry::Registry;
use crate::store::{Store, TokenRecord};
use honeybee_pki::ca::Ca;
use honeybee_pki::revocation::RevocationList;
use honeybee_pki::token::Token;
use honeybee_proto::NodeId;
use honeybee_proto::admin::{AuditEntry, TokenSpec};
use honeybee_proto::event::EventKind;
use honeybee_proto::reconnect::ComeBack;
use honeybee_proto::stream::close;
use honeybee_proto::{Role, TokenId, alpn};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// How often the enrolment refusal digest writes the counts of windows that ended.
const DIGEST_FLUSH: Duration = Duration::from_secs(5);
/// How often the audit log's retention is applied.
pub const AUDIT_PRUNE: Duration = Duration::from_secs(60);
/// The service name of `limit_reached` events for node budgets.
pub const BUDGET_SERVICE: &str = "budget";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Init(#[from] init::InitError),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("TLS: {0}")]
    Tls(String),
    #[error(
        "cannot bind UDP {addr}: {source} (is another core running? change `listen` in core.toml)"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// State shared by every task of the core.
pub struct Shared {
    pub cfg: CoreConfig,
    pub paths: CorePaths,
    pub ca: Ca,
    pub store: Store,
    pub registry: Registry,
    pub revocations: RevocationList,
    pub captures: CaptureStore,
    pub enroll_limiter: FailureLimiter,
    pub started: Instant,
    pub connections: AtomicUsize,
    pub handshaking: AtomicUsize,
    pub bus: crate::bus::EventBus,
    pub modules: crate::modules::ModuleRegistry,
    pub manager: crate::modules::manager::ModuleManager,
    pub module_limiter: FailureLimiter,
    /// The module shim's bound address, when it runs.
    pub shim_addr: Option<SocketAddr>,
    /// Cross-node scan correlation (see `correlator.rs`).
    pub correlator: crate::correlator::Correlator,
    /// Honey-credentials offered to poisoners, matched against every login (see
    /// `honeycred.rs`).
    pub honey_creds: Mutex<crate::honeycred::HoneyCredBook>,
    /// Every relay flow, and the virtual network of the relayed endpoint.
    pub relays: Arc<crate::relay::RelayHub>,
    /// Refused enrolments, aggregated per source, reason and window before they are
    /// audited (see `audit.rs`).
    pub enroll_refusals: Mutex<crate::audit::RefusalDigest>,
    /// Per-node budgets: renewals, events, capture bytes (see `budget.rs`).
    pub budgets: crate::budget::NodeBudgets,
    /// Sequence numbers of the events the core records itself (pseudo-node `core`).
    pub core_seq: Mutex<crate::correlator::SeqClock>,
    /// Each node's latest health assessment (see `health.rs`).
    pub health: crate::health::HealthBoard,
    /// Each node's latest realism check (see `realism.rs`).
    pub realism: crate::realism::RealismBoard,
    /// Prometheus counters and the status rates (see `metrics.rs`).
    pub metrics: crate::metrics::CoreMetrics,
    /// This core's part in a cluster of cores on one PostgreSQL (`cluster/`); `None` on
    /// SQLite.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl Shared {
    /// Appends to the audit log without waiting for the write.
    pub fn audit(
        &self,
        actor: &str,
        action: &str,
        outcome: &str,
        source: Option<String>,
        detail: &str,
    ) {
        tracing::info!(target: "honeybee::audit", actor, action, outcome, source = source.as_deref().unwrap_or(""), detail);
        let entry = AuditEntry {
            time_ms: crate::now_ms(),
            actor: actor.into(),
            action: action.into(),
            outcome: outcome.into(),
            source,
            detail: detail.into(),
        };
        // Into the store's one writer queue, in call order (a task per row, as before,
        // let two rows of one action land in either order).
        self.store.audit_nowait(entry);
    }

    /// Audits an enrolment refused for `source`, through the refusal digest: the first of
    /// its kind from a source in a window is written at once, repeats as one counted row.
    pub fn audit_refusal(
        &self,
        source: std::net::IpAddr,
        reason: &'static str,
        actor: &str,
        outcome: &str,
        detail: impl FnOnce() -> String,
    ) {
        let rows = self
            .enroll_refusals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .refused(source, reason, actor, outcome, detail, Instant::now());
        self.write_digest(rows);
    }

    fn write_digest(&self, rows: Vec<crate::audit::DigestRow>) {
        for r in rows {
            self.audit(&r.actor, "enroll", &r.outcome, r.source, &r.detail);
        }
    }

    /// Records that `node` ran into `limit`: a `limit_reached` event (pseudo-node `core`,
    /// service `budget`) at most once per node and limit per report interval, counting
    /// the occurrences in between.
    pub fn limit_reached(self: &Arc<Self>, node: &NodeId, limit: Limit, detail: String) {
        let Some(count) = self.budgets.report(node, limit, Instant::now()) else {
            return;
        };
        tracing::warn!(%node, limit = limit.name(), count, detail, "node over its budget");
        let shared = self.clone();
        let kind = EventKind::LimitReached {
            limit: limit.name().into(),
            detail: honeybee_proto::event::clamp(
                &format!("node={node} {detail} ({count} times since the last report)"),
                honeybee_proto::event::MAX_FIELD_LEN,
            ),
        };
        tokio::spawn(async move { shared.record_core_event(BUDGET_SERVICE, None, kind).await });
    }

    /// Stores an event the core observed itself, under pseudo-node `core`, and offers it
    /// to module subscriptions.
    pub async fn record_core_event(
        &self,
        service: &str,
        src: Option<std::net::SocketAddr>,
        kind: EventKind,
    ) {
        crate::ingest::core_event(self, service, src, kind).await
    }

    /// Creates a one-time token and returns its id and the line to hand to the operator.
    pub async fn create_token(
        &self,
        spec: &TokenSpec,
        actor: &str,
    ) -> Result<(TokenId, String), String> {
        if !matches!(spec.role, Role::Agent | Role::Relay | Role::Core) {
            return Err(format!(
                "tokens for role {} are not supported yet; use agent or relay",
                spec.role
            ));
        }
        // A join token (`honeybee core join-token`) gets its core an intermediate CA:
        // single use, at most 15 minutes, and only a core holding the root can sign one.
        if spec.role == Role::Core {
            if !self.ca.is_root() {
                return Err(
                    "this core holds an intermediate CA, not the deployment's root: \
                            create join tokens on the core that holds the root CA"
                        .into(),
                );
            }
            if spec.uses != 1 || spec.ttl_s > crate::join::MAX_TOKEN_TTL_S {
                return Err(format!(
                    "a join token is single-use and lives at most {} s",
                    crate::join::MAX_TOKEN_TTL_S
                ));
            }
        }
        honeybee_proto::NodeId::new(spec.name.clone()).map_err(|e| e.to_string())?;
        if let Some(relay) = crate::enroll::token_relay(&spec.labels) {
            honeybee_proto::NodeId::new(relay)
                .map_err(|e| format!("label relay={relay:?} does not name a relay: {e}"))?;
        }
        if spec.uses == 0 || spec.uses > 10_000 {
            return Err("uses must be between 1 and 10000".into());
        }
        if spec.ttl_s == 0 || spec.ttl_s > 30 * 86_400 {
            return Err("ttl must be between 1s and 30 days".into());
        }
        let token = Token::generate(self.ca.pin(), self.cfg.advertise.clone())
            .map_err(|e| e.to_string())?;
        let now = crate::now_ms();
        let rec = TokenRecord {
            id: token.id,
            secret_hash: token.secret_hash(),
            role: spec.role,
            name: spec.name.clone(),
            labels: spec.labels.clone(),
            created_ms: now,
            expires_ms: now + (spec.ttl_s as i64) * 1000,
            uses_total: spec.uses,
            uses_left: spec.uses,
            revoked: false,
        };
        self.store
            .create_token(rec)
            .await
            .map_err(|e| e.to_string())?;
        self.audit(
            actor,
            "token.create",
            "ok",
            None,
            &format!(
                "id={} role={} name={} uses={} ttl={}s",
                token.id, spec.role, spec.name, spec.uses, spec.ttl_s
            ),
        );
        Ok((token.id, token.encode()))
    }
}

/// A running core.
pub struct Core {
    shared: Arc<Shared>,
    endpoint: quinn::Endpoint,
    /// Terminates the QUIC sessions of nodes behind relays (see `relay/`).
    relayed: quinn::Endpoint,
    tasks: JoinSet<()>,
}

impl Core {
    /// Starts the core of an initialised data directory.
    pub async fn start(data_dir: &Path) -> Result<Core, CoreError> {
        let cfg = config::load(data_dir)?;
        Self::start_with(cfg).await
    }

    /// Starts the core with an already validated configuration.
    pub async fn start_with(cfg: CoreConfig) -> Result<Core, CoreError> {
        honeybee_pki::install_crypto_provider();
        let paths = CorePaths::new(&cfg.data_dir);
        let ca = init::load_ca(&paths, &cfg.trust_domain)?;
        renew_core_cert_if_due(&ca, &paths, &cfg)?;
        let store = Store::open(&cfg.store, &paths.database()).await?;
        // On PostgreSQL other cores may serve nodes right now: only this core's own
        // leases (and expired ones) are cleaned up, never every node marked offline.
        let cluster = crate::cluster::Cluster::open(
            &store,
            &cfg.data_dir,
            &cfg.listen.to_string(),
            &cfg.advertise,
            cfg.lease_ttl,
        )
        .await?;
        if cluster.is_none() {
            store.mark_all_offline().await?;
        }
        let (serials, nodes) = store.revoked().await?;
        let revocations = RevocationList::new();
        revocations.load(serials, nodes);

        // A joined core sends its intermediate between its leaf and the root.
        let chain = crate::join::server_chain(load_cert(&paths.core_cert())?, &ca);
        let key = load_key(&paths.core_key())?;
        let tls = honeybee_pki::tls::server_config(
            ca.cert_der(),
            chain,
            key,
            revocations.clone(),
            &[alpn::NODE, alpn::ENROLL, alpn::ADMIN, alpn::MODULE],
        )
        .map_err(|e| CoreError::Tls(e.to_string()))?;
        let server =
            crate::endpoint::server_config_with(tls, &cfg.timing).map_err(CoreError::Tls)?;
        let socket = std::net::UdpSocket::bind(cfg.listen).map_err(|source| CoreError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let endpoint = quinn::Endpoint::new(
            endpoint_config(&paths)?,
            Some(server.clone()),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|source| CoreError::Bind {
            addr: cfg.listen,
            source,
        })?;
        // The same keys and server config: a relayed node meets the same core, and a
        // restarted core resets relayed connections as it does direct ones.
        let relays = Arc::new(crate::relay::RelayHub::default());
        let relayed = quinn::Endpoint::new_with_abstract_socket(
            endpoint_config(&paths)?,
            Some(server),
            Arc::new(crate::relay::socket::RelaySocket::new(relays.clone())),
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|e| CoreError::Other(format!("relayed endpoint: {e}")))?;

        let captures_dir = cfg.captures_dir.clone().unwrap_or_else(|| paths.captures());
        let captures = CaptureStore::new(&captures_dir).map_err(|e| {
            CoreError::Other(format!(
                "captures directory {}: {e} (check store.captures_dir in core.toml and its permissions)",
                captures_dir.display()
            ))
        })?;
        let enroll_limiter =
            FailureLimiter::new(cfg.enroll_failures_per_minute, Duration::from_secs(60));
        let shim = match cfg.shim_listen {
            Some(addr) => Some(crate::modules::shim::bind(addr).await.map_err(|source| {
                CoreError::Other(format!(
                    "cannot listen for modules on {addr}: {source} (change modules.shim_listen in core.toml)"
                ))
            })?),
            None => None,
        };
        let shim_addr = shim.as_ref().and_then(|l| l.local_addr().ok());
        let module_limiter =
            FailureLimiter::new(cfg.enroll_failures_per_minute, Duration::from_secs(60));
        let sweep = cfg.scan_correlation;
        let (correlator, probes) = crate::correlator::Correlator::new(sweep.is_some());
        let honey_creds = crate::honeycred::HoneyCredBook::load(&store)
            .await
            .map_err(|e| CoreError::Other(format!("reading honey-credential offers: {e}")))?;
        let shared = Arc::new(Shared {
            correlator,
            honey_creds: Mutex::new(honey_creds),
            bus: crate::bus::EventBus::new(),
            modules: crate::modules::ModuleRegistry::default(),
            manager: crate::modules::manager::ModuleManager::default(),
            module_limiter,
            shim_addr,
            relays,
            enroll_refusals: Mutex::new(crate::audit::RefusalDigest::new(
                crate::audit::DigestConfig::default(),
            )),
            budgets: crate::budget::NodeBudgets::new(cfg.node_budgets),
            // In a cluster the cores share the pseudo-node `core`: each numbers its own
            // events in its slot, so they never collide on (node, seq).
            core_seq: Mutex::new(match &cluster {
                Some(c) => crate::correlator::SeqClock::in_slot(c.slot),
                None => crate::correlator::SeqClock::default(),
            }),
            health: crate::health::HealthBoard::default(),
            realism: crate::realism::RealismBoard::default(),
            metrics: crate::metrics::CoreMetrics::new(),
            cluster,
            registry: Registry::with_command_timeout(cfg.timing.command_timeout),
            cfg,
            paths,
            ca,
            store,
            revocations,
            captures,
            enroll_limiter,
            started: Instant::now(),
            connections: AtomicUsize::new(0),
            handshaking: AtomicUsize::new(0),
        });
        let mut tasks = JoinSet::new();
        crate::metrics::start(&shared, &mut tasks).await?;
        if let Some(c) = &shared.cluster {
            c.spawn(&shared, &mut tasks);
        }
        tasks.spawn(crate::endpoint::accept_loop(
            endpoint.clone(),
            shared.clone(),
            false,
        ));
        tasks.spawn(crate::endpoint::accept_loop(
            relayed.clone(),
            shared.clone(),
            true,
        ));
        if let Some(listener) = shim {
            let tls = if shared.cfg.shim_tls {
                let chain =
                    crate::join::server_chain(load_cert(&shared.paths.core_cert())?, &shared.ca);
                let cfg = honeybee_pki::tls::server_config_no_client_auth(
                    chain,
                    load_key(&shared.paths.core_key())?,
                )
                .map_err(|e| CoreError::Tls(e.to_string()))?;
                Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
            } else {
                None
            };
            tasks.spawn(crate::modules::shim::serve(listener, tls, shared.clone()));
        }
        for spec in shared.cfg.managed_modules.clone() {
            let name = spec.name.clone();
            if let Err(e) = shared
                .manager
                .load(spec, shared.clone(), "core:config")
                .await
            {
                tracing::error!(module = name, error = e, "managed module not started");
            }
        }
        if let (Some(rx), Some(cfg)) = (probes, sweep) {
            tasks.spawn(crate::correlator::run(rx, shared.clone(), cfg));
        }
        let flusher = shared.clone();
        tasks.spawn(async move {
            let mut tick =
                tokio::time::interval(crate::health::flush_interval(&flusher.cfg.timing));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                flush_health(&flusher).await;
            }
        });
        let sweeper = shared.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(sweeper.cfg.timing.revocation_sweep);
            let (mut flushed, mut pruned) = (Instant::now(), None::<Instant>);
            loop {
                tick.tick().await;
                for node in sweeper
                    .registry
                    .sweep(&sweeper.revocations, crate::now_ms())
                {
                    tracing::warn!(%node, "connection closed by sweep (revoked or expired)");
                }
                let now = Instant::now();
                if now.duration_since(flushed) >= DIGEST_FLUSH {
                    flushed = now;
                    let rows = sweeper
                        .enroll_refusals
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .flush(now);
                    sweeper.write_digest(rows);
                }
                if pruned.is_none_or(|t| now.duration_since(t) >= AUDIT_PRUNE) {
                    pruned = Some(now);
                    prune_audit(&sweeper).await;
                    prune_events(&sweeper).await;
                }
            }
        });
        if let Ok(mut bound) = endpoint.local_addr() {
            if bound.ip().is_unspecified() {
                bound.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            let _ = honeybee_pki::files::write_public(
                &shared.paths.addr_file(),
                bound.to_string().as_bytes(),
            );
        }
        if let Some(a) = shared.shim_addr {
            let _ = honeybee_pki::files::write_public(
                &shared.paths.shim_addr_file(),
                a.to_string().as_bytes(),
            );
        }
        tracing::info!(listen = %endpoint.local_addr().map(|a| a.to_string()).unwrap_or_default(), "core listening");
        Ok(Core {
            shared,
            endpoint,
            relayed,
            tasks,
        })
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The UDP address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Stops accepting, closes every connection, flushes the store.
    pub async fn shutdown(mut self) {
        self.shared.manager.stop_all().await;
        // Agents come back spread over about the time admitting them all takes, rather
        // than all at once or on their exponential backoff (honeybee_proto::reconnect).
        self.shared.registry.close_all(close::SHUTDOWN, |n| {
            ComeBack::for_fleet(n).reason("core shutting down")
        });
        self.endpoint
            .close(close::SHUTDOWN.into(), b"core shutting down");
        self.relayed
            .close(close::SHUTDOWN.into(), b"core shutting down");
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        // Give node handlers a moment to record that their nodes went offline.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
        // The health reports not yet written, before the store closes.
        flush_health(&self.shared).await;
        if let Some(c) = &self.shared.cluster {
            c.shut_down().await;
        }
        let _ = std::fs::remove_file(self.shared.paths.addr_file());
        let _ = std::fs::remove_file(self.shared.paths.shim_addr_file());
        if let Err(e) = self.shared.store.close().await {
            tracing::error!(error = %e, "store did not close cleanly");
        }
        tracing::info!("core stopped");
    }
}

/// Writes the health reports received since the last flush, in one store write.
async fn flush_health(shared: &Shared) {
    let rows = shared.health.take_unsaved();
    if rows.is_empty() {
        return;
    }
    let n = rows.len();
    if let Err(e) = shared.store.set_nodes_health(rows).await {
        // Each node reports again within one health interval.
        tracing::warn!(error = %e, reports = n, "writing health reports failed");
    }
}

/// Applies the audit log's retention (`limits.audit_max_rows`, `limits.audit_max_age`).
pub async fn prune_audit(shared: &Shared) {
    let max_age_ms = i64::try_from(shared.cfg.audit_max_age.as_millis()).unwrap_or(i64::MAX);
    let before_ms = crate::now_ms().saturating_sub(max_age_ms);
    match shared
        .store
        .prune_audit(shared.cfg.audit_max_rows, before_ms)
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(rows = n, "audit retention: old rows deleted"),
        Err(e) => tracing::error!(error = %e, "audit retention failed"),
    }
}

/// Applies event retention (`[store] retain_events`), in batches.
pub async fn prune_events(shared: &Shared) {
    let Some(keep) = shared.cfg.retain_events else {
        return;
    };
    let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
    let before_ms = crate::now_ms().saturating_sub(keep_ms);
    match shared.store.prune_events(before_ms, 10_000).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(events = n, "event retention: old events deleted"),
        Err(e) => tracing::error!(error = %e, "event retention failed"),
    }
}

/// The QUIC endpoint's keys, kept across restarts in `pki/reset.key` (0600): the
/// stateless-reset key and the key that makes and checks connection ids. After a crash the
/// restarted core then recognises an agent's packets for its old connection and answers
/// with a stateless reset the agent can verify, so the agent reconnects at once instead
/// of waiting out its 30 s idle timeout. (With fresh keys per start, quinn drops those
/// packets as carrying invalid connection ids and sends nothing.)
fn endpoint_config(paths: &CorePaths) -> Result<quinn::EndpointConfig, CoreError> {
    let path = paths.pki().join("reset.key");
    let secret = match std::fs::read(&path) {
        Ok(s) if s.len() == 32 => s,
        _ => {
            let s: [u8; 32] = rand::random();
            honeybee_pki::files::write_private(&path, &s)
                .map_err(|e| CoreError::Other(format!("cannot write {}: {e}", path.display())))?;
            s.to_vec()
        }
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
    let cid_key = ring::hmac::sign(&key, b"honeybee quic connection ids");
    let cid_key = u64::from_le_bytes(cid_key.as_ref()[..8].try_into().expect("8 bytes"));
    let mut cfg = quinn::EndpointConfig::new(Arc::new(key));
    cfg.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    // quinn's default (one reset per 20 ms for the whole endpoint) would take 40 s to
    // reset 2,000 agents; a reset is always smaller than the packet that caused it.
    cfg.min_reset_interval(Duration::from_millis(2));
    Ok(cfg)
}

fn load_cert(path: &Path) -> Result<rustls::pki_types::CertificateDer<'static>, CoreError> {
    let pem = std::fs::read_to_string(path)
        .map_err(|e| CoreError::Other(format!("cannot read {}: {e}", path.display())))?;
    honeybee_pki::files::pem_to_der_certs(&pem)
        .map_err(|e| CoreError::Other(format!("{}: {e}", path.display())))?
        .into_iter()
        .next()
        .ok_or_else(|| CoreError::Other(format!("{} holds no certificate", path.display())))
}

fn load_key(path: &Path) -> Result<rustls::pki_types::PrivateKeyDer<'static>, CoreError> {
    let pem = std::fs::read_to_string(path)
        .map_err(|e| CoreError::Other(format!("cannot read {}: {e}", path.display())))?;
    let key = honeybee_pki::keys::KeyPair::from_pem(&pem)
        .map_err(|e| CoreError::Other(format!("{}: {e}", path.display())))?;
    Ok(key.private_key_der())
}

/// Re-issues the core's own certificate when less than a third of its life is left, so a
/// long-running deployment never serves an expired certificate after a restart.
fn renew_core_cert_if_due(ca: &Ca, paths: &CorePaths, cfg: &CoreConfig) -> Result<(), CoreError> {
    let cert = load_cert(&paths.core_cert())?;
    let not_after = honeybee_pki::identity::not_after_ms(cert.as_ref())
        .map_err(|e| CoreError::Other(format!("core certificate: {e}")))?;
    let remaining = not_after - crate::now_ms();
    if remaining < (cfg.core_cert_lifetime.as_millis() / 3) as i64 {
        tracing::info!("core certificate is due for renewal; issuing a new one");
        init::issue_core_cert(ca, paths, cfg.core_cert_lifetime)?;
    }
    Ok(())
}
