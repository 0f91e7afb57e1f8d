//! The whole system on a PostgreSQL store: a core whose `[store] url` names a database on
//! a real PostgreSQL server (started by the test, see `pg_test_server`), a real agent
//! enrolled through it, a connection to the agent's honeypot, and the event read back
//! through the admin API; then the core restarts and the data is still there.

mod common;

use common::*;
use std::io::Read;
use std::time::Duration;

#[test]
fn agent_core_and_store_on_postgres() {
    let url = pg_test_server::fresh_database();
    let tmp = tempfile::tempdir().unwrap();
    let pw = tmp.path().join("store-password");
    std::fs::write(&pw, format!("{}\n", pg_test_server::PASSWORD)).unwrap();
    // Captures' contents go to a directory every core of the deployment can reach
    // (`store.captures_dir`), not the data directory.
    let shared = tmp.path().join("shared-captures");
    let mut dep = Deployment::init(|t| {
        format!(
            "{t}\n[store]\nurl = \"{url}\"\npassword_file = \"{}\"\ncaptures_dir = \"{}\"\n",
            pw.display(),
            shared.display()
        )
    });
    dep.start_core();
    let mut agent = dep.start_agent("pg1");
    let port = dep.service_port("pg1", "banner");
    // A connection to the honeypot is a `connect` event, stored in PostgreSQL.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = s.read(&mut [0u8; 64]);
    drop(s);
    wait_for("the connect event", Duration::from_secs(30), || {
        let evs = dep.events(&["--node", "pg1", "--kind", "connect"]);
        (!evs.is_empty()).then_some(())
    });
    assert!(
        dep.audit().iter().any(|e| e["action"] == "enroll"),
        "the enrolment is audited in PostgreSQL"
    );
    // A request body over `max_inline_body` becomes a `body` capture: its metadata in
    // PostgreSQL, its content in the shared directory, fetched back through the core.
    let body = "x=".to_owned() + &"A".repeat(8000);
    let http = dep.service_port("pg1", "http");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", http)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::io::Write::write_all(
        &mut s,
        format!(
            "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let _ = s.read_to_end(&mut Vec::new());
    let d = dep.d();
    let hash = wait_for("the body capture", Duration::from_secs(30), || {
        let listed: serde_json::Value =
            serde_json::from_str(&ok(&["captures", "--json", "--data-dir", &d])).unwrap();
        listed.as_array().unwrap().iter().find_map(|c| {
            (c["node"] == "pg1" && c["size"] == body.len())
                .then(|| c["sha256"].as_str().unwrap().to_owned())
        })
    });
    let stored = shared.join(&hash[..2]).join(&hash);
    assert_eq!(std::fs::read(&stored).unwrap(), body.as_bytes());
    assert!(
        !dep.core_dir()
            .join("captures")
            .join(&hash[..2])
            .join(&hash)
            .exists(),
        "the content is only in the shared directory"
    );
    let out = tmp.path().join("fetched.bin");
    ok(&[
        "capture",
        "get",
        &hash,
        "-o",
        out.to_str().unwrap(),
        "--data-dir",
        &d,
    ]);
    assert_eq!(std::fs::read(&out).unwrap(), body.as_bytes());
    agent.kill();
    // The core restarts on the same database: the node and its events are still there.
    dep.core.as_mut().unwrap().terminate();
    dep.start_core();
    assert!(dep.node("pg1").is_some());
    assert!(
        !dep.events(&["--node", "pg1", "--kind", "connect"])
            .is_empty()
    );
}

/// `core init --store` writes `[store] url`, refuses a password in the URL or another
/// scheme, and a core whose database does not answer fails at start with a clear error.
#[test]
fn core_init_store_flag_and_unreachable_database() {
    let tmp = tempfile::tempdir().unwrap();
    let d = |n: &str| tmp.path().join(n).to_str().unwrap().to_owned();
    let err = fails(&[
        "core",
        "init",
        "--data-dir",
        &d("a"),
        "--store",
        "postgres://hb:hunter2@127.0.0.1/hb",
    ]);
    assert!(err.contains("keep the password out"), "{err}");
    assert!(!err.contains("hunter2"), "never the password: {err}");
    let err = fails(&[
        "core",
        "init",
        "--data-dir",
        &d("b"),
        "--store",
        "mysql://x",
    ]);
    assert!(err.contains("store.url"), "{err}");

    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://hb@127.0.0.1:{port}/hb");
    ok(&[
        "core",
        "init",
        "--data-dir",
        &d("c"),
        "--listen",
        &format!("127.0.0.1:{}", free_udp_port()),
        "--store",
        &url,
    ]);
    let toml = std::fs::read_to_string(tmp.path().join("c/core.toml")).unwrap();
    assert!(
        toml.contains(&format!("[store]\nurl = \"{url}\"")),
        "{toml}"
    );
    let err = fails(&["core", "run", "--data-dir", &d("c")]);
    assert!(err.contains("cannot reach the database server"), "{err}");
}

/// `honeybee store migrate`: a stopped core's SQLite store copied into PostgreSQL, then
/// the core run on PostgreSQL still knows its node.
#[test]
fn store_migrate_from_sqlite_to_postgres() {
    // It migrates from a SQLite file, whatever HONEYBEE_TEST_STORE says.
    let mut dep = None;
    on_backend(Backend::Sqlite, || dep = Some(Deployment::init(|t| t)));
    let mut dep = dep.unwrap();
    dep.start_core();
    let mut agent = dep.start_agent("mig1");
    wait_for("mig1 listed", Duration::from_secs(30), || {
        dep.node("mig1").map(|_| ())
    });
    agent.kill();
    dep.core.as_mut().unwrap().terminate();

    let url = pg_test_server::fresh_database();
    let db = dep.core_dir().join("honeybee.db");
    let out = std::process::Command::new(bin())
        .args(["store", "migrate", "--from"])
        .arg(format!("sqlite:{}", db.display()))
        .args(["--to", &url])
        .env("HONEYBEE_STORE_PASSWORD", pg_test_server::PASSWORD)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("nodes"), "{stdout}");

    let pw = dep.core_dir().join("store-password");
    std::fs::write(&pw, pg_test_server::PASSWORD).unwrap();
    let cfg = dep.core_dir().join("core.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "{text}\n[store]\nurl = \"{url}\"\npassword_file = \"{}\"\n",
            pw.display()
        ),
    )
    .unwrap();
    std::fs::remove_file(&db).unwrap();
    dep.start_core();
    assert!(dep.node("mig1").is_some(), "the node came along");
    assert!(dep.audit().iter().any(|e| e["action"] == "enroll"));
}
