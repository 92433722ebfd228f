//! Flat columns as they cross the boundary: length, size, validation,
//! slicing, gathering and building, and conversion from and to JSON.

use std::fmt;

use super::types::{BytesColumn, Column, DataType, StringColumn, Values, VectorColumn};

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Bool => f.write_str("bool"),
            DataType::Int => f.write_str("int"),
            DataType::Float => f.write_str("float"),
            DataType::String => f.write_str("string"),
            DataType::Bytes => f.write_str("bytes"),
            DataType::Json => f.write_str("json"),
            DataType::Timestamp => f.write_str("timestamp"),
            DataType::Vector(dimension) => write!(f, "vector({dimension})"),
        }
    }
}

impl Values {
    /// The number of rows, or `None` when the layout is malformed (offsets
    /// empty, or vector data not a multiple of the dimension).
    pub fn rows(&self) -> Option<usize> {
        match self {
            Values::Bool(v) => Some(v.len()),
            Values::Int(v) | Values::Timestamp(v) => Some(v.len()),
            Values::Float(v) => Some(v.len()),
            Values::String(c) | Values::Json(c) => c.offsets.len().checked_sub(1),
            Values::Bytes(c) => c.offsets.len().checked_sub(1),
            Values::Vector(c) => {
                let dimension = c.dimension as usize;
                if dimension == 0 || c.data.len() % dimension != 0 {
                    None
                } else {
                    Some(c.data.len() / dimension)
                }
            }
        }
    }

    /// The type of these values; a vector column reports its own dimension.
    pub fn data_type(&self) -> DataType {
        match self {
            Values::Bool(_) => DataType::Bool,
            Values::Int(_) => DataType::Int,
            Values::Float(_) => DataType::Float,
            Values::String(_) => DataType::String,
            Values::Bytes(_) => DataType::Bytes,
            Values::Json(_) => DataType::Json,
            Values::Timestamp(_) => DataType::Timestamp,
            Values::Vector(c) => DataType::Vector(c.dimension),
        }
    }
}

impl Column {
    /// The number of rows, or 0 for a malformed column.
    pub fn len(&self) -> usize {
        self.values.rows().unwrap_or(0)
    }

    /// Whether the column has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether row `row` is null.
    pub fn is_null(&self, row: usize) -> bool {
        self.nulls.get(row).copied().unwrap_or(false)
    }

    /// Whether any row is null.
    pub fn has_nulls(&self) -> bool {
        self.nulls.iter().any(|&null| null)
    }

    /// The size of the column on the wire, in bytes: the values (8 a row for
    /// ints, floats and timestamps, 1 for bools, 4 an element for vectors,
    /// the data plus 4 an offset for strings, JSON and bytes) plus one byte a
    /// row of null mask when there is one.
    pub fn byte_len(&self) -> u64 {
        let values = match &self.values {
            Values::Bool(v) => v.len(),
            Values::Int(v) | Values::Timestamp(v) => v.len() * 8,
            Values::Float(v) => v.len() * 8,
            Values::String(c) | Values::Json(c) => c.data.len() + c.offsets.len() * 4,
            Values::Bytes(c) => c.data.len() + c.offsets.len() * 4,
            Values::Vector(c) => c.data.len() * 4,
        };
        (values + self.nulls.len()) as u64
    }

