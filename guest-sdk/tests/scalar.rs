//! Scalar functions: one call a row, with the SDK looping over the batch.

use std::borrow::Cow;

use sandtable_guest::types::{CallError, Column, DataType, Values};
use sandtable_guest::{Json, JsonString, Timestamp, Value, testing, udf};

/// Upper-cases
/// text.
///
/// The rest of the doc comment is not part of the summary.
#[udf]
fn upper(s: &str) -> String {
    s.to_uppercase()
}

/// Counts characters.
#[udf]
fn length(s: &str) -> i64 {
    s.chars().count() as i64
}

/// Returns the text before the first space, borrowed from the argument.
#[udf]
fn first_word(s: &str) -> &str {
    s.split(' ').next().unwrap_or_default()
}

#[udf]
fn is_null(x: Option<i64>) -> bool {
    x.is_none()
}

#[udf(
    name = "coalesce",
    doc = "Returns the first argument that is not null."
)]
fn coalesce_ints(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    a.or(b)
}

#[udf]
fn div(a: i64, b: i64) -> Result<i64, String> {
    a.checked_div(b)
        .ok_or_else(|| format!("cannot divide {a} by {b}"))
}

#[udf]
fn parse_int(s: &str) -> Result<Option<i64>, std::num::ParseIntError> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse().map(Some)
}

#[udf(batch_size = 64, pool = "request-rate:test", fuel_per_row = 10_000, memory_bytes = 1 << 24, deadline_ms = 250, output_bytes = 4096)]
fn negate(x: f64) -> f64 {
    -x
}

#[udf]
fn not(x: bool) -> bool {
    !x
}

#[udf]
fn next_second(t: Timestamp) -> Timestamp {
    Timestamp(t.as_micros() + 1_000_000)
}

#[udf]
fn reverse_bytes(b: &[u8]) -> Vec<u8> {
    b.iter().rev().copied().collect()
}

#[udf]
fn wrap_json(doc: Json<'_>) -> JsonString {
    JsonString(format!("[{}]", doc.as_str()))
}

#[udf]
fn same_json(doc: Json<'_>) -> Json<'_> {
    doc
}

#[udf]
fn cow(s: &str) -> Cow<'static, str> {
    if s.is_empty() {
        Cow::Borrowed("empty")
    } else {
        Cow::Owned(s.repeat(2))
    }
}

#[udf]
fn norm(#[dimension(3)] v: &[f32]) -> f64 {
    v.iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt()
}

#[udf]
fn scale2(v: &[f32; 2]) -> [f32; 2] {
    [v[0] * 2.0, v[1] * 2.0]
}

#[udf(dimension = 4)]
fn repeat4(x: f64) -> Vec<f32> {
    vec![x as f32; 4]
}

/// Returns a vector of `n` elements, whatever the declared dimension.
#[udf(dimension = 2)]
fn sized(n: i64) -> Vec<f32> {
    vec![1.0; n as usize]
}

#[udf]
fn answer() -> i64 {
    42
}

#[cfg(feature = "serde_json")]
#[udf]
fn object(key: &str) -> serde_json::Value {
    serde_json::json!({ key: 1 })
}

fn strings(column: &Column) -> Vec<Option<&str>> {
    column
        .to_values()
        .into_iter()
        .map(|value| match value {
            Some(Value::String(text)) => Some(text),
            None => None,
            other => panic!("expected a string row, got {other:?}"),
        })
        .collect()
}

#[test]
fn upper_converts_every_row() {
    let result = testing::call::<upper>(&[Column::strings(["a", "", "straße", "ǅ"])]).unwrap();
    assert_eq!(
        strings(&result.column),
        [Some("A"), Some(""), Some("STRASSE"), Some("Ǆ")]
    );
    assert!(result.errors.is_empty());
    assert!(result.column.nulls.is_empty());
}

#[test]
fn string_result_packs_one_buffer() {
    let result = testing::call::<upper>(&[Column::strings(["ab", "c"])]).unwrap();
    let Values::String(column) = &result.column.values else {
        panic!("expected a string column, got {:?}", result.column.values);
    };
    assert_eq!(column.data, "ABC");
    assert_eq!(column.offsets, [0, 2, 3]);
}

#[test]
fn length_counts_characters() {
    let result = testing::call::<length>(&[Column::strings(["héllo", "", "日本"])]).unwrap();
    assert_eq!(result.column.values, Values::Int(vec![5, 0, 2]));
}

#[test]
fn borrowed_result_copies_slice() {
    let result = testing::call::<first_word>(&[Column::strings(["hello world", "one"])]).unwrap();
    assert_eq!(strings(&result.column), [Some("hello"), Some("one")]);
}

