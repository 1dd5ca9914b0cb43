//! `/create`: software templates. The template list, the form (one page per parameter page,
//! checked on the server, then a review), the task page with its steps and log, the task list,
//! and the template editor (a dry run of a pasted template).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use portico_app::permission::TEMPLATE_MANAGEMENT;
use portico_app::query::{OrderField, QueryFilter, QueryRequest, SortOrder};
use portico_scaffolder::template::Template;
use serde_json::{json, Map, Value};

use crate::layout::{self, Chrome};
use crate::pages::form::{self, FieldErrors};
use crate::pages::misc::format_time;
use crate::view::{str_at, Ref};
use crate::Ui;

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    tag: String,
}

/// `/create`: templates as cards, grouped by type, filtered by text and tag.
pub(crate) async fn templates(
    State(ui): State<Ui>,
    chrome: Chrome,
    Query(query): Query<ListQuery>,
) -> Response {
    let request = QueryRequest {
        filter: QueryFilter::Predicate(json!({ "kind": "template" })),
        order: Some(OrderField { field: "metadata.name".into(), order: SortOrder::Asc }),
        limit: Some(1000),
        ..QueryRequest::default()
    };
    let entities: Vec<Value> = ui
        .app
        .query_entities(&chrome.identity, request)
        .map(|page| page.items.iter().filter_map(|body| serde_json::from_str(body).ok()).collect())
        .unwrap_or_default();
    let needle = query.q.trim().to_lowercase();
    let mut all_tags: Vec<String> = entities
        .iter()
        .flat_map(|entity| {
            entity.pointer("/metadata/tags").and_then(Value::as_array).cloned().unwrap_or_default()
        })
        .filter_map(|tag| tag.as_str().map(str::to_owned))
        .collect();
    all_tags.sort();
    all_tags.dedup();
    let shown: Vec<&Value> = entities
        .iter()
        .filter(|entity| {
            let text = format!(
                "{} {} {}",
                str_at(entity, "/metadata/name").unwrap_or(""),
                str_at(entity, "/metadata/title").unwrap_or(""),
                str_at(entity, "/metadata/description").unwrap_or("")
            )
            .to_lowercase();
            let tagged = query.tag.is_empty()
                || entity
                    .pointer("/metadata/tags")
                    .and_then(Value::as_array)
                    .is_some_and(|tags| tags.iter().any(|tag| tag == query.tag.as_str()));
            tagged && (needle.is_empty() || text.contains(&needle))
        })
        .collect();
    let mut groups: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for entity in shown {
        groups.entry(str_at(entity, "/spec/type").unwrap_or("other").to_owned()).or_default().push(entity);
    }
    let body = html! {
        h1 { "Create something new" }
        p { "Pick a template: it asks a few questions, then builds the project, publishes it and registers it in the catalog. "
            a href="/create/tasks" { "Your tasks" } " · " a href="/create/edit" { "Template editor" } " · " a href="/create/actions" { "Installed actions" } }
        form.filters method="get" action="/create" data-autosubmit {
            label for="create-q" { "Search templates" }
            input #create-q type="search" name="q" value=(query.q);
            label for="create-tag" { "Tag" }
            select #create-tag name="tag" {
                option value="" { "Any" }
                @for tag in &all_tags { option value=(tag) selected[*tag == query.tag] { (tag) } }
            }
            button type="submit" { "Filter" }
        }
        @if groups.is_empty() {
            p.notice { "No templates match. Templates are catalog entities of kind Template (" code { "scaffolder.backstage.io/v1beta3" } ")." }
        }
        @for (kind, entities) in &groups {
            section aria-labelledby=(format!("type-{kind}")) {
                h2 id=(format!("type-{kind}")) { (kind) }
                div.cards {
                    @for entity in entities {
                        (template_card(entity))
                    }
                }
            }
        }
    };
    layout::page(&ui, &chrome, "Create", body)
}

