//! The UDP impairment proxy: the thin driver that runs the sans-IO [`model`](crate::model)
//! between real sockets. Clients send to the proxy's listen address; each client gets its
//! own [`Path`] (an impaired link each way, its own NAT) and its own upstream-facing
//! socket, so the server sees one source address per client — until the NAT rebinds and
//! that socket is replaced by one on a new port. Impairments, partitions and rebinding
//! change while it runs, through the [`Proxy`] handle.

use crate::model::{Impairment, LinkStats, Partition, Path};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Largest datagram the proxy reads; anything UDP can carry.
const MAX_DATAGRAM: usize = 65_535;
/// How often idle clients are looked for.
const IDLE_SWEEP: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    #[error("cannot bind the proxy's listen address {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the proxy has stopped")]
    Stopped,
}

/// How to run a proxy.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub listen: SocketAddr,
    pub upstream: SocketAddr,
    /// Client to upstream.
    pub up: Impairment,
    /// Upstream to client.
    pub down: Impairment,
    /// Replace each client's upstream-facing socket (a new source port) this often.
    pub rebind_every: Option<Duration>,
    /// Seeds every client's random streams (client k gets `seed + k`).
    pub seed: u64,
    /// Most clients at once; datagrams from further sources are dropped.
    pub max_clients: usize,
    /// A client silent both ways this long is forgotten, as a NAT forgets a mapping.
    pub client_idle: Duration,
}

impl ProxyConfig {
    /// A clean proxy from `listen` to `upstream`.
    pub fn new(listen: SocketAddr, upstream: SocketAddr) -> ProxyConfig {
        ProxyConfig {
            listen,
            upstream,
            up: Impairment::clean(),
            down: Impairment::clean(),
            rebind_every: None,
            seed: 0,
            max_clients: 1024,
            client_idle: Duration::from_secs(300),
        }
    }
}

/// What the proxy has done so far, summed over its clients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyStats {
    pub up: LinkStats,
    pub down: LinkStats,
    pub rebinds: u64,
    pub clients: usize,
    pub clients_refused: u64,
    pub send_errors: u64,
}

enum Control {
    Impair {
        up: Option<Box<Impairment>>,
        down: Option<Box<Impairment>>,
    },
    Partition(Option<Partition>),
    RebindEvery(Option<Duration>),
    RebindNow,
    Sync(oneshot::Sender<()>),
}

/// A running proxy. Dropping it stops the proxy.
pub struct Proxy {
    local_addr: SocketAddr,
    ctl: mpsc::UnboundedSender<Control>,
    stats: Arc<Mutex<ProxyStats>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

impl Proxy {
    /// Binds the listen address and starts forwarding.
    pub async fn start(cfg: ProxyConfig) -> Result<Proxy, ProxyError> {
        let listen = UdpSocket::bind(cfg.listen)
            .await
            .map_err(|source| ProxyError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let local_addr = listen.local_addr().map_err(|source| ProxyError::Bind {
            addr: cfg.listen,
            source,
        })?;
        let (ctl, ctl_rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Mutex::new(ProxyStats::default()));
        let task = tokio::spawn(Driver::new(Arc::new(listen), cfg, stats.clone()).run(ctl_rx));
        Ok(Proxy {
            local_addr,
            ctl,
            stats,
            task: Some(task),
        })
    }

    /// Where clients send to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    fn send(&self, c: Control) -> Result<(), ProxyError> {
        self.ctl.send(c).map_err(|_| ProxyError::Stopped)
    }

    /// Replaces the impairment of either direction (or both), for every client.
    pub fn set_impairment(
        &self,
        up: Option<Impairment>,
        down: Option<Impairment>,
    ) -> Result<(), ProxyError> {
        self.send(Control::Impair {
            up: up.map(Box::new),
            down: down.map(Box::new),
        })
    }

    /// Cuts both directions (`Some`) or heals them (`None`).
    pub fn partition(&self, p: Option<Partition>) -> Result<(), ProxyError> {
        self.send(Control::Partition(p))
    }

    pub fn heal(&self) -> Result<(), ProxyError> {
        self.partition(None)
    }

    /// Restarts every client's rebinding schedule with a new period (or none).
    pub fn rebind_every(&self, every: Option<Duration>) -> Result<(), ProxyError> {
        self.send(Control::RebindEvery(every))
    }

    /// Rebinds every client now.
    pub fn rebind_now(&self) -> Result<(), ProxyError> {
        self.send(Control::RebindNow)
    }

