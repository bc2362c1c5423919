//! The one table of public error codes, and the error every operation returns. It knows no
//! transport: each code carries its HTTP status and a stable machine-readable reason, and
//! each front end maps an error to its own answer in one place (HTTP: `routes::respond`, as
//! `{"code": <http status>, "message": "...", "status": "<REASON>"}`).

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
    /// The object changed since it was read; reading it again and retrying is safe.
    Stale,
    /// An incremental import report whose base is not what tetherd holds.
    StaleBase,
    RestrictedField,
    PasswordPolicy,
    PasswordAuthority,
    NotAllowed,
    Internal,
}

impl Code {
    /// HTTP status and public reason of each code.
    pub fn info(self) -> (u16, &'static str) {
        use Code::*;
        match self {
            InvalidJson => (400, "INVALID_JSON"),
            InvalidField => (400, "INVALID_FIELD"),
            InvalidFilter => (400, "INVALID_FILTER"),
            UnknownField => (400, "UNKNOWN_FIELD"),
            InvalidState => (400, "INVALID_STATE"),
            MissingApiKey => (401, "MISSING_API_KEY"),
            InvalidApiKey => (401, "INVALID_API_KEY"),
            Forbidden => (403, "FORBIDDEN"),
            NotFound => (404, "NOT_FOUND"),
            Duplicate => (409, "DUPLICATE"),
            Conflict => (409, "CONFLICT"),
            Stale => (409, "STALE"),
            StaleBase => (412, "STALE_BASE"),
            RestrictedField => (422, "RESTRICTED_FIELD"),
            PasswordPolicy => (422, "PASSWORD_POLICY"),
            PasswordAuthority => (422, "PASSWORD_AUTHORITY"),
            NotAllowed => (422, "NOT_ALLOWED"),
            Internal => (500, "INTERNAL"),
        }
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into() }
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(Code::NotFound, format!("{what} `{id}` not found"))
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
            StoreError::Stale { .. } => ApiError::new(Code::Stale, e.to_string()),
            other => ApiError::new(Code::Internal, other.to_string()),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// How many times an operation runs when the documents it read keep changing before it writes.
const ATTEMPTS: u32 = 8;

/// Runs `attempt` (read, decide, write) again while its write finds that a document changed
/// since it was read (`STALE`: another request, agent or tetherd wrote it meanwhile), so the
/// decision is always made on the current document; past `ATTEMPTS` the caller gets 409.
/// Between tries it pauses a random time that doubles its bound each try (≤ 1, 2, … 64 ms):
/// two writers that keep colliding (an admin's change and an agent's heartbeats on a busy
/// machine) fall out of step instead of losing to each other every time.
pub async fn retrying<T, F, Fut>(mut attempt: F) -> ApiResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ApiResult<T>>,
{
    let mut n = 1;
    loop {
        match attempt().await {
            Err(e) if e.code == Code::Stale && n < ATTEMPTS => {
                tracing::debug!(attempt = n, "a document changed meanwhile; read again");
                tokio::time::sleep(pause_before_retry(n)).await;
                n += 1;
            }
            r => return r,
        }
    }
}

/// A random pause of up to 2^(n-1) ms before try n + 1.
fn pause_before_retry(n: u32) -> std::time::Duration {
    let mut b = [0u8; 2];
    getrandom::fill(&mut b).expect("the OS random source works");
    let bound_us = 1000u64 << (n - 1).min(6);
    std::time::Duration::from_micros(u64::from(u16::from_le_bytes(b)) * bound_us / u64::from(u16::MAX))
}
