//! `honeybee-bench`: measures telemetry ingest, capture upload and enrolment of a real
//! in-process core on loopback, each beside a bare quinn / rusqlite baseline from the same
//! run, and the module bus's fan-out beside NATS and Mosquitto, and prints (and optionally
//! writes) the figures as Markdown.
//!
//! Everything binds and sends to 127.0.0.1 only, every run is bounded in size and time,
//! and every deployment lives in a temp directory that is removed when it drops.

mod attack;
mod bus;
mod capture;
mod enrol;
mod fixture;
mod fleet;
mod ingest;
mod peers;
mod pg;
mod procstat;
mod search;
mod services;
mod stats;

use anyhow::{Context, Result};
use bus::BusSizes;
use capture::{CaptureSizes, Sink};
use clap::Parser;
use enrol::{EnrolSizes, HandshakeClient};
use fixture::Deployment;
use ingest::IngestSizes;
use stats::{Comparison, Figure, median};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const MIB: f64 = 1024.0 * 1024.0;

#[derive(Parser, Debug)]
#[command(
    name = "honeybee-bench",
    about = "HoneyBee benchmarks against bare quinn/rusqlite baselines (loopback only)"
)]
struct Args {
    /// Small sizes and one run each: a smoke run, not figures.
    #[arg(long)]
    quick: bool,
    /// Also write the figures as a Markdown section to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Runs per measurement (the median is reported); default 3, or 1 with --quick.
    #[arg(long)]
    runs: Option<usize>,
    /// Only these figures (comma-separated: ingest, capture, enrol, bus, services, fleet,
    /// ingest-pg, search). `services` (honeypot services vs Cowrie and OpenCanary), `fleet`
    /// (N simulated agents against a core process), `ingest-pg` (ingest into a core on
    /// PostgreSQL vs a bare COPY loop) and `search` (search and analytics over a large
    /// store, SQLite and PostgreSQL) run only when named here; the last two start a
    /// PostgreSQL server of their own (Debian's `postgresql` package).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Where `bench/scripts/peers.sh` installed Cowrie and OpenCanary (for `services`).
    #[arg(long, default_value = "target/bench-peers")]
    peers_dir: PathBuf,
    /// `services` without the peers: HoneyBee's side only.
    #[arg(long)]
    no_peers: bool,
    /// The smallest sizes (the smoke test's).
    #[arg(long, hide = true)]
    tiny: bool,
    /// `search`: events stored in each backend before the queries are timed.
    #[arg(long, default_value_t = 10_000_000)]
    search_events: u64,
    /// `fleet`: how many simulated agents (each its own UDP socket and certificate).
    #[arg(long, default_value_t = 1000)]
    agents: usize,
    /// `fleet`: also write its figures as one JSON object to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// `fleet`: seconds of each CPU measurement window (idle, trickle).
    #[arg(long, default_value_t = 20)]
    fleet_window: u64,
    /// `fleet`: run the core as `EXE --core-run DIR`: another build of this harness, to
    /// compare two builds of the core under the same harness.
    #[arg(long, value_name = "EXE")]
    fleet_core_exe: Option<PathBuf>,
    /// `fleet`: the agents reconnect on the schedule before the core's "come back"
    /// (250 ms doubling to 30 s, no quick probes): the storm's "before", same binary.
    #[arg(long)]
    fleet_legacy_backoff: bool,
    /// `fleet`: the new schedule's waits, every attempt on QUIC's default initial RTT.
    #[arg(long)]
    fleet_default_rtt: bool,
    /// `fleet`: ping round trips sampled per scenario.
    #[arg(long, default_value_t = 200)]
    rtt_samples: usize,
    /// Internal: run a core on DIR in this process (what `honeybee core run` does), for
    /// `fleet` when the CLI binary is not built.
    #[arg(long, hide = true, value_name = "DIR")]
    core_run: Option<PathBuf>,
    /// Internal: the bare quinn baseline server of `fleet` (core certificates in DIR).
    #[arg(long, hide = true, num_args = 2, value_names = ["DIR", "ADDR"])]
    bare_server: Option<Vec<String>>,
    /// Internal: run the agent of the `services` figures in this process (what
    /// `honeybee-agent run --data-dir DIR` does).
    #[arg(long, hide = true, value_name = "DIR")]
    agent_run: Option<PathBuf>,
}

