//! The aggregator service (`ServiceKind::Aggregator`): devices that cannot run an agent
//! (printers, cameras, NAS) send it syslog (UDP, and TCP framed as RFC 6587 says) and SNMP
//! traps, and each message from a listed device becomes a `device_log` or `device_trap`
//! event naming that device. The core lists the devices as node-like entries under this
//! node (`honeybee nodes`, the dashboard).
//!
//! Everything here is written to be attacked, since a sender's address is all that admits
//! it and UDP sources are easy to forge on a LAN:
//! - a sender that is not listed is refused before any byte of it is parsed (a datagram
//!   dropped, a connection closed at accept) and only counted: one `limit_reached
//!   unlisted_sender` event a minute, naming a few of them;
//! - every read goes into a buffer of fixed size: a syslog datagram over
//!   [`syslog::MAX_MESSAGE`] is cut (the kernel drops the rest), a trap datagram over
//!   [`MAX_TRAP_DATAGRAM`] too (and then does not parse); a TCP frame is kept up to
//!   [`syslog::MAX_MESSAGE`] and the rest skipped as it arrives ([`TcpFramer`]), and an
//!   octet count over [`MAX_OCTET_COUNT`] or of more than 7 digits ends the connection;
//! - TCP connections are capped in total and per device, and closed after `tcp_idle_s`
//!   without a byte;
//! - events are rate limited per device and in total; the rest are counted and reported
//!   once a minute (and when the service stops).
//!
//! The one thing it ever sends is the Response an SNMP inform asks for: to the listed
//! device it came from, the inform's own size, within that device's rate.

use super::syslog;
use super::{Bucket, snmptrap};
use crate::services::{Running, StartError, stopped};
use crate::sink::{EventSink, NewEvent};
use honeybee_proto::config::{AggregatorOptions, ServiceConfig};
use honeybee_proto::event::{DeviceLog, DeviceTrap, EventKind, MAX_FIELD_LEN, clamp};
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Largest trap datagram read; longer ones are cut by the kernel and fail to parse.
pub const MAX_TRAP_DATAGRAM: usize = 8192;
/// Largest octet count a TCP syslog frame may announce; more ends the connection.
pub const MAX_OCTET_COUNT: usize = 1 << 20;
/// How often counted refusals and suppressed messages are reported.
const REPORT_EVERY: Duration = Duration::from_secs(60);
/// Unlisted senders named in one report (all are counted).
const UNLISTED_NAMED: usize = 8;
/// Distinct unlisted senders remembered between two reports.
const UNLISTED_KEPT: usize = 1024;
/// One TCP read.
const TCP_READ: usize = 4096;

/// One frame of a TCP syslog stream: its bytes (at most [`syslog::MAX_MESSAGE`]) and
/// whether more were skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub bytes: Vec<u8>,
    pub truncated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Between frames: a digit starts an octet count, anything else a line.
    Between,
    /// Reading an octet count's digits.
    Count { len: usize, digits: u8 },
    /// Inside an octet-counted frame, `left` bytes to go.
    Counted { left: usize, truncated: bool },
    /// Inside a line-feed-terminated frame.
    Line { truncated: bool },
}

/// RFC 6587 framing, sans-IO and bounded: bytes in, frames out. Octet counting
/// (`LEN SP MSG`) when a frame starts with a digit, else up to a line feed. Holds at most
/// [`syslog::MAX_MESSAGE`] bytes whatever arrives: the rest of a longer frame is skipped
/// as it comes, never buffered.
#[derive(Debug)]
pub struct TcpFramer {
    buf: Vec<u8>,
    mode: Mode,
}

impl Default for TcpFramer {
    fn default() -> Self {
        TcpFramer {
            buf: Vec::new(),
            mode: Mode::Between,
        }
    }
}

