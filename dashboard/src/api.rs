//! The REST API (see `API.md`): every route in [`routes`], which both builds the router
//! and is checked against the OpenAPI document by a test.

use crate::auth::{AdminOnly, Authed, COOKIE};
use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, unexpected};
use crate::users::{UserRole, UsersError, now_ms};
use crate::views;
use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use honeybee_proto::admin::{
    AdminRequest as Req, AdminResponse as Resp, EventCursor, EventSearch, ModuleSpec, Stats,
    StatsQuery, StoredEvent, TokenSpec,
};
use honeybee_proto::event::EventKind;
use honeybee_proto::{NodeId, Role, SessionId};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// One route: its method and path as the OpenAPI document names them.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub handler: MethodRouter<AppState>,
}

fn r(method: &'static str, path: &'static str, handler: MethodRouter<AppState>) -> Route {
    Route {
        method,
        path,
        handler,
    }
}

/// Every API route. The router is built from this list alone.
pub fn routes() -> Vec<Route> {
    vec![
        r("post", "/api/login", post(login)),
        r("post", "/api/logout", post(logout)),
        r("get", "/api/me", get(me)),
        r("get", "/api/overview", get(overview)),
        r("get", "/api/nodes", get(nodes)),
        r("get", "/api/devices", get(devices)),
        r("get", "/api/nodes/{id}", get(node)),
        r("get", "/api/nodes/{id}/health", get(node_health)),
        r("put", "/api/nodes/{id}/config", put(node_config)),
        r("post", "/api/nodes/{id}/revoke", post(node_revoke)),
        r("get", "/api/nodes/{id}/check", get(crate::realism::latest)),
        r("post", "/api/nodes/{id}/check", post(crate::realism::run)),
        r("get", "/api/upgrades", get(crate::upgrade::list)),
        r("post", "/api/upgrades", post(crate::upgrade::start)),
        r("get", "/api/tokens", get(tokens)),
        r("post", "/api/tokens", post(token_create)),
        r("get", "/api/events", get(events)),
        r("get", "/api/events/{node}/{seq}", get(event)),
        r("get", "/api/sessions/{id}", get(session)),
        r("get", "/api/captures", get(captures)),
        r("get", "/api/captures/{sha256}", get(capture)),
        r("get", "/api/alerts", get(alerts)),
        r("get", "/api/alerts/count", get(alert_count)),
        r("post", "/api/alerts/{id}/ack", post(alert_ack)),
        r("get", "/api/incidents", get(crate::incidents::list)),
        r("get", "/api/incidents/{id}", get(crate::incidents::one)),
        r("post", "/api/incidents/ack", post(crate::incidents::ack)),
        r("get", "/api/ignore", get(crate::incidents::ignores)),
        r("get", "/api/alert-rules", get(crate::alert_rules::get)),
        r("put", "/api/alert-rules", put(crate::alert_rules::put)),
        r("post", "/api/ignore", post(crate::incidents::ignore_add)),
        r(
            "delete",
            "/api/ignore/{id}",
            delete(crate::incidents::ignore_delete),
        ),
        r("get", "/api/analytics", get(analytics)),
        r("get", "/api/modules", get(modules)),
        r("post", "/api/modules", post(module_load)),
        r("delete", "/api/modules/{name}", delete(module_unload)),
        r("get", "/api/reports/export", get(report_export)),
        r("get", "/api/reports/summary", get(report_summary)),
        r("get", "/api/users", get(users)),
        r("post", "/api/users", post(user_create)),
        r("delete", "/api/users/{name}", delete(user_delete)),
        r("get", "/api/audit", get(crate::audit::audit)),
        r("get", "/api/openapi.json", get(openapi)),
        r("get", "/api/ws", get(crate::live::ws)),
    ]
}

// ------------------------------------------------------------------ helpers

fn node_id(s: &str) -> ApiResult<NodeId> {
    NodeId::new(s).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn labels_from(v: Option<BTreeMap<String, String>>) -> Vec<(String, String)> {
    v.unwrap_or_default().into_iter().collect()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, UsersError> + Send + 'static,
) -> ApiResult<T> {
    from_blocking(tokio::task::spawn_blocking(f).await)
}

/// The answer for the result of account work done on a blocking thread.
fn from_blocking<T>(r: Result<Result<T, UsersError>, tokio::task::JoinError>) -> ApiResult<T> {
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(UsersError::Invalid(m))) => Err(ApiError::bad_request(m)),
        Ok(Err(e @ UsersError::Exists(_))) => {
            Err(ApiError::new(StatusCode::CONFLICT, e.to_string()))
        }
        Ok(Err(e)) => Err(ApiError::internal(e)),
        Err(e) => Err(ApiError::internal(e)),
    }
}

fn cookie(value: &str, max_age_s: i64, tls: bool) -> HeaderValue {
    let secure = if tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("hb_session=; Max-Age=0"))
}

// ------------------------------------------------------------------ sign-in

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

