//! Shared helpers for the end-to-end tests: run the real `honeybee` binary, wait for
//! conditions, read its JSON output. Every process is killed when its guard drops.

#![allow(dead_code)]

pub mod cluster;
#[path = "../../core/src/store/pg_test_server.rs"]
pub mod pg_test_server;
pub mod quic;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_honeybee")
}

/// Runs `honeybee ARGS` to completion.
pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("RUST_LOG", "info,quinn=warn")
        .output()
        .expect("honeybee binary runs")
}

/// Runs `honeybee ARGS`, requiring success; returns stdout.
/// Whether `tool` is on PATH (the real clients come from `scripts/test.sh`).
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "honeybee {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs `honeybee ARGS`, requiring failure; returns stderr.
pub fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        !out.status.success(),
        "honeybee {args:?} unexpectedly succeeded"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A background `honeybee` process, killed on drop; its output goes to a log file.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(args: &[&str], log: &Path) -> Proc {
        let file = std::fs::File::create(log).expect("log file");
        let child = Command::new(bin())
            .args(args)
            .env("RUST_LOG", "info,quinn=warn")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup"))
            .stderr(file)
            .spawn()
            .expect("spawn honeybee");
        Proc {
            child,
            log: log.to_owned(),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        unsafe_kill(self.child.id(), 15);
        wait_child(&mut self.child, Duration::from_secs(20))
    }
}

