//! `--only fleet --agents N`: N simulated agents in this process (each its own UDP socket
//! and certificate, see `agent.rs` and `mint.rs`) against a core running as its own
//! process, whose memory and CPU are read from `/proc`. Scenarios, in order: the fleet
//! connecting; idle; a trickle of events; a config push to every node; a core restart
//! with the whole fleet reconnecting (storm); then the same core port taken over by a
//! bare quinn server with the same certificates, which the same agents reconnect to
//! (the baseline storm) and stay connected to (the baseline memory per connection).
//! `node command ping` round trips (the admin API's `SendCommand`) are sampled on the
//! idle fleet, under the trickle and after the storm.
//!
//! Every wait is bounded in time, every loop in count; everything is on 127.0.0.1.

pub mod agent;
pub mod mint;
pub mod server;

use crate::procstat::{Meter, anon_kib, rss_kib};
use agent::{Agent, FleetState, Orders};
use anyhow::{Context, Result, anyhow, bail};
use honeybee_core::admin_client::AdminClient;
use honeybee_proto::NodeId;
use honeybee_proto::admin::{AdminRequest, AdminResponse};
use honeybee_proto::control::Command;
use server::{CoreExe, ServerProc};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What to run.
#[derive(Debug, Clone)]
pub struct FleetOpts {
    pub agents: usize,
    /// How long the idle and trickle CPU windows last (at least one health interval to
    /// count health reports).
    pub window: Duration,
    /// Ping round trips sampled per scenario.
    pub rtt_samples: usize,
    /// Telemetry batches (one event each) per agent per second in the trickle scenario.
    pub trickle_per_s: f64,
    /// Longest wait for the fleet to connect, reconnect or take a config push.
    pub settle_limit: Duration,
    /// Run the core as `EXE --core-run DIR` (another build of this harness), so two
    /// builds of the core are measured by the same harness.
    pub core_exe: Option<std::path::PathBuf>,
    /// The agents reconnect on the schedule before `honeybee_proto::reconnect` (250 ms
    /// doubling to 30 s, each attempt the full handshake deadline, the server's "come
    /// back" ignored): the "before" of the storm, with the same binary and servers.
    pub legacy_backoff: bool,
    /// The new schedule's waits with QUIC's default initial RTT for every attempt.
    pub default_rtt: bool,
}

impl FleetOpts {
    pub fn new(agents: usize) -> FleetOpts {
        FleetOpts {
            agents: agents.max(1),
            window: Duration::from_secs(20),
            rtt_samples: 200,
            trickle_per_s: 1.0,
            settle_limit: Duration::from_secs(180),
            core_exe: None,
            legacy_backoff: false,
            default_rtt: false,
        }
    }
}

/// Round-trip percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rtt {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub samples: usize,
    pub failed: usize,
}

/// One storm: how many agents were back, and how long after the server was up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Storm {
    pub back: usize,
    /// From the restarted server's port being bound to the last agent welcomed.
    pub seconds: f64,
    /// Stopping the old server (SIGTERM to exit) and starting the new one (to bound).
    pub stop_seconds: f64,
    pub start_seconds: f64,
    /// Server CPU during the storm, seconds.
    pub cpu_seconds: f64,
    /// When half and nine tenths of the agents were back (seconds after the server was
    /// up; 0: before it was up, which a server's own restart cannot show).
    pub half_seconds: f64,
    pub p90_seconds: f64,
    /// Connection attempts during the storm that the closing server refused, and those
    /// whose handshake timed out (no server on the port, or one too busy).
    pub refused: u64,
    pub unanswered: u64,
    /// Connections made during the storm that got no welcome within the deadline.
    pub no_welcome: u64,
}

impl Storm {
    pub fn per_s(&self) -> f64 {
        self.back as f64 / self.seconds.max(1e-3)
    }
}

