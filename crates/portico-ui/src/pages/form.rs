//! A template's parameter page (a JSON Schema with `ui:*` keys) as an HTML form, and the
//! submitted form back into values. Rendered on the server, so the form works without script.
//!
//! Fields are named `f.<path>` (`f.name`, `f.repo.owner`); the values of other pages travel in
//! a hidden `_values` field as JSON.

use std::collections::{BTreeMap, HashMap};

use maud::{html, Markup};
use portico_app::identity::Identity;
use portico_app::query::{QueryFilter, QueryRequest};
use serde_json::{json, Map, Value};

use crate::Ui;

/// Problems by field path (`name`, `repo.owner`), shown next to each field.
pub(crate) type FieldErrors = HashMap<String, String>;

/// The page's properties in `ui:order` (with `*` for the rest), else as written, followed by the
/// properties that only apply on some answers (`dependencies`, `oneOf`/`anyOf` branches,
/// `if`/`then`/`else`). Without script the form cannot show and hide those, so it shows them
/// all, each saying when it applies; the schema check decides what is required.
pub(crate) fn ordered_properties(schema: &Value) -> Vec<(String, Value)> {
    let mut listed = declared_properties(schema);
    for (name, property) in conditional_properties(schema) {
        if !listed.iter().any(|(known, _)| *known == name) {
            listed.push((name, property));
        }
    }
    listed
}

/// Properties of the branches of a schema, with a `ui:help` naming the condition.
fn conditional_properties(schema: &Value) -> Vec<(String, Value)> {
    let mut found: Vec<(String, Value)> = Vec::new();
    let mut add = |branch: &Value, condition: String| {
        for (name, property) in declared_properties(branch) {
            // A branch's own `{const: …}` for the deciding field is the condition, not a field.
            let single_value =
                property.get("enum").and_then(Value::as_array).is_some_and(|list| list.len() == 1);
            if property.get("const").is_some() || (single_value && property.get("type").is_none()) {
                continue;
            }
            let mut property = property;
            if let Some(object) = property.as_object_mut() {
                object.entry("ui:help").or_insert_with(|| Value::String(condition.clone()));
            }
            found.push((name, property));
        }
    };
    let describe = |branch: &Value| -> Option<String> {
        let conditions: Vec<String> = branch
            .get("properties")?
            .as_object()?
            .iter()
            .filter_map(|(name, property)| {
                let value = property.get("const").or_else(|| property.pointer("/enum/0"))?;
                Some(format!("{name} is {}", text_of(Some(value))))
            })
            .collect();
        (!conditions.is_empty()).then(|| format!("Only when {}.", conditions.join(" and ")))
    };
    if let Some(dependencies) = schema.get("dependencies").and_then(Value::as_object) {
        for (key, dependency) in dependencies {
            let branches: Vec<&Value> = ["oneOf", "anyOf"]
                .iter()
                .filter_map(|keyword| dependency.get(*keyword).and_then(Value::as_array))
                .flatten()
                .collect();
            if branches.is_empty() {
                add(dependency, format!("Only when {key} is given."));
            }
            for branch in branches {
                let condition = describe(branch).unwrap_or_else(|| format!("Depends on {key}."));
                add(branch, condition);
            }
        }
    }
    for keyword in ["oneOf", "anyOf", "allOf"] {
        for branch in schema.get(keyword).and_then(Value::as_array).into_iter().flatten() {
            let condition = describe(branch).unwrap_or_else(|| "Depends on other answers.".to_owned());
            add(branch, condition);
            if let Some(test) = branch.get("if") {
                let when = describe(test).unwrap_or_else(|| "Depends on other answers.".to_owned());
                if let Some(then) = branch.get("then") {
                    add(then, when.clone());
                }
                if let Some(otherwise) = branch.get("else") {
                    add(otherwise, format!("Unless: {when}"));
                }
            }
        }
    }
    if let (Some(test), Some(then)) = (schema.get("if"), schema.get("then")) {
        add(then, describe(test).unwrap_or_else(|| "Depends on other answers.".to_owned()));
    }
    found
}

