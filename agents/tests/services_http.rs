//! HTTP and HTTPS personas over real sockets, driven by the real clients attackers use:
//! curl (pages, logins, large and too-large bodies), openssl (the device certificate and
//! its stability across restarts), hydra (400 form logins, every one recorded) and
//! nmap -sV (named lighttpd, and ssl/http).

mod memory;
mod tools;

use memory::{part_bytes, rss_anon};

use honeybee_agent::captures::CaptureSpool;
use honeybee_agent::services::{Limits, ServiceManager};
use honeybee_agent::sink::{EventSink, NewEvent};
use honeybee_proto::config::{HttpOptions, HttpPersona, NodeConfig, ServiceConfig, ServiceKind};
use honeybee_proto::event::{AuthAttempt, AuthMethod, EventKind, HttpRequest};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(60);

fn service(name: &str, opts: HttpOptions) -> ServiceConfig {
    ServiceConfig {
        name: name.into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        enabled: true,
        kind: ServiceKind::Http(opts),
    }
}

fn router() -> HttpOptions {
    HttpOptions::default()
}

fn wordpress() -> HttpOptions {
    HttpOptions {
        persona: HttpPersona::Wordpress,
        ..HttpOptions::default()
    }
}

struct Node {
    mgr: ServiceManager,
    rx: mpsc::Receiver<NewEvent>,
    spool: CaptureSpool,
    addrs: Vec<SocketAddr>,
    seen: Vec<NewEvent>,
}

async fn start(dir: &Path, services: Vec<ServiceConfig>) -> Node {
    let (sink, rx) = EventSink::channel(16 * 1024);
    let spool = CaptureSpool::open(&dir.join("captures"), 256 * 1024 * 1024).unwrap();
    let mut mgr = ServiceManager::new(sink, dir.join("state"), Limits::default())
        .with_captures(spool.clone());
    mgr.apply(&NodeConfig { services }).await;
    let addrs = mgr
        .status()
        .iter()
        .map(|s| {
            assert!(s.running, "{s:?}");
            s.listen.parse().unwrap()
        })
        .collect();
    Node {
        mgr,
        rx,
        spool,
        addrs,
        seen: Vec::new(),
    }
}

impl Node {
    /// Reads events until `done` holds for everything seen so far (or fails after WAIT).
    async fn until(&mut self, what: &str, done: impl Fn(&[NewEvent]) -> bool) -> &[NewEvent] {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(&self.seen) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(e)) => self.seen.push(e),
                _ => panic!("timed out waiting for {what}; saw {:#?}", self.seen),
            }
        }
        &self.seen
    }

    fn requests(&self) -> Vec<HttpRequest> {
        self.seen
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::HttpRequest(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }
}

fn requests(ev: &[NewEvent]) -> usize {
    ev.iter()
        .filter(|e| matches!(e.kind, EventKind::HttpRequest(_)))
        .count()
}

fn attempts(ev: &[NewEvent]) -> Vec<AuthAttempt> {
    ev.iter()
        .filter_map(|e| match &e.kind {
            EventKind::AuthAttempt(a) => Some(a.clone()),
            _ => None,
        })
        .collect()
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("client runs")
}

/// curl with a deadline, as a child process the runtime waits for; returns (status code,
/// response headers, body).
async fn curl(args: &[&str]) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("h");
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "30", "-D"])
        .arg(&headers)
        .args(["-o", "-", "-w", "%{stderr}%{http_code}"])
        .args(args)
        .output()
        .await
        .expect("curl runs");
    let code = String::from_utf8_lossy(&out.stderr)
        .trim()
        .parse()
        .unwrap_or(0);
    (
        code,
        std::fs::read_to_string(headers).unwrap_or_default(),
        out.stdout,
    )
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

