//! Honeypot services: the [`ServiceManager`] converges the listeners of a node to its
//! [`NodeConfig`], and each protocol lives in its own file.
//!
//! **Invariant:** a service never executes attacker input and never opens an outbound
//! connection. Every connection holds a slot of the node-wide [`Limits`], has a hard
//! deadline, and reads into bounded buffers.

pub(crate) mod banner;
pub(crate) mod conn;
#[doc(hidden)]
pub mod detectors;
mod extension;
pub(crate) mod ftp;
pub(crate) mod http;
mod limits;
mod login;
pub(crate) mod modbus;
pub(crate) mod mysql;
pub(crate) mod redis;
pub(crate) mod shell;
pub(crate) mod smtp;
pub(crate) mod ssh;
mod telnet;

pub use extension::{ExtensionPorts, HostSockets, ProcSocket, parse_proc_net};

pub use ssh::{HOST_KEY_FILE, HostKeyError, load_or_create_host_key};

use crate::captures::CaptureSpool;
use crate::sink::{EventSink, NewEvent, new_session_id};
use banner::BannerService;
use conn::{Kill, Session, Tap, TapStream};
use extension::ExtensionService;
use honeybee_proto::config::{NodeConfig, ServiceConfig, ServiceKind};
use honeybee_proto::control::ServiceStatus;
use honeybee_proto::event::{EventKind, MAX_FIELD_LEN, clamp};
use limits::ConnLimiter;
use ssh::{HostKeyCache, SshService};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

/// How long sessions get, once a service stops, to say goodbye and emit their
/// `Disconnect` before their streams are cut.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_millis(250);

/// How long a stopping listener waits for its sessions before aborting them.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(1500);

/// Pause after a failed `accept` (out of file descriptors, …) so the loop cannot spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Node-wide safety caps, shared by every service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Open sessions on the node, all services together.
    pub max_sessions_total: usize,
    /// Open sessions from one source (an IPv4 address or an IPv6 /64).
    pub max_sessions_per_source: usize,
    /// A session with no input for this long is closed (SSH; banner has its own deadline).
    pub idle_timeout: Duration,
    /// No session lives longer than this, however active.
    pub session_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions_total: 1024,
            max_sessions_per_source: 32,
            idle_timeout: Duration::from_secs(60),
            session_timeout: Duration::from_secs(600),
        }
    }
}

/// Why a service could not start; becomes its status error and a `ServiceError` event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    HostKey(#[from] HostKeyError),
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    #[error("service kind {0:?} is not supported by this agent")]
    Unsupported(String),
}

/// What a service needs from its node when it is built.
#[derive(Debug, Clone)]
pub(crate) struct ServiceContext {
    /// Per-node state that survives restarts (host keys, the HTTPS certificate).
    pub data_dir: PathBuf,
    /// A session with no input for this long is closed.
    pub idle_timeout: Duration,
    /// The node's login memory (SSH and Telnet accounts), see `login.rs`.
    pub logins: Arc<login::LoginBook>,
    /// What intruders wrote in the shell, per source (SSH and Telnet), see `shell/persist.rs`.
    pub overlays: Arc<shell::persist::OverlayStore>,
    /// The machine the node pretends to be (see `persona.rs`).
    pub persona: Arc<crate::persona::NodePersona>,
}

/// The protocol a running listener speaks, ready to serve connections.
#[derive(Debug)]
enum Protocol {
    Ssh(SshService),
    Banner(BannerService),
    Extension(Arc<ExtensionService>),
    Telnet(telnet::TelnetService),
    Http(http::HttpService),
    Ftp(ftp::FtpService),
    Redis(redis::RedisService),
    Mysql(mysql::MysqlService),
    Modbus(modbus::ModbusService),
    Smtp(smtp::SmtpService),
}

/// A listener task and what controls it.
#[derive(Debug)]
struct Running {
    bound: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    active: Arc<AtomicU32>,
    /// Extension services only: release requests, and the state of their ports.
    ext: Option<ExtHandle>,
    /// What the health line shows when one address does not say it (the aggregator's
    /// syslog and trap sockets, the detectors' interface and what watches it).
    listening: Option<String>,
}

#[derive(Debug)]
struct ExtHandle {
    releases: mpsc::Sender<extension::Release>,
    view: Arc<Mutex<ExtensionPorts>>,
}

#[derive(Debug)]
struct Entry {
    config: ServiceConfig,
    running: Option<Running>,
    error: Option<String>,
}

