//! Two nodes, two machines: each node's telnet shell shows its own persona (host name,
//! machine-id, network, CPU) and is consistent with itself over time (uptime advances,
//! `/proc/uptime` agrees with `uptime`, PIDs grow across sessions).
//!
//! The nodes' salts are written before they start, so the personas are fixed and the
//! test is deterministic; a third node without a salt file makes its own.

mod shell_common;
mod tools;
use honeybee_proto::config::{LoginPolicy, ServiceConfig, ServiceKind, SshOptions, TelnetOptions};
use shell_common::*;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The prompt ends with this; the host name comes before it.
const PROMPT_END: &str = ":~# ";

fn telnet() -> ServiceKind {
    ServiceKind::Telnet(TelnetOptions {
        login: LoginPolicy::Always,
        auth_failure_delay_ms: 0,
        ..Default::default()
    })
}

/// Writes a persona salt file (`persona.bin`) so the node's machine is known.
fn salt(dir: &std::path::Path, byte: u8) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut b = b"HBPERSO1".to_vec();
    b.extend_from_slice(&[byte; 32]);
    b.extend_from_slice(&now.to_le_bytes());
    b.extend_from_slice(&0u64.to_le_bytes());
    std::fs::write(dir.join("persona.bin"), b).unwrap();
}

/// A raw telnet session: options refused by silence, IAC sequences dropped.
struct Session {
    s: TcpStream,
    text: String,
    /// Commands run, for unique end markers.
    n: u32,
}

impl Session {
    async fn login(addr: SocketAddr) -> Session {
        let mut s = TcpStream::connect(addr).await.unwrap();
        // The server waits for the client to speak first: WONT TERMINAL-TYPE.
        s.write_all(&[255, 252, 24]).await.unwrap();
        let mut t = Session {
            s,
            text: String::new(),
            n: 0,
        };
        t.until("login: ").await;
        t.send("root").await;
        t.until("Password: ").await;
        t.send("hunter2").await;
        t.until(PROMPT_END).await;
        t
    }

