//! SNMP trap parsing for the aggregator ([`super::aggregator`]):
//! SNMPv1 Trap-PDUs and SNMPv2c SNMPv2-Trap / InformRequest PDUs, as printers, UPSes and
//! cameras send them. A bounded BER reader: definite lengths only, no recursion beyond
//! the fixed shape of a trap, at most [`MAX_VARBINDS`] variable bindings and
//! [`MAX_OID_ARCS`] arcs per OID, every value rendered and clamped. SNMPv3 is refused
//! (its messages are encrypted or authenticated with keys the agent does not hold).

use std::net::Ipv4Addr;

pub const MAX_VARBINDS: usize = 32;
pub const MAX_OID_ARCS: usize = 64;
const MAX_VALUE_TEXT: usize = 512;

/// One trap, whatever its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trap {
    /// 1 for SNMPv1, 2 for SNMPv2c.
    pub version: u8,
    /// What the sender authenticates with (clamped, lossy UTF-8).
    pub community: String,
    /// The trap's OID: SNMPv2's `snmpTrapOID.0` value, or SNMPv1's enterprise with its
    /// generic and specific trap numbers (RFC 3584 §3.1).
    pub trap_oid: String,
    /// SNMPv1 only: the agent address the PDU names.
    pub agent_addr: Option<Ipv4Addr>,
    /// (OID, value) pairs, values rendered as text.
    pub varbinds: Vec<(String, String)>,
    /// An InformRequest (the sender waits for an acknowledgement).
    pub inform: bool,
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    /// One TLV: (tag, contents).
    fn tlv(&mut self) -> Option<(u8, &'a [u8])> {
        let tag = *self.b.first()?;
        if tag & 0x1f == 0x1f {
            return None; // multi-byte tags: not in SNMP
        }
        let l0 = *self.b.get(1)?;
        let (len, hdr) = if l0 & 0x80 == 0 {
            (usize::from(l0), 2)
        } else {
            let n = usize::from(l0 & 0x7f);
            if n == 0 || n > 3 {
                return None; // indefinite, or over 16 MiB
            }
            let mut len = 0usize;
            for i in 0..n {
                len = (len << 8) | usize::from(*self.b.get(2 + i)?);
            }
            (len, 2 + n)
        };
        let contents = self.b.get(hdr..hdr.checked_add(len)?)?;
        self.b = &self.b[hdr + len..];
        Some((tag, contents))
    }

    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.tlv()? {
            (t, c) if t == tag => Some(c),
            _ => None,
        }
    }
}

fn int(c: &[u8]) -> Option<i64> {
    if c.is_empty() || c.len() > 8 {
        return None;
    }
    let mut v: i64 = if c[0] & 0x80 != 0 { -1 } else { 0 };
    for &b in c {
        v = (v << 8) | i64::from(b);
    }
    Some(v)
}

fn uint(c: &[u8]) -> Option<u64> {
    if c.is_empty() || c.len() > 9 {
        return None;
    }
    let mut v = 0u64;
    for &b in c {
        v = v.checked_shl(8)? | u64::from(b);
    }
    Some(v)
}

/// Dotted OID text.
fn oid(c: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut v = 0u64;
    for (i, &b) in c.iter().enumerate() {
        v = v.checked_mul(128)? | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (v / 40).min(2);
                arcs.push(first);
                arcs.push(v - first * 40);
            } else {
                arcs.push(v);
            }
            v = 0;
            if arcs.len() > MAX_OID_ARCS {
                return None;
            }
        } else if i + 1 == c.len() {
            return None; // ends inside an arc
        }
    }
    if arcs.is_empty() {
        return None;
    }
    let s: Vec<String> = arcs.iter().map(u64::to_string).collect();
    Some(s.join("."))
}

fn text(c: &[u8]) -> String {
    let printable = c
        .iter()
        .all(|&b| b == b'\t' || b == b'\n' || b == b'\r' || (0x20..0x7f).contains(&b));
    let s = if printable {
        String::from_utf8_lossy(c).into_owned()
    } else {
        hex::encode(c)
    };
    honeybee_proto::event::clamp(&s, MAX_VALUE_TEXT)
}

/// A value as text: numbers, strings (hex when not printable), OIDs, addresses.
fn value(tag: u8, c: &[u8]) -> String {
    match tag {
        0x02 => int(c).map_or_else(|| text(c), |v| v.to_string()),
        0x04 => text(c),
        0x05 => "null".into(),
        0x06 => oid(c).unwrap_or_else(|| text(c)),
        0x40 if c.len() == 4 => Ipv4Addr::new(c[0], c[1], c[2], c[3]).to_string(),
        0x41..=0x43 | 0x46 => uint(c).map_or_else(|| text(c), |v| v.to_string()),
        0x80 => "noSuchObject".into(),
        0x81 => "noSuchInstance".into(),
        0x82 => "endOfMibView".into(),
        _ => text(c),
    }
}

