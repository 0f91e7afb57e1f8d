//! Attacks on the core, performed for real against an in-process core over real QUIC
//! sockets on loopback (and, for managed modules, a core process): an enrolment flood with
//! 16 KiB hostnames, an enrolment connection that opens extra streams, a compromised agent
//! answering another node's command, a node flooding events, renewals and captures past its
//! budget, and a managed module looking for the core's secrets in its environment. Each
//! asserts the outcome: bounded audit, refused streams, the right answer, budgets enforced
//! with `limit_reached` and other nodes still served.

mod common;
use common::*;
use honeybee_core::Core;
use honeybee_core::config::CoreConfig;
use honeybee_core::frame_io::{read_frame, write_frame};
use honeybee_core::store::NodeRecord;
use honeybee_pki::ca::IssueRequest;
use honeybee_pki::token::Token;
use honeybee_proto::admin::{EventQuery, TokenSpec};
use honeybee_proto::capture::{CaptureHeader, CaptureKind};
use honeybee_proto::codec::FrameLimit;
use honeybee_proto::config::NodeConfig;
use honeybee_proto::control::{AgentMsg, Command, CoreMsg, Hello, NodeMode};
use honeybee_proto::enroll::{EnrollRefusal, EnrollRequest, EnrollResponse};
use honeybee_proto::event::{Event, EventBatch, EventKind};
use honeybee_proto::stream::{StreamKind, close};
use honeybee_proto::{NodeId, Role, WIRE_VERSION, alpn};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// `core init` through the CLI, then the core started in this process, with `edit` applied
/// to its validated configuration.
async fn start_core(edit: impl FnOnce(&mut CoreConfig)) -> (Deployment, Core) {
    let dep = tokio::task::block_in_place(|| Deployment::init(|t| t));
    let mut cfg = honeybee_core::config::load(&dep.core_dir()).expect("config");
    // No fixed or shared port: the shim is not needed here.
    cfg.shim_listen = None;
    edit(&mut cfg);
    let core = Core::start_with(cfg).await.expect("core starts");
    (dep, core)
}

fn addr(core: &Core) -> SocketAddr {
    core.local_addr().expect("bound")
}

async fn token(core: &Core, name: &str) -> Token {
    let (_, line) = core
        .shared()
        .create_token(
            &TokenSpec {
                role: Role::Agent,
                name: name.into(),
                ttl_s: 3600,
                uses: 1,
                labels: Vec::new(),
            },
            "test",
        )
        .await
        .expect("token");
    Token::decode(&line).expect("token line")
}

/// One enrolment exchange on a fresh connection from `client`.
async fn enroll_once(
    client: &quinn::Endpoint,
    cfg: &quinn::ClientConfig,
    core: SocketAddr,
    req: &EnrollRequest,
) -> Result<EnrollResponse, String> {
    let conn = client
        .connect_with(cfg.clone(), core, "honeybee-core")
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    let out = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        write_frame(&mut send, req, FrameLimit::ENROLL)
            .await
            .map_err(|e| e.to_string())?;
        let _ = send.finish();
        tokio::time::timeout(
            Duration::from_secs(30),
            read_frame::<EnrollResponse, _>(&mut recv, FrameLimit::ENROLL),
        )
        .await
        .map_err(|_| "no answer".to_string())?
        .map_err(|e| e.to_string())
    }
    .await;
    conn.close(0u32.into(), b"done");
    out
}

fn enroll_client(tok: &Token) -> quinn::ClientConfig {
    honeybee_pki::install_crypto_provider();
    let tls = honeybee_pki::tls::enroll_client_config(tok.ca_pin, alpn::ENROLL).expect("tls");
    honeybee_agent::transport::client_config(tls).expect("quic client")
}

fn client_endpoint(ip: &str) -> quinn::Endpoint {
    quinn::Endpoint::client(format!("{ip}:0").parse().unwrap()).expect("client endpoint")
}