/// One sign-in attempt counted as in flight by the limiter (see `ratelimit`). It ends
/// exactly once: with its outcome, or, if the request goes away before the outcome is known
/// (the client hung up while its password was being checked), as a failure, since the
/// guess may have been evaluated.
struct Attempt {
    app: AppState,
    source: std::net::IpAddr,
    user: String,
    done: bool,
}

impl Attempt {
    fn begin(app: &AppState, source: std::net::IpAddr, user: &str) -> Result<Attempt, u64> {
        app.limiter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .begin(source, user, app.started.elapsed())?;
        Ok(Attempt {
            app: app.clone(),
            source,
            user: user.to_owned(),
            done: false,
        })
    }

    fn finish(mut self, failed: bool) {
        self.end(failed);
    }

    fn end(&mut self, failed: bool) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        self.app
            .limiter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .finish(self.source, &self.user, self.app.started.elapsed(), failed);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.end(true);
    }
}

/// 429 when every password-hash slot and queue place is taken: nothing was checked.
fn hashing_busy() -> ApiError {
    ApiError {
        status: StatusCode::TOO_MANY_REQUESTS,
        message: "too many sign-ins at once; try again in a moment".into(),
        retry_after_s: Some(1),
        position: None,
        problems: None,
    }
}

async fn login(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<LoginBody>,
) -> ApiResult<Response> {
    let user = body.username.chars().take(64).collect::<String>();
    // Counted before the hash, so parallel attempts cannot all pass the check.
    let attempt = match Attempt::begin(&app, peer.ip(), &user) {
        Ok(a) => a,
        Err(wait) => {
            tracing::warn!(source = %peer.ip(), user = %user, "sign-in refused: rate limited");
            return Err(ApiError::rate_limited(wait));
        }
    };
    let Some(admitted) = app.hashes.admit() else {
        // Nothing evaluated: the place is given back without counting a failure.
        attempt.finish(false);
        tracing::warn!(source = %peer.ip(), user = %user, "sign-in refused: hashing busy");
        return Err(hashing_busy());
    };
    let users = app.users.clone();
    let (u, p) = (user.clone(), body.password);
    let role = from_blocking(app.hashes.run(admitted, move || users.verify(&u, &p)).await)?;
    attempt.finish(role.is_none());
    let Some(role) = role else {
        tracing::info!(source = %peer.ip(), user = %user, "sign-in failed");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong user name or password",
        ));
    };
    let users = app.users.clone();
    let u = user.clone();
    let (token, csrf) = blocking(move || users.create_session(&u)).await?;
    tracing::info!(source = %peer.ip(), user = %user, "signed in");
    let mut resp =
        Json(json!({"username": user, "role": role.as_str(), "csrf": csrf})).into_response();
    let max_age = crate::users::SESSION_LIFETIME.as_secs() as i64;
    resp.headers_mut()
        .insert(header::SET_COOKIE, cookie(&token, max_age, app.tls));
    Ok(resp)
}

async fn logout(State(app): State<AppState>, a: Authed) -> ApiResult<Response> {
    let users = app.users.clone();
    let token = a.token.clone();
    blocking(move || users.end_session(&token)).await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, cookie("", 0, app.tls));
    Ok(resp)
}

async fn me(a: Authed) -> Json<Value> {
    Json(
        json!({"username": a.session.username, "role": a.session.role.as_str(), "csrf": a.session.csrf}),
    )
}

// ------------------------------------------------------------------ overview & nodes

async fn stats(app: &AppState, user: &str, q: StatsQuery) -> ApiResult<Stats> {
    match app.ask(user, Req::Stats(q)).await? {
        Resp::Stats(s) => Ok(s),
        _ => Err(unexpected()),
    }
}

async fn list_alerts(app: &AppState, user: &str, limit: u32) -> ApiResult<Vec<Value>> {
    match app.ask(user, Req::ListAlerts { limit }).await? {
        Resp::Alerts(a) => Ok(a.iter().map(views::alert).collect()),
        _ => Err(unexpected()),
    }
}

const MINUTE: i64 = 60_000;
const DAY: i64 = 24 * 3600 * 1000;

