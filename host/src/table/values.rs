//! Cell values in their text forms: JSON and CSV input, literals, and the
//! JSON and text a `select` prints.
//!
//! Input is strict: a value converts only to a type it names without loss of
//! meaning, so `"12"` is not an int and `1.5` is not an int either. Output is
//! the inverse of input, so [`push_json`] reads back what [`cell_json`]
//! writes, and [`push_text`] reads back what [`cell_text`] writes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value as Json;

use crate::sandbox::types::Values;
use crate::sandbox::{Column, ColumnBuilder, DataType, string_at};

use super::expr::Literal;

/// A value that does not fit its column's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValueError {
    /// What is wrong, naming the value and the type it was meant to be.
    pub message: String,
}

impl ValueError {
    fn new(message: impl Into<String>) -> Self {
        ValueError {
            message: message.into(),
        }
    }
}

/// The number of characters of a value that an error message shows before
/// cutting it off with `...`.
const MAX_SHOWN_CHARS: usize = 60;

/// The first timestamp accepted, 0001-01-01T00:00:00Z, in microseconds since
/// the Unix epoch.
pub const MIN_TIMESTAMP: i64 = -62_135_596_800_000_000;

/// The last timestamp accepted, 9999-12-31T23:59:59.999999Z, in microseconds
/// since the Unix epoch.
///
/// Postgres's `timestamptz` reaches from 4713 BC to 294276 AD; input keeps to
/// the years 1 to 9999, which every common date library can also represent.
pub const MAX_TIMESTAMP: i64 = 253_402_300_799_999_999;

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

const TIMESTAMP_FORMS: &str = "give RFC 3339 such as \"2024-05-01T12:00:00Z\", \
     \"2024-05-01 12:00:00\" (taken as UTC) or \"2024-05-01\" (midnight UTC)";

/// Appends a JSON value to `builder`, a column of `data_type`.
///
/// JSON `null` is a null cell, also in a JSON column. Bytes are a base64
/// string, timestamps a string in one of the forms [`parse_timestamp`] reads,
/// and vectors an array of numbers.
///
/// # Errors
///
/// Returns a [`ValueError`] when the value does not fit the type.
pub fn push_json(
    builder: &mut ColumnBuilder,
    data_type: &DataType,
    value: &Json,
) -> Result<(), ValueError> {
    if value.is_null() {
        builder.push_null();
        return Ok(());
    }
    match (data_type, value) {
        (DataType::Bool, Json::Bool(b)) => builder.push_bool(*b),
        (DataType::Int, _) => builder.push_int(int_from_json(value)?),
        (DataType::Float, _) => builder.push_float(float_from_json(value)?),
        (DataType::String, Json::String(text)) => {
            check_no_nul(text)?;
            builder.push_str(text);
        }
        (DataType::Bytes, Json::String(text)) => builder.push_bytes(&decode_base64(text)?),
        (DataType::Json, _) => push_json_document(builder, value, &show_json(value))?,
        (DataType::Timestamp, Json::String(text)) => builder.push_int(parse_timestamp(text)?),
        (DataType::Vector(dimension), _) => {
            builder.push_vector(&vector_from_json(value, *dimension, &show_json(value))?)
        }
        (DataType::Bool, _) => {
            return Err(ValueError::new(format!(
                "{} is not a bool; give true or false",
                show_json(value)
            )));
        }
        (DataType::String, _) => {
            return Err(ValueError::new(format!(
                "{} is not a string; put it in quotes",
                show_json(value)
            )));
        }
        (DataType::Bytes, _) => {
            return Err(ValueError::new(format!(
                "{} is not bytes; give a base64 string such as \"AAEC\"",
                show_json(value)
            )));
        }
        (DataType::Timestamp, _) => {
            return Err(ValueError::new(format!(
                "{} is not a timestamp; {TIMESTAMP_FORMS}",
                show_json(value)
            )));
        }
    }
    Ok(())
}

/// Appends a CSV field to `builder`; an empty field is null.
///
/// Bools are `true`, `false`, `t`, `f`, `yes`, `no`, `1` or `0` in any case.
/// Ints and floats may have spaces around them. Bytes are base64, JSON is a
/// document (the document `null` is a null cell), timestamps are as
/// [`parse_timestamp`] reads them, and vectors are JSON arrays such as
/// `[1, 2.5, 3]`.
///
/// NOTE: an empty field is always null, so CSV cannot give an empty string
/// or empty bytes.
///
/// # Errors
///
/// Returns a [`ValueError`] when the text does not fit the type.
pub fn push_text(
    builder: &mut ColumnBuilder,
    data_type: &DataType,
    text: &str,
) -> Result<(), ValueError> {
    if text.is_empty() {
        builder.push_null();
        return Ok(());
    }
    push_parsed_text(builder, data_type, text)
}

/// Appends a literal to `builder`.
///
/// An int literal fits int and float columns, a float literal float
/// columns, and a bool literal bool columns. A string literal fits string
/// columns, and is read as [`push_text`] reads a field for timestamp, JSON,
/// bytes and vector columns, except that the empty string is not null.
///
/// # Errors
///
/// Returns a [`ValueError`] when the literal does not fit the type.
pub fn push_literal(
    builder: &mut ColumnBuilder,
    data_type: &DataType,
    literal: &Literal,
) -> Result<(), ValueError> {
    match (data_type, literal) {
        (_, Literal::Null) => builder.push_null(),
        (DataType::Bool, Literal::Bool(b)) => builder.push_bool(*b),
        (DataType::Int, Literal::Int(i)) => builder.push_int(*i),
        (DataType::Float, Literal::Int(i)) => builder.push_float(*i as f64),
        (DataType::Float, Literal::Float(f)) => builder.push_float(check_finite(*f)?),
        (DataType::Int, Literal::Float(f)) => return Err(not_whole(&format_f64(*f))),
        (DataType::String, Literal::String(text)) => {
            check_no_nul(text)?;
            builder.push_str(text);
        }
        (
            DataType::Timestamp | DataType::Json | DataType::Bytes | DataType::Vector(_),
            Literal::String(text),
        ) => push_parsed_text(builder, data_type, text)?,
        (_, literal) => {
            let (shown, kind) = match literal {
                Literal::Bool(b) => (b.to_string(), "a bool"),
                Literal::Int(i) => (i.to_string(), "an int"),
                Literal::Float(f) => (format_f64(*f), "a float"),
                Literal::String(text) => (show_text(text), "a string"),
                Literal::Null => ("null".to_owned(), "null"),
            };
            let hint = match (literal, data_type) {
                (Literal::String(_), DataType::Int | DataType::Float) => {
                    "; write the number without quotes"
                }
                (Literal::String(_), DataType::Bool) => "; write true or false without quotes",
                (Literal::Int(_) | Literal::Float(_) | Literal::Bool(_), DataType::String) => {
                    "; write text in single quotes, as in 'text'"
                }
                _ => "",
            };
            return Err(ValueError::new(format!(
                "{shown} is {kind}, not {}{hint}",
                type_phrase(data_type)
            )));
        }
    }
    Ok(())
}

