//! Catalog queries over the index: lists, cursor pages, facets, lookups by ref.
//!
//! Everything here is synchronous and runs under the index read lock; it never touches the
//! store, which is why reads stay fast however busy ingestion is.

use std::sync::Arc;

use portico_query::fields::select_fields;
use portico_query::filter::{parse_predicate, parse_query_filters, Filter};
use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::index::{Index, OrderKey, Position, SortedOrder};
use crate::Error;

/// Where a query's filter came from; cursors carry it in the same form.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum QueryFilter {
    #[default]
    None,
    /// Repeated `filter` query parameters (reference §7.2).
    Params(Vec<String>),
    /// A JSON predicate (reference §7.3).
    Predicate(Value),
}

impl QueryFilter {
    pub fn parse(&self) -> Result<Option<Filter>, Error> {
        match self {
            QueryFilter::None => Ok(None),
            QueryFilter::Params(params) => {
                parse_query_filters(params).map_err(|error| Error::Input(error.message))
            }
            QueryFilter::Predicate(predicate) => {
                parse_predicate(predicate).map(Some).map_err(|error| Error::Input(error.message))
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortOrder {
    Asc,
    Desc,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderField {
    pub field: String,
    pub order: SortOrder,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FullTextFilter {
    pub term: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
}

/// A `by-query` request, from either the GET or the POST form.
#[derive(Debug, Clone, Default)]
pub struct QueryRequest {
    pub filter: QueryFilter,
    pub order: Option<OrderField>,
    pub full_text: Option<FullTextFilter>,
    pub fields: Vec<String>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
    pub include_total: bool,
    pub cursor: Option<String>,
    /// Only entities whose last processing pass failed (a UI filter; not part of Backstage's
    /// API, whose filters cannot reach `status`).
    pub only_with_errors: bool,
}

/// One page of a `by-query` answer. Items are JSON texts.
#[derive(Debug, Clone)]
pub struct QueryPage {
    pub items: Vec<Arc<str>>,
    pub total_items: u64,
    pub next_cursor: Option<String>,
    pub prev_cursor: Option<String>,
}

/// The opaque cursor, base64 JSON. Field names follow Backstage's cursor so that
/// `@backstage/catalog-client`, which looks for a top-level `query` key to choose between GET
/// and POST, pages correctly.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cursor {
    #[serde(default)]
    order_fields: Vec<OrderField>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    full_text_filter: Option<FullTextFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    filter: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    query: Option<Value>,
    /// `[sort value, uid]`, or `[uid]` without an order field.
    #[serde(default)]
    order_field_values: Vec<Option<String>>,
    #[serde(default)]
    is_previous: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    total_items: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    only_with_errors: bool,
}

/// The default page size of `by-query` (what Backstage's server uses).
pub const DEFAULT_LIMIT: usize = 200;

/// `readable`, when given, is what the caller may read: every function here answers as if the
/// other entities did not exist.
pub fn query_entities(
    index: &Index,
    readable: Option<&RoaringBitmap>,
    request: QueryRequest,
) -> Result<QueryPage, Error> {
    let limit = request.limit.unwrap_or(DEFAULT_LIMIT);
    let (cursor, is_continuation) = match &request.cursor {
        Some(text) => {
            let cursor: Cursor =
                portico_query::cursor::decode(text).map_err(|error| Error::Input(error.message))?;
            (cursor, true)
        }
        None => {
            let (filter, query) = match &request.filter {
                QueryFilter::None => (None, None),
                QueryFilter::Params(params) => (Some(params.clone()), None),
                QueryFilter::Predicate(predicate) => (None, Some(predicate.clone())),
            };
            let cursor = Cursor {
                order_fields: request.order.clone().into_iter().collect(),
                full_text_filter: request.full_text.clone(),
                filter,
                query,
                order_field_values: Vec::new(),
                is_previous: false,
                total_items: None,
                only_with_errors: request.only_with_errors,
            };
            (cursor, false)
        }
    };
    let filter = match (&cursor.filter, &cursor.query) {
        (_, Some(query)) => QueryFilter::Predicate(query.clone()),
        (Some(params), None) => QueryFilter::Params(params.clone()),
        (None, None) => QueryFilter::None,
    }
    .parse()?;
    let order_field = cursor.order_fields.first().cloned();
    let order_key = match &order_field {
        Some(field) => OrderKey::Field(field.field.to_lowercase()),
        None => OrderKey::Uid,
    };
    // A page needs the sorted order; a count (`limit=0`) only its members.
    let order = (limit > 0).then(|| index.order(&order_key));
    let mut set = index.eval(filter.as_ref());
    if let Some(readable) = readable {
        set &= readable;
    }
    if cursor.only_with_errors {
        set &= index.with_errors();
    }
    if order_field.is_some() {
        match &order {
            Some(order) => set &= index.order_members(order),
            None => set &= index.members_of(&order_key),
        }
    }
    if let Some(full_text) = &cursor.full_text_filter {
        let term = full_text.term.trim().to_lowercase();
        if !term.is_empty() {
            let fields: Vec<String> = match &full_text.fields {
                Some(fields) if !fields.is_empty() => {
                    fields.iter().map(|field| field.to_lowercase()).collect()
                }
                _ => vec![order_field
                    .as_ref()
                    .map_or("metadata.uid".to_owned(), |field| field.field.to_lowercase())],
            };
            set = index.full_text(&set, &fields, &term);
        }
    }
    let total_items = if is_continuation {
        cursor.total_items.unwrap_or_else(|| set.len())
    } else if request.include_total {
        set.len()
    } else {
        0
    };
    let descending = order_field.as_ref().is_some_and(|field| field.order == SortOrder::Desc);
    let position = if is_continuation { position_of(&cursor) } else { None };
    let walking_back = descending != cursor.is_previous;
    let skip = if is_continuation { 0 } else { request.offset.unwrap_or(0) };
    let Some(order) = order else {
        return Ok(QueryPage { items: Vec::new(), total_items, next_cursor: None, prev_cursor: None });
    };
    let (slots, more) = index.page(&order, &set, position.as_ref(), walking_back, skip, limit);
    // Pages walked backwards come out in ascending order; flip when the walk was against the order.
    let slots: Vec<u32> = if descending { slots.into_iter().rev().collect() } else { slots };

    let make_cursor = |slot_id: u32, is_previous: bool| -> String {
        let position = index.position(&order, slot_id);
        let mut values = Vec::new();
        if order_field.is_some() {
            values.push(position.value);
        }
        values.push(Some(position.uid));
        let next = Cursor {
            order_field_values: values,
            is_previous,
            total_items: Some(total_items),
            ..cursor.clone()
        };
        portico_query::cursor::encode(&next)
    };
    let (next_cursor, prev_cursor) = if cursor.is_previous {
        let next = slots.last().map(|&slot_id| make_cursor(slot_id, false));
        let prev = if more { slots.first().map(|&slot_id| make_cursor(slot_id, true)) } else { None };
        (next, prev)
    } else {
        let next = if more { slots.last().map(|&slot_id| make_cursor(slot_id, false)) } else { None };
        let prev = match slots.first() {
            Some(&first) if is_continuation && has_before(index, &order, &set, first, descending) => {
                Some(make_cursor(first, true))
            }
            _ => None,
        };
        (next, prev)
    };
    let items = render(index, &slots, &request.fields);
    Ok(QueryPage { items, total_items, next_cursor, prev_cursor })
}

fn position_of(cursor: &Cursor) -> Option<Position> {
    match cursor.order_field_values.as_slice() {
        [uid] => Some(Position { value: None, uid: uid.clone().unwrap_or_default() }),
        [value, uid, ..] => Some(Position { value: value.clone(), uid: uid.clone().unwrap_or_default() }),
        [] => None,
    }
}

/// Whether any entity of `set` comes before `slot_id` in the query's direction.
fn has_before(
    index: &Index,
    order: &SortedOrder,
    set: &RoaringBitmap,
    slot_id: u32,
    descending: bool,
) -> bool {
    let position = index.position(order, slot_id);
    let (before, _) = index.page(order, set, Some(&position), !descending, 0, 1);
    !before.is_empty()
}

/// Renders slots as JSON texts, applying field selection.
pub fn render(index: &Index, slots: &[u32], fields: &[String]) -> Vec<Arc<str>> {
    slots.iter().filter_map(|&slot_id| index.body(slot_id)).map(|body| select(body, fields)).collect()
}

/// Applies field selection to one JSON text (a no-op without fields).
pub fn select(body: Arc<str>, fields: &[String]) -> Arc<str> {
    if fields.is_empty() {
        return body;
    }
    match serde_json::from_str::<Value>(&body) {
        Ok(entity) => Arc::from(select_fields(&entity, fields).to_string()),
        Err(_) => body,
    }
}

/// `GET /entities`: ordering by one or more fields (`asc:`/`desc:`), with optional offset,
/// limit and `after` cursor. Evaluates to the items and, when more exist, the next offset.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub filter: QueryFilter,
    pub fields: Vec<String>,
    pub order: Vec<OrderField>,
    pub offset: Option<usize>,
    pub limit: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct ListPage {
    pub items: Vec<Arc<str>>,
    /// `(limit, offset)` of the next page when paginating and more exist.
    pub next: Option<(usize, usize)>,
}

pub fn list_entities(
    index: &Index,
    readable: Option<&RoaringBitmap>,
    request: &ListRequest,
) -> Result<ListPage, Error> {
    let filter = request.filter.parse()?;
    let mut set = index.eval(filter.as_ref());
    if let Some(readable) = readable {
        set &= readable;
    }
    let paginated = request.offset.is_some() || request.limit.is_some();
    let order_key = match request.order.first() {
        Some(field) => OrderKey::Field(field.field.to_lowercase()),
        None if paginated => OrderKey::EntityRef,
        None => OrderKey::Uid,
    };
    let order = index.order(&order_key);
    let descending = request.order.first().is_some_and(|field| field.order == SortOrder::Desc);
    let mut slots: Vec<u32> = Vec::new();
    let offset = request.offset.unwrap_or(0);
    let limit = request.limit.unwrap_or(usize::MAX);
    let (page, more) = index.page(&order, &set, None, descending, offset, limit);
    if descending {
        slots.extend(page.into_iter().rev());
    } else {
        slots = page;
    }
    // Paginated lists put entities lacking the order field last (Backstage); unpaginated omit them.
    if paginated && !request.order.is_empty() && !more && slots.len() < limit {
        let members = index.order_members(&order);
        let missing = &set - members;
        let uid_order = index.order(&OrderKey::Uid);
        let already = (&set & members).len() as usize;
        let skip_missing = offset.saturating_sub(already);
        let (rest, _) = index.page(&uid_order, &missing, None, false, skip_missing, limit - slots.len());
        slots.extend(rest);
    }
    let next = if paginated && more {
        Some((request.limit.unwrap_or(usize::MAX), offset + slots.len()))
    } else {
        None
    };
    Ok(ListPage { items: render(index, &slots, &request.fields), next })
}

/// One facet: its name as requested and `(value, count)` pairs ascending by value.
pub type Facet = (String, Vec<(String, u64)>);

/// `entity-facets`: counts per original-case value of each facet over the entities matching
/// `filter` (and readable, and, when `only_with_errors`, failing processing); each with at most
/// `limit` values (the most common).
pub fn facets_within(
    index: &Index,
    readable: Option<&RoaringBitmap>,
    filter: &QueryFilter,
    only_with_errors: bool,
    limit: usize,
    facets: &[String],
) -> Result<Vec<Facet>, Error> {
    let parsed = Arc::new(filter.parse()?);
    let mut answers = Vec::with_capacity(facets.len());
    if let Some(readable) = readable {
        // Answers for one caller are not cached: the cache is refreshed when the catalog
        // changes, and what the caller may read changes with it.
        let mut set = index.eval(parsed.as_ref().as_ref()) & readable;
        if only_with_errors {
            set &= index.with_errors();
        }
        for facet in facets {
            answers.push((facet.clone(), index.facet_top(&facet.to_lowercase(), &set, limit)));
        }
        return Ok(answers);
    }
    for facet in facets {
        let key = facet.to_lowercase();
        let question = format!("{key}\u{1}{limit}\u{1}{only_with_errors}\u{1}{filter:?}");
        let parsed = parsed.clone();
        let compute = Arc::new(move |index: &Index| {
            let mut set = index.eval(parsed.as_ref().as_ref());
            if only_with_errors {
                set &= index.with_errors();
            }
            index.facet_top(&key, &set, limit)
        });
        let values = index.cached_facet(question, compute);
        answers.push((facet.clone(), values.as_ref().clone()));
    }
    Ok(answers)
}

/// `by-refs`: one item per ref, `None` when missing or filtered out.
pub fn entities_by_refs(
    index: &Index,
    readable: Option<&RoaringBitmap>,
    refs: &[String],
    filter: &QueryFilter,
    fields: &[String],
) -> Result<Vec<Option<Arc<str>>>, Error> {
    let filter = filter.parse()?;
    let set = filter.as_ref().map(|filter| index.eval(Some(filter)));
    Ok(refs
        .iter()
        .map(|entity_ref| {
            let slot_id = index.slot_of_ref(entity_ref)?;
            if set.as_ref().is_some_and(|set| !set.contains(slot_id))
                || readable.is_some_and(|readable| !readable.contains(slot_id))
            {
                return None;
            }
            index.body(slot_id).map(|body| select(body, fields))
        })
        .collect())
}
