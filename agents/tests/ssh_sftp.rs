//! File transfer and forwarding over the SSH honeypot with the real OpenSSH clients:
//! `sftp` (batch mode) and `scp` (SFTP mode, OpenSSH 9's default, and the legacy
//! protocol with `-O`) upload into the session's fake filesystem, where the same
//! connection's shell sees the file and the capture spool keeps it; downloads of
//! /etc/passwd get the fake machine's file; errors read as against Debian's sshd, which
//! the differential tests run beside the honeypot (root logs in to it with a key of the
//! test's own; only commands that change nothing on this machine are sent to it).
//! `ssh -W` (direct-tcpip) to a closed local port fails as on the real server, and the
//! destination is recorded.

mod tools;

use honeybee_agent::captures::CaptureSpool;
use honeybee_agent::services::{Limits, ServiceManager};
use honeybee_agent::sink::{EventSink, NewEvent};
use honeybee_proto::config::{LoginPolicy, NodeConfig, ServiceConfig, ServiceKind, SshOptions};
use honeybee_proto::event::EventKind;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(15);
const SERVER_ID: &str = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10";
const PASSWORD: &str = "hunter2";

struct Node {
    mgr: ServiceManager,
    rx: mpsc::Receiver<NewEvent>,
    addr: SocketAddr,
    seen: Vec<NewEvent>,
    _spool: CaptureSpool,
}

async fn start(dir: &Path) -> Node {
    let (sink, rx) = EventSink::channel(16 * 1024);
    let spool = CaptureSpool::open(&dir.join("captures"), 256 * 1024 * 1024).unwrap();
    let mut mgr = ServiceManager::new(sink, dir.join("state"), Limits::default())
        .with_captures(spool.clone());
    let services = vec![ServiceConfig {
        name: "ssh".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        enabled: true,
        kind: ServiceKind::Ssh(SshOptions {
            server_id: SERVER_ID.into(),
            auth_failure_delay_ms: 10,
            login: LoginPolicy::Always,
            ..Default::default()
        }),
    }];
    mgr.apply(&NodeConfig { services }).await;
    let st = mgr.status();
    assert!(st[0].running, "{st:?}");
    let addr = st[0].listen.parse().unwrap();
    Node {
        mgr,
        rx,
        addr,
        seen: Vec::new(),
        _spool: spool,
    }
}

impl Node {
    async fn until(&mut self, what: &str, done: impl Fn(&[NewEvent]) -> bool) -> Vec<NewEvent> {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(&self.seen) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(e)) => self.seen.push(e),
                _ => panic!("timed out waiting for {what}; saw {:#?}", self.seen),
            }
        }
        self.seen.clone()
    }
}

fn captures(ev: &[NewEvent]) -> Vec<(String, u64, Option<String>)> {
    ev.iter()
        .filter_map(|e| match &e.kind {
            EventKind::Capture {
                kind, size, name, ..
            } if kind == "upload" => Some((kind.clone(), *size, name.clone())),
            _ => None,
        })
        .collect()
}

fn commands(ev: &[NewEvent]) -> Vec<String> {
    ev.iter()
        .filter_map(|e| match &e.kind {
            EventKind::Command { line } => Some(line.clone()),
            _ => None,
        })
        .collect()
}

fn downloads(ev: &[NewEvent]) -> Vec<(String, String)> {
    ev.iter()
        .filter_map(|e| match &e.kind {
            EventKind::Download { url, tool } => Some((url.clone(), tool.clone())),
            _ => None,
        })
        .collect()
}