impl TcpFramer {
    /// Feeds `data`; complete frames are pushed to `out`. `Err` (a bad or oversized octet
    /// count) means the stream cannot be framed any more: close it.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<Frame>) -> Result<(), &'static str> {
        while let Some(&b) = data.first() {
            match self.mode {
                Mode::Between => {
                    if b.is_ascii_digit() {
                        self.mode = Mode::Count { len: 0, digits: 0 };
                    } else if b == b'\n' || b == b'\r' || b == 0 {
                        // Empty lines, and the line feed some senders put after a counted frame.
                        data = &data[1..];
                    } else {
                        self.mode = Mode::Line { truncated: false };
                    }
                }
                Mode::Count { len, digits } => {
                    data = &data[1..];
                    if b == b' ' {
                        self.buf.clear();
                        self.mode = Mode::Counted {
                            left: len,
                            truncated: false,
                        };
                        if len == 0 {
                            self.mode = Mode::Between;
                        }
                        continue;
                    }
                    if !b.is_ascii_digit() || digits >= 7 {
                        return Err("bad octet count");
                    }
                    let len = len * 10 + usize::from(b - b'0');
                    if len > MAX_OCTET_COUNT {
                        return Err("octet count over 1 MiB");
                    }
                    self.mode = Mode::Count {
                        len,
                        digits: digits + 1,
                    };
                }
                Mode::Counted { left, truncated } => {
                    let take = left.min(data.len());
                    let keep = take.min(syslog::MAX_MESSAGE - self.buf.len());
                    self.buf.extend_from_slice(&data[..keep]);
                    data = &data[take..];
                    let truncated = truncated || keep < take;
                    if left == take {
                        self.emit(truncated, out);
                    } else {
                        self.mode = Mode::Counted {
                            left: left - take,
                            truncated,
                        };
                    }
                }
                Mode::Line { truncated } => {
                    let nl = data.iter().position(|&c| c == b'\n');
                    let take = nl.unwrap_or(data.len());
                    let keep = take.min(syslog::MAX_MESSAGE - self.buf.len());
                    self.buf.extend_from_slice(&data[..keep]);
                    let truncated = truncated || keep < take;
                    match nl {
                        Some(nl) => {
                            data = &data[nl + 1..];
                            if self.buf.last() == Some(&b'\r') {
                                self.buf.pop();
                            }
                            self.emit(truncated, out);
                        }
                        None => {
                            data = &[];
                            self.mode = Mode::Line { truncated };
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn emit(&mut self, truncated: bool, out: &mut Vec<Frame>) {
        out.push(Frame {
            bytes: std::mem::take(&mut self.buf),
            truncated,
        });
        self.mode = Mode::Between;
    }

    /// Bytes held now (at most [`syslog::MAX_MESSAGE`]).
    pub fn held(&self) -> usize {
        self.buf.len()
    }
}

/// A syslog message as a `device_log` event's body.
pub fn device_log(device: &str, transport: &str, raw: &[u8], cut: bool) -> DeviceLog {
    let m = syslog::parse(raw);
    let field = |s: Option<String>| s.map(|s| clamp(&s, MAX_FIELD_LEN));
    DeviceLog {
        device: device.to_owned(),
        transport: transport.to_owned(),
        format: match m.format {
            syslog::Format::Rfc5424 => "rfc5424",
            syslog::Format::Rfc3164 => "rfc3164",
            syslog::Format::Bare => "bare",
        }
        .into(),
        facility: m.facility,
        severity: m.severity,
        timestamp: field(m.timestamp),
        hostname: field(m.hostname),
        app: field(m.app),
        procid: field(m.procid),
        msgid: field(m.msgid),
        structured_data: field(m.structured_data),
        truncated: cut || m.msg.len() > MAX_FIELD_LEN,
        message: clamp(&m.msg, MAX_FIELD_LEN),
    }
}

/// A parsed trap as a `device_trap` event's body.
pub fn device_trap(device: &str, t: snmptrap::Trap) -> DeviceTrap {
    DeviceTrap {
        device: device.to_owned(),
        version: t.version,
        trap_oid: clamp(&t.trap_oid, MAX_FIELD_LEN),
        agent_addr: t.agent_addr.map(IpAddr::V4),
        varbinds: t
            .varbinds
            .into_iter()
            .take(honeybee_proto::event::MAX_TRAP_VARBINDS)
            .map(|(k, v)| (clamp(&k, MAX_FIELD_LEN), clamp(&v, MAX_FIELD_LEN)))
            .collect(),
        inform: t.inform,
    }
}

/// What is counted between two reports.
#[derive(Debug, Default)]
struct Counts {
    unlisted_datagrams: u64,
    unlisted_connections: u64,
    unlisted: BTreeSet<IpAddr>,
    unlisted_more: bool,
    /// Messages over a device's rate, by device.
    over_device: HashMap<Arc<str>, u64>,
    over_total: u64,
    tcp_over_total: u64,
    tcp_over_device: u64,
    framing_closed: u64,
    idle_closed: u64,
    not_traps: u64,
    wrong_community: u64,
}

/// State every listener of one aggregator service shares.
struct Hub {
    name: String,
    sink: EventSink,
    /// Listed devices by canonical address.
    devices: HashMap<IpAddr, Arc<str>>,
    communities: Vec<String>,
    per_device: u32,
    total: u32,
    max_tcp: u32,
    max_tcp_per_device: u32,
    tcp_idle: Duration,
    rates: Mutex<(Bucket, HashMap<IpAddr, Bucket>)>,
    counts: Mutex<Counts>,
    tcp_open: AtomicU32,
    tcp_by_device: Mutex<HashMap<IpAddr, u32>>,
}

impl Hub {
    fn lock_counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The listed device sending from `ip`, or `None` after counting the refusal.
    fn admit(&self, ip: IpAddr, connection: bool) -> Option<Arc<str>> {
        let ip = ip.to_canonical();
        if let Some(d) = self.devices.get(&ip) {
            return Some(Arc::clone(d));
        }
        let mut c = self.lock_counts();
        if connection {
            c.unlisted_connections += 1;
        } else {
            c.unlisted_datagrams += 1;
        }
        if c.unlisted.len() < UNLISTED_KEPT {
            c.unlisted.insert(ip);
        } else if !c.unlisted.contains(&ip) {
            c.unlisted_more = true;
        }
        None
    }

    /// Takes a token from the device's bucket and the total one; a refusal is counted.
    fn allow(&self, ip: IpAddr, device: &Arc<str>) -> bool {
        let now = Instant::now();
        let ok = {
            let mut r = self.rates.lock().unwrap_or_else(|e| e.into_inner());
            let (total, per) = &mut *r;
            let mine = per
                .entry(ip.to_canonical())
                .or_insert_with(|| Bucket::new(self.per_device));
            if !mine.take(now) {
                Err(true)
            } else if !total.take(now) {
                Err(false)
            } else {
                Ok(())
            }
        };
        match ok {
            Ok(()) => true,
            Err(device_cap) => {
                let mut c = self.lock_counts();
                if device_cap {
                    *c.over_device.entry(Arc::clone(device)).or_default() += 1;
                } else {
                    c.over_total += 1;
                }
                false
            }
        }
    }

    async fn emit(&self, src: SocketAddr, dst: SocketAddr, kind: EventKind) {
        let src = SocketAddr::new(src.ip().to_canonical(), src.port());
        self.sink
            .emit(NewEvent::now(&self.name, None, Some(src), Some(dst), kind))
            .await;
    }

    /// One `limit_reached` event per kind of refusal counted since the last report.
    async fn report(&self) {
        let c = std::mem::take(&mut *self.lock_counts());
        let mut out: Vec<(&str, String, Option<SocketAddr>)> = Vec::new();
        if c.unlisted_datagrams + c.unlisted_connections > 0 {
            let named: Vec<String> = c
                .unlisted
                .iter()
                .take(UNLISTED_NAMED)
                .map(IpAddr::to_string)
                .collect();
            let senders = if c.unlisted_more {
                format!("over {}", c.unlisted.len())
            } else {
                c.unlisted.len().to_string()
            };
            out.push((
                "unlisted_sender",
                format!(
                    "refused {} datagrams and {} connections from {senders} senders not listed as devices ({}{})",
                    c.unlisted_datagrams,
                    c.unlisted_connections,
                    named.join(", "),
                    if c.unlisted.len() > named.len() || c.unlisted_more {
                        ", …"
                    } else {
                        ""
                    }
                ),
                c.unlisted
                    .iter()
                    .next()
                    .map(|ip| SocketAddr::new(*ip, 0)),
            ));
        }
        let mut over: Vec<(&Arc<str>, &u64)> = c.over_device.iter().collect();
        over.sort();
        for (device, n) in over {
            out.push((
                "device_rate",
                format!(
                    "{device}: {n} messages not reported: over max_events_per_minute ({})",
                    self.per_device
                ),
                None,
            ));
        }
        if c.over_total > 0 {
            out.push((
                "device_rate",
                format!(
                    "{} messages not reported: over max_events_per_minute_total ({})",
                    c.over_total, self.total
                ),
                None,
            ));
        }
        if c.tcp_over_total + c.tcp_over_device > 0 {
            out.push((
                "aggregator_tcp",
                format!(
                    "{} connections refused over max_tcp_connections ({}), {} over max_tcp_per_device ({})",
                    c.tcp_over_total, self.max_tcp, c.tcp_over_device, self.max_tcp_per_device
                ),
                None,
            ));
        }
        if c.framing_closed > 0 {
            out.push((
                "aggregator_tcp",
                format!(
                    "{} connections closed: a bad octet count, or one over {MAX_OCTET_COUNT} bytes",
                    c.framing_closed
                ),
                None,
            ));
        }
        if c.not_traps + c.wrong_community > 0 {
            out.push((
                "aggregator_input",
                format!(
                    "{} datagrams on the trap port were not SNMPv1/v2c traps, {} carried a community not listed",
                    c.not_traps, c.wrong_community
                ),
                None,
            ));
        }
        if c.idle_closed > 0 {
            tracing::debug!(service = %self.name, closed = c.idle_closed, "idle syslog connections closed");
        }
        for (limit, detail, src) in out {
            tracing::info!(service = %self.name, limit, detail = %detail, "aggregator refusals");
            self.sink
                .emit(NewEvent::now(
                    &self.name,
                    None,
                    src,
                    None,
                    EventKind::LimitReached {
                        limit: limit.into(),
                        detail: clamp(&detail, MAX_FIELD_LEN),
                    },
                ))
                .await;
        }
    }
}

/// Binds what the options turn on and starts the service's task.
pub(in crate::services) fn start(
    cfg: &ServiceConfig,
    opts: &AggregatorOptions,
    sink: &EventSink,
) -> Result<Running, StartError> {
    let bind_err = |addr: SocketAddr| move |source| StartError::Bind { addr, source };
    // Port 0 with both transports: UDP takes the port TCP was given, so both are one
    // address; should that UDP port be taken, try another (a few times).
    let tries = if cfg.listen.port() == 0 && opts.syslog_tcp && opts.syslog_udp {
        8
    } else {
        1
    };
    let mut bound = None;
    for attempt in 1..=tries {
        let mut syslog_addr = cfg.listen;
        let tcp = if opts.syslog_tcp {
            let l = super::super::bind(cfg.listen).map_err(bind_err(cfg.listen))?;
            syslog_addr = l.local_addr().map_err(bind_err(cfg.listen))?;
            Some(l)
        } else {
            None
        };
        let udp = if opts.syslog_udp {
            match udp_socket(syslog_addr) {
                Ok(s) => {
                    syslog_addr = s.local_addr().map_err(bind_err(syslog_addr))?;
                    Some(s)
                }
                Err(e) if attempt < tries && e.kind() == std::io::ErrorKind::AddrInUse => {
                    continue;
                }
                Err(e) => return Err(bind_err(syslog_addr)(e)),
            }
        } else {
            None
        };
        bound = Some((syslog_addr, tcp, udp));
        break;
    }
    let Some((syslog_addr, tcp, udp)) = bound else {
        return Err(StartError::InvalidOptions(
            "no port free for both UDP and TCP syslog".into(),
        ));
    };
    let traps = if opts.snmp_traps {
        let a = SocketAddr::new(cfg.listen.ip(), opts.trap_port);
        Some(udp_socket(a).map_err(bind_err(a))?)
    } else {
        None
    };
    let trap_addr = traps.as_ref().and_then(|t| t.local_addr().ok());
    let hub = Arc::new(Hub {
        name: cfg.name.clone(),
        sink: sink.clone(),
        devices: opts
            .devices
            .iter()
            .map(|d| (d.address.to_canonical(), Arc::from(d.name.as_str())))
            .collect(),
        communities: opts.trap_communities.clone(),
        per_device: opts.max_events_per_minute,
        total: opts.max_events_per_minute_total,
        max_tcp: opts.max_tcp_connections,
        max_tcp_per_device: opts.max_tcp_per_device,
        tcp_idle: Duration::from_secs(u64::from(opts.tcp_idle_s)),
        rates: Mutex::new((
            Bucket::new(opts.max_events_per_minute_total),
            HashMap::new(),
        )),
        counts: Mutex::new(Counts::default()),
        tcp_open: AtomicU32::new(0),
        tcp_by_device: Mutex::new(HashMap::new()),
    });
    let (stop, stop_rx) = watch::channel(false);
    let active = Arc::new(AtomicU32::new(0));
    tracing::info!(service = %cfg.name, syslog = %syslog_addr, udp = opts.syslog_udp, tcp = opts.syslog_tcp, traps = ?trap_addr, devices = opts.devices.len(), "aggregator listening");
    let task = tokio::spawn(run(hub, udp, tcp, traps, stop_rx, Arc::clone(&active)));
    let listening = listening_line(
        (opts.syslog_udp || opts.syslog_tcp).then_some(syslog_addr),
        opts.syslog_udp,
        opts.syslog_tcp,
        trap_addr,
    );
    Ok(Running {
        bound: if opts.syslog_udp || opts.syslog_tcp {
            syslog_addr
        } else {
            trap_addr.unwrap_or(cfg.listen)
        },
        stop,
        task,
        active,
        ext: None,
        listening: Some(listening),
    })
}

/// The health line of an aggregator: every socket it listens on
/// (`syslog 0.0.0.0:514 udp+tcp, traps 0.0.0.0:162 udp`).
pub fn listening_line(
    syslog: Option<SocketAddr>,
    udp: bool,
    tcp: bool,
    traps: Option<SocketAddr>,
) -> String {
    let mut parts = Vec::new();
    if let Some(a) = syslog {
        let t = match (udp, tcp) {
            (true, true) => "udp+tcp",
            (true, false) => "udp",
            _ => "tcp",
        };
        parts.push(format!("syslog {a} {t}"));
    }
    if let Some(a) = traps {
        parts.push(format!("traps {a} udp"));
    }
    parts.join(", ")
}

fn udp_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let s = std::net::UdpSocket::bind(addr)?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}

async fn run(
    hub: Arc<Hub>,
    udp: Option<UdpSocket>,
    tcp: Option<TcpListener>,
    traps: Option<UdpSocket>,
    mut stop: watch::Receiver<bool>,
    active: Arc<AtomicU32>,
) {
    let mut tasks = JoinSet::new();
    if let Some(s) = udp {
        tasks.spawn(syslog_udp(Arc::clone(&hub), s, stop.clone()));
    }
    if let Some(s) = traps {
        tasks.spawn(trap_udp(Arc::clone(&hub), s, stop.clone()));
    }
    if let Some(l) = tcp {
        tasks.spawn(syslog_tcp(Arc::clone(&hub), l, stop.clone(), active));
    }
    let mut every =
        tokio::time::interval_at(tokio::time::Instant::now() + REPORT_EVERY, REPORT_EVERY);
    loop {
        tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            _ = every.tick() => hub.report().await,
        }
    }
    // The listeners stop on the same signal; whatever they counted meanwhile is reported.
    let drained = tokio::time::timeout(Duration::from_millis(1000), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tasks.shutdown().await;
    }
    hub.report().await;
}

/// The next datagram on `sock` from a listed device: its length, sender and device name;
/// unlisted senders are refused (and counted) here, receive errors skipped. None once
/// the service stops.
async fn next_datagram(
    hub: &Hub,
    sock: &UdpSocket,
    buf: &mut [u8],
    stop: &mut watch::Receiver<bool>,
    what: &str,
) -> Option<(usize, SocketAddr, Arc<str>)> {
    loop {
        let (n, from) = tokio::select! {
            biased;
            () = stopped(stop) => return None,
            r = sock.recv_from(buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(service = %hub.name, error = %e, "{what} receive failed");
                    continue;
                }
            },
        };
        if let Some(device) = hub.admit(from.ip(), false) {
            return Some((n, from, device));
        }
    }
}

async fn syslog_udp(hub: Arc<Hub>, sock: UdpSocket, mut stop: watch::Receiver<bool>) {
    let dst = sock
        .local_addr()
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
    // One byte over the cap: a datagram that fills it was cut by the kernel.
    let mut buf = vec![0u8; syslog::MAX_MESSAGE + 1];
    while let Some((n, from, device)) =
        next_datagram(&hub, &sock, &mut buf, &mut stop, "syslog").await
    {
        if !hub.allow(from.ip(), &device) {
            continue;
        }
        let cut = n > syslog::MAX_MESSAGE;
        let log = device_log(&device, "udp", &buf[..n.min(syslog::MAX_MESSAGE)], cut);
        hub.emit(from, dst, EventKind::DeviceLog(log)).await;
    }
}

async fn trap_udp(hub: Arc<Hub>, sock: UdpSocket, mut stop: watch::Receiver<bool>) {
    let dst = sock
        .local_addr()
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut buf = vec![0u8; MAX_TRAP_DATAGRAM];
    while let Some((n, from, device)) =
        next_datagram(&hub, &sock, &mut buf, &mut stop, "trap").await
    {
        let Some(trap) = snmptrap::parse(&buf[..n]) else {
            hub.lock_counts().not_traps += 1;
            continue;
        };
        if !hub.communities.is_empty() && !hub.communities.contains(&trap.community) {
            hub.lock_counts().wrong_community += 1;
            continue;
        }
        if !hub.allow(from.ip(), &device) {
            continue;
        }
        // An inform waits for its Response: one datagram of the inform's size, only to a
        // listed device, only within its rate (a forged source gains no amplification).
        if trap.inform
            && let Some(r) = snmptrap::inform_response(&buf[..n])
            && let Err(e) = sock.send_to(&r, from).await
        {
            tracing::debug!(service = %hub.name, error = %e, "inform response not sent");
        }
        hub.emit(from, dst, EventKind::DeviceTrap(device_trap(&device, trap)))
            .await;
    }
}

/// Holds one TCP slot (total and per device) until dropped.
struct Slot {
    hub: Arc<Hub>,
    ip: IpAddr,
    active: Arc<AtomicU32>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.hub.tcp_open.fetch_sub(1, Ordering::Relaxed);
        self.active.fetch_sub(1, Ordering::Relaxed);
        let mut by = self
            .hub
            .tcp_by_device
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = by.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                by.remove(&self.ip);
            }
        }
    }
}

