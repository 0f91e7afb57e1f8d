//! The relay flow protocol: how a relay carries a downstream node's UDP datagrams to the
//! core inside its own connection, without being able to read or forge them.
//!
//! A relay opens one bidirectional stream per downstream flow (one LAN source address).
//! The stream starts with a [`FlowOpen`] frame (the usual u32 length + postcard), then
//! both directions carry datagrams, each a u16 big-endian length and that many bytes.
//! The datagrams are the downstream node's own QUIC packets: its TLS session ends at the
//! core, so the relay only ever sees ciphertext.

use crate::codec::FrameLimit;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Largest datagram a flow carries. QUIC never sends more than 1452 bytes unless told to
/// (quinn's MTU discovery stops there); a little headroom, and anything bigger is dropped.
pub const MAX_DATAGRAM: usize = 1500;
/// Bytes in a datagram's length prefix.
pub const DATAGRAM_HEADER_LEN: usize = 2;
/// The [`FlowOpen`] frame's limit.
pub const FLOW_OPEN_LIMIT: FrameLimit = FrameLimit(512);

/// First frame on a flow stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowOpen {
    /// The downstream node's address on the relay's network, as the relay saw it. Only
    /// for display and per-source limits: nothing is authorised from it.
    pub downstream: SocketAddr,
}

/// Why a datagram cannot be framed or its header is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DatagramError {
    #[error("empty datagram")]
    Empty,
    #[error("datagram of {0} bytes is over the relay limit of {MAX_DATAGRAM} bytes")]
    TooLarge(usize),
}

/// Checks a datagram's length prefix and returns the payload length it announces, before
/// anything is allocated for it.
pub fn datagram_len(header: [u8; DATAGRAM_HEADER_LEN]) -> Result<usize, DatagramError> {
    check_len(u16::from_be_bytes(header) as usize)
}

fn check_len(len: usize) -> Result<usize, DatagramError> {
    match len {
        0 => Err(DatagramError::Empty),
        n if n > MAX_DATAGRAM => Err(DatagramError::TooLarge(n)),
        n => Ok(n),
    }
}

/// Appends one framed datagram to `out`.
pub fn encode_datagram(payload: &[u8], out: &mut Vec<u8>) -> Result<(), DatagramError> {
    let len = check_len(payload.len())?;
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// Splits `buf` into the framed datagrams at its start. Returns the payloads' ranges and
/// the bytes consumed; a partial datagram at the end is left for the next call.
pub fn split_datagrams(buf: &[u8]) -> Result<(Vec<std::ops::Range<usize>>, usize), DatagramError> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(h) = buf.get(at..at + DATAGRAM_HEADER_LEN) {
        let len = datagram_len([h[0], h[1]])?;
        let start = at + DATAGRAM_HEADER_LEN;
        if buf.len() < start + len {
            break;
        }
        out.push(start..start + len);
        at = start + len;
    }
    Ok((out, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_several() {
        let mut buf = Vec::new();
        encode_datagram(b"abc", &mut buf).unwrap();
        encode_datagram(&[7u8; MAX_DATAGRAM], &mut buf).unwrap();
        encode_datagram(b"z", &mut buf).unwrap();
        let (ranges, used) = split_datagrams(&buf).unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(&buf[ranges[0].clone()], b"abc");
        assert_eq!(buf[ranges[1].clone()].len(), MAX_DATAGRAM);
        assert_eq!(&buf[ranges[2].clone()], b"z");
    }

    #[test]
    fn partial_tail_is_left() {
        let mut buf = Vec::new();
        encode_datagram(b"hello", &mut buf).unwrap();
        encode_datagram(b"world", &mut buf).unwrap();
        let cut = buf.len() - 2;
        let (ranges, used) = split_datagrams(&buf[..cut]).unwrap();
        assert_eq!(ranges.len(), 1);
        assert_eq!(used, 7);
        // Only a header byte: nothing.
        assert_eq!(split_datagrams(&buf[..1]).unwrap(), (vec![], 0));
    }

    #[test]
    fn refuses_empty_and_oversize() {
        assert_eq!(datagram_len([0, 0]), Err(DatagramError::Empty));
        assert_eq!(
            datagram_len(((MAX_DATAGRAM + 1) as u16).to_be_bytes()),
            Err(DatagramError::TooLarge(MAX_DATAGRAM + 1))
        );
        assert_eq!(
            datagram_len((MAX_DATAGRAM as u16).to_be_bytes()),
            Ok(MAX_DATAGRAM)
        );
        let mut out = Vec::new();
        assert!(encode_datagram(&[], &mut out).is_err());
        assert!(encode_datagram(&[0; MAX_DATAGRAM + 1], &mut out).is_err());
        assert!(out.is_empty(), "nothing written for a refused datagram");
        // A hostile length in the middle of a buffer stops the split.
        let mut buf = Vec::new();
        encode_datagram(b"ok", &mut buf).unwrap();
        buf.extend_from_slice(&[0xff, 0xff, 1, 2, 3]);
        assert_eq!(split_datagrams(&buf), Err(DatagramError::TooLarge(0xffff)));
    }

    #[test]
    fn flow_open_round_trips_within_limit() {
        let open = FlowOpen {
            downstream: "[2001:db8::1]:65535".parse().unwrap(),
        };
        let frame = crate::codec::encode(&open, FLOW_OPEN_LIMIT).unwrap();
        let (back, used): (FlowOpen, usize) = crate::codec::FrameDecoder::new(FLOW_OPEN_LIMIT)
            .parse(&frame)
            .unwrap();
        assert_eq!((back, used), (open, frame.len()));
    }
}
