//! Name-poisoning canary: the node asks LLMNR, NBT-NS and mDNS for honey-names that no
//! host holds; a responder of the Responder family answers every such name, a normal
//! network never does. Any positive answer to one of our queries opens a
//! `poisoning_detected` incident about the responder.
//!
//! Queries leave from an ordinary UDP socket (no privilege): LLMNR to 224.0.0.252:5355
//! and mDNS to 224.0.0.251:5353 with TTL 1, NBT-NS to the subnet's broadcast address on
//! port 137. mDNS uses the unicast-response bit from an ephemeral port ("legacy unicast",
//! RFC 6762 §6.7), so every answer comes back to the asking socket. The names are drawn
//! from the node's persona seed and the round number: different on every node and every
//! round, plausible office names so that a careful attacker cannot tell the canary apart.

use super::incident::{Alert, AlertClass, IncidentBook, IncidentConfig, Mac};
use crate::persona::Draw;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};

/// Outstanding queries remembered (their ids); older ones are forgotten.
pub const MAX_PENDING: usize = 64;

/// Which protocol a query went out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Llmnr,
    NbtNs,
    Mdns,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Llmnr => "llmnr",
            Proto::NbtNs => "nbt-ns",
            Proto::Mdns => "mdns",
        }
    }
}

const PREFIXES: &[&str] = &[
    "FILESRV", "FS", "NAS", "BACKUP", "PRINT", "SCAN", "SQL", "WSUS", "SHARE", "FILES", "INTRANET",
    "HR-FS", "FINANCE", "ACCT", "DEPLOY", "SCCM", "VEEAM", "DOCS", "ARCHIVE", "EXCH", "CITRIX",
    "RDS", "TS", "SAGE", "QB", "APP",
];
const LETTERS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";

/// The honey-name of round `round` on the node whose persona stream is `draw` (a fresh
/// stream per round): `PREFIX` + two digits, sometimes a letter (`FILESRV07`, `NAS-12B`).
/// At most 15 characters, the NetBIOS limit.
pub(crate) fn honey_name(draw: &mut Draw) -> String {
    let prefix = *draw.pick(PREFIXES);
    let sep = if draw.below(3) == 0 { "-" } else { "" };
    let mut n = format!("{prefix}{sep}{:02}", draw.below(100));
    if draw.below(2) == 0 {
        n.push(char::from(*draw.pick(LETTERS)));
    }
    n.truncate(15);
    n
}

/// A DNS-format query (LLMNR, mDNS): one question for `name`, type A.
pub fn dns_query(id: u16, name: &str, unicast_response: bool) -> Vec<u8> {
    let mut q = Vec::with_capacity(12 + name.len() + 6);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let l = &label.as_bytes()[..label.len().min(63)];
        q.push(l.len() as u8);
        q.extend_from_slice(l);
    }
    q.push(0);
    q.extend_from_slice(&[0, 1]); // A
    q.extend_from_slice(if unicast_response {
        &[0x80, 1]
    } else {
        &[0, 1]
    });
    q
}

/// An NBT-NS broadcast name query (RFC 1002 §4.2.12) for `name` (workstation suffix 0x20).
pub fn nbns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(50);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x10, 0, 1, 0, 0, 0, 0, 0, 0]);
    let mut raw = [b' '; 16];
    for (d, s) in raw.iter_mut().zip(name.bytes().take(15)) {
        *d = s.to_ascii_uppercase();
    }
    raw[15] = 0x20;
    q.push(32);
    for b in raw {
        q.push(b'A' + (b >> 4));
        q.push(b'A' + (b & 0x0f));
    }
    q.push(0);
    q.extend_from_slice(&[0, 0x20, 0, 1]); // NB, IN
    q
}

/// The id of a positive answer (a response with at least one answer record, no error),
/// or `None` for anything else.
pub fn positive_answer_id(p: &[u8]) -> Option<u16> {
    if p.len() < 12 {
        return None;
    }
    let response = p[2] & 0x80 != 0;
    let rcode = p[3] & 0x0f;
    let ancount = u16::from_be_bytes([p[6], p[7]]);
    (response && rcode == 0 && ancount > 0).then(|| u16::from_be_bytes([p[0], p[1]]))
}

