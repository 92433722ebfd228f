//! `/v1/tables/{table}/rows` and `/search`: select, insert, update, delete
//! and search rows.

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path};
use axum::http::StatusCode;
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::{ApiJson, ApiQuery, parse_choice, row_objects};
use crate::server::error::ErrorBody;
use crate::server::{ApiError, TenantTables};
use crate::table::input::InputFormat;
use crate::table::{
    Metric, OnError, OutputColumn, SearchInput, SearchQuery, SelectQuery, WriteOptions,
    WriteSummary,
};

/// The maximum number of rows of a select whose request gives no limit.
pub const DEFAULT_SELECT_LIMIT: u64 = 1000;

/// The query of `GET /v1/tables/{table}/rows`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(in crate::server) struct SelectRows {
    /// Comma-separated columns, `COLUMN.errortype` and `COLUMN.errormsg`
    /// among them; every column's value by default.
    columns: Option<String>,
    /// A predicate, such as `year > 1990 and title is not null`.
    #[serde(rename = "where")]
    filter: Option<String>,
    /// The column to order by; insertion order by default.
    order_by: Option<String>,
    /// Order from the largest value down.
    #[serde(default)]
    desc: bool,
    /// At most this many rows; 1,000 by default.
    limit: Option<u64>,
    /// Read this version of the table.
    version: Option<i64>,
    /// List only the failed cells of this computed column, with their
    /// errors.
    errors: Option<String>,
}

/// The body of `GET /v1/tables/{table}/rows`.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct RowsPage {
    /// The table read.
    pub table: String,
    /// The snapshot, when the path named one.
    pub snapshot: Option<String>,
    /// The table version read.
    pub version: i64,
    /// The result's columns and their types, also when it has no rows.
    pub columns: Vec<OutputColumn>,
    /// One object a row, keyed by column, with values as `insert` reads
    /// them back.
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<Value>,
    /// Whether more rows matched than the default limit of 1,000, which a
    /// request without `limit` gets.
    pub truncated: bool,
}

/// `GET /v1/tables/{table}/rows`: rows of a table or snapshot, as objects.
#[utoipa::path(
    get,
    path = "/v1/tables/{table}/rows",
    tag = "rows",
    security(("api_key" = [])),
    params(("table" = String, Path, description = "The table or snapshot"), SelectRows),
    responses(
        (status = 200, description = "The rows", body = RowsPage),
        (status = 400, description = "A bad predicate, column list or query string (code \
                                      `invalid`)",
         body = ErrorBody),
        (status = 404, description = "No table or snapshot of the tenant has the name, or no \
                                      such version or column (code `not_found`)",
         body = ErrorBody),
    )
)]
pub(in crate::server) async fn select_rows(
    Extension(tenant): Extension<TenantTables>,
    Path(table): Path<String>,
    ApiQuery(query): ApiQuery<SelectRows>,
) -> Result<Json<RowsPage>, ApiError> {
    // Without a limit, one row past the default tells whether it cut the
    // result short.
    let select = SelectQuery {
        columns: query.columns,
        filter: query.filter,
        order_by: query.order_by,
        descending: query.desc,
        limit: Some(query.limit.unwrap_or(DEFAULT_SELECT_LIMIT + 1)),
        version: query.version,
        errors: query.errors,
    };
    let mut rows = Vec::new();
    let (source, _) = tenant
        .0
        .select_each(&table, &select, |names, columns| {
            rows.extend(row_objects(names, columns));
            Ok(())
        })
        .await?;
    let truncated = query.limit.is_none() && rows.len() as u64 > DEFAULT_SELECT_LIMIT;
    if truncated {
        rows.truncate(DEFAULT_SELECT_LIMIT as usize);
    }
    Ok(Json(RowsPage {
        table: source.table,
        snapshot: source.snapshot,
        version: source.version,
        columns: source.columns,
        rows,
        truncated,
    }))
}

/// The query of `POST /v1/tables/{table}/rows`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(in crate::server) struct InsertQuery {
    /// The body's format: `jsonl` (the default), `json` or `csv`.
    format: Option<String>,
    /// What a failed computed cell does: `abort` (the default) writes
    /// nothing, `ignore` stores the error in the cell.
    #[param(value_type = Option<OnError>)]
    on_error: Option<String>,
}

