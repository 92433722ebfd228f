//! Rows in the text format of Postgres's `COPY ... FROM STDIN`.
//!
//! In that format, described under "Text Format" at
//! <https://www.postgresql.org/docs/current/sql-copy.html>, a backslash
//! starts an escape, so a backslash, tab, newline or carriage return in a
//! value is written as `\\`, `\t`, `\n` or `\r`.

use std::io::Write as _;

use crate::sandbox::Column;
use crate::sandbox::string_at;
use crate::sandbox::types::Values;

use super::values::{TimestampParts, bytes_at, format_f32, vector_at};

/// Builds rows in `COPY` text format: fields separated by tabs, rows ended
/// by newlines, `\N` for null.
#[derive(Debug, Default)]
pub struct CopyEncoder {
    buf: Vec<u8>,
    fields: usize,
}

impl CopyEncoder {
    /// Starts an empty buffer.
    pub fn new() -> Self {
        CopyEncoder::default()
    }

    /// Appends an integer field.
    pub fn push_i64(&mut self, value: i64) {
        self.separate();
        self.write_display(value);
    }

    /// Appends a text field, escaped, or null.
    pub fn push_str(&mut self, value: Option<&str>) {
        self.separate();
        match value {
            None => self.buf.extend_from_slice(b"\\N"),
            Some(text) => self.push_escaped(text),
        }
    }

    /// Appends row `row` of `column`, in the text form Postgres reads for
    /// the column's type.
    ///
    /// Bools are `t` or `f` and ints decimal. Floats are the shortest text
    /// that reads back as the same value, or `NaN`, `Infinity` or
    /// `-Infinity`. Strings and JSON are escaped text, bytes are bytea's
    /// `\\x` and hex, timestamps are `2024-05-01 12:00:00.000000+00` in UTC,
    /// and vectors are pgvector's `[1,2.5,-3]`.
    pub fn push_cell(&mut self, column: &Column, row: usize) {
        if column.is_null(row) {
            self.push_str(None);
            return;
        }
        self.separate();
        match &column.values {
            Values::Bool(v) => self.buf.push(if v[row] { b't' } else { b'f' }),
            Values::Int(v) => self.write_display(v[row]),
            Values::Float(v) => self.push_f64(v[row]),
            Values::String(c) | Values::Json(c) => self.push_escaped(string_at(c, row)),
            Values::Bytes(c) => self.push_bytea(bytes_at(c, row)),
            Values::Timestamp(v) => self.push_timestamp(v[row]),
            Values::Vector(c) => self.push_vector(vector_at(c, row)),
        }
    }

    /// Ends the current row.
    pub fn end_row(&mut self) {
        self.buf.push(b'\n');
        self.fields = 0;
    }

