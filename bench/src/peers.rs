//! The peer honeypots of the service figures, Cowrie and OpenCanary, run as child
//! processes from the virtualenvs `bench/scripts/peers.sh` installs, under their own
//! unprivileged user, listening on 127.0.0.1 only, each configured for the run.

use anyhow::{Context, Result, anyhow, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The user `peers.sh` creates; Cowrie refuses to run as root.
pub const PEER_USER: &str = "honeybee-peer";

/// Password the peers and HoneyBee accept for `root` in the login figures; every other
/// credential fails. Not in the hydra lists.
pub const GOOD_PASSWORD: &str = "benchpass";

/// Where `peers.sh` installed the peers.
#[derive(Debug, Clone)]
pub struct PeersDir {
    pub root: PathBuf,
}

impl PeersDir {
    /// `root` is made absolute: the peers run in their own working directories.
    pub fn new(root: PathBuf) -> PeersDir {
        let root = std::fs::canonicalize(&root).unwrap_or(root);
        PeersDir { root }
    }

    /// Whether both peers are installed, with a message saying how to install them if not.
    pub fn check(&self) -> Result<()> {
        for bin in ["cowrie-venv/bin/twistd", "opencanary-venv/bin/twistd"] {
            if !self.root.join(bin).exists() {
                bail!(
                    "{} is missing: install the peers first with `bench/scripts/peers.sh` (as root)",
                    self.root.join(bin).display()
                );
            }
        }
        user_ids(PEER_USER).context("the peer user (run bench/scripts/peers.sh)")?;
        Ok(())
    }
}

fn user_ids(user: &str) -> Result<(String, String)> {
    let id = |flag: &str| -> Result<String> {
        let out = Command::new("id").args([flag, user]).output()?;
        if !out.status.success() {
            bail!("no user {user}");
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    Ok((id("-u")?, id("-g")?))
}

/// A peer honeypot process; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct PeerProcess {
    pub name: &'static str,
    child: Child,
    pub workdir: PathBuf,
}

impl PeerProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the process by its PID: SIGTERM, then SIGKILL after 5 s.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Fails if the process has exited (with the tail of its log).
    pub fn check_alive(&mut self) -> Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            let log = std::fs::read_to_string(self.workdir.join("stdout.log")).unwrap_or_default();
            let tail: String = log
                .lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            bail!("{} exited ({status}):\n{tail}", self.name);
        }
        Ok(())
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `program args` in `workdir` as the peer user, with output into `workdir/stdout.log`.
/// `setpriv` execs in place, so the child's PID is the server's.
fn spawn_as_peer(
    name: &'static str,
    workdir: &Path,
    program: &Path,
    args: &[&str],
) -> Result<PeerProcess> {
    let (uid, gid) = user_ids(PEER_USER)?;
    let status = Command::new("chown")
        .args(["-R", &format!("{uid}:{gid}")])
        .arg(workdir)
        .status()?;
    if !status.success() {
        bail!("chown {}", workdir.display());
    }
    let log = std::fs::File::create(workdir.join("stdout.log"))?;
    let status = Command::new("chown")
        .arg(format!("{uid}:{gid}"))
        .arg(workdir.join("stdout.log"))
        .status()?;
    if !status.success() {
        bail!("chown stdout.log");
    }
    let child = Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--init-groups",
            "--",
        ])
        .arg(program)
        .args(args)
        .current_dir(workdir)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", workdir)
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("start {name}"))?;
    Ok(PeerProcess {
        name,
        child,
        workdir: workdir.to_owned(),
    })
}

