//! Prometheus metrics end to end: a core and an agent run with `[metrics] listen` on
//! loopback, an attacker session produces events, and both `/metrics` endpoints are
//! scraped over real HTTP; the counters must have moved and every line must parse as
//! the OpenMetrics text Prometheus reads. `honeybee status` shows the core's load.

mod common;

use common::{Deployment, ok, wait_for};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

const METRICS_ON: &str = "\n[metrics]\nlisten = \"127.0.0.1:0\"\n";

/// One scrape: its samples by `name{labels}` (labels as written), value.
type Samples = BTreeMap<String, f64>;

/// A strict reader of the OpenMetrics text format (the subset a scrape of ours may
/// hold): `# HELP`/`# TYPE`/`# UNIT` before a family's samples, each family declared
/// once, every sample belonging to the family declared last with a suffix its type
/// allows, label values quoted with only `\\`, `\"` and `\n` escaped, numeric values,
/// and `# EOF` as the last line. Panics with the offending line.
fn parse_openmetrics(text: &str) -> Samples {
    let mut samples = Samples::new();
    let mut families = BTreeSet::new();
    let mut current: Option<(String, String)> = None;
    let mut lines = text.lines().peekable();
    let mut saw_eof = false;
    while let Some(line) = lines.next() {
        assert!(!saw_eof, "text after # EOF: {line:?}");
        if line == "# EOF" {
            assert!(lines.peek().is_none(), "# EOF is not the last line");
            saw_eof = true;
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kind, name, arg) = (
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
                parts.next().unwrap_or(""),
            );
            assert!(valid_name(name), "bad metric name in {line:?}");
            match kind {
                "HELP" => {}
                "TYPE" => {
                    assert!(
                        [
                            "counter",
                            "gauge",
                            "histogram",
                            "info",
                            "stateset",
                            "unknown",
                            "summary",
                            "gaugehistogram"
                        ]
                        .contains(&arg),
                        "unknown type in {line:?}"
                    );
                    assert!(families.insert(name.to_owned()), "{name} declared twice");
                    current = Some((name.to_owned(), arg.to_owned()));
                }
                "UNIT" => assert!(
                    name.ends_with(&format!("_{arg}")),
                    "unit not the name's suffix: {line:?}"
                ),
                _ => panic!("unknown descriptor {line:?}"),
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("sample without value: {line:?}"));
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("value not a number: {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (
                n,
                l.strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line:?}")),
            ),
            None => (series, ""),
        };
        assert!(valid_name(name), "bad sample name: {line:?}");
        check_labels(labels, line);
        let (family, kind) = current
            .as_ref()
            .unwrap_or_else(|| panic!("sample before any # TYPE: {line:?}"));
        let suffixes: &[&str] = match kind.as_str() {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_count", "_sum", "_created"],
            "info" => &["_info"],
            _ => &[""],
        };
        assert!(
            suffixes.iter().any(|s| name == format!("{family}{s}")),
            "sample {name} does not belong to {kind} {family}: {line:?}"
        );
        assert!(
            samples.insert(series.to_owned(), v).is_none(),
            "series twice: {line:?}"
        );
    }
    assert!(saw_eof, "no # EOF at the end");
    samples
}

fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
}

/// `k="v",k2="v2"`: names valid, values quoted, only the three escapes.
fn check_labels(labels: &str, line: &str) {
    let b = labels.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let eq = labels[i..]
            .find('=')
            .unwrap_or_else(|| panic!("label without '=': {line:?}"))
            + i;
        assert!(valid_name(&labels[i..eq]), "bad label name: {line:?}");
        assert_eq!(b.get(eq + 1), Some(&b'"'), "unquoted label value: {line:?}");
        let mut j = eq + 2;
        loop {
            match b.get(j) {
                Some(b'\\') => {
                    assert!(
                        matches!(b.get(j + 1), Some(b'\\' | b'"' | b'n')),
                        "bad escape: {line:?}"
                    );
                    j += 2;
                }
                Some(b'"') => break,
                Some(b'\n') | None => panic!("unterminated label value: {line:?}"),
                Some(_) => j += 1,
            }
        }
        i = j + 1;
        match b.get(i) {
            Some(b',') => i += 1,
            None => {}
            Some(_) => panic!("junk after a label: {line:?}"),
        }
    }
}

