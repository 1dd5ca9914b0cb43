//! The filters Backstage templates expect, beyond (or instead of) minijinja's builtins.
//!
//! Three groups: Backstage's own (`parseRepoUrl`, `parseEntityRef`, `pick`, `projectSlug`),
//! nunjucks filters that minijinja lacks or spells differently (`dump`, `truncate`, `wordcount`,
//! ...), and the private helpers the source rewrites call (`__js_length`, `__js_entries`).
//! Where nunjucks and Jinja disagree, nunjucks wins: the templates were written against it.

use std::sync::Arc;

use minijinja::value::{Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};
use portico_catalog::entity_ref::{EntityRef, RefDefaults};

use crate::render::json::{float_to_json, number_text, to_json, to_text};
use crate::render::repo_url::parse_repo_url;
use crate::render::rewrite::{ENTRIES_FILTER, LENGTH_FILTER};
use crate::render::Integration;

/// `JSON.stringify` pads with at most ten characters.
const MAX_JSON_INDENT: usize = 10;

/// Registers every filter on `env`.
pub(super) fn register(env: &mut Environment<'static>, integrations: Arc<[Integration]>) {
    register_backstage(env, integrations);
    env.add_filter("dump", dump);
    env.add_filter("jsonify", dump);
    env.add_filter("length", length);
    env.add_filter("count", length);
    env.add_filter("string", string);
    env.add_filter("int", int);
    env.add_filter("float", float);
    env.add_filter("list", list);
    env.add_filter("replace", replace);
    env.add_filter("truncate", truncate);
    env.add_filter("urlencode", urlencode);
    env.add_filter("wordcount", wordcount);
    env.add_filter("nl2br", nl2br);
    env.add_filter("striptags", striptags);
    env.add_filter("center", center);
    env.add_filter("round", round);
    env.add_filter("sum", sum);
    env.add_filter(LENGTH_FILTER, js_length);
    env.add_filter(ENTRIES_FILTER, entries);
}

fn register_backstage(env: &mut Environment<'static>, integrations: Arc<[Integration]>) {
    let for_slug = Arc::clone(&integrations);
    env.add_filter("parseRepoUrl", move |value: &Value| {
        let spec = parse_repo_url(&repo_url_text(value)?, &integrations).map_err(invalid)?;
        Ok::<_, Error>(Value::from_serialize(spec.to_json()))
    });
    env.add_filter("projectSlug", move |value: &Value| {
        let spec = parse_repo_url(&repo_url_text(value)?, &for_slug).map_err(invalid)?;
        let owner = spec.owner.unwrap_or_default();
        let repo = spec.repo.unwrap_or_default();
        Ok::<_, Error>(Value::from(format!("{owner}/{repo}")))
    });
    env.add_filter("parseEntityRef", parse_entity_ref);
    env.add_filter("pick", pick);
}

/// An `InvalidOperation` error carrying `message`.
pub(super) fn invalid(message: impl ToString) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.to_string())
}

fn repo_url_text(value: &Value) -> Result<String, Error> {
    match value.as_str() {
        Some(text) => Ok(text.to_owned()),
        None => Err(invalid(format!("parseRepoUrl expects a string, got {}", value.kind()))),
    }
}

/// `ref | parseEntityRef` or `ref | parseEntityRef({defaultKind, defaultNamespace})`.
fn parse_entity_ref(value: &Value, options: Option<Value>) -> Result<Value, Error> {
    let json = to_json(value).map_err(|err| err.into_engine_error())?;
    let json = json.unwrap_or(serde_json::Value::Null);
    let options = options.unwrap_or_default();
    let default_kind = string_attr(&options, "defaultKind");
    let default_namespace = string_attr(&options, "defaultNamespace");
    let defaults = RefDefaults { kind: default_kind.as_deref(), namespace: default_namespace.as_deref() };
    let entity_ref = EntityRef::from_value(&json, defaults).map_err(invalid)?;
    Ok(Value::from_serialize(serde_json::json!({
        "kind": entity_ref.kind,
        "namespace": entity_ref.namespace,
        "name": entity_ref.name,
    })))
}

