//! The fleet: a real core and N real agents in this process, on 127.0.0.1, each agent
//! behind its own [`Proxy`] — real QUIC and mTLS, real SQLite spools, real reconnect and
//! backoff; only the honeypot listeners are off, because events are injected. Scenarios
//! ([`crate::scenario`]) disrupt it (partitions, a killed core, rebinding NATs) and then
//! audit the core's store: every synthetic event carries a unique `(agent, index)` mark,
//! so lost and duplicated events are counted by content, not by sequence number.
//!
//! With [`FleetOptions::cores`] above one, the cores share one PostgreSQL database (the
//! test fixture's server, [`crate::pg`]) and each agent has one impaired link per core;
//! it finds them by `srv:DOMAIN` through the fleet's DNS responder ([`crate::dns`]), its
//! home core first, so the agents are split across the cores and fail over down their SRV
//! list as deployed agents do. The audit reads the shared database through any running
//! core.

use crate::model::{Impairment, Partition};
use crate::proxy::{Proxy, ProxyConfig, ProxyError};
use honeybee_agent::config::{AgentConfig, AgentPaths};
use honeybee_agent::runtime::{Agent, AgentError, AgentOptions};
use honeybee_agent::services::Limits;
use honeybee_agent::sink::{EventSink, NewEvent};
use honeybee_core::Core;
use honeybee_core::config::RawStore;
use honeybee_core::init::{InitOptions, init_with_store};
use honeybee_proto::admin::{EventQuery, TokenSpec};
use honeybee_proto::control::NodeMode;
use honeybee_proto::event::EventKind;
use honeybee_proto::timing::Timing;
use honeybee_proto::{NodeId, Role};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// The service name synthetic events are reported under.
pub const SERVICE: &str = "netsim";
/// The prefix of every synthetic event's command line: `synthetic <agent> <index>`.
const MARK: &str = "synthetic";
/// How often the harness polls the store and the agents while waiting.
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    #[error("core init: {0}")]
    Init(#[from] honeybee_core::init::InitError),
    #[error("core: {0}")]
    Core(#[from] honeybee_core::server::CoreError),
    #[error("core config: {0}")]
    CoreConfig(#[from] honeybee_core::config::ConfigError),
    #[error("the core is not running")]
    CoreDown,
    #[error("token: {0}")]
    Token(String),
    #[error("enrolment of agent {agent}: {why}")]
    Enrol { agent: usize, why: String },
    #[error("agent config: {0}")]
    AgentConfig(String),
    #[error("agent: {0}")]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error("store: {0}")]
    Store(#[from] honeybee_core::store::StoreError),
    #[error("{0}")]
    Timeout(String),
    #[error("audit: {0}")]
    Audit(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("PostgreSQL for the fleet: {0}")]
    Postgres(String),
    #[error("fleet options: {0}")]
    Options(String),
}

/// How to build a fleet.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub agents: usize,
    /// Agent to core.
    pub up: Impairment,
    /// Core to agent.
    pub down: Impairment,
    pub rebind_every: Option<Duration>,
    pub seed: u64,
    /// Enrolments in flight at once.
    pub enrol_parallelism: usize,
    /// How long [`Fleet::start`] waits for every agent's first connection.
    pub connect_within: Duration,
    /// The session timers of the core and of every agent (the same value on both ends).
    /// Scenarios that must outlast a timer compress it rather than wait out real time.
    pub timing: Timing,
    /// Cores serving the fleet; more than one needs `postgres`. Agent `i`'s home core
    /// (first in its SRV list) is core `i % cores`.
    pub cores: usize,
    /// Store in a fresh database on the process's PostgreSQL server instead of SQLite.
    pub postgres: bool,
    /// `[store] lease_ttl` on PostgreSQL (None: the core's default, 30 s).
    pub lease_ttl: Option<String>,
}

impl FleetOptions {
    /// `agents` agents, each behind the same impairment both ways.
    pub fn new(agents: usize, link: Impairment) -> FleetOptions {
        FleetOptions {
            agents,
            up: link.clone(),
            down: link,
            rebind_every: None,
            seed: 1,
            enrol_parallelism: 8,
            connect_within: Duration::from_secs(300),
            timing: Timing::default(),
            cores: 1,
            postgres: false,
            lease_ttl: None,
        }
    }

    /// The same with `cores` cores on one PostgreSQL database.
    pub fn on_cores(self, cores: usize) -> FleetOptions {
        FleetOptions {
            cores,
            postgres: true,
            ..self
        }
    }
}

/// One agent of the fleet and its links.
pub struct Member {
    pub index: usize,
    pub node: NodeId,
    pub dir: PathBuf,
    /// The link to core 0 (the only core of a one-core fleet).
    pub proxy: Proxy,
    /// The links to cores 1, 2, … of a fleet of several cores.
    pub other_links: Vec<Proxy>,
    pub agent: Option<Agent>,
    emitter: Emitter,
}

/// Reports synthetic events as one agent's services would; cheap to clone.
#[derive(Clone)]
pub struct Emitter {
    index: usize,
    sink: EventSink,
    emitted: Arc<AtomicU64>,
}

impl Emitter {
    /// Reports the agent's next synthetic event (spooled before this returns… eventually:
    /// the sink is a bounded queue in front of the spool).
    pub async fn emit(&self) {
        let k = self.emitted.fetch_add(1, Ordering::Relaxed);
        let line = format!("{MARK} {} {k}", self.index);
        self.sink
            .emit(NewEvent::now(
                SERVICE,
                None,
                None,
                None,
                EventKind::Command { line },
            ))
            .await;
    }

    pub fn emitted(&self) -> u64 {
        self.emitted.load(Ordering::Relaxed)
    }
}

impl Member {
    /// The agent's link to core `core`.
    pub fn link(&self, core: usize) -> &Proxy {
        match core {
            0 => &self.proxy,
            c => &self.other_links[c - 1],
        }
    }

    fn links(&self) -> impl Iterator<Item = &Proxy> {
        std::iter::once(&self.proxy).chain(&self.other_links)
    }
}

/// The running cores and their agents.
pub struct Fleet {
    dir: tempfile::TempDir,
    /// `None` where a core is stopped.
    cores: Vec<Option<Core>>,
    core_addrs: Vec<SocketAddr>,
    /// Serves the agents' SRV records in a fleet of several cores.
    dns: Option<crate::dns::Dns>,
    pub members: Vec<Member>,
    pub opts: FleetOptions,
}

/// The SRV domain agent `index` finds its cores by.
fn agent_domain(index: usize) -> String {
    format!("a{index}.netsim.test")
}

/// The name every link's address goes by (they all listen on 127.0.0.1).
const LINK_HOST: &str = "links.netsim.test";

/// A free UDP port on 127.0.0.1 (free when asked; the core binds it right after).
fn free_udp_port() -> Result<u16, HarnessError> {
    Ok(std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// What the store holds for the fleet's synthetic events.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    pub sent: u64,
    pub stored: u64,
    pub lost: u64,
    pub duplicated: u64,
    /// Stored minus emitted time of each event's first stored copy, sorted.
    pub latencies_ms: Vec<i64>,
}

impl Fleet {
    /// `core init` on a free loopback port (and, for several cores, copies of its data
    /// directory on ports of their own, all on one fresh PostgreSQL database), the cores,
    /// one multi-use token, every agent enrolled directly with core 0, then each agent
    /// re-pointed at its own proxies and started; returns once every agent has connected
    /// through a proxy.
    pub async fn start(opts: FleetOptions) -> Result<Fleet, HarnessError> {
        honeybee_pki::install_crypto_provider();
        if opts.cores == 0 || (opts.cores > 1 && !opts.postgres) {
            return Err(HarnessError::Options(format!(
                "{} cores: a fleet has at least one core, and several cores share one \
                 PostgreSQL database (set postgres)",
                opts.cores
            )));
        }
        let dir = tempfile::Builder::new()
            .prefix("honeybee-netsim-")
            .tempdir()?;
        let core_addrs = (0..opts.cores)
            .map(|_| Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()?))))
            .collect::<Result<Vec<_>, HarnessError>>()?;
        let core_dir = dir.path().join("core");
        let store = if opts.postgres {
            crate::pg::fresh_store(&dir.path().join("store"), opts.lease_ttl.as_deref()).await?
        } else {
            RawStore::default()
        };
        init_with_store(
            &core_dir,
            &InitOptions {
                trust_domain: "netsim.honeybee".into(),
                listen: core_addrs[0],
                advertise: None,
            },
            store,
        )?;
        for c in 1..opts.cores {
            // What makes a core itself (its cluster identity, its QUIC reset key, the
            // address files) is left out: each copy makes its own at its first start.
            copy_dir(
                &core_dir,
                &core_dir_of(dir.path(), c),
                &["core.id", "reset.key", "core.addr", "shim.addr", "captures"],
            )?;
            // Its own port in its core.toml too, for the admin client and the operator.
            let toml = core_dir_of(dir.path(), c).join("core.toml");
            let text = std::fs::read_to_string(&toml)?
                .replace(&core_addrs[0].to_string(), &core_addrs[c].to_string());
            std::fs::write(&toml, text)?;
        }
        let mut cores = Vec::with_capacity(opts.cores);
        for (c, addr) in core_addrs.iter().enumerate() {
            cores.push(Some(
                start_core(&core_dir_of(dir.path(), c), *addr, opts.timing).await?,
            ));
        }
        let mut fleet = Fleet {
            dir,
            cores,
            core_addrs,
            dns: None,
            members: Vec::with_capacity(opts.agents),
            opts,
        };
        let dirs = fleet.enrol_all().await?;
        let mut links = Vec::with_capacity(dirs.len());
        for index in 0..dirs.len() {
            links.push(fleet.open_links(index).await?);
        }
        if fleet.opts.cores > 1 {
            fleet.dns = Some(crate::dns::Dns::start(srv_records(
                &links,
                fleet.opts.cores,
            ))?);
        }
        for ((index, agent_dir), links) in dirs.into_iter().enumerate().zip(links) {
            fleet.add_member(index, agent_dir, links).await?;
        }
        let ok = fleet
            .wait_until(fleet.opts.connect_within, |f| {
                f.members
                    .iter()
                    .all(|m| m.agent.as_ref().is_some_and(|a| a.connections() >= 1))
            })
            .await;
        if !ok {
            let up = fleet.connected_count();
            return Err(HarnessError::Timeout(format!(
                "only {up} of {} agents connected within {:?}",
                fleet.members.len(),
                fleet.opts.connect_within
            )));
        }
        Ok(fleet)
    }

    async fn enrol_all(&self) -> Result<Vec<PathBuf>, HarnessError> {
        let n = self.opts.agents;
        let uses = u32::try_from(n).map_err(|_| HarnessError::Token("too many agents".into()))?;
        let (_, token) = self
            .core()?
            .shared()
            .create_token(
                &TokenSpec {
                    role: Role::Agent,
                    name: "netsim".into(),
                    ttl_s: 3600,
                    uses,
                    labels: vec![],
                },
                "netsim",
            )
            .await
            .map_err(HarnessError::Token)?;
        let token = Arc::new(token);
        let permits = Arc::new(tokio::sync::Semaphore::new(
            self.opts.enrol_parallelism.max(1),
        ));
        let mut set = JoinSet::new();
        for i in 0..n {
            let dir = self.dir.path().join("agents").join(format!("a{i:05}"));
            let (token, permits) = (token.clone(), permits.clone());
            set.spawn(async move {
                let _permit = permits.acquire_owned().await;
                honeybee_agent::enroll::enroll(&token, &dir)
                    .await
                    .map(|_| (i, dir))
                    .map_err(|e| HarnessError::Enrol {
                        agent: i,
                        why: e.to_string(),
                    })
            });
        }
        let mut dirs = vec![PathBuf::new(); n];
        while let Some(r) = set.join_next().await {
            let (i, dir) = r.map_err(|e| HarnessError::Audit(e.to_string()))??;
            dirs[i] = dir;
        }
        Ok(dirs)
    }

    /// Agent `index`'s links, one per core, in core order.
    async fn open_links(&self, index: usize) -> Result<Vec<Proxy>, HarnessError> {
        let mut links = Vec::with_capacity(self.core_addrs.len());
        for (c, addr) in self.core_addrs.iter().enumerate() {
            let mut pc = ProxyConfig::new((Ipv4Addr::LOCALHOST, 0).into(), *addr);
            pc.up = self.opts.up.clone();
            pc.down = self.opts.down.clone();
            pc.rebind_every = self.opts.rebind_every;
            // Every link draws its own random stream (core 0's as in a one-core fleet).
            pc.seed = self
                .opts
                .seed
                .wrapping_mul(0x1000_0001)
                .wrapping_add(index as u64 * 0x10_0001)
                .wrapping_add(c as u64 * 0x7f4a_7c15);
            links.push(Proxy::start(pc).await?);
        }
        Ok(links)
    }

    async fn add_member(
        &mut self,
        index: usize,
        dir: PathBuf,
        links: Vec<Proxy>,
    ) -> Result<(), HarnessError> {
        let mut links = links.into_iter();
        let proxy = links
            .next()
            .ok_or_else(|| HarnessError::Options("an agent without a link".into()))?;
        let other_links: Vec<Proxy> = links.collect();
        let paths = AgentPaths::new(&dir);
        let mut cfg =
            AgentConfig::load(&paths).map_err(|e| HarnessError::AgentConfig(e.to_string()))?;
        match &self.dns {
            Some(dns) => {
                cfg.core = format!("srv:{}", agent_domain(index));
                cfg.dns_server = Some(dns.addr);
            }
            None => cfg.core = proxy.local_addr().to_string(),
        }
        std::fs::write(paths.config(), cfg.to_toml())?;
        let node = NodeId::new(cfg.node_id.clone())
            .map_err(|e| HarnessError::AgentConfig(e.to_string()))?;
        let agent = Agent::start(AgentOptions {
            data_dir: dir.clone(),
            mode: NodeMode::Full,
            limits: Limits::default(),
            services: false,
            timing: self.opts.timing,
            metrics: None,
        })
        .await?;
        let emitter = Emitter {
            index,
            sink: agent.sink().clone(),
            emitted: Arc::new(AtomicU64::new(0)),
        };
        self.members.push(Member {
            index,
            node,
            dir,
            proxy,
            other_links,
            agent: Some(agent),
            emitter,
        });
        Ok(())
    }

    /// The first running core: in a fleet of several cores any of them reads the one
    /// shared database.
    pub fn core(&self) -> Result<&Core, HarnessError> {
        self.cores
            .iter()
            .flatten()
            .next()
            .ok_or(HarnessError::CoreDown)
    }

    /// Core `c`, if it is running.
    pub fn core_n(&self, c: usize) -> Option<&Core> {
        self.cores.get(c).and_then(Option::as_ref)
    }

    pub fn core_dir(&self) -> PathBuf {
        core_dir_of(self.dir.path(), 0)
    }

    /// Core `c`'s data directory (its admin client's credentials are there).
    pub fn core_dir_of(&self, c: usize) -> PathBuf {
        core_dir_of(self.dir.path(), c)
    }

    pub fn core_addr(&self) -> SocketAddr {
        self.core_addrs[0]
    }

    /// The agents whose home core (first in their SRV list) is `core`.
    pub fn homed_on(&self, core: usize) -> Vec<usize> {
        let n = self.opts.cores.max(1);
        (0..self.members.len()).filter(|i| i % n == core).collect()
    }

    /// The agents whose live connection core `core`'s registry holds now. An agent
    /// may sit on a core other than its home: its first handshake to its home core can
    /// time out on a loaded machine, and then it takes the next core of its SRV list.
    pub fn on_core(&self, core: usize) -> Vec<usize> {
        let Some(c) = self.core_n(core) else {
            return vec![];
        };
        let registry = &c.shared().registry;
        self.members
            .iter()
            .filter(|m| registry.is_online(&m.node))
            .map(|m| m.index)
            .collect()
    }

    /// Per core: (nodes whose lease it holds in the shared database, connections its own
    /// registry holds); `None` for a stopped core. Asked of each core over its admin API
    /// (`ListCores`, its own row), as `honeybee cores` does. Empty for a fleet on SQLite,
    /// which has no leases.
    pub async fn leases(&self) -> Result<Vec<Option<(u64, u64)>>, HarnessError> {
        use honeybee_core::admin_client::AdminClient;
        use honeybee_proto::admin::{AdminRequest, AdminResponse};
        if !self.opts.postgres {
            return Ok(vec![]);
        }
        let admin = |e: &dyn std::fmt::Display| HarnessError::Audit(format!("admin API: {e}"));
        let mut out = Vec::with_capacity(self.cores.len());
        for (c, core) in self.cores.iter().enumerate() {
            let Some(core) = core else {
                out.push(None);
                continue;
            };
            let client = AdminClient::connect(&core_dir_of(self.dir.path(), c))
                .await
                .map_err(|e| admin(&e))?;
            let r = client.request(&AdminRequest::ListCores).await;
            client.close().await;
            let held = match r.map_err(|e| admin(&e))? {
                AdminResponse::Cores(cores) => {
                    cores.iter().find(|i| i.this_core).map_or(0, |i| i.nodes)
                }
                other => return Err(admin(&format!("unexpected answer {other:?}"))),
            };
            out.push(Some((held, core.shared().registry.online_count() as u64)));
        }
        Ok(out)
    }

    pub fn emitter(&self, i: usize) -> Emitter {
        self.members[i].emitter.clone()
    }

    /// Events emitted so far by every agent.
    pub fn emitted(&self) -> u64 {
        self.members.iter().map(|m| m.emitter.emitted()).sum()
    }

    /// Each agent's welcomed connections so far.
    pub fn connections(&self) -> Vec<u64> {
        self.members
            .iter()
            .map(|m| m.agent.as_ref().map_or(0, |a| a.connections()))
            .collect()
    }

    /// Handshakes beyond each agent's first.
    pub fn reconnections(&self) -> u64 {
        self.connections().iter().map(|c| c.saturating_sub(1)).sum()
    }

    pub fn connected_count(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.agent.as_ref().is_some_and(|a| *a.connected().borrow()))
            .count()
    }

    /// Polls `done` until it holds or `within` passes; says which.
    pub async fn wait_until(&self, within: Duration, done: impl Fn(&Fleet) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if done(self) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Spreads `per_agent` events per agent evenly over `over`, every agent at once
    /// (staggered so they do not tick together). Await [`Drive::finish`] for the end.
    pub fn drive(&self, per_agent: u64, over: Duration) -> Drive {
        let mut set = JoinSet::new();
        let n = self.members.len().max(1) as u32;
        let gap = over / per_agent.max(1) as u32;
        for (i, m) in self.members.iter().enumerate() {
            let e = m.emitter.clone();
            let offset = gap * i as u32 / n;
            set.spawn(async move {
                tokio::time::sleep(offset).await;
                let mut tick = tokio::time::interval(gap.max(Duration::from_micros(100)));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                for _ in 0..per_agent {
                    tick.tick().await;
                    e.emit().await;
                }
            });
        }
        Drive { set }
    }

    /// Waits until the store holds at least every event emitted so far; `None` if
    /// `within` passes first.
    pub async fn wait_stored(&self, within: Duration) -> Result<Option<Instant>, HarnessError> {
        let deadline = Instant::now() + within;
        let want = self.emitted();
        loop {
            if let Ok(core) = self.core() {
                let n = core.shared().store.count_events(None).await?;
                if n >= want {
                    return Ok(Some(Instant::now()));
                }
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(POLL * 5).await;
        }
    }

    /// Audits the store against what was emitted: for each agent, every mark
    /// `synthetic <agent> <k>` for k below its count must be stored exactly once.
    pub async fn delivery(&self) -> Result<Delivery, HarnessError> {
        let store = &self.core()?.shared().store;
        let limit = honeybee_core::store::MAX_QUERY_LIMIT;
        let mut d = Delivery::default();
        for m in &self.members {
            let sent = m.emitter.emitted();
            if sent >= u64::from(limit) {
                return Err(HarnessError::Audit(format!(
                    "agent {} emitted {sent} events; the audit reads at most {} per agent",
                    m.index,
                    limit - 1
                )));
            }
            let rows = store
                .query_events(&EventQuery {
                    node: Some(m.node.clone()),
                    service: Some(SERVICE.into()),
                    kind: None,
                    since_ms: None,
                    limit,
                })
                .await?;
            let mut seen = vec![0u32; sent as usize];
            for row in &rows {
                let EventKind::Command { line } = &row.event.kind else {
                    return Err(HarnessError::Audit(format!("unexpected event {row:?}")));
                };
                let k = parse_mark(line, m.index).ok_or_else(|| {
                    HarnessError::Audit(format!("agent {}: foreign event {line:?}", m.index))
                })?;
                let slot = seen.get_mut(k as usize).ok_or_else(|| {
                    HarnessError::Audit(format!("agent {}: event {k} was never sent", m.index))
                })?;
                *slot += 1;
                if *slot == 1 {
                    d.latencies_ms.push(row.received_ms - row.event.time_ms);
                }
            }
            d.sent += sent;
            d.stored += rows.len() as u64;
            d.lost += seen.iter().filter(|c| **c == 0).count() as u64;
            d.duplicated += seen.iter().map(|c| c.saturating_sub(1) as u64).sum::<u64>();
        }
        d.latencies_ms.sort_unstable();
        Ok(d)
    }

    /// Cuts (or heals, with `None`) the links of the given agents, to every core.
    pub async fn partition(
        &self,
        agents: std::ops::Range<usize>,
        p: Option<Partition>,
    ) -> Result<(), HarnessError> {
        let members = &self.members[agents];
        for link in members.iter().flat_map(Member::links) {
            link.partition(p)?;
        }
        for link in members.iter().flat_map(Member::links) {
            link.sync().await?;
        }
        Ok(())
    }

    /// Cuts (or heals) the links between core `core` and the given agents only: the
    /// agents still reach the other cores.
    pub async fn partition_from(
        &self,
        core: usize,
        agents: &[usize],
        p: Option<Partition>,
    ) -> Result<(), HarnessError> {
        for &i in agents {
            self.members[i].link(core).partition(p)?;
        }
        for &i in agents {
            self.members[i].link(core).sync().await?;
        }
        Ok(())
    }

    /// Kills core `core` of a fleet of several cores as [`Fleet::kill_core`] kills the only
    /// one: every agent's link to it goes silent, then it stops. The agents homed on it
    /// find out by their idle timeout and fail over down their SRV list.
    pub async fn kill_core_n(&mut self, core: usize) -> Result<(), HarnessError> {
        let all: Vec<usize> = (0..self.members.len()).collect();
        self.partition_from(core, &all, Some(Partition::Drop))
            .await?;
        if let Some(c) = self.cores.get_mut(core).and_then(Option::take) {
            c.shutdown().await;
        }
        Ok(())
    }

    /// Kills the core as far as the agents can tell: every link goes silent first, so
    /// neither its goodbye nor any ack after that reaches an agent, then it stops. The
    /// agents find out only by their idle timeout, as with a crash. (In-process, the
    /// core still commits what it received; the agents resend everything unacked.)
    pub async fn kill_core(&mut self) -> Result<(), HarnessError> {
        self.kill_core_n(0).await
    }

    /// Stops core 0 cleanly: agents are told at once and reconnect.
    pub async fn stop_core(&mut self) {
        if let Some(core) = self.cores.first_mut().and_then(Option::take) {
            core.shutdown().await;
        }
    }

    /// Stops every core that runs.
    async fn stop_cores(&mut self) {
        for core in &mut self.cores {
            if let Some(core) = core.take() {
                core.shutdown().await;
            }
        }
    }

    /// Starts the core again on the same data directory and port (retrying while the old
    /// socket lingers: quinn keeps it until every closed connection has drained), then
    /// heals every link. Returns how long the port stayed taken.
    pub async fn start_core(&mut self) -> Result<Duration, HarnessError> {
        let t = Instant::now();
        let mut bound = None;
        let deadline = t + Duration::from_secs(120);
        let core = loop {
            match start_core(&self.core_dir(), self.core_addrs[0], self.opts.timing).await {
                Ok(c) => break c,
                Err(HarnessError::Core(honeybee_core::server::CoreError::Bind { .. }))
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    bound = Some(t.elapsed());
                }
                Err(e) => return Err(e),
            }
        };
        self.cores[0] = Some(core);
        let n = self.members.len();
        self.partition(0..n, None).await?;
        Ok(bound.unwrap_or_default())
    }

    /// Waits until every agent has made a connection beyond `baseline` (its count
    /// before a disruption); returns, per agent, when that happened after `since`.
    pub async fn wait_reconnected(
        &self,
        baseline: &[u64],
        since: Instant,
        within: Duration,
    ) -> Vec<Option<Duration>> {
        let mut at: Vec<Option<Duration>> = vec![None; self.members.len()];
        let deadline = Instant::now() + within;
        loop {
            let now = Instant::now();
            for ((slot, b), c) in at.iter_mut().zip(baseline).zip(self.connections()) {
                if slot.is_none() && c > *b {
                    *slot = Some(now.saturating_duration_since(since));
                }
            }
            if at.iter().all(Option::is_some) || now >= deadline {
                return at;
            }
            tokio::time::sleep(POLL / 2).await;
        }
    }

    /// Datagrams the links dropped on purpose (loss, MTU, queue, partition), both ways.
    pub fn link_drops(&self) -> u64 {
        self.members
            .iter()
            .map(|m| {
                let s = m.proxy.stats();
                s.up.dropped() + s.down.dropped()
            })
            .sum()
    }

    pub fn rebinds(&self) -> u64 {
        self.members.iter().map(|m| m.proxy.stats().rebinds).sum()
    }

    /// Agents' data directories (their identities stay after the agents stop).
    pub fn agent_dirs(&self) -> Vec<PathBuf> {
        self.members.iter().map(|m| m.dir.clone()).collect()
    }

    /// Stops every agent, every proxy and the core. The agents' and core's data stay
    /// until [`Fleet::close`] (or drop).
    pub async fn stop(&mut self) {
        let mut set = JoinSet::new();
        for m in &mut self.members {
            if let Some(a) = m.agent.take() {
                set.spawn(async move {
                    let _ = a.stop().await;
                });
            }
        }
        while set.join_next().await.is_some() {}
        self.stop_cores().await;
    }

    /// Stops everything and removes the data.
    pub async fn close(mut self) {
        self.stop().await;
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Core `c`'s data directory under the fleet's directory.
fn core_dir_of(fleet: &Path, c: usize) -> PathBuf {
    match c {
        0 => fleet.join("core"),
        c => fleet.join(format!("core-{c}")),
    }
}

/// Starts the core of `dir` on `listen` without the module shim: its fixed TCP port would
/// collide between fleets running side by side, and no scenario uses modules.
async fn start_core(dir: &Path, listen: SocketAddr, timing: Timing) -> Result<Core, HarnessError> {
    let mut cfg = honeybee_core::config::load(dir)?;
    cfg.shim_listen = None;
    cfg.timing = timing;
    cfg.listen = listen;
    cfg.advertise = listen.to_string();
    Ok(Core::start_with(cfg).await?)
}

/// Copies the tree at `from` to `to`, leaving out the entries named in `skip` (at any
/// depth).
fn copy_dir(from: &Path, to: &Path, skip: &[&str]) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let name = e.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &to.join(&name), skip)?;
        } else {
            std::fs::copy(e.path(), to.join(&name))?;
        }
    }
    Ok(())
}

