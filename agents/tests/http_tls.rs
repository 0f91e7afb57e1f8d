//! HTTPS as the machine would serve it, against Debian's own programs:
//!
//! - the certificate: `openssl x509 -text` of what our service presents, beside a
//!   certificate made by Debian's openssl the way the machine would have made it
//!   (ssl-cert's snakeoil template for a WordPress server; `openssl req -x509` for a
//!   router), must list the same fields and extensions once serials, keys, key ids,
//!   signatures and dates are masked; notBefore is not at midnight and the validity is
//!   ten years to the second;
//! - the handshake: `openssl s_client -tlsextdebug` against our service and against the
//!   real lighttpd 1.4.69 with mod_openssl (a certificate of the same kind), for TLS 1.3
//!   and 1.2, with the client's default and reordered suites and ALPN: the negotiated
//!   version and cipher, key exchange group, signature scheme, ticket lifetime hint,
//!   number of tickets, ALPN, and the server's extensions in order (what JA3S hashes)
//!   must match; rustls is patched for the last (vendor/rustls/HONEYBEE.md).
//!
//! Needs openssl, ssl-cert's template (/usr/share/ssl-cert/ssleay.cnf) and
//! lighttpd-mod-openssl.

mod shell_common;
use honeybee_proto::config::{HttpOptions, HttpPersona, ServiceKind};
use shell_common::*;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn require(paths: &[&str]) {
    for p in paths {
        assert!(
            Path::new(p).exists(),
            "this test needs {p}: apt-get install -y openssl ssl-cert lighttpd lighttpd-mod-openssl (scripts/test.sh)"
        );
    }
}

fn https(persona: HttpPersona) -> ServiceKind {
    ServiceKind::Http(HttpOptions {
        persona,
        tls: true,
        ..Default::default()
    })
}

