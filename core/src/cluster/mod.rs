//! Several cores on one PostgreSQL database: node leases and cross-core control.
//!
//! Each core process has an identity, [`CoreId`], kept in `<data-dir>/core.id` and held
//! for the life of the process by a session advisory lock on its LISTEN connection (a
//! second process with the same identity — a copied data directory — refuses to start).
//!
//! - **Leases** (`sql.rs`, table `node_leases`): one live connection per node fleet-wide.
//!   A core takes the node's lease when it welcomes the node (taking it over from any
//!   other core, with a fresh generation from a sequence), renews all of its leases in one
//!   statement every third of [`LEASE_TTL`], and deletes it when the connection ends —
//!   only if it is still its own generation, so a core never marks offline a node that
//!   has moved to another core. A core whose lease was taken closes its stale connection
//!   at once (notification) or at its next renewal (the lease is no longer its own).
//!   Leases not renewed in time (a crashed core) are deleted, and their nodes marked
//!   offline, by whichever core sweeps first.
//! - **Control** (`msg.rs`): revocation, configuration pushes, relay assignments, lease
//!   takeovers and node commands go through PostgreSQL's LISTEN/NOTIFY on one channel; a payload names what
//!   changed, the tables hold the data (`cluster_commands` for a command and its result).
//!   A revocation is also re-read from the denylist every few renewals, so a notification
//!   lost with the LISTEN connection still takes effect.
//!
//! - **Module bus** (`tail.rs`): each core offers its modules the events the other cores
//!   stored, read back from the `events` table by id, woken by the storing core's
//!   notification after its commit.
//!
//! - **Scan correlation** (`correlate.rs`): one core, holding an advisory lock, correlates
//!   for the cluster, fed with the other cores' events by its tail.
//! - **Module revocation**: `module-revoked <name>` makes the core a module is connected
//!   to re-read its grants and close it when none is left (and the grants of connected
//!   modules are re-read every third renewal).
//!
//! SQLite deployments have no cluster: one core, and none of this runs.

mod correlate;
mod msg;
mod reorder;
mod sql;
mod tail;

pub use msg::{CHANNEL, ClusterMsg, MAX_PAYLOAD, ParseError};

use crate::server::{CoreError, Shared};
use crate::store::postgres::listen::{Listener, Notice};
use crate::store::{PgStore, Store, StoreError};
use honeybee_proto::NodeId;
use honeybee_proto::admin::ClusterCoreInfo;
use honeybee_proto::control::Command;
use honeybee_proto::stream::close;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, oneshot};

/// How long a lease lives without renewal by default (`[store] lease_ttl`); renewed every
/// third of it.
pub const LEASE_TTL: Duration = Duration::from_secs(30);
/// Notifications waiting to be handled before the LISTEN connection drops them (and the
/// core resynchronises from the tables).
pub const NOTICE_QUEUE: usize = 4096;
/// Notifications handled at once (each may read the database or wait on a node).
pub const NOTICE_WORKERS: usize = 256;
/// Commands this core waits on other cores for at once.
pub const MAX_REMOTE_COMMANDS: usize = 256;
/// Command rows older than this are deleted (their origin gave up or crashed).
const COMMAND_ROW_AGE: Duration = Duration::from_secs(300);
/// The denylist is re-read every this many renewals.
const DENYLIST_EVERY: u64 = 3;
/// Distinguishes this crate's session advisory locks from the store's transaction locks.
const CORE_LOCK_NS: i64 = 0x4842_5f43_4f52_4500; // "HB_CORE\0"

/// A core process's identity in the cluster: 128 random bits, as 32 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CoreId(pub [u8; 16]);

impl CoreId {
    pub fn random() -> CoreId {
        CoreId(rand::random())
    }

    pub fn parse(s: &str) -> Option<CoreId> {
        let mut b = [0u8; 16];
        (s.len() == 32 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| hex::decode_to_slice(s, &mut b).ok())
            .flatten()?;
        Some(CoreId(b))
    }

    /// The key of the session advisory lock that says "this identity is running".
    fn lock_key(&self) -> i64 {
        i64::from_be_bytes(self.0[..8].try_into().expect("8 bytes")) ^ CORE_LOCK_NS
    }
}

