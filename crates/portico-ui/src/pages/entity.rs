//! The entity page (`/catalog/:namespace/:kind/:name`) and its tabs: overview, relations graph,
//! API definition, inspect; and the refresh and unregister actions.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use portico_app::identity::Identity;
use serde_json::Value;

use crate::layout::{self, card, entity_link, tags, Chrome};
use crate::pages::error_page;
use crate::view::{self, relation_targets, safe_href, str_at, strings_at, Ref};
use crate::Ui;

/// Related entities listed per card before the list links to the filtered table instead.
const RELATED_LIMIT: usize = 100;

#[derive(Debug, serde::Deserialize)]
pub(crate) struct EntityPath {
    namespace: String,
    kind: String,
    name: String,
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct TabPath {
    namespace: String,
    kind: String,
    name: String,
    tab: String,
}

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Notice {
    #[serde(default)]
    notice: String,
}

/// The entity, parsed, or the 404 page.
fn load(ui: &Ui, chrome: &Chrome, namespace: &str, kind: &str, name: &str) -> Result<Value, Box<Response>> {
    let found = ui.app.entity_by_name(&chrome.identity, kind, namespace, name);
    match found {
        Ok(body) => serde_json::from_str(&body).map_err(|error| {
            Box::new(error_page(
                ui,
                chrome,
                &portico_app::Error::Input(format!("stored entity is not valid JSON: {error}")),
            ))
        }),
        Err(portico_app::Error::NotFound(_)) => Err(Box::new(missing(ui, chrome, namespace, kind, name))),
        Err(error) => Err(Box::new(error_page(ui, chrome, &error))),
    }
}

fn missing(ui: &Ui, chrome: &Chrome, namespace: &str, kind: &str, name: &str) -> Response {
    let body = html! {
        h1 { "Entity not found" }
        p { "There is no " (kind) " named " strong { (name) } " in namespace " strong { (namespace) } "." }
        p { "It may have been removed, or it has not been processed yet. "
            a href={ "/search" (view::query_string([("q", name)])) } { "Search for “" (name) "”" } " or "
            a href={ "/catalog" (view::query_string([("kind", kind)])) } { "browse " (kind) " entities" } "." }
    };
    layout::page_with_status(ui, chrome, axum::http::StatusCode::NOT_FOUND, "Entity not found", body)
}

pub(crate) async fn overview(
    State(ui): State<Ui>,
    chrome: Chrome,
    Path(path): Path<EntityPath>,
    Query(notice): Query<Notice>,
) -> Response {
    let entity = match load(&ui, &chrome, &path.namespace, &path.kind, &path.name) {
        Ok(entity) => entity,
        Err(response) => return *response,
    };
    let emitted = if entity
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|kind| kind.eq_ignore_ascii_case("location"))
    {
        let entity_ref = Ref::of(&entity).map(|r| r.canonical()).unwrap_or_default();
        ui.app.emitted_by(&chrome.identity, &entity_ref).await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let content = html! {
        @if notice.notice == "refresh" {
            p.notice role="status" { "Refresh scheduled: the entity is processed again within moments." }
        }
        (status_errors(&entity))
        div.cards {
            (about(&entity))
            (kind_cards(&ui, &chrome.identity, &entity, &emitted))
            (relations_card(&entity))
            (metadata_card(&entity))
        }
    };
    shell(&ui, &chrome, &entity, "overview", content)
}

pub(crate) async fn tab(
    State(ui): State<Ui>,
    chrome: Chrome,
    Path(path): Path<TabPath>,
    RawQuery(query): RawQuery,
) -> Response {
    let entity = match load(&ui, &chrome, &path.namespace, &path.kind, &path.name) {
        Ok(entity) => entity,
        Err(response) => return *response,
    };
    match path.tab.as_str() {
        "inspect" => {
            let ancestry =
                match ui.app.entity_ancestry(&chrome.identity, &path.kind, &path.namespace, &path.name).await
                {
                    Ok((_, items)) => items,
                    Err(_) => Vec::new(),
                };
            let yaml = portico_catalog::yaml::to_text(&entity);
            let json = serde_json::to_string_pretty(&entity).unwrap_or_default();
            let content = html! {
                div.cards {
                    section.card.wide aria-labelledby="ancestry-heading" {
                        h2 #ancestry-heading { "Ancestry" }
                        p { "Where this entity came from: each entity was emitted by the ones below it." }
                        ol.ancestry {
                            @for item in &ancestry {
                                @if let Some(ancestor) = serde_json::from_str::<Value>(&item.entity).ok().as_ref().and_then(Ref::of) {
                                    li { (entity_link(&ancestor, None)) }
                                }
                            }
                        }
                    }
                    section.card.wide aria-labelledby="yaml-heading" {
                        h2 #yaml-heading { "YAML" }
                        pre.code tabindex="0" { code { (yaml) } }
                    }
                    section.card.wide aria-labelledby="json-heading" {
                        h2 #json-heading { "JSON" }
                        pre.code tabindex="0" { code { (json) } }
                    }
                }
            };
            shell(&ui, &chrome, &entity, "inspect", content)
        }
        "graph" => {
            let params = crate::pages::graph::GraphParams::parse(query.as_deref());
            let content = crate::pages::graph::render(&ui, &chrome.identity, &entity, &params);
            shell(&ui, &chrome, &entity, "graph", content)
        }
        "definition" if is_kind(&entity, "api") => {
            let content = crate::definition::render(&entity);
            shell(&ui, &chrome, &entity, "definition", content)
        }
        _ => missing(&ui, &chrome, &path.namespace, &path.kind, &path.name),
    }
}

fn is_kind(entity: &Value, kind: &str) -> bool {
    str_at(entity, "/kind").is_some_and(|actual| actual.eq_ignore_ascii_case(kind))
}

/// Header, tabs and actions around a tab's content.
fn shell(ui: &Ui, chrome: &Chrome, entity: &Value, current: &str, content: Markup) -> Response {
    let Some(entity_ref) = Ref::of(entity) else {
        return error_page(ui, chrome, &portico_app::Error::Input("entity without kind or name".into()));
    };
    let base = entity_ref.href();
    let kind = str_at(entity, "/kind").unwrap_or("");
    let namespace = str_at(entity, "/metadata/namespace").unwrap_or("default");
    let mut tabs = vec![("overview", "Overview", base.clone())];
    if is_kind(entity, "api") {
        tabs.push(("definition", "Definition", format!("{base}/definition")));
    }
    tabs.push(("graph", "Relations graph", format!("{base}/graph")));
    tabs.push(("inspect", "Inspect", format!("{base}/inspect")));
    let title = view::title_of(entity);
    // Actions the caller may not take are not offered (the server refuses them anyway).
    let may_refresh =
        ui.app.check(&chrome.identity, portico_app::permission::ENTITY_REFRESH, Some(entity)).is_ok();
    let may_unregister =
        ui.app.check(&chrome.identity, portico_app::permission::LOCATION_DELETE, None).is_ok()
            || ui.app.check(&chrome.identity, portico_app::permission::ENTITY_DELETE, Some(entity)).is_ok();
    let body = html! {
        header.entity-head {
            p.kicker {
                span.badge { (kind) }
                @if let Some(entity_type) = str_at(entity, "/spec/type") { " " span.badge.secondary { (entity_type) } }
                @if let Some(lifecycle) = str_at(entity, "/spec/lifecycle") { " " span.badge.secondary { (lifecycle) } }
            }
            h1 { (title) }
            p.subtitle {
                code { (entity_ref.canonical()) }
                @if let Some(owner) = str_at(entity, "/spec/owner") {
                    " · owned by "
                    @match Ref::parse(owner, Some("group"), namespace) {
                        Some(owner_ref) => (entity_link(&owner_ref, Some("group"))),
                        None => (owner),
                    }
                }
            }
            div.actions {
                @if may_refresh {
                    form method="post" action={ (base) "/refresh" } {
                        (layout::csrf_field(chrome))
                        button type="submit" { "Refresh" }
                    }
                }
                @if may_unregister {
                details.unregister {
                    summary { "Unregister…" }
                    div.confirm {
                        p { "Unregistering removes the location this entity was registered from, with every entity it produced. An orphaned entity is deleted on its own. Entities from the app-config cannot be unregistered here." }
                        form method="post" action={ (base) "/unregister" } {
                            (layout::csrf_field(chrome))
                            button.danger type="submit" { "Unregister " (title) }
                        }
                    }
                }
                }
            }
        }
        nav.tabs aria-label="Entity" {
            ul {
                @for (id, label, href) in &tabs {
                    li { a href=(href) aria-current=[(*id == current).then_some("page")] { (label) } }
                }
            }
        }
        (content)
    };
    layout::page(ui, chrome, &format!("{title} ({kind})"), body)
}

fn status_errors(entity: &Value) -> Markup {
    let items: Vec<&Value> = entity
        .pointer("/status/items")
        .and_then(Value::as_array)
        .map(|items| items.iter().collect())
        .unwrap_or_default();
    html! {
        @if !items.is_empty() {
            section.processing-errors role="alert" aria-labelledby="errors-heading" {
                h2 #errors-heading { "Processing errors" }
                p { "The last processing pass failed; the catalog shows the last version that processed cleanly." }
                ul {
                    @for item in items {
                        li {
                            (str_at(item, "/message").unwrap_or("Unknown error"))
                            @if let Some(location) = str_at(item, "/error/location") { " " span.where { "(" (location) ")" } }
                        }
                    }
                }
            }
        }
    }
}

fn about(entity: &Value) -> Markup {
    let namespace = str_at(entity, "/metadata/namespace").unwrap_or("default");
    let field_ref = |pointer: &str, kind: &str| -> Option<Markup> {
        let text = str_at(entity, pointer)?;
        Some(match Ref::parse(text, Some(kind), namespace) {
            Some(target) => entity_link(&target, Some(kind)),
            None => html! { (text) },
        })
    };
    let links: Vec<(String, Option<String>)> = entity
        .pointer("/metadata/links")
        .and_then(Value::as_array)
        .map(|links| {
            links
                .iter()
                .filter_map(|link| {
                    let url = link.get("url")?.as_str()?;
                    let title = link.get("title").and_then(Value::as_str).unwrap_or(url);
                    Some((title.to_owned(), safe_href(url)))
                })
                .collect()
        })
        .unwrap_or_default();
    let (view_url, edit_url) = view::source_links(entity);
    let rows: Vec<(&str, Markup)> = [
        ("Owner", field_ref("/spec/owner", "group")),
        ("System", field_ref("/spec/system", "system")),
        ("Domain", field_ref("/spec/domain", "domain")),
        ("Parent", field_ref("/spec/parent", "group")),
        ("Type", str_at(entity, "/spec/type").map(|text| html! { (text) })),
        ("Lifecycle", str_at(entity, "/spec/lifecycle").map(|text| html! { (text) })),
        ("Namespace", Some(html! { (namespace) })),
    ]
    .into_iter()
    .filter_map(|(label, value)| value.map(|value| (label, value)))
    .collect();
    card(
        "About",
        html! {
            p.description { (str_at(entity, "/metadata/description").unwrap_or("No description.")) }
            dl.facts {
                @for (label, value) in rows { dt { (label) } dd { (value) } }
                dt { "Tags" }
                dd { (tags(&strings_at(entity, "/metadata/tags"))) @if strings_at(entity, "/metadata/tags").is_empty() { "None" } }
            }
            @if !links.is_empty() {
                h3 { "Links" }
                ul.links {
                    @for (title, href) in &links {
                        li { @match href { Some(href) => a href=(href) rel="noopener noreferrer" { (title) }, None => span title="not a safe link" { (title) } } }
                    }
                }
            }
            @if view_url.is_some() || edit_url.is_some() {
                p.source-links {
                    @if let Some(url) = &view_url { a href=(url) rel="noopener noreferrer" { "View source" } }
                    @if let Some(url) = &edit_url { " " a href=(url) rel="noopener noreferrer" { "Edit" } }
                }
            }
        },
    )
}

fn relations_card(entity: &Value) -> Markup {
    let mut grouped: BTreeMap<String, Vec<Ref>> = BTreeMap::new();
    for (kind, target) in view::relations(entity) {
        grouped.entry(kind).or_default().push(target);
    }
    card(
        "Relations",
        html! {
            @if grouped.is_empty() { p { "No relations." } }
            dl.relations {
                @for (kind, targets) in &grouped {
                    dt { (kind) " " span.count { "(" (targets.len()) ")" } }
                    dd {
                        ul.inline {
                            @for target in targets.iter().take(RELATED_LIMIT) { li { (entity_link(target, None)) } }
                            @if targets.len() > RELATED_LIMIT { li { "and " (targets.len() - RELATED_LIMIT) " more" } }
                        }
                    }
                }
            }
        },
    )
}

fn metadata_card(entity: &Value) -> Markup {
    let map = |pointer: &str| -> Vec<(String, String)> {
        entity
            .pointer(pointer)
            .and_then(Value::as_object)
            .map(|fields| {
                fields
                    .iter()
                    .map(|(key, value)| {
                        (key.clone(), value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let labels = map("/metadata/labels");
    let annotations = map("/metadata/annotations");
    card(
        "Labels and annotations",
        html! {
            h3 { "Labels" }
            @if labels.is_empty() { p { "None." } }
            dl.kv { @for (key, value) in &labels { dt { code { (key) } } dd { (value) } } }
            h3 { "Annotations" }
            @if annotations.is_empty() { p { "None." } }
            dl.kv { @for (key, value) in &annotations { dt { code { (key) } } dd { (value) } } }
        },
    )
}

/// A table of related entities with their type, owner and description.
///
/// Entities the caller may not read are listed by ref only, as if they were not in the catalog.
fn related(ui: &Ui, identity: &Identity, title: &str, targets: &[Ref]) -> Markup {
    let rows: Vec<(Ref, Option<Value>)> = targets
        .iter()
        .take(RELATED_LIMIT)
        .map(|target| {
            let entity = ui.app.readable_entity(identity, &target.canonical());
            (target.clone(), entity)
        })
        .collect();
    card(
        title,
        html! {
            @if rows.is_empty() { p { "None." } }
            @else {
                table.related {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Kind" } th scope="col" { "Type" } th scope="col" { "Owner" } th scope="col" { "Description" } } }
                    tbody {
                        @for (target, entity) in &rows {
                            tr {
                                td { a href=(target.href()) { (entity.as_ref().map(view::title_of).unwrap_or(&target.name)) } }
                                td { (target.kind) }
                                td { (entity.as_ref().and_then(|e| str_at(e, "/spec/type")).unwrap_or("")) }
                                td { (entity.as_ref().and_then(|e| str_at(e, "/spec/owner")).unwrap_or("")) }
                                td { (entity.as_ref().and_then(|e| str_at(e, "/metadata/description")).unwrap_or("")) }
                            }
                        }
                    }
                }
                @if targets.len() > RELATED_LIMIT { p { "and " (targets.len() - RELATED_LIMIT) " more." } }
            }
        },
    )
}

fn of_kind(targets: Vec<Ref>, kind: &str) -> Vec<Ref> {
    targets.into_iter().filter(|target| target.kind.eq_ignore_ascii_case(kind)).collect()
}

fn kind_cards(ui: &Ui, identity: &Identity, entity: &Value, emitted: &[String]) -> Markup {
    let kind = str_at(entity, "/kind").unwrap_or("").to_lowercase();
    let rel = |name: &str| relation_targets(entity, name);
    match kind.as_str() {
        "component" => html! {
            (related(ui, identity, "Provided APIs", &rel("providesApi")))
            (related(ui, identity, "Consumed APIs", &rel("consumesApi")))
            (related(ui, identity, "Depends on", &rel("dependsOn")))
            (related(ui, identity, "Depended on by", &rel("dependencyOf")))
            (related(ui, identity, "Subcomponents", &of_kind(rel("hasPart"), "component")))
        },
        "api" => html! {
            (related(ui, identity, "Providers", &rel("apiProvidedBy")))
            (related(ui, identity, "Consumers", &rel("apiConsumedBy")))
        },
        "system" => html! {
            (crate::pages::graph::diagram(ui, identity, entity))
            (related(ui, identity, "Components", &of_kind(rel("hasPart"), "component")))
            (related(ui, identity, "APIs", &of_kind(rel("hasPart"), "api")))
            (related(ui, identity, "Resources", &of_kind(rel("hasPart"), "resource")))
        },
        "domain" => html! {
            (related(ui, identity, "Systems", &of_kind(rel("hasPart"), "system")))
            (related(ui, identity, "Subdomains", &of_kind(rel("hasPart"), "domain")))
        },
        "resource" => html! {
            (related(ui, identity, "Depended on by", &rel("dependencyOf")))
            (related(ui, identity, "Depends on", &rel("dependsOn")))
        },
        "group" => html! {
            (profile(entity))
            (ownership(entity))
            (related(ui, identity, "Parent", &rel("childOf")))
            (related(ui, identity, "Child groups", &rel("parentOf")))
            (related(ui, identity, "Members", &rel("hasMember")))
        },
        "user" => html! {
            (profile(entity))
            (related(ui, identity, "Groups", &rel("memberOf")))
            (ownership(entity))
        },
        "location" => {
            let mut targets = strings_at(entity, "/spec/targets");
            targets.extend(str_at(entity, "/spec/target"));
            let produced: Vec<Ref> =
                emitted.iter().filter_map(|text| Ref::parse(text, None, "default")).collect();
            html! {
                (card("Targets", html! { ul { @for target in targets { li { code { (target) } } } } }))
                (related(ui, identity, "Entities produced", &produced))
            }
        }
        "template" => template(entity),
        _ => html! {},
    }
}

fn profile(entity: &Value) -> Markup {
    let display_name = str_at(entity, "/spec/profile/displayName");
    let email = str_at(entity, "/spec/profile/email");
    card(
        "Profile",
        html! {
            dl.facts {
                @if let Some(name) = display_name { dt { "Name" } dd { (name) } }
                @if let Some(email) = email {
                    dt { "Email" }
                    dd { @match safe_href(&format!("mailto:{email}")) { Some(href) => a href=(href) { (email) }, None => (email) } }
                }
            }
            @if display_name.is_none() && email.is_none() { p { "No profile." } }
        },
    )
}

/// Owned entities counted by kind, each count linking to the filtered catalog table.
fn ownership(entity: &Value) -> Markup {
    let Some(owner) = Ref::of(entity) else { return html! {} };
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for target in relation_targets(entity, "ownerOf") {
        *counts.entry(target.kind.to_lowercase()).or_default() += 1;
    }
    let owner_ref = owner.canonical();
    card(
        "Ownership",
        html! {
            @if counts.is_empty() { p { "Owns nothing." } }
            ul.kind-counts {
                @for (kind, count) in &counts {
                    li { a href={ "/catalog" (view::query_string([("kind", kind.as_str()), ("owner", owner_ref.as_str())])) } { span.number { (count) } " " (kind) } }
                }
            }
        },
    )
}

fn template(entity: &Value) -> Markup {
    let pages: Vec<&Value> = match entity.pointer("/spec/parameters") {
        Some(Value::Array(pages)) => pages.iter().collect(),
        Some(page @ Value::Object(_)) => vec![page],
        _ => Vec::new(),
    };
    let steps: Vec<&Value> = entity
        .pointer("/spec/steps")
        .and_then(Value::as_array)
        .map(|steps| steps.iter().collect())
        .unwrap_or_default();
    html! {
        (card("Parameters", html! {
            @if pages.is_empty() { p { "No parameters." } }
            @for page in &pages {
                h3 { (str_at(page, "/title").unwrap_or("Parameters")) }
                @let required = strings_at(page, "/required");
                table.related {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Title" } th scope="col" { "Type" } th scope="col" { "Required" } th scope="col" { "Description" } } }
                    tbody {
                        @for (name, property) in page.get("properties").and_then(Value::as_object).into_iter().flatten() {
                            tr {
                                td { code { (name) } }
                                td { (str_at(property, "/title").unwrap_or("")) }
                                td { (str_at(property, "/type").unwrap_or("")) }
                                td { @if required.contains(&name.as_str()) { "yes" } @else { "no" } }
                                td { (str_at(property, "/description").unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }))
        (card("Steps", html! {
            @if steps.is_empty() { p { "No steps." } }
            ol.steps {
                @for step in &steps {
                    li {
                        strong { (str_at(step, "/name").or_else(|| str_at(step, "/id")).unwrap_or("Step")) }
                        " " code { (str_at(step, "/action").unwrap_or("")) }
                    }
                }
            }
        }))
    }
}

pub(crate) async fn refresh(State(ui): State<Ui>, chrome: Chrome, Path(path): Path<EntityPath>) -> Response {
    let entity = match load(&ui, &chrome, &path.namespace, &path.kind, &path.name) {
        Ok(entity) => entity,
        Err(response) => return *response,
    };
    let Some(entity_ref) = Ref::of(&entity) else {
        return missing(&ui, &chrome, &path.namespace, &path.kind, &path.name);
    };
    match ui.app.refresh_entity(&chrome.identity, &entity_ref.canonical()).await {
        Ok(()) => Redirect::to(&format!("{}?notice=refresh", entity_ref.href())).into_response(),
        Err(error) => error_page(&ui, &chrome, &error),
    }
}

/// Removes the registered location the entity came from (with everything it produced), or the
/// entity itself when it is an orphan, as Backstage's unregister dialog does.
pub(crate) async fn unregister(
    State(ui): State<Ui>,
    chrome: Chrome,
    Path(path): Path<EntityPath>,
) -> Response {
    let identity = chrome.identity.clone();
    let entity = match load(&ui, &chrome, &path.namespace, &path.kind, &path.name) {
        Ok(entity) => entity,
        Err(response) => return *response,
    };
    if let Ok(location) = ui.app.location_by_entity(&identity, &path.kind, &path.namespace, &path.name).await
    {
        return match ui.app.delete_location(&identity, &location.id).await {
            Ok(()) => Redirect::to("/catalog?notice=unregistered").into_response(),
            Err(error) => error_page(&ui, &chrome, &error),
        };
    }
    let orphan =
        entity.pointer("/metadata/annotations/backstage.io~1orphan").and_then(Value::as_str) == Some("true");
    if orphan {
        let uid = str_at(&entity, "/metadata/uid").unwrap_or_default().to_owned();
        return match ui.app.delete_entity(&identity, &uid).await {
            Ok(()) => Redirect::to("/catalog?notice=deleted").into_response(),
            Err(error) => error_page(&ui, &chrome, &error),
        };
    }
    error_page(
        &ui,
        &chrome,
        &portico_app::Error::Conflict(
            "This entity comes from a location in the app-config (or from a provider), not from a registered location, so it cannot be unregistered here. Remove it from its source instead.".into(),
        ),
    )
}