fn string_attr(value: &Value, name: &str) -> Option<String> {
    let attr = value.get_attr(name).ok()?;
    attr.as_str().filter(|text| !text.is_empty()).map(str::to_owned)
}

/// lodash `get`: `obj | pick('a.b[0].c')`, undefined (or `default`) when the path is missing.
fn pick(value: &Value, path: &Value, default: Option<Value>) -> Value {
    let found = match path.as_str() {
        // A key that itself contains dots or brackets wins over the path reading, as in lodash.
        Some(text) => match direct_key(value, text) {
            Some(found) => found,
            None => walk_path(value, &parse_property_path(text)),
        },
        None => match path.try_iter() {
            Ok(keys) => {
                walk_path(value, &keys.map(|key| to_text(&key).unwrap_or_default()).collect::<Vec<_>>())
            }
            Err(_) => Value::UNDEFINED,
        },
    };
    match (found.is_undefined(), default) {
        (true, Some(default)) => default,
        _ => found,
    }
}

fn direct_key(value: &Value, key: &str) -> Option<Value> {
    if value.kind() != ValueKind::Map {
        return None;
    }
    let found = value.get_item(&Value::from(key)).ok()?;
    (!found.is_undefined()).then_some(found)
}

fn walk_path(value: &Value, segments: &[String]) -> Value {
    let mut current = value.clone();
    for segment in segments {
        current = match current.kind() {
            ValueKind::Map => current.get_item(&Value::from(segment.as_str())),
            ValueKind::Seq => match segment.parse::<usize>() {
                Ok(index) => current.get_item_by_index(index),
                Err(_) => return Value::UNDEFINED,
            },
            _ => return Value::UNDEFINED,
        }
        .unwrap_or(Value::UNDEFINED);
    }
    current
}

/// Splits `a.b[0]["c.d"]` into `a`, `b`, `0`, `c.d` as lodash's `toPath` does.
fn parse_property_path(path: &str) -> Vec<String> {
    let mut segments = Vec::new();
    let mut current = String::new();
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if !current.is_empty() {
                    segments.push(std::mem::take(&mut current));
                }
            }
            '[' => {
                if !current.is_empty() {
                    segments.push(std::mem::take(&mut current));
                }
                let quote = chars.next_if(|next| *next == '"' || *next == '\'');
                let mut key = String::new();
                while let Some(next) = chars.next() {
                    match (next, quote) {
                        ('\\', Some(_)) => key.extend(chars.next()),
                        (next, Some(quote)) if next == quote => {}
                        (']', _) => break,
                        (next, _) => key.push(next),
                    }
                }
                segments.push(key);
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        segments.push(current);
    }
    segments
}

/// nunjucks `dump`: `JSON.stringify(value, null, indent)`; undefined stays undefined.
fn dump(value: &Value, indent: Option<Value>) -> Result<Value, Error> {
    let Some(json) = to_json(value).map_err(|err| err.into_engine_error())? else {
        return Ok(Value::UNDEFINED);
    };
    let indent = json_indent(indent.as_ref());
    if indent.is_empty() {
        return Ok(Value::from(json.to_string()));
    }
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(&json, &mut serializer).map_err(invalid)?;
    String::from_utf8(out).map(Value::from).map_err(invalid)
}

/// `JSON.stringify`'s `space` argument: a count of spaces or a string, both capped at ten.
fn json_indent(indent: Option<&Value>) -> String {
    let Some(indent) = indent else {
        return String::new();
    };
    if let Some(text) = indent.as_str() {
        return text.chars().take(MAX_JSON_INDENT).collect();
    }
    let width = f64::try_from(indent.clone()).unwrap_or(0.0).clamp(0.0, MAX_JSON_INDENT as f64);
    " ".repeat(width as usize)
}

/// nunjucks `length`: 0 for undefined and for values without a length.
fn length(value: &Value) -> usize {
    match value.kind() {
        ValueKind::String => value.as_str().map_or(0, |text| text.chars().count()),
        _ => value.len().unwrap_or(0),
    }
}

