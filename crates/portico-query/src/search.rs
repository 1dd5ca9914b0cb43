//! Search rows (reference §6.12).
use serde_json::Value;

/// One flattened `(key, value)` pair of a final entity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SearchRow {
    /// Lower-cased dotted key.
    pub key: String,
    /// Lower-cased value; `None` for null and for values longer than 200 characters.
    pub value: Option<String>,
    /// The value as written (same `None` rule), used for facets.
    pub original: Option<String>,
}

/// Flattens a final entity. Errors when two keys differ only in case (§6.12).
pub fn search_rows(entity: &Value) -> Result<Vec<SearchRow>, String> {
    let _ = entity;
    unimplemented!()
}
