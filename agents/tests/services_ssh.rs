//! SSH honeypot over real sockets, driven by the russh client and, where installed, by
//! the OpenSSH client: under a `never` login policy every attempt is recorded exactly and
//! none succeeds; the host key persists; the login memory counts one-try bots per source
//! across connections and admits one password per user and source, across restarts.
//! (The shell: `services_shell.rs`.)

mod tools;

use honeybee_agent::services::{HOST_KEY_FILE, Limits, ServiceManager};
use honeybee_agent::sink::{EventSink, NewEvent};
use honeybee_proto::config::{LoginPolicy, NodeConfig, ServiceConfig, ServiceKind, SshOptions};
use honeybee_proto::event::{AuthAttempt, AuthMethod, EventKind};
use russh::client;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{MethodKind, SshId};
use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(15);
const SERVER_ID: &str = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3";
const CLIENT_ID: &str = "SSH-2.0-HoneyBeeTest_1.0";

fn ssh_config(delay_ms: u32, max_auth_attempts: u32) -> NodeConfig {
    NodeConfig {
        services: vec![ServiceConfig {
            name: "ssh".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            enabled: true,
            kind: ServiceKind::Ssh(SshOptions {
                server_id: SERVER_ID.into(),
                auth_failure_delay_ms: delay_ms,
                max_auth_attempts,
                login: LoginPolicy::Never,
                ..Default::default()
            }),
        }],
    }
}

async fn start(
    dir: &Path,
    config: &NodeConfig,
) -> (ServiceManager, mpsc::Receiver<NewEvent>, SocketAddr) {
    let (sink, rx) = EventSink::channel(1024);
    let mut mgr = ServiceManager::new(sink, dir.to_owned(), Limits::default());
    mgr.apply(config).await;
    let st = mgr.status();
    assert!(st[0].running, "{st:?}");
    let addr = st[0].listen.parse().unwrap();
    (mgr, rx, addr)
}

/// A russh client that accepts any host key and remembers its fingerprint.
#[derive(Clone, Default)]
struct Client {
    host_key: Arc<Mutex<Option<String>>>,
    /// What the server announced after login (`hostkeys-00@openssh.com`).
    announced: Arc<Mutex<Option<Vec<russh::keys::PublicKey>>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        if let PublicKeyOrCertificate::PublicKey { key, .. } = key {
            *self.host_key.lock().unwrap() = Some(key.fingerprint(HashAlg::Sha256).to_string());
        }
        Ok(true)
    }

    async fn openssh_ext_host_keys_announced(
        &mut self,
        keys: Vec<russh::keys::PublicKey>,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        *self.announced.lock().unwrap() = Some(keys);
        Ok(())
    }
}

async fn connect(addr: SocketAddr) -> (client::Handle<Client>, Client) {
    let config = client::Config {
        client_id: SshId::Standard(Cow::Borrowed(CLIENT_ID)),
        inactivity_timeout: Some(WAIT),
        ..Default::default()
    };
    let c = Client::default();
    let h = tokio::time::timeout(WAIT, client::connect(Arc::new(config), addr, c.clone()))
        .await
        .expect("handshake in time")
        .expect("handshake");
    (h, c)
}

/// Collects events until the session's Disconnect.
async fn until_disconnect(rx: &mut mpsc::Receiver<NewEvent>) -> Vec<NewEvent> {
    let mut out = Vec::new();
    loop {
        let e = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("event in time")
            .expect("sink open");
        let end = matches!(e.kind, EventKind::Disconnect { .. });
        out.push(e);
        if end {
            return out;
        }
    }
}

/// Login attempts, leaving out the "none" probe clients send first.
fn attempts(events: &[NewEvent]) -> Vec<AuthAttempt> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::AuthAttempt(a) if a.method != AuthMethod::None => Some(a.clone()),
            _ => None,
        })
        .collect()
}

fn test_key(seed: u8) -> PrivateKey {
    PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
}

