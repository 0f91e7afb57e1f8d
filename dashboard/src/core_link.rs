//! The dashboard's link to the core: the admin API (`honeybee-admin/1`) with the
//! dashboard's own certificate (role `dashboard`), reconnected on demand. Requests made for
//! a signed-in user travel as `OnBehalf`, so the core's audit log names the person.

use crate::init::DashboardPaths;
use honeybee_core::admin_client::{AdminClient, AdminClientError, core_address};
use honeybee_pki::keys::KeyPair;
use honeybee_proto::admin::{AdminRequest, AdminResponse};
use rustls::pki_types::CertificateDer;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The core could not be reached (or the dashboard's identity is unusable).
    #[error("{0}")]
    Unavailable(String),
    /// The core answered with an error.
    #[error("{0}")]
    Refused(String),
}

struct Identity {
    ca_der: Vec<u8>,
    chain: Vec<CertificateDer<'static>>,
    key: KeyPair,
}

pub struct CoreLink {
    data_dir: PathBuf,
    ident: Identity,
    client: Mutex<Option<Arc<AdminClient>>>,
}

impl std::fmt::Debug for CoreLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreLink")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

fn read(p: &Path) -> Result<String, LinkError> {
    std::fs::read_to_string(p).map_err(|e| {
        LinkError::Unavailable(format!(
            "cannot read {}: {e} (run `honeybee dashboard init`)",
            p.display()
        ))
    })
}

impl CoreLink {
    pub fn load(data_dir: &Path) -> Result<CoreLink, LinkError> {
        let paths = DashboardPaths::new(data_dir);
        let bad = |e: &dyn std::fmt::Display| LinkError::Unavailable(e.to_string());
        let ca = honeybee_pki::files::pem_to_der_certs(&read(&paths.ca())?).map_err(|e| bad(&e))?;
        let ca_der = ca
            .first()
            .map(|c| c.as_ref().to_vec())
            .ok_or_else(|| bad(&"dashboard/ca.crt holds no certificate"))?;
        let chain =
            honeybee_pki::files::pem_to_der_certs(&read(&paths.cert())?).map_err(|e| bad(&e))?;
        let key = KeyPair::from_pem(&read(&paths.key())?).map_err(|e| bad(&e))?;
        Ok(CoreLink {
            data_dir: data_dir.to_owned(),
            ident: Identity { ca_der, chain, key },
            client: Mutex::new(None),
        })
    }

    /// The core's data directory (the dashboard runs beside the core).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The core's address as the running core recorded it.
    pub fn core_addr(&self) -> Result<std::net::SocketAddr, LinkError> {
        core_address(&self.data_dir).map_err(|e| LinkError::Unavailable(e.to_string()))
    }

    /// The dashboard's identity for the module protocol (same certificate).
    pub fn tls_identity(&self) -> (Vec<u8>, Vec<CertificateDer<'static>>, &KeyPair) {
        (
            self.ident.ca_der.clone(),
            self.ident.chain.clone(),
            &self.ident.key,
        )
    }

    async fn client(&self) -> Result<Arc<AdminClient>, LinkError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let addr = self.core_addr()?;
        let c = AdminClient::connect_with(
            addr,
            &self.ident.ca_der,
            self.ident.chain.clone(),
            &self.ident.key,
        )
        .await
        .map_err(|e| LinkError::Unavailable(e.to_string()))?;
        let c = Arc::new(c);
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Sends one request, for `user` when given; reconnects once if the connection died.
    pub async fn request(
        &self,
        user: Option<&str>,
        req: AdminRequest,
    ) -> Result<AdminResponse, LinkError> {
        let req = match user {
            Some(u) => AdminRequest::OnBehalf {
                user: u.to_owned(),
                request: postcard::to_allocvec(&req)
                    .map_err(|e| LinkError::Unavailable(format!("cannot encode request: {e}")))?,
            },
            None => req,
        };
        for attempt in 0..2 {
            let client = self.client().await?;
            match client.request(&req).await {
                Ok(r) => return Ok(r),
                Err(e) if client.is_closed() && attempt == 0 => {
                    tracing::info!(error = %e, "core connection lost; reconnecting");
                    *self.client.lock().await = None;
                }
                Err(AdminClientError::Refused(e)) if !client.is_closed() => {
                    return Err(LinkError::Refused(e));
                }
                Err(e) => return Err(LinkError::Unavailable(e.to_string())),
            }
        }
        Err(LinkError::Unavailable(
            "the core connection keeps failing".into(),
        ))
    }
}
