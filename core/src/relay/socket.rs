//! The relayed endpoint's "UDP socket": datagrams come from and go to relay flows
//! through the [`RelayHub`], so a second quinn endpoint with the core's own TLS config
//! terminates every relayed node's QUIC and mTLS session end to end.

use super::hub::{INBOUND_QUEUE, RelayHub};
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use std::io::{self, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// The address the relayed endpoint reports as its own.
pub const LOCAL_ADDR: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V6(Ipv6Addr::new(0xfd68, 0x6272, 0x6c79, 0xffff, 0, 0, 0, 1)),
    7443,
);

/// A virtual UDP socket over relay flows.
pub struct RelaySocket {
    hub: Arc<RelayHub>,
    inbound: Mutex<mpsc::Receiver<(SocketAddr, Vec<u8>)>>,
}

impl std::fmt::Debug for RelaySocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelaySocket").finish_non_exhaustive()
    }
}

impl RelaySocket {
    /// A socket fed by `hub`'s flows.
    pub fn new(hub: Arc<RelayHub>) -> RelaySocket {
        let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
        hub.set_inbound(tx);
        RelaySocket {
            hub,
            inbound: Mutex::new(rx),
        }
    }
}

/// Sending never waits: a full flow queue drops the datagram, like a full UDP buffer.
#[derive(Debug)]
struct AlwaysWritable;

impl UdpPoller for AlwaysWritable {
    fn poll_writable(self: Pin<&mut Self>, _cx: &mut Context) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncUdpSocket for RelaySocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(AlwaysWritable)
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        // max_transmit_segments is 1, so quinn never batches; split anyway if it does.
        match transmit.segment_size {
            Some(seg) if seg > 0 => {
                for d in transmit.contents.chunks(seg) {
                    self.hub.send(transmit.destination, d);
                }
            }
            _ => self.hub.send(transmit.destination, transmit.contents),
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let mut rx = self.inbound.lock().unwrap_or_else(|p| p.into_inner());
        let slots = bufs.len().min(meta.len());
        let mut n = 0;
        while n < slots {
            let next = if n == 0 {
                match rx.poll_recv(cx) {
                    Poll::Ready(Some(d)) => d,
                    // The hub never drops its sender while the core runs.
                    Poll::Ready(None) => {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::BrokenPipe,
                            "relay hub gone",
                        )));
                    }
                    Poll::Pending => return Poll::Pending,
                }
            } else {
                match rx.try_recv() {
                    Ok(d) => d,
                    Err(_) => break,
                }
            };
            let (from, datagram) = next;
            if datagram.len() > bufs[n].len() {
                // Larger than quinn's receive buffer: no QUIC packet is; drop it.
                continue;
            }
            bufs[n][..datagram.len()].copy_from_slice(&datagram);
            let mut m = RecvMeta::default();
            m.addr = from;
            m.len = datagram.len();
            m.stride = datagram.len();
            m.ecn = None;
            m.dst_ip = None;
            meta[n] = m;
            n += 1;
        }
        Poll::Ready(Ok(n))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(LOCAL_ADDR)
    }

    fn may_fragment(&self) -> bool {
        // Lets quinn run MTU discovery: the flow carries whole datagrams, and the relay's
        // LAN leg is a real path whose MTU the probes find.
        false
    }
}
