//! Decoding of argument columns into the parameter types of functions.

use crate::__private::{Kind, Param};
use crate::types::{CallError, Column, Values};
use crate::value::{Json, Timestamp};
use crate::view::{BytesView, JsonView, Nullable, StrView, VectorView};

/// A parameter type of a batch function: a borrowed view of a whole column.
///
/// Implemented for `&[bool]`, `&[i64]`, `&[f64]`, `&[Timestamp]`,
/// `&[[f32; N]]`, [`StrView`], [`BytesView`], [`JsonView`], [`VectorView`]
/// and [`Nullable`] of any of them. The items are hidden because only code
/// that `#[udf]` generates uses them.
pub trait BatchArg<'a>: Copy + Sized {
    /// One row of the view.
    #[doc(hidden)]
    type Item;

    /// The column type, with the dimension when the type fixes it.
    #[doc(hidden)]
    const KIND: Kind;

    /// Whether the parameter accepts null rows.
    #[doc(hidden)]
    const TAKES_NULLS: bool = false;

    /// Checks that `column` is of this type and has `rows` rows, and wraps it.
    /// The caller has checked `column.nulls`.
    #[doc(hidden)]
    fn decode(column: &'a Column, rows: usize, param: &Param) -> Result<Self, CallError>;

    /// Returns the number of rows.
    #[doc(hidden)]
    fn row_count(&self) -> usize;

    /// Returns row `row`.
    ///
    /// # Panics
    ///
    /// Panics when `row` is out of range.
    #[doc(hidden)]
    fn item(&self, row: usize) -> Self::Item;
}

/// A parameter type of a scalar function: one row of a column.
///
/// Implemented for `bool`, `i64`, `f64`, `&str`, `&[u8]`, [`Json`],
/// [`Timestamp`], `&[f32]`, `&[f32; N]` and `Option` of any of them.
pub trait Arg<'a>: Sized {
    /// The view of the whole column that rows are read from.
    #[doc(hidden)]
    type View: BatchArg<'a>;

    /// Whether the parameter accepts null rows.
    #[doc(hidden)]
    const TAKES_NULLS: bool = false;

    /// Returns row `row`, or `None` when the row is null and this type does not
    /// accept nulls.
    #[doc(hidden)]
    fn get(view: &Self::View, nulls: &[bool], row: usize) -> Option<Self>;
}

/// Returns whether row `row` of a column with mask `nulls` is null.
#[inline(always)]
fn is_null(nulls: &[bool], row: usize) -> bool {
    nulls.get(row).copied().unwrap_or(false)
}

/// Implements `BatchArg` for a slice of fixed-width values and `Arg` for one
/// value.
macro_rules! fixed_width {
    ($ty:ty, $kind:ident, $variant:ident, $from_slice:expr) => {
        impl<'a> BatchArg<'a> for &'a [$ty] {
            type Item = $ty;

            const KIND: Kind = Kind::$kind;

            fn decode(column: &'a Column, rows: usize, param: &Param) -> Result<Self, CallError> {
                let Values::$variant(values) = &column.values else {
                    return Err(param.type_mismatch(Kind::$kind, &column.values));
                };
                param.check_len(values.len(), rows)?;
                Ok($from_slice(values))
            }

            fn row_count(&self) -> usize {
                self.len()
            }

            #[inline(always)]
            fn item(&self, row: usize) -> $ty {
                self[row]
            }
        }

        impl<'a> Arg<'a> for $ty {
            type View = &'a [$ty];

            #[inline(always)]
            fn get(view: &Self::View, nulls: &[bool], row: usize) -> Option<Self> {
                if is_null(nulls, row) {
                    return None;
                }
                Some(view[row])
            }
        }
    };
}

fixed_width!(bool, Bool, Bool, |values: &'a Vec<bool>| values.as_slice());
fixed_width!(i64, Int, Int, |values: &'a Vec<i64>| values.as_slice());
fixed_width!(f64, Float, Float, |values: &'a Vec<f64>| values.as_slice());
fixed_width!(Timestamp, Timestamp, Timestamp, timestamps_from_micros);

/// Reinterprets `i64` microseconds as timestamps.
fn timestamps_from_micros(values: &[i64]) -> &[Timestamp] {
    // SAFETY: `Timestamp` is `repr(transparent)` over `i64`, so both slices
    // have the same layout, length and lifetime.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<Timestamp>(), values.len()) }
}

/// Implements `Arg` for a type that its view's `BatchArg::item` returns.
macro_rules! offset_arg {
    ($ty:ty, $view:ty) => {
        impl<'a> Arg<'a> for $ty {
            type View = $view;

            #[inline(always)]
            fn get(view: &Self::View, nulls: &[bool], row: usize) -> Option<Self> {
                if is_null(nulls, row) {
                    return None;
                }
                Some(view.item(row))
            }
        }
    };
}

impl<'a> BatchArg<'a> for StrView<'a> {
    type Item = &'a str;

    const KIND: Kind = Kind::String;

    fn decode(column: &'a Column, rows: usize, param: &Param) -> Result<Self, CallError> {
        let Values::String(strings) = &column.values else {
            return Err(param.type_mismatch(Kind::String, &column.values));
        };
        StrView::validate(&strings.data, &strings.offsets, rows)
            .map_err(|detail| param.invalid(&detail))
    }

    fn row_count(&self) -> usize {
        self.len()
    }

    #[inline(always)]
    fn item(&self, row: usize) -> &'a str {
        self.get(row).expect("row index within the column")
    }
}

offset_arg!(&'a str, StrView<'a>);

impl<'a> BatchArg<'a> for BytesView<'a> {
    type Item = &'a [u8];

    const KIND: Kind = Kind::Bytes;

    fn decode(column: &'a Column, rows: usize, param: &Param) -> Result<Self, CallError> {
        let Values::Bytes(bytes) = &column.values else {
            return Err(param.type_mismatch(Kind::Bytes, &column.values));
        };
        BytesView::validate(&bytes.data, &bytes.offsets, rows)
            .map_err(|detail| param.invalid(&detail))
    }

    fn row_count(&self) -> usize {
        self.len()
    }

    #[inline(always)]
    fn item(&self, row: usize) -> &'a [u8] {
        self.get(row).expect("row index within the column")
    }
}