/// Runs the honeypot services of one node.
#[derive(Debug)]
pub struct ServiceManager {
    /// `None` once shut down, so the spool writer sees every sender gone.
    sink: Option<EventSink>,
    limits: Limits,
    limiter: Arc<ConnLimiter>,
    host_key: HostKeyCache,
    data_dir: PathBuf,
    /// One per node, so that SSH and Telnet agree and it outlives service restarts.
    logins: Arc<login::LoginBook>,
    /// One per node too: SSH and Telnet sessions share one machine's files.
    overlays: Arc<shell::persist::OverlayStore>,
    persona: Arc<crate::persona::NodePersona>,
    captures: Option<CaptureSpool>,
    /// By service name; `order` keeps the configuration's order for status reports.
    entries: HashMap<String, Entry>,
    order: Vec<String>,
}

impl ServiceManager {
    /// `data_dir` holds per-node state that must survive restarts (the SSH host key).
    pub fn new(sink: EventSink, data_dir: PathBuf, limits: Limits) -> Self {
        ServiceManager {
            sink: Some(sink),
            limiter: ConnLimiter::new(limits.max_sessions_total, limits.max_sessions_per_source),
            limits,
            host_key: HostKeyCache::new(data_dir.clone()),
            logins: login::LoginBook::open(&data_dir),
            overlays: shell::persist::OverlayStore::open(&data_dir),
            persona: crate::persona::NodePersona::load(&data_dir),
            data_dir,
            captures: None,
            entries: HashMap::new(),
            order: Vec::new(),
        }
    }

    /// Sends what services capture (transcripts, uploads, large bodies) to `spool`;
    /// without one, captures are dropped with a log line.
    pub fn with_captures(mut self, spool: CaptureSpool) -> Self {
        self.captures = Some(spool);
        self
    }

    /// Converges to `config`: starts enabled services that are not running, stops those
    /// removed or disabled, restarts those whose configuration changed. A service that
    /// cannot start is reported in its status and as a `ServiceError` event; the others
    /// are unaffected.
    ///
    /// Does nothing after [`ServiceManager::shutdown`].
    pub async fn apply(&mut self, config: &NodeConfig) {
        let Some(sink) = self.sink.clone() else {
            tracing::warn!("service configuration ignored: the services are shut down");
            return;
        };
        self.persona.set_services(&config.services);
        let mut wanted: Vec<&ServiceConfig> = Vec::new();
        let mut names = HashSet::new();
        for s in &config.services {
            if names.insert(s.name.as_str()) {
                wanted.push(s);
            } else {
                tracing::warn!(service = %s.name, "duplicate service name ignored");
                self.emit_error(s, "duplicate service name; this instance is ignored")
                    .await;
            }
        }

        // Stop first, all at once, so a restarted service can take its old port back.
        let mut stopping = Vec::new();
        self.entries.retain(|name, entry| {
            let keep = wanted
                .iter()
                .any(|w| &w.name == name && **w == entry.config);
            if !keep && let Some(r) = entry.running.take() {
                let _ = r.stop.send(true);
                stopping.push((name.clone(), r));
            }
            keep
        });
        for (name, r) in stopping {
            tracing::info!(service = %name, listen = %r.bound, "stopping service");
            join_listener(r.task).await;
        }

        for want in &wanted {
            let entry = self
                .entries
                .entry(want.name.clone())
                .or_insert_with(|| Entry {
                    config: (*want).clone(),
                    running: None,
                    error: None,
                });
            // A listener that ended on its own (it never should) is started again.
            if entry.running.as_ref().is_some_and(|r| r.task.is_finished()) {
                entry.running = None;
            }
            if !want.enabled || entry.running.is_some() {
                continue;
            }
            let ctx = ServiceContext {
                data_dir: self.data_dir.clone(),
                idle_timeout: self.limits.idle_timeout,
                logins: Arc::clone(&self.logins),
                overlays: Arc::clone(&self.overlays),
                persona: Arc::clone(&self.persona),
            };
            let shared = Shared {
                sink: &sink,
                captures: &self.captures,
                limits: &self.limits,
                limiter: &self.limiter,
            };
            match start(want, &shared, &ctx, &mut self.host_key).await {
                Ok(r) => {
                    tracing::info!(service = %want.name, kind = want.kind.name(), listen = %r.bound, "service started");
                    entry.running = Some(r);
                    entry.error = None;
                }
                Err(e) => {
                    let msg = clamp(&e.to_string(), MAX_FIELD_LEN);
                    tracing::warn!(service = %want.name, error = %msg, "service failed to start");
                    entry.error = Some(msg.clone());
                    self.emit_error(want, &msg).await;
                }
            }
        }
        self.order = wanted.iter().map(|w| w.name.clone()).collect();
    }

