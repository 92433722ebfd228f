//! Batch functions: one call a batch, over borrowed views of the columns.

use sandtable_guest::types::{CallError, Column, DataType, Values};
use sandtable_guest::{JsonView, Nullable, StrView, Value, VectorView, testing, udf};

/// Adds two columns.
#[udf(batch)]
fn add(a: &[i64], b: &[i64]) -> Vec<i64> {
    a.iter().zip(b).map(|(a, b)| a.wrapping_add(*b)).collect()
}

#[udf(batch)]
fn lengths(s: StrView<'_>) -> Vec<i64> {
    s.iter().map(|text| text.len() as i64).collect()
}

#[udf(batch)]
fn shout(s: StrView<'_>) -> Vec<String> {
    (0..s.len())
        .map(|row| format!("{}!", s.get(row).unwrap()))
        .collect()
}

#[udf(batch)]
fn null_flags(x: Nullable<'_, &[i64]>) -> Vec<bool> {
    x.iter().map(|value| value.is_none()).collect()
}

#[udf(batch)]
fn checked(a: &[i64]) -> Result<Vec<i64>, String> {
    if a.contains(&0) {
        return Err("zero in batch".to_owned());
    }
    Ok(a.to_vec())
}

#[udf(batch)]
fn per_row_errors(a: &[i64]) -> Vec<Result<i64, String>> {
    a.iter()
        .map(|&x| {
            if x < 0 {
                Err(format!("{x} is negative"))
            } else {
                Ok(x)
            }
        })
        .collect()
}

#[udf(batch)]
fn too_short(a: &[i64]) -> Vec<i64> {
    a[1..].to_vec()
}

#[udf(batch)]
fn upper_all(s: StrView<'_>) -> Vec<String> {
    s.iter().map(str::to_uppercase).collect()
}

#[udf(batch)]
fn sums(#[dimension(2)] v: VectorView<'_>) -> Vec<f64> {
    v.iter()
        .map(|row| row.iter().map(|x| f64::from(*x)).sum())
        .collect()
}

#[udf(batch)]
fn firsts(v: &[[f32; 3]]) -> Vec<[f32; 1]> {
    v.iter().map(|row| [row[0]]).collect()
}

#[udf(batch)]
fn doc_lengths(docs: JsonView<'_>) -> Vec<i64> {
    docs.iter().map(|doc| doc.len() as i64).collect()
}

#[test]
fn add_over_slices() {
    let result =
        testing::call::<add>(&[Column::ints([1, 2, i64::MAX]), Column::ints([10, 20, 1])]).unwrap();
    assert_eq!(result.column.values, Values::Int(vec![11, 22, i64::MIN]));
    assert!(result.column.nulls.is_empty());
    assert!(result.errors.is_empty());
    assert_eq!(testing::describe::<add>().doc, "Adds two columns.");
}

#[test]
fn string_view_iterates_and_indexes() {
    let input = Column::strings(["ab", "", "日本"]);
    let result = testing::call::<lengths>(std::slice::from_ref(&input)).unwrap();
    assert_eq!(result.column.values, Values::Int(vec![2, 0, 6]));
    let result = testing::call::<shout>(&[input]).unwrap();
    assert_eq!(
        result.column.to_values(),
        [
            Some(Value::String("ab!")),
            Some(Value::String("!")),
            Some(Value::String("日本!"))
        ]
    );
}

#[test]
fn nullable_parameter_sees_mask() {
    let input = Column::ints([1, 0, 3]).with_nulls([false, true, false]);
    let result = testing::call::<null_flags>(&[input]).unwrap();
    assert_eq!(result.column.values, Values::Bool(vec![false, true, false]));
    assert!(result.column.nulls.is_empty());
    assert!(testing::describe::<null_flags>().takes_nulls);
    assert!(!testing::describe::<add>().takes_nulls);
}

#[test]
fn strict_batch_masks_null_rows() {
    let a = Column::ints([1, 99, 3]).with_nulls([false, true, false]);
    let result = testing::call::<add>(&[a, Column::ints([1, 1, 1])]).unwrap();
    assert_eq!(result.column.nulls, [false, true, false]);
    assert_eq!(
        result.column.values,
        Values::Int(vec![2, 0, 4]),
        "a null row holds the placeholder"
    );
}

#[test]
fn strict_batch_clears_null_strings() {
    let input = Column::strings(["a", "bb", "c"]).with_nulls([false, true, false]);
    let result = testing::call::<upper_all>(&[input]).unwrap();
    let Values::String(column) = &result.column.values else {
        panic!("expected a string column");
    };
    assert_eq!(column.data, "AC");
    assert_eq!(column.offsets, [0, 1, 1, 2]);
    assert_eq!(result.column.nulls, [false, true, false]);
}

#[test]
fn batch_error_fails_call() {
    let error = testing::call::<checked>(&[Column::ints([1, 0])]).unwrap_err();
    assert_eq!(
        error,
        CallError::Failed("`checked` failed: zero in batch".to_owned())
    );
    let result = testing::call::<checked>(&[Column::ints([1, 2])]).unwrap();
    assert_eq!(result.column.values, Values::Int(vec![1, 2]));
}

#[test]
fn batch_row_results_become_row_errors() {
    let result = testing::call::<per_row_errors>(&[Column::ints([1, -2, 3])]).unwrap();
    assert_eq!(
        result.column.to_values(),
        [Some(Value::Int(1)), None, Some(Value::Int(3))]
    );
    assert_eq!(result.errors.len(), 1);
    assert_eq!(result.errors[0].row, 1);
    assert_eq!(result.errors[0].message, "-2 is negative");
}

#[test]
fn short_batch_result_fails_call() {
    let error = testing::call::<too_short>(&[Column::ints([1, 2, 3])]).unwrap_err();
    assert_eq!(
        error,
        CallError::Failed("`too_short` returned 2 values for a batch of 3 rows".to_owned())
    );
}

#[test]
fn vector_views_read_rows() {
    let result = testing::call::<sums>(&[Column::vectors(2, [[1.0, 2.0], [3.0, 4.0]])]).unwrap();
    assert_eq!(result.column.values, Values::Float(vec![3.0, 7.0]));
    assert_eq!(
        testing::describe::<sums>().params[0].type_,
        DataType::Vector(2)
    );

    let result =
        testing::call::<firsts>(&[Column::vectors(3, [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])]).unwrap();
    assert_eq!(
        result.column.to_values(),
        [Some(Value::Vector(&[1.0])), Some(Value::Vector(&[4.0]))]
    );
    let description = testing::describe::<firsts>();
    assert_eq!(description.params[0].type_, DataType::Vector(3));
    assert_eq!(description.returns, DataType::Vector(1));
}

#[test]
fn json_view_reads_documents() {
    let result = testing::call::<doc_lengths>(&[Column::json(["{}", "[1,2]"])]).unwrap();
    assert_eq!(result.column.values, Values::Int(vec![2, 5]));
}
