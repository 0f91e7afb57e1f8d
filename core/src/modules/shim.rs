//! The TCP shim for modules in languages without QUIC: u32 length + JSON frames, on
//! loopback by default, every connection authenticated by a module credential, with
//! per-source and global connection caps (deadlines and frame caps are in `session.rs`).

use crate::server::Shared;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long a TLS client has to finish its handshake.
const TLS_HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(10);

/// Binds the shim listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Accepts module connections until the listener fails; with `tls`, each connection
/// completes a TLS handshake (10 s deadline) before its hello.
pub async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
) {
    let total = Arc::new(Semaphore::new(shared.cfg.module_max_connections as usize));
    let per_source: Arc<Mutex<HashMap<IpAddr, u32>>> = Arc::default();
    let per_source_max = shared.cfg.module_max_connections_per_source;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "module shim accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = total.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "module shim: global connection cap reached");
            continue;
        };
        {
            let mut m = per_source.lock().unwrap_or_else(|p| p.into_inner());
            let n = m.entry(peer.ip()).or_insert(0);
            if *n >= per_source_max {
                tracing::warn!(%peer, "module shim: per-source connection cap reached");
                continue;
            }
            *n += 1;
        }
        let _ = stream.set_nodelay(true);
        let (shared, per_source, tls) = (shared.clone(), per_source.clone(), tls.clone());
        tokio::spawn(async move {
            use super::session::{Auth, serve};
            match tls {
                None => {
                    let (r, w) = stream.into_split();
                    serve(r, w, Auth::Credential, peer, "shim", shared).await;
                }
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(tls)) => {
                            let (r, w) = tokio::io::split(tls);
                            serve(r, w, Auth::Credential, peer, "shim+tls", shared).await;
                        }
                        Ok(Err(e)) => {
                            tracing::info!(%peer, error = %e, "module shim TLS handshake failed")
                        }
                        Err(_) => tracing::info!(%peer, "module shim TLS handshake timed out"),
                    }
                }
            }
            let mut m = per_source.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = m.get_mut(&peer.ip()) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&peer.ip());
                }
            }
            drop(permit);
        });
    }
}
