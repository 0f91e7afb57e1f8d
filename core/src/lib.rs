//! HoneyBee core: the QUIC endpoint and everything behind it — ALPN routing, enrolment,
//! node sessions, the node registry, the store, captures and the admin API.

pub mod admin;
pub mod admin_client;
pub mod audit;
pub mod budget;
pub mod bus;
pub mod captures;
pub mod cluster;
pub mod config;
pub mod correlator;
pub mod endpoint;
pub mod enroll;
pub mod frame_io;
pub mod health;
pub mod honeycred;
pub mod ingest;
pub mod init;
pub mod join;
pub mod json;
pub mod metrics;
pub mod modules;
pub mod node;
pub mod ratelimit;
pub mod realism;
pub mod registry;
pub mod relay;
pub mod server;
pub mod store;
pub mod sweep;
pub mod upgrade;

pub use config::CoreConfig;
pub use server::Core;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A core for in-process tests: a fresh data directory under `trust_domain`, listening on
/// a free loopback port, no TCP shim. The directory lives as long as the guard returned.
#[cfg(test)]
pub(crate) async fn test_core(trust_domain: &str) -> (tempfile::TempDir, Core) {
    let dir = tempfile::tempdir().unwrap();
    init::init(
        dir.path(),
        &init::InitOptions {
            trust_domain: trust_domain.into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            advertise: Some("127.0.0.1:7443".into()),
        },
    )
    .unwrap();
    let mut cfg = config::load(dir.path()).unwrap();
    cfg.shim_listen = None;
    let core = Core::start_with(cfg).await.unwrap();
    (dir, core)
}
