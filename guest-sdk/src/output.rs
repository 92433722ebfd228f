//! Encoding of function results into the result column.
//!
//! A builder appends each row's value to one buffer: fixed-width values to a
//! `Vec` of the column's type, text and bytes to one buffer plus offsets, and
//! vectors to one `Vec<f32>`. The null mask is allocated on the first null.

use std::borrow::Cow;
use std::fmt::Display;

use crate::__private::Kind;
use crate::types::{BytesColumn, CallError, Column, RowError, StringColumn, Values, VectorColumn};
use crate::value::{Json, JsonString, Timestamp};

/// A result type of a scalar function.
///
/// Implemented for `bool`, `i64`, `f64`, [`Timestamp`], `String`, `&str`,
/// `Box<str>`, `Cow<str>`, `Vec<u8>`, `&[u8]`, `Box<[u8]>`, [`JsonString`],
/// [`Json`], `serde_json::Value` (with the `serde_json` feature), `[f32; N]`,
/// `Vec<f32>`, `&[f32]`, `Box<[f32]>`, and `Option<T>` and `Result<T, E>`
/// (with `E: Display`) of any of them.
pub trait Output: Sized {
    /// The builder of the result column.
    #[doc(hidden)]
    type Builder: ColumnBuilder;

    /// The column type, with the dimension when the type fixes it.
    #[doc(hidden)]
    const KIND: Kind;

    /// Appends `self` as row `row`, or a null and a row error.
    #[doc(hidden)]
    fn write_row(self, out: &mut Self::Builder, row: usize, errors: &mut Vec<RowError>);

    /// Turns one value a row into a column. Fixed-width types move the vector
    /// into the column without copying it.
    #[doc(hidden)]
    fn collect(
        values: Vec<Self>,
        function: &'static str,
        dimension: Option<u32>,
        errors: &mut Vec<RowError>,
    ) -> Result<Column, CallError> {
        let mut out = Self::Builder::new(function, values.len(), dimension);
        for (row, value) in values.into_iter().enumerate() {
            value.write_row(&mut out, row, errors);
        }
        out.finish()
    }
}

/// A column under construction, one row at a time.
#[doc(hidden)]
pub trait ColumnBuilder {
    /// Creates a builder for `rows` rows of function `function`.
    fn new(function: &'static str, rows: usize, dimension: Option<u32>) -> Self;

    /// Appends a null row.
    fn push_null(&mut self);

    /// Returns the finished column.
    ///
    /// # Errors
    ///
    /// Returns `call-error::failed` when the column cannot be encoded.
    fn finish(self) -> Result<Column, CallError>;
}

/// The null mask of a column under construction.
#[derive(Default)]
#[doc(hidden)]
pub struct NullMask {
    flags: Vec<bool>,
}

impl NullMask {
    /// Marks row `row` as null, allocating the mask on the first null.
    #[cold]
    fn set(&mut self, row: usize, rows: usize) {
        if self.flags.len() <= row {
            self.flags.resize(rows.max(row + 1), false);
        }
        self.flags[row] = true;
    }

    /// Returns the mask for a column of `rows` rows.
    fn finish(mut self, rows: usize) -> Vec<bool> {
        if !self.flags.is_empty() {
            self.flags.resize(rows, false);
        }
        self.flags
    }
}

/// A fixed-width type that is a column of its own.
#[doc(hidden)]
pub trait FixedWidth: Copy + Default {
    /// Wraps a vector of values as the column's values.
    fn into_values(values: Vec<Self>) -> Values;
}

impl FixedWidth for bool {
    fn into_values(values: Vec<Self>) -> Values {
        Values::Bool(values)
    }
}

impl FixedWidth for i64 {
    fn into_values(values: Vec<Self>) -> Values {
        Values::Int(values)
    }
}

impl FixedWidth for f64 {
    fn into_values(values: Vec<Self>) -> Values {
        Values::Float(values)
    }
}

impl FixedWidth for Timestamp {
    fn into_values(values: Vec<Self>) -> Values {
        // The standard library reuses the allocation for a `map` between
        // types of the same layout, so this does not copy.
        Values::Timestamp(values.into_iter().map(Timestamp::as_micros).collect())
    }
}

/// Builds a `bool`, `int`, `float` or `timestamp` column.
#[doc(hidden)]
pub struct FixedBuilder<T> {
    values: Vec<T>,
    nulls: NullMask,
    rows: usize,
}

impl<T: FixedWidth> FixedBuilder<T> {
    #[inline(always)]
    fn push_value(&mut self, value: T) {
        self.values.push(value);
    }
}

impl<T: FixedWidth> ColumnBuilder for FixedBuilder<T> {
    fn new(_function: &'static str, rows: usize, _dimension: Option<u32>) -> Self {
        Self {
            values: Vec::with_capacity(rows),
            nulls: NullMask::default(),
            rows,
        }
    }

