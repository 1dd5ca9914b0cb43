//! Envelope check, normalisation, policies and kind validation (reference §2.4, §2.5, §4).
use serde_json::Value;

use crate::problem::Problem;

/// §2.5: the cheap pre-check (apiVersion, kind, metadata.name non-empty strings, namespace
/// non-empty if present). Returns every problem found.
pub fn check_envelope(entity: &Value) -> Vec<Problem> {
    let _ = entity;
    unimplemented!()
}

/// §4.3 array sorting plus policy 2 (default namespace). Never fails; leaves odd shapes alone.
pub fn preprocess(entity: &mut Value) {
    let _ = entity;
    unimplemented!()
}

/// Policies 1, 3, 4 of §2.4 and the kind validation of §4 (JSON Schemas of
/// `backstage-schemas/`, embedded). Reports every problem, not only the first.
pub fn validate_entity(entity: &Value) -> Vec<Problem> {
    let _ = entity;
    unimplemented!()
}
