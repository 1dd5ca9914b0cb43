//! The one place where use-case errors become HTTP statuses and Backstage's error body:
//! `{"error": {"name", "message"}, "request": {"method", "url"}, "response": {"statusCode"}}`.
//!
//! Handlers return `ApiError`; its response carries the error in an extension, and the
//! `error_envelope` middleware, which knows the request, writes the body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portico_app::Error;

#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) name: &'static str,
    pub(crate) message: String,
    pub(crate) status: StatusCode,
}

/// Carried from `ApiError` to the envelope middleware.
#[derive(Debug, Clone)]
pub(crate) struct ErrorInfo {
    pub(crate) name: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn input(message: impl Into<String>) -> ApiError {
        ApiError { name: "InputError", message: message.into(), status: StatusCode::BAD_REQUEST }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> ApiError {
        let (name, status) = match &error {
            Error::Input(_) | Error::Invalid(_) => ("InputError", StatusCode::BAD_REQUEST),
            Error::NotFound(_) => ("NotFoundError", StatusCode::NOT_FOUND),
            Error::Conflict(_) => ("ConflictError", StatusCode::CONFLICT),
            Error::NotAllowed(_) => ("NotAllowedError", StatusCode::FORBIDDEN),
            Error::Store(_) => ("Error", StatusCode::INTERNAL_SERVER_ERROR),
        };
        let message = match &error {
            // Server faults are logged once here; the client gets a generic message.
            Error::Store(source) => {
                tracing::error!(error = %source, "request failed on the database");
                "Internal server error".to_owned()
            }
            other => other.to_string(),
        };
        ApiError { name, message, status }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(ErrorInfo { name: self.name, message: self.message });
        response
    }
}
