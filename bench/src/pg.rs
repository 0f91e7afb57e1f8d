//! A PostgreSQL server for the PostgreSQL figures: the test fixture's server
//! (`core/src/store/pg_test_server.rs`: `initdb` in a temp directory, `postgres` on
//! 127.0.0.1 at a free port, stopped by PID when dropped), with a fresh database per
//! measurement, made and connected to with plain tokio-postgres.

#[allow(dead_code)]
#[path = "../../core/src/store/pg_test_server.rs"]
mod pg_test_server;

use anyhow::{Context, Result, bail};
use std::path::Path;
use std::time::Duration;

pub use pg_test_server::PASSWORD;

/// A running server; stopped (fast shutdown, SIGKILL after a bounded wait) and its
/// directory removed when dropped.
pub struct Pg {
    server: pg_test_server::PgServer,
    next: u32,
}

impl Pg {
    /// initdb + postgres (blocking work off the runtime). The fixture's settings:
    /// `fsync=off`, `synchronous_commit=off`, `full_page_writes=off`, 300 connections.
    pub async fn start() -> Result<Pg> {
        let server = tokio::time::timeout(
            Duration::from_secs(120),
            tokio::task::spawn_blocking(pg_test_server::start),
        )
        .await
        .context("postgres did not start within 120 s")?
        .context("postgres start panicked")?;
        Ok(Pg { server, next: 0 })
    }

    /// A new empty database; its URL without the password.
    pub async fn fresh_database(&mut self, prefix: &str) -> Result<String> {
        self.next += 1;
        let name = format!("{prefix}_{}", self.next);
        let admin = connect(&self.server.url("postgres")).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("create database {name}"))?;
        Ok(self.server.url(&name))
    }

    /// The server's version string.
    pub async fn version(&self) -> Result<String> {
        let c = connect(&self.server.url("postgres")).await?;
        Ok(c.query_one("SHOW server_version", &[]).await?.get(0))
    }

    /// Writes the password to a file for `[store] password_file`.
    pub fn password_file(dir: &Path) -> Result<std::path::PathBuf> {
        let p = dir.join("store-password");
        std::fs::write(&p, format!("{PASSWORD}\n"))?;
        Ok(p)
    }
}

/// A plain tokio-postgres connection (its driver task spawned), with the fixture's
/// password, bounded connect time.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let mut cfg: tokio_postgres::Config = url.parse()?;
    cfg.password(PASSWORD);
    cfg.connect_timeout(Duration::from_secs(10));
    let (client, conn) = cfg
        .connect(tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connect {url}"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("[bench] postgres connection: {e}");
        }
    });
    Ok(client)
}

/// Rows in `events` of the database at `url`.
pub async fn count_events(url: &str) -> Result<u64> {
    let c = connect(url).await?;
    let n: i64 = c
        .query_one("SELECT COUNT(*) FROM events", &[])
        .await?
        .get(0);
    if n < 0 {
        bail!("negative count");
    }
    Ok(n as u64)
}
