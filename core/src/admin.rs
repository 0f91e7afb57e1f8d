//! The admin API (`honeybee-admin/1`): each bidirectional stream carries one request and
//! its response. Only certificates with role `admin` or `dashboard` reach this handler;
//! the dashboard may name the signed-in user it acts for (`OnBehalf`), and is audited as
//! `dashboard:<id>/<user>`.

use crate::frame_io::{FrameIoError, read_frame_within, write_frame};
use crate::server::Shared;
use crate::store::NodeRecord;
use honeybee_pki::identity::PeerIdentity;
use honeybee_proto::admin::{
    AdminRequest, AdminResponse, CaptureInfo, CoreStatus, MAX_CAPTURE_CHUNK, NodeInfo,
};
use honeybee_proto::codec::FrameLimit;
use honeybee_proto::control::CoreMsg;
use honeybee_proto::stream::close;
use honeybee_proto::{NodeId, Role};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

pub async fn handle(conn: quinn::Connection, peer: PeerIdentity, shared: &Arc<Shared>) {
    let role = peer.spiffe.role;
    let actor: Arc<str> = format!("{}:{}", role, peer.spiffe.id).into();
    let remote: Arc<str> = conn.remote_address().to_string().into();
    // Requests on one connection run side by side, as many as it may open streams
    // (`AlpnLimits::ADMIN`); the permit makes that bound explicit whatever quinn does.
    // One at a time, a client's requests queued behind each other's store round trips:
    // a config push to 10,000 nodes took 16-48 s with 16 requests "in flight", and one
    // slow query (or a stream whose request never comes) held up the whole dashboard.
    let permits = Arc::new(Semaphore::new(
        crate::endpoint::AlpnLimits::ADMIN.bidi_streams as usize,
    ));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (send, recv) = match conn.accept_bi().await {
            Ok(s) => s,
            Err(_) => return,
        };
        let (conn, actor, remote, shared) =
            (conn.clone(), actor.clone(), remote.clone(), shared.clone());
        tokio::spawn(async move {
            request(&conn, send, recv, role, &actor, &remote, &shared).await;
            drop(permit);
        });
    }
}

/// Reads one request from its stream, runs it and writes the response.
async fn request(
    conn: &quinn::Connection,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    role: Role,
    actor: &str,
    remote: &str,
    shared: &Arc<Shared>,
) {
    let req: AdminRequest =
        match read_frame_within(&mut recv, FrameLimit::ADMIN_REQUEST, REQUEST_DEADLINE).await {
            Ok(r) => r,
            Err(FrameIoError::Closed) => return,
            Err(e) => {
                tracing::warn!(%remote, error = %e, "malformed admin request");
                conn.close(
                    close::PROTOCOL.into(),
                    format!("malformed request: {e}").as_bytes(),
                );
                return;
            }
        };
    let resp = match req {
        // A dashboard certificate must not mint more of itself: only the admin does.
        AdminRequest::IssueDashboardCert { .. } if role != Role::Admin => {
            AdminResponse::Error("only the admin issues dashboard certificates".into())
        }
        AdminRequest::OnBehalf { user, request } => {
            on_behalf(role, &user, &request, actor, remote, shared).await
        }
        req => dispatch(req, actor, remote, shared).await,
    };
    let resp = match honeybee_proto::codec::encode(&resp, FrameLimit::ADMIN_RESPONSE) {
        Ok(_) => resp,
        Err(e) => AdminResponse::Error(format!("response too large ({e}); narrow the query")),
    };
    if write_frame(&mut send, &resp, FrameLimit::ADMIN_RESPONSE)
        .await
        .is_ok()
    {
        let _ = send.finish();
    }
}

/// One lock per stripe of nodes, held from a config's store write to its live push: two
/// requests for the same node (now that a connection's requests run side by side, or
/// from two admin connections) store and push in the same order, so a node runs the
/// config the store holds. Pushes to nodes of different stripes run side by side.
static CONFIG_ORDER: [tokio::sync::Mutex<()>; 64] =
    [const { tokio::sync::Mutex::const_new(()) }; 64];

fn config_order(node: &NodeId) -> &'static tokio::sync::Mutex<()> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    node.hash(&mut h);
    &CONFIG_ORDER[(h.finish() % CONFIG_ORDER.len() as u64) as usize]
}

