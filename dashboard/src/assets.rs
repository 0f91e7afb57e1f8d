//! The web app, embedded at build time from `web/dist` (see `build.rs`): files by path,
//! and `index.html` for every other path so the app's own router takes over.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::Embed)]
#[folder = "$HONEYBEE_DASHBOARD_DIST"]
struct Dist;

fn file(path: &str) -> Option<Response> {
    let f = Dist::get(path)?;
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let mut r = Response::new(Body::from(f.data.into_owned()));
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime.as_ref()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    // Vite puts a content hash in every file name under assets/; the rest may change.
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    Some(r)
}

pub async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if let Some(r) = (!path.is_empty()).then(|| file(path)).flatten() {
        return r;
    }
    file("index.html").unwrap_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            "the web app is not embedded in this build",
        )
            .into_response()
    })
}
