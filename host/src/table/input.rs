//! Reading rows to insert: JSON Lines, a JSON array or CSV with a header,
//! streamed in batches of columns.
//!
//! Every reader converts values as it parses them, into one
//! [`ColumnBuilder`] for each input column, and hands the columns on every
//! `batch_rows` rows, so memory stays bounded by one batch whatever the size
//! of the input.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead, Read};
use std::ops::ControlFlow;
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer as _, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;

use crate::sandbox::{Column, ColumnBuilder, DataType};

use super::values;

/// The format of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// One JSON object a line.
    Jsonl,
    /// One JSON array of objects.
    Json,
    /// CSV with a header row of column names.
    Csv,
}

impl InputFormat {
    /// Returns the format that a file name's extension names, if any:
    /// `.jsonl` and `.ndjson` for JSON Lines, `.json` and `.csv`, in any
    /// case.
    pub fn from_path(path: &Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "jsonl" | "ndjson" => Some(InputFormat::Jsonl),
            "json" => Some(InputFormat::Json),
            "csv" => Some(InputFormat::Csv),
            _ => None,
        }
    }

    /// Guesses the format from the first bytes of an input. After an
    /// optional UTF-8 byte order mark and whitespace, `[` opens a JSON array
    /// and `{` the first line of JSON Lines. CSV is never guessed.
    pub fn sniff(head: &[u8]) -> Option<Self> {
        let head = head.strip_prefix(UTF8_BOM).unwrap_or(head);
        match head.iter().find(|byte| !byte.is_ascii_whitespace()) {
            Some(b'[') => Some(InputFormat::Json),
            Some(b'{') => Some(InputFormat::Jsonl),
            _ => None,
        }
    }
}

/// The columns an input may give values for.
#[derive(Debug, Clone)]
pub struct InputSchema {
    /// The table's name, for messages.
    pub table: String,
    /// The columns that take input, in table order.
    pub columns: Vec<(String, DataType)>,
    /// The names of computed columns, which take no input.
    pub computed: Vec<String>,
}

/// A batch of input rows, as one column for each of the schema's columns.
#[derive(Debug, Clone)]
pub struct RowBatch {
    /// The number (from 1) of the batch's first row in the input.
    pub first_row: u64,
    /// The number of rows.
    pub rows: usize,
    /// One column for each of [`InputSchema::columns`], in order.
    pub columns: Vec<Column>,
}

/// An input that cannot be read or does not fit the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InputError {
    /// The row (from 1) where the problem is, if it is in a row.
    pub row: Option<u64>,
    /// The column concerned, if any.
    pub column: Option<String>,
    /// The whole message, naming the row, the column and the value.
    pub message: String,
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The row capacity a batch's builders start with. They grow from there up
/// to `batch_rows`.
const INITIAL_BATCH_CAPACITY: usize = 1024;

/// Reads `reader` to the end in `format`, and hands each batch of at most
/// `batch_rows` rows to `sink`, which may stop the reading. Returns the
/// number of rows read.
///
/// Rows are numbered from 1 in the order they come: the Nth object of JSON
/// Lines or of a JSON array, or the Nth record after a CSV header. A key or
/// header field must name an input column, and at most once. An input
/// column left out is null. A `batch_rows` of 0 counts as 1. An input without rows,
/// even an empty one, is read as 0 rows.
///
/// When `sink` returns [`ControlFlow::Break`], reading stops and the rows of
/// the batches handed over so far are returned.
///
/// # Errors
///
/// Returns an [`InputError`] for the first row that cannot be read or does
/// not fit the schema, or when the reader fails.
pub fn read_batches<R: BufRead>(
    reader: R,
    format: InputFormat,
    schema: &InputSchema,
    batch_rows: usize,
    sink: impl FnMut(RowBatch) -> ControlFlow<()>,
) -> Result<u64, InputError> {
    let reader = skip_bom(reader).map_err(|e| read_error(None, &e))?;
    let mut batcher = Batcher::new(schema, batch_rows.max(1), sink);
    let flow = match format {
        InputFormat::Jsonl => read_jsonl(reader, &mut batcher)?,
        InputFormat::Json => read_json_array(reader, &mut batcher)?,
        InputFormat::Csv => read_csv(reader, &mut batcher)?,
    };
    if flow.is_continue() {
        // The sink's return value does not matter for the last batch,
        // because reading ends anyway.
        let _ = batcher.flush();
    }
    Ok(batcher.rows)
}

