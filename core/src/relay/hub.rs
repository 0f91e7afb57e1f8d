//! The flow table behind the relayed endpoint: one virtual peer address per relay flow,
//! the queues between flows and the virtual socket, and the inner connection each flow
//! carries (closed when its flow goes away).

use honeybee_proto::NodeId;
use honeybee_proto::stream::close;
use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

/// Datagrams queued from all flows towards the relayed endpoint; past this they are
/// dropped, as a congested UDP socket would, and QUIC recovers.
pub const INBOUND_QUEUE: usize = 4096;
/// Datagrams queued from the relayed endpoint towards one flow's stream.
pub const FLOW_QUEUE: usize = 256;

/// How a relayed connection reached the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowPath {
    /// The relay whose connection carries the flow (from its certificate).
    pub relay: NodeId,
    /// The registry connection id of that relay connection.
    pub relay_conn: u64,
    /// The downstream node's LAN address, as the relay reported it (display only).
    pub downstream: SocketAddr,
}

struct Flow {
    path: FlowPath,
    out: mpsc::Sender<Vec<u8>>,
    conn: Option<quinn::Connection>,
}

/// The virtual network of every relay flow.
#[derive(Default)]
pub struct RelayHub {
    flows: Mutex<HashMap<SocketAddr, Flow>>,
    inbound: Mutex<Option<mpsc::Sender<(SocketAddr, Vec<u8>)>>>,
    next: AtomicU64,
    dropped: AtomicU64,
}

impl std::fmt::Debug for RelayHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayHub")
            .field("flows", &self.lock().len())
            .field("dropped", &self.dropped())
            .finish()
    }
}

/// The virtual address of flow `n`: a unique-local IPv6 address no real peer of this
/// endpoint can have (the relayed endpoint has no real network at all).
pub fn virtual_addr(n: u64) -> SocketAddr {
    let ip = Ipv6Addr::new(
        0xfd68,
        0x6272,
        0x6c79,
        0,
        (n >> 48) as u16,
        (n >> 32) as u16,
        (n >> 16) as u16,
        n as u16,
    );
    SocketAddr::new(ip.into(), 7443)
}

impl RelayHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Flow>> {
        self.flows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connects the hub to the virtual socket's receive queue.
    pub(crate) fn set_inbound(&self, tx: mpsc::Sender<(SocketAddr, Vec<u8>)>) {
        *self.inbound.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
    }

    /// Registers a new flow; returns its virtual address.
    pub fn open(&self, path: FlowPath, out: mpsc::Sender<Vec<u8>>) -> SocketAddr {
        let addr = virtual_addr(self.next.fetch_add(1, Ordering::Relaxed) + 1);
        self.lock().insert(
            addr,
            Flow {
                path,
                out,
                conn: None,
            },
        );
        addr
    }

    /// Forgets a flow and closes the connection it carried, so the node is seen offline
    /// at once instead of after an idle timeout.
    pub fn close(&self, addr: SocketAddr) {
        let flow = self.lock().remove(&addr);
        if let Some(conn) = flow.and_then(|f| f.conn) {
            conn.close(close::NORMAL.into(), b"relay path closed");
        }
    }

    /// The path of the flow at `addr`, recording the connection it now carries. `None`
    /// when the flow has already gone.
    pub fn attach(&self, addr: SocketAddr, conn: &quinn::Connection) -> Option<FlowPath> {
        let mut flows = self.lock();
        let flow = flows.get_mut(&addr)?;
        flow.conn = Some(conn.clone());
        Some(flow.path.clone())
    }

    /// Flows carried by one relay connection.
    pub fn flows_of(&self, relay_conn: u64) -> usize {
        self.lock()
            .values()
            .filter(|f| f.path.relay_conn == relay_conn)
            .count()
    }

    /// Every flow now open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Datagrams dropped because a queue was full or the flow had gone.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// A datagram from a flow, for the relayed endpoint.
    pub fn deliver(&self, from: SocketAddr, datagram: Vec<u8>) {
        let tx = self
            .inbound
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let sent = tx.is_some_and(|tx| tx.try_send((from, datagram)).is_ok());
        if !sent {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A datagram from the relayed endpoint to the flow at `to`.
    pub fn send(&self, to: SocketAddr, datagram: &[u8]) {
        let out = self.lock().get(&to).map(|f| f.out.clone());
        let sent = out.is_some_and(|out| out.try_send(datagram.to_vec()).is_ok());
        if !sent {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(relay: &str, conn: u64) -> FlowPath {
        FlowPath {
            relay: NodeId::new(relay).unwrap(),
            relay_conn: conn,
            downstream: "192.0.2.7:40000".parse().unwrap(),
        }
    }

    #[test]
    fn flows_get_distinct_virtual_addresses_and_route_both_ways() {
        let hub = RelayHub::default();
        let (in_tx, mut in_rx) = mpsc::channel(8);
        hub.set_inbound(in_tx);
        let (a_tx, mut a_rx) = mpsc::channel(8);
        let (b_tx, mut b_rx) = mpsc::channel(8);
        let a = hub.open(path("r1", 1), a_tx);
        let b = hub.open(path("r1", 1), b_tx);
        assert_ne!(a, b);
        assert!(a.ip().to_string().starts_with("fd68:6272:6c79:"));
        assert_eq!(hub.flows_of(1), 2);
        assert_eq!(hub.flows_of(2), 0);

        hub.send(b, b"to b");
        hub.send(a, b"to a");
        assert_eq!(a_rx.try_recv().unwrap(), b"to a");
        assert_eq!(b_rx.try_recv().unwrap(), b"to b");
        hub.deliver(a, b"from a".to_vec());
        assert_eq!(in_rx.try_recv().unwrap(), (a, b"from a".to_vec()));

        hub.close(a);
        hub.send(a, b"gone");
        assert_eq!(hub.dropped(), 1);
        assert_eq!(hub.len(), 1);
    }

    #[test]
    fn full_queues_drop_instead_of_blocking() {
        let hub = RelayHub::default();
        let (in_tx, _in_rx) = mpsc::channel(1);
        hub.set_inbound(in_tx);
        let (tx, _rx) = mpsc::channel(1);
        let a = hub.open(path("r1", 1), tx);
        hub.send(a, b"1");
        hub.send(a, b"2");
        hub.deliver(a, b"1".to_vec());
        hub.deliver(a, b"2".to_vec());
        assert_eq!(hub.dropped(), 2);
    }
}
