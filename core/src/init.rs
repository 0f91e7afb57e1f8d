//! `honeybee core init`: a new CA, the core's and the admin CLI's certificates, and
//! `core.toml`, in a data directory that must not already hold a deployment.

use crate::config::{CONFIG_FILE, CoreConfig, RawCoreConfig};
use honeybee_pki::ca::{Ca, IssueRequest};
use honeybee_pki::files::{write_private, write_public};
use honeybee_pki::sealed::{self, SealError};
use honeybee_proto::{NodeId, Role};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where everything lives in a core's data directory.
#[derive(Debug, Clone)]
pub struct CorePaths {
    pub root: PathBuf,
}

impl CorePaths {
    pub fn new(root: &Path) -> Self {
        CorePaths {
            root: root.to_owned(),
        }
    }
    pub fn config(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }
    pub fn pki(&self) -> PathBuf {
        self.root.join("pki")
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.pki().join("ca.crt")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.pki().join("ca.key")
    }
    /// A joined core's intermediate CA certificate (`honeybee core join`); absent on the
    /// core that holds the root.
    pub fn intermediate_cert(&self) -> PathBuf {
        self.pki().join("intermediate.crt")
    }
    /// A joined core's intermediate CA key, made on this machine.
    pub fn intermediate_key(&self) -> PathBuf {
        self.pki().join("intermediate.key")
    }
    pub fn core_cert(&self) -> PathBuf {
        self.pki().join("core.crt")
    }
    pub fn core_key(&self) -> PathBuf {
        self.pki().join("core.key")
    }
    pub fn admin_cert(&self) -> PathBuf {
        self.pki().join("admin.crt")
    }
    pub fn admin_key(&self) -> PathBuf {
        self.pki().join("admin.key")
    }
    pub fn database(&self) -> PathBuf {
        self.root.join("honeybee.db")
    }
    pub fn captures(&self) -> PathBuf {
        self.root.join("captures")
    }
    /// Where the running core records the address it actually bound, for the CLI.
    pub fn addr_file(&self) -> PathBuf {
        self.root.join("core.addr")
    }
    /// Where the running core records the module shim's address.
    pub fn shim_addr_file(&self) -> PathBuf {
        self.root.join("shim.addr")
    }
    /// True when this directory already holds a deployment.
    pub fn is_initialised(&self) -> bool {
        self.config().exists() || self.ca_key().exists() || self.intermediate_key().exists()
    }
}

/// What `init` is asked to make.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub trust_domain: String,
    pub listen: SocketAddr,
    /// Defaults to the listen address (with 127.0.0.1 for an unspecified IP).
    pub advertise: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    #[error(
        "{0} already holds a HoneyBee deployment (core.toml or pki/ca.key exists); refusing to overwrite its CA. Use another --data-dir, or delete it deliberately"
    )]
    AlreadyInitialised(PathBuf),
    #[error("invalid trust domain {0:?}: use lowercase letters, digits, '.' and '-'")]
    TrustDomain(String),
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate authority: {0}")]
    Pki(String),
    #[error(
        "{0} is sealed with a passphrase: set HONEYBEE_CA_PASSPHRASE, or HONEYBEE_CA_PASSPHRASE_FILE to a file holding it"
    )]
    CaKeySealed(PathBuf),
    #[error("cannot open {path}: {source}")]
    CaKeyOpen { path: PathBuf, source: SealError },
    #[error(
        "the CA passphrase: {0} (set HONEYBEE_CA_PASSPHRASE, or HONEYBEE_CA_PASSPHRASE_FILE to a file holding it)"
    )]
    Passphrase(String),
    #[error(
        "{0} is already sealed; to change its passphrase, unseal it with `openssl pkey` and seal it again"
    )]
    AlreadySealed(PathBuf),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// The environment variable that holds the CA key's passphrase.
pub const CA_PASSPHRASE_ENV: &str = "HONEYBEE_CA_PASSPHRASE";
/// The environment variable naming a file that holds the CA key's passphrase (one line;
/// a trailing newline is ignored).
pub const CA_PASSPHRASE_FILE_ENV: &str = "HONEYBEE_CA_PASSPHRASE_FILE";

