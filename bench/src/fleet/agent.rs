//! One simulated agent: its own UDP socket (a quinn client endpoint), its own certificate,
//! and the node protocol as `honeybee_agent::runtime` speaks it — hello, welcome, a health
//! report at once and every health interval, telemetry batches at the fleet's trickle
//! rate, an answer to every command, and config pushes taken (counted) — reconnecting
//! on the agent's own schedule (`honeybee_proto::reconnect`) and connect attempts
//! (`honeybee_agent::transport::connect_attempt`).
//!
//! No spool, no services: what the core sees is what a real agent sends, and the harness
//! stays light enough to run thousands of agents beside the core on one machine.

use anyhow::{Result, anyhow, bail};
use honeybee_agent::transport::{come_back, connect_attempt, read_frame, write_frame};
use honeybee_proto::codec::{self, FrameLimit};
use honeybee_proto::config::NodeConfig;
use honeybee_proto::control::{AgentMsg, CoreMsg, Health, Hello, NodeMode, ServiceStatus};
use honeybee_proto::event::EventBatch;
use honeybee_proto::reconnect::{Attempt, ComeBack, Reconnect};
use honeybee_proto::stream::StreamKind;
use honeybee_proto::timing::Timing;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What the harness tells every agent, live.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Orders {
    /// Telemetry batches (of one event) per second; 0: idle.
    pub events_per_s: f64,
    /// Close the connection and stop.
    pub stop: bool,
}

/// Counters every agent adds to, and each agent's latest welcome time (milliseconds
/// since `epoch`, 0: never), which is how the harness sees a storm end.
pub struct FleetState {
    pub epoch: Instant,
    pub welcomed_at_ms: Vec<AtomicU64>,
    pub welcomes: AtomicU64,
    pub connect_failures: AtomicU64,
    /// Of those: refused by a server that is closing, and handshakes that timed out.
    pub refused: AtomicU64,
    pub unanswered: AtomicU64,
    /// Connections made whose welcome did not come within the handshake deadline.
    pub no_welcome: AtomicU64,
    pub configs: AtomicU64,
    pub commands: AtomicU64,
    pub events_sent: AtomicU64,
    pub events_acked: AtomicU64,
    pub healths: AtomicU64,
}