    /// Waits until every control message sent so far has been applied.
    pub async fn sync(&self) -> Result<(), ProxyError> {
        let (tx, rx) = oneshot::channel();
        self.send(Control::Sync(tx))?;
        rx.await.map_err(|_| ProxyError::Stopped)
    }

    pub fn stats(&self) -> ProxyStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Stops forwarding and closes every socket.
    pub async fn stop(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

/// One client: its path, and the socket that stands for it upstream.
struct Client {
    addr: SocketAddr,
    path: Path,
    sock: Arc<UdpSocket>,
    /// Bumped at each rebinding; datagrams read from an older socket are stale.
    generation: u64,
    reader: tokio::task::JoinHandle<()>,
    last_active: Duration,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// A datagram read from a client's upstream socket: (client, socket generation, bytes).
type FromUpstream = (u64, u64, Vec<u8>);

struct Driver {
    listen: Arc<UdpSocket>,
    cfg: ProxyConfig,
    start: Instant,
    clients: HashMap<u64, Client>,
    by_addr: HashMap<SocketAddr, u64>,
    next_id: u64,
    from_upstream: (mpsc::Sender<FromUpstream>, mpsc::Receiver<FromUpstream>),
    /// Link counters of forgotten clients, so totals never go backwards.
    retired: (LinkStats, LinkStats),
    partition: Option<Partition>,
    stats: Arc<Mutex<ProxyStats>>,
    rebinds: u64,
    refused: u64,
    send_errors: u64,
}

impl Driver {
    fn new(listen: Arc<UdpSocket>, cfg: ProxyConfig, stats: Arc<Mutex<ProxyStats>>) -> Driver {
        Driver {
            listen,
            cfg,
            start: Instant::now(),
            clients: HashMap::new(),
            by_addr: HashMap::new(),
            next_id: 0,
            from_upstream: mpsc::channel(4096),
            retired: Default::default(),
            partition: None,
            stats,
            rebinds: 0,
            refused: 0,
            send_errors: 0,
        }
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    async fn run(mut self, mut ctl: mpsc::UnboundedReceiver<Control>) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut next_sweep = IDLE_SWEEP;
        loop {
            let deadline = self
                .clients
                .values()
                .filter_map(|c| c.path.poll_timeout())
                .min()
                .unwrap_or(next_sweep)
                .min(next_sweep);
            let listen = self.listen.clone();
            tokio::select! {
                r = listen.recv_from(&mut buf) => {
                    // An error is an ICMP report about an earlier datagram; nothing to do.
                    if let Ok((n, from)) = r {
                        self.on_client_datagram(from, buf[..n].to_vec()).await;
                    }
                }
                Some((id, generation, data)) = self.from_upstream.1.recv() => {
                    let now = self.now();
                    if let Some(c) = self.clients.get_mut(&id).filter(|c| c.generation == generation) {
                        c.last_active = now;
                        c.path.down.send(now, data);
                    }
                }
                _ = tokio::time::sleep_until(self.start + deadline) => {}
                c = ctl.recv() => match c {
                    Some(c) => self.control(c).await,
                    None => return,
                },
            }
            let now = self.now();
            self.service(now).await;
            if now >= next_sweep {
                self.forget_idle(now);
                next_sweep = now + IDLE_SWEEP;
            }
            self.publish();
        }
    }

    async fn on_client_datagram(&mut self, from: SocketAddr, data: Vec<u8>) {
        let now = self.now();
        let id = match self.by_addr.get(&from) {
            Some(id) => *id,
            None => {
                if self.clients.len() >= self.cfg.max_clients {
                    self.refused += 1;
                    return;
                }
                match self.new_client(from, now).await {
                    Ok(id) => id,
                    Err(e) => {
                        tracing::warn!(client = %from, error = %e, "netsim proxy: cannot open an upstream socket");
                        self.send_errors += 1;
                        return;
                    }
                }
            }
        };
        if let Some(c) = self.clients.get_mut(&id) {
            c.last_active = now;
            c.path.up.send(now, data);
        }
    }

    async fn new_client(&mut self, addr: SocketAddr, now: Duration) -> std::io::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let mut path = Path::new(
            now,
            self.cfg.up.clone(),
            self.cfg.down.clone(),
            self.cfg.rebind_every,
            self.cfg.seed.wrapping_add(id),
        );
        if self.partition.is_some() {
            path.up.set_partition(now, self.partition);
            path.down.set_partition(now, self.partition);
        }
        let (sock, reader) = self.upstream_socket(id, 0).await?;
        self.clients.insert(
            id,
            Client {
                addr,
                path,
                sock,
                generation: 0,
                reader,
                last_active: now,
            },
        );
        self.by_addr.insert(addr, id);
        tracing::debug!(client = %addr, "netsim proxy: new client");
        Ok(id)
    }

    /// A fresh socket on a new ephemeral port, connected to the upstream, and the task
    /// that reads it.
    async fn upstream_socket(
        &self,
        id: u64,
        generation: u64,
    ) -> std::io::Result<(Arc<UdpSocket>, tokio::task::JoinHandle<()>)> {
        let bind: SocketAddr = if self.cfg.upstream.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let sock = Arc::new(UdpSocket::bind(bind).await?);
        sock.connect(self.cfg.upstream).await?;
        let tx = self.from_upstream.0.clone();
        let rx_sock = sock.clone();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            loop {
                match rx_sock.recv(&mut buf).await {
                    Ok(n) => {
                        if tx.send((id, generation, buf[..n].to_vec())).await.is_err() {
                            return;
                        }
                    }
                    // ICMP port unreachable while the upstream is down, and the like:
                    // keep reading, as a NAT keeps its mapping.
                    Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                }
            }
        });
        Ok((sock, reader))
    }

