//! The aggregator service on loopback: devices that cannot run an agent send it syslog
//! (util-linux `logger`, UDP and TCP) and SNMP traps (net-snmp's `snmptrap`, Debian
//! package `snmp`), and a listed device's messages arrive as its events; every bound is
//! attacked (unlisted senders, an oversized datagram, an endless line, a huge or broken
//! octet count, too many connections, an idle connection, a flood over the rate).
//!
//! Loopback is a /8, so "another machine" is another 127.x address: a listed device at
//! 127.0.0.2 and an unlisted sender at 127.0.0.3 are sockets bound there.

use honeybee_agent::services::{Limits, ServiceManager};
use honeybee_agent::sink::{EventSink, NewEvent};
use honeybee_proto::config::{
    AggregatedDevice, AggregatorOptions, NodeConfig, ServiceConfig, ServiceKind,
};
use honeybee_proto::event::{DeviceLog, DeviceTrap, EventKind, MAX_FIELD_LEN};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// A guard against a hung test, not a timing assertion.
const WAIT: Duration = Duration::from_secs(20);

fn device(name: &str, ip: &str) -> AggregatedDevice {
    AggregatedDevice {
        name: name.into(),
        address: ip.parse().unwrap(),
        kind: "printer".into(),
    }
}

struct Node {
    mgr: ServiceManager,
    rx: mpsc::Receiver<NewEvent>,
    syslog: SocketAddr,
    traps: SocketAddr,
    _dir: tempfile::TempDir,
}

/// A free UDP port on loopback for the traps (the service binds it right after).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn node(opts: AggregatorOptions) -> Node {
    let (sink, rx) = EventSink::channel(4096);
    let dir = tempfile::tempdir().unwrap();
    let mut mgr = ServiceManager::new(sink, dir.path().to_path_buf(), Limits::default());
    let trap_port = free_udp_port();
    let cfg = NodeConfig {
        services: vec![ServiceConfig {
            name: "office-devices".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            enabled: true,
            kind: ServiceKind::Aggregator(AggregatorOptions { trap_port, ..opts }),
        }],
    };
    cfg.validate().unwrap();
    mgr.apply(&cfg).await;
    let st = mgr.status();
    assert!(st[0].running, "{st:?}");
    // The health line names every socket: `syslog ADDR udp+tcp, traps ADDR udp`.
    let line = &st[0].listen;
    let syslog: SocketAddr = line
        .strip_prefix("syslog ")
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("{line}"))
        .parse()
        .unwrap();
    if trap_port != 0 {
        assert!(
            line.contains(&format!(", traps {}:{trap_port} udp", syslog.ip())),
            "{line}"
        );
    }
    Node {
        mgr,
        rx,
        syslog,
        traps: SocketAddr::from(([127, 0, 0, 1], trap_port)),
        _dir: dir,
    }
}

impl Node {
    /// The next `n` events that `pick` keeps (others are skipped).
    async fn take<T>(&mut self, n: usize, pick: impl Fn(&NewEvent) -> Option<T>) -> Vec<T> {
        let mut out = Vec::new();
        while out.len() < n {
            let e = tokio::time::timeout(WAIT, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("only {} of {n} events came", out.len()))
                .expect("sink open");
            if let Some(t) = pick(&e) {
                out.push(t);
            }
        }
        out
    }

    /// Stops the service and returns every event left, the final reports among them.
    async fn stop(mut self) -> Vec<NewEvent> {
        self.mgr.shutdown().await;
        drop(self.mgr);
        let mut out = Vec::new();
        while let Some(e) = self.rx.recv().await {
            out.push(e);
        }
        out
    }
}

fn log_of(e: &NewEvent) -> Option<DeviceLog> {
    match &e.kind {
        EventKind::DeviceLog(l) => Some(l.clone()),
        _ => None,
    }
}

fn trap_of(e: &NewEvent) -> Option<DeviceTrap> {
    match &e.kind {
        EventKind::DeviceTrap(t) => Some(t.clone()),
        _ => None,
    }
}

fn limits(events: &[NewEvent], which: &str) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::LimitReached { limit, detail } if limit == which => Some(detail.clone()),
            _ => None,
        })
        .collect()
}

