//! Devices that cannot run an agent, end to end: a core, an agent given an `aggregator`
//! service by `honeybee node config`, a listed "printer" on loopback sending a syslog line
//! (`logger`) and an SNMP trap (`snmptrap`, Debian package `snmp`); the device then
//! appears as its own entry under the agent in `honeybee nodes` (and `--json`), with its
//! address, last seen and event count, and a listed device that sent nothing shows as
//! silent. Its messages are `device_log` / `device_trap` events of the agent.

mod common;
use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn a_listed_device_shows_under_its_agent_with_its_events() {
    assert!(
        have("logger") && have("snmptrap"),
        "this test needs logger (bsdutils) and snmptrap (snmp; scripts/test.sh installs it)"
    );
    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let _agent = dep.start_agent("office-1");
    let d = dep.d();
    wait_for("office-1 online", Duration::from_secs(30), || {
        dep.node("office-1").filter(|n| n["online"] == true)
    });
    let trap_port = free_udp_port();
    let services = dep.dir.path().join("services.toml");
    std::fs::write(
        &services,
        format!(
            "[[service]]\nname = \"office-devices\"\nkind = \"aggregator\"\n\
             listen = \"127.0.0.1:0\"\ntrap_port = {trap_port}\ndevices = [\n\
             {{ name = \"printer-3f\", address = \"127.0.0.1\", kind = \"printer\" }},\n\
             {{ name = \"cam-lobby\", address = \"127.0.0.9\", kind = \"camera\" }},\n]\n"
        ),
    )
    .unwrap();
    ok(&[
        "node",
        "config",
        "office-1",
        "--file",
        services.to_str().unwrap(),
        "--data-dir",
        &d,
    ]);
    let port = dep.service_port("office-1", "office-devices");

    let out = Command::new("logger")
        .args(["-n", "127.0.0.1", "-P", &port.to_string(), "-d"])
        .args(["--rfc3164", "-t", "lpd", "paper jam in tray 2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = Command::new("snmptrap")
        .args(["-m", "", "-v", "2c", "-c", "public"])
        .arg(format!("127.0.0.1:{trap_port}"))
        .args([
            "",
            "1.3.6.1.4.1.8072.2.3.0.1",
            "1.3.6.1.2.1.1.5.0",
            "s",
            "printer-3f",
        ])
        .env("MIBS", "")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    // Both stored as the device's events on the agent.
    let logs = wait_for("the device_log event", Duration::from_secs(30), || {
        let e = dep.events(&["--kind", "device_log"]);
        (!e.is_empty()).then_some(e)
    });
    assert_eq!(logs[0]["message"], "paper jam in tray 2", "{}", logs[0]);
    assert_eq!(logs[0]["honeybee"]["device"]["name"], "printer-3f");
    assert_eq!(logs[0]["log"]["syslog"]["appname"], "lpd");
    let traps = wait_for("the device_trap event", Duration::from_secs(30), || {
        let e = dep.events(&["--kind", "device_trap"]);
        (!e.is_empty()).then_some(e)
    });
    assert_eq!(
        traps[0]["honeybee"]["snmp"]["trap_oid"],
        "1.3.6.1.4.1.8072.2.3.0.1"
    );

    // `honeybee nodes`: one row per device under its agent.
    let table = ok(&["nodes", "--data-dir", &d]);
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.contains(&format!("└ {name}")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{table}"))
            .to_owned()
    };
    let printer = row("printer-3f");
    for want in [
        "device",
        "printer",
        "reporting",
        "127.0.0.1",
        "via office-1",
        "2 events (office-devices)",
    ] {
        assert!(printer.contains(want), "{want:?} in {printer:?}\n{table}");
    }
    let cam = row("cam-lobby");
    for want in ["camera", "silent", "127.0.0.9", "never", "0 events"] {
        assert!(cam.contains(want), "{want:?} in {cam:?}\n{table}");
    }
    let agent_line = table
        .lines()
        .position(|l| l.starts_with("office-1"))
        .unwrap();
    let printer_line = table.lines().position(|l| l == printer).unwrap();
    assert!(
        printer_line > agent_line,
        "the device is listed under its agent:\n{table}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&ok(&["nodes", "--json", "--data-dir", &d])).unwrap();
    let node = json
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "office-1")
        .unwrap();
    let devices = node["devices"].as_array().expect("devices on the node");
    assert_eq!(devices.len(), 2, "{node}");
    let p = devices.iter().find(|x| x["name"] == "printer-3f").unwrap();
    assert_eq!(
        (p["events"].as_u64(), p["address"].as_str()),
        (Some(2), Some("127.0.0.1"))
    );
    assert!(p["last_seen"].is_string(), "{p}");

    // The dashboard's Nodes page reads the same list from /api/devices.
    let (_dash, url) = dep.start_dashboard("correct horse battery staple");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listed: serde_json::Value = rt.block_on(async {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let r = http
            .post(format!("{url}/api/login"))
            .json(&serde_json::json!({"username": "admin", "password": "correct horse battery staple"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{r:?}");
        let cookie = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        http.get(format!("{url}/api/devices"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let p = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "printer-3f")
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(
        (p["node"].as_str(), p["events"].as_u64()),
        (Some("office-1"), Some(2))
    );
    assert_eq!(p["kind"], "printer");
}

// ---- the same tests on a PostgreSQL store (`common::on_postgres`: same body, a
// database of its own on this test binary's PostgreSQL server)

#[test]
fn a_listed_device_shows_under_its_agent_with_its_events_on_postgres() {
    on_postgres(a_listed_device_shows_under_its_agent_with_its_events);
}