fn unsafe_kill(pid: u32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

fn wait_child(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            return child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `f` until it returns Some, or panics after `limit` with `what`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A UDP port that was free a moment ago.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The store a test's deployments use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: `honeybee.db` in the core's data directory.
    Sqlite,
    /// `[store] url` naming a database of its own on the test binary's PostgreSQL server
    /// (`pg_test_server`: one server per test process, a fresh database per deployment),
    /// the password in a file beside `core.toml`.
    Postgres,
}

thread_local! {
    static BACKEND: std::cell::Cell<Option<Backend>> = const { std::cell::Cell::new(None) };
    /// Deployments made on PostgreSQL by this thread.
    static ON_POSTGRES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// The store [`Deployment::init`] gives a core on this thread: the one [`on_postgres`] set,
/// else `HONEYBEE_TEST_STORE` (`postgres` runs every end-to-end test on PostgreSQL),
/// else SQLite.
pub fn backend() -> Backend {
    BACKEND
        .get()
        .unwrap_or_else(|| match std::env::var("HONEYBEE_TEST_STORE").as_deref() {
            Ok("postgres") => Backend::Postgres,
            Ok("sqlite") | Err(_) => Backend::Sqlite,
            Ok(other) => panic!("HONEYBEE_TEST_STORE={other:?}: expected sqlite or postgres"),
        })
}

/// Runs a test's body with every deployment it makes (on this thread) storing in
/// PostgreSQL: the PostgreSQL twin of a test is `#[test] fn NAME_on_postgres() {
/// on_postgres(NAME) }`, the same body (a `#[tokio::test]` function is a plain one after
/// its attribute, so it runs the same way). Thread-local, not an environment variable:
/// `cargo test` runs a binary's tests on threads of one process.
pub fn on_postgres(test: impl FnOnce()) {
    let before = ON_POSTGRES.get();
    on_backend(Backend::Postgres, test);
    assert!(
        ON_POSTGRES.get() > before,
        "the test made no deployment (on this thread), so nothing ran on PostgreSQL"
    );
}

/// Runs `test` with the deployments it makes on this thread storing in `backend`,
/// whatever `HONEYBEE_TEST_STORE` says (a test of SQLite's own files pins SQLite).
pub fn on_backend(backend: Backend, test: impl FnOnce()) {
    struct Reset(Option<Backend>);
    impl Drop for Reset {
        fn drop(&mut self) {
            BACKEND.set(self.0);
        }
    }
    let _reset = Reset(BACKEND.replace(Some(backend)));
    test();
}

/// For a test that initialises its core itself (`honeybee up` in a fresh data directory,
/// after `core init --store`): on PostgreSQL, the URL of a fresh database (the password
/// is [`pg_test_server::PASSWORD`], for `HONEYBEE_STORE_PASSWORD`), counted as a
/// deployment made there (see [`on_postgres`]); `None` on SQLite.
pub fn postgres_store_url() -> Option<String> {
    (backend() == Backend::Postgres).then(|| {
        ON_POSTGRES.set(ON_POSTGRES.get() + 1);
        pg_test_server::fresh_database()
    })
}

/// `core.toml` with `[store] url` naming a fresh PostgreSQL database and `password_file`
/// a file in `core_dir`; keys a test's own `[store]` table already has are kept, and a
/// test that names its own store (`[store] url`) keeps it.
fn store_on_postgres(text: String, core_dir: &Path) -> String {
    if text.contains("\n[store]\nurl = ") {
        return text;
    }
    let url = pg_test_server::fresh_database();
    ON_POSTGRES.set(ON_POSTGRES.get() + 1);
    let pw = core_dir.join("store-password");
    std::fs::write(&pw, format!("{}\n", pg_test_server::PASSWORD)).unwrap();
    let keys = format!("url = \"{url}\"\npassword_file = \"{}\"\n", pw.display());
    match text.find("\n[store]\n") {
        Some(at) => {
            let after = at + "\n[store]\n".len();
            format!("{}{keys}{}", &text[..after], &text[after..])
        }
        None => format!("{text}\n[store]\n{keys}"),
    }
}

/// A deployment under test: a data directory with an initialised core.
/// The fixed ports `core init` writes: honeypot services and the module shim.
pub const DEFAULT_PORTS: [u16; 10] = [2222, 2323, 8081, 8443, 2121, 6380, 3307, 5020, 2525, 7444];

pub struct Deployment {
    pub dir: tempfile::TempDir,
    /// The store its core was given.
    pub backend: Backend,
    pub core: Option<Proc>,
    pub port: u16,
    /// The in-process admin client the polling helpers share (see [`Admin`]).
    admin: std::sync::Mutex<Option<Admin>>,
}

/// An in-process admin client for the helpers that poll the core (`nodes`, `events`,
/// `audit`): one QUIC connection kept open, and opened again after the core restarted,
/// instead of a `honeybee` process and an mTLS handshake per poll. It returns the same
/// JSON documents as the CLI's `--json` (`honeybee_core::json`); the CLI itself stays
/// covered by the tests that run it. The client lives on a thread of its own with its
/// own runtime, so the helpers block their caller (as running the CLI did) from plain
/// and from `#[tokio::test]` code alike.
struct Admin {
    jobs: std::sync::mpsc::Sender<AdminJob>,
}

type AdminJob = (
    honeybee_proto::admin::AdminRequest,
    std::sync::mpsc::Sender<Result<honeybee_proto::admin::AdminResponse, String>>,
);

impl Admin {
    fn start(data_dir: PathBuf) -> Admin {
        let (jobs, rx) = std::sync::mpsc::channel::<AdminJob>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("tokio runtime for the admin client");
            let mut client = None;
            while let Ok((req, reply)) = rx.recv() {
                let answer = rt.block_on(Admin::ask(&mut client, &data_dir, &req));
                let _ = reply.send(answer);
            }
            if let Some(c) = client {
                rt.block_on(c.close());
            }
        });
        Admin { jobs }
    }

    /// Sends `req`, connecting first if needed; a request on a connection the core
    /// closed (restart) is retried once on a new connection.
    async fn ask(
        client: &mut Option<honeybee_core::admin_client::AdminClient>,
        data_dir: &Path,
        req: &honeybee_proto::admin::AdminRequest,
    ) -> Result<honeybee_proto::admin::AdminResponse, String> {
        use honeybee_core::admin_client::AdminClient;
        let mut last = String::new();
        for _ in 0..2 {
            if client.as_ref().is_none_or(|c| c.is_closed()) {
                *client = Some(
                    AdminClient::connect(data_dir)
                        .await
                        .map_err(|e| format!("admin connect: {e}"))?,
                );
            }
            let c = client.as_ref().expect("connected");
            match c.request(req).await {
                Ok(honeybee_proto::admin::AdminResponse::Error(e)) => {
                    return Err(format!("core refused: {e}"));
                }
                Ok(resp) => return Ok(resp),
                Err(e) => {
                    last = e.to_string();
                    *client = None;
                }
            }
        }
        Err(format!("admin request: {last}"))
    }
}

