//! A real PostgreSQL server for the tests: `initdb` in a temporary directory as an
//! unprivileged user (PostgreSQL refuses to run as root, and the tests run as root),
//! `postgres` on 127.0.0.1 at a free port and on a unix socket in that directory, stopped
//! by PID. Debian's `postgresql` package provides the binaries; without it the tests fail
//! saying so.
//!
//! One server per test process, started by the first test that needs it and stopped when
//! the process exits (an `atexit` hook: the test harness exits through `exit`); each test
//! gets a database of its own on it, so tests run in parallel and never see each other's
//! rows.
//!
//! Also compiled into the workspace's end-to-end tests (`tests/store_postgres.rs`, by
//! `#[path]`), so it uses only std, libc and tempfile.

use std::ffi::CString;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The superuser the fixture creates, and its password (loopback only, a throwaway
/// cluster).
pub const USER: &str = "honeybee";
pub const PASSWORD: &str = "test-password-not-secret";

/// A running test server.
pub struct PgServer {
    dir: PathBuf,
    pid: i32,
    pub port: u16,
}

impl PgServer {
    /// A connection URL (without the password) for `database`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server: SIGINT is PostgreSQL's "fast shutdown" (roll back, disconnect,
    /// checkpoint, exit); SIGKILL if it has not gone within a bounded wait.
    fn stop(&self) {
        // SAFETY: plain syscalls on a PID this fixture started.
        unsafe {
            libc::kill(self.pid, libc::SIGINT);
        }
        for _ in 0..200 {
            let mut status = 0;
            // SAFETY: as above; WNOHANG never blocks.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if r != 0 {
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where the server binaries are: `HONEYBEE_PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin` (Debian's layout).
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("HONEYBEE_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: install \
             Debian's `postgresql` package (apt-get install -y postgresql) or set \
             HONEYBEE_PG_BIN to the directory holding initdb and postgres"
        ),
    }
}

/// The uid and gid to run PostgreSQL as: ours unless we are root, else `nobody`'s.
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: getuid cannot fail.
    if unsafe { libc::getuid() } != 0 {
        return None;
    }
    let name = CString::new("nobody").unwrap();
    // SAFETY: getpwnam returns null or a pointer to a static record we read at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !pw.is_null(),
        "running as root and there is no `nobody` user to run PostgreSQL as"
    );
    // SAFETY: non-null, checked above.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Some((uid, gid))
}

fn command(bin: &Path, name: &str, user: Option<(u32, u32)>) -> Command {
    let mut c = Command::new(bin.join(name));
    if let Some((uid, gid)) = user {
        c.uid(uid).gid(gid);
    }
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C");
    c
}

fn chown(path: &Path, user: Option<(u32, u32)>) {
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// Starts a fresh server (initdb, then postgres), waiting until it accepts connections.
pub fn start() -> PgServer {
    let bin = bin_dir();
    let user = run_as();
    let dir = tempfile::Builder::new()
        .prefix("honeybee-pg-")
        .tempdir()
        .unwrap()
        .keep();
    chown(&dir, user);
    let data = dir.join("data");
    let pwfile = dir.join("pwfile");
    std::fs::write(&pwfile, PASSWORD).unwrap();
    chown(&pwfile, user);
    let out = command(&bin, "initdb", user)
        .arg("-D")
        .arg(&data)
        .args(["-U", USER, "-E", "UTF8", "--locale=C"])
        .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
        .arg(format!("--pwfile={}", pwfile.display()))
        .stdin(Stdio::null())
        .output()
        .expect("cannot run initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A port taken between choosing and binding makes postgres exit; try a few.
    for _ in 0..5 {
        let port = free_port();
        let log = std::fs::File::create(dir.join("postgres.log")).unwrap();
        chown(&dir.join("postgres.log"), user);
        // Reaped by PID (waitpid) in `stop`, not through `Child`.
        #[allow(clippy::zombie_processes)]
        let child = command(&bin, "postgres", user)
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .arg("-k")
            .arg(&dir)
            // Durability buys nothing in a throwaway cluster.
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=300"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start postgres");
        let server = PgServer {
            dir: dir.clone(),
            pid: child.id() as i32,
            port,
        };
        if wait_ready(&bin, &server) {
            return server;
        }
        // Not ready: it exited (port taken) or hangs; stop it without removing the dir.
        // SAFETY: plain syscalls on the PID just started.
        unsafe {
            libc::kill(server.pid, libc::SIGKILL);
            libc::waitpid(server.pid, std::ptr::null_mut(), 0);
        }
        std::mem::forget(server);
    }
    let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    panic!("postgres did not start; its log:\n{log}");
}

/// Polls `pg_isready` (bounded: about 30 s); false if the server died or never came up.
fn wait_ready(bin: &Path, s: &PgServer) -> bool {
    for _ in 0..300 {
        let mut status = 0;
        // SAFETY: WNOHANG on our own child.
        if unsafe { libc::waitpid(s.pid, &mut status, libc::WNOHANG) } != 0 {
            return false;
        }
        let ok = command(bin, "pg_isready", None)
            .args(["-q", "-h", "127.0.0.1", "-p", &s.port.to_string()])
            .status()
            .is_ok_and(|st| st.success());
        if ok {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

static SHARED: OnceLock<Mutex<Option<PgServer>>> = OnceLock::new();

extern "C" fn stop_shared() {
    if let Some(m) = SHARED.get()
        && let Ok(mut g) = m.lock()
    {
        drop(g.take());
    }
}

/// The process's shared server, started on first use.
pub fn shared() -> (u16, String) {
    let m = SHARED.get_or_init(|| {
        let s = start();
        // SAFETY: registers a plain extern "C" function.
        unsafe {
            libc::atexit(stop_shared);
        }
        Mutex::new(Some(s))
    });
    let g = m.lock().unwrap();
    let s = g
        .as_ref()
        .expect("the shared PostgreSQL server was stopped");
    (s.port, s.url("postgres"))
}

/// A database of its own on the shared server (made with `createdb`); returns its URL
/// (without the password).
pub fn fresh_database() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let (port, _) = shared();
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let out = command(&bin_dir(), "createdb", None)
        .env("PGPASSWORD", PASSWORD)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            USER,
            &name,
        ])
        .output()
        .expect("cannot run createdb");
    assert!(
        out.status.success(),
        "createdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("postgres://{USER}@127.0.0.1:{port}/{name}")
}