fn capture_info(c: crate::store::CaptureRecord) -> CaptureInfo {
    CaptureInfo {
        sha256: c.sha256,
        size: c.size,
        kind: c.kind,
        node: c.node,
        service: c.service,
        session: c.session,
        time_ms: c.time_ms,
        meta: c.meta,
    }
}

/// One chunk of a stored capture's content, read from its content-addressed file.
async fn get_capture(
    shared: &Arc<Shared>,
    sha256: [u8; 32],
    offset: u64,
    max_len: u32,
) -> AdminResponse {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let rec = match shared.store.get_capture(sha256).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return AdminResponse::Error(format!(
                "no capture {}; see `honeybee captures`",
                hex::encode(sha256)
            ));
        }
        Err(e) => return AdminResponse::Error(format!("store: {e}")),
    };
    if offset > rec.size {
        return AdminResponse::Error(format!(
            "offset {offset} is past the end of the capture ({} bytes)",
            rec.size
        ));
    }
    let len = u64::from(max_len.clamp(1, MAX_CAPTURE_CHUNK)).min(rec.size - offset);
    let path = shared.captures.path_of(&sha256);
    let read = async {
        let mut f = tokio::fs::File::open(&path).await?;
        f.seek(std::io::SeekFrom::Start(offset)).await?;
        let mut data = vec![0u8; len as usize];
        f.read_exact(&mut data).await?;
        Ok::<_, std::io::Error>(data)
    };
    match read.await {
        Ok(data) => AdminResponse::CaptureChunk {
            info: capture_info(rec),
            offset,
            data,
        },
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "stored capture unreadable");
            AdminResponse::Error(format!(
                "the capture's content is missing or unreadable on the core ({e}); see the core's log"
            ))
        }
    }
}

/// Longest user name the dashboard may act for.
const MAX_USER_LEN: usize = 64;

async fn on_behalf(
    role: Role,
    user: &str,
    request: &[u8],
    actor: &str,
    remote: &str,
    shared: &Arc<Shared>,
) -> AdminResponse {
    if role != Role::Dashboard {
        return AdminResponse::Error("only the dashboard acts on behalf of its users".into());
    }
    if user.is_empty()
        || user.len() > MAX_USER_LEN
        || !user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b))
    {
        return AdminResponse::Error("invalid user name in an on-behalf request".into());
    }
    let inner: AdminRequest = match postcard::from_bytes(request) {
        Ok(r) => r,
        Err(e) => return AdminResponse::Error(format!("malformed on-behalf request: {e}")),
    };
    if matches!(
        inner,
        AdminRequest::OnBehalf { .. } | AdminRequest::IssueDashboardCert { .. }
    ) {
        return AdminResponse::Error("not allowed in an on-behalf request".into());
    }
    dispatch(inner, &format!("{actor}/{user}"), remote, shared).await
}

fn node_info(rec: NodeRecord, live: Option<crate::registry::LivePath>) -> NodeInfo {
    let online = live.is_some();
    let (mode, via, agent_version) = live.map_or((None, None, None), |l| {
        (Some(l.mode), l.via, Some(l.version))
    });
    NodeInfo {
        id: rec.id,
        name: rec.name,
        role: rec.role,
        labels: rec.labels,
        serial: rec.serial,
        cert_not_after_ms: rec.cert_not_after_ms,
        first_seen_ms: rec.first_seen_ms,
        last_seen_ms: rec.last_seen_ms,
        addr: rec.addr,
        online,
        revoked: rec.revoked,
        health: rec.health,
        mode,
        via,
        relay: rec.via_relay,
        agent_version,
        core: None,
        health_age_ms: None,
    }
}

