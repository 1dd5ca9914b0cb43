//! Entity references (reference §3).
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

impl EntityRef {
    /// Parses `[<kind>:][<namespace>/]<name>` exactly as §3.1 specifies.
    pub fn parse(text: &str, defaults: RefDefaults<'_>) -> Result<EntityRef, RefError> {
        let _ = (text, defaults);
        unimplemented!()
    }

    /// Parses either the string form or the compound `{kind?, namespace?, name}` form (§3.2).
    pub fn from_value(value: &Value, defaults: RefDefaults<'_>) -> Result<EntityRef, RefError> {
        let _ = (value, defaults);
        unimplemented!()
    }

    /// `lower(kind):lower(namespace)/lower(name)`.
    pub fn canonical(&self) -> String {
        unimplemented!()
    }
}

/// The canonical ref of an entity body (`kind`, `metadata.namespace` defaulting to `default`,
/// `metadata.name`), or `None` when kind or name is missing or not a string.
pub fn canonical_ref_of(entity: &Value) -> Option<String> {
    let _ = entity;
    unimplemented!()
}
