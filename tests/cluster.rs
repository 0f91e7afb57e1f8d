//! Two real cores on one real PostgreSQL serve one fleet (issue 18's first slice): core B
//! is set up from core A's data directory (same CA; `a_core_joins_…` makes one with
//! `honeybee core join` instead), real
//! agents connect to A, and control sent through B reaches them — a node command, a
//! configuration push, a revocation (cut off at once; the time is reported) — while
//! stopping and starting B never marks A's nodes offline. A node that reconnects to B takes
//! its lease over, and A closes its stale connection without waiting for the idle timeout;
//! when B crashes, its node's lease expires and A marks the node offline.

mod common;
mod dns;

use common::cluster::CoreB;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

fn status(data_dir: &str) -> Value {
    serde_json::from_str(&ok(&["status", "--json", "--data-dir", data_dir])).unwrap()
}

/// Connections the core at `data_dir` holds (its own registry, not the stored state).
fn live_here(data_dir: &str) -> u64 {
    status(data_dir)["nodes_online"].as_u64().unwrap()
}

fn node_online(data_dir: &str, node: &str) -> bool {
    let nodes: Value =
        serde_json::from_str(&ok(&["nodes", "--json", "--data-dir", data_dir])).unwrap();
    nodes
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["id"] == node && n["online"] == true)
}

fn log_of(p: &Option<Proc>) -> String {
    p.as_ref().map(Proc::log_text).unwrap_or_default()
}

/// `n` pings to `node` through the core at `data_dir`, one at a time; each round trip.
fn pings(data_dir: &str, node: &str, n: usize) -> Vec<Duration> {
    use honeybee_proto::admin::{AdminRequest, AdminResponse};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = honeybee_core::admin_client::AdminClient::connect(Path::new(data_dir))
            .await
            .unwrap();
        let req = AdminRequest::SendCommand {
            node: honeybee_proto::NodeId::new(node).unwrap(),
            command: honeybee_proto::control::Command::Ping,
        };
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            let r = c.request(&req).await.unwrap();
            assert!(
                matches!(&r, AdminResponse::CommandResult(Ok(s)) if s.contains("pong")),
                "{r:?}"
            );
            out.push(t.elapsed());
        }
        c.close().await;
        out
    })
}

/// Revokes `node` through the core at `via` and polls the core at `holder` until it has
/// no connection left: (when `via` answered, when `holder` had cut it), from the request.
fn revoke_and_wait(via: &str, holder: &str, node: &str) -> (Duration, Duration) {
    use honeybee_core::admin_client::AdminClient;
    use honeybee_proto::admin::{AdminRequest, AdminResponse};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let b = AdminClient::connect(Path::new(via)).await.unwrap();
        let a = AdminClient::connect(Path::new(holder)).await.unwrap();
        let online = || async {
            match a.request(&AdminRequest::Status).await.unwrap() {
                AdminResponse::Status(s) => s.nodes_online,
                r => panic!("{r:?}"),
            }
        };
        assert_eq!(online().await, 1);
        let t0 = Instant::now();
        let r = b
            .request(&AdminRequest::RevokeNode {
                node: honeybee_proto::NodeId::new(node).unwrap(),
            })
            .await
            .unwrap();
        assert!(matches!(r, AdminResponse::Done), "{r:?}");
        let answered = t0.elapsed();
        let mut cut = None;
        for _ in 0..2000 {
            if online().await == 0 {
                cut = Some(t0.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        a.close().await;
        b.close().await;
        (
            answered,
            cut.expect("A cut the revoked node off within the 10 s polled"),
        )
    })
}

fn pct(v: &[Duration], p: usize) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[(v.len() * p / 100).min(v.len() - 1)]
}

#[test]
fn two_cores_on_one_postgres_serve_one_fleet_slow() {
    // `on_postgres`: the deployment's `[store]` gets a fresh database on the test server.
    on_postgres(two_cores);
}