    /// The number of bytes buffered.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Takes the buffered bytes, leaving the encoder empty.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    fn push_escaped(&mut self, text: &str) {
        // NOTE: a NUL character goes through unescaped, and Postgres rejects
        // it. Input never stores one, but guest output may contain one.
        let mut start = 0;
        for (i, byte) in text.bytes().enumerate() {
            let escape: &[u8] = match byte {
                b'\\' => b"\\\\",
                b'\t' => b"\\t",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                _ => continue,
            };
            self.buf.extend_from_slice(&text.as_bytes()[start..i]);
            self.buf.extend_from_slice(escape);
            start = i + 1;
        }
        self.buf.extend_from_slice(&text.as_bytes()[start..]);
    }

    fn push_f64(&mut self, value: f64) {
        if value.is_nan() {
            self.buf.extend_from_slice(b"NaN");
        } else if value.is_infinite() {
            let text: &[u8] = if value > 0.0 {
                b"Infinity"
            } else {
                b"-Infinity"
            };
            self.buf.extend_from_slice(text);
        } else {
            let mut buffer = ryu::Buffer::new();
            self.buf
                .extend_from_slice(buffer.format_finite(value).as_bytes());
        }
    }

    /// Writes bytea's hex form, `\x0a0b`, with its backslash escaped for
    /// `COPY`.
    fn push_bytea(&mut self, bytes: &[u8]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.buf.reserve(3 + bytes.len() * 2);
        self.buf.extend_from_slice(b"\\\\x");
        for &byte in bytes {
            self.buf.push(HEX[usize::from(byte >> 4)]);
            self.buf.push(HEX[usize::from(byte & 0x0f)]);
        }
    }

    /// Writes a timestamp as UTC, with a ` BC` suffix for years before 1,
    /// which is how Postgres writes them.
    fn push_timestamp(&mut self, micros: i64) {
        let parts = TimestampParts::from_micros(micros);
        let (year, era) = if parts.year >= 1 {
            (parts.year, "")
        } else {
            (1 - parts.year, " BC")
        };
        // Writing to a Vec cannot fail.
        let _ = write!(
            self.buf,
            "{year:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00{era}",
            parts.month, parts.day, parts.hour, parts.minute, parts.second, parts.microsecond
        );
    }

    /// Writes a vector in pgvector's text form. Postgres rejects the
    /// elements `NaN`, `Infinity` and `-Infinity`, which input never gives.
    fn push_vector(&mut self, elements: &[f32]) {
        self.buf.push(b'[');
        for (i, &element) in elements.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            if element.is_finite() {
                self.buf.extend_from_slice(format_f32(element).as_bytes());
            } else {
                self.push_f64(f64::from(element));
            }
        }
        self.buf.push(b']');
    }

    fn write_display(&mut self, value: impl std::fmt::Display) {
        // Writing to a Vec cannot fail.
        let _ = write!(self.buf, "{value}");
    }

    fn separate(&mut self) {
        if self.fields > 0 {
            self.buf.push(b'\t');
        }
        self.fields += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::{ColumnBuilder, DataType};

    fn encode(column: &Column) -> Vec<String> {
        (0..column.len())
            .map(|row| {
                let mut encoder = CopyEncoder::new();
                encoder.push_cell(column, row);
                String::from_utf8(encoder.take()).unwrap()
            })
            .collect()
    }

    fn column(data_type: &DataType, fill: impl FnOnce(&mut ColumnBuilder)) -> Column {
        let mut builder = ColumnBuilder::new(data_type, 4);
        fill(&mut builder);
        builder.push_null();
        builder.finish()
    }

    #[test]
    fn fields_and_rows_are_separated() {
        let mut encoder = CopyEncoder::new();
        assert!(encoder.is_empty());
        encoder.push_i64(-7);
        encoder.push_str(None);
        encoder.push_str(Some("x"));
        encoder.end_row();
        encoder.push_str(Some(""));
        encoder.end_row();
        assert_eq!(encoder.len(), 9);
        assert_eq!(encoder.take(), b"-7\t\\N\tx\n\n");
        assert!(encoder.is_empty());
    }

    #[test]
    fn text_is_escaped() {
        let mut encoder = CopyEncoder::new();
        encoder.push_str(Some("a\\b\tc\nd\re\\N\\.f"));
        assert_eq!(encoder.take(), br"a\\b\tc\nd\re\\N\\.f");
        let mut encoder = CopyEncoder::new();
        encoder.push_str(Some("\\"));
        assert_eq!(encoder.take(), br"\\");
        let mut encoder = CopyEncoder::new();
        encoder.push_str(Some("日本\u{1}"));
        assert_eq!(encoder.take(), "日本\u{1}".as_bytes());
    }

    #[test]
    fn bool_int_and_float_cells() {
        let bools = column(&DataType::Bool, |b| {
            b.push_bool(true);
            b.push_bool(false);
        });
        assert_eq!(encode(&bools), ["t", "f", "\\N"]);
        let ints = column(&DataType::Int, |b| {
            b.push_int(i64::MIN);
            b.push_int(42);
        });
        assert_eq!(encode(&ints), ["-9223372036854775808", "42", "\\N"]);
        let floats = column(&DataType::Float, |b| {
            for value in [
                1.0,
                0.1,
                -2.5e-300,
                1e20,
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
            ] {
                b.push_float(value);
            }
        });
        assert_eq!(
            encode(&floats),
            [
                "1.0",
                "0.1",
                "-2.5e-300",
                "1e20",
                "NaN",
                "Infinity",
                "-Infinity",
                "\\N"
            ]
        );
    }

    #[test]
    fn string_and_json_cells_are_escaped() {
        let strings = column(&DataType::String, |b| {
            b.push_str("tab\there");
            b.push_str("");
        });
        assert_eq!(encode(&strings), ["tab\\there", "", "\\N"]);
        let documents = column(&DataType::Json, |b| b.push_str(r#"{"a":"x\\ny"}"#));
        assert_eq!(encode(&documents), [r#"{"a":"x\\\\ny"}"#, "\\N"]);
    }

    #[test]
    fn bytes_cells_are_bytea_hex() {
        let bytes = column(&DataType::Bytes, |b| {
            b.push_bytes(&[0x0a, 0x0b, 0xff, 0x00]);
            b.push_bytes(&[]);
        });
        assert_eq!(encode(&bytes), ["\\\\x0a0bff00", "\\\\x", "\\N"]);
    }

    #[test]
    fn timestamp_cells_are_utc() {
        let timestamps = column(&DataType::Timestamp, |b| {
            b.push_int(1_714_564_800_000_123);
            b.push_int(-1);
            b.push_int(super::super::values::MIN_TIMESTAMP);
            // 1 BC, which Postgres writes as year 0001 BC.
            b.push_int(super::super::values::MIN_TIMESTAMP - 86_400_000_000);
        });
        assert_eq!(
            encode(&timestamps),
            [
                "2024-05-01 12:00:00.000123+00",
                "1969-12-31 23:59:59.999999+00",
                "0001-01-01 00:00:00.000000+00",
                "0001-12-31 00:00:00.000000+00 BC",
                "\\N"
            ]
        );
    }

    #[test]
    fn vector_cells_are_pgvector_text() {
        let vectors = column(&DataType::Vector(3), |b| {
            b.push_vector(&[1.0, 2.5, -3.0]);
            b.push_vector(&[0.1, 1e20, -0.0]);
            b.push_vector(&[f32::NAN, f32::INFINITY, f32::MIN_POSITIVE]);
        });
        assert_eq!(
            encode(&vectors),
            [
                "[1,2.5,-3]",
                "[0.1,1e20,-0]",
                "[NaN,Infinity,1.1754944e-38]",
                "\\N"
            ]
        );
    }

    #[test]
    fn cells_share_a_row() {
        let ints = column(&DataType::Int, |b| b.push_int(1));
        let strings = column(&DataType::String, |b| b.push_str("a\tb"));
        let mut encoder = CopyEncoder::new();
        for row in 0..2 {
            encoder.push_cell(&ints, row);
            encoder.push_cell(&strings, row);
            encoder.end_row();
        }
        assert_eq!(encoder.take(), b"1\ta\\tb\n\\N\t\\N\n");
    }
}
