//! `/.backstage/health/v1/*`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use portico_app::App;

use crate::api::json_response;

pub(crate) async fn liveness() -> Response {
    json_response(StatusCode::OK, r#"{"status":"ok"}"#)
}

/// 503 until the providers are connected and the engine runs.
pub(crate) async fn readiness(axum::extract::State(app): State<Arc<App>>) -> Response {
    if app.is_ready() {
        json_response(StatusCode::OK, r#"{"status":"ok"}"#)
    } else {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status":"error","message":"Backend has not started yet"}"#,
        )
    }
}
