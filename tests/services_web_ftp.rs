//! HTTP, HTTPS and FTP honeypots end to end: a real core and a real `agent run` with the
//! default services, attacked with curl, openssl and nmap; what they do is found with the
//! CLI (`events --json`, `captures --json`, `capture get`), and the HTTPS certificate is
//! the same after the agent restarts.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

fn sh(cmd: &mut Command) -> Output {
    cmd.output().expect("client runs")
}

/// curl with a deadline: (status code, headers, body).
fn curl(args: &[&str]) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let h = dir.path().join("h");
    let out = sh(Command::new("curl")
        .args(["-sS", "--max-time", "30", "-D"])
        .arg(&h)
        .args(["-o", "-", "-w", "%{stderr}%{http_code}"])
        .args(args));
    let code = String::from_utf8_lossy(&out.stderr)
        .trim()
        .rsplit('\n')
        .next()
        .unwrap_or("")
        .parse()
        .unwrap_or(0);
    (
        code,
        std::fs::read_to_string(h).unwrap_or_default(),
        out.stdout,
    )
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// SHA-256 fingerprint and subject of the certificate served on `port`.
fn served_cert(port: u16, dir: &Path) -> (String, String) {
    let pem = dir.join(format!("cert-{}.pem", rand_suffix()));
    let out = sh(Command::new("sh").arg("-c").arg(format!(
        "timeout 60 openssl s_client -connect 127.0.0.1:{port} </dev/null 2>/dev/null | openssl x509 -out {}",
        pem.display()
    )));
    assert!(out.status.success(), "{out:?}");
    let out = sh(Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-subject",
            "-nameopt",
            "RFC2253",
            "-in",
        ])
        .arg(&pem));
    let text = String::from_utf8(out.stdout).unwrap();
    let fp = text
        .lines()
        .find_map(|l| l.split_once("Fingerprint=").map(|x| x.1.to_owned()))
        .unwrap();
    let subject = text
        .lines()
        .find_map(|l| l.strip_prefix("subject="))
        .unwrap()
        .trim()
        .to_owned();
    (fp, subject)
}

fn capture_row(dep: &Deployment, sha: &str) -> Value {
    let d = dep.d();
    wait_for("the capture at the core", Duration::from_secs(60), || {
        let listed: Value =
            serde_json::from_str(&ok(&["captures", "--json", "--data-dir", &d])).ok()?;
        listed
            .as_array()?
            .iter()
            .find(|c| c["sha256"] == sha)
            .cloned()
    })
}

fn fetch_capture(dep: &Deployment, sha: &str) -> Vec<u8> {
    let out = dep.dir.path().join(format!("{sha}.bin"));
    ok(&[
        "capture",
        "get",
        sha,
        "-o",
        out.to_str().unwrap(),
        "--data-dir",
        &dep.d(),
    ]);
    std::fs::read(out).unwrap()
}

