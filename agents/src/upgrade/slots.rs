//! Which agent executable runs: the installed one (the "base", from the package), an
//! upgrade on trial, or an upgrade that proved itself. The base is the boot loader: at
//! every start it reads `upgrade/state.toml` and execs the chosen executable.
//!
//! - A verified package becomes the trial and the agent restarts (flushing its spool).
//! - The base execs the trial once (`started = 1` is saved first).
//! - The trial that is welcomed by the core commits itself (`active`).
//! - A trial not welcomed within the offer's `rollback_after_s` marks itself failed and
//!   execs the base again; one that crashes or is killed comes back as the base (systemd
//!   restarts the unit), which finds `started = 1` and marks it failed. Either way the
//!   node returns to what it ran before, and a failed version is never tried again
//!   unless it is sent again.
//!
//! Only the standalone `honeybee-agent run` restarts itself ([`enable_restart`]); an agent
//! embedded in another process (`honeybee up`, `honeybee agent run`, tests) keeps a
//! received package and says so.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

const STATE_FILE: &str = "state.toml";
/// Between staging an upgrade and restarting: time for its report to reach the core.
const REPORT_GRACE: std::time::Duration = std::time::Duration::from_millis(500);
/// Set for an upgraded executable: the path of the base to go back to.
pub const BASE_ENV: &str = "HONEYBEE_UPGRADE_BASE";

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slots {
    /// The upgrade that was welcomed by the core: run instead of the base.
    #[serde(default)]
    pub active: Option<String>,
    /// An upgrade not yet welcomed.
    #[serde(default)]
    pub trial: Option<Trial>,
    /// Versions whose trial failed.
    #[serde(default)]
    pub failed: Vec<String>,
    /// A trial that failed and has not been reported to the core yet: said on the next
    /// welcome (see [`welcomed`]).
    #[serde(default)]
    pub rolled_back: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    pub version: String,
    pub rollback_after_s: u32,
    /// Times the base started it (0 or 1).
    pub started: u32,
}

/// What to run at start.
#[derive(Debug, Clone, PartialEq)]
pub enum Boot {
    Run,
    Exec(PathBuf),
}

static RESTART_ENABLED: AtomicBool = AtomicBool::new(false);
static RESTART: OnceLock<tokio::sync::watch::Sender<Option<PathBuf>>> = OnceLock::new();

fn restart_channel() -> &'static tokio::sync::watch::Sender<Option<PathBuf>> {
    RESTART.get_or_init(|| tokio::sync::watch::channel(None).0)
}

/// This process may replace itself with an upgraded executable.
pub fn enable_restart() {
    RESTART_ENABLED.store(true, Ordering::Relaxed);
}

pub fn restart_enabled() -> bool {
    RESTART_ENABLED.load(Ordering::Relaxed)
}

fn request_restart(into: PathBuf) {
    restart_channel().send_replace(Some(into));
}

