//! The agent↔core session (`honeybee_proto::session`) on virtual time: one
//! `AgentSession` with an in-memory spool and one `CoreSession` with an in-memory store
//! of committed `(seq)`s, their messages carried by netsim's impairment model
//! ([`Link`], one per direction) — loss, delay and jitter, reordering, duplication,
//! partitions, core restarts — for many seeds, in milliseconds of real time.
//!
//! Each message is one datagram here, and a lost one is gone: harsher than QUIC, which
//! retransmits, so every loss exercises the acknowledgement stall, the reconnection and
//! the resend from the spool that the core must deduplicate.

use honeybee_netsim::model::{Impairment, Link, Loss, Partition, Probability};
use honeybee_netsim::rng::Rng;
use honeybee_proto::session::{AgentSession, BatchDecision, CoreSession};
use honeybee_proto::timing::Timing;
use std::collections::BTreeMap;
use std::time::Duration;

/// Virtual time advances in steps of this.
const STEP: Duration = Duration::from_millis(5);
/// Events per batch read from the spool (the real agent reads 512).
const BATCH: usize = 8;
/// Batches in flight (the real agent allows 32).
const WINDOW: usize = 4;

#[derive(Debug, Clone)]
enum Msg {
    Hello,
    Welcome { last_seq: u64 },
    Batch(Vec<u64>),
    Ack { first: u64, last: u64 },
}

/// A datagram of one connection: a restarted core or a reconnected agent ignores the
/// datagrams of an older one, as QUIC does.
#[derive(Debug, Clone)]
struct Pkt {
    conn: u64,
    msg: Msg,
}

impl AsRef<[u8]> for Pkt {
    fn as_ref(&self) -> &[u8] {
        &[0u8; 100]
    }
}

/// The agent's spool: unacknowledged events by sequence number.
#[derive(Default)]
struct Spool {
    events: BTreeMap<u64, ()>,
    last_seq: u64,
}

impl Spool {
    fn append(&mut self) -> u64 {
        self.last_seq += 1;
        self.events.insert(self.last_seq, ());
        self.last_seq
    }
    fn read_after(&self, after: u64, max: usize) -> Vec<u64> {
        self.events
            .range(after + 1..)
            .take(max)
            .map(|(s, _)| *s)
            .collect()
    }
    fn ack(&mut self, first: u64, last: u64) {
        let gone: Vec<u64> = self.events.range(first..=last).map(|(s, _)| *s).collect();
        for s in gone {
            self.events.remove(&s);
        }
    }
    fn ensure_after(&mut self, seq: u64) {
        self.last_seq = self.last_seq.max(seq);
    }
}

/// What happens to the link or the core at a virtual time.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Both directions partitioned for this long.
    Partition(Duration, Partition),
    /// The core process restarts: its session state is gone, its store is not.
    CoreRestart,
}

struct Scenario {
    imp: Impairment,
    faults: Vec<(Duration, Fault)>,
    events: u64,
    /// Events are appended one every this long from the start.
    every: Duration,
    max_time: Duration,
}

#[derive(Debug, Default)]
struct Outcome {
    /// Stored events: seq → times stored (must be 1 each).
    store: BTreeMap<u64, u32>,
    /// Events the core received again after storing them (deduplicated).
    duplicates: u64,
    /// Why each agent session closed.
    closes: Vec<String>,
    connections: u64,
    /// The welcomes' `last_seq`s, in order.
    welcomes: Vec<u64>,
    spool_left: usize,
    virtual_time: Duration,
    steps: u64,
}