/// Drops a UTF-8 byte order mark from the start of `reader`.
fn skip_bom<R: BufRead>(mut reader: R) -> io::Result<io::Chain<io::Cursor<Vec<u8>>, R>> {
    let mut head = Vec::with_capacity(UTF8_BOM.len());
    reader
        .by_ref()
        .take(UTF8_BOM.len() as u64)
        .read_to_end(&mut head)?;
    if head == UTF8_BOM {
        head.clear();
    }
    Ok(io::Cursor::new(head).chain(reader))
}

fn read_error(row: Option<u64>, error: &io::Error) -> InputError {
    let message = match row {
        Some(row) => format!("row {row}: failed to read the input: {error}"),
        None => format!("failed to read the input: {error}"),
    };
    InputError {
        row,
        column: None,
        message,
    }
}

/// Collects rows into column builders and hands full batches to the sink.
struct Batcher<'s, F> {
    schema: &'s InputSchema,
    index: HashMap<&'s str, usize>,
    batch_rows: usize,
    builders: Vec<ColumnBuilder>,
    /// The rows in `builders`.
    batch_len: usize,
    /// The flags, by input column, of the values the current row has given
    /// so far.
    seen: Vec<bool>,
    /// The rows completed, including those in `builders`.
    rows: u64,
    /// The input line of the current row, when it differs from the row
    /// number.
    line: Option<u64>,
    /// The error that made a JSON visitor stop, which serde can carry only
    /// as text.
    failure: Option<InputError>,
    /// Whether the sink stopped the reading inside a JSON visitor.
    stopped: bool,
    sink: F,
}

impl<'s, F: FnMut(RowBatch) -> ControlFlow<()>> Batcher<'s, F> {
    fn new(schema: &'s InputSchema, batch_rows: usize, sink: F) -> Self {
        let index = schema
            .columns
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name.as_str(), i))
            .collect();
        Batcher {
            schema,
            index,
            batch_rows,
            builders: new_builders(schema, batch_rows),
            batch_len: 0,
            seen: vec![false; schema.columns.len()],
            rows: 0,
            line: None,
            failure: None,
            stopped: false,
            sink,
        }
    }

    /// Returns the number of the row being read.
    fn row(&self) -> u64 {
        self.rows + 1
    }

    /// Finds the input column `name` names, or explains why it names none.
    fn lookup(&self, name: &str) -> Result<usize, String> {
        if let Some(&index) = self.index.get(name) {
            return Ok(index);
        }
        if self.schema.computed.iter().any(|computed| computed == name) {
            return Err(format!(
                "column `{name}` is computed; leave it out of the input"
            ));
        }
        let table = &self.schema.table;
        if self.schema.columns.is_empty() {
            return Err(format!(
                "table `{table}` has no column `{name}`; it has no input columns"
            ));
        }
        let names: Vec<&str> = self
            .schema
            .columns
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        Err(format!(
            "table `{table}` has no column `{name}`; its columns are {}",
            names.join(", ")
        ))
    }

    fn begin_row(&mut self) {
        self.seen.fill(false);
    }

    /// Marks column `index` as given in the current row, or explains that
    /// it was given already.
    fn mark_seen(&mut self, index: usize, kind: &str) -> Result<(), String> {
        if self.seen[index] {
            let name = &self.schema.columns[index].0;
            return Err(format!("duplicate {kind} `{name}`"));
        }
        self.seen[index] = true;
        Ok(())
    }

    fn push_json(&mut self, index: usize, value: &Json) -> Result<(), InputError> {
        let data_type = &self.schema.columns[index].1;
        values::push_json(&mut self.builders[index], data_type, value)
            .map_err(|e| self.cell_error(index, &e.message))
    }

    fn push_text(&mut self, index: usize, text: &str) -> Result<(), InputError> {
        let data_type = &self.schema.columns[index].1;
        values::push_text(&mut self.builders[index], data_type, text)
            .map_err(|e| self.cell_error(index, &e.message))
    }

    /// Completes the current row with nulls for the columns it left out,
    /// and hands the batch on when it is full.
    fn end_row(&mut self) -> ControlFlow<()> {
        for (builder, seen) in self.builders.iter_mut().zip(&self.seen) {
            if !seen {
                builder.push_null();
            }
        }
        self.rows += 1;
        self.batch_len += 1;
        if self.batch_len >= self.batch_rows {
            self.flush()
        } else {
            ControlFlow::Continue(())
        }
    }

    /// Hands the rows collected so far to the sink, if there are any.
    fn flush(&mut self) -> ControlFlow<()> {
        if self.batch_len == 0 {
            return ControlFlow::Continue(());
        }
        let builders = std::mem::replace(
            &mut self.builders,
            new_builders(self.schema, self.batch_rows),
        );
        let batch = RowBatch {
            first_row: self.rows - self.batch_len as u64 + 1,
            rows: self.batch_len,
            columns: builders.into_iter().map(ColumnBuilder::finish).collect(),
        };
        self.batch_len = 0;
        (self.sink)(batch)
    }

    /// Formats the place of the current row for messages: `row 3`, or
    /// `row 3 (line 5)`.
    fn place(&self) -> String {
        match self.line {
            Some(line) => format!("row {} (line {line})", self.row()),
            None => format!("row {}", self.row()),
        }
    }

    /// Builds an error in the current row as a whole, or about the key or
    /// field that `column` names.
    fn row_error(&self, column: Option<&str>, detail: &str) -> InputError {
        InputError {
            row: Some(self.row()),
            column: column.map(str::to_owned),
            message: format!("{}: {detail}", self.place()),
        }
    }

    /// Builds an error in the value of input column `index` in the current
    /// row.
    fn cell_error(&self, index: usize, detail: &str) -> InputError {
        let name = &self.schema.columns[index].0;
        InputError {
            row: Some(self.row()),
            column: Some(name.clone()),
            message: format!("{}, column `{name}`: {detail}", self.place()),
        }
    }

    /// Keeps `error` for after serde returns, and gives serde an error to
    /// stop with.
    fn fail<E: de::Error>(&mut self, error: InputError) -> E {
        let text = error.message.clone();
        self.failure = Some(error);
        E::custom(text)
    }

    /// Turns an error from serde into the input error it stands for.
    ///
    /// `line_offset` is added to serde's line numbers, for a parser that
    /// starts at a later line of the input.
    fn json_error(&mut self, error: &serde_json::Error, line_offset: u64) -> InputError {
        if let Some(failure) = self.failure.take() {
            return failure;
        }
        let position = format!(" at line {} column {}", error.line(), error.column());
        let text = error.to_string();
        let bare = text.strip_suffix(&position).unwrap_or(&text);
        let position = if error.line() == 0 {
            String::new()
        } else {
            format!(
                " at line {} column {}",
                error.line() as u64 + line_offset,
                error.column()
            )
        };
        let row = self.row();
        let message = match error.classify() {
            serde_json::error::Category::Io => {
                format!("row {row}: failed to read the input: {bare}")
            }
            // A value of the wrong kind where a row object belongs.
            serde_json::error::Category::Data => format!("row {row}: {bare}{position}"),
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                format!("row {row}: invalid JSON: {bare}{position}")
            }
        };
        InputError {
            row: Some(row),
            column: None,
            message,
        }
    }
}

