//! `/v1/snapshots`: pin, list and drop table versions.

use axum::Json;
use axum::extract::{Extension, Path};
use axum::http::StatusCode;
use serde::Deserialize;

use super::{ApiJson, Dropped};
use crate::server::error::ErrorBody;
use crate::server::{ApiError, TenantTables};
use crate::table::SnapshotInfo;

/// The body of `POST /v1/snapshots`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(in crate::server) struct CreateSnapshot {
    /// The snapshot's name, which tables and snapshots share.
    name: String,
    /// The table.
    table: String,
    /// The version to pin; the latest by default.
    version: Option<i64>,
}

/// `POST /v1/snapshots`: pins a table version under a name.
#[utoipa::path(
    post,
    path = "/v1/snapshots",
    tag = "snapshots",
    security(("api_key" = [])),
    request_body = CreateSnapshot,
    responses(
        (status = 201, description = "The new snapshot", body = SnapshotInfo),
        (status = 400, description = "A bad name or body (code `invalid`)", body = ErrorBody),
        (status = 404, description = "No table of the tenant has the name, or it has no such \
                                      version (code `not_found`)",
         body = ErrorBody),
        (status = 409, description = "A table or snapshot has the name (code `conflict`)",
         body = ErrorBody),
    )
)]
pub(in crate::server) async fn create_snapshot(
    Extension(tenant): Extension<TenantTables>,
    ApiJson(request): ApiJson<CreateSnapshot>,
) -> Result<(StatusCode, Json<SnapshotInfo>), ApiError> {
    let snapshot = tenant
        .0
        .create_snapshot(&request.name, &request.table, request.version)
        .await?;
    Ok((StatusCode::CREATED, Json(snapshot)))
}

/// `GET /v1/snapshots`: the tenant's snapshots.
#[utoipa::path(
    get,
    path = "/v1/snapshots",
    tag = "snapshots",
    security(("api_key" = [])),
    responses((status = 200, description = "The snapshots, by name", body = Vec<SnapshotInfo>))
)]
pub(in crate::server) async fn list_snapshots(
    Extension(tenant): Extension<TenantTables>,
) -> Result<Json<Vec<SnapshotInfo>>, ApiError> {
    Ok(Json(tenant.0.list_snapshots().await?))
}

/// `DELETE /v1/snapshots/{snapshot}`: drops a snapshot; its table keeps
/// every version.
#[utoipa::path(
    delete,
    path = "/v1/snapshots/{snapshot}",
    tag = "snapshots",
    security(("api_key" = [])),
    params(("snapshot" = String, Path, description = "The snapshot's name")),
    responses(
        (status = 200, description = "The snapshot was dropped", body = Dropped),
        (status = 404, description = "No snapshot of the tenant has the name (code \
                                      `not_found`)",
         body = ErrorBody),
    )
)]
pub(in crate::server) async fn drop_snapshot(
    Extension(tenant): Extension<TenantTables>,
    Path(snapshot): Path<String>,
) -> Result<Json<Dropped>, ApiError> {
    tenant.0.drop_snapshot(&snapshot).await?;
    Ok(Json(Dropped { dropped: snapshot }))
}
