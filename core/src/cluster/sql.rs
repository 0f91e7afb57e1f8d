//! Every statement of the cluster (schema version 3: `cores`, `node_leases`,
//! `cluster_commands`). Lease times are the database's clock (`now()`), never a core's.
//!
//! **Invariant:** a node is marked online only in the transaction that takes its lease, and
//! a lease is deleted only in a statement that also marks its node offline; so no core
//! ever marks offline a node whose lease another core holds.

use super::CoreId;
use super::msg::{CHANNEL, ClusterMsg};
use crate::store::{PgStore, StoreError};
use honeybee_proto::NodeId;
use std::collections::HashSet;
use std::time::Duration;

/// Most leases one renewal statement carries.
pub const RENEW_CHUNK: usize = 10_000;

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Serialises core registrations (`pg_advisory_xact_lock` key), so two cores starting at
/// once never take the same slot.
const REGISTER_LOCK: i64 = 0x4842_5f43_4c55_5354; // "HB_CLUST"

/// Records this core (a restart of the same identity updates its row) and gives it the
/// lowest slot no live core holds (see `correlator::SeqClock`); rows of cores silent for
/// longer than `3 × ttl` are deleted first. None when every slot is held.
pub async fn register_core(
    pg: &PgStore,
    core: CoreId,
    listen: &str,
    advertise: &str,
    ttl: Duration,
) -> Result<Option<u16>, StoreError> {
    let mut c = pg.raw_client().await?;
    let tx = c.transaction().await?;
    let me = core.to_string();
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&REGISTER_LOCK])
        .await?;
    tx.execute(
        "DELETE FROM cores WHERE id <> $1 AND heartbeat_at < now() - make_interval(secs => $2)",
        &[&me, &(3.0 * secs(ttl))],
    )
    .await?;
    let used: HashSet<i32> = tx
        .query("SELECT slot FROM cores WHERE id <> $1", &[&me])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let slots = i32::from(crate::correlator::SeqClock::SLOTS);
    let Some(slot) = (0..slots).find(|s| !used.contains(s)) else {
        return Ok(None);
    };
    tx.execute(
        "INSERT INTO cores (id, started_at, heartbeat_at, listen, advertise, version, nodes, slot) \
         VALUES ($1, now(), now(), $2, $3, $4, 0, $5) ON CONFLICT (id) DO UPDATE SET \
         started_at = now(), heartbeat_at = now(), listen = EXCLUDED.listen, \
         advertise = EXCLUDED.advertise, version = EXCLUDED.version, nodes = 0, \
         slot = EXCLUDED.slot",
        &[&me, &listen, &advertise, &env!("CARGO_PKG_VERSION"), &slot],
    )
    .await?;
    tx.commit().await?;
    Ok(u16::try_from(slot).ok())
}

/// A clean shutdown: the core's row goes.
pub async fn unregister_core(pg: &PgStore, core: CoreId) -> Result<(), StoreError> {
    let c = pg.raw_client().await?;
    c.execute("DELETE FROM cores WHERE id = $1", &[&core.to_string()])
        .await?;
    Ok(())
}

/// Deletes the leases that match `cond` (SQL over `node_leases`, `$1` is this core) and
/// marks their nodes offline, in one statement. Returns how many nodes went offline.
async fn drop_leases(pg: &PgStore, cond: &str, core: CoreId) -> Result<u64, StoreError> {
    let c = pg.raw_client().await?;
    let sql = format!(
        "WITH gone AS (DELETE FROM node_leases WHERE {cond} RETURNING node) \
         UPDATE nodes SET online = FALSE FROM gone WHERE nodes.id = gone.node AND nodes.online"
    );
    Ok(c.execute(&sql, &[&core.to_string()]).await?)
}

