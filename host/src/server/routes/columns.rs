//! `/v1/tables/{table}/columns`: add computed columns, compute them again,
//! and move them to other plugin versions.

use axum::Json;
use axum::extract::{Extension, Path};
use axum::http::StatusCode;
use serde::Deserialize;

use super::{ApiJson, parse_choice};
use crate::server::error::ErrorBody;
use crate::server::{ApiError, TenantTables};
use crate::table::{ColumnAdded, OnError, WriteOptions, WriteSummary};

/// The body of `POST /v1/tables/{table}/columns`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(in crate::server) struct AddColumn {
    /// The new column's name.
    name: String,
    /// `PLUGIN.FUNCTION(COLUMN, ...)`, such as `text.upper(title)`.
    expression: String,
    /// What a failed computed cell does: `abort` (the default) or `ignore`.
    #[schema(value_type = Option<OnError>)]
    on_error: Option<String>,
}

/// Returns the write options of a request's `on_error`.
fn write_options(on_error: Option<&str>) -> Result<WriteOptions, ApiError> {
    Ok(WriteOptions {
        on_error: parse_choice("on_error", on_error, OnError::Abort)?,
        ..WriteOptions::default()
    })
}

/// `POST /v1/tables/{table}/columns`: adds a computed column and fills it,
/// as one new version.
#[utoipa::path(
    post,
    path = "/v1/tables/{table}/columns",
    tag = "columns",
    security(("api_key" = [])),
    params(("table" = String, Path, description = "The table")),
    request_body = AddColumn,
    responses(
        (status = 201, description = "The column was added and computed", body = ColumnAdded),
        (status = 400, description = "A bad name or expression, or types that do not match \
                                      (code `invalid`)",
         body = ErrorBody),
        (status = 404, description = "No table of the tenant has the name, or no such column \
                                      or plugin (code `not_found`)",
         body = ErrorBody),
        (status = 409, description = "The table has a column of the name (code `conflict`)",
         body = ErrorBody),
        (status = 422, description = "A computed cell failed under `on_error=abort` (code \
                                      `cell_failed`)",
         body = ErrorBody),
    )
)]
pub(in crate::server) async fn add_column(
    Extension(tenant): Extension<TenantTables>,
    Path(table): Path<String>,
    ApiJson(request): ApiJson<AddColumn>,
) -> Result<(StatusCode, Json<ColumnAdded>), ApiError> {
    let options = write_options(request.on_error.as_deref())?;
    let added = tenant
        .0
        .add_computed_column(&table, &request.name, &request.expression, &options, &())
        .await?;
    Ok((StatusCode::CREATED, Json(added)))
}

/// The body of `POST /v1/tables/{table}/columns/{column}/recompute`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(in crate::server) struct Recompute {
    /// Compute again only the cells that failed.
    #[serde(default)]
    errors_only: bool,
    /// What a failed computed cell does: `abort` (the default) or `ignore`.
    #[schema(value_type = Option<OnError>)]
    on_error: Option<String>,
}

/// `POST /v1/tables/{table}/columns/{column}/recompute`: computes a column
/// again, with the columns computed from it, as one new version.
#[utoipa::path(
    post,
    path = "/v1/tables/{table}/columns/{column}/recompute",
    tag = "columns",
    security(("api_key" = [])),
    params(
        ("table" = String, Path, description = "The table"),
        ("column" = String, Path, description = "The computed column"),
    ),
    request_body(content = Recompute, description = "Optional; an empty body takes the \
                                                     defaults"),
    responses(
        (status = 200, description = "The column was computed again", body = WriteSummary),
        (status = 400, description = "The column is not computed, or a bad body (code \
                                      `invalid`)",
         body = ErrorBody),
        (status = 404, description = "No table of the tenant has the name, or no such column \
                                      (code `not_found`)",
         body = ErrorBody),
        (status = 422, description = "A computed cell failed under `on_error=abort` (code \
                                      `cell_failed`)",
         body = ErrorBody),
    )
)]
pub(in crate::server) async fn recompute(
    Extension(tenant): Extension<TenantTables>,
    Path((table, column)): Path<(String, String)>,
    ApiJson(request): ApiJson<Recompute>,
) -> Result<Json<WriteSummary>, ApiError> {
    let options = write_options(request.on_error.as_deref())?;
    let summary = tenant
        .0
        .recompute(&table, &column, request.errors_only, &options, &())
        .await?;
    Ok(Json(summary))
}

/// The body of `POST /v1/tables/{table}/columns/{column}/upgrade`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(in crate::server) struct Upgrade {
    /// The plugin version to move to, as a catalog version or a sha256
    /// prefix; each plugin's latest by default.
    to: Option<String>,
    /// What a failed computed cell does: `abort` (the default) or `ignore`.
    #[schema(value_type = Option<OnError>)]
    on_error: Option<String>,
}

/// `POST /v1/tables/{table}/columns/{column}/upgrade`: moves a computed
/// column to another plugin version and computes it again, as one new
/// version.
#[utoipa::path(
    post,
    path = "/v1/tables/{table}/columns/{column}/upgrade",
    tag = "columns",
    security(("api_key" = [])),
    params(
        ("table" = String, Path, description = "The table"),
        ("column" = String, Path, description = "The computed column"),
    ),
    request_body(content = Upgrade, description = "Optional; an empty body moves each \
                                                   plugin to its latest version"),
    responses(
        (status = 200, description = "The column was moved and computed again; the table's \
                                      history names the expressions before and after",
         body = WriteSummary),
        (status = 400, description = "The column is not computed, nothing would change, or \
                                      the new version returns another type (code `invalid`)",
         body = ErrorBody),
        (status = 404, description = "No table of the tenant has the name, or no such column \
                                      or plugin version (code `not_found`)",
         body = ErrorBody),
        (status = 422, description = "A computed cell failed under `on_error=abort` (code \
                                      `cell_failed`)",
         body = ErrorBody),
    )
)]
pub(in crate::server) async fn upgrade_column(
    Extension(tenant): Extension<TenantTables>,
    Path((table, column)): Path<(String, String)>,
    ApiJson(request): ApiJson<Upgrade>,
) -> Result<Json<WriteSummary>, ApiError> {
    let options = write_options(request.on_error.as_deref())?;
    let summary = tenant
        .0
        .upgrade_column(&table, &column, request.to.as_deref(), &options, &())
        .await?;
    Ok(Json(summary))
}
