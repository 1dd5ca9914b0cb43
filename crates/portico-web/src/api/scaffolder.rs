//! Backstage's scaffolder API under `/api/scaffolder` (reference scaffolder §8).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Extension;
use base64::Engine as _;
use portico_app::identity::Identity;
use portico_app::scaffolder::{TaskView, ValueProblem};
use portico_app::App;
use portico_store::{TaskEventRow, TaskQuery};
use serde_json::{json, Value};

use crate::api::{iso_millis, json_response};
use crate::error::ApiError;

fn body_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|error| ApiError::input(format!("Invalid request body: {error}")))
}

fn secrets_of(body: &Value) -> Result<BTreeMap<String, String>, ApiError> {
    match body.get("secrets") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(entries)) => entries
            .iter()
            .map(|(key, value)| match value {
                Value::String(text) => Ok((key.clone(), text.clone())),
                _ => Err(ApiError::input(format!("Invalid request body: secrets.{key} must be a string"))),
            })
            .collect(),
        Some(_) => Err(ApiError::input("Invalid request body: secrets must be an object of strings")),
    }
}

/// `400 {errors: [...]}` in the shape of Backstage's JSON Schema validator.
fn validation_errors(problems: Vec<ValueProblem>) -> Response {
    let errors: Vec<Value> = problems
        .into_iter()
        .map(|problem| {
            let property = problem.path.iter().fold(String::from("instance"), |mut out, part| {
                match part {
                    Value::Number(index) => out.push_str(&format!("[{index}]")),
                    Value::String(name) => {
                        out.push('.');
                        out.push_str(name);
                    }
                    _ => {}
                }
                out
            });
            json!({
                "path": problem.path,
                "property": property,
                "message": problem.message,
                "name": problem.name,
                "argument": problem.argument,
                "stack": format!("{property} {}", problem.message),
            })
        })
        .collect();
    json_response(StatusCode::BAD_REQUEST, json!({ "errors": errors }).to_string())
}

fn task_json(view: &TaskView) -> Value {
    let row = &view.row;
    let mut task = json!({
        "id": row.id,
        "spec": view.spec,
        "status": row.status,
        "createdAt": iso_millis(row.created_at),
        "createdBy": row.created_by.clone().unwrap_or_default(),
    });
    if let Some(heartbeat) = row.last_heartbeat_at {
        task["lastHeartbeatAt"] = json!(iso_millis(heartbeat));
    }
    if let Some(state) = row.state.as_deref().and_then(|text| serde_json::from_str::<Value>(text).ok()) {
        task["state"] = state;
    }
    task
}

fn event_json(event: &TaskEventRow) -> Value {
    json!({
        "id": event.id,
        "taskId": event.task_id,
        "body": serde_json::from_str::<Value>(&event.body).unwrap_or(Value::Null),
        "type": event.event_type,
        "createdAt": iso_millis(event.created_at),
    })
}