/// Waits until every address accepts a TCP connection and the process is alive.
pub async fn wait_listening(
    p: &mut PeerProcess,
    addrs: &[SocketAddr],
    limit: Duration,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    for addr in addrs {
        loop {
            p.check_alive()?;
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            if Instant::now() > deadline {
                bail!("{} did not listen on {addr} within {limit:?}", p.name);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Cowrie's ports for one run.
#[derive(Debug, Clone, Copy)]
pub struct CowriePorts {
    pub ssh: u16,
}

/// Starts Cowrie (SSH only; telnet off) as the peer user, with a user database where only
/// `root` / [`GOOD_PASSWORD`] gets in, and its default logs (text log and JSON log).
pub async fn start_cowrie(dir: &PeersDir, ports: CowriePorts) -> Result<PeerProcess> {
    let work = dir.root.join("cowrie").join("work");
    // Logs start empty each run; host keys in var/lib/cowrie are kept (RSA key generation
    // on a first start takes seconds).
    let _ = std::fs::remove_dir_all(work.join("var/log"));
    for d in [
        "etc",
        "var/log/cowrie",
        "var/lib/cowrie/downloads",
        "var/lib/cowrie/tty",
        "var/run",
    ] {
        std::fs::create_dir_all(work.join(d))?;
    }
    std::fs::write(
        work.join("etc/cowrie.cfg"),
        format!(
            "[honeypot]\nhostname = svr04\n\n[ssh]\nenabled = true\nlisten_endpoints = tcp:{}:interface=127.0.0.1\n\n[telnet]\nenabled = false\n",
            ports.ssh
        ),
    )?;
    std::fs::write(
        work.join("etc/userdb.txt"),
        format!("root:x:{GOOD_PASSWORD}\n"),
    )?;
    let twistd = dir.root.join("cowrie-venv/bin/twistd");
    // What `cowrie start` runs, in the foreground (-n) and without a PID file.
    let mut p = spawn_as_peer(
        "cowrie",
        &work,
        &twistd,
        &[
            "--umask=0022",
            "-n",
            "--pidfile=",
            "--logger",
            "cowrie.python.logfile.logger",
            "cowrie",
        ],
    )?;
    wait_listening(
        &mut p,
        &[SocketAddr::from(([127, 0, 0, 1], ports.ssh))],
        Duration::from_secs(60),
    )
    .await?;
    Ok(p)
}

/// Lines of Cowrie's JSON log with this `eventid` (e.g. `cowrie.login.failed`).
pub fn cowrie_events(p: &PeerProcess, eventid: &str) -> u64 {
    let log =
        std::fs::read_to_string(p.workdir.join("var/log/cowrie/cowrie.json")).unwrap_or_default();
    let needle = format!("\"eventid\":\"{eventid}\"");
    let spaced = format!("\"eventid\": \"{eventid}\"");
    log.lines()
        .filter(|l| l.contains(&needle) || l.contains(&spaced))
        .count() as u64
}

/// OpenCanary's ports for one run.
#[derive(Debug, Clone, Copy)]
pub struct CanaryPorts {
    pub ftp: u16,
    pub http: u16,
    pub ssh: u16,
}

/// The greeting HoneyBee's banner service sends in the figures.
pub const BANNER: &str = "220 mail.example.com ESMTP Postfix (Debian/GNU)\r\n";

/// Starts OpenCanary with FTP, HTTP (its NAS login skin) and SSH, logging to a file, as
/// the peer user. Its `tcpbanner` module is not used: it ignores `device.listen_addr` and
/// listens on every interface.
pub async fn start_opencanary(dir: &PeersDir, ports: CanaryPorts) -> Result<PeerProcess> {
    let work = dir.root.join("opencanary").join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let log = work.join("opencanary.log");
    let conf = format!(
        r#"{{
  "device.node_id": "opencanary-bench",
  "device.listen_addr": "127.0.0.1",
  "ip.ignorelist": [],
  "logtype.ignorelist": [],
  "ftp.enabled": true, "ftp.port": {ftp}, "ftp.banner": "FTP server ready",
  "http.enabled": true, "http.port": {http}, "http.skin": "nasLogin",
  "http.banner": "Apache/2.2.22 (Ubuntu)",
  "ssh.enabled": true, "ssh.port": {ssh}, "ssh.version": "SSH-2.0-OpenSSH_5.1p1 Debian-4",
  "tcpbanner.enabled": false,
  "logger": {{ "class": "PyLogger", "kwargs": {{
      "formatters": {{ "plain": {{ "format": "%(message)s" }} }},
      "handlers": {{ "file": {{ "class": "logging.FileHandler", "filename": "{log}" }} }} }} }},
  "portscan.enabled": false
}}
"#,
        ftp = ports.ftp,
        http = ports.http,
        ssh = ports.ssh,
        log = log.display(),
    );
    std::fs::write(work.join("opencanary.conf"), conf)?;
    let venv = dir.root.join("opencanary-venv/bin");
    let tac = venv.join("opencanary.tac");
    let tac = tac.to_str().ok_or_else(|| anyhow!("non-UTF-8 path"))?;
    // What `opencanaryd --dev` runs: twistd in the foreground.
    let mut p = spawn_as_peer(
        "opencanary",
        &work,
        &venv.join("twistd"),
        &["-noy", tac, "--pidfile="],
    )?;
    let addrs: Vec<SocketAddr> = [ports.ftp, ports.http, ports.ssh]
        .iter()
        .map(|&port| SocketAddr::from(([127, 0, 0, 1], port)))
        .collect();
    wait_listening(&mut p, &addrs, Duration::from_secs(60)).await?;
    Ok(p)
}
