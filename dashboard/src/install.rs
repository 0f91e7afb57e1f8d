//! The sensor installer: over HTTPS only, the dashboard serves `install.sh` and the agent
//! package (`honeybee-agent.deb`), and makes the one line that installs a sensor:
//!
//! ```text
//! curl -fsS --proto =https -k --pinnedpubkey 'sha256//PIN' 'https://HOST:PORT/install.sh' \
//!   | sh -s -- --server 'https://HOST:PORT' --pin 'sha256//PIN' --sha256 HEX --token 'hbt1…'
//! ```
//!
//! The line carries everything the new machine must trust: the pin of the dashboard's TLS
//! key (curl's `--pinnedpubkey`, stricter than a CA check, and works with the self-signed
//! certificate the dashboard makes), the package's SHA-256 (a package changed on the
//! server, a mirror or a proxy is refused before dpkg sees it), and the token (which pins
//! the core's CA for the QUIC enrolment). The dashboard writes what the line needs into
//! `dashboard/install.json` at start, so `honeybee token create --install-command` on the
//! same machine prints the same line the Enrol page shows.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The script, served as is (it takes everything from its arguments).
pub const SCRIPT: &str = include_str!("install.sh");
pub const SCRIPT_PATH: &str = "/install.sh";
pub const PACKAGE_PATH: &str = "/install/honeybee-agent.deb";
/// The package's file name in a packages directory.
pub const PACKAGE_FILE: &str = "honeybee-agent.deb";
/// Where the `honeybee` Debian package puts the agent package it carries.
pub const SYSTEM_PACKAGES: &str = "/usr/share/honeybee/packages";
/// Names a packages directory when `--packages` is not given.
pub const PACKAGES_ENV: &str = "HONEYBEE_PACKAGES_DIR";
/// What the dashboard writes for the CLI, in its directory.
pub const INFO_FILE: &str = "install.json";

/// What an install line needs; `dashboard/install.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallInfo {
    /// `https://HOST:PORT` the new machine reaches the dashboard at.
    pub url: String,
    /// curl's pin of the dashboard's TLS key: `sha256//` + base64 of the SHA-256 of its
    /// SubjectPublicKeyInfo.
    pub pin: String,
    /// Hex SHA-256 of the agent package served at [`PACKAGE_PATH`].
    pub sha256: String,
    pub package: PathBuf,
    pub package_bytes: u64,
}

impl InstallInfo {
    /// The file the running dashboard wrote for the core's data directory `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        crate::init::DashboardPaths::new(data_dir)
            .root
            .join(INFO_FILE)
    }

    /// Reads it, saying what to do when the dashboard does not serve the installer.
    pub fn load(data_dir: &Path) -> Result<InstallInfo, String> {
        let path = Self::path(data_dir);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "{}: {e}; the dashboard serves the installer when it runs over HTTPS and \
                 has an agent package (`honeybee dashboard run --listen 0.0.0.0:9443`, the \
                 package in {SYSTEM_PACKAGES}/{PACKAGE_FILE} or --packages DIR)",
                path.display()
            )
        })?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The one line to run as root on the new machine.
    pub fn command_line(&self, token: &str) -> Result<String, String> {
        for (what, v) in [
            ("url", self.url.as_str()),
            ("pin", &self.pin),
            ("sha256", &self.sha256),
            ("token", token),
        ] {
            if !shell_safe(v) {
                return Err(format!(
                    "{what} {v:?} has characters unsafe in a shell line"
                ));
            }
        }
        let (url, pin, sha) = (&self.url, &self.pin, &self.sha256);
        Ok(format!(
            "curl -fsS --proto =https -k --pinnedpubkey '{pin}' '{url}{SCRIPT_PATH}' | sh -s -- \
             --server '{url}' --pin '{pin}' --sha256 {sha} --token '{token}'"
        ))
    }
}

/// Only characters that need no quoting inside single quotes and that no URL, base64 pin,
/// hex digest or token needs more than; a single quote can never appear.
fn shell_safe(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~:/?#[]@+=%,".contains(&b))
}

/// `sha256//BASE64` of the first certificate of a PEM chain: what curl's `--pinnedpubkey`
/// compares against the key the server presents.
pub fn pin_of_pem(pem: &str) -> Result<String, String> {
    use base64::Engine;
    let der = honeybee_pki::files::pem_to_der_certs(pem).map_err(|e| e.to_string())?;
    let first = der.first().ok_or("no certificate in the PEM")?;
    let pin = honeybee_pki::identity::spki_pin(first.as_ref()).map_err(|e| e.to_string())?;
    Ok(format!(
        "sha256//{}",
        base64::engine::general_purpose::STANDARD.encode(pin)
    ))
}

/// `https://HOST:PORT` for a dashboard listening on `listen`: its own address, or, on
/// the unspecified address, the host agents already reach the core at (core.toml's
/// `advertise`), as the dashboard runs beside the core.
pub fn public_url(listen: SocketAddr, advertise: Option<&str>) -> String {
    let port = listen.port();
    if !listen.ip().is_unspecified() {
        return format!("https://{}", SocketAddr::new(listen.ip(), port));
    }
    let host = advertise
        .map(|a| a.strip_prefix("srv:").unwrap_or(a))
        .map(|a| match a.rsplit_once(':') {
            // "[v6]:port" or "host:port"; a bare SRV domain has no port.
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.is_empty() => h,
            _ => a,
        })
        .filter(|h| !h.is_empty())
        .unwrap_or("127.0.0.1");
    format!("https://{host}:{port}")
}

