//! ServiceManager over real sockets: converging to a new config, bind failures, caps.

use honeybee_agent::services::{Limits, ServiceManager};
use honeybee_agent::sink::{EventSink, NewEvent};
use honeybee_proto::config::{BannerOptions, NodeConfig, ServiceConfig, ServiceKind};
use honeybee_proto::event::EventKind;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

fn banner(name: &str, listen: SocketAddr, read_timeout_ms: u32) -> ServiceConfig {
    ServiceConfig {
        name: name.into(),
        listen,
        enabled: true,
        kind: ServiceKind::Banner(BannerOptions {
            banner: format!("{name}\r\n"),
            max_capture_bytes: 64,
            read_timeout_ms,
        }),
    }
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn manager(limits: Limits) -> (ServiceManager, mpsc::Receiver<NewEvent>) {
    let (sink, rx) = EventSink::channel(4096);
    // Only SSH keeps state in the data directory; these tests run banner services.
    let unused = std::env::temp_dir().join("honeybee-manager-test-unused");
    (ServiceManager::new(sink, unused, limits), rx)
}

fn listen_of(mgr: &ServiceManager, name: &str) -> SocketAddr {
    mgr.status()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap()
        .listen
        .parse()
        .unwrap()
}

/// A port that was free a moment ago.
fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn greeting(addr: SocketAddr) -> String {
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(WAIT, c.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn drain(rx: &mut mpsc::Receiver<NewEvent>) -> Vec<NewEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

#[tokio::test]
async fn apply_restarts_changed_and_stops_disabled() {
    let (mut mgr, _rx) = manager(Limits::default());
    let mut cfg = NodeConfig {
        services: vec![banner("a", any_port(), 200), banner("b", any_port(), 200)],
    };
    mgr.apply(&cfg).await;
    let a1 = listen_of(&mgr, "a");
    let b1 = listen_of(&mgr, "b");
    assert_eq!(greeting(a1).await, "a\r\n");
    assert_eq!(greeting(b1).await, "b\r\n");

    // Re-applying the same config changes nothing.
    mgr.apply(&cfg).await;
    assert_eq!(listen_of(&mgr, "a"), a1);

    // A new port: the service moves, the old port closes, "b" is untouched.
    let new = free_port();
    cfg.services[0].listen = new;
    mgr.apply(&cfg).await;
    assert_eq!(listen_of(&mgr, "a"), new);
    assert_eq!(greeting(new).await, "a\r\n");
    assert!(TcpStream::connect(a1).await.is_err(), "old port still open");
    assert_eq!(listen_of(&mgr, "b"), b1);

    // Disabled: reported, not running, port closed.
    cfg.services[0].enabled = false;
    mgr.apply(&cfg).await;
    let st = mgr.status();
    assert_eq!(st.len(), 2);
    assert_eq!(st[0].name, "a");
    assert!(!st[0].running);
    assert_eq!(st[0].error, None);
    assert!(
        TcpStream::connect(new).await.is_err(),
        "disabled port still open"
    );

    // Removed entirely.
    cfg.services.remove(0);
    mgr.apply(&cfg).await;
    let st = mgr.status();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].name, "b");
    assert!(st[0].running);
    mgr.shutdown().await;
    assert!(TcpStream::connect(b1).await.is_err());
}

#[test]
fn manager_futures_are_send() {
    // The runtime drives the manager from spawned tasks.
    fn send<T: Send>(_: &T) {}
    let (mut mgr, _rx) = manager(Limits::default());
    let cfg = NodeConfig::default();
    send(&mgr.apply(&cfg));
    send(&mgr.shutdown());
}

#[tokio::test]
async fn bind_failure_is_reported_not_fatal() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let (mut mgr, mut rx) = manager(Limits::default());
    let cfg = NodeConfig {
        services: vec![banner("clash", addr, 200), banner("ok", any_port(), 200)],
    };
    mgr.apply(&cfg).await;
    let st = mgr.status();
    assert!(!st[0].running);
    assert!(st[0].error.as_deref().unwrap().contains(&addr.to_string()));
    assert!(st[1].running);
    let ev = drain(&mut rx);
    assert!(
        ev.iter()
            .any(|e| e.service == "clash" && matches!(e.kind, EventKind::ServiceError { .. })),
        "{ev:?}"
    );

    // Once the port is free, the next apply starts it.
    drop(taken);
    mgr.apply(&cfg).await;
    let st = mgr.status();
    assert!(st[0].running, "{st:?}");
    assert_eq!(st[0].error, None);
    mgr.shutdown().await;
}