/// `POST /v1/tables/{table}/rows`: inserts the body's rows as one version.
/// The body streams into the insert, so it may be larger than memory.
#[utoipa::path(
    post,
    path = "/v1/tables/{table}/rows",
    tag = "rows",
    security(("api_key" = [])),
    params(("table" = String, Path, description = "The table"), InsertQuery),
    request_body(
        content = String,
        content_type = "application/x-ndjson",
        description = "JSON Lines (one object a row), a JSON array of objects, or CSV with a \
                       header row, as `format` says"
    ),
    responses(
        (status = 201, description = "The rows were inserted as one version",
         body = WriteSummary),
        (status = 400, description = "A value that does not fit its column, with its `row` \
                                      and `column` in `details`, or a bad format (code \
                                      `invalid`)",
         body = ErrorBody),
        (status = 404, description = "No table of the tenant has the name (code `not_found`)",
         body = ErrorBody),
        (status = 422, description = "A computed cell failed under `on_error=abort` (code \
                                      `cell_failed`)",
         body = ErrorBody),
    )
)]
pub(in crate::server) async fn insert_rows(
    Extension(tenant): Extension<TenantTables>,
    Path(table): Path<String>,
    ApiQuery(query): ApiQuery<InsertQuery>,
    body: Body,
) -> Result<(StatusCode, Json<WriteSummary>), ApiError> {
    let format = parse_choice("format", query.format.as_deref(), InputFormat::Jsonl)?;
    let on_error = parse_choice("on_error", query.on_error.as_deref(), OnError::Abort)?;
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = std::io::BufReader::new(SyncIoBridge::new(StreamReader::new(stream)));
    let options = WriteOptions {
        on_error,
        ..WriteOptions::default()
    };
    let summary = tenant.0.insert(&table, reader, format, &options).await?;
    Ok((StatusCode::CREATED, Json(summary)))
}

/// The body of `PATCH /v1/tables/{table}/rows`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(in crate::server) struct UpdateRows {
    /// Assignments `COLUMN=VALUE`, such as `year=1999` or `title='Alien'`.
    set: Vec<String>,
    /// Update only the rows that match; every row by default.
    #[serde(rename = "where")]
    filter: Option<String>,
    /// What a failed computed cell does: `abort` (the default) or `ignore`.
    #[schema(value_type = Option<OnError>)]
    on_error: Option<String>,
}

/// `PATCH /v1/tables/{table}/rows`: sets columns of the rows that match, and
/// computes again the columns computed from them, as one version.
#[utoipa::path(
    patch,
    path = "/v1/tables/{table}/rows",
    tag = "rows",
    security(("api_key" = [])),
    params(("table" = String, Path, description = "The table")),
    request_body = UpdateRows,
    responses(
        (status = 200, description = "The rows were updated as one version",
         body = WriteSummary),
        (status = 400, description = "A bad assignment, value or predicate, or a computed \
                                      column set (code `invalid`)",
         body = ErrorBody),
        (status = 404, description = "No table of the tenant has the name, or no such column \
                                      (code `not_found`)",
         body = ErrorBody),
        (status = 422, description = "A computed cell failed under `on_error=abort` (code \
                                      `cell_failed`)",
         body = ErrorBody),
    )
)]
pub(in crate::server) async fn update_rows(
    Extension(tenant): Extension<TenantTables>,
    Path(table): Path<String>,
    ApiJson(request): ApiJson<UpdateRows>,
) -> Result<Json<WriteSummary>, ApiError> {
    let options = WriteOptions {
        on_error: parse_choice("on_error", request.on_error.as_deref(), OnError::Abort)?,
        ..WriteOptions::default()
    };
    let summary = tenant
        .0
        .update(
            &table,
            &request.set,
            request.filter.as_deref(),
            &options,
            &(),
        )
        .await?;
    Ok(Json(summary))
}

/// The query of `DELETE /v1/tables/{table}/rows`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(in crate::server) struct DeleteRows {
    /// Delete the rows that match this predicate.
    #[serde(rename = "where")]
    filter: Option<String>,
    /// Delete every row; either this or `where` is required.
    #[serde(default)]
    all: bool,
}

