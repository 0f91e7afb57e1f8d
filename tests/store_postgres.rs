//! The whole system on a PostgreSQL store: a core whose `[store] url` names a database on
//! a real PostgreSQL server (started by the test, see `pg_test_server`), a real agent
//! enrolled through it, a connection to the agent's honeypot, and the event read back
//! through the admin API; then the core restarts and the data is still there.

mod common;
#[allow(dead_code)]
#[path = "../core/src/store/pg_test_server.rs"]
mod pg_test_server;

use common::*;
use std::io::Read;
use std::time::Duration;

#[test]
fn agent_core_and_store_on_postgres() {
    let url = pg_test_server::fresh_database();
    let tmp = tempfile::tempdir().unwrap();
    let pw = tmp.path().join("store-password");
    std::fs::write(&pw, format!("{}\n", pg_test_server::PASSWORD)).unwrap();
    let mut dep = Deployment::init(|t| {
        format!(
            "{t}\n[store]\nurl = \"{url}\"\npassword_file = \"{}\"\n",
            pw.display()
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
