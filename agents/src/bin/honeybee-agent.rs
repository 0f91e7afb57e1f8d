//! The small `honeybee-agent` binary for sensors that should not carry the core, the store
//! or the dashboard: `enroll` and `run`, nothing else.

use clap::{Parser, Subcommand};
use honeybee_agent::runtime::{AgentOptions, run};
use honeybee_proto::control::NodeMode;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "honeybee-agent", version, about = "HoneyBee agent (sensor)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Enrol this machine with a one-time token from `honeybee token create`.
    Enroll {
        #[arg(long)]
        token: String,
        #[arg(long, default_value = "./honeybee-agent-data")]
        data_dir: PathBuf,
    },
    /// Run the agent.
    Run {
        #[arg(long, default_value = "./honeybee-agent-data")]
        data_dir: PathBuf,
        /// `full`, or `extension` for a node beside real services (its configuration
        /// holds extension services).
        #[arg(long, default_value = "full")]
        mode: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().cmd {
        Cmd::Enroll { token, data_dir } => {
            let r = honeybee_agent::enroll::enroll(&token, &data_dir).await?;
            println!(
                "enrolled as {} ({}) with core {}",
                r.node_id, r.role, r.core
            );
        }
        Cmd::Run { data_dir, mode } => {
            let mut opts = AgentOptions::full(data_dir);
            opts.mode = match mode.as_str() {
                "full" => NodeMode::Full,
                "extension" => NodeMode::Extension,
                other => anyhow::bail!("unknown mode {other:?}; known: full, extension"),
            };
            run(opts, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        }
    }
    Ok(())
}
