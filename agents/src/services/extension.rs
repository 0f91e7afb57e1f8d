//! Extension service: runs beside the real services of an ordinary machine. It listens on
//! every configured port that no real service holds, re-reads the host's sockets every
//! `recheck_s`, answers like the banner service (nothing, or a configured banner), feeds
//! every connection to the [scan detector](crate::scan), and releases a port on command.
//!
//! **"Never take a port a real service holds":** a port is *held* when `/proc/net/tcp` or
//! `tcp6` shows a socket in LISTEN on it, or `/proc/net/udp` or `udp6` a bound
//! (unconnected) socket on it — UDP counts too, conservatively, because services such as
//! DNS want both. A held port is skipped and re-checked later; a port we listen on is
//! given up at the next re-check if a real service appears on it at another address
//! (possible when our bind address is a specific IP). A bind that fails anyway is skipped
//! and recorded. If `/proc` cannot be read, no new port is taken. Released ports stay
//! released until the service's configuration changes (which restarts it).

use super::banner::BannerService;
use super::{Service, accept_loop, bind, join_listener, stopped};
use crate::scan::{ScanConfig, ScanDetector, ScanReport};
use crate::sink::NewEvent;
use honeybee_proto::config::{BannerOptions, ExtensionOptions};
use honeybee_proto::event::EventKind;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Largest `/proc/net/*` file read; a host with more sockets than fit is read in part.
const PROC_READ_CAP: u64 = 64 << 20;
/// TCP state LISTEN and UDP state "unconnected" (`TCP_CLOSE`) in `/proc/net/*`.
const TCP_LISTEN: u8 = 0x0A;
const UDP_UNCONNECTED: u8 = 0x07;

/// One socket line of `/proc/net/{tcp,tcp6,udp,udp6}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcSocket {
    pub addr: IpAddr,
    pub port: u16,
    pub state: u8,
}

/// Parses the text of a `/proc/net/{tcp,udp}[6]` file. Lines that do not parse (the
/// header, garbage) are skipped; never panics. Addresses are in the kernel's native word
/// order, as the kernel prints them.
pub fn parse_proc_net(text: &str) -> Vec<ProcSocket> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<ProcSocket> {
    let mut f = line.split_whitespace();
    let slot = f.next()?;
    if !slot.ends_with(':') {
        return None;
    }
    let local = f.next()?;
    let _remote = f.next()?;
    let state = u8::from_str_radix(f.next()?, 16).ok()?;
    let (addr, port) = local.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let addr = parse_hex_addr(addr)?;
    Some(ProcSocket { addr, port, state })
}

fn parse_hex_addr(hex: &str) -> Option<IpAddr> {
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(
            u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16)
                .ok()?
                .to_ne_bytes(),
        )
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

/// What the host's real services hold, from the four `/proc/net` files.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HostSockets {
    /// TCP listeners: (address, port).
    pub tcp_listen: BTreeSet<(IpAddr, u16)>,
    /// Ports with a bound, unconnected UDP socket.
    pub udp_bound: BTreeSet<u16>,
}

impl HostSockets {
    /// From the texts of `tcp`, `tcp6`, `udp`, `udp6` (any may be empty).
    pub fn from_texts(tcp: &[&str], udp: &[&str]) -> Self {
        let mut h = HostSockets::default();
        for t in tcp {
            for s in parse_proc_net(t) {
                if s.state == TCP_LISTEN && s.port != 0 {
                    h.tcp_listen.insert((s.addr, s.port));
                }
            }
        }
        for t in udp {
            for s in parse_proc_net(t) {
                if s.state == UDP_UNCONNECTED && s.port != 0 {
                    h.udp_bound.insert(s.port);
                }
            }
        }
        h
    }

    /// Whether anything but `ours` (our own listener, if any) holds `port`.
    pub fn held_by_other(&self, port: u16, ours: Option<SocketAddr>) -> bool {
        self.udp_bound.contains(&port)
            || self
                .tcp_listen
                .iter()
                .any(|(ip, p)| *p == port && ours.is_none_or(|o| o.ip() != *ip))
    }

    /// Reads the host's `/proc/net` files; an error if the TCP ones cannot be read.
    pub fn read() -> std::io::Result<Self> {
        fn read(name: &str) -> std::io::Result<String> {
            use std::io::Read;
            let mut s = String::new();
            std::fs::File::open(format!("/proc/net/{name}"))?
                .take(PROC_READ_CAP)
                .read_to_string(&mut s)?;
            Ok(s)
        }
        let tcp = read("tcp")?;
        // Without IPv6 (or UDP) the files are absent, and nothing is held there.
        let tcp6 = read("tcp6").unwrap_or_default();
        let udp = read("udp").unwrap_or_default();
        let udp6 = read("udp6").unwrap_or_default();
        Ok(Self::from_texts(&[&tcp, &tcp6], &[&udp, &udp6]))
    }
}