fn varbinds(c: &[u8]) -> Option<Vec<(String, String)>> {
    let mut r = Reader { b: c };
    let mut out = Vec::new();
    while !r.b.is_empty() && out.len() < MAX_VARBINDS {
        let vb = r.expect(0x30)?;
        let mut v = Reader { b: vb };
        let name = oid(v.expect(0x06)?)?;
        let (tag, val) = v.tlv()?;
        out.push((name, value(tag, val)));
    }
    Some(out)
}

const SNMP_TRAP_OID: &str = "1.3.6.1.6.3.1.1.4.1.0";

/// Parses one datagram; `None` for anything that is not a v1 or v2c trap or inform.
pub fn parse(datagram: &[u8]) -> Option<Trap> {
    let mut top = Reader { b: datagram };
    let msg = top.expect(0x30)?;
    let mut m = Reader { b: msg };
    let version = int(m.expect(0x02)?)?;
    let community = text(m.expect(0x04)?);
    let (pdu_tag, pdu) = m.tlv()?;
    let mut p = Reader { b: pdu };
    match (version, pdu_tag) {
        // SNMPv1 Trap-PDU.
        (0, 0xa4) => {
            let enterprise = oid(p.expect(0x06)?)?;
            let addr = p.expect(0x40)?;
            let agent_addr =
                (addr.len() == 4).then(|| Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]));
            let generic = int(p.expect(0x02)?)?;
            let specific = int(p.expect(0x02)?)?;
            let _uptime = p.expect(0x43)?;
            let vbs = varbinds(p.expect(0x30)?)?;
            // RFC 3584 §3.1: the SNMPv2 trap OID of an SNMPv1 trap.
            let trap_oid = if (0..6).contains(&generic) {
                format!("1.3.6.1.6.3.1.1.5.{}", generic + 1)
            } else {
                format!("{enterprise}.0.{specific}")
            };
            Some(Trap {
                version: 1,
                community,
                trap_oid,
                agent_addr,
                varbinds: vbs,
                inform: false,
            })
        }
        // SNMPv2c SNMPv2-Trap (0xa7) or InformRequest (0xa6).
        (1, 0xa7 | 0xa6) => {
            let _request_id = p.expect(0x02)?;
            let _error_status = p.expect(0x02)?;
            let _error_index = p.expect(0x02)?;
            let vbs = varbinds(p.expect(0x30)?)?;
            let trap_oid = vbs
                .iter()
                .find(|(n, _)| n == SNMP_TRAP_OID)
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            Some(Trap {
                version: 2,
                community,
                trap_oid,
                agent_addr: None,
                varbinds: vbs,
                inform: pdu_tag == 0xa6,
            })
        }
        _ => None,
    }
}

