//! HTTP and HTTPS honeypot: hyper's HTTP/1 server (its parser, with its limits) in front
//! of a persona (`router` or `wordpress`). Every request is one `HttpRequest` event;
//! login forms become `AuthAttempt`s; bodies over the inline cap become captures, streamed
//! to the spool as they arrive (`body`); bodies over the hard cap are answered 413 and
//! reported.

mod body;
mod cert;
pub(crate) mod first;
mod form;
mod head;
mod persona;
mod router;
mod wordpress;

pub(crate) use cert::civil_from_days;

use super::ServiceContext;
use super::conn::Session;
use super::stopped;
use base64::Engine;
use body::BodyEnd;
use honeybee_proto::config::{HttpOptions, HttpPersona};
use honeybee_proto::event::{
    AuthAttempt, AuthMethod, EventKind, HttpRequest, MAX_DATA_LEN, MAX_FIELD_LEN, MAX_HTTP_HEADERS,
    clamp,
};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::{Response, StatusCode, Version};
use hyper_util::rt::{TokioIo, TokioTimer};
use persona::{Login, Reply};
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

/// Time a client gets to send a request's headers, and how long an idle keep-alive
/// connection is kept (hyper starts the clock when it waits for a request head).
const HEADER_TIMEOUT: Duration = Duration::from_secs(15);
/// Time a client gets to send a request's body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a client gets to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// hyper's read buffer, which bounds a request head (hyper's minimum is 8 KiB).
const MAX_BUF: usize = 16 * 1024;
/// Most header lines in one request; more is answered 431 by hyper.
const MAX_HEADERS: usize = 100;
/// Requests served on one keep-alive connection before it is closed.
const MAX_REQUESTS_PER_CONN: u32 = 100;

/// A configured http service.
#[derive(Debug)]
pub(crate) struct HttpService {
    shared: Arc<Shared>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// What every request of the service needs.
#[derive(Debug)]
struct Shared {
    persona: HttpPersona,
    server: HeaderValue,
    max_inline_body: usize,
    max_body_bytes: usize,
}

impl HttpService {
    pub(crate) fn new(opts: &HttpOptions, ctx: &ServiceContext) -> Result<Self, String> {
        let server = if opts.server_header.is_empty() {
            persona::default_server(opts.persona)
        } else {
            opts.server_header.as_str()
        };
        let server = HeaderValue::from_str(server)
            .map_err(|_| "server_header must be printable ASCII".to_owned())?;
        let tls = if opts.tls {
            let cert = cert::load_or_create(
                &ctx.data_dir,
                &opts.cert_common_name,
                &opts.cert_organization,
            )
            .map_err(|e| e.to_string())?;
            Some(tls_config(cert)?)
        } else {
            None
        };
        Ok(HttpService {
            shared: Arc::new(Shared {
                persona: opts.persona,
                server,
                max_inline_body: (opts.max_inline_body as usize).min(MAX_DATA_LEN),
                max_body_bytes: opts.max_body_bytes as usize,
            }),
            tls,
        })
    }

    /// Serves one connection until the peer leaves, a deadline passes or `stop` says so.
    pub(crate) async fn serve<S>(&self, session: &Session, stream: S, stop: watch::Receiver<bool>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Some(tls) = &self.tls else {
            return self.serve_http(session, stream, stop, "http").await;
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(tls));
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => self.serve_http(session, tls, stop, "https").await,
            Ok(Err(e)) => {
                tracing::debug!(session = %session.id, error = %e, "TLS handshake failed");
            }
            Err(_) => {
                tracing::debug!(session = %session.id, "TLS handshake timed out");
            }
        }
    }

