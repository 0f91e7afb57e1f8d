//! The scenarios of issue 18 for several cores on one PostgreSQL: the core-kill and
//! partition scenarios of issue 7 with two cores, agents split across them and failing
//! over by their SRV lists, and ingest through one core and through two. Each audits the
//! shared database exactly as the one-core scenarios do (every synthetic event stored
//! once, by content) and adds what only a cluster has: where the nodes' leases ended up,
//! and how long the failover took.

use crate::harness::{Fleet, FleetOptions, HarnessError};
use crate::model::{Impairment, Partition};
use crate::report::Report;
use crate::scenario::{DELIVERY_DEADLINE, audit, secs, wan};
use honeybee_proto::timing::Timing;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// How long a scenario waits for the agents of a lost core to come back on another.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(300);
/// How long a scenario waits for the leases to settle (every node's lease with the core
/// that holds its connection) before it reports what it saw.
const SETTLE_DEADLINE: Duration = Duration::from_secs(60);

/// Waits until each of `agents` has made a connection beyond its count in `baseline`;
/// returns each one's time after `since` (None: not within `within`).
async fn wait_back(
    fleet: &Fleet,
    agents: &[usize],
    baseline: &[u64],
    since: Instant,
    within: Duration,
) -> Vec<Option<Duration>> {
    let mut at = vec![None; agents.len()];
    let deadline = Instant::now() + within;
    loop {
        let now = Instant::now();
        let conns = fleet.connections();
        for (slot, &i) in at.iter_mut().zip(agents) {
            if slot.is_none() && conns[i] > baseline[i] {
                *slot = Some(now.saturating_duration_since(since));
            }
        }
        if at.iter().all(Option::is_some) || now >= deadline {
            return at;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Failover times as report notes: how many came back, the first, median and last.
fn note_failover(r: &mut Report, back: &[Option<Duration>]) -> Option<Duration> {
    let mut t: Vec<Duration> = back.iter().flatten().copied().collect();
    t.sort();
    r.note("agents failed over", format!("{}/{}", t.len(), back.len()));
    if let (Some(first), Some(last)) = (t.first(), t.last()) {
        r.note("first failed over", secs(*first));
        r.note("median failed over", secs(t[t.len() / 2]));
        r.note("last failed over", secs(*last));
    }
    (t.len() == back.len()).then(|| t.last().copied().unwrap_or_default())
}

/// Waits (bounded) until every running core's leases match the connections its registry
/// holds and the leases add up to the fleet; returns the last `(held, live)` per core.
async fn settled_leases(fleet: &Fleet) -> Result<Vec<Option<(u64, u64)>>, HarnessError> {
    let deadline = Instant::now() + SETTLE_DEADLINE;
    loop {
        let l = fleet.leases().await?;
        let held: u64 = l.iter().flatten().map(|(h, _)| h).sum();
        let settled =
            l.iter().flatten().all(|(h, live)| h == live) && held == fleet.members.len() as u64;
        if settled || Instant::now() >= deadline {
            return Ok(l);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn note_leases(r: &mut Report, leases: &[Option<(u64, u64)>]) {
    for (c, l) in leases.iter().enumerate() {
        let v = match l {
            Some((held, live)) => format!("{held} leases, {live} connections"),
            None => "stopped".into(),
        };
        r.note(&format!("core {c}"), v);
    }
}

/// Two cores on one PostgreSQL, agents split across them; core 0 is killed mid-stream
/// (its links go silent, then it stops) and is not restarted: its agents find out by
/// their idle timeout and fail over to core 1 by their SRV lists. Nothing is lost or
/// duplicated; recovery is kill → the last of core 0's agents connected to core 1.
#[derive(Debug, Clone)]
pub struct ClusterCoreKill {
    pub agents: usize,
    pub events_per_agent: u64,
    pub over: Duration,
    pub kill_at: Duration,
    pub link: Impairment,
    /// False for the baseline: the same traffic on the same two cores, nothing killed.
    pub kill: bool,
    pub seed: u64,
    /// The session timers of the cores and the agents: failover waits for the idle
    /// timeout, then for a handshake to the dead core to time out.
    pub timing: Timing,
}

impl Default for ClusterCoreKill {
    fn default() -> Self {
        ClusterCoreKill {
            agents: 100,
            events_per_agent: 200,
            over: Duration::from_secs(10),
            kill_at: Duration::from_secs(4),
            link: wan(50, 20, 0.02, 0.01),
            kill: true,
            seed: 13,
            timing: Timing::default(),
        }
    }
}

impl ClusterCoreKill {
    /// The same traffic on a clean link with nothing killed.
    pub fn clean(self) -> Self {
        ClusterCoreKill {
            link: Impairment::clean(),
            kill: false,
            ..self
        }
    }

    pub async fn run(&self) -> Result<Report, HarnessError> {
        let started = Instant::now();
        let mut opts = FleetOptions::new(self.agents, self.link.clone()).on_cores(2);
        opts.seed = self.seed;
        opts.timing = self.timing;
        let mut fleet = Fleet::start(opts).await?;
        let at_start = fleet.leases().await?;
        let drive = fleet.drive(self.events_per_agent, self.over);
        tokio::time::sleep(self.kill_at).await;
        // The agents core 0 serves when it dies (mostly those homed on it, see
        // `Fleet::on_core`): each must come back on core 1.
        let victims = fleet.on_core(0);
        let mut back = Vec::new();
        let mut stored_before = 0;
        let mut killed = None;
        if self.kill {
            stored_before = fleet.core()?.shared().store.count_events(None).await?;
            let baseline = fleet.connections();
            let t = Instant::now();
            fleet.kill_core_n(0).await?;
            back = wait_back(&fleet, &victims, &baseline, t, FAILOVER_DEADLINE).await;
            killed = Some(t);
        }
        drive.finish().await;
        let stored = fleet.wait_stored(DELIVERY_DEADLINE).await?;
        let leases = settled_leases(&fleet).await?;
        let name = if self.kill {
            format!("2 cores, core 0 killed ({} agents on it)", victims.len())
        } else {
            "2 cores, nothing killed".into()
        };
        let mut r = audit(&fleet, &name, &self.link, started).await?;
        if let Some(t) = killed {
            r.recovery = note_failover(&mut r, &back);
            r.note(
                "killed → all stored",
                secs(stored.map_or(t.elapsed(), |s| s - t)),
            );
            r.note("stored before the kill", stored_before);
        }
        if let Some(Some((held, live))) = at_start.first() {
            r.note(
                "core 0 at start",
                format!("{held} leases, {live} connections"),
            );
        }
        note_leases(&mut r, &leases);
        r.note("idle timeout", secs(self.timing.idle_timeout));
        fleet.stop().await;
        Ok(r)
    }
}

/// Two cores on one PostgreSQL, agents split across them; a share of core 0's agents lose
/// their route to core 0 (core 1 stays reachable) while every agent reports events. The
/// cut agents' connections to core 0 die by the idle timeout, they fail over to core 1,
/// which takes their leases over, and core 0 closes its stale connections; the
/// partition holds until every cut agent is on core 1 (at least `duration`), then heals.
/// Nothing is lost or duplicated, and every node's lease ends with the core that holds
/// its connection.
#[derive(Debug, Clone)]
pub struct ClusterPartition {
    pub agents: usize,
    /// Core 0's agents `homed_on(0)[..share]` are cut off from it.
    pub share: f64,
    pub before: Duration,
    /// The shortest the partition lasts.
    pub duration: Duration,
    /// Events per agent per second, from the start until the heal.
    pub rate: u64,
    pub link: Impairment,
    /// False for the baseline: nothing is cut.
    pub cut: bool,
    pub seed: u64,
    pub timing: Timing,
}

impl Default for ClusterPartition {
    fn default() -> Self {
        ClusterPartition {
            agents: 100,
            share: 0.5,
            before: Duration::from_secs(5),
            duration: Duration::from_secs(45),
            rate: 2,
            link: wan(20, 5, 0.01, 0.0),
            cut: true,
            seed: 14,
            timing: Timing::default(),
        }
    }
}

impl ClusterPartition {
    pub fn clean(self) -> Self {
        ClusterPartition {
            link: Impairment::clean(),
            cut: false,
            ..self
        }
    }

    pub async fn run(&self) -> Result<Report, HarnessError> {
        let started = Instant::now();
        let mut opts = FleetOptions::new(self.agents, self.link.clone()).on_cores(2);
        opts.seed = self.seed;
        opts.timing = self.timing;
        let mut fleet = Fleet::start(opts).await?;
        // Events flow from the start until the planned heal; the partition itself lasts
        // until every cut agent has failed over, which may be longer.
        let total = self.before + self.duration;
        let per_agent = self.rate * total.as_secs().max(1);
        let drive = fleet.drive(per_agent, total);
        tokio::time::sleep(self.before).await;
        // Cut from core 0: a share of the agents it serves at the cut (mostly those
        // homed on it, see `Fleet::on_core`).
        let serving = fleet.on_core(0);
        let n_cut = ((serving.len() as f64 * self.share).round() as usize).min(serving.len());
        let cut = &serving[..if self.cut { n_cut } else { 0 }];
        let baseline = fleet.connections();
        let t = Instant::now();
        fleet.partition_from(0, cut, Some(Partition::Drop)).await?;
        let back = wait_back(&fleet, cut, &baseline, t, FAILOVER_DEADLINE).await;
        tokio::time::sleep(self.duration.saturating_sub(t.elapsed())).await;
        let during = fleet.leases().await?;
        let stale_closed = fleet
            .core_n(0)
            .and_then(|c| {
                c.shared()
                    .cluster
                    .as_ref()
                    .map(|c| c.counters.stale_closed.load(Ordering::Relaxed))
            })
            .unwrap_or(0);
        fleet.partition_from(0, cut, None).await?;
        let healed = Instant::now();
        let partition_for = healed - t;
        drive.finish().await;
        let stored = fleet.wait_stored(DELIVERY_DEADLINE).await?;
        let leases = settled_leases(&fleet).await?;
        let name = if self.cut {
            format!(
                "2 cores, {} of core 0's {} agents cut from it for {}",
                cut.len(),
                serving.len(),
                secs(partition_for)
            )
        } else {
            "2 cores, nothing cut".into()
        };
        let mut r = audit(&fleet, &name, &self.link, started).await?;
        r.recovery = stored.filter(|_| self.cut).map(|s| s - healed);
        if self.cut {
            note_failover(&mut r, &back);
            if let Some(Some((held, live))) = during.get(1) {
                r.note(
                    "core 1 before the heal",
                    format!("{held} leases, {live} connections"),
                );
            }
            r.note("stale connections core 0 closed", stale_closed);
        }
        note_leases(&mut r, &leases);
        r.note("idle timeout", secs(self.timing.idle_timeout));
        fleet.stop().await;
        Ok(r)
    }
}

/// Ingest with the same agents on one core and on two cores sharing one PostgreSQL: every
/// agent emits its events as fast as its sink takes them, and the rate is events stored
/// over the time from the first emission until all are stored. Run once per core count;
/// the benchmark compares the two in one process on one machine.
#[derive(Debug, Clone)]
pub struct ClusterIngest {
    pub agents: usize,
    pub events_per_agent: u64,
    pub cores: usize,
    pub seed: u64,
}

impl Default for ClusterIngest {
    fn default() -> Self {
        ClusterIngest {
            agents: 100,
            events_per_agent: 1000,
            cores: 2,
            seed: 15,
        }
    }
}

impl ClusterIngest {
    pub async fn run(&self) -> Result<Report, HarnessError> {
        let started = Instant::now();
        let link = Impairment::clean();
        let mut opts = FleetOptions::new(self.agents, link.clone()).on_cores(self.cores);
        opts.seed = self.seed;
        let fleet = Fleet::start(opts).await?;
        let t = Instant::now();
        fleet
            .drive(self.events_per_agent, Duration::ZERO)
            .finish()
            .await;
        let stored = fleet
            .wait_stored(DELIVERY_DEADLINE)
            .await?
            .ok_or_else(|| HarnessError::Timeout("ingest did not finish".into()))?;
        let took = stored - t;
        let mut r = audit(
            &fleet,
            &format!("ingest, {} core(s) on one PostgreSQL", self.cores),
            &link,
            started,
        )
        .await?;
        r.note("ingest time", format!("{:.2} s", took.as_secs_f64()));
        r.note(
            "events/s",
            format!("{:.0}", r.sent as f64 / took.as_secs_f64().max(1e-3)),
        );
        let leases = fleet.leases().await?;
        note_leases(&mut r, &leases);
        let mut fleet = fleet;
        fleet.stop().await;
        Ok(r)
    }
}

/// Control across cores: a node command (ping) to a node on core 0 sent through core 0
/// (its own core) and through core 1 (the hop through PostgreSQL's LISTEN/NOTIFY and the
/// command table), round trip at the admin client; and revocations of nodes on core 0
/// through either core, timed from the request until core 0's registry no longer holds
/// the node. Clean links: this measures the cores, not the network.
#[derive(Debug, Clone)]
pub struct ClusterControl {
    pub agents: usize,
    /// Pings through each core, one after another.
    pub pings: usize,
    /// Nodes revoked through each core.
    pub revocations: usize,
    pub seed: u64,
}

impl Default for ClusterControl {
    fn default() -> Self {
        ClusterControl {
            agents: 40,
            pings: 200,
            revocations: 8,
            seed: 16,
        }
    }
}

fn pct(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len().max(1)) - 1;
    v.get(i).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

impl ClusterControl {
    pub async fn run(&self) -> Result<Report, HarnessError> {
        use honeybee_core::admin_client::AdminClient;
        use honeybee_proto::admin::{AdminRequest, AdminResponse};
        use honeybee_proto::control::Command;
        let started = Instant::now();
        let link = Impairment::clean();
        let mut opts = FleetOptions::new(self.agents, link.clone()).on_cores(2);
        opts.seed = self.seed;
        let mut fleet = Fleet::start(opts).await?;
        let on0 = fleet.on_core(0);
        if on0.len() < 1 + 2 * self.revocations {
            return Err(HarnessError::Options(format!(
                "{} agents on core 0; {} needed (one pinged, {} revoked through each core)",
                on0.len(),
                1 + 2 * self.revocations,
                self.revocations
            )));
        }
        let admin = |e: &dyn std::fmt::Display| HarnessError::Audit(format!("admin API: {e}"));
        let mut clients = Vec::new();
        for c in 0..2 {
            clients.push(
                AdminClient::connect(&fleet.core_dir_of(c))
                    .await
                    .map_err(|e| admin(&e))?,
            );
        }
        let pinged = fleet.members[on0[0]].node.clone();
        let mut rtt: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
        // Alternating, so both see the same machine load.
        for _ in 0..self.pings {
            for (c, client) in clients.iter().enumerate() {
                let t = Instant::now();
                let r = client
                    .request(&AdminRequest::SendCommand {
                        node: pinged.clone(),
                        command: Command::Ping,
                    })
                    .await
                    .map_err(|e| admin(&e))?;
                match r {
                    AdminResponse::CommandResult(Ok(s)) if s.contains("pong") => {
                        rtt[c].push(t.elapsed())
                    }
                    other => return Err(admin(&format!("ping through core {c}: {other:?}"))),
                }
            }
        }
        let holder = fleet
            .core_n(0)
            .ok_or(HarnessError::CoreDown)?
            .shared()
            .clone();
        let mut cut: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
        for k in 0..self.revocations {
            for (c, client) in clients.iter().enumerate() {
                let node = fleet.members[on0[1 + 2 * k + c]].node.clone();
                let t = Instant::now();
                let r = client
                    .request(&AdminRequest::RevokeNode { node: node.clone() })
                    .await
                    .map_err(|e| admin(&e))?;
                if !matches!(r, AdminResponse::Done) {
                    return Err(admin(&format!("revoke through core {c}: {r:?}")));
                }
                let deadline = t + Duration::from_secs(10);
                while holder.registry.is_online(&node) {
                    if Instant::now() >= deadline {
                        return Err(HarnessError::Timeout(format!(
                            "core 0 still held {node} 10 s after its revocation through core {c}"
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                cut[c].push(t.elapsed());
            }
        }
        for c in clients {
            c.close().await;
        }
        let mut r = Report {
            scenario: "2 cores: control of a node on core 0".into(),
            link: link.describe(),
            agents: self.agents,
            elapsed: started.elapsed(),
            ..Report::default()
        };
        let [mut own, mut other] = rtt;
        r.note(
            "ping through its own core p50/p99",
            format!("{} / {}", ms(pct(&mut own, 0.5)), ms(pct(&mut own, 0.99))),
        );
        r.note(
            "ping through the other core p50/p99",
            format!(
                "{} / {}",
                ms(pct(&mut other, 0.5)),
                ms(pct(&mut other, 0.99))
            ),
        );
        r.note("pings each", self.pings);
        let [mut own, mut other] = cut;
        r.note(
            "revocation cut through its own core p50/max",
            format!("{} / {}", ms(pct(&mut own, 0.5)), ms(pct(&mut own, 1.0))),
        );
        r.note(
            "revocation cut through the other core p50/max",
            format!(
                "{} / {}",
                ms(pct(&mut other, 0.5)),
                ms(pct(&mut other, 1.0))
            ),
        );
        r.note("revocations each", self.revocations);
        fleet.stop().await;
        Ok(r)
    }
}
