//! One node's connection: the control stream (hello, config, commands, health, renewal),
//! telemetry batches (read here, stored by `ingest.rs`, acknowledged once durable), and
//! capture uploads.

use crate::budget::Limit;
use crate::frame_io::{FrameIoError, read_frame, read_frame_within, write_frame};
use crate::registry::LiveNode;
use crate::relay::FlowPath;
use crate::server::Shared;
use crate::store::CaptureRecord;
use honeybee_pki::ca::IssueRequest;
use honeybee_pki::identity::PeerIdentity;
use honeybee_proto::capture::CaptureHeader;
use honeybee_proto::codec::FrameLimit;
use honeybee_proto::control::{AgentMsg, CoreMsg, RenewedCert};
use honeybee_proto::event::EventBatch;
use honeybee_proto::session::CoreSession;
use honeybee_proto::stream::{StreamKind, close};
use honeybee_proto::{NodeId, Role, Serial};
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc};

/// Capture bytes gathered before each write to the temporary file.
const CAPTURE_WRITE: usize = 256 * 1024;

/// Why a node's connection is being closed.
#[derive(Debug)]
struct Close(u32, String);

impl Close {
    fn protocol(why: impl std::fmt::Display) -> Self {
        Close(close::PROTOCOL, why.to_string())
    }

    /// The core's own store failed: not the node's fault, so not a protocol error.
    fn store(e: &crate::store::StoreError) -> Self {
        Close(close::UNAVAILABLE, format!("store: {e}"))
    }
}

/// `via`: the relay flow this connection came through, if it did.
pub async fn handle(
    conn: quinn::Connection,
    peer: PeerIdentity,
    shared: &Arc<Shared>,
    via: Option<FlowPath>,
) {
    let node = peer.spiffe.id.clone();
    // Behind a relay, the address worth showing is the node's own on the relay's LAN.
    let remote = via.as_ref().map_or(conn.remote_address(), |v| v.downstream);
    let relay = via.as_ref().map(|v| &v.relay);
    if let Err(Close(code, why)) = admit(&node, peer.serial, relay, shared).await {
        tracing::warn!(%node, %remote, why, "node connection refused");
        shared.audit(
            &format!("node:{node}"),
            "connect",
            &format!("refused: {why}"),
            Some(remote.to_string()),
            &relay.map(|r| format!("via relay {r}")).unwrap_or_default(),
        );
        conn.close(code.into(), why.as_bytes());
        return;
    }
    let conn_id = shared.registry.next_conn_id();
    let result = session(&conn, &node, &peer, conn_id, shared, remote, relay).await;
    let still_current = shared.registry.remove(&node, conn_id);
    // Its latest health report reaches the store with the next batch.
    shared.health.disconnected(&node);
    if let Some(cluster) = &shared.cluster {
        // Only while the lease is still this connection's: never marks offline a node
        // that has moved to another core (or to a newer connection here).
        cluster
            .release(&node, conn_id, &remote.to_string(), crate::now_ms())
            .await;
    } else if still_current {
        let _ = shared
            .store
            .set_node_online(&node, false, Some(remote.to_string()), crate::now_ms())
            .await;
    }
    match result {
        Ok(()) => tracing::info!(%node, %remote, "node disconnected"),
        Err(Close(code, why)) => {
            tracing::warn!(%node, %remote, code, why, "node connection closed");
            conn.close(code.into(), why.as_bytes());
        }
    }
}

/// The certificate must belong to a known, unrevoked node; through a relay, the node must
/// be assigned to that relay.
async fn admit(
    node: &NodeId,
    serial: Serial,
    relay: Option<&NodeId>,
    shared: &Shared,
) -> Result<(), Close> {
    let internal = |e: crate::store::StoreError| Close::store(&e);
    if shared.revocations.is_node_revoked(node) || shared.revocations.is_serial_revoked(&serial) {
        return Err(Close(close::REVOKED, "revoked".into()));
    }
    let rec = shared.store.get_node(node).await.map_err(internal)?;
    let Some(rec) = rec else {
        return Err(Close(close::FORBIDDEN, "unknown node; enrol again".into()));
    };
    if rec.revoked {
        return Err(Close(close::REVOKED, "revoked".into()));
    }
    if let Some(relay) = relay
        && rec.via_relay.as_ref() != Some(relay)
    {
        return Err(Close(
            close::FORBIDDEN,
            format!(
                "node {node} is not assigned to relay {relay} (honeybee node assign-relay {node} {relay})"
            ),
        ));
    }
    match shared.store.cert(serial).await.map_err(internal)? {
        Some(c) if &c.node == node && !c.revoked => Ok(()),
        Some(c) if c.revoked => Err(Close(close::REVOKED, "certificate revoked".into())),
        _ => Err(Close(
            close::FORBIDDEN,
            "certificate not issued to this node".into(),
        )),
    }
}

