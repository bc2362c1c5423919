//! The HTTP transport of the API: the route table; handlers live in one module per resource
//! and translate requests to operations (`crate::ops`) or the ADI engine (`crate::adi`).

pub(crate) mod ad;
pub(crate) mod agent_api;
pub(crate) mod decommission;
pub mod extract;
pub(crate) mod groups;
pub(crate) mod ldap;
pub(crate) mod misc;
pub(crate) mod openapi;
pub(crate) mod radius;
pub(crate) mod respond;
pub(crate) mod shapes;
pub(crate) mod users;

use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

/// The API's routes; `not_found` answers the rest.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(misc::health))
        .route("/metrics", get(misc::metrics))
        .route("/api/openapi.json", get(openapi::handler))
        .route("/api/settings", get(misc::get_settings).put(misc::put_settings))
        .route("/api/v2/apikeys", get(misc::list_api_keys).post(misc::create_api_key))
        .route("/api/v2/notifications", get(misc::notifications))
        .route("/api/v2/apikeys/{id}", axum::routing::delete(misc::delete_api_key))
        .route("/api/v2/auth/verify", post(misc::verify))
        // users (v1)
        .route("/api/systemusers", get(users::list).post(users::create))
        .route("/api/systemusers/{id}", get(users::get).put(users::update).patch(users::update).delete(users::delete))
        .route("/api/search/systemusers", post(users::search))
        .route("/api/systemusers/{id}/state/activate", post(users::activate))
        .route("/api/systemusers/{id}/unlock", post(users::unlock))
        .route("/api/systemusers/{id}/resetmfa", post(users::reset_mfa))
        .route("/api/systemusers/{id}/expire", post(users::expire))
        .route("/api/v2/bulk/users", axum::routing::patch(users::bulk))
        .route("/api/v2/bulk/users/{job}/results", get(users::bulk_results))
        .route("/api/v2/users/{id}/memberof", get(groups::member_of))
        .route("/api/v2/users/{id}/history", get(users::history))
        .route("/api/v2/usergroups/{id}/history", get(groups::history))
        // groups (v2)
        .route("/api/v2/usergroups", get(groups::list).post(groups::create))
        .route(
            "/api/v2/usergroups/{id}",
            get(groups::get).put(groups::update).patch(groups::update).delete(groups::delete),
        )
        .route("/api/v2/usergroups/{id}/members", get(groups::members).post(groups::change_members))
        .route("/api/v2/usergroups/{id}/membership", get(groups::membership))
        .route("/api/v2/usergroups/{id}/associations", get(groups::associations).post(groups::change_associations))
        // the LDAP server (v2)
        .route("/api/v2/ldapservers", get(ldap::list))
        .route("/api/v2/ldapservers/{id}", get(ldap::get).patch(ldap::patch))
        .route("/api/v2/ldapservers/{id}/associations", get(ldap::associations).post(ldap::change_associations))
        .route("/api/v2/ldapservers/{id}/users", get(ldap::users))
        .route("/api/v2/ldapservers/{id}/usergroups", get(ldap::usergroups))
        // RADIUS servers (v1) and their associations (v2)
        .route("/api/radiusservers", get(radius::list).post(radius::create))
        .route("/api/radiusservers/{id}", get(radius::get).put(radius::update).delete(radius::delete))
        .route("/api/v2/radiusservers/{id}/associations", get(radius::associations).post(radius::change_associations))
        .route("/api/v2/radiusservers/{id}/users", get(radius::users))
        .route("/api/v2/radiusservers/{id}/usergroups", get(radius::usergroups))
        // Active Directory domains and agents (v2)
        .route("/api/v2/activedirectories", get(ad::list).post(ad::create))
        .route("/api/v2/activedirectories/{id}", get(ad::get).patch(ad::patch).delete(ad::delete))
        .route("/api/v2/activedirectories/{id}/agents", get(ad::list_agents).post(ad::create_agent))
        .route("/api/v2/activedirectories/{id}/agents/{agent}", get(ad::get_agent).delete(ad::delete_agent))
        .route("/api/v2/activedirectories/{id}/agents/{agent}/pause", post(ad::pause_agent))
        .route("/api/v2/activedirectories/{id}/agents/{agent}/resume", post(ad::resume_agent))
        .route("/api/v2/activedirectories/{id}/associations", get(ad::associations).post(ad::change_associations))
        .route("/api/v2/activedirectories/{id}/users", get(ad::users))
        .route("/api/v2/activedirectories/{id}/usergroups", get(ad::usergroups))
        .route("/api/v2/activedirectories/{id}/plan", get(ad::plan))
        .route("/api/v2/activedirectories/{id}/decommission", get(decommission::plan))
        .route("/api/v2/activedirectories/{id}/plan/approve", post(ad::plan_approve))
        .route("/api/v2/activedirectories/{id}/plan/reject", post(ad::plan_reject))
        // the agent protocol
        .route("/api/agent/v1/register", post(agent_api::register))
        .route("/api/agent/v1/heartbeat", post(agent_api::heartbeat))
        .route(
            "/api/agent/v1/import",
            post(agent_api::import).layer(axum::extract::DefaultBodyLimit::max(agent_api::MAX_REPORT_BYTES)),
        )
        .route("/api/agent/v1/auth/poll", post(agent_api::auth_poll))
        .route("/api/agent/v1/passwords", post(agent_api::passwords))
        .route("/api/agent/v1/sync/poll", post(agent_api::sync_poll))
        .route("/api/agent/v1/sync/ack", post(agent_api::sync_ack))
        .route("/api/agent/v1/sync/status", post(agent_api::sync_status))
        .route("/api/agent/v1/auth/result", post(agent_api::auth_result))
}

pub use misc::not_found;
