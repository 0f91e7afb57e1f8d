//! Persistence with the real OpenSSH client: what one session writes (an
//! `authorized_keys`, a crontab, a file in /tmp, a file uploaded with SFTP) is there in
//! the next session from the same source, not for another source (127.0.0.2 on
//! loopback), and still there after the agent's services are stopped and started again
//! on the same data directory.

mod tools;

use honeybee_agent::services::{Limits, ServiceManager};
use honeybee_agent::sink::{EventSink, NewEvent};
use honeybee_proto::config::{
    LoginPolicy, NodeConfig, ServiceConfig, ServiceKind, SshOptions, TelnetOptions,
};
use honeybee_proto::event::EventKind;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(15);
const PASSWORD: &str = "hunter2";

struct Node {
    mgr: ServiceManager,
    rx: mpsc::Receiver<NewEvent>,
    addr: SocketAddr,
    telnet: SocketAddr,
    disconnects: usize,
}

async fn start(state: &Path) -> Node {
    let (sink, rx) = EventSink::channel(16 * 1024);
    let mut mgr = ServiceManager::new(sink, state.to_path_buf(), Limits::default());
    let services = vec![
        ServiceConfig {
            name: "ssh".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            enabled: true,
            kind: ServiceKind::Ssh(SshOptions {
                auth_failure_delay_ms: 10,
                login: LoginPolicy::Always,
                ..Default::default()
            }),
        },
        ServiceConfig {
            name: "telnet".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            enabled: true,
            kind: ServiceKind::Telnet(TelnetOptions {
                auth_failure_delay_ms: 10,
                login: LoginPolicy::Always,
                hostname: "web01".into(),
                ..Default::default()
            }),
        },
    ];
    mgr.apply(&NodeConfig { services }).await;
    let st = mgr.status();
    assert!(st[0].running && st[1].running, "{st:?}");
    Node {
        addr: st[0].listen.parse().unwrap(),
        telnet: st[1].listen.parse().unwrap(),
        mgr,
        rx,
        disconnects: 0,
    }
}

impl Node {
    /// Waits until the server has ended one more connection (the overlay is kept when
    /// the connection ends, which may be a moment after the client exits).
    async fn connection_ended(&mut self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let want = self.disconnects + 1;
        while self.disconnects < want {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(e)) => {
                    if matches!(e.kind, EventKind::Disconnect { .. }) {
                        self.disconnects += 1;
                    }
                }
                _ => panic!("timed out waiting for the connection's end"),
            }
        }
    }

    /// `ssh -b FROM root@127.0.0.1 COMMAND` (or `sftp -b -` with `sftp`), then waits for
    /// the server's side to end; returns stdout.
    async fn ssh(&mut self, from: &str, command: &str, sftp: Option<&str>) -> String {
        let (addr, from, command, sftp) = (
            self.addr,
            from.to_owned(),
            command.to_owned(),
            sftp.map(str::to_owned),
        );
        let out = tokio::task::spawn_blocking(move || run(addr, &from, &command, sftp))
            .await
            .unwrap();
        self.connection_ended().await;
        out
    }
}

