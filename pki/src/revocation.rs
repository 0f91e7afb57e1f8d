//! The revocation denylist (by serial and by node id) that the TLS verifiers consult.
//!
//! The core owns persistence; this is the in-memory view shared between the store, the
//! listener's verifier and the live-connection sweep.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use honeybee_proto::ids::{NodeId, Serial};

#[derive(Debug, Default)]
struct Inner {
    serials: RwLock<HashSet<Serial>>,
    nodes: RwLock<HashSet<NodeId>>,
    /// Raised after every change (see [`RevocationList::generation`]).
    generation: AtomicU64,
}

/// A shared, thread-safe denylist. Clones share the same lists.
#[derive(Debug, Clone, Default)]
pub struct RevocationList {
    inner: Arc<Inner>,
}

// A panic while holding one of these locks cannot leave a HashSet half-updated in a way
// that matters (insert and contains are the only operations), so a poisoned lock is still
// safe to use; failing open or crashing the listener would both be worse.
fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl RevocationList {
    pub fn new() -> RevocationList {
        RevocationList::default()
    }

    pub fn revoke_serial(&self, serial: Serial) {
        write(&self.inner.serials).insert(serial);
        self.changed();
    }

    pub fn revoke_node(&self, node: NodeId) {
        write(&self.inner.nodes).insert(node);
        self.changed();
    }

    fn changed(&self) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// A number that grows with every change to the lists (entries are only ever
    /// added). A reader that took it before looking at the lists, and sees it unchanged
    /// later, knows nothing was added since it looked: the core's sweep skips its walk
    /// over the live connections then.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::SeqCst)
    }

    pub fn is_serial_revoked(&self, serial: &Serial) -> bool {
        read(&self.inner.serials).contains(serial)
    }

    pub fn is_node_revoked(&self, node: &NodeId) -> bool {
        read(&self.inner.nodes).contains(node)
    }

    /// Adds persisted entries (at start-up); existing entries stay.
    pub fn load(
        &self,
        serials: impl IntoIterator<Item = Serial>,
        nodes: impl IntoIterator<Item = NodeId>,
    ) {
        write(&self.inner.serials).extend(serials);
        write(&self.inner.nodes).extend(nodes);
        self.changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_between_clones() {
        let a = RevocationList::new();
        let b = a.clone();
        let n = NodeId::new("n1").unwrap();
        assert!(!b.is_node_revoked(&n));
        a.revoke_node(n.clone());
        a.revoke_serial(Serial([1; 16]));
        assert!(b.is_node_revoked(&n));
        assert!(b.is_serial_revoked(&Serial([1; 16])));
        assert!(!b.is_serial_revoked(&Serial([2; 16])));
        b.load([Serial([2; 16])], [NodeId::new("n2").unwrap()]);
        assert!(a.is_serial_revoked(&Serial([2; 16])));
        assert!(a.is_node_revoked(&NodeId::new("n2").unwrap()));
    }

    #[test]
    fn every_change_raises_the_generation_for_every_clone() {
        let a = RevocationList::new();
        let b = a.clone();
        let g0 = b.generation();
        assert_eq!(a.generation(), g0, "reading changes nothing");
        assert!(!a.is_node_revoked(&NodeId::new("n1").unwrap()));
        assert_eq!(b.generation(), g0);
        a.revoke_node(NodeId::new("n1").unwrap());
        let g1 = b.generation();
        assert!(g1 > g0);
        a.revoke_serial(Serial([1; 16]));
        let g2 = b.generation();
        assert!(g2 > g1);
        b.load([Serial([2; 16])], []);
        assert!(a.generation() > g2);
    }
}
