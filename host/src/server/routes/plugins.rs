//! `/v1/plugins`: add, list, show, call and remove plugins.

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ApiJson, ApiQuery};
use crate::catalog::call::{CallReport, argument_columns, find_function, row_arguments, run_batch};
use crate::catalog::{AddedPlugin, InvalidReference, PluginDetails, PluginEntry, PluginRef};
use crate::sandbox::CallError;
use crate::server::error::ErrorBody;
use crate::server::{ApiError, TenantTables};
use crate::table::TableError;

/// Parses the `{plugin}` of a path.
fn parse_reference(text: &str) -> Result<PluginRef, ApiError> {
    text.parse()
        .map_err(|error: InvalidReference| ApiError::invalid(error.to_string()))
}

/// `GET /v1/plugins`: every stored version of the tenant's plugins.
#[utoipa::path(
    get,
    path = "/v1/plugins",
    tag = "plugins",
    security(("api_key" = [])),
    responses((status = 200, description = "The versions, by name and version",
               body = Vec<PluginEntry>))
)]
pub(in crate::server) async fn list_plugins(
    Extension(tenant): Extension<TenantTables>,
) -> Result<Json<Vec<PluginEntry>>, ApiError> {
    let plugins = tenant
        .0
        .catalog()
        .list_plugins(tenant.0.tenant())
        .await
        .map_err(TableError::from)?;
    Ok(Json(plugins))
}

/// The query of `POST /v1/plugins`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(in crate::server) struct AddPlugin {
    /// The catalog name; the name the component describes by default.
    name: Option<String>,
}

/// A WebAssembly component, as the body of `POST /v1/plugins`.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub(in crate::server) struct Component(#[allow(dead_code)] Vec<u8>);

/// `POST /v1/plugins`: validates the component in the body and stores it as
/// the next catalog version of its name.
#[utoipa::path(
    post,
    path = "/v1/plugins",
    tag = "plugins",
    security(("api_key" = [])),
    params(AddPlugin),
    request_body(content = Component, content_type = "application/wasm",
                 description = "The component, up to the engine's maximum component size"),
    responses(
        (status = 201, description = "A new version was stored", body = AddedPlugin),
        (status = 200, description = "The name already holds these bytes; nothing was added",
         body = AddedPlugin),
        (status = 400, description = "The component does not load, or a bad name (code \
                                      `invalid`)",
         body = ErrorBody),
        (status = 413, description = "The component is over the maximum size (code \
                                      `too_large`)",
         body = ErrorBody),
    )
)]
pub(in crate::server) async fn add_plugin(
    Extension(tenant): Extension<TenantTables>,
    ApiQuery(query): ApiQuery<AddPlugin>,
    body: Body,
) -> Result<(StatusCode, Json<AddedPlugin>), ApiError> {
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
    Ok((status, Json(added)))
}

/// `GET /v1/plugins/{plugin}`: one version with its functions, the limits
/// they run under, its grants and pools.
#[utoipa::path(
    get,
    path = "/v1/plugins/{plugin}",
    tag = "plugins",
    security(("api_key" = [])),
    params(("plugin" = String, Path,
            description = "`NAME`, `NAME@VERSION` or `NAME@SHA256-PREFIX`; the latest version \
                           by default")),
    responses(
        (status = 200, description = "The version", body = PluginDetails),
        (status = 400, description = "A bad reference (code `invalid`)", body = ErrorBody),
        (status = 404, description = "No version of the tenant's matches (code `not_found`)",
         body = ErrorBody),
    )
)]
pub(in crate::server) async fn show_plugin(
    Extension(tenant): Extension<TenantTables>,
    Path(plugin): Path<String>,
) -> Result<Json<PluginDetails>, ApiError> {
    let reference = parse_reference(&plugin)?;
    let tables = tenant.0;
    let details = tables
        .catalog()
        .plugin_details(
            tables.tenant(),
            &reference,
            &tables.engine().config().policy,
        )
        .await
        .map_err(TableError::from)?;
    Ok(Json(details))
}

/// The query of `DELETE /v1/plugins/{plugin}`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(in crate::server) struct RemovePlugin {
    /// Remove every version of the name.
    #[serde(default)]
    all_versions: bool,
}

/// The body of `DELETE /v1/plugins/{plugin}`.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct PluginsRemoved {
    /// The versions removed.
    pub removed: Vec<PluginEntry>,
}

