//! The module bus across cores (issue 18): two `honeybee core run` processes on one real
//! PostgreSQL; modules on core B, over its TCP shim, receive the events ingested by core
//! A's agents and by B's own, each once, in per-node order, and a full queue there gets
//! `missed` notices as on one core.

mod common;

use common::cluster::CoreB;
use common::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A module over the TCP shim, speaking the frames by hand.
struct Shim(TcpStream);

impl Shim {
    /// Connects, says hello with `cred` and subscribes to `command` events.
    fn subscribe(addr: SocketAddr, name: &str, cred: &str) -> Shim {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut m = Shim(s);
        m.send(&json!({"type": "hello", "name": name, "version": "t", "protocol": 1, "credential": cred}));
        let w = m.recv().expect("an answer to hello");
        assert_eq!(w["type"], "welcome", "{w}");
        m.send(&json!({"type": "subscribe", "id": 1, "filter": {"kinds": ["command"]}}));
        let r = m.recv().expect("an answer to subscribe");
        assert_eq!(r["type"], "result", "{r}");
        m
    }

    fn send(&mut self, v: &Value) {
        let body = serde_json::to_vec(v).unwrap();
        self.0
            .write_all(&(body.len() as u32).to_be_bytes())
            .unwrap();
        self.0.write_all(&body).unwrap();
    }

    fn recv(&mut self) -> Option<Value> {
        let mut len = [0u8; 4];
        self.0.read_exact(&mut len).ok()?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.0.read_exact(&mut body).ok()?;
        serde_json::from_slice(&body).ok()
    }
}

/// What a module saw: per node, its (seq, command line) in arrival order, and how many
/// events it was told it missed.
#[derive(Debug, Default)]
struct Seen {
    by_node: HashMap<String, Vec<(u64, String)>>,
    missed: usize,
}

impl Seen {
    fn total(&self) -> usize {
        self.by_node.values().map(Vec::len).sum()
    }
}

/// Reads `m` on a thread until `want` events were seen or told missed (or 240 s).
fn collect(mut m: Shim, want: usize) -> std::thread::JoinHandle<Seen> {
    std::thread::spawn(move || {
        let mut seen = Seen::default();
        let deadline = Instant::now() + Duration::from_secs(240);
        while seen.total() + seen.missed < want && Instant::now() < deadline {
            match m.recv() {
                Some(v) if v["type"] == "event" => {
                    let e = &v["event"];
                    let node = e["observer"]["name"]
                        .as_str()
                        .or_else(|| e["honeybee"]["node"].as_str())
                        .unwrap_or_else(|| panic!("an event names its node: {v}"))
                        .to_owned();
                    let seq = e["event"]["sequence"]
                        .as_u64()
                        .or_else(|| e["honeybee"]["seq"].as_u64())
                        .unwrap_or_else(|| panic!("an event has its seq: {v}"));
                    let line = e["process"]["command_line"].as_str().unwrap().to_owned();
                    seen.by_node.entry(node).or_default().push((seq, line));
                }
                Some(v) if v["type"] == "missed" => {
                    seen.missed += v["count"].as_u64().unwrap() as usize;
                }
                Some(_) => {}
                None => break,
            }
        }
        seen
    })
}

/// Enrols an in-process agent `name` (no services: it only emits what the test tells
/// it) connected to the core at `port`.
async fn agent(dep: &Deployment, name: &str, port: u16) -> honeybee_agent::runtime::Agent {
    use honeybee_agent::runtime::{Agent, AgentOptions};
    let token = tokio::task::block_in_place(|| dep.token(name, &[]));
    let dir = dep.agent_dir(name);
    honeybee_agent::enroll::enroll(&token, &dir).await.unwrap();
    if port != dep.port {
        let cfg = dir.join("agent.toml");
        let text = std::fs::read_to_string(&cfg).unwrap().replace(
            &format!("127.0.0.1:{}", dep.port),
            &format!("127.0.0.1:{port}"),
        );
        std::fs::write(&cfg, text).unwrap();
    }
    let mut opts = AgentOptions::full(dir);
    opts.services = false;
    Agent::start(opts).await.unwrap()
}

/// `n` command events `"<name> <i>"`, i = 0..n, in order.
async fn emit(a: &honeybee_agent::runtime::Agent, name: &str, n: usize) {
    use honeybee_agent::sink::NewEvent;
    use honeybee_proto::event::EventKind;
    for i in 0..n {
        a.sink()
            .emit(NewEvent::now(
                "synthetic",
                None,
                None,
                None,
                EventKind::Command {
                    line: format!("{name} {i}"),
                },
            ))
            .await;
    }
}