/// The devices every node's aggregator services list (from the configuration each node was
/// last given), with what their stored events add up to. A device is identified by its
/// node, service and address: the agent accepts nothing else from that address, so the
/// address's `device_log` / `device_trap` events are the device's.
async fn list_devices(
    shared: &Shared,
) -> Result<Vec<honeybee_proto::admin::DeviceInfo>, crate::store::StoreError> {
    use honeybee_proto::config::ServiceKind;
    let nodes = shared.store.list_nodes().await?;
    let activity: std::collections::HashMap<(String, String, String), (i64, u64)> = shared
        .store
        .device_activity()
        .await?
        .into_iter()
        .map(|a| {
            (
                (a.node.as_str().to_owned(), a.service, a.address),
                (a.last_ms, a.events),
            )
        })
        .collect();
    let mut out = Vec::new();
    for n in nodes {
        for s in &n.config.services {
            let ServiceKind::Aggregator(o) = &s.kind else {
                continue;
            };
            for d in &o.devices {
                let address = d.address.to_canonical().to_string();
                let key = (n.id.as_str().to_owned(), s.name.clone(), address.clone());
                let (last, events) = activity.get(&key).copied().unzip();
                out.push(honeybee_proto::admin::DeviceInfo {
                    node: n.id.clone(),
                    service: s.name.clone(),
                    name: d.name.clone(),
                    address,
                    kind: d.kind.clone(),
                    last_seen_ms: last,
                    events: events.unwrap_or(0),
                });
            }
        }
    }
    Ok(out)
}

/// Records which relay may carry `node`; a live connection through any other relay is
/// closed at once (the node reconnects by a path it is allowed).
async fn assign_relay(
    node: honeybee_proto::NodeId,
    relay: Option<honeybee_proto::NodeId>,
    actor: &str,
    remote: &str,
    shared: &Arc<Shared>,
) -> AdminResponse {
    use honeybee_proto::Role;
    let err = |e: &dyn std::fmt::Display| AdminResponse::Error(e.to_string());
    match shared.store.get_node(&node).await {
        Ok(Some(n)) if n.role == Role::Agent => {}
        Ok(Some(n)) => {
            return AdminResponse::Error(format!(
                "{node} is a {} node; only agents are carried by relays",
                n.role
            ));
        }
        Ok(None) => return AdminResponse::Error(format!("no node {node}; see `honeybee nodes`")),
        Err(e) => return err(&e),
    }
    if let Some(r) = &relay {
        match shared.store.get_node(r).await {
            Ok(Some(n)) if n.role == Role::Relay && !n.revoked => {}
            Ok(Some(n)) if n.revoked => {
                return AdminResponse::Error(format!("relay {r} is revoked"));
            }
            Ok(Some(n)) => {
                return AdminResponse::Error(format!(
                    "{r} is a {} node, not a relay (enrol one with a --role relay token)",
                    n.role
                ));
            }
            Ok(None) => return AdminResponse::Error(format!("no relay {r}; see `honeybee nodes`")),
            Err(e) => return err(&e),
        }
    }
    if let Err(e) = shared.store.set_node_relay(&node, relay.as_ref()).await {
        return err(&e);
    }
    let cut = shared
        .registry
        .close_if_relayed_otherwise(&node, relay.as_ref());
    if let Some(c) = &shared.cluster {
        c.relay_changed(&node).await;
    }
    shared.audit(
        actor,
        "node.assign_relay",
        "ok",
        Some(remote.into()),
        &format!(
            "node={node} relay={} closed_live_connection={cut}",
            relay.as_ref().map_or("none", |r| r.as_str())
        ),
    );
    AdminResponse::Done
}

/// Revokes every grant of module `name` (shim credentials and module certificates'
/// grants) and closes its connection here and, through the cluster, on any other core.
async fn revoke_module(name: &str, actor: &str, remote: &str, shared: &Shared) -> AdminResponse {
    let id = match NodeId::new(name) {
        Ok(id) => id,
        Err(e) => return AdminResponse::Error(format!("module name: {e}")),
    };
    let revoked = match shared.store.revoke_module_credentials(name).await {
        Ok(n) => n,
        Err(e) => return AdminResponse::Error(e.to_string()),
    };
    let cut_here = shared.modules.kick_granted(name);
    if let Some(c) = &shared.cluster {
        c.module_revoked(&id).await;
    }
    shared.audit(
        actor,
        "module.revoke",
        "ok",
        Some(remote.into()),
        &format!("module={name} grants_revoked={revoked} closed_live_connection={cut_here}"),
    );
    if revoked == 0 && !cut_here {
        return AdminResponse::Error(format!(
            "module {name:?} has no unrevoked credential or grant; see `honeybee module list`"
        ));
    }
    AdminResponse::Done
}

/// In a cluster, which core holds each node's live connection; `None` on one core, or
/// when the leases cannot be read (logged; the caller falls back to what it knows).
async fn lease_holders(
    shared: &Shared,
) -> Option<std::collections::HashMap<NodeId, crate::cluster::CoreId>> {
    let c = shared.cluster.as_ref()?;
    match c.holders().await {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "reading the node leases failed");
            None
        }
    }
}

