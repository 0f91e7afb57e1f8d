//! Extension service over real sockets: a port a real service holds is never taken, free
//! ports record connections, a connect scan becomes one `scan_detected`, and a released
//! port stays released.

use honeybee_agent::services::{Limits, ServiceManager};
use honeybee_agent::sink::{EventSink, NewEvent};
use honeybee_proto::config::{ExtensionOptions, NodeConfig, PortRange, ServiceConfig, ServiceKind};
use honeybee_proto::event::EventKind;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

fn config(start: u16, end: u16) -> NodeConfig {
    NodeConfig {
        services: vec![ServiceConfig {
            name: "ext".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            enabled: true,
            kind: ServiceKind::Extension(ExtensionOptions {
                ports: vec![PortRange { start, end }],
                banner: String::new(),
                max_capture_bytes: 64,
                read_timeout_ms: 2_000,
                recheck_s: 30,
                scan_min_ports: 5,
                scan_window_ms: 2_000,
            }),
        }],
    }
}

async fn next(rx: &mut mpsc::Receiver<NewEvent>) -> NewEvent {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("event in time")
        .expect("sink open")
}

/// Connects, sends `data`, closes the write side and reads to EOF.
async fn poke(port: u16, data: &[u8]) {
    let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    c.write_all(data).await.unwrap();
    c.shutdown().await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, c.read_to_end(&mut buf))
        .await
        .expect("server closes in time")
        .unwrap();
    assert!(buf.is_empty(), "no banner configured");
}

#[tokio::test]
async fn real_service_port_is_never_taken_and_free_ports_record() {
    // The "real service", on a port inside the extension's range.
    let real = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let p = real.local_addr().unwrap().port();
    let (start, end) = if p > 60_000 { (p - 8, p) } else { (p, p + 8) };

    let (sink, mut rx) = EventSink::channel(1024);
    let unused = std::env::temp_dir().join("honeybee-extension-test-unused");
    let mut mgr = ServiceManager::new(sink, unused, Limits::default());
    let cfg = config(start, end);
    mgr.apply(&cfg).await;
    let ports = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(v) = mgr.extension_ports("ext")
                && !v.listening.is_empty()
            {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("extension listens in time");
    assert!(ports.held.contains(&p), "{ports:?}");
    assert!(!ports.listening.contains(&p), "{ports:?}");
    let st = mgr.status();
    assert!(st[0].running, "{st:?}");
    assert!(st[0].listen.contains("held="), "{st:?}");

    // The real service still gets its connections.
    let c = TcpStream::connect(("127.0.0.1", p)).await.unwrap();
    let (s, from) = tokio::time::timeout(WAIT, real.accept())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from, c.local_addr().unwrap());
    drop((c, s));

    // A free port records connect, first bytes, disconnect.
    let free = *ports.listening.iter().next().unwrap();
    poke(free, b"GET / HTTP/1.0\r\n\r\n").await;
    let e = next(&mut rx).await;
    assert_eq!(e.kind, EventKind::Connect);
    assert_eq!(e.service, "ext");
    assert_eq!(e.dst, Some(SocketAddr::from(([127, 0, 0, 1], free))));
    let e = next(&mut rx).await;
    assert_eq!(
        e.kind,
        EventKind::Data {
            bytes: b"GET / HTTP/1.0\r\n\r\n".to_vec(),
            truncated: false
        }
    );
    assert!(matches!(
        next(&mut rx).await.kind,
        EventKind::Disconnect { .. }
    ));

    // A connect scan over the listening ports: one scan_detected listing them.
    let scanned: Vec<u16> = ports.listening.iter().copied().take(6).collect();
    assert!(
        scanned.len() >= 5,
        "need five free ports near {p}: {ports:?}"
    );
    for &port in &scanned {
        poke(port, b"").await;
    }
    let mut scans = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while scans.is_empty() && tokio::time::Instant::now() < deadline {
        let e = next(&mut rx).await;
        if let EventKind::ScanDetected { .. } = e.kind {
            scans.push(e);
        }
    }
    let mut want: Vec<u16> = scanned.clone();
    want.push(free);
    want.sort_unstable();
    want.dedup();
    match &scans[..] {
        [e] => match &e.kind {
            EventKind::ScanDetected {
                ports,
                count,
                distinct_ports,
                ..
            } => {
                // The earlier single connection joins the scan if it fell in its window.
                assert!(scanned.iter().all(|p| ports.contains(p)), "{ports:?}");
                assert!(ports.iter().all(|p| want.contains(p)), "{ports:?}");
                assert_eq!(*distinct_ports as usize, ports.len());
                assert!((scanned.len()..=scanned.len() + 1).contains(&(*count as usize)));
                assert_eq!(e.src.map(|s| s.ip()), Some([127, 0, 0, 1].into()));
            }
            _ => unreachable!(),
        },
        other => panic!("one scan event expected: {other:?}"),
    }

    // Release a port: it stops accepting, and stays released across a re-apply.
    let victim = scanned[0];
    let answer = mgr.release_port("ext", victim).await.unwrap();
    assert!(answer.contains("released"), "{answer}");
    assert!(TcpStream::connect(("127.0.0.1", victim)).await.is_err());
    mgr.apply(&cfg).await;
    let v = mgr.extension_ports("ext").unwrap();
    assert!(
        v.released.contains(&victim) && !v.listening.contains(&victim),
        "{v:?}"
    );
    assert!(mgr.release_port("ext", 1).await.is_err());
    assert!(mgr.release_port("nope", victim).await.is_err());

    mgr.shutdown().await;
    // The real service was never disturbed.
    drop(real);
}
