//! `POST /api/permission/authorize`: Backstage's permission check, answered by the policy.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use portico_app::identity::Identity;
use portico_app::App;
use serde_json::{json, Value};

use crate::api::json_response;
use crate::error::ApiError;

/// `{items: [{id, permission: {type, name, attributes}, resourceRef?}]}` →
/// `{items: [{id, result: "ALLOW" | "DENY"}]}`, ids echoed in order.
pub(crate) async fn authorize(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Identity>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request: Value = serde_json::from_slice(&body)
        .map_err(|error| ApiError::input(format!("Invalid request body: {error}")))?;
    let Some(items) = request.get("items").and_then(Value::as_array) else {
        return Err(ApiError::input("Invalid request body: items must be a list"));
    };
    let mut answers = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let id = item.get("id").cloned().unwrap_or(Value::Null);
        let Some(name) = item.pointer("/permission/name").and_then(Value::as_str) else {
            return Err(ApiError::input(format!(
                "Invalid request body: items[{index}].permission.name is required"
            )));
        };
        let resource_ref = item.get("resourceRef").and_then(Value::as_str);
        let allowed = app.authorize(&identity, name, resource_ref)?;
        answers.push(json!({ "id": id, "result": if allowed { "ALLOW" } else { "DENY" } }));
    }
    Ok(json_response(StatusCode::OK, json!({ "items": answers }).to_string()))
}
