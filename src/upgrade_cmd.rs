//! `honeybee node upgrade NODE|--all [--to VERSION] [--sha256 HEX]`: asks the core to
//! send the agent package to live nodes (see `honeybee_core::upgrade`).

use crate::term::say;
use honeybee_core::admin_client::AdminClient;
use honeybee_proto::admin::{AdminRequest, AdminResponse};
use std::path::Path;

pub async fn node_upgrade(
    data_dir: &Path,
    node: Option<String>,
    to: Option<String>,
    sha256: Option<String>,
) -> anyhow::Result<()> {
    let node = node
        .map(|n| honeybee_proto::NodeId::new(n).map_err(|e| anyhow::anyhow!("{e}")))
        .transpose()?;
    let sha256 = sha256
        .map(|h| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(h.trim(), &mut out)
                .map_err(|e| anyhow::anyhow!("--sha256 wants 64 hex digits: {e}"))?;
            anyhow::Ok(out)
        })
        .transpose()?;
    let client = AdminClient::connect(data_dir).await?;
    let answer = client
        .request(&AdminRequest::UpgradeNodes {
            node,
            version: to,
            sha256,
        })
        .await;
    client.close().await;
    match answer? {
        AdminResponse::Upgrades(list) if list.is_empty() => say!("no node is online"),
        AdminResponse::Upgrades(list) => {
            for (node, r) in list {
                match r {
                    Ok(what) => say!("{node}: {what}"),
                    Err(why) => say!("{node}: not sent: {why}"),
                }
            }
            say!("each node reports what it did in the audit log (honeybee audit)");
        }
        AdminResponse::Error(e) => anyhow::bail!("{e}"),
        other => anyhow::bail!("unexpected answer from the core: {other:?}"),
    }
    Ok(())
}
