//! Entity filters (reference §7.2, §7.3).
use serde_json::Value;

/// A filter over search rows. Keys and values are lower-cased at parse time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    All(Vec<Filter>),
    Any(Vec<Filter>),
    Not(Box<Filter>),
    Key { key: String, condition: Condition },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// The key is present (any value, including null) or, with `false`, absent.
    Exists(bool),
    /// Some row of the key has one of these values.
    In(Vec<String>),
    /// Some row of the key has a value starting with this prefix.
    HasPrefix(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FilterError {
    pub message: String,
}

/// Parses the repeated `filter` query parameters. `Ok(None)` when there are none.
pub fn parse_query_filters(params: &[String]) -> Result<Option<Filter>, FilterError> {
    let _ = params;
    unimplemented!()
}

/// Parses a JSON predicate (`query` body field) for entities.
pub fn parse_predicate(predicate: &Value) -> Result<Filter, FilterError> {
    let _ = predicate;
    unimplemented!()
}
