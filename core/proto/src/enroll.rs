//! Enrolment on `honeybee-enroll/1`: one request, one response, then the core closes.

use crate::ids::{NodeId, Role, TokenId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollRequest {
    pub wire_version: u16,
    pub token_id: TokenId,
    pub secret: [u8; 32],
    /// PKCS#10 CSR for a key pair made on the enrolling machine.
    pub csr_der: Vec<u8>,
    /// The enrolling machine's host name, for the operator's eyes only.
    pub hostname: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EnrollResponse {
    Enrolled(Enrolled),
    Refused(EnrollRefusal),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enrolled {
    pub node_id: NodeId,
    pub role: Role,
    pub cert_der: Vec<u8>,
    pub ca_der: Vec<u8>,
    pub not_after_ms: i64,
}

/// Why an enrolment was refused. Shown to the operator who ran `enroll`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollRefusal {
    #[error("the core does not know this token (was it created on another core, or deleted?)")]
    UnknownToken,
    #[error("the token's secret is wrong (copy the whole token line)")]
    BadSecret,
    #[error("the token has expired; create a new one with `honeybee token create`")]
    Expired,
    #[error("the token has already been used; create a new one with `honeybee token create`")]
    UsedUp,
    #[error("the token was revoked by an administrator")]
    Revoked,
    #[error("too many failed attempts from this address; wait a minute and retry")]
    RateLimited,
    #[error("the certificate request was refused: {0}")]
    BadCsr(String),
    #[error("the enrolment request was malformed: {0}")]
    BadRequest(String),
    #[error("the core failed internally; see its log")]
    Internal,
    /// Enrolment came through a relay the token does not name (label `relay=<id>`).
    #[error(
        "this token does not allow enrolment through relay {0}; create one with --labels relay={0}"
    )]
    RelayNotAllowed(String),
}