/// Each agent's SRV list: its links in priority order from its home core (`i % cores`)
/// on, one priority level each, so an agent fails over to the next core only when its
/// home core does not answer.
fn srv_records(links: &[Vec<Proxy>], cores: usize) -> Vec<(String, crate::dns::Rr)> {
    use crate::dns::Rr;
    let mut out = vec![(LINK_HOST.to_owned(), Rr::A(Ipv4Addr::LOCALHOST))];
    for (i, l) in links.iter().enumerate() {
        let name = format!(
            "{}.{}",
            honeybee_agent::resolve::SRV_SERVICE,
            agent_domain(i)
        );
        for k in 0..cores {
            let c = (i + k) % cores;
            out.push((
                name.clone(),
                Rr::Srv {
                    priority: 10 * (k as u16 + 1),
                    weight: 0,
                    port: l[c].local_addr().port(),
                    target: LINK_HOST.into(),
                },
            ));
        }
    }
    out
}

/// `synthetic <index> <k>` → k, if it is this agent's.
fn parse_mark(line: &str, index: usize) -> Option<u64> {
    let mut it = line.split(' ');
    if it.next()? != MARK || it.next()?.parse::<usize>().ok()? != index {
        return None;
    }
    let k = it.next()?.parse().ok()?;
    it.next().is_none().then_some(k)
}

/// Emission running in the background.
pub struct Drive {
    set: JoinSet<()>,
}

impl Drive {
    /// Waits until every event has been handed to its agent.
    pub async fn finish(mut self) {
        while self.set.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_parse_only_for_their_agent() {
        assert_eq!(parse_mark("synthetic 3 17", 3), Some(17));
        assert_eq!(parse_mark("synthetic 3 17", 4), None);
        assert_eq!(parse_mark("synthetic 3 17 x", 3), None);
        assert_eq!(parse_mark("other 3 17", 3), None);
    }
}