/// Finding 3: thousands of refused enrolments, each with a 16 KiB hostname full of
/// terminal escapes and bidi overrides, from one source. The audit log gets one row per
/// reason (the repeats are counted, not written), every row's hostname is clamped and
/// escaped, and an honest node from another address still enrols.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_refusal_flood_writes_bounded_sanitised_audit() {
    const ATTEMPTS: usize = 10_000;
    let (_dep, core) = start_core(|_| {}).await;
    let core_addr = addr(&core);
    let victim = token(&core, "victim").await;
    let cfg = enroll_client(&victim);
    // As much hostname as an enrolment frame (16 KiB) carries.
    let hostname = honeybee_proto::event::clamp(
        &"\u{1b}[2J\u{1b}]0;owned\u{7}\u{202e}evil\u{200b}".repeat(1000),
        16_000,
    );
    let attacker = client_endpoint("127.0.0.1");
    let mut wrong = victim.secret;
    wrong[0] ^= 0xff;
    let req = Arc::new(EnrollRequest {
        wire_version: WIRE_VERSION,
        token_id: victim.id,
        secret: wrong,
        csr_der: Vec::new(),
        hostname,
    });
    let mut set = tokio::task::JoinSet::new();
    let (mut refused, mut errors) = (0usize, Vec::new());
    let mut next = 0usize;
    let attack_start = std::time::Instant::now();
    while next < ATTEMPTS || !set.is_empty() {
        while next < ATTEMPTS && set.len() < 32 {
            let (ep, cfg, req) = (attacker.clone(), cfg.clone(), req.clone());
            set.spawn(async move { enroll_once(&ep, &cfg, core_addr, &req).await });
            next += 1;
        }
        match set.join_next().await.expect("a task").expect("no panic") {
            Ok(EnrollResponse::Refused(EnrollRefusal::BadSecret | EnrollRefusal::RateLimited)) => {
                refused += 1
            }
            Ok(other) => panic!("unexpected answer {other:?}"),
            Err(e) => errors.push(e),
        }
    }
    let attack_time = attack_start.elapsed();
    eprintln!("{ATTEMPTS} refused enrolments took {attack_time:?}");
    assert_eq!(refused + errors.len(), ATTEMPTS);
    assert!(
        refused >= ATTEMPTS * 9 / 10,
        "most attempts are answered: {refused} refused, errors {:?}",
        &errors[..errors.len().min(5)]
    );

    // The core keeps serving: an honest node on another address enrols.
    let honest = token(&core, "honest").await;
    let key = honeybee_pki::keys::KeyPair::generate().unwrap();
    let ok = enroll_once(
        &client_endpoint("127.0.0.2"),
        &enroll_client(&honest),
        core_addr,
        &EnrollRequest {
            wire_version: WIRE_VERSION,
            token_id: honest.id,
            secret: honest.secret,
            csr_der: honeybee_pki::keys::make_csr(&key).unwrap(),
            hostname: "honest-host".into(),
        },
    )
    .await
    .expect("honest enrolment answered");
    assert!(matches!(ok, EnrollResponse::Enrolled(_)), "{ok:?}");

    let store = &core.shared().store;
    let rows = wait_async("the audit rows", || async {
        let rows = store.list_audit(10_000).await.unwrap();
        rows.iter()
            .any(|r| r.outcome == "ok" && r.detail.contains("honest-host"))
            .then_some(rows)
    })
    .await;
    let refusals: Vec<_> = rows
        .iter()
        .filter(|r| r.action == "enroll" && r.outcome.starts_with("refused"))
        .collect();
    // Per window (a minute): one row for the wrong secret and one for the rate limit
    // at once, and one counted row for each one's repeats: not one per attempt.
    let windows = attack_time.as_secs() / 60 + 1;
    assert!(
        !refusals.is_empty() && refusals.len() as u64 <= 4 * windows,
        "{} refusal rows for {ATTEMPTS} attempts in {attack_time:?}: {refusals:#?}",
        refusals.len()
    );
    assert!(
        rows.len() < 20 + 4 * windows as usize,
        "{} audit rows in all",
        rows.len()
    );
    let repeats = |outcome: &str| -> Option<u64> {
        outcome
            .split("repeated ")
            .nth(1)?
            .split(' ')
            .next()?
            .parse::<u64>()
            .ok()
    };
    let mut accounted = 0u64;
    for r in &refusals {
        assert_eq!(r.source.as_deref(), Some("127.0.0.1"), "{r:?}");
        if let Some(n) = repeats(&r.outcome) {
            accounted += n;
            continue;
        }
        accounted += 1;
        assert!(
            r.detail.len() < 1024,
            "hostname clamped: {} bytes",
            r.detail.len()
        );
        assert!(
            !r.detail.chars().any(|c| c.is_control()
                || c == '\u{200b}'
                || ('\u{202a}'..='\u{202e}').contains(&c)),
            "no raw controls or bidi overrides: {:?}",
            r.detail
        );
        assert!(
            r.detail.contains("\\u{1b}[2J"),
            "escaped, visible: {}",
            r.detail
        );
        assert!(
            r.detail.contains("bytes)"),
            "says it was clamped: {}",
            r.detail
        );
    }
    // The repeats not yet written are counted, to be written when their window ends.
    let summary = core
        .shared()
        .enroll_refusals
        .lock()
        .unwrap()
        .flush(std::time::Instant::now() + Duration::from_secs(61));
    accounted += summary
        .iter()
        .filter_map(|r| repeats(&r.outcome))
        .sum::<u64>();
    // Every refusal is accounted for (attempts whose answer the client lost included).
    assert!(
        (refused as u64..=ATTEMPTS as u64).contains(&accounted),
        "{accounted} refusals accounted for, {refused} answered: {summary:?}"
    );
    core.shutdown().await;
}

