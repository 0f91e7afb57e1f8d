//! ARP watch, sans-IO: Ethernet frames go in with the time, incidents come out.
//!
//! - **`arp_spoof`**: the gateway's IP claimed by a MAC other than the one known for it
//!   (from the kernel's neighbour table at start, the configuration, or the first frame
//!   seen). The gateway is watched first: its incident is never refused for lack of room.
//! - **`arp_mac_changed`**: another known IP claimed by a new MAC. When the incident ends
//!   and the old MAC was not seen during it, the new MAC becomes the known one (a replaced
//!   network card is reported once, not forever).
//! - **`arp_duplicate_ip`**: the old MAC kept answering while a new one claimed its IP
//!   (two hosts on one address), or anyone but this node claiming this node's address.
//! - **`arp_gratuitous_flood`**: more than `gratuitous_max` gratuitous ARPs (sender IP =
//!   target IP) from one MAC within one incident window.
//!
//! ARP probes (sender IP 0.0.0.0) teach nothing and are skipped. Memory is bounded: at
//! most [`MAX_KNOWN`] IPs and [`MAX_GARP_SOURCES`] gratuitous senders are remembered.

use super::incident::{Alert, AlertClass, IncidentBook, IncidentConfig, Mac, mac_str};
use etherparse::{ArpHardwareId, EtherType, NetSlice, SlicedPacket};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

/// IPs whose MAC is remembered.
pub const MAX_KNOWN: usize = 4096;
/// MACs whose gratuitous ARPs are counted at once.
pub const MAX_GARP_SOURCES: usize = 1024;

/// What an [`ArpWatch`] knows before its first frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpConfig {
    pub gateway: Option<Ipv4Addr>,
    /// This node's own address and MAC on the watched interface.
    pub own: Option<(Ipv4Addr, Mac)>,
    pub gratuitous_max: u32,
    pub incidents: IncidentConfig,
}

#[derive(Debug, Clone, Copy)]
struct Known {
    mac: Mac,
    last_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Garp {
    window_start: u64,
    n: u32,
}

/// One ARP packet's facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpFacts {
    pub reply: bool,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_ip: Ipv4Addr,
}

/// Parses an Ethernet frame (VLAN tags allowed) carrying Ethernet/IPv4 ARP.
pub fn parse_arp(frame: &[u8]) -> Option<ArpFacts> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let Some(NetSlice::Arp(a)) = p.net else {
        return None;
    };
    if a.hw_addr_type() != ArpHardwareId::ETHERNET
        || a.proto_addr_type() != EtherType::IPV4
        || a.hw_addr_size() != 6
        || a.proto_addr_size() != 4
    {
        return None;
    }
    let sender_mac: Mac = a.sender_hw_addr().try_into().ok()?;
    let sip: [u8; 4] = a.sender_protocol_addr().try_into().ok()?;
    let tip: [u8; 4] = a.target_protocol_addr().try_into().ok()?;
    Some(ArpFacts {
        reply: a.operation().0 == 2,
        sender_mac,
        sender_ip: Ipv4Addr::from(sip),
        target_ip: Ipv4Addr::from(tip),
    })
}

/// An Ethernet ARP frame: `op` 1 (request, to the broadcast MAC) or 2 (reply, to
/// `tmac`, or broadcast when that is zero, as spoofing tools send them).
pub fn arp_frame(op: u16, smac: Mac, sip: Ipv4Addr, tmac: Mac, tip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(if op == 1 || tmac == [0; 6] {
        &[0xff; 6]
    } else {
        &tmac
    });
    f.extend_from_slice(&smac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&smac);
    f.extend_from_slice(&sip.octets());
    f.extend_from_slice(&tmac);
    f.extend_from_slice(&tip.octets());
    f
}

/// "Who has `target`? Tell `ip`": what any host sends for an unknown neighbour.
pub fn request_frame(mac: Mac, ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    arp_frame(1, mac, ip, [0; 6], target)
}

/// The ARP state machine of one interface.
#[derive(Debug)]
pub struct ArpWatch {
    cfg: ArpConfig,
    known: HashMap<Ipv4Addr, Known>,
    garp: HashMap<Mac, Garp>,
    book: IncidentBook,
}

impl ArpWatch {
    pub fn new(cfg: ArpConfig) -> Self {
        let book = IncidentBook::new(cfg.incidents, AlertClass::Anomaly);
        let mut w = ArpWatch {
            cfg,
            known: HashMap::new(),
            garp: HashMap::new(),
            book,
        };
        if let Some((ip, mac)) = w.cfg.own {
            w.known.insert(ip, Known { mac, last_ms: 0 });
        }
        w
    }