fn new_builders(schema: &InputSchema, batch_rows: usize) -> Vec<ColumnBuilder> {
    let capacity = batch_rows.min(INITIAL_BATCH_CAPACITY);
    schema
        .columns
        .iter()
        .map(|(_, data_type)| ColumnBuilder::new(data_type, capacity))
        .collect()
}

/// Reads one JSON object a line, skipping blank lines.
fn read_jsonl<R: BufRead, F: FnMut(RowBatch) -> ControlFlow<()>>(
    mut reader: R,
    batcher: &mut Batcher<'_, F>,
) -> Result<ControlFlow<()>, InputError> {
    let mut line = Vec::new();
    let mut line_number = 0u64;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| read_error(Some(batcher.row()), &e))?;
        if read == 0 {
            return Ok(ControlFlow::Continue(()));
        }
        line_number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        batcher.line = (line_number != batcher.row()).then_some(line_number);

        let text = std::str::from_utf8(&line).map_err(|e| {
            let detail = format!("invalid UTF-8 at byte {} of the line", e.valid_up_to() + 1);
            batcher.row_error(None, &detail)
        })?;
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let parsed = deserializer
            .deserialize_map(RowVisitor {
                batcher: &mut *batcher,
            })
            .and_then(|()| deserializer.end());
        if let Err(error) = parsed {
            return Err(batcher.json_error(&error, line_number - 1));
        }

        if batcher.end_row().is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
}

/// Reads a top-level JSON array of objects, one row at a time.
fn read_json_array<R: BufRead, F: FnMut(RowBatch) -> ControlFlow<()>>(
    mut reader: R,
    batcher: &mut Batcher<'_, F>,
) -> Result<ControlFlow<()>, InputError> {
    if !skip_whitespace(&mut reader).map_err(|e| read_error(None, &e))? {
        return Ok(ControlFlow::Continue(()));
    }
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    let mut in_array = false;
    let parsed = deserializer.deserialize_seq(ArrayVisitor {
        batcher: &mut *batcher,
        in_array: &mut in_array,
    });
    if batcher.stopped {
        return Ok(ControlFlow::Break(()));
    }
    match parsed {
        Ok(()) => {}
        Err(error) if !in_array => {
            return Err(InputError {
                row: None,
                column: None,
                message: format!(
                    "the input is not a JSON array of objects: {error}; for one object \
                     a line, the format is jsonl"
                ),
            });
        }
        Err(error) => return Err(batcher.json_error(&error, 0)),
    }
    deserializer.end().map_err(|error| InputError {
        row: None,
        column: None,
        message: format!("invalid JSON after the array: {error}"),
    })?;
    Ok(ControlFlow::Continue(()))
}

