//! Differential test of the SMTP service against the real Postfix 3.7 smtpd (Debian 12's
//! `postfix` package), both on loopback, given the same raw command sequences; replies
//! are compared byte for byte after normalising queue ids.
//!
//! The real Postfix runs from a temporary configuration directory: Debian's `main.cf`
//! (banner, TLS with the snakeoil certificate, `smtpd_relay_restrictions`), SASL through
//! Dovecot's protocol to a stand-in auth server in this test (it answers as Dovecot does
//! to a wrong password: `FAIL` without a reason), `mynetworks` that excludes loopback so
//! the probes come from "outside", and `discard:` as every transport, so nothing it
//! accepts ever leaves the machine. It is started with `postfix -c DIR start` and stopped
//! by its master's PID.

mod tools;

use honeybee_agent::services::{Limits, ServiceManager};
use honeybee_agent::sink::EventSink;
use honeybee_proto::config::{NodeConfig, ServiceConfig, ServiceKind, SmtpOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const POSTFIX: &str = "/usr/sbin/postfix";
const HOST: &str = "mx.oracle.test";
/// A reply slower than this is recorded as missing (a mismatch), not waited for.
const WAIT: Duration = Duration::from_secs(10);

/// The real Postfix, stopped (by its master's PID) when dropped.
struct Real {
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Real {
    fn master_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.dir.path().join("queue/pid/master.pid")).ok()?;
        text.trim().parse().ok()
    }
}

