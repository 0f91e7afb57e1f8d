//! A DNS responder for fleets of several cores: agents find their cores by `srv:DOMAIN`,
//! as deployed agents do, and fail over down the SRV list when one stops answering.
//! Authoritative-only, on 127.0.0.1/UDP, a fixed set of A and SRV records; unknown names
//! get NXDOMAIN, known names without the asked type get no answers. The workspace's
//! end-to-end tests use it too (`tests/dns/mod.rs`, with a shorter record syntax).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const TYPE_A: u16 = 1;
const TYPE_SRV: u16 = 33;

/// One record's data.
#[derive(Debug, Clone)]
pub enum Rr {
    A(Ipv4Addr),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
}

/// The responder; stops (its thread joined) when dropped.
pub struct Dns {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Dns {
    pub fn start(records: Vec<(String, Rr)>) -> std::io::Result<Dns> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        // The thread checks its stop flag at least this often.
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        let addr = socket.local_addr()?;
        let records: Vec<(String, Rr)> = records
            .into_iter()
            .map(|(n, r)| (n.trim_end_matches('.').to_ascii_lowercase(), r))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("netsim-dns".into())
            .spawn(move || {
                let mut buf = [0u8; 1500];
                while !flag.load(Ordering::Relaxed) {
                    let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    if let Some(reply) = answer(&buf[..n], &records) {
                        let _ = socket.send_to(&reply, peer);
                    }
                }
            })?;
        Ok(Dns {
            addr,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Dns {
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
fn answer(q: &[u8], records: &[(String, Rr)]) -> Option<Vec<u8>> {
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
    let question = q.get(12..i + 4)?;
    let name = labels.join(".");

    let known = records.iter().any(|(n, _)| *n == name);
    let mut answers = Vec::new();
    let mut count = 0u16;
    for (n, rr) in records {
        if *n != name {
            continue;
        }
        let (ty, rdata) = match rr {
            Rr::A(ip) => (TYPE_A, ip.octets().to_vec()),
            Rr::Srv {
                priority,
                weight,
                port,
                target,
            } => {
                let mut d = Vec::new();
                d.extend_from_slice(&priority.to_be_bytes());
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
