//! `sandtable admin`: the operator's admin key of `sandtable serve`.

use clap::Subcommand;

use super::Env;

/// Admin commands.
#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Make a new admin key, which opens the server's operator routes
    /// (tenants, /metrics, the dashboard), and print it. Only its sha256 is
    /// stored, so it is shown only this once; the old key stops working.
    RotateKey,
}

pub(crate) async fn run(command: AdminCommand, env: &Env) -> anyhow::Result<()> {
    let catalog = env.host_catalog().await?;
    match command {
        AdminCommand::RotateKey => {
            let key = catalog.rotate_admin_key().await?;
            println!("new admin key, shown only now: {key}");
        }
    }
    Ok(())
}