/// JavaScript's `.length`: an object's own `length` property first (this is how `loop.length`
/// keeps working), then the size of strings, arrays and objects; undefined otherwise.
fn js_length(value: &Value) -> Value {
    match value.kind() {
        ValueKind::String => Value::from(length(value)),
        ValueKind::Seq | ValueKind::Iterable => value.len().map_or(Value::UNDEFINED, Value::from),
        ValueKind::Map | ValueKind::Plain => {
            let own = value.get_attr("length").unwrap_or(Value::UNDEFINED);
            if !own.is_undefined() {
                return own;
            }
            value.len().map_or(Value::UNDEFINED, Value::from)
        }
        _ => Value::UNDEFINED,
    }
}

/// Objects become `[key, value]` pairs; everything else passes through untouched.
fn entries(value: &Value) -> Result<Value, Error> {
    if value.kind() != ValueKind::Map {
        return Ok(value.clone());
    }
    let mut pairs = Vec::new();
    for key in value.try_iter()? {
        let item = value.get_item(&key)?;
        pairs.push(Value::from(vec![key, item]));
    }
    Ok(Value::from(pairs))
}

/// JavaScript's `String(value)`.
fn string(value: &Value) -> Result<Value, Error> {
    if value.kind() == ValueKind::String {
        return Ok(value.clone());
    }
    to_text(value).map(Value::from).map_err(|err| err.into_engine_error())
}

/// nunjucks `int(value, default=0)`: JavaScript's `parseInt`, `default` when that gives NaN.
fn int(value: &Value, default: Option<Value>) -> Value {
    match parse_int(value) {
        Some(int) => Value::from(int),
        None => default.unwrap_or(Value::from(0)),
    }
}

fn parse_int(value: &Value) -> Option<i64> {
    match value.kind() {
        ValueKind::Number if value.is_integer() => i64::try_from(value.clone()).ok(),
        ValueKind::Number => {
            let float = f64::try_from(value.clone()).ok()?.trunc();
            (float.is_finite() && float.abs() < i64::MAX as f64).then_some(float as i64)
        }
        ValueKind::String => parse_leading_int(value.as_str()?),
        _ => None,
    }
}

/// The integer at the start of `text` (after whitespace), ignoring whatever follows it.
fn parse_leading_int(text: &str) -> Option<i64> {
    let text = text.trim_start();
    let digits_start = usize::from(text.starts_with(['-', '+']));
    let digits_len = text[digits_start..].bytes().take_while(u8::is_ascii_digit).count();
    text[..digits_start + digits_len].parse().ok()
}

/// nunjucks `float(value, default=0.0)`: JavaScript's `parseFloat`, `default` for NaN.
fn float(value: &Value, default: Option<Value>) -> Value {
    let parsed = match value.kind() {
        ValueKind::Number => f64::try_from(value.clone()).ok(),
        ValueKind::String => value.as_str().and_then(parse_leading_float),
        _ => None,
    };
    match parsed {
        Some(float) => Value::from(float),
        None => default.unwrap_or(Value::from(0.0)),
    }
}

/// The longest prefix of `text` (after whitespace) that reads as a number.
fn parse_leading_float(text: &str) -> Option<f64> {
    let text = text.trim_start();
    let candidate_len = text
        .bytes()
        .take_while(|byte| byte.is_ascii_digit() || matches!(byte, b'+' | b'-' | b'.' | b'e' | b'E'))
        .count();
    (1..=candidate_len).rev().find_map(|len| text[..len].parse::<f64>().ok())
}

