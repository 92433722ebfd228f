//! JSON forms of catalog and sandbox values for `--json` output, with types
//! written as the CLI writes them (`int`, `vector(8)`).

use serde_json::{Value, json};

use crate::catalog::PluginEntry;
use crate::sandbox::{Description, Function};

/// Converts a description to JSON.
pub(crate) fn description(description: &Description) -> Value {
    let capabilities = &description.capabilities;
    json!({
        "name": description.name,
        "version": description.version,
        "functions": description.functions.iter().map(function).collect::<Vec<_>>(),
        "capabilities": {
            "directories": capabilities.directories,
            "outbound_hosts": capabilities.outbound_hosts,
            "warm_instance": capabilities.warm_instance,
        },
    })
}

fn function(function: &Function) -> Value {
    let limits = &function.limits;
    json!({
        "name": function.name,
        "doc": function.doc,
        "params": function
            .params
            .iter()
            .map(|param| json!({ "name": param.name, "type": param.type_.to_string() }))
            .collect::<Vec<_>>(),
        "returns": function.returns.to_string(),
        "takes_nulls": function.takes_nulls,
        "batch_size": function.batch_size,
        "pool": function.pool,
        "requested_limits": {
            "fuel_per_row": limits.fuel_per_row,
            "memory_bytes": limits.memory_bytes,
            "deadline_ms": limits.deadline_ms,
            "output_bytes": limits.output_bytes,
        },
    })
}

/// Converts a catalog entry to JSON.
pub(crate) fn entry(entry: &PluginEntry) -> Value {
    json!({
        "name": entry.name,
        "version": entry.version,
        "sha256": entry.sha256,
        "size_bytes": entry.size_bytes,
        "plugin_version": entry.plugin_version,
        "added_at": entry.added_at,
        "description": description(&entry.description),
    })
}
