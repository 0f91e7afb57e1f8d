//! Every store operation on PostgreSQL. The search and analytics SQL is the SQLite
//! backend's (`analytics`, `console`), renumbered by `pg_sql`; the rest is written here.

use super::{PgStore, arg_refs, pg_args, pg_sql};
use crate::store::analytics::{Dialect, MAX_TOP, range_args, search_sql, stats_sql};
use crate::store::codec::{
    EventRow, corrupt, ct_eq, encode, enrichment_geo, labels_from_json, labels_to_json,
    push_or_skip, role_col, stored_event, text_col,
};
use crate::store::console::{capped_count, count_matching_sql, top_commands_sql};
use crate::store::modules::{perms_from_text, perms_to_text};
use crate::store::rollup::{self, Counted, MINUTE_SQL, Plan, Tally};
use crate::store::{
    CaptureRecord, CertRecord, DeviceActivity, HealthRow, InsertOutcome, ModuleCredential,
    NewAlert, NodeRecord, StoreError, TokenRecord, TokenRefusal, effective_limit,
};
use honeybee_proto::admin::{
    AlertInfo, AuditEntry, CredentialCount, EnrichmentInfo, EventQuery, EventSearch, GeoCount,
    KeyCount, Series, Stats, StatsQuery, StoredEvent, TokenInfo,
};
use honeybee_proto::config::NodeConfig;
use honeybee_proto::event::{Event, EventKind};
use honeybee_proto::module::Permission;
use honeybee_proto::{NodeId, Role, Serial, SessionId, TokenId};
use std::collections::{BTreeMap, HashMap};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

const NODE_COLS: &str = "id, name, role, labels, serial, cert_not_after_ms, first_seen_ms, \
    last_seen_ms, addr, online, revoked, health, config, via_relay";
const TOKEN_COLS: &str = "id, secret_hash, role, name, labels, created_ms, expires_ms, \
    uses_total, uses_left, revoked";
const CAPTURE_COLS: &str = "sha256, size, kind, node, service, session, time_ms, meta";

/// One retention batch ($1 cutoff, $2 rows): the events, their enrichments, and their
/// counts off the count tables, in one statement.
static PRUNE_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH gone AS (DELETE FROM events WHERE id IN (SELECT id FROM events \
           WHERE time_ms < $1 ORDER BY time_ms LIMIT $2) \
           RETURNING node, seq, time_ms, service, kind), \
         en AS (DELETE FROM enrichments e USING gone \
           WHERE e.node = gone.node AND e.seq = gone.seq), \
         ec AS (INSERT INTO event_counts (minute, service, kind, n) \
           SELECT {MINUTE_SQL}, service, kind, -COUNT(*) FROM gone GROUP BY 1, 2, 3 \
           ON CONFLICT (minute, service, kind) DO UPDATE SET n = event_counts.n + excluded.n), \
         nc AS (INSERT INTO node_counts (minute, node, n) \
           SELECT {MINUTE_SQL}, node, -COUNT(*) FROM gone GROUP BY 1, 2 \
           ON CONFLICT (minute, node) DO UPDATE SET n = node_counts.n + excluded.n) \
         SELECT COUNT(*) FROM gone"
    )
});

/// A row while stored events are still being counted (`backfill_counts`).
const BACKFILL_PENDING: &str = "SELECT 1 FROM count_backfill LIMIT 1";

fn seq_i64(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::SeqOutOfRange(seq))
}

fn event_from_row(row: &Row) -> Result<StoredEvent, StoreError> {
    let body: &[u8] = row.try_get(2)?;
    stored_event(row.try_get(0)?, row.try_get(1)?, body, row.try_get(3)?)
}

fn push_event(out: &mut Vec<StoredEvent>, row: &Row) -> Result<(), StoreError> {
    push_or_skip(out, event_from_row(row))
}

fn node_id(what: &'static str, s: String) -> Result<NodeId, StoreError> {
    NodeId::new(s.clone()).map_err(|e| corrupt(what, s, e))
}

fn serial(what: &'static str, s: &str) -> Result<Serial, StoreError> {
    Serial::from_hex(s).map_err(|e| corrupt(what, s.to_owned(), e))
}

fn node_from_row(row: &Row) -> Result<NodeRecord, StoreError> {
    const W: &str = "node";
    let id = node_id(W, row.try_get(0)?)?;
    let key = id.as_str().to_owned();
    let role: &str = row.try_get(2)?;
    let labels: &str = row.try_get(3)?;
    let health: Option<&[u8]> = row.try_get(11)?;
    let config: &[u8] = row.try_get(12)?;
    let via_relay: Option<String> = row.try_get(13)?;
    Ok(NodeRecord {
        name: row.try_get(1)?,
        role: role_col(W, &key, role)?,
        labels: labels_from_json(W, &key, labels)?,
        serial: serial(W, row.try_get(4)?)?,
        cert_not_after_ms: row.try_get(5)?,
        first_seen_ms: row.try_get(6)?,
        last_seen_ms: row.try_get(7)?,
        addr: row.try_get(8)?,
        online: row.try_get(9)?,
        revoked: row.try_get(10)?,
        health: health
            .map(postcard::from_bytes)
            .transpose()
            .map_err(|e| corrupt(W, key.clone(), format!("health: {e}")))?,
        config: postcard::from_bytes(config)
            .map_err(|e| corrupt(W, key.clone(), format!("config: {e}")))?,
        via_relay: via_relay
            .map(NodeId::new)
            .transpose()
            .map_err(|e| corrupt(W, key, format!("via_relay: {e}")))?,
        id,
    })
}

