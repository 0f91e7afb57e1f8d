//! FTP honeypot over real sockets, driven by real clients: curl and lftp (login, listing,
//! download, upload → capture with its SHA-256), hydra (400 logins, every one recorded),
//! nmap -sV (named vsftpd 3.0.3), and raw sockets for what clients never do (PORT to a
//! third party, a data connection from another address, overlong lines, command floods,
//! uploads larger than memory should hold, concurrent uploads racing for the spool's cap).

mod memory;
mod tools;

use memory::rss_anon;

use honeybee_agent::captures::CaptureSpool;
use honeybee_agent::services::{Limits, ServiceManager};
use honeybee_agent::sink::{EventSink, NewEvent};
use honeybee_proto::config::{FtpOptions, LoginPolicy, NodeConfig, ServiceConfig, ServiceKind};
use honeybee_proto::event::{AuthAttempt, EventKind};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(60);

fn opts(login: LoginPolicy) -> FtpOptions {
    FtpOptions {
        login,
        auth_failure_delay_ms: 20,
        ..FtpOptions::default()
    }
}

struct Node {
    mgr: ServiceManager,
    rx: mpsc::Receiver<NewEvent>,
    spool: CaptureSpool,
    addr: SocketAddr,
    seen: Vec<NewEvent>,
}

async fn start(dir: &Path, o: FtpOptions) -> Node {
    start_with_spool(dir, o, 256 * 1024 * 1024).await
}

/// A node whose capture spool holds at most `spool_cap` bytes.
async fn start_with_spool(dir: &Path, o: FtpOptions, spool_cap: u64) -> Node {
    let (sink, rx) = EventSink::channel(16 * 1024);
    let spool = CaptureSpool::open(&dir.join("captures"), spool_cap).unwrap();
    let mut mgr = ServiceManager::new(sink, dir.join("state"), Limits::default())
        .with_captures(spool.clone());
    let services = vec![ServiceConfig {
        name: "ftp".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        enabled: true,
        kind: ServiceKind::Ftp(o),
    }];
    mgr.apply(&NodeConfig { services }).await;
    let st = mgr.status();
    assert!(st[0].running, "{st:?}");
    let addr = st[0].listen.parse().unwrap();
    Node {
        mgr,
        rx,
        spool,
        addr,
        seen: Vec::new(),
    }
}

impl Node {
    async fn until(&mut self, what: &str, done: impl Fn(&[NewEvent]) -> bool) -> Vec<NewEvent> {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(&self.seen) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(e)) => self.seen.push(e),
                _ => panic!("timed out waiting for {what}; saw {:#?}", self.seen),
            }
        }
        self.seen.clone()
    }
}

fn attempts(ev: &[NewEvent]) -> Vec<AuthAttempt> {
    ev.iter()
        .filter_map(|e| match &e.kind {
            EventKind::AuthAttempt(a) => Some(a.clone()),
            _ => None,
        })
        .collect()
}

fn commands(ev: &[NewEvent]) -> Vec<String> {
    ev.iter()
        .filter_map(|e| match &e.kind {
            EventKind::Command { line } => Some(line.clone()),
            _ => None,
        })
        .collect()
}

fn disconnects(ev: &[NewEvent]) -> usize {
    ev.iter()
        .filter(|e| matches!(e.kind, EventKind::Disconnect { .. }))
        .count()
}

fn limit_hit(ev: &[NewEvent], name: &str) -> bool {
    ev.iter()
        .any(|e| matches!(&e.kind, EventKind::LimitReached { limit, .. } if limit == name))
}

fn captures(ev: &[NewEvent]) -> Vec<(String, String, u64, Option<String>)> {
    ev.iter()
        .filter_map(|e| match &e.kind {
            EventKind::Capture {
                kind,
                sha256,
                size,
                name,
            } => Some((kind.clone(), sha256.clone(), *size, name.clone())),
            _ => None,
        })
        .collect()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

fn payload(n: usize) -> Vec<u8> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect()
}

async fn output(cmd: &mut Command) -> Output {
    tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .expect("client finishes")
        .expect("client runs")
}

