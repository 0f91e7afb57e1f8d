//! A second core process for the several-cores tests (`tests/cluster.rs`,
//! `tests/cluster_bus.rs`): the first core's data directory copied without what makes a
//! core itself, on a UDP port of its own, sharing the first core's PostgreSQL store.

use super::{Deployment, Proc, free_udp_port, rand_suffix, run, wait_for};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Core B: its data directory, its port and its process once started.
pub struct CoreB {
    pub dir: PathBuf,
    pub port: u16,
    pub proc: Option<Proc>,
}

/// Copies the tree at `from` to `to`, leaving out the top-level entries named in `skip`
/// (and, below them, entries of the same names).
pub fn copy_dir(from: &Path, to: &Path, skip: &[&str]) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if skip.contains(&name.as_str()) {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(&name), skip);
        } else {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

impl CoreB {
    /// Copies A's directory without what makes a core itself (its identity, the QUIC
    /// reset key, the address files) and gives it a port of its own. With `keep_id`, the
    /// copy keeps A's `core.id`: what a careless copy does.
    pub fn make(dep: &Deployment, name: &str, keep_id: bool) -> CoreB {
        let dir = dep.dir.path().join(name);
        let mut skip = vec!["core.addr", "shim.addr", "reset.key", "captures"];
        if !keep_id {
            skip.push("core.id");
        }
        copy_dir(&dep.core_dir(), &dir, &skip);
        let port = free_udp_port();
        Self::use_port_of(dep, &dir, port);
        CoreB {
            dir,
            port,
            proc: None,
        }
    }

    /// Made by [`CoreB::make`] and started.
    pub fn started(dep: &Deployment, name: &str) -> CoreB {
        let mut b = CoreB::make(dep, name, false);
        b.start();
        b
    }

    /// Writes A's `core.toml` into `dir` with A's listening port replaced by `port`.
    pub fn use_port_of(dep: &Deployment, dir: &Path, port: u16) {
        let text = std::fs::read_to_string(dep.core_dir().join("core.toml"))
            .unwrap()
            .replace(
                &format!("127.0.0.1:{}", dep.port),
                &format!("127.0.0.1:{port}"),
            );
        std::fs::write(dir.join("core.toml"), text).unwrap();
    }

    pub fn d(&self) -> String {
        self.dir.to_str().unwrap().to_owned()
    }

    /// Starts `honeybee core run` on the directory and waits until it answers.
    pub fn start(&mut self) {
        let log = self.dir.join(format!("core-{}.log", rand_suffix()));
        self.proc = Some(Proc::spawn(&["core", "run", "--data-dir", &self.d()], &log));
        let d = self.d();
        wait_for("core B to answer", Duration::from_secs(30), || {
            run(&["status", "--data-dir", &d])
                .status
                .success()
                .then_some(())
        });
    }

    /// SIGTERM: a clean shutdown.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            assert!(p.terminate().success(), "core B exits cleanly");
        }
    }

    /// Where its TCP shim listens for modules.
    pub fn shim_addr(&self) -> SocketAddr {
        std::fs::read_to_string(self.dir.join("shim.addr"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.proc.as_ref().map(Proc::log_text).unwrap_or_default()
    }
}
