//! The dashboard's live feed across forced reconnects, against a real core, a real agent's
//! HTTP honeypot and the real `honeybee dashboard run` process over QUIC: numbered requests
//! (`/n/1..N`) keep arriving while the core kicks the dashboard's module connection (a
//! second connection under its name) and while the core process restarts, and one browser
//! WebSocket must show every numbered event exactly once and in order. A browser that
//! reconnects with `?last_id=` then gets exactly what came after that id.

mod common;
use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite;

const ADMIN_PASSWORD: &str = "live resume test password";
/// Numbered requests in all.
const N: u32 = 100;

/// Signs in as admin; returns the session cookie.
async fn login(http: &reqwest::Client, url: &str) -> String {
    let r = http
        .post(format!("{url}/api/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("dashboard answers");
    assert!(r.status().is_success(), "sign-in: {}", r.status());
    let c = r.headers()["set-cookie"].to_str().unwrap();
    c.split(';').next().unwrap().to_owned()
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_ws(url: &str, cookie: &str, last_id: Option<i64>) -> Ws {
    use tungstenite::client::IntoClientRequest;
    let q = last_id
        .map(|id| format!("?last_id={id}"))
        .unwrap_or_default();
    let mut req = format!("{}/api/ws{q}", url.replacen("http://", "ws://", 1))
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    tokio_tungstenite::connect_async(req)
        .await
        .expect("WebSocket opens")
        .0
}

/// What one WebSocket has shown: numbered events (n, store id) in arrival order, and the
/// `missed` messages.
#[derive(Default)]
struct Seen {
    numbered: Vec<(u32, i64)>,
    missed: Vec<Value>,
    /// Store id of the first event message of any kind.
    first_id: Option<i64>,
}

impl Seen {
    fn take(&mut self, m: &Value) {
        match m["type"].as_str() {
            Some("missed") => self.missed.push(m.clone()),
            Some("event") => {
                let id = m["id"].as_i64().expect("live events carry their store id");
                self.first_id.get_or_insert(id);
                if let Some(n) = m["event"]["url"]["path"]
                    .as_str()
                    .and_then(|p| p.strip_prefix("/n/"))
                    .and_then(|n| n.parse().ok())
                {
                    self.numbered.push((n, id));
                }
            }
            _ => {}
        }
    }

    fn has(&self, n: u32) -> bool {
        self.numbered.iter().any(|(k, _)| *k == n)
    }
}

/// Reads messages into `seen` until `done(seen)`, or panics after `limit`.
async fn read_until(
    ws: &mut Ws,
    seen: &mut Seen,
    limit: Duration,
    what: &str,
    done: impl Fn(&Seen) -> bool,
) {
    let deadline = Instant::now() + limit;
    while !done(seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out after {limit:?} waiting for {what}"
        );
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(tungstenite::Message::Text(t)))) => {
                seen.take(&serde_json::from_str(&t).expect("JSON message"))
            }
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("WebSocket ended while waiting for {what}: {other:?}"),
            Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
        }
    }
}

