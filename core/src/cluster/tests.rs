//! The cluster's statements on a real PostgreSQL (`pg_test_server`), two core identities
//! on one database: leases taken over, renewed, released and expired without one core
//! ever marking the other's nodes offline; the LISTEN queue's bound; the identity lock.

use super::*;
use crate::store::pg_test_server;
use crate::store::{NodeRecord, PgStore};
use honeybee_proto::config::NodeConfig;
use honeybee_proto::{Role, Serial};

async fn fresh() -> PgStore {
    let url = tokio::task::spawn_blocking(pg_test_server::fresh_database)
        .await
        .unwrap();
    PgStore::open(&url, Some(pg_test_server::PASSWORD))
        .await
        .unwrap()
}

fn n(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

async fn add_node(pg: &PgStore, id: &str) {
    pg.upsert_node(NodeRecord {
        id: n(id),
        name: id.into(),
        role: Role::Agent,
        labels: vec![],
        serial: Serial([7; 16]),
        cert_not_after_ms: i64::MAX,
        first_seen_ms: 1,
        last_seen_ms: 1,
        addr: None,
        online: false,
        revoked: false,
        health: None,
        config: NodeConfig::default(),
        via_relay: None,
    })
    .await
    .unwrap();
}

async fn online(pg: &PgStore, id: &str) -> bool {
    pg.get_node(&n(id)).await.unwrap().unwrap().online
}

const TTL: Duration = Duration::from_secs(30);

#[tokio::test]
async fn leases_move_between_cores_and_only_the_holder_marks_a_node_offline() {
    let pg = fresh().await;
    let (a, b) = (CoreId::random(), CoreId::random());
    add_node(&pg, "n1").await;
    add_node(&pg, "n2").await;

    let ta = sql::take(&pg, a, &n("n1"), TTL, "192.0.2.1:1", 10)
        .await
        .unwrap();
    assert_eq!(ta.from, None);
    assert!(online(&pg, "n1").await);
    assert_eq!(
        sql::holder(&pg, &n("n1")).await.unwrap(),
        Some((a, ta.generation))
    );

    // The node reconnects to core B: B takes the lease over and learns from whom.
    let tb = sql::take(&pg, b, &n("n1"), TTL, "192.0.2.1:2", 20)
        .await
        .unwrap();
    assert_eq!(tb.from, Some(a));
    assert!(tb.generation > ta.generation);
    // A's renewal no longer keeps it: A's connection is stale.
    let kept = sql::renew(&pg, a, &[(n("n1"), ta.generation)], TTL)
        .await
        .unwrap();
    assert!(kept.is_empty());
    let kept = sql::renew(&pg, b, &[(n("n1"), tb.generation)], TTL)
        .await
        .unwrap();
    assert!(kept.contains(&n("n1")));
    // A's stale connection ends: the node stays online (B holds it).
    assert!(
        !sql::release(&pg, a, &n("n1"), ta.generation, "x", 30)
            .await
            .unwrap()
    );
    assert!(online(&pg, "n1").await);
    // A restarts and shuts down: B's node is untouched both times.
    assert_eq!(sql::start_up(&pg, a, TTL).await.unwrap(), 0);
    assert_eq!(sql::release_all(&pg, a).await.unwrap(), 0);
    assert!(online(&pg, "n1").await);
    // A's own node goes offline when A restarts after a crash.
    sql::take(&pg, a, &n("n2"), TTL, "192.0.2.2:1", 40)
        .await
        .unwrap();
    assert!(online(&pg, "n2").await);
    assert_eq!(sql::start_up(&pg, a, TTL).await.unwrap(), 1);
    assert!(!online(&pg, "n2").await);
    assert!(online(&pg, "n1").await);
    // B's connection ends: now the node is offline.
    assert!(
        sql::release(&pg, b, &n("n1"), tb.generation, "x", 50)
            .await
            .unwrap()
    );
    assert!(!online(&pg, "n1").await);
    assert_eq!(sql::holder(&pg, &n("n1")).await.unwrap(), None);
    pg.close().await.unwrap();
}

#[tokio::test]
async fn a_node_online_without_a_lease_goes_offline_only_when_no_other_core_lives() {
    let pg = fresh().await;
    let (a, b) = (CoreId::random(), CoreId::random());
    add_node(&pg, "n1").await;
    pg.set_node_online(&n("n1"), true, None, 1).await.unwrap();
    // Another core is alive: it may be about to lease n1; left alone.
    sql::register_core(&pg, b, "127.0.0.1:1", "127.0.0.1:1", TTL)
        .await
        .unwrap();
    assert_eq!(sql::start_up(&pg, a, TTL).await.unwrap(), 0);
    assert!(online(&pg, "n1").await);
    // Alone: the stale mark goes.
    sql::unregister_core(&pg, b).await.unwrap();
    assert_eq!(sql::start_up(&pg, a, TTL).await.unwrap(), 1);
    assert!(!online(&pg, "n1").await);
    pg.close().await.unwrap();
}

#[tokio::test]
async fn a_lease_not_renewed_expires_and_its_node_goes_offline() {
    let pg = fresh().await;
    let (a, b) = (CoreId::random(), CoreId::random());
    add_node(&pg, "n1").await;
    add_node(&pg, "n2").await;
    // Core A "crashes" holding n1 with a lease that lapses at once; B's lease of n2 lives.
    let short = Duration::from_millis(1);
    sql::take(&pg, a, &n("n1"), short, "x", 1).await.unwrap();
    let t2 = sql::take(&pg, b, &n("n2"), TTL, "y", 1).await.unwrap();
    // Wait (bounded) until the database's clock is past the short lease.
    for _ in 0..100 {
        if sql::holder(&pg, &n("n1")).await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sql::expire(&pg, b).await.unwrap(), 1);
    assert!(!online(&pg, "n1").await);
    assert!(online(&pg, "n2").await);
    let kept = sql::renew(&pg, b, &[(n("n2"), t2.generation)], TTL)
        .await
        .unwrap();
    assert_eq!(kept.len(), 1);
    pg.close().await.unwrap();
}

#[tokio::test]
async fn renewal_goes_in_chunks_and_keeps_only_the_current_generation() {
    let pg = fresh().await;
    let a = CoreId::random();
    let mut held = Vec::new();
    for i in 0..(sql::RENEW_CHUNK + 5) {
        held.push((n(&format!("n{i}")), 0i64));
    }
    // No leases at all: nothing is kept, whatever the count (two statements).
    assert!(sql::renew(&pg, a, &held, TTL).await.unwrap().is_empty());
    add_node(&pg, "n3").await;
    let t = sql::take(&pg, a, &n("n3"), TTL, "x", 1).await.unwrap();
    held[3].1 = t.generation;
    let kept = sql::renew(&pg, a, &held, TTL).await.unwrap();
    assert_eq!(kept.into_iter().collect::<Vec<_>>(), vec![n("n3")]);
    // An older generation of the same node on the same core is not renewed.
    held[3].1 = t.generation - 1;
    assert!(sql::renew(&pg, a, &held, TTL).await.unwrap().is_empty());
    pg.close().await.unwrap();
}

#[tokio::test]
async fn a_second_process_with_the_same_core_id_is_refused() {
    let pg = fresh().await;
    let id = CoreId::random();
    let first = connect(&pg, id).await.unwrap();
    assert!(matches!(connect(&pg, id).await, Err(Join::InUse)));
    // Another identity is fine; and once the first process is gone, so is its lock.
    let _other = connect(&pg, CoreId::random()).await.unwrap();
    drop(first);
    let mut again = None;
    for _ in 0..100 {
        match connect(&pg, id).await {
            Ok(l) => {
                again = Some(l);
                break;
            }
            Err(Join::InUse) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(again.is_some(), "the lock is released with its connection");
    pg.close().await.unwrap();
}

#[tokio::test]
async fn listen_queue_is_bounded_and_a_drop_is_reported() {
    let pg = fresh().await;
    let mut l = pg.listen(CHANNEL, 2).await.unwrap();
    // Ten notifications in one transaction, delivered together; the queue holds two.
    let mut c = pg.raw_client().await.unwrap();
    let tx = c.transaction().await.unwrap();
    for i in 0..10 {
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &format!("m{i}")])
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    drop(c);
    // Bounded wait until the queue is full and the listener has read past it.
    for _ in 0..200 {
        if l.rx.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut got = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(2), l.rx.recv()).await {
        let lost = m == Notice::Lost;
        got.push(m);
        if lost {
            break;
        }
    }
    assert_eq!(
        got,
        vec![
            Notice::Payload("m0".into()),
            Notice::Payload("m1".into()),
            Notice::Lost
        ]
    );
    pg.close().await.unwrap();
}

#[tokio::test]
async fn a_command_row_round_trips_between_two_cores() {
    let pg = fresh().await;
    let (a, b) = (CoreId::random(), CoreId::random());
    let mut seen = None;
    let id = sql::command_queue(&pg, &n("n1"), a, b, b"cmd", |id| seen = Some(id))
        .await
        .unwrap();
    assert_eq!(seen, Some(id));
    // Only the target takes it, once it has no answer.
    assert!(sql::command_take(&pg, id, a).await.unwrap().is_none());
    let (node, body, origin) = sql::command_take(&pg, id, b).await.unwrap().unwrap();
    assert_eq!((node, body.as_slice(), origin), (n("n1"), &b"cmd"[..], a));
    assert!(sql::command_result(&pg, id, a).await.unwrap().is_none());
    sql::command_answer(&pg, id, a, b"ok").await.unwrap();
    assert!(sql::command_take(&pg, id, b).await.unwrap().is_none());
    // Only the origin reads the answer, and the row goes with it.
    assert!(sql::command_result(&pg, id, b).await.unwrap().is_none());
    assert_eq!(
        sql::command_result(&pg, id, a).await.unwrap(),
        Some(b"ok".to_vec())
    );
    assert!(sql::command_result(&pg, id, a).await.unwrap().is_none());
    assert_eq!(
        sql::commands_prune(&pg, Duration::ZERO).await.unwrap(),
        0,
        "nothing left to prune"
    );
    pg.close().await.unwrap();
}

#[tokio::test]
async fn live_cores_get_distinct_slots_and_the_slots_run_out() {
    let pg = fresh().await;
    let reg = |id| sql::register_core(&pg, id, "l", "a", TTL);
    let ids: Vec<CoreId> = (0..3).map(|_| CoreId::random()).collect();
    let mut slots = Vec::new();
    for id in &ids {
        slots.push(reg(*id).await.unwrap().unwrap());
    }
    assert_eq!(slots, vec![0, 1, 2]);
    // A restart keeps a free slot; a core gone frees its own.
    assert_eq!(reg(ids[1]).await.unwrap(), Some(1));
    sql::unregister_core(&pg, ids[1]).await.unwrap();
    assert_eq!(reg(CoreId::random()).await.unwrap(), Some(1));
    // A core silent for three lease times loses its row, and so its slot.
    let c = pg.raw_client().await.unwrap();
    c.execute(
        "UPDATE cores SET heartbeat_at = now() - interval '1 hour' WHERE id = $1",
        &[&ids[0].to_string()],
    )
    .await
    .unwrap();
    assert_eq!(reg(CoreId::random()).await.unwrap(), Some(0));
    // Every slot held by a live core: refused.
    c.execute(
        "INSERT INTO cores (id, started_at, heartbeat_at, listen, advertise, version, slot) \
         SELECT 'x' || s, now(), now(), 'l', 'a', 'v', s FROM generate_series(0, 999) s \
         ON CONFLICT DO NOTHING",
        &[],
    )
    .await
    .unwrap();
    c.execute("DELETE FROM cores WHERE id NOT LIKE 'x%'", &[])
        .await
        .unwrap();
    assert_eq!(reg(CoreId::random()).await.unwrap(), None);
    drop(c);
    pg.close().await.unwrap();
}

#[test]
fn waiting_commands_are_capped() {
    let mut w = Waiting::new(2);
    for id in 0..2 {
        assert!(w.insert(id, oneshot::channel().0));
    }
    assert!(!w.has_room());
    assert!(!w.insert(9, oneshot::channel().0));
    assert_eq!(w.by_id.len(), 2);
}

#[test]
fn core_ids_parse_only_their_own_form() {
    let id = CoreId::random();
    assert_eq!(CoreId::parse(&id.to_string()), Some(id));
    for bad in ["", "00", &"g".repeat(32), &"A".repeat(32), &"0".repeat(33)] {
        assert_eq!(CoreId::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn a_data_directory_keeps_its_core_id() {
    let dir = tempfile::tempdir().unwrap();
    let first = load_or_create_id(dir.path()).unwrap();
    assert_eq!(load_or_create_id(dir.path()).unwrap(), first);
    std::fs::write(core_id_file(dir.path()), "not an id").unwrap();
    assert!(load_or_create_id(dir.path()).is_err());
}

/// The module bus's outbox reads (`tail.rs`): two cores' writers on one database, each
/// naming itself; each core reads back exactly the other's rows (and rows of no origin),
/// in id order, never its own, and each commit notifies `events <core>`.
#[tokio::test]
async fn each_core_reads_back_only_the_events_other_cores_stored() {
    use honeybee_proto::event::{Event, EventKind};
    let url = tokio::task::spawn_blocking(pg_test_server::fresh_database)
        .await
        .unwrap();
    let open = || PgStore::open(&url, Some(pg_test_server::PASSWORD));
    let (pa, pb, plain) = (
        open().await.unwrap(),
        open().await.unwrap(),
        open().await.unwrap(),
    );
    let (a, b) = (CoreId::random(), CoreId::random());
    for (pg, id) in [(&pa, a), (&pb, b)] {
        pg.set_origin(
            &id.to_string(),
            CHANNEL,
            &ClusterMsg::Events { origin: id }.encode(),
        );
    }
    let mut l = plain.listen(CHANNEL, 64).await.unwrap();
    let ev = |seq: u64| Event {
        seq,
        time_ms: seq as i64,
        service: "ssh".into(),
        session: None,
        src: None,
        dst: None,
        kind: EventKind::Command {
            line: format!("c{seq}"),
        },
    };
    let start = pa.events_top().await.unwrap();
    // Interleaved: a1 1-2 through A, b1 1 through B, a1 3 through A, x 1 with no origin.
    pa.insert_events(&n("a1"), 1, vec![ev(1), ev(2)])
        .await
        .unwrap();
    pb.insert_events(&n("b1"), 1, vec![ev(1)]).await.unwrap();
    pa.insert_events(&n("a1"), 1, vec![ev(3)]).await.unwrap();
    plain.insert_events(&n("x"), 1, vec![ev(1)]).await.unwrap();
    // A resend through B of what A stored: a duplicate, nothing new for anyone.
    pb.insert_events(&n("a1"), 1, vec![ev(3)]).await.unwrap();
    let top = pa.events_top().await.unwrap();
    let read = |me: CoreId, after: i64, limit: i64| {
        let pg = pa.clone();
        async move {
            pg.events_from_others(&me.to_string(), after, top, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|r| (r.id, r.event.node.to_string(), r.event.event.seq))
                .collect::<Vec<_>>()
        }
    };
    let seen_by_a = read(a, start, 100).await;
    let seen_by_b = read(b, start, 100).await;
    let pairs = |v: &[(i64, String, u64)]| {
        v.iter()
            .map(|(_, n, s)| (n.clone(), *s))
            .collect::<Vec<_>>()
    };
    assert_eq!(pairs(&seen_by_a), [("b1".into(), 1), ("x".into(), 1)]);
    assert_eq!(
        pairs(&seen_by_b),
        [
            ("a1".into(), 1),
            ("a1".into(), 2),
            ("a1".into(), 3),
            ("x".into(), 1)
        ]
    );
    assert!(seen_by_b.windows(2).all(|w| w[0].0 < w[1].0), "id order");
    // A chunk stops at its limit, and the next read goes on from its last id.
    let first = read(b, start, 2).await;
    assert_eq!(first.len(), 2);
    let rest = read(b, first[1].0, 100).await;
    assert_eq!(pairs(&rest), [("a1".into(), 3), ("x".into(), 1)]);
    // Each origin's commits were notified with its id (the plain store's were not).
    let mut notices = Vec::new();
    while let Ok(Some(Notice::Payload(p))) =
        tokio::time::timeout(Duration::from_millis(500), l.rx.recv()).await
    {
        notices.push(ClusterMsg::parse(&p).unwrap());
    }
    let from = |c: CoreId| {
        notices
            .iter()
            .filter(|m| **m == ClusterMsg::Events { origin: c })
            .count()
    };
    // B's resend committed nothing new and still notified: a wasted read, never a miss.
    assert_eq!((from(a), from(b)), (2, 2), "{notices:?}");
    for pg in [pa, pb, plain] {
        pg.close().await.unwrap();
    }
}

/// One core at a time holds the correlator lock; it is free again once the holder's
/// connection is gone (a crashed core), and then another takes it.
#[tokio::test]
async fn the_correlator_lock_has_one_holder_and_fails_over_when_its_connection_closes() {
    let pg = fresh().await;
    let a = pg.raw_client().await.unwrap();
    let b = pg.raw_client().await.unwrap();
    assert!(correlate::try_lock(&a).await.unwrap());
    assert!(!correlate::try_lock(&b).await.unwrap(), "a second holder");
    // The holder's connection closes (its core crashed): PostgreSQL frees the lock.
    drop(deadpool_postgres::Object::take(a));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !correlate::try_lock(&b).await.unwrap() {
        assert!(
            std::time::Instant::now() < deadline,
            "the lock was not freed with its connection"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
