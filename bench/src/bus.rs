//! Module bus fan-out: deliveries per second of 200-byte events to 1, 10 and 100
//! subscribers — HoneyBee's event bus through the TCP shim, beside NATS (`nats-server`,
//! `async-nats` client) and Mosquitto (`mosquitto`, `rumqttc` client, MQTT QoS 0), with the
//! same payload and subscriber counts, in the same run.
//!
//! HoneyBee's publisher is in-process: it calls `shared.bus.publish` directly (the core's
//! fan-out path, what NATS's publish-to-subscribers path corresponds to). Each subscriber is
//! its own shim connection with its own module credential, read by a raw-TCP Rust client
//! that parses the u32 length headers and checks each body's `{"type":"event"` prefix (no
//! JSON decoding). The peers' servers are started here as child processes on ephemeral
//! loopback ports and killed by PID when the figure is done.
//!
//! Every measurement is bounded: a fixed number of messages, a time cap, and an end as soon
//! as every subscriber has everything (or nothing arrived for `QUIET` after publishing).

use crate::fixture::{AgentId, Deployment, LOOPBACK};
use crate::ingest::{IngestSizes, drive};
use crate::stats::{Comparison, Figure, median};
use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use futures_util::StreamExt;
use honeybee_core::bus::BusEvent;
use honeybee_core::server::Shared;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// Bytes of every message body: the HoneyBee event's JSON document, and the NATS / MQTT
/// payload (the same bytes).
pub const PAYLOAD: usize = 200;
/// Paced mode: the publisher never gets more than this many messages ahead of the slowest
/// subscriber's count. The same rule on every side; it equals HoneyBee's per-module queue,
/// so in this mode HoneyBee's bus cannot drop.
pub const WINDOW: u64 = honeybee_core::modules::session::QUEUE_CAPACITY as u64;
/// Messages per publish call (HoneyBee: one `bus.publish` slice, like one stored batch).
const BATCH: u64 = 256;
/// After the publisher is done, a measurement ends when nothing arrived for this long
/// (HoneyBee tells a module what it missed at most once a second; generous, because on a
/// shared machine a broker process can be descheduled for a second or more).
const QUIET: Duration = Duration::from_secs(5);
const NATS_SUBJECT: &str = "bench.bus";
const MQTT_TOPIC: &str = "bench/bus";
/// async-nats buffers this many messages per subscription before it drops (slow consumer).
const NATS_SUB_CAPACITY: usize = 1 << 16;
/// Mosquitto's per-client queue, raised from its default of 1000 so QoS 0 messages to a
/// connected but busy subscriber are not dropped by design.
const MOSQUITTO_MAX_QUEUED: u64 = 1_000_000;

#[derive(Debug, Clone)]
pub struct BusSizes {
    pub subscribers: Vec<usize>,
    /// Deliveries per measurement: each publishes `deliveries / subscribers` messages.
    pub deliveries: u64,
    /// Time cap per measurement.
    pub limit: Duration,
    /// Also measure unpaced publishing (the publisher goes as fast as it can; loss counted).
    pub flat_out: bool,
    /// Events per measurement through the full ingest path (synthetic agent over QUIC →
    /// store → bus → shim) are `min(deliveries / subscribers, ingest_events)`; 0 skips it.
    pub ingest_events: u64,
}

impl BusSizes {
    pub fn messages(&self, subs: usize) -> u64 {
        (self.deliveries / subs as u64).max(1)
    }
}

/// Which broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    HoneyBee,
    Nats,
    Mosquitto,
    /// HoneyBee fed through the full ingest path instead of `bus.publish`.
    HoneyBeeIngest,
}

/// One subscriber's progress, written by its reader, read by the publisher and the clock.
#[derive(Debug, Default)]
struct Counter {
    received: AtomicU64,
    /// HoneyBee only: events the core said this module missed.
    missed: AtomicU64,
    /// HoneyBee only: the core disconnected the module for lagging (`MAX_LAG` misses in a
    /// row), as designed.
    lagged_out: std::sync::atomic::AtomicBool,
    /// Microseconds since the group's base when the last message (not a `missed` notice)
    /// arrived.
    last_us: AtomicU64,
}

/// The subscribers of one measurement.
#[derive(Debug)]
struct Group {
    base: Instant,
    subs: Vec<Arc<Counter>>,
    progress: Notify,
    /// Messages the publisher has handed to its client (or to the bus).
    sent: AtomicU64,
}

impl Group {
    fn new(n: usize) -> Arc<Group> {
        Arc::new(Group {
            base: Instant::now(),
            subs: (0..n).map(|_| Arc::default()).collect(),
            progress: Notify::new(),
            sent: AtomicU64::new(0),
        })
    }

    fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }

    /// Messages the slowest subscriber has accounted for (received or told it missed).
    fn slowest(&self) -> u64 {
        self.subs
            .iter()
            .map(|c| c.received.load(Ordering::Relaxed) + c.missed.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }

    fn received(&self) -> u64 {
        self.subs
            .iter()
            .map(|c| c.received.load(Ordering::Relaxed))
            .sum()
    }

    fn missed(&self) -> u64 {
        self.subs
            .iter()
            .map(|c| c.missed.load(Ordering::Relaxed))
            .sum()
    }

    fn last_us(&self) -> u64 {
        self.subs
            .iter()
            .map(|c| c.last_us.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0)
    }

    /// A reader's report: totals so far and the time of the last arrival.
    fn report(&self, c: &Counter, received: u64, missed: u64) {
        if c.received.swap(received, Ordering::Relaxed) != received {
            c.last_us.store(self.now_us(), Ordering::Relaxed);
        }
        c.missed.store(missed, Ordering::Relaxed);
        self.progress.notify_one();
    }

    /// Paced mode: waits until publishing `BATCH` more keeps the publisher within `window`
    /// of the slowest subscriber. Unpaced: returns at once.
    async fn pace(&self, published: u64, window: Option<u64>) {
        self.sent.store(published, Ordering::Relaxed);
        let Some(w) = window else { return };
        loop {
            let notified = self.progress.notified();
            if published + BATCH <= self.slowest() + w {
                return;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(Duration::from_millis(1)) => {}
            }
        }
    }
}

/// What one measurement saw.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub expected: u64,
    pub delivered: u64,
    /// HoneyBee: events its `missed` notices reported.
    pub missed: u64,
    /// From the publisher's first message to the last delivery.
    pub elapsed: Duration,
    /// Bytes of each message body on the wire (HoneyBee: the event frame's JSON body).
    pub body_bytes: usize,
    /// Subscribers that got (or were told they missed) every message.
    pub complete: usize,
    pub subscribers: usize,
    /// HoneyBee: subscribers the core disconnected for lagging.
    pub lagged_out: usize,
}

impl Outcome {
    pub fn per_s(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn loss(&self) -> f64 {
        1.0 - self.delivered as f64 / self.expected.max(1) as f64
    }
}

/// Runs the publisher against ready subscribers until every subscriber has `per_sub`
/// messages, or nothing arrives for `QUIET` after the publisher finished, or `limit`.
async fn clock(
    group: Arc<Group>,
    mut readers: JoinSet<Result<()>>,
    publisher: impl std::future::Future<Output = Result<()>> + Send + 'static,
    per_sub: u64,
    limit: Duration,
    body_bytes: usize,
) -> Result<Outcome> {
    let t0 = group.now_us();
    let started = Instant::now();
    let mut publisher = tokio::spawn(publisher);
    let mut published = false;
    let mut last = (0u64, Instant::now());
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let result = loop {
        tokio::select! {
            r = readers.join_next() => match r {
                None => break Ok(()),
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => break Err(e.context("subscriber")),
                Some(Err(e)) => break Err(anyhow!("subscriber task: {e}")),
            },
            p = &mut publisher, if !published => {
                published = true;
                match p {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => break Err(e.context("publisher")),
                    Err(e) => break Err(anyhow!("publisher task: {e}")),
                }
            },
            _ = tick.tick() => {
                let total = group.received() + group.missed();
                if total != last.0 {
                    last = (total, Instant::now());
                } else if published && last.1.elapsed() >= QUIET {
                    break Ok(());
                }
                if started.elapsed() >= limit {
                    crate::progress(&format!(
                        "bus: time cap of {limit:?} hit; publisher {} ({} sent), {} of {} delivered",
                        if published { "done" } else { "still publishing" },
                        group.sent.load(Ordering::Relaxed),
                        group.received(),
                        per_sub * group.subs.len() as u64
                    ));
                    break Ok(());
                }
            }
        }
    };
    readers.abort_all();
    publisher.abort();
    result?;
    let end = group.last_us().max(t0 + 1);
    Ok(Outcome {
        expected: per_sub * group.subs.len() as u64,
        delivered: group.received(),
        missed: group.missed(),
        elapsed: Duration::from_micros(end - t0),
        body_bytes,
        complete: group
            .subs
            .iter()
            .filter(|c| {
                c.received.load(Ordering::Relaxed) + c.missed.load(Ordering::Relaxed) >= per_sub
            })
            .count(),
        subscribers: group.subs.len(),
        lagged_out: group
            .subs
            .iter()
            .filter(|c| c.lagged_out.load(Ordering::Relaxed))
            .count(),
    })
}

// ---------------------------------------------------------------- HoneyBee

/// A 200-byte ECS-shaped event document (the padding field makes up the length).
pub fn event_json(seq: u64) -> String {
    let head = format!(
        "{{\"@timestamp\":\"2026-11-26T11:34:16.151Z\",\"event\":{{\"action\":\"auth_attempt\",\"sequence\":{seq}}},\"observer\":{{\"name\":\"bench-1\"}},\"source\":{{\"ip\":\"203.0.113.7\",\"port\":52444}},\"pad\":\""
    );
    let pad = PAYLOAD.saturating_sub(head.len() + 2);
    let s = format!("{head}{}\"}}", "x".repeat(pad));
    debug_assert_eq!(s.len(), PAYLOAD);
    s
}

fn bus_events(n: u64) -> Vec<Arc<BusEvent>> {
    (1..=n)
        .map(|seq| {
            Arc::new(BusEvent {
                node: honeybee_proto::NodeId::new("bench-1").expect("node id"),
                seq,
                kind: "auth_attempt",
                service: "ssh".into(),
                src_ip: Some("203.0.113.7".parse().expect("ip")),
                labels: Arc::new(vec![]),
                json: event_json(seq).into(),
            })
        })
        .collect()
}

/// A core with its shim on an ephemeral loopback port, a module credential per
/// subscriber, and (for the ingest row) one enrolled agent.
pub struct HoneyBeeBus {
    pub dep: Deployment,
    shim: SocketAddr,
    creds: Vec<(String, String)>,
    agents: Vec<AgentId>,
}

impl HoneyBeeBus {
    pub async fn start(max_subs: usize, agents: usize) -> Result<HoneyBeeBus> {
        let mut dep = Deployment::start_with_shim().await?;
        let shared = dep.core()?.shared().clone();
        let shim = shared.shim_addr.context("the shim is not listening")?;
        let mut creds = Vec::with_capacity(max_subs);
        for i in 0..max_subs {
            let name = format!("bench-sub-{i:03}");
            let cred = honeybee_core::modules::session::create_credential(
                &shared,
                &name,
                &["events:read".to_string()],
                "bench",
            )
            .await
            .map_err(|e| anyhow!("module credential: {e}"))?;
            creds.push((name, cred));
        }
        let agents = if agents > 0 {
            dep.enrol_agents(agents).await?
        } else {
            vec![]
        };
        Ok(HoneyBeeBus {
            dep,
            shim,
            creds,
            agents,
        })
    }