    fn push_null(&mut self) {
        self.nulls.set(self.values.len(), self.rows);
        self.values.push(T::default());
    }

    fn finish(self) -> Result<Column, CallError> {
        let rows = self.values.len();
        Ok(Column {
            values: T::into_values(self.values),
            nulls: self.nulls.finish(rows),
        })
    }
}

macro_rules! fixed_output {
    ($ty:ty, $kind:ident) => {
        impl Output for $ty {
            type Builder = FixedBuilder<$ty>;

            const KIND: Kind = Kind::$kind;

            #[inline(always)]
            fn write_row(self, out: &mut Self::Builder, _row: usize, _errors: &mut Vec<RowError>) {
                out.push_value(self);
            }

            fn collect(
                values: Vec<Self>,
                _function: &'static str,
                _dimension: Option<u32>,
                _errors: &mut Vec<RowError>,
            ) -> Result<Column, CallError> {
                Ok(Column {
                    values: <$ty as FixedWidth>::into_values(values),
                    nulls: Vec::new(),
                })
            }
        }
    };
}

fixed_output!(bool, Bool);
fixed_output!(i64, Int);
fixed_output!(f64, Float);
fixed_output!(Timestamp, Timestamp);

/// Builds a `string` column, or a `json` one when `JSON` is true.
#[doc(hidden)]
pub struct TextBuilder<const JSON: bool> {
    function: &'static str,
    data: String,
    offsets: Vec<u32>,
    nulls: NullMask,
    rows: usize,
}

/// The bytes reserved for each row of a text or bytes result before the
/// first row, so that short values need no reallocation.
const RESERVED_BYTES_PER_ROW: usize = 16;

impl<const JSON: bool> TextBuilder<JSON> {
    /// Ends the current row at the current end of the data.
    #[inline(always)]
    fn end_row(&mut self) {
        // A length past `u32::MAX` saturates here and fails in `finish`.
        self.offsets
            .push(u32::try_from(self.data.len()).unwrap_or(u32::MAX));
    }

    #[inline(always)]
    fn push_str(&mut self, value: &str) {
        self.data.push_str(value);
        self.end_row();
    }

    /// Serializes `value` as row text, straight into the data buffer.
    #[cfg(feature = "serde_json")]
    fn push_json_value(&mut self, value: &serde_json::Value) {
        // SAFETY: serde_json writes valid UTF-8, and the buffer is truncated
        // back to a character boundary should serialization fail.
        let buffer = unsafe { self.data.as_mut_vec() };
        let start = buffer.len();
        if serde_json::to_writer(&mut *buffer, value).is_err() {
            buffer.truncate(start);
        }
        self.end_row();
    }
}

impl<const JSON: bool> ColumnBuilder for TextBuilder<JSON> {
    fn new(function: &'static str, rows: usize, _dimension: Option<u32>) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Self {
            function,
            data: String::with_capacity(rows.saturating_mul(RESERVED_BYTES_PER_ROW)),
            offsets,
            nulls: NullMask::default(),
            rows,
        }
    }

    fn push_null(&mut self) {
        self.nulls.set(self.offsets.len() - 1, self.rows);
        self.end_row();
    }

    fn finish(self) -> Result<Column, CallError> {
        check_offsets_fit(self.function, self.data.len())?;
        let rows = self.offsets.len() - 1;
        let column = StringColumn {
            data: self.data,
            offsets: self.offsets,
        };
        let values = if JSON {
            Values::Json(column)
        } else {
            Values::String(column)
        };
        Ok(Column {
            values,
            nulls: self.nulls.finish(rows),
        })
    }
}

/// Fails when a result's data is too long for `u32` offsets.
fn check_offsets_fit(function: &'static str, len: usize) -> Result<(), CallError> {
    if u32::try_from(len).is_err() {
        return Err(CallError::Failed(format!(
            "`{function}` returned {len} bytes in one batch, more than the 4 GiB that \
             offsets can address; lower its batch size"
        )));
    }
    Ok(())
}