/// One request to the honeypot; the honeypot answers whatever it likes.
async fn hit(http: &reqwest::Client, port: u16, path: &str) {
    let _ = http
        .get(format!("http://127.0.0.1:{port}{path}"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("the HTTP honeypot answers");
}

async fn numbered(http: &reqwest::Client, port: u16, range: std::ops::RangeInclusive<u32>) {
    for n in range {
        hit(http, port, &format!("/n/{n}")).await;
    }
}

/// Connects to the core's shim as module `dashboard`: the core replaces the dashboard's
/// own connection (one connection per module name), a core-side disconnect.
fn kick_dashboard(dep: &Deployment, cred: &str) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(dep.shim_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let hello = serde_json::to_vec(
        &json!({"type": "hello", "name": "dashboard", "version": "t",
        "protocol": 1, "credential": cred, "permissions": ["events:read"]}),
    )
    .unwrap();
    s.write_all(&(hello.len() as u32).to_be_bytes()).unwrap();
    s.write_all(&hello).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["type"], "welcome", "{v}");
    s
}

/// Waits until the dashboard has opened its live stream from the core `n` times.
fn wait_for_opens(dash: &Proc, n: usize) {
    wait_for(
        &format!("the dashboard's live stream opened {n} times"),
        Duration::from_secs(60),
        || {
            let opens = dash
                .log_text()
                .matches("live event stream from the core open")
                .count();
            (opens >= n).then_some(())
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_feed_resumes_across_forced_reconnects() {
    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let _agent = dep.start_agent("n1");
    let port = dep.service_port("n1", "http");
    let (dash, url) = dep.start_dashboard(ADMIN_PASSWORD);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let cookie = login(&http, &url).await;
    let mut ws = open_ws(&url, &cookie, None).await;
    let mut seen = Seen::default();

    // The dashboard's stream is open once a warm-up request shows up live.
    let warm_deadline = Instant::now() + Duration::from_secs(60);
    loop {
        hit(&http, port, "/warm").await;
        let got = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(m)) = ws.next().await {
                if let tungstenite::Message::Text(t) = m {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["event"]["url"]["path"] == "/warm" {
                        return true;
                    }
                }
            }
            false
        })
        .await;
        if got == Ok(true) {
            break;
        }
        assert!(Instant::now() < warm_deadline, "no live event within 60 s");
    }

    numbered(&http, port, 1..=30).await;
    // Core-side disconnect while the core keeps storing: requests go on meanwhile.
    let cred = dep.module_credential("dashboard", "events:read");
    let mut kicker = kick_dashboard(&dep, &cred);
    numbered(&http, port, 31..=60).await;
    // The dashboard comes back and in turn replaces this connection: it ends.
    let mut rest = Vec::new();
    let _ = kicker.read_to_end(&mut rest);
    wait_for_opens(&dash, 2);
    // The core process restarts: the agent spools what arrives while it is down.
    let status = dep.core.as_mut().unwrap().terminate();
    assert!(
        status.success(),
        "core exits cleanly on SIGTERM: {status:?}"
    );
    numbered(&http, port, 61..=75).await;
    dep.start_core();
    wait_for_opens(&dash, 3);
    numbered(&http, port, 76..=N).await;

    read_until(
        &mut ws,
        &mut seen,
        Duration::from_secs(120),
        "every numbered event",
        |s| (1..=N).all(|n| s.has(n)) || !s.missed.is_empty(),
    )
    .await;
    // A duplicate would come after: read until 3 s pass in silence.
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(3), ws.next()).await {
        if let tungstenite::Message::Text(t) = m {
            seen.take(&serde_json::from_str(&t).expect("JSON message"));
        }
    }
    assert!(
        seen.missed.is_empty(),
        "nothing should be missed for {N} events: {:?}",
        seen.missed
    );
    // Exactly once each, in store order. (The agent may record request 5 before request 4
    // when their handlers race, so the order is the store's, not the numbers'.)
    assert_once_in_store_order(&seen, 1..=N);
    let log = dash.log_text();
    // For the record: how much each reconnect replayed from the store.
    for line in log.lines().filter(|l| l.contains("live")) {
        eprintln!("dashboard: {line}");
    }
    assert!(
        log.contains("live event stream caught up with the store")
            && log.contains("reconnecting and resuming"),
        "{log}"
    );
    assert!(
        !log.contains(" ERROR "),
        "a reconnect is not an error: {log}"
    );

    // A browser that reconnects with the id of /n/50 gets what came after it, each once,
    // in the same order.
    let id50 = seen
        .numbered
        .iter()
        .find(|(n, _)| *n == 50)
        .expect("/n/50 was seen")
        .1;
    let after: Vec<(u32, i64)> = seen
        .numbered
        .iter()
        .filter(|(_, id)| *id > id50)
        .copied()
        .collect();
    let last = seen.numbered.last().expect("events seen").0;
    let mut again = open_ws(&url, &cookie, Some(id50)).await;
    let mut replay = Seen::default();
    read_until(
        &mut again,
        &mut replay,
        Duration::from_secs(30),
        "the browser replay",
        |s| s.has(last),
    )
    .await;
    assert_eq!(
        replay.numbered, after,
        "the replay is what came after /n/50"
    );
    assert!(replay.missed.is_empty(), "{:?}", replay.missed);

    // One whose id is older than what the dashboard keeps is told how many it lacks, then
    // gets all it kept.
    let mut old = open_ws(&url, &cookie, Some(0)).await;
    let mut told = Seen::default();
    read_until(
        &mut old,
        &mut told,
        Duration::from_secs(30),
        "the replay from 0",
        |s| s.has(last),
    )
    .await;
    let first = told.first_id.expect("events replayed");
    if first > 1 {
        assert_eq!(told.missed.len(), 1, "{:?}", told.missed);
        assert_eq!(told.missed[0]["count"], first - 1);
        assert_eq!(told.missed[0]["reason"], "reconnect");
    }
    assert_eq!(told.numbered, seen.numbered, "the whole run, replayed");
}

/// Every number in `range` exactly once, with store ids increasing in arrival order.
fn assert_once_in_store_order(seen: &Seen, range: std::ops::RangeInclusive<u32>) {
    let mut numbers: Vec<u32> = seen.numbered.iter().map(|(n, _)| *n).collect();
    numbers.sort_unstable();
    assert_eq!(
        numbers,
        range.collect::<Vec<_>>(),
        "every numbered event exactly once: {:?}",
        seen.numbered
    );
    assert!(
        seen.numbered.windows(2).all(|w| w[0].1 < w[1].1),
        "store ids increase in arrival order: {:?}",
        seen.numbered
    );
}

// ---- the same tests on a PostgreSQL store (`common::on_postgres`: same body, a
// database of its own on this test binary's PostgreSQL server)

#[test]
fn live_feed_resumes_across_forced_reconnects_on_postgres() {
    on_postgres(live_feed_resumes_across_forced_reconnects);
}