fn device_events(events: &[NewEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::DeviceLog(_) | EventKind::DeviceTrap(_)))
        .count()
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (needs bsdutils' logger and Debian's snmp)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn logger(to: SocketAddr, args: &[&str]) {
    run(Command::new("logger")
        .args(["-n", &to.ip().to_string(), "-P", &to.port().to_string()])
        .args(args));
}

fn snmptrap(to: SocketAddr, args: &[&str]) {
    run(Command::new("snmptrap")
        .env("MIBS", "")
        .args(["-m", ""])
        .args(&args[..4])
        .arg(to.to_string())
        .args(&args[4..]));
}

/// The datagram `snmptrap` sends (caught on a socket of this test), to send again from
/// another loopback address than the one snmptrap uses.
fn snmptrap_bytes(args: &[&str]) -> Vec<u8> {
    let catch = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    catch.set_read_timeout(Some(WAIT)).unwrap();
    snmptrap(catch.local_addr().unwrap(), args);
    let mut buf = vec![0u8; 65536];
    let n = catch.recv(&mut buf).expect("snmptrap sent nothing");
    buf.truncate(n);
    buf
}

const V2C_TRAP: [&str; 9] = [
    "-v",
    "2c",
    "-c",
    "public",
    "",
    "1.3.6.1.4.1.8072.2.3.0.1",
    "1.3.6.1.2.1.1.5.0",
    "s",
    "printer-3f",
];

async fn tcp_from(src: &str, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(src.parse().unwrap(), 0)).unwrap();
    s.connect(to).await.unwrap()
}

async fn udp_from(src: &str) -> UdpSocket {
    UdpSocket::bind(SocketAddr::new(src.parse().unwrap(), 0))
        .await
        .unwrap()
}

