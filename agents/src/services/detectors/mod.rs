//! Network detectors of an extension node (`ServiceKind::Detectors`): each watches the
//! office network for one kind of quiet attack that no port listener sees, and reports
//! one event per incident, with counts.
//!
//! | detector | sends | needs |
//! |---|---|---|
//! | `poisoning` ([`poison`]) | LLMNR, NBT-NS and mDNS queries for honey-names, one round per `poisoning_interval_s` | nothing (ordinary UDP sockets) |
//! | `arp` ([`arp`]) | one ARP request for the gateway if its MAC is unknown | `CAP_NET_RAW` |
//! | `dhcp` ([`dhcp`]) | a DHCPDISCOVER per `dhcp_probe_s` (0: nothing) | `CAP_NET_RAW` |
//! | `router_advertisements` ([`ra`]) | one router solicitation at start | `CAP_NET_RAW` |
//! | `darknet` ([`darknet`], off by default) | ARP probes for unused addresses, then ARP answers for the unanswered ones | `CAP_NET_RAW` |
//! | `honey_credentials` ([`honeycred`], off by default) | an HTTP NTLM exchange toward a poisoner, limited per responder and hour | nothing |
//!
//! A detector that cannot start (no capability, no address) is reported as off in a
//! `service_error` event and the others run; the service fails only if none can. The
//! capture detectors each run on their own thread with a bounded frame rate (see
//! [`capture`]); the poisoning canary is a task. Their incidents (see [`incident`]) meet
//! in the service's task, which emits at most `max_events_per_minute` events and counts
//! the rest in one `limit_reached` event a minute.
//!
//! [`aggregator`] is the other half of the office network: a service of its own kind
//! (`ServiceKind::Aggregator`) that takes syslog ([`syslog`]) and SNMP traps
//! ([`snmptrap`]) from listed devices that cannot run an agent.

pub mod aggregator;
pub mod arp;
pub mod capture;
pub mod darknet;
pub mod dhcp;
pub mod honeycred;
pub mod iface;
pub mod incident;
pub mod ntlm;
pub mod poison;
pub mod ra;
pub mod snmptrap;
pub mod syslog;

use super::{Running, StartError, stopped};
use crate::persona::NodePersona;
use crate::sink::{EventSink, NewEvent};
use capture::PacketSocket;
use honeybee_proto::config::{DetectorOptions, ServiceConfig};
use honeybee_proto::event::{EventKind, MAX_FIELD_LEN, clamp};
use iface::Iface;
use incident::{Alert, AlertClass, IncidentConfig};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Open incidents per detector.
const MAX_OPEN_INCIDENTS: usize = 64;
/// How often capture threads report kernel drops and refused incidents.
const LOSS_REPORT: Duration = Duration::from_secs(60);
/// How long a stopping service waits for its capture threads.
const JOIN_TIMEOUT: Duration = Duration::from_millis(1500);

/// What detectors send to the service's task.
#[derive(Debug)]
pub enum Msg {
    Alert(Alert),
    /// A cap was hit (frames dropped, incidents refused): a `limit_reached` detail.
    Limit(String),
    /// Honey-credentials offered to a poisoner (bounded by their own limiter, so not
    /// subject to `max_events_per_minute`: the core must learn every offer).
    Offer(honeybee_proto::event::HoneyCredentialOffer),
}

/// Incident timing from the options.
pub fn incident_config(o: &DetectorOptions) -> IncidentConfig {
    IncidentConfig {
        quiet_ms: u64::from(o.incident_quiet_ms),
        max_ms: u64::from(o.incident_max_s) * 1000,
        max_open: MAX_OPEN_INCIDENTS,
    }
}

/// A capture detector's state machine, as its thread drives it.
pub trait FrameWatch: Send + 'static {
    fn name(&self) -> &'static str;
    fn frame(&mut self, frame: &[u8], now_ms: u64);
    fn tick(&mut self, now_ms: u64) -> Vec<Alert>;
    fn drain(&mut self) -> Vec<Alert>;
    fn overflow(&self) -> u64;
    /// Whatever it sends on its own (probes), given the socket.
    fn periodic(&mut self, _sock: &PacketSocket, _now_ms: u64) {}
}

/// The ARP watch plus the one gateway request it may send.
struct ArpDetector {
    w: arp::ArpWatch,
    own: Option<(Ipv4Addr, incident::Mac)>,
    gateway: Option<Ipv4Addr>,
    asked_ms: Option<u64>,
}