/// Client options for a non-interactive login to 127.0.0.1:`port` that trusts any host
/// key; `key` logs in with that private key (the real sshd), else with the password.
fn client_opts(key: Option<&Path>) -> Vec<String> {
    let mut o: Vec<String> = [
        "-F",
        "/dev/null",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=error",
        "-o",
        "ConnectTimeout=10",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    match key {
        Some(k) => {
            o.extend(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i"].map(String::from));
            o.push(k.display().to_string());
        }
        None => o.extend(
            [
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "PubkeyAuthentication=no",
                // Before sftp's own -oBatchMode=yes for -b (the first value wins), so
                // that sshpass can answer the password prompt.
                "-o",
                "BatchMode=no",
            ]
            .map(String::from),
        ),
    }
    o
}

/// Runs an OpenSSH client program (`sftp`, `scp`, `ssh`) with sshpass when `key` is
/// `None`; returns (status, stdout, stderr).
fn run(program: &str, key: Option<&Path>, args: &[String], stdin: &[u8]) -> (i32, String, String) {
    let mut cmd = match key {
        Some(_) => Command::new(program),
        None => {
            let mut c = Command::new("sshpass");
            c.args(["-p", PASSWORD, program]);
            c
        }
    };
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start the client");
    {
        use std::io::Write;
        let mut i = child.stdin.take().unwrap();
        let _ = i.write_all(stdin);
    }
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(_st) = child.try_wait().unwrap() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{program} {args:?} did not finish: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn port_args(flag: &str, addr: SocketAddr) -> Vec<String> {
    vec![flag.to_owned(), addr.port().to_string()]
}

/// `sftp -b -` with `batch` on stdin, as root.
fn sftp_batch(addr: SocketAddr, key: Option<&Path>, batch: &str) -> (i32, String, String) {
    let mut args = client_opts(key);
    args.extend(port_args("-P", addr));
    args.extend(["-b".into(), "-".into(), "root@127.0.0.1".into()]);
    run("sftp", key, &args, batch.as_bytes())
}

/// `ssh root@127.0.0.1 COMMAND`.
fn ssh_exec(
    addr: SocketAddr,
    key: Option<&Path>,
    extra: &[&str],
    command: &str,
) -> (i32, String, String) {
    let mut args = client_opts(key);
    args.extend(port_args("-p", addr));
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push("root@127.0.0.1".into());
    if !command.is_empty() {
        args.push(command.into());
    }
    run("ssh", key, &args, b"")
}

// ---- the real sshd, with a key login for root -----------------------------------------

const SSHD: &str = "/usr/sbin/sshd";

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
    fn key(&self) -> PathBuf {
        self.dir.path().join("client")
    }
}

fn keygen(kind: &str, path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
}

/// Debian's sshd_config (less its Include) with the test's own authorized key for root.
fn start_sshd() -> Sshd {
    assert!(
        Path::new(SSHD).exists(),
        "{SSHD} is missing: install Debian's openssh-server (scripts/test.sh does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut keys = Vec::new();
    for kind in ["rsa", "ecdsa", "ed25519"] {
        let key = dir.path().join(format!("ssh_host_{kind}_key"));
        keygen(kind, &key);
        keys.push(key);
    }
    keygen("ed25519", &dir.path().join("client"));
    std::fs::copy(
        dir.path().join("client.pub"),
        dir.path().join("authorized_keys"),
    )
    .unwrap();
    let cfg = dir.path().join("sshd_config");
    std::fs::write(
        &cfg,
        format!(
            "KbdInteractiveAuthentication no\nUsePAM yes\nX11Forwarding yes\nPrintMotd no\n\
             AcceptEnv LANG LC_*\nSubsystem sftp /usr/lib/openssh/sftp-server\nPidFile none\n\
             ListenAddress 127.0.0.1\nStrictModes no\nAuthorizedKeysFile {}\n",
            dir.path().join("authorized_keys").display()
        ),
    )
    .unwrap();
    let _ = std::fs::create_dir_all("/run/sshd");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(sshd.addr).is_err() {
        assert!(Instant::now() < deadline, "sshd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    sshd
}

// ---- tests ---------------------------------------------------------------------------

/// sftp's answers to commands that fail (or change nothing) read the same from both
/// servers: sftp-server's status messages, `pwd` (realpath "."), and sftp's own
/// checks that stat or list first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_errors_match_openssh() {
    tools::require(&["sftp", "sshpass"]);
    let sshd = start_sshd();
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path()).await;
    // Each line starts with '-' so that the batch goes on after a failure. Nothing here
    // writes on this machine: every target is missing or its directory is.
    let batch = "-pwd\n-ls /nonexistent_hb\n-get /nonexistent_hb /dev/null\n\
                 -rm /nonexistent_hb\n-rmdir /nonexistent_hb\n-mkdir /etc\n\
                 -mkdir /nonexistent_hb/x\n-cd /nonexistent_hb\n-cd /etc/passwd\n\
                 -chmod 644 /nonexistent_hb\n-rename /nonexistent_hb /nonexistent_hb2\n\
                 -put /dev/null /nonexistent_hb/x\n-ls -d /etc\n-ln -s /x /nonexistent_hb/y\n\
                 -df /nonexistent_hb\n-lls /nonexistent_hb\n";
    let key = sshd.key();
    let real = tokio::task::spawn_blocking({
        let addr = sshd.addr;
        let batch = batch.to_owned();
        move || sftp_batch(addr, Some(&key), &batch)
    })
    .await
    .unwrap();
    let addr = node.addr;
    let ours = tokio::task::spawn_blocking(move || sftp_batch(addr, None, batch))
        .await
        .unwrap();
    assert_eq!(ours.0, real.0, "exit status; ours {ours:?} real {real:?}");
    assert_eq!(ours.1, real.1, "stdout");
    assert_eq!(ours.2, real.2, "stderr");
    node.until("the sftp subsystem", |ev| {
        commands(ev).iter().any(|c| c == "subsystem sftp")
    })
    .await;
    node.mgr.shutdown().await;
}

/// A file put with sftp lands in the connection's filesystem: the shell of the same
/// connection (an ssh multiplexed over the sftp's master connection) lists and prints
/// it, and the capture spool holds it as an upload; /etc/passwd comes down as the
/// shell's `cat` shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_upload_is_seen_by_the_shell_and_captured() {
    tools::require(&["sftp", "ssh", "sshpass"]);
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path()).await;
    let addr = node.addr;
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let payload = b"#!/bin/sh\necho pwned\n".repeat(1000);
    std::fs::write(work.join("bot.sh"), &payload).unwrap();
    let sock = work.join("ctl");
    let mut master = {
        let mut args = client_opts(None);
        args.extend(port_args("-p", addr));
        args.extend(
            [
                "-N",
                "-o",
                "ControlMaster=yes",
                "-o",
                &format!("ControlPath={}", sock.display()),
                "root@127.0.0.1",
            ]
            .map(String::from),
        );
        Command::new("sshpass")
            .args(["-p", PASSWORD, "ssh"])
            .args(&args)
            .stdin(Stdio::null())
            .spawn()
            .unwrap()
    };
    let deadline = Instant::now() + WAIT;
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "the master connection did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mux = format!("ControlPath={}", sock.display());
    let (work2, mux2) = (work.clone(), mux.clone());
    let (st, out, err) = tokio::task::spawn_blocking(move || {
        let mut args = client_opts(None);
        args.extend(["-o".into(), mux2, "-b".into(), "-".into()]);
        args.extend(port_args("-P", addr));
        args.push("root@127.0.0.1".into());
        let batch = format!(
            "cd /tmp\nput {} bot.sh\nchmod 755 bot.sh\nget /etc/passwd {}\nls -l bot.sh\n",
            work2.join("bot.sh").display(),
            work2.join("passwd").display()
        );
        run("sftp", None, &args, batch.as_bytes())
    })
    .await
    .unwrap();
    assert_eq!(st, 0, "{out}{err}");
    assert!(
        out.contains("-rwxr-xr-x    ? root     root        21000 "),
        "{out}"
    );
    let mux3 = mux.clone();
    let (st, shell_out, err) = tokio::task::spawn_blocking(move || {
        ssh_exec(
            addr,
            None,
            &["-o", &mux3],
            "ls -l /tmp/bot.sh; head -c 20 /tmp/bot.sh; cat /etc/passwd",
        )
    })
    .await
    .unwrap();
    // Two more sessions on the same connection share its files but are processes of
    // their own, as two sshd sessions are.
    let mut pids = Vec::new();
    for _ in 0..2 {
        let mux = mux.clone();
        let (st, out, err) = tokio::task::spawn_blocking(move || {
            ssh_exec(addr, None, &["-o", &mux], "echo $$; ls /tmp/bot.sh")
        })
        .await
        .unwrap();
        assert_eq!(st, 0, "{out}{err}");
        assert!(out.ends_with("\n/tmp/bot.sh\n"), "{out}");
        pids.push(out.lines().next().unwrap().to_owned());
    }
    assert_ne!(pids[0], pids[1], "each session is its own bash");
    let _ = master.kill();
    let _ = master.wait();
    assert_eq!(st, 0, "{shell_out}{err}");
    assert!(
        shell_out.contains("-rwxr-xr-x 1 root root 21000 "),
        "{shell_out}"
    );
    assert!(
        shell_out.contains("/tmp/bot.sh\n#!/bin/sh\necho pwnedroot:x:0:0:"),
        "{shell_out}"
    );
    let passwd = std::fs::read_to_string(work.join("passwd")).unwrap();
    assert!(
        passwd.starts_with("root:x:0:0:root:/root:/bin/bash\n"),
        "{passwd}"
    );
    assert!(
        shell_out.ends_with(&passwd),
        "sftp's passwd is the shell's: {shell_out}"
    );
    let ev = node
        .until("the upload capture", |ev| !captures(ev).is_empty())
        .await;
    assert_eq!(
        captures(&ev),
        [("upload".into(), 21000, Some("/tmp/bot.sh".into()))]
    );
    assert!(
        commands(&ev).contains(&"sftp put /tmp/bot.sh".to_owned()),
        "{ev:#?}"
    );
    node.mgr.shutdown().await;
}

/// scp uploads and downloads in both protocols: SFTP (OpenSSH 9's default) and the
/// legacy one (`-O`, a remote `scp -t`/`scp -f`); each upload is captured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scp_both_protocols_upload_and_download() {
    tools::require(&["scp", "sshpass"]);
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path()).await;
    let addr = node.addr;
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("a.bin"), vec![7u8; 5000]).unwrap();
    for (i, legacy) in [false, true].into_iter().enumerate() {
        let w = work.clone();
        let (st, out, err) = tokio::task::spawn_blocking(move || {
            let mut args = client_opts(None);
            if legacy {
                args.push("-O".into());
            }
            args.extend(port_args("-P", addr));
            args.push(w.join("a.bin").display().to_string());
            args.push(format!("root@127.0.0.1:/tmp/up{i}.bin"));
            let up = run("scp", None, &args, b"");
            if up.0 != 0 {
                return up;
            }
            let mut args = client_opts(None);
            if legacy {
                args.push("-O".into());
            }
            args.extend(port_args("-P", addr));
            args.push("root@127.0.0.1:/etc/passwd".into());
            args.push(w.join(format!("passwd{i}")).display().to_string());
            run("scp", None, &args, b"")
        })
        .await
        .unwrap();
        assert_eq!(st, 0, "legacy {legacy}: {out}{err}");
        let passwd = std::fs::read_to_string(work.join(format!("passwd{i}"))).unwrap();
        assert!(
            passwd.starts_with("root:x:0:0:root:/root:/bin/bash\n"),
            "{passwd}"
        );
    }
    let ev = node
        .until("both upload captures", |ev| captures(ev).len() >= 2)
        .await;
    let mut caps = captures(&ev);
    caps.sort();
    assert_eq!(
        caps,
        [
            ("upload".into(), 5000, Some("/tmp/up0.bin".into())),
            ("upload".into(), 5000, Some("/tmp/up1.bin".into())),
        ]
    );
    assert!(
        commands(&ev)
            .iter()
            .any(|c| c.starts_with("scp ") && c.contains("-t")),
        "the legacy remote command is recorded: {:?}",
        commands(&ev)
    );
    node.mgr.shutdown().await;
}

