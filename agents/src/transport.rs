//! The agent's QUIC plumbing: a client endpoint, connecting with a given rustls config,
//! and reading and writing one frame on a stream (the thin driver around the codec).

use honeybee_proto::codec::{self, FrameDecoder, FrameLimit, HEADER_LEN};
use honeybee_proto::reconnect::{ComeBack, QUICK_INITIAL_RTT};
use honeybee_proto::timing::Timing;
use serde::{Serialize, de::DeserializeOwned};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The keep-alive and idle timeout of `timing`, the same as the core's.
pub fn transport_config(timing: &Timing) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(timing.keep_alive));
    // An idle timeout past QUIC's VarInt range (2^62 ms) means "never".
    t.max_idle_timeout(timing.idle_timeout.try_into().ok());
    t
}

/// A quinn client config from a rustls one, on production timing.
pub fn client_config(tls: rustls::ClientConfig) -> Result<quinn::ClientConfig, String> {
    client_config_with(tls, &Timing::default())
}

/// A quinn client config from a rustls one, on the given timing.
pub fn client_config_with(
    tls: rustls::ClientConfig,
    timing: &Timing,
) -> Result<quinn::ClientConfig, String> {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| format!("TLS configuration unusable for QUIC: {e}"))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(Arc::new(transport_config(timing)));
    Ok(cfg)
}

/// One connection attempt of a [`Reconnect`] schedule. A quick attempt (a core that was
/// reachable a moment ago) starts from [`QUICK_INITIAL_RTT`], so its Initial is sent again
/// soon if the core's port was not bound yet; every attempt has `timing.handshake_deadline`.
///
/// [`Reconnect`]: honeybee_proto::reconnect::Reconnect
pub async fn connect_attempt(
    ep: &quinn::Endpoint,
    mut cfg: quinn::ClientConfig,
    addr: SocketAddr,
    quick: bool,
    timing: &Timing,
) -> Result<quinn::Connection, String> {
    if quick {
        let mut t = transport_config(timing);
        t.initial_rtt(QUICK_INITIAL_RTT);
        cfg.transport_config(Arc::new(t));
    }
    let connecting = ep
        .connect_with(cfg, addr, "honeybee-core")
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(timing.handshake_deadline, connecting).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("handshake timed out".into()),
    }
}

/// The core's "come back" in how `conn` was closed, if the core closed it cleanly with one.
pub fn come_back(conn: &quinn::Connection) -> Option<ComeBack> {
    match conn.close_reason()? {
        quinn::ConnectionError::ApplicationClosed(c) => {
            ComeBack::from_close(u32::try_from(c.error_code.into_inner()).ok()?, &c.reason)
        }
        _ => None,
    }
}

/// A client endpoint on an ephemeral port of `target`'s address family.
pub fn endpoint_for(target: SocketAddr) -> std::io::Result<quinn::Endpoint> {
    let bind: SocketAddr = if target.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    quinn::Endpoint::client(bind)
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameIoError {
    #[error("stream ended")]
    Closed,
    #[error("timed out waiting for the core")]
    Timeout,
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Decode(#[from] codec::DecodeError),
    #[error(transparent)]
    Encode(#[from] codec::EncodeError),
}

/// Reads one frame, refusing a length over `limit` before allocating.
pub async fn read_frame<T: DeserializeOwned, R: AsyncRead + Unpin>(
    r: &mut R,
    limit: FrameLimit,
) -> Result<T, FrameIoError> {
    let mut header = [0u8; HEADER_LEN];
    if let Err(e) = r.read_exact(&mut header).await {
        return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameIoError::Closed
        } else {
            e.into()
        });
    }
    let mut body = vec![0u8; FrameDecoder::new(limit).body_len(header)?];
    r.read_exact(&mut body).await?;
    Ok(codec::decode_body(&body)?)
}

/// Writes one frame.
pub async fn write_frame<T: Serialize, W: AsyncWrite + Unpin>(
    w: &mut W,
    msg: &T,
    limit: FrameLimit,
) -> Result<(), FrameIoError> {
    w.write_all(&codec::encode(msg, limit)?).await?;
    Ok(())
}