#[tokio::test]
async fn curl_upload_becomes_a_capture_and_lists_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path(), opts(LoginPolicy::Always)).await;
    let content = payload(300_000);
    let file = dir.path().join("bot.sh");
    std::fs::write(&file, &content).unwrap();

    let url = format!("ftp://{}/upload/", node.addr);
    let out = output(
        Command::new("curl")
            .args(["-sS", "--max-time", "60", "-u", "deploy:Winter2024!", "-T"])
            .arg(&file)
            .arg(&url),
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    // Another session from the same source lists the fixed tree and, as on a real
    // server, the upload (remembered per source across connections); the password that
    // got in is the account's password from then on (the login memory).
    let out = output(
        Command::new("curl")
            .args(["-sS", "--max-time", "60", "-u", "deploy:Winter2024!"])
            .arg(format!("ftp://{}/", node.addr)),
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(
        listing.lines().any(
            |l| l.starts_with("drwxr-xr-x    2 1000     1000         4096 ")
                && l.ends_with(" backup")
        ),
        "{listing}"
    );
    assert!(listing.contains(" notes.txt"));
    let out = output(
        Command::new("curl")
            .args(["-sS", "--max-time", "60", "-u", "deploy:Winter2024!"])
            .arg(format!("ftp://{}/upload/", node.addr)),
    )
    .await;
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(
        listing.starts_with(&format!(
            "-rw-------    1 1000     1000       {} ",
            content.len()
        )) && listing.trim_end().ends_with(" bot.sh"),
        "{listing}"
    );
    // Another password for the same account is refused now.
    let out = output(
        Command::new("curl")
            .args(["-sS", "--max-time", "60", "-u", "deploy:x"])
            .arg(format!("ftp://{}/", node.addr)),
    )
    .await;
    assert!(!out.status.success(), "{out:?}");

    let ev = node.until("all sessions", |ev| disconnects(ev) >= 4).await;
    let caps = captures(&ev);
    assert_eq!(
        caps,
        [(
            "upload".to_owned(),
            sha256_hex(&content),
            content.len() as u64,
            Some("/upload/bot.sh".to_owned())
        )]
    );
    let pending = node.spool.pending();
    assert_eq!(pending.len(), 1);
    assert_eq!(std::fs::read(&pending[0].1).unwrap(), content);
    assert!(
        pending[0]
            .0
            .meta
            .contains(&("complete".into(), "true".into()))
    );

    let a = attempts(&ev);
    assert_eq!(
        (
            a[0].username.as_str(),
            a[0].password.as_deref(),
            a[0].success
        ),
        ("deploy", Some("Winter2024!"), true)
    );
    let cmds = commands(&ev);
    assert!(cmds.contains(&"USER deploy".to_owned()), "{cmds:?}");
    assert!(cmds.contains(&"STOR bot.sh".to_owned()), "{cmds:?}");
    assert!(cmds.iter().any(|c| c == "EPSV" || c == "PASV"), "{cmds:?}");
    assert!(
        !cmds
            .iter()
            .any(|c| c.to_ascii_uppercase().starts_with("PASS")),
        "PASS logged as a command"
    );
    node.mgr.shutdown().await;
}

#[tokio::test]
async fn lftp_session_lists_gets_and_puts() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(
        dir.path(),
        opts(LoginPolicy::Credentials(vec![(
            "admin".into(),
            "admin123".into(),
        )])),
    )
    .await;
    let up = dir.path().join("x.bin");
    let content = payload(70_000);
    std::fs::write(&up, &content).unwrap();
    let got = dir.path().join("notes.txt");
    let script = format!(
        "set ftp:ssl-allow no; set net:max-retries 1; set net:timeout 20; open -u admin,admin123 -p {} 127.0.0.1; cls -l /; cd www; get wp-config.php.bak -o {}; cd /upload; put {} -o x.bin; cls -l; bye",
        node.addr.port(),
        got.display(),
        up.display()
    );
    let out = output(
        Command::new("lftp")
            .args(["-c", &script])
            .current_dir(dir.path()),
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("backup") && stdout.contains("www"),
        "{stdout}"
    );
    // The upload shows in the same session's listing, as on a real server.
    assert!(
        stdout.contains(&format!("{} ", content.len())) && stdout.contains("x.bin"),
        "{stdout}"
    );
    let fetched = std::fs::read_to_string(&got).unwrap();
    assert!(fetched.contains("DB_PASSWORD"), "{fetched}");

    let ev = node.until("the session", |ev| disconnects(ev) >= 1).await;
    let caps = captures(&ev);
    assert_eq!(caps.len(), 1);
    assert_eq!(caps[0].1, sha256_hex(&content));
    assert_eq!(caps[0].3.as_deref(), Some("/upload/x.bin"));
    let a = attempts(&ev);
    assert_eq!(a.len(), 1);
    assert!(a[0].success);
    node.mgr.shutdown().await;
}

