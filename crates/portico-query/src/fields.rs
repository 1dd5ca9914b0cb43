//! Field selection (reference §7.4).
//!
//! Selection resolves each dotted field against the entity itself, so keys containing dots
//! (annotation keys) can be reached; the resolved key paths form a small tree that is then
//! projected onto the entity, keeping the entity's own key order.
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldsError {
    pub message: String,
}

/// Parses repeated comma-separated `fields` parameters (or body arrays, one field per item).
///
/// Fields are trimmed; blanks and repeats are dropped, first occurrence order kept.
pub fn parse_fields(params: &[String]) -> Result<Vec<String>, FieldsError> {
    let mut fields: Vec<String> = Vec::new();
    for field in
        params.iter().flat_map(|param| param.split(',')).map(str::trim).filter(|field| !field.is_empty())
    {
        if field.contains('[') {
            return Err(FieldsError {
                message: format!("Invalid field \"{field}\", array type fields are not supported"),
            });
        }
        if !fields.iter().any(|known| known == field) {
            fields.push(field.to_owned());
        }
    }
    Ok(fields)
}

/// Keeps only the selected subtrees of `entity`, re-nested. An empty selection keeps everything.
///
/// A segment that is not a key of the current object is joined to the next segment with a
/// dot and tried again, so `metadata.annotations.backstage.io/orphan` reaches the
/// `backstage.io/orphan` annotation. Paths that are missing, or that would continue inside an
/// array or a scalar, select nothing.
pub fn select_fields(entity: &Value, fields: &[String]) -> Value {
    if fields.is_empty() {
        return entity.clone();
    }
    let mut selection = Selection::Some(Vec::new());
    for field in fields {
        if let Some(path) = resolve(entity, field) {
            selection.insert(&path);
        }
    }
    match entity {
        Value::Object(_) => selection.project(entity),
        _ => Value::Object(Map::new()),
    }
}

/// Which parts of a value are selected.
#[derive(Debug)]
enum Selection<'a> {
    /// The whole value.
    Whole,
    /// Only these keys of an object, each with its own selection.
    Some(Vec<(&'a str, Selection<'a>)>),
}

impl<'a> Selection<'a> {
    fn insert(&mut self, path: &[&'a str]) {
        let Selection::Some(children) = self else {
            return;
        };
        let Some((first, rest)) = path.split_first() else {
            *self = Selection::Whole;
            return;
        };
        let position = match children.iter().position(|(key, _)| key == first) {
            Some(position) => position,
            None => {
                children.push((first, Selection::Some(Vec::new())));
                children.len() - 1
            }
        };
        children[position].1.insert(rest);
    }

    fn project(&self, value: &Value) -> Value {
        match (self, value) {
            (Selection::Whole, _) => value.clone(),
            (Selection::Some(children), Value::Object(map)) => Value::Object(
                map.iter()
                    .filter_map(|(key, child)| {
                        let (_, selection) = children.iter().find(|(wanted, _)| wanted == key)?;
                        Some((key.clone(), selection.project(child)))
                    })
                    .collect(),
            ),
            // `resolve` only descends through objects, so this is not reached.
            (Selection::Some(_), _) => Value::Object(Map::new()),
        }
    }
}

/// The actual keys `field` names in `entity`, or `None` when it selects nothing.
fn resolve<'a>(entity: &'a Value, field: &str) -> Option<Vec<&'a str>> {
    let segments: Vec<&str> = field.split('.').collect();
    let mut path = Vec::new();
    let mut current = entity;
    let mut start = 0;
    while start < segments.len() {
        let Value::Object(map) = current else {
            return None;
        };
        let mut end = start + 1;
        let (key, child) = loop {
            let candidate = segments[start..end].join(".");
            if let Some(found) = map.get_key_value(candidate.as_str()) {
                break found;
            }
            if end == segments.len() {
                return None;
            }
            end += 1;
        };
        path.push(key.as_str());
        current = child;
        start = end;
    }
    Some(path)
}

#[cfg(test)]
mod tests;