/// The properties a schema declares itself, in `ui:order` (with `*` for the rest) or as written.
fn declared_properties(schema: &Value) -> Vec<(String, Value)> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else { return Vec::new() };
    let order: Vec<&str> = schema
        .get("ui:order")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if order.is_empty() {
        return properties.iter().map(|(key, value)| (key.clone(), value.clone())).collect();
    }
    let mut listed: Vec<(String, Value)> = Vec::new();
    let rest: Vec<(String, Value)> = properties
        .iter()
        .filter(|(key, _)| !order.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    for name in order {
        if name == "*" {
            listed.extend(rest.iter().cloned());
        } else if let Some(value) = properties.get(name) {
            listed.push((name.to_owned(), value.clone()));
        }
    }
    if !order_has_wildcard(schema) {
        listed.extend(rest);
    }
    listed
}

fn order_has_wildcard(schema: &Value) -> bool {
    schema.get("ui:order").and_then(Value::as_array).is_some_and(|order| order.iter().any(|item| item == "*"))
}

fn field_of(property: &Value) -> Option<&str> {
    property.get("ui:field").and_then(Value::as_str)
}

fn widget_of(property: &Value) -> Option<&str> {
    property.get("ui:widget").and_then(Value::as_str)
}

/// Whether a property's value goes into the task's secrets rather than its values.
pub(crate) fn is_secret(property: &Value) -> bool {
    field_of(property) == Some("Secret")
}

fn required(schema: &Value) -> Vec<&str> {
    schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect()
}

/// The form fields of one page.
pub(crate) fn fields(
    ui: &Ui,
    identity: &Identity,
    page: &Value,
    values: &Value,
    errors: &FieldErrors,
) -> Markup {
    object_fields(ui, identity, page, values, errors, "")
}

fn object_fields(
    ui: &Ui,
    identity: &Identity,
    schema: &Value,
    values: &Value,
    errors: &FieldErrors,
    prefix: &str,
) -> Markup {
    let required = required(schema);
    html! {
        @for (name, property) in ordered_properties(schema) {
            @let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
            (field(ui, identity, &path, &property, values.get(&name), required.contains(&name.as_str()), errors))
        }
    }
}