/// An operator's `--public-url`: `https://HOST[:PORT]`, nothing after the authority.
pub fn checked_url(u: &str) -> Result<String, String> {
    let u = u.trim_end_matches('/');
    let ok = u
        .strip_prefix("https://")
        .is_some_and(|rest| !rest.is_empty() && !rest.contains('/') && shell_safe(rest));
    if ok {
        Ok(u.to_owned())
    } else {
        Err(format!("public URL {u:?}: give https://HOST[:PORT]"))
    }
}

/// The packages directory: `--packages`, else `$HONEYBEE_PACKAGES_DIR`, else
/// `<data-dir>/packages` when it holds the package, else [`SYSTEM_PACKAGES`].
pub fn packages_dir(explicit: Option<&Path>, data_dir: &Path) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_owned();
    }
    if let Some(p) = std::env::var_os(PACKAGES_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let local = data_dir.join("packages");
    if local.join(PACKAGE_FILE).is_file() {
        return local;
    }
    PathBuf::from(SYSTEM_PACKAGES)
}

fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    let mut n_total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        n_total += n as u64;
        ctx.update(&buf[..n]);
    }
    Ok((hex::encode(ctx.finish()), n_total))
}

/// Works out what the installer serves and writes `install.json`; `None` (and the file
/// removed, so the CLI prints no stale line) when it cannot serve one: no HTTPS, or no
/// package. Why not is logged.
pub fn prepare(
    data_dir: &Path,
    listen: SocketAddr,
    tls_cert_pem: Option<&Path>,
    packages: Option<&Path>,
    url: Option<&str>,
) -> Option<Arc<InstallInfo>> {
    let info_path = InstallInfo::path(data_dir);
    let found = (|| {
        let cert = tls_cert_pem.ok_or("the dashboard serves plain HTTP (loopback)")?;
        let pem = std::fs::read_to_string(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
        let pin = pin_of_pem(&pem)?;
        let dir = packages_dir(packages, data_dir);
        let package = dir.join(PACKAGE_FILE);
        let (sha256, package_bytes) =
            sha256_file(&package).map_err(|e| format!("{}: {e}", package.display()))?;
        let url = match url {
            Some(u) => checked_url(u)?,
            None => {
                let advertise = honeybee_core::config::load(data_dir)
                    .ok()
                    .map(|c| c.advertise);
                public_url(listen, advertise.as_deref())
            }
        };
        Ok::<_, String>(InstallInfo {
            url,
            pin,
            sha256,
            package,
            package_bytes,
        })
    })();
    match found {
        Ok(info) => {
            let text = serde_json::to_string_pretty(&info).unwrap_or_default();
            if let Err(e) = honeybee_pki::files::write_public(&info_path, text.as_bytes()) {
                tracing::warn!(path = %info_path.display(), error = %e, "cannot write install.json");
            }
            tracing::info!(url = %info.url, sha256 = %info.sha256, "serving the sensor installer");
            Some(Arc::new(info))
        }
        Err(why) => {
            let _ = std::fs::remove_file(&info_path);
            tracing::info!(%why, "not serving the sensor installer");
            None
        }
    }
}

/// `GET /install.sh` and `GET /install/honeybee-agent.deb`, no sign-in (the new machine
/// has none; neither carries a secret).
pub fn router(info: Arc<InstallInfo>) -> Router {
    Router::new()
        .route(SCRIPT_PATH, get(script))
        .route(PACKAGE_PATH, get(move || package(info.clone())))
}

async fn script() -> Response {
    let mut r = SCRIPT.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/x-shellscript; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Streams the file as it is on disk now: the line's hash, not this server, decides
/// whether it is installed.
async fn package(info: Arc<InstallInfo>) -> Response {
    let file = match tokio::fs::File::open(&info.package).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(path = %info.package.display(), error = %e, "agent package unreadable");
            return (StatusCode::NOT_FOUND, "no agent package\n").into_response();
        }
    };
    let len = file.metadata().await.map(|m| m.len()).ok();
    let stream = futures_util::stream::unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.debian.binary-package"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(len) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> InstallInfo {
        InstallInfo {
            url: "https://core.example.org:8443".into(),
            pin: "sha256//AAAA+/=".into(),
            sha256: "ab".repeat(32),
            package: PathBuf::from("/x"),
            package_bytes: 1,
        }
    }

    #[test]
    fn line_quotes_everything_and_refuses_shell_characters() {
        let line = info().command_line("hbt1.abc_DEF-1").unwrap();
        assert!(line.starts_with("curl -fsS --proto =https -k --pinnedpubkey 'sha256//AAAA+/='"));
        assert!(line.ends_with("--token 'hbt1.abc_DEF-1'"));
        for bad in ["a'b", "a b", "$(id)", "a;b", "`x`", ""] {
            assert!(info().command_line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn operator_url_is_https_host_and_port_only() {
        assert_eq!(
            checked_url("https://hb.example.org:9443/").unwrap(),
            "https://hb.example.org:9443"
        );
        for bad in ["http://x", "https://", "https://x/y", "https://x'y", "x:1"] {
            assert!(checked_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn public_url_uses_advertise_host_on_unspecified_listen() {
        let any: SocketAddr = "0.0.0.0:9443".parse().unwrap();
        assert_eq!(
            public_url(any, Some("core.example.org:7443")),
            "https://core.example.org:9443"
        );
        assert_eq!(
            public_url(any, Some("[2001:db8::1]:7443")),
            "https://[2001:db8::1]:9443"
        );
        assert_eq!(
            public_url(any, Some("srv:example.org")),
            "https://example.org:9443"
        );
        assert_eq!(public_url(any, None), "https://127.0.0.1:9443");
        let one: SocketAddr = "192.0.2.7:9443".parse().unwrap();
        assert_eq!(public_url(one, Some("x:1")), "https://192.0.2.7:9443");
    }
}
