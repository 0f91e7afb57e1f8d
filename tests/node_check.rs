//! `honeybee node check` end to end: a real core and agent with the default services;
//! the node probes its own services and every check passes; an SSH identification that
//! claims another OpenSSH is named as a failing check, with what the real sshd sends;
//! the core keeps the latest report; an offline node is a clear error. The dashboard serves the latest report to anyone
//! signed in and runs one for admins only.

mod common;
use common::*;
use honeybee_core::admin_client::AdminClient;
use honeybee_proto::NodeId;
use honeybee_proto::admin::{AdminRequest, AdminResponse};
use honeybee_proto::config::ServiceKind;
use serde_json::Value;
use std::time::Duration;

fn check_json(dep: &Deployment, node: &str) -> Value {
    serde_json::from_str(&ok(&[
        "node",
        "check",
        node,
        "--json",
        "--data-dir",
        &dep.d(),
    ]))
    .expect("node check --json prints JSON")
}

/// Every failing check as (service, check, expected, got).
fn failures(v: &Value) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for s in v["report"]["services"].as_array().expect("services") {
        for f in s["failures"].as_array().expect("failures") {
            let t = |k: &str| f[k].as_str().unwrap_or("").to_owned();
            out.push((
                s["name"].as_str().unwrap_or("").to_owned(),
                t("check"),
                t("expected"),
                t("got"),
            ));
        }
    }
    out
}

fn service<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["report"]["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no service {name} in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_check_scores_a_default_node_and_names_a_wrong_setting() {
    let mut dep = Deployment::init(|t| t);
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dep.start_core())).is_err() {
        panic!(
            "core did not start: {}",
            dep.core.as_ref().map(|c| c.log_text()).unwrap_or_default()
        );
    }
    let mut agent = dep.start_agent("n1");
    wait_for("n1 healthy", Duration::from_secs(60), || {
        (dep.node("n1")?["state"] == "healthy").then_some(())
    });

    // A default node: every check runs and passes (Redis's build id, once random per
    // node, is now Debian's).
    let v = check_json(&dep, "n1");
    let total = v["total"].as_u64().unwrap();
    assert!(total >= 50, "{v}");
    let unexpected = failures(&v);
    assert!(unexpected.is_empty(), "failing checks: {unexpected:#?}");
    for name in ["ssh", "telnet", "http", "ftp", "redis"] {
        let s = service(&v, name);
        assert!(s["total"].as_u64().unwrap() > 0, "{name} was checked: {s}");
        assert!(s["skipped"].is_null(), "{s}");
    }
    // HTTPS: the same persona's HTTP answers, inside TLS.
    let https = service(&v, "https");
    assert!(https["skipped"].is_null(), "{https}");
    assert_eq!(https["passed"], service(&v, "http")["passed"], "{https}");
    assert_eq!(
        service(&v, "consistency")["passed"],
        service(&v, "consistency")["total"]
    );

    // The human table: a score per service.
    let human = ok(&["node", "check", "n1", "--data-dir", &dep.d()]);
    eprintln!("{human}");
    assert!(human.contains("checks passed"), "{human}");
    assert!(
        human
            .lines()
            .any(|l| l.starts_with("ssh ") && l.contains("14/14")),
        "{human}"
    );

    // The core keeps the latest report.
    let client = AdminClient::connect(&dep.core_dir()).await.expect("admin");
    let n1 = NodeId::new("n1").unwrap();
    let Ok(AdminResponse::Realism(Some(kept))) = client
        .request(&AdminRequest::GetRealism { node: n1.clone() })
        .await
    else {
        panic!("the core keeps the report");
    };
    assert_eq!(kept.report.totals().1 as u64, total);

    // An identification string that claims another OpenSSH than the one whose transport
    // the node speaks: named, with the real sshd's line as the expected value.
    let Ok(AdminResponse::NodeConfig(mut cfg)) = client
        .request(&AdminRequest::GetNodeConfig { node: n1.clone() })
        .await
    else {
        panic!("node config");
    };
    for s in &mut cfg.services {
        if let ServiceKind::Ssh(o) = &mut s.kind {
            o.server_id = "SSH-2.0-OpenSSH_8.4p1 Debian-5+deb11u3".into();
        }
    }
    client.close().await;
    let file = dep.dir.path().join("services.toml");
    std::fs::write(
        &file,
        honeybee_core::config::services_to_toml(&cfg).expect("toml"),
    )
    .unwrap();
    ok(&[
        "node",
        "config",
        "n1",
        "--file",
        file.to_str().unwrap(),
        "--data-dir",
        &dep.d(),
    ]);
    let v = wait_for(
        "the new ssh identification",
        Duration::from_secs(30),
        || {
            let v = check_json(&dep, "n1");
            failures(&v)
                .iter()
                .any(|(s, c, _, _)| s == "ssh" && c == "ident")
                .then_some(v)
        },
    );
    let f = failures(&v);
    let ident = f
        .iter()
        .find(|(s, c, _, _)| s == "ssh" && c == "ident")
        .unwrap();
    assert_eq!(ident.2, "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12uN\\r\\n");
    assert_eq!(ident.3, "SSH-2.0-OpenSSH_8.4p1 Debian-5+deb11uN\\r\\n");
    assert!(
        f.iter()
            .any(|(s, c, _, _)| s == "consistency" && c.contains("Debian release")),
        "{f:#?}"
    );
    let human = ok(&["node", "check", "n1", "--data-dir", &dep.d()]);
    assert!(human.contains("FAIL ssh ident"), "{human}");

    // An offline node: a clear error, no report.
    agent.terminate();
    wait_for("n1 offline", Duration::from_secs(60), || {
        (dep.node("n1")?["state"] == "offline").then_some(())
    });
    let err = fails(&["node", "check", "n1", "--data-dir", &dep.d()]);
    assert!(err.contains("n1 is offline"), "{err}");
}