#[test]
fn strict_function_skips_null_rows() {
    let input = Column::strings(["a", "ignored", "c"]).with_nulls([false, true, false]);
    let result = testing::call::<upper>(&[input]).unwrap();
    assert_eq!(strings(&result.column), [Some("A"), None, Some("C")]);
    assert_eq!(result.column.nulls, [false, true, false]);
    let Values::String(column) = &result.column.values else {
        panic!("expected a string column");
    };
    assert_eq!(column.offsets, [0, 1, 1, 2], "a null row is an empty slice");
}

#[test]
fn strict_fixed_width_null_is_placeholder() {
    let input = Column::ints([6, 7]).with_nulls([true, false]);
    let result = testing::call::<div>(&[input, Column::ints([2, 7])]).unwrap();
    assert_eq!(result.column.values, Values::Int(vec![0, 1]));
    assert_eq!(result.column.nulls, [true, false]);
}

#[test]
fn option_parameter_takes_nulls() {
    let input = Column::ints([1, 0, 3]).with_nulls([false, true, false]);
    let result = testing::call::<is_null>(&[input]).unwrap();
    assert_eq!(result.column.values, Values::Bool(vec![false, true, false]));
    assert!(testing::describe::<is_null>().takes_nulls);
    assert!(!testing::describe::<upper>().takes_nulls);
}

#[test]
fn option_result_gives_null() {
    let a = Column::ints([1, 0, 0]).with_nulls([false, true, true]);
    let b = Column::ints([2, 5, 0]).with_nulls([false, false, true]);
    let result = testing::call::<coalesce_ints>(&[a, b]).unwrap();
    assert_eq!(
        result.column.to_values(),
        [Some(Value::Int(1)), Some(Value::Int(5)), None]
    );
    assert_eq!(result.column.nulls, [false, false, true]);
}

#[test]
fn result_error_becomes_row_error() {
    let result = testing::call::<div>(&[Column::ints([6, 1, 9]), Column::ints([3, 0, 3])]).unwrap();
    assert_eq!(
        result.column.to_values(),
        [Some(Value::Int(2)), None, Some(Value::Int(3))]
    );
    assert_eq!(result.errors.len(), 1);
    assert_eq!(result.errors[0].row, 1);
    assert_eq!(result.errors[0].message, "cannot divide 1 by 0");
}

#[test]
fn result_of_option_combines_both() {
    let result = testing::call::<parse_int>(&[Column::strings(["12", "", "x"])]).unwrap();
    assert_eq!(
        result.column.to_values(),
        [Some(Value::Int(12)), None, None]
    );
    assert_eq!(result.errors.len(), 1);
    assert_eq!(result.errors[0].row, 2);
    assert_eq!(result.errors[0].message, "invalid digit found in string");
}

#[test]
fn fixed_width_types_round_trip() {
    let floats = testing::call::<negate>(&[Column::floats([1.5, -0.0])]).unwrap();
    assert_eq!(floats.column.values, Values::Float(vec![-1.5, 0.0]));

    let bools = testing::call::<not>(&[Column::bools([true, false])]).unwrap();
    assert_eq!(bools.column.values, Values::Bool(vec![false, true]));

    let times =
        testing::call::<next_second>(&[Column::timestamps([Timestamp(0), Timestamp(-5)])]).unwrap();
    assert_eq!(
        times.column.values,
        Values::Timestamp(vec![1_000_000, 999_995])
    );
}

#[test]
fn bytes_round_trip() {
    let result =
        testing::call::<reverse_bytes>(&[Column::bytes([&b"abc"[..], b"", b"\0\xff"])]).unwrap();
    assert_eq!(
        result.column.to_values(),
        [
            Some(Value::Bytes(b"cba")),
            Some(Value::Bytes(b"")),
            Some(Value::Bytes(b"\xff\0"))
        ]
    );
}

