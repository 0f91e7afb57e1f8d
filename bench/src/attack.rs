//! Load generators for the service figures, playing the attacker on loopback: held-open
//! connections, connect–greet–close loops, `hydra` and an OpenSSH client loop. Every loop
//! is bounded in count and in time.

use anyhow::{Context, Result, bail};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::Command;

/// A port for a server to listen on: free on every address, and below the kernel's
/// ephemeral range (from 32768), where the load generators' own client sockets would
/// make a later bind fail. Checked by binding it; the caller binds it soon after.
pub fn free_port() -> Result<u16> {
    use rand::Rng;
    let mut rng = rand::rng();
    for _ in 0..200 {
        let port = rng.random_range(20_000..32_000);
        if std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port in 20000-32000")
}

/// The `i`-th attacker address: 127.0.1.1, 127.0.1.2, … (250 per /24). Spreading
/// connections over sources keeps them under per-source caps, as a botnet would.
pub fn source(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1 + (i / 250) as u8, 1 + (i % 250) as u8)
}

async fn connect_from(src: Ipv4Addr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::from((src, 0)))?;
    s.connect(addr).await
}

/// Reads until `\n`, EOF, `cap` bytes or the deadline; returns what arrived.
async fn read_line(s: &mut TcpStream, cap: usize, limit: Duration) -> Vec<u8> {
    let mut buf = Vec::with_capacity(128);
    let mut chunk = [0u8; 512];
    let deadline = tokio::time::Instant::now() + limit;
    while buf.len() < cap && !buf.contains(&b'\n') {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n.min(cap - buf.len())]),
            _ => break,
        }
    }
    buf
}

/// Connections held open at once against one server.
pub struct Held {
    pub streams: Vec<TcpStream>,
    /// How many were refused or got no greeting.
    pub failed: usize,
}

