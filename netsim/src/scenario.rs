//! The scenarios of issue 7, each a spec with the sizes as its defaults, a
//! `clean()` twin (the same traffic and disruption on an unimpaired link) for the
//! benchmark's baselines, and `run()` returning a [`Report`]. Tests run them and assert
//! exactly-once delivery; the `netsim-bench` binary runs them and prints figures.

use crate::harness::{Fleet, FleetOptions, HarnessError};
use crate::model::{Impairment, Loss, Partition, Probability};
use crate::report::Report;
use crate::rng::Rng;
use honeybee_agent::captures::NewCapture;
use honeybee_proto::capture::CaptureKind;
use honeybee_proto::timing::Timing;
use std::time::Duration;
use tokio::time::Instant;

/// How long any scenario waits for the store to catch up before it reports losses.
pub(crate) const DELIVERY_DEADLINE: Duration = Duration::from_secs(240);

fn p(v: f64) -> Probability {
    Probability::new(v).expect("a constant probability")
}

/// A WAN-like link: one-way delay ± jitter, independent loss, reordering.
pub fn wan(delay_ms: u64, jitter_ms: u64, loss: f64, reorder: f64) -> Impairment {
    Impairment {
        delay: Duration::from_millis(delay_ms),
        jitter: Duration::from_millis(jitter_ms),
        loss: if loss > 0.0 {
            Loss::Random(p(loss))
        } else {
            Loss::None
        },
        reorder: p(reorder),
        ..Impairment::default()
    }
}

pub(crate) fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Builds the report common part from a fleet's audit.
pub(crate) async fn audit(
    fleet: &Fleet,
    scenario: &str,
    link: &Impairment,
    started: Instant,
) -> Result<Report, HarnessError> {
    let d = fleet.delivery().await?;
    Ok(Report {
        scenario: scenario.into(),
        link: link.describe(),
        agents: fleet.members.len(),
        sent: d.sent,
        stored: d.stored,
        lost: d.lost,
        duplicated: d.duplicated,
        latencies_ms: d.latencies_ms,
        recovery: None,
        reconnections: fleet.reconnections(),
        elapsed: started.elapsed(),
        notes: vec![],
    })
}

/// 200 agents over 5% loss, 50 ms ± 20 ms delay and 1% reordering, each way.
#[derive(Debug, Clone)]
pub struct Lossy {
    pub agents: usize,
    pub events_per_agent: u64,
    pub over: Duration,
    pub link: Impairment,
    pub seed: u64,
}

impl Default for Lossy {
    fn default() -> Self {
        Lossy {
            agents: 200,
            events_per_agent: 100,
            over: Duration::from_secs(10),
            link: wan(50, 20, 0.05, 0.01),
            seed: 1,
        }
    }
}

impl Lossy {
    pub fn clean(self) -> Self {
        Lossy {
            link: Impairment::clean(),
            ..self
        }
    }

    pub async fn run(&self) -> Result<Report, HarnessError> {
        let started = Instant::now();
        let mut opts = FleetOptions::new(self.agents, self.link.clone());
        opts.seed = self.seed;
        let mut fleet = Fleet::start(opts).await?;
        fleet.drive(self.events_per_agent, self.over).finish().await;
        fleet.wait_stored(DELIVERY_DEADLINE).await?;
        let mut r = audit(&fleet, "lossy link", &self.link, started).await?;
        r.note("datagrams dropped by the links", fleet.link_drops());
        fleet.stop().await;
        Ok(r)
    }
}

/// A partition of a share of the agents: they spool while cut off, the link heals,
/// everything arrives once. Emission runs until the heal; recovery is heal → all stored.
#[derive(Debug, Clone)]
pub struct PartitionSpec {
    pub agents: usize,
    /// Agents `0..agents * share` are cut off.
    pub share: f64,
    pub mode: Partition,
    pub before: Duration,
    pub duration: Duration,
    /// Events per agent per second, from the start until the heal.
    pub rate: u64,
    pub link: Impairment,
    /// False for the clean baseline: nothing is cut.
    pub cut: bool,
    pub seed: u64,
    /// The session timers of the core and the agents: a partition longer than
    /// `timing.idle_timeout` really ends the cut agents' connections.
    pub timing: Timing,
}

