//! The realism check's report: a node probes its own services on loopback as an
//! attacker's scanner would and compares what it sees with references recorded from the
//! real programs (`agents/src/realism/`). The agent answers
//! [`crate::control::Command::CheckRealism`] with this report as JSON text; the core keeps
//! the latest per node and serves it on the admin API.

use serde::{Deserialize, Serialize};

/// Most services one report lists (a node's configuration is bounded far below this).
pub const MAX_SERVICES: usize = 64;
/// Most failing checks kept per service; the count of passed/total is still exact.
pub const MAX_FAILURES: usize = 64;
/// Longest text kept for an expected or observed value.
pub const MAX_VALUE_LEN: usize = 512;

/// One run of the realism check on one node.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RealismReport {
    /// When the check started (ms since the epoch, the node's clock).
    pub started_ms: i64,
    /// How long it took.
    pub duration_ms: u64,
    /// One entry per checked service, in configuration order, then `consistency`.
    pub services: Vec<ServiceRealism>,
}

/// The checks of one service (or of the cross-service consistency, `kind` `consistency`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServiceRealism {
    pub name: String,
    pub kind: String,
    /// What the service claims to be, and the reference it was compared with
    /// (`OpenSSH 9.2p1 (Debian 12 openssh-server)`).
    pub reference: String,
    pub passed: u32,
    pub total: u32,
    /// Each check that did not pass, in the order run.
    pub failures: Vec<CheckFailure>,
    /// Why the service was not checked (no reference recorded for its product); then
    /// `total` is 0.
    pub skipped: Option<String>,
}

/// A check that failed: what the real program does, and what this node did.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CheckFailure {
    pub check: String,
    pub expected: String,
    pub got: String,
}

impl RealismReport {
    /// Checks passed and run over every service.
    pub fn totals(&self) -> (u32, u32) {
        self.services.iter().fold((0, 0), |(p, t), s| {
            (p.saturating_add(s.passed), t.saturating_add(s.total))
        })
    }

    /// The JSON text a node answers the command with.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// A node's answer, decoded and clamped whatever the node sent.
    pub fn from_json(text: &str) -> Result<RealismReport, String> {
        let mut r: RealismReport = serde_json::from_str(text).map_err(|e| e.to_string())?;
        r.clamp();
        Ok(r)
    }

    /// Cuts every list and text to the limits above, so a report always fits a frame.
    pub fn clamp(&mut self) {
        self.services.truncate(MAX_SERVICES);
        for s in &mut self.services {
            s.failures.truncate(MAX_FAILURES);
            clamp_text(&mut s.name);
            clamp_text(&mut s.kind);
            clamp_text(&mut s.reference);
            if let Some(r) = s.skipped.as_mut() {
                clamp_text(r);
            }
            for f in &mut s.failures {
                clamp_text(&mut f.check);
                clamp_text(&mut f.expected);
                clamp_text(&mut f.got);
            }
        }
    }
}

fn clamp_text(s: &mut String) {
    if s.len() > MAX_VALUE_LEN {
        let mut end = MAX_VALUE_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
}

/// The latest report of a node as the core keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RealismRecord {
    /// When the core received it (ms since the epoch).
    pub received_ms: i64,
    pub report: RealismReport,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamp_bounds_text_and_lists() {
        let mut r = RealismReport {
            services: vec![
                ServiceRealism {
                    name: "é".repeat(600),
                    failures: vec![CheckFailure::default(); 100],
                    ..Default::default()
                };
                70
            ],
            ..Default::default()
        };
        r.clamp();
        assert_eq!(r.services.len(), MAX_SERVICES);
        assert_eq!(r.services[0].failures.len(), MAX_FAILURES);
        assert!(r.services[0].name.len() <= MAX_VALUE_LEN + '…'.len_utf8());
    }

    #[test]
    fn totals_add_up() {
        let r = RealismReport {
            services: vec![
                ServiceRealism {
                    passed: 3,
                    total: 4,
                    ..Default::default()
                },
                ServiceRealism {
                    passed: 2,
                    total: 2,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        assert_eq!(r.totals(), (5, 6));
    }
}
