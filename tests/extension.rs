//! Extension node end to end: `agent run --mode extension` beside a real listening service
//! (started by the test) never takes its port; an `nmap` connect scan over the range
//! yields connect events and exactly one `scan_detected` with the right ports; a port is
//! released by `honeybee node command NODE release-port SERVICE PORT`. Loopback only.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

/// `1-3,7` → {1,2,3,7}; `-` → {}.
fn expand(list: &str) -> BTreeSet<u16> {
    let mut out = BTreeSet::new();
    for part in list.split(',').filter(|p| *p != "-" && !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        out.extend(a.parse::<u16>().unwrap()..=b.parse::<u16>().unwrap());
    }
    out
}

/// A field (`listening=…`) of the extension service's status line.
fn field(listen: &str, name: &str) -> BTreeSet<u16> {
    listen
        .split_whitespace()
        .find_map(|f| f.strip_prefix(&format!("{name}=")))
        .map(expand)
        .unwrap_or_default()
}

#[test]
fn nmap_scan_of_extension_node_is_one_scan_event() {
    assert!(
        have("nmap"),
        "this test needs nmap (scripts/test.sh installs it)"
    );
    // The "real service" the extension node must leave alone.
    let real = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = real.local_addr().unwrap().port();
    let (start, end) = if p > 60_000 { (p - 9, p) } else { (p, p + 9) };

    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let token = dep.token("ext-1", &[]);
    let a = dep.agent_dir("ext-1");
    ok(&[
        "agent",
        "enroll",
        "--token",
        &token,
        "--data-dir",
        a.to_str().unwrap(),
    ]);
    let log = dep.dir.path().join("agent-ext-1.log");
    let _agent = Proc::spawn(
        &[
            "agent",
            "run",
            "--mode",
            "extension",
            "--data-dir",
            a.to_str().unwrap(),
        ],
        &log,
    );

    let services = dep.dir.path().join("services.toml");
    std::fs::write(
        &services,
        format!(
            "[[service]]\nname = \"ext\"\nkind = \"extension\"\nlisten = \"127.0.0.1\"\n\
             ports = \"{start}-{end}\"\nrecheck_s = 2\nscan_min_ports = 5\nscan_window_ms = 2000\n"
        ),
    )
    .unwrap();
    let d = dep.d();
    wait_for("ext-1 online", Duration::from_secs(30), || {
        dep.node("ext-1").filter(|n| n["online"] == true)
    });
    ok(&[
        "node",
        "config",
        "ext-1",
        "--file",
        services.to_str().unwrap(),
        "--data-dir",
        &d,
    ]);
    // Health (every 10 s) shows which ports the service took and which it left alone.
    let listen = wait_for(
        "the extension service's ports in the node's health",
        Duration::from_secs(40),
        || {
            let n = dep.node("ext-1")?;
            let s = n["health"]["services"]
                .as_array()?
                .iter()
                .find(|s| s["name"] == "ext" && s["running"] == true)?
                .clone();
            let listen = s["listen"].as_str()?.to_owned();
            (!field(&listen, "listening").is_empty()).then_some(listen)
        },
    );
    let listening = field(&listen, "listening");
    assert!(field(&listen, "held").contains(&p), "{listen}");
    assert!(!listening.contains(&p), "{listen}");
    assert!(
        listening.len() >= 5,
        "need five free ports near {p}: {listen}"
    );

    let out = Command::new("nmap")
        .args([
            "-sT",
            "-Pn",
            "-n",
            "-p",
            &format!("{start}-{end}"),
            "127.0.0.1",
        ])
        .output()
        .expect("run nmap");
    assert!(out.status.success(), "{out:?}");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains(&format!("{p}/tcp")),
        "nmap sees the real service: {report}"
    );

    // The real service still accepts.
    let _c = TcpStream::connect(("127.0.0.1", p)).unwrap();
    real.accept().unwrap();

    let scans = wait_for("one scan_detected", Duration::from_secs(30), || {
        let s = dep.events(&["--kind", "scan_detected", "--node", "ext-1"]);
        (!s.is_empty()).then_some(s)
    });
    // The scan ended a window ago; give a wrongly split scan time to show up too.
    std::thread::sleep(Duration::from_secs(3));
    let scans_after = dep.events(&["--kind", "scan_detected", "--node", "ext-1"]);
    assert_eq!(scans_after.len(), 1, "{scans_after:?}");
    let scan = &scans[0]["honeybee"]["scan"];
    let ports: BTreeSet<u16> = scan["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u16)
        .collect();
    assert_eq!(ports, listening, "{scan}");
    assert_eq!(scan["distinct_ports"], listening.len());
    assert!(scan["count"].as_u64().unwrap() as usize >= listening.len());
    assert_eq!(scans[0]["source"]["ip"], "127.0.0.1");

    let connects = dep.events(&["--kind", "connect", "--node", "ext-1", "--limit", "1000"]);
    let hit: BTreeSet<u16> = connects
        .iter()
        .filter(|e| e["service"]["name"] == "ext")
        .map(|e| e["destination"]["port"].as_u64().unwrap() as u16)
        .collect();
    assert_eq!(hit, listening);

    // Release one port by command: it stops accepting.
    let victim = *listening.iter().next().unwrap();
    let answer = ok(&[
        "node",
        "command",
        "ext-1",
        "release-port",
        "ext",
        &victim.to_string(),
        "--data-dir",
        &d,
    ]);
    assert!(answer.contains("released"), "{answer}");
    assert!(TcpStream::connect(("127.0.0.1", victim)).is_err());
    let err = fails(&[
        "node",
        "command",
        "ext-1",
        "release-port",
        "ext",
        "1",
        "--data-dir",
        &d,
    ]);
    assert!(err.contains("not configured"), "{err}");
}

// ---- on a PostgreSQL store (`common::on_postgres`: the same body, a database of its own
// on this test binary's PostgreSQL server)

#[test]
fn nmap_scan_of_extension_node_is_one_scan_event_on_postgres() {
    common::on_postgres(nmap_scan_of_extension_node_is_one_scan_event);
}
