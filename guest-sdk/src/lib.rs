//! Write Sandtable UDF plugins in Rust.
//!
//! A plugin is a WebAssembly component of the `sandtable:udf@0.1.0` world
//! `plugin` (or `stateful-plugin`, when it has an `init` function). This crate
//! generates that component's exports from plain Rust functions: mark each
//! function with [`#[udf]`](udf) and list them in [`plugin!`]. The generated
//! `describe` export reports every function's parameters and result, and the
//! generated `call` export decodes the argument columns, runs the function
//! once a row (or once a batch, for `#[udf(batch)]`) and encodes the result
//! column.
//!
//! ```
//! use sandtable_guest::types::Column;
//! use sandtable_guest::{Value, testing, udf};
//!
//! /// Upper-cases text.
//! #[udf]
//! fn upper(s: &str) -> String {
//!     s.to_uppercase()
//! }
//!
//! sandtable_guest::plugin!(functions = [upper]);
//!
//! // Natively, `testing` calls a function the way the host calls it.
//! let result = testing::call::<upper>(&[Column::strings(["a", "straße"])]).unwrap();
//! assert_eq!(
//!     result.column.to_values(),
//!     [Some(Value::String("A")), Some(Value::String("STRASSE"))],
//! );
//! ```
//!
//! Build the component with `cargo build --release --target wasm32-wasip2`
//! (after `rustup target add wasm32-wasip2`), from a crate whose
//! `[lib] crate-type` is `["cdylib"]`.
//!
//! # Types
//!
//! | WIT type      | scalar parameter      | batch parameter          | result                                  |
//! |---------------|-----------------------|--------------------------|-----------------------------------------|
//! | `bool`        | `bool`                | `&[bool]`                | `bool`                                  |
//! | `int`         | `i64`                 | `&[i64]`                 | `i64`                                   |
//! | `float`       | `f64`                 | `&[f64]`                 | `f64`                                   |
//! | `string`      | `&str`                | [`StrView`]              | `String`, `&str`, `Box<str>`, `Cow<str>` |
//! | `bytes`       | `&[u8]`               | [`BytesView`]            | `Vec<u8>`, `&[u8]`, `Box<[u8]>`         |
//! | `json`        | [`Json`]              | [`JsonView`]             | [`JsonString`], [`Json`], `serde_json::Value` (feature `serde_json`) |
//! | `timestamp`   | [`Timestamp`]         | `&[Timestamp]`           | [`Timestamp`]                           |
//! | `vector(N)`   | `&[f32; N]`, `&[f32]` | `&[[f32; N]]`, [`VectorView`] | `[f32; N]`, `Vec<f32>`, `&[f32]`, `Box<[f32]>` |
//!
//! A `&[f32]` parameter declares its dimension with `#[dimension(N)]`, a
//! [`VectorView`] parameter too, and a `Vec<f32>`, `&[f32]` or `Box<[f32]>`
//! result with `#[udf(dimension = N)]`.
//!
//! # Nulls and errors
//!
//! A function whose parameters are all plain types is strict: the host gives
//! a null result for a row with a null argument without calling the guest.
//! Should a null reach it anyway, the SDK returns null for that row without
//! calling the function. An `Option<T>` parameter makes the function take
//! nulls (`takes-nulls` in its description); in a batch function, a
//! [`Nullable`] parameter does.
//!
//! A scalar function returning `Option<T>` gives null for `None`. One
//! returning `Result<T, E>` with `E: Display` reports each `Err` as that
//! row's `row-error`, and `Result<Option<T>, E>` combines both. A batch
//! function returns `Vec<T>` for any such `T`, or `Result<Vec<T>, E>`, whose
//! `Err` fails the whole call.
//!
//! Malformed input from the host (a missing argument, a column of the wrong
//! type or length, decreasing string offsets) fails the call with
//! `call-error::invalid-arguments`, naming the function and the parameter.
//!
//! # Attributes
//!
//! `#[udf(...)]` takes, all optional:
//!
//! - `name = "..."`: the name in `call` and SQL (default: the Rust name);
//! - `doc = "..."`: the summary (default: the first paragraph of the doc
//!   comment, on one line);
//! - `batch`: the function takes whole columns and returns one value a row;
//! - `batch_size = N` (default [`DEFAULT_BATCH_SIZE`]), `pool = "..."`;
//! - `fuel_per_row`, `memory_bytes`, `deadline_ms`, `output_bytes`: the
//!   limits the function requests;
//! - `dimension = N`: the dimension of a vector result;
//! - `takes_nulls`: declares that a batch or raw function takes nulls;
//! - `raw, params(x: int, ...), returns = TYPE`: the function has the
//!   signature `fn(&[Column], u32) -> Result<BatchResult, CallError>` and gets
//!   the columns as the host sent them, with no checks.
//!
//! [`plugin!`] takes `functions = [...]` and, optionally, `name`, `version`
//! (default: the crate's `CARGO_PKG_NAME` and `CARGO_PKG_VERSION`), `init`,
//! `directories`, `outbound_hosts` and `warm_instance`.
//!
//! # Host services
//!
//! - [`log`] writes structured records to the host's log.
//! - [`usage::report_tokens`] reports the tokens a call used at a provider to
//!   the host's resource pools.
//! - `http` (feature `http`) sends HTTP requests through
//!   `wasi:http/outgoing-handler`, to the hosts that the operator grants.

