//! Helpers shared by the Redis, MySQL and Modbus service tests: a ServiceManager on
//! loopback with a channel sink, event collection with generous deadlines, real client
//! programs run with a timeout, and nmap's XML read for the service it named.
#![allow(dead_code)]

use honeybee_agent::captures::CaptureSpool;
use honeybee_agent::services::{Limits, ServiceManager};
use honeybee_agent::sink::{EventSink, NewEvent};
use honeybee_proto::config::{NodeConfig, ServiceConfig, ServiceKind};
use honeybee_proto::event::EventKind;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;

/// Long enough for a loaded machine; tests never assert timings.
pub const WAIT: Duration = Duration::from_secs(30);

pub struct Running {
    pub mgr: ServiceManager,
    pub rx: mpsc::Receiver<NewEvent>,
    pub addr: SocketAddr,
    /// Everything received so far, in order.
    pub events: Vec<NewEvent>,
}

/// Starts one service `name` of `kind` on `listen` (port 0 unless a test needs a
/// well-known one), with a capture spool in `dir`.
pub async fn start(dir: &Path, name: &str, listen: SocketAddr, kind: ServiceKind) -> Running {
    start_with_limits(dir, name, listen, kind, Limits::default()).await
}

/// [`start`] with the node's session limits (a short `idle_timeout` makes deadlines that
/// derive from it short enough for a test).
pub async fn start_with_limits(
    dir: &Path,
    name: &str,
    listen: SocketAddr,
    kind: ServiceKind,
    limits: Limits,
) -> Running {
    let (sink, rx) = EventSink::channel(65_536);
    let spool = CaptureSpool::open(&dir.join("captures"), 64 << 20).unwrap();
    let mut mgr = ServiceManager::new(sink, dir.to_owned(), limits).with_captures(spool);
    mgr.apply(&NodeConfig {
        services: vec![ServiceConfig {
            name: name.into(),
            listen,
            enabled: true,
            kind,
        }],
    })
    .await;
    let st = mgr.status();
    assert!(st[0].running, "{st:?}");
    let addr: SocketAddr = st[0].listen.parse().unwrap();
    Running {
        mgr,
        rx,
        addr,
        events: Vec::new(),
    }
}

impl Running {
    /// Receives events until `done` holds for everything received so far.
    pub async fn wait_for(&mut self, what: &str, done: impl Fn(&[NewEvent]) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(&self.events) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(e)) => self.events.push(e),
                Ok(None) => panic!("event sink closed while waiting for {what}"),
                Err(_) => panic!("timed out waiting for {what}; got {:#?}", self.events),
            }
        }
    }

    /// Waits until `n` sessions have disconnected (so all their events are in).
    pub async fn wait_disconnects(&mut self, n: usize) {
        self.wait_for(&format!("{n} disconnects"), |ev| {
            ev.iter()
                .filter(|e| matches!(e.kind, EventKind::Disconnect { .. }))
                .count()
                >= n
        })
        .await;
    }

    pub fn commands(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Command { line } => Some(line.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn count(&self, kind: &str) -> usize {
        self.events.iter().filter(|e| e.kind.name() == kind).count()
    }
}

/// Output of a client program run to completion (killed after `WAIT` × 4).
pub struct Ran {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

pub async fn run(cwd: &Path, program: &str, args: &[&str], stdin: Option<&str>) -> Ran {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(cwd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).await.unwrap();
    }
    drop(input);
    let out = tokio::time::timeout(WAIT * 4, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} did not finish"))
        .unwrap();
    Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `nmap -sV` on one port; the `product` and `version` it names.
pub async fn nmap_service(cwd: &Path, addr: SocketAddr) -> (Option<String>, Option<String>) {
    let port = addr.port().to_string();
    let ip = addr.ip().to_string();
    let r = run(
        cwd,
        "nmap",
        &["-sV", "-Pn", "-n", "-p", &port, &ip, "-oX", "-"],
        None,
    )
    .await;
    assert!(r.ok, "nmap failed: {}", r.stderr);
    let service = r
        .stdout
        .split("<service ")
        .nth(1)
        .and_then(|s| s.split("/>").next())
        .unwrap_or_else(|| panic!("no service element in {}", r.stdout))
        .to_owned();
    (xml_attr(&service, "product"), xml_attr(&service, "version"))
}

pub fn xml_attr(element: &str, name: &str) -> Option<String> {
    let key = format!(" {name}=\"");
    let start = format!(" {element}").find(&key)? + key.len() - 1;
    let rest = &element[start..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// A free `ip:port` on some 127.x.y.z, for tests that need a service's well-known port
/// (nmap tries a service's own probe first on its own port) without colliding with
/// anything on 127.0.0.1.
pub fn free_loopback(port: u16) -> SocketAddr {
    for _ in 0..50 {
        let ip = std::net::Ipv4Addr::new(
            127,
            rand::random_range(1..=254),
            rand::random_range(0..=255),
            rand::random_range(1..=254),
        );
        let addr = SocketAddr::from((ip, port));
        if std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no free loopback address for port {port}");
}

/// A TCP connection to `to` from the loopback address `from` (e.g. 127.0.0.2): a second
/// source for tests of per-source bounds, where a client program cannot pick its address.
pub async fn connect_from(from: std::net::IpAddr, to: SocketAddr) -> tokio::net::TcpStream {
    let sock = if from.is_ipv4() {
        tokio::net::TcpSocket::new_v4().unwrap()
    } else {
        tokio::net::TcpSocket::new_v6().unwrap()
    };
    sock.bind(SocketAddr::new(from, 0)).unwrap();
    tokio::time::timeout(WAIT, sock.connect(to))
        .await
        .expect("connect in time")
        .unwrap()
}
