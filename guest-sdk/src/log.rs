//! Structured logging to the host, over the `sandtable:udf/log` import.
//!
//! The host escapes control characters, caps the length of messages and
//! fields, and rate-limits each call's records. Compiled natively, as in
//! tests, records go to standard error instead.
//!
//! ```
//! use sandtable_guest::log;
//!
//! let path = "/model/weights.bin";
//! log::info!("loading weights");
//! log::warn!(path = path, bytes = 0; "weights file is empty");
//! ```

pub use crate::__private::bindings::sandtable::udf::log::Level;

/// Writes one record with key-value fields.
pub fn write(level: Level, message: &str, fields: &[(&str, &str)]) {
    #[cfg(target_arch = "wasm32")]
    {
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|&(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
        crate::__private::bindings::sandtable::udf::log::log(level, message, &fields);
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::fmt::Write as _;

        let mut line = format!("{} {message}", level_name(level));
        for (key, value) in fields {
            let _ = write!(line, " {key}={value:?}");
        }
        eprintln!("{line}");
    }
}

/// Returns the lowercase name of `level`.
#[cfg(not(target_arch = "wasm32"))]
fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log {
    ($level:expr, $($key:ident = $value:expr),+ ; $($message:tt)+) => {
        $crate::log::write(
            $level,
            &::std::format!($($message)+),
            &[$((::core::stringify!($key), &::std::string::ToString::to_string(&$value))),+],
        )
    };
    ($level:expr, $($message:tt)+) => {
        $crate::log::write($level, &::std::format!($($message)+), &[])
    };
}

/// Writes a record at level `trace`: `trace!("format", args...)`, or
/// `trace!(key = value, ...; "format", args...)` with fields whose values
/// implement `Display`.
#[macro_export]
#[doc(hidden)]
macro_rules! __log_trace {
    ($($arg:tt)+) => { $crate::__log!($crate::log::Level::Trace, $($arg)+) };
}

/// Writes a record at level `debug`, with the syntax of [`trace!`].
#[macro_export]
#[doc(hidden)]
macro_rules! __log_debug {
    ($($arg:tt)+) => { $crate::__log!($crate::log::Level::Debug, $($arg)+) };
}

/// Writes a record at level `info`, with the syntax of [`trace!`].
#[macro_export]
#[doc(hidden)]
macro_rules! __log_info {
    ($($arg:tt)+) => { $crate::__log!($crate::log::Level::Info, $($arg)+) };
}

/// Writes a record at level `warn`, with the syntax of [`trace!`].
#[macro_export]
#[doc(hidden)]
macro_rules! __log_warn {
    ($($arg:tt)+) => { $crate::__log!($crate::log::Level::Warn, $($arg)+) };
}

/// Writes a record at level `error`, with the syntax of [`trace!`].
#[macro_export]
#[doc(hidden)]
macro_rules! __log_error {
    ($($arg:tt)+) => { $crate::__log!($crate::log::Level::Error, $($arg)+) };
}

#[doc(inline)]
pub use crate::__log_debug as debug;
#[doc(inline)]
pub use crate::__log_error as error;
#[doc(inline)]
pub use crate::__log_info as info;
#[doc(inline)]
pub use crate::__log_trace as trace;
#[doc(inline)]
pub use crate::__log_warn as warn;
