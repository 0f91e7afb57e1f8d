//! The attack on the node's async workers through the emulated shell: eight Telnet
//! sessions type the worst command line we know (grep with thousands of alternatives
//! over thousands of files, stopped by the per-line budget) again and again, while a
//! client of another service on the same manager (a banner service) keeps connecting.
//! Shell lines run in the node's bounded line pool, off the async workers, so the
//! other service answers while the attack is still under way.

use honeybee_agent::services::{Limits, ServiceManager};
use honeybee_agent::sink::EventSink;
use honeybee_proto::config::{
    BannerOptions, LoginPolicy, NodeConfig, ServiceConfig, ServiceKind, TelnetOptions,
};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Attacking sessions, and worst-case lines each of them types.
const ATTACKERS: usize = 8;
const LINES_EACH: usize = 8;
/// Sequential connections the probe makes to the banner service.
const PROBES: usize = 20;
/// Attack lines that must have finished before the probe starts: the attack is
/// then in full swing, every session waiting on or running a worst line.
const PROBE_AFTER: usize = ATTACKERS / 2;
/// Generous deadline for any one read (debug builds on a loaded machine).
const READ_WAIT: Duration = Duration::from_secs(120);

const BANNER: &str = "220 mail.example.com ESMTP Postfix (Debian/GNU)\r\n";

/// Reads from `s` into `seen` until the bytes after `from` hold `what`; returns the
/// end of the match.
fn read_until(s: &mut TcpStream, seen: &mut Vec<u8>, from: usize, what: &str) -> usize {
    let deadline = Instant::now() + READ_WAIT;
    loop {
        if let Some(i) = String::from_utf8_lossy(&seen[from.min(seen.len())..]).find(what) {
            return from + i + what.len();
        }
        assert!(Instant::now() < deadline, "no {what:?} in time");
        let mut buf = [0u8; 8192];
        let n = s.read(&mut buf).expect("read");
        assert!(
            n > 0,
            "closed before {what:?}: {:?}",
            String::from_utf8_lossy(&seen[seen.len().saturating_sub(500)..])
        );
        seen.extend_from_slice(&buf[..n]);
    }
}

/// The worst line from the shell's budget tests: `$P` holds 330 alternatives, `$F`
/// 85 file operands; 25 of each make grep's lines × alternatives exhaust the
/// 2,000,000-iteration budget, so every run ends in `Killed`.
fn worst_line() -> (Vec<String>, String) {
    let setup = vec![
        format!("P='{}'", "zz|".repeat(330)),
        format!("F='{}'", "/etc/passwd ".repeat(85)),
    ];
    let line = format!(
        "sh -c \"grep -c '{}' {}\"",
        "$P".repeat(25),
        "$F".repeat(25)
    );
    (setup, line)
}

/// One attacking Telnet session, over raw TCP: logs in, sets up, then types the worst
/// line `LINES_EACH` times, counting each finished line in `done`.
fn attacker(addr: SocketAddr, started: Arc<AtomicUsize>, done: Arc<AtomicUsize>) {
    let mut s = TcpStream::connect(addr).expect("connect telnet");
    s.set_read_timeout(Some(READ_WAIT)).unwrap();
    let mut seen = Vec::new();
    // The server speaks after the client does; a name is as good as anything.
    s.write_all(b"root\r\n").unwrap();
    let mut at = read_until(&mut s, &mut seen, 0, "Password: ");
    s.write_all(b"123456\r\n").unwrap();
    at = read_until(&mut s, &mut seen, at, "# ");
    let (setup, line) = worst_line();
    for l in &setup {
        s.write_all(format!("{l}\r\n").as_bytes()).unwrap();
        at = read_until(&mut s, &mut seen, at, "# ");
    }
    started.fetch_add(1, Ordering::SeqCst);
    for _ in 0..LINES_EACH {
        s.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        at = read_until(&mut s, &mut seen, at, "Killed");
        at = read_until(&mut s, &mut seen, at, "# ");
        done.fetch_add(1, Ordering::SeqCst);
    }
    s.write_all(b"exit\r\n").unwrap();
}