fn two_cores() {
    let tmp = tempfile::tempdir().unwrap();
    let shared = tmp.path().join("shared-captures");
    let mut dep = Deployment::init(|t| {
        format!(
            "{t}\n[store]\ncaptures_dir = \"{}\"\nlease_ttl = \"3s\"\n",
            shared.display()
        )
    });
    dep.start_core();
    let a = dep.d();
    let mut b = CoreB::make(&dep, "core-b", false);
    b.start();
    let bd = b.d();

    // A copy that kept A's identity is refused while A runs.
    let twin = CoreB::make(&dep, "core-twin", true);
    let twin_log = twin.dir.join("core.log");
    let mut p = Proc::spawn(&["core", "run", "--data-dir", &twin.d()], &twin_log);
    let exited = wait_for("the twin core to exit", Duration::from_secs(30), || {
        p.child.try_wait().unwrap()
    });
    assert!(!exited.success());
    assert!(
        p.log_text().contains("is in use by another running core"),
        "{}",
        p.log_text()
    );

    // n1: enrolled and connected through A; B sees it online (the stored state its lease
    // keeps) though its own registry holds nothing.
    let mut n1 = dep.start_agent("n1");
    let banner = dep.service_port("n1", "banner");
    wait_for("B to list n1 online", Duration::from_secs(20), || {
        node_online(&bd, "n1").then_some(())
    });
    assert_eq!(live_here(&a), 1);
    assert_eq!(live_here(&bd), 0);
    // `honeybee cores`, asked of either core, lists both with the node each holds.
    for (asked, other) in [(&a, &bd), (&bd, &a)] {
        let cores: Value =
            serde_json::from_str(&ok(&["cores", "--json", "--data-dir", asked])).unwrap();
        let cores = cores.as_array().unwrap();
        assert_eq!(cores.len(), 2, "{cores:?}");
        let id = |d: &str| {
            std::fs::read_to_string(Path::new(d).join("core.id"))
                .unwrap()
                .trim()
                .to_owned()
        };
        let find = |d: &str| cores.iter().find(|c| c["id"] == id(d).as_str()).unwrap();
        assert_eq!(find(asked)["this"], true);
        assert_eq!(find(other)["this"], false);
        assert_eq!(find(&a)["nodes"], 1);
        assert_eq!(find(&bd)["nodes"], 0);
    }

    // A node command through B reaches the node on A.
    let out = ok(&["node", "command", "n1", "ping", "--data-dir", &bd]);
    assert!(out.contains("pong"), "{out}");

    // The same command, in process, through A (local) and through B (A's node): what the
    // hop through the database costs.
    let (local, remote) = (pings(&a, "n1", 50), pings(&bd, "n1", 50));
    println!(
        "node command round trip (ping), p50/p99: through A (local) {:?}/{:?}, \
         through B (cross-core) {:?}/{:?}",
        pct(&local, 50),
        pct(&local, 99),
        pct(&remote, 50),
        pct(&remote, 99)
    );

    // A configuration push through B: the node on A stops its banner service.
    ok(&[
        "node",
        "config",
        "n1",
        "--disable",
        "banner",
        "--data-dir",
        &bd,
    ]);
    wait_for(
        "n1 to close its banner port",
        Duration::from_secs(20),
        || {
            std::net::TcpStream::connect(("127.0.0.1", banner))
                .is_err()
                .then_some(())
        },
    );

    // Stopping core B, and starting it again, leaves A's node online.
    b.stop();
    assert!(
        node_online(&a, "n1"),
        "B's shutdown marked A's node offline"
    );
    assert_eq!(live_here(&a), 1);
    b.start();
    assert!(
        node_online(&a, "n1"),
        "B's start-up marked A's node offline"
    );
    assert!(node_online(&bd, "n1"));

    // Revocation through B cuts n1 off on A (in process, so the figure is the cores'
    // and not a CLI process's start).
    let (answered, cut) = revoke_and_wait(&bd, &a, "n1");
    println!(
        "revocation through core B: B answered after {answered:?}, A's connection gone \
         {cut:?} after the request (A polled every 5 ms)"
    );
    assert!(
        log_of(&dep.core).contains("revoked through another core"),
        "A says why it cut n1 off"
    );
    // And n1 cannot come back to either core.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(live_here(&a), 0);
    assert!(!node_online(&a, "n1"));
    n1.kill();

    // n2 on A; killed (no goodbye: A keeps its connection until the idle timeout) and
    // restarted pointed at B: B takes the lease, A closes its stale connection.
    let mut n2 = dep.start_agent("n2");
    wait_for("n2 on A", Duration::from_secs(30), || {
        (live_here(&a) == 1).then_some(())
    });
    n2.kill();
    let agent_toml = dep.agent_dir("n2").join("agent.toml");
    let text = std::fs::read_to_string(&agent_toml).unwrap().replace(
        &format!("127.0.0.1:{}", dep.port),
        &format!("127.0.0.1:{}", b.port),
    );
    std::fs::write(&agent_toml, text).unwrap();
    let t0 = Instant::now();
    let _n2 = dep.run_agent("n2");
    wait_for("n2 on B", Duration::from_secs(30), || {
        (live_here(&bd) == 1).then_some(())
    });
    let on_b = t0.elapsed();
    wait_for(
        "A to close n2's stale connection",
        Duration::from_secs(20),
        || (live_here(&a) == 0).then_some(()),
    );
    println!(
        "lease takeover: n2 on B {on_b:?} after its restart, A's stale connection closed \
         within {:?} (QUIC idle timeout: 30 s)",
        t0.elapsed()
    );
    assert!(
        log_of(&dep.core).contains("stale connection closed"),
        "A closed it for the lease, not the idle timeout"
    );
    // A's handler ending did not mark the node (now B's) offline.
    std::thread::sleep(Duration::from_secs(1));
    assert!(node_online(&a, "n2"));
    assert!(node_online(&bd, "n2"));

    // B stops: its own node goes offline, as a single core's would.
    b.stop();
    assert!(!node_online(&a, "n2"), "B released its lease at shutdown");

    // B again, n2 back on it; then B crashes (SIGKILL: no release). Its lease expires
    // (lease_ttl 3 s here) and A marks n2 offline.
    b.start();
    wait_for("n2 back on B", Duration::from_secs(60), || {
        (live_here(&bd) == 1).then_some(())
    });
    assert!(node_online(&a, "n2"));
    b.proc.take().unwrap().kill();
    let t0 = Instant::now();
    wait_for(
        "A to mark the crashed core's node offline",
        Duration::from_secs(30),
        || (!node_online(&a, "n2")).then_some(()),
    );
    println!(
        "crashed core: its node marked offline by the other core {:?} after the SIGKILL \
         (lease_ttl 3 s, swept every 1 s)",
        t0.elapsed()
    );
    // A lists a node whose lease has expired as offline at once (`nodes` reads the
    // lease); the sweep that deletes the lease and marks it offline in the store runs
    // every second, and says so in A's log.
    wait_for(
        "A to log why it marked n2 offline",
        Duration::from_secs(10),
        || {
            log_of(&dep.core)
                .contains("node leases expired")
                .then_some(())
        },
    );
}