extern crate self as sandtable_guest;

mod arg;
mod column;
#[cfg(feature = "http")]
pub mod http;
pub mod log;
mod output;
pub mod testing;
pub mod usage;
mod value;
mod view;

#[doc(hidden)]
pub mod __private;

pub use arg::{Arg, BatchArg};
pub use output::{BatchOutput, InitResult, Output};
pub use value::{Json, JsonString, Timestamp, Value};
pub use view::{BytesView, JsonView, Nullable, StrView, VectorView};

/// Marks a function as a UDF of the plugin.
///
/// See the [crate documentation](crate#attributes) for its options.
pub use sandtable_guest_macros::udf;

/// Generates the plugin's exports from the functions marked with `#[udf]`.
///
/// ```
/// use sandtable_guest::udf;
///
/// /// Doubles a number.
/// #[udf]
/// fn double(x: i64) -> i64 {
///     x * 2
/// }
///
/// fn load() -> Result<(), String> {
///     Ok(())
/// }
///
/// sandtable_guest::plugin!(
///     name = "numbers",
///     version = "1.0.0",
///     functions = [double],
///     init = load,
///     directories = ["/model"],
///     outbound_hosts = [],
///     warm_instance = true,
/// );
/// ```
///
/// With `init`, the component also exports `sandtable:udf/lifecycle`, whose
/// `init` calls the given function once for each instance. The function
/// returns `()` or `Result<(), E>` with `E: Display`.
///
/// The macro defines a type `SandtablePlugin` that implements [`Plugin`], for
/// [`testing::describe_plugin`] and [`testing::call_plugin`]. Invoke it once a
/// crate: a second invocation exports the same symbols again, which fails to
/// link for `wasm32-wasip2`.
pub use sandtable_guest_macros::plugin;

/// The number of rows a function prefers in one call when its attribute sets
/// no `batch_size`.
pub const DEFAULT_BATCH_SIZE: u32 = 1024;

/// The records and variants of the `sandtable:udf/types@0.1.0` interface.
pub mod types {
    pub use crate::__private::bindings::sandtable::udf::types::*;
}

/// A function that a plugin exports, as `#[udf]` generates it.
///
/// `#[udf]` implements this trait for a type with the function's name, so
/// `upper` names both the function and its `Udf`, as in
/// `testing::call::<upper>(...)`.
pub trait Udf {
    /// The name used in `call` and in expressions.
    const NAME: &'static str;

    /// Describes the function for the `describe` export.
    fn describe() -> types::Function;

    /// Computes the function over one batch of `rows` rows.
    ///
    /// # Errors
    ///
    /// Returns `call-error::invalid-arguments` when `args` does not match the
    /// parameters, and `call-error::failed` when the function fails for the
    /// whole batch.
    fn call(args: &[types::Column], rows: u32) -> Result<types::BatchResult, types::CallError>;
}

/// A plugin, as [`plugin!`] generates it in a type named `SandtablePlugin`.
pub trait Plugin {
    /// Describes the plugin for the `describe` export.
    fn describe() -> types::Description;

    /// Calls function `function` over one batch of `rows` rows.
    ///
    /// # Errors
    ///
    /// Returns `call-error::unknown-function` with the name when the plugin
    /// has no function `function`, and otherwise the function's error.
    fn call(
        function: &str,
        args: &[types::Column],
        rows: u32,
    ) -> Result<types::BatchResult, types::CallError>;

    /// Runs the plugin's `init` function, when it has one.
    ///
    /// # Errors
    ///
    /// Returns the message of the `init` function's error.
    fn init() -> Result<(), String> {
        Ok(())
    }
}