/// The CA key's passphrase from the environment, if one is set.
pub fn ca_passphrase() -> Result<Option<String>, InitError> {
    if let Some(path) = std::env::var_os(CA_PASSPHRASE_FILE_ENV).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        // A passphrase file is one short line; anything big is a mistake, not a passphrase.
        let meta = std::fs::metadata(&path)
            .map_err(|e| InitError::Passphrase(format!("cannot read {}: {e}", path.display())))?;
        if meta.len() > 4096 {
            return Err(InitError::Passphrase(format!(
                "{} is {} bytes; a passphrase file holds one line",
                path.display(),
                meta.len()
            )));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| InitError::Passphrase(format!("cannot read {}: {e}", path.display())))?;
        let line = text.strip_suffix('\n').unwrap_or(&text);
        let line = line.strip_suffix('\r').unwrap_or(line);
        return Ok(Some(line.to_owned()));
    }
    Ok(std::env::var(CA_PASSPHRASE_ENV)
        .ok()
        .filter(|p| !p.is_empty()))
}

fn check_passphrase(p: &str) -> Result<(), InitError> {
    if p.chars().count() < sealed::MIN_PASSPHRASE_LEN {
        return Err(InitError::Passphrase(format!(
            "it must be at least {} characters",
            sealed::MIN_PASSPHRASE_LEN
        )));
    }
    Ok(())
}

/// What `init` made, for the operator.
#[derive(Debug, Clone)]
pub struct InitReport {
    pub data_dir: PathBuf,
    pub trust_domain: String,
    pub ca_pin_hex: String,
    pub listen: SocketAddr,
    pub advertise: String,
    /// The CA key was sealed with the passphrase from the environment.
    pub ca_key_sealed: bool,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InitError + '_ {
    move |source| InitError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Creates a deployment in `data_dir`.
pub fn init(data_dir: &Path, opts: &InitOptions) -> Result<InitReport, InitError> {
    init_with_store(data_dir, opts, crate::config::RawStore::default())
}

/// [`init`] with a `[store]` section in core.toml (checked for form here; the core checks
/// that the database answers when it starts).
pub fn init_with_store(
    data_dir: &Path,
    opts: &InitOptions,
    store: crate::config::RawStore,
) -> Result<InitReport, InitError> {
    let paths = CorePaths::new(data_dir);
    if paths.is_initialised() {
        return Err(InitError::AlreadyInitialised(data_dir.to_owned()));
    }
    let td = &opts.trust_domain;
    if td.is_empty()
        || td.len() > 255
        || !td
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return Err(InitError::TrustDomain(td.clone()));
    }
    let advertise = opts.advertise.clone().unwrap_or_else(|| {
        let ip = if opts.listen.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            opts.listen.ip().to_string()
        };
        let ip = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip
        };
        format!("{ip}:{}", opts.listen.port())
    });
    let mut raw = RawCoreConfig::new(td, opts.listen, &advertise);
    raw.store = store;
    // Validate before writing anything so a bad flag leaves no half-made directory.
    let cfg = raw.clone().validate(data_dir)?;
    let passphrase = ca_passphrase()?;
    if let Some(p) = &passphrase {
        check_passphrase(p)?;
    }

    std::fs::create_dir_all(paths.pki()).map_err(io(&paths.pki()))?;
    std::fs::create_dir_all(paths.captures()).map_err(io(&paths.captures()))?;

    let pki = |e: &dyn std::fmt::Display| InitError::Pki(e.to_string());
    let ca = Ca::generate(td).map_err(|e| pki(&e))?;
    let key_pem = match &passphrase {
        Some(p) => sealed::seal_pem(&ca.key_pem(), p).map_err(|source| InitError::CaKeyOpen {
            path: paths.ca_key(),
            source,
        })?,
        None => ca.key_pem(),
    };
    write_private(&paths.ca_key(), key_pem.as_bytes()).map_err(io(&paths.ca_key()))?;
    write_public(&paths.ca_cert(), ca.cert_pem().as_bytes()).map_err(io(&paths.ca_cert()))?;
    finish(
        Finish {
            ca: &ca,
            paths: &paths,
            cfg: &cfg,
            raw: &raw,
            header: "# HoneyBee core configuration. Reference: configs/core.toml in the source tree.",
            advertise,
            sealed: passphrase.is_some(),
        },
        data_dir,
        opts,
    )
}

/// What [`finish`] needs from either way of making a data directory.
struct Finish<'a> {
    ca: &'a Ca,
    paths: &'a CorePaths,
    cfg: &'a CoreConfig,
    raw: &'a RawCoreConfig,
    /// The first line of `core.toml`.
    header: &'a str,
    advertise: String,
    sealed: bool,
}