fn field(
    ui: &Ui,
    identity: &Identity,
    path: &str,
    property: &Value,
    value: Option<&Value>,
    required: bool,
    errors: &FieldErrors,
) -> Markup {
    let id = format!("f-{}", path.replace('.', "-"));
    let name = format!("f.{path}");
    let title = property.get("title").and_then(Value::as_str).unwrap_or(path);
    let description = property.get("description").and_then(Value::as_str);
    let help = property.get("ui:help").and_then(Value::as_str);
    let placeholder = property.get("ui:placeholder").and_then(Value::as_str);
    let value = value.or_else(|| property.get("default"));
    let kind = property.get("type").and_then(Value::as_str).unwrap_or("string");
    let error = errors.get(path);
    let autofocus = property.get("ui:autofocus").and_then(Value::as_bool).unwrap_or(false);
    if widget_of(property) == Some("hidden") {
        return html! { input type="hidden" name=(name) value=(text_of(value)); };
    }
    if kind == "null" {
        return html! { div.form-text { @if let Some(title) = property.get("title").and_then(Value::as_str) { h3 { (title) } } @if let Some(text) = description { p { (text) } } } };
    }
    let label = html! {
        label for=(id) { (title) @if required { span.required aria-hidden="true" { " *" } } }
    };
    let notes = html! {
        @if let Some(text) = description { p.field-description { (text) } }
        @if let Some(text) = help { p.field-help { (text) } }
        @if let Some(error) = error { p.field-error role="alert" id=(format!("{id}-error")) { (error) } }
    };
    let invalid = error.map(|_| "true");
    let control = match (kind, field_of(property)) {
        ("object", _) => {
            let nested = value.cloned().unwrap_or_else(|| json!({}));
            return html! {
                fieldset.form-group {
                    legend { (title) }
                    (notes)
                    (object_fields(ui, identity, property, &nested, errors, path))
                }
            };
        }
        (_, Some("RepoUrlPicker")) => repo_url_picker(&id, &name, property, value),
        (_, Some("EntityPicker" | "OwnerPicker" | "OwnedEntityPicker" | "MyGroupsPicker")) => {
            let candidates = candidates(ui, identity, property);
            let arbitrary =
                property.pointer("/ui:options/allowArbitraryValues").and_then(Value::as_bool).unwrap_or(true)
                    && field_of(property) != Some("MyGroupsPicker");
            let current = text_of(value);
            if arbitrary {
                let list = format!("{id}-options");
                html! {
                    input id=(id) name=(name) type="text" list=(list) value=(current) required[required] aria-invalid=[invalid] placeholder=[placeholder] autofocus[autofocus];
                    datalist id=(list) { @for candidate in &candidates { option value=(candidate) {} } }
                }
            } else {
                html! {
                    select id=(id) name=(name) required[required] aria-invalid=[invalid] {
                        option value="" { "Choose…" }
                        @for candidate in &candidates { option value=(candidate) selected[*candidate == current] { (candidate) } }
                    }
                }
            }
        }
        ("array", Some("MultiEntityPicker")) => {
            let candidates = candidates(ui, identity, property);
            let chosen = strings_of(value);
            html! {
                select id=(id) name=(name) multiple aria-invalid=[invalid] {
                    @for candidate in &candidates { option value=(candidate) selected[chosen.contains(candidate)] { (candidate) } }
                }
            }
        }
        ("array", Some("EntityTagsPicker")) => html! {
            input id=(id) name=(name) type="text" value=(strings_of(value).join(", ")) aria-invalid=[invalid] placeholder="tag-one, tag-two";
        },
        ("array", _) => match property.pointer("/items/enum").and_then(Value::as_array) {
            Some(options) => {
                let chosen = strings_of(value);
                let labels = property.pointer("/items/enumNames").and_then(Value::as_array);
                html! {
                    fieldset.choices id=(id) {
                        @for (index, option) in options.iter().enumerate() {
                            @let text = text_of(Some(option));
                            @let label = labels.and_then(|labels| labels.get(index)).and_then(Value::as_str).unwrap_or(&text);
                            label.choice { input type="checkbox" name=(name) value=(text) checked[chosen.contains(&text)]; " " (label) }
                        }
                    }
                }
            }
            None => html! {
                textarea id=(id) name=(name) rows="3" aria-invalid=[invalid] placeholder=[placeholder] { (strings_of(value).join("\n")) }
                p.field-help { "One item per line." }
            },
        },
        ("boolean", _) => {
            let checked = value.and_then(Value::as_bool).unwrap_or(false);
            return html! {
                div.form-field {
                    input type="hidden" name=(name) value="false";
                    label.choice for=(id) { input id=(id) type="checkbox" name=(name) value="true" checked[checked]; " " (title) }
                    (notes)
                }
            };
        }
        _ => match property.get("enum").and_then(Value::as_array) {
            Some(options) => {
                let current = text_of(value);
                let labels = property.get("enumNames").and_then(Value::as_array);
                html! {
                    select id=(id) name=(name) required[required] aria-invalid=[invalid] {
                        @if !required || current.is_empty() { option value="" { "Choose…" } }
                        @for (index, option) in options.iter().enumerate() {
                            @let text = text_of(Some(option));
                            @let label = labels.and_then(|labels| labels.get(index)).and_then(Value::as_str).unwrap_or(&text);
                            option value=(text) selected[text == current] { (label) }
                        }
                    }
                }
            }
            None => {
                let current = text_of(value);
                let input_type = match (kind, widget_of(property), field_of(property)) {
                    (_, _, Some("Secret")) | (_, Some("password"), _) => "password",
                    ("number" | "integer", _, _) => "number",
                    _ => "text",
                };
                if widget_of(property) == Some("textarea") {
                    let rows = property.pointer("/ui:options/rows").and_then(Value::as_u64).unwrap_or(4);
                    html! { textarea id=(id) name=(name) rows=(rows) required[required] aria-invalid=[invalid] placeholder=[placeholder] { (current) } }
                } else {
                    let step = (kind == "number").then_some("any");
                    html! {
                        input id=(id) name=(name) type=(input_type) value=(current) step=[step] required[required] aria-invalid=[invalid] placeholder=[placeholder] autofocus[autofocus] autocomplete=[(input_type == "password").then_some("off")];
                    }
                }
            }
        },
    };
    html! { div.form-field { (label) (control) (notes) } }
}

