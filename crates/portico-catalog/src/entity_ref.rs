//! Entity references (reference §3).
//!
//! A reference is written `[<kind>:][<namespace>/]<name>` with no escaping, so the split
//! rules below are the whole grammar: the first `:` and the first `/` decide everything, and
//! the name is "the rest" (it may itself contain `:` or `/`).
use serde_json::Value;

/// A parsed entity reference. Parts keep the author's case; `canonical()` lower-cases.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntityRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// Defaults applied while parsing a reference.
#[derive(Debug, Clone, Copy, Default)]
pub struct RefDefaults<'a> {
    pub kind: Option<&'a str>,
    /// When `None`, a missing namespace becomes `default`.
    pub namespace: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RefError {
    pub message: String,
}

/// The namespace every reference and entity falls back to (reference §1).
pub const DEFAULT_NAMESPACE: &str = "default";

impl EntityRef {
    /// Parses `[<kind>:][<namespace>/]<name>` exactly as §3.1 specifies.
    pub fn parse(text: &str, defaults: RefDefaults<'_>) -> Result<EntityRef, RefError> {
        let not_on_the_form = || RefError {
            message: format!("Entity reference \"{text}\" was not on the form [<kind>:][<namespace>/]<name>"),
        };
        let slash = text.find('/');
        // A slash before the first colon means the colon belongs to the name (`a/b:c`).
        let colon = match (text.find(':'), slash) {
            (Some(colon), Some(slash)) if slash < colon => None,
            (colon, _) => colon,
        };
        let kind = colon.map(|colon| &text[..colon]);
        let name_start = colon.map_or(0, |colon| colon + 1);
        let namespace = slash.map(|slash| &text[name_start..slash]);
        let name = &text[slash.map_or(name_start, |slash| slash + 1)..];
        if kind == Some("") || namespace == Some("") || name.is_empty() {
            return Err(not_on_the_form());
        }
        let kind = match kind.or(defaults.kind) {
            Some(kind) => kind,
            None => return Err(missing_kind(&format!("\"{text}\""))),
        };
        let namespace = namespace.or(defaults.namespace).unwrap_or(DEFAULT_NAMESPACE);
        Ok(EntityRef { kind: kind.to_owned(), namespace: namespace.to_owned(), name: name.to_owned() })
    }

    /// Parses either the string form or the compound `{kind?, namespace?, name}` form (§3.2).
    pub fn from_value(value: &Value, defaults: RefDefaults<'_>) -> Result<EntityRef, RefError> {
        let object = match value {
            Value::String(text) => return EntityRef::parse(text, defaults),
            Value::Object(object) => object,
            other => {
                return Err(RefError {
                    message: format!(
                        "Entity reference must be a string or an object, got {}",
                        json_type_name(other)
                    ),
                })
            }
        };
        let shown = value.to_string();
        // Absent (or null) parts take the defaults; present parts must be non-empty strings.
        let part = |key: &str| -> Result<Option<&str>, RefError> {
            match object.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) if !text.is_empty() => Ok(Some(text)),
                Some(_) => Err(RefError {
                    message: format!("Entity reference {shown} had an invalid or empty {key}"),
                }),
            }
        };
        let name = match part("name")? {
            Some(name) => name,
            None => {
                return Err(RefError {
                    message: format!("Entity reference {shown} had a missing or empty name"),
                })
            }
        };
        let kind = match part("kind")?.or(defaults.kind) {
            Some(kind) => kind,
            None => return Err(missing_kind(&shown)),
        };
        let namespace = part("namespace")?.or(defaults.namespace).unwrap_or(DEFAULT_NAMESPACE);
        Ok(EntityRef { kind: kind.to_owned(), namespace: namespace.to_owned(), name: name.to_owned() })
    }

    /// `lower(kind):lower(namespace)/lower(name)`.
    pub fn canonical(&self) -> String {
        canonical_of(&self.kind, &self.namespace, &self.name)
    }
}

impl std::fmt::Display for EntityRef {
    /// Displays the canonical form, because refs are only ever compared that way (§3.3).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// The canonical ref of an entity body (`kind`, `metadata.namespace` defaulting to `default`,
/// `metadata.name`), or `None` when kind or name is missing or not a string.
///
/// Empty strings also give `None`: a ref with an empty part could never be parsed back.
pub fn canonical_ref_of(entity: &Value) -> Option<String> {
    let kind = non_empty_str(entity.get("kind"))?;
    let metadata = entity.get("metadata")?;
    let name = non_empty_str(metadata.get("name"))?;
    let namespace = match metadata.get("namespace") {
        None => DEFAULT_NAMESPACE,
        namespace => non_empty_str(namespace)?,
    };
    Some(canonical_of(kind, namespace, name))
}

/// Lower-cases with Unicode rules and no locale, like JavaScript's `toLowerCase`.
pub(crate) fn canonical_of(kind: &str, namespace: &str, name: &str) -> String {
    let mut out = String::with_capacity(kind.len() + namespace.len() + name.len() + 2);
    push_lower(&mut out, kind);
    out.push(':');
    push_lower(&mut out, namespace);
    out.push('/');
    push_lower(&mut out, name);
    out
}

fn push_lower(out: &mut String, part: &str) {
    // Almost every ref is ASCII; skip the allocation `to_lowercase` would make for it.
    if part.is_ascii() {
        out.extend(part.chars().map(|c| c.to_ascii_lowercase()));
    } else {
        out.push_str(&part.to_lowercase());
    }
}

fn missing_kind(shown: &str) -> RefError {
    RefError {
        message: format!(
            "Entity reference {shown} had missing or empty kind (e.g. did not start with \"component:\" or similar)"
        ),
    }
}

fn non_empty_str(value: Option<&Value>) -> Option<&str> {
    match value {
        Some(Value::String(text)) if !text.is_empty() => Some(text),
        _ => None,
    }
}

/// JSON type names as users see them in messages.
pub(crate) fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests;