/// The legacy protocol's error lines match the real remote scp's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_scp_errors_match_openssh() {
    tools::require(&["scp", "sshpass"]);
    let sshd = start_sshd();
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path()).await;
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("f"), b"x").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "R:/nonexistent_hb".into(),
                work.join("out").display().to_string(),
            ],
            "missing source",
        ),
        (
            vec!["R:/etc".into(), work.join("out").display().to_string()],
            "directory without -r",
        ),
        (
            vec![
                work.join("f").display().to_string(),
                "R:/nonexistent_hb/x".into(),
            ],
            "missing target directory",
        ),
    ];
    for (args, what) in cases {
        let mut outs = Vec::new();
        for (addr, key) in [(sshd.addr, Some(sshd.key())), (node.addr, None)] {
            let args = args.clone();
            let out = tokio::task::spawn_blocking(move || {
                let mut a = client_opts(key.as_deref());
                a.push("-O".into());
                a.extend(port_args("-P", addr));
                a.extend(args.into_iter().map(|s| s.replace("R:", "root@127.0.0.1:")));
                run("scp", key.as_deref(), &a, b"")
            })
            .await
            .unwrap();
            outs.push(out);
        }
        assert_eq!(outs[1], outs[0], "{what}: ours then the real sshd's");
    }
    node.mgr.shutdown().await;
}

