//! The two places a table or plugin command runs: the database that the
//! host's environment names, or, with `--server`, the HTTP API. Each method
//! returns the library's own types from both, so that a command prints the
//! same lines, JSON and CSV either way.

use std::path::Path;

use anyhow::bail;
use reqwest::Method;
use serde_json::{Value, json};

use super::Env;
use super::client::{Client, Payload};
use super::table::{RowProgress, WriteArgs, flush, open};
use crate::catalog::{AddedPlugin, PluginDetails, PluginEntry, PluginRef};
use crate::sandbox::{Column, ColumnBuilder, DataType, EngineConfig};
use crate::server::{PluginsRemoved, SearchFound, TableDropped};
use crate::table::{
    ColumnAdded, IndexAdded, IndexInfo, Metric, OutputColumn, SearchInput, SearchQuery,
    SearchResult, SelectSource, SnapshotInfo, TableDetails, TableSchema, TableSummary,
    VersionEntry, WriteOptions, WriteSummary,
};

/// The place a command runs.
pub(crate) enum Backend<'a> {
    /// On the database, as the tenant that `--tenant` names.
    Local(&'a Env),
    /// Through the API of a `sandtable serve`, as the tenant of the key.
    Remote(&'a Client),
}

/// Returns the value name clap gives `value`, such as `abort`.
pub(crate) fn value_name(value: &impl clap::ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|value| value.get_name().to_owned())
        .unwrap_or_default()
}

