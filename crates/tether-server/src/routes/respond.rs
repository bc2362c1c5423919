//! How an operation's error reaches an HTTP client: its code's status and the public body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::ApiError;

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The HTTP status.
    pub code: u16,
    pub message: String,
    /// Machine-readable reason, e.g. `RESTRICTED_FIELD`.
    pub status: &'static str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, reason) = self.code.info();
        let status = StatusCode::from_u16(status).expect("the table holds valid statuses");
        if status.is_server_error() {
            tracing::error!(message = %self.message, "internal error");
        }
        let body = ErrorBody { code: status.as_u16(), message: self.message, status: reason };
        (status, axum::Json(body)).into_response()
    }
}