/// One banner connection to `port` carrying `payload`; false if it could not be made.
fn hit(port: u16, payload: &str) -> bool {
    use std::io::Write;
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let ok = s.write_all(format!("{payload}\n").as_bytes()).is_ok();
    let _ = s.shutdown(std::net::Shutdown::Write);
    ok
}

/// The `data` events' text of `node`, asked of the core at `data_dir`.
fn payloads(data_dir: &str, node: &str) -> Vec<String> {
    use honeybee_proto::admin::{AdminRequest, AdminResponse, EventQuery};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = honeybee_core::admin_client::AdminClient::connect(Path::new(data_dir))
            .await
            .unwrap();
        let r = c
            .request(&AdminRequest::ListEvents(EventQuery {
                node: Some(honeybee_proto::NodeId::new(node).unwrap()),
                service: None,
                kind: Some("data".into()),
                since_ms: None,
                limit: 10_000,
            }))
            .await
            .unwrap();
        c.close().await;
        let AdminResponse::Events(evs) = r else {
            panic!("{r:?}");
        };
        evs.iter()
            .filter_map(|e| {
                honeybee_core::json::event_json(e)["honeybee"]["data_text"]
                    .as_str()
                    .map(|t| t.trim().to_owned())
            })
            .collect()
    })
}