/// The part `init` and `init_joined` share once the CA files are written: the core's and
/// the admin's certificates from `ca`, `core.toml`, and the report.
fn finish(f: Finish<'_>, data_dir: &Path, opts: &InitOptions) -> Result<InitReport, InitError> {
    issue_core_cert(f.ca, f.paths, f.cfg.core_cert_lifetime)?;
    issue_admin_cert(f.ca, f.paths, f.cfg.admin_cert_lifetime)?;
    let toml = toml::to_string_pretty(f.raw).map_err(|e| InitError::Pki(e.to_string()))?;
    let text = format!("{}\n{toml}", f.header);
    write_public(&f.paths.config(), text.as_bytes()).map_err(io(&f.paths.config()))?;
    Ok(InitReport {
        data_dir: data_dir.to_owned(),
        trust_domain: opts.trust_domain.clone(),
        ca_pin_hex: hex::encode(f.ca.pin()),
        listen: opts.listen,
        advertise: f.advertise,
        ca_key_sealed: f.sealed,
    })
}

/// What `honeybee core join` got from the root core, for [`init_joined`].
pub struct Joined {
    /// The deployment's root CA certificate (its pin was checked against the token).
    pub root_der: Vec<u8>,
    /// This core's intermediate CA certificate, signed by the root.
    pub intermediate_der: Vec<u8>,
    /// The intermediate's key, made on this machine and never sent.
    pub key: honeybee_pki::KeyPair,
}

/// Writes a joined core's data directory: the root certificate (no root key), its own
/// intermediate CA (key sealed with the passphrase from the environment if one is set),
/// its core and admin certificates issued by that intermediate, and `core.toml` with
/// `store` (the shared PostgreSQL, given by the operator). Refuses a directory that
/// already holds a deployment; writes nothing if the intermediate does not load.
pub fn init_joined(
    data_dir: &Path,
    opts: &InitOptions,
    store: crate::config::RawStore,
    joined: Joined,
) -> Result<InitReport, InitError> {
    let paths = CorePaths::new(data_dir);
    if paths.is_initialised() {
        return Err(InitError::AlreadyInitialised(data_dir.to_owned()));
    }
    let pki = |e: &dyn std::fmt::Display| InitError::Pki(e.to_string());
    let root_pem = honeybee_pki::files::der_to_pem_cert(&joined.root_der);
    let inter_pem = honeybee_pki::files::der_to_pem_cert(&joined.intermediate_der);
    let key_pem = joined.key.to_pem();
    let td = &opts.trust_domain;
    let ca = Ca::load_intermediate(&root_pem, &inter_pem, &key_pem, td).map_err(|e| pki(&e))?;
    let advertise = opts
        .advertise
        .clone()
        .unwrap_or_else(|| opts.listen.to_string());
    let mut raw = RawCoreConfig::new(td, opts.listen, &advertise);
    raw.store = store;
    let cfg = raw.clone().validate(data_dir)?;
    let passphrase = ca_passphrase()?;
    if let Some(p) = &passphrase {
        check_passphrase(p)?;
    }
    std::fs::create_dir_all(paths.pki()).map_err(io(&paths.pki()))?;
    std::fs::create_dir_all(paths.captures()).map_err(io(&paths.captures()))?;
    let stored_key = match &passphrase {
        Some(p) => sealed::seal_pem(&key_pem, p).map_err(|source| InitError::CaKeyOpen {
            path: paths.intermediate_key(),
            source,
        })?,
        None => key_pem,
    };
    let ik = paths.intermediate_key();
    write_private(&ik, stored_key.as_bytes()).map_err(io(&ik))?;
    let ic = paths.intermediate_cert();
    write_public(&ic, inter_pem.as_bytes()).map_err(io(&ic))?;
    write_public(&paths.ca_cert(), root_pem.as_bytes()).map_err(io(&paths.ca_cert()))?;
    finish(
        Finish {
            ca: &ca,
            paths: &paths,
            cfg: &cfg,
            raw: &raw,
            header: "# HoneyBee core configuration (joined with `honeybee core join`).",
            advertise,
            sealed: passphrase.is_some(),
        },
        data_dir,
        opts,
    )
}

/// Issues (or re-issues) the core's server certificate.
pub fn issue_core_cert(ca: &Ca, paths: &CorePaths, lifetime: Duration) -> Result<(), InitError> {
    issue_to_files(
        ca,
        Role::Core,
        "core",
        lifetime,
        &paths.core_cert(),
        &paths.core_key(),
    )
}

