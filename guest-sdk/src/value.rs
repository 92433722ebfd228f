//! Value types that have no Rust primitive of their own.

use std::fmt;
use std::ops::Deref;

/// A JSON document borrowed from an argument column, as its UTF-8 text.
///
/// The host sends only text that parses as JSON. Parse it with any JSON
/// library, or return it unchanged as a `json` result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Json<'a>(pub &'a str);

impl<'a> Json<'a> {
    /// Returns the document's text.
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

impl Deref for Json<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        self.0
    }
}

impl AsRef<str> for Json<'_> {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// An owned JSON document, as its UTF-8 text, for a `json` result.
///
/// NOTE: the SDK does not parse the text, so a function that builds it by
/// hand must produce valid JSON. With the `serde_json` feature, return a
/// `serde_json::Value` instead to have it serialized.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct JsonString(pub String);

impl JsonString {
    /// Wraps text that is already a JSON document.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// Returns the document's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for JsonString {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for JsonString {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JsonString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Json<'_>> for JsonString {
    fn from(json: Json<'_>) -> Self {
        Self(json.0.to_owned())
    }
}

#[cfg(feature = "serde_json")]
impl From<&serde_json::Value> for JsonString {
    fn from(value: &serde_json::Value) -> Self {
        Self(value.to_string())
    }
}

/// A point in time, in microseconds since 1970-01-01T00:00:00Z.
///
/// `repr(transparent)` over `i64`, so a `&[Timestamp]` column costs the same
/// as a `&[i64]` one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The Unix epoch, 1970-01-01T00:00:00Z.
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);

    /// Creates a timestamp from microseconds since the Unix epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Returns the microseconds since the Unix epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }
}

/// One row of a column, borrowed, as [`Column::value`](crate::types::Column::value)
/// returns it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// A `bool` row.
    Bool(bool),
    /// An `int` row.
    Int(i64),
    /// A `float` row.
    Float(f64),
    /// A `string` row.
    String(&'a str),
    /// A `bytes` row.
    Bytes(&'a [u8]),
    /// A `json` row, as its text.
    Json(&'a str),
    /// A `timestamp` row.
    Timestamp(Timestamp),
    /// A `vector` row.
    Vector(&'a [f32]),
}