/// The Response-PDU an InformRequest asks for (RFC 3416 §4.2.7): the same message, PDU
/// tag `0xa2` instead of `0xa6` (request id, zero error status and index, and the
/// variable bindings copied), trailing bytes dropped; `None` unless `datagram` parses as
/// an SNMPv2c inform. Never longer than `datagram`.
pub fn inform_response(datagram: &[u8]) -> Option<Vec<u8>> {
    if !parse(datagram)?.inform {
        return None;
    }
    let mut top = Reader { b: datagram };
    let msg = top.expect(0x30)?;
    let msg_end = datagram.len() - top.b.len();
    let mut m = Reader { b: msg };
    m.expect(0x02)?;
    m.expect(0x04)?;
    let pdu_at = msg_end - m.b.len();
    let mut out = datagram[..msg_end].to_vec();
    (out.get(pdu_at) == Some(&0xa6)).then_some(())?;
    out[pdu_at] = 0xa2;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tlv(tag: u8, c: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        if c.len() < 128 {
            v.push(c.len() as u8);
        } else {
            v.push(0x82);
            v.extend_from_slice(&(c.len() as u16).to_be_bytes());
        }
        v.extend_from_slice(c);
        v
    }

    fn oid_bytes(s: &str) -> Vec<u8> {
        let arcs: Vec<u64> = s.split('.').map(|a| a.parse().unwrap()).collect();
        let mut out = Vec::new();
        let mut push = |mut v: u64| {
            let mut tmp = vec![(v & 0x7f) as u8];
            v >>= 7;
            while v > 0 {
                tmp.push(0x80 | (v & 0x7f) as u8);
                v >>= 7;
            }
            tmp.reverse();
            out.extend(tmp);
        };
        push(arcs[0] * 40 + arcs[1]);
        for &a in &arcs[2..] {
            push(a);
        }
        out
    }

    fn vb(name: &str, tag: u8, val: &[u8]) -> Vec<u8> {
        let mut c = tlv(0x06, &oid_bytes(name));
        c.extend(tlv(tag, val));
        tlv(0x30, &c)
    }

    /// What `snmptrap -v 2c -c public HOST '' 1.3.6.1.4.1.8072.2.3.0.1 1.3.6.1.2.1.1.5.0 s printer-3f` sends.
    fn v2c_trap() -> Vec<u8> {
        let mut vbs = vb("1.3.6.1.2.1.1.3.0", 0x43, &[0x01, 0x02]);
        vbs.extend(vb(
            SNMP_TRAP_OID,
            0x06,
            &oid_bytes("1.3.6.1.4.1.8072.2.3.0.1"),
        ));
        vbs.extend(vb("1.3.6.1.2.1.1.5.0", 0x04, b"printer-3f"));
        let mut pdu = tlv(0x02, &[0x12, 0x34]);
        pdu.extend(tlv(0x02, &[0]));
        pdu.extend(tlv(0x02, &[0]));
        pdu.extend(tlv(0x30, &vbs));
        let mut msg = tlv(0x02, &[1]);
        msg.extend(tlv(0x04, b"public"));
        msg.extend(tlv(0xa7, &pdu));
        tlv(0x30, &msg)
    }

    #[test]
    fn v2c_trap_and_inform() {
        let t = parse(&v2c_trap()).unwrap();
        assert_eq!(t.version, 2);
        assert_eq!(t.community, "public");
        assert_eq!(t.trap_oid, "1.3.6.1.4.1.8072.2.3.0.1");
        assert!(!t.inform);
        assert_eq!(
            t.varbinds[2],
            ("1.3.6.1.2.1.1.5.0".to_owned(), "printer-3f".to_owned())
        );
        assert_eq!(t.varbinds[0].1, "258");
    }

    #[test]
    fn an_inform_is_answered_with_the_same_message_as_a_response() {
        let mut inform = v2c_trap();
        let at = inform.iter().position(|&b| b == 0xa7).unwrap();
        inform[at] = 0xa6;
        let mut with_tail = inform.clone();
        with_tail.extend_from_slice(b"junk");
        let r = inform_response(&with_tail).unwrap();
        assert_eq!(r.len(), inform.len());
        assert_eq!(r[at], 0xa2);
        assert_eq!((&r[..at], &r[at + 1..]), (&inform[..at], &inform[at + 1..]));
        assert_eq!(inform_response(&v2c_trap()), None, "a trap is not answered");
        assert_eq!(inform_response(b"\x30\x00"), None);
    }

    #[test]
    fn v1_trap_maps_to_its_v2_oid() {
        let mut pdu = tlv(0x06, &oid_bytes("1.3.6.1.4.1.11.2.3.9.1"));
        pdu.extend(tlv(0x40, &[10, 0, 0, 40]));
        pdu.extend(tlv(0x02, &[2])); // linkDown
        pdu.extend(tlv(0x02, &[0]));
        pdu.extend(tlv(0x43, &[0x10]));
        pdu.extend(tlv(0x30, &vb("1.3.6.1.2.1.2.2.1.1.3", 0x02, &[3])));
        let mut msg = tlv(0x02, &[0]);
        msg.extend(tlv(0x04, b"\x01\x02secret"));
        msg.extend(tlv(0xa4, &pdu));
        let t = parse(&tlv(0x30, &msg)).unwrap();
        assert_eq!(t.version, 1);
        assert_eq!(t.trap_oid, "1.3.6.1.6.3.1.1.5.3");
        assert_eq!(t.agent_addr, Some(Ipv4Addr::new(10, 0, 0, 40)));
        assert_eq!(t.community, "0102736563726574", "not printable: hex");
        assert_eq!(
            t.varbinds,
            vec![("1.3.6.1.2.1.2.2.1.1.3".into(), "3".into())]
        );
    }

    #[test]
    fn hostile_datagrams_never_panic_and_are_bounded() {
        let good = v2c_trap();
        for len in 0..good.len() {
            assert!(parse(&good[..len]).is_none() || len == good.len());
        }
        let mut g = good.clone();
        for i in 0..g.len() {
            for b in [0u8, 0x30, 0x80, 0x81, 0x84, 0xff, 0xa7, 0x06] {
                let s = g[i];
                g[i] = b;
                if let Some(t) = parse(&g) {
                    assert!(t.varbinds.len() <= MAX_VARBINDS);
                }
                g[i] = s;
            }
        }
        // Many varbinds: only the cap is kept.
        let mut vbs = Vec::new();
        for i in 0..100u8 {
            vbs.extend(vb("1.3.6.1.2.1.1.5.0", 0x02, &[i]));
        }
        let mut pdu = tlv(0x02, &[1]);
        pdu.extend(tlv(0x02, &[0]));
        pdu.extend(tlv(0x02, &[0]));
        pdu.extend(tlv(0x30, &vbs));
        let mut msg = tlv(0x02, &[1]);
        msg.extend(tlv(0x04, b"c"));
        msg.extend(tlv(0xa7, &pdu));
        assert_eq!(
            parse(&tlv(0x30, &msg)).unwrap().varbinds.len(),
            MAX_VARBINDS
        );
        // An OID of 1000 arcs, a length over the datagram, an indefinite length, v3.
        let long_oid = "1.3".to_owned() + &".1".repeat(1000);
        assert_eq!(oid(&oid_bytes(&long_oid)), None);
        assert!(parse(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
        assert!(parse(&[0x30, 0x80, 0, 0]).is_none());
        let mut v3 = tlv(0x02, &[3]);
        v3.extend(tlv(0x30, &[]));
        assert!(parse(&tlv(0x30, &v3)).is_none());
    }
}