/// Row `row` of `column` as JSON, in the form [`push_json`] reads.
///
/// Floats that JSON cannot hold print as the strings `"NaN"`, `"inf"` and
/// `"-inf"`, which input rejects.
pub fn cell_json(column: &Column, row: usize) -> Json {
    if column.is_null(row) {
        return Json::Null;
    }
    match &column.values {
        Values::Bool(v) => Json::Bool(v[row]),
        Values::Int(v) => Json::from(v[row]),
        Values::Float(v) => float_json(v[row]),
        Values::String(c) => Json::String(string_at(c, row).to_owned()),
        Values::Bytes(c) => Json::String(BASE64.encode(bytes_at(c, row))),
        Values::Json(c) => {
            let text = string_at(c, row);
            // NOTE: a stored document always parses, because input stores
            // only parsed documents and guest output is validated. The
            // fallback keeps the text visible if one ever does not.
            serde_json::from_str(text).unwrap_or_else(|_| Json::String(text.to_owned()))
        }
        Values::Timestamp(v) => Json::String(format_timestamp(v[row])),
        Values::Vector(c) => Json::Array(
            vector_at(c, row)
                .iter()
                .map(|&element| f32_json(element))
                .collect(),
        ),
    }
}

/// Row `row` of `column` as text, in the form [`push_text`] reads; `None`
/// for null.
///
/// Bools are `true` or `false`, numbers are the shortest text that reads
/// back as the same value, bytes are base64, JSON is compact, timestamps are
/// as in [`cell_json`] and vectors are like `[1,2.5]`.
pub fn cell_text(column: &Column, row: usize) -> Option<String> {
    if column.is_null(row) {
        return None;
    }
    let text = match &column.values {
        Values::Bool(v) => v[row].to_string(),
        Values::Int(v) => v[row].to_string(),
        Values::Float(v) => format_f64(v[row]),
        Values::String(c) => string_at(c, row).to_owned(),
        Values::Bytes(c) => BASE64.encode(bytes_at(c, row)),
        Values::Json(c) => {
            let text = string_at(c, row);
            match serde_json::from_str::<Json>(text) {
                Ok(document) => document.to_string(),
                Err(_) => text.to_owned(),
            }
        }
        Values::Timestamp(v) => format_timestamp(v[row]),
        Values::Vector(c) => format_vector(vector_at(c, row)),
    };
    Some(text)
}

/// Parses a timestamp into microseconds since the Unix epoch, UTC.
///
/// Three forms are read, with up to 6 fractional digits of seconds. The
/// first is RFC 3339, such as `2024-05-01T12:00:00Z` or
/// `2024-05-01T12:00:00.5+02:00`, where the offset may also be `+02` as
/// Postgres prints it and the `T` may be a space. The second is
/// `2024-05-01 12:00:00` without an offset, taken as UTC, and the third
/// `2024-05-01`, taken as midnight UTC. Spaces around the text are ignored.
///
/// # Errors
///
/// Returns a [`ValueError`] when the text has none of these forms, names a
/// date or time that does not exist, or falls outside the years 1 to 9999
/// UTC ([`MIN_TIMESTAMP`] to [`MAX_TIMESTAMP`]).
pub fn parse_timestamp(text: &str) -> Result<i64, ValueError> {
    let shown = show_text(text);
    let fields =
        TimestampFields::scan(text.trim().as_bytes()).map_err(|problem| match problem {
            ScanProblem::Form => {
                ValueError::new(format!("{shown} is not a timestamp; {TIMESTAMP_FORMS}"))
            }
            ScanProblem::Precision => ValueError::new(format!(
                "{shown} has more than 6 fractional digits; timestamps store whole microseconds"
            )),
            ScanProblem::NoOffset => ValueError::new(format!(
                "{shown} has no UTC offset; add Z or an offset such as +02:00"
            )),
        })?;

    let out_of_range = |name: &str| {
        ValueError::new(format!(
            "{shown} is not a valid timestamp: its {name} is out of range"
        ))
    };
    let month = time::Month::try_from(fields.month).map_err(|e| out_of_range(e.name()))?;
    let date = time::Date::from_calendar_date(fields.year, month, fields.day)
        .map_err(|e| out_of_range(e.name()))?;
    let local = date
        .with_hms_micro(
            fields.hour,
            fields.minute,
            fields.second,
            fields.microsecond,
        )
        .map_err(|e| out_of_range(e.name()))?;
    if fields.offset_hours > 23 || fields.offset_minutes > 59 {
        return Err(out_of_range("UTC offset"));
    }

    let offset_seconds = fields.offset_sign
        * (i64::from(fields.offset_hours) * 3600 + i64::from(fields.offset_minutes) * 60);
    let local_micros = local.assume_utc().unix_timestamp_nanos() / 1000;
    let micros = local_micros - i128::from(offset_seconds * MICROS_PER_SECOND);
    if micros < i128::from(MIN_TIMESTAMP) || micros > i128::from(MAX_TIMESTAMP) {
        return Err(ValueError::new(format!(
            "{shown} is out of range; timestamps must fall within the years 1 to 9999 UTC"
        )));
    }
    Ok(micros as i64)
}

/// Formats a timestamp in microseconds since the Unix epoch as RFC 3339 in
/// UTC, with fractional seconds only when they are not zero:
/// `2024-05-01T12:00:00Z`, `2024-05-01T12:00:00.000123Z`.
///
/// A year outside 0 to 9999, which input never gives, prints with its sign,
/// as ISO 8601's expanded years do: `+12345-01-01T00:00:00Z`.
pub fn format_timestamp(micros: i64) -> String {
    let parts = TimestampParts::from_micros(micros);
    let year = if (0..=9999).contains(&parts.year) {
        format!("{:04}", parts.year)
    } else {
        format!("{:+05}", parts.year)
    };
    let fraction = if parts.microsecond == 0 {
        String::new()
    } else {
        format!(".{:06}", parts.microsecond)
    };
    format!(
        "{year}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}Z",
        parts.month, parts.day, parts.hour, parts.minute, parts.second
    )
}

/// The UTC calendar date and time of a timestamp, in the proleptic Gregorian
/// calendar that Postgres also uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampParts {
    /// The year, where 0 is 1 BC and -1 is 2 BC.
    pub year: i64,
    /// The month, 1 to 12.
    pub month: u8,
    /// The day of the month, 1 to 31.
    pub day: u8,
    /// The hour, 0 to 23.
    pub hour: u8,
    /// The minute, 0 to 59.
    pub minute: u8,
    /// The second, 0 to 59.
    pub second: u8,
    /// The microsecond, 0 to 999999.
    pub microsecond: u32,
}

impl TimestampParts {
    /// Splits `micros`, microseconds since the Unix epoch, into a UTC date
    /// and time. Every `i64` has one.
    pub fn from_micros(micros: i64) -> Self {
        let days = micros.div_euclid(MICROS_PER_DAY);
        let of_day = micros.rem_euclid(MICROS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let seconds = of_day / MICROS_PER_SECOND;
        TimestampParts {
            year,
            month,
            day,
            hour: (seconds / 3600) as u8,
            minute: (seconds / 60 % 60) as u8,
            second: (seconds % 60) as u8,
            microsecond: (of_day % MICROS_PER_SECOND) as u32,
        }
    }
}

/// Converts days since 1970-01-01 to a proleptic Gregorian date, by Howard
/// Hinnant's `civil_from_days` (<https://howardhinnant.github.io/date_algorithms.html>).
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // Months count from March, so that the leap day comes last.
    let march_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * march_month + 2) / 5 + 1;
    let month = if march_month < 10 {
        march_month + 3
    } else {
        march_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month as u8, day as u8)
}

