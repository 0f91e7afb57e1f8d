//! Figure 1: telemetry ingest into the durable store, events/s from many agents, each on
//! its own QUIC connection — against the real core, and against a bare quinn server that
//! inserts the same rows into a rusqlite WAL database from one writer thread.

use crate::fixture::{
    AgentId, Deployment, baseline_hello, client_endpoint, connect_agent, read_body,
};
use crate::stats::Sample;
use anyhow::{Context, Result, bail};
use honeybee_agent::transport::{read_frame, write_frame};
use honeybee_proto::codec::{self, FrameLimit};
use honeybee_proto::control::CoreMsg;
use honeybee_proto::event::{AuthAttempt, AuthMethod, Event, EventBatch, EventKind};
use honeybee_proto::stream::StreamKind;
use honeybee_proto::{SessionId, alpn};
use rusqlite::params;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, mpsc, watch};

#[derive(Debug, Clone, Copy)]
pub struct IngestSizes {
    pub agents: usize,
    pub batches: usize,
    pub batch_events: usize,
    /// Batches sent and not yet acked, per agent.
    pub window: usize,
    pub limit: Duration,
}

impl IngestSizes {
    pub fn total_events(&self) -> u64 {
        (self.agents * self.batches * self.batch_events) as u64
    }
}

/// One ingest run: events acked, time from "go" to the last ack, wire bytes sent.
#[derive(Debug, Clone, Copy)]
pub struct IngestRun {
    pub sample: Sample,
    pub wire_bytes: u64,
}

const USERS: [&str; 8] = [
    "root", "admin", "ubuntu", "test", "oracle", "pi", "user", "postgres",
];
const PASSWORDS: [&str; 8] = [
    "123456",
    "password",
    "admin",
    "root",
    "qwerty",
    "12345678",
    "raspberry",
    "P@ssw0rd",
];

/// A realistic SSH brute-force event: one connect, then three password attempts per session.
pub fn event(agent: usize, seq: u64, now_ms: i64) -> Event {
    let i = seq as usize;
    let src = SocketAddr::from((
        [198, 51, (agent % 200) as u8, (i / 4 % 250 + 1) as u8],
        30_000 + (i / 4 % 30_000) as u16,
    ));
    let kind = if i.is_multiple_of(4) {
        EventKind::Connect
    } else {
        EventKind::AuthAttempt(AuthAttempt {
            method: AuthMethod::Password,
            username: USERS[i % 8].into(),
            password: Some(PASSWORDS[(i / 8) % 8].into()),
            key_fingerprint: None,
            key_algorithm: None,
            client_version: Some("SSH-2.0-libssh2_1.10.0".into()),
            success: false,
        })
    };
    Event {
        seq,
        time_ms: now_ms,
        service: "ssh".into(),
        session: Some(SessionId((seq / 4).to_be_bytes())),
        src: Some(src),
        dst: Some(SocketAddr::from(([10, 0, 0, 1], 22))),
        kind,
    }
}

pub fn batch(agent: usize, first_seq: u64, n: usize) -> EventBatch {
    let now = honeybee_core::now_ms();
    EventBatch {
        events: (0..n as u64)
            .map(|k| event(agent, first_seq + k, now))
            .collect(),
    }
}

