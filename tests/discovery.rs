//! Finding the core by DNS SRV records, end to end: an agent whose token names the core as
//! `srv:hb.test` enrols and connects through a DNS server the test runs on loopback, then
//! fails over to the next SRV target when the core comes back on another port.
//!
//! The root package has no DNS server crate among its dev-dependencies, so the server here
//! is a few lines over std's UDP socket; the agent crate's own tests use hickory-server.

mod common;
use common::*;
use honeybee_pki::token::Token;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const TYPE_A: u16 = 1;
const TYPE_SRV: u16 = 33;

enum Rr {
    A(Ipv4Addr),
    /// priority, weight, port, target
    Srv(u16, u16, u16, &'static str),
}

/// An authoritative-only DNS responder on 127.0.0.1:<ephemeral>/UDP for a fixed set of
/// records; unknown names get NXDOMAIN, known names without the asked type get no answers.
struct TestDns {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestDns {
    fn start(records: Vec<(&'static str, Rr)>) -> TestDns {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind dns");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = answer(&buf[..n], &records) {
                    let _ = socket.send_to(&reply, peer);
                }
            }
        });
        TestDns {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn encode_name(name: &str, out: &mut Vec<u8>) {
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

/// Builds the reply to one query, or None for anything that is not a plain query.
fn answer(q: &[u8], records: &[(&'static str, Rr)]) -> Option<Vec<u8>> {
    if q.len() < 12 || q[2] & 0x80 != 0 || u16::from_be_bytes([q[4], q[5]]) != 1 {
        return None;
    }
    // The question: labels up to the root, then type and class.
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let question = &q[12..i + 4];
    let name = labels.join(".");

    let known = records.iter().any(|(n, _)| n.trim_end_matches('.') == name);
    let mut answers = Vec::new();
    let mut count = 0u16;
    for (n, rr) in records {
        if n.trim_end_matches('.') != name {
            continue;
        }
        let (ty, rdata) = match rr {
            Rr::A(ip) => (TYPE_A, ip.octets().to_vec()),
            Rr::Srv(prio, weight, port, target) => {
                let mut d = Vec::new();
                d.extend_from_slice(&prio.to_be_bytes());
                d.extend_from_slice(&weight.to_be_bytes());
                d.extend_from_slice(&port.to_be_bytes());
                encode_name(target, &mut d);
                (TYPE_SRV, d)
            }
        };
        if ty != qtype {
            continue;
        }
        answers.extend_from_slice(&[0xc0, 12]); // the question's name
        answers.extend_from_slice(&ty.to_be_bytes());
        answers.extend_from_slice(&1u16.to_be_bytes()); // IN
        answers.extend_from_slice(&5u32.to_be_bytes()); // TTL
        answers.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        answers.extend_from_slice(&rdata);
        count += 1;
    }
    let mut r = Vec::with_capacity(12 + question.len() + answers.len());
    r.extend_from_slice(&q[0..2]); // id
    // QR, AA, RD copied, RA; rcode NXDOMAIN for a name we do not have.
    r.push(0x84 | (q[2] & 0x01));
    r.push(0x80 | if known { 0 } else { 3 });
    r.extend_from_slice(&1u16.to_be_bytes());
    r.extend_from_slice(&count.to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(question);
    r.extend_from_slice(&answers);
    Some(r)
}

/// Opens one banner connection and sends `payload`.
fn hit(port: u16, payload: &str) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("banner up");
    s.write_all(format!("{payload}\n").as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
}

#[test]
fn srv_failover_between_two_core_addresses() {
    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let first = dep.port;
    let dead = free_udp_port(); // nothing ever listens here
    let second = free_udp_port(); // where the core comes back

    let dns = TestDns::start(vec![
        (
            "_honeybee._udp.hb.test",
            Rr::Srv(5, 0, dead, "dead.hb.test."),
        ),
        (
            "_honeybee._udp.hb.test",
            Rr::Srv(10, 0, first, "one.hb.test."),
        ),
        (
            "_honeybee._udp.hb.test",
            Rr::Srv(20, 0, second, "two.hb.test."),
        ),
        ("dead.hb.test", Rr::A(Ipv4Addr::LOCALHOST)),
        ("one.hb.test", Rr::A(Ipv4Addr::LOCALHOST)),
        ("two.hb.test", Rr::A(Ipv4Addr::LOCALHOST)),
    ]);

    // A real token, pointed at the SRV name instead of the core's advertised address.
    let mut token = Token::decode(&dep.token("mover", &[])).unwrap();
    token.core_addr = "srv:hb.test".into();
    let token = token.encode();

    // Enrolment finds the core through HONEYBEE_DNS_SERVER, past the dead first target.
    let a = dep.agent_dir("mover");
    let out = std::process::Command::new(bin())
        .args(["agent", "enroll", "--token", &token, "--data-dir"])
        .arg(&a)
        .env("HONEYBEE_DNS_SERVER", dns.addr.to_string())
        .env("RUST_LOG", "info,quinn=warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "enrol via SRV: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `agent run` takes the DNS server from agent.toml.
    let cfg_path = a.join("agent.toml");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    assert!(cfg.contains("core = \"srv:hb.test\""), "{cfg}");
    std::fs::write(&cfg_path, format!("{cfg}dns_server = \"{}\"\n", dns.addr)).unwrap();
    let agent = dep.run_agent("mover");
    let banner = dep.service_port("mover", "banner");
    hit(banner, "before-the-move");
    wait_for("the first event", Duration::from_secs(60), || {
        let evs = dep.events(&["--node", "mover", "--kind", "data"]);
        evs.iter()
            .any(|e| e["honeybee"]["data_text"].as_str().map(str::trim) == Some("before-the-move"))
            .then_some(())
    });
    let log = agent.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("cannot connect to core") && l.contains(&format!(":{dead}"))),
        "the priority-5 target is tried first:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("connected to core") && l.contains(&format!(":{first}"))),
        "{log}"
    );

    // The core restarts on another port: the agent fails over to the priority-20 target.
    dep.core.as_mut().unwrap().terminate();
    let core_toml = dep.core_dir().join("core.toml");
    let text = std::fs::read_to_string(&core_toml).unwrap();
    assert!(text.contains(&format!("127.0.0.1:{first}\"")), "{text}");
    std::fs::write(
        &core_toml,
        text.replace(
            &format!("127.0.0.1:{first}\""),
            &format!("127.0.0.1:{second}\""),
        ),
    )
    .unwrap();
    dep.start_core();
    hit(banner, "after-the-move");
    wait_for(
        "the event sent after the move",
        Duration::from_secs(90),
        || {
            let evs = dep.events(&["--node", "mover", "--kind", "data"]);
            evs.iter()
                .any(|e| {
                    e["honeybee"]["data_text"].as_str().map(str::trim) == Some("after-the-move")
                })
                .then_some(())
        },
    );
    let log = agent.log_text();
    let moved = format!("connected to core addr=127.0.0.1:{second}");
    assert!(
        log.lines()
            .any(|l| l.contains("connected to core") && l.contains(&format!(":{second}"))),
        "expected {moved:?} in\n{log}"
    );
    assert_eq!(dep.node("mover").unwrap()["online"], true);
}