/// The ports of one extension service, as its status and tests see them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtensionPorts {
    pub listening: BTreeSet<u16>,
    /// Skipped because a real service holds them.
    pub held: BTreeSet<u16>,
    /// Released by command.
    pub released: BTreeSet<u16>,
    /// Free by `/proc` but the bind failed, with the error.
    pub failed: BTreeMap<u16, String>,
    /// Why `/proc` could not be read at the last check, if it could not.
    pub error: Option<String>,
}

impl ExtensionPorts {
    /// One line for `ServiceStatus::listen`: `IP listening=8000-8003 held=8004 …`.
    pub(crate) fn summary(&self, ip: IpAddr) -> String {
        let mut s = format!("{ip} listening={}", compact(&self.listening));
        for (what, set) in [("held", &self.held), ("released", &self.released)] {
            if !set.is_empty() {
                s.push_str(&format!(" {what}={}", compact(set)));
            }
        }
        if !self.failed.is_empty() {
            let f: BTreeSet<u16> = self.failed.keys().copied().collect();
            s.push_str(&format!(" failed={}", compact(&f)));
        }
        honeybee_proto::event::clamp(&s, 1024)
    }
}

/// `1,2,3,7` → `1-3,7`; `-` when empty.
fn compact(ports: &BTreeSet<u16>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = ports.iter().copied().peekable();
    while let Some(start) = it.next() {
        let mut end = start;
        while it.peek() == Some(&(end.wrapping_add(1))) && end != u16::MAX {
            end = it.next().unwrap_or(end);
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    if out.is_empty() {
        "-".into()
    } else {
        out.join(",")
    }
}

/// A release request: the port, and where to answer.
pub(crate) type Release = (u16, oneshot::Sender<Result<String, String>>);

/// Validated extension options plus the service's scan detector.
#[derive(Debug)]
pub(crate) struct ExtensionService {
    pub(crate) banner: BannerService,
    ports: Vec<u16>,
    bind_ip: IpAddr,
    recheck: Duration,
    /// `None` when scan detection is off.
    detector: Option<Mutex<ScanDetector>>,
    window: Duration,
    epoch: std::time::Instant,
    /// Wakes the supervisor when the detector starts tracking, so it starts ticking.
    wake: tokio::sync::Notify,
}

impl ExtensionService {
    pub(crate) fn new(opts: &ExtensionOptions, bind_ip: IpAddr) -> Self {
        ExtensionService {
            banner: BannerService::new(&BannerOptions {
                banner: opts.banner.clone(),
                max_capture_bytes: opts.max_capture_bytes,
                read_timeout_ms: opts.read_timeout_ms,
            }),
            ports: opts.port_list(),
            bind_ip,
            recheck: Duration::from_secs(u64::from(opts.recheck_s.max(1))),
            detector: (opts.scan_min_ports >= 2).then(|| {
                Mutex::new(ScanDetector::new(ScanConfig {
                    min_ports: opts.scan_min_ports as usize,
                    window_ms: u64::from(opts.scan_window_ms),
                    ..ScanConfig::default()
                }))
            }),
            window: Duration::from_millis(u64::from(opts.scan_window_ms.max(1))),
            epoch: std::time::Instant::now(),
            wake: tokio::sync::Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Feeds one accepted connection to the scan detector; returns evicted scans.
    pub(crate) fn observe(&self, src: IpAddr, port: u16) -> Vec<ScanReport> {
        let Some(d) = &self.detector else {
            return Vec::new();
        };
        let now = self.now_ms();
        let mut d = d.lock().unwrap_or_else(|e| e.into_inner());
        let was_empty = d.is_empty();
        let evicted = d.observe(src, port, now);
        if was_empty {
            self.wake.notify_one();
        }
        evicted
    }

    fn tick(&self) -> Vec<ScanReport> {
        let Some(d) = &self.detector else {
            return Vec::new();
        };
        let now = self.now_ms();
        d.lock().unwrap_or_else(|e| e.into_inner()).tick(now)
    }

    fn drain(&self) -> Vec<ScanReport> {
        let Some(d) = &self.detector else {
            return Vec::new();
        };
        d.lock().unwrap_or_else(|e| e.into_inner()).drain()
    }

    fn tracking(&self) -> bool {
        self.detector
            .as_ref()
            .is_some_and(|d| !d.lock().unwrap_or_else(|e| e.into_inner()).is_empty())
    }
}

/// Emits one `ScanDetected` event per report.
pub(crate) async fn emit_scans(svc: &Service, reports: Vec<ScanReport>) {
    for r in reports {
        tracing::info!(service = %svc.name, src = %r.src, ports = r.distinct_ports, connections = r.count, "scan detected");
        svc.sink
            .emit(NewEvent::now(
                &svc.name,
                None,
                Some(SocketAddr::new(r.src, 0)),
                None,
                EventKind::ScanDetected {
                    ports: r.ports,
                    count: r.count,
                    duration_ms: r.duration_ms,
                    distinct_ports: r.distinct_ports,
                },
            ))
            .await;
    }
}

struct PortListener {
    bound: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The extension service's task: converges its listeners to the free configured ports
/// every `recheck`, reports finished scans, serves release requests, and on stop stops
/// every listener and reports the scans still in progress.
pub(crate) async fn supervise(
    svc: Arc<Service>,
    ext: Arc<ExtensionService>,
    mut stop: watch::Receiver<bool>,
    mut releases: mpsc::Receiver<Release>,
    view: Arc<Mutex<ExtensionPorts>>,
) {
    let mut listeners: BTreeMap<u16, PortListener> = BTreeMap::new();
    let mut released: BTreeSet<u16> = BTreeSet::new();
    let tick_every = (ext.window / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    'outer: loop {
        converge(&svc, &ext, &mut listeners, &released, &view).await;
        let next_check = tokio::time::Instant::now() + ext.recheck;
        loop {
            let tracking = ext.tracking();
            tokio::select! {
                biased;
                () = stopped(&mut stop) => break 'outer,
                Some((port, answer)) = releases.recv() => {
                    let r = release(&ext, port, &mut listeners, &mut released, &view).await;
                    let _ = answer.send(r);
                }
                () = tokio::time::sleep_until(next_check) => break,
                () = ext.wake.notified(), if !tracking => {}
                () = tokio::time::sleep(tick_every), if tracking => {
                    emit_scans(&svc, ext.tick()).await;
                }
            }
        }
    }
    for l in listeners.values() {
        let _ = l.stop.send(true);
    }
    for (_, l) in std::mem::take(&mut listeners) {
        join_listener(l.task).await;
    }
    emit_scans(&svc, ext.drain()).await;
}

async fn release(
    ext: &ExtensionService,
    port: u16,
    listeners: &mut BTreeMap<u16, PortListener>,
    released: &mut BTreeSet<u16>,
    view: &Mutex<ExtensionPorts>,
) -> Result<String, String> {
    if ext.ports.binary_search(&port).is_err() {
        return Err(format!("port {port} is not configured on this service"));
    }
    released.insert(port);
    let was = match listeners.remove(&port) {
        Some(l) => {
            let _ = l.stop.send(true);
            join_listener(l.task).await;
            "was listening"
        }
        None => "was not listening",
    };
    let mut v = view.lock().unwrap_or_else(|e| e.into_inner());
    v.listening.remove(&port);
    v.released.insert(port);
    tracing::info!(port, "extension port released by command");
    Ok(format!("port {port} released ({was})"))
}

async fn converge(
    svc: &Arc<Service>,
    ext: &ExtensionService,
    listeners: &mut BTreeMap<u16, PortListener>,
    released: &BTreeSet<u16>,
    view: &Mutex<ExtensionPorts>,
) {
    let host = match tokio::task::spawn_blocking(HostSockets::read).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            tracing::warn!(service = %svc.name, error = %e, "cannot read /proc/net; no new port taken");
            view.lock().unwrap_or_else(|e| e.into_inner()).error =
                Some(format!("cannot read /proc/net: {e}"));
            return;
        }
        Err(_) => return,
    };
    // Step aside where a real service appeared at another address of one of our ports.
    let yield_ports: Vec<u16> = listeners
        .iter()
        .filter(|(p, l)| host.held_by_other(**p, Some(l.bound)))
        .map(|(p, _)| *p)
        .collect();
    for p in yield_ports {
        if let Some(l) = listeners.remove(&p) {
            tracing::info!(service = %svc.name, port = p, "a real service appeared on this port; giving it up");
            let _ = l.stop.send(true);
            join_listener(l.task).await;
        }
    }
    let mut held = BTreeSet::new();
    let mut failed = BTreeMap::new();
    for &port in &ext.ports {
        if listeners.contains_key(&port) || released.contains(&port) {
            continue;
        }
        if host.held_by_other(port, None) {
            held.insert(port);
            continue;
        }
        let addr = SocketAddr::new(ext.bind_ip, port);
        match bind(addr).and_then(|l| Ok((l.local_addr()?, l))) {
            Ok((bound, listener)) => {
                let (tx, rx) = watch::channel(false);
                // The service's own stop reaches the port's listener through `tx`.
                let task = tokio::spawn(accept_loop(Arc::clone(svc), listener, bound, rx));
                listeners.insert(
                    port,
                    PortListener {
                        bound,
                        stop: tx,
                        task,
                    },
                );
            }
            Err(e) => {
                tracing::debug!(service = %svc.name, port, error = %e, "extension port not taken");
                failed.insert(port, e.to_string());
            }
        }
    }
    let mut v = view.lock().unwrap_or_else(|e| e.into_inner());
    if v.held != held {
        tracing::info!(service = %svc.name, held = %compact(&held), "ports held by real services are skipped");
    }
    v.listening = listeners.keys().copied().collect();
    v.held = held;
    v.failed = failed;
    v.released = released.clone();
    v.error = None;
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2345 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 3345 1 0000000000000000 20 4 30 10 -1
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0277 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4345 1 0000000000000000 100 0 0 10 0
";
    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 5345 2 0000000000000000 0
  101: 0100007F:9C40 0100007F:0035 01 00000000:00000000 00:00000000 00000000     0        0 6345 2 0000000000000000 0
";

    #[test]
    fn parses_proc_net_samples() {
        let s = parse_proc_net(TCP);
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].port, s[0].state), (8080, TCP_LISTEN));
        assert_eq!((s[1].port, s[1].state), (22, TCP_LISTEN));
        assert_eq!(s[2].state, 0x01);
        #[cfg(target_endian = "little")]
        {
            assert_eq!(s[0].addr, IpAddr::from([127, 0, 0, 1]));
            let v6 = parse_proc_net(TCP6);
            assert_eq!(v6[0].addr, "::1".parse::<IpAddr>().unwrap());
            assert_eq!(v6[0].port, 631);
        }
        let h = HostSockets::from_texts(&[TCP, TCP6], &[UDP]);
        let ports: Vec<u16> = h.tcp_listen.iter().map(|(_, p)| *p).collect();
        assert_eq!(ports.len(), 3);
        assert!(ports.contains(&8080) && ports.contains(&22) && ports.contains(&631));
        // Only the unconnected UDP socket holds its port; the client socket does not.
        assert_eq!(h.udp_bound, BTreeSet::from([53]));
        assert!(h.held_by_other(53, None));
        assert!(h.held_by_other(22, None));
        assert!(!h.held_by_other(40000, None));
        #[cfg(target_endian = "little")]
        {
            let ours: SocketAddr = "127.0.0.1:8080".parse().unwrap();
            assert!(!h.held_by_other(8080, Some(ours)));
            let other: SocketAddr = "10.0.0.1:8080".parse().unwrap();
            assert!(h.held_by_other(8080, Some(other)));
        }
    }

    #[test]
    fn hostile_proc_text_never_panics() {
        let samples = [
            "",
            "\n\n",
            "0:",
            "0: zz:1 0 0A",
            "0: 0100007F:FFFFF 0 0A",
            "0: 0100007F 0 0A",
            "0: 0100007F:1F90",
            "0: 0100007F:1F90 x",
            "0: 0100007F:1F90 x 1FF",
            "0: 0100007F:1F90 x 0A",
            "0: 01000:1F90 x 0A",
            "0: +1000007F:1F90 x 0A",
            "0: é100007Fé:1F90 x 0A",
            "0: 0000000000000000000000000100000é:0277 x 0A",
            "0: 00000000000000000000000001000000000:0277 x 0A",
        ];
        let mut ok = 0;
        for s in samples {
            ok += parse_proc_net(s).len();
        }
        assert_eq!(ok, 1);
        let mut bytes: Vec<u8> = TCP.bytes().collect();
        for i in 0..bytes.len() {
            let saved = bytes[i];
            for b in [b':', b' ', b'\n', b'Z', 0xff] {
                bytes[i] = b;
                let _ = parse_proc_net(&String::from_utf8_lossy(&bytes));
            }
            bytes[i] = saved;
        }
    }

    #[test]
    fn compact_ranges() {
        assert_eq!(compact(&BTreeSet::new()), "-");
        assert_eq!(compact(&BTreeSet::from([1, 2, 3, 7, 9, 10])), "1-3,7,9-10");
        assert_eq!(compact(&BTreeSet::from([65534, 65535])), "65534-65535");
    }
}
