//! Rogue DHCP watch, sans-IO: DHCP offers and acknowledgements from a server that is not
//! allowed become one `rogue_dhcp` incident per server, with what it handed out (address,
//! router, DNS servers: what a rogue server wants its victims to use).
//!
//! The node may also ask (a DHCPDISCOVER with its own MAC and the broadcast flag, never
//! followed by a REQUEST, so no lease is taken) so that every server on the segment
//! answers; [`discover_frame`] builds it.

use super::incident::{Alert, AlertClass, IncidentBook, IncidentConfig, Mac, mac_str};
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use std::net::{IpAddr, Ipv4Addr};

const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Fixed BOOTP part before the cookie.
const BOOTP_LEN: usize = 236;

/// DHCP message types that carry a server's offer.
pub const DHCPOFFER: u8 = 2;
pub const DHCPACK: u8 = 5;

/// What a DHCP reply offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpReply {
    pub msg_type: u8,
    pub xid: u32,
    pub yiaddr: Ipv4Addr,
    /// Option 54; the IP source when absent.
    pub server_id: Option<Ipv4Addr>,
    pub router: Option<Ipv4Addr>,
    /// At most 4 kept.
    pub dns: Vec<Ipv4Addr>,
}

/// Parses a BOOTP reply (op 2) with DHCP options; `None` for anything else. Bounded:
/// the options walk stops at the payload's end, never reads past it, never allocates
/// more than four DNS addresses.
pub fn parse_reply(p: &[u8]) -> Option<DhcpReply> {
    if p.len() < BOOTP_LEN + 4 || p[0] != 2 || p[236..240] != MAGIC_COOKIE {
        return None;
    }
    let ip = |at: usize| -> Option<Ipv4Addr> {
        let b: [u8; 4] = p.get(at..at + 4)?.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    };
    let xid = u32::from_be_bytes(p[4..8].try_into().ok()?);
    let yiaddr = ip(16)?;
    let mut r = DhcpReply {
        msg_type: 0,
        xid,
        yiaddr,
        server_id: None,
        router: None,
        dns: Vec::new(),
    };
    let mut i = BOOTP_LEN + 4;
    while i < p.len() {
        let code = p[i];
        if code == 0 {
            i += 1;
            continue;
        }
        if code == 255 {
            break;
        }
        let len = usize::from(*p.get(i + 1)?);
        let v = p.get(i + 2..i + 2 + len)?;
        match code {
            53 if len == 1 => r.msg_type = v[0],
            54 if len == 4 => r.server_id = Some(Ipv4Addr::new(v[0], v[1], v[2], v[3])),
            3 if len >= 4 => r.router = Some(Ipv4Addr::new(v[0], v[1], v[2], v[3])),
            6 => {
                for c in v.chunks_exact(4).take(4) {
                    r.dns.push(Ipv4Addr::new(c[0], c[1], c[2], c[3]));
                }
            }
            _ => {}
        }
        i += 2 + len;
    }
    (r.msg_type != 0).then_some(r)
}

/// A reply found in an Ethernet frame: the reply, the sender's IP and MAC.
pub fn parse_frame(frame: &[u8]) -> Option<(DhcpReply, Ipv4Addr, Mac)> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let src_mac: Mac = frame.get(6..12)?.try_into().ok()?;
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        return None;
    };
    let Some(TransportSlice::Udp(u)) = &p.transport else {
        return None;
    };
    if u.source_port() != 67 || u.destination_port() != 68 {
        return None;
    }
    let r = parse_reply(u.payload())?;
    Some((r, ip.header().source_addr(), src_mac))
}

/// A DHCPDISCOVER from `mac` with transaction `xid`, broadcast flag set, as an Ethernet
/// frame: the probe that makes every server on the segment offer.
pub fn discover_frame(mac: Mac, xid: u32) -> Vec<u8> {
    let mut d = vec![0u8; BOOTP_LEN];
    d[0] = 1; // BOOTREQUEST
    d[1] = 1; // Ethernet
    d[2] = 6;
    d[4..8].copy_from_slice(&xid.to_be_bytes());
    d[10] = 0x80; // broadcast: answer to everyone, we hold no address from this offer
    d[28..34].copy_from_slice(&mac);
    d.extend_from_slice(&MAGIC_COOKIE);
    d.extend_from_slice(&[53, 1, 1]); // DHCPDISCOVER
    d.extend_from_slice(&[55, 3, 1, 3, 6]); // subnet mask, router, DNS
    d.push(255);
    let builder = PacketBuilder::ethernet2(mac, [0xff; 6])
        .ipv4([0, 0, 0, 0], [255, 255, 255, 255], 64)
        .udp(68, 67);
    let mut out = Vec::with_capacity(builder.size(d.len()));
    // Writing into a Vec cannot fail; the payload is far below any UDP limit.
    let _ = builder.write(&mut out, &d);
    out
}