#[tokio::test]
async fn upload_over_the_cap_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let o = FtpOptions {
        max_upload_bytes: 64 * 1024,
        ..opts(LoginPolicy::Always)
    };
    let mut node = start(dir.path(), o).await;
    let content = payload(1024 * 1024);
    let file = dir.path().join("big.bin");
    std::fs::write(&file, &content).unwrap();
    let out = output(
        Command::new("curl")
            .args(["-sS", "--max-time", "60", "-u", "a:b", "-T"])
            .arg(&file)
            .arg(format!("ftp://{}/upload/", node.addr)),
    )
    .await;
    assert!(!out.status.success(), "curl must see the refusal: {out:?}");
    let ev = node.until("the session", |ev| disconnects(ev) >= 1).await;
    assert!(limit_hit(&ev, "ftp_upload"), "{ev:#?}");
    // What arrived up to the cap is kept, marked incomplete.
    let caps = captures(&ev);
    assert_eq!(caps.len(), 1);
    assert_eq!(caps[0].2, 64 * 1024);
    assert_eq!(caps[0].1, sha256_hex(&content[..64 * 1024]));
    let pending = node.spool.pending();
    assert!(
        pending[0]
            .0
            .meta
            .contains(&("complete".into(), "false".into()))
    );
    node.mgr.shutdown().await;
}

/// A raw control connection.
struct Ctl {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

impl Ctl {
    async fn connect(addr: SocketAddr) -> Ctl {
        let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut c = Ctl {
            r: BufReader::new(r),
            w,
        };
        assert_eq!(c.line().await, "220 (vsFTPd 3.0.3)");
        c
    }

    async fn line(&mut self) -> String {
        let mut l = String::new();
        // A reset after the last reply reads as the end.
        let _ = tokio::time::timeout(WAIT, self.r.read_line(&mut l))
            .await
            .expect("reply in time");
        l.trim_end().to_owned()
    }

    async fn cmd(&mut self, line: &str) -> String {
        self.w
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        self.line().await
    }
}

#[tokio::test]
async fn never_connects_out_and_data_only_from_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path(), opts(LoginPolicy::Always)).await;
    let mut c = Ctl::connect(node.addr).await;
    // Anonymous never gets in (Debian's vsftpd.conf: anonymous_enable=NO).
    assert_eq!(
        c.cmd("USER anonymous").await,
        "331 Please specify the password."
    );
    assert_eq!(c.cmd("PASS guest@").await, "530 Login incorrect.");
    assert_eq!(
        c.cmd("USER deploy").await,
        "331 Please specify the password."
    );
    assert_eq!(c.cmd("PASS guest@").await, "230 Login successful.");
    assert_eq!(c.cmd("SYST").await, "215 UNIX Type: L8");

    // PORT and EPRT towards a listener of ours: accepted as vsftpd accepts the client's
    // own address, and the transfer fails as vsftpd's does when nobody listens, but
    // nothing ever connects.
    let bait = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let p = bait.local_addr().unwrap().port();
    assert_eq!(
        c.cmd(&format!("PORT 127,0,0,1,{},{}", p >> 8, p & 0xff))
            .await,
        "200 PORT command successful. Consider using PASV."
    );
    assert_eq!(c.cmd("LIST").await, "425 Failed to establish connection.");
    assert_eq!(
        c.cmd(&format!("EPRT |1|127.0.0.1|{p}|")).await,
        "200 EPRT command successful. Consider using EPSV."
    );
    assert_eq!(
        c.cmd("RETR notes.txt").await,
        "425 Failed to establish connection."
    );
    assert_eq!(
        c.cmd(&format!("PORT 10,0,0,1,{},{}", p >> 8, p & 0xff))
            .await,
        "500 Illegal PORT command."
    );
    assert_eq!(c.cmd("LIST").await, "425 Use PORT or PASV first.");

    // Passive: a connection from another loopback address is turned away; the client's
    // own is served.
    let reply = c.cmd("PASV").await;
    assert!(
        reply.starts_with("227 Entering Passive Mode (127,0,0,1,"),
        "{reply}"
    );
    let nums: Vec<u16> = reply
        .trim_end_matches(").")
        .rsplit('(')
        .next()
        .unwrap()
        .split(',')
        .map(|n| n.parse().unwrap())
        .collect();
    let data_addr: SocketAddr = format!("127.0.0.1:{}", nums[4] * 256 + nums[5])
        .parse()
        .unwrap();
    let foreign = tokio::net::TcpSocket::new_v4().unwrap();
    foreign.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut foreign = foreign.connect(data_addr).await.unwrap();
    let mut own = TcpStream::connect(data_addr).await.unwrap();
    c.w.write_all(b"NLST\r\n").await.unwrap();
    assert_eq!(c.line().await, "150 Here comes the directory listing.");
    let mut listing = String::new();
    tokio::time::timeout(WAIT, own.read_to_string(&mut listing))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(listing, "backup\r\nnotes.txt\r\nupload\r\nwww\r\n");
    assert_eq!(c.line().await, "226 Directory send OK.");
    let mut nothing = Vec::new();
    let _ = tokio::time::timeout(WAIT, foreign.read_to_end(&mut nothing)).await;
    assert!(nothing.is_empty(), "the foreign connection got data");

    assert_eq!(c.cmd("QUIT").await, "221 Goodbye.");
    // Nothing connected to the PORT target at any point.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), bait.accept())
            .await
            .is_err(),
        "the honeypot connected out"
    );
    let ev = node.until("the session", |ev| disconnects(ev) >= 1).await;
    let cmds = commands(&ev);
    assert!(
        cmds.iter().any(|c| c.starts_with("PORT 127,0,0,1,")),
        "{cmds:?}"
    );
    node.mgr.shutdown().await;
}

