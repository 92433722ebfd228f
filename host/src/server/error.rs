//! The API's one error body and the status code of each failure.

use axum::Json;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::catalog::CatalogError;
use crate::sandbox::{CallError, retry_after_secs};
use crate::table::TableError;

/// The body of every error response.
#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The fields of an error body.
#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable name for the failure: `invalid`, `unauthorized`,
    /// `not_found`, `method_not_allowed`, `conflict`, `too_large`,
    /// `cell_failed`, `quota` or `internal`.
    pub code: String,
    /// What failed, on which value, and what to do next.
    pub message: String,
    /// Fields of the failure, such as the `row` and `column` of a rejected
    /// input value; empty for most errors.
    #[schema(value_type = Object)]
    pub details: Value,
}

/// An error response: a status code and the body
/// `{"error": {"code", "message", "details"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Boxed, so that results with this error stay small.
    details: Box<Value>,
    /// Seconds for the `Retry-After` header.
    retry_after: Option<u64>,
}

impl ApiError {
    /// Returns an error with an empty `details`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Box::new(json!({})),
            retry_after: None,
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
        self.details = Box::new(details);
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
            TableError::RowsQuota { .. } => ApiError::new(StatusCode::FORBIDDEN, "quota", message),
            TableError::Call(CallError::FuelQuota {
                ref retry_after, ..
            }) => {
                let mut error = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "quota", message);
                error.retry_after = Some(retry_after_secs(retry_after));
                error
            }
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
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                details: *self.details,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
