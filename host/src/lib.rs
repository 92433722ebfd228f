//! Sandtable's host: Postgres tables whose computed columns are filled by
//! sandboxed WebAssembly UDF plugins.

pub mod sandbox;