/// Reads until the server closes the connection (EOF or reset); panics if it stays open.
async fn closed_by_server(s: &mut TcpStream) {
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
            Err(_) => panic!("the server kept the connection open"),
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn logger_and_snmptrap_from_a_listed_device_arrive_as_its_events() {
    let mut n = node(AggregatorOptions {
        devices: vec![device("printer-3f", "127.0.0.1")],
        ..AggregatorOptions::default()
    })
    .await;
    let to = n.syslog;
    logger(
        to,
        &[
            "-d",
            "--rfc3164",
            "-t",
            "cam01",
            "-p",
            "daemon.warning",
            "paper jam",
        ],
    );
    logger(to, &["-d", "-t", "cam01", "toner low"]);
    logger(to, &["-T", "-t", "httpd", "admin login from 10.0.0.9"]);
    logger(
        to,
        &[
            "-T",
            "--octet-count",
            "--rfc3164",
            "-t",
            "kernel",
            "eth0 link up",
        ],
    );
    let mut logs = n.take(4, log_of).await;
    logs.sort_by(|a, b| a.message.cmp(&b.message));
    let got: Vec<(&str, &str, &str, Option<&str>, &str)> = logs
        .iter()
        .map(|l| {
            (
                l.device.as_str(),
                l.transport.as_str(),
                l.format.as_str(),
                l.app.as_deref(),
                l.message.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "printer-3f",
                "tcp",
                "rfc5424",
                Some("httpd"),
                "admin login from 10.0.0.9"
            ),
            (
                "printer-3f",
                "tcp",
                "rfc3164",
                Some("kernel"),
                "eth0 link up"
            ),
            ("printer-3f", "udp", "rfc3164", Some("cam01"), "paper jam"),
            ("printer-3f", "udp", "rfc5424", Some("cam01"), "toner low"),
        ]
    );
    let jam = &logs[2];
    assert_eq!((jam.facility, jam.severity), (3, 4), "daemon.warning");
    assert!(!jam.truncated);

    snmptrap(n.traps, &V2C_TRAP);
    snmptrap(
        n.traps,
        &[
            "-v",
            "1",
            "-c",
            "public",
            "1.3.6.1.4.1.11.2.3.9.1",
            "127.0.0.1",
            "2",
            "0",
            "",
            "1.3.6.1.2.1.2.2.1.1.3",
            "i",
            "3",
        ],
    );
    // An inform (`snmptrap -Ci`, one try): snmptrap succeeds only if it gets its Response
    // (run without blocking this thread, which also runs the service).
    let out = tokio::process::Command::new("snmptrap")
        .env("MIBS", "")
        .args([
            "-m", "", "-v", "2c", "-c", "public", "-Ci", "-r", "0", "-t", "10",
        ])
        .arg(n.traps.to_string())
        .args(["", "1.3.6.1.6.3.1.1.5.4"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "the inform got no response: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut traps = n.take(3, trap_of).await;
    traps.sort_by_key(|t| (t.version, t.inform));
    let inform = traps.pop().unwrap();
    assert!(
        inform.inform && inform.trap_oid == "1.3.6.1.6.3.1.1.5.4",
        "{inform:?}"
    );
    assert_eq!(traps[0].device, "printer-3f");
    assert_eq!(traps[0].version, 1);
    assert_eq!(traps[0].trap_oid, "1.3.6.1.6.3.1.1.5.3", "linkDown");
    assert_eq!(traps[0].agent_addr, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(traps[1].version, 2);
    assert_eq!(traps[1].trap_oid, "1.3.6.1.4.1.8072.2.3.0.1");
    assert!(
        traps[1]
            .varbinds
            .contains(&("1.3.6.1.2.1.1.5.0".into(), "printer-3f".into())),
        "{:?}",
        traps[1].varbinds
    );
    let rest = n.stop().await;
    assert!(limits(&rest, "unlisted_sender").is_empty());
}

#[tokio::test]
async fn an_unlisted_sender_is_refused_and_counted_not_reported_per_message() {
    // Only 127.0.0.2 is listed: logger and snmptrap send from 127.0.0.1.
    let mut n = node(AggregatorOptions {
        devices: vec![device("nas01", "127.0.0.2")],
        ..AggregatorOptions::default()
    })
    .await;
    for i in 0..3 {
        logger(n.syslog, &["-d", "-t", "x", &format!("spoofed {i}")]);
    }
    snmptrap(n.traps, &V2C_TRAP);
    let mut c = tcp_from("127.0.0.3", n.syslog).await;
    let _ = c.write_all(b"<13>never read\n").await;
    closed_by_server(&mut c).await;
    // The listed device still gets through, after all of that (and, each socket being
    // read in order, everything sent before it has been refused by then).
    let u = udp_from("127.0.0.2").await;
    u.send_to(b"<14>nas01 smartd: ok", n.syslog).await.unwrap();
    u.send_to(&snmptrap_bytes(&V2C_TRAP), n.traps)
        .await
        .unwrap();
    let got = n.take(1, log_of).await;
    assert_eq!(
        (got[0].device.as_str(), got[0].message.as_str()),
        ("nas01", "nas01 smartd: ok")
    );
    let got = n.take(1, trap_of).await;
    assert_eq!(got[0].device, "nas01");
    let rest = n.stop().await;
    assert_eq!(device_events(&rest), 0, "{rest:?}");
    let unlisted = limits(&rest, "unlisted_sender");
    assert_eq!(unlisted.len(), 1, "one counted report: {rest:?}");
    assert!(
        unlisted[0].starts_with(
            "refused 4 datagrams and 1 connections from 2 senders not listed as devices (127.0.0.1, 127.0.0.3)"
        ),
        "{}",
        unlisted[0]
    );
}

#[tokio::test]
async fn oversized_datagrams_and_endless_lines_are_cut_not_buffered() {
    let mut n = node(AggregatorOptions {
        devices: vec![device("cam", "127.0.0.1")],
        ..AggregatorOptions::default()
    })
    .await;
    // A 60 000-byte datagram: kept up to the cap, marked truncated.
    let u = udp_from("127.0.0.1").await;
    let mut big = b"<13>".to_vec();
    big.extend(vec![b'A'; 60_000]);
    u.send_to(&big, n.syslog).await.unwrap();
    let l = &n.take(1, log_of).await[0];
    assert!(
        l.truncated && l.message.len() <= MAX_FIELD_LEN,
        "{}",
        l.message.len()
    );
    // A line that never ends (2 MB), then a normal one on the same connection.
    let mut c = tcp_from("127.0.0.1", n.syslog).await;
    c.write_all(b"<13>").await.unwrap();
    let chunk = vec![b'B'; 64 * 1024];
    for _ in 0..32 {
        c.write_all(&chunk).await.unwrap();
    }
    c.write_all(b"\n<13>after the flood\n").await.unwrap();
    let ls = n.take(2, log_of).await;
    assert!(ls[0].truncated && ls[0].message.len() <= MAX_FIELD_LEN);
    assert_eq!(
        (ls[1].message.as_str(), ls[1].truncated),
        ("after the flood", false)
    );
    // An octet-counted frame of the full 1 MiB: cut, skipped as it arrives, then the next.
    let mut c2 = tcp_from("127.0.0.1", n.syslog).await;
    c2.write_all(format!("{} <13>", 1 << 20).as_bytes())
        .await
        .unwrap();
    let body = vec![b'C'; (1 << 20) - 4];
    c2.write_all(&body).await.unwrap();
    c2.write_all(b"11 <13>counted").await.unwrap();
    let ls = n.take(2, log_of).await;
    assert!(ls[0].truncated);
    assert_eq!(ls[1].message, "counted");
    // An octet count over 1 MiB, and one that is not a number: the connection ends.
    for bad in [&b"99999999 <13>x"[..], b"12a <13>x", b"2000000 <13>x"] {
        let mut c = tcp_from("127.0.0.1", n.syslog).await;
        c.write_all(bad).await.unwrap();
        closed_by_server(&mut c).await;
    }
    // Trap datagrams that are not traps, and one too large to read whole.
    let t = udp_from("127.0.0.1").await;
    t.send_to(b"\x30\x03\x02\x01\x03", n.traps).await.unwrap();
    t.send_to(&vec![0x30; 20_000], n.traps).await.unwrap();
    // A real trap after them: once it is in, they have been read.
    t.send_to(&snmptrap_bytes(&V2C_TRAP), n.traps)
        .await
        .unwrap();
    assert_eq!(n.take(1, trap_of).await[0].device, "cam");
    drop((c, c2));
    let rest = n.stop().await;
    let tcp = limits(&rest, "aggregator_tcp");
    assert!(
        tcp.iter()
            .any(|d| d.starts_with("3 connections closed: a bad octet count")),
        "{rest:?}"
    );
    let input = limits(&rest, "aggregator_input");
    assert!(
        input
            .iter()
            .any(|d| d.starts_with("2 datagrams on the trap port were not SNMPv1/v2c traps")),
        "{rest:?}"
    );
}

#[tokio::test]
async fn connections_over_the_caps_are_refused_and_counted() {
    let mut n = node(AggregatorOptions {
        devices: vec![device("a", "127.0.0.1"), device("b", "127.0.0.2")],
        max_tcp_connections: 3,
        max_tcp_per_device: 2,
        ..AggregatorOptions::default()
    })
    .await;
    // Two from a: held (each line arrives).
    let mut held = Vec::new();
    for i in 0..2 {
        let mut c = tcp_from("127.0.0.1", n.syslog).await;
        c.write_all(format!("<13>a{i}\n").as_bytes()).await.unwrap();
        held.push(c);
    }
    assert_eq!(n.take(2, log_of).await.len(), 2);
    // A third from a: over its per-device cap.
    let mut c = tcp_from("127.0.0.1", n.syslog).await;
    closed_by_server(&mut c).await;
    // One from b fills the total; a second from b is over it.
    let mut b1 = tcp_from("127.0.0.2", n.syslog).await;
    b1.write_all(b"<13>b0\n").await.unwrap();
    assert_eq!(n.take(1, log_of).await[0].device, "b");
    let mut b2 = tcp_from("127.0.0.2", n.syslog).await;
    closed_by_server(&mut b2).await;
    // The held ones still work.
    held[1].write_all(b"<13>still here\n").await.unwrap();
    assert_eq!(n.take(1, log_of).await[0].message, "still here");
    drop((held, b1));
    let rest = n.stop().await;
    let tcp = limits(&rest, "aggregator_tcp");
    assert!(
        tcp.iter().any(|d| d.starts_with(
            "1 connections refused over max_tcp_connections (3), 1 over max_tcp_per_device (2)"
        )),
        "{rest:?}"
    );
}

#[tokio::test]
async fn an_idle_connection_is_closed_and_its_slot_freed() {
    let mut n = node(AggregatorOptions {
        devices: vec![device("a", "127.0.0.1")],
        max_tcp_per_device: 1,
        tcp_idle_s: 1,
        ..AggregatorOptions::default()
    })
    .await;
    let mut c = tcp_from("127.0.0.1", n.syslog).await;
    c.write_all(b"<13>hello\n").await.unwrap();
    assert_eq!(n.take(1, log_of).await[0].message, "hello");
    // Silent past tcp_idle_s: closed by the server.
    closed_by_server(&mut c).await;
    // Its one slot is free again.
    let mut again = tcp_from("127.0.0.1", n.syslog).await;
    again.write_all(b"<13>back\n").await.unwrap();
    assert_eq!(n.take(1, log_of).await[0].message, "back");
    drop(again);
    let rest = n.stop().await;
    assert!(limits(&rest, "aggregator_tcp").is_empty(), "{rest:?}");
}

/// The number a report's detail starts with (`20 messages …`, `a: 20 messages …`).
fn counted(detail: &str) -> u64 {
    let d = if detail.starts_with(|c: char| c.is_ascii_digit()) {
        detail
    } else {
        detail.split_once(": ").unwrap().1
    };
    d.split(' ').next().unwrap().parse().unwrap()
}

/// The buckets refill continuously (10 a minute: one every 6 s), so a slow machine may let
/// a message or two more through: what is asserted is that every message is either
/// reported or counted, and that the flood was mostly counted.
#[tokio::test]
async fn a_flood_over_the_rate_is_counted_not_reported() {
    let mut n = node(AggregatorOptions {
        devices: vec![device("a", "127.0.0.1"), device("b", "127.0.0.2")],
        max_events_per_minute: 10,
        max_events_per_minute_total: 15,
        ..AggregatorOptions::default()
    })
    .await;
    // 30 lines from a: 10 pass its own cap, the rest are counted.
    let mut a = tcp_from("127.0.0.1", n.syslog).await;
    let lines: String = (0..30).map(|i| format!("<13>a{i}\n")).collect();
    a.write_all(lines.as_bytes()).await.unwrap();
    let mut from_a = n.take(10, log_of).await.len() as u64;
    // 10 lines from b: within its own cap, but only 5 fit the total.
    let mut b = tcp_from("127.0.0.2", n.syslog).await;
    let lines: String = (0..10).map(|i| format!("<13>b{i}\n")).collect();
    b.write_all(lines.as_bytes()).await.unwrap();
    let got = n.take(5, log_of).await;
    assert!(got.iter().all(|l| l.device == "b"));
    let mut from_b = 5u64;
    // Each stream came in one read, and its lines are taken or counted in one go on the
    // test's single thread: by now every one of them is. End the streams and stop.
    drop((a, b));
    let rest = n.stop().await;
    for e in &rest {
        if let Some(l) = log_of(e) {
            if l.device == "a" {
                from_a += 1
            } else {
                from_b += 1
            }
        }
    }
    let rate = limits(&rest, "device_rate");
    let over_a: u64 = rate
        .iter()
        .filter(|d| d.starts_with("a: "))
        .map(|d| counted(d))
        .sum();
    let over_total: u64 = rate
        .iter()
        .filter(|d| d.contains("over max_events_per_minute_total (15)"))
        .map(|d| counted(d))
        .sum();
    assert!(
        rate.iter()
            .any(|d| d.ends_with("over max_events_per_minute (10)")),
        "{rate:?}"
    );
    assert_eq!(from_a + over_a, 30, "{rate:?}");
    assert!(over_a >= 15, "the flood was counted: {rate:?}");
    assert_eq!(from_b + over_total, 10, "{rate:?}");
}
