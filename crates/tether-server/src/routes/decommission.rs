//! `GET /api/v2/activedirectories/{id}/decommission`: the read-only plan of retiring AD
//! (`ops::decommission`).

use axum::extract::{Path, State};
use axum::Json;

use super::extract::Admin;
use crate::error::ApiResult;
use crate::ops::decommission::{self, DecommissionPlan};
use crate::state::AppState;

#[utoipa::path(get, path = "/api/v2/activedirectories/{id}/decommission", tag = "activedirectories",
    responses((status = 200, description = "{configuration, agents, usersAtRisk, restrictedUsers, steps}")))]
pub async fn plan(_: Admin, State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<DecommissionPlan>> {
    Ok(Json(decommission::plan(&s, &id).await?))
}
