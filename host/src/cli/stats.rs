//! `sandtable stats`: per-function call figures from the catalog.

use std::time::Duration;

use serde_json::json;

use super::Env;
use crate::sandbox::FaultClass;

/// Prints calls, rows, faults by class and latency percentiles per function
/// over the last `minutes` minutes, summed over every process.
pub(crate) async fn run(env: &Env, minutes: u64, as_json: bool) -> anyhow::Result<()> {
    if minutes == 0 {
        anyhow::bail!("--minutes 0 sums no time; give 1 or more minutes");
    }
    let (catalog, tenant) = env.catalog().await?;
    let window = Duration::from_secs(minutes.saturating_mul(60));
    let stats = catalog.function_stats(&tenant, window).await?;
    if as_json {
        let rows: Vec<_> = stats
            .iter()
            .map(|(key, stats)| {
                json!({
                    "plugin": key.plugin,
                    "version": key.version,
                    "function": key.function,
                    "calls": stats.calls,
                    "rows": stats.rows,
                    "guest_us": stats.guest_us,
                    "fuel": stats.fuel,
                    "faults": FaultClass::ALL
                        .iter()
                        .zip(stats.faults)
                        .map(|(class, count)| (class.as_str().to_owned(), json!(count)))
                        .collect::<serde_json::Map<_, _>>(),
                    "latency_p50_us": stats.latency_percentile_us(50.0),
                    "latency_p95_us": stats.latency_percentile_us(95.0),
                    "latency_p99_us": stats.latency_percentile_us(99.0),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if stats.is_empty() {
        println!("no calls in the last {minutes} minutes");
        return Ok(());
    }
    let mut table = super::table([
        "FUNCTION", "CALLS", "ROWS", "FAULTS", "P50", "P95", "P99", "FUEL/ROW",
    ]);
    let slowest = crate::sandbox::LATENCY_BUCKETS_US[crate::sandbox::LATENCY_BUCKETS_US.len() - 1];
    let bound = |value: Option<u64>| {
        value.map_or_else(|| format!("> {slowest} us"), |us| format!("<= {us} us"))
    };
    for (key, stats) in &stats {
        let faults: Vec<String> = FaultClass::ALL
            .iter()
            .zip(stats.faults)
            .filter(|(_, count)| *count > 0)
            .map(|(class, count)| format!("{class} {count}"))
            .collect();
        table.add_row([
            format!("{}@{}.{}", key.plugin, key.version, key.function),
            stats.calls.to_string(),
            stats.rows.to_string(),
            if faults.is_empty() {
                "-".to_owned()
            } else {
                faults.join(", ")
            },
            bound(stats.latency_percentile_us(50.0)),
            bound(stats.latency_percentile_us(95.0)),
            bound(stats.latency_percentile_us(99.0)),
            (stats.fuel / stats.rows.max(1)).to_string(),
        ]);
    }
    println!("{table}");
    println!("latency is instantiate plus guest time, as the upper bound of its histogram bucket");
    Ok(())
}
