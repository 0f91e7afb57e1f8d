//! The two servers the fleet connects to, each its own process so `/proc` counts its
//! memory and CPU alone: the core (`honeybee core run`, or this binary's `--core-run`,
//! the same call), and the bare quinn baseline (`--bare-server`): the core's TLS
//! configuration, certificate and transport settings, answering each hello with a
//! minimal welcome and reading (and dropping) everything else.

use anyhow::{Context, Result, anyhow, bail};
use honeybee_core::init::CorePaths;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which executable runs the core.
#[derive(Debug, Clone)]
pub enum CoreExe {
    /// The `honeybee` CLI built beside this binary, no older than it: `core run`.
    Cli(PathBuf),
    /// This binary's `--core-run DIR`, which makes the same calls as `honeybee core run`.
    Bench(PathBuf),
}

impl CoreExe {
    pub fn find(given: Option<&Path>) -> Result<CoreExe> {
        if let Some(exe) = given {
            return Ok(CoreExe::Bench(exe.to_path_buf()));
        }
        let me = std::env::current_exe().context("own executable")?;
        let cli = me.with_file_name("honeybee");
        let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        Ok(match (mtime(&cli), mtime(&me)) {
            // An older CLI may hold an older core: measure the code of this build instead.
            (Some(c), Some(m)) if c >= m => CoreExe::Cli(cli),
            _ => CoreExe::Bench(me),
        })
    }

    pub fn describe(&self) -> String {
        match self {
            CoreExe::Cli(p) => format!("`{} core run`", p.display()),
            CoreExe::Bench(p) => format!(
                "`{} --core-run` (the calls of `honeybee core run`; the CLI was not built or is older than this binary)",
                p.display()
            ),
        }
    }

    fn command(&self, dir: &Path) -> Command {
        match self {
            CoreExe::Cli(exe) => {
                let mut c = Command::new(exe);
                c.args(["core", "run", "--data-dir"]).arg(dir);
                c
            }
            CoreExe::Bench(exe) => {
                let mut c = Command::new(exe);
                c.arg("--core-run").arg(dir);
                c
            }
        }
    }
}

/// A server child process and where it writes its log.
pub struct ServerProc {
    child: Child,
    log: PathBuf,
}

impl ServerProc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts the core on `dir` and waits until it has bound its port (it writes
    /// `core.addr` right after).
    pub async fn core(exe: &CoreExe, dir: &Path, log: PathBuf) -> Result<ServerProc> {
        let addr_file = CorePaths::new(dir).addr_file();
        let _ = std::fs::remove_file(&addr_file);
        let mut cmd = exe.command(dir);
        ServerProc::spawn(&mut cmd, "core", log, &addr_file).await
    }

    /// Starts the bare quinn baseline on `addr` with the certificates of the core at `dir`.
    pub async fn bare(dir: &Path, addr: SocketAddr, log: PathBuf) -> Result<ServerProc> {
        let me = std::env::current_exe()?;
        let ready = dir.join("bare.addr");
        let _ = std::fs::remove_file(&ready);
        let mut cmd = Command::new(me);
        cmd.arg("--bare-server").arg(dir).arg(addr.to_string());
        ServerProc::spawn(&mut cmd, "bare quinn", log, &ready).await
    }

    async fn spawn(
        cmd: &mut Command,
        what: &'static str,
        log: PathBuf,
        ready: &Path,
    ) -> Result<ServerProc> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        // The server logs as in production (`info`) unless FLEET_SERVER_LOG says otherwise;
        // the harness's own RUST_LOG is not passed on.
        cmd.env_remove("RUST_LOG");
        if let Ok(filter) = std::env::var("FLEET_SERVER_LOG") {
            cmd.env("RUST_LOG", filter);
        }
        // The server goes when the harness goes, however the harness ends.
        // SAFETY: prctl(2) only, between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(cmd, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("start {what}"))?;
        let mut p = ServerProc { child, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready.exists() {
            if let Ok(Some(s)) = p.child.try_wait() {
                bail!("{what} exited ({s}); see {}", p.log.display());
            }
            if Instant::now() > deadline {
                bail!("{what} did not come up in 60 s; see {}", p.log.display());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(p)
    }

    /// SIGTERM, then waits (at most 30 s, then SIGKILL). Returns how long it took.
    pub async fn stop(mut self) -> Duration {
        let t = Instant::now();
        // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        while t.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return t.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        t.elapsed()
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,quinn=warn,russh=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Resolves on SIGTERM or SIGINT.
async fn signalled() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// `--core-run DIR`: what `honeybee core run --data-dir DIR` does (same runtime, same
/// start and shutdown calls), for when the CLI binary is not at hand.
pub fn core_main(dir: PathBuf) -> Result<()> {
    init_tracing();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let stop = tokio::spawn(signalled());
        let core = honeybee_core::Core::start(&dir).await?;
        let _ = stop.await;
        core.shutdown().await;
        anyhow::Ok(())
    })
}

/// `--bare-server DIR ADDR`: a bare quinn server with the core's TLS and transport
/// configuration on `ADDR`; writes `DIR/bare.addr` once bound; closes every connection on
/// SIGTERM as the core does (`close::SHUTDOWN` with a `ComeBack` sized to the fleet).
pub fn bare_main(dir: PathBuf, addr: SocketAddr) -> Result<()> {
    init_tracing();
    honeybee_pki::install_crypto_provider();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let ep = bare_endpoint(&dir, addr)?;
        std::fs::write(dir.join("bare.addr"), ep.local_addr()?.to_string())?;
        let accept = {
            let ep = ep.clone();
            tokio::spawn(async move {
                while let Some(inc) = ep.accept().await {
                    tokio::spawn(async move {
                        if let Ok(Ok(conn)) =
                            tokio::time::timeout(Duration::from_secs(10), inc).await
                        {
                            let _ = bare_session(conn).await;
                        }
                    });
                }
            })
        };
        signalled().await;
        // The core's clean shutdown, "come back" included, so both storms start alike.
        let reason = honeybee_proto::reconnect::ComeBack::for_fleet(ep.open_connections())
            .reason("shutting down");
        ep.close(honeybee_proto::stream::close::SHUTDOWN.into(), &reason);
        accept.abort();
        let _ = tokio::time::timeout(Duration::from_secs(2), ep.wait_idle()).await;
        std::fs::remove_file(dir.join("bare.addr")).ok();
        anyhow::Ok(())
    })
}