// Two workers, as on a two-core node: eight attacking sessions are four per worker.
// With the lines on the workers (before the line pool) every probe waited for about
// eight lines, and the probe finished only after all 64 of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worst_lines_in_many_sessions_leave_other_services_answering() {
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig {
        services: vec![
            ServiceConfig {
                name: "telnet".into(),
                listen: "127.0.0.1:0".parse().unwrap(),
                enabled: true,
                kind: ServiceKind::Telnet(TelnetOptions {
                    login: LoginPolicy::Always,
                    auth_failure_delay_ms: 1,
                    ..Default::default()
                }),
            },
            ServiceConfig {
                name: "smtp".into(),
                listen: "127.0.0.1:0".parse().unwrap(),
                enabled: true,
                kind: ServiceKind::Banner(BannerOptions {
                    banner: BANNER.into(),
                    ..Default::default()
                }),
            },
        ],
    };
    config.validate().expect("valid config");
    let (sink, mut rx) = EventSink::channel(16 * 1024);
    // Events are drained as they come, so no session ever waits on the sink.
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let mut mgr = ServiceManager::new(sink, dir.path().to_owned(), Limits::default());
    mgr.apply(&config).await;
    let st = mgr.status();
    assert!(st.iter().all(|s| s.running), "{st:?}");
    let telnet: SocketAddr = st[0].listen.parse().unwrap();
    let smtp: SocketAddr = st[1].listen.parse().unwrap();

    let started = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let attackers: Vec<_> = (0..ATTACKERS)
        .map(|_| {
            let (started, done) = (Arc::clone(&started), Arc::clone(&done));
            std::thread::spawn(move || attacker(telnet, started, done))
        })
        .collect();

    // The probe: once the attack is in full swing, connect to the banner service
    // again and again; each connection must get its banner.
    let probe_done = Arc::new(AtomicBool::new(false));
    let (st2, d2, pd) = (
        Arc::clone(&started),
        Arc::clone(&done),
        Arc::clone(&probe_done),
    );
    let probe = std::thread::spawn(move || {
        let deadline = Instant::now() + READ_WAIT;
        while st2.load(Ordering::SeqCst) < ATTACKERS {
            assert!(Instant::now() < deadline, "attackers never started");
            std::thread::sleep(Duration::from_millis(5));
        }
        while d2.load(Ordering::SeqCst) < PROBE_AFTER {
            assert!(Instant::now() < deadline, "no attack line finished");
            std::thread::sleep(Duration::from_millis(5));
        }
        let from = d2.load(Ordering::SeqCst);
        let begin = Instant::now();
        for _ in 0..PROBES {
            let mut s = TcpStream::connect(smtp).expect("connect banner");
            s.set_read_timeout(Some(READ_WAIT)).unwrap();
            let mut seen = Vec::new();
            read_until(&mut s, &mut seen, 0, BANNER);
        }
        pd.store(true, Ordering::SeqCst);
        (from, begin.elapsed())
    });
    let (done_before_probe, probe_time) =
        tokio::task::spawn_blocking(move || probe.join().expect("probe"))
            .await
            .unwrap();
    let done_at_probe = done.load(Ordering::SeqCst);
    let total = ATTACKERS * LINES_EACH;
    for a in attackers {
        tokio::task::spawn_blocking(move || a.join().expect("attacker"))
            .await
            .unwrap();
    }
    let attack_time = t0.elapsed();
    eprintln!(
        "{PROBES} banner probes answered in {probe_time:?}; worst lines finished: \
         {done_before_probe} at the first probe, {done_at_probe} at the last, of {total}; \
         whole attack {attack_time:?}"
    );
    assert!(probe_done.load(Ordering::SeqCst));
    // Every attacking session was served to the end, and the banner service answered
    // all its probes before half the attack was over.
    assert_eq!(done.load(Ordering::SeqCst), total);
    assert!(
        done_at_probe < total / 2,
        "probe answered only after {done_at_probe} of {total} attack lines"
    );
    mgr.shutdown().await;
    drain.abort();
}