    /// One status per configured service, in configuration order.
    pub fn status(&self) -> Vec<ServiceStatus> {
        self.order
            .iter()
            .filter_map(|name| self.entries.get(name))
            .map(|e| ServiceStatus {
                name: e.config.name.clone(),
                kind: e.config.kind.name().to_owned(),
                listen: match e.running.as_ref() {
                    Some(Running {
                        ext: Some(x),
                        bound,
                        ..
                    }) => x
                        .view
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .summary(bound.ip()),
                    Some(Running {
                        listening: Some(l), ..
                    }) => l.clone(),
                    Some(r) => r.bound.to_string(),
                    None => e.config.listen.to_string(),
                },
                running: e.running.as_ref().is_some_and(|r| !r.task.is_finished()),
                error: e.error.clone(),
                active_sessions: e
                    .running
                    .as_ref()
                    .map_or(0, |r| r.active.load(Ordering::Relaxed)),
            })
            .collect()
    }

    /// Each configured service with its bound address while it runs, and the machine the
    /// node pretends to be: what the realism check probes (`realism/`).
    pub fn realism_targets(&self) -> (Vec<crate::realism::Target>, crate::realism::Machine) {
        let targets = self
            .order
            .iter()
            .filter_map(|name| self.entries.get(name))
            .map(|e| crate::realism::Target {
                config: e.config.clone(),
                bound: e
                    .running
                    .as_ref()
                    .filter(|r| !r.task.is_finished())
                    .map(|r| r.bound),
            })
            .collect();
        (targets, crate::realism::Machine::of(self.persona.persona()))
    }

    /// The ports of extension service `name`: listening, held by real services, released,
    /// failed. `None` if there is no such running extension service.
    pub fn extension_ports(&self, name: &str) -> Option<ExtensionPorts> {
        let x = self.entries.get(name)?.running.as_ref()?.ext.as_ref()?;
        Some(x.view.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// Stops extension service `service` listening on `port`, until its configuration
    /// changes. The answer is the command's result text.
    pub async fn release_port(&self, service: &str, port: u16) -> Result<String, String> {
        let x = self
            .entries
            .get(service)
            .and_then(|e| e.running.as_ref())
            .and_then(|r| r.ext.as_ref())
            .ok_or_else(|| format!("no running extension service named {service:?}"))?;
        let (tx, rx) = oneshot::channel();
        x.releases
            .send((port, tx))
            .await
            .map_err(|_| "the service is stopping".to_owned())?;
        rx.await.map_err(|_| "the service is stopping".to_owned())?
    }

    /// Stops every listener and session. Sessions get [`SHUTDOWN_GRACE`] to close and
    /// emit their `Disconnect`; stragglers are aborted. The manager is spent afterwards:
    /// it has dropped its event sink, so once this returns no service holds a sender.
    pub async fn shutdown(&mut self) {
        let running: Vec<Running> = self
            .entries
            .values_mut()
            .filter_map(|e| e.running.take())
            .collect();
        for r in &running {
            let _ = r.stop.send(true);
        }
        for r in running {
            join_listener(r.task).await;
        }
        self.logins.save().await;
        self.overlays.save().await;
        self.sink = None;
    }

    async fn emit_error(&self, s: &ServiceConfig, message: &str) {
        let Some(sink) = &self.sink else { return };
        sink.emit(NewEvent::now(
            &s.name,
            None,
            None,
            Some(s.listen),
            EventKind::ServiceError {
                message: clamp(message, MAX_FIELD_LEN),
            },
        ))
        .await;
    }
}

impl Drop for ServiceManager {
    /// Without an awaited [`ServiceManager::shutdown`], listeners still stop on their own.
    fn drop(&mut self) {
        for e in self.entries.values() {
            if let Some(r) = &e.running {
                let _ = r.stop.send(true);
            }
        }
    }
}

async fn join_listener(mut task: JoinHandle<()>) {
    // The listener drains its own sessions within DRAIN_TIMEOUT; this is the backstop.
    if tokio::time::timeout(DRAIN_TIMEOUT + SHUTDOWN_GRACE, &mut task)
        .await
        .is_err()
    {
        task.abort();
        let _ = task.await;
    }
}

/// Resolves once `stop` says so, or its sender is gone.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await.is_ok();
}

/// What every service of the manager shares.
struct Shared<'a> {
    sink: &'a EventSink,
    captures: &'a Option<CaptureSpool>,
    limits: &'a Limits,
    limiter: &'a Arc<ConnLimiter>,
}

