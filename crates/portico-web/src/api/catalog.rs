//! `/api/catalog`: Backstage's catalog REST API (reference catalog.md §7).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use base64::Engine as _;
use portico_app::identity::Identity;
use portico_app::query::{FullTextFilter, ListRequest, OrderField, QueryFilter, QueryRequest, SortOrder};
use portico_app::App;
use portico_query::fields::parse_fields;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::api::{join_items, json_response};
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryPairs};

type AppState = State<Arc<App>>;

/// Entities per chunk when streaming a full list.
const STREAM_CHUNK: usize = 500;

fn fields_of(params: &[String]) -> Result<Vec<String>, ApiError> {
    parse_fields(params).map_err(|error| ApiError::input(error.message))
}

fn filter_of(params: Vec<String>) -> QueryFilter {
    if params.is_empty() {
        QueryFilter::None
    } else {
        QueryFilter::Params(params)
    }
}

/// `GET /entities`.
pub(crate) async fn list_entities(
    State(app): AppState,
    Extension(identity): Extension<Identity>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    query.only(&["filter", "fields", "offset", "limit", "after", "order"])?;
    let mut order = Vec::new();
    for item in query.all("order") {
        let parsed = item.split_once(':').and_then(|(direction, field)| {
            let direction = match direction {
                "asc" => SortOrder::Asc,
                "desc" => SortOrder::Desc,
                _ => return None,
            };
            (!field.is_empty()).then(|| OrderField { field: field.to_owned(), order: direction })
        });
        match parsed {
            Some(field) => order.push(field),
            None => {
                return Err(ApiError::input(format!(
                    "Invalid order parameter \"{item}\", expected \"<asc or desc>:<field name>\""
                )))
            }
        }
    }
    let mut limit = query.integer("limit")?;
    let mut offset = query.integer("offset")?;
    if let Some(after) = query.first("after") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(after)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .ok_or_else(|| ApiError::input("Malformed after cursor, could not be parsed"))?;
        limit = decoded.get("limit").and_then(Value::as_u64).map(|value| value as usize).or(limit);
        offset = decoded.get("offset").and_then(Value::as_u64).map(|value| value as usize).or(offset);
    }
    if limit == Some(0) {
        return Err(ApiError::input("Invalid limit, must be greater than zero"));
    }
    let request = ListRequest {
        filter: filter_of(query.all("filter")),
        fields: fields_of(&query.all("fields"))?,
        order,
        offset,
        limit,
    };
    let page = app.list_entities(&identity, &request)?;
    let mut response = stream_array(page.items);
    if let Some((limit, offset)) = page.next {
        let cursor = base64::engine::general_purpose::STANDARD
            .encode(json!({ "limit": limit, "offset": offset }).to_string());
        let mut pairs = url::form_urlencoded::Serializer::new(String::new());
        for (key, value) in &query.0 {
            if key != "offset" && key != "after" && key != "limit" {
                pairs.append_pair(key, value);
            }
        }
        pairs.append_pair("after", &cursor);
        let link = format!("</entities?{}>; rel=\"next\"", pairs.finish());
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(response)
}

/// Streams a JSON array of entity texts in chunks, each built only when the client is ready for
/// it: the entities are shared with the index (`Arc`), so a response of every entity never
/// exists as one string in memory.
fn stream_array(items: Vec<Arc<str>>) -> Response {
    let total = items.len();
    let chunk_count = total.div_ceil(STREAM_CHUNK);
    let items = Arc::new(items);
    let chunks = (0..chunk_count).map(move |chunk_index| {
        let start = chunk_index * STREAM_CHUNK;
        let chunk = &items[start..(start + STREAM_CHUNK).min(total)];
        let mut text = String::with_capacity(chunk.iter().map(|item| item.len() + 1).sum::<usize>() + 2);
        text.push(if chunk_index == 0 { '[' } else { ',' });
        for (index, item) in chunk.iter().enumerate() {
            if index > 0 {
                text.push(',');
            }
            text.push_str(item);
        }
        if chunk_index + 1 == chunk_count {
            text.push(']');
        }
        Ok::<_, std::convert::Infallible>(text)
    });
    if chunk_count == 0 {
        return json_response(StatusCode::OK, "[]");
    }
    json_response(StatusCode::OK, Body::from_stream(futures::stream::iter(chunks)))
}

