//! Portico's HTTP surface: Backstage's REST API under `/api/<plugin>` and health endpoints.
//!
//! Only this crate imports axum or knows the JSON wire shapes. Handlers extract input, call one
//! `portico_app::App` method and turn the result into a response; every route is registered in
//! `routes.rs` and the whole middleware stack is built in `middleware.rs`.
//!
//! Layout:
//! - `routes`: the router, every path in one place.
//! - `middleware`: identity, error envelope, tracing, limits, panic safety net.
//! - `error`: `ApiError`, the one mapping from use-case errors to statuses and Backstage's body.
//! - `extract`: query-string and JSON extractors that fail with our error body.
//! - `api/`: handlers per plugin.

mod api;
mod error;
mod extract;
mod middleware;
mod routes;

pub use crate::routes::router;
pub use portico_ui::{warm as warm_ui, UiOptions};
