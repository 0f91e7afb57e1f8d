//! `netsim-bench`: runs every netsim scenario at the sizes, each beside its twin
//! on a clean link, and the reconnect storm beside a bare quinn endpoint; prints the
//! Markdown table recorded in BENCHMARKS.md. Run it in release:
//! `cargo run --release -p honeybee-netsim --bin netsim-bench`.
//!
//! The cluster scenarios (two cores on one PostgreSQL: `cluster-kill`,
//! `cluster-partition`, `cluster-ingest`, `cluster-control`) are not in `all`: they need
//! PostgreSQL's server binaries (Debian's `postgresql`, or `HONEYBEE_PG_BIN`).
//! `cluster-ingest` runs one core and then two on the same agents and prints their ratio.
//! `origin-cost` times a `PgStore` alone, plain and joined to a cluster (the rows' origin
//! and the per-commit NOTIFY), in alternating rounds.

use anyhow::Result;
use clap::{Parser, ValueEnum};
use honeybee_netsim::cluster::{ClusterControl, ClusterCoreKill, ClusterIngest, ClusterPartition};
use honeybee_netsim::origin_cost::OriginCost;
use honeybee_netsim::report::Report;
use honeybee_netsim::scenario::{CaptureCut, CoreKill, Lossy, PartitionSpec, Rebinding, Storm};
use honeybee_proto::timing::Timing;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    All,
    Lossy,
    Partition,
    Kill,
    Rebind,
    Capture,
    Storm,
    ClusterKill,
    ClusterPartition,
    ClusterIngest,
    ClusterControl,
    OriginCost,
}

#[derive(Parser)]
#[command(about = "Runs the netsim scenarios and prints their figures")]
struct Args {
    /// Which scenarios to run (repeatable).
    #[arg(long, value_enum, default_values_t = [Which::All])]
    scenario: Vec<Which>,
    /// Skip the clean-link twins.
    #[arg(long)]
    no_clean: bool,
    /// Agents in the reconnect storm.
    #[arg(long, default_value_t = 2000)]
    storm_agents: usize,
    /// Agents in the cluster scenarios (split across the two cores).
    #[arg(long, default_value_t = 100)]
    cluster_agents: usize,
    /// Events per agent in `cluster-ingest`.
    #[arg(long, default_value_t = 1000)]
    ingest_events: u64,
    /// Divide the session timers (idle timeout, handshake deadline, …) by this in the
    /// cluster scenarios; 1 is production's 30 s idle timeout.
    #[arg(long, default_value_t = 1)]
    cluster_timing_divisor: u32,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let on = |w: Which| args.scenario.contains(&Which::All) || args.scenario.contains(&w);
    let clean = !args.no_clean;
    let mut reports: Vec<Report> = Vec::new();
    let mut show = |r: Report| {
        eprintln!("{r}");
        reports.push(r);
    };
    if on(Which::Lossy) {
        show(Lossy::default().run().await?);
        if clean {
            show(Lossy::default().clean().run().await?);
        }
    }
    if on(Which::Partition) {
        show(PartitionSpec::default().run().await?);
        if clean {
            show(PartitionSpec::default().clean().run().await?);
        }
    }
    if on(Which::Kill) {
        show(CoreKill::default().run().await?);
        if clean {
            show(CoreKill::default().clean().run().await?);
        }
    }
    if on(Which::Rebind) {
        show(Rebinding::default().run().await?);
        if clean {
            show(Rebinding::default().clean().run().await?);
        }
    }
    if on(Which::Capture) {
        show(CaptureCut::default().run().await?);
        if clean {
            show(CaptureCut::default().clean().run().await?);
        }
    }
    if on(Which::Storm) {
        show(
            Storm {
                agents: args.storm_agents,
                bare_quinn_baseline: true,
                ..Storm::default()
            }
            .run()
            .await?,
        );
    }
    let timing = Timing::compressed(args.cluster_timing_divisor);
    let only = |w: Which| args.scenario.contains(&w);
    if only(Which::ClusterKill) {
        let spec = ClusterCoreKill {
            agents: args.cluster_agents,
            timing,
            ..ClusterCoreKill::default()
        };
        show(spec.clone().run().await?);
        if clean {
            show(spec.clean().run().await?);
        }
    }
    if only(Which::ClusterPartition) {
        let spec = ClusterPartition {
            agents: args.cluster_agents,
            duration: (timing.idle_timeout * 3 / 2).max(std::time::Duration::from_secs(5)),
            timing,
            ..ClusterPartition::default()
        };
        show(spec.clone().run().await?);
        if clean {
            show(spec.clean().run().await?);
        }
    }
    if only(Which::ClusterIngest) {
        let mut rates = Vec::new();
        for cores in [1, 2] {
            let r = ClusterIngest {
                agents: args.cluster_agents,
                events_per_agent: args.ingest_events,
                cores,
                ..ClusterIngest::default()
            }
            .run()
            .await?;
            rates.push(
                r.note_value("events/s")
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0),
            );
            show(r);
        }
        eprintln!(
            "ingest, two cores over one: {:.2}x ({:.0} / {:.0} events/s)",
            rates[1] / rates[0].max(1e-9),
            rates[1],
            rates[0]
        );
    }
    if only(Which::ClusterControl) {
        show(ClusterControl::default().run().await?);
    }
    if only(Which::OriginCost) {
        show(OriginCost::default().run().await?);
    }
    println!("{}", Report::markdown_header());
    for r in &reports {
        println!("{}", r.markdown_row());
    }
    Ok(())
}
