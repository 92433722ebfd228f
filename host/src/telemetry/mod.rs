//! Telemetry: tracing set-up for the binary, the Prometheus metrics of
//! `sandtable serve` ([`metrics`]), and its resource monitor ([`monitor`]).

pub mod metrics;
pub mod monitor;

use tracing_subscriber::EnvFilter;

/// How log records are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line, for log aggregation.
    Json,
}

/// Installs a global subscriber that writes to standard error.
///
/// `SANDTABLE_LOG` (an `EnvFilter` directive such as `sandtable=debug`)
/// chooses what is printed. Without it, text output shows warnings and JSON
/// output shows information records, timing records among them, except
/// Postgres notices.
pub fn init(format: LogFormat) {
    // Postgres notices such as "extension already exists, skipping" come
    // from idempotent set-up statements and mean nothing to the user. The
    // wasi:http client warns of every failed connect, which the request's
    // own record and the row's error already report.
    let default = match format {
        LogFormat::Text => "warn,wasmtime_wasi_http=error",
        LogFormat::Json => "info,sqlx::postgres::notice=warn,wasmtime_wasi_http=error",
    };
    let filter =
        EnvFilter::try_from_env("SANDTABLE_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
