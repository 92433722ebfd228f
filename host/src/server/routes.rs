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
use crate::sandbox::Column;
use crate::table::input::InputFormat;
use crate::table::values::cell_json;
use crate::table::{
    NewColumn, OnError, OutputColumn, SearchInput, SearchQuery, SelectQuery, TableError,
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
        .route("/v1/plugins", get(list_plugins))
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
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
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
    Query(query): Query<DropTable>,
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
    Query(query): Query<InsertQuery>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let format = match query.format.as_deref().unwrap_or("jsonl") {
        "jsonl" => InputFormat::Jsonl,
        "json" => InputFormat::Json,
        "csv" => InputFormat::Csv,
        other => {
            return Err(ApiError::invalid(format!(
                "format `{other}` is not known; use jsonl, json or csv"
            )));
        }
    };
    let on_error = match query.on_error.as_deref().unwrap_or("abort") {
        "abort" => OnError::Abort,
        "ignore" => OnError::Ignore,
        other => {
            return Err(ApiError::invalid(format!(
                "on_error `{other}` is not known; use abort or ignore"
            )));
        }
    };
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
    Query(query): Query<SelectRows>,
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
