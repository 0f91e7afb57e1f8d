//! ALPN protocol names: one UDP port, one handler per ALPN.

/// Enrolment with a one-time token; server authentication only, rate limited.
pub const ENROLL: &[u8] = b"honeybee-enroll/1";
/// Agents and relays; mutual TLS.
pub const NODE: &[u8] = b"honeybee/1";
/// Modules and the dashboard backend; mutual TLS.
pub const MODULE: &[u8] = b"honeybee-module/1";
/// The admin CLI; mutual TLS.
pub const ADMIN: &[u8] = b"honeybee-admin/1";

/// Every ALPN the core accepts, in preference order.
pub const ALL: [&[u8]; 4] = [NODE, ENROLL, MODULE, ADMIN];
