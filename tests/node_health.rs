//! Node health against a real core, agent and dashboard: an agent whose every service
//! port is already taken shows as `degraded` with 0 of N services up (CLI and REST) and
//! raises exactly one alert; after the ports are freed and the config pushed again it is
//! `healthy`; a stopped agent is `offline`. Also: the alert total counts every alert,
//! not one page of them.

mod common;
use common::*;
use serde_json::{Value, json};
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

const ADMIN_PASSWORD: &str = "correct horse battery staple";

fn node_json(dep: &Deployment, id: &str) -> Value {
    dep.node(id).expect("node listed")
}

fn degraded_alerts(dep: &Deployment, id: &str) -> usize {
    let alerts: Vec<Value> = serde_json::from_str(&ok(&[
        "alerts",
        "--json",
        "--limit",
        "1000",
        "--data-dir",
        &dep.d(),
    ]))
    .expect("alerts json");
    alerts
        .iter()
        .filter(|a| a["module"] == "core" && a["title"] == format!("node {id} is degraded"))
        .count()
}

/// `honeybee dashboard run` on a free port, signed in as admin; returns (proc, base, cookie).
async fn dashboard(dep: &Deployment) -> (Proc, String, String) {
    let (proc, base) = dep.start_dashboard(ADMIN_PASSWORD);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = http
        .post(format!("{base}/api/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("login answers");
    assert!(r.status().is_success(), "login: {}", r.status());
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    (proc, base, cookie)
}

async fn get(base: &str, cookie: &str, path: &str) -> Value {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = http
        .get(format!("{base}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .expect("dashboard answers");
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r.json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_services_degrade_a_node_once_and_alert_totals_are_true() {
    // Every service port is taken before the agent starts: binding fails with
    // "Address already in use" for each of them.
    let mut held: Vec<TcpListener> = Vec::new();
    let mut dep = Deployment::init(|mut t| {
        let pat = "\nlisten = \"127.0.0.1:0\"";
        while t.contains(pat) && held.len() < 32 {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind a port to hold");
            let port = l.local_addr().unwrap().port();
            t = t.replacen(pat, &format!("\nlisten = \"127.0.0.1:{port}\""), 1);
            held.push(l);
        }
        t
    });
    let n_services = held.len();
    assert!(n_services >= 2, "the default config has services");
    dep.start_core();
    let mut agent = dep.start_agent("h1");

    let n = wait_for("h1 degraded", Duration::from_secs(60), || {
        let n = dep.node("h1")?;
        (n["state"] == "degraded" && n["services_total"] == n_services).then_some(n)
    });
    assert_eq!(n["services_up"], 0, "{n}");
    let problems = n["problems"].to_string();
    assert!(
        problems.contains("in use"),
        "the bind error is shown: {problems}"
    );
    let human = ok(&["nodes", "--data-dir", &dep.d()]);
    assert!(
        human.contains(&format!("degraded 0/{n_services}")),
        "{human}"
    );
    // The version the agent reported in its hello, in the table and the JSON.
    let version = env!("CARGO_PKG_VERSION");
    let row = human
        .lines()
        .find(|l| l.starts_with("h1 "))
        .unwrap_or_default();
    assert!(row.contains(&format!(" {version} ")), "{human}");
    assert_eq!(node_json(&dep, "h1")["version"], version);

    // Several more health reports (one every 10 s) still raise only the one alert.
    let uptime = n["health"]["uptime_s"].as_u64().unwrap_or(0);
    wait_for("two more health reports", Duration::from_secs(60), || {
        let u = node_json(&dep, "h1")["health"]["uptime_s"].as_u64()?;
        (u >= uptime + 20).then_some(())
    });
    assert_eq!(node_json(&dep, "h1")["state"], "degraded");
    assert_eq!(degraded_alerts(&dep, "h1"), 1, "one alert per transition");

    // The dashboard shows the same assessment.
    let (mut dash, base, cookie) = dashboard(&dep).await;
    let nodes = get(&base, &cookie, "/api/nodes").await;
    let h1 = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "h1")
        .expect("h1 in /api/nodes")
        .clone();
    assert_eq!(h1["state"], "degraded", "{h1}");
    assert_eq!(h1["services_up"], 0);
    assert_eq!(h1["services_total"], n_services);
    let overview = get(&base, &cookie, "/api/overview").await;
    assert_eq!(overview["nodes_degraded"], 1, "{overview}");

    // More than one page of alerts: the total is the true count, not the page length.
    let cred = dep.module_credential("bulk", "alerts:write");
    let script = [
        "import os, sys",
        "sys.path.insert(0, os.environ['SDK'])",
        "from honeybee_module import Module",
        "with Module('bulk', permissions=['alerts:write']) as m:",
        "    for i in range(130):",
        "        m.alert('low', 'bulk %d' % i)",
    ]
    .join("\n");
    let st = Command::new("python3")
        .args(["-c", &script])
        .env(
            "SDK",
            concat!(env!("CARGO_MANIFEST_DIR"), "/modules/python"),
        )
        .env("HONEYBEE_SHIM_ADDR", dep.shim_addr().to_string())
        .env("HONEYBEE_MODULE_CREDENTIAL", &cred)
        .status()
        .expect("python3 runs");
    assert!(st.success(), "the bulk alert module ran");
    let counts = get(&base, &cookie, "/api/alerts/count").await;
    assert_eq!(counts["total"], 131, "{counts}");
    assert_eq!(counts["open"], 131, "{counts}");
    let page = get(&base, &cookie, "/api/alerts").await;
    assert_eq!(page.as_array().unwrap().len(), 100, "one page of alerts");
    let overview = get(&base, &cookie, "/api/overview").await;
    assert_eq!(overview["alerts_total"], 131, "{overview}");
    assert_eq!(overview["alerts_open"], 131, "{overview}");

    // Free the ports and push the configuration again: the agent binds and is healthy.
    drop(held);
    let name = h1["health"]["services"][0]["name"]
        .as_str()
        .expect("a service name")
        .to_owned();
    ok(&[
        "node",
        "config",
        "h1",
        "--enable",
        &name,
        "--data-dir",
        &dep.d(),
    ]);
    let n = wait_for("h1 healthy", Duration::from_secs(60), || {
        let n = dep.node("h1")?;
        (n["state"] == "healthy").then_some(n)
    });
    assert_eq!(n["services_up"], n_services, "{n}");
    assert_eq!(degraded_alerts(&dep, "h1"), 1);

    // A stopped agent is offline.
    agent.kill();
    wait_for("h1 offline", Duration::from_secs(60), || {
        (dep.node("h1")?["state"] == "offline").then_some(())
    });
    let nodes = get(&base, &cookie, "/api/nodes").await;
    assert_eq!(nodes[0]["state"], "offline", "{nodes}");
    dash.kill();
}

// ---- on a PostgreSQL store (`common::on_postgres`: the same body, a database of its own
// on this test binary's PostgreSQL server)

#[test]
fn failed_services_degrade_a_node_once_and_alert_totals_are_true_on_postgres() {
    common::on_postgres(failed_services_degrade_a_node_once_and_alert_totals_are_true);
}
