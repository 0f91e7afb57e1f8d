//! Redis (RESP) honeypot: not written yet; a connection is closed at once.

use super::ServiceContext;
use super::conn::Session;
use honeybee_proto::config::RedisOptions;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

/// A configured redis service.
#[derive(Debug)]
pub(crate) struct RedisService {}

impl RedisService {
    pub(crate) fn new(_opts: &RedisOptions, _ctx: &ServiceContext) -> Result<Self, String> {
        Ok(RedisService {})
    }

    /// Serves one connection until the peer leaves, a deadline passes or `stop` says so.
    pub(crate) async fn serve<S>(
        &self,
        _session: &Session,
        _stream: S,
        _stop: watch::Receiver<bool>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
    }
}
