//! Rows in the binary format of Postgres's `COPY ... FROM STDIN (FORMAT
//! binary)`, which Postgres reads without parsing numbers from text.
//!
//! A stream is a fixed header, then each row as a 16-bit field count and
//! each field as a 32-bit length (-1 for null) and its bytes, then a 16-bit
//! -1. Every integer is big-endian. The value forms are those of each type's
//! `recv` function: `timestamptz` counts microseconds from 2000-01-01 UTC,
//! `jsonb` starts with a version byte of 1, and pgvector's `vector` is a
//! 16-bit dimension, a 16-bit zero and the `f32` elements.

use crate::sandbox::types::Values;
use crate::sandbox::{Column, string_at};

use super::values::{bytes_at, vector_at};

/// The signature, flags and header extension length that start a stream.
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Microseconds from the Unix epoch to 2000-01-01 UTC, Postgres's epoch.
const POSTGRES_EPOCH_US: i64 = 946_684_800_000_000;

/// Builds one binary `COPY` stream, row by row.
#[derive(Debug)]
pub struct BinaryCopyEncoder {
    buf: Vec<u8>,
    /// The offset of the current row's field count.
    row_start: usize,
    fields: u16,
    /// The complete rows buffered and not taken yet.
    rows: usize,
}

impl Default for BinaryCopyEncoder {
    fn default() -> Self {
        BinaryCopyEncoder::new()
    }
}

impl BinaryCopyEncoder {
    /// Starts a stream with its header.
    pub fn new() -> Self {
        let mut encoder = BinaryCopyEncoder {
            buf: Vec::with_capacity(1 << 16),
            row_start: 0,
            fields: 0,
            rows: 0,
        };
        encoder.buf.extend_from_slice(HEADER);
        encoder.start_row();
        encoder
    }

    fn start_row(&mut self) {
        self.row_start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.fields = 0;
    }

    fn field(&mut self, bytes: &[u8]) {
        self.fields += 1;
        self.buf
            .extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        self.buf.extend_from_slice(bytes);
    }

    fn null(&mut self) {
        self.fields += 1;
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    /// Appends a `bigint` field.
    pub fn push_i64(&mut self, value: i64) {
        self.field(&value.to_be_bytes());
    }

    /// Appends a `text` field, or null.
    pub fn push_str(&mut self, value: Option<&str>) {
        match value {
            Some(text) => self.field(text.as_bytes()),
            None => self.null(),
        }
    }

    /// Appends row `row` of `column` in the binary form of the column's
    /// Postgres type.
    pub fn push_cell(&mut self, column: &Column, row: usize) {
        if column.is_null(row) {
            self.null();
            return;
        }
        match &column.values {
            Values::Bool(v) => self.field(&[u8::from(v[row])]),
            Values::Int(v) => self.field(&v[row].to_be_bytes()),
            Values::Float(v) => self.field(&v[row].to_bits().to_be_bytes()),
            Values::Timestamp(v) => {
                self.field(&(v[row].saturating_sub(POSTGRES_EPOCH_US)).to_be_bytes())
            }
            Values::String(c) => self.field(string_at(c, row).as_bytes()),
            Values::Json(c) => {
                let text = string_at(c, row);
                self.fields += 1;
                self.buf
                    .extend_from_slice(&(text.len() as i32 + 1).to_be_bytes());
                self.buf.push(1);
                self.buf.extend_from_slice(text.as_bytes());
            }
            Values::Bytes(c) => self.field(bytes_at(c, row)),
            Values::Vector(c) => {
                let elements = vector_at(c, row);
                self.fields += 1;
                self.buf
                    .extend_from_slice(&(4 + 4 * elements.len() as i32).to_be_bytes());
                self.buf
                    .extend_from_slice(&(elements.len() as u16).to_be_bytes());
                self.buf.extend_from_slice(&[0, 0]);
                for element in elements {
                    self.buf.extend_from_slice(&element.to_bits().to_be_bytes());
                }
            }
        }
    }

    /// Ends the current row.
    pub fn end_row(&mut self) {
        let count = self.fields.to_be_bytes();
        self.buf[self.row_start..self.row_start + 2].copy_from_slice(&count);
        self.rows += 1;
        self.start_row();
    }

    /// Returns the number of bytes buffered.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Returns whether no complete row is buffered.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Takes the complete rows buffered so far, leaving the encoder ready
    /// for more rows of the same stream.
    pub fn take(&mut self) -> Vec<u8> {
        let rest = self.buf.split_off(self.row_start);
        let out = std::mem::replace(&mut self.buf, rest);
        self.row_start = 0;
        self.rows = 0;
        out
    }

    /// Ends the stream: the rows not taken yet and the trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.truncate(self.row_start);
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::{ColumnBuilder, DataType};

    #[test]
    fn rows_have_counts_lengths_and_a_trailer() {
        let mut ints = ColumnBuilder::new(&DataType::Int, 2);
        ints.push_int(7);
        ints.push_null();
        let ints = ints.finish();
        let mut encoder = BinaryCopyEncoder::new();
        for row in 0..2 {
            encoder.push_cell(&ints, row);
            encoder.push_str(Some("ab"));
            encoder.end_row();
        }
        assert!(!encoder.is_empty());
        let first = encoder.take();
        assert!(encoder.is_empty());
        let rest = encoder.finish();
        let mut expected = HEADER.to_vec();
        expected.extend_from_slice(&[0, 2, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7]);
        expected.extend_from_slice(&[0, 0, 0, 2, b'a', b'b']);
        expected.extend_from_slice(&[0, 2, 0xff, 0xff, 0xff, 0xff]);
        expected.extend_from_slice(&[0, 0, 0, 2, b'a', b'b']);
        assert_eq!(first, expected);
        assert_eq!(rest, vec![0xff, 0xff]);
    }

    #[test]
    fn json_vectors_and_timestamps_take_their_recv_forms() {
        let mut json = ColumnBuilder::new(&DataType::Json, 1);
        json.push_str("{}");
        let mut vector = ColumnBuilder::new(&DataType::Vector(2), 1);
        vector.push_vector(&[1.0, -2.0]);
        let mut time = ColumnBuilder::new(&DataType::Timestamp, 1);
        time.push_int(POSTGRES_EPOCH_US + 5);
        let mut encoder = BinaryCopyEncoder::new();
        encoder.push_cell(&json.finish(), 0);
        encoder.push_cell(&vector.finish(), 0);
        encoder.push_cell(&time.finish(), 0);
        encoder.end_row();
        let bytes = encoder.finish();
        let row = &bytes[HEADER.len()..];
        assert_eq!(&row[..2], &[0, 3]);
        assert_eq!(&row[2..9], &[0, 0, 0, 3, 1, b'{', b'}']);
        assert_eq!(&row[9..13], &[0, 0, 0, 12]);
        assert_eq!(&row[13..17], &[0, 2, 0, 0]);
        assert_eq!(&row[17..21], &1.0f32.to_bits().to_be_bytes());
        assert_eq!(&row[21..25], &(-2.0f32).to_bits().to_be_bytes());
        assert_eq!(&row[25..37], &[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 5]);
        assert_eq!(&row[37..], &[0xff, 0xff]);
    }
}