/// The agents' side, identical for the core and the baseline: every agent connects and
/// says hello, then all start together; each sends `batches` telemetry streams with at most
/// `window` unacknowledged, and is done when every event is acked.
pub async fn drive(addr: SocketAddr, ids: &[AgentId], sizes: IngestSizes) -> Result<IngestRun> {
    let (ready_tx, mut ready_rx) = mpsc::channel::<()>(ids.len());
    let (go_tx, go_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for (idx, id) in ids.iter().enumerate() {
        let (id, ready_tx, mut go_rx) = (id.clone(), ready_tx.clone(), go_rx.clone());
        tasks.spawn(async move {
            let ep = client_endpoint()?;
            let (conn, _ctl_send, mut ctl_recv, last_seq) = connect_agent(&ep, &id, addr).await?;
            ready_tx.send(()).await.ok();
            go_rx.wait_for(|go| *go).await?;
            let window = Semaphore::new(sizes.window);
            let total = (sizes.batches * sizes.batch_events) as u64;
            let sender = async {
                let mut bytes = 0u64;
                for b in 0..sizes.batches {
                    window.acquire().await?.forget();
                    let first = last_seq + 1 + (b * sizes.batch_events) as u64;
                    let frame = codec::encode(
                        &batch(idx, first, sizes.batch_events),
                        FrameLimit::TELEMETRY,
                    )?;
                    let mut s = conn.open_uni().await?;
                    s.write_all(&[StreamKind::Telemetry as u8]).await?;
                    s.write_all(&frame).await?;
                    s.finish()?;
                    bytes += 1 + frame.len() as u64;
                }
                anyhow::Ok(bytes)
            };
            let acker = async {
                let mut acked = 0u64;
                while acked < total {
                    if let CoreMsg::Ack { first, last } =
                        read_frame(&mut ctl_recv, FrameLimit::CONTROL).await?
                    {
                        acked += last - first + 1;
                        window.add_permits(1);
                    }
                }
                anyhow::Ok(acked)
            };
            let (bytes, acked) = tokio::try_join!(sender, acker)?;
            // Connections stay open until every agent is done, so no disconnect
            // bookkeeping on the server overlaps the measurement.
            anyhow::Ok((acked, bytes, Instant::now(), conn, ep, _ctl_send))
        });
    }
    drop(ready_tx);
    for _ in 0..ids.len() {
        if ready_rx.recv().await.is_none() {
            // Every agent task has ended before saying ready: one of them failed.
            break;
        }
    }
    let start = Instant::now();
    let _ = go_tx.send(true);
    let mut events = 0;
    let mut wire_bytes = 0;
    let mut last_ack = start;
    let mut open = Vec::with_capacity(ids.len());
    while let Some(joined) = tasks.join_next().await {
        let (acked, bytes, done_at, conn, ep, ctl) =
            joined.context("agent task")?.context("agent")?;
        last_ack = last_ack.max(done_at);
        events += acked;
        wire_bytes += bytes;
        open.push((conn, ep, ctl));
    }
    for (conn, _, _) in &open {
        conn.close(0u32.into(), b"done");
    }
    for (_, ep, _) in &open {
        let _ = tokio::time::timeout(Duration::from_secs(2), ep.wait_idle()).await;
    }
    if events != sizes.total_events() {
        bail!("{events} events acked, expected {}", sizes.total_events());
    }
    Ok(IngestRun {
        sample: Sample {
            count: events,
            elapsed: last_ack - start,
        },
        wire_bytes,
    })
}

/// Ingest through the real core: a fresh deployment, `agents` enrolled identities.
pub async fn core_run(dep: &Deployment, ids: &[AgentId], sizes: IngestSizes) -> Result<IngestRun> {
    let run = tokio::time::timeout(sizes.limit, drive(dep.addr, ids, sizes))
        .await
        .context("core ingest run timed out")??;
    let stored = dep.core()?.shared().store.count_events(None).await?;
    if stored != sizes.total_events() {
        bail!(
            "core stored {stored} events, expected {}",
            sizes.total_events()
        );
    }
    Ok(run)
}

// ------------------------------------------------------------------ baseline

/// One event as the baseline stores it: the same columns the core's events table has.
struct Row {
    seq: i64,
    time_ms: i64,
    service: String,
    kind: &'static str,
    src_ip: Option<String>,
    src_port: Option<u16>,
    session: Option<String>,
    username: Option<String>,
    body: Vec<u8>,
}

impl Row {
    fn new(ev: Event) -> Result<Row> {
        let body = postcard::to_allocvec(&ev)?;
        let kind = ev.kind.name();
        let username = match ev.kind {
            EventKind::AuthAttempt(a) => Some(a.username),
            _ => None,
        };
        Ok(Row {
            seq: i64::try_from(ev.seq)?,
            time_ms: ev.time_ms,
            service: ev.service,
            kind,
            src_ip: ev.src.map(|a| a.ip().to_string()),
            src_port: ev.src.map(|a| a.port()),
            session: ev.session.map(|s| hex::encode(s.0)),
            username,
            body,
        })
    }
}

struct Job<R = Row> {
    node: Arc<str>,
    rows: Vec<R>,
    first: u64,
    last: u64,
    ack: mpsc::UnboundedSender<CoreMsg>,
}

/// Same table and indexes as the core, so the comparison is about everything around the
/// database, not about what is stored.
const SCHEMA: &str = include_str!("../../core/src/store/schema.sql");
const INSERT: &str = "INSERT OR IGNORE INTO events (node, seq, time_ms, received_ms, service, kind, \
     src_ip, src_port, session, username, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
/// Events per transaction at most, as the core's writer.
const MAX_TX_EVENTS: usize = 10_000;

fn open_db(path: &Path) -> Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        bail!("baseline database is not in WAL mode ({mode})");
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// One writer thread: drain what is queued, insert it in one transaction, commit, ack.
fn writer(conn: rusqlite::Connection, mut rx: mpsc::UnboundedReceiver<Job>) -> Result<u64> {
    let mut inserted = 0u64;
    let mut jobs = Vec::new();
    while let Some(job) = rx.blocking_recv() {
        let mut weight = job.rows.len();
        jobs.push(job);
        while weight < MAX_TX_EVENTS {
            match rx.try_recv() {
                Ok(j) => {
                    weight += j.rows.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let received_ms = honeybee_core::now_ms();
        let tx = conn.unchecked_transaction()?;
        {
            let mut stmt = tx.prepare_cached(INSERT)?;
            for job in &jobs {
                for r in &job.rows {
                    inserted += stmt.execute(params![
                        &*job.node,
                        r.seq,
                        r.time_ms,
                        received_ms,
                        r.service,
                        r.kind,
                        r.src_ip,
                        r.src_port,
                        r.session,
                        r.username,
                        r.body,
                    ])? as u64;
                }
            }
        }
        tx.commit()?;
        for job in jobs.drain(..) {
            let _ = job.ack.send(CoreMsg::Ack {
                first: job.first,
                last: job.last,
            });
        }
    }
    Ok(inserted)
}

async fn baseline_conn<R: Send + 'static>(
    incoming: quinn::Incoming,
    n: usize,
    jobs: mpsc::UnboundedSender<Job<R>>,
    row: fn(Event) -> Result<R>,
) -> Result<()> {
    let conn = incoming.await?;
    // Same shape and length as the core's ids for enrolled agents.
    let node: Arc<str> = format!("bench-agent-{n:06x}").into();
    let mut ctl = baseline_hello(&conn, &node).await?;
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<CoreMsg>();
    let acks = async move {
        while let Some(m) = ack_rx.recv().await {
            write_frame(&mut ctl, &m, FrameLimit::CONTROL).await?;
        }
        anyhow::Ok(())
    };
    let streams = async {
        while let Ok(mut recv) = conn.accept_uni().await {
            let (node, jobs, ack) = (node.clone(), jobs.clone(), ack_tx.clone());
            tokio::spawn(async move {
                let mut kind = [0u8; 1];
                recv.read_exact(&mut kind).await?;
                let body = read_body(&mut recv, FrameLimit::TELEMETRY).await?;
                let batch: EventBatch = codec::decode_body(&body)?;
                let first = batch.events.iter().map(|e| e.seq).min().unwrap_or(0);
                let last = batch.events.iter().map(|e| e.seq).max().unwrap_or(0);
                let rows = batch
                    .events
                    .into_iter()
                    .map(row)
                    .collect::<Result<Vec<_>>>()?;
                let _ = jobs.send(Job {
                    node,
                    rows,
                    first,
                    last,
                    ack,
                });
                anyhow::Ok(())
            });
        }
        anyhow::Ok(())
    };
    tokio::select! {
        r = acks => r,
        r = streams => r,
    }
}

/// Ingest through a bare quinn server (the core's TLS and transport settings, mTLS with the
/// same agent identities) and a rusqlite loop. The core must not be running.
pub async fn baseline_run(
    dep: &Deployment,
    ids: &[AgentId],
    sizes: IngestSizes,
    db: &Path,
) -> Result<IngestRun> {
    let ep = dep.baseline_endpoint(&[alpn::NODE])?;
    let addr = ep.local_addr()?;
    let conn = open_db(db)?;
    let (jobs_tx, jobs_rx) = mpsc::unbounded_channel::<Job>();
    let writer = std::thread::Builder::new()
        .name("baseline-writer".into())
        .spawn(move || writer(conn, jobs_rx))?;
    let accept_ep = ep.clone();
    let accept = tokio::spawn(async move {
        let mut n = 0;
        while let Some(incoming) = accept_ep.accept().await {
            n += 1;
            tokio::spawn(baseline_conn(incoming, n, jobs_tx.clone(), Row::new));
        }
    });
    let run = tokio::time::timeout(sizes.limit, drive(addr, ids, sizes)).await;
    ep.close(0u32.into(), b"done");
    accept.abort();
    let _ = tokio::time::timeout(Duration::from_secs(5), ep.wait_idle()).await;
    let inserted = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || writer.join()),
    )
    .await
    .context("baseline writer did not stop")??
    .map_err(|_| anyhow::anyhow!("baseline writer panicked"))??;
    let run = run.context("baseline ingest run timed out")??;
    if inserted != sizes.total_events() {
        bail!(
            "baseline stored {inserted} events, expected {}",
            sizes.total_events()
        );
    }
    Ok(run)
}

// ------------------------------------------------------------------ store only

/// The core's `SqliteStore::insert_events` alone, no network: `agents` producers each
/// inserting their batches one after another. Says how much of the ingest time the store
/// itself takes.
pub async fn store_only_core(sizes: IngestSizes, db: &Path) -> Result<Sample> {
    let store = honeybee_core::store::SqliteStore::open(db)?;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for a in 0..sizes.agents {
        let store = store.clone();
        tasks.spawn(async move {
            let node = honeybee_proto::NodeId::new(format!("bench-agent-{a:06x}"))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut n = 0;
            for b in 0..sizes.batches {
                let events =
                    batch(a, 1 + (b * sizes.batch_events) as u64, sizes.batch_events).events;
                n += store
                    .insert_events(&node, honeybee_core::now_ms(), events)
                    .await?
                    .inserted;
            }
            anyhow::Ok(n)
        });
    }
    let mut count = 0;
    while let Some(r) = tasks.join_next().await {
        count += r??;
    }
    let elapsed = start.elapsed();
    store.close().await?;
    if count != sizes.total_events() {
        bail!(
            "store inserted {count} events, expected {}",
            sizes.total_events()
        );
    }
    Ok(Sample { count, elapsed })
}

/// The store-only diagnostics' producers: one task per agent hands the writer its
/// batches one at a time, each after the previous one's ack, as an agent with a window of
/// one would. Returns how many events were acknowledged.
async fn feed_writer<R: Send + Sync + 'static>(
    sizes: IngestSizes,
    jobs_tx: mpsc::UnboundedSender<Job<R>>,
    to_row: fn(Event) -> Result<R>,
) -> Result<u64> {
    let mut tasks = tokio::task::JoinSet::new();
    for a in 0..sizes.agents {
        let jobs = jobs_tx.clone();
        tasks.spawn(async move {
            let node: Arc<str> = format!("bench-agent-{a:06x}").into();
            let (ack, mut acks) = mpsc::unbounded_channel();
            let mut n = 0;
            for b in 0..sizes.batches {
                let first = 1 + (b * sizes.batch_events) as u64;
                let events = batch(a, first, sizes.batch_events).events;
                let rows = events.into_iter().map(to_row).collect::<Result<Vec<_>>>()?;
                let last = first + rows.len() as u64 - 1;
                jobs.send(Job {
                    node: node.clone(),
                    rows,
                    first,
                    last,
                    ack: ack.clone(),
                })?;
                if let Some(CoreMsg::Ack { first, last }) = acks.recv().await {
                    n += last - first + 1;
                }
            }
            anyhow::Ok(n)
        });
    }
    drop(jobs_tx);
    let mut count = 0;
    while let Some(r) = tasks.join_next().await {
        count += r??;
    }
    Ok(count)
}

