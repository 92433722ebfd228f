//! Constructors and accessors of the WIT `column` record, for tests and for
//! raw functions.

use crate::types::{BytesColumn, Column, StringColumn, Values, VectorColumn};
use crate::value::{Timestamp, Value};

/// Packs `values` into one buffer and its offsets.
fn pack<'v>(values: impl IntoIterator<Item = &'v [u8]>) -> (Vec<u8>, Vec<u32>) {
    let mut data = Vec::new();
    let mut offsets = vec![0];
    for value in values {
        data.extend_from_slice(value);
        offsets.push(u32::try_from(data.len()).expect("column data longer than 4 GiB"));
    }
    (data, offsets)
}

/// Packs strings into one buffer and its offsets.
fn pack_strings<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> StringColumn {
    let mut data = String::new();
    let mut offsets = vec![0];
    for value in values {
        data.push_str(value.as_ref());
        offsets.push(u32::try_from(data.len()).expect("column data longer than 4 GiB"));
    }
    StringColumn { data, offsets }
}

impl Column {
    /// Creates a `bool` column without nulls.
    pub fn bools(values: impl IntoIterator<Item = bool>) -> Self {
        Self {
            values: Values::Bool(values.into_iter().collect()),
            nulls: Vec::new(),
        }
    }

    /// Creates an `int` column without nulls.
    pub fn ints(values: impl IntoIterator<Item = i64>) -> Self {
        Self {
            values: Values::Int(values.into_iter().collect()),
            nulls: Vec::new(),
        }
    }

    /// Creates a `float` column without nulls.
    pub fn floats(values: impl IntoIterator<Item = f64>) -> Self {
        Self {
            values: Values::Float(values.into_iter().collect()),
            nulls: Vec::new(),
        }
    }

    /// Creates a `timestamp` column without nulls.
    pub fn timestamps(values: impl IntoIterator<Item = Timestamp>) -> Self {
        let micros = values.into_iter().map(Timestamp::as_micros).collect();
        Self {
            values: Values::Timestamp(micros),
            nulls: Vec::new(),
        }
    }

    /// Creates a `string` column without nulls.
    ///
    /// # Panics
    ///
    /// Panics when the strings add up to more than 4 GiB.
    pub fn strings<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> Self {
        Self {
            values: Values::String(pack_strings(values)),
            nulls: Vec::new(),
        }
    }

    /// Creates a `json` column without nulls from the documents' text.
    ///
    /// # Panics
    ///
    /// Panics when the documents add up to more than 4 GiB.
    pub fn json<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> Self {
        Self {
            values: Values::Json(pack_strings(values)),
            nulls: Vec::new(),
        }
    }

    /// Creates a `bytes` column without nulls.
    ///
    /// # Panics
    ///
    /// Panics when the values add up to more than 4 GiB.
    pub fn bytes<B: AsRef<[u8]>>(values: impl IntoIterator<Item = B>) -> Self {
        let values: Vec<B> = values.into_iter().collect();
        let (data, offsets) = pack(values.iter().map(AsRef::as_ref));
        Self {
            values: Values::Bytes(BytesColumn { data, offsets }),
            nulls: Vec::new(),
        }
    }

    /// Creates a `vector` column of dimension `dimension` without nulls.
    ///
    /// # Panics
    ///
    /// Panics when a vector does not have `dimension` elements.
    pub fn vectors<V: AsRef<[f32]>>(dimension: u32, values: impl IntoIterator<Item = V>) -> Self {
        let mut data = Vec::new();
        for (row, value) in values.into_iter().enumerate() {
            let value = value.as_ref();
            assert_eq!(
                value.len(),
                dimension as usize,
                "vector of row {row} has {} elements, but the column has dimension {dimension}",
                value.len()
            );
            data.extend_from_slice(value);
        }
        Self {
            values: Values::Vector(VectorColumn { dimension, data }),
            nulls: Vec::new(),
        }
    }

    /// Sets the null mask: one flag a row, `true` where the row is null.
    ///
    /// The values stay as they are, so a null row keeps its value rather than
    /// the placeholder that the host would send.
    pub fn with_nulls(mut self, nulls: impl IntoIterator<Item = bool>) -> Self {
        self.nulls = nulls.into_iter().collect();
        self
    }

