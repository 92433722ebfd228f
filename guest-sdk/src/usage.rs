//! Usage reports to the host's resource pools, over the
//! `sandtable:udf/usage` import.
//!
//! The host counts the tokens of a provider's responses itself, from the
//! `usage` field of each JSON response that it relays. It charges the call's
//! pool the larger of its own count and the sum of the call's reports, so a
//! report can raise a call's charge but never lower it. A plugin that never
//! calls [`report_tokens`] does not import `sandtable:udf/usage`, because the
//! component keeps only the imports that its code calls.
//!
//! ```
//! use sandtable_guest::usage;
//!
//! // After a response whose `usage.total_tokens` is 57:
//! usage::report_tokens(57);
//! ```
//!
//! Compiled natively, as in tests, reports add up in a counter of the current
//! thread, which [`testing::take_reported_tokens`](crate::testing::take_reported_tokens)
//! reads.

/// Reports that the current call used `tokens` tokens at a provider.
///
/// Reports within one call add up. Reporting 0 tokens changes nothing.
pub fn report_tokens(tokens: u64) {
    #[cfg(target_arch = "wasm32")]
    crate::__private::bindings::sandtable::udf::usage::report_tokens(tokens);
    #[cfg(not(target_arch = "wasm32"))]
    native::REPORTED_TOKENS.with(|reported| reported.set(reported.get().saturating_add(tokens)));
}

/// The native stand-in for the host's count of reported tokens.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod native {
    use std::cell::Cell;

    thread_local! {
        /// The tokens reported on this thread since the last
        /// `take_reported_tokens`.
        pub(crate) static REPORTED_TOKENS: Cell<u64> = const { Cell::new(0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::take_reported_tokens;

    #[test]
    fn reports_add_up_until_taken() {
        take_reported_tokens();
        report_tokens(5);
        report_tokens(0);
        report_tokens(7);
        assert_eq!(take_reported_tokens(), 12);
        assert_eq!(take_reported_tokens(), 0);
    }
}
