//! One module per page family. Handlers read from `App`, build markup and wrap it in the shell.

use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use crate::layout::{self, Chrome};
use crate::Ui;

pub(crate) mod catalog;
pub(crate) mod create;
pub(crate) mod entity;
pub(crate) mod form;
pub(crate) mod graph;
pub(crate) mod home;
pub(crate) mod import;
pub(crate) mod misc;
pub(crate) mod policy;
pub(crate) mod search;
pub(crate) mod session;

/// Entity counts per kind, for the kind selector and the home page.
pub(crate) fn kind_counts(ui: &Ui, identity: &portico_app::identity::Identity) -> Vec<(String, u64)> {
    ui.app
        .entity_facets(identity, &portico_app::query::QueryFilter::None, &["kind".to_owned()])
        .ok()
        .and_then(|mut facets| facets.pop())
        .map(|(_, values)| values)
        .unwrap_or_default()
}

/// A page for a use-case error, with the status the API would answer.
pub(crate) fn error_page(ui: &Ui, chrome: &Chrome, error: &portico_app::Error) -> Response {
    let (status, title) = match error {
        portico_app::Error::Input(_) | portico_app::Error::Invalid(_) => {
            (StatusCode::BAD_REQUEST, "Bad request")
        }
        portico_app::Error::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
        portico_app::Error::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
        portico_app::Error::NotAllowed(_) => (StatusCode::FORBIDDEN, "Not allowed"),
        portico_app::Error::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "Server error"),
    };
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(%error, "a page failed");
    }
    let body = html! {
        h1 { (title) }
        p.error-message { (error) }
        p { a href="/catalog" { "Back to the catalog" } }
    };
    layout::page_with_status(ui, chrome, status, title, body)
}