async fn start(
    cfg: &ServiceConfig,
    shared: &Shared<'_>,
    ctx: &ServiceContext,
    host_key: &mut HostKeyCache,
) -> Result<Running, StartError> {
    let Shared {
        sink,
        captures,
        limits,
        limiter,
    } = *shared;
    let invalid = StartError::InvalidOptions;
    let protocol = match &cfg.kind {
        ServiceKind::Ssh(opts) => {
            let key = host_key.get().await?;
            Protocol::Ssh(
                SshService::new(
                    opts,
                    key,
                    limits.idle_timeout,
                    Arc::clone(&ctx.logins),
                    Arc::clone(&ctx.overlays),
                    &ctx.persona,
                )
                .map_err(StartError::InvalidOptions)?,
            )
        }
        ServiceKind::Banner(opts) => Protocol::Banner(BannerService::new(opts)),
        ServiceKind::Extension(opts) => {
            return Ok(start_extension(cfg, opts, sink, limits, limiter));
        }
        ServiceKind::Telnet(o) => {
            Protocol::Telnet(telnet::TelnetService::new(o, ctx).map_err(invalid)?)
        }
        ServiceKind::Http(o) => Protocol::Http(http::HttpService::new(o, ctx).map_err(invalid)?),
        ServiceKind::Ftp(o) => Protocol::Ftp(ftp::FtpService::new(o, ctx).map_err(invalid)?),
        ServiceKind::Redis(o) => {
            Protocol::Redis(redis::RedisService::new(o, ctx, &cfg.name).map_err(invalid)?)
        }
        ServiceKind::Mysql(o) => {
            Protocol::Mysql(mysql::MysqlService::new(o, ctx).map_err(invalid)?)
        }
        ServiceKind::Modbus(o) => {
            Protocol::Modbus(modbus::ModbusService::new(o, ctx).map_err(invalid)?)
        }
        ServiceKind::Smtp(o) => Protocol::Smtp(smtp::SmtpService::new(o, ctx).map_err(invalid)?),
        ServiceKind::Detectors(o) => {
            return detectors::start(cfg, o, sink, Arc::clone(&ctx.persona));
        }
        ServiceKind::Aggregator(o) => return detectors::aggregator::start(cfg, o, sink),
        other => return Err(StartError::Unsupported(other.name().to_owned())),
    };
    let listener = bind(cfg.listen).map_err(|source| StartError::Bind {
        addr: cfg.listen,
        source,
    })?;
    let bound = listener.local_addr().map_err(|source| StartError::Bind {
        addr: cfg.listen,
        source,
    })?;
    let (stop, stop_rx) = watch::channel(false);
    let active = Arc::new(AtomicU32::new(0));
    let svc = Arc::new(Service {
        name: Arc::from(cfg.name.as_str()),
        protocol,
        captures: captures.clone(),
        sink: sink.clone(),
        limiter: Arc::clone(limiter),
        session_timeout: limits.session_timeout,
        active: Arc::clone(&active),
    });
    let task = tokio::spawn(accept_loop(svc, listener, bound, stop_rx));
    Ok(Running {
        bound,
        stop,
        task,
        active,
        ext: None,
        listening: None,
    })
}

