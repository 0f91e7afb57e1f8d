//! Frame capture: one `AF_PACKET` socket per detector, bound to the watched interface and
//! one ethertype, with a classic BPF program attached so the kernel hands over only the
//! frames the detector reads (ARP; UDP to port 68; ICMPv6 router advertisements).
//!
//! **Why socket2 + etherparse and not pnet or libpcap:** socket2 (already in the tree,
//! under tokio) opens the socket and attaches the kernel filter; pnet's datalink channel
//! always captures every ethertype with no filter, so a flood of unrelated traffic would
//! cost CPU in user space; libpcap is a C library to link and ship. Parsing is
//! etherparse's (zero-copy, no allocation, VLAN and IPv6 extension headers walked).
//!
//! **Bounded under a flood:** the socket's receive buffer is small (256 KiB) and the
//! reader handles at most `max_frames_per_s` frames a second, sleeping out the rest of
//! the second once it has: the kernel then drops what does not fit and counts it
//! ([`PacketSocket::drops`]). Every frame is read into one fixed buffer.
//!
//! Opening the socket needs `CAP_NET_RAW`; the caller reports the detector as off when
//! [`PacketSocket::open`] fails with a permission error.

use socket2::{Domain, SockFilter, Socket, Type};
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Every frame (the darknet watch: ARP and IPv4 alike).
pub const ETH_P_ALL: u16 = 0x0003;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;

/// How long a read waits before the reader checks its stop flag and its timers.
pub const READ_TIMEOUT: Duration = Duration::from_millis(200);
const RCVBUF: usize = 256 << 10;
/// Frames longer than this are truncated (the detectors read headers only).
pub const SNAPLEN: usize = 2048;

/// One classic BPF instruction: (code, jump if true, jump if false, constant).
pub type Insn = (u16, u8, u8, u32);
const SNAPLEN_U32: u32 = SNAPLEN as u32;

/// A program as the kernel takes it.
pub fn program(insns: &[Insn]) -> Vec<SockFilter> {
    insns
        .iter()
        .map(|&(code, jt, jf, k)| SockFilter::new(code, jt, jf, k))
        .collect()
}

/// `udp dst port 68` on IPv4, unfragmented (as `tcpdump -dd` writes it).
pub const DHCP_CLIENT: [Insn; 11] = [
    (0x28, 0, 0, 12),          // ldh [12] ethertype
    (0x15, 0, 8, 0x0800),      // IPv4?
    (0x30, 0, 0, 23),          // ldb [23] protocol
    (0x15, 0, 6, 17),          // UDP?
    (0x28, 0, 0, 20),          // ldh [20] fragment offset
    (0x45, 4, 0, 0x1fff),      // a later fragment: drop
    (0xb1, 0, 0, 14),          // x = IP header length
    (0x48, 0, 0, 16),          // ldh [x + 16] destination port
    (0x15, 0, 1, 68),          // port 68?
    (0x06, 0, 0, SNAPLEN_U32), // accept
    (0x06, 0, 0, 0),           // drop
];

/// IPv6 frames that are ICMPv6 router advertisements, or that carry extension headers
/// (hop-by-hop, routing, fragment, destination options: the ways around RA-guard),
/// which user space then walks.
/// Jump offsets count from the next instruction.
pub const ROUTER_ADVERTISEMENT: [Insn; 12] = [
    (0x28, 0, 0, 12),          // 0: ldh [12] ethertype
    (0x15, 0, 9, 0x86dd),      // 1: IPv6? else drop
    (0x30, 0, 0, 20),          // 2: ldb [20] next header
    (0x15, 0, 2, 58),          // 3: ICMPv6? else 6
    (0x30, 0, 0, 54),          // 4: ldb [54] ICMPv6 type
    (0x15, 4, 5, 134),         // 5: router advertisement? accept : drop
    (0x15, 3, 0, 0),           // 6: hop-by-hop: accept
    (0x15, 2, 0, 43),          // 7: routing: accept
    (0x15, 1, 0, 44),          // 8: fragment: accept
    (0x15, 0, 1, 60),          // 9: destination options? accept : drop
    (0x06, 0, 0, SNAPLEN_U32), // 10: accept
    (0x06, 0, 0, 0),           // 11: drop
];

/// An `AF_PACKET` socket on one interface and ethertype.
#[derive(Debug)]
pub struct PacketSocket {
    sock: Socket,
}

impl PacketSocket {
    /// Opens and binds the socket; the filter is attached before the bind so that no
    /// unfiltered frame is ever queued.
    pub fn open(ifindex: i32, ethertype: u16, filter: &[SockFilter]) -> io::Result<Self> {
        // Protocol 0: nothing is received until the bind below names the ethertype.
        let sock = Socket::new(Domain::PACKET, Type::RAW, None)?;
        if !filter.is_empty() {
            sock.attach_filter(filter)?;
        }
        sock.set_recv_buffer_size(RCVBUF)?;
        sock.set_read_timeout(Some(READ_TIMEOUT))?;
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value, and the pointer and
        // length given to bind(2) describe exactly that struct.
        #[allow(unsafe_code)]
        let rc = unsafe {
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = ethertype.to_be();
            sll.sll_ifindex = ifindex;
            libc::bind(
                sock.as_raw_fd(),
                (&raw const sll).cast::<libc::sockaddr>(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketSocket { sock })
    }

    /// Reads one frame into `buf`: `Ok(Some((len, outgoing)))`, `Ok(None)` on timeout.
    /// `outgoing` marks this host's own frames, which packet sockets see too.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<(usize, bool)>> {
        // SAFETY: `buf` is valid for `buf.len()` bytes; `sll` and `len` describe a
        // sockaddr_ll the kernel fills in, no longer than its own size.
        #[allow(unsafe_code)]
        let (n, pkttype) = unsafe {
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            let n = libc::recvfrom(
                self.sock.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&raw mut sll).cast::<libc::sockaddr>(),
                &mut len,
            );
            (n, sll.sll_pkttype)
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some((
            (n as usize).min(buf.len()),
            pkttype == libc::PACKET_OUTGOING,
        )))
    }

