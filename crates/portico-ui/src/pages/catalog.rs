//! The catalog table (`/catalog`) and the APIs explorer (`/api-docs`): facet filters with
//! counts, a text filter, sorting and cursor pagination, all carried in the URL.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::Response;
use maud::{html, Markup};
use portico_app::identity::Identity;
use portico_app::query::{FullTextFilter, OrderField, QueryFilter, QueryRequest, SortOrder};
use serde_json::{json, Value};

use crate::layout::{self, Chrome};
use crate::pages::error_page;
use crate::view::{self, query_string, str_at, strings_at, Ref};
use crate::Ui;

/// Rows per page.
const PAGE_SIZE: usize = 25;

/// Query parameters; all optional strings, so no input is ever rejected before we look at it.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub(crate) struct Params {
    #[serde(default)]
    kind: String,
    #[serde(default, rename = "type")]
    entity_type: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    lifecycle: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    system: String,
    #[serde(default)]
    status: String,
    /// `me`: only what the signed-in user or their groups own.
    #[serde(default)]
    owned: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    dir: String,
    #[serde(default)]
    cursor: String,
}

/// A facet filter: URL parameter, search key, label.
struct FacetSpec {
    param: &'static str,
    key: &'static str,
    label: &'static str,
}

const FACETS: &[FacetSpec] = &[
    FacetSpec { param: "type", key: "spec.type", label: "Type" },
    FacetSpec { param: "owner", key: "relations.ownedBy", label: "Owner" },
    FacetSpec { param: "lifecycle", key: "spec.lifecycle", label: "Lifecycle" },
    FacetSpec { param: "system", key: "relations.partOf", label: "System" },
    FacetSpec { param: "tag", key: "metadata.tags", label: "Tag" },
    FacetSpec { param: "namespace", key: "metadata.namespace", label: "Namespace" },
];

impl Params {
    fn value(&self, param: &str) -> &str {
        match param {
            "type" => &self.entity_type,
            "owner" => &self.owner,
            "lifecycle" => &self.lifecycle,
            "system" => &self.system,
            "tag" => &self.tag,
            "namespace" => &self.namespace,
            _ => "",
        }
    }

    /// The filter as a JSON predicate (values may hold commas, which the `filter=` syntax cannot
    /// carry), leaving out the facet `except`.
    fn predicate(&self, kind: &str, except: Option<&str>, identity: &Identity) -> QueryFilter {
        let mut all = Vec::new();
        if self.owned == "me" {
            let mine = match identity {
                Identity::User { ownership_entity_refs, .. } => ownership_entity_refs.clone(),
                _ => Vec::new(),
            };
            if mine.is_empty() {
                // Nobody is signed in, so nothing is "mine".
                all.push(json!({ "$not": {} }));
            } else {
                all.push(json!({ "relations.ownedBy": { "$in": mine } }));
            }
        }
        if kind != "all" {
            all.push(json!({ "kind": kind }));
        }
        for facet in FACETS {
            let value = self.value(facet.param);
            if !value.is_empty() && Some(facet.param) != except {
                all.push(json!({ facet.key: value }));
            }
        }
        if self.status == "orphan" {
            all.push(json!({ "metadata.annotations.backstage.io/orphan": "true" }));
        }
        if all.is_empty() {
            QueryFilter::None
        } else {
            QueryFilter::Predicate(json!({ "$all": all }))
        }
    }

    /// Pairs for links that keep the current view (without the cursor).
    fn pairs<'a>(&'a self, kind: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("kind", kind),
            ("type", &self.entity_type),
            ("owner", &self.owner),
            ("lifecycle", &self.lifecycle),
            ("system", &self.system),
            ("tag", &self.tag),
            ("namespace", &self.namespace),
            ("status", &self.status),
            ("owned", &self.owned),
            ("q", &self.q),
            ("sort", &self.sort),
            ("dir", &self.dir),
        ]
    }
}

/// A table column: header, sort key (if sortable), cell.
struct Column {
    header: &'static str,
    sort: Option<&'static str>,
    cell: fn(&Value) -> Markup,
}