/// At start-up: this core's own leases from an earlier run (it crashed) and every expired
/// lease go, and their nodes offline. Nodes leased by other live cores are not touched.
/// When no other core has a heartbeat within `ttl`, nodes marked online without any lease
/// (left by a store copied with `honeybee store migrate`) go offline too.
pub async fn start_up(pg: &PgStore, core: CoreId, ttl: Duration) -> Result<u64, StoreError> {
    let mut n = drop_leases(pg, "core_id = $1 OR expires_at <= now()", core).await?;
    let c = pg.raw_client().await?;
    n += c
        .execute(
            "UPDATE nodes SET online = FALSE WHERE online \
             AND NOT EXISTS (SELECT 1 FROM node_leases l WHERE l.node = nodes.id) \
             AND NOT EXISTS (SELECT 1 FROM cores c WHERE c.id <> $1 \
               AND c.heartbeat_at > now() - make_interval(secs => $2))",
            &[&core.to_string(), &secs(ttl)],
        )
        .await?;
    Ok(n)
}

/// At a clean shutdown: this core's leases go, and their nodes offline (the connections'
/// own handlers usually got there first).
pub async fn release_all(pg: &PgStore, core: CoreId) -> Result<u64, StoreError> {
    drop_leases(pg, "core_id = $1", core).await
}

/// Any core, periodically: leases not renewed in time (their core crashed or lost the
/// database) go, and their nodes offline.
pub async fn expire(pg: &PgStore, core: CoreId) -> Result<u64, StoreError> {
    // `$1` is unused here but keeps one shape for `drop_leases`.
    drop_leases(pg, "expires_at <= now() AND $1::text IS NOT NULL", core).await
}

/// What taking a lease found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    pub generation: i64,
    /// The core that held the lease before, when it was another one.
    pub from: Option<CoreId>,
}

/// Takes `node`'s lease for `core` (whoever held it), marks the node online with its
/// address, and tells the previous holder, all in one transaction.
pub async fn take(
    pg: &PgStore,
    core: CoreId,
    node: &NodeId,
    ttl: Duration,
    addr: &str,
    now_ms: i64,
) -> Result<Taken, StoreError> {
    let mut c = pg.raw_client().await?;
    let tx = c.transaction().await?;
    let prev = tx
        .query_opt(
            "SELECT core_id FROM node_leases WHERE node = $1 FOR UPDATE",
            &[&node.as_str()],
        )
        .await?
        .and_then(|r| CoreId::parse(r.get::<_, &str>(0)))
        .filter(|p| *p != core);
    let generation: i64 = tx
        .query_one(
            "INSERT INTO node_leases (node, core_id, generation, expires_at) \
             VALUES ($1, $2, nextval('node_lease_generation'), now() + make_interval(secs => $3)) \
             ON CONFLICT (node) DO UPDATE SET core_id = EXCLUDED.core_id, \
             generation = EXCLUDED.generation, expires_at = EXCLUDED.expires_at \
             RETURNING generation",
            &[&node.as_str(), &core.to_string(), &secs(ttl)],
        )
        .await?
        .get(0);
    tx.execute(
        "UPDATE nodes SET online = NOT revoked, addr = $2, last_seen_ms = $3 WHERE id = $1",
        &[&node.as_str(), &addr, &now_ms],
    )
    .await?;
    if prev.is_some() {
        let msg = ClusterMsg::LeaseTaken {
            node: node.clone(),
            core,
            generation,
        };
        tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &msg.encode()])
            .await?;
    }
    tx.commit().await?;
    Ok(Taken {
        generation,
        from: prev,
    })
}

/// Ends this core's lease of `node` if it is still generation `generation`, and marks the
/// node offline; a lease another core (or a newer connection) holds is left alone.
/// Returns whether the lease was still this one.
pub async fn release(
    pg: &PgStore,
    core: CoreId,
    node: &NodeId,
    generation: i64,
    addr: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let c = pg.raw_client().await?;
    let n = c
        .execute(
            "WITH gone AS (DELETE FROM node_leases WHERE node = $1 AND core_id = $2 \
               AND generation = $3 RETURNING node) \
             UPDATE nodes SET online = FALSE, addr = $4, last_seen_ms = $5 \
             FROM gone WHERE nodes.id = gone.node",
            &[
                &node.as_str(),
                &core.to_string(),
                &generation,
                &addr,
                &now_ms,
            ],
        )
        .await?;
    Ok(n > 0)
}