#[tokio::test]
async fn caps_on_line_length_and_command_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path(), opts(LoginPolicy::Never)).await;

    let mut c = Ctl::connect(node.addr).await;
    let long = format!("USER {}\r\n", "A".repeat(5000));
    c.w.write_all(long.as_bytes()).await.unwrap();
    assert_eq!(c.line().await, "500 Input line too long.");
    assert_eq!(c.line().await, "", "closed after the overlong line");

    let mut c = Ctl::connect(node.addr).await;
    let burst = "NOOP\r\n".repeat(2100);
    let _ = c.w.write_all(burst.as_bytes()).await;
    let mut replies = Vec::new();
    loop {
        let l = c.line().await;
        if l.is_empty() {
            break;
        }
        replies.push(l);
    }
    assert_eq!(replies.len(), 2001, "2000 answers then the refusal");
    assert_eq!(replies.last().unwrap(), "421 Too many commands.");
    assert!(
        replies[..2000]
            .iter()
            .all(|r| r == "530 Please login with USER and PASS.")
    );

    let ev = node.until("both sessions", |ev| disconnects(ev) >= 2).await;
    assert!(limit_hit(&ev, "ftp_line"));
    assert!(limit_hit(&ev, "ftp_commands"));
    assert_eq!(commands(&ev).len(), 2000);
    node.mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hydra_every_attempt_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path(), opts(LoginPolicy::Never)).await;
    let work = tempfile::tempdir().unwrap();
    let users: Vec<String> = (0..20).map(|i| format!("ftpuser{i:02}")).collect();
    let passwords: Vec<String> = (0..20).map(|i| format!("Secret{i:02}!{}", i * 3)).collect();
    std::fs::write(work.path().join("u.txt"), users.join("\n") + "\n").unwrap();
    std::fs::write(work.path().join("p.txt"), passwords.join("\n") + "\n").unwrap();
    let out = output(
        Command::new("hydra")
            .args([
                "-L",
                "u.txt",
                "-P",
                "p.txt",
                "-t",
                "4",
                "-I",
                "-o",
                "found.txt",
                "-s",
            ])
            .arg(node.addr.port().to_string())
            .args(["127.0.0.1", "ftp"])
            .current_dir(work.path()),
    )
    .await;
    tools::assert_hydra_finished(
        out.status.success(),
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
    );

    let ev = node
        .until("400 attempts", |ev| attempts(ev).len() >= 400)
        .await;
    let mut got: BTreeMap<(String, String), usize> = BTreeMap::new();
    for a in attempts(&ev) {
        assert!(!a.success);
        *got.entry((a.username, a.password.unwrap_or_default()))
            .or_default() += 1;
    }
    for u in &users {
        for p in &passwords {
            assert_eq!(got.get(&(u.clone(), p.clone())), Some(&1), "{u}/{p}");
        }
    }
    assert_eq!(got.len(), 400);
    // Still serving.
    let mut c = Ctl::connect(node.addr).await;
    assert_eq!(c.cmd("USER x").await, "331 Please specify the password.");
    node.mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nmap_names_vsftpd() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path(), opts(LoginPolicy::Never)).await;
    let port = node.addr.port().to_string();
    let out = output(Command::new("nmap").args([
        "-sV",
        "-Pn",
        "-n",
        "-p",
        &port,
        "127.0.0.1",
        "-oX",
        "-",
    ]))
    .await;
    let xml = String::from_utf8_lossy(&out.stdout);
    let svc = xml
        .split("<service ")
        .nth(1)
        .and_then(|s| s.split('>').next())
        .unwrap_or_else(|| panic!("{xml}"));
    assert!(svc.contains("name=\"ftp\""), "{svc}");
    assert!(svc.contains("product=\"vsftpd\""), "{svc}");
    assert!(svc.contains("version=\"3.0.3\""), "{svc}");
    node.mgr.shutdown().await;
}