fn run(s: &Scenario, timing: &Timing, seed: u64) -> Outcome {
    let mut up: Link<Pkt> = Link::new(s.imp.clone(), seed);
    let mut down: Link<Pkt> = Link::new(s.imp.clone(), seed ^ 0x5eed);
    let mut rng = Rng::new(seed.wrapping_mul(3));
    let mut out = Outcome::default();
    let mut spool = Spool::default();
    let mut appended = 0u64;
    let mut next_append = Duration::ZERO;

    // The core: the connection it serves, its session, and the durable store.
    let mut core_conn: Option<u64> = None;
    let mut core = CoreSession::new();

    // The agent: its session on connection `conn`, or when to reconnect.
    let mut conn = 0u64;
    let mut agent: Option<AgentSession> = None;
    let mut reconnect_at = Duration::ZERO;
    let mut backoff = timing.reconnect_min;

    let mut faults = s.faults.clone();
    faults.sort_by_key(|f| f.0);
    let mut faults = faults.into_iter().peekable();
    let mut heal_at: Option<Duration> = None;

    let mut now = Duration::ZERO;
    while now <= s.max_time {
        out.steps += 1;
        // Faults.
        while let Some((at, f)) = faults.peek().copied() {
            if at > now {
                break;
            }
            faults.next();
            match f {
                Fault::Partition(len, kind) => {
                    up.set_partition(now, Some(kind));
                    down.set_partition(now, Some(kind));
                    heal_at = Some(now + len);
                }
                Fault::CoreRestart => {
                    core_conn = None;
                    core = CoreSession::new();
                    // The restarted core sends a stateless reset to the agent's next datagram;
                    // here the agent's connection simply ends.
                    if let Some(a) = agent.as_mut() {
                        a.close("connection lost: the core restarted".into());
                    }
                }
            }
        }
        if heal_at.is_some_and(|h| now >= h) {
            up.set_partition(now, None);
            down.set_partition(now, None);
            heal_at = None;
        }

        // Services report events into the spool.
        while appended < s.events && now >= next_append {
            spool.append();
            appended += 1;
            next_append += s.every;
        }

        // The agent connects (hello) when it has no session.
        if agent.is_none() && now >= reconnect_at {
            conn += 1;
            out.connections += 1;
            agent = Some(AgentSession::new(now, timing).with_window(WINDOW));
            up.send(
                now,
                Pkt {
                    conn,
                    msg: Msg::Hello,
                },
            );
        }

        // The core takes what arrived.
        while let Some(p) = up.poll_transmit(now) {
            match p.msg {
                Msg::Hello => {
                    // A new connection: a fresh session for it.
                    core_conn = Some(p.conn);
                    core = CoreSession::new();
                    assert_eq!(core.on_control(true), Ok(true));
                    let last_seq =
                        CoreSession::welcome_last_seq(out.store.keys().next_back().copied());
                    down.send(
                        now,
                        Pkt {
                            conn: p.conn,
                            msg: Msg::Welcome { last_seq },
                        },
                    );
                }
                Msg::Batch(seqs) if core_conn == Some(p.conn) && core.is_welcomed() => {
                    match core.on_batch(seqs.iter().copied()) {
                        BatchDecision::Commit { first, last } => {
                            for seq in seqs {
                                let n = out.store.entry(seq).or_insert(0);
                                if *n > 0 {
                                    out.duplicates += 1;
                                } else {
                                    *n += 1;
                                }
                            }
                            // Acknowledged once committed.
                            down.send(
                                now,
                                Pkt {
                                    conn: p.conn,
                                    msg: Msg::Ack { first, last },
                                },
                            );
                        }
                        d => panic!("unexpected decision {d:?}"),
                    }
                }
                _ => {}
            }
        }

        // The agent takes what arrived.
        while let Some(p) = down.poll_transmit(now) {
            let Some(a) = agent.as_mut().filter(|_| p.conn == conn) else {
                continue;
            };
            match p.msg {
                Msg::Welcome { last_seq } => {
                    if let Some(after) = a.on_welcome(now, last_seq) {
                        spool.ensure_after(after);
                        out.welcomes.push(last_seq);
                        backoff = timing.reconnect_min;
                    }
                }
                Msg::Ack { first, last } if !a.is_closed() => {
                    let (f, l) = a.on_ack(now, first, last);
                    spool.ack(f, l);
                }
                _ => {}
            }
        }

        // The agent's deadlines, then its window.
        if let Some(a) = agent.as_mut() {
            a.handle_timeout(now);
            while let Some(after) = a.poll_transmit() {
                let seqs = spool.read_after(after, BATCH);
                let (Some(&first), Some(&last)) = (seqs.first(), seqs.last()) else {
                    break;
                };
                up.send(
                    now,
                    Pkt {
                        conn,
                        msg: Msg::Batch(seqs),
                    },
                );
                a.on_sent(now, first, last);
            }
            if let Some(why) = a.close_reason() {
                out.closes.push(why.to_owned());
                agent = None;
                let jitter = rng.next_u64() % (backoff.as_millis() as u64 / 2 + 1);
                reconnect_at = now + backoff + Duration::from_millis(jitter);
                backoff = (backoff * 2).min(timing.reconnect_max);
            }
        }

        if appended == s.events && spool.events.is_empty() && heal_at.is_none() {
            break;
        }
        now += STEP;
    }
    out.spool_left = spool.events.len();
    out.virtual_time = now;
    out
}

