//! The OpenAPI document, generated from the handlers' annotations.

use utoipa::OpenApi;

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "Tether API", description = "A compatible subset of the JumpCloud v1/v2 API, plus Tether's own endpoints."),
    paths(
        routes::misc::health, routes::misc::get_settings, routes::misc::put_settings,
        routes::misc::list_api_keys, routes::misc::create_api_key, routes::misc::delete_api_key, routes::misc::verify, routes::misc::notifications,
        routes::users::list, routes::users::search, routes::users::get, routes::users::create, routes::users::update,
        routes::users::delete, routes::users::activate, routes::users::unlock, routes::users::expire,
        routes::users::bulk, routes::users::bulk_results, routes::users::history, routes::groups::history,
        routes::groups::list, routes::groups::create, routes::groups::get, routes::groups::update, routes::groups::delete,
        routes::groups::members, routes::groups::change_members, routes::groups::membership, routes::groups::member_of,
        routes::groups::associations, routes::groups::change_associations,
        routes::ad::list, routes::ad::create, routes::ad::get, routes::ad::patch, routes::ad::delete,
        routes::ad::list_agents, routes::ad::create_agent, routes::ad::get_agent, routes::ad::delete_agent,
        routes::ad::pause_agent, routes::ad::resume_agent, routes::ad::associations, routes::ad::change_associations,
        routes::ad::users, routes::ad::usergroups, routes::decommission::plan, routes::ad::plan, routes::ad::plan_approve, routes::ad::plan_reject,
    ),
    components(schemas(crate::error::ErrorBody)),
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