impl Deployment {
    /// `core init` on loopback with services on ephemeral ports; `edit` may change core.toml.
    pub fn init(edit: impl FnOnce(String) -> String) -> Deployment {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_udp_port();
        let d = dir.path().join("core");
        ok(&[
            "core",
            "init",
            "--data-dir",
            d.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--trust-domain",
            "test.honeybee",
        ]);
        let cfg_path = d.join("core.toml");
        let text = std::fs::read_to_string(&cfg_path).unwrap();
        // Every fixed port of the defaults (services, shim) becomes "any free port".
        let mut text = text;
        for p in DEFAULT_PORTS {
            text = text.replace(&format!(":{p}\""), ":0\"");
        }
        // `core init` writes the default profile (linux-server); the tests' nodes run
        // every service (the `all` profile), each on any free port, listed with only
        // the options that differ from their kind's defaults (so `edit` can add keys).
        let mut text = text.replace("profile = \"linux-server\"", "profile = \"all\"");
        for s in
            honeybee_proto::profile::Profile::All.services(std::net::IpAddr::from([0, 0, 0, 0]))
        {
            text.push_str(&format!(
                "\n[[default_services]]\nname = \"{}\"\nkind = \"{}\"\nlisten = \"127.0.0.1:0\"\n",
                s.name,
                s.kind.name()
            ));
            if let honeybee_proto::config::ServiceKind::Http(o) = &s.kind {
                let persona = serde_json::to_string(&o.persona).unwrap();
                text.push_str(&format!("persona = {persona}\n"));
                if o.tls {
                    text.push_str("tls = true\n");
                }
            }
        }
        let backend = backend();
        let text = match backend {
            Backend::Sqlite => edit(text),
            Backend::Postgres => store_on_postgres(edit(text), &d),
        };
        std::fs::write(&cfg_path, text).unwrap();
        Deployment {
            dir,
            backend,
            core: None,
            port,
            admin: std::sync::Mutex::new(None),
        }
    }

    pub fn core_dir(&self) -> PathBuf {
        self.dir.path().join("core")
    }

    pub fn d(&self) -> String {
        self.core_dir().to_str().unwrap().to_owned()
    }

    pub fn start_core(&mut self) {
        let log = self.dir.path().join(format!("core-{}.log", rand_suffix()));
        let d = self.d();
        self.core = Some(Proc::spawn(&["core", "run", "--data-dir", &d], &log));
        let d = self.d();
        wait_for("core to answer", Duration::from_secs(20), || {
            run(&["status", "--data-dir", &d])
                .status
                .success()
                .then_some(())
        });
        // A PostgreSQL twin really runs on PostgreSQL: its core made no SQLite file.
        let sqlite = self.core_dir().join("honeybee.db");
        assert!(
            self.backend == Backend::Sqlite || !sqlite.exists(),
            "a core of a PostgreSQL test made {}",
            sqlite.display()
        );
    }

    pub fn token(&self, name: &str, extra: &[&str]) -> String {
        let d = self.d();
        let mut args = vec!["token", "create", "--data-dir", &d, "--name", name];
        args.extend_from_slice(extra);
        let out = ok(&args);
        assert_eq!(
            out.lines().count(),
            1,
            "token create prints one line: {out:?}"
        );
        out.trim().to_owned()
    }

