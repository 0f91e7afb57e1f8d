//! Live node connections: who is online now, how to reach them, and how to cut them off.

use honeybee_pki::revocation::RevocationList;
use honeybee_proto::config::NodeConfig;
use honeybee_proto::control::{Command, CoreMsg, NodeMode};
use honeybee_proto::stream::close;
use honeybee_proto::{NodeId, Serial};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long an admin waits for a node to answer a command.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// One online node.
#[derive(Debug)]
pub struct LiveNode {
    /// Distinguishes this connection from a later one of the same node.
    pub conn_id: u64,
    pub conn: quinn::Connection,
    /// Messages for the node's control stream.
    pub tx: mpsc::Sender<CoreMsg>,
    pub serial: Serial,
    pub not_after_ms: i64,
    /// What the node said it is in its hello.
    pub mode: NodeMode,
    /// The relay this connection comes through, if any.
    pub via: Option<NodeId>,
    /// The agent version the node said in its hello, clamped.
    pub version: String,
}

/// How a live node is connected, for `honeybee nodes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivePath {
    pub mode: NodeMode,
    pub via: Option<NodeId>,
    pub version: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    #[error("node {0} is not online")]
    Offline(NodeId),
    #[error("node {0} did not answer within {1:?}")]
    Timeout(NodeId, Duration),
    #[error("node {0} went away before answering")]
    Gone(NodeId),
}

#[derive(Debug, Default)]
pub struct Registry {
    nodes: Mutex<HashMap<NodeId, LiveNode>>,
    /// Commands waiting for an answer, by id, with the node each was sent to: only that
    /// node's connection may answer it.
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    /// Answers refused because they came from a node the command was not sent to.
    foreign_results: AtomicU64,
    /// How long a command waits for its answer (`Timing::command_timeout`); zero: the
    /// production default, [`COMMAND_TIMEOUT`].
    command_timeout: Duration,
    /// The configurations live connections were sent, one copy per distinct
    /// configuration (see [`Registry::shared_config`]).
    configs: Mutex<HashMap<u64, Weak<NodeConfig>>>,
    /// What the sweep's last walk saw (locked after `nodes`, never before).
    swept: Mutex<SweepMark>,
}

/// What [`Registry::sweep`]'s last walk over the live connections saw. The next sweep
/// walks again only if it could cut something: the denylist changed (its generation,
/// read before the walk, moved), a connection came or renewed its certificate since,
/// or the earliest certificate among the connections has expired. Otherwise a walk
/// cuts nothing, and 10,000 connections every 500 ms are not walked for nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SweepMark {
    /// The denylist's generation read before the last walk; `None`: never walked.
    generation: Option<u64>,
    /// The earliest `not_after_ms` of the connections left after the last walk.
    earliest_expiry_ms: i64,
    /// A connection was added, or its certificate changed, since the last walk.
    changed: bool,
}

impl Default for SweepMark {
    fn default() -> Self {
        SweepMark {
            generation: None,
            earliest_expiry_ms: i64::MAX,
            changed: false,
        }
    }
}

impl SweepMark {
    fn must_walk(&self, generation: u64, now_ms: i64) -> bool {
        self.changed || self.generation != Some(generation) || self.earliest_expiry_ms <= now_ms
    }
}

/// Past this many remembered configurations, the ones no connection holds are dropped.
const CONFIGS_PRUNE_ABOVE: usize = 1024;

#[derive(Debug)]
struct Pending {
    node: NodeId,
    tx: oneshot::Sender<Result<String, String>>,
}

/// What became of a node's [`AgentMsg::CommandResult`](honeybee_proto::control::AgentMsg).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultOutcome {
    /// Handed to whoever waits for it.
    Delivered,
    /// No command with that id is waiting (answered already, timed out, or never sent).
    Unknown,
    /// The command was sent to another node: ignored, and the command stays pending for
    /// its own node's answer.
    WrongNode,
}

impl Registry {
    pub fn new() -> Self {
        Registry::default()
    }

