//! Who is asking: the session cookie, the CSRF token on state-changing requests, and the
//! role. Handlers take [`Authed`] (any signed-in user) or [`AdminOnly`].

use crate::error::ApiError;
use crate::state::AppState;
use crate::users::{Session, UserRole};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};

pub const COOKIE: &str = "hb_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A signed-in user; on POST/PUT/DELETE/PATCH the CSRF token has been checked.
#[derive(Debug, Clone)]
pub struct Authed {
    pub session: Session,
    /// The cookie's token (to end the session at logout).
    pub token: String,
}

impl Authed {
    pub fn user(&self) -> &str {
        &self.session.username
    }
}

/// A signed-in admin.
#[derive(Debug, Clone)]
pub struct AdminOnly(pub Authed);

/// The `hb_session` cookie's value, if the request has one.
pub fn session_cookie(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub async fn lookup(state: &AppState, token: String) -> Result<Option<Session>, ApiError> {
    let users = state.users.clone();
    tokio::task::spawn_blocking(move || users.session(&token))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = session_cookie(parts).ok_or_else(ApiError::unauthorized)?;
        let session = lookup(state, token.clone())
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        let changes = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if changes {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            if !ct_eq(sent, session.csrf.as_bytes()) {
                return Err(ApiError::forbidden(
                    "missing or wrong X-CSRF-Token header; use the csrf value from /api/me",
                ));
            }
        }
        Ok(Authed { session, token })
    }
}

impl FromRequestParts<AppState> for AdminOnly {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let a = Authed::from_request_parts(parts, state).await?;
        if a.session.role != UserRole::Admin {
            return Err(ApiError::forbidden(
                "viewers cannot change anything; ask an admin",
            ));
        }
        Ok(AdminOnly(a))
    }
}
