//! Attacks on the people who run HoneyBee, performed against a real deployment: attacker
//! text with terminal controls and bidi overrides read through `honeybee events` and
//! `honeybee alerts` (escaped for humans, exact in `--json`); a flood of parallel sign-ins
//! at the real dashboard (only the allowed guesses are evaluated, hashing is bounded); and
//! SIGTERM to a real `honeybee-agent run` with a telnet session open (clean exit, the
//! session's disconnect and transcript reach the core).

mod common;
use common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What must never reach an operator's terminal raw: C0 (but the line feeds that end
/// lines), DEL, C1, bidi controls, zero-width and other invisible format characters, line
/// and paragraph separators.
fn raw_controls(s: &str) -> Vec<char> {
    s.chars()
        .filter(|&c| {
            let u = c as u32;
            (u < 0x20 && c != '\n')
                || (0x7f..=0x9f).contains(&u)
                || (0x200b..=0x200f).contains(&u)
                || (0x202a..=0x202e).contains(&u)
                || (0x2060..=0x206f).contains(&u)
                || matches!(u, 0xad | 0x61c | 0x2028 | 0x2029 | 0xfeff)
        })
        .collect()
}

/// The human output of `honeybee ARGS`, as bytes checked to be UTF-8.
fn human(args: &[&str]) -> String {
    ok(args)
}

// ------------------------------------------------------------------ finding 4

#[test]
fn attacker_text_is_escaped_for_terminals_and_exact_in_json() {
    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let _agent = dep.start_agent("term-1");
    let port = dep.service_port("term-1", "http");
    let d = dep.d();

    // An HTTP request whose path and query carry a right-to-left override (the classic
    // "gnp.exe" trick), a C1 control (NEL), a line separator and invisible characters:
    // bytes a web server accepts in a request target, sent raw over TCP.
    let path = "/invoice\u{202e}fdp.exe\u{2028}x\u{85}y\u{200b}z";
    let query = "q=\u{2066}a\u{feff}b";
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path}?{query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    assert!(reply.starts_with(b"HTTP/1.1 "), "{reply:?}");

    let ev = wait_for("the http_request event", Duration::from_secs(30), || {
        dep.events(&["--node", "term-1", "--service", "http"])
            .into_iter()
            .find(|e| e["event"]["action"] == "http_request")
    });
    let json_text = serde_json::to_string(&ev).unwrap();
    assert!(
        json_text.contains("\u{202e}fdp.exe\u{2028}x\u{85}y\u{200b}z"),
        "--json keeps the exact path: {json_text}"
    );
    assert!(json_text.contains("\u{2066}a\u{feff}b"), "{json_text}");

    let out = human(&["events", "--data-dir", &d, "--node", "term-1"]);
    assert!(
        raw_controls(&out).is_empty(),
        "raw controls in `honeybee events`: {:?}\n{out:?}",
        raw_controls(&out)
    );
    assert!(
        out.contains("/invoice\\u{202e}fdp.exe\\u{2028}x\\u{85}y\\u{200b}z"),
        "escaped visibly: {out}"
    );
    assert!(out.contains("q=\\u{2066}a\\u{feff}b"), "{out}");

    // An alert whose title a module built from an attacker's user name: ESC sequences
    // that clear the screen and set the window title, a carriage return that would
    // overwrite the line, a bidi override.
    let title = "login as \u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}[1;31mroot\rFAKE \u{202e}nimda";
    let cred = dep.module_credential("evil-alerts", "alerts:write");
    let shim = dep.shim_addr().to_string();
    let sdk = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("modules/python");
    let st = Command::new("python3")
        .args([
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]); from honeybee_module import Module; \
             m = Module(name='evil-alerts', permissions=['alerts:write'], addr=sys.argv[2], \
             credential=sys.argv[3]); m.connect(); m.alert('high', sys.argv[4]); m.close()",
        ])
        .args([sdk.to_str().unwrap(), &shim, &cred, title])
        .status()
        .expect("python3 runs");
    assert!(st.success(), "publishing the alert failed");

    let alerts: Vec<Value> =
        serde_json::from_str(&ok(&["alerts", "--json", "--data-dir", &d])).unwrap();
    assert!(
        alerts.iter().any(|a| a["title"] == title),
        "--json keeps the exact title: {alerts:?}"
    );
    let out = human(&["alerts", "--data-dir", &d]);
    assert!(
        raw_controls(&out).is_empty(),
        "raw controls in `honeybee alerts`: {out:?}"
    );
    assert!(
        out.contains("login as \\x1b]0;owned\\x07\\x1b[2J\\x1b[1;31mroot\\rFAKE \\u{202e}nimda"),
        "{out}"
    );

    // The other listings carry node- and attacker-supplied text too; none may hold raw
    // controls, whatever is in the store now.
    for args in [
        &["audit", "--data-dir", &d][..],
        &["nodes", "--data-dir", &d],
        &["captures", "--data-dir", &d],
        &["module", "list", "--data-dir", &d],
    ] {
        let out = human(args);
        assert!(raw_controls(&out).is_empty(), "{args:?}: {out:?}");
    }
}

