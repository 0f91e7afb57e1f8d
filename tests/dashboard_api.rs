//! The dashboard's REST and WebSocket API against a real core, a real agent and the real
//! `honeybee dashboard run` process: sign-in, sessions, CSRF, roles, rate limiting, live
//! events from a real OpenSSH login attempt, event search and pagination, tokens, config
//! push applied by the agent, module load/unload, revocation, reports, and the OpenAPI
//! document covering every route.

mod common;
use common::*;
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite;

const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// One signed-in (or not) browser: its cookie and CSRF token.
#[derive(Clone)]
struct Api {
    base: String,
    http: reqwest::Client,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl Api {
    fn new(base: &str) -> Api {
        Api {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            cookie: None,
            csrf: None,
        }
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        csrf: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        if let Some(t) = csrf {
            req = req.header("x-csrf-token", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.expect("dashboard answers")
    }

    /// A request with this session's CSRF token; returns the status and JSON body.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let r = self.raw(method, path, body, self.csrf.as_deref()).await;
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        let (s, v) = self.call(Method::GET, path, None).await;
        assert_eq!(s, StatusCode::OK, "GET {path}: {v}");
        v
    }

    async fn login(&mut self, user: &str, password: &str) -> (StatusCode, Value) {
        let r = self
            .raw(
                Method::POST,
                "/api/login",
                Some(json!({"username": user, "password": password})),
                None,
            )
            .await;
        let status = r.status();
        if let Some(c) = r.headers().get("set-cookie") {
            let c = c.to_str().unwrap().to_owned();
            assert!(
                c.contains("HttpOnly") && c.contains("SameSite=Strict"),
                "{c}"
            );
            self.cookie = c.split(';').next().map(str::to_owned);
        }
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if status == StatusCode::OK {
            self.csrf = v["csrf"].as_str().map(str::to_owned);
        }
        (status, v)
    }
}

/// Polls an async condition until it yields, or panics after `limit`.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_ws(api: &Api, origin: Option<&str>) -> Result<Ws, tungstenite::Error> {
    use tungstenite::client::IntoClientRequest;
    let url = format!("{}/api/ws", api.base.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request().unwrap();
    if let Some(c) = &api.cookie {
        req.headers_mut().insert("cookie", c.parse().unwrap());
    }
    if let Some(o) = origin {
        req.headers_mut().insert("origin", o.parse().unwrap());
    }
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

/// Reads WebSocket messages until one satisfies `pick`, or panics after `limit`.
async fn ws_until(
    ws: &mut Ws,
    limit: Duration,
    what: &str,
    pick: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no WebSocket message for {what} within {limit:?}"
        );
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(tungstenite::Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).expect("JSON message");
                if pick(&v) {
                    return v;
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("WebSocket ended while waiting for {what}: {other:?}"),
            Err(_) => panic!("no WebSocket message for {what} within {limit:?}"),
        }
    }
}

/// Percent-encodes a query-string value.
fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn ssh_attempt(port: u16, user: &str, password: &str) {
    let out = Command::new("sshpass")
        .args(["-p", password, "ssh", "-p", &port.to_string()])
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
            "NumberOfPasswordPrompts=1",
            "-o",
            "ConnectTimeout=10",
        ])
        .arg(format!("{user}@127.0.0.1"))
        .arg("true")
        .output()
        .expect("run ssh");
    assert!(!out.status.success(), "the honeypot must not grant a shell");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_api_against_a_real_core_and_agent() {
    assert!(
        have("ssh") && have("sshpass"),
        "this test needs OpenSSH's ssh and sshpass (.ci/run installs them)"
    );
    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let _agent = dep.start_agent("n1");
    let ssh_port = dep.service_port("n1", "ssh");
    dep.service_port("n1", "smtp");
    let (dash, url) = dep.start_dashboard(ADMIN_PASSWORD);
    // The admin's password came from the environment: the operator knows it, and it
    // must not end up in a log.
    let printed = dash.log_text();
    assert!(
        printed.contains("password from HONEYBEE_DASHBOARD_ADMIN_PASSWORD")
            && !printed.contains(ADMIN_PASSWORD),
        "{printed}"
    );
    let _dash = dash;

    // ---- sign-in, sessions, CSRF
    let anon = Api::new(&url);
    let (s, _) = anon.call(Method::GET, "/api/me", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let mut admin = Api::new(&url);
    let (s, v) = admin.login("admin", "not the password").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert!(v["error"].is_string());
    let (s, v) = admin.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["role"], "admin");
    let me = admin.get("/api/me").await;
    assert_eq!(me["username"], "admin");
    assert_eq!(me["csrf"], v["csrf"]);

    let body = json!({"name": "csrf-probe", "role": "agent"});
    let r = admin
        .raw(Method::POST, "/api/tokens", Some(body.clone()), None)
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no CSRF header");
    let r = admin
        .raw(Method::POST, "/api/tokens", Some(body), Some("forged"))
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "wrong CSRF header");

    // ---- the WebSocket: cookie required, Origin checked
    assert!(open_ws(&anon, None).await.is_err(), "no cookie, no socket");
    assert!(
        open_ws(&admin, Some("http://evil.example")).await.is_err(),
        "foreign Origin refused"
    );
    let host = url.trim_end_matches('/').to_owned();
    let mut ws = open_ws(&admin, Some(&host)).await.expect("WebSocket opens");

    // ---- a real SSH login attempt appears live, then in search
    ssh_attempt(ssh_port, "dashuser", "live-secret-42");
    let live = ws_until(&mut ws, Duration::from_secs(30), "the SSH attempt", |m| {
        m["type"] == "event"
            && m["event"]["event"]["action"] == "auth_attempt"
            && m["event"]["user"]["name"] == "dashuser"
            && m["event"]["honeybee"]["method"] == "password"
    })
    .await;
    let ev = &live["event"];
    assert_eq!(ev["observer"]["name"], "n1");
    assert_eq!(ev["service"]["name"], "ssh");
    assert_eq!(ev["honeybee"]["password"], "live-secret-42");
    assert!(ev["event"]["time_ms"].as_i64().unwrap() > 0);
    let seq = ev["event"]["sequence"].as_u64().unwrap();
    let session_id = ev["session"]["id"].as_str().unwrap().to_owned();

    let page = admin
        .get("/api/events?kind=auth_attempt&service=ssh&node=n1")
        .await;
    let events = page["events"].as_array().unwrap();
    assert!(!events.is_empty());
    assert!(
        events
            .iter()
            .all(|e| e["event"]["action"] == "auth_attempt" && e["service"]["name"] == "ssh")
    );
    let found = admin.get("/api/events?q=LIVE-SECRET").await;
    let hits = found["events"].as_array().unwrap();
    assert!(
        !hits.is_empty()
            && hits
                .iter()
                .all(|e| e["honeybee"]["password"] == "live-secret-42"),
        "{found}"
    );
    let none = admin.get("/api/events?q=nothing-like-this").await;
    assert!(none["events"].as_array().unwrap().is_empty());
    let by_src = admin.get("/api/events?src=127.0.0.&kind=connect").await;
    assert!(!by_src["events"].as_array().unwrap().is_empty());

    // ---- the search language: fields, AND/OR/NOT, CIDR, errors with a position
    let q = |text: &str| format!("/api/events?limit=500&query={}", url_escape(text));
    let hits = admin
        .get(&q("service:ssh AND kind:auth_attempt AND user:dashuser"))
        .await;
    let evs = hits["events"].as_array().unwrap();
    assert!(
        !evs.is_empty()
            && evs
                .iter()
                .all(|e| e["user"]["name"] == "dashuser" && e["event"]["action"] == "auth_attempt"),
        "{hits}"
    );
    assert_eq!(hits["query"]["op"], "and", "the parsed query comes back");
    let loopback = admin.get(&q("service:ssh AND source.ip:127.0.0.0/8")).await;
    assert!(!loopback["events"].as_array().unwrap().is_empty());
    let outside = admin
        .get(&q("service:ssh AND NOT source.ip:127.0.0.0/8"))
        .await;
    assert!(
        outside["events"].as_array().unwrap().is_empty(),
        "every attempt here came from loopback: {outside}"
    );
    let either = admin
        .get(&q("(kind:connect OR kind:disconnect) -service:smtp"))
        .await;
    let evs = either["events"].as_array().unwrap();
    assert!(
        !evs.is_empty()
            && evs.iter().all(|e| {
                (e["event"]["action"] == "connect" || e["event"]["action"] == "disconnect")
                    && e["service"]["name"] != "smtp"
            }),
        "{either}"
    );
    let (s, v) = admin
        .call(Method::GET, &q("service:ssh AND (kind:command"), None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["position"], 16, "{v}");
    assert!(v["error"].as_str().unwrap().contains("never closed"), "{v}");
    let (s, v) = admin.call(Method::GET, &q(&"(".repeat(1000)), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    // Pagination: pages of one, newest first, no repeats, ending with next = null.
    let all = admin.get("/api/events?limit=500").await["events"]
        .as_array()
        .unwrap()
        .len();
    assert!(all >= 3, "connect, auth attempt, disconnect at least");
    let mut seen = Vec::new();
    let mut path = "/api/events?limit=1".to_owned();
    loop {
        let p = admin.get(&path).await;
        let evs = p["events"].as_array().unwrap();
        assert!(evs.len() <= 1);
        for e in evs {
            seen.push((
                e["observer"]["name"].clone(),
                e["event"]["sequence"].clone(),
                e["event"]["time_ms"].as_i64().unwrap(),
            ));
        }
        match p["next"].as_str() {
            Some(n) => path = format!("/api/events?limit=1&before={n}"),
            None => break,
        }
        assert!(seen.len() <= all + 1, "pagination does not end");
    }
    assert_eq!(seen.len(), all);
    assert!(seen.windows(2).all(|w| w[0].2 >= w[1].2), "newest first");
    let (s, _) = admin
        .call(Method::GET, "/api/events?before=garbage", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = admin
        .call(Method::GET, "/api/events?kind=bogus", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let one = admin.get(&format!("/api/events/n1/{seq}")).await;
    assert_eq!(one["user"]["name"], "dashuser");
    let (s, _) = admin.call(Method::GET, "/api/events/n1/999999", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let sess = admin.get(&format!("/api/sessions/{session_id}")).await;
    let sev = sess["events"].as_array().unwrap();
    assert!(sev.iter().any(|e| e["event"]["action"] == "auth_attempt"));
    assert!(
        sev.iter()
            .all(|e| e["session"]["id"] == session_id.as_str())
    );
    assert_eq!(sev[0]["event"]["action"], "connect", "oldest first");

    // ---- aggregates
    let ov = admin.get("/api/overview").await;
    assert_eq!(ov["nodes_online"], 1);
    assert!(ov["events_total"].as_u64().unwrap() >= 3);
    assert_eq!(ov["events_per_minute"].as_array().unwrap().len(), 60);
    let per_min: u64 = ov["events_per_minute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["count"].as_u64().unwrap())
        .sum();
    assert!(per_min >= 3, "{ov}");
    assert!(
        ov["top_credentials"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["username"] == "dashuser" && c["password"] == "live-secret-42"),
        "{ov}"
    );
    assert!(
        ov["top_services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["key"] == "ssh")
    );
    let an = admin.get("/api/analytics").await;
    assert!(
        an["by_service"]["ssh"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
        "{an}"
    );
    assert!(an["by_node"]["n1"].is_array());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let from = now - 3_600_000;
    let sum = admin
        .get(&format!(
            "/api/reports/summary?from={from}&to={}",
            now + 60_000
        ))
        .await;
    assert!(sum["events_total"].as_u64().unwrap() >= 3);
    let r = admin
        .raw(
            Method::GET,
            &format!(
                "/api/reports/export?from={from}&to={}&format=csv",
                now + 60_000
            ),
            None,
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let csv = r.text().await.unwrap();
    assert!(csv.starts_with("time,node,service,kind"));
    assert!(csv.contains("dashuser") && csv.contains("live-secret-42"));
    let r = admin
        .raw(
            Method::GET,
            &format!(
                "/api/reports/export?from={from}&to={}&format=json",
                now + 60_000
            ),
            None,
            None,
        )
        .await;
    let docs: Vec<Value> = r.json().await.unwrap();
    assert!(docs.iter().any(|d| d["user"]["name"] == "dashuser"));

    // ---- tokens
    let (s, t) = admin.call(Method::POST, "/api/tokens", Some(json!({"name": "new-box", "role": "agent", "ttl_s": 600, "labels": {"site": "lab"}}))).await;
    assert_eq!(s, StatusCode::OK, "{t}");
    let token = t["token"].as_str().unwrap();
    assert!(token.starts_with("hbt1."));
    assert!(t["command"].as_str().unwrap().contains(token));
    let list = admin.get("/api/tokens").await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == t["id"] && x["labels"]["site"] == "lab")
    );

    // ---- viewers read, and change nothing
    let (s, v) = admin
        .call(
            Method::POST,
            "/api/users",
            Some(json!({"username": "watcher", "password": "viewer password 1", "role": "viewer"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = admin
        .call(
            Method::POST,
            "/api/users",
            Some(json!({"username": "weak", "password": "short", "role": "viewer"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let mut viewer = Api::new(&url);
    assert_eq!(
        viewer.login("watcher", "viewer password 1").await.0,
        StatusCode::OK
    );
    assert_eq!(viewer.get("/api/nodes").await.as_array().unwrap().len(), 1);
    for (m, p, b) in [
        (Method::POST, "/api/nodes/n1/revoke", None),
        (
            Method::PUT,
            "/api/nodes/n1/config",
            Some(json!({"config_toml": ""})),
        ),
        (
            Method::POST,
            "/api/tokens",
            Some(json!({"name": "x", "role": "agent"})),
        ),
        (
            Method::POST,
            "/api/modules",
            Some(json!({"name": "x", "command": "true"})),
        ),
        (Method::DELETE, "/api/modules/x", None),
        (Method::POST, "/api/alerts/1/ack", None),
        (
            Method::POST,
            "/api/incidents/ack",
            Some(json!({"ids": [1]})),
        ),
        (
            Method::POST,
            "/api/ignore",
            Some(json!({"kind": "port", "value": "23"})),
        ),
        (Method::DELETE, "/api/ignore/1", None),
        (
            Method::POST,
            "/api/users",
            Some(json!({"username": "y", "password": "long enough pass", "role": "admin"})),
        ),
    ] {
        let (s, v) = viewer.call(m.clone(), p, b).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "viewer {m} {p}: {v}");
    }
    let (s, _) = viewer.call(Method::GET, "/api/users", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = viewer.call(Method::GET, "/api/audit", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a viewer reads no audit log: {v}");
    assert_eq!(
        admin.get("/api/nodes").await[0]["revoked"],
        false,
        "the viewer revoked nothing"
    );

    // ---- the audit log, for admins, a page at a time (the dashboard's certificate and the
    // tokens created above are in it)
    let page = admin.get("/api/audit?limit=1").await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(page["more"], true, "{page}");
    let next = admin.get("/api/audit?limit=1&offset=1").await;
    assert_ne!(page["entries"][0], next["entries"][0], "offset pages on");
    let all = admin.get("/api/audit?limit=500").await;
    let t: Vec<i64> = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["time_ms"].as_i64().unwrap())
        .collect();
    assert!(t.windows(2).all(|w| w[0] >= w[1]), "newest first: {t:?}");
    let hits = admin.get("/api/audit?q=TOKEN.CREATE&limit=500").await;
    let hits = hits["entries"].as_array().unwrap();
    assert!(
        !hits.is_empty()
            && hits
                .iter()
                .all(|e| e.to_string().to_lowercase().contains("token.create")),
        "the text filter keeps matching rows only: {hits:?}"
    );
    let (s, _) = admin
        .call(Method::GET, "/api/audit?offset=10000", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "past the pageable window");

    // ---- a deleted user's open socket closes with 4401 "unauthenticated"
    let mut viewer_ws = open_ws(&viewer, Some(&host))
        .await
        .expect("the viewer's WebSocket opens");
    let (s, v) = admin.call(Method::DELETE, "/api/users/watcher", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let close = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(m) = viewer_ws.next().await {
            match m {
                Ok(tungstenite::Message::Close(f)) => return f,
                Ok(_) => {}
                Err(e) => panic!("the socket failed instead of closing: {e}"),
            }
        }
        None
    })
    .await
    .expect("the deleted user's socket closes within 30 s")
    .expect("with a close frame");
    assert_eq!(u16::from(close.code), 4401, "{close:?}");
    assert_eq!(close.reason.as_str(), "unauthenticated");
    let (s, _) = viewer.call(Method::GET, "/api/me", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // ---- sign-in rate limit per user: a right password is refused too once limited
    let (s, _) = admin
        .call(
            Method::POST,
            "/api/users",
            Some(json!({"username": "victim", "password": "victim password 1", "role": "viewer"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let mut guesser = Api::new(&url);
    for _ in 0..5 {
        assert_eq!(
            guesser.login("victim", "guess guess guess").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let r = guesser
        .raw(
            Method::POST,
            "/api/login",
            Some(json!({"username": "victim", "password": "victim password 1"})),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));

    // ---- config push, applied by the agent
    let node = admin.get("/api/nodes/n1").await;
    let toml_text = node["config_toml"].as_str().unwrap();
    assert!(
        node["services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "smtp" && s["running"] == true)
    );
    let (s, v) = admin
        .call(
            Method::PUT,
            "/api/nodes/n1/config",
            Some(json!({"config_toml": "[[service]]\nname = 1"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap().len() > 10);
    let mut cfg =
        honeybee_core::config::services_from_toml(toml_text).expect("the API's TOML parses");
    cfg.service_mut("smtp").unwrap().enabled = false;
    let new_toml = honeybee_core::config::services_to_toml(&cfg).unwrap();
    let (s, v) = admin
        .call(
            Method::PUT,
            "/api/nodes/n1/config",
            Some(json!({"config_toml": new_toml})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    eventually(
        "the agent to stop its smtp service",
        Duration::from_secs(60),
        || {
            let admin = admin.clone();
            async move {
                let n = admin.get("/api/nodes/n1").await;
                let smtp = n["services"]
                    .as_array()?
                    .iter()
                    .find(|s| s["name"] == "smtp")?
                    .clone();
                let health_has_it = n["node"]["health"]["services"]
                    .as_array()?
                    .iter()
                    .any(|s| s["name"] == "smtp" && s["running"] == true);
                (smtp["enabled"] == false && !health_has_it).then_some(())
            }
        },
    )
    .await;
    let hist = admin.get("/api/nodes/n1/health").await;
    assert!(!hist.as_array().unwrap().is_empty(), "health history kept");

    // ---- modules: load and unload a managed module
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/modules/py_managed.py");
    let (s, v) = admin.call(Method::POST, "/api/modules", Some(json!({"name": "dash-watch", "command": "python3", "args": [script], "permissions": ["events:read"]}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    eventually("the module to connect", Duration::from_secs(30), || {
        let admin = admin.clone();
        async move {
            let m = admin.get("/api/modules").await;
            m.as_array()?
                .iter()
                .any(|m| {
                    m["name"] == "dash-watch" && m["state"] == "connected" && m["managed"] == true
                })
                .then_some(())
        }
    })
    .await;
    let (s, v) = admin
        .call(Method::DELETE, "/api/modules/dash-watch", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    eventually("the module to be gone", Duration::from_secs(30), || {
        let admin = admin.clone();
        async move {
            let m = admin.get("/api/modules").await;
            (!m.as_array()?
                .iter()
                .any(|m| m["name"] == "dash-watch" && m["managed"] == true))
            .then_some(())
        }
    })
    .await;

    // ---- revoke: the node goes offline, on the API and on the socket
    let (s, v) = admin.call(Method::POST, "/api/nodes/n1/revoke", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    ws_until(&mut ws, Duration::from_secs(30), "the revoked node", |m| {
        m["type"] == "node"
            && m["node"]["id"] == "n1"
            && m["node"]["revoked"] == true
            && m["node"]["online"] == false
    })
    .await;
    let nodes = admin.get("/api/nodes").await;
    assert_eq!(nodes[0]["online"], false);
    let audit = dep.audit();
    assert!(
        audit
            .iter()
            .any(|a| a["action"] == "node.revoke"
                && a["actor"].as_str().unwrap().ends_with("/admin")),
        "the core audits the dashboard user: {audit:?}"
    );

    // ---- the OpenAPI document names every route
    let doc = anon.get("/api/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    for r in honeybee_dashboard::api::routes() {
        assert!(
            doc["paths"][r.path][r.method].is_object(),
            "{} {} missing from the OpenAPI document",
            r.method,
            r.path
        );
    }

    // ---- the web app is served for every other path
    let r = anon.raw(Method::GET, "/nodes/n1", None, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );

    // ---- logout ends the session (and its socket)
    let (s, _) = admin.call(Method::POST, "/api/logout", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = admin.call(Method::GET, "/api/me", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

/// The operator's console against a real core, agent and dashboard: incidents from the
/// real alerts module, event totals, module status, alert rules (~35 s: its own deployment,
/// and a crash-looping module is watched through a restart; hence `_slow`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_incidents_totals_modules_and_alert_rules_slow() {
    assert!(
        have("ssh") && have("sshpass") && have("python3"),
        "this test needs OpenSSH's ssh, sshpass and python3 (.ci/run installs them)"
    );
    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let _agent = dep.start_agent("n1");
    let ssh_port = dep.service_port("n1", "ssh");
    let (dash, url) = dep.start_dashboard(ADMIN_PASSWORD);
    let _dash = dash;
    let mut admin = Api::new(&url);
    let (s, v) = admin.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = admin
        .call(
            Method::POST,
            "/api/users",
            Some(json!({"username": "watcher", "password": "viewer password 1", "role": "viewer"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut viewer = Api::new(&url);
    assert_eq!(
        viewer.login("watcher", "viewer password 1").await.0,
        StatusCode::OK
    );
    incidents_counts_and_module_status(&admin, &viewer, ssh_port).await;
}

/// The operator's console: alerts from the real alerts module grouped into incidents,
/// filtered, sorted and acknowledged in bulk (and in the core); the ignore list; the total
/// count of an event search; the built-in module refused; a crash-looping module's exit
/// code and last lines.
async fn incidents_counts_and_module_status(admin: &Api, viewer: &Api, ssh_port: u16) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("alerts.json");
    std::fs::write(
        &cfg,
        json!({"rules": [{"name": "watched", "type": "auth_username", "usernames": (0..20).map(|i| format!("incuser{i}")).collect::<Vec<_>>(),
            "severity": "high", "cooldown_seconds": 0}]})
        .to_string(),
    )
    .unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/modules/examples/alerts/alerts.py"
    );
    let (s, v) = admin
        .call(
            Method::POST,
            "/api/modules",
            Some(json!({"name": "alerts", "command": "python3",
                "args": [script, "--config", cfg.to_str().unwrap()],
                "permissions": ["events:read", "alerts:write"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let incidents = |q: &'static str| {
        let admin = admin.clone();
        async move { admin.get(&format!("/api/incidents{q}")).await }
    };
    // "connected" may show a moment before the module subscribes: attempt until an
    // incident counts three alerts (bounded). A new user each time: the honeypot lets a
    // user in at the third attempt (LoginPolicy::AfterAttempts(2)).
    let mut attempts = 0;
    let inc = loop {
        ssh_attempt(ssh_port, &format!("incuser{attempts}"), "incident-pw");
        attempts += 1;
        let found = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let l = incidents("?rule=auth_username").await;
                if let Some(i) = l["incidents"]
                    .as_array()
                    .and_then(|a| a.iter().find(|i| i["count"].as_i64() >= Some(3)))
                {
                    return i.clone();
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
        .await;
        if let Ok(i) = found {
            break i;
        }
        assert!(
            attempts < 15,
            "no incident of three alerts after {attempts} SSH attempts"
        );
    };
    assert_eq!(inc["source"], "127.0.0.1", "{inc}");
    assert_eq!(inc["node"], "n1");
    assert_eq!(inc["service"], "ssh");
    assert_eq!(inc["severity"], "high");
    assert_eq!(inc["state"], "open");
    assert_eq!(inc["rules"], json!(["auth_username"]));
    assert!(
        inc["sessions"].as_i64().unwrap() >= 2,
        "each attempt is a session: {inc}"
    );
    assert!(inc["first_seen_ms"].as_i64() <= inc["last_seen_ms"].as_i64());
    let id = inc["id"].as_i64().unwrap();
    // Every alert of one source/node/service within the hour is in this one incident.
    let all = incidents("?rule=auth_username&state=all").await;
    assert_eq!(all["total"], 1, "{all}");
    let detail = admin.get(&format!("/api/incidents/{id}")).await;
    let alerts = detail["alerts"].as_array().unwrap();
    assert_eq!(alerts.len() as i64, detail["count"].as_i64().unwrap());
    assert!(
        alerts
            .iter()
            .all(|a| a["session"].as_str().is_some_and(|s| s.len() == 16)
                && a["node"] == "n1"
                && a["seq"].as_u64().is_some()
                && a["rule"] == "auth_username")
    );
    assert_eq!(
        detail["session_ids"].as_array().unwrap().len() as i64,
        detail["sessions"].as_i64().unwrap()
    );
    let sid = detail["session_ids"][0].as_str().unwrap();
    admin.get(&format!("/api/sessions/{sid}")).await;

    // Filters, sorting, refusals.
    let crit = incidents("?severity=critical&rule=auth_username").await;
    assert_eq!(crit["total"], 0, "{crit}");
    let high = incidents("?severity=high,critical&sort=count&order=asc").await;
    assert!(
        high["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == id)
    );
    let counts: Vec<i64> =
        incidents("?state=all&sort=count&order=asc&limit=500").await["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["count"].as_i64().unwrap())
            .collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    for bad in [
        "?sort=id;drop",
        "?severity=urgent",
        "?state=gone",
        "?order=up",
    ] {
        let (s, v) = admin
            .call(Method::GET, &format!("/api/incidents{bad}"), None)
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert!(v["error"].as_str().unwrap().len() > 10, "{v}");
    }
    assert_eq!(
        viewer.get(&format!("/api/incidents/{id}")).await["id"],
        id,
        "viewers read incidents"
    );
    let (s, _) = admin.call(Method::GET, "/api/incidents/999999", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Bulk acknowledgement: the incident and, in the core, its alerts.
    let open: Vec<i64> = incidents("?limit=500").await["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert!(open.contains(&id));
    let (s, v) = admin
        .call(
            Method::POST,
            "/api/incidents/ack",
            Some(json!({"ids": open})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["acked"].as_u64().unwrap() as usize, open.len(), "{v}");
    assert!(v["alerts_acked"].as_u64().unwrap() >= 3, "{v}");
    let (s, v) = admin
        .call(Method::POST, "/api/incidents/ack", Some(json!({"ids": []})))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let after = incidents("?state=acknowledged&rule=auth_username").await;
    let acked = &after["incidents"][0];
    assert_eq!(
        (acked["id"].as_i64(), &acked["acked_by"]),
        (Some(id), &json!("admin"))
    );
    assert_eq!(incidents("").await["open"], 0);
    let core = admin.get("/api/alerts?limit=1000").await;
    assert!(
        core.as_array()
            .unwrap()
            .iter()
            .filter(|a| a["module"] == "alerts")
            .all(|a| a["acked_by"].is_string()),
        "the core's alerts are acknowledged too: {core}"
    );

    // The ignore list: validated; a matching alert is counted, not grouped.
    for (kind, value) in [
        ("source", "not-an-ip"),
        ("source", "10.0.0.0/40"),
        ("port", "0"),
        ("host", "x"),
    ] {
        let (s, v) = admin
            .call(
                Method::POST,
                "/api/ignore",
                Some(json!({"kind": kind, "value": value})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{kind} {value}: {v}");
        assert!(v["error"].is_string());
    }
    let (s, v) = admin
        .call(
            Method::POST,
            "/api/ignore",
            Some(json!({"kind": "source", "value": "127.0.0.0/8", "note": "the test's own"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let ignore_id = v["id"].as_i64().unwrap();
    let before = incidents("").await["ignored_alerts"].as_i64().unwrap();
    ssh_attempt(ssh_port, "incuser19", "ignored-pw");
    eventually(
        "the ignored alert to be counted",
        Duration::from_secs(30),
        || async {
            let l = incidents("").await;
            (l["ignored_alerts"].as_i64().unwrap() > before).then_some(())
        },
    )
    .await;
    assert_eq!(
        incidents("").await["open"],
        0,
        "an ignored alert opens no incident"
    );
    let list = admin.get("/api/ignore").await;
    assert!(list[0]["hits"].as_i64().unwrap() >= 1, "{list}");
    let (s, v) = admin
        .call(Method::DELETE, &format!("/api/ignore/{ignore_id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // The total of every match above a page, counted by the core.
    let page = admin
        .get("/api/events?kind=auth_attempt&service=ssh&limit=2")
        .await;
    let every = admin
        .get("/api/events?kind=auth_attempt&service=ssh&limit=500")
        .await;
    let n = every["events"].as_array().unwrap().len() as u64;
    assert!(n > 2 && n < 500, "{n}");
    assert_eq!(page["total"].as_u64(), Some(n), "{page}");
    assert_eq!(page["total_exact"], true);
    let next = page["next"].as_str().unwrap();
    let second = admin
        .get(&format!(
            "/api/events?kind=auth_attempt&service=ssh&limit=2&before={}",
            url_escape(next)
        ))
        .await;
    assert!(
        second.get("total").is_none(),
        "counted with the first page only"
    );
    let q = admin
        .get(&format!(
            "/api/events?query={}",
            url_escape("service:ssh AND kind:auth_attempt")
        ))
        .await;
    assert_eq!(
        (q["total"].as_u64(), &q["total_exact"]),
        (Some(n), &json!(true))
    );
    let q = admin
        .get(&format!(
            "/api/events?query={}",
            url_escape("service:ssh AND NOT user:incuser0")
        ))
        .await;
    assert_eq!(q["total_exact"], false, "NOT is checked page by page: {q}");

    // The built-in dashboard module is refused, with a sentence saying why.
    let mods = admin.get("/api/modules").await;
    let dash = mods
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "dashboard");
    assert_eq!(dash.map(|m| &m["builtin"]), Some(&json!(true)), "{mods}");
    let (s, v) = admin
        .call(Method::DELETE, "/api/modules/dashboard", None)
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["error"].as_str().unwrap().contains("built in"), "{v}");

    // A crash-looping module: its exit code and last lines.
    let (s, v) = admin
        .call(
            Method::POST,
            "/api/modules",
            Some(json!({"name": "crasher", "command": "python3",
                "args": ["-c", "import sys; print('starting up'); print('cannot open the database', file=sys.stderr); sys.exit(3)"],
                "permissions": ["events:read"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let m = eventually(
        "the crash loop to show",
        Duration::from_secs(30),
        || async {
            let mods = admin.get("/api/modules").await;
            let m = mods
                .as_array()?
                .iter()
                .find(|m| m["name"] == "crasher")?
                .clone();
            (m["last_exit"] == "exit code 3"
                && m["restarts"].as_u64() >= Some(1)
                && m["log_tail"]
                    .as_array()?
                    .iter()
                    .any(|l| l == "cannot open the database"))
            .then_some(m)
        },
    )
    .await;
    assert_eq!(m["crash_looping"], true, "{m}");
    assert_eq!(m["builtin"], false);
    for name in ["crasher", "alerts"] {
        let (s, v) = admin
            .call(Method::DELETE, &format!("/api/modules/{name}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{name}: {v}");
    }
    alert_rules(admin, viewer).await;
}

/// The alerts module's configuration over the API: every problem named by its place, a
/// valid one saved (owner-only) and applied by starting the managed module with it.
async fn alert_rules(admin: &Api, viewer: &Api) {
    let r = admin.get("/api/alert-rules").await;
    assert_eq!(r["declared_in"], "dashboard", "{r}");
    assert_eq!(r["exists"], false);
    assert_eq!(
        r["module"]["can_apply"], true,
        "alerts.py is found beside the binary: {r}"
    );
    let bad = json!({"rules": [
            {"type": "auth_username", "usernames": [], "severity": "urgent"},
            {"type": "source_on_nodes", "min_nodes": 1, "outputs": ["nowhere"]}],
        "outputs": [{"name": "hook", "type": "webhook", "url": "ftp://x", "format": "teams"}]});
    let (s, v) = admin
        .call(
            Method::PUT,
            "/api/alert-rules",
            Some(json!({"config": bad})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let places: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        places,
        [
            "outputs[0].url",
            "outputs[0].format",
            "rules[0].severity",
            "rules[0].usernames",
            "rules[1].min_nodes",
            "rules[1].outputs"
        ],
        "{v}"
    );
    assert!(v["error"].as_str().unwrap().contains("6 problems"), "{v}");
    let good = json!({"rules": [
            {"name": "watched", "type": "auth_username", "usernames": ["root"], "severity": "high"},
            {"name": "captures", "type": "new_capture", "severity": "medium", "outputs": ["log"]}],
        "outputs": [{"name": "log", "type": "file", "path": "/tmp/honeybee-dashboard-test-alerts.jsonl"}]});
    let (s, v) = viewer
        .call(
            Method::PUT,
            "/api/alert-rules",
            Some(json!({"config": good})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = admin
        .call(
            Method::PUT,
            "/api/alert-rules",
            Some(json!({"config": good, "dry_run": true})),
        )
        .await;
    assert_eq!((s, &v["valid"]), (StatusCode::OK, &json!(true)), "{v}");
    assert_eq!(
        admin.get("/api/alert-rules").await["exists"],
        false,
        "a dry run writes nothing"
    );
    let (s, v) = admin
        .call(
            Method::PUT,
            "/api/alert-rules",
            Some(json!({"config": good, "apply": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["applied"], true);
    let path = v["saved"].as_str().unwrap().to_owned();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "webhook secrets: owner only ({mode:o})");
    let back = admin.get("/api/alert-rules").await;
    assert_eq!(back["config"], good, "{back}");
    assert_eq!(back["problems"], json!([]));
    eventually(
        "the applied module to connect",
        Duration::from_secs(30),
        || async {
            let mods = admin.get("/api/modules").await;
            let m = mods
                .as_array()?
                .iter()
                .find(|m| m["name"] == "alerts")?
                .clone();
            let perms = m["permissions"].as_array()?.clone();
            (m["state"] == "connected"
                && m["managed"] == true
                && perms.contains(&json!("captures:read")))
            .then_some(())
        },
    )
    .await;
    let (s, v) = admin
        .call(Method::DELETE, "/api/modules/alerts", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// Versions and remote upgrade from the dashboard, against a real core and agent: the
/// version each node reported, the newest package the core can send, the outdated node
/// marked, a viewer refused, an admin's upgrade of every outdated node, and the outcome
/// (the package is a real second build of the agent, reporting another version; see
/// `common::build_next_agent`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_versions_and_upgrades_outdated_nodes_slow() {
    let b = NEXT_AGENT_VERSION;
    let a = env!("CARGO_PKG_VERSION");
    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let _agent = dep.start_agent("n1");
    let (dash, url) = dep.start_dashboard(ADMIN_PASSWORD);
    let _dash = dash;
    let mut admin = Api::new(&url);
    assert_eq!(admin.login("admin", ADMIN_PASSWORD).await.0, StatusCode::OK);
    let (s, v) = admin
        .call(
            Method::POST,
            "/api/users",
            Some(json!({"username": "watcher", "password": "viewer password 1", "role": "viewer"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut viewer = Api::new(&url);
    assert_eq!(
        viewer.login("watcher", "viewer password 1").await.0,
        StatusCode::OK
    );

    // The version the node reported, in the node list and the upgrade view.
    eventually(
        "n1 online with its version",
        Duration::from_secs(30),
        || {
            let admin = admin.clone();
            async move { (admin.get("/api/nodes").await[0]["version"] == a).then_some(()) }
        },
    )
    .await;
    let u = admin.get("/api/upgrades").await;
    assert_eq!(u["offer"], Value::Null, "{u}");
    assert_eq!(u["nodes"][0]["version"], a, "{u}");
    assert_eq!(u["nodes"][0]["outdated"], false, "{u}");
    // No package on the core: nothing to send, and the answer says where one goes.
    let (s, v) = admin
        .call(Method::POST, "/api/upgrades", Some(json!({})))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap().contains("packages/"), "{v}");

    // Version B in the core's packages folder: n1 is outdated.
    let packages = dep.core_dir().join("packages");
    std::fs::create_dir_all(&packages).unwrap();
    let package = packages.join(format!("honeybee-agent-{b}"));
    tokio::task::spawn_blocking(move || build_next_agent(&package))
        .await
        .unwrap();
    let u = viewer.get("/api/upgrades").await;
    assert_eq!(u["offer"], b, "{u}");
    assert_eq!(u["outdated"], 1, "{u}");
    assert_eq!(u["nodes"][0]["outdated"], true, "{u}");

    // A viewer cannot start an upgrade.
    let (s, v) = viewer
        .call(Method::POST, "/api/upgrades", Some(json!({"node": "n1"})))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = viewer
        .call(Method::POST, "/api/upgrades", Some(json!({})))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    // A version the core has no package of, for one node: the core's reason (a 404, as
    // every "no …" from the core).
    let (s, v) = admin
        .call(
            Method::POST,
            "/api/upgrades",
            Some(json!({"node": "n1", "version": "7.7.7"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert!(v["error"].as_str().unwrap().contains("no package"), "{v}");

    // The admin upgrades every outdated node; n1 restarts into B and says so.
    let (s, v) = admin
        .call(Method::POST, "/api/upgrades", Some(json!({})))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["version"], b, "{v}");
    assert_eq!(v["results"][0]["node"], "n1", "{v}");
    assert_eq!(v["results"][0]["sent"], true, "{v}");
    let u = eventually("n1 upgraded to B", Duration::from_secs(90), || {
        let admin = admin.clone();
        async move {
            let u = admin.get("/api/upgrades").await;
            (u["nodes"][0]["last"]["state"] == "done" && u["nodes"][0]["version"] == b).then_some(u)
        }
    })
    .await;
    assert_eq!(u["nodes"][0]["outdated"], false, "{u}");
    assert_eq!(u["nodes"][0]["last"]["version"], b, "{u}");
    assert_eq!(u["outdated"], 0, "{u}");
    assert_eq!(admin.get("/api/nodes").await[0]["version"], b);

    // Audited by the core: sent on behalf of the dashboard's admin, and the node's report.
    let page = admin.get("/api/audit?q=node.upgrade&limit=100").await;
    let rows = page["entries"].as_array().unwrap();
    assert!(
        rows.iter().any(|r| r["outcome"] == "sent"
            && r["actor"].as_str().unwrap_or("").ends_with("/admin")
            && r["detail"].as_str().unwrap_or("").contains("node=n1")),
        "{page}"
    );
    assert!(
        rows.iter()
            .any(|r| r["actor"] == "node:n1" && r["outcome"] == "ok"),
        "{page}"
    );
}

// ---- the same tests on a PostgreSQL store (`common::on_postgres`: same body, a
// database of its own on this test binary's PostgreSQL server)

#[test]
fn dashboard_api_against_a_real_core_and_agent_on_postgres() {
    on_postgres(dashboard_api_against_a_real_core_and_agent);
}

#[test]
fn console_incidents_totals_modules_and_alert_rules_slow_on_postgres() {
    on_postgres(console_incidents_totals_modules_and_alert_rules_slow);
}