#[tokio::test]
async fn router_pages_and_form_login_with_curl() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path(), vec![service("http", router())]).await;
    let base = format!("http://{}", node.addrs[0]);

    let (code, headers, body) = curl(&[&format!("{base}/")]).await;
    assert_eq!(code, 200);
    let page = String::from_utf8(body).unwrap();
    assert!(
        page.contains("<form method=\"post\" action=\"/login.cgi\""),
        "{page}"
    );
    assert!(headers.contains("Server: lighttpd/1.4.69\r\n"), "{headers}");
    assert!(headers.contains("Date: "), "{headers}");
    assert!(headers.contains("Content-Type: text/html"), "{headers}");

    let (code, _, body) = curl(&[
        "-A",
        "Mozilla/5.0 (HoneyBee test)",
        "-d",
        "username=admin&password=s3cr%26t",
        &format!("{base}/login.cgi?lang=en"),
    ])
    .await;
    assert_eq!(code, 200);
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("Invalid username or password.")
    );

    let (code, _, body) = curl(&[&format!("{base}/favicon.ico")]).await;
    assert_eq!(code, 404);
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("<title>404 Not Found</title>")
    );
    // Basic credentials, as scanners send them to every router.
    let (code, _, _) = curl(&["-u", "root:vizxv", &format!("{base}/cgi-bin/")]).await;
    assert_eq!(code, 403);

    let ev = node
        .until("4 requests and 2 logins", |ev| {
            requests(ev) >= 4 && attempts(ev).len() >= 2
        })
        .await
        .to_vec();
    let reqs = node.requests();
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(reqs[0].path, "/");
    assert_eq!(reqs[0].status, 200);
    assert_eq!(reqs[0].version, "HTTP/1.1");
    assert!(reqs[0].user_agent.as_deref().unwrap().starts_with("curl/"));
    assert!(reqs[0].headers.iter().any(|(k, _)| k == "user-agent"));
    assert!(
        reqs[0]
            .headers
            .iter()
            .all(|(k, _)| *k == k.to_ascii_lowercase())
    );
    let post = &reqs[1];
    assert_eq!(
        (post.method.as_str(), post.path.as_str()),
        ("POST", "/login.cgi")
    );
    assert_eq!(post.query.as_deref(), Some("lang=en"));
    assert_eq!(post.body, b"username=admin&password=s3cr%26t");
    assert!(!post.body_truncated);
    assert_eq!(
        (reqs[2].path.as_str(), reqs[2].status),
        ("/favicon.ico", 404)
    );
    assert_eq!(reqs[3].status, 403);

    let a = attempts(&ev);
    assert_eq!(a.len(), 2, "{a:?}");
    assert_eq!(a[0].method, AuthMethod::Password);
    assert_eq!(
        (a[0].username.as_str(), a[0].password.as_deref()),
        ("admin", Some("s3cr&t"))
    );
    assert_eq!(
        a[0].client_version.as_deref(),
        Some("Mozilla/5.0 (HoneyBee test)")
    );
    assert!(!a[0].success);
    assert_eq!(
        (a[1].username.as_str(), a[1].password.as_deref()),
        ("root", Some("vizxv"))
    );
    // Every event of the connection carries the service and a session.
    assert!(
        ev.iter()
            .all(|e| e.service == "http" && e.session.is_some())
    );
    node.mgr.shutdown().await;
}

#[tokio::test]
async fn wordpress_pages_with_curl() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path(), vec![service("wp", wordpress())]).await;
    let base = format!("http://{}", node.addrs[0]);

    let (code, headers, body) = curl(&[&format!("{base}/")]).await;
    assert_eq!(code, 200);
    assert!(
        headers.contains("Server: Apache/2.4.62 (Debian)\r\n"),
        "{headers}"
    );
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("content=\"WordPress 6.4.3\"")
    );

    let (code, headers, _) = curl(&[&format!("{base}/wp-admin/")]).await;
    assert_eq!(code, 302);
    let want = format!(
        "location: {base}/wp-login.php?redirect_to={}%2Fwp-admin%2F&reauth=1",
        base.replace(':', "%3A").replace('/', "%2F")
    );
    assert!(
        headers
            .to_ascii_lowercase()
            .contains(&want.to_ascii_lowercase()),
        "{headers}\n{want}"
    );

    let (code, _, body) = curl(&[
        "-d",
        "log=admin&pwd=letmein&wp-submit=Log+In",
        &format!("{base}/wp-login.php"),
    ])
    .await;
    assert_eq!(code, 200);
    let page = String::from_utf8(body).unwrap();
    assert!(page.contains(
        "The password you entered for the username <strong>admin</strong> is incorrect."
    ));

    let xml = "<?xml version=\"1.0\"?><methodCall><methodName>wp.getUsersBlogs</methodName><params><param><value><string>editor</string></value></param><param><value><string>qwerty</string></value></param></params></methodCall>";
    let (code, _, body) = curl(&[
        "-H",
        "Content-Type: text/xml",
        "--data-binary",
        xml,
        &format!("{base}/xmlrpc.php"),
    ])
    .await;
    assert_eq!(code, 200);
    assert!(String::from_utf8(body).unwrap().contains("<int>403</int>"));

    let ev = node
        .until("2 logins", |ev| attempts(ev).len() >= 2)
        .await
        .to_vec();
    let a = attempts(&ev);
    assert_eq!(
        (a[0].username.as_str(), a[0].password.as_deref()),
        ("admin", Some("letmein"))
    );
    assert_eq!(
        (a[1].username.as_str(), a[1].password.as_deref()),
        ("editor", Some("qwerty"))
    );
    node.mgr.shutdown().await;
}