/// Formats a float as the shortest text that reads back as the same value,
/// such as `1.0`, `0.1` or `1e20`, or as `NaN`, `inf` or `-inf`.
pub fn format_f64(value: f64) -> String {
    if value.is_finite() {
        ryu::Buffer::new().format_finite(value).to_owned()
    } else {
        value.to_string()
    }
}

/// Formats a vector element as the shortest text that reads back as the
/// same `f32`, without a trailing `.0`, such as `1`, `2.5` or `1e20`, or as
/// `NaN`, `inf` or `-inf`.
pub fn format_f32(value: f32) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let text = ryu::Buffer::new().format_finite(value).to_owned();
    match text.strip_suffix(".0") {
        Some(whole) => whole.to_owned(),
        None => text,
    }
}

/// Formats a vector as `[1,2.5,-3]`, the form pgvector reads and prints.
pub fn format_vector(elements: &[f32]) -> String {
    let mut text = String::with_capacity(2 + elements.len() * 8);
    text.push('[');
    for (i, &element) in elements.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format_f32(element));
    }
    text.push(']');
    text
}

/// Returns row `row` of a well-formed bytes column.
pub(crate) fn bytes_at(column: &crate::sandbox::types::BytesColumn, row: usize) -> &[u8] {
    &column.data[column.offsets[row] as usize..column.offsets[row + 1] as usize]
}

/// Returns row `row` of a well-formed vector column.
pub(crate) fn vector_at(column: &crate::sandbox::types::VectorColumn, row: usize) -> &[f32] {
    let dimension = column.dimension as usize;
    &column.data[row * dimension..(row + 1) * dimension]
}

/// Appends non-empty text of `data_type`, or the literal string of a
/// non-string column.
fn push_parsed_text(
    builder: &mut ColumnBuilder,
    data_type: &DataType,
    text: &str,
) -> Result<(), ValueError> {
    match data_type {
        DataType::Bool => builder.push_bool(bool_from_text(text)?),
        DataType::Int => builder.push_int(int_from_text(text)?),
        DataType::Float => builder.push_float(float_from_text(text)?),
        DataType::String => {
            check_no_nul(text)?;
            builder.push_str(text);
        }
        DataType::Bytes => builder.push_bytes(&decode_base64(text)?),
        DataType::Json => {
            let document: Json = serde_json::from_str(text).map_err(|e| {
                ValueError::new(format!("{} is not valid JSON: {e}", show_text(text)))
            })?;
            push_json_document(builder, &document, &show_text(text))?;
        }
        DataType::Timestamp => builder.push_int(parse_timestamp(text)?),
        DataType::Vector(dimension) => {
            let shown = show_text(text);
            let array: Json = serde_json::from_str(text).map_err(|_| {
                ValueError::new(format!(
                    "{shown} is not a vector; give a JSON array of {dimension} numbers such as {}",
                    example_vector(*dimension)
                ))
            })?;
            builder.push_vector(&vector_from_json(&array, *dimension, &shown)?);
        }
    }
    Ok(())
}

/// Stores a JSON document as compact text; the document `null` is a null
/// cell.
fn push_json_document(
    builder: &mut ColumnBuilder,
    document: &Json,
    shown: &str,
) -> Result<(), ValueError> {
    if document.is_null() {
        builder.push_null();
        return Ok(());
    }
    if json_has_nul(document) {
        return Err(ValueError::new(format!(
            "{shown} contains the NUL character (\\u0000), which Postgres cannot store \
             in JSON; remove it"
        )));
    }
    builder.push_str(&document.to_string());
    Ok(())
}

fn json_has_nul(value: &Json) -> bool {
    match value {
        Json::String(text) => text.contains('\0'),
        Json::Array(items) => items.iter().any(json_has_nul),
        Json::Object(map) => map
            .iter()
            .any(|(key, item)| key.contains('\0') || json_has_nul(item)),
        Json::Null | Json::Bool(_) | Json::Number(_) => false,
    }
}

fn check_no_nul(text: &str) -> Result<(), ValueError> {
    if text.contains('\0') {
        return Err(ValueError::new(format!(
            "{} contains the NUL character (\\u0000), which Postgres text cannot store; \
             remove it",
            show_text(text)
        )));
    }
    Ok(())
}

fn int_from_json(value: &Json) -> Result<i64, ValueError> {
    let shown = show_json(value);
    match value {
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if n.is_u64() {
                Err(int_out_of_range(&shown))
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f.fract() != 0.0 {
                    Err(not_whole(&shown))
                } else if f < -(2f64.powi(63)) || f >= 2f64.powi(63) {
                    Err(int_out_of_range(&shown))
                } else {
                    Err(ValueError::new(format!(
                        "{shown} is not an int; write it without a decimal point or exponent"
                    )))
                }
            }
        }
        Json::String(text) if text.trim().parse::<i64>().is_ok() => Err(ValueError::new(format!(
            "{shown} is a string, not an int; write the number without quotes"
        ))),
        _ => Err(ValueError::new(format!("{shown} is not an int"))),
    }
}

fn float_from_json(value: &Json) -> Result<f64, ValueError> {
    let shown = show_json(value);
    match value {
        Json::Number(n) => match n.as_f64() {
            Some(f) if f.is_finite() => Ok(f),
            _ => Err(ValueError::new(format!("{shown} is not a finite number"))),
        },
        Json::String(text) if text.trim().parse::<f64>().is_ok() => Err(ValueError::new(format!(
            "{shown} is a string, not a float; write the number without quotes"
        ))),
        _ => Err(ValueError::new(format!("{shown} is not a float"))),
    }
}

fn bool_from_text(text: &str) -> Result<bool, ValueError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "1" => Ok(true),
        "false" | "f" | "no" | "0" => Ok(false),
        _ => Err(ValueError::new(format!(
            "{} is not a bool; give true, false, t, f, yes, no, 1 or 0",
            show_text(text)
        ))),
    }
}

fn int_from_text(text: &str) -> Result<i64, ValueError> {
    let trimmed = text.trim();
    let shown = show_text(text);
    match trimmed.parse::<i64>() {
        Ok(i) => Ok(i),
        Err(e) => match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                Err(int_out_of_range(&shown))
            }
            _ => match trimmed.parse::<f64>() {
                Ok(f) if f.is_finite() && f.fract() != 0.0 => Err(not_whole(&shown)),
                Ok(f) if f.is_finite() => Err(ValueError::new(format!(
                    "{shown} is not an int; write it without a decimal point or exponent"
                ))),
                _ => Err(ValueError::new(format!("{shown} is not an int"))),
            },
        },
    }
}

fn float_from_text(text: &str) -> Result<f64, ValueError> {
    let shown = show_text(text);
    match text.trim().parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(f),
        Ok(_) => Err(ValueError::new(format!("{shown} is not a finite number"))),
        Err(_) => Err(ValueError::new(format!("{shown} is not a float"))),
    }
}

fn check_finite(value: f64) -> Result<f64, ValueError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(ValueError::new(format!(
            "{} is not a finite number",
            format_f64(value)
        )))
    }
}

fn not_whole(shown: &str) -> ValueError {
    ValueError::new(format!("{shown} is not an int; give a whole number"))
}

fn int_out_of_range(shown: &str) -> ValueError {
    ValueError::new(format!(
        "{shown} is out of range for an int ({} to {})",
        i64::MIN,
        i64::MAX
    ))
}

