//! Redis, MySQL and Modbus honeypots end to end: a real core and agent over QUIC/mTLS, the
//! real `redis-cli`, `mysql` and `mbpoll` as attackers, and what they did read back from
//! the core with `honeybee events --json`.

mod common;
use common::*;
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

fn command_lines(evs: &[Value]) -> Vec<String> {
    evs.iter()
        .filter_map(|e| e["process"]["command_line"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn redis_mysql_and_modbus_attacks_reach_the_core() {
    for tool in ["redis-cli", "mysql", "mbpoll"] {
        assert!(
            have(tool),
            "this test needs {tool} (redis-tools, default-mysql-client, mbpoll)"
        );
    }
    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let _agent = dep.start_agent("data-1");
    let redis = dep.service_port("data-1", "redis").to_string();
    let mysql = dep.service_port("data-1", "mysql").to_string();
    let modbus = dep.service_port("data-1", "modbus").to_string();

    // Redis: the classic takeover script, one connection. Port 1 has no listener; the
    // honeypot must not try it anyway (the agent-level test listens and checks).
    let mut cli = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &redis])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-cli");
    cli.stdin
        .take()
        .unwrap()
        .write_all(b"INFO server\nCONFIG SET dir /root/.ssh\nCONFIG SET dbfilename authorized_keys\nSET k \"ssh-ed25519 AAAA attacker\"\nSAVE\nSLAVEOF 127.0.0.1 1\nPING\n")
        .unwrap();
    let out = cli.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("redis_version:"), "{stdout}");
    assert!(stdout.trim_end().ends_with("PONG"), "{stdout}");

    // MySQL: a login the client sees refused.
    let out = Command::new("mysql")
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            &mysql,
            "--connect-timeout=20",
            "-u",
            "eve",
            "-pS3cret!",
            "-e",
            "select 1",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("(28000): Access denied for user 'eve'@"),
        "{stderr}"
    );

    // Modbus: a write, then a read from another connection sees it.
    let mb = |args: &[&str]| {
        let mut all = vec!["-m", "tcp", "-a", "1", "-1", "-o", "5", "-p", &modbus];
        all.extend_from_slice(args);
        Command::new("mbpoll").args(&all).output().unwrap()
    };
    assert!(
        mb(&["-t", "4", "-r", "5", "127.0.0.1", "4321"])
            .status
            .success()
    );
    let read = mb(&["-t", "4", "-r", "5", "-c", "1", "127.0.0.1"]);
    assert!(String::from_utf8_lossy(&read.stdout).contains("[5]: \t4321"));

    let limit = Duration::from_secs(60);
    let redis_cmds = wait_for("redis commands in the store", limit, || {
        let c = command_lines(&dep.events(&[
            "--node",
            "data-1",
            "--service",
            "redis",
            "--kind",
            "command",
        ]));
        c.contains(&"SLAVEOF 127.0.0.1 1".to_owned()).then_some(c)
    });
    for want in [
        "INFO server",
        "CONFIG SET dir /root/.ssh",
        "CONFIG SET dbfilename authorized_keys",
        "SET k \"ssh-ed25519 AAAA attacker\"",
        "SAVE",
        "PING",
    ] {
        assert!(
            redis_cmds.iter().any(|c| c == want),
            "{want:?} not in {redis_cmds:?}"
        );
    }
    let download = wait_for("the replicaof download", limit, || {
        dep.events(&["--node", "data-1", "--kind", "download"])
            .into_iter()
            .next()
    });
    assert_eq!(download["url"]["original"], "redis://127.0.0.1:1");
    assert_eq!(download["honeybee"]["download"]["tool"], "replicaof");
    let capture = wait_for("the would-be authorized_keys capture", limit, || {
        dep.events(&[
            "--node",
            "data-1",
            "--service",
            "redis",
            "--kind",
            "capture",
        ])
        .into_iter()
        .next()
    });
    assert_eq!(
        capture["file"]["name"], "/root/.ssh/authorized_keys",
        "{capture}"
    );

    let login = wait_for("the mysql login", limit, || {
        dep.events(&[
            "--node",
            "data-1",
            "--service",
            "mysql",
            "--kind",
            "auth_attempt",
        ])
        .into_iter()
        .next()
    });
    assert_eq!(login["user"]["name"], "eve");
    assert_eq!(login["honeybee"]["success"], false);
    assert_eq!(login["honeybee"]["key_algorithm"], "mysql_native_password");
    assert!(
        login["honeybee"]["key_fingerprint"]
            .as_str()
            .is_some_and(|f| f.starts_with("$mysqlna$")),
        "{login}"
    );
    assert!(
        login["honeybee"]["client_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("libmariadb")),
        "{login}"
    );

    let mut modbus_cmds = wait_for("modbus commands", limit, || {
        let c = command_lines(&dep.events(&[
            "--node",
            "data-1",
            "--service",
            "modbus",
            "--kind",
            "command",
        ]));
        (c.len() >= 2).then_some(c)
    });
    // The CLI lists newest first; compare as a set.
    modbus_cmds.sort();
    assert_eq!(
        modbus_cmds,
        [
            "read_holding_registers unit=1 addr=4 count=1",
            "write_single_register unit=1 addr=4 value=4321"
        ]
    );

    // The text view says the replication target was not contacted.
    let text = ok(&["events", "--data-dir", &dep.d(), "--kind", "download"]);
    assert!(
        text.contains("replicaof \"redis://127.0.0.1:1\" (not fetched)"),
        "{text}"
    );
}

// ---- the same tests on a PostgreSQL store (`common::on_postgres`: same body, a
// database of its own on this test binary's PostgreSQL server)

#[test]
fn redis_mysql_and_modbus_attacks_reach_the_core_on_postgres() {
    on_postgres(redis_mysql_and_modbus_attacks_reach_the_core);
}
