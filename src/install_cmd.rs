//! `honeybee token create --install-command`: a token, printed inside the one line that
//! installs, enrols and starts a sensor from the dashboard's HTTPS installer (see
//! `honeybee_dashboard::install`).

use crate::term::say;
use honeybee_dashboard::install::InstallInfo;
use honeybee_proto::Role;
use honeybee_proto::admin::TokenSpec;
use std::path::Path;

pub async fn token_install_command(data_dir: &Path, spec: TokenSpec) -> anyhow::Result<()> {
    if spec.role != Role::Agent {
        anyhow::bail!(
            "--install-command sets up a sensor (role agent); a {} is enrolled by hand",
            spec.role
        );
    }
    // Before the token: a line the dashboard cannot serve would only waste it.
    let info = InstallInfo::load(data_dir).map_err(|e| anyhow::anyhow!(e))?;
    let token = crate::commands::new_token(data_dir, spec).await?;
    let line = info
        .command_line(&token)
        .map_err(|e| anyhow::anyhow!("cannot make the install line: {e}"))?;
    say!("{line}");
    Ok(())
}