    fn shared(&self) -> Result<Arc<Shared>> {
        Ok(self.dep.core()?.shared().clone())
    }

    /// Connects `n` shim subscribers (hello, welcome, subscribe `{}`, result) and starts
    /// their readers.
    async fn subscribe(&self, n: usize, per_sub: u64) -> Result<(Arc<Group>, JoinSet<Result<()>>)> {
        if n > self.creds.len() {
            bail!("{n} subscribers but {} credentials", self.creds.len());
        }
        let shared = self.shared()?;
        // The previous measurement's connections are gone from the bus before this starts.
        let t = Instant::now();
        while shared.bus.subscription_count() > 0 {
            if t.elapsed() > Duration::from_secs(10) {
                bail!("old subscriptions still on the bus after 10 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let group = Group::new(n);
        let mut readers = JoinSet::new();
        for (k, (name, cred)) in self.creds.iter().take(n).enumerate() {
            let stream = shim_connect(self.shim, name, cred)
                .await
                .with_context(|| format!("shim subscriber {name}"))?;
            let (group, c) = (group.clone(), group.subs[k].clone());
            readers.spawn(shim_read(stream, group, c, per_sub));
        }
        if shared.bus.subscription_count() != n {
            bail!(
                "{} subscriptions on the bus, expected {n}",
                shared.bus.subscription_count()
            );
        }
        Ok((group, readers))
    }

    /// Publishes `messages` 200-byte events straight into `shared.bus.publish`, `BATCH` at
    /// a time, paced by `window` (None: as fast as publishing goes).
    pub async fn direct(
        &self,
        n: usize,
        messages: u64,
        window: Option<u64>,
        limit: Duration,
    ) -> Result<Outcome> {
        let (group, readers) = self.subscribe(n, messages).await?;
        let shared = self.shared()?;
        let events = bus_events(BATCH * 4);
        let g = group.clone();
        let publisher = async move {
            let mut sent = 0u64;
            let mut k = 0usize;
            while sent < messages {
                g.pace(sent, window).await;
                let b = BATCH.min(messages - sent) as usize;
                let start = (k % 4) * BATCH as usize;
                shared.bus.publish(&events[start..start + b]);
                sent += b as u64;
                k += 1;
                // Unpaced, still let the runtime's other tasks (the shim writers) in.
                if window.is_none() {
                    tokio::task::yield_now().await;
                }
            }
            Ok(())
        };
        clock(group, readers, publisher, messages, limit, frame_body_len()).await
    }

    /// The full ingest path: the enrolled agent(s) send `events` synthetic events in
    /// 512-event batches over QUIC; the core validates, stores, commits, renders each
    /// event's JSON and publishes it; the shim delivers it. No pacing: the agents go as
    /// fast as the core acknowledges, and whatever the bus cannot queue is missed.
    pub async fn ingest(&self, n: usize, events: u64, limit: Duration) -> Result<Outcome> {
        if self.agents.is_empty() {
            bail!("no agent enrolled for the ingest path");
        }
        let agents = self.agents.len();
        let batch_events = 512.min(events.div_ceil(agents as u64) as usize).max(1);
        let batches = (events as usize).div_ceil(agents * batch_events);
        let sizes = IngestSizes {
            agents,
            batches,
            batch_events,
            window: 8,
            limit,
        };
        let per_sub = sizes.total_events();
        let (group, readers) = self.subscribe(n, per_sub).await?;
        let (addr, ids) = (self.dep.addr, self.agents.clone());
        let publisher = async move {
            tokio::time::timeout(limit, drive(addr, &ids, sizes))
                .await
                .context("ingest timed out")??;
            Ok(())
        };
        let mut out = clock(group, readers, publisher, per_sub, limit, 0).await?;
        out.body_bytes = ingest_body_bytes(&*self.shared()?).await.unwrap_or(0);
        Ok(out)
    }
}

/// The event frame's body length around a `PAYLOAD`-byte document (`sub` 1).
fn frame_body_len() -> usize {
    "{\"type\":\"event\",\"sub\":1,\"event\":".len() + PAYLOAD + 1
}

/// Average JSON document size of the events the ingest path stored (one sample).
async fn ingest_body_bytes(shared: &Shared) -> Option<usize> {
    let q = honeybee_proto::admin::EventQuery {
        node: None,
        service: None,
        kind: None,
        since_ms: None,
        limit: 64,
    };
    let events = shared.store.query_events(&q).await.ok()?;
    let n = events.len().max(1);
    Some(
        events
            .iter()
            .map(|e| honeybee_core::json::event_json(e).to_string().len())
            .sum::<usize>()
            / n,
    )
}

async fn write_json_frame(s: &mut TcpStream, body: &str) -> Result<()> {
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body.as_bytes());
    s.write_all(&out).await?;
    Ok(())
}

async fn read_json_frame(s: &mut TcpStream) -> Result<Vec<u8>> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).await?;
    let len = u32::from_be_bytes(h) as usize;
    if len > honeybee_proto::module::MAX_MODULE_FRAME as usize {
        bail!("frame of {len} bytes");
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await?;
    Ok(body)
}

async fn shim_connect(addr: SocketAddr, name: &str, cred: &str) -> Result<TcpStream> {
    let mut s = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
        .await
        .context("connect timed out")??;
    s.set_nodelay(true)?;
    let setup = async {
        write_json_frame(
            &mut s,
            &format!(
                "{{\"type\":\"hello\",\"name\":\"{name}\",\"version\":\"bench\",\"protocol\":1,\"credential\":\"{cred}\",\"permissions\":[\"events:read\"]}}"
            ),
        )
        .await?;
        let welcome = read_json_frame(&mut s).await?;
        if !welcome.starts_with(b"{\"type\":\"welcome\"") {
            bail!("no welcome: {}", String::from_utf8_lossy(&welcome));
        }
        write_json_frame(&mut s, "{\"type\":\"subscribe\",\"id\":1,\"filter\":{}}").await?;
        let answer = read_json_frame(&mut s).await?;
        if !answer.starts_with(b"{\"type\":\"result\",\"id\":1") {
            bail!("subscribe refused: {}", String::from_utf8_lossy(&answer));
        }
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(10), setup)
        .await
        .context("shim hello/subscribe timed out")??;
    Ok(s)
}

const EVENT_PREFIX: &[u8] = b"{\"type\":\"event\",";
const MISSED_PREFIX: &[u8] = b"{\"type\":\"missed\",";
/// What the core says before it disconnects a module that missed too much in a row.
const LAGGING: &[u8] =
    b"{\"type\":\"error\",\"code\":\"limit\",\"message\":\"disconnected: missed more than";

/// `{"type":"missed","count":N}` → N.
fn missed_count(body: &[u8]) -> Result<u64> {
    let text = std::str::from_utf8(body)?;
    let rest = text
        .split_once("\"count\":")
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("missed notice without count: {text}"))?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Ok(digits.parse()?)
}

/// Reads frames until `per_sub` events are accounted for: counts `event` frames by their
/// prefix, adds up `missed` notices, refuses anything else.
async fn shim_read(
    mut s: TcpStream,
    group: Arc<Group>,
    c: Arc<Counter>,
    per_sub: u64,
) -> Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    let (mut start, mut end) = (0usize, 0usize);
    let (mut got, mut missed) = (0u64, 0u64);
    while got + missed < per_sub {
        if buf.len() - end < 16 * 1024 {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        let n = s.read(&mut buf[end..]).await?;
        if n == 0 {
            bail!("shim closed the connection after {got} events");
        }
        end += n;
        while end - start >= 4 {
            let len =
                u32::from_be_bytes(buf[start..start + 4].try_into().expect("4 bytes")) as usize;
            if len > honeybee_proto::module::MAX_MODULE_FRAME as usize {
                bail!("frame of {len} bytes");
            }
            if end - start < 4 + len {
                if start + 4 + len > buf.len() {
                    buf.copy_within(start..end, 0);
                    end -= start;
                    start = 0;
                    if 4 + len > buf.len() {
                        buf.resize(4 + len + 16 * 1024, 0);
                    }
                }
                break;
            }
            let body = &buf[start + 4..start + 4 + len];
            if body.starts_with(EVENT_PREFIX) {
                got += 1;
            } else if body.starts_with(MISSED_PREFIX) {
                missed += missed_count(body)?;
            } else if body.starts_with(LAGGING) {
                // The designed outcome for a module that cannot keep up: counted, not an error.
                c.lagged_out.store(true, Ordering::Relaxed);
                group.report(&c, got, missed);
                return Ok(());
            } else {
                bail!(
                    "unexpected frame: {}",
                    String::from_utf8_lossy(&body[..len.min(300)])
                );
            }
            start += 4 + len;
        }
        if start == end {
            (start, end) = (0, 0);
        }
        group.report(&c, got, missed);
    }
    Ok(())
}

// ---------------------------------------------------------------- peers

/// A broker started here, killed (by its PID) when dropped.
struct Peer {
    child: Child,
    port: u16,
    version: String,
    _dir: tempfile::TempDir,
}

impl Peer {
    /// Lines of the broker's log that say it dropped or cut off a client.
    fn complaints(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self._dir.path().join("server.log")).unwrap_or_default();
        log.lines()
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                l.contains("slow consumer") || l.contains("dropped") || l.contains("error")
            })
            .map(|l| l.trim().to_owned())
            .collect()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_tcp_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind((LOOPBACK, 0))?
        .local_addr()?
        .port())
}