fn name_cell(entity: &Value) -> Markup {
    match Ref::of(entity) {
        Some(entity_ref) => html! { a href=(entity_ref.href()) { (view::title_of(entity)) } },
        None => html! { (view::title_of(entity)) },
    }
}

fn ref_cell(entity: &Value, pointer: &str, default_kind: &str) -> Markup {
    let namespace = str_at(entity, "/metadata/namespace").unwrap_or("default");
    html! {
        @for (index, text) in strings_at(entity, pointer).into_iter().enumerate() {
            @if index > 0 { ", " }
            @match Ref::parse(text, Some(default_kind), namespace) {
                Some(target) => (layout::entity_link(&target, Some(default_kind))),
                None => (text),
            }
        }
    }
}

fn text_cell(entity: &Value, pointer: &str) -> Markup {
    html! { (str_at(entity, pointer).unwrap_or("")) }
}

fn columns(kind: &str) -> Vec<Column> {
    let name = Column { header: "Name", sort: Some("metadata.name"), cell: name_cell };
    let system = Column {
        header: "System",
        sort: Some("spec.system"),
        cell: |entity| ref_cell(entity, "/spec/system", "system"),
    };
    let owner = Column {
        header: "Owner",
        sort: Some("spec.owner"),
        cell: |entity| ref_cell(entity, "/spec/owner", "group"),
    };
    let entity_type =
        Column { header: "Type", sort: Some("spec.type"), cell: |entity| text_cell(entity, "/spec/type") };
    let lifecycle = Column {
        header: "Lifecycle",
        sort: Some("spec.lifecycle"),
        cell: |entity| text_cell(entity, "/spec/lifecycle"),
    };
    let description = Column {
        header: "Description",
        sort: None,
        cell: |entity| html! { span.description { (str_at(entity, "/metadata/description").unwrap_or("")) } },
    };
    let tags = Column {
        header: "Tags",
        sort: None,
        cell: |entity| layout::tags(&strings_at(entity, "/metadata/tags")),
    };
    match kind {
        "component" | "api" | "resource" => {
            vec![name, system, owner, entity_type, lifecycle, description, tags]
        }
        "system" => vec![
            name,
            Column {
                header: "Domain",
                sort: Some("spec.domain"),
                cell: |entity| ref_cell(entity, "/spec/domain", "domain"),
            },
            owner,
            description,
            tags,
        ],
        "domain" | "template" => vec![name, owner, description, tags],
        "group" => vec![name, entity_type, description],
        "user" => vec![
            name,
            Column {
                header: "Email",
                sort: Some("spec.profile.email"),
                cell: |entity| text_cell(entity, "/spec/profile/email"),
            },
            description,
        ],
        "location" => vec![
            name,
            entity_type,
            Column {
                header: "Targets",
                sort: None,
                cell: |entity| {
                    let mut targets = strings_at(entity, "/spec/targets");
                    targets.extend(str_at(entity, "/spec/target"));
                    html! { @for target in targets { code { (target) } " " } }
                },
            },
        ],
        _ => vec![
            name,
            Column { header: "Kind", sort: Some("kind"), cell: |entity| text_cell(entity, "/kind") },
            owner,
            entity_type,
            description,
        ],
    }
}

pub(crate) async fn catalog(State(ui): State<Ui>, chrome: Chrome, Query(params): Query<Params>) -> Response {
    let kind = if params.kind.is_empty() { "component".to_owned() } else { params.kind.to_lowercase() };
    table(&ui, &chrome, &params, &kind, "/catalog")
}

/// Renders the default table once, filling the index's order and facet caches.
pub(crate) fn warm(ui: &Ui) {
    let chrome = Chrome {
        path: "/catalog".into(),
        path_and_query: "/catalog".into(),
        theme: crate::layout::Theme::System,
        csrf: String::new(),
        new_csrf: false,
        identity: Identity::System,
    };
    let _ = table(ui, &chrome, &Params::default(), "component", "/catalog");
}