impl Backend<'_> {
    /// Returns the write options of `args`. The server picks its own
    /// number of workers, so `--workers` is rejected with `--server`.
    pub(crate) fn write_options(&self, args: &WriteArgs) -> anyhow::Result<WriteOptions> {
        if let (Backend::Remote(_), Some(workers)) = (self, args.workers) {
            bail!(
                "--workers {workers} sets the host's workers, and the server picks its own; \
                 leave it out with --server"
            );
        }
        args.options()
    }

    pub(crate) async fn create_table(
        &self,
        name: &str,
        columns: &[String],
    ) -> anyhow::Result<TableSchema> {
        match self {
            Backend::Local(env) => {
                let columns = columns
                    .iter()
                    .map(|text| crate::table::NewColumn::parse(text))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(open(env).await?.create_table(name, &columns).await?)
            }
            Backend::Remote(client) => {
                let body = json!({"name": name, "columns": columns});
                let details: TableDetails = client
                    .send(Method::POST, &["v1", "tables"], &[], Payload::Json(body))
                    .await?;
                Ok(details.schema)
            }
        }
    }

    pub(crate) async fn list_tables(&self) -> anyhow::Result<Vec<TableSummary>> {
        match self {
            Backend::Local(env) => Ok(open(env).await?.list_tables().await?),
            Backend::Remote(client) => {
                client
                    .send(Method::GET, &["v1", "tables"], &[], Payload::Empty)
                    .await
            }
        }
    }

    pub(crate) async fn describe_table(&self, name: &str) -> anyhow::Result<TableDetails> {
        match self {
            Backend::Local(env) => Ok(open(env).await?.describe_table(name).await?),
            Backend::Remote(client) => {
                client
                    .send(Method::GET, &["v1", "tables", name], &[], Payload::Empty)
                    .await
            }
        }
    }

    /// Drops a table; returns the snapshots dropped with it.
    pub(crate) async fn drop_table(
        &self,
        name: &str,
        with_snapshots: bool,
    ) -> anyhow::Result<Vec<String>> {
        match self {
            Backend::Local(env) => Ok(open(env).await?.drop_table(name, with_snapshots).await?),
            Backend::Remote(client) => {
                let query = [("with_snapshots", with_snapshots.to_string())];
                let dropped: TableDropped = client
                    .send(
                        Method::DELETE,
                        &["v1", "tables", name],
                        &query,
                        Payload::Empty,
                    )
                    .await?;
                Ok(dropped.snapshots_dropped)
            }
        }
    }

    pub(crate) async fn history(&self, name: &str) -> anyhow::Result<Vec<VersionEntry>> {
        match self {
            Backend::Local(env) => Ok(open(env).await?.history(name).await?),
            Backend::Remote(client) => {
                let path = ["v1", "tables", name, "history"];
                client.send(Method::GET, &path, &[], Payload::Empty).await
            }
        }
    }

    pub(crate) async fn revert(&self, name: &str) -> anyhow::Result<VersionEntry> {
        match self {
            Backend::Local(env) => Ok(open(env).await?.revert(name).await?),
            Backend::Remote(client) => {
                let path = ["v1", "tables", name, "revert"];
                client.send(Method::POST, &path, &[], Payload::Empty).await
            }
        }
    }

    pub(crate) async fn add_column(
        &self,
        table: &str,
        name: &str,
        expression: &str,
        options: &WriteOptions,
    ) -> anyhow::Result<ColumnAdded> {
        match self {
            Backend::Local(env) => {
                let tables = open(env).await?;
                let bar = RowProgress::new();
                let result = tables
                    .add_computed_column(table, name, expression, options, &bar)
                    .await;
                bar.0.finish_and_clear();
                let added = result?;
                flush(&tables).await?;
                Ok(added)
            }
            Backend::Remote(client) => {
                let body = json!({
                    "name": name,
                    "expression": expression,
                    "on_error": value_name(&options.on_error),
                });
                let path = ["v1", "tables", table, "columns"];
                client
                    .send(Method::POST, &path, &[], Payload::Json(body))
                    .await
            }
        }
    }

    pub(crate) async fn upgrade_column(
        &self,
        table: &str,
        column: &str,
        to: Option<&str>,
        options: &WriteOptions,
    ) -> anyhow::Result<WriteSummary> {
        match self {
            Backend::Local(env) => {
                let tables = open(env).await?;
                let bar = RowProgress::new();
                let result = tables
                    .upgrade_column(table, column, to, options, &bar)
                    .await;
                bar.0.finish_and_clear();
                let summary = result?;
                flush(&tables).await?;
                Ok(summary)
            }
            Backend::Remote(client) => {
                let body = json!({"to": to, "on_error": value_name(&options.on_error)});
                let path = ["v1", "tables", table, "columns", column, "upgrade"];
                client
                    .send(Method::POST, &path, &[], Payload::Json(body))
                    .await
            }
        }
    }

    pub(crate) async fn recompute(
        &self,
        table: &str,
        column: &str,
        errors_only: bool,
        options: &WriteOptions,
    ) -> anyhow::Result<WriteSummary> {
        match self {
            Backend::Local(env) => {
                let tables = open(env).await?;
                let bar = RowProgress::new();
                let result = tables
                    .recompute(table, column, errors_only, options, &bar)
                    .await;
                bar.0.finish_and_clear();
                let summary = result?;
                flush(&tables).await?;
                Ok(summary)
            }
            Backend::Remote(client) => {
                let body = json!({
                    "errors_only": errors_only,
                    "on_error": value_name(&options.on_error),
                });
                let path = ["v1", "tables", table, "columns", column, "recompute"];
                client
                    .send(Method::POST, &path, &[], Payload::Json(body))
                    .await
            }
        }
    }

    pub(crate) async fn update(
        &self,
        table: &str,
        sets: &[String],
        filter: Option<&str>,
        options: &WriteOptions,
    ) -> anyhow::Result<WriteSummary> {
        match self {
            Backend::Local(env) => {
                let tables = open(env).await?;
                let bar = RowProgress::new();
                let result = tables.update(table, sets, filter, options, &bar).await;
                bar.0.finish_and_clear();
                let summary = result?;
                flush(&tables).await?;
                Ok(summary)
            }
            Backend::Remote(client) => {
                let body = json!({
                    "set": sets,
                    "where": filter,
                    "on_error": value_name(&options.on_error),
                });
                let path = ["v1", "tables", table, "rows"];
                client
                    .send(Method::PATCH, &path, &[], Payload::Json(body))
                    .await
            }
        }
    }

    pub(crate) async fn delete(
        &self,
        table: &str,
        filter: Option<&str>,
    ) -> anyhow::Result<WriteSummary> {
        match self {
            Backend::Local(env) => Ok(open(env).await?.delete(table, filter).await?),
            Backend::Remote(client) => {
                let query = match filter {
                    Some(filter) => [("where", filter.to_owned())],
                    None => [("all", "true".to_owned())],
                };
                let path = ["v1", "tables", table, "rows"];
                client
                    .send(Method::DELETE, &path, &query, Payload::Empty)
                    .await
            }
        }
    }

    pub(crate) async fn create_snapshot(
        &self,
        name: &str,
        table: &str,
        version: Option<i64>,
    ) -> anyhow::Result<SnapshotInfo> {
        match self {
            Backend::Local(env) => Ok(open(env)
                .await?
                .create_snapshot(name, table, version)
                .await?),
            Backend::Remote(client) => {
                let body = json!({"name": name, "table": table, "version": version});
                client
                    .send(Method::POST, &["v1", "snapshots"], &[], Payload::Json(body))
                    .await
            }
        }
    }

    pub(crate) async fn list_snapshots(&self) -> anyhow::Result<Vec<SnapshotInfo>> {
        match self {
            Backend::Local(env) => Ok(open(env).await?.list_snapshots().await?),
            Backend::Remote(client) => {
                client
                    .send(Method::GET, &["v1", "snapshots"], &[], Payload::Empty)
                    .await
            }
        }
    }

    pub(crate) async fn drop_snapshot(&self, name: &str) -> anyhow::Result<()> {
        match self {
            Backend::Local(env) => Ok(open(env).await?.drop_snapshot(name).await?),
            Backend::Remote(client) => {
                let path = ["v1", "snapshots", name];
                let _: serde_json::Value = client
                    .send(Method::DELETE, &path, &[], Payload::Empty)
                    .await?;
                Ok(())
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn add_index(
        &self,
        table: &str,
        column: &str,
        embedding: &str,
        metric: Metric,
        name: Option<&str>,
        options: &WriteOptions,
    ) -> anyhow::Result<IndexAdded> {
        match self {
            Backend::Local(env) => {
                let tables = open(env).await?;
                let bar = RowProgress::new();
                let result = tables
                    .add_index(table, column, embedding, metric, name, options, &bar)
                    .await;
                bar.0.finish_and_clear();
                let added = result?;
                flush(&tables).await?;
                Ok(added)
            }
            Backend::Remote(client) => {
                let body = json!({
                    "column": column,
                    "embedding": embedding,
                    "metric": metric,
                    "name": name,
                    "on_error": value_name(&options.on_error),
                });
                let path = ["v1", "tables", table, "indexes"];
                client
                    .send(Method::POST, &path, &[], Payload::Json(body))
                    .await
            }
        }
    }

    pub(crate) async fn list_indexes(&self, table: Option<&str>) -> anyhow::Result<Vec<IndexInfo>> {
        match self {
            Backend::Local(env) => Ok(open(env).await?.list_indexes(table).await?),
            Backend::Remote(client) => {
                let path = match table {
                    Some(table) => vec!["v1", "tables", table, "indexes"],
                    None => vec!["v1", "indexes"],
                };
                client.send(Method::GET, &path, &[], Payload::Empty).await
            }
        }
    }

    pub(crate) async fn drop_index(&self, table: &str, name: &str) -> anyhow::Result<WriteSummary> {
        match self {
            Backend::Local(env) => Ok(open(env).await?.drop_index(table, name).await?),
            Backend::Remote(client) => {
                let path = ["v1", "tables", table, "indexes", name];
                client
                    .send(Method::DELETE, &path, &[], Payload::Empty)
                    .await
            }
        }
    }

    pub(crate) async fn search(
        &self,
        source: &str,
        query: &SearchQuery,
    ) -> anyhow::Result<SearchResult> {
        match self {
            Backend::Local(env) => {
                let tables = open(env).await?;
                let result = tables.search(source, query).await?;
                flush(&tables).await?;
                Ok(result)
            }
            Backend::Remote(client) => {
                let mut body = json!({
                    "k": query.k,
                    "index": query.index,
                    "where": query.filter,
                    "columns": query.columns,
                    "version": query.version,
                    "explain": query.explain,
                });
                match &query.input {
                    SearchInput::Text(text) => body["text"] = json!(text),
                    SearchInput::Vector(vector) => body["vector"] = json!(vector),
                }
                let path = ["v1", "tables", source, "search"];
                let found: SearchFound = client
                    .send(Method::POST, &path, &[], Payload::Json(body))
                    .await?;
                let columns = columns_of(&found.columns, &found.rows)?;
                Ok(SearchResult {
                    source: SelectSource {
                        table: found.table,
                        snapshot: found.snapshot,
                        version: found.version,
                        columns: found.columns,
                    },
                    index: found.index,
                    metric: found.metric,
                    columns,
                    embed_us: found.embed_us,
                    plan: found.plan,
                })
            }
        }
    }

    /// Adds the component in `file` as the next version of `name`, or of
    /// the name it describes itself with.
    pub(crate) async fn add_plugin(
        &self,
        file: &Path,
        name: Option<&str>,
    ) -> anyhow::Result<AddedPlugin> {
        match self {
            Backend::Local(env) => {
                let engine = env.engine()?;
                let (bytes, plugin) = super::plugin::load_file(&engine, file).await?;
                let name = name.map_or_else(|| plugin.description().name.clone(), str::to_owned);
                let (catalog, tenant) = env.catalog().await?;
                Ok(catalog.add_plugin(&tenant, &name, &bytes, &plugin).await?)
            }
            Backend::Remote(client) => {
                // The server checks the size again against its own maximum.
                let bytes = super::plugin::read_component(&EngineConfig::default(), file)?;
                let query: Vec<(&str, String)> = name
                    .map(|name| ("name", name.to_owned()))
                    .into_iter()
                    .collect();
                let payload = Payload::Bytes(bytes, "application/wasm");
                client
                    .send(Method::POST, &["v1", "plugins"], &query, payload)
                    .await
            }
        }
    }

    pub(crate) async fn list_plugins(&self) -> anyhow::Result<Vec<PluginEntry>> {
        match self {
            Backend::Local(env) => {
                let (catalog, tenant) = env.catalog().await?;
                Ok(catalog.list_plugins(&tenant).await?)
            }
            Backend::Remote(client) => {
                client
                    .send(Method::GET, &["v1", "plugins"], &[], Payload::Empty)
                    .await
            }
        }
    }

    pub(crate) async fn plugin_details(
        &self,
        reference: &PluginRef,
    ) -> anyhow::Result<PluginDetails> {
        match self {
            Backend::Local(env) => {
                let (catalog, tenant) = env.catalog().await?;
                let policy = crate::sandbox::LimitPolicy::default();
                Ok(catalog.plugin_details(&tenant, reference, &policy).await?)
            }
            Backend::Remote(client) => {
                let reference = reference.to_string();
                let path = ["v1", "plugins", reference.as_str()];
                client.send(Method::GET, &path, &[], Payload::Empty).await
            }
        }
    }

    pub(crate) async fn remove_plugin(
        &self,
        reference: &PluginRef,
        all_versions: bool,
    ) -> anyhow::Result<Vec<PluginEntry>> {
        match self {
            Backend::Local(env) => {
                let (catalog, tenant) = env.catalog().await?;
                Ok(catalog
                    .remove_plugin(&tenant, reference, all_versions)
                    .await?)
            }
            Backend::Remote(client) => {
                let reference = reference.to_string();
                let path = ["v1", "plugins", reference.as_str()];
                let query = [("all_versions", all_versions.to_string())];
                let removed: PluginsRemoved = client
                    .send(Method::DELETE, &path, &query, Payload::Empty)
                    .await?;
                Ok(removed.removed)
            }
        }
    }
}

/// Rebuilds the columns of rows that the API sent as one JSON object a row,
/// so that they print as the rows of a local select do.
///
/// # Errors
///
/// Fails when a value does not fit its column's type, which means the
/// server is not the version this CLI expects.
pub(crate) fn columns_of(names: &[OutputColumn], rows: &[Value]) -> anyhow::Result<Vec<Column>> {
    names
        .iter()
        .map(|output| {
            let mut builder = ColumnBuilder::new(&output.data_type, rows.len());
            for row in rows {
                let value = row.get(&output.name).unwrap_or(&Value::Null);
                // Floats that JSON cannot hold arrive as the strings `NaN`,
                // `inf` and `-inf`.
                if let (DataType::Float, Value::String(text)) = (&output.data_type, value)
                    && let Ok(float) = text.parse::<f64>()
                {
                    builder.push_float(float);
                    continue;
                }
                crate::table::values::push_json(&mut builder, &output.data_type, value).map_err(
                    |error| {
                        anyhow::anyhow!(
                            "the server sent a value of column `{}` that does not fit its type \
                             {}: {error}",
                            output.name,
                            output.data_type
                        )
                    },
                )?;
            }
            Ok(builder.finish())
        })
        .collect()
}
