//! Smoke test of `honeybee-bench --only services` at its smallest sizes, HoneyBee's side
//! only (no Cowrie or OpenCanary needed): a real core, a real agent process, hydra, the
//! OpenSSH client and a small flood. Checks what was recorded and that every HoneyBee row
//! has a value; never timings.

use std::process::Command;

/// The HoneyBee median cell of the first row whose measurement starts with `what`.
fn ours(md: &str, what: &str) -> Option<String> {
    md.lines()
        .find(|l| l.starts_with(&format!("| {what}")))
        .and_then(|l| l.split('|').nth(3))
        .map(|c| c.trim().to_owned())
}

#[test]
fn services_figure_runs_without_peers() {
    let out = Command::new(env!("CARGO_BIN_EXE_honeybee-bench"))
        .args(["--only", "services", "--tiny", "--no-peers"])
        .output()
        .expect("run honeybee-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("### Honeypot services"), "{stdout}");
    for row in [
        "RSS idle",
        "RSS with 50 attacker SSH connections held open",
        "private (anonymous) memory idle",
        "private memory with 50 attacker SSH connections held open",
        "SSH successful login",
        "SSH scripted session",
        "banner (greeting, client closes): connections/s",
        "banner (greeting, client closes): server CPU per connection",
        "FTP (220, QUIT, 221): connections/s",
        "HTTP (GET /, Connection: close): connections/s",
        "SSH failed login under hydra",
    ] {
        let cell = ours(&stdout, row).unwrap_or_else(|| panic!("no row {row:?}:\n{stdout}"));
        let v: f64 = cell
            .parse()
            .unwrap_or_else(|_| panic!("row {row:?} has no HoneyBee value ({cell:?}):\n{stdout}"));
        assert!(v > 0.0, "row {row:?} is {v}:\n{stdout}");
    }
    // Every hydra try reached the core as a password attempt (2 users × 2 passwords).
    assert!(
        stdout.contains("4 tries, 4 password attempts recorded"),
        "{stdout}"
    );
    // The flood left the agent up and answering.
    assert!(stdout.contains("agent alive, still serving"), "{stdout}");
    assert!(stdout.contains("100 greeted and held"), "{stdout}");
}
