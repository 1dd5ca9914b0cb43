//! The catalog's query language: search rows, filters, predicates, field selection and cursors.
//!
//! Pure functions over `serde_json::Value`; no IO, no SQL. The catalog index and the SQL store
//! both evaluate the `Filter` tree produced here.
//!
//! Layout:
//! - `search`: flattening a final entity into `(key, value)` search rows (reference §6.12).
//! - `filter`: the `Filter` tree, the query-string syntax (§7.2) and the JSON predicate language (§7.3).
//! - `fields`: the `fields` parameter and field selection (§7.4).
//! - `cursor`: opaque pagination cursors, base64 of a JSON object (§7.5).

pub mod cursor;
pub mod fields;
pub mod filter;
pub mod search;