fn cert_from_row(row: &Row) -> Result<CertRecord, StoreError> {
    const W: &str = "certificate";
    let s = serial(W, row.try_get(0)?)?;
    let key = s.to_hex();
    let role: &str = row.try_get(2)?;
    let superseded_by: Option<&str> = row.try_get(5)?;
    Ok(CertRecord {
        serial: s,
        node: node_id(W, row.try_get(1)?)?,
        role: role_col(W, &key, role)?,
        issued_ms: row.try_get(3)?,
        not_after_ms: row.try_get(4)?,
        superseded_by: superseded_by.map(|x| serial(W, x)).transpose()?,
        revoked: row.try_get(6)?,
    })
}

fn token_from_row(row: &Row) -> Result<TokenRecord, StoreError> {
    const W: &str = "token";
    let id: String = row.try_get(0)?;
    let hash: &[u8] = row.try_get(1)?;
    let role: &str = row.try_get(2)?;
    let labels: &str = row.try_get(4)?;
    let count = |i: usize| -> Result<u32, StoreError> {
        let n: i64 = row.try_get(i)?;
        u32::try_from(n).map_err(|e| corrupt(W, id.clone(), e))
    };
    Ok(TokenRecord {
        id: TokenId::from_hex(&id).map_err(|e| corrupt(W, id.clone(), e))?,
        secret_hash: hash
            .try_into()
            .map_err(|_| corrupt(W, id.clone(), "secret hash is not 32 bytes"))?,
        role: role_col(W, &id, role)?,
        name: row.try_get(3)?,
        labels: labels_from_json(W, &id, labels)?,
        created_ms: row.try_get(5)?,
        expires_ms: row.try_get(6)?,
        uses_total: count(7)?,
        uses_left: count(8)?,
        revoked: row.try_get(9)?,
    })
}

fn capture_from_row(row: &Row) -> Result<CaptureRecord, StoreError> {
    const W: &str = "capture";
    let sha: String = row.try_get(0)?;
    let size: i64 = row.try_get(1)?;
    let session: Option<&str> = row.try_get(5)?;
    let meta: &str = row.try_get(7)?;
    let mut sha256 = [0u8; 32];
    hex::decode_to_slice(&sha, &mut sha256).map_err(|e| corrupt(W, sha.clone(), e))?;
    Ok(CaptureRecord {
        sha256,
        size: u64::try_from(size).map_err(|e| corrupt(W, sha.clone(), e))?,
        kind: row.try_get(2)?,
        node: node_id(W, row.try_get(3)?)?,
        service: row.try_get(4)?,
        session: session
            .map(SessionId::from_hex)
            .transpose()
            .map_err(|e| corrupt(W, sha.clone(), e))?,
        time_ms: row.try_get(6)?,
        meta: labels_from_json(W, &sha, meta)?,
    })
}

fn count(row: &Row, i: usize) -> Result<u64, StoreError> {
    Ok(row.try_get::<_, i64>(i)?.max(0) as u64)
}

impl PgStore {
    /// Runs shared (`?`-placeholder) SQL and returns its rows.
    async fn query_shared(
        &self,
        sql: &str,
        args: Vec<crate::store::analytics::Arg>,
    ) -> Result<Vec<Row>, StoreError> {
        let c = self.client().await?;
        let stmt = c.prepare_cached(&pg_sql(sql)).await?;
        let args = pg_args(args);
        Ok(c.query(&stmt, &arg_refs(&args)).await?)
    }