fn run(addr: SocketAddr, from: &str, command: &str, sftp: Option<String>) -> String {
    let mut cmd = Command::new("sshpass");
    cmd.args(["-p", PASSWORD]);
    cmd.arg(if sftp.is_some() { "sftp" } else { "ssh" });
    cmd.args([
        "-F",
        "/dev/null",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=error",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "PreferredAuthentications=password",
        "-o",
        "PubkeyAuthentication=no",
        "-o",
        "BatchMode=no",
        "-o",
    ]);
    cmd.arg(format!("BindAddress={from}"));
    if sftp.is_some() {
        cmd.args(["-P", &addr.port().to_string(), "-b", "-", "root@127.0.0.1"]);
    } else {
        cmd.args(["-p", &addr.port().to_string(), "root@127.0.0.1", command]);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start the client");
    {
        use std::io::Write;
        let mut i = child.stdin.take().unwrap();
        let _ = i.write_all(sftp.unwrap_or_default().as_bytes());
    }
    let deadline = Instant::now() + WAIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the client did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{command}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPersistTestKeyPersistTestKeyPersist bot";
const LOOK: &str = "cat ~/.ssh/authorized_keys; crontab -l; cat /tmp/.x; cat /tmp/up.txt; ls /root";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_source_writes_is_there_next_session_and_after_a_restart() {
    tools::require(&["ssh", "sftp", "sshpass"]);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let up = dir.path().join("up.txt");
    std::fs::write(&up, "uploaded\n").unwrap();
    let mut node = start(&state).await;

    let write = format!(
        "mkdir -p ~/.ssh && echo '{KEY}' >> ~/.ssh/authorized_keys && \
         echo '* * * * * /tmp/.x' | crontab - && echo miner > /tmp/.x && rm /root/.bashrc"
    );
    node.ssh("127.0.0.1", &write, None).await;
    node.ssh(
        "127.0.0.1",
        "",
        Some(&format!("put {} /tmp/up.txt\n", up.display())),
    )
    .await;

    let expect = |out: &str| {
        assert!(out.contains(KEY), "{out}");
        assert!(out.contains("* * * * * /tmp/.x"), "{out}");
        assert!(out.contains("miner"), "{out}");
        assert!(out.contains("uploaded"), "{out}");
        // The deletion is kept too.
        assert!(!out.contains(".bashrc"), "{out}");
    };
    let out = node
        .ssh("127.0.0.1", &format!("{LOOK}; ls -a /root"), None)
        .await;
    expect(&out);

    // Another source finds the machine as it was.
    let other = node
        .ssh(
            "127.0.0.2",
            "cat ~/.ssh/authorized_keys /tmp/.x /tmp/up.txt; crontab -l; ls -a /root; true",
            None,
        )
        .await;
    assert!(!other.contains(KEY) && !other.contains("miner"), "{other}");
    assert!(other.contains(".bashrc"), "{other}");

    // Stopped and started again on the same data directory.
    node.mgr.shutdown().await;
    assert!(state.join("shell-overlays.bin").exists());
    let mut node = start(&state).await;
    let out = node
        .ssh("127.0.0.1", &format!("{LOOK}; ls -a /root"), None)
        .await;
    expect(&out);
    node.mgr.shutdown().await;
}

/// The `telnet` client (inetutils), read as its output comes.
struct Telnet {
    _child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::process::ChildStdout,
    seen: Vec<u8>,
}

impl Telnet {
    fn spawn(addr: SocketAddr) -> Telnet {
        let mut child = tokio::process::Command::new("telnet")
            .args(["127.0.0.1", &addr.port().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Telnet {
            stdin: child.stdin.take().unwrap(),
            stdout: child.stdout.take().unwrap(),
            _child: child,
            seen: Vec::new(),
        }
    }

    async fn wait_for(&mut self, what: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !String::from_utf8_lossy(&self.seen).contains(what) {
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, self.stdout.read(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!("no {what:?} in {:?}", String::from_utf8_lossy(&self.seen))
                })
                .unwrap();
            assert!(n > 0, "client ended before {what:?}");
            self.seen.extend_from_slice(&buf[..n]);
        }
    }

    async fn send(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_and_telnet_share_one_machine_per_source() {
    tools::require(&["ssh", "sshpass", "telnet"]);
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(&dir.path().join("state")).await;
    node.ssh("127.0.0.1", "echo via-ssh > /tmp/.shared", None)
        .await;
    let mut t = Telnet::spawn(node.telnet);
    t.wait_for("login: ").await;
    t.send("root").await;
    t.wait_for("Password: ").await;
    // The password SSH got in with: the node remembers it for this source.
    t.send(PASSWORD).await;
    t.wait_for("root@web01:~# ").await;
    // Split so that the echoed command line itself does not match.
    t.send("cat /tmp/.shared; echo via-tel''net >> /tmp/.shared")
        .await;
    t.wait_for("via-ssh\r\n").await;
    t.send("exit").await;
    t.wait_for("logout").await;
    node.connection_ended().await;
    let out = node.ssh("127.0.0.1", "cat /tmp/.shared", None).await;
    assert_eq!(out, "via-ssh\nvia-telnet\n");
    node.mgr.shutdown().await;
}
