//! The store's conformance suite: every `async fn name(s: Store)` below runs unchanged
//! against every backend (`conformance!` makes one `#[tokio::test]` per backend and test:
//! `store::tests::sqlite::name`, `store::tests::postgres::name`), each on a fresh, empty
//! store. The tests at the end are of one backend's own behaviour (SQLite's file lock,
//! its migrations, damaged rows).

use super::*;
use honeybee_proto::admin::{AuditEntry, EventQuery, EventSearch, StatsQuery, StoredEvent};
use honeybee_proto::control::ServiceStatus;
use honeybee_proto::event::Event;
use honeybee_proto::event::{AuthAttempt, AuthMethod, EventKind};
use std::path::Path;

fn node(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn ev(seq: u64, time_ms: i64, service: &str, kind: EventKind) -> Event {
    Event {
        seq,
        time_ms,
        service: service.into(),
        session: Some(SessionId([seq as u8; 8])),
        src: Some("203.0.113.7:40022".parse().unwrap()),
        dst: Some("192.0.2.1:2222".parse().unwrap()),
        kind,
    }
}

fn auth(user: &str) -> EventKind {
    EventKind::AuthAttempt(AuthAttempt {
        method: AuthMethod::Password,
        username: user.into(),
        password: Some("123456".into()),
        key_fingerprint: None,
        key_algorithm: None,
        client_version: Some("SSH-2.0-libssh_0.9.6".into()),
        success: false,
    })
}

fn node_rec(id: &str, serial: Serial) -> NodeRecord {
    NodeRecord {
        id: node(id),
        name: format!("{id} name"),
        role: Role::Agent,
        labels: vec![("site".into(), "lab".into())],
        serial,
        cert_not_after_ms: 5_000,
        first_seen_ms: 100,
        last_seen_ms: 200,
        addr: Some("198.51.100.3:5000".into()),
        online: true,
        revoked: false,
        health: None,
        config: NodeConfig::default(),
        via_relay: None,
    }
}

fn token(id: u8, uses: u32, expires_ms: i64) -> TokenRecord {
    TokenRecord {
        id: TokenId([id; 8]),
        secret_hash: [id; 32],
        role: Role::Agent,
        name: format!("tok{id}"),
        labels: vec![("k".into(), "v".into())],
        created_ms: 1_000,
        expires_ms,
        uses_total: uses,
        uses_left: uses,
        revoked: false,
    }
}

fn open(dir: &Path) -> SqliteStore {
    SqliteStore::open(&dir.join("honeybee.db")).unwrap()
}

/// A fresh SQLite store in a temporary directory (removed when the guard drops).
pub(super) async fn fresh_sqlite() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::from(open(dir.path()));
    (dir, s)
}

/// One `#[tokio::test]` per conformance test, each on a fresh store from `$fresh`.
macro_rules! conformance {
    ($fresh:path) => {
        conformance!(@plain $fresh;
            events_dedupe_by_node_and_seq, events_query_filters_and_order,
            events_query_default_limit, token_refusal_reasons, nodes_round_trip_and_update,
            revoke_node_revokes_every_cert_and_sticks,
            supersede_cert_moves_the_node_to_the_new_cert,
            captures_dedupe_and_keep_every_sighting, audit_newest_first,
            audit_retention_by_age_and_row_cap, search_pages_cover_every_event_once,
            search_filters_combine, stats_count_in_sql,
            count_matching_and_top_commands_of_chosen_services,
            events_after_resumes_in_store_order, module_credentials_alerts_enrichments,
            events_retention_deletes_old_events_and_their_enrichments,
            node_relay_and_last_event, device_activity_per_node_service_and_address,
            session_query_uses_its_index, search_pages_walk_the_time_order,
            nul_bytes_in_attacker_text_are_stored, nul_bytes_in_alert_text_are_stored,
            nul_bytes_in_a_capture_service_are_stored, size_counts_what_is_stored,
            counted_stats_equal_plain_counts, substring_search_takes_wildcards_literally);
        conformance!(@threaded $fresh;
            concurrent_writers_are_batched_and_all_acked, token_consume_race_has_one_winner,
            concurrent_batches_from_many_nodes_get_their_own_outcomes);
    };
    (@plain $fresh:path; $($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let (_guard, s) = $fresh().await;
            super::$name(s).await;
        }
    )*};
    (@threaded $fresh:path; $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let (_guard, s) = $fresh().await;
            super::$name(s).await;
        }
    )*};
}

mod sqlite {
    conformance!(super::fresh_sqlite);
}

/// A fresh PostgreSQL store: a database of its own on the test server
/// (`pg_test_server`), reached over TCP with a password.
pub(super) async fn fresh_postgres() -> ((), Store) {
    let url = tokio::task::spawn_blocking(pg_test_server::fresh_database)
        .await
        .unwrap();
    let s = PgStore::open(&url, Some(pg_test_server::PASSWORD))
        .await
        .unwrap();
    ((), Store::from(s))
}

mod postgres {
    conformance!(super::fresh_postgres);
}

async fn events_dedupe_by_node_and_seq(s: Store) {
    let a = node("a");
    let b = node("b");
    let batch = |seqs: std::ops::Range<u64>| {
        seqs.map(|i| ev(i, i as i64, "ssh", EventKind::Connect))
            .collect::<Vec<_>>()
    };

    let out = s.insert_events(&a, 10, batch(1..4)).await.unwrap();
    assert_eq!((out.inserted, out.duplicates), (3, 0));
    let out = s.insert_events(&a, 11, batch(2..5)).await.unwrap();
    assert_eq!((out.inserted, out.duplicates), (1, 2));
    // The same seq from another node is another event.
    let out = s.insert_events(&b, 12, batch(1..3)).await.unwrap();
    assert_eq!((out.inserted, out.duplicates), (2, 0));
    // The largest seq SQLite can hold works; one above is refused, and nothing of its
    // batch is stored.
    let top = i64::MAX as u64;
    let out = s.insert_events(&b, 12, batch(top..top + 1)).await.unwrap();
    assert_eq!(out.inserted, 1);
    let err = s
        .insert_events(
            &b,
            12,
            batch(7..9)
                .into_iter()
                .chain(batch(top + 1..top + 2))
                .collect(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::SeqOutOfRange(_)), "{err}");
    assert_eq!(
        s.insert_events(&b, 12, vec![]).await.unwrap(),
        InsertOutcome::default()
    );

    assert_eq!(s.count_events(None).await.unwrap(), 7);
    assert_eq!(s.count_events(Some(&a)).await.unwrap(), 4);
    assert_eq!(s.count_events(Some(&b)).await.unwrap(), 3);

    // The first copy stays: received_ms is the one of the first delivery.
    let got = s
        .query_events(&EventQuery {
            node: Some(a.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let seq2 = got.iter().find(|e| e.event.seq == 2).unwrap();
    assert_eq!(seq2.received_ms, 10);
    let max = s
        .query_events(&EventQuery {
            node: Some(b),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(max.iter().any(|e| e.event.seq == top));
    assert_eq!(s.max_seq(&node("b")).await.unwrap(), top);
    assert_eq!(s.max_seq(&a).await.unwrap(), 4);
    assert_eq!(s.max_seq(&node("none")).await.unwrap(), 0);
}

/// A module's alert quotes attacker text (a username with a NUL, say): stored on every
/// backend, the NUL shown as U+2400 as in events' text columns (PostgreSQL's `text`
/// refused the whole row, so the module's alert was lost with an internal error).
async fn nul_bytes_in_alert_text_are_stored(s: Store) {
    let id = s
        .insert_alert(NewAlert {
            time_ms: 1,
            module: "alerts".into(),
            severity: "high".into(),
            title: "brute force as ro\0ot".into(),
            body: "password pa\0ss".into(),
            node: None,
            seq: None,
        })
        .await
        .unwrap();
    let listed = s.list_alerts(0).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].title, "brute force as ro\u{2400}ot");
    assert_eq!(listed[0].body, "password pa\u{2400}ss");
}

/// `honeybee_core_store_size_bytes` reads this: a store holding events has a size on
/// every backend (it read the SQLite file's size even from a core on PostgreSQL: 0).
async fn size_counts_what_is_stored(s: Store) {
    let events = (1..=100)
        .map(|i| ev(i, i as i64, "ssh", auth("root")))
        .collect();
    s.insert_events(&node("a"), 1, events).await.unwrap();
    assert!(s.size_bytes().await.unwrap() > 0);
}

async fn events_query_filters_and_order(s: Store) {
    let a = node("a");
    let b = node("b");
    s.insert_events(
        &a,
        1,
        vec![
            ev(1, 100, "ssh", EventKind::Connect),
            ev(2, 300, "ssh", auth("root")),
            ev(3, 200, "banner", EventKind::Command { line: "ls".into() }),
        ],
    )
    .await
    .unwrap();
    s.insert_events(
        &b,
        1,
        vec![
            ev(1, 250, "ssh", auth("admin")),
            ev(2, 50, "ssh", EventKind::Connect),
        ],
    )
    .await
    .unwrap();

    let times = |v: &[StoredEvent]| v.iter().map(|e| e.event.time_ms).collect::<Vec<_>>();
    let all = s.query_events(&EventQuery::default()).await.unwrap();
    assert_eq!(times(&all), [300, 250, 200, 100, 50]);
    assert_eq!(all[0].node, a);
    assert_eq!(all[0].event, ev(2, 300, "ssh", auth("root")));

    let q = |f: fn(&mut EventQuery)| {
        let mut q = EventQuery::default();
        f(&mut q);
        q
    };
    let by_node = s
        .query_events(&q(|q| q.node = Some(node("b"))))
        .await
        .unwrap();
    assert_eq!(times(&by_node), [250, 50]);
    assert!(by_node.iter().all(|e| e.node == b));
    let by_service = s
        .query_events(&q(|q| q.service = Some("banner".into())))
        .await
        .unwrap();
    assert_eq!(times(&by_service), [200]);
    let by_kind = s
        .query_events(&q(|q| q.kind = Some("auth_attempt".into())))
        .await
        .unwrap();
    assert_eq!(times(&by_kind), [300, 250]);
    let since = s
        .query_events(&q(|q| q.since_ms = Some(200)))
        .await
        .unwrap();
    assert_eq!(times(&since), [300, 250, 200]);
    let limited = s.query_events(&q(|q| q.limit = 2)).await.unwrap();
    assert_eq!(times(&limited), [300, 250]);
    let combined = s
        .query_events(&q(|q| {
            q.node = Some(NodeId::new("a").unwrap());
            q.service = Some("ssh".into());
            q.since_ms = Some(150);
        }))
        .await
        .unwrap();
    assert_eq!(times(&combined), [300]);

    let err = s
        .query_events(&q(|q| q.kind = Some("nope".into())))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidQuery(_)), "{err}");
}

async fn events_query_default_limit(s: Store) {
    let events = (0..150)
        .map(|i| ev(i, i as i64, "ssh", EventKind::Connect))
        .collect();
    s.insert_events(&node("a"), 1, events).await.unwrap();
    let got = s.query_events(&EventQuery::default()).await.unwrap();
    assert_eq!(got.len(), DEFAULT_QUERY_LIMIT as usize);
    assert_eq!(got[0].event.seq, 149);
    assert_eq!(via_trait(s.clone()).await, 150);
    assert_eq!(effective_limit(0), 100);
    assert_eq!(effective_limit(7), 7);
    assert_eq!(effective_limit(u32::MAX), MAX_QUERY_LIMIT);
}

/// The store's futures are `Send`, so they can be spawned.
async fn via_trait(s: Store) -> u64 {
    tokio::spawn(async move { s.count_events(None).await.unwrap() })
        .await
        .unwrap()
}

async fn concurrent_writers_are_batched_and_all_acked(s: Store) {
    let mut tasks = Vec::new();
    for n in 0..20u64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let id = node(&format!("n{n}"));
            for b in 0..5u64 {
                let events = (0..50)
                    .map(|i| ev(b * 50 + i, i as i64, "ssh", EventKind::Connect))
                    .collect();
                let out = s.insert_events(&id, 1, events).await.unwrap();
                assert_eq!(out.inserted, 50);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.count_events(None).await.unwrap(), 20 * 5 * 50);
}

/// Batches of many nodes at once, overlapping in (node, seq): every caller gets its own
/// outcome, each stored event is reported new to exactly one caller with the id it got.
async fn concurrent_batches_from_many_nodes_get_their_own_outcomes(s: Store) {
    let mut tasks = Vec::new();
    for k in 0..16u64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let id = node(&format!("m{}", k % 8));
            let first = (k / 8) * 5;
            let events: Vec<Event> = (first..first + 10)
                .map(|q| ev(q, q as i64, "ssh", EventKind::Connect))
                .collect();
            (id.clone(), s.insert_events(&id, 1, events).await.unwrap())
        }));
    }
    let mut stored = std::collections::BTreeMap::new();
    let (mut inserted, mut duplicates) = (0, 0);
    for t in tasks {
        let (id, out) = t.await.unwrap();
        assert_eq!(out.inserted + out.duplicates, 10);
        assert_eq!(out.new_seqs.len() as u64, out.inserted);
        assert_eq!(out.new_ids.len() as u64, out.inserted);
        assert!(out.new_ids.windows(2).all(|w| w[0] < w[1]));
        inserted += out.inserted;
        duplicates += out.duplicates;
        for (q, i) in out.new_seqs.iter().zip(&out.new_ids) {
            let old = stored.insert(*i, (id.as_str().to_owned(), *q));
            assert!(old.is_none(), "id {i} reported twice");
        }
    }
    // Node j got seqs 0..10 and 5..15: 15 distinct, 5 duplicates.
    assert_eq!((inserted, duplicates), (8 * 15, 8 * 5));
    let (page, _) = s.events_after(0, 1000).await.unwrap();
    let found: std::collections::BTreeMap<i64, (String, u64)> = page
        .iter()
        .map(|(i, e)| (*i, (e.node.as_str().to_owned(), e.event.seq)))
        .collect();
    assert_eq!(found, stored);
}