fn version_of(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let s = String::from_utf8_lossy(&o.stdout).to_string()
                + &String::from_utf8_lossy(&o.stderr);
            s.lines().next().unwrap_or("").trim().to_owned()
        })
        .unwrap_or_default()
}

async fn spawn_peer(
    program: &str,
    conf_name: &str,
    conf: impl Fn(u16) -> String,
    args: impl Fn(&Path) -> Vec<String>,
    version: String,
) -> Result<Peer> {
    let dir = tempfile::Builder::new()
        .prefix("honeybee-bench-peer-")
        .tempdir()?;
    // Readable by a broker that drops root privileges (mosquitto does).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    }
    let port = free_tcp_port()?;
    let conf_path = dir.path().join(conf_name);
    std::fs::write(&conf_path, conf(port))?;
    let log = std::fs::File::create(dir.path().join("server.log"))?;
    let child = Command::new(program)
        .args(args(&conf_path))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| {
            format!("start {program} (is it installed? apt-get install nats-server mosquitto)")
        })?;
    let peer = Peer {
        child,
        port,
        version,
        _dir: dir,
    };
    let t = Instant::now();
    loop {
        if TcpStream::connect((LOOPBACK, port)).await.is_ok() {
            return Ok(peer);
        }
        if t.elapsed() > Duration::from_secs(10) {
            let log =
                std::fs::read_to_string(peer._dir.path().join("server.log")).unwrap_or_default();
            bail!("{program} did not listen on port {port} within 10 s: {log}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn start_nats() -> Result<Peer> {
    spawn_peer(
        "nats-server",
        "nats.conf",
        |port| format!("# honeybee-bench: loopback only, defaults otherwise\nlisten: \"127.0.0.1:{port}\"\n"),
        |conf| vec!["-c".into(), conf.display().to_string()],
        version_of("nats-server", &["--version"]),
    )
    .await
}

async fn start_mosquitto() -> Result<Peer> {
    spawn_peer(
        "mosquitto",
        "mosquitto.conf",
        |port| {
            format!(
                "# honeybee-bench: loopback only\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages {MOSQUITTO_MAX_QUEUED}\nmax_queued_bytes 0\nlog_dest stderr\nlog_type error\nlog_type warning\n"
            )
        },
        |conf| vec!["-c".into(), conf.display().to_string()],
        version_of("mosquitto", &["-h"]),
    )
    .await
}

/// What async-nats reported through its event callback: (disconnects, slow-consumer drops,
/// other events).
pub static NATS_EVENTS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

async fn nats_client(port: u16) -> Result<async_nats::Client> {
    tokio::time::timeout(
        Duration::from_secs(10),
        async_nats::ConnectOptions::new()
            .subscription_capacity(NATS_SUB_CAPACITY)
            .event_callback(|e| async move {
                let k = match e {
                    async_nats::Event::Disconnected => 0,
                    async_nats::Event::SlowConsumer(_) => 1,
                    _ => 2,
                };
                NATS_EVENTS[k].fetch_add(1, Ordering::Relaxed);
            })
            .connect(format!("nats://127.0.0.1:{port}")),
    )
    .await
    .context("NATS connect timed out")?
    .map_err(|e| anyhow!("NATS connect: {e}"))
}

async fn nats_run(
    port: u16,
    n: usize,
    messages: u64,
    window: Option<u64>,
    limit: Duration,
) -> Result<Outcome> {
    let group = Group::new(n);
    let mut readers = JoinSet::new();
    for k in 0..n {
        let client = nats_client(port).await?;
        let mut sub = client
            .subscribe(NATS_SUBJECT)
            .await
            .map_err(|e| anyhow!("NATS subscribe: {e}"))?;
        // The server has the subscription once it answered the flush's PING.
        client
            .flush()
            .await
            .map_err(|e| anyhow!("NATS flush: {e}"))?;
        let (group, c) = (group.clone(), group.subs[k].clone());
        readers.spawn(async move {
            let _client = client;
            let mut got = 0u64;
            while got < messages {
                let Some(m) = sub.next().await else {
                    bail!("NATS subscription ended after {got} messages");
                };
                if m.payload.len() != PAYLOAD {
                    bail!("NATS payload of {} bytes", m.payload.len());
                }
                got += 1;
                if got.is_multiple_of(64) || got == messages {
                    group.report(&c, got, 0);
                }
            }
            Ok(())
        });
    }
    let publisher_client = nats_client(port).await?;
    let payload = Bytes::from(event_json(1));
    let g = group.clone();
    let publisher = async move {
        let mut sent = 0u64;
        while sent < messages {
            g.pace(sent, window).await;
            let b = BATCH.min(messages - sent);
            for _ in 0..b {
                publisher_client
                    .publish(NATS_SUBJECT, payload.clone())
                    .await
                    .map_err(|e| anyhow!("NATS publish: {e}"))?;
            }
            sent += b;
        }
        publisher_client
            .flush()
            .await
            .map_err(|e| anyhow!("NATS flush: {e}"))?;
        Ok(())
    };
    clock(group, readers, publisher, messages, limit, PAYLOAD).await
}

fn mqtt_options(id: &str, port: u16) -> rumqttc::MqttOptions {
    let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(60));
    o.set_clean_session(true);
    o
}

async fn mosquitto_run(
    port: u16,
    n: usize,
    messages: u64,
    window: Option<u64>,
    limit: Duration,
) -> Result<Outcome> {
    use rumqttc::{AsyncClient, Event, Packet, QoS};
    let group = Group::new(n);
    let mut readers = JoinSet::new();
    for k in 0..n {
        let (client, mut el) = AsyncClient::new(mqtt_options(&format!("bench-sub-{k}"), port), 64);
        client
            .subscribe(MQTT_TOPIC, QoS::AtMostOnce)
            .await
            .map_err(|e| anyhow!("MQTT subscribe: {e}"))?;
        let subscribed = async {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(anyhow!("MQTT subscriber: {e}")),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), subscribed)
            .await
            .context("MQTT SUBACK timed out")??;
        let (group, c) = (group.clone(), group.subs[k].clone());
        readers.spawn(async move {
            let _client = client;
            let mut got = 0u64;
            while got < messages {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if p.payload.len() != PAYLOAD {
                            bail!("MQTT payload of {} bytes", p.payload.len());
                        }
                        got += 1;
                        if got.is_multiple_of(64) || got == messages {
                            group.report(&c, got, 0);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => bail!("MQTT subscriber after {got} messages: {e}"),
                }
            }
            Ok(())
        });
    }
    let (client, mut el) = AsyncClient::new(mqtt_options("bench-pub", port), 1024);
    // The publisher's event loop writes what `publish_bytes` queued; it runs until the
    // measurement drops it.
    let connected = async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(anyhow!("MQTT publisher: {e}")),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), connected)
        .await
        .context("MQTT CONNACK timed out")??;
    let pump = tokio::spawn(async move {
        loop {
            if let Err(e) = el.poll().await {
                return anyhow!("MQTT publisher: {e}");
            }
        }
    });
    let payload = Bytes::from(event_json(1));
    let g = group.clone();
    let publisher = async move {
        let mut sent = 0u64;
        while sent < messages {
            g.pace(sent, window).await;
            let b = BATCH.min(messages - sent);
            for _ in 0..b {
                client
                    .publish_bytes(MQTT_TOPIC, QoS::AtMostOnce, false, payload.clone())
                    .await
                    .map_err(|e| anyhow!("MQTT publish: {e}"))?;
            }
            sent += b;
        }
        Ok(())
    };
    let out = clock(group, readers, publisher, messages, limit, PAYLOAD).await;
    pump.abort();
    out
}

