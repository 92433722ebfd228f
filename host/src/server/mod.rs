//! `sandtable serve`: an HTTP JSON API over the tenants' tables.
//!
//! Every request under `/v1/` other than `/v1/health` and
//! `/v1/openapi.json` carries a tenant's API key as `Authorization: Bearer
//! KEY`. The key picks the tenant, and the
//! request runs on that tenant's `Tables`, whose connections log in as the
//! tenant's own Postgres role. A request for another tenant's table
//! therefore gets exactly the response a missing table gets, because the
//! tenant's role cannot see it.
//!
//! Each tenant may send as many requests a minute as its quota in the
//! configuration allows (`[quotas]`); past that, requests get 429 with
//! `Retry-After`. Errors have one body,
//! `{"error": {"code", "message", "details"}}`. Every
//! request is logged at the end (target `sandtable::api`): method, path,
//! tenant, status and latency, and counted in the Prometheus metrics.
//!
//! `utoipa` builds the OpenAPI document, served at `/v1/openapi.json`,
//! from each handler's `#[utoipa::path]` attribute. The routes are
//! registered through `utoipa_axum::routes!`, which adds a handler to the
//! router and its attribute to the document in one step.
//!
//! The operator routes (tenants, `/metrics`, the resource monitor's
//! figures) take the admin key instead; see `admin`. `/dashboard` serves a
//! page that plots those figures.

mod admin;
mod dashboard;
mod error;
mod routes;

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use governor::clock::Clock as _;
use governor::{DefaultDirectRateLimiter, Quota};
use tokio::sync::{Notify, Semaphore};

pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use routes::{
    DEFAULT_SELECT_LIMIT, OPENAPI_PATH, PluginsRemoved, RowsPage, SearchFound, TableDropped,
};

use crate::catalog::{Catalog, CatalogError, Tenant};
use crate::sandbox::UdfEngine;
use crate::table::Tables;
use crate::telemetry::metrics;
use crate::telemetry::monitor::Monitor;

/// The state that every request handler shares: the catalog as the host's
/// role, the engine, and the tables of each tenant that sent a request.
struct AppState {
    catalog: Catalog,
    engine: UdfEngine,
    tenants: Mutex<HashMap<i64, Tables>>,
    /// Each tenant's limiter of API requests a minute, from its quotas.
    limiters: Mutex<HashMap<i64, Arc<DefaultDirectRateLimiter>>>,
    /// Each tenant's permits for requests in flight; see
    /// [`MAX_TENANT_REQUESTS`].
    permits: Mutex<HashMap<i64, Arc<Semaphore>>>,
    /// The resource monitor, which samples while the router lives.
    monitor: Arc<Monitor>,
    /// The process's Prometheus recorder, or why it could not be installed.
    metrics: Result<&'static metrics_exporter_prometheus::PrometheusHandle, String>,
}

/// The requests of one tenant that run at once; later ones wait in turn.
/// A request may hold a connection of the tenant's pool while it takes
/// another (a write loads its plugins, a text search embeds), so requests
/// that outnumber the pool could each hold one and all wait for a second.
/// Four requests use at most a few connections each, within the pool's
/// [`TENANT_MAX_CONNECTIONS`](crate::catalog::TENANT_MAX_CONNECTIONS).
pub const MAX_TENANT_REQUESTS: usize = 4;

/// The tenant a request authenticated as, with its tables.
#[derive(Clone)]
struct TenantTables(Tables);

/// Returns the API's router over `catalog`, opened as the host's own role,
/// and `engine`.
///
/// It installs the process's Prometheus recorder on first use, and starts
/// a resource monitor with the `[monitor]` settings of the catalog's
/// configuration, which samples on the current tokio runtime until the
/// router is dropped.
pub fn router(catalog: Catalog, engine: UdfEngine) -> Router {
    let metrics = metrics::install();
    if let Err(reason) = &metrics {
        tracing::warn!(%reason, "/metrics is unavailable");
    }
    let monitor = Monitor::start(catalog.pools().config().monitor.clone(), &engine);
    let state = Arc::new(AppState {
        catalog,
        engine,
        tenants: Mutex::default(),
        limiters: Mutex::default(),
        permits: Mutex::default(),
        monitor,
        metrics,
    });
    let (tenant_routes, mut document) = routes::tenant_routes().split_for_parts();
    let (public_routes, public_document) = routes::public_routes().split_for_parts();
    document.merge(public_document);
    routes::finish_document(&mut document);
    let document = document
        .to_json()
        .expect("the OpenAPI document serializes to JSON");
    let tenant_routes = tenant_routes
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state.clone());
    let public_routes = public_routes
        .layer(axum::Extension(routes::OpenApiJson(document.into())))
        .with_state(state.clone());
    let admin_routes = admin::admin_routes()
        .layer(middleware::from_fn_with_state(
            state.clone(),
            admin::authenticate_admin,
        ))
        .with_state(state.clone());
    Router::new()
        .merge(public_routes)
        .merge(tenant_routes)
        .merge(admin_routes)
        .merge(dashboard::routes())
        .fallback(routes::no_route)
        .method_not_allowed_fallback(routes::no_method)
        .layer(middleware::from_fn(log_request))
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the
/// requests in flight finish for up to `grace`. Past it, it returns and
/// leaves the rest to end with the process, and the inserts among them,
/// whose connections close, roll back.
///
/// # Errors
///
/// Fails when accepting connections fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let stopping = Arc::new(Notify::new());
    let signal = {
        let stopping = stopping.clone();
        async move {
            shutdown.await;
            stopping.notify_one();
        }
    };
    let server = axum::serve(listener, router).with_graceful_shutdown(signal);
    tokio::select! {
        result = server.into_future() => result,
        () = async {
            stopping.notified().await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(
                grace_s = grace.as_secs_f64(),
                "requests still running past the shutdown grace are dropped"
            );
            Ok(())
        }
    }
}

