//! `netsim-bench`: runs every netsim scenario at the sizes, each beside its twin
//! on a clean link, and the reconnect storm beside a bare quinn endpoint; prints the
//! Markdown table recorded in BENCHMARKS.md. Run it in release:
//! `cargo run --release -p honeybee-netsim --bin netsim-bench`.

use anyhow::Result;
use clap::{Parser, ValueEnum};
use honeybee_netsim::report::Report;
use honeybee_netsim::scenario::{CaptureCut, CoreKill, Lossy, PartitionSpec, Rebinding, Storm};

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    All,
    Lossy,
    Partition,
    Kill,
    Rebind,
    Capture,
    Storm,
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
    println!("{}", Report::markdown_header());
    for r in &reports {
        println!("{}", r.markdown_row());
    }
    Ok(())
}