/// Polls an async condition for up to a minute.
async fn wait_async<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..600 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Finding 7: an unauthenticated enrolment connection gets one bidirectional stream and
/// nothing more: a second one and any unidirectional stream are never granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_connection_cannot_open_extra_streams() {
    let (_dep, core) = start_core(|_| {}).await;
    let tok = token(&core, "streams").await;
    let ep = client_endpoint("127.0.0.1");
    let conn = ep
        .connect_with(enroll_client(&tok), addr(&core), "honeybee-core")
        .unwrap()
        .await
        .expect("handshake");
    let (mut send, _recv) = conn.open_bi().await.expect("the one request stream");
    // A byte makes the stream known to the core, which accepts it as the request stream.
    send.write_all(&[0]).await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(3), conn.open_bi()).await;
    assert!(second.is_err(), "a second bidirectional stream was granted");
    let uni = tokio::time::timeout(Duration::from_secs(3), conn.open_uni()).await;
    assert!(uni.is_err(), "a unidirectional stream was granted");
    // Only one stream's worth of data may be in flight: the connection window is small.
    let big = vec![0u8; 1024 * 1024];
    let wrote = tokio::time::timeout(Duration::from_secs(3), send.write_all(&big)).await;
    assert!(
        !matches!(wrote, Ok(Ok(()))),
        "1 MiB was accepted on an unauthenticated connection"
    );
    conn.close(0u32.into(), b"done");
    // The core still enrols.
    let key = honeybee_pki::keys::KeyPair::generate().unwrap();
    let ok = enroll_once(
        &ep,
        &enroll_client(&tok),
        addr(&core),
        &EnrollRequest {
            wire_version: WIRE_VERSION,
            token_id: tok.id,
            secret: tok.secret,
            csr_der: honeybee_pki::keys::make_csr(&key).unwrap(),
            hostname: "h".into(),
        },
    )
    .await
    .unwrap();
    assert!(matches!(ok, EnrollResponse::Enrolled(_)), "{ok:?}");
    core.shutdown().await;
}