    /// A registry whose commands wait `timeout` for their answer.
    pub fn with_command_timeout(timeout: Duration) -> Self {
        Registry {
            command_timeout: timeout,
            ..Registry::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, LiveNode>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `config` as a shared copy: most nodes of a fleet run the same configuration, and
    /// each connection keeps the one it was sent (what its health reports are assessed
    /// against), so 10,000 connections hold a handful of copies, not 10,000.
    pub fn shared_config(&self, config: NodeConfig) -> Arc<NodeConfig> {
        use std::hash::{Hash, Hasher};
        let Ok(bytes) = postcard::to_allocvec(&config) else {
            return Arc::new(config);
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        let key = h.finish();
        let mut configs = self.configs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(known) = configs.get(&key).and_then(Weak::upgrade)
            && *known == config
        {
            return known;
        }
        // Dead entries are dropped at each power of two past the threshold: amortised
        // constant work per insert, at most about twice the live entries kept.
        if configs.len() >= CONFIGS_PRUNE_ABOVE && configs.len().is_power_of_two() {
            configs.retain(|_, w| w.strong_count() > 0);
        }
        let config = Arc::new(config);
        configs.insert(key, Arc::downgrade(&config));
        config
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a node's connection; an older connection of the same node is closed, so
    /// there is one connection per node.
    pub fn insert(&self, node: NodeId, live: LiveNode) {
        let mut nodes = self.lock();
        self.mark_changed();
        if let Some(old) = nodes.insert(node, live) {
            old.conn
                .close(close::REPLACED.into(), b"replaced by a newer connection");
        }
    }

    /// Forgets `node` if `conn_id` is still its current connection.
    pub fn remove(&self, node: &NodeId, conn_id: u64) -> bool {
        let mut nodes = self.lock();
        if nodes.get(node).is_some_and(|l| l.conn_id == conn_id) {
            nodes.remove(node);
            return true;
        }
        false
    }

    pub fn is_online(&self, node: &NodeId) -> bool {
        self.lock().contains_key(node)
    }

    /// The mode and path of a node's live connection.
    pub fn live_path(&self, node: &NodeId) -> Option<LivePath> {
        self.lock().get(node).map(|l| LivePath {
            mode: l.mode,
            via: l.via.clone(),
            version: l.version.clone(),
        })
    }

    /// Closes a node's connection if it comes through a relay other than `allowed`
    /// (after its relay assignment changed). Returns whether one was closed.
    pub fn close_if_relayed_otherwise(&self, node: &NodeId, allowed: Option<&NodeId>) -> bool {
        let mut nodes = self.lock();
        let doomed = nodes
            .get(node)
            .is_some_and(|l| l.via.is_some() && l.via.as_ref() != allowed);
        if doomed && let Some(l) = nodes.remove(node) {
            l.conn.close(
                close::FORBIDDEN.into(),
                b"relay assignment changed; not allowed through this relay",
            );
        }
        doomed
    }

    /// Every live node's connection (remote upgrade sends on them).
    pub fn live_connections(&self) -> Vec<(NodeId, quinn::Connection)> {
        self.lock()
            .iter()
            .map(|(id, l)| (id.clone(), l.conn.clone()))
            .collect()
    }

    pub fn online_count(&self) -> usize {
        self.lock().len()
    }

    /// Closes a node's connection now.
    pub fn close(&self, node: &NodeId, code: u32, reason: &str) -> bool {
        match self.lock().remove(node) {
            Some(live) => {
                live.conn.close(code.into(), reason.as_bytes());
                true
            }
            None => false,
        }
    }

    /// Closes connection `conn_id` of `node` if it is still the node's current one (the
    /// cluster: its lease went to another core). Returns whether it was.
    pub fn close_if(&self, node: &NodeId, conn_id: u64, code: u32, reason: &str) -> bool {
        let mut nodes = self.lock();
        if nodes.get(node).is_none_or(|l| l.conn_id != conn_id) {
            return false;
        }
        if let Some(live) = nodes.remove(node) {
            live.conn.close(code.into(), reason.as_bytes());
        }
        true
    }

    /// Records a renewed certificate for a live node.
    pub fn update_cert(&self, node: &NodeId, serial: Serial, not_after_ms: i64) {
        let mut nodes = self.lock();
        self.mark_changed();
        if let Some(l) = nodes.get_mut(node) {
            l.serial = serial;
            l.not_after_ms = not_after_ms;
        }
    }

    /// Queues a control message for a node.
    pub fn send(&self, node: &NodeId, msg: CoreMsg) -> Result<(), SendError> {
        let tx = self
            .lock()
            .get(node)
            .map(|l| l.tx.clone())
            .ok_or_else(|| SendError::Offline(node.clone()))?;
        tx.try_send(msg).map_err(|_| SendError::Gone(node.clone()))
    }

    /// Sends a command and waits for the node's answer.
    pub async fn command(
        &self,
        node: &NodeId,
        command: Command,
    ) -> Result<Result<String, String>, SendError> {
        // Random ids: a node cannot guess which ids other nodes are being asked, and the
        // answer is checked against the node the command went to anyway.
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let mut id = rand::random::<u64>();
            while pending.contains_key(&id) {
                id = rand::random::<u64>();
            }
            pending.insert(
                id,
                Pending {
                    node: node.clone(),
                    tx,
                },
            );
            id
        };
        let sent = self.send(node, CoreMsg::Command { id, command });
        let wait = if self.command_timeout.is_zero() {
            COMMAND_TIMEOUT
        } else {
            self.command_timeout
        };
        let out = match sent {
            Err(e) => Err(e),
            Ok(()) => match tokio::time::timeout(wait, rx).await {
                Ok(Ok(r)) => Ok(r),
                Ok(Err(_)) => Err(SendError::Gone(node.clone())),
                Err(_) => Err(SendError::Timeout(node.clone(), wait)),
            },
        };
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        out
    }

    /// Delivers `from`'s answer to whoever is waiting for command `id`, if that command was
    /// sent to `from`. An answer from any other node is ignored and counted.
    pub fn command_result(
        &self,
        from: &NodeId,
        id: u64,
        result: Result<String, String>,
    ) -> ResultOutcome {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        match pending.get(&id) {
            None => ResultOutcome::Unknown,
            Some(p) if &p.node != from => {
                self.foreign_results.fetch_add(1, Ordering::Relaxed);
                ResultOutcome::WrongNode
            }
            Some(_) => {
                if let Some(p) = pending.remove(&id) {
                    let _ = p.tx.send(result);
                }
                ResultOutcome::Delivered
            }
        }
    }

    /// How many command answers came from a node the command was not sent to.
    pub fn foreign_results(&self) -> u64 {
        self.foreign_results.load(Ordering::Relaxed)
    }

    /// Called with `nodes` locked: a connection came or its certificate changed.
    fn mark_changed(&self) {
        self.swept.lock().unwrap_or_else(|p| p.into_inner()).changed = true;
    }

    /// Closes every connection whose node or certificate is revoked, or whose certificate
    /// has expired. Returns the nodes cut off. Walks the connections only when that can
    /// cut one (see `SweepMark`).
    pub fn sweep(&self, revocations: &RevocationList, now_ms: i64) -> Vec<NodeId> {
        // Read before the walk: a revocation after this moves it, and the next sweep
        // walks.
        let generation = revocations.generation();
        let mut nodes = self.lock();
        let mut swept = self.swept.lock().unwrap_or_else(|p| p.into_inner());
        if !swept.must_walk(generation, now_ms) {
            return Vec::new();
        }
        let mut earliest_expiry_ms = i64::MAX;
        let doomed: Vec<(NodeId, u32, &'static str)> = nodes
            .iter()
            .filter_map(|(id, l)| {
                if revocations.is_node_revoked(id) || revocations.is_serial_revoked(&l.serial) {
                    Some((id.clone(), close::REVOKED, "revoked"))
                } else if l.not_after_ms <= now_ms {
                    Some((
                        id.clone(),
                        close::REVOKED,
                        "certificate expired; enrol again",
                    ))
                } else {
                    earliest_expiry_ms = earliest_expiry_ms.min(l.not_after_ms);
                    None
                }
            })
            .collect();
        *swept = SweepMark {
            generation: Some(generation),
            earliest_expiry_ms,
            changed: false,
        };
        drop(swept);
        for (id, code, why) in &doomed {
            if let Some(l) = nodes.remove(id) {
                l.conn.close((*code).into(), why.as_bytes());
            }
        }
        doomed.into_iter().map(|(id, _, _)| id).collect()
    }

    /// Closes every connection (shutdown), with the reason `reason` makes for how many
    /// there are (the "come back" hint is sized to the fleet).
    pub fn close_all(&self, code: u32, reason: impl FnOnce(usize) -> Vec<u8>) {
        let live: Vec<_> = self.lock().drain().collect();
        let reason = reason(live.len());
        for (_, l) in live {
            l.conn.close(code.into(), &reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_sent_the_same_config_share_one_copy() {
        let r = Registry::new();
        let a = NodeConfig::default();
        let mut b = NodeConfig::default();
        b.services.push(honeybee_proto::config::ServiceConfig {
            name: "db".into(),
            listen: "127.0.0.1:3306".parse().expect("literal"),
            enabled: true,
            kind: honeybee_proto::config::ServiceKind::Mysql(Default::default()),
        });
        let (a1, a2) = (r.shared_config(a.clone()), r.shared_config(a.clone()));
        assert!(Arc::ptr_eq(&a1, &a2));
        let b1 = r.shared_config(b.clone());
        assert!(!Arc::ptr_eq(&a1, &b1));
        assert_eq!(*b1, b);
        // Once no connection holds it, a new copy is made (nothing is kept alive).
        drop((a1, a2));
        let a3 = r.shared_config(a);
        assert_eq!(Arc::strong_count(&a3), 1);
    }

    /// A loopback QUIC connection (the core's side), with both endpoints kept alive.
    async fn loopback_conn() -> (quinn::Endpoint, quinn::Endpoint, quinn::Connection) {
        honeybee_pki::install_crypto_provider();
        let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
        let cert = c.cert.der().clone();
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(c.signing_key.serialize_der());
        let server_cfg =
            quinn::ServerConfig::with_single_cert(vec![cert.clone()], key.into()).expect("cfg");
        let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let server = quinn::Endpoint::server(server_cfg, loopback).expect("server");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).expect("root");
        let mut client = quinn::Endpoint::client(loopback).expect("client");
        client.set_default_client_config(
            quinn::ClientConfig::with_root_certificates(Arc::new(roots)).expect("client cfg"),
        );
        let to = server.local_addr().expect("addr");
        let connecting = client.connect(to, "localhost").expect("connect");
        let (core_side, _client_side) = tokio::join!(
            async {
                server
                    .accept()
                    .await
                    .expect("incoming")
                    .await
                    .expect("accepted")
            },
            async { connecting.await.expect("connected") }
        );
        (server, client, core_side)
    }

    fn live(conn: quinn::Connection, conn_id: u64, serial: u8, not_after_ms: i64) -> LiveNode {
        LiveNode {
            conn_id,
            conn,
            tx: mpsc::channel(1).0,
            serial: Serial([serial; 16]),
            not_after_ms,
            mode: NodeMode::Full,
            via: None,
            version: String::new(),
        }
    }

    #[tokio::test]
    async fn the_sweep_walks_only_when_it_can_cut_and_still_cuts_at_once() {
        let r = Registry::new();
        let revocations = RevocationList::new();
        let (a, b, c): (NodeId, NodeId, NodeId) = (
            "a".parse().expect("id"),
            "b".parse().expect("id"),
            "c".parse().expect("id"),
        );
        let mut keep = Vec::new();
        for (i, (node, not_after)) in [(&a, 10_000), (&b, 20_000)].into_iter().enumerate() {
            let (s, cl, conn) = loopback_conn().await;
            keep.push((s, cl));
            r.insert(node.clone(), live(conn, i as u64, i as u8 + 1, not_after));
        }
        assert!(r.sweep(&revocations, 0).is_empty());
        let walked = *r.swept.lock().expect("lock");
        assert_eq!(walked.earliest_expiry_ms, 10_000);
        assert!(!walked.changed);
        // Nothing changed and nothing expired: the next sweeps do not walk (the mark
        // stays as the walk left it).
        for now in [1, 5_000, 9_999] {
            assert!(!walked.must_walk(revocations.generation(), now));
            assert!(r.sweep(&revocations, now).is_empty());
        }
        // A newly revoked node is cut by the very next sweep.
        revocations.revoke_node(b.clone());
        assert_eq!(r.sweep(&revocations, 9_999), std::slice::from_ref(&b));
        assert!(!r.is_online(&b));
        // So is a revoked serial.
        let (s, cl, conn) = loopback_conn().await;
        keep.push((s, cl));
        r.insert(c.clone(), live(conn, 7, 9, 30_000));
        assert!(r.sweep(&revocations, 9_999).is_empty(), "c walked, kept");
        revocations.revoke_serial(Serial([9; 16]));
        assert_eq!(r.sweep(&revocations, 9_999), std::slice::from_ref(&c));
        // An expiring certificate is cut when it expires, without any other change.
        assert!(r.sweep(&revocations, 9_999).is_empty());
        assert_eq!(r.sweep(&revocations, 10_000), std::slice::from_ref(&a));
        assert_eq!(r.online_count(), 0);
        // A connection that comes after the denylist changed and before the sweep that
        // sees the change (its handshake checked the old list) is walked too: an insert
        // forces the next walk.
        let (s, cl, conn) = loopback_conn().await;
        keep.push((s, cl));
        revocations.revoke_node(a.clone());
        assert!(r.sweep(&revocations, 10_000).is_empty());
        r.insert(a.clone(), live(conn, 8, 10, 50_000));
        assert_eq!(r.sweep(&revocations, 10_000), std::slice::from_ref(&a));
        // A renewed certificate is walked again (here: one already expired).
        let (s, cl, conn) = loopback_conn().await;
        keep.push((s, cl));
        r.insert(c.clone(), live(conn, 9, 11, 50_000));
        assert!(r.sweep(&revocations, 10_000).is_empty());
        r.update_cert(&c, Serial([12; 16]), 5_000);
        assert_eq!(r.sweep(&revocations, 10_000), [c]);
    }
}
