//! Cross-node scan correlation end to end: one source touching the honeypots of three real
//! nodes within the window becomes exactly one network-wide `scan_detected` event (node
//! `core`, service `correlator`) listing the nodes and ports; a source that touches only two
//! nodes does not. Loopback only: the second source is 127.0.0.2.

mod common;
use common::*;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

/// Connects from `src` to `dst`, sends a line, closes.
async fn probe(src: &str, dst: SocketAddr) {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{src}:0").parse().unwrap()).unwrap();
    let mut s = sock.connect(dst).await.expect("connect to the honeypot");
    use tokio::io::AsyncWriteExt;
    let _ = s.write_all(b"probe\r\n").await;
}

#[test]
fn one_source_across_three_nodes_is_one_network_scan() {
    let mut dep = Deployment::init(|t| {
        assert!(
            t.contains("window_ms = 60000"),
            "core init writes the default:\n{t}"
        );
        t.replace("window_ms = 60000", "window_ms = 2000")
    });
    dep.start_core();
    let nodes = ["sensor-a", "sensor-b", "sensor-c"];
    let _agents: Vec<Proc> = nodes.iter().map(|n| dep.start_agent(n)).collect();
    let targets: Vec<SocketAddr> = nodes
        .iter()
        .map(|n| SocketAddr::from(([127, 0, 0, 1], dep.service_port(n, "banner"))))
        .collect();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for t in &targets {
            probe("127.0.0.1", *t).await;
        }
        // Only two nodes from this one: below the threshold of three.
        for t in &targets[..2] {
            probe("127.0.0.2", *t).await;
        }
    });

    let scans: Vec<Value> = wait_for("the network scan event", Duration::from_secs(60), || {
        let scans: Vec<Value> = dep
            .events(&["--kind", "scan_detected"])
            .into_iter()
            .filter(|e| e["observer"]["name"] == "core")
            .collect();
        (!scans.is_empty()).then_some(scans)
    });
    let e = &scans[0];
    assert_eq!(e["service"]["name"], "correlator");
    assert_eq!(e["source"]["ip"], "127.0.0.1");
    let scan = &e["honeybee"]["scan"];
    assert_eq!(scan["scope"], "network");
    let listed: Vec<&str> = scan["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(listed, nodes);
    let mut ports: Vec<u64> = targets.iter().map(|t| u64::from(t.port())).collect();
    ports.sort();
    ports.dedup();
    let got: Vec<u64> = scan["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    assert_eq!(got, ports);
    assert_eq!(scan["count"], 3);
    assert_eq!(scan["distinct_nodes"], 3);

    // Give the second source's would-be sweep a full quiet window: still exactly one scan.
    std::thread::sleep(Duration::from_secs(4));
    let scans: Vec<Value> = dep
        .events(&["--kind", "scan_detected"])
        .into_iter()
        .filter(|e| e["observer"]["name"] == "core")
        .collect();
    assert_eq!(scans.len(), 1, "{scans:#?}");
    let line = ok(&["events", "--data-dir", &dep.d(), "--kind", "scan_detected"]);
    assert!(line.contains("network scan of 3 nodes"), "{line}");
}

// ---- the same tests on a PostgreSQL store (`common::on_postgres`: same body, a
// database of its own on this test binary's PostgreSQL server)

#[test]
fn one_source_across_three_nodes_is_one_network_scan_on_postgres() {
    on_postgres(one_source_across_three_nodes_is_one_network_scan);
}
