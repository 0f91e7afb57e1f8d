//! `honeybee dashboard init`: the dashboard's own identity and accounts under
//! `<data-dir>/dashboard/`. Its key is made here and never leaves the machine; the running
//! core's CA signs its CSR (role `dashboard`) over the admin API. The first admin account
//! is created with a generated password (or `HONEYBEE_DASHBOARD_ADMIN_PASSWORD`).

use crate::users::Users;
use honeybee_core::admin_client::AdminClient;
use honeybee_pki::files::{der_to_pem_cert, write_private, write_public};
use honeybee_pki::keys::{KeyPair, make_csr};
use honeybee_proto::admin::{AdminRequest, AdminResponse};
use std::path::{Path, PathBuf};

/// The environment variable that sets the first admin's password.
pub const ADMIN_PASSWORD_ENV: &str = "HONEYBEE_DASHBOARD_ADMIN_PASSWORD";

/// Where the dashboard keeps its files.
#[derive(Debug, Clone)]
pub struct DashboardPaths {
    pub root: PathBuf,
}

impl DashboardPaths {
    pub fn new(core_data_dir: &Path) -> Self {
        DashboardPaths {
            root: core_data_dir.join("dashboard"),
        }
    }
    pub fn key(&self) -> PathBuf {
        self.root.join("dashboard.key")
    }
    pub fn cert(&self) -> PathBuf {
        self.root.join("dashboard.crt")
    }
    pub fn ca(&self) -> PathBuf {
        self.root.join("ca.crt")
    }
    pub fn users(&self) -> PathBuf {
        self.root.join("users.db")
    }
    /// The alerts module's configuration when `core.toml` names no other (`alert_rules.rs`).
    pub fn alerts_config(&self) -> PathBuf {
        self.root.join("alerts.toml")
    }
    /// Incidents and the ignore list (see `incidents.rs`).
    pub fn incidents(&self) -> PathBuf {
        self.root.join("incidents.db")
    }
    /// The certificate and key the HTTPS listener uses unless the operator gives others.
    pub fn tls_cert(&self) -> PathBuf {
        self.root.join("https.crt")
    }
    pub fn tls_key(&self) -> PathBuf {
        self.root.join("https.key")
    }
    /// Where the running dashboard writes the URL it serves, for tests and scripts.
    pub fn url_file(&self) -> PathBuf {
        self.root.join("url")
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    #[error("{0}")]
    Core(#[from] honeybee_core::admin_client::AdminClientError),
    #[error("{0}")]
    Pki(#[from] honeybee_pki::PkiError),
    #[error("{0}")]
    Users(#[from] crate::users::UsersError),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the core answered something unexpected to the certificate request")]
    Unexpected,
}

/// What init did, for the caller to print.
#[derive(Debug, Clone, Default)]
pub struct InitReport {
    pub issued_cert: bool,
    /// The first admin's name and password, when this call created it: shown once.
    pub first_admin: Option<(String, String)>,
    /// The first admin's password came from `HONEYBEE_DASHBOARD_ADMIN_PASSWORD`: the
    /// operator knows it, so it is not printed.
    pub admin_password_from_env: bool,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InitError + '_ {
    move |source| InitError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Makes whatever of the dashboard's identity and accounts is missing. Getting the
/// certificate needs the core running and the admin certificate in `data_dir`.
pub async fn init(data_dir: &Path) -> Result<InitReport, InitError> {
    let paths = DashboardPaths::new(data_dir);
    std::fs::create_dir_all(&paths.root).map_err(io(&paths.root))?;
    let mut report = InitReport::default();
    if !paths.cert().exists() || !paths.key().exists() {
        let key = KeyPair::generate()?;
        let csr_der = make_csr(&key)?;
        let client = AdminClient::connect(data_dir).await?;
        let answer = client
            .request(&AdminRequest::IssueDashboardCert {
                name: "dashboard".into(),
                csr_der,
            })
            .await;
        client.close().await;
        let AdminResponse::ModuleCert {
            cert_der, ca_der, ..
        } = answer?
        else {
            return Err(InitError::Unexpected);
        };
        write_private(&paths.key(), key.to_pem().as_bytes()).map_err(io(&paths.key()))?;
        write_public(&paths.cert(), der_to_pem_cert(&cert_der).as_bytes())
            .map_err(io(&paths.cert()))?;
        write_public(&paths.ca(), der_to_pem_cert(&ca_der).as_bytes()).map_err(io(&paths.ca()))?;
        report.issued_cert = true;
    }
    let users = Users::open(&paths.users())?;
    let password = std::env::var(ADMIN_PASSWORD_ENV)
        .ok()
        .filter(|p| !p.is_empty());
    let from_env = password.is_some();
    report.first_admin = users.ensure_first_admin(password)?;
    report.admin_password_from_env = from_env && report.first_admin.is_some();
    Ok(report)
}
