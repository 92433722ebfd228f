//! `sandtable tenant`: create, list and remove tenants, and replace their
//! API keys.

use clap::Subcommand;

use super::Env;

/// Tenant commands.
#[derive(Debug, Subcommand)]
pub(crate) enum TenantCommand {
    /// Create a tenant with its own Postgres role and schema, and print its
    /// API key, which is not stored and is shown only this once.
    Create {
        /// The tenant's name: lowercase letters, digits and underscores.
        name: String,
    },
    /// List the tenants.
    List {
        /// Print the tenants as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a tenant with its tables, plugins, snapshots, schema and role.
    Remove {
        /// The tenant's name.
        name: String,
    },
    /// Replace a tenant's API key and print the new one. The old key stops
    /// working at once.
    RotateKey {
        /// The tenant's name.
        name: String,
    },
}

pub(crate) async fn run(command: TenantCommand, env: &Env) -> anyhow::Result<()> {
    let catalog = env.host_catalog().await?;
    match command {
        TenantCommand::Create { name } => {
            let created = catalog.create_tenant(&name).await?;
            println!(
                "created tenant `{}` with schema `{}`",
                created.tenant.name, created.tenant.schema_name
            );
            println!("API key, shown only now: {}", created.api_key);
        }
        TenantCommand::List { json } => {
            let tenants = catalog.list_tenants().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tenants)?);
                return Ok(());
            }
            let mut table = super::table(["TENANT", "SCHEMA", "ROLE", "API KEY", "CREATED"]);
            for tenant in tenants {
                table.add_row([
                    tenant.name,
                    tenant.schema_name,
                    tenant.role_name.unwrap_or_else(|| "(the host's)".into()),
                    if tenant.has_key { "set" } else { "none" }.to_owned(),
                    tenant.created_at,
                ]);
            }
            println!("{table}");
        }
        TenantCommand::Remove { name } => {
            catalog.remove_tenant(&name).await?;
            println!("removed tenant `{name}` and everything it owned");
        }
        TenantCommand::RotateKey { name } => {
            let key = catalog.rotate_key(&name).await?;
            println!("new API key of `{name}`, shown only now: {key}");
        }
    }
    Ok(())
}
