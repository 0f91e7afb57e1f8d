//! The real clients the service tests drive. `scripts/test.sh` installs every one of them;
//! a missing tool fails the test that needs it rather than letting it pass unchecked.

// Each test binary uses only some of these.
#![allow(dead_code)]

use std::process::{Command, Stdio};

/// Whether `tool` is on the PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Fails the test, naming what to install, unless every tool is on the PATH.
pub fn require(tools: &[&str]) {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !have(t)).collect();
    assert!(
        missing.is_empty(),
        "this test needs {} on the PATH (scripts/test.sh installs it)",
        missing.join(", ")
    );
}
