//! The API's routes over a tenant's tables.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, Path, Query};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::{ApiError, AppState, TenantTables};
use crate::catalog::PluginRef;
use crate::sandbox::Column;
use crate::table::input::InputFormat;
use crate::table::values::cell_json;
use crate::table::{
    Metric, NewColumn, OnError, OutputColumn, SearchInput, SearchQuery, SelectQuery, TableError,
    WriteOptions,
};

/// The maximum number of rows of a select whose request gives no limit.
const DEFAULT_SELECT_LIMIT: u64 = 1000;

/// Returns the routes that need a tenant.
pub(super) fn tenant_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/tables", get(list_tables).post(create_table))
        .route("/v1/tables/{table}", get(describe_table).delete(drop_table))
        .route(
            "/v1/tables/{table}/rows",
            get(select_rows).post(insert_rows),
        )
        .route("/v1/tables/{table}/search", post(search))
        .route("/v1/tables/{table}/columns", post(add_column))
        .route("/v1/tables/{table}/indexes", post(add_index))
        .route("/v1/tables/{table}/history", get(history))
        .route("/v1/snapshots", get(list_snapshots).post(create_snapshot))
        .route(
            "/v1/snapshots/{snapshot}",
            axum::routing::delete(drop_snapshot),
        )
        .route("/v1/plugins", get(list_plugins).post(add_plugin))
        .route("/v1/plugins/{plugin}", axum::routing::delete(remove_plugin))
}

/// `GET /v1/health`: whether the server is up.
pub(super) async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Responds to a path that no route has.
pub(super) async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for `{}`; the routes are under /v1/", uri.path()),
    )
}

/// A query string parsed into `T`, or a 400 with the API's error body
/// naming what did not parse.
pub(super) struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(query)) => Ok(ApiQuery(query)),
            Err(rejection) => Err(ApiError::invalid(format!(
                "the query string is not valid: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// Responds to a method that the path does not take.
pub(super) async fn no_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("`{}` does not take {method}", uri.path()),
    )
}

/// Turns columns into one JSON object a row.
fn row_objects(names: &[OutputColumn], columns: &[Column]) -> Vec<Value> {
    let rows = columns.first().map_or(0, Column::len);
    (0..rows)
        .map(|row| {
            let object: serde_json::Map<String, Value> = names
                .iter()
                .zip(columns)
                .map(|(name, column)| (name.name.clone(), cell_json(column, row)))
                .collect();
            Value::Object(object)
        })
        .collect()
}

/// Parses a JSON request body into `T`, with an [`ApiError`] naming what
/// did not fit.
pub(super) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::invalid(format!("the request body is not valid: {error}")))
}

async fn list_tables(Extension(tenant): Extension<TenantTables>) -> Result<Json<Value>, ApiError> {
    let tables = tenant.0.list_tables().await?;
    Ok(Json(json!(tables)))
}

/// The body of `POST /v1/tables`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTable {
    name: String,
    /// Columns as `NAME:TYPE`.
    columns: Vec<String>,
}

async fn create_table(
    Extension(tenant): Extension<TenantTables>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: CreateTable = parse_body(&body)?;
    let columns = request
        .columns
        .iter()
        .map(|spec| NewColumn::parse(spec))
        .collect::<Result<Vec<_>, TableError>>()?;
    tenant.0.create_table(&request.name, &columns).await?;
    let details = tenant.0.describe_table(&request.name).await?;
    Ok((StatusCode::CREATED, Json(json!(details))))
}

async fn describe_table(
    Extension(tenant): Extension<TenantTables>,
    Path(table): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(tenant.0.describe_table(&table).await?)))
}

/// The query of `DELETE /v1/tables/{table}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DropTable {
    #[serde(default)]
    with_snapshots: bool,
}

async fn drop_table(
    Extension(tenant): Extension<TenantTables>,
    Path(table): Path<String>,
    ApiQuery(query): ApiQuery<DropTable>,
) -> Result<Json<Value>, ApiError> {
    let snapshots = tenant.0.drop_table(&table, query.with_snapshots).await?;
    Ok(Json(
        json!({"dropped": table, "snapshots_dropped": snapshots}),
    ))
}

/// The query of `POST /v1/tables/{table}/rows`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InsertQuery {
    /// `jsonl` (the default), `json` or `csv`.
    format: Option<String>,
    /// `abort` (the default) or `ignore`.
    on_error: Option<String>,
}