/// Sizes of the files in the spool directory: (`.part` files being written, all files).
fn spool_files(dir: &Path) -> (u64, u64) {
    let mut part = 0;
    let mut all = 0;
    for e in std::fs::read_dir(dir.join("captures")).unwrap().flatten() {
        let Ok(m) = e.metadata() else { continue };
        all += m.len();
        if e.path().extension().is_some_and(|x| x == "part") {
            part += m.len();
        }
    }
    (part, all)
}

/// Logs in on a raw control connection and opens an upload of `name` over EPSV; returns
/// the control connection and the data connection, after `150`.
async fn open_upload(addr: SocketAddr, name: &str) -> (Ctl, TcpStream) {
    let mut c = Ctl::connect(addr).await;
    assert_eq!(c.cmd("USER a").await, "331 Please specify the password.");
    assert_eq!(c.cmd("PASS b").await, "230 Login successful.");
    assert_eq!(c.cmd("TYPE I").await, "200 Switching to Binary mode.");
    let reply = c.cmd("EPSV").await;
    let port: u16 = reply
        .split("|||")
        .nth(1)
        .and_then(|p| p.trim_end_matches(")").trim_end_matches('|').parse().ok())
        .unwrap_or_else(|| panic!("EPSV reply {reply}"));
    let data = TcpStream::connect(SocketAddr::new(addr.ip(), port))
        .await
        .unwrap();
    c.w.write_all(format!("STOR {name}\r\n").as_bytes())
        .await
        .unwrap();
    assert_eq!(c.line().await, "150 Ok to send data.");
    (c, data)
}

