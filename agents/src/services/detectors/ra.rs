//! Rogue router advertisement watch, sans-IO: an ICMPv6 router advertisement (type 134)
//! from a router that is not allowed becomes one `rogue_router_advertisement` incident
//! per router, with the prefixes and DNS servers it announced (what an attacker's
//! IPv6 takeover, mitm6-style, hands to every host on the segment).
//!
//! Extension headers (the usual way around switch RA-guard) are walked by etherparse.

use super::incident::{Alert, AlertClass, IncidentBook, IncidentConfig, Mac};
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use std::net::{IpAddr, Ipv6Addr};

const ROUTER_ADVERTISEMENT: u8 = 134;

/// What one router advertisement says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaFacts {
    pub src: Ipv6Addr,
    pub eth_src: Mac,
    /// From the source link-layer address option, if present.
    pub lladdr: Option<Mac>,
    pub lifetime_s: u16,
    /// Announced prefixes (`2001:db8::/64`), at most 4.
    pub prefixes: Vec<String>,
    /// RDNSS servers, at most 4.
    pub dns: Vec<Ipv6Addr>,
}

/// Parses an Ethernet frame carrying a router advertisement.
pub fn parse_frame(frame: &[u8]) -> Option<RaFacts> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let eth_src: Mac = frame.get(6..12)?.try_into().ok()?;
    let Some(NetSlice::Ipv6(ip)) = &p.net else {
        return None;
    };
    let Some(TransportSlice::Icmpv6(icmp)) = &p.transport else {
        return None;
    };
    let m = icmp.slice();
    if icmp.type_u8() != ROUTER_ADVERTISEMENT || icmp.code_u8() != 0 || m.len() < 16 {
        return None;
    }
    let mut r = RaFacts {
        src: ip.header().source_addr(),
        eth_src,
        lladdr: None,
        lifetime_s: u16::from_be_bytes([m[6], m[7]]),
        prefixes: Vec::new(),
        dns: Vec::new(),
    };
    // Options: type, length in units of 8 bytes (0 is invalid and ends the walk).
    let mut i = 16;
    while i + 2 <= m.len() {
        let (t, units) = (m[i], usize::from(m[i + 1]));
        if units == 0 {
            break;
        }
        let Some(o) = m.get(i..i + units * 8) else {
            break;
        };
        match t {
            1 if o.len() >= 8 => r.lladdr = o[2..8].try_into().ok(),
            3 if o.len() >= 32 && r.prefixes.len() < 4 => {
                let b: [u8; 16] = o[16..32].try_into().ok()?;
                r.prefixes.push(format!("{}/{}", Ipv6Addr::from(b), o[2]));
            }
            25 if o.len() >= 24 => {
                for c in o[8..].chunks_exact(16) {
                    if r.dns.len() >= 4 {
                        break;
                    }
                    let b: [u8; 16] = c.try_into().ok()?;
                    r.dns.push(Ipv6Addr::from(b));
                }
            }
            _ => {}
        }
        i += units * 8;
    }
    Some(r)
}

/// The rogue RA state machine.
#[derive(Debug)]
pub struct RaWatch {
    allowed: Vec<Ipv6Addr>,
    learned: Option<Ipv6Addr>,
    own: Option<Mac>,
    book: IncidentBook,
}

impl RaWatch {
    /// `own`: this node's MAC (its own advertisements, should it route, are not rogue).
    pub fn new(allowed: Vec<Ipv6Addr>, own: Option<Mac>, incidents: IncidentConfig) -> Self {
        RaWatch {
            allowed,
            learned: None,
            own,
            book: IncidentBook::new(incidents, AlertClass::Anomaly),
        }
    }

    pub fn overflow(&self) -> u64 {
        self.book.overflow
    }

    pub fn frame(&mut self, frame: &[u8], now_ms: u64) {
        if let Some(r) = parse_frame(frame) {
            self.advert(&r, now_ms);
        }
    }

    pub fn advert(&mut self, r: &RaFacts, now_ms: u64) {
        if Some(r.eth_src) == self.own {
            return;
        }
        if self.allowed.is_empty() {
            match self.learned {
                None => {
                    tracing::info!(router = %r.src, "IPv6 router learned (first seen); others are rogue");
                    self.learned = Some(r.src);
                    return;
                }
                Some(l) if l == r.src => return,
                Some(_) => {}
            }
        } else if self.allowed.contains(&r.src) {
            return;
        }
        let expected = if self.allowed.is_empty() {
            self.learned.map(|l| format!("{l} (first seen)"))
        } else {
            let a: Vec<String> = self.allowed.iter().map(Ipv6Addr::to_string).collect();
            Some(a.join(","))
        };
        let Some(i) = self.book.hit(
            &format!("ra {}", r.src),
            "rogue_router_advertisement",
            Some(IpAddr::V6(r.src)),
            false,
            now_ms,
        ) else {
            return;
        };
        i.add_mac(r.eth_src);
        if let Some(l) = r.lladdr {
            i.add_mac(l);
        }
        i.expected = expected;
        let mut d = format!("router lifetime {} s", r.lifetime_s);
        if !r.prefixes.is_empty() {
            d.push_str(&format!(", prefixes {}", r.prefixes.join(",")));
        }
        if !r.dns.is_empty() {
            let dns: Vec<String> = r.dns.iter().map(Ipv6Addr::to_string).collect();
            d.push_str(&format!(", dns {}", dns.join(",")));
        }
        i.add_detail(&d);
    }

