//! HoneyBee agent: enrolment, the connection to the core, the disk spool and the honeypot
//! services. The `honeybee-agent` binary and `honeybee agent …` both run this.

pub mod captures;
pub mod config;
pub mod enroll;
#[doc(hidden)]
pub mod fuzz_api;
pub mod health;
pub mod logging;
pub mod metrics;
pub(crate) mod persona;
pub mod realism;
pub mod relay;
pub mod resolve;
pub mod runtime;
pub mod scan;
pub mod services;
pub mod sink;
pub mod spool;
pub(crate) mod statefile;
pub mod transport;
pub mod upgrade;