    /// Checks that this column is a well-formed column of `expected` with
    /// `rows` rows, as the host requires of every guest output.
    ///
    /// # Errors
    ///
    /// Returns a message naming the first broken rule.
    pub fn validate(&self, expected: &DataType, rows: usize) -> Result<(), String> {
        let actual = self.values.data_type();
        if &actual != expected {
            return Err(format!(
                "returned a {actual} column where {expected} was declared"
            ));
        }
        let Some(actual_rows) = self.values.rows() else {
            return Err(format!("returned a malformed {actual} column"));
        };
        if actual_rows != rows {
            return Err(format!("returned {actual_rows} rows for a batch of {rows}"));
        }
        if !self.nulls.is_empty() && self.nulls.len() != rows {
            return Err(format!(
                "returned {} null flags for {rows} rows",
                self.nulls.len()
            ));
        }
        match &self.values {
            Values::String(c) => validate_offsets(&c.offsets, c.data.len(), Some(&c.data)),
            Values::Json(c) => {
                validate_offsets(&c.offsets, c.data.len(), Some(&c.data))?;
                for row in 0..rows {
                    if self.is_null(row) {
                        continue;
                    }
                    let text = string_at(c, row);
                    if let Err(error) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
                        return Err(format!("returned invalid JSON in row {row}: {error}"));
                    }
                }
                Ok(())
            }
            Values::Bytes(c) => validate_offsets(&c.offsets, c.data.len(), None),
            _ => Ok(()),
        }
    }

    /// Copies rows `start..end` into a new column.
    ///
    /// The column must be well formed and the range within it.
    pub fn slice(&self, start: usize, end: usize) -> Column {
        let nulls = if self.nulls.is_empty() {
            Vec::new()
        } else {
            self.nulls[start..end].to_vec()
        };
        let values = match &self.values {
            Values::Bool(v) => Values::Bool(v[start..end].to_vec()),
            Values::Int(v) => Values::Int(v[start..end].to_vec()),
            Values::Timestamp(v) => Values::Timestamp(v[start..end].to_vec()),
            Values::Float(v) => Values::Float(v[start..end].to_vec()),
            Values::String(c) => Values::String(slice_strings(c, start, end)),
            Values::Json(c) => Values::Json(slice_strings(c, start, end)),
            Values::Bytes(c) => {
                let (lo, hi) = (c.offsets[start] as usize, c.offsets[end] as usize);
                Values::Bytes(BytesColumn {
                    data: c.data[lo..hi].to_vec(),
                    offsets: rebase(&c.offsets[start..=end]),
                })
            }
            Values::Vector(c) => {
                let dimension = c.dimension as usize;
                Values::Vector(VectorColumn {
                    dimension: c.dimension,
                    data: c.data[start * dimension..end * dimension].to_vec(),
                })
            }
        };
        Column { values, nulls }
    }

    /// Copies the rows at `rows`, in that order, into a new column.
    pub fn gather(&self, rows: &[usize]) -> Column {
        let mut builder = ColumnBuilder::new(&self.values.data_type(), rows.len());
        for &row in rows {
            builder.push_from(self, row);
        }
        builder.finish()
    }

    /// Builds a column of `rows` nulls of `data_type`.
    pub fn nulls(data_type: &DataType, rows: usize) -> Column {
        let mut builder = ColumnBuilder::new(data_type, rows);
        for _ in 0..rows {
            builder.push_null();
        }
        builder.finish()
    }

    /// Marks row `row` null, adding a null mask if the column has none.
    pub fn set_null(&mut self, row: usize) {
        if self.nulls.is_empty() {
            self.nulls = vec![false; self.len()];
        }
        self.nulls[row] = true;
    }

    /// Converts row `row` to JSON: `null`, or the value (a string for bytes,
    /// as lowercase hex; the parsed document for JSON; `"NaN"`, `"inf"` or
    /// `"-inf"` for floats JSON cannot hold).
    pub fn json_at(&self, row: usize) -> serde_json::Value {
        use serde_json::Value as J;
        if self.is_null(row) {
            return J::Null;
        }
        match &self.values {
            Values::Bool(v) => J::Bool(v[row]),
            Values::Int(v) | Values::Timestamp(v) => J::from(v[row]),
            // JSON has no NaN or infinity, so they print as strings rather
            // than as `null`, which would read as a null cell.
            Values::Float(v) => serde_json::Number::from_f64(v[row])
                .map_or_else(|| J::String(v[row].to_string()), J::Number),
            Values::String(c) => J::String(string_at(c, row).to_owned()),
            Values::Json(c) => serde_json::from_str(string_at(c, row)).unwrap_or(J::Null),
            Values::Bytes(c) => {
                let (lo, hi) = (c.offsets[row] as usize, c.offsets[row + 1] as usize);
                J::String(hex::encode(&c.data[lo..hi]))
            }
            Values::Vector(c) => {
                let dimension = c.dimension as usize;
                let elements = &c.data[row * dimension..(row + 1) * dimension];
                J::Array(
                    elements
                        .iter()
                        .map(|&x| {
                            serde_json::Number::from_f64(f64::from(x))
                                .map_or_else(|| J::String(x.to_string()), J::Number)
                        })
                        .collect(),
                )
            }
        }
    }

    /// Builds a column of `data_type` from JSON values, one a row, for
    /// `plugin call` and tests. Bytes are given as hex strings, timestamps as
    /// integer microseconds, and JSON as any value.
    ///
    /// # Errors
    ///
    /// Returns a message naming the row and the value that does not fit.
    pub fn from_json(data_type: &DataType, values: &[serde_json::Value]) -> Result<Column, String> {
        let mut builder = ColumnBuilder::new(data_type, values.len());
        for (row, value) in values.iter().enumerate() {
            builder
                .push_json(value)
                .map_err(|expected| format!("row {row}: {value} is not {expected}"))?;
        }
        Ok(builder.finish())
    }
}

