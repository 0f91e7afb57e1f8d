//! The ingest pipeline: what happens to events between the wire and the store, for
//! telemetry batches from nodes and for the events the core records itself.
//!
//! validate → event budget (backpressure) → scan correlation → store (deduplicated by
//! `(node, seq)`) → publish the newly stored ones to module subscriptions. Connection
//! handling (`node.rs`) reads the batch and sends the acknowledgement this returns;
//! the correlator and the core's own events come in through [`core_event`]. Nothing here
//! knows about streams or connections.

use crate::budget::Limit;
use crate::bus::BusEvent;
use crate::server::Shared;
use crate::store::{InsertOutcome, StoreError};
use honeybee_proto::NodeId;
use honeybee_proto::admin::StoredEvent;
use honeybee_proto::event::{Event, EventBatch, EventKind};
use honeybee_proto::session::BatchDecision;
use std::sync::Arc;
use tokio::sync::oneshot;

/// A telemetry batch's place in its connection's order of arrival.
///
/// A node's batches are read and stored concurrently (each stream on its own task, and
/// the PostgreSQL store commits several batches in one group, then wakes their callers in
/// any order), but modules must see a node's events in the order the node sent them: a
/// rule such as "first login attempt, then a success" depends on it. So each batch
/// publishes only once the batch before it on the connection has published or given up
/// its turn; dropping a `Turn` (a capture stream, a refused batch) passes it on.
pub struct Turn {
    after: Option<oneshot::Receiver<()>>,
    // Never sent: dropping it is what releases the next turn.
    _done: oneshot::Sender<()>,
}

impl Turn {
    /// The turn after the one `tail` holds; `tail` becomes this one. Streams are
    /// accepted in the order the node opened them, so taking turns at accept time
    /// follows the node's own order.
    pub fn next(tail: &mut Option<oneshot::Receiver<()>>) -> Turn {
        let (done, rx) = oneshot::channel();
        Turn {
            after: tail.replace(rx),
            _done: done,
        }
    }

    /// A turn nothing comes before (events that do not arrive on a connection).
    pub fn alone() -> Turn {
        Turn::next(&mut None)
    }

    /// Waits until every earlier turn has published or been dropped.
    async fn wait(&mut self) {
        if let Some(before) = self.after.take() {
            // An error only means the earlier turn was dropped: our turn all the same.
            let _ = before.await;
        }
    }
}

/// Why a batch was not taken.
#[derive(Debug)]
pub enum Refused {
    /// More than [`honeybee_proto::event::MAX_BATCH_EVENTS`]: the node broke the protocol's limit.
    TooManyEvents,
    /// The store failed: not the node's fault; it resends the unacknowledged batch.
    Store(StoreError),
}

/// Ingests one telemetry batch of `node`. Returns the sequence range to acknowledge
/// (`None` for an empty batch). Invalid events are dropped, audited at most once per
/// report interval, and acknowledged too: resending them would never succeed. Past the
/// node's event budget this waits before storing, and so delays the acknowledgement: an
/// honest burst is delayed, never lost, and a flood cannot take more than its share.
/// Newly stored events go to modules in `turn`'s order (see [`Turn`]).
pub async fn batch(
    shared: &Arc<Shared>,
    node: &NodeId,
    labels: &Arc<Vec<(String, String)>>,
    batch: EventBatch,
    mut turn: Turn,
) -> Result<Option<(u64, u64)>, Refused> {
    // What the session does with a batch (`honeybee_proto::session`): refuse it, ignore
    // it, or store it and acknowledge its whole sequence range once committed.
    let (first, last) = match honeybee_proto::session::decide(&batch) {
        BatchDecision::Close(_) => return Err(Refused::TooManyEvents),
        BatchDecision::Empty => return Ok(None),
        BatchDecision::Commit { first, last } => (first, last),
    };
    let total = batch.events.len();
    let valid: Vec<_> = batch
        .events
        .into_iter()
        .filter(|e| match e.validate() {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(%node, seq = e.seq, error = %err, "event refused");
                false
            }
        })
        .collect();
    if valid.len() != total {
        // At most one row per node per report interval: a node sending nothing but
        // invalid batches must not be able to grow the audit log at its own pace.
        if let Some(batches) =
            shared
                .budgets
                .report(node, Limit::InvalidEvents, std::time::Instant::now())
        {
            shared.audit(
                &format!("node:{node}"),
                "telemetry",
                "events refused",
                None,
                &format!(
                    "{} of {total} events in seq {first}..={last} were invalid; {batches} batches with invalid events since the last report",
                    total - valid.len()
                ),
            );
        }
    }
    let wait = shared
        .budgets
        .events(node, total as u64, std::time::Instant::now());
    if !wait.is_zero() {
        let budget = shared.budgets.config();
        shared.limit_reached(
            node,
            Limit::Events,
            format!(
                "sent events faster than {}/s (burst {}); batches held back, a batch of {total} by {} ms",
                budget.events_per_second,
                budget.event_burst,
                wait.as_millis()
            ),
        );
        tokio::time::sleep(wait).await;
    }
    let received_ms = crate::now_ms();
    // Probes for cross-node scan correlation; a resent batch only repeats what the
    // detector already counted within its window, which cannot make a scan of nothing.
    shared.correlator.offer(node, &valid);
    // Honey-credentials offered to a poisoner, and logins that use them (honeycred.rs).
    let honey_uses = shared
        .honey_creds
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .observe(node.as_str(), &valid);
    // Only copy the batch for the bus when someone listens.
    let for_bus = (shared.bus.subscription_count() > 0).then(|| valid.clone());
    let commit = shared.metrics.commit_start(total - valid.len());
    let outcome = shared
        .store
        .insert_events(node, received_ms, valid)
        .await
        .map_err(Refused::Store)?;
    commit.done(&outcome);
    if outcome.duplicates > 0 {
        tracing::debug!(%node, duplicates = outcome.duplicates, "duplicate events ignored");
    }
    turn.wait().await;
    if let Some(events) = for_bus {
        publish(shared, node, labels, received_ms, events, &outcome);
    }
    for (src, kind) in honey_uses {
        tracing::warn!(%node, src = ?src, "honey-credentials offered to a poisoner were used");
        core_event(shared, crate::correlator::SERVICE, src, kind).await;
    }
    drop(turn);
    Ok(Some((first, last)))
}

