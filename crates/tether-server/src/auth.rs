//! Who is calling: administrators by `x-api-key`, agents by bearer token. Keys and tokens
//! are random 256-bit values; only their SHA-256 is stored (they carry full entropy, so a
//! slow hash adds nothing and would cost every request). User passwords are argon2id.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::Method;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tether_store::{Collection, Secret};

use crate::error::{ApiError, Code};
use crate::AppState;

/// Random hex of `bytes` bytes from the OS.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random source works");
    hex::encode(buf)
}

/// A new object id: 24 hex digits.
pub fn new_id() -> String {
    random_hex(12)
}

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Roles of API keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Admin,
    /// GET only.
    ReadOnly,
}

/// A stored API key (the key itself is only ever shown at creation).
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created: String,
}

/// An authenticated administrator request. Read-only keys pass only for GET/HEAD.
pub struct Admin(pub ApiKey);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let key = parts
            .headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::new(Code::MissingApiKey, "missing x-api-key header"))?;
        let owner = state.repo.store().secret_owner(Secret::ApiKey, &sha256_hex(key)).await?;
        let Some(owner) = owner else {
            return Err(ApiError::new(Code::InvalidApiKey, "invalid API key"));
        };
        let key: ApiKey = state
            .repo
            .get(Collection::ApiKeys, &owner)
            .await?
            .ok_or_else(|| ApiError::new(Code::InvalidApiKey, "invalid API key"))?;
        let reading = parts.method == Method::GET || parts.method == Method::HEAD;
        if key.role == Role::ReadOnly && !reading {
            return Err(ApiError::new(Code::Forbidden, "this API key is read-only"));
        }
        Ok(Admin(key))
    }
}

/// Creates an API key; returns the stored record and the key (shown once).
pub async fn create_api_key(
    state: &AppState,
    name: &str,
    role: Role,
    key: Option<&str>,
) -> Result<(ApiKey, String), ApiError> {
    let key = key.map(str::to_string).unwrap_or_else(|| format!("tk_{}", random_hex(32)));
    let rec = ApiKey { id: new_id(), name: name.to_string(), role, created: state.now_str() };
    let store = state.repo.store();
    store.put_secret(&rec.id, Secret::ApiKey, Some(&sha256_hex(&key))).await?;
    let body = serde_json::to_value(&rec).expect("serializes");
    store.insert(Collection::ApiKeys, &tether_store::Doc { id: rec.id.clone(), key1: None, key2: None, body }).await?;
    Ok((rec, key))
}

/// Hashes a user password with argon2id (off the async threads: it is slow on purpose).
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
        let salt = SaltString::generate(&mut OsRng);
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::new(Code::Internal, format!("hashing failed: {e}")))
    })
    .await
    .map_err(|e| ApiError::new(Code::Internal, e.to_string()))?
}

/// Verifies a password against a stored hash: argon2id (Tether's own), or a SHA-512 crypt
/// hash (`$6$…`) captured from AD on a domain controller. `Ok(true)` means the password is
/// right and the hash should be replaced by an argon2id one.
pub async fn verify_password(password: String, hash: String) -> bool {
    check_password(password, hash).await.is_some()
}

/// Like [`verify_password`]; `Some(rehash)` when it matches, where `rehash` says the stored
/// hash is of a captured kind that should be upgraded to argon2id now.
pub async fn check_password(password: String, hash: String) -> Option<bool> {
    tokio::task::spawn_blocking(move || {
        if let Some(crypt) = hash.strip_prefix("{CRYPT}").or(Some(hash.as_str())).filter(|h| h.starts_with("$6$")) {
            return sha_crypt::sha512_check(&password, crypt).is_ok().then_some(true);
        }
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        let parsed = PasswordHash::new(&hash).ok()?;
        argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok().then_some(false)
    })
    .await
    .ok()
    .flatten()
}
