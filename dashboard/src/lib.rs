//! HoneyBee dashboard backend: serves the web app, a REST API and a WebSocket of live
//! events and node changes, and talks to the core only over QUIC (the admin API and the
//! module protocol, with its own `dashboard` certificate) — never to the core's database.
//!
//! `honeybee dashboard init` ([`init::init`]) makes its identity and first admin;
//! `honeybee dashboard run` and `honeybee up` call [`start`].

pub mod alert_rules;
pub mod api;
mod assets;
pub mod audit;
pub mod auth;
pub mod core_link;
pub mod error;
pub mod incidents;
pub mod init;
pub mod install;
pub mod live;
pub mod openapi;
pub mod query;
pub mod ratelimit;
pub mod realism;
pub mod report;
pub mod server;
pub mod state;
pub mod upgrade;
pub mod users;
pub mod views;

use crate::init::DashboardPaths;
use crate::state::App;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

#[derive(Debug, Clone)]
pub struct Options {
    /// The core's data directory (the dashboard's files are in its `dashboard/`).
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Operator-supplied HTTPS certificate chain and key (PEM). Without them, a listener
    /// beyond loopback gets a self-signed certificate made here.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub limits: ratelimit::Limits,
    /// Where the agent package the sensor installer serves is (`install::packages_dir`
    /// when `None`).
    pub packages: Option<PathBuf>,
    /// `https://HOST:PORT` new machines reach this dashboard at, for the install line
    /// (`install::public_url` works it out when `None`).
    pub public_url: Option<String>,
}

impl Options {
    pub fn new(data_dir: PathBuf, listen: SocketAddr) -> Options {
        Options {
            data_dir,
            listen,
            tls_cert: None,
            tls_key: None,
            limits: ratelimit::Limits::default(),
            packages: None,
            public_url: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DashboardError {
    #[error("{0}")]
    Link(#[from] core_link::LinkError),
    #[error("{0}")]
    Users(#[from] users::UsersError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTPS: {0}")]
    Tls(String),
    #[error("{0}")]
    Incidents(#[from] incidents::IncidentsError),
}

/// A running dashboard.
pub struct Dashboard {
    pub addr: SocketAddr,
    pub url: String,
    /// SHA-256 of the self-signed HTTPS certificate, when one was made.
    pub cert_sha256: Option<String>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    app: Arc<App>,
}

impl Dashboard {
    /// What the password-hash gate has done so far (hashes run, requests refused as busy,
    /// the most run at once): how a test sees that the bounds held.
    pub fn hash_stats(&self) -> ratelimit::HashStats {
        self.app.hashes.stats()
    }

    /// Stops accepting, closes open connections and the feeds.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
    }
}

fn read_pem_pair(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<rustls::ServerConfig, DashboardError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |e: &dyn std::fmt::Display| DashboardError::Tls(e.to_string());
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(&format!("{}: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&format!("{}: {e}", cert.display())))?;
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| bad(&format!("{}: {e}", key.display())))?;
    let mut cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| bad(&e))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// A self-signed certificate for `listen` (and localhost), made once and kept; returns its
/// SHA-256 so the operator can check what the browser shows.
fn self_signed(paths: &DashboardPaths, listen: SocketAddr) -> Result<String, DashboardError> {
    let bad = |e: &dyn std::fmt::Display| DashboardError::Tls(e.to_string());
    if !paths.tls_cert().exists() || !paths.tls_key().exists() {
        let mut names = vec!["localhost".to_owned()];
        if !listen.ip().is_unspecified() {
            names.push(listen.ip().to_string());
        }
        let ck = rcgen::generate_simple_self_signed(names).map_err(|e| bad(&e))?;
        honeybee_pki::files::write_private(
            &paths.tls_key(),
            ck.signing_key.serialize_pem().as_bytes(),
        )
        .map_err(|e| bad(&e))?;
        honeybee_pki::files::write_public(&paths.tls_cert(), ck.cert.pem().as_bytes())
            .map_err(|e| bad(&e))?;
    }
    let pem = std::fs::read_to_string(paths.tls_cert()).map_err(|e| bad(&e))?;
    let der = honeybee_pki::files::pem_to_der_certs(&pem).map_err(|e| bad(&e))?;
    let first = der
        .first()
        .ok_or_else(|| bad(&"https.crt holds no certificate"))?;
    Ok(hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        first.as_ref(),
    )))
}

/// Starts the dashboard: binds, connects the feeds, serves. [`init::init`] must have run.
pub async fn start(opts: Options) -> Result<Dashboard, DashboardError> {
    honeybee_pki::install_crypto_provider();
    let paths = DashboardPaths::new(&opts.data_dir);
    let core = core_link::CoreLink::load(&opts.data_dir)?;
    let users = users::Users::open(&paths.users())?;
    let incidents = incidents::Incidents::open(&paths.incidents())?;
    let mut cert_sha256 = None;
    let tls = match (&opts.tls_cert, &opts.tls_key) {
        (Some(c), Some(k)) => Some(read_pem_pair(c, k)?),
        (None, None) if opts.listen.ip().is_loopback() => None,
        (None, None) => {
            cert_sha256 = Some(self_signed(&paths, opts.listen)?);
            Some(read_pem_pair(&paths.tls_cert(), &paths.tls_key())?)
        }
        _ => {
            return Err(DashboardError::Tls(
                "give both --tls-cert and --tls-key, or neither".into(),
            ));
        }
    };
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| DashboardError::Bind {
            addr: opts.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| DashboardError::Bind {
            addr: opts.listen,
            source,
        })?;
    let served_cert = match (&opts.tls_cert, &tls) {
        (Some(c), _) => Some(c.clone()),
        (None, Some(_)) => Some(paths.tls_cert()),
        (None, None) => None,
    };
    let install = install::prepare(
        &opts.data_dir,
        addr,
        served_cert.as_deref(),
        opts.packages.as_deref(),
        opts.public_url.as_deref(),
    );
    let (live, _) = tokio::sync::broadcast::channel(state::LIVE_BACKLOG);
    let app = Arc::new(App {
        core,
        users,
        incidents,
        limiter: Mutex::new(ratelimit::LoginLimiter::new(opts.limits)),
        hashes: ratelimit::HashGate::new(&opts.limits),
        live,
        recent: Mutex::new(Default::default()),
        live_from: std::sync::atomic::AtomicI64::new(-1),
        health: Mutex::new(Default::default()),
        tls: tls.is_some(),
        started: std::time::Instant::now(),
        install: install.clone(),
    });
    let scheme = if tls.is_some() { "https" } else { "http" };
    let shown = if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    let url = format!("{scheme}://{shown}/");
    let _ = std::fs::write(paths.url_file(), format!("{url}\n"));
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = live::spawn_feeds(app.clone());
    tasks.push(tokio::spawn(incidents::feed(app.clone())));
    let router = match install {
        Some(i) => install::router(i).merge(server::router(app.clone())),
        None => server::router(app.clone()),
    };
    tasks.push(tokio::spawn(server::serve(
        listener,
        router,
        tls.map(Arc::new),
        stop_rx,
    )));
    tracing::info!(%url, "dashboard listening");
    Ok(Dashboard {
        addr,
        url,
        cert_sha256,
        stop,
        tasks,
        app,
    })
}
