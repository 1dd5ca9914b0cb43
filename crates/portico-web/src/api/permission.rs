//! Backstage's permission wire formats: `POST /api/permission/authorize` (answered by the
//! policy) and the catalog's plugin endpoints `apply-conditions` and `metadata` under
//! `/api/catalog/.well-known/backstage/permissions/`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use portico_app::identity::Identity;
use portico_app::permission::{ALL, RULES};
use portico_app::{App, Authorization};
use serde_json::{json, Value};

use crate::api::json_response;
use crate::error::ApiError;

fn items(body: &[u8]) -> Result<Vec<Value>, ApiError> {
    let request: Value = serde_json::from_slice(body)
        .map_err(|error| ApiError::input(format!("Invalid request body: {error}")))?;
    match request.get("items") {
        Some(Value::Array(items)) => Ok(items.clone()),
        _ => Err(ApiError::input("Invalid request body: items must be a list")),
    }
}

/// `{items: [{id, permission: {type, name, attributes, resourceType?}, resourceRef?}]}` →
/// `{items: [{id, result: "ALLOW" | "DENY"}]}` (or `CONDITIONAL` with `pluginId`,
/// `resourceType` and `conditions` for a service asking without a resource), ids in order.
pub(crate) async fn authorize(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Identity>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let items = items(&body)?;
    let mut answers = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let id = item.get("id").cloned().unwrap_or(Value::Null);
        let Some(name) = item.pointer("/permission/name").and_then(Value::as_str) else {
            return Err(ApiError::input(format!(
                "Invalid request body: items[{index}].permission.name is required"
            )));
        };
        let action = item.pointer("/permission/attributes/action").and_then(Value::as_str);
        let resource_type = item.pointer("/permission/resourceType").and_then(Value::as_str);
        let resource_ref = item.get("resourceRef").and_then(Value::as_str);
        let answer = match app.authorize(&identity, name, action, resource_type, resource_ref)? {
            Authorization::Allow => json!({ "id": id, "result": "ALLOW" }),
            Authorization::Deny => json!({ "id": id, "result": "DENY" }),
            Authorization::Conditional(conditions) => json!({
                "id": id, "result": "CONDITIONAL", "pluginId": "catalog",
                "resourceType": resource_type.unwrap_or("catalog-entity"), "conditions": conditions,
            }),
        };
        answers.push(answer);
    }
    Ok(json_response(StatusCode::OK, json!({ "items": answers }).to_string()))
}

/// The plugin endpoints are for the permission backend, a service: signed-in users are
/// refused (in the open local mode there are no users, and anyone may call them).
fn service_only(identity: &Identity) -> Result<(), ApiError> {
    match identity {
        Identity::User { .. } => Err(portico_app::Error::NotAllowed(
            "only services may call the permission integration endpoints".into(),
        )
        .into()),
        _ => Ok(()),
    }
}

/// `POST apply-conditions`: `{items: [{id, resourceRef, resourceType, conditions}]}` →
/// `{items: [{id, result}]}`. `resourceRef` may also be a list, answered by a list of results.
pub(crate) async fn apply_conditions(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Identity>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    service_only(&identity)?;
    let items = items(&body)?;
    let mut answers = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let id = item.get("id").cloned().unwrap_or(Value::Null);
        if item.get("resourceType").and_then(Value::as_str) != Some("catalog-entity") {
            return Err(ApiError::input(format!(
                "Invalid request body: items[{index}].resourceType must be \"catalog-entity\""
            )));
        }
        let conditions = item.get("conditions").cloned().unwrap_or(Value::Null);
        let decide = |resource_ref: &str| -> Result<&'static str, ApiError> {
            let allowed = app
                .apply_conditions(&identity, resource_ref, &conditions)
                .map_err(|error| ApiError::input(format!("Invalid request body: items[{index}].{error}")))?;
            Ok(if allowed { "ALLOW" } else { "DENY" })
        };
        let result = match item.get("resourceRef") {
            Some(Value::String(resource_ref)) => json!(decide(resource_ref)?),
            Some(Value::Array(refs)) => {
                let results: Result<Vec<&str>, ApiError> =
                    refs.iter().map(|one| decide(one.as_str().unwrap_or(""))).collect();
                json!(results?)
            }
            _ => {
                return Err(ApiError::input(format!(
                    "Invalid request body: items[{index}].resourceRef is required"
                )))
            }
        };
        answers.push(json!({ "id": id, "result": result }));
    }
    Ok(json_response(StatusCode::OK, json!({ "items": answers }).to_string()))
}

/// `GET metadata` of the catalog: its permissions and rules with their params' JSON Schemas.
pub(crate) async fn metadata(Extension(identity): Extension<Identity>) -> Result<Response, ApiError> {
    plugin_metadata(&identity, "catalog.", "catalog-")
}

/// `GET metadata` of the scaffolder.
pub(crate) async fn scaffolder_metadata(
    Extension(identity): Extension<Identity>,
) -> Result<Response, ApiError> {
    plugin_metadata(&identity, "scaffolder.", "scaffolder-")
}

fn plugin_metadata(identity: &Identity, prefix: &str, resource_prefix: &str) -> Result<Response, ApiError> {
    service_only(identity)?;
    let permissions: Vec<Value> = ALL
        .iter()
        .filter(|permission| permission.name.starts_with(prefix))
        .map(|permission| {
            let mut value = json!({
                "type": if permission.resource_type.is_some() { "resource" } else { "basic" },
                "name": permission.name,
                "attributes": {},
            });
            if !permission.action.is_empty() {
                value["attributes"]["action"] = json!(permission.action);
            }
            if let Some(resource_type) = permission.resource_type {
                value["resourceType"] = json!(resource_type);
            }
            value
        })
        .collect();
    let rules: Vec<Value> = RULES
        .iter()
        .filter(|rule| rule.resource_type.starts_with(resource_prefix))
        .map(|rule| {
            json!({
                "name": rule.name,
                "description": rule.description,
                "resourceType": rule.resource_type,
                "paramsSchema": serde_json::from_str::<Value>(rule.params_schema).unwrap_or(Value::Null),
            })
        })
        .collect();
    Ok(json_response(StatusCode::OK, json!({ "permissions": permissions, "rules": rules }).to_string()))
}

/// `GET /api/permission/policy`: the policy in force, its YAML text and who saved it
/// (`portico.policy.manage`).
pub(crate) async fn get_policy(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Identity>,
) -> Result<Response, ApiError> {
    let Some(active) = app.active_policy(&identity)? else {
        return Err(portico_app::Error::NotFound("permissions are not enabled".into()).into());
    };
    let saved = active.saved.as_ref();
    let body = json!({
        "policy": active.text,
        "source": if saved.is_some() { "saved" } else { "config" },
        "savedBy": saved.map(|saved| saved.updated_by.clone()),
        "savedAt": saved.map(|saved| saved.updated_at),
    });
    Ok(json_response(StatusCode::OK, body.to_string()))
}

/// `PUT /api/permission/policy` with the policy's YAML text as the body: validated, then saved
/// (400 naming the line and field when invalid).
pub(crate) async fn put_policy(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Identity>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let text = std::str::from_utf8(&body).map_err(|_| ApiError::input("the policy must be UTF-8 text"))?;
    app.save_policy(&identity, text).await?;
    get_policy(State(app), Extension(identity)).await
}

/// `DELETE /api/permission/policy`: drops the saved policy, so the configured one applies.
pub(crate) async fn delete_policy(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Identity>,
) -> Result<Response, ApiError> {
    app.reset_policy(&identity).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
