//! The Backstage entity model: references, validation, relations and descriptor parsing.
//!
//! This crate is pure: it performs no IO, knows nothing about HTTP, SQL or configuration.
//! Everything takes and returns plain data (`serde_json::Value` for entity bodies).
//!
//! Layout:
//! - `problem`: the `Problem` type every check reports (a dotted field path and a message).
//! - `entity_ref`: parsing and canonical form of entity references (reference §3).
//! - `location_ref`: `<type>:<target>` location references (reference §5.1).
//! - `validate`: envelope check, pre-processing normalisation, policies and kind validation (§2, §4).
//! - `relations`: the relations every built-in kind produces, in both directions (§4.1).
//! - `descriptor`: multi-document YAML parsing with line numbers for diagnostics (§6.6).

pub mod descriptor;
pub mod entity_ref;
pub mod location_ref;
pub mod problem;
pub mod relations;
pub mod validate;
pub mod yaml;
