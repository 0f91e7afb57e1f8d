//! The PostgreSQL behind fleets of several cores: the test fixture's server
//! (`core/src/store/pg_test_server.rs`: `initdb` in a temporary directory as an
//! unprivileged user, `postgres` on 127.0.0.1 at a free port, one per process, stopped by
//! PID at exit), with a fresh database for each fleet. Debian's `postgresql` package
//! provides the binaries (or `HONEYBEE_PG_BIN`); without them a fleet on PostgreSQL fails
//! saying so.

#[allow(dead_code)]
#[path = "../../core/src/store/pg_test_server.rs"]
mod pg_test_server;

use crate::harness::HarnessError;
use honeybee_core::config::RawStore;
use std::path::Path;

/// A `[store]` naming a fresh database on the process's server, its password in a file
/// in `dir`. `lease_ttl` is `[store] lease_ttl` (None: the core's default).
pub async fn fresh_store(dir: &Path, lease_ttl: Option<&str>) -> Result<RawStore, HarnessError> {
    let (url, password) = fresh_database().await?;
    std::fs::create_dir_all(dir)?;
    let password_file = dir.join("store-password");
    std::fs::write(&password_file, format!("{password}\n"))?;
    Ok(RawStore {
        url,
        password_file: Some(password_file),
        lease_ttl: lease_ttl.map(str::to_owned),
        ..RawStore::default()
    })
}

/// A fresh database on the process's server: its URL (without the password) and the
/// password.
pub async fn fresh_database() -> Result<(String, &'static str), HarnessError> {
    // initdb, createdb: blocking child processes, kept off the runtime's workers.
    let url = tokio::task::spawn_blocking(|| {
        std::panic::catch_unwind(pg_test_server::fresh_database).map_err(|p| panic_text(p.as_ref()))
    })
    .await
    .map_err(|e| HarnessError::Postgres(e.to_string()))?
    .map_err(HarnessError::Postgres)?;
    Ok((url, pg_test_server::PASSWORD))
}

/// The fixture reports a missing server or a failed `initdb` by panicking (it is test
/// code); a fleet turns that into an error that says what went wrong.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "the PostgreSQL fixture failed".into())
}