/// `GET /v2/templates/:namespace/:kind/:name/parameter-schema`.
pub(crate) async fn parameter_schema(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Identity>,
    Path((namespace, kind, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let template = app.template(&identity, &format!("{kind}:{namespace}/{name}"))?;
    let steps: Vec<Value> = template
        .pages
        .iter()
        .map(|page| {
            json!({
                "title": page.get("title").and_then(Value::as_str).unwrap_or("Please enter the following information"),
                "description": page.get("description"),
                "schema": page,
            })
        })
        .collect();
    let mut answer = json!({
        "title": template.title,
        "description": template.description,
        "steps": steps,
    });
    for (key, value) in [
        ("ui:options", &template.ui_options),
        ("presentation", &template.presentation),
        ("formDecorators", &template.form_decorators),
    ] {
        if let Some(value) = value {
            answer[key] = value.clone();
        }
    }
    Ok(json_response(StatusCode::OK, answer.to_string()))
}

/// `GET /v2/actions`, sorted by id.
pub(crate) async fn list_actions(State(app): State<Arc<App>>) -> Response {
    let actions: Vec<Value> = app
        .scaffolder()
        .actions()
        .iter()
        .map(|action| {
            let examples: Vec<Value> = action
                .examples()
                .into_iter()
                .map(|(description, example)| json!({ "description": description, "example": example }))
                .collect();
            json!({
                "id": action.id(),
                "description": action.description(),
                "examples": examples,
                "schema": { "input": action.input_schema(), "output": action.output_schema() },
            })
        })
        .collect();
    json_response(StatusCode::OK, Value::Array(actions).to_string())
}

/// `POST /v2/tasks` → `201 {id}`.
pub(crate) async fn create_task(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Identity>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body = body_json(&body)?;
    let template_ref = body
        .get("templateRef")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::input("Invalid request body: templateRef must be a string"))?;
    let values = body.get("values").cloned().unwrap_or_else(|| json!({}));
    if !values.is_object() {
        return Err(ApiError::input("Invalid request body: values must be an object"));
    }
    let secrets = secrets_of(&body)?;
    match app.create_task(&identity, template_ref, values, secrets).await? {
        Ok(id) => Ok(json_response(StatusCode::CREATED, json!({ "id": id }).to_string())),
        Err(problems) => Ok(validation_errors(problems)),
    }
}

/// `GET /v2/tasks?createdBy=&status=&order=desc:created_at&limit=&offset=`.
pub(crate) async fn list_tasks(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Identity>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut filter = TaskQuery::default();
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let number = |value: &str| {
            value.parse::<i64>().ok().filter(|number| *number >= 0).ok_or_else(|| {
                ApiError::input(format!("Invalid query: {key} must be a non-negative integer, got {value}"))
            })
        };
        match key.as_ref() {
            "createdBy" => filter.created_by.push(value.into_owned()),
            "status" => filter.status.push(value.into_owned()),
            "limit" => filter.limit = Some(number(&value)?),
            "offset" => filter.offset = Some(number(&value)?),
            "order" => {
                let (direction, field) = value.split_once(':').unwrap_or(("asc", &value));
                let descending = match direction {
                    "asc" => false,
                    "desc" => true,
                    _ => {
                        return Err(ApiError::input(format!(
                            "Invalid order {value}: use asc:<field> or desc:<field>"
                        )))
                    }
                };
                let column = TaskQuery::column(field).ok_or_else(|| {
                    ApiError::input(format!("Invalid order {value}: unknown field {field}"))
                })?;
                filter.order.push((column, descending));
            }
            _ => {}
        }
    }
    let (tasks, total) = app.list_tasks(&identity, &filter).await?;
    let tasks: Vec<Value> = tasks.iter().map(task_json).collect();
    Ok(json_response(StatusCode::OK, json!({ "tasks": tasks, "totalTasks": total }).to_string()))
}

/// `GET /v2/tasks/:id`.
pub(crate) async fn get_task(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Identity>,
    Path(task_id): Path<String>,
) -> Result<Response, ApiError> {
    let task = app.task(&identity, &task_id).await?;
    Ok(json_response(StatusCode::OK, task_json(&task).to_string()))
}

fn after_of(query: Option<String>) -> Result<i64, ApiError> {
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if key == "after" {
            return value.parse().map_err(|_| {
                ApiError::input(format!("Invalid query: after must be an event id, got {value}"))
            });
        }
    }
    Ok(0)
}