/// `ssh -W` (a direct-tcpip channel) to a closed port on the server's own loopback:
/// the same failure lines as from the real sshd, and the destination is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tcpip_fails_as_openssh_and_is_recorded() {
    tools::require(&["ssh", "sshpass"]);
    let sshd = start_sshd();
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path()).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("127.0.0.1:{closed}");
    let mut outs = Vec::new();
    for (addr, key) in [(sshd.addr, Some(sshd.key())), (node.addr, None)] {
        let target = target.clone();
        let out = tokio::task::spawn_blocking(move || {
            let mut a = client_opts(key.as_deref());
            // The failure is printed at LogLevel info.
            for o in &mut a {
                if o == "LogLevel=error" {
                    *o = "LogLevel=info".into();
                }
            }
            a.extend(port_args("-p", addr));
            a.extend(["-W".into(), target, "root@127.0.0.1".into()]);
            run("ssh", key.as_deref(), &a, b"")
        })
        .await
        .unwrap();
        outs.push(out);
    }
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("Warning: Permanently added"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        (outs[1].0, strip(&outs[1].2)),
        (outs[0].0, strip(&outs[0].2)),
        "ours then the real sshd's"
    );
    assert!(
        outs[1]
            .2
            .contains("open failed: connect failed: Connection refused"),
        "{outs:?}"
    );
    let ev = node
        .until("the forwarding record", |ev| !downloads(ev).is_empty())
        .await;
    assert_eq!(
        downloads(&ev),
        [(format!("tcp://{target}"), "ssh direct-tcpip".to_owned())]
    );
    node.mgr.shutdown().await;
}

