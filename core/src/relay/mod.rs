//! Relays, core side. A relay is a node (role `relay`) whose own connection also carries
//! flows: one bidirectional stream per downstream node, each a [`FlowOpen`] frame and
//! then that node's UDP datagrams. The datagrams feed a second quinn endpoint built on a
//! virtual socket ([`socket::RelaySocket`]) with the core's usual server config, so the
//! downstream node's handshake, mTLS and session end at the core, and the relay carries
//! ciphertext it can neither read nor forge.
//!
//! Which nodes a relay may carry is decided after the inner handshake, from the node's
//! certificate and its assignment in the store (`node.rs`, `enroll.rs`).

pub mod hub;
pub mod socket;

use crate::frame_io::read_frame_within;
use crate::server::Shared;
use honeybee_proto::NodeId;
use honeybee_proto::relay::{FLOW_OPEN_LIMIT, FlowOpen, encode_datagram, split_datagrams};
use honeybee_proto::stream::close;
pub use hub::{FlowPath, RelayHub};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Flows one relay connection may carry at once.
pub const MAX_FLOWS_PER_RELAY: u32 = 1024;
/// How long a relay has to send a new flow's header.
const FLOW_OPEN_DEADLINE: Duration = Duration::from_secs(10);
/// Bytes read from a flow stream at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Serves the flows of one relay connection until it closes. Every flow ends with it.
pub async fn serve(
    conn: &quinn::Connection,
    relay: &NodeId,
    relay_conn: u64,
    shared: &Arc<Shared>,
) {
    // The transport config allows 16 bidirectional streams per peer; a relay needs one per
    // flow, and only a relay gets more.
    conn.set_max_concurrent_bi_streams((MAX_FLOWS_PER_RELAY + 1).into());
    let mut flows = JoinSet::new();
    loop {
        let (mut send, recv) = match conn.accept_bi().await {
            Ok(s) => s,
            Err(_) => return,
        };
        while flows.try_join_next().is_some() {}
        if flows.len() >= MAX_FLOWS_PER_RELAY as usize {
            tracing::warn!(%relay, "relay flow refused: at the flow limit");
            let _ = send.reset(close::LIMIT.into());
            continue;
        }
        let (relay, hub) = (relay.clone(), shared.relays.clone());
        flows.spawn(async move { flow(send, recv, relay, relay_conn, hub).await });
    }
    // Dropping `flows` aborts every flow task; each one's guard closes its flow.
}

/// Removes a flow from the hub however its task ends (finished, failed or aborted).
struct FlowGuard {
    hub: Arc<RelayHub>,
    addr: std::net::SocketAddr,
}

impl Drop for FlowGuard {
    fn drop(&mut self) {
        self.hub.close(self.addr);
    }
}

async fn flow(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    relay: NodeId,
    relay_conn: u64,
    hub: Arc<RelayHub>,
) {
    let open: FlowOpen =
        match read_frame_within(&mut recv, FLOW_OPEN_LIMIT, FLOW_OPEN_DEADLINE).await {
            Ok(o) => o,
            Err(e) => {
                tracing::info!(%relay, error = %e, "relay flow without a valid header");
                let _ = send.reset(close::PROTOCOL.into());
                return;
            }
        };
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(hub::FLOW_QUEUE);
    let path = FlowPath {
        relay: relay.clone(),
        relay_conn,
        downstream: open.downstream,
    };
    let addr = hub.open(path, tx);
    let _guard = FlowGuard {
        hub: hub.clone(),
        addr,
    };
    tracing::debug!(%relay, downstream = %open.downstream, virtual_addr = %addr, "relay flow opened");

    // Core → relay: coalesce what is queued into one write.
    let down = async {
        let mut buf = Vec::with_capacity(READ_CHUNK);
        while let Some(d) = rx.recv().await {
            buf.clear();
            let _ = encode_datagram(&d, &mut buf);
            while buf.len() < READ_CHUNK {
                match rx.try_recv() {
                    Ok(more) => {
                        let _ = encode_datagram(&more, &mut buf);
                    }
                    Err(_) => break,
                }
            }
            if send.write_all(&buf).await.is_err() {
                return;
            }
        }
    };
    // Relay → core: split the stream into datagrams; a malformed length ends the flow.
    let up = async {
        let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
        loop {
            let chunk = match recv.read_chunk(READ_CHUNK, true).await {
                Ok(Some(c)) => c,
                Ok(None) | Err(_) => return,
            };
            buf.extend_from_slice(&chunk.bytes);
            let (ranges, used) = match split_datagrams(&buf) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(%relay, error = %e, "relay flow sent a malformed datagram");
                    return;
                }
            };
            for r in ranges {
                hub.deliver(addr, buf[r].to_vec());
            }
            buf.drain(..used);
        }
    };
    tokio::select! {
        _ = down => {}
        _ = up => {}
    }
    tracing::debug!(%relay, downstream = %open.downstream, "relay flow closed");
}
