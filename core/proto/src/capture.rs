//! Capture uploads: one unidirectional stream each, a header frame then the raw content.

use crate::ids::SessionId;
use serde::{Deserialize, Serialize};

/// Largest capture the core accepts by default.
pub const DEFAULT_MAX_CAPTURE_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureHeader {
    /// Exact number of content bytes that follow.
    pub size: u64,
    /// SHA-256 of the content; the core recomputes it and refuses a mismatch.
    pub sha256: [u8; 32],
    pub kind: CaptureKind,
    pub service: String,
    pub session: Option<SessionId>,
    pub time_ms: i64,
    /// Free-form metadata (file name, URL, …), bounded by the header frame limit.
    pub meta: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CaptureKind {
    /// A session transcript (asciicast v2).
    Transcript,
    /// A file an attacker uploaded.
    Upload,
    /// A request body over the inline cap.
    Body,
    /// Anything else.
    Other,
}

impl CaptureKind {
    pub fn name(self) -> &'static str {
        match self {
            CaptureKind::Transcript => "transcript",
            CaptureKind::Upload => "upload",
            CaptureKind::Body => "body",
            CaptureKind::Other => "other",
        }
    }
}
