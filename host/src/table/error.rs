//! The errors of table operations.

use crate::catalog::CatalogError;
use crate::sandbox::CallError;

use super::expr::ParseError;
use super::input::InputError;

/// A failure of a table operation. Nothing of a failed write is stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// The database failed.
    #[error("database query failed")]
    Db(#[from] sqlx::Error),
    /// The catalog failed, or a plugin it names cannot be found or loaded.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The sandbox refused a call for a reason of the host's.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The input does not fit the table.
    #[error(transparent)]
    Input(#[from] InputError),
    /// An expression, predicate or column list does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// Reading the input failed.
    #[error("reading the input failed")]
    Io(#[from] std::io::Error),
    /// No table, snapshot, column or version has the given name.
    #[error("{0}")]
    NotFound(String),
    /// A name is taken, or the operation conflicts with what depends on it.
    #[error("{0}")]
    Conflict(String),
    /// A name, type, value or expression is not valid here.
    #[error("{0}")]
    Invalid(String),
    /// A computed cell failed under `on_error = abort`.
    #[error("{0}")]
    CellFailed(String),
    /// An insert would leave the tenant's tables holding more live rows
    /// than its quota.
    #[error(
        "tenant `{tenant}` may store {max_rows} rows and stores {stored}, so {adding} more do not \
         fit; delete rows, or raise `max_rows` in `[quotas.{tenant}]` of the configuration"
    )]
    RowsQuota {
        /// The tenant.
        tenant: String,
        /// Its quota.
        max_rows: u64,
        /// The live rows its tables hold.
        stored: u64,
        /// The rows of the insert.
        adding: u64,
    },
}

/// The result of table operations.
pub type Result<T, E = TableError> = std::result::Result<T, E>;
