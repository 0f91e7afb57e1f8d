//! Managed modules: processes the core starts from `[[module]]` in core.toml or from
//! `honeybee module load`, hands a fresh credential through the environment, supervises
//! (restart with backoff, output into the core's log) and stops — gracefully with
//! SIGTERM, then by force after a grace period.
//!
//! A module starts with an empty environment plus [`INHERITED_ENV`] and the variables the
//! module protocol needs: it must not inherit the core's secrets (the CA passphrase, the
//! dashboard's admin password, cloud credentials an operator exported).

use crate::server::Shared;
use honeybee_proto::NodeId;
use honeybee_proto::admin::ModuleSpec;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;

/// How long an unloaded module has to exit after SIGTERM before it is killed.
pub const GRACE: Duration = Duration::from_secs(5);
/// A module that ran at least this long before dying restarts without backoff.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

/// Variables a managed module inherits from the core, when set: what a process needs to
/// run (find programs, speak the locale, know the time zone and its home). Nothing else
/// passes; the module protocol's own variables are set by the supervisor.
pub const INHERITED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "TMPDIR",
    "RUST_LOG",
    "RUST_BACKTRACE",
];

/// The environment of a managed module: the allowlisted variables of the core's own
/// environment, then the module protocol's variables.
pub fn module_env(
    spec: &ModuleSpec,
    credential: &str,
    shim: std::net::SocketAddr,
    shim_ca: Option<&std::path::Path>,
) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
    let mut env: Vec<(std::ffi::OsString, std::ffi::OsString)> = INHERITED_ENV
        .iter()
        .filter_map(|k| std::env::var_os(k).map(|v| ((*k).into(), v)))
        .collect();
    env.push(("HONEYBEE_SHIM_ADDR".into(), shim.to_string().into()));
    env.push(("HONEYBEE_MODULE_NAME".into(), spec.name.clone().into()));
    env.push(("HONEYBEE_MODULE_CREDENTIAL".into(), credential.into()));
    env.push((
        "HONEYBEE_MODULE_PERMISSIONS".into(),
        spec.permissions.join(",").into(),
    ));
    // With a TLS shim the module must know which CA to trust; the core says so itself
    // now that the module no longer sees the core's environment.
    if let Some(ca) = shim_ca {
        env.push(("HONEYBEE_SHIM_CA".into(), ca.as_os_str().to_owned()));
    }
    env
}

/// What the supervisor knows about one managed module.
#[derive(Debug, Clone, Default)]
pub struct ManagedState {
    pub state: String,
    pub pid: Option<u32>,
    pub restarts: u32,
    /// How the last process ended (`exit code 1`, `killed by signal 9`).
    pub last_exit: Option<String>,
    /// Its newest output lines (stdout and stderr), at most `MODULE_LOG_TAIL`.
    pub log_tail: std::collections::VecDeque<String>,
}

/// How a module process ended, as the dashboard and CLI show it.
fn exit_text(status: &std::io::Result<std::process::ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(st) => match (st.code(), st.signal()) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            _ => "ended".into(),
        },
        Err(e) => format!("could not be waited for: {e}"),
    }
}

struct Managed {
    spec: ModuleSpec,
    stop: watch::Sender<bool>,
    state: Arc<Mutex<ManagedState>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
pub struct ModuleManager {
    procs: Mutex<HashMap<String, Managed>>,
}

impl std::fmt::Debug for ModuleManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleManager").finish_non_exhaustive()
    }
}

fn set(state: &Mutex<ManagedState>, s: &str, pid: Option<u32>) {
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    st.state = s.to_owned();
    st.pid = pid;
}