/// `openssl s_client` against `addr` with `args`; all it printed. Its input stays open
/// for a moment, so the tickets a server sends after the handshake are read.
fn s_client(addr: SocketAddr, args: &[&str]) -> String {
    let mut child = Command::new("timeout")
        .args(["10", "openssl", "s_client", "-connect", &addr.to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl runs");
    std::thread::sleep(Duration::from_millis(600));
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("openssl ends");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The server's certificate, PEM.
fn served_cert(addr: SocketAddr) -> String {
    let out = s_client(addr, &["-showcerts"]);
    let start = out
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a certificate");
    let end = out.find("-----END CERTIFICATE-----").unwrap() + 25;
    format!("{}\n", &out[start..end])
}

fn x509_text(pem_path: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(pem_path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// `-text` with the instance values masked: hex dumps (serial, modulus, key ids,
/// signature) and the validity dates.
fn masked(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| {
            let t = l.trim();
            !(t.len() >= 2
                && t.split(':')
                    .all(|b| b.len() <= 2 && b.bytes().all(|c| c.is_ascii_hexdigit())))
        })
        .map(|l| {
            if let Some((k, _)) = l.split_once("Not Before:") {
                format!("{k}Not Before: *")
            } else if let Some((k, _)) = l.split_once("Not After :") {
                format!("{k}Not After : *")
            } else {
                l.to_owned()
            }
        })
        .collect()
}

fn field<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .trim()
}

/// `Dec  7 02:26:37 2026 GMT` -> ("02:26:37", 2026)
fn time_and_year(v: &str) -> (String, i32) {
    let parts: Vec<&str> = v.split_whitespace().collect();
    (parts[2].to_owned(), parts[3].parse().unwrap())
}

/// Makes a certificate with Debian's openssl the way `make_args` says, in `dir`.
fn reference(dir: &Path, args: &[&str]) -> String {
    let st = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "openssl {args:?}");
    x509_text(&dir.join("ref.pem"))
}

#[tokio::test]
async fn certificates_are_built_like_debians_openssl() {
    require(&["/usr/bin/openssl", "/usr/share/ssl-cert/ssleay.cnf"]);
    for persona in [HttpPersona::Wordpress, HttpPersona::Router] {
        let dir = tempfile::tempdir().unwrap();
        let mut run = start(dir.path(), &one("https", https(persona))).await;
        let addr = run.addr;
        let pem = tokio::task::spawn_blocking(move || served_cert(addr))
            .await
            .unwrap();
        let ours_path = dir.path().join("ours.pem");
        std::fs::write(&ours_path, pem).unwrap();
        let ours = x509_text(&ours_path);
        let cn = field(&ours, "Subject:").to_owned();
        let theirs = match persona {
            // ssl-cert's make-ssl-cert: its template with the host name, then
            // `openssl req -config … -new -x509 -days 3650 -nodes -sha256`.
            HttpPersona::Wordpress => {
                let host = cn.strip_prefix("CN = ").expect("CN only").to_owned();
                let cnf = std::fs::read_to_string("/usr/share/ssl-cert/ssleay.cnf")
                    .unwrap()
                    .replace("@HostName@", &host)
                    .replace("@SubjectAltName@", &format!("DNS:{host}"));
                std::fs::write(dir.path().join("c.cnf"), cnf).unwrap();
                reference(
                    dir.path(),
                    &[
                        "req", "-config", "c.cnf", "-new", "-x509", "-days", "3650", "-nodes",
                        "-sha256", "-out", "ref.pem", "-keyout", "ref.key",
                    ],
                )
            }
            _ => reference(
                dir.path(),
                &[
                    "req",
                    "-new",
                    "-x509",
                    "-nodes",
                    "-newkey",
                    "rsa:2048",
                    "-subj",
                    &format!(
                        "/C=CN/O=TP-Link Technologies Co., Ltd./CN={}",
                        cn.rsplit("CN = ").next().unwrap()
                    ),
                    "-days",
                    "3650",
                    "-out",
                    "ref.pem",
                    "-keyout",
                    "ref.key",
                ],
            ),
        };
        assert_eq!(
            masked(&ours),
            masked(&theirs),
            "{persona:?}\n{ours}\n{theirs}"
        );
        // Made by the machine at a moment of its past, valid ten years to the second.
        let (t0, y0) = time_and_year(field(&ours, "Not Before:"));
        let (t1, y1) = time_and_year(field(&ours, "Not After :"));
        assert_ne!(t0, "00:00:00", "{ours}");
        assert_eq!(t0, t1);
        assert!(y1 - y0 == 10 || y1 - y0 == 9, "{ours}");
        run.mgr.shutdown().await;
    }
}

/// What `s_client -tlsextdebug -msg` says of one handshake: (version and cipher, the
/// ServerHello's extensions in order, the other facts a client sees: key exchange
/// group, signature, ticket lifetime hint, how many tickets came).
fn hello(addr: SocketAddr, args: &[&str]) -> (String, Vec<String>, Vec<String>) {
    let mut a = vec!["-tlsextdebug", "-msg"];
    a.extend_from_slice(args);
    let out = s_client(addr, &a);
    let negotiated = out
        .lines()
        .find(|l| l.starts_with("New, "))
        .unwrap_or_else(|| panic!("no handshake: {out}"))
        .to_owned();
    let exts = out
        .lines()
        .filter_map(|l| l.strip_prefix("TLS server extension "))
        .map(|l| l.split(", len").next().unwrap_or(l).to_owned())
        .collect();
    let mut facts: Vec<String> = out
        .lines()
        .map(str::trim)
        .filter(|l| {
            [
                "Server Temp Key:",
                "Peer signature type:",
                "Peer signing digest:",
                "TLS session ticket lifetime hint:",
                "ALPN protocol:",
            ]
            .iter()
            .any(|k| l.starts_with(k))
        })
        .map(str::to_owned)
        .collect();
    facts.sort();
    facts.dedup();
    let tickets = out
        .lines()
        .filter(|l| l.starts_with("<<<") && l.ends_with("NewSessionTicket"))
        .count();
    facts.push(format!("{tickets} NewSessionTicket"));
    (negotiated, exts, facts)
}

struct Lighttpd(std::process::Child);

impl Drop for Lighttpd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn tls_handshake_like_lighttpd_with_openssl() {
    require(&[
        "/usr/bin/openssl",
        "/usr/sbin/lighttpd",
        "/usr/lib/lighttpd/mod_openssl.so",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let mut run = start(dir.path(), &one("https", https(HttpPersona::Wordpress))).await;
    let ours = run.addr;
    // The real lighttpd with TLS, serving a certificate of the same kind.
    let pem = tokio::task::spawn_blocking(move || served_cert(ours))
        .await
        .unwrap();
    let d = dir.path();
    let st = Command::new("openssl")
        .current_dir(d)
        .args([
            "req", "-new", "-x509", "-nodes", "-newkey", "rsa:2048", "-subj", "/CN=x", "-days",
            "3650", "-out", "c.pem", "-keyout", "k.pem",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success() && !pem.is_empty());
    let both = [
        std::fs::read_to_string(d.join("c.pem")).unwrap(),
        std::fs::read_to_string(d.join("k.pem")).unwrap(),
    ]
    .concat();
    std::fs::write(d.join("both.pem"), both).unwrap();
    std::fs::create_dir_all(d.join("www")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        d.join("l.conf"),
        format!(
            "server.modules += ( \"mod_openssl\" )\nserver.document-root = \"{}\"\nserver.port = {port}\n\
             server.bind = \"127.0.0.1\"\nserver.errorlog = \"{}\"\nssl.engine = \"enable\"\nssl.pemfile = \"{}\"\n",
            d.join("www").display(),
            d.join("error.log").display(),
            d.join("both.pem").display()
        ),
    )
    .unwrap();
    let _real = Lighttpd(
        Command::new("/usr/sbin/lighttpd")
            .args(["-D", "-f"])
            .arg(d.join("l.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let real: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(real).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let n = 5;
    let cases: [&[&str]; 5] = [
        &[],
        &["-tls1_2"],
        &[
            "-tls1_2",
            "-cipher",
            "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384",
        ],
        &[
            "-ciphersuites",
            "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384",
        ],
        &["-alpn", "http/1.1"],
    ];
    for args in cases {
        let a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (o, r) = tokio::task::spawn_blocking(move || {
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            (hello(ours, &a), hello(real, &a))
        })
        .await
        .unwrap();
        // Version and cipher: what rustls lets us choose, chosen as OpenSSL does; the
        // group, signature, ticket hint and number of tickets too.
        assert_eq!(o.0, r.0, "{args:?}");
        assert_eq!(o.2, r.2, "{args:?}");
        // The server's extensions, in order (the JA3S of the ServerHello, and the
        // EncryptedExtensions of TLS 1.3): OpenSSL's, through the patched rustls
        // (vendor/rustls/HONEYBEE.md), EC point formats in TLS 1.2 included.
        assert_eq!(
            o.1, r.1,
            "{args:?}: the server's extensions (ours, lighttpd's)"
        );
    }
    println!(
        "tls: version, cipher, group, signature, ticket hint, tickets and the server's extensions in order as lighttpd's in {n} of {n} cases"
    );
    run.mgr.shutdown().await;
}