/// A node speaking the protocol by hand, as a compromised agent would.
struct RawNode {
    id: NodeId,
    _ep: quinn::Endpoint,
    conn: quinn::Connection,
    ctl: quinn::SendStream,
    inbox: mpsc::Receiver<CoreMsg>,
}

impl RawNode {
    /// Registers `name` in the store with a certificate from the CA, connects, says hello.
    async fn connect(dep: &Deployment, core: &Core, name: &str) -> RawNode {
        let mut node = Self::hello(dep, core, name, WIRE_VERSION).await;
        let welcome = node.next(|m| matches!(m, CoreMsg::Welcome { .. })).await;
        assert!(matches!(welcome, CoreMsg::Welcome { .. }));
        node
    }

    /// As [`RawNode::connect`], saying hello with `wire_version`, without waiting for
    /// the welcome.
    async fn hello(dep: &Deployment, core: &Core, name: &str, wire_version: u16) -> RawNode {
        let ca = tokio::task::block_in_place(|| common::quic::load_ca(&dep.core_dir()));
        let id = NodeId::new(name).unwrap();
        let (key, cert) = ca
            .issue_with_new_key(&IssueRequest {
                role: Role::Agent,
                id: id.clone(),
                lifetime: Duration::from_secs(3600),
            })
            .unwrap();
        let store = &core.shared().store;
        let now = honeybee_core::now_ms();
        store
            .upsert_node(NodeRecord {
                id: id.clone(),
                name: name.into(),
                role: Role::Agent,
                labels: Vec::new(),
                serial: cert.serial,
                cert_not_after_ms: cert.not_after_ms,
                first_seen_ms: now,
                last_seen_ms: now,
                addr: None,
                online: false,
                revoked: false,
                health: None,
                config: NodeConfig::default(),
                via_relay: None,
            })
            .await
            .unwrap();
        store
            .record_cert(cert.serial, &id, Role::Agent, now, cert.not_after_ms)
            .await
            .unwrap();
        let client = common::quic::ClientId {
            chain: vec![cert.der.clone().into()],
            key,
        };
        let (ep, conn) = common::quic::connect(addr(core), ca.cert_der(), &client, alpn::NODE)
            .await
            .expect("node connects");
        let (mut ctl, mut recv) = conn.open_bi().await.unwrap();
        write_frame(
            &mut ctl,
            &AgentMsg::Hello(Hello {
                wire_version,
                agent_version: "raw".into(),
                mode: NodeMode::Full,
                hostname: name.into(),
            }),
            FrameLimit::CONTROL,
        )
        .await
        .unwrap();
        let (tx, inbox) = mpsc::channel(1024);
        tokio::spawn(async move {
            while let Ok(m) = read_frame::<CoreMsg, _>(&mut recv, FrameLimit::CONTROL).await {
                if tx.send(m).await.is_err() {
                    return;
                }
            }
        });
        RawNode {
            id,
            _ep: ep,
            conn,
            ctl,
            inbox,
        }
    }

    async fn say(&mut self, msg: &AgentMsg) {
        write_frame(&mut self.ctl, msg, FrameLimit::CONTROL)
            .await
            .unwrap();
    }

    /// The next control message that `want` matches (others are skipped).
    async fn next(&mut self, want: impl Fn(&CoreMsg) -> bool) -> CoreMsg {
        tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let m = self.inbox.recv().await.expect("control stream open");
                if want(&m) {
                    return m;
                }
            }
        })
        .await
        .expect("the message came within a minute")
    }

    /// Like `next`, but gives up after `limit` (for messages that must not come).
    async fn next_within(
        &mut self,
        limit: Duration,
        want: impl Fn(&CoreMsg) -> bool,
    ) -> Option<CoreMsg> {
        tokio::time::timeout(limit, self.next(want)).await.ok()
    }

    async fn send_batch(&self, seqs: std::ops::RangeInclusive<u64>) {
        let events = seqs
            .map(|seq| Event {
                seq,
                time_ms: honeybee_core::now_ms(),
                service: "ssh".into(),
                session: None,
                src: Some("203.0.113.9:4000".parse().unwrap()),
                dst: None,
                kind: EventKind::Connect,
            })
            .collect();
        let mut s = self.conn.open_uni().await.unwrap();
        s.write_all(&[StreamKind::Telemetry as u8]).await.unwrap();
        write_frame(&mut s, &EventBatch { events }, FrameLimit::TELEMETRY)
            .await
            .unwrap();
        let _ = s.finish();
    }
}

