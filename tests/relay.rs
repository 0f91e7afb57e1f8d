//! Relays end to end: a relay agent (`agent run --mode relay`, role `relay` certificate)
//! carries a node that reaches only the relay; the node enrols and runs through it with
//! its own end-to-end mTLS session, `honeybee nodes` shows the path, and killing the relay
//! loses no event. Refusals: a token that does not name the relay, a node not assigned to
//! it (until `node assign-relay`), the relay's own and an admin certificate through the
//! relay. Real processes, real QUIC on loopback.

mod common;
use common::quic::*;
use common::*;
use honeybee_proto::stream::close;
use honeybee_proto::{Role, alpn};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// Enrols `name` with a relay token and starts it as a relay listening on `listen`.
fn start_relay(dep: &Deployment, name: &str, listen: SocketAddr) -> Proc {
    let token = dep.token(name, &["--role", "relay"]);
    let dir = dep.agent_dir(name);
    ok(&[
        "agent",
        "enroll",
        "--token",
        &token,
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    run_relay(dep, name, listen)
}

fn run_relay(dep: &Deployment, name: &str, listen: SocketAddr) -> Proc {
    let dir = dep.agent_dir(name);
    let log = dep
        .dir
        .path()
        .join(format!("relay-{name}-{}.log", rand_suffix()));
    let p = Proc::spawn(
        &[
            "agent",
            "run",
            "--mode",
            "relay",
            "--relay-listen",
            &listen.to_string(),
            "--data-dir",
            dir.to_str().unwrap(),
        ],
        &log,
    );
    wait_for(
        &format!("relay {name} online"),
        Duration::from_secs(30),
        || {
            let n = dep.node(name)?;
            (n["online"] == true && n["mode"] == "relay").then_some(())
        },
    );
    p
}

fn enroll_via(
    dep: &Deployment,
    token: &str,
    name: &str,
    relay: SocketAddr,
) -> std::process::Output {
    let dir = dep.agent_dir(name);
    run(&[
        "agent",
        "enroll",
        "--token",
        token,
        "--data-dir",
        dir.to_str().unwrap(),
        "--core",
        &relay.to_string(),
    ])
}

/// Opens a TCP connection to the node's banner service, says something, and returns the
/// client's source port (which the connect event records).
fn touch_banner(port: u16) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect banner");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut greeting = [0u8; 64];
    let _ = s.read(&mut greeting);
    let _ = s.write_all(b"HELO relay.test\r\n");
    s.local_addr().unwrap().port()
}

/// Connect events of `node` (source port per event).
fn connect_ports(dep: &Deployment, node: &str) -> Vec<u16> {
    dep.events(&["--kind", "connect", "--node", node, "--limit", "1000"])
        .iter()
        .filter_map(|e| e["source"]["port"].as_u64().map(|p| p as u16))
        .collect()
}

fn set_core_addr(agent_dir: &Path, core: &str) {
    let path = agent_dir.join("agent.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("core = ") {
                format!("core = \"{core}\"")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&path, text + "\n").unwrap();
}

fn audit_has(dep: &Deployment, needle: &str) -> bool {
    dep.audit().iter().any(|a| a.to_string().contains(needle))
}

#[test]
fn node_behind_relay_enrols_delivers_and_loses_nothing_when_the_relay_dies() {
    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let relay_addr: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let mut relay = start_relay(&dep, "relay-1", relay_addr);

    // Enrolment through the relay: the token names it, the core checks the token.
    let token = dep.token("lan-1", &["--labels", "relay=relay-1"]);
    let out = enroll_via(&dep, &token, "lan-1", relay_addr);
    assert!(
        out.status.success(),
        "enrol through relay: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml = std::fs::read_to_string(dep.agent_dir("lan-1").join("agent.toml")).unwrap();
    assert!(
        toml.contains(&format!("core = \"{relay_addr}\"")),
        "the node keeps using the relay: {toml}"
    );
    assert!(audit_has(&dep, "node=lan-1 role=agent"));
    assert!(audit_has(&dep, "via relay relay-1"));

    let node = dep.run_agent("lan-1");
    let port = dep.service_port("lan-1", "banner");
    let n = dep.node("lan-1").unwrap();
    assert_eq!(n["via"], "relay-1", "{n}");
    assert_eq!(n["relay"], "relay-1", "{n}");
    assert_eq!(n["mode"], "full", "{n}");
    let r = dep.node("relay-1").unwrap();
    assert_eq!(
        (r["role"].as_str(), r["via"].is_null()),
        (Some("relay"), true),
        "{r}"
    );
    let table = ok(&["nodes", "--data-dir", &dep.d()]);
    let line = table
        .lines()
        .find(|l| l.starts_with("lan-1 "))
        .expect("lan-1 in the table");
    assert!(line.contains("via relay relay-1"), "{table}");
    assert!(line.contains(" full "), "{table}");
    let line = table.lines().find(|l| l.starts_with("relay-1 ")).unwrap();
    assert!(
        line.contains(" relay ") && line.contains("direct"),
        "{table}"
    );

    // Events of the node reach the core through the relay.
    let mut sent = BTreeSet::new();
    for _ in 0..5 {
        sent.insert(touch_banner(port));
    }
    wait_for(
        "connect events via the relay",
        Duration::from_secs(30),
        || {
            let got: BTreeSet<u16> = connect_ports(&dep, "lan-1").into_iter().collect();
            (got == sent).then_some(())
        },
    );

    // The relay dies (SIGKILL). The node keeps recording; nothing can reach the core.
    relay.kill();
    for _ in 0..5 {
        sent.insert(touch_banner(port));
    }
    assert_eq!(
        connect_ports(&dep, "lan-1").len(),
        5,
        "nothing arrives while the relay is dead"
    );

    // The relay comes back: every event arrives, each exactly once.
    let _relay = run_relay(&dep, "relay-1", relay_addr);
    wait_for(
        "spooled events through the restarted relay",
        // The node first waits out its dead connection (idle timeout) and backoff; on a
        // loaded 2-core machine this took up to ~110 s, so the deadline leaves room.
        Duration::from_secs(240),
        || {
            let got: BTreeSet<u16> = connect_ports(&dep, "lan-1").into_iter().collect();
            (got == sent).then_some(())
        },
    );
    let ports = connect_ports(&dep, "lan-1");
    assert_eq!(
        ports.len(),
        sent.len(),
        "every event exactly once: {ports:?}"
    );
    wait_for(
        "lan-1 back online via relay-1",
        Duration::from_secs(60),
        || {
            let n = dep.node("lan-1")?;
            (n["online"] == true && n["via"] == "relay-1").then_some(())
        },
    );
    // It got there on a new session: the old path died with the relay.
    let sessions = node
        .log_text()
        .lines()
        .filter(|l| l.contains("connected to core") && !l.contains("disconnected"))
        .count();
    assert!(sessions >= 2, "{}", node.log_text());

    // Revoking the relay cuts off the nodes it carries too.
    ok(&["node", "revoke", "--data-dir", &dep.d(), "relay-1"]);
    wait_for(
        "lan-1 offline with its relay revoked",
        Duration::from_secs(10),
        || (dep.node("lan-1")?["online"] == false).then_some(()),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_carries_only_assigned_agents_and_never_itself() {
    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let relay_addr: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let _relay = start_relay(&dep, "relay-1", relay_addr);

    // A token that does not name the relay cannot enrol through it, and is not spent:
    // the same token then enrols directly.
    let token = dep.token("lan-2", &[]);
    let out = enroll_via(&dep, &token, "lan-2", relay_addr);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not allow enrolment through relay relay-1"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dep.agent_dir("lan-2"));
    let dir = dep.agent_dir("lan-2");
    ok(&[
        "agent",
        "enroll",
        "--token",
        &token,
        "--data-dir",
        dir.to_str().unwrap(),
    ]);

    // Not assigned to the relay: its connection through the relay is refused.
    set_core_addr(&dir, &relay_addr.to_string());
    let _node = dep.run_agent("lan-2");
    wait_for(
        "refusal of an unassigned node",
        Duration::from_secs(30),
        || audit_has(&dep, "is not assigned to relay relay-1").then_some(()),
    );
    assert_ne!(dep.node("lan-2").unwrap()["online"], true);

    // Assigned: it comes online through the relay.
    let d = dep.d();
    ok(&["node", "assign-relay", "--data-dir", &d, "lan-2", "relay-1"]);
    wait_for("lan-2 online via relay-1", Duration::from_secs(60), || {
        let n = dep.node("lan-2")?;
        (n["online"] == true && n["via"] == "relay-1").then_some(())
    });
    // Only relays can be assigned, only agents carried.
    let e = fails(&["node", "assign-relay", "--data-dir", &d, "lan-2", "lan-2"]);
    assert!(e.contains("not a relay"), "{e}");
    let e = fails(&[
        "node",
        "assign-relay",
        "--data-dir",
        &d,
        "relay-1",
        "relay-1",
    ]);
    assert!(e.contains("only agents are carried"), "{e}");

    // The relay's own certificate through the relay, as if it were a node it carries:
    // refused by role. So is an admin certificate.
    let ca = load_ca(&dep.core_dir());
    let relay_id = agent_identity(&dep.agent_dir("relay-1"));
    for (what, id, proto) in [
        ("relay certificate", relay_id, alpn::NODE),
        (
            "admin certificate",
            issue(&ca, Role::Admin, "sneaky"),
            alpn::ADMIN,
        ),
    ] {
        let (_ep, conn) = connect(relay_addr, ca.cert_der(), &id, proto)
            .await
            .unwrap_or_else(|e| panic!("{what}: handshake through the relay: {e}"));
        let e = closed_within(&conn, Duration::from_secs(10)).await;
        assert_eq!(app_code(&e), Some(close::FORBIDDEN as u64), "{what}: {e}");
    }
    assert!(audit_has(&dep, "forbidden role through a relay"));

    // Unassigned again: the live connection through the relay is cut at once, and
    // reconnecting through it is refused.
    ok(&["node", "assign-relay", "--data-dir", &d, "lan-2", "--none"]);
    let n = dep.node("lan-2").unwrap();
    assert_ne!(n["via"], "relay-1", "{n}");
    assert!(n["relay"].is_null(), "{n}");
    assert!(audit_has(&dep, "relay=none closed_live_connection=true"));
}

// ---- the same tests on a PostgreSQL store (`common::on_postgres`: same body, a
// database of its own on this test binary's PostgreSQL server)

#[test]
fn node_behind_relay_enrols_delivers_and_loses_nothing_when_the_relay_dies_on_postgres() {
    on_postgres(node_behind_relay_enrols_delivers_and_loses_nothing_when_the_relay_dies);
}
