//! Every route, in one place.

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use portico_app::App;

use crate::api::{auth, catalog, health, scaffolder};

/// The application router: Backstage's API under `/api`, health under `/.backstage`.
/// The UI (`portico_ui`) serves every other path.
pub fn router(app: Arc<App>, ui: portico_ui::UiOptions, auth: Arc<portico_auth::Auth>) -> Router {
    let catalog = Router::new()
        .route("/entities", get(catalog::list_entities))
        .route("/entities/by-query", get(catalog::query_entities).post(catalog::query_entities_by_predicate))
        .route(
            "/entities/by-uid/{uid}",
            get(catalog::get_entity_by_uid).delete(catalog::delete_entity_by_uid),
        )
        .route("/entities/by-name/{kind}/{namespace}/{name}", get(catalog::get_entity_by_name))
        .route("/entities/by-name/{kind}/{namespace}/{name}/ancestry", get(catalog::get_entity_ancestry))
        .route("/entities/by-refs", post(catalog::get_entities_by_refs))
        .route("/entity-facets", get(catalog::get_entity_facets).post(catalog::post_entity_facets))
        .route("/refresh", post(catalog::refresh_entity))
        .route("/validate-entity", post(catalog::validate_entity))
        .route("/analyze-location", post(catalog::analyze_location))
        .route("/locations", get(catalog::list_locations).post(catalog::create_location))
        .route("/locations/by-query", post(catalog::query_locations))
        .route(
            "/locations/{id}",
            get(catalog::get_location).put(catalog::update_location).delete(catalog::delete_location),
        )
        .route("/locations/by-entity/{kind}/{namespace}/{name}", get(catalog::get_location_by_entity))
        .route("/openapi.json", get(catalog::get_openapi))
        .route("/.backstage/auth/v1/cookie", crate::api::auth::cookie_route("catalog"))
        .route(
            "/.well-known/backstage/permissions/apply-conditions",
            post(crate::api::permission::apply_conditions),
        )
        .route("/.well-known/backstage/permissions/metadata", get(crate::api::permission::metadata));
    let auth_routes = Router::new()
        .route("/{provider}/refresh", get(auth::refresh).post(auth::refresh))
        .route("/{provider}/start", get(crate::api::oauth::start))
        .route(
            "/{provider}/handler/frame",
            get(crate::api::oauth::handler_frame).post(crate::api::oauth::handler_frame),
        )
        .route("/{provider}/logout", post(crate::api::oauth::logout))
        .route("/.well-known/jwks.json", get(auth::jwks))
        .route("/.well-known/openid-configuration", get(auth::openid_configuration))
        .route("/v1/userinfo", get(auth::userinfo))
        .route("/v1/token", get(auth::token).post(auth::token))
        .route("/.backstage/auth/v1/cookie", auth::cookie_route("auth"))
        .with_state(auth::AuthState { app: app.clone(), auth: auth.clone() });
    let audit_app = app.clone();
    let audit_routes = Router::new().route("/events", get(crate::api::audit::events)).with_state(app.clone());
    let permission_routes = Router::new()
        .route("/authorize", post(crate::api::permission::authorize))
        .route("/.backstage/auth/v1/cookie", crate::api::auth::cookie_route("permission"))
        .route(
            "/policy",
            get(crate::api::permission::get_policy)
                .put(crate::api::permission::put_policy)
                .delete(crate::api::permission::delete_policy),
        )
        .with_state(app.clone());
    let scaffolder = Router::new()
        .route("/v2/templates/{namespace}/{kind}/{name}/parameter-schema", get(scaffolder::parameter_schema))
        .route("/v2/actions", get(scaffolder::list_actions))
        .route("/v2/tasks", get(scaffolder::list_tasks).post(scaffolder::create_task))
        .route("/v2/tasks/{id}", get(scaffolder::get_task))
        .route("/v2/tasks/{id}/eventstream", get(scaffolder::event_stream))
        .route("/v2/tasks/{id}/events", get(scaffolder::events))
        .route("/v2/tasks/{id}/cancel", post(scaffolder::cancel_task))
        .route("/v2/tasks/{id}/retry", post(scaffolder::retry_task))
        .route("/v2/dry-run", post(scaffolder::dry_run))
        .route("/v2/templating-extensions", get(scaffolder::templating_extensions))
        .route("/.backstage/auth/v1/cookie", crate::api::auth::cookie_route("scaffolder"))
        .route(
            "/.well-known/backstage/permissions/metadata",
            get(crate::api::permission::scaffolder_metadata),
        )
        .with_state(app.clone());
    let api = Router::new()
        .nest("/api/catalog", catalog)
        .nest("/api/scaffolder", scaffolder)
        .nest("/api/audit", audit_routes)
        .nest("/api/permission", permission_routes);
    let router = Router::new()
        .merge(api)
        .route("/.backstage/health/v1/readiness", get(health::readiness))
        .route("/.backstage/health/v1/liveness", get(health::liveness))
        .with_state(app.clone())
        .nest("/api/auth", auth_routes)
        .merge(portico_ui::router(app, ui, auth.clone()))
        .layer(axum::Extension(auth.clone()));
    crate::middleware::layer(router, audit_app, auth)
}