/// `ssh -R` with port 0 (tcpip-forward): both servers accept and allocate a port (the
/// client prints it); the honeypot binds nothing and records the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_forward_accepted_as_openssh_and_recorded() {
    tools::require(&["ssh", "sshpass"]);
    let sshd = start_sshd();
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path()).await;
    let mut outs = Vec::new();
    for (addr, key) in [(sshd.addr, Some(sshd.key())), (node.addr, None)] {
        let out = tokio::task::spawn_blocking(move || {
            let mut a = client_opts(key.as_deref());
            for o in &mut a {
                if o == "LogLevel=error" {
                    *o = "LogLevel=info".into();
                }
            }
            a.extend(port_args("-p", addr));
            a.extend(
                [
                    "-R",
                    "0:127.0.0.1:1",
                    "-R",
                    "127.0.0.1:0:127.0.0.1:2",
                    "root@127.0.0.1",
                    "true",
                ]
                .map(String::from),
            );
            run("ssh", key.as_deref(), &a, b"")
        })
        .await
        .unwrap();
        outs.push(out);
    }
    // "Allocated port N for remote forward to ...": N differs.
    let allocated = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.starts_with("Warning: Permanently added"))
            .map(|l| match l.strip_prefix("Allocated port ") {
                Some(rest) => {
                    let port: u16 = rest.split(' ').next().unwrap().parse().unwrap();
                    assert!(port >= 1024, "{l}");
                    format!("Allocated port N{}", &rest[rest.find(' ').unwrap()..])
                }
                None => l.to_owned(),
            })
            .collect()
    };
    assert_eq!(outs[1].0, outs[0].0, "{outs:?}");
    assert_eq!(allocated(&outs[1].2), allocated(&outs[0].2));
    assert_eq!(allocated(&outs[1].2).len(), 2, "{outs:?}");
    let ev = node
        .until("both forwarding records", |ev| downloads(ev).len() >= 2)
        .await;
    let mut d = downloads(&ev);
    d.sort();
    assert_eq!(
        d,
        [
            (
                "tcp-listen://127.0.0.1:0".to_owned(),
                "ssh tcpip-forward".to_owned()
            ),
            // The client names the default bind address "localhost".
            (
                "tcp-listen://localhost:0".to_owned(),
                "ssh tcpip-forward".to_owned(),
            ),
        ]
    );
    node.mgr.shutdown().await;
}