async fn session(
    conn: &quinn::Connection,
    node: &NodeId,
    peer: &PeerIdentity,
    conn_id: u64,
    shared: &Arc<Shared>,
    remote: std::net::SocketAddr,
    relay: Option<&NodeId>,
) -> Result<(), Close> {
    let (mut ctl_send, mut ctl_recv) =
        match tokio::time::timeout(shared.cfg.timing.handshake_deadline, conn.accept_bi()).await {
            Ok(Ok(s)) => s,
            Ok(Err(_)) => return Ok(()),
            Err(_) => return Err(Close::protocol("no control stream")),
        };
    let hello = match read_frame_within::<AgentMsg, _>(
        &mut ctl_recv,
        FrameLimit::CONTROL,
        shared.cfg.timing.handshake_deadline,
    )
    .await
    {
        Ok(AgentMsg::Hello(h)) => h,
        Ok(_) => return Err(Close::protocol("first control message must be hello")),
        Err(e) => return Err(Close::protocol(format!("hello: {e}"))),
    };
    CoreSession::new()
        .on_hello(hello.wire_version)
        .map_err(Close::protocol)?;
    let store_err = |e: crate::store::StoreError| Close::store(&e);
    let rec = shared
        .store
        .get_node(node)
        .await
        .map_err(store_err)?
        .ok_or_else(|| Close(close::FORBIDDEN, "unknown node".into()))?;
    let last_seq = shared.store.max_seq(node).await.map_err(store_err)?;
    // The configuration this connection was sent, kept current by the writer below: what
    // each health report is assessed against, without a store read per report.
    let sent_config = Arc::new(std::sync::Mutex::new(
        shared.registry.shared_config(rec.config.clone()),
    ));
    let welcome = CoreMsg::Welcome {
        node_id: node.clone(),
        config: rec.config,
        last_seq,
    };
    write_frame(&mut ctl_send, &welcome, FrameLimit::CONTROL)
        .await
        .map_err(|_| Close(close::NORMAL, "gone".into()))?;

    let (tx, mut rx) = mpsc::channel::<CoreMsg>(1024);
    if let Some(cluster) = &shared.cluster {
        // The node's one lease fleet-wide (marks it online); another core's connection of
        // it closes.
        let addr = remote.to_string();
        cluster
            .take(node, conn_id, &addr, crate::now_ms())
            .await
            .map_err(store_err)?;
    }
    shared.registry.insert(
        node.clone(),
        LiveNode {
            conn_id,
            conn: conn.clone(),
            tx: tx.clone(),
            serial: peer.serial,
            not_after_ms: peer.not_after_ms,
            mode: hello.mode,
            via: relay.cloned(),
            version: crate::audit::peer_text(&hello.agent_version, 64),
        },
    );
    let remote = remote.to_string();
    if shared.cluster.is_none() {
        let _ = shared
            .store
            .set_node_online(node, true, Some(remote.clone()), crate::now_ms())
            .await;
    }
    tracing::info!(%node, %remote, agent = hello.agent_version, mode = ?hello.mode, via = relay.map(NodeId::as_str).unwrap_or(""), "node connected");

    let (writer_config, writer_shared) = (sent_config.clone(), shared.clone());
    let writer = async move {
        while let Some(msg) = rx.recv().await {
            if let CoreMsg::Config(c) = &msg {
                let c = writer_shared.registry.shared_config(c.clone());
                *writer_config.lock().unwrap_or_else(|p| p.into_inner()) = c;
            }
            if write_frame(&mut ctl_send, &msg, FrameLimit::CONTROL)
                .await
                .is_err()
            {
                break;
            }
        }
    };
    let labels = Arc::new(rec.labels.clone());
    let streams = accept_streams(conn, node, labels, shared, tx.clone());
    let control = control_loop(&mut ctl_recv, node, peer, shared, tx, &sent_config);
    // A relay's own, direct connection also carries its downstream nodes' flows.
    let carries_flows = peer.spiffe.role == Role::Relay && relay.is_none();
    let flows = async {
        if carries_flows {
            crate::relay::serve(conn, node, conn_id, shared).await;
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        r = control => r,
        r = streams => r,
        _ = writer => Ok(()),
        _ = flows => Ok(()),
        _ = conn.closed() => Ok(()),
    }
}

/// Reads control messages until the stream ends.
async fn control_loop(
    recv: &mut quinn::RecvStream,
    node: &NodeId,
    peer: &PeerIdentity,
    shared: &Arc<Shared>,
    tx: mpsc::Sender<CoreMsg>,
    config: &std::sync::Mutex<Arc<honeybee_proto::config::NodeConfig>>,
) -> Result<(), Close> {
    let mut serial = peer.serial;
    let mut foreign = 0u64;
    let mut first_health = true;
    loop {
        let msg: AgentMsg = match read_frame(recv, FrameLimit::CONTROL).await {
            Ok(m) => m,
            Err(FrameIoError::Closed) => return Ok(()),
            Err(FrameIoError::Io(_)) => return Ok(()),
            Err(e) => return Err(Close::protocol(format!("control stream: {e}"))),
        };
        match msg {
            AgentMsg::Health(h) => {
                let now = crate::now_ms();
                // The report reaches the store with the others in the next batch (see
                // `HealthBoard`), not in a write of its own.
                // Except the connection's first, written at once: a node that has just
                // connected shows its health straight away (one write per connection).
                // Later reports are written only when what they say changes, or once a
                // minute (see `HealthBoard`).
                let mut written = false;
                if std::mem::take(&mut first_health) {
                    let row = crate::store::HealthRow {
                        node: node.clone(),
                        health: h.clone(),
                        time_ms: now,
                    };
                    // Failed, it goes with the next batch.
                    written = shared.store.set_nodes_health(vec![row]).await.is_ok();
                }
                let degraded = {
                    let config = config.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    shared.health.report(node, h, now, Some(&config), written)
                };
                if degraded {
                    degraded_alert(node, shared, now).await;
                }
            }
            AgentMsg::CommandResult { id, result } => {
                use crate::registry::ResultOutcome;
                if shared.registry.command_result(node, id, result) == ResultOutcome::WrongNode {
                    foreign += 1;
                    // Logged at 1, 2, 4, 8, …: a flood cannot flood the log as well.
                    if foreign.is_power_of_two() {
                        tracing::warn!(%node, id, count = foreign, "command result for a command sent to another node ignored");
                    }
                }
            }
            AgentMsg::RenewRequest { csr_der } => {
                let answer = if shared.budgets.renewal(node, std::time::Instant::now()) {
                    renew(node, peer, &mut serial, &csr_der, shared).await
                } else {
                    let per_hour = shared.budgets.config().renewals_per_hour;
                    shared.limit_reached(
                        node,
                        Limit::Renewals,
                        format!("asked for more than {per_hour} certificate renewals in an hour"),
                    );
                    Err(format!(
                        "renewal refused: more than {per_hour} renewals in an hour; retry later"
                    ))
                };
                if tx.send(CoreMsg::Renewed(answer)).await.is_err() {
                    return Ok(());
                }
            }
            AgentMsg::UpgradeReport { version, result } => {
                crate::upgrade::reported(shared, node, &version, &result)
            }
            AgentMsg::Hello(_) => return Err(Close::protocol("hello sent twice")),
            _ => return Err(Close::protocol("unexpected control message")),
        }
    }
}

/// Raises the one alert for a node that has just become degraded (see `health.rs`).
async fn degraded_alert(node: &NodeId, shared: &Arc<Shared>, now_ms: i64) {
    let info = shared.health.info(node, true, None);
    let body = format!(
        "{} of {} services listening; spool dropped {} events since the last report.\n{}",
        info.services_up,
        info.services_total,
        info.spool_dropped,
        info.problems.join("\n")
    );
    let alert = crate::store::NewAlert {
        time_ms: now_ms,
        module: "core".into(),
        severity: "high".into(),
        title: format!("node {node} is degraded"),
        body,
        node: Some(node.as_str().to_owned()),
        seq: None,
    };
    match shared.store.insert_alert(alert).await {
        Ok(id) => tracing::warn!(%node, alert = id, "node degraded"),
        Err(e) => tracing::error!(%node, error = %e, "recording the degraded-node alert failed"),
    }
}

/// Issues a fresh certificate for the same identity; the SPIFFE id comes from the live
/// connection's certificate, never from the CSR.
async fn renew(
    node: &NodeId,
    peer: &PeerIdentity,
    serial: &mut Serial,
    csr_der: &[u8],
    shared: &Shared,
) -> Result<RenewedCert, String> {
    if shared.revocations.is_node_revoked(node) {
        return Err("node is revoked".into());
    }
    let issued = shared
        .ca
        .sign_csr(
            csr_der,
            &IssueRequest {
                role: peer.spiffe.role,
                id: node.clone(),
                lifetime: shared.cfg.agent_cert_lifetime,
            },
        )
        .map_err(|e| format!("renewal refused: {e}"))?;
    let now = crate::now_ms();
    let recorded = async {
        shared
            .store
            .record_cert(
                issued.serial,
                node,
                peer.spiffe.role,
                now,
                issued.not_after_ms,
            )
            .await?;
        shared
            .store
            .supersede_cert(node, *serial, issued.serial, issued.not_after_ms, now)
            .await
    }
    .await;
    if let Err(e) = recorded {
        tracing::error!(%node, error = %e, "could not record renewed certificate");
        return Err("core could not record the certificate".into());
    }
    shared
        .registry
        .update_cert(node, issued.serial, issued.not_after_ms);
    shared.audit(
        &format!("node:{node}"),
        "cert.renew",
        "ok",
        None,
        &format!("old={} new={}", serial, issued.serial),
    );
    *serial = issued.serial;
    Ok(RenewedCert {
        cert_der: issued.der,
        not_after_ms: issued.not_after_ms,
    })
}

/// Accepts unidirectional streams and reads each on its own task, a bounded number at once.
async fn accept_streams(
    conn: &quinn::Connection,
    node: &NodeId,
    labels: Arc<Vec<(String, String)>>,
    shared: &Arc<Shared>,
    tx: mpsc::Sender<CoreMsg>,
) -> Result<(), Close> {
    let permits = Arc::new(Semaphore::new(shared.cfg.max_streams_per_node as usize));
    let (fail_tx, mut fail_rx) = mpsc::channel::<Close>(1);
    // The last stream's turn to publish its events (ingest::Turn).
    let mut tail = None;
    loop {
        let recv = tokio::select! {
            r = conn.accept_uni() => match r {
                Ok(r) => r,
                Err(_) => return Ok(()),
            },
            Some(fail) = fail_rx.recv() => return Err(fail),
        };
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return Ok(());
        };
        let turn = crate::ingest::Turn::next(&mut tail);
        let (node, labels, shared, tx, fail_tx) = (
            node.clone(),
            labels.clone(),
            shared.clone(),
            tx.clone(),
            fail_tx.clone(),
        );
        tokio::spawn(async move {
            if let Err(close) = uni_stream(recv, &node, &labels, &shared, &tx, turn).await {
                let _ = fail_tx.try_send(close);
            }
            drop(permit);
        });
    }
}

