//! Building final entities from processed entities, relations and errors (reference §6.11).

use serde_json::{json, Value};

use crate::processing::{set_annotation, sha1_hex, stable_json};

/// The replacement for a view or edit URL that would run script when clicked.
const REJECTED_URL: &str = "https://backstage.io/annotation-rejected-for-security-reasons";

/// A final entity ready to store and index.
#[derive(Debug, Clone)]
pub struct Stitched {
    pub entity: Value,
    pub text: String,
    pub hash: String,
}

/// Builds the final entity. `relations` are `(type, target)` sorted; `errors` is the stored JSON
/// array of serialized errors, if the last pass failed.
pub fn stitch(
    entity_id: &str,
    processed: &str,
    errors: Option<&str>,
    has_parents: bool,
    relations: &[(String, String)],
) -> Option<Stitched> {
    let mut entity: Value = serde_json::from_str(processed).ok()?;
    let metadata = entity.get_mut("metadata")?.as_object_mut()?;
    metadata.insert("uid".into(), Value::String(entity_id.to_owned()));
    let source_etag = metadata.remove("etag");
    if !has_parents {
        set_annotation(&mut entity, "backstage.io/orphan", "true");
    }
    sanitize_urls(&mut entity);

    let mut items: Vec<Value> =
        relations.iter().map(|(kind, target)| json!({ "type": kind, "targetRef": target })).collect();
    items.dedup();
    let root = entity.as_object_mut()?;
    root.insert("relations".into(), Value::Array(items));
    root.remove("status");
    if let Some(errors) = errors.and_then(|text| serde_json::from_str::<Vec<Value>>(text).ok()) {
        if !errors.is_empty() {
            let status_items: Vec<Value> = errors
                .into_iter()
                .map(|error| {
                    let name = error.get("name").and_then(Value::as_str).unwrap_or("Error").to_owned();
                    let message = error.get("message").and_then(Value::as_str).unwrap_or("").to_owned();
                    json!({
                        "type": "backstage.io/catalog-processing",
                        "level": "error",
                        "message": format!("{name}: {message}"),
                        "error": error,
                    })
                })
                .collect();
            root.insert("status".into(), json!({ "items": status_items }));
        }
    }

    let hash = sha1_hex(&stable_json(&entity));
    let etag = match source_etag {
        Some(Value::String(etag)) => etag,
        _ => hash.clone(),
    };
    if let Some(metadata) = entity.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert("etag".into(), Value::String(etag));
    }
    let text = serde_json::to_string(&entity).ok()?;
    Some(Stitched { entity, text, hash })
}

/// §5.1: view and edit URLs with a `javascript:` scheme are replaced.
fn sanitize_urls(entity: &mut Value) {
    let Some(annotations) = entity.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) else {
        return;
    };
    for key in ["backstage.io/view-url", "backstage.io/edit-url"] {
        if let Some(Value::String(url)) = annotations.get(key) {
            if is_script_url(url) {
                annotations.insert(key.to_owned(), Value::String(REJECTED_URL.to_owned()));
            }
        }
    }
}

/// True for `javascript:` URLs, ignoring leading control characters and spaces and embedded
/// tabs and newlines, as browsers do when they parse a link.
pub fn is_script_url(url: &str) -> bool {
    let cleaned: String = url
        .trim_start_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
        .take(11)
        .collect();
    cleaned.to_ascii_lowercase().starts_with("javascript:")
}