impl FrameWatch for ArpDetector {
    fn name(&self) -> &'static str {
        "arp"
    }
    fn frame(&mut self, frame: &[u8], now_ms: u64) {
        self.w.frame(frame, now_ms);
    }
    fn tick(&mut self, now_ms: u64) -> Vec<Alert> {
        self.w.tick(now_ms)
    }
    fn drain(&mut self) -> Vec<Alert> {
        self.w.drain()
    }
    fn overflow(&self) -> u64 {
        self.w.overflow()
    }
    fn periodic(&mut self, sock: &PacketSocket, now_ms: u64) {
        // The gateway's MAC unknown: ask once a minute, as the host's own stack would.
        let (Some(gw), Some((ip, mac))) = (self.gateway, self.own) else {
            return;
        };
        if self.w.known_mac(gw).is_some()
            || self
                .asked_ms
                .is_some_and(|t| now_ms.saturating_sub(t) < 60_000)
        {
            return;
        }
        self.asked_ms = Some(now_ms);
        if let Err(e) = sock.send(&arp::request_frame(mac, ip, gw)) {
            tracing::debug!(error = %e, "ARP request for the gateway not sent");
        }
    }
}

struct DhcpDetector {
    w: dhcp::DhcpWatch,
    mac: Option<incident::Mac>,
    probe_ms: u64,
    probed_ms: Option<u64>,
}

impl FrameWatch for DhcpDetector {
    fn name(&self) -> &'static str {
        "dhcp"
    }
    fn frame(&mut self, frame: &[u8], now_ms: u64) {
        self.w.frame(frame, now_ms);
    }
    fn tick(&mut self, now_ms: u64) -> Vec<Alert> {
        self.w.tick(now_ms)
    }
    fn drain(&mut self) -> Vec<Alert> {
        self.w.drain()
    }
    fn overflow(&self) -> u64 {
        self.w.overflow()
    }
    fn periodic(&mut self, sock: &PacketSocket, now_ms: u64) {
        let Some(mac) = self.mac else { return };
        if self.probe_ms == 0
            || self
                .probed_ms
                .is_some_and(|t| now_ms.saturating_sub(t) < self.probe_ms)
        {
            return;
        }
        self.probed_ms = Some(now_ms);
        if let Err(e) = sock.send(&dhcp::discover_frame(mac, rand::random())) {
            tracing::debug!(error = %e, "DHCPDISCOVER not sent");
        }
    }
}

struct RaDetector {
    w: ra::RaWatch,
    mac: Option<incident::Mac>,
    solicited: bool,
}

impl FrameWatch for RaDetector {
    fn name(&self) -> &'static str {
        "router_advertisements"
    }
    fn frame(&mut self, frame: &[u8], now_ms: u64) {
        self.w.frame(frame, now_ms);
    }
    fn tick(&mut self, now_ms: u64) -> Vec<Alert> {
        self.w.tick(now_ms)
    }
    fn drain(&mut self) -> Vec<Alert> {
        self.w.drain()
    }
    fn overflow(&self) -> u64 {
        self.w.overflow()
    }
    fn periodic(&mut self, sock: &PacketSocket, _now_ms: u64) {
        // One solicitation at start, as a booting host sends: every router answers now.
        if self.solicited {
            return;
        }
        self.solicited = true;
        if let Some(mac) = self.mac
            && let Err(e) = sock.send(&ra::solicitation_frame(mac))
        {
            tracing::debug!(error = %e, "router solicitation not sent");
        }
    }
}

/// The darknet watch and the ARP frames it sends (probes, answers for claimed addresses).
struct DarknetDetector {
    w: darknet::DarknetWatch,
}

impl FrameWatch for DarknetDetector {
    fn name(&self) -> &'static str {
        "darknet"
    }
    fn frame(&mut self, frame: &[u8], now_ms: u64) {
        self.w.frame(frame, now_ms);
    }
    fn tick(&mut self, now_ms: u64) -> Vec<Alert> {
        self.w.tick(now_ms)
    }
    fn drain(&mut self) -> Vec<Alert> {
        self.w.drain()
    }
    fn overflow(&self) -> u64 {
        self.w.overflow()
    }
    fn periodic(&mut self, sock: &PacketSocket, _now_ms: u64) {
        for f in self.w.outgoing() {
            if let Err(e) = sock.send(&f) {
                tracing::debug!(error = %e, "darknet ARP frame not sent");
            }
        }
    }
}

