//! Telnet honeypot: not written yet; a connection is closed at once.

use super::ServiceContext;
use super::conn::Session;
use honeybee_proto::config::TelnetOptions;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

/// A configured telnet service.
#[derive(Debug)]
pub(crate) struct TelnetService {}

impl TelnetService {
    pub(crate) fn new(_opts: &TelnetOptions, _ctx: &ServiceContext) -> Result<Self, String> {
        Ok(TelnetService {})
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