/// nunjucks `list`: strings split into characters, objects into `{key, value}` entries.
fn list(value: &Value) -> Result<Value, Error> {
    match value.kind() {
        ValueKind::String => {
            let text = value.as_str().unwrap_or_default();
            Ok(Value::from(text.chars().map(|c| Value::from(c.to_string())).collect::<Vec<_>>()))
        }
        ValueKind::Seq | ValueKind::Iterable => Ok(Value::from(value.try_iter()?.collect::<Vec<_>>())),
        ValueKind::Map => {
            let mut items = Vec::new();
            for key in value.try_iter()? {
                let item = value.get_item(&key)?;
                items.push(Value::from_iter([("key", key), ("value", item)]));
            }
            Ok(Value::from(items))
        }
        kind => Err(invalid(format!("list filter: {kind} is not iterable"))),
    }
}

/// nunjucks `replace(old, new, maxCount)`: every occurrence unless `max_count` is given; an
/// empty `old` inserts `new` between all characters. Non-strings pass through.
fn replace(value: &Value, old: &Value, new: &Value, max_count: Option<i64>) -> Result<Value, Error> {
    let text = match value.kind() {
        ValueKind::String => value.as_str().unwrap_or_default().to_owned(),
        ValueKind::Number => number_text(value),
        _ => return Ok(value.clone()),
    };
    let old = to_text(old).map_err(|err| err.into_engine_error())?;
    let new = to_text(new).map_err(|err| err.into_engine_error())?;
    if old.is_empty() {
        let pieces: Vec<String> = text.chars().map(String::from).collect();
        return Ok(Value::from(format!("{new}{}{new}", pieces.join(&new))));
    }
    let replaced = match max_count {
        Some(count) => text.replacen(&old, &new, usize::try_from(count).unwrap_or(0)),
        None => text.replace(&old, &new),
    };
    Ok(Value::from(replaced))
}

/// nunjucks `truncate(length=255, killwords=false, end='...')`: cuts at the last space before
/// `length` unless `killwords`.
fn truncate(
    value: &Value,
    length: Option<usize>,
    killwords: Option<bool>,
    end: Option<String>,
) -> Result<Value, Error> {
    let text = to_text(value).map_err(|err| err.into_engine_error())?;
    let length = length.unwrap_or(255);
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= length {
        return Ok(Value::from(text));
    }
    let end = end.unwrap_or_else(|| "...".to_owned());
    let cut = if killwords.unwrap_or(false) {
        length
    } else {
        chars[..=length.min(chars.len() - 1)].iter().rposition(|c| *c == ' ').unwrap_or(length)
    };
    Ok(Value::from(format!("{}{end}", chars[..cut].iter().collect::<String>())))
}

/// nunjucks `urlencode`: `encodeURIComponent` for strings; objects and `[key, value]` pairs
/// become a query string.
fn urlencode(value: &Value) -> Result<Value, Error> {
    let pairs: Vec<(Value, Value)> = match value.kind() {
        ValueKind::Map => {
            let mut pairs = Vec::new();
            for key in value.try_iter()? {
                let item = value.get_item(&key)?;
                pairs.push((key, item));
            }
            pairs
        }
        ValueKind::Seq => value
            .try_iter()?
            .map(|pair| {
                (pair.get_item_by_index(0).unwrap_or_default(), pair.get_item_by_index(1).unwrap_or_default())
            })
            .collect(),
        _ => return text_of(value).map(|text| Value::from(encode_uri_component(&text))),
    };
    let mut parts = Vec::new();
    for (key, item) in pairs {
        parts.push(format!(
            "{}={}",
            encode_uri_component(&text_of(&key)?),
            encode_uri_component(&text_of(&item)?)
        ));
    }
    Ok(Value::from(parts.join("&")))
}

fn text_of(value: &Value) -> Result<String, Error> {
    to_text(value).map_err(|err| err.into_engine_error())
}

/// JavaScript's `encodeURIComponent`: everything except `A-Z a-z 0-9 - _ . ! ~ * ' ( )`.
pub(super) fn encode_uri_component(text: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'!')
        .remove(b'~')
        .remove(b'*')
        .remove(b'\'')
        .remove(b'(')
        .remove(b')');
    percent_encoding::utf8_percent_encode(text, KEEP).to_string()
}