fn repo_url_picker(id: &str, name: &str, property: &Value, value: Option<&Value>) -> Markup {
    let current = text_of(value);
    let (host, query) = current.split_once('?').unwrap_or((current.as_str(), ""));
    let params: HashMap<String, String> =
        url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let hosts: Vec<&str> = property
        .pointer("/ui:options/allowedHosts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    html! {
        div.repo-picker id=(id) {
            label for=(format!("{id}-host")) { "Host" }
            @if hosts.is_empty() {
                input id=(format!("{id}-host")) name=(format!("{name}.host")) type="text" value=(host) placeholder="github.com";
            } @else {
                select id=(format!("{id}-host")) name=(format!("{name}.host")) {
                    @for option in &hosts { option value=(option) selected[*option == host] { (option) } }
                }
            }
            label for=(format!("{id}-owner")) { "Owner" }
            input id=(format!("{id}-owner")) name=(format!("{name}.owner")) type="text" value=(params.get("owner").map(String::as_str).unwrap_or(""));
            label for=(format!("{id}-repo")) { "Repository" }
            input id=(format!("{id}-repo")) name=(format!("{name}.repo")) type="text" value=(params.get("repo").map(String::as_str).unwrap_or(""));
        }
    }
}

/// Entity refs a picker offers: the kinds of its `catalogFilter` (or `allowedKinds`), groups and
/// users for an owner, what the user owns, or the user's groups.
fn candidates(ui: &Ui, identity: &Identity, property: &Value) -> Vec<String> {
    let options = property.get("ui:options").cloned().unwrap_or(Value::Null);
    let mut kinds: Vec<String> = Vec::new();
    let mut collect_kinds = |value: Option<&Value>| match value {
        Some(Value::String(kind)) => kinds.push(kind.clone()),
        Some(Value::Array(items)) => kinds.extend(items.iter().filter_map(Value::as_str).map(str::to_owned)),
        _ => {}
    };
    match options.get("catalogFilter") {
        Some(Value::Array(filters)) => filters.iter().for_each(|filter| collect_kinds(filter.get("kind"))),
        Some(filter) => collect_kinds(filter.get("kind")),
        None => {}
    }
    collect_kinds(options.get("allowedKinds"));
    let field = field_of(property).unwrap_or("");
    if kinds.is_empty() && field == "OwnerPicker" {
        kinds = vec!["Group".to_owned(), "User".to_owned()];
    }
    let mut predicate = match kinds.len() {
        0 => json!({}),
        _ => json!({ "kind": kinds }),
    };
    match (field, identity) {
        ("OwnedEntityPicker", Identity::User { ownership_entity_refs, .. }) => {
            predicate["relations.ownedBy"] = json!(ownership_entity_refs);
        }
        ("MyGroupsPicker", Identity::User { user_entity_ref, .. }) => {
            predicate = json!({ "kind": "Group", "relations.hasMember": user_entity_ref });
        }
        _ => {}
    }
    let request = QueryRequest {
        filter: QueryFilter::Predicate(predicate),
        limit: Some(500),
        ..QueryRequest::default()
    };
    let mut refs: Vec<String> = ui
        .app
        .query_entities(identity, request)
        .map(|page| {
            page.items
                .iter()
                .filter_map(|body| serde_json::from_str::<Value>(body).ok())
                .filter_map(|entity| portico_catalog::entity_ref::canonical_ref_of(&entity))
                .collect()
        })
        .unwrap_or_default();
    refs.sort();
    refs
}

