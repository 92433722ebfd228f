//! `/v1/indexes` and `/v1/tables/{table}/indexes`: add, list and drop
//! embedding indexes.

use axum::Json;
use axum::extract::{Extension, Path};
use axum::http::StatusCode;
use serde::Deserialize;

use super::{ApiJson, parse_choice};
use crate::server::error::ErrorBody;
use crate::server::{ApiError, TenantTables};
use crate::table::{IndexAdded, IndexInfo, Metric, OnError, WriteOptions, WriteSummary};

/// The body of `POST /v1/tables/{table}/indexes`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(in crate::server) struct AddIndex {
    /// The text column to embed.
    column: String,
    /// `PLUGIN.FUNCTION`, which returns vectors.
    embedding: String,
    /// The distance: `cosine` (the default), `l2` or `ip`.
    #[schema(value_type = Option<Metric>)]
    metric: Option<String>,
    /// The index's name, which its vector column takes too;
    /// `COLUMN_FUNCTION` by default.
    name: Option<String>,
    /// What a failed computed cell does: `abort` (the default) or `ignore`.
    #[schema(value_type = Option<OnError>)]
    on_error: Option<String>,
}

/// `POST /v1/tables/{table}/indexes`: adds an embedding index and fills it.
#[utoipa::path(
    post,
    path = "/v1/tables/{table}/indexes",
    tag = "indexes",
    security(("api_key" = [])),
    params(("table" = String, Path, description = "The table")),
    request_body = AddIndex,
    responses(
        (status = 201, description = "The index was added, filled and built",
         body = IndexAdded),
        (status = 400, description = "A bad name or metric, or a function that does not \
                                      return vectors (code `invalid`)",
         body = ErrorBody),
        (status = 404, description = "No table of the tenant has the name, or no such column \
                                      or plugin (code `not_found`)",
         body = ErrorBody),
        (status = 409, description = "The table has an index or column of the name (code \
                                      `conflict`)",
         body = ErrorBody),
        (status = 422, description = "A computed cell failed under `on_error=abort` (code \
                                      `cell_failed`)",
         body = ErrorBody),
    )
)]
pub(in crate::server) async fn add_index(
    Extension(tenant): Extension<TenantTables>,
    Path(table): Path<String>,
    ApiJson(request): ApiJson<AddIndex>,
) -> Result<(StatusCode, Json<IndexAdded>), ApiError> {
    let metric = parse_choice("metric", request.metric.as_deref(), Metric::Cosine)?;
    let options = WriteOptions {
        on_error: parse_choice("on_error", request.on_error.as_deref(), OnError::Abort)?,
        ..WriteOptions::default()
    };
    let added = tenant
        .0
        .add_index(
            &table,
            &request.column,
            &request.embedding,
            metric,
            request.name.as_deref(),
            &options,
            &(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(added)))
}

/// `GET /v1/tables/{table}/indexes`: the live indexes of a table.
#[utoipa::path(
    get,
    path = "/v1/tables/{table}/indexes",
    tag = "indexes",
    security(("api_key" = [])),
    params(("table" = String, Path, description = "The table")),
    responses(
        (status = 200, description = "The table's indexes, by name", body = Vec<IndexInfo>),
        (status = 404, description = "No table of the tenant has the name (code `not_found`)",
         body = ErrorBody),
    )
)]
pub(in crate::server) async fn list_indexes(
    Extension(tenant): Extension<TenantTables>,
    Path(table): Path<String>,
) -> Result<Json<Vec<IndexInfo>>, ApiError> {
    Ok(Json(tenant.0.list_indexes(Some(&table)).await?))
}

/// `GET /v1/indexes`: the live indexes of every table of the tenant.
#[utoipa::path(
    get,
    path = "/v1/indexes",
    tag = "indexes",
    security(("api_key" = [])),
    responses((status = 200, description = "The indexes, by table and name",
               body = Vec<IndexInfo>))
)]
pub(in crate::server) async fn list_all_indexes(
    Extension(tenant): Extension<TenantTables>,
) -> Result<Json<Vec<IndexInfo>>, ApiError> {
    Ok(Json(tenant.0.list_indexes(None).await?))
}

/// `DELETE /v1/tables/{table}/indexes/{index}`: drops an index and its
/// vector column, as a new version. Earlier versions keep the column.
#[utoipa::path(
    delete,
    path = "/v1/tables/{table}/indexes/{index}",
    tag = "indexes",
    security(("api_key" = [])),
    params(
        ("table" = String, Path, description = "The table"),
        ("index" = String, Path, description = "The index"),
    ),
    responses(
        (status = 200, description = "The index and its column were dropped",
         body = WriteSummary),
        (status = 404, description = "No table of the tenant has the name, or it has no such \
                                      index (code `not_found`)",
         body = ErrorBody),
    )
)]
pub(in crate::server) async fn drop_index(
    Extension(tenant): Extension<TenantTables>,
    Path((table, index)): Path<(String, String)>,
) -> Result<Json<WriteSummary>, ApiError> {
    Ok(Json(tenant.0.drop_index(&table, &index).await?))
}
