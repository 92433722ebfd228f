//! Rows in the text format of Postgres's `COPY ... FROM STDIN`.

use crate::sandbox::Column;

/// Builds rows in `COPY` text format: fields separated by tabs, rows ended
/// by newlines, `\N` for null.
#[derive(Debug, Default)]
pub struct CopyEncoder {
    buf: Vec<u8>,
    fields: usize,
}

// TODO: escaping and the typed cells.

impl CopyEncoder {
    /// Starts an empty buffer.
    pub fn new() -> Self {
        CopyEncoder::default()
    }

    /// Appends an integer field.
    pub fn push_i64(&mut self, value: i64) {
        self.separate();
        self.buf.extend_from_slice(value.to_string().as_bytes());
    }

    /// Appends a text field, or null.
    pub fn push_str(&mut self, value: Option<&str>) {
        self.separate();
        match value {
            None => self.buf.extend_from_slice(b"\\N"),
            Some(text) => self.buf.extend_from_slice(text.as_bytes()),
        }
    }

    /// Appends row `row` of `column`, in the text form Postgres reads for
    /// the column's type.
    pub fn push_cell(&mut self, column: &Column, row: usize) {
        let _ = (column, row);
        self.push_str(None);
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

    fn separate(&mut self) {
        if self.fields > 0 {
            self.buf.push(b'\t');
        }
        self.fields += 1;
    }
}
