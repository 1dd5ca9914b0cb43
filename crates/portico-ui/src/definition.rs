//! API definitions rendered on the server: OpenAPI 3.x and Swagger 2.0, AsyncAPI 2 and 3,
//! GraphQL SDL and gRPC proto files. A definition that cannot be read shows the reason and its
//! raw text; nothing in a definition can produce markup (maud escapes every value).

use std::collections::BTreeMap;

use maud::{html, Markup};
use serde_json::Value;

use crate::view::str_at;

/// Schemas nest at most this deep on the page; deeper levels (and `$ref` cycles) are elided.
const SCHEMA_DEPTH: usize = 6;
const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

pub(crate) fn render(entity: &Value) -> Markup {
    let api_type = str_at(entity, "/spec/type").unwrap_or("").to_lowercase();
    let definition = match entity.pointer("/spec/definition") {
        Some(Value::String(text)) => text.clone(),
        Some(other) => serde_json::to_string_pretty(other).unwrap_or_default(),
        None => String::new(),
    };
    let rendered = match api_type.as_str() {
        "openapi" => structured(&definition).and_then(|document| openapi(&document)),
        "asyncapi" => structured(&definition).and_then(|document| asyncapi(&document)),
        "graphql" => Ok(graphql(&definition)),
        "grpc" => Ok(grpc(&definition)),
        other => {
            Err(format!("Portico has no viewer for API type “{other}”; the definition is shown as text."))
        }
    };
    html! {
        @match rendered {
            Ok(markup) => (markup),
            Err(message) => p.error-message role="alert" { (message) },
        }
        details.raw open[api_type != "openapi" && api_type != "asyncapi"] {
            summary { "Raw definition" }
            pre.code tabindex="0" { code { (definition) } }
        }
    }
}

/// Parses a JSON or YAML definition into a mapping.
fn structured(text: &str) -> Result<Value, String> {
    if text.trim_start().starts_with('{') {
        if let Ok(value) = serde_json::from_str::<Value>(text) {
            return Ok(value);
        }
    }
    let (documents, errors) = portico_catalog::descriptor::parse_descriptor(text);
    if let Some(error) = errors.first() {
        return Err(format!(
            "The definition is not valid YAML or JSON: {} (line {}, column {})",
            error.message, error.line, error.column
        ));
    }
    match documents.into_iter().next() {
        Some(document) => Ok(document.value),
        None => Err("The definition is empty.".into()),
    }
}

fn info(document: &Value, kind: &str) -> Markup {
    html! {
        section.card.wide aria-label="Summary" {
            h2 { (str_at(document, "/info/title").unwrap_or("Untitled API")) " " span.badge { (kind) } }
            @if let Some(version) = str_at(document, "/info/version") { p { "Version " code { (version) } } }
            @if let Some(description) = str_at(document, "/info/description") { p.description { (description) } }
            (servers(document))
        }
    }
}

fn servers(document: &Value) -> Markup {
    let mut urls: Vec<String> = Vec::new();
    match document.get("servers") {
        Some(Value::Array(servers)) => {
            urls.extend(servers.iter().filter_map(|server| str_at(server, "/url").map(str::to_owned)))
        }
        Some(Value::Object(servers)) => urls.extend(servers.iter().map(|(name, server)| {
            let address = str_at(server, "/url").or_else(|| str_at(server, "/host")).unwrap_or("");
            format!("{name}: {address}")
        })),
        _ => {}
    }
    if let Some(host) = str_at(document, "/host") {
        urls.push(format!("{host}{}", str_at(document, "/basePath").unwrap_or("")));
    }
    html! {
        @if !urls.is_empty() {
            h3 { "Servers" }
            ul { @for url in &urls { li { code { (url) } } } }
        }
    }
}

/// Follows a local `$ref` (`#/components/schemas/X`, `#/definitions/X`).
fn resolve<'a>(document: &'a Value, value: &'a Value) -> (&'a Value, Option<String>) {
    if let Some(reference) = value.get("$ref").and_then(Value::as_str) {
        if let Some(pointer) = reference.strip_prefix('#') {
            if let Some(target) = document.pointer(pointer) {
                let name = pointer.rsplit('/').next().unwrap_or(pointer).to_owned();
                return (target, Some(name));
            }
        }
    }
    (value, None)
}