/// Chunk `i` (64 KiB) of a large upload, made on the fly so the client holds no file.
fn big_chunk(i: u32, out: &mut [u8]) {
    for (j, b) in out.iter_mut().enumerate() {
        *b = ((i as usize * 7919 + j) as u32)
            .wrapping_mul(2654435761)
            .rotate_right(13) as u8;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_streams_to_disk_and_memory_stays_flat() {
    const CHUNK: usize = 64 * 1024;
    const CAP: usize = 48 * 1024 * 1024;
    // 40 MiB first (then a pause to look), then on past the cap to 64 MiB.
    const FIRST: u32 = 640;
    const ALL: u32 = 1024;
    let dir = tempfile::tempdir().unwrap();
    let o = FtpOptions {
        max_upload_bytes: CAP as u32,
        ..opts(LoginPolicy::Always)
    };
    let mut node = start(dir.path(), o).await;
    let before = rss_anon();
    let (mut c, mut data) = open_upload(node.addr, "upload/huge.bin").await;
    let mut kept_sha = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; CHUNK];
    for i in 0..FIRST {
        big_chunk(i, &mut buf);
        kept_sha.update(&buf);
        data.write_all(&buf).await.unwrap();
    }
    // Everything sent so far reaches the spool's disk as it arrives.
    let sent = u64::from(FIRST) * CHUNK as u64;
    let deadline = tokio::time::Instant::now() + WAIT;
    while spool_files(dir.path()).0 < sent {
        assert!(
            tokio::time::Instant::now() < deadline,
            "upload not on disk: {:?} of {sent}",
            spool_files(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(node.spool.used_bytes(), sent, "reserved as written");
    let grown = rss_anon().saturating_sub(before);
    assert!(
        grown < 16 * 1024 * 1024,
        "private memory grew by {grown} bytes during a {sent}-byte upload"
    );
    // On past the cap: the server stops reading after it and the writes may fail.
    for i in FIRST..ALL {
        big_chunk(i, &mut buf);
        if (i as usize) < CAP / CHUNK {
            kept_sha.update(&buf);
        }
        if data.write_all(&buf).await.is_err() {
            break;
        }
    }
    drop(data);
    assert_eq!(c.line().await, "552 Exceeded storage allocation.");
    let ev = node
        .until("the capture", |ev| !captures(ev).is_empty())
        .await;
    assert!(limit_hit(&ev, "ftp_upload"), "{ev:#?}");
    let caps = captures(&ev);
    assert_eq!(caps[0].2, CAP as u64);
    assert_eq!(caps[0].1, hex::encode(kept_sha.finish().as_ref()));
    let pending = node.spool.pending();
    assert_eq!(std::fs::metadata(&pending[0].1).unwrap().len(), CAP as u64);
    assert!(
        pending[0]
            .0
            .meta
            .contains(&("complete".into(), "false".into()))
    );
    assert_eq!(spool_files(dir.path()).0, 0, "no partial file left");
    let grown = rss_anon().saturating_sub(before);
    assert!(
        grown < 16 * 1024 * 1024,
        "private memory grew by {grown} bytes"
    );
    node.mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_never_overshoot_the_spool_cap() {
    const EACH: usize = 1024 * 1024;
    const SESSIONS: usize = 8;
    // Room for three uploads and their headers, not four.
    let cap: u64 = 3 * EACH as u64 + 64 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let mut node = start_with_spool(dir.path(), opts(LoginPolicy::Always), cap).await;
    // Every session gets to `150` first, then all send at once.
    let mut open = Vec::new();
    for i in 0..SESSIONS {
        open.push(open_upload(node.addr, &format!("upload/f{i}.bin")).await);
    }
    let go = std::sync::Arc::new(tokio::sync::Barrier::new(SESSIONS));
    let tasks: Vec<_> = open
        .into_iter()
        .enumerate()
        .map(|(i, (mut c, mut data))| {
            let go = go.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                go.wait().await;
                for k in 0..(EACH / buf.len()) as u32 {
                    big_chunk(k + 100_000 * i as u32, &mut buf);
                    if data.write_all(&buf).await.is_err() {
                        break;
                    }
                }
                drop(data);
                c.line().await
            })
        })
        .collect();
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(tokio::time::timeout(WAIT, t).await.unwrap().unwrap());
    }
    let stored = replies.iter().filter(|r| r.starts_with("226")).count();
    let full = replies.iter().filter(|r| r.starts_with("451")).count();
    assert_eq!(stored + full, SESSIONS, "{replies:?}");
    assert!(full >= SESSIONS - 3, "{replies:?}");
    let ev = node
        .until("every capture or refusal", |ev| {
            captures(ev).len()
                + ev.iter()
                    .filter(|e| matches!(&e.kind, EventKind::LimitReached { limit, .. } if limit == "capture_spool"))
                    .count()
                >= SESSIONS
        })
        .await;
    assert!(limit_hit(&ev, "capture_spool"));
    let (part, all) = spool_files(dir.path());
    assert_eq!(part, 0, "no partial file left");
    assert!(all <= cap, "{all} bytes on disk, cap {cap}");
    assert_eq!(
        node.spool.used_bytes(),
        all,
        "the accounting matches the disk"
    );
    // The node still serves, and delivered captures give their room back exactly.
    for (h, _) in node.spool.pending() {
        node.spool.remove(&h.sha256);
    }
    assert_eq!(node.spool.used_bytes(), 0);
    let (mut c, mut data) = open_upload(node.addr, "upload/after.bin").await;
    data.write_all(b"#!/bin/sh\n").await.unwrap();
    drop(data);
    assert_eq!(c.line().await, "226 Transfer complete.");
    node.mgr.shutdown().await;
}
