//! Modules over QUIC (`honeybee-module/1`): the peer proved its identity with a module
//! (or dashboard) certificate; its permissions come from the store, granted when the
//! certificate was issued. The first bidirectional stream carries the same JSON frames as
//! the shim.

use crate::server::Shared;
use honeybee_pki::identity::PeerIdentity;
use honeybee_proto::Role;
use honeybee_proto::module::Permission;
use honeybee_proto::stream::close;
use std::sync::Arc;
use std::time::Duration;

pub async fn handle(conn: quinn::Connection, peer: PeerIdentity, shared: &Arc<Shared>) {
    let name = peer.spiffe.id.to_string();
    let remote = conn.remote_address();
    let by_grant = peer.spiffe.role != Role::Dashboard;
    let granted = if !by_grant {
        // The dashboard is the operators' console: it needs the whole interface.
        Permission::ALL.to_vec()
    } else {
        match shared.store.module_permissions(&name).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                shared.audit(
                    &format!("module:{name}"),
                    "module.connect",
                    "refused: no unrevoked grant",
                    Some(remote.to_string()),
                    "quic",
                );
                conn.close(close::FORBIDDEN.into(), b"module has no unrevoked grant");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "module permissions lookup failed");
                conn.close(close::PROTOCOL.into(), b"internal error");
                return;
            }
        }
    };
    let (send, recv) = match tokio::time::timeout(Duration::from_secs(10), conn.accept_bi()).await {
        Ok(Ok(s)) => s,
        _ => {
            conn.close(close::PROTOCOL.into(), b"expected a module stream");
            return;
        }
    };
    super::session::serve(
        recv,
        send,
        super::session::Auth::Certificate {
            name,
            granted,
            by_grant,
        },
        remote,
        "quic",
        shared.clone(),
    )
    .await;
    conn.close(close::NORMAL.into(), b"bye");
}
