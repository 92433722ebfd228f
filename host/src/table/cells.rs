//! Batches of cells: the values of one column for a run of rows, with the
//! error of each computed cell, read from Postgres rows and written as
//! `COPY` fields.

use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::sandbox::types::Values;
use crate::sandbox::{Column, ColumnBuilder, DataType, string_at};

use super::binary_copy::BinaryCopyEncoder;
use super::error::{Result, TableError};
use super::expr::CellPart;
use super::schema::ColumnInfo;

/// The failure of a computed cell, which leaves it without a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellFailure {
    /// The error type: a fault class such as `guest_trap`.
    pub error_type: String,
    /// The error message.
    pub message: String,
}

/// One column's cells for a run of rows.
#[derive(Debug, Clone)]
pub struct Cells {
    /// The values; a failed cell is null.
    pub values: Column,
    /// For a computed column, the failure of each cell, if any; empty for
    /// other columns.
    pub errors: Vec<Option<CellFailure>>,
}

impl Cells {
    /// Cells without errors.
    pub fn plain(values: Column) -> Self {
        Cells {
            values,
            errors: Vec::new(),
        }
    }

    /// Returns the number of rows.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Returns whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Returns the failure of row `row`, if it failed.
    pub fn error(&self, row: usize) -> Option<&CellFailure> {
        self.errors.get(row).and_then(Option::as_ref)
    }

    /// Returns the error types or messages of the cells as a string column.
    pub fn error_part(&self, part: CellPart) -> Column {
        let rows = self.len();
        let mut builder = ColumnBuilder::new(&DataType::String, rows);
        for row in 0..rows {
            match (self.error(row), part) {
                (Some(failure), CellPart::ErrorType) => builder.push_str(&failure.error_type),
                (Some(failure), CellPart::ErrorMsg) => builder.push_str(&failure.message),
                _ => builder.push_null(),
            }
        }
        builder.finish()
    }

    /// Appends row `row` as `COPY` fields: the value, and for a computed
    /// column its error type and message.
    pub(crate) fn encode(&self, encoder: &mut BinaryCopyEncoder, row: usize, computed: bool) {
        encoder.push_cell(&self.values, row);
        if computed {
            let failure = self.error(row);
            encoder.push_str(failure.map(|f| f.error_type.as_str()));
            encoder.push_str(failure.map(|f| f.message.as_str()));
        }
    }

    /// Keeps the rows at `rows`, in that order.
    pub fn gather(&self, rows: &[usize]) -> Cells {
        Cells {
            values: self.values.gather(rows),
            errors: if self.errors.is_empty() {
                Vec::new()
            } else {
                rows.iter().map(|&row| self.errors[row].clone()).collect()
            },
        }
    }
}

/// Returns the SQL that reads the value of a column in the form [`CellReader`]
/// decodes: timestamps as microseconds, JSON as text, vectors as `real[]`.
pub(crate) fn value_select(column: &ColumnInfo, alias: Option<&str>) -> String {
    let name = match alias {
        Some(alias) => format!("{alias}.{}", column.sql(CellPart::Value)),
        None => column.sql(CellPart::Value),
    };
    match column.data_type {
        DataType::Timestamp => {
            format!("(extract(epoch FROM {name}) * 1000000)::bigint")
        }
        DataType::Json => format!("{name}::text"),
        DataType::Vector(_) => format!("{name}::real[]"),
        _ => name,
    }
}

/// Returns the select list that reads every part of `columns`: for each, the value,
/// and for a computed one also the error type and message.
pub(crate) fn cells_select(columns: &[&ColumnInfo]) -> Vec<String> {
    let mut select = Vec::new();
    for column in columns {
        select.push(value_select(column, None));
        if column.is_computed() {
            select.push(column.sql(CellPart::ErrorType));
            select.push(column.sql(CellPart::ErrorMsg));
        }
    }
    select
}