#[derive(Debug, Clone)]
struct Pending {
    id: u16,
    proto: Proto,
    name: String,
}

/// Sent queries and the incidents of the answers they got.
#[derive(Debug)]
pub struct PoisonWatch {
    pending: VecDeque<Pending>,
    book: IncidentBook,
    own: Vec<IpAddr>,
    /// The honey-name of the last poisoned answer.
    last_name: String,
}

impl PoisonWatch {
    /// `own`: this node's addresses (never a poisoner of itself).
    pub fn new(incidents: IncidentConfig, own: Vec<IpAddr>) -> Self {
        PoisonWatch {
            pending: VecDeque::new(),
            book: IncidentBook::new(incidents, AlertClass::Poisoning),
            own,
            last_name: String::new(),
        }
    }

    /// Remembers a query sent.
    pub fn sent(&mut self, id: u16, proto: Proto, name: &str) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(Pending {
            id,
            proto,
            name: name.to_owned(),
        });
    }

    /// A datagram that came back to the `proto` socket from `src`; `mac` is the
    /// responder's MAC where the neighbour table knows it. Returns whether it was a
    /// poisoned answer.
    pub fn answer(
        &mut self,
        proto: Proto,
        src: IpAddr,
        payload: &[u8],
        mac: Option<Mac>,
        now_ms: u64,
    ) -> bool {
        if self.own.contains(&src) {
            return false;
        }
        let Some(id) = positive_answer_id(payload) else {
            return false;
        };
        let Some(q) = self
            .pending
            .iter()
            .find(|p| p.id == id && p.proto == proto)
            .cloned()
        else {
            return false;
        };
        self.last_name.clone_from(&q.name);
        let Some(i) = self
            .book
            .hit(&format!("poison {src}"), "", Some(src), false, now_ms)
        else {
            return true;
        };
        // `what` lists the protocols that were poisoned, in the order first seen.
        let p = proto.name();
        if !i.what.split(',').any(|w| w == p) {
            if !i.what.is_empty() {
                i.what.push(',');
            }
            i.what.push_str(p);
        }
        if let Some(m) = mac {
            i.add_mac(m);
        }
        i.add_detail(&format!("{} answered for {}", p, q.name));
        true
    }

    pub fn overflow(&self) -> u64 {
        self.book.overflow
    }

    /// The honey-name that the last poisoned answer ([`PoisonWatch::answer`] true) was for.
    pub fn last_name(&self) -> &str {
        &self.last_name
    }

    pub fn tick(&mut self, now_ms: u64) -> Vec<Alert> {
        self.book.tick(now_ms)
    }

    pub fn drain(&mut self) -> Vec<Alert> {
        self.book.drain()
    }
}

