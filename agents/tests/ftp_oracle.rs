//! Differential test of the FTP service against the real vsftpd 3.0.3 (Debian 12's
//! `/usr/sbin/vsftpd`), both on loopback, given the same raw command sequences; reply
//! codes and texts are compared after normalising what differs by instance (ports in
//! passive replies, the user name in STAT, owners and times in listings).
//!
//! Before login the real server runs Debian's default `/etc/vsftpd.conf` (anonymous
//! off, local users, PAM). After login a local test user is not available, so the real
//! server lets `anonymous` in with the write options a local user has under
//! `write_enable=YES` (`anon_upload_enable`, `anon_mkdir_write_enable`,
//! `anon_other_write_enable`), rooted in a copy of our fake tree (fetched from our
//! service), and our service takes any password (`LoginPolicy::Always`).
//!
//! The nmap test compares `nmap -sV`'s service line for the real server and ours.

mod tools;

use honeybee_agent::services::{Limits, ServiceManager};
use honeybee_agent::sink::EventSink;
use honeybee_proto::config::{FtpOptions, LoginPolicy, NodeConfig, ServiceConfig, ServiceKind};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

const VSFTPD: &str = "/usr/sbin/vsftpd";
const WAIT: Duration = Duration::from_secs(20);

/// The real vsftpd, stopped (by its PID) when dropped.
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

/// Debian 12's `/etc/vsftpd.conf` (its uncommented lines), standalone on loopback.
const DEBIAN_CONF: &str = "anonymous_enable=NO\nlocal_enable=YES\ndirmessage_enable=YES\n\
use_localtime=YES\nxferlog_enable=NO\nconnect_from_port_20=YES\n\
secure_chroot_dir=/var/run/vsftpd/empty\npam_service_name=vsftpd\nssl_enable=NO\n";