    async fn rebind(&mut self, id: u64) {
        let Some(generation) = self.clients.get(&id).map(|c| c.generation + 1) else {
            return;
        };
        match self.upstream_socket(id, generation).await {
            Ok((sock, reader)) => {
                if let Some(c) = self.clients.get_mut(&id) {
                    // The old mapping is gone: whatever arrives on it now is lost.
                    c.reader.abort();
                    c.sock = sock;
                    c.reader = reader;
                    c.generation = generation;
                    self.rebinds += 1;
                    tracing::debug!(client = %c.addr, port = c.sock.local_addr().map(|a| a.port()).unwrap_or(0), "netsim proxy: rebound");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "netsim proxy: rebinding failed");
                self.send_errors += 1;
            }
        }
    }

    async fn control(&mut self, c: Control) {
        let now = self.now();
        match c {
            Control::Impair { up, down } => {
                for c in self.clients.values_mut() {
                    if let Some(up) = &up {
                        c.path.up.set_impairment(
                            now,
                            Impairment {
                                partition: self.partition,
                                ..(**up).clone()
                            },
                        );
                    }
                    if let Some(down) = &down {
                        c.path.down.set_impairment(
                            now,
                            Impairment {
                                partition: self.partition,
                                ..(**down).clone()
                            },
                        );
                    }
                }
                if let Some(up) = up {
                    self.cfg.up = *up;
                }
                if let Some(down) = down {
                    self.cfg.down = *down;
                }
            }
            Control::Partition(p) => {
                self.partition = p;
                for c in self.clients.values_mut() {
                    c.path.up.set_partition(now, p);
                    c.path.down.set_partition(now, p);
                }
            }
            Control::RebindEvery(every) => {
                self.cfg.rebind_every = every;
                for c in self.clients.values_mut() {
                    c.path.rebinding.set(now, every);
                }
            }
            Control::RebindNow => {
                let ids: Vec<u64> = self.clients.keys().copied().collect();
                for id in ids {
                    self.rebind(id).await;
                }
            }
            Control::Sync(tx) => {
                let _ = tx.send(());
            }
        }
    }

    /// Rebinds what is due and sends every datagram whose time has come.
    async fn service(&mut self, now: Duration) {
        let due: Vec<u64> = self
            .clients
            .iter_mut()
            .filter_map(|(id, c)| c.path.rebinding.poll(now).then_some(*id))
            .collect();
        for id in due {
            self.rebind(id).await;
        }
        for c in self.clients.values_mut() {
            while let Some(p) = c.path.up.poll_transmit(now) {
                if c.sock.send(&p).await.is_err() {
                    self.send_errors += 1;
                }
            }
            while let Some(p) = c.path.down.poll_transmit(now) {
                if self.listen.send_to(&p, c.addr).await.is_err() {
                    self.send_errors += 1;
                }
            }
        }
    }

