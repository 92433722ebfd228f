//! One batch through a function of a catalog plugin, as `plugin call` and
//! `POST /v1/plugins/{plugin}/call` run it: the arguments checked against
//! the function's parameters, and a report of each row's value or error
//! with the timing records.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::PluginEntry;
use crate::sandbox::{
    BatchOutput, CallContext, CallError, CallRecord, Column, Function, LoadedPlugin, UdfEngine,
};

/// Returns a function's signature as `plugin show` prints it, such as
/// `upper(s: string) -> string`.
pub fn signature(function: &Function) -> String {
    let params: Vec<String> = function
        .params
        .iter()
        .map(|param| format!("{}: {}", param.name, param.type_))
        .collect();
    format!(
        "{}({}) -> {}",
        function.name,
        params.join(", "),
        function.returns
    )
}

/// Finds function `name` of the version `entry`.
///
/// # Errors
///
/// Returns a message naming the version and listing its functions when it
/// has no such function.
pub fn find_function<'a>(entry: &'a PluginEntry, name: &str) -> Result<&'a Function, String> {
    let functions = &entry.description.functions;
    functions
        .iter()
        .find(|function| function.name == name)
        .ok_or_else(|| {
            format!(
                "plugin `{}` has no function `{name}`; it has {}",
                entry.reference(),
                functions
                    .iter()
                    .map(signature)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// Turns one row of input into the function's arguments in parameter order.
/// A row is an array of arguments, an object keyed by parameter name, or,
/// for a function of one parameter, the argument itself.
///
/// # Errors
///
/// Returns a message that completes "ROW ...", such as "has 3 arguments;
/// ...", for a row of another shape or length, or with a key that is no
/// parameter.
pub fn row_arguments(function: &Function, row: Value) -> Result<Vec<Value>, String> {
    let arguments = match row {
        Value::Array(items) => items,
        Value::Object(mut object) => {
            let arguments: Vec<Value> = function
                .params
                .iter()
                .map(|param| object.remove(&param.name).unwrap_or(Value::Null))
                .collect();
            if let Some(unknown) = object.keys().next() {
                return Err(format!(
                    "has key `{unknown}`, which is not a parameter of `{}`",
                    signature(function)
                ));
            }
            arguments
        }
        other if function.params.len() == 1 => vec![other],
        _ => {
            return Err(format!(
                "must be an array of {} arguments or an object keyed by parameter name",
                function.params.len()
            ));
        }
    };
    if arguments.len() != function.params.len() {
        return Err(format!(
            "has {} arguments; `{}` takes {}",
            arguments.len(),
            signature(function),
            function.params.len()
        ));
    }
    Ok(arguments)
}

/// Builds one argument column a parameter from rows of arguments in
/// parameter order.
///
/// # Errors
///
/// Returns a message naming the parameter and the row whose value does not
/// fit its type.
pub fn argument_columns(function: &Function, rows: &[Vec<Value>]) -> Result<Vec<Column>, String> {
    function
        .params
        .iter()
        .enumerate()
        .map(|(index, param)| {
            let values: Vec<Value> = rows.iter().map(|row| row[index].clone()).collect();
            Column::from_json(&param.type_, &values)
                .map_err(|error| format!("argument `{}: {}`: {error}", param.name, param.type_))
        })
        .collect()
}

/// Runs `rows` rows of `columns` through `function` as one batch, on a
/// thread for blocking work.
///
/// # Errors
///
/// Returns the engine's [`CallError`] when it rejects the call, such as
/// for arguments of the wrong type.
///
/// # Panics
///
/// Panics when the call panics.
pub async fn run_batch(
    engine: &UdfEngine,
    plugin: &LoadedPlugin,
    context: &CallContext,
    function: &str,
    columns: Vec<Column>,
    rows: usize,
) -> Result<BatchOutput, CallError> {
    let engine = engine.clone();
    let plugin = plugin.clone();
    let context = context.clone();
    let name = function.to_owned();
    tokio::task::spawn_blocking(move || engine.call(&plugin, &context, &name, &columns, rows))
        .await
        .expect("a plugin call does not panic")
}

/// The result of one batch: each row's value or error, and a timing record
/// for each guest call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CallReport {
    /// The version called, `NAME@VERSION`.
    pub plugin: String,
    /// The function called.
    pub function: String,
    /// One entry for each input row, in order.
    pub rows: Vec<CallRow>,
    /// One timing record for each guest call, re-runs that isolate faulting
    /// rows included. A strict function's rows with a null argument are
    /// never sent, so they have no record.
    #[schema(value_type = Vec<Object>)]
    pub records: Vec<CallRecord>,
}

/// One row of a [`CallReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CallRow {
    /// The row's position in the batch, from 0.
    pub row: usize,
    /// The value, as JSON; null for a failed row.
    #[schema(value_type = Object)]
    pub value: Value,
    /// The fault class of a failed row, such as `guest_error`.
    pub error_type: Option<String>,
    /// The message of a failed row.
    pub error: Option<String>,
}

impl CallReport {
    /// Builds the report of `output`, a batch of `function` of `entry`.
    pub fn new(entry: &PluginEntry, function: &str, output: &BatchOutput) -> Self {
        let rows = (0..output.column.len())
            .map(|row| {
                let error = output.errors.iter().find(|error| error.row == row);
                CallRow {
                    row,
                    value: output.column.json_at(row),
                    error_type: error.map(|e| e.class.as_str().to_owned()),
                    error: error.map(|e| e.message.clone()),
                }
            })
            .collect();
        CallReport {
            plugin: entry.reference(),
            function: function.to_owned(),
            rows,
            records: output.records.clone(),
        }
    }
}