fn timing() -> Timing {
    Timing::compressed(30)
}

fn lossy(p: f64) -> Impairment {
    Impairment {
        delay: Duration::from_millis(20),
        jitter: Duration::from_millis(5),
        loss: Loss::Random(Probability::new(p).unwrap()),
        ..Impairment::default()
    }
}

/// Every event stored exactly once, the spool empty, and the numbering continuous.
fn assert_exactly_once(o: &Outcome, events: u64, seed: u64) {
    assert_eq!(o.spool_left, 0, "seed {seed}: spool not drained: {o:?}");
    assert_eq!(
        o.store.keys().copied().collect::<Vec<_>>(),
        (1..=events).collect::<Vec<_>>(),
        "seed {seed}: every event stored, in one numbering"
    );
    assert!(
        o.store.values().all(|n| *n == 1),
        "seed {seed}: stored more than once"
    );
    // Every welcome carries the core's highest stored seq, which only grows.
    assert!(
        o.welcomes.windows(2).all(|w| w[0] <= w[1]),
        "seed {seed}: welcomes went back: {:?}",
        o.welcomes
    );
}

const SEEDS: u64 = 200;

fn many(s: &Scenario) -> Vec<Outcome> {
    let t = timing();
    (0..SEEDS)
        .map(|seed| {
            let o = run(s, &t, seed);
            assert_exactly_once(&o, s.events, seed);
            o
        })
        .collect()
}

fn scenario(imp: Impairment, faults: Vec<(Duration, Fault)>) -> Scenario {
    Scenario {
        imp,
        faults,
        events: 300,
        every: Duration::from_millis(10),
        max_time: Duration::from_secs(600),
    }
}

#[test]
fn a_clean_link_delivers_everything_on_one_connection() {
    let outs = many(&scenario(Impairment::default(), vec![]));
    for o in outs {
        assert_eq!(o.connections, 1, "{:?}", o.closes);
        assert_eq!(o.duplicates, 0);
        assert_eq!(o.welcomes, vec![0]);
    }
}

#[test]
fn five_percent_loss_is_exactly_once() {
    let outs = many(&scenario(lossy(0.05), vec![]));
    let stalls = outs
        .iter()
        .flat_map(|o| &o.closes)
        .filter(|c| c.starts_with("no acknowledgement"))
        .count();
    assert!(
        stalls > 0,
        "loss without retransmission must stall sometimes"
    );
}

#[test]
fn thirty_percent_loss_is_exactly_once() {
    let outs = many(&scenario(lossy(0.30), vec![]));
    assert!(
        outs.iter().any(|o| o.duplicates > 0),
        "resends are deduplicated"
    );
    // A lost hello or welcome: the handshake deadline closes and the agent retries.
    assert!(
        outs.iter()
            .flat_map(|o| &o.closes)
            .any(|c| c == "no welcome within 333 ms")
    );
}

