//! The OAuth sign-in flow of `/api/auth/:provider` (reference §B.2): `start` sends the browser
//! to the provider with a nonce and a PKCE challenge in `HttpOnly` cookies, `handler/frame`
//! takes the code back, checks the state against the nonce cookie, exchanges the code,
//! resolves the person to a catalog user and answers the popup (a `postMessage` page) or the
//! redirect flow (a 302, which also opens a web UI session); `refresh` renews from the
//! refresh cookie, `logout` clears it.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use base64::Engine as _;
use portico_app::identity::Identity;
use portico_app::SignInProfile;
use portico_auth::oauth::{pkce_pair, random_nonce, OAuthProvider, ProviderSession};
use serde_json::{json, Value};
use sha2::Digest;

use crate::api::auth::AuthState;
use crate::api::json_response;
use crate::error::ApiError;

fn error(name: &'static str, status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError { name, message: message.into(), status }
}

fn provider<'a>(state: &'a AuthState, id: &str) -> Result<&'a OAuthProvider, ApiError> {
    state
        .auth
        .provider(id)
        .ok_or_else(|| error("NotFoundError", StatusCode::NOT_FOUND, format!("Unknown auth provider '{id}'")))
}

/// Cookie attributes for a provider: the path is the callback's minus `/handler/frame`,
/// `Secure` when the callback is https.
struct CookieScope {
    path: String,
    secure: bool,
}

impl CookieScope {
    fn of(provider: &OAuthProvider) -> CookieScope {
        let (path, secure) = provider.cookie_scope();
        CookieScope { path, secure }
    }

    fn cookie(&self, name: &str, value: &str, sub_path: &str, max_age: u64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text = format!(
            "{name}={value}; Path={}{sub_path}; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
            self.path
        );
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
    }
}

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct StartQuery {
    env: Option<String>,
    scope: Option<String>,
    origin: Option<String>,
    #[serde(rename = "redirectUrl")]
    redirect_url: Option<String>,
    flow: Option<String>,
}

fn origin_of(url: &str) -> Option<String> {
    url::Url::parse(url).ok().map(|url| url.origin().ascii_serialization())
}

/// `GET /api/auth/:provider/start`.
pub(crate) async fn start(
    State(state): State<AuthState>,
    Path(id): Path<String>,
    Query(query): Query<StartQuery>,
) -> Result<Response, ApiError> {
    let provider = provider(&state, &id)?;
    let Some(env) = query.env.filter(|env| !env.is_empty()) else {
        return Err(error(
            "InputError",
            StatusCode::BAD_REQUEST,
            "No env provided in request query parameters",
        ));
    };
    if let Some(origin) = &query.origin {
        if !state.auth.origin_allowed(origin) {
            return Err(error(
                "NotAllowedError",
                StatusCode::FORBIDDEN,
                format!("Origin '{origin}' is not allowed"),
            ));
        }
    }
    if let Some(redirect) = &query.redirect_url {
        // Only back to an allowed app origin: no open redirects.
        if !origin_of(redirect).is_some_and(|origin| state.auth.origin_allowed(&origin)) {
            return Err(error(
                "NotAllowedError",
                StatusCode::FORBIDDEN,
                format!("Redirect URL '{redirect}' is not allowed"),
            ));
        }
    }
    let nonce = random_nonce();
    let (verifier, challenge) = pkce_pair();
    let state_text = {
        let mut fields = url::form_urlencoded::Serializer::new(String::new());
        fields.append_pair("nonce", &nonce).append_pair("env", &env);
        let optional = [
            ("origin", &query.origin),
            ("scope", &query.scope),
            ("redirectUrl", &query.redirect_url),
            ("flow", &query.flow),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                fields.append_pair(key, value);
            }
        }
        hex::encode(fields.finish())
    };
    let scope = provider.scope(query.scope.as_deref().unwrap_or(""));
    let location = provider
        .authorize_url(&state_text, &nonce, &challenge, &scope)
        .await
        .map_err(|failure| error("Error", StatusCode::BAD_GATEWAY, failure.to_string()))?;
    let cookies = CookieScope::of(provider);
    let mut response = (StatusCode::FOUND, [(header::LOCATION, location)]).into_response();
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, cookies.cookie(&format!("{id}-nonce"), &nonce, "/handler", 600));
    headers.append(header::SET_COOKIE, cookies.cookie(&format!("{id}-pkce"), &verifier, "/handler", 600));
    Ok(response)
}