    async fn send(&mut self, line: &str) {
        self.s
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    /// Reads until the text since the last call ends with `what`; returns that text.
    async fn until(&mut self, what: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(i) = self.text.find(what) {
                let out = self.text[..i + what.len()].to_owned();
                self.text.drain(..i + what.len());
                return out;
            }
            let mut buf = [0u8; 8192];
            let n = tokio::time::timeout_at(deadline, self.s.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no {what:?} in {:?}", self.text))
                .unwrap();
            assert!(n > 0, "closed before {what:?}: {:?}", self.text);
            let mut i = 0;
            let mut clean = Vec::new();
            while i < n {
                match buf[i] {
                    255 if i + 1 < n && (251..=254).contains(&buf[i + 1]) => i += 3,
                    255 => i += 2,
                    b => {
                        clean.push(b);
                        i += 1;
                    }
                }
            }
            self.text.push_str(&String::from_utf8_lossy(&clean));
            // A bare CR comes as CR NUL (NVT); bash turns bracketed paste off after each
            // line and on before each prompt.
            self.text = self
                .text
                .replace("\r\0", "\r")
                .replace("\x1b[?2004l\r", "")
                .replace("\r\n", "\n");
        }
    }

    /// Runs one command line; its output. A marker echoed after it ends the output, so
    /// extra prompts cannot shift one command's output onto the next.
    async fn run(&mut self, line: &str) -> String {
        self.n += 1;
        let marker = format!("@@{}@@", self.n);
        self.send(&format!("{line}; echo {marker}")).await;
        let upto = self.until(&format!("\n{marker}")).await;
        let echo = upto
            .rfind(&format!("echo {marker}\n"))
            .expect("the line is echoed");
        let start = echo + marker.len() + 6;
        let end = upto.len() - marker.len() - 1;
        if start > end {
            String::new()
        } else {
            upto[start..=end].to_owned()
        }
    }
}

/// What one node's shell says about its machine.
#[derive(Debug)]
struct Facts {
    hostname: String,
    machine_id: String,
    ip: String,
    cpuinfo: String,
    shell_pid: u32,
}

async fn facts(addr: SocketAddr) -> Facts {
    let mut s = Session::login(addr).await;
    let f = Facts {
        hostname: s.run("hostname").await.trim().to_owned(),
        machine_id: s.run("cat /etc/machine-id").await.trim().to_owned(),
        ip: s.run("ip addr").await,
        cpuinfo: s.run("cat /proc/cpuinfo").await,
        shell_pid: {
            let out = s.run("echo $$").await;
            out.trim()
                .parse()
                .unwrap_or_else(|_| panic!("echo $$: {out:?}"))
        },
    };
    s.send("exit").await;
    f
}

/// The address and MAC lines of `ip addr` (without the lease's countdown).
fn addresses(ip: &str) -> String {
    ip.lines()
        .filter(|l| l.contains("inet") || l.contains("link/ether"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `/proc/uptime`'s whole seconds, and `uptime`'s days and h:mm, from one line.
fn parse_uptimes(out: &str) -> (i64, String) {
    let mut lines = out.lines();
    let secs: f64 = lines
        .next()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let up = lines.next().unwrap();
    let after = up.split(" up ").nth(1).unwrap();
    // ` 114 days,  2:48,  1 user,  load average: …`: up to the comma before the users.
    let before_users = after.split(" user").next().unwrap();
    let shown = before_users.rsplit_once(',').unwrap().0.to_owned();
    (secs as i64, shown)
}

/// How `uptime` shows `secs` (procps: `N days, HH:MM` or `N days, M min`).
fn uptime_text(secs: i64) -> String {
    let days = secs / 86_400;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let mut s = String::new();
    if days > 0 {
        s.push_str(&format!("{days} day{}, ", if days == 1 { "" } else { "s" }));
    }
    if h > 0 {
        s.push_str(&format!("{h:2}:{m:02}"));
    } else {
        s.push_str(&format!("{m} min"));
    }
    s
}

#[tokio::test]
async fn two_nodes_show_two_machines() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    salt(da.path(), 1);
    salt(db.path(), 2);
    let a = start(da.path(), &one("telnet", telnet())).await;
    let b = start(db.path(), &one("telnet", telnet())).await;
    let fa = facts(a.addr).await;
    let fb = facts(b.addr).await;

    assert_ne!(fa.hostname, fb.hostname);
    for f in [&fa, &fb] {
        assert_eq!(f.machine_id.len(), 32, "{f:?}");
        assert!(f.machine_id.bytes().all(|c| c.is_ascii_hexdigit()), "{f:?}");
        assert!(f.ip.contains("link/ether "), "{}", f.ip);
        assert!(f.cpuinfo.contains("model name"), "{}", f.cpuinfo);
    }
    assert_ne!(fa.machine_id, fb.machine_id);
    assert_ne!(addresses(&fa.ip), addresses(&fb.ip));
    assert_ne!(fa.cpuinfo, fb.cpuinfo);

    // The prompt carries the persona's host name; the login banner its kernel.
    let mut s = Session::login(a.addr).await;
    let uname = s.run("uname -a").await;
    assert!(
        uname.starts_with(&format!("Linux {} 6.1.0-", fa.hostname)),
        "{uname}"
    );
    assert!(
        uname.contains(" #1 SMP PREEMPT_DYNAMIC Debian 6.1."),
        "{uname}"
    );
    let release = s.run("uname -r").await;
    assert!(
        s.run("cat /proc/version").await.contains(release.trim()),
        "{release}"
    );

    // /proc/uptime and uptime agree (one line, one clock reading).
    let (secs, shown) = parse_uptimes(&s.run("cat /proc/uptime; uptime").await);
    assert!(secs > 2 * 86_400, "up {secs}s");
    assert_eq!(shown, uptime_text(secs));
    // ...and the clock moves: a second later the machine has been up longer.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (later, _) = parse_uptimes(&s.run("cat /proc/uptime; uptime").await);
    assert!(later > secs, "{secs} then {later}");

    // The process table: the node's telnet daemon, this shell, ps itself.
    let ps = s.run("ps aux").await;
    assert!(ps.contains("/usr/sbin/inetutils-inetd"), "{ps}");
    assert!(ps.contains("-bash"), "{ps}");
    assert!(ps.contains("ps aux"), "{ps}");
    assert!(!ps.contains("sshd -D"), "the node runs no SSH: {ps}");
    let ps2 = s.run("ps aux").await;
    let ps_pid = |t: &str| -> u32 {
        let l = t.lines().find(|l| l.ends_with(" ps aux")).unwrap();
        l.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    assert!(ps_pid(&ps2) > ps_pid(&ps), "{ps}\n{ps2}");
    s.send("exit").await;

    // A later session gets a higher shell PID on the same node.
    let again = facts(a.addr).await;
    assert!(again.shell_pid > fa.shell_pid, "{fa:?} {again:?}");
    assert_eq!(again.machine_id, fa.machine_id);
    assert_eq!(again.hostname, fa.hostname);
}

#[tokio::test]
async fn a_node_makes_and_keeps_its_own_persona() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = start(dir.path(), &one("telnet", telnet())).await;
    let f1 = facts(first.addr).await;
    assert!(dir.path().join("persona.bin").exists());
    first.mgr.shutdown().await;
    drop(first);
    // Restarted on the same data directory: the same machine, PIDs still growing.
    let second = start(dir.path(), &one("telnet", telnet())).await;
    let f2 = facts(second.addr).await;
    assert_eq!(f1.machine_id, f2.machine_id);
    assert_eq!(f1.hostname, f2.hostname);
    assert_eq!(addresses(&f1.ip), addresses(&f2.ip));
    assert!(f2.shell_pid > f1.shell_pid, "{f1:?} {f2:?}");
}

/// With an SSH service on the node, the shell's /etc/ssh/ssh_host_ed25519_key.pub (over
/// Telnet too) is the key the SSH service presents, as `ssh-keyscan` reads it.
#[tokio::test]
async fn the_shell_shows_the_ssh_host_key_clients_see() {
    tools::require(&["ssh-keyscan"]);
    let dir = tempfile::tempdir().unwrap();
    let mut config = one("telnet", telnet());
    config.services.push(ServiceConfig {
        name: "ssh".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        enabled: true,
        kind: ServiceKind::Ssh(SshOptions::default()),
    });
    let run = start(dir.path(), &config).await;
    let ssh_port = run.mgr.status()[1]
        .listen
        .parse::<SocketAddr>()
        .unwrap()
        .port();
    let scan = tokio::process::Command::new("ssh-keyscan")
        .args(["-t", "ed25519", "-p", &ssh_port.to_string(), "127.0.0.1"])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let scanned = String::from_utf8_lossy(&scan.stdout).into_owned();
    let served = scanned
        .lines()
        .find_map(|l| l.split_once(" ssh-ed25519 ").map(|(_, k)| k.to_owned()))
        .unwrap_or_else(|| panic!("no ed25519 key from ssh-keyscan: {scanned:?}"));
    let mut s = Session::login(run.addr).await;
    let shown = s.run("cat /etc/ssh/ssh_host_ed25519_key.pub").await;
    let hostname = s.run("hostname").await;
    assert_eq!(
        shown,
        format!("ssh-ed25519 {served} root@{}\n", hostname.trim()),
        "{scanned}"
    );
}

/// Sends one request and reads the whole answer.
async fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: h\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// What identifies a node's web pages beyond the server's version: titles, headings,
/// firmware and hardware lines, site names, dates (the lines that differ across nodes
/// are the per-node ones; the shared template is the software's, as on real devices).
fn page_facts(page: &str) -> Vec<String> {
    page.lines()
        .filter(|l| {
            l.contains("<title>")
                || l.contains("Firmware Version")
                || l.contains("Model No.")
                || l.contains("wp-block-site-title")
                || l.contains("wp-block-post-title")
        })
        .map(str::to_owned)
        .collect()
}

/// An FTP session's answers: the control replies and each transfer's data, for
/// `commands` after `USER www` / `PASS x` (each transfer after its own PASV).
async fn ftp_session(addr: SocketAddr, commands: &[&str]) -> Vec<String> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut c = BufReader::new(TcpStream::connect(addr).await.unwrap());
    // One reply (multi-line ones end with `NNN ` like their first line's code).
    async fn reply(c: &mut BufReader<TcpStream>) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, c.read_line(&mut line))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "closed after {all:?}");
            all.push_str(&line);
            if line.len() >= 4 && line.as_bytes()[3] == b' ' {
                return all;
            }
        }
    }
    async fn cmd(c: &mut BufReader<TcpStream>, line: &str) -> String {
        c.get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        reply(c).await
    }
    reply(&mut c).await;
    cmd(&mut c, "USER www").await;
    assert!(cmd(&mut c, "PASS x").await.starts_with("230"));
    let mut out = Vec::new();
    for line in commands {
        let pasv = cmd(&mut c, "EPSV").await;
        let port: u16 = pasv
            .split("(|||")
            .nth(1)
            .and_then(|r| r.split('|').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{pasv}"));
        let mut data = TcpStream::connect((addr.ip(), port)).await.unwrap();
        let opening = cmd(&mut c, line).await;
        assert!(opening.starts_with("150"), "{line}: {opening}");
        let mut got = Vec::new();
        tokio::time::timeout(WAIT, data.read_to_end(&mut got))
            .await
            .unwrap()
            .unwrap();
        reply(&mut c).await;
        out.push(String::from_utf8_lossy(&got).into_owned());
    }
    out
}

