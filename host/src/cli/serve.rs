//! `sandtable serve`: the HTTP API, until SIGINT or SIGTERM.

use std::net::SocketAddr;

use anyhow::Context as _;

use super::Env;
use crate::catalog::STATS_INTERVAL;
use crate::server;

/// How long the requests in flight at a shutdown may take to finish.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// The arguments of `sandtable serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// The address and port to listen on.
    #[arg(long, value_name = "ADDRESS:PORT", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
}

pub(crate) async fn run(args: ServeArgs, env: &Env) -> anyhow::Result<()> {
    let catalog = env.host_catalog().await?;
    let engine = env.engine()?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}; give a free address with --listen",
                args.listen
            )
        })?;
    println!("listening on http://{}", listener.local_addr()?);
    // The calls' aggregates reach `sandtable stats` every minute, and once
    // more at the end.
    let writer = catalog.spawn_stats_writer(engine.clone(), STATS_INTERVAL);
    server::serve(
        listener,
        server::router(catalog.clone(), engine.clone()),
        shutdown_signal(),
        SHUTDOWN_GRACE,
    )
    .await?;
    writer.abort();
    if let Err(error) = catalog.flush_stats(&engine).await {
        tracing::warn!(
            error = crate::error_chain(&error),
            "writing the last function stats failed"
        );
    }
    println!("stopped");
    Ok(())
}

/// Completes at the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("could not listen for SIGINT and SIGTERM; stop the server with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!(
        grace_s = SHUTDOWN_GRACE.as_secs(),
        "stopping: the requests in flight may finish first"
    );
}