offset_arg!(&'a [u8], BytesView<'a>);

impl<'a> BatchArg<'a> for JsonView<'a> {
    type Item = Json<'a>;

    const KIND: Kind = Kind::Json;

    fn decode(column: &'a Column, rows: usize, param: &Param) -> Result<Self, CallError> {
        let Values::Json(documents) = &column.values else {
            return Err(param.type_mismatch(Kind::Json, &column.values));
        };
        StrView::validate(&documents.data, &documents.offsets, rows)
            .map(JsonView)
            .map_err(|detail| param.invalid(&detail))
    }

    fn row_count(&self) -> usize {
        self.len()
    }

    #[inline(always)]
    fn item(&self, row: usize) -> Json<'a> {
        self.get(row).expect("row index within the column")
    }
}

offset_arg!(Json<'a>, JsonView<'a>);

/// Returns the vector column of `column` after checking its dimension
/// against `expected`.
fn vector_column<'a>(
    column: &'a Column,
    expected: Option<u32>,
    param: &Param,
) -> Result<(&'a [f32], usize), CallError> {
    let Values::Vector(vectors) = &column.values else {
        return Err(param.type_mismatch(Kind::Vector(expected), &column.values));
    };
    let Some(expected) = expected else {
        return Err(param.invalid("is a vector without a declared dimension"));
    };
    if vectors.dimension != expected {
        return Err(param.invalid(&format!(
            "has dimension {}, but the function declares {expected}",
            vectors.dimension
        )));
    }
    Ok((&vectors.data, expected as usize))
}

impl<'a> BatchArg<'a> for VectorView<'a> {
    type Item = &'a [f32];

    const KIND: Kind = Kind::Vector(None);

    fn decode(column: &'a Column, rows: usize, param: &Param) -> Result<Self, CallError> {
        let (data, dimension) = vector_column(column, param.dimension, param)?;
        VectorView::validate(data, dimension, rows).map_err(|detail| param.invalid(&detail))
    }

    fn row_count(&self) -> usize {
        self.len()
    }

    #[inline(always)]
    fn item(&self, row: usize) -> &'a [f32] {
        self.get(row).expect("row index within the column")
    }
}

offset_arg!(&'a [f32], VectorView<'a>);

impl<'a, const N: usize> BatchArg<'a> for &'a [[f32; N]] {
    type Item = &'a [f32; N];

    const KIND: Kind = Kind::Vector(Some(N as u32));

    fn decode(column: &'a Column, rows: usize, param: &Param) -> Result<Self, CallError> {
        let (data, dimension) = vector_column(column, Some(N as u32), param)?;
        VectorView::validate(data, dimension, rows).map_err(|detail| param.invalid(&detail))?;
        let (vectors, rest) = data.as_chunks::<N>();
        debug_assert!(rest.is_empty());
        Ok(vectors)
    }

    fn row_count(&self) -> usize {
        self.len()
    }

    #[inline(always)]
    fn item(&self, row: usize) -> &'a [f32; N] {
        &self[row]
    }
}

impl<'a, const N: usize> Arg<'a> for &'a [f32; N] {
    type View = &'a [[f32; N]];

    #[inline(always)]
    fn get(view: &Self::View, nulls: &[bool], row: usize) -> Option<Self> {
        if is_null(nulls, row) {
            return None;
        }
        Some(&view[row])
    }
}

impl<'a, T: Arg<'a>> Arg<'a> for Option<T> {
    type View = T::View;

    const TAKES_NULLS: bool = true;

    #[inline(always)]
    fn get(view: &Self::View, nulls: &[bool], row: usize) -> Option<Self> {
        Some(T::get(view, nulls, row))
    }
}

impl<'a, V: BatchArg<'a>> BatchArg<'a> for Nullable<'a, V> {
    type Item = Option<V::Item>;

    const KIND: Kind = V::KIND;

    const TAKES_NULLS: bool = true;

    fn decode(column: &'a Column, rows: usize, param: &Param) -> Result<Self, CallError> {
        let values = V::decode(column, rows, param)?;
        Ok(Nullable {
            values,
            nulls: &column.nulls,
        })
    }

    fn row_count(&self) -> usize {
        self.values.row_count()
    }

    #[inline(always)]
    fn item(&self, row: usize) -> Option<V::Item> {
        self.get(row)
    }
}
