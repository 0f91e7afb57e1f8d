//! Framing: a u32 big-endian length, then a postcard body.
//!
//! Decoding is two steps so a driver never allocates for a frame it will refuse:
//! [`FrameDecoder::check`] looks only at the bytes it has and says how long the frame is,
//! that more bytes are needed, or that the announced length is over the limit;
//! [`FrameDecoder::parse`] then decodes a complete frame. Limits are per stream kind.

use serde::{Serialize, de::DeserializeOwned};

/// Bytes in the length prefix.
pub const HEADER_LEN: usize = 4;

/// The largest body a stream kind accepts, checked before any allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimit(pub u32);

impl FrameLimit {
    /// Control stream messages (hello, config, commands, health, renewal).
    pub const CONTROL: FrameLimit = FrameLimit(256 * 1024);
    /// One telemetry batch.
    pub const TELEMETRY: FrameLimit = FrameLimit(1024 * 1024);
    /// A capture upload's header (the content follows as raw bytes).
    pub const CAPTURE_HEADER: FrameLimit = FrameLimit(16 * 1024);
    /// Enrolment request and response.
    pub const ENROLL: FrameLimit = FrameLimit(16 * 1024);
    /// An admin request.
    pub const ADMIN_REQUEST: FrameLimit = FrameLimit(256 * 1024);
    /// An admin response (event listings can be large).
    pub const ADMIN_RESPONSE: FrameLimit = FrameLimit(32 * 1024 * 1024);
}

/// Why bytes could not be decoded as a frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not enough bytes yet; `needed` more would complete the header or the frame.
    #[error("incomplete frame: {needed} more bytes needed")]
    Incomplete { needed: usize },
    /// The announced body is larger than this stream kind allows.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: u64, max: u32 },
    /// The body is not a valid message of the expected type.
    #[error("malformed frame body: {0}")]
    Malformed(String),
    /// The body decoded but left bytes over, which a well-formed peer never sends.
    #[error("frame body has {0} trailing bytes")]
    TrailingBytes(usize),
}

/// Why a value could not be encoded as a frame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    #[error("message of {len} bytes exceeds the frame limit of {max} bytes")]
    TooLarge { len: usize, max: u32 },
    #[error("message cannot be serialised: {0}")]
    Serialize(String),
}

/// Checks and parses frames under one limit.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    limit: FrameLimit,
}

impl FrameDecoder {
    pub const fn new(limit: FrameLimit) -> Self {
        FrameDecoder { limit }
    }

    pub fn limit(&self) -> FrameLimit {
        self.limit
    }

    /// Validates a length prefix and returns the body length it announces.
    pub fn body_len(&self, header: [u8; HEADER_LEN]) -> Result<usize, DecodeError> {
        let len = u32::from_be_bytes(header);
        if len > self.limit.0 {
            return Err(DecodeError::TooLarge {
                len: len as u64,
                max: self.limit.0,
            });
        }
        Ok(len as usize)
    }

    /// Looks at the start of `buf` and returns the total length (header and body) of the
    /// frame there, without allocating.
    pub fn check(&self, buf: &[u8]) -> Result<usize, DecodeError> {
        let Some(header) = buf.get(..HEADER_LEN) else {
            return Err(DecodeError::Incomplete {
                needed: HEADER_LEN - buf.len(),
            });
        };
        let body = self.body_len([header[0], header[1], header[2], header[3]])?;
        let total = HEADER_LEN + body;
        if buf.len() < total {
            return Err(DecodeError::Incomplete {
                needed: total - buf.len(),
            });
        }
        Ok(total)
    }

    /// Decodes the frame at the start of `buf`, which [`check`](Self::check) accepted.
    /// Returns the message and the number of bytes consumed.
    pub fn parse<T: DeserializeOwned>(&self, buf: &[u8]) -> Result<(T, usize), DecodeError> {
        let total = self.check(buf)?;
        let msg = decode_body(&buf[HEADER_LEN..total])?;
        Ok((msg, total))
    }
}

/// Decodes one body (without its length prefix); the whole body must be consumed.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    let (msg, rest) =
        postcard::take_from_bytes(body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    Ok(msg)
}

/// Encodes `msg` as one frame (length prefix and body), refusing bodies over `limit`.
pub fn encode<T: Serialize>(msg: &T, limit: FrameLimit) -> Result<Vec<u8>, EncodeError> {
    let mut out = vec![0u8; HEADER_LEN];
    out = postcard::to_extend(msg, out).map_err(|e| EncodeError::Serialize(e.to_string()))?;
    let body = out.len() - HEADER_LEN;
    if body > limit.0 as usize {
        return Err(EncodeError::TooLarge {
            len: body,
            max: limit.0,
        });
    }
    out[..HEADER_LEN].copy_from_slice(&(body as u32).to_be_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let d = FrameDecoder::new(FrameLimit(1024));
        let f = encode(&("hello".to_string(), 7u64), FrameLimit(1024)).unwrap();
        assert_eq!(d.check(&f).unwrap(), f.len());
        let ((s, n), used): ((String, u64), usize) = d.parse(&f).unwrap();
        assert_eq!((s.as_str(), n, used), ("hello", 7, f.len()));
    }

    #[test]
    fn refuses_oversize_before_body_arrives() {
        let d = FrameDecoder::new(FrameLimit(16));
        let err = d.check(&[0, 0, 1, 0]).unwrap_err();
        assert_eq!(err, DecodeError::TooLarge { len: 256, max: 16 });
    }

    #[test]
    fn incomplete_says_how_much() {
        let d = FrameDecoder::new(FrameLimit(16));
        assert_eq!(d.check(&[0, 0]), Err(DecodeError::Incomplete { needed: 2 }));
        assert_eq!(
            d.check(&[0, 0, 0, 5, 1]),
            Err(DecodeError::Incomplete { needed: 4 })
        );
    }

    #[test]
    fn trailing_bytes_refused() {
        let d = FrameDecoder::new(FrameLimit(16));
        assert!(matches!(
            d.parse::<u8>(&[0, 0, 0, 2, 1, 1]),
            Err(DecodeError::TrailingBytes(1))
        ));
    }

    #[test]
    fn encode_refuses_oversize() {
        assert!(encode(&vec![0u8; 100], FrameLimit(10)).is_err());
    }
}
