//! The scenarios of issue 7 as tests, at the sizes: a real core and real agents on
//! 127.0.0.1, each agent behind its own impaired link. They assert outcomes only —
//! every event stored exactly once, no new handshake under NAT rebinding, the capture
//! stored once with its hash — never timings; the figures go to BENCHMARKS.md.
//! The `two_cores_…` tests are issue 18's: the core-kill and partition scenarios with two
//! cores on one real PostgreSQL (the test fixture's server), agents split across them and
//! failing over by their SRV lists.

use honeybee_netsim::cluster::{ClusterCoreKill, ClusterPartition};
use honeybee_netsim::report::Report;
use honeybee_netsim::scenario::{CaptureCut, CoreKill, Lossy, PartitionSpec, Rebinding, Storm};
use honeybee_proto::timing::Timing;
use std::time::Duration;
use tokio::sync::RwLock;

/// The 2,000-agent storm runs alone (file descriptors, CPU); the others share. A tokio
/// lock: it is held across awaits, and it is not poisoned when a test fails.
static GATE: RwLock<()> = RwLock::const_new(());

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_test_writer()
        .try_init();
}

fn assert_exactly_once(r: &Report) {
    println!("{r}");
    assert!(r.sent > 0, "nothing was sent: {r}");
    assert_eq!(r.lost, 0, "events lost: {r}");
    assert_eq!(r.duplicated, 0, "events duplicated: {r}");
    assert_eq!(r.stored, r.sent, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_links_200_agents_deliver_exactly_once() {
    init_tracing();
    let _g = GATE.read().await;
    let r = Lossy::default().run().await.expect("scenario ran");
    assert_exactly_once(&r);
    assert_eq!(r.agents, 200);
    assert!(
        r.note_value("datagrams dropped by the links")
            .is_some_and(|v| v != "0"),
        "the links really dropped datagrams: {r}"
    );
}

/// Time compressed tenfold (idle timeout 3 s): a 6 s partition outlasts the idle timeout
/// as the production 30 s partition outlasts the 30 s one, without waiting for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_past_the_idle_timeout_of_half_the_agents_loses_nothing() {
    init_tracing();
    let _g = GATE.read().await;
    let timing = Timing::compressed(10);
    let spec = PartitionSpec {
        before: Duration::from_millis(500),
        duration: timing.idle_timeout * 2,
        rate: 4,
        timing,
        ..PartitionSpec::default()
    };
    let r = spec.run().await.expect("scenario ran");
    assert_exactly_once(&r);
    assert!(r.recovery.is_some(), "recovery recorded: {r}");
    assert!(
        r.reconnections >= 50,
        "the partition outlasted the idle timeout, so the cut agents reconnected: {r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_killed_mid_stream_loses_and_duplicates_nothing() {
    init_tracing();
    let _g = GATE.read().await;
    let r = CoreKill::default().run().await.expect("scenario ran");
    assert_exactly_once(&r);
    assert!(
        r.reconnections >= r.agents as u64,
        "every agent reconnected: {r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nat_rebinding_migrates_without_a_new_handshake() {
    init_tracing();
    let _g = GATE.read().await;
    let r = Rebinding::default().run().await.expect("scenario ran");
    assert_exactly_once(&r);
    let rebinds: u64 = r.note_value("rebinds").unwrap().parse().unwrap();
    assert!(
        rebinds >= 5 * r.agents as u64,
        "every NAT rebound several times: {r}"
    );
    assert_eq!(r.reconnections, 0, "no new handshake: {r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_cut_halfway_completes_once_with_its_hash() {
    init_tracing();
    let _g = GATE.read().await;
    // Time compressed tenfold: the cut (4 s) outlasts the 3 s idle timeout.
    let timing = Timing::compressed(10);
    let spec = CaptureCut {
        cut_for: Some(timing.idle_timeout + Duration::from_secs(1)),
        timing,
        ..CaptureCut::default()
    };
    let r = spec.run().await.expect("scenario ran");
    assert_exactly_once(&r);
    assert_eq!(r.note_value("sha256 verified"), Some("true"), "{r}");
    assert!(r.reconnections >= 1, "the upload really was cut: {r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_agents_reconnect_after_a_core_restart() {
    init_tracing();
    let _g = GATE.write().await;
    let r = Storm::default().run().await.expect("scenario ran");
    assert_exactly_once(&r);
    assert_eq!(r.agents, 2000);
    assert_eq!(r.note_value("agents back"), Some("2000/2000"), "{r}");
    assert!(r.recovery.is_some(), "{r}");
}

/// `core N` note → (leases held, connections in its registry); None for a stopped core.
fn core_note(r: &Report, core: usize) -> Option<(u64, u64)> {
    let v = r.note_value(&format!("core {core}"))?;
    let mut it = v.split(' ');
    let held = it.next()?.parse().ok()?;
    let live = it.nth(1)?.trim_end_matches(',').parse().ok()?;
    Some((held, live))
}

/// `agents failed over` note → (failed over, should have).
fn failed_over(r: &Report) -> (u64, u64) {
    let v = r.note_value("agents failed over").expect("failover noted");
    let (a, b) = v.split_once('/').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

/// Issue 18: core 0 of two is killed mid-stream and stays down; its agents (half the
/// fleet) fail over to core 1 by their SRV lists, nothing is lost or duplicated in the
/// shared database, and core 1 ends holding every node's lease and connection. Time
/// compressed tenfold (3 s idle timeout), as the one-core partition test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_cores_one_killed_mid_stream_agents_fail_over_exactly_once_slow() {
    init_tracing();
    let _g = GATE.read().await;
    let spec = ClusterCoreKill {
        agents: 60,
        events_per_agent: 100,
        over: Duration::from_secs(8),
        kill_at: Duration::from_secs(3),
        timing: Timing::compressed(10),
        ..ClusterCoreKill::default()
    };
    let r = spec.run().await.expect("scenario ran");
    assert_exactly_once(&r);
    let (back, victims) = failed_over(&r);
    assert!(victims >= 20, "core 0 served about half the fleet: {r}");
    assert_eq!(
        back, victims,
        "every agent of core 0 came back on core 1: {r}"
    );
    assert!(r.recovery.is_some(), "{r}");
    assert_eq!(r.note_value("core 0"), Some("stopped"), "{r}");
    assert_eq!(
        core_note(&r, 1),
        Some((60, 60)),
        "core 1 holds every node: {r}"
    );
}

/// Issue 18: half of core 0's agents lose their route to core 0 (core 1 stays reachable)
/// past the idle timeout; they fail over to core 1, which takes their leases over, core 0
/// closes its stale connections, the link heals, and nothing is lost or duplicated. Every
/// node's lease ends with the core that holds its connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_cores_partition_of_one_cores_agents_moves_their_leases_exactly_once_slow() {
    init_tracing();
    let _g = GATE.read().await;
    let timing = Timing::compressed(10);
    let spec = ClusterPartition {
        agents: 60,
        before: Duration::from_secs(1),
        duration: timing.idle_timeout * 2,
        rate: 4,
        timing,
        ..ClusterPartition::default()
    };
    let r = spec.run().await.expect("scenario ran");
    assert_exactly_once(&r);
    // 60 agents, about 30 on core 0, half of those cut from it.
    let (back, cut) = failed_over(&r);
    assert!(cut >= 10, "{r}");
    assert_eq!(back, cut, "every cut agent came back on core 1: {r}");
    let (a, b) = (core_note(&r, 0).unwrap(), core_note(&r, 1).unwrap());
    assert_eq!(a.0, a.1, "core 0's leases are its connections: {r}");
    assert_eq!(b.0, b.1, "core 1's leases are its connections: {r}");
    assert_eq!(a.0 + b.0, 60, "one lease per node: {r}");
    assert!(
        b.0 >= 30 + cut,
        "core 1 took the cut agents' leases over: {r}"
    );
    assert!(r.recovery.is_some(), "{r}");
}