#[tokio::test]
async fn records_password_and_publickey_attempts_and_never_lets_in() {
    let dir = tempfile::tempdir().unwrap();
    let (mut mgr, mut rx, addr) = start(dir.path(), &ssh_config(100, 6)).await;

    // The identification line is the configured one, as ssh-keyscan and nmap read it.
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut line = vec![0u8; SERVER_ID.len() + 2];
    raw.read_exact(&mut line).await.unwrap();
    assert_eq!(line, format!("{SERVER_ID}\r\n").as_bytes());
    drop(raw);
    let ev = until_disconnect(&mut rx).await;
    assert!(attempts(&ev).is_empty());

    let (mut h, _) = connect(addr).await;
    let t = Instant::now();
    let r = h.authenticate_password("root", "123456").await.unwrap();
    // PAM draws the delay within ±25% of the configured 100 ms.
    assert!(t.elapsed() >= Duration::from_millis(70), "no failure delay");
    match r {
        client::AuthResult::Failure {
            remaining_methods,
            partial_success,
        } => {
            assert!(!partial_success);
            assert_eq!(
                &remaining_methods[..],
                // Debian's sshd_config: KbdInteractiveAuthentication no.
                [MethodKind::PublicKey, MethodKind::Password]
            );
        }
        client::AuthResult::Success => panic!("login succeeded"),
    }
    let r = h
        .authenticate_password("admin", "pässwörd \u{1f41d}")
        .await
        .unwrap();
    assert!(!r.success());
    let key = test_key(7);
    let fingerprint = key.public_key().fingerprint(HashAlg::Sha256).to_string();
    let r = h
        .authenticate_publickey("deploy", PrivateKeyWithHashAlg::new(Arc::new(key), None))
        .await
        .unwrap();
    assert!(!r.success());
    let _ = h
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;

    let ev = until_disconnect(&mut rx).await;
    assert_eq!(ev[0].kind, EventKind::Connect);
    let sid = ev[0].session.unwrap();
    assert!(
        ev.iter()
            .all(|e| e.session == Some(sid) && e.service == "ssh")
    );
    assert!(ev.iter().all(|e| e.dst == Some(addr)));
    let a = attempts(&ev);
    assert_eq!(a.len(), 3, "{a:?}");
    assert_eq!(a[0].method, AuthMethod::Password);
    assert_eq!(
        (a[0].username.as_str(), a[0].password.as_deref()),
        ("root", Some("123456"))
    );
    assert_eq!(
        (a[1].username.as_str(), a[1].password.as_deref()),
        ("admin", Some("pässwörd \u{1f41d}"))
    );
    assert_eq!(a[2].method, AuthMethod::PublicKey);
    assert_eq!(a[2].username, "deploy");
    assert_eq!(a[2].password, None);
    assert_eq!(a[2].key_fingerprint.as_deref(), Some(fingerprint.as_str()));
    assert!(fingerprint.starts_with("SHA256:"));
    assert_eq!(a[2].key_algorithm.as_deref(), Some("ssh-ed25519"));
    for x in &a {
        assert!(!x.success);
        assert_eq!(x.client_version.as_deref(), Some(CLIENT_ID));
    }
    match ev.last().unwrap().kind {
        EventKind::Disconnect {
            bytes_in,
            bytes_out,
            ..
        } => assert!(bytes_in > 0 && bytes_out > 0),
        ref k => panic!("{k:?}"),
    }
    mgr.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_open_sessions_and_releases_the_sink() {
    let dir = tempfile::tempdir().unwrap();
    let (mut mgr, mut rx, addr) = start(dir.path(), &ssh_config(0, 6)).await;
    let (mut h, _) = connect(addr).await;
    assert!(
        !h.authenticate_password("root", "x")
            .await
            .unwrap()
            .success()
    );
    // The session would otherwise idle until its timeout; shutdown must not wait for it.
    tokio::time::timeout(Duration::from_secs(20), mgr.shutdown())
        .await
        .expect("shutdown waited for the open session");
    let ev = until_disconnect(&mut rx).await;
    assert_eq!(attempts(&ev).len(), 1);
    // Every sender is gone: the spool writer would see its channel close.
    let end = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await;
    assert!(matches!(end, Ok(None)), "{end:?}");
    // The client was told to go away.
    assert!(h.authenticate_password("root", "y").await.is_err());
}

/// keyboard-interactive is disabled as in Debian's sshd_config: the request is refused
/// at once without a prompt (as OpenSSH refuses it), yet recorded, and counts as a failure.
#[tokio::test]
async fn keyboard_interactive_refused_without_prompt_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (mut mgr, mut rx, addr) = start(dir.path(), &ssh_config(0, 2)).await;
    let (mut h, _) = connect(addr).await;
    let r = h
        .authenticate_keyboard_interactive_start("oracle", None)
        .await
        .unwrap();
    match r {
        client::KeyboardInteractiveAuthResponse::Failure {
            remaining_methods, ..
        } => assert_eq!(
            &remaining_methods[..],
            [MethodKind::PublicKey, MethodKind::Password]
        ),
        other => panic!("{other:?}"),
    }
    // A failure like any other: the second one of two allowed ends the connection.
    let r = h
        .authenticate_keyboard_interactive_start("oracle", None)
        .await;
    assert!(!matches!(
        r,
        Ok(client::KeyboardInteractiveAuthResponse::InfoRequest { .. })
    ));
    drop(h);
    let a = attempts(&until_disconnect(&mut rx).await);
    assert_eq!(a.len(), 2, "{a:?}");
    assert!(a.iter().all(|a| a.method == AuthMethod::KeyboardInteractive
        && a.username == "oracle"
        && a.password.is_none()
        && !a.success));
    mgr.shutdown().await;
}

