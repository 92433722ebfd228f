//! Malformed input from the host fails the call with `invalid-arguments`,
//! naming the function and the parameter.

use sandtable_guest::types::{BytesColumn, CallError, Column, StringColumn, Values, VectorColumn};
use sandtable_guest::{StrView, testing, udf};

#[udf]
fn concat(a: &str, b: &str) -> String {
    format!("{a}{b}")
}

#[udf]
fn size(b: &[u8]) -> i64 {
    b.len() as i64
}

#[udf]
fn first(#[dimension(2)] v: &[f32]) -> f64 {
    f64::from(v[0])
}

#[udf(batch)]
fn count(s: StrView<'_>) -> Vec<i64> {
    vec![s.len() as i64; s.len()]
}

fn invalid(result: Result<sandtable_guest::types::BatchResult, CallError>) -> String {
    match result {
        Err(CallError::InvalidArguments(message)) => message,
        other => panic!("expected invalid-arguments, got {other:?}"),
    }
}

fn raw_strings(data: &str, offsets: &[u32]) -> Column {
    Column {
        values: Values::String(StringColumn {
            data: data.to_owned(),
            offsets: offsets.to_vec(),
        }),
        nulls: Vec::new(),
    }
}

#[test]
fn missing_argument_is_invalid() {
    let message = invalid(testing::call::<concat>(&[Column::strings(["a"])]));
    assert_eq!(
        message,
        "`concat` takes 2 arguments (`a`, `b`), but the host passed 1"
    );
}

#[test]
fn extra_argument_is_invalid() {
    let message = invalid(testing::call::<size>(&[
        Column::bytes(["a"]),
        Column::bytes(["b"]),
    ]));
    assert_eq!(
        message,
        "`size` takes 1 argument (`b`), but the host passed 2"
    );
}

#[test]
fn column_type_mismatch_is_invalid() {
    let message = invalid(testing::call::<concat>(&[
        Column::strings(["a"]),
        Column::json(["1"]),
    ]));
    assert_eq!(
        message,
        "`concat`: parameter `b` expects a string column, but the host sent a json column"
    );
}

#[test]
fn short_column_is_invalid() {
    let message = invalid(testing::call_rows::<concat>(
        &[Column::strings(["a", "b"]), Column::strings(["c"])],
        2,
    ));
    assert_eq!(
        message,
        "`concat`: parameter `b` has 2 offsets, but 2 rows need 3"
    );
}

#[test]
fn fixed_width_column_length_is_checked() {
    #[udf]
    fn double(x: i64) -> i64 {
        x * 2
    }
    let message = invalid(testing::call_rows::<double>(&[Column::ints([1, 2])], 3));
    assert_eq!(
        message,
        "`double`: parameter `x` has 2 rows, but the batch has 3"
    );
}

#[test]
fn null_mask_length_is_checked() {
    let input = Column::strings(["a", "b"]).with_nulls([false]);
    let message = invalid(testing::call::<size_of_text>(&[input]));
    assert_eq!(
        message,
        "`size_of_text`: parameter `s` has a null mask of 1 flags, but the batch has 2 rows"
    );
}

#[udf]
fn size_of_text(s: &str) -> i64 {
    s.len() as i64
}

#[test]
fn offsets_must_start_at_zero() {
    let message = invalid(testing::call_rows::<size_of_text>(
        &[raw_strings("abc", &[1, 3])],
        1,
    ));
    assert_eq!(
        message,
        "`size_of_text`: parameter `s` has first offset 1, but it must be 0"
    );
}

#[test]
fn offsets_must_end_at_data_length() {
    let message = invalid(testing::call_rows::<size_of_text>(
        &[raw_strings("abc", &[0, 2])],
        1,
    ));
    assert_eq!(
        message,
        "`size_of_text`: parameter `s` has last offset 2, but its data is 3 bytes long"
    );
}

#[test]
fn offsets_must_not_decrease() {
    let message = invalid(testing::call_rows::<size_of_text>(
        &[raw_strings("abcd", &[0, 3, 1, 4])],
        3,
    ));
    assert_eq!(
        message,
        "`size_of_text`: parameter `s` has offsets that decrease at row 1, from 3 to 1"
    );
}

#[test]
fn offsets_beyond_data_are_invalid() {
    let message = invalid(testing::call_rows::<size_of_text>(
        &[raw_strings("ab", &[0, 9, 2])],
        2,
    ));
    assert_eq!(
        message,
        "`size_of_text`: parameter `s` has offsets that decrease at row 1, from 9 to 2"
    );
}

#[test]
fn offsets_must_fall_on_char_boundaries() {
    let message = invalid(testing::call_rows::<size_of_text>(
        &[raw_strings("é", &[0, 1, 2])],
        2,
    ));
    assert_eq!(
        message,
        "`size_of_text`: parameter `s` has offset 1, which is inside a UTF-8 character"
    );
}

#[test]
fn empty_offsets_are_invalid() {
    let message = invalid(testing::call_rows::<count>(&[raw_strings("", &[])], 0));
    assert_eq!(
        message,
        "`count`: parameter `s` has 0 offsets, but 0 rows need 1"
    );
}

#[test]
fn bytes_offsets_are_checked() {
    let input = Column {
        values: Values::Bytes(BytesColumn {
            data: vec![1, 2],
            offsets: vec![0, 3],
        }),
        nulls: Vec::new(),
    };
    let message = invalid(testing::call_rows::<size>(&[input], 1));
    assert_eq!(
        message,
        "`size`: parameter `b` has last offset 3, but its data is 2 bytes long"
    );
}

#[test]
fn vector_dimension_is_checked() {
    let message = invalid(testing::call::<first>(&[Column::vectors(
        3,
        [[1.0, 2.0, 3.0]],
    )]));
    assert_eq!(
        message,
        "`first`: parameter `v` has dimension 3, but the function declares 2"
    );
}

#[test]
fn vector_data_length_is_checked() {
    let input = Column {
        values: Values::Vector(VectorColumn {
            dimension: 2,
            data: vec![1.0, 2.0, 3.0],
        }),
        nulls: Vec::new(),
    };
    let message = invalid(testing::call_rows::<first>(&[input], 2));
    assert_eq!(
        message,
        "`first`: parameter `v` has 3 values, but 2 rows of dimension 2 need 4"
    );
}

#[test]
fn valid_input_passes_checks() {
    let result =
        testing::call::<concat>(&[Column::strings(["é", ""]), Column::strings(["x", "日"])])
            .unwrap();
    assert_eq!(result.column.len(), 2);
    let result = testing::call_rows::<count>(&[raw_strings("", &[0])], 0).unwrap();
    assert!(result.column.is_empty());
}