/// Renews the given leases of this core in statements of at most [`RENEW_CHUNK`], and its
/// heartbeat. Returns the nodes whose lease is still this core's with that generation;
/// the others were taken over or expired.
pub async fn renew(
    pg: &PgStore,
    core: CoreId,
    held: &[(NodeId, i64)],
    ttl: Duration,
) -> Result<HashSet<NodeId>, StoreError> {
    let c = pg.raw_client().await?;
    let me = core.to_string();
    let mut kept = HashSet::with_capacity(held.len());
    for chunk in held.chunks(RENEW_CHUNK) {
        let nodes: Vec<&str> = chunk.iter().map(|(n, _)| n.as_str()).collect();
        let gens: Vec<i64> = chunk.iter().map(|(_, g)| *g).collect();
        let rows = c
            .query(
                "UPDATE node_leases l SET expires_at = now() + make_interval(secs => $4) \
                 FROM UNNEST($2::text[], $3::bigint[]) AS h(node, generation) \
                 WHERE l.node = h.node AND l.generation = h.generation AND l.core_id = $1 \
                 RETURNING l.node",
                &[&me, &nodes, &gens, &secs(ttl)],
            )
            .await?;
        for r in rows {
            if let Ok(n) = NodeId::new(r.get::<_, String>(0)) {
                kept.insert(n);
            }
        }
    }
    c.execute(
        "UPDATE cores SET heartbeat_at = now(), nodes = $2 WHERE id = $1",
        &[&me, &(held.len() as i64)],
    )
    .await?;
    Ok(kept)
}

/// The core holding `node`'s unexpired lease, with its generation.
pub async fn holder(pg: &PgStore, node: &NodeId) -> Result<Option<(CoreId, i64)>, StoreError> {
    let c = pg.raw_client().await?;
    let row = c
        .query_opt(
            "SELECT core_id, generation FROM node_leases WHERE node = $1 AND expires_at > now()",
            &[&node.as_str()],
        )
        .await?;
    Ok(row.and_then(|r| Some((CoreId::parse(r.get::<_, &str>(0))?, r.get(1)))))
}

/// Every unexpired lease: node → the core holding it (one read for a node list).
pub async fn holders(
    pg: &PgStore,
) -> Result<std::collections::HashMap<NodeId, CoreId>, StoreError> {
    let c = pg.raw_client().await?;
    let rows = c
        .query(
            "SELECT node, core_id FROM node_leases WHERE expires_at > now()",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some((
                NodeId::new(r.get::<_, String>(0)).ok()?,
                CoreId::parse(r.get::<_, &str>(1))?,
            ))
        })
        .collect())
}

/// Sends one notification (delivered to every listening core when this commits).
pub async fn notify(pg: &PgStore, msg: &ClusterMsg) -> Result<(), StoreError> {
    let c = pg.raw_client().await?;
    c.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &msg.encode()])
        .await?;
    Ok(())
}

/// Queues a command for the core holding `node` and notifies it, in one transaction.
/// `on_id` runs with the row id before the commit (so the answer cannot arrive before
/// whoever waits for it is registered).
pub async fn command_queue(
    pg: &PgStore,
    node: &NodeId,
    origin: CoreId,
    target: CoreId,
    command: &[u8],
    on_id: impl FnOnce(i64),
) -> Result<i64, StoreError> {
    let mut c = pg.raw_client().await?;
    let tx = c.transaction().await?;
    let id: i64 = tx
        .query_one(
            "INSERT INTO cluster_commands (node, origin, target, command) \
             VALUES ($1, $2, $3, $4) RETURNING id",
            &[
                &node.as_str(),
                &origin.to_string(),
                &target.to_string(),
                &command,
            ],
        )
        .await?
        .get(0);
    on_id(id);
    let msg = ClusterMsg::Command { id, target };
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &msg.encode()])
        .await?;
    tx.commit().await?;
    Ok(id)
}

/// A queued command addressed to `me` and not yet answered: (node, command, origin).
pub async fn command_take(
    pg: &PgStore,
    id: i64,
    me: CoreId,
) -> Result<Option<(NodeId, Vec<u8>, CoreId)>, StoreError> {
    let c = pg.raw_client().await?;
    let row = c
        .query_opt(
            "SELECT node, command, origin FROM cluster_commands \
             WHERE id = $1 AND target = $2 AND result IS NULL",
            &[&id, &me.to_string()],
        )
        .await?;
    Ok(row.and_then(|r| {
        Some((
            NodeId::new(r.get::<_, String>(0)).ok()?,
            r.get(1),
            CoreId::parse(r.get::<_, &str>(2))?,
        ))
    }))
}

