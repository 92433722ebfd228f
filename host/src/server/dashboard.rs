//! `/dashboard`: a page that plots the resource monitor's figures.
//!
//! The page, its script and its style sheet are compiled into the binary,
//! and load nothing from elsewhere. The script reads the admin key from the
//! URL's fragment (`/dashboard#key=KEY`), which browsers never send to the
//! server, so the key stays out of request logs. It then polls
//! `/v1/admin/metrics.json` with the key and draws SVG line plots. The
//! page itself needs no key, since it contains no data.

use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::response::IntoResponse;
use axum::routing::get;

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

/// Scripts, styles and requests come from the server itself only, so an
/// injected tag could neither run inline code nor send the key elsewhere.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
                      frame-ancestors 'none'";

/// Returns the dashboard's routes, which need no key.
pub(super) fn routes() -> Router {
    Router::new()
        .route(
            "/dashboard",
            get(|| serve(PAGE, "text/html; charset=utf-8")),
        )
        .route(
            "/dashboard/dashboard.js",
            get(|| serve(SCRIPT, "text/javascript; charset=utf-8")),
        )
        .route(
            "/dashboard/dashboard.css",
            get(|| serve(STYLE, "text/css; charset=utf-8")),
        )
}

async fn serve(body: &'static str, content_type: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY)),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
}