/// Everything one run measured.
#[derive(Debug, Clone, Default)]
pub struct FleetReport {
    pub agents: usize,
    pub core_exe: String,
    /// Which reconnection schedule the agents ran (`FleetOpts::legacy_backoff`).
    pub schedule: &'static str,
    pub mint_seconds: f64,
    pub connect_seconds: f64,
    pub core_rss_idle_kib: u64,
    pub core_anon_idle_kib: u64,
    pub core_rss_fleet_kib: u64,
    pub core_anon_fleet_kib: u64,
    pub idle_cpu_percent: f64,
    /// The bare quinn server's CPU with the same fleet idle on it (after its storm): what
    /// the connections alone cost (packets, keep-alives, reading health reports).
    pub bare_idle_cpu_percent: f64,
    pub idle_rtt: Rtt,
    pub trickle_cpu_percent: f64,
    /// The harness's own CPU over the trickle window: its agents share the machine with
    /// the core, so both together say whether the core or the machine is the limit.
    pub trickle_harness_cpu_percent: f64,
    pub trickle_offered_per_s: f64,
    pub trickle_acked_per_s: f64,
    pub trickle_rtt: Rtt,
    pub config_push_seconds: f64,
    pub config_pushed: usize,
    /// Until every `SetNodeConfig` was answered (the rest of the push is the live push
    /// reaching the agents).
    pub config_requests_seconds: f64,
    /// How long the trickle's backlog took to drain before the push, and how many sent
    /// events were never acknowledged (sent on connections that dropped: the harness's
    /// agents keep no spool).
    pub trickle_drain_seconds: f64,
    pub trickle_unacked: u64,
    pub storm: Storm,
    pub storm_rtt: Rtt,
    pub bare_storm: Storm,
    pub bare_rss_idle_kib: u64,
    pub bare_anon_idle_kib: u64,
    pub bare_rss_fleet_kib: u64,
    pub bare_anon_fleet_kib: u64,
    pub connect_failures: u64,
    pub window_s: f64,
}

fn per_agent(fleet: u64, idle: u64, n: usize) -> f64 {
    fleet.saturating_sub(idle) as f64 / n.max(1) as f64
}

impl FleetReport {
    pub fn core_rss_per_agent_kib(&self) -> f64 {
        per_agent(self.core_rss_fleet_kib, self.core_rss_idle_kib, self.agents)
    }
    pub fn core_private_per_agent_kib(&self) -> f64 {
        per_agent(
            self.core_anon_fleet_kib,
            self.core_anon_idle_kib,
            self.agents,
        )
    }
    pub fn bare_rss_per_conn_kib(&self) -> f64 {
        per_agent(self.bare_rss_fleet_kib, self.bare_rss_idle_kib, self.agents)
    }
    pub fn bare_private_per_conn_kib(&self) -> f64 {
        per_agent(
            self.bare_anon_fleet_kib,
            self.bare_anon_idle_kib,
            self.agents,
        )
    }

