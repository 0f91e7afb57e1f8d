//! The operator's view and control across cores (issue 18): two `honeybee core run`
//! processes on one real PostgreSQL, set up once for the whole scenario.
//!
//! - A node connected to core A, asked about through core B (`honeybee nodes`, the admin
//!   API the dashboard uses): online, A named as its holder, its health from the store
//!   with the health's age; through A, from A's memory.
//! - `honeybee status` on B counts A's node and lists both cores with their load.
//! - The module bus tail's counters on B (`status --json`, and `/metrics`).
//! - Revoking through B a module connected to A over the TCP shim cuts it (the time is
//!   printed); a module with nothing left to revoke is a clear error.
//! - Scan correlation: real TCP connects to the honeypots of a node on A and of a node
//!   on B make exactly one `scan_detected` event listing both (one core correlates for
//!   the cluster, fed by the other's events through its tail); killed, the correlating
//!   core's role passes to the other (the time is printed).

mod common;

use common::cluster::CoreB;
use common::*;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A module over the TCP shim, speaking the frames by hand.
struct Shim(TcpStream);

impl Shim {
    /// Connects, says hello with `cred` and subscribes to every event.
    fn subscribe(addr: SocketAddr, name: &str, cred: &str) -> Shim {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut m = Shim(s);
        m.send(&json!({"type": "hello", "name": name, "version": "t", "protocol": 1, "credential": cred}));
        let w = m.recv().expect("an answer to hello");
        assert_eq!(w["type"], "welcome", "{w}");
        m.send(&json!({"type": "subscribe", "id": 1, "filter": {}}));
        let r = m.recv().expect("an answer to subscribe");
        assert_eq!(r["type"], "result", "{r}");
        m
    }

    fn send(&mut self, v: &Value) {
        self.try_send(v).unwrap();
    }

    fn try_send(&mut self, v: &Value) -> std::io::Result<()> {
        let body = serde_json::to_vec(v).unwrap();
        self.0.write_all(&(body.len() as u32).to_be_bytes())?;
        self.0.write_all(&body)
    }

    /// The next frame; `None` once the core has closed the connection.
    fn recv(&mut self) -> Option<Value> {
        let mut len = [0u8; 4];
        self.0.read_exact(&mut len).ok()?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.0.read_exact(&mut body).ok()?;
        serde_json::from_slice(&body).ok()
    }
}

/// Enrols an in-process agent `name` (no services: it only reports health and emits
/// what the test tells it) connected to core A.
async fn agent(
    dep: &Deployment,
    name: &str,
    port: u16,
    services: bool,
) -> honeybee_agent::runtime::Agent {
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
    opts.services = services;
    Agent::start(opts).await.unwrap()
}

/// Connects from 127.0.0.1 to a honeypot, sends a line, closes.
async fn probe(dst: SocketAddr) {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(dst)
        .await
        .expect("connect to the honeypot");
    let _ = s.write_all(b"probe\r\n").await;
}

async fn emit(a: &honeybee_agent::runtime::Agent, n: usize) {
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
                    line: format!("ops {i}"),
                },
            ))
            .await;
    }
}

/// Pings and reads (past any events) until the answer; false if the connection ends.
fn answers_ping(m: &mut Shim) -> bool {
    if m.try_send(&json!({"type": "ping", "id": 9})).is_err() {
        return false;
    }
    while let Some(v) = m.recv() {
        if v["type"] == "result" && v["id"] == 9 {
            return true;
        }
    }
    false
}