/// Returns row `row` of a well-formed string column.
pub(crate) fn string_at(column: &StringColumn, row: usize) -> &str {
    &column.data[column.offsets[row] as usize..column.offsets[row + 1] as usize]
}

fn validate_offsets(offsets: &[u32], data_len: usize, text: Option<&str>) -> Result<(), String> {
    if offsets.first() != Some(&0) {
        return Err("returned offsets that do not start at 0".into());
    }
    if offsets.last().map(|&end| end as usize) != Some(data_len) {
        return Err(format!(
            "returned offsets that end at {} for {data_len} bytes of data",
            offsets.last().copied().unwrap_or(0)
        ));
    }
    for (row, pair) in offsets.windows(2).enumerate() {
        if pair[0] > pair[1] {
            return Err(format!("returned decreasing offsets at row {row}"));
        }
        if let Some(text) = text
            && !text.is_char_boundary(pair[1] as usize)
        {
            return Err(format!(
                "returned an offset inside a UTF-8 character at row {row}"
            ));
        }
    }
    Ok(())
}

fn slice_strings(c: &StringColumn, start: usize, end: usize) -> StringColumn {
    let (lo, hi) = (c.offsets[start] as usize, c.offsets[end] as usize);
    StringColumn {
        data: c.data[lo..hi].to_owned(),
        offsets: rebase(&c.offsets[start..=end]),
    }
}

fn rebase(offsets: &[u32]) -> Vec<u32> {
    let base = offsets[0];
    offsets.iter().map(|offset| offset - base).collect()
}

/// Builds a column row by row.
pub struct ColumnBuilder {
    values: Values,
    nulls: Vec<bool>,
    any_null: bool,
}

impl ColumnBuilder {
    /// Starts an empty column of `data_type` with room for `capacity` rows.
    pub fn new(data_type: &DataType, capacity: usize) -> Self {
        let strings = || StringColumn {
            data: String::new(),
            offsets: {
                let mut offsets = Vec::with_capacity(capacity + 1);
                offsets.push(0);
                offsets
            },
        };
        let values = match data_type {
            DataType::Bool => Values::Bool(Vec::with_capacity(capacity)),
            DataType::Int => Values::Int(Vec::with_capacity(capacity)),
            DataType::Float => Values::Float(Vec::with_capacity(capacity)),
            DataType::Timestamp => Values::Timestamp(Vec::with_capacity(capacity)),
            DataType::String => Values::String(strings()),
            DataType::Json => Values::Json(strings()),
            DataType::Bytes => Values::Bytes(BytesColumn {
                data: Vec::new(),
                offsets: strings().offsets,
            }),
            DataType::Vector(dimension) => Values::Vector(VectorColumn {
                dimension: *dimension,
                data: Vec::with_capacity(capacity * *dimension as usize),
            }),
        };
        ColumnBuilder {
            values,
            nulls: Vec::with_capacity(capacity),
            any_null: false,
        }
    }

    /// Appends a null row.
    pub fn push_null(&mut self) {
        match &mut self.values {
            Values::Bool(v) => v.push(false),
            Values::Int(v) | Values::Timestamp(v) => v.push(0),
            Values::Float(v) => v.push(0.0),
            Values::String(c) | Values::Json(c) => c.offsets.push(c.data.len() as u32),
            Values::Bytes(c) => c.offsets.push(c.data.len() as u32),
            Values::Vector(c) => c
                .data
                .extend(std::iter::repeat_n(0.0, c.dimension as usize)),
        }
        self.nulls.push(true);
        self.any_null = true;
    }