pub(crate) async fn api_docs(State(ui): State<Ui>, chrome: Chrome, Query(params): Query<Params>) -> Response {
    table(&ui, &chrome, &params, "api", "/api-docs")
}

fn table(ui: &Ui, chrome: &Chrome, params: &Params, kind: &str, base: &str) -> Response {
    let identity = chrome.identity.clone();
    let only_with_errors = params.status == "error";
    let sort = SORT_KEYS.iter().find(|key| **key == params.sort).copied().unwrap_or("metadata.name");
    let descending = params.dir == "desc";
    let request = QueryRequest {
        filter: params.predicate(kind, None, &identity),
        order: Some(OrderField {
            field: sort.to_owned(),
            order: if descending { SortOrder::Desc } else { SortOrder::Asc },
        }),
        full_text: (!params.q.trim().is_empty()).then(|| FullTextFilter {
            term: params.q.trim().to_owned(),
            fields: Some(vec![
                "metadata.name".into(),
                "metadata.title".into(),
                "metadata.description".into(),
                "spec.type".into(),
                "spec.owner".into(),
                "metadata.tags".into(),
            ]),
        }),
        fields: Vec::new(),
        limit: Some(PAGE_SIZE),
        offset: None,
        include_total: true,
        cursor: (!params.cursor.is_empty()).then(|| params.cursor.clone()),
        only_with_errors,
    };
    let page = match ui.app.query_entities(&identity, request) {
        Ok(page) => page,
        Err(error) => return error_page(ui, chrome, &error),
    };
    let entities: Vec<Value> = page.items.iter().filter_map(|body| serde_json::from_str(body).ok()).collect();

    // Each facet counts what the other selections leave, so a choice never hides its siblings.
    let mut facet_values: HashMap<&str, Vec<(String, u64)>> = HashMap::new();
    for facet in FACETS {
        if base == "/api-docs" && facet.param == "namespace" {
            continue;
        }
        let filter = params.predicate(kind, Some(facet.param), &identity);
        if let Ok(mut result) = ui.app.entity_facets_within(
            &identity,
            &filter,
            only_with_errors,
            FACET_OPTIONS,
            &[facet.key.to_owned()],
        ) {
            facet_values.insert(facet.param, result.pop().map(|(_, values)| values).unwrap_or_default());
        }
    }
    let kinds = crate::pages::kind_counts(ui, &identity);
    let columns = columns(kind);
    let kind_label = kinds
        .iter()
        .find(|(value, _)| value.eq_ignore_ascii_case(kind))
        .map(|(value, _)| value.clone())
        .unwrap_or_else(|| if kind == "all" { "All".into() } else { kind.to_owned() });
    let heading = if base == "/api-docs" { "APIs".to_owned() } else { format!("{kind_label} entities") };
    let pairs = params.pairs(kind);
    let sort_link = |key: &str| -> String {
        let dir = if sort == key && !descending { "desc" } else { "asc" };
        let mut pairs: Vec<(&str, &str)> =
            pairs.iter().filter(|(name, _)| *name != "sort" && *name != "dir").copied().collect();
        pairs.push(("sort", key));
        pairs.push(("dir", dir));
        format!("{base}{}", query_string(pairs))
    };
    let page_link = |cursor: &str| -> String {
        let mut pairs = pairs.clone();
        pairs.push(("cursor", cursor));
        format!("{base}{}", query_string(pairs))
    };
    let body = html! {
        div.page-head {
            h1 { (heading) " " span.count { "(" (page.total_items) ")" } }
            @if base == "/catalog" { a.button href="/catalog-import" { "Register existing component" } }
        }
        div.catalog-layout {
            form.filters method="get" action=(base) aria-label="Filters" data-autosubmit {
                @if base == "/catalog" {
                    label for="f-kind" { "Kind" }
                    select #f-kind name="kind" {
                        option value="all" selected[kind == "all"] { "All kinds" }
                        @for (value, count) in &kinds {
                            option value=(value.to_lowercase()) selected[value.eq_ignore_ascii_case(kind)] {
                                (value) " (" (count) ")"
                            }
                        }
                    }
                }
                label for="f-q" { "Text filter" }
                input #f-q type="search" name="q" value=(params.q) placeholder="Filter by name, description…";
                @for facet in FACETS {
                    @if let Some(values) = facet_values.get(facet.param) {
                        @let selected = params.value(facet.param);
                        @if !values.is_empty() || !selected.is_empty() {
                            label for={ "f-" (facet.param) } { (facet.label) }
                            select id={ "f-" (facet.param) } name=(facet.param) {
                                option value="" { "All" }
                                @for (value, count) in values {
                                    option value=(value) selected[value.eq_ignore_ascii_case(selected)] {
                                        (facet_label(facet.param, value)) " (" (count) ")"
                                    }
                                }
                                @if !selected.is_empty() && !values.iter().any(|(value, _)| value.eq_ignore_ascii_case(selected)) {
                                    option value=(selected) selected { (selected) " (0)" }
                                }
                            }
                        }
                    }
                }
                @if matches!(identity, Identity::User { .. }) {
                    label for="f-owned" { "Ownership" }
                    select #f-owned name="owned" {
                        option value="" { "Everyone's" }
                        option value="me" selected[params.owned == "me"] { "Owned by me and my groups" }
                    }
                }
                label for="f-status" { "Processing status" }
                select #f-status name="status" {
                    option value="" { "Any" }
                    option value="error" selected[params.status == "error"] { "With errors" }
                    option value="orphan" selected[params.status == "orphan"] { "Orphan" }
                }
                input type="hidden" name="sort" value=(params.sort);
                input type="hidden" name="dir" value=(params.dir);
                div.filter-actions {
                    button type="submit" { "Apply filters" }
                    a href={ (base) @if base == "/catalog" { "?kind=" (view::encode(kind)) } } { "Clear" }
                }
            }
            div.table-wrap {
                table.entities {
                    caption.visually-hidden { (heading) ", sorted by " (sort) }
                    thead {
                        tr {
                            @for column in &columns {
                                @match column.sort {
                                    Some(key) => {
                                        th scope="col" aria-sort=[(sort == key).then_some(if descending { "descending" } else { "ascending" })] {
                                            a href=(sort_link(key)) {
                                                (column.header)
                                                @if sort == key { span aria-hidden="true" { @if descending { " ▼" } @else { " ▲" } } }
                                            }
                                        }
                                    }
                                    None => th scope="col" { (column.header) },
                                }
                            }
                        }
                    }
                    tbody {
                        @for entity in &entities {
                            tr { @for column in &columns { td { ((column.cell)(entity)) } } }
                        }
                        @if entities.is_empty() {
                            tr { td.empty colspan=(columns.len()) { "No entities match these filters." } }
                        }
                    }
                }
                nav.pager aria-label="Pagination" {
                    @if let Some(cursor) = &page.prev_cursor {
                        a rel="prev" href=(page_link(cursor)) { "← Previous" }
                    }
                    @if let Some(cursor) = &page.next_cursor {
                        a rel="next" href=(page_link(cursor)) { "Next →" }
                    }
                }
            }
        }
    };
    layout::page(ui, chrome, &heading, body)
}

/// Sort keys the table offers (anything else falls back to the name).
const SORT_KEYS: &[&str] = &[
    "metadata.name",
    "spec.system",
    "spec.owner",
    "spec.type",
    "spec.lifecycle",
    "spec.domain",
    "spec.profile.email",
    "kind",
];

/// Owners and systems are refs; show them short.
fn facet_label(param: &str, value: &str) -> String {
    match param {
        "owner" | "system" => Ref::parse(value, None, "default")
            .map(|target| target.display(Some(if param == "owner" { "group" } else { "system" })))
            .unwrap_or_else(|| value.to_owned()),
        _ => value.to_owned(),
    }
}

/// Values a facet selector offers at most: the most common ones, so a catalog with ten
/// thousand owners still sends a small page. Other values are reached through a shared URL.
const FACET_OPTIONS: usize = 100;
