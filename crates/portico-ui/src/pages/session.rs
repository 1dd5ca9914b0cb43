//! Signing in and out of the web UI. The session is the user token in an `HttpOnly` cookie,
//! accepted for UI pages only (the API wants it as a bearer token, so a cookie can never
//! authorize an API call from another site).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use axum::Form;
use maud::html;
use portico_app::identity::Identity;

use crate::layout::{self, Chrome};
use crate::Ui;

/// The session cookie: a limited Backstage user token (reference §B.6), which proves who the
/// user is to pages but is refused as an API credential.
pub const SESSION_COOKIE: &str = "backstage-auth";

/// The `Set-Cookie` value opening a UI session for the holder of a full user `token`.
pub async fn session_cookie(auth: &portico_auth::Auth, token: &str) -> Option<HeaderValue> {
    let limited = match auth.limited_token(token).await {
        Ok(limited) => limited,
        Err(error) => {
            tracing::error!(%error, "making the session's limited token failed");
            return None;
        }
    };
    let secure = if auth.options().issuer.starts_with("https://") { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        limited.token, limited.expires_in_seconds
    ))
    .ok()
}

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Next {
    #[serde(default)]
    next: String,
}

/// Only same-site paths are followed after sign-in: no open redirects.
fn local_path(next: &str) -> String {
    if crate::view::is_local_path(next) {
        next.to_owned()
    } else {
        "/".to_owned()
    }
}

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct SignInParams {
    #[serde(default)]
    next: String,
    /// Set by a provider's redirect flow when sign-in failed.
    #[serde(default)]
    error: String,
}

fn start_url(provider: &str, environment: &str, back: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("env", environment)
        .append_pair("flow", "redirect")
        .append_pair("redirectUrl", back)
        .finish();
    format!("/api/auth/{provider}/start?{query}")
}

pub(crate) async fn sign_in_page(
    State(ui): State<Ui>,
    chrome: Chrome,
    Query(params): Query<SignInParams>,
) -> Response {
    let next = local_path(&params.next);
    let guest = ui.auth.options().guest.as_ref();
    // The provider sends the browser back here after the redirect flow (no popup).
    let base = ui.auth.options().issuer.trim_end_matches("/api/auth").to_owned();
    let back = format!(
        "{base}/sign-in/done?{}",
        url::form_urlencoded::Serializer::new(String::new()).append_pair("next", &next).finish()
    );
    let error = params.error.trim();
    let body = html! {
        h1 { "Sign in to " (ui.options.app_title) }
        @if !error.is_empty() {
            p.error-message role="alert" { "Sign-in failed: " (error) }
        }
        @for provider in ui.auth.providers() {
            section.card aria-labelledby={ "provider-" (provider.options().id) } {
                h2 id={ "provider-" (provider.options().id) } { (provider.title()) }
                // A link, not a form: the page's CSP (`form-action 'self'`) would stop a form's
                // redirect to the provider.
                a.button href=(start_url(provider.options().id.as_str(), &ui.auth.options().environment, &back)) {
                    "Sign in with " (provider.title())
                }
            }
        }
        @if let Some(guest) = guest {
            section.card aria-labelledby="guest-heading" {
                h2 #guest-heading { "Guest" }
                p { "Development sign-in as " code { (guest.user_entity_ref) } "." }
                form method="post" action="/sign-in/guest" {
                    (layout::csrf_field(&chrome))
                    input type="hidden" name="next" value=(next);
                    button type="submit" { "Sign in as guest" }
                }
            }
        } @else if ui.auth.providers().is_empty() {
            p { "No sign-in provider for the browser is configured." }
        }
    };
    layout::page(&ui, &chrome, "Sign in", body)
}

/// Where a provider's redirect flow lands: on to `next` when signed in (the session cookie was
/// set by the auth handler), else back to the sign-in page with the error.
pub(crate) async fn sign_in_done(
    State(ui): State<Ui>,
    chrome: Chrome,
    Query(params): Query<SignInParams>,
) -> Response {
    if params.error.trim().is_empty() {
        return Redirect::to(&local_path(&params.next)).into_response();
    }
    let mut response = sign_in_page(State(ui), chrome, Query(params)).await;
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response
}

pub(crate) async fn sign_in_guest(
    State(ui): State<Ui>,
    chrome: Chrome,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    Form(next): Form<Next>,
) -> Response {
    let Some(guest) = ui.auth.options().guest.clone() else {
        return layout::page_with_status(
            &ui,
            &chrome,
            StatusCode::NOT_FOUND,
            "Sign in",
            html! { h1 { "The guest provider is not configured" } },
        );
    };
    let ownership = match &guest.ownership_entity_refs {
        Some(refs) => refs.clone(),
        None => ui.app.ownership_of(&guest.user_entity_ref),
    };
    let issued = match ui.auth.issue(&guest.user_entity_ref, &ownership).await {
        Ok(issued) => issued,
        Err(error) => {
            return layout::page_with_status(
                &ui,
                &chrome,
                StatusCode::UNAUTHORIZED,
                "Sign in",
                html! {
                    h1 { "Sign-in failed" } p.error-message { (error) }
                },
            )
        }
    };
    let source = connection
        .map_or_else(|| "unknown".to_owned(), |Extension(ConnectInfo(address))| address.ip().to_string());
    let user =
        Identity::User { user_entity_ref: guest.user_entity_ref.clone(), ownership_entity_refs: ownership };
    if let Err(error) = ui.app.record_audit(&user, "auth.sign-in", "guest", &source, "web UI").await {
        tracing::error!(%error, "writing the audit log failed");
    }
    let mut response = Redirect::to(&local_path(&next.next)).into_response();
    if let Some(value) = session_cookie(&ui.auth, &issued.token).await {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// Ends the UI session and the providers' sessions (their refresh cookies), so the next
/// sign-in asks the provider again.
pub(crate) async fn sign_out(State(ui): State<Ui>) -> Response {
    let mut response = Redirect::to("/sign-in").into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        HeaderValue::from_static("backstage-auth=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    for provider in ui.auth.providers() {
        let id = &provider.options().id;
        let (path, _) = provider.cookie_scope();
        for name in ["refresh-token", "granted-scope"] {
            let cookie = format!("{id}-{name}=; Path={path}; HttpOnly; SameSite=Lax; Max-Age=0");
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                headers.append(header::SET_COOKIE, value);
            }
        }
    }
    response
}