/// Finds the tenant of the request's API key and hands its tables to the
/// handler.
async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(header) = request.headers().get(AUTHORIZATION) else {
        return ApiError::unauthorized(
            "the request has no API key; send `Authorization: Bearer KEY`",
        )
        .into_response();
    };
    // The scheme's name is case-insensitive (RFC 9110).
    let Some(key) = header.to_str().ok().and_then(|value| {
        let (scheme, key) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then_some(key)
    }) else {
        return ApiError::unauthorized(
            "the Authorization header is not `Bearer KEY`; send the tenant's API key after \
             `Bearer `",
        )
        .into_response();
    };
    let tenant = match state.catalog.authenticate(key.trim()).await {
        Ok(tenant) => tenant,
        Err(CatalogError::UnknownKey) if admin::is_admin_key(&state, key.trim()).await => {
            return admin::admin_key_on_tenant_route().into_response();
        }
        Err(CatalogError::UnknownKey) => {
            return ApiError::unauthorized(
                "the API key is not valid; `sandtable tenant rotate-key NAME` makes a new one",
            )
            .into_response();
        }
        Err(error) => return ApiError::from(crate::table::TableError::from(error)).into_response(),
    };
    if let Err(wait) = request_limiter(&state, &tenant).check() {
        let wait = wait.wait_time_from(governor::clock::DefaultClock::default().now());
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let quota = state
            .catalog
            .pools()
            .config()
            .tenant_quotas(&tenant.name)
            .requests_per_minute;
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "quota",
            format!(
                "tenant `{}` is over its quota of {quota} API requests a minute; retry after \
                 {seconds} s",
                tenant.name
            ),
        )
        .into_response();
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        response.extensions_mut().insert(tenant);
        return response;
    }
    let tables = match tenant_tables(&state, &tenant).await {
        Ok(tables) => tables,
        Err(error) => return error.into_response(),
    };
    let permits = state
        .permits
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(tenant.id)
        .or_insert_with(|| Arc::new(Semaphore::new(MAX_TENANT_REQUESTS)))
        .clone();
    let _permit = permits
        .acquire_owned()
        .await
        .expect("the semaphore is never closed");
    request.extensions_mut().insert(TenantTables(tables));
    let mut response = next.run(request).await;
    response.extensions_mut().insert(tenant);
    response
}

/// Returns the tables of `tenant`, opening its pool on its first request.
async fn tenant_tables(state: &AppState, tenant: &Tenant) -> Result<Tables, ApiError> {
    if let Some(tables) = state
        .tenants
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&tenant.id)
    {
        return Ok(tables.clone());
    }
    let catalog = state
        .catalog
        .for_tenant(tenant)
        .await
        .map_err(crate::table::TableError::from)?;
    let tables = Tables::new(catalog, state.engine.clone(), tenant.clone());
    let mut tenants = state.tenants.lock().unwrap_or_else(|e| e.into_inner());
    Ok(tenants.entry(tenant.id).or_insert(tables).clone())
}

/// Returns the limiter of `tenant`'s API requests, made on its first
/// request from the quotas of the configuration.
fn request_limiter(state: &AppState, tenant: &Tenant) -> Arc<DefaultDirectRateLimiter> {
    let mut limiters = state.limiters.lock().unwrap_or_else(|e| e.into_inner());
    limiters
        .entry(tenant.id)
        .or_insert_with(|| {
            let quotas = state.catalog.pools().config().tenant_quotas(&tenant.name);
            let rate = NonZeroU32::new(quotas.requests_per_minute).unwrap_or(NonZeroU32::MIN);
            Arc::new(DefaultDirectRateLimiter::direct(Quota::per_minute(rate)))
        })
        .clone()
}

/// Logs and counts each request when its response is ready.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|route| route.as_str().to_owned());
    let response = next.run(request).await;
    let tenant = response
        .extensions()
        .get::<Tenant>()
        .map_or("-", |tenant| tenant.name.as_str());
    tracing::info!(
        target: "sandtable::api",
        %method,
        path,
        tenant,
        status = response.status().as_u16(),
        latency_us = started.elapsed().as_micros() as u64,
        "request"
    );
    metrics::record_request(
        method.as_str(),
        route.as_deref().unwrap_or("unmatched"),
        response.status().as_u16(),
        tenant,
        started.elapsed(),
    );
    response
}
