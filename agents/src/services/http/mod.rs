//! HTTP and HTTPS honeypot imitating the persona's server on the wire: every request
//! head is read with `httparse` under hard caps (`first`), checked as lighttpd 1.4.69
//! checks it (`request`), its body read under the body caps and streamed to the spool
//! (`body`), routed to a persona (`router` or `wordpress`), and answered in that server's
//! header order (`wire`), static pages with `ETag`, `304` and `206` (`file`). Every
//! request is one `HttpRequest` event; login forms become `AuthAttempt`s; bodies over
//! the inline cap become captures; bodies over the hard cap are answered 413 and
//! reported. Over TLS the lighttpd personas also speak HTTP/2 (`http2`), whose requests
//! take the same path.

mod apache;
mod body;
pub(crate) mod cert;
mod file;
pub(crate) mod first;
mod form;
mod http2;
mod persona;
mod plc;
mod request;
pub(crate) mod router;
mod wire;
pub(crate) mod wordpress;

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
use persona::{Login, Reply};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// Time a client gets to send a request's headers, and how long an idle keep-alive
/// connection is kept.
const HEADER_TIMEOUT: Duration = Duration::from_secs(15);
/// Time a kept-alive connection gets to send its next request head
/// (lighttpd's `server.max-keep-alive-idle`).
const KEEP_ALIVE_IDLE: Duration = Duration::from_secs(5);
/// Time a client gets to send a request's body.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a client gets to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head: lighttpd's `server.max-request-field-size` default; a longer
/// one is answered 431, as lighttpd does.
const MAX_HEAD: usize = 8 * 1024;
/// Largest request head for Apache, whose limits are per line (8190 bytes, see
/// `apache`) and per count of fields (100): a head of a few long lines passes.
const MAX_HEAD_APACHE: usize = 64 * 1024;
/// Most header lines in one request (an 8 KiB head holds at most about 2000): lighttpd
/// has no count of its own below the size cap, so this is high enough that a scanner
/// never meets it first in practice.
const MAX_HEADERS: usize = 1024;
/// Requests served on one keep-alive connection before it is closed.
const MAX_REQUESTS_PER_CONN: u32 = 100;

/// A configured http service.
#[derive(Debug)]
pub(crate) struct HttpService {
    shared: Arc<Shared>,
    tls: Option<Tls>,
}

/// The service's TLS configurations: one per ALPN preference, so that the protocol
/// chosen is the first of the client's list the server speaks, as lighttpd (OpenSSL's
/// ALPN callback walking the client's list) chooses; rustls would pick by its own list.
#[derive(Debug)]
struct Tls {
    /// `h2` before `http/1.1` (and the configuration without ALPN in it).
    h2_first: Arc<rustls::ServerConfig>,
    /// `http/1.1` before `h2`.
    http1_first: Arc<rustls::ServerConfig>,
}

impl Tls {
    /// lighttpd (router, PLC) offers `h2` and `http/1.1`; Apache as Debian configures it
    /// (no mod_http2) only `http/1.1`.
    fn new(config: Arc<rustls::ServerConfig>, h2: bool) -> Tls {
        if !h2 {
            return Tls {
                h2_first: Arc::clone(&config),
                http1_first: config,
            };
        }
        let with = |alpn: [&[u8]; 2]| {
            let mut c = (*config).clone();
            c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Arc::new(c)
        };
        Tls {
            h2_first: with([http2::ALPN, b"http/1.1"]),
            http1_first: with([b"http/1.1", http2::ALPN]),
        }
    }

    /// The configuration whose ALPN order puts the client's first known protocol first.
    fn for_hello(&self, hello: &rustls::server::ClientHello<'_>) -> Arc<rustls::ServerConfig> {
        let first = hello
            .alpn()
            .and_then(|mut offered| offered.find(|p| *p == http2::ALPN || *p == b"http/1.1"));
        if first == Some(b"http/1.1".as_slice()) {
            Arc::clone(&self.http1_first)
        } else {
            Arc::clone(&self.h2_first)
        }
    }
}