// ------------------------------------------------------------------ finding 5

const ADMIN_PASSWORD: &str = "correct horse battery staple";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_sign_ins_get_only_the_allowed_guesses() {
    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let d = dep.d();
    let out = Command::new(bin())
        .args(["dashboard", "init", "--data-dir", &d])
        .env("HONEYBEE_DASHBOARD_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    // The real dashboard, in this process so the test can read its hash counters, with a
    // short window so that the right password can be shown to work again afterwards.
    const PER_USER: usize = 5;
    const HASHES: usize = 2;
    let limits = honeybee_dashboard::ratelimit::Limits {
        per_user: PER_USER,
        per_source: 10_000,
        window: Duration::from_secs(5),
        max_concurrent_hashes: HASHES,
        max_queued_hashes: 8,
        ..Default::default()
    };
    let mut opts = honeybee_dashboard::Options::new(dep.core_dir(), "127.0.0.1:0".parse().unwrap());
    opts.limits = limits;
    let dash = honeybee_dashboard::start(opts)
        .await
        .expect("dashboard starts");
    let url = format!("http://{}/api/login", dash.addr);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    let wave = |users: Vec<String>| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let tasks: Vec<_> = users
                .into_iter()
                .map(|u| {
                    let (http, url) = (http.clone(), url.clone());
                    tokio::spawn(async move {
                        let r = http
                            .post(&url)
                            .json(&serde_json::json!({"username": u, "password": "wrong guess"}))
                            .send()
                            .await
                            .expect("dashboard answers");
                        r.status().as_u16()
                    })
                })
                .collect();
            let mut statuses = Vec::new();
            for t in tasks {
                statuses.push(t.await.unwrap());
            }
            statuses
        }
    };
    let count = |v: &[u16], s: u16| v.iter().filter(|&&x| x == s).count();

    // 200 parallel wrong passwords for one account: the limiter counts each attempt
    // before hashing, so at most PER_USER guesses are evaluated; the rest are 429.
    let statuses = wave(vec!["admin".to_owned(); 200]).await;
    let (guessed, refused) = (count(&statuses, 401), count(&statuses, 429));
    assert_eq!(guessed + refused, 200, "only 401 or 429: {statuses:?}");
    assert!(
        guessed <= PER_USER,
        "{guessed} guesses evaluated for one account, limit {PER_USER}"
    );
    let st = dash.hash_stats();
    assert_eq!(st.hashed as usize, guessed, "{st:?}");
    assert!(st.peak_concurrent <= HASHES, "{st:?}");

    // 200 parallel sign-ins for 200 different names (no per-user limit applies): argon2
    // never runs more than HASHES at once, and no request waits beyond the queue bound.
    let statuses = wave((0..200).map(|i| format!("user{i}")).collect()).await;
    let (guessed2, refused2) = (count(&statuses, 401), count(&statuses, 429));
    assert_eq!(guessed2 + refused2, 200, "{statuses:?}");
    let st = dash.hash_stats();
    assert_eq!(st.hashed as usize, guessed + guessed2, "{st:?}");
    assert_eq!(st.refused_busy as usize, refused2, "{st:?}");
    assert!(st.peak_concurrent <= HASHES, "{st:?}");

    // The right password works again once the window has passed.
    let start = Instant::now();
    loop {
        let r = http
            .post(&url)
            .json(&serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap();
        if r.status() == reqwest::StatusCode::OK {
            break;
        }
        assert_eq!(r.status(), reqwest::StatusCode::TOO_MANY_REQUESTS);
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the right password never worked again"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    dash.shutdown().await;
}

// ------------------------------------------------------------------ finding 12

/// The small `honeybee-agent` binary. Cargo gives integration tests only their own
/// package's binaries, so it is built here (a no-op when it is up to date), unless
/// HONEYBEE_AGENT_BIN names one.
fn agent_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("HONEYBEE_AGENT_BIN") {
        return p.into();
    }
    let mut cargo = Command::new(env!("CARGO"));
    // The variables cargo sets for a running test would make build scripts (ring's) see
    // a changed environment and rebuild half the tree for nothing: drop them.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_BIN_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ]
            .contains(&k.as_ref())
        {
            cargo.env_remove(k.as_ref());
        }
    }
    let st = cargo
        .args([
            "build",
            "--locked",
            "-p",
            "honeybee-agent",
            "--bin",
            "honeybee-agent",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(st.success(), "building honeybee-agent failed");
    PathBuf::from(bin()).with_file_name("honeybee-agent")
}

/// A minimal telnet client side: reads from `s` until the data (option negotiation taken
/// out) holds `needle`, or panics after `limit`. It refuses every option the server asks
/// it to enable and accepts every option the server offers, as a plain client does.
fn read_until(s: &mut TcpStream, needle: &[u8], limit: Duration) -> Vec<u8> {
    const IAC: u8 = 255;
    let start = Instant::now();
    let mut data = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while !data.windows(needle.len()).any(|w| w == needle) {
        assert!(
            start.elapsed() < limit,
            "no {:?} within {limit:?}; got {:?}",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(&data)
        );
        match s.read(&mut buf) {
            Ok(0) => panic!("closed; got {:?}", String::from_utf8_lossy(&data)),
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(_) => continue,
        }
        let mut i = 0;
        let mut reply = Vec::new();
        while i < pending.len() {
            if pending[i] != IAC {
                data.push(pending[i]);
                i += 1;
                continue;
            }
            let Some(&cmd) = pending.get(i + 1) else {
                break;
            };
            match cmd {
                // WILL, WONT, DO, DONT + option.
                251..=254 => {
                    let Some(&opt) = pending.get(i + 2) else {
                        break;
                    };
                    match cmd {
                        251 => reply.extend_from_slice(&[IAC, 253, opt]),
                        253 => reply.extend_from_slice(&[IAC, 252, opt]),
                        _ => {}
                    }
                    i += 3;
                }
                // SB … IAC SE.
                250 => match pending[i..].windows(2).position(|w| w == [IAC, 240]) {
                    Some(p) => i += p + 2,
                    None => break,
                },
                IAC => {
                    data.push(IAC);
                    i += 2;
                }
                _ => i += 2,
            }
        }
        pending.drain(..i.min(pending.len()));
        if !reply.is_empty() {
            s.write_all(&reply).unwrap();
        }
    }
    data
}

#[test]
fn agent_binary_stops_cleanly_on_sigterm_and_keeps_the_open_session() {
    let agent_bin = agent_bin();
    let mut dep = Deployment::init(|t| {
        // The telnet persona lets everyone in at once.
        assert!(t.contains("kind = \"telnet\"\n"), "{t}");
        t.replace(
            "kind = \"telnet\"\n",
            "kind = \"telnet\"\nlogin = \"always\"\n",
        )
    });
    dep.start_core();
    let token = dep.token("term-agent", &[]);
    let a = dep.agent_dir("term-agent");
    let a_str = a.to_str().unwrap().to_owned();
    ok(&["agent", "enroll", "--token", &token, "--data-dir", &a_str]);
    let spawn = |tag: &str| {
        let log = dep.dir.path().join(format!("agent-{tag}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(&agent_bin)
            .args(["run", "--data-dir", &a_str])
            .env("RUST_LOG", "info,quinn=warn")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("spawn honeybee-agent");
        Proc { child, log }
    };
    let mut agent = spawn("first");
    let port = dep.service_port("term-agent", "telnet");

    // A telnet intruder logs in, runs a command and stays connected.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    read_until(&mut s, b"login: ", Duration::from_secs(20));
    s.write_all(b"root\r\n").unwrap();
    read_until(&mut s, b"Password: ", Duration::from_secs(20));
    s.write_all(b"123456\r\n").unwrap();
    read_until(&mut s, b"# ", Duration::from_secs(20));
    s.write_all(b"echo still-here-at-sigterm\r\n").unwrap();
    read_until(
        &mut s,
        b"still-here-at-sigterm\r\n",
        Duration::from_secs(20),
    );
    let command = wait_for("the command event", Duration::from_secs(30), || {
        dep.events(&["--kind", "command", "--node", "term-agent"])
            .into_iter()
            .next()
    });
    let session = command["session"]["id"].as_str().unwrap().to_owned();

    // What systemd does to stop the unit.
    let status = agent.terminate();
    assert!(
        status.success(),
        "honeybee-agent must exit 0 on SIGTERM, got {status:?}; log:\n{}",
        agent.log_text()
    );
    drop(s);

    // The session was closed by the shutdown: its disconnect and its transcript were
    // spooled, and reach the core (now, or when the agent runs again).
    let _again = spawn("second");
    let d = dep.d();
    let evs = wait_for(
        "the session's disconnect and transcript at the core",
        Duration::from_secs(60),
        || {
            let evs: Vec<Value> = dep
                .events(&["--node", "term-agent", "--service", "telnet"])
                .into_iter()
                .filter(|e| e["session"]["id"] == session.as_str())
                .collect();
            let has = |a: &str| evs.iter().any(|e| e["event"]["action"] == a);
            (has("disconnect") && has("capture")).then_some(evs)
        },
    );
    assert!(!evs.is_empty());
    let caps: Value = serde_json::from_str(&ok(&["captures", "--json", "--data-dir", &d])).unwrap();
    let cast = caps
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "transcript" && c["session"] == session.as_str())
        .expect("the transcript is stored");
    let file = dep.dir.path().join("t.cast");
    ok(&[
        "capture",
        "get",
        cast["sha256"].as_str().unwrap(),
        "-o",
        file.to_str().unwrap(),
        "--data-dir",
        &d,
    ]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("still-here-at-sigterm"), "{text}");
}

// ---- the same tests on a PostgreSQL store (`common::on_postgres`: same body, a
// database of its own on this test binary's PostgreSQL server)

#[test]
fn attacker_text_is_escaped_for_terminals_and_exact_in_json_on_postgres() {
    on_postgres(attacker_text_is_escaped_for_terminals_and_exact_in_json);
}
