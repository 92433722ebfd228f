//! Integer arithmetic, including the batch function that benchmarks compare
//! with native Rust.

use sandtable_guest::udf;

/// Adds two integers, wrapping on overflow.
#[udf(batch)]
fn add(a: &[i64], b: &[i64]) -> Vec<i64> {
    a.iter().zip(b).map(|(a, b)| a.wrapping_add(*b)).collect()
}

/// Returns whether `x` is null.
#[udf]
fn is_null(x: Option<i64>) -> bool {
    x.is_none()
}

/// Divides `a` by `b`, rounding toward zero.
///
/// Division by zero, and `i64::MIN / -1`, which overflows, are row errors.
#[udf]
fn div(a: i64, b: i64) -> Result<i64, String> {
    if b == 0 {
        return Err(format!("division by zero: {a} / 0"));
    }
    a.checked_div(b)
        .ok_or_else(|| format!("integer overflow: {a} / {b}"))
}

/// Hashes `x` through `rounds` rounds of the SplitMix64 finalizer, each
/// round depending on the last, so that the cost grows linearly with
/// `rounds`. Benchmarks use it as a CPU-heavy function.
///
/// A negative `rounds` is a row error.
#[udf]
fn mix(x: i64, rounds: i64) -> Result<i64, String> {
    if rounds < 0 {
        return Err(format!("invalid rounds {rounds}: give 0 or more"));
    }
    let mut z = x as u64;
    for _ in 0..rounds {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
    }
    Ok(z as i64)
}

sandtable_guest::plugin!(functions = [add, is_null, div, mix]);

#[cfg(test)]
mod tests {
    use sandtable_guest::types::{Column, Values};
    use sandtable_guest::{Value, testing};

    use super::*;

    #[test]
    fn add_sums_columns() {
        let result =
            testing::call::<add>(&[Column::ints([1, -2, i64::MAX]), Column::ints([2, 2, 1])])
                .unwrap();
        assert_eq!(result.column.values, Values::Int(vec![3, 0, i64::MIN]));
    }

    #[test]
    fn is_null_sees_null_rows() {
        let input = Column::ints([5, 0]).with_nulls([false, true]);
        let result = testing::call::<is_null>(&[input]).unwrap();
        assert_eq!(result.column.values, Values::Bool(vec![false, true]));
        assert!(testing::describe::<is_null>().takes_nulls);
    }

    #[test]
    fn mix_hashes_and_rejects_negative_rounds() {
        let result =
            testing::call::<mix>(&[Column::ints([7, 7, 7]), Column::ints([0, 1, -1])]).unwrap();
        let values = result.column.to_values();
        assert_eq!(values[0], Some(Value::Int(7)));
        assert_ne!(values[1], Some(Value::Int(7)));
        assert_eq!(values[2], None);
        assert_eq!(result.errors.len(), 1);
        assert_eq!(
            result.errors[0].message,
            "invalid rounds -1: give 0 or more"
        );
    }

    #[test]
    fn div_reports_zero_and_overflow() {
        let result =
            testing::call::<div>(&[Column::ints([7, 1, i64::MIN]), Column::ints([2, 0, -1])])
                .unwrap();
        assert_eq!(result.column.to_values(), [Some(Value::Int(3)), None, None]);
        let errors: Vec<(u32, &str)> = result
            .errors
            .iter()
            .map(|error| (error.row, error.message.as_str()))
            .collect();
        assert_eq!(
            errors,
            [
                (1, "division by zero: 1 / 0"),
                (2, "integer overflow: -9223372036854775808 / -1")
            ]
        );
    }
}