    /// Runs SQL with `$N` placeholders and returns its rows.
    async fn query(&self, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StoreError> {
        let c = self.client().await?;
        let stmt = c.prepare_cached(sql).await?;
        Ok(c.query(&stmt, args).await?)
    }

    /// Runs one statement (autocommit) and returns the rows it changed.
    async fn execute(&self, sql: &str, args: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let stmt = c.prepare_cached(sql).await?;
        Ok(c.execute(&stmt, args).await?)
    }

    // ---------------------------------------------------------------- events

    pub async fn insert_events(
        &self,
        node: &NodeId,
        received_ms: i64,
        events: Vec<Event>,
    ) -> Result<InsertOutcome, StoreError> {
        if events.is_empty() {
            return Ok(InsertOutcome::default());
        }
        let rows = events
            .into_iter()
            .map(EventRow::new)
            .collect::<Result<Vec<_>, _>>()?;
        // Group commit (see `event_writer`): answered after the COMMIT that stored it.
        self.queue_events(super::event_writer::Columns::new(
            node.as_str(),
            received_ms,
            rows,
        ))
        .await
    }

    /// Retention (see `Store::prune_events`): one transaction per batch, under the events
    /// lock (it rewrites the count tables the event writer adds to), the deleted rows'
    /// counts taken off in the same transaction.
    pub async fn prune_events(&self, before_ms: i64, batch: u32) -> Result<u64, StoreError> {
        let batch = i64::from(batch.max(1));
        let mut gone = 0u64;
        let below = rollup::minute_of(before_ms).saturating_add(1);
        // Bounded: each round deletes a full batch or ends the loop.
        loop {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&super::EVENTS_LOCK])
                .await?;
            let stmt = tx.prepare_cached(&PRUNE_SQL).await?;
            let n = count(&tx.query_one(&stmt, &[&before_ms, &batch]).await?, 0)?;
            for sql in rollup::DROP_EMPTY {
                tx.execute(&pg_sql(sql), &[&below]).await?;
            }
            tx.commit().await?;
            gone += n;
            if n < batch as u64 {
                return Ok(gone);
            }
        }
    }

    /// Counts the events stored before schema version 6 into the count tables (see
    /// `rollup`), one transaction per [`rollup::BACKFILL_IDS`] ids; each takes the
    /// backfill row's lock, so cores opening the same database at once share the work and
    /// never count an id twice. Resumes where a stopped backfill left off.
    pub(crate) async fn backfill_counts(&self) -> Result<(), StoreError> {
        let [add_events, add_nodes] = rollup::add_ids_sql().map(|s| pg_sql(&s));
        let mut batches = 0u64;
        loop {
            let mut c = self.client().await?;
            let tx = c.transaction().await?;
            let Some(row) = tx
                .query_opt("SELECT next_id, end_id FROM count_backfill FOR UPDATE", &[])
                .await?
            else {
                break;
            };
            let (next, end): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
            if next >= end {
                tx.execute("DELETE FROM count_backfill", &[]).await?;
                tx.commit().await?;
                break;
            }
            let to = next.saturating_add(rollup::BACKFILL_IDS).min(end);
            tx.execute(&add_events, &[&next, &to]).await?;
            tx.execute(&add_nodes, &[&next, &to]).await?;
            tx.execute("UPDATE count_backfill SET next_id = $1", &[&to])
                .await?;
            tx.commit().await?;
            batches += 1;
            if batches.is_multiple_of(10) {
                tracing::info!(next_id = to, end_id = end, "counting stored events");
            }
        }
        Ok(())
    }

    pub async fn max_seq(&self, node: &NodeId) -> Result<u64, StoreError> {
        let rows = self
            .query(
                "SELECT MAX(seq) FROM events WHERE node = $1",
                &[&node.as_str()],
            )
            .await?;
        let max: Option<i64> = rows[0].try_get(0)?;
        Ok(max.unwrap_or(0).max(0) as u64)
    }

    pub async fn query_events(&self, q: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        if let Some(kind) = &q.kind
            && !EventKind::NAMES.contains(&kind.as_str())
        {
            return Err(StoreError::InvalidQuery(format!(
                "unknown event kind {kind:?}; expected one of {}",
                EventKind::NAMES.join(", ")
            )));
        }
        let search = EventSearch {
            node: q.node.clone(),
            service: q.service.clone(),
            kind: q.kind.clone(),
            since_ms: q.since_ms,
            ..Default::default()
        };
        let (clause, mut args) = crate::store::analytics::where_clause(&search, Dialect::Postgres)?;
        args.push(crate::store::analytics::Arg::Int(
            effective_limit(q.limit).into(),
        ));
        let sql = format!(
            "SELECT node, received_ms, body, id FROM events{clause} \
             ORDER BY time_ms DESC, id DESC LIMIT ?"
        );
        let mut out = Vec::new();
        for row in self.query_shared(&sql, args).await? {
            push_event(&mut out, &row)?;
        }
        Ok(out)
    }

    pub async fn events_after(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<(Vec<(i64, StoredEvent)>, i64), StoreError> {
        let newest: Option<i64> =
            self.query("SELECT MAX(id) FROM events", &[]).await?[0].try_get(0)?;
        let rows = self
            .query(
                "SELECT node, received_ms, body, id FROM events WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after_id, &i64::from(limit)],
            )
            .await?;
        let mut out = Vec::new();
        for row in &rows {
            let id: i64 = row.try_get(3)?;
            match event_from_row(row) {
                Ok(ev) => out.push((id, ev)),
                Err(StoreError::Corrupt { why, .. }) => {
                    tracing::warn!(row = id, why, "skipping unreadable stored event");
                }
                Err(e) => return Err(e),
            }
        }
        Ok((out, newest.unwrap_or(0)))
    }

    /// The database's size as the server counts it (tables, indexes, TOAST: every
    /// relation of the database, shared by every core that uses it).
    pub async fn size_bytes(&self) -> Result<u64, StoreError> {
        let rows = self
            .query("SELECT pg_database_size(current_database())", &[])
            .await?;
        count(&rows[0], 0)
    }

    pub async fn count_events(&self, node: Option<&NodeId>) -> Result<u64, StoreError> {
        let rows = match node {
            Some(n) => {
                self.query(
                    "SELECT COUNT(*) FROM events WHERE node = $1",
                    &[&n.as_str()],
                )
                .await?
            }
            None => self.query("SELECT COUNT(*) FROM events", &[]).await?,
        };
        count(&rows[0], 0)
    }

    pub async fn search_events(&self, q: &EventSearch) -> Result<Vec<StoredEvent>, StoreError> {
        let (sql, args) = search_sql(q, Dialect::Postgres)?;
        let mut out = Vec::new();
        for row in self.query_shared(&sql, args).await? {
            push_event(&mut out, &row)?;
        }
        Ok(out)
    }

    pub async fn count_matching(&self, q: &EventSearch) -> Result<(u64, bool), StoreError> {
        let (sql, args) = count_matching_sql(q, Dialect::Postgres)?;
        let rows = self.query_shared(&sql, args).await?;
        Ok(capped_count(rows[0].try_get(0)?))
    }

    pub async fn get_event(
        &self,
        node: &NodeId,
        seq: u64,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let seq = seq_i64(seq)?;
        let rows = self
            .query(
                "SELECT node, received_ms, body, id FROM events WHERE node = $1 AND seq = $2",
                &[&node.as_str(), &seq],
            )
            .await?;
        let mut out = Vec::new();
        if let Some(row) = rows.first() {
            push_event(&mut out, row)?;
        }
        Ok(out.pop())
    }

    pub async fn top_commands(
        &self,
        since_ms: i64,
        until_ms: i64,
        services: &[String],
        top: u32,
    ) -> Result<Vec<KeyCount>, StoreError> {
        let (sql, args) = top_commands_sql(since_ms, until_ms, services, top)?;
        self.query_shared(&sql, args)
            .await?
            .iter()
            .map(|r| {
                Ok(KeyCount {
                    key: r.try_get(0)?,
                    count: count(r, 1)?,
                })
            })
            .collect()
    }

    pub async fn stats(&self, q: &StatsQuery) -> Result<Stats, StoreError> {
        range_args(q)?;
        let (since, until, top) = (q.since_ms, q.until_ms, i64::from(q.top.min(MAX_TOP)));
        let c = self.client().await?;
        let run = async |sql: &str, args: &[&(dyn ToSql + Sync)]| -> Result<Vec<Row>, StoreError> {
            let stmt = c.prepare_cached(&pg_sql(sql)).await?;
            Ok(c.query(&stmt, args).await?)
        };
        let keys = |rows: Vec<Row>| -> Result<Vec<KeyCount>, StoreError> {
            rows.iter()
                .map(|r| {
                    Ok(KeyCount {
                        key: r.try_get(0)?,
                        count: count(r, 1)?,
                    })
                })
                .collect()
        };
        let series = |rows: Vec<Row>| -> Result<Vec<Series>, StoreError> {
            let mut out: BTreeMap<String, Vec<(i64, u64)>> = BTreeMap::new();
            for r in &rows {
                out.entry(r.try_get(0)?)
                    .or_default()
                    .push((r.try_get(1)?, count(r, 2)?));
            }
            Ok(out
                .into_iter()
                .map(|(key, points)| Series { key, points })
                .collect())
        };
        let range: [&(dyn ToSql + Sync); 2] = [&since, &until];
        let bucketed: [&(dyn ToSql + Sync); 3] = [&since, &until, &q.bucket_ms];
        let max_top = i64::from(MAX_TOP);
        let all_top: [&(dyn ToSql + Sync); 3] = [&since, &until, &max_top];
        let topped: [&(dyn ToSql + Sync); 3] = [&since, &until, &top];
        // The total, per service, node and kind: from the count tables where they cover
        // the range (see `rollup`), else from `events`.
        let plan = match Plan::of(q) {
            Some(plan) if run(BACKFILL_PENDING, &[]).await?.is_empty() => Some(plan),
            _ => None,
        };
        let counted = match plan {
            Some(plan) => {
                let mut tally = Tally::default();
                for (i, (sql, args)) in plan.statements(q).into_iter().enumerate() {
                    let args = pg_args(args);
                    for r in run(&sql, &arg_refs(&args)).await? {
                        tally.add(
                            i,
                            r.try_get(0)?,
                            r.try_get(1)?,
                            r.try_get(2)?,
                            r.try_get(3)?,
                            r.try_get(4)?,
                        );
                    }
                }
                tally.finish(q.top)?
            }
            None => Counted {
                events_total: count(&run(stats_sql::EVENTS_TOTAL, &range).await?[0], 0)?,
                total: run(stats_sql::TOTAL, &bucketed)
                    .await?
                    .iter()
                    .map(|r| Ok((r.try_get(0)?, count(r, 1)?)))
                    .collect::<Result<Vec<_>, StoreError>>()?,
                by_service: series(run(&stats_sql::series("service"), &bucketed).await?)?,
                by_node: series(run(&stats_sql::series("node"), &bucketed).await?)?,
                by_kind: keys(run(&stats_sql::by_kind(), &all_top).await?)?,
                top_services: keys(run(&stats_sql::top_services(), &topped).await?)?,
                top_nodes: keys(run(&stats_sql::top_nodes(), &topped).await?)?,
            },
        };
        let top_credentials = run(stats_sql::TOP_CREDENTIALS, &topped)
            .await?
            .iter()
            .map(|r| {
                Ok(CredentialCount {
                    username: r.try_get::<_, Option<String>>(0)?.unwrap_or_default(),
                    password: r.try_get(1)?,
                    count: count(r, 2)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let geo = run(stats_sql::GEO, &range)
            .await?
            .iter()
            .map(|r| {
                Ok(GeoCount {
                    country: r.try_get(0)?,
                    lat: r.try_get(1)?,
                    lon: r.try_get(2)?,
                    count: count(r, 3)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Stats {
            events_total: counted.events_total,
            total: counted.total,
            by_service: counted.by_service,
            by_node: counted.by_node,
            by_kind: counted.by_kind,
            top_sources: keys(run(&stats_sql::top_sources(), &topped).await?)?,
            top_services: counted.top_services,
            top_nodes: counted.top_nodes,
            top_credentials,
            top_commands: keys(run(&stats_sql::top_commands(), &topped).await?)?,
            geo,
        })
    }

    // ---------------------------------------------------------------- nodes

    pub async fn upsert_node(&self, rec: NodeRecord) -> Result<(), StoreError> {
        let labels = labels_to_json(&rec.labels)?;
        let health = rec
            .health
            .as_ref()
            .map(|h| encode("node health", h))
            .transpose()?;
        let config = encode("node config", &rec.config)?;
        // A node on the denylist stays revoked whatever the caller says.
        self.execute(
            "INSERT INTO nodes (id, name, role, labels, serial, cert_not_after_ms, \
             first_seen_ms, last_seen_ms, addr, online, revoked, health, config, via_relay) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
               $10 AND NOT EXISTS (SELECT 1 FROM revoked_nodes WHERE node = $1), \
               $11 OR EXISTS (SELECT 1 FROM revoked_nodes WHERE node = $1), $12, $13, $14) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, role = excluded.role, \
               labels = excluded.labels, serial = excluded.serial, \
               cert_not_after_ms = excluded.cert_not_after_ms, \
               first_seen_ms = excluded.first_seen_ms, last_seen_ms = excluded.last_seen_ms, \
               addr = excluded.addr, online = excluded.online, revoked = excluded.revoked, \
               health = excluded.health, config = excluded.config, \
               via_relay = excluded.via_relay",
            &[
                &rec.id.as_str(),
                &rec.name,
                &rec.role.as_str(),
                &labels,
                &rec.serial.to_hex(),
                &rec.cert_not_after_ms,
                &rec.first_seen_ms,
                &rec.last_seen_ms,
                &rec.addr,
                &rec.online,
                &rec.revoked,
                &health,
                &config,
                &rec.via_relay.as_ref().map(NodeId::as_str),
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn get_node(&self, id: &NodeId) -> Result<Option<NodeRecord>, StoreError> {
        let rows = self
            .query(
                &format!("SELECT {NODE_COLS} FROM nodes WHERE id = $1"),
                &[&id.as_str()],
            )
            .await?;
        rows.first().map(node_from_row).transpose()
    }

    pub async fn list_nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let rows = self
            .query(&format!("SELECT {NODE_COLS} FROM nodes ORDER BY id"), &[])
            .await?;
        let mut out = Vec::new();
        for r in &rows {
            push_or_skip(&mut out, node_from_row(r))?;
        }
        Ok(out)
    }

    pub async fn set_node_online(
        &self,
        id: &NodeId,
        online: bool,
        addr: Option<String>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        Ok(self
            .execute(
                "UPDATE nodes SET online = ($2 AND NOT revoked), addr = COALESCE($3, addr), \
                 last_seen_ms = $4 WHERE id = $1",
                &[&id.as_str(), &online, &addr, &now_ms],
            )
            .await?
            > 0)
    }

    pub async fn set_node_relay(
        &self,
        id: &NodeId,
        relay: Option<&NodeId>,
    ) -> Result<bool, StoreError> {
        Ok(self
            .execute(
                "UPDATE nodes SET via_relay = $2 WHERE id = $1",
                &[&id.as_str(), &relay.map(NodeId::as_str)],
            )
            .await?
            > 0)
    }

    pub async fn set_nodes_health(&self, rows: Vec<HealthRow>) -> Result<usize, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let mut ids = Vec::with_capacity(rows.len());
        let mut healths = Vec::with_capacity(rows.len());
        let mut times = Vec::with_capacity(rows.len());
        for r in rows {
            healths.push(encode("node health", &r.health)?);
            ids.push(r.node.as_str().to_owned());
            times.push(r.time_ms);
        }
        // One statement for the whole batch; a node listed twice keeps one of its rows.
        let n = self
            .execute(
                "UPDATE nodes AS n SET health = u.health, \
                 last_seen_ms = GREATEST(n.last_seen_ms, u.time_ms) \
                 FROM unnest($1::text[], $2::bytea[], $3::int8[]) AS u(id, health, time_ms) \
                 WHERE n.id = u.id",
                &[&ids, &healths, &times],
            )
            .await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    pub async fn last_event_ms(&self, id: &NodeId) -> Result<Option<i64>, StoreError> {
        let rows = self
            .query(
                "SELECT MAX(time_ms) FROM events WHERE node = $1",
                &[&id.as_str()],
            )
            .await?;
        Ok(rows[0].try_get(0)?)
    }

    /// See the SQLite backend's `device_activity`.
    pub async fn device_activity(&self) -> Result<Vec<DeviceActivity>, StoreError> {
        let rows = self.query(crate::store::DEVICE_ACTIVITY_SQL, &[]).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let node: String = r.try_get(0)?;
            let n: i64 = r.try_get(4)?;
            if let Ok(node) = NodeId::new(&node) {
                out.push(DeviceActivity {
                    node,
                    service: r.try_get(1)?,
                    address: r.try_get(2)?,
                    last_ms: r.try_get(3)?,
                    events: n.max(0) as u64,
                });
            }
        }
        Ok(out)
    }

    pub async fn set_node_config(
        &self,
        id: &NodeId,
        config: &NodeConfig,
    ) -> Result<bool, StoreError> {
        let config = encode("node config", config)?;
        Ok(self
            .execute(
                "UPDATE nodes SET config = $2 WHERE id = $1",
                &[&id.as_str(), &config],
            )
            .await?
            > 0)
    }

    pub async fn mark_all_offline(&self) -> Result<u64, StoreError> {
        self.execute("UPDATE nodes SET online = FALSE WHERE online", &[])
            .await
    }

    // ---------------------------------------------------------------- certificates

    pub async fn record_cert(
        &self,
        serial: Serial,
        node: &NodeId,
        role: Role,
        issued_ms: i64,
        not_after_ms: i64,
    ) -> Result<(), StoreError> {
        // Born revoked if its node already is (a renewal racing a revocation).
        self.execute(
            "INSERT INTO certs (serial, node, role, issued_ms, not_after_ms, revoked) \
             VALUES ($1, $2, $3, $4, $5, EXISTS (SELECT 1 FROM revoked_nodes WHERE node = $2))",
            &[
                &serial.to_hex(),
                &node.as_str(),
                &role.as_str(),
                &issued_ms,
                &not_after_ms,
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn supersede_cert(
        &self,
        node: &NodeId,
        old: Serial,
        new: Serial,
        new_not_after_ms: i64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let (old_hex, new_hex) = (old.to_hex(), new.to_hex());
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let owner = tx
            .query_opt(
                "SELECT node FROM certs WHERE serial = $1 FOR UPDATE",
                &[&old_hex],
            )
            .await?;
        let owner: Option<String> = owner.map(|r| r.try_get(0)).transpose()?;
        if owner.as_deref() != Some(node.as_str()) {
            return Err(StoreError::UnknownCert {
                serial: old,
                node: node.clone(),
            });
        }
        tx.execute(
            "INSERT INTO certs (serial, node, role, issued_ms, not_after_ms, revoked) \
             SELECT $2, node, role, $3, $4, \
               EXISTS (SELECT 1 FROM revoked_nodes r WHERE r.node = certs.node) \
             FROM certs WHERE serial = $1 ON CONFLICT (serial) DO NOTHING",
            &[&old_hex, &new_hex, &now_ms, &new_not_after_ms],
        )
        .await?;
        tx.execute(
            "UPDATE certs SET superseded_by = $2 WHERE serial = $1",
            &[&old_hex, &new_hex],
        )
        .await?;
        tx.execute(
            "UPDATE nodes SET serial = $2, cert_not_after_ms = $3 WHERE id = $1",
            &[&node.as_str(), &new_hex, &new_not_after_ms],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn cert(&self, serial: Serial) -> Result<Option<CertRecord>, StoreError> {
        let rows = self
            .query(
                "SELECT serial, node, role, issued_ms, not_after_ms, superseded_by, revoked \
                 FROM certs WHERE serial = $1",
                &[&serial.to_hex()],
            )
            .await?;
        rows.first().map(cert_from_row).transpose()
    }

    // ---------------------------------------------------------------- revocation

    pub async fn revoke_node(&self, id: &NodeId, now_ms: i64) -> Result<Vec<Serial>, StoreError> {
        let id = id.as_str();
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "INSERT INTO revoked_nodes (node, revoked_ms) VALUES ($1, $2) \
             ON CONFLICT (node) DO NOTHING",
            &[&id, &now_ms],
        )
        .await?;
        tx.execute(
            "UPDATE nodes SET revoked = TRUE, online = FALSE WHERE id = $1",
            &[&id],
        )
        .await?;
        tx.execute("UPDATE certs SET revoked = TRUE WHERE node = $1", &[&id])
            .await?;
        let rows = tx
            .query(
                "SELECT serial FROM certs WHERE node = $1 UNION SELECT serial FROM nodes WHERE id = $1",
                &[&id],
            )
            .await?;
        tx.commit().await?;
        let mut out = Vec::new();
        for r in &rows {
            push_or_skip(&mut out, serial("certificate", r.try_get(0)?))?;
        }
        Ok(out)
    }

    pub async fn revoked(&self) -> Result<(Vec<Serial>, Vec<NodeId>), StoreError> {
        let mut serials = Vec::new();
        for r in &self
            .query(
                "SELECT serial FROM certs WHERE revoked UNION SELECT serial FROM nodes WHERE revoked",
                &[],
            )
            .await?
        {
            push_or_skip(&mut serials, serial("certificate", r.try_get(0)?))?;
        }
        let mut nodes = Vec::new();
        for r in &self
            .query("SELECT node FROM revoked_nodes ORDER BY node", &[])
            .await?
        {
            push_or_skip(&mut nodes, node_id("revoked node", r.try_get(0)?))?;
        }
        Ok((serials, nodes))
    }

    // ---------------------------------------------------------------- tokens

    pub async fn create_token(&self, rec: TokenRecord) -> Result<(), StoreError> {
        let labels = labels_to_json(&rec.labels)?;
        self.execute(
            "INSERT INTO tokens (id, secret_hash, role, name, labels, created_ms, expires_ms, \
             uses_total, uses_left, revoked) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &rec.id.to_hex(),
                &rec.secret_hash.as_slice(),
                &rec.role.as_str(),
                &rec.name,
                &labels,
                &rec.created_ms,
                &rec.expires_ms,
                &i64::from(rec.uses_total),
                &i64::from(rec.uses_left),
                &rec.revoked,
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn consume_token(
        &self,
        id: TokenId,
        presented_secret_hash: [u8; 32],
        now_ms: i64,
    ) -> Result<Result<TokenRecord, TokenRefusal>, StoreError> {
        let hex_id = id.to_hex();
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        // The row lock makes check-then-use atomic against every other consumer.
        let Some(row) = tx
            .query_opt(
                &format!("SELECT {TOKEN_COLS} FROM tokens WHERE id = $1 FOR UPDATE"),
                &[&hex_id],
            )
            .await?
        else {
            return Ok(Err(TokenRefusal::Unknown));
        };
        let mut rec = token_from_row(&row)?;
        if !ct_eq(&rec.secret_hash, &presented_secret_hash) {
            return Ok(Err(TokenRefusal::BadSecret));
        }
        if rec.revoked {
            return Ok(Err(TokenRefusal::Revoked));
        }
        if now_ms >= rec.expires_ms {
            return Ok(Err(TokenRefusal::Expired));
        }
        if rec.uses_left == 0 {
            return Ok(Err(TokenRefusal::UsedUp));
        }
        tx.execute(
            "UPDATE tokens SET uses_left = uses_left - 1 WHERE id = $1",
            &[&hex_id],
        )
        .await?;
        tx.commit().await?;
        rec.uses_left -= 1;
        Ok(Ok(rec))
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let rows = self
            .query(
                &format!("SELECT {TOKEN_COLS} FROM tokens ORDER BY created_ms DESC, id"),
                &[],
            )
            .await?;
        let mut out = Vec::new();
        for r in &rows {
            push_or_skip(&mut out, token_from_row(r).map(|t| t.info()))?;
        }
        Ok(out)
    }

    pub async fn revoke_token(&self, id: TokenId) -> Result<bool, StoreError> {
        Ok(self
            .execute(
                "UPDATE tokens SET revoked = TRUE WHERE id = $1",
                &[&id.to_hex()],
            )
            .await?
            > 0)
    }

    // ---------------------------------------------------------------- audit

    pub async fn list_audit(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = i64::from(effective_limit(limit));
        self.query(
            "SELECT time_ms, actor, action, outcome, source, detail FROM audit \
             ORDER BY id DESC LIMIT $1",
            &[&limit],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(AuditEntry {
                time_ms: r.try_get(0)?,
                actor: r.try_get(1)?,
                action: r.try_get(2)?,
                outcome: r.try_get(3)?,
                source: r.try_get(4)?,
                detail: r.try_get(5)?,
            })
        })
        .collect()
    }

    /// Deletes by id range, as SQLite does: ids only grow and rows go oldest first.
    pub async fn prune_audit(&self, max_rows: u64, before_ms: i64) -> Result<u64, StoreError> {
        let max_rows = i64::try_from(max_rows).unwrap_or(i64::MAX);
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let first_kept = tx
            .query_opt(
                "SELECT id FROM audit WHERE time_ms >= $1 ORDER BY id LIMIT 1",
                &[&before_ms],
            )
            .await?;
        let mut gone = match first_kept {
            Some(r) => {
                let id: i64 = r.try_get(0)?;
                tx.execute("DELETE FROM audit WHERE id < $1", &[&id])
                    .await?
            }
            None => tx.execute("DELETE FROM audit", &[]).await?,
        };
        gone += tx
            .execute(
                "DELETE FROM audit WHERE id <= (SELECT max(id) FROM audit) - $1",
                &[&max_rows],
            )
            .await?;
        tx.commit().await?;
        Ok(gone)
    }

    pub async fn count_audit(&self) -> Result<u64, StoreError> {
        count(&self.query("SELECT count(*) FROM audit", &[]).await?[0], 0)
    }

    // ---------------------------------------------------------------- captures

    pub async fn insert_capture(&self, rec: CaptureRecord) -> Result<bool, StoreError> {
        let meta = labels_to_json(&rec.meta)?;
        let size = i64::try_from(rec.size).map_err(|_| StoreError::Encode {
            what: "capture size",
            why: format!("{} does not fit a signed 64-bit integer", rec.size),
        })?;
        let sha = hex::encode(rec.sha256);
        let session = rec.session.map(|s| s.to_hex());
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        let new = tx
            .execute(
                "INSERT INTO captures (sha256, size, kind, node, service, session, time_ms, meta) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (sha256) DO NOTHING",
                &[
                    &sha,
                    &size,
                    &rec.kind,
                    &rec.node.as_str(),
                    &rec.service,
                    &session,
                    &rec.time_ms,
                    &meta,
                ],
            )
            .await?
            == 1;
        tx.execute(
            "INSERT INTO capture_sightings (sha256, node, service, session, time_ms, meta) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &sha,
                &rec.node.as_str(),
                &rec.service,
                &session,
                &rec.time_ms,
                &meta,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(new)
    }

    pub async fn list_captures(&self, limit: u32) -> Result<Vec<CaptureRecord>, StoreError> {
        let limit = i64::from(effective_limit(limit));
        let rows = self
            .query(
                &format!(
                    "SELECT {CAPTURE_COLS} FROM captures ORDER BY time_ms DESC, id DESC LIMIT $1"
                ),
                &[&limit],
            )
            .await?;
        let mut out = Vec::new();
        for r in &rows {
            push_or_skip(&mut out, capture_from_row(r))?;
        }
        Ok(out)
    }

    pub async fn get_capture(&self, sha256: [u8; 32]) -> Result<Option<CaptureRecord>, StoreError> {
        let rows = self
            .query(
                &format!("SELECT {CAPTURE_COLS} FROM captures WHERE sha256 = $1"),
                &[&hex::encode(sha256)],
            )
            .await?;
        rows.first().map(capture_from_row).transpose()
    }

    pub async fn capture_sightings(
        &self,
        sha256: [u8; 32],
    ) -> Result<Vec<CaptureRecord>, StoreError> {
        let rows = self
            .query(
                "SELECT s.sha256, c.size, c.kind, s.node, s.service, s.session, s.time_ms, s.meta \
                 FROM capture_sightings s JOIN captures c ON c.sha256 = s.sha256 \
                 WHERE s.sha256 = $1 ORDER BY s.time_ms, s.id",
                &[&hex::encode(sha256)],
            )
            .await?;
        let mut out = Vec::new();
        for r in &rows {
            push_or_skip(&mut out, capture_from_row(r))?;
        }
        Ok(out)
    }

    // ---------------------------------------------------------------- modules

    pub async fn create_module_credential(&self, c: ModuleCredential) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO module_credentials (id, name, secret_hash, permissions, created_ms, \
             revoked) VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &c.id.to_hex(),
                &c.name,
                &hex::encode(c.secret_hash),
                &perms_to_text(&c.permissions),
                &c.created_ms,
                &c.revoked,
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn module_credential(
        &self,
        id: TokenId,
    ) -> Result<Option<ModuleCredential>, StoreError> {
        let rows = self
            .query(
                "SELECT name, secret_hash, permissions, created_ms, revoked \
                 FROM module_credentials WHERE id = $1",
                &[&id.to_hex()],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let hash_hex: &str = row.try_get(1)?;
        let mut secret_hash = [0u8; 32];
        if hex::decode_to_slice(hash_hex, &mut secret_hash).is_err() {
            return Ok(None);
        }
        Ok(Some(ModuleCredential {
            id,
            name: row.try_get(0)?,
            secret_hash,
            permissions: perms_from_text(row.try_get(2)?),
            created_ms: row.try_get(3)?,
            revoked: row.try_get(4)?,
        }))
    }

    pub async fn module_permissions(
        &self,
        name: &str,
    ) -> Result<Option<Vec<Permission>>, StoreError> {
        let rows = self
            .query(
                "SELECT permissions FROM module_credentials WHERE name = $1 AND NOT revoked \
                 ORDER BY created_ms DESC LIMIT 1",
                &[&name],
            )
            .await?;
        rows.first()
            .map(|r| Ok(perms_from_text(r.try_get(0)?)))
            .transpose()
    }

    pub async fn revoke_module_credentials(&self, name: &str) -> Result<u64, StoreError> {
        self.execute(
            "UPDATE module_credentials SET revoked = TRUE WHERE name = $1 AND NOT revoked",
            &[&name],
        )
        .await
    }

    pub async fn insert_alert(&self, a: NewAlert) -> Result<i64, StoreError> {
        let seq = a.seq.map(|s| s as i64);
        // A module's text may quote an attacker's NUL, which `text` cannot hold.
        let (title, body) = (text_col(a.title), text_col(a.body));
        let rows = self
            .query(
                "INSERT INTO alerts (time_ms, module, severity, title, body, node, seq) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[
                    &a.time_ms,
                    &a.module,
                    &a.severity,
                    &title,
                    &body,
                    &a.node,
                    &seq,
                ],
            )
            .await?;
        Ok(rows[0].try_get(0)?)
    }

    pub async fn count_alerts(&self) -> Result<(u64, u64), StoreError> {
        let rows = self
            .query(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE acked_ms IS NULL) FROM alerts",
                &[],
            )
            .await?;
        Ok((count(&rows[0], 0)?, count(&rows[0], 1)?))
    }

    pub async fn list_alerts(&self, limit: u32) -> Result<Vec<AlertInfo>, StoreError> {
        let limit = i64::from(effective_limit(limit));
        self.query(
            "SELECT id, time_ms, module, severity, title, body, node, seq, acked_ms, acked_by \
             FROM alerts ORDER BY id DESC LIMIT $1",
            &[&limit],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(AlertInfo {
                id: r.try_get(0)?,
                time_ms: r.try_get(1)?,
                module: r.try_get(2)?,
                severity: r.try_get(3)?,
                title: r.try_get(4)?,
                body: r.try_get(5)?,
                node: r.try_get(6)?,
                seq: r.try_get::<_, Option<i64>>(7)?.map(|s| s as u64),
                acked_ms: r.try_get(8)?,
                acked_by: r.try_get(9)?,
            })
        })
        .collect()
    }

    pub async fn ack_alert(&self, id: i64, by: &str, now_ms: i64) -> Result<bool, StoreError> {
        Ok(self
            .execute(
                "UPDATE alerts SET acked_ms = $2, acked_by = $3 WHERE id = $1 AND acked_ms IS NULL",
                &[&id, &now_ms, &by],
            )
            .await?
            > 0)
    }

    pub async fn insert_enrichment(
        &self,
        node: &NodeId,
        seq: u64,
        module: &str,
        kind: &str,
        data_json: String,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let seq = seq as i64;
        let (country, lat, lon) = enrichment_geo(&data_json);
        // One statement: the event's existence and the insert cannot be split by a
        // concurrent writer.
        Ok(self
            .execute(
                "INSERT INTO enrichments (node, seq, module, kind, data, time_ms, geo_country, \
                   geo_lat, geo_lon) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
                 WHERE EXISTS (SELECT 1 FROM events WHERE node = $1 AND seq = $2)",
                &[
                    &node.as_str(),
                    &seq,
                    &module,
                    &kind,
                    &data_json,
                    &now_ms,
                    &country,
                    &lat,
                    &lon,
                ],
            )
            .await?
            > 0)
    }

    pub async fn attach_enrichments(
        &self,
        mut events: Vec<StoredEvent>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if events.is_empty() {
            return Ok(events);
        }
        let nodes: Vec<&str> = events.iter().map(|e| e.node.as_str()).collect();
        let seqs: Vec<i64> = events.iter().map(|e| e.event.seq as i64).collect();
        let rows = self
            .query(
                "SELECT en.node, en.seq, en.module, en.kind, en.data FROM enrichments en \
                 JOIN (SELECT DISTINCT * FROM UNNEST($1::text[], $2::bigint[])) AS k(node, seq) \
                   ON en.node = k.node AND en.seq = k.seq \
                 ORDER BY en.id",
                &[&nodes, &seqs],
            )
            .await?;
        let mut found: HashMap<(String, i64), Vec<EnrichmentInfo>> = HashMap::new();
        for r in &rows {
            found
                .entry((r.try_get(0)?, r.try_get(1)?))
                .or_default()
                .push(EnrichmentInfo {
                    module: r.try_get(2)?,
                    kind: r.try_get(3)?,
                    data: r.try_get(4)?,
                });
        }
        for e in &mut events {
            if let Some(list) = found.get(&(e.node.as_str().to_owned(), e.event.seq as i64)) {
                e.enrichments = list.clone();
            }
        }
        Ok(events)
    }
}
