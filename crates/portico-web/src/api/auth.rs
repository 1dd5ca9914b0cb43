//! `/api/auth`: the guest provider's refresh, the published keys, OpenID discovery and user info.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use portico_app::identity::Identity;
use portico_app::App;
use portico_auth::Auth;
use serde_json::json;

use crate::api::json_response;
use crate::error::ApiError;

/// State of the auth routes.
#[derive(Debug, Clone)]
pub(crate) struct AuthState {
    pub(crate) app: Arc<App>,
    pub(crate) auth: Arc<Auth>,
}

fn authentication(message: impl Into<String>) -> ApiError {
    ApiError { name: "AuthenticationError", message: message.into(), status: StatusCode::UNAUTHORIZED }
}

/// `GET|POST /api/auth/:provider/refresh` (OAuth providers are in `oauth`). Like Backstage, the
/// request must carry `X-Requested-With: XMLHttpRequest`, which a cross-site form cannot send.
pub(crate) async fn refresh(
    State(state): State<AuthState>,
    Path(provider): Path<String>,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(oauth) = state.auth.provider(&provider) {
        let source = connection
            .map_or_else(|| "unknown".to_owned(), |Extension(ConnectInfo(address))| address.ip().to_string());
        return crate::api::oauth::refresh(&state, oauth, &headers, &source).await;
    }
    let Some(guest) = state.auth.options().guest.as_ref().filter(|_| provider == "guest") else {
        return Err(ApiError {
            name: "NotFoundError",
            message: format!("Unknown auth provider '{provider}'"),
            status: StatusCode::NOT_FOUND,
        });
    };
    if headers.get("x-requested-with").and_then(|value| value.to_str().ok()) != Some("XMLHttpRequest") {
        return Err(authentication("Invalid X-Requested-With header"));
    }
    let ownership = match &guest.ownership_entity_refs {
        Some(refs) => refs.clone(),
        None => state.app.ownership_of(&guest.user_entity_ref),
    };
    let issued = state
        .auth
        .issue(&guest.user_entity_ref, &ownership)
        .await
        .map_err(|error| authentication(error.to_string()))?;
    let source = connection
        .map_or_else(|| "unknown".to_owned(), |Extension(ConnectInfo(address))| address.ip().to_string());
    let user = Identity::User {
        user_entity_ref: guest.user_entity_ref.clone(),
        ownership_entity_refs: ownership.clone(),
    };
    if let Err(error) = state.app.record_audit(&user, "auth.sign-in", "guest", &source, "api").await {
        tracing::error!(%error, "writing the audit log failed");
    }
    let body = json!({
        "profile": {},
        "backstageIdentity": {
            "token": issued.token,
            "expiresInSeconds": issued.expires_in_seconds,
            "identity": {
                "type": "user",
                "userEntityRef": guest.user_entity_ref,
                "ownershipEntityRefs": ownership,
            },
        },
    });
    Ok(json_response(StatusCode::OK, body.to_string()))
}

pub(crate) async fn jwks(State(state): State<AuthState>) -> Result<Response, ApiError> {
    let keys = state.auth.jwks().await.map_err(|error| ApiError {
        name: "Error",
        message: error.to_string(),
        status: StatusCode::INTERNAL_SERVER_ERROR,
    })?;
    Ok(json_response(StatusCode::OK, keys.to_string()))
}

pub(crate) async fn openid_configuration(State(state): State<AuthState>) -> Response {
    json_response(StatusCode::OK, state.auth.openid_configuration().to_string())
}

/// `GET /api/auth/v1/userinfo`: the caller's ref and ownership (a user token is required).
pub(crate) async fn userinfo(Extension(identity): Extension<Identity>) -> Result<Response, ApiError> {
    match identity {
        Identity::User { user_entity_ref, ownership_entity_refs } => {
            let body = json!({ "claims": { "sub": user_entity_ref, "ent": ownership_entity_refs } });
            Ok(json_response(StatusCode::OK, body.to_string()))
        }
        _ => Err(authentication("User info requires a user token")),
    }
}

/// `/api/auth/v1/token` is not implemented by Backstage either.
pub(crate) async fn token() -> Response {
    (StatusCode::NOT_IMPLEMENTED, "").into_response()
}

/// `GET|DELETE /api/<plugin>/.backstage/auth/v1/cookie` (reference §A) for one plugin: `GET`
/// turns the caller's user token into a `backstage-auth` cookie holding the limited user token,
/// scoped to the plugin's path, and answers `{expiresAt}`; `DELETE` clears it (204).
pub(crate) fn cookie_route<S: Clone + Send + Sync + 'static>(
    plugin: &'static str,
) -> axum::routing::MethodRouter<S> {
    axum::routing::get(move |Extension(auth): Extension<Arc<Auth>>, headers: HeaderMap| {
        issue_cookie(plugin, auth, headers)
    })
    .delete(move || async move { clear_cookie(plugin) })
}

async fn issue_cookie(
    plugin: &'static str,
    auth: Arc<Auth>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned())
        .ok_or_else(|| authentication("A user token is required to issue a cookie"))?;
    let limited = auth.limited_token(&token).await.map_err(|error| authentication(error.to_string()))?;
    let expires = std::time::SystemTime::now() + std::time::Duration::from_secs(limited.expires_in_seconds);
    let secure = if auth.options().issuer.starts_with("https://") { "; Secure" } else { "" };
    let cookie = format!(
        "backstage-auth={}; Path=/api/{plugin}; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        limited.token, limited.expires_in_seconds
    );
    let mut response = json_response(StatusCode::OK, json!({ "expiresAt": iso8601(expires) }).to_string());
    if let Ok(value) = axum::http::HeaderValue::from_str(&cookie) {
        response.headers_mut().append(axum::http::header::SET_COOKIE, value);
    }
    Ok(response)
}

fn clear_cookie(plugin: &'static str) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = axum::http::HeaderValue::from_str(&format!(
        "backstage-auth=; Path=/api/{plugin}; HttpOnly; SameSite=Lax; Max-Age=0"
    )) {
        response.headers_mut().append(axum::http::header::SET_COOKIE, value);
    }
    response
}

/// `YYYY-MM-DDTHH:MM:SS.000Z` (UTC), as JavaScript's `toISOString`.
fn iso8601(time: std::time::SystemTime) -> String {
    let millis = time.duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_secs() * 1000);
    crate::api::iso_millis(i64::try_from(millis).unwrap_or(i64::MAX))
}