/// nunjucks `wordcount`: runs of `[A-Za-z0-9_]`; `null` (renders empty) when there are none.
fn wordcount(value: &Value) -> Result<Value, Error> {
    let text = text_of(value)?;
    let count = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
        .count();
    Ok(if count == 0 { Value::from(()) } else { Value::from(count) })
}

/// nunjucks `nl2br`: each line break becomes `<br />` followed by the break.
fn nl2br(value: &Value) -> Result<Value, Error> {
    let text = text_of(value)?;
    Ok(Value::from(text.replace("\r\n", "\n").replace('\n', "<br />\n")))
}

/// nunjucks `striptags(preserve_linebreaks=false)`: tags and comments removed, whitespace
/// collapsed to single spaces (or, preserving line breaks, within each line).
fn striptags(value: &Value, preserve_linebreaks: Option<bool>) -> Result<Value, Error> {
    let text = remove_tags(&text_of(value)?);
    if !preserve_linebreaks.unwrap_or(false) {
        return Ok(Value::from(text.split_whitespace().collect::<Vec<_>>().join(" ")));
    }
    let lines: Vec<String> = text
        .replace("\r\n", "\n")
        .split('\n')
        .map(|line| line.split(' ').filter(|word| !word.is_empty()).collect::<Vec<_>>().join(" "))
        .collect();
    let mut joined = lines.join("\n");
    while joined.contains("\n\n\n") {
        joined = joined.replace("\n\n\n", "\n\n");
    }
    Ok(Value::from(joined))
}

/// Removes `<tag ...>`, `</tag>` and `<!-- ... -->`; a lone `<` that opens nothing stays.
fn remove_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('<') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let skip = if let Some(comment) = tail.strip_prefix("<!--") {
            comment.find("-->").map(|end| 4 + end + 3)
        } else {
            let name = tail[1..].strip_prefix('/').unwrap_or(&tail[1..]);
            if name.starts_with(|c: char| c.is_ascii_alphabetic()) {
                tail.find('>').map(|end| end + 1)
            } else {
                None
            }
        };
        match skip {
            Some(skip) => rest = &tail[skip..],
            None => {
                out.push('<');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// nunjucks `center(width=80)`: pads with spaces, the extra one on the right.
fn center(value: &Value, width: Option<usize>) -> Result<Value, Error> {
    let text = text_of(value)?;
    let width = width.unwrap_or(80);
    let len = text.chars().count();
    if len >= width {
        return Ok(Value::from(text));
    }
    let spaces = width - len;
    let left = spaces / 2;
    Ok(Value::from(format!("{}{text}{}", " ".repeat(left), " ".repeat(spaces - left))))
}

/// nunjucks `round(precision=0, method='common'|'ceil'|'floor')`.
fn round(value: &Value, precision: Option<i32>, method: Option<String>) -> Result<Value, Error> {
    let number = f64::try_from(value.clone())
        .map_err(|_| invalid(format!("round expects a number, got {}", value.kind())))?;
    let factor = 10f64.powi(precision.unwrap_or(0));
    let scaled = number * factor;
    let rounded = match method.as_deref() {
        Some("ceil") => scaled.ceil(),
        Some("floor") => scaled.floor(),
        // JavaScript's Math.round: halves go up, also for negative numbers.
        _ => (scaled + 0.5).floor(),
    };
    Ok(Value::from(rounded / factor))
}

/// nunjucks `sum(attribute=None, start=0)`.
fn sum(value: &Value, attribute: Option<String>, start: Option<Value>) -> Result<Value, Error> {
    let mut total = start.as_ref().map_or(Ok(0.0), number_of)?;
    for item in value.try_iter()? {
        let item = match &attribute {
            Some(path) => walk_path(&item, &parse_property_path(path)),
            None => item,
        };
        total += number_of(&item)?;
    }
    Ok(Value::from_serialize(float_to_json(total)))
}

fn number_of(value: &Value) -> Result<f64, Error> {
    match value.kind() {
        ValueKind::Number => f64::try_from(value.clone()),
        kind => Err(invalid(format!("sum can only add numbers, got {kind}"))),
    }
}
