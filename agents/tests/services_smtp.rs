//! SMTP honeypot against a real client (curl's SMTP): a message to a local account is
//! "queued" and captured with its envelope, relaying is refused, AUTH PLAIN and LOGIN
//! credentials are recorded and refused, STARTTLS works, and the caps close a
//! connection that goes on too long.

mod datasvc;
mod tools;

use datasvc::*;
use honeybee_agent::services::{Limits, ServiceManager};
use honeybee_agent::sink::EventSink;
use honeybee_proto::config::{
    HttpOptions, HttpPersona, NodeConfig, ServiceConfig, ServiceKind, SmtpOptions,
};
use honeybee_proto::event::{AuthAttempt, EventKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn smtp() -> ServiceKind {
    ServiceKind::Smtp(SmtpOptions {
        hostname: "mail.example.net".into(),
        auth_failure_delay_ms: 0,
        ..SmtpOptions::default()
    })
}

const MESSAGE: &str = "From: a@example.org\r\nTo: root@localhost\r\nSubject: hello there\r\n\r\n\
                       line one\r\n.starts with a dot\r\n";

/// The spooled captures' contents.
fn captured(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir.join("captures")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "bin") {
            out.push(std::fs::read(p).unwrap());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_message_is_captured_and_relaying_refused() {
    tools::require(&["curl"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut r = start(d, "smtp", "127.0.0.1:0".parse().unwrap(), smtp()).await;
    let url = format!("smtp://127.0.0.1:{}/client.example", r.addr.port());
    std::fs::write(d.join("msg.txt"), MESSAGE).unwrap();
    let ok = run(
        d,
        "curl",
        &[
            "-sS",
            "--url",
            &url,
            "--mail-from",
            "a@example.org",
            "--mail-rcpt",
            "root@localhost",
            "--upload-file",
            "msg.txt",
            "-v",
        ],
        None,
    )
    .await;
    assert!(ok.ok, "{}\n{}", ok.stdout, ok.stderr);
    assert!(
        ok.stderr.contains("250 2.0.0 Ok: queued as "),
        "{}",
        ok.stderr
    );
    let relay = run(
        d,
        "curl",
        &[
            "-sS",
            "--url",
            &url,
            "--mail-from",
            "spam@example.org",
            "--mail-rcpt",
            "victim@gmail.com",
            "--upload-file",
            "msg.txt",
            "-v",
        ],
        None,
    )
    .await;
    assert!(!relay.ok);
    assert!(
        relay
            .stderr
            .contains("454 4.7.1 <victim@gmail.com>: Relay access denied"),
        "{}",
        relay.stderr
    );
    r.wait_disconnects(2).await;
    let cmds = r.commands();
    for want in [
        "EHLO client.example",
        "MAIL FROM:<a@example.org> SIZE=95",
        "RCPT TO:<root@localhost>",
        "DATA",
        "RCPT TO:<victim@gmail.com>",
    ] {
        assert!(cmds.iter().any(|c| c == want), "{want}: {cmds:?}");
    }
    assert_eq!(r.count("capture"), 1, "{:#?}", r.events);
    let bodies = captured(d);
    assert_eq!(bodies.len(), 1);
    let body = String::from_utf8_lossy(&bodies[0]);
    // Kept as the message, dot-stuffing undone.
    assert!(body.contains("Subject: hello there\r\n"), "{body}");
    assert!(body.contains("\r\n.starts with a dot\r\n"), "{body}");
    r.mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_plain_and_login_are_recorded_and_refused() {
    tools::require(&["curl"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut r = start(d, "smtp", "127.0.0.1:0".parse().unwrap(), smtp()).await;
    let url = format!("smtp://127.0.0.1:{}/c", r.addr.port());
    for (mech, user) in [("PLAIN", "alice:s3cret"), ("LOGIN", "bob:hunter2")] {
        let opt = format!("AUTH={mech}");
        let out = run(
            d,
            "curl",
            &[
                "-sS",
                "-v",
                "--url",
                &url,
                "--user",
                user,
                "--login-options",
                &opt,
                "--mail-from",
                "a@b.c",
                "--mail-rcpt",
                "x@gmail.com",
                "-T",
                "/dev/null",
            ],
            None,
        )
        .await;
        assert!(!out.ok);
        assert!(
            out.stderr
                .contains("535 5.7.8 Error: authentication failed: (reason unavailable)"),
            "{}",
            out.stderr
        );
    }
    r.wait_disconnects(2).await;
    let logins: Vec<AuthAttempt> = r
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::AuthAttempt(a) => Some(a.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(logins.len(), 2, "{logins:?}");
    assert_eq!(
        (logins[0].username.as_str(), logins[0].password.as_deref()),
        ("alice", Some("s3cret"))
    );
    assert_eq!(logins[0].client_version.as_deref(), Some("PLAIN"));
    assert_eq!(
        (logins[1].username.as_str(), logins[1].password.as_deref()),
        ("bob", Some("hunter2"))
    );
    assert!(logins.iter().all(|l| !l.success));
    r.mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_then_a_message() {
    tools::require(&["curl"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut r = start(d, "smtp", "127.0.0.1:0".parse().unwrap(), smtp()).await;
    let url = format!("smtp://127.0.0.1:{}/tls.example", r.addr.port());
    std::fs::write(d.join("msg.txt"), MESSAGE).unwrap();
    let out = run(
        d,
        "curl",
        &[
            "-sS",
            "-v",
            "--ssl-reqd",
            "-k",
            "--url",
            &url,
            "--mail-from",
            "a@example.org",
            "--mail-rcpt",
            "postmaster",
            "--upload-file",
            "msg.txt",
        ],
        None,
    )
    .await;
    assert!(out.ok, "{}", out.stderr);
    // The snakeoil certificate: subject CN is the machine's host name.
    assert!(out.stderr.contains("subject: CN="), "{}", out.stderr);
    r.wait_disconnects(1).await;
    let cmds = r.commands();
    assert_eq!(cmds.iter().filter(|c| *c == "EHLO tls.example").count(), 2);
    assert!(cmds.contains(&"STARTTLS".to_owned()), "{cmds:?}");
    assert_eq!(r.count("capture"), 1);
    r.mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_cap_closes_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let kind = ServiceKind::Smtp(SmtpOptions {
        max_commands: 5,
        ..SmtpOptions::default()
    });
    let mut r = start(dir.path(), "smtp", "127.0.0.1:0".parse().unwrap(), kind).await;
    let mut c = TcpStream::connect(r.addr).await.unwrap();
    c.write_all(&b"NOOP\r\n".repeat(8)).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, c.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert_eq!(text.matches("250 2.0.0 Ok").count(), 5, "{text}");
    assert!(text.contains("Error: too many errors"), "{text}");
    r.wait_disconnects(1).await;
    assert!(r.events.iter().any(
        |e| matches!(&e.kind, EventKind::LimitReached { limit, .. } if limit == "smtp_commands")
    ));
    r.mgr.shutdown().await;
}

/// The certificate `openssl s_client` saw (PEM), with `extra` arguments.
fn peer_cert(addr: std::net::SocketAddr, extra: &[&str]) -> String {
    let out = std::process::Command::new("timeout")
        .args(["20", "openssl", "s_client", "-connect", &addr.to_string()])
        .args(extra)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text
        .find("-----BEGIN CERTIFICATE-----")
        .unwrap_or_else(|| panic!("no certificate from {addr}: {text}"));
    let end = text[start..].find("-----END CERTIFICATE-----").unwrap() + start;
    text[start..end].to_owned()
}

/// As on a real Debian box, where Apache and Postfix both use ssl-cert's snakeoil
/// certificate: the node's SMTP STARTTLS and its WordPress HTTPS show the same one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_shows_the_same_snakeoil_as_https() {
    tools::require(&["openssl"]);
    let dir = tempfile::tempdir().unwrap();
    let (sink, mut rx) = EventSink::channel(4096);
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let mut mgr = ServiceManager::new(sink, dir.path().to_owned(), Limits::default());
    let svc = |name: &str, kind| ServiceConfig {
        name: name.into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        enabled: true,
        kind,
    };
    mgr.apply(&NodeConfig {
        services: vec![
            svc("smtp", ServiceKind::Smtp(SmtpOptions::default())),
            svc(
                "https",
                ServiceKind::Http(HttpOptions {
                    persona: HttpPersona::Wordpress,
                    tls: true,
                    ..HttpOptions::default()
                }),
            ),
        ],
    })
    .await;
    let st = mgr.status();
    assert!(st.iter().all(|s| s.running), "{st:?}");
    let smtp: std::net::SocketAddr = st[0].listen.parse().unwrap();
    let https: std::net::SocketAddr = st[1].listen.parse().unwrap();
    let (a, b) = tokio::task::spawn_blocking(move || {
        (
            peer_cert(smtp, &["-starttls", "smtp"]),
            peer_cert(https, &[]),
        )
    })
    .await
    .unwrap();
    assert_eq!(a, b);
    mgr.shutdown().await;
}

/// A client that goes quiet gets Postfix's timeout reply and the close, and a message it
/// was sending is still kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_is_timed_out_and_its_partial_message_kept() {
    let dir = tempfile::tempdir().unwrap();
    let limits = honeybee_agent::services::Limits {
        idle_timeout: std::time::Duration::from_secs(1),
        ..honeybee_agent::services::Limits::default()
    };
    let mut r = start_with_limits(
        dir.path(),
        "smtp",
        "127.0.0.1:0".parse().unwrap(),
        smtp(),
        limits,
    )
    .await;
    let mut c = TcpStream::connect(r.addr).await.unwrap();
    c.write_all(b"HELO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<root@localhost>\r\nDATA\r\nSubject: cut\r\n\r\nhalf a mess")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, c.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n421 4.4.2 mail.example.net Error: timeout exceeded\r\n"),
        "{text}"
    );
    r.wait_disconnects(1).await;
    assert_eq!(r.count("capture"), 1);
    let bodies = captured(dir.path());
    assert!(String::from_utf8_lossy(&bodies[0]).ends_with("half a mess"));
    r.mgr.shutdown().await;
}

/// A BDAT transfer cut off before its last chunk is kept as an incomplete message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_bdat_message_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(dir.path(), "smtp", "127.0.0.1:0".parse().unwrap(), smtp()).await;
    let mut c = TcpStream::connect(r.addr).await.unwrap();
    c.write_all(
        b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<root@localhost>\r\nBDAT 12\r\nfirst chunk!",
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("Ok: 12 bytes") {
        let n = tokio::time::timeout(WAIT, c.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    drop(c);
    r.wait_disconnects(1).await;
    let name = r.events.iter().find_map(|e| match &e.kind {
        EventKind::Capture { name, .. } => name.clone(),
        _ => None,
    });
    assert_eq!(name.as_deref(), Some("message (incomplete)"));
    assert_eq!(captured(dir.path()), [b"first chunk!".to_vec()]);
    r.mgr.shutdown().await;
}
