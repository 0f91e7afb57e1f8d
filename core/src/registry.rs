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
        if let Some(old) = self.lock().insert(node, live) {
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
        if let Some(l) = self.lock().get_mut(node) {
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

    /// Closes every connection whose node or certificate is revoked, or whose certificate
    /// has expired. Returns the nodes cut off.
    pub fn sweep(&self, revocations: &RevocationList, now_ms: i64) -> Vec<NodeId> {
        let mut nodes = self.lock();
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
                    None
                }
            })
            .collect();
        for (id, code, why) in &doomed {
            if let Some(l) = nodes.remove(id) {
                l.conn.close((*code).into(), why.as_bytes());
            }
        }
        doomed.into_iter().map(|(id, _, _)| id).collect()
    }

    /// Closes every connection (shutdown).
    pub fn close_all(&self, code: u32, reason: &str) {
        for (_, l) in self.lock().drain() {
            l.conn.close(code.into(), reason.as_bytes());
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
}
