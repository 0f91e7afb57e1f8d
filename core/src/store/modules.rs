//! Module state in the SQLite store: module credentials (the hash of the secret only),
//! alerts that modules publish, and the enrichments and annotations they attach to events.

use super::codec::{enrichment_geo, text_col};
use super::{SqliteStore, StoreError};
use honeybee_proto::admin::{AlertInfo, EnrichmentInfo, StoredEvent};
use honeybee_proto::module::Permission;
use honeybee_proto::{NodeId, TokenId};
use rusqlite::params;
use std::collections::HashMap;

/// A module credential as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleCredential {
    pub id: TokenId,
    pub name: String,
    pub secret_hash: [u8; 32],
    pub permissions: Vec<Permission>,
    pub created_ms: i64,
    pub revoked: bool,
}

/// An alert to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    pub time_ms: i64,
    pub module: String,
    pub severity: String,
    pub title: String,
    pub body: String,
    pub node: Option<String>,
    pub seq: Option<u64>,
}

pub(crate) fn perms_to_text(p: &[Permission]) -> String {
    p.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(",")
}

pub(crate) fn perms_from_text(s: &str) -> Vec<Permission> {
    s.split(',').filter_map(Permission::parse).collect()
}

impl SqliteStore {
    pub async fn create_module_credential(&self, c: ModuleCredential) -> Result<(), StoreError> {
        self.write(1, move |conn| {
            conn.prepare_cached(
                "INSERT INTO module_credentials (id, name, secret_hash, permissions, created_ms, revoked) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                c.id.to_hex(),
                c.name,
                hex::encode(c.secret_hash),
                perms_to_text(&c.permissions),
                c.created_ms,
                c.revoked
            ])?;
            Ok(())
        })
        .await
    }

    pub async fn module_credential(
        &self,
        id: TokenId,
    ) -> Result<Option<ModuleCredential>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT name, secret_hash, permissions, created_ms, revoked FROM module_credentials WHERE id = ?1",
            )?;
            let mut rows = stmt.query([id.to_hex()])?;
            let Some(row) = rows.next()? else {
                return Ok(None);
            };
            let hash_hex: String = row.get(1)?;
            let mut secret_hash = [0u8; 32];
            if hex::decode_to_slice(&hash_hex, &mut secret_hash).is_err() {
                return Ok(None);
            }
            Ok(Some(ModuleCredential {
                id,
                name: row.get(0)?,
                secret_hash,
                permissions: perms_from_text(&row.get::<_, String>(2)?),
                created_ms: row.get(3)?,
                revoked: row.get(4)?,
            }))
        })
        .await
    }

    /// The permissions of module `name`: those of its newest unrevoked credential.
    pub async fn module_permissions(
        &self,
        name: &str,
    ) -> Result<Option<Vec<Permission>>, StoreError> {
        let name = name.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT permissions FROM module_credentials WHERE name = ?1 AND revoked = 0 \
                 ORDER BY created_ms DESC LIMIT 1",
            )?;
            let mut rows = stmt.query([name])?;
            Ok(match rows.next()? {
                Some(row) => Some(perms_from_text(&row.get::<_, String>(0)?)),
                None => None,
            })
        })
        .await
    }

    /// Revokes every credential issued to module `name`; returns how many.
    pub async fn revoke_module_credentials(&self, name: &str) -> Result<u64, StoreError> {
        let name = name.to_owned();
        self.write(1, move |conn| {
            Ok(conn
                .prepare_cached(
                    "UPDATE module_credentials SET revoked = 1 WHERE name = ?1 AND revoked = 0",
                )?
                .execute([name])? as u64)
        })
        .await
    }

    pub async fn insert_alert(&self, a: NewAlert) -> Result<i64, StoreError> {
        self.write(1, move |conn| {
            conn.prepare_cached(
                "INSERT INTO alerts (time_ms, module, severity, title, body, node, seq) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                a.time_ms,
                a.module,
                a.severity,
                text_col(a.title),
                text_col(a.body),
                a.node,
                a.seq.map(|s| s as i64)
            ])?;
            Ok(conn.last_insert_rowid())
        })
        .await
    }

    /// (all alerts, those not acknowledged), counted over the whole table.
    pub async fn count_alerts(&self) -> Result<(u64, u64), StoreError> {
        self.read(move |conn| {
            let (total, open): (i64, i64) = conn
                .prepare_cached("SELECT COUNT(*), COALESCE(SUM(acked_ms IS NULL), 0) FROM alerts")?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok((total.max(0) as u64, open.max(0) as u64))
        })
        .await
    }

    /// Newest first.
    pub async fn list_alerts(&self, limit: u32) -> Result<Vec<AlertInfo>, StoreError> {
        let limit = i64::from(super::effective_limit(limit));
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, time_ms, module, severity, title, body, node, seq, acked_ms, acked_by \
                 FROM alerts ORDER BY id DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit], |r| {
                Ok(AlertInfo {
                    id: r.get(0)?,
                    time_ms: r.get(1)?,
                    module: r.get(2)?,
                    severity: r.get(3)?,
                    title: r.get(4)?,
                    body: r.get(5)?,
                    node: r.get(6)?,
                    seq: r.get::<_, Option<i64>>(7)?.map(|s| s as u64),
                    acked_ms: r.get(8)?,
                    acked_by: r.get(9)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn ack_alert(&self, id: i64, by: &str, now_ms: i64) -> Result<bool, StoreError> {
        let by = by.to_owned();
        self.write(1, move |conn| {
            Ok(conn
                .prepare_cached("UPDATE alerts SET acked_ms = ?2, acked_by = ?3 WHERE id = ?1 AND acked_ms IS NULL")?
                .execute(params![id, now_ms, by])?
                > 0)
        })
        .await
    }

    /// Attaches data to a stored event. Returns false if no such event exists.
    pub async fn insert_enrichment(
        &self,
        node: &NodeId,
        seq: u64,
        module: &str,
        kind: &str,
        data_json: String,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let (node, module, kind) = (node.as_str().to_owned(), module.to_owned(), kind.to_owned());
        self.write(1, move |conn| {
            let exists: bool = conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM events WHERE node = ?1 AND seq = ?2)",
                )?
                .query_row(params![node, seq as i64], |r| r.get(0))?;
            if !exists {
                return Ok(false);
            }
            let (country, lat, lon) = enrichment_geo(&data_json);
            conn.prepare_cached(
                "INSERT INTO enrichments (node, seq, module, kind, data, time_ms, \
                 geo_country, geo_lat, geo_lon) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                node, seq as i64, module, kind, data_json, now_ms, country, lat, lon
            ])?;
            Ok(true)
        })
        .await
    }

    /// Fills in the enrichments of each event.
    pub async fn attach_enrichments(
        &self,
        mut events: Vec<StoredEvent>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if events.is_empty() {
            return Ok(events);
        }
        let keys: Vec<(String, i64)> = events
            .iter()
            .map(|e| (e.node.as_str().to_owned(), e.event.seq as i64))
            .collect();
        let found = self
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT module, kind, data FROM enrichments WHERE node = ?1 AND seq = ?2 ORDER BY id",
                )?;
                let mut out: HashMap<(String, i64), Vec<EnrichmentInfo>> = HashMap::new();
                for (node, seq) in keys {
                    let rows = stmt.query_map(params![node, seq], |r| {
                        Ok(EnrichmentInfo {
                            module: r.get(0)?,
                            kind: r.get(1)?,
                            data: r.get(2)?,
                        })
                    })?;
                    let list = rows.collect::<Result<Vec<_>, _>>()?;
                    if !list.is_empty() {
                        out.insert((node, seq), list);
                    }
                }
                Ok(out)
            })
            .await?;
        for e in &mut events {
            if let Some(list) = found.get(&(e.node.as_str().to_owned(), e.event.seq as i64)) {
                e.enrichments = list.clone();
            }
        }
        Ok(events)
    }
}