async fn token_consume_race_has_one_winner(s: Store) {
    let t = token(1, 1, i64::MAX);
    s.create_token(t.clone()).await.unwrap();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            s.consume_token(TokenId([1; 8]), [1; 32], 2_000)
                .await
                .unwrap()
        }));
    }
    let mut wins = Vec::new();
    let mut refusals = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(rec) => wins.push(rec),
            Err(r) => refusals.push(r),
        }
    }
    assert_eq!(wins.len(), 1, "refusals: {refusals:?}");
    assert_eq!(wins[0].uses_left, 0);
    assert_eq!(wins[0].name, t.name);
    assert!(refusals.iter().all(|r| *r == TokenRefusal::UsedUp));
    let listed = s.list_tokens().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].uses_left, 0);
}

async fn token_refusal_reasons(s: Store) {
    let now = 2_000;
    s.create_token(token(1, 2, 10_000)).await.unwrap();
    s.create_token(token(2, 1, 10_000)).await.unwrap();
    s.create_token(token(3, 1, now)).await.unwrap();

    let consume = |id: u8, secret: u8| s.consume_token(TokenId([id; 8]), [secret; 32], now);
    assert_eq!(consume(9, 9).await.unwrap(), Err(TokenRefusal::Unknown));
    assert_eq!(consume(1, 2).await.unwrap(), Err(TokenRefusal::BadSecret));
    // Expiry is inclusive: a token that expires now is expired.
    assert_eq!(consume(3, 3).await.unwrap(), Err(TokenRefusal::Expired));

    let first = consume(1, 1).await.unwrap().unwrap();
    assert_eq!((first.uses_total, first.uses_left), (2, 1));
    assert_eq!(first.labels, vec![("k".to_string(), "v".to_string())]);
    let second = consume(1, 1).await.unwrap().unwrap();
    assert_eq!(second.uses_left, 0);
    assert_eq!(consume(1, 1).await.unwrap(), Err(TokenRefusal::UsedUp));

    assert!(s.revoke_token(TokenId([2; 8])).await.unwrap());
    assert!(!s.revoke_token(TokenId([8; 8])).await.unwrap());
    assert_eq!(consume(2, 2).await.unwrap(), Err(TokenRefusal::Revoked));
    // A wrong secret learns nothing about the token's state.
    assert_eq!(consume(2, 1).await.unwrap(), Err(TokenRefusal::BadSecret));

    let listed = s.list_tokens().await.unwrap();
    let t2 = listed.iter().find(|t| t.id == TokenId([2; 8])).unwrap();
    assert!(t2.revoked);
    assert_eq!(t2.uses_left, 1);
    assert_eq!(
        TokenRefusal::UsedUp.to_string(),
        "token has already been used"
    );
}

async fn nodes_round_trip_and_update(s: Store) {
    let mut rec = node_rec("a", Serial([1; 16]));
    rec.via_relay = Some(node("relay-1"));
    s.upsert_node(rec.clone()).await.unwrap();
    s.upsert_node(node_rec("b", Serial([2; 16]))).await.unwrap();
    assert_eq!(s.get_node(&node("a")).await.unwrap(), Some(rec.clone()));
    assert_eq!(s.get_node(&node("zz")).await.unwrap(), None);

    let health = Health {
        uptime_s: 5,
        cpu_percent: 1.5,
        rss_bytes: 1 << 20,
        services: vec![ServiceStatus {
            name: "ssh".into(),
            kind: "ssh".into(),
            listen: "0.0.0.0:2222".into(),
            running: true,
            error: None,
            active_sessions: 2,
        }],
        spool_depth: 3,
        spool_dropped: 0,
        cert_not_after_ms: 9,
    };
    let row = |id: &str, time_ms| crate::store::HealthRow {
        node: node(id),
        health: health.clone(),
        time_ms,
    };
    // One batch for many nodes; an unknown node is skipped, not an error.
    assert_eq!(
        s.set_nodes_health(vec![row("a", 300), row("b", 300), row("zz", 300)])
            .await
            .unwrap(),
        2
    );
    assert_eq!(s.set_nodes_health(Vec::new()).await.unwrap(), 0);
    let mut config = NodeConfig::default();
    config.services.push(honeybee_proto::config::ServiceConfig {
        name: "ssh".into(),
        listen: "127.0.0.1:2222".parse().unwrap(),
        enabled: true,
        kind: honeybee_proto::config::ServiceKind::Ssh(Default::default()),
    });
    assert!(s.set_node_config(&node("a"), &config).await.unwrap());
    assert!(!s.set_node_config(&node("zz"), &config).await.unwrap());
    assert!(
        s.set_node_online(&node("a"), false, None, 400)
            .await
            .unwrap()
    );
    assert!(
        !s.set_node_online(&node("zz"), true, None, 400)
            .await
            .unwrap()
    );

    // A report written after the node went offline (a batch flushed late) keeps its
    // health but does not move `last_seen_ms` back.
    let mut later = health.clone();
    later.uptime_s = 6;
    assert_eq!(
        s.set_nodes_health(vec![crate::store::HealthRow {
            node: node("a"),
            health: later.clone(),
            time_ms: 350,
        }])
        .await
        .unwrap(),
        1
    );
    let got = s.get_node(&node("a")).await.unwrap().unwrap();
    assert_eq!(got.health, Some(later));
    assert_eq!(got.config, config);
    assert!(!got.online);
    assert_eq!(got.last_seen_ms, 400);
    assert_eq!(
        s.get_node(&node("b")).await.unwrap().unwrap().health,
        Some(health)
    );
    assert_eq!(got.addr, rec.addr, "None keeps the last known address");
    s.set_node_online(&node("a"), true, Some("198.51.100.9:1".into()), 500)
        .await
        .unwrap();
    let got = s.get_node(&node("a")).await.unwrap().unwrap();
    assert!(got.online);
    assert_eq!(got.addr.as_deref(), Some("198.51.100.9:1"));
    assert_eq!(got.to_info().health, got.health);

    assert_eq!(s.mark_all_offline().await.unwrap(), 2);
    let all = s.list_nodes().await.unwrap();
    assert_eq!(
        all.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert!(all.iter().all(|n| !n.online));

    // Upsert replaces every field.
    let mut replaced = node_rec("a", Serial([7; 16]));
    replaced.name = "renamed".into();
    s.upsert_node(replaced.clone()).await.unwrap();
    assert_eq!(s.get_node(&node("a")).await.unwrap(), Some(replaced));
}

async fn revoke_node_revokes_every_cert_and_sticks(s: Store) {
    let a = node("a");
    let (s1, s2, other) = (Serial([1; 16]), Serial([2; 16]), Serial([9; 16]));
    s.record_cert(s1, &a, Role::Agent, 10, 100).await.unwrap();
    s.record_cert(s2, &a, Role::Agent, 20, 200).await.unwrap();
    s.record_cert(other, &node("b"), Role::Agent, 10, 100)
        .await
        .unwrap();
    s.upsert_node(node_rec("a", s2)).await.unwrap();

    let mut serials = s.revoke_node(&a, 1_000).await.unwrap();
    serials.sort();
    assert_eq!(serials, [s1, s2]);
    assert!(s.cert(s1).await.unwrap().unwrap().revoked);
    assert!(s.cert(s2).await.unwrap().unwrap().revoked);
    assert!(!s.cert(other).await.unwrap().unwrap().revoked);
    let n = s.get_node(&a).await.unwrap().unwrap();
    assert!(n.revoked && !n.online);

    let (mut rs, rn) = s.revoked().await.unwrap();
    rs.sort();
    assert_eq!(rs, [s1, s2]);
    assert_eq!(rn, std::slice::from_ref(&a));

    // Neither a registry refresh nor coming online undoes a revocation …
    s.upsert_node(node_rec("a", s2)).await.unwrap();
    s.set_node_online(&a, true, None, 1_100).await.unwrap();
    let n = s.get_node(&a).await.unwrap().unwrap();
    assert!(n.revoked && !n.online);
    // … and a certificate recorded afterwards (a renewal that raced) is born revoked.
    let late = Serial([3; 16]);
    s.record_cert(late, &a, Role::Agent, 1_001, 2_000)
        .await
        .unwrap();
    assert!(s.cert(late).await.unwrap().unwrap().revoked);

    // Revoking a node the store has never seen still denylists it.
    assert!(
        s.revoke_node(&node("ghost"), 1_000)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.revoked().await.unwrap().1.contains(&node("ghost")));
}

async fn supersede_cert_moves_the_node_to_the_new_cert(s: Store) {
    let a = node("a");
    let (old, new) = (Serial([1; 16]), Serial([2; 16]));
    s.record_cert(old, &a, Role::Relay, 10, 100).await.unwrap();
    s.upsert_node(node_rec("a", old)).await.unwrap();
    assert_eq!(
        s.cert(old).await.unwrap(),
        Some(CertRecord {
            serial: old,
            node: a.clone(),
            role: Role::Relay,
            issued_ms: 10,
            not_after_ms: 100,
            superseded_by: None,
            revoked: false,
        })
    );

    s.supersede_cert(&a, old, new, 500, 70).await.unwrap();
    assert_eq!(s.cert(old).await.unwrap().unwrap().superseded_by, Some(new));
    let n = s.cert(new).await.unwrap().unwrap();
    assert_eq!(
        (n.node, n.role, n.issued_ms, n.not_after_ms),
        (a.clone(), Role::Relay, 70, 500)
    );
    assert_eq!(n.superseded_by, None);
    let rec = s.get_node(&a).await.unwrap().unwrap();
    assert_eq!((rec.serial, rec.cert_not_after_ms), (new, 500));

    // A serial the node does not own is refused and changes nothing.
    let err = s
        .supersede_cert(&node("b"), new, Serial([3; 16]), 900, 80)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownCert { .. }), "{err}");
    let err = s
        .supersede_cert(&a, Serial([5; 16]), Serial([3; 16]), 900, 80)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownCert { .. }), "{err}");
    assert_eq!(s.cert(Serial([3; 16])).await.unwrap(), None);
    assert_eq!(s.cert(new).await.unwrap().unwrap().superseded_by, None);
}

