//! `honeybee up`, the README's first command, as a new user runs it: it initialises an
//! empty data directory, enrols the local node over real QUIC + mTLS, serves the honeypots
//! on the brief's ports, records an attack, and stops cleanly on SIGTERM.

mod common;
use common::*;
use std::io::{Read, Write};
use std::time::Duration;

#[test]
fn up_runs_core_and_local_node_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("honeybee-data");
    let d = data.to_str().unwrap().to_owned();
    let mut up = Proc::spawn(&["up", "--data-dir", &d], &dir.path().join("up.log"));
    wait_for("`up` to say it is up", Duration::from_secs(60), || {
        up.log_text().contains("HoneyBee is up").then_some(())
    });
    let text = up.log_text();
    for line in [
        "127.0.0.1:7443",
        "127.0.0.1:2222",
        "127.0.0.1:8081",
        "127.0.0.1:7444",
        "profile            linux-server",
        "--profile all",
        "honeybee events --data-dir",
    ] {
        assert!(text.contains(line), "`up` output lacks {line:?}:\n{text}");
    }

    // The local node is online, enrolled through a real token (audited).
    wait_for("local node online", Duration::from_secs(30), || {
        let nodes: Vec<serde_json::Value> =
            serde_json::from_str(&ok(&["nodes", "--json", "--data-dir", &d])).ok()?;
        nodes
            .iter()
            .any(|n| n["id"] == "local" && n["online"] == true)
            .then_some(())
    });
    let audit = ok(&["audit", "--data-dir", &d]);
    assert!(
        audit.contains("enroll") && audit.contains("node=local"),
        "{audit}"
    );

    // An attack on the web server (the default profile, linux-server) is recorded. The
    // node is online before every service has bound its port (the first start makes its
    // SSH host keys), so wait for it.
    assert!(
        !text.contains("127.0.0.1:2525"),
        "the default profile runs no SMTP banner:\n{text}"
    );
    let mut s = wait_for("the web server on 8081", Duration::from_secs(30), || {
        std::net::TcpStream::connect("127.0.0.1:8081").ok()
    });
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /up-test HTTP/1.0\r\n\r\n").unwrap();
    let mut buf = [0u8; 128];
    let _ = s.read(&mut buf).unwrap();
    drop(s);
    wait_for("the probe in events", Duration::from_secs(30), || {
        ok(&["events", "--data-dir", &d, "--kind", "http_request"])
            .contains("/up-test")
            .then_some(())
    });

    let status = up.terminate();
    assert!(
        status.success(),
        "`up` exits 0 on SIGTERM: {status:?}\n{}",
        up.log_text()
    );
    assert!(up.log_text().contains("core stopped"));
    // Ports are free again, and a second `up` reuses the deployment instead of re-initialising.
    assert!(std::net::TcpStream::connect("127.0.0.1:8081").is_err());
    let mut again = Proc::spawn(&["up", "--data-dir", &d], &dir.path().join("up2.log"));
    wait_for("second `up`", Duration::from_secs(60), || {
        again.log_text().contains("HoneyBee is up").then_some(())
    });
    assert!(
        !again.log_text().contains("initialised"),
        "{}",
        again.log_text()
    );
    assert!(again.terminate().success());

    // `--profile router` turns the same node into a router: Telnet and the admin page,
    // no SSH.
    let mut router = Proc::spawn(
        &["up", "--data-dir", &d, "--profile", "router"],
        &dir.path().join("up3.log"),
    );
    wait_for("`up --profile router`", Duration::from_secs(60), || {
        router.log_text().contains("HoneyBee is up").then_some(())
    });
    let text = router.log_text();
    assert!(text.contains("profile            router"), "{text}");
    // (The log also holds the agent's own lines: it starts from its last config, then
    // converges to the router's.)
    let honeypots: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("  honeypot "))
        .collect();
    assert!(
        honeypots.iter().any(|l| l.contains("127.0.0.1:2323"))
            && !honeypots.iter().any(|l| l.contains("127.0.0.1:2222")),
        "{text}"
    );
    assert!(router.terminate().success());
}