/// `GET /v2/tasks/:id/eventstream`: Server-Sent Events, the backlog after `after` first, then
/// events as they come; the response ends after the completion event.
pub(crate) async fn event_stream(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Identity>,
    Path(task_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let after = after_of(query)?;
    // Refused before the stream starts when the task is unknown or unreadable.
    app.task(&identity, &task_id).await?;
    struct Cursor {
        app: Arc<App>,
        identity: Identity,
        task_id: String,
        after: i64,
        done: bool,
        first: bool,
    }
    let cursor = Cursor { app, identity, task_id, after, done: false, first: true };
    let stream = futures::stream::unfold(cursor, |mut cursor| async move {
        if cursor.done {
            return None;
        }
        if !cursor.first {
            // Other servers' events show up within a second; this server's at once.
            cursor.app.scaffolder().next_event(Duration::from_secs(1)).await;
        }
        cursor.first = false;
        let events = match cursor.app.task_events(&cursor.identity, &cursor.task_id, cursor.after).await {
            Ok(events) => events,
            Err(_) => return None,
        };
        if events.is_empty() {
            // A comment keeps proxies from closing an idle stream; clients ignore it.
            return Some((Ok::<_, std::convert::Infallible>(String::from(":\n\n")), cursor));
        }
        let mut chunk = String::new();
        for event in &events {
            chunk.push_str(&format!("event: {}\ndata: {}\n\n", event.event_type, event_json(event)));
            cursor.after = event.id;
            if event.event_type == "completion" {
                cursor.done = true;
                break;
            }
        }
        Some((Ok(chunk), cursor))
    });
    let mut response = Response::new(Body::from_stream(stream));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// `GET /v2/tasks/:id/events?after=`: the events after `after` as soon as there is one, or
/// `[]` after 30 seconds.
pub(crate) async fn events(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Identity>,
    Path(task_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let after = after_of(query)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let events = app.task_events(&identity, &task_id, after).await?;
        if !events.is_empty() || tokio::time::Instant::now() >= deadline {
            let events: Vec<Value> = events.iter().map(event_json).collect();
            return Ok(json_response(StatusCode::OK, Value::Array(events).to_string()));
        }
        app.scaffolder().next_event(Duration::from_secs(1)).await;
    }
}

/// `POST /v2/tasks/:id/cancel` → `{status: "cancelled"}`.
pub(crate) async fn cancel_task(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Identity>,
    Path(task_id): Path<String>,
) -> Result<Response, ApiError> {
    app.cancel_task(&identity, &task_id).await?;
    Ok(json_response(StatusCode::OK, json!({ "status": "cancelled" }).to_string()))
}

/// `POST /v2/tasks/:id/retry` → `201 {id}`.
pub(crate) async fn retry_task(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Identity>,
    Path(task_id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body = if body.is_empty() { json!({}) } else { body_json(&body)? };
    let secrets = secrets_of(&body)?;
    app.retry_task(&identity, &task_id, secrets).await?;
    Ok(json_response(StatusCode::CREATED, json!({ "id": task_id }).to_string()))
}

/// `POST /v2/dry-run`.
pub(crate) async fn dry_run(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Identity>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body = body_json(&body)?;
    let template = body.get("template").ok_or_else(|| ApiError::input("Input template is not a template"))?;
    let values = body.get("values").cloned().unwrap_or_else(|| json!({}));
    let mut files = Vec::new();
    for (index, file) in
        body.get("directoryContents").and_then(Value::as_array).into_iter().flatten().enumerate()
    {
        let (Some(path), Some(content)) =
            (file.get("path").and_then(Value::as_str), file.get("base64Content").and_then(Value::as_str))
        else {
            return Err(ApiError::input(format!(
                "Invalid request body: directoryContents[{index}] needs path and base64Content"
            )));
        };
        let bytes = base64::engine::general_purpose::STANDARD.decode(content).map_err(|error| {
            ApiError::input(format!(
                "Invalid request body: directoryContents[{index}].base64Content: {error}"
            ))
        })?;
        files.push((path.to_owned(), bytes));
    }
    let result = match app.dry_run_template(&identity, template, values, files).await? {
        Ok(result) => result,
        Err(problems) => return Ok(validation_errors(problems)),
    };
    let log: Vec<Value> = result.log.into_iter().map(|body| json!({ "body": body })).collect();
    let contents: Vec<Value> = result
        .files
        .into_iter()
        .map(|(path, executable, bytes)| {
            json!({
                "path": path,
                "executable": executable,
                "base64Content": base64::engine::general_purpose::STANDARD.encode(bytes),
            })
        })
        .collect();
    let answer =
        json!({ "log": log, "output": result.output, "steps": result.steps, "directoryContents": contents });
    Ok(json_response(StatusCode::OK, answer.to_string()))
}

/// `GET /v2/templating-extensions`: the filters Portico adds to the standard ones.
pub(crate) async fn templating_extensions() -> Response {
    let filters = json!({
        "parseRepoUrl": { "description": "Parses a RepoUrlPicker value (host?owner=&repo=) into {host, owner, repo, organization, workspace, project}." },
        "parseEntityRef": { "description": "Parses an entity ref into {kind, namespace, name}; accepts {defaultKind, defaultNamespace}." },
        "pick": { "description": "Reads a nested property by path, e.g. pick('metadata.name')." },
        "projectSlug": { "description": "owner/repo of a RepoUrlPicker value." },
    });
    json_response(
        StatusCode::OK,
        json!({ "filters": filters, "globals": { "functions": {}, "values": {} } }).to_string(),
    )
}
