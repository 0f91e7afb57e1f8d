//! What every request handler shares: the core link, the accounts, the sign-in limiter,
//! the live feed and the node health history.

use crate::core_link::{CoreLink, LinkError};
use crate::error::ApiError;
use crate::ratelimit::{HashGate, LoginLimiter};
use crate::users::Users;
use axum::http::StatusCode;
use honeybee_proto::admin::{AdminRequest, AdminResponse};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Health samples kept per node (24 h at one report every 10 s).
pub const HEALTH_SAMPLES: usize = 8640;
/// Messages a slow WebSocket client may fall behind by before it is told it lost some.
pub const LIVE_BACKLOG: usize = 4096;

/// One health report of one node, as `/api/nodes/:id/health` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthSample {
    pub time_ms: i64,
    pub cpu_percent: f32,
    pub rss_bytes: u64,
    pub spool_events: u64,
    pub spool_dropped: u64,
    pub active_sessions: u64,
    pub uptime_s: u64,
}

pub struct App {
    pub core: CoreLink,
    pub users: Users,
    /// Alerts grouped into incidents, and the ignore list (`incidents.rs`).
    pub incidents: crate::incidents::Incidents,
    pub limiter: Mutex<LoginLimiter>,
    /// Bounds argon2 work (sign-in checks, new accounts) dashboard-wide.
    pub hashes: HashGate,
    /// Serialised WebSocket messages for every connected browser.
    pub live: broadcast::Sender<Arc<str>>,
    /// The newest event messages sent on `live`, with their store ids (at most
    /// `LIVE_BACKLOG`), so a browser that reconnects with `?last_id=` gets what it missed.
    /// Held while sending, so a new socket's snapshot and subscription agree.
    pub recent: Mutex<VecDeque<(i64, Arc<str>)>>,
    /// The store id the live feed started after (-1 before it first reached the core):
    /// what a reconnecting browser with an older id cannot get from `recent`.
    pub live_from: std::sync::atomic::AtomicI64,
    pub health: Mutex<HashMap<String, VecDeque<HealthSample>>>,
    /// Cookies get `Secure` when the dashboard serves HTTPS.
    pub tls: bool,
    pub started: std::time::Instant,
    /// What the sensor installer serves, when it does (`install.rs`).
    pub install: Option<Arc<crate::install::InstallInfo>>,
}

pub type AppState = Arc<App>;

impl App {
    /// One admin request for `user`, with the core's answer mapped onto HTTP statuses.
    pub async fn ask(&self, user: &str, req: AdminRequest) -> Result<AdminResponse, ApiError> {
        self.core.request(Some(user), req).await.map_err(link_error)
    }

    pub fn health_of(&self, node: &str) -> Vec<HealthSample> {
        let h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        h.get(node)
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn record_health(&self, node: &str, s: HealthSample) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let q = h.entry(node.to_owned()).or_default();
        if q.back().is_some_and(|last| last.time_ms >= s.time_ms) {
            return;
        }
        let horizon = s.time_ms - 24 * 3600 * 1000;
        while q.front().is_some_and(|f| f.time_ms < horizon) || q.len() >= HEALTH_SAMPLES {
            q.pop_front();
        }
        q.push_back(s);
    }

    /// Sends one message to every WebSocket client (none connected is fine).
    pub fn broadcast(&self, msg: &serde_json::Value) {
        let _ = self.live.send(Arc::from(msg.to_string()));
    }

    /// Sends one stored event (store id `id`) to every WebSocket client and keeps it for
    /// browsers that reconnect.
    pub fn broadcast_event(&self, id: i64, msg: &serde_json::Value) {
        let text: Arc<str> = Arc::from(msg.to_string());
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() >= LIVE_BACKLOG {
            recent.pop_front();
        }
        recent.push_back((id, text.clone()));
        let _ = self.live.send(text);
    }

    /// A new WebSocket's subscription, the kept events after `last_id` it should replay
    /// first, and the oldest id kept; taken under one lock so that every later event
    /// arrives on the subscription and none is in both.
    pub fn subscribe_live(&self, last_id: i64) -> LiveStart {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        LiveStart {
            rx: self.live.subscribe(),
            replay: recent
                .iter()
                .filter(|(id, _)| *id > last_id)
                .cloned()
                .collect(),
            oldest: recent.front().map(|(id, _)| *id),
        }
    }
}

/// See [`App::subscribe_live`].
pub struct LiveStart {
    pub rx: broadcast::Receiver<Arc<str>>,
    pub replay: Vec<(i64, Arc<str>)>,
    pub oldest: Option<i64>,
}

pub fn link_error(e: LinkError) -> ApiError {
    match e {
        LinkError::Unavailable(m) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the core is unreachable: {m}"),
        ),
        LinkError::Refused(m) if m.starts_with("no ") => ApiError::not_found(m),
        LinkError::Refused(m) => ApiError::bad_request(m),
    }
}

pub fn unexpected() -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "the core answered something unexpected; are the core and dashboard the same version?",
    )
}
