//! Smoke test of `honeybee-bench --only fleet` at 50 agents: a real core process, the bare
//! quinn baseline process, every scenario. Checks that the JSON it writes has every
//! figure and that the figures are sane (everyone connected and came back, round trips
//! answered, memory and CPU readings present); never timings against thresholds.
//! About 30 s on two cores, hence `_slow`.

use std::process::Command;

/// The number after `"key":` in the flat JSON object the harness writes.
fn field(json: &str, key: &str) -> Option<f64> {
    let line = json
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("\"{key}\":")))?;
    let v = line.split_once(':')?.1.trim().trim_end_matches(',');
    v.parse().ok()
}

#[test]
fn fleet_harness_at_50_agents_slow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let json_path = dir.path().join("fleet.json");
    let out = Command::new(env!("CARGO_BIN_EXE_honeybee-bench"))
        .args([
            "--only",
            "fleet",
            "--agents",
            "50",
            "--fleet-window",
            "3",
            "--rtt-samples",
            "20",
            "--json",
        ])
        .arg(&json_path)
        .output()
        .expect("run honeybee-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("### Fleet: 50 agents"), "{stdout}");
    let json = std::fs::read_to_string(&json_path).expect("json written");
    let get = |k: &str| field(&json, k).unwrap_or_else(|| panic!("no number {k:?} in\n{json}"));
    for key in [
        "core_rss_per_agent_kib",
        "core_private_per_agent_kib",
        "idle_cpu_percent",
        "bare_idle_cpu_percent",
        "storm_agents",
        "storm_seconds",
        "handshakes_per_s",
        "bare_handshakes_per_s",
        "rtt_p50_ms",
        "rtt_p99_ms",
    ] {
        let v = get(key);
        assert!(v.is_finite() && v >= 0.0, "{key} = {v}\n{json}");
    }
    assert_eq!(get("agents"), 50.0, "{json}");
    // Every agent came back after the core restart, and to the bare server.
    assert_eq!(get("storm_agents"), 50.0, "{json}");
    assert_eq!(get("bare_storm_agents"), 50.0, "{json}");
    assert!(get("handshakes_per_s") > 0.0 && get("bare_handshakes_per_s") > 0.0);
    // Round trips were answered, in order.
    assert!(
        get("rtt_p50_ms") > 0.0 && get("rtt_p99_ms") >= get("rtt_p50_ms"),
        "{json}"
    );
    // Every node took the config push; the trickle was acknowledged.
    assert_eq!(get("config_pushed"), 50.0, "{json}");
    assert!(get("trickle_acked_per_s") > 0.0, "{json}");
    // The core holds memory for its agents, and less than a megabyte each.
    let rss = get("core_rss_fleet_kib");
    assert!(rss > get("core_rss_idle_kib") * 0.5, "{json}");
    assert!(get("core_private_per_agent_kib") < 1024.0, "{json}");
}
