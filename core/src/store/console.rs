//! Store queries for the dashboard's operator console that the analytics module does not
//! answer: how many events match a search (a total above a page of results), and the top
//! command lines of chosen services (the shell services, so FTP verbs and Redis commands
//! do not crowd out what attackers typed).

use super::analytics::where_clause;
use super::{MAX_TOP, SqliteStore, StoreError};
use honeybee_proto::admin::{EventSearch, KeyCount, MAX_EVENT_COUNT};
use rusqlite::params_from_iter;
use rusqlite::types::Value;

/// Most service names one top-commands query may name.
pub const MAX_SERVICES: usize = 64;

impl SqliteStore {
    /// (matching events, counted up to [`MAX_EVENT_COUNT`]; whether the count stopped
    /// there). `before` and `limit` of the search are ignored: the total is of every page.
    pub async fn count_matching(&self, q: &EventSearch) -> Result<(u64, bool), StoreError> {
        let q = EventSearch {
            before: None,
            ..q.clone()
        };
        let (clause, mut args) = where_clause(&q)?;
        // The inner LIMIT bounds the work of a filter the indexes cannot serve (text).
        let sql = format!("SELECT COUNT(*) FROM (SELECT 1 FROM events{clause} LIMIT ?)");
        args.push(Value::Integer(MAX_EVENT_COUNT as i64 + 1));
        self.read(move |c| {
            let n: i64 = c
                .prepare_cached(&sql)?
                .query_row(params_from_iter(args), |r| r.get(0))?;
            let n = n.max(0) as u64;
            Ok((n.min(MAX_EVENT_COUNT), n > MAX_EVENT_COUNT))
        })
        .await
    }

    /// The `top` most frequent command lines in `[since_ms, until_ms)` from the named
    /// services (every service when `services` is empty).
    pub async fn top_commands(
        &self,
        since_ms: i64,
        until_ms: i64,
        services: &[String],
        top: u32,
    ) -> Result<Vec<KeyCount>, StoreError> {
        if services.len() > MAX_SERVICES {
            return Err(StoreError::InvalidQuery(format!(
                "at most {MAX_SERVICES} services per query"
            )));
        }
        let mut args = vec![Value::Integer(since_ms), Value::Integer(until_ms)];
        let mut sql = String::from(
            "SELECT hb_command(body) AS k, COUNT(*) AS n FROM events \
             WHERE time_ms >= ? AND time_ms < ? AND kind = 'command'",
        );
        if !services.is_empty() {
            sql.push_str(" AND service IN (");
            sql.push_str(&vec!["?"; services.len()].join(","));
            sql.push(')');
            args.extend(services.iter().map(|s| Value::Text(s.clone())));
        }
        sql.push_str(" AND k IS NOT NULL GROUP BY k ORDER BY n DESC, k LIMIT ?");
        args.push(Value::Integer(i64::from(top.min(MAX_TOP))));
        self.read(move |c| {
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(params_from_iter(args), |r| {
                Ok(KeyCount {
                    key: r.get(0)?,
                    count: r.get::<_, i64>(1)?.max(0) as u64,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use honeybee_proto::NodeId;
    use honeybee_proto::event::{Event, EventKind};

    fn ev(seq: u64, service: &str, kind: EventKind) -> Event {
        Event {
            seq,
            time_ms: 1000 + seq as i64,
            service: service.into(),
            session: None,
            src: Some("203.0.113.7:4000".parse().unwrap()),
            dst: None,
            kind,
        }
    }

    fn cmd(line: &str) -> EventKind {
        EventKind::Command { line: line.into() }
    }

    #[tokio::test]
    async fn counts_every_match_and_top_commands_of_chosen_services() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("honeybee.db")).unwrap();
        let a = NodeId::new("a").unwrap();
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
        let many = vec!["x".to_owned(); MAX_SERVICES + 1];
        assert!(s.top_commands(0, 1, &many, 10).await.is_err());
    }
}