/// Every size the harness uses, so each mode is one constructor.
#[derive(Debug, Clone)]
pub struct Sizes {
    pub label: &'static str,
    pub runs: usize,
    pub ingest: IngestSizes,
    pub captures: Vec<CaptureSizes>,
    pub enrol: EnrolSizes,
    pub enrol_concurrency: usize,
    pub bus: BusSizes,
}

impl Sizes {
    pub fn full() -> Sizes {
        Sizes {
            label: "full",
            runs: 3,
            ingest: IngestSizes {
                agents: 100,
                batches: 20,
                batch_events: 512,
                window: 8,
                limit: Duration::from_secs(300),
            },
            captures: vec![
                CaptureSizes {
                    count: 8,
                    bytes: 16 << 20,
                    limit: Duration::from_secs(120),
                },
                CaptureSizes {
                    count: 1,
                    bytes: 64 << 20,
                    limit: Duration::from_secs(120),
                },
            ],
            enrol: EnrolSizes {
                count: 200,
                concurrency: 1,
                limit: Duration::from_secs(300),
            },
            enrol_concurrency: 8,
            bus: BusSizes {
                subscribers: vec![1, 10, 100],
                deliveries: 2_000_000,
                limit: Duration::from_secs(60),
                flat_out: true,
                ingest_events: 200_000,
            },
        }
    }

    pub fn quick() -> Sizes {
        Sizes {
            label: "quick",
            runs: 1,
            ingest: IngestSizes {
                agents: 10,
                batches: 4,
                batch_events: 512,
                window: 4,
                limit: Duration::from_secs(60),
            },
            captures: vec![CaptureSizes {
                count: 2,
                bytes: 4 << 20,
                limit: Duration::from_secs(60),
            }],
            enrol: EnrolSizes {
                count: 20,
                concurrency: 1,
                limit: Duration::from_secs(60),
            },
            enrol_concurrency: 4,
            bus: BusSizes {
                subscribers: vec![1, 10, 100],
                deliveries: 200_000,
                limit: Duration::from_secs(30),
                flat_out: true,
                ingest_events: 20_000,
            },
        }
    }

    /// For the smoke test: exercises every path at the smallest useful size.
    pub fn tiny() -> Sizes {
        Sizes {
            label: "tiny",
            runs: 1,
            ingest: IngestSizes {
                agents: 2,
                batches: 2,
                batch_events: 16,
                window: 2,
                limit: Duration::from_secs(60),
            },
            captures: vec![CaptureSizes {
                count: 1,
                bytes: 256 << 10,
                limit: Duration::from_secs(60),
            }],
            enrol: EnrolSizes {
                count: 3,
                concurrency: 1,
                limit: Duration::from_secs(60),
            },
            enrol_concurrency: 2,
            bus: BusSizes {
                subscribers: vec![1, 3],
                deliveries: 3_000,
                limit: Duration::from_secs(30),
                flat_out: false,
                ingest_events: 64,
            },
        }
    }
}

fn progress(what: &str) {
    eprintln!("[bench] {what}");
}