fn decode_base64(text: &str) -> Result<Vec<u8>, ValueError> {
    BASE64.decode(text).map_err(|e| {
        let problem = match e {
            base64::DecodeError::InvalidByte(offset, byte) => {
                format!(
                    "invalid character {:?} at offset {offset}",
                    char::from(byte)
                )
            }
            base64::DecodeError::InvalidLength(length) => {
                format!("invalid length {length}")
            }
            base64::DecodeError::InvalidLastSymbol(offset, byte) => {
                format!(
                    "invalid last character {:?} at offset {offset}",
                    char::from(byte)
                )
            }
            base64::DecodeError::InvalidPadding => "missing or misplaced padding".to_owned(),
        };
        ValueError::new(format!(
            "{} is not valid base64 ({problem}); give bytes in standard base64 with \
             padding, such as \"AAEC\"",
            show_text(text)
        ))
    })
}

fn vector_from_json(value: &Json, dimension: u32, shown: &str) -> Result<Vec<f32>, ValueError> {
    let Json::Array(items) = value else {
        return Err(ValueError::new(format!(
            "{shown} is not a vector; give a JSON array of {dimension} numbers such as {}",
            example_vector(dimension)
        )));
    };
    if items.len() != dimension as usize {
        return Err(ValueError::new(format!(
            "{shown} has {} elements; vector({dimension}) needs {dimension}",
            items.len()
        )));
    }
    let mut elements = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let position = i + 1;
        let Some(wide) = item.as_f64() else {
            return Err(ValueError::new(format!(
                "element {position} of {shown} is not a number"
            )));
        };
        let element = wide as f32;
        if !element.is_finite() {
            return Err(ValueError::new(format!(
                "element {position} of {shown} is out of range for a vector element, a \
                 32-bit float of magnitude at most 3.4028235e38"
            )));
        }
        elements.push(element);
    }
    Ok(elements)
}

fn example_vector(dimension: u32) -> String {
    let elements: Vec<String> = (1..=dimension.clamp(1, 3)).map(|i| i.to_string()).collect();
    let more = if dimension > 3 { ", ..." } else { "" };
    format!("[{}{more}]", elements.join(", "))
}

fn float_json(value: f64) -> Json {
    // JSON has no NaN or infinity, so they print as strings rather than as
    // `null`, which would read as a null cell.
    serde_json::Number::from_f64(value)
        .map_or_else(|| Json::String(value.to_string()), Json::Number)
}

fn f32_json(value: f32) -> Json {
    // The shortest text of the f32, read as an f64, prints as that text
    // again, where `value as f64` would print as 0.10000000149011612 for 0.1.
    match format_f32(value).parse::<f64>() {
        Ok(wide) if wide.is_finite() => float_json(wide),
        _ => Json::String(value.to_string()),
    }
}

/// Describes a column type for a message, with its article.
fn type_phrase(data_type: &DataType) -> String {
    match data_type {
        DataType::Bool => "a bool".to_owned(),
        DataType::Int => "an int".to_owned(),
        DataType::Float => "a float".to_owned(),
        DataType::String => "a string".to_owned(),
        DataType::Bytes => "bytes".to_owned(),
        DataType::Json => "JSON".to_owned(),
        DataType::Timestamp => "a timestamp".to_owned(),
        DataType::Vector(dimension) => format!("a vector({dimension})"),
    }
}

/// Shows a JSON value for a message, cut off after [`MAX_SHOWN_CHARS`].
fn show_json(value: &Json) -> String {
    shorten(value.to_string())
}

/// Shows text for a message in double quotes, with JSON escapes for control
/// characters, cut off after [`MAX_SHOWN_CHARS`].
fn show_text(text: &str) -> String {
    shorten(Json::from(text).to_string())
}