macro_rules! text_output {
    ($json:literal, $kind:ident, $($ty:ty),+ $(,)?) => {
        $(
            impl Output for $ty {
                type Builder = TextBuilder<$json>;

                const KIND: Kind = Kind::$kind;

                #[inline(always)]
                fn write_row(self, out: &mut Self::Builder, _row: usize, _errors: &mut Vec<RowError>) {
                    out.push_str(AsRef::<str>::as_ref(&self));
                }
            }
        )+
    };
}

text_output!(false, String, String, &str, Box<str>, Cow<'_, str>);
text_output!(true, Json, JsonString, Json<'_>);

#[cfg(feature = "serde_json")]
impl Output for serde_json::Value {
    type Builder = TextBuilder<true>;

    const KIND: Kind = Kind::Json;

    fn write_row(self, out: &mut Self::Builder, _row: usize, _errors: &mut Vec<RowError>) {
        out.push_json_value(&self);
    }
}

/// Builds a `bytes` column.
#[doc(hidden)]
pub struct BytesBuilder {
    function: &'static str,
    data: Vec<u8>,
    offsets: Vec<u32>,
    nulls: NullMask,
    rows: usize,
}

impl BytesBuilder {
    #[inline(always)]
    fn push_bytes(&mut self, value: &[u8]) {
        self.data.extend_from_slice(value);
        self.offsets
            .push(u32::try_from(self.data.len()).unwrap_or(u32::MAX));
    }
}

impl ColumnBuilder for BytesBuilder {
    fn new(function: &'static str, rows: usize, _dimension: Option<u32>) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Self {
            function,
            data: Vec::with_capacity(rows.saturating_mul(RESERVED_BYTES_PER_ROW)),
            offsets,
            nulls: NullMask::default(),
            rows,
        }
    }

    fn push_null(&mut self) {
        self.nulls.set(self.offsets.len() - 1, self.rows);
        self.push_bytes(&[]);
    }

    fn finish(self) -> Result<Column, CallError> {
        check_offsets_fit(self.function, self.data.len())?;
        let rows = self.offsets.len() - 1;
        Ok(Column {
            values: Values::Bytes(BytesColumn {
                data: self.data,
                offsets: self.offsets,
            }),
            nulls: self.nulls.finish(rows),
        })
    }
}

macro_rules! bytes_output {
    ($($ty:ty),+ $(,)?) => {
        $(
            impl Output for $ty {
                type Builder = BytesBuilder;

                const KIND: Kind = Kind::Bytes;

                #[inline(always)]
                fn write_row(self, out: &mut Self::Builder, _row: usize, _errors: &mut Vec<RowError>) {
                    out.push_bytes(AsRef::<[u8]>::as_ref(&self));
                }
            }
        )+
    };
}

bytes_output!(Vec<u8>, &[u8], Box<[u8]>);

/// Builds a `vector` column.
#[doc(hidden)]
pub struct VectorBuilder {
    function: &'static str,
    dimension: usize,
    data: Vec<f32>,
    nulls: NullMask,
    rows: usize,
    len: usize,
}

impl VectorBuilder {
    /// Appends one row, or a null and a row error when `value` does not have
    /// the column's dimension.
    #[inline(always)]
    fn push_vector(&mut self, value: &[f32], row: usize, errors: &mut Vec<RowError>) {
        if value.len() != self.dimension {
            errors.push(RowError {
                row: row as u32,
                message: format!(
                    "`{}` returned a vector of {} elements, but its result has dimension {}",
                    self.function,
                    value.len(),
                    self.dimension
                ),
            });
            self.push_null();
            return;
        }
        self.data.extend_from_slice(value);
        self.len += 1;
    }
}

impl ColumnBuilder for VectorBuilder {
    fn new(function: &'static str, rows: usize, dimension: Option<u32>) -> Self {
        // `#[udf]` rejects a vector result without a dimension at compile time.
        let dimension = dimension.unwrap_or(0) as usize;
        Self {
            function,
            dimension,
            data: Vec::with_capacity(rows.saturating_mul(dimension)),
            nulls: NullMask::default(),
            rows,
            len: 0,
        }
    }

    fn push_null(&mut self) {
        self.nulls.set(self.len, self.rows);
        self.data.resize(self.data.len() + self.dimension, 0.0);
        self.len += 1;
    }

    fn finish(self) -> Result<Column, CallError> {
        let Ok(dimension) = u32::try_from(self.dimension) else {
            return Err(CallError::Failed(format!(
                "`{}` has vector dimension {}, which does not fit in 32 bits",
                self.function, self.dimension
            )));
        };
        Ok(Column {
            values: Values::Vector(VectorColumn {
                dimension,
                data: self.data,
            }),
            nulls: self.nulls.finish(self.len),
        })
    }
}

macro_rules! vector_output {
    ($($ty:ty),+ $(,)?) => {
        $(
            impl Output for $ty {
                type Builder = VectorBuilder;

                const KIND: Kind = Kind::Vector(None);

                #[inline(always)]
                fn write_row(self, out: &mut Self::Builder, row: usize, errors: &mut Vec<RowError>) {
                    out.push_vector(AsRef::<[f32]>::as_ref(&self), row, errors);
                }
            }
        )+
    };
}

vector_output!(Vec<f32>, &[f32], Box<[f32]>);

impl<const N: usize> Output for [f32; N] {
    type Builder = VectorBuilder;

    const KIND: Kind = Kind::Vector(Some(N as u32));

    #[inline(always)]
    fn write_row(self, out: &mut Self::Builder, row: usize, errors: &mut Vec<RowError>) {
        out.push_vector(&self, row, errors);
    }
}

impl<T: Output> Output for Option<T> {
    type Builder = T::Builder;

    const KIND: Kind = T::KIND;

    #[inline(always)]
    fn write_row(self, out: &mut Self::Builder, row: usize, errors: &mut Vec<RowError>) {
        match self {
            Some(value) => value.write_row(out, row, errors),
            None => out.push_null(),
        }
    }
}

impl<T: Output, E: Display> Output for Result<T, E> {
    type Builder = T::Builder;

    const KIND: Kind = T::KIND;

    #[inline(always)]
    fn write_row(self, out: &mut Self::Builder, row: usize, errors: &mut Vec<RowError>) {
        match self {
            Ok(value) => value.write_row(out, row, errors),
            Err(error) => {
                out.push_null();
                errors.push(RowError {
                    row: row as u32,
                    message: error.to_string(),
                });
            }
        }
    }
}

/// A result type of a batch function: one value a row, or a failure of the
/// whole batch.
///
/// Implemented for `Vec<T>` with `T:` [`Output`], and for `Result<Vec<T>, E>`
/// with `E: Display`, whose `Err` fails the call with `call-error::failed`.
pub trait BatchOutput {
    /// The column type, with the dimension when the type fixes it.
    #[doc(hidden)]
    const KIND: Kind;

    /// Turns the result into a column of `rows` rows.
    #[doc(hidden)]
    fn into_column(
        self,
        function: &'static str,
        rows: usize,
        dimension: Option<u32>,
        errors: &mut Vec<RowError>,
    ) -> Result<Column, CallError>;
}

impl<T: Output> BatchOutput for Vec<T> {
    const KIND: Kind = T::KIND;

    fn into_column(
        self,
        function: &'static str,
        rows: usize,
        dimension: Option<u32>,
        errors: &mut Vec<RowError>,
    ) -> Result<Column, CallError> {
        if self.len() != rows {
            return Err(CallError::Failed(format!(
                "`{function}` returned {} values for a batch of {rows} rows",
                self.len()
            )));
        }
        T::collect(self, function, dimension, errors)
    }
}

impl<T: BatchOutput, E: Display> BatchOutput for Result<T, E> {
    const KIND: Kind = T::KIND;

    fn into_column(
        self,
        function: &'static str,
        rows: usize,
        dimension: Option<u32>,
        errors: &mut Vec<RowError>,
    ) -> Result<Column, CallError> {
        match self {
            Ok(values) => values.into_column(function, rows, dimension, errors),
            Err(error) => Err(CallError::Failed(format!("`{function}` failed: {error}"))),
        }
    }
}

/// The result type of a plugin's `init` function: `()` or `Result<(), E>`
/// with `E: Display`.
pub trait InitResult {
    /// Converts the result for the `lifecycle` export.
    #[doc(hidden)]
    fn into_init_result(self) -> Result<(), String>;
}

impl InitResult for () {
    fn into_init_result(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Display> InitResult for Result<(), E> {
    fn into_init_result(self) -> Result<(), String> {
        self.map_err(|error| error.to_string())
    }
}
