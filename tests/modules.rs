//! Modules end to end: a Python module (stdlib SDK) over the TCP shim against a real core
//! and agent; refusals of bad peers; a module that never reads; managed modules loaded
//! and unloaded at runtime.

mod common;
use common::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn probe(port: u16, text: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(text.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(30));
}

/// A raw shim client, for what the SDK would never send.
struct Raw(TcpStream);

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Raw(s)
    }
    fn send(&mut self, v: &Value) {
        let body = serde_json::to_vec(v).unwrap();
        self.0
            .write_all(&(body.len() as u32).to_be_bytes())
            .unwrap();
        self.0.write_all(&body).unwrap();
    }
    fn recv(&mut self) -> Option<Value> {
        let mut len = [0u8; 4];
        self.0.read_exact(&mut len).ok()?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.0.read_exact(&mut body).ok()?;
        serde_json::from_slice(&body).ok()
    }
    fn hello(&mut self, name: &str, cred: &str, perms: &[&str]) -> Value {
        self.send(&json!({"type": "hello", "name": name, "version": "t", "protocol": 1, "credential": cred, "permissions": perms}));
        self.recv().expect("an answer to hello")
    }
    /// Reads until the connection closes; returns the last frame seen.
    fn until_closed(&mut self) -> Option<Value> {
        let mut last = None;
        while let Some(v) = self.recv() {
            last = Some(v);
        }
        last
    }
}

#[test]
fn python_module_filters_commands_alerts_and_enriches() {
    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let _agent = dep.start_agent("pyn");
    let port = dep.service_port("pyn", "banner");
    let cred = dep.module_credential(
        "pytest",
        "events:read,nodes:command,alerts:write,enrich:write",
    );

    let mut child = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/modules/py_subscriber.py"
        ))
        .env("HONEYBEE_SHIM_ADDR", dep.shim_addr().to_string())
        .env("HONEYBEE_MODULE_CREDENTIAL", &cred)
        .env("WANT_EVENTS", "3")
        .env("NODE", "pyn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || -> Value {
        serde_json::from_str(&lines.next().expect("module output").unwrap()).unwrap()
    };
    let granted = next();
    let mut granted: Vec<String> = serde_json::from_value(granted["granted"].clone()).unwrap();
    granted.sort();
    assert_eq!(
        granted,
        [
            "alerts:write",
            "enrich:write",
            "events:read",
            "nodes:command"
        ]
    );
    assert_eq!(next()["ready"], true);

    // Each probe makes connect, data and disconnect events; only `data` matches.
    for i in 0..3 {
        probe(port, &format!("probe-{i}\n"));
    }
    for i in 0..3 {
        let got = next();
        assert_eq!(got["event"]["event"]["action"], "data", "{got}");
        assert_eq!(got["event"]["observer"]["name"], "pyn");
        assert!(
            got["event"]["honeybee"]["data_text"]
                .as_str()
                .unwrap()
                .starts_with(&format!("probe-{i}"))
        );
    }
    let cmd = next();
    assert_eq!(cmd["command"]["output"], "pong", "{cmd}");
    assert!(next()["alert"]["alert"].as_i64().is_some());
    assert_eq!(
        next()["refused"],
        "forbidden",
        "captures:read was not granted"
    );
    assert_eq!(next()["done"], true);
    assert!(child.wait().unwrap().success());

    let alerts: Vec<Value> =
        serde_json::from_str(&ok(&["alerts", "--json", "--data-dir", &dep.d()])).unwrap();
    assert_eq!(alerts[0]["title"], "pytest saw probes");
    assert_eq!(alerts[0]["module"], "pytest");
    let id = alerts[0]["id"].as_i64().unwrap().to_string();
    ok(&["alerts", "--ack", &id, "--data-dir", &dep.d()]);
    let alerts: Vec<Value> =
        serde_json::from_str(&ok(&["alerts", "--json", "--data-dir", &dep.d()])).unwrap();
    assert!(alerts[0]["acknowledged"].is_string());

    // The enrichment shows on the event in the CLI, under its ECS names.
    let enriched = dep
        .events(&["--kind", "data", "--node", "pyn"])
        .into_iter()
        .find(|e| e["source"]["geo"]["country_iso_code"] == "ZZ")
        .expect("an enriched event");
    assert_eq!(enriched["source"]["as"]["number"], 64500);
    assert!(
        ok(&["events", "--kind", "data", "--data-dir", &dep.d()]).contains("country_iso_code=ZZ")
    );
}

