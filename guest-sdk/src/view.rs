//! Borrowed views of argument columns, for batch functions.
//!
//! Each view borrows the buffers that the host's call handed the guest, so
//! reading a row copies nothing.

use crate::BatchArg;
use crate::value::Json;

/// The rows of a `string` column, each a `&str` slice of the column's one
/// buffer.
#[derive(Clone, Copy, Debug)]
pub struct StrView<'a> {
    data: &'a str,
    offsets: &'a [u32],
}

impl<'a> StrView<'a> {
    /// Checks the column's layout and wraps it.
    ///
    /// On error, returns what is wrong with the offsets, as a phrase that
    /// follows the parameter's name.
    pub(crate) fn validate(data: &'a str, offsets: &'a [u32], rows: usize) -> Result<Self, String> {
        validate_offsets(data.len(), offsets, rows)?;
        let bytes = data.as_bytes();

        // A byte that is not a UTF-8 continuation byte (0b10xx_xxxx) starts a
        // character, and so does the end of the data.
        let on_boundary = |offset: &u32| {
            let offset = *offset as usize;
            offset == bytes.len() || (bytes[offset] as i8) >= -0x40
        };
        if let Some(offset) = offsets.iter().find(|offset| !on_boundary(offset)) {
            return Err(format!(
                "has offset {offset}, which is inside a UTF-8 character"
            ));
        }
        Ok(Self { data, offsets })
    }

    /// Returns the number of rows.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Returns whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns row `row`, or `None` when `row` is out of range.
    ///
    /// A null row is an empty string: check the mask of a [`Nullable`].
    #[inline]
    pub fn get(&self, row: usize) -> Option<&'a str> {
        let start = *self.offsets.get(row)? as usize;
        let end = *self.offsets.get(row + 1)? as usize;
        // SAFETY: `validate` checked that the offsets never decrease, that the
        // last one is the data's length, and that each is on a character
        // boundary, so `start..end` is a valid `str` range of `data`.
        Some(unsafe { self.data.get_unchecked(start..end) })
    }

    /// Iterates over the rows in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a str> + DoubleEndedIterator + 'a {
        let data = self.data;
        self.offsets.windows(2).map(move |pair| {
            // SAFETY: as in `get`.
            unsafe { data.get_unchecked(pair[0] as usize..pair[1] as usize) }
        })
    }

    /// Returns every row's text, end to end.
    pub fn data(&self) -> &'a str {
        self.data
    }

    /// Returns the byte offsets of the rows in [`data`](Self::data): one more
    /// than the number of rows.
    pub fn offsets(&self) -> &'a [u32] {
        self.offsets
    }
}

/// The rows of a `bytes` column, each a `&[u8]` slice of the column's one
/// buffer.
#[derive(Clone, Copy, Debug)]
pub struct BytesView<'a> {
    data: &'a [u8],
    offsets: &'a [u32],
}

impl<'a> BytesView<'a> {
    /// Checks the column's layout and wraps it.
    pub(crate) fn validate(
        data: &'a [u8],
        offsets: &'a [u32],
        rows: usize,
    ) -> Result<Self, String> {
        validate_offsets(data.len(), offsets, rows)?;
        Ok(Self { data, offsets })
    }

    /// Returns the number of rows.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Returns whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns row `row`, or `None` when `row` is out of range.
    #[inline]
    pub fn get(&self, row: usize) -> Option<&'a [u8]> {
        let start = *self.offsets.get(row)? as usize;
        let end = *self.offsets.get(row + 1)? as usize;
        self.data.get(start..end)
    }

    /// Iterates over the rows in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + DoubleEndedIterator + 'a {
        let data = self.data;
        self.offsets
            .windows(2)
            .map(move |pair| &data[pair[0] as usize..pair[1] as usize])
    }

    /// Returns every row's bytes, end to end.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Returns the offsets of the rows in [`data`](Self::data): one more than
    /// the number of rows.
    pub fn offsets(&self) -> &'a [u32] {
        self.offsets
    }
}

/// The rows of a `json` column, each a [`Json`] slice of the column's one
/// buffer.
#[derive(Clone, Copy, Debug)]
pub struct JsonView<'a>(pub(crate) StrView<'a>);