#[tokio::test]
async fn connection_closed_after_max_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let (mut mgr, mut rx, addr) = start(dir.path(), &ssh_config(0, 3)).await;
    let (mut h, _) = connect(addr).await;
    let mut failures = 0;
    for i in 0..10 {
        match h.authenticate_password("root", format!("pw{i}")).await {
            Ok(r) => {
                assert!(!r.success());
                failures += 1;
            }
            Err(_) => break,
        }
    }
    assert!(failures <= 3, "{failures} attempts answered, cap is 3");
    let a = attempts(&until_disconnect(&mut rx).await);
    assert_eq!(a.len(), 3);
    mgr.shutdown().await;
}

#[tokio::test]
async fn host_key_persists_across_managers() {
    let dir = tempfile::tempdir().unwrap();
    let fp = |c: &Client| c.host_key.lock().unwrap().clone().expect("host key seen");

    let (mut m1, _rx1, addr) = start(dir.path(), &ssh_config(0, 6)).await;
    let (h, c1) = connect(addr).await;
    drop(h);
    m1.shutdown().await;
    drop(m1);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(HOST_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let (mut m2, _rx2, addr) = start(dir.path(), &ssh_config(0, 6)).await;
    let (h, c2) = connect(addr).await;
    drop(h);
    assert_eq!(fp(&c1), fp(&c2));
    m2.shutdown().await;

    let other = tempfile::tempdir().unwrap();
    let (mut m3, _rx3, addr) = start(other.path(), &ssh_config(0, 6)).await;
    let (h, c3) = connect(addr).await;
    drop(h);
    assert_ne!(fp(&c1), fp(&c3), "a fresh data dir has a fresh key");
    m3.shutdown().await;
}

fn openssh_args(addr: SocketAddr, user: &str) -> Vec<String> {
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
        "true",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[tokio::test]
async fn openssh_client_sees_permission_denied() {
    tools::require(&["ssh", "sshpass"]);
    let dir = tempfile::tempdir().unwrap();
    let (mut mgr, mut rx, addr) = start(dir.path(), &ssh_config(100, 6)).await;

    // sshpass answers the first prompt and gives up (exit 5) at the re-prompt.
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new("sshpass")
            .args(["-p", "hunter2", "ssh"])
            .args(openssh_args(addr, "pi"))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ssh finished in time")
    .unwrap();
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    let ev = until_disconnect(&mut rx).await;
    let a = attempts(&ev);
    assert!(!a.is_empty());
    assert_eq!(a[0].method, AuthMethod::Password);
    assert_eq!(a[0].username, "pi");
    assert_eq!(a[0].password.as_deref(), Some("hunter2"));
    let version = a[0].client_version.as_deref().unwrap();
    assert!(version.starts_with("SSH-2.0-OpenSSH_"), "{version}");
    // OpenSSH probes with "none" first; it is recorded too.
    assert!(ev.iter().any(
        |e| matches!(&e.kind, EventKind::AuthAttempt(a) if a.method == AuthMethod::None && a.username == "pi")
    ));

    // Through SSH_ASKPASS the client goes through all its prompts, as a person would.
    let askpass = dir.path().join("askpass.sh");
    std::fs::write(&askpass, "#!/bin/sh\necho letmein\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new("ssh")
            .args(openssh_args(addr, "admin"))
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ssh finished in time")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{stderr}");
    assert_eq!(
        stderr
            .matches("Permission denied, please try again.")
            .count(),
        2,
        "{stderr}"
    );
    assert!(
        stderr.contains("admin@127.0.0.1: Permission denied (publickey,password)."),
        "{stderr}"
    );
    let a = attempts(&until_disconnect(&mut rx).await);
    assert_eq!(a.len(), 3, "{a:?}");
    assert!(a.iter().all(|x| x.password.as_deref() == Some("letmein")));

    // The algorithm lists are OpenSSH 9.2's, not russh's own.
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new("ssh")
            .arg("-vv")
            .args(["-o", "BatchMode=yes", "-o", "PreferredAuthentications=none"])
            .args(openssh_args(addr, "probe"))
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ssh finished in time")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let kex = stderr
        .lines()
        .skip_while(|l| !l.contains("peer server KEXINIT proposal"))
        .find(|l| l.contains("KEX algorithms:"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        kex.contains("KEX algorithms: sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,"),
        "{kex}"
    );
    assert!(!kex.contains("mlkem"), "{kex}");
    let _ = until_disconnect(&mut rx).await;

    mgr.shutdown().await;
}

#[tokio::test]
async fn ssh_keyscan_sees_the_host_key() {
    tools::require(&["ssh-keyscan"]);
    let dir = tempfile::tempdir().unwrap();
    let (mut mgr, _rx, addr) = start(dir.path(), &ssh_config(0, 6)).await;
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new("ssh-keyscan")
            .args([
                "-T",
                "5",
                "-t",
                "ed25519",
                "-p",
                &addr.port().to_string(),
                "127.0.0.1",
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let pem = std::fs::read_to_string(dir.path().join(HOST_KEY_FILE)).unwrap();
    let key = PrivateKey::from_openssh(pem).unwrap();
    let want = key.public_key().to_openssh().unwrap();
    assert!(stdout.contains(&want), "stdout {stdout} stderr {stderr}");
    assert!(stderr.contains(&SERVER_ID["SSH-2.0-".len()..]), "{stderr}");
    mgr.shutdown().await;
}

fn policy_config(login: LoginPolicy) -> NodeConfig {
    let mut c = ssh_config(10, 6);
    if let ServiceKind::Ssh(o) = &mut c.services[0].kind {
        o.login = login;
    }
    c
}

/// One OpenSSH connection from `bind` as a one-try bot does it: one password, then
/// `echo in` if it got in. Returns whether it did (and checks what ran).
async fn bot_try(addr: SocketAddr, bind: &str, user: &str, password: &str) -> bool {
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new("sshpass")
            .args(["-p", password, "ssh", "-b", bind])
            .args(["-o", "NumberOfPasswordPrompts=1"])
            .args(&openssh_args(addr, user)[..openssh_args(addr, user).len() - 1])
            .arg("echo in")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ssh finished in time")
    .unwrap();
    if out.status.success() {
        assert_eq!(String::from_utf8_lossy(&out.stdout), "in\n", "{out:?}");
        true
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("Permission denied"), "{out:?}");
        false
    }
}

/// Issue 12, login policy: a bot that tries one password per connection gets in on the
/// third connection under `after_attempts = 2`; that password works again on later
/// connections and no other does for that user; another source (127.0.0.2) counts on
/// its own; and all of it survives a restart of the services (a new manager on the same
/// data directory), as it would an agent restart.
#[tokio::test]
async fn one_try_bots_get_in_by_source_and_keep_their_password_across_restarts() {
    tools::require(&["ssh", "sshpass"]);
    let dir = tempfile::tempdir().unwrap();
    let config = policy_config(LoginPolicy::AfterAttempts(2));
    let (mut mgr, mut rx, addr) = start(dir.path(), &config).await;
    let a = "127.0.0.1";
    let b = "127.0.0.2";
    let tried = async |rx: &mut mpsc::Receiver<NewEvent>, bind, user, pw| {
        let ok = bot_try(addr, bind, user, pw).await;
        let ev = until_disconnect(rx).await;
        let src = ev[0].src.unwrap().ip().to_string();
        assert_eq!(src, bind);
        let at: Vec<_> = attempts(&ev)
            .into_iter()
            .filter(|x| x.method == AuthMethod::Password)
            .collect();
        assert_eq!(at.len(), 1, "{at:?}");
        assert_eq!(at[0].success, ok);
        ok
    };
    assert!(!tried(&mut rx, a, "root", "123456").await);
    assert!(!tried(&mut rx, a, "root", "password").await);
    // Another source has a count of its own.
    assert!(!tried(&mut rx, b, "root", "admin").await);
    assert!(tried(&mut rx, a, "root", "toor").await, "third try from a");
    assert!(tried(&mut rx, a, "root", "toor").await, "the same again");
    assert!(
        !tried(&mut rx, a, "root", "123456").await,
        "a second password"
    );
    assert!(
        !tried(&mut rx, a, "root", "letmein").await,
        "a second password"
    );
    // The other user from the same source counts from zero.
    assert!(!tried(&mut rx, a, "admin", "toor").await);
    assert!(!tried(&mut rx, b, "root", "toor").await, "b's second try");
    assert!(tried(&mut rx, b, "root", "qwerty").await, "b's third try");
    mgr.shutdown().await;
    drop(mgr);

    let (mut mgr, mut rx, addr2) = start(dir.path(), &config).await;
    let mut again = async |bind, user, pw| {
        let ok = bot_try(addr2, bind, user, pw).await;
        let _ = until_disconnect(&mut rx).await;
        ok
    };
    assert!(again(a, "root", "toor").await, "remembered across restart");
    assert!(!again(a, "root", "123456").await);
    assert!(again(b, "root", "qwerty").await);
    assert!(!again(b, "root", "toor").await);
    // admin's one failure from a was remembered too: its second fails, third gets in.
    assert!(!again(a, "admin", "admin").await);
    assert!(again(a, "admin", "admin123").await);
    mgr.shutdown().await;
}

/// `always` lets the first password in, then only that one (for that user and source),
/// over several attempts on one connection as a brute forcer sends them.
#[tokio::test]
async fn always_admits_one_password_per_user_within_and_across_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (mut mgr, mut rx, addr) = start(dir.path(), &policy_config(LoginPolicy::Always)).await;
    let (mut h, _) = connect(addr).await;
    assert!(
        h.authenticate_password("root", "first")
            .await
            .unwrap()
            .success()
    );
    drop(h);
    let _ = until_disconnect(&mut rx).await;
    let (mut h, _) = connect(addr).await;
    for pw in ["second", "third"] {
        assert!(!h.authenticate_password("root", pw).await.unwrap().success());
    }
    assert!(
        h.authenticate_password("root", "first")
            .await
            .unwrap()
            .success()
    );
    drop(h);
    let a = attempts(&until_disconnect(&mut rx).await);
    assert_eq!(
        a.iter()
            .map(|x| (x.password.as_deref().unwrap(), x.success))
            .collect::<Vec<_>>(),
        [("second", false), ("third", false), ("first", true)]
    );
    mgr.shutdown().await;
}

/// An `exec` session's environment is what sshd sets (session.c `do_setup_env`):
/// `SSH_CLIENT` and `SSH_CONNECTION` with the client's address and ports and the
/// machine's own (persona) address, no `SSH_TTY` without a pty, and `TERM` is bash's own
/// default, `dumb` (sshd sets none without a pty; checked against the real sshd with a key
/// login: `echo ${TERM-unset}` prints `dumb`).
#[tokio::test]
async fn exec_environment_is_sshds() {
    tools::require(&["ssh", "sshpass"]);
    let dir = tempfile::tempdir().unwrap();
    let (mut mgr, mut rx, addr) = start(dir.path(), &policy_config(LoginPolicy::Always)).await;
    let args = openssh_args(addr, "root");
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new("sshpass")
            .args(["-p", "hunter2", "ssh"])
            .args(&args[..args.len() - 1])
            .arg(r#"echo "$SSH_CLIENT|$SSH_CONNECTION|${SSH_TTY-none}|${TERM-unset}""#)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ssh finished in time")
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let parts: Vec<&str> = line.split('|').collect();
    assert_eq!(parts.len(), 4, "{line}");
    let client: Vec<&str> = parts[0].split(' ').collect();
    let conn: Vec<&str> = parts[1].split(' ').collect();
    assert_eq!(client.len(), 3, "{line}");
    assert_eq!(client[0], "127.0.0.1", "{line}");
    assert!(client[1].parse::<u16>().is_ok_and(|p| p > 0), "{line}");
    assert_eq!(client[2], addr.port().to_string(), "{line}");
    assert_eq!(conn.len(), 4, "{line}");
    assert_eq!(&conn[..2], &client[..2], "{line}");
    let own: std::net::Ipv4Addr = conn[2].parse().expect("the machine's address");
    assert!(
        own.is_private(),
        "the persona's private address, not loopback: {line}"
    );
    assert_eq!(conn[3], client[2], "{line}");
    assert_eq!(parts[2], "none", "no SSH_TTY without a pty: {line}");
    assert_eq!(parts[3], "dumb", "bash's TERM without a pty: {line}");
    let _ = until_disconnect(&mut rx).await;
    mgr.shutdown().await;
}

/// After a login the server announces its three host keys, the one the key exchange used
/// among them, and proves each (hostkeys-prove-00); a key that is not its own is refused.
#[tokio::test]
async fn host_keys_announced_after_login_and_proved() {
    let dir = tempfile::tempdir().unwrap();
    let (mut mgr, mut rx, addr) = start(dir.path(), &policy_config(LoginPolicy::Always)).await;
    let (mut h, c) = connect(addr).await;
    assert!(
        h.authenticate_password("root", "hunter2")
            .await
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + WAIT;
    let keys = loop {
        if let Some(k) = c.announced.lock().unwrap().clone() {
            break k;
        }
        assert!(Instant::now() < deadline, "no hostkeys-00 announcement");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let algs: Vec<String> = keys.iter().map(|k| k.algorithm().to_string()).collect();
    assert_eq!(algs, ["ssh-rsa", "ecdsa-sha2-nistp256", "ssh-ed25519"]);
    let used = c.host_key.lock().unwrap().clone().unwrap();
    assert!(
        keys.iter()
            .any(|k| k.fingerprint(HashAlg::Sha256).to_string() == used)
    );
    h.hostkeys_prove(keys.clone())
        .await
        .expect("every key proved");
    let stranger = test_key(9).public_key().clone();
    assert!(matches!(
        h.hostkeys_prove(vec![stranger]).await,
        Err(russh::Error::RequestDenied)
    ));
    drop(h);
    let _ = until_disconnect(&mut rx).await;
    mgr.shutdown().await;
}

/// Reads channel data until `what` has come (or the time is up).
async fn read_until(ch: &mut russh::Channel<client::Msg>, seen: &mut Vec<u8>, what: &[u8]) {
    let deadline = Instant::now() + WAIT;
    while !seen.windows(what.len()).any(|w| w == what) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ch.wait()).await {
            Ok(Some(russh::ChannelMsg::Data { data })) => seen.extend_from_slice(&data),
            Ok(Some(_)) => {}
            _ => panic!(
                "no {:?} in {:?}",
                String::from_utf8_lossy(what),
                String::from_utf8_lossy(seen)
            ),
        }
    }
}

/// Issue 12: a window change while a line is edited is bash's SIGWINCH: readline
/// clears the wrapped line from its last screen line up and draws the prompt and the
/// line again at the new width (the bytes bash 5.2 writes; the line editor's oracle
/// compares them with real bash in a pty). The same size again writes nothing.
#[tokio::test]
async fn a_window_change_redraws_the_line_being_edited() {
    let dir = tempfile::tempdir().unwrap();
    let (mut mgr, mut rx, addr) = start(dir.path(), &policy_config(LoginPolicy::Always)).await;
    let (mut h, _) = connect(addr).await;
    assert!(
        h.authenticate_password("root", "hunter2")
            .await
            .unwrap()
            .success()
    );
    let mut ch = h.channel_open_session().await.unwrap();
    ch.request_pty(true, "xterm", 40, 24, 0, 0, &[])
        .await
        .unwrap();
    ch.request_shell(true).await.unwrap();
    let mut seen = Vec::new();
    read_until(&mut ch, &mut seen, b"# ").await;
    let at = seen
        .windows(8)
        .rposition(|w| w == b"\x1b[?2004h")
        .expect("a prompt")
        + 8;
    let prompt = seen[at..].to_vec();
    assert!(prompt.len() < 40, "{:?}", String::from_utf8_lossy(&seen));
    // A line on two screen lines at 40 columns.
    let first = 40 - prompt.len();
    let line = vec![b'y'; first + 10];
    seen.clear();
    ch.data_bytes(line.clone()).await.unwrap();
    let want = [vec![b'y'; first], b" \r".to_vec(), vec![b'y'; 10]].concat();
    read_until(&mut ch, &mut seen, &want).await;
    assert!(
        seen.ends_with(&want),
        "{:?}",
        String::from_utf8_lossy(&seen)
    );
    // 60 columns: both screen lines cleared, then the prompt and line on one.
    seen.clear();
    ch.window_change(60, 24, 0, 0).await.unwrap();
    let redraw = [&b"\r\x1b[K\r\x1b[A\x1b[K\r"[..], &prompt, &line].concat();
    read_until(&mut ch, &mut seen, &redraw).await;
    assert_eq!(seen, redraw, "{:?}", String::from_utf8_lossy(&seen));
    // The same size again: nothing; the next key's echo comes alone.
    seen.clear();
    ch.window_change(60, 24, 0, 0).await.unwrap();
    ch.data_bytes(&b"Z"[..]).await.unwrap();
    read_until(&mut ch, &mut seen, b"Z").await;
    assert_eq!(seen, b"Z", "{:?}", String::from_utf8_lossy(&seen));
    // Absurd sizes do not break the session (the server clamps them): the line runs.
    for (w, hgt) in [(0, 0), (65535, 65535), (1, 1), (80, 24)] {
        ch.window_change(w, hgt, 0, 0).await.unwrap();
    }
    seen.clear();
    ch.data_bytes(&b"\r"[..]).await.unwrap();
    read_until(&mut ch, &mut seen, b"command not found").await;
    let _ = ch.eof().await;
    drop(ch);
    drop(h);
    let _ = until_disconnect(&mut rx).await;
    mgr.shutdown().await;
}

/// The shell's line editor wraps a long line at the client's terminal width: the
/// pty request's first, then a window change's (readline writes a space and CR when a
/// character fills the last column), not at an assumed 80 columns.
#[tokio::test]
async fn the_line_editor_wraps_at_the_clients_width() {
    let dir = tempfile::tempdir().unwrap();
    let (mut mgr, mut rx, addr) = start(dir.path(), &policy_config(LoginPolicy::Always)).await;
    let (mut h, _) = connect(addr).await;
    assert!(
        h.authenticate_password("root", "hunter2")
            .await
            .unwrap()
            .success()
    );
    let mut ch = h.channel_open_session().await.unwrap();
    ch.request_pty(true, "xterm", 40, 24, 0, 0, &[])
        .await
        .unwrap();
    ch.request_shell(true).await.unwrap();
    let mut seen = Vec::new();
    read_until(&mut ch, &mut seen, b"# ").await;
    // The prompt: what follows the last bracketed-paste switch.
    let at = seen
        .windows(8)
        .rposition(|w| w == b"\x1b[?2004h")
        .expect("a prompt")
        + 8;
    let prompt = seen[at..].len();
    assert!(prompt < 40, "{:?}", String::from_utf8_lossy(&seen));
    for (cols, key) in [(40u32, b'y'), (57, b'z')] {
        if cols != 40 {
            ch.window_change(cols, 24, 0, 0).await.unwrap();
        }
        seen.clear();
        let first = cols as usize - prompt;
        ch.data_bytes(vec![key; first + 10]).await.unwrap();
        let want = [vec![key; first], b" \r".to_vec(), vec![key; 10]].concat();
        read_until(&mut ch, &mut seen, &want).await;
        // ^U: the line goes, and the next one starts on a fresh prompt.
        ch.data_bytes(&b"\x15"[..]).await.unwrap();
    }
    let _ = ch.eof().await;
    drop(ch);
    drop(h);
    let _ = until_disconnect(&mut rx).await;
    mgr.shutdown().await;
}