    pub fn tick(&mut self, now_ms: u64) -> Vec<Alert> {
        self.book.tick(now_ms)
    }

    pub fn drain(&mut self) -> Vec<Alert> {
        self.book.drain()
    }
}

/// A router advertisement frame from `mac`/`src` announcing `prefix`/64 and one RDNSS
/// server: what the tests (and a rogue router) send.
pub fn advert_frame(mac: Mac, src: Ipv6Addr, prefix: Ipv6Addr, dns: Ipv6Addr) -> Vec<u8> {
    let mut m = vec![
        ROUTER_ADVERTISEMENT,
        0,
        0,
        0,
        64,
        0,
        0x07,
        0x08,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ];
    m.extend_from_slice(&[1, 1]);
    m.extend_from_slice(&mac);
    let mut pi = vec![
        3, 4, 64, 0xc0, 0, 0, 0x0e, 0x10, 0, 0, 0x07, 0x08, 0, 0, 0, 0,
    ];
    pi.extend_from_slice(&prefix.octets());
    m.extend_from_slice(&pi);
    m.extend_from_slice(&[25, 3, 0, 0, 0, 0, 0x0e, 0x10]);
    m.extend_from_slice(&dns.octets());
    icmpv6_frame(
        mac,
        [0x33, 0x33, 0, 0, 0, 1],
        src,
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
        m,
    )
}

/// A Router Solicitation from the unspecified address (RFC 4861 §6.3.7: no source
/// link-layer option then) to all routers: every router on the segment answers with an
/// advertisement, so a rogue one shows at start instead of at its next periodic one.
pub fn solicitation_frame(mac: Mac) -> Vec<u8> {
    let m = vec![133, 0, 0, 0, 0, 0, 0, 0];
    icmpv6_frame(
        mac,
        [0x33, 0x33, 0, 0, 0, 2],
        Ipv6Addr::UNSPECIFIED,
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2),
        m,
    )
}

/// An Ethernet/IPv6 frame (hop limit 255, as neighbour discovery requires) carrying the
/// ICMPv6 message `m`, its checksum filled in.
fn icmpv6_frame(mac: Mac, eth_dst: Mac, src: Ipv6Addr, dst: Ipv6Addr, mut m: Vec<u8>) -> Vec<u8> {
    // The ICMPv6 checksum covers a pseudo-header.
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(m.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(&m);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let ck = !(sum as u16);
    m[2..4].copy_from_slice(&ck.to_be_bytes());
    let mut f = eth_dst.to_vec();
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
    f.extend_from_slice(&(m.len() as u16).to_be_bytes());
    f.extend_from_slice(&[58, 255]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&m);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ll(last: u16) -> Ipv6Addr {
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, last)
    }

    #[test]
    fn rogue_router_is_one_incident_with_what_it_announced() {
        let good = ll(1);
        let mut w = RaWatch::new(
            vec![good],
            None,
            IncidentConfig {
                quiet_ms: 1_000,
                ..Default::default()
            },
        );
        let prefix: Ipv6Addr = "2001:db8:bad::".parse().unwrap();
        let dns: Ipv6Addr = "2001:db8:bad::53".parse().unwrap();
        w.frame(&advert_frame([2, 0, 0, 0, 0, 1], good, prefix, dns), 0);
        for t in 0..3 {
            w.frame(
                &advert_frame([2, 0, 0, 0, 0, 0x66], ll(0x66), prefix, dns),
                t,
            );
        }
        let a = w.tick(3_000);
        assert_eq!(a.len(), 1);
        let a = &a[0].alert;
        assert_eq!(a.what, "rogue_router_advertisement");
        assert_eq!(a.count, 3);
        assert_eq!(a.ip, Some(IpAddr::V6(ll(0x66))));
        assert_eq!(a.macs, vec!["02:00:00:00:00:66".to_owned()]);
        assert!(
            a.detail
                .contains("lifetime 1800 s, prefixes 2001:db8:bad::/64, dns 2001:db8:bad::53"),
            "{}",
            a.detail
        );
        let r = parse_frame(&advert_frame([2; 6], ll(1), prefix, dns)).unwrap();
        assert_eq!(r.lladdr, Some([2; 6]));
    }

    #[test]
    fn frames_carry_valid_checksums() {
        let check = |f: &[u8], ty: u8| {
            let p = SlicedPacket::from_ethernet(f).unwrap();
            let Some(NetSlice::Ipv6(ip)) = &p.net else {
                panic!("ipv6")
            };
            let Some(TransportSlice::Icmpv6(i)) = &p.transport else {
                panic!("icmpv6")
            };
            assert_eq!(i.type_u8(), ty);
            assert_eq!(ip.header().hop_limit(), 255);
            assert!(i.is_checksum_valid(ip.header().source(), ip.header().destination()));
        };
        check(&solicitation_frame([2; 6]), 133);
        check(
            &advert_frame([2; 6], ll(1), ll(0), ll(2)),
            ROUTER_ADVERTISEMENT,
        );
        assert!(parse_frame(&solicitation_frame([2; 6])).is_none());
    }

    #[test]
    fn hostile_adverts_never_panic() {
        let f = advert_frame([2; 6], ll(9), ll(0), ll(1));
        for len in 0..f.len() {
            let _ = parse_frame(&f[..len]);
        }
        let mut g = f.clone();
        for i in 0..g.len() {
            for b in [0u8, 1, 3, 25, 0x86, 134, 0xff] {
                let s = g[i];
                g[i] = b;
                let _ = parse_frame(&g);
                g[i] = s;
            }
        }
    }
}
