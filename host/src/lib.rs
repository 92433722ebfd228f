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
//! - [`cli`] is the `sandtable` command, a thin layer over the rest.

pub mod catalog;
pub mod cli;
pub mod config;
pub mod fortunes;
pub mod pg;
pub mod pool;
pub mod sandbox;
pub mod table;
pub mod telemetry;