impl Drop for Real {
    fn drop(&mut self) {
        if let Some(pid) = self.master_pid() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            // The master takes its children down; wait (bounded) so the port is free.
            for _ in 0..100 {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Debian 12's `main.cf` as postinst writes it, with SASL through Dovecot, seen from a
/// client outside `mynetworks`; the paths are the test's own.
fn main_cf(root: &Path) -> String {
    let r = root.display();
    format!(
        "compatibility_level = 3.6\n\
         smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)\n\
         biff = no\nappend_dot_mydomain = no\nreadme_directory = no\n\
         smtpd_tls_cert_file=/etc/ssl/certs/ssl-cert-snakeoil.pem\n\
         smtpd_tls_key_file=/etc/ssl/private/ssl-cert-snakeoil.key\n\
         smtpd_tls_security_level=may\n\
         smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated defer_unauth_destination\n\
         myhostname = {HOST}\n\
         mydestination = $myhostname, localhost\n\
         relayhost =\n\
         mynetworks = 192.0.2.1/32\n\
         mailbox_size_limit = 0\nrecipient_delimiter = +\n\
         inet_interfaces = loopback-only\ninet_protocols = ipv4\n\
         alias_maps =\nalias_database =\n\
         smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = private/auth\n\
         local_transport = discard:\ndefault_transport = discard:\nrelay_transport = discard:\n\
         queue_directory = {r}/queue\ndata_directory = {r}/data\n\
         maillog_file_prefixes = /tmp, /var\nmaillog_file = {r}/maillog\n"
    )
}

/// The services Postfix needs, none chrooted, smtpd on `port`.
fn master_cf(port: u16) -> String {
    let mut s = format!("127.0.0.1:{port} inet n - n - - smtpd\n");
    for line in [
        "pickup unix n - n 60 1 pickup",
        "cleanup unix n - n - 0 cleanup",
        "qmgr unix n - n 300 1 qmgr",
        "tlsmgr unix - - n 1000? 1 tlsmgr",
        "rewrite unix - - n - - trivial-rewrite",
        "bounce unix - - n - 0 bounce",
        "defer unix - - n - 0 bounce",
        "trace unix - - n - 0 bounce",
        "verify unix - - n - 1 verify",
        "flush unix n - n 1000? 0 flush",
        "proxymap unix - - n - - proxymap",
        "showq unix n - n - - showq",
        "error unix - - n - - error",
        "retry unix - - n - - error",
        "discard unix - - n - - discard",
        "anvil unix - - n - 1 anvil",
        "scache unix - - n - 1 scache",
        "postlog unix-dgram n - n - 1 postlogd",
    ] {
        s += line;
        s.push('\n');
    }
    s
}

/// Answers Postfix's SASL requests as Dovecot's auth server does when every password is
/// wrong: the handshake, `CONT` challenges for LOGIN (and an empty one for PLAIN without
/// an initial response), then `FAIL` with the user and no reason.
fn fake_dovecot(socket: &Path) {
    use std::os::unix::net::UnixListener;
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket).expect("the auth socket");
    std::fs::set_permissions(socket, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut w) = conn else { return };
            std::thread::spawn(move || {
                let _ = w.write_all(
                    b"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\n\
                      SPID\t4242\nCUID\t1\nCOOKIE\t0123456789abcdef0123456789abcdef\nDONE\n",
                );
                let r = BufReader::new(w.try_clone().unwrap());
                // LOGIN requests (by id) that still want their user name.
                let mut want_user = std::collections::HashSet::new();
                for line in r.lines() {
                    let Ok(line) = line else { return };
                    let f: Vec<&str> = line.split('\t').collect();
                    let reply = match f.as_slice() {
                        ["AUTH", id, mech, rest @ ..] => {
                            let resp = rest.iter().any(|x| x.starts_with("resp="));
                            match (mech.to_ascii_uppercase().as_str(), resp) {
                                ("LOGIN", false) => {
                                    want_user.insert(id.to_string());
                                    format!("CONT\t{id}\tVXNlcm5hbWU6\n")
                                }
                                ("LOGIN", true) => format!("CONT\t{id}\tUGFzc3dvcmQ6\n"),
                                ("PLAIN", false) => format!("CONT\t{id}\t\n"),
                                _ => format!("FAIL\t{id}\tuser=someone\n"),
                            }
                        }
                        ["CONT", id, ..] if want_user.remove(*id) => {
                            format!("CONT\t{id}\tUGFzc3dvcmQ6\n")
                        }
                        ["CONT", id, ..] => format!("FAIL\t{id}\tuser=someone\n"),
                        _ => continue,
                    };
                    if w.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
}

fn start_real() -> Real {
    start_real_with("")
}

/// The real Postfix with `extra` lines appended to its main.cf.
fn start_real_with(extra: &str) -> Real {
    assert!(
        Path::new(POSTFIX).exists(),
        "this test needs the real Postfix: DEBIAN_FRONTEND=noninteractive apt-get install -y \
         --no-install-recommends postfix (scripts/test.sh)"
    );
    let dir = tempfile::Builder::new()
        .prefix("smtp-oracle")
        .tempdir_in("/tmp")
        .unwrap();
    let root = dir.path();
    // Postfix's own processes (user postfix) walk into it.
    std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for d in ["conf", "queue", "data"] {
        std::fs::create_dir(root.join(d)).unwrap();
    }
    let chown = Command::new("chown")
        .args(["postfix", root.join("data").to_str().unwrap()])
        .status()
        .unwrap();
    assert!(chown.success(), "chown postfix (the test runs as root)");
    let port = free_port();
    std::fs::write(root.join("conf/main.cf"), main_cf(root) + extra).unwrap();
    std::fs::write(root.join("conf/master.cf"), master_cf(port)).unwrap();
    let out = Command::new(POSTFIX)
        .args(["-c", root.join("conf").to_str().unwrap(), "start"])
        .output()
        .unwrap();
    let real = Real {
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        dir,
    };
    assert!(
        out.status.success(),
        "postfix start: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(real.dir.path().join("maillog")).unwrap_or_default()
    );
    // `start` made the queue's private directory; the auth socket goes there.
    fake_dovecot(&real.dir.path().join("queue/private/auth"));
    for _ in 0..200 {
        if std::net::TcpStream::connect(real.addr).is_ok() {
            return real;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("postfix did not listen on {}", real.addr);
}

async fn start_ours(dir: &Path) -> (ServiceManager, SocketAddr) {
    start_ours_with(dir, SmtpOptions::default()).await
}

/// Ours with `opts` (the host name and an immediate SASL failure set here).
async fn start_ours_with(dir: &Path, opts: SmtpOptions) -> (ServiceManager, SocketAddr) {
    let (sink, mut rx) = EventSink::channel(16 * 1024);
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let mut mgr = ServiceManager::new(sink, dir.join("state"), Limits::default());
    mgr.apply(&NodeConfig {
        services: vec![ServiceConfig {
            name: "smtp".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            enabled: true,
            kind: ServiceKind::Smtp(SmtpOptions {
                hostname: HOST.into(),
                auth_failure_delay_ms: 0,
                ..opts
            }),
        }],
    })
    .await;
    let st = mgr.status();
    assert!(st[0].running, "{st:?}");
    let addr = st[0].listen.parse().unwrap();
    (mgr, addr)
}

/// What one client sends in one write, and how many final reply lines it waits for.
type Chunk = (Vec<u8>, usize);

fn c(line: &str) -> Chunk {
    (format!("{line}\r\n").into_bytes(), 1)
}

fn raw(bytes: &[u8], replies: usize) -> Chunk {
    (bytes.to_vec(), replies)
}

/// Final reply lines (`250 …`, `334 `) in `text`.
fn finals(text: &[u8]) -> usize {
    text.split(|&b| b == b'\n')
        .filter(|l| l.len() >= 4 && l[..3].iter().all(u8::is_ascii_digit) && l[3] == b' ')
        .count()
}

/// Runs one probe; the transcript (greeting, then each chunk's replies, `[closed]` once
/// the server has closed) with queue ids normalised.
async fn run(addr: SocketAddr, chunks: &[Chunk]) -> Vec<String> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut out = Vec::new();
    let mut closed = false;
    let read = async |s: &mut TcpStream, n: usize, closed: &mut bool| {
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        while finals(&got) < n && !*closed {
            match tokio::time::timeout(WAIT, s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => *closed = true,
                Ok(Ok(k)) => got.extend_from_slice(&buf[..k]),
                Err(_) => {
                    got.extend_from_slice(b"[no reply]");
                    break;
                }
            }
        }
        normalise(&String::from_utf8_lossy(&got))
    };
    out.push(read(&mut s, 1, &mut closed).await);
    for (bytes, n) in chunks {
        if closed || s.write_all(bytes).await.is_err() {
            closed = true;
            break;
        }
        let got = read(&mut s, *n, &mut closed).await;
        // A server that closed without a word: only `[closed]` below, however the
        // close showed (a failed write or an end of stream).
        if !got.is_empty() {
            out.push(got);
        }
    }
    // A reply that ends the session (221, 421, 521) must be followed by the close; the
    // test waits for it there (and only there, so open sessions cost no waiting).
    let last_line = out
        .last()
        .and_then(|r| r.trim_end().lines().last())
        .unwrap_or("");
    if !closed
        && ["221 ", "421 ", "521 "]
            .iter()
            .any(|c| last_line.starts_with(c))
    {
        let mut b = [0u8; 64];
        if let Ok(Ok(0)) = tokio::time::timeout(WAIT, s.read(&mut b)).await {
            closed = true;
        }
    }
    if closed {
        out.push("[closed]".into());
    }
    out
}

fn normalise(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("queued as ") {
        let (head, tail) = rest.split_at(i + "queued as ".len());
        out.push_str(head);
        out.push_str("QUEUEID");
        rest = tail.trim_start_matches(|c: char| c.is_ascii_hexdigit());
    }
    out.push_str(rest);
    out
}

fn probes() -> Vec<(&'static str, Vec<Chunk>)> {
    let long_noop = format!("NOOP {}", "a".repeat(3000));
    let long_mail = format!("MAIL FROM:<{}@b>", "a".repeat(600));
    vec![
        ("ehlo", vec![c("EHLO client.example"), c("QUIT")]),
        (
            "helo",
            vec![c("HELO x"), c("HELO"), c("EHLO"), c("HELO a b"), c("EHLO a b"), c("QUIT x")],
        ),
        (
            "sequence",
            vec![
                c("MAIL FROM:<a@b.c>"),
                c("RCPT TO:<x@y.z>"),
                c("DATA"),
                c("EHLO c"),
                c("RCPT TO:<x@y.z>"),
                c("DATA"),
                c("MAIL FROM:<a@b.c>"),
                c("DATA"),
                c("HELO again"),
                c("RCPT TO:<root@localhost>"),
                c("QUIT"),
            ],
        ),
        (
            "unknown",
            vec![c("FOO bar"), c("EXPN root"), c("HELP"), c(""), c("   "), c("QUIT")],
        ),
        ("http", vec![c("GET / HTTP/1.0")]),
        ("connect", vec![c("CONNECT mx.example.com:25 HTTP/1.0")]),
        ("bogus", vec![c("EHLO c"), c("*1\r\n$4\r\nPING")]),
        (
            "relay_then_local",
            vec![
                c("EHLO c"),
                c("MAIL FROM:<spam@evil.com>"),
                c("RCPT TO:<victim@gmail.com>"),
                c("RCPT TO:<postmaster@mx.oracle.test>"),
                c("DATA"),
                raw(b"Subject: hi\r\n\r\nbody\r\n..dot\r\n.\r\n", 1),
                c("DATA"),
                c("QUIT"),
            ],
        ),
        (
            "misc",
            vec![
                c("NOOP"),
                c("NOOP x"),
                c("RSET"),
                c("RSET x"),
                c("VRFY root"),
                c("VRFY"),
                c("VRFY nosuchuser"),
                c("VRFY <root@localhost>"),
                c("VRFY root@gmail.com"),
                c("ETRN x"),
                c("EHLO c"),
                c("ETRN"),
                c("ETRN x"),
                c("MAIL FROM:<a@b>"),
                c("ETRN x"),
                c("STARTTLS"),
                c("QUIT"),
            ],
        ),
        (
            "auth",
            vec![
                c("EHLO c"),
                c("AUTH PLAIN AGZvbwBiYXI="),
                c("AUTH PLAIN"),
                c("AGZvbwBiYXI="),
                c("AUTH LOGIN"),
                c("Zm9v"),
                c("YmFy"),
                c("AUTH LOGIN Zm9v"),
                c("YmFy"),
                c("AUTH PLAIN"),
                c("*"),
                c("AUTH CRAM-MD5"),
                c("AUTH"),
                c("AUTH PLAIN !!!"),
                c("AUTH LOGIN"),
                c("*"),
                c("AUTH PLAIN ="),
                c("QUIT"),
            ],
        ),
        (
            "auth_in_transaction",
            vec![
                c("EHLO c"),
                c("MAIL FROM:<a@b>"),
                c("AUTH PLAIN AGZvbwBiYXI="),
                c("QUIT"),
            ],
        ),
        (
            "mail_syntax",
            vec![
                c("EHLO c"),
                c("MAIL FROM: <a@b>"),
                c("MAIL FROM:<a@b>"),
                c("RSET"),
                c("MAIL FROM:a@b"),
                c("RSET"),
                c("MAIL TO:<a@b>"),
                c("MAIL"),
                c("MAIL FROM:<a b>"),
                c("MAIL FROM:<>"),
                c("RCPT TO:<>"),
                c("RCPT TO:<a b>"),
                c("RCPT"),
                c("RCPT FROM:<x@y>"),
                c("RCPT TO:<postmaster>"),
                c("RCPT TO:<@a:b@c>"),
                c("RSET"),
                c("MAIL FROM:<a@b> SIZE=20000000"),
                c("MAIL FROM:<a@b> FOO=bar"),
                c("MAIL FROM:<a@b> BODY=8BITMIME"),
                c("RSET"),
                c("MAIL FROM:<a@b> SIZE=100 BODY=8BITMIME SMTPUTF8"),
                c("QUIT"),
            ],
        ),
        (
            "recipients",
            vec![
                c("EHLO c"),
                c("MAIL FROM:<a@b>"),
                c("RCPT TO:<nosuchuser@localhost>"),
                c("RCPT TO:<root@mx>"),
                c("RCPT TO:<root@[127.0.0.1]>"),
                c("RCPT TO:<x@[1.2.3.4]>"),
                c("RCPT TO:root@localhost"),
                c("RCPT TO: <root+tag@localhost>"),
                c("RCPT TO:<root@localhost> NOTIFY=NEVER"),
                c("RCPT TO:<root@localhost> FOO=1"),
                c("DATA x"),
                c("rcpt to:<x@gmail.com>"),
                c("Quit"),
            ],
        ),
        (
            "long_lines",
            vec![c(&long_noop), c(&long_mail), c("RSET"), c("QUIT")],
        ),
        (
            "pipelining",
            vec![raw(
                b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<root@localhost>\r\nRCPT TO:<x@gmail.com>\r\n\
                  DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
                7,
            )],
        ),
        (
            "bdat",
            vec![
                c("EHLO a"),
                raw(b"BDAT 5\r\nhello", 1),
                c("MAIL FROM:<a@b>"),
                c("RCPT TO:<root@localhost>"),
                raw(b"BDAT 6\r\nhello ", 1),
                raw(b"BDAT 7 LAST\r\nworld\r\n", 1),
                c("QUIT"),
            ],
        ),
        (
            "bdat_message",
            vec![
                c("EHLO a"),
                c("MAIL FROM:<a@b>"),
                c("RCPT TO:<root@localhost>"),
                raw(b"BDAT 6\r\nhello ", 1),
                raw(b"BDAT 7 LAST\r\nworld\r\n", 1),
                c("MAIL FROM:<a@b>"),
                c("RCPT TO:<root@localhost>"),
                raw(b"BDAT 5 LAST\r\nagain", 1),
                c("QUIT"),
            ],
        ),
        ("bdat_syntax", vec![c("EHLO a"), c("BDAT")]),
        (
            "control_characters",
            vec![
                c("EHLO c"),
                c("VRFY a\u{1}b"),
                c("VRFY a\rb"),
                c("MAIL FROM:<a@b> X=\u{2}y"),
                c("MAIL FROM:<a@b>"),
                c("RCPT TO:<\u{e9}x@gmail.com>"),
                c("RCPT TO:<x\u{7f}@gmail.com>"),
                raw(b"RCPT TO:<\xff\xfe@gmail.com>\r\n", 1),
                raw(b"MAIL FROM:<a@b> \xe9=1\r\n", 1),
                raw(b"VRFY \xc3(x\r\n", 1),
                c("QUIT"),
            ],
        ),
        (
            "edges",
            vec![
                raw(b"EHLO bare-lf\n", 1),
                c("AUTH LOGIN"),
                c("!!!"),
                c("AUTH PLAIN"),
                c("AGZvbwBi YXI="),
                c("VRFY root SMTPUTF8"),
                c("MAIL FROM:<a@b> SIZE=abc"),
                c("MAIL FROM:<a@b> BODY=9BIT"),
                c("MAIL FROM:<a@b> RET=HDRS ENVID=x SMTPUTF8"),
                c("RCPT TO:<root@LOCALHOST>"),
                c("RCPT TO:<ROOT@localhost>"),
                c("RCPT TO:<root@localhost.>"),
                c("VRFY a b"),
                c("DATA"),
                raw(b"bare\nlf\n.\n", 1),
                c("HELO   spaced   "),
                c("NOOP"),
                c("QUIT"),
            ],
        ),
        (
            "starttls_syntax",
            vec![c("EHLO c"), c("STARTTLS foo"), c("QUIT")],
        ),
    ]
}

/// Runs every probe against both; (name, real, ours) of those that differ, and the count.
async fn compare(
    real: SocketAddr,
    ours: SocketAddr,
    probes: Vec<(&'static str, Vec<Chunk>)>,
) -> (Vec<(&'static str, Vec<String>, Vec<String>)>, usize, usize) {
    // Every probe is its own session: all run at once (Postfix's error sleeps make some
    // take seconds), each against both servers.
    let mut set = tokio::task::JoinSet::new();
    for (i, (name, chunks)) in probes.into_iter().enumerate() {
        set.spawn(async move {
            let (r, o) = tokio::join!(run(real, &chunks), run(ours, &chunks));
            (i, name, r, o)
        });
    }
    let mut done = set.join_all().await;
    done.sort_by_key(|d| d.0);
    let mut diffs = Vec::new();
    let (mut replies, mut same) = (0, 0);
    for (_, name, r, o) in done {
        replies += r.len().max(o.len());
        same += r.iter().zip(&o).filter(|(a, b)| a == b).count();
        if r != o {
            diffs.push((name, r, o));
        }
    }
    (diffs, same, replies)
}

fn report(diffs: &[(&str, Vec<String>, Vec<String>)], same: usize, total: usize) {
    eprintln!(
        "smtp oracle: {same}/{total} replies identical to Postfix 3.7 ({:.1}%)",
        100.0 * same as f64 / total.max(1) as f64
    );
    for (name, r, o) in diffs {
        eprintln!("--- probe {name}\nreal: {r:#?}\nours: {o:#?}");
    }
}

fn state_dir() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().to_owned();
    (d, p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_match_postfix_byte_for_byte() {
    let real = start_real();
    let (_d, dir) = state_dir();
    let (mut mgr, ours) = start_ours(&dir).await;
    let (diffs, same, total) = compare(real.addr, ours, probes()).await;
    report(&diffs, same, total);
    assert!(diffs.is_empty(), "{} probes differ", diffs.len());
    mgr.shutdown().await;
}

/// Twenty errors: from the tenth on every reply waits a second, then 421 (about 25 s on
/// both servers together).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_limits_match_postfix_slow() {
    let real = start_real();
    let (_d, dir) = state_dir();
    let (mut mgr, ours) = start_ours(&dir).await;
    let probes = vec![("errors", (0..22).map(|_| c("XYZZY")).collect())];
    let (diffs, same, total) = compare(real.addr, ours, probes).await;
    report(&diffs, same, total);
    assert!(diffs.is_empty());
    mgr.shutdown().await;
}

/// STARTTLS with a real client (`openssl s_client -starttls smtp`): after the handshake
/// both forget the EHLO and no longer offer STARTTLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_matches_postfix() {
    tools::require(&["openssl"]);
    let real = start_real();
    let (_d, dir) = state_dir();
    let (mut mgr, ours) = start_ours(&dir).await;
    let session = |addr: SocketAddr| {
        let mut child = Command::new("timeout")
            .args([
                "20",
                "openssl",
                "s_client",
                "-quiet",
                "-crlf",
                "-starttls",
                "smtp",
            ])
            .arg("-connect")
            .arg(addr.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The client sends these after the handshake; QUIT ends the session.
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"MAIL FROM:<a@b>\nEHLO tls.example\nSTARTTLS\nQUIT\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (r, o) = tokio::task::spawn_blocking(move || (session(real.addr), session(ours)))
        .await
        .unwrap();
    assert!(r.contains("250 CHUNKING"), "{r}");
    assert!(!r.contains("STARTTLS"), "{r}");
    assert_eq!(r, o);
    mgr.shutdown().await;
}

/// `nmap -sV` names ours as it names the real Postfix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nmap_sv_names_postfix_smtpd_like_the_real_one() {
    tools::require(&["nmap"]);
    let real = start_real();
    let (_d, dir) = state_dir();
    let (mut mgr, ours) = start_ours(&dir).await;
    let sv = |addr: SocketAddr| {
        let out = Command::new("nmap")
            .args([
                "-sV",
                "-Pn",
                "-n",
                "-p",
                &addr.port().to_string(),
                "127.0.0.1",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{}/tcp", addr.port())))
            .unwrap_or_else(|| panic!("no port line in {text}"))
            .to_owned();
        // The port number differs; the rest of the line must not.
        line.split_once(' ')
            .map(|(_, rest)| rest.trim().to_owned())
            .unwrap()
    };
    let (r, o) = tokio::task::spawn_blocking(move || (sv(real.addr), sv(ours)))
        .await
        .unwrap();
    assert!(r.contains("Postfix smtpd"), "{r}");
    assert_eq!(r, o);
    mgr.shutdown().await;
}

/// message_size_limit: announced in EHLO, enforced on MAIL's SIZE=, on DATA and on BDAT
/// (both servers at 4096 bytes); smtpd_recipient_limit (both at 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_match_postfix() {
    let real = start_real_with("message_size_limit = 4096\nsmtpd_recipient_limit = 2\n");
    let (_d, dir) = state_dir();
    let opts = SmtpOptions {
        max_message_bytes: 4096,
        max_recipients: 2,
        ..SmtpOptions::default()
    };
    let (mut mgr, ours) = start_ours_with(&dir, opts).await;
    let big = format!(
        "Subject: big\r\n\r\n{}\r\n.\r\n",
        "0123456789\r\n".repeat(500)
    );
    let small = "Subject: small\r\n\r\nhello\r\n.\r\n";
    let chunk = format!("BDAT 5000 LAST\r\n{}", "x".repeat(5000));
    let probes = vec![(
        "size",
        vec![
            c("EHLO c"),
            c("MAIL FROM:<a@b> SIZE=5000"),
            c("MAIL FROM:<a@b> SIZE=4000"),
            c("RCPT TO:<root@localhost>"),
            c("DATA"),
            raw(big.as_bytes(), 1),
            c("MAIL FROM:<a@b>"),
            c("RCPT TO:<root@localhost>"),
            c("DATA"),
            raw(small.as_bytes(), 1),
            c("MAIL FROM:<a@b>"),
            c("RCPT TO:<root@localhost>"),
            raw(chunk.as_bytes(), 1),
            c("MAIL FROM:<a@b>"),
            c("RCPT TO:<root@localhost>"),
            c("RCPT TO:<postmaster@localhost>"),
            c("RCPT TO:<daemon@localhost>"),
            c("RCPT TO:<x@gmail.com>"),
            c("DATA"),
            raw(small.as_bytes(), 1),
            c("QUIT"),
        ],
    )];
    let (diffs, same, total) = compare(real.addr, ours, probes).await;
    report(&diffs, same, total);
    assert!(diffs.is_empty());
    mgr.shutdown().await;
}

/// nmap's SMTP scripts as scanners run them: the open-relay check (16 relaying tricks),
/// the EHLO command list and user enumeration (VRFY, then RCPT) report the same for ours
/// as for the real Postfix. nmap prints the scripts in the order they finish, so the
/// lines are compared sorted. About 40 s (the relay checks wait out Postfix's error
/// sleeps).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nmap_smtp_scripts_report_the_same_slow() {
    tools::require(&["nmap"]);
    let real = start_real();
    let (_d, dir) = state_dir();
    let (mut mgr, ours) = start_ours(&dir).await;
    let scripts = |addr: SocketAddr| {
        let port = addr.port().to_string();
        let out = Command::new("nmap")
            .args(["-sV", "-Pn", "-n", "-p", &port, "127.0.0.1"])
            .args(["--script", "smtp-open-relay,smtp-commands,smtp-enum-users"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // From the port line to the end of the script output, the port number removed.
        text.lines()
            .skip_while(|l| !l.starts_with(&format!("{port}/tcp")))
            .take_while(|l| {
                !l.is_empty()
                    && !l.starts_with("Service Info")
                    && !l.starts_with("Service detection")
            })
            .map(|l| l.replace(&port, "PORT"))
            .collect::<Vec<_>>()
    };
    let (mut r, mut o) = tokio::task::spawn_blocking(move || (scripts(real.addr), scripts(ours)))
        .await
        .unwrap();
    assert!(
        r.iter()
            .any(|l| l.contains("smtp-open-relay: Server doesn't seem to be an open relay")),
        "{r:?}"
    );
    r.sort();
    o.sort();
    assert_eq!(r, o);
    mgr.shutdown().await;
}