#[test]
fn web_and_ftp_attacks_reach_the_core() {
    let mut dep = Deployment::init(|t| {
        // The FTP persona lets everyone in, so the upload below is accepted.
        t.replace("kind = \"ftp\"\n", "kind = \"ftp\"\nlogin = \"always\"\n")
    });
    dep.start_core();
    let mut agent = dep.start_agent("edge-1");
    let http = dep.service_port("edge-1", "http");
    let https = dep.service_port("edge-1", "https");
    let ftp = dep.service_port("edge-1", "ftp");

    // HTTP: the router's page, a form login, a body over the inline cap.
    let (code, headers, body) = curl(&[&format!("http://127.0.0.1:{http}/")]);
    assert_eq!(code, 200);
    assert!(headers.contains("Server: lighttpd/1.4.69\r\n"), "{headers}");
    assert!(String::from_utf8_lossy(&body).contains("action=\"/login.cgi\""));
    let (code, _, body) = curl(&[
        "-A",
        "Mozilla/5.0 (X11; Linux x86_64) e2e",
        "-d",
        "username=admin&password=e2e-secret",
        &format!("http://127.0.0.1:{http}/login.cgi"),
    ]);
    assert_eq!(code, 200);
    assert!(String::from_utf8_lossy(&body).contains("Invalid username or password."));
    let big: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let big_file = dep.dir.path().join("post.bin");
    std::fs::write(&big_file, &big).unwrap();
    let (code, _, _) = curl(&[
        "--data-binary",
        &format!("@{}", big_file.display()),
        &format!("http://127.0.0.1:{http}/cgi-bin/upgrade.cgi"),
    ]);
    assert_eq!(code, 404);

    // HTTPS: the device certificate.
    let (code, _, _) = curl(&["-k", &format!("https://127.0.0.1:{https}/")]);
    assert_eq!(code, 200);
    let (fp, subject) = served_cert(https, dep.dir.path());
    // The router's own (vendor) certificate, made at its first boot; its CN is one of
    // the names TP-Link firmwares use, per node.
    assert!(
        subject.starts_with("CN=") && subject.ends_with(",O=TP-Link Technologies Co.\\, Ltd.,C=CN"),
        "{subject}"
    );

    // FTP: an upload.
    let upload: Vec<u8> = (0..250_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 9) as u8)
        .collect();
    let up_file = dep.dir.path().join("miner.sh");
    std::fs::write(&up_file, &upload).unwrap();
    let out = sh(Command::new("curl")
        .args(["-sS", "--max-time", "60", "-u", "backup:backup", "-T"])
        .arg(&up_file)
        .arg(format!("ftp://127.0.0.1:{ftp}/upload/")));
    assert!(out.status.success(), "{out:?}");

    // The login attempt, with its user agent.
    let attempt = wait_for("the web login", Duration::from_secs(30), || {
        dep.events(&["--kind", "auth_attempt", "--node", "edge-1"])
            .into_iter()
            .find(|e| e["service"]["name"] == "http")
    });
    assert_eq!(attempt["user"]["name"], "admin");
    assert_eq!(attempt["honeybee"]["password"], "e2e-secret");
    assert_eq!(attempt["honeybee"]["success"], false);
    assert_eq!(
        attempt["honeybee"]["client_version"],
        "Mozilla/5.0 (X11; Linux x86_64) e2e"
    );
    // Every request, with its path and status.
    let requests = wait_for("the http requests", Duration::from_secs(30), || {
        let r = dep.events(&["--kind", "http_request", "--node", "edge-1"]);
        (r.len() >= 4).then_some(r)
    });
    let seen: Vec<(String, u64)> = requests
        .iter()
        .map(|e| {
            (
                e["url"]["path"].as_str().unwrap_or("").to_owned(),
                e["http"]["response"]["status_code"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    for want in [
        ("/", 200),
        ("/login.cgi", 200),
        ("/cgi-bin/upgrade.cgi", 404),
    ] {
        assert!(
            seen.contains(&(want.0.to_owned(), want.1)),
            "{want:?} in {seen:?}"
        );
    }
    assert!(requests.iter().any(|e| e["service"]["name"] == "https"));

    // The large body and the upload are captures at the core, fetched back intact.
    let body_sha = sha256_hex(&big);
    let row = capture_row(&dep, &body_sha);
    assert_eq!(row["kind"], "body");
    assert_eq!(row["service"], "http");
    assert_eq!(row["node"], "edge-1");
    assert_eq!(row["size"], big.len() as u64);
    assert_eq!(fetch_capture(&dep, &body_sha), big);

    let up_sha = sha256_hex(&upload);
    let row = capture_row(&dep, &up_sha);
    assert_eq!(row["kind"], "upload");
    assert_eq!(row["service"], "ftp");
    assert_eq!(row["meta"]["filename"], "miner.sh");
    assert_eq!(fetch_capture(&dep, &up_sha), upload);
    let stor = dep
        .events(&["--kind", "command", "--node", "edge-1"])
        .into_iter()
        .find(|e| e["process"]["command_line"] == "STOR miner.sh");
    assert!(stor.is_some(), "STOR recorded as a command");

    // nmap names the products.
    let ports = format!("{http},{https},{ftp}");
    let out = sh(Command::new("timeout").args([
        "300",
        "nmap",
        "-sV",
        "-Pn",
        "-n",
        "-p",
        &ports,
        "127.0.0.1",
        "-oX",
        "-",
    ]));
    let xml = String::from_utf8_lossy(&out.stdout).into_owned();
    let service_of = |port: u16| -> String {
        let at = xml
            .find(&format!("portid=\"{port}\""))
            .unwrap_or_else(|| panic!("{xml}"));
        let rest = &xml[at..];
        let s = &rest[rest.find("<service ").unwrap()..];
        s[..s.find('>').unwrap()].to_owned()
    };
    let s = service_of(http);
    assert!(
        s.contains("product=\"lighttpd\"") && s.contains("version=\"1.4.69\""),
        "{s}"
    );
    let s = service_of(https);
    assert!(
        s.contains("product=\"lighttpd\"") && s.contains("tunnel=\"ssl\""),
        "{s}"
    );
    let s = service_of(ftp);
    assert!(
        s.contains("product=\"vsftpd\"") && s.contains("version=\"3.0.3\""),
        "{s}"
    );

    // After a restart the agent serves the same certificate.
    agent.terminate();
    let _agent = dep.run_agent("edge-1");
    let https2 = wait_for("https back", Duration::from_secs(30), || {
        let p = dep.service_port("edge-1", "https");
        std::net::TcpStream::connect(("127.0.0.1", p))
            .ok()
            .map(|_| p)
    });
    assert_eq!(served_cert(https2, dep.dir.path()).0, fp);
}

// ---- on a PostgreSQL store (`common::on_postgres`: the same body, a database of its own
// on this test binary's PostgreSQL server)

#[test]
fn web_and_ftp_attacks_reach_the_core_on_postgres() {
    common::on_postgres(web_and_ftp_attacks_reach_the_core);
}