/// `GET /entities/by-query`.
pub(crate) async fn query_entities(
    State(app): AppState,
    Extension(identity): Extension<Identity>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    query.only(&[
        "fields",
        "limit",
        "offset",
        "orderField",
        "cursor",
        "filter",
        "totalItems",
        "fullTextFilterTerm",
        "fullTextFilterFields",
    ])?;
    let mut order = None;
    for (index, item) in query.all("orderField").into_iter().enumerate() {
        let (field, direction) = match item.split_once(',') {
            Some((field, direction)) => (field.to_owned(), direction),
            None => (item.clone(), "asc"),
        };
        let direction = match direction {
            "asc" => SortOrder::Asc,
            "desc" => SortOrder::Desc,
            _ => return Err(ApiError::input("Invalid order field order, must be asc or desc")),
        };
        // Only the first order field is honoured, as in Backstage.
        if index == 0 {
            order = Some(OrderField { field, order: direction });
        }
    }
    let full_text = query.first("fullTextFilterTerm").map(|term| FullTextFilter {
        term: term.to_owned(),
        fields: query.first("fullTextFilterFields").map(|fields| {
            fields.split(',').map(str::trim).filter(|f| !f.is_empty()).map(str::to_owned).collect()
        }),
    });
    let request = QueryRequest {
        filter: filter_of(query.all("filter")),
        order,
        full_text,
        fields: fields_of(&query.all("fields"))?,
        limit: query.integer("limit")?,
        offset: query.integer("offset")?,
        include_total: total_items(query.first("totalItems"))?,
        cursor: query.first("cursor").map(str::to_owned),
        only_with_errors: false,
    };
    page_response(&app, &identity, request)
}

fn total_items(value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None | Some("include") => Ok(true),
        Some("exclude") => Ok(false),
        Some(other) => Err(ApiError::input(format!(
            "Invalid totalItems parameter \"{other}\", must be one of include, exclude"
        ))),
    }
}

