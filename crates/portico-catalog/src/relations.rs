//! Relations produced by the built-in kinds (reference §4.1, §4.2).
use serde_json::Value;

use crate::problem::Problem;

/// One directed relation between two canonical refs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Relation {
    pub source: String,
    pub kind: String,
    pub target: String,
}

/// Every relation (both directions) the entity's own spec produces. The entity must already
/// be valid. Fails with one problem per bad reference (e.g. `dependsOn` without a kind).
pub fn relations_of(entity: &Value) -> Result<Vec<Relation>, Vec<Problem>> {
    let _ = entity;
    unimplemented!()
}
