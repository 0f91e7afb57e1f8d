//! Relay mode (`agent run --mode relay`): an agent with a `relay` certificate that also
//! listens on a UDP port of its LAN and carries the QUIC packets of nodes that cannot
//! reach the core, each source address as one flow (a bidirectional stream) on its own
//! connection to the core. It forwards ciphertext only: every downstream node keeps its
//! own end-to-end QUIC + mTLS session with the core. It sends only to the core and back
//! to each flow's own source; flows are capped in number and bytes and idle out.

pub mod flows;

use crate::runtime::{Agent, AgentError, AgentOptions};
use crate::transport::write_frame;
use flows::{Admit, FlowId, FlowLimits, FlowTable};
use honeybee_proto::relay::{
    FLOW_OPEN_LIMIT, FlowOpen, MAX_DATAGRAM, encode_datagram, split_datagrams,
};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// The default UDP port a relay listens on for its LAN (the core's port).
pub const DEFAULT_PORT: u16 = 7443;
/// Datagrams queued from the LAN towards one flow's stream before more are dropped.
const FLOW_QUEUE: usize = 256;
/// How often idle flows are looked for.
const SWEEP: Duration = Duration::from_secs(5);
/// How long opening a flow's stream may wait (the core caps streams per relay).
const OPEN_DEADLINE: Duration = Duration::from_secs(10);
/// Bytes read from a flow stream at a time, and coalesced per write.
const CHUNK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    #[error("cannot listen for downstream nodes on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "relay mode needs a relay certificate, and this node's is for role {0}; enrol with a token made by `honeybee token create --role relay`"
    )]
    NotARelay(String),
    #[error(transparent)]
    Agent(#[from] AgentError),
}

/// What a relay counts.
#[derive(Debug, Default)]
pub struct RelayStats {
    pub flows_opened: AtomicU64,
    pub datagrams_up: AtomicU64,
    pub datagrams_down: AtomicU64,
    /// Datagrams dropped: oversized, over a cap, queue full, or no connection to the core.
    pub dropped: AtomicU64,
}

