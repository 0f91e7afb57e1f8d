//! What joining a cluster costs a single core's PostgreSQL ingest (issue 18): on
//! PostgreSQL every core joins the cluster, and from then on each group commit of its
//! event writer also names the core for the rows' `events.origin` (`set_config`) and
//! queues a `NOTIFY` for the other cores' module bus tailers (`LOCK_ORIGIN_SQL` in
//! `core/src/store/postgres/event_writer.rs`). This times the store alone, no network:
//! the same batches into a fresh database through a `PgStore` that never joined a
//! cluster, and through one that joined with `Cluster::open` exactly as a core does (so
//! its LISTEN connection is there and PostgreSQL delivers every notification to it).
//! Rounds alternate which goes first, so a slow spell of the machine falls on both.

use crate::harness::HarnessError;
use crate::report::Report;
use honeybee_core::cluster::Cluster;
use honeybee_core::store::{PgStore, Store};
use honeybee_proto::NodeId;
use honeybee_proto::event::{AuthAttempt, AuthMethod, Event, EventKind};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

/// Sizes of the store-only ingest, and how many rounds of (without, with) to run.
#[derive(Debug, Clone)]
pub struct OriginCost {
    /// Producer tasks, one node each, storing concurrently.
    pub agents: usize,
    /// Batches per agent, stored one after another (each waits for its commit).
    pub batches: usize,
    pub batch_events: usize,
    pub rounds: usize,
}

impl Default for OriginCost {
    fn default() -> Self {
        OriginCost {
            agents: 100,
            batches: 8,
            batch_events: 256,
            rounds: 3,
        }
    }
}

/// A brute-force event like the ingest benchmark's (`bench/src/ingest.rs`): a connect,
/// then password attempts, so the rows and their indexes are the ones a core stores.
fn event(agent: usize, seq: u64, now_ms: i64) -> Event {
    const USERS: [&str; 4] = ["root", "admin", "ubuntu", "pi"];
    const PASSWORDS: [&str; 4] = ["123456", "password", "raspberry", "P@ssw0rd"];
    let i = seq as usize;
    let kind = if i.is_multiple_of(4) {
        EventKind::Connect
    } else {
        EventKind::AuthAttempt(AuthAttempt {
            method: AuthMethod::Password,
            username: USERS[i % 4].into(),
            password: Some(PASSWORDS[(i / 4) % 4].into()),
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
        session: Some(honeybee_proto::SessionId((seq / 4).to_be_bytes())),
        src: Some(SocketAddr::from((
            [198, 51, (agent % 200) as u8, (i / 4 % 250 + 1) as u8],
            30_000 + (i / 4 % 30_000) as u16,
        ))),
        dst: Some(SocketAddr::from(([10, 0, 0, 1], 22))),
        kind,
    }
}

impl OriginCost {
    fn total(&self) -> u64 {
        (self.agents * self.batches * self.batch_events) as u64
    }

    /// Stores every agent's batches into `store` at once; events per second.
    async fn ingest(&self, store: &PgStore) -> Result<f64, HarnessError> {
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for a in 0..self.agents {
            let (store, batches, n) = (store.clone(), self.batches, self.batch_events);
            tasks.spawn(async move {
                let node = NodeId::new(format!("origin-cost-{a:05}"))
                    .map_err(|e| HarnessError::Audit(e.to_string()))?;
                let mut stored = 0;
                for b in 0..batches {
                    let now = honeybee_core::now_ms();
                    let first = 1 + (b * n) as u64;
                    let events = (first..first + n as u64)
                        .map(|seq| event(a, seq, now))
                        .collect();
                    stored += store.insert_events(&node, now, events).await?.inserted;
                }
                Ok::<u64, HarnessError>(stored)
            });
        }
        let mut stored = 0;
        while let Some(r) = tasks.join_next().await {
            stored += r.map_err(|e| HarnessError::Audit(e.to_string()))??;
        }
        let took = started.elapsed();
        if stored != self.total() {
            return Err(HarnessError::Audit(format!(
                "stored {stored} events, expected {}",
                self.total()
            )));
        }
        Ok(stored as f64 / took.as_secs_f64().max(1e-6))
    }

    /// One measurement: a fresh database, a store on it (joined to a cluster if
    /// `cluster`), the ingest, then the store closed.
    async fn once(&self, cluster: bool) -> Result<f64, HarnessError> {
        let (url, password) = crate::pg::fresh_database().await?;
        let pg = PgStore::open(&url, Some(password)).await?;
        let dir = tempfile::Builder::new()
            .prefix("honeybee-origin-cost-")
            .tempdir()?;
        // Held for the ingest: its LISTEN connection is the one notifications go to.
        let joined = if cluster {
            Cluster::open(
                &Store::Postgres(pg.clone()),
                dir.path(),
                "127.0.0.1:1",
                "127.0.0.1:1",
                Duration::from_secs(30),
            )
            .await?
        } else {
            None
        };
        if cluster && joined.is_none() {
            return Err(HarnessError::Options(
                "the store did not join a cluster".into(),
            ));
        }
        let rate = self.ingest(&pg).await;
        drop(joined);
        pg.close().await?;
        rate
    }

    pub async fn run(&self) -> Result<Report, HarnessError> {
        let started = Instant::now();
        let (mut plain, mut joined) = (Vec::new(), Vec::new());
        for round in 0..self.rounds {
            for cluster in [round % 2 == 1, round % 2 == 0] {
                let rate = self.once(cluster).await?;
                if cluster { &mut joined } else { &mut plain }.push(rate);
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(0.0)
        };
        let list = |v: &[f64]| {
            v.iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        let runs = (list(&plain), list(&joined));
        let (p, j) = (median(&mut plain), median(&mut joined));
        let mut r = Report {
            scenario: "store only: PgStore ingest, plain vs joined to a cluster".into(),
            link: "none".into(),
            agents: self.agents,
            sent: self.total(),
            stored: self.total(),
            elapsed: started.elapsed(),
            ..Report::default()
        };
        r.note(
            "batches",
            format!("{} × {} events per agent", self.batches, self.batch_events),
        );
        r.note("plain events/s (median)", format!("{p:.0}"));
        r.note("joined events/s (median)", format!("{j:.0}"));
        r.note("joined / plain", format!("{:.3}", j / p.max(1e-9)));
        r.note("plain runs (in round order)", runs.0);
        r.note("joined runs (in round order)", runs.1);
        Ok(r)
    }
}
