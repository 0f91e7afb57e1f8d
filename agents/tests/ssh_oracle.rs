//! Differential tests of the SSH honeypot against the real OpenSSH server of Debian 12
//! (`/usr/sbin/sshd` from the openssh-server package, started on loopback with Debian's
//! default sshd_config): the answers to bad identification strings byte for byte, the
//! authentication methods on offer, and paramiko's one-SERVICE_REQUEST-per-attempt
//! brute forcing, which must get an answer to every attempt from both.
//! Skipped, with a message, only where /usr/sbin/sshd is not installed.

use honeybee_agent::services::{Limits, ServiceManager};
use honeybee_agent::sink::EventSink;
use honeybee_proto::config::{LoginPolicy, NodeConfig, ServiceConfig, ServiceKind, SshOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SSHD: &str = "/usr/sbin/sshd";

/// Debian 12's /etc/ssh/sshd_config, less its Include, plus what a test instance needs.
const DEBIAN_SSHD_CONFIG: &str = "KbdInteractiveAuthentication no
UsePAM yes
X11Forwarding yes
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
PidFile none
ListenAddress 127.0.0.1
";

/// A running real sshd, killed (by its own PID) when dropped.
struct Sshd {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the real sshd, or says why the test is skipped.
fn start_sshd() -> Option<Sshd> {
    if !Path::new(SSHD).exists() {
        eprintln!(
            "SKIPPED: {SSHD} is missing; install Debian's openssh-server to compare the SSH \
             honeypot with the real server"
        );
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ssh_host_ed25519_key");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
    let cfg = dir.path().join("sshd_config");
    std::fs::write(&cfg, DEBIAN_SSHD_CONFIG).unwrap();
    // sshd refuses to start without its privilege separation directory.
    let _ = std::fs::create_dir_all("/run/sshd");
    let port = free_port();
    let child = Command::new(SSHD)
        .arg("-D")
        .arg("-f")
        .arg(&cfg)
        .arg("-h")
        .arg(&key)
        .args(["-p", &port.to_string()])
        .arg("-E")
        .arg(dir.path().join("sshd.log"))
        .stdin(Stdio::null())
        .spawn()
        .expect("start sshd");
    let sshd = Sshd {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        dir,
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(sshd.addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "sshd did not start: {}",
            sshd.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(sshd)
}

/// The real sshd's identification line (without CR LF), which ours is configured to send.
async fn server_id(addr: SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n") {
        assert!(buf.len() < 256);
        s.read_exact(&mut b).await.unwrap();
        buf.push(b[0]);
    }
    String::from_utf8(buf[..buf.len() - 2].to_vec()).unwrap()
}

async fn start_honeypot(
    dir: &Path,
    server_id: &str,
) -> (
    ServiceManager,
    tokio::sync::mpsc::Receiver<honeybee_agent::sink::NewEvent>,
    SocketAddr,
) {
    let config = NodeConfig {
        services: vec![ServiceConfig {
            name: "ssh".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            enabled: true,
            kind: ServiceKind::Ssh(SshOptions {
                server_id: server_id.into(),
                auth_failure_delay_ms: 200,
                login: LoginPolicy::Never,
                ..Default::default()
            }),
        }],
    };
    let (sink, rx) = EventSink::channel(4096);
    let mut mgr = ServiceManager::new(sink, dir.to_owned(), Limits::default());
    mgr.apply(&config).await;
    let st = mgr.status();
    assert!(st[0].running, "{st:?}");
    let addr = st[0].listen.parse().unwrap();
    (mgr, rx, addr)
}

/// Sends `probe` in one write and returns what came back, with how it ended: `<EOF>`
/// (orderly close), `<RST>` (reset: OpenSSH closes with the client's bytes unread) or
/// `<OPEN>` (still waiting after the deadline). A binary packet after the identification
/// line is shown as `<PACKET type N>` (its contents are the KEXINIT, compared elsewhere).
async fn probe(addr: SocketAddr, probe: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(probe).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await {
            Err(_) => break "<OPEN>",
            Ok(Ok(0)) => break "<EOF>",
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => break "<RST>",
            Ok(Err(e)) => panic!("probe read: {e}"),
        }
        if got.len() > 64 * 1024 {
            break "<MORE>";
        }
        // The identification line, then a whole binary packet: the handshake goes on.
        if let Some(i) = got.windows(2).position(|w| w == b"\r\n") {
            let rest = &got[i + 2..];
            if rest.len() >= 6 && !rest.starts_with(b"Invalid") && !rest.starts_with(b"Protocol") {
                let head = String::from_utf8_lossy(&got[..i + 2]).into_owned();
                return format!("{head:?}<PACKET type {}>", rest[5]);
            }
        }
    };
    format!("{:?}{end}", String::from_utf8_lossy(&got))
}

/// The probes: (name, bytes, whether ours must match the real sshd's answer exactly).
fn probes() -> Vec<(&'static str, Vec<u8>)> {
    let mut binary: Vec<u8> = (0u8..=255).rev().collect();
    binary.truncate(200);
    let mut binary_nul = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03".to_vec();
    binary_nul.extend_from_slice(&[0x5a; 40]);
    vec![
        ("http request", b"GET / HTTP/1.0\r\n\r\n".to_vec()),
        ("empty line", b"\r\n".to_vec()),
        ("bare newline", b"\n".to_vec()),
        ("ssh 1.5", b"SSH-1.5-x\r\n".to_vec()),
        ("ssh 1.99", b"SSH-1.99-x\r\n".to_vec()),
        ("ssh 2.0 no software", b"SSH-2.0\r\n".to_vec()),
        ("ssh 2.0 empty software", b"SSH-2.0-\r\n".to_vec()),
        ("ssh 3.0", b"SSH-3.0-x\r\n".to_vec()),
        ("just SSH-", b"SSH-\r\n".to_vec()),
        ("lf only", b"SSH-2.0-x\n".to_vec()),
        ("space in software", b"SSH-2.0-x y\r\n".to_vec()),
        ("nul in line", b"SSH-2.0-a\x00b\r\n".to_vec()),
        ("cr in line", b"SSH-2.0-a\rb\r\n".to_vec()),
        ("banner line first", b"hello\r\nSSH-2.0-x\r\n".to_vec()),
        ("binary without newline", binary),
        ("tls client hello", binary_nul),
        (
            "300-byte line",
            [vec![b'A'; 298], b"\r\n".to_vec()].concat(),
        ),
        (
            "9000-byte line",
            [vec![b'A'; 9000], b"\r\n".to_vec()].concat(),
        ),
        ("probe compat", b"SSH-2.0-Probe-x\r\n".to_vec()),
        ("scanner compat", b"SSH-2.0-SSH_Version_Mapper\r\n".to_vec()),
    ]
}

/// Probes OpenSSH accepts that russh (which re-reads and hashes the line) cannot take:
/// version lines over 255 bytes and protocol versions other than "2.0" and "1.99".
fn known_differences() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "298-byte version line",
            [b"SSH-2.0-".to_vec(), vec![b'B'; 288], b"\r\n".to_vec()].concat(),
        ),
        ("ssh 2.5", b"SSH-2.5-x\r\n".to_vec()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identification_answers_match_openssh_byte_for_byte() {
    let Some(sshd) = start_sshd() else { return };
    let id = server_id(sshd.addr).await;
    assert!(id.starts_with("SSH-2.0-OpenSSH_9.2p1 Debian"), "{id}");
    let dir = tempfile::tempdir().unwrap();
    let (_mgr, _rx, ours) = start_honeypot(dir.path(), &id).await;

    let all = probes();
    // One probe at a time: sshd answers "Exceeded MaxStartups" beyond 10 unauthenticated
    // connections (each pair runs side by side).
    let mut answers = Vec::new();
    for (_, p) in &all {
        answers.push(tokio::join!(probe(sshd.addr, p), probe(ours, p)));
    }
    let mut mismatches = Vec::new();
    for ((name, _), (real, honeypot)) in all.iter().zip(&answers) {
        eprintln!("{name}:\n  sshd:     {real}\n  honeypot: {honeypot}");
        if real != honeypot {
            mismatches.push(*name);
        }
    }
    assert!(mismatches.is_empty(), "differ from OpenSSH: {mismatches:?}");
    // The message answers really are OpenSSH's (not, say, both silent).
    let real_http = &answers[0].0;
    assert!(
        real_http.ends_with(r#"Invalid SSH identification string.\r\n"<RST>"#),
        "{real_http}"
    );
    assert!(answers[3].0.contains("Protocol major versions differ."));

    // Where russh cannot follow OpenSSH: written down, and still a clean close.
    for (name, p) in known_differences() {
        let (real, honeypot) = tokio::join!(probe(sshd.addr, &p), probe(ours, &p));
        eprintln!("known difference, {name}:\n  sshd:     {real}\n  honeypot: {honeypot}");
        assert!(real.contains("<PACKET type 20>"), "{real}");
        assert!(honeypot.ends_with("<EOF>"), "{honeypot}");
    }
    drop(sshd);
}

/// "Authentications that can continue:" as the OpenSSH client reports it for a `none`
/// request, and its final "Permission denied" line.
fn methods_seen(addr: SocketAddr) -> (String, String) {
    let out = Command::new("ssh")
        .args([
            "-v",
            "-o",
            "PreferredAuthentications=none",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
            "-p",
            &addr.port().to_string(),
            "root@127.0.0.1",
            "true",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("ssh client");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let pick = |needle: &str| {
        err.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{err}"))
            .to_owned()
    };
    let denied = pick("Permission denied").replace(&addr.port().to_string(), "PORT");
    (pick("Authentications that can continue:"), denied)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offered_methods_match_openssh() {
    let Some(sshd) = start_sshd() else { return };
    let id = server_id(sshd.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let (_mgr, _rx, ours) = start_honeypot(dir.path(), &id).await;
    let real_addr = sshd.addr;
    let real = tokio::task::spawn_blocking(move || methods_seen(real_addr))
        .await
        .unwrap();
    let honeypot = tokio::task::spawn_blocking(move || methods_seen(ours))
        .await
        .unwrap();
    eprintln!("sshd:     {real:?}\nhoneypot: {honeypot:?}");
    assert_eq!(
        real.0,
        "debug1: Authentications that can continue: publickey,password"
    );
    assert_eq!(real, honeypot);
}

fn venv_python() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../modules/examples/.venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/test.sh, or `python3 -m venv modules/examples/.venv && \
         modules/examples/.venv/bin/pip install -r modules/examples/requirements-test.txt`",
        p.display()
    );
    p
}

/// paramiko's Transport sends a SERVICE_REQUEST before every authentication attempt; it
/// reports each attempt's outcome (or the timeout it hit waiting for an answer).
const PARAMIKO_SCRIPT: &str = r#"
import socket, sys, paramiko
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
t = paramiko.Transport(sock)
t.start_client(timeout=20)
t.auth_timeout = 15
out = []
def attempt(f):
    try:
        f()
        out.append("ok")
    except paramiko.BadAuthenticationType as e:
        out.append("bad-type:" + ",".join(e.allowed_types))
    except paramiko.AuthenticationException as e:
        # Unpatched russh never answered the second SERVICE_REQUEST: paramiko gave up.
        out.append("timeout" if "timeout" in str(e).lower() else "failed")
    except paramiko.SSHException as e:
        out.append("error:" + str(e))
attempt(lambda: t.auth_none("root"))
for pw in ("123456", "admin", "root"):
    attempt(lambda: t.auth_password("root", pw))
    if not t.is_active():
        out.append("closed")
        break
print(" ".join(out))
t.close()
"#;

fn paramiko_attempts(addr: SocketAddr) -> String {
    let out = Command::new(venv_python())
        .args(["-c", PARAMIKO_SCRIPT, &addr.port().to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "paramiko failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paramiko_gets_an_answer_to_every_attempt_as_from_openssh() {
    let Some(sshd) = start_sshd() else { return };
    let python = venv_python();
    assert!(
        Command::new(&python)
            .args(["-c", "import paramiko"])
            .status()
            .unwrap()
            .success(),
        "paramiko is missing from modules/examples/.venv: pip install -r \
         modules/examples/requirements-test.txt"
    );
    let id = server_id(sshd.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let (_mgr, mut rx, ours) = start_honeypot(dir.path(), &id).await;
    let real_addr = sshd.addr;
    let (real, honeypot) = tokio::join!(
        tokio::task::spawn_blocking(move || paramiko_attempts(real_addr)),
        tokio::task::spawn_blocking(move || paramiko_attempts(ours)),
    );
    let (real, honeypot) = (real.unwrap(), honeypot.unwrap());
    eprintln!("sshd:     {real}\nhoneypot: {honeypot}");
    assert_eq!(
        real,
        "bad-type:publickey,password failed failed failed",
        "sshd log: {}",
        sshd.log()
    );
    assert_eq!(real, honeypot);
    // Every password reached the honeypot and was recorded.
    let mut passwords = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while passwords.len() < 3 && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(e)) => {
                if let honeybee_proto::event::EventKind::AuthAttempt(a) = e.kind
                    && let Some(p) = a.password
                {
                    passwords.push(p);
                }
            }
            _ => break,
        }
    }
    assert_eq!(passwords, ["123456", "admin", "root"]);
}