#[tokio::test]
async fn large_body_becomes_a_capture_and_too_large_is_413() {
    let dir = tempfile::tempdir().unwrap();
    let opts = HttpOptions {
        max_inline_body: 512,
        max_body_bytes: 256 * 1024,
        ..router()
    };
    let mut node = start(dir.path(), vec![service("http", opts)]).await;
    let base = format!("http://{}", node.addrs[0]);

    let body: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let file = dir.path().join("body.bin");
    std::fs::write(&file, &body).unwrap();
    let at_file = format!("@{}", file.display());
    let (code, _, _) = curl(&[
        "--data-binary",
        &at_file,
        "-H",
        "Content-Type: application/octet-stream",
        &format!("{base}/cgi-bin/upload.cgi"),
    ])
    .await;
    assert_eq!(code, 404);
    let ev = node
        .until("the capture and the request", |ev| {
            requests(ev) >= 1
                && ev
                    .iter()
                    .any(|e| matches!(e.kind, EventKind::Capture { .. }))
        })
        .await
        .to_vec();
    let want = sha256_hex(&body);
    let (kind, sha, size, name) = ev
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Capture {
                kind,
                sha256,
                size,
                name,
            } => Some((kind.clone(), sha256.clone(), *size, name.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (kind.as_str(), sha.as_str(), size),
        ("body", want.as_str(), body.len() as u64)
    );
    assert_eq!(name.as_deref(), Some("/cgi-bin/upload.cgi"));
    let req = &node.requests()[0];
    assert!(req.body_truncated);
    assert_eq!(req.body, body[..512]);
    // The spool holds the whole body under its hash, ready for the core.
    let pending = node.spool.pending();
    assert_eq!(pending.len(), 1);
    assert_eq!(hex::encode(pending[0].0.sha256), want);
    assert_eq!(std::fs::read(&pending[0].1).unwrap(), body);

    // Over the cap, announced: 413 without reading it.
    let big = dir.path().join("big.bin");
    std::fs::write(&big, vec![b'x'; 300 * 1024]).unwrap();
    let at_big = format!("@{}", big.display());
    let (code, _, _) = curl(&["--data-binary", &at_big, &format!("{base}/login.cgi")]).await;
    assert_eq!(code, 413);
    // Over the cap, chunked (no length announced): cut off at the cap.
    let (code, _, _) = curl(&[
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &at_big,
        &format!("{base}/login.cgi"),
    ])
    .await;
    assert_eq!(code, 413);
    let ev = node
        .until("two 413s", |ev| {
            ev.iter()
                .filter(|e| matches!(&e.kind, EventKind::LimitReached { limit, .. } if limit == "http_body"))
                .count()
                >= 2
                && requests(ev) >= 3
        })
        .await
        .to_vec();
    let statuses: Vec<u16> = node.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [404, 413, 413]);
    assert!(node.requests()[1..].iter().all(|r| r.body_truncated));
    // No capture for what was refused.
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e.kind, EventKind::Capture { .. }))
            .count(),
        1
    );
    assert_eq!(node.spool.pending().len(), 1);
    node.mgr.shutdown().await;
}