/// Skips whitespace, and returns whether anything follows it.
fn skip_whitespace<R: BufRead>(reader: &mut R) -> io::Result<bool> {
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(false);
        }
        let blank = buffer
            .iter()
            .take_while(|byte| byte.is_ascii_whitespace())
            .count();
        let more = blank < buffer.len();
        reader.consume(blank);
        if more {
            return Ok(true);
        }
    }
}

/// Converts a top-level JSON array element by element, handing on batches
/// as they fill.
struct ArrayVisitor<'a, 's, F> {
    batcher: &'a mut Batcher<'s, F>,
    /// Set once the input turns out to be an array.
    in_array: &'a mut bool,
}

impl<'de, F: FnMut(RowBatch) -> ControlFlow<()>> Visitor<'de> for ArrayVisitor<'_, '_, F> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON array of row objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        *self.in_array = true;
        while seq
            .next_element_seed(RowSeed {
                batcher: &mut *self.batcher,
            })?
            .is_some()
        {
            if self.batcher.end_row().is_break() {
                self.batcher.stopped = true;
                return Err(de::Error::custom("reading stopped"));
            }
        }
        Ok(())
    }
}

struct RowSeed<'a, 's, F> {
    batcher: &'a mut Batcher<'s, F>,
}

impl<'de, F: FnMut(RowBatch) -> ControlFlow<()>> DeserializeSeed<'de> for RowSeed<'_, '_, F> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(RowVisitor {
            batcher: self.batcher,
        })
    }
}

/// Converts one row object into the batch's builders, key by key.
struct RowVisitor<'a, 's, F> {
    batcher: &'a mut Batcher<'s, F>,
}

impl<'de, F: FnMut(RowBatch) -> ControlFlow<()>> Visitor<'de> for RowVisitor<'_, '_, F> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object of column values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let batcher = self.batcher;
        batcher.begin_row();
        while let Some(key) = map.next_key::<String>()? {
            let index = match batcher.lookup(&key) {
                Ok(index) => index,
                Err(detail) => {
                    let error = batcher.row_error(Some(&key), &detail);
                    return Err(batcher.fail(error));
                }
            };
            if let Err(detail) = batcher.mark_seen(index, "key") {
                let error = batcher.row_error(Some(&key), &detail);
                return Err(batcher.fail(error));
            }
            let value: Json = map.next_value()?;
            if let Err(error) = batcher.push_json(index, &value) {
                return Err(batcher.fail(error));
            }
        }
        Ok(())
    }
}

