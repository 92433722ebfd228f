//! The `sandtable` command line: a thin layer over the library.

mod admin;
mod backend;
mod client;
mod demo;
mod index;
mod plugin;
mod pool;
mod present;
mod serve;
mod stats;
mod table;
mod tenant;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::catalog::{Catalog, DEFAULT_TENANT, Tenant};
use crate::config::Config;
use crate::pg::{self, DatabaseConfig, cli::DbCommand};
use crate::sandbox::{EngineConfig, UdfEngine};
use crate::telemetry::{self, LogFormat};

/// Sandtable: Postgres tables whose computed columns are filled by sandboxed
/// WebAssembly UDFs.
#[derive(Debug, Parser)]
#[command(name = "sandtable", version, about)]
pub struct Cli {
    /// How log records on standard error are printed.
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: LogFormat,

    /// The configuration file; by default `config.toml` in the data
    /// directory, when it exists.
    #[arg(long, value_name = "FILE", global = true, env = "SANDTABLE_CONFIG")]
    config: Option<PathBuf>,

    /// The tenant whose plugins and tables the command works on, through
    /// the tenant's own Postgres role.
    #[arg(
        long,
        value_name = "NAME",
        global = true,
        env = "SANDTABLE_TENANT",
        default_value = DEFAULT_TENANT
    )]
    tenant: String,

    /// The URL of a `sandtable serve` to send the command to, instead of
    /// opening the database; the API key comes from `SANDTABLE_API_KEY`.
    #[arg(long, value_name = "URL", global = true, env = "SANDTABLE_SERVER")]
    server: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage the embedded PostgreSQL cluster.
    #[command(subcommand)]
    Db(DbCommand),
    /// Add, inspect, call and remove plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Create, list, show, drop, revert tables and list their history.
    #[command(subcommand)]
    Table(table::TableCommand),
    /// Insert rows from JSON Lines, a JSON array or CSV, as one new version.
    Insert(table::InsertArgs),
    /// Add computed columns and upgrade their plugins.
    #[command(subcommand)]
    Column(table::ColumnCommand),
    /// Compute a computed column again, as a new version.
    Recompute(table::RecomputeArgs),
    /// Set columns of the rows that match, as a new version.
    Update(table::UpdateArgs),
    /// Delete the rows that match, as a new version.
    Delete(table::DeleteArgs),
    /// Print rows of a table or snapshot.
    Select(table::SelectArgs),
    /// Take, list and drop snapshots of table versions.
    #[command(subcommand)]
    Snapshot(table::SnapshotCommand),
    /// Add, list and drop embedding indexes.
    #[command(subcommand)]
    Index(index::IndexCommand),
    /// Find the rows nearest to a text or vector in an embedding index.
    Search(index::SearchArgs),
    /// Run the demo: plugins, a table of fortunes, a computed column, a MiniLM
    /// embedding index, searches, a snapshot and the timing records.
    Demo(demo::DemoArgs),
    /// List resource pools: their rates, use and waits, from every process.
    #[command(subcommand)]
    Pool(pool::PoolCommand),
    /// Serve the HTTP API over the tenants' tables.
    Serve(serve::ServeArgs),
    /// Create, list and remove tenants, and replace their API keys.
    #[command(subcommand)]
    Tenant(tenant::TenantCommand),
    /// Replace the admin key of the server's operator routes.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Show calls, rows, faults and latency per function, from every process.
    Stats {
        /// How many minutes back to sum.
        #[arg(long, default_value_t = 60)]
        minutes: u64,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Parses the command line, runs the command, and returns the exit code:
/// 0 on success, 1 on failure, 2 for a usage error.
pub async fn main() -> ExitCode {
    // Writing to a closed pipe (`sandtable plugin list | head -1`) then ends
    // the process quietly, as other command-line tools do, instead of
    // failing `println!` with a panic.
    // SAFETY: `signal` only sets the process's disposition of SIGPIPE, and
    // SIG_DFL is a valid one; no code of this process relies on ignoring it.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", crate::error_chain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(server) = &cli.server {
        return run_remote(cli.command, server, &cli.tenant).await;
    }
    let database = DatabaseConfig::from_env()?;
    if let Command::Db(command) = cli.command {
        return pg::cli::run(command, &database).await;
    }
    let settings = Config::load(&database.home, cli.config.as_deref())?;
    let config = (database, Arc::new(settings), cli.tenant);
    match cli.command {
        Command::Db(_) => unreachable!("handled above"),
        Command::Pool(command) => pool::run(command, &Env::new(config)).await,
        Command::Plugin(command) => plugin::run(command, &Env::new(config)).await,
        Command::Stats { minutes, json } => stats::run(&Env::new(config), minutes, json).await,
        Command::Table(command) => table::run_table(command, &Env::new(config)).await,
        Command::Insert(args) => table::run_insert(args, &Env::new(config)).await,
        Command::Column(command) => table::run_column(command, &Env::new(config)).await,
        Command::Recompute(args) => table::run_recompute(args, &Env::new(config)).await,
        Command::Update(args) => table::run_update(args, &Env::new(config)).await,
        Command::Delete(args) => table::run_delete(args, &Env::new(config)).await,
        Command::Select(args) => table::run_select(args, &Env::new(config)).await,
        Command::Snapshot(command) => table::run_snapshot(command, &Env::new(config)).await,
        Command::Index(command) => index::run_index(command, &Env::new(config)).await,
        Command::Search(args) => index::run_search(args, &Env::new(config)).await,
        Command::Demo(args) => demo::run(args, &Env::new(config)).await,
        Command::Tenant(command) => tenant::run(command, &Env::new(config)).await,
        Command::Admin(command) => admin::run(command, &Env::new(config)).await,
        Command::Serve(args) => serve::run(args, &Env::new(config)).await,
    }
}