impl Default for PartitionSpec {
    fn default() -> Self {
        PartitionSpec {
            agents: 200,
            share: 0.5,
            mode: Partition::Drop,
            before: Duration::from_secs(5),
            duration: Duration::from_secs(30),
            rate: 2,
            link: wan(20, 5, 0.01, 0.0),
            cut: true,
            seed: 2,
            timing: Timing::default(),
        }
    }
}

impl PartitionSpec {
    pub fn clean(self) -> Self {
        PartitionSpec {
            link: Impairment::clean(),
            cut: false,
            ..self
        }
    }

    pub async fn run(&self) -> Result<Report, HarnessError> {
        let started = Instant::now();
        let mut opts = FleetOptions::new(self.agents, self.link.clone());
        opts.seed = self.seed;
        opts.timing = self.timing;
        let mut fleet = Fleet::start(opts).await?;
        let total = self.before + self.duration;
        let per_agent = self.rate * total.as_secs().max(1);
        let drive = fleet.drive(per_agent, total);
        let cut = ((self.agents as f64 * self.share).round() as usize).min(self.agents);
        tokio::time::sleep(self.before).await;
        if self.cut {
            fleet.partition(0..cut, Some(self.mode)).await?;
        }
        tokio::time::sleep(self.duration).await;
        if self.cut {
            fleet.partition(0..cut, None).await?;
        }
        let healed = Instant::now();
        drive.finish().await;
        let stored = fleet.wait_stored(DELIVERY_DEADLINE).await?;
        let name = if self.cut {
            format!(
                "{} partition ({:?}) of {} agents",
                secs(self.duration),
                self.mode,
                cut
            )
        } else {
            "partition scenario, nothing cut".into()
        };
        let mut r = audit(&fleet, &name, &self.link, started).await?;
        r.recovery = stored.filter(|_| self.cut).map(|t| t - healed);
        fleet.stop().await;
        Ok(r)
    }
}

/// The core killed mid-stream and started again: nothing lost, nothing duplicated.
#[derive(Debug, Clone)]
pub struct CoreKill {
    pub agents: usize,
    pub events_per_agent: u64,
    pub over: Duration,
    pub kill_at: Duration,
    pub down_for: Duration,
    pub link: Impairment,
    pub seed: u64,
}

impl Default for CoreKill {
    fn default() -> Self {
        CoreKill {
            agents: 100,
            events_per_agent: 200,
            over: Duration::from_secs(10),
            kill_at: Duration::from_secs(4),
            down_for: Duration::from_secs(2),
            link: wan(50, 20, 0.02, 0.01),
            seed: 3,
        }
    }
}

impl CoreKill {
    pub fn clean(self) -> Self {
        CoreKill {
            link: Impairment::clean(),
            ..self
        }
    }

    pub async fn run(&self) -> Result<Report, HarnessError> {
        let started = Instant::now();
        let mut opts = FleetOptions::new(self.agents, self.link.clone());
        opts.seed = self.seed;
        let mut fleet = Fleet::start(opts).await?;
        let drive = fleet.drive(self.events_per_agent, self.over);
        tokio::time::sleep(self.kill_at).await;
        let killed = Instant::now();
        let stored_before = fleet.core()?.shared().store.count_events(None).await?;
        fleet.kill_core().await?;
        tokio::time::sleep(self.down_for.saturating_sub(killed.elapsed())).await;
        fleet.start_core().await?;
        let back = Instant::now();
        drive.finish().await;
        let stored = fleet.wait_stored(DELIVERY_DEADLINE).await?;
        let mut r = audit(&fleet, "core killed and restarted", &self.link, started).await?;
        r.recovery = stored.map(|t| t - back);
        r.note("core down", secs(back - killed));
        r.note("stored before the kill", stored_before);
        fleet.stop().await;
        Ok(r)
    }
}

/// NAT rebinding every few seconds: the connection survives by migration (no new
/// handshake), nothing is lost.
#[derive(Debug, Clone)]
pub struct Rebinding {
    pub agents: usize,
    pub every: Duration,
    pub events_per_agent: u64,
    pub over: Duration,
    pub link: Impairment,
    /// False for the clean baseline.
    pub rebind: bool,
    pub seed: u64,
}

impl Default for Rebinding {
    fn default() -> Self {
        Rebinding {
            agents: 50,
            every: Duration::from_secs(3),
            events_per_agent: 200,
            over: Duration::from_secs(20),
            link: wan(20, 5, 0.01, 0.0),
            rebind: true,
            seed: 4,
        }
    }
}

impl Rebinding {
    pub fn clean(self) -> Self {
        Rebinding {
            link: Impairment::clean(),
            rebind: false,
            ..self
        }
    }