fn template_card(entity: &Value) -> Markup {
    let name = str_at(entity, "/metadata/name").unwrap_or("");
    let namespace = str_at(entity, "/metadata/namespace").unwrap_or("default");
    let title = str_at(entity, "/metadata/title").unwrap_or(name);
    let tags: Vec<&str> = entity
        .pointer("/metadata/tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let owner = str_at(entity, "/spec/owner").and_then(|owner| Ref::parse(owner, Some("group"), namespace));
    html! {
        article.card.template-card {
            h3 { (title) }
            @if let Some(description) = str_at(entity, "/metadata/description") { p { (description) } }
            @if let Some(owner) = &owner { p.owner { "Owner: " (layout::entity_link(owner, Some("group"))) } }
            (layout::tags(&tags))
            p { a.button href=(format!("/create/templates/{namespace}/{name}")) aria-label=(format!("Choose {title}")) { "Choose" } }
        }
    }
}

fn template_of(
    ui: &Ui,
    chrome: &Chrome,
    namespace: &str,
    name: &str,
) -> Result<Template, portico_app::Error> {
    ui.app.template(&chrome.identity, &format!("template:{namespace}/{name}"))
}

/// What the form holds between its pages.
struct FormState<'a> {
    values: &'a Value,
    secrets: &'a BTreeMap<String, String>,
    errors: &'a FieldErrors,
    failure: Option<&'a str>,
}

/// One step of the form: a parameter page, or the review (`page == pages.len()`).
fn form_page(ui: &Ui, chrome: &Chrome, template: &Template, page: usize, state: FormState<'_>) -> Response {
    let FormState { values, secrets, errors, failure } = state;
    let (namespace, name) = ref_parts(&template.entity_ref);
    let action = format!("/create/templates/{namespace}/{name}");
    let pages = &template.pages;
    let review = page >= pages.len();
    let step_title = |index: usize| {
        pages
            .get(index)
            .and_then(|page| page.get("title"))
            .and_then(Value::as_str)
            .unwrap_or("Please enter the following information")
            .to_owned()
    };
    let body = html! {
        h1 { (template.title) }
        @if let Some(description) = &template.description { p { (description) } }
        ol.wizard aria-label="Steps" {
            @for index in 0..pages.len() {
                li aria-current=[(index == page).then_some("step")] { (step_title(index)) }
            }
            li aria-current=[review.then_some("step")] { "Review" }
        }
        @if let Some(failure) = failure { p.error-message role="alert" { (failure) } }
        @if !errors.is_empty() { p.error-message role="alert" { "Some fields need attention." } }
        form.template-form method="post" action=(action) novalidate {
            (layout::csrf_field(chrome))
            input type="hidden" name="_values" value=(values.to_string());
            // Sealed with the scaffolder's key: the page never holds a secret in the clear.
            input type="hidden" name="_secrets" value=(ui.app.scaffolder().seal(secrets).unwrap_or_default());
            input type="hidden" name="_page" value=(page);
            @if review {
                h2 { "Review" }
                table.review {
                    tbody {
                        @for (title, shown) in form::review_rows(pages, values, secrets) {
                            tr { th scope="row" { (title) } td { (shown) } }
                        }
                    }
                }
            } @else {
                h2 { (step_title(page)) }
                @if let Some(description) = pages[page].get("description").and_then(Value::as_str) { p { (description) } }
                (form::fields(ui, &chrome.identity, &pages[page], values, errors))
            }
            div.form-actions {
                @if page > 0 { button type="submit" name="_action" value="back" formnovalidate { "Back" } }
                @if review {
                    button.primary type="submit" name="_action" value="create" { "Create" }
                } @else {
                    button.primary type="submit" name="_action" value="next" { @if page + 1 == pages.len() { "Review" } @else { "Next" } }
                }
            }
        }
    };
    layout::page(ui, chrome, &template.title, body)
}

fn ref_parts(entity_ref: &str) -> (String, String) {
    let rest = entity_ref.split_once(':').map_or(entity_ref, |(_, rest)| rest);
    let (namespace, name) = rest.split_once('/').unwrap_or(("default", rest));
    (namespace.to_owned(), name.to_owned())
}

