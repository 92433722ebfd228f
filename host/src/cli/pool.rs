//! `sandtable pool list`: the resource pools, their limits, use and waits.

use clap::Subcommand;
use serde_json::json;

use super::Env;
use crate::pool::PoolStore;
use crate::pool::store::PoolSummary;

/// Resource pool commands.
#[derive(Debug, Subcommand)]
pub(crate) enum PoolCommand {
    /// List the pools that the configuration names or that any process
    /// used, with their limits and what they served.
    List {
        /// How many minutes back to sum requests, tokens and waits.
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
        minutes: u64,
        /// Print the pools as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(command: PoolCommand, env: &Env) -> anyhow::Result<()> {
    match command {
        PoolCommand::List { minutes, json } => list(env, minutes, json).await,
    }
}

async fn list(env: &Env, minutes: u64, as_json: bool) -> anyhow::Result<()> {
    let (catalog, tenant) = env.catalog().await?;
    let store = PoolStore::new(catalog.pool().clone());
    let mut used = store.list(tenant.id, minutes).await?;
    let config = catalog.pools().config();
    // Pools that the configuration names but no process used yet are shown
    // with no use.
    for name in config.pools.keys() {
        if !used.iter().any(|pool| &pool.name == name) {
            used.push(PoolSummary::unused(name));
        }
    }
    used.sort_by(|a, b| a.name.cmp(&b.name));
    // The limits shown are those this configuration gives, which every
    // process started with it uses.
    for pool in &mut used {
        let spec = config.pool(&pool.name);
        pool.requests_per_minute = spec.requests_per_minute as i32;
        pool.burst = spec.burst as i32;
        pool.tokens_per_minute = spec.tokens_per_minute.map(|tokens| tokens as i64);
        pool.origin = if spec.deny {
            format!("{} (denied)", spec.origin)
        } else {
            spec.origin
        };
    }
    if as_json {
        let rows: Vec<_> = used.iter().map(|pool| json!(pool)).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if used.is_empty() {
        println!(
            "no pools: none is configured in {} and no plugin has used one",
            config.origin()
        );
        return Ok(());
    }
    let window = format!("REQUESTS {minutes}M");
    let mut table = super::table([
        "POOL",
        "REQUESTS/MIN",
        "BURST",
        "TOKENS/MIN",
        "THIS MINUTE",
        &window,
        "TOKENS",
        "WAITS",
        "MEAN WAIT",
        "429/503",
        "REFUSED",
        "PAUSED",
        "FROM",
    ]);
    for pool in &used {
        table.add_row([
            pool.name.clone(),
            pool.requests_per_minute.to_string(),
            pool.burst.to_string(),
            pool.tokens_per_minute
                .map_or_else(|| "-".to_owned(), |tokens| tokens.to_string()),
            pool.requests_this_minute.to_string(),
            pool.requests.to_string(),
            pool.tokens.to_string(),
            pool.waits.to_string(),
            format!("{:.1} ms", pool.mean_wait_ms),
            pool.throttled.to_string(),
            pool.denied.to_string(),
            if pool.paused_for_s > 0.0 {
                format!("{:.1} s", pool.paused_for_s)
            } else {
                "-".to_owned()
            },
            pool.origin.clone(),
        ]);
    }
    println!("{table}");
    Ok(())
}