    pub fn agent_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("agent-{name}"))
    }

    /// Enrols an agent named `name` and starts it.
    pub fn start_agent(&self, name: &str) -> Proc {
        let token = self.token(name, &[]);
        let a = self.agent_dir(name);
        ok(&[
            "agent",
            "enroll",
            "--token",
            &token,
            "--data-dir",
            a.to_str().unwrap(),
        ]);
        self.run_agent(name)
    }

    pub fn run_agent(&self, name: &str) -> Proc {
        let a = self.agent_dir(name);
        let log = self
            .dir
            .path()
            .join(format!("agent-{name}-{}.log", rand_suffix()));
        Proc::spawn(&["agent", "run", "--data-dir", a.to_str().unwrap()], &log)
    }

    /// `honeybee dashboard run` on an OS-assigned loopback port with `admin_password` for
    /// its first admin; returns the process and its base URL (no trailing `/`).
    pub fn start_dashboard(&self, admin_password: &str) -> (Proc, String) {
        let log = self.dir.path().join("dashboard.log");
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(bin())
            .args(["dashboard", "run", "--data-dir", &self.d()])
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info,quinn=warn")
            .env("HONEYBEE_DASHBOARD_ADMIN_PASSWORD", admin_password)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup"))
            .stderr(file)
            .spawn()
            .expect("spawn honeybee dashboard run");
        let proc = Proc { child, log };
        let url_file = self.core_dir().join("dashboard").join("url");
        let url = wait_for("the dashboard's URL", Duration::from_secs(60), || {
            std::fs::read_to_string(&url_file)
                .ok()
                .map(|s| s.trim().trim_end_matches('/').to_owned())
                .filter(|s| !s.is_empty())
        });
        (proc, url)
    }

    /// Asks the running core, through the shared in-process admin client; panics with
    /// the reason when it cannot (as the CLI helpers panic when the CLI fails).
    pub fn ask(
        &self,
        req: honeybee_proto::admin::AdminRequest,
    ) -> honeybee_proto::admin::AdminResponse {
        let what = format!("{req:?}");
        let (reply, answer) = std::sync::mpsc::channel();
        {
            let mut admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
            let admin = admin.get_or_insert_with(|| Admin::start(self.core_dir()));
            admin.jobs.send((req, reply)).expect("admin client thread");
        }
        answer
            .recv()
            .expect("admin client thread")
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// `honeybee nodes --json`, in process.
    pub fn nodes(&self) -> Vec<Value> {
        use honeybee_proto::admin::{AdminRequest, AdminResponse};
        let AdminResponse::Nodes(nodes) = self.ask(AdminRequest::ListNodes) else {
            panic!("unexpected answer to ListNodes");
        };
        let AdminResponse::NodeHealth(health) = self.ask(AdminRequest::NodeHealth) else {
            panic!("unexpected answer to NodeHealth");
        };
        nodes
            .iter()
            .map(|n| honeybee_core::json::node_json(n, health.iter().find(|h| h.node == n.id)))
            .collect()
    }

    pub fn node(&self, id: &str) -> Option<Value> {
        self.nodes().into_iter().find(|n| n["id"] == id)
    }

    /// Waits until `id` is online and reports `service` listening; returns its port.
    pub fn service_port(&self, id: &str, service: &str) -> u16 {
        wait_for(
            &format!("{id} online with {service}"),
            Duration::from_secs(30),
            || {
                let n = self.node(id)?;
                if n["online"] != true {
                    return None;
                }
                let s = n["health"]["services"]
                    .as_array()?
                    .iter()
                    .find(|s| s["name"] == service && s["running"] == true)?
                    .clone();
                // A service's `listen` is its address; an aggregator's is a line naming
                // each socket (`syslog 127.0.0.1:5514 udp+tcp, traps …`): the first one.
                let listen: std::net::SocketAddr = s["listen"]
                    .as_str()?
                    .split([' ', ','])
                    .find_map(|t| t.parse().ok())?;
                (listen.port() != 0).then_some(listen.port())
            },
        )
    }

    /// `honeybee events --json EXTRA`, in process: `extra` takes the CLI's `--node`,
    /// `--service`, `--kind`, `--since` and `--limit` (default 100).
    pub fn events(&self, extra: &[&str]) -> Vec<Value> {
        use honeybee_proto::admin::{AdminRequest, AdminResponse, EventQuery};
        let mut q = EventQuery {
            node: None,
            service: None,
            kind: None,
            since_ms: None,
            limit: 100,
        };
        for pair in extra.chunks(2) {
            let [flag, value] = pair else {
                panic!("events(): flag without a value in {extra:?}");
            };
            match *flag {
                "--node" => q.node = Some(honeybee_proto::NodeId::new(*value).expect("node id")),
                "--service" => q.service = Some((*value).to_owned()),
                "--kind" => q.kind = Some((*value).to_owned()),
                "--since" => {
                    let d = humantime::parse_duration(value).expect("--since duration");
                    q.since_ms = Some(honeybee_core::now_ms() - d.as_millis() as i64);
                }
                "--limit" => q.limit = value.parse().expect("--limit number"),
                other => panic!("events(): unknown flag {other}"),
            }
        }
        let AdminResponse::Events(events) = self.ask(AdminRequest::ListEvents(q)) else {
            panic!("unexpected answer to ListEvents");
        };
        events.iter().map(honeybee_core::json::event_json).collect()
    }

    /// The module shim's address, as the running core recorded it.
    pub fn shim_addr(&self) -> std::net::SocketAddr {
        std::fs::read_to_string(self.core_dir().join("shim.addr"))
            .expect("shim.addr: is the core running with its shim on?")
            .trim()
            .parse()
            .expect("shim.addr holds IP:PORT")
    }

    /// A shim credential for module `name` (`honeybee module token`).
    pub fn module_credential(&self, name: &str, perms: &str) -> String {
        let d = self.d();
        ok(&[
            "module",
            "token",
            "--data-dir",
            &d,
            "--name",
            name,
            "--permissions",
            perms,
        ])
        .trim()
        .to_owned()
    }

    /// `honeybee audit --json --limit 1000`, in process.
    pub fn audit(&self) -> Vec<Value> {
        use honeybee_proto::admin::{AdminRequest, AdminResponse};
        let AdminResponse::Audit(rows) = self.ask(AdminRequest::Audit { limit: 1000 }) else {
            panic!("unexpected answer to Audit");
        };
        rows.iter().map(honeybee_core::json::audit_json).collect()
    }
}