/// Decodes `state`: hex of a URL-encoded form.
fn decode_state(text: &str) -> Option<BTreeMap<String, String>> {
    let bytes = hex::decode(text).ok()?;
    Some(url::form_urlencoded::parse(&bytes).into_owned().collect())
}

/// `GET|POST /api/auth/:provider/handler/frame`.
pub(crate) async fn handler_frame(
    State(state): State<AuthState>,
    Path(id): Path<String>,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let provider = provider(&state, &id)?;
    // The provider answers in the query (GET) or as a form (POST, `response_mode=form_post`).
    let mut params: BTreeMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    params.extend(url::form_urlencoded::parse(&body).into_owned());
    let flow = params.get("state").and_then(|text| decode_state(text)).unwrap_or_default();
    let (Some(nonce), Some(_env)) = (flow.get("nonce"), flow.get("env")) else {
        return Err(error("NotAllowedError", StatusCode::FORBIDDEN, "Invalid state passed via request"));
    };
    let cookie_nonce = portico_ui::cookie(&headers, &format!("{id}-nonce"));
    if cookie_nonce.as_deref() != Some(nonce.as_str()) {
        return Err(error("NotAllowedError", StatusCode::FORBIDDEN, "Invalid nonce"));
    }
    let origin = match flow.get("origin") {
        Some(origin) if state.auth.origin_allowed(origin) => portico_auth::normalized_origin(origin),
        Some(origin) => {
            return Err(error(
                "NotAllowedError",
                StatusCode::FORBIDDEN,
                format!("Origin '{origin}' is not allowed"),
            ))
        }
        None => None,
    };
    let redirect = (flow.get("flow").map(String::as_str) == Some("redirect"))
        .then(|| flow.get("redirectUrl").cloned())
        .flatten()
        .filter(|url| origin_of(url).is_some_and(|origin| state.auth.origin_allowed(&origin)));
    let source = connection
        .map_or_else(|| "unknown".to_owned(), |Extension(ConnectInfo(address))| address.ip().to_string());
    let outcome = sign_in(&state, provider, &params, nonce, &headers, &source).await;
    let cookies = CookieScope::of(provider);
    let mut response = match (&outcome, redirect) {
        (Ok(signed_in), Some(redirect)) => {
            let mut response = (StatusCode::FOUND, [(header::LOCATION, redirect)]).into_response();
            // The server-rendered UI's session: the limited form of the user token.
            if let Some(value) = portico_ui::session_cookie(&state.auth, &signed_in.token).await {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
        (Err(failure), Some(redirect)) => {
            let mut target = url::Url::parse(&redirect)
                .map_err(|_| error("InputError", StatusCode::BAD_REQUEST, "Invalid redirect URL"))?;
            target.query_pairs_mut().append_pair("error", &failure.message);
            (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
        }
        (outcome, None) => {
            let app_origin =
                origin.clone().unwrap_or_else(|| state.auth.options().allowed_origins[0].clone());
            let message = match outcome {
                Ok(signed_in) => json!({ "type": "authorization_response", "response": signed_in.body }),
                Err(failure) => {
                    json!({ "type": "authorization_response", "error": { "name": failure.name, "message": failure.message } })
                }
            };
            popup_page(&app_origin, &message)
        }
    };
    let headers = response.headers_mut();
    for name in ["nonce", "pkce"] {
        headers.append(header::SET_COOKIE, cookies.cookie(&format!("{id}-{name}"), "", "/handler", 0));
    }
    if let Ok(signed_in) = &outcome {
        set_session_cookies(headers, provider, &cookies, signed_in);
    }
    Ok(response)
}

/// A completed sign-in.
struct SignedIn {
    body: Value,
    token: String,
    refresh_token: Option<String>,
    scope: String,
}

fn set_session_cookies(
    headers: &mut HeaderMap,
    provider: &OAuthProvider,
    cookies: &CookieScope,
    signed_in: &SignedIn,
) {
    let id = &provider.options().id;
    let lifetime = provider.options().session_duration.as_secs();
    if let Some(refresh_token) = &signed_in.refresh_token {
        headers.append(
            header::SET_COOKIE,
            cookies.cookie(&format!("{id}-refresh-token"), refresh_token, "", lifetime),
        );
    }
    let scope: String = url::form_urlencoded::byte_serialize(signed_in.scope.as_bytes()).collect();
    headers.append(header::SET_COOKIE, cookies.cookie(&format!("{id}-granted-scope"), &scope, "", lifetime));
}

async fn sign_in(
    state: &AuthState,
    provider: &OAuthProvider,
    params: &BTreeMap<String, String>,
    nonce: &str,
    headers: &HeaderMap,
    source: &str,
) -> Result<SignedIn, ApiError> {
    if let Some(refused) = params.get("error") {
        let description = params.get("error_description").map(String::as_str).unwrap_or("");
        return Err(error(
            "AuthenticationError",
            StatusCode::UNAUTHORIZED,
            format!("{refused}: {description}"),
        ));
    }
    let id = &provider.options().id;
    let code = params
        .get("code")
        .ok_or_else(|| error("InputError", StatusCode::BAD_REQUEST, "No code in the callback"))?;
    let verifier = portico_ui::cookie(headers, &format!("{id}-pkce"))
        .ok_or_else(|| error("NotAllowedError", StatusCode::FORBIDDEN, "Missing PKCE verifier cookie"))?;
    let session = provider
        .exchange(code, &verifier, nonce)
        .await
        .map_err(|failure| error("AuthenticationError", StatusCode::UNAUTHORIZED, failure.to_string()))?;
    complete(state, provider, session, source, "code exchange").await
}

/// Resolves the person, issues the Backstage token and builds the ClientAuthResponse.
async fn complete(
    state: &AuthState,
    provider: &OAuthProvider,
    session: ProviderSession,
    source: &str,
    how: &str,
) -> Result<SignedIn, ApiError> {
    let id = &provider.options().id;
    let profile = &session.profile;
    let person = SignInProfile {
        provider: id,
        email: profile.email.as_deref(),
        username: profile.username.as_deref(),
        user_id: profile.user_id.as_deref(),
    };
    let (user_entity_ref, ownership) = state
        .app
        .resolve_sign_in(&person, &provider.options().resolvers)
        .map_err(|failure| error("NotAllowedError", StatusCode::FORBIDDEN, failure.to_string()))?;
    let issued = state
        .auth
        .issue(&user_entity_ref, &ownership)
        .await
        .map_err(|failure| error("AuthenticationError", StatusCode::UNAUTHORIZED, failure.to_string()))?;
    let user =
        Identity::User { user_entity_ref: user_entity_ref.clone(), ownership_entity_refs: ownership.clone() };
    if let Err(failure) = state.app.record_audit(&user, "auth.sign-in", id, source, how).await {
        tracing::error!(error = %failure, "writing the audit log failed");
    }
    let mut profile_json = serde_json::Map::new();
    for (key, value) in
        [("email", &profile.email), ("displayName", &profile.display_name), ("picture", &profile.picture)]
    {
        if let Some(value) = value {
            profile_json.insert(key.into(), json!(value));
        }
    }
    let mut provider_info = json!({ "accessToken": session.access_token, "scope": session.scope });
    if let Some(id_token) = &session.id_token {
        provider_info["idToken"] = json!(id_token);
    }
    if let Some(expires) = session.expires_in_seconds {
        provider_info["expiresInSeconds"] = json!(expires);
    }
    let body = json!({
        "profile": profile_json,
        "providerInfo": provider_info,
        "backstageIdentity": {
            "token": issued.token,
            "expiresInSeconds": issued.expires_in_seconds,
            "identity": { "type": "user", "userEntityRef": user_entity_ref, "ownershipEntityRefs": ownership },
        },
    });
    Ok(SignedIn { body, token: issued.token, refresh_token: session.refresh_token, scope: session.scope })
}

/// The popup's answer: a page whose only script posts the result to the opener (the app's
/// origin) and closes. The data is URI-encoded inside a string literal, never raw JSON in the
/// script, and the CSP allows exactly this script by its hash.
fn popup_page(app_origin: &str, message: &Value) -> Response {
    let encode = |value: &str| -> String {
        percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let script = format!(
        "(function(){{var origin=decodeURIComponent('{}');var message=JSON.parse(decodeURIComponent('{}'));\
var target=window.opener||window.parent;target.postMessage({{type:'config_info',targetOrigin:origin}},'*');\
target.postMessage(message,origin);setTimeout(function(){{window.close();}},100);}})();",
        encode(app_origin),
        encode(&message.to_string())
    );
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script.as_bytes()));
    let html = format!("<!DOCTYPE html><html><body><script>{script}</script></body></html>");
    let mut response = (StatusCode::OK, html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("sameorigin"));
    if let Ok(csp) = HeaderValue::from_str(&format!("script-src 'sha256-{hash}'")) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

fn from_browser(headers: &HeaderMap) -> Result<(), ApiError> {
    if headers.get("x-requested-with").and_then(|value| value.to_str().ok()) == Some("XMLHttpRequest") {
        Ok(())
    } else {
        Err(error("AuthenticationError", StatusCode::UNAUTHORIZED, "Invalid X-Requested-With header"))
    }
}

/// `GET|POST /api/auth/:provider/refresh` for an OAuth provider: a new Backstage token from
/// the refresh cookie (the resolvers run again, so catalog changes apply).
pub(crate) async fn refresh(
    state: &AuthState,
    provider: &OAuthProvider,
    headers: &HeaderMap,
    source: &str,
) -> Result<Response, ApiError> {
    from_browser(headers)?;
    let id = &provider.options().id;
    let refresh_failed = |reason: String| {
        error("AuthenticationError", StatusCode::UNAUTHORIZED, format!("Refresh failed: {reason}"))
    };
    let token = portico_ui::cookie(headers, &format!("{id}-refresh-token"))
        .filter(|token| !token.is_empty())
        .ok_or_else(|| refresh_failed("missing session cookie".into()))?;
    let session = provider.refresh(&token).await.map_err(|failure| refresh_failed(failure.to_string()))?;
    let signed_in = complete(state, provider, session, source, "refresh")
        .await
        .map_err(|failure| refresh_failed(failure.message))?;
    let mut response = json_response(StatusCode::OK, signed_in.body.to_string());
    if signed_in.refresh_token.as_deref() != Some(token.as_str()) {
        set_session_cookies(response.headers_mut(), provider, &CookieScope::of(provider), &signed_in);
    }
    Ok(response)
}

/// `POST /api/auth/:provider/logout`: clears the provider's cookies.
pub(crate) async fn logout(
    State(state): State<AuthState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let provider = provider(&state, &id)?;
    from_browser(&headers)?;
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|value| value.to_str().ok()) {
        if !state.auth.origin_allowed(origin) {
            return Err(error(
                "NotAllowedError",
                StatusCode::FORBIDDEN,
                format!("Origin '{origin}' is not allowed"),
            ));
        }
    }
    let cookies = CookieScope::of(provider);
    let mut response = StatusCode::OK.into_response();
    for name in ["refresh-token", "granted-scope"] {
        response.headers_mut().append(header::SET_COOKIE, cookies.cookie(&format!("{id}-{name}"), "", "", 0));
    }
    Ok(response)
}