/// Two nodes with different seeds share no identifying signature in any service: the
/// router page (model, firmware, colour, page dates), the WordPress site (name, posts),
/// the PLC page (serial, station) and the FTP account (its listing, and the site's
/// database in the config left there, named after the node's own WordPress site)
/// differ. (The HTTPS certificate's per-node subject
/// and dates are checked in `http_tls.rs`; its key and serial are random per node.)
#[tokio::test]
async fn two_seeds_share_no_signature_across_services() {
    use honeybee_proto::config::{FtpOptions, HttpOptions, HttpPersona, ModbusOptions};
    let http = |persona, tls| {
        ServiceKind::Http(HttpOptions {
            persona,
            tls,
            ..Default::default()
        })
    };
    let node = || {
        let mut cfg = one("router", http(HttpPersona::Router, false));
        for (name, kind) in [
            ("blog", http(HttpPersona::Wordpress, false)),
            ("plc", http(HttpPersona::Plc, false)),
            ("modbus", ServiceKind::Modbus(ModbusOptions::default())),
            (
                "ftp",
                ServiceKind::Ftp(FtpOptions {
                    login: LoginPolicy::Always,
                    auth_failure_delay_ms: 0,
                    ..Default::default()
                }),
            ),
        ] {
            cfg.services.push(ServiceConfig {
                name: name.into(),
                listen: "127.0.0.1:0".parse().unwrap(),
                enabled: true,
                kind,
            });
        }
        cfg
    };
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    salt(da.path(), 3);
    salt(db.path(), 4);
    let a = start(da.path(), &node()).await;
    let b = start(db.path(), &node()).await;
    let addr = |r: &Running, i: usize| -> SocketAddr { r.mgr.status()[i].listen.parse().unwrap() };
    for (i, path) in [(0, "/"), (1, "/"), (2, "/")] {
        let (pa, pb) = (
            http_get(addr(&a, i), path).await,
            http_get(addr(&b, i), path).await,
        );
        let (fa, fb) = (page_facts(&pa), page_facts(&pb));
        assert!(!fa.is_empty() || i == 2, "{pa}");
        for line in &fa {
            assert!(
                !fb.contains(line) || line.trim() == "<title>",
                "service {i}: both nodes show {line:?}"
            );
        }
        if i == 2 {
            // The PLC pages: serial and station differ, the Modbus identity is shared
            // (it is the configured device).
            let serial = |p: &str| {
                p.lines()
                    .find(|l| l.contains("Serial number"))
                    .unwrap()
                    .to_owned()
            };
            assert_ne!(serial(&pa), serial(&pb));
        }
        // The Last-Modified of the router's pages: each firmware its own build.
        if i == 0 {
            let lm = |p: &str| {
                p.lines()
                    .find(|l| l.starts_with("Last-Modified"))
                    .unwrap()
                    .to_owned()
            };
            assert_ne!(lm(&pa), lm(&pb));
        }
    }
    // FTP: each node's account is its own WordPress site's.
    let listing = [
        "LIST -a /",
        "LIST /www",
        "LIST /backup",
        "RETR /www/wp-config.php.bak",
    ];
    let (fa, fb) = (
        ftp_session(addr(&a, 4), &listing).await,
        ftp_session(addr(&b, 4), &listing).await,
    );
    for (x, y) in fa.iter().zip(&fb) {
        assert_ne!(x, y, "both nodes' FTP accounts show the same");
    }
    for (f, r) in [(&fa, &a), (&fb, &b)] {
        assert!(f[1].contains(" index.php\r\n"), "{}", f[1]);
        assert!(!f.concat().contains("Harbour Street"), "{f:?}");
        // The site name the blog shows is the database's in the config.
        let page = http_get(addr(r, 1), "/").await;
        let title = page
            .split("<title>")
            .nth(1)
            .and_then(|t| t.split(['<', ' ']).next())
            .unwrap_or_else(|| panic!("{page}"))
            .to_ascii_lowercase();
        assert!(
            f[3].contains(&format!("'DB_NAME', 'wp_{title}'")),
            "{title}: {}",
            f[3]
        );
    }
}