/// The baseline's writer thread alone, fed the same way as [`store_only_core`].
pub async fn store_only_baseline(sizes: IngestSizes, db: &Path) -> Result<Sample> {
    let conn = open_db(db)?;
    let (jobs_tx, jobs_rx) = mpsc::unbounded_channel::<Job>();
    let writer = std::thread::spawn(move || writer(conn, jobs_rx));
    let start = Instant::now();
    let count = feed_writer(sizes, jobs_tx, Row::new).await?;
    let elapsed = start.elapsed();
    let inserted = tokio::task::spawn_blocking(move || writer.join())
        .await?
        .map_err(|_| anyhow::anyhow!("baseline writer panicked"))??;
    if count != sizes.total_events() || inserted != count {
        bail!(
            "baseline writer acked {count} and inserted {inserted} events, expected {}",
            sizes.total_events()
        );
    }
    Ok(Sample { count, elapsed })
}

// ------------------------------------------------------------------ PostgreSQL

/// Ingest through the real core whose `[store]` is the PostgreSQL database at `url`.
pub async fn pg_core_run(
    dep: &Deployment,
    ids: &[AgentId],
    sizes: IngestSizes,
    url: &str,
) -> Result<IngestRun> {
    let run = tokio::time::timeout(sizes.limit, drive(dep.addr, ids, sizes))
        .await
        .context("core (PostgreSQL) ingest run timed out")??;
    let stored = crate::pg::count_events(url).await?;
    if stored != sizes.total_events() {
        bail!(
            "core stored {stored} events in PostgreSQL, expected {}",
            sizes.total_events()
        );
    }
    Ok(run)
}

