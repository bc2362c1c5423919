//! Administrators' API keys: the stored record (the key itself is shown once, at
//! creation, and kept only as its SHA-256) and the one-time bootstrap key of a new install.

use serde::{Deserialize, Serialize};
use tether_store::{Collection, Secret};

use crate::crypto::{new_id, random_hex, sha256_hex};
use crate::error::ApiError;
use crate::state::AppState;

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
    store
        .insert(
            Collection::ApiKeys,
            &tether_store::Doc { version: None, id: rec.id.clone(), key1: None, key2: None, body },
        )
        .await?;
    Ok((rec, key))
}

/// Creates, once, an administrator key with the given value if no administrator key exists
/// yet. Returns whether it created one.
pub async fn bootstrap_api_key(state: &AppState, key: &str) -> Result<bool, crate::error::ApiError> {
    let q = tether_core::query::ListQuery { limit: usize::MAX >> 1, ..Default::default() };
    let (_, keys): (u64, Vec<ApiKey>) = state.repo.list(tether_store::Collection::ApiKeys, &q).await?;
    if keys.iter().any(|k| k.role == Role::Admin) {
        return Ok(false);
    }
    create_api_key(state, "bootstrap", Role::Admin, Some(key)).await?;
    Ok(true)
}