/// `ssh -L LOCAL.sock:/run/docker.sock` (direct-streamlocal): a connection to the local
/// socket opens a channel that fails as on the real sshd when the remote socket is
/// missing; the path is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_streamlocal_fails_as_openssh_and_is_recorded() {
    tools::require(&["ssh", "sshpass", "socat"]);
    let sshd = start_sshd();
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path()).await;
    let mut outs = Vec::new();
    for (i, (addr, key)) in [(sshd.addr, Some(sshd.key())), (node.addr, None)]
        .into_iter()
        .enumerate()
    {
        let local = dir.path().join(format!("l{i}.sock"));
        let mut a = client_opts(key.as_deref());
        for o in &mut a {
            if o == "LogLevel=error" {
                *o = "LogLevel=info".into();
            }
        }
        a.extend(port_args("-p", addr));
        a.extend([
            "-N".into(),
            "-L".into(),
            format!("{}:/run/nonexistent_hb.sock", local.display()),
            "root@127.0.0.1".into(),
        ]);
        let mut cmd = match &key {
            Some(_) => Command::new("ssh"),
            None => {
                let mut c = Command::new("sshpass");
                c.args(["-p", PASSWORD, "ssh"]);
                c
            }
        };
        let mut child = cmd
            .args(&a)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + WAIT;
        while !local.exists() {
            assert!(Instant::now() < deadline, "the local socket did not appear");
            std::thread::sleep(Duration::from_millis(50));
        }
        let st = Command::new("socat")
            .arg("-")
            .arg(format!("UNIX-CONNECT:{}", local.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        let _ = st;
        // Read the client's messages until the failure line (or the deadline), then stop
        // the client: it keeps listening otherwise.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = Vec::new();
        while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            let done = line.contains("open failed");
            if !line.starts_with("Warning: Permanently added") {
                err.push(line);
            }
            if done {
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = reader.join();
        outs.push(err);
    }
    assert_eq!(outs[1], outs[0]);
    assert!(
        outs[1]
            .iter()
            .any(|l| l.ends_with("open failed: connect failed: open failed")),
        "{outs:?}"
    );
    let ev = node
        .until("the forwarding record", |ev| !downloads(ev).is_empty())
        .await;
    assert_eq!(
        downloads(&ev),
        [(
            "unix:/run/nonexistent_hb.sock".to_owned(),
            "ssh direct-streamlocal".to_owned()
        )]
    );
    node.mgr.shutdown().await;
}

/// A session that creates, lists, renames, changes, downloads and removes files reads
/// the same from both servers. On the real machine it works in a directory of its own
/// under /tmp, made and removed by the batch (and removed by the test in any case).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_file_operations_match_openssh() {
    tools::require(&["sftp", "sshpass"]);
    let sshd = start_sshd();
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path()).await;
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("a.txt"), b"alpha\n").unwrap();
    let remote = format!("/tmp/hb-sftp-{}", std::process::id());
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(remote.clone());
    let w = work.display();
    let batch = format!(
        "mkdir {remote}\ncd {remote}\nput {w}/a.txt a.txt\nput {w}/a.txt b.txt\nls\n\
         mkdir sub\n-mkdir sub\nrename a.txt c.txt\n-rename b.txt c.txt\nls\n\
         chmod 600 c.txt\nget c.txt {w}/OUT\n-rmdir {remote}\nrm c.txt\n-rm c.txt\n\
         -rm b.txt\nrmdir sub\nls -a\ncd /\nrmdir {remote}\n-cd {remote}\n"
    );
    let mut outs = Vec::new();
    for (i, (addr, key)) in [(sshd.addr, Some(sshd.key())), (node.addr, None)]
        .into_iter()
        .enumerate()
    {
        let batch = batch.replace("OUT", &format!("out{i}"));
        let out = tokio::task::spawn_blocking(move || sftp_batch(addr, key.as_deref(), &batch))
            .await
            .unwrap();
        outs.push(out);
    }
    let norm = |s: &str| s.replace("out0", "OUT").replace("out1", "OUT");
    assert_eq!(outs[1].0, outs[0].0, "{outs:#?}");
    assert_eq!(norm(&outs[1].1), norm(&outs[0].1));
    assert_eq!(norm(&outs[1].2), norm(&outs[0].2));
    assert_eq!(
        std::fs::read(work.join("out1")).unwrap(),
        std::fs::read(work.join("out0")).unwrap()
    );
    assert_eq!(outs[0].0, 0, "the whole batch ran: {outs:#?}");
    assert!(
        outs[0].1.contains("c.txt") && outs[0].1.contains("sub"),
        "{outs:#?}"
    );
    assert!(
        !Path::new(&remote).exists(),
        "the batch removed its directory"
    );
    node.mgr.shutdown().await;
}

