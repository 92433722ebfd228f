//! Counters that show whether the host reused an instance: a warm instance
//! keeps its statics across calls, and a fresh one starts from zero.

use std::sync::atomic::{AtomicI64, Ordering};

use sandtable_guest::{log, udf};

/// The number of times `init` ran in this instance.
static INIT_RUNS: AtomicI64 = AtomicI64::new(0);

/// The number of rows that this instance's functions served.
static ROWS_SERVED: AtomicI64 = AtomicI64::new(0);

fn init() {
    let runs = INIT_RUNS.fetch_add(1, Ordering::Relaxed) + 1;
    log::info!(runs = runs; "warm-counter initialized");
}

/// Returns `x` plus the number of rows this instance served before this row.
///
/// Rows of both `next` and `inits` count. Null rows do not, because the host
/// returns null for them without calling the guest.
#[udf]
fn next(x: i64) -> i64 {
    x.wrapping_add(ROWS_SERVED.fetch_add(1, Ordering::Relaxed))
}

/// Returns how many times `init` ran in this instance, whatever `x` is.
#[udf]
fn inits(_x: i64) -> i64 {
    ROWS_SERVED.fetch_add(1, Ordering::Relaxed);
    INIT_RUNS.load(Ordering::Relaxed)
}

sandtable_guest::plugin!(functions = [next, inits], init = init, warm_instance = true);

#[cfg(test)]
mod tests {
    use sandtable_guest::testing;
    use sandtable_guest::types::{Column, Values};

    use super::*;

    // One test, because the counters are statics of the test binary.
    #[test]
    fn counters_grow_across_calls() {
        assert_eq!(testing::init_plugin::<SandtablePlugin>(), Ok(()));

        let first = testing::call::<next>(&[Column::ints([0, 0, 10])]).unwrap();
        assert_eq!(first.column.values, Values::Int(vec![0, 1, 12]));

        let inits_result = testing::call::<inits>(&[Column::ints([7])]).unwrap();
        assert_eq!(inits_result.column.values, Values::Int(vec![1]));

        let second = testing::call::<next>(&[Column::ints([0])]).unwrap();
        assert_eq!(second.column.values, Values::Int(vec![4]));

        let description = testing::describe_plugin::<SandtablePlugin>();
        assert!(description.capabilities.warm_instance);
        assert_eq!(description.functions[1].params[0].name, "x");
    }
}