    /// One flat JSON object: the figures issue 16 names first, then the rest.
    pub fn json(&self) -> String {
        let num = |v: f64| {
            if v.is_finite() {
                format!("{v:.3}")
            } else {
                "null".into()
            }
        };
        let fields: Vec<(&str, String)> = vec![
            ("core_rss_per_agent_kib", num(self.core_rss_per_agent_kib())),
            (
                "core_private_per_agent_kib",
                num(self.core_private_per_agent_kib()),
            ),
            ("idle_cpu_percent", num(self.idle_cpu_percent)),
            ("bare_idle_cpu_percent", num(self.bare_idle_cpu_percent)),
            ("storm_agents", self.storm.back.to_string()),
            ("storm_seconds", num(self.storm.seconds)),
            ("handshakes_per_s", num(self.storm.per_s())),
            ("bare_handshakes_per_s", num(self.bare_storm.per_s())),
            ("rtt_p50_ms", num(self.idle_rtt.p50)),
            ("rtt_p99_ms", num(self.idle_rtt.p99)),
            ("agents", self.agents.to_string()),
            ("bare_storm_agents", self.bare_storm.back.to_string()),
            ("bare_storm_seconds", num(self.bare_storm.seconds)),
            ("bare_rss_per_conn_kib", num(self.bare_rss_per_conn_kib())),
            (
                "bare_private_per_conn_kib",
                num(self.bare_private_per_conn_kib()),
            ),
            ("core_rss_idle_kib", self.core_rss_idle_kib.to_string()),
            ("core_rss_fleet_kib", self.core_rss_fleet_kib.to_string()),
            ("connect_seconds", num(self.connect_seconds)),
            ("trickle_cpu_percent", num(self.trickle_cpu_percent)),
            ("trickle_offered_per_s", num(self.trickle_offered_per_s)),
            ("trickle_acked_per_s", num(self.trickle_acked_per_s)),
            ("trickle_rtt_p50_ms", num(self.trickle_rtt.p50)),
            ("trickle_rtt_p99_ms", num(self.trickle_rtt.p99)),
            ("storm_rtt_p50_ms", num(self.storm_rtt.p50)),
            ("storm_rtt_p99_ms", num(self.storm_rtt.p99)),
            ("storm_cpu_seconds", num(self.storm.cpu_seconds)),
            ("storm_half_seconds", num(self.storm.half_seconds)),
            ("storm_p90_seconds", num(self.storm.p90_seconds)),
            ("bare_storm_half_seconds", num(self.bare_storm.half_seconds)),
            ("bare_storm_p90_seconds", num(self.bare_storm.p90_seconds)),
            ("core_restart_seconds", num(self.storm.start_seconds)),
            ("config_push_seconds", num(self.config_push_seconds)),
            ("config_pushed", self.config_pushed.to_string()),
            ("config_requests_seconds", num(self.config_requests_seconds)),
            ("trickle_drain_seconds", num(self.trickle_drain_seconds)),
            (
                "trickle_harness_cpu_percent",
                num(self.trickle_harness_cpu_percent),
            ),
            ("trickle_unacked", self.trickle_unacked.to_string()),
            ("connect_failures", self.connect_failures.to_string()),
        ];
        let mut out = String::from("{\n");
        for (i, (k, v)) in fields.iter().enumerate() {
            let comma = if i + 1 < fields.len() { "," } else { "" };
            let _ = writeln!(out, "  \"{k}\": {v}{comma}");
        }
        out + "}\n"
    }

    pub fn markdown(&self) -> String {
        let n = self.agents;
        let rtt = |r: &Rtt| {
            format!(
                "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples{})",
                r.p50,
                r.p99,
                r.max,
                r.samples,
                if r.failed > 0 {
                    format!(", {} failed", r.failed)
                } else {
                    String::new()
                }
            )
        };
        let mut md = format!("### Fleet: {n} agents against one core process\n\n");
        md += "| Measurement | HoneyBee core | bare quinn (same certificates, same agents) |\n|---|---|---|\n";
        let _ = writeln!(
            md,
            "| RSS per connected agent | {:.1} KiB | {:.1} KiB |",
            self.core_rss_per_agent_kib(),
            self.bare_rss_per_conn_kib()
        );
        let _ = writeln!(
            md,
            "| private (anonymous) memory per agent | {:.1} KiB | {:.1} KiB |",
            self.core_private_per_agent_kib(),
            self.bare_private_per_conn_kib()
        );
        let _ = writeln!(
            md,
            "| reconnect storm after a server restart: agents back | {}/{n} in {:.2} s | {}/{n} in {:.2} s |",
            self.storm.back, self.storm.seconds, self.bare_storm.back, self.bare_storm.seconds
        );
        let _ = writeln!(
            md,
            "| storm handshakes/s (to welcome) | {:.0} | {:.0} ({:.2}×) |",
            self.storm.per_s(),
            self.bare_storm.per_s(),
            self.storm.per_s() / self.bare_storm.per_s().max(1e-9)
        );
        let _ = writeln!(
            md,
            "| server CPU during the storm | {:.2} s | {:.2} s |",
            self.storm.cpu_seconds, self.bare_storm.cpu_seconds
        );
        let _ = writeln!(
            md,
            "| restart: stop / start to bound | {:.2} s / {:.2} s | {:.2} s / {:.2} s |",
            self.storm.stop_seconds,
            self.storm.start_seconds,
            self.bare_storm.stop_seconds,
            self.bare_storm.start_seconds
        );
        md += "\n| Scenario | core CPU (% of one core) | command round trip (`node command ping`) |\n|---|---|---|\n";
        let _ = writeln!(
            md,
            "| idle fleet | {:.2} % (bare quinn: {:.2} %) | {} |",
            self.idle_cpu_percent,
            self.bare_idle_cpu_percent,
            rtt(&self.idle_rtt)
        );
        let _ = writeln!(
            md,
            "| trickle: {:.0} events/s offered, {:.0} acked/s | {:.2} % | {} |",
            self.trickle_offered_per_s,
            self.trickle_acked_per_s,
            self.trickle_cpu_percent,
            rtt(&self.trickle_rtt)
        );
        let _ = writeln!(
            md,
            "| right after the storm | — | {} |",
            rtt(&self.storm_rtt)
        );
        let _ = writeln!(
            md,
            "\nConfig push to all {n} nodes (`SetNodeConfig` each, 16 in flight on one admin connection, after the trickle's backlog drained in {:.2} s): {}/{n} agents had it after {:.2} s, every request answered after {:.2} s. Fleet connect from cold: {:.2} s. Identities minted in {:.1} s. Core RSS {} KiB before the fleet, {} KiB with it (private {} → {} KiB). Agent connection attempts that failed (all scenarios): {}. CPU windows {:.0} s. Core: {}. Agents' reconnection: {}.",
            self.trickle_drain_seconds,
            self.config_pushed,
            self.config_push_seconds,
            self.config_requests_seconds,
            self.connect_seconds,
            self.mint_seconds,
            self.core_rss_idle_kib,
            self.core_rss_fleet_kib,
            self.core_anon_idle_kib,
            self.core_anon_fleet_kib,
            self.connect_failures,
            self.window_s,
            self.core_exe,
            self.schedule
        );
        md
    }
}

