//! Banner service over real sockets: greeting, capture, truncation at the cap, deadline.

use honeybee_agent::services::{Limits, ServiceManager};
use honeybee_agent::sink::{EventSink, NewEvent};
use honeybee_proto::config::{BannerOptions, NodeConfig, ServiceConfig, ServiceKind};
use honeybee_proto::event::EventKind;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

fn banner_config(banner: &str, max_capture_bytes: u32, read_timeout_ms: u32) -> NodeConfig {
    NodeConfig {
        services: vec![ServiceConfig {
            name: "smtp".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            enabled: true,
            kind: ServiceKind::Banner(BannerOptions {
                banner: banner.into(),
                max_capture_bytes,
                read_timeout_ms,
            }),
        }],
    }
}

async fn start(config: &NodeConfig) -> (ServiceManager, mpsc::Receiver<NewEvent>, SocketAddr) {
    let (sink, rx) = EventSink::channel(1024);
    // Only SSH keeps state in the data directory; banner services never touch it.
    let unused = std::env::temp_dir().join("honeybee-banner-test-unused");
    let mut mgr = ServiceManager::new(sink, unused, Limits::default());
    mgr.apply(config).await;
    let st = mgr.status();
    assert_eq!(st.len(), 1);
    assert!(st[0].running, "{st:?}");
    assert_eq!(st[0].error, None);
    let addr: SocketAddr = st[0].listen.parse().unwrap();
    assert_ne!(addr.port(), 0, "status must show the bound port");
    (mgr, rx, addr)
}

/// Events of one session, from its Connect to its Disconnect.
async fn session_events(rx: &mut mpsc::Receiver<NewEvent>) -> Vec<NewEvent> {
    let mut out = Vec::new();
    loop {
        let e = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("event in time")
            .expect("sink open");
        let end = matches!(e.kind, EventKind::Disconnect { .. });
        out.push(e);
        if end {
            return out;
        }
    }
}

async fn read_to_eof(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("server closes in time")
        .unwrap();
    buf
}

#[tokio::test]
async fn banner_sent_and_input_recorded() {
    let banner = "220 mail.example.com ESMTP Postfix (Debian/GNU)\r\n";
    let (mut mgr, mut rx, addr) = start(&banner_config(banner, 64, 5_000)).await;

    let mut c = TcpStream::connect(addr).await.unwrap();
    let client_addr = c.local_addr().unwrap();
    let mut got = vec![0u8; banner.len()];
    tokio::time::timeout(WAIT, c.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, banner.as_bytes());
    c.write_all(b"EHLO x\r\n").await.unwrap();
    c.shutdown().await.unwrap();
    assert!(read_to_eof(&mut c).await.is_empty());

    let ev = session_events(&mut rx).await;
    assert_eq!(ev.len(), 3, "{ev:?}");
    assert_eq!(ev[0].kind, EventKind::Connect);
    assert_eq!(
        ev[1].kind,
        EventKind::Data {
            bytes: b"EHLO x\r\n".to_vec(),
            truncated: false
        }
    );
    match ev[2].kind {
        EventKind::Disconnect {
            bytes_in,
            bytes_out,
            ..
        } => {
            assert_eq!(bytes_in, 8);
            assert_eq!(bytes_out, banner.len() as u64);
        }
        ref k => panic!("{k:?}"),
    }
    let sid = ev[0].session.expect("session id");
    for e in &ev {
        assert_eq!(e.session, Some(sid));
        assert_eq!(e.service, "smtp");
        assert_eq!(e.src, Some(client_addr));
        assert_eq!(e.dst, Some(addr));
    }
    mgr.shutdown().await;
}

#[tokio::test]
async fn capture_is_truncated_at_the_cap() {
    // A read deadline far beyond WAIT: if the connection ends within WAIT, it was the cap.
    let (mut mgr, mut rx, addr) = start(&banner_config("", 16, 600_000)).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let payload: Vec<u8> = (0..200u8).collect();
    c.write_all(&payload).await.unwrap();
    // The server stops reading at the cap and closes without waiting for the deadline.
    let _ = tokio::time::timeout(WAIT, c.read(&mut [0u8; 16]))
        .await
        .expect("the connection stays open past the capture cap");

    let ev = session_events(&mut rx).await;
    let data: Vec<_> = ev
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Data { bytes, truncated } => Some((bytes.clone(), *truncated)),
            _ => None,
        })
        .collect();
    assert_eq!(data, vec![(payload[..16].to_vec(), true)]);
    mgr.shutdown().await;
}

#[tokio::test]
async fn silent_peer_is_closed_at_the_deadline() {
    let (mut mgr, mut rx, addr) = start(&banner_config("hi\r\n", 64, 300)).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_to_eof(&mut c).await, b"hi\r\n");

    let ev = session_events(&mut rx).await;
    let kinds: Vec<_> = ev.iter().map(|e| e.kind.name()).collect();
    assert_eq!(kinds, ["connect", "disconnect"]);
    match ev[1].kind {
        EventKind::Disconnect {
            duration_ms,
            bytes_in,
            bytes_out,
        } => {
            assert!(duration_ms >= 250, "closed after {duration_ms} ms");
            assert_eq!((bytes_in, bytes_out), (0, 4));
        }
        ref k => panic!("{k:?}"),
    }
    mgr.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_sessions_and_emits_disconnect() {
    let (mut mgr, mut rx, addr) = start(&banner_config("", 64, 60_000)).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"partial").await.unwrap();
    let first = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.kind, EventKind::Connect);
    // Wait until the bytes have been read by the service.
    tokio::time::sleep(Duration::from_millis(100)).await;

    // The session's read deadline is 60 s; shutdown must not wait for it.
    tokio::time::timeout(WAIT, mgr.shutdown())
        .await
        .expect("shutdown waited for the session's deadline");

    let rest = session_events(&mut rx).await;
    let kinds: Vec<_> = rest.iter().map(|e| e.kind.name()).collect();
    assert_eq!(kinds, ["data", "disconnect"]);
    assert!(read_to_eof(&mut c).await.is_empty());
    assert!(TcpStream::connect(addr).await.is_err(), "port still open");
}
