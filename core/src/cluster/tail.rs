//! The module bus across cores: each core reads back, by id, the events the other cores
//! stored, and offers them to its own module subscriptions.
//!
//! The `events` table is the outbox (`store/postgres/outbox.rs`): its ids follow commit
//! order, so a cursor never skips a row, and each row's `origin` names the core that
//! stored it, so a core never offers again what its own ingest published (exactly once,
//! whichever core holds the node's lease meanwhile: a takeover moves the lease, not the
//! rows). The storing core's group transaction sends a notification (`events`) that is
//! delivered only after its commit; this loop wakes on it, or every [`POLL`] when
//! notifications are lost, waits [`SETTLE`] for the rest of a burst, and reads up to the
//! highest id in chunks of [`CHUNK`].
//!
//! Per-node order: within what one pass reads, events are offered ordered by (node,
//! seq). A node's batches are normally committed in the order it sent them (a
//! connection's streams are read in order and queued for one writer); when a later batch
//! of a node was committed in an earlier group than an earlier one *and* a pass fell
//! between the two commits, the earlier batch comes in a later pass: it is still
//! offered (nothing is dropped), and counted in `ClusterCounters::tail_late`.
//!
//! Bounds: one chunk in memory at a time; the bus's bounded queues and `missed` notices
//! apply unchanged. With no module subscribed the cursor jumps to the top unread.

use super::Cluster;
use crate::bus::BusEvent;
use crate::server::Shared;
use honeybee_proto::NodeId;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The fallback: a pass this often even with no notification.
pub const POLL: Duration = Duration::from_secs(1);
/// How long a pass waits after its wake-up, so one pass takes a burst of commits.
pub const SETTLE: Duration = Duration::from_millis(20);
/// Rows one read takes at most.
pub const CHUNK: i64 = 1000;
/// Nodes whose last offered sequence number is remembered (for `tail_late`) at most;
/// past it the memory starts afresh.
const LAST_SEQS: usize = 100_000;

/// The tailer's position and what it remembers of per-node order.
struct Cursor {
    after: i64,
    last_seq: HashMap<NodeId, u64>,
}

impl Cluster {
    /// Tails the other cores' events until the core stops.
    pub(super) async fn tail(self: Arc<Self>, shared: Arc<Shared>) {
        // Starts at the top: a module gets what is stored after it subscribes.
        let after = loop {
            match self.pg.events_top().await {
                Ok(top) => break top,
                Err(e) => {
                    tracing::warn!(error = %e, "module bus tail: reading the top event id");
                    tokio::time::sleep(POLL).await;
                }
            }
        };
        let mut cursor = Cursor {
            after,
            last_seq: HashMap::new(),
        };
        loop {
            if tokio::time::timeout(POLL, self.tail_wake.notified())
                .await
                .is_ok()
            {
                tokio::time::sleep(SETTLE).await;
            }
            if let Err(e) = self.tail_pass(&shared, &mut cursor).await {
                tracing::warn!(error = %e, "module bus tail: reading other cores' events");
            }
        }
    }

    /// Offers every event of another core stored after the cursor (up to the top read
    /// at the start of the pass) to this core's subscriptions.
    async fn tail_pass(
        &self,
        shared: &Shared,
        cursor: &mut Cursor,
    ) -> Result<(), crate::store::StoreError> {
        let top = self.pg.events_top().await?;
        if top <= cursor.after {
            return Ok(());
        }
        if shared.bus.subscription_count() == 0 {
            cursor.after = top;
            return Ok(());
        }
        let me = self.id.to_string();
        loop {
            let rows = self
                .pg
                .events_from_others(&me, cursor.after, top, CHUNK)
                .await?;
            let full = rows.len() as i64 == CHUNK;
            let next = match rows.last() {
                Some(r) if full => r.id,
                _ => top,
            };
            let mut labels: HashMap<NodeId, Arc<Vec<(String, String)>>> = HashMap::new();
            let mut events: Vec<Arc<BusEvent>> = rows
                .into_iter()
                .map(|r| {
                    let l = labels
                        .entry(r.event.node.clone())
                        .or_insert_with(|| Arc::new(r.labels))
                        .clone();
                    Arc::new(BusEvent::from_stored(&r.event, r.id, l))
                })
                .collect();
            // Stable: one node's events in sequence order, whichever groups held them.
            events.sort_by(|a, b| (&a.node, a.seq).cmp(&(&b.node, b.seq)));
            self.note_order(cursor, &events);
            self.counters
                .tailed
                .fetch_add(events.len() as u64, Ordering::Relaxed);
            shared.bus.publish(&events);
            cursor.after = next;
            if !full {
                return Ok(());
            }
        }
    }

    /// Counts events offered behind a later one of the same node (see the module doc).
    fn note_order(&self, cursor: &mut Cursor, events: &[Arc<BusEvent>]) {
        if cursor.last_seq.len() > LAST_SEQS {
            cursor.last_seq.clear();
        }
        for e in events {
            match cursor.last_seq.get_mut(&e.node) {
                Some(last) if *last >= e.seq => {
                    let n = self.counters.tail_late.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_power_of_two() {
                        tracing::warn!(node = %e.node, seq = e.seq, after = *last, count = n, "module bus tail: an event came after a later one of its node");
                    }
                }
                Some(last) => *last = e.seq,
                None => {
                    cursor.last_seq.insert(e.node.clone(), e.seq);
                }
            }
        }
    }
}