/// Raises the soft open-files limit for `n` agent sockets (and the hard one, if allowed).
pub fn raise_nofile(n: usize) -> Result<u64> {
    let want = (n + 1024) as libc::rlim_t;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            bail!("getrlimit: {}", std::io::Error::last_os_error());
        }
        if lim.rlim_cur < want {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: lim.rlim_max.max(want),
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                let soft = libc::rlimit {
                    rlim_cur: lim.rlim_max.min(want),
                    rlim_max: lim.rlim_max,
                };
                libc::setrlimit(libc::RLIMIT_NOFILE, &soft);
            }
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    if (lim.rlim_cur as usize) < n + 64 {
        bail!(
            "open-files limit {} is too low for {n} agent sockets; raise it (ulimit -n {} as root, or LimitNOFILE)",
            lim.rlim_cur,
            n + 1024
        );
    }
    Ok(lim.rlim_cur)
}

fn progress(what: &str) {
    eprintln!("[fleet] {what}");
}

fn node(i: usize) -> NodeId {
    NodeId::new(format!("sim{i:05}")).expect("valid node id")
}

/// Sequential pings to pseudo-random nodes over one admin connection. An overloaded
/// machine can lose the admin connection itself (its keep-alives starve): it is
/// reconnected, at most 3 times; what fails is counted, not fatal.
async fn sample_rtt(core_dir: &Path, n: usize, samples: usize) -> Rtt {
    let mut ms = Vec::with_capacity(samples);
    let mut failed = 0;
    let mut reconnects = 0;
    let mut client = admin(core_dir).await.ok();
    // However slow the answers, sampling ends within a minute.
    let deadline = Instant::now() + Duration::from_secs(60);
    for k in 0..samples {
        if Instant::now() > deadline {
            failed += samples - k;
            break;
        }
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            if reconnects == 3 {
                failed += samples - k;
                break;
            }
            reconnects += 1;
            client = admin(core_dir).await.ok();
        }
        let Some(admin) = &client else {
            failed += 1;
            continue;
        };
        // A fixed stride visits nodes spread over the fleet, reproducibly.
        let i = (k * 7919) % n;
        let t = Instant::now();
        let r = tokio::time::timeout(
            Duration::from_secs(15),
            admin.request(&AdminRequest::SendCommand {
                node: node(i),
                command: Command::Ping,
            }),
        )
        .await;
        match r {
            Ok(Ok(AdminResponse::CommandResult(Ok(_)))) => {
                ms.push(t.elapsed().as_secs_f64() * 1000.0)
            }
            _ => failed += 1,
        }
    }
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if ms.is_empty() {
            f64::NAN
        } else {
            ms[((ms.len() - 1) as f64 * p).round() as usize]
        }
    };
    Rtt {
        p50: pct(0.5),
        p99: pct(0.99),
        max: pct(1.0),
        samples: ms.len(),
        failed,
    }
}

