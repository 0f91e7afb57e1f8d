//! HoneyBee netsim: impaired networks on loopback, to show that nothing an agent reports
//! is lost or duplicated on the links agents really live on.
//!
//! - [`model`]: the impairment model of one direction of a link — delay and jitter, loss
//!   (independent or Gilbert-Elliott bursts), reordering, duplication, a bandwidth limit,
//!   an MTU, partitions that hold or drop — plus the NAT rebinding schedule. Sans-IO:
//!   datagrams and the current time go in, datagrams and the next deadline come out, so it
//!   is tested under a virtual clock.
//! - [`proxy`]: the thin driver that applies the model between real UDP sockets, with its
//!   impairments changeable while it runs (`honeybee netsim proxy`).
//! - [`harness`] and [`scenario`]: a real core and N real agents on 127.0.0.1, each agent
//!   behind its own proxy, synthetic events driven through them, and a [`report::Report`]
//!   of what was sent, stored, lost and duplicated, latency percentiles and recovery time.
//! - [`cluster`]: the same with several cores on one PostgreSQL ([`pg`]), agents finding
//!   them by SRV records ([`dns`]): a core killed mid-stream, a partition between a core
//!   and some of its agents, ingest through one core and through two.
//! - [`origin_cost`]: what joining the cluster adds to a core's PostgreSQL commits (the
//!   rows' origin and the per-commit NOTIFY), timed on the store alone.
//!
//! The kernel here has no netem, so every impairment is done in this crate.

pub mod cli;
pub mod cluster;
pub mod dns;
pub mod harness;
pub mod model;
pub mod origin_cost;
pub mod parse;
pub mod pg;
pub mod proxy;
pub mod report;
pub mod rng;
pub mod scenario;