/// Runs a command through the API of the server at `server`.
async fn run_remote(command: Command, server: &str, tenant: &str) -> anyhow::Result<()> {
    let name = match &command {
        Command::Db(_) => Some("db"),
        Command::Plugin(plugin::PluginCommand::Grant { .. }) => Some("plugin grant"),
        Command::Plugin(plugin::PluginCommand::Revoke { .. }) => Some("plugin revoke"),
        Command::Pool(_) => Some("pool"),
        Command::Stats { .. } => Some("stats"),
        Command::Demo(_) => Some("demo"),
        Command::Serve(_) => Some("serve"),
        Command::Tenant(_) => Some("tenant"),
        Command::Admin(_) => Some("admin"),
        _ => None,
    };
    if let Some(name) = name {
        anyhow::bail!(
            "`sandtable {name}` has no route in the HTTP API, so it cannot run with --server \
             {server}; run it on the host, without --server and SANDTABLE_SERVER"
        );
    }
    if tenant != DEFAULT_TENANT {
        anyhow::bail!(
            "--tenant {tenant} (or SANDTABLE_TENANT) does not apply with --server: the API key \
             in {} picks the tenant; leave it out",
            client::API_KEY_VARIABLE
        );
    }
    let key = std::env::var(client::API_KEY_VARIABLE).ok();
    let env = Env::remote(
        DatabaseConfig::from_env()?,
        client::Client::new(server, key)?,
    );
    match command {
        Command::Plugin(command) => plugin::run(command, &env).await,
        Command::Table(command) => table::run_table(command, &env).await,
        Command::Insert(args) => table::run_insert(args, &env).await,
        Command::Column(command) => table::run_column(command, &env).await,
        Command::Recompute(args) => table::run_recompute(args, &env).await,
        Command::Update(args) => table::run_update(args, &env).await,
        Command::Delete(args) => table::run_delete(args, &env).await,
        Command::Select(args) => table::run_select(args, &env).await,
        Command::Snapshot(command) => table::run_snapshot(command, &env).await,
        Command::Index(command) => index::run_index(command, &env).await,
        Command::Search(args) => index::run_search(args, &env).await,
        Command::Db(_)
        | Command::Pool(_)
        | Command::Stats { .. }
        | Command::Demo(_)
        | Command::Serve(_)
        | Command::Tenant(_)
        | Command::Admin(_) => unreachable!("rejected above"),
    }
}

/// The state that commands share: the database configuration and the
/// operator's configuration, from which each command opens the engine and
/// the catalog it needs.
pub(crate) struct Env {
    config: DatabaseConfig,
    settings: Arc<Config>,
    tenant: String,
    /// The server that `--server` names; commands then send requests to it
    /// instead of opening the database.
    client: Option<client::Client>,
}

impl Env {
    fn new((config, settings, tenant): (DatabaseConfig, Arc<Config>, String)) -> Self {
        Env {
            config,
            settings,
            tenant,
            client: None,
        }
    }

    /// Returns the state of a command sent to a server. It opens no
    /// database, and `config` gives only the data directory, whose
    /// compiled cache `plugin check` uses.
    fn remote(config: DatabaseConfig, client: client::Client) -> Self {
        Env {
            config,
            settings: Arc::default(),
            tenant: DEFAULT_TENANT.to_owned(),
            client: Some(client),
        }
    }

    /// Returns where table and plugin commands run.
    fn backend(&self) -> backend::Backend<'_> {
        match &self.client {
            Some(client) => backend::Backend::Remote(client),
            None => backend::Backend::Local(self),
        }
    }

    /// Returns the data directory.
    fn home(&self) -> &std::path::Path {
        &self.config.home
    }

    /// The directory of the compiled-component cache.
    fn cache_dir(&self) -> PathBuf {
        self.config.home.join("cache").join("compiled")
    }

    /// Creates the sandbox engine.
    fn engine(&self) -> anyhow::Result<UdfEngine> {
        let config = EngineConfig {
            cache_dir: Some(self.cache_dir()),
            ..EngineConfig::default()
        };
        Ok(UdfEngine::new(config)?)
    }

    /// Connects to the database and opens the catalog as the host's own
    /// role, which manages tenants.
    async fn host_catalog(&self) -> anyhow::Result<Catalog> {
        let pool = pg::connect(&self.config).await?;
        Ok(Catalog::open(pool)
            .await?
            .with_config(self.settings.clone()))
    }

    /// Connects to the database and opens the catalog as the host's own
    /// role, with the tenant that `--tenant` names. Grants go through it,
    /// since a tenant's role may not grant itself directories or hosts.
    async fn operator_catalog(&self) -> anyhow::Result<(Catalog, Tenant)> {
        let catalog = self.host_catalog().await?;
        let tenant = catalog.tenant(&self.tenant).await?;
        Ok((catalog, tenant))
    }

    /// Connects to the database and opens the catalog as the tenant that
    /// `--tenant` names reaches it.
    async fn catalog(&self) -> anyhow::Result<(Catalog, Tenant)> {
        let catalog = self.host_catalog().await?;
        let tenant = catalog.tenant(&self.tenant).await?;
        let catalog = catalog.for_tenant(&tenant).await?;
        Ok((catalog, tenant))
    }
}

/// Starts a table for terminal output with the given header.
pub(crate) fn table<const N: usize>(header: [&str; N]) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_header(header);
    table
}