// ---------------------------------------------------------------- the figure

fn loss_text(outs: &[Outcome]) -> String {
    let losses: Vec<f64> = outs.iter().map(|o| o.loss() * 100.0).collect();
    let max = losses.iter().cloned().fold(0.0, f64::max);
    let lagged: usize = outs.iter().map(|o| o.lagged_out).sum();
    let mut t = if max == 0.0 {
        "0".to_string()
    } else {
        format!(
            "{:.1} % (median; runs {})",
            median(&losses),
            losses
                .iter()
                .map(|l| format!("{l:.1}"))
                .collect::<Vec<_>>()
                .join(" / ")
        )
    };
    if lagged > 0 {
        t += &format!(", {lagged} subscriber disconnection(s) for lagging over all runs");
    }
    t
}

pub async fn figure(sizes: &BusSizes, runs: usize) -> Result<Figure> {
    let max_subs = sizes.subscribers.iter().copied().max().unwrap_or(1);
    let hb = HoneyBeeBus::start(max_subs, usize::from(sizes.ingest_events > 0)).await?;
    let nats = start_nats().await?;
    let mosq = start_mosquitto().await?;
    crate::progress(&format!(
        "bus: core shim {}, {} on {}, {} on {}",
        hb.shim, nats.version, nats.port, mosq.version, mosq.port
    ));
    let mut windows = vec![Some(WINDOW)];
    if sizes.flat_out {
        windows.push(None);
    }
    let systems = [System::HoneyBee, System::Nats, System::Mosquitto];
    // outs[window][subs][system] = one Outcome per run.
    let mut nats_events: Vec<String> = vec![];
    let mut outs =
        vec![vec![vec![Vec::<Outcome>::new(); 4]; sizes.subscribers.len()]; windows.len()];
    for run in 0..runs {
        for (wi, window) in windows.iter().enumerate() {
            for (si, &n) in sizes.subscribers.iter().enumerate() {
                let m = sizes.messages(n);
                let mut line = format!(
                    "bus run {} {} × {} msgs ({}):",
                    run + 1,
                    n,
                    m,
                    if window.is_some() {
                        "paced"
                    } else {
                        "flat out"
                    }
                );
                for sys in systems {
                    let o = match sys {
                        System::HoneyBee => hb.direct(n, m, *window, sizes.limit).await,
                        System::Nats => nats_run(nats.port, n, m, *window, sizes.limit).await,
                        System::Mosquitto => {
                            mosquitto_run(mosq.port, n, m, *window, sizes.limit).await
                        }
                        System::HoneyBeeIngest => unreachable!(),
                    }
                    .with_context(|| format!("{sys:?}, {n} subscribers"))?;
                    if sys == System::Nats {
                        let ev: Vec<u64> = NATS_EVENTS
                            .iter()
                            .map(|a| a.swap(0, Ordering::Relaxed))
                            .collect();
                        // `other` is mostly one `Connected` per client; only drops matter.
                        if ev[0] + ev[1] > 0 {
                            line += &format!(
                                " [async-nats events: {} disconnected, {} slow consumer, {} other]",
                                ev[0], ev[1], ev[2]
                            );
                            nats_events.push(format!(
                                "run {} {n} subs {}: {} disconnects, {} slow-consumer events, {} other",
                                run + 1,
                                if window.is_some() { "paced" } else { "flat out" },
                                ev[0],
                                ev[1],
                                ev[2]
                            ));
                        }
                    }
                    line += &format!(
                        " {sys:?} {:.0}/s loss {:.2}% ({}/{} subs complete, {} lagged out, {:.2} s){};",
                        o.per_s(),
                        o.loss() * 100.0,
                        o.complete,
                        o.subscribers,
                        o.lagged_out,
                        o.elapsed.as_secs_f64(),
                        if o.missed > 0 {
                            format!(" (missed notices {})", o.missed)
                        } else {
                            String::new()
                        }
                    );
                    outs[wi][si][sys as usize].push(o);
                }
                crate::progress(&line);
            }
        }
        if sizes.ingest_events > 0 {
            for (si, &n) in sizes.subscribers.iter().enumerate() {
                let events = sizes.messages(n).min(sizes.ingest_events);
                let o = hb
                    .ingest(n, events, sizes.limit)
                    .await
                    .with_context(|| format!("ingest path, {n} subscribers"))?;
                crate::progress(&format!(
                    "bus run {} ingest path {n} × {} events: {:.0}/s loss {:.2}% (missed notices {}), {:.2} s",
                    run + 1,
                    o.expected / n as u64,
                    o.per_s(),
                    o.loss() * 100.0,
                    o.missed,
                    o.elapsed.as_secs_f64()
                ));
                outs[0][si][System::HoneyBeeIngest as usize].push(o);
            }
        }
    }
    let mut complaints = vec![];
    let nats_name = format!("NATS ({}, async-nats 0.50 client)", nats.version.trim());
    let mosq_name = format!(
        "Mosquitto ({}, rumqttc 0.25 client, QoS 0)",
        mosq.version.trim()
    );
    for (name, peer) in [("nats-server", &nats), ("mosquitto", &mosq)] {
        let c = peer.complaints();
        if !c.is_empty() {
            crate::progress(&format!(
                "{name} logged {} drop/slow-consumer/error lines, e.g. {:?}",
                c.len(),
                c.first()
            ));
        }
        complaints.push(format!(
            "{name}: {} log line{} about slow consumers, dropped messages or errors{}",
            c.len(),
            if c.len() == 1 { "" } else { "s" },
            c.first()
                .map(|l| format!(" (first: `{l}`)"))
                .unwrap_or_default()
        ));
    }
    drop(nats);
    drop(mosq);

    let rate = |v: &[Outcome]| v.iter().map(Outcome::per_s).collect::<Vec<_>>();
    let mut rows = vec![];
    let mut notes = vec![];
    for (wi, window) in windows.iter().enumerate() {
        for (si, &n) in sizes.subscribers.iter().enumerate() {
            let o = &outs[wi][si];
            let what = format!(
                "{n} subscriber{} × {} messages, {}",
                if n == 1 { "" } else { "s" },
                sizes.messages(n),
                if window.is_some() {
                    "paced"
                } else {
                    "flat out"
                }
            );
            rows.push(Comparison {
                what: what.clone(),
                ours: rate(&o[System::HoneyBee as usize]),
                baseline_name: nats_name.clone(),
                baseline: rate(&o[System::Nats as usize]),
                goal: window.is_some().then_some(0.5),
            });
            rows.push(Comparison {
                what: what.clone(),
                ours: rate(&o[System::HoneyBee as usize]),
                baseline_name: mosq_name.clone(),
                baseline: rate(&o[System::Mosquitto as usize]),
                goal: (window.is_some() && n == 100).then_some(2.0),
            });
            notes.push(format!(
                "{what}: loss HoneyBee {}, NATS {}, Mosquitto {}.",
                loss_text(&o[System::HoneyBee as usize]),
                loss_text(&o[System::Nats as usize]),
                loss_text(&o[System::Mosquitto as usize]),
            ));
        }
    }
    if sizes.ingest_events > 0 {
        for (si, &n) in sizes.subscribers.iter().enumerate() {
            let o = &outs[0][si][System::HoneyBeeIngest as usize];
            let what = format!(
                "diagnostic: full ingest path (agent QUIC → store → bus → shim), {n} subscriber{} × {} events, unpaced",
                if n == 1 { "" } else { "s" },
                o.first().map(|o| o.expected / n as u64).unwrap_or(0)
            );
            rows.push(Comparison {
                what: what.clone(),
                ours: rate(o),
                baseline_name: format!("{nats_name}, paced (same subscribers)"),
                baseline: rate(&outs[0][si][System::Nats as usize]),
                goal: None,
            });
            notes.push(format!(
                "{what}: loss HoneyBee {} (told by `missed` notices: {}); event JSON ≈{} bytes.",
                loss_text(o),
                o.iter()
                    .map(|x| x.missed.to_string())
                    .collect::<Vec<_>>()
                    .join(" / "),
                o.first().map(|x| x.body_bytes).unwrap_or(0)
            ));
        }
    }
    notes.push(format!(
        "Payload: a {PAYLOAD}-byte JSON document on every side. HoneyBee frames it as `{{\"type\":\"event\",\"sub\":1,\"event\":…}}` ({} bytes of body + 4 of length); NATS and MQTT carry the same {PAYLOAD} bytes as the message payload. Counted from the publisher's first message to the last delivery at the last subscriber; each subscriber is its own TCP connection; {} runs, medians.",
        frame_body_len(),
        runs
    ));
    notes.push(format!(
        "HoneyBee: the publisher calls `shared.bus.publish` in-process with slices of {BATCH} pre-rendered events (core, shim writers and the raw-TCP Rust readers share one tokio runtime with 2 workers); each subscriber is a module with its own credential, subscribed with filter `{{}}`; readers count frames by their `{{\"type\":\"event\",` prefix and add up `missed` notices. NATS: one async-nats connection per subscriber (subscription capacity {NATS_SUB_CAPACITY}) and one for the publisher, `nats-server` with default limits. Mosquitto: one rumqttc connection per subscriber, QoS 0, clean session; `mosquitto.conf` sets `max_queued_messages {MOSQUITTO_MAX_QUEUED}` (default 1000) and `max_queued_bytes 0` so a busy subscriber's QoS 0 messages are queued, not dropped by design; persistence off. Both brokers run as child processes on ephemeral 127.0.0.1 ports."
    ));
    notes.push(format!(
        "Paced: the publisher sends {BATCH} at a time and waits while it is more than {WINDOW} messages (HoneyBee's per-module queue) ahead of the slowest subscriber's count — the same rule for the three systems, so none of them is asked to buffer more than HoneyBee's queue holds. Flat out: no pacing; HoneyBee's bus then drops (never blocks) what the queues cannot hold, NATS and Mosquitto buffer or push back through TCP."
    ));
    notes.push(format!(
        "Broker logs during the runs: {}. async-nats client events (disconnects; slow-consumer events, each for one or more messages the client dropped because its subscription buffer was full): {}.",
        complaints.join("; "),
        if nats_events.is_empty() {
            "none".to_string()
        } else {
            nats_events.join("; ")
        }
    ));
    Ok(Figure {
        title: "Module bus: deliveries/s vs NATS and Mosquitto".into(),
        unit: "deliveries/s".into(),
        rows,
        notes,
    })
}
