//! Differential test of the `router` persona against the real lighttpd 1.4.69 (Debian
//! 12's `/usr/sbin/lighttpd`): both run on loopback, the real one with a minimal config
//! whose document root holds the very pages our persona serves (fetched from it), and
//! both get the same raw requests: valid GETs and HEADs, conditional and range requests,
//! every malformed form scanners send, pipelining, unknown methods, traversal, oversized
//! heads. Status lines, header names in order, header values and bodies are compared
//! after normalising Date, ETag, Last-Modified and Content-Length values.
//!
//! The nmap test runs `nmap -sV` against both and compares the service line.

mod tools;

use honeybee_agent::services::{Limits, ServiceManager};
use honeybee_agent::sink::EventSink;
use honeybee_proto::config::{HttpOptions, NodeConfig, ServiceConfig, ServiceKind};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIGHTTPD: &str = "/usr/sbin/lighttpd";
/// How long a server may stay silent before a response is taken as complete (only
/// probes that leave the connection open wait this long).
const IDLE: Duration = Duration::from_millis(1500);

/// The real lighttpd, stopped (by its PID) when dropped.
struct Real {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Real {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Gives a file of the real server our page's modification time (the node's firmware
/// build, per node), so that `Last-Modified` and `If-Modified-Since` line up.
fn set_mtime(path: &Path, mtime: std::time::SystemTime) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(mtime).unwrap();
}

/// Starts lighttpd serving `files` (name, bytes) and an empty `cgi-bin/`.
async fn start_real(files: &[(&str, Vec<u8>)], mtime: std::time::SystemTime) -> Real {
    assert!(
        Path::new(LIGHTTPD).exists(),
        "this test needs the real lighttpd: apt-get install -y lighttpd (scripts/test.sh)"
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("www");
    std::fs::create_dir_all(root.join("cgi-bin")).unwrap();
    for (name, bytes) in files {
        let p = root.join(name);
        std::fs::write(&p, bytes).unwrap();
        set_mtime(&p, mtime);
    }
    let port = free_port();
    let conf = dir.path().join("lighttpd.conf");
    std::fs::write(
        &conf,
        format!(
            "server.document-root = \"{}\"\nserver.port = {port}\nserver.bind = \"127.0.0.1\"\n\
             server.errorlog = \"{}\"\nindex-file.names = ( \"index.html\" )\n\
             mimetype.assign = ( \".html\" => \"text/html\", \".htm\" => \"text/html\", \".txt\" => \"text/plain\" )\n",
            root.display(),
            dir.path().join("error.log").display()
        ),
    )
    .unwrap();
    let child = Command::new(LIGHTTPD)
        .arg("-D")
        .arg("-f")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("lighttpd starts");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..100 {
        if TcpStream::connect(addr).await.is_ok() {
            return Real {
                child,
                addr,
                _dir: dir,
            };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut child = child;
    let _ = child.kill();
    let _ = child.wait();
    panic!("lighttpd did not listen on {addr}");
}

async fn start_ours(dir: &Path) -> (ServiceManager, SocketAddr) {
    let (sink, mut rx) = EventSink::channel(16 * 1024);
    // Events are not the subject here: drained so the services never wait on them.
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let mut mgr = ServiceManager::new(sink, dir.join("state"), Limits::default());
    mgr.apply(&NodeConfig {
        services: vec![ServiceConfig {
            name: "http".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            enabled: true,
            kind: ServiceKind::Http(HttpOptions::default()),
        }],
    })
    .await;
    let addr = mgr.status()[0].listen.parse().unwrap();
    (mgr, addr)
}

/// Sends `req` on a new connection and reads until the server closes or is idle.
async fn exchange(addr: SocketAddr, req: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(addr).await.unwrap();
    // A server may close before reading all of an oversized request.
    let _ = c.write_all(req).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match tokio::time::timeout(IDLE, c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
        if out.len() > 1 << 20 {
            break;
        }
    }
    out
}

/// The responses in `raw`, each normalised: status line, headers in order (values of
/// Date, ETag, Last-Modified and Content-Length replaced), body. `head_only`: the
/// responses carry no body (a HEAD).
fn normalise(raw: &[u8], head_only: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = raw;
    while !rest.is_empty() {
        let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
            out.push(format!("<partial> {}", String::from_utf8_lossy(rest)));
            break;
        };
        let head = String::from_utf8_lossy(&rest[..end]).into_owned();
        rest = &rest[end + 4..];
        let mut lines = head.split("\r\n");
        let mut text = lines.next().unwrap_or("").to_owned();
        let mut len = 0usize;
        let mut not_modified = text.contains(" 304 ");
        for l in lines {
            let (name, value) = l.split_once(':').unwrap_or((l, ""));
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                len = value.parse().unwrap_or(0);
            }
            let shown = match name.to_ascii_lowercase().as_str() {
                "date" | "etag" | "last-modified" | "content-length" => "*",
                _ => value,
            };
            text += &format!("\n{name}: {shown}");
        }
        if head_only {
            not_modified = true;
        }
        if !not_modified {
            let n = len.min(rest.len());
            text += &format!("\n\n{}", String::from_utf8_lossy(&rest[..n]));
            rest = &rest[n..];
        }
        out.push(text);
    }
    if out.is_empty() {
        out.push("<no response>".into());
    }
    out
}

/// The value of header `name` in the first response of `raw`.
/// Our page's `Last-Modified`, as a time.
fn our_mtime(raw: &[u8]) -> std::time::SystemTime {
    httpdate::parse_http_date(&header(raw, "last-modified")).expect("a Last-Modified date")
}

fn header(raw: &[u8], name: &str) -> String {
    let text = String::from_utf8_lossy(raw);
    text.split("\r\n")
        .find_map(|l| {
            l.split_once(':')
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default()
}

fn body(raw: &[u8]) -> Vec<u8> {
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    raw[at..].to_vec()
}

/// The probes: (name, request with `{etag}` and `{lm}` filled per server, HEAD).
fn probes() -> Vec<(&'static str, Vec<u8>, bool)> {
    let get = |path: &str, extra: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: router\r\n{extra}Connection: close\r\n\r\n")
            .into_bytes()
    };
    let mut p: Vec<(&'static str, Vec<u8>, bool)> = vec![
        ("get /", get("/", ""), false),
        ("get /index.html", get("/index.html", ""), false),
        ("get /login.html", get("/login.html", ""), false),
        ("get /login.htm", get("/login.htm", ""), false),
        ("get /robots.txt", get("/robots.txt", ""), false),
        ("get 1.0", b"GET /robots.txt HTTP/1.0\r\n\r\n".to_vec(), false),
        ("get 1.0 no host /", b"GET / HTTP/1.0\r\n\r\n".to_vec(), false),
        ("head /", b"HEAD / HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n".to_vec(), true),
        ("head 1.0", b"HEAD /robots.txt HTTP/1.0\r\n\r\n".to_vec(), true),
        ("get 404", get("/nope", ""), false),
        ("head 404", b"HEAD /nope HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n".to_vec(), true),
        ("get favicon", get("/favicon.ico", ""), false),
        ("get query", get("/index.html?x=1&y=2", ""), false),
        ("get dir no slash", get("/cgi-bin", ""), false),
        ("get dir", get("/cgi-bin/", ""), false),
        ("if-none-match hit", get("/", "If-None-Match: {etag}\r\n"), false),
        ("if-none-match *", get("/", "If-None-Match: *\r\n"), false),
        ("if-none-match miss", get("/", "If-None-Match: \"1\"\r\n"), false),
        ("if-modified-since future", get("/", "If-Modified-Since: Sun, 06 Dec 2037 22:55:47 GMT\r\n"), false),
        ("if-modified-since past", get("/", "If-Modified-Since: Sun, 06 Dec 2009 22:55:47 GMT\r\n"), false),
        ("if-modified-since same", get("/robots.txt", "If-Modified-Since: {lm}\r\n"), false),
        ("range 0-3", get("/", "Range: bytes=0-3\r\n"), false),
        ("range suffix", get("/", "Range: bytes=-5\r\n"), false),
        ("range open", get("/robots.txt", "Range: bytes=5-\r\n"), false),
        ("range multi close", get("/", "Range: bytes=0-1,3-4\r\n"), false),
        ("range unsatisfiable", get("/", "Range: bytes=100000-200000\r\n"), false),
        ("range garbage", get("/", "Range: foo\r\n"), false),
        ("range 1.0", b"GET / HTTP/1.0\r\nRange: bytes=0-3\r\n\r\n".to_vec(), false),
        ("head range", b"HEAD / HTTP/1.1\r\nHost: r\r\nRange: bytes=0-3\r\nConnection: close\r\n\r\n".to_vec(), true),
        ("options /", b"OPTIONS / HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n".to_vec(), false),
        ("options *", b"OPTIONS * HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n".to_vec(), false),
        ("unknown method", b"FOO / HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n".to_vec(), false),
        ("lowercase method", b"get / HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n".to_vec(), false),
        ("put", b"PUT /x HTTP/1.1\r\nHost: r\r\nContent-Length: 1\r\nConnection: close\r\n\r\na".to_vec(), false),
        ("delete", b"DELETE /x HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n".to_vec(), false),
        ("trace", b"TRACE / HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n".to_vec(), false),
        ("propfind", b"PROPFIND / HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n".to_vec(), false),
        ("connect", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n".to_vec(), false),
        ("http/1.2", b"GET / HTTP/1.2\r\n\r\n".to_vec(), false),
        ("http/2.0", b"GET / HTTP/2.0\r\n\r\n".to_vec(), false),
        ("http/0.9", b"GET /\r\n\r\n".to_vec(), false),
        ("garbage", b"garbage\r\n\r\n".to_vec(), false),
        ("tls hello", [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".as_slice(), &[0u8; 40]].concat(), false),
        ("ssh banner", b"SSH-2.0-Go\r\n\r\n".to_vec(), false),
        ("noslash 1.1", b"GET noslash HTTP/1.1\r\nHost: r\r\n\r\n".to_vec(), false),
        ("noslash 1.0", b"GET noslash HTTP/1.0\r\n\r\n".to_vec(), false),
        ("no host 1.1", b"GET / HTTP/1.1\r\n\r\n".to_vec(), false),
        ("empty host", b"GET / HTTP/1.1\r\nHost:\r\n\r\n".to_vec(), false),
        ("bad host", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n".to_vec(), false),
        ("two hosts", b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n".to_vec(), false),
        ("bare lf", b"GET / HTTP/1.1\nHost: r\nConnection: close\n\n".to_vec(), false),
        ("header without colon", b"GET / HTTP/1.1\r\nHost: r\r\nBadheader\r\n\r\n".to_vec(), false),
        ("duplicate content-length", b"POST / HTTP/1.1\r\nHost: r\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc".to_vec(), false),
        ("negative content-length", b"POST / HTTP/1.1\r\nHost: r\r\nContent-Length: -1\r\n\r\n".to_vec(), false),
        ("content-length and chunked", b"POST / HTTP/1.1\r\nHost: r\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_vec(), false),
        ("transfer-encoding gzip", b"POST / HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(), false),
        ("post without length", b"POST / HTTP/1.1\r\nHost: r\r\n\r\n".to_vec(), false),
        ("post without length 1.0", b"POST / HTTP/1.0\r\n\r\n".to_vec(), false),
        ("get with body", b"GET / HTTP/1.1\r\nHost: r\r\nContent-Length: 2\r\n\r\nab".to_vec(), false),
        ("post static", b"POST /robots.txt HTTP/1.1\r\nHost: r\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc".to_vec(), false),
        ("post chunked static", b"POST /robots.txt HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_vec(), false),
        ("traversal", get("/../../etc/passwd", ""), false),
        ("encoded traversal", get("/%2e%2e/%2e%2e/etc/passwd", ""), false),
        ("nul byte", get("/a%00b", ""), false),
        ("absolute uri", b"GET http://example.com/robots.txt HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n".to_vec(), false),
        ("expect 100", b"POST /robots.txt HTTP/1.1\r\nHost: r\r\nContent-Length: 3\r\nExpect: 100-continue\r\nConnection: close\r\n\r\nabc".to_vec(), false),
        ("path info", get("/index.html/", ""), false),
        ("path info deeper", get("/robots.txt/a/b", ""), false),
        ("double slash", get("//robots.txt", ""), false),
        ("upper case", get("/ROBOTS.TXT", ""), false),
        ("backwards range", get("/", "Range: bytes=1-0\r\n"), false),
        ("range 0-0", get("/", "Range: bytes=0-0\r\n"), false),
        ("weak if-none-match", get("/", "If-None-Match: W/{etag}\r\n"), false),
        ("head dir no slash", b"HEAD /cgi-bin HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n".to_vec(), true),
        // HTTP/2: with prior knowledge both send lighttpd's SETTINGS and WINDOW_UPDATE
        // (services/http/http2.rs); the h2c upgrade lighttpd answers 101, the honeypot
        // does not (a known difference, counted).
        ("h2 prior knowledge", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(), false),
        ("h2c upgrade", b"GET /robots.txt HTTP/1.1\r\nHost: r\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n".to_vec(), false),
        ("pipelined", b"GET /robots.txt HTTP/1.1\r\nHost: r\r\n\r\nGET /nope HTTP/1.1\r\nHost: r\r\n\r\nHEAD /robots.txt HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n".to_vec(), false),
        ("keep-alive 1.0", b"GET /robots.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /robots.txt HTTP/1.0\r\n\r\n".to_vec(), false),
        ("keep-alive then bad", b"GET /robots.txt HTTP/1.1\r\nHost: r\r\n\r\nGET noslash HTTP/1.1\r\nHost: r\r\n\r\n".to_vec(), false),
    ];
    let mut many = b"GET /robots.txt HTTP/1.1\r\nHost: r\r\n".to_vec();
    for i in 0..500 {
        many.extend_from_slice(format!("X{i}:y\r\n").as_bytes());
    }
    many.extend_from_slice(b"Connection: close\r\n\r\n");
    p.push(("500 short headers", many, false));
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: r\r\n\r\n", "a".repeat(9000));
    p.push(("long uri", long_uri.into_bytes(), false));
    let long_header = format!(
        "GET / HTTP/1.1\r\nHost: r\r\nX: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    p.push(("long header", long_header.into_bytes(), false));
    p
}

fn fill(req: &[u8], etag: &str, lm: &str) -> Vec<u8> {
    String::from_utf8_lossy(req)
        .replace("{etag}", etag)
        .replace("{lm}", lm)
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_answers_like_real_lighttpd() {
    let dir = tempfile::tempdir().unwrap();
    let (mut mgr, ours) = start_ours(dir.path()).await;
    // The document root holds exactly what our persona serves.
    let index_reply = exchange(ours, b"GET / HTTP/1.0\r\n\r\n").await;
    let index = body(&index_reply);
    let mtime = our_mtime(&index_reply);
    let robots = body(&exchange(ours, b"GET /robots.txt HTTP/1.0\r\n\r\n").await);
    assert!(
        index.starts_with(b"<!DOCTYPE html>"),
        "{}",
        String::from_utf8_lossy(&index)
    );
    let real = start_real(
        &[
            ("index.html", index.clone()),
            ("login.html", index.clone()),
            ("login.htm", index),
            ("robots.txt", robots),
        ],
        mtime,
    )
    .await;

    let first_real = exchange(real.addr, b"GET / HTTP/1.0\r\n\r\n").await;
    let first_ours = exchange(ours, b"GET / HTTP/1.0\r\n\r\n").await;
    let tags = [
        (
            header(&first_real, "etag"),
            header(
                &exchange(real.addr, b"GET /robots.txt HTTP/1.0\r\n\r\n").await,
                "last-modified",
            ),
        ),
        (
            header(&first_ours, "etag"),
            header(
                &exchange(ours, b"GET /robots.txt HTTP/1.0\r\n\r\n").await,
                "last-modified",
            ),
        ),
    ];
    assert_eq!(tags[0].1, tags[1].1, "Last-Modified of the same file");

    let probes = probes();
    let mut matched = 0;
    let mut report = String::new();
    for (name, req, head) in &probes {
        let r = normalise(
            &exchange(real.addr, &fill(req, &tags[0].0, &tags[0].1)).await,
            *head,
        );
        let o = normalise(
            &exchange(ours, &fill(req, &tags[1].0, &tags[1].1)).await,
            *head,
        );
        if r == o {
            matched += 1;
        } else {
            report += &format!(
                "--- {name}\nreal:\n{}\nours:\n{}\n",
                r.join("\n~~~\n"),
                o.join("\n~~~\n")
            );
        }
    }
    let total = probes.len();
    eprintln!("{report}");
    eprintln!(
        "http oracle: {matched}/{total} probes answered as lighttpd 1.4.69 does ({:.0}%)",
        100.0 * matched as f64 / total as f64
    );
    drop(real);
    mgr.shutdown().await;
    assert!(
        matched * 100 >= total * 95,
        "only {matched} of {total} probes match lighttpd:\n{report}"
    );
}

/// `(name, product, version)` of nmap -sV's service line for each port.
fn nmap_services(ports: &[u16]) -> Vec<(String, String, String)> {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    let out = Command::new("timeout")
        .args([
            "120",
            "nmap",
            "-sV",
            "-Pn",
            "-n",
            "-p",
            &list.join(","),
            "127.0.0.1",
            "-oX",
            "-",
        ])
        .output()
        .expect("nmap runs");
    let xml = String::from_utf8_lossy(&out.stdout).into_owned();
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
            (attr("name"), attr("product"), attr("version"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nmap_names_router_as_real_lighttpd() {
    tools::require(&["nmap"]);
    let dir = tempfile::tempdir().unwrap();
    let (mut mgr, ours) = start_ours(dir.path()).await;
    let reply = exchange(ours, b"GET / HTTP/1.0\r\n\r\n").await;
    let real = start_real(&[("index.html", body(&reply))], our_mtime(&reply)).await;
    let ports = [real.addr.port(), ours.port()];
    let found = tokio::task::spawn_blocking(move || nmap_services(&ports))
        .await
        .unwrap();
    drop(real);
    mgr.shutdown().await;
    eprintln!("nmap: real {:?}, ours {:?}", found[0], found[1]);
    assert_eq!(found[0].1, "lighttpd", "{found:?}");
    assert_eq!(found[0], found[1]);
}
