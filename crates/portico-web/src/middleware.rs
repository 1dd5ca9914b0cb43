//! The whole middleware stack, built in one function so it reads top to bottom.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use portico_app::identity::Identity;
use portico_app::App;
use portico_auth::{Auth, Principal};
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::error::ErrorInfo;

/// Request bodies larger than this are refused (entity documents, location requests).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Requests running longer than this are cut off; no catalog query should come close.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) fn layer(router: Router, app: Arc<App>, auth: Arc<Auth>) -> Router {
    let limiter = Arc::new(SignInLimiter::keyed(governor::Quota::per_minute(SIGN_INS_PER_MINUTE)));
    let app_for_identity = app.clone();
    router
        .layer(axum::middleware::from_fn_with_state(app, audit))
        .layer(axum::middleware::from_fn_with_state((app_for_identity, auth), identify))
        .layer(axum::middleware::from_fn_with_state(limiter, limit_sign_ins))
        .layer(axum::middleware::from_fn(error_envelope))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(CompressionLayer::new())
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, REQUEST_TIMEOUT))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(|_panic: Box<dyn std::any::Any + Send>| {
            tracing::error!("a request handler panicked");
            (StatusCode::INTERNAL_SERVER_ERROR, ErrorMarker).into_response()
        }))
}

/// The audit log's name for a write, or `None` for requests that change nothing.
fn audited_action(method: &axum::http::Method, path: &str, query: &str) -> Option<&'static str> {
    use axum::http::Method;
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::POST, ["api", "catalog", "locations"]) if !query.contains("dryRun=true") => {
            Some("catalog.location.create")
        }
        (&Method::PUT, ["api", "catalog", "locations", _]) => Some("catalog.location.update"),
        (&Method::DELETE, ["api", "catalog", "locations", _]) => Some("catalog.location.delete"),
        (&Method::DELETE, ["api", "catalog", "entities", "by-uid", _]) => Some("catalog.entity.delete"),
        (&Method::POST, ["api", "catalog", "refresh"]) => Some("catalog.entity.refresh"),
        (&Method::POST, ["catalog", _, _, _, "refresh"]) => Some("catalog.entity.refresh"),
        (&Method::POST, ["catalog", _, _, _, "unregister"]) => Some("catalog.entity.unregister"),
        (&Method::POST, ["catalog-import"]) => Some("catalog.location.create"),
        (&Method::POST, ["settings", "policy"]) => Some("portico.policy.update"),
        (&Method::POST, ["settings", "policy", "reset"]) => Some("portico.policy.reset"),
        (&Method::PUT, ["api", "permission", "policy"]) => Some("portico.policy.update"),
        (&Method::DELETE, ["api", "permission", "policy"]) => Some("portico.policy.reset"),
        _ => None,
    }
}

/// The client address of a request (the peer of the connection).
pub(crate) fn client_address(request: &Request) -> String {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |info| info.0.ip().to_string())
}

/// Records every successful or refused write in the audit log: who (the identity), what (the action and
/// the request's parameters, without the anti-forgery token), when, and from where.
async fn audit(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let query = request.uri().query().unwrap_or("").to_owned();
    let Some(action) = audited_action(request.method(), request.uri().path(), &query) else {
        return next.run(request).await;
    };
    let identity = request.extensions().get::<Identity>().cloned().unwrap_or(Identity::Anonymous);
    let source = client_address(&request);
    let target = request.uri().path_and_query().map(|pq| pq.as_str().to_owned()).unwrap_or_default();
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let text = String::from_utf8_lossy(&bytes);
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/x-www-form-urlencoded"));
    let detail: String = if is_form {
        url::form_urlencoded::parse(text.as_bytes())
            .filter(|(key, _)| key != "_csrf")
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join("&")
    } else {
        text.into_owned()
    };
    // The import page's first step only analyzes.
    let analyze_only = action == "catalog.location.create"
        && parts.uri.path() == "/catalog-import"
        && detail.contains("action=analyze");
    let detail: String = detail.chars().take(4096).collect();
    let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    // Refused writes are recorded too, so an admin sees who tried what.
    let detail =
        if response.status() == StatusCode::FORBIDDEN { format!("denied: {detail}") } else { detail };
    let done = response.status().is_success() || response.status().is_redirection();
    if !analyze_only && (done || response.status() == StatusCode::FORBIDDEN) {
        if let Err(error) = app.record_audit(&identity, action, &target, &source, &detail).await {
            tracing::error!(%error, action, "writing the audit log failed");
        }
    }
    response
}

/// Sign-in attempts allowed per client address and minute (with a burst of as many).
const SIGN_INS_PER_MINUTE: std::num::NonZeroU32 = std::num::NonZeroU32::new(20).expect("non-zero");

type SignInLimiter = governor::DefaultKeyedRateLimiter<std::net::IpAddr>;

/// Rate-limits sign-in attempts (`/api/auth/<provider>/refresh` and the UI's `/sign-in/...`)
/// per client address: guessing or hammering a provider gets 429.
async fn limit_sign_ins(State(limiter): State<Arc<SignInLimiter>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let is_sign_in = (path.starts_with("/api/auth/")
        && (path.ends_with("/refresh") || path.ends_with("/start") || path.ends_with("/handler/frame")))
        || (path.starts_with("/sign-in/") && request.method() == axum::http::Method::POST);
    if is_sign_in {
        let address = request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip());
        if let Some(address) = address {
            if limiter.check_key(&address).is_err() {
                let mut response = StatusCode::TOO_MANY_REQUESTS.into_response();
                response.extensions_mut().insert(ErrorInfo {
                    name: "TooManyRequestsError",
                    message: "Too many sign-in attempts from this address; try again in a minute".into(),
                });
                return response;
            }
        }
    }
    next.run(request).await
}