/// Resolves with the executable to restart into, once a restart is asked for.
pub async fn restart_requested() -> PathBuf {
    let mut rx = restart_channel().subscribe();
    loop {
        if let Some(p) = rx.borrow_and_update().clone() {
            return p;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The executable of `version` in `data_dir`.
pub fn binary(data_dir: &Path, version: &str) -> PathBuf {
    data_dir
        .join(super::DIR)
        .join(format!("honeybee-agent-{version}"))
}

pub fn load(data_dir: &Path) -> Slots {
    std::fs::read_to_string(data_dir.join(super::DIR).join(STATE_FILE))
        .ok()
        .and_then(|t| toml::from_str(&t).ok())
        .unwrap_or_default()
}

fn save(data_dir: &Path, s: &Slots) {
    let dir = data_dir.join(super::DIR);
    let text = toml::to_string(s).unwrap_or_default();
    if let Err(e) = std::fs::create_dir_all(&dir)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            honeybee_pki::files::write_public(&dir.join(STATE_FILE), text.as_bytes())
                .map_err(|e| e.to_string())
        })
    {
        tracing::error!(error = e, "upgrade state not saved");
    }
}

fn same(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The start-up decision for executable `me`, which is version `my_version` (pure but
/// for file existence).
pub fn decide(s: &mut Slots, data_dir: &Path, me: &Path, my_version: &str) -> Boot {
    if let Some(t) = s.trial.clone() {
        let bin = binary(data_dir, &t.version);
        if same(me, &bin) {
            return Boot::Run;
        }
        if t.started == 0 && bin.exists() {
            s.trial = Some(Trial { started: 1, ..t });
            return Boot::Exec(bin);
        }
        // Back in another executable after the trial began: it crashed, was killed, or
        // rolled itself back.
        tracing::warn!(
            version = t.version,
            "upgrade failed its trial; running the version from before"
        );
        s.rolled_back = Some(t.version.clone());
        s.failed.push(t.version);
        s.trial = None;
    }
    if let Some(v) = s.active.clone() {
        let bin = binary(data_dir, &v);
        // An installed executable at least as new as the upgrade (the Debian package was
        // upgraded with dpkg since): it runs, and the older upgrade is forgotten.
        let superseded = !same(me, &bin)
            && honeybee_proto::upgrade::version_cmp(&v, my_version) != std::cmp::Ordering::Greater;
        if superseded {
            tracing::info!(
                upgrade = v,
                installed = my_version,
                "the installed version is as new as the remote upgrade: running it"
            );
        }
        if superseded || s.failed.contains(&v) || !bin.exists() {
            s.active = None;
        } else if !same(me, &bin) {
            return Boot::Exec(bin);
        }
    }
    Boot::Run
}

/// At the start of `honeybee-agent run`: which executable should run.
pub fn boot(data_dir: &Path) -> Boot {
    let Ok(me) = std::env::current_exe() else {
        return Boot::Run;
    };
    let mut s = load(data_dir);
    let before = s.clone();
    let b = decide(&mut s, data_dir, &me, super::VERSION);
    if s != before {
        save(data_dir, &s);
    }
    b
}

/// A verified package: the trial, and a restart into it when this process may restart.
/// Returns what to report.
pub fn stage(data_dir: &Path, offer: &honeybee_proto::upgrade::UpgradeOffer) -> String {
    if !restart_enabled() {
        return "this agent runs inside another program and is not upgraded in place".into();
    }
    let mut s = load(data_dir);
    s.failed.retain(|v| v != &offer.version);
    s.trial = Some(Trial {
        version: offer.version.clone(),
        rollback_after_s: offer.rollback_after_s,
        started: 0,
    });
    save(data_dir, &s);
    // The report of this stream goes out first (see `super::accept`).
    let base = base_exe();
    tokio::spawn(async move {
        tokio::time::sleep(REPORT_GRACE).await;
        request_restart(base);
    });
    format!(
        "restarting into {}; it rolls back unless the core welcomes it within {} s",
        offer.version, offer.rollback_after_s
    )
}

fn base_exe() -> PathBuf {
    std::env::var_os(BASE_ENV)
        .map(PathBuf::from)
        .or_else(|| std::env::current_exe().ok())
        .unwrap_or_else(|| PathBuf::from("honeybee-agent"))
}

/// On a welcome: a rollback not reported yet is reported (an `Err` beginning with
/// "rolled back", which the core audits as outcome `rolled_back`); else, when this
/// executable is the trial, it is now the active version. Returns `(version, report)` to
/// send to the core.
pub fn welcomed(data_dir: &Path) -> Option<(String, Result<String, String>)> {
    let mut s = load(data_dir);
    if let Some(v) = s.rolled_back.take() {
        save(data_dir, &s);
        tracing::warn!(
            version = v,
            "reporting the rollback of an upgrade to the core"
        );
        let running = s.active.as_deref().unwrap_or("the installed version");
        return Some((
            v.clone(),
            Err(format!(
                "rolled back: {v} died or was not welcomed in time; {running} runs again"
            )),
        ));
    }
    let t = s.trial.clone()?;
    let me = std::env::current_exe().ok()?;
    if !same(&me, &binary(data_dir, &t.version)) {
        return None;
    }
    s.active = Some(t.version.clone());
    s.trial = None;
    save(data_dir, &s);
    tracing::info!(version = t.version, "upgrade welcomed by the core: kept");
    Some((
        t.version.clone(),
        Ok(format!(
            "upgraded: {} runs and was welcomed by the core",
            t.version
        )),
    ))
}

/// When this executable is on trial: after its time, unless it was welcomed, marks it
/// failed and restarts into the base.
pub async fn watchdog(data_dir: PathBuf) {
    let Some(me) = std::env::current_exe().ok() else {
        return;
    };
    let Some(t) = load(&data_dir).trial else {
        return;
    };
    if !same(&me, &binary(&data_dir, &t.version)) {
        return;
    }
    tokio::time::sleep(std::time::Duration::from_secs(t.rollback_after_s.into())).await;
    let mut s = load(&data_dir);
    if s.trial.as_ref().is_some_and(|x| x.version == t.version) {
        tracing::error!(
            version = t.version,
            "upgrade not welcomed in time: rolling back"
        );
        s.trial = None;
        s.rolled_back = Some(t.version.clone());
        s.failed.push(t.version);
        save(&data_dir, &s);
        request_restart(base_exe());
    }
}

/// Runs a (non-relay) agent that may replace itself with an upgrade: first the boot
/// decision, then the agent, then, when it asks, the executable it names. Returns only
/// when the agent stops or the exec fails.
pub async fn run_in_place(
    opts: crate::runtime::AgentOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), crate::runtime::AgentError> {
    use crate::runtime::AgentError;
    enable_restart();
    if let Boot::Exec(next) = boot(&opts.data_dir) {
        return Err(AgentError::Identity(format!(
            "cannot start {}: {}",
            next.display(),
            exec(&next)
        )));
    }
    match crate::runtime::run(opts, shutdown).await {
        Err(AgentError::Restart(next)) => Err(AgentError::Identity(format!(
            "cannot restart into {}: {}",
            next.display(),
            exec(&next)
        ))),
        r => r,
    }
}

/// Replaces this process with `path`, same arguments, telling it the base to go back to.
/// Returns only on failure.
pub fn exec(path: &Path) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let base = base_exe();
    tracing::info!(path = %path.display(), "restarting");
    std::process::Command::new(path)
        .args(std::env::args_os().skip(1))
        .env(BASE_ENV, base)
        .exec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trial_then_commit_or_fail_and_roll_back() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join(super::super::DIR)).unwrap();
        let base = d.join("base");
        std::fs::write(&base, b"base").unwrap();
        let new = binary(d, "0.2.0");
        std::fs::write(&new, b"new").unwrap();

        // Nothing staged: the base runs.
        let mut s = Slots::default();
        assert_eq!(decide(&mut s, d, &base, "0.1.0"), Boot::Run);

        // Staged: the base starts the trial once.
        s.trial = Some(Trial {
            version: "0.2.0".into(),
            rollback_after_s: 60,
            started: 0,
        });
        assert_eq!(decide(&mut s, d, &base, "0.1.0"), Boot::Exec(new.clone()));
        assert_eq!(s.trial.as_ref().unwrap().started, 1);
        // The trial itself runs.
        assert_eq!(decide(&mut s.clone(), d, &new, "0.2.0"), Boot::Run);
        // The base again while the trial was started: it failed; the base runs.
        let mut failed = s.clone();
        assert_eq!(decide(&mut failed, d, &base, "0.1.0"), Boot::Run);
        assert_eq!(failed.failed, vec!["0.2.0".to_string()]);
        assert_eq!(failed.rolled_back.as_deref(), Some("0.2.0"));
        assert!(failed.trial.is_none());

        // Committed: the base hands over to the active version at every start.
        let mut ok = Slots {
            active: Some("0.2.0".into()),
            ..Default::default()
        };
        assert_eq!(decide(&mut ok, d, &base, "0.1.0"), Boot::Exec(new.clone()));
        assert_eq!(decide(&mut ok, d, &new, "0.2.0"), Boot::Run);
        // The installed base upgraded (dpkg) to the upgrade's version or later: it runs,
        // the older upgrade is forgotten.
        let mut newer_base = ok.clone();
        assert_eq!(decide(&mut newer_base, d, &base, "0.2.0"), Boot::Run);
        assert_eq!(newer_base.active, None);
        let mut newer_base = ok.clone();
        assert_eq!(decide(&mut newer_base, d, &base, "0.3.0"), Boot::Run);
        assert_eq!(newer_base.active, None);
        // An active version whose file is gone: the base runs, the choice is forgotten.
        std::fs::remove_file(&new).unwrap();
        assert_eq!(decide(&mut ok, d, &base, "0.1.0"), Boot::Run);
        assert_eq!(ok.active, None);
    }
}
