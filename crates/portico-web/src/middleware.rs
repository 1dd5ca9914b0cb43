//! The whole middleware stack, built in one function so it reads top to bottom.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use portico_app::identity::Identity;
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

pub(crate) fn layer(router: Router) -> Router {
    router
        .layer(axum::middleware::from_fn(error_envelope))
        .layer(axum::middleware::from_fn(identify))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(CompressionLayer::new())
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, REQUEST_TIMEOUT))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(|_panic: Box<dyn std::any::Any + Send>| {
            tracing::error!("a request handler panicked");
            (StatusCode::INTERNAL_SERVER_ERROR, ErrorMarker).into_response()
        }))
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

/// The identity layer every API route passes through. Without auth configured every caller is
/// anonymous; the auth issue plugs credential checks in here, and handlers already take the
/// `Identity` this inserts.
async fn identify(mut request: Request, next: Next) -> Response {
    request.extensions_mut().insert(Identity::Anonymous);
    next.run(request).await
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
