//! Samples, medians and the Markdown/stdout rendering of a figure: every measured value
//! is printed beside its baseline from the same run.

use std::fmt::Write as _;
use std::time::Duration;

/// One timed run: how many units (events, bytes, enrolments) in how long.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub count: u64,
    pub elapsed: Duration,
}

impl Sample {
    pub fn per_s(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// One row of a figure: HoneyBee's rate beside a baseline's, per run.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub what: String,
    pub ours: Vec<f64>,
    pub baseline_name: String,
    pub baseline: Vec<f64>,
    /// Ratio at or above which the goal is met, if there is one.
    pub goal: Option<f64>,
}

impl Comparison {
    pub fn ratio(&self) -> f64 {
        median(&self.ours) / median(&self.baseline)
    }
}

/// A figure: a title, the unit of its rates, its comparisons and free-form notes
/// (parameters, diagnostics).
#[derive(Debug, Clone, Default)]
pub struct Figure {
    pub title: String,
    pub unit: String,
    pub rows: Vec<Comparison>,
    pub notes: Vec<String>,
}

pub fn fmt_rate(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn fmt_ratio(r: f64) -> String {
    if r < 0.1 {
        format!("{r:.3}")
    } else {
        format!("{r:.2}")
    }
}

fn runs(v: &[f64]) -> String {
    v.iter()
        .map(|x| fmt_rate(*x))
        .collect::<Vec<_>>()
        .join(" / ")
}

impl Figure {
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "### {}\n", self.title);
        let _ = writeln!(
            s,
            "| measurement | HoneyBee median ({u}) | baseline | baseline median ({u}) | ratio | goal | runs: HoneyBee | runs: baseline |",
            u = self.unit
        );
        let _ = writeln!(s, "|---|---:|---|---:|---:|---|---|---|");
        for r in &self.rows {
            let goal = match r.goal {
                Some(g) if r.ratio() >= g => format!("≥{g}× met"),
                Some(g) => format!("≥{g}× **missed**"),
                None => "—".into(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {}× | {} | {} | {} |",
                r.what,
                fmt_rate(median(&r.ours)),
                r.baseline_name,
                fmt_rate(median(&r.baseline)),
                fmt_ratio(r.ratio()),
                goal,
                runs(&r.ours),
                runs(&r.baseline)
            );
        }
        if !self.notes.is_empty() {
            s.push('\n');
            for n in &self.notes {
                let _ = writeln!(s, "- {n}");
            }
        }
        s
    }
}