#[tokio::test]
async fn per_source_cap_refuses_and_reports_once() {
    let limits = Limits {
        max_sessions_per_source: 2,
        ..Limits::default()
    };
    let (mut mgr, mut rx) = manager(limits);
    mgr.apply(&NodeConfig {
        services: vec![banner("cap", any_port(), 30_000)],
    })
    .await;
    let addr = listen_of(&mgr, "cap");

    // Two sessions held open: both get the greeting.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 5];
        tokio::time::timeout(WAIT, c.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        held.push(c);
    }
    // Everything past the cap is closed at once, without a greeting.
    for _ in 0..5 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        let mut buf = Vec::new();
        let r = tokio::time::timeout(WAIT, c.read_to_end(&mut buf))
            .await
            .unwrap();
        assert!(
            r.is_err() || buf.is_empty(),
            "refused connection got {buf:?}"
        );
    }
    assert_eq!(mgr.status()[0].active_sessions, 2);

    tokio::time::sleep(Duration::from_millis(100)).await;
    let ev = drain(&mut rx);
    let limits: Vec<_> = ev
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::LimitReached { limit, detail } => Some((limit.clone(), detail.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(limits.len(), 1, "rate limited to one report: {limits:?}");
    assert_eq!(limits[0].0, "sessions_per_source");
    assert!(limits[0].1.contains("127.0.0.1"));
    let connects = ev.iter().filter(|e| e.kind == EventKind::Connect).count();
    assert_eq!(connects, 2, "refused connections are not sessions");

    // A slot freed is a slot available again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(greeting(addr).await, "cap\r\n");
    mgr.shutdown().await;
}

#[tokio::test]
async fn total_cap_applies_across_services() {
    let limits = Limits {
        max_sessions_total: 1,
        ..Limits::default()
    };
    let (mut mgr, mut rx) = manager(limits);
    mgr.apply(&NodeConfig {
        services: vec![
            banner("x", any_port(), 30_000),
            banner("y", any_port(), 30_000),
        ],
    })
    .await;
    let mut held = TcpStream::connect(listen_of(&mgr, "x")).await.unwrap();
    let mut buf = [0u8; 3];
    held.read_exact(&mut buf).await.unwrap();

    let mut c = TcpStream::connect(listen_of(&mgr, "y")).await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, c.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(rest.is_empty());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ev = drain(&mut rx);
    assert!(ev.iter().any(|e| e.service == "y"
        && matches!(&e.kind, EventKind::LimitReached { limit, .. } if limit == "sessions_total")));
    mgr.shutdown().await;
}

#[tokio::test]
async fn session_timeout_is_a_hard_deadline() {
    let limits = Limits {
        session_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let (mut mgr, mut rx) = manager(limits);
    mgr.apply(&NodeConfig {
        services: vec![banner("slow", any_port(), 60_000)],
    })
    .await;
    let mut c = TcpStream::connect(listen_of(&mgr, "slow")).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(WAIT, c.read_to_end(&mut buf))
        .await
        .expect("closed by the session deadline");
    let mut kinds = Vec::new();
    while kinds.last() != Some(&"disconnect") {
        let e = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
        kinds.push(e.kind.name());
    }
    assert_eq!(kinds, ["connect", "disconnect"]);
    mgr.shutdown().await;
}
