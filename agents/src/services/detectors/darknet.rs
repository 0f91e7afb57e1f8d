//! Darknet monitoring (`darknet = true`, off by default): the node claims addresses of its
//! subnet that nobody holds, answering ARP for them with its own MAC, and reports
//! connection attempts to them (TCP SYN, UDP) as `network_anomaly` incidents `darknet`,
//! one per source with counts. Nothing is answered above ARP: the kernel drops what is
//! not for its own addresses, so a prober sees a silent host.
//!
//! Safety: an address is claimed only after ARP probes (RFC 5227: sender 0.0.0.0) got no
//! answer for [`PROBE_MS`]; any ARP from another host using a claimed address releases it
//! at once and it is never claimed again. Bounded: at most [`MAX_ADDRESSES`] addresses,
//! the incidents capped by the incident book, ARP answers capped per second.

use super::arp::{arp_frame, parse_arp};
use super::incident::{Alert, AlertClass, IncidentBook, IncidentConfig, Mac};
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};

/// Most addresses one node watches.
pub const MAX_ADDRESSES: usize = 256;
/// How long an address is probed, unanswered, before it is claimed.
pub const PROBE_MS: u64 = 3_000;
/// Probes per address (spread over [`PROBE_MS`]).
pub const PROBES: u32 = 3;
/// ARP answers sent per second at most; frames queued at most.
pub const MAX_REPLIES_PER_S: u32 = 50;
pub const MAX_QUEUED: usize = 64;

