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
//! Per-node order: a node's batches can commit out of order on the storing core (a
//! later stream's batch reaching its group writer first), so what a pass reads is put in
//! (node, seq) order and goes through [`Reorder`]: an event that leaves a hole in its
//! node's sequence waits for it to fill, at most `reorder::HOLD`.
//!
//! Bounds: one chunk read at a time, at most `reorder::MAX_HELD` events waiting for a
//! hole; the bus's bounded queues and `missed` notices apply unchanged. With no module
//! subscribed the cursor jumps to the top unread and nothing is held.

use super::Cluster;
use super::reorder::{Counts, HOLD, Reorder};
use crate::bus::BusEvent;
use crate::server::Shared;
use honeybee_proto::NodeId;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The fallback: a pass this often even with no notification.
pub const POLL: Duration = Duration::from_secs(1);
/// How long a pass waits after its wake-up, so one pass takes a burst of commits.
pub const SETTLE: Duration = Duration::from_millis(20);
/// Rows one read takes at most.
pub const CHUNK: i64 = 1000;

impl Cluster {
    /// Tails the other cores' events until the core stops.
    pub(super) async fn tail(self: Arc<Self>, shared: Arc<Shared>) {
        // Starts at the top: a module gets what is stored after it subscribes.
        let mut after = loop {
            match self.pg.events_top().await {
                Ok(top) => break top,
                Err(e) => {
                    tracing::warn!(error = %e, "module bus tail: reading the top event id");
                    tokio::time::sleep(POLL).await;
                }
            }
        };
        let mut order = Reorder::default();
        loop {
            // While events wait for a hole, often enough to let them go on time.
            let wait = if order.held() > 0 { HOLD / 4 } else { POLL };
            if tokio::time::timeout(wait, self.tail_wake.notified())
                .await
                .is_ok()
            {
                tokio::time::sleep(SETTLE).await;
            }
            if let Err(e) = self.tail_pass(&shared, &mut after, &mut order).await {
                tracing::warn!(error = %e, "module bus tail: reading other cores' events");
            }
        }
    }

    /// Offers every event of another core stored after the cursor (up to the top read
    /// at the start of the pass) to this core's subscriptions, in per-node order.
    async fn tail_pass(
        &self,
        shared: &Shared,
        after: &mut i64,
        order: &mut Reorder,
    ) -> Result<(), crate::store::StoreError> {
        let top = self.pg.events_top().await?;
        // The correlating core reads every other core's events for its detector.
        let correlating = self.correlating();
        if shared.bus.subscription_count() == 0 && !correlating {
            *after = top.max(*after);
            order.clear();
            self.counters.tail_held.store(0, Ordering::Relaxed);
            return Ok(());
        }
        let mut counts = Counts::default();
        let mut out = Vec::new();
        let me = self.id.to_string();
        while top > *after {
            let rows = self.pg.events_from_others(&me, *after, top, CHUNK).await?;
            let full = rows.len() as i64 == CHUNK;
            let next = match rows.last() {
                Some(r) if full => r.id,
                _ => top,
            };
            if correlating {
                for r in &rows {
                    shared
                        .correlator
                        .offer(&r.event.node, std::iter::once(&r.event.event));
                }
            }
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
            events.sort_by(|a, b| (&a.node, a.seq).cmp(&(&b.node, b.seq)));
            order.push(events, Instant::now(), &mut out, &mut counts);
            self.offer(shared, &mut out);
            *after = next;
        }
        order.release(Instant::now(), &mut out, &mut counts);
        self.offer(shared, &mut out);
        let c = &self.counters;
        c.tail_held.store(order.held() as u64, Ordering::Relaxed);
        c.tail_skipped.fetch_add(counts.skipped, Ordering::Relaxed);
        if counts.late > 0 {
            let n = c.tail_late.fetch_add(counts.late, Ordering::Relaxed) + counts.late;
            tracing::warn!(
                late = counts.late,
                total = n,
                "module bus tail: events offered after a later one of their node"
            );
        }
        Ok(())
    }

    fn offer(&self, shared: &Shared, out: &mut Vec<Arc<BusEvent>>) {
        if out.is_empty() {
            return;
        }
        self.counters
            .tailed
            .fetch_add(out.len() as u64, Ordering::Relaxed);
        shared.bus.publish(out);
        out.clear();
    }
}