/// A host name configured on the node's SSH service is the machine's everywhere: the
/// Apache error pages of its web site sign with it too.
#[tokio::test]
async fn a_configured_host_name_is_the_web_servers_too() {
    use honeybee_proto::config::{HttpOptions, HttpPersona};
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = one(
        "http",
        ServiceKind::Http(HttpOptions {
            persona: HttpPersona::Wordpress,
            ..Default::default()
        }),
    );
    cfg.services.push(ServiceConfig {
        name: "ssh".into(),
        listen: "127.0.0.1:0".parse().unwrap(),
        enabled: true,
        kind: ServiceKind::Ssh(SshOptions {
            hostname: "mail-gw-01".into(),
            ..Default::default()
        }),
    });
    let run = start(dir.path(), &cfg).await;
    let mut s = TcpStream::connect(run.addr).await.unwrap();
    s.write_all(b"DELETE / HTTP/1.0\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let page = String::from_utf8_lossy(&out);
    assert!(
        page.contains("Server at mail-gw-01 Port 80</address>"),
        "{page}"
    );
    // With a Host header, Apache (UseCanonicalName Off) signs with the client's name.
    let mut s = TcpStream::connect(run.addr).await.unwrap();
    s.write_all(b"DELETE / HTTP/1.1\r\nHost: Shop.Example:8081\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let page = String::from_utf8_lossy(&out);
    assert!(
        page.contains("Server at shop.example Port 8081</address>"),
        "{page}"
    );
}

/// The services a node runs are its machine's daemons: an SMTP service is Postfix
/// (master and the qmgr and pickup it spawns, listening on 25) and a MySQL service with
/// the default version is Debian's MariaDB (`mariadbd`, user mysql), as Debian 12's
/// packages run them; no `mysqld` on a machine whose server greets as MariaDB.
#[tokio::test]
async fn the_process_table_shows_postfix_and_mariadb() {
    use honeybee_proto::config::{MysqlOptions, SmtpOptions};
    let dir = tempfile::tempdir().unwrap();
    salt(dir.path(), 5);
    let mut cfg = one("telnet", telnet());
    for (name, kind) in [
        ("smtp", ServiceKind::Smtp(SmtpOptions::default())),
        ("mysql", ServiceKind::Mysql(MysqlOptions::default())),
    ] {
        cfg.services.push(ServiceConfig {
            name: name.into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            enabled: true,
            kind,
        });
    }
    let run = start(dir.path(), &cfg).await;
    let mut s = Session::login(run.addr).await;
    let ps = s.run("ps aux").await;
    let line = |what: &str| -> Vec<String> {
        ps.lines()
            .find(|l| l.ends_with(what))
            .unwrap_or_else(|| panic!("no {what:?} in {ps}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let master = line(" /usr/lib/postfix/sbin/master -w");
    assert_eq!(master[0], "root", "{ps}");
    for child in [" qmgr -l -t unix -u", " pickup -l -t unix -u"] {
        assert_eq!(line(child)[0], "postfix", "{ps}");
    }
    assert_eq!(line(" /usr/sbin/mariadbd")[0], "mysql", "{ps}");
    assert!(!ps.contains("mysqld"), "{ps}");
    // The children's parent is master.
    let ef = s.run("ps -ef").await;
    let qmgr = ef
        .lines()
        .find(|l| l.ends_with(" qmgr -l -t unix -u"))
        .unwrap();
    assert_eq!(
        qmgr.split_whitespace().nth(2),
        Some(master[1].as_str()),
        "{ef}"
    );
    // And the sockets: Postfix on 25, MariaDB on 3306.
    let ss = s.run("ss -tlnp").await;
    assert!(
        ss.lines()
            .any(|l| l.contains(":25 ") && l.contains("\"master\"")),
        "{ss}"
    );
    assert!(
        ss.lines()
            .any(|l| l.contains(":3306 ") && l.contains("\"mariadbd\"")),
        "{ss}"
    );
    s.send("exit").await;
}