#[test]
fn twenty_agents_fail_over_to_the_other_core_by_srv_slow() {
    on_postgres(failover);
}

/// 20 agents find the cores by `srv:hb.test` (A first, B second), all connect to A and
/// are attacked continuously; A is SIGKILLed mid-stream; every agent reconnects to B, and
/// every attack is stored exactly once. The time to recovery is reported.
fn failover() {
    use dns::{Rr, TestDns};
    use std::net::Ipv4Addr;
    const AGENTS: usize = 20;
    let mut dep = Deployment::init(|t| format!("{t}\n[store]\nlease_ttl = \"3s\"\n"));
    dep.start_core();
    let a = dep.d();
    let mut b = CoreB::make(&dep, "core-b", false);
    b.start();
    let bd = b.d();
    let dns = TestDns::start(vec![
        (
            "_honeybee._udp.hb.test",
            Rr::Srv(10, 0, dep.port, "one.hb.test."),
        ),
        (
            "_honeybee._udp.hb.test",
            Rr::Srv(20, 0, b.port, "two.hb.test."),
        ),
        ("one.hb.test", Rr::A(Ipv4Addr::LOCALHOST)),
        ("two.hb.test", Rr::A(Ipv4Addr::LOCALHOST)),
    ]);
    let names: Vec<String> = (0..AGENTS).map(|i| format!("f{i:02}")).collect();
    let mut agents = Vec::new();
    for n in &names {
        let mut token = honeybee_pki::token::Token::decode(&dep.token(n, &[])).unwrap();
        token.core_addr = "srv:hb.test".into();
        let dir = dep.agent_dir(n);
        let out = std::process::Command::new(bin())
            .args(["agent", "enroll", "--token", &token.encode(), "--data-dir"])
            .arg(&dir)
            .env("HONEYBEE_DNS_SERVER", dns.addr.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cfg = dir.join("agent.toml");
        let text = std::fs::read_to_string(&cfg).unwrap();
        std::fs::write(&cfg, format!("{text}dns_server = \"{}\"\n", dns.addr)).unwrap();
        agents.push(dep.run_agent(n));
    }
    wait_for("every agent on A", Duration::from_secs(120), || {
        (live_here(&a) == AGENTS as u64).then_some(())
    });
    let ports: Vec<u16> = names
        .iter()
        .map(|n| dep.service_port(n, "banner"))
        .collect();

    // Attacks on every agent, round after round, while A dies.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attacker = {
        let (stop, ports, names) = (stop.clone(), ports.clone(), names.clone());
        std::thread::spawn(move || {
            let mut sent: Vec<Vec<String>> = vec![Vec::new(); names.len()];
            let mut round = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && round < 2000 {
                for (i, port) in ports.iter().enumerate() {
                    let p = format!("{}-r{round}", names[i]);
                    if hit(*port, &p) {
                        sent[i].push(p);
                    }
                }
                round += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            sent
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    dep.core.as_mut().unwrap().kill();
    let killed = Instant::now();
    wait_for("every agent on B", Duration::from_secs(120), || {
        (live_here(&bd) == AGENTS as u64).then_some(())
    });
    let recovered = killed.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = attacker.join().unwrap();
    let total: usize = sent.iter().map(Vec::len).sum();

    // Every attack stored once, through whichever core.
    for (i, n) in names.iter().enumerate() {
        let want: std::collections::BTreeSet<&String> = sent[i].iter().collect();
        let got = wait_for(
            &format!("{n}'s attacks stored"),
            Duration::from_secs(60),
            || {
                let got = payloads(&bd, n);
                (got.len() >= want.len()).then_some(got)
            },
        );
        let set: std::collections::BTreeSet<&String> = got.iter().collect();
        assert_eq!(set.len(), got.len(), "{n}: a payload stored twice");
        assert_eq!(set, want, "{n}: stored and sent differ");
    }
    println!(
        "SRV failover, {AGENTS} agents: all on core B {recovered:?} after core A's SIGKILL \
         (QUIC idle timeout 30 s); {total} attacks during the run, each stored exactly once"
    );
    drop(agents);
}

/// `core.toml`'s `[store]` keys `url` and `password_file`, as written by the fixture.
fn store_of(core_dir: &Path) -> (String, String) {
    let text = std::fs::read_to_string(core_dir.join("core.toml")).unwrap();
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or_else(|| panic!("core.toml has no {key}"))
            .to_owned()
    };
    (get("url"), get("password_file"))
}

/// `honeybee core join` with `token` into `dir`, listening on `port`.
fn join(token: &str, dir: &Path, port: u16, url: &str) -> std::process::Output {
    run(&[
        "core",
        "join",
        token,
        "--data-dir",
        dir.to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--store",
        url,
    ])
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Issue 18, joining: core B is made by `honeybee core join` with a one-time join token
/// (not by copying A's directory): it holds an intermediate CA of its own and no root
/// key, an agent enrols on B and A sees it online, and the token is single-use, expires,
/// is refused with a wrong pin (nothing sent, token not spent) and by a joined core.
#[test]
fn a_core_joins_with_a_one_time_token_slow() {
    on_postgres(joined_core);
}

fn joined_core() {
    use honeybee_pki::token::Token;
    let mut dep = Deployment::init(|t| format!("{t}\n[store]\nlease_ttl = \"3s\"\n"));
    dep.start_core();
    let a = dep.d();
    let (url, password_file) = store_of(&dep.core_dir());
    let token = ok(&["core", "join-token", "--data-dir", &a, "--name", "core-b"])
        .trim()
        .to_owned();
    let port = free_udp_port();
    let bdir = dep.dir.path().join("core-b");

    // A wrong pin: refused before anything is sent, and the token is not spent.
    let mut forged = Token::decode(&token).unwrap();
    forged.ca_pin[0] ^= 1;
    let out = join(&forged.encode(), &bdir, port, &url);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("does not hold the root CA pinned in the join token"),
        "{}",
        text(&out)
    );
    assert!(!bdir.join("pki").exists(), "nothing written");

    // The real join.
    let out = join(&token, &bdir, port, &url);
    assert!(out.status.success(), "{}", text(&out));
    let pki = bdir.join("pki");
    assert!(!pki.join("ca.key").exists(), "the root key stays on A");
    assert!(pki.join("intermediate.key").exists());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(pki.join("intermediate.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(
        std::fs::read(pki.join("ca.crt")).unwrap(),
        std::fs::read(dep.core_dir().join("pki/ca.crt")).unwrap(),
        "B trusts A's root"
    );
    let written = std::fs::read_to_string(bdir.join("core.toml")).unwrap();
    assert!(written.contains(&url), "{written}");

    // Replayed: the token was consumed.
    let out = join(
        &token,
        &dep.dir.path().join("core-c"),
        free_udp_port(),
        &url,
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("used"), "{}", text(&out));

    // Expired: a join token of one second, presented three seconds later.
    let short = ok(&[
        "core",
        "join-token",
        "--data-dir",
        &a,
        "--name",
        "core-d",
        "--ttl",
        "1s",
    ]);
    std::thread::sleep(Duration::from_secs(3));
    let out = join(
        short.trim(),
        &dep.dir.path().join("core-d"),
        free_udp_port(),
        &url,
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("expired"), "{}", text(&out));
    // A join token lives 15 minutes at most and is single-use.
    let long = run(&[
        "core",
        "join-token",
        "--data-dir",
        &a,
        "--name",
        "x",
        "--ttl",
        "1h",
    ]);
    assert!(!long.status.success() && text(&long).contains("at most 900 s"));

    // B runs with the test fixture's services (any free port) and A's store password.
    CoreB::use_port_of(&dep, &bdir, port);
    assert!(
        std::fs::read_to_string(bdir.join("core.toml"))
            .unwrap()
            .contains(&password_file)
    );
    let mut b = CoreB {
        dir: bdir,
        port,
        proc: None,
    };
    b.start();
    let bd = b.d();

    // B cannot sign core CAs: join tokens are refused there, and a token of A's
    // presented to B (its address changed; it is not signed) is refused without being
    // spent.
    let out = run(&["core", "join-token", "--data-dir", &bd, "--name", "core-e"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("intermediate CA"), "{}", text(&out));
    let tok_e = ok(&["core", "join-token", "--data-dir", &a, "--name", "core-e"]);
    let mut via_b = Token::decode(tok_e.trim()).unwrap();
    via_b.core_addr = format!("127.0.0.1:{port}");
    let e_dir = dep.dir.path().join("core-e");
    let out = join(&via_b.encode(), &e_dir, free_udp_port(), &url);
    assert!(!out.status.success());
    assert!(text(&out).contains("root CA"), "{}", text(&out));
    let out = join(tok_e.trim(), &e_dir, free_udp_port(), &url);
    assert!(out.status.success(), "not spent by B: {}", text(&out));

    // An agent enrols on B (certificate from B's intermediate) and connects there; A sees
    // it online through the shared store.
    let tok = ok(&["token", "create", "--data-dir", &bd, "--name", "nb"]);
    let ad = dep.agent_dir("nb");
    ok(&[
        "agent",
        "enroll",
        "--token",
        tok.trim(),
        "--data-dir",
        ad.to_str().unwrap(),
    ]);
    let ident = std::fs::read_to_string(ad.join("pki/node.pem")).unwrap_or_default();
    let leaf = honeybee_pki::files::pem_to_der_certs(&ident).unwrap();
    let inter = honeybee_pki::files::pem_to_der_certs(
        &std::fs::read_to_string(b.dir.join("pki/intermediate.crt")).unwrap(),
    )
    .unwrap();
    let (_, leaf) = x509_issuer(&leaf[0]);
    let (subject, _) = x509_issuer(&inter[0]);
    assert_eq!(
        leaf, subject,
        "nb's certificate was issued by B's intermediate"
    );
    let _nb = dep.run_agent("nb");
    wait_for("nb on B", Duration::from_secs(30), || {
        (live_here(&bd) == 1).then_some(())
    });
    wait_for("A to list nb online", Duration::from_secs(20), || {
        node_online(&a, "nb").then_some(())
    });
    assert_eq!(live_here(&a), 0);
    // nb keeps B's intermediate after its leaf and sends it: pointed at A (B stopped), A
    // verifies the chain up to the root and takes the node.
    assert_eq!(
        honeybee_pki::files::pem_to_der_certs(&ident).unwrap().len(),
        2,
        "leaf and B's intermediate"
    );
    drop(_nb);
    b.stop();
    let agent_toml = ad.join("agent.toml");
    let cfg = std::fs::read_to_string(&agent_toml).unwrap().replace(
        &format!("127.0.0.1:{port}"),
        &format!("127.0.0.1:{}", dep.port),
    );
    std::fs::write(&agent_toml, cfg).unwrap();
    let _nb = dep.run_agent("nb");
    wait_for("nb on A", Duration::from_secs(30), || {
        (live_here(&a) == 1).then_some(())
    });
}

/// (subject, issuer) of a certificate, as raw DER names.
fn x509_issuer(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    // Certificate ::= SEQUENCE { tbs SEQUENCE { [0] version, serial, sigalg, issuer,
    // validity, subject, ... } }: walk the TLVs rather than pull in a parser.
    fn tlv(b: &[u8]) -> (usize, usize) {
        let len0 = b[1] as usize;
        if len0 < 0x80 {
            (2, len0)
        } else {
            let n = len0 & 0x7f;
            let len = b[2..2 + n].iter().fold(0usize, |a, x| a << 8 | *x as usize);
            (2 + n, len)
        }
    }
    let (h, _) = tlv(der);
    let tbs = &der[h..];
    let (h, _) = tlv(tbs);
    let mut rest = &tbs[h..];
    let mut fields = Vec::new();
    for _ in 0..6 {
        let (h, l) = tlv(rest);
        fields.push(rest[..h + l].to_vec());
        rest = &rest[h + l..];
    }
    // fields: version, serial, sigalg, issuer, validity, subject
    (fields[5].clone(), fields[3].clone())
}
