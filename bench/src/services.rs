//! The honeypot service figures (`--only services`): server CPU per SSH login attempt,
//! login and scripted session, RSS idle and with 1,000 held attacker connections, and
//! connections per second with CPU per connection for banner, FTP and HTTP — HoneyBee's
//! agent beside Cowrie and OpenCanary, each a separate process measured from its own
//! `/proc` entries — plus a 2,000-connection flood of the agent.
//!
//! The HoneyBee side is a real agent process: this binary re-executed with `--agent-run`,
//! which calls `honeybee_agent::runtime::run` exactly as `honeybee-agent run` does,
//! enrolled with and connected to a real core that runs in the bench process. Its CPU thus
//! includes spooling every event to SQLite and sending it to the core, as in production.

use crate::attack::{self, Probe};
use crate::fixture::Deployment;
use crate::peers::{self, BANNER, CanaryPorts, CowriePorts, GOOD_PASSWORD, PeersDir};
use crate::procstat::{self, Meter};
use crate::stats::median;
use anyhow::{Context, Result, anyhow, bail};
use honeybee_proto::NodeId;
use honeybee_proto::admin::{EventQuery, StoredEvent};
use honeybee_proto::event::{AuthMethod, EventKind};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Sizes of the service figures.
#[derive(Debug, Clone)]
pub struct ServiceSizes {
    pub runs: usize,
    /// hydra's user and password list lengths and its parallel tasks.
    pub hydra_users: usize,
    pub hydra_passwords: usize,
    pub hydra_tasks: usize,
    /// Sequential OpenSSH logins and scripted sessions.
    pub ssh_logins: usize,
    pub ssh_sessions: usize,
    /// Connections held open for the memory figure, and for the flood.
    pub held: usize,
    pub flood: usize,
    /// Connections per rate measurement, and how many at once.
    pub rate_count: u64,
    pub rate_workers: usize,
    /// Cap on every single load loop.
    pub limit: Duration,
}

impl ServiceSizes {
    pub fn full() -> ServiceSizes {
        ServiceSizes {
            runs: 3,
            hydra_users: 10,
            hydra_passwords: 10,
            hydra_tasks: 4,
            ssh_logins: 20,
            ssh_sessions: 20,
            held: 1000,
            flood: 2000,
            rate_count: 5000,
            rate_workers: 8,
            limit: Duration::from_secs(180),
        }
    }

    pub fn quick() -> ServiceSizes {
        ServiceSizes {
            runs: 1,
            hydra_users: 4,
            hydra_passwords: 5,
            hydra_tasks: 4,
            ssh_logins: 5,
            ssh_sessions: 5,
            held: 1000,
            flood: 2000,
            rate_count: 1000,
            rate_workers: 8,
            limit: Duration::from_secs(90),
        }
    }

    /// For the smoke test: every path, smallest sizes.
    pub fn tiny() -> ServiceSizes {
        ServiceSizes {
            runs: 1,
            hydra_users: 2,
            hydra_passwords: 2,
            hydra_tasks: 2,
            ssh_logins: 2,
            ssh_sessions: 2,
            held: 50,
            flood: 100,
            rate_count: 100,
            rate_workers: 4,
            limit: Duration::from_secs(60),
        }
    }
}

/// The ports the agent's services listen on for one run.
#[derive(Debug, Clone, Copy)]
struct HbPorts {
    ssh: u16,
    banner: u16,
    ftp: u16,
    http: u16,
    telnet: u16,
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out += "\\\"",
            '\\' => out += "\\\\",
            '\r' => out += "\\r",
            '\n' => out += "\\n",
            c => out.push(c),
        }
    }
    out + "\""
}

/// A real core in this process and a real agent process enrolled with it.
struct HoneyNode {
    dep: Deployment,
    child: Child,
    node: NodeId,
    ports: HbPorts,
}