/// Waits until `done` or `limit`; true if done.
async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

async fn admin(core_dir: &Path) -> Result<AdminClient> {
    AdminClient::connect(core_dir)
        .await
        .map_err(|e| anyhow!("admin connect: {e}"))
}

/// `f` until it succeeds, at most `attempts` times, `pause` apart; the last error if
/// none did.
async fn retry<T, F, Fut>(attempts: u32, pause: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut last = anyhow!("no attempt made");
    for k in 0..attempts {
        if k > 0 {
            tokio::time::sleep(pause).await;
        }
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The admin connection for the config push, opened before the trickle: under a
/// saturating trickle agents reconnect, and the core can sit at its `max_connections`
/// with their lingering connections, refusing a new one (a 10,000-agent run stopped
/// there). Reopened if it did not survive, for up to 30 s.
async fn push_client(opened: Option<AdminClient>, core_dir: &Path) -> Result<AdminClient> {
    match opened {
        Some(c) if !c.is_closed() => Ok(c),
        _ => retry(30, Duration::from_secs(1), || admin(core_dir)).await,
    }
}

/// Restarts a server and measures the storm: every agent welcomed again after `since`.
async fn restart_storm<F, Fut>(
    state: &FleetState,
    old: ServerProc,
    start: F,
    limit: Duration,
) -> Result<(Storm, ServerProc)>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<ServerProc>>,
{
    let since = state.now_ms() + 1;
    let (refused, unanswered, no_welcome) = (
        state.refused.load(Ordering::Relaxed),
        state.unanswered.load(Ordering::Relaxed),
        state.no_welcome.load(Ordering::Relaxed),
    );
    let stop_seconds = old.stop().await.as_secs_f64();
    let t = Instant::now();
    let new = start().await?;
    let start_seconds = t.elapsed().as_secs_f64();
    let up_ms = state.now_ms();
    let meter = Meter::start(new.pid())?;
    let n = state.welcomed_at_ms.len();
    wait_until(limit, || state.welcomed_since(since) == n).await;
    let back = state.welcomed_since(since);
    let last = state.last_welcome_ms();
    let mut times: Vec<u64> = state
        .welcomed_at_ms
        .iter()
        .map(|t| t.load(Ordering::Relaxed))
        .filter(|t| *t >= since)
        .map(|t| t.saturating_sub(up_ms))
        .collect();
    times.sort_unstable();
    let at = |q: usize| {
        times
            .get(times.len() * q / 10)
            .map_or(f64::NAN, |t| *t as f64 / 1000.0)
    };
    Ok((
        Storm {
            back,
            seconds: last.saturating_sub(up_ms) as f64 / 1000.0,
            stop_seconds,
            start_seconds,
            cpu_seconds: meter.cpu().map(|d| d.as_secs_f64()).unwrap_or(f64::NAN),
            half_seconds: at(5),
            p90_seconds: at(9),
            refused: state.refused.load(Ordering::Relaxed) - refused,
            unanswered: state.unanswered.load(Ordering::Relaxed) - unanswered,
            no_welcome: state.no_welcome.load(Ordering::Relaxed) - no_welcome,
        },
        new,
    ))
}

pub async fn run(opts: &FleetOpts) -> Result<FleetReport> {
    let n = opts.agents;
    raise_nofile(n)?;
    let dir = tempfile::Builder::new()
        .prefix("honeybee-fleet-")
        .tempdir()?;
    let core_dir = dir.path().join("core");
    let port = std::net::UdpSocket::bind((crate::fixture::LOOPBACK, 0))?
        .local_addr()?
        .port();
    let addr = SocketAddr::from((crate::fixture::LOOPBACK, port));
    let log = dir.path().join("server.log");
    let mut r = FleetReport {
        agents: n,
        window_s: opts.window.as_secs_f64(),
        ..Default::default()
    };

    mint::init_core(&core_dir, addr, n)?;
    let t = Instant::now();
    let quic = mint::mint(&core_dir, n).await.context("mint identities")?;
    r.mint_seconds = t.elapsed().as_secs_f64();
    progress(&format!("{n} identities minted in {:.1} s", r.mint_seconds));

    // The baseline's idle memory, from its own start on another port (same binary, same
    // configuration) before the fleet exists.
    {
        let bare =
            ServerProc::bare(&core_dir, (crate::fixture::LOOPBACK, 0).into(), log.clone()).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        r.bare_rss_idle_kib = rss_kib(bare.pid())?;
        r.bare_anon_idle_kib = anon_kib(bare.pid())?;
        bare.stop().await;
    }

    let exe = CoreExe::find(opts.core_exe.as_deref())?;
    r.core_exe = exe.describe();
    r.schedule = if opts.legacy_backoff {
        "legacy (250 ms doubling to 30 s, full handshake deadline, no come-back)"
    } else if opts.default_rtt {
        "honeybee_proto::reconnect's waits, QUIC's default initial RTT"
    } else {
        "honeybee_proto::reconnect (quick probes after a loss, the server's come-back)"
    };
    let core = ServerProc::core(&exe, &core_dir, log.clone()).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    r.core_rss_idle_kib = rss_kib(core.pid())?;
    r.core_anon_idle_kib = anon_kib(core.pid())?;
    if let Some(lim) = crate::procstat::open_files_limit(core.pid())
        && lim < (n + 64) as u64
    {
        progress(&format!("core's open-files limit is {lim}"));
    }

    let state = Arc::new(FleetState::new(n));
    let (orders_tx, orders_rx) = watch::channel(Orders {
        events_per_s: 0.0,
        stop: false,
    });
    // Every agent task ends by itself after this long, whatever happens here.
    let lifetime = opts.settle_limit * 4 + opts.window * 4 + Duration::from_secs(600);
    let mut agents = tokio::task::JoinSet::new();
    let t = Instant::now();
    for (index, quic) in quic.into_iter().enumerate() {
        let a = Agent {
            index,
            quic,
            addr,
            legacy_backoff: opts.legacy_backoff,
            default_rtt: opts.default_rtt,
        };
        agents.spawn(agent::run(a, state.clone(), orders_rx.clone(), lifetime));
    }
    let all = wait_until(opts.settle_limit, || state.welcomed_since(1) == n).await;
    r.connect_seconds = t.elapsed().as_secs_f64();
    if !all {
        bail!(
            "only {}/{n} agents connected within {:?}; server log {}",
            state.welcomed_since(1),
            opts.settle_limit,
            log.display()
        );
    }
    progress(&format!(
        "{n} agents connected in {:.1} s",
        r.connect_seconds
    ));

    let result = scenarios(
        opts, &mut r, &state, &orders_tx, core, &core_dir, addr, &log,
    )
    .await;
    let _ = orders_tx.send(Orders {
        events_per_s: 0.0,
        stop: true,
    });
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while agents.join_next().await.is_some() {}
    })
    .await;
    agents.abort_all();
    r.connect_failures = state.connect_failures.load(Ordering::Relaxed);
    result.map(|()| r)
}

