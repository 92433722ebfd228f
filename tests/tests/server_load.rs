//! The HTTP API under a bounded load on loopback: 8 clients insert small
//! JSON Lines batches for a fixed time against a tenant quota that they
//! exceed. Every response must be 2xx or 429, every 429 must carry
//! `Retry-After`, and the table must hold exactly the rows of the 2xx
//! responses, none lost and none twice.
//!
//! `SANDTABLE_LOAD_SECONDS` sets the run's length in seconds (30 by
//! default).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use sandtable::config::Config;
use sandtable::table::SelectQuery;
use sandtable_tests::api::ApiServer;
use sandtable_tests::tables::{dump_query, setup_with, tenant_tables};
use serde_json::{Value, json};

const CLIENTS: usize = 8;
const DEFAULT_SECONDS: u64 = 30;

/// What one client saw.
#[derive(Default)]
struct ClientLog {
    /// The `(client, batch, item)` of every row that a 2xx response took.
    accepted_rows: Vec<(i64, i64, i64)>,
    /// The version that each 2xx response reported.
    versions: Vec<i64>,
    /// 429 responses.
    rejected: usize,
}

/// Returns the run's length from `SANDTABLE_LOAD_SECONDS`.
fn run_length() -> anyhow::Result<Duration> {
    match std::env::var("SANDTABLE_LOAD_SECONDS") {
        Err(_) => Ok(Duration::from_secs(DEFAULT_SECONDS)),
        Ok(text) => {
            let seconds: u64 = text.parse().map_err(|_| {
                anyhow::anyhow!("invalid `SANDTABLE_LOAD_SECONDS={text}`: expected whole seconds")
            })?;
            anyhow::ensure!(
                seconds > 0,
                "invalid `SANDTABLE_LOAD_SECONDS=0`: give at least 1 second"
            );
            Ok(Duration::from_secs(seconds))
        }
    }
}

/// Returns the rows of batch `batch` of `client`: 1 to 20 of them.
fn batch_rows(client: i64, batch: i64) -> Vec<(i64, i64, i64)> {
    let count = 1 + (client * 7 + batch * 13) % 20;
    (0..count).map(|item| (client, batch, item)).collect()
}

/// Inserts batches as client `client` until `end`, and returns what it saw.
/// A response other than 2xx or 429, or a failed request, fails it.
async fn run_client(
    client: i64,
    url: String,
    key: String,
    end: Instant,
) -> anyhow::Result<ClientLog> {
    // A client of its own, so that each has its own connections.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let mut log = ClientLog::default();
    let mut batch = 0;
    while Instant::now() < end {
        let rows = batch_rows(client, batch);
        let body: String = rows
            .iter()
            .map(|(client, batch, item)| {
                let line = json!({
                    "client": client,
                    "batch": batch,
                    "item": item,
                    "note": format!("client {client} batch {batch} item {item}"),
                });
                format!("{line}\n")
            })
            .collect();
        let response = http
            .post(&url)
            .bearer_auth(&key)
            .body(body)
            .send()
            .await
            .map_err(|error| {
                anyhow::anyhow!("client {client}, batch {batch}: the request failed: {error}")
            })?;
        let status = response.status();
        let retry_after = response.headers().get("retry-after").cloned();
        let text = response.text().await?;
        if status.is_success() {
            let answer: Value = serde_json::from_str(&text)?;
            anyhow::ensure!(
                answer["rows_added"] == rows.len(),
                "client {client}, batch {batch} sent {} rows: {answer}",
                rows.len()
            );
            let version = answer["version"]
                .as_i64()
                .ok_or_else(|| anyhow::anyhow!("no version in {answer}"))?;
            log.versions.push(version);
            log.accepted_rows.extend(rows);
        } else if status.as_u16() == 429 {
            let seconds = retry_after
                .as_ref()
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse::<u64>().ok());
            anyhow::ensure!(
                seconds.is_some_and(|seconds| seconds >= 1),
                "a 429 without a valid Retry-After ({retry_after:?}): {text}"
            );
            log.rejected += 1;
            // A short pause rather than the full Retry-After, so that the
            // tenant stays over its quota for the whole run.
            tokio::time::sleep(Duration::from_millis(50)).await;
        } else {
            anyhow::bail!(
                "client {client}, batch {batch}: expected 2xx or 429, got {status}: {text}"
            );
        }
        batch += 1;
    }
    Ok(log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_keeps_every_accepted_row_once() -> anyhow::Result<()> {
    let length = run_length()?;
    // A quota of 20 requests a minute for each second of the run lets 900
    // requests through in the default 30 s, 600 of them at once at the
    // start, since the limiter's burst is a minute's worth. A server that
    // completes more than 30 inserts a second therefore rejects some with 429.
    let per_minute = 20 * length.as_secs();
    let config = Config::parse(
        &format!("[quotas.acme]\nrequests_per_minute = {per_minute}\n"),
        "load test config",
    )?;
    let (_db, host) = setup_with(config, &[]).await?;
    let acme = host.catalog().create_tenant("acme").await?;
    let ours = tenant_tables(&host, &acme).await?;
    ours.create_table(
        "events",
        &sandtable_tests::tables::columns(&["client:int", "batch:int", "item:int", "note:string"]),
    )
    .await?;
    let server = ApiServer::start(&host).await?;

    let end = Instant::now() + length;
    let clients: Vec<_> = (0..CLIENTS as i64)
        .map(|client| {
            tokio::spawn(run_client(
                client,
                server.url("/v1/tables/events/rows"),
                acme.api_key.clone(),
                end,
            ))
        })
        .collect();
    let mut accepted_rows = Vec::new();
    let mut versions = Vec::new();
    let mut rejected = 0;
    for client in clients {
        let log = client.await??;
        accepted_rows.extend(log.accepted_rows);
        versions.extend(log.versions);
        rejected += log.rejected;
    }
    println!(
        "{} inserts accepted with {} rows, {rejected} rejected with 429, in {length:?}",
        versions.len(),
        accepted_rows.len()
    );
    assert!(
        rejected > 0,
        "no request got 429 from a quota of {per_minute} a minute"
    );
    assert!(!versions.is_empty(), "no insert was accepted");

    // Each accepted insert made its own version, and together they are
    // versions 1, 2, 3, ... after the creation's 0.
    versions.sort_unstable();
    let expected: Vec<i64> = (1..=versions.len() as i64).collect();
    assert_eq!(versions, expected, "the accepted inserts' versions");
    let history = ours.history("events").await?;
    assert_eq!(history.len(), versions.len() + 1, "versions in the history");

    let query = SelectQuery {
        columns: Some("client, batch, item".to_owned()),
        ..SelectQuery::default()
    };
    let stored = dump_query(&ours, "events", query, false).await?;
    let mut stored_rows: Vec<(i64, i64, i64)> = stored
        .iter()
        .map(|row| {
            (
                row["client"].as_i64().unwrap_or(-1),
                row["batch"].as_i64().unwrap_or(-1),
                row["item"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    stored_rows.sort_unstable();
    accepted_rows.sort_unstable();
    let unique: BTreeSet<_> = stored_rows.iter().collect();
    assert_eq!(unique.len(), stored_rows.len(), "a row is stored twice");
    assert_eq!(
        stored_rows.len(),
        accepted_rows.len(),
        "stored rows against rows of 2xx responses"
    );
    assert!(
        stored_rows == accepted_rows,
        "the stored rows differ from the rows of the 2xx responses"
    );
    Ok(())
}