async fn dispatch(
    req: AdminRequest,
    actor: &str,
    remote: &str,
    shared: &Arc<Shared>,
) -> AdminResponse {
    use AdminResponse as R;
    let err = |e: &dyn std::fmt::Display| R::Error(e.to_string());
    match req {
        AdminRequest::Status => {
            let nodes = shared
                .store
                .list_nodes()
                .await
                .map(|n| n.len())
                .unwrap_or(0);
            R::Status(CoreStatus {
                version: env!("CARGO_PKG_VERSION").into(),
                trust_domain: shared.cfg.trust_domain.clone(),
                listen: shared.cfg.listen.to_string(),
                advertise: shared.cfg.advertise.clone(),
                uptime_s: shared.started.elapsed().as_secs(),
                // Connected to this core; `ListCores` has every core's.
                nodes_online: shared.registry.online_count() as u32,
                nodes_total: nodes as u32,
                events_total: shared.store.count_events(None).await.unwrap_or(0),
            })
        }
        AdminRequest::ListNodes => match shared.store.list_nodes().await {
            Ok(nodes) => {
                let holders = lease_holders(shared).await;
                let me = shared.cluster.as_ref().map(|c| c.id);
                let now = crate::now_ms();
                R::Nodes(
                    nodes
                        .into_iter()
                        .map(|n| {
                            let live = shared.registry.live_path(&n.id);
                            let here = live.is_some();
                            let holder = holders.as_ref().and_then(|h| h.get(&n.id)).copied();
                            // In a cluster a node may be connected to another core: its
                            // unexpired lease says which (or, when the leases could not
                            // be read, the stored state its lease keeps).
                            let elsewhere = !here
                                && match &holders {
                                    Some(_) => holder.is_some() && holder != me,
                                    None => shared.cluster.is_some() && n.online,
                                };
                            let mut info = node_info(n, live);
                            info.online |= elsewhere;
                            info.core = holder.map(|c| c.to_string());
                            if here && let Some((h, ms)) = shared.health.latest(&info.id) {
                                // The store's copy of a live node's health may be up to a
                                // minute old (`HealthBoard`): a node connected here shows
                                // its latest report, and was last seen when it sent it.
                                info.health = Some(h);
                                info.last_seen_ms = info.last_seen_ms.max(ms);
                                info.health_age_ms = Some(now.saturating_sub(ms).max(0));
                            } else if elsewhere && info.health.is_some() {
                                // The holding core raises last_seen_ms to each report it
                                // writes (and sets it when the node connects).
                                info.health_age_ms =
                                    Some(now.saturating_sub(info.last_seen_ms).max(0));
                            }
                            info
                        })
                        .collect(),
                )
            }
            Err(e) => err(&e),
        },
        AdminRequest::NodeHealth => match shared.store.list_nodes().await {
            Ok(nodes) => {
                let holders = lease_holders(shared).await.unwrap_or_default();
                let me = shared.cluster.as_ref().map(|c| c.id);
                let now = crate::now_ms();
                let mut out = Vec::with_capacity(nodes.len());
                for n in nodes {
                    let here = shared.registry.live_path(&n.id).is_some();
                    let last = shared.store.last_event_ms(&n.id).await.unwrap_or(None);
                    let holder = holders.get(&n.id).copied();
                    match holder {
                        Some(core) if !here && Some(core) != me => {
                            out.push(crate::health::assess_stored(
                                &n.id,
                                n.health.as_ref(),
                                &n.config,
                                last,
                                core.to_string(),
                                Some(now.saturating_sub(n.last_seen_ms).max(0)),
                            ))
                        }
                        _ => {
                            let mut i = shared.health.info(&n.id, here, last);
                            i.core = holder.filter(|_| here).map(|c| c.to_string());
                            out.push(i);
                        }
                    }
                }
                R::NodeHealth(out)
            }
            Err(e) => err(&e),
        },
        AdminRequest::AlertCounts => match shared.store.count_alerts().await {
            Ok((total, open)) => R::AlertCounts { total, open },
            Err(e) => err(&e),
        },
        AdminRequest::CountEvents(q) => match shared.store.count_matching(&q).await {
            Ok((count, capped)) => R::EventCount { count, capped },
            Err(e) => err(&e),
        },
        AdminRequest::TopCommands {
            since_ms,
            until_ms,
            services,
            top,
        } => match shared
            .store
            .top_commands(since_ms, until_ms, &services, top)
            .await
        {
            Ok(c) => R::TopCommands(c),
            Err(e) => err(&e),
        },
        AdminRequest::ListEvents(q) => {
            let events = match shared.store.query_events(&q).await {
                Ok(ev) => ev,
                Err(e) => return err(&e),
            };
            match shared.store.attach_enrichments(events).await {
                Ok(ev) => R::Events(ev),
                Err(e) => err(&e),
            }
        }
        AdminRequest::RevokeNode { node } => {
            let serials = match shared.store.revoke_node(&node, crate::now_ms()).await {
                Ok(s) => s,
                Err(e) => return err(&e),
            };
            if serials.is_empty() && !matches!(shared.store.get_node(&node).await, Ok(Some(_))) {
                return R::Error(format!("no node {node}; see `honeybee nodes`"));
            }
            for s in &serials {
                shared.revocations.revoke_serial(*s);
            }
            shared.revocations.revoke_node(node.clone());
            let was_online = shared.registry.close(&node, close::REVOKED, "revoked");
            // Every other core cuts it off too, wherever the node is connected.
            if let Some(c) = &shared.cluster {
                c.revoked(&node).await;
            }
            shared.audit(
                actor,
                "node.revoke",
                "ok",
                Some(remote.into()),
                &format!(
                    "node={node} serials={} was_online={was_online}",
                    serials.len()
                ),
            );
            R::Done
        }
        AdminRequest::GetNodeConfig { node } => match shared.store.get_node(&node).await {
            Ok(Some(n)) => R::NodeConfig(n.config),
            Ok(None) => R::Error(format!("no node {node}; see `honeybee nodes`")),
            Err(e) => err(&e),
        },
        AdminRequest::SetNodeConfig { node, config } => {
            if let Err(e) = config.validate() {
                return err(&e);
            }
            let _order = config_order(&node).lock().await;
            match shared.store.set_node_config(&node, &config).await {
                Ok(true) => {}
                Ok(false) => return R::Error(format!("no node {node}; see `honeybee nodes`")),
                Err(e) => return err(&e),
            }
            let mut pushed = shared.registry.send(&node, CoreMsg::Config(config)).is_ok();
            if !pushed && let Some(c) = &shared.cluster {
                pushed = c.config_changed(&node).await;
            }
            shared.audit(
                actor,
                "node.config",
                "ok",
                Some(remote.into()),
                &format!("node={node} pushed_live={pushed}"),
            );
            R::Done
        }
        AdminRequest::SendCommand { node, command } => match &shared.cluster {
            // Connected to another core: through that core (see `cluster/`).
            Some(c) if !shared.registry.is_online(&node) => {
                let wait = match shared.cfg.timing.command_timeout {
                    t if t.is_zero() => crate::registry::COMMAND_TIMEOUT,
                    t => t,
                };
                match c.command(&node, &command, wait).await {
                    Ok(r) => R::CommandResult(r),
                    Err(e) => R::Error(e),
                }
            }
            _ => match shared.registry.command(&node, command).await {
                Ok(r) => R::CommandResult(r),
                Err(e) => err(&e),
            },
        },
        AdminRequest::Audit { limit } => {
            match shared.store.list_audit(limit.clamp(1, 10_000)).await {
                Ok(a) => R::Audit(a),
                Err(e) => err(&e),
            }
        }
        AdminRequest::CreateToken(spec) => match shared.create_token(&spec, actor).await {
            Ok((id, token)) => R::Token { id, token },
            Err(e) => R::Error(e),
        },
        AdminRequest::ListTokens => match shared.store.list_tokens().await {
            Ok(t) => R::Tokens(t),
            Err(e) => err(&e),
        },
        AdminRequest::RevokeToken { id } => match shared.store.revoke_token(id).await {
            Ok(true) => {
                shared.audit(
                    actor,
                    "token.revoke",
                    "ok",
                    Some(remote.into()),
                    &format!("id={id}"),
                );
                R::Done
            }
            Ok(false) => R::Error(format!("no token {id}; see `honeybee token list`")),
            Err(e) => err(&e),
        },
        AdminRequest::ListCaptures { limit } => {
            match shared.store.list_captures(limit.clamp(1, 10_000)).await {
                Ok(list) => R::Captures(list.into_iter().map(capture_info).collect()),
                Err(e) => err(&e),
            }
        }
        AdminRequest::GetCapture {
            sha256,
            offset,
            max_len,
        } => get_capture(shared, sha256, offset, max_len).await,
        AdminRequest::AssignRelay { node, relay } => {
            assign_relay(node, relay, actor, remote, shared).await
        }
        AdminRequest::ListAlerts { limit } => match shared.store.list_alerts(limit).await {
            Ok(a) => R::Alerts(a),
            Err(e) => err(&e),
        },
        AdminRequest::AckAlert { id } => {
            match shared.store.ack_alert(id, actor, crate::now_ms()).await {
                Ok(true) => {
                    shared.audit(
                        actor,
                        "alert.ack",
                        "ok",
                        Some(remote.into()),
                        &format!("id={id}"),
                    );
                    R::Done
                }
                Ok(false) => R::Error(format!(
                    "no unacknowledged alert {id}; see `honeybee alerts`"
                )),
                Err(e) => err(&e),
            }
        }
        AdminRequest::CreateModuleCredential { name, permissions } => {
            match crate::modules::session::create_credential(shared, &name, &permissions, actor)
                .await
            {
                Ok(credential) => R::ModuleCredential { credential },
                Err(e) => R::Error(e),
            }
        }
        AdminRequest::LoadModule(spec) => {
            match shared.manager.load(spec, shared.clone(), actor).await {
                Ok(()) => R::Done,
                Err(e) => R::Error(e),
            }
        }
        AdminRequest::UnloadModule { name } => {
            match shared.manager.unload(&name, shared, actor).await {
                Ok(()) => R::Done,
                Err(e) => R::Error(e),
            }
        }
        AdminRequest::RevokeModule { name } => revoke_module(&name, actor, remote, shared).await,
        AdminRequest::ListModules => R::Modules(crate::modules::list(shared)),
        AdminRequest::IssueModuleCert {
            name,
            permissions,
            csr_der,
        } => match crate::modules::session::issue_module_cert(
            shared,
            &name,
            &permissions,
            &csr_der,
            actor,
        )
        .await
        {
            Ok((cert_der, not_after_ms)) => R::ModuleCert {
                cert_der,
                ca_der: shared.ca.cert_der().to_vec(),
                not_after_ms,
            },
            Err(e) => R::Error(e),
        },
        AdminRequest::SearchEvents(q) => {
            let events = match shared.store.search_events(&q).await {
                Ok(ev) => ev,
                Err(e) => return err(&e),
            };
            let full = events.len() as u32 >= crate::store::effective_limit(q.limit);
            let next = events
                .last()
                .filter(|_| full)
                .map(crate::store::Store::cursor_after);
            match shared.store.attach_enrichments(events).await {
                Ok(events) => R::EventPage { events, next },
                Err(e) => err(&e),
            }
        }
        AdminRequest::GetEvent { node, seq } => match shared.store.get_event(&node, seq).await {
            Ok(Some(ev)) => match shared.store.attach_enrichments(vec![ev]).await {
                Ok(ev) => R::Events(ev),
                Err(e) => err(&e),
            },
            Ok(None) => R::Error(format!("no event {seq} from node {node}")),
            Err(e) => err(&e),
        },
        AdminRequest::Stats(q) => match shared.store.stats(&q).await {
            Ok(s) => R::Stats(s),
            Err(e) => err(&e),
        },
        AdminRequest::IssueDashboardCert { name, csr_der } => {
            match issue_dashboard_cert(shared, &name, &csr_der, actor, remote) {
                Ok((cert_der, not_after_ms)) => R::ModuleCert {
                    cert_der,
                    ca_der: shared.ca.cert_der().to_vec(),
                    not_after_ms,
                },
                Err(e) => R::Error(e),
            }
        }
        AdminRequest::CheckRealism { node } => {
            crate::realism::check(shared, &node, actor, remote).await
        }
        AdminRequest::GetRealism { node } => crate::realism::latest(shared, &node),
        AdminRequest::Load => R::Load(crate::metrics::load(shared)),
        AdminRequest::UpgradeNodes {
            node,
            version,
            sha256,
        } => crate::upgrade::start(shared, node, version, sha256, actor).await,
        AdminRequest::ListDevices => match list_devices(shared).await {
            Ok(d) => R::Devices(d),
            Err(e) => err(&e),
        },
        AdminRequest::UpgradeInfo => crate::upgrade::info(shared),
        AdminRequest::ListCores => match &shared.cluster {
            Some(c) => match c.list(shared).await {
                Ok(cores) => R::Cores(cores),
                Err(e) => err(&e),
            },
            None => R::Cores(vec![{
                let load = crate::metrics::load(shared);
                honeybee_proto::admin::ClusterCoreInfo {
                    id: "standalone".into(),
                    listen: shared.cfg.listen.to_string(),
                    advertise: shared.cfg.advertise.clone(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    started_ms: crate::now_ms() - shared.started.elapsed().as_millis() as i64,
                    heartbeat_age_ms: 0,
                    nodes: shared.registry.online_count() as u64,
                    this_core: true,
                    connections: load.connections,
                    handshakes_per_s: load.handshakes_per_s,
                    ingest_events_per_s: load.ingest_events_per_s,
                    modules: load.module_queues.len() as u64,
                    module_queued: load.module_queues.iter().map(|(_, d)| d).sum(),
                }
            }]),
        },
        _ => R::Error("request not supported by this core".into()),
    }
}

/// Signs the dashboard backend's CSR: role `dashboard`, the admin certificates' lifetime.
fn issue_dashboard_cert(
    shared: &Shared,
    name: &str,
    csr_der: &[u8],
    actor: &str,
    remote: &str,
) -> Result<(Vec<u8>, i64), String> {
    let id = NodeId::new(name).map_err(|e| format!("dashboard name: {e}"))?;
    let issued = shared
        .ca
        .sign_csr(
            csr_der,
            &honeybee_pki::ca::IssueRequest {
                role: Role::Dashboard,
                id,
                lifetime: shared.cfg.admin_cert_lifetime,
            },
        )
        .map_err(|e| format!("certificate request refused: {e}"))?;
    shared.audit(
        actor,
        "dashboard.cert",
        "ok",
        Some(remote.into()),
        &format!("dashboard={name} serial={}", issued.serial),
    );
    Ok((issued.der, issued.not_after_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin_client::AdminClient;

    async fn core() -> (tempfile::TempDir, crate::Core, AdminClient) {
        let (dir, core) = crate::test_core("admin.test").await;
        let client = AdminClient::connect(dir.path()).await.unwrap();
        (dir, core, client)
    }

    /// Streams whose request never comes (a client that stalls, or slow queries) hold
    /// half the connection's streams: its other requests are still answered (one at a
    /// time, as before, each stalled stream held up all of them until it timed out).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_request_does_not_hold_up_the_connections_others() {
        let (_dir, core, client) = core().await;
        let limit = crate::endpoint::AlpnLimits::ADMIN.bidi_streams as usize;
        let mut stalled = Vec::new();
        for _ in 0..limit / 2 {
            let (mut send, recv) = client.connection().open_bi().await.unwrap();
            // A stream reaches the core with its first byte: half a length prefix.
            send.write_all(&[0]).await.unwrap();
            stalled.push((send, recv));
        }
        for i in 0..3 {
            let r = client.request(&AdminRequest::Status).await;
            assert!(
                matches!(r, Ok(AdminResponse::Status(_))),
                "request {i}: {r:?}"
            );
        }
        drop(stalled);
        core.shutdown().await;
    }

    /// Many more requests at once than a connection may run side by side: the extra ones
    /// wait for a stream (the bound), and every one is answered.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn more_requests_than_the_bound_at_once_are_all_answered() {
        let (_dir, core, client) = core().await;
        let client = Arc::new(client);
        let mut all = tokio::task::JoinSet::new();
        for _ in 0..4 * crate::endpoint::AlpnLimits::ADMIN.bidi_streams {
            let client = client.clone();
            all.spawn(async move { client.request(&AdminRequest::ListNodes).await });
        }
        let mut answered = 0;
        while let Some(r) = all.join_next().await {
            assert!(matches!(r.unwrap(), Ok(AdminResponse::Nodes(_))));
            answered += 1;
        }
        assert_eq!(answered, 64);
        core.shutdown().await;
    }
}
