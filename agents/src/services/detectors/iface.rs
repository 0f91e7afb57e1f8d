//! The watched interface: its name, index, MAC, IPv4 address and subnet, and the gateway,
//! from `/proc/net/route`, `/sys/class/net` and the kernel's own source-address choice.
//! Everything read from `/proc` is bounded and parsed without trusting it.

use super::incident::Mac;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};

const PROC_CAP: u64 = 1 << 20;

fn read_capped(path: &str) -> std::io::Result<String> {
    let mut s = String::new();
    std::fs::File::open(path)?
        .take(PROC_CAP)
        .read_to_string(&mut s)?;
    Ok(s)
}

/// One IPv4 route of `/proc/net/route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub iface: String,
    pub dest: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub mask: Ipv4Addr,
}

fn hex_ip(h: &str) -> Option<Ipv4Addr> {
    if h.len() != 8 {
        return None;
    }
    Some(Ipv4Addr::from(
        u32::from_str_radix(h, 16).ok()?.to_ne_bytes(),
    ))
}

/// Parses `/proc/net/route` (addresses in the kernel's native word order).
pub fn parse_routes(text: &str) -> Vec<Route> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(Route {
                iface: (*f.first()?).to_owned(),
                dest: hex_ip(f.get(1)?)?,
                gateway: hex_ip(f.get(2)?)?,
                mask: hex_ip(f.get(7)?)?,
            })
        })
        .collect()
}

/// The default route's interface and gateway.
pub fn default_route(routes: &[Route]) -> Option<(String, Ipv4Addr)> {
    routes
        .iter()
        .find(|r| r.dest.is_unspecified() && r.mask.is_unspecified())
        .map(|r| (r.iface.clone(), r.gateway))
}

/// The prefix length of the on-link subnet of `ip` on `iface`.
pub fn prefix_len(routes: &[Route], iface: &str, ip: Ipv4Addr) -> Option<u8> {
    routes
        .iter()
        .filter(|r| r.iface == iface && r.gateway.is_unspecified() && !r.mask.is_unspecified())
        .filter(|r| u32::from(ip) & u32::from(r.mask) == u32::from(r.dest))
        .map(|r| u32::from(r.mask).count_ones() as u8)
        .max()
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut m = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in &mut m {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(m)
}

/// Complete entries of `/proc/net/arp` on `iface`: (IP, MAC).
pub fn parse_arp_table(text: &str, iface: &str) -> Vec<(Ipv4Addr, Mac)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let flags = u32::from_str_radix(f.get(2)?.trim_start_matches("0x"), 16).ok()?;
            if flags & 0x2 == 0 || *f.get(5)? != iface {
                return None;
            }
            Some((f.first()?.parse().ok()?, parse_mac(f.get(3)?)?))
        })
        .collect()
}

/// The kernel's neighbour table for `iface` (empty if it cannot be read).
pub fn neighbours(iface: &str) -> Vec<(Ipv4Addr, Mac)> {
    read_capped("/proc/net/arp")
        .map(|t| parse_arp_table(&t, iface))
        .unwrap_or_default()
}

/// What the detectors know of their interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub index: i32,
    pub mac: Option<Mac>,
    pub ipv4: Option<Ipv4Addr>,
    pub prefix_len: Option<u8>,
    pub gateway: Option<Ipv4Addr>,
}

impl Iface {
    /// Finds interface `name` (empty: the default route's). `bind` is the address the
    /// probes leave from, when the configuration names one.
    pub fn discover(name: &str, bind: Option<Ipv4Addr>) -> Result<Iface, String> {
        let routes = read_capped("/proc/net/route")
            .map(|t| parse_routes(&t))
            .unwrap_or_default();
        let default = default_route(&routes);
        let name = if name.is_empty() {
            default
                .as_ref()
                .map(|d| d.0.clone())
                .ok_or("no interface configured and no default route")?
        } else {
            name.to_owned()
        };
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(format!("bad interface name {name:?}"));
        }
        let sys = |f: &str| read_capped(&format!("/sys/class/net/{name}/{f}"));
        let index: i32 = sys("ifindex")
            .map_err(|e| format!("interface {name}: {e}"))?
            .trim()
            .parse()
            .map_err(|_| format!("interface {name}: unreadable ifindex"))?;
        let mac = sys("address").ok().and_then(|a| parse_mac(&a));
        let ipv4 = bind.or_else(|| source_address(&name));
        let gateway = default.filter(|d| d.0 == name).map(|d| d.1);
        let prefix_len = ipv4.and_then(|ip| prefix_len(&routes, &name, ip));
        Ok(Iface {
            name,
            index,
            mac,
            ipv4,
            prefix_len,
            gateway,
        })
    }
}

/// The address the kernel would send from on `iface` (a connected UDP socket sends
/// nothing).
fn source_address(iface: &str) -> Option<Ipv4Addr> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, None).ok()?;
    s.bind_device(Some(iface.as_bytes())).ok()?;
    let to: SocketAddr = "224.0.0.251:5353".parse().ok()?;
    s.connect(&to.into()).ok()?;
    match s.local_addr().ok()?.as_socket()? {
        SocketAddr::V4(a) if !a.ip().is_unspecified() => Some(*a.ip()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
";
    const ARP: &str =
        "IP address       HW type     Flags       HW address            Mask     Device
10.0.0.1         0x1         0x2         52:54:00:12:35:02     *        eth0
10.0.0.7         0x1         0x0         00:00:00:00:00:00     *        eth0
172.17.0.2       0x1         0x2         02:42:ac:11:00:02     *        docker0
";

    #[test]
    #[cfg(target_endian = "little")]
    fn routes_and_neighbours() {
        let r = parse_routes(ROUTE);
        assert_eq!(r.len(), 3);
        assert_eq!(
            default_route(&r),
            Some(("eth0".into(), Ipv4Addr::new(10, 0, 0, 1)))
        );
        assert_eq!(prefix_len(&r, "eth0", Ipv4Addr::new(10, 0, 0, 2)), Some(24));
        assert_eq!(prefix_len(&r, "eth0", Ipv4Addr::new(10, 9, 0, 2)), None);
        let n = parse_arp_table(ARP, "eth0");
        assert_eq!(
            n,
            vec![(Ipv4Addr::new(10, 0, 0, 1), [0x52, 0x54, 0, 0x12, 0x35, 2])]
        );
        assert_eq!(parse_mac("52:54:00:12:35"), None);
        assert_eq!(parse_mac("52:54:00:12:35:02:01"), None);
        for bad in ["", "\n\n", "x y z", "eth0 zz 0 0 0 0 0 0"] {
            assert!(parse_routes(bad).is_empty());
            assert!(parse_arp_table(bad, "eth0").is_empty());
        }
    }
}
