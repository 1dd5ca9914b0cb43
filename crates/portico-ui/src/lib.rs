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
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use portico_app::App;

mod assets;
mod definition;
mod layout;
mod pages;
mod view;
mod yaml;

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
}

/// The UI's routes. Merged next to `/api` by the web crate.
pub fn router(app: Arc<App>, options: UiOptions) -> Router {
    let state = Ui { app, options: Arc::new(options) };
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
        .route("/create", get(pages::misc::create))
        .route("/docs", get(pages::misc::docs))
        .route("/settings", get(pages::misc::settings))
        .route("/settings/theme", post(pages::misc::set_theme))
        .route("/static/{file}", get(assets::serve))
        .fallback(pages::misc::not_found)
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// Computes what the default catalog page needs (its sort order and facets) so the first
/// visitor after a start does not wait for it. Blocking; run it off the async workers.
pub fn warm(app: Arc<App>, options: UiOptions) {
    let ui = Ui { app, options: Arc::new(options) };
    pages::catalog::warm(&ui);
}

/// The Content-Security-Policy allows only our own stylesheet and script: no inline script or
/// style can run even if some content escaped the escaping.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}