    async fn serve_http<S>(
        &self,
        session: &Session,
        stream: S,
        mut stop: watch::Receiver<bool>,
        scheme: &'static str,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let conn = Arc::new(Conn {
            shared: Arc::clone(&self.shared),
            session: session.clone(),
            scheme,
            requests: AtomicU32::new(0),
        });
        let state = Arc::clone(&conn);
        let service = hyper::service::service_fn(move |req| {
            let conn = Arc::clone(&state);
            async move { Ok::<_, Infallible>(conn.handle(req).await) }
        });
        let head = head::Head::new(MAX_DATA_LEN);
        let mut stream = head::HeadStream::new(stream, Arc::clone(&head));
        let read = tokio::select! {
            r = first::read_first(&mut stream, MAX_BUF, MAX_HEADERS, HEADER_TIMEOUT) => r,
            () = stopped(&mut stop) => return,
        };
        let read = match read {
            (first::First::Request, read) => read,
            (first::First::Refuse(status), _) => {
                let server = self.shared.server.to_str().unwrap_or_default();
                if let Err(e) =
                    first::refuse(&mut stream, self.shared.persona, server, status).await
                {
                    tracing::debug!(session = %session.id, error = %e, "http refusal not sent");
                }
                conn.unparsable(status == 431, &head).await;
                return;
            }
            (first::First::Gone, _) => return,
        };
        stream.replay(read);
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .max_buf_size(MAX_BUF)
            .max_headers(MAX_HEADERS)
            // Real servers write `Server:`, not `server:`; scanners' patterns expect it.
            .title_case_headers(true)
            .keep_alive(true);
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        tokio::pin!(connection);
        tokio::select! {
            r = connection.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(session = %session.id, error = %e, "http connection ended");
                    if e.is_parse() || e.is_parse_too_large() {
                        conn.unparsable(e.is_parse_too_large(), &head).await;
                    }
                }
            }
            () = stopped(&mut stop) => {
                connection.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(super::SHUTDOWN_GRACE, connection).await;
            }
        }
    }
}

fn tls_config(cert: cert::DeviceCert) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(cert.chain, cert.key)
        .map_err(|e| format!("HTTPS certificate {}: {e}", cert.cert_path.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// One connection's state, shared by its requests.
struct Conn {
    shared: Arc<Shared>,
    session: Session,
    scheme: &'static str,
    requests: AtomicU32,
}

impl Conn {
    /// A request head was refused as unparsable (400) or too large (431), by the first-head
    /// check or, on a later keep-alive request, by hyper: record it.
    async fn unparsable(&self, too_large: bool, head: &head::Head) {
        if too_large {
            self.session
                .emit(EventKind::LimitReached {
                    limit: "http_header".into(),
                    detail: format!("request head over {MAX_BUF} bytes or {MAX_HEADERS} headers"),
                })
                .await;
        }
        // What a peer that never spoke HTTP sent; after a valid request the head would
        // show that request instead, so only the first is kept.
        if self.requests.load(Ordering::Relaxed) == 0 {
            let (bytes, truncated) = head.take();
            if !bytes.is_empty() {
                self.session
                    .emit(EventKind::Data { bytes, truncated })
                    .await;
            }
        }
    }

    async fn handle(&self, req: hyper::Request<Incoming>) -> Response<Full<Bytes>> {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let (parts, body) = req.into_parts();
        let shared = &self.shared;

        let announced = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        // The body is streamed to the spool as it arrives; only its first
        // `PERSONA_PREFIX` bytes stay in memory.
        let mut body = match announced {
            Some(len) if len > shared.max_body_bytes as u64 => body::Body::refused(),
            _ => {
                body::read_body(
                    body,
                    shared.max_body_bytes,
                    shared.max_inline_body,
                    announced,
                    &self.session,
                )
                .await
            }
        };
        let end = body.end;

        let method = clamp(parts.method.as_str(), MAX_FIELD_LEN);
        let route_path = parts.uri.path();
        // A proxy probe (`GET http://host/ HTTP/1.1`, `CONNECT host:443`) keeps its target.
        let path = match parts.uri.authority() {
            Some(a) if parts.uri.scheme().is_some() => {
                format!(
                    "{}://{a}{route_path}",
                    parts.uri.scheme_str().unwrap_or("http")
                )
            }
            Some(a) => a.to_string(),
            None => route_path.to_owned(),
        };
        let path = clamp(&path, MAX_FIELD_LEN);
        let query = parts.uri.query().map(|q| clamp(q, MAX_FIELD_LEN));
        let user_agent = header_text(&parts.headers, header::USER_AGENT);
        let content_type = header_text(&parts.headers, header::CONTENT_TYPE);
        let host = link_host(&parts.headers, self.session.dst);

        let mut reply = match end {
            BodyEnd::Complete => persona::route(
                shared.persona,
                &persona::Request {
                    method: &method,
                    path: route_path,
                    query: query.as_deref(),
                    scheme: self.scheme,
                    host: &host,
                    content_type: content_type.as_deref(),
                    body: &body.prefix,
                },
            ),
            BodyEnd::TooLarge => persona::error_page(shared.persona, 413),
            BodyEnd::TimedOut => persona::error_page(shared.persona, 408),
            BodyEnd::Broken => persona::error_page(shared.persona, 400),
        };
        if let Some(login) = basic_auth(&parts.headers) {
            reply.logins.push(login);
        }

        if end == BodyEnd::TooLarge {
            tracing::info!(session = %self.session.id, src = %self.session.src, announced, "request body over the cap");
            self.session
                .emit(EventKind::LimitReached {
                    limit: "http_body".into(),
                    detail: format!(
                        "{method} {} body over {} bytes",
                        clamp(&path, 256),
                        shared.max_body_bytes
                    ),
                })
                .await;
            // A body over the cap leaves no capture: its partial file goes.
            body.finish(&self.session, &path, Vec::new()).await;
        } else if body.size > shared.max_inline_body as u64 {
            let mut meta = vec![
                ("method".to_owned(), method.clone()),
                ("path".to_owned(), path.clone()),
            ];
            if let Some(ct) = &content_type {
                meta.push(("content_type".to_owned(), ct.clone()));
            }
            body.finish(&self.session, &path, meta).await;
        }

        let truncated = end != BodyEnd::Complete || body.size > shared.max_inline_body as u64;
        let mut inline = std::mem::take(&mut body.prefix);
        inline.truncate(shared.max_inline_body);
        inline.shrink_to_fit();
        let headers = parts
            .headers
            .iter()
            .take(MAX_HTTP_HEADERS)
            .map(|(k, v)| {
                (
                    clamp(k.as_str(), MAX_FIELD_LEN),
                    clamp(&String::from_utf8_lossy(v.as_bytes()), MAX_FIELD_LEN),
                )
            })
            .collect();
        self.session
            .emit(EventKind::HttpRequest(HttpRequest {
                method,
                path,
                query,
                version: version_text(parts.version).to_owned(),
                headers,
                user_agent: user_agent.clone(),
                body: inline,
                body_truncated: truncated,
                status: reply.status,
            }))
            .await;

        for login in std::mem::take(&mut reply.logins) {
            tracing::info!(session = %self.session.id, src = %self.session.src, username = %clamp(&login.username, 64), "web login attempt");
            self.session
                .emit(EventKind::AuthAttempt(AuthAttempt {
                    method: AuthMethod::Password,
                    username: clamp(&login.username, MAX_FIELD_LEN),
                    password: Some(clamp(&login.password, MAX_FIELD_LEN)),
                    key_fingerprint: None,
                    key_algorithm: None,
                    client_version: user_agent.clone(),
                    success: false,
                }))
                .await;
        }

        let close = end != BodyEnd::Complete || n >= MAX_REQUESTS_PER_CONN;
        response(reply, &shared.server, close)
    }
}

fn response(reply: Reply, server: &HeaderValue, close: bool) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(reply.body)));
    *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    for (name, value) in reply.headers {
        // Values are built by the personas; one that is not a valid header is left out.
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.append(name, v);
        }
    }
    h.insert(header::SERVER, server.clone());
    if close {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

fn version_text(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| clamp(&String::from_utf8_lossy(v.as_bytes()), MAX_FIELD_LEN))
}