/// Subject and SHA-256 fingerprint of the certificate served at `addr`, by openssl.
async fn served_cert(addr: SocketAddr, tls_flag: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("c.pem");
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "timeout 60 openssl s_client -connect {addr} {tls_flag} -servername router.lan </dev/null 2>/dev/null | openssl x509 -out {}",
            pem.display()
        ))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = run(Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-subject",
            "-fingerprint",
            "-sha256",
            "-nameopt",
            "RFC2253",
            "-in",
        ])
        .arg(&pem));
    let text = String::from_utf8(out.stdout).unwrap();
    let subject = text
        .lines()
        .find_map(|l| l.strip_prefix("subject="))
        .unwrap()
        .trim()
        .to_owned();
    let fp = text
        .lines()
        .find_map(|l| l.split_once("Fingerprint=").map(|x| x.1.to_owned()))
        .unwrap();
    (subject, fp)
}

#[tokio::test]
async fn https_serves_a_stable_device_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let opts = HttpOptions {
        tls: true,
        cert_common_name: "192.168.1.1".into(),
        cert_organization: "ACME Networks Co., Ltd.".into(),
        ..router()
    };
    let mut node = start(dir.path(), vec![service("https", opts.clone())]).await;
    let addr = node.addrs[0];

    let (code, _, body) = curl(&["-k", &format!("https://{addr}/")]).await;
    assert_eq!(code, 200);
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("Administrator Login")
    );
    let (code, _, _) = curl(&[
        "-k",
        "--tls-max",
        "1.2",
        &format!("https://{addr}/robots.txt"),
    ])
    .await;
    assert_eq!(code, 200);
    let (subject, fp) = served_cert(addr, "-tls1_3").await;
    assert_eq!(subject, "CN=192.168.1.1,O=ACME Networks Co.\\, Ltd.");
    assert_eq!(served_cert(addr, "-tls1_2").await.1, fp);
    node.until("2 requests", |ev| requests(ev) >= 2).await;
    // Requests over TLS are recorded like any other.
    assert_eq!(node.requests()[1].path, "/robots.txt");
    node.mgr.shutdown().await;

    // The key is private to the agent's user.
    let state = dir.path().join("state");
    let key = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "key"))
        .expect("key file in the data directory");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A new agent process on the same data directory serves the same certificate.
    let node2 = start(dir.path(), vec![service("https", opts)]).await;
    let (subject2, fp2) = served_cert(node2.addrs[0], "").await;
    assert_eq!((subject2, fp2), (subject, fp));
    let mut node2 = node2;
    node2.mgr.shutdown().await;
}

fn write_list(dir: &Path, name: &str, items: &[String]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, items.join("\n") + "\n").unwrap();
    p
}

/// Runs hydra with 20×20 lists from a temp dir (its restore file and output stay there).
fn hydra(addr: SocketAddr, module: &str, spec: &str) -> (Vec<String>, Vec<String>, Output) {
    let dir = tempfile::tempdir().unwrap();
    let users: Vec<String> = (0..20).map(|i| format!("user{i:02}")).collect();
    let passwords: Vec<String> = (0..20).map(|i| format!("Pw{i:02}x{}", i * 7)).collect();
    let u = write_list(dir.path(), "users.txt", &users);
    let p = write_list(dir.path(), "passwords.txt", &passwords);
    let out = Command::new("timeout")
        .arg("600")
        .arg("hydra")
        .arg("-L")
        .arg(&u)
        .arg("-P")
        .arg(&p)
        .args(["-t", "4", "-I", "-o"])
        .arg(dir.path().join("found.txt"))
        .args([
            "-s",
            &addr.port().to_string(),
            &addr.ip().to_string(),
            module,
            spec,
        ])
        .current_dir(dir.path())
        .output()
        .expect("hydra runs");
    (users, passwords, out)
}