/// An agent of another release, whose frames this core would misread: its hello is
/// refused with a reason that names both wire versions, no welcome is sent, and the
/// node is not marked online.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_of_another_wire_version_is_refused() {
    let (dep, core) = start_core(|_| {}).await;
    let mut node = RawNode::hello(&dep, &core, "future-agent", WIRE_VERSION + 1).await;
    let why = tokio::time::timeout(Duration::from_secs(30), node.conn.closed())
        .await
        .expect("the core closes the connection");
    match why {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(c.error_code, close::PROTOCOL.into(), "{c:?}");
            let reason = String::from_utf8_lossy(&c.reason);
            assert!(
                reason.contains(&format!("wire version {}", WIRE_VERSION + 1))
                    && reason.contains(&format!("speaks {WIRE_VERSION}")),
                "{reason}"
            );
        }
        other => panic!("closed otherwise: {other:?}"),
    }
    assert!(
        node.inbox.try_recv().is_err(),
        "nothing (no welcome) was sent"
    );
    let rec = core
        .shared()
        .store
        .get_node(&node.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!rec.online, "a refused node is not online");
    core.shutdown().await;
}

/// Finding 6: a compromised agent answers a command sent to another node (here it is even
/// handed the command's id). The answer is ignored and counted; the right node's answer is
/// the one the caller gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cannot_answer_another_nodes_command() {
    let (dep, core) = start_core(|_| {}).await;
    let mut honest = RawNode::connect(&dep, &core, "honest").await;
    let mut evil = RawNode::connect(&dep, &core, "evil").await;
    let shared = core.shared().clone();
    let target = honest.id.clone();
    let asked = tokio::spawn(async move { shared.registry.command(&target, Command::Ping).await });
    let CoreMsg::Command { id, .. } = honest.next(|m| matches!(m, CoreMsg::Command { .. })).await
    else {
        unreachable!()
    };
    // The attacker answers first, with the right id.
    evil.say(&AgentMsg::CommandResult {
        id,
        result: Ok("evil answer".into()),
    })
    .await;
    wait_async("the foreign answer to be seen", || async {
        (core.shared().registry.foreign_results() == 1).then_some(())
    })
    .await;
    honest
        .say(&AgentMsg::CommandResult {
            id,
            result: Ok("pong".into()),
        })
        .await;
    let got = asked.await.unwrap().expect("answered");
    assert_eq!(got, Ok("pong".to_string()));
    // The attacker's connection was not needed for anything and the core still serves it.
    assert!(core.shared().registry.is_online(&evil.id));
    core.shutdown().await;
}

async fn core_limit_events(core: &Core, limit: &str) -> Vec<String> {
    core.shared()
        .store
        .query_events(&EventQuery {
            node: Some(NodeId::new("core").unwrap()),
            service: None,
            kind: Some("limit_reached".into()),
            since_ms: None,
            limit: 100,
        })
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.event.kind {
            EventKind::LimitReached { limit: l, detail } if l == limit => Some(detail),
            _ => None,
        })
        .collect()
}