/// Opens `n` connections to `addr` (`per_source` from each attacker address, at most 64
/// handshakes in flight), reads each one's greeting (it must start with `prefix`), sends
/// `hello` if given, and keeps them open.
pub async fn hold(
    addr: SocketAddr,
    n: usize,
    per_source: usize,
    prefix: &'static [u8],
    hello: Option<&'static [u8]>,
    limit: Duration,
) -> Held {
    use futures_util::StreamExt;
    let deadline = Instant::now() + limit;
    let results: Vec<Option<TcpStream>> = futures_util::stream::iter(0..n)
        .map(|i| async move {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut s = tokio::time::timeout(left, connect_from(source(i / per_source), addr))
                .await
                .ok()?
                .ok()?;
            let greeting = read_line(&mut s, 512, left.min(Duration::from_secs(20))).await;
            if !greeting.starts_with(prefix) {
                return None;
            }
            if let Some(h) = hello {
                s.write_all(h).await.ok()?;
            }
            Some(s)
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let failed = results.iter().filter(|r| r.is_none()).count();
    Held {
        streams: results.into_iter().flatten().collect(),
        failed,
    }
}

/// What one connection of a rate loop does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Read the greeting line (it must start with the prefix) and close.
    Greeting(&'static [u8]),
    /// FTP: read `220`, send `QUIT`, read `221`, close.
    FtpQuit,
    /// HTTP/1.1 `GET /` with `Connection: close`; read the response to EOF (≤ 1 MiB); the
    /// status must be 2xx or 3xx.
    HttpGet,
}

impl Probe {
    async fn run(self, s: &mut TcpStream) -> bool {
        let t = Duration::from_secs(10);
        match self {
            Probe::Greeting(prefix) => read_line(s, 512, t).await.starts_with(prefix),
            Probe::FtpQuit => {
                if !read_line(s, 512, t).await.starts_with(b"220") {
                    return false;
                }
                if s.write_all(b"QUIT\r\n").await.is_err() {
                    return false;
                }
                read_line(s, 512, t).await.starts_with(b"221")
            }
            Probe::HttpGet => {
                let req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: */*\r\nConnection: close\r\n\r\n";
                if s.write_all(req).await.is_err() {
                    return false;
                }
                let mut body = Vec::new();
                let mut limited = (&mut *s).take(1 << 20);
                let read = tokio::time::timeout(t, limited.read_to_end(&mut body)).await;
                if !matches!(read, Ok(Ok(_))) {
                    return false;
                }
                // A page or a redirect (OpenCanary's skins redirect `/` to their login
                // page), as a scanner's first request gets.
                body.len() > 12
                    && (body.starts_with(b"HTTP/1.1 ") || body.starts_with(b"HTTP/1.0 "))
                    && matches!(body[9], b'2' | b'3')
            }
        }
    }
}

/// Result of a rate loop.
#[derive(Debug, Clone, Copy)]
pub struct RateOut {
    pub ok: u64,
    pub failed: u64,
    pub elapsed: Duration,
}

impl RateOut {
    pub fn per_s(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// One connection with `probe`: whether it did what a client of the real service would see.
pub async fn probe_once(addr: SocketAddr, probe: Probe) -> bool {
    match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await {
        Ok(Ok(mut s)) => probe.run(&mut s).await,
        _ => false,
    }
}

/// `count` connections with `probe`, `workers` at a time (each worker from its own
/// attacker address), stopping early at `limit`.
pub async fn rate(
    addr: SocketAddr,
    probe: Probe,
    count: u64,
    workers: usize,
    limit: Duration,
) -> RateOut {
    let next = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let deadline = t + limit;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let (next, ok, failed) = (next.clone(), ok.clone(), failed.clone());
        // Sources after the ones `hold` uses, so TIME_WAIT tuples never collide.
        let src = source(400 + w);
        tasks.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < count && Instant::now() < deadline {
                let good = match connect_from(src, addr).await {
                    Ok(mut s) => probe.run(&mut s).await,
                    Err(_) => false,
                };
                if good { &ok } else { &failed }.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    RateOut {
        ok: ok.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        elapsed: t.elapsed(),
    }
}

/// Result of a `hydra` run.
#[derive(Debug, Clone)]
pub struct HydraOut {
    pub elapsed: Duration,
    pub found: u64,
}

/// `hydra -t tasks` against SSH on `port` with a fixed user and password list (none of
/// them right), in `workdir`, killed at `limit`.
pub async fn hydra_ssh(
    workdir: &Path,
    port: u16,
    users: usize,
    passwords: usize,
    tasks: usize,
    limit: Duration,
) -> Result<HydraOut> {
    std::fs::create_dir_all(workdir)?;
    let users_file = workdir.join("users.txt");
    let pw_file = workdir.join("passwords.txt");
    let user_list: Vec<String> = [
        "admin", "ubuntu", "test", "oracle", "pi", "user", "git", "postgres", "ftp", "guest",
    ]
    .iter()
    .cycle()
    .take(users)
    .enumerate()
    .map(|(i, u)| {
        if i < 10 {
            u.to_string()
        } else {
            format!("{u}{i}")
        }
    })
    .collect();
    let pw_list: Vec<String> = [
        "123456",
        "password",
        "admin",
        "12345678",
        "qwerty",
        "letmein",
        "welcome",
        "changeme",
        "raspberry",
        "toor",
    ]
    .iter()
    .cycle()
    .take(passwords)
    .enumerate()
    .map(|(i, p)| {
        if i < 10 {
            p.to_string()
        } else {
            format!("{p}{i}")
        }
    })
    .collect();
    std::fs::write(&users_file, user_list.join("\n") + "\n")?;
    std::fs::write(&pw_file, pw_list.join("\n") + "\n")?;
    let t = Instant::now();
    let mut child = Command::new("hydra")
        .current_dir(workdir)
        .arg("-I")
        .args(["-t", &tasks.to_string()])
        .arg("-L")
        .arg(&users_file)
        .arg("-P")
        .arg(&pw_file)
        .args(["-s", &port.to_string(), "ssh://127.0.0.1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("run hydra (apt-get install hydra)")?;
    let mut stdout = child.stdout.take().context("hydra stdout")?;
    let mut out = String::new();
    let read = async {
        let _ = stdout.read_to_string(&mut out).await;
        child.wait().await
    };
    match tokio::time::timeout(limit, read).await {
        Ok(status) => {
            let status = status?;
            if !status.success() && !out.contains("of which") {
                bail!("hydra failed ({status}): {out}");
            }
        }
        Err(_) => bail!("hydra ran over its {limit:?} limit"),
    }
    let found = out
        .lines()
        .find_map(|l| {
            let (n, _) = l.split_once(" valid password")?;
            n.rsplit(' ').next()?.parse().ok()
        })
        .unwrap_or(0);
    Ok(HydraOut {
        elapsed: t.elapsed(),
        found,
    })
}

/// One OpenSSH login with `sshpass`, running `command` (an exec request); returns its
/// exit success and standard output.
pub async fn ssh_exec(
    port: u16,
    user: &str,
    password: &str,
    command: &str,
) -> Result<(bool, String)> {
    let child = Command::new("sshpass")
        .args(["-p", password, "ssh", "-p", &port.to_string()])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "NumberOfPasswordPrompts=1",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "LogLevel=ERROR",
        ])
        .arg(format!("{user}@127.0.0.1"))
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("run sshpass ssh (apt-get install sshpass openssh-client)")?;
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .context("ssh ran over 30 s")??;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}
