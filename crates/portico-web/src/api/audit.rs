//! `GET /api/audit/events`: the audit log, newest first (a Portico addition; Backstage keeps its
//! audit events in logs only).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use portico_app::identity::Identity;
use portico_app::App;
use serde_json::json;

use crate::api::json_response;
use crate::error::ApiError;
use crate::extract::QueryPairs;

/// `?limit=` (default 100, at most 1000) and `?before=<id>` for the next page.
pub(crate) async fn events(
    State(app): State<Arc<App>>,
    Extension(identity): Extension<Identity>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    let limit = query.integer("limit")?.unwrap_or(100);
    let before = match query.first("before") {
        Some(text) => Some(
            text.parse::<i64>()
                .map_err(|_| ApiError::input(format!("Invalid before, not an integer: {text}")))?,
        ),
        None => None,
    };
    let rows = app.audit_records(&identity, limit, before).await?;
    let next_before = if rows.len() == limit.clamp(1, 1000) { rows.last().map(|row| row.id) } else { None };
    let items: Vec<_> = rows
        .iter()
        .map(|row| {
            json!({
                "id": row.id,
                "at": row.at,
                "actor": row.actor,
                "action": row.action,
                "target": row.target,
                "source": row.source,
                "detail": row.detail,
            })
        })
        .collect();
    Ok(json_response(StatusCode::OK, json!({ "items": items, "nextBefore": next_before }).to_string()))
}