    /// Appends row `row` of `source`, which must have this builder's type.
    pub fn push_from(&mut self, source: &Column, row: usize) {
        if source.is_null(row) {
            self.push_null();
            return;
        }
        match (&mut self.values, &source.values) {
            (Values::Bool(v), Values::Bool(s)) => v.push(s[row]),
            (Values::Int(v), Values::Int(s)) | (Values::Timestamp(v), Values::Timestamp(s)) => {
                v.push(s[row])
            }
            (Values::Float(v), Values::Float(s)) => v.push(s[row]),
            (Values::String(c), Values::String(s)) | (Values::Json(c), Values::Json(s)) => {
                c.data.push_str(string_at(s, row));
                c.offsets.push(c.data.len() as u32);
            }
            (Values::Bytes(c), Values::Bytes(s)) => {
                let (lo, hi) = (s.offsets[row] as usize, s.offsets[row + 1] as usize);
                c.data.extend_from_slice(&s.data[lo..hi]);
                c.offsets.push(c.data.len() as u32);
            }
            (Values::Vector(c), Values::Vector(s)) if c.dimension == s.dimension => {
                let dimension = c.dimension as usize;
                c.data
                    .extend_from_slice(&s.data[row * dimension..(row + 1) * dimension]);
            }
            (values, source) => panic!(
                "column builder of {} given a row of {}",
                values.data_type(),
                source.data_type()
            ),
        }
        self.nulls.push(false);
    }

    /// Appends a bool; the builder must be of type bool.
    pub fn push_bool(&mut self, value: bool) {
        match &mut self.values {
            Values::Bool(v) => v.push(value),
            values => panic!("column builder of {} given a bool", values.data_type()),
        }
        self.nulls.push(false);
    }

    /// Appends an int, or a timestamp in microseconds since the Unix epoch;
    /// the builder must be of type int or timestamp.
    pub fn push_int(&mut self, value: i64) {
        match &mut self.values {
            Values::Int(v) | Values::Timestamp(v) => v.push(value),
            values => panic!("column builder of {} given an int", values.data_type()),
        }
        self.nulls.push(false);
    }

    /// Appends a float; the builder must be of type float.
    pub fn push_float(&mut self, value: f64) {
        match &mut self.values {
            Values::Float(v) => v.push(value),
            values => panic!("column builder of {} given a float", values.data_type()),
        }
        self.nulls.push(false);
    }

    /// Appends a string, or the text of a JSON document; the builder must be
    /// of type string or json.
    pub fn push_str(&mut self, value: &str) {
        match &mut self.values {
            Values::String(c) | Values::Json(c) => {
                c.data.push_str(value);
                c.offsets.push(c.data.len() as u32);
            }
            values => panic!("column builder of {} given a string", values.data_type()),
        }
        self.nulls.push(false);
    }

    /// Appends bytes; the builder must be of type bytes.
    pub fn push_bytes(&mut self, value: &[u8]) {
        match &mut self.values {
            Values::Bytes(c) => {
                c.data.extend_from_slice(value);
                c.offsets.push(c.data.len() as u32);
            }
            values => panic!("column builder of {} given bytes", values.data_type()),
        }
        self.nulls.push(false);
    }

    /// Appends a vector; the builder must be of type vector with
    /// `value.len()` dimensions.
    pub fn push_vector(&mut self, value: &[f32]) {
        match &mut self.values {
            Values::Vector(c) if c.dimension as usize == value.len() => {
                c.data.extend_from_slice(value)
            }
            values => panic!(
                "column builder of {} given a vector of {}",
                values.data_type(),
                value.len()
            ),
        }
        self.nulls.push(false);
    }

    /// Returns the number of rows appended so far.
    pub fn len(&self) -> usize {
        self.nulls.len()
    }

    /// Returns whether no row was appended yet.
    pub fn is_empty(&self) -> bool {
        self.nulls.is_empty()
    }

    /// Appends a value given as JSON; on a mismatch, returns what was
    /// expected.
    pub fn push_json(&mut self, value: &serde_json::Value) -> Result<(), String> {
        use serde_json::Value as J;
        if value.is_null() {
            self.push_null();
            return Ok(());
        }
        match (&mut self.values, value) {
            (Values::Bool(v), J::Bool(b)) => v.push(*b),
            (Values::Int(v), J::Number(n)) | (Values::Timestamp(v), J::Number(n))
                if n.as_i64().is_some() =>
            {
                v.push(n.as_i64().unwrap_or_default())
            }
            (Values::Float(v), J::Number(n)) => v.push(n.as_f64().unwrap_or_default()),
            (Values::String(c), J::String(s)) => {
                c.data.push_str(s);
                c.offsets.push(c.data.len() as u32);
            }
            (Values::Json(c), value) => {
                c.data.push_str(&value.to_string());
                c.offsets.push(c.data.len() as u32);
            }
            (Values::Bytes(c), J::String(s)) => {
                let bytes = hex::decode(s).map_err(|_| "a hex string of bytes".to_owned())?;
                c.data.extend_from_slice(&bytes);
                c.offsets.push(c.data.len() as u32);
            }
            (Values::Vector(c), J::Array(items)) if items.len() == c.dimension as usize => {
                for item in items {
                    let element = item
                        .as_f64()
                        .ok_or_else(|| format!("a vector of {} numbers", c.dimension))?;
                    c.data.push(element as f32);
                }
            }
            (values, _) => return Err(format!("of type {}", values.data_type())),
        }
        self.nulls.push(false);
        Ok(())
    }