#[derive(Debug, Clone, Copy)]
struct ErrorMarker;

impl IntoResponse for ErrorMarker {
    fn into_response(self) -> Response {
        let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
        response
            .extensions_mut()
            .insert(ErrorInfo { name: "Error", message: "Internal server error".into() });
        response
    }
}

/// The identity layer every route passes through. It turns a bearer credential into an
/// `Identity` that handlers take. Without sign-in configured every caller is anonymous (and
/// Portico says so at startup); with it, every `/api` route but the auth plugin's requires
/// valid credentials (401 otherwise), health stays open, and UI pages need a session cookie
/// (visitors without one are sent to the sign-in page).
async fn identify(
    State((app, auth)): State<(Arc<App>, Arc<Auth>)>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let bearer = request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()).and_then(
        |value| {
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
        },
    );
    let identity = match &bearer {
        Some(token) => match auth.authenticate(token).await {
            Ok(Principal::User { user_entity_ref, ownership_entity_refs }) => {
                Some(Identity::User { user_entity_ref, ownership_entity_refs })
            }
            Ok(principal @ Principal::Service { .. }) => {
                let plugin = path.strip_prefix("/api/").and_then(|rest| rest.split('/').next()).unwrap_or("");
                match identity_for(principal, plugin) {
                    Ok(identity) => Some(identity),
                    Err(message) => return not_allowed(&message),
                }
            }
            Err(error) => {
                // In the open local mode a bad token is ignored, as no token would be.
                if auth.required() {
                    return unauthenticated(&error.to_string());
                }
                None
            }
        },
        None => None,
    };
    let is_api = path.starts_with("/api/");
    // The UI's session is a limited user token in the HttpOnly `backstage-auth` cookie,
    // accepted for pages only; ownership comes from the catalog, as at sign-in.
    let identity = match identity {
        Some(identity) => Some(identity),
        None if !is_api && auth.required() => {
            match portico_ui::cookie(request.headers(), portico_ui::SESSION_COOKIE)
                .filter(|token| !token.is_empty())
            {
                Some(token) => match auth.authenticate_limited(&token).await {
                    Ok(user_entity_ref) => Some(Identity::User {
                        ownership_entity_refs: app.ownership_of(&user_entity_ref),
                        user_entity_ref,
                    }),
                    Err(_) => None,
                },
                None => None,
            }
        }
        None => None,
    };
    let open_path = (path.starts_with("/api/auth/") && path != "/api/auth/v1/userinfo")
        || path.starts_with("/.backstage/")
        || path.starts_with("/static/")
        || path == "/sign-in"
        || path.starts_with("/sign-in/");
    let identity = match identity {
        Some(identity) => identity,
        None if !auth.required() || open_path => Identity::Anonymous,
        None if is_api => return unauthenticated("Missing credentials"),
        None if request.method() == axum::http::Method::GET => {
            let next = request.uri().path_and_query().map(|pq| pq.as_str().to_owned()).unwrap_or_default();
            let target: String =
                url::form_urlencoded::Serializer::new(String::new()).append_pair("next", &next).finish();
            return axum::response::Redirect::to(&format!("/sign-in?{target}")).into_response();
        }
        None => return sign_in_required(),
    };
    request.extensions_mut().insert(identity);
    next.run(request).await
}

fn unauthenticated(message: &str) -> Response {
    let mut response = StatusCode::UNAUTHORIZED.into_response();
    response.extensions_mut().insert(ErrorInfo { name: "AuthenticationError", message: message.to_owned() });
    response
}

/// The identity of a verified credential calling `plugin`; a restricted service calling a
/// plugin it is not allowed is refused with the reason.
pub(crate) fn identity_for(principal: Principal, plugin: &str) -> Result<Identity, String> {
    match principal {
        Principal::User { user_entity_ref, ownership_entity_refs } => {
            Ok(Identity::User { user_entity_ref, ownership_entity_refs })
        }
        Principal::Service { subject, restrictions } => {
            if !restrictions.is_empty() && !restrictions.iter().any(|r| r.plugin == plugin) {
                return Err(format!(
                    "This credential's access is restricted to the plugin(s) {}",
                    restrictions.iter().map(|r| format!("'{}'", r.plugin)).collect::<Vec<_>>().join(", ")
                ));
            }
            let restrictions = restrictions
                .into_iter()
                .map(|r| portico_app::identity::Restriction {
                    plugin: r.plugin,
                    permissions: r.permissions,
                    actions: r.actions,
                })
                .collect();
            Ok(Identity::Service { subject, restrictions })
        }
    }
}

fn not_allowed(message: &str) -> Response {
    let mut response = StatusCode::FORBIDDEN.into_response();
    response.extensions_mut().insert(ErrorInfo { name: "NotAllowedError", message: message.to_owned() });
    response
}

/// The UI's answer to a form sent without a session while sign-in is configured.
fn sign_in_required() -> Response {
    let body = "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign-in required | Portico</title></head>\
        <body><main><h1>Sign-in required</h1><p>This Portico has sign-in configured. \
        <a href=\"/sign-in\">Sign in</a> and try again.</p></main></body></html>";
    let mut response = (StatusCode::UNAUTHORIZED, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'"));
    response
}

/// Writes Backstage's error body for responses that carry `ErrorInfo`.
async fn error_envelope(request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let url = request.uri().path_and_query().map(|pq| pq.as_str().to_owned()).unwrap_or_default();
    let response = next.run(request).await;
    let Some(info) = response.extensions().get::<ErrorInfo>().cloned() else {
        return response;
    };
    let status = response.status();
    let body = json!({
        "error": { "name": info.name, "message": info.message },
        "request": { "method": method, "url": url },
        "response": { "statusCode": status.as_u16() },
    });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    response
}