    /// Seeds what the kernel already knew (its neighbour table) or the configuration said.
    pub fn learn(&mut self, ip: Ipv4Addr, mac: Mac, now_ms: u64) {
        if self.known.len() < MAX_KNOWN || self.known.contains_key(&ip) {
            self.known.insert(
                ip,
                Known {
                    mac,
                    last_ms: now_ms,
                },
            );
        }
    }

    /// The MAC known for `ip`.
    pub fn known_mac(&self, ip: Ipv4Addr) -> Option<Mac> {
        self.known.get(&ip).map(|k| k.mac)
    }

    /// Packets refused because too many incidents were open.
    pub fn overflow(&self) -> u64 {
        self.book.overflow
    }

    /// Feeds one received Ethernet frame; anything but ARP is ignored.
    pub fn frame(&mut self, frame: &[u8], now_ms: u64) {
        if let Some(a) = parse_arp(frame) {
            self.arp(a, now_ms);
        }
    }

    pub fn arp(&mut self, a: ArpFacts, now_ms: u64) {
        let sip = a.sender_ip;
        if sip.is_unspecified() || a.sender_mac == [0; 6] || a.sender_mac[0] & 1 == 1 {
            return;
        }
        if sip == a.target_ip {
            self.gratuitous(a, now_ms);
        }
        if let Some((own_ip, own_mac)) = self.cfg.own
            && sip == own_ip
        {
            if a.sender_mac != own_mac
                && let Some(i) = self.book.hit(
                    &format!("dup {sip}"),
                    "arp_duplicate_ip",
                    Some(IpAddr::V4(sip)),
                    true,
                    now_ms,
                )
            {
                i.add_mac(a.sender_mac);
                i.expected = Some(format!("{} (this node)", mac_str(&own_mac)));
                i.add_detail("another host claims this node's address");
            }
            return;
        }
        let gateway = self.cfg.gateway == Some(sip);
        match self.known.get_mut(&sip) {
            None => {
                if self.known.len() >= MAX_KNOWN {
                    self.forget_oldest();
                }
                self.known.insert(
                    sip,
                    Known {
                        mac: a.sender_mac,
                        last_ms: now_ms,
                    },
                );
            }
            Some(k) if k.mac == a.sender_mac => {
                k.last_ms = now_ms;
                // The old MAC answering during a change: two hosts on one address.
                if let Some(i) = self.book.get_mut(&format!("ip {sip}")) {
                    i.flag = true;
                }
            }
            Some(k) => {
                let expected = k.mac;
                let what = if gateway {
                    "arp_spoof"
                } else {
                    "arp_mac_changed"
                };
                if let Some(i) = self.book.hit(
                    &format!("ip {sip}"),
                    what,
                    Some(IpAddr::V4(sip)),
                    gateway,
                    now_ms,
                ) {
                    i.add_mac(a.sender_mac);
                    if i.expected.is_none() {
                        i.expected = Some(mac_str(&expected));
                    }
                    if gateway {
                        i.add_detail("the gateway's address claimed by another MAC");
                    }
                    i.add_detail(if a.reply { "ARP reply" } else { "ARP request" });
                }
            }
        }
    }

    /// Forgets the longest-silent eighth of the known IPs at once (so that a flood of
    /// new addresses costs one sort per 512 of them, not a scan each); the gateway and
    /// this node are never forgotten.
    fn forget_oldest(&mut self) {
        let (gw, own) = (self.cfg.gateway, self.cfg.own.map(|o| o.0));
        let mut by_age: Vec<(u64, Ipv4Addr)> = self
            .known
            .iter()
            .filter(|(ip, _)| Some(**ip) != gw && Some(**ip) != own)
            .map(|(ip, k)| (k.last_ms, *ip))
            .collect();
        by_age.sort_unstable();
        for (_, ip) in by_age.into_iter().take(MAX_KNOWN / 8) {
            self.known.remove(&ip);
        }
    }

