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
