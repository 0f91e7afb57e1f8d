//! Differential tests of the SSH honeypot against the real OpenSSH server of Debian 12
//! (`/usr/sbin/sshd` from the openssh-server package, started on loopback with Debian's
//! default sshd_config): the answers to bad identification strings byte for byte, the
//! authentication methods on offer, and paramiko's one-SERVICE_REQUEST-per-attempt
//! brute forcing, which must get an answer to every attempt from both; the transport: the
//! KEXINIT's name-lists, the host keys on offer (ssh-keyscan), the SSH_MSG_EXT_INFO
//! extensions and the DH group-exchange group size, with the real sshd holding Debian's
//! three host keys (RSA, ECDSA, Ed25519) as its package creates them; and OpenSSH client
//! logins to the honeypot with each algorithm OpenSSH 9.2 offers that russh lacked
//! (sntrup761x25519, umac-64/128 with and without -etm, each host key type); and the
//! answer to a client KEXINIT with nothing in common.
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
StrictModes no
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
    // Debian's postinst runs `ssh-keygen -A`: RSA (3072 bits), ECDSA (P-256), Ed25519.
    let mut keys = Vec::new();
    for kind in ["rsa", "ecdsa", "ed25519"] {
        let key = dir.path().join(format!("ssh_host_{kind}_key"));
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", "", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen");
        assert!(st.success());
        keys.push(key);
    }
    // Root may log in with the test's own key (post-authentication comparisons);
    // changes nothing before authentication.
    let client = dir.path().join("client");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&client)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
    std::fs::copy(
        dir.path().join("client.pub"),
        dir.path().join("authorized_keys"),
    )
    .unwrap();
    let cfg = dir.path().join("sshd_config");
    std::fs::write(
        &cfg,
        format!(
            "{DEBIAN_SSHD_CONFIG}AuthorizedKeysFile {}\n",
            dir.path().join("authorized_keys").display()
        ),
    )
    .unwrap();
    // sshd refuses to start without its privilege separation directory.
    let _ = std::fs::create_dir_all("/run/sshd");
    let port = free_port();
    let child = Command::new(SSHD)
        .arg("-D")
        .arg("-f")
        .arg(&cfg)
        .args(
            keys.iter()
                .flat_map(|k| [std::ffi::OsStr::new("-h"), k.as_os_str()]),
        )
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
    start_honeypot_with(dir, server_id, LoginPolicy::Never).await
}

