//! `/v1/tables`: create, list, describe, drop and revert tables, and list
//! their versions.

use axum::Json;
use axum::extract::{Extension, Path};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{ApiJson, ApiQuery};
use crate::server::error::ErrorBody;
use crate::server::{ApiError, TenantTables};
use crate::table::{NewColumn, TableDetails, TableError, TableSummary, VersionEntry};

/// `GET /v1/tables`: the tenant's tables.
#[utoipa::path(
    get,
    path = "/v1/tables",
    tag = "tables",
    security(("api_key" = [])),
    responses((status = 200, description = "The tables, by name", body = Vec<TableSummary>))
)]
pub(in crate::server) async fn list_tables(
    Extension(tenant): Extension<TenantTables>,
) -> Result<Json<Vec<TableSummary>>, ApiError> {
    Ok(Json(tenant.0.list_tables().await?))
}

/// The body of `POST /v1/tables`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(in crate::server) struct CreateTable {
    /// The table's name.
    name: String,
    /// Columns as `NAME:TYPE`, such as `title:string`; types are bool, int,
    /// float, string, bytes, json, timestamp and vector(N).
    columns: Vec<String>,
}

/// `POST /v1/tables`: creates an empty table, version 0.
#[utoipa::path(
    post,
    path = "/v1/tables",
    tag = "tables",
    security(("api_key" = [])),
    request_body = CreateTable,
    responses(
        (status = 201, description = "The new table", body = TableDetails),
        (status = 400, description = "A bad name, type or body (code `invalid`)",
         body = ErrorBody),
        (status = 409, description = "A table or snapshot has the name (code `conflict`)",
         body = ErrorBody),
    )
)]
pub(in crate::server) async fn create_table(
    Extension(tenant): Extension<TenantTables>,
    ApiJson(request): ApiJson<CreateTable>,
) -> Result<(StatusCode, Json<TableDetails>), ApiError> {
    let columns = request
        .columns
        .iter()
        .map(|spec| NewColumn::parse(spec))
        .collect::<Result<Vec<_>, TableError>>()?;
    tenant.0.create_table(&request.name, &columns).await?;
    let details = tenant.0.describe_table(&request.name).await?;
    Ok((StatusCode::CREATED, Json(details)))
}

/// `GET /v1/tables/{table}`: a table's columns, row count and version.
#[utoipa::path(
    get,
    path = "/v1/tables/{table}",
    tag = "tables",
    security(("api_key" = [])),
    params(("table" = String, Path, description = "The table's name")),
    responses(
        (status = 200, description = "The table", body = TableDetails),
        (status = 404, description = "No table of the tenant has the name (code `not_found`)",
         body = ErrorBody),
    )
)]
pub(in crate::server) async fn describe_table(
    Extension(tenant): Extension<TenantTables>,
    Path(table): Path<String>,
) -> Result<Json<TableDetails>, ApiError> {
    Ok(Json(tenant.0.describe_table(&table).await?))
}

/// The query of `DELETE /v1/tables/{table}`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(in crate::server) struct DropTable {
    /// Drop the table's snapshots too; without it, a table with snapshots
    /// is not dropped.
    #[serde(default)]
    with_snapshots: bool,
}

/// The body of `DELETE /v1/tables/{table}`.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct TableDropped {
    /// The table dropped.
    pub dropped: String,
    /// The snapshots dropped with it.
    pub snapshots_dropped: Vec<String>,
}

/// `DELETE /v1/tables/{table}`: drops a table.
#[utoipa::path(
    delete,
    path = "/v1/tables/{table}",
    tag = "tables",
    security(("api_key" = [])),
    params(("table" = String, Path, description = "The table's name"), DropTable),
    responses(
        (status = 200, description = "The table was dropped", body = TableDropped),
        (status = 400, description = "A bad query string (code `invalid`)", body = ErrorBody),
        (status = 404, description = "No table of the tenant has the name (code `not_found`)",
         body = ErrorBody),
        (status = 409, description = "Snapshots depend on the table; pass \
                                      `with_snapshots=true` (code `conflict`)",
         body = ErrorBody),
    )
)]
pub(in crate::server) async fn drop_table(
    Extension(tenant): Extension<TenantTables>,
    Path(table): Path<String>,
    ApiQuery(query): ApiQuery<DropTable>,
) -> Result<Json<TableDropped>, ApiError> {
    let snapshots = tenant.0.drop_table(&table, query.with_snapshots).await?;
    Ok(Json(TableDropped {
        dropped: table,
        snapshots_dropped: snapshots,
    }))
}

/// `GET /v1/tables/{table}/history`: the table's versions.
#[utoipa::path(
    get,
    path = "/v1/tables/{table}/history",
    tag = "tables",
    security(("api_key" = [])),
    params(("table" = String, Path, description = "The table's name")),
    responses(
        (status = 200, description = "The versions, oldest first", body = Vec<VersionEntry>),
        (status = 404, description = "No table of the tenant has the name (code `not_found`)",
         body = ErrorBody),
    )
)]
pub(in crate::server) async fn history(
    Extension(tenant): Extension<TenantTables>,
    Path(table): Path<String>,
) -> Result<Json<Vec<VersionEntry>>, ApiError> {
    Ok(Json(tenant.0.history(&table).await?))
}

/// `POST /v1/tables/{table}/revert`: undoes the table's latest version.
#[utoipa::path(
    post,
    path = "/v1/tables/{table}/revert",
    tag = "tables",
    security(("api_key" = [])),
    params(("table" = String, Path, description = "The table's name")),
    responses(
        (status = 200, description = "The version undone", body = VersionEntry),
        (status = 400, description = "The table is at version 0, which cannot be undone \
                                      (code `invalid`)",
         body = ErrorBody),
        (status = 404, description = "No table of the tenant has the name (code `not_found`)",
         body = ErrorBody),
        (status = 409, description = "A snapshot pins the latest version (code `conflict`)",
         body = ErrorBody),
    )
)]
pub(in crate::server) async fn revert(
    Extension(tenant): Extension<TenantTables>,
    Path(table): Path<String>,
) -> Result<Json<VersionEntry>, ApiError> {
    Ok(Json(tenant.0.revert(&table).await?))
}
