//! Field selection (reference §7.4).
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldsError {
    pub message: String,
}

/// Parses repeated comma-separated `fields` parameters (or body arrays, one field per item).
pub fn parse_fields(params: &[String]) -> Result<Vec<String>, FieldsError> {
    let _ = params;
    unimplemented!()
}

/// Keeps only the selected subtrees of `entity`, re-nested. An empty selection keeps everything.
pub fn select_fields(entity: &Value, fields: &[String]) -> Value {
    let _ = (entity, fields);
    unimplemented!()
}