fn ms_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A capture thread: frames in at a bounded rate, alerts out, until `stop`.
fn run_capture<W: FrameWatch>(
    sock: PacketSocket,
    mut w: W,
    tx: mpsc::Sender<Msg>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
    max_fps: u32,
) {
    let name = w.name();
    let mut buf = vec![0u8; capture::SNAPLEN];
    let mut second = Instant::now();
    let mut in_second = 0u32;
    let mut last_tick = Instant::now();
    let mut last_loss = Instant::now();
    let (mut lost, mut overflow_seen) = (0u64, 0u64);
    let send = |tx: &mpsc::Sender<Msg>, m: Msg, lost: &mut u64| {
        if tx.try_send(m).is_err() {
            *lost += 1;
        }
    };
    w.periodic(&sock, ms_since(epoch));
    while !stop.load(Ordering::Relaxed) {
        match sock.recv(&mut buf) {
            Ok(Some((n, outgoing))) => {
                in_second += 1;
                if !outgoing {
                    w.frame(&buf[..n], ms_since(epoch));
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(detector = name, error = %e, "capture read failed");
                std::thread::sleep(capture::READ_TIMEOUT);
            }
        }
        if second.elapsed() >= Duration::from_secs(1) {
            second = Instant::now();
            in_second = 0;
        } else if in_second >= max_fps {
            // Over budget: leave the rest of the second to the kernel, which drops.
            while second.elapsed() < Duration::from_secs(1) && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if last_tick.elapsed() >= Duration::from_millis(100) {
            last_tick = Instant::now();
            let now = ms_since(epoch);
            for a in w.tick(now) {
                send(&tx, Msg::Alert(a), &mut lost);
            }
            w.periodic(&sock, now);
        }
        if last_loss.elapsed() >= LOSS_REPORT {
            last_loss = Instant::now();
            if let Some(detail) = loss(name, &sock, &w, &mut overflow_seen, &mut lost) {
                send(&tx, Msg::Limit(detail), &mut lost);
            }
        }
    }
    // The service's task is waiting for exactly these.
    for a in w.drain() {
        let _ = tx.blocking_send(Msg::Alert(a));
    }
    if let Some(detail) = loss(name, &sock, &w, &mut overflow_seen, &mut lost) {
        let _ = tx.blocking_send(Msg::Limit(detail));
    }
}

/// What a capture lost since the last call, as a `limit_reached` detail (`None`: nothing).
fn loss<W: FrameWatch>(
    name: &str,
    sock: &PacketSocket,
    w: &W,
    overflow_seen: &mut u64,
    lost: &mut u64,
) -> Option<String> {
    let dropped = sock.drops();
    let overflow = w.overflow().saturating_sub(*overflow_seen);
    *overflow_seen = w.overflow();
    let reports = std::mem::take(lost);
    (dropped > 0 || overflow > 0 || reports > 0).then(|| {
        format!(
            "{name}: {dropped} frames dropped over the rate cap, {overflow} packets of new incidents refused (too many open), {reports} reports lost"
        )
    })
}

/// Starts the detectors service: what can run runs, the rest is reported off.
pub(super) fn start(
    cfg: &ServiceConfig,
    opts: &DetectorOptions,
    sink: &EventSink,
    persona: Arc<NodePersona>,
) -> Result<Running, StartError> {
    let bind = match cfg.listen.ip() {
        IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
        _ => None,
    };
    let iface = Iface::discover(&opts.interface, bind)
        .map_err(|e| StartError::InvalidOptions(format!("detectors: {e}")))?;
    let epoch = Instant::now();
    let stop_flag = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<Msg>(1024);
    let (stop, stop_rx) = watch::channel(false);
    let mut notes: Vec<String> = Vec::new();
    let mut threads = Vec::new();
    let mut running: Vec<&'static str> = Vec::new();
    let inc = incident_config(opts);
    let own = iface.ipv4.zip(iface.mac);

    let mut open = |what: &'static str, ethertype: u16, filter: Vec<socket2::SockFilter>| {
        match PacketSocket::open(iface.index, ethertype, &filter) {
            Ok(s) => Some(s),
            Err(e) if capture::is_permission(&e) => {
                notes.push(format!(
                    "{what} detector off: reading frames needs CAP_NET_RAW ({e})"
                ));
                None
            }
            Err(e) => {
                notes.push(format!(
                    "{what} detector off: cannot capture on {}: {e}",
                    iface.name
                ));
                None
            }
        }
    };
    let mut spawn = |sock: PacketSocket, w: Box<dyn FnOnce(PacketSocket) + Send>| {
        let t = std::thread::Builder::new()
            .name("hb-detector".into())
            .spawn(move || w(sock));
        match t {
            Ok(t) => {
                threads.push(t);
                true
            }
            Err(_) => false,
        }
    };
    let fps = opts.max_frames_per_s;
    if opts.arp
        && let Some(sock) = open("arp", capture::ETH_P_ARP, Vec::new())
    {
        let gateway = opts.gateway.or(iface.gateway);
        let mut w = arp::ArpWatch::new(arp::ArpConfig {
            gateway,
            own,
            gratuitous_max: opts.gratuitous_arp_max,
            incidents: inc,
        });
        for (ip, mac) in iface::neighbours(&iface.name) {
            w.learn(ip, mac, 0);
        }
        let d = ArpDetector {
            w,
            own,
            gateway,
            asked_ms: None,
        };
        let (tx, stop) = (tx.clone(), Arc::clone(&stop_flag));
        if spawn(
            sock,
            Box::new(move |s| run_capture(s, d, tx, stop, epoch, fps)),
        ) {
            running.push("arp");
        }
    }
    if opts.dhcp
        && let Some(sock) = open(
            "dhcp",
            capture::ETH_P_IP,
            capture::program(&capture::DHCP_CLIENT),
        )
    {
        let d = DhcpDetector {
            w: dhcp::DhcpWatch::new(opts.dhcp_servers.clone(), inc),
            mac: iface.mac,
            probe_ms: u64::from(opts.dhcp_probe_s) * 1000,
            probed_ms: None,
        };
        let (tx, stop) = (tx.clone(), Arc::clone(&stop_flag));
        if spawn(
            sock,
            Box::new(move |s| run_capture(s, d, tx, stop, epoch, fps)),
        ) {
            running.push("dhcp");
        }
    }
    if opts.router_advertisements
        && let Some(sock) = open(
            "router_advertisements",
            capture::ETH_P_IPV6,
            capture::program(&capture::ROUTER_ADVERTISEMENT),
        )
    {
        let d = RaDetector {
            w: ra::RaWatch::new(opts.routers.clone(), iface.mac, inc),
            mac: iface.mac,
            solicited: false,
        };
        let (tx, stop) = (tx.clone(), Arc::clone(&stop_flag));
        if spawn(
            sock,
            Box::new(move |s| run_capture(s, d, tx, stop, epoch, fps)),
        ) {
            running.push("router_advertisements");
        }
    }
    let mut darknet_range = None;
    if opts.darknet {
        let addrs = match (iface.ipv4, iface.mac) {
            (Some(ip), Some(_)) => darknet::addresses(
                &opts.darknet_range,
                ip,
                iface.prefix_len.unwrap_or(24),
                opts.gateway.or(iface.gateway),
            ),
            _ => Err(format!("no IPv4 address or MAC on {}", iface.name)),
        };
        let mut off = None;
        match addrs {
            Err(e) => off = Some(format!("darknet detector off: {e}")),
            Ok(addrs) => {
                if let (Some(mac), Some(sock)) =
                    (iface.mac, open("darknet", capture::ETH_P_ALL, Vec::new()))
                {
                    let range = match (addrs.first(), addrs.last()) {
                        (Some(a), Some(b)) => format!("{a}-{b}"),
                        _ => String::new(),
                    };
                    let d = DarknetDetector {
                        w: darknet::DarknetWatch::new(mac, addrs, inc),
                    };
                    let (tx, stop) = (tx.clone(), Arc::clone(&stop_flag));
                    if spawn(
                        sock,
                        Box::new(move |s| run_capture(s, d, tx, stop, epoch, fps)),
                    ) {
                        running.push("darknet");
                        darknet_range = Some(range);
                    }
                }
            }
        }
        notes.extend(off);
    }
    let mut poison_task = None;
    if opts.poisoning {
        match (iface.ipv4, poison_sockets(&iface)) {
            (Some(ip), Ok(socks)) => {
                let p = PoisonRun {
                    socks,
                    ip,
                    prefix_len: iface.prefix_len,
                    iface: iface.name.clone(),
                    interval: Duration::from_secs(u64::from(opts.poisoning_interval_s)),
                    // An answer a round is the poisoner's rhythm: keep it one incident.
                    incidents: IncidentConfig {
                        quiet_ms: inc
                            .quiet_ms
                            .max(u64::from(opts.poisoning_interval_s) * 2500),
                        ..inc
                    },
                    persona: Arc::clone(&persona),
                    epoch,
                    offers: opts.honey_credentials.then(|| Offers {
                        port: opts.honey_credentials_port,
                        limiter: honeycred::OfferLimiter::new(
                            opts.honey_credentials_interval_s,
                            opts.honey_credentials_per_hour,
                        ),
                        in_flight: Arc::new(tokio::sync::Semaphore::new(honeycred::MAX_IN_FLIGHT)),
                        made: 0,
                    }),
                };
                poison_task = Some(tokio::spawn(run_poison(p, tx.clone(), stop_rx.clone())));
                running.push("poisoning");
            }
            (None, _) => notes.push(format!(
                "poisoning detector off: no IPv4 address on {}",
                iface.name
            )),
            (_, Err(e)) => notes.push(format!("poisoning detector off: {e}")),
        }
    }
    drop(tx);
    if running.is_empty() {
        stop_flag.store(true, Ordering::Relaxed);
        return Err(StartError::InvalidOptions(clamp(
            &format!(
                "no detector could start on {}: {}",
                iface.name,
                notes.join("; ")
            ),
            MAX_FIELD_LEN,
        )));
    }
    tracing::info!(service = %cfg.name, interface = %iface.name, detectors = ?running, off = ?notes, "network detectors running");
    if opts.poisoning && opts.honey_credentials && running.contains(&"poisoning") {
        running.push("honey_credentials");
    }
    let shown: Vec<String> = running
        .iter()
        .map(|r| match (*r, &darknet_range) {
            ("darknet", Some(range)) => format!("darknet {range}"),
            _ => (*r).to_owned(),
        })
        .collect();
    let listening = format!("{}: {}", iface.name, shown.join(", "));
    let svc = Supervisor {
        name: cfg.name.clone(),
        sink: sink.clone(),
        per_minute: opts.max_events_per_minute,
        listen: cfg.listen,
    };
    let task = tokio::spawn(supervise(
        svc,
        rx,
        stop_rx,
        notes,
        threads,
        stop_flag,
        poison_task,
    ));
    Ok(Running {
        bound: SocketAddr::new(cfg.listen.ip(), 0),
        stop,
        task,
        active: Arc::new(AtomicU32::new(0)),
        ext: None,
        listening: Some(listening),
    })
}

struct Supervisor {
    name: String,
    sink: EventSink,
    per_minute: u32,
    listen: SocketAddr,
}

impl Supervisor {
    async fn emit(&self, kind: EventKind, src: Option<SocketAddr>) {
        self.sink
            .emit(NewEvent::now(&self.name, None, src, None, kind))
            .await;
    }

    async fn alert(&self, a: Alert) {
        let src = a.alert.ip.map(|ip| SocketAddr::new(ip, 0));
        tracing::warn!(service = %self.name, what = %a.alert.what, ip = ?a.alert.ip, macs = ?a.alert.macs, count = a.alert.count, "network detector incident");
        let kind = match a.class {
            AlertClass::Poisoning => EventKind::PoisoningDetected(a.alert),
            AlertClass::Anomaly => EventKind::NetworkAnomaly(a.alert),
        };
        self.emit(kind, src).await;
    }

    async fn limit(&self, detail: String) {
        self.emit(
            EventKind::LimitReached {
                limit: "detector".into(),
                detail: clamp(&detail, MAX_FIELD_LEN),
            },
            None,
        )
        .await;
    }
}

/// At most `per_minute` tokens a minute, refilled continuously.
#[derive(Debug)]
pub struct Bucket {
    per_minute: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn new(per_minute: u32) -> Self {
        Bucket {
            per_minute: f64::from(per_minute.max(1)),
            tokens: f64::from(per_minute.max(1)),
            at: Instant::now(),
        }
    }

    pub fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * self.per_minute / 60.0).min(self.per_minute);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

async fn supervise(
    svc: Supervisor,
    mut rx: mpsc::Receiver<Msg>,
    mut stop: watch::Receiver<bool>,
    notes: Vec<String>,
    threads: Vec<std::thread::JoinHandle<()>>,
    stop_flag: Arc<AtomicBool>,
    poison: Option<tokio::task::JoinHandle<()>>,
) {
    for n in notes {
        tracing::warn!(service = %svc.name, listen = %svc.listen, "{n}");
        svc.emit(
            EventKind::ServiceError {
                message: clamp(&n, MAX_FIELD_LEN),
            },
            None,
        )
        .await;
    }
    let mut bucket = Bucket::new(svc.per_minute);
    let mut suppressed = 0u64;
    let mut last_suppressed_report = Instant::now();
    let handle = async |m: Msg, bucket: &mut Bucket, suppressed: &mut u64| match m {
        Msg::Alert(a) => {
            if bucket.take(Instant::now()) {
                svc.alert(a).await;
            } else {
                *suppressed += 1;
            }
        }
        Msg::Limit(d) => svc.limit(d).await,
        Msg::Offer(o) => {
            tracing::warn!(service = %svc.name, responder = %o.responder, user = %o.username, outcome = %o.outcome, "honey-credentials offered to a poisoner");
            let src = Some(SocketAddr::new(o.responder, 0));
            svc.emit(EventKind::HoneyCredentialsOffered(o), src).await;
        }
    };
    loop {
        tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            m = rx.recv() => match m {
                Some(m) => handle(m, &mut bucket, &mut suppressed).await,
                None => break,
            },
            () = tokio::time::sleep(Duration::from_secs(5)), if suppressed > 0 => {}
        }
        if suppressed > 0 && last_suppressed_report.elapsed() >= Duration::from_secs(60) {
            last_suppressed_report = Instant::now();
            svc.limit(format!(
                "{suppressed} incidents not reported: over max_events_per_minute ({})",
                svc.per_minute
            ))
            .await;
            suppressed = 0;
        }
    }
    // Stopping: every detector reports what is still open, then the channel closes.
    stop_flag.store(true, Ordering::Relaxed);
    let joined = tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    });
    let drain = async {
        while let Some(m) = rx.recv().await {
            // Final reports bypass the bucket only as far as it allows; the rest counted.
            handle(m, &mut bucket, &mut suppressed).await;
        }
    };
    if tokio::time::timeout(JOIN_TIMEOUT, drain).await.is_err() {
        tracing::warn!(service = %svc.name, "detectors did not stop in time");
    }
    if let Some(p) = poison {
        p.abort();
    }
    drop(joined);
    if suppressed > 0 {
        svc.limit(format!(
            "{suppressed} incidents not reported: over max_events_per_minute ({})",
            svc.per_minute
        ))
        .await;
    }
}