/// Every node's events once and in the order it sent them (seq and mark both rising).
fn assert_once_in_order(who: &str, seen: &Seen, nodes: &[&str], n: usize) {
    assert_eq!(seen.missed, 0, "{who} missed events");
    for node in nodes {
        let got = seen.by_node.get(*node).map(Vec::as_slice).unwrap_or(&[]);
        let marks: Vec<String> = got.iter().map(|(_, l)| l.clone()).collect();
        let want: Vec<String> = (0..n).map(|i| format!("{node} {i}")).collect();
        assert_eq!(marks.len(), n, "{who}: {node}'s events, once each");
        assert_eq!(
            marks, want,
            "{who}: {node}'s events in the order it sent them"
        );
        let wrong = got.windows(2).find(|w| w[0].0 >= w[1].0);
        assert!(
            wrong.is_none(),
            "{who}: {node}'s sequence numbers rise: {wrong:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_on_core_b_gets_every_cores_events_once_in_node_order_slow() {
    const N: usize = 400;
    let (mut dep, b) = tokio::task::block_in_place(|| {
        let mut dep = on_postgres_deployment();
        dep.start_core();
        let b = CoreB::started(&dep, "core-b");
        (dep, b)
    });
    let (cred_b, cred_a) = tokio::task::block_in_place(|| {
        (
            dep.module_credential("reader-b", "events:read"),
            dep.module_credential("reader-a", "events:read"),
        )
    });
    let on_b = collect(Shim::subscribe(b.shim_addr(), "reader-b", &cred_b), 3 * N);
    let on_a = collect(Shim::subscribe(dep.shim_addr(), "reader-a", &cred_a), 3 * N);

    // a1 and a2 on A, b1 on B: B's module gets A's through the tail and b1's from B's own
    // ingest, and must not get b1's a second time from the tail.
    let a1 = agent(&dep, "a1", dep.port).await;
    let a2 = agent(&dep, "a2", dep.port).await;
    let b1 = agent(&dep, "b1", b.port).await;
    tokio::join!(emit(&a1, "a1", N), emit(&a2, "a2", N), emit(&b1, "b1", N));

    let (seen_b, seen_a) =
        tokio::task::spawn_blocking(move || (on_b.join().unwrap(), on_a.join().unwrap()))
            .await
            .unwrap();
    let nodes = ["a1", "a2", "b1"];
    assert_once_in_order("the module on B", &seen_b, &nodes, N);
    assert_once_in_order("the module on A", &seen_a, &nodes, N);
    assert_eq!(seen_b.by_node.len(), 3, "{:?}", seen_b.by_node.keys());
    // The agents really were on different cores.
    let live = |d: &str| {
        let v: Value = serde_json::from_str(&ok(&["status", "--json", "--data-dir", d])).unwrap();
        v["nodes_online"].as_u64().unwrap()
    };
    tokio::task::block_in_place(|| {
        assert_eq!(live(&dep.d()), 2);
        assert_eq!(live(&b.d()), 1, "{}", b.log());
    });
    for a in [a1, a2, b1] {
        a.stop().await.unwrap();
    }
    dep.core.take();
}

/// A module on B that never reads: its queue fills with A's events and the rest are
/// counted as missed (B's memory does not grow with them); a reading module beside it
/// gets every event or is told it missed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_module_on_core_b_misses_core_a_events_slow() {
    // Well past the shim's queue of 8192 (`modules::session::QUEUE_CAPACITY`) and what the
    // stalled module's socket buffers take before its queue stops draining.
    const N: usize = 24_000;
    let (dep, b) = tokio::task::block_in_place(|| {
        let mut dep = on_postgres_deployment();
        dep.start_core();
        let b = CoreB::started(&dep, "core-b");
        (dep, b)
    });
    let (stalled, reader) = tokio::task::block_in_place(|| {
        (
            dep.module_credential("stalled", "events:read"),
            dep.module_credential("reader", "events:read"),
        )
    });
    let stuck = Shim::subscribe(b.shim_addr(), "stalled", &stalled);
    let on_b = collect(Shim::subscribe(b.shim_addr(), "reader", &reader), N);
    let a1 = agent(&dep, "a1", dep.port).await;
    emit(&a1, "a1", N).await;
    let seen = tokio::task::spawn_blocking(move || on_b.join().unwrap())
        .await
        .unwrap();
    assert_eq!(
        seen.total() + seen.missed,
        N,
        "the reading module on B got every event of A's node or was told it missed it"
    );
    // What it got, it got in order.
    let got = &seen.by_node["a1"];
    let wrong = got.windows(2).find(|w| w[0].0 >= w[1].0);
    assert!(wrong.is_none(), "out of order: {wrong:?}");
    let bd = b.d();
    // Its queue is full and what did not fit was counted as missed, not kept.
    let list: Vec<Value> = tokio::task::block_in_place(|| {
        serde_json::from_str(&ok(&["module", "list", "--json", "--data-dir", &bd])).unwrap()
    });
    let s = list.iter().find(|m| m["name"] == "stalled").unwrap();
    println!("the stalled module on B: {s}");
    assert!(s["dropped"].as_u64().unwrap() > 0, "{s}");
    a1.stop().await.unwrap();
    drop(stuck);
}

/// A deployment on a fresh PostgreSQL database, its leases short.
fn on_postgres_deployment() -> Deployment {
    let mut dep = None;
    on_postgres(|| {
        dep = Some(Deployment::init(|t| {
            format!("{t}\n[store]\nlease_ttl = \"3s\"\n")
        }))
    });
    dep.unwrap()
}