/// Stores a command's result and notifies the core that waits for it.
pub async fn command_answer(
    pg: &PgStore,
    id: i64,
    origin: CoreId,
    result: &[u8],
) -> Result<(), StoreError> {
    let mut c = pg.raw_client().await?;
    let tx = c.transaction().await?;
    tx.execute(
        "UPDATE cluster_commands SET result = $2 WHERE id = $1",
        &[&id, &result],
    )
    .await?;
    let msg = ClusterMsg::CommandDone { id, origin };
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &msg.encode()])
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Takes a command's result (and its row) if it has one; `None` otherwise.
pub async fn command_result(
    pg: &PgStore,
    id: i64,
    me: CoreId,
) -> Result<Option<Vec<u8>>, StoreError> {
    let c = pg.raw_client().await?;
    let row = c
        .query_opt(
            "DELETE FROM cluster_commands WHERE id = $1 AND origin = $2 AND result IS NOT NULL \
             RETURNING result",
            &[&id, &me.to_string()],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Forgets a command whose answer will not be waited for.
pub async fn command_forget(pg: &PgStore, id: i64) -> Result<(), StoreError> {
    let c = pg.raw_client().await?;
    c.execute("DELETE FROM cluster_commands WHERE id = $1", &[&id])
        .await?;
    Ok(())
}

/// Deletes command rows older than `age` (their origin crashed or gave up).
pub async fn commands_prune(pg: &PgStore, age: Duration) -> Result<u64, StoreError> {
    let c = pg.raw_client().await?;
    Ok(c.execute(
        "DELETE FROM cluster_commands WHERE created_at < now() - make_interval(secs => $1)",
        &[&secs(age)],
    )
    .await?)
}

/// A core's load as it publishes it with its heartbeat (schema version 5).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Load {
    pub connections: i64,
    pub handshakes_per_s: f64,
    pub ingest_per_s: f64,
    pub modules: i64,
    pub module_queued: i64,
}

/// Writes this core's load to its row (after each renewal).
pub async fn publish_load(pg: &PgStore, core: CoreId, load: &Load) -> Result<(), StoreError> {
    let c = pg.raw_client().await?;
    c.execute(
        "UPDATE cores SET connections = $2, handshakes_per_s = $3, ingest_per_s = $4, \
         modules = $5, module_queued = $6 WHERE id = $1",
        &[
            &core.to_string(),
            &load.connections,
            &load.handshakes_per_s,
            &load.ingest_per_s,
            &load.modules,
            &load.module_queued,
        ],
    )
    .await?;
    Ok(())
}

/// One registered core as `list_cores` reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreRow {
    pub id: String,
    pub listen: String,
    pub advertise: String,
    pub version: String,
    pub started_ms: i64,
    /// Since its last heartbeat, by the database's clock.
    pub heartbeat_age_ms: i64,
    /// Nodes with an unexpired lease of it.
    pub nodes: i64,
    /// As of its last heartbeat.
    pub load: Load,
}

/// Every registered core, oldest first.
pub async fn list_cores(pg: &PgStore) -> Result<Vec<CoreRow>, StoreError> {
    let c = pg.raw_client().await?;
    let rows = c
        .query(
            "SELECT id, listen, advertise, version, \
               (EXTRACT(EPOCH FROM started_at) * 1000)::bigint, \
               (EXTRACT(EPOCH FROM now() - heartbeat_at) * 1000)::bigint, \
               (SELECT count(*) FROM node_leases l WHERE l.core_id = cores.id \
                  AND l.expires_at > now()), \
               connections, handshakes_per_s, ingest_per_s, modules, module_queued \
             FROM cores ORDER BY started_at, id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| CoreRow {
            id: r.get(0),
            listen: r.get(1),
            advertise: r.get(2),
            version: r.get(3),
            started_ms: r.get(4),
            heartbeat_age_ms: r.get(5),
            nodes: r.get(6),
            load: Load {
                connections: r.get(7),
                handshakes_per_s: r.get(8),
                ingest_per_s: r.get(9),
                modules: r.get(10),
                module_queued: r.get(11),
            },
        })
        .collect())
}
