//! The API's error answer: a status and `{"error": "…"}`, one sentence a person can act on.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds a rate-limited client should wait.
    pub retry_after_s: Option<u64>,
    /// Where in the input the problem is (a byte offset), for a search query; sent as
    /// `position`.
    pub position: Option<usize>,
    /// Every problem of a configuration, where and what (`[{path, message}]`); sent as
    /// `problems`.
    pub problems: Option<serde_json::Value>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after_s: None,
            position: None,
            problems: None,
        }
    }
    /// A search query that does not parse: 400 with the message and where.
    pub fn bad_query(e: crate::query::QueryError) -> ApiError {
        ApiError {
            position: Some(e.position),
            ..ApiError::bad_request(format!("query: {e}"))
        }
    }
    pub fn bad_request(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, m)
    }
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "not signed in; POST /api/login first",
        )
    }
    pub fn forbidden(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, m)
    }
    pub fn not_found(m: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, m)
    }
    pub fn internal(m: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %m, "dashboard internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the dashboard failed; see its log",
        )
    }
    pub fn rate_limited(retry_after_s: u64) -> ApiError {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!("too many failed sign-ins; try again in {retry_after_s} s"),
            retry_after_s: Some(retry_after_s),
            position: None,
            problems: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = match self.position {
            Some(p) => json!({"error": self.message, "position": p}),
            None => json!({"error": self.message}),
        };
        if let Some(p) = self.problems {
            body["problems"] = p;
        }
        let mut r = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after_s
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}