fn bare_endpoint(dir: &Path, addr: SocketAddr) -> Result<quinn::Endpoint> {
    use honeybee_core::endpoint::{AlpnLimits, server_transport_config};
    use honeybee_pki::keys::KeyPair;
    use honeybee_pki::revocation::RevocationList;
    use honeybee_proto::alpn;
    let pki = dir.join("pki");
    let read =
        |f: &str| std::fs::read_to_string(pki.join(f)).with_context(|| format!("read pki/{f}"));
    let first = |pem: &str| {
        honeybee_pki::files::pem_to_der_certs(pem)
            .map_err(|e| anyhow!("{e}"))?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("no certificate"))
    };
    let ca = first(&read("ca.crt")?)?;
    let cert = first(&read("core.crt")?)?;
    let key = KeyPair::from_pem(&read("core.key")?).map_err(|e| anyhow!("core key: {e}"))?;
    let tls = honeybee_pki::tls::server_config(
        ca.as_ref(),
        vec![cert, ca.clone()],
        key.private_key_der(),
        RevocationList::new(),
        &[alpn::NODE],
    )
    .map_err(|e| anyhow!("server tls: {e}"))?;
    let mut cfg = honeybee_core::endpoint::server_config(tls, 64).map_err(|e| anyhow!(e))?;
    // A bare server has no authentication step to raise limits after: a node's limits
    // from the start, as the core has them once a node is admitted.
    let node = AlpnLimits::node(64);
    let mut t = server_transport_config();
    t.max_concurrent_bidi_streams(node.bidi_streams.into());
    t.max_concurrent_uni_streams(node.uni_streams.into());
    t.receive_window(node.receive_window.into());
    cfg.transport_config(std::sync::Arc::new(t));
    Ok(quinn::Endpoint::server(cfg, addr)?)
}

/// hello → minimal welcome, then every control frame and stream read and dropped.
async fn bare_session(conn: quinn::Connection) -> Result<()> {
    use honeybee_agent::transport::{read_frame, write_frame};
    use honeybee_proto::codec::FrameLimit;
    use honeybee_proto::control::{AgentMsg, CoreMsg};
    let (mut send, mut recv) = conn.accept_bi().await?;
    let _hello: AgentMsg = read_frame(&mut recv, FrameLimit::CONTROL).await?;
    let welcome = CoreMsg::Welcome {
        node_id: honeybee_proto::NodeId::new("bare").map_err(|e| anyhow!("{e}"))?,
        config: Default::default(),
        last_seq: 0,
    };
    write_frame(&mut send, &welcome, FrameLimit::CONTROL).await?;
    let streams = async {
        while let Ok(mut s) = conn.accept_uni().await {
            tokio::spawn(async move { s.read_to_end(1 << 20).await });
        }
    };
    let control = async {
        while read_frame::<AgentMsg, _>(&mut recv, FrameLimit::CONTROL)
            .await
            .is_ok()
        {}
    };
    tokio::select! {
        _ = streams => {}
        _ = control => {}
    }
    drop(send);
    Ok(())
}
