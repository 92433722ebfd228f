//! Sandtable's host: Postgres tables whose computed columns are filled by
//! sandboxed WebAssembly UDF plugins.
//!
//! - [`sandbox`] loads plugins and runs batches under fuel, memory and
//!   wall-clock limits.
//! - [`catalog`] stores tenants and plugins in Postgres.
//! - [`pg`] reaches Postgres: a server from `DATABASE_URL`, or the embedded
//!   cluster under the data directory.
//! - [`pool`] rate-limits what plugins send, per tenant and pool, across
//!   processes; [`config`] reads the operator's `config.toml`.
//! - [`fortunes`] reads the fortune corpus of the demo and benchmarks.
//! - [`server`] is the HTTP API of `sandtable serve`.
//! - [`cli`] is the `sandtable` command, a thin layer over the rest.

pub mod catalog;
pub mod cli;
pub mod config;
pub mod fortunes;
pub mod pg;
pub mod pool;
pub mod sandbox;
pub mod server;
pub mod table;
pub mod telemetry;

/// Joins an error and its causes with `: `, leaving out a cause whose text
/// the message already contains, since some errors (sqlx's among them)
/// print their source and also return it as the source.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        let text = error.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = error.source();
    }
    message
}