/// The rogue DHCP state machine.
#[derive(Debug)]
pub struct DhcpWatch {
    allowed: Vec<Ipv4Addr>,
    /// The first server seen, trusted when nothing is configured.
    learned: Option<Ipv4Addr>,
    book: IncidentBook,
}

impl DhcpWatch {
    pub fn new(allowed: Vec<Ipv4Addr>, incidents: IncidentConfig) -> Self {
        DhcpWatch {
            allowed,
            learned: None,
            book: IncidentBook::new(incidents, AlertClass::Anomaly),
        }
    }

    pub fn learned(&self) -> Option<Ipv4Addr> {
        self.learned
    }

    pub fn overflow(&self) -> u64 {
        self.book.overflow
    }

    pub fn frame(&mut self, frame: &[u8], now_ms: u64) {
        if let Some((r, src, mac)) = parse_frame(frame) {
            self.reply(&r, src, mac, now_ms);
        }
    }

    pub fn reply(&mut self, r: &DhcpReply, src: Ipv4Addr, mac: Mac, now_ms: u64) {
        if r.msg_type != DHCPOFFER && r.msg_type != DHCPACK {
            return;
        }
        let server = r.server_id.unwrap_or(src);
        if self.allowed.is_empty() {
            match self.learned {
                None => {
                    tracing::info!(%server, "DHCP server learned (first seen); others are rogue");
                    self.learned = Some(server);
                    return;
                }
                Some(l) if l == server => return,
                Some(_) => {}
            }
        } else if self.allowed.contains(&server) || self.allowed.contains(&src) {
            return;
        }
        let expected = if self.allowed.is_empty() {
            self.learned.map(|l| format!("{l} (first seen)"))
        } else {
            let a: Vec<String> = self.allowed.iter().map(Ipv4Addr::to_string).collect();
            Some(a.join(","))
        };
        let Some(i) = self.book.hit(
            &format!("dhcp {server}"),
            "rogue_dhcp",
            Some(IpAddr::V4(server)),
            false,
            now_ms,
        ) else {
            return;
        };
        i.add_mac(mac);
        i.expected = expected;
        let mut d = format!(
            "{} of {}",
            if r.msg_type == DHCPOFFER {
                "offer"
            } else {
                "ack"
            },
            r.yiaddr
        );
        if let Some(g) = r.router {
            d.push_str(&format!(", router {g}"));
        }
        if !r.dns.is_empty() {
            let dns: Vec<String> = r.dns.iter().map(Ipv4Addr::to_string).collect();
            d.push_str(&format!(", dns {}", dns.join(",")));
        }
        if src != server {
            d.push_str(&format!(", sent by {src} ({})", mac_str(&mac)));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A server's reply frame, as dnsmasq sends one.
    fn offer_frame(server: Ipv4Addr, smac: Mac, msg: u8, yiaddr: Ipv4Addr) -> Vec<u8> {
        let mut d = vec![0u8; BOOTP_LEN];
        d[0] = 2;
        d[1] = 1;
        d[2] = 6;
        d[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        d[16..20].copy_from_slice(&yiaddr.octets());
        d.extend_from_slice(&MAGIC_COOKIE);
        d.extend_from_slice(&[53, 1, msg]);
        d.extend_from_slice(&[54, 4]);
        d.extend_from_slice(&server.octets());
        d.extend_from_slice(&[3, 4, 10, 0, 0, 66, 6, 8, 10, 0, 0, 66, 8, 8, 8, 8, 0, 255]);
        let b = PacketBuilder::ethernet2(smac, [0xff; 6])
            .ipv4(server.octets(), [255; 4], 64)
            .udp(67, 68);
        let mut out = Vec::new();
        b.write(&mut out, &d).unwrap();
        out
    }

    #[test]
    fn discover_is_a_valid_dhcp_discover() {
        let f = discover_frame([2, 0, 0, 0, 0, 7], 42);
        let p = SlicedPacket::from_ethernet(&f).unwrap();
        let Some(TransportSlice::Udp(u)) = p.transport else {
            panic!("udp")
        };
        assert_eq!((u.source_port(), u.destination_port()), (68, 67));
        let d = u.payload();
        assert_eq!(d[0], 1);
        assert_eq!(&d[4..8], &42u32.to_be_bytes());
        assert_eq!(&d[28..34], &[2, 0, 0, 0, 0, 7]);
        assert_eq!(&d[236..243], &[99, 130, 83, 99, 53, 1, 1]);
        // Our own request is not a reply.
        assert!(parse_frame(&f).is_none());
    }

    #[test]
    fn offers_from_an_unlisted_server_are_one_incident() {
        let good = Ipv4Addr::new(10, 0, 0, 1);
        let rogue = Ipv4Addr::new(10, 0, 0, 66);
        let mut w = DhcpWatch::new(
            vec![good],
            IncidentConfig {
                quiet_ms: 1_000,
                ..Default::default()
            },
        );
        w.frame(
            &offer_frame(
                good,
                [2, 0, 0, 0, 0, 1],
                DHCPOFFER,
                Ipv4Addr::new(10, 0, 0, 100),
            ),
            0,
        );
        for t in 0..5 {
            w.frame(
                &offer_frame(
                    rogue,
                    [2, 0, 0, 0, 0, 0x66],
                    DHCPOFFER,
                    Ipv4Addr::new(10, 0, 0, 200),
                ),
                t,
            );
        }
        w.frame(
            &offer_frame(
                rogue,
                [2, 0, 0, 0, 0, 0x66],
                DHCPACK,
                Ipv4Addr::new(10, 0, 0, 200),
            ),
            6,
        );
        let a = w.tick(5_000);
        assert_eq!(a.len(), 1);
        let a = &a[0].alert;
        assert_eq!(a.what, "rogue_dhcp");
        assert_eq!(a.ip, Some(IpAddr::V4(rogue)));
        assert_eq!(a.count, 6);
        assert_eq!(a.macs, vec!["02:00:00:00:00:66".to_owned()]);
        assert!(
            a.detail
                .contains("offer of 10.0.0.200, router 10.0.0.66, dns 10.0.0.66,8.8.8.8"),
            "{}",
            a.detail
        );
        assert_eq!(a.expected.as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn first_server_is_learned_when_none_is_listed() {
        let mut w = DhcpWatch::new(Vec::new(), IncidentConfig::default());
        let a = Ipv4Addr::new(192, 168, 1, 1);
        let b = Ipv4Addr::new(192, 168, 1, 99);
        w.frame(&offer_frame(a, [2; 6], DHCPOFFER, a), 0);
        w.frame(&offer_frame(a, [2; 6], DHCPACK, a), 1);
        assert_eq!(w.learned(), Some(a));
        w.frame(&offer_frame(b, [3; 6], DHCPOFFER, a), 2);
        let r = w.drain();
        assert_eq!(r.len(), 1);
        assert_eq!(
            r[0].alert.expected.as_deref(),
            Some("192.168.1.1 (first seen)")
        );
    }

    #[test]
    fn hostile_replies_never_panic() {
        let f = offer_frame(
            Ipv4Addr::new(10, 0, 0, 66),
            [2; 6],
            DHCPOFFER,
            Ipv4Addr::new(1, 2, 3, 4),
        );
        for len in 0..f.len() {
            let _ = parse_frame(&f[..len]);
        }
        let mut g = f.clone();
        for i in 0..g.len() {
            for b in [0u8, 1, 3, 6, 53, 54, 0xff] {
                let s = g[i];
                g[i] = b;
                let _ = parse_frame(&g);
                g[i] = s;
            }
        }
        // An option whose length runs past the end.
        let mut p = vec![0u8; BOOTP_LEN];
        p[0] = 2;
        p.extend_from_slice(&MAGIC_COOKIE);
        p.extend_from_slice(&[53, 1, 2, 6, 200, 1, 2]);
        assert_eq!(parse_reply(&p), None);
        let mut many = p[..240].to_vec();
        many.extend_from_slice(&[53, 1, 2, 6, 252]);
        many.extend(std::iter::repeat_n(8u8, 252));
        assert_eq!(parse_reply(&many).unwrap().dns.len(), 4);
    }
}