async fn uni_stream(
    mut recv: quinn::RecvStream,
    node: &NodeId,
    labels: &Arc<Vec<(String, String)>>,
    shared: &Arc<Shared>,
    tx: &mpsc::Sender<CoreMsg>,
    turn: crate::ingest::Turn,
) -> Result<(), Close> {
    let mut kind = [0u8; 1];
    match tokio::time::timeout(shared.cfg.timing.stream_stall, recv.read_exact(&mut kind)).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) | Err(_) => return Ok(()),
    }
    match StreamKind::from_byte(kind[0]).map_err(Close::protocol)? {
        StreamKind::Telemetry => telemetry(recv, node, labels, shared, tx, turn).await,
        StreamKind::Capture => {
            // A capture publishes no node events: the next batch need not wait for it.
            drop(turn);
            capture(recv, node, shared, tx).await
        }
        StreamKind::Upgrade => Err(Close::protocol("upgrade streams go from core to node")),
    }
}

async fn telemetry(
    mut recv: quinn::RecvStream,
    node: &NodeId,
    labels: &Arc<Vec<(String, String)>>,
    shared: &Arc<Shared>,
    tx: &mpsc::Sender<CoreMsg>,
    turn: crate::ingest::Turn,
) -> Result<(), Close> {
    let batch: EventBatch = match read_frame_within(
        &mut recv,
        FrameLimit::TELEMETRY,
        shared.cfg.timing.stream_stall,
    )
    .await
    {
        Ok(b) => b,
        // A stream cut by a lost connection is normal: the agent resends.
        Err(FrameIoError::Io(_)) | Err(FrameIoError::Timeout) => return Ok(()),
        Err(e) => return Err(Close::protocol(format!("telemetry: {e}"))),
    };
    match crate::ingest::batch(shared, node, labels, batch, turn).await {
        Ok(Some((first, last))) => {
            let _ = tx.send(CoreMsg::Ack { first, last }).await;
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(crate::ingest::Refused::TooManyEvents) => Err(Close(
            close::LIMIT,
            "telemetry batch has too many events".into(),
        )),
        Err(crate::ingest::Refused::Store(e)) => Err(Close::store(&e)),
    }
}

async fn capture(
    mut recv: quinn::RecvStream,
    node: &NodeId,
    shared: &Arc<Shared>,
    tx: &mpsc::Sender<CoreMsg>,
) -> Result<(), Close> {
    let header: CaptureHeader = match read_frame_within(
        &mut recv,
        FrameLimit::CAPTURE_HEADER,
        shared.cfg.timing.stream_stall,
    )
    .await
    {
        Ok(h) => h,
        Err(FrameIoError::Io(_)) | Err(FrameIoError::Timeout) => return Ok(()),
        Err(e) => return Err(Close::protocol(format!("capture header: {e}"))),
    };
    let reject = |reason: String| async move {
        tracing::warn!(%node, sha256 = %hex::encode(header.sha256), reason, "capture rejected");
        let _ = tx
            .send(CoreMsg::CaptureRejected {
                sha256: header.sha256,
                reason,
            })
            .await;
    };
    if header.size > shared.cfg.max_capture_bytes {
        let _ = recv.stop(close::CAPTURE_REJECTED.into());
        reject(format!(
            "capture of {} bytes is over the core's limit of {} bytes",
            header.size, shared.cfg.max_capture_bytes
        ))
        .await;
        return Ok(());
    }
    if !shared
        .budgets
        .capture(node, header.size, std::time::Instant::now())
    {
        let per_hour = shared.budgets.config().capture_bytes_per_hour;
        let _ = recv.stop(close::CAPTURE_REJECTED.into());
        shared.limit_reached(
            node,
            Limit::CaptureBytes,
            format!(
                "uploaded more than {per_hour} capture bytes in an hour; a capture of {} bytes refused",
                header.size
            ),
        );
        reject(format!(
            "this node's capture budget ({per_hour} bytes per hour) is spent; capture of {} bytes refused",
            header.size
        ))
        .await;
        return Ok(());
    }
    let mut pending = match shared.captures.begin(header.size).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "capture storage unavailable");
            return Ok(());
        }
    };
    // QUIC hands over roughly one packet per chunk; gather them so each file write (a
    // thread-pool round trip) moves a quarter of a megabyte, not 1.4 KB.
    let mut buf = Vec::with_capacity(CAPTURE_WRITE);
    loop {
        let chunk = match tokio::time::timeout(
            shared.cfg.timing.stream_stall,
            recv.read_chunk(CAPTURE_WRITE, true),
        )
        .await
        {
            Ok(Ok(Some(c))) => Some(c),
            Ok(Ok(None)) => None,
            // Cut mid-upload: drop the part; the agent uploads again after reconnecting.
            Ok(Err(_)) | Err(_) => return Ok(()),
        };
        let done = chunk.is_none();
        if let Some(c) = chunk {
            buf.extend_from_slice(&c.bytes);
        }
        if buf.len() >= CAPTURE_WRITE || (done && !buf.is_empty()) {
            if let Err(e) = pending.write(&buf).await {
                let _ = recv.stop(close::CAPTURE_REJECTED.into());
                reject(e.to_string()).await;
                return Ok(());
            }
            buf.clear();
        }
        if done {
            break;
        }
    }
    match pending.finish(&header.sha256).await {
        Ok(new) => {
            let rec = CaptureRecord {
                sha256: header.sha256,
                size: header.size,
                kind: header.kind.name().to_owned(),
                node: node.clone(),
                service: honeybee_proto::event::clamp(&header.service, 64),
                session: header.session,
                time_ms: header.time_ms,
                meta: header.meta.clone(),
            };
            if let Err(e) = shared.store.insert_capture(rec).await {
                tracing::error!(error = %e, "capture metadata not stored");
                return Ok(());
            }
            tracing::info!(%node, sha256 = %hex::encode(header.sha256), size = header.size, new, "capture stored");
            let _ = tx
                .send(CoreMsg::CaptureStored {
                    sha256: header.sha256,
                })
                .await;
        }
        Err(e) => reject(e.to_string()).await,
    }
    Ok(())
}