    /// Returns the number of rows, as the values count them.
    pub fn len(&self) -> usize {
        match &self.values {
            Values::Bool(values) => values.len(),
            Values::Int(values) | Values::Timestamp(values) => values.len(),
            Values::Float(values) => values.len(),
            Values::String(strings) | Values::Json(strings) => {
                strings.offsets.len().saturating_sub(1)
            }
            Values::Bytes(bytes) => bytes.offsets.len().saturating_sub(1),
            Values::Vector(vectors) => match vectors.dimension {
                // Zero-dimension rows take no space, so only the mask counts
                // them.
                0 => self.nulls.len(),
                dimension => vectors.data.len() / dimension as usize,
            },
        }
    }

    /// Returns whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns whether row `row` is null.
    pub fn is_null(&self, row: usize) -> bool {
        self.nulls.get(row).copied().unwrap_or(false)
    }

    /// Returns row `row`, or `None` when it is null.
    ///
    /// # Panics
    ///
    /// Panics when `row` is out of range or the column's offsets are invalid.
    pub fn value(&self, row: usize) -> Option<Value<'_>> {
        if self.is_null(row) {
            return None;
        }
        let range = |offsets: &[u32]| offsets[row] as usize..offsets[row + 1] as usize;
        let value = match &self.values {
            Values::Bool(values) => Value::Bool(values[row]),
            Values::Int(values) => Value::Int(values[row]),
            Values::Float(values) => Value::Float(values[row]),
            Values::Timestamp(values) => Value::Timestamp(Timestamp(values[row])),
            Values::String(strings) => Value::String(
                strings
                    .data
                    .get(range(&strings.offsets))
                    .expect("valid string offsets"),
            ),
            Values::Json(strings) => Value::Json(
                strings
                    .data
                    .get(range(&strings.offsets))
                    .expect("valid string offsets"),
            ),
            Values::Bytes(bytes) => Value::Bytes(
                bytes
                    .data
                    .get(range(&bytes.offsets))
                    .expect("valid byte offsets"),
            ),
            Values::Vector(vectors) => {
                let dimension = vectors.dimension as usize;
                Value::Vector(&vectors.data[row * dimension..(row + 1) * dimension])
            }
        };
        Some(value)
    }

    /// Returns every row, with `None` for a null row.
    ///
    /// # Panics
    ///
    /// Panics when the column's offsets are invalid.
    pub fn to_values(&self) -> Vec<Option<Value<'_>>> {
        (0..self.len()).map(|row| self.value(row)).collect()
    }

    /// Replaces the value of every null row with the placeholder: `false`,
    /// `0`, an empty slice or zeros.
    pub(crate) fn clear_null_rows(&mut self) {
        let nulls = &self.nulls;
        let is_null = |row: usize| nulls.get(row).copied().unwrap_or(false);
        match &mut self.values {
            Values::Bool(values) => clear_fixed(values, nulls),
            Values::Int(values) | Values::Timestamp(values) => clear_fixed(values, nulls),
            Values::Float(values) => clear_fixed(values, nulls),
            Values::String(strings) | Values::Json(strings) => {
                let mut packed = pack_strings((0..strings.offsets.len() - 1).map(|row| {
                    if is_null(row) {
                        ""
                    } else {
                        &strings.data[range(&strings.offsets, row)]
                    }
                }));
                std::mem::swap(strings, &mut packed);
            }
            Values::Bytes(bytes) => {
                let (data, offsets) = pack((0..bytes.offsets.len() - 1).map(|row| {
                    if is_null(row) {
                        &[][..]
                    } else {
                        &bytes.data[range(&bytes.offsets, row)]
                    }
                }));
                *bytes = BytesColumn { data, offsets };
            }
            Values::Vector(vectors) => {
                let dimension = vectors.dimension as usize;
                if dimension > 0 {
                    for (row, vector) in vectors.data.chunks_exact_mut(dimension).enumerate() {
                        if is_null(row) {
                            vector.fill(0.0);
                        }
                    }
                }
            }
        }
    }
}

/// Returns the byte range of row `row`.
fn range(offsets: &[u32], row: usize) -> std::ops::Range<usize> {
    offsets[row] as usize..offsets[row + 1] as usize
}

/// Sets every null row of `values` to the default value.
fn clear_fixed<T: Default>(values: &mut [T], nulls: &[bool]) {
    for (value, &null) in values.iter_mut().zip(nulls) {
        if null {
            *value = T::default();
        }
    }
}