/// What every request of the service needs.
#[derive(Debug)]
struct Shared {
    persona: HttpPersona,
    site: persona::Site,
    server: String,
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
        if !server.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err("server_header must be printable ASCII".to_owned());
        }
        let server = server.to_owned();
        let node = ctx.persona.persona();
        let modbus = ctx.persona.modbus_options();
        let site = persona::Site {
            persona: opts.persona,
            router: router::Device::of(node),
            blog: wordpress::Blog::of(node),
            hostname: ctx.persona.hostname(),
            plc: plc::Panel::of(node, modbus.as_ref()),
        };
        let tls = if opts.tls {
            let subject = cert_subject(opts, &site, node);
            let cert = cert::load_or_create(&ctx.data_dir, &subject).map_err(|e| e.to_string())?;
            let h2 = opts.persona != HttpPersona::Wordpress;
            Some(Tls::new(tls_config(cert)?, h2))
        } else {
            None
        };
        Ok(HttpService {
            shared: Arc::new(Shared {
                site,
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
        let handshake = async {
            let acceptor =
                tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
            let start = acceptor.await?;
            let config = tls.for_hello(&start.client_hello());
            start.into_stream(config).await
        };
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Ok(Ok(tls)) if tls.get_ref().1.alpn_protocol() == Some(http2::ALPN) => {
                let conn = Arc::new(self.conn(session, "https", true));
                http2::serve(conn, tls, stop, Vec::new()).await;
            }
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
        mut stream: S,
        mut stop: watch::Receiver<bool>,
        scheme: &'static str,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let conn = self.conn(session, scheme, false);
        // Bytes read past the previous request: a pipelined request, or its start.
        let mut buf = Vec::new();
        loop {
            // An idle keep-alive connection waits lighttpd's 5 s for the next request.
            let wait = if conn.requests.load(Ordering::Relaxed) == 0 {
                HEADER_TIMEOUT
            } else {
                KEEP_ALIVE_IDLE
            };
            let apache = self.shared.persona == HttpPersona::Wordpress;
            let max_head = if apache { MAX_HEAD_APACHE } else { MAX_HEAD };
            let read = tokio::select! {
                r = first::read_head(&mut stream, buf, max_head, MAX_HEADERS, wait) => r,
                () = stopped(&mut stop) => return,
            };
            let (mut first, read) = read;
            buf = read;
            // HTTP/2 with prior knowledge (RFC 9113 §3.3), which lighttpd speaks with and
            // without TLS: the connection's first bytes are the start of the preface.
            if !apache
                && conn.requests.load(Ordering::Relaxed) == 0
                && buf.len() >= 16
                && http2::PREFACE.starts_with(&buf[..buf.len().min(http2::PREFACE.len())])
            {
                let conn = Arc::new(self.conn(session, scheme, true));
                http2::serve(conn, stream, stop, buf).await;
                return;
            }
            // `HTTP/1.2` and the like, which httparse refuses: Apache serves them as
            // HTTP/1.1, so the head is read on with the version rewritten.
            if apache && first == first::First::Refuse(400) && apache::serve_as_1_1(&mut buf) {
                let read = tokio::select! {
                    r = first::read_head(&mut stream, buf, max_head, MAX_HEADERS, wait) => r,
                    () = stopped(&mut stop) => return,
                };
                (first, buf) = read;
            }
            // Apache still serves HTTP/0.9 (`GET /path`, no version): the page alone.
            if apache
                && first == first::First::Refuse(400)
                && let Some(page) = conn.http09(&buf)
            {
                conn.unparsable(false, &buf).await;
                if finish(&mut stream, &page, true).await.is_ok() {
                    linger(&mut stream).await;
                }
                return;
            }
            if apache && let Some(r) = self.apache_refused(&first, &mut buf) {
                let out = conn.apache_refusal(&r);
                conn.unparsable(r.status == 414 || !r.note.is_empty(), &buf)
                    .await;
                if finish(&mut stream, &out, true).await.is_ok() {
                    linger(&mut stream).await;
                }
                return;
            }
            let head = match first {
                first::First::Gone => return,
                first::First::Refuse(431) => Err(request::Refusal {
                    status: 431,
                    minor: 0,
                }),
                first::First::Refuse(_) => Err(request::refusal(&buf)),
                first::First::Request => request::parse_as(&buf, MAX_HEADERS, apache),
            };
            let head = match head {
                Ok(h) => h,
                Err(r) => {
                    // Refused heads are answered and the connection closed, as lighttpd
                    // does; the bytes are the record.
                    let out = conn.refusal(r);
                    conn.unparsable(r.status == 431, &buf).await;
                    if finish(&mut stream, &out, true).await.is_ok() {
                        linger(&mut stream).await;
                    }
                    return;
                }
            };
            buf.drain(..head.len.min(buf.len()));
            // A client that waits for `100 Continue` before sending its body gets it, as
            // lighttpd sends it when the body has not come with the head.
            if head.minor == 1
                && buf.is_empty()
                && head.framing != request::Framing::None
                && head
                    .header("expect")
                    .is_some_and(|e| e.trim().eq_ignore_ascii_case("100-continue"))
                && !matches!(head.framing, request::Framing::Length(n) if n > self.shared.max_body_bytes as u64)
                && finish(&mut stream, b"HTTP/1.1 100 Continue\r\n\r\n", false)
                    .await
                    .is_err()
            {
                return;
            }
            let (out, close) = conn.handle(&head, &mut stream, &mut buf).await;
            match finish(&mut stream, &out, close).await {
                Ok(()) if close => {
                    linger(&mut stream).await;
                    return;
                }
                Ok(()) => {}
                Err(_) => return,
            }
        }
    }
}

impl HttpService {
    /// The state of one connection; `h2`: it speaks HTTP/2.
    fn conn(&self, session: &Session, scheme: &'static str, h2: bool) -> Conn {
        Conn {
            shared: Arc::clone(&self.shared),
            session: session.clone(),
            scheme,
            h2,
            requests: AtomicU32::new(0),
        }
    }

    /// Apache's own refusal of a head (WordPress persona), before lighttpd's checks:
    /// over-long lines, and what lighttpd's checks refuse, in Apache's terms. Serves
    /// `HTTP/1.x` versions as HTTP/1.1 first, as Apache does.
    fn apache_refused(&self, first: &first::First, buf: &mut [u8]) -> Option<apache::Refused> {
        match first {
            first::First::Gone => None,
            first::First::Refuse(431) => {
                Some(apache::over_limits(buf).unwrap_or(apache::Refused {
                    status: 400,
                    method: String::new(),
                    note: apache::FIELD_TOO_LONG,
                }))
            }
            first::First::Refuse(_) => Some(apache::refusal(buf, 400)),
            first::First::Request => {
                if let Some(r) = apache::over_limits(buf) {
                    return Some(r);
                }
                apache::serve_as_1_1(buf);
                match request::parse_as(buf, MAX_HEADERS, true) {
                    Ok(_) => None,
                    Err(r) => Some(apache::refusal(buf, r.status)),
                }
            }
        }
    }
}

/// How long, and how much, a closing connection still reads from the peer.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;

/// A lingering close: what the peer still sends (the rest of an oversized head) is read
/// and dropped for a moment, so the kernel does not answer it with a reset that could
/// discard the response before the client read it.
async fn linger<S: AsyncRead + Unpin>(stream: &mut S) {
    let _ = tokio::time::timeout(LINGER, async {
        let mut sink = [0u8; 4096];
        let mut total = 0;
        while total < LINGER_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

/// Writes a response; `close`: then shuts the connection down.
async fn finish<S: AsyncWrite + Unpin>(
    stream: &mut S,
    out: &[u8],
    close: bool,
) -> std::io::Result<()> {
    tokio::time::timeout(BODY_TIMEOUT, async {
        stream.write_all(out).await?;
        stream.flush().await?;
        if close {
            stream.shutdown().await?;
        }
        Ok(())
    })
    .await
    .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// The certificate the imitated machine would have made for itself: Debian's snakeoil
/// for the node's host name on a WordPress (Apache) server, made when the system was
/// installed; the vendor's on a router or PLC, made at its first boot after the
/// firmware was built. Options that are set win.
fn cert_subject(
    opts: &HttpOptions,
    site: &persona::Site,
    node: &crate::persona::Persona,
) -> cert::Subject {
    let mut d = node.stream("https-cert");
    let mut subject = match opts.persona {
        HttpPersona::Wordpress => cert::Subject {
            style: cert::Style::Snakeoil,
            country: None,
            organization: String::new(),
            common_name: site.hostname.clone(),
            // ssl-cert's postinst runs minutes into the installation.
            not_before: node.install_time + d.range(240, 1500),
            days: 3650,
        },
        HttpPersona::Router => cert::Subject {
            style: cert::Style::Device,
            country: Some("CN"),
            organization: "TP-Link Technologies Co., Ltd.".into(),
            // The names TP-Link firmwares put in their certificates.
            common_name: (*d.pick(&[
                "tplinkwifi.net",
                "tplinklogin.net",
                "192.168.0.1",
                "192.168.1.1",
            ]))
            .into(),
            not_before: site.router.mtime as i64 + d.range(2 * 86_400, 60 * 86_400),
            days: 3650,
        },
        HttpPersona::Plc => cert::Subject {
            style: cert::Style::Device,
            country: None,
            organization: site.plc.vendor.clone(),
            common_name: site.plc.address.clone(),
            not_before: site.plc.mtime as i64 + d.range(2 * 86_400, 90 * 86_400),
            days: 3650,
        },
    };
    if !opts.cert_common_name.is_empty() {
        subject.common_name = opts.cert_common_name.clone();
    }
    if !opts.cert_organization.is_empty() {
        // The operator's organisation, not the vendor's: its country is unknown.
        subject.organization = opts.cert_organization.clone();
        subject.country = None;
    }
    subject
}

/// TLS as OpenSSL 3.0 behind Debian's lighttpd (and Apache) negotiates it, where rustls
/// lets it be chosen (compared with the real lighttpd by `tests/http_tls.rs`): the
/// client's order of suites wins, as with lighttpd's defaults; ours is OpenSSL's (TLS 1.3: AES-256-GCM, ChaCha20, AES-128-GCM; TLS 1.2: ECDHE with AES-256-GCM,
/// ChaCha20, AES-128-GCM); TLS 1.2 session tickets (the ServerHello's `session ticket`
/// extension) and two TLS 1.3 tickets after the handshake with OpenSSL's 7200 s hint;
/// the signature scheme the first of the client's list (see [`ClientOrderKey`]).
/// The order of the server's extensions and TLS 1.2's `EC point formats` (JA3S) come
/// from the patched rustls (`vendor/rustls/HONEYBEE.md`), which has no setting for them.
pub(crate) fn tls_config(cert: cert::DeviceCert) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::crypto::ring::cipher_suite as cs;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ];
    let key = provider
        .key_provider
        .load_private_key(cert.key)
        .map_err(|e| format!("HTTPS key for {}: {e}", cert.cert_path.display()))?;
    let resolver = OneCert {
        chain: cert.chain,
        key,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // lighttpd 1.4.69 leaves OpenSSL on the client's order (as the test shows).
    config.ignore_client_order = false;
    config.send_tls13_tickets = 2;
    config.ticketer = Arc::new(TicketLifetime(
        rustls::crypto::ring::Ticketer::new().map_err(|e| e.to_string())?,
    ));
    Ok(Arc::new(config))
}

/// The node's one certificate, whatever the client asks for (as a server with one
/// `ssl.pemfile`), with a key that signs as OpenSSL chooses.
#[derive(Debug)]
struct OneCert {
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: Arc<dyn rustls::sign::SigningKey>,
}

impl rustls::server::ResolvesServerCert for OneCert {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let key = ClientOrderKey {
            key: Arc::clone(&self.key),
            order: hello.signature_schemes().iter().take(64).copied().collect(),
        };
        Some(Arc::new(rustls::sign::CertifiedKey::new(
            self.chain.clone(),
            Arc::new(key),
        )))
    }
}

/// The key signing with the first scheme of the client's list (`order`) it can do, as
/// OpenSSL picks (rsa_pss_rsae_sha256 for OpenSSL's and browsers' lists); rustls' own
/// order prefers SHA-512 whatever the client's.
#[derive(Debug)]
struct ClientOrderKey {
    key: Arc<dyn rustls::sign::SigningKey>,
    order: Vec<rustls::SignatureScheme>,
}

impl rustls::sign::SigningKey for ClientOrderKey {
    fn choose_scheme(
        &self,
        offered: &[rustls::SignatureScheme],
    ) -> Option<Box<dyn rustls::sign::Signer>> {
        self.order
            .iter()
            .filter(|s| offered.contains(s))
            .chain(offered)
            .find_map(|s| self.key.choose_scheme(std::slice::from_ref(s)))
    }

    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        self.key.algorithm()
    }
}

/// rustls' ticketer with the lifetime hint OpenSSL gives its tickets: its default
/// session timeout, 7200 s (rustls says 43200), in TLS 1.2's NewSessionTicket and
/// TLS 1.3's tickets alike.
#[derive(Debug)]
struct TicketLifetime(Arc<dyn rustls::server::ProducesTickets>);

impl rustls::server::ProducesTickets for TicketLifetime {
    fn enabled(&self) -> bool {
        self.0.enabled()
    }

    fn lifetime(&self) -> u32 {
        7200
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.0.encrypt(plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.0.decrypt(cipher)
    }
}

/// One connection's state, shared by its requests.
struct Conn {
    shared: Arc<Shared>,
    session: Session,
    scheme: &'static str,
    /// HTTP/2 (its requests are recorded as `HTTP/2.0`).
    h2: bool,
    requests: AtomicU32,
}

impl Conn {
    /// A request head was refused as unparsable, invalid or too large (431): record
    /// what was sent.
    async fn unparsable(&self, too_large: bool, buf: &[u8]) {
        if too_large {
            self.session
                .emit(EventKind::LimitReached {
                    limit: "http_header".into(),
                    detail: format!("request head over {MAX_HEAD} bytes or {MAX_HEADERS} headers"),
                })
                .await;
        }
        if !buf.is_empty() {
            let truncated = buf.len() > MAX_DATA_LEN;
            self.session
                .emit(EventKind::Data {
                    bytes: buf[..buf.len().min(MAX_DATA_LEN)].to_vec(),
                    truncated,
                })
                .await;
        }
    }

    /// The server name and port Apache signs its error pages with: with Debian's
    /// `UseCanonicalName Off`, the `Host` header's (lower-cased; its port, else the
    /// scheme's), else the machine's name and the scheme's port.
    fn sign_as(&self, host: Option<&str>) -> (String, u16) {
        let default_port = if self.scheme == "https" { 443 } else { 80 };
        let plain = host.map(str::trim).filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        });
        let Some(h) = plain else {
            return (self.shared.site.hostname.clone(), default_port);
        };
        let (name, port) = host_and_port(h, default_port);
        (name.to_ascii_lowercase(), port)
    }

    /// Apache's answer to an HTTP/0.9 request (`GET /path` and no version, which
    /// `HttpProtocolOptions`' default `Allow0.9` serves): the body alone, no head.
    fn http09(&self, buf: &[u8]) -> Option<Vec<u8>> {
        let line = buf.split(|&b| b == b'\n').next()?;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let target = line.strip_prefix(b"GET ")?;
        if !target.starts_with(b"/") || target.contains(&b' ') {
            return None;
        }
        let mut synthetic = b"GET ".to_vec();
        synthetic.extend_from_slice(target);
        synthetic.extend_from_slice(b" HTTP/1.0\r\n\r\n");
        let head = request::parse_as(&synthetic, 4, true).ok()?;
        let (name, port) = self.sign_as(None);
        let host = self.session.dst.to_string();
        let reply = persona::route(
            &self.shared.site,
            &persona::Request {
                method: "GET",
                path: &head.path,
                query: head.query.as_deref(),
                scheme: self.scheme,
                host: &host,
                content_type: None,
                body: &[],
                sign_as: (&name, port),
            },
        );
        Some(reply.body)
    }

    /// Apache's error page for a head it refuses, closing the connection.
    fn apache_refusal(&self, r: &apache::Refused) -> Vec<u8> {
        let (name, port) = self.sign_as(None);
        let reply = wordpress::apache_page((&name, port), r.status, &r.method, r.note);
        self.serialize(reply, 1, "GET", Some("close"), None)
    }

    /// The error page for a refused head, closing the connection.
    fn refusal(&self, r: request::Refusal) -> Vec<u8> {
        let shared = &self.shared;
        let (name, port) = self.sign_as(None);
        let reply = persona::error_page(&shared.site, r.status, (&name, port));
        self.serialize(reply, r.minor, "GET", Some("close"), None)
    }

    /// Serves one parsed request: reads its body, routes it, records it. Returns the
    /// response bytes and whether the connection closes after them.
    async fn handle<S: AsyncRead + Unpin>(
        &self,
        head: &request::Head,
        stream: &mut S,
        buf: &mut Vec<u8>,
    ) -> (Vec<u8>, bool) {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let shared = &self.shared;

        // The body is streamed to the spool as it arrives; only its first
        // `PERSONA_PREFIX` bytes stay in memory.
        let mut body = match head.framing {
            request::Framing::None => body::Body::empty(),
            request::Framing::Length(len) if len > shared.max_body_bytes as u64 => {
                body::Body::refused()
            }
            framing => {
                body::read_framed(
                    stream,
                    buf,
                    framing,
                    shared.max_body_bytes,
                    shared.max_inline_body,
                    &self.session,
                )
                .await
            }
        };
        let end = body.end;
        let announced = match head.framing {
            request::Framing::Length(n) => Some(n),
            _ => None,
        };

        let method = clamp(&head.method, MAX_FIELD_LEN);
        // The target as sent: a proxy probe (`GET http://host/ HTTP/1.1`) keeps its host.
        let target = head.target.split('?').next().unwrap_or("");
        let path = clamp(target, MAX_FIELD_LEN);
        let query = head.query.as_deref().map(|q| clamp(q, MAX_FIELD_LEN));
        let user_agent = header_text(head, "user-agent");
        let content_type = header_text(head, "content-type");
        let host = link_host(head.header("host"), self.session.dst);
        let sign_as = self.sign_as(head.header("host"));
        let sign_as = (sign_as.0.as_str(), sign_as.1);

        let mut reply = match end {
            BodyEnd::Complete => persona::route(
                &shared.site,
                &persona::Request {
                    method: &method,
                    path: &head.path,
                    query: query.as_deref(),
                    scheme: self.scheme,
                    host: &host,
                    content_type: content_type.as_deref(),
                    body: &body.prefix,
                    sign_as,
                },
            ),
            BodyEnd::TooLarge => persona::error_page(&shared.site, 413, sign_as),
            BodyEnd::TimedOut => persona::error_page(&shared.site, 408, sign_as),
            BodyEnd::Broken => persona::error_page(&shared.site, 400, sign_as),
        };
        if let Some(login) = basic_auth(head.header("authorization")) {
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
        let headers = head
            .headers
            .iter()
            .take(MAX_HTTP_HEADERS)
            .map(|(k, v)| {
                (
                    clamp(&k.to_ascii_lowercase(), MAX_FIELD_LEN),
                    clamp(&String::from_utf8_lossy(v), MAX_FIELD_LEN),
                )
            })
            .collect();

        let apache = shared.persona == HttpPersona::Wordpress;
        // Apache drops the connection after these (`ap_status_drops_connection`).
        let drops = apache && matches!(reply.status, 400 | 408 | 411 | 413 | 414 | 500 | 501 | 503);
        let close =
            end != BodyEnd::Complete || !head.keep_alive() || n >= MAX_REQUESTS_PER_CONN || drops;
        let asked = head.header("connection").is_some_and(|c| {
            c.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("keep-alive"))
        });
        let connection = match (close, head.minor) {
            (true, _) => Some("close"),
            // Apache says Keep-Alive only to a client that asked for it.
            (false, _) if apache && asked => Some("keep-alive"),
            (false, _) if apache => None,
            (false, 0) => Some("keep-alive"),
            (false, _) => None,
        };
        let logins = std::mem::take(&mut reply.logins);
        let (out, status) = self.respond(reply, head, connection);

        self.session
            .emit(EventKind::HttpRequest(HttpRequest {
                method,
                path,
                query,
                version: if self.h2 {
                    "HTTP/2.0".to_owned()
                } else {
                    format!("HTTP/1.{}", head.minor)
                },
                headers,
                user_agent: user_agent.clone(),
                body: inline,
                body_truncated: truncated,
                status,
            }))
            .await;

        for login in logins {
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
        (out, close)
    }

    /// The response to `head`: the persona's reply, as a static file where it is one.
    fn respond(
        &self,
        reply: Reply,
        head: &request::Head,
        connection: Option<&'static str>,
    ) -> (Vec<u8>, u16) {
        let Some(mtime) = reply.modified.filter(|_| reply.status == 200) else {
            let status = reply.status;
            return (
                self.serialize(reply, head.minor, &head.method, connection, None),
                status,
            );
        };
        let etag = file::etag(&reply.body, mtime);
        let len = reply.body.len() as u64;
        match file::answer(head, len, &etag, mtime) {
            file::Answer::Unsatisfiable => {
                let (name, port) = self.sign_as(head.header("host"));
                let page = persona::error_page(&self.shared.site, 416, (&name, port));
                (
                    self.serialize(page, head.minor, &head.method, connection, None),
                    416,
                )
            }
            answer => {
                let info = FileInfo {
                    etag,
                    mtime,
                    answer,
                    ranges: head.minor == 1 && matches!(head.method.as_str(), "GET" | "HEAD"),
                };
                let status = match answer {
                    file::Answer::NotModified => 304,
                    file::Answer::Partial { .. } => 206,
                    _ => 200,
                };
                (
                    self.serialize(reply, head.minor, &head.method, connection, Some(info)),
                    status,
                )
            }
        }
    }

    /// A complete response: head in the persona's server's order, then the body (none
    /// for `HEAD` and `304`).
    fn serialize(
        &self,
        reply: Reply,
        minor: u8,
        method: &str,
        connection: Option<&'static str>,
        file: Option<FileInfo>,
    ) -> Vec<u8> {
        let shared = &self.shared;
        let flavor = match shared.persona {
            HttpPersona::Router | HttpPersona::Plc => wire::Flavor::Lighttpd,
            HttpPersona::Wordpress => wire::Flavor::Apache,
        };
        let mut status = reply.status;
        let mut body: &[u8] = &reply.body;
        let mut content_range = None;
        let mut content_length = Some(body.len());
        if let Some(f) = &file {
            match f.answer {
                file::Answer::NotModified => {
                    status = 304;
                    body = &[];
                    content_length = None;
                }
                file::Answer::Partial { start, end } => {
                    status = 206;
                    content_range = Some(format!("bytes {start}-{end}/{}", body.len()));
                    body = &body[start as usize..=(end as usize).min(body.len() - 1)];
                    content_length = Some(body.len());
                }
                _ => {}
            }
        }
        // lighttpd sends no length for an empty answer to a HEAD (a redirect).
        if flavor == wire::Flavor::Lighttpd
            && method == "HEAD"
            && reply.body.is_empty()
            && file.is_none()
        {
            content_length = None;
        }
        // Apache sends no length with its own error page to a HEAD.
        if flavor == wire::Flavor::Apache
            && method == "HEAD"
            && reply.content_type == wordpress::APACHE_ERROR_TYPE
        {
            content_length = None;
        }
        // lighttpd sends no type for an empty answer that is not a file (a redirect,
        // OPTIONS); Apache always does.
        let content_type =
            (flavor == wire::Flavor::Apache || !reply.body.is_empty() || file.is_some())
                .then_some(reply.content_type);
        let n = self.requests.load(Ordering::Relaxed).max(1);
        let out = wire::Out {
            status,
            reason: persona::server_reason(shared.persona, status),
            // Apache answers HTTP/1.1 whatever the request's version.
            minor: if flavor == wire::Flavor::Apache {
                1
            } else {
                minor
            },
            keep_alive_max: (MAX_REQUESTS_PER_CONN + 1).saturating_sub(n),
            content_type,
            headers: &reply.headers,
            etag: file.as_ref().map(|f| f.etag.clone()),
            last_modified: file
                .as_ref()
                .map(|f| httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(f.mtime))),
            content_length,
            // Not on a 304, as lighttpd.
            accept_ranges: file
                .as_ref()
                .is_some_and(|f| f.ranges && f.answer != file::Answer::NotModified),
            content_range,
            connection,
            date: httpdate::fmt_http_date(SystemTime::now()),
            server: &shared.server,
        };
        let mut bytes = wire::head(flavor, &out);
        if method != "HEAD" {
            bytes.extend_from_slice(body);
        }
        bytes
    }
}

/// What a static file's response carries besides the page.
struct FileInfo {
    etag: String,
    mtime: u64,
    answer: file::Answer,
    /// `Accept-Ranges: bytes` (lighttpd says it for GET and HEAD on HTTP/1.1).
    ranges: bool,
}

fn header_text(head: &request::Head, name: &str) -> Option<String> {
    head.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| clamp(&String::from_utf8_lossy(v), MAX_FIELD_LEN))
}

/// The host for absolute links in pages: the `Host` header when it is a plain host name
/// (what a browser sends), else the address that was contacted. Never echoes markup.
fn link_host(given: Option<&str>, dst: std::net::SocketAddr) -> String {
    let given = given.map(str::trim).filter(|h| {
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

/// A `Host` value's name and port: `[v6]:port`, `name:port`, or a bare name or IPv6
/// literal (then `default_port`).
fn host_and_port(h: &str, default_port: u16) -> (&str, u16) {
    match h.rsplit_once(':') {
        Some((n, p)) if !n.is_empty() && (!n.contains(':') || n.ends_with(']')) => {
            (n, p.parse().unwrap_or(default_port))
        }
        _ => (h, default_port),
    }
}

/// Credentials of an `Authorization: Basic` header, which scanners send to every router.
fn basic_auth(value: Option<&str>) -> Option<Login> {
    let value = value?.as_bytes();
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
    fn host_header_parts() {
        assert_eq!(host_and_port("Example.org:8081", 80), ("Example.org", 8081));
        assert_eq!(host_and_port("[::1]:8443", 80), ("[::1]", 8443));
        assert_eq!(host_and_port("::1", 443), ("::1", 443));
        assert_eq!(host_and_port("host", 80), ("host", 80));
        assert_eq!(host_and_port("host:junk", 80), ("host", 80));
    }

    #[test]
    fn basic_auth_and_hosts() {
        assert_eq!(
            basic_auth(Some("Basic YWRtaW46MTIzNA==")),
            Some(Login {
                username: "admin".into(),
                password: "1234".into()
            })
        );
        assert_eq!(basic_auth(Some("Basic !!!")), None);
        assert_eq!(basic_auth(Some("Bearer x")), None);
        assert_eq!(basic_auth(None), None);

        let dst = "10.0.0.5:80".parse().unwrap();
        assert_eq!(link_host(None, dst), "10.0.0.5:80");
        assert_eq!(link_host(Some("router.lan:8080"), dst), "router.lan:8080");
        assert_eq!(link_host(Some("x\"><script>"), dst), "10.0.0.5:80");
    }
}
