//! `/search`: full-text search over every kind, by name, title and description.

use axum::extract::{Query, State};
use axum::response::Response;
use maud::html;
use portico_app::query::{FullTextFilter, OrderField, QueryFilter, QueryRequest, SortOrder};
use serde_json::Value;

use crate::layout::{self, Chrome};
use crate::pages::error_page;
use crate::view::{self, str_at, Ref};
use crate::Ui;

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Params {
    #[serde(default)]
    q: String,
    #[serde(default)]
    cursor: String,
}

pub(crate) async fn search(State(ui): State<Ui>, chrome: Chrome, Query(params): Query<Params>) -> Response {
    let term = params.q.trim();
    let mut results: Vec<Value> = Vec::new();
    let mut total = 0;
    let mut next = None;
    if !term.is_empty() {
        let request = QueryRequest {
            filter: QueryFilter::None,
            order: Some(OrderField { field: "metadata.name".into(), order: SortOrder::Asc }),
            full_text: Some(FullTextFilter {
                term: term.to_owned(),
                fields: Some(vec![
                    "metadata.name".into(),
                    "metadata.title".into(),
                    "metadata.description".into(),
                ]),
            }),
            limit: Some(25),
            include_total: true,
            cursor: (!params.cursor.is_empty()).then(|| params.cursor.clone()),
            ..QueryRequest::default()
        };
        match ui.app.query_entities(&chrome.identity, request) {
            Ok(page) => {
                results = page.items.iter().filter_map(|body| serde_json::from_str(body).ok()).collect();
                total = page.total_items;
                next = page.next_cursor;
            }
            Err(error) => return error_page(&ui, &chrome, &error),
        }
    }
    let body = html! {
        h1 { "Search" }
        form.search-form role="search" method="get" action="/search" {
            label for="search-q" { "Search the catalog" }
            input #search-q type="search" name="q" value=(term) autofocus;
            button type="submit" { "Search" }
        }
        @if !term.is_empty() {
            p.count { (total) " results for “" (term) "”" }
            ol.results {
                @for entity in &results {
                    li {
                        @if let Some(entity_ref) = Ref::of(entity) {
                            a href=(entity_ref.href()) { (view::title_of(entity)) }
                            " " span.badge { (str_at(entity, "/kind").unwrap_or("")) }
                            @if let Some(description) = str_at(entity, "/metadata/description") {
                                p { (description) }
                            }
                        }
                    }
                }
            }
            @if let Some(cursor) = next {
                a rel="next" href={ "/search" (view::query_string([("q", term), ("cursor", cursor.as_str())])) } { "More results →" }
            }
        }
    };
    layout::page(&ui, &chrome, "Search", body)
}
