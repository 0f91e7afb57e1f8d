//! The small `honeybee-agent` binary for sensors that should not carry the core, the store
//! or the dashboard: `enroll` and `run` (full, extension or relay), nothing else.

use clap::{Parser, Subcommand};
use honeybee_agent::runtime::AgentOptions;
use honeybee_proto::control::NodeMode;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "honeybee-agent", version = honeybee_agent::upgrade::VERSION, about = "HoneyBee agent (sensor)")]
struct Cli {
    /// Log records as `human` lines (colour only on a terminal) or `json`, one object a
    /// line, for log shippers.
    #[arg(long, global = true, env = honeybee_agent::logging::LOG_FORMAT_ENV, default_value = "human")]
    log_format: honeybee_agent::logging::LogFormat,
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
        /// Reach the core at this HOST:PORT instead of the token's address: a relay on
        /// this network. The node keeps using it.
        #[arg(long)]
        core: Option<String>,
    },
    /// Run the agent.
    Run {
        #[arg(long, default_value = "./honeybee-agent-data")]
        data_dir: PathBuf,
        /// `full`, `extension` for a node beside real services (its configuration
        /// holds extension services), or `relay` to also carry nodes of this network to
        /// the core (needs a relay certificate).
        #[arg(long, default_value = "full")]
        mode: String,
        /// Relay mode: the UDP address downstream nodes send to.
        #[arg(long, default_value = "0.0.0.0:7443")]
        relay_listen: std::net::SocketAddr,
    },
}

pub fn main() -> std::process::ExitCode {
    // `honeybee-agent agent run …` is `honeybee-agent run …`: an agent started as
    // `honeybee agent run` and upgraded to this executable is restarted with its own
    // arguments (see `upgrade::slots::exec`).
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "agent") {
        args.remove(1);
    }
    let cli = Cli::parse_from(args);
    let format = cli.log_format;
    honeybee_agent::logging::init(format, "info");
    let outcome = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(dispatch(cli.cmd)));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            honeybee_agent::logging::fatal(format, &format!("{e:#}"));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn dispatch(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Enroll {
            token,
            data_dir,
            core,
        } => {
            let r = honeybee_agent::enroll::enroll_via(&token, &data_dir, core.as_deref()).await?;
            println!(
                "enrolled as {} ({}) with core {}",
                r.node_id, r.role, r.core
            );
        }
        Cmd::Run {
            data_dir,
            mode,
            relay_listen,
        } => {
            let mut opts = AgentOptions::full(data_dir);
            opts.mode = match mode.as_str() {
                "full" => NodeMode::Full,
                "extension" => NodeMode::Extension,
                "relay" => NodeMode::Relay,
                other => anyhow::bail!("unknown mode {other:?}; known: full, extension, relay"),
            };
            // systemd stops a unit with SIGTERM: it must shut the services down and flush
            // open transcripts exactly as Ctrl-C does, or they are lost with the process.
            let shutdown = honeybee_agent::runtime::shutdown_signal();
            if opts.mode == NodeMode::Relay {
                let limits = honeybee_agent::relay::flows::FlowLimits::default();
                honeybee_agent::relay::run(opts, relay_listen, limits, shutdown).await?;
            } else {
                // Remote upgrade: this process may hand over to an upgraded executable.
                honeybee_agent::upgrade::slots::run_in_place(opts, shutdown).await?;
            }
        }
    }
    Ok(())
}