/// `DELETE /v1/tables/{table}/rows`: deletes the rows that match, as one
/// version. Snapshots keep them.
#[utoipa::path(
    delete,
    path = "/v1/tables/{table}/rows",
    tag = "rows",
    security(("api_key" = [])),
    params(("table" = String, Path, description = "The table"), DeleteRows),
    responses(
        (status = 200, description = "The rows were deleted as one version",
         body = WriteSummary),
        (status = 400, description = "A bad predicate, or neither `where` nor `all=true`, or \
                                      both (code `invalid`)",
         body = ErrorBody),
        (status = 404, description = "No table of the tenant has the name, or no such column \
                                      (code `not_found`)",
         body = ErrorBody),
    )
)]
pub(in crate::server) async fn delete_rows(
    Extension(tenant): Extension<TenantTables>,
    Path(table): Path<String>,
    ApiQuery(query): ApiQuery<DeleteRows>,
) -> Result<Json<WriteSummary>, ApiError> {
    match (&query.filter, query.all) {
        (None, false) => {
            return Err(ApiError::invalid(
                "a delete needs `where=PREDICATE`, or `all=true` to delete every row",
            ));
        }
        (Some(_), true) => {
            return Err(ApiError::invalid(
                "give either `where` or `all=true`, not both",
            ));
        }
        _ => {}
    }
    Ok(Json(
        tenant.0.delete(&table, query.filter.as_deref()).await?,
    ))
}

/// The body of `POST /v1/tables/{table}/search`: a text or a vector.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(in crate::server) struct Search {
    /// The text to search for, embedded by the index's own function.
    text: Option<String>,
    /// A vector of the index's dimension to search for, instead of text.
    vector: Option<Vec<f32>>,
    /// How many rows to return, from 1 to 1,000; 10 by default.
    #[serde(default = "default_k")]
    k: u64,
    /// The index; the table's only index by default.
    index: Option<String>,
    /// A predicate the rows must match.
    #[serde(rename = "where")]
    filter: Option<String>,
    /// Comma-separated columns to return; every column but the vector
    /// columns by default.
    columns: Option<String>,
    /// Search this version of the table.
    version: Option<i64>,
    /// Return the query plan, with the time each step took, instead of
    /// rows.
    #[serde(default)]
    explain: bool,
}

fn default_k() -> u64 {
    10
}

/// The body of `POST /v1/tables/{table}/search`.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct SearchFound {
    /// The index searched.
    pub index: String,
    /// Its distance.
    pub metric: Metric,
    /// The table searched.
    pub table: String,
    /// The snapshot, when the path named one.
    pub snapshot: Option<String>,
    /// The table version searched.
    pub version: i64,
    /// The result's columns and their types; the first is the score:
    /// `similarity`, `distance` or `inner_product`.
    pub columns: Vec<OutputColumn>,
    /// One object a row, nearest first.
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<Value>,
    /// The microseconds that embedding a text query took.
    pub embed_us: Option<u64>,
    /// The query plan, when `explain` was set; then `rows` is empty.
    pub plan: Option<String>,
}

/// `POST /v1/tables/{table}/search`: the rows nearest to a text or vector.
#[utoipa::path(
    post,
    path = "/v1/tables/{table}/search",
    tag = "rows",
    security(("api_key" = [])),
    params(("table" = String, Path, description = "The table or snapshot")),
    request_body = Search,
    responses(
        (status = 200, description = "The nearest rows", body = SearchFound),
        (status = 400, description = "Neither or both of `text` and `vector`, a vector of \
                                      another dimension, a bad `k` or predicate (code \
                                      `invalid`)",
         body = ErrorBody),
        (status = 404, description = "No table or snapshot of the tenant has the name, or no \
                                      such index, version or column (code `not_found`)",
         body = ErrorBody),
        (status = 422, description = "Embedding the text failed (code `cell_failed`)",
         body = ErrorBody),
    )
)]
pub(in crate::server) async fn search(
    Extension(tenant): Extension<TenantTables>,
    Path(table): Path<String>,
    ApiJson(request): ApiJson<Search>,
) -> Result<Json<SearchFound>, ApiError> {
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
        explain: request.explain,
    };
    let result = tenant.0.search(&table, &query).await?;
    Ok(Json(SearchFound {
        rows: row_objects(&result.source.columns, &result.columns),
        index: result.index,
        metric: result.metric,
        table: result.source.table,
        snapshot: result.source.snapshot,
        version: result.source.version,
        columns: result.source.columns,
        embed_us: result.embed_us,
        plan: result.plan,
    }))
}
