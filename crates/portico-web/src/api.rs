//! Handlers, one module per Backstage plugin.

pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod catalog;
pub(crate) mod health;
pub(crate) mod oauth;
pub(crate) mod permission;
pub(crate) mod scaffolder;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

/// A JSON response from already-serialized text.
pub(crate) fn json_response(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    response
}

/// Joins entity JSON texts into a JSON array without re-serializing them.
pub(crate) fn join_items(items: &[Arc<str>], nulls: bool) -> String {
    let size: usize = items.iter().map(|item| item.len() + 1).sum();
    let mut out = String::with_capacity(size + 2);
    out.push('[');
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        if nulls && item.is_empty() {
            out.push_str("null");
        } else {
            out.push_str(item);
        }
    }
    out.push(']');
    out
}

/// Milliseconds since the epoch as JavaScript's `toISOString` writes them (UTC).
pub(crate) fn iso_millis(millis: i64) -> String {
    let utc = portico_ui::format_time(millis);
    format!("{}.{:03}Z", utc.replace(' ', "T"), millis.rem_euclid(1000))
}