/// Finding 9: a node floods events past its budget. Its excess batches are held back
/// (no ack, so an honest agent's spool waits: nothing is lost), `limit_reached` is
/// recorded, and another node's events are stored and acknowledged meanwhile. Renewals
/// and capture bytes past their budgets are refused, with `limit_reached` too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_over_its_budget_is_held_back_and_others_are_served() {
    let (dep, core) = start_core(|c| {
        c.node_budgets.events_per_second = 100;
        c.node_budgets.event_burst = 500;
        c.node_budgets.renewals_per_hour = 2;
        c.node_budgets.capture_bytes_per_hour = 1000;
    })
    .await;
    let mut flood = RawNode::connect(&dep, &core, "flood").await;
    let mut quiet = RawNode::connect(&dep, &core, "quiet").await;

    // Within the burst: acknowledged.
    flood.send_batch(1..=500).await;
    let ack = flood.next(|m| matches!(m, CoreMsg::Ack { .. })).await;
    assert_eq!(
        ack,
        CoreMsg::Ack {
            first: 1,
            last: 500
        }
    );
    // Past it: 2,000 more events are held (20 s at 100/s), not acknowledged at once.
    for k in 0..4u64 {
        flood.send_batch(501 + k * 500..=1000 + k * 500).await;
    }
    let limits = wait_async("limit_reached for the flood", || async {
        let l = core_limit_events(&core, "node_events_per_second").await;
        (!l.is_empty()).then_some(l)
    })
    .await;
    assert!(limits[0].contains("node=flood"), "{limits:?}");
    assert!(
        flood
            .next_within(Duration::from_secs(1), |m| matches!(m, CoreMsg::Ack { .. }))
            .await
            .is_none(),
        "the excess is not acknowledged at once"
    );

    // Another node is not held back by the flood.
    quiet.send_batch(1..=10).await;
    let ack = quiet.next(|m| matches!(m, CoreMsg::Ack { .. })).await;
    assert_eq!(ack, CoreMsg::Ack { first: 1, last: 10 });
    let store = &core.shared().store;
    assert_eq!(store.count_events(Some(&quiet.id)).await.unwrap(), 10);

    // The held batches are stored and acknowledged in time: delayed, never lost.
    let mut acked = 500u64;
    while acked < 2500 {
        let CoreMsg::Ack { first, last } = flood.next(|m| matches!(m, CoreMsg::Ack { .. })).await
        else {
            unreachable!()
        };
        acked += last - first + 1;
    }
    assert_eq!(store.count_events(Some(&flood.id)).await.unwrap(), 2500);

    // Renewals: two an hour; the third is refused with a reason, and reported.
    let mut answers = Vec::new();
    for _ in 0..3 {
        flood
            .say(&AgentMsg::RenewRequest {
                csr_der: b"not a csr".to_vec(),
            })
            .await;
        match flood.next(|m| matches!(m, CoreMsg::Renewed(_))).await {
            CoreMsg::Renewed(r) => answers.push(r),
            _ => unreachable!(),
        }
    }
    assert!(
        answers[..2]
            .iter()
            .all(|a| matches!(a, Err(e) if !e.contains("renewals in an hour"))),
        "{answers:?}"
    );
    assert!(
        matches!(&answers[2], Err(e) if e.contains("more than 2 renewals in an hour")),
        "{answers:?}"
    );
    wait_async("limit_reached for renewals", || async {
        let l = core_limit_events(&core, "node_renewals_per_hour").await;
        l.iter().any(|d| d.contains("node=flood")).then_some(())
    })
    .await;

    // Captures: 1,000 bytes an hour; a second 600-byte capture is refused.
    for (i, want_stored) in [(1u8, true), (2u8, false)] {
        let body = vec![i; 600];
        let sha: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, &body)
            .as_ref()
            .try_into()
            .unwrap();
        let mut s = flood.conn.open_uni().await.unwrap();
        s.write_all(&[StreamKind::Capture as u8]).await.unwrap();
        write_frame(
            &mut s,
            &CaptureHeader {
                size: body.len() as u64,
                sha256: sha,
                kind: CaptureKind::Upload,
                service: "ftp".into(),
                session: None,
                time_ms: honeybee_core::now_ms(),
                meta: Vec::new(),
            },
            FrameLimit::CAPTURE_HEADER,
        )
        .await
        .unwrap();
        let _ = s.write_all(&body).await;
        let _ = s.finish();
        let answer = flood
            .next(|m| {
                matches!(m, CoreMsg::CaptureStored { sha256 } | CoreMsg::CaptureRejected { sha256, .. } if *sha256 == sha)
            })
            .await;
        match answer {
            CoreMsg::CaptureStored { .. } => assert!(want_stored, "second capture stored"),
            CoreMsg::CaptureRejected { reason, .. } => {
                assert!(!want_stored, "first capture refused: {reason}");
                assert!(reason.contains("capture budget"), "{reason}");
            }
            _ => unreachable!(),
        }
    }
    wait_async("limit_reached for capture bytes", || async {
        let l = core_limit_events(&core, "node_capture_bytes_per_hour").await;
        l.iter().any(|d| d.contains("node=flood")).then_some(())
    })
    .await;
    core.shutdown().await;
}