/// Parses `range`: `A-B` (IPv4, inclusive) or `auto` (the subnet of `own`/`prefix_len`,
/// less the network, broadcast, own and gateway addresses), at most [`MAX_ADDRESSES`]
/// (`auto` takes the top of the subnet, where DHCP pools seldom reach).
pub fn addresses(
    range: &str,
    own: Ipv4Addr,
    prefix_len: u8,
    gateway: Option<Ipv4Addr>,
) -> Result<Vec<Ipv4Addr>, String> {
    let skip = |a: Ipv4Addr| a == own || Some(a) == gateway;
    if range == "auto" {
        let p = u32::from(prefix_len.clamp(16, 30));
        let mask = u32::MAX << (32 - p);
        let net = u32::from(own) & mask;
        let bcast = net | !mask;
        let mut v: Vec<Ipv4Addr> = (net + 1..bcast)
            .rev()
            .map(Ipv4Addr::from)
            .filter(|a| !skip(*a))
            .take(MAX_ADDRESSES)
            .collect();
        v.reverse();
        return Ok(v);
    }
    let (a, b) = range
        .split_once('-')
        .ok_or_else(|| format!("darknet_range {range:?}: \"auto\" or A-B"))?;
    let (a, b): (Ipv4Addr, Ipv4Addr) = (
        a.trim().parse().map_err(|_| format!("bad address {a:?}"))?,
        b.trim().parse().map_err(|_| format!("bad address {b:?}"))?,
    );
    let (a, b) = (u32::from(a), u32::from(b));
    if b < a || (b - a) as usize >= MAX_ADDRESSES {
        return Err(format!(
            "darknet_range {range:?}: A <= B, at most {MAX_ADDRESSES} addresses"
        ));
    }
    Ok((a..=b).map(Ipv4Addr::from).filter(|x| !skip(*x)).collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Probed `n` times, first at `since`.
    Probing {
        since: u64,
        n: u32,
    },
    Claimed,
    /// Someone answered or used it: never claimed.
    Held,
}

/// The darknet's state machine: frames in, ARP frames to send and incidents out.
#[derive(Debug)]
pub struct DarknetWatch {
    mac: Mac,
    addrs: Vec<(Ipv4Addr, State)>,
    book: IncidentBook,
    out: VecDeque<Vec<u8>>,
    second: u64,
    replies: u32,
    /// ARP answers not sent over the per-second cap.
    pub replies_capped: u64,
}

impl DarknetWatch {
    pub fn new(mac: Mac, addrs: Vec<Ipv4Addr>, incidents: IncidentConfig) -> Self {
        DarknetWatch {
            mac,
            addrs: addrs
                .into_iter()
                .take(MAX_ADDRESSES)
                .map(|a| (a, State::Probing { since: 0, n: 0 }))
                .collect(),
            book: IncidentBook::new(incidents, AlertClass::Anomaly),
            out: VecDeque::new(),
            second: 0,
            replies: 0,
            replies_capped: 0,
        }
    }

    pub fn state(&self, a: Ipv4Addr) -> Option<State> {
        self.addrs.iter().find(|(x, _)| *x == a).map(|(_, s)| *s)
    }

    fn queue(&mut self, f: Vec<u8>) {
        if self.out.len() < MAX_QUEUED {
            self.out.push_back(f);
        }
    }

    /// The frames to send now.
    pub fn outgoing(&mut self) -> Vec<Vec<u8>> {
        self.out.drain(..).collect()
    }

    pub fn frame(&mut self, frame: &[u8], now_ms: u64) {
        if let Some(a) = parse_arp(frame) {
            if a.sender_mac == self.mac {
                return;
            }
            // Another host uses or claims the address: it is held, whatever we thought.
            if let Some(s) = self
                .addrs
                .iter_mut()
                .find(|(x, _)| *x == a.sender_ip)
                .map(|(_, s)| s)
            {
                if *s == State::Claimed {
                    tracing::warn!(address = %a.sender_ip, "darknet address taken by another host: released");
                }
                *s = State::Held;
                return;
            }
            if !a.reply
                && self.state(a.target_ip) == Some(State::Claimed)
                && !a.sender_ip.is_unspecified()
            {
                if now_ms / 1000 != self.second {
                    self.second = now_ms / 1000;
                    self.replies = 0;
                }
                if self.replies >= MAX_REPLIES_PER_S {
                    self.replies_capped += 1;
                    return;
                }
                self.replies += 1;
                let f = arp_frame(2, self.mac, a.target_ip, a.sender_mac, a.sender_ip);
                self.queue(f);
            }
            return;
        }
        let Ok(p) = SlicedPacket::from_ethernet(frame) else {
            return;
        };
        if frame.get(..6) != Some(&self.mac[..]) {
            return;
        }
        let Some(NetSlice::Ipv4(ip)) = &p.net else {
            return;
        };
        let (src, dst) = (ip.header().source_addr(), ip.header().destination_addr());
        if self.state(dst) != Some(State::Claimed) {
            return;
        }
        let what = match &p.transport {
            Some(TransportSlice::Tcp(t)) if t.syn() && !t.ack() => {
                format!("{dst}:{}/tcp", t.destination_port())
            }
            Some(TransportSlice::Udp(u)) => format!("{dst}:{}/udp", u.destination_port()),
            _ => return,
        };
        let mac: Option<Mac> = frame.get(6..12).and_then(|m| m.try_into().ok());
        if let Some(i) = self.book.hit(
            &format!("darknet {src}"),
            "darknet",
            Some(IpAddr::V4(src)),
            false,
            now_ms,
        ) {
            if let Some(m) = mac {
                i.add_mac(m);
            }
            i.add_detail(&what);
        }
    }

    /// Probes still due, claims after [`PROBE_MS`] unanswered, and closed incidents.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Alert> {
        let mut probes = Vec::new();
        for (a, s) in &mut self.addrs {
            if let State::Probing { since, n } = *s {
                let since = if n == 0 { now_ms } else { since };
                if n >= PROBES && now_ms.saturating_sub(since) >= PROBE_MS {
                    tracing::info!(address = %a, "darknet address unanswered: claimed");
                    *s = State::Claimed;
                } else if n < PROBES
                    && now_ms.saturating_sub(since) >= u64::from(n) * PROBE_MS / u64::from(PROBES)
                {
                    probes.push(arp_frame(1, self.mac, Ipv4Addr::UNSPECIFIED, [0; 6], *a));
                    *s = State::Probing { since, n: n + 1 };
                }
            }
        }
        for f in probes {
            self.queue(f);
        }
        self.book.tick(now_ms)
    }

    pub fn drain(&mut self) -> Vec<Alert> {
        self.book.drain()
    }

    pub fn overflow(&self) -> u64 {
        self.book.overflow
    }

    pub fn claimed(&self) -> Vec<Ipv4Addr> {
        self.addrs
            .iter()
            .filter(|(_, s)| *s == State::Claimed)
            .map(|(a, _)| *a)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = [2, 0, 0, 0, 0, 2];
    const EVIL: Mac = [2, 0, 0, 0, 0, 0x66];

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    /// An Ethernet/IPv4/TCP SYN (or UDP) frame to `dst_mac`.
    fn probe(dst_mac: Mac, src: Ipv4Addr, dst: Ipv4Addr, port: u16, udp: bool) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2(EVIL, dst_mac).ipv4(
            src.octets(),
            dst.octets(),
            64,
        );
        let mut v = Vec::new();
        if udp {
            b.udp(40000, port).write(&mut v, b"x").unwrap();
        } else {
            b.tcp(40000, port, 1, 1024)
                .syn()
                .write(&mut v, &[])
                .unwrap();
        }
        v
    }

    fn run_probes(w: &mut DarknetWatch) -> u64 {
        let mut t = 0;
        while t <= PROBE_MS + 200 {
            w.tick(t);
            t += 100;
        }
        t
    }

    #[test]
    fn ranges_and_auto() {
        let own = ip("10.0.0.2");
        let gw = Some(ip("10.0.0.1"));
        assert_eq!(
            addresses("10.0.0.1-10.0.0.4", own, 24, gw).unwrap(),
            vec![ip("10.0.0.3"), ip("10.0.0.4")]
        );
        let auto = addresses("auto", own, 24, gw).unwrap();
        assert_eq!(auto.len(), 252);
        assert_eq!(auto.last(), Some(&ip("10.0.0.254")));
        assert_eq!(addresses("auto", own, 16, gw).unwrap().len(), MAX_ADDRESSES);
        assert!(addresses("10.0.0.9-10.0.0.1", own, 24, gw).is_err());
        assert!(addresses("10.0.0.0-10.0.9.0", own, 24, gw).is_err());
        assert!(addresses("x", own, 24, gw).is_err());
    }

    #[test]
    fn an_unanswered_address_is_claimed_a_held_one_never() {
        let mut w = DarknetWatch::new(
            MAC,
            vec![ip("10.0.0.50"), ip("10.0.0.51")],
            IncidentConfig::default(),
        );
        w.tick(0);
        let probes = w.outgoing();
        assert_eq!(probes.len(), 2, "one probe per address to begin with");
        let p = parse_arp(&probes[0]).unwrap();
        assert_eq!(p.sender_ip, Ipv4Addr::UNSPECIFIED, "an RFC 5227 probe");
        // .51 answers the probe: it has an owner.
        w.frame(
            &arp_frame(2, EVIL, ip("10.0.0.51"), MAC, Ipv4Addr::UNSPECIFIED),
            500,
        );
        run_probes(&mut w);
        assert_eq!(w.claimed(), vec![ip("10.0.0.50")]);
        assert_eq!(w.state(ip("10.0.0.51")), Some(State::Held));
        w.outgoing();
        // Who has .50? We answer. Who has .51? We do not.
        w.frame(
            &arp_frame(1, EVIL, ip("10.0.0.9"), [0; 6], ip("10.0.0.50")),
            4_000,
        );
        w.frame(
            &arp_frame(1, EVIL, ip("10.0.0.9"), [0; 6], ip("10.0.0.51")),
            4_000,
        );
        let out = w.outgoing();
        assert_eq!(out.len(), 1);
        let r = parse_arp(&out[0]).unwrap();
        assert!(r.reply && r.sender_ip == ip("10.0.0.50") && r.sender_mac == MAC);
        // Someone starts using .50 (a gratuitous ARP): released, never claimed again.
        w.frame(
            &arp_frame(1, EVIL, ip("10.0.0.50"), [0; 6], ip("10.0.0.50")),
            5_000,
        );
        assert!(w.claimed().is_empty());
        for t in 0..100 {
            w.tick(6_000 + t * 100);
        }
        assert!(w.claimed().is_empty());
        w.frame(
            &arp_frame(1, EVIL, ip("10.0.0.9"), [0; 6], ip("10.0.0.50")),
            20_000,
        );
        assert!(w.outgoing().is_empty());
    }

    #[test]
    fn attempts_to_claimed_addresses_are_one_incident_per_source_with_counts() {
        let mut w = DarknetWatch::new(
            MAC,
            vec![ip("10.0.0.50")],
            IncidentConfig {
                quiet_ms: 1_000,
                ..Default::default()
            },
        );
        let t = run_probes(&mut w);
        let src = ip("10.0.0.9");
        for port in [22, 445, 3389] {
            w.frame(&probe(MAC, src, ip("10.0.0.50"), port, false), t);
        }
        w.frame(&probe(MAC, src, ip("10.0.0.50"), 161, true), t);
        // Not ours: another MAC, an unclaimed address.
        w.frame(
            &probe([2, 9, 9, 9, 9, 9], src, ip("10.0.0.50"), 22, false),
            t,
        );
        w.frame(&probe(MAC, src, ip("10.0.0.60"), 22, false), t);
        let a = w.tick(t + 2_000);
        assert_eq!(a.len(), 1, "{a:?}");
        let a = &a[0].alert;
        assert_eq!(a.what, "darknet");
        assert_eq!(a.ip, Some(IpAddr::V4(src)));
        assert_eq!(a.count, 4);
        assert!(a.detail.contains("10.0.0.50:445/tcp"), "{}", a.detail);
        assert!(a.detail.contains("10.0.0.50:161/udp"), "{}", a.detail);
    }

    #[test]
    fn a_flood_is_bounded() {
        let mut w = DarknetWatch::new(
            MAC,
            vec![ip("10.0.0.50")],
            IncidentConfig {
                max_open: 8,
                ..Default::default()
            },
        );
        let t = run_probes(&mut w);
        w.outgoing();
        for i in 0..10_000u32 {
            let src = Ipv4Addr::from(0x0a01_0000 + i);
            w.frame(&probe(MAC, src, ip("10.0.0.50"), 22, false), t);
            w.frame(&arp_frame(1, EVIL, src, [0; 6], ip("10.0.0.50")), t);
        }
        assert_eq!(
            w.overflow(),
            10_000 - 8,
            "new sources past the cap are counted"
        );
        assert_eq!(w.outgoing().len(), MAX_REPLIES_PER_S as usize);
        assert_eq!(w.replies_capped, 10_000 - u64::from(MAX_REPLIES_PER_S));
        assert_eq!(w.drain().len(), 8);
    }
}
