//! The cost of resource pools, printed as tables: a permit that does not
//! wait, `http-json` against a loopback server with no pool and with a
//! generous one, and the latency of another plugin's calls while calls wait
//! on a slow pool.
//!
//! Run with `cargo bench -p sandtable-tests --bench pools`; naming sections
//! (`-- permit`, `-- http`, `-- isolation`) runs only those. Figures that
//! are compared are measured in the same run, alternating, since the
//! machines are shared and noisy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sandtable::catalog::{Catalog, DEFAULT_TENANT};
use sandtable::config::{Config, PoolSpec};
use sandtable::pool::{Pool, PoolStore};
use sandtable::sandbox::{
    CallContext, Column, DataType, EngineConfig, LoadedPlugin, Outbound, UdfEngine,
};
use sandtable::table::Tables;
use sandtable_tests::http::{LoopbackServer, ServerOptions};
use sandtable_tests::machine::{Figures, chosen_sections, free_cores, load_average};
use sandtable_tests::tables::{add_plugin, load_plugin};
use serde_json::json;

/// The benchmark's sections, run in this order.
const SECTIONS: [&str; 3] = ["permit", "http", "isolation"];

/// Permits taken in each run of the permit section.
const PERMITS: u64 = 2_000_000;

/// Rows sent in each run of the http section, and the threads sending them.
const HTTP_ROWS: usize = 4_000;
const HTTP_THREADS: usize = 4;

/// Calls of `text.upper` timed in each case of the isolation section.
const ISOLATION_CALLS: usize = 300;

fn main() -> anyhow::Result<()> {
    // SAFETY: the benchmark is single-threaded at this point.
    unsafe { std::env::remove_var("RUST_BACKTRACE") };
    let chosen = chosen_sections(&SECTIONS)?;
    let runs = |section: &str| chosen.is_empty() || chosen.iter().any(|c| c == section);
    println!("load average at start: {}", load_average());
    println!("cores free at start: {:.2}\n", free_cores()?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let db = sandtable_tests::fresh_database().await?;
        if runs("permit") {
            permit(&db).await?;
        }
        if runs("http") {
            http(&db).await?;
        }
        if runs("isolation") {
            isolation(&db).await?;
        }
        anyhow::Ok(())
    })?;
    println!("load average at end: {}", load_average());
    println!("cores free at end: {:.2}", free_cores()?);
    Ok(())
}

/// Returns a pool that never makes a caller wait: a million requests a
/// second, all of a minute's worth allowed at once.
fn generous() -> PoolSpec {
    PoolSpec {
        requests_per_minute: 60_000_000,
        burst: 60_000_000,
        origin: "bench".to_owned(),
        ..PoolSpec::default()
    }
}

/// Times `PERMITS` permits of a pool that does not wait, local and leased
/// from Postgres.
async fn permit(db: &sandtable_tests::TestDb) -> anyhow::Result<()> {
    let catalog = Catalog::open(db.pool().clone()).await?;
    let tenant = catalog.tenant(DEFAULT_TENANT).await?;
    let mut table = Figures::new(["pool", "run", "permits", "ns a permit"]);
    for run in 1..=2 {
        for leased in [false, true] {
            let store = leased.then(|| PoolStore::new(db.pool().clone()));
            let name = format!("request-rate:bench-{run}-{leased}");
            let pool = Pool::new(tenant.id, &tenant.name, &name, generous(), store);
            let started = Instant::now();
            for _ in 0..PERMITS {
                pool.acquire().await?;
            }
            let elapsed = started.elapsed();
            table.add_row([
                if leased {
                    "leased from Postgres"
                } else {
                    "local"
                }
                .to_owned(),
                run.to_string(),
                PERMITS.to_string(),
                format!("{:.0}", elapsed.as_nanos() as f64 / PERMITS as f64),
            ]);
        }
    }
    println!("A permit that does not wait (target: at most 1,000 ns)\n{table}\n");
    Ok(())
}

/// Sets up `http-json` as `web` against a loopback server, in a database of
/// its own.
async fn web_tables(
    server: &LoopbackServer,
    config: Config,
    engine: EngineConfig,
) -> anyhow::Result<(sandtable_tests::TestDb, Tables)> {
    let db = sandtable_tests::fresh_database().await?;
    let catalog = Catalog::open(db.pool().clone())
        .await?
        .with_config(Arc::new(config));
    let tenant = catalog.tenant(DEFAULT_TENANT).await?;
    let tables = Tables::new(catalog, UdfEngine::new(engine)?, tenant);
    add_plugin(&tables, "web", "http_json.wasm").await?;
    add_plugin(&tables, "text", "text.wasm").await?;
    tables
        .catalog()
        .grant_host(
            tables.tenant(),
            "web",
            &server.authority().parse().map_err(anyhow::Error::msg)?,
        )
        .await?;
    Ok((db, tables))
}

fn post_batch(url: &str, rows: usize) -> Vec<Column> {
    let strings = |text: &str| {
        Column::from_json(&DataType::String, &vec![json!(text); rows]).expect("strings fit")
    };
    let bodies: Vec<_> = (0..rows).map(|n| json!({ "n": n })).collect();
    vec![
        strings(url),
        Column::from_json(&DataType::Json, &bodies).expect("JSON fits"),
        strings("/echo/n"),
    ]
}