impl HoneyNode {
    async fn start(agent_exe: &AgentExe) -> Result<HoneyNode> {
        let ports = HbPorts {
            ssh: attack::free_port()?,
            banner: attack::free_port()?,
            ftp: attack::free_port()?,
            http: attack::free_port()?,
            telnet: attack::free_port()?,
        };
        let svc = |name: &str, kind: &str, port: u16, extra: &str| {
            format!(
                "[[default_services]]\nname = \"{name}\"\nkind = \"{kind}\"\nlisten = \"127.0.0.1:{port}\"\nenabled = true\n{extra}\n"
            )
        };
        let services = [
            svc(
                "ssh",
                "ssh",
                ports.ssh,
                &format!("login = {{ credentials = [[\"root\", \"{GOOD_PASSWORD}\"]] }}\n"),
            ),
            svc(
                "banner",
                "banner",
                ports.banner,
                &format!("banner = {}\n", toml_str(BANNER)),
            ),
            svc("ftp", "ftp", ports.ftp, ""),
            svc("http", "http", ports.http, ""),
            svc(
                "telnet",
                "telnet",
                ports.telnet,
                &format!("login = {{ credentials = [[\"root\", \"{GOOD_PASSWORD}\"]] }}\n"),
            ),
        ]
        .concat();
        let mut dep = Deployment::start_with_services(&services).await?;
        let token = dep.token("bench-services", 1).await?;
        let dir = dep.agent_dir();
        let report = honeybee_agent::enroll::enroll(&token, &dir)
            .await
            .map_err(|e| anyhow!("enrol: {e}"))?;
        let log = std::fs::File::create(dir.join("agent.log"))?;
        let child = agent_exe
            .command(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start agent: {}", agent_exe.describe()))?;
        let mut node = HoneyNode {
            dep,
            child,
            node: report.node_id,
            ports,
        };
        // Ready when SSH and the banner greet.
        let deadline = Instant::now() + Duration::from_secs(60);
        for (port, prefix) in [(ports.ssh, &b"SSH-2.0-"[..]), (ports.banner, &b"220 "[..])] {
            while !attack::probe_once(addr(port), Probe::Greeting(prefix)).await {
                if let Ok(Some(s)) = node.child.try_wait() {
                    bail!(
                        "agent exited ({s}); see {}",
                        dir.join("agent.log").display()
                    );
                }
                if Instant::now() > deadline {
                    bail!(
                        "agent services did not come up; see {}",
                        dir.join("agent.log").display()
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(node)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    async fn events(&self, service: &str, kind: &str) -> Result<Vec<StoredEvent>> {
        let q = EventQuery {
            node: Some(self.node.clone()),
            service: Some(service.into()),
            kind: Some(kind.into()),
            since_ms: None,
            limit: honeybee_core::store::MAX_QUERY_LIMIT,
        };
        Ok(self.dep.core()?.shared().store.query_events(&q).await?)
    }

    async fn count(&self, service: &str, kind: &str) -> Result<u64> {
        Ok(self.events(service, kind).await?.len() as u64)
    }

    /// Password attempts recorded for SSH (hydra's libssh also asks for the `none` method
    /// first; those are recorded too, but are not password guesses).
    async fn password_attempts(&self) -> Result<u64> {
        Ok(self
            .events("ssh", "auth_attempt")
            .await?
            .iter()
            .filter(|e| {
                matches!(&e.event.kind, EventKind::AuthAttempt(a) if a.method == AuthMethod::Password)
            })
            .count() as u64)
    }

    /// Waits until the agent has delivered what it recorded: the core's event count for
    /// the node unchanged for 500 ms (at most 30 s), so the CPU read afterwards includes
    /// spooling and sending.
    async fn settle(&self) -> Result<()> {
        let store = &self.dep.core()?.shared().store;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = store.count_events(Some(&self.node)).await?;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = store.count_events(Some(&self.node)).await?;
            if now == last {
                break;
            }
            last = now;
        }
        Ok(())
    }

    async fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.dep.stop_core().await;
    }
}

impl Drop for HoneyNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the agent in this process (`--agent-run DIR`): the same call and defaults as
/// `honeybee-agent run --data-dir DIR`, until SIGTERM or SIGINT.
pub fn agent_main(dir: PathBuf) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    honeybee_pki::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let opts = honeybee_agent::runtime::AgentOptions::full(dir);
        honeybee_agent::runtime::run(opts, async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await
    })?;
    Ok(())
}

/// Which way a figure is better, and the goal as a ratio HoneyBee / peer.
#[derive(Debug, Clone, Copy)]
enum Goal {
    /// Lower is better; met when the ratio is at most this.
    AtMost(f64),
    /// Higher is better; met when the ratio is at least this.
    AtLeast(f64),
}

/// One table row: HoneyBee's values per run beside the peer's from the same runs.
#[derive(Debug, Clone)]
struct Row {
    what: String,
    unit: &'static str,
    ours: Vec<f64>,
    /// Why there is no HoneyBee value, when there is none.
    ours_missing: Option<String>,
    peer: &'static str,
    theirs: Vec<f64>,
    goal: Goal,
}

#[derive(Debug, Default)]
struct Table {
    rows: Vec<Row>,
}

impl Table {
    fn row(&mut self, what: &str, unit: &'static str, peer: &'static str, goal: Goal) -> usize {
        if let Some(i) = self
            .rows
            .iter()
            .position(|r| r.what == what && r.peer == peer)
        {
            return i;
        }
        self.rows.push(Row {
            what: what.into(),
            unit,
            ours: vec![],
            ours_missing: None,
            peer,
            theirs: vec![],
            goal,
        });
        self.rows.len() - 1
    }
}

fn fmt_v(v: f64) -> String {
    if v.is_nan() {
        "—".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn runs(v: &[f64]) -> String {
    if v.is_empty() {
        return "—".into();
    }
    v.iter().map(|x| fmt_v(*x)).collect::<Vec<_>>().join(" / ")
}

impl Row {
    fn markdown(&self) -> String {
        let (ours, theirs) = (median(&self.ours), median(&self.theirs));
        let ratio = ours / theirs;
        let ours_cell = match &self.ours_missing {
            Some(why) if self.ours.is_empty() => format!("n/a ({why})"),
            _ => fmt_v(ours),
        };
        let ratio_cell = if ratio.is_finite() {
            if ratio < 0.1 {
                format!("{ratio:.3}×")
            } else {
                format!("{ratio:.2}×")
            }
        } else {
            "—".into()
        };
        let goal = match self.goal {
            _ if !ratio.is_finite() => "—".into(),
            Goal::AtMost(g) if ratio <= g => format!("≤{g}× met"),
            Goal::AtMost(g) => format!("≤{g}× **missed**"),
            Goal::AtLeast(g) if ratio >= g => format!("≥{g}× met"),
            Goal::AtLeast(g) => format!("≥{g}× **missed**"),
        };
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            self.what,
            self.unit,
            ours_cell,
            self.peer,
            fmt_v(theirs),
            ratio_cell,
            goal,
            format_args!("{} ‖ {}", runs(&self.ours), runs(&self.theirs)),
        )
    }
}

/// The service figures as Markdown.
pub struct ServiceReport {
    pub markdown: String,
}

/// The program that runs the measured agent.
#[derive(Debug, Clone)]
pub enum AgentExe {
    /// The `honeybee-agent` binary a sensor deploys (`run --data-dir DIR`).
    Standalone(PathBuf),
    /// This benchmark binary in agent mode (`--agent-run DIR`): the same agent code, in
    /// a larger executable, for when `honeybee-agent` was not built.
    Bench(PathBuf),
}

impl AgentExe {
    /// `honeybee-agent` beside this executable if it was built, else this executable.
    pub fn find() -> Result<AgentExe> {
        let me = std::env::current_exe().context("own executable")?;
        let standalone = me.with_file_name("honeybee-agent");
        Ok(if standalone.is_file() {
            AgentExe::Standalone(standalone)
        } else {
            progress(&format!(
                "{} not found (build it with `cargo build --release -p honeybee-agent`); measuring this binary's agent mode instead",
                standalone.display()
            ));
            AgentExe::Bench(me)
        })
    }

    fn command(&self, dir: &Path) -> Command {
        match self {
            AgentExe::Standalone(exe) => {
                let mut c = Command::new(exe);
                c.arg("run").arg("--data-dir").arg(dir);
                c
            }
            AgentExe::Bench(exe) => {
                let mut c = Command::new(exe);
                c.arg("--agent-run").arg(dir);
                c
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            AgentExe::Standalone(exe) => format!(
                "the `honeybee-agent` binary ({:.1} MiB on disk)",
                file_mib(exe)
            ),
            AgentExe::Bench(exe) => format!(
                "the benchmark binary's agent mode ({:.1} MiB on disk; `honeybee-agent` was not built)",
                file_mib(exe)
            ),
        }
    }
}

fn file_mib(p: &Path) -> f64 {
    std::fs::metadata(p).map_or(0.0, |m| m.len() as f64 / 1048576.0)
}

/// What the run needs.
pub struct ServiceBench {
    pub sizes: ServiceSizes,
    /// The program that runs the measured agent.
    pub agent_exe: AgentExe,
    /// `None`: HoneyBee side only (no Cowrie, no OpenCanary).
    pub peers: Option<PeersDir>,
}

const SSH_HELLO: &[u8] = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n";
const SCRIPT: &str = "uname -a; cat /etc/passwd; wget http://127.0.0.1:9/y.sh";

fn progress(what: &str) {
    eprintln!("[bench] services: {what}");
}

fn kib_to_mib(k: u64) -> f64 {
    k as f64 / 1024.0
}

impl ServiceBench {
    pub async fn run(&self) -> Result<ServiceReport> {
        if let Some(p) = &self.peers {
            p.check()?;
        }
        let mut t = Table::default();
        let mut notes: Vec<String> = vec![];
        for run in 0..self.sizes.runs {
            progress(&format!("run {} of {}", run + 1, self.sizes.runs));
            self.one_run(&mut t, &mut notes, run == 0).await?;
        }
        let mut md = String::new();
        let _ = writeln!(md, "### Honeypot services vs Cowrie and OpenCanary\n");
        let _ = writeln!(
            md,
            "| measurement | unit | HoneyBee (median) | peer | peer (median) | ratio | goal | runs: HoneyBee ‖ peer |"
        );
        let _ = writeln!(md, "|---|---|---:|---|---:|---:|---|---|");
        for r in &t.rows {
            let _ = writeln!(md, "{}", r.markdown());
        }
        if !notes.is_empty() {
            md.push('\n');
            for n in &notes {
                let _ = writeln!(md, "- {n}");
            }
        }
        Ok(ServiceReport { markdown: md })
    }

    async fn one_run(&self, t: &mut Table, notes: &mut Vec<String>, first: bool) -> Result<()> {
        let sz = &self.sizes;
        let mut hb = HoneyNode::start(&self.agent_exe).await?;
        let (mut cowrie, mut canary, cports, oports) = match &self.peers {
            Some(dir) => {
                let cports = CowriePorts {
                    ssh: attack::free_port()?,
                };
                let oports = CanaryPorts {
                    ftp: attack::free_port()?,
                    http: attack::free_port()?,
                    ssh: attack::free_port()?,
                };
                let c = peers::start_cowrie(dir, cports).await?;
                let o = peers::start_opencanary(dir, oports).await?;
                (Some(c), Some(o), Some(cports), Some(oports))
            }
            None => (None, None, None, None),
        };
        // Let start-up work (key generation, imports, the agent's first health) finish.
        tokio::time::sleep(Duration::from_secs(3)).await;
        hb.settle().await?;

        // --- Memory: idle.
        let no_peer: &'static str = "—";
        let cowrie_name: &'static str = "Cowrie 3.1.4";
        let canary_name: &'static str = "OpenCanary 0.9.10";
        let idle = procstat::rss_kib(hb.pid())?;
        let idle_anon = procstat::anon_kib(hb.pid())?;
        let readings: [(&str, u64, MemReading); 2] = [
            (
                "RSS idle (HoneyBee: ssh, telnet, http, ftp, banner configured)",
                idle,
                procstat::rss_kib,
            ),
            (
                "private (anonymous) memory idle",
                idle_anon,
                procstat::anon_kib,
            ),
        ];
        for (what, ours, read) in readings {
            for (peer, p) in [(cowrie_name, &cowrie), (canary_name, &canary)] {
                let i = t.row(what, "MiB", peer, Goal::AtMost(0.1));
                t.rows[i].ours.push(kib_to_mib(ours));
                if let Some(p) = p {
                    t.rows[i].theirs.push(kib_to_mib(read(p.pid())?));
                }
            }
        }
        if first {
            notes.push(format!(
                "The agent is {}. RSS counts the code pages mapped from the executable and shared libraries; the private (anonymous) rows count only what the process allocated itself (heap, stacks), which is what another instance or another connection costs.",
                self.agent_exe.describe()
            ));
        }
        progress(&format!(
            "idle RSS {:.1} MiB, private {:.1} MiB",
            kib_to_mib(idle),
            kib_to_mib(idle_anon)
        ));

        // --- Memory: held SSH connections.
        let what = format!("RSS with {} attacker SSH connections held open", sz.held);
        let hb_held = self.held_rss(hb.pid(), hb.ports.ssh).await?;
        let mut rows_held = vec![];
        if let (Some(c), Some(cp)) = (&cowrie, cports) {
            rows_held.push((cowrie_name, self.held_rss(c.pid(), cp.ssh).await?, c.pid()));
        }
        if let (Some(o), Some(op)) = (&canary, oports) {
            rows_held.push((canary_name, self.held_rss(o.pid(), op.ssh).await?, o.pid()));
        }
        let peers_or_none: Vec<&'static str> = if rows_held.is_empty() {
            vec![no_peer]
        } else {
            rows_held.iter().map(|r| r.0).collect()
        };
        let what_anon = format!(
            "private memory with {} attacker SSH connections held open",
            sz.held
        );
        for peer in peers_or_none {
            let i = t.row(&what, "MiB", peer, Goal::AtMost(0.1));
            t.rows[i].ours.push(kib_to_mib(hb_held.during));
            let j = t.row(&what_anon, "MiB", peer, Goal::AtMost(0.1));
            t.rows[j].ours.push(kib_to_mib(hb_held.anon_during));
            if let Some((_, h, _)) = rows_held.iter().find(|r| r.0 == peer) {
                t.rows[i].theirs.push(kib_to_mib(h.during));
                t.rows[j].theirs.push(kib_to_mib(h.anon_during));
            }
        }
        if first {
            let mut n = format!(
                "Held connections: each from one of {} loopback attacker addresses ({} per address, under the agent's per-source cap of 32), after the server's SSH identification line was read and a client identification line sent (so each server is in key exchange); RSS read 2 s after the last was open. HoneyBee held {} ({} refused/failed), RSS {:.1} → {:.1} MiB ({:.1} KiB per connection; private {:.1} KiB per connection), {:.1} MiB 3 s after they closed",
                sz.held.div_ceil(20),
                20,
                hb_held.held,
                hb_held.failed,
                kib_to_mib(hb_held.before),
                kib_to_mib(hb_held.during),
                hb_held.per_conn_kib(),
                hb_held.anon_per_conn_kib(),
                kib_to_mib(hb_held.after)
            );
            for (name, h, pid) in &rows_held {
                let _ = write!(
                    n,
                    "; {name} held {} ({} failed), RSS {:.1} → {:.1} MiB ({:.1} KiB per connection; private {:.1} KiB), {:.1} MiB after (open-file limit {})",
                    h.held,
                    h.failed,
                    kib_to_mib(h.before),
                    kib_to_mib(h.during),
                    h.per_conn_kib(),
                    h.anon_per_conn_kib(),
                    kib_to_mib(h.after),
                    procstat::open_files_limit(*pid).map_or("?".into(), |n| n.to_string())
                );
            }
            notes.push(n + ".");
        }
        progress("held connections done");

        // --- Connections per second and CPU per connection.
        let hb_ftp = attack::probe_once(addr(hb.ports.ftp), Probe::FtpQuit).await;
        let hb_http = attack::probe_once(addr(hb.ports.http), Probe::HttpGet).await;
        // (row, HoneyBee probe, port, peer probe, peer port, HoneyBee side available).
        // The banner is compared with OpenCanary's FTP greeting (the same work: accept,
        // send one line, see the client close); its tcpbanner module cannot be bound to
        // loopback only.
        let cases: [RateCase; 3] = [
            (
                "banner (greeting, client closes)",
                Probe::Greeting(b"220 "),
                hb.ports.banner,
                Probe::Greeting(b"220"),
                oports.map(|p| p.ftp),
                true,
            ),
            (
                "FTP (220, QUIT, 221)",
                Probe::FtpQuit,
                hb.ports.ftp,
                Probe::FtpQuit,
                oports.map(|p| p.ftp),
                hb_ftp,
            ),
            (
                "HTTP (GET /, Connection: close)",
                Probe::HttpGet,
                hb.ports.http,
                Probe::HttpGet,
                oports.map(|p| p.http),
                hb_http,
            ),
        ];
        for (what, probe, hport, peer_probe, oport, available) in cases {
            let peer = match oport {
                Some(_) if what.starts_with("banner") => "OpenCanary 0.9.10 (FTP greeting)",
                Some(_) => canary_name,
                None => no_peer,
            };
            let rate_row = t.row(
                &format!("{what}: connections/s"),
                "conn/s",
                peer,
                Goal::AtLeast(5.0),
            );
            let cpu_row = t.row(
                &format!("{what}: server CPU per connection"),
                "µs",
                peer,
                Goal::AtMost(0.2),
            );
            if available {
                let (r, cpu) = self.rate_hb(&hb, hport, probe).await?;
                if r.failed > 0 {
                    notes.push(format!(
                        "HoneyBee {what}: {} of {} connections failed.",
                        r.failed,
                        r.ok + r.failed
                    ));
                }
                t.rows[rate_row].ours.push(r.per_s());
                t.rows[cpu_row]
                    .ours
                    .push(cpu.as_secs_f64() * 1e6 / r.ok.max(1) as f64);
                progress(&format!(
                    "HoneyBee {what}: {:.0}/s, {:.1} µs CPU each",
                    r.per_s(),
                    cpu.as_secs_f64() * 1e6 / r.ok.max(1) as f64
                ));
            } else {
                for i in [rate_row, cpu_row] {
                    t.rows[i].ours_missing = Some("the service did not answer its probe".into());
                }
            }
            if let (Some(o), Some(port)) = (&canary, oport) {
                let (r, cpu) = self.rate_peer(o.pid(), port, peer_probe).await?;
                if r.failed > 0 {
                    notes.push(format!(
                        "OpenCanary {what}: {} of {} connections failed.",
                        r.failed,
                        r.ok + r.failed
                    ));
                }
                t.rows[rate_row].theirs.push(r.per_s());
                t.rows[cpu_row]
                    .theirs
                    .push(cpu.as_secs_f64() * 1e6 / r.ok.max(1) as f64);
                progress(&format!(
                    "OpenCanary {what}: {:.0}/s, {:.1} µs CPU each",
                    r.per_s(),
                    cpu.as_secs_f64() * 1e6 / r.ok.max(1) as f64
                ));
            }
        }

        // --- SSH: failed logins under hydra.
        let peer = if cowrie.is_some() {
            cowrie_name
        } else {
            no_peer
        };
        let expected = (sz.hydra_users * sz.hydra_passwords) as u64;
        let row = t.row(
            &format!(
                "SSH failed login under hydra ({} tasks, {}×{} list)",
                sz.hydra_tasks, sz.hydra_users, sz.hydra_passwords
            ),
            "ms CPU/attempt",
            peer,
            Goal::AtMost(0.1),
        );
        let dir = hb.dep.dir.path().join("hydra");
        let before = hb.password_attempts().await?;
        let m = Meter::start(hb.pid())?;
        let h = attack::hydra_ssh(
            &dir,
            hb.ports.ssh,
            sz.hydra_users,
            sz.hydra_passwords,
            sz.hydra_tasks,
            sz.limit,
        )
        .await?;
        hb.settle().await?;
        let cpu = m.cpu()?;
        let recorded = hb.password_attempts().await? - before;
        // Per attempt of hydra's list, on both sides; what each server recorded is a check.
        t.rows[row]
            .ours
            .push(cpu.as_secs_f64() * 1e3 / expected.max(1) as f64);
        notes.push(format!(
            "Run {}: hydra against HoneyBee: {expected} tries, {recorded} password attempts recorded as `auth_attempt` events, {} found, {:.1} s ({:.1} tries/s), {:.0} ms agent CPU.",
            t.rows[row].ours.len(),
            h.found,
            h.elapsed.as_secs_f64(),
            expected as f64 / h.elapsed.as_secs_f64(),
            cpu.as_secs_f64() * 1e3
        ));
        progress(&format!(
            "hydra vs HoneyBee: {recorded}/{expected} attempts recorded, {:.2} ms CPU each",
            cpu.as_secs_f64() * 1e3 / expected.max(1) as f64
        ));
        if let (Some(c), Some(cp)) = (&cowrie, cports) {
            let before = peers::cowrie_events(c, "cowrie.login.failed");
            let m = Meter::start(c.pid())?;
            let h = attack::hydra_ssh(
                &dir,
                cp.ssh,
                sz.hydra_users,
                sz.hydra_passwords,
                sz.hydra_tasks,
                sz.limit,
            )
            .await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let cpu = m.cpu()?;
            let recorded = peers::cowrie_events(c, "cowrie.login.failed") - before;
            t.rows[row]
                .theirs
                .push(cpu.as_secs_f64() * 1e3 / expected.max(1) as f64);
            notes.push(format!(
                "Run {}: hydra against Cowrie: {expected} tries, {recorded} `cowrie.login.failed` events, {} found, {:.1} s ({:.1} tries/s), {:.0} ms Cowrie CPU.",
                t.rows[row].theirs.len(),
                h.found,
                h.elapsed.as_secs_f64(),
                expected as f64 / h.elapsed.as_secs_f64(),
                cpu.as_secs_f64() * 1e3
            ));
            progress(&format!(
                "hydra vs Cowrie: {recorded}/{expected} attempts recorded, {:.2} ms CPU each",
                cpu.as_secs_f64() * 1e3 / expected.max(1) as f64
            ));
        }

        // --- SSH: successful logins and scripted sessions with the OpenSSH client.
        let (hb_login, _) = attack::ssh_exec(hb.ports.ssh, "root", GOOD_PASSWORD, "true").await?;
        for (what, command, n, check) in [
            (
                "SSH successful login (`ssh root@host true`, OpenSSH + sshpass, sequential)",
                "true",
                sz.ssh_logins,
                None,
            ),
            (
                "SSH scripted session (`uname -a; cat /etc/passwd; wget …`)",
                SCRIPT,
                sz.ssh_sessions,
                Some(["Linux", "root:x:0:0"]),
            ),
        ] {
            let row = t.row(what, "ms CPU/session", peer, Goal::AtMost(0.1));
            if hb_login {
                let m = Meter::start(hb.pid())?;
                let ok = ssh_loop(hb.ports.ssh, command, n, check, sz.limit).await?;
                hb.settle().await?;
                let cpu = m.cpu()?;
                t.rows[row]
                    .ours
                    .push(cpu.as_secs_f64() * 1e3 / ok.max(1) as f64);
                if ok < n as u64 {
                    notes.push(format!(
                        "HoneyBee {what}: {ok} of {n} sessions gave the expected output."
                    ));
                }
            } else {
                t.rows[row].ours_missing = Some("the OpenSSH login to HoneyBee failed".into());
            }
            if let (Some(c), Some(cp)) = (&cowrie, cports) {
                let m = Meter::start(c.pid())?;
                let ok = ssh_loop(cp.ssh, command, n, check, sz.limit).await?;
                tokio::time::sleep(Duration::from_millis(500)).await;
                let cpu = m.cpu()?;
                t.rows[row]
                    .theirs
                    .push(cpu.as_secs_f64() * 1e3 / ok.max(1) as f64);
                if ok < n as u64 {
                    notes.push(format!(
                        "Cowrie {what}: {ok} of {n} sessions gave the expected output."
                    ));
                }
            }
        }
        progress("ssh done");

        // --- Flood (HoneyBee only).
        let before = procstat::rss_kib(hb.pid())?;
        let flood =
            attack::hold(addr(hb.ports.banner), sz.flood, 20, b"220 ", None, sz.limit).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let during = procstat::rss_kib(hb.pid())?;
        let held = flood.streams.len();
        drop(flood.streams);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = procstat::rss_kib(hb.pid())?;
        let serving = attack::probe_once(addr(hb.ports.banner), Probe::Greeting(b"220 ")).await
            && attack::probe_once(addr(hb.ports.ssh), Probe::Greeting(b"SSH-2.0-")).await;
        let alive = hb.alive();
        let limit_events = hb.count("banner", "limit_reached").await.unwrap_or(0);
        notes.push(format!(
            "Run {}: flood of {} concurrent connections to the agent's banner service from {} attacker addresses: {held} greeted and held, {} refused or cut (node-wide cap 1,024 sessions); agent RSS {:.1} MiB before, {:.1} MiB during, {:.1} MiB 3 s after; agent {}, {} serving banner and SSH afterwards; {limit_events} `limit_reached` events.",
            t.rows[0].ours.len(),
            sz.flood,
            sz.flood.div_ceil(20),
            flood.failed,
            kib_to_mib(before),
            kib_to_mib(during),
            kib_to_mib(after),
            if alive { "alive" } else { "DEAD" },
            if serving { "still" } else { "NOT" },
        ));
        if !alive || !serving {
            bail!(
                "the agent did not survive the flood: {}",
                notes.last().cloned().unwrap_or_default()
            );
        }
        progress("flood done");

        if let Some(c) = cowrie.as_mut() {
            c.check_alive()?;
        }
        if let Some(o) = canary.as_mut() {
            o.check_alive()?;
        }
        drop(cowrie);
        drop(canary);
        hb.stop().await;
        Ok(())
    }

    async fn held_rss(&self, pid: u32, port: u16) -> Result<HeldRss> {
        let before = procstat::rss_kib(pid)?;
        let anon_before = procstat::anon_kib(pid)?;
        let h = attack::hold(
            addr(port),
            self.sizes.held,
            20,
            b"SSH-",
            Some(SSH_HELLO),
            self.sizes.limit,
        )
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let during = procstat::rss_kib(pid)?;
        let anon_during = procstat::anon_kib(pid)?;
        let held = h.streams.len();
        drop(h.streams);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = procstat::rss_kib(pid)?;
        Ok(HeldRss {
            before,
            during,
            anon_before,
            anon_during,
            after,
            held,
            failed: h.failed,
        })
    }

    async fn rate_hb(
        &self,
        hb: &HoneyNode,
        port: u16,
        probe: Probe,
    ) -> Result<(attack::RateOut, Duration)> {
        let m = Meter::start(hb.pid())?;
        let r = attack::rate(
            addr(port),
            probe,
            self.sizes.rate_count,
            self.sizes.rate_workers,
            self.sizes.limit,
        )
        .await;
        hb.settle().await?;
        Ok((r, m.cpu()?))
    }

    async fn rate_peer(
        &self,
        pid: u32,
        port: u16,
        probe: Probe,
    ) -> Result<(attack::RateOut, Duration)> {
        let m = Meter::start(pid)?;
        let r = attack::rate(
            addr(port),
            probe,
            self.sizes.rate_count,
            self.sizes.rate_workers,
            self.sizes.limit,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok((r, m.cpu()?))
    }
}

/// A way to read a process's memory in KiB (`procstat::rss_kib`, `procstat::anon_kib`).
type MemReading = fn(u32) -> Result<u64>;

/// (row, HoneyBee probe, port, peer probe, peer port, HoneyBee side available).
type RateCase = (&'static str, Probe, u16, Probe, Option<u16>, bool);

struct HeldRss {
    before: u64,
    during: u64,
    anon_before: u64,
    anon_during: u64,
    after: u64,
    held: usize,
    failed: usize,
}

impl HeldRss {
    fn per_conn_kib(&self) -> f64 {
        self.during.saturating_sub(self.before) as f64 / self.held.max(1) as f64
    }

    fn anon_per_conn_kib(&self) -> f64 {
        self.anon_during.saturating_sub(self.anon_before) as f64 / self.held.max(1) as f64
    }
}

/// `n` sequential OpenSSH logins as root running `command`; counts those that exited
/// successfully (and whose output holds every `check` string).
async fn ssh_loop(
    port: u16,
    command: &str,
    n: usize,
    check: Option<[&str; 2]>,
    limit: Duration,
) -> Result<u64> {
    let deadline = Instant::now() + limit;
    let mut ok = 0;
    for _ in 0..n {
        if Instant::now() > deadline {
            break;
        }
        let (success, out) = attack::ssh_exec(port, "root", GOOD_PASSWORD, command).await?;
        let shown = check.is_none_or(|c| c.iter().all(|s| out.contains(s)));
        // The scripted session's last command (wget to a closed port) may fail; what
        // counts is that the session ran and answered.
        if shown && (success || check.is_some()) {
            ok += 1;
        }
    }
    Ok(ok)
}