/// Every pair of the lists exactly once among `attempts`.
fn assert_all_pairs(attempts: &[AuthAttempt], users: &[String], passwords: &[String]) {
    let mut got: BTreeMap<(String, String), usize> = BTreeMap::new();
    for a in attempts {
        *got.entry((a.username.clone(), a.password.clone().unwrap_or_default()))
            .or_default() += 1;
        assert!(!a.success);
    }
    for u in users {
        for p in passwords {
            assert_eq!(got.get(&(u.clone(), p.clone())), Some(&1), "pair {u}/{p}");
        }
    }
    assert_eq!(got.len(), users.len() * passwords.len(), "unexpected pairs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hydra_router_form_every_attempt_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path(), vec![service("http", router())]).await;
    let addr = node.addrs[0];
    let (users, passwords, out) = tokio::task::spawn_blocking(move || {
        hydra(
            addr,
            "http-post-form",
            "/login.cgi:username=^USER^&password=^PASS^:F=Invalid username or password",
        )
    })
    .await
    .unwrap();
    tools::assert_hydra_finished(
        out.status.success(),
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
    );
    let ev = node
        .until("400 attempts", |ev| attempts(ev).len() >= 400)
        .await
        .to_vec();
    assert_all_pairs(&attempts(&ev), &users, &passwords);
    let (code, _, _) = curl(&[&format!("http://{addr}/")]).await;
    assert_eq!(code, 200, "the service still answers");
    node.mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hydra_wordpress_login_every_attempt_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path(), vec![service("wp", wordpress())]).await;
    let addr = node.addrs[0];
    let (users, passwords, out) = tokio::task::spawn_blocking(move || {
        hydra(
            addr,
            "http-post-form",
            "/wp-login.php:log=^USER^&pwd=^PASS^&wp-submit=Log+In:F=login_error",
        )
    })
    .await
    .unwrap();
    tools::assert_hydra_finished(
        out.status.success(),
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
    );
    let ev = node
        .until("400 attempts", |ev| attempts(ev).len() >= 400)
        .await
        .to_vec();
    assert_all_pairs(&attempts(&ev), &users, &passwords);
    let (code, _, _) = curl(&[&format!("http://{addr}/wp-login.php")]).await;
    assert_eq!(code, 200, "the service still answers");
    node.mgr.shutdown().await;
}

/// `(service name, product, version, tunnel)` nmap -sV reports for each port.
fn nmap_services(ports: &[u16]) -> Vec<(String, String, String, String)> {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    let out = run(Command::new("timeout").args([
        "300",
        "nmap",
        "-sV",
        "-Pn",
        "-n",
        "-p",
        &list.join(","),
        "127.0.0.1",
        "-oX",
        "-",
    ]));
    let xml = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{xml}");
    ports
        .iter()
        .map(|p| {
            let start = xml
                .find(&format!("portid=\"{p}\""))
                .unwrap_or_else(|| panic!("port {p} in {xml}"));
            let rest = &xml[start..];
            let svc = &rest[rest.find("<service ").unwrap_or_else(|| panic!("{xml}"))..];
            let svc = &svc[..svc.find('>').unwrap()];
            let attr = |name: &str| {
                svc.split(&format!(" {name}=\""))
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .unwrap_or("")
                    .to_owned()
            };
            (
                attr("name"),
                attr("product"),
                attr("version"),
                attr("tunnel"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nmap_names_lighttpd_over_http_and_https() {
    let dir = tempfile::tempdir().unwrap();
    let tls = HttpOptions {
        tls: true,
        ..router()
    };
    let node = start(
        dir.path(),
        vec![
            service("http", router()),
            service("https", tls),
            service("wp", wordpress()),
        ],
    )
    .await;
    let ports: Vec<u16> = node.addrs.iter().map(|a| a.port()).collect();
    let found = tokio::task::spawn_blocking(move || nmap_services(&ports))
        .await
        .unwrap();
    assert_eq!(
        found[0],
        (
            "http".into(),
            "lighttpd".into(),
            "1.4.69".into(),
            String::new()
        ),
        "{found:?}"
    );
    assert_eq!(
        found[1],
        (
            "http".into(),
            "lighttpd".into(),
            "1.4.69".into(),
            "ssl".into()
        ),
        "{found:?}"
    );
    assert_eq!(
        (
            found[2].0.as_str(),
            found[2].1.as_str(),
            found[2].2.as_str()
        ),
        ("http", "Apache httpd", "2.4.62"),
        "{found:?}"
    );
    let mut node = node;
    node.mgr.shutdown().await;
}

#[tokio::test]
async fn non_http_probes_and_huge_heads_are_recorded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path(), vec![service("http", router())]).await;
    let addr = node.addrs[0];

    let probe = b"SSH-2.0-Go\r\n\x00\x01\x02garbage\r\n\r\n";
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(probe).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, c.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.0 400 Bad Request\r\n"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // The persona's own page and Server header, as lighttpd would send: not a bare 400.
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.contains("\r\nServer: lighttpd/") && text.contains("<title>400 Bad Request</title>"),
        "{text}"
    );

    // A request head larger than the 8 KiB cap (lighttpd's): refused and reported as a cap.
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..400 {
        head.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "a".repeat(60)).as_bytes());
    }
    let _ = c.write_all(&head).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, c.read_to_end(&mut answer))
        .await
        .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.0 431"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        String::from_utf8_lossy(&answer).contains("\r\nServer: lighttpd/"),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    let ev = node
        .until("both probes", |ev| {
            ev.iter().filter(|e| matches!(e.kind, EventKind::Data { .. })).count() >= 2
                && ev.iter().any(|e| matches!(&e.kind, EventKind::LimitReached { limit, .. } if limit == "http_header"))
        })
        .await
        .to_vec();
    let data: Vec<_> = ev
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Data { bytes, truncated } => Some((bytes.clone(), *truncated)),
            _ => None,
        })
        .collect();
    assert_eq!(data[0], (probe.to_vec(), false));
    assert!(data[1].1, "the huge head is kept up to the cap");
    assert!(data[1].0.starts_with(b"GET / HTTP/1.1\r\n"));
    assert_eq!(requests(&ev), 0);
    node.mgr.shutdown().await;
}

