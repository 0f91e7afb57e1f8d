//! The event bus: every newly stored event, offered to every matching subscription.
//!
//! Each module has one bounded queue. Publishing never waits: when a queue is full the
//! event is counted as missed for that module (and told to it), so a slow module never
//! slows ingest or the other modules. A module that stays full past `max_lag` misses is
//! flagged for disconnection.

use crate::modules::filter::CompiledFilter;
use honeybee_proto::NodeId;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::{Notify, mpsc};

/// One stored event as modules see it; its JSON is rendered once for every subscriber.
#[derive(Debug)]
pub struct BusEvent {
    pub node: NodeId,
    pub seq: u64,
    pub kind: &'static str,
    pub service: String,
    pub src_ip: Option<IpAddr>,
    pub labels: Arc<Vec<(String, String)>>,
    /// The ECS-named JSON document (`honeybee events --json` shape).
    pub json: Arc<str>,
}

impl BusEvent {
    /// A stored event as modules see it, `id` its row id (what `ingest::publish` builds
    /// for the events this core stores; the cluster's tailer for the other cores').
    pub fn from_stored(
        stored: &honeybee_proto::admin::StoredEvent,
        id: i64,
        labels: Arc<Vec<(String, String)>>,
    ) -> BusEvent {
        BusEvent {
            node: stored.node.clone(),
            seq: stored.event.seq,
            kind: stored.event.kind.name(),
            service: stored.event.service.clone(),
            src_ip: stored.event.src.map(|a| a.ip()),
            labels,
            json: crate::json::event_json_with_id(stored, id)
                .to_string()
                .into(),
        }
    }
}

/// An event on its way to one subscription.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub sub: u64,
    pub event: Arc<BusEvent>,
}

/// One module's queue and counters.
#[derive(Debug)]
pub struct ModuleQueue {
    tx: mpsc::Sender<Delivery>,
    capacity: usize,
    /// Missed since the module was last told.
    pub missed: AtomicU64,
    /// Missed in total.
    pub dropped: AtomicU64,
    /// Queued in total (the metrics' deliveries).
    pub delivered: AtomicU64,
    /// Consecutive misses without the queue draining.
    lagging: AtomicU64,
    max_lag: u64,
    pub lag_exceeded: AtomicBool,
    pub lag_notify: Notify,
}

impl ModuleQueue {
    pub fn new(capacity: usize, max_lag: u64) -> (Arc<ModuleQueue>, mpsc::Receiver<Delivery>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            Arc::new(ModuleQueue {
                tx,
                capacity: capacity.max(1),
                missed: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                delivered: AtomicU64::new(0),
                lagging: AtomicU64::new(0),
                max_lag,
                lag_exceeded: AtomicBool::new(false),
                lag_notify: Notify::new(),
            }),
            rx,
        )
    }

    /// Deliveries waiting in the queue.
    pub fn depth(&self) -> u64 {
        (self.capacity - self.tx.capacity()) as u64
    }

    fn offer(&self, d: Delivery) {
        match self.tx.try_send(d) {
            Ok(()) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
                self.lagging.store(0, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.missed.fetch_add(1, Ordering::Relaxed);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                let lag = self.lagging.fetch_add(1, Ordering::Relaxed) + 1;
                if lag > self.max_lag && !self.lag_exceeded.swap(true, Ordering::Relaxed) {
                    self.lag_notify.notify_one();
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

#[derive(Debug)]
struct Subscription {
    key: u64,
    sub: u64,
    filter: CompiledFilter,
    queue: Arc<ModuleQueue>,
}

#[derive(Debug, Default)]
pub struct EventBus {
    subs: RwLock<Vec<Subscription>>,
    next_key: AtomicU64,
}

impl EventBus {
    pub fn new() -> Self {
        EventBus::default()
    }

    /// Adds a subscription; returns the key to remove it with.
    pub fn subscribe(&self, sub: u64, filter: CompiledFilter, queue: Arc<ModuleQueue>) -> u64 {
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        self.subs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Subscription {
                key,
                sub,
                filter,
                queue,
            });
        key
    }

    pub fn unsubscribe(&self, key: u64) {
        self.subs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|s| s.key != key);
    }

    pub fn subscription_count(&self) -> usize {
        self.subs.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Offers events to every matching subscription; never blocks.
    pub fn publish(&self, events: &[Arc<BusEvent>]) {
        let subs = self.subs.read().unwrap_or_else(|p| p.into_inner());
        if subs.is_empty() {
            return;
        }
        for e in events {
            for s in subs.iter() {
                if s.filter.matches(e) {
                    s.queue.offer(Delivery {
                        sub: s.sub,
                        event: e.clone(),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &'static str) -> Arc<BusEvent> {
        Arc::new(BusEvent {
            node: NodeId::new("n1").unwrap(),
            seq: 1,
            kind,
            service: "ssh".into(),
            src_ip: Some("203.0.113.5".parse().unwrap()),
            labels: Arc::new(vec![("site".into(), "paris".into())]),
            json: "{}".into(),
        })
    }

    #[test]
    fn filters_and_counts_what_a_full_queue_misses() {
        let bus = EventBus::new();
        let (fast, mut fast_rx) = ModuleQueue::new(100, 1000);
        let (slow, _slow_rx) = ModuleQueue::new(2, 3);
        let only_auth = CompiledFilter::compile(&honeybee_proto::module::EventFilter {
            kinds: vec!["auth_attempt".into()],
            ..Default::default()
        })
        .unwrap();
        bus.subscribe(1, only_auth, fast.clone());
        bus.subscribe(7, CompiledFilter::default(), slow.clone());
        bus.publish(&[
            ev("connect"),
            ev("auth_attempt"),
            ev("auth_attempt"),
            ev("connect"),
            ev("connect"),
            ev("connect"),
        ]);
        assert_eq!(fast.depth(), 2);
        assert_eq!(fast_rx.try_recv().unwrap().sub, 1);
        assert_eq!(slow.depth(), 2);
        assert_eq!(slow.missed.load(Ordering::Relaxed), 4);
        assert!(slow.lag_exceeded.load(Ordering::Relaxed));
        assert!(!fast.lag_exceeded.load(Ordering::Relaxed));
    }
}
