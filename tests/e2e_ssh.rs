//! The whole path end to end with real processes and a real attacker client:
//! init → token → enrol → run → OpenSSH password login on the honeypot → the attempt is
//! in `honeybee events --json` with the right username and password.

mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn openssh_password_attempt_reaches_the_store() {
    assert!(
        have("ssh") && have("sshpass"),
        "this test needs OpenSSH's ssh and sshpass (.ci/run installs them)"
    );
    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let _agent = dep.start_agent("web-1");
    let port = dep.service_port("web-1", "ssh");

    let out = Command::new("sshpass")
        .args(["-p", "hunter2", "ssh", "-p", &port.to_string()])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "ConnectTimeout=10",
            "root@127.0.0.1",
            "uname -a",
        ])
        .output()
        .expect("run ssh");
    assert!(
        !out.status.success(),
        "the honeypot must not grant a shell yet"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Permission denied"), "ssh saw: {stderr}");

    let attempt = wait_for(
        "the password attempt in the store",
        Duration::from_secs(30),
        || {
            dep.events(&["--kind", "auth_attempt", "--node", "web-1"])
                .into_iter()
                .find(|e| e["honeybee"]["method"] == "password")
        },
    );
    assert_eq!(attempt["user"]["name"], "root");
    assert_eq!(attempt["honeybee"]["password"], "hunter2");
    assert_eq!(attempt["honeybee"]["success"], false);
    assert_eq!(attempt["service"]["name"], "ssh");
    assert_eq!(attempt["observer"]["name"], "web-1");
    assert_eq!(attempt["source"]["ip"], "127.0.0.1");
    assert_eq!(attempt["destination"]["port"], port);
    let client = attempt["honeybee"]["client_version"].as_str().unwrap_or("");
    assert!(
        client.starts_with("SSH-2.0-OpenSSH"),
        "client version recorded: {client:?}"
    );

    // The session's events share one session id, from connect to disconnect.
    let session = attempt["session"]["id"]
        .as_str()
        .expect("session id")
        .to_owned();
    let same: Vec<_> = wait_for(
        "connect and disconnect of the session",
        Duration::from_secs(30),
        || {
            let evs: Vec<_> = dep
                .events(&["--node", "web-1", "--service", "ssh"])
                .into_iter()
                .filter(|e| e["session"]["id"] == session.as_str())
                .collect();
            let kinds: Vec<_> = evs
                .iter()
                .map(|e| e["event"]["action"].as_str().unwrap_or("").to_owned())
                .collect();
            (kinds.contains(&"connect".to_string()) && kinds.contains(&"disconnect".to_string()))
                .then_some(evs)
        },
    );
    assert!(same.len() >= 3);

    // The text view shows the same attempt.
    let text = ok(&["events", "--data-dir", &dep.d(), "--kind", "auth_attempt"]);
    assert!(
        text.contains("user=\"root\" password=\"hunter2\""),
        "{text}"
    );

    // Health reached the registry, and the audit log saw the enrolment.
    let node = dep.node("web-1").expect("node listed");
    assert_eq!(node["online"], true);
    assert!(node["health"]["rss_bytes"].as_u64().unwrap_or(0) > 0);
    assert!(
        dep.audit()
            .iter()
            .any(|a| a["action"] == "enroll" && a["outcome"] == "ok")
    );
}

#[test]
fn banner_records_first_bytes_and_config_changes_apply_live() {
    use std::io::{Read, Write};
    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let _agent = dep.start_agent("mail-1");
    let port = dep.service_port("mail-1", "banner");

    // The generic banner says nothing first (the `smtp` service is the mail server); it
    // records what the peer sends.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect banner");
    s.write_all(b"EHLO attacker.example\r\n").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "the banner service answered {rest:?}");
    drop(s);
    let ev = wait_for("banner data event", Duration::from_secs(30), || {
        dep.events(&["--kind", "data", "--node", "mail-1"])
            .into_iter()
            .next()
    });
    assert!(
        ev["honeybee"]["data_text"]
            .as_str()
            .unwrap()
            .starts_with("EHLO attacker.example")
    );

    // Disable the banner on the running agent: its port closes without a restart.
    let d = dep.d();
    ok(&[
        "node",
        "config",
        "mail-1",
        "--data-dir",
        &d,
        "--disable",
        "banner",
    ]);
    wait_for("banner port to close", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .is_err()
            .then_some(())
    });
    let cfg: serde_json::Value = serde_json::from_str(&ok(&[
        "node",
        "config",
        "mail-1",
        "--data-dir",
        &d,
        "--json",
    ]))
    .unwrap();
    assert!(
        cfg.as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "banner" && s["enabled"] == false)
    );
    // A command round trip over the control stream.
    assert_eq!(
        ok(&["node", "command", "mail-1", "ping", "--data-dir", &d]).trim(),
        "pong"
    );
}

// ---- the same tests on a PostgreSQL store (`common::on_postgres`: same body, a
// database of its own on this test binary's PostgreSQL server)

#[test]
fn openssh_password_attempt_reaches_the_store_on_postgres() {
    on_postgres(openssh_password_attempt_reaches_the_store);
}

#[test]
fn banner_records_first_bytes_and_config_changes_apply_live_on_postgres() {
    on_postgres(banner_records_first_bytes_and_config_changes_apply_live);
}