/// Starts vsftpd with Debian's configuration plus `extra` lines.
async fn start_real(root: Option<&Path>, extra: &str) -> Real {
    assert!(
        Path::new(VSFTPD).exists(),
        "this test needs the real vsftpd: apt-get install -y vsftpd (scripts/test.sh)"
    );
    std::fs::create_dir_all("/var/run/vsftpd/empty").expect("vsftpd's secure_chroot_dir");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut conf = format!(
        "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\nbackground=NO\n{DEBIAN_CONF}{extra}"
    );
    if let Some(root) = root {
        conf += &format!("anon_root={}\n", root.display());
    }
    let path = dir.path().join("vsftpd.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new(VSFTPD)
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("vsftpd starts (as root)");
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
    panic!("vsftpd did not listen on {addr}");
}

async fn start_ours(dir: &Path, login: LoginPolicy) -> (ServiceManager, SocketAddr) {
    let (sink, mut rx) = EventSink::channel(16 * 1024);
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let mut mgr = ServiceManager::new(sink, dir.join("state"), Limits::default());
    mgr.apply(&NodeConfig {
        services: vec![ServiceConfig {
            name: "ftp".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            enabled: true,
            kind: ServiceKind::Ftp(FtpOptions {
                login,
                ..FtpOptions::default()
            }),
        }],
    })
    .await;
    let addr = mgr.status()[0].listen.parse().unwrap();
    (mgr, addr)
}

/// One control connection.
struct Ctl {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
}

impl Ctl {
    async fn connect(addr: SocketAddr) -> (Ctl, String) {
        let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut c = Ctl {
            r: BufReader::new(r),
            w,
        };
        let greeting = c.reply().await;
        (c, greeting)
    }

    /// One whole reply (multi-line ones up to their `ddd ` line), or `<closed>`.
    async fn reply(&mut self) -> String {
        let mut out = String::new();
        loop {
            let mut line = String::new();
            match tokio::time::timeout(WAIT, self.r.read_line(&mut line)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => {
                    out += "<closed>";
                    return out;
                }
                Ok(Ok(_)) => {}
            }
            out += &line;
            let b = line.as_bytes();
            if b.len() >= 4 && b[..3].iter().all(u8::is_ascii_digit) && b[3] == b' ' {
                return out;
            }
        }
    }

    async fn cmd(&mut self, line: &str) -> String {
        if self
            .w
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .is_err()
        {
            return "<closed>".into();
        }
        self.reply().await
    }

    /// A transfer over PASV: the replies to `cmd` (opening and end) and the data.
    async fn transfer(&mut self, cmd: &str, upload: Option<&[u8]>) -> (String, Vec<u8>) {
        let pasv = self.cmd("PASV").await;
        let Some(port) = pasv_port(&pasv) else {
            return (format!("{pasv}{}", self.cmd(cmd).await), Vec::new());
        };
        let mut data = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let opening = self.cmd(cmd).await;
        if !opening.starts_with("150") {
            return (opening, Vec::new());
        }
        let mut got = Vec::new();
        match upload {
            Some(bytes) => {
                data.write_all(bytes).await.unwrap();
                drop(data);
            }
            None => {
                let _ = tokio::time::timeout(WAIT, data.read_to_end(&mut got)).await;
            }
        }
        let end = self.reply().await;
        (format!("{opening}{end}"), got)
    }
}

fn pasv_port(reply: &str) -> Option<u16> {
    let inner = reply.split('(').nth(1)?.split(')').next()?;
    let n: Vec<u16> = inner.split(',').filter_map(|p| p.parse().ok()).collect();
    (n.len() == 6).then(|| n[4] * 256 + n[5])
}

/// Replies with instance-specific values replaced: passive ports, the STAT user.
fn norm_reply(s: &str) -> String {
    s.split("\r\n")
        .map(|l| {
            if l.starts_with("227 Entering Passive Mode (") {
                "227 Entering Passive Mode (*).".to_owned()
            } else if l.starts_with("229 Entering Extended Passive Mode") {
                "229 Entering Extended Passive Mode (|||*|)".to_owned()
            } else if l.trim_start().starts_with("Logged in as ") {
                "     Logged in as *".to_owned()
            } else if l
                .trim_start()
                .starts_with("At session startup, client count was ")
            {
                "     At session startup, client count was *".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// A listing with owners and clock times replaced (the trees are the same, their
/// owners and upload minutes are not).
fn norm_listing(data: &[u8]) -> String {
    String::from_utf8_lossy(data)
        .split("\r\n")
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 9 {
                return l.to_owned();
            }
            let time = if f[7].contains(':') { "hh:mm" } else { f[7] };
            format!(
                "{} {} * * {} {} {} {} {}",
                f[0],
                f[1],
                f[4],
                f[5],
                f[6],
                time,
                f[8..].join(" ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

struct Tally {
    matched: usize,
    total: usize,
    report: String,
}

impl Tally {
    fn check(&mut self, what: &str, real: &str, ours: &str) {
        self.total += 1;
        if real == ours {
            self.matched += 1;
        } else {
            self.report += &format!("--- {what}\nreal: {real:?}\nours: {ours:?}\n");
        }
    }
}

/// Before login, against Debian's default configuration: the greeting, what is refused
/// before login, anonymous refused, failures counted to the close. Each failure waits
/// about 3 s on both servers (PAM's delay and vsftpd's), so the sessions run side by
/// side.
async fn before_login(real: SocketAddr, ours: SocketAddr) -> Tally {
    let script: &[&str] = &[
        "SYST",
        "HELP",
        "FEAT",
        "STAT",
        "PWD",
        "LIST",
        "PASS x",
        "ACCT x",
        "FROB",
        "NOOP",
        "USER anonymous",
        "PASS guest@example.com",
        "USER ftp",
        "PASS ftp",
        "USER root",
        "PASS 123456",
        "NOOP",
    ];
    let run = |addr: SocketAddr| async move {
        let (mut c, greeting) = Ctl::connect(addr).await;
        let mut out = vec![("greeting".to_owned(), greeting, Duration::ZERO)];
        for line in script {
            let t = Instant::now();
            let r = c.cmd(line).await;
            out.push((line.to_string(), r, t.elapsed()));
        }
        out
    };
    let (r, o) = tokio::join!(run(real), run(ours));
    let mut tally = Tally {
        matched: 0,
        total: 0,
        report: String::new(),
    };
    for ((what, real, rt), (_, ours, ot)) in r.iter().zip(&o) {
        if what.starts_with("PASS") {
            eprintln!("{what}: real {rt:?}, ours {ot:?}");
        }
        tally.check(what, &norm_reply(real), &norm_reply(ours));
    }
    tally
}

/// Builds the real server's anonymous root as a copy of our fake tree: fetched from our
/// service (listings, contents, sizes), with the same dates.
async fn copy_tree(ours: SocketAddr, root: &Path) {
    let (mut c, _) = Ctl::connect(ours).await;
    c.cmd("USER www").await;
    // The password the later session uses: the first that got in stays the account's.
    assert!(c.cmd("PASS x@example.com").await.starts_with("230"));
    // The home directory's date (per node): `.` of `LIST -a`.
    let (_, all) = c.transfer("LIST -a /", None).await;
    let all = String::from_utf8_lossy(&all).into_owned();
    let root_date = all
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() == 9 && f[8] == ".")
        .map(|f| format!("{} {} {}", f[5], f[6], f[7]))
        .unwrap_or_else(|| panic!("no . in {all:?}"));
    let mut dirs = vec![String::new()];
    let mut dir_dates = Vec::new();
    while let Some(dir) = dirs.pop() {
        let (_, listing) = c.transfer(&format!("LIST /{dir}"), None).await;
        for line in String::from_utf8_lossy(&listing).lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 9 {
                continue;
            }
            let name = f[8..].join(" ");
            let rel = if dir.is_empty() {
                name.clone()
            } else {
                format!("{dir}/{name}")
            };
            let path = root.join(&rel);
            let date = format!("{} {} {}", f[5], f[6], f[7]);
            if f[0].starts_with('d') {
                std::fs::create_dir_all(&path).unwrap();
                dir_dates.push((path.clone(), date.clone()));
                dirs.push(rel);
            } else {
                let size: u64 = f[4].parse().unwrap();
                let (reply, content) = c.transfer(&format!("RETR /{rel}"), None).await;
                if reply.starts_with("150") {
                    std::fs::write(&path, content).unwrap();
                } else {
                    // A file listed but not downloadable: the same size, sparse.
                    std::fs::File::create(&path).unwrap().set_len(size).unwrap();
                }
                set_date(&path, &date);
            }
            std::process::Command::new("chown")
                .args(["1000:1000", path.to_str().unwrap()])
                .status()
                .unwrap();
        }
    }
    let _ = c.cmd("QUIT").await;
    // Directory dates last: writing into a directory changes its mtime.
    for (path, date) in dir_dates {
        set_date(&path, &date);
    }
    // The home directory: readable by the server's anonymous user, and dated as ours
    // (the node's, read above).
    std::process::Command::new("chmod")
        .args(["755", root.to_str().unwrap()])
        .status()
        .unwrap();
    std::process::Command::new("chown")
        .args(["1000:1000", root.to_str().unwrap()])
        .status()
        .unwrap();
    set_date(root, &root_date);
    // Uploads go to a directory the server's anonymous user owns.
    std::process::Command::new("chown")
        .args(["-R", "ftp", root.join("upload").to_str().unwrap()])
        .status()
        .unwrap();
}

/// Sets a file's mtime from an `ls` date like `Mar 14  2023` (noon UTC).
fn set_date(path: &Path, date: &str) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let f: Vec<&str> = date.split_whitespace().collect();
    let (Some(m), Ok(d), Ok(y)) = (
        MONTHS.iter().position(|m| *m == f[0]),
        f[1].parse::<i64>(),
        f[2].parse::<i64>(),
    ) else {
        return;
    };
    // Days from the civil date (Hinnant's algorithm).
    let (y, m) = if m < 2 {
        (y - 1, m as i64 + 10)
    } else {
        (y, m as i64 - 2)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let t = UNIX_EPOCH + Duration::from_secs((days * 86_400 + 12 * 3600) as u64);
    // A directory is opened read-only (the owner, root here, may still set its times).
    let f = if path.is_dir() {
        std::fs::File::open(path)
    } else {
        std::fs::File::options().write(true).open(path)
    };
    f.unwrap().set_modified(t).unwrap();
}

/// After login: navigation, modes, transfers, active mode, uploads, writes.
async fn after_login(real: SocketAddr, ours: SocketAddr, free: u16) -> Tally {
    let (p1, p2) = (free / 256, free % 256);
    let port_cmd = format!("PORT 127,0,0,1,{p1},{p2}");
    let eprt_cmd = format!("EPRT |1|127.0.0.1|{free}|");
    let run = |addr: SocketAddr, user: &'static str| {
        let port_cmd = port_cmd.clone();
        let eprt_cmd = eprt_cmd.clone();
        async move {
            let (mut c, _) = Ctl::connect(addr).await;
            let mut out: Vec<(String, String)> = Vec::new();
            out.push(("USER".into(), c.cmd(&format!("USER {user}")).await));
            out.push(("PASS".into(), c.cmd("PASS x@example.com").await));
            for line in [
                "SYST",
                "PWD",
                "FEAT",
                "HELP",
                "STAT",
                "TYPE I",
                "TYPE A",
                "TYPE X",
                "MODE S",
                "MODE B",
                "STRU F",
                "STRU R",
                "NOOP",
                "OPTS UTF8 ON",
                "OPTS FOO",
                "CWD /nope",
                "CWD www",
                "PWD",
                "CDUP",
                "PWD",
                "CWD ..",
                "PWD",
                "CWD",
                "SIZE notes.txt",
                "MDTM notes.txt",
                "MDTM www/index.php",
                "MDTM /",
                "SIZE /",
                "REIN",
                "SMNT x",
                "ACCT x",
                "XPWD",
                "XCUP",
                "STAT notes.txt",
                "STAT www",
                "STOU",
                "SIZE nope",
                "MDTM nope",
                "REST 5",
                "REST 0",
                "ABOR",
                "ALLO 5",
                "FROB",
                "LIST",
                "RETR notes.txt",
                "STOR x",
                &port_cmd,
                "LIST",
                &eprt_cmd,
                "RETR notes.txt",
                "PORT 10,0,0,1,4,1",
                "PORT garbage",
                "EPRT |1|10.0.0.1|1025|",
                "STAT",
            ] {
                out.push((line.to_owned(), c.cmd(line).await));
            }
            for t in [
                "LIST",
                "LIST -la",
                "LIST -l /www",
                "NLST",
                "NLST /www",
                "RETR notes.txt",
                "RETR www/index.php",
                "RETR nope",
            ] {
                let (r, data) = c.transfer(t, None).await;
                out.push((t.to_owned(), r));
                out.push((format!("{t} data"), norm_listing(&data)));
            }
            let (r, _) = c
                .transfer("STOR upload/u.txt", Some(b"uploaded data\n"))
                .await;
            out.push(("STOR".into(), r));
            let (r, data) = c.transfer("LIST upload", None).await;
            out.push(("LIST upload".into(), r));
            out.push(("LIST upload data".into(), norm_listing(&data)));
            let (r, data) = c.transfer("RETR upload/u.txt", None).await;
            out.push(("RETR upload".into(), r));
            out.push((
                "RETR upload data".into(),
                String::from_utf8_lossy(&data).into_owned(),
            ));
            for line in [
                "SIZE upload/u.txt",
                "MKD upload/d",
                "MKD upload/d",
                "RMD upload/d",
                "RMD upload/d",
                "RNFR upload/u.txt",
                "RNTO upload/v.txt",
                "RNFR nope",
                "DELE upload/v.txt",
                "DELE upload/v.txt",
                "QUIT",
            ] {
                out.push((line.to_owned(), c.cmd(line).await));
            }
            out
        }
    };
    let r = run(real, "anonymous").await;
    let o = run(ours, "www").await;
    let mut tally = Tally {
        matched: 0,
        total: 0,
        report: String::new(),
    };
    for ((what, real), (_, ours)) in r.iter().zip(&o) {
        tally.check(what, &norm_reply(real), &norm_reply(ours));
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ftp_answers_like_real_vsftpd_slow() {
    let dir = tempfile::tempdir().unwrap();
    // Before login: Debian's configuration on both sides.
    let real = start_real(None, "").await;
    let (mut mgr, ours) = start_ours(dir.path(), LoginPolicy::Never).await;
    let before = before_login(real.addr, ours).await;
    drop(real);
    mgr.shutdown().await;

    let (mut mgr, ours) = start_ours(dir.path(), LoginPolicy::Always).await;
    let root = tempfile::tempdir().unwrap();
    copy_tree(ours, root.path()).await;
    let real = start_real(
        Some(root.path()),
        "anonymous_enable=YES\nallow_writeable_chroot=YES\nwrite_enable=YES\nanon_upload_enable=YES\n\
         anon_mkdir_write_enable=YES\nanon_other_write_enable=YES\nanon_world_readable_only=NO\n",
    )
    .await;
    let after = after_login(real.addr, ours, free_port()).await;
    drop(real);
    mgr.shutdown().await;

    let matched = before.matched + after.matched;
    let total = before.total + after.total;
    eprintln!("{}{}", before.report, after.report);
    eprintln!(
        "ftp oracle: before login {}/{}, after login {}/{}, all {matched}/{total} replies as vsftpd 3.0.3 gives them ({:.0}%)",
        before.matched,
        before.total,
        after.matched,
        after.total,
        100.0 * matched as f64 / total as f64
    );
    assert!(
        matched * 100 >= total * 85,
        "only {matched} of {total} replies match vsftpd:\n{}{}",
        before.report,
        after.report
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nmap_names_ftp_as_real_vsftpd() {
    tools::require(&["nmap"]);
    let dir = tempfile::tempdir().unwrap();
    let real = start_real(None, "").await;
    let (mut mgr, ours) = start_ours(dir.path(), LoginPolicy::Never).await;
    let real_port = real.addr.port();
    let ports = format!("{real_port},{}", ours.port());
    let out = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .args([
                "120",
                "nmap",
                "-sV",
                "-Pn",
                "-n",
                "-p",
                &ports,
                "127.0.0.1",
                "-oX",
                "-",
            ])
            .output()
            .expect("nmap runs")
    })
    .await
    .unwrap();
    drop(real);
    mgr.shutdown().await;
    let xml = String::from_utf8_lossy(&out.stdout);
    let service = |port: u16| {
        let rest = &xml[xml
            .find(&format!("portid=\"{port}\""))
            .unwrap_or_else(|| panic!("{xml}"))..];
        let svc = &rest[rest.find("<service ").unwrap_or_else(|| panic!("{xml}"))..];
        let svc = &svc[..svc.find('>').unwrap()];
        ["name", "product", "version"]
            .map(|a| {
                svc.split(&format!(" {a}=\""))
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                    .unwrap_or("")
                    .to_owned()
            })
            .join(" ")
    };
    let (r, o) = (service(real_port), service(ours.port()));
    eprintln!("nmap: real {r:?}, ours {o:?}");
    assert_eq!(r, "ftp vsftpd 3.0.3");
    assert_eq!(o, r);
}
