//! The `sandtable db` subcommands, which manage the embedded cluster.

use anyhow::bail;

use super::{
    ClusterState, ClusterStatus, DATABASE_NAME, DatabaseConfig, EmbeddedCluster, SUPERUSER,
};

/// Manage the embedded PostgreSQL cluster that stores the catalog when
/// `DATABASE_URL` is unset.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum DbCommand {
    /// Start the embedded cluster, creating it on first use.
    Start,
    /// Stop the embedded cluster with a fast shutdown, which ends open sessions.
    Stop,
    /// Show whether the embedded cluster runs, and where its files are.
    Status {
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a `sandtable db` subcommand and prints its outcome to standard output.
///
/// # Errors
///
/// Fails when the cluster cannot start, stop or be inspected, and for `start`
/// when `DATABASE_URL` is set, since sandtable then uses that server.
pub async fn run(command: DbCommand, config: &DatabaseConfig) -> anyhow::Result<()> {
    let cluster = EmbeddedCluster::new(&config.home);
    match command {
        DbCommand::Start => {
            if let Some(server) = config.external_server() {
                bail!(
                    "`DATABASE_URL` is set to `{server}`, so sandtable uses that server and starts \
                     no embedded cluster; unset `DATABASE_URL` to use the embedded one"
                );
            }
            let report = cluster.start().await?;
            let outcome = match (report.initialized, report.started) {
                (true, _) => "created and started",
                (false, true) => "started",
                (false, false) => "already running",
            };
            println!("embedded PostgreSQL {outcome}");
            print_status(&report.status);
        }
        DbCommand::Stop => {
            if cluster.stop().await? {
                println!("embedded PostgreSQL stopped");
            } else {
                println!("embedded PostgreSQL is not running");
            }
        }
        DbCommand::Status { json } => {
            let status = cluster.status()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
            if let Some(server) = config.external_server() {
                eprintln!(
                    "note: `DATABASE_URL` is set to `{server}`, so sandtable uses that server, \
                     not this cluster"
                );
            }
        }
    }
    Ok(())
}

fn print_status(status: &ClusterStatus) {
    let state = match (status.state, status.pid) {
        (ClusterState::Running, Some(pid)) => format!("running (pid {pid})"),
        (ClusterState::Running, None) => "running".to_owned(),
        (ClusterState::Stopped, _) => "stopped".to_owned(),
        (ClusterState::NotInitialized, _) => "not initialized (created on first start)".to_owned(),
    };
    println!("state:        {state}");
    match &status.linked_from {
        Some(link) => println!(
            "cluster dir:  {} (linked from {})",
            status.cluster_dir.display(),
            link.display()
        ),
        None => println!("cluster dir:  {}", status.cluster_dir.display()),
    }
    println!("data dir:     {}", status.data_dir.display());
    println!("socket:       {}", status.socket_file().display());
    println!("log file:     {}", status.log_file.display());
    if let Some(user) = &status.server_user {
        println!("server user:  {user}");
    }
    if status.state == ClusterState::Running {
        println!(
            "connect with: psql -h {} -U {SUPERUSER} {DATABASE_NAME}",
            status.socket_dir.display()
        );
    }
}