/// The broadcast address of `ip` in a subnet of `prefix_len` bits.
pub fn broadcast(ip: Ipv4Addr, prefix_len: u8) -> Ipv4Addr {
    let mask = if prefix_len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix_len.min(32)))
    };
    Ipv4Addr::from(u32::from(ip) | !mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer_to(q: &[u8]) -> Vec<u8> {
        // What Responder sends back: the query with QR set, one answer record.
        let mut a = q.to_vec();
        a[2] |= 0x80;
        a[7] = 1;
        a.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 0, 0, 66]);
        a
    }

    #[test]
    fn honey_names_differ_per_node_and_round_and_fit_netbios() {
        let seed_a = [1u8; 32];
        let seed_b = [2u8; 32];
        let mut names = std::collections::HashSet::new();
        for round in 0..50 {
            let a = honey_name(&mut Draw::new(
                &seed_a,
                &format!("detectors/honeyname/{round}"),
            ));
            let b = honey_name(&mut Draw::new(
                &seed_b,
                &format!("detectors/honeyname/{round}"),
            ));
            assert!(a.len() <= 15 && a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'));
            names.insert(a);
            names.insert(b);
        }
        assert!(names.len() > 60, "{}", names.len());
        let again = honey_name(&mut Draw::new(&seed_a, "detectors/honeyname/7"));
        assert_eq!(
            again,
            honey_name(&mut Draw::new(&seed_a, "detectors/honeyname/7"))
        );
    }

    #[test]
    fn queries_are_well_formed() {
        let q = dns_query(0xbeef, "nas-12b.local", true);
        assert_eq!(&q[..4], &[0xbe, 0xef, 0, 0]);
        assert_eq!(&q[12..16], &[7, b'n', b'a', b's']);
        assert_eq!(&q[q.len() - 4..], &[0, 1, 0x80, 1]);
        let n = nbns_query(7, "fs01");
        assert_eq!(n.len(), 50);
        // "FS01" + spaces + 0x20, first-level encoded: F=0x46 -> "EG".
        assert_eq!(&n[13..15], b"EG");
        assert_eq!(&n[43..45], b"CA", "the suffix 0x20");
        assert_eq!(positive_answer_id(&q), None, "a query is no answer");
    }

    #[test]
    fn answers_to_our_queries_are_one_incident_per_responder() {
        let mut w = PoisonWatch::new(
            IncidentConfig {
                quiet_ms: 1_000,
                ..Default::default()
            },
            vec![IpAddr::from([10, 0, 0, 2])],
        );
        let evil = IpAddr::from([10, 0, 0, 66]);
        let q1 = dns_query(1, "FILESRV07", false);
        let q2 = nbns_query(2, "FILESRV07");
        w.sent(1, Proto::Llmnr, "FILESRV07");
        w.sent(2, Proto::NbtNs, "FILESRV07");
        assert!(w.answer(
            Proto::Llmnr,
            evil,
            &answer_to(&q1),
            Some([2, 0, 0, 0, 0, 0x66]),
            0
        ));
        assert!(w.answer(Proto::NbtNs, evil, &answer_to(&q2), None, 5));
        // Not ours: wrong id, wrong socket, ourselves, a negative answer, garbage.
        assert!(!w.answer(
            Proto::Llmnr,
            evil,
            &answer_to(&dns_query(9, "x", false)),
            None,
            6
        ));
        assert!(!w.answer(Proto::Mdns, evil, &answer_to(&q1), None, 6));
        assert!(!w.answer(
            Proto::Llmnr,
            IpAddr::from([10, 0, 0, 2]),
            &answer_to(&q1),
            None,
            6
        ));
        let mut neg = answer_to(&q1);
        neg[3] |= 3;
        assert!(!w.answer(Proto::Llmnr, evil, &neg, None, 6));
        assert!(!w.answer(Proto::Llmnr, evil, &[0xff; 5], None, 6));
        let a = w.tick(2_000);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].class, AlertClass::Poisoning);
        let a = &a[0].alert;
        assert_eq!(a.what, "llmnr,nbt-ns");
        assert_eq!(a.count, 2);
        assert_eq!(a.ip, Some(evil));
        assert_eq!(a.macs, vec!["02:00:00:00:00:66".to_owned()]);
        assert!(
            a.detail.contains("llmnr answered for FILESRV07"),
            "{}",
            a.detail
        );
        for i in 0..200u16 {
            w.sent(i, Proto::Mdns, "x");
        }
        assert_eq!(w.pending.len(), MAX_PENDING);
    }

    #[test]
    fn broadcast_of_subnets() {
        assert_eq!(
            broadcast(Ipv4Addr::new(10, 1, 2, 3), 24),
            Ipv4Addr::new(10, 1, 2, 255)
        );
        assert_eq!(
            broadcast(Ipv4Addr::new(10, 1, 2, 3), 0),
            Ipv4Addr::BROADCAST
        );
        assert_eq!(
            broadcast(Ipv4Addr::new(10, 1, 2, 3), 32),
            Ipv4Addr::new(10, 1, 2, 3)
        );
    }
}