pub fn rand_suffix() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            & 0xffffff
    )
}

/// The version the second agent build reports (`honeybee-agent-version-test`).
pub const NEXT_AGENT_VERSION: &str = "0.99.0";

/// A real second build of the agent whose compiled-in version is [`NEXT_AGENT_VERSION`]:
/// the agent crate compiled again with its `version-override` feature (a separate
/// artifact, so the normal build's files are never touched and nothing racing this
/// reads a half-built binary) into the target directory of the `honeybee` binary under
/// test, reusing every dependency already built there. Copied to `dest`.
pub fn build_next_agent(dest: &Path) {
    let exe = Path::new(bin());
    let profile_dir = exe.parent().expect("target/<profile>");
    let target = profile_dir.parent().expect("target");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(p) => p,
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "build",
            "-p",
            "honeybee-agent",
            "--features",
            "version-override",
            "--bin",
            "honeybee-agent-version-test",
            "--profile",
            profile,
            "--target-dir",
        ])
        .arg(target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("HONEYBEE_VERSION_OVERRIDE", NEXT_AGENT_VERSION)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "building the second agent failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built = profile_dir.join("honeybee-agent-version-test");
    // A concurrent build of the same thing may be re-linking the file: try again.
    let mut last = None;
    for _ in 0..50 {
        match std::fs::copy(&built, dest) {
            Ok(_) => return,
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("copying {}: {last:?}", built.display());
}