fn page_response(app: &App, identity: &Identity, request: QueryRequest) -> Result<Response, ApiError> {
    let page = app.query_entities(identity, request)?;
    let mut page_info = Map::new();
    if let Some(next) = page.next_cursor {
        page_info.insert("nextCursor".into(), Value::String(next));
    }
    if let Some(prev) = page.prev_cursor {
        page_info.insert("prevCursor".into(), Value::String(prev));
    }
    let body = format!(
        "{{\"items\":{},\"totalItems\":{},\"pageInfo\":{}}}",
        join_items(&page.items, false),
        page.total_items,
        Value::Object(page_info)
    );
    Ok(json_response(StatusCode::OK, body))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct QueryBody {
    query: Option<Value>,
    order_by: Option<Vec<OrderField>>,
    full_text_filter: Option<FullTextFilter>,
    fields: Option<Vec<String>>,
    limit: Option<usize>,
    offset: Option<usize>,
    total_items: Option<String>,
    cursor: Option<String>,
}

/// `POST /entities/by-query`.
pub(crate) async fn query_entities_by_predicate(
    State(app): AppState,
    Extension(identity): Extension<Identity>,
    JsonBody(body): JsonBody<QueryBody>,
) -> Result<Response, ApiError> {
    if body.cursor.as_deref() == Some("") {
        return Err(ApiError::input("Cursor cannot be empty"));
    }
    let request = QueryRequest {
        filter: body.query.map_or(QueryFilter::None, QueryFilter::Predicate),
        order: body.order_by.and_then(|order| order.into_iter().next()),
        full_text: body.full_text_filter,
        fields: fields_of(&body.fields.unwrap_or_default())?,
        limit: body.limit,
        offset: body.offset,
        include_total: total_items(body.total_items.as_deref())?,
        cursor: body.cursor,
        only_with_errors: false,
    };
    page_response(&app, &identity, request)
}

/// `GET /entities/by-uid/{uid}`.
pub(crate) async fn get_entity_by_uid(
    State(app): AppState,
    Extension(identity): Extension<Identity>,
    query: QueryPairs,
    Path(uid): Path<String>,
) -> Result<Response, ApiError> {
    query.only(&[])?;
    let body = app.entity_by_uid(&identity, &uid)?;
    Ok(json_response(StatusCode::OK, body.to_string()))
}

/// `DELETE /entities/by-uid/{uid}`.
pub(crate) async fn delete_entity_by_uid(
    State(app): AppState,
    Extension(identity): Extension<Identity>,
    Path(uid): Path<String>,
) -> Result<Response, ApiError> {
    app.delete_entity(&identity, &uid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /entities/by-name/{kind}/{namespace}/{name}`.
pub(crate) async fn get_entity_by_name(
    State(app): AppState,
    Extension(identity): Extension<Identity>,
    query: QueryPairs,
    Path((kind, namespace, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    query.only(&[])?;
    let body = app.entity_by_name(&identity, &kind, &namespace, &name)?;
    Ok(json_response(StatusCode::OK, body.to_string()))
}

/// `GET /entities/by-name/{kind}/{namespace}/{name}/ancestry`.
pub(crate) async fn get_entity_ancestry(
    State(app): AppState,
    Extension(identity): Extension<Identity>,
    Path((kind, namespace, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (root, items) = app.entity_ancestry(&identity, &kind, &namespace, &name).await?;
    let mut body = String::from("{\"rootEntityRef\":");
    body.push_str(&Value::String(root).to_string());
    body.push_str(",\"items\":[");
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            body.push(',');
        }
        body.push_str("{\"entity\":");
        body.push_str(&item.entity);
        body.push_str(",\"parentEntityRefs\":");
        body.push_str(&json!(item.parent_entity_refs).to_string());
        body.push('}');
    }
    body.push_str("]}");
    Ok(json_response(StatusCode::OK, body))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ByRefsBody {
    entity_refs: Vec<String>,
    fields: Option<Vec<String>>,
    query: Option<Value>,
}

/// `POST /entities/by-refs`.
pub(crate) async fn get_entities_by_refs(
    State(app): AppState,
    Extension(identity): Extension<Identity>,
    query: QueryPairs,
    JsonBody(body): JsonBody<ByRefsBody>,
) -> Result<Response, ApiError> {
    query.only(&["filter", "fields"])?;
    let mut fields = fields_of(&query.all("fields"))?;
    fields.extend(fields_of(&body.fields.unwrap_or_default())?);
    let params = query.all("filter");
    let filter = match (params.is_empty(), body.query) {
        (true, None) => QueryFilter::None,
        (false, None) => QueryFilter::Params(params),
        (true, Some(predicate)) => QueryFilter::Predicate(predicate),
        // Both: the query-string filter sets, each AND-ed with the predicate.
        (false, Some(predicate)) => {
            let params_filter = QueryFilter::Params(params).parse()?;
            let predicate_filter = QueryFilter::Predicate(predicate).parse()?;
            return by_refs_response(
                &app,
                &identity,
                &body.entity_refs,
                params_filter,
                predicate_filter,
                &fields,
            );
        }
    };
    let items = app.entities_by_refs(&identity, &body.entity_refs, &filter, &fields)?;
    Ok(json_response(StatusCode::OK, by_refs_body(items)))
}

fn by_refs_response(
    app: &App,
    identity: &Identity,
    refs: &[String],
    first: Option<portico_query::filter::Filter>,
    second: Option<portico_query::filter::Filter>,
    fields: &[String],
) -> Result<Response, ApiError> {
    let a = app.entities_by_refs(identity, refs, &QueryFilter::None, fields)?;
    let index = app.catalog().read();
    let set_a = index.eval(first.as_ref());
    let set_b = index.eval(second.as_ref());
    let items = refs
        .iter()
        .zip(a)
        .map(|(entity_ref, item)| {
            let slot = index.slot_of_ref(entity_ref)?;
            (set_a.contains(slot) && set_b.contains(slot)).then_some(item).flatten()
        })
        .collect();
    Ok(json_response(StatusCode::OK, by_refs_body(items)))
}

fn by_refs_body(items: Vec<Option<Arc<str>>>) -> String {
    let items: Vec<Arc<str>> = items.into_iter().map(|item| item.unwrap_or_else(|| Arc::from(""))).collect();
    format!("{{\"items\":{}}}", join_items(&items, true))
}

/// `GET /entity-facets`.
pub(crate) async fn get_entity_facets(
    State(app): AppState,
    Extension(identity): Extension<Identity>,
    query: QueryPairs,
) -> Result<Response, ApiError> {
    query.only(&["facet", "filter"])?;
    let facets: Vec<String> = query.all("facet").into_iter().filter(|facet| !facet.is_empty()).collect();
    if facets.is_empty() {
        return Err(ApiError::input("Missing facet parameter"));
    }
    facets_response(&app, &identity, &filter_of(query.all("filter")), &facets)
}

#[derive(Debug, Deserialize)]
pub(crate) struct FacetsBody {
    facets: Option<Vec<String>>,
    query: Option<Value>,
}

/// `POST /entity-facets`.
pub(crate) async fn post_entity_facets(
    State(app): AppState,
    Extension(identity): Extension<Identity>,
    JsonBody(body): JsonBody<FacetsBody>,
) -> Result<Response, ApiError> {
    let facets = body.facets.unwrap_or_default();
    if facets.is_empty() {
        return Err(ApiError::input("Missing or empty facets parameter"));
    }
    let filter = body.query.map_or(QueryFilter::None, QueryFilter::Predicate);
    facets_response(&app, &identity, &filter, &facets)
}

fn facets_response(
    app: &App,
    identity: &Identity,
    filter: &QueryFilter,
    facets: &[String],
) -> Result<Response, ApiError> {
    let result = app.entity_facets(identity, filter, facets)?;
    let mut out = Map::new();
    for (facet, values) in result {
        let values: Vec<Value> =
            values.into_iter().map(|(value, count)| json!({ "value": value, "count": count })).collect();
        out.insert(facet, Value::Array(values));
    }
    Ok(json_response(StatusCode::OK, json!({ "facets": out }).to_string()))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RefreshBody {
    entity_ref: String,
    authorization_token: Option<String>,
}

/// `POST /refresh`. An `authorizationToken` in the body is used instead of the request's
/// credentials (reference §7, `POST /refresh`).
pub(crate) async fn refresh_entity(
    State(app): AppState,
    Extension(identity): Extension<Identity>,
    Extension(auth): Extension<std::sync::Arc<portico_auth::Auth>>,
    JsonBody(body): JsonBody<RefreshBody>,
) -> Result<Response, ApiError> {
    let identity = match body.authorization_token.as_deref().filter(|token| !token.is_empty()) {
        None => identity,
        Some(token) => {
            let principal = auth.authenticate(token).await.map_err(|error| ApiError {
                name: "AuthenticationError",
                message: format!("authorizationToken: {error}"),
                status: StatusCode::UNAUTHORIZED,
            })?;
            crate::middleware::identity_for(principal, "catalog").map_err(portico_app::Error::NotAllowed)?
        }
    };
    app.refresh_entity(&identity, &body.entity_ref).await?;
    Ok(StatusCode::OK.into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct ValidateBody {
    entity: Value,
    location: String,
}

/// `POST /validate-entity`: 200 empty, or 400 `{"errors": [...]}` (its own error shape).
pub(crate) async fn validate_entity(
    State(app): AppState,
    Extension(identity): Extension<Identity>,
    JsonBody(body): JsonBody<ValidateBody>,
) -> Result<Response, ApiError> {
    match app.validate_entity(&identity, body.entity, &body.location).await {
        Ok(()) => Ok(StatusCode::OK.into_response()),
        Err(portico_app::Error::Invalid(errors)) => {
            let errors: Vec<Value> = errors.iter().map(|error| error.to_json()).collect();
            Ok(json_response(StatusCode::BAD_REQUEST, json!({ "errors": errors }).to_string()))
        }
        Err(other) => Err(other.into()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AnalyzeBody {
    location: LocationSpec,
    catalog_filename: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct LocationSpec {
    #[serde(rename = "type")]
    kind: String,
    target: String,
}

/// `POST /analyze-location`.
pub(crate) async fn analyze_location(
    State(app): AppState,
    Extension(identity): Extension<Identity>,
    JsonBody(body): JsonBody<AnalyzeBody>,
) -> Result<Response, ApiError> {
    let url = url::Url::parse(&body.location.target)
        .map_err(|_| ApiError::input("The given location.target is not a URL"))?;
    let _ = &body.location.kind;
    let filename = body.catalog_filename.unwrap_or_else(|| "catalog-info.yaml".into());
    let analysis = app.analyze_location(&identity, &url, &filename).await?;
    Ok(json_response(StatusCode::OK, analysis.to_string()))
}

fn location_json(location: &portico_store::LocationRow) -> Value {
    json!({ "id": location.id, "type": location.kind, "target": location.target, "entityRef": location.entity_ref })
}

/// `GET /locations`.
pub(crate) async fn list_locations(
    State(app): AppState,
    Extension(identity): Extension<Identity>,
) -> Result<Response, ApiError> {
    let locations = app.list_locations(&identity).await?;
    let items: Vec<Value> =
        locations.iter().map(|location| json!({ "data": location_json(location) })).collect();
    Ok(json_response(StatusCode::OK, Value::Array(items).to_string()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateLocationBody {
    #[serde(rename = "type")]
    kind: String,
    target: String,
    #[allow(dead_code)]
    presence: Option<String>,
}

/// `POST /locations`.
pub(crate) async fn create_location(
    State(app): AppState,
    Extension(identity): Extension<Identity>,
    query: QueryPairs,
    JsonBody(body): JsonBody<CreateLocationBody>,
) -> Result<Response, ApiError> {
    query.only(&["dryRun", "onConflict"])?;
    let dry_run = match query.first("dryRun") {
        None => false,
        Some("true" | "yes" | "1") => true,
        Some("false" | "no" | "0") => false,
        Some(other) => return Err(ApiError::input(format!("Invalid dryRun parameter \"{other}\""))),
    };
    let on_conflict = match query.first("onConflict") {
        None => None,
        Some("reject") => Some(false),
        Some("refresh") => Some(true),
        Some(other) => {
            return Err(ApiError::input(format!(
                "Invalid onConflict parameter \"{other}\", must be one of reject, refresh"
            )))
        }
    };
    let created = app.create_location(&identity, &body.kind, &body.target, dry_run, on_conflict).await?;
    let mut out = json!({
        "location": location_json(&created.location),
        "entities": created.entities,
    });
    if let Some(exists) = created.exists {
        out["exists"] = Value::Bool(exists);
    }
    Ok(json_response(StatusCode::CREATED, out.to_string()))
}

#[derive(Debug, Deserialize)]
pub(crate) struct LocationsQueryBody {
    limit: Option<i64>,
    query: Option<Value>,
    cursor: Option<String>,
}

/// `POST /locations/by-query`.
pub(crate) async fn query_locations(
    State(app): AppState,
    Extension(identity): Extension<Identity>,
    JsonBody(body): JsonBody<LocationsQueryBody>,
) -> Result<Response, ApiError> {
    #[derive(serde::Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct LocationCursor {
        limit: usize,
        after_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        query: Option<Value>,
    }
    let (limit, after, predicate) = match body.cursor {
        Some(cursor) if cursor.is_empty() => return Err(ApiError::input("Cursor cannot be empty")),
        Some(cursor) => {
            let decoded: LocationCursor =
                portico_query::cursor::decode(&cursor).map_err(|error| ApiError::input(error.message))?;
            (decoded.limit, Some(decoded.after_id), decoded.query)
        }
        None => {
            let limit = match body.limit {
                None => 1000,
                Some(limit) if limit >= 1 => limit as usize,
                Some(_) => return Err(ApiError::input("Limit must be a positive integer >= 1")),
            };
            (limit, None, body.query)
        }
    };
    let filter = match &predicate {
        Some(predicate) => Some(
            portico_query::filter::parse_location_predicate(predicate)
                .map_err(|error| ApiError::input(error.message))?,
        ),
        None => None,
    };
    let all = app.list_locations(&identity).await?;
    let matching: Vec<&portico_store::LocationRow> = all
        .iter()
        .filter(|location| {
            filter.as_ref().is_none_or(|filter| {
                portico_query::filter::matches_location(filter, &|field| match field {
                    portico_query::filter::LocationField::Id => Some(location.id.as_str()),
                    portico_query::filter::LocationField::Type => Some(location.kind.as_str()),
                    portico_query::filter::LocationField::Target => Some(location.target.as_str()),
                    portico_query::filter::LocationField::EntityRef => Some(location.entity_ref.as_str()),
                })
            })
        })
        .collect();
    let total = matching.len();
    let page: Vec<&&portico_store::LocationRow> = matching
        .iter()
        .filter(|location| after.as_ref().is_none_or(|after| location.id.as_str() > after.as_str()))
        .take(limit + 1)
        .collect();
    let more = page.len() > limit;
    let items: Vec<Value> = page.iter().take(limit).map(|location| location_json(location)).collect();
    let mut page_info = Map::new();
    if more {
        if let Some(last) = page.get(limit - 1) {
            let cursor = LocationCursor { limit, after_id: last.id.clone(), query: predicate.clone() };
            page_info.insert("nextCursor".into(), Value::String(portico_query::cursor::encode(&cursor)));
        }
    }
    let out = json!({ "items": items, "totalItems": total, "pageInfo": page_info });
    Ok(json_response(StatusCode::OK, out.to_string()))
}

/// `GET /locations/{id}`.
pub(crate) async fn get_location(
    State(app): AppState,
    Extension(identity): Extension<Identity>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let location = app.location(&identity, &id).await?;
    Ok(json_response(StatusCode::OK, location_json(&location).to_string()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateLocationBody {
    #[serde(rename = "type")]
    kind: String,
    target: String,
}

/// `PUT /locations/{id}`.
pub(crate) async fn update_location(
    State(app): AppState,
    Extension(identity): Extension<Identity>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UpdateLocationBody>,
) -> Result<Response, ApiError> {
    let location = app.update_location(&identity, &id, &body.kind, &body.target).await?;
    Ok(json_response(StatusCode::OK, location_json(&location).to_string()))
}

/// `DELETE /locations/{id}`.
pub(crate) async fn delete_location(
    State(app): AppState,
    Extension(identity): Extension<Identity>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    app.delete_location(&identity, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /locations/by-entity/{kind}/{namespace}/{name}`.
pub(crate) async fn get_location_by_entity(
    State(app): AppState,
    Extension(identity): Extension<Identity>,
    Path((kind, namespace, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let location = app.location_by_entity(&identity, &kind, &namespace, &name).await?;
    Ok(json_response(StatusCode::OK, location_json(&location).to_string()))
}

/// The OpenAPI description of this API, written for Portico (not Backstage's document).
const OPENAPI: &str = include_str!("../../assets/catalog-openapi.json");

/// `GET /openapi.json`.
pub(crate) async fn get_openapi() -> Response {
    json_response(StatusCode::OK, OPENAPI)
}
