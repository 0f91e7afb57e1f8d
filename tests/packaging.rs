//! The Debian packages, installed for real: `scripts/package.sh` builds `honeybee` and
//! `honeybee-agent`, `dpkg -i` installs both on this machine, the units' ExecStart lines
//! run as the `honeybee` user (systemd does not run in CI: the test runs each command
//! line itself, with the unit's user), the agent enrols with a token, serves on a port
//! below 1024 through the package's file capability, and an event reaches the core.
//! At the end `dpkg --purge` removes both and the test checks nothing is left.
//!
//! This changes the machine (a system user, /etc/honeybee, /var/lib/honeybee*, /usr/bin
//! binaries), so it runs only as root on a throwaway machine, and refuses to run when a
//! HoneyBee package or the honeybee user is already there (it would purge them).
//!
//! The packages are made from the debug binaries (`package.sh --debug`): a release build
//! of the workspace takes many minutes on a small CI machine, and what is under test is
//! the packaging (files, maintainer scripts, units), not the optimiser.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const CORE_DIR: &str = "/var/lib/honeybee";
const AGENT_DIR: &str = "/var/lib/honeybee-agent";
const PACKAGES: [&str; 2] = ["honeybee-agent", "honeybee"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sh(cmd: &str) -> Output {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .expect("sh runs")
}

fn must(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Why this machine must not be touched, if it must not.
fn unsafe_here() -> Option<String> {
    let uid = String::from_utf8_lossy(&sh("id -u").stdout)
        .trim()
        .to_owned();
    if uid != "0" {
        return Some(format!(
            "not root (uid {uid}): this test installs packages into the system"
        ));
    }
    for tool in ["dpkg", "dpkg-deb", "dpkg-shlibdeps", "getcap", "adduser"] {
        if !sh(&format!("command -v {tool}")).status.success() {
            return Some(format!(
                "{tool} is missing (apt-get install dpkg-dev libcap2-bin adduser)"
            ));
        }
    }
    for p in PACKAGES {
        let s = sh(&format!(
            "dpkg-query -W -f='${{db:Status-Status}}' {p} 2>/dev/null"
        ));
        let status = String::from_utf8_lossy(&s.stdout).into_owned();
        if !status.is_empty() && status != "not-installed" {
            return Some(format!(
                "package {p} is already on this machine ({status}); not touching it"
            ));
        }
    }
    if sh("getent passwd honeybee").status.success() {
        return Some("a honeybee user already exists; not touching it".into());
    }
    for d in [CORE_DIR, AGENT_DIR, "/etc/honeybee"] {
        if Path::new(d).exists() {
            return Some(format!("{d} already exists; not touching it"));
        }
    }
    None
}

/// Everything the test started or installed, undone on drop (also after a failure).
struct Installed {
    procs: Vec<Child>,
    installed: bool,
}

impl Installed {
    fn stop_procs(&mut self) {
        for c in &mut self.procs {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.procs.clear();
    }

    fn purge(&mut self) -> Output {
        self.stop_procs();
        self.installed = false;
        Command::new("dpkg")
            .args(["--purge"])
            .args(PACKAGES)
            .output()
            .expect("dpkg runs")
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        if self.installed {
            let out = self.purge();
            if !out.status.success() {
                eprintln!(
                    "cleanup: dpkg --purge failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        self.stop_procs();
    }
}

/// The honeybee user's uid and gid.
fn honeybee_ids() -> (u32, u32) {
    let line = must(sh("getent passwd honeybee"), "getent passwd honeybee");
    let f: Vec<&str> = line.trim().split(':').collect();
    assert!(f.len() >= 7, "passwd line {line:?}");
    assert_eq!(f[6], "/usr/sbin/nologin", "system user without a shell");
    (f[2].parse().expect("uid"), f[3].parse().expect("gid"))
}

/// `argv` as the honeybee user, as systemd's `User=honeybee` runs it: that uid and gid,
/// no supplementary groups (std drops them when it sets the uid as root), a bare
/// environment.
fn as_honeybee(argv: &[&str]) -> Command {
    let (uid, gid) = honeybee_ids();
    let mut c = Command::new(argv[0]);
    c.args(&argv[1..])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("RUST_LOG", "info,quinn=warn")
        .current_dir("/")
        .uid(uid)
        .gid(gid);
    c
}

fn run_as_honeybee(argv: &[&str]) -> String {
    must(as_honeybee(argv).output().expect("runs"), &argv.join(" "))
}

/// The ExecStart command line of an installed unit.
fn exec_start(unit: &str) -> Vec<String> {
    let path = format!("/lib/systemd/system/{unit}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("{path} has no ExecStart"));
    let user = text.lines().find_map(|l| l.strip_prefix("User="));
    assert_eq!(user, Some("honeybee"), "{unit} runs as honeybee");
    line.split_whitespace().map(str::to_owned).collect()
}

fn spawn_unit(unit: &str, log: &Path) -> Child {
    let argv = exec_start(unit);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let file = std::fs::File::create(log).expect("log file");
    as_honeybee(&argv)
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("dup"))
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("start {unit}: {e}"))
}

fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A TCP port below 1024 free on loopback just now (only root can probe these).
fn free_low_port() -> u16 {
    (900..1000)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port in 900..1000 on 127.0.0.1")
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Builds the agent binary (the root package's tests only build `honeybee`) and both
/// packages from the debug binaries; returns the two .deb paths.
fn build_packages() -> Vec<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .args(["build", "-p", "honeybee-agent", "--bin", "honeybee-agent"])
        .current_dir(repo())
        .output()
        .expect("cargo runs");
    must(out, "cargo build -p honeybee-agent");
    let out = Command::new(repo().join("scripts/package.sh"))
        .args(["--debug", "--no-build", "--fast"])
        .current_dir(repo())
        .output()
        .expect("package.sh runs");
    let text = must(out, "scripts/package.sh --debug --no-build --fast");
    let debs: Vec<PathBuf> = text
        .lines()
        .filter(|l| l.ends_with(".deb"))
        .map(|l| repo().join(l.trim()))
        .collect();
    assert_eq!(debs.len(), 2, "package.sh prints two .debs: {text}");
    debs
}

#[test]
fn debs_install_enrol_report_and_purge_slow() {
    if let Some(why) = unsafe_here() {
        eprintln!("SKIPPED debs_install_enrol_report_and_purge_slow: {why}");
        return;
    }
    let debs = build_packages();
    let work = tempfile::tempdir().expect("tempdir");

    // Both packages side by side on one machine, as on a small deployment.
    let mut sys = Installed {
        procs: Vec::new(),
        installed: true,
    };
    must(
        Command::new("dpkg")
            .arg("-i")
            .args(&debs)
            .output()
            .expect("dpkg runs"),
        "dpkg -i",
    );

    // What the maintainer scripts made.
    honeybee_ids();
    let stat = |p: &str| must(sh(&format!("stat -c '%U:%G %a' {p}")), "stat");
    assert_eq!(stat("/etc/honeybee").trim(), "root:honeybee 750");
    assert_eq!(stat(CORE_DIR).trim(), "honeybee:honeybee 750");
    assert_eq!(stat(AGENT_DIR).trim(), "honeybee:honeybee 750");
    let caps = must(sh("getcap /usr/bin/honeybee-agent"), "getcap");
    assert!(
        caps.contains("cap_net_bind_service"),
        "the agent binary may bind low ports: {caps:?}"
    );
    for f in [
        "/usr/bin/honeybee",
        "/usr/bin/honeybee-agent",
        "/usr/share/honeybee/packages/honeybee-agent.deb",
        "/lib/systemd/system/honeybee-core.service",
        "/lib/systemd/system/honeybee-dashboard.service",
        "/lib/systemd/system/honeybee-agent.service",
    ] {
        assert!(Path::new(f).exists(), "{f} installed");
    }

    // The core: initialised as the unit's user (what the unit's comment tells the
    // operator to do), on a free loopback port, without the fixed-port module shim.
    let port = free_udp_port();
    let addr = format!("127.0.0.1:{port}");
    run_as_honeybee(&[
        "/usr/bin/honeybee",
        "core",
        "init",
        "--data-dir",
        CORE_DIR,
        "--listen",
        &addr,
        "--advertise",
        &addr,
    ]);
    let cfg = Path::new(CORE_DIR).join("core.toml");
    let text = std::fs::read_to_string(&cfg).expect("core.toml");
    let text = text.replace("shim_listen = \"127.0.0.1:7444\"", "shim_listen = \"\"");
    std::fs::write(&cfg, text).expect("core.toml written");
    sys.procs.push(spawn_unit(
        "honeybee-core.service",
        &work.path().join("core.log"),
    ));
    wait_for("the core to answer", Duration::from_secs(30), || {
        as_honeybee(&["/usr/bin/honeybee", "status", "--data-dir", CORE_DIR])
            .output()
            .ok()
            .filter(|o| o.status.success())
    });

    // The sensor: enrolled with a one-time token, given one service on a port below
    // 1024, then run from its unit's command line.
    let token = run_as_honeybee(&[
        "/usr/bin/honeybee",
        "token",
        "create",
        "--data-dir",
        CORE_DIR,
        "--name",
        "pkgtest",
    ]);
    run_as_honeybee(&[
        "/usr/bin/honeybee-agent",
        "enroll",
        "--token",
        token.trim(),
        "--data-dir",
        AGENT_DIR,
    ]);
    let low = free_low_port();
    let services = work.path().join("services.toml");
    std::fs::write(
        &services,
        format!(
            "[[service]]\nname = \"redis\"\nkind = \"redis\"\nlisten = \"127.0.0.1:{low}\"\nenabled = true\n"
        ),
    )
    .expect("services.toml");
    // Readable by the honeybee user.
    must(
        sh(&format!(
            "chmod 755 {} && chmod 644 {}",
            work.path().display(),
            services.display()
        )),
        "chmod",
    );
    run_as_honeybee(&[
        "/usr/bin/honeybee",
        "node",
        "config",
        "pkgtest",
        "--data-dir",
        CORE_DIR,
        "--file",
        services.to_str().unwrap(),
    ]);
    let agent_log = work.path().join("agent.log");
    sys.procs
        .push(spawn_unit("honeybee-agent.service", &agent_log));

    // An attacker's connection on the low port, as the honeybee user could only bind
    // through the package's capability.
    let mut conn = wait_for(
        "the agent's redis service on the low port",
        Duration::from_secs(30),
        || std::net::TcpStream::connect(("127.0.0.1", low)).ok(),
    );
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    conn.write_all(b"PING\r\n").expect("write");
    let mut buf = [0u8; 64];
    let n = conn.read(&mut buf).expect("the honeypot answers");
    assert_eq!(&buf[..n], b"+PONG\r\n");
    drop(conn);
    wait_for("the event at the core", Duration::from_secs(30), || {
        let out = as_honeybee(&[
            "/usr/bin/honeybee",
            "events",
            "--data-dir",
            CORE_DIR,
            "--json",
            "--node",
            "pkgtest",
        ])
        .output()
        .ok()?;
        let events: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
        events
            .iter()
            .any(|e| e["service"]["name"] == "redis" && e["observer"]["name"] == "pkgtest")
            .then_some(())
    });
    // Logs to a file are plain: no colour codes.
    let log = std::fs::read_to_string(&agent_log).unwrap_or_default();
    assert!(!log.contains('\u{1b}'), "agent log has ANSI escapes: {log}");

    // Purge: everything the packages made is gone.
    let out = sys.purge();
    must(out, "dpkg --purge");
    assert!(
        !sh("getent passwd honeybee").status.success(),
        "the honeybee user was removed"
    );
    assert!(
        !sh("getent group honeybee").status.success(),
        "the honeybee group was removed"
    );
    for p in [
        CORE_DIR,
        AGENT_DIR,
        "/etc/honeybee",
        "/usr/bin/honeybee",
        "/usr/bin/honeybee-agent",
        "/usr/share/honeybee",
        "/lib/systemd/system/honeybee-agent.service",
    ] {
        assert!(!Path::new(p).exists(), "{p} left after purge");
    }
}