#[test]
fn the_ack_stall_closes_after_the_configured_time_with_its_reason() {
    // Everything the agent sends is lost from 100 ms on, for good.
    let t = timing();
    let s = scenario(
        Impairment::default(),
        vec![(
            Duration::from_millis(100),
            Fault::Partition(Duration::from_secs(3600), Partition::Drop),
        )],
    );
    let s = Scenario {
        max_time: Duration::from_secs(10),
        ..s
    };
    let o = run(&s, &t, 1);
    let first = o.closes.first().expect("the stall closed the session");
    assert_eq!(
        first,
        &format!(
            "no acknowledgement from the core for {} ms",
            t.ack_stall.as_millis()
        )
    );
    assert_eq!(first, "no acknowledgement from the core for 2000 ms");
    // Reconnections during the partition cannot be welcomed.
    assert!(
        o.closes[1..]
            .iter()
            .all(|c| c == "no welcome within 333 ms"),
        "{:?}",
        o.closes
    );
    // Nothing stored twice, nothing acknowledged that was not stored.
    assert!(o.store.values().all(|n| *n == 1));
    assert!(o.spool_left > 0);
}

#[test]
fn a_partition_longer_than_the_stall_resumes_from_last_seq() {
    for kind in [Partition::Drop, Partition::Hold] {
        let s = scenario(
            lossy(0.02),
            vec![(
                Duration::from_millis(1500),
                Fault::Partition(Duration::from_secs(8), kind),
            )],
        );
        for o in many(&s) {
            assert!(o.connections > 1, "{kind:?}: the stall reconnected");
            assert!(
                o.welcomes.iter().skip(1).any(|l| *l > 0),
                "{kind:?}: the reconnection was welcomed with the stored last_seq: {:?}",
                o.welcomes
            );
        }
    }
}

#[test]
fn core_restarts_lose_nothing_and_store_nothing_twice() {
    let s = scenario(
        lossy(0.05),
        vec![
            (Duration::from_millis(700), Fault::CoreRestart),
            (Duration::from_millis(1900), Fault::CoreRestart),
            (Duration::from_millis(2600), Fault::CoreRestart),
        ],
    );
    for o in many(&s) {
        assert!(
            o.closes
                .iter()
                .any(|c| c == "connection lost: the core restarted")
        );
        assert!(o.connections >= 4);
    }
}

#[test]
fn reordering_and_duplication_are_deduplicated() {
    let imp = Impairment {
        delay: Duration::from_millis(15),
        jitter: Duration::from_millis(10),
        reorder: Probability::new(0.2).unwrap(),
        duplicate: Probability::new(0.1).unwrap(),
        loss: Loss::Random(Probability::new(0.05).unwrap()),
        ..Impairment::default()
    };
    let outs = many(&scenario(imp, vec![]));
    assert!(outs.iter().any(|o| o.duplicates > 0));
}

#[test]
fn a_lost_spool_continues_above_the_cores_last_seq() {
    // The core already stores 1..=50 for this node; the agent starts with an empty spool.
    let t = timing();
    let mut store: BTreeMap<u64, u32> = (1..=50).map(|s| (s, 1)).collect();
    let mut spool = Spool::default();
    let mut a = AgentSession::new(Duration::ZERO, &t);
    let last = CoreSession::welcome_last_seq(store.keys().next_back().copied());
    spool.ensure_after(a.on_welcome(Duration::ZERO, last).unwrap());
    let fresh = spool.append();
    assert_eq!(fresh, 51, "not taken as a duplicate of an old event");
    let after = a.poll_transmit().unwrap();
    let seqs = spool.read_after(after, BATCH);
    assert_eq!(seqs, vec![51]);
    for s in seqs {
        assert!(store.insert(s, 1).is_none());
    }
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let s = scenario(
        lossy(0.3),
        vec![(Duration::from_millis(900), Fault::CoreRestart)],
    );
    let t = timing();
    let a = run(&s, &t, 42);
    let b = run(&s, &t, 42);
    assert_eq!(a.closes, b.closes);
    assert_eq!(a.steps, b.steps);
    assert_eq!(a.duplicates, b.duplicates);
}