/// The host for absolute links in pages: the `Host` header when it is a plain host name
/// (what a browser sends), else the address that was contacted. Never echoes markup.
fn link_host(headers: &HeaderMap, dst: std::net::SocketAddr) -> String {
    let given = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        });
    match given {
        Some(h) => h.to_owned(),
        None => dst.to_string(),
    }
}

/// Credentials of an `Authorization: Basic` header, which scanners send to every router.
fn basic_auth(headers: &HeaderMap) -> Option<Login> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let encoded = value
        .strip_prefix(b"Basic ")
        .or_else(|| value.strip_prefix(b"basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim_ascii())
        .ok()?;
    let text = String::from_utf8_lossy(&decoded);
    let (user, pass) = text.split_once(':')?;
    Some(Login {
        username: user.to_owned(),
        password: pass.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_and_hosts() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YWRtaW46MTIzNA=="),
        );
        assert_eq!(
            basic_auth(&h),
            Some(Login {
                username: "admin".into(),
                password: "1234".into()
            })
        );
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(basic_auth(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(basic_auth(&h), None);

        let dst = "10.0.0.5:80".parse().unwrap();
        assert_eq!(link_host(&HeaderMap::new(), dst), "10.0.0.5:80");
        h.insert(header::HOST, HeaderValue::from_static("router.lan:8080"));
        assert_eq!(link_host(&h, dst), "router.lan:8080");
        h.insert(header::HOST, HeaderValue::from_static("x\"><script>"));
        assert_eq!(link_host(&h, dst), "10.0.0.5:80");
    }
}
