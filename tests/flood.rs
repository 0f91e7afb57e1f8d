//! Safety under a connection flood: 2,000 concurrent connections from 100 loopback source
//! addresses against a real agent's SSH honeypot. The node-wide caps refuse what is over
//! them (and say so once per interval as `limit_reached` events), memory stays bounded,
//! and the service answers normally afterwards. The RSS figures are printed for
//! BENCHMARKS.md; the test only checks a generous bound, never a timing.

mod common;
use common::*;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncReadExt;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Opens one connection from `src` and keeps it, silent, like a slowloris client.
async fn hold(src: std::net::IpAddr, dst: SocketAddr) -> Option<tokio::net::TcpStream> {
    let sock = tokio::net::TcpSocket::new_v4().ok()?;
    sock.bind(SocketAddr::new(src, 0)).ok()?;
    tokio::time::timeout(Duration::from_secs(20), sock.connect(dst))
        .await
        .ok()?
        .ok()
}

#[test]
fn two_thousand_connections_leave_the_agent_serving_with_bounded_memory() {
    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let agent = dep.start_agent("flooded");
    let port = dep.service_port("flooded", "ssh");
    let dst = SocketAddr::from(([127, 0, 0, 1], port));
    let pid = agent.child.id();
    // Let start-up allocations settle before the baseline.
    std::thread::sleep(Duration::from_secs(2));
    let before = rss_kib(pid);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (opened, during) = rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..2000u32 {
            let src = std::net::IpAddr::from([127, 0, 1, 1 + (i % 100) as u8]);
            tasks.spawn(hold(src, dst));
        }
        let mut held = Vec::new();
        while let Some(r) = tasks.join_next().await {
            if let Ok(Some(s)) = r {
                held.push(s);
            }
        }
        // The agent has accepted and sorted them all by now; give it a moment to settle.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let during = rss_kib(pid);
        let opened = held.len();
        drop(held);
        (opened, during)
    });
    assert!(
        opened >= 1000,
        "the kernel accepted only {opened} connections"
    );

    // Still serving: a new client gets the OpenSSH identification line.
    let banner = rt.block_on(async {
        let mut s = wait_for_async(dst).await;
        let mut buf = vec![0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf))
            .await
            .expect("banner in time")
            .expect("read banner");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    assert!(banner.starts_with("SSH-2.0-OpenSSH_"), "{banner:?}");
    std::thread::sleep(Duration::from_secs(3));
    let after = rss_kib(pid);
    println!(
        "flood figures: agent RSS before {before} KiB, during 2000 connections {during} KiB, after {after} KiB ({opened} connections opened)"
    );
    // Bounded: at most 1,024 sessions live at once, each a few KiB of buffers.
    assert!(
        during < before + 192 * 1024,
        "RSS grew from {before} KiB to {during} KiB under the flood"
    );

    // The caps said what they refused: the total cap, once per interval, not per connection.
    let limits = wait_for("limit_reached events", Duration::from_secs(30), || {
        let ev = dep.events(&["--kind", "limit_reached", "--node", "flooded"]);
        (!ev.is_empty()).then_some(ev)
    });
    assert!(
        limits
            .iter()
            .any(|e| e["honeybee"]["limit"] == "sessions_total"),
        "{limits:#?}"
    );
    assert!(
        limits.len() < 200,
        "refusals are reported per interval, not per connection: {} events",
        limits.len()
    );
    drop(agent);
}

/// Connects with retries: right after the flood the accept queue may still be draining.
async fn wait_for_async(dst: SocketAddr) -> tokio::net::TcpStream {
    for _ in 0..100 {
        if let Ok(s) = tokio::net::TcpStream::connect(dst).await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the SSH honeypot no longer accepts connections");
}