/// One event as the PostgreSQL baseline stores it: every column the core's PostgreSQL
/// store writes (the searchable ones derived the same way, `searchable_text` included).
pub struct PgRow {
    seq: i64,
    time_ms: i64,
    service: String,
    kind: &'static str,
    src_ip: Option<String>,
    src_port: Option<i32>,
    session: Option<String>,
    username: Option<String>,
    password: Option<String>,
    command: Option<String>,
    search_text: String,
    body: Vec<u8>,
}

impl PgRow {
    pub fn new(ev: Event) -> Result<PgRow> {
        let body = postcard::to_allocvec(&ev)?;
        let search_text = honeybee_core::store::searchable_text(&ev);
        let kind = ev.kind.name();
        let (username, password, command) = match ev.kind {
            EventKind::AuthAttempt(a) => (Some(a.username), a.password, None),
            EventKind::Command { line } => (None, None, Some(line)),
            _ => (None, None, None),
        };
        Ok(PgRow {
            seq: i64::try_from(ev.seq)?,
            time_ms: ev.time_ms,
            service: ev.service,
            kind,
            src_ip: ev.src.map(|a| a.ip().to_string()),
            src_port: ev.src.map(|a| i32::from(a.port())),
            session: ev.session.map(|s| hex::encode(s.0)),
            username,
            password,
            command,
            search_text,
            body,
        })
    }
}