/// The poisoning canary's sockets: LLMNR, NBT-NS, mDNS, in that order.
fn poison_sockets(iface: &Iface) -> Result<[tokio::net::UdpSocket; 3], String> {
    use socket2::{Domain, Protocol, Socket, Type};
    let ip = iface.ipv4.ok_or("no IPv4 address")?;
    let one = |broadcast: bool| -> std::io::Result<tokio::net::UdpSocket> {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.bind_device(Some(iface.name.as_bytes())).ok();
        s.set_multicast_if_v4(&ip)?;
        s.set_multicast_ttl_v4(1)?;
        s.set_multicast_loop_v4(false)?;
        s.set_broadcast(broadcast)?;
        s.bind(&SocketAddr::new(IpAddr::V4(ip), 0).into())?;
        s.set_nonblocking(true)?;
        tokio::net::UdpSocket::from_std(s.into())
    };
    let e = |e: std::io::Error| format!("cannot open a UDP socket on {ip}: {e}");
    Ok([
        one(false).map_err(e)?,
        one(true).map_err(e)?,
        one(false).map_err(e)?,
    ])
}

struct PoisonRun {
    socks: [tokio::net::UdpSocket; 3],
    ip: Ipv4Addr,
    prefix_len: Option<u8>,
    iface: String,
    interval: Duration,
    incidents: IncidentConfig,
    persona: Arc<NodePersona>,
    epoch: Instant,
    offers: Option<Offers>,
}

