//! Helpers shared by the shell tests (SSH and telnet): a manager with a capture spool,
//! event collection, asciicast parsing, and hydra runs.
#![allow(dead_code)]

use honeybee_agent::captures::CaptureSpool;
use honeybee_agent::services::{Limits, ServiceManager};
use honeybee_agent::sink::{EventSink, NewEvent};
use honeybee_proto::capture::CaptureKind;
use honeybee_proto::config::{NodeConfig, ServiceConfig, ServiceKind};
use honeybee_proto::event::{AuthAttempt, AuthMethod, EventKind};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;

pub const WAIT: Duration = Duration::from_secs(30);

pub struct Running {
    pub mgr: ServiceManager,
    pub rx: mpsc::Receiver<NewEvent>,
    pub addr: SocketAddr,
    pub spool: CaptureSpool,
}

pub fn one(name: &str, kind: ServiceKind) -> NodeConfig {
    NodeConfig {
        services: vec![ServiceConfig {
            name: name.into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            enabled: true,
            kind,
        }],
    }
}

pub async fn start(dir: &Path, config: &NodeConfig) -> Running {
    config.validate().expect("valid config");
    let (sink, rx) = EventSink::channel(16 * 1024);
    let spool = CaptureSpool::open(&dir.join("captures"), 64 << 20).unwrap();
    let mut mgr =
        ServiceManager::new(sink, dir.to_owned(), Limits::default()).with_captures(spool.clone());
    mgr.apply(config).await;
    let st = mgr.status();
    assert!(st[0].running, "{st:?}");
    let addr = st[0].listen.parse().unwrap();
    Running {
        mgr,
        rx,
        addr,
        spool,
    }
}

/// Events of one session, up to its Disconnect.
pub async fn until_disconnect(rx: &mut mpsc::Receiver<NewEvent>) -> Vec<NewEvent> {
    let mut out = Vec::new();
    loop {
        let e = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("event in time")
            .expect("sink open");
        let end = matches!(e.kind, EventKind::Disconnect { .. });
        out.push(e);
        if end {
            return out;
        }
    }
}

/// Events until `n` sessions have disconnected.
pub async fn sessions(rx: &mut mpsc::Receiver<NewEvent>, n: usize) -> Vec<NewEvent> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.extend(until_disconnect(rx).await);
    }
    out
}

pub fn attempts(events: &[NewEvent]) -> Vec<AuthAttempt> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::AuthAttempt(a) if a.method != AuthMethod::None => Some(a.clone()),
            _ => None,
        })
        .collect()
}

pub fn commands(events: &[NewEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Command { line } => Some(line.clone()),
            _ => None,
        })
        .collect()
}

pub fn downloads(events: &[NewEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Download { url, tool } => Some((url.clone(), tool.clone())),
            _ => None,
        })
        .collect()
}

/// A parsed asciicast v2 file.
#[derive(Debug)]
pub struct Cast {
    pub header: serde_json::Value,
    /// (time, code, data)
    pub records: Vec<(f64, String, String)>,
}

impl Cast {
    pub fn parse(bytes: &[u8]) -> Cast {
        let text = std::str::from_utf8(bytes).expect("asciicast is UTF-8");
        let mut lines = text.lines();
        let header: serde_json::Value =
            serde_json::from_str(lines.next().expect("header line")).expect("header is JSON");
        assert_eq!(header["version"], 2, "{header}");
        assert!(header["width"].as_u64().unwrap() > 0);
        assert!(header["height"].as_u64().unwrap() > 0);
        assert!(header["timestamp"].as_i64().unwrap() > 1_600_000_000);
        let mut records = Vec::new();
        let mut last = 0.0;
        for l in lines {
            let v: serde_json::Value = serde_json::from_str(l).expect("record is JSON");
            let t = v[0].as_f64().expect("time");
            assert!(t >= last, "times never go back");
            last = t;
            records.push((
                t,
                v[1].as_str().unwrap().to_owned(),
                v[2].as_str().unwrap().to_owned(),
            ));
        }
        Cast { header, records }
    }

    /// Everything of one code, concatenated.
    pub fn stream(&self, code: &str) -> String {
        self.records
            .iter()
            .filter(|(_, c, _)| c == code)
            .map(|(_, _, d)| d.as_str())
            .collect()
    }
}

/// The transcript captures in the spool, with their content.
pub fn transcripts(spool: &CaptureSpool) -> Vec<(honeybee_proto::capture::CaptureHeader, Vec<u8>)> {
    spool
        .pending()
        .into_iter()
        .filter(|(h, _)| h.kind == CaptureKind::Transcript)
        .map(|(h, p)| {
            let content = std::fs::read(&p).unwrap();
            (h, content)
        })
        .collect()
}

/// 20 logins × 20 passwords, all distinct, written into `dir`.
pub fn hydra_lists(
    dir: &Path,
) -> (
    std::path::PathBuf,
    std::path::PathBuf,
    Vec<(String, String)>,
) {
    let users: Vec<String> = (0..20).map(|i| format!("user{i:02}")).collect();
    let pws: Vec<String> = (0..20).map(|i| format!("pw{i:02}x")).collect();
    let u = dir.join("users.txt");
    let p = dir.join("pass.txt");
    std::fs::write(&u, users.join("\n") + "\n").unwrap();
    std::fs::write(&p, pws.join("\n") + "\n").unwrap();
    let mut pairs = Vec::new();
    for a in &users {
        for b in &pws {
            pairs.push((a.clone(), b.clone()));
        }
    }
    (u, p, pairs)
}

/// Runs hydra against `port` with 4 tasks inside `dir`; returns its output.
pub async fn hydra(dir: &Path, module: &str, port: u16) -> std::process::Output {
    let (u, p, _) = hydra_lists(dir);
    tokio::time::timeout(
        Duration::from_secs(600),
        tokio::process::Command::new("hydra")
            .current_dir(dir)
            .args(["-I", "-t", "4", "-L"])
            .arg(&u)
            .arg("-P")
            .arg(&p)
            .arg("-o")
            .arg(dir.join("hydra.out"))
            .args(["-s", &port.to_string(), "127.0.0.1", module])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("hydra finished in time")
    .expect("hydra runs")
}

/// `nmap -sV` on one port: (service name, product) of the first port element.
pub async fn nmap_service(port: u16) -> (String, String, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new("nmap")
            .args([
                "-sV",
                "-Pn",
                "-n",
                "-p",
                &port.to_string(),
                "127.0.0.1",
                "-oX",
                "-",
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("nmap finished in time")
    .expect("nmap runs");
    let xml = String::from_utf8_lossy(&out.stdout).into_owned();
    let service = xml
        .split("<service ")
        .nth(1)
        .unwrap_or_else(|| panic!("no service element: {xml}"));
    let attr = |name: &str| -> String {
        let key = format!("{name}=\"");
        service
            .split(&key)
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("")
            .to_owned()
    };
    (attr("name"), attr("product"), attr("version"))
}
