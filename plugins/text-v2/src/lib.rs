//! A second release of the text plugin's case functions, with a changed
//! `upper` that ends its result with `!`. Tests add it under the same
//! catalog name as `text` to pin, upgrade and revert computed columns.

use sandtable_guest::udf;

/// Converts text to upper case and appends `!`.
#[udf]
fn upper(s: &str) -> String {
    let mut shout = s.to_uppercase();
    shout.push('!');
    shout
}

/// Counts the characters (Unicode scalar values) of text.
#[udf]
fn length(s: &str) -> i64 {
    s.chars().count() as i64
}

sandtable_guest::plugin!(name = "text", version = "0.2.0", functions = [upper, length]);
