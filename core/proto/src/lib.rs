//! Wire types and framing for every HoneyBee connection; sans-IO (no tokio, no sockets).
//!
//! Everything that crosses the network between core, agents, modules and the admin CLI is
//! defined here, so both ends agree by construction. Drivers in `honeybee-core` and
//! `honeybee-agent` do the I/O; this crate only turns bytes into values and back.

pub mod admin;
pub mod alpn;
pub mod capture;
pub mod codec;
pub mod config;
pub mod control;
pub mod enroll;
pub mod event;
pub mod ids;
pub mod module;
pub mod profile;
pub mod realism;
pub mod reconnect;
pub mod relay;
pub mod session;
pub mod stream;
pub mod text;
pub mod timing;
pub mod upgrade;

pub use codec::{DecodeError, EncodeError, FrameDecoder, FrameLimit};
pub use ids::{NodeId, Role, Serial, SessionId, TokenId};

/// Version of this crate's wire format, carried in every hello.
pub const WIRE_VERSION: u16 = 1;
