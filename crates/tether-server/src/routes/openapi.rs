//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::OpenApi;

use axum::response::{IntoResponse, Response};

#[derive(OpenApi)]
#[openapi(
    info(title = "Tether API", description = "A compatible subset of the JumpCloud v1/v2 API, plus Tether's own endpoints."),
    paths(
        super::misc::health, super::misc::get_settings, super::misc::put_settings,
        super::misc::list_api_keys, super::misc::create_api_key, super::misc::delete_api_key, super::misc::verify, super::misc::notifications,
        super::users::list, super::users::search, super::users::get, super::users::create, super::users::update,
        super::users::delete, super::users::activate, super::users::unlock, super::users::expire, super::users::reset_mfa,
        super::users::bulk, super::users::bulk_results, super::users::history, super::groups::history,
        super::groups::list, super::groups::create, super::groups::get, super::groups::update, super::groups::delete,
        super::groups::members, super::groups::change_members, super::groups::membership, super::groups::member_of,
        super::groups::associations, super::groups::change_associations,
        super::ad::list, super::ad::create, super::ad::get, super::ad::patch, super::ad::delete,
        super::ad::list_agents, super::ad::create_agent, super::ad::get_agent, super::ad::delete_agent,
        super::ad::pause_agent, super::ad::resume_agent, super::ad::associations, super::ad::change_associations,
        super::ad::users, super::ad::usergroups, super::decommission::plan, super::ad::plan, super::ad::plan_approve, super::ad::plan_reject,
        super::ldap::list, super::ldap::get, super::ldap::patch, super::ldap::associations,
        super::ldap::change_associations, super::ldap::users, super::ldap::usergroups,
        super::radius::list, super::radius::create, super::radius::get, super::radius::update, super::radius::delete,
        super::radius::associations, super::radius::change_associations, super::radius::users, super::radius::usergroups,
    ),
    components(schemas(super::respond::ErrorBody)),
    modifiers(&ApiKeyScheme),
    security(("api_key" = []))
)]
struct ApiDoc;

struct ApiKeyScheme;

impl utoipa::Modify for ApiKeyScheme {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
        let c = api.components.get_or_insert_with(Default::default);
        c.add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))));
    }
}

/// The document as JSON text.
pub fn openapi_json() -> String {
    ApiDoc::openapi().to_json().expect("the OpenAPI document serializes")
}

/// `GET /api/openapi.json`.
pub async fn handler() -> Response {
    ([("content-type", "application/json")], openapi_json()).into_response()
}