/// Chunk `i` of body `seed`, made on the fly so the client holds no body.
fn body_chunk(seed: u32, i: u32, out: &mut [u8]) {
    for (j, b) in out.iter_mut().enumerate() {
        *b = ((seed as usize * 104_729 + i as usize * 7919 + j) as u32)
            .wrapping_mul(2_654_435_761)
            .rotate_right(13) as u8;
    }
}

/// The status code of the response on `c` (reads until the status line is in).
async fn status_of(c: &mut tokio::net::TcpStream) -> u16 {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + WAIT;
    while !got.windows(2).any(|w| w == b"\r\n") && got.len() < 64 * 1024 {
        match tokio::time::timeout_at(deadline, c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

/// Eight clients each POST an 8 MiB body (16 MiB cap) at once. The bodies go to the
/// capture spool as they arrive: the service holds a prefix and one chunk per request,
/// so the test process's private memory grows far less than the 64 MiB in flight, and
/// each body is stored whole under its SHA-256.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_large_bodies_stream_to_disk_and_memory_stays_flat() {
    use tokio::io::AsyncWriteExt;
    const CLIENTS: u32 = 8;
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: u32 = 128; // 8 MiB
    const BODY: u64 = CHUNKS as u64 * CHUNK as u64;
    let dir = tempfile::tempdir().unwrap();
    let opts = HttpOptions {
        max_inline_body: 1024,
        max_body_bytes: 16 * 1024 * 1024,
        ..router()
    };
    let mut node = start(dir.path(), vec![service("http", opts)]).await;
    let addr = node.addrs[0];
    let before = rss_anon();

    // Every body but its last byte, all at once; each client returns its connection and
    // the hash of what it sent.
    let senders: Vec<_> = (0..CLIENTS)
        .map(|seed| {
            tokio::spawn(async move {
                let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
                let head = format!(
                    "POST /cgi-bin/upload{seed}.cgi HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: {BODY}\r\n\r\n"
                );
                c.write_all(head.as_bytes()).await.unwrap();
                let mut sha = ring::digest::Context::new(&ring::digest::SHA256);
                let mut buf = vec![0u8; CHUNK];
                for i in 0..CHUNKS {
                    body_chunk(seed, i, &mut buf);
                    sha.update(&buf);
                    let n = if i + 1 == CHUNKS { CHUNK - 1 } else { CHUNK };
                    c.write_all(&buf[..n]).await.unwrap();
                }
                (c, sha, buf[CHUNK - 1])
            })
        })
        .collect();
    let mut open = Vec::new();
    for s in senders {
        open.push(tokio::time::timeout(WAIT, s).await.unwrap().unwrap());
    }
    // All of it reaches the disk while the requests are still open (at most one chunk
    // per request is pending in memory).
    let on_disk = u64::from(CLIENTS) * (BODY - 2 * CHUNK as u64);
    // Memory is checked all along: a service that buffers the bodies fails here.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let grown = rss_anon().saturating_sub(before);
        assert!(
            grown < 16 * 1024 * 1024,
            "private memory grew by {grown} bytes with {CLIENTS} × {BODY}-byte bodies in flight"
        );
        if part_bytes(dir.path()) >= on_disk {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bodies not on disk: {} of {on_disk}",
            part_bytes(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The last bytes: every request completes and every body is a capture.
    let mut want = Vec::new();
    for (c, sha, last) in &mut open {
        c.write_all(&[*last]).await.unwrap();
        want.push(hex::encode(sha.clone().finish().as_ref()));
    }
    for (c, _, _) in &mut open {
        assert_eq!(status_of(c).await, 404);
    }
    let ev = node
        .until("eight captures and requests", |ev| {
            requests(ev) >= CLIENTS as usize
                && ev
                    .iter()
                    .filter(|e| matches!(e.kind, EventKind::Capture { .. }))
                    .count()
                    >= CLIENTS as usize
        })
        .await
        .to_vec();
    let mut got: Vec<(String, u64)> = ev
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Capture { sha256, size, .. } => Some((sha256.clone(), *size)),
            _ => None,
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, u64)> = want.into_iter().map(|s| (s, BODY)).collect();
    want.sort();
    assert_eq!(got, want);
    for r in node.requests() {
        assert!(r.body_truncated);
        assert_eq!(r.body.len(), 1024);
    }
    // The spool holds each body whole, under its hash; nothing partial is left.
    let pending = node.spool.pending();
    assert_eq!(pending.len(), CLIENTS as usize);
    for (h, path) in &pending {
        assert_eq!(std::fs::metadata(path).unwrap().len(), BODY);
        let content = std::fs::read(path).unwrap();
        assert_eq!(sha256_hex(&content), hex::encode(h.sha256));
    }
    assert_eq!(part_bytes(dir.path()), 0);
    let grown = rss_anon().saturating_sub(before);
    assert!(
        grown < 48 * 1024 * 1024,
        "private memory grew by {grown} bytes"
    );
    node.mgr.shutdown().await;
}

/// A login form padded to 1 MiB: the persona still reads the credentials (from the
/// prefix it keeps), and the whole body is stored as a capture.
#[tokio::test]
async fn padded_login_form_is_recorded_and_captured_whole() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let opts = HttpOptions {
        max_body_bytes: 2 * 1024 * 1024,
        ..wordpress()
    };
    let mut node = start(dir.path(), vec![service("http", opts)]).await;
    let mut body = b"log=admin&pwd=hunter2&filler=".to_vec();
    body.resize(1024 * 1024, b'a');
    let mut c = tokio::net::TcpStream::connect(node.addrs[0]).await.unwrap();
    let head = format!(
        "POST /wp-login.php HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(&body).await.unwrap();
    assert_eq!(status_of(&mut c).await, 200);
    let ev = node
        .until("the login and the capture", |ev| {
            !attempts(ev).is_empty()
                && ev
                    .iter()
                    .any(|e| matches!(e.kind, EventKind::Capture { .. }))
        })
        .await
        .to_vec();
    let a = &attempts(&ev)[0];
    assert_eq!(
        (a.username.as_str(), a.password.as_deref()),
        ("admin", Some("hunter2"))
    );
    let want = sha256_hex(&body);
    assert!(ev.iter().any(|e| matches!(&e.kind,
        EventKind::Capture { kind, sha256, size, .. }
            if kind == "body" && *sha256 == want && *size == body.len() as u64)));
    assert_eq!(std::fs::read(&node.spool.pending()[0].1).unwrap(), body);
    node.mgr.shutdown().await;
}
