//! Log output of `honeybee` (core, agent, dashboard): plain text without ANSI colour codes
//! when written to a file (as `honeybee up > log 2>&1` or a service manager does), and one
//! JSON object a line on standard error with `--log-format json`, for log shippers.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `honeybee ARGS` with standard error alone in `log` (standard output, where commands
/// print their results, is not a log).
fn spawn_stderr(args: &[&str], log: &Path, envs: &[(&str, &str)]) -> Proc {
    let file = std::fs::File::create(log).expect("log file");
    let mut c = Command::new(bin());
    c.args(args)
        .env("RUST_LOG", "info,quinn=warn")
        .env_remove("NO_COLOR")
        .env_remove("HONEYBEE_LOG_FORMAT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file);
    for (k, v) in envs {
        c.env(k, v);
    }
    Proc {
        child: c.spawn().expect("spawn honeybee"),
        log: log.to_owned(),
    }
}

fn json_lines(log: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {l}", log.display()));
            assert!(v["timestamp"].is_string(), "{l}");
            assert!(v["level"].is_string(), "{l}");
            assert!(v["target"].is_string(), "{l}");
            v
        })
        .collect()
}

#[test]
fn logs_to_a_file_have_no_colour_codes() {
    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let agent = dep.start_agent("plain");
    wait_for("plain online", Duration::from_secs(30), || {
        dep.node("plain").filter(|n| n["online"] == true)
    });
    for log in [&dep.core.as_ref().expect("core").log, &agent.log] {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        assert!(text.contains(" INFO "), "{}: {text}", log.display());
        assert!(
            !text.contains('\u{1b}'),
            "{}: ANSI escapes in {text:?}",
            log.display()
        );
    }
}

#[test]
fn json_logs_from_core_agent_and_dashboard() {
    let dep = Deployment::init(|t| t);
    let work = dep.dir.path();
    let d = dep.d();
    let core_log = work.join("core.json.log");
    let mut core = spawn_stderr(
        &["--log-format", "json", "core", "run", "--data-dir", &d],
        &core_log,
        &[],
    );
    wait_for("core to answer", Duration::from_secs(20), || {
        run(&["status", "--data-dir", &d])
            .status
            .success()
            .then_some(())
    });
    let token = dep.token("jsonlog", &[]);
    let a = dep.agent_dir("jsonlog");
    let a = a.to_str().unwrap();
    ok(&["agent", "enroll", "--token", &token, "--data-dir", a]);
    // The flag after the subcommand, and the environment variable, work as well.
    let agent_log = work.join("agent.json.log");
    let mut agent = spawn_stderr(
        &["agent", "run", "--data-dir", a, "--log-format", "json"],
        &agent_log,
        &[],
    );
    let dash_log = work.join("dashboard.json.log");
    let mut dash = spawn_stderr(
        &[
            "dashboard",
            "run",
            "--data-dir",
            &d,
            "--listen",
            "127.0.0.1:0",
        ],
        &dash_log,
        &[
            ("HONEYBEE_LOG_FORMAT", "json"),
            (
                "HONEYBEE_DASHBOARD_ADMIN_PASSWORD",
                "json-log-test-password-1",
            ),
        ],
    );
    wait_for("jsonlog online", Duration::from_secs(30), || {
        dep.node("jsonlog").filter(|n| n["online"] == true)
    });
    wait_for(
        "the dashboard's log record",
        Duration::from_secs(60),
        || {
            json_lines(&dash_log)
                .iter()
                .any(|v| v["message"] == "dashboard listening" && v["url"].is_string())
                .then_some(())
        },
    );
    agent.terminate();
    dash.kill();
    core.terminate();
    for log in [&core_log, &agent_log] {
        let lines = json_lines(log);
        assert!(
            lines.iter().any(|v| v["level"] == "INFO"),
            "{}: no INFO record",
            log.display()
        );
    }
}