async fn overview(State(app): State<AppState>, a: Authed) -> ApiResult<Json<Value>> {
    let user = a.user();
    let Resp::Status(st) = app.ask(user, Req::Status).await? else {
        return Err(unexpected());
    };
    let now = now_ms();
    // Whole minutes, so a bucket does not shift under the chart between polls.
    let end = (now / MINUTE + 1) * MINUTE;
    let start = end - 60 * MINUTE;
    let minutes = stats(
        &app,
        user,
        StatsQuery {
            since_ms: start,
            until_ms: end,
            bucket_ms: MINUTE,
            top: 0,
        },
    )
    .await?;
    let per_minute: BTreeMap<i64, u64> = minutes.total.into_iter().collect();
    let events_per_minute: Vec<Value> = (0..60)
        .map(|i| {
            let t = start + i * MINUTE;
            json!({"t": t, "count": per_minute.get(&t).copied().unwrap_or(0)})
        })
        .collect();
    let day = stats(
        &app,
        user,
        StatsQuery {
            since_ms: now - DAY,
            until_ms: now + 1,
            bucket_ms: DAY,
            top: 10,
        },
    )
    .await?;
    let alerts = list_alerts(&app, user, 10).await?;
    let (alerts_total, alerts_open) = alert_counts(&app, user).await?;
    let (incidents_open, incidents_severe) = app.incidents.open_counts().unwrap_or((0, 0));
    let health = assessed_health(&app, user).await?;
    let degraded = health
        .iter()
        .filter(|h| h.state == honeybee_proto::admin::NodeState::Degraded)
        .count();
    Ok(Json(json!({
        "nodes_online": st.nodes_online,
        "nodes_total": st.nodes_total,
        "nodes_degraded": degraded,
        "alerts_total": alerts_total,
        "alerts_open": alerts_open,
        "incidents_open": incidents_open,
        "incidents_open_severe": incidents_severe,
        "events_total": st.events_total,
        "events_per_minute": events_per_minute,
        "top_sources": day.top_sources,
        "top_credentials": day.top_credentials,
        "top_services": day.top_services,
        "geo": day.geo,
        "alerts": alerts,
    })))
}

async fn list_nodes(app: &AppState, user: &str) -> ApiResult<Vec<honeybee_proto::admin::NodeInfo>> {
    match app.ask(user, Req::ListNodes).await? {
        Resp::Nodes(n) => Ok(n),
        _ => Err(unexpected()),
    }
}

/// The core's health assessment of every node (see `honeybee-core`'s `health.rs`).
async fn assessed_health(
    app: &AppState,
    user: &str,
) -> ApiResult<Vec<honeybee_proto::admin::NodeHealthInfo>> {
    match app.ask(user, Req::NodeHealth).await? {
        Resp::NodeHealth(h) => Ok(h),
        _ => Err(unexpected()),
    }
}

/// (all alerts, unacknowledged alerts), counted by the core over the whole table.
async fn alert_counts(app: &AppState, user: &str) -> ApiResult<(u64, u64)> {
    match app.ask(user, Req::AlertCounts).await? {
        Resp::AlertCounts { total, open } => Ok((total, open)),
        _ => Err(unexpected()),
    }
}

async fn nodes(State(app): State<AppState>, a: Authed) -> ApiResult<Json<Value>> {
    let n = list_nodes(&app, a.user()).await?;
    let h = assessed_health(&app, a.user()).await?;
    Ok(Json(Value::Array(
        n.iter().map(|n| views::node_with_health(n, &h)).collect(),
    )))
}

/// Devices reported through aggregator services (printers, cameras, NAS), each under the
/// node that aggregates it; an older core without that answer has none.
async fn devices(State(app): State<AppState>, a: Authed) -> ApiResult<Json<Value>> {
    let devices = match app.ask(a.user(), Req::ListDevices).await? {
        Resp::Devices(d) => d,
        _ => Vec::new(),
    };
    Ok(Json(Value::Array(
        devices
            .iter()
            .map(|d| {
                json!({"node": d.node.as_str(), "service": d.service, "name": d.name,
                       "address": d.address, "kind": d.kind, "last_seen_ms": d.last_seen_ms,
                       "events": d.events})
            })
            .collect(),
    )))
}