/// Decodes Postgres rows into [`Cells`], one for each column, reading the
/// fields in the order [`cells_select`] gives them, from field `first` on.
pub(crate) struct CellReader {
    columns: Vec<(DataType, bool)>,
    builders: Vec<ColumnBuilder>,
    errors: Vec<Vec<Option<CellFailure>>>,
}

impl CellReader {
    pub(crate) fn new(columns: &[&ColumnInfo], capacity: usize) -> Self {
        CellReader {
            columns: columns
                .iter()
                .map(|c| (c.data_type, c.is_computed()))
                .collect(),
            builders: columns
                .iter()
                .map(|c| ColumnBuilder::new(&c.data_type, capacity))
                .collect(),
            errors: columns.iter().map(|_| Vec::new()).collect(),
        }
    }

    /// Appends one row, whose fields for these columns start at `first`.
    pub(crate) fn push(&mut self, row: &PgRow, first: usize) -> Result<()> {
        let mut field = first;
        for (index, (data_type, computed)) in self.columns.iter().enumerate() {
            let builder = &mut self.builders[index];
            decode_value(builder, data_type, row, field)?;
            field += 1;
            if *computed {
                let error_type: Option<String> = row.try_get(field)?;
                let message: Option<String> = row.try_get(field + 1)?;
                field += 2;
                self.errors[index].push(error_type.map(|error_type| CellFailure {
                    error_type,
                    message: message.unwrap_or_default(),
                }));
            }
        }
        Ok(())
    }

    /// Finishes the cells, one for each column.
    pub(crate) fn finish(self) -> Vec<Cells> {
        self.builders
            .into_iter()
            .zip(self.errors)
            .map(|(builder, errors)| Cells {
                values: builder.finish(),
                errors,
            })
            .collect()
    }
}

pub(crate) fn decode_value(
    builder: &mut ColumnBuilder,
    data_type: &DataType,
    row: &PgRow,
    field: usize,
) -> Result<()> {
    match data_type {
        DataType::Bool => match row.try_get::<Option<bool>, _>(field)? {
            Some(value) => builder.push_bool(value),
            None => builder.push_null(),
        },
        DataType::Int | DataType::Timestamp => match row.try_get::<Option<i64>, _>(field)? {
            Some(value) => builder.push_int(value),
            None => builder.push_null(),
        },
        DataType::Float => match row.try_get::<Option<f64>, _>(field)? {
            Some(value) => builder.push_float(value),
            None => builder.push_null(),
        },
        DataType::String | DataType::Json => match row.try_get::<Option<&str>, _>(field)? {
            Some(value) => builder.push_str(value),
            None => builder.push_null(),
        },
        DataType::Bytes => match row.try_get::<Option<&[u8]>, _>(field)? {
            Some(value) => builder.push_bytes(value),
            None => builder.push_null(),
        },
        DataType::Vector(dimension) => match row.try_get::<Option<Vec<f32>>, _>(field)? {
            Some(value) if value.len() == *dimension as usize => builder.push_vector(&value),
            Some(value) => {
                return Err(TableError::Invalid(format!(
                    "a stored vector has {} elements where vector({dimension}) was declared",
                    value.len()
                )));
            }
            None => builder.push_null(),
        },
    }
    Ok(())
}

/// Builds a column of `rows` copies of the value in `single`, a column of
/// one row.
pub(crate) fn repeat(single: &Column, rows: usize) -> Column {
    let mut builder = ColumnBuilder::new(&single.values.data_type(), rows);
    for _ in 0..rows {
        builder.push_from(single, 0);
    }
    builder.finish()
}

/// Row `row` of `column` as short text for a message.
pub(crate) fn describe_value(column: &Column, row: usize) -> String {
    if column.is_null(row) {
        return "null".into();
    }
    let text = match &column.values {
        Values::String(c) => format!("{:?}", string_at(c, row)),
        _ => super::values::cell_json(column, row).to_string(),
    };
    super::schema::truncate(&text, 60)
}