/// GET `url` with a real HTTP client; returns (status, content type, body).
fn get(url: &str) -> (u16, String, String) {
    get_accepting(url, None)
}

/// GET `url`, with `accept` as the Accept header when given (Prometheus sends
/// `application/openmetrics-text;version=1.0.0,…`).
fn get_accepting(url: &str, accept: Option<&str>) -> (u16, String, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut req = reqwest::Client::new().get(url);
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let r = req.send().await.expect("GET");
        let status = r.status().as_u16();
        let ctype = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (status, ctype, r.text().await.expect("body"))
    })
}

fn scrape(addr: &str) -> Samples {
    parse_openmetrics(&scrape_text(addr))
}

/// What Prometheus gets: OpenMetrics text.
fn scrape_text(addr: &str) -> String {
    let (status, ctype, body) = get_accepting(
        &format!("http://{addr}/metrics"),
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    );
    assert_eq!(status, 200, "{body}");
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    body
}

/// What a client that asks for nothing in particular gets: the classic text format.
fn scrape_classic(addr: &str) -> String {
    let (status, ctype, body) = get(&format!("http://{addr}/metrics"));
    assert_eq!(status, 200, "{body}");
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    body
}

/// The real oracle: Prometheus' own linter (`promtool check metrics`, Debian package
/// `prometheus`) parses the exposition and checks the naming conventions.
fn promtool_check(body: &str) {
    use std::process::{Command, Stdio};
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool is needed (apt-get install prometheus): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused:\n{}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn addr_in(dir: &Path) -> String {
    wait_for("metrics.addr", Duration::from_secs(20), || {
        std::fs::read_to_string(dir.join("metrics.addr")).ok()
    })
    .trim()
    .to_owned()
}

fn value(s: &Samples, series: &str) -> f64 {
    s.get(series).copied().unwrap_or(0.0)
}

#[test]
fn core_and_agent_metrics_move_and_parse() {
    let mut d = Deployment::init(|t| format!("{t}{METRICS_ON}"));
    d.start_core();
    let core_metrics = addr_in(&d.core_dir());
    assert!(core_metrics.starts_with("127.0.0.1:"), "{core_metrics}");

    let token = d.token("m1", &[]);
    let a = d.agent_dir("m1");
    ok(&[
        "agent",
        "enroll",
        "--token",
        &token,
        "--data-dir",
        a.to_str().unwrap(),
    ]);
    let cfg = a.join("agent.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}{METRICS_ON}")).unwrap();
    let _agent = d.run_agent("m1");
    let agent_metrics = addr_in(&a);

    // An attacker session: the redis service answers PING.
    let port = d.service_port("m1", "redis");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"PING\r\n").unwrap();
    let mut reply = [0u8; 7];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"+PONG\r\n");
    drop(s);
    wait_for("the redis session stored", Duration::from_secs(20), || {
        let ev = d.events(&["--node", "m1", "--service", "redis", "--kind", "disconnect"]);
        (!ev.is_empty()).then_some(())
    });

    let agent = wait_for("agent counters", Duration::from_secs(20), || {
        let s = scrape(&agent_metrics);
        (value(&s, "honeybee_agent_sessions_total{service=\"redis\"}") >= 1.0
            && value(&s, "honeybee_agent_spool_depth") == 0.0)
            .then_some(s)
    });
    assert!(value(&agent, "honeybee_agent_events_spooled_total") >= 2.0);
    assert_eq!(
        value(&agent, "honeybee_agent_sessions_active{service=\"redis\"}"),
        0.0
    );
    assert_eq!(value(&agent, "honeybee_agent_connected"), 1.0);
    assert_eq!(value(&agent, "honeybee_agent_events_dropped_total"), 0.0);
    assert!(agent.contains_key("honeybee_agent_reconnects_total"));

    let core = scrape(&core_metrics);
    assert!(
        value(
            &core,
            "honeybee_core_ingest_events_total{outcome=\"stored\"}"
        ) >= 2.0,
        "{core:#?}"
    );
    assert!(value(&core, "honeybee_core_ingest_batches_total") >= 1.0);
    assert!(value(&core, "honeybee_core_ingest_commit_duration_seconds_count") >= 1.0);
    assert!(value(&core, "honeybee_core_handshakes_total") >= 2.0);
    assert!(value(&core, "honeybee_core_connections") >= 1.0);
    assert_eq!(value(&core, "honeybee_core_nodes_online"), 1.0);
    assert!(value(&core, "honeybee_core_store_size_bytes") > 0.0);
    assert!(core.contains_key("honeybee_core_ingest_commit_duration_seconds_bucket{le=\"+Inf\"}"));
    // Naming conventions: one prefix each, counters in _total.
    for name in core.keys() {
        assert!(name.starts_with("honeybee_core_"), "{name}");
    }
    for name in agent.keys() {
        assert!(name.starts_with("honeybee_agent_"), "{name}");
    }

    // The classic text format, checked by Prometheus' own linter; the same counters.
    for addr in [&core_metrics, &agent_metrics] {
        let classic = scrape_classic(addr);
        promtool_check(&classic);
        assert!(classic.contains("# TYPE honeybee_"), "{classic}");
        assert!(!classic.contains("# EOF"), "{classic}");
    }
    let classic = scrape_classic(&core_metrics);
    assert!(
        classic.contains("# TYPE honeybee_core_handshakes_total counter"),
        "{classic}"
    );

    // Only GET /metrics is served.
    assert_eq!(get(&format!("http://{core_metrics}/")).0, 404);
    assert_eq!(get(&format!("http://{agent_metrics}/other")).0, 404);

    // `honeybee status` reports the same load.
    let dd = d.d();
    let out = ok(&["status", "--data-dir", &dd]);
    assert!(out.contains("handshakes"), "{out}");
    assert!(out.contains("events/s"), "{out}");
    assert!(
        out.contains(&format!("metrics http://{core_metrics}/metrics")),
        "{out}"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&ok(&["status", "--data-dir", &dd, "--json"])).unwrap();
    assert!(doc["load"]["connections"].as_u64().unwrap() >= 1, "{doc}");
    assert!(doc["load"]["handshakes_per_s"].is_number(), "{doc}");
}