/// Sends `payload` on the cluster channel with `psql`, as the cores' database user:
/// what anyone holding that user could forge.
fn forge_notice(dep: &Deployment, payload: &str) -> bool {
    let toml = std::fs::read_to_string(dep.core_dir().join("core.toml")).unwrap();
    let url = toml
        .lines()
        .find_map(|l| l.strip_prefix("url = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("core.toml names the store's url");
    let password = std::fs::read_to_string(dep.core_dir().join("store-password")).unwrap();
    std::process::Command::new("psql")
        .args([url, "-c", &format!("NOTIFY honeybee_cluster, '{payload}'")])
        .env("PGPASSWORD", password.trim())
        .status()
        .is_ok_and(|s| s.success())
}

fn json_of(args: &[&str]) -> Value {
    serde_json::from_str(&ok(args)).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn node<'a>(nodes: &'a Value, id: &str) -> Option<&'a Value> {
    nodes.as_array()?.iter().find(|n| n["id"] == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_see_and_control_across_two_cores_slow() {
    let (mut dep, mut b) = tokio::task::block_in_place(|| {
        let mut dep = None;
        on_postgres(|| {
            dep = Some(Deployment::init(|t| {
                assert!(t.contains("min_nodes = 3") && t.contains("window_ms = 60000"));
                // Two nodes make a network scan here, and it ends after 2 s of quiet.
                let t = t
                    .replace("min_nodes = 3", "min_nodes = 2")
                    .replace("window_ms = 60000", "window_ms = 2000");
                format!("{t}\n[store]\nlease_ttl = \"3s\"\n")
            }))
        });
        let mut dep = dep.unwrap();
        dep.start_core();
        let b = CoreB::started(&dep, "core-b");
        (dep, b)
    });
    let (ad, bd) = (dep.d(), b.d());
    let a_id = std::fs::read_to_string(dep.core_dir().join("core.id"))
        .unwrap()
        .trim()
        .to_owned();
    let (watcher, victim) = tokio::task::block_in_place(|| {
        (
            dep.module_credential("watcher", "events:read"),
            dep.module_credential("victim", "events:read"),
        )
    });
    // A reader on B (so B's tail runs) and the module to revoke on A.
    let mut on_b = Shim::subscribe(b.shim_addr(), "watcher", &watcher);
    let mut on_a = Shim::subscribe(dep.shim_addr(), "victim", &victim);

    let a1 = agent(&dep, "a1", dep.port, false).await;
    const N: usize = 50;
    emit(&a1, N).await;

    // 1. The node on A, seen through B: online, A holds it, health from the store.
    let seen_on_b = tokio::task::block_in_place(|| {
        wait_for("B to show a1's health", Duration::from_secs(30), || {
            let nodes = json_of(&["nodes", "--json", "--data-dir", &bd]);
            let n = node(&nodes, "a1")?.clone();
            (n["online"] == true && !n["health"].is_null() && n["core"] == a_id.as_str())
                .then_some(n)
        })
    });
    println!("a1 through B: {seen_on_b}");
    assert_eq!(seen_on_b["state"], "healthy", "{seen_on_b}");
    assert!(seen_on_b["health_age_ms"].as_i64().is_some(), "{seen_on_b}");
    // Through A: from A's memory, A named too.
    let seen_on_a = tokio::task::block_in_place(|| {
        let nodes = json_of(&["nodes", "--json", "--data-dir", &ad]);
        node(&nodes, "a1").unwrap().clone()
    });
    assert_eq!(seen_on_a["core"], a_id.as_str(), "{seen_on_a}");
    assert_eq!(seen_on_a["state"], "healthy", "{seen_on_a}");
    assert!(seen_on_a["health_age_ms"].as_i64().is_some(), "{seen_on_a}");
    // The text table names A's id on B.
    let table = tokio::task::block_in_place(|| ok(&["nodes", "--data-dir", &bd]));
    assert!(table.contains(&format!("@{}", &a_id[..8])), "{table}");

    // 2. Status on B: A's node counted, both cores listed with A's load.
    let status = tokio::task::block_in_place(|| {
        wait_for(
            "A's load published with its heartbeat",
            Duration::from_secs(15),
            || {
                let s = json_of(&["status", "--json", "--data-dir", &bd]);
                let a = s["cores"]
                    .as_array()?
                    .iter()
                    .find(|c| c["id"] == a_id.as_str())?
                    .clone();
                (a["connections"].as_u64()? >= 1 && a["modules"].as_u64()? >= 1).then_some(s)
            },
        )
    });
    println!("status on B: {status}");
    assert_eq!(status["nodes_online"], 0, "none on B itself: {status}");
    assert_eq!(status["nodes_online_all_cores"], 1, "{status}");
    assert_eq!(status["cores"].as_array().unwrap().len(), 2, "{status}");
    let text = tokio::task::block_in_place(|| ok(&["status", "--data-dir", &bd]));
    assert!(text.contains(&a_id), "status lists A: {text}");
    assert!(
        text.contains("nodes 1 online of 1 (0 on this core)"),
        "{text}"
    );

    // 3. B's tail offered A's events to the watcher, and counts them.
    let mut got = 0;
    while got < N {
        let v = on_b.recv().expect("the watcher on B gets A's events");
        if v["type"] == "event" {
            got += 1;
        }
    }
    let tail = tokio::task::block_in_place(|| {
        json_of(&["status", "--json", "--data-dir", &bd])["load"]["bus_tail"].clone()
    });
    println!("B's bus tail: {tail}");
    assert!(tail["tailed"].as_u64().unwrap() >= N as u64, "{tail}");

    // 4. A forged notice (anyone with the database's user can NOTIFY) cuts nothing: A
    // re-reads the victim's grants, finds one, and keeps it.
    let forged = tokio::task::block_in_place(|| forge_notice(&dep, "module-revoked victim"));
    assert!(forged, "psql sent the forged notice");
    tokio::time::sleep(Duration::from_secs(1)).await;
    on_a = tokio::task::spawn_blocking(move || {
        assert!(answers_ping(&mut on_a), "a forged notice cut the module");
        on_a
    })
    .await
    .unwrap();

    // Revoke through B the module connected to A: A closes it.
    let t = Instant::now();
    tokio::task::block_in_place(|| ok(&["module", "revoke", "victim", "--data-dir", &bd]));
    let cut = tokio::task::spawn_blocking(move || {
        while on_a.recv().is_some() {}
        t.elapsed()
    })
    .await
    .unwrap();
    println!(
        "module on A cut {} ms after the revoke command through B",
        cut.as_millis()
    );
    assert!(
        dep.core
            .as_ref()
            .unwrap()
            .log_text()
            .contains("grants were revoked through another core"),
        "A closed it on B's notice"
    );
    // Nothing left to revoke: said so.
    let err =
        tokio::task::block_in_place(|| fails(&["module", "revoke", "victim", "--data-dir", &bd]));
    assert!(err.contains("no unrevoked credential"), "{err}");
    // The watcher on B was left alone.
    assert!(answers_ping(&mut on_b), "the watcher is still connected");

    // An enrolment token made on A and revoked through B is refused by A: tokens are
    // spent or refused in one store transaction, whichever core is asked.
    tokio::task::block_in_place(|| {
        let token = dep.token("late", &[]);
        let tokens = json_of(&["token", "list", "--json", "--data-dir", &bd]);
        let id = tokens
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "late")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        ok(&["token", "revoke", &id, "--data-dir", &bd]);
        let dir = dep.agent_dir("late");
        let err = fails(&[
            "agent",
            "enroll",
            "--token",
            &token,
            "--data-dir",
            dir.to_str().unwrap(),
        ]);
        assert!(err.contains("revoked"), "{err}");
    });

    // 5. One scan across the cores: a node with honeypots on each, probed once each.
    let sa = agent(&dep, "sa", dep.port, true).await;
    let sb = agent(&dep, "sb", b.port, true).await;
    // sb's port as A sees it: from the store's copy of the health B holds.
    let targets: Vec<SocketAddr> = tokio::task::block_in_place(|| {
        ["sa", "sb"]
            .iter()
            .map(|n| SocketAddr::from(([127, 0, 0, 1], dep.service_port(n, "banner"))))
            .collect()
    });
    for t in &targets {
        probe(*t).await;
    }
    let scans = |dep: &Deployment| -> Vec<Value> {
        dep.events(&["--kind", "scan_detected"])
            .into_iter()
            .filter(|e| e["observer"]["name"] == "core")
            .collect()
    };
    let found = tokio::task::block_in_place(|| {
        wait_for("the network scan event", Duration::from_secs(40), || {
            let s = scans(&dep);
            (!s.is_empty()).then_some(s)
        })
    });
    let scan = &found[0]["honeybee"]["scan"];
    println!("scan across the cores: {scan}");
    assert_eq!(scan["nodes"], json!(["sa", "sb"]), "{scan}");
    // A full quiet window more (2 s) and the other core's chance to have reported it too:
    // still exactly one.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let all = tokio::task::block_in_place(|| scans(&dep));
    assert_eq!(all.len(), 1, "{all:#?}");
    let reported = [dep.core.as_ref().unwrap().log_text(), b.log()]
        .iter()
        .filter(|l| l.contains("this core correlates scans for the cluster"))
        .count();
    assert_eq!(reported, 1, "one core correlates");

    for a in [a1, sa, sb] {
        a.stop().await.unwrap();
    }
    // 6. The correlating core crashes (SIGKILL): the other takes over once PostgreSQL has
    // freed the lock with the dead core's connection.
    let line = "this core correlates scans for the cluster";
    let a_led = dep.core.as_ref().unwrap().log_text().contains(line);
    let t = Instant::now();
    if a_led {
        dep.core.take();
    } else {
        b.proc.take();
    }
    tokio::task::block_in_place(|| {
        wait_for(
            "the other core to correlate",
            Duration::from_secs(20),
            || {
                let log = if a_led {
                    b.log()
                } else {
                    dep.core.as_ref().unwrap().log_text()
                };
                log.contains(line).then_some(())
            },
        )
    });
    println!(
        "correlation taken over by core {} {} ms after core {} was killed",
        if a_led { "B" } else { "A" },
        t.elapsed().as_millis(),
        if a_led { "A" } else { "B" }
    );
    dep.core.take();
}
