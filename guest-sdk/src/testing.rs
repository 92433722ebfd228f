//! Calling functions natively, the way the host calls them, for tests and
//! documentation examples.
//!
//! ```
//! use sandtable_guest::types::Column;
//! use sandtable_guest::{Value, testing, udf};
//!
//! /// Divides `a` by `b`.
//! #[udf]
//! fn div(a: i64, b: i64) -> Result<i64, String> {
//!     a.checked_div(b).ok_or_else(|| format!("cannot divide {a} by {b}"))
//! }
//!
//! let result = testing::call::<div>(&[Column::ints([6, 1]), Column::ints([3, 0])]).unwrap();
//! assert_eq!(result.column.value(0), Some(Value::Int(2)));
//! assert_eq!(result.column.value(1), None);
//! assert_eq!(result.errors[0].row, 1);
//! assert_eq!(result.errors[0].message, "cannot divide 1 by 0");
//! ```

use crate::types::{BatchResult, CallError, Column, Description, Function};
use crate::{Plugin, Udf};

/// Calls `F` on `args`, with as many rows as the first column has.
///
/// # Errors
///
/// Returns the `call-error` that the function returns to the host.
///
/// # Panics
///
/// Panics when `args` is empty: call [`call_rows`] for a function without
/// parameters.
pub fn call<F: Udf>(args: &[Column]) -> Result<BatchResult, CallError> {
    let first = args.first().unwrap_or_else(|| {
        panic!(
            "`{}` has no arguments to count rows from; use `call_rows`",
            F::NAME
        )
    });
    let rows = u32::try_from(first.len()).expect("fewer than 2^32 rows");
    F::call(args, rows)
}

/// Calls `F` on `args` for a batch of `rows` rows.
///
/// # Errors
///
/// Returns the `call-error` that the function returns to the host.
pub fn call_rows<F: Udf>(args: &[Column], rows: u32) -> Result<BatchResult, CallError> {
    F::call(args, rows)
}

/// Returns the description of `F` that the plugin's `describe` export
/// contains.
pub fn describe<F: Udf>() -> Function {
    F::describe()
}

/// Returns the description that the plugin's `describe` export returns.
pub fn describe_plugin<P: Plugin>() -> Description {
    P::describe()
}

/// Calls function `function` of the plugin the way the `call` export does.
///
/// # Errors
///
/// Returns the `call-error` that the export returns, including
/// `unknown-function` for a name that the plugin does not export.
pub fn call_plugin<P: Plugin>(
    function: &str,
    args: &[Column],
    rows: u32,
) -> Result<BatchResult, CallError> {
    P::call(function, args, rows)
}

/// Runs the plugin's `init` function, when it has one.
///
/// # Errors
///
/// Returns the message of the `init` function's error.
pub fn init_plugin<P: Plugin>() -> Result<(), String> {
    P::init()
}

/// Returns the tokens that [`usage::report_tokens`](crate::usage::report_tokens)
/// reported on this thread since the last call, and resets the count to 0.
///
/// Only native builds have it, since in a component the reports go to the
/// host.
#[cfg(not(target_arch = "wasm32"))]
pub fn take_reported_tokens() -> u64 {
    crate::usage::native::REPORTED_TOKENS.with(|reported| reported.replace(0))
}
