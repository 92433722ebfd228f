//! Reading rows to insert: JSON Lines, a JSON array or CSV with a header,
//! streamed in batches of columns.

use std::io::BufRead;
use std::ops::ControlFlow;
use std::path::Path;

use crate::sandbox::{Column, DataType};

/// The format of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// One JSON object a line.
    Jsonl,
    /// One JSON array of objects.
    Json,
    /// CSV with a header row of column names.
    Csv,
}

impl InputFormat {
    /// The format a file name's extension names, if any.
    pub fn from_path(path: &Path) -> Option<Self> {
        let _ = path;
        None
    }

    /// The format the first bytes of an input suggest, if any.
    pub fn sniff(head: &[u8]) -> Option<Self> {
        let _ = head;
        None
    }
}

/// The columns an input may give values for.
#[derive(Debug, Clone)]
pub struct InputSchema {
    /// The table's name, for messages.
    pub table: String,
    /// The columns that take input, in table order.
    pub columns: Vec<(String, DataType)>,
    /// The names of computed columns, which take no input.
    pub computed: Vec<String>,
}

/// A batch of input rows, as one column for each of the schema's columns.
#[derive(Debug, Clone)]
pub struct RowBatch {
    /// The number (from 1) of the batch's first row in the input.
    pub first_row: u64,
    /// The number of rows.
    pub rows: usize,
    /// One column for each of [`InputSchema::columns`], in order.
    pub columns: Vec<Column>,
}

/// An input that cannot be read or does not fit the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InputError {
    /// The row (from 1) where the problem is, if it is in a row.
    pub row: Option<u64>,
    /// The column concerned, if any.
    pub column: Option<String>,
    /// The whole message, naming the row, the column and the value.
    pub message: String,
}

// TODO: the readers.

/// Reads `reader` to the end in `format`, and hands each batch of at most
/// `batch_rows` rows to `sink`, which may stop the reading. Returns the
/// number of rows read.
///
/// # Errors
///
/// Returns an [`InputError`] for the first row that cannot be read or does
/// not fit the schema.
pub fn read_batches<R: BufRead>(
    reader: R,
    format: InputFormat,
    schema: &InputSchema,
    batch_rows: usize,
    sink: impl FnMut(RowBatch) -> ControlFlow<()>,
) -> Result<u64, InputError> {
    let _ = (reader, format, schema, batch_rows, sink);
    Err(InputError {
        row: None,
        column: None,
        message: "input is not read yet".into(),
    })
}