async fn node(
    State(app): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = node_id(&id)?;
    let all = list_nodes(&app, a.user()).await?;
    let n = all
        .iter()
        .find(|n| n.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no node {id}")))?;
    let Resp::NodeConfig(cfg) = app
        .ask(a.user(), Req::GetNodeConfig { node: id.clone() })
        .await?
    else {
        return Err(unexpected());
    };
    let status: Vec<_> = n
        .health
        .as_ref()
        .map(|h| h.services.clone())
        .unwrap_or_default();
    let services: Vec<Value> = cfg
        .services
        .iter()
        .map(|s| {
            let live = status.iter().find(|st| st.name == s.name);
            json!({
                "name": s.name,
                "kind": s.kind.name(),
                "listen": live.map(|l| l.listen.clone()).unwrap_or_else(|| s.listen.to_string()),
                "enabled": s.enabled,
                "running": live.is_some_and(|l| l.running),
                "error": live.and_then(|l| l.error.clone()),
                "active_sessions": live.map(|l| l.active_sessions).unwrap_or(0),
            })
        })
        .collect();
    let config_toml = honeybee_core::config::services_to_toml(&cfg).map_err(ApiError::internal)?;
    Ok(Json(
        json!({"node": views::node_with_health(n, &assessed_health(&app, a.user()).await?), "services": services, "config_toml": config_toml}),
    ))
}

async fn node_health(
    State(app): State<AppState>,
    _a: Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = node_id(&id)?;
    Ok(Json(json!(app.health_of(id.as_str()))))
}

#[derive(Deserialize)]
struct ConfigBody {
    config_toml: String,
}

/// Longest service configuration accepted from the editor.
const MAX_CONFIG_TOML: usize = 256 * 1024;

async fn node_config(
    State(app): State<AppState>,
    AdminOnly(a): AdminOnly,
    Path(id): Path<String>,
    Json(body): Json<ConfigBody>,
) -> ApiResult<Json<Value>> {
    let id = node_id(&id)?;
    if body.config_toml.len() > MAX_CONFIG_TOML {
        return Err(ApiError::bad_request(
            "the configuration is larger than 256 KiB",
        ));
    }
    let cfg = honeybee_core::config::services_from_toml(&body.config_toml)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    app.ask(
        a.user(),
        Req::SetNodeConfig {
            node: id,
            config: cfg.clone(),
        },
    )
    .await?;
    let config_toml = honeybee_core::config::services_to_toml(&cfg).map_err(ApiError::internal)?;
    Ok(Json(json!({"config_toml": config_toml})))
}

async fn node_revoke(
    State(app): State<AppState>,
    AdminOnly(a): AdminOnly,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = node_id(&id)?;
    app.ask(a.user(), Req::RevokeNode { node: id.clone() })
        .await?;
    Ok(Json(json!({"revoked": id.as_str()})))
}

// ------------------------------------------------------------------ tokens

async fn tokens(State(app): State<AppState>, a: Authed) -> ApiResult<Json<Value>> {
    let Resp::Tokens(t) = app.ask(a.user(), Req::ListTokens).await? else {
        return Err(unexpected());
    };
    Ok(Json(Value::Array(t.iter().map(views::token).collect())))
}

#[derive(Deserialize)]
struct TokenBody {
    name: String,
    #[serde(default = "agent")]
    role: String,
    #[serde(default = "fifteen_minutes")]
    ttl_s: u64,
    labels: Option<BTreeMap<String, String>>,
}

fn agent() -> String {
    "agent".into()
}
fn fifteen_minutes() -> u64 {
    900
}

async fn token_create(
    State(app): State<AppState>,
    AdminOnly(a): AdminOnly,
    Json(body): Json<TokenBody>,
) -> ApiResult<Json<Value>> {
    let role = match body.role.as_str() {
        "agent" => Role::Agent,
        "relay" => Role::Relay,
        other => {
            return Err(ApiError::bad_request(format!(
                "role {other:?}: tokens are for agent or relay nodes"
            )));
        }
    };
    let spec = TokenSpec {
        role,
        name: body.name,
        ttl_s: body.ttl_s,
        uses: 1,
        labels: labels_from(body.labels),
    };
    let Resp::Token { id, token } = app.ask(a.user(), Req::CreateToken(spec)).await? else {
        return Err(unexpected());
    };
    let dir = "./honeybee-agent-data";
    let command = format!(
        "honeybee agent enroll --token {token} --data-dir {dir} && honeybee agent run --data-dir {dir}"
    );
    // The one-line sensor install, when this dashboard serves the installer (HTTPS).
    let install_command = app
        .install
        .as_ref()
        .and_then(|i| i.command_line(&token).ok());
    Ok(Json(
        json!({"id": id.to_hex(), "token": token, "command": command, "install_command": install_command}),
    ))
}

// ------------------------------------------------------------------ events

#[derive(Deserialize, Default)]
struct EventsQuery {
    node: Option<String>,
    service: Option<String>,
    kind: Option<String>,
    src: Option<String>,
    q: Option<String>,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    limit: Option<u32>,
    before: Option<String>,
    /// The search language (`query.rs`): fields, AND/OR/NOT, parentheses, CIDR.
    query: Option<String>,
}

/// Most events one page carries.
const MAX_PAGE: u32 = 500;
/// Most events one query page examines (in pages of [`MAX_PAGE`] from the core) when the
/// query has terms the core cannot filter; the answer then says how far it looked.
const QUERY_SCAN: usize = 10_000;

fn cursor_to_string(c: &EventCursor) -> String {
    format!("{}.{}.{}", c.time_ms, c.seq, c.node)
}

fn cursor_from_str(s: &str) -> ApiResult<EventCursor> {
    let bad = || ApiError::bad_request("before: not a cursor from a previous page's next");
    let mut it = s.splitn(3, '.');
    let time_ms = it.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
    let seq = it.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
    let node = it
        .next()
        .and_then(|n| NodeId::new(n).ok())
        .ok_or_else(bad)?;
    Ok(EventCursor { time_ms, node, seq })
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

async fn events(
    State(app): State<AppState>,
    a: Authed,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Json<Value>> {
    let query = non_empty(q.query.clone())
        .map(|t| crate::query::parse(&t))
        .transpose()
        .map_err(ApiError::bad_query)?;
    let lifted = query.as_ref().map(|x| x.core_filters()).unwrap_or_default();
    let search = EventSearch {
        node: non_empty(q.node)
            .or(lifted.node)
            .map(|n| node_id(&n))
            .transpose()?,
        service: non_empty(q.service).or(lifted.service),
        kind: non_empty(q.kind).or(lifted.kind),
        src: non_empty(q.src).or(lifted.src),
        text: non_empty(q.q).or(lifted.text),
        session: None,
        since_ms: q.since_ms,
        until_ms: q.until_ms,
        before: non_empty(q.before)
            .map(|c| cursor_from_str(&c))
            .transpose()?,
        limit: q.limit.unwrap_or(100).clamp(1, MAX_PAGE),
    };
    // The total is of every page, so it is counted with the first page only.
    let total = match search.before {
        None => Some(count_events(&app, a.user(), &search).await?),
        Some(_) => None,
    };
    let exact = query.as_ref().is_none_or(|q| q.fully_lifted());
    let mut page = match query {
        Some(query) => events_by_query(&app, a.user(), search, &query).await?,
        None => {
            let Resp::EventPage { events, next } =
                app.ask(a.user(), Req::SearchEvents(search)).await?
            else {
                return Err(unexpected());
            };
            json!({
                "events": events.iter().map(views::event).collect::<Vec<_>>(),
                "next": next.as_ref().map(cursor_to_string),
            })
        }
    };
    if let (Some((count, capped)), Value::Object(o)) = (total, &mut page) {
        o.insert("total".into(), count.into());
        // `at_least`: the count stopped at the core's cap. `upper_bound`: the query has
        // terms the core cannot count (NOT, OR, other fields), so fewer may match.
        o.insert("total_capped".into(), capped.into());
        o.insert("total_exact".into(), (exact && !capped).into());
    }
    Ok(Json(page))
}

/// How many events match `search` (every page), as the core counts them.
async fn count_events(app: &AppState, user: &str, search: &EventSearch) -> ApiResult<(u64, bool)> {
    match app.ask(user, Req::CountEvents(search.clone())).await? {
        Resp::EventCount { count, capped } => Ok((count, capped)),
        _ => Err(unexpected()),
    }
}

/// Events matching a parsed query, newest first: the core filters what it can (`search`
/// carries the lifted filters), this checks every event it returns against the whole
/// query, page after page, until the page is full or [`QUERY_SCAN`] events were examined.
/// `next` continues after the last event examined (or the last one answered).
async fn events_by_query(
    app: &AppState,
    user: &str,
    mut search: EventSearch,
    query: &crate::query::Query,
) -> ApiResult<Value> {
    let want = search.limit as usize;
    search.limit = MAX_PAGE;
    let mut found = Vec::new();
    let mut scanned = 0usize;
    let next = loop {
        let Resp::EventPage { events, next } =
            app.ask(user, Req::SearchEvents(search.clone())).await?
        else {
            return Err(unexpected());
        };
        let mut stop = None;
        for (i, e) in events.iter().enumerate() {
            scanned += 1;
            let doc = views::event(e);
            let text = doc.to_string().to_lowercase();
            if query.matches(&doc, &text) {
                found.push(doc);
            }
            if found.len() >= want || scanned >= QUERY_SCAN {
                stop = Some(i);
                break;
            }
        }
        match (stop, next) {
            (Some(i), next) => {
                let more = i + 1 < events.len() || next.is_some();
                break more.then(|| EventCursor {
                    time_ms: events[i].event.time_ms,
                    node: events[i].node.clone(),
                    seq: events[i].event.seq,
                });
            }
            (None, Some(c)) => search.before = Some(c),
            (None, None) => break None,
        }
    };
    let capped = scanned >= QUERY_SCAN && found.len() < want;
    Ok(json!({
        "events": found,
        "next": next.as_ref().map(cursor_to_string),
        "query": query.to_json(),
        "scanned": scanned,
        "scan_capped": capped,
    }))
}

async fn event(
    State(app): State<AppState>,
    a: Authed,
    Path((node, seq)): Path<(String, u64)>,
) -> ApiResult<Json<Value>> {
    let node = node_id(&node)?;
    let Resp::Events(ev) = app.ask(a.user(), Req::GetEvent { node, seq }).await? else {
        return Err(unexpected());
    };
    let e = ev
        .first()
        .ok_or_else(|| ApiError::not_found("no such event"))?;
    Ok(Json(views::event(e)))
}

/// Every event of one attacker session, oldest first.
async fn session_events(app: &AppState, user: &str, id: SessionId) -> ApiResult<Vec<StoredEvent>> {
    let mut all = Vec::new();
    let mut before = None;
    // A session is one TCP connection; its events are few, but bound the walk anyway.
    for _ in 0..20 {
        let q = EventSearch {
            session: Some(id),
            before: before.take(),
            limit: MAX_PAGE,
            ..Default::default()
        };
        let Resp::EventPage { events, next } = app.ask(user, Req::SearchEvents(q)).await? else {
            return Err(unexpected());
        };
        all.extend(events);
        match next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    all.reverse();
    Ok(all)
}

async fn session(
    State(app): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = SessionId::from_hex(&id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let events = session_events(&app, a.user(), id).await?;
    if events.is_empty() {
        return Err(ApiError::not_found(format!("no events for session {id}")));
    }
    let transcript = events.iter().rev().find_map(|e| match &e.event.kind {
        EventKind::Capture {
            kind, sha256, size, ..
        } if kind == "transcript" => Some(json!({"sha256": sha256, "size": size})),
        _ => None,
    });
    Ok(Json(json!({
        "events": events.iter().map(views::event).collect::<Vec<_>>(),
        "transcript": transcript,
    })))
}

// ------------------------------------------------------------------ captures

#[derive(Deserialize)]
struct LimitQuery {
    limit: Option<u32>,
}

async fn captures(
    State(app): State<AppState>,
    a: Authed,
    Query(q): Query<LimitQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let Resp::Captures(c) = app.ask(a.user(), Req::ListCaptures { limit }).await? else {
        return Err(unexpected());
    };
    Ok(Json(Value::Array(c.iter().map(views::capture).collect())))
}

/// Bytes asked of the core per request while streaming a capture.
const CAPTURE_CHUNK: u32 = 1024 * 1024;

async fn capture(
    State(app): State<AppState>,
    a: Authed,
    Path(sha): Path<String>,
) -> ApiResult<Response> {
    let mut sha256 = [0u8; 32];
    hex::decode_to_slice(&sha, &mut sha256)
        .map_err(|_| ApiError::bad_request("a capture is named by 64 hex digits of SHA-256"))?;
    let user = a.user().to_owned();
    let first = app
        .ask(
            &user,
            Req::GetCapture {
                sha256,
                offset: 0,
                max_len: CAPTURE_CHUNK,
            },
        )
        .await?;
    let Resp::CaptureChunk { info, data, .. } = first else {
        return Err(unexpected());
    };
    let size = info.size;
    // The rest streams chunk by chunk; the content is hashed on the way and a mismatch
    // breaks the download rather than delivering something else under this name.
    let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
    hasher.update(&data);
    let state = (app.clone(), user, data.len() as u64, hasher, Some(data));
    let stream =
        futures_util::stream::unfold(state, move |(app, user, offset, mut h, first)| async move {
            if let Some(d) = first {
                return Some((Ok(bytes_of(d)), (app, user, offset, h, None)));
            }
            if offset >= size {
                if h.clone().finish().as_ref() != sha256 {
                    let e = std::io::Error::other("capture content does not match its hash");
                    return Some((Err(e), (app, user, u64::MAX, h, None)));
                }
                return None;
            }
            if offset == u64::MAX {
                return None;
            }
            let req = Req::GetCapture {
                sha256,
                offset,
                max_len: CAPTURE_CHUNK,
            };
            match app.ask(&user, req).await {
                Ok(Resp::CaptureChunk { data, .. }) if !data.is_empty() => {
                    h.update(&data);
                    let next = offset + data.len() as u64;
                    Some((Ok(bytes_of(data)), (app, user, next, h, None)))
                }
                _ => {
                    let e = std::io::Error::other("the core stopped sending the capture");
                    Some((Err(e), (app, user, u64::MAX, h, None)))
                }
            }
        });
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&size.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}.bin\"",
        hex::encode(sha256)
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

fn bytes_of(v: Vec<u8>) -> axum::body::Bytes {
    axum::body::Bytes::from(v)
}

// ------------------------------------------------------------------ alerts

async fn alerts(
    State(app): State<AppState>,
    a: Authed,
    Query(q): Query<LimitQuery>,
) -> ApiResult<Json<Value>> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(Value::Array(
        list_alerts(&app, a.user(), limit).await?,
    )))
}

/// `{"total", "open"}` over every alert, not a page of them.
async fn alert_count(State(app): State<AppState>, a: Authed) -> ApiResult<Json<Value>> {
    let (total, open) = alert_counts(&app, a.user()).await?;
    Ok(Json(json!({"total": total, "open": open})))
}

async fn alert_ack(
    State(app): State<AppState>,
    AdminOnly(a): AdminOnly,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    app.ask(a.user(), Req::AckAlert { id }).await?;
    Ok(Json(json!({"acked": id})))
}

// ------------------------------------------------------------------ analytics & reports

#[derive(Deserialize)]
struct RangeQuery {
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    bucket_ms: Option<i64>,
}

/// Most nodes whose configuration is read to find the shell services.
const MAX_CONFIG_READS: usize = 200;

/// The names of the services that run a shell (kind `ssh` or `telnet`) on any node, and
/// the default names `ssh` and `telnet` (events stored before a node was reconfigured).
async fn shell_services(app: &AppState, user: &str) -> ApiResult<Vec<String>> {
    let mut names: std::collections::BTreeSet<String> =
        ["ssh".to_owned(), "telnet".to_owned()].into();
    for n in list_nodes(app, user).await?.iter().take(MAX_CONFIG_READS) {
        if n.role != Role::Agent {
            continue;
        }
        if let Ok(Resp::NodeConfig(cfg)) = app
            .ask(user, Req::GetNodeConfig { node: n.id.clone() })
            .await
        {
            for s in &cfg.services {
                if matches!(s.kind.name(), "ssh" | "telnet") {
                    names.insert(s.name.clone());
                }
            }
        }
    }
    Ok(names.into_iter().take(64).collect())
}

fn series_map(s: &[honeybee_proto::admin::Series]) -> Value {
    Value::Object(s.iter().map(|s| (s.key.clone(), json!(s.points))).collect())
}

async fn analytics(
    State(app): State<AppState>,
    a: Authed,
    Query(q): Query<RangeQuery>,
) -> ApiResult<Json<Value>> {
    let until = q.until_ms.unwrap_or_else(now_ms);
    let since = q.since_ms.unwrap_or(until - DAY);
    if until <= since {
        return Err(ApiError::bad_request("until_ms must be after since_ms"));
    }
    let bucket = q.bucket_ms.unwrap_or(((until - since) / 96).max(MINUTE));
    let s = stats(
        &app,
        a.user(),
        StatsQuery {
            since_ms: since,
            until_ms: until,
            bucket_ms: bucket,
            top: 20,
        },
    )
    .await?;
    let shells = shell_services(&app, a.user()).await?;
    let Resp::TopCommands(top_commands) = app
        .ask(
            a.user(),
            Req::TopCommands {
                since_ms: since,
                until_ms: until,
                services: shells.clone(),
                top: 20,
            },
        )
        .await?
    else {
        return Err(unexpected());
    };
    Ok(Json(json!({
        "since_ms": since,
        "until_ms": until,
        "bucket_ms": bucket,
        "by_service": series_map(&s.by_service),
        "by_node": series_map(&s.by_node),
        "geo": s.geo,
        "top_credentials": s.top_credentials,
        // Command lines typed into shells only: FTP verbs, HTTP requests and Redis/MySQL
        // commands are events of their own services, not what an attacker ran.
        "top_commands": top_commands,
        "shell_services": shells,
        "top_sources": s.top_sources,
        "by_kind": s.by_kind,
    })))
}

#[derive(Deserialize)]
struct ReportQuery {
    from: i64,
    to: i64,
    format: Option<String>,
}

/// Most events one export carries.
const MAX_EXPORT: usize = 100_000;

async fn report_export(
    State(app): State<AppState>,
    a: Authed,
    Query(q): Query<ReportQuery>,
) -> ApiResult<Response> {
    if q.to <= q.from {
        return Err(ApiError::bad_request("to must be after from"));
    }
    let format = q.format.as_deref().unwrap_or("json");
    if format != "json" && format != "csv" {
        return Err(ApiError::bad_request("format is csv or json"));
    }
    let mut all: Vec<StoredEvent> = Vec::new();
    let mut before = None;
    while all.len() < MAX_EXPORT {
        let s = EventSearch {
            since_ms: Some(q.from),
            until_ms: Some(q.to),
            before: before.take(),
            limit: MAX_PAGE,
            ..Default::default()
        };
        let Resp::EventPage { events, next } = app.ask(a.user(), Req::SearchEvents(s)).await?
        else {
            return Err(unexpected());
        };
        all.extend(events);
        match next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    all.truncate(MAX_EXPORT);
    all.reverse();
    let (body, ctype) = if format == "csv" {
        (crate::report::csv(&all), "text/csv; charset=utf-8")
    } else {
        let docs: Vec<Value> = all.iter().map(views::event).collect();
        (
            serde_json::to_string_pretty(&docs).map_err(ApiError::internal)?,
            "application/json",
        )
    };
    let name = format!(
        "honeybee-events-{}-{}.{format}",
        honeybee_core::json::rfc3339(q.from),
        honeybee_core::json::rfc3339(q.to)
    )
    .replace(':', "");
    let mut resp = Response::new(Body::from(body));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

async fn report_summary(
    State(app): State<AppState>,
    a: Authed,
    Query(q): Query<ReportQuery>,
) -> ApiResult<Json<Value>> {
    if q.to <= q.from {
        return Err(ApiError::bad_request("to must be after from"));
    }
    let s = stats(
        &app,
        a.user(),
        StatsQuery {
            since_ms: q.from,
            until_ms: q.to,
            bucket_ms: (q.to - q.from).max(1),
            top: 10,
        },
    )
    .await?;
    // Shell commands only, as on the Analytics page.
    let shells = shell_services(&app, a.user()).await?;
    let Resp::TopCommands(top_commands) = app
        .ask(
            a.user(),
            Req::TopCommands {
                since_ms: q.from,
                until_ms: q.to,
                services: shells,
                top: 10,
            },
        )
        .await?
    else {
        return Err(unexpected());
    };
    let Resp::Alerts(alerts) = app.ask(a.user(), Req::ListAlerts { limit: 1000 }).await? else {
        return Err(unexpected());
    };
    let alerts: Vec<Value> = alerts
        .iter()
        .filter(|al| al.time_ms >= q.from && al.time_ms < q.to)
        .map(views::alert)
        .collect();
    let by_service: Vec<Value> = s
        .by_service
        .iter()
        .map(|x| json!({"key": x.key, "count": x.points.iter().map(|p| p.1).sum::<u64>()}))
        .collect();
    Ok(Json(json!({
        "from": q.from,
        "to": q.to,
        "events_total": s.events_total,
        "by_service": by_service,
        "by_kind": s.by_kind,
        "top_sources": s.top_sources,
        "top_credentials": s.top_credentials,
        "top_commands": top_commands,
        "nodes": s.top_nodes,
        "alerts": alerts,
    })))
}

// ------------------------------------------------------------------ modules

/// The module connection the dashboard itself holds for its live feed.
pub const BUILTIN_MODULE: &str = "dashboard";

fn is_builtin(m: &honeybee_proto::admin::ModuleInfo) -> bool {
    m.name == BUILTIN_MODULE && !m.managed
}

async fn modules(State(app): State<AppState>, a: Authed) -> ApiResult<Json<Value>> {
    let Resp::Modules(m) = app.ask(a.user(), Req::ListModules).await? else {
        return Err(unexpected());
    };
    Ok(Json(Value::Array(
        m.iter()
            .map(|m| {
                let mut v = json!(m);
                if let Value::Object(o) = &mut v {
                    o.insert("builtin".into(), is_builtin(m).into());
                    // Crash-looping: restarted and not connected now.
                    o.insert(
                        "crash_looping".into(),
                        (m.managed && m.restarts > 0 && m.state != "connected").into(),
                    );
                }
                v
            })
            .collect(),
    )))
}

#[derive(Deserialize)]
struct ModuleBody {
    name: String,
    command: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    permissions: Vec<String>,
}

async fn module_load(
    State(app): State<AppState>,
    AdminOnly(a): AdminOnly,
    Json(b): Json<ModuleBody>,
) -> ApiResult<Json<Value>> {
    let spec = ModuleSpec {
        name: b.name.clone(),
        command: b.command,
        args: b.args,
        permissions: b.permissions,
    };
    app.ask(a.user(), Req::LoadModule(spec)).await?;
    Ok(Json(json!({"loaded": b.name})))
}

async fn module_unload(
    State(app): State<AppState>,
    AdminOnly(a): AdminOnly,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    if name == BUILTIN_MODULE {
        let Resp::Modules(m) = app.ask(a.user(), Req::ListModules).await? else {
            return Err(unexpected());
        };
        if !m.iter().any(|m| m.name == name && m.managed) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "the dashboard module is built in: it is this dashboard's own live feed and cannot be unloaded",
            ));
        }
    }
    app.ask(a.user(), Req::UnloadModule { name: name.clone() })
        .await?;
    Ok(Json(json!({"unloaded": name})))
}

// ------------------------------------------------------------------ users

async fn users(State(app): State<AppState>, AdminOnly(_): AdminOnly) -> ApiResult<Json<Value>> {
    let users = app.users.clone();
    let list = blocking(move || users.list_users()).await?;
    Ok(Json(json!(list)))
}

#[derive(Deserialize)]
struct UserBody {
    username: String,
    password: String,
    role: String,
}

async fn user_create(
    State(app): State<AppState>,
    AdminOnly(a): AdminOnly,
    Json(b): Json<UserBody>,
) -> ApiResult<Json<Value>> {
    let role =
        UserRole::parse(&b.role).ok_or_else(|| ApiError::bad_request("role is admin or viewer"))?;
    let users = app.users.clone();
    let name = b.username.clone();
    // Hashing the new password shares the sign-in bound on argon2 work.
    let admitted = app.hashes.admit().ok_or_else(hashing_busy)?;
    let password = b.password;
    from_blocking(
        app.hashes
            .run(admitted, move || users.create_user(&name, &password, role))
            .await,
    )?;
    tracing::info!(by = %a.user(), user = %b.username, role = role.as_str(), "dashboard user created");
    Ok(Json(json!({"username": b.username, "role": role.as_str()})))
}

async fn user_delete(
    State(app): State<AppState>,
    AdminOnly(a): AdminOnly,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    if name == a.user() {
        return Err(ApiError::bad_request(
            "you cannot delete yourself; sign in as another admin",
        ));
    }
    let users = app.users.clone();
    let n = name.clone();
    if !blocking(move || users.delete_user(&n)).await? {
        return Err(ApiError::not_found(format!("no user {name:?}")));
    }
    tracing::info!(by = %a.user(), user = %name, "dashboard user deleted");
    Ok(Json(json!({"deleted": name})))
}

// ------------------------------------------------------------------ the document

async fn openapi() -> Response {
    let mut r = Json(crate::openapi::document()).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// Unknown `/api/...` paths answer JSON, not the web app.
pub async fn api_not_found(headers: HeaderMap) -> ApiError {
    let _ = headers;
    ApiError::not_found("no such API endpoint; see /api/openapi.json")
}