/// A signed-in dashboard user: cookie and CSRF token.
struct Browser {
    base: String,
    http: reqwest::Client,
    cookie: String,
    csrf: String,
}

impl Browser {
    async fn login(base: &str, user: &str, password: &str) -> Browser {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let r = http
            .post(format!("{base}/api/login"))
            .json(&serde_json::json!({"username": user, "password": password}))
            .send()
            .await
            .expect("login answers");
        assert!(r.status().is_success(), "login {user}: {}", r.status());
        let cookie = r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let v: Value = r.json().await.unwrap();
        Browser {
            base: base.to_owned(),
            http,
            cookie,
            csrf: v["csrf"].as_str().unwrap_or("").to_owned(),
        }
    }

    async fn call(&self, post: bool, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut req = if post {
            self.http.post(url).header("x-csrf-token", &self.csrf)
        } else {
            self.http.get(url)
        };
        req = req.header("cookie", &self.cookie);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("dashboard answers");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_runs_and_shows_the_check() {
    const PASSWORD: &str = "correct horse battery staple";
    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let _agent = dep.start_agent("d1");
    wait_for("d1 healthy", Duration::from_secs(60), || {
        (dep.node("d1")?["state"] == "healthy").then_some(())
    });
    let (mut dash, base) = dep.start_dashboard(PASSWORD);
    let admin = Browser::login(&base, "admin", PASSWORD).await;

    // Nothing kept yet: null.
    let (s, v) = admin.call(false, "/api/nodes/d1/check", None).await;
    assert_eq!((s, &v), (200, &Value::Null));

    // An admin runs one; the page's GET then shows the same report.
    let (s, ran) = admin.call(true, "/api/nodes/d1/check", None).await;
    assert_eq!(s, 200, "{ran}");
    assert_eq!(ran["node"], "d1");
    assert!(ran["total"].as_u64().unwrap() >= 50, "{ran}");
    assert_eq!(
        service(&ran, "ssh")["passed"],
        service(&ran, "ssh")["total"]
    );
    let (s, kept) = admin.call(false, "/api/nodes/d1/check", None).await;
    assert_eq!(s, 200);
    assert_eq!(kept["received_ms"], ran["received_ms"]);

    // A viewer reads it but may not run one (it sends probe traffic to the node).
    let (s, v) = admin
        .call(
            true,
            "/api/users",
            Some(serde_json::json!({"username": "watcher", "password": "viewer password 1", "role": "viewer"})),
        )
        .await;
    assert!(s == 200 || s == 201, "{s} {v}");
    let viewer = Browser::login(&base, "watcher", "viewer password 1").await;
    assert_eq!(viewer.call(false, "/api/nodes/d1/check", None).await.0, 200);
    assert_eq!(viewer.call(true, "/api/nodes/d1/check", None).await.0, 403);

    // A node that does not exist: not found, with a sentence.
    let (s, v) = admin.call(true, "/api/nodes/nosuch/check", None).await;
    assert_eq!(s, 404, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    dash.kill();
}