/// `POST /v1/tables/{table}/rows`: inserts the body's rows as one version.
/// The body streams into the insert, so it may be larger than memory.
async fn insert_rows(
    Extension(tenant): Extension<TenantTables>,
    Path(table): Path<String>,
    ApiQuery(query): ApiQuery<InsertQuery>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let format = parse_choice("format", query.format.as_deref(), InputFormat::Jsonl)?;
    let on_error = parse_choice("on_error", query.on_error.as_deref(), OnError::Abort)?;
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = std::io::BufReader::new(SyncIoBridge::new(StreamReader::new(stream)));
    let options = WriteOptions {
        on_error,
        ..WriteOptions::default()
    };
    let summary = tenant.0.insert(&table, reader, format, &options).await?;
    Ok((StatusCode::CREATED, Json(json!(summary))))
}

/// The query of `GET /v1/tables/{table}/rows`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SelectRows {
    columns: Option<String>,
    #[serde(rename = "where")]
    filter: Option<String>,
    order_by: Option<String>,
    #[serde(default)]
    desc: bool,
    limit: Option<u64>,
    version: Option<i64>,
}

/// `GET /v1/tables/{table}/rows`: rows of a table or snapshot, as objects.
async fn select_rows(
    Extension(tenant): Extension<TenantTables>,
    Path(table): Path<String>,
    ApiQuery(query): ApiQuery<SelectRows>,
) -> Result<Json<Value>, ApiError> {
    let select = SelectQuery {
        columns: query.columns,
        filter: query.filter,
        order_by: query.order_by,
        descending: query.desc,
        limit: Some(query.limit.unwrap_or(DEFAULT_SELECT_LIMIT)),
        version: query.version,
        errors: None,
    };
    let (names, columns) = tenant.0.select(&table, &select).await?;
    Ok(Json(json!({"rows": row_objects(&names, &columns)})))
}

/// The body of `POST /v1/tables/{table}/search`: a text or a vector.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Search {
    text: Option<String>,
    vector: Option<Vec<f32>>,
    #[serde(default = "default_k")]
    k: u64,
    index: Option<String>,
    #[serde(rename = "where")]
    filter: Option<String>,
    columns: Option<String>,
    version: Option<i64>,
}

fn default_k() -> u64 {
    10
}

/// `POST /v1/tables/{table}/search`: the rows nearest to a text or vector.
async fn search(
    Extension(tenant): Extension<TenantTables>,
    Path(table): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: Search = parse_body(&body)?;
    let input = match (request.text, request.vector) {
        (Some(text), None) => SearchInput::Text(text),
        (None, Some(vector)) => SearchInput::Vector(vector),
        _ => {
            return Err(ApiError::invalid(
                "give either `text` or `vector` in the search body",
            ));
        }
    };
    let query = SearchQuery {
        index: request.index,
        input,
        k: request.k,
        filter: request.filter,
        columns: request.columns,
        version: request.version,
        explain: false,
    };
    let result = tenant.0.search(&table, &query).await?;
    Ok(Json(json!({
        "index": result.index,
        "metric": result.metric,
        "version": result.source.version,
        "rows": row_objects(&result.source.columns, &result.columns),
    })))
}

async fn list_plugins(Extension(tenant): Extension<TenantTables>) -> Result<Json<Value>, ApiError> {
    let plugins = tenant
        .0
        .catalog()
        .list_plugins(tenant.0.tenant())
        .await
        .map_err(TableError::from)?;
    Ok(Json(json!(plugins)))
}

/// The query of `POST /v1/plugins`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddPlugin {
    /// The catalog name; the name the component describes by default.
    name: Option<String>,
}

/// `POST /v1/plugins`: validates the component in the body and stores it as
/// the next catalog version of its name.
async fn add_plugin(
    Extension(tenant): Extension<TenantTables>,
    ApiQuery(query): ApiQuery<AddPlugin>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tables = tenant.0;
    if let Some(name) = &query.name {
        crate::sandbox::check_name("plugin name", name).map_err(ApiError::invalid)?;
    }
    let max = tables.engine().config().max_component_bytes;
    let bytes = axum::body::to_bytes(body, max).await.map_err(|error| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the component could not be read, or is over {max} bytes: {error}"),
        )
    })?;
    let engine = tables.engine().clone();
    let (bytes, loaded) = tokio::task::spawn_blocking(move || {
        let loaded = engine.load(&bytes);
        (bytes, loaded)
    })
    .await
    .map_err(|error| ApiError::invalid(format!("loading the component failed: {error}")))?;
    let plugin = loaded.map_err(|error| {
        ApiError::invalid(format!(
            "the component does not load: {}",
            crate::error_chain(&error)
        ))
    })?;
    let name = query
        .name
        .unwrap_or_else(|| plugin.description().name.clone());
    let added = tables
        .catalog()
        .add_plugin(tables.tenant(), &name, &bytes, &plugin)
        .await
        .map_err(TableError::from)?;
    let status = if added.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!(added))))
}

