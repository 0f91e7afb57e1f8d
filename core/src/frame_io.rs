//! The thin async driver around the sans-IO codec: read and write one frame on a stream.

use honeybee_proto::codec::{self, FrameDecoder, FrameLimit, HEADER_LEN};
use serde::{Serialize, de::DeserializeOwned};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameIoError {
    #[error("stream ended")]
    Closed,
    #[error("timed out waiting for the peer")]
    Timeout,
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Decode(#[from] codec::DecodeError),
    #[error(transparent)]
    Encode(#[from] codec::EncodeError),
}

/// Reads one frame, refusing a length over `limit` before allocating its body.
pub async fn read_frame<T: DeserializeOwned, R: AsyncRead + Unpin>(
    r: &mut R,
    limit: FrameLimit,
) -> Result<T, FrameIoError> {
    let decoder = FrameDecoder::new(limit);
    let mut header = [0u8; HEADER_LEN];
    match r.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(FrameIoError::Closed);
        }
        Err(e) => return Err(e.into()),
    }
    let len = decoder.body_len(header)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    Ok(codec::decode_body(&body)?)
}

/// [`read_frame`] with a deadline.
pub async fn read_frame_within<T: DeserializeOwned, R: AsyncRead + Unpin>(
    r: &mut R,
    limit: FrameLimit,
    deadline: Duration,
) -> Result<T, FrameIoError> {
    tokio::time::timeout(deadline, read_frame(r, limit))
        .await
        .map_err(|_| FrameIoError::Timeout)?
}

/// Writes one frame.
pub async fn write_frame<T: Serialize, W: AsyncWrite + Unpin>(
    w: &mut W,
    msg: &T,
    limit: FrameLimit,
) -> Result<(), FrameIoError> {
    let bytes = codec::encode(msg, limit)?;
    w.write_all(&bytes).await?;
    Ok(())
}