/// Issues (or re-issues) the admin CLI's client certificate.
pub fn issue_admin_cert(ca: &Ca, paths: &CorePaths, lifetime: Duration) -> Result<(), InitError> {
    issue_to_files(
        ca,
        Role::Admin,
        "cli",
        lifetime,
        &paths.admin_cert(),
        &paths.admin_key(),
    )
}

fn issue_to_files(
    ca: &Ca,
    role: Role,
    id: &str,
    lifetime: Duration,
    cert_path: &Path,
    key_path: &Path,
) -> Result<(), InitError> {
    let req = IssueRequest {
        role,
        id: NodeId::new(id).map_err(|e| InitError::Pki(e.to_string()))?,
        lifetime,
    };
    let (key, cert) = ca
        .issue_with_new_key(&req)
        .map_err(|e| InitError::Pki(e.to_string()))?;
    // On a joined core the intermediate follows the leaf, so the file is a whole chain.
    let mut pem = cert.pem();
    for c in ca.chain_der() {
        pem.push_str(&honeybee_pki::files::der_to_pem_cert(c));
    }
    write_private(key_path, key.to_pem().as_bytes()).map_err(io(key_path))?;
    write_public(cert_path, pem.as_bytes()).map_err(io(cert_path))?;
    Ok(())
}

/// Loads the CA of an initialised data directory, opening its key with the passphrase
/// from the environment if the key is sealed. A joined core's is its intermediate CA
/// (`pki/intermediate.crt` and `.key`) under the root in `pki/ca.crt`.
pub fn load_ca(paths: &CorePaths, trust_domain: &str) -> Result<Ca, InitError> {
    let cert = std::fs::read_to_string(paths.ca_cert()).map_err(io(&paths.ca_cert()))?;
    let inter_path = paths.intermediate_cert();
    if inter_path.exists() {
        let inter = std::fs::read_to_string(&inter_path).map_err(io(&inter_path))?;
        let key = read_key(&paths.intermediate_key())?;
        return Ca::load_intermediate(&cert, &inter, &key, trust_domain)
            .map_err(|e| InitError::Pki(format!("{}: {e}", inter_path.display())));
    }
    let key = read_key(&paths.ca_key())?;
    Ca::from_pem(&cert, &key, trust_domain).map_err(|e| InitError::Pki(e.to_string()))
}

/// A CA key as plain PKCS#8 PEM, opened if it is sealed.
fn read_key(path: &Path) -> Result<String, InitError> {
    let path = path.to_owned();
    let key = std::fs::read_to_string(&path).map_err(io(&path))?;
    if !sealed::is_sealed(&key) {
        if ca_passphrase()?.is_some() {
            tracing::warn!(
                path = %path.display(),
                "a CA passphrase is set but the CA key is not sealed; seal it with `honeybee core seal-ca-key`"
            );
        }
        return Ok(key);
    }
    let pass = ca_passphrase()?.ok_or_else(|| InitError::CaKeySealed(path.clone()))?;
    let opened =
        sealed::open_pem(&key, &pass).map_err(|source| InitError::CaKeyOpen { path, source })?;
    Ok(opened.to_string())
}

/// Seals an initialised deployment's plain CA key with the passphrase from the
/// environment; the sealed file replaces the plain one only once it opens again.
pub fn seal_ca_key(data_dir: &Path) -> Result<PathBuf, InitError> {
    let paths = CorePaths::new(data_dir);
    let path = paths.ca_key();
    let key = std::fs::read_to_string(&path).map_err(io(&path))?;
    if sealed::is_sealed(&key) {
        return Err(InitError::AlreadySealed(path));
    }
    let pass = ca_passphrase()?.ok_or_else(|| InitError::Passphrase("none is set".to_owned()))?;
    check_passphrase(&pass)?;
    let err = |source| InitError::CaKeyOpen {
        path: path.clone(),
        source,
    };
    let sealed_pem = sealed::seal_pem(&key, &pass).map_err(err)?;
    let reopened = sealed::open_pem(&sealed_pem, &pass).map_err(err)?;
    if reopened.trim() != key.trim() {
        return Err(InitError::Pki(
            "the sealed CA key did not open to the same key; nothing was changed".to_owned(),
        ));
    }
    write_private(&path, sealed_pem.as_bytes()).map_err(io(&path))?;
    Ok(path)
}
