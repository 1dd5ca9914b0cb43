//! Search rows (reference §6.12).
//!
//! A final entity is flattened into `(key, value)` rows that drive filters, facets, ordering
//! and full-text search. This runs once per stitched entity, so the walk reuses one path buffer
//! and only allocates the strings a row owns; the casing check allocates only for keys that
//! are not already lower case.
//!
//! Two deliberate differences from Backstage, both invisible to queries on final entities:
//! an absent `metadata.uid` produces no row (final entities always have one), and an absent
//! `metadata.namespace` produces only the `default` row rather than a null row plus `default`.
use std::fmt::Write as _;

use serde_json::{Number, Value};

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

/// Longest key kept, in UTF-16 code units (JavaScript's `length`, as Backstage measures it).
pub const MAX_KEY_LENGTH: usize = 200;
/// Longest value kept, in UTF-16 code units; longer values are stored as null.
pub const MAX_VALUE_LENGTH: usize = 200;

/// Flattens a final entity. Errors when two keys differ only in case (§6.12).
///
/// Rows come out in walk order (walked fields, then `metadata.name`, `metadata.namespace`,
/// `metadata.uid`, then relations), with exact `(key, value)` duplicates removed (the first
/// occurrence, and so its original value, is kept).
pub fn search_rows(entity: &Value) -> Result<Vec<SearchRow>, String> {
    let mut walker = Walker::default();
    walker.visit(entity);

    let metadata = entity.get("metadata");
    let field = |name: &str| metadata.and_then(|metadata| metadata.get(name));
    walker.push_special("metadata.name", field("name").unwrap_or(&Value::Null));
    let namespace = field("namespace").unwrap_or(&Value::Null);
    if !namespace.is_null() {
        walker.push_special("metadata.namespace", namespace);
    }
    // JavaScript falsiness, as in Backstage: an empty namespace keeps its row and also gets
    // the `default` one.
    if !is_truthy(namespace) {
        walker.push_default_namespace();
    }
    if let Some(uid) = field("uid").filter(|uid| !uid.is_null()) {
        walker.push_special("metadata.uid", uid);
    }
    if let Some(Value::Array(relations)) = entity.get("relations") {
        for relation in relations {
            let Some(Value::String(relation_type)) = relation.get("type") else {
                continue;
            };
            let target_ref = relation.get("targetRef").unwrap_or(&Value::Null);
            if target_ref.is_array() || target_ref.is_object() {
                continue;
            }
            walker.path.clear();
            walker.path.push_str("relations.");
            walker.path.push_str(relation_type);
            walker.emit(target_ref);
        }
    }

    walker.finish()
}

/// Formats a JSON number the way JavaScript's `String(number)` does.
///
/// JSON numbers reach Backstage as IEEE doubles, so integers beyond 2^53 lose precision,
/// `1.0` prints as `1`, and very large or very small magnitudes use exponent notation
/// (`1e+21`, `1e-7`).
pub fn js_number_string(number: &Number) -> String {
    let mut out = String::new();
    push_js_number(number, &mut out);
    out
}