    pub async fn run(&self) -> Result<Report, HarnessError> {
        let started = Instant::now();
        let mut opts = FleetOptions::new(self.agents, self.link.clone());
        opts.seed = self.seed;
        opts.rebind_every = self.rebind.then_some(self.every);
        let mut fleet = Fleet::start(opts).await?;
        fleet.drive(self.events_per_agent, self.over).finish().await;
        fleet.wait_stored(DELIVERY_DEADLINE).await?;
        let name = if self.rebind {
            format!("NAT rebinding every {} s", self.every.as_secs())
        } else {
            "NAT scenario, no rebinding".into()
        };
        let mut r = audit(&fleet, &name, &self.link, started).await?;
        r.note("rebinds", fleet.rebinds());
        fleet.stop().await;
        Ok(r)
    }
}

/// A capture upload cut halfway (the link drops everything for longer than the idle
/// timeout): it completes after reconnection and is stored once with the right hash.
#[derive(Debug, Clone)]
pub struct CaptureCut {
    pub size: usize,
    pub link: Impairment,
    /// How long the link drops everything once half the capture has passed; past the
    /// idle timeout (`timing.idle_timeout`), so the connection (and the upload) really dies.
    pub cut_for: Option<Duration>,
    pub seed: u64,
    /// The session timers of the core and the agent.
    pub timing: Timing,
}

impl Default for CaptureCut {
    fn default() -> Self {
        CaptureCut {
            size: 4 << 20,
            link: Impairment {
                rate_bps: Some(8_000_000),
                ..wan(20, 0, 0.0, 0.0)
            },
            cut_for: Some(Duration::from_secs(35)),
            seed: 5,
            timing: Timing::default(),
        }
    }
}

impl CaptureCut {
    pub fn clean(self) -> Self {
        CaptureCut {
            link: Impairment::clean(),
            cut_for: None,
            ..self
        }
    }