#[allow(clippy::too_many_arguments)]
async fn scenarios(
    opts: &FleetOpts,
    r: &mut FleetReport,
    state: &Arc<FleetState>,
    orders: &watch::Sender<Orders>,
    core: ServerProc,
    core_dir: &Path,
    addr: SocketAddr,
    log: &Path,
) -> Result<()> {
    let n = opts.agents;
    // Idle: every agent has sent its first health report at connect; the window holds at
    // least one more from each.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let meter = Meter::start(core.pid())?;
    tokio::time::sleep(opts.window).await;
    r.idle_cpu_percent = meter.cpu()?.as_secs_f64() / opts.window.as_secs_f64() * 100.0;
    r.core_rss_fleet_kib = rss_kib(core.pid())?;
    r.core_anon_fleet_kib = anon_kib(core.pid())?;
    progress(&format!(
        "idle: core {:.2} % CPU, {:.1} KiB RSS / {:.1} KiB private per agent",
        r.idle_cpu_percent,
        r.core_rss_per_agent_kib(),
        r.core_private_per_agent_kib()
    ));
    r.idle_rtt = sample_rtt(core_dir, n, opts.rtt_samples).await;
    progress(&format!(
        "idle ping: p50 {:.2} ms, p99 {:.2} ms",
        r.idle_rtt.p50, r.idle_rtt.p99
    ));

    // Trickle.
    let pusher = admin(core_dir).await.ok();
    orders.send_replace(Orders {
        events_per_s: opts.trickle_per_s,
        stop: false,
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (sent0, acked0) = (
        state.events_sent.load(Ordering::Relaxed),
        state.events_acked.load(Ordering::Relaxed),
    );
    let meter = Meter::start(core.pid())?;
    let harness = Meter::start(std::process::id())?;
    let t = Instant::now();
    tokio::time::sleep(opts.window).await;
    let secs = t.elapsed().as_secs_f64();
    r.trickle_cpu_percent = meter.cpu()?.as_secs_f64() / secs * 100.0;
    r.trickle_harness_cpu_percent = harness.cpu()?.as_secs_f64() / secs * 100.0;
    r.trickle_offered_per_s = (state.events_sent.load(Ordering::Relaxed) - sent0) as f64 / secs;
    r.trickle_acked_per_s = (state.events_acked.load(Ordering::Relaxed) - acked0) as f64 / secs;
    r.trickle_rtt = sample_rtt(core_dir, n, opts.rtt_samples).await;
    orders.send_replace(Orders {
        events_per_s: 0.0,
        stop: false,
    });
    progress(&format!(
        "trickle: {:.0} events/s offered, {:.0} acked/s, core {:.2} % CPU (harness {:.2} %), ping p50 {:.2} ms p99 {:.2} ms",
        r.trickle_offered_per_s,
        r.trickle_acked_per_s,
        r.trickle_cpu_percent,
        r.trickle_harness_cpu_percent,
        r.trickle_rtt.p50,
        r.trickle_rtt.p99
    ));
    // Let the backlog drain before the next scenario, or the push measures the trickle:
    // until every event is acknowledged or none was for 2 s (events sent on connections
    // that dropped are never acknowledged, so "all" may never come).
    let t = Instant::now();
    let (mut last, mut since) = (u64::MAX, Instant::now());
    while t.elapsed() < opts.settle_limit {
        let (sent, acked) = (
            state.events_sent.load(Ordering::Relaxed),
            state.events_acked.load(Ordering::Relaxed),
        );
        if acked >= sent || since.elapsed() >= Duration::from_secs(2) {
            break;
        }
        if acked != last {
            (last, since) = (acked, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    r.trickle_drain_seconds = t.elapsed().as_secs_f64();
    r.trickle_unacked = state
        .events_sent
        .load(Ordering::Relaxed)
        .saturating_sub(state.events_acked.load(Ordering::Relaxed));
    progress(&format!(
        "trickle drained in {:.2} s, {} sent events never acknowledged",
        r.trickle_drain_seconds, r.trickle_unacked
    ));

    // Config push to every node.
    let client = push_client(pusher, core_dir).await?;
    let config = match client
        .request(&AdminRequest::GetNodeConfig { node: node(0) })
        .await
        .map_err(|e| anyhow!("get config: {e}"))?
    {
        AdminResponse::NodeConfig(c) => c,
        other => bail!("unexpected answer to GetNodeConfig: {other:?}"),
    };
    let client = Arc::new(client);
    let configs0 = state.configs.load(Ordering::Relaxed);
    let t = Instant::now();
    let permits = Arc::new(tokio::sync::Semaphore::new(16));
    let mut pushes = tokio::task::JoinSet::new();
    for i in 0..n {
        let (client, config, permits) = (client.clone(), config.clone(), permits.clone());
        pushes.spawn(async move {
            let _p = permits.acquire_owned().await;
            client
                .request(&AdminRequest::SetNodeConfig {
                    node: node(i),
                    config,
                })
                .await
        });
    }
    let mut refused = 0;
    while let Some(j) = pushes.join_next().await {
        if !matches!(j, Ok(Ok(_))) {
            refused += 1;
        }
    }
    r.config_requests_seconds = t.elapsed().as_secs_f64();
    wait_until(opts.settle_limit, || {
        state.configs.load(Ordering::Relaxed) - configs0 >= n as u64
    })
    .await;
    r.config_push_seconds = t.elapsed().as_secs_f64();
    r.config_pushed = (state.configs.load(Ordering::Relaxed) - configs0) as usize;
    progress(&format!(
        "config push: {}/{n} agents in {:.2} s ({refused} requests refused, all answered after {:.2} s)",
        r.config_pushed, r.config_push_seconds, r.config_requests_seconds
    ));
    if let Ok(c) = Arc::try_unwrap(client) {
        c.close().await;
    }

    // Core restart: the storm.
    let exe = CoreExe::find(opts.core_exe.as_deref())?;
    let (storm, core) = restart_storm(
        state,
        core,
        || ServerProc::core(&exe, core_dir, log.to_path_buf()),
        opts.settle_limit,
    )
    .await?;
    r.storm = storm;
    progress(&format!(
        "storm: {}/{n} back in {:.2} s after the core was up (half {:.2} s, 90 % {:.2} s; {:.0}/s; stop {:.2} s, start {:.2} s; {} attempts refused, {} timed out, {} without a welcome)",
        storm.back,
        storm.seconds,
        storm.half_seconds,
        storm.p90_seconds,
        storm.per_s(),
        storm.stop_seconds,
        storm.start_seconds,
        storm.refused,
        storm.unanswered,
        storm.no_welcome
    ));
    r.storm_rtt = sample_rtt(core_dir, n, opts.rtt_samples).await;

    // The bare quinn baseline takes over the port: the same agents reconnect to it.
    let (bare_storm, bare) = restart_storm(
        state,
        core,
        || ServerProc::bare(core_dir, addr, log.to_path_buf()),
        opts.settle_limit,
    )
    .await?;
    r.bare_storm = bare_storm;
    progress(&format!(
        "bare quinn storm: {}/{n} back in {:.2} s (half {:.2} s, 90 % {:.2} s; {:.0}/s; {} attempts refused, {} timed out, {} without a welcome)",
        bare_storm.back,
        bare_storm.seconds,
        bare_storm.half_seconds,
        bare_storm.p90_seconds,
        bare_storm.per_s(),
        bare_storm.refused,
        bare_storm.unanswered,
        bare_storm.no_welcome
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    r.bare_rss_fleet_kib = rss_kib(bare.pid())?;
    r.bare_anon_fleet_kib = anon_kib(bare.pid())?;
    let meter = Meter::start(bare.pid())?;
    tokio::time::sleep(opts.window).await;
    r.bare_idle_cpu_percent = meter.cpu()?.as_secs_f64() / opts.window.as_secs_f64() * 100.0;
    progress(&format!(
        "bare quinn idle: {:.2} % CPU",
        r.bare_idle_cpu_percent
    ));
    bare.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn retry_stops_at_the_first_success_and_after_its_attempts() {
        let calls = std::cell::Cell::new(0u32);
        let r: Result<u32> = retry(5, Duration::ZERO, || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n == 3 {
                    Ok(n)
                } else {
                    Err(anyhow!("no {n}"))
                }
            }
        })
        .await;
        assert_eq!((r.expect("third succeeds"), calls.get()), (3, 3));
        calls.set(0);
        let r: Result<u32> = retry(4, Duration::ZERO, || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move { Err(anyhow!("no {n}")) }
        })
        .await;
        assert_eq!(r.expect_err("all fail").to_string(), "no 4");
        assert_eq!(calls.get(), 4, "bounded");
    }

    #[test]
    fn the_fleet_core_leaves_room_beyond_the_fleet() {
        // At least the production default; beyond it, an eighth of the fleet to spare.
        assert_eq!(mint::max_connections(50), 10_000);
        assert_eq!(mint::max_connections(10_000), 11_506);
        assert_eq!(mint::max_connections(50_000), 56_506);
    }
}
