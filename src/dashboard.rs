//! `honeybee dashboard init|run`: glue between the CLI and the `honeybee-dashboard` crate,
//! and what `honeybee up` prints about the dashboard.

use honeybee_dashboard::{Dashboard, Options};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Makes the dashboard's certificate and first admin if missing; prints the password the
/// one time it is created.
pub async fn init(data_dir: &Path) -> anyhow::Result<()> {
    let r = honeybee_dashboard::init::init(data_dir).await?;
    if r.issued_cert {
        // A log record: under `--log-format json` stderr is all JSON.
        tracing::info!(
            key_dir = %honeybee_dashboard::init::DashboardPaths::new(data_dir).root.display(),
            "dashboard certificate issued by the core's CA"
        );
    }
    if let Some(line) = first_admin_line(&r) {
        println!("dashboard admin: {line}");
    }
    Ok(())
}

/// How to sign in as the admin this init created, if it created one: the generated
/// password (shown this once), or a pointer to the environment variable that set it.
pub fn first_admin_line(r: &honeybee_dashboard::init::InitReport) -> Option<String> {
    let (user, password) = r.first_admin.as_ref()?;
    Some(if r.admin_password_from_env {
        format!(
            "user {user}, password from {}",
            honeybee_dashboard::init::ADMIN_PASSWORD_ENV
        )
    } else {
        format!("user {user}, password {password}   (shown once; store it now)")
    })
}

/// What the sensor installer serves and where new machines reach it (`--packages`,
/// `--public-url`).
#[derive(Default)]
pub struct Install {
    pub packages: Option<PathBuf>,
    pub public_url: Option<String>,
}

pub async fn start(
    data_dir: &Path,
    listen: SocketAddr,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    install: Install,
) -> anyhow::Result<Dashboard> {
    let mut opts = Options::new(data_dir.to_owned(), listen);
    opts.tls_cert = tls_cert;
    opts.tls_key = tls_key;
    opts.packages = install.packages;
    opts.public_url = install.public_url;
    let d = honeybee_dashboard::start(opts).await?;
    if let Some(fp) = &d.cert_sha256 {
        println!("dashboard HTTPS certificate (self-signed) sha256:{fp}");
    }
    Ok(d)
}

pub async fn run(
    data_dir: &Path,
    listen: SocketAddr,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    install: Install,
) -> anyhow::Result<()> {
    let stop = crate::up::wait_for_signal();
    init(data_dir).await?;
    let d = start(data_dir, listen, tls_cert, tls_key, install).await?;
    println!("dashboard: {}", d.url);
    stop.await;
    d.shutdown().await;
    Ok(())
}

/// For `honeybee up`: init (printing a new admin's password) and start on the default
/// address; the caller prints the URL.
pub async fn up(data_dir: &Path) -> anyhow::Result<(Dashboard, Option<String>)> {
    let r = honeybee_dashboard::init::init(data_dir).await?;
    let listen: SocketAddr = std::env::var("HONEYBEE_DASHBOARD_LISTEN")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            honeybee_dashboard::DEFAULT_LISTEN
                .parse()
                .expect("literal address")
        });
    let d = start(data_dir, listen, None, None, Install::default()).await?;
    Ok((d, first_admin_line(&r)))
}