/// Stores an event the core records itself (pseudo-node `core`: cross-node scans,
/// budget breaches) and publishes it like a node's.
pub async fn core_event(
    shared: &Shared,
    service: &str,
    src: Option<std::net::SocketAddr>,
    kind: EventKind,
) {
    let node = NodeId::new(crate::correlator::CORE_NODE).expect("`core` is a valid node id");
    let seq = shared
        .core_seq
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .next_seq();
    let event = Event {
        seq,
        time_ms: crate::now_ms(),
        service: service.into(),
        session: None,
        src,
        dst: None,
        kind,
    };
    let received_ms = crate::now_ms();
    match shared
        .store
        .insert_events(&node, received_ms, vec![event.clone()])
        .await
    {
        Ok(outcome) if !outcome.new_seqs.is_empty() => publish(
            shared,
            &node,
            &Arc::new(Vec::new()),
            received_ms,
            vec![event],
            &outcome,
        ),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, service, "core event not stored"),
    }
}

/// Offers newly stored events (never resent duplicates) to module subscriptions.
fn publish(
    shared: &Shared,
    node: &NodeId,
    labels: &Arc<Vec<(String, String)>>,
    received_ms: i64,
    events: Vec<Event>,
    outcome: &InsertOutcome,
) {
    // seq -> store row id, for the events this call stored (never resent duplicates).
    let fresh: std::collections::HashMap<u64, i64> = outcome
        .new_seqs
        .iter()
        .copied()
        .zip(outcome.new_ids.iter().copied())
        .collect();
    let bus_events: Vec<Arc<BusEvent>> = events
        .into_iter()
        .filter_map(|e| fresh.get(&e.seq).map(|id| (*id, e)))
        .map(|(id, event)| {
            let stored = StoredEvent {
                node: node.clone(),
                received_ms,
                event,
                enrichments: Vec::new(),
            };
            Arc::new(BusEvent {
                node: node.clone(),
                seq: stored.event.seq,
                kind: stored.event.kind.name(),
                service: stored.event.service.clone(),
                src_ip: stored.event.src.map(|a| a.ip()),
                labels: labels.clone(),
                json: crate::json::event_json_with_id(&stored, id)
                    .to_string()
                    .into(),
            })
        })
        .collect();
    shared.bus.publish(&bus_events);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::ModuleQueue;
    use crate::modules::filter::CompiledFilter;
    use honeybee_proto::admin::EventQuery;

    fn connect(seq: u64) -> Event {
        Event {
            seq,
            time_ms: 1_000 + seq as i64,
            service: "ssh".into(),
            session: None,
            src: Some("203.0.113.7:40001".parse().unwrap()),
            dst: None,
            kind: EventKind::Connect,
        }
    }

    /// Two batches of one connection whose stores finish in the wrong order (the second
    /// is stored while the first has not even started, as a group commit can wake its
    /// callers in any order): modules still see the first batch's events first, and a
    /// dropped turn (a capture stream before them) holds nothing up.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_nodes_events_reach_modules_in_the_order_it_sent_them() {
        let (_dir, core) = crate::test_core("ingest.test").await;
        let shared = core.shared().clone();
        let (queue, mut rx) = ModuleQueue::new(16, 1000);
        shared.bus.subscribe(1, CompiledFilter::default(), queue);
        let node = NodeId::new("alpha").unwrap();
        let labels = Arc::new(Vec::new());

        let mut tail = None;
        let capture = Turn::next(&mut tail);
        let first = Turn::next(&mut tail);
        let second = Turn::next(&mut tail);
        drop(capture);
        let later = {
            let (shared, node, labels) = (shared.clone(), node.clone(), labels.clone());
            tokio::spawn(async move {
                let b = EventBatch {
                    events: vec![connect(3)],
                };
                batch(&shared, &node, &labels, b, second).await.unwrap()
            })
        };
        // The second batch is stored, and waits for its turn to publish.
        let stored = || async {
            shared
                .store
                .query_events(&EventQuery {
                    limit: 10,
                    ..EventQuery::default()
                })
                .await
                .unwrap()
                .len()
        };
        for _ in 0..500 {
            if stored().await == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(stored().await, 1, "the second batch was never stored");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(rx.try_recv().is_err(), "published before the first batch");
        assert!(!later.is_finished(), "acknowledged before the first batch");

        let b = EventBatch {
            events: vec![connect(1), connect(2)],
        };
        assert_eq!(
            batch(&shared, &node, &labels, b, first).await.unwrap(),
            Some((1, 2))
        );
        assert_eq!(later.await.unwrap(), Some((3, 3)));
        let order: Vec<u64> = (0..3).map(|_| rx.try_recv().unwrap().event.seq).collect();
        assert_eq!(order, [1, 2, 3]);
        core.shutdown().await;
    }
}