async fn start_honeypot_with(
    dir: &Path,
    server_id: &str,
    login: LoginPolicy,
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
                login,
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

/// A server's first binary packet, its KEXINIT, as the wire carries it.
#[derive(Debug, PartialEq, Eq)]
struct KexInit {
    /// kex, host key, ciphers c2s/s2c, MACs c2s/s2c, compression c2s/s2c, languages.
    lists: Vec<String>,
    first_kex_packet_follows: u8,
    reserved: u32,
    /// packet_length and padding_length: OpenSSH pads a plaintext packet to a multiple of
    /// 8 with 4 to 11 bytes, so equal lists give equal lengths.
    packet_len: u32,
    padding_len: u8,
}

const KEXINIT_NAMES: [&str; 10] = [
    "kex",
    "host key",
    "cipher c2s",
    "cipher s2c",
    "mac c2s",
    "mac s2c",
    "compression c2s",
    "compression s2c",
    "language c2s",
    "language s2c",
];

/// Sends an OpenSSH client's identification line and reads the server's line and KEXINIT.
async fn read_kexinit(addr: SocketAddr) -> KexInit {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10\r\n")
        .await
        .unwrap();
    let read = async {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            assert!(line.len() < 256, "no identification line");
            s.read_exact(&mut b).await.unwrap();
            line.push(b[0]);
        }
        let packet_len = s.read_u32().await.unwrap();
        assert!((16..35000).contains(&packet_len), "{packet_len}");
        let mut packet = vec![0u8; packet_len as usize];
        s.read_exact(&mut packet).await.unwrap();
        packet
    };
    let packet = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("KEXINIT in time");
    let padding_len = packet[0];
    let payload = &packet[1..packet.len() - usize::from(padding_len)];
    assert_eq!(payload[0], 20, "SSH_MSG_KEXINIT");
    let mut rest = &payload[17..]; // type and cookie
    let mut take = |n: usize| {
        let (a, b) = rest.split_at(n);
        rest = b;
        a.to_vec()
    };
    let mut lists = Vec::new();
    for _ in KEXINIT_NAMES {
        let len = u32::from_be_bytes(take(4).try_into().unwrap()) as usize;
        lists.push(String::from_utf8(take(len)).unwrap());
    }
    let first_kex_packet_follows = take(1)[0];
    let reserved = u32::from_be_bytes(take(4).try_into().unwrap());
    assert!(rest.is_empty(), "bytes after the KEXINIT fields: {rest:?}");
    KexInit {
        lists,
        first_kex_packet_follows,
        reserved,
        packet_len: packet.len() as u32,
        padding_len,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kexinit_matches_openssh() {
    let Some(sshd) = start_sshd() else { return };
    let id = server_id(sshd.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let (_mgr, _rx, ours) = start_honeypot(dir.path(), &id).await;
    let real = read_kexinit(sshd.addr).await;
    let honeypot = read_kexinit(ours).await;
    for (i, name) in KEXINIT_NAMES.iter().enumerate() {
        eprintln!(
            "{name}:\n  sshd:     {}\n  honeypot: {}",
            real.lists[i], honeypot.lists[i]
        );
    }
    // The real server's lists are Debian 12's (the Terrapin fix, sntrup761 under both
    // names, umac, three host key types): the oracle is the server we think it is.
    assert!(
        real.lists[0].starts_with("sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,"),
        "{}",
        real.lists[0]
    );
    assert!(real.lists[0].ends_with(",kex-strict-s-v00@openssh.com"));
    assert_eq!(
        real.lists[1],
        "rsa-sha2-512,rsa-sha2-256,ecdsa-sha2-nistp256,ssh-ed25519"
    );
    assert_eq!(real, honeypot);
}

/// The key types `ssh-keyscan -t rsa,ecdsa,ed25519` gets, in the order it prints them.
fn keyscan_types(addr: SocketAddr) -> Vec<String> {
    let out = Command::new("ssh-keyscan")
        .args(["-T", "10", "-t", "rsa,ecdsa,ed25519", "-p"])
        .arg(addr.port().to_string())
        .arg("127.0.0.1")
        .stdin(Stdio::null())
        .output()
        .expect("ssh-keyscan");
    let mut types: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
        .collect();
    types.sort();
    types
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_keys_match_openssh() {
    let Some(sshd) = start_sshd() else { return };
    let id = server_id(sshd.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let (_mgr, _rx, ours) = start_honeypot(dir.path(), &id).await;
    let real_addr = sshd.addr;
    let real = tokio::task::spawn_blocking(move || keyscan_types(real_addr))
        .await
        .unwrap();
    let honeypot = tokio::task::spawn_blocking(move || keyscan_types(ours))
        .await
        .unwrap();
    eprintln!("sshd:     {real:?}\nhoneypot: {honeypot:?}");
    assert_eq!(real, ["ecdsa-sha2-nistp256", "ssh-ed25519", "ssh-rsa"]);
    assert_eq!(real, honeypot);
    // Debian's file names, and the RSA key is ssh-keygen's 3072 bits.
    for file in [
        "ssh_host_rsa_key",
        "ssh_host_ecdsa_key",
        "ssh_host_ed25519_key",
    ] {
        assert!(dir.path().join(file).exists(), "{file}");
    }
    let rsa = std::fs::read_to_string(dir.path().join("ssh_host_rsa_key")).unwrap();
    let rsa = russh::keys::PrivateKey::from_openssh(rsa).unwrap();
    let bits = rsa.key_data().rsa().map(|k| k.key_size());
    assert_eq!(bits, Some(3072));
}

/// What an OpenSSH client at `-vvv` reports (lines containing `needle`), with the port
/// replaced, for a connection that offers no authentication.
fn client_debug(addr: SocketAddr, extra: &[&str], needle: &str) -> Vec<String> {
    let out = Command::new("ssh")
        .args(["-vvv", "-F", "/dev/null"])
        .args(extra)
        .args([
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
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(needle))
        .map(|l| l.replace(&addr.port().to_string(), "PORT"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ext_info_matches_openssh() {
    let Some(sshd) = start_sshd() else { return };
    let id = server_id(sshd.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let (_mgr, _rx, ours) = start_honeypot(dir.path(), &id).await;
    let real_addr = sshd.addr;
    let needle = "kex_input_ext_info:";
    let real = tokio::task::spawn_blocking(move || client_debug(real_addr, &[], needle))
        .await
        .unwrap();
    let honeypot = tokio::task::spawn_blocking(move || client_debug(ours, &[], needle))
        .await
        .unwrap();
    eprintln!("sshd:     {real:#?}\nhoneypot: {honeypot:#?}");
    assert!(
        real.iter()
            .any(|l| l.contains("server-sig-algs=<ssh-ed25519,")),
        "{real:?}"
    );
    assert!(
        real.iter()
            .any(|l| l.contains("publickey-hostbound@openssh.com=<0>")),
        "{real:?}"
    );
    assert_eq!(real, honeypot);
}

/// The DH group size the server picked for a group-exchange request (the client's
/// "bits set: N/SIZE" lines), and the request the client sent.
fn gex_seen(addr: SocketAddr, extra: &[&str]) -> (Vec<String>, Vec<String>) {
    let mut opts = vec!["-o", "KexAlgorithms=diffie-hellman-group-exchange-sha256"];
    opts.extend_from_slice(extra);
    let request = client_debug(addr, &opts, "SSH2_MSG_KEX_DH_GEX_REQUEST");
    let sizes = client_debug(addr, &opts, "bits set:")
        .iter()
        .filter_map(|l| l.rsplit('/').next().map(str::to_owned))
        .collect();
    (request, sizes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dh_group_exchange_sizes_match_openssh() {
    let Some(sshd) = start_sshd() else { return };
    let id = server_id(sshd.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let (_mgr, _rx, ours) = start_honeypot(dir.path(), &id).await;
    // chacha20-poly1305 makes the client ask for 8192 bits; aes128-ctr with umac-64 for
    // 3072 (OpenSSH's dh_estimate of the cipher's strength).
    for extra in [
        &[][..],
        &[
            "-o",
            "Ciphers=aes128-ctr",
            "-o",
            "MACs=umac-64-etm@openssh.com",
        ][..],
        &["-o", "Ciphers=aes192-ctr", "-o", "MACs=hmac-sha1"][..],
    ] {
        let real_addr = sshd.addr;
        let e: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let e2 = e.clone();
        let real = tokio::task::spawn_blocking(move || {
            gex_seen(real_addr, &e.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap();
        let honeypot = tokio::task::spawn_blocking(move || {
            gex_seen(ours, &e2.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap();
        eprintln!("{extra:?}\n  sshd:     {real:?}\n  honeypot: {honeypot:?}");
        assert!(!real.1.is_empty(), "{real:?}");
        assert_eq!(real, honeypot, "{extra:?}");
    }
}

/// Logs in to the honeypot with the real OpenSSH client forced to `opts`, runs a command
/// and returns the client's `-v` lines naming the negotiated algorithms.
fn login_with(addr: SocketAddr, opts: &[&str]) -> Vec<String> {
    let out = Command::new("sshpass")
        .args(["-p", "hunter2", "ssh", "-v", "-F", "/dev/null"])
        .args(opts)
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
            "ConnectTimeout=10",
            "-o",
            "NumberOfPasswordPrompts=1",
            "-p",
            &addr.port().to_string(),
            "root@127.0.0.1",
            "echo logged-in",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("sshpass ssh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "logged-in\n",
        "{opts:?}: {stderr}"
    );
    stderr
        .lines()
        .filter(|l| l.contains("kex: ") || l.contains("Server host key:"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssh_logs_in_with_every_algorithm_debian_offers() {
    let dir = tempfile::tempdir().unwrap();
    let (_mgr, _rx, ours) = start_honeypot_with(
        dir.path(),
        "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10",
        LoginPolicy::Always,
    )
    .await;
    let cases: &[(&[&str], &str)] = &[
        (
            &["-o", "KexAlgorithms=sntrup761x25519-sha512@openssh.com"],
            "kex: algorithm: sntrup761x25519-sha512@openssh.com",
        ),
        (
            &["-o", "KexAlgorithms=sntrup761x25519-sha512"],
            "kex: algorithm: sntrup761x25519-sha512",
        ),
        (
            &[
                "-o",
                "Ciphers=aes128-ctr",
                "-o",
                "MACs=umac-64-etm@openssh.com",
            ],
            "cipher: aes128-ctr MAC: umac-64-etm@openssh.com",
        ),
        (
            &[
                "-o",
                "Ciphers=aes128-ctr",
                "-o",
                "MACs=umac-128-etm@openssh.com",
            ],
            "cipher: aes128-ctr MAC: umac-128-etm@openssh.com",
        ),
        (
            &["-o", "Ciphers=aes256-ctr", "-o", "MACs=umac-64@openssh.com"],
            "cipher: aes256-ctr MAC: umac-64@openssh.com",
        ),
        (
            &[
                "-o",
                "Ciphers=aes192-ctr",
                "-o",
                "MACs=umac-128@openssh.com",
            ],
            "cipher: aes192-ctr MAC: umac-128@openssh.com",
        ),
        (
            &["-o", "HostKeyAlgorithms=rsa-sha2-512"],
            "kex: host key algorithm: rsa-sha2-512",
        ),
        (
            &["-o", "HostKeyAlgorithms=rsa-sha2-256"],
            "kex: host key algorithm: rsa-sha2-256",
        ),
        (
            &["-o", "HostKeyAlgorithms=ecdsa-sha2-nistp256"],
            "kex: host key algorithm: ecdsa-sha2-nistp256",
        ),
        (
            &["-o", "HostKeyAlgorithms=ssh-ed25519"],
            "kex: host key algorithm: ssh-ed25519",
        ),
        (
            &["-o", "KexAlgorithms=diffie-hellman-group-exchange-sha256"],
            "kex: algorithm: diffie-hellman-group-exchange-sha256",
        ),
        (&["-o", "Compression=yes"], "compression: zlib@openssh.com"),
    ];
    for (opts, want) in cases {
        let opts: Vec<String> = opts.iter().map(|s| s.to_string()).collect();
        let seen = tokio::task::spawn_blocking(move || {
            login_with(ours, &opts.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap();
        assert!(seen.iter().any(|l| l.contains(want)), "{want}: {seen:#?}");
    }
}

/// A client KEXINIT offering `lists` (10 name-lists), as one unencrypted packet.
fn client_kexinit(lists: &[&str; 10]) -> Vec<u8> {
    let mut payload = vec![20u8];
    payload.extend_from_slice(&[0x42; 16]);
    for l in lists {
        payload.extend_from_slice(&(l.len() as u32).to_be_bytes());
        payload.extend_from_slice(l.as_bytes());
    }
    payload.extend_from_slice(&[0, 0, 0, 0, 0]);
    let mut pad = 8 - (payload.len() + 5) % 8;
    if pad < 4 {
        pad += 8;
    }
    let mut packet = ((payload.len() + pad + 1) as u32).to_be_bytes().to_vec();
    packet.push(pad as u8);
    packet.extend_from_slice(&payload);
    packet.extend(std::iter::repeat_n(0u8, pad));
    packet
}

/// What a server sends after its KEXINIT when the client's KEXINIT has nothing in common
/// with it in one list, and how the connection ends.
async fn after_bad_kexinit(addr: SocketAddr, lists: &[&str; 10]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // The server's identification line and KEXINIT come first.
    let head = loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("server KEXINIT in time")
            .unwrap();
        assert!(n > 0, "closed before its KEXINIT");
        got.extend_from_slice(&buf[..n]);
        if let Some(i) = got.windows(2).position(|w| w == b"\r\n") {
            let rest = &got[i + 2..];
            if rest.len() >= 4 {
                let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
                if rest.len() >= 4 + len {
                    break i + 2 + 4 + len;
                }
            }
        }
    };
    let mut after = got.split_off(head);
    s.write_all(&client_kexinit(lists)).await.unwrap();
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Err(_) => break "<OPEN>",
            Ok(Ok(0)) => break "<EOF>",
            Ok(Ok(n)) => after.extend_from_slice(&buf[..n]),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => break "<RST>",
            Ok(Err(e)) => panic!("read: {e}"),
        }
        if after.len() > 64 * 1024 {
            break "<MORE>";
        }
    };
    format!("{:?}{end}", String::from_utf8_lossy(&after))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_common_algorithm_answered_as_openssh() {
    let Some(sshd) = start_sshd() else { return };
    let id = server_id(sshd.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let (_mgr, _rx, ours) = start_honeypot(dir.path(), &id).await;
    let good = [
        "curve25519-sha256",
        "ssh-ed25519",
        "aes128-ctr",
        "aes128-ctr",
        "hmac-sha2-256",
        "hmac-sha2-256",
        "none",
        "none",
        "",
        "",
    ];
    let mut mismatches = Vec::new();
    for (i, bogus) in [
        (0, "diffie-hellman-group1-sha1"),
        (1, "ssh-dss"),
        // RSA with SHA-1: OpenSSH 9.2 no longer signs with it.
        (1, "ssh-rsa"),
        (2, "3des-cbc"),
        (4, "hmac-md5"),
        (6, "zlib"),
    ] {
        let mut lists = good;
        lists[i] = bogus;
        if i == 2 || i == 4 || i == 6 {
            lists[i + 1] = bogus;
        }
        let (real, honeypot) = tokio::join!(
            after_bad_kexinit(sshd.addr, &lists),
            after_bad_kexinit(ours, &lists)
        );
        eprintln!("{bogus}:\n  sshd:     {real}\n  honeypot: {honeypot}");
        // sshd logs "no matching ... found" and hangs up without a word (no DISCONNECT).
        assert_eq!(real, r#"""<EOF>"#, "{bogus}");
        if real != honeypot {
            mismatches.push(bogus);
        }
    }
    assert!(mismatches.is_empty(), "differ from OpenSSH: {mismatches:?}");
}

/// paramiko completes the key exchange, then sends one message of type `argv[2]` before
/// authenticating; it reports whether the server is still there and what it answered
/// (SSH_MSG_UNIMPLEMENTED shows as "unhandled type 3", a DISCONNECT with its reason).
const UNEXPECTED_MESSAGE_SCRIPT: &str = r#"
import socket, sys, time, logging, paramiko
logs = []
class H(logging.Handler):
    def emit(self, r): logs.append(r.getMessage())
lg = logging.getLogger("paramiko"); lg.setLevel(logging.DEBUG); lg.addHandler(H())
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
t = paramiko.Transport(sock)
# SSH_MSG_UNIMPLEMENTED names the sequence number of the packet it refuses.
t._handler_table = dict(t._handler_table)
t._handler_table[3] = lambda m: logs.append("unhandled type 3, seq %d" % m.get_int())
t.start_client(timeout=20)
m = paramiko.Message(); m.add_byte(bytes([int(sys.argv[2])])); m.add_string("x")
t._send_user_message(m)
deadline = time.time() + 3
while time.time() < deadline and t.is_active() and not any("unhandled type" in l for l in logs):
    time.sleep(0.05)
out = ["active" if t.is_active() else "closed"]
out += [l for l in logs if "unhandled type" in l or l.startswith("Disconnect")]
print(" | ".join(out))
t.close()
"#;

fn unexpected_message(addr: SocketAddr, msg_type: u8) -> String {
    let out = Command::new(venv_python())
        .args([
            "-c",
            UNEXPECTED_MESSAGE_SCRIPT,
            &addr.port().to_string(),
            &msg_type.to_string(),
        ])
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
async fn unexpected_messages_answered_as_openssh() {
    let Some(sshd) = start_sshd() else { return };
    let id = server_id(sshd.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let (_mgr, _rx, ours) = start_honeypot(dir.path(), &id).await;
    let mut mismatches = Vec::new();
    // IGNORE, DEBUG, an unassigned type, a connection-protocol message before
    // authentication, a local-extension type.
    for t in [2u8, 4, 70, 90, 200] {
        let real_addr = sshd.addr;
        let (real, honeypot) = tokio::join!(
            tokio::task::spawn_blocking(move || unexpected_message(real_addr, t)),
            tokio::task::spawn_blocking(move || unexpected_message(ours, t)),
        );
        let (real, honeypot) = (real.unwrap(), honeypot.unwrap());
        eprintln!("type {t}:\n  sshd:     {real}\n  honeypot: {honeypot}");
        if t == 70 {
            assert!(real.contains("unhandled type 3, seq "), "{real}");
        }
        if real != honeypot {
            mismatches.push(t);
        }
    }
    assert!(mismatches.is_empty(), "differ from OpenSSH: {mismatches:?}");
}

/// After authentication both servers announce their three host keys
/// (`hostkeys-00@openssh.com`), and a client with `UpdateHostKeys=yes` whose known_hosts
/// holds only the Ed25519 key asks them to prove the other two
/// (`hostkeys-prove-00@openssh.com`) and learns RSA and ECDSA: the same `ssh -v` lines
/// (fingerprints and ports normalised) and the same key types added to known_hosts.
/// The real sshd lets root in with the test's key; the honeypot with a password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_keys_announced_and_proved_as_openssh() {
    let Some(sshd) = start_sshd() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (mut mgr, _rx, addr) =
        start_honeypot_with(dir.path(), &server_id(sshd.addr).await, LoginPolicy::Always).await;
    let work = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for (name, a, key) in [
        ("sshd", sshd.addr, Some(sshd.dir.path().join("client"))),
        ("honeypot", addr, None),
    ] {
        let kh = work.path().join(format!("known_hosts_{name}"));
        let scan = Command::new("ssh-keyscan")
            .args(["-t", "ed25519", "-p", &a.port().to_string(), "127.0.0.1"])
            .stderr(Stdio::null())
            .output()
            .expect("ssh-keyscan");
        std::fs::write(&kh, &scan.stdout).unwrap();
        let kh_shown = kh.display().to_string();
        let out = tokio::task::spawn_blocking(move || {
            let mut cmd = match &key {
                Some(_) => Command::new("ssh"),
                None => {
                    let mut c = Command::new("sshpass");
                    c.args(["-p", "hunter2", "ssh"]);
                    c
                }
            };
            cmd.args(["-v", "-F", "/dev/null", "-o", "UpdateHostKeys=yes"])
                .arg("-o")
                .arg(format!("UserKnownHostsFile={}", kh.display()))
                .args([
                    "-o",
                    "GlobalKnownHostsFile=/dev/null",
                    "-o",
                    "StrictHostKeyChecking=yes",
                    "-o",
                    "ConnectTimeout=10",
                ]);
            match &key {
                Some(k) => {
                    cmd.args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i"])
                        .arg(k);
                }
                None => {
                    cmd.args([
                        "-o",
                        "PreferredAuthentications=password",
                        "-o",
                        "PubkeyAuthentication=no",
                    ]);
                }
            }
            let out = cmd
                .args(["-p", &a.port().to_string(), "root@127.0.0.1", "true"])
                .stdin(Stdio::null())
                .output()
                .expect("ssh");
            let known = std::fs::read_to_string(&kh).unwrap();
            (out, known)
        })
        .await
        .unwrap();
        let (out, known) = out;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{name}: {stderr}");
        let lines: Vec<String> = stderr
            .lines()
            .filter(|l| {
                l.contains("hostkeys")
                    || l.contains("hostkey")
                    || l.contains("global_request")
                    || l.contains("known_hosts")
                    || l.contains("update_known_hosts")
            })
            .filter(|l| !l.contains("load_hostkeys") && !l.contains("record_hostkey"))
            .map(|l| {
                let l = l
                    .replace(&kh_shown, "KNOWN_HOSTS")
                    .replace(&a.port().to_string(), "PORT");
                normalise_fingerprints(&l)
            })
            .collect();
        let mut types: Vec<String> = known
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1).map(str::to_owned))
            .collect();
        types.sort();
        seen.push((name, lines, types));
    }
    let (_, real_lines, real_types) = &seen[0];
    let (_, our_lines, our_types) = &seen[1];
    assert_eq!(
        real_types,
        &["ecdsa-sha2-nistp256", "ssh-ed25519", "ssh-rsa"],
        "the real sshd taught the client its keys: {real_lines:#?}"
    );
    assert_eq!(our_types, real_types, "{our_lines:#?}");
    assert_eq!(our_lines, real_lines);
    mgr.shutdown().await;
}

/// `SHA256:` + base64 fingerprints replaced by `SHA256:FP`.
fn normalise_fingerprints(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find("SHA256:") {
        out.push_str(&rest[..i + 7]);
        out.push_str("FP");
        rest = &rest[i + 7..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '='))
            .unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}
