//! One-time tokens and enrolment through the real CLI: replay, expiry, revocation, a race
//! for a single-use token, malformed tokens, a wrong CA pin, wrong secrets (rate limited)
//! and an unreachable core each fail with their own clear message.

mod common;
use common::*;
use honeybee_pki::token::Token;

fn enroll(dep: &Deployment, token: &str, name: &str) -> std::process::Output {
    let a = dep.agent_dir(name);
    run(&[
        "agent",
        "enroll",
        "--token",
        token,
        "--data-dir",
        a.to_str().unwrap(),
    ])
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn tokens_are_single_use_expire_and_can_be_revoked() {
    let mut dep = Deployment::init(|t| t);
    dep.start_core();

    let token = dep.token("edge-1", &["--labels", "site=paris,rack=r2"]);
    let first = enroll(&dep, &token, "first");
    assert!(first.status.success(), "{}", stderr(&first));
    let agent_toml = std::fs::read_to_string(dep.agent_dir("first").join("agent.toml")).unwrap();
    assert!(agent_toml.contains("node_id = \"edge-1\""), "{agent_toml}");
    let key = dep.agent_dir("first").join("pki/node.pem");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let replay = enroll(&dep, &token, "replay");
    assert!(!replay.status.success());
    assert!(
        stderr(&replay).contains("already been used"),
        "{}",
        stderr(&replay)
    );

    let short = dep.token("edge-2", &["--ttl", "1s"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let late = enroll(&dep, &short, "late");
    assert!(stderr(&late).contains("expired"), "{}", stderr(&late));

    let revoked = dep.token("edge-3", &[]);
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&["token", "list", "--json", "--data-dir", &dep.d()])).unwrap();
    let id = list.iter().find(|t| t["name"] == "edge-3").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(&["token", "revoke", &id, "--data-dir", &dep.d()]);
    let refused = enroll(&dep, &revoked, "revoked");
    assert!(stderr(&refused).contains("revoked"), "{}", stderr(&refused));

    let list: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&["token", "list", "--json", "--data-dir", &dep.d()])).unwrap();
    let state = |n: &str| list.iter().find(|t| t["name"] == n).unwrap()["state"].clone();
    assert_eq!(state("edge-1"), "used");
    assert_eq!(state("edge-2"), "expired");
    assert_eq!(state("edge-3"), "revoked");

    // The node carries the token's labels; every outcome is in the audit log.
    let node = dep.node("edge-1").unwrap();
    assert!(node["labels"].to_string().contains("paris"));
    let audit = dep.audit();
    for outcome in ["ok", "already been used", "expired", "revoked"] {
        assert!(
            audit.iter().any(
                |a| a["action"] == "enroll" && a["outcome"].as_str().unwrap().contains(outcome)
            ),
            "no audited enrolment with outcome {outcome:?}"
        );
    }
}

#[test]
fn two_racing_enrolments_with_one_token_exactly_one_wins() {
    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let token = dep.token("race", &[]);
    let spawn = |name: &str| {
        let a = dep.agent_dir(name);
        std::process::Command::new(bin())
            .args([
                "agent",
                "enroll",
                "--token",
                &token,
                "--data-dir",
                a.to_str().unwrap(),
            ])
            .output()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| spawn("a"));
        let b = s.spawn(|| spawn("b"));
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    let wins = [a.status.success(), b.status.success()];
    assert_eq!(
        wins.iter().filter(|w| **w).count(),
        1,
        "a: {} / b: {}",
        stderr(&a),
        stderr(&b)
    );
    let loser = if wins[0] { &b } else { &a };
    assert!(
        stderr(loser).contains("already been used"),
        "{}",
        stderr(loser)
    );
}

#[test]
fn bad_tokens_fail_with_distinct_reasons() {
    let mut dep = Deployment::init(|t| t);
    dep.start_core();

    let garbage = enroll(&dep, "not-a-token", "g");
    assert!(
        stderr(&garbage).contains("malformed token"),
        "{}",
        stderr(&garbage)
    );

    // A token whose pin names another CA: the agent stops before sending anything.
    let good = Token::decode(&dep.token("pinned", &[])).unwrap();
    let mut wrong_pin = Token::decode(&good.encode()).unwrap();
    wrong_pin.ca_pin[0] ^= 0xff;
    let pin = enroll(&dep, &wrong_pin.encode(), "pin");
    assert!(
        stderr(&pin).contains("possible interception"),
        "{}",
        stderr(&pin)
    );
    // ... and the token was not consumed by that attempt.
    assert!(enroll(&dep, &good.encode(), "pinned-ok").status.success());

    // Wrong secrets are refused, then rate limited for the source address.
    let victim = Token::decode(&dep.token("victim", &[])).unwrap();
    let mut outcomes = Vec::new();
    for i in 0..7u8 {
        let mut t = Token::decode(&victim.encode()).unwrap();
        t.secret[0] ^= i + 1;
        outcomes.push(stderr(&enroll(&dep, &t.encode(), &format!("bad{i}"))));
    }
    assert!(outcomes[0].contains("secret is wrong"), "{}", outcomes[0]);
    assert!(
        outcomes
            .last()
            .unwrap()
            .contains("too many failed attempts"),
        "{outcomes:?}"
    );

    // A core that is not there: bounded retries, then a clear error.
    let mut away = Token::decode(&dep.token("away", &[])).unwrap();
    away.core_addr = format!("127.0.0.1:{}", free_udp_port());
    let gone = enroll(&dep, &away.encode(), "away");
    assert!(
        stderr(&gone).contains("core unreachable"),
        "{}",
        stderr(&gone)
    );
}

#[test]
fn init_refuses_an_initialised_directory() {
    let dep = Deployment::init(|t| t);
    let err = fails(&["core", "init", "--data-dir", &dep.d()]);
    assert!(err.contains("already holds a HoneyBee deployment"), "{err}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dep.core_dir().join("pki/ca.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

// ---- the same tests on a PostgreSQL store (`common::on_postgres`: same body, a
// database of its own on this test binary's PostgreSQL server)

#[test]
fn tokens_are_single_use_expire_and_can_be_revoked_on_postgres() {
    on_postgres(tokens_are_single_use_expire_and_can_be_revoked);
}

#[test]
fn two_racing_enrolments_with_one_token_exactly_one_wins_on_postgres() {
    on_postgres(two_racing_enrolments_with_one_token_exactly_one_wins);
}