    fn gratuitous(&mut self, a: ArpFacts, now_ms: u64) {
        let window = self.cfg.incidents.quiet_ms;
        if !self.garp.contains_key(&a.sender_mac) && self.garp.len() >= MAX_GARP_SOURCES {
            self.garp
                .retain(|_, g| now_ms.saturating_sub(g.window_start) < window);
            if self.garp.len() >= MAX_GARP_SOURCES {
                return;
            }
        }
        let g = self.garp.entry(a.sender_mac).or_insert(Garp {
            window_start: now_ms,
            n: 0,
        });
        if now_ms.saturating_sub(g.window_start) >= window {
            *g = Garp {
                window_start: now_ms,
                n: 0,
            };
        }
        g.n = g.n.saturating_add(1);
        let subject = format!("garp {}", mac_str(&a.sender_mac));
        // Once flooding, every further one joins the incident (which keeps it open).
        let flooding = self.book.get_mut(&subject).is_some();
        if g.n > self.cfg.gratuitous_max || flooding {
            let first = !flooding;
            let n = g.n;
            if let Some(i) = self.book.hit(
                &subject,
                "arp_gratuitous_flood",
                Some(IpAddr::V4(a.sender_ip)),
                false,
                now_ms,
            ) {
                if first {
                    // The ones that crossed the threshold count too.
                    i.count = n;
                }
                i.add_mac(a.sender_mac);
                i.add_detail(&format!("claims {}", a.sender_ip));
            }
        }
    }

