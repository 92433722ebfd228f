//! A plugin whose linear memory starts at 2 GiB (see `build.rs`), so that the
//! host must reject it or fail its instantiation cleanly.

use sandtable_guest::udf;

/// Returns `x`.
#[udf]
fn echo(x: i64) -> i64 {
    x
}

sandtable_guest::plugin!(functions = [echo]);
