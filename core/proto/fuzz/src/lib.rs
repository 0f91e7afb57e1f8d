//! Shared invariants for the honeybee-proto fuzz targets: a buffer is read as a stream of
//! frames the way a driver reads it, and every answer is checked for consistency.

use honeybee_proto::codec::{self, HEADER_LEN};
use honeybee_proto::{DecodeError, FrameDecoder, FrameLimit};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// Most frames read from one input, so a long run of tiny frames stays fast.
const MAX_FRAMES: usize = 64;

/// Reads `data` as back-to-back frames of `T` under `limit` and asserts, for each:
///
/// * `check` and `parse` never panic, and `parse` refuses exactly what `check` refuses,
///   with the same error;
/// * `Incomplete` and `TooLarge` carry numbers that match the bytes given;
/// * a parsed message consumed exactly the length `check` announced, re-encodes under the
///   same limit into a frame no longer than the original, and that frame parses back and
///   re-encodes to the same bytes.
///
/// Returns the messages that parsed, so targets can add type-specific checks.
pub fn frames<T>(data: &[u8], limit: FrameLimit) -> Vec<T>
where
    T: DeserializeOwned + Serialize + Debug,
{
    let dec = FrameDecoder::new(limit);
    let mut out = Vec::new();
    let mut buf = data;
    for _ in 0..MAX_FRAMES {
        let checked = dec.check(buf);
        let parsed = dec.parse::<T>(buf);
        let total = match checked {
            Err(err) => {
                check_refusal(buf, limit, &err);
                match parsed {
                    Ok((msg, _)) => panic!("parse accepted {msg:?} after check refused: {err:?}"),
                    Err(p) => assert_eq!(p, err, "parse and check disagree"),
                }
                break;
            }
            Ok(total) => total,
        };
        assert!(total >= HEADER_LEN && total <= buf.len());
        match parsed {
            Ok((msg, used)) => {
                assert_eq!(used, total, "parse consumed a different length than check");
                let again = codec::encode(&msg, limit).expect("decoded message re-encodes");
                assert!(again.len() <= used, "re-encoding grew the frame");
                let (msg2, used2) = dec.parse::<T>(&again).expect("re-encoded frame parses");
                assert_eq!(used2, again.len());
                let third = codec::encode(&msg2, limit).expect("second re-encode");
                assert_eq!(third, again, "re-encoding is not stable");
                out.push(msg);
            }
            Err(DecodeError::Malformed(_) | DecodeError::TrailingBytes(_)) => {}
            Err(other) => panic!("complete frame refused with {other:?}"),
        }
        buf = &buf[total..];
    }
    out
}

/// The numbers in a refusal from `check` agree with the bytes it was given.
fn check_refusal(buf: &[u8], limit: FrameLimit, err: &DecodeError) {
    match *err {
        DecodeError::Incomplete { needed } => {
            assert!(needed > 0);
            if buf.len() < HEADER_LEN {
                assert_eq!(needed, HEADER_LEN - buf.len());
            } else {
                let body = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                assert!(body <= limit.0 as usize);
                assert_eq!(needed, HEADER_LEN + body - buf.len());
            }
        }
        DecodeError::TooLarge { len, max } => {
            assert_eq!(max, limit.0);
            assert!(buf.len() >= HEADER_LEN);
            assert_eq!(
                len,
                u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as u64
            );
            assert!(len > max as u64);
        }
        ref other => panic!("check returned a body error: {other:?}"),
    }
}