/// `GET /create/templates/:namespace/:name`: the first page of the form.
pub(crate) async fn form_start(
    State(ui): State<Ui>,
    chrome: Chrome,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let template = match template_of(&ui, &chrome, &namespace, &name) {
        Ok(template) => template,
        Err(error) => return crate::pages::error_page(&ui, &chrome, &error),
    };
    let state = FormState {
        values: &json!({}),
        secrets: &BTreeMap::new(),
        errors: &FieldErrors::new(),
        failure: None,
    };
    form_page(&ui, &chrome, &template, 0, state)
}

/// `POST /create/templates/:namespace/:name`: next, back, or create.
pub(crate) async fn form_submit(
    State(ui): State<Ui>,
    chrome: Chrome,
    Path((namespace, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    let template = match template_of(&ui, &chrome, &namespace, &name) {
        Ok(template) => template,
        Err(error) => return crate::pages::error_page(&ui, &chrome, &error),
    };
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let single = |key: &str| {
        pairs.iter().find(|(name, _)| name == key).map(|(_, value)| value.clone()).unwrap_or_default()
    };
    let mut values: Map<String, Value> = serde_json::from_str(&single("_values")).unwrap_or_default();
    let mut secrets: BTreeMap<String, String> =
        ui.app.scaffolder().unseal(&single("_secrets")).unwrap_or_default();
    let page = single("_page").parse::<usize>().unwrap_or(0).min(template.pages.len());
    let action = single("_action");
    if page < template.pages.len() {
        let mut errors = form::read_page(&template.pages[page], &pairs, &mut values, &mut secrets);
        if action == "back" {
            return form_page(
                &ui,
                &chrome,
                &template,
                page.saturating_sub(1),
                FormState {
                    values: &Value::Object(values),
                    secrets: &secrets,
                    errors: &FieldErrors::new(),
                    failure: None,
                },
            );
        }
        let current = Value::Object(values.clone());
        for (path, message) in form::check_page(&template.pages[page], &current) {
            errors.entry(path).or_insert(message);
        }
        if !errors.is_empty() {
            return form_page(
                &ui,
                &chrome,
                &template,
                page,
                FormState { values: &current, secrets: &secrets, errors: &errors, failure: None },
            );
        }
        return form_page(
            &ui,
            &chrome,
            &template,
            page + 1,
            FormState { values: &current, secrets: &secrets, errors: &FieldErrors::new(), failure: None },
        );
    }
    let values = Value::Object(values);
    if action == "back" {
        return form_page(
            &ui,
            &chrome,
            &template,
            page.saturating_sub(1),
            FormState { values: &values, secrets: &secrets, errors: &FieldErrors::new(), failure: None },
        );
    }
    match ui.app.create_task(&chrome.identity, &template.entity_ref, values.clone(), secrets.clone()).await {
        Ok(Ok(task_id)) => Redirect::to(&format!("/create/tasks/{task_id}")).into_response(),
        Ok(Err(problems)) => {
            let message =
                problems.iter().map(|problem| problem.message.clone()).collect::<Vec<_>>().join("; ");
            form_page(
                &ui,
                &chrome,
                &template,
                page,
                FormState {
                    values: &values,
                    secrets: &secrets,
                    errors: &FieldErrors::new(),
                    failure: Some(&message),
                },
            )
        }
        Err(error) => {
            let message = error.to_string();
            let state = FormState {
                values: &values,
                secrets: &secrets,
                errors: &FieldErrors::new(),
                failure: Some(&message),
            };
            form_page(&ui, &chrome, &template, page, state)
        }
    }
}

/// Per step: status, and start and end times from the events.
fn step_states(
    events: &[portico_store::TaskEventRow],
) -> BTreeMap<String, (String, Option<i64>, Option<i64>)> {
    let mut states: BTreeMap<String, (String, Option<i64>, Option<i64>)> = BTreeMap::new();
    for event in events {
        let Ok(body) = serde_json::from_str::<Value>(&event.body) else { continue };
        let (Some(step), Some(status)) =
            (body.get("stepId").and_then(Value::as_str), body.get("status").and_then(Value::as_str))
        else {
            continue;
        };
        let entry = states.entry(step.to_owned()).or_insert_with(|| (String::new(), None, None));
        entry.0 = status.to_owned();
        if status == "processing" {
            entry.1 = Some(event.created_at);
            entry.2 = None;
        } else {
            entry.2 = Some(event.created_at);
        }
    }
    states
}

/// `GET /create/tasks/:id`: steps with status and timing, the log, the output. While the task
/// runs, the script follows `events` and appends to the log (without script the page reloads
/// itself every second).
pub(crate) async fn task(State(ui): State<Ui>, chrome: Chrome, Path(task_id): Path<String>) -> Response {
    let task = match ui.app.task(&chrome.identity, &task_id).await {
        Ok(task) => task,
        Err(error) => return crate::pages::error_page(&ui, &chrome, &error),
    };
    let events = ui.app.task_events(&chrome.identity, &task_id, 0).await.unwrap_or_default();
    let states = step_states(&events);
    let status = task.row.status.as_str();
    let running = matches!(status, "open" | "processing");
    let completion: Option<Value> = events
        .iter()
        .rev()
        .find(|event| event.event_type == "completion")
        .and_then(|event| serde_json::from_str(&event.body).ok());
    let output = completion.as_ref().and_then(|body| body.get("output")).cloned().unwrap_or(Value::Null);
    let template_title = task
        .spec
        .pointer("/templateInfo/entity/metadata/title")
        .and_then(Value::as_str)
        .or_else(|| task.spec.pointer("/templateInfo/entityRef").and_then(Value::as_str))
        .unwrap_or("template")
        .to_owned();
    let steps = task.spec.get("steps").and_then(Value::as_array).cloned().unwrap_or_default();
    let body = html! {
        h1 { "Run of " (template_title) }
        p.task-status { "Status: " strong data-task-status=(status) { (status) } " · started " (format_time(task.row.created_at)) " UTC"
            @if let Some(by) = &task.row.created_by { " by " (by) } }
        @if running {
            form.inline method="post" action=(format!("/create/tasks/{task_id}/cancel")) {
                (layout::csrf_field(&chrome))
                button type="submit" { "Cancel" }
            }
        }
        @if matches!(status, "failed" | "cancelled") {
            form.inline method="post" action=(format!("/create/tasks/{task_id}/retry")) {
                (layout::csrf_field(&chrome))
                button type="submit" { "Retry" }
            }
        }
        h2 { "Steps" }
        ol.task-steps {
            @for step in &steps {
                @let id = step.get("id").and_then(Value::as_str).unwrap_or("");
                @let name = step.get("name").and_then(Value::as_str).unwrap_or(id);
                @let (state, started, ended) = states.get(id).cloned().unwrap_or_else(|| ("pending".to_owned(), None, None));
                li data-step-status=(state) data-step-id=(id) {
                    span.step-name { (name) } " — " span.step-status { (state) }
                    @if let (Some(started), Some(ended)) = (started, ended) { " (" (format!("{:.1}", (ended - started) as f64 / 1000.0)) " s)" }
                }
            }
        }
        @if let Some(error) = completion.as_ref().and_then(|body| body.pointer("/error/message")).and_then(Value::as_str) {
            p.error-message role="alert" { (error) }
        }
        @if !output.is_null() {
            h2 { "Output" }
            ul.task-links {
                @for link in output.get("links").and_then(Value::as_array).into_iter().flatten() {
                    @let title = link.get("title").and_then(Value::as_str).unwrap_or("Link");
                    @if let Some(entity_ref) = link.get("entityRef").and_then(Value::as_str).and_then(|text| Ref::parse(text, None, "default")) {
                        li { a href=(entity_ref.href()) { (title) } }
                    } @else if let Some(url) = link.get("url").and_then(Value::as_str) {
                        @match crate::view::safe_href(url) {
                            Some(href) => li { a href=(href) rel="noopener" { (title) } },
                            None => li { (title) ": " code { (url) } },
                        }
                    }
                }
            }
            @for text in output.get("text").and_then(Value::as_array).into_iter().flatten() {
                section.card {
                    @if let Some(title) = text.get("title").and_then(Value::as_str) { h3 { (title) } }
                    pre.output-text { (text.get("content").and_then(Value::as_str).unwrap_or("")) }
                }
            }
        }
        h2 { "Log" }
        pre.task-log aria-live="polite" data-follow=[running.then(|| format!("/create/tasks/{task_id}/events"))] data-after=(events.last().map_or(0, |event| event.id)) {
            @for event in &events {
                @let body: Value = serde_json::from_str(&event.body).unwrap_or(Value::Null);
                (format_time(event.created_at)) " " (body.get("message").and_then(Value::as_str).unwrap_or(&event.event_type)) "\n"
            }
        }
        p { a href="/create/tasks" { "All your tasks" } " · " a href="/create" { "Templates" } }
    };
    if running {
        layout::refreshing_page(&ui, &chrome, "Task", body, 1)
    } else {
        layout::page(&ui, &chrome, "Task", body)
    }
}

pub(crate) async fn cancel(State(ui): State<Ui>, chrome: Chrome, Path(task_id): Path<String>) -> Response {
    match ui.app.cancel_task(&chrome.identity, &task_id).await {
        Ok(()) => Redirect::to(&format!("/create/tasks/{task_id}")).into_response(),
        Err(error) => crate::pages::error_page(&ui, &chrome, &error),
    }
}

pub(crate) async fn retry(State(ui): State<Ui>, chrome: Chrome, Path(task_id): Path<String>) -> Response {
    match ui.app.retry_task(&chrome.identity, &task_id, BTreeMap::new()).await {
        Ok(()) => Redirect::to(&format!("/create/tasks/{task_id}")).into_response(),
        Err(error) => crate::pages::error_page(&ui, &chrome, &error),
    }
}

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct TasksQuery {
    #[serde(default)]
    owner: String,
}

/// `/create/tasks`: the signed-in user's tasks, or all (`?owner=all`).
pub(crate) async fn tasks(State(ui): State<Ui>, chrome: Chrome, Query(query): Query<TasksQuery>) -> Response {
    let mine = match &chrome.identity {
        portico_app::identity::Identity::User { user_entity_ref, .. } if query.owner != "all" => {
            Some(user_entity_ref.clone())
        }
        _ => None,
    };
    let filter = portico_store::TaskQuery {
        created_by: mine.iter().cloned().collect(),
        order: vec![("created_at", true)],
        limit: Some(200),
        ..Default::default()
    };
    let (tasks, total) = match ui.app.list_tasks(&chrome.identity, &filter).await {
        Ok(found) => found,
        Err(error) => return crate::pages::error_page(&ui, &chrome, &error),
    };
    let body = html! {
        h1 { @if mine.is_some() { "Your tasks" } @else { "All tasks" } }
        p { @if mine.is_some() { a href="/create/tasks?owner=all" { "Show all tasks" } } @else { (total) " tasks. " a href="/create" { "Templates" } } }
        table.entity-table {
            thead { tr { th { "Task" } th { "Template" } th { "Status" } th { "Created" } th { "By" } } }
            tbody {
                @for task in &tasks {
                    tr {
                        td { a href=(format!("/create/tasks/{}", task.row.id)) { code { (&task.row.id[..8.min(task.row.id.len())]) } } }
                        td { (task.spec.pointer("/templateInfo/entityRef").and_then(Value::as_str).unwrap_or("")) }
                        td data-task-status=(task.row.status) { (task.row.status) }
                        td { (format_time(task.row.created_at)) }
                        td { (task.row.created_by.clone().unwrap_or_default()) }
                    }
                }
            }
        }
    };
    layout::page(&ui, &chrome, "Tasks", body)
}

/// `/create/actions`: every installed action with its input schema.
pub(crate) async fn actions(State(ui): State<Ui>, chrome: Chrome) -> Response {
    let body = html! {
        h1 { "Installed actions" }
        @for action in ui.app.scaffolder().actions().iter() {
            section.card {
                h2 { code { (action.id()) } }
                p { (action.description()) }
                details { summary { "Input schema" } pre { (serde_json::to_string_pretty(&action.input_schema()).unwrap_or_default()) } }
            }
        }
    };
    layout::page(&ui, &chrome, "Installed actions", body)
}

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct EditorForm {
    #[serde(default)]
    template: String,
    #[serde(default)]
    values: String,
    #[serde(default)]
    files: String,
}

const EXAMPLE_TEMPLATE: &str = "apiVersion: scaffolder.backstage.io/v1beta3\nkind: Template\nmetadata:\n  name: draft\nspec:\n  type: service\n  parameters:\n    - title: Name\n      properties:\n        name:\n          type: string\n  steps:\n    - id: write\n      action: catalog:write\n      input:\n        entity:\n          apiVersion: backstage.io/v1alpha1\n          kind: Component\n          metadata:\n            name: ${{ parameters.name }}\n          spec:\n            type: service\n            lifecycle: experimental\n            owner: team-a\n    - id: log\n      action: debug:log\n      input:\n        message: Wrote ${{ parameters.name }}\n        listWorkspace: with-contents\n";

fn editor_page(ui: &Ui, chrome: &Chrome, input: &EditorForm, result: Option<Markup>) -> Response {
    let body = html! {
        h1 { "Template editor" }
        p { "Paste a template and the values to try it with, and run it as a dry run: nothing is published or registered; you see the log and the files it would produce. Skeleton files for " code { "fetch:template" } " go in the third box as " code { "--- path" } " headers followed by the file's text." }
        form.editor method="post" action="/create/edit" {
            (layout::csrf_field(chrome))
            label for="editor-template" { "Template (YAML)" }
            textarea #editor-template name="template" rows="18" spellcheck="false" { (if input.template.is_empty() { EXAMPLE_TEMPLATE } else { &input.template }) }
            label for="editor-values" { "Values (JSON)" }
            textarea #editor-values name="values" rows="3" spellcheck="false" { (if input.values.is_empty() { "{\"name\": \"draft-service\"}" } else { &input.values }) }
            label for="editor-files" { "Skeleton files (optional)" }
            textarea #editor-files name="files" rows="6" spellcheck="false" placeholder="--- skeleton/README.md\n# ${{ values.name }}" { (input.files) }
            button.primary type="submit" { "Dry run" }
        }
        @if let Some(result) = result { (result) }
    };
    layout::page(ui, chrome, "Template editor", body)
}

pub(crate) async fn editor(State(ui): State<Ui>, chrome: Chrome) -> Response {
    if let Err(error) = ui.app.check(&chrome.identity, TEMPLATE_MANAGEMENT, None) {
        return crate::pages::error_page(&ui, &chrome, &error);
    }
    editor_page(&ui, &chrome, &EditorForm::default(), None)
}

/// `--- path` headers, each followed by the file's text.
fn parse_files(text: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(path) = line.strip_prefix("--- ") {
            files.push((path.trim().to_owned(), String::new()));
        } else if let Some((_, contents)) = files.last_mut() {
            contents.push_str(line);
            contents.push('\n');
        }
    }
    files.into_iter().map(|(path, contents)| (path, contents.into_bytes())).collect()
}

pub(crate) async fn editor_run(
    State(ui): State<Ui>,
    chrome: Chrome,
    axum::Form(input): axum::Form<EditorForm>,
) -> Response {
    if let Err(error) = ui.app.check(&chrome.identity, TEMPLATE_MANAGEMENT, None) {
        return crate::pages::error_page(&ui, &chrome, &error);
    }
    let failure = |message: String| html! { p.error-message role="alert" { (message) } };
    let (documents, problems) = portico_catalog::descriptor::parse_descriptor(&input.template);
    if let Some(problem) = problems.first() {
        return editor_page(
            &ui,
            &chrome,
            &input,
            Some(failure(format!(
                "The template is not valid YAML: line {}, column {}: {}",
                problem.line, problem.column, problem.message
            ))),
        );
    }
    let Some(template) = documents.first().map(|document| document.value.clone()) else {
        return editor_page(&ui, &chrome, &input, Some(failure("The template is empty.".to_owned())));
    };
    let values: Value =
        match serde_json::from_str(if input.values.trim().is_empty() { "{}" } else { &input.values }) {
            Ok(values) => values,
            Err(error) => {
                return editor_page(
                    &ui,
                    &chrome,
                    &input,
                    Some(failure(format!("The values are not valid JSON: {error}"))),
                )
            }
        };
    let files = parse_files(&input.files);
    let result = match ui.app.dry_run_template(&chrome.identity, &template, values, files).await {
        Ok(Ok(result)) => result,
        Ok(Err(problems)) => {
            let message =
                problems.iter().map(|problem| problem.message.clone()).collect::<Vec<_>>().join("; ");
            return editor_page(
                &ui,
                &chrome,
                &input,
                Some(failure(format!("The values do not fit the template: {message}"))),
            );
        }
        Err(error) => return editor_page(&ui, &chrome, &input, Some(failure(error.to_string()))),
    };
    let markup = html! {
        h2 { "Log" }
        pre.task-log {
            @for body in &result.log { (body.get("message").and_then(Value::as_str).unwrap_or("")) "\n" }
        }
        h2 { "Output" }
        pre { (serde_json::to_string_pretty(&result.output).unwrap_or_default()) }
        h2 { "Files" }
        @if result.files.is_empty() { p { "The run left no files in its workspace." } }
        @for (path, executable, bytes) in &result.files {
            section.card {
                h3 { code { (path) } @if *executable { " (executable)" } }
                @match std::str::from_utf8(bytes) {
                    Ok(text) => pre { (text) },
                    Err(_) => p { (bytes.len()) " bytes of binary content" },
                }
            }
        }
    };
    editor_page(&ui, &chrome, &input, Some(markup))
}

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct EventsQuery {
    #[serde(default)]
    after: i64,
}

/// `GET /create/tasks/:id/events?after=N`: the task's events after `N` as JSON lines for the
/// task page's script, as soon as there is one (or an empty list after 20 seconds). Under the
/// page's own session, unlike the API's event stream.
pub(crate) async fn events(
    State(ui): State<Ui>,
    chrome: Chrome,
    Path(task_id): Path<String>,
    Query(query): Query<EventsQuery>,
) -> Response {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let events = match ui.app.task_events(&chrome.identity, &task_id, query.after).await {
            Ok(events) => events,
            Err(error) => return crate::pages::error_page(&ui, &chrome, &error),
        };
        if !events.is_empty() || tokio::time::Instant::now() >= deadline {
            let lines: Vec<Value> = events
                .iter()
                .map(|event| {
                    let body: Value = serde_json::from_str(&event.body).unwrap_or(Value::Null);
                    json!({
                        "id": event.id,
                        "type": event.event_type,
                        "line": format!("{} {}", format_time(event.created_at), body.get("message").and_then(Value::as_str).unwrap_or(&event.event_type)),
                        "stepId": body.get("stepId"),
                        "status": body.get("status"),
                    })
                })
                .collect();
            return (
                [
                    (axum::http::header::CONTENT_TYPE, "application/json"),
                    (axum::http::header::CACHE_CONTROL, "no-store"),
                ],
                Value::Array(lines).to_string(),
            )
                .into_response();
        }
        ui.app.scaffolder().next_event(std::time::Duration::from_secs(1)).await;
    }
}