async fn captures_dedupe_and_keep_every_sighting(s: Store) {
    let rec = |n: &str, t: i64| CaptureRecord {
        sha256: [0xab; 32],
        size: 42,
        kind: "upload".into(),
        node: node(n),
        service: "ftp".into(),
        session: Some(SessionId([4; 8])),
        time_ms: t,
        meta: vec![("filename".into(), "x.sh".into())],
    };
    assert!(s.insert_capture(rec("a", 10)).await.unwrap());
    assert!(!s.insert_capture(rec("b", 20)).await.unwrap());
    let other = CaptureRecord {
        sha256: [0xcd; 32],
        session: None,
        meta: vec![],
        ..rec("a", 30)
    };
    assert!(s.insert_capture(other.clone()).await.unwrap());

    assert_eq!(s.get_capture([0xab; 32]).await.unwrap(), Some(rec("a", 10)));
    assert_eq!(s.get_capture([0x00; 32]).await.unwrap(), None);
    assert_eq!(
        s.capture_sightings([0xab; 32]).await.unwrap(),
        vec![rec("a", 10), rec("b", 20)]
    );
    assert_eq!(s.list_captures(0).await.unwrap(), vec![other, rec("a", 10)]);
    assert_eq!(s.list_captures(1).await.unwrap().len(), 1);
}

/// A node names a capture's service in its header (clamped, not validated): a NUL there
/// is stored as U+2400 on every backend, not refused by PostgreSQL with the capture.
async fn nul_bytes_in_a_capture_service_are_stored(s: Store) {
    let rec = CaptureRecord {
        sha256: [0xef; 32],
        size: 1,
        kind: "upload".into(),
        node: node("a"),
        service: "f\0tp".into(),
        session: None,
        time_ms: 1,
        meta: vec![("filename".into(), "x\0.sh".into())],
    };
    assert!(s.insert_capture(rec.clone()).await.unwrap());
    let got = s.get_capture([0xef; 32]).await.unwrap().unwrap();
    assert_eq!(got.service, "f\u{2400}tp");
    assert_eq!(got.meta, rec.meta, "meta is JSON: its NUL is kept, escaped");
    assert_eq!(s.capture_sightings([0xef; 32]).await.unwrap().len(), 1);
}

async fn audit_newest_first(s: Store) {
    let entry = |i: i64| AuditEntry {
        time_ms: i,
        actor: "admin:alice".into(),
        action: format!("action{i}"),
        outcome: "ok".into(),
        source: (i % 2 == 0).then(|| "127.0.0.1".into()),
        detail: String::new(),
    };
    for i in 0..3 {
        s.audit(entry(i)).await.unwrap();
    }
    s.audit_nowait(entry(3));
    // A later awaited write is committed after (or with) the queued one.
    s.audit(entry(4)).await.unwrap();
    let got = s.list_audit(0).await.unwrap();
    assert_eq!(got, (0..5).rev().map(entry).collect::<Vec<_>>());
    assert_eq!(s.list_audit(2).await.unwrap(), vec![entry(4), entry(3)]);
}

/// Retention: rows past the age limit go, then the oldest past the row cap; the newest
/// stay, and pruning again deletes nothing.
async fn audit_retention_by_age_and_row_cap(s: Store) {
    let entry = |i: i64| AuditEntry {
        time_ms: i * 10,
        actor: "node:x".into(),
        action: "enroll".into(),
        outcome: "refused".into(),
        source: None,
        detail: format!("{i}"),
    };
    for i in 0..1000 {
        s.audit_nowait(entry(i));
    }
    s.audit(entry(1000)).await.unwrap();
    assert_eq!(s.count_audit().await.unwrap(), 1001);
    // Older than time 2000 (rows 0..200) by age, then all but the newest 500.
    assert_eq!(s.prune_audit(500, 2000).await.unwrap(), 501);
    assert_eq!(s.count_audit().await.unwrap(), 500);
    let got = s.list_audit(0).await.unwrap();
    assert_eq!(got.first(), Some(&entry(1000)));
    assert_eq!(
        s.list_audit(10_000).await.unwrap().last(),
        Some(&entry(501))
    );
    assert_eq!(s.prune_audit(500, 2000).await.unwrap(), 0);
    // An age limit past every row empties the log.
    assert_eq!(s.prune_audit(500, i64::MAX).await.unwrap(), 500);
    assert_eq!(s.count_audit().await.unwrap(), 0);
}

#[tokio::test]
async fn data_survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let a = node("a");
    s.insert_events(&a, 5, vec![ev(1, 100, "ssh", auth("root"))])
        .await
        .unwrap();
    s.upsert_node(node_rec("a", Serial([1; 16]))).await.unwrap();
    s.record_cert(Serial([1; 16]), &a, Role::Agent, 1, 2)
        .await
        .unwrap();
    s.create_token(token(1, 3, 10_000)).await.unwrap();
    s.consume_token(TokenId([1; 8]), [1; 32], 5)
        .await
        .unwrap()
        .unwrap();
    s.revoke_node(&node("bad"), 7).await.unwrap();
    s.audit_nowait(AuditEntry {
        time_ms: 1,
        actor: "core".into(),
        action: "start".into(),
        outcome: "ok".into(),
        source: None,
        detail: "queued just before close".into(),
    });
    s.close().await.unwrap();

    let err = s.audit(audit_entry()).await.unwrap_err();
    assert!(matches!(err, StoreError::Closed), "{err}");
    s.close().await.unwrap(); // idempotent

    let s2 = open(dir.path());
    let got = s2.query_events(&EventQuery::default()).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].event, ev(1, 100, "ssh", auth("root")));
    assert_eq!(got[0].received_ms, 5);
    assert_eq!(
        s2.get_node(&a).await.unwrap(),
        Some(node_rec("a", Serial([1; 16])))
    );
    assert!(s2.cert(Serial([1; 16])).await.unwrap().is_some());
    assert_eq!(s2.list_tokens().await.unwrap()[0].uses_left, 2);
    assert_eq!(s2.revoked().await.unwrap().1, [node("bad")]);
    assert_eq!(
        s2.list_audit(0).await.unwrap()[0].detail,
        "queued just before close"
    );
    // Dedupe state survives too.
    let out = s2
        .insert_events(&a, 6, vec![ev(1, 100, "ssh", auth("root"))])
        .await
        .unwrap();
    assert_eq!(out.duplicates, 1);

    // Dropping the last handle also flushes and releases the file.
    s2.audit_nowait(audit_entry());
    drop(s2);
    let s3 = open(dir.path());
    assert_eq!(s3.list_audit(0).await.unwrap().len(), 2);
    drop(s);
}

fn audit_entry() -> AuditEntry {
    AuditEntry {
        time_ms: 2,
        actor: "core".into(),
        action: "x".into(),
        outcome: "ok".into(),
        source: None,
        detail: String::new(),
    }
}

#[tokio::test]
async fn second_open_is_refused_while_the_first_is_live() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("honeybee.db");
    let s = SqliteStore::open(&path).unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    assert!(
        err.to_string().contains("locked by another process"),
        "{err}"
    );
    s.close().await.unwrap();
    SqliteStore::open(&path).unwrap();
}

#[tokio::test]
async fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("honeybee.db");
    SqliteStore::open(&path).unwrap().close().await.unwrap();
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute("UPDATE schema_version SET version = 99", [])
            .unwrap();
    }
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 99,
                supported: 6,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("newer than this binary"), "{err}");
}

#[tokio::test]
async fn unreadable_rows_are_skipped_or_reported_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("honeybee.db");
    let s = SqliteStore::open(&path).unwrap();
    let a = node("a");
    s.insert_events(&a, 1, vec![ev(1, 100, "ssh", EventKind::Connect)])
        .await
        .unwrap();
    s.upsert_node(node_rec("a", Serial([1; 16]))).await.unwrap();
    s.upsert_node(node_rec("b", Serial([2; 16]))).await.unwrap();
    {
        // Damage rows behind the store's back (WAL lets a second connection write).
        let c = rusqlite::Connection::open(&path).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        c.execute(
            "INSERT INTO events (node, seq, time_ms, received_ms, service, kind, body) \
             VALUES ('a', 2, 200, 1, 'ssh', 'connect', x'ffffffff')",
            [],
        )
        .unwrap();
        c.execute("UPDATE nodes SET config = x'ff' WHERE id = 'b'", [])
            .unwrap();
    }
    let got = s.query_events(&EventQuery::default()).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].event.seq, 1);
    let err = s.get_node(&node("b")).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    let nodes = s.list_nodes().await.unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].id, a);
}

// ------------------------------------------------------------------ search and analytics

fn sev(seq: u64, time_ms: i64, service: &str, src: &str, kind: EventKind) -> Event {
    Event {
        seq,
        time_ms,
        service: service.into(),
        session: Some(SessionId([seq as u8 % 3; 8])),
        src: Some(src.parse().unwrap()),
        dst: None,
        kind,
    }
}

fn sauth(user: &str, pass: &str) -> EventKind {
    EventKind::AuthAttempt(AuthAttempt {
        method: AuthMethod::Password,
        username: user.into(),
        password: Some(pass.into()),
        key_fingerprint: None,
        key_algorithm: None,
        client_version: None,
        success: false,
    })
}

/// 30 events of node a over three minutes, two of node b.
async fn search_fixture(s: &Store) {
    let a = node("a");
    let b = node("b");
    let mut evs = Vec::new();
    for i in 0..30u64 {
        let t = 60_000 * (i as i64 / 10) + i as i64;
        let kind = match i % 3 {
            0 => EventKind::Connect,
            1 => sauth("root", if i % 2 == 0 { "123456" } else { "toor" }),
            _ => EventKind::Command {
                line: format!("uname -{}", if i < 20 { "a" } else { "r" }),
            },
        };
        evs.push(sev(i + 1, t, "ssh", "203.0.113.7:4000", kind));
    }
    s.insert_events(&a, 1, evs).await.unwrap();
    s.insert_events(
        &b,
        1,
        vec![
            sev(1, 5, "banner", "198.51.100.9:1", EventKind::Connect),
            sev(2, 6, "banner", "198.51.100.9:1", sauth("Admin", "Secret")),
        ],
    )
    .await
    .unwrap();
}

async fn search_pages_cover_every_event_once(s: Store) {
    search_fixture(&s).await;
    let mut seen = Vec::new();
    let mut q = EventSearch {
        limit: 7,
        ..Default::default()
    };
    loop {
        let page = s.search_events(&q).await.unwrap();
        seen.extend(
            page.iter()
                .map(|e| (e.event.time_ms, e.node.clone(), e.event.seq)),
        );
        if page.len() < 7 {
            break;
        }
        q.before = Some(Store::cursor_after(page.last().unwrap()));
    }
    assert_eq!(seen.len(), 32);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted, "newest first, no repeats");
}