#[test]
fn json_round_trip() {
    let result = testing::call::<wrap_json>(&[Column::json([r#"{"a":1}"#, "null"])]).unwrap();
    assert_eq!(
        result.column.to_values(),
        [
            Some(Value::Json(r#"[{"a":1}]"#)),
            Some(Value::Json("[null]"))
        ]
    );
    let same = testing::call::<same_json>(&[Column::json(["true"])]).unwrap();
    assert_eq!(same.column.to_values(), [Some(Value::Json("true"))]);
    assert!(matches!(
        testing::describe::<same_json>().returns,
        DataType::Json
    ));
}

#[test]
fn cow_result_accepts_both_variants() {
    let result = testing::call::<cow>(&[Column::strings(["", "ab"])]).unwrap();
    assert_eq!(strings(&result.column), [Some("empty"), Some("abab")]);
}

#[test]
fn vector_parameter_reads_rows() {
    let input = Column::vectors(3, [[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]]);
    let result = testing::call::<norm>(&[input]).unwrap();
    assert_eq!(result.column.values, Values::Float(vec![5.0, 1.0]));
    assert_eq!(
        testing::describe::<norm>().params[0].type_,
        DataType::Vector(3)
    );
}

#[test]
fn array_vector_round_trip() {
    let input = Column::vectors(2, [[1.0, 2.0], [0.5, -1.0]]);
    let result = testing::call::<scale2>(&[input]).unwrap();
    assert_eq!(
        result.column.to_values(),
        [
            Some(Value::Vector(&[2.0, 4.0])),
            Some(Value::Vector(&[1.0, -2.0]))
        ]
    );
    let description = testing::describe::<scale2>();
    assert_eq!(description.params[0].type_, DataType::Vector(2));
    assert_eq!(description.returns, DataType::Vector(2));
}

#[test]
fn declared_dimension_sizes_vec_result() {
    let result = testing::call::<repeat4>(&[Column::floats([1.0])]).unwrap();
    assert_eq!(result.column.to_values(), [Some(Value::Vector(&[1.0; 4]))]);
    assert_eq!(testing::describe::<repeat4>().returns, DataType::Vector(4));
}

#[test]
fn wrong_vector_length_is_row_error() {
    let result = testing::call::<sized>(&[Column::ints([2, 3, 2])]).unwrap();
    assert_eq!(result.column.nulls, [false, true, false]);
    let Values::Vector(vectors) = &result.column.values else {
        panic!("expected a vector column");
    };
    assert_eq!(vectors.dimension, 2);
    assert_eq!(vectors.data, [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
    assert_eq!(result.errors.len(), 1);
    assert_eq!(result.errors[0].row, 1);
    assert_eq!(
        result.errors[0].message,
        "`sized` returned a vector of 3 elements, but its result has dimension 2"
    );
}

#[test]
fn function_without_parameters_fills_batch() {
    let result = testing::call_rows::<answer>(&[], 3).unwrap();
    assert_eq!(result.column.values, Values::Int(vec![42, 42, 42]));
}

#[test]
fn empty_batch_gives_empty_column() {
    let result = testing::call::<upper>(&[Column::strings::<&str>([])]).unwrap();
    assert!(result.column.is_empty());
    let Values::String(column) = &result.column.values else {
        panic!("expected a string column");
    };
    assert_eq!(column.offsets, [0]);
}

#[test]
fn describe_uses_first_doc_paragraph() {
    let description = testing::describe::<upper>();
    assert_eq!(description.name, "upper");
    assert_eq!(description.doc, "Upper-cases text.");
    assert_eq!(description.params.len(), 1);
    assert_eq!(description.params[0].name, "s");
    assert_eq!(description.params[0].type_, DataType::String);
    assert_eq!(description.returns, DataType::String);
    assert_eq!(description.batch_size, sandtable_guest::DEFAULT_BATCH_SIZE);
    assert_eq!(description.pool, None);
    assert_eq!(description.limits.fuel_per_row, None);
}

#[test]
fn describe_applies_attribute_options() {
    let renamed = testing::describe::<coalesce_ints>();
    assert_eq!(renamed.name, "coalesce");
    assert_eq!(renamed.doc, "Returns the first argument that is not null.");

    let description = testing::describe::<negate>();
    assert_eq!(description.doc, "");
    assert_eq!(description.batch_size, 64);
    assert_eq!(description.pool.as_deref(), Some("request-rate:test"));
    assert_eq!(description.limits.fuel_per_row, Some(10_000));
    assert_eq!(description.limits.memory_bytes, Some(1 << 24));
    assert_eq!(description.limits.deadline_ms, Some(250));
    assert_eq!(description.limits.output_bytes, Some(4096));
}

#[test]
fn error_names_function_and_parameter() {
    let error = testing::call::<upper>(&[Column::ints([1])]).unwrap_err();
    let CallError::InvalidArguments(message) = error else {
        panic!("expected invalid-arguments, got {error:?}");
    };
    assert_eq!(
        message,
        "`upper`: parameter `s` expects a string column, but the host sent an int column"
    );
}

#[cfg(feature = "serde_json")]
#[test]
fn serde_json_value_serializes_into_column() {
    let result = testing::call::<object>(&[Column::strings(["a", "b"])]).unwrap();
    assert_eq!(
        result.column.to_values(),
        [
            Some(Value::Json(r#"{"a":1}"#)),
            Some(Value::Json(r#"{"b":1}"#))
        ]
    );
}