pub async fn figure_ingest(s: &Sizes) -> Result<Figure> {
    let sz = s.ingest;
    let (mut ours, mut base, mut enrol_s, mut bytes_per_event) = (vec![], vec![], vec![], 0.0);
    let (mut store_ours, mut store_base) = (vec![], vec![]);
    for run in 0..s.runs {
        let mut dep = Deployment::start().await?;
        let t = Instant::now();
        let ids = dep.enrol_agents(sz.agents).await?;
        enrol_s.push(t.elapsed().as_secs_f64());
        let r = ingest::core_run(&dep, &ids, sz).await?;
        dep.stop_core().await;
        let db = dep.dir.path().join("baseline.db");
        let b = ingest::baseline_run(&dep, &ids, sz, &db).await?;
        bytes_per_event = r.wire_bytes as f64 / r.sample.count as f64;
        progress(&format!(
            "ingest run {}: core {:.0} events/s ({:.2} s), baseline {:.0} events/s ({:.2} s)",
            run + 1,
            r.sample.per_s(),
            r.sample.elapsed.as_secs_f64(),
            b.sample.per_s(),
            b.sample.elapsed.as_secs_f64()
        ));
        ours.push(r.sample.per_s());
        base.push(b.sample.per_s());
        let so = ingest::store_only_core(sz, &dep.dir.path().join("store-only-core.db")).await?;
        let sb =
            ingest::store_only_baseline(sz, &dep.dir.path().join("store-only-baseline.db")).await?;
        progress(&format!(
            "ingest run {}: store only: core SqliteStore {:.0} events/s, baseline writer {:.0} events/s",
            run + 1,
            so.per_s(),
            sb.per_s()
        ));
        store_ours.push(so.per_s());
        store_base.push(sb.per_s());
    }
    Ok(Figure {
        title: "Telemetry ingest into the durable store".into(),
        unit: "events/s".into(),
        rows: vec![
            Comparison {
                what: format!(
                    "{} agents × {} batches × {} events, window {} batches/agent",
                    sz.agents, sz.batches, sz.batch_events, sz.window
                ),
                ours,
                baseline_name:
                    "bare quinn stream + rusqlite WAL loop (one writer, batched transactions)"
                        .into(),
                baseline: base,
                goal: Some(0.8),
            },
            Comparison {
                what:
                    "diagnostic: store only, no network (same batches, one producer task per agent)"
                        .into(),
                ours: store_ours,
                baseline_name: "the baseline's rusqlite writer thread alone".into(),
                baseline: store_base,
                goal: None,
            },
        ],
        notes: vec![
            format!(
                "{} events per run; {:.0} wire bytes per event (postcard, framing included); counted from \"go\" (all agents connected and welcomed) until the last `Ack`, which the core sends only after the batch's transaction committed.",
                sz.total_events(),
                bytes_per_event
            ),
            format!(
                "Both sides: the same client code, {} client endpoints (one UDP socket per agent, as real agents), mTLS with the same enrolled identities, the core's TLS and transport configs; the baseline inserts the same columns into the same table and indexes (`core/src/store/schema.sql`), `journal_mode=WAL`, `synchronous=NORMAL`, ≤10 000 events per transaction.",
                sz.agents
            ),
            format!(
                "Enrolling the {} agents before each run took {:.1} s (median; not part of the figure).",
                sz.agents,
                median(&enrol_s)
            ),
        ],
    })
}

