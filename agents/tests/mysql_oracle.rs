//! Differential test of the MySQL honeypot's default persona against the real thing a
//! Debian 12 box runs as "mysql": Debian's `mariadb-server` 1:10.11.x (Debian has no
//! MySQL; `default-mysql-server` is MariaDB). The real server is set up as Debian's
//! postinst sets it up (`mariadb-install-db --skip-test-db`, Debian's collation) plus one
//! account that may log in from anywhere, started on a loopback port in a temporary
//! directory and stopped by its PID. The same raw probes go to both, from 127.0.0.1 (which
//! both call `localhost`) and from 127.0.0.5 (a remote-looking address), each on its own
//! connection; the answers are compared byte for byte after normalising the thread id and
//! the salt. `nmap -sV -sC` and Debian's `mysql` client are compared too.
//!
//! Needs `mariadb-server` (and `mariadb-client`, `nmap`); run as root (the server is
//! installed for the `mysql` user and set up through its unix socket as root).

mod datasvc;

use datasvc::*;
use honeybee_proto::config::{MysqlOptions, ServiceKind};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MARIADBD: &str = "/usr/sbin/mariadbd";
const INSTALL_DB: &str = "/usr/bin/mariadb-install-db";
/// Longer than the servers' 10 s `connect_timeout`, so probes they wait on end too.
const READ_FOR: Duration = Duration::from_secs(13);