/// Reads CSV whose first record names the columns, with spaces around a
/// name ignored. Fields are read as they are, quotes aside.
fn read_csv<R: BufRead, F: FnMut(RowBatch) -> ControlFlow<()>>(
    reader: R,
    batcher: &mut Batcher<'_, F>,
) -> Result<ControlFlow<()>, InputError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(reader);
    let mut record = csv::ByteRecord::new();

    let header_error = |column: Option<&str>, detail: &str| InputError {
        row: None,
        column: column.map(str::to_owned),
        message: format!("header: {detail}"),
    };
    let has_header = csv
        .read_byte_record(&mut record)
        .map_err(|e| header_error(None, &format!("failed to read the input: {e}")))?;
    if !has_header {
        return Ok(ControlFlow::Continue(()));
    }
    let mut header = Vec::with_capacity(record.len());
    batcher.begin_row();
    for (i, field) in record.iter().enumerate() {
        let position = i + 1;
        let Ok(name) = std::str::from_utf8(field) else {
            return Err(header_error(
                None,
                &format!("field {position} is not valid UTF-8"),
            ));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(header_error(
                None,
                &format!("field {position} is empty; name a column there"),
            ));
        }
        let index = batcher
            .lookup(name)
            .map_err(|detail| header_error(Some(name), &detail))?;
        batcher
            .mark_seen(index, "column")
            .map_err(|detail| header_error(Some(name), &detail))?;
        header.push(index);
    }

    loop {
        let more = csv
            .read_byte_record(&mut record)
            .map_err(|e| batcher.row_error(None, &format!("failed to read the input: {e}")))?;
        if !more {
            return Ok(ControlFlow::Continue(()));
        }
        batcher.line = record.position().map(csv::Position::line);
        if record.len() != header.len() {
            let detail = format!(
                "{} fields where the header has {}",
                record.len(),
                header.len()
            );
            return Err(batcher.row_error(None, &detail));
        }

        batcher.begin_row();
        for (field, &index) in record.iter().zip(&header) {
            let Ok(text) = std::str::from_utf8(field) else {
                let detail = "invalid UTF-8";
                return Err(batcher.cell_error(index, detail));
            };
            batcher.push_text(index, text)?;
            batcher.seen[index] = true;
        }
        if batcher.end_row().is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::values::cell_json;
    use serde_json::json;

    fn films() -> InputSchema {
        InputSchema {
            table: "films".into(),
            columns: vec![
                ("title".into(), DataType::String),
                ("year".into(), DataType::Int),
            ],
            computed: vec!["shout".into()],
        }
    }

    fn read(
        input: &str,
        format: InputFormat,
        batch_rows: usize,
    ) -> Result<Vec<RowBatch>, InputError> {
        read_bytes(input.as_bytes(), format, batch_rows)
    }

    fn read_bytes(
        input: &[u8],
        format: InputFormat,
        batch_rows: usize,
    ) -> Result<Vec<RowBatch>, InputError> {
        let mut batches = Vec::new();
        let rows = read_batches(input, format, &films(), batch_rows, |batch| {
            batches.push(batch);
            ControlFlow::Continue(())
        })?;
        let batch_total: usize = batches.iter().map(|batch| batch.rows).sum();
        assert_eq!(rows, batch_total as u64);
        Ok(batches)
    }

    fn reject(input: &str, format: InputFormat) -> InputError {
        read(input, format, 100).unwrap_err()
    }

    /// Collects every row of every batch as a JSON object of the input
    /// columns.
    fn rows(batches: &[RowBatch]) -> Vec<Json> {
        let schema = films();
        let mut rows = Vec::new();
        for batch in batches {
            for row in 0..batch.rows {
                let mut object = serde_json::Map::new();
                for ((name, _), column) in schema.columns.iter().zip(&batch.columns) {
                    object.insert(name.clone(), cell_json(column, row));
                }
                rows.push(Json::Object(object));
            }
        }
        rows
    }

    const FIVE_JSONL: &str = "{\"title\": \"a\", \"year\": 1}\n{\"title\": \"b\", \"year\": 2}\n\
        {\"title\": \"c\", \"year\": 3}\n{\"title\": \"d\", \"year\": 4}\n{\"title\": \"e\", \"year\": 5}\n";

    fn five_json() -> String {
        let lines: Vec<&str> = FIVE_JSONL.lines().collect();
        format!("[\n{}\n]\n", lines.join(",\n"))
    }

    const FIVE_CSV: &str = "title,year\na,1\nb,2\nc,3\nd,4\ne,5\n";

    #[test]
    fn from_path_reads_extensions() {
        let format = |name: &str| InputFormat::from_path(Path::new(name));
        assert_eq!(format("rows.jsonl"), Some(InputFormat::Jsonl));
        assert_eq!(format("rows.NDJSON"), Some(InputFormat::Jsonl));
        assert_eq!(format("dir/rows.Json"), Some(InputFormat::Json));
        assert_eq!(format("rows.CSV"), Some(InputFormat::Csv));
        assert_eq!(format("rows.txt"), None);
        assert_eq!(format("rows"), None);
    }

    #[test]
    fn sniff_reads_first_byte() {
        assert_eq!(InputFormat::sniff(b"  \n[{}]"), Some(InputFormat::Json));
        assert_eq!(
            InputFormat::sniff(b"{\"a\": 1}\n"),
            Some(InputFormat::Jsonl)
        );
        assert_eq!(
            InputFormat::sniff(b"\xEF\xBB\xBF\r\n{}"),
            Some(InputFormat::Jsonl)
        );
        assert_eq!(InputFormat::sniff(b"title,year\n"), None);
        assert_eq!(InputFormat::sniff(b""), None);
        assert_eq!(InputFormat::sniff(b"   "), None);
    }

    #[test]
    fn batches_split_rows_in_every_format() {
        let inputs = [
            (FIVE_JSONL.to_owned(), InputFormat::Jsonl),
            (five_json(), InputFormat::Json),
            (FIVE_CSV.to_owned(), InputFormat::Csv),
        ];
        for (input, format) in inputs {
            let batches = read(&input, format, 2).unwrap();
            let sizes: Vec<usize> = batches.iter().map(|b| b.rows).collect();
            assert_eq!(sizes, [2, 2, 1], "{format:?}");
            let firsts: Vec<u64> = batches.iter().map(|b| b.first_row).collect();
            assert_eq!(firsts, [1, 3, 5], "{format:?}");
            for batch in &batches {
                assert_eq!(batch.columns.len(), 2, "{format:?}");
                assert!(
                    batch.columns.iter().all(|c| c.len() == batch.rows),
                    "{format:?}"
                );
            }
            let rows = rows(&batches);
            assert_eq!(rows[0], json!({"title": "a", "year": 1}), "{format:?}");
            assert_eq!(rows[4], json!({"title": "e", "year": 5}), "{format:?}");
        }
    }

    #[test]
    fn exact_multiple_has_no_empty_batch() {
        let input = "{\"year\": 1}\n{\"year\": 2}\n";
        let batches = read(input, InputFormat::Jsonl, 2).unwrap();
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].rows, 2);
    }

    #[test]
    fn zero_batch_rows_counts_as_one() {
        let batches = read(FIVE_CSV, InputFormat::Csv, 0).unwrap();
        assert_eq!(batches.len(), 5);
    }

    #[test]
    fn break_stops_reading() {
        for (input, format) in [
            (FIVE_JSONL.to_owned(), InputFormat::Jsonl),
            (five_json(), InputFormat::Json),
            (FIVE_CSV.to_owned(), InputFormat::Csv),
        ] {
            let mut calls = 0;
            let rows = read_batches(input.as_bytes(), format, &films(), 2, |_| {
                calls += 1;
                ControlFlow::Break(())
            })
            .unwrap();
            assert_eq!(rows, 2, "{format:?}");
            assert_eq!(calls, 1, "{format:?}");
        }
    }

    #[test]
    fn break_skips_errors_after_it() {
        let input = "{\"year\": 1}\n{\"year\": 2}\n{\"year\": \"bad\"}\n";
        let rows = read_batches(input.as_bytes(), InputFormat::Jsonl, &films(), 2, |_| {
            ControlFlow::Break(())
        });
        assert_eq!(rows, Ok(2));
    }

    #[test]
    fn empty_inputs_have_no_rows() {
        for (input, format) in [
            ("", InputFormat::Jsonl),
            ("\n  \n", InputFormat::Jsonl),
            ("", InputFormat::Json),
            (" \n", InputFormat::Json),
            ("[]", InputFormat::Json),
            (" [ ] \n", InputFormat::Json),
            ("", InputFormat::Csv),
            ("title,year\n", InputFormat::Csv),
        ] {
            let batches = read(input, format, 10).unwrap();
            assert!(batches.is_empty(), "{input:?} as {format:?}");
        }
    }

    #[test]
    fn missing_keys_are_null() {
        let batches = read("{\"year\": 1999}\n{}\n", InputFormat::Jsonl, 10).unwrap();
        assert_eq!(
            rows(&batches),
            [
                json!({"title": null, "year": 1999}),
                json!({"title": null, "year": null})
            ]
        );
        let batches = read("year\n1999\n\n", InputFormat::Csv, 10).unwrap();
        assert_eq!(rows(&batches), [json!({"title": null, "year": 1999})]);
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        for (input, format) in [
            (&b"\xEF\xBB\xBF{\"year\": 1}\n"[..], InputFormat::Jsonl),
            (b"\xEF\xBB\xBF[{\"year\": 1}]", InputFormat::Json),
            (b"\xEF\xBB\xBFyear\n1\n", InputFormat::Csv),
        ] {
            let batches = read_bytes(input, format, 10).unwrap();
            assert_eq!(
                rows(&batches),
                [json!({"title": null, "year": 1})],
                "{format:?}"
            );
        }
    }

    #[test]
    fn jsonl_skips_blank_lines_and_names_lines() {
        let input = "\n{\"year\": 1}\n\r\n   \n{\"year\": \"x\"}\n";
        let error = reject(input, InputFormat::Jsonl);
        assert_eq!(
            error.message,
            "row 2 (line 5), column `year`: \"x\" is not an int"
        );
        assert_eq!(error.row, Some(2));
        assert_eq!(error.column.as_deref(), Some("year"));
    }

    #[test]
    fn value_error_names_row_and_column() {
        let input = "{\"title\": \"a\", \"year\": 1}\n{\"title\": \"b\", \"year\": \"abc\"}\n";
        let error = reject(input, InputFormat::Jsonl);
        assert_eq!(error.message, "row 2, column `year`: \"abc\" is not an int");
        let input = "[{\"title\": \"a\"}, {\"title\": 5}]";
        let error = reject(input, InputFormat::Json);
        assert_eq!(
            error.message,
            "row 2, column `title`: 5 is not a string; put it in quotes"
        );
        assert_eq!(error.row, Some(2));
        assert_eq!(error.column.as_deref(), Some("title"));
    }

    #[test]
    fn unknown_key_lists_columns() {
        let input = "{\"year\": 1}\n{\"year\": 2}\n{\"yeer\": 3}\n";
        for (input, format) in [
            (input.to_owned(), InputFormat::Jsonl),
            (
                "[{\"year\": 1}, {\"year\": 2}, {\"yeer\": 3}]".to_owned(),
                InputFormat::Json,
            ),
        ] {
            let error = reject(&input, format);
            assert_eq!(
                error.message,
                "row 3: table `films` has no column `yeer`; its columns are title, year",
                "{format:?}"
            );
            assert_eq!(error.row, Some(3));
            assert_eq!(error.column.as_deref(), Some("yeer"));
        }
    }

    #[test]
    fn computed_key_is_rejected() {
        let error = reject("{\"shout\": \"A\"}\n", InputFormat::Jsonl);
        assert_eq!(
            error.message,
            "row 1: column `shout` is computed; leave it out of the input"
        );
    }

    #[test]
    fn duplicate_key_is_rejected() {
        let error = reject("{\"year\": 1, \"year\": 2}\n", InputFormat::Jsonl);
        assert_eq!(error.message, "row 1: duplicate key `year`");
        assert_eq!(error.column.as_deref(), Some("year"));
        let error = reject("[{\"title\": \"a\", \"title\": \"b\"}]", InputFormat::Json);
        assert_eq!(error.message, "row 1: duplicate key `title`");
    }

    #[test]
    fn row_must_be_object() {
        let error = reject("{\"year\": 1}\n[1, 2]\n", InputFormat::Jsonl);
        assert_eq!(
            error.message,
            "row 2: invalid type: sequence, expected a JSON object of column values at \
             line 2 column 0"
        );
        let error = reject("[{\"year\": 1}, 5]", InputFormat::Json);
        assert_eq!(
            error.message,
            "row 2: invalid type: integer `5`, expected a JSON object of column values at \
             line 1 column 16"
        );
    }

    #[test]
    fn malformed_json_names_row_and_line() {
        let error = reject("{\"year\": 1}\n\n{\"year\": 2,}\n", InputFormat::Jsonl);
        assert_eq!(
            error.message,
            "row 2: invalid JSON: trailing comma at line 3 column 12"
        );
        assert_eq!(error.row, Some(2));
        assert_eq!(error.column, None);
        let error = reject("{\"year\": 1} {\"year\": 2}\n", InputFormat::Jsonl);
        assert_eq!(
            error.message,
            "row 1: invalid JSON: trailing characters at line 1 column 13"
        );
        let error = reject("[{\"year\": 1},\n {\"year\": 2]", InputFormat::Json);
        assert_eq!(
            error.message,
            "row 2: invalid JSON: expected `,` or `}` at line 2 column 12"
        );
        let error = reject("[{\"year\": 1}", InputFormat::Json);
        assert_eq!(
            error.message,
            "row 2: invalid JSON: EOF while parsing a list at line 1 column 12"
        );
    }

    #[test]
    fn invalid_utf8_names_row() {
        let error = read_bytes(
            b"{\"year\": 1}\n{\"title\": \"\xFF\"}\n",
            InputFormat::Jsonl,
            10,
        )
        .unwrap_err();
        assert_eq!(error.message, "row 2: invalid UTF-8 at byte 12 of the line");
        let error = read_bytes(b"[{\"title\": \"\xFF\"}]", InputFormat::Json, 10).unwrap_err();
        assert!(
            error
                .message
                .starts_with("row 1: invalid JSON: invalid unicode code point"),
            "{}",
            error.message
        );
        let error = read_bytes(b"title\na\n\xFF\n", InputFormat::Csv, 10).unwrap_err();
        assert_eq!(
            error.message,
            "row 2 (line 3), column `title`: invalid UTF-8"
        );
    }

    #[test]
    fn json_array_rejects_other_documents() {
        let error = reject("{\"year\": 1}\n{\"year\": 2}\n", InputFormat::Json);
        assert_eq!(
            error.message,
            "the input is not a JSON array of objects: invalid type: map, expected a JSON \
             array of row objects at line 1 column 1; for one object a line, the format \
             is jsonl"
        );
        assert_eq!(error.row, None);
        let error = reject("[{\"year\": 1}]\n[]", InputFormat::Json);
        assert_eq!(
            error.message,
            "invalid JSON after the array: trailing characters at line 2 column 1"
        );
    }

    #[test]
    fn json_array_streams_without_collecting() {
        // 100,000 rows produced on demand, in batches of 1,000.
        struct Rows {
            next: u64,
            total: u64,
            pending: Vec<u8>,
        }
        impl Read for Rows {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.pending.is_empty() {
                    if self.next > self.total {
                        return Ok(0);
                    }
                    let row = self.next;
                    self.next += 1;
                    self.pending = match row {
                        0 => b"[".to_vec(),
                        _ if row == self.total => {
                            format!("{{\"title\": \"t{row}\", \"year\": {row}}}]").into_bytes()
                        }
                        _ => format!("{{\"title\": \"t{row}\", \"year\": {row}}},\n").into_bytes(),
                    };
                }
                let n = buf.len().min(self.pending.len());
                buf[..n].copy_from_slice(&self.pending[..n]);
                self.pending.drain(..n);
                Ok(n)
            }
        }
        let reader = io::BufReader::new(Rows {
            next: 0,
            total: 100_000,
            pending: Vec::new(),
        });
        let mut batches = 0;
        let mut last_year = None;
        let rows = read_batches(reader, InputFormat::Json, &films(), 1000, |batch| {
            assert_eq!(batch.rows, 1000);
            assert_eq!(batch.first_row, batches * 1000 + 1);
            batches += 1;
            last_year = Some(cell_json(&batch.columns[1], batch.rows - 1));
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(rows, 100_000);
        assert_eq!(batches, 100);
        assert_eq!(last_year, Some(json!(100_000)));
    }

    #[test]
    fn csv_reads_quoted_fields_and_nulls() {
        let input = "title , year\n\"a, \"\"quoted\"\"\nline\",1999\n,\n";
        let batches = read(input, InputFormat::Csv, 10).unwrap();
        assert_eq!(
            rows(&batches),
            [
                json!({"title": "a, \"quoted\"\nline", "year": 1999}),
                json!({"title": null, "year": null})
            ]
        );
    }

    #[test]
    fn csv_header_is_checked() {
        let cases = [
            (
                "title,yeer\n",
                "header: table `films` has no column `yeer`; its columns are title, year",
                Some("yeer"),
            ),
            (
                "title,shout\n",
                "header: column `shout` is computed; leave it out of the input",
                Some("shout"),
            ),
            (
                "year,title,year\n",
                "header: duplicate column `year`",
                Some("year"),
            ),
            (
                "title,,year\n",
                "header: field 2 is empty; name a column there",
                None,
            ),
        ];
        for (input, message, column) in cases {
            let error = reject(input, InputFormat::Csv);
            assert_eq!(error.message, message);
            assert_eq!(error.row, None, "{input:?}");
            assert_eq!(error.column.as_deref(), column, "{input:?}");
        }
        let error = read_bytes(b"title,\xFF\n", InputFormat::Csv, 10).unwrap_err();
        assert_eq!(error.message, "header: field 2 is not valid UTF-8");
    }

    #[test]
    fn csv_rows_need_header_width() {
        let error = reject("title,year\na,1\nb,2,3\n", InputFormat::Csv);
        assert_eq!(
            error.message,
            "row 2 (line 3): 3 fields where the header has 2"
        );
        assert_eq!(error.row, Some(2));
        let error = reject("title,year\nb\n", InputFormat::Csv);
        assert_eq!(
            error.message,
            "row 1 (line 2): 1 fields where the header has 2"
        );
    }

    #[test]
    fn csv_value_error_names_row_line_and_column() {
        let error = reject("title,year\na,1\n\"b\nc\",x\nd,abc\n", InputFormat::Csv);
        assert_eq!(
            error.message,
            "row 2 (line 3), column `year`: \"x\" is not an int"
        );
        assert_eq!(error.row, Some(2));
        assert_eq!(error.column.as_deref(), Some("year"));
    }

    #[test]
    fn empty_schema_names_no_columns() {
        let schema = InputSchema {
            table: "empty".into(),
            columns: Vec::new(),
            computed: Vec::new(),
        };
        let error = read_batches(&b"{\"a\": 1}"[..], InputFormat::Jsonl, &schema, 10, |_| {
            ControlFlow::Continue(())
        })
        .unwrap_err();
        assert_eq!(
            error.message,
            "row 1: table `empty` has no column `a`; it has no input columns"
        );
        let rows = read_batches(&b"{}\n{}"[..], InputFormat::Jsonl, &schema, 10, |batch| {
            assert_eq!(batch.rows, 2);
            ControlFlow::Continue(())
        });
        assert_eq!(rows, Ok(2));
    }
}
