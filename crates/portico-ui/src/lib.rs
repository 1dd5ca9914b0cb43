//! Portico's web UI: HTML pages rendered on the server from the in-memory catalog.
//!
//! Every page is complete HTML that works without JavaScript; `assets/portico.js` only adds
//! conveniences (auto-submitting filters, the theme switch without a reload). Markup is written
//! with `maud`, which escapes every interpolated value, so entity content can never become
//! markup; URLs taken from entities go through [`view::safe_href`] first.
//!
//! Layout:
//! - `layout`: the page shell (navigation, theme, landmarks) and shared widgets.
//! - `view`: reading entities for display (refs, titles, links, safe URLs).
//! - `pages/`: one module per page family.
//! - `assets`: the stylesheet and script, served under content-hashed names.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use portico_app::App;
use portico_auth::Auth;

mod assets;
mod definition;
mod layout;
mod pages;
mod view;

pub use crate::layout::cookie;
pub use crate::pages::misc::format_time;
pub use crate::pages::session::{session_cookie, SESSION_COOKIE};

/// What the UI shows about this installation; from `app.title` and `organization.name`.
#[derive(Debug, Clone)]
pub struct UiOptions {
    pub app_title: String,
    pub organization: String,
}

impl Default for UiOptions {
    fn default() -> UiOptions {
        UiOptions { app_title: "Portico".into(), organization: "My Company".into() }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Ui {
    pub(crate) app: Arc<App>,
    pub(crate) options: Arc<UiOptions>,
    pub(crate) auth: Arc<Auth>,
}

/// The UI's routes. Merged next to `/api` by the web crate.
pub fn router(app: Arc<App>, options: UiOptions, auth: Arc<Auth>) -> Router {
    let state = Ui { app, options: Arc::new(options), auth };
    Router::new()
        .route("/", get(pages::home::home))
        .route("/catalog", get(pages::catalog::catalog))
        .route("/api-docs", get(pages::catalog::api_docs))
        .route("/catalog/{namespace}/{kind}/{name}", get(pages::entity::overview))
        .route("/catalog/{namespace}/{kind}/{name}/{tab}", get(pages::entity::tab))
        .route("/catalog/{namespace}/{kind}/{name}/refresh", post(pages::entity::refresh))
        .route("/catalog/{namespace}/{kind}/{name}/unregister", post(pages::entity::unregister))
        .route("/catalog-import", get(pages::import::form).post(pages::import::submit))
        .route("/search", get(pages::search::search))
        .route("/create", get(pages::create::templates))
        .route(
            "/create/templates/{namespace}/{name}",
            get(pages::create::form_start).post(pages::create::form_submit),
        )
        .route("/create/tasks", get(pages::create::tasks))
        .route("/create/tasks/{id}", get(pages::create::task))
        .route("/create/tasks/{id}/events", get(pages::create::events))
        .route("/create/tasks/{id}/cancel", post(pages::create::cancel))
        .route("/create/tasks/{id}/retry", post(pages::create::retry))
        .route("/create/actions", get(pages::create::actions))
        .route("/create/edit", get(pages::create::editor).post(pages::create::editor_run))
        .route("/docs", get(pages::misc::docs))
        .route("/settings", get(pages::misc::settings))
        .route("/settings/theme", post(pages::misc::set_theme))
        .route("/settings/audit", get(pages::misc::audit))
        .route("/settings/policy", get(pages::policy::page).post(pages::policy::save))
        .route("/settings/policy/reset", post(pages::policy::reset))
        .route("/sign-in", get(pages::session::sign_in_page))
        .route("/sign-in/guest", post(pages::session::sign_in_guest))
        .route("/sign-in/done", get(pages::session::sign_in_done))
        .route("/sign-out", post(pages::session::sign_out))
        .route("/static/{file}", get(assets::serve))
        .fallback(pages::misc::not_found)
        .layer(axum::middleware::from_fn(check_csrf))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// Computes what the default catalog page needs (its sort order and facets) so the first
/// visitor after a start does not wait for it. Blocking; run it off the async workers.
pub fn warm(app: Arc<App>, options: UiOptions, auth: Arc<Auth>) {
    let ui = Ui { app, options: Arc::new(options), auth };
    pages::catalog::warm(&ui);
}

/// The Content-Security-Policy allows only our own stylesheet and script: no inline script or
/// style can run even if some content escaped the escaping.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Form bodies larger than this are refused before the token check.
const MAX_FORM_BYTES: usize = 1024 * 1024;

/// Every state-changing form must echo the visitor's anti-forgery cookie in `_csrf`.
async fn check_csrf(request: Request, next: Next) -> Response {
    if request.method() != axum::http::Method::POST {
        return next.run(request).await;
    }
    let expected = layout::cookie(request.headers(), layout::CSRF_COOKIE);
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return forbidden("The form is too large.");
    };
    let sent = url::form_urlencoded::parse(&bytes)
        .find(|(key, _)| key == "_csrf")
        .map(|(_, value)| value.into_owned());
    let valid = match (expected, sent) {
        (Some(expected), Some(sent)) => portico_auth::same_secret(&expected, &sent),
        _ => false,
    };
    if !valid {
        return forbidden(
            "This form was not sent from this site's page, or it expired. Reload the page and try again.",
        );
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

fn forbidden(message: &str) -> Response {
    let body = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Forbidden | Portico</title></head><body><main><h1>Forbidden</h1><p>{}</p></main></body></html>",
        maud::html! { (message) }.into_string()
    );
    let mut response = (axum::http::StatusCode::FORBIDDEN, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}