/// An extension service: no listener of its own, a supervisor task that keeps one per
/// free configured port (see `extension.rs`).
fn start_extension(
    cfg: &ServiceConfig,
    opts: &honeybee_proto::config::ExtensionOptions,
    sink: &EventSink,
    limits: &Limits,
    limiter: &Arc<ConnLimiter>,
) -> Running {
    let ext = Arc::new(ExtensionService::new(opts, cfg.listen.ip()));
    let (stop, stop_rx) = watch::channel(false);
    let active = Arc::new(AtomicU32::new(0));
    let svc = Arc::new(Service {
        name: Arc::from(cfg.name.as_str()),
        protocol: Protocol::Extension(Arc::clone(&ext)),
        captures: None,
        sink: sink.clone(),
        limiter: Arc::clone(limiter),
        session_timeout: limits.session_timeout,
        active: Arc::clone(&active),
    });
    let (releases, releases_rx) = mpsc::channel(8);
    let view = Arc::new(Mutex::new(ExtensionPorts::default()));
    let task = tokio::spawn(extension::supervise(
        svc,
        ext,
        stop_rx,
        releases_rx,
        Arc::clone(&view),
    ));
    Running {
        bound: SocketAddr::new(cfg.listen.ip(), 0),
        stop,
        task,
        active,
        ext: Some(ExtHandle { releases, view }),
        listening: None,
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // A restarted service must get its port back while old sessions sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// What every connection of one service needs.
#[derive(Debug)]
struct Service {
    name: Arc<str>,
    protocol: Protocol,
    sink: EventSink,
    captures: Option<CaptureSpool>,
    limiter: Arc<ConnLimiter>,
    session_timeout: Duration,
    active: Arc<AtomicU32>,
}

async fn accept_loop(
    svc: Arc<Service>,
    listener: TcpListener,
    bound: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            Some(done) = sessions.join_next(), if !sessions.is_empty() => {
                if let Err(e) = done && e.is_panic() {
                    tracing::error!(service = %svc.name, "session task panicked");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => admit(&svc, &mut sessions, stream, peer, bound, &stop).await,
                Err(e) => {
                    tracing::warn!(service = %svc.name, error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    // The port closes now; sessions get their grace period.
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(service = %svc.name, left = sessions.len(), "aborting sessions that did not end");
        sessions.shutdown().await;
    }
}

async fn admit(
    svc: &Arc<Service>,
    sessions: &mut JoinSet<()>,
    stream: TcpStream,
    peer: SocketAddr,
    bound: SocketAddr,
    stop: &watch::Receiver<bool>,
) {
    let local = stream.local_addr().unwrap_or(bound);
    // Every connection counts for scan detection, even one the caps then refuse.
    if let Protocol::Extension(ext) = &svc.protocol {
        let evicted = ext.observe(peer.ip(), local.port());
        extension::emit_scans(svc, evicted).await;
    }
    let permit = match svc
        .limiter
        .try_acquire(peer.ip(), std::time::Instant::now())
    {
        Ok(p) => p,
        Err(refused) => {
            drop(stream);
            if let Some(detail) = refused.report {
                tracing::info!(service = %svc.name, src = %peer, limit = refused.cap.name(), "connection refused by cap");
                svc.sink
                    .emit(NewEvent::now(
                        &svc.name,
                        None,
                        Some(peer),
                        Some(local),
                        EventKind::LimitReached {
                            limit: refused.cap.name().to_owned(),
                            detail,
                        },
                    ))
                    .await;
            }
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let session = Session {
        service: Arc::clone(&svc.name),
        id: new_session_id(),
        src: peer,
        dst: local,
        sink: svc.sink.clone(),
        captures: svc.captures.clone(),
    };
    let svc = Arc::clone(svc);
    let stop = stop.clone();
    sessions.spawn(async move {
        let _permit = permit;
        let _active = ActiveGuard::new(&svc.active);
        run_session(&svc, session, stream, stop).await;
    });
}

/// Counts a service's open sessions for its status.
struct ActiveGuard<'a>(&'a AtomicU32);

impl<'a> ActiveGuard<'a> {
    fn new(n: &'a AtomicU32) -> Self {
        n.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(n)
    }
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn run_session(
    svc: &Service,
    session: Session,
    stream: TcpStream,
    stop: watch::Receiver<bool>,
) {
    let started = std::time::Instant::now();
    tracing::debug!(service = %svc.name, session = %session.id, src = %session.src, "connect");
    session.emit(EventKind::Connect).await;

    let tap = Arc::new(Tap::default());
    let stream = TapStream::new(stream, Arc::clone(&tap), kill(&stop, svc.session_timeout));
    match &svc.protocol {
        Protocol::Ssh(ssh) => ssh.serve(&session, stream, Arc::clone(&tap), stop).await,
        Protocol::Banner(banner) => banner.serve(&session, stream).await,
        Protocol::Extension(ext) => ext.banner.serve(&session, stream).await,
        Protocol::Telnet(p) => p.serve(&session, stream, stop).await,
        Protocol::Http(p) => p.serve(&session, stream, stop).await,
        Protocol::Ftp(p) => p.serve(&session, stream, stop).await,
        Protocol::Redis(p) => p.serve(&session, stream, stop).await,
        Protocol::Mysql(p) => p.serve(&session, stream, stop).await,
        Protocol::Modbus(p) => p.serve(&session, stream, stop).await,
        Protocol::Smtp(p) => p.serve(&session, stream, stop).await,
    }

    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    session
        .emit(EventKind::Disconnect {
            duration_ms,
            bytes_in: tap.bytes_in(),
            bytes_out: tap.bytes_out(),
        })
        .await;
}

/// The end of a session: its hard deadline, or the service stopping plus the grace period.
fn kill(stop: &watch::Receiver<bool>, session_timeout: Duration) -> Kill {
    let mut stop = stop.clone();
    let deadline = tokio::time::Instant::now() + session_timeout;
    Box::pin(async move {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {}
            () = async {
                stopped(&mut stop).await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } => {}
        }
    })
}