/// Sends `HTTP_ROWS` rows through `web.post` from `HTTP_THREADS` threads;
/// returns rows a second.
async fn send_rows(
    engine: &UdfEngine,
    plugin: &LoadedPlugin,
    context: &CallContext,
    url: &str,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let per_thread = HTTP_ROWS / HTTP_THREADS;
    let mut threads = Vec::new();
    for _ in 0..HTTP_THREADS {
        let (engine, plugin, context) = (engine.clone(), plugin.clone(), context.clone());
        let args = post_batch(url, 16);
        threads.push(tokio::task::spawn_blocking(move || {
            for _ in 0..per_thread / 16 {
                let output = engine.call(&plugin, &context, "post", &args, 16)?;
                anyhow::ensure!(output.errors.is_empty(), "{:?}", output.errors);
            }
            anyhow::Ok(())
        }));
    }
    for thread in threads {
        thread.await??;
    }
    Ok((per_thread / 16 * 16 * HTTP_THREADS) as f64 / started.elapsed().as_secs_f64())
}

/// `http-json` rows a second against the loopback server, with no pool and
/// with a generous one, alternating.
async fn http(_db: &sandtable_tests::TestDb) -> anyhow::Result<()> {
    let server = LoopbackServer::start(ServerOptions::default()).await;
    let config = Config::parse(
        "[pools.\"request-rate:http-json\"]\nrequests_per_minute = 60000000\nburst = 60000000\n",
        "bench",
    )?;
    let (_db, tables) = web_tables(&server, config, EngineConfig::default()).await?;
    let (plugin, pooled) = load_plugin(&tables, "web").await?;
    let unpooled = CallContext {
        outbound: Arc::new(Outbound {
            pools: Default::default(),
            ..(*pooled.outbound).clone()
        }),
        ..pooled.clone()
    };
    let url = server.url("/echo");
    // One warm-up run fills the compiled cache and the server's accept
    // queue.
    send_rows(tables.engine(), &plugin, &unpooled, &url).await?;
    let mut table = Figures::new(["run", "no pool (rows/s)", "generous pool (rows/s)", "ratio"]);
    // The order flips every run, since every request opens a connection and
    // a later run may find more sockets in TIME_WAIT.
    for run in 1..=4 {
        let (bare, pooled_rate) = if run % 2 == 1 {
            let bare = send_rows(tables.engine(), &plugin, &unpooled, &url).await?;
            (
                bare,
                send_rows(tables.engine(), &plugin, &pooled, &url).await?,
            )
        } else {
            let pooled_rate = send_rows(tables.engine(), &plugin, &pooled, &url).await?;
            (
                send_rows(tables.engine(), &plugin, &unpooled, &url).await?,
                pooled_rate,
            )
        };
        table.add_row([
            run.to_string(),
            format!("{bare:.0}"),
            format!("{pooled_rate:.0}"),
            format!("{:.2}", pooled_rate / bare),
        ]);
    }
    println!(
        "http-json `post`, {HTTP_ROWS} rows in calls of 16 from {HTTP_THREADS} threads, one request a row\n{table}\n"
    );
    Ok(())
}

/// Times `calls` one-row calls of `text.upper`; returns p50 and p95.
async fn time_text(
    engine: &UdfEngine,
    plugin: &LoadedPlugin,
    context: &CallContext,
    calls: usize,
) -> anyhow::Result<(Duration, Duration)> {
    let (engine, plugin, context) = (engine.clone(), plugin.clone(), context.clone());
    tokio::task::spawn_blocking(move || {
        let args =
            [Column::from_json(&DataType::String, &[json!("tenant")]).expect("a string fits")];
        let mut times = Vec::with_capacity(calls);
        for _ in 0..calls {
            let started = Instant::now();
            engine.call(&plugin, &context, "upper", &args, 1)?;
            times.push(started.elapsed());
        }
        times.sort();
        Ok((times[calls / 2], times[calls * 95 / 100]))
    })
    .await?
}

/// `text.upper` latency alone and while 16 callers of `web` wait on a pool
/// of one request a second, in an engine of 16 slots.
async fn isolation(_db: &sandtable_tests::TestDb) -> anyhow::Result<()> {
    let server = LoopbackServer::start(ServerOptions::default()).await;
    let config = Config::parse(
        "[pools.\"request-rate:http-json\"]\nrequests_per_minute = 60\n",
        "bench",
    )?;
    let engine = EngineConfig {
        max_instances: 16,
        ..EngineConfig::default()
    };
    let (_db, tables) = web_tables(&server, config, engine).await?;
    let (web, web_context) = load_plugin(&tables, "web").await?;
    let (text, text_context) = load_plugin(&tables, "text").await?;
    let alone = time_text(tables.engine(), &text, &text_context, ISOLATION_CALLS).await?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let url = server.url("/echo");
    let mut waiting = Vec::new();
    for _ in 0..16 {
        let (engine, web, context, stop) = (
            tables.engine().clone(),
            web.clone(),
            web_context.clone(),
            stop.clone(),
        );
        let args = post_batch(&url, 1);
        waiting.push(tokio::task::spawn_blocking(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = engine.call(&web, &context, "post", &args, 1);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let busy = time_text(tables.engine(), &text, &text_context, ISOLATION_CALLS).await?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut table = Figures::new(["text.upper, one row", "p50 (us)", "p95 (us)"]);
    table.add_row([
        "alone".to_owned(),
        alone.0.as_micros().to_string(),
        alone.1.as_micros().to_string(),
    ]);
    table.add_row([
        "16 callers waiting on a pool".to_owned(),
        busy.0.as_micros().to_string(),
        busy.1.as_micros().to_string(),
    ]);
    println!(
        "Another plugin's calls while calls wait on a pool of 1 a second, 16 slots\n{table}\n"
    );
    println!("(the waiting callers end with their current request, up to 16 s)");
    for caller in waiting {
        caller.await?;
    }
    Ok(())
}
