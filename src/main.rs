//! The `honeybee` command: argument parsing and dispatch only. The work happens in the
//! library crates; `commands` and `up` hold the glue and the output formatting.

mod check;
mod commands;
mod dashboard;
mod install_cmd;
mod term;
mod up;
mod upgrade_cmd;

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "honeybee",
    version,
    about = "HoneyBee: modular honeypot orchestration"
)]
struct Cli {
    /// Log records as `human` lines (colour only on a terminal) or `json`, one object a
    /// line, for log shippers.
    #[arg(long, global = true, env = honeybee_agent::logging::LOG_FORMAT_ENV, default_value = "human")]
    log_format: honeybee_agent::logging::LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Where the core's data lives; every command takes it.
#[derive(Args, Clone)]
pub struct DataDir {
    /// The core's data directory.
    #[arg(long, env = "HONEYBEE_DATA_DIR", default_value = "./honeybee-data")]
    pub data_dir: PathBuf,
}

#[derive(Subcommand)]
enum Cmd {
    /// First look: initialise if needed, then run the core and a local honeypot node.
    Up {
        #[command(flatten)]
        dir: DataDir,
        /// The local node's services: linux-server (the default for a new data
        /// directory), router, ics, or all (every service at once: a demo, not a
        /// believable machine). Without it an existing node keeps its services.
        #[arg(long, value_parser = |s: &str| honeybee_proto::profile::Profile::parse(s).map_err(|e| e.to_string()))]
        profile: Option<honeybee_proto::profile::Profile>,
        /// Serve Prometheus metrics of the core (127.0.0.1:9464) and the local node
        /// (127.0.0.1:9465) at /metrics, unless core.toml or agent.toml name their own.
        #[arg(long)]
        metrics: bool,
    },
    /// Set up or run the core.
    #[command(subcommand)]
    Core(CoreCmd),
    /// Move the core's data between stores.
    #[command(subcommand)]
    Store(StoreCmd),
    /// One-time enrolment tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Run a node (agent) on this machine.
    #[command(subcommand)]
    Agent(AgentCmd),
    /// List nodes.
    Nodes {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// Act on one node.
    #[command(subcommand)]
    Node(NodeCmd),
    /// List events, newest first.
    Events {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        node: Option<String>,
        #[arg(long)]
        service: Option<String>,
        /// Event kind: connect, disconnect, auth_attempt, command, data, limit_reached,
        /// service_error, scan_detected.
        #[arg(long)]
        kind: Option<String>,
        /// Only events newer than this (e.g. 10m, 2h, 7days).
        #[arg(long)]
        since: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// The audit log, newest first.
    Audit {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Alerts published by modules, newest first.
    Alerts {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Acknowledge the alert with this id.
        #[arg(long)]
        ack: Option<i64>,
    },
    /// Captures (session transcripts, uploaded files, large request bodies), newest first.
    Captures {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// One capture's content.
    #[command(subcommand)]
    Capture(CaptureCmd),
    /// Modules: credentials, load, unload, list.
    #[command(subcommand)]
    Module(ModuleCmd),
    /// The running core's status.
    Status {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// The cores serving the fleet (several on one PostgreSQL), with the nodes each holds.
    Cores {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// The web dashboard: its certificate and first admin (init), and the server (run).
    #[command(subcommand)]
    Dashboard(DashboardCmd),
    /// Impaired networks for testing: a UDP proxy that delays, loses, reorders,
    /// partitions and NAT-rebinds what passes (see README, "netsim").
    #[command(subcommand)]
    Netsim(NetsimCmd),
}

#[derive(Subcommand)]
enum DashboardCmd {
    /// Get the dashboard's certificate from the running core and create the first admin
    /// (password printed once, or taken from HONEYBEE_DASHBOARD_ADMIN_PASSWORD).
    Init {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Serve the dashboard (initialising it first if needed).
    Run {
        #[command(flatten)]
        dir: DataDir,
        /// TCP address; anything but loopback is served over HTTPS.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// HTTPS certificate chain (PEM); without it a self-signed one is made when
        /// listening beyond loopback.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// HTTPS private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// The directory holding honeybee-agent.deb for the sensor installer (default:
        /// $HONEYBEE_PACKAGES_DIR, DATA_DIR/packages, /usr/share/honeybee/packages).
        #[arg(long)]
        packages: Option<PathBuf>,
        /// https://HOST:PORT new sensors reach this dashboard at, for the install line
        /// (default: the listen address, or core.toml's advertise host on 0.0.0.0).
        #[arg(long)]
        public_url: Option<String>,
    },
}

#[derive(Subcommand)]
enum NetsimCmd {
    /// Forward UDP from --listen to --upstream through an impaired link; reads control
    /// commands on stdin (partition, heal, rebind, set …).
    Proxy(honeybee_netsim::cli::ProxyArgs),
}

#[derive(Subcommand)]
enum CaptureCmd {
    /// Fetch a capture by its SHA-256 (as `honeybee captures` lists it) into a file; the
    /// content is verified against the hash before the file appears.
    Get {
        #[command(flatten)]
        dir: DataDir,
        /// Hex SHA-256 of the capture.
        hash: String,
        /// Where to write it (`-` for standard output).
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Subcommand)]
enum ModuleCmd {
    /// Create a credential for a module you run yourself (TCP shim); prints one line.
    Token {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        name: String,
        /// Comma-separated: events:read, nodes:read, nodes:command, alerts:write, enrich:write, captures:read
        #[arg(long, value_delimiter = ',')]
        permissions: Vec<String>,
    },
    /// Issue a certificate for a module that connects over QUIC (the Rust SDK): makes the
    /// key here and writes module.toml, module.pem (0600) and ca.crt into --out.
    Cert {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        name: String,
        #[arg(long, value_delimiter = ',')]
        permissions: Vec<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Start a managed module now: `honeybee module load NAME --permissions … -- COMMAND [ARGS]`.
    Load {
        #[command(flatten)]
        dir: DataDir,
        name: String,
        #[arg(long, value_delimiter = ',')]
        permissions: Vec<String>,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Stop a managed module (SIGTERM, then SIGKILL after a grace period).
    Unload {
        #[command(flatten)]
        dir: DataDir,
        name: String,
    },
    /// Revoke every credential and certificate grant of a module and close its
    /// connection, on whichever core of the deployment it is connected to.
    Revoke {
        #[command(flatten)]
        dir: DataDir,
        name: String,
    },
    /// Every module: state, permissions, subscriptions, queue depth, dropped events, how
    /// its last process ended.
    List {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        json: bool,
        /// Also print each managed module's last output lines (why it keeps dying).
        #[arg(long, short)]
        verbose: bool,
    },
}

#[derive(Subcommand)]
enum StoreCmd {
    /// Copy a stopped core's SQLite store into an empty PostgreSQL database (password from
    /// HONEYBEE_STORE_PASSWORD); then set [store] url in core.toml.
    Migrate {
        /// sqlite:PATH of honeybee.db (in the core's data directory).
        #[arg(long)]
        from: String,
        /// postgres://USER@HOST:PORT/DATABASE
        #[arg(long)]
        to: String,
    },
}

#[derive(Subcommand)]
enum CoreCmd {
    /// Create the CA, the core's and the admin CLI's certificates, and core.toml.
    Init {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long, default_value = "honeybee.local")]
        trust_domain: String,
        /// UDP address for QUIC.
        #[arg(long, default_value = "0.0.0.0:7443")]
        listen: SocketAddr,
        /// HOST:PORT agents use to reach the core (IP or DNS name); goes into tokens.
        #[arg(long)]
        advertise: Option<String>,
        /// Keep the core's data in PostgreSQL: postgres://USER@HOST:PORT/DATABASE (no
        /// password: the core reads HONEYBEE_STORE_PASSWORD or [store] password_file).
        /// Default: SQLite in the data directory.
        #[arg(long)]
        store: Option<String>,
    },
    /// Run the core in the foreground.
    Run {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Seal the CA key with the passphrase in HONEYBEE_CA_PASSPHRASE (or the file named by
    /// HONEYBEE_CA_PASSPHRASE_FILE); the core then needs it to start.
    SealCaKey {
        #[command(flatten)]
        dir: DataDir,
    },
    /// Print a one-time join token for a new core (asked of the core holding the root CA;
    /// single use, 15 minutes at most). Prints exactly one line, the token.
    JoinToken {
        #[command(flatten)]
        dir: DataDir,
        /// The new core's name (its intermediate CA is named after it).
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "15m")]
        ttl: String,
    },
    /// Join the deployment named in a join token: makes this core's intermediate CA key
    /// here, checks the root core against the token's pin, sends only a CSR, and writes a
    /// data directory that runs a core without the root key.
    Join {
        /// The join token from `honeybee core join-token`.
        token: String,
        #[command(flatten)]
        dir: DataDir,
        /// UDP address for QUIC.
        #[arg(long, default_value = "0.0.0.0:7443")]
        listen: SocketAddr,
        /// HOST:PORT agents use to reach this core; default: the listen address.
        #[arg(long)]
        advertise: Option<String>,
        /// The deployment's PostgreSQL: postgres://USER@HOST:PORT/DATABASE (no password:
        /// the core reads HONEYBEE_STORE_PASSWORD or [store] password_file).
        #[arg(long)]
        store: String,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Create a token; prints exactly one line, the token.
    Create {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long, default_value = "agent")]
        role: String,
        /// Name of the node (its id, if free).
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "15m")]
        ttl: String,
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Labels for the node: k=v,k2=v2
        #[arg(long)]
        labels: Option<String>,
        /// Print instead the one line that installs, enrols and starts a sensor on a new
        /// machine (run as root there), from the dashboard's HTTPS installer.
        #[arg(long)]
        install_command: bool,
    },
    /// List tokens (secrets are never shown again).
    List {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token so it can no longer enrol anything.
    Revoke {
        #[command(flatten)]
        dir: DataDir,
        id: String,
    },
}

#[derive(Subcommand)]
enum AgentCmd {
    /// Enrol this machine with a token; writes the agent's data directory.
    Enroll {
        #[arg(long)]
        token: String,
        #[arg(long, default_value = "./honeybee-agent-data")]
        data_dir: PathBuf,
        /// Reach the core at this HOST:PORT instead of the token's address: a relay on
        /// this network (the token must name it: --labels relay=RELAY). The node keeps
        /// using it.
        #[arg(long)]
        core: Option<String>,
    },
    /// Run the agent in the foreground.
    Run {
        #[arg(long, default_value = "./honeybee-agent-data")]
        data_dir: PathBuf,
        /// `full`, `extension` for a node beside real services (its config holds
        /// extension services), or `relay` to also carry nodes of this network to the
        /// core (needs a relay certificate: `token create --role relay`).
        #[arg(long, default_value = "full")]
        mode: String,
        /// Relay mode: the UDP address downstream nodes send to.
        #[arg(long, default_value = "0.0.0.0:7443")]
        relay_listen: SocketAddr,
    },
}

#[derive(Subcommand)]
enum NodeCmd {
    /// Send the agent package from the core's packages/ folder to a live node (or all)
    /// over its connection, signed by the CA; the node checks it before keeping it.
    Upgrade {
        #[command(flatten)]
        dir: DataDir,
        #[arg(required_unless_present = "all")]
        node: Option<String>,
        #[arg(long, conflicts_with = "node")]
        all: bool,
        /// The version to send (packages/honeybee-agent-VERSION); default: the core's.
        #[arg(long)]
        to: Option<String>,
        /// Refuse unless the package has this SHA-256 (as scripts/package.sh printed it).
        #[arg(long)]
        sha256: Option<String>,
    },
    /// Revoke a node: its connection closes at once and its certificates stop working.
    Revoke {
        #[command(flatten)]
        dir: DataDir,
        node: String,
    },
    /// Show or change a node's services; a running agent applies changes without restart.
    Config {
        #[command(flatten)]
        dir: DataDir,
        node: String,
        /// Replace the whole service list with this TOML file (see configs/services.toml).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Enable a service by name.
        #[arg(long)]
        enable: Vec<String>,
        /// Disable a service by name.
        #[arg(long)]
        disable: Vec<String>,
        /// Move a service: NAME=IP:PORT.
        #[arg(long)]
        listen: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Allow a node to reach the core through a relay (and through no other relay);
    /// `--none` removes the assignment. A live connection through another relay closes.
    AssignRelay {
        #[command(flatten)]
        dir: DataDir,
        node: String,
        /// The relay's node id.
        #[arg(required_unless_present = "none")]
        relay: Option<String>,
        #[arg(long, conflicts_with = "relay")]
        none: bool,
    },
    /// Run the realism check on a live node: it probes its own services on loopback as
    /// scanners do and compares them with references recorded from the real programs.
    Check {
        #[command(flatten)]
        dir: DataDir,
        node: String,
        #[arg(long)]
        json: bool,
    },
    /// Send a command to a live node (ping, status, release-port SERVICE PORT) and print
    /// its answer.
    Command {
        #[command(flatten)]
        dir: DataDir,
        node: String,
        command: String,
        /// The command's arguments.
        args: Vec<String>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    honeybee_agent::logging::init(cli.log_format, "info,quinn=warn,russh=warn");
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.cmd)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Errors can quote a node's or the core's words (a command's error answer).
            honeybee_agent::logging::fatal(cli.log_format, &term::term_safe(&format!("{e:#}")));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn dispatch(cmd: Cmd) -> anyhow::Result<()> {
    use commands as c;
    match cmd {
        Cmd::Up {
            dir,
            profile,
            metrics,
        } => up::up(&dir.data_dir, profile, metrics).await,
        Cmd::Core(CoreCmd::Init {
            dir,
            trust_domain,
            listen,
            advertise,
            store,
        }) => c::core_init(&dir.data_dir, trust_domain, listen, advertise, store),
        Cmd::Core(CoreCmd::Run { dir }) => c::core_run(&dir.data_dir).await,
        Cmd::Store(StoreCmd::Migrate { from, to }) => c::store_migrate(&from, &to).await,
        Cmd::Core(CoreCmd::SealCaKey { dir }) => c::seal_ca_key(&dir.data_dir),
        Cmd::Core(CoreCmd::JoinToken { dir, name, ttl }) => {
            let spec = c::token_spec("core", name, &ttl, 1, None)?;
            c::token_create(&dir.data_dir, spec).await
        }
        Cmd::Core(CoreCmd::Join {
            token,
            dir,
            listen,
            advertise,
            store,
        }) => c::core_join(&token, &dir.data_dir, listen, advertise, store).await,
        Cmd::Token(TokenCmd::Create {
            dir,
            role,
            name,
            ttl,
            uses,
            labels,
            install_command,
        }) => {
            let spec = c::token_spec(&role, name, &ttl, uses, labels.as_deref())?;
            if install_command {
                install_cmd::token_install_command(&dir.data_dir, spec).await
            } else {
                c::token_create(&dir.data_dir, spec).await
            }
        }
        Cmd::Token(TokenCmd::List { dir, json }) => c::token_list(&dir.data_dir, json).await,
        Cmd::Token(TokenCmd::Revoke { dir, id }) => c::token_revoke(&dir.data_dir, &id).await,
        Cmd::Agent(AgentCmd::Enroll {
            token,
            data_dir,
            core,
        }) => c::agent_enroll(&token, &data_dir, core.as_deref()).await,
        Cmd::Agent(AgentCmd::Run {
            data_dir,
            mode,
            relay_listen,
        }) => c::agent_run(&data_dir, &mode, relay_listen).await,
        Cmd::Nodes { dir, json } => c::nodes(&dir.data_dir, json).await,
        Cmd::Node(NodeCmd::Upgrade {
            dir,
            node,
            all: _,
            to,
            sha256,
        }) => upgrade_cmd::node_upgrade(&dir.data_dir, node, to, sha256).await,
        Cmd::Node(NodeCmd::Revoke { dir, node }) => c::node_revoke(&dir.data_dir, &node).await,
        Cmd::Node(NodeCmd::AssignRelay {
            dir,
            node,
            relay,
            none: _,
        }) => c::node_assign_relay(&dir.data_dir, &node, relay.as_deref()).await,
        Cmd::Node(NodeCmd::Config {
            dir,
            node,
            file,
            enable,
            disable,
            listen,
            json,
        }) => {
            let change = c::ConfigChange {
                file,
                enable,
                disable,
                listen,
            };
            c::node_config(&dir.data_dir, &node, change, json).await
        }
        Cmd::Node(NodeCmd::Check { dir, node, json }) => {
            check::node_check(&dir.data_dir, &node, json).await
        }
        Cmd::Node(NodeCmd::Command {
            dir,
            node,
            command,
            args,
        }) => c::node_command(&dir.data_dir, &node, &command, &args).await,
        Cmd::Events {
            dir,
            json,
            node,
            service,
            kind,
            since,
            limit,
        } => {
            let filter = c::EventFilter {
                node,
                service,
                kind,
                since,
                limit,
            };
            c::events(&dir.data_dir, filter, json).await
        }
        Cmd::Audit { dir, json, limit } => c::audit(&dir.data_dir, json, limit).await,
        Cmd::Status { dir, json } => c::status(&dir.data_dir, json).await,
        Cmd::Cores { dir, json } => c::cores(&dir.data_dir, json).await,
        Cmd::Alerts {
            dir,
            json,
            limit,
            ack,
        } => c::alerts(&dir.data_dir, json, limit, ack).await,
        Cmd::Captures { dir, json, limit } => c::captures(&dir.data_dir, json, limit).await,
        Cmd::Capture(CaptureCmd::Get { dir, hash, output }) => {
            c::capture_get(&dir.data_dir, &hash, &output).await
        }
        Cmd::Module(ModuleCmd::Token {
            dir,
            name,
            permissions,
        }) => c::module_token(&dir.data_dir, name, permissions).await,
        Cmd::Module(ModuleCmd::Load {
            dir,
            name,
            permissions,
            command,
        }) => c::module_load(&dir.data_dir, name, permissions, command).await,
        Cmd::Module(ModuleCmd::Cert {
            dir,
            name,
            permissions,
            out,
        }) => c::module_cert(&dir.data_dir, name, permissions, &out).await,
        Cmd::Module(ModuleCmd::Unload { dir, name }) => c::module_unload(&dir.data_dir, name).await,
        Cmd::Module(ModuleCmd::Revoke { dir, name }) => c::module_revoke(&dir.data_dir, name).await,
        Cmd::Module(ModuleCmd::List { dir, json, verbose }) => {
            c::module_list(&dir.data_dir, json, verbose).await
        }
        Cmd::Dashboard(DashboardCmd::Init { dir }) => dashboard::init(&dir.data_dir).await,
        Cmd::Dashboard(DashboardCmd::Run {
            dir,
            listen,
            tls_cert,
            tls_key,
            packages,
            public_url,
        }) => {
            let install = dashboard::Install {
                packages,
                public_url,
            };
            dashboard::run(&dir.data_dir, listen, tls_cert, tls_key, install).await
        }
        Cmd::Netsim(NetsimCmd::Proxy(args)) => {
            let shutdown = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            honeybee_netsim::cli::run_proxy(args, shutdown).await?;
            Ok(())
        }
    }
}
