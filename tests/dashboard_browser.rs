//! The dashboard in a real browser: starts `honeybee up` (core, local node, dashboard) in a
//! fresh data directory, then runs `dashboard/web/e2e/run.mjs`, which drives Debian's
//! Chromium through playwright-core against it (log in, live SSH attempt, token, a second
//! agent, config push, module load/unload, viewer refused, revoke, every page; the search
//! language, the time zone toggle, chart values on hover, unsaved-edit warnings, the audit
//! log, every page at 390 px, a session ended under an open page; and, from
//! `e2e/incidents-checks.mjs`: the real alerts module's alerts grouped into incidents,
//! sorted by a column on the server and acknowledged in bulk, the total count above the
//! Events rows, the built-in dashboard module refused, Top commands without FTP verbs or
//! HTTP requests with chart drill-down, and the alert rules editor naming each problem
//! beside its field). The test fails if the
//! script fails; its screenshots go to `target/dashboard-screenshots/`.
//!
//! `events_page_with_5000_rows_and_live_arrivals` drives `e2e/events-load.mjs` against the
//! mock backend (`e2e/mock.mjs`): 5,000 rows and 40 live events a second, measured (~20 s).

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/` of this build, from the path of the binary under test (`target/debug/honeybee`).
fn target_dir() -> PathBuf {
    Path::new(bin())
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo().join("target"))
}

/// The web app's npm packages (playwright-core among them); installed once if missing.
fn ensure_node_modules(web: &Path) {
    if web
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        return;
    }
    let st = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(web)
        .status()
        .expect("npm runs (install Node.js and npm)");
    assert!(st.success(), "npm ci in {} failed", web.display());
}

/// The first `http://…` or `https://…` word on a line of `up`'s output that names the dashboard.
fn dashboard_url(log: &str) -> Option<String> {
    log.lines()
        .filter(|l| l.to_ascii_lowercase().contains("dashboard"))
        .flat_map(|l| l.split_whitespace())
        .find(|w| w.starts_with("http://") || w.starts_with("https://"))
        .map(|w| w.trim_end_matches(['/', ',', ')']).to_owned())
}

/// The port of the SSH honeypot from `up`'s "honeypot ssh  127.0.0.1:2222 (ssh)" line.
fn ssh_port(log: &str) -> Option<u16> {
    log.lines()
        .filter(|l| l.contains("honeypot") && l.contains("(ssh)"))
        .flat_map(|l| l.split_whitespace())
        .find_map(|w| w.rsplit_once(':').and_then(|(_, p)| p.parse().ok()))
}

