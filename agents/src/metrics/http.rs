//! The `/metrics` HTTP endpoint: hyper's HTTP/1.1 server on one TCP listener, a bounded
//! number of connections, a deadline on each, and only `GET /metrics` answered: in
//! OpenMetrics text when the scraper asks for it (Prometheus does), else in the classic
//! Prometheus text format 0.0.4 (curl, promtool, older scrapers).
//!
//! The core has its twin (`core/src/metrics/http.rs`): the agent does not depend
//! on the core, and the two are too small to deserve a crate of their own.

use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The content type of the OpenMetrics text that `prometheus-client` writes; Prometheus
/// asks for it and parses it.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic Prometheus text format.
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Scrapers at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 16;
/// The whole of one connection (keep-alive included): a scraper that stalls is cut.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(30);
const HEADER_DEADLINE: Duration = Duration::from_secs(5);

type Body = http_body_util::Full<Bytes>;

/// Serves `render()` at `/metrics` until the listener fails or the task is dropped.
pub async fn serve<F>(listener: TcpListener, render: F)
where
    F: Fn() -> String + Send + Sync + 'static,
{
    let render = Arc::new(render);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let render = render.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let render = render.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&req, || render())) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_DEADLINE)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, conn).await;
        });
    }
}

fn answer<B>(req: &Request<B>, render: impl FnOnce() -> String) -> Response<Body> {
    let openmetrics = req
        .headers()
        .get_all(hyper::header::ACCEPT)
        .iter()
        .any(|v| {
            v.to_str()
                .is_ok_and(|v| v.contains("application/openmetrics-text"))
        });
    let (status, ctype, body) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") if openmetrics => {
            (StatusCode::OK, CONTENT_TYPE, render())
        }
        (&Method::GET | &Method::HEAD, "/metrics") => {
            (StatusCode::OK, CLASSIC_CONTENT_TYPE, to_classic(&render()))
        }
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "metrics are at /metrics\n".into(),
        ),
    };
    let mut resp = Response::new(Body::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(ctype),
    );
    resp
}

/// OpenMetrics text as the classic format: a counter family is named with its `_total`
/// (the classic format names families by their samples), `# UNIT` and `# EOF` go. Only
/// what `prometheus-client` writes for our metrics is handled (no exemplars, no
/// `_created`, no info or stateset types).
pub fn to_classic(open: &str) -> String {
    let mut out = String::with_capacity(open.len());
    let mut help: Option<&str> = None;
    for line in open.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let suffix = if kind == "counter" { "_total" } else { "" };
            if let Some(h) = help.take() {
                let text = h.split_once(' ').map_or("", |(_, t)| t);
                out.push_str(&format!("# HELP {name}{suffix} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name}{suffix} {kind}\n"));
            continue;
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn counters_take_their_total_in_the_classic_format() {
        let open = "# HELP x What.\n# TYPE x counter\nx_total 3\n\
                    # HELP d_seconds Latency.\n# TYPE d_seconds histogram\n# UNIT d_seconds seconds\n\
                    d_seconds_count 1\n# EOF\n";
        let classic = super::to_classic(open);
        assert_eq!(
            classic,
            "# HELP x_total What.\n# TYPE x_total counter\nx_total 3\n\
             # HELP d_seconds Latency.\n# TYPE d_seconds histogram\nd_seconds_count 1\n"
        );
    }
}
