//! Scan correlation across cores: one core correlates for the whole cluster.
//!
//! A scanner sweeping a network touches nodes connected to different cores, so no core's
//! own probes show the whole sweep, and two cores correlating side by side would each
//! report the part they saw. So exactly one core — the one holding a session advisory
//! lock ([`CORRELATOR_LOCK`]) on a connection it keeps for this — runs the detector; it
//! is fed by its own nodes' probes (ingest) and by the other cores' events, which its
//! module bus tail reads back from the `events` table by id (`tail.rs`). The other cores
//! drop their probes (`correlator::run`).
//!
//! **Failover:** the lock lives exactly as long as the holder's connection. A core that
//! dies or loses the database loses its connection, PostgreSQL releases the lock, and
//! the next core to try (each tries every third of the lease time) takes it. The sweeps
//! in progress at the old holder are lost, never reported twice: a core that finds its
//! connection gone stops correlating at once and drops its detector's state.

use super::Cluster;
use crate::store::StoreError;
use std::sync::atomic::Ordering;

/// Key of the session advisory lock held by the correlating core ("HB_SCANS").
pub const CORRELATOR_LOCK: i64 = 0x4842_5f53_4341_4e53;

/// Takes the correlator lock on `conn` if no other session holds it.
pub async fn try_lock(conn: &deadpool_postgres::Object) -> Result<bool, StoreError> {
    Ok(conn
        .query_one("SELECT pg_try_advisory_lock($1)", &[&CORRELATOR_LOCK])
        .await?
        .get(0))
}

impl Cluster {
    /// Whether this core correlates scans for the cluster now.
    pub fn correlating(&self) -> bool {
        self.correlating.load(Ordering::Acquire)
    }

    /// Keeps or takes the correlator role (called every third of the lease time while
    /// scan correlation is on): a held lock is checked by a round trip on its connection;
    /// a free one is taken.
    pub(super) async fn elect(&self) {
        let mut held = self.correlator_conn.lock().await;
        if let Some(conn) = held.as_ref() {
            if conn.query_one("SELECT 1", &[]).await.is_ok() {
                return;
            }
            // The connection, and with it the lock, is gone: another core may hold it
            // already.
            self.correlating.store(false, Ordering::Release);
            if let Some(conn) = held.take() {
                drop(deadpool_postgres::Object::take(conn));
            }
            tracing::warn!("lost the scan correlator lock with its connection");
        }
        let conn = match self.pg.raw_client().await {
            Ok(c) => c,
            Err(e) => return tracing::warn!(error = %e, "scan correlator election: store"),
        };
        match try_lock(&conn).await {
            Ok(true) => {
                // Kept checked out for as long as this core correlates, and closed (taken
                // out of the pool, never returned to it) when it stops: a pooled
                // connection must never carry the lock to another use.
                *held = Some(conn);
                self.correlating.store(true, Ordering::Release);
                tracing::info!(core_id = %self.id, "this core correlates scans for the cluster");
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "scan correlator election failed"),
        }
    }

    /// A clean shutdown: the correlator lock goes with its connection, so another core
    /// takes over at its next try.
    pub(super) async fn resign(&self) {
        self.correlating.store(false, Ordering::Release);
        if let Some(conn) = self.correlator_conn.lock().await.take() {
            drop(deadpool_postgres::Object::take(conn));
        }
    }
}
