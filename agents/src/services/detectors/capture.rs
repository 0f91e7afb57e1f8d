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

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;

/// How long a read waits before the reader checks its stop flag and its timers.
pub const READ_TIMEOUT: Duration = Duration::from_millis(200);
const RCVBUF: usize = 256 << 10;
/// Frames longer than this are truncated (the detectors read headers only).
pub const SNAPLEN: usize = 2048;

/// `udp dst port 68` on IPv4, unfragmented (as `tcpdump -dd` writes it).
pub fn filter_dhcp_client() -> Vec<SockFilter> {
    vec![
        SockFilter::new(0x28, 0, 0, 12),             // ldh [12] ethertype
        SockFilter::new(0x15, 0, 8, 0x0800),         // IPv4?
        SockFilter::new(0x30, 0, 0, 23),             // ldb [23] protocol
        SockFilter::new(0x15, 0, 6, 17),             // UDP?
        SockFilter::new(0x28, 0, 0, 20),             // ldh [20] fragment offset
        SockFilter::new(0x45, 4, 0, 0x1fff),         // a later fragment: drop
        SockFilter::new(0xb1, 0, 0, 14),             // x = IP header length
        SockFilter::new(0x48, 0, 0, 16),             // ldh [x + 16] destination port
        SockFilter::new(0x15, 0, 1, 68),             // port 68?
        SockFilter::new(0x06, 0, 0, SNAPLEN as u32), // accept
        SockFilter::new(0x06, 0, 0, 0),              // drop
    ]
}

/// IPv6 frames that are ICMPv6 router advertisements, or that carry extension headers
/// (hop-by-hop, routing, fragment, destination options: the ways around RA-guard),
/// which user space then walks.
pub fn filter_router_advertisement() -> Vec<SockFilter> {
    // Jump offsets count from the next instruction.
    vec![
        SockFilter::new(0x28, 0, 0, 12),             // 0: ldh [12] ethertype
        SockFilter::new(0x15, 0, 9, 0x86dd),         // 1: IPv6? else drop
        SockFilter::new(0x30, 0, 0, 20),             // 2: ldb [20] next header
        SockFilter::new(0x15, 0, 2, 58),             // 3: ICMPv6? else 6
        SockFilter::new(0x30, 0, 0, 54),             // 4: ldb [54] ICMPv6 type
        SockFilter::new(0x15, 4, 5, 134),            // 5: router advertisement? accept : drop
        SockFilter::new(0x15, 3, 0, 0),              // 6: hop-by-hop: accept
        SockFilter::new(0x15, 2, 0, 43),             // 7: routing: accept
        SockFilter::new(0x15, 1, 0, 44),             // 8: fragment: accept
        SockFilter::new(0x15, 0, 1, 60),             // 9: destination options? accept : drop
        SockFilter::new(0x06, 0, 0, SNAPLEN as u32), // 10: accept
        SockFilter::new(0x06, 0, 0, 0),              // 11: drop
    ]
}

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