    /// Incidents that ended by `now_ms`, as alerts; adopts a changed MAC whose old one
    /// stayed silent.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Alert> {
        let closed = self.book.close_due(now_ms);
        self.finish(closed)
    }

    /// Every open incident, as alerts (the service is stopping).
    pub fn drain(&mut self) -> Vec<Alert> {
        let closed = self.book.close_all();
        self.finish(closed)
    }

    fn finish(&mut self, closed: Vec<(String, super::incident::Incident)>) -> Vec<Alert> {
        let mut out = Vec::with_capacity(closed.len());
        for (subject, mut i) in closed {
            if subject.starts_with("ip ") {
                if i.flag {
                    if i.what == "arp_mac_changed" {
                        i.what = "arp_duplicate_ip".into();
                    }
                    i.add_detail("the known MAC kept answering too");
                } else if let (Some(IpAddr::V4(ip)), Some(new)) = (i.ip, i.macs.last())
                    && self.cfg.gateway != Some(ip)
                {
                    // Only the new MAC spoke: it is the one from now on. Never for the
                    // gateway: a spoofer that answers our refreshes in its place would
                    // silence every later report.
                    if let Some(k) = self.known.get_mut(&ip) {
                        k.mac = *new;
                    }
                    i.add_detail("only the new MAC answered; it is now the known one");
                }
            }
            out.push(self.book.alert(&i));
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const GW: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    pub(crate) const GW_MAC: Mac = [0x52, 0x54, 0, 0, 0, 1];
    const OWN: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    const OWN_MAC: Mac = [0x52, 0x54, 0, 0, 0, 2];
    pub(crate) const EVIL: Mac = [0x02, 0xba, 0xd0, 0, 0, 0x66];

    fn watch() -> ArpWatch {
        let mut w = ArpWatch::new(ArpConfig {
            gateway: Some(GW),
            own: Some((OWN, OWN_MAC)),
            gratuitous_max: 5,
            incidents: IncidentConfig {
                quiet_ms: 1_000,
                max_ms: 60_000,
                max_open: 8,
            },
        });
        w.learn(GW, GW_MAC, 0);
        w
    }

    #[test]
    fn a_flood_of_gateway_spoofs_is_one_incident_with_a_count() {
        let mut w = watch();
        // The real gateway answers first: nothing to report.
        w.frame(&arp_frame(2, GW_MAC, GW, OWN_MAC, OWN), 1);
        assert!(w.tick(5_000).is_empty());
        for t in 0..300 {
            w.frame(&arp_frame(2, EVIL, GW, OWN_MAC, OWN), 10_000 + t);
        }
        assert!(w.tick(10_500).is_empty(), "still going");
        let a = w.tick(11_300);
        assert_eq!(a.len(), 1, "{a:?}");
        let a = &a[0].alert;
        assert_eq!(a.what, "arp_spoof");
        assert_eq!(a.count, 300);
        assert_eq!(a.ip, Some(IpAddr::V4(GW)));
        assert_eq!(a.macs, vec![mac_str(&EVIL)]);
        assert_eq!(a.expected.as_deref(), Some(mac_str(&GW_MAC).as_str()));
        // The gateway's known MAC is never replaced by what claimed it: the same spoofer
        // later is a new incident.
        assert_eq!(w.known_mac(GW), Some(GW_MAC));
        w.frame(&arp_frame(2, EVIL, GW, OWN_MAC, OWN), 20_000);
        assert_eq!(w.tick(22_000).len(), 1);
    }

    #[test]
    fn a_spoof_while_the_gateway_answers_keeps_the_real_mac() {
        let mut w = watch();
        for t in 0..10 {
            w.frame(&arp_frame(2, EVIL, GW, OWN_MAC, OWN), t * 10);
            w.frame(&arp_frame(2, GW_MAC, GW, OWN_MAC, OWN), t * 10 + 5);
        }
        let a = w.drain();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].alert.what, "arp_spoof");
        assert_eq!(a[0].alert.count, 10);
        assert!(
            a[0].alert.detail.contains("kept answering"),
            "{}",
            a[0].alert.detail
        );
        assert_eq!(w.known_mac(GW), Some(GW_MAC));
    }

    #[test]
    fn duplicate_ip_and_changed_mac_and_own_address() {
        let mut w = watch();
        let host = Ipv4Addr::new(10, 0, 0, 9);
        let (a_mac, b_mac) = ([0x52, 0, 0, 0, 0, 9], [0x52, 0, 0, 0, 0, 10]);
        w.frame(&arp_frame(1, a_mac, host, [0; 6], GW), 0);
        w.frame(&arp_frame(1, b_mac, host, [0; 6], GW), 1);
        w.frame(&arp_frame(1, a_mac, host, [0; 6], GW), 2);
        w.frame(&arp_frame(1, b_mac, host, [0; 6], GW), 3);
        let a = w.tick(2_000);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].alert.what, "arp_duplicate_ip");
        // A replaced card: reported once as a change, then the new MAC is normal.
        let other = Ipv4Addr::new(10, 0, 0, 10);
        w.frame(&arp_frame(1, a_mac, other, [0; 6], GW), 3_000);
        w.frame(&arp_frame(1, b_mac, other, [0; 6], GW), 3_001);
        let a = w.tick(5_000);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].alert.what, "arp_mac_changed");
        w.frame(&arp_frame(1, b_mac, other, [0; 6], GW), 6_000);
        assert!(w.tick(9_000).is_empty());
        // Somebody claiming this node's own address.
        w.frame(&arp_frame(2, EVIL, OWN, [0; 6], GW), 10_000);
        let a = w.tick(12_000);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].alert.what, "arp_duplicate_ip");
        assert_eq!(a[0].alert.ip, Some(IpAddr::V4(OWN)));
        // Probes (sender 0.0.0.0) teach nothing.
        w.frame(
            &arp_frame(1, EVIL, Ipv4Addr::UNSPECIFIED, [0; 6], GW),
            13_000,
        );
        assert!(w.drain().is_empty());
    }

    #[test]
    fn gratuitous_flood_is_one_incident() {
        let mut w = watch();
        let ip = Ipv4Addr::new(10, 0, 0, 50);
        let mac = [0x52, 0, 0, 0, 0, 50];
        for t in 0..4 {
            w.frame(&arp_frame(1, mac, ip, [0; 6], ip), t);
        }
        assert!(w.tick(5_000).is_empty(), "a few announcements are normal");
        for t in 0..200 {
            w.frame(&arp_frame(2, mac, ip, [0xff; 6], ip), 10_000 + t);
        }
        let a = w.tick(12_000);
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].alert.what, "arp_gratuitous_flood");
        assert_eq!(a[0].alert.count, 200);
    }

    #[test]
    fn many_sources_stay_bounded_and_garbage_is_ignored() {
        let mut w = watch();
        for n in 0..20_000u32 {
            let b = n.to_be_bytes();
            let ip = Ipv4Addr::new(10, b[1], b[2], b[3]);
            let mac = [0x52, 1, b[0], b[1], b[2], b[3]];
            w.frame(&arp_frame(1, mac, ip, [0; 6], ip), u64::from(n));
            w.frame(
                &arp_frame(1, [0x52, 2, b[0], b[1], b[2], b[3]], ip, [0; 6], GW),
                u64::from(n),
            );
        }
        assert!(w.known.len() <= MAX_KNOWN);
        assert!(w.garp.len() <= MAX_GARP_SOURCES);
        assert!(w.book.overflow > 0);
        let _ = w.drain();
        let f = arp_frame(2, EVIL, GW, OWN_MAC, OWN);
        for len in 0..f.len() {
            w.frame(&f[..len], 1);
        }
        let mut g = f.clone();
        for i in 0..g.len() {
            for b in [0u8, 1, 0x80, 0xff] {
                let saved = g[i];
                g[i] = b;
                w.frame(&g, 2);
                g[i] = saved;
            }
        }
    }
}
