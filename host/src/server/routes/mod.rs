//! The API's routes, one module a noun, and the OpenAPI document that
//! `utoipa` builds from their `#[utoipa::path]` attributes.

mod columns;
mod indexes;
mod plugins;
mod rows;
mod snapshots;
mod tables;

pub use plugins::PluginsRemoved;
pub use rows::{DEFAULT_SELECT_LIMIT, RowsPage, SearchFound};
pub use tables::TableDropped;

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, FromRequest, Query, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::OpenApi as _;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ErrorBody;
use super::{ApiError, AppState};
use crate::sandbox::Column;
use crate::table::OutputColumn;
use crate::table::values::cell_json;

/// The path of the OpenAPI document.
pub const OPENAPI_PATH: &str = "/v1/openapi.json";

/// The name of the security scheme of tenants' API keys in the document.
const API_KEY_SCHEME: &str = "api_key";

/// The document's fixed parts; the paths come from the routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Sandtable",
        description = "Tables in Postgres whose computed columns are filled by sandboxed \
                       WebAssembly plugins. Every route but `/v1/health` and \
                       `/v1/openapi.json` needs a tenant's API key as `Authorization: Bearer \
                       KEY`, and runs as that tenant's Postgres role.",
        license(name = "Apache-2.0")
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerKey),
    tags(
        (name = "tables", description = "Create, describe, drop and revert tables"),
        (name = "rows", description = "Select, insert, update, delete and search rows"),
        (name = "columns", description = "Computed columns"),
        (name = "indexes", description = "Embedding indexes"),
        (name = "snapshots", description = "Pinned table versions"),
        (name = "plugins", description = "Plugins in the catalog"),
        (name = "service", description = "The server itself")
    )
)]
struct ApiDoc;

/// Adds the bearer scheme of tenants' API keys to the document.
struct BearerKey;

impl utoipa::Modify for BearerKey {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "A tenant's API key, as `sandtable tenant create NAME` prints it.",
            ))
            .build();
        components.add_security_scheme(API_KEY_SCHEME, SecurityScheme::Http(scheme));
    }
}

/// Returns the routes that need a tenant, with their part of the document.
pub(super) fn tenant_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(tables::list_tables, tables::create_table))
        .routes(routes!(tables::describe_table, tables::drop_table))
        .routes(routes!(tables::history))
        .routes(routes!(tables::revert))
        .routes(routes!(
            rows::select_rows,
            rows::insert_rows,
            rows::update_rows,
            rows::delete_rows
        ))
        .routes(routes!(rows::search))
        .routes(routes!(columns::add_column))
        .routes(routes!(columns::recompute))
        .routes(routes!(columns::upgrade_column))
        .routes(routes!(indexes::list_all_indexes))
        .routes(routes!(indexes::list_indexes, indexes::add_index))
        .routes(routes!(indexes::drop_index))
        .routes(routes!(
            snapshots::list_snapshots,
            snapshots::create_snapshot
        ))
        .routes(routes!(snapshots::drop_snapshot))
        .routes(routes!(plugins::list_plugins, plugins::add_plugin))
        .routes(routes!(plugins::show_plugin, plugins::remove_plugin))
        .routes(routes!(plugins::call_plugin))
}

/// Returns the routes that need no key, with their part of the document.
pub(super) fn public_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(openapi_document))
}

/// Completes the document of every route: each operation that needs a key
/// gets the responses that authentication and quotas add to it, and the
/// host's own failure.
pub(super) fn finish_document(openapi: &mut OpenApi) {
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            add_common_responses(operation);
        }
    }
}

fn add_common_responses(operation: &mut Operation) {
    let keyed = operation.security.is_some();
    let mut common = vec![(
        "500",
        "The server failed; its log has the details (code `internal`)",
    )];
    if keyed {
        common.push((
            "401",
            "No API key, or one that is not valid (code `unauthorized`)",
        ));
        common.push((
            "429",
            "The tenant is over its quota of requests a minute; `Retry-After` gives the seconds \
             to wait (code `quota`)",
        ));
    }
    for (status, description) in common {
        let response = ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert(response.into());
    }
}

/// The OpenAPI document as JSON, made once when the router is built.
#[derive(Clone)]
pub(super) struct OpenApiJson(pub Arc<str>);

/// `GET /v1/health`: whether the server is up.
#[utoipa::path(
    get,
    path = "/v1/health",
    tag = "service",
    responses((status = 200, description = "The server is up: `{\"status\": \"ok\"}`",
               body = Object))
)]
pub(super) async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /v1/openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "service",
    responses((status = 200, description = "The OpenAPI 3.1 document of every route",
               body = Object))
)]
pub(super) async fn openapi_document(Extension(document): Extension<OpenApiJson>) -> Response {
    (
        [(CONTENT_TYPE, "application/json")],
        document.0.as_ref().to_owned(),
    )
        .into_response()
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

/// A JSON request body parsed into `T`, or the API's error body: 413
/// `too_large` past axum's default limit of 2 MiB, 400 `invalid` naming
/// what did not fit otherwise. An empty body reads as `{}`.
pub(super) struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                let status = rejection.status();
                let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    "too_large"
                } else {
                    "invalid"
                };
                ApiError::new(
                    status,
                    code,
                    format!(
                        "the request body could not be read: {}",
                        rejection.body_text()
                    ),
                )
            })?;
        let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
        serde_json::from_slice(bytes)
            .map(ApiJson)
            .map_err(|error| ApiError::invalid(format!("the request body is not valid: {error}")))
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

/// Parses the value of key `key` by the names the CLI takes for it, or
/// returns `default` when the key is missing.
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

/// The body of a route that removes an object by name.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Dropped {
    /// The name of what was removed.
    dropped: String,
}
