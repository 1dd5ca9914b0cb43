//! `/`: a search box, counts per kind and what changed recently.

use axum::extract::State;
use axum::response::Response;
use maud::html;
use portico_app::identity::Identity;
use portico_app::query::{OrderField, QueryFilter, QueryRequest, SortOrder};
use serde_json::Value;

use crate::layout::{self, Chrome};
use crate::view::{self, str_at, Ref};
use crate::Ui;

pub(crate) async fn home(State(ui): State<Ui>, chrome: Chrome) -> Response {
    let identity = chrome.identity.clone();
    let kinds = crate::pages::kind_counts(&ui, &identity);
    let recent: Vec<Value> = ui
        .app
        .recently_changed(&identity, 10)
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|body| serde_json::from_str(body).ok())
        .collect();
    // What the signed-in user and their groups own, by the ownership refs of their session.
    let owned: Option<Vec<Value>> = match &chrome.identity {
        Identity::User { ownership_entity_refs, .. } => {
            let any: Vec<Value> = ownership_entity_refs
                .iter()
                .map(|owner| serde_json::json!({ "relations.ownedBy": owner }))
                .collect();
            let request = QueryRequest {
                filter: QueryFilter::Predicate(serde_json::json!({ "$any": any })),
                order: Some(OrderField { field: "metadata.name".into(), order: SortOrder::Asc }),
                limit: Some(20),
                ..QueryRequest::default()
            };
            Some(
                ui.app
                    .query_entities(&chrome.identity, request)
                    .map(|page| {
                        page.items.iter().filter_map(|body| serde_json::from_str(body).ok()).collect()
                    })
                    .unwrap_or_default(),
            )
        }
        _ => None,
    };
    let body = html! {
        h1 { "Welcome to " (ui.options.app_title) }
        form.search-form.hero role="search" method="get" action="/search" {
            label for="home-q" { "Search entities by name or title" }
            input #home-q type="search" name="q" placeholder="e.g. billing";
            button type="submit" { "Search" }
        }
        div.cards {
            section.card aria-labelledby="kinds-heading" {
                h2 #kinds-heading { "Catalog" }
                ul.kind-counts {
                    @for (kind, count) in &kinds {
                        li { a href={ "/catalog?kind=" (view::encode(&kind.to_lowercase())) } { span.number { (count) } " " (kind) } }
                    }
                }
                @if kinds.is_empty() { p { "The catalog is empty. " a href="/catalog-import" { "Register a component" } "." } }
            }
            section.card aria-labelledby="recent-heading" {
                h2 #recent-heading { "Recently changed" }
                ul {
                    @for entity in &recent {
                        @if let Some(entity_ref) = Ref::of(entity) {
                            li {
                                a href=(entity_ref.href()) { (view::title_of(entity)) }
                                " " span.badge { (str_at(entity, "/kind").unwrap_or("")) }
                            }
                        }
                    }
                }
            }
            section.card aria-labelledby="mine-heading" {
                h2 #mine-heading { "Owned by you and your groups" }
                @if let Some(owned) = &owned {
                    @if owned.is_empty() { p { "Nothing yet." } }
                    ul {
                        @for entity in owned {
                            @if let Some(entity_ref) = Ref::of(entity) {
                                li {
                                    a href=(entity_ref.href()) { (view::title_of(entity)) }
                                    " " span.badge { (str_at(entity, "/kind").unwrap_or("")) }
                                }
                            }
                        }
                    }
                } @else {
                    p { "Sign-in is not configured, so there is no current user. Browse " a href="/catalog?kind=group" { "groups" } " to see what each team owns." }
                }
            }
        }
    };
    layout::page(&ui, &chrome, "Home", body)
}