    fn forget_idle(&mut self, now: Duration) {
        let idle = self.cfg.client_idle;
        let gone: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| {
                now.saturating_sub(c.last_active) >= idle
                    && c.path.up.in_flight() == 0
                    && c.path.down.in_flight() == 0
            })
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            if let Some(c) = self.clients.remove(&id) {
                self.by_addr.remove(&c.addr);
                self.retired.0.add(&c.path.up.stats());
                self.retired.1.add(&c.path.down.stats());
                tracing::debug!(client = %c.addr, "netsim proxy: idle client forgotten");
            }
        }
    }

    fn publish(&self) {
        let mut up = self.retired.0;
        let mut down = self.retired.1;
        for c in self.clients.values() {
            up.add(&c.path.up.stats());
            down.add(&c.path.down.stats());
        }
        if let Ok(mut s) = self.stats.lock() {
            *s = ProxyStats {
                up,
                down,
                rebinds: self.rebinds,
                clients: self.clients.len(),
                clients_refused: self.refused,
                send_errors: self.send_errors,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Loss;

    async fn echo_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = s.local_addr().unwrap();
        let t = tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                let (n, from) = s.recv_from(&mut buf).await.unwrap();
                // Echo the payload and the source port the server saw.
                let mut out = buf[..n].to_vec();
                out.extend_from_slice(&from.port().to_be_bytes());
                s.send_to(&out, from).await.unwrap();
            }
        });
        (addr, t)
    }

    async fn roundtrip(c: &UdpSocket, msg: &[u8]) -> Option<(Vec<u8>, u16)> {
        c.send(msg).await.unwrap();
        let mut buf = vec![0u8; 2048];
        let n = tokio::time::timeout(Duration::from_millis(300), c.recv(&mut buf))
            .await
            .ok()?
            .unwrap();
        let port = u16::from_be_bytes([buf[n - 2], buf[n - 1]]);
        Some((buf[..n - 2].to_vec(), port))
    }

    #[tokio::test]
    async fn forwards_partitions_heals_and_rebinds() {
        let (upstream, _server) = echo_server().await;
        let proxy = Proxy::start(ProxyConfig::new("127.0.0.1:0".parse().unwrap(), upstream))
            .await
            .unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        c.connect(proxy.local_addr()).await.unwrap();

        let (echo, port1) = roundtrip(&c, b"one").await.expect("clean link forwards");
        assert_eq!(echo, b"one");

        proxy.partition(Some(Partition::Drop)).unwrap();
        proxy.sync().await.unwrap();
        assert!(roundtrip(&c, b"two").await.is_none(), "partition drops");
        proxy.heal().unwrap();
        let (_, port2) = roundtrip(&c, b"three").await.expect("healed");
        assert_eq!(port1, port2, "same mapping until a rebinding");

        proxy.rebind_now().unwrap();
        let (_, port3) = roundtrip(&c, b"four").await.expect("rebound");
        assert_ne!(port2, port3, "the server sees a new source port");

        proxy
            .set_impairment(
                Some(Impairment {
                    loss: Loss::Random(crate::model::Probability::ONE),
                    ..Default::default()
                }),
                None,
            )
            .unwrap();
        proxy.sync().await.unwrap();
        assert!(
            roundtrip(&c, b"five").await.is_none(),
            "total loss upstream"
        );
        let s = proxy.stats();
        assert_eq!(s.rebinds, 1);
        assert_eq!(s.clients, 1);
        assert_eq!(s.up.lost, 1);
        assert_eq!(s.up.dropped_partition, 1);
        proxy.stop().await;
    }

    #[tokio::test]
    async fn hold_partition_delivers_after_healing() {
        let (upstream, _server) = echo_server().await;
        let proxy = Proxy::start(ProxyConfig::new("127.0.0.1:0".parse().unwrap(), upstream))
            .await
            .unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        c.connect(proxy.local_addr()).await.unwrap();
        roundtrip(&c, b"hello").await.expect("forwards");
        proxy.partition(Some(Partition::Hold)).unwrap();
        proxy.sync().await.unwrap();
        assert!(roundtrip(&c, b"held").await.is_none());
        proxy.heal().unwrap();
        let mut buf = vec![0u8; 2048];
        let n = tokio::time::timeout(Duration::from_secs(2), c.recv(&mut buf))
            .await
            .expect("the held datagram arrives after healing")
            .unwrap();
        assert_eq!(&buf[..n - 2], b"held");
    }

    #[tokio::test]
    async fn delay_applies_each_way() {
        let (upstream, _server) = echo_server().await;
        let mut cfg = ProxyConfig::new("127.0.0.1:0".parse().unwrap(), upstream);
        cfg.up.delay = Duration::from_millis(40);
        cfg.down.delay = Duration::from_millis(40);
        let proxy = Proxy::start(cfg).await.unwrap();
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        c.connect(proxy.local_addr()).await.unwrap();
        let t = std::time::Instant::now();
        roundtrip(&c, b"x").await.expect("forwards");
        // A lower bound only: the model never delivers early.
        assert!(t.elapsed() >= Duration::from_millis(80));
    }
}