const PG_COPY: &str = "COPY events (node, seq, time_ms, received_ms, service, kind, src_ip, \
     src_port, session, username, password, command, search_text, body) FROM STDIN (FORMAT binary)";

/// Creates the store's schema in the database at `url` exactly as a core does (every
/// migration, the trigram indexes), so the bare loop writes into the same table and
/// indexes as the core, and returns a connection to it. (The count tables are there too;
/// the bare loop does not write them: that is the core's extra work.)
pub async fn pg_open_baseline(url: &str) -> Result<tokio_postgres::Client> {
    honeybee_core::store::PgStore::open(url, Some(crate::pg::PASSWORD))
        .await
        .context("create the store schema")?
        .close()
        .await?;
    crate::pg::connect(url).await
}

/// One writer task on one connection: drain what is queued (≤10 000 events), one
/// transaction with one binary `COPY … FROM STDIN` of it, commit, ack.
async fn pg_writer(
    client: tokio_postgres::Client,
    rx: mpsc::UnboundedReceiver<Job<PgRow>>,
) -> Result<u64> {
    pg_writer_as(client, rx, PgWrite::Copy).await
}

/// How the PostgreSQL baseline writer stores a transaction's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgWrite {
    /// One binary `COPY … FROM STDIN` of every row.
    Copy,
    /// The core's own statement (`INSERT … SELECT … FROM UNNEST(…) … ON CONFLICT (node,
    /// seq) DO NOTHING RETURNING id, seq`), one per batch, pipelined on the connection,
    /// after the core's advisory lock, once per transaction: what the core's store would
    /// cost if it committed many batches per transaction.
    CoreInsert,
}

/// The core's insert statement (`core/src/store/postgres/store.rs`), verbatim.
const PG_CORE_INSERT: &str = "INSERT INTO events (node, seq, time_ms, received_ms, service, kind, src_ip, \
       src_port, session, username, password, command, search_text, body) \
     SELECT $1, u.seq, u.t, $2, u.service, u.kind, u.src_ip, u.src_port, u.session, \
       u.username, u.password, u.command, u.search_text, u.body \
     FROM UNNEST($3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], \
       $8::int[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], \
       $14::bytea[]) WITH ORDINALITY AS u(seq, t, service, kind, src_ip, src_port, \
       session, username, password, command, search_text, body, ord) \
     ORDER BY u.ord \
     ON CONFLICT (node, seq) DO NOTHING RETURNING id, seq";