/// The honey-credential offers of the canary (`honey_credentials = true`).
struct Offers {
    port: u16,
    limiter: honeycred::OfferLimiter,
    in_flight: Arc<tokio::sync::Semaphore>,
    made: u64,
}

/// Starts an offer to the poisoner `responder` if the limits allow one now.
fn offer_to(
    o: &mut Offers,
    persona: &NodePersona,
    responder: IpAddr,
    honey_name: &str,
    now_ms: u64,
    tx: &mpsc::Sender<Msg>,
) {
    // A slot first, so that a refused slot does not spend the responder's turn.
    let Ok(permit) = Arc::clone(&o.in_flight).try_acquire_owned() else {
        return;
    };
    if !o.limiter.allow(responder, now_ms) {
        return;
    }
    o.made += 1;
    let slot = crate::sink::now_ms().max(0);
    let id = honeycred::identity(
        &mut persona.persona().stream("detectors/honeycred"),
        &mut persona
            .persona()
            .stream(&format!("detectors/honeycred/{slot}/{}", o.made)),
    );
    let to = SocketAddr::new(responder, o.port);
    let name = honey_name.to_owned();
    let tx = tx.clone();
    tokio::spawn(async move {
        let outcome = honeycred::offer(to, &name, &id, honeycred::DEADLINE).await;
        drop(permit);
        let c = |s: &str| clamp(s, MAX_FIELD_LEN);
        let _ = tx
            .send(Msg::Offer(honeybee_proto::event::HoneyCredentialOffer {
                protocol: "http-ntlm".into(),
                username: c(&id.user),
                domain: c(&id.domain),
                password: c(&id.password),
                responder,
                honey_name: c(&name),
                outcome: outcome.name().into(),
            }))
            .await;
    });
}