/// Formats a primitive as JavaScript's `String(value)` would; `None` for null, arrays, objects.
pub(crate) fn js_primitive_string(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(js_number_string(number)),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// JavaScript's `length`: UTF-16 code units.
pub(crate) fn js_length(text: &str) -> usize {
    if text.is_ascii() {
        return text.len();
    }
    text.chars().map(char::len_utf16).sum()
}

/// Paths the walk skips; the first three hold derived data, the rest are added explicitly.
const SKIPPED_PATHS: [&str; 7] = [
    "attachments",
    "relations",
    "status",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.etag",
];

const DEFAULT_NAMESPACE: &str = "default";

#[derive(Debug, Default)]
struct Walker {
    /// The raw (not lower-cased) dotted path of the value being visited.
    path: String,
    rows: Vec<SearchRow>,
    /// Raw keys that differ from their lower-cased form, as `(row index, range in cased_keys)`.
    cased: Vec<(usize, std::ops::Range<usize>)>,
    /// Backing storage for the raw keys in `cased`, so they cost no allocation each.
    cased_keys: String,
}

impl Walker {
    fn visit(&mut self, value: &Value) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let parent_len = self.path.len();
                    if parent_len > 0 {
                        self.path.push('.');
                    }
                    self.path.push_str(key);
                    if !SKIPPED_PATHS.contains(&self.path.as_str()) {
                        self.visit(child);
                    }
                    self.path.truncate(parent_len);
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.visit(item);
                    if let Value::String(element) = item {
                        let parent_len = self.path.len();
                        self.path.push('.');
                        self.path.push_str(element);
                        self.emit(&Value::Bool(true));
                        self.path.truncate(parent_len);
                    }
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => self.emit(value),
        }
    }

    fn push_special(&mut self, key: &str, value: &Value) {
        if value.is_array() || value.is_object() {
            self.push_special(key, &Value::Null);
            return;
        }
        self.path.clear();
        self.path.push_str(key);
        self.emit(value);
    }

    fn push_default_namespace(&mut self) {
        self.rows.push(SearchRow {
            key: "metadata.namespace".to_owned(),
            value: Some(DEFAULT_NAMESPACE.to_owned()),
            original: Some(DEFAULT_NAMESPACE.to_owned()),
        });
    }

    /// Emits a row for the scalar `value` at the current path.
    fn emit(&mut self, value: &Value) {
        let key = self.path.to_lowercase();
        if key != self.path {
            let start = self.cased_keys.len();
            self.cased_keys.push_str(&self.path);
            self.cased.push((self.rows.len(), start..self.cased_keys.len()));
        }
        let (value, original) = match value {
            Value::String(text) => bounded(text.to_lowercase(), || text.clone()),
            Value::Number(number) => {
                let text = js_number_string(number);
                bounded(text.clone(), || text)
            }
            Value::Bool(true) => bounded("true".to_owned(), || "true".to_owned()),
            Value::Bool(false) => bounded("false".to_owned(), || "false".to_owned()),
            Value::Null | Value::Array(_) | Value::Object(_) => (None, None),
        };
        self.rows.push(SearchRow { key, value, original });
    }

    fn finish(self) -> Result<Vec<SearchRow>, String> {
        let Walker { mut rows, cased, cased_keys, .. } = self;
        if has_case_conflict(&rows, &cased, &cased_keys) {
            return Err(case_conflict_message(&rows, &cased, &cased_keys));
        }
        // The casing check above looks at every key, as Backstage does, before long keys go.
        rows.retain(|row| row.key.len() <= MAX_KEY_LENGTH || js_length(&row.key) <= MAX_KEY_LENGTH);
        dedup_rows(&mut rows);
        Ok(rows)
    }
}

/// Keeps `lower` as the value unless it is too long, in which case both value and original
/// are null; `original` is only built when it is kept.
fn bounded(lower: String, original: impl FnOnce() -> String) -> (Option<String>, Option<String>) {
    if lower.len() > MAX_VALUE_LENGTH && js_length(&lower) > MAX_VALUE_LENGTH {
        return (None, None);
    }
    (Some(lower), Some(original()))
}

fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64().is_some_and(|float| float != 0.0),
        Value::String(text) => !text.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// The raw key of row `index`, given that `cased` is sorted by row index.
fn raw_key<'a>(
    rows: &'a [SearchRow],
    cased: &[(usize, std::ops::Range<usize>)],
    cased_keys: &'a str,
    index: usize,
) -> &'a str {
    match cased.binary_search_by_key(&index, |(row, _)| *row) {
        Ok(position) => &cased_keys[cased[position].1.clone()],
        Err(_) => &rows[index].key,
    }
}

/// Fast check: a conflict needs at least one raw key that is not lower case, so only those
/// keys' lower-cased forms need comparing against everything else.
fn has_case_conflict(
    rows: &[SearchRow],
    cased: &[(usize, std::ops::Range<usize>)],
    cased_keys: &str,
) -> bool {
    if cased.is_empty() {
        return false;
    }
    let mut variants: Vec<(&str, &str)> =
        cased.iter().map(|(row, range)| (rows[*row].key.as_str(), &cased_keys[range.clone()])).collect();
    variants.sort_unstable();
    variants.dedup();
    if variants.windows(2).any(|pair| pair[0].0 == pair[1].0) {
        return true;
    }
    let mut cased_rows = cased.iter().map(|(row, _)| *row).peekable();
    for (index, row) in rows.iter().enumerate() {
        if cased_rows.peek() == Some(&index) {
            cased_rows.next();
            continue;
        }
        let lower = row.key.as_str();
        if variants.binary_search_by(|(key, _)| (*key).cmp(lower)).is_ok() {
            return true;
        }
    }
    false
}