struct RealMariaDb {
    child: tokio::process::Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

async fn sh(program: &str, args: &[&str]) -> std::process::Output {
    sh_in(program, args, None).await
}

/// With `TMPDIR` set: the bootstrap server of concurrent `mariadb-install-db` runs
/// otherwise shares /tmp for its temporary tables, and they trip over each other.
async fn sh_in(program: &str, args: &[&str], tmp: Option<&str>) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(program);
    if let Some(t) = tmp {
        cmd.env("TMPDIR", t);
    }
    cmd.args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

impl RealMariaDb {
    async fn start() -> RealMariaDb {
        for bin in [MARIADBD, INSTALL_DB] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: install Debian's MariaDB (apt-get install -y \
                 --no-install-recommends mariadb-server); the MySQL oracle compares against it \
                 and does not skip"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap().to_owned();
        let data = format!("{d}/data");
        std::fs::create_dir(&data).unwrap();
        let tmp = format!("{d}/tmp");
        std::fs::create_dir(&tmp).unwrap();
        // The server runs as `mysql`, as Debian's does.
        let _ = sh("chmod", &["755", &d]).await;
        let own = sh("chown", &["-R", "mysql:mysql", &d]).await;
        assert!(
            own.status.success(),
            "chown to mysql: {}",
            String::from_utf8_lossy(&own.stderr)
        );
        let inst = sh_in(
            INSTALL_DB,
            &[
                "--no-defaults",
                &format!("--datadir={data}"),
                "--user=mysql",
                "--skip-test-db",
                "--disable-log-bin",
            ],
            Some(&tmp),
        )
        .await;
        assert!(
            inst.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&inst.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let sock = format!("{d}/sock");
        let child = tokio::process::Command::new(MARIADBD)
            .args([
                "--no-defaults",
                &format!("--datadir={data}"),
                "--user=mysql",
                &format!("--port={port}"),
                "--bind-address=127.0.0.1",
                &format!("--socket={sock}"),
                &format!("--pid-file={d}/pid"),
                &format!("--tmpdir={tmp}"),
                // Debian's /etc/mysql/mariadb.conf.d/50-server.cnf.
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci",
                "--skip-log-bin",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn mariadbd");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut up = false;
        for _ in 0..600 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() && Path::new(&sock).exists() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(up, "mariadbd did not come up");
        // The account a server reachable from the network has (see mariadb.rs).
        let make = sh(
            "mariadb",
            &[
                "--no-defaults",
                "-u",
                "root",
                "-S",
                &sock,
                "-e",
                "CREATE USER 'admin'@'%' IDENTIFIED BY 'not-the-one-3f9c1a'",
            ],
        )
        .await;
        assert!(
            make.status.success(),
            "creating the remote account: {}",
            String::from_utf8_lossy(&make.stderr)
        );
        RealMariaDb { child, addr, dir }
    }

    async fn version(&self) -> String {
        let mut c = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let (_, g) = read_packet(&mut c).await.expect("greeting");
        let end = g[1..].iter().position(|&b| b == 0).unwrap() + 1;
        let v = String::from_utf8(g[1..end].to_vec()).unwrap();
        v.strip_prefix("5.5.5-").unwrap_or(&v).to_owned()
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(WAIT, self.child.wait()).await;
        drop(self.dir);
    }
}

async fn read_packet(c: &mut tokio::net::TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 4];
    match tokio::time::timeout(READ_FOR, c.read_exact(&mut h)).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => return None,
        Err(_) => return Some((0xff, b"<still open>".to_vec())),
    }
    let n = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
    let mut p = vec![0u8; n.min(1 << 16)];
    tokio::time::timeout(READ_FOR, c.read_exact(&mut p))
        .await
        .ok()?
        .ok()?;
    Some((h[3], p))
}

fn pkt(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    p.push(seq);
    p.extend_from_slice(payload);
    p
}

const LONG_PASSWORD: u32 = 1;
const CONNECT_WITH_DB: u32 = 8;
const PROTOCOL_41: u32 = 0x200;
const SSL: u32 = 0x800;
const SECURE: u32 = 0x8000;
const PLUGIN_AUTH: u32 = 0x8_0000;
const ATTRS: u32 = 0x10_0000;
const LENENC: u32 = 0x20_0000;
/// What libmariadb sends.
const CLIENT: u32 = 0x000f_a685 | LENENC;

/// A HandshakeResponse41.
fn login(caps: u32, user: &[u8], auth: &[u8], db: Option<&str>, plugin: Option<&str>) -> Vec<u8> {
    login_in(45, caps, user, auth, db, plugin)
}

/// A HandshakeResponse41 announcing collation `charset`.
fn login_in(
    charset: u8,
    caps: u32,
    user: &[u8],
    auth: &[u8],
    db: Option<&str>,
    plugin: Option<&str>,
) -> Vec<u8> {
    let mut p = caps.to_le_bytes().to_vec();
    p.extend_from_slice(&(1u32 << 24).to_le_bytes());
    p.push(charset);
    p.extend_from_slice(&[0; 23]);
    p.extend_from_slice(user);
    p.push(0);
    if caps & (LENENC | SECURE) != 0 {
        p.push(auth.len() as u8);
        p.extend_from_slice(auth);
    } else {
        p.extend_from_slice(auth);
        p.push(0);
    }
    if let Some(db) = db {
        p.extend_from_slice(db.as_bytes());
        p.push(0);
    }
    if let Some(pl) = plugin {
        p.extend_from_slice(pl.as_bytes());
        p.push(0);
    }
    if caps & ATTRS != 0 {
        let mut a = Vec::new();
        for (k, v) in [
            ("_client_name", "libmariadb"),
            ("_client_version", "3.3.8"),
            ("program_name", "mysql"),
        ] {
            a.push(k.len() as u8);
            a.extend_from_slice(k.as_bytes());
            a.push(v.len() as u8);
            a.extend_from_slice(v.as_bytes());
        }
        p.push(a.len() as u8);
        p.extend_from_slice(&a);
    }
    p
}

fn native_login(user: &[u8]) -> Vec<u8> {
    pkt(
        1,
        &login(CLIENT, user, &[7; 20], None, Some("mysql_native_password")),
    )
}

/// One probe: what is sent, one chunk per step; after each but the last one packet is
/// read, after the last everything until the server closes.
struct Probe {
    name: String,
    from: IpAddr,
    sends: Vec<Vec<u8>>,
}

fn probes() -> Vec<Probe> {
    let local: IpAddr = [127, 0, 0, 1].into();
    let remote: IpAddr = [127, 0, 0, 5].into();
    let mut out = Vec::new();
    let mut add = |name: &str, sends: Vec<Vec<u8>>| {
        for from in [local, remote] {
            out.push(Probe {
                name: name.to_owned(),
                from,
                sends: sends.clone(),
            });
        }
    };
    for user in [
        &b"alice"[..],
        b"root",
        b"mysql",
        b"mariadb.sys",
        b"admin",
        b"ROOT",
        b"",
        b"sa",
        b"test",
        b"wordpress",
        b"root  ",
        b"a b",
        "\u{e9}t\u{e9}".as_bytes(),
        b"a\xff\x80b",
    ] {
        add(
            &format!("native {}", String::from_utf8_lossy(user)),
            vec![native_login(user)],
        );
    }
    // User names in the character sets clients announce: libmariadb's utf8mb4 (45),
    // libmysqlclient 8's 255 (unknown to MariaDB 10.11), utf8mb3 (33), latin1 (8), ascii.
    for charset in [45, 255, 33, 8, 11] {
        for user in [
            "\u{e9}\u{1F600}".as_bytes(),
            b"\xe9t\xe9",
            b"\x80\x81\x9f",
            b"root\xff",
        ] {
            add(
                &format!("charset {charset}, user {user:?}"),
                vec![pkt(
                    1,
                    &login_in(
                        charset,
                        CLIENT,
                        user,
                        &[7; 20],
                        None,
                        Some("mysql_native_password"),
                    ),
                )],
            );
        }
    }
    for n in [82, 84, 127, 128, 200] {
        add(&format!("user of {n}"), vec![native_login(&vec![b'u'; n])]);
    }
    add(
        "no password",
        vec![pkt(
            1,
            &login(CLIENT, b"alice", b"", None, Some("mysql_native_password")),
        )],
    );
    add(
        "root, no password",
        vec![pkt(
            1,
            &login(CLIENT, b"root", b"", None, Some("mysql_native_password")),
        )],
    );
    add(
        "database",
        vec![pkt(
            1,
            &login(
                CLIENT | CONNECT_WITH_DB,
                b"alice",
                &[7; 20],
                Some("shop"),
                Some("mysql_native_password"),
            ),
        )],
    );
    add(
        "no plugin capability",
        vec![pkt(
            1,
            &login(CLIENT & !PLUGIN_AUTH, b"alice", &[7; 20], None, None),
        )],
    );
    add(
        "hydra-like",
        vec![pkt(
            1,
            &login(
                LONG_PASSWORD | PROTOCOL_41 | SECURE | 0x4 | 0x2000,
                b"root",
                &[9; 20],
                None,
                None,
            ),
        )],
    );
    for plugin in [
        "caching_sha2_password",
        "sha256_password",
        "client_ed25519",
        "dialog",
        "mysql_clear_password",
        "nosuch",
    ] {
        let first = pkt(1, &login(CLIENT, b"alice", &[8; 32], None, Some(plugin)));
        add(
            &format!("{plugin}, switched"),
            vec![first.clone(), pkt(3, &[7; 20])],
        );
    }
    let sha2 = pkt(
        1,
        &login(
            CLIENT,
            b"root",
            &[8; 32],
            None,
            Some("caching_sha2_password"),
        ),
    );
    add("switch, empty answer", vec![sha2.clone(), pkt(3, b"")]);
    add(
        "switch, short answer",
        vec![sha2.clone(), pkt(3, b"secret\0")],
    );
    add("switch, wrong seq", vec![sha2.clone(), pkt(5, &[7; 20])]);
    add(
        "mysql_old_password",
        vec![pkt(
            1,
            &login(CLIENT, b"alice", &[8; 8], None, Some("mysql_old_password")),
        )],
    );
    add(
        "native, 5 bytes",
        vec![pkt(
            1,
            &login(
                CLIENT,
                b"alice",
                b"12345",
                None,
                Some("mysql_native_password"),
            ),
        )],
    );
    let mut ssl = (CLIENT | SSL).to_le_bytes().to_vec();
    ssl.extend_from_slice(&(1u32 << 24).to_le_bytes());
    ssl.push(45);
    ssl.extend_from_slice(&[0; 23]);
    add("ssl request", vec![pkt(1, &ssl)]);
    add("http", vec![b"GET / HTTP/1.0\r\n\r\n".to_vec()]);
    add("quit, seq 0", vec![pkt(0, &[1])]);
    add("quit, seq 1", vec![pkt(1, &[1])]);
    add("empty packet", vec![pkt(1, b"")]);
    add(
        "short packet",
        vec![pkt(1, &[0x85, 0xa6, 0x3f, 0x20, 0, 0, 0, 1, 45])],
    );
    add("garbage", vec![pkt(1, &[b'A'; 40])]);
    add("3.20 login", vec![pkt(1, b"\x85\x24\0\0\0admin\0ABCDEFGH")]);
    let mut unterminated = login(CLIENT, b"x", b"", None, None);
    unterminated.truncate(32 + 3);
    unterminated.extend_from_slice(b"rootroot");
    add("user without end", vec![pkt(1, &unterminated)]);
    let mut bad_attrs = login(
        CLIENT,
        b"alice",
        &[7; 20],
        None,
        Some("mysql_native_password"),
    );
    bad_attrs.extend_from_slice(&[0xfe, 0xff, 0xff]);
    add("attributes cut", vec![pkt(1, &bad_attrs)]);
    // Once each: these wait for the servers' connect_timeout.
    out.push(Probe {
        name: "silent".into(),
        from: local,
        sends: vec![],
    });
    out.push(Probe {
        name: "16 MiB announced".into(),
        from: local,
        sends: vec![vec![0xff, 0xff, 0xff, 1, b'x', b'y']],
    });
    out.push(Probe {
        name: "half a header".into(),
        from: local,
        sends: vec![vec![0x10, 0]],
    });
    out
}

/// The greeting's thread id and salt, to normalise what follows.
struct Seen {
    salt: Vec<u8>,
}

fn normalise_greeting(g: &[u8]) -> (String, Seen) {
    let Some(end) = g.get(1..).and_then(|r| r.iter().position(|&b| b == 0)) else {
        return (format!("{g:?}"), Seen { salt: vec![] });
    };
    let v = end + 2; // after the version's NUL
    let mut n = g.to_vec();
    let mut salt = Vec::new();
    if g.len() >= v + 4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10 + 12 {
        n[v..v + 4].copy_from_slice(b"<id>");
        salt.extend_from_slice(&g[v + 4..v + 12]);
        n[v + 4..v + 12].copy_from_slice(b"<salt1_>");
        let s2 = v + 12 + 1 + 2 + 1 + 2 + 2 + 1 + 10;
        salt.extend_from_slice(&g[s2..s2 + 12]);
        n[s2..s2 + 12].copy_from_slice(b"<salt2_____>");
        // The salt's alphabet is part of the behaviour: keep its class.
        assert!(
            salt.iter().all(|b| (33..=126).contains(b)),
            "salt outside MariaDB's printable range: {salt:?}"
        );
    }
    (String::from_utf8_lossy(&n).into_owned(), Seen { salt })
}

fn normalise(seq: u8, p: &[u8], seen: &Seen) -> String {
    let mut p = p.to_vec();
    // An auth switch carries the greeting's salt (or another).
    if p.first() == Some(&0xfe)
        && seen.salt.len() == 20
        && let Some(i) = p.windows(20).position(|w| w == seen.salt.as_slice())
    {
        p.splice(i..i + 20, b"<same salt>".iter().copied());
    }
    format!("{seq}:{}", String::from_utf8_lossy(&p))
}

async fn run_probe(addr: SocketAddr, probe: &Probe) -> String {
    let mut c = connect_from(probe.from, addr).await;
    let mut out = Vec::new();
    let Some((_, g)) = read_packet(&mut c).await else {
        return "<no greeting>".into();
    };
    let (greeting, seen) = normalise_greeting(&g);
    out.push(greeting);
    for (i, chunk) in probe.sends.iter().enumerate() {
        if c.write_all(chunk).await.is_err() {
            out.push("<write failed>".into());
            break;
        }
        if i + 1 < probe.sends.len() {
            match read_packet(&mut c).await {
                Some((seq, p)) => out.push(normalise(seq, &p, &seen)),
                None => {
                    out.push("<closed>".into());
                    return out.join(" | ");
                }
            }
        }
    }
    // Everything until the server closes (a reset and a close read the same).
    loop {
        match read_packet(&mut c).await {
            Some((0xff, p)) if p == b"<still open>" => {
                out.push("<still open>".into());
                break;
            }
            Some((seq, p)) => out.push(normalise(seq, &p, &seen)),
            None => {
                out.push("<closed>".into());
                break;
            }
        }
        if out.len() > 10 {
            break;
        }
    }
    out.join(" | ")
}

async fn run_all(addr: SocketAddr, probes: &[Probe]) -> Vec<String> {
    // Concurrently: a few probes wait out the 10 s connect_timeout.
    let tasks: Vec<_> = probes
        .iter()
        .map(|p| {
            let p = Probe {
                name: p.name.clone(),
                from: p.from,
                sends: p.sends.clone(),
            };
            tokio::spawn(async move { run_probe(addr, &p).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn mysql_kind(version: &str) -> ServiceKind {
    ServiceKind::Mysql(MysqlOptions {
        version: version.into(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_probes_answer_like_debians_mariadb_slow() {
    let real = RealMariaDb::start().await;
    let version = real.version().await;
    let dir = tempfile::tempdir().unwrap();
    // All probes at once, most from one address: above the default per-source cap.
    let mut r = start_with_limits(
        dir.path(),
        "mysql",
        "127.0.0.1:0".parse().unwrap(),
        mysql_kind(&version),
        honeybee_agent::services::Limits {
            max_sessions_per_source: 256,
            ..Default::default()
        },
    )
    .await;
    let probes = probes();
    let (want, got) = tokio::join!(run_all(real.addr, &probes), run_all(r.addr, &probes));
    real.stop().await;
    r.mgr.shutdown().await;
    let mut report = String::new();
    let mut matched = 0;
    for ((p, w), g) in probes.iter().zip(&want).zip(&got) {
        if w == g {
            matched += 1;
        } else {
            report.push_str(&format!(
                "MISMATCH {} from {}\n  real: {w:?}\n  ours: {g:?}\n",
                p.name, p.from
            ));
        }
    }
    println!("{report}");
    println!(
        "mysql oracle (MariaDB {version}): {matched}/{} probes byte-identical ({:.1}%)",
        probes.len(),
        matched as f64 * 100.0 / probes.len() as f64
    );
    assert!(probes.len() >= 120, "{} probes", probes.len());
    assert!(
        matched * 100 >= probes.len() * 95,
        "match rate {matched}/{} under 95%\n{report}",
        probes.len()
    );
}

/// `nmap -sV -sC` on one port: the service line and the mysql-info script output, with
/// the thread id and salt replaced and the capability names sorted.
async fn nmap_sv_sc(cwd: &Path, addr: SocketAddr) -> String {
    let out = run(
        cwd,
        "nmap",
        &[
            "-sV",
            "-sC",
            "-Pn",
            "-n",
            "-p",
            &addr.port().to_string(),
            &addr.ip().to_string(),
        ],
        None,
    )
    .await;
    assert!(out.ok, "nmap: {}", out.stderr);
    out.stdout
        .lines()
        .filter(|l| l.contains("/tcp") || l.starts_with('|'))
        .map(|l| {
            let l = l.replacen(&addr.port().to_string(), "<port>", 1);
            if l.contains("Thread ID:") {
                "|   Thread ID: <id>".to_owned()
            } else if l.contains("Salt:") {
                "|   Salt: <salt>".to_owned()
            } else if let Some((head, list)) = l.split_once("Some Capabilities: ") {
                // nmap lists them in its Lua table's order, which changes per run.
                let mut caps: Vec<&str> = list.split(", ").collect();
                caps.sort_unstable();
                format!("{head}Some Capabilities: {}", caps.join(", "))
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nmap_sv_sc_names_ours_as_the_real_mariadb() {
    tools_require(&["nmap"]);
    let real = RealMariaDb::start().await;
    let version = real.version().await;
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(
        dir.path(),
        "mysql",
        "127.0.0.1:0".parse().unwrap(),
        mysql_kind(&version),
    )
    .await;
    let want = nmap_sv_sc(dir.path(), real.addr).await;
    let got = nmap_sv_sc(dir.path(), r.addr).await;
    real.stop().await;
    r.mgr.shutdown().await;
    println!("real:\n{want}\nours:\n{got}");
    assert!(
        want.contains(&format!("mysql   MySQL 5.5.5-{version}")),
        "{want}"
    );
    assert_eq!(got, want);
}

fn tools_require(tools: &[&str]) {
    for t in tools {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(t).exists()))
            .unwrap_or(false);
        assert!(found, "{t} is missing (apt-get install -y {t})");
    }
}

/// Debian's `mysql` client (MariaDB's) against both: the same messages and exit codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mysql_client_sees_the_same_server() {
    tools_require(&["mysql"]);
    let real = RealMariaDb::start().await;
    let version = real.version().await;
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(
        dir.path(),
        "mysql",
        "127.0.0.1:0".parse().unwrap(),
        mysql_kind(&version),
    )
    .await;
    let cases: &[&[&str]] = &[
        &["-u", "alice", "-pWinter2024!", "-e", "select 1"],
        &["-u", "root", "-proot", "-e", "select 1"],
        &["-u", "root", "-e", "select 1"],
        &["-u", "admin", "-padmin", "-D", "mysql", "-e", "show tables"],
        &[
            "--default-auth=caching_sha2_password",
            "-u",
            "bob",
            "-pbob",
            "-e",
            "select 1",
        ],
        &["-u", "wordpress", "-p", "-e", "select 1"],
        // TLS asked for: Debian's MariaDB offers none.
        &["--ssl", "-u", "alice", "-px", "-e", "select 1"],
        &["-u", "\u{e9}l\u{e8}ve", "-px", "-e", "select 1"],
        &["-u", "dbuser0", "-px", "-e", "select 1"],
    ];
    let mut report = String::new();
    for args in cases {
        let mut results = Vec::new();
        for addr in [real.addr, r.addr] {
            let port = addr.port().to_string();
            let mut a = vec![
                "--no-defaults",
                "-h",
                "127.0.0.1",
                "-P",
                port.as_str(),
                "--connect-timeout=20",
            ];
            a.extend_from_slice(args);
            let out = run(dir.path(), "mysql", &a, Some("")).await;
            results.push((out.ok, out.stdout, out.stderr));
        }
        if results[0] != results[1] {
            report.push_str(&format!(
                "MISMATCH {args:?}\n  real: {:?}\n  ours: {:?}\n",
                results[0], results[1]
            ));
        }
    }
    real.stop().await;
    r.mgr.shutdown().await;
    assert!(report.is_empty(), "{report}");
}

/// What the 101st connection from `from` gets after 100 connections that each `send`
/// (nothing: connect and close, as a banner grab does), normalised.
async fn after_100(addr: SocketAddr, from: IpAddr, send: &[u8]) -> String {
    for _ in 0..100 {
        let mut c = connect_from(from, addr).await;
        let _ = read_packet(&mut c).await;
        if send.is_empty() {
            // Closing our side and waiting for the server's close orders this connection's
            // count before the next connection, in both servers.
            let _ = c.shutdown().await;
        } else {
            let _ = c.write_all(send).await;
        }
        // Until the server's answer and close.
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(READ_FOR, c.read_to_end(&mut sink)).await;
    }
    let mut c = connect_from(from, addr).await;
    match read_packet(&mut c).await {
        Some((seq, p)) if p.first() == Some(&10) => {
            format!("{seq}:{}", normalise_greeting(&p).0)
        }
        Some((seq, p)) => format!("{seq}:{}", String::from_utf8_lossy(&p)),
        None => "<closed>".into(),
    }
}

/// MariaDB's `max_connect_errors`: 100 failed handshakes (banner grabs included) from one
/// address block it; failed passwords do not count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_with_100_failed_handshakes_is_blocked_as_by_mariadb() {
    let real = RealMariaDb::start().await;
    let version = real.version().await;
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(
        dir.path(),
        "mysql",
        "127.0.0.1:0".parse().unwrap(),
        mysql_kind(&version),
    )
    .await;
    let grab: IpAddr = [127, 0, 0, 12].into();
    let garbage: IpAddr = [127, 0, 0, 13].into();
    let guesser: IpAddr = [127, 0, 0, 14].into();
    let wrong = native_login(b"admin");
    for (from, send) in [
        (grab, &b""[..]),
        (garbage, b"GET / HTTP/1.0\r\n\r\n"),
        (guesser, &wrong),
    ] {
        let want = after_100(real.addr, from, send).await;
        let got = after_100(r.addr, from, send).await;
        assert_eq!(got, want, "from {from}");
        if from == guesser {
            assert!(want.contains("MariaDB"), "{want}");
        } else {
            assert!(
                want.contains("is blocked because of many connection errors"),
                "{want}"
            );
        }
    }
    real.stop().await;
    r.mgr.shutdown().await;
}