#[test]
fn dashboard_in_a_real_browser() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: apt-get install chromium (the browser tests drive Debian's Chromium)"
    );
    let web = repo().join("dashboard/web");
    ensure_node_modules(&web);

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let password = format!("e2e-admin-{}", std::process::id());
    let log_path = dir.path().join("up.log");
    let log = std::fs::File::create(&log_path).unwrap();
    // The PostgreSQL twin: the data directory initialised as `up` would do it, with the
    // store in a database of its own (`up` keeps what `core init --store` wrote).
    let store = postgres_store_url();
    let mut up_cmd = Command::new(bin());
    if let Some(url) = &store {
        let out = Command::new(bin())
            .args(["core", "init", "--data-dir", data.to_str().unwrap()])
            .args(["--listen", "127.0.0.1:7443", "--store", url])
            .env("HONEYBEE_STORE_PASSWORD", pg_test_server::PASSWORD)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "core init --store: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        up_cmd.env("HONEYBEE_STORE_PASSWORD", pg_test_server::PASSWORD);
    }
    let child = up_cmd
        .args(["up", "--data-dir", data.to_str().unwrap()])
        .env("RUST_LOG", "info,quinn=warn")
        .env("HONEYBEE_DASHBOARD_ADMIN_PASSWORD", &password)
        // An OS-assigned port: 8080 may be taken by a dashboard someone is running.
        .env("HONEYBEE_DASHBOARD_LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn honeybee up");
    let mut up = Proc {
        child,
        log: log_path,
    };
    let url = wait_for(
        "`up` to print the dashboard URL",
        Duration::from_secs(120),
        || {
            let text = up.log_text();
            if text.contains("HoneyBee is up") {
                dashboard_url(&text)
            } else {
                None
            }
        },
    );
    let text = up.log_text();
    let ssh = ssh_port(&text).unwrap_or(2222);
    assert!(
        text.contains("password from HONEYBEE_DASHBOARD_ADMIN_PASSWORD")
            && !text.contains(&password),
        "`up` must not echo a password the operator set: {text}"
    );

    let shots = target_dir().join(match &store {
        None => "dashboard-screenshots",
        Some(_) => "dashboard-screenshots-postgres",
    });
    // Screenshots of an earlier run must not pass for this one's.
    let _ = std::fs::remove_dir_all(&shots);
    let work = dir.path().join("e2e");
    std::fs::create_dir_all(&work).unwrap();
    // The upgrade step's package: the agent built again reporting another version.
    let next_agent = dir.path().join("next-agent");
    build_next_agent(&next_agent);
    let out_path = dir.path().join("e2e.log");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut node = Command::new("node")
        .arg(web.join("e2e/run.mjs"))
        .current_dir(&web)
        .env("HB_URL", &url)
        .env("HB_ADMIN_PASSWORD", &password)
        .env("HB_BIN", bin())
        .env("HB_WORK", &work)
        .env("HB_REPO", repo())
        .env("HB_SSH_PORT", ssh.to_string())
        .env("HB_SCREENSHOTS", &shots)
        .env("HB_UPGRADE_PACKAGE", &next_agent)
        .env("HB_NEXT_VERSION", NEXT_AGENT_VERSION)
        .env("HB_AGENT_VERSION", env!("CARGO_PKG_VERSION"))
        .env("HB_PACKAGES", data.join("packages"))
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("node runs (install Node.js)");
    // The script bounds every wait; this is the backstop if the browser itself hangs.
    let start = Instant::now();
    let status = loop {
        if let Some(s) = node.try_wait().expect("wait for node") {
            break Some(s);
        }
        if start.elapsed() > Duration::from_secs(600) {
            let _ = node.kill();
            let _ = node.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let report = std::fs::read_to_string(&out_path).unwrap_or_default();
    println!("{report}");
    println!("screenshots in {}", shots.display());
    let stopped = up.terminate();
    assert!(
        status.is_some_and(|s| s.success()),
        "the browser test failed ({status:?}):\n{report}\n--- honeybee up ---\n{}",
        up.log_text()
    );
    assert!(
        stopped.success(),
        "`up` exits 0 on SIGTERM: {stopped:?}\n{}",
        up.log_text()
    );
    if store.is_some() {
        assert!(
            !data.join("honeybee.db").exists(),
            "a core on PostgreSQL made a SQLite file"
        );
    }
    for page in [
        "01-login",
        "02-overview",
        "03-nodes",
        "04-events-live",
        "06-enrol",
    ] {
        assert!(
            shots.join(format!("{page}.png")).exists(),
            "no screenshot {page}.png in {}",
            shots.display()
        );
    }
}

/// Runs `node <script> <url>` from `web`, bounded by `limit`; returns (success, output).
fn run_script(web: &Path, script: &str, url: &str, limit: Duration) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("script.log");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut node = Command::new("node")
        .arg(web.join(script))
        .arg(url)
        .current_dir(web)
        .env(
            "HB_SCREENSHOTS",
            target_dir().join("dashboard-screenshots-load"),
        )
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("node runs (install Node.js)");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = node.try_wait().expect("wait for node") {
            break Some(s);
        }
        if start.elapsed() > limit {
            let _ = node.kill();
            let _ = node.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let report = std::fs::read_to_string(&out_path).unwrap_or_default();
    (status.is_some_and(|s| s.success()), report)
}

/// The Events page with 5,000 rows while 40 live events a second arrive, in Chromium,
/// against the mock backend (`e2e/mock.mjs`, the API contract over in-memory data: the
/// real store would need minutes to fill with 5,000 events on a shared machine). The script
/// prints frames a second, long tasks, timer lag, keystroke-to-paint and filter times as
/// figures and asserts only correctness: every row loaded, few in the DOM, live rows
/// arrive, the last row is reachable by scrolling, the filter shows only matching rows.
#[test]
fn events_page_with_5000_rows_and_live_arrivals() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: apt-get install chromium (the browser tests drive Debian's Chromium)"
    );
    let web = repo().join("dashboard/web");
    ensure_node_modules(&web);
    // The dashboard crate's build script builds dist/; a build that embedded prebuilt
    // assets instead (HONEYBEE_DASHBOARD_DIST) leaves it to us.
    if !web.join("dist/index.html").exists() {
        let st = Command::new("npm")
            .args(["run", "build"])
            .current_dir(&web)
            .status()
            .expect("npm runs");
        assert!(st.success(), "npm run build in {} failed", web.display());
    }
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("mock.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new("node")
        .args(["e2e/mock.mjs", "0"])
        .current_dir(&web)
        .env("MOCK_EVENTS", "5000")
        .env("MOCK_RATE", "40")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("node runs (install Node.js)");
    let mut mock = Proc {
        child,
        log: log_path,
    };
    let url = wait_for("the mock backend's URL", Duration::from_secs(30), || {
        mock.log_text()
            .split_whitespace()
            .find(|w| w.starts_with("http://127.0.0.1:"))
            .map(str::to_owned)
    });
    let (ok, report) = run_script(&web, "e2e/events-load.mjs", &url, Duration::from_secs(300));
    println!("{report}");
    mock.kill();
    assert!(ok, "the Events page load test failed:\n{report}");
}

// ---- on a PostgreSQL store (`common::on_postgres`: the same body; `up` runs on a data
// directory `core init --store` made, with a database of its own on this test binary's
// PostgreSQL server)

#[test]
fn dashboard_in_a_real_browser_on_postgres() {
    common::on_postgres(dashboard_in_a_real_browser);
}