fn schema_type(schema: &Value) -> String {
    if let Some(items) = schema.get("items") {
        let inner = items
            .get("$ref")
            .and_then(Value::as_str)
            .map(|reference| reference.rsplit('/').next().unwrap_or(reference).to_owned())
            .unwrap_or_else(|| schema_type(items));
        return format!("array of {inner}");
    }
    match schema.get("type") {
        Some(Value::String(kind)) => match str_at(schema, "/format") {
            Some(format) => format!("{kind} ({format})"),
            None => kind.clone(),
        },
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" | "),
        _ if schema.get("properties").is_some() => "object".into(),
        _ if schema.get("oneOf").is_some() => "one of".into(),
        _ if schema.get("anyOf").is_some() => "any of".into(),
        _ if schema.get("allOf").is_some() => "all of".into(),
        _ => "any".into(),
    }
}

/// A schema as a nested list of properties.
fn schema(document: &Value, value: &Value, depth: usize, seen: &mut Vec<String>) -> Markup {
    let (resolved, name) = resolve(document, value);
    if let Some(name) = &name {
        if seen.contains(name) || depth >= SCHEMA_DEPTH {
            return html! { span.schema-ref { (name) " (see above)" } };
        }
        seen.push(name.clone());
    }
    let required: Vec<&str> = resolved
        .get("required")
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let markup = html! {
        span.schema-type { @if let Some(name) = &name { strong { (name) } " · " } (schema_type(resolved)) }
        @if let Some(description) = str_at(resolved, "/description") { " — " span.description { (description) } }
        @if let Some(Value::Array(values)) = resolved.get("enum") {
            " " span.enum { "one of: " @for (index, value) in values.iter().enumerate() { @if index > 0 { ", " } code { (value_text(value)) } } }
        }
        @if let Some(Value::Object(properties)) = resolved.get("properties") {
            @if depth < SCHEMA_DEPTH {
                ul.schema {
                    @for (property, inner) in properties {
                        li {
                            code { (property) } @if required.contains(&property.as_str()) { " " span.badge { "required" } } " "
                            (schema(document, inner, depth + 1, seen))
                        }
                    }
                }
            }
        }
        @if let Some(items) = resolved.get("items") {
            @if depth < SCHEMA_DEPTH && resolve(document, items).0.get("properties").is_some() {
                ul.schema { li { "items: " (schema(document, items, depth + 1, seen)) } }
            }
        }
        @for combinator in ["oneOf", "anyOf", "allOf"] {
            @if let Some(Value::Array(options)) = resolved.get(combinator) {
                @if depth < SCHEMA_DEPTH {
                    ul.schema { @for option in options { li { (schema(document, option, depth + 1, seen)) } } }
                }
            }
        }
        @if let Some(example) = resolved.get("example") {
            pre.code.example { code { (pretty(example)) } }
        }
    };
    if name.is_some() {
        seen.pop();
    }
    markup
}

fn value_text(value: &Value) -> String {
    value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string())
}