fn shorten(text: String) -> String {
    match text.char_indices().nth(MAX_SHOWN_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// The fields of a timestamp's text, before any range check.
struct TimestampFields {
    year: i32,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    microsecond: u32,
    /// 1 or -1.
    offset_sign: i64,
    offset_hours: u8,
    offset_minutes: u8,
}

enum ScanProblem {
    /// The text has none of the accepted forms.
    Form,
    /// The seconds have more than 6 fractional digits.
    Precision,
    /// A date and time with `T` between them have no offset.
    NoOffset,
}

impl TimestampFields {
    fn scan(mut input: &[u8]) -> Result<Self, ScanProblem> {
        let mut fields = TimestampFields {
            year: 0,
            month: 0,
            day: 0,
            hour: 0,
            minute: 0,
            second: 0,
            microsecond: 0,
            offset_sign: 1,
            offset_hours: 0,
            offset_minutes: 0,
        };
        let input = &mut input;
        fields.year = digits(input, 4)? as i32;
        expect(input, b'-')?;
        fields.month = digits(input, 2)? as u8;
        expect(input, b'-')?;
        fields.day = digits(input, 2)? as u8;
        let Some((&separator, rest)) = input.split_first() else {
            return Ok(fields);
        };
        if !matches!(separator, b'T' | b't' | b' ') {
            return Err(ScanProblem::Form);
        }
        *input = rest;

        fields.hour = digits(input, 2)? as u8;
        expect(input, b':')?;
        fields.minute = digits(input, 2)? as u8;
        expect(input, b':')?;
        fields.second = digits(input, 2)? as u8;
        if input.first() == Some(&b'.') {
            *input = &input[1..];
            let count = input.iter().take_while(|b| b.is_ascii_digit()).count();
            if count == 0 {
                return Err(ScanProblem::Form);
            }
            if count > 6 {
                return Err(ScanProblem::Precision);
            }
            let fraction = digits(input, count)?;
            fields.microsecond = fraction * 10u32.pow((6 - count) as u32);
        }

        match input.split_first() {
            None if separator == b' ' => return Ok(fields),
            None => return Err(ScanProblem::NoOffset),
            Some((b'Z' | b'z', rest)) => *input = rest,
            Some((sign @ (b'+' | b'-'), rest)) => {
                *input = rest;
                fields.offset_sign = if *sign == b'-' { -1 } else { 1 };
                fields.offset_hours = digits(input, 2)? as u8;
                if input.first() == Some(&b':') {
                    *input = &input[1..];
                    fields.offset_minutes = digits(input, 2)? as u8;
                }
            }
            Some(_) => return Err(ScanProblem::Form),
        }
        if input.is_empty() {
            Ok(fields)
        } else {
            Err(ScanProblem::Form)
        }
    }
}

/// Reads exactly `count` ASCII digits.
fn digits(input: &mut &[u8], count: usize) -> Result<u32, ScanProblem> {
    if input.len() < count || !input[..count].iter().all(u8::is_ascii_digit) {
        return Err(ScanProblem::Form);
    }
    let value = input[..count]
        .iter()
        .fold(0u32, |value, digit| value * 10 + u32::from(digit - b'0'));
    *input = &input[count..];
    Ok(value)
}

fn expect(input: &mut &[u8], byte: u8) -> Result<(), ScanProblem> {
    match input.split_first() {
        Some((&first, rest)) if first == byte => {
            *input = rest;
            Ok(())
        }
        _ => Err(ScanProblem::Form),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from_json(data_type: &DataType, value: Json) -> Result<Column, String> {
        let mut builder = ColumnBuilder::new(data_type, 1);
        push_json(&mut builder, data_type, &value).map_err(|e| e.message)?;
        Ok(builder.finish())
    }

    fn from_text(data_type: &DataType, text: &str) -> Result<Column, String> {
        let mut builder = ColumnBuilder::new(data_type, 1);
        push_text(&mut builder, data_type, text).map_err(|e| e.message)?;
        Ok(builder.finish())
    }

    fn from_literal(data_type: &DataType, literal: Literal) -> Result<Column, String> {
        let mut builder = ColumnBuilder::new(data_type, 1);
        push_literal(&mut builder, data_type, &literal).map_err(|e| e.message)?;
        Ok(builder.finish())
    }

    fn json_error(data_type: &DataType, value: Json) -> String {
        from_json(data_type, value).unwrap_err()
    }

    fn text_error(data_type: &DataType, text: &str) -> String {
        from_text(data_type, text).unwrap_err()
    }

    fn micros(text: &str) -> i64 {
        parse_timestamp(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// 2024-05-01T12:00:00Z.
    const NOON: i64 = 1_714_564_800_000_000;

    #[test]
    fn json_null_is_null_for_every_type() {
        for data_type in all_types() {
            let column = from_json(&data_type, Json::Null).unwrap();
            assert!(column.is_null(0), "{data_type}");
        }
    }

    #[test]
    fn bool_accepts_json_bools_only() {
        assert_eq!(
            from_json(&DataType::Bool, json!(true)).unwrap().values,
            Values::Bool(vec![true])
        );
        assert_eq!(
            json_error(&DataType::Bool, json!("true")),
            "\"true\" is not a bool; give true or false"
        );
        assert_eq!(
            json_error(&DataType::Bool, json!(1)),
            "1 is not a bool; give true or false"
        );
    }

    #[test]
    fn bool_text_accepts_common_spellings() {
        for (text, expected) in [
            ("true", true),
            ("TRUE", true),
            ("t", true),
            ("Yes", true),
            ("1", true),
            ("false", false),
            ("F", false),
            ("no", false),
            ("0", false),
            (" true ", true),
        ] {
            let column = from_text(&DataType::Bool, text).unwrap();
            assert_eq!(column.values, Values::Bool(vec![expected]), "{text:?}");
        }
        assert_eq!(
            text_error(&DataType::Bool, "maybe"),
            "\"maybe\" is not a bool; give true, false, t, f, yes, no, 1 or 0"
        );
    }

    #[test]
    fn int_accepts_json_integers_only() {
        for value in [0, -5, i64::MIN, i64::MAX] {
            let column = from_json(&DataType::Int, json!(value)).unwrap();
            assert_eq!(column.values, Values::Int(vec![value]));
        }
        assert_eq!(
            json_error(&DataType::Int, json!("abc")),
            "\"abc\" is not an int"
        );
        assert_eq!(
            json_error(&DataType::Int, json!(1.5)),
            "1.5 is not an int; give a whole number"
        );
        assert_eq!(
            json_error(&DataType::Int, json!("12")),
            "\"12\" is a string, not an int; write the number without quotes"
        );
        assert_eq!(
            json_error(&DataType::Int, json!(1e3)),
            "1000.0 is not an int; write it without a decimal point or exponent"
        );
        assert_eq!(
            json_error(&DataType::Int, json!(true)),
            "true is not an int"
        );
    }

    #[test]
    fn int_rejects_out_of_range() {
        let expected = "is out of range for an int (-9223372036854775808 to \
                        9223372036854775807)";
        let error = json_error(&DataType::Int, json!(u64::MAX));
        assert_eq!(error, format!("18446744073709551615 {expected}"));
        let error = json_error(&DataType::Int, json!(1e19));
        assert_eq!(error, format!("1e+19 {expected}"));
        let error = text_error(&DataType::Int, "9223372036854775808");
        assert_eq!(error, format!("\"9223372036854775808\" {expected}"));
        let error = text_error(&DataType::Int, "-9223372036854775809");
        assert_eq!(error, format!("\"-9223372036854775809\" {expected}"));
    }

    #[test]
    fn int_text_trims_and_rejects_fractions() {
        let column = from_text(&DataType::Int, " -42 ").unwrap();
        assert_eq!(column.values, Values::Int(vec![-42]));
        assert_eq!(
            text_error(&DataType::Int, "1.5"),
            "\"1.5\" is not an int; give a whole number"
        );
        assert_eq!(
            text_error(&DataType::Int, "2e3"),
            "\"2e3\" is not an int; write it without a decimal point or exponent"
        );
        assert_eq!(text_error(&DataType::Int, "abc"), "\"abc\" is not an int");
        assert_eq!(text_error(&DataType::Int, " "), "\" \" is not an int");
    }

    #[test]
    fn float_accepts_any_json_number() {
        let column = from_json(&DataType::Float, json!(1.5)).unwrap();
        assert_eq!(column.values, Values::Float(vec![1.5]));
        let column = from_json(&DataType::Float, json!(3)).unwrap();
        assert_eq!(column.values, Values::Float(vec![3.0]));
        assert_eq!(
            json_error(&DataType::Float, json!("1.5")),
            "\"1.5\" is a string, not a float; write the number without quotes"
        );
        assert_eq!(
            json_error(&DataType::Float, json!("NaN")),
            "\"NaN\" is a string, not a float; write the number without quotes"
        );
        assert_eq!(
            json_error(&DataType::Float, json!([1])),
            "[1] is not a float"
        );
    }

    #[test]
    fn float_text_rejects_non_finite() {
        let column = from_text(&DataType::Float, " 2.5e-3 ").unwrap();
        assert_eq!(column.values, Values::Float(vec![2.5e-3]));
        for text in ["NaN", "nan", "inf", "-inf", "Infinity", "1e400"] {
            assert_eq!(
                text_error(&DataType::Float, text),
                format!("\"{text}\" is not a finite number")
            );
        }
        assert_eq!(
            text_error(&DataType::Float, "abc"),
            "\"abc\" is not a float"
        );
    }

    #[test]
    fn string_accepts_json_strings_only() {
        let column = from_json(&DataType::String, json!("héllo")).unwrap();
        assert_eq!(cell_text(&column, 0).as_deref(), Some("héllo"));
        assert_eq!(
            json_error(&DataType::String, json!(5)),
            "5 is not a string; put it in quotes"
        );
    }

    #[test]
    fn string_rejects_nul() {
        let expected = "\"a\\u0000b\" contains the NUL character (\\u0000), which Postgres \
                        text cannot store; remove it";
        assert_eq!(json_error(&DataType::String, json!("a\0b")), expected);
        assert_eq!(text_error(&DataType::String, "a\0b"), expected);
        let error = from_literal(&DataType::String, Literal::String("a\0b".into())).unwrap_err();
        assert_eq!(error, expected);
    }

    #[test]
    fn text_keeps_strings_as_they_are() {
        let column = from_text(&DataType::String, "  a, \"b\"\n").unwrap();
        assert_eq!(cell_text(&column, 0).as_deref(), Some("  a, \"b\"\n"));
        assert!(from_text(&DataType::String, "").unwrap().is_null(0));
    }

    #[test]
    fn bytes_are_base64() {
        let column = from_json(&DataType::Bytes, json!("AAEC/w==")).unwrap();
        assert_eq!(cell_json(&column, 0), json!("AAEC/w=="));
        let Values::Bytes(bytes) = &column.values else {
            panic!("not bytes")
        };
        assert_eq!(bytes.data, [0, 1, 2, 255]);
        let column = from_text(&DataType::Bytes, "AAEC").unwrap();
        assert_eq!(cell_text(&column, 0).as_deref(), Some("AAEC"));
    }

    #[test]
    fn bytes_reject_invalid_base64() {
        let hint = "give bytes in standard base64 with padding, such as \"AAEC\"";
        assert_eq!(
            json_error(&DataType::Bytes, json!("AA!C")),
            format!("\"AA!C\" is not valid base64 (invalid character '!' at offset 2); {hint}")
        );
        assert_eq!(
            json_error(&DataType::Bytes, json!("AAE")),
            format!("\"AAE\" is not valid base64 (missing or misplaced padding); {hint}")
        );
        assert_eq!(
            text_error(&DataType::Bytes, "AB=="),
            "\"AB==\" is not valid base64 (invalid last character 'B' at offset 1); \
             give bytes in standard base64 with padding, such as \"AAEC\""
        );
        assert_eq!(
            json_error(&DataType::Bytes, json!([1, 2])),
            "[1,2] is not bytes; give a base64 string such as \"AAEC\""
        );
    }

    #[test]
    fn json_stores_compact_text() {
        let column = from_json(&DataType::Json, json!({"b": [1, 2], "a": "x"})).unwrap();
        let Values::Json(text) = &column.values else {
            panic!("not json")
        };
        // Keys keep their order; Postgres's jsonb orders them its own way.
        assert_eq!(text.data, r#"{"b":[1,2],"a":"x"}"#);
        let column = from_text(&DataType::Json, r#"{ "b" : [1, 2.5] }"#).unwrap();
        assert_eq!(cell_text(&column, 0).as_deref(), Some(r#"{"b":[1,2.5]}"#));
        let column = from_json(&DataType::Json, json!("just text")).unwrap();
        assert_eq!(cell_json(&column, 0), json!("just text"));
    }

    #[test]
    fn json_null_document_is_null_cell() {
        assert!(from_text(&DataType::Json, "null").unwrap().is_null(0));
        let literal = Literal::String("null".into());
        assert!(from_literal(&DataType::Json, literal).unwrap().is_null(0));
    }

    #[test]
    fn json_rejects_invalid_text_and_nul() {
        assert_eq!(
            text_error(&DataType::Json, "{oops"),
            "\"{oops\" is not valid JSON: key must be a string at line 1 column 2"
        );
        assert_eq!(
            json_error(&DataType::Json, json!({"a": ["x\u{0}"]})),
            "{\"a\":[\"x\\u0000\"]} contains the NUL character (\\u0000), which Postgres \
             cannot store in JSON; remove it"
        );
        let error = text_error(&DataType::Json, r#"{"a\u0000": 1}"#);
        assert!(error.contains("contains the NUL character"), "{error}");
    }

    #[test]
    fn timestamp_reads_every_form() {
        assert_eq!(micros("2024-05-01T12:00:00Z"), NOON);
        assert_eq!(micros("2024-05-01t12:00:00z"), NOON);
        assert_eq!(micros("2024-05-01T14:00:00+02:00"), NOON);
        assert_eq!(micros("2024-05-01T08:30:00-03:30"), NOON);
        assert_eq!(micros("2024-05-01T12:00:00.000123Z"), NOON + 123);
        assert_eq!(micros("2024-05-01T12:00:00.5Z"), NOON + 500_000);
        assert_eq!(micros("2024-05-01 12:00:00"), NOON);
        assert_eq!(micros("2024-05-01 12:00:00.25"), NOON + 250_000);
        assert_eq!(micros("2024-05-01 12:00:00+00"), NOON);
        assert_eq!(micros("2024-05-01 14:00:00.000000+02"), NOON);
        assert_eq!(micros(" 2024-05-01 "), NOON - 12 * 3600 * MICROS_PER_SECOND);
        assert_eq!(micros("1970-01-01"), 0);
        assert_eq!(micros("1969-12-31T23:59:59.999999Z"), -1);
        assert_eq!(micros("2024-02-29"), 1_709_164_800_000_000);
    }

    #[test]
    fn timestamp_range_is_years_1_to_9999() {
        assert_eq!(micros("0001-01-01T00:00:00Z"), MIN_TIMESTAMP);
        assert_eq!(micros("9999-12-31T23:59:59.999999Z"), MAX_TIMESTAMP);
        let expected = "is out of range; timestamps must fall within the years 1 to 9999 UTC";
        for text in [
            "0000-12-31",
            "0001-01-01T00:30:00+01:00",
            "9999-12-31T23:00:00-02:00",
        ] {
            let error = parse_timestamp(text).unwrap_err().message;
            assert_eq!(error, format!("\"{text}\" {expected}"));
        }
    }

    #[test]
    fn timestamp_rejects_malformed_text() {
        let forms = "give RFC 3339 such as \"2024-05-01T12:00:00Z\", \"2024-05-01 \
                     12:00:00\" (taken as UTC) or \"2024-05-01\" (midnight UTC)";
        for text in [
            "yesterday",
            "2024-5-1",
            "2024-05-01T12:00Z",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00Z junk",
            "2024-05-01X12:00:00Z",
            "2024-05-01T12:00:00+0200",
            "1714564800",
        ] {
            let error = parse_timestamp(text).unwrap_err().message;
            assert_eq!(error, format!("\"{text}\" is not a timestamp; {forms}"));
        }
        assert_eq!(
            parse_timestamp("2024-05-01T12:00:00").unwrap_err().message,
            "\"2024-05-01T12:00:00\" has no UTC offset; add Z or an offset such as +02:00"
        );
        assert_eq!(
            parse_timestamp("2024-05-01T12:00:00.1234567Z")
                .unwrap_err()
                .message,
            "\"2024-05-01T12:00:00.1234567Z\" has more than 6 fractional digits; timestamps \
             store whole microseconds"
        );
        assert_eq!(
            json_error(&DataType::Timestamp, json!(1714564800)),
            format!("1714564800 is not a timestamp; {forms}")
        );
    }

    #[test]
    fn timestamp_rejects_dates_that_do_not_exist() {
        for (text, part) in [
            ("2023-02-29", "day"),
            ("2024-04-31", "day"),
            ("2024-13-01", "month"),
            ("2024-00-01", "month"),
            ("2024-05-01T24:00:00Z", "hour"),
            ("2024-05-01T12:60:00Z", "minute"),
            ("2024-05-01T23:59:60Z", "second"),
            ("2024-05-01T12:00:00+24:00", "UTC offset"),
            ("2024-05-01T12:00:00+01:60", "UTC offset"),
        ] {
            let error = parse_timestamp(text).unwrap_err().message;
            assert_eq!(
                error,
                format!("\"{text}\" is not a valid timestamp: its {part} is out of range")
            );
        }
    }

    #[test]
    fn timestamp_formats_as_rfc_3339() {
        assert_eq!(format_timestamp(NOON), "2024-05-01T12:00:00Z");
        assert_eq!(format_timestamp(NOON + 123), "2024-05-01T12:00:00.000123Z");
        assert_eq!(format_timestamp(-1), "1969-12-31T23:59:59.999999Z");
        assert_eq!(format_timestamp(MIN_TIMESTAMP), "0001-01-01T00:00:00Z");
        assert_eq!(
            format_timestamp(MAX_TIMESTAMP),
            "9999-12-31T23:59:59.999999Z"
        );
        assert_eq!(
            format_timestamp(MAX_TIMESTAMP + 1),
            "+10000-01-01T00:00:00Z"
        );
        assert_eq!(
            format_timestamp(MIN_TIMESTAMP - MICROS_PER_DAY * 367),
            "-0001-12-31T00:00:00Z"
        );
    }

    #[test]
    fn timestamp_parts_match_time_crate() {
        // Every 997th day from year 1 to 9999, and the days around the
        // epoch, against the `time` crate's calendar.
        let first = MIN_TIMESTAMP / MICROS_PER_DAY;
        let last = MAX_TIMESTAMP / MICROS_PER_DAY;
        let days = (first..=last).step_by(997).chain(-800..800).chain([last]);
        for day in days {
            let micros = day * MICROS_PER_DAY + 45_296_000_007;
            let parts = TimestampParts::from_micros(micros);
            let expected =
                time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).unwrap();
            assert_eq!(parts.year, i64::from(expected.year()), "day {day}");
            assert_eq!(parts.month, u8::from(expected.month()), "day {day}");
            assert_eq!(parts.day, expected.day(), "day {day}");
            assert_eq!(
                (parts.hour, parts.minute, parts.second),
                (12, 34, 56),
                "day {day}"
            );
            assert_eq!(parts.microsecond, 7, "day {day}");
        }
    }

    #[test]
    fn timestamp_parts_cover_every_i64() {
        let parts = TimestampParts::from_micros(i64::MAX);
        assert_eq!(parts.year, 294_247);
        let parts = TimestampParts::from_micros(i64::MIN);
        assert_eq!(parts.year, -290_308);
    }

    #[test]
    fn vector_needs_exact_dimension() {
        let data_type = DataType::Vector(3);
        let column = from_json(&data_type, json!([1, 2.5, -3])).unwrap();
        assert_eq!(cell_text(&column, 0).as_deref(), Some("[1,2.5,-3]"));
        let column = from_text(&data_type, "[1, 2, 3]").unwrap();
        assert_eq!(cell_json(&column, 0), json!([1.0, 2.0, 3.0]));
        assert_eq!(
            json_error(&data_type, json!([1, 2])),
            "[1,2] has 2 elements; vector(3) needs 3"
        );
        assert_eq!(
            text_error(&data_type, "[1, 2]"),
            "\"[1, 2]\" has 2 elements; vector(3) needs 3"
        );
    }

    #[test]
    fn vector_rejects_bad_elements() {
        let data_type = DataType::Vector(3);
        assert_eq!(
            json_error(&data_type, json!([1, "a", 3])),
            "element 2 of [1,\"a\",3] is not a number"
        );
        assert_eq!(
            json_error(&data_type, json!([1, 2, 1e39])),
            "element 3 of [1,2,1e+39] is out of range for a vector element, a 32-bit \
             float of magnitude at most 3.4028235e38"
        );
        assert_eq!(
            json_error(&data_type, json!("[1, 2, 3]")),
            "\"[1, 2, 3]\" is not a vector; give a JSON array of 3 numbers such as [1, 2, 3]"
        );
        assert_eq!(
            text_error(&DataType::Vector(5), "1,2,3,4,5"),
            "\"1,2,3,4,5\" is not a vector; give a JSON array of 5 numbers such as \
             [1, 2, 3, ...]"
        );
        assert_eq!(
            text_error(&data_type, "[NaN, 1, 2]"),
            "\"[NaN, 1, 2]\" is not a vector; give a JSON array of 3 numbers such as \
             [1, 2, 3]"
        );
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "x".repeat(100);
        let error = json_error(&DataType::Int, json!(long));
        assert_eq!(error, format!("\"{}... is not an int", "x".repeat(59)));
    }

    #[test]
    fn literal_int_fits_int_and_float() {
        let column = from_literal(&DataType::Int, Literal::Int(7)).unwrap();
        assert_eq!(column.values, Values::Int(vec![7]));
        let column = from_literal(&DataType::Float, Literal::Int(7)).unwrap();
        assert_eq!(column.values, Values::Float(vec![7.0]));
        assert_eq!(
            from_literal(&DataType::String, Literal::Int(7)).unwrap_err(),
            "7 is an int, not a string; write text in single quotes, as in 'text'"
        );
        assert_eq!(
            from_literal(&DataType::Timestamp, Literal::Int(7)).unwrap_err(),
            "7 is an int, not a timestamp"
        );
        assert_eq!(
            from_literal(&DataType::Bool, Literal::Int(1)).unwrap_err(),
            "1 is an int, not a bool"
        );
    }

    #[test]
    fn literal_float_fits_float_only() {
        let column = from_literal(&DataType::Float, Literal::Float(1.5)).unwrap();
        assert_eq!(column.values, Values::Float(vec![1.5]));
        assert_eq!(
            from_literal(&DataType::Int, Literal::Float(1.5)).unwrap_err(),
            "1.5 is not an int; give a whole number"
        );
        assert_eq!(
            from_literal(&DataType::Float, Literal::Float(f64::INFINITY)).unwrap_err(),
            "inf is not a finite number"
        );
        assert_eq!(
            from_literal(&DataType::Vector(1), Literal::Float(1.5)).unwrap_err(),
            "1.5 is a float, not a vector(1)"
        );
    }

    #[test]
    fn literal_bool_and_null() {
        let column = from_literal(&DataType::Bool, Literal::Bool(false)).unwrap();
        assert_eq!(column.values, Values::Bool(vec![false]));
        assert_eq!(
            from_literal(&DataType::Int, Literal::Bool(true)).unwrap_err(),
            "true is a bool, not an int"
        );
        for data_type in all_types() {
            let column = from_literal(&data_type, Literal::Null).unwrap();
            assert!(column.is_null(0), "{data_type}");
        }
    }

    #[test]
    fn literal_string_is_parsed_for_typed_columns() {
        let text = |s: &str| Literal::String(s.to_owned());
        let column = from_literal(&DataType::Timestamp, text("2024-05-01T12:00:00Z")).unwrap();
        assert_eq!(column.values, Values::Timestamp(vec![NOON]));
        let column = from_literal(&DataType::Json, text(r#"{"a": 1}"#)).unwrap();
        assert_eq!(cell_json(&column, 0), json!({"a": 1}));
        let column = from_literal(&DataType::Vector(2), text("[1, 2]")).unwrap();
        assert_eq!(cell_text(&column, 0).as_deref(), Some("[1,2]"));
        let column = from_literal(&DataType::Bytes, text("")).unwrap();
        assert!(!column.is_null(0));
        assert_eq!(cell_text(&column, 0).as_deref(), Some(""));
        let column = from_literal(&DataType::String, text("")).unwrap();
        assert_eq!(cell_text(&column, 0).as_deref(), Some(""));
        assert_eq!(
            from_literal(&DataType::Timestamp, text("")).unwrap_err(),
            "\"\" is not a timestamp; give RFC 3339 such as \"2024-05-01T12:00:00Z\", \
             \"2024-05-01 12:00:00\" (taken as UTC) or \"2024-05-01\" (midnight UTC)"
        );
        assert_eq!(
            from_literal(&DataType::Int, text("12")).unwrap_err(),
            "\"12\" is a string, not an int; write the number without quotes"
        );
    }

    #[test]
    fn cell_json_prints_each_type() {
        let cases = [
            (DataType::Bool, json!(true)),
            (DataType::Int, json!(-12)),
            (DataType::Float, json!(0.1)),
            (DataType::String, json!("tab\there")),
            (DataType::Bytes, json!("AAEC")),
            (DataType::Json, json!({"a": [1, null]})),
            (DataType::Timestamp, json!("2024-05-01T12:00:00.000123Z")),
            (DataType::Vector(3), json!([0.1, 2.5, -3.0])),
        ];
        for (data_type, value) in cases {
            let column = from_json(&data_type, value.clone()).unwrap();
            assert_eq!(cell_json(&column, 0), value, "{data_type}");
            assert_eq!(
                cell_json(&column, 0).to_string(),
                value.to_string(),
                "{data_type}"
            );
        }
    }

    #[test]
    fn cell_text_prints_each_type() {
        let cases = [
            (DataType::Bool, json!(false), "false"),
            (DataType::Int, json!(-12), "-12"),
            (DataType::Float, json!(0.1), "0.1"),
            (DataType::Float, json!(3), "3.0"),
            (DataType::Float, json!(1e300), "1e300"),
            (DataType::String, json!("a,b"), "a,b"),
            (DataType::Bytes, json!("AAEC"), "AAEC"),
            (DataType::Json, json!({"a": [1, null]}), r#"{"a":[1,null]}"#),
            (
                DataType::Timestamp,
                json!("2024-05-01T12:00:00Z"),
                "2024-05-01T12:00:00Z",
            ),
            (DataType::Vector(3), json!([0.1, 2.5, -3]), "[0.1,2.5,-3]"),
        ];
        for (data_type, value, expected) in cases {
            let column = from_json(&data_type, value).unwrap();
            assert_eq!(
                cell_text(&column, 0).as_deref(),
                Some(expected),
                "{data_type}"
            );
        }
        let column = Column::nulls(&DataType::Int, 1);
        assert_eq!(cell_text(&column, 0), None);
    }

    #[test]
    fn non_finite_floats_print_as_strings() {
        let mut builder = ColumnBuilder::new(&DataType::Float, 3);
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            builder.push_float(value);
        }
        let column = builder.finish();
        let printed: Vec<Json> = (0..3).map(|row| cell_json(&column, row)).collect();
        assert_eq!(printed, [json!("NaN"), json!("inf"), json!("-inf")]);
        let texts: Vec<String> = (0..3).map(|row| cell_text(&column, row).unwrap()).collect();
        assert_eq!(texts, ["NaN", "inf", "-inf"]);
        let mut builder = ColumnBuilder::new(&DataType::Vector(2), 1);
        builder.push_vector(&[f32::NAN, f32::NEG_INFINITY]);
        let column = builder.finish();
        assert_eq!(cell_json(&column, 0), json!(["NaN", "-inf"]));
    }

    fn all_types() -> Vec<DataType> {
        vec![
            DataType::Bool,
            DataType::Int,
            DataType::Float,
            DataType::String,
            DataType::Bytes,
            DataType::Json,
            DataType::Timestamp,
            DataType::Vector(3),
        ]
    }

    /// Builds a column of each type with nulls and edge values.
    fn sample_columns() -> Vec<Column> {
        let mut columns = Vec::new();

        let mut builder = ColumnBuilder::new(&DataType::Bool, 3);
        builder.push_bool(true);
        builder.push_null();
        builder.push_bool(false);
        columns.push(builder.finish());

        let mut builder = ColumnBuilder::new(&DataType::Int, 4);
        for value in [0, -1, i64::MIN, i64::MAX] {
            builder.push_int(value);
        }
        builder.push_null();
        columns.push(builder.finish());

        let mut builder = ColumnBuilder::new(&DataType::Float, 8);
        for value in [
            0.0,
            -0.0,
            0.1,
            1.0 / 3.0,
            1e300,
            -2.5e-300,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            123_456_789.0,
        ] {
            builder.push_float(value);
        }
        builder.push_null();
        columns.push(builder.finish());

        let mut builder = ColumnBuilder::new(&DataType::String, 4);
        for value in [
            "plain",
            "tab\tnew\nline",
            "\"quoted\", comma",
            " spaced ",
            "日本",
        ] {
            builder.push_str(value);
        }
        builder.push_null();
        columns.push(builder.finish());

        let mut builder = ColumnBuilder::new(&DataType::Bytes, 3);
        builder.push_bytes(&[0, 1, 2, 255]);
        builder.push_bytes(b"\n\t\\");
        builder.push_null();
        columns.push(builder.finish());

        let mut builder = ColumnBuilder::new(&DataType::Json, 4);
        for value in [
            json!({"b": 1, "a": [true, null, 1.5, "x"]}),
            json!([]),
            json!("text"),
            json!(12),
            json!(u64::MAX),
            json!(false),
        ] {
            builder.push_str(&value.to_string());
        }
        builder.push_null();
        columns.push(builder.finish());

        let mut builder = ColumnBuilder::new(&DataType::Timestamp, 5);
        for value in [0, -1, NOON, NOON + 123, MIN_TIMESTAMP, MAX_TIMESTAMP] {
            builder.push_int(value);
        }
        builder.push_null();
        columns.push(builder.finish());

        let mut builder = ColumnBuilder::new(&DataType::Vector(3), 3);
        builder.push_vector(&[0.1, -2.5, 3.0]);
        builder.push_vector(&[f32::MAX, f32::MIN_POSITIVE, -0.0]);
        builder.push_vector(&[1e-45, 16_777_217.0, 1e20]);
        builder.push_null();
        columns.push(builder.finish());

        columns
    }

    #[test]
    fn json_round_trip_for_every_type() {
        for column in sample_columns() {
            let data_type = column.values.data_type();
            let mut builder = ColumnBuilder::new(&data_type, column.len());
            for row in 0..column.len() {
                let value = cell_json(&column, row);
                push_json(&mut builder, &data_type, &value)
                    .unwrap_or_else(|e| panic!("{data_type} row {row}: {e}"));
            }
            assert_eq!(builder.finish(), column, "{data_type}");
        }
    }

    #[test]
    fn text_round_trip_for_every_type() {
        for column in sample_columns() {
            let data_type = column.values.data_type();
            let mut builder = ColumnBuilder::new(&data_type, column.len());
            for row in 0..column.len() {
                let text = cell_text(&column, row).unwrap_or_default();
                push_text(&mut builder, &data_type, &text)
                    .unwrap_or_else(|e| panic!("{data_type} row {row}: {e}"));
            }
            assert_eq!(builder.finish(), column, "{data_type}");
        }
    }

    #[test]
    fn vector_elements_round_trip_through_text_and_json() {
        // Every 9973rd bit pattern of f32, about 430,000 values.
        let data_type = DataType::Vector(1);
        for bits in (0..=u32::MAX).step_by(9973) {
            let element = f32::from_bits(bits);
            if !element.is_finite() {
                continue;
            }
            let mut builder = ColumnBuilder::new(&data_type, 1);
            builder.push_vector(&[element]);
            let column = builder.finish();
            let text = cell_text(&column, 0).unwrap();
            let from_text = from_text(&data_type, &text).unwrap();
            assert_eq!(from_text, column, "{bits:#x} as {text}");
            let from_json = from_json(&data_type, cell_json(&column, 0)).unwrap();
            assert_eq!(from_json, column, "{bits:#x} as JSON");
        }
    }

    #[test]
    fn float_formats_shortest() {
        assert_eq!(format_f64(1.0), "1.0");
        assert_eq!(format_f64(0.1), "0.1");
        assert_eq!(format_f64(1e20), "1e20");
        assert_eq!(format_f64(-2.5e-7), "-2.5e-7");
        assert_eq!(format_f32(1.0), "1");
        assert_eq!(format_f32(0.1), "0.1");
        assert_eq!(format_f32(-0.0), "-0");
        assert_eq!(format_f32(16_777_216.0), "16777216");
        assert_eq!(format_vector(&[]), "[]");
    }
}