impl<'a> JsonView<'a> {
    /// Returns the number of rows.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Returns whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Returns row `row`, or `None` when `row` is out of range.
    #[inline]
    pub fn get(&self, row: usize) -> Option<Json<'a>> {
        self.0.get(row).map(Json)
    }

    /// Iterates over the rows in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Json<'a>> + DoubleEndedIterator + 'a {
        self.0.iter().map(Json)
    }

    /// Returns the rows as text.
    pub fn as_strs(&self) -> StrView<'a> {
        self.0
    }
}

/// The rows of a `vector` column, each a `&[f32]` of the column's dimension.
#[derive(Clone, Copy, Debug)]
pub struct VectorView<'a> {
    data: &'a [f32],
    dimension: usize,
    rows: usize,
}

impl<'a> VectorView<'a> {
    /// Checks the column's layout and wraps it.
    pub(crate) fn validate(data: &'a [f32], dimension: usize, rows: usize) -> Result<Self, String> {
        if rows.checked_mul(dimension) != Some(data.len()) {
            return Err(format!(
                "has {} values, but {rows} rows of dimension {dimension} need {}",
                data.len(),
                rows as u128 * dimension as u128,
            ));
        }
        Ok(Self {
            data,
            dimension,
            rows,
        })
    }

    /// Returns the number of rows.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Returns whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Returns the number of elements in every row.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Returns row `row`, or `None` when `row` is out of range.
    #[inline]
    pub fn get(&self, row: usize) -> Option<&'a [f32]> {
        if row >= self.rows {
            return None;
        }
        let start = row * self.dimension;
        self.data.get(start..start + self.dimension)
    }

    /// Iterates over the rows in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [f32]> + DoubleEndedIterator + 'a {
        let Self {
            data,
            dimension,
            rows,
        } = *self;
        (0..rows).map(move |row| &data[row * dimension..(row + 1) * dimension])
    }

    /// Returns every row's elements, row after row.
    pub fn as_flat(&self) -> &'a [f32] {
        self.data
    }
}

/// A batch parameter that takes nulls: the values of a column and its null
/// mask.
///
/// A batch function with a `Nullable` parameter takes nulls, so the host
/// calls it for rows whose arguments are null.
#[derive(Clone, Copy, Debug)]
pub struct Nullable<'a, V> {
    pub(crate) values: V,
    pub(crate) nulls: &'a [bool],
}

impl<'a, V: BatchArg<'a>> Nullable<'a, V> {
    /// Returns the values, where a null row contains a placeholder (`false`, `0`,
    /// an empty slice or zeros).
    pub fn values(&self) -> V {
        self.values
    }

    /// Returns the null mask: empty when no row is null, otherwise one flag a
    /// row, `true` where the row is null.
    pub fn nulls(&self) -> &'a [bool] {
        self.nulls
    }

    /// Returns the number of rows.
    pub fn len(&self) -> usize {
        self.values.row_count()
    }

    /// Returns whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns whether row `row` is null.
    #[inline]
    pub fn is_null(&self, row: usize) -> bool {
        self.nulls.get(row).copied().unwrap_or(false)
    }

    /// Returns row `row`, or `None` when it is null.
    ///
    /// # Panics
    ///
    /// Panics when `row` is out of range.
    #[inline]
    pub fn get(&self, row: usize) -> Option<V::Item> {
        let value = self.values.item(row);
        (!self.is_null(row)).then_some(value)
    }

    /// Iterates over the rows in order, with `None` for a null row.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Option<V::Item>> + '_ {
        (0..self.len()).map(|row| self.get(row))
    }
}

/// Checks the offsets of a `string` or `bytes` column of `rows` rows whose
/// data is `data_len` bytes long.
fn validate_offsets(data_len: usize, offsets: &[u32], rows: usize) -> Result<(), String> {
    if offsets.len() != rows.wrapping_add(1) {
        return Err(format!(
            "has {} offsets, but {rows} rows need {}",
            offsets.len(),
            rows as u64 + 1,
        ));
    }
    if offsets[0] != 0 {
        return Err(format!("has first offset {}, but it must be 0", offsets[0]));
    }
    let last = offsets[rows];
    if last as usize != data_len {
        return Err(format!(
            "has last offset {last}, but its data is {data_len} bytes long"
        ));
    }
    if let Some(row) = offsets.windows(2).position(|pair| pair[1] < pair[0]) {
        return Err(format!(
            "has offsets that decrease at row {row}, from {} to {}",
            offsets[row],
            offsets[row + 1],
        ));
    }
    Ok(())
}