fn take_slot(hub: &Arc<Hub>, ip: IpAddr, active: &Arc<AtomicU32>) -> Option<Slot> {
    let mut by = hub.tcp_by_device.lock().unwrap_or_else(|e| e.into_inner());
    if hub.tcp_open.load(Ordering::Relaxed) >= hub.max_tcp {
        drop(by);
        hub.lock_counts().tcp_over_total += 1;
        return None;
    }
    let mine = by.entry(ip).or_insert(0);
    if *mine >= hub.max_tcp_per_device {
        drop(by);
        hub.lock_counts().tcp_over_device += 1;
        return None;
    }
    *mine += 1;
    hub.tcp_open.fetch_add(1, Ordering::Relaxed);
    active.fetch_add(1, Ordering::Relaxed);
    Some(Slot {
        hub: Arc::clone(hub),
        ip,
        active: Arc::clone(active),
    })
}

async fn syslog_tcp(
    hub: Arc<Hub>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    active: Arc<AtomicU32>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    let ip = peer.ip().to_canonical();
                    // Refused at once, before a byte is read.
                    let Some(device) = hub.admit(ip, true) else { continue };
                    let Some(slot) = take_slot(&hub, ip, &active) else { continue };
                    let hub = Arc::clone(&hub);
                    let stop = stop.clone();
                    conns.spawn(async move {
                        let _slot = slot;
                        tcp_conn(&hub, stream, peer, device, stop).await;
                    });
                }
                Err(e) => {
                    tracing::warn!(service = %hub.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    conns.shutdown().await;
}

async fn tcp_conn(
    hub: &Hub,
    mut stream: TcpStream,
    peer: SocketAddr,
    device: Arc<str>,
    mut stop: watch::Receiver<bool>,
) {
    let dst = stream
        .local_addr()
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut framer = TcpFramer::default();
    let mut buf = [0u8; TCP_READ];
    let mut frames = Vec::new();
    loop {
        let n = tokio::select! {
            biased;
            () = stopped(&mut stop) => return,
            r = tokio::time::timeout(hub.tcp_idle, stream.read(&mut buf)) => match r {
                Err(_) => {
                    hub.lock_counts().idle_closed += 1;
                    return;
                }
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => n,
            },
        };
        let framed = framer.feed(&buf[..n], &mut frames);
        for f in frames.drain(..) {
            if hub.allow(peer.ip(), &device) {
                let log = device_log(&device, "tcp", &f.bytes, f.truncated);
                hub.emit(peer, dst, EventKind::DeviceLog(log)).await;
            }
        }
        if framed.is_err() {
            hub.lock_counts().framing_closed += 1;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(chunks: &[&[u8]]) -> (Vec<Frame>, Result<(), &'static str>, usize) {
        let mut f = TcpFramer::default();
        let mut out = Vec::new();
        let mut r = Ok(());
        let mut most = 0;
        for c in chunks {
            r = f.feed(c, &mut out);
            most = most.max(f.held());
            if r.is_err() {
                break;
            }
        }
        (out, r, most)
    }

    fn frame(b: &[u8], truncated: bool) -> Frame {
        Frame {
            bytes: b.to_vec(),
            truncated,
        }
    }

    #[test]
    fn octet_counting_and_line_feeds_in_any_split() {
        let stream = b"11 <13>1 - - x<13>line one\r\n\n5 hello<14>two\n";
        let want = vec![
            frame(b"<13>1 - - x", false),
            frame(b"<13>line one", false),
            frame(b"hello", false),
            frame(b"<14>two", false),
        ];
        // Whole, byte by byte, and every two-way split.
        assert_eq!(frames(&[stream]).0, want);
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(frames(&bytes).0, want);
        for i in 0..stream.len() {
            let (a, b) = stream.split_at(i);
            assert_eq!(frames(&[a, b]).0, want, "split at {i}");
        }
        // A line not yet ended is held, not emitted.
        assert_eq!(frames(&[b"<13>half"]).0, vec![]);
    }

    /// The attack: a line that never ends, and an octet-counted frame of 1 MiB. Neither
    /// holds more than the cap; both arrive cut, and the next frame is intact.
    #[test]
    fn long_frames_are_cut_and_skipped_not_buffered() {
        let big = vec![b'a'; 300_000];
        let (out, r, most) = frames(&[b"<13>", &big, &big, b"\n<13>next\n"]);
        assert!(r.is_ok());
        assert!(most <= syslog::MAX_MESSAGE);
        assert_eq!(out.len(), 2);
        assert!(out[0].truncated && out[0].bytes.len() == syslog::MAX_MESSAGE);
        assert_eq!(out[1], frame(b"<13>next", false));
        let head = format!("{MAX_OCTET_COUNT} ");
        let body = vec![b'b'; MAX_OCTET_COUNT];
        let (out, r, most) = frames(&[head.as_bytes(), &body[..5000], &body[5000..], b"3 abc"]);
        assert!(r.is_ok());
        assert!(most <= syslog::MAX_MESSAGE);
        assert_eq!(out.len(), 2);
        assert!(out[0].truncated && out[0].bytes.len() == syslog::MAX_MESSAGE);
        assert_eq!(out[1], frame(b"abc", false));
    }

    #[test]
    fn bad_octet_counts_end_the_stream() {
        let over = format!("{} x", MAX_OCTET_COUNT + 1);
        for bad in [
            &b"12345678 x"[..],
            b"12x3 abc",
            over.as_bytes(),
            b"99999999",
        ] {
            let (_, r, _) = frames(&[bad]);
            assert!(r.is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        // Frames before the bad count still come out.
        let (out, r, _) = frames(&[b"3 abc9x"]);
        assert_eq!((out, r.is_err()), (vec![frame(b"abc", false)], true));
    }

    #[test]
    fn events_are_clamped_and_say_so() {
        let mut line = b"<13>Dec  7 06:40:01 nas01 kernel: ".to_vec();
        line.extend(vec![b'x'; 6000]);
        let l = device_log("nas-1", "udp", &line, false);
        assert!(l.truncated && l.message.len() == MAX_FIELD_LEN);
        assert_eq!(
            (l.device.as_str(), l.format.as_str(), l.app.as_deref()),
            ("nas-1", "rfc3164", Some("kernel"))
        );
        let l = device_log("nas-1", "tcp", b"<30>hello", true);
        assert!(l.truncated);
        assert_eq!(
            (l.facility, l.severity, l.message.as_str()),
            (3, 6, "hello")
        );
    }

    proptest::proptest! {
        /// Whatever arrives, in whatever pieces, the framer never holds more than the cap
        /// and never emits a frame over it.
        #[test]
        fn framer_is_bounded(chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000), 0..12)) {
            let mut f = TcpFramer::default();
            let mut out = Vec::new();
            for c in &chunks {
                if f.feed(c, &mut out).is_err() {
                    break;
                }
                proptest::prop_assert!(f.held() <= syslog::MAX_MESSAGE);
            }
            for fr in &out {
                proptest::prop_assert!(fr.bytes.len() <= syslog::MAX_MESSAGE);
            }
        }
    }
}