impl FleetState {
    pub fn new(agents: usize) -> FleetState {
        FleetState {
            epoch: Instant::now(),
            welcomed_at_ms: (0..agents).map(|_| AtomicU64::new(0)).collect(),
            welcomes: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            unanswered: AtomicU64::new(0),
            no_welcome: AtomicU64::new(0),
            configs: AtomicU64::new(0),
            commands: AtomicU64::new(0),
            events_sent: AtomicU64::new(0),
            events_acked: AtomicU64::new(0),
            healths: AtomicU64::new(0),
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Agents welcomed at or after `since_ms` (all of them: the storm is over).
    pub fn welcomed_since(&self, since_ms: u64) -> usize {
        self.welcomed_at_ms
            .iter()
            .filter(|t| t.load(Ordering::Relaxed) >= since_ms.max(1))
            .count()
    }

    /// The latest welcome time of all agents (ms since epoch).
    pub fn last_welcome_ms(&self) -> u64 {
        self.welcomed_at_ms
            .iter()
            .map(|t| t.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }
}

/// One agent's fixed parts.
pub struct Agent {
    pub index: usize,
    pub quic: quinn::ClientConfig,
    pub addr: SocketAddr,
    /// Reconnect as agents did before `honeybee_proto::reconnect` ([`Legacy`]).
    pub legacy_backoff: bool,
    /// The schedule's waits, but every attempt on QUIC's default initial RTT (333 ms):
    /// what the short RTT estimate of quick attempts does, measured apart.
    pub default_rtt: bool,
}

/// The agents' schedule before `honeybee_proto::reconnect`, kept for the storm's "before"
/// (`--fleet-legacy-backoff`): 250 ms doubling to 30 s, plus up to half again, reset on a
/// welcome, every attempt waiting out the full handshake deadline.
struct Legacy {
    backoff: Duration,
}

impl Legacy {
    fn next(&mut self, timing: &Timing) -> Attempt {
        let jitter = rand::random::<u64>() % (self.backoff.as_millis() as u64 / 2 + 1);
        let wait = self.backoff + Duration::from_millis(jitter);
        self.backoff = (self.backoff * 2).min(timing.reconnect_max);
        Attempt { wait, quick: false }
    }
}

/// The agent's health report, built from the configuration the core sent: every enabled
/// service listening, nothing dropped (a healthy node; a degraded one would make the core
/// write an alert per node, which is not what an idle fleet costs).
fn health(started: Instant, config: &NodeConfig) -> Health {
    Health {
        uptime_s: started.elapsed().as_secs(),
        cpu_percent: 0.5,
        rss_bytes: 24 << 20,
        services: config
            .services
            .iter()
            .filter(|s| s.enabled)
            .map(|s| ServiceStatus {
                name: s.name.clone(),
                kind: s.kind.name().into(),
                listen: s.listen.to_string(),
                running: true,
                error: None,
                active_sessions: 0,
            })
            .collect(),
        spool_depth: 0,
        spool_dropped: 0,
        cert_not_after_ms: 0,
    }
}

/// Runs the agent until its orders say stop (or `limit` passes): connects, serves,
/// reconnects on the agent's schedule (`honeybee_proto::reconnect`: quick probes after a
/// lost connection, at the time the server's close says; exponential backoff otherwise).
pub async fn run(
    agent: Agent,
    state: Arc<FleetState>,
    mut orders: watch::Receiver<Orders>,
    limit: Duration,
) -> Result<()> {
    let timing = Timing::default();
    let deadline = tokio::time::Instant::now() + limit;
    let ep = quinn::Endpoint::client((crate::fixture::LOOPBACK, 0).into())?;
    let started = Instant::now();
    let clock = tokio::time::Instant::now();
    let mut schedule = Reconnect::new(&timing);
    let mut legacy = Legacy {
        backoff: timing.reconnect_min,
    };
    let mut quick = false;
    let mut next_seq = 1u64;
    while !orders.borrow().stop && tokio::time::Instant::now() < deadline {
        let short_rtt = quick && !agent.default_rtt;
        match serve(
            &agent,
            &ep,
            &state,
            &mut orders,
            started,
            &mut next_seq,
            short_rtt,
        )
        .await
        {
            Ok(Served::Welcomed(hint)) => {
                schedule.on_welcomed();
                schedule.on_lost(clock.elapsed(), hint);
                legacy.backoff = timing.reconnect_min;
            }
            Ok(Served::Stopped) => {}
            Err(e) => {
                // As the real agent: a failed attempt ends the quick probes.
                schedule.on_failed();
                state.connect_failures.fetch_add(1, Ordering::Relaxed);
                let e = e.to_string();
                if e.contains("refused") {
                    state.refused.fetch_add(1, Ordering::Relaxed);
                } else if e.contains("no welcome") {
                    state.no_welcome.fetch_add(1, Ordering::Relaxed);
                } else if e.contains("timed out") {
                    state.unanswered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if orders.borrow().stop {
            break;
        }
        let next = if agent.legacy_backoff {
            legacy.next(&timing)
        } else {
            schedule.next(clock.elapsed(), rand::random())
        };
        quick = next.quick;
        tokio::select! {
            _ = tokio::time::sleep(next.wait) => {}
            _ = orders.wait_for(|o| o.stop) => break,
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    ep.close(0u32.into(), b"bye");
    let _ = tokio::time::timeout(Duration::from_secs(2), ep.wait_idle()).await;
    Ok(())
}

/// How a connection ended.
enum Served {
    /// Welcomed, then lost, with the server's "come back" if its close carried one.
    Welcomed(Option<ComeBack>),
    /// Told to stop before a welcome.
    Stopped,
}

/// One connection; `Err` when the connection or the hello failed.
async fn serve(
    agent: &Agent,
    ep: &quinn::Endpoint,
    state: &FleetState,
    orders: &mut watch::Receiver<Orders>,
    started: Instant,
    next_seq: &mut u64,
    quick: bool,
) -> Result<Served> {
    let timing = Timing::default();
    let connecting = connect_attempt(ep, agent.quic.clone(), agent.addr, quick, &timing);
    let conn = tokio::select! {
        c = connecting => c.map_err(|e| anyhow!(e))?,
        _ = orders.wait_for(|o| o.stop) => return Ok(Served::Stopped),
    };
    let (mut send, mut recv) = conn.open_bi().await?;
    let hello = AgentMsg::Hello(Hello {
        wire_version: honeybee_proto::WIRE_VERSION,
        agent_version: "fleet-sim".into(),
        mode: NodeMode::Full,
        hostname: format!("sim{:05}", agent.index),
    });
    write_frame(&mut send, &hello, FrameLimit::CONTROL).await?;
    let welcome = tokio::time::timeout(
        timing.handshake_deadline,
        read_frame::<CoreMsg, _>(&mut recv, FrameLimit::CONTROL),
    )
    .await
    .map_err(|_| anyhow!("no welcome"))??;
    let CoreMsg::Welcome {
        config, last_seq, ..
    } = welcome
    else {
        bail!("expected a welcome");
    };
    let mut config = config;
    *next_seq = (*next_seq).max(last_seq + 1);
    state.welcomed_at_ms[agent.index].store(state.now_ms().max(1), Ordering::Relaxed);
    state.welcomes.fetch_add(1, Ordering::Relaxed);

    // Telemetry runs beside the control loop (as the agent's `send_telemetry` does), so
    // a core that holds its streams back never delays a command's answer.
    let telemetry = telemetry(agent, conn.clone(), state, orders.clone(), next_seq);
    tokio::pin!(telemetry);
    let mut health_tick = tokio::time::interval(timing.health_interval);
    loop {
        tokio::select! {
            msg = read_frame::<CoreMsg, _>(&mut recv, FrameLimit::CONTROL) => {
                let Ok(msg) = msg else { break };
                match msg {
                    CoreMsg::Ack { first, last } => {
                        state.events_acked.fetch_add(last.saturating_sub(first) + 1, Ordering::Relaxed);
                    }
                    CoreMsg::Config(c) => {
                        config = c;
                        state.configs.fetch_add(1, Ordering::Relaxed);
                    }
                    CoreMsg::Command { id, .. } => {
                        state.commands.fetch_add(1, Ordering::Relaxed);
                        let answer = AgentMsg::CommandResult { id, result: Ok("pong".into()) };
                        if write_frame(&mut send, &answer, FrameLimit::CONTROL).await.is_err() {
                            break;
                        }
                    }
                    _ => {}
                }
            }
            _ = health_tick.tick() => {
                let h = AgentMsg::Health(health(started, &config));
                if write_frame(&mut send, &h, FrameLimit::CONTROL).await.is_err() {
                    break;
                }
                state.healths.fetch_add(1, Ordering::Relaxed);
            }
            _ = &mut telemetry => break,
            changed = orders.changed() => {
                if changed.is_err() || orders.borrow().stop {
                    conn.close(0u32.into(), b"bye");
                    return Ok(Served::Welcomed(None));
                }
            }
            _ = conn.closed() => break,
        }
    }
    // Read before our own close, which would otherwise be the reason on record.
    let hint = come_back(&conn);
    conn.close(0u32.into(), b"bye");
    Ok(Served::Welcomed(hint))
}

/// Sends one-event batches at the ordered rate until the connection fails.
async fn telemetry(
    agent: &Agent,
    conn: quinn::Connection,
    state: &FleetState,
    mut orders: watch::Receiver<Orders>,
    next_seq: &mut u64,
) -> Result<()> {
    let mut rate = orders.borrow().events_per_s;
    let mut tick = trickle_interval(rate);
    loop {
        tokio::select! {
            _ = tick.tick(), if rate > 0.0 => {
                let frame = codec::encode(&batch(agent.index, *next_seq), FrameLimit::TELEMETRY)?;
                *next_seq += 1;
                let mut s = conn.open_uni().await?;
                s.write_all(&[StreamKind::Telemetry as u8]).await?;
                s.write_all(&frame).await?;
                s.finish()?;
                state.events_sent.fetch_add(1, Ordering::Relaxed);
            }
            changed = orders.changed() => {
                changed?;
                let r = orders.borrow().events_per_s;
                if r != rate {
                    rate = r;
                    tick = trickle_interval(rate);
                }
            }
        }
    }
}

/// One event as the ingest figure makes them (an SSH login attempt), from a source
/// address of this agent's own: a trickle from sources shared across the fleet would be
/// a fleet-wide scan to the core's correlator, which is not what an idle-ish fleet sees.
fn batch(agent: usize, seq: u64) -> EventBatch {
    let mut b = crate::ingest::batch(agent, seq, 1);
    for e in &mut b.events {
        let a = agent as u32;
        let ip = [100, 64 | ((a >> 16) & 63) as u8, (a >> 8) as u8, a as u8];
        e.src = Some(SocketAddr::from((ip, 40_000 + (seq % 20_000) as u16)));
    }
    b
}

/// The trickle's ticker, started at a random phase so a fleet's batches spread over the
/// second instead of arriving together.
fn trickle_interval(events_per_s: f64) -> tokio::time::Interval {
    let period = if events_per_s > 0.0 {
        Duration::from_secs_f64(1.0 / events_per_s)
    } else {
        Duration::from_secs(3600)
    };
    let phase = Duration::from_secs_f64(period.as_secs_f64() * rand::random::<f64>());
    let mut i = tokio::time::interval_at(tokio::time::Instant::now() + phase, period);
    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    i
}