/// The query of `DELETE /v1/plugins/{plugin}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemovePlugin {
    #[serde(default)]
    all_versions: bool,
}

/// `DELETE /v1/plugins/{plugin}`: removes `NAME@VERSION`, or every version
/// of `NAME` with `all_versions=true`.
async fn remove_plugin(
    Extension(tenant): Extension<TenantTables>,
    Path(plugin): Path<String>,
    ApiQuery(query): ApiQuery<RemovePlugin>,
) -> Result<Json<Value>, ApiError> {
    let reference: PluginRef = plugin
        .parse()
        .map_err(|error: crate::catalog::InvalidReference| ApiError::invalid(error.to_string()))?;
    let removed = tenant
        .0
        .catalog()
        .remove_plugin(tenant.0.tenant(), &reference, query.all_versions)
        .await
        .map_err(TableError::from)?;
    Ok(Json(json!({"removed": removed})))
}

/// The body of `POST /v1/tables/{table}/columns`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddColumn {
    name: String,
    /// `PLUGIN.FUNCTION(COLUMN, ...)`.
    expression: String,
    on_error: Option<String>,
}

/// Parses the value of query key `key` by the names the CLI takes for it,
/// or returns `default` when the key is missing.
fn parse_choice<T: clap::ValueEnum>(
    key: &str,
    text: Option<&str>,
    default: T,
) -> Result<T, ApiError> {
    let Some(text) = text else {
        return Ok(default);
    };
    T::from_str(text, false).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|value| value.to_possible_value())
            .map(|value| value.get_name().to_owned())
            .collect();
        ApiError::invalid(format!(
            "{key} `{text}` is not valid; use {}",
            names.join(", ")
        ))
    })
}

/// `POST /v1/tables/{table}/columns`: adds a computed column and fills it,
/// as one new version.
async fn add_column(
    Extension(tenant): Extension<TenantTables>,
    Path(table): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: AddColumn = parse_body(&body)?;
    let options = WriteOptions {
        on_error: parse_choice("on_error", request.on_error.as_deref(), OnError::Abort)?,
        ..WriteOptions::default()
    };
    let added = tenant
        .0
        .add_computed_column(&table, &request.name, &request.expression, &options, &())
        .await?;
    Ok((StatusCode::CREATED, Json(json!(added))))
}

/// The body of `POST /v1/tables/{table}/indexes`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddIndex {
    /// The text column to embed.
    column: String,
    /// `PLUGIN.FUNCTION`, which returns vectors.
    embedding: String,
    /// `cosine` (the default), `l2` or `ip`.
    metric: Option<String>,
    name: Option<String>,
}

/// `POST /v1/tables/{table}/indexes`: adds an embedding index and fills it.
async fn add_index(
    Extension(tenant): Extension<TenantTables>,
    Path(table): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: AddIndex = parse_body(&body)?;
    let metric: Metric = request.metric.as_deref().unwrap_or("cosine").parse()?;
    let added = tenant
        .0
        .add_index(
            &table,
            &request.column,
            &request.embedding,
            metric,
            request.name.as_deref(),
            &WriteOptions::default(),
            &(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!(added))))
}

/// `GET /v1/tables/{table}/history`: the table's versions.
async fn history(
    Extension(tenant): Extension<TenantTables>,
    Path(table): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(tenant.0.history(&table).await?)))
}

/// The body of `POST /v1/snapshots`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSnapshot {
    name: String,
    table: String,
    /// The version to pin; the latest by default.
    version: Option<i64>,
}

async fn create_snapshot(
    Extension(tenant): Extension<TenantTables>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: CreateSnapshot = parse_body(&body)?;
    let snapshot = tenant
        .0
        .create_snapshot(&request.name, &request.table, request.version)
        .await?;
    Ok((StatusCode::CREATED, Json(json!(snapshot))))
}

async fn list_snapshots(
    Extension(tenant): Extension<TenantTables>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(tenant.0.list_snapshots().await?)))
}

async fn drop_snapshot(
    Extension(tenant): Extension<TenantTables>,
    Path(snapshot): Path<String>,
) -> Result<Json<Value>, ApiError> {
    tenant.0.drop_snapshot(&snapshot).await?;
    Ok(Json(json!({"dropped": snapshot})))
}
