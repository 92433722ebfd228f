//! `sandtable stats`: per-function call figures from the catalog, and one
//! sample of the host's resources.

use std::time::Duration;

use serde_json::json;

use super::Env;
use crate::sandbox::{FaultClass, FunctionStats};
use crate::telemetry::monitor::host::{self, HostSample};

/// Prints calls, rows, faults by class, error rates and latency
/// percentiles per function over the last `minutes` minutes, summed over
/// every process, and then one sample of the host's resources.
pub(crate) async fn run(env: &Env, minutes: u64, as_json: bool) -> anyhow::Result<()> {
    if minutes == 0 {
        anyhow::bail!("--minutes 0 sums no time; give 1 or more minutes");
    }
    let (catalog, tenant) = env.catalog().await?;
    let window = Duration::from_secs(minutes.saturating_mul(60));
    let stats = catalog.function_stats(&tenant, window).await?;
    // A host without procfs still gets the functions' figures.
    let host = host::sample_once()
        .await
        .map_err(|error| format!("cannot read the host's resources from /proc: {error}"));
    if as_json {
        let functions: Vec<_> = stats
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
                    "error_rate": error_rate(stats),
                    "latency_p50_us": stats.latency_percentile_us(50.0),
                    "latency_p95_us": stats.latency_percentile_us(95.0),
                    "latency_p99_us": stats.latency_percentile_us(99.0),
                })
            })
            .collect();
        let report = match &host {
            Ok(host) => json!({"functions": functions, "host": host}),
            Err(error) => json!({"functions": functions, "host": null, "host_error": error}),
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    if stats.is_empty() {
        println!("no calls in the last {minutes} minutes");
    } else {
        print_functions(&stats);
    }
    println!();
    match &host {
        Ok(host) => print_host(host),
        Err(error) => println!("{error}"),
    }
    Ok(())
}

/// Returns the share of guest calls that faulted, from 0 to 1.
fn error_rate(stats: &FunctionStats) -> f64 {
    let faults: u64 = stats.faults.iter().sum();
    faults as f64 / stats.calls.max(1) as f64
}

fn print_functions(stats: &[(crate::sandbox::FunctionKey, FunctionStats)]) {
    let mut table = super::table([
        "FUNCTION", "CALLS", "ROWS", "FAULTS", "ERRORS", "P50", "P95", "P99", "FUEL/ROW",
    ]);
    let slowest = crate::sandbox::LATENCY_BUCKETS_US[crate::sandbox::LATENCY_BUCKETS_US.len() - 1];
    let bound = |value: Option<u64>| {
        value.map_or_else(|| format!("> {slowest} us"), |us| format!("<= {us} us"))
    };
    for (key, stats) in stats {
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
            format!("{:.1} %", error_rate(stats) * 100.0),
            bound(stats.latency_percentile_us(50.0)),
            bound(stats.latency_percentile_us(95.0)),
            bound(stats.latency_percentile_us(99.0)),
            (stats.fuel / stats.rows.max(1)).to_string(),
        ]);
    }
    println!("{table}");
    println!(
        "errors are the faulted share of guest calls, re-runs included; latency is instantiate \
         plus guest time, as the upper bound of its histogram bucket"
    );
}

fn print_host(host: &HostSample) {
    let mut table = super::table(["HOST", "NOW"]);
    table.add_row(["cpu".to_owned(), format!("{:.1} %", host.cpu_percent)]);
    table.add_row([
        "memory".to_owned(),
        format!(
            "{} of {} in use ({:.1} %)",
            bytes(host.memory_used_bytes as f64),
            bytes(host.memory_total_bytes as f64),
            host.memory_percent()
        ),
    ]);
    table.add_row([
        "disk".to_owned(),
        format!(
            "{}/s read, {}/s written",
            bytes(host.disk_read_bytes_per_second),
            bytes(host.disk_written_bytes_per_second)
        ),
    ]);
    table.add_row([
        "network".to_owned(),
        format!(
            "{}/s received, {}/s sent",
            bytes(host.network_received_bytes_per_second),
            bytes(host.network_sent_bytes_per_second)
        ),
    ]);
    println!("{table}");
}

/// Formats a byte count with a binary unit.
fn bytes(value: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = value;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