/// `DELETE /v1/plugins/{plugin}`: removes `NAME@VERSION`, or every version
/// of `NAME` with `all_versions=true`.
#[utoipa::path(
    delete,
    path = "/v1/plugins/{plugin}",
    tag = "plugins",
    security(("api_key" = [])),
    params(("plugin" = String, Path,
            description = "`NAME@VERSION`, `NAME@SHA256-PREFIX`, or `NAME` with \
                           `all_versions=true`"),
           RemovePlugin),
    responses(
        (status = 200, description = "The versions removed", body = PluginsRemoved),
        (status = 400, description = "A bad reference or query string (code `invalid`)",
         body = ErrorBody),
        (status = 404, description = "No version of the tenant's matches (code `not_found`)",
         body = ErrorBody),
        (status = 409, description = "A computed column uses the version (code `conflict`)",
         body = ErrorBody),
    )
)]
pub(in crate::server) async fn remove_plugin(
    Extension(tenant): Extension<TenantTables>,
    Path(plugin): Path<String>,
    ApiQuery(query): ApiQuery<RemovePlugin>,
) -> Result<Json<PluginsRemoved>, ApiError> {
    let reference = parse_reference(&plugin)?;
    let removed = tenant
        .0
        .catalog()
        .remove_plugin(tenant.0.tenant(), &reference, query.all_versions)
        .await
        .map_err(TableError::from)?;
    Ok(Json(PluginsRemoved { removed }))
}

/// The body of `POST /v1/plugins/{plugin}/call`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(in crate::server) struct CallPlugin {
    /// The function, such as `upper`.
    function: String,
    /// The batch's rows: each an array of arguments in parameter order, an
    /// object keyed by parameter name, or, for a function of one
    /// parameter, the argument itself. Values are JSON as `insert` reads
    /// them.
    #[schema(value_type = Vec<Object>)]
    rows: Vec<Value>,
}

/// `POST /v1/plugins/{plugin}/call`: runs one batch through a function
/// under the usual limits.
#[utoipa::path(
    post,
    path = "/v1/plugins/{plugin}/call",
    tag = "plugins",
    security(("api_key" = [])),
    params(("plugin" = String, Path,
            description = "`NAME`, `NAME@VERSION` or `NAME@SHA256-PREFIX`; the latest version \
                           by default")),
    request_body = CallPlugin,
    responses(
        (status = 200, description = "Each row's value or error, and the timing records",
         body = CallReport),
        (status = 400, description = "A bad reference, no rows, or arguments that do not fit \
                                      the parameters (code `invalid`)",
         body = ErrorBody),
        (status = 404, description = "No version of the tenant's matches, or it has no such \
                                      function (code `not_found`)",
         body = ErrorBody),
        (status = 413, description = "The body is over 2 MiB (code `too_large`)",
         body = ErrorBody),
    )
)]
pub(in crate::server) async fn call_plugin(
    Extension(tenant): Extension<TenantTables>,
    Path(plugin): Path<String>,
    ApiJson(request): ApiJson<CallPlugin>,
) -> Result<Json<CallReport>, ApiError> {
    let reference = parse_reference(&plugin)?;
    if request.rows.is_empty() {
        return Err(ApiError::invalid(
            "`rows` is empty; give at least one row of arguments",
        ));
    }
    let tables = tenant.0;
    let (entry, loaded, context) = tables
        .catalog()
        .load_plugin(tables.engine(), tables.tenant(), &reference)
        .await
        .map_err(TableError::from)?;
    let function = find_function(&entry, &request.function)
        .map_err(|message| ApiError::new(StatusCode::NOT_FOUND, "not_found", message))?
        .clone();
    let rows = request
        .rows
        .into_iter()
        .enumerate()
        .map(|(index, row)| {
            row_arguments(&function, row)
                .map_err(|message| ApiError::invalid(format!("row {index} {message}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let columns = argument_columns(&function, &rows).map_err(ApiError::invalid)?;
    let output = run_batch(
        tables.engine(),
        &loaded,
        &context,
        &function.name,
        columns,
        rows.len(),
    )
    .await
    .map_err(|error| match error {
        // A spent fuel budget gets 429 with `Retry-After`, and a host
        // failure 500, as on the table routes.
        CallError::FuelQuota { .. } | CallError::Host { .. } => {
            ApiError::from(TableError::Call(error))
        }
        error => ApiError::invalid(crate::error_chain(&error)),
    })?;
    Ok(Json(CallReport::new(&entry, &function.name, &output)))
}