    /// Finishes the column; the null mask is left empty when no row is null.
    pub fn finish(self) -> Column {
        Column {
            values: self.values,
            nulls: if self.any_null {
                self.nulls
            } else {
                Vec::new()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(rows: &[Option<&str>]) -> Column {
        let values: Vec<_> = rows.iter().map(|row| json!(row)).collect();
        Column::from_json(&DataType::String, &values).unwrap()
    }

    #[test]
    fn from_json_builds_strings_with_offsets() {
        let column = strings(&[Some("ab"), None, Some("cde")]);
        let Values::String(c) = &column.values else {
            panic!("not a string column")
        };
        assert_eq!(c.data, "abcde");
        assert_eq!(c.offsets, [0, 2, 2, 5]);
        assert_eq!(column.nulls, [false, true, false]);
        assert_eq!(column.len(), 3);
    }

    #[test]
    fn slice_rebases_offsets() {
        let column = strings(&[Some("ab"), Some("c"), Some("def")]);
        let slice = column.slice(1, 3);
        assert_eq!(slice.json_at(0), json!("c"));
        assert_eq!(slice.json_at(1), json!("def"));
        assert!(slice.validate(&DataType::String, 2).is_ok());
    }

    #[test]
    fn gather_keeps_requested_rows_in_order() {
        let column = strings(&[Some("a"), Some("b"), Some("c")]);
        let gathered = column.gather(&[2, 0]);
        assert_eq!(gathered.json_at(0), json!("c"));
        assert_eq!(gathered.json_at(1), json!("a"));
    }

    #[test]
    fn validate_rejects_wrong_length() {
        let column = strings(&[Some("a")]);
        let error = column.validate(&DataType::String, 2).unwrap_err();
        assert_eq!(error, "returned 1 rows for a batch of 2");
    }

    #[test]
    fn validate_rejects_wrong_type() {
        let column = strings(&[Some("a")]);
        let error = column.validate(&DataType::Int, 1).unwrap_err();
        assert_eq!(error, "returned a string column where int was declared");
    }

    #[test]
    fn validate_rejects_offset_inside_character() {
        let column = Column {
            values: Values::String(StringColumn {
                data: "é".into(),
                offsets: vec![0, 1, 2],
            }),
            nulls: vec![],
        };
        let error = column.validate(&DataType::String, 2).unwrap_err();
        assert!(error.contains("inside a UTF-8 character"), "{error}");
    }

    #[test]
    fn validate_rejects_invalid_json() {
        let column = Column {
            values: Values::Json(StringColumn {
                data: "{\"a\":1}{".into(),
                offsets: vec![0, 7, 8],
            }),
            nulls: vec![],
        };
        let error = column.validate(&DataType::Json, 2).unwrap_err();
        assert!(
            error.starts_with("returned invalid JSON in row 1"),
            "{error}"
        );
    }

    #[test]
    fn from_json_rejects_mismatched_value() {
        let error = Column::from_json(&DataType::Int, &[json!(1), json!("x")]).unwrap_err();
        assert_eq!(error, "row 1: \"x\" is not of type int");
    }

    #[test]
    fn byte_len_counts_data_offsets_and_nulls() {
        let column = strings(&[Some("ab"), None]);
        assert_eq!(column.byte_len(), 2 + 3 * 4 + 2);
        let ints = Column::from_json(&DataType::Int, &[json!(1), json!(2)]).unwrap();
        assert_eq!(ints.byte_len(), 16);
    }

    #[test]
    fn vectors_round_trip_through_json() {
        let column = Column::from_json(&DataType::Vector(2), &[json!([1.0, 2.0])]).unwrap();
        assert_eq!(column.json_at(0), json!([1.0, 2.0]));
        let error = Column::from_json(&DataType::Vector(2), &[json!([1.0])]).unwrap_err();
        assert!(error.contains("vector(2)"), "{error}");
    }
}