    /// Sends one whole Ethernet frame on the bound interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        self.sock.send(frame).map(|_| ())
    }

    /// Frames the kernel dropped since the last call (the buffer was full).
    pub fn drops(&self) -> u64 {
        // SAFETY: tpacket_stats is plain data the kernel fills in; `len` is its size.
        #[allow(unsafe_code)]
        unsafe {
            let mut st: libc::tpacket_stats = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
            let rc = libc::getsockopt(
                self.sock.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut st).cast(),
                &mut len,
            );
            if rc == 0 { u64::from(st.tp_drops) } else { 0 }
        }
    }
}

/// Whether an open error means "this process lacks the capability".
pub fn is_permission(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES))
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    /// The kernel's classic BPF, for the instructions these programs use: the accept
    /// length, or 0 (out-of-bounds loads drop, as in the kernel).
    fn run(prog: &[Insn], pkt: &[u8]) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let h = |at: usize| -> Option<u32> {
            Some(u32::from(u16::from_be_bytes([
                *pkt.get(at)?,
                *pkt.get(at + 1)?,
            ])))
        };
        for _ in 0..prog.len() {
            let (code, jt, jf, k) = prog[pc];
            let ku = k as usize;
            pc += 1;
            match code {
                0x28 => {
                    a = match h(ku) {
                        Some(v) => v,
                        None => return 0,
                    }
                }
                0x30 => {
                    a = match pkt.get(ku) {
                        Some(v) => u32::from(*v),
                        None => return 0,
                    }
                }
                0x48 => {
                    a = match h(x as usize + ku) {
                        Some(v) => v,
                        None => return 0,
                    }
                }
                0xb1 => {
                    x = match pkt.get(ku) {
                        Some(v) => u32::from(v & 0x0f) * 4,
                        None => return 0,
                    }
                }
                0x15 => pc += usize::from(if a == k { jt } else { jf }),
                0x45 => pc += usize::from(if a & k != 0 { jt } else { jf }),
                0x06 => return k,
                other => panic!("opcode {other:#x} not modelled"),
            }
        }
        panic!("fell off the program")
    }

    fn udp(src: u16, dst: u16) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2; 6], [0xff; 6])
            .ipv4([10, 0, 0, 1], [255; 4], 64)
            .udp(src, dst);
        let mut f = Vec::new();
        b.write(&mut f, &[0; 300]).unwrap();
        f
    }

    #[test]
    fn dhcp_filter_passes_client_port_only() {
        assert_eq!(run(&DHCP_CLIENT, &udp(67, 68)), SNAPLEN_U32);
        assert_eq!(run(&DHCP_CLIENT, &udp(68, 67)), 0, "a client's request");
        assert_eq!(run(&DHCP_CLIENT, &udp(5353, 5353)), 0);
        let mut frag = udp(67, 68);
        frag[20] = 0x00;
        frag[21] = 0x10; // a later fragment: its "ports" are payload
        assert_eq!(run(&DHCP_CLIENT, &frag), 0);
        let mut opts = udp(67, 68);
        // IHL 6 (one option word): the port moves; the program follows it.
        opts.insert(34, 0);
        opts.insert(34, 0);
        opts.insert(34, 0);
        opts.insert(34, 1);
        opts[14] = 0x46;
        assert_eq!(run(&DHCP_CLIENT, &opts), SNAPLEN_U32);
        assert_eq!(
            run(
                &DHCP_CLIENT,
                &super::super::arp::request_frame(
                    [2; 6],
                    [10, 0, 0, 2].into(),
                    [10, 0, 0, 1].into()
                )
            ),
            0
        );
        assert_eq!(run(&DHCP_CLIENT, &[0u8; 10]), 0, "short frame");
    }

    #[test]
    fn ra_filter_passes_adverts_and_extension_headers_only() {
        let ra = super::super::ra::advert_frame(
            [2; 6],
            "fe80::1".parse().unwrap(),
            "2001:db8::".parse().unwrap(),
            "2001:db8::53".parse().unwrap(),
        );
        assert_eq!(run(&ROUTER_ADVERTISEMENT, &ra), SNAPLEN_U32);
        let mut ns = ra.clone();
        ns[54] = 135; // neighbour solicitation
        assert_eq!(run(&ROUTER_ADVERTISEMENT, &ns), 0);
        for nh in [0u8, 43, 44, 60] {
            let mut ext = ra.clone();
            ext[20] = nh;
            assert_eq!(
                run(&ROUTER_ADVERTISEMENT, &ext),
                SNAPLEN_U32,
                "next header {nh}"
            );
        }
        let mut tcp = ra.clone();
        tcp[20] = 6;
        assert_eq!(run(&ROUTER_ADVERTISEMENT, &tcp), 0);
        assert_eq!(run(&ROUTER_ADVERTISEMENT, &udp(67, 68)), 0, "IPv4");
    }
}