/// A running relay listener.
pub struct Relay {
    local: SocketAddr,
    stats: Arc<RelayStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Binds `listen` and forwards over whatever connection `core` holds.
    pub async fn start(
        listen: SocketAddr,
        limits: FlowLimits,
        core: watch::Receiver<Option<quinn::Connection>>,
    ) -> Result<Relay, RelayError> {
        let socket = UdpSocket::bind(listen)
            .await
            .map_err(|source| RelayError::Bind {
                addr: listen,
                source,
            })?;
        let local = socket.local_addr().map_err(|source| RelayError::Bind {
            addr: listen,
            source,
        })?;
        let stats = Arc::new(RelayStats::default());
        let task = tokio::spawn(forward(
            Arc::new(socket),
            FlowTable::new(limits),
            core,
            stats.clone(),
        ));
        tracing::info!(listen = %local, "relay listening for downstream nodes");
        Ok(Relay { local, stats, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn stats(&self) -> &RelayStats {
        &self.stats
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // Aborting the loop drops its flow tasks, which ends every flow stream.
        self.task.abort();
    }
}

/// Runs a relay agent until `shutdown` completes: the agent itself (its own services,
/// spool and connection) and the relay listener on `listen`.
pub async fn run(
    opts: AgentOptions,
    listen: SocketAddr,
    limits: FlowLimits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RelayError> {
    check_role(&opts.data_dir)?;
    let mut agent = Agent::start(opts).await?;
    let relay = match Relay::start(listen, limits, agent.core_connection()).await {
        Ok(r) => r,
        Err(e) => {
            let _ = agent.stop().await;
            return Err(e);
        }
    };
    let failed = tokio::select! {
        r = agent.wait() => Some(r),
        _ = shutdown => None,
    };
    drop(relay);
    let stopped = agent.stop().await;
    Ok(failed.unwrap_or(stopped)?)
}

/// A relay's own certificate must say `relay`; the core would refuse its flows anyway,
/// but the operator deserves to hear it here.
fn check_role(data_dir: &std::path::Path) -> Result<(), RelayError> {
    let paths = crate::config::AgentPaths::new(data_dir);
    let (_, cert, _) = crate::enroll::load_identity(&paths)
        .map_err(|e| RelayError::Agent(AgentError::Identity(e)))?;
    let id = honeybee_pki::identity::spiffe_id_from_cert(&cert)
        .map_err(|e| RelayError::Agent(AgentError::Identity(e.to_string())))?;
    if id.role != honeybee_proto::Role::Relay {
        return Err(RelayError::NotARelay(id.role.to_string()));
    }
    Ok(())
}

/// The relay's main loop: datagrams from the LAN into flows, flow ends, idle expiry.
async fn forward(
    socket: Arc<UdpSocket>,
    mut table: FlowTable,
    core: watch::Receiver<Option<quinn::Connection>>,
    stats: Arc<RelayStats>,
) {
    let mut senders: std::collections::HashMap<FlowId, mpsc::Sender<Vec<u8>>> =
        std::collections::HashMap::new();
    let mut tasks: JoinSet<(SocketAddr, FlowId)> = JoinSet::new();
    // One byte more than the largest datagram, to tell "too large" from "exactly fits".
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let mut sweep = tokio::time::interval(SWEEP);
    let mut refused_logged = Instant::now() - Duration::from_secs(60);
    loop {
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (n, from) = match r {
                    Ok(x) => x,
                    // ICMP errors surface here on Linux; nothing to do for them.
                    Err(_) => continue,
                };
                if n == 0 || n > MAX_DATAGRAM {
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let now = Instant::now();
                match table.admit(from, n, now) {
                    Admit::Existing(id) => {
                        let queued = senders
                            .get(&id)
                            .is_some_and(|tx| tx.try_send(buf[..n].to_vec()).is_ok());
                        if !queued {
                            stats.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Admit::New(id) => {
                        let conn = core.borrow().clone();
                        let Some(conn) = conn else {
                            // No core right now: drop; the node retries, and spools meanwhile.
                            table.ended(from, id);
                            stats.dropped.fetch_add(1, Ordering::Relaxed);
                            continue;
                        };
                        let (tx, rx) = mpsc::channel(FLOW_QUEUE);
                        let _ = tx.try_send(buf[..n].to_vec());
                        senders.insert(id, tx);
                        stats.flows_opened.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(downstream = %from, flow = id, "relay flow opened");
                        tasks.spawn(flow(conn, socket.clone(), from, id, rx, stats.clone()));
                    }
                    Admit::TooManyFlows | Admit::OverBudget(_) => {
                        stats.dropped.fetch_add(1, Ordering::Relaxed);
                        if now.duration_since(refused_logged) > Duration::from_secs(10) {
                            refused_logged = now;
                            tracing::warn!(downstream = %from, flows = table.len(), dropped = stats.dropped.load(Ordering::Relaxed), "relay limit reached; datagrams dropped");
                        }
                    }
                }
            }
            Some(done) = tasks.join_next() => {
                if let Ok((from, id)) = done {
                    table.ended(from, id);
                    senders.remove(&id);
                    tracing::info!(downstream = %from, flow = id, "relay flow closed");
                }
            }
            _ = sweep.tick() => {
                for (from, id) in table.expire(Instant::now()) {
                    // Dropping the sender ends the flow's upstream half, which finishes
                    // its stream; the core then forgets the flow.
                    senders.remove(&id);
                    tracing::info!(downstream = %from, flow = id, "relay flow idle; closed");
                }
            }
        }
    }
}

/// One flow: a stream to the core, datagrams both ways, until either side ends it.
async fn flow(
    conn: quinn::Connection,
    socket: Arc<UdpSocket>,
    from: SocketAddr,
    id: FlowId,
    mut rx: mpsc::Receiver<Vec<u8>>,
    stats: Arc<RelayStats>,
) -> (SocketAddr, FlowId) {
    let opened = tokio::time::timeout(OPEN_DEADLINE, conn.open_bi()).await;
    let Ok(Ok((mut send, mut recv))) = opened else {
        return (from, id);
    };
    if write_frame(&mut send, &FlowOpen { downstream: from }, FLOW_OPEN_LIMIT)
        .await
        .is_err()
    {
        return (from, id);
    }
    let up = async {
        let mut out = Vec::with_capacity(CHUNK);
        while let Some(d) = rx.recv().await {
            out.clear();
            let mut count = 1;
            let _ = encode_datagram(&d, &mut out);
            while out.len() < CHUNK {
                match rx.try_recv() {
                    Ok(more) => {
                        let _ = encode_datagram(&more, &mut out);
                        count += 1;
                    }
                    Err(_) => break,
                }
            }
            if send.write_all(&out).await.is_err() {
                return;
            }
            stats.datagrams_up.fetch_add(count, Ordering::Relaxed);
        }
        let _ = send.finish();
    };
    // Only ever back to this flow's own source.
    let down = async {
        let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
        loop {
            let chunk = match recv.read_chunk(CHUNK, true).await {
                Ok(Some(c)) => c,
                Ok(None) | Err(_) => return,
            };
            buf.extend_from_slice(&chunk.bytes);
            let Ok((ranges, used)) = split_datagrams(&buf) else {
                tracing::warn!(downstream = %from, "core sent a malformed relay datagram");
                return;
            };
            for r in ranges {
                if socket.send_to(&buf[r], from).await.is_ok() {
                    stats.datagrams_down.fetch_add(1, Ordering::Relaxed);
                }
            }
            buf.drain(..used);
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
    (from, id)
}
