//! The API's one error body and the status code of each failure.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::catalog::CatalogError;
use crate::table::TableError;

/// An error response: a status code and the body
/// `{"error": {"code", "message", "details"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Value,
}

impl ApiError {
    /// Returns an error with an empty `details`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: json!({}),
        }
    }

    /// Returns a 401 for a missing or unknown API key.
    pub fn unauthorized(message: &str) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// Returns a 400 for a request that does not parse.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

impl From<TableError> for ApiError {
    fn from(error: TableError) -> Self {
        let message = crate::error_chain(&error);
        match error {
            TableError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            TableError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            TableError::Invalid(_) | TableError::Parse(_) => ApiError::invalid(message),
            TableError::Input(input) => ApiError::invalid(message)
                .with_details(json!({"row": input.row, "column": input.column})),
            TableError::CellFailed(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "cell_failed", message)
            }
            TableError::Catalog(
                CatalogError::PluginNotFound { .. } | CatalogError::TenantNotFound(_),
            ) => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            TableError::Catalog(CatalogError::PluginInUse { .. }) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            TableError::Catalog(
                CatalogError::InvalidTenant(_)
                | CatalogError::AmbiguousReference { .. }
                | CatalogError::ConflictingRemoval { .. }
                | CatalogError::UndeclaredDirectory { .. }
                | CatalogError::UndeclaredHost { .. }
                | CatalogError::GrantNotDirectory { .. }
                | CatalogError::GrantMoved { .. },
            ) => ApiError::invalid(message),
            error => {
                // The host's own failures keep their detail in the log only.
                tracing::error!(error = crate::error_chain(&error), "request failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the server failed; its log has the details",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {"code": self.code, "message": self.message, "details": self.details}
        });
        (self.status, Json(body)).into_response()
    }
}