/// `sftp -s /usr/lib/openssh/sftp-server` runs the server by path (an exec request), as
/// some clients and scripts do: the same session as through the subsystem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_server_run_by_path_matches_openssh() {
    tools::require(&["sftp", "sshpass"]);
    let sshd = start_sshd();
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path()).await;
    let mut outs = Vec::new();
    for (addr, key) in [(sshd.addr, Some(sshd.key())), (node.addr, None)] {
        let out = tokio::task::spawn_blocking(move || {
            let mut args = client_opts(key.as_deref());
            args.extend(port_args("-P", addr));
            args.extend(
                [
                    "-s",
                    "/usr/lib/openssh/sftp-server",
                    "-b",
                    "-",
                    "root@127.0.0.1",
                ]
                .map(String::from),
            );
            run(
                "sftp",
                key.as_deref(),
                &args,
                b"pwd\n-ls /nonexistent_hb\nls -d /etc\n",
            )
        })
        .await
        .unwrap();
        outs.push(out);
    }
    assert_eq!(outs[1], outs[0]);
    assert!(
        outs[0].1.contains("Remote working directory: /root"),
        "{outs:?}"
    );
    let ev = node
        .until("the exec", |ev| {
            commands(ev)
                .iter()
                .any(|c| c == "/usr/lib/openssh/sftp-server")
        })
        .await;
    drop(ev);
    node.mgr.shutdown().await;
}