fn text_of(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}

fn strings_of(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items.iter().map(|item| text_of(Some(item))).collect(),
        _ => Vec::new(),
    }
}

/// Reads one page's fields from the submitted pairs into `values` (and `secrets`). Type errors
/// (a number that is not one) are reported by field; the schema check comes after.
pub(crate) fn read_page(
    page: &Value,
    pairs: &[(String, String)],
    values: &mut Map<String, Value>,
    secrets: &mut BTreeMap<String, String>,
) -> FieldErrors {
    let mut errors = FieldErrors::new();
    read_object(page, pairs, values, secrets, "", &mut errors);
    errors
}

fn submitted<'a>(pairs: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    pairs.iter().filter(|(key, _)| key == name).map(|(_, value)| value.as_str()).collect()
}

fn read_object(
    schema: &Value,
    pairs: &[(String, String)],
    values: &mut Map<String, Value>,
    secrets: &mut BTreeMap<String, String>,
    prefix: &str,
    errors: &mut FieldErrors,
) {
    for (name, property) in ordered_properties(schema) {
        let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        let field_name = format!("f.{path}");
        let kind = property.get("type").and_then(Value::as_str).unwrap_or("string");
        let raw = submitted(pairs, &field_name);
        let value = match (kind, field_of(&property)) {
            ("null", _) => continue,
            ("object", _) => {
                let mut nested = values.get(&name).and_then(Value::as_object).cloned().unwrap_or_default();
                read_object(&property, pairs, &mut nested, secrets, &path, errors);
                Some(Value::Object(nested))
            }
            (_, Some("RepoUrlPicker")) => {
                let part = |part: &str| {
                    submitted(pairs, &format!("{field_name}.{part}"))
                        .first()
                        .map(|text| text.trim().to_owned())
                };
                match part("host").filter(|host| !host.is_empty()) {
                    Some(host) => {
                        let mut query = url::form_urlencoded::Serializer::new(String::new());
                        for key in ["owner", "repo"] {
                            if let Some(text) = part(key).filter(|text| !text.is_empty()) {
                                query.append_pair(key, &text);
                            }
                        }
                        Some(Value::String(format!("{host}?{}", query.finish())))
                    }
                    None => None,
                }
            }
            (_, Some("Secret")) => {
                if let Some(text) = raw.first().filter(|text| !text.is_empty()) {
                    secrets.insert(name.clone(), (*text).to_owned());
                }
                continue;
            }
            ("array", Some("EntityTagsPicker")) => Some(Value::Array(
                raw.first()
                    .map(|text| {
                        text.split(',')
                            .map(str::trim)
                            .filter(|tag| !tag.is_empty())
                            .map(|tag| json!(tag))
                            .collect()
                    })
                    .unwrap_or_default(),
            )),
            ("array", _)
                if property.pointer("/items/enum").is_some()
                    || field_of(&property) == Some("MultiEntityPicker") =>
            {
                Some(Value::Array(raw.iter().map(|text| json!(text)).collect()))
            }
            ("array", _) => Some(Value::Array(
                raw.first()
                    .map(|text| {
                        text.lines()
                            .map(str::trim)
                            .filter(|line| !line.is_empty())
                            .map(|line| json!(line))
                            .collect()
                    })
                    .unwrap_or_default(),
            )),
            ("boolean", _) => Some(Value::Bool(raw.contains(&"true"))),
            ("number" | "integer", _) => match raw
                .first()
                .map(|text| text.trim())
                .filter(|text| !text.is_empty())
            {
                None => None,
                Some(text) => match text.parse::<f64>() {
                    Ok(number) if kind == "integer" && number.fract() == 0.0 => Some(json!(number as i64)),
                    Ok(number) if kind == "number" => serde_json::Number::from_f64(number).map(Value::Number),
                    _ => {
                        errors.insert(
                            path.clone(),
                            format!(
                                "{text} is not {}",
                                if kind == "integer" { "a whole number" } else { "a number" }
                            ),
                        );
                        None
                    }
                },
            },
            _ => raw.first().map(|text| text.trim()).filter(|text| !text.is_empty()).map(|text| json!(text)),
        };
        match value {
            Some(value) => {
                values.insert(name, value);
            }
            None => {
                values.remove(&name);
            }
        }
    }
}

