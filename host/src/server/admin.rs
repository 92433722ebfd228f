//! The operator routes, which take the admin key from `sandtable admin
//! rotate-key` as `Authorization: Bearer KEY`: tenants, `/metrics` in
//! Prometheus's text format, and the resource monitor's figures that the
//! dashboard plots.
//!
//! A request without a key, or with a key that is neither the admin key nor
//! a tenant's, gets 401; a tenant's key gets 403. Both have the API's error
//! body.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::routes::ApiJson;
use super::{ApiError, AppState};
use crate::catalog::{AdminKeyCheck, CatalogError};
use crate::table::TableError;

/// The content type of Prometheus's text exposition format, version 0.0.4.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Returns the operator routes; [`authenticate_admin`] guards them.
pub(super) fn admin_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/tenants", get(list_tenants).post(create_tenant))
        .route("/v1/tenants/{name}", delete(remove_tenant))
        .route("/v1/tenants/{name}/rotate-key", post(rotate_key))
        .route("/v1/admin/metrics.json", get(monitor_report))
        .route("/metrics", get(prometheus_metrics))
}

/// Lets a request with the admin key through, and rejects any other with
/// 401, or with 403 for a tenant's key.
pub(super) async fn authenticate_admin(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let key = match bearer_key(request.headers()) {
        Ok(key) => key.to_owned(),
        Err(error) => return error.into_response(),
    };
    let check = match state.catalog.check_admin_key(&key).await {
        Ok(AdminKeyCheck::Valid) => return next.run(request).await,
        Ok(check) => check,
        Err(error) => return catalog_error(error).into_response(),
    };
    let error = match state.catalog.authenticate(&key).await {
        Ok(tenant) => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "the key is tenant `{}`'s API key, which does not open the operator routes; send \
                 the admin key from `sandtable admin rotate-key`",
                tenant.name
            ),
        ),
        Err(CatalogError::UnknownKey) if check == AdminKeyCheck::Unset => ApiError::unauthorized(
            "the server has no admin key yet; make one with `sandtable admin rotate-key`",
        ),
        Err(CatalogError::UnknownKey) => ApiError::unauthorized(
            "the admin key is not valid; `sandtable admin rotate-key` makes a new one",
        ),
        Err(error) => catalog_error(error),
    };
    error.into_response()
}

/// Checks whether `key` is the admin key, so that a client that sent it to
/// a tenant route learns what went wrong. A failed lookup counts as no.
pub(super) async fn is_admin_key(state: &AppState, key: &str) -> bool {
    matches!(
        state.catalog.check_admin_key(key).await,
        Ok(AdminKeyCheck::Valid)
    )
}

/// Returns the 403 of a tenant route that got the admin key.
pub(super) fn admin_key_on_tenant_route() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "the admin key opens the operator routes only; send a tenant's API key, which \
         `sandtable tenant create NAME` prints",
    )
}

/// Returns the key of a `Bearer` Authorization header, or a 401.
fn bearer_key(headers: &HeaderMap) -> Result<&str, ApiError> {
    let header = headers.get(AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized("the request has no admin key; send `Authorization: Bearer KEY`")
    })?;
    // The scheme's name is case-insensitive (RFC 9110).
    header
        .to_str()
        .ok()
        .and_then(|value| {
            let (scheme, key) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(key.trim())
        })
        .ok_or_else(|| {
            ApiError::unauthorized(
                "the Authorization header is not `Bearer KEY`; send the admin key after `Bearer `",
            )
        })
}

fn catalog_error(error: CatalogError) -> ApiError {
    ApiError::from(TableError::from(error))
}

/// Marks a response that carries a key as one that no cache may keep.
fn no_store(body: Json<Value>) -> impl IntoResponse {
    (
        [(CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        body,
    )
}

async fn list_tenants(State(state): State<Arc<AppState>>) -> Result<Json<Value>, ApiError> {
    let tenants = state.catalog.list_tenants().await.map_err(catalog_error)?;
    Ok(Json(json!(tenants)))
}

/// The body of `POST /v1/tenants`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTenant {
    name: String,
}

async fn create_tenant(
    State(state): State<Arc<AppState>>,
    ApiJson(request): ApiJson<CreateTenant>,
) -> Result<impl IntoResponse, ApiError> {
    let created = state
        .catalog
        .create_tenant(&request.name)
        .await
        .map_err(catalog_error)?;
    let body = Json(json!({
        "name": created.tenant.name,
        "schema_name": created.tenant.schema_name,
        "api_key": created.api_key,
    }));
    Ok((StatusCode::CREATED, no_store(body)))
}

async fn remove_tenant(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let tenant = state.catalog.tenant(&name).await.map_err(catalog_error)?;
    // The tenant's pool logs in as the role that the removal drops, so it
    // closes first. A request that still uses a connection ends with it.
    let tables = state
        .tenants
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&tenant.id);
    state
        .limiters
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&tenant.id);
    state
        .permits
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&tenant.id);
    if let Some(tables) = tables {
        tables.catalog().pool().close().await;
    }
    state
        .catalog
        .remove_tenant(&name)
        .await
        .map_err(catalog_error)?;
    Ok(Json(json!({"removed": name})))
}

async fn rotate_key(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let key = state
        .catalog
        .rotate_key(&name)
        .await
        .map_err(catalog_error)?;
    Ok(no_store(Json(json!({"name": name, "api_key": key}))))
}

/// `GET /v1/admin/metrics.json`: the resource monitor's samples and alerts.
async fn monitor_report(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!(state.monitor.report()))
}

/// `GET /metrics`: every series in Prometheus's text format.
async fn prometheus_metrics(State(state): State<Arc<AppState>>) -> Response {
    match &state.metrics {
        Ok(handle) => ([(CONTENT_TYPE, PROMETHEUS_TEXT)], handle.render()).into_response(),
        Err(reason) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{reason}; the process has another metrics recorder"),
        )
        .into_response(),
    }
}
