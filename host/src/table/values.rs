//! Cell values in their text forms: JSON and CSV input, literals, and the
//! JSON and text a `select` prints.

use crate::sandbox::{Column, ColumnBuilder, DataType};

use super::expr::Literal;

/// A value that does not fit its column's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValueError {
    /// What is wrong, naming the value and the type it was meant to be.
    pub message: String,
}

// TODO: the conversions.

/// Appends a JSON value to `builder`, a column of `data_type`.
///
/// # Errors
///
/// Returns a [`ValueError`] when the value does not fit the type.
pub fn push_json(
    builder: &mut ColumnBuilder,
    data_type: &DataType,
    value: &serde_json::Value,
) -> Result<(), ValueError> {
    let _ = (builder, data_type, value);
    Err(ValueError {
        message: "not converted yet".into(),
    })
}

/// Appends a CSV field to `builder`; an empty field is null.
///
/// # Errors
///
/// Returns a [`ValueError`] when the text does not fit the type.
pub fn push_text(
    builder: &mut ColumnBuilder,
    data_type: &DataType,
    text: &str,
) -> Result<(), ValueError> {
    let _ = (builder, data_type, text);
    Err(ValueError {
        message: "not converted yet".into(),
    })
}

/// Appends a literal to `builder`.
///
/// # Errors
///
/// Returns a [`ValueError`] when the literal does not fit the type.
pub fn push_literal(
    builder: &mut ColumnBuilder,
    data_type: &DataType,
    literal: &Literal,
) -> Result<(), ValueError> {
    let _ = (builder, data_type, literal);
    Err(ValueError {
        message: "not converted yet".into(),
    })
}

/// Row `row` of `column` as JSON, in the form [`push_json`] reads.
pub fn cell_json(column: &Column, row: usize) -> serde_json::Value {
    column.json_at(row)
}

/// Row `row` of `column` as text, in the form [`push_text`] reads; `None`
/// for null.
pub fn cell_text(column: &Column, row: usize) -> Option<String> {
    if column.is_null(row) {
        None
    } else {
        Some(column.json_at(row).to_string())
    }
}