fn pretty(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

fn openapi(document: &Value) -> Result<Markup, String> {
    let is_swagger = document.get("swagger").is_some();
    let version = str_at(document, "/openapi").or_else(|| str_at(document, "/swagger"));
    let Some(version) = version else {
        return Err(
            "This does not look like an OpenAPI document: it has neither an `openapi` nor a `swagger` field."
                .into(),
        );
    };
    let Some(paths) = document.get("paths").and_then(Value::as_object) else {
        return Err("The OpenAPI document has no `paths`.".into());
    };
    // Operations grouped by their first tag, in document order within a tag.
    let mut groups: BTreeMap<String, Vec<(String, &str, &Value, &Value)>> = BTreeMap::new();
    for (path, item) in paths {
        for method in METHODS {
            if let Some(operation) = item.get(*method) {
                let tag = operation
                    .get("tags")
                    .and_then(Value::as_array)
                    .and_then(|tags| tags.first())
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    .to_owned();
                groups.entry(tag).or_default().push((path.clone(), method, operation, item));
            }
        }
    }
    let kind = if is_swagger { format!("Swagger {version}") } else { format!("OpenAPI {version}") };
    let schemas = document
        .pointer("/components/schemas")
        .or_else(|| document.get("definitions"))
        .and_then(Value::as_object);
    Ok(html! {
        (info(document, &kind))
        @for (tag, operations) in &groups {
            section.card.wide aria-label={ "Operations tagged " (tag) } {
                h2 { (tag) }
                @for (path, method, operation, item) in operations {
                    (openapi_operation(document, path, method, operation, item))
                }
            }
        }
        @if let Some(schemas) = schemas {
            section.card.wide aria-label="Schemas" {
                h2 { "Schemas" }
                @for (name, value) in schemas {
                    details.operation {
                        summary { code { (name) } }
                        div { (schema(document, value, 0, &mut vec![name.clone()])) }
                    }
                }
            }
        }
    })
}

fn openapi_operation(document: &Value, path: &str, method: &str, operation: &Value, item: &Value) -> Markup {
    let mut parameters: Vec<&Value> = Vec::new();
    for source in [item.get("parameters"), operation.get("parameters")] {
        if let Some(Value::Array(items)) = source {
            parameters.extend(items.iter().map(|parameter| resolve(document, parameter).0));
        }
    }
    let (body_parameters, parameters): (Vec<&Value>, Vec<&Value>) =
        parameters.into_iter().partition(|parameter| str_at(parameter, "/in") == Some("body"));
    let request_body = operation.get("requestBody").map(|body| resolve(document, body).0);
    html! {
        details.operation {
            summary {
                span.method { (method) } " " code { (path) }
                @if let Some(summary) = str_at(operation, "/summary") { " — " (summary) }
                @if operation.get("deprecated").and_then(Value::as_bool) == Some(true) { " " span.badge { "deprecated" } }
            }
            div {
                @if let Some(description) = str_at(operation, "/description") { p { (description) } }
                @if let Some(id) = str_at(operation, "/operationId") { p { "Operation " code { (id) } } }
                @if !parameters.is_empty() {
                    h3 { "Parameters" }
                    table.related {
                        thead { tr { th scope="col" { "Name" } th scope="col" { "In" } th scope="col" { "Type" } th scope="col" { "Required" } th scope="col" { "Description" } } }
                        tbody {
                            @for parameter in &parameters {
                                tr {
                                    td { code { (str_at(parameter, "/name").unwrap_or("")) } }
                                    td { (str_at(parameter, "/in").unwrap_or("")) }
                                    td { (parameter.get("schema").map(|s| schema_type(resolve(document, s).0)).unwrap_or_else(|| schema_type(parameter))) }
                                    td { @if parameter.get("required").and_then(Value::as_bool) == Some(true) { "yes" } @else { "no" } }
                                    td { (str_at(parameter, "/description").unwrap_or("")) }
                                }
                            }
                        }
                    }
                }
                @for parameter in &body_parameters {
                    h3 { "Request body" }
                    @if let Some(body_schema) = parameter.get("schema") { (schema(document, body_schema, 0, &mut Vec::new())) }
                }
                @if let Some(body) = request_body {
                    h3 { "Request body" @if body.get("required").and_then(Value::as_bool) == Some(true) { " " span.badge { "required" } } }
                    (media(document, body))
                }
                @if let Some(Value::Object(responses)) = operation.get("responses") {
                    h3 { "Responses" }
                    ul.responses {
                        @for (code, response) in responses {
                            @let response = resolve(document, response).0;
                            li {
                                strong { (code) } " " (str_at(response, "/description").unwrap_or(""))
                                (media(document, response))
                                @if let Some(response_schema) = response.get("schema") { div { (schema(document, response_schema, 0, &mut Vec::new())) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The `content` of a request body or response: schema and examples per media type.
fn media(document: &Value, holder: &Value) -> Markup {
    html! {
        @if let Some(Value::Object(content)) = holder.get("content") {
            @for (media_type, entry) in content {
                div.media {
                    code { (media_type) } ": "
                    @if let Some(media_schema) = entry.get("schema") { (schema(document, media_schema, 0, &mut Vec::new())) }
                    @if let Some(example) = entry.get("example") { pre.code.example { code { (pretty(example)) } } }
                    @if let Some(Value::Object(examples)) = entry.get("examples") {
                        @for (name, example) in examples {
                            p { "Example " code { (name) } }
                            pre.code.example { code { (pretty(example.get("value").unwrap_or(example))) } }
                        }
                    }
                }
            }
        }
    }
}

fn asyncapi(document: &Value) -> Result<Markup, String> {
    let Some(version) = str_at(document, "/asyncapi") else {
        return Err("This does not look like an AsyncAPI document: it has no `asyncapi` field.".into());
    };
    let channels = document.get("channels").and_then(Value::as_object);
    let v3 = version.starts_with('3');
    let message_markup = |message: &Value| -> Markup {
        let (message, name) = resolve(document, message);
        html! {
            li {
                strong { (str_at(message, "/name").or(str_at(message, "/title")).map(str::to_owned).or(name).unwrap_or_else(|| "message".into())) }
                @if let Some(summary) = str_at(message, "/summary") { " — " (summary) }
                @if let Some(payload) = message.get("payload") { div { "Payload: " (schema(document, payload, 0, &mut Vec::new())) } }
            }
        }
    };
    let messages_of = |holder: &Value| -> Vec<Value> {
        match holder.get("messages").or_else(|| holder.get("message")) {
            Some(Value::Object(map)) if map.contains_key("$ref") || map.contains_key("payload") => {
                vec![Value::Object(map.clone())]
            }
            Some(Value::Object(map)) if map.contains_key("oneOf") => {
                map.get("oneOf").and_then(Value::as_array).cloned().unwrap_or_default()
            }
            Some(Value::Object(map)) => map.values().cloned().collect(),
            Some(Value::Array(items)) => items.clone(),
            _ => Vec::new(),
        }
    };
    Ok(html! {
        (info(document, &format!("AsyncAPI {version}")))
        section.card.wide aria-label="Channels" {
            h2 { "Channels" }
            @if channels.is_none() { p { "No channels." } }
            @for (name, channel) in channels.into_iter().flatten() {
                details.operation open {
                    summary { code { (str_at(channel, "/address").unwrap_or(name)) } @if let Some(description) = str_at(channel, "/description") { " — " (description) } }
                    div {
                        @if !v3 {
                            @for action in ["publish", "subscribe"] {
                                @if let Some(operation) = channel.get(action) {
                                    p { span.method { (action) } @if let Some(summary) = str_at(operation, "/summary") { " " (summary) } }
                                    ul { @for message in messages_of(operation) { (message_markup(&message)) } }
                                }
                            }
                        } @else {
                            ul { @for message in messages_of(channel) { (message_markup(&message)) } }
                        }
                    }
                }
            }
        }
        @if v3 {
            @if let Some(Value::Object(operations)) = document.get("operations") {
                section.card.wide aria-label="Operations" {
                    h2 { "Operations" }
                    ul {
                        @for (name, operation) in operations {
                            li {
                                span.method { (str_at(operation, "/action").unwrap_or("")) } " " code { (name) }
                                @if let Some(channel) = operation.pointer("/channel/$ref").and_then(Value::as_str) { " on " code { (channel.rsplit('/').next().unwrap_or(channel)) } }
                                @if let Some(summary) = str_at(operation, "/summary") { " — " (summary) }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// A token class for highlighting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Plain,
    Keyword,
    Type,
    Str,
    Comment,
}

/// Splits source text into highlighted tokens. `line_comment` starts a comment to the end of
/// the line; `/* */` block comments are recognised when `block_comments`.
fn tokenize<'a>(
    text: &'a str,
    keywords: &[&str],
    line_comment: &str,
    block_comments: bool,
) -> Vec<(Token, &'a str)> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut index = 0;
    let mut plain_start = 0;
    let flush = |tokens: &mut Vec<(Token, &'a str)>, from: usize, to: usize| {
        if to > from {
            tokens.push((Token::Plain, &text[from..to]));
        }
    };
    while index < bytes.len() {
        let rest = &text[index..];
        let (token, length) = if rest.starts_with(line_comment) {
            (Token::Comment, rest.find('\n').unwrap_or(rest.len()))
        } else if block_comments && rest.starts_with("/*") {
            (Token::Comment, rest[2..].find("*/").map_or(rest.len(), |end| end + 4))
        } else if let Some(inner) = rest.strip_prefix("\"\"\"") {
            (Token::Str, inner.find("\"\"\"").map_or(rest.len(), |end| end + 6))
        } else if bytes[index] == b'"' || bytes[index] == b'\'' {
            let quote = bytes[index];
            let mut end = 1;
            while end < rest.len() {
                match rest.as_bytes()[end] {
                    b'\\' => end += 2,
                    b'\n' => break,
                    byte if byte == quote => {
                        end += 1;
                        break;
                    }
                    _ => end += 1,
                }
            }
            (Token::Str, end.min(rest.len()))
        } else if bytes[index].is_ascii_alphabetic() || bytes[index] == b'_' {
            let length = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            let word = &rest[..length];
            let previous = text[..index].chars().next_back();
            if previous.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
                (Token::Plain, length)
            } else if keywords.contains(&word) {
                (Token::Keyword, length)
            } else if word.starts_with(|c: char| c.is_ascii_uppercase()) {
                (Token::Type, length)
            } else {
                (Token::Plain, length)
            }
        } else {
            let length = rest.chars().next().map_or(1, char::len_utf8);
            (Token::Plain, length)
        };
        let end = (index + length).min(text.len());
        if token == Token::Plain {
            index = end;
            continue;
        }
        flush(&mut tokens, plain_start, index);
        tokens.push((token, &text[index..end]));
        index = end;
        plain_start = end;
    }
    flush(&mut tokens, plain_start, text.len());
    tokens
}

fn highlighted(tokens: &[(Token, &str)]) -> Markup {
    html! {
        pre.code.highlighted tabindex="0" {
            code {
                @for (token, text) in tokens {
                    @match token {
                        Token::Plain => (text),
                        Token::Keyword => span.tok-keyword { (text) },
                        Token::Type => span.tok-type { (text) },
                        Token::Str => span.tok-string { (text) },
                        Token::Comment => span.tok-comment { (text) },
                    }
                }
            }
        }
    }
}

/// The non-comment, non-string text, for extracting declarations.
fn code_only(tokens: &[(Token, &str)]) -> String {
    tokens
        .iter()
        .map(|(token, text)| if matches!(token, Token::Comment | Token::Str) { " " } else { *text })
        .collect()
}

/// Top-level `keyword Name ... { body }` blocks of SDL or proto text.
fn blocks<'a>(code: &'a str, keywords: &[&str]) -> Vec<(String, String, &'a str)> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(open) = rest.find('{') {
        let head = &rest[..open];
        let Some(close) = matching_brace(&rest[open..]) else { break };
        let body = &rest[open + 1..open + close];
        let words: Vec<&str> = head.split_whitespace().collect();
        if let Some(position) = words.iter().rposition(|word| keywords.contains(word)) {
            if let Some(name) = words.get(position + 1) {
                found.push((words[position].to_owned(), name.trim_end_matches(['(', ':']).to_owned(), body));
            }
        }
        rest = &rest[open + close + 1..];
    }
    found
}

fn matching_brace(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (index, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(index);
                }
            }
            _ => {}
        }
    }
    None
}

const GRAPHQL_KEYWORDS: &[&str] = &[
    "type",
    "query",
    "mutation",
    "subscription",
    "schema",
    "input",
    "enum",
    "interface",
    "union",
    "scalar",
    "directive",
    "extend",
    "implements",
    "fragment",
    "on",
    "repeatable",
];

fn graphql(text: &str) -> Markup {
    let tokens = tokenize(text, GRAPHQL_KEYWORDS, "#", false);
    let code = code_only(&tokens);
    let declarations = blocks(&code, &["type", "input", "enum", "interface"]);
    let fields = |body: &str| -> Vec<String> {
        let mut depth = 0i32;
        let mut current = String::new();
        let mut items = Vec::new();
        for line in body.lines() {
            let trimmed = line.trim();
            if trimmed.is_empty() {
                continue;
            }
            if depth == 0 && !current.is_empty() && !trimmed.starts_with(')') {
                items.push(std::mem::take(&mut current));
            }
            depth += trimmed.matches('(').count() as i32 - trimmed.matches(')').count() as i32;
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(trimmed);
        }
        if !current.is_empty() {
            items.push(current);
        }
        items
    };
    let roots: Vec<&(String, String, &str)> = declarations
        .iter()
        .filter(|(keyword, name, _)| {
            keyword == "type" && matches!(name.as_str(), "Query" | "Mutation" | "Subscription")
        })
        .collect();
    let types: Vec<&(String, String, &str)> = declarations
        .iter()
        .filter(|(_, name, _)| !matches!(name.as_str(), "Query" | "Mutation" | "Subscription"))
        .collect();
    html! {
        section.card.wide aria-label="GraphQL schema" {
            h2 { "GraphQL schema" }
            @if roots.is_empty() && types.is_empty() {
                p.error-message { "No type definitions were found in this GraphQL schema; the text is shown below." }
            }
            @for (_, name, body) in &roots {
                h3 { (name) }
                ul.schema { @for field in fields(body) { li { code { (field) } } } }
            }
            @if !types.is_empty() {
                h3 { "Types" }
                ul.inline { @for (keyword, name, _) in &types { li { span.tok-keyword { (keyword) } " " code { (name) } } } }
            }
        }
        section.card.wide aria-label="Schema source" {
            h2 { "Source" }
            (highlighted(&tokens))
        }
    }
}

const PROTO_KEYWORDS: &[&str] = &[
    "syntax", "package", "import", "option", "service", "rpc", "returns", "message", "enum", "oneof",
    "repeated", "optional", "required", "map", "stream", "reserved", "extend", "public", "weak", "edition",
];

fn grpc(text: &str) -> Markup {
    let tokens = tokenize(text, PROTO_KEYWORDS, "//", true);
    let code = code_only(&tokens);
    let declarations = blocks(&code, &["service", "message", "enum"]);
    let rpcs = |body: &str| -> Vec<String> {
        body.split(';')
            .flat_map(|statement| statement.split('}'))
            .map(|statement| statement.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|statement| statement.starts_with("rpc "))
            .map(|statement| statement.trim_start_matches("rpc ").trim_end_matches('{').trim().to_owned())
            .collect()
    };
    let fields = |body: &str| -> Vec<String> {
        body.split(';')
            .map(|statement| statement.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|statement| {
                !statement.is_empty()
                    && !statement.starts_with("option")
                    && !statement.starts_with("reserved")
            })
            .map(|statement| statement.trim_start_matches('}').trim().to_owned())
            .filter(|statement| !statement.is_empty())
            .collect()
    };
    let services: Vec<&(String, String, &str)> =
        declarations.iter().filter(|(keyword, _, _)| keyword == "service").collect();
    let messages: Vec<&(String, String, &str)> =
        declarations.iter().filter(|(keyword, _, _)| keyword != "service").collect();
    html! {
        section.card.wide aria-label="gRPC services" {
            h2 { "Services" }
            @if services.is_empty() { p.error-message { "No service definitions were found in this proto file; the text is shown below." } }
            @for (_, name, body) in &services {
                h3 { (name) }
                ul.schema { @for rpc in rpcs(body) { li { code { (rpc) } } } }
            }
            @if !messages.is_empty() {
                h3 { "Messages and enums" }
                @for (keyword, name, body) in &messages {
                    details.operation {
                        summary { span.tok-keyword { (keyword) } " " code { (name) } }
                        div { ul.schema { @for field in fields(body) { li { code { (field) } } } } }
                    }
                }
            }
        }
        section.card.wide aria-label="Proto source" {
            h2 { "Source" }
            (highlighted(&tokens))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn api(kind: &str, definition: &str) -> String {
        render(&json!({ "kind": "API", "spec": { "type": kind, "definition": definition } })).into_string()
    }

    #[test]
    fn openapi_operations_are_grouped_by_tag_with_parameters_and_schemas() {
        let html = api(
            "openapi",
            "openapi: 3.0.0\ninfo: { title: Pets, version: '1' }\npaths:\n  /pets/{id}:\n    get:\n      tags: [pets]\n      summary: Find a pet\n      parameters:\n        - { name: id, in: path, required: true, schema: { type: string } }\n      responses:\n        '200':\n          description: The pet\n          content:\n            application/json:\n              schema: { $ref: '#/components/schemas/Pet' }\ncomponents:\n  schemas:\n    Pet:\n      type: object\n      required: [name]\n      properties:\n        name: { type: string }\n        friend: { $ref: '#/components/schemas/Pet' }\n",
        );
        assert!(html.contains("<h2>pets</h2>"), "{html}");
        assert!(html.contains("/pets/{id}"));
        assert!(html.contains("Find a pet"));
        assert!(html.contains("<code>id</code>"));
        assert!(html.contains("Pet (see above)"), "a $ref cycle is cut: {html}");
    }

    #[test]
    fn swagger_two_reads_body_parameters_and_definitions() {
        let html = api(
            "openapi",
            r##"{"swagger":"2.0","info":{"title":"Old","version":"1"},"host":"api.example.com","basePath":"/v1","paths":{"/x":{"post":{"parameters":[{"name":"body","in":"body","schema":{"$ref":"#/definitions/X"}}],"responses":{"201":{"description":"made"}}}}},"definitions":{"X":{"type":"object","properties":{"a":{"type":"integer"}}}}}"##,
        );
        assert!(html.contains("Swagger 2.0"));
        assert!(html.contains("api.example.com/v1"));
        assert!(html.contains("Request body"));
        assert!(html.contains("<code>a</code>"));
    }

    #[test]
    fn malformed_definitions_show_an_error_and_the_raw_text_escaped() {
        let html = api("openapi", "openapi: [unclosed\n<script>alert(1)</script>");
        assert!(html.contains("not valid YAML"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>"));
        let html = api("openapi", "just: a mapping");
        assert!(html.contains("does not look like an OpenAPI document"));
    }

    #[test]
    fn asyncapi_two_and_three_list_channels_and_messages() {
        let v2 = api("asyncapi", "asyncapi: 2.6.0\ninfo: { title: Events, version: '1' }\nchannels:\n  user/signedup:\n    subscribe:\n      summary: A user signed up\n      message:\n        name: UserSignedUp\n        payload: { type: object, properties: { email: { type: string } } }\n");
        assert!(
            v2.contains("user/signedup") && v2.contains("UserSignedUp") && v2.contains("<code>email</code>"),
            "{v2}"
        );
        let v3 = api("asyncapi", "asyncapi: 3.0.0\ninfo: { title: Events, version: '1' }\nchannels:\n  signup:\n    address: user.signedup\n    messages:\n      UserSignedUp: { payload: { type: string } }\noperations:\n  onSignup:\n    action: receive\n    channel: { $ref: '#/channels/signup' }\n");
        assert!(v3.contains("user.signedup") && v3.contains("onSignup") && v3.contains("receive"), "{v3}");
    }

    #[test]
    fn graphql_lists_root_fields_and_types_with_highlighting() {
        let html = api("graphql", "# comment\ntype Query {\n  pet(id: ID!): Pet\n  pets: [Pet!]!\n}\ntype Mutation { addPet(name: String!): Pet }\ntype Pet { id: ID! name: String \"\"\"doc <b>\"\"\" }\n");
        assert!(html.contains("<h3>Query</h3>"), "{html}");
        assert!(html.contains("pet(id: ID!): Pet"));
        assert!(html.contains("<h3>Mutation</h3>"));
        assert!(html.contains(r#"<span class="tok-keyword">type</span>"#));
        assert!(html.contains(r#"<span class="tok-comment"># comment</span>"#));
        assert!(html.contains("&lt;b&gt;"));
    }

    #[test]
    fn grpc_lists_services_methods_and_messages() {
        let html = api("grpc", "syntax = \"proto3\";\n// Pets\nservice PetStore {\n  rpc GetPet (GetPetRequest) returns (Pet);\n  rpc Watch (stream Req) returns (stream Pet) {}\n}\nmessage Pet { string name = 1; repeated string tags = 2; }\n");
        assert!(html.contains("<h3>PetStore</h3>"), "{html}");
        assert!(html.contains("GetPet (GetPetRequest) returns (Pet)"));
        assert!(html.contains("Watch (stream Req) returns (stream Pet)"), "{html}");
        assert!(html.contains("string name = 1"));
        assert!(html.contains(r#"<span class="tok-keyword">service</span>"#));
    }
}