/// Finding 8: a managed module started by a core whose environment holds the CA
/// passphrase, the dashboard's admin password and another secret dumps its environment;
/// none of them is there, and what the module protocol needs is.
#[test]
fn managed_modules_do_not_inherit_the_cores_secrets() {
    let mut dep = Deployment::init(|t| t);
    let log = dep.dir.path().join("core.log");
    let file = std::fs::File::create(&log).unwrap();
    let child = std::process::Command::new(bin())
        .args(["core", "run", "--data-dir", &dep.d()])
        .env("RUST_LOG", "info,quinn=warn")
        .env("HONEYBEE_CA_PASSPHRASE", "ca-passphrase-canary")
        .env("HONEYBEE_DASHBOARD_ADMIN_PASSWORD", "admin-password-canary")
        .env("AWS_SECRET_ACCESS_KEY", "cloud-secret-canary")
        .stdin(std::process::Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .expect("core starts");
    dep.core = Some(Proc { child, log });
    let d = dep.d();
    wait_for("core to answer", Duration::from_secs(30), || {
        run(&["status", "--data-dir", &d])
            .status
            .success()
            .then_some(())
    });
    let dump = dep.dir.path().join("module-env.txt");
    let script = format!(
        "env > {}.tmp && mv {0}.tmp {0}; exec sleep 600",
        dump.display()
    );
    ok(&[
        "module",
        "load",
        "envdump",
        "--data-dir",
        &d,
        "--permissions",
        "events:read",
        "--",
        "/bin/sh",
        "-c",
        &script,
    ]);
    let env = wait_for("the module's environment", Duration::from_secs(30), || {
        std::fs::read_to_string(&dump).ok()
    });
    let _ = run(&["module", "unload", "envdump", "--data-dir", &d]);
    for canary in [
        "ca-passphrase-canary",
        "admin-password-canary",
        "cloud-secret-canary",
    ] {
        assert!(!env.contains(canary), "{canary} leaked:\n{env}");
    }
    for name in [
        "HONEYBEE_CA_PASSPHRASE",
        "HONEYBEE_DASHBOARD_ADMIN_PASSWORD",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        assert!(!env.contains(name), "{name} present:\n{env}");
    }
    let vars: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
    for needed in [
        "PATH",
        "HONEYBEE_SHIM_ADDR",
        "HONEYBEE_MODULE_NAME",
        "HONEYBEE_MODULE_CREDENTIAL",
    ] {
        assert!(vars.contains(&needed), "{needed} missing:\n{env}");
    }
}

// ---- on a PostgreSQL store (`common::on_postgres`: the same body, a database of its own
// on this test binary's PostgreSQL server)

#[test]
fn a_node_over_its_budget_is_held_back_and_others_are_served_on_postgres() {
    common::on_postgres(a_node_over_its_budget_is_held_back_and_others_are_served);
}