/// Ingest into a core whose store is PostgreSQL, beside a bare quinn server whose one
/// writer COPYs the same rows into the same table and indexes on the same server.
pub async fn figure_ingest_pg(s: &Sizes) -> Result<Figure> {
    let sz = s.ingest;
    let mut server = pg::Pg::start().await?;
    let version = server.version().await?;
    let (mut ours, mut base, mut enrol_s, mut bytes_per_event) = (vec![], vec![], vec![], 0.0);
    let (mut store_ours, mut store_base, mut store_insert) = (vec![], vec![], vec![]);
    let mut loads = vec![];
    for run in 0..s.runs {
        loads.push(loadavg());
        let core_url = server.fresh_database("ingest_core").await?;
        let pw_dir = tempfile::tempdir()?;
        let store = honeybee_core::config::RawStore {
            url: core_url.clone(),
            password_file: Some(pg::Pg::password_file(pw_dir.path())?),
            ..Default::default()
        };
        let mut dep = Deployment::start_with_store(store).await?;
        let t = Instant::now();
        let ids = dep.enrol_agents(sz.agents).await?;
        enrol_s.push(t.elapsed().as_secs_f64());
        let r = ingest::pg_core_run(&dep, &ids, sz, &core_url).await?;
        dep.stop_core().await;
        let base_url = server.fresh_database("ingest_base").await?;
        let b = ingest::pg_baseline_run(&dep, &ids, sz, &base_url).await?;
        bytes_per_event = r.wire_bytes as f64 / r.sample.count as f64;
        progress(&format!(
            "ingest-pg run {}: core {:.0} events/s ({:.2} s), baseline {:.0} events/s ({:.2} s)",
            run + 1,
            r.sample.per_s(),
            r.sample.elapsed.as_secs_f64(),
            b.sample.per_s(),
            b.sample.elapsed.as_secs_f64()
        ));
        ours.push(r.sample.per_s());
        base.push(b.sample.per_s());
        let so =
            ingest::pg_store_only_core(sz, &server.fresh_database("store_core").await?).await?;
        let sb = ingest::pg_store_only_baseline(
            sz,
            &server.fresh_database("store_base").await?,
            ingest::PgWrite::Copy,
        )
        .await?;
        let si = ingest::pg_store_only_baseline(
            sz,
            &server.fresh_database("store_insert").await?,
            ingest::PgWrite::CoreInsert,
        )
        .await?;
        progress(&format!(
            "ingest-pg run {}: store only: core PgStore {:.0} events/s, baseline COPY writer {:.0} events/s, writer with the core's INSERT {:.0} events/s",
            run + 1,
            so.per_s(),
            sb.per_s(),
            si.per_s()
        ));
        store_ours.push(so.per_s());
        store_base.push(sb.per_s());
        store_insert.push(si.per_s());
    }
    loads.push(loadavg());
    drop(server);
    Ok(Figure {
        title: "Telemetry ingest into PostgreSQL".into(),
        unit: "events/s".into(),
        rows: vec![
            Comparison {
                what: format!(
                    "{} agents × {} batches × {} events, window {} batches/agent",
                    sz.agents, sz.batches, sz.batch_events, sz.window
                ),
                ours,
                baseline_name:
                    "bare quinn stream + tokio-postgres binary COPY loop (one writer, one connection, ≤10 000 events per transaction)"
                        .into(),
                baseline: base,
                goal: Some(0.8),
            },
            Comparison {
                what:
                    "diagnostic: store only, no network (same batches, one producer task per agent)"
                        .into(),
                ours: store_ours.clone(),
                baseline_name: "the baseline's COPY writer task alone".into(),
                baseline: store_base,
                goal: None,
            },
            Comparison {
                what:
                    "diagnostic: store only, no network (same batches, one producer task per agent)"
                        .into(),
                ours: store_ours.clone(),
                baseline_name: "the baseline's writer task with the core's INSERT … UNNEST … ON CONFLICT DO NOTHING RETURNING per batch instead of COPY (pipelined, many batches per transaction, the core's advisory lock once per transaction)".into(),
                baseline: store_insert,
                goal: None,
            },
        ],
        notes: vec![
            format!(
                "{} events per run; {:.0} wire bytes per event; counted from \"go\" (all agents connected and welcomed) until the last `Ack`, sent only after the batch's transaction committed.",
                sz.total_events(),
                bytes_per_event
            ),
            format!(
                "PostgreSQL {version} started by the harness on 127.0.0.1 (the test fixture's server, `core/src/store/pg_test_server.rs`: `fsync=off`, `synchronous_commit=off`, `full_page_writes=off`, otherwise defaults, so `shared_buffers` 128 MB); a fresh database per measurement, reached over TCP with a password, no TLS. Both sides write every column the core writes (`search_text` and the other searchable columns derived the same way) into the tables and indexes every migration of `PgStore::open` makes (`UNIQUE (node, seq)`, six B-tree indexes and the two `pg_trgm` GIN indexes on `events`); the bare loop does not write the count tables, which is part of the core's extra work."
            ),
            format!(
                "Same client code as the SQLite figure ({} client endpoints, mTLS with the same enrolled identities, the core's TLS and transport configs).",
                sz.agents
            ),
            format!(
                "Enrolling the {} agents before each run (against the PostgreSQL store) took {:.1} s (median; not part of the figure). Load average (1/5/15 min) at the start of each run and at the end: {}.",
                sz.agents,
                median(&enrol_s),
                loads.join(" → ")
            ),
        ],
    })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub async fn figure_capture(s: &Sizes) -> Result<Figure> {
    let sinks = [
        Sink::FileSynced,
        Sink::File,
        Sink::Memory,
        Sink::FilePerChunk,
        Sink::HashedBuffered,
    ];
    let mut rows = vec![];
    let mut notes = vec![];
    for sz in &s.captures {
        let caps = capture::contents(*sz);
        let mut ours = vec![];
        let mut base: Vec<Vec<f64>> = vec![vec![]; sinks.len()];
        let mut chunk_sizes = vec![];
        for run in 0..s.runs {
            let mut dep = Deployment::start().await?;
            let id = dep.enrol_agents(1).await?.remove(0);
            let r = capture::core_run(&dep, &id, &caps, sz.limit).await?;
            dep.stop_core().await;
            ours.push(r.count as f64 / MIB / r.elapsed.as_secs_f64());
            let mut line = format!(
                "capture {}×{} MiB run {}: core {:.1} MiB/s",
                sz.count,
                sz.bytes >> 20,
                run + 1,
                ours[run]
            );
            for (k, sink) in sinks.iter().enumerate() {
                let dir = dep.dir.path().join("baseline-captures");
                let (b, stats) =
                    capture::baseline_run(&dep, &id, &caps, *sink, &dir, sz.limit).await?;
                base[k].push(b.count as f64 / MIB / b.elapsed.as_secs_f64());
                line += &format!(", {:?} {:.1}", sink, base[k][run]);
                let chunks = stats.chunks.load(std::sync::atomic::Ordering::Relaxed);
                if chunks > 0 {
                    chunk_sizes.push(
                        stats.bytes.load(std::sync::atomic::Ordering::Relaxed) as f64
                            / chunks as f64,
                    );
                }
            }
            progress(&line);
        }
        let what = format!(
            "{} × {} MiB, one agent, sequential streams",
            sz.count,
            sz.bytes as f64 / MIB
        );
        for (k, sink) in sinks.iter().enumerate() {
            rows.push(Comparison {
                what: what.clone(),
                ours: ours.clone(),
                baseline_name: sink.name().into(),
                baseline: base[k].clone(),
                goal: (*sink == Sink::FileSynced).then_some(0.9),
            });
        }
        if !chunk_sizes.is_empty() {
            notes.push(format!(
                "{what}: quinn's `read_chunk` handed over {:.0} bytes per chunk on average, so a per-chunk write is one `tokio::fs` (spawn_blocking) round trip per ~{:.1} KiB.",
                median(&chunk_sizes),
                median(&chunk_sizes) / 1024.0
            ));
        }
    }
    notes.push("Counted from the first stream opened until the last `CaptureStored`; the core sends it after SHA-256 check, fsync, rename and the metadata row commit. Contents are random (nothing dedupes). Every baseline uses the core's TLS/transport config and the same mTLS client.".into());
    Ok(Figure {
        title: "Capture upload".into(),
        unit: "MiB/s".into(),
        rows,
        notes,
    })
}

pub async fn figure_enrol(s: &Sizes) -> Result<Figure> {
    let seq = s.enrol;
    let conc = EnrolSizes {
        concurrency: s.enrol_concurrency,
        ..s.enrol
    };
    let clients = [HandshakeClient::Shared, HandshakeClient::FreshDrained];
    let mut ours = [vec![], vec![]];
    let mut raw = [vec![], vec![]];
    let mut base: [[Vec<f64>; 2]; 2] = Default::default();
    let mut costs = (0.0, 0.0);
    for run in 0..s.runs {
        let mut dep = Deployment::start().await?;
        let a = enrol::core_run(&mut dep, seq).await?;
        let b = enrol::core_run(&mut dep, conc).await?;
        let ra = enrol::core_handler_run(&mut dep, seq).await?;
        let rb = enrol::core_handler_run(&mut dep, conc).await?;
        raw[0].push(ra.per_s());
        raw[1].push(rb.per_s());
        if run == 0 {
            costs = enrol::crypto_costs(&dep, seq.count.min(100))?;
        }
        dep.stop_core().await;
        ours[0].push(a.per_s());
        ours[1].push(b.per_s());
        let mut line = format!(
            "enrol run {}: core seq {:.1}/s, {}-way {:.1}/s; handler only seq {:.1}/s, {}-way {:.1}/s",
            run + 1,
            a.per_s(),
            conc.concurrency,
            b.per_s(),
            ra.per_s(),
            conc.concurrency,
            rb.per_s()
        );
        for (k, client) in clients.iter().enumerate() {
            for (m, sz) in [seq, conc].iter().enumerate() {
                let h = enrol::baseline_run(&dep, *sz, *client).await?;
                base[m][k].push(h.per_s());
                line += &format!(", {client:?}/{} {:.1}/s", sz.concurrency, h.per_s());
            }
        }
        progress(&line);
    }
    let mut rows = vec![];
    for (m, sz) in [seq, conc].iter().enumerate() {
        for (k, client) in clients.iter().enumerate() {
            rows.push(Comparison {
                what: format!(
                    "{} enrolments, {}",
                    sz.count,
                    if sz.concurrency == 1 {
                        "sequential".to_string()
                    } else {
                        format!("{}-way concurrent", sz.concurrency)
                    }
                ),
                ours: ours[m].clone(),
                baseline_name: client.name().into(),
                baseline: base[m][k].clone(),
                goal: None,
            });
        }
        rows.push(Comparison {
            what: format!(
                "diagnostic: core enrolment handler only, {} requests, concurrency {} (bench client: no drain wait, no files)",
                sz.count, sz.concurrency
            ),
            ours: raw[m].clone(),
            baseline_name: HandshakeClient::Shared.name().into(),
            baseline: base[m][0].clone(),
            goal: None,
        });
    }
    Ok(Figure {
        title: "Enrolment".into(),
        unit: "enrolments/s (baseline: handshakes/s)".into(),
        rows,
        notes: vec![
            "Each enrolment is `honeybee_agent::enroll::enroll` end to end: P-256 key pair and CSR, QUIC handshake with the CA pin check, token consumed in the store, CSR signed, node and certificate recorded, identity files written with fsync; one single-use token each, created beforehand (not timed).".into(),
            format!(
                "CPU per enrolment outside the network on this machine: key pair + CSR {:.0} µs (agent side), CA signing {:.0} µs (core side).",
                costs.0, costs.1
            ),
        ],
    })
}

fn sh(cmd: &str, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The commit, and whether the tree held uncommitted changes when this ran.
fn commit() -> String {
    let head = sh("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    match sh("git", &["status", "--porcelain", "--untracked-files=no"]) {
        Some(s) if !s.is_empty() => format!("{head} (plus uncommitted changes in the tree)"),
        _ => head,
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kib| kib / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    format!("{cpus} CPUs ({model}), {mem_gib:.1} GiB RAM")
}

async fn run(args: &Args) -> Result<String> {
    let mut sizes = if args.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    if let Some(r) = args.runs {
        sizes.runs = r.clamp(1, 9);
    }
    let wanted = |f: &str| args.only.is_empty() || args.only.iter().any(|o| o == f);
    let mut out = String::from("## Figures\n\n");
    out += &format!(
        "Measured by `honeybee-bench` ({} sizes, median of {} run{}), commit {}, {}, on {}. Release build, loopback only; HoneyBee and its baseline run back to back in the same process.\n\n",
        sizes.label,
        sizes.runs,
        if sizes.runs == 1 { "" } else { "s" },
        commit(),
        sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default(),
        machine()
    );
    type FigureFn = for<'a> fn(
        &'a Sizes,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Figure>> + Send + 'a>,
    >;
    let figures: [(&str, FigureFn); 4] = [
        ("ingest", |s| Box::pin(figure_ingest(s))),
        ("capture", |s| Box::pin(figure_capture(s))),
        ("enrol", |s| Box::pin(figure_enrol(s))),
        ("bus", |s| Box::pin(bus::figure(&s.bus, s.runs))),
    ];
    for (name, f) in figures {
        if !wanted(name)
            || args.only.iter().any(|o| o == "services") && !args.only.iter().any(|o| o == name)
        {
            continue;
        }
        progress(&format!("{name}: starting"));
        let fig = f(&sizes).await.with_context(|| format!("figure {name}"))?;
        let md = fig.markdown();
        println!("{md}");
        out += &md;
        out.push('\n');
    }
    if args.only.iter().any(|o| o == "ingest-pg") {
        progress("ingest-pg: starting");
        let fig = figure_ingest_pg(&sizes).await.context("figure ingest-pg")?;
        let md = fig.markdown();
        println!("{md}");
        out += &md;
        out.push('\n');
    }
    if args.only.iter().any(|o| o == "search") {
        let sz = search::SearchSizes {
            events: if args.quick {
                200_000
            } else {
                args.search_events.clamp(1_000, 50_000_000)
            },
            nodes: 50,
            days: 7,
            batch: 1000,
            producers: 4,
            runs: sizes.runs,
            fill_limit: Duration::from_secs(1800),
            query_limit: Duration::from_secs(300),
        };
        progress(&format!("search: starting, {} events", sz.events));
        let mut server = pg::Pg::start().await?;
        let md = search::figure(&sz, &mut server)
            .await
            .context("figure search")?;
        drop(server);
        println!("{md}");
        out += &md;
        out.push('\n');
    }
    if args.only.iter().any(|o| o == "services") {
        progress("services: starting");
        let mut sizes = if args.tiny {
            services::ServiceSizes::tiny()
        } else if args.quick {
            services::ServiceSizes::quick()
        } else {
            services::ServiceSizes::full()
        };
        if let Some(r) = args.runs {
            sizes.runs = r.clamp(1, 9);
        }
        let bench = services::ServiceBench {
            sizes,
            agent_exe: services::AgentExe::find()?,
            peers: (!args.no_peers).then(|| peers::PeersDir::new(args.peers_dir.clone())),
        };
        let report = bench.run().await.context("figure services")?;
        println!("{}", report.markdown);
        out += &report.markdown;
        out.push('\n');
    }
    if args.only.iter().any(|o| o == "fleet") {
        progress(&format!("fleet: starting, {} agents", args.agents));
        let mut opts = fleet::FleetOpts::new(args.agents);
        opts.window = Duration::from_secs(args.fleet_window.clamp(1, 600));
        opts.rtt_samples = args.rtt_samples.clamp(1, 100_000);
        opts.core_exe = args.fleet_core_exe.clone();
        opts.legacy_backoff = args.fleet_legacy_backoff;
        opts.default_rtt = args.fleet_default_rtt;
        let report = fleet::run(&opts).await.context("figure fleet")?;
        let md = report.markdown();
        println!("{md}");
        out += &md;
        out.push('\n');
        if let Some(path) = &args.json {
            std::fs::write(path, report.json())
                .with_context(|| format!("write {}", path.display()))?;
            progress(&format!("wrote {}", path.display()));
        }
    }
    Ok(out)
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(dir) = args.agent_run {
        return services::agent_main(dir);
    }
    if let Some(dir) = args.core_run {
        return fleet::server::core_main(dir);
    }
    if let Some(v) = &args.bare_server {
        let addr = v[1].parse().context("--bare-server ADDR")?;
        return fleet::server::bare_main(PathBuf::from(&v[0]), addr);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    honeybee_pki::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let md = rt.block_on(run(&args))?;
    if let Some(path) = &args.out {
        std::fs::write(path, md).with_context(|| format!("write {}", path.display()))?;
        progress(&format!("wrote {}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every path at tiny sizes; asserts counts (checked inside each run) and shape, never
    /// timings.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn smoke_all_figures_at_tiny_sizes() {
        honeybee_pki::install_crypto_provider();
        let s = Sizes::tiny();
        let ingest = figure_ingest(&s).await.expect("ingest");
        assert_eq!(ingest.rows.len(), 2);
        let capture = figure_capture(&s).await.expect("capture");
        assert_eq!(capture.rows.len(), 5);
        let enrol = figure_enrol(&s).await.expect("enrol");
        assert_eq!(enrol.rows.len(), 6);
        // The module bus, HoneyBee side only (nats-server and mosquitto are not needed):
        // every event reaches every shim subscriber, paced; through the ingest path every
        // event is delivered or reported missed.
        let max_subs = s.bus.subscribers.iter().copied().max().unwrap_or(1);
        let hb = bus::HoneyBeeBus::start(max_subs, 1)
            .await
            .expect("bus core");
        for &n in &s.bus.subscribers {
            let m = s.bus.messages(n);
            let o = hb
                .direct(n, m, Some(bus::WINDOW), s.bus.limit)
                .await
                .expect("bus direct");
            assert_eq!(
                (o.delivered, o.missed),
                (m * n as u64, 0),
                "{n} subscribers"
            );
            assert!(o.per_s() > 0.0);
            let o = hb
                .ingest(n, s.bus.ingest_events, s.bus.limit)
                .await
                .expect("bus ingest");
            assert_eq!(o.expected, s.bus.ingest_events * n as u64);
            assert_eq!(
                o.delivered + o.missed,
                o.expected,
                "ingest, {n} subscribers"
            );
            assert!(o.delivered > 0);
        }
        for fig in [&ingest, &capture, &enrol] {
            for row in &fig.rows {
                assert_eq!((row.ours.len(), row.baseline.len()), (1, 1), "{}", row.what);
                assert!(row.ours[0] > 0.0 && row.baseline[0] > 0.0, "{}", row.what);
            }
            assert!(fig.markdown().contains(&fig.title));
        }
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