    pub async fn run(&self) -> Result<Report, HarnessError> {
        let started = Instant::now();
        let mut opts = FleetOptions::new(1, self.link.clone());
        opts.seed = self.seed;
        opts.timing = self.timing;
        let mut fleet = Fleet::start(opts).await?;
        let mut content = vec![0u8; self.size];
        let mut rng = Rng::new(self.seed);
        for chunk in content.chunks_mut(8) {
            let v = rng.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        let m = &fleet.members[0];
        let agent = m.agent.as_ref().ok_or(HarnessError::CoreDown)?;
        let base = m.proxy.stats().up.delivered_bytes;
        let queued = honeybee_core::now_ms();
        let queued_at = Instant::now();
        let header = agent
            .capture(NewCapture {
                kind: CaptureKind::Upload,
                service: crate::harness::SERVICE.into(),
                session: None,
                time_ms: queued,
                meta: vec![("netsim".into(), "capture-cut".into())],
                content: content.clone(),
            })
            .map_err(|e| HarnessError::Audit(e.to_string()))?;
        let mut cut_at = None;
        let mut healed = None;
        if let Some(cut_for) = self.cut_for {
            let half = (self.size / 2) as u64;
            let ok = fleet
                .wait_until(Duration::from_secs(120), |f| {
                    f.members[0].proxy.stats().up.delivered_bytes - base >= half
                })
                .await;
            if !ok {
                return Err(HarnessError::Timeout(
                    "half the capture never passed".into(),
                ));
            }
            cut_at = Some(m.proxy.stats().up.delivered_bytes - base);
            fleet.partition(0..1, Some(Partition::Drop)).await?;
            tokio::time::sleep(cut_for).await;
            fleet.partition(0..1, None).await?;
            healed = Some(Instant::now());
        }
        let store = fleet.core()?.shared().store.clone();
        let deadline = Instant::now() + DELIVERY_DEADLINE;
        let stored_at = loop {
            if store.get_capture(header.sha256).await?.is_some()
                && fleet.members[0]
                    .agent
                    .as_ref()
                    .is_some_and(|a| a.captures().pending().is_empty())
            {
                break Some(Instant::now());
            }
            if Instant::now() >= deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let sightings = store.capture_sightings(header.sha256).await?.len() as u64;
        let path = fleet.core()?.shared().captures.path_of(&header.sha256);
        let on_disk = std::fs::read(&path).unwrap_or_default();
        let hash_ok = ring::digest::digest(&ring::digest::SHA256, &on_disk).as_ref()
            == header.sha256.as_slice()
            && on_disk == content;
        let name = if self.cut_for.is_some() {
            "capture upload cut halfway"
        } else {
            "capture upload, not cut"
        };
        let latency = stored_at.map(|t| (t - queued_at).as_millis() as i64);
        let mut r = Report {
            scenario: name.into(),
            link: self.link.describe(),
            agents: 1,
            sent: 1,
            stored: sightings,
            lost: u64::from(!(stored_at.is_some() && hash_ok && sightings >= 1)),
            duplicated: sightings.saturating_sub(1),
            latencies_ms: latency.into_iter().collect(),
            recovery: match (stored_at, healed) {
                (Some(s), Some(h)) => Some(s - h),
                _ => None,
            },
            reconnections: fleet.reconnections(),
            elapsed: started.elapsed(),
            notes: vec![],
        };
        r.note("capture bytes", self.size);
        if let Some(c) = cut_at {
            r.note("cut after bytes", c);
        }
        r.note("sha256 verified", hash_ok);
        fleet.stop().await;
        Ok(r)
    }
}

/// 2,000 agents reconnecting at once after a core restart: all back, handshake rate and
/// time to full recovery recorded; optionally beside a bare quinn endpoint with the same
/// TLS configuration taking the same number of handshakes at once.
#[derive(Debug, Clone)]
pub struct Storm {
    pub agents: usize,
    pub events_before: u64,
    pub events_after: u64,
    pub link: Impairment,
    pub bare_quinn_baseline: bool,
    pub seed: u64,
}

impl Default for Storm {
    fn default() -> Self {
        Storm {
            agents: 2000,
            events_before: 5,
            events_after: 5,
            link: Impairment::clean(),
            bare_quinn_baseline: false,
            seed: 6,
        }
    }
}

impl Storm {
    pub async fn run(&self) -> Result<Report, HarnessError> {
        let started = Instant::now();
        let mut opts = FleetOptions::new(self.agents, self.link.clone());
        opts.seed = self.seed;
        opts.enrol_parallelism = 16;
        let mut fleet = Fleet::start(opts).await?;
        let fleet_up = started.elapsed();
        fleet
            .drive(self.events_before, Duration::from_secs(2))
            .finish()
            .await;
        fleet.wait_stored(DELIVERY_DEADLINE).await?;

        let baseline = fleet.connections();
        let stopping = Instant::now();
        fleet.stop_core().await;
        let stopped = Instant::now();
        let port_taken = fleet.start_core().await?;
        let up = Instant::now();
        let at = fleet
            .wait_reconnected(&baseline, up, Duration::from_secs(600))
            .await;
        let back: Vec<Duration> = at.iter().flatten().copied().collect();
        let all_back = back.len() == self.agents;
        let last = back.iter().max().copied().unwrap_or_default();
        let first = back.iter().min().copied().unwrap_or_default();

        fleet
            .drive(self.events_after, Duration::from_secs(2))
            .finish()
            .await;
        fleet.wait_stored(DELIVERY_DEADLINE).await?;
        let mut r = audit(
            &fleet,
            &format!("{} agents reconnecting after a core restart", self.agents),
            &self.link,
            started,
        )
        .await?;
        r.recovery = all_back.then_some(last);
        r.note("agents back", format!("{}/{}", back.len(), self.agents));
        r.note("core shutdown", secs(stopped - stopping));
        r.note("core start", secs(up - stopped));
        r.note("port still taken after shutdown", secs(port_taken));
        r.note("first back", secs(first));
        r.note(
            "handshakes/s",
            format!("{:.0}", back.len() as f64 / last.as_secs_f64().max(1e-3)),
        );
        r.note("fleet start", secs(fleet_up));
        fleet.stop().await;
        if self.bare_quinn_baseline {
            let b = bare_quinn_storm(&fleet).await?;
            r.note(
                "bare quinn, all at once",
                format!("{}/{} in {:.1} s", b.at_once.0, b.attempted, b.at_once.1),
            );
            r.note(
                "bare quinn handshakes/s (64 in flight)",
                format!(
                    "{:.0} ({}/{} completed)",
                    b.bounded.0 as f64 / b.bounded.1.max(1e-6),
                    b.bounded.0,
                    b.attempted
                ),
            );
        }
        fleet.close().await;
        Ok(r)
    }
}

/// A bare quinn server endpoint with the core's TLS and transport configuration taking
/// one mTLS connection from every enrolled agent of `fleet` (each from its own client
/// endpoint, as agents do): all at once, then at most 64 in flight.
pub async fn bare_quinn_storm(fleet: &Fleet) -> Result<BareStorm, HarnessError> {
    use honeybee_pki::keys::KeyPair;
    use honeybee_pki::revocation::RevocationList;
    use honeybee_proto::{Role, alpn};
    let err = |e: &dyn std::fmt::Display| HarnessError::Audit(format!("bare quinn: {e}"));
    let pki = fleet.core_dir().join("pki");
    let read = |f: &str| std::fs::read_to_string(pki.join(f));
    let first = |pem: &str| -> Result<rustls::pki_types::CertificateDer<'static>, HarnessError> {
        honeybee_pki::files::pem_to_der_certs(pem)
            .map_err(|e| err(&e))?
            .into_iter()
            .next()
            .ok_or_else(|| err(&"no certificate"))
    };
    let ca = first(&read("ca.crt")?)?;
    let cert = first(&read("core.crt")?)?;
    let key = KeyPair::from_pem(&read("core.key")?).map_err(|e| err(&e))?;
    let tls = honeybee_pki::tls::server_config(
        ca.as_ref(),
        vec![cert, ca.clone()],
        key.private_key_der(),
        RevocationList::new(),
        &[alpn::NODE],
    )
    .map_err(|e| err(&e))?;
    let server_cfg = honeybee_core::endpoint::server_config(tls, 64).map_err(|e| err(&e))?;
    let server = quinn::Endpoint::server(server_cfg, (std::net::Ipv4Addr::LOCALHOST, 0).into())?;
    let addr = server.local_addr()?;
    let acceptor = tokio::spawn({
        let server = server.clone();
        async move {
            let mut conns = Vec::new();
            while let Some(inc) = server.accept().await {
                conns.push(tokio::spawn(async move { inc.await.ok() }));
            }
            conns
        }
    });
    let mut clients = Vec::new();
    for dir in fleet.agent_dirs() {
        let paths = honeybee_agent::config::AgentPaths::new(&dir);
        let (ca_der, cert_der, key) =
            honeybee_agent::enroll::load_identity(&paths).map_err(|e| err(&e))?;
        let tls = honeybee_pki::tls::client_config(
            &ca_der,
            vec![cert_der.into()],
            key.private_key_der(),
            Role::Core,
            alpn::NODE,
        )
        .map_err(|e| err(&e))?;
        let cfg = honeybee_agent::transport::client_config(tls).map_err(|e| err(&e))?;
        let ep = honeybee_agent::transport::endpoint_for(addr)?;
        clients.push((ep, cfg));
    }
    // Everyone at once, as after a restart: how many finish, and how fast.
    let at_once = handshakes(&clients, addr, clients.len()).await;
    // At most 64 in flight: the endpoint's handshake capacity without a thundering herd.
    let bounded = handshakes(&clients, addr, 64).await;
    for (ep, _) in &clients {
        ep.close(0u32.into(), b"done");
    }
    server.close(0u32.into(), b"done");
    acceptor.abort();
    Ok(BareStorm {
        attempted: clients.len(),
        at_once,
        bounded,
    })
}

/// What a bare quinn endpoint did with a storm of handshakes.
#[derive(Debug, Clone, Copy)]
pub struct BareStorm {
    pub attempted: usize,
    /// (completed, seconds until the last completed or failed) with everyone at once.
    pub at_once: (usize, f64),
    /// The same with at most 64 in flight.
    pub bounded: (usize, f64),
}

/// Connects every client once, `parallel` at a time; returns (completed, seconds).
async fn handshakes(
    clients: &[(quinn::Endpoint, quinn::ClientConfig)],
    addr: std::net::SocketAddr,
    parallel: usize,
) -> (usize, f64) {
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let t = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for (ep, cfg) in clients.iter().cloned() {
        let permits = permits.clone();
        set.spawn(async move {
            let _p = permits.acquire_owned().await;
            let c = ep
                .connect_with(cfg, addr, "honeybee-core")
                .ok()?
                .await
                .ok()?;
            c.close(0u32.into(), b"done");
            Some(())
        });
    }
    let mut ok = 0;
    while let Some(r) = set.join_next().await {
        if let Ok(Some(())) = r {
            ok += 1;
        }
    }
    (ok, t.elapsed().as_secs_f64())
}
