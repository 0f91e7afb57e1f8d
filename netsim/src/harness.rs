//! The fleet: a real core and N real agents in this process, on 127.0.0.1, each agent
//! behind its own [`Proxy`] — real QUIC and mTLS, real SQLite spools, real reconnect and
//! backoff; only the honeypot listeners are off, because events are injected. Scenarios
//! ([`crate::scenario`]) disrupt it (partitions, a killed core, rebinding NATs) and then
//! audit the core's store: every synthetic event carries a unique `(agent, index)` mark,
//! so lost and duplicated events are counted by content, not by sequence number.

use crate::model::{Impairment, Partition};
use crate::proxy::{Proxy, ProxyConfig, ProxyError};
use honeybee_agent::config::{AgentConfig, AgentPaths};
use honeybee_agent::runtime::{Agent, AgentError, AgentOptions};
use honeybee_agent::services::Limits;
use honeybee_agent::sink::{EventSink, NewEvent};
use honeybee_core::Core;
use honeybee_core::init::{InitOptions, init};
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
        }
    }
}

/// One agent of the fleet and its link.
pub struct Member {
    pub index: usize,
    pub node: NodeId,
    pub dir: PathBuf,
    pub proxy: Proxy,
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

/// A running core and its agents.
pub struct Fleet {
    dir: tempfile::TempDir,
    core: Option<Core>,
    core_addr: SocketAddr,
    pub members: Vec<Member>,
    pub opts: FleetOptions,
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
    /// `core init` on a free loopback port, the core, one multi-use token, every agent
    /// enrolled directly with the core, then each agent re-pointed at its own proxy and
    /// started; returns once every agent has connected through its proxy.
    pub async fn start(opts: FleetOptions) -> Result<Fleet, HarnessError> {
        honeybee_pki::install_crypto_provider();
        let dir = tempfile::Builder::new()
            .prefix("honeybee-netsim-")
            .tempdir()?;
        let port = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let core_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let core_dir = dir.path().join("core");
        init(
            &core_dir,
            &InitOptions {
                trust_domain: "netsim.honeybee".into(),
                listen: core_addr,
                advertise: None,
            },
        )?;
        let core = start_core(&core_dir, opts.timing).await?;
        let mut fleet = Fleet {
            dir,
            core: Some(core),
            core_addr,
            members: Vec::with_capacity(opts.agents),
            opts,
        };
        let dirs = fleet.enrol_all().await?;
        for (index, agent_dir) in dirs.into_iter().enumerate() {
            fleet.add_member(index, agent_dir).await?;
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

    async fn add_member(&mut self, index: usize, dir: PathBuf) -> Result<(), HarnessError> {
        let mut pc = ProxyConfig::new((Ipv4Addr::LOCALHOST, 0).into(), self.core_addr);
        pc.up = self.opts.up.clone();
        pc.down = self.opts.down.clone();
        pc.rebind_every = self.opts.rebind_every;
        // Every agent's link draws its own random stream.
        pc.seed = self
            .opts
            .seed
            .wrapping_mul(0x1000_0001)
            .wrapping_add(index as u64 * 0x10_0001);
        let proxy = Proxy::start(pc).await?;
        let paths = AgentPaths::new(&dir);
        let mut cfg =
            AgentConfig::load(&paths).map_err(|e| HarnessError::AgentConfig(e.to_string()))?;
        cfg.core = proxy.local_addr().to_string();
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
            agent: Some(agent),
            emitter,
        });
        Ok(())
    }

    pub fn core(&self) -> Result<&Core, HarnessError> {
        self.core.as_ref().ok_or(HarnessError::CoreDown)
    }

    pub fn core_dir(&self) -> PathBuf {
        self.dir.path().join("core")
    }

    pub fn core_addr(&self) -> SocketAddr {
        self.core_addr
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
            if let Some(core) = &self.core {
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

    /// Cuts (or heals, with `None`) the links of the given agents.
    pub async fn partition(
        &self,
        agents: std::ops::Range<usize>,
        p: Option<Partition>,
    ) -> Result<(), HarnessError> {
        for m in &self.members[agents.clone()] {
            m.proxy.partition(p)?;
        }
        for m in &self.members[agents] {
            m.proxy.sync().await?;
        }
        Ok(())
    }

    /// Kills the core as far as the agents can tell: every link goes silent first, so
    /// neither its goodbye nor any ack after that reaches an agent, then it stops. The
    /// agents find out only by their idle timeout, as with a crash. (In-process, the
    /// core still commits what it received; the agents resend everything unacked.)
    pub async fn kill_core(&mut self) -> Result<(), HarnessError> {
        let n = self.members.len();
        self.partition(0..n, Some(Partition::Drop)).await?;
        if let Some(core) = self.core.take() {
            core.shutdown().await;
        }
        Ok(())
    }

    /// Stops the core cleanly: agents are told at once and reconnect.
    pub async fn stop_core(&mut self) {
        if let Some(core) = self.core.take() {
            core.shutdown().await;
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
            match start_core(&self.core_dir(), self.opts.timing).await {
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
        self.core = Some(core);
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
        self.stop_core().await;
    }

    /// Stops everything and removes the data.
    pub async fn close(mut self) {
        self.stop().await;
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Starts the core of `dir` without the module shim: its fixed TCP port would collide
/// between fleets running side by side, and no scenario uses modules.
async fn start_core(dir: &Path, timing: Timing) -> Result<Core, HarnessError> {
    let mut cfg = honeybee_core::config::load(dir)?;
    cfg.shim_listen = None;
    cfg.timing = timing;
    Ok(Core::start_with(cfg).await?)
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
