//! The one table of public error codes: each maps to an HTTP status and a stable
//! machine-readable `status` string. Every error the API returns goes through here, as
//! `{"code": <http status>, "message": "...", "status": "<REASON>"}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tether_core::CoreError;
use tether_store::StoreError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    InvalidJson,
    InvalidField,
    InvalidFilter,
    UnknownField,
    InvalidState,
    MissingApiKey,
    InvalidApiKey,
    Forbidden,
    NotFound,
    Duplicate,
    Conflict,
    RestrictedField,
    PasswordPolicy,
    PasswordAuthority,
    NotAllowed,
    Internal,
}

impl Code {
    /// HTTP status and public reason of each code.
    pub fn info(self) -> (StatusCode, &'static str) {
        use Code::*;
        match self {
            InvalidJson => (StatusCode::BAD_REQUEST, "INVALID_JSON"),
            InvalidField => (StatusCode::BAD_REQUEST, "INVALID_FIELD"),
            InvalidFilter => (StatusCode::BAD_REQUEST, "INVALID_FILTER"),
            UnknownField => (StatusCode::BAD_REQUEST, "UNKNOWN_FIELD"),
            InvalidState => (StatusCode::BAD_REQUEST, "INVALID_STATE"),
            MissingApiKey => (StatusCode::UNAUTHORIZED, "MISSING_API_KEY"),
            InvalidApiKey => (StatusCode::UNAUTHORIZED, "INVALID_API_KEY"),
            Forbidden => (StatusCode::FORBIDDEN, "FORBIDDEN"),
            NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            Duplicate => (StatusCode::CONFLICT, "DUPLICATE"),
            Conflict => (StatusCode::CONFLICT, "CONFLICT"),
            RestrictedField => (StatusCode::UNPROCESSABLE_ENTITY, "RESTRICTED_FIELD"),
            PasswordPolicy => (StatusCode::UNPROCESSABLE_ENTITY, "PASSWORD_POLICY"),
            PasswordAuthority => (StatusCode::UNPROCESSABLE_ENTITY, "PASSWORD_AUTHORITY"),
            NotAllowed => (StatusCode::UNPROCESSABLE_ENTITY, "NOT_ALLOWED"),
            Internal => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
        }
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The HTTP status.
    pub code: u16,
    pub message: String,
    /// Machine-readable reason, e.g. `RESTRICTED_FIELD`.
    pub status: &'static str,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into() }
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(Code::NotFound, format!("{what} `{id}` not found"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, reason) = self.code.info();
        if status.is_server_error() {
            tracing::error!(message = %self.message, "internal error");
        }
        let body = ErrorBody { code: status.as_u16(), message: self.message, status: reason };
        (status, axum::Json(body)).into_response()
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let code = match &e {
            CoreError::InvalidField { .. } => Code::InvalidField,
            CoreError::RestrictedField { .. } => Code::RestrictedField,
            CoreError::PasswordAuthority => Code::PasswordAuthority,
            CoreError::PasswordPolicy(_) => Code::PasswordPolicy,
            CoreError::InvalidState(_) => Code::InvalidState,
            CoreError::UnknownField(_) => Code::UnknownField,
            CoreError::InvalidFilter(_) => Code::InvalidFilter,
            CoreError::NotAllowed(_) => Code::NotAllowed,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } => ApiError::new(Code::Duplicate, e.to_string()),
            other => ApiError::new(Code::Internal, other.to_string()),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