#[test]
fn bad_module_peers_are_refused_and_the_shim_keeps_serving() {
    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let addr = dep.shim_addr();
    let reader = dep.module_credential("reader", "events:read");

    // A bad credential.
    let mut r = Raw::connect(addr);
    let e = r.hello("reader", "hbm1.0000000000000000.00", &[]);
    assert_eq!(e["code"], "unauthenticated", "{e}");
    let mut r = Raw::connect(addr);
    let mut wrong = reader.clone();
    wrong.pop();
    wrong.push('0');
    let e = r.hello("reader", &wrong, &[]);
    assert_eq!(e["code"], "unauthenticated", "{e}");
    // Someone else's credential.
    let mut r = Raw::connect(addr);
    assert_eq!(r.hello("writer", &reader, &[])["code"], "unauthenticated");

    // A read-only module sending a command; garbage JSON; an unknown message: error frames,
    // and the connection stays usable.
    let mut r = Raw::connect(addr);
    assert_eq!(r.hello("reader", &reader, &[])["type"], "welcome");
    r.send(&json!({"type": "command", "id": 5, "node": "x", "command": "ping"}));
    let e = r.recv().unwrap();
    assert_eq!(
        (e["code"].as_str(), e["id"].as_u64()),
        (Some("forbidden"), Some(5)),
        "{e}"
    );
    r.0.write_all(&[0, 0, 0, 5]).unwrap();
    r.0.write_all(b"{nope").unwrap();
    assert_eq!(r.recv().unwrap()["code"], "bad_request");
    r.send(&json!({"type": "teleport", "id": 6}));
    assert_eq!(r.recv().unwrap()["code"], "bad_request");
    r.send(&json!({"type": "ping", "id": 7}));
    let pong = r.recv().unwrap();
    assert_eq!(
        (pong["type"].as_str(), pong["data"].as_str()),
        (Some("result"), Some("pong"))
    );

    // An oversized frame: refused before the body is read, and the connection closes.
    r.0.write_all(&(2u32 * 1024 * 1024).to_be_bytes()).unwrap();
    let last = r.until_closed().expect("a reason before closing");
    assert_eq!(last["code"], "limit", "{last}");

    // Slowloris: one byte a second never completes a hello.
    let mut slow = Raw::connect(addr);
    let start = Instant::now();
    let hello = serde_json::to_vec(&json!({"type": "hello", "name": "reader", "version": "t", "protocol": 1, "credential": reader})).unwrap();
    let mut frame = (hello.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&hello);
    let mut closed = false;
    for b in frame {
        if slow.0.write_all(&[b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
        if start.elapsed() > Duration::from_secs(30) {
            break;
        }
        let mut probe = [0u8; 1];
        slow.0.set_nonblocking(true).unwrap();
        let gone = matches!(slow.0.peek(&mut probe), Ok(0));
        slow.0.set_nonblocking(false).unwrap();
        if gone {
            closed = true;
            break;
        }
        // Any frame (the error) also means the core gave up on us.
        if matches!(slow.0.peek(&mut probe), Ok(n) if n > 0) {
            closed = true;
            break;
        }
    }
    assert!(closed, "the core must drop a slowloris hello");

    // Audit recorded the refusals; the shim still serves a good module.
    let audit = dep.audit();
    assert!(audit.iter().any(|a| a["action"] == "module.connect"
        && a["outcome"].as_str().unwrap().contains("wrong secret")));
    let mut r = Raw::connect(addr);
    assert_eq!(
        r.hello("reader", &reader, &["events:read"])["type"],
        "welcome"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_that_never_reads_slows_nobody() {
    use honeybee_agent::runtime::{Agent, AgentOptions};
    use honeybee_agent::sink::NewEvent;
    use honeybee_proto::event::EventKind;
    const N: usize = 30_000;

    let mut dep = Deployment::init(|t| t);
    tokio::task::block_in_place(|| dep.start_core());
    let addr = dep.shim_addr();
    let (stalled, fast) = tokio::task::block_in_place(|| {
        (
            dep.module_credential("stalled", "events:read"),
            dep.module_credential("fast", "events:read"),
        )
    });

    // The stalled module subscribes to everything and then never reads again.
    let mut stuck = Raw::connect(addr);
    assert_eq!(stuck.hello("stalled", &stalled, &[])["type"], "welcome");
    stuck.send(&json!({"type": "subscribe", "id": 1, "filter": {}}));
    assert_eq!(stuck.recv().unwrap()["type"], "result");
    let mut reader = Raw::connect(addr);
    assert_eq!(reader.hello("fast", &fast, &[])["type"], "welcome");
    reader.send(&json!({"type": "subscribe", "id": 2, "filter": {"kinds": ["command"]}}));
    assert_eq!(reader.recv().unwrap()["type"], "result");
    // Every event reaches the reading module or is accounted for in a `missed` notice: on
    // a starved machine even a reading module can fall a queue behind, and the contract is
    // that it is told, never that ingest waits for it.
    let counter = std::thread::spawn(move || {
        let mut seen = std::collections::HashSet::new();
        let mut missed = 0usize;
        let deadline = Instant::now() + Duration::from_secs(240);
        while seen.len() + missed < N && Instant::now() < deadline {
            match reader.recv() {
                Some(v) if v["type"] == "event" => {
                    seen.insert(
                        v["event"]["process"]["command_line"]
                            .as_str()
                            .unwrap()
                            .to_owned(),
                    );
                }
                Some(v) if v["type"] == "missed" => {
                    missed += v["count"].as_u64().unwrap() as usize;
                }
                Some(_) => {}
                None => break,
            }
        }
        (seen.len(), missed)
    });

    let token = tokio::task::block_in_place(|| dep.token("firehose", &[]));
    let dir = dep.agent_dir("firehose");
    honeybee_agent::enroll::enroll(&token, &dir).await.unwrap();
    let mut opts = AgentOptions::full(dir);
    opts.services = false;
    let agent = Agent::start(opts).await.unwrap();
    for i in 0..N {
        agent
            .sink()
            .emit(NewEvent::now(
                "synthetic",
                None,
                None,
                None,
                EventKind::Command {
                    line: format!("cmd {i}"),
                },
            ))
            .await;
    }
    let received = tokio::task::spawn_blocking(move || counter.join().unwrap())
        .await
        .unwrap();
    let (received, missed) = received;
    assert_eq!(
        received + missed,
        N,
        "the reading module got every event or was told it missed it ({received} + {missed})"
    );
    assert!(
        received >= N / 2,
        "the stalled module must not starve the reading one: {received} of {N}"
    );
    let stored = tokio::task::block_in_place(|| {
        dep.events(&["--node", "firehose", "--limit", "10000"])
            .len()
    });
    assert_eq!(
        stored, 10_000,
        "ingest stored everything (listing is capped at 10000)"
    );
    let list: Vec<Value> = tokio::task::block_in_place(|| {
        serde_json::from_str(&ok(&["module", "list", "--json", "--data-dir", &dep.d()])).unwrap()
    });
    let s = list.iter().find(|m| m["name"] == "stalled");
    // Either still connected with a full queue and a count of what it missed, or already
    // disconnected for lagging: both leave everyone else untouched.
    if let Some(s) = s {
        assert!(s["dropped"].as_u64().unwrap() > 0, "{s}");
    }
    agent.stop().await.unwrap();
    drop(stuck);
}

#[test]
fn managed_modules_load_and_unload_at_runtime() {
    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let _agent = dep.start_agent("mm");
    let port = dep.service_port("mm", "banner");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/modules/py_managed.py");
    let d = dep.d();
    ok(&[
        "module",
        "load",
        "watcher",
        "--data-dir",
        &d,
        "--permissions",
        "events:read",
        "--",
        "python3",
        script,
    ]);
    let list = wait_for("managed module connected", Duration::from_secs(30), || {
        let list: Vec<Value> =
            serde_json::from_str(&ok(&["module", "list", "--json", "--data-dir", &d])).ok()?;
        list.into_iter().find(|m| {
            m["name"] == "watcher" && m["state"] == "connected" && m["subscriptions"] == 1
        })
    });
    assert_eq!(list["managed"], true);
    let pid = list["pid"].as_u64().expect("pid") as i32;
    probe(port, "while loaded\n");
    // Its output lands in the core's log.
    wait_for(
        "module output in the core log",
        Duration::from_secs(30),
        || {
            dep.core
                .as_ref()
                .unwrap()
                .log_text()
                .contains("event data")
                .then_some(())
        },
    );
    ok(&["module", "unload", "watcher", "--data-dir", &d]);
    let list: Vec<Value> =
        serde_json::from_str(&ok(&["module", "list", "--json", "--data-dir", &d])).unwrap();
    assert!(list.iter().all(|m| m["name"] != "watcher"), "{list:?}");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists() || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.contains(") Z ")
        },
        "the module process is gone"
    );
    // Events keep flowing with the module gone.
    probe(port, "after unload\n");
    wait_for("event after unload", Duration::from_secs(30), || {
        ok(&["events", "--kind", "data", "--data-dir", &d])
            .contains("after unload")
            .then_some(())
    });
    let audit = dep.audit();
    assert!(audit.iter().any(|a| a["action"] == "module.load"));
    assert!(audit.iter().any(|a| a["action"] == "module.unload"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_module_over_quic_filters_commands_and_alerts() {
    use honeybee_module_sdk::{EventFilter, Module, ModuleConfig};
    let mut dep = Deployment::init(|t| t);
    tokio::task::block_in_place(|| dep.start_core());
    let _agent = tokio::task::block_in_place(|| dep.start_agent("rq"));
    let port = tokio::task::block_in_place(|| dep.service_port("rq", "banner"));
    let dir = dep.dir.path().join("rusty");
    tokio::task::block_in_place(|| {
        ok(&[
            "module",
            "cert",
            "--data-dir",
            &dep.d(),
            "--name",
            "rusty",
            "--permissions",
            "events:read,nodes:command,alerts:write",
            "--out",
            dir.to_str().unwrap(),
        ])
    });
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(dir.join("module.pem"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let cfg = ModuleConfig::load(&dir).unwrap();
    let mut m = Module::connect(&cfg, "test", &[]).await.unwrap();
    assert_eq!(m.granted.len(), 3);
    let sub = m
        .subscribe(EventFilter {
            kinds: vec!["data".into()],
            nodes: vec!["rq".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    for i in 0..3 {
        tokio::task::block_in_place(|| probe(port, &format!("quic-{i}\n")));
    }
    for i in 0..3 {
        let (s, ev) = tokio::time::timeout(Duration::from_secs(30), m.next_event())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s, sub);
        assert_eq!(ev["event"]["action"], "data");
        assert!(
            ev["honeybee"]["data_text"]
                .as_str()
                .unwrap()
                .starts_with(&format!("quic-{i}"))
        );
    }
    let out = m.command("rq", "ping").await.unwrap();
    assert_eq!(out["output"], "pong");
    m.alert("low", "rusty was here", "", None).await.unwrap();
    // Not granted: enrich:write.
    let err = m
        .enrich(
            honeybee_proto::module::EventRef {
                node: "rq".into(),
                seq: 1,
            },
            Default::default(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("forbidden"), "{err}");
    m.close().await;
    let alerts = tokio::task::block_in_place(|| ok(&["alerts", "--data-dir", &dep.d()]));
    assert!(alerts.contains("rusty was here"), "{alerts}");

    // The module certificate opens nothing else: not an agent session, not the admin API.
    let ca = common::quic::load_ca(&dep.core_dir());
    let addr: SocketAddr = format!("127.0.0.1:{}", dep.port).parse().unwrap();
    let ident = common::quic::ClientId {
        chain: honeybee_pki::files::pem_to_der_certs(
            &std::fs::read_to_string(dir.join("module.pem")).unwrap(),
        )
        .unwrap(),
        key: honeybee_pki::keys::KeyPair::from_pem(
            &std::fs::read_to_string(dir.join("module.pem")).unwrap(),
        )
        .unwrap(),
    };
    let (_ep, conn) =
        common::quic::connect(addr, ca.cert_der(), &ident, honeybee_proto::alpn::ADMIN)
            .await
            .unwrap();
    let e = common::quic::closed_within(&conn, Duration::from_secs(5)).await;
    assert_eq!(
        common::quic::app_code(&e),
        Some(honeybee_proto::stream::close::FORBIDDEN as u64)
    );
}

#[test]
fn the_shim_can_speak_tls() {
    let mut dep = Deployment::init(|t| t.replace("shim_tls = false", "shim_tls = true"));
    dep.start_core();
    let addr = dep.shim_addr();
    let cred = dep.module_credential("tlsmod", "events:read");
    let script = r#"
import os, sys
sys.path.insert(0, os.environ["SDK"])
from honeybee_module import Module
with Module("tlsmod", tls_ca=os.environ["CA"]) as m:
    print(m.ping())
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .env(
            "SDK",
            concat!(env!("CARGO_MANIFEST_DIR"), "/modules/python"),
        )
        .env("CA", dep.core_dir().join("pki/ca.crt"))
        .env("HONEYBEE_SHIM_ADDR", addr.to_string())
        .env("HONEYBEE_MODULE_CREDENTIAL", &cred)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pong");
    // A plaintext hello gets no answer it could read as a frame.
    let mut plain = Raw::connect(addr);
    plain
        .0
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    plain.send(&json!({"type": "hello", "name": "tlsmod", "version": "t", "protocol": 1, "credential": cred}));
    assert!(plain.recv().is_none_or(|v| v["type"] != "welcome"));
    // And a shim beyond loopback without TLS is refused at start-up, saying why.
    let dep2 = Deployment::init(|t| {
        t.replace(
            "shim_listen = \"127.0.0.1:0\"",
            "shim_listen = \"0.0.0.0:0\"",
        )
    });
    let err = fails(&["core", "run", "--data-dir", &dep2.d()]);
    assert!(err.contains("shim_tls = true"), "{err}");
}

#[test]
fn modules_listed_in_core_toml_start_and_stop_with_the_core() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/modules/py_managed.py");
    let mut dep = Deployment::init(|t| {
        format!(
            "{t}\n[[module]]\nname = \"from-config\"\ncommand = \"python3\"\nargs = [{script:?}]\npermissions = [\"events:read\"]\n"
        )
    });
    dep.start_core();
    let d = dep.d();
    let m = wait_for(
        "configured module connected",
        Duration::from_secs(30),
        || {
            let list: Vec<Value> =
                serde_json::from_str(&ok(&["module", "list", "--json", "--data-dir", &d])).ok()?;
            list.into_iter()
                .find(|m| m["name"] == "from-config" && m["state"] == "connected")
        },
    );
    let pid = m["pid"].as_u64().unwrap();
    // Stopping the core stops its modules.
    let status = dep.core.as_mut().unwrap().terminate();
    assert!(status.success());
    let gone = !std::path::Path::new(&format!("/proc/{pid}")).exists()
        || std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ");
    assert!(gone, "module process {pid} outlived the core");
}

#[test]
fn shim_connection_caps_and_supervised_restarts() {
    let mut dep = Deployment::init(|t| {
        t.replace(
            "max_connections_per_source = 128",
            "max_connections_per_source = 2",
        )
    });
    dep.start_core();
    let addr = dep.shim_addr();
    // Two connections from one address are served; the third is closed at once.
    let a = Raw::connect(addr);
    let b = Raw::connect(addr);
    std::thread::sleep(Duration::from_millis(200));
    let mut c = Raw::connect(addr);
    c.0.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut byte = [0u8; 1];
    assert!(
        matches!(c.0.read(&mut byte), Ok(0) | Err(_)),
        "third connection must be refused"
    );
    drop((a, b));

    // A managed module that keeps dying is restarted (with backoff), and says so.
    let d = dep.d();
    ok(&[
        "module",
        "load",
        "crasher",
        "--data-dir",
        &d,
        "--",
        "sh",
        "-c",
        // 16 lines a run: two runs overflow the kept tail (20 lines), so the cap shows, and
        // the tail (which spans runs) always holds a "crashing" once one run has ended.
        "seq 1 15; echo crashing; exit 3",
    ]);
    let m = wait_for("restarts counted", Duration::from_secs(30), || {
        let list: Vec<Value> =
            serde_json::from_str(&ok(&["module", "list", "--json", "--data-dir", &d])).ok()?;
        list.into_iter().find(|m| {
            m["name"] == "crasher"
                && m["restarts"].as_u64().unwrap_or(0) >= 2
                && m["log_tail"].as_array().is_some_and(|t| {
                    // Output is read apart from the exit: wait until a full tail ends
                    // with a run's last line.
                    t.len() == 20 && t.last() == Some(&json!("crashing"))
                })
        })
    });
    assert_eq!(m["managed"], true);
    assert!(dep.core.as_ref().unwrap().log_text().contains("crashing"));
    // The list says how it ended and what it last wrote, as the dashboard does.
    assert_eq!(m["last_exit"], "exit code 3", "{m}");
    let tail: Vec<&str> = m["log_tail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(tail.len(), 20, "{tail:?}");
    // Restarted and never connected (a shell does not speak the protocol).
    assert_eq!(m["crash_looping"], true, "{m}");
    let text = ok(&["module", "list", "--verbose", "--data-dir", &d]);
    let header = text.lines().next().unwrap();
    assert!(header.contains("EXIT"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("crasher "))
        .unwrap_or_else(|| panic!("{text}"));
    // MODULE STATE MANAGED VIA SUBS QUEUE DROPPED RESTARTS EXIT …
    assert_eq!(row.split_whitespace().nth(8), Some("3"), "{row}");
    assert!(row.contains("[crash-looping]"), "{row}");
    assert!(
        text.contains("crasher (last process: exit code 3), last output:"),
        "{text}"
    );
    assert!(text.contains("\n  crashing"), "{text}");
    ok(&["module", "unload", "crasher", "--data-dir", &d]);
}

// ---- the same tests on a PostgreSQL store (`common::on_postgres`: same body, a
// database of its own on this test binary's PostgreSQL server)

#[test]
fn python_module_filters_commands_alerts_and_enriches_on_postgres() {
    on_postgres(python_module_filters_commands_alerts_and_enriches);
}

#[test]
fn managed_modules_load_and_unload_at_runtime_on_postgres() {
    on_postgres(managed_modules_load_and_unload_at_runtime);
}

#[test]
fn rust_module_over_quic_filters_commands_and_alerts_on_postgres() {
    on_postgres(rust_module_over_quic_filters_commands_and_alerts);
}
