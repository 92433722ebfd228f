//! Tables in Postgres: schemas, inserts, computed columns filled by
//! plugins, versions and snapshots.
//!
//! [`Tables`] is the API; every `sandtable` table command is a thin layer
//! over one of its methods. How rows, versions and writes are stored is
//! described in `migrations/0002_tables.sql` and in [`write`]'s module
//! documentation.

pub mod binary_copy;
mod cells;
mod columns;
mod compute;
mod error;
pub mod expr;
mod filter;
mod index;
pub(crate) use index::SESSION_SETTINGS;
pub mod input;
mod insert;
mod schema;
mod select;
mod tables;
pub mod values;
mod versions;
mod write;

pub use cells::{CellFailure, Cells};
pub use columns::ColumnAdded;
pub use error::{Result, TableError};
pub use index::{
    IndexAdded, IndexInfo, MAX_SEARCH_ROWS, Metric, SearchInput, SearchQuery, SearchResult,
};
pub use insert::INSERT_BATCH_ROWS;
pub use schema::{
    ColumnInfo, ComputedSpec, MAX_NAME_CHARS, TableSchema, check_name, parse_data_type,
};
pub use select::{OutputColumn, SelectQuery, SelectSource};
pub use tables::{NewColumn, TableDetails, TableSummary};
pub use versions::{SnapshotInfo, VersionEntry};
pub use write::Changes;

use crate::catalog::{Catalog, Tenant};
use crate::sandbox::UdfEngine;

/// The action taken when a computed cell fails.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Write nothing, and report the cell.
    #[default]
    Abort,
    /// Store a null value with the error type and message.
    Ignore,
}

/// Options of writes that compute cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// The action taken when a computed cell fails.
    pub on_error: OnError,
    /// How many batches run through plugins at once.
    pub workers: usize,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            on_error: OnError::Abort,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// Receives the progress of a long write.
pub trait Progress: Send + Sync {
    /// The number of rows the write will process.
    fn start(&self, total_rows: u64) {
        let _ = total_rows;
    }
    /// `rows` more rows are done.
    fn advance(&self, rows: u64) {
        let _ = rows;
    }
}

/// Reports no progress.
impl Progress for () {}

/// The result of a write.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct WriteSummary {
    /// The table.
    pub table: String,
    /// The version the write made.
    pub version: i64,
    /// What changed.
    #[serde(flatten)]
    pub changes: Changes,
    /// The computed cells that failed and were stored with their error.
    pub cell_errors: u64,
}

/// The tables of one tenant.
#[derive(Clone)]
pub struct Tables {
    catalog: Catalog,
    engine: UdfEngine,
    tenant: Tenant,
    /// The schemas and indexes of committed versions, which never change,
    /// as searches read them.
    versions: std::sync::Arc<index::VersionCache>,
}

impl Tables {
    /// Creates the tables API of `tenant`, computing cells with `engine`.
    pub fn new(catalog: Catalog, engine: UdfEngine, tenant: Tenant) -> Self {
        Tables {
            catalog,
            engine,
            tenant,
            versions: std::sync::Arc::default(),
        }
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Returns the engine that runs the plugins.
    pub fn engine(&self) -> &UdfEngine {
        &self.engine
    }

    /// The tenant.
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }
}
