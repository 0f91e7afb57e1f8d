//! What a scenario reports: events sent, stored, lost and duplicated, latency percentiles
//! and recovery time, as one line for logs and as a Markdown table row for BENCHMARKS.md.

use std::fmt;
use std::time::Duration;

/// The outcome of one scenario run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub scenario: String,
    /// The link every agent sat behind, e.g. `delay 50±20ms, loss 5%, reorder 1%`.
    pub link: String,
    pub agents: usize,
    /// Events the agents were asked to report.
    pub sent: u64,
    /// Rows the core stored for them (a duplicate counts twice).
    pub stored: u64,
    /// Sent and never stored.
    pub lost: u64,
    /// Stored more than once.
    pub duplicated: u64,
    /// Emit-to-commit latency of every stored event, sorted (ms).
    pub latencies_ms: Vec<i64>,
    /// From the end of the disruption (heal, core back) until everything was stored.
    pub recovery: Option<Duration>,
    /// Welcomed connections beyond each agent's first (handshakes forced by the scenario).
    pub reconnections: u64,
    pub elapsed: Duration,
    /// Scenario-specific facts (handshakes/s, capture hash, rebinds …).
    pub notes: Vec<(String, String)>,
}

impl Report {
    /// Stored distinct events over sent.
    pub fn delivery_ratio(&self) -> f64 {
        if self.sent == 0 {
            return 1.0;
        }
        (self.sent - self.lost) as f64 / self.sent as f64
    }

    /// Every event stored, none twice.
    pub fn exactly_once(&self) -> bool {
        self.lost == 0 && self.duplicated == 0
    }

    /// The `q`-quantile (0..=1) of latency, nearest rank.
    pub fn latency_ms(&self, q: f64) -> Option<i64> {
        percentile(&self.latencies_ms, q)
    }

    pub fn note(&mut self, k: &str, v: impl fmt::Display) {
        self.notes.push((k.to_owned(), v.to_string()));
    }

    pub fn note_value(&self, k: &str) -> Option<&str> {
        self.notes
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    /// The header of [`Report::markdown_row`].
    pub fn markdown_header() -> &'static str {
        "| scenario | link | agents | sent | stored | delivery | duplicates | p50 latency | p99 latency | recovery | reconnections | notes |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    }

    pub fn markdown_row(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {} | {:.4} | {} | {} | {} | {} | {} | {} |",
            self.scenario,
            self.link,
            self.agents,
            self.sent,
            self.stored,
            self.delivery_ratio(),
            self.duplicated,
            fmt_ms(self.latency_ms(0.5)),
            fmt_ms(self.latency_ms(0.99)),
            self.recovery
                .map(|d| format!("{:.1} s", d.as_secs_f64()))
                .unwrap_or_else(|| "—".into()),
            self.reconnections,
            self.notes
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join("; ")
        )
    }
}

fn fmt_ms(v: Option<i64>) -> String {
    match v {
        Some(ms) if ms >= 10_000 => format!("{:.1} s", ms as f64 / 1000.0),
        Some(ms) => format!("{ms} ms"),
        None => "—".into(),
    }
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[i64], q: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}] agents={} sent={} stored={} lost={} duplicated={} delivery={:.4} p50={} p99={} recovery={} reconnections={} elapsed={:.1}s",
            self.scenario,
            self.link,
            self.agents,
            self.sent,
            self.stored,
            self.lost,
            self.duplicated,
            self.delivery_ratio(),
            fmt_ms(self.latency_ms(0.5)),
            fmt_ms(self.latency_ms(0.99)),
            self.recovery
                .map(|d| format!("{:.1}s", d.as_secs_f64()))
                .unwrap_or_else(|| "-".into()),
            self.reconnections,
            self.elapsed.as_secs_f64(),
        )?;
        for (k, v) in &self.notes {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), Some(50));
        assert_eq!(percentile(&v, 0.99), Some(99));
        assert_eq!(percentile(&v, 1.0), Some(100));
        assert_eq!(percentile(&[7], 0.01), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
        let r = Report {
            sent: 10,
            lost: 1,
            ..Default::default()
        };
        assert!((r.delivery_ratio() - 0.9).abs() < 1e-12);
        assert!(!r.exactly_once());
    }
}
