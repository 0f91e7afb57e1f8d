//! FTP honeypot: not written yet; a connection is closed at once.

use super::ServiceContext;
use super::conn::Session;
use honeybee_proto::config::FtpOptions;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

/// A configured ftp service.
#[derive(Debug)]
pub(crate) struct FtpService {}

impl FtpService {
    pub(crate) fn new(_opts: &FtpOptions, _ctx: &ServiceContext) -> Result<Self, String> {
        Ok(FtpService {})
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