#[test]
fn metrics_refuse_a_non_loopback_address_unless_allowed() {
    let d = Deployment::init(|t| format!("{t}\n[metrics]\nlisten = \"0.0.0.0:0\"\n"));
    let dd = d.d();
    let err = common::fails(&["core", "run", "--data-dir", &dd]);
    assert!(err.contains("metrics.listen"), "{err}");
    assert!(err.contains("loopback"), "{err}");
}

#[test]
fn the_strict_reader_refuses_what_prometheus_would() {
    let good = "# HELP x_total a\n# TYPE x counter\nx_total{a=\"b\\\"c\"} 1\n# EOF\n";
    assert_eq!(parse_openmetrics(good).len(), 1);
    for bad in [
        "# TYPE x counter\nx 1\n# EOF\n", // a counter sample without _total
        "# TYPE x gauge\nx 1\n",          // no EOF
        "# TYPE x gauge\nx one\n# EOF\n", // not a number
        "# TYPE x gauge\nx{a=b} 1\n# EOF\n", // unquoted label
        "# TYPE x gauge\n# TYPE x gauge\nx 1\n# EOF\n", // declared twice
        "y 1\n# EOF\n",                   // no TYPE
    ] {
        assert!(
            std::panic::catch_unwind(|| parse_openmetrics(bad)).is_err(),
            "accepted: {bad:?}"
        );
    }
}

// ---- on a PostgreSQL store (`common::on_postgres`: the same body, a database of its own
// on this test binary's PostgreSQL server)

#[test]
fn core_and_agent_metrics_move_and_parse_on_postgres() {
    common::on_postgres(core_and_agent_metrics_move_and_parse);
}