/// The canary's task: a round of queries per interval, every answer into the watch.
async fn run_poison(mut p: PoisonRun, tx: mpsc::Sender<Msg>, mut stop: watch::Receiver<bool>) {
    use poison::Proto;
    // Without an on-link route, a /24 is the office network's likeliest size.
    let bcast = poison::broadcast(p.ip, p.prefix_len.unwrap_or(24));
    let mut w = poison::PoisonWatch::new(p.incidents, vec![IpAddr::V4(p.ip)]);
    let targets: [(Proto, SocketAddr); 3] = [
        (Proto::Llmnr, SocketAddr::from(([224, 0, 0, 252], 5355))),
        (Proto::NbtNs, SocketAddr::new(IpAddr::V4(bcast), 137)),
        (Proto::Mdns, SocketAddr::from(([224, 0, 0, 251], 5353))),
    ];
    let mut bufs = [[0u8; 1500]; 3];
    let mut next_round = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut round: u64 = 0;
    loop {
        if tokio::time::Instant::now() >= next_round {
            let slot = crate::sink::now_ms().max(0) as u64 / p.interval.as_millis().max(1) as u64;
            let mut draw = p
                .persona
                .persona()
                .stream(&format!("detectors/honeyname/{slot}/{round}"));
            round += 1;
            for (i, (proto, to)) in targets.iter().enumerate() {
                let name = poison::honey_name(&mut draw);
                let id: u16 = rand::random();
                let q = match proto {
                    Proto::Llmnr => poison::dns_query(id, &name, false),
                    Proto::NbtNs => poison::nbns_query(id, &name),
                    Proto::Mdns => {
                        poison::dns_query(id, &format!("{}.local", name.to_ascii_lowercase()), true)
                    }
                };
                match p.socks[i].send_to(&q, to).await {
                    Ok(_) => w.sent(id, *proto, &name),
                    Err(e) => {
                        tracing::debug!(proto = proto.name(), error = %e, "honey-name query not sent")
                    }
                }
            }
            // ±20 % so that rounds do not line up across nodes.
            let jitter = 0.8 + 0.4 * rand::random::<f64>();
            next_round = tokio::time::Instant::now() + p.interval.mul_f64(jitter);
        }
        let [b0, b1, b2] = &mut bufs;
        let got = tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            r = p.socks[0].recv_from(b0) => r.ok().map(|(n, a)| (Proto::Llmnr, n, a)),
            r = p.socks[1].recv_from(b1) => r.ok().map(|(n, a)| (Proto::NbtNs, n, a)),
            r = p.socks[2].recv_from(b2) => r.ok().map(|(n, a)| (Proto::Mdns, n, a)),
            () = tokio::time::sleep_until(next_round) => None,
            _ = tick.tick() => None,
        };
        let now = ms_since(p.epoch);
        if let Some((proto, n, from)) = got {
            let buf = match proto {
                Proto::Llmnr => &bufs[0],
                Proto::NbtNs => &bufs[1],
                Proto::Mdns => &bufs[2],
            };
            let mac = match from.ip() {
                IpAddr::V4(v4) => iface::neighbours(&p.iface)
                    .into_iter()
                    .find(|(ip, _)| *ip == v4)
                    .map(|(_, m)| m),
                IpAddr::V6(_) => None,
            };
            if w.answer(proto, from.ip(), &buf[..n], mac, now) {
                tracing::debug!(proto = proto.name(), from = %from, "honey-name answered");
                if let Some(o) = p.offers.as_mut() {
                    offer_to(o, &p.persona, from.ip(), w.last_name(), now, &tx);
                }
            }
        }
        for a in w.tick(now) {
            let _ = tx.try_send(Msg::Alert(a));
        }
    }
    for a in w.drain() {
        let _ = tx.send(Msg::Alert(a)).await;
    }
    if w.overflow() > 0 {
        let _ = tx
            .send(Msg::Limit(format!(
                "poisoning: {} answers of new incidents refused (too many open)",
                w.overflow()
            )))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use honeybee_proto::config::{ServiceKind, SmtpOptions};
    use honeybee_proto::event::NetworkAlert;
    use serde::Deserialize;

    #[test]
    fn wire_indices_of_old_values_are_unchanged_and_toml_round_trips() {
        // postcard writes the variant index first: appended variants leave the old ones
        // where old agents and cores expect them.
        let smtp = postcard::to_allocvec(&ServiceKind::Smtp(SmtpOptions::default())).unwrap();
        assert_eq!(smtp[0], 9);
        let det = DetectorOptions {
            gateway: Some(Ipv4Addr::new(192, 168, 1, 1)),
            dhcp_servers: vec![Ipv4Addr::new(192, 168, 1, 1)],
            routers: vec!["fe80::1".parse().unwrap()],
            ..DetectorOptions::default()
        };
        let bytes = postcard::to_allocvec(&ServiceKind::Detectors(det.clone())).unwrap();
        assert_eq!(bytes[0], 10);
        let back: ServiceKind = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, ServiceKind::Detectors(det.clone()));
        let alert = NetworkAlert {
            what: "arp_spoof".into(),
            ip: None,
            macs: Vec::new(),
            expected: None,
            count: 1,
            duration_ms: 0,
            detail: String::new(),
        };
        let p = postcard::to_allocvec(&EventKind::PoisoningDetected(alert.clone())).unwrap();
        let n = postcard::to_allocvec(&EventKind::NetworkAnomaly(alert)).unwrap();
        assert_eq!((p[0], n[0]), (12, 13));
        // The core's service list is TOML: with and without the optional gateway.
        for o in [det, DetectorOptions::default()] {
            let t = toml::Table::try_from(&o).unwrap();
            let back = DetectorOptions::deserialize(toml::Value::Table(t)).unwrap();
            assert_eq!(back, o);
        }
        let partial: DetectorOptions =
            toml::from_str("arp = false\ndhcp_servers = [\"10.0.0.1\"]").unwrap();
        assert!(!partial.arp && partial.poisoning);
        assert_eq!(partial.dhcp_servers, vec![Ipv4Addr::new(10, 0, 0, 1)]);
    }

    proptest::proptest! {
        /// Whatever arrives, every parser and state machine returns without panicking.
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = arp::parse_arp(&b);
            let _ = dhcp::parse_frame(&b);
            let _ = dhcp::parse_reply(&b);
            let _ = ra::parse_frame(&b);
            let _ = poison::positive_answer_id(&b);
            let _ = syslog::parse(&b);
            let _ = syslog::next_frame(&b);
            let _ = snmptrap::parse(&b);
            let mut w = arp::ArpWatch::new(arp::ArpConfig {
                gateway: Some(Ipv4Addr::new(10, 0, 0, 1)),
                own: None,
                gratuitous_max: 2,
                incidents: IncidentConfig::default(),
            });
            w.frame(&b, 0);
            let _ = w.drain();
        }
    }

    #[test]
    fn bucket_allows_its_rate_and_no_more() {
        let t0 = Instant::now();
        let mut b = Bucket::new(3);
        let taken = (0..10).filter(|_| b.take(t0)).count();
        assert_eq!(taken, 3);
        assert!(
            b.take(t0 + Duration::from_secs(20)),
            "one token back after 20 s"
        );
        assert!(!b.take(t0 + Duration::from_secs(20)));
    }
}