/// The schema's problems with these values, by field path.
pub(crate) fn check_page(page: &Value, values: &Value) -> FieldErrors {
    let mut errors = FieldErrors::new();
    if let Err(problems) = portico_app::scaffolder::validate_values(std::slice::from_ref(page), values) {
        for problem in problems {
            let mut path: Vec<String> = problem
                .path
                .iter()
                .map(|part| part.as_str().map(str::to_owned).unwrap_or_else(|| part.to_string()))
                .collect();
            if problem.name == "required" {
                if let Some(missing) = problem.argument.as_str() {
                    path.push(missing.to_owned());
                }
            }
            let message = if problem.name == "required" {
                "This field is required.".to_owned()
            } else {
                problem.message
            };
            errors.entry(path.join(".")).or_insert(message);
        }
    }
    errors
}

/// `(title, shown value)` of every property of every page, for the review step: secrets and
/// passwords masked, `ui:backstage.review.show: false` left out.
pub(crate) fn review_rows(
    pages: &[Value],
    values: &Value,
    secrets: &BTreeMap<String, String>,
) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    for page in pages {
        for (name, property) in ordered_properties(page) {
            if property.pointer("/ui:backstage/review/show") == Some(&Value::Bool(false))
                || property.get("ui:backstage.review.show") == Some(&Value::Bool(false))
                || property.get("type").and_then(Value::as_str) == Some("null")
            {
                continue;
            }
            let title = property.get("title").and_then(Value::as_str).unwrap_or(&name).to_owned();
            let mask = property
                .pointer("/ui:backstage/review/mask")
                .or_else(|| property.get("ui:backstage.review.mask"))
                .and_then(Value::as_str);
            let shown = if is_secret(&property) {
                if secrets.contains_key(&name) {
                    "******".to_owned()
                } else {
                    String::new()
                }
            } else if widget_of(&property) == Some("password") {
                "******".to_owned()
            } else if let Some(mask) = mask {
                mask.to_owned()
            } else {
                match values.get(&name) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(text)) => text.clone(),
                    Some(Value::Array(items)) => {
                        items.iter().map(|item| text_of(Some(item))).collect::<Vec<_>>().join(", ")
                    }
                    Some(other) => other.to_string(),
                }
            };
            rows.push((title, shown));
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn fields_that_depend_on_answers_follow_the_others_and_say_when_they_apply() {
        let page = json!({
            "properties": { "useDb": { "type": "boolean" }, "name": { "type": "string" } },
            "ui:order": ["name", "*"],
            "dependencies": {
                "useDb": {
                    "oneOf": [
                        { "properties": { "useDb": { "const": true }, "dbName": { "type": "string", "title": "Database" } }, "required": ["dbName"] },
                        { "properties": { "useDb": { "const": false } } },
                    ],
                },
            },
            "allOf": [{ "if": { "properties": { "name": { "const": "x" } } }, "then": { "properties": { "why": { "type": "string" } } } }],
        });
        let names: Vec<String> = super::ordered_properties(&page).into_iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["name", "useDb", "dbName", "why"]);
        let listed = super::ordered_properties(&page);
        assert_eq!(listed[2].1["ui:help"], "Only when useDb is true.");
        assert_eq!(listed[3].1["ui:help"], "Only when name is x.");
    }
}