impl std::fmt::Display for CoreId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// The file that holds a core's identity.
pub fn core_id_file(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("core.id")
}

/// This data directory's core identity, made on first use.
pub fn load_or_create_id(data_dir: &Path) -> Result<CoreId, CoreError> {
    let path = core_id_file(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(s) => CoreId::parse(s.trim()).ok_or_else(|| {
            CoreError::Other(format!(
                "{} does not hold a core id (32 hex digits); delete it to make a new one",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = CoreId::random();
            honeybee_pki::files::write_public(&path, format!("{id}\n").as_bytes())
                .map_err(|e| CoreError::Other(format!("cannot write {}: {e}", path.display())))?;
            Ok(id)
        }
        Err(e) => Err(CoreError::Other(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// One held lease: which connection it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    conn_id: u64,
    generation: i64,
}

/// Commands waiting for another core's answer, at most `cap`.
#[derive(Debug)]
struct Waiting {
    cap: usize,
    by_id: HashMap<i64, oneshot::Sender<()>>,
}

impl Waiting {
    fn new(cap: usize) -> Waiting {
        Waiting {
            cap,
            by_id: HashMap::new(),
        }
    }

    fn has_room(&self) -> bool {
        self.by_id.len() < self.cap
    }

    fn insert(&mut self, id: i64, tx: oneshot::Sender<()>) -> bool {
        if !self.has_room() {
            return false;
        }
        self.by_id.insert(id, tx);
        true
    }
}

/// Figures for logs and tests.
#[derive(Debug, Default)]
pub struct ClusterCounters {
    /// Connections closed because another core took the node's lease.
    pub stale_closed: AtomicU64,
    /// Notifications not understood.
    pub bad_notices: AtomicU64,
    /// Times notifications were dropped (queue full) and the core resynchronised.
    pub resyncs: AtomicU64,
    /// Other cores' events offered to this core's module subscriptions.
    pub tailed: AtomicU64,
    /// Of those, events offered after a later one of their node (`reorder.rs`).
    pub tail_late: AtomicU64,
    /// Holes in a node's sequence the tail stopped waiting for (`reorder.rs`).
    pub tail_skipped: AtomicU64,
    /// Events the tail holds now, waiting for a hole to fill (a gauge, set each pass).
    pub tail_held: AtomicU64,
}

/// This core's part in a cluster (PostgreSQL store only).
pub struct Cluster {
    pub id: CoreId,
    pg: PgStore,
    ttl: Duration,
    held: Mutex<HashMap<NodeId, Held>>,
    waiting: Mutex<Waiting>,
    /// Taken by [`Cluster::spawn`]; reopened by the notice loop when it drops.
    listener: Mutex<Option<Listener>>,
    /// This core's slot among the live cores: the low digits of the sequence numbers of
    /// the events it records itself (`correlator::SeqClock::in_slot`).
    pub slot: u16,
    pub counters: ClusterCounters,
    /// Wakes the module bus tailer: another core committed events.
    tail_wake: tokio::sync::Notify,
    /// This core correlates scans for the cluster (`correlate.rs`).
    correlating: std::sync::atomic::AtomicBool,
    /// The connection holding the correlator lock, while this core holds it.
    correlator_conn: tokio::sync::Mutex<Option<deadpool_postgres::Object>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn store_err(what: &str) -> impl FnOnce(StoreError) -> CoreError + '_ {
    move |e| CoreError::Other(format!("cluster: {what}: {e}"))
}

impl Cluster {
    /// Joins the cluster of a PostgreSQL store (`None` for SQLite): this core's identity,
    /// its LISTEN connection and identity lock, its row in `cores`, and the start-up
    /// cleanup of its own leases from an earlier run and of expired ones. Call before the
    /// denylist is loaded, so no revocation falls between the load and the LISTEN.
    pub async fn open(
        store: &Store,
        data_dir: &Path,
        listen: &str,
        advertise: &str,
        ttl: Duration,
    ) -> Result<Option<Arc<Cluster>>, CoreError> {
        let Store::Postgres(pg) = store else {
            return Ok(None);
        };
        let id = load_or_create_id(data_dir)?;
        let listener = connect(pg, id).await.map_err(|e| match e {
            Join::Store(e) => CoreError::Other(format!("cluster: LISTEN connection: {e}")),
            Join::InUse => CoreError::Other(format!(
                "core id {id} is in use by another running core: was this data directory \
                 copied from another core's? Delete {} to give this core an identity of its \
                 own",
                core_id_file(data_dir).display()
            )),
        })?;
        let slot = sql::register_core(pg, id, listen, advertise, ttl)
            .await
            .map_err(store_err("registering the core"))?
            .ok_or_else(|| {
                CoreError::Other(format!(
                    "cluster: {} cores are registered and live; no slot is left for this one",
                    crate::correlator::SeqClock::SLOTS
                ))
            })?;
        // Before this core stores any event: its rows carry its id, and its commits wake
        // the other cores' tailers.
        pg.set_origin(
            &id.to_string(),
            CHANNEL,
            &ClusterMsg::Events { origin: id }.encode(),
        );
        let offline = sql::start_up(pg, id, ttl)
            .await
            .map_err(store_err("start-up lease cleanup"))?;
        tracing::info!(core_id = %id, slot, nodes_marked_offline = offline, "joined the cluster");
        Ok(Some(Arc::new(Cluster {
            id,
            pg: pg.clone(),
            ttl,
            held: Mutex::new(HashMap::new()),
            waiting: Mutex::new(Waiting::new(MAX_REMOTE_COMMANDS)),
            listener: Mutex::new(Some(listener)),
            slot,
            counters: ClusterCounters::default(),
            tail_wake: tokio::sync::Notify::new(),
            correlating: std::sync::atomic::AtomicBool::new(false),
            correlator_conn: tokio::sync::Mutex::new(None),
        })))
    }

    /// Starts the notice loop and the renewal loop.
    pub fn spawn(self: &Arc<Self>, shared: &Arc<Shared>, tasks: &mut tokio::task::JoinSet<()>) {
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        tasks.spawn(self.clone().notices(listener, shared.clone()));
        tasks.spawn(self.clone().maintain(shared.clone()));
        tasks.spawn(self.clone().tail(shared.clone()));
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<NodeId, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes `node`'s lease for connection `conn_id` and marks the node online (see
    /// `sql::take`). Called when the node is welcomed, before it is registered.
    pub async fn take(
        &self,
        node: &NodeId,
        conn_id: u64,
        addr: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let taken = sql::take(&self.pg, self.id, node, self.ttl, addr, now_ms).await?;
        self.held().insert(
            node.clone(),
            Held {
                conn_id,
                generation: taken.generation,
            },
        );
        if let Some(from) = taken.from {
            tracing::info!(%node, from_core = %from, generation = taken.generation, "node lease taken over from another core");
        }
        Ok(())
    }

    /// Connection `conn_id` of `node` ended: its lease goes, and the node offline, if the
    /// lease is still this connection's.
    pub async fn release(&self, node: &NodeId, conn_id: u64, addr: &str, now_ms: i64) {
        let held = {
            let mut held = self.held();
            match held.get(node) {
                Some(h) if h.conn_id == conn_id => held.remove(node),
                _ => None,
            }
        };
        let Some(h) = held else {
            return;
        };
        if let Err(e) = sql::release(&self.pg, self.id, node, h.generation, addr, now_ms).await {
            // The lease expires on its own and the sweep marks the node offline.
            tracing::warn!(%node, error = %e, "could not release the node's lease");
        }
    }

    /// A clean shutdown: every lease of this core goes, its nodes offline, and its row.
    pub async fn shut_down(&self) {
        self.resign().await;
        self.held().clear();
        match sql::release_all(&self.pg, self.id).await {
            Ok(n) => tracing::info!(nodes_marked_offline = n, "cluster leases released"),
            Err(e) => tracing::warn!(error = %e, "could not release the cluster leases"),
        }
        let _ = sql::unregister_core(&self.pg, self.id).await;
    }

    /// Tells every core that `node` was revoked (this core has already cut it off).
    pub async fn revoked(&self, node: &NodeId) {
        let msg = ClusterMsg::Revoked { node: node.clone() };
        if let Err(e) = sql::notify(&self.pg, &msg).await {
            tracing::warn!(%node, error = %e, "could not notify the other cores of a revocation; they pick it up from the denylist");
        }
    }

    /// Tells every core that module `name`'s grants were revoked (this core has already
    /// closed its own connection of it, if any).
    pub async fn module_revoked(&self, name: &NodeId) {
        let msg = ClusterMsg::ModuleRevoked { name: name.clone() };
        if let Err(e) = sql::notify(&self.pg, &msg).await {
            tracing::warn!(module = %name, error = %e, "could not notify the other cores of a module revocation; they pick it up at their next grant check");
        }
    }

    /// Tells the core holding `node` that its configuration changed. Returns whether the
    /// node is connected to another core (which then pushes it).
    pub async fn config_changed(&self, node: &NodeId) -> bool {
        match sql::holder(&self.pg, node).await {
            Ok(Some((core, _))) if core != self.id => {
                let msg = ClusterMsg::Config { node: node.clone() };
                sql::notify(&self.pg, &msg).await.is_ok()
            }
            _ => false,
        }
    }

    /// Which core holds each node's live connection (unexpired leases only): what the
    /// admin API shows for nodes connected to another core.
    pub async fn holders(&self) -> Result<HashMap<NodeId, CoreId>, StoreError> {
        sql::holders(&self.pg).await
    }

    /// The cores of the cluster, from the `cores` table; this core's load is its live
    /// one, the others' as of their last heartbeat.
    pub async fn list(&self, shared: &Shared) -> Result<Vec<ClusterCoreInfo>, StoreError> {
        let me = self.id.to_string();
        let live = load_figures(shared);
        Ok(sql::list_cores(&self.pg)
            .await?
            .into_iter()
            .map(|r| {
                let this_core = r.id == me;
                let l = if this_core { live } else { r.load };
                ClusterCoreInfo {
                    this_core,
                    id: r.id,
                    listen: r.listen,
                    advertise: r.advertise,
                    version: r.version,
                    started_ms: r.started_ms,
                    heartbeat_age_ms: r.heartbeat_age_ms,
                    nodes: r.nodes.max(0) as u64,
                    connections: l.connections.max(0) as u64,
                    handshakes_per_s: l.handshakes_per_s,
                    ingest_events_per_s: l.ingest_per_s,
                    modules: l.modules.max(0) as u64,
                    module_queued: l.module_queued.max(0) as u64,
                }
            })
            .collect())
    }

    /// Tells every core that `node`'s relay assignment changed (the core holding it
    /// closes a connection through any other relay).
    pub async fn relay_changed(&self, node: &NodeId) {
        let msg = ClusterMsg::Relay { node: node.clone() };
        if let Err(e) = sql::notify(&self.pg, &msg).await {
            tracing::warn!(%node, error = %e, "could not notify the other cores of a relay assignment");
        }
    }

    /// Sends `command` to `node` through the core holding its lease and waits for the
    /// answer: the node's own `Result`, or why it could not be asked.
    pub async fn command(
        &self,
        node: &NodeId,
        command: &Command,
        wait: Duration,
    ) -> Result<Result<String, String>, String> {
        let offline = || format!("node {node} is not online");
        let target = match sql::holder(&self.pg, node).await {
            Ok(Some((core, _))) if core != self.id => core,
            Ok(_) => return Err(offline()),
            Err(e) => return Err(format!("store: {e}")),
        };
        let body = postcard::to_allocvec(command).map_err(|e| e.to_string())?;
        let (tx, rx) = oneshot::channel();
        if !self
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .has_room()
        {
            return Err(format!(
                "more than {MAX_REMOTE_COMMANDS} commands wait for other cores; retry later"
            ));
        }
        let mut tx = Some(tx);
        let queued = sql::command_queue(&self.pg, node, self.id, target, &body, |id| {
            if let Some(tx) = tx.take() {
                self.waiting
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, tx);
            }
        })
        .await;
        let id = queued.map_err(|e| format!("store: {e}"))?;
        // The holder's own command timeout runs inside this one.
        let answered = tokio::time::timeout(wait + Duration::from_secs(2), rx).await;
        self.waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_id
            .remove(&id);
        match answered {
            Ok(Ok(())) => {}
            // No room was left after all (another command took it first).
            Ok(Err(_)) => {
                let _ = sql::command_forget(&self.pg, id).await;
                return Err(format!(
                    "more than {MAX_REMOTE_COMMANDS} commands wait for other cores; retry later"
                ));
            }
            Err(_) => {
                let _ = sql::command_forget(&self.pg, id).await;
                return Err(format!(
                    "node {node} did not answer within {wait:?} (through core {target})"
                ));
            }
        }
        match sql::command_result(&self.pg, id, self.id).await {
            Ok(Some(bytes)) => {
                postcard::from_bytes::<Result<Result<String, String>, String>>(&bytes)
                    .map_err(|e| format!("unreadable answer from core {target}: {e}"))?
            }
            Ok(None) => Err(format!("core {target} gave no answer")),
            Err(e) => Err(format!("store: {e}")),
        }
    }

    /// Handles notifications until the core stops, reconnecting the LISTEN connection
    /// (and resynchronising) whenever it drops.
    async fn notices(self: Arc<Self>, mut listener: Option<Listener>, shared: Arc<Shared>) {
        let workers = Arc::new(Semaphore::new(NOTICE_WORKERS));
        let mut backoff = Duration::from_millis(250);
        loop {
            let Some(l) = listener.as_mut() else {
                tokio::time::sleep(backoff).await;
                match connect(&self.pg, self.id).await {
                    Ok(l) => {
                        tracing::info!("cluster LISTEN connection restored");
                        listener = Some(l);
                        backoff = Duration::from_millis(250);
                        self.resync(&shared).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cluster LISTEN connection: reconnecting");
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
                continue;
            };
            let payload = match l.rx.recv().await {
                Some(Notice::Payload(p)) => p,
                Some(Notice::Lost) => {
                    self.counters.resyncs.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("cluster notifications dropped (queue full); resynchronising");
                    self.resync(&shared).await;
                    continue;
                }
                None => {
                    tracing::warn!("cluster LISTEN connection lost; reconnecting");
                    listener = None;
                    continue;
                }
            };
            let msg = match ClusterMsg::parse(&payload) {
                Ok(m) => m,
                Err(e) => {
                    let n = self.counters.bad_notices.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_power_of_two() {
                        tracing::warn!(error = %e, count = n, "cluster notification not understood");
                    }
                    continue;
                }
            };
            if !self.concerns_me(&msg, &shared) {
                continue;
            }
            let Ok(permit) = workers.clone().acquire_owned().await else {
                return;
            };
            let (me, shared) = (self.clone(), shared.clone());
            tokio::spawn(async move {
                me.handle(msg, &shared).await;
                drop(permit);
            });
        }
    }

    /// Whether a notification asks anything of this core (checked in memory, so the
    /// notices of a fleet's reconnections cost other cores no database reads).
    fn concerns_me(&self, msg: &ClusterMsg, shared: &Shared) -> bool {
        match msg {
            ClusterMsg::Revoked { node } => {
                !shared.revocations.is_node_revoked(node) || shared.registry.is_online(node)
            }
            ClusterMsg::LeaseTaken { node, core, .. } => {
                *core != self.id && self.held().contains_key(node)
            }
            ClusterMsg::Config { node } | ClusterMsg::Relay { node } => {
                shared.registry.is_online(node)
            }
            ClusterMsg::Command { target, .. } => *target == self.id,
            ClusterMsg::ModuleRevoked { name } => shared.modules.is_connected(name.as_str()),
            // Not its own commits: those its ingest has published.
            ClusterMsg::Events { origin } => {
                if *origin != self.id {
                    self.tail_wake.notify_one();
                }
                false
            }
            ClusterMsg::CommandDone { id, origin } => {
                if *origin == self.id
                    && let Some(tx) = self
                        .waiting
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .by_id
                        .remove(id)
                {
                    let _ = tx.send(());
                }
                false
            }
        }
    }

    async fn handle(&self, msg: ClusterMsg, shared: &Arc<Shared>) {
        match msg {
            ClusterMsg::Revoked { node } => {
                // Only what the denylist says: a forged notification revokes nothing.
                match shared.store.get_node(&node).await {
                    Ok(Some(rec)) if rec.revoked => {
                        shared.revocations.revoke_node(node.clone());
                        if shared.registry.close(&node, close::REVOKED, "revoked") {
                            tracing::warn!(%node, "connection closed: revoked through another core");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(%node, error = %e, "revocation notice: store"),
                }
            }
            ClusterMsg::LeaseTaken { node, core, .. } => {
                let Some(mine) = self.held().get(&node).copied() else {
                    return;
                };
                match sql::holder(&self.pg, &node).await {
                    Ok(Some((c, g))) if c == self.id && g == mine.generation => {}
                    Ok(_) => self.lost(shared, &node, mine, &format!("core {core}")),
                    Err(e) => tracing::warn!(%node, error = %e, "lease notice: store"),
                }
            }
            ClusterMsg::Config { node } => {
                if let Ok(Some(rec)) = shared.store.get_node(&node).await {
                    let pushed = shared
                        .registry
                        .send(&node, honeybee_proto::control::CoreMsg::Config(rec.config))
                        .is_ok();
                    tracing::info!(%node, pushed, "configuration pushed for another core");
                }
            }
            ClusterMsg::Relay { node } => {
                if let Ok(Some(rec)) = shared.store.get_node(&node).await
                    && shared
                        .registry
                        .close_if_relayed_otherwise(&node, rec.via_relay.as_ref())
                {
                    tracing::info!(%node, "connection through a relay no longer assigned closed, for another core");
                }
            }
            ClusterMsg::Command { id, .. } => self.deliver(id, shared).await,
            ClusterMsg::ModuleRevoked { name } => cut_revoked_modules(shared, &[name]).await,
            ClusterMsg::CommandDone { .. } | ClusterMsg::Events { .. } => {}
        }
    }

    /// This core's lease of `node` is gone: its connection is stale and closes.
    fn lost(&self, shared: &Shared, node: &NodeId, mine: Held, to: &str) {
        {
            let mut held = self.held();
            if held.get(node) != Some(&mine) {
                return;
            }
            held.remove(node);
        }
        if shared.registry.close_if(
            node,
            mine.conn_id,
            close::REPLACED,
            "replaced by a connection to another core",
        ) {
            self.counters.stale_closed.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%node, to, "stale connection closed: the node's lease is held elsewhere");
        }
    }

    /// Runs a queued command on the node connected here and stores the answer.
    async fn deliver(&self, id: i64, shared: &Arc<Shared>) {
        let (node, body, origin) = match sql::command_take(&self.pg, id, self.id).await {
            Ok(Some(t)) => t,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(id, error = %e, "cross-core command: store");
                return;
            }
        };
        let answer: Result<Result<String, String>, String> =
            match postcard::from_bytes::<Command>(&body) {
                Ok(cmd) => shared
                    .registry
                    .command(&node, cmd)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(format!("command not understood by core {}: {e}", self.id)),
            };
        let bytes = match postcard::to_allocvec(&answer) {
            Ok(b) => b,
            Err(e) => return tracing::warn!(id, error = %e, "cross-core command: encode"),
        };
        if let Err(e) = sql::command_answer(&self.pg, id, origin, &bytes).await {
            tracing::warn!(id, error = %e, "cross-core command: storing the answer");
        }
    }

    /// After notifications may have been missed: the denylist is re-read (the sweep cuts
    /// what it names) and the leases renewed (the lost ones close).
    async fn resync(&self, shared: &Arc<Shared>) {
        self.tail_wake.notify_one();
        reload_denylist(shared).await;
        self.renew(shared).await;
    }

    /// Renews every held lease in one statement per [`sql::RENEW_CHUNK`]; connections whose
    /// lease is no longer theirs close.
    async fn renew(&self, shared: &Shared) {
        let snapshot: Vec<(NodeId, Held)> =
            self.held().iter().map(|(n, h)| (n.clone(), *h)).collect();
        let list: Vec<(NodeId, i64)> = snapshot
            .iter()
            .map(|(n, h)| (n.clone(), h.generation))
            .collect();
        match sql::renew(&self.pg, self.id, &list, self.ttl).await {
            Ok(kept) => {
                for (node, h) in snapshot {
                    if !kept.contains(&node) {
                        self.lost(shared, &node, h, "lease expired or taken over");
                    }
                }
            }
            // Kept as they are: the leases expire if this goes on, and then close here.
            Err(e) => tracing::warn!(error = %e, "renewing node leases failed"),
        }
        if let Err(e) = sql::publish_load(&self.pg, self.id, &load_figures(shared)).await {
            tracing::debug!(error = %e, "publishing this core's load failed");
        }
    }

    /// Every third of the lease time: renew, expire others' dead leases, prune command
    /// rows, and now and then re-read the denylist.
    async fn maintain(self: Arc<Self>, shared: Arc<Shared>) {
        let mut tick = tokio::time::interval(self.ttl / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n = 0u64;
        loop {
            tick.tick().await;
            n += 1;
            self.renew(&shared).await;
            if shared.cfg.scan_correlation.is_some() {
                self.elect().await;
            }
            match sql::expire(&self.pg, self.id).await {
                Ok(0) => {}
                Ok(k) => tracing::warn!(
                    nodes = k,
                    "node leases expired (their core stopped renewing); marked offline"
                ),
                Err(e) => tracing::warn!(error = %e, "expiring node leases failed"),
            }
            let _ = sql::commands_prune(&self.pg, COMMAND_ROW_AGE).await;
            if n.is_multiple_of(DENYLIST_EVERY) {
                reload_denylist(&shared).await;
                // A module revocation whose notification was lost.
                let names: Vec<NodeId> = shared
                    .modules
                    .granted_names()
                    .into_iter()
                    .filter_map(|n| NodeId::new(n).ok())
                    .collect();
                cut_revoked_modules(&shared, &names).await;
            }
        }
    }
}

/// Closes this core's connection of each module in `names` that the store says has no
/// unrevoked grant left. Only the store decides: a forged notification cuts nothing.
async fn cut_revoked_modules(shared: &Shared, names: &[NodeId]) {
    for name in names {
        match shared.store.module_permissions(name.as_str()).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                if shared.modules.kick_granted(name.as_str()) {
                    tracing::warn!(module = %name, "module connection closed: its grants were revoked through another core");
                }
            }
            Err(e) => tracing::warn!(module = %name, error = %e, "module revocation: store"),
        }
    }
}

/// This core's load as the `cores` table keeps it (`honeybee status` / `cores` on any
/// core).
fn load_figures(shared: &Shared) -> sql::Load {
    let l = crate::metrics::load(shared);
    sql::Load {
        connections: l.connections as i64,
        handshakes_per_s: l.handshakes_per_s,
        ingest_per_s: l.ingest_events_per_s,
        modules: l.module_queues.len() as i64,
        module_queued: l.module_queues.iter().map(|(_, d)| *d as i64).sum(),
    }
}

/// Adds the stored denylist to the in-memory one (the revocation sweep then closes what it
/// names).
async fn reload_denylist(shared: &Shared) {
    match shared.store.revoked().await {
        Ok((serials, nodes)) => shared.revocations.load(serials, nodes),
        Err(e) => tracing::warn!(error = %e, "re-reading the denylist failed"),
    }
}

#[derive(Debug, thiserror::Error)]
enum Join {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("this core's identity is held by another running process")]
    InUse,
}

impl From<tokio_postgres::Error> for Join {
    fn from(e: tokio_postgres::Error) -> Join {
        Join::Store(e.into())
    }
}

/// Opens the LISTEN connection and takes this identity's session lock on it.
async fn connect(pg: &PgStore, id: CoreId) -> Result<Listener, Join> {
    let l = pg.listen(CHANNEL, NOTICE_QUEUE).await?;
    let locked: bool = l
        .client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&id.lock_key()])
        .await?
        .get(0);
    if !locked {
        return Err(Join::InUse);
    }
    Ok(l)
}

#[cfg(test)]
mod tests;
