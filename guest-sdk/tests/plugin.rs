//! The `plugin!` macro: the plugin's description, dispatch by name, `init`
//! and raw functions.

use std::sync::atomic::{AtomicU32, Ordering};

use sandtable_guest::types::{BatchResult, CallError, Column, DataType, Values};
use sandtable_guest::{Value, testing, udf};

/// Doubles a number.
#[udf]
fn double(x: i64) -> i64 {
    x * 2
}

/// Returns one row fewer than the batch.
#[udf(raw, params(x: int, v: vector(8)), returns = string, takes_nulls)]
fn drop_last(args: &[Column], rows: u32) -> Result<BatchResult, CallError> {
    let count = rows.saturating_sub(1) as usize;
    let _ = args;
    Ok(BatchResult {
        column: Column::strings(vec!["x"; count]),
        errors: Vec::new(),
    })
}

static INIT_RUNS: AtomicU32 = AtomicU32::new(0);

fn load() -> Result<(), String> {
    if INIT_RUNS.fetch_add(1, Ordering::SeqCst) > 0 {
        return Err("already initialized".to_owned());
    }
    Ok(())
}

sandtable_guest::plugin!(
    functions = [double, drop_last],
    init = load,
    directories = ["/model", "/data"],
    outbound_hosts = ["127.0.0.1:8080"],
    warm_instance = true,
);

#[test]
fn description_lists_functions() {
    let description = testing::describe_plugin::<SandtablePlugin>();
    assert_eq!(description.name, "sandtable-guest");
    assert_eq!(description.version, env!("CARGO_PKG_VERSION"));
    let names: Vec<&str> = description
        .functions
        .iter()
        .map(|function| function.name.as_str())
        .collect();
    assert_eq!(names, ["double", "drop_last"]);
    assert_eq!(description.capabilities.directories, ["/model", "/data"]);
    assert_eq!(description.capabilities.outbound_hosts, ["127.0.0.1:8080"]);
    assert!(description.capabilities.warm_instance);
}

#[test]
fn raw_function_declares_signature() {
    let description = testing::describe::<drop_last>();
    assert_eq!(description.doc, "Returns one row fewer than the batch.");
    assert_eq!(description.params.len(), 2);
    assert_eq!(description.params[0].name, "x");
    assert_eq!(description.params[0].type_, DataType::Int);
    assert_eq!(description.params[1].type_, DataType::Vector(8));
    assert_eq!(description.returns, DataType::String);
    assert!(description.takes_nulls);
}

#[test]
fn raw_function_bypasses_checks() {
    let result = testing::call_plugin::<SandtablePlugin>("drop_last", &[], 3).unwrap();
    assert_eq!(result.column.len(), 2);
}

#[test]
fn call_dispatches_by_name() {
    let result =
        testing::call_plugin::<SandtablePlugin>("double", &[Column::ints([4])], 1).unwrap();
    assert_eq!(result.column.values, Values::Int(vec![8]));
    assert_eq!(result.column.value(0), Some(Value::Int(8)));
}

#[test]
fn unknown_function_returns_its_name() {
    let error =
        testing::call_plugin::<SandtablePlugin>("triple", &[Column::ints([4])], 1).unwrap_err();
    assert_eq!(error, CallError::UnknownFunction("triple".to_owned()));
}

#[test]
fn init_runs_given_function() {
    assert_eq!(testing::init_plugin::<SandtablePlugin>(), Ok(()));
    assert_eq!(
        testing::init_plugin::<SandtablePlugin>(),
        Err("already initialized".to_owned())
    );
}

#[test]
fn log_writes_natively() {
    sandtable_guest::log::info!("plain {}", 1);
    sandtable_guest::log::error!(row = 3, path = "/x"; "with fields {}", "ok");
    sandtable_guest::log::write(sandtable_guest::log::Level::Debug, "direct", &[("k", "v")]);
}
