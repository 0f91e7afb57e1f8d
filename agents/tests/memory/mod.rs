//! What attacks on memory are measured by: the test process's own private memory (the
//! services under test run in it) and the captures being written to the spool on disk.

// Each test binary uses only some of these.
#![allow(dead_code)]

use std::path::Path;

/// The test process's private resident memory in bytes (`RssAnon`): the services under
/// test run in this process, so an attack that makes them hold memory shows here.
pub fn rss_anon() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssAnon in /proc/self/status");
    kib * 1024
}

/// Bytes of the `.part` files (captures being written) in the spool directory `dir`.
pub fn part_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("captures"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "part"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}