/// The core's events advisory lock key.
const PG_EVENTS_LOCK: i64 = 0x4842_5f45_5645_4e54;

/// One batch as the core binds it: a column array each.
struct Columns<'a> {
    seq: Vec<i64>,
    time: Vec<i64>,
    service: Vec<&'a str>,
    kind: Vec<&'a str>,
    src_ip: Vec<Option<&'a str>>,
    src_port: Vec<Option<i32>>,
    session: Vec<Option<&'a str>>,
    username: Vec<Option<&'a str>>,
    password: Vec<Option<&'a str>>,
    command: Vec<Option<&'a str>>,
    text: Vec<&'a str>,
    body: Vec<&'a [u8]>,
}

impl<'a> Columns<'a> {
    fn new(rows: &'a [PgRow]) -> Columns<'a> {
        Columns {
            seq: rows.iter().map(|r| r.seq).collect(),
            time: rows.iter().map(|r| r.time_ms).collect(),
            service: rows.iter().map(|r| r.service.as_str()).collect(),
            kind: rows.iter().map(|r| r.kind).collect(),
            src_ip: rows.iter().map(|r| r.src_ip.as_deref()).collect(),
            src_port: rows.iter().map(|r| r.src_port).collect(),
            session: rows.iter().map(|r| r.session.as_deref()).collect(),
            username: rows.iter().map(|r| r.username.as_deref()).collect(),
            password: rows.iter().map(|r| r.password.as_deref()).collect(),
            command: rows.iter().map(|r| r.command.as_deref()).collect(),
            text: rows.iter().map(|r| r.search_text.as_str()).collect(),
            body: rows.iter().map(|r| r.body.as_slice()).collect(),
        }
    }
}

async fn pg_writer_as(
    mut client: tokio_postgres::Client,
    mut rx: mpsc::UnboundedReceiver<Job<PgRow>>,
    mode: PgWrite,
) -> Result<u64> {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::Type;
    let types = [
        Type::TEXT,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::INT4,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::BYTEA,
    ];
    let mut inserted = 0u64;
    let mut jobs = Vec::new();
    while let Some(job) = rx.recv().await {
        let mut weight = job.rows.len();
        jobs.push(job);
        while weight < MAX_TX_EVENTS {
            match rx.try_recv() {
                Ok(j) => {
                    weight += j.rows.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let received_ms = honeybee_core::now_ms();
        let tx = client.transaction().await?;
        if mode == PgWrite::CoreInsert {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PG_EVENTS_LOCK])
                .await?;
            let stmt = tx.prepare(PG_CORE_INSERT).await?;
            let cols: Vec<Columns> = jobs.iter().map(|j| Columns::new(&j.rows)).collect();
            let queries = jobs.iter().zip(&cols).map(|(job, c)| {
                let (tx, stmt) = (&tx, &stmt);
                async move {
                    let node: &str = &job.node;
                    tx.query(
                        stmt,
                        &[
                            &node,
                            &received_ms,
                            &c.seq,
                            &c.time,
                            &c.service,
                            &c.kind,
                            &c.src_ip,
                            &c.src_port,
                            &c.session,
                            &c.username,
                            &c.password,
                            &c.command,
                            &c.text,
                            &c.body,
                        ],
                    )
                    .await
                }
            });
            for rows in futures_util::future::try_join_all(queries).await? {
                inserted += rows.len() as u64;
            }
            tx.commit().await?;
            for job in jobs.drain(..) {
                let _ = job.ack.send(CoreMsg::Ack {
                    first: job.first,
                    last: job.last,
                });
            }
            continue;
        }
        let sink = tx.copy_in(PG_COPY).await?;
        let writer = BinaryCopyInWriter::new(sink, &types);
        let mut writer = std::pin::pin!(writer);
        for job in &jobs {
            for r in &job.rows {
                writer
                    .as_mut()
                    .write(&[
                        &&*job.node,
                        &r.seq,
                        &r.time_ms,
                        &received_ms,
                        &r.service,
                        &r.kind,
                        &r.src_ip,
                        &r.src_port,
                        &r.session,
                        &r.username,
                        &r.password,
                        &r.command,
                        &r.search_text,
                        &r.body,
                    ])
                    .await?;
            }
        }
        inserted += writer.finish().await?;
        tx.commit().await?;
        for job in jobs.drain(..) {
            let _ = job.ack.send(CoreMsg::Ack {
                first: job.first,
                last: job.last,
            });
        }
    }
    Ok(inserted)
}

/// Ingest through a bare quinn server (as [`baseline_run`]) whose writer COPYs the rows
/// into the PostgreSQL database at `url` (created empty; the schema is made here).
pub async fn pg_baseline_run(
    dep: &Deployment,
    ids: &[AgentId],
    sizes: IngestSizes,
    url: &str,
) -> Result<IngestRun> {
    let ep = dep.baseline_endpoint(&[alpn::NODE])?;
    let addr = ep.local_addr()?;
    let client = pg_open_baseline(url).await?;
    let (jobs_tx, jobs_rx) = mpsc::unbounded_channel::<Job<PgRow>>();
    let writer = tokio::spawn(pg_writer(client, jobs_rx));
    let accept_ep = ep.clone();
    let accept = tokio::spawn(async move {
        let mut n = 0;
        while let Some(incoming) = accept_ep.accept().await {
            n += 1;
            tokio::spawn(baseline_conn(incoming, n, jobs_tx.clone(), PgRow::new));
        }
    });
    let run = tokio::time::timeout(sizes.limit, drive(addr, ids, sizes)).await;
    ep.close(0u32.into(), b"done");
    accept.abort();
    let _ = tokio::time::timeout(Duration::from_secs(5), ep.wait_idle()).await;
    let inserted = tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .context("PostgreSQL baseline writer did not stop")?
        .context("PostgreSQL baseline writer panicked")??;
    let run = run.context("PostgreSQL baseline ingest run timed out")??;
    if inserted != sizes.total_events() {
        bail!(
            "PostgreSQL baseline stored {inserted} events, expected {}",
            sizes.total_events()
        );
    }
    Ok(run)
}

/// The core's `PgStore::insert_events` alone, no network, fed as [`store_only_core`].
pub async fn pg_store_only_core(sizes: IngestSizes, url: &str) -> Result<Sample> {
    let store = honeybee_core::store::PgStore::open(url, Some(crate::pg::PASSWORD)).await?;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for a in 0..sizes.agents {
        let store = store.clone();
        tasks.spawn(async move {
            let node = honeybee_proto::NodeId::new(format!("bench-agent-{a:06x}"))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut n = 0;
            for b in 0..sizes.batches {
                let events =
                    batch(a, 1 + (b * sizes.batch_events) as u64, sizes.batch_events).events;
                n += store
                    .insert_events(&node, honeybee_core::now_ms(), events)
                    .await?
                    .inserted;
            }
            anyhow::Ok(n)
        });
    }
    let mut count = 0;
    while let Some(r) = tasks.join_next().await {
        count += r??;
    }
    let elapsed = start.elapsed();
    store.close().await?;
    if count != sizes.total_events() {
        bail!(
            "PgStore inserted {count} events, expected {}",
            sizes.total_events()
        );
    }
    Ok(Sample { count, elapsed })
}

/// The PostgreSQL baseline's writer task alone, fed as [`pg_store_only_core`].
pub async fn pg_store_only_baseline(
    sizes: IngestSizes,
    url: &str,
    mode: PgWrite,
) -> Result<Sample> {
    let client = pg_open_baseline(url).await?;
    let (jobs_tx, jobs_rx) = mpsc::unbounded_channel::<Job<PgRow>>();
    let writer = tokio::spawn(pg_writer_as(client, jobs_rx, mode));
    let start = Instant::now();
    let count = feed_writer(sizes, jobs_tx, PgRow::new).await?;
    let elapsed = start.elapsed();
    let inserted = tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .context("PostgreSQL baseline writer did not stop")???;
    if count != sizes.total_events() || inserted != count {
        bail!(
            "PostgreSQL baseline writer acked {count} and inserted {inserted} events, expected {}",
            sizes.total_events()
        );
    }
    Ok(Sample { count, elapsed })
}
