//! A connection outside the pool that LISTENs: PostgreSQL delivers notifications only to
//! the session that listens, and a pooled connection is handed to other callers between
//! uses. The cluster (`crate::cluster`) holds one per core for the life of the process.

use super::{PgStore, connect_error};
use crate::store::StoreError;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;

/// What the listening connection hands on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// One notification's payload, from the channel listened on.
    Payload(String),
    /// Notifications arrived while the queue was full and were dropped: whoever listens
    /// must resynchronise from the tables (none is lost silently).
    Lost,
}

/// A dedicated connection that has run `LISTEN`. Notices arrive on `rx` in the order the
/// server delivered them; `rx` ends when the connection does (the caller reconnects).
pub struct Listener {
    /// The session itself: statements that must run on it (session advisory locks).
    pub client: tokio_postgres::Client,
    pub rx: mpsc::Receiver<Notice>,
    task: JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PgStore {
    /// Opens a connection outside the pool and runs `LISTEN channel` on it. At most
    /// `queue` notices wait for the caller; past that they are dropped and one
    /// [`Notice::Lost`] is delivered when there is room again.
    pub(crate) async fn listen(&self, channel: &str, queue: usize) -> Result<Listener, StoreError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let (cfg, tls) = &self.inner.connect;
        let (client, mut conn) = cfg
            .connect(tls.clone())
            .await
            .map_err(|e| connect_error(&self.inner.location, e))?;
        let (tx, rx) = mpsc::channel(queue.max(1));
        let location = self.inner.location.clone();
        let task = tokio::spawn(async move {
            let mut lost = false;
            loop {
                let msg = tokio::select! {
                    m = std::future::poll_fn(|cx| conn.poll_message(cx)) => m,
                    // Room again after a drop: say so at once, not with the next notice.
                    permit = tx.reserve(), if lost => match permit {
                        Ok(p) => {
                            p.send(Notice::Lost);
                            lost = false;
                            continue;
                        }
                        Err(_) => return,
                    },
                };
                let payload = match msg {
                    Some(Ok(AsyncMessage::Notification(n))) => n.payload().to_owned(),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        tracing::warn!(location, error = %e, "listening connection lost");
                        return;
                    }
                    None => return,
                };
                if lost {
                    continue;
                }
                match tx.try_send(Notice::Payload(payload)) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => lost = true,
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
        });
        // The channel name is the caller's constant, never outside input; quoted anyway.
        client
            .batch_execute(&format!("LISTEN \"{}\"", channel.replace('"', "")))
            .await?;
        Ok(Listener { client, rx, task })
    }
}