/// Slow path, only on error: lists the keys in the order Backstage reports them (each extra
/// raw variant of a key, at its first appearance).
fn case_conflict_message(
    rows: &[SearchRow],
    cased: &[(usize, std::ops::Range<usize>)],
    cased_keys: &str,
) -> String {
    let mut seen_raw: Vec<&str> = Vec::new();
    let mut seen_lower: Vec<&str> = Vec::new();
    let mut difference: Vec<&str> = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let raw = raw_key(rows, cased, cased_keys, index);
        if seen_raw.contains(&raw) {
            continue;
        }
        seen_raw.push(raw);
        let lower = row.key.as_str();
        if seen_lower.contains(&lower) {
            difference.push(lower);
        } else {
            seen_lower.push(lower);
        }
    }
    let mut message = String::from("Entity has duplicate keys that vary only in casing, ");
    for (position, key) in difference.iter().enumerate() {
        if position > 0 {
            message.push_str(", ");
        }
        let _ = write!(message, "'{key}'");
    }
    message
}

/// Removes exact `(key, value)` duplicates, keeping the first occurrence and the row order.
fn dedup_rows(rows: &mut Vec<SearchRow>) {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by(|&left, &right| {
        let (left_row, right_row) = (&rows[left], &rows[right]);
        (&left_row.key, &left_row.value, left).cmp(&(&right_row.key, &right_row.value, right))
    });
    let mut keep = vec![true; rows.len()];
    let mut any_duplicate = false;
    for pair in order.windows(2) {
        let (first, second) = (&rows[pair[0]], &rows[pair[1]]);
        if first.key == second.key && first.value == second.value {
            keep[pair[1]] = false;
            any_duplicate = true;
        }
    }
    if !any_duplicate {
        return;
    }
    let mut index = 0;
    rows.retain(|_| {
        let kept = keep[index];
        index += 1;
        kept
    });
}

fn push_js_number(number: &Number, out: &mut String) {
    // Integers up to 2^53 are exact in a double and print as plain integers.
    const MAX_SAFE: u64 = 1 << 53;
    if let Some(integer) = number.as_i64() {
        if integer.unsigned_abs() <= MAX_SAFE {
            let _ = write!(out, "{integer}");
            return;
        }
    }
    if let Some(integer) = number.as_u64() {
        if integer <= MAX_SAFE {
            let _ = write!(out, "{integer}");
            return;
        }
    }
    let Some(float) = number.as_f64() else {
        // Unreachable without serde_json's arbitrary_precision; keep the JSON text.
        let _ = write!(out, "{number}");
        return;
    };
    push_js_float(float, out);
}

fn push_js_float(float: f64, out: &mut String) {
    if float == 0.0 {
        // Covers -0, which JavaScript prints as `0`.
        out.push('0');
        return;
    }
    if !float.is_finite() {
        out.push_str(match float {
            f if f.is_nan() => "NaN",
            f if f > 0.0 => "Infinity",
            _ => "-Infinity",
        });
        return;
    }
    let magnitude = float.abs();
    if (1e-6..1e21).contains(&magnitude) {
        // Rust's `Display` uses the same shortest round-trip digits and fixed notation that
        // JavaScript uses in this range.
        let _ = write!(out, "{float}");
        return;
    }
    // `{:e}` gives the shortest digits as `d.ddde<exp>`; JavaScript writes `e+<exp>` for
    // positive exponents.
    let start = out.len();
    let _ = write!(out, "{float:e}");
    if let Some(position) = out[start..].find('e') {
        let exponent_at = start + position + 1;
        if !out[exponent_at..].starts_with('-') {
            out.insert(exponent_at, '+');
        }
    }
}

#[cfg(test)]
mod tests;
