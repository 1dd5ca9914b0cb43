//! Extractors that report malformed input with Backstage's error body.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The query string as ordered `(key, value)` pairs, so repeated parameters (`filter`, `fields`,
/// `facet`) keep every occurrence.
#[derive(Debug, Default)]
pub(crate) struct QueryPairs(pub(crate) Vec<(String, String)>);

impl QueryPairs {
    /// Every value of a parameter, in order.
    pub(crate) fn all(&self, key: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()
    }

    pub(crate) fn first(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Rejects parameters the endpoint does not document, as Backstage's request validation does.
    pub(crate) fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        for (key, _) in &self.0 {
            if !allowed.contains(&key.as_str()) {
                return Err(ApiError::input(format!("Request query parameter \"{key}\" is not allowed")));
            }
        }
        Ok(())
    }

    /// A non-negative integer parameter.
    pub(crate) fn integer(&self, key: &str) -> Result<Option<usize>, ApiError> {
        match self.first(key) {
            None => Ok(None),
            Some(text) => text.trim().parse::<usize>().map(Some).map_err(|_| {
                ApiError::input(format!(
                    "Invalid {key} query parameter, must be a non-negative integer but got \"{text}\""
                ))
            }),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<QueryPairs, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        Ok(QueryPairs(url::form_urlencoded::parse(query.as_bytes()).into_owned().collect()))
    }
}

/// A JSON body that fails with Backstage's message when missing or malformed.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<JsonBody<T>, ApiError> {
        let content_type = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|error| ApiError::input(format!("Malformed request body, {error}")))?;
        let is_json = content_type.as_deref().is_some_and(|content_type| {
            content_type
                .split(';')
                .next()
                .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
        });
        if !is_json {
            return Err(ApiError::input(
                "Malformed request body (did you remember to specify an application/json content type?), expected a JSON body",
            ));
        }
        if bytes.is_empty() {
            return Err(ApiError::input("Missing request body"));
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|error| {
            ApiError::input(format!(
                "Malformed request body (did you remember to specify an application/json content type?), {error}"
            ))
        })
    }
}
