//! Helpers for tests of tables: a database with plugins added, inserts from
//! JSON, and rows read back as JSON objects.

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use sandtable::catalog::{Catalog, DEFAULT_TENANT, NewTenant, PluginRef};
use sandtable::config::Config;
use sandtable::sandbox::{CallContext, Column, EngineConfig, LoadedPlugin, UdfEngine};
use sandtable::table::input::InputFormat;
use sandtable::table::values::cell_json;
use sandtable::table::{
    NewColumn, OnError, OutputColumn, SelectQuery, TableError, Tables, WriteOptions,
};
use serde_json::Value;

use crate::TestDb;

/// Reads a plugin that the build script built.
pub fn plugin_bytes(file: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("SANDTABLE_PLUGIN_DIR")).join(file)).expect("plugins are built")
}

/// Creates a fresh database with the tables API over it and `plugins`
/// added, each as `(catalog name, file)`.
pub async fn setup(plugins: &[(&str, &str)]) -> anyhow::Result<(TestDb, Tables)> {
    setup_with(Config::default(), plugins).await
}

/// [`setup`] with the operator's configuration `config`.
pub async fn setup_with(
    config: Config,
    plugins: &[(&str, &str)],
) -> anyhow::Result<(TestDb, Tables)> {
    let db = crate::fresh_database().await?;
    let catalog = Catalog::open(db.pool().clone())
        .await?
        .with_config(Arc::new(config));
    let tenant = catalog.tenant(DEFAULT_TENANT).await?;
    // Test binaries share one compiled cache, so that each component is
    // compiled once a run rather than at every load.
    let engine = UdfEngine::new(EngineConfig {
        cache_dir: Some(crate::workspace_root().join("target").join("test-cache")),
        ..EngineConfig::default()
    })?;
    let tables = Tables::new(catalog, engine, tenant);
    for (name, file) in plugins {
        add_plugin(&tables, name, file).await?;
    }
    Ok((db, tables))
}

/// Returns the tables of a tenant just created, as its own Postgres role
/// reaches them.
pub async fn tenant_tables(host: &Tables, created: &NewTenant) -> anyhow::Result<Tables> {
    Ok(Tables::new(
        host.catalog().for_tenant(&created.tenant).await?,
        host.engine().clone(),
        created.tenant.clone(),
    ))
}

/// Adds the plugin in `file` under catalog name `name`, and returns its
/// catalog version.
pub async fn add_plugin(tables: &Tables, name: &str, file: &str) -> anyhow::Result<i32> {
    let bytes = plugin_bytes(file);
    let loaded = tables.engine().load(&bytes)?;
    let added = tables
        .catalog()
        .add_plugin(tables.tenant(), name, &bytes, &loaded)
        .await?;
    Ok(added.entry.version)
}

/// Loads plugin `name` of the catalog with its grants and pools, as the
/// tables do before they call it.
pub async fn load_plugin(
    tables: &Tables,
    name: &str,
) -> anyhow::Result<(LoadedPlugin, CallContext)> {
    let reference: PluginRef = name.parse()?;
    let (_, plugin, context) = tables
        .catalog()
        .load_plugin(tables.engine(), tables.tenant(), &reference)
        .await?;
    Ok((plugin, context))
}

/// Parses columns given as `NAME:TYPE`.
pub fn columns(specs: &[&str]) -> Vec<NewColumn> {
    specs
        .iter()
        .map(|spec| NewColumn::parse(spec).expect("a valid column"))
        .collect()
}

/// Returns write options that abort on a failed cell, with two workers.
pub fn abort() -> WriteOptions {
    WriteOptions {
        on_error: OnError::Abort,
        workers: 2,
    }
}

/// Returns write options that store failed cells' errors, with two workers.
pub fn ignore() -> WriteOptions {
    WriteOptions {
        on_error: OnError::Ignore,
        workers: 2,
    }
}

/// Inserts `text` in `format` under abort, and returns the version made.
pub async fn insert_text(
    tables: &Tables,
    table: &str,
    text: &[u8],
    format: InputFormat,
) -> Result<i64, TableError> {
    let summary = tables
        .insert(table, Cursor::new(text.to_vec()), format, &abort())
        .await?;
    Ok(summary.version)
}

/// Inserts `rows` as JSON Lines under abort, and returns the version made.
pub async fn insert_jsonl(tables: &Tables, table: &str, rows: &[Value]) -> Result<i64, TableError> {
    let text: String = rows.iter().map(|row| format!("{row}\n")).collect();
    insert_text(tables, table, text.as_bytes(), InputFormat::Jsonl).await
}

/// Turns a select's columns into one JSON object a row, in row order.
pub fn rows_as_json(names: &[OutputColumn], columns: &[Column]) -> Vec<Value> {
    let rows = columns.first().map_or(0, Column::len);
    (0..rows)
        .map(|row| {
            let mut object = serde_json::Map::new();
            for (name, column) in names.iter().zip(columns) {
                object.insert(name.name.clone(), cell_json(column, row));
            }
            Value::Object(object)
        })
        .collect()
}

/// Reads every row of `source` as JSON objects, with the error type and
/// message of each computed column, in row order.
pub async fn dump(tables: &Tables, source: &str) -> anyhow::Result<Vec<Value>> {
    dump_query(tables, source, SelectQuery::default(), true).await
}

/// Reads the rows that `query` selects from `source` as JSON objects; with
/// `with_errors` and no columns given, every column with the error type and
/// message of each computed column.
pub async fn dump_query(
    tables: &Tables,
    source: &str,
    mut query: SelectQuery,
    with_errors: bool,
) -> anyhow::Result<Vec<Value>> {
    if query.columns.is_none() && with_errors {
        let schema = tables.source_schema(source, query.version).await?;
        let mut list = Vec::new();
        for column in &schema.columns {
            let name = format!("\"{}\"", column.name.replace('"', "\"\""));
            list.push(name.clone());
            if column.is_computed() {
                list.push(format!("{name}.errortype"));
                list.push(format!("{name}.errormsg"));
            }
        }
        query.columns = Some(list.join(", "));
    }
    let (names, columns) = tables
        .select(source, &query)
        .await
        .map_err(|error| anyhow::anyhow!("select from `{source}` failed: {error:?}"))?;
    Ok(rows_as_json(&names, &columns))
}