async fn search_filters_combine(s: Store) {
    search_fixture(&s).await;
    let search = |q: EventSearch| {
        let s = s.clone();
        async move { s.search_events(&q).await.unwrap() }
    };
    let r = search(EventSearch {
        text: Some("SECRET".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].node.as_str(), "b");
    let r = search(EventSearch {
        text: Some("uname -r".into()),
        ..Default::default()
    })
    .await;
    assert!(
        r.iter()
            .all(|e| matches!(&e.event.kind, EventKind::Command { line } if line == "uname -r"))
    );
    assert_eq!(r.len(), 4);
    // The node's name is searched too.
    let r = search(EventSearch {
        text: Some("B".into()),
        service: Some("banner".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(r.len(), 2);
    let r = search(EventSearch {
        src: Some("198.51.".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(r.len(), 2);
    let r = search(EventSearch {
        src: Some("203.0.113.7".into()),
        kind: Some("connect".into()),
        since_ms: Some(60_000),
        until_ms: Some(120_000),
        ..Default::default()
    })
    .await;
    assert_eq!(
        r.iter().map(|e| e.event.seq).collect::<Vec<_>>(),
        vec![19, 16, 13]
    );
    let r = search(EventSearch {
        session: Some(SessionId([1; 8])),
        node: Some(node("a")),
        ..Default::default()
    })
    .await;
    assert!(!r.is_empty() && r.iter().all(|e| e.event.session == Some(SessionId([1; 8]))));
    assert!(
        s.search_events(&EventSearch {
            kind: Some("bogus".into()),
            ..Default::default()
        })
        .await
        .is_err()
    );
    assert!(
        s.search_events(&EventSearch {
            text: Some("x".repeat(300)),
            ..Default::default()
        })
        .await
        .is_err()
    );
    let one = s.get_event(&node("b"), 2).await.unwrap().unwrap();
    assert_eq!(one.event.seq, 2);
    assert!(s.get_event(&node("b"), 9).await.unwrap().is_none());
}

/// A NUL in attacker-typed text (a username, a password, a command line) is stored on
/// every backend: PostgreSQL's `text` cannot hold NUL, so the searchable columns show it
/// as U+2400 on both, while the event itself comes back byte for byte. Before, such a
/// batch failed on PostgreSQL every time the agent resent it.
async fn nul_bytes_in_attacker_text_are_stored(s: Store) {
    let n = node("nul1");
    let mut login = auth("ro\0ot");
    if let EventKind::AuthAttempt(a) = &mut login {
        a.password = Some("pa\0ss".into());
    }
    let batch = vec![
        ev(1, 1_000, "ssh", login),
        ev(
            2,
            2_000,
            "ssh",
            EventKind::Command {
                line: "echo \0; id".into(),
            },
        ),
        ev(3, 3_000, "ssh", auth("plain")),
    ];
    let o = s.insert_events(&n, 5_000, batch.clone()).await.unwrap();
    assert_eq!((o.inserted, o.duplicates), (3, 0));
    // Resent: deduplicated, not refused.
    let o = s.insert_events(&n, 5_000, batch.clone()).await.unwrap();
    assert_eq!((o.inserted, o.duplicates), (0, 3));
    let page = s
        .search_events(&EventSearch {
            node: Some(n.clone()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut got: Vec<Event> = page.into_iter().map(|e| e.event).collect();
    got.sort_by_key(|e| e.seq);
    assert_eq!(got, batch, "the events themselves keep their NULs");
    // Free text finds the line through its searchable column, NUL shown as U+2400.
    let found = s
        .search_events(&EventSearch {
            text: Some("echo \u{2400}".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let st = s
        .stats(&StatsQuery {
            since_ms: 0,
            until_ms: 10_000,
            bucket_ms: 10_000,
            top: 5,
        })
        .await
        .unwrap();
    assert!(
        st.top_credentials
            .iter()
            .any(|c| c.username == "ro\u{2400}ot" && c.password == "pa\u{2400}ss"),
        "{:?}",
        st.top_credentials
    );
    assert!(
        st.top_commands.iter().any(|c| c.key == "echo \u{2400}; id"),
        "{:?}",
        st.top_commands
    );
}

async fn stats_count_in_sql(s: Store) {
    search_fixture(&s).await;
    let st = s
        .stats(&StatsQuery {
            since_ms: 0,
            until_ms: 180_000,
            bucket_ms: 60_000,
            top: 5,
        })
        .await
        .unwrap();
    assert_eq!(st.events_total, 32);
    assert_eq!(st.total, vec![(0, 12), (60_000, 10), (120_000, 10)]);
    let ssh = st.by_service.iter().find(|s| s.key == "ssh").unwrap();
    assert_eq!(ssh.points, vec![(0, 10), (60_000, 10), (120_000, 10)]);
    assert_eq!(st.by_node.len(), 2);
    assert_eq!(st.top_services[0].key, "ssh");
    assert_eq!(st.top_sources[0].key, "203.0.113.7");
    assert_eq!(st.top_sources[0].count, 10);
    assert_eq!(
        st.by_kind
            .iter()
            .map(|k| (k.key.as_str(), k.count))
            .collect::<Vec<_>>(),
        [("auth_attempt", 11), ("connect", 11), ("command", 10)]
    );
    let creds: u64 = st.top_credentials.iter().map(|c| c.count).sum();
    assert_eq!(creds, 11);
    assert!(
        st.top_credentials
            .iter()
            .any(|c| c.username == "Admin" && c.password == "Secret" && c.count == 1)
    );
    assert_eq!(st.top_commands[0].key, "uname -a");
    assert_eq!(st.top_commands[0].count, 6);
    assert!(st.geo.is_empty());
    assert!(
        s.stats(&StatsQuery {
            since_ms: 0,
            until_ms: 1_000_000_000,
            bucket_ms: 1,
            top: 5,
        })
        .await
        .is_err()
    );
}

async fn count_matching_and_top_commands_of_chosen_services(s: Store) {
    let ev = |seq: u64, service: &str, kind: EventKind| Event {
        seq,
        time_ms: 1000 + seq as i64,
        service: service.into(),
        session: None,
        src: Some("203.0.113.7:4000".parse().unwrap()),
        dst: None,
        kind,
    };
    let cmd = |line: &str| EventKind::Command { line: line.into() };
    let a = node("a");
    let mut evs = Vec::new();
    for i in 0..30u64 {
        evs.push(ev(i + 1, "ssh", cmd("uname -a")));
    }
    for i in 30..70u64 {
        evs.push(ev(i + 1, "ftp", cmd("USER anonymous")));
    }
    evs.push(ev(71, "ssh", EventKind::Connect));
    s.insert_events(&a, 1, evs).await.unwrap();
    let all = EventSearch::default();
    assert_eq!(s.count_matching(&all).await.unwrap(), (71, false));
    let ssh = EventSearch {
        service: Some("ssh".into()),
        kind: Some("command".into()),
        limit: 5,
        ..Default::default()
    };
    assert_eq!(s.count_matching(&ssh).await.unwrap(), (30, false));
    let text = EventSearch {
        text: Some("anonymous".into()),
        ..Default::default()
    };
    assert_eq!(s.count_matching(&text).await.unwrap(), (40, false));
    let top = s.top_commands(0, 10_000, &[], 10).await.unwrap();
    assert_eq!(top[0].key, "USER anonymous");
    let shells = s
        .top_commands(0, 10_000, &["ssh".into(), "telnet".into()], 10)
        .await
        .unwrap();
    assert_eq!(shells.len(), 1);
    assert_eq!((shells[0].key.as_str(), shells[0].count), ("uname -a", 30));
    let many = vec!["x".to_owned(); console::MAX_SERVICES + 1];
    assert!(s.top_commands(0, 1, &many, 10).await.is_err());
}

async fn events_after_resumes_in_store_order(s: Store) {
    assert_eq!(s.events_after(0, 10).await.unwrap(), (vec![], 0));
    let out = s
        .insert_events(
            &node("a"),
            1,
            (1..=5)
                .map(|i| ev(i, 100 - i as i64, "ssh", EventKind::Connect))
                .collect(),
        )
        .await
        .unwrap();
    assert_eq!(out.new_seqs, [1, 2, 3, 4, 5]);
    assert_eq!(out.new_ids.len(), 5);
    assert!(out.new_ids.windows(2).all(|w| w[0] < w[1]));
    let dup = s
        .insert_events(&node("a"), 2, vec![ev(3, 1, "ssh", EventKind::Connect)])
        .await
        .unwrap();
    assert!(dup.new_ids.is_empty() && dup.new_seqs.is_empty());
    let (page, newest) = s.events_after(out.new_ids[1], 2).await.unwrap();
    assert_eq!(newest, out.new_ids[4]);
    assert_eq!(
        page.iter()
            .map(|(id, e)| (*id, e.event.seq))
            .collect::<Vec<_>>(),
        [(out.new_ids[2], 3), (out.new_ids[3], 4)]
    );
}

async fn module_credentials_alerts_enrichments(s: Store) {
    use honeybee_proto::module::Permission;
    let cred = |id: u8, t: i64, perms: Vec<Permission>| ModuleCredential {
        id: TokenId([id; 8]),
        name: "geoip".into(),
        secret_hash: [id; 32],
        permissions: perms,
        created_ms: t,
        revoked: false,
    };
    let subscribe = Permission::EventsRead;
    let enrich = Permission::EnrichWrite;
    s.create_module_credential(cred(1, 10, vec![subscribe]))
        .await
        .unwrap();
    s.create_module_credential(cred(2, 20, vec![subscribe, enrich]))
        .await
        .unwrap();
    assert_eq!(
        s.module_credential(TokenId([2; 8])).await.unwrap(),
        Some(cred(2, 20, vec![subscribe, enrich]))
    );
    assert_eq!(s.module_credential(TokenId([9; 8])).await.unwrap(), None);
    assert_eq!(
        s.module_permissions("geoip").await.unwrap(),
        Some(vec![subscribe, enrich]),
        "the newest credential's"
    );
    assert_eq!(s.revoke_module_credentials("geoip").await.unwrap(), 2);
    assert_eq!(s.revoke_module_credentials("geoip").await.unwrap(), 0);
    assert_eq!(s.module_permissions("geoip").await.unwrap(), None);
    assert!(
        s.module_credential(TokenId([1; 8]))
            .await
            .unwrap()
            .unwrap()
            .revoked
    );

    let alert = |t: i64, title: &str| NewAlert {
        time_ms: t,
        module: "geoip".into(),
        severity: "high".into(),
        title: title.into(),
        body: "body".into(),
        node: Some("a".into()),
        seq: Some(1),
    };
    let first = s.insert_alert(alert(5, "one")).await.unwrap();
    let second = s.insert_alert(alert(6, "two")).await.unwrap();
    assert!(second > first);
    assert_eq!(s.count_alerts().await.unwrap(), (2, 2));
    assert!(s.ack_alert(first, "admin:alice", 9).await.unwrap());
    assert!(!s.ack_alert(first, "admin:bob", 10).await.unwrap(), "once");
    assert!(!s.ack_alert(999, "admin:bob", 10).await.unwrap());
    assert_eq!(s.count_alerts().await.unwrap(), (2, 1));
    let listed = s.list_alerts(0).await.unwrap();
    assert_eq!(
        listed.iter().map(|a| a.title.as_str()).collect::<Vec<_>>(),
        ["two", "one"]
    );
    assert_eq!(listed[1].acked_by.as_deref(), Some("admin:alice"));
    assert_eq!(listed[1].acked_ms, Some(9));
    assert_eq!(
        (listed[0].seq, listed[0].node.as_deref()),
        (Some(1), Some("a"))
    );

    // Enrichments attach to stored events only, and feed the geo map.
    let a = node("a");
    s.insert_events(
        &a,
        1,
        vec![
            sev(1, 100, "ssh", "203.0.113.7:1", EventKind::Connect),
            sev(2, 200, "ssh", "203.0.113.8:1", EventKind::Connect),
        ],
    )
    .await
    .unwrap();
    let geo = |c: &str, lat: f64| {
        format!(
            r#"{{"source.geo.country_iso_code":"{c}","source.geo.location.lat":{lat},"source.geo.location.lon":2.5}}"#
        )
    };
    assert!(
        s.insert_enrichment(&a, 1, "geoip", "enrich", geo("NL", 52.0), 7)
            .await
            .unwrap()
    );
    assert!(
        s.insert_enrichment(&a, 2, "geoip", "enrich", geo("NL", 50.0), 7)
            .await
            .unwrap()
    );
    assert!(
        s.insert_enrichment(&a, 2, "notes", "annotate", "not json".into(), 8)
            .await
            .unwrap()
    );
    assert!(
        !s.insert_enrichment(&a, 3, "geoip", "enrich", geo("FR", 1.0), 7)
            .await
            .unwrap()
    );
    let evs = s
        .attach_enrichments(s.query_events(&EventQuery::default()).await.unwrap())
        .await
        .unwrap();
    assert_eq!(evs[0].event.seq, 2);
    assert_eq!(
        evs[0]
            .enrichments
            .iter()
            .map(|e| (e.module.as_str(), e.kind.as_str()))
            .collect::<Vec<_>>(),
        [("geoip", "enrich"), ("notes", "annotate")]
    );
    assert_eq!(evs[1].enrichments.len(), 1);
    let st = s
        .stats(&StatsQuery {
            since_ms: 0,
            until_ms: 1_000,
            bucket_ms: 1_000,
            top: 5,
        })
        .await
        .unwrap();
    assert_eq!(st.geo.len(), 1);
    assert_eq!((st.geo[0].country.as_str(), st.geo[0].count), ("NL", 2));
    let near = |v: Option<f64>, want: f64| v.is_some_and(|v| (v - want).abs() < 1e-9);
    assert!(near(st.geo[0].lat, 51.0) && near(st.geo[0].lon, 2.5));
}

async fn node_relay_and_last_event(s: Store) {
    let a = node("a");
    s.upsert_node(node_rec("a", Serial([1; 16]))).await.unwrap();
    assert!(s.set_node_relay(&a, Some(&node("r1"))).await.unwrap());
    assert_eq!(
        s.get_node(&a).await.unwrap().unwrap().via_relay,
        Some(node("r1"))
    );
    assert!(s.set_node_relay(&a, None).await.unwrap());
    assert_eq!(s.get_node(&a).await.unwrap().unwrap().via_relay, None);
    assert!(!s.set_node_relay(&node("zz"), None).await.unwrap());
    assert_eq!(s.last_event_ms(&a).await.unwrap(), None);
    s.insert_events(
        &a,
        1,
        vec![
            ev(1, 300, "ssh", EventKind::Connect),
            ev(2, 200, "ssh", EventKind::Connect),
        ],
    )
    .await
    .unwrap();
    assert_eq!(s.last_event_ms(&a).await.unwrap(), Some(300));
}

/// `device_log` / `device_trap` events add up per (node, service, device address); other
/// events from the same address do not count.
async fn device_activity_per_node_service_and_address(s: Store) {
    use honeybee_proto::event::{DeviceLog, DeviceTrap};
    assert!(s.device_activity().await.unwrap().is_empty());
    let log = |seq: u64, t: i64, src: &str, device: &str| Event {
        src: Some(src.parse().unwrap()),
        session: None,
        ..ev(
            seq,
            t,
            "office-devices",
            EventKind::DeviceLog(DeviceLog {
                device: device.into(),
                transport: "udp".into(),
                format: "rfc3164".into(),
                facility: 1,
                severity: 5,
                timestamp: None,
                hostname: None,
                app: None,
                procid: None,
                msgid: None,
                structured_data: None,
                message: "paper jam".into(),
                truncated: false,
            }),
        )
    };
    let trap = Event {
        src: Some("10.0.0.40:39000".parse().unwrap()),
        session: None,
        ..ev(
            4,
            900,
            "office-devices",
            EventKind::DeviceTrap(DeviceTrap {
                device: "printer".into(),
                version: 2,
                trap_oid: "1.3.6.1.6.3.1.1.5.3".into(),
                agent_addr: None,
                varbinds: vec![("1.3.6.1.2.1.1.5.0".into(), "printer".into())],
                inform: false,
            }),
        )
    };
    let mut other = ev(5, 5_000, "office-devices", EventKind::Connect);
    other.src = Some("10.0.0.40:1".parse().unwrap());
    s.insert_events(
        &node("a"),
        1,
        vec![
            log(1, 100, "10.0.0.40:514", "printer"),
            log(2, 700, "10.0.0.40:514", "printer"),
            log(3, 300, "10.0.0.41:514", "cam"),
            trap,
            other,
        ],
    )
    .await
    .unwrap();
    s.insert_events(&node("b"), 1, vec![log(1, 50, "10.0.0.40:514", "printer")])
        .await
        .unwrap();
    let mut got: Vec<(String, String, String, i64, u64)> = s
        .device_activity()
        .await
        .unwrap()
        .into_iter()
        .map(|d| {
            (
                d.node.as_str().to_owned(),
                d.service,
                d.address,
                d.last_ms,
                d.events,
            )
        })
        .collect();
    got.sort();
    let row = |n: &str, a: &str, last: i64, count: u64| {
        (
            n.to_owned(),
            "office-devices".to_owned(),
            a.to_owned(),
            last,
            count,
        )
    };
    assert_eq!(
        got,
        vec![
            row("a", "10.0.0.40", 900, 3),
            row("a", "10.0.0.41", 300, 1),
            row("b", "10.0.0.40", 50, 1),
        ]
    );
}

/// The plan of a search as the backend would run it: SQLite's `EXPLAIN QUERY PLAN` details
/// or PostgreSQL's `EXPLAIN` lines, one string per line.
async fn plan_of(s: &Store, q: &EventSearch) -> Vec<String> {
    match s {
        Store::Sqlite(s) => {
            let (sql, args) = analytics::search_sql(q, analytics::Dialect::Sqlite).unwrap();
            s.read(move |c| {
                let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let rows = stmt.query_map(
                    rusqlite::params_from_iter(args.into_iter().map(rusqlite::types::Value::from)),
                    |r| r.get::<_, String>(3),
                )?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await
            .unwrap()
        }
        Store::Postgres(p) => {
            let (sql, args) = analytics::search_sql(q, analytics::Dialect::Postgres).unwrap();
            let c = p.raw_client().await.unwrap();
            // What autovacuum does soon after a table fills; the planner costs with it.
            c.batch_execute("ANALYZE events").await.unwrap();
            let args = super::postgres::pg_args(args);
            let sql = format!("EXPLAIN {}", super::postgres::pg_sql(&sql));
            c.query(&sql, &super::postgres::arg_refs(&args))
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect()
        }
    }
}

/// The Session view (`session = …`, newest first, and its next page by cursor) reads
/// `events_session_time` (schema v4 on SQLite, v2 on PostgreSQL) instead of the whole
/// table. Its columns are the filter, then the `ORDER BY`, so a session with more events
/// than a page is read newest first from the index and never sorted. (PostgreSQL may sort
/// a session of a dozen events after a bitmap scan of the same index; that is its cost
/// choice, not a missing index, so "no sort" is asserted on the long session.)
async fn session_query_uses_its_index(s: Store) {
    let long = SessionId([0xbb; 8]);
    // Every even seq is in one long session; odd ones in 128 short ones (`ev` takes the
    // session from the low byte of seq), 12 events each over both nodes.
    for n in [node("a"), node("b")] {
        for chunk in (1..=1_536u64).collect::<Vec<_>>().chunks(512) {
            let batch = chunk
                .iter()
                .map(|&i| {
                    let mut e = ev(i, i as i64 * 10, "ssh", EventKind::Connect);
                    if i % 2 == 0 {
                        e.session = Some(long);
                    }
                    e
                })
                .collect::<Vec<_>>();
            s.insert_events(&n, 1, batch).await.unwrap();
        }
    }
    let newest_first = |hits: &[StoredEvent]| {
        hits.windows(2).all(|w| {
            (w[0].event.time_ms, w[0].node.as_str()) > (w[1].event.time_ms, w[1].node.as_str())
        })
    };

    // A short session: its events, newest first, through the index.
    let short = SessionId([7; 8]);
    let q = EventSearch {
        session: Some(short),
        limit: 500,
        ..Default::default()
    };
    let hits = s.search_events(&q).await.unwrap();
    assert_eq!(hits.len(), 12);
    assert!(hits.iter().all(|h| h.event.session == Some(short)));
    assert!(newest_first(&hits));
    let text = plan_of(&s, &q).await.join("\n");
    assert!(text.contains("events_session_time"), "{text}");
    assert!(!text.contains("TEMP B-TREE"), "{text}");

    // A long session, a page at a time: the index in order, no sort (SQLite says "USE TEMP
    // B-TREE FOR ORDER BY", PostgreSQL "Sort"), the cursor narrowing the same walk.
    let mut q = EventSearch {
        session: Some(long),
        limit: 50,
        ..Default::default()
    };
    let first = s.search_events(&q).await.unwrap();
    assert_eq!(first.len(), 50);
    assert!(first.iter().all(|h| h.event.session == Some(long)));
    assert!(newest_first(&first));
    assert_eq!((first[0].node.as_str(), first[0].event.seq), ("b", 1_536));
    for q in [
        &q,
        &EventSearch {
            before: Some(Store::cursor_after(&first[49])),
            ..q.clone()
        },
    ] {
        let text = plan_of(&s, q).await.join("\n");
        assert!(text.contains("events_session_time"), "{text}");
        assert!(
            !text.contains("TEMP B-TREE") && !text.contains("Sort"),
            "{text}"
        );
    }
    q.before = Some(Store::cursor_after(&first[49]));
    let next = s.search_events(&q).await.unwrap();
    assert_eq!(next.len(), 50);
    assert!(newest_first(&next));
    // 50 events back from seq 1536 on both nodes, two per step of 2: 1536 - 2 * 25.
    assert_eq!((next[0].node.as_str(), next[0].event.seq), ("b", 1_486));
}

/// The Events page with no filter, a free-text page and their next pages by cursor are in
/// the search order (`time_ms`, `node`, `seq`, newest first). On SQLite they are a
/// backwards walk of `events_time_order` (schema v5) that stops after a page: no sort of
/// the whole table ("USE TEMP B-TREE"), which took seconds at 10 million events.
/// PostgreSQL's planner chooses by cost (at this size a sort of the small table is
/// cheapest), so only its answers are checked.
async fn search_pages_walk_the_time_order(s: Store) {
    // Three nodes, equal times across nodes so the `node` and `seq` tie-breaks decide.
    for n in ["a", "b", "c"] {
        let batch = (1..=300u64)
            .map(|i| {
                let kind = if i % 7 == 0 {
                    EventKind::Command {
                        line: "wget http://x/y".into(),
                    }
                } else {
                    EventKind::Connect
                };
                ev(i, (i as i64 / 2) * 10, "ssh", kind)
            })
            .collect::<Vec<_>>();
        s.insert_events(&node(n), 1, batch).await.unwrap();
    }
    let key = |h: &StoredEvent| (h.event.time_ms, h.node.as_str().to_owned(), h.event.seq);
    for text in [None, Some("wget")] {
        let mut q = EventSearch {
            text: text.map(Into::into),
            limit: 40,
            ..Default::default()
        };
        let mut seen = Vec::new();
        for _ in 0..100 {
            let page = s.search_events(&q).await.unwrap();
            if page.is_empty() {
                break;
            }
            q.before = Some(Store::cursor_after(page.last().unwrap()));
            seen.extend(page.iter().map(key));
        }
        let expected = if text.is_some() { 3 * (300 / 7) } else { 900 };
        assert_eq!(seen.len(), expected, "{text:?}");
        assert!(
            seen.windows(2).all(|w| w[0] > w[1]),
            "{text:?}: newest first"
        );
        if let Store::Sqlite(_) = &s {
            for q in [
                EventSearch {
                    text: text.map(Into::into),
                    limit: 40,
                    ..Default::default()
                },
                q.clone(),
            ] {
                let plan = plan_of(&s, &q).await.join("\n");
                assert!(plan.contains("events_time_order"), "{plan}");
                assert!(!plan.contains("TEMP B-TREE"), "{plan}");
            }
        }
    }
}

/// A database written by schema version 2 (searchable values only inside the event body)
/// is migrated to version 3 with the derived columns filled in for its old rows.
#[tokio::test]
async fn schema_v2_rows_are_backfilled_for_search() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("honeybee.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(include_str!("schema.sql")).unwrap();
        c.execute_batch(include_str!("schema_v2_modules.sql"))
            .unwrap();
        c.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL); \
             INSERT INTO schema_version VALUES (2);",
        )
        .unwrap();
        let old = [
            ev(1, 100, "ssh", sauth("root", "Hunter2")),
            ev(
                2,
                200,
                "ssh",
                EventKind::Command {
                    line: "wget x".into(),
                },
            ),
        ];
        for e in &old {
            c.execute(
                "INSERT INTO events (node, seq, time_ms, received_ms, service, kind, body) \
                 VALUES ('a', ?1, ?2, 1, 'ssh', ?3, ?4)",
                rusqlite::params![
                    e.seq as i64,
                    e.time_ms,
                    e.kind.name(),
                    postcard::to_allocvec(e).unwrap()
                ],
            )
            .unwrap();
        }
        c.execute(
            "INSERT INTO enrichments (node, seq, module, kind, data, time_ms) VALUES \
             ('a', 1, 'geoip', 'enrich', '{\"source.geo.country_iso_code\":\"DE\"}', 1), \
             ('a', 2, 'geoip', 'enrich', 'not json', 1)",
            [],
        )
        .unwrap();
    }
    let s = Store::from(SqliteStore::open(&path).unwrap());
    let hits = s
        .search_events(&EventSearch {
            text: Some("hunter2".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    let st = s
        .stats(&StatsQuery {
            since_ms: 0,
            until_ms: 1_000,
            bucket_ms: 1_000,
            top: 5,
        })
        .await
        .unwrap();
    assert_eq!(st.top_commands[0].key, "wget x");
    assert_eq!(st.top_credentials[0].password, "Hunter2");
    assert_eq!(st.geo.len(), 1);
    assert_eq!(st.geo[0].country, "DE");
}

/// A database written by schema version 3 gains the session index (version 4) on open,
/// its rows kept (and then the search-order index of version 5); the newer-schema refusal
/// above still holds for versions above the binary's.
#[tokio::test]
async fn schema_v3_store_gains_the_session_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("honeybee.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        for sql in [
            include_str!("schema.sql"),
            include_str!("schema_v2_modules.sql"),
            include_str!("schema_v3_search.sql"),
            "CREATE TABLE schema_version (version INTEGER NOT NULL); \
             INSERT INTO schema_version VALUES (3);",
        ] {
            c.execute_batch(sql).unwrap();
        }
        let e = ev(1, 100, "ssh", EventKind::Connect);
        c.execute(
            "INSERT INTO events (node, seq, time_ms, received_ms, service, kind, session, body) \
             VALUES ('a', 1, 100, 1, 'ssh', 'connect', ?1, ?2)",
            rusqlite::params![
                e.session.unwrap().to_hex(),
                postcard::to_allocvec(&e).unwrap()
            ],
        )
        .unwrap();
    }
    let s = Store::from(SqliteStore::open(&path).unwrap());
    let hits = s
        .search_events(&EventSearch {
            session: Some(SessionId([1; 8])),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    s.close().await.unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = c
        .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 6);
    let index: String = c
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'events_session_time'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(index.contains("(session, time_ms, node, seq)"), "{index}");
    let indexes: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        indexes.iter().any(|i| i == "events_time_order"),
        "{indexes:?}"
    );
    assert!(!indexes.iter().any(|i| i == "events_time"), "{indexes:?}");
}

// ------------------------------------------------------------------ PostgreSQL's own

#[tokio::test]
async fn postgres_wrong_password_unreachable_server_and_newer_schema_are_clear_errors() {
    let url = tokio::task::spawn_blocking(pg_test_server::fresh_database)
        .await
        .unwrap();
    let err = PgStore::open(&url, Some("wrong")).await.unwrap_err();
    assert!(matches!(err, StoreError::AuthFailed { .. }), "{err}");
    assert!(
        !err.to_string().contains("wrong"),
        "never the password: {err}"
    );
    let err = PgStore::open(&url, None).await.unwrap_err();
    assert!(matches!(err, StoreError::AuthFailed { .. }), "{err}");

    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = PgStore::open(
        &format!("postgres://honeybee@127.0.0.1:{port}/x"),
        Some("secret-pw"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
    assert!(!err.to_string().contains("secret-pw"), "{err}");

    let s = PgStore::open(&url, Some(pg_test_server::PASSWORD))
        .await
        .unwrap();
    s.close().await.unwrap();
    {
        let (port, _) = pg_test_server::shared();
        let db = url.rsplit('/').next().unwrap();
        let mut cfg = tokio_postgres::Config::new();
        cfg.host("127.0.0.1")
            .port(port)
            .user(pg_test_server::USER)
            .password(pg_test_server::PASSWORD)
            .dbname(db);
        let (c, conn) = cfg.connect(tokio_postgres::NoTls).await.unwrap();
        let task = tokio::spawn(conn);
        c.batch_execute("UPDATE schema_version SET version = 99")
            .await
            .unwrap();
        drop(c);
        let _ = task.await;
    }
    let err = PgStore::open(&url, Some(pg_test_server::PASSWORD))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn postgres_data_survives_close_and_reopen() {
    let url = tokio::task::spawn_blocking(pg_test_server::fresh_database)
        .await
        .unwrap();
    let open = || PgStore::open(&url, Some(pg_test_server::PASSWORD));
    let s = open().await.unwrap();
    let a = node("a");
    s.insert_events(&a, 5, vec![ev(1, 100, "ssh", auth("root"))])
        .await
        .unwrap();
    s.create_token(token(1, 3, 10_000)).await.unwrap();
    s.audit_nowait(audit_entry());
    s.close().await.unwrap();
    let err = s.audit(audit_entry()).await.unwrap_err();
    assert!(matches!(err, StoreError::Closed), "{err}");
    assert!(matches!(
        s.count_events(None).await.unwrap_err(),
        StoreError::Closed
    ));
    s.close().await.unwrap(); // idempotent

    let s2 = open().await.unwrap();
    assert_eq!(s2.count_events(None).await.unwrap(), 1);
    assert_eq!(s2.list_audit(0).await.unwrap(), vec![audit_entry()]);
    let out = s2
        .insert_events(&a, 6, vec![ev(1, 100, "ssh", auth("root"))])
        .await
        .unwrap();
    assert_eq!(out.duplicates, 1);
    assert_eq!(s2.list_tokens().await.unwrap()[0].uses_left, 3);
}

async fn events_retention_deletes_old_events_and_their_enrichments(s: Store) {
    let a = node("a");
    let events = (1..=25)
        .map(|i| ev(i, i as i64 * 10, "ssh", EventKind::Connect))
        .collect();
    s.insert_events(&a, 1, events).await.unwrap();
    for seq in [1, 24] {
        assert!(
            s.insert_enrichment(&a, seq, "m", "annotate", "{}".into(), 1)
                .await
                .unwrap()
        );
    }
    // Before time 235: seqs 1..=23, deleted 10 at a time.
    assert_eq!(s.prune_events(235, 10).await.unwrap(), 23);
    assert_eq!(s.count_events(None).await.unwrap(), 2);
    assert_eq!(s.prune_events(235, 10).await.unwrap(), 0);
    let left = s
        .attach_enrichments(s.query_events(&EventQuery::default()).await.unwrap())
        .await
        .unwrap();
    assert_eq!(
        left.iter()
            .map(|e| (e.event.seq, e.enrichments.len()))
            .collect::<Vec<_>>(),
        [(25, 0), (24, 1)]
    );
    // The enrichment of a deleted event went with it: a new event 1 has none.
    s.insert_events(&a, 2, vec![ev(1, 1_000, "ssh", EventKind::Connect)])
        .await
        .unwrap();
    let e1 = s
        .attach_enrichments(vec![s.get_event(&a, 1).await.unwrap().unwrap()])
        .await
        .unwrap();
    assert!(e1[0].enrichments.is_empty());
}

#[test]
fn store_section_of_core_toml() {
    use crate::config::{RawStore, StoreConfig};
    let parse = |t: &str| toml::from_str::<RawStore>(t).unwrap();
    let sqlite = parse("");
    assert_eq!(sqlite.validate().unwrap(), StoreConfig::Sqlite);
    assert_eq!(sqlite.retain_events().unwrap(), None);
    let pg = parse(
        "url = \"postgres://hb@db.example:5432/honeybee\"\npassword_file = \"/etc/hb/pw\"\n\
         retain_events = \"90d\"",
    );
    assert!(matches!(
        pg.validate().unwrap(),
        StoreConfig::Postgres { .. }
    ));
    assert_eq!(
        pg.retain_events().unwrap(),
        Some(std::time::Duration::from_secs(90 * 86_400))
    );
    let with_pw = parse("url = \"postgres://hb:s3cret@db/honeybee\"");
    let err = with_pw.validate().unwrap_err().to_string();
    assert!(!err.contains("s3cret"), "{err}");
    assert!(parse("url = \"mysql://x\"").validate().is_err());
    assert!(parse("retain_events = \"soon\"").retain_events().is_err());
    assert!(parse("password_file = \"/x\"").validate().is_err());
}

/// `store migrate`: a SQLite store copied into PostgreSQL answers the same, ids kept, and
/// new rows there continue after the copied ids.
#[tokio::test]
async fn sqlite_store_migrates_to_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("honeybee.db");
    let src = Store::from(SqliteStore::open(&path).unwrap());
    search_fixture(&src).await;
    src.upsert_node(node_rec("a", Serial([1; 16])))
        .await
        .unwrap();
    src.record_cert(Serial([1; 16]), &node("a"), Role::Agent, 1, 2)
        .await
        .unwrap();
    src.revoke_node(&node("bad"), 3).await.unwrap();
    src.create_token(token(1, 2, 10_000)).await.unwrap();
    src.audit(audit_entry()).await.unwrap();
    src.insert_alert(NewAlert {
        time_ms: 1,
        module: "m".into(),
        severity: "low".into(),
        title: "t".into(),
        body: String::new(),
        node: None,
        seq: None,
    })
    .await
    .unwrap();
    src.insert_enrichment(
        &node("a"),
        1,
        "geoip",
        "enrich",
        r#"{"source.geo.country_iso_code":"NL"}"#.into(),
        1,
    )
    .await
    .unwrap();
    src.insert_capture(CaptureRecord {
        sha256: [7; 32],
        size: 3,
        kind: "upload".into(),
        node: node("a"),
        service: "ftp".into(),
        session: None,
        time_ms: 9,
        meta: vec![],
    })
    .await
    .unwrap();
    src.close().await.unwrap();
    drop(src);

    let url = tokio::task::spawn_blocking(pg_test_server::fresh_database)
        .await
        .unwrap();
    let report = migrate::sqlite_to_postgres(&path, &url, Some(pg_test_server::PASSWORD))
        .await
        .unwrap();
    assert!(report.contains(&("events", 32)), "{report:?}");
    let a = Store::from(SqliteStore::open(&path).unwrap());
    let b = Store::from(
        PgStore::open(&url, Some(pg_test_server::PASSWORD))
            .await
            .unwrap(),
    );
    let q = StatsQuery {
        since_ms: 0,
        until_ms: 180_000,
        bucket_ms: 60_000,
        top: 5,
    };
    assert_eq!(a.stats(&q).await.unwrap(), b.stats(&q).await.unwrap());
    let all = EventSearch::default();
    assert_eq!(
        a.search_events(&all).await.unwrap(),
        b.search_events(&all).await.unwrap()
    );
    assert_eq!(a.list_nodes().await.unwrap(), b.list_nodes().await.unwrap());
    assert_eq!(a.revoked().await.unwrap(), b.revoked().await.unwrap());
    assert_eq!(
        a.list_tokens().await.unwrap(),
        b.list_tokens().await.unwrap()
    );
    assert_eq!(
        a.list_audit(0).await.unwrap(),
        b.list_audit(0).await.unwrap()
    );
    assert_eq!(
        a.list_alerts(0).await.unwrap(),
        b.list_alerts(0).await.unwrap()
    );
    assert_eq!(
        a.list_captures(0).await.unwrap(),
        b.list_captures(0).await.unwrap()
    );
    assert_eq!(
        a.events_after(0, 100).await.unwrap(),
        b.events_after(0, 100).await.unwrap()
    );
    // New rows continue after the copied ids.
    let out = b
        .insert_events(&node("c"), 1, vec![ev(1, 1, "ssh", EventKind::Connect)])
        .await
        .unwrap();
    assert_eq!(out.new_ids, [33]);
    // A second migration into the now non-empty database is refused.
    a.close().await.unwrap();
    drop(a);
    let err = migrate::sqlite_to_postgres(&path, &url, Some(pg_test_server::PASSWORD))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
}

/// A database at schema version 1 (before the session index) gains it on open, its rows
/// kept.
#[tokio::test]
async fn postgres_v1_store_gains_the_session_index() {
    let url = tokio::task::spawn_blocking(pg_test_server::fresh_database)
        .await
        .unwrap();
    let open = || PgStore::open(&url, Some(pg_test_server::PASSWORD));
    let s = open().await.unwrap();
    s.insert_events(&node("a"), 5, vec![ev(1, 100, "ssh", EventKind::Connect)])
        .await
        .unwrap();
    // Back to what a version-1 binary left behind.
    let c = s.raw_client().await.unwrap();
    c.batch_execute("DROP INDEX events_session_time; UPDATE schema_version SET version = 1")
        .await
        .unwrap();
    drop(c);
    s.close().await.unwrap();

    let s = open().await.unwrap();
    let c = s.raw_client().await.unwrap();
    let version: i64 = c
        .query_one("SELECT MAX(version) FROM schema_version", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, super::postgres::SCHEMA_VERSION);
    let def: String = c
        .query_one(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'events_session_time'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(def.contains("(session, time_ms, node, seq)"), "{def}");
    drop(c);
    let hits = s
        .search_events(&EventSearch {
            session: Some(SessionId([1; 8])),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    s.close().await.unwrap();
}

// ---------------------------------------------------------------- PostgreSQL group commit

async fn fresh_pg() -> PgStore {
    let url = tokio::task::spawn_blocking(pg_test_server::fresh_database)
        .await
        .unwrap();
    PgStore::open(&url, Some(pg_test_server::PASSWORD))
        .await
        .unwrap()
}

/// Queues `batches` while the event writer is held after taking the first, so they are
/// offered to it as one group; returns each caller's result, in `batches` order.
async fn insert_as_one_group(
    pg: &PgStore,
    batches: Vec<(NodeId, Vec<Event>)>,
) -> Vec<Result<InsertOutcome, StoreError>> {
    let n = batches.len();
    let started = pg.event_groups_started();
    let gate = pg.hold_event_writer().await;
    let handles: Vec<_> = batches
        .into_iter()
        .map(|(id, events)| {
            let pg = pg.clone();
            tokio::spawn(async move { pg.insert_events(&id, 1, events).await })
        })
        .collect();
    let mut queued = false;
    for _ in 0..100_000 {
        if pg.event_groups_started() == started + 1 && pg.queued_event_batches() == n - 1 {
            queued = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(queued, "the batches were never all queued");
    drop(gate);
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

fn seqs(r: std::ops::RangeInclusive<u64>) -> Vec<Event> {
    r.map(|q| ev(q, q as i64, "ssh", EventKind::Connect))
        .collect()
}

#[tokio::test]
async fn postgres_group_commit_one_transaction_detects_duplicates_across_batches() {
    let pg = fresh_pg().await;
    let (a, b, c) = (node("a"), node("b"), node("c"));
    let mut last = seqs(1..=3);
    last.push(ev(20, 20, "ssh", EventKind::Connect));
    let batches = vec![
        (a.clone(), seqs(1..=10)),
        (b.clone(), seqs(1..=10)),
        (a.clone(), seqs(5..=15)),
        (c.clone(), seqs(1..=5)),
        (b.clone(), seqs(1..=10)),
        (a.clone(), last),
    ];
    let sizes: Vec<u64> = batches.iter().map(|(_, e)| e.len() as u64).collect();
    let committed = pg.event_groups_committed();
    let outs: Vec<InsertOutcome> = insert_as_one_group(&pg, batches.clone())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        pg.event_groups_committed(),
        committed + 1,
        "one transaction"
    );
    let mut new = std::collections::BTreeSet::new();
    for ((out, size), (id, _)) in outs.iter().zip(&sizes).zip(&batches) {
        assert_eq!(out.inserted + out.duplicates, *size);
        assert_eq!(out.new_ids.len() as u64, out.inserted);
        for q in &out.new_seqs {
            assert!(
                new.insert((id.as_str().to_owned(), *q)),
                "{id} {q} new twice"
            );
        }
    }
    // a: 1..=15 and 20; b: 1..=10; c: 1..=5.
    assert_eq!(new.len(), 16 + 10 + 5);
    assert_eq!(outs.iter().map(|o| o.duplicates).sum::<u64>(), 50 - 31);
    // Ids follow commit order: the batches' id ranges do not interleave.
    let mut ranges: Vec<(i64, i64)> = outs
        .iter()
        .filter(|o| o.inserted > 0)
        .map(|o| (o.new_ids[0], *o.new_ids.last().unwrap()))
        .collect();
    ranges.sort_unstable();
    assert!(ranges.windows(2).all(|w| w[0].1 < w[1].0));
    // A later group's ids all come after this one's.
    let newest = ranges.last().unwrap().1;
    let later = insert_as_one_group(
        &pg,
        vec![(c.clone(), seqs(6..=7)), (node("d"), seqs(1..=2))],
    )
    .await;
    for r in later {
        let o = r.unwrap();
        assert_eq!(o.inserted, 2);
        assert!(o.new_ids.iter().all(|i| *i > newest));
    }
    let s = Store::from(pg);
    assert_eq!(s.count_events(None).await.unwrap(), 31 + 4);
    let (page, _) = s.events_after(0, 1000).await.unwrap();
    assert!(page.windows(2).all(|w| w[0].0 < w[1].0));
}

#[tokio::test]
async fn postgres_group_commit_a_failing_batch_does_not_fail_the_others() {
    let pg = fresh_pg().await;
    // A trigger refuses this batch's rows, so its statement fails inside the shared
    // transaction and aborts it (a real database error, not a fake).
    pg.raw_client()
        .await
        .unwrap()
        .batch_execute(
            "CREATE FUNCTION refuse_fail_me() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.username = 'fail-me' THEN RAISE EXCEPTION 'refused by the test'; \
             END IF; RETURN NEW; END $$; \
             CREATE TRIGGER refuse_fail_me BEFORE INSERT ON events \
             FOR EACH ROW EXECUTE FUNCTION refuse_fail_me();",
        )
        .await
        .unwrap();
    let bad: Vec<Event> = (1..=3).map(|q| ev(q, 1, "ssh", auth("fail-me"))).collect();
    let batches = vec![
        (node("a"), seqs(1..=5)),
        (node("b"), bad),
        (node("c"), seqs(1..=4)),
        (node("a"), seqs(4..=8)),
    ];
    let committed = pg.event_groups_committed();
    let outs = insert_as_one_group(&pg, batches).await;
    assert!(outs[1].is_err(), "the bad batch fails: {:?}", outs[1]);
    let ok: Vec<&InsertOutcome> = [0, 2, 3]
        .iter()
        .map(|&i| outs[i].as_ref().unwrap())
        .collect();
    assert_eq!(ok[0].inserted + ok[2].inserted, 8);
    assert_eq!(ok[0].duplicates + ok[2].duplicates, 2);
    assert_eq!((ok[1].inserted, ok[1].duplicates), (4, 0));
    // The group did not commit; each good batch did, alone.
    assert_eq!(pg.event_groups_committed(), committed + 3);
    let s = Store::from(pg);
    assert_eq!(s.count_events(None).await.unwrap(), 12);
    assert_eq!(s.count_events(Some(&node("b"))).await.unwrap(), 0);
}

#[tokio::test]
async fn postgres_group_commit_bounds_events_per_transaction_and_the_queue() {
    let pg = fresh_pg().await;
    let (group_events, queue) = PgStore::EVENT_GROUP_BOUNDS;
    // Three batches of 40 % of the bound: the third does not fit the first transaction.
    let part = (group_events * 2 / 5) as u64;
    let committed = pg.event_groups_committed();
    let outs = insert_as_one_group(
        &pg,
        vec![
            (node("a"), seqs(1..=part)),
            (node("b"), seqs(1..=part)),
            (node("c"), seqs(1..=part)),
        ],
    )
    .await;
    for o in outs {
        assert_eq!(o.unwrap().inserted, part);
    }
    assert_eq!(pg.event_groups_committed(), committed + 2);
    // A batch larger than the bound goes alone.
    let big = group_events as u64 + 1;
    let o = pg
        .insert_events(&node("d"), 1, seqs(1..=big))
        .await
        .unwrap();
    assert_eq!(o.inserted, big);
    assert_eq!(pg.event_groups_committed(), committed + 3);

    // The queue holds `queue` batches; callers beyond wait and nothing more is queued.
    let started = pg.event_groups_started();
    let gate = pg.hold_event_writer().await;
    let handles: Vec<_> = (0..queue as u64 + 3)
        .map(|i| {
            let pg = pg.clone();
            tokio::spawn(async move { pg.insert_events(&node("e"), 1, seqs(i + 1..=i + 1)).await })
        })
        .collect();
    for _ in 0..10_000 {
        tokio::task::yield_now().await;
    }
    assert_eq!(pg.event_groups_started(), started + 1);
    assert_eq!(pg.queued_event_batches(), queue);
    assert!(handles.iter().all(|h| !h.is_finished()));
    drop(gate);
    for h in handles {
        assert_eq!(h.await.unwrap().unwrap().inserted, 1);
    }
    let s = Store::from(pg);
    assert_eq!(
        s.count_events(None).await.unwrap(),
        3 * part + big + queue as u64 + 3
    );
}

// ---------------------------------------------------------------- count tables (rollup)

/// The parts of `Stats` the count tables serve: (events_total, total, by_service, by_node,
/// by_kind, top_services, top_nodes).
type CountedParts = (
    u64,
    Vec<(i64, u64)>,
    Vec<honeybee_proto::admin::Series>,
    Vec<honeybee_proto::admin::Series>,
    Vec<honeybee_proto::admin::KeyCount>,
    Vec<honeybee_proto::admin::KeyCount>,
    Vec<honeybee_proto::admin::KeyCount>,
);

fn counted_parts(st: &honeybee_proto::admin::Stats) -> CountedParts {
    (
        st.events_total,
        st.total.clone(),
        st.by_service.clone(),
        st.by_node.clone(),
        st.by_kind.clone(),
        st.top_services.clone(),
        st.top_nodes.clone(),
    )
}

/// The same parts counted the plain way, in Rust, from the events stored (by (node, seq),
/// the first sent of each): the oracle the store's answers are compared with.
fn plain_counts(
    stored: &std::collections::BTreeMap<(String, u64), Event>,
    q: &StatsQuery,
) -> CountedParts {
    use honeybee_proto::admin::{KeyCount, Series};
    use std::collections::BTreeMap;
    let mut total: BTreeMap<i64, u64> = BTreeMap::new();
    let mut by_service: BTreeMap<String, BTreeMap<i64, u64>> = BTreeMap::new();
    let mut by_node: BTreeMap<String, BTreeMap<i64, u64>> = BTreeMap::new();
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for ((node, _), e) in stored {
        if e.time_ms < q.since_ms || e.time_ms >= q.until_ms {
            continue;
        }
        let t = (e.time_ms - q.since_ms) / q.bucket_ms * q.bucket_ms + q.since_ms;
        *total.entry(t).or_default() += 1;
        *by_service
            .entry(e.service.clone())
            .or_default()
            .entry(t)
            .or_default() += 1;
        *by_node
            .entry(node.clone())
            .or_default()
            .entry(t)
            .or_default() += 1;
        *kinds.entry(e.kind.name().to_owned()).or_default() += 1;
    }
    let series = |m: BTreeMap<String, BTreeMap<i64, u64>>| -> Vec<Series> {
        m.into_iter()
            .map(|(key, p)| Series {
                key,
                points: p.into_iter().collect(),
            })
            .collect()
    };
    let top = |m: BTreeMap<String, u64>, n: u32| -> Vec<KeyCount> {
        let mut v: Vec<KeyCount> = m
            .into_iter()
            .map(|(key, count)| KeyCount { key, count })
            .collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        v.truncate(n as usize);
        v
    };
    let sums = |m: &BTreeMap<String, BTreeMap<i64, u64>>| -> BTreeMap<String, u64> {
        m.iter()
            .map(|(k, p)| (k.clone(), p.values().sum()))
            .collect()
    };
    let n = q.top.min(MAX_TOP);
    (
        total.values().sum(),
        total.into_iter().collect(),
        series(by_service.clone()),
        series(by_node.clone()),
        top(kinds, MAX_TOP),
        top(sums(&by_service), n),
        top(sums(&by_node), n),
    )
}

/// Ranges and buckets the dashboard sends and some it does not: aligned and unaligned to
/// the minute, buckets a minute, 45 s (cutting every other minute), 15 min, one bucket
/// for the whole range, and 1 s (too many cut minutes: answered from `events` alone).
fn count_queries() -> Vec<StatsQuery> {
    [
        (0, 3_600_000, 60_000),
        (17, 7_200_017, 900_000),
        (-120_000, 7_500_000, 6_300_000),
        (12_345, 5_432_100, 5_432_100 - 12_345),
        (-90_000, 3_000_000, 45_000),
        (100, 200_000, 1_000),
        (3_000_000, 3_000_500, 100),
    ]
    .into_iter()
    .map(|(since_ms, until_ms, bucket_ms)| StatsQuery {
        since_ms,
        until_ms,
        bucket_ms,
        top: 3,
    })
    .collect()
}

async fn assert_counts_match(
    s: &Store,
    stored: &std::collections::BTreeMap<(String, u64), Event>,
    when: &str,
) {
    for q in count_queries() {
        let st = s.stats(&q).await.unwrap();
        assert_eq!(
            counted_parts(&st),
            plain_counts(stored, &q),
            "{when}: {q:?} (from the count tables: {})",
            rollup::Plan::of(&q).is_some()
        );
    }
}

/// Events of four nodes (one with an empty service name) spread over two hours and a bit
/// before time 0, deterministic.
fn count_fixture() -> Vec<(String, Event)> {
    let services = ["ssh", "http", "telnet", ""];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut seqs = [0u64; 4];
    (0..600)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x % 4) as usize;
            seqs[n] += 1;
            let time_ms = (x >> 8) as i64 % 7_620_000 - 120_000;
            let kind = match (x >> 40) % 3 {
                0 => EventKind::Connect,
                1 => sauth("root", "toor"),
                _ => EventKind::Command {
                    line: format!("id {i}"),
                },
            };
            let e = sev(
                seqs[n],
                time_ms,
                services[(x >> 50) as usize % 4],
                "192.0.2.1:9",
                kind,
            );
            (format!("n{n}"), e)
        })
        .collect()
}

/// The Overview's and Analytics' counts come from the per-minute count tables (where the
/// range covers whole minutes) and equal the counts of the events themselves: after
/// ingest in batches, after a batch is sent again (deduplicated: counted once), after a
/// batch that is half old and half new, after retention cut mid-minute in small batches,
/// and after events arrive again in minutes retention emptied.
async fn counted_stats_equal_plain_counts(s: Store) {
    use std::collections::BTreeMap;
    for q in &count_queries()[..5] {
        assert!(
            rollup::Plan::of(q).is_some(),
            "{q:?} reads the count tables"
        );
    }
    let mut stored: BTreeMap<(String, u64), Event> = BTreeMap::new();
    let all = count_fixture();
    let mut by_node: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for (n, e) in all {
        by_node.entry(n).or_default().push(e);
    }
    let send = async |node_name: &str, evs: Vec<Event>, stored: &mut BTreeMap<_, _>| {
        for e in &evs {
            stored
                .entry((node_name.to_owned(), e.seq))
                .or_insert_with(|| e.clone());
        }
        s.insert_events(&node(node_name), 1, evs).await.unwrap()
    };
    for (n, evs) in &by_node {
        for chunk in evs.chunks(40) {
            send(n, chunk.to_vec(), &mut stored).await;
        }
    }
    assert_counts_match(&s, &stored, "after ingest").await;

    // A resend after a lost ack, and a batch half stored already.
    let (n0, evs) = by_node.iter().next().unwrap();
    let again = send(n0, evs[..40].to_vec(), &mut stored).await;
    assert_eq!((again.inserted, again.duplicates), (0, 40));
    let mut half: Vec<Event> = evs[evs.len() - 10..].to_vec();
    let top_seq = evs.iter().map(|e| e.seq).max().unwrap();
    half.extend((1..=10).map(|i| {
        sev(
            top_seq + i,
            1_800_000 + i as i64 * 7_000,
            "ssh",
            "192.0.2.1:9",
            EventKind::Connect,
        )
    }));
    let out = send(n0, half, &mut stored).await;
    assert_eq!((out.inserted, out.duplicates), (10, 10));
    assert_counts_match(&s, &stored, "after a resend").await;

    // Retention cut in the middle of a minute, a few rows per transaction.
    let cutoff = 1_234_567;
    let gone = s.prune_events(cutoff, 37).await.unwrap();
    let before = stored.len();
    stored.retain(|_, e| e.time_ms >= cutoff);
    assert_eq!(gone as usize, before - stored.len());
    assert!(gone > 37, "several retention batches ({gone} events)");
    assert_counts_match(&s, &stored, "after retention").await;

    // New events in minutes retention emptied, and two at the ends of time (an agent may
    // send any time; no count arithmetic may overflow on them).
    let mut late: Vec<Event> = (1..=20)
        .map(|i| {
            sev(
                10_000 + i,
                -100_000 + i as i64 * 61_000,
                "ftp",
                "192.0.2.1:9",
                EventKind::Connect,
            )
        })
        .collect();
    for (seq, t) in [(20_001, i64::MIN), (20_002, i64::MAX)] {
        late.push(sev(seq, t, "ftp", "192.0.2.1:9", EventKind::Connect));
    }
    send("n1", late, &mut stored).await;
    assert_counts_match(&s, &stored, "after late events").await;
}

/// Free-text search is a literal substring test on both backends: `%`, `_` and `\` in a
/// pattern are characters, not wildcards or escapes (the PostgreSQL dialect escapes them
/// in its `LIKE`), case folds, and a pattern longer than the cap is refused.
async fn substring_search_takes_wildcards_literally(s: Store) {
    let lines = [
        "wget 50% off",
        "wget 5000 off",
        "cat a_b",
        "cat axb",
        "type c:\\temp\\x",
        "type c:/temp/x",
        "echo PLAIN",
    ];
    let events = lines
        .iter()
        .enumerate()
        .map(|(i, l)| Event {
            seq: i as u64 + 1,
            time_ms: 1_000 + i as i64,
            service: "shell".into(),
            session: None,
            src: None,
            dst: None,
            kind: EventKind::Command { line: (*l).into() },
        })
        .collect();
    s.insert_events(&node("h"), 1, events).await.unwrap();
    let find = async |text: &str| -> Vec<u64> {
        let q = EventSearch {
            text: Some(text.into()),
            ..Default::default()
        };
        let mut seqs: Vec<u64> = s
            .search_events(&q)
            .await
            .unwrap()
            .iter()
            .map(|e| e.event.seq)
            .collect();
        seqs.sort();
        let (n, capped) = s.count_matching(&q).await.unwrap();
        assert_eq!((n as usize, capped), (seqs.len(), false), "{text:?}");
        seqs
    };
    assert_eq!(find("%").await, [1]);
    assert_eq!(find("0% o").await, [1]);
    assert_eq!(find("%%").await, Vec::<u64>::new());
    assert_eq!(find("a%b").await, Vec::<u64>::new());
    assert_eq!(find("_").await, [3]);
    assert_eq!(find("a_b").await, [3]);
    assert_eq!(find("\\").await, [5]);
    assert_eq!(find("\\t").await, [5]);
    assert_eq!(find("c:\\temp\\").await, [5]);
    assert_eq!(find("\\%").await, Vec::<u64>::new());
    assert_eq!(find("PLAIN").await, [7]);
    assert_eq!(find("wget").await, [1, 2]);
    // Node names are searched too.
    assert_eq!(find("h").await.len(), 7);
    // The cap: 256 bytes are searched, 257 refused.
    assert_eq!(find(&"%".repeat(256)).await, Vec::<u64>::new());
    let long = EventSearch {
        text: Some("_".repeat(257)),
        ..Default::default()
    };
    assert!(matches!(
        s.search_events(&long).await,
        Err(StoreError::InvalidQuery(_))
    ));
    assert!(matches!(
        s.count_matching(&long).await,
        Err(StoreError::InvalidQuery(_))
    ));
}

/// Inserts the count fixture into `s`; returns what is stored.
async fn fill_count_fixture(s: &Store) -> std::collections::BTreeMap<(String, u64), Event> {
    let mut stored = std::collections::BTreeMap::new();
    for (n, e) in count_fixture() {
        stored.insert((n.clone(), e.seq), e.clone());
        s.insert_events(&node(&n), 1, vec![e]).await.unwrap();
    }
    stored
}

/// A store of schema version 5 (no count tables) gains them at open, its events counted
/// by the batched backfill (seven ids a transaction in tests: 600 events, ~86 batches).
#[tokio::test]
async fn sqlite_v5_store_counts_its_events_when_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("honeybee.db");
    let s = Store::from(SqliteStore::open(&path).unwrap());
    let stored = fill_count_fixture(&s).await;
    s.close().await.unwrap();
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "DROP TABLE event_counts; DROP TABLE node_counts; DROP TABLE count_backfill; \
             UPDATE schema_version SET version = 5",
        )
        .unwrap();
    }
    let s = Store::from(SqliteStore::open(&path).unwrap());
    assert_counts_match(&s, &stored, "after the migration").await;
    let Store::Sqlite(sq) = &s else {
        unreachable!()
    };
    let (sum, pending): (i64, i64) = sq
        .read(|c| {
            Ok(c.query_row(
                "SELECT (SELECT SUM(n) FROM event_counts), (SELECT COUNT(*) FROM count_backfill)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?)
        })
        .await
        .unwrap();
    assert_eq!((sum as usize, pending), (stored.len(), 0));
    s.close().await.unwrap();
}

/// The same on PostgreSQL: a version-5 database gains the count tables at open, counted in
/// batches; and the trigram indexes for free-text search are there and serve it.
#[tokio::test]
async fn postgres_v5_store_counts_its_events_when_migrated() {
    let url = tokio::task::spawn_blocking(pg_test_server::fresh_database)
        .await
        .unwrap();
    let open = || PgStore::open(&url, Some(pg_test_server::PASSWORD));
    let s = Store::from(open().await.unwrap());
    let stored = fill_count_fixture(&s).await;
    let Store::Postgres(p) = &s else {
        unreachable!()
    };
    let c = p.raw_client().await.unwrap();
    c.batch_execute(
        "DROP TABLE event_counts, node_counts, count_backfill; \
         UPDATE schema_version SET version = 5",
    )
    .await
    .unwrap();
    drop(c);
    s.close().await.unwrap();

    let s = Store::from(open().await.unwrap());
    assert_counts_match(&s, &stored, "after the migration").await;
    let Store::Postgres(p) = &s else {
        unreachable!()
    };
    let c = p.raw_client().await.unwrap();
    let row = c
        .query_one(
            "SELECT (SELECT SUM(n) FROM event_counts)::bigint, \
               (SELECT COUNT(*) FROM count_backfill), \
               to_regclass('events_search_trgm') IS NOT NULL",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, i64>(0) as usize,
            row.get::<_, i64>(1),
            row.get::<_, bool>(2)
        ),
        (stored.len(), 0, true)
    );
    // The search's own SQL can be served by the trigram index (the planner is told not
    // to scan the table; a table this small would otherwise be read whole).
    let q = EventSearch {
        text: Some("toor".into()),
        ..Default::default()
    };
    let (sql, args) = console::count_matching_sql(&q, analytics::Dialect::Postgres).unwrap();
    let args = super::postgres::pg_args(args);
    c.batch_execute("SET enable_seqscan = off").await.unwrap();
    let plan: Vec<String> = c
        .query(
            &format!("EXPLAIN {}", super::postgres::pg_sql(&sql)),
            &super::postgres::arg_refs(&args),
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    c.batch_execute("RESET enable_seqscan").await.unwrap();
    assert!(
        plan.iter().any(|l| l.contains("events_search_trgm")),
        "{plan:#?}"
    );
    drop(c);
    s.close().await.unwrap();
}
