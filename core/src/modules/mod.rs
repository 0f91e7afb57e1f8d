//! Modules: extensions in any language that subscribe to events, query, command nodes,
//! and publish alerts and enrichments. They connect over the TCP shim (`shim.rs`) or QUIC
//! (`honeybee-module/1`); `session.rs` serves both; `manager.rs` runs managed module
//! processes. The registry here is what `honeybee module list` shows.

pub mod filter;
pub mod manager;
pub mod quic;
pub mod session;
pub mod shim;

use crate::bus::ModuleQueue;
use honeybee_proto::module::Permission;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// A connected module.
#[derive(Debug)]
pub struct LiveModule {
    pub conn_id: u64,
    pub transport: &'static str,
    pub version: String,
    pub permissions: Vec<Permission>,
    pub queue: Arc<ModuleQueue>,
    pub subscriptions: Arc<AtomicU32>,
    /// Notified to make the session close (replaced by a newer connection, or unloaded).
    pub kick: Arc<Notify>,
    /// Its permissions come from a stored grant (a shim credential or a module
    /// certificate's), so revoking the module's grants closes it; false for the
    /// dashboard, whose certificate's role is its grant.
    pub by_grant: bool,
}

/// Connected modules by name: one connection per name, the newest wins.
#[derive(Debug, Default)]
pub struct ModuleRegistry {
    live: Mutex<HashMap<String, LiveModule>>,
    next: AtomicU64,
}

/// A snapshot of one connected module.
#[derive(Debug, Clone)]
pub struct LiveSnapshot {
    pub transport: &'static str,
    pub version: String,
    pub permissions: Vec<Permission>,
    pub subscriptions: u32,
    pub queue_depth: u64,
    pub dropped: u64,
    pub delivered: u64,
}

impl ModuleRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LiveModule>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection; an older one of the same name is told to close.
    pub fn register(&self, name: &str, mut m: LiveModule) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        m.conn_id = id;
        if let Some(old) = self.lock().insert(name.to_owned(), m) {
            old.kick.notify_one();
        }
        id
    }

    /// The notifier that closes connection `conn_id` of `name`.
    pub fn kick_handle(&self, name: &str, conn_id: u64) -> Option<Arc<Notify>> {
        self.lock()
            .get(name)
            .filter(|m| m.conn_id == conn_id)
            .map(|m| m.kick.clone())
    }

    pub fn unregister(&self, name: &str, conn_id: u64) {
        let mut live = self.lock();
        if live.get(name).is_some_and(|m| m.conn_id == conn_id) {
            live.remove(name);
        }
    }

    /// Whether a module of this name is connected.
    pub fn is_connected(&self, name: &str) -> bool {
        self.lock().contains_key(name)
    }

    /// The names of the connected modules whose permissions come from a stored grant.
    pub fn granted_names(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, m)| m.by_grant)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Closes the connection of `name` if its permissions come from a stored grant.
    pub fn kick_granted(&self, name: &str) -> bool {
        match self.lock().get(name) {
            Some(m) if m.by_grant => {
                m.kick.notify_one();
                true
            }
            _ => false,
        }
    }

    /// Closes the connection of `name`, if any.
    pub fn kick(&self, name: &str) -> bool {
        match self.lock().get(name) {
            Some(m) => {
                m.kick.notify_one();
                true
            }
            None => false,
        }
    }

    pub fn connected_count(&self) -> usize {
        self.lock().len()
    }

    pub fn snapshot(&self) -> HashMap<String, LiveSnapshot> {
        self.lock()
            .iter()
            .map(|(name, m)| {
                (
                    name.clone(),
                    LiveSnapshot {
                        transport: m.transport,
                        version: m.version.clone(),
                        permissions: m.permissions.clone(),
                        subscriptions: m.subscriptions.load(Ordering::Relaxed),
                        queue_depth: m.queue.depth(),
                        dropped: m.queue.dropped.load(Ordering::Relaxed),
                        delivered: m.queue.delivered.load(Ordering::Relaxed),
                    },
                )
            })
            .collect()
    }
}

/// Every module the core knows: managed ones (running or not) and connected external ones.
pub fn list(shared: &crate::server::Shared) -> Vec<honeybee_proto::admin::ModuleInfo> {
    use honeybee_proto::admin::ModuleInfo;
    let mut live = shared.modules.snapshot();
    let mut out = Vec::new();
    for (spec, st) in shared.manager.list() {
        let conn = live.remove(&spec.name);
        out.push(ModuleInfo {
            state: if conn.is_some() {
                "connected".into()
            } else {
                st.state.clone()
            },
            managed: true,
            transport: conn
                .as_ref()
                .map(|c| c.transport.to_owned())
                .unwrap_or_default(),
            version: conn.as_ref().map(|c| c.version.clone()).unwrap_or_default(),
            permissions: match &conn {
                Some(c) => c
                    .permissions
                    .iter()
                    .map(|p| p.as_str().to_owned())
                    .collect(),
                None => spec.permissions.clone(),
            },
            subscriptions: conn.as_ref().map_or(0, |c| c.subscriptions),
            queue_depth: conn.as_ref().map_or(0, |c| c.queue_depth),
            dropped: conn.as_ref().map_or(0, |c| c.dropped),
            pid: st.pid,
            restarts: st.restarts,
            last_exit: st.last_exit.clone(),
            log_tail: st.log_tail.iter().cloned().collect(),
            name: spec.name,
        });
    }
    for (name, c) in live {
        out.push(ModuleInfo {
            name,
            state: "connected".into(),
            managed: false,
            transport: c.transport.to_owned(),
            version: c.version,
            permissions: c
                .permissions
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
            subscriptions: c.subscriptions,
            queue_depth: c.queue_depth,
            dropped: c.dropped,
            pid: None,
            restarts: 0,
            last_exit: None,
            log_tail: Vec::new(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}