impl ModuleManager {
    /// Starts and supervises a module process.
    pub async fn load(
        &self,
        spec: ModuleSpec,
        shared: Arc<Shared>,
        actor: &str,
    ) -> Result<(), String> {
        honeybee_proto::NodeId::new(spec.name.clone()).map_err(|e| format!("module name: {e}"))?;
        if spec.command.is_empty() {
            return Err("a module needs a command to run".into());
        }
        if self
            .procs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&spec.name)
        {
            return Err(format!(
                "module {} is already loaded; unload it first",
                spec.name
            ));
        }
        let Some(shim) = shared.shim_addr else {
            return Err(
                "managed modules need the module shim; set modules.shim_listen in core.toml".into(),
            );
        };
        let credential =
            super::session::create_credential(&shared, &spec.name, &spec.permissions, actor)
                .await?;
        let (stop, stop_rx) = watch::channel(false);
        let state = Arc::new(Mutex::new(ManagedState {
            state: "starting".into(),
            ..Default::default()
        }));
        let shim_ca = shared.cfg.shim_tls.then(|| shared.paths.ca_cert());
        let env = module_env(&spec, &credential, shim, shim_ca.as_deref());
        let task = tokio::spawn(supervise(spec.clone(), env, stop_rx, state.clone()));
        shared.audit(
            actor,
            "module.load",
            "ok",
            None,
            &format!("module={} command={}", spec.name, spec.command),
        );
        self.procs.lock().unwrap_or_else(|p| p.into_inner()).insert(
            spec.name.clone(),
            Managed {
                spec,
                stop,
                state,
                task,
            },
        );
        Ok(())
    }

    /// Stops a managed module and revokes its credentials.
    pub async fn unload(&self, name: &str, shared: &Shared, actor: &str) -> Result<(), String> {
        let m = self
            .procs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
            .ok_or_else(|| format!("no managed module {name:?}; see `honeybee module list`"))?;
        let _ = m.stop.send(true);
        let _ = tokio::time::timeout(GRACE + Duration::from_secs(5), m.task).await;
        let _ = shared.store.revoke_module_credentials(name).await;
        shared.modules.kick(name);
        // Its credential may also be in use by a connection to another core.
        if let (Some(c), Ok(id)) = (&shared.cluster, NodeId::new(name)) {
            c.module_revoked(&id).await;
        }
        shared.audit(
            actor,
            "module.unload",
            "ok",
            None,
            &format!("module={name}"),
        );
        Ok(())
    }

    /// Stops every managed module (core shutdown).
    pub async fn stop_all(&self) {
        let all: Vec<Managed> = self
            .procs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, m)| m)
            .collect();
        for m in &all {
            let _ = m.stop.send(true);
        }
        for m in all {
            let _ = tokio::time::timeout(GRACE + Duration::from_secs(5), m.task).await;
        }
    }

    pub fn list(&self) -> Vec<(ModuleSpec, ManagedState)> {
        self.procs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|m| {
                (
                    m.spec.clone(),
                    m.state.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                )
            })
            .collect()
    }
}

async fn supervise(
    spec: ModuleSpec,
    env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    mut stop: watch::Receiver<bool>,
    state: Arc<Mutex<ManagedState>>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        let child = tokio::process::Command::new(&spec.command)
            .args(&spec.args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(module = spec.name, command = spec.command, error = %e, "module could not start");
                set(&state, &format!("failed: {e}"), None);
                if wait_or_stop(&mut stop, backoff).await {
                    set(&state, "stopped", None);
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        let pid = child.id();
        set(&state, "running", pid);
        tracing::info!(module = spec.name, pid, "module started");
        if let Some(out) = child.stdout.take() {
            tokio::spawn(log_lines(out, spec.name.clone(), false, state.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(log_lines(err, spec.name.clone(), true, state.clone()));
        }
        let stopping = tokio::select! {
            status = child.wait() => {
                let ran = started.elapsed();
                tracing::warn!(module = spec.name, ?status, ran_s = ran.as_secs(), "module exited; restarting");
                state.lock().unwrap_or_else(|p| p.into_inner()).last_exit = Some(exit_text(&status));
                if ran >= HEALTHY_RUN {
                    backoff = Duration::from_secs(1);
                }
                false
            }
            _ = stop.changed() => true,
        };
        if stopping {
            set(&state, "stopping", pid);
            if let Some(pid) = pid {
                // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGTERM);
                }
            }
            if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
                tracing::warn!(module = spec.name, "module ignored SIGTERM; killing it");
                let _ = child.kill().await;
            }
            set(&state, "stopped", None);
            return;
        }
        {
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            st.restarts += 1;
            st.state = "restarting".into();
            st.pid = None;
        }
        if wait_or_stop(&mut stop, backoff).await {
            set(&state, "stopped", None);
            return;
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Copies a module's output into the core's log, a line at a time (bounded).
/// The newest lines are also kept in the module's state (`log_tail`) for `module list`.
async fn log_lines<R: tokio::io::AsyncRead + Unpin>(
    r: R,
    module: String,
    is_err: bool,
    state: Arc<Mutex<ManagedState>>,
) {
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line = honeybee_proto::event::clamp(&line, 4096);
        {
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            if st.log_tail.len() >= honeybee_proto::admin::MODULE_LOG_TAIL {
                st.log_tail.pop_front();
            }
            // A tail line is shown in a table cell: 512 bytes is plenty.
            st.log_tail
                .push_back(honeybee_proto::event::clamp(&line, 512));
        }
        if is_err {
            tracing::warn!(module, "{line}");
        } else {
            tracing::info!(module, "{line}");
        }
    }
}

/// Sleeps for `d`; true if asked to stop meanwhile.
async fn wait_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}
