//! Finding the core by DNS SRV records, end to end: an agent whose token names the core as
//! `srv:hb.test` enrols and connects through a DNS server the test runs on loopback, then
//! fails over to the next SRV target when the core comes back on another port.
//!
//! The DNS server is `dns/` (shared with `cluster.rs`).

mod common;
mod dns;
use common::*;
use dns::{Rr, TestDns};
use honeybee_pki::token::Token;
use std::io::Write;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Opens one banner connection and sends `payload`.
fn hit(port: u16, payload: &str) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("banner up");
    s.write_all(format!("{payload}\n").as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
}

#[test]
fn srv_failover_between_two_core_addresses() {
    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let first = dep.port;
    let dead = free_udp_port(); // nothing ever listens here
    let second = free_udp_port(); // where the core comes back

    let dns = TestDns::start(vec![
        (
            "_honeybee._udp.hb.test",
            Rr::Srv(5, 0, dead, "dead.hb.test."),
        ),
        (
            "_honeybee._udp.hb.test",
            Rr::Srv(10, 0, first, "one.hb.test."),
        ),
        (
            "_honeybee._udp.hb.test",
            Rr::Srv(20, 0, second, "two.hb.test."),
        ),
        ("dead.hb.test", Rr::A(Ipv4Addr::LOCALHOST)),
        ("one.hb.test", Rr::A(Ipv4Addr::LOCALHOST)),
        ("two.hb.test", Rr::A(Ipv4Addr::LOCALHOST)),
    ]);

    // A real token, pointed at the SRV name instead of the core's advertised address.
    let mut token = Token::decode(&dep.token("mover", &[])).unwrap();
    token.core_addr = "srv:hb.test".into();
    let token = token.encode();

    // Enrolment finds the core through HONEYBEE_DNS_SERVER, past the dead first target.
    let a = dep.agent_dir("mover");
    let out = std::process::Command::new(bin())
        .args(["agent", "enroll", "--token", &token, "--data-dir"])
        .arg(&a)
        .env("HONEYBEE_DNS_SERVER", dns.addr.to_string())
        .env("RUST_LOG", "info,quinn=warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "enrol via SRV: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `agent run` takes the DNS server from agent.toml.
    let cfg_path = a.join("agent.toml");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    assert!(cfg.contains("core = \"srv:hb.test\""), "{cfg}");
    std::fs::write(&cfg_path, format!("{cfg}dns_server = \"{}\"\n", dns.addr)).unwrap();
    let agent = dep.run_agent("mover");
    let banner = dep.service_port("mover", "banner");
    hit(banner, "before-the-move");
    wait_for("the first event", Duration::from_secs(60), || {
        let evs = dep.events(&["--node", "mover", "--kind", "data"]);
        evs.iter()
            .any(|e| e["honeybee"]["data_text"].as_str().map(str::trim) == Some("before-the-move"))
            .then_some(())
    });
    let log = agent.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("cannot connect to core") && l.contains(&format!(":{dead}"))),
        "the priority-5 target is tried first:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("connected to core") && l.contains(&format!(":{first}"))),
        "{log}"
    );

    // The core restarts on another port: the agent fails over to the priority-20 target.
    dep.core.as_mut().unwrap().terminate();
    let core_toml = dep.core_dir().join("core.toml");
    let text = std::fs::read_to_string(&core_toml).unwrap();
    assert!(text.contains(&format!("127.0.0.1:{first}\"")), "{text}");
    std::fs::write(
        &core_toml,
        text.replace(
            &format!("127.0.0.1:{first}\""),
            &format!("127.0.0.1:{second}\""),
        ),
    )
    .unwrap();
    dep.start_core();
    hit(banner, "after-the-move");
    wait_for(
        "the event sent after the move",
        Duration::from_secs(90),
        || {
            let evs = dep.events(&["--node", "mover", "--kind", "data"]);
            evs.iter()
                .any(|e| {
                    e["honeybee"]["data_text"].as_str().map(str::trim) == Some("after-the-move")
                })
                .then_some(())
        },
    );
    let log = agent.log_text();
    let moved = format!("connected to core addr=127.0.0.1:{second}");
    assert!(
        log.lines()
            .any(|l| l.contains("connected to core") && l.contains(&format!(":{second}"))),
        "expected {moved:?} in\n{log}"
    );
    assert_eq!(dep.node("mover").unwrap()["online"], true);
}

// ---- on a PostgreSQL store (`common::on_postgres`: the same body, a database of its own
// on this test binary's PostgreSQL server)

#[test]
fn srv_failover_between_two_core_addresses_on_postgres() {
    common::on_postgres(srv_failover_between_two_core_addresses);
}
