//! Entity filters (reference §7.2, §7.3).
//!
//! Two surface syntaxes produce the same [`Filter`] tree: the repeated `filter=` query
//! parameter ([`parse_query_filters`]) and the JSON predicate language
//! ([`parse_predicate`]). [`matches()`] is the reference evaluation of a tree against an
//! entity's search rows; the store's SQL translation must agree with it.
//!
//! Location predicates (`POST /locations/by-query`) share the predicate grammar but not the
//! semantics (fixed fields, one case-sensitive comparison, `$contains` matching nothing), so
//! they parse into their own [`LocationFilter`] tree with [`matches_location`] as its
//! reference evaluation.
use serde_json::{Map, Value};

use crate::search::{js_primitive_string, SearchRow};

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

/// A filter over registered locations (reference §7.3, "Locations predicate").
///
/// `All(vec![])` matches everything and `Any(vec![])` matches nothing, as for [`Filter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocationFilter {
    All(Vec<LocationFilter>),
    Any(Vec<LocationFilter>),
    Not(Box<LocationFilter>),
    Field { field: LocationField, condition: LocationCondition },
}

/// The location fields a predicate may name (key names match case-insensitively).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocationField {
    Id,
    Type,
    Target,
    EntityRef,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocationCondition {
    /// The field has a value or, with `false`, has none.
    Exists(bool),
    /// The field equals one of these lower-cased values, ignoring case.
    InIgnoreCase(Vec<String>),
    /// The field equals one of these values exactly; only produced by `$in` on `id`.
    InExact(Vec<String>),
    /// The field starts with this lower-cased prefix, ignoring case.
    HasPrefix(String),
}

/// Parses the repeated `filter` query parameters. `Ok(None)` when there are none.
///
/// Each parameter is one set of conditions and the sets are OR-ed. A parameter without any
/// condition (empty, or only commas and blanks) is ignored rather than matching everything.
pub fn parse_query_filters(params: &[String]) -> Result<Option<Filter>, FilterError> {
    let mut sets = Vec::new();
    for param in params {
        if let Some(set) = parse_filter_set(param)? {
            sets.push(set);
        }
    }
    Ok(match sets.len() {
        0 => None,
        1 => sets.pop(),
        _ => Some(Filter::Any(sets)),
    })
}

/// Parses a JSON predicate (`query` body field) for entities.
pub fn parse_predicate(predicate: &Value) -> Result<Filter, FilterError> {
    if !predicate.is_object() {
        return Err(invalid_query(format!("the root must be an object, got {}", describe(predicate))));
    }
    parse_tree(predicate, &entity_leaf)
}

/// Parses a JSON predicate for `POST /locations/by-query`.
pub fn parse_location_predicate(predicate: &Value) -> Result<LocationFilter, FilterError> {
    if !predicate.is_object() {
        return Err(invalid_query(format!("the root must be an object, got {}", describe(predicate))));
    }
    parse_tree(predicate, &location_leaf)
}

/// Evaluates `filter` against one entity's search rows.
///
/// A key exists when any row has it (even with a null value); `In` and `HasPrefix` need some
/// row of the key with a non-null value that matches.
pub fn matches(filter: &Filter, rows: &[SearchRow]) -> bool {
    match filter {
        Filter::All(filters) => filters.iter().all(|filter| matches(filter, rows)),
        Filter::Any(filters) => filters.iter().any(|filter| matches(filter, rows)),
        Filter::Not(filter) => !matches(filter, rows),
        Filter::Key { key, condition } => {
            let mut values = rows.iter().filter(|row| row.key == *key).map(|row| row.value.as_deref());
            match condition {
                Condition::Exists(expected) => values.next().is_some() == *expected,
                Condition::In(wanted) => {
                    values.any(|value| value.is_some_and(|value| wanted.iter().any(|w| w == value)))
                }
                Condition::HasPrefix(prefix) => {
                    values.any(|value| value.is_some_and(|value| value.starts_with(prefix.as_str())))
                }
            }
        }
    }
}

/// Evaluates `filter` against one location; `value_of` returns a field's value, if any.
pub fn matches_location<'a>(
    filter: &LocationFilter,
    value_of: &dyn Fn(LocationField) -> Option<&'a str>,
) -> bool {
    match filter {
        LocationFilter::All(filters) => filters.iter().all(|f| matches_location(f, value_of)),
        LocationFilter::Any(filters) => filters.iter().any(|f| matches_location(f, value_of)),
        LocationFilter::Not(filter) => !matches_location(filter, value_of),
        LocationFilter::Field { field, condition } => {
            let value = value_of(*field);
            match condition {
                LocationCondition::Exists(expected) => value.is_some() == *expected,
                LocationCondition::InExact(wanted) => {
                    value.is_some_and(|value| wanted.iter().any(|w| w == value))
                }
                LocationCondition::InIgnoreCase(wanted) => value.is_some_and(|value| {
                    let value = value.to_lowercase();
                    wanted.contains(&value)
                }),
                LocationCondition::HasPrefix(prefix) => {
                    value.is_some_and(|value| value.to_lowercase().starts_with(prefix.as_str()))
                }
            }
        }
    }
}

impl LocationField {
    /// The field's name as written in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            LocationField::Id => "id",
            LocationField::Type => "type",
            LocationField::Target => "target",
            LocationField::EntityRef => "entityRef",
        }
    }
}

fn parse_filter_set(text: &str) -> Result<Option<Filter>, FilterError> {
    // Keys in first-seen order with their values; an empty list means "exists".
    let mut keys: Vec<(String, Vec<String>)> = Vec::new();
    for statement in text.split(',').map(str::trim).filter(|piece| !piece.is_empty()) {
        let (key, value) = match statement.split_once('=') {
            Some((key, value)) => (key.trim(), Some(value.trim())),
            None => (statement, None),
        };
        if key.is_empty() {
            return Err(FilterError {
                message: format!(
                    "Invalid filter, '{statement}' is not a valid statement \
                     (expected a string on the form a=b or a= or a)"
                ),
            });
        }
        let key = key.to_lowercase();
        let position = match keys.iter().position(|(known, _)| *known == key) {
            Some(position) => position,
            None => {
                keys.push((key, Vec::new()));
                keys.len() - 1
            }
        };
        if let Some(value) = value {
            let values = &mut keys[position].1;
            let value = value.to_lowercase();
            if !values.contains(&value) {
                values.push(value);
            }
        }
    }
    let mut conditions: Vec<Filter> = keys
        .into_iter()
        .map(|(key, values)| Filter::Key {
            key,
            condition: if values.is_empty() { Condition::Exists(true) } else { Condition::In(values) },
        })
        .collect();
    Ok(match conditions.len() {
        0 => None,
        1 => conditions.pop(),
        _ => Some(Filter::All(conditions)),
    })
}

/// The boolean structure shared by entity and location predicates.
trait Tree: Sized {
    fn all(parts: Vec<Self>) -> Self;
    fn any(parts: Vec<Self>) -> Self;
    fn not(part: Self) -> Self;
}

impl Tree for Filter {
    fn all(parts: Vec<Self>) -> Self {
        Filter::All(parts)
    }
    fn any(parts: Vec<Self>) -> Self {
        Filter::Any(parts)
    }
    fn not(part: Self) -> Self {
        Filter::Not(Box::new(part))
    }
}

impl Tree for LocationFilter {
    fn all(parts: Vec<Self>) -> Self {
        LocationFilter::All(parts)
    }
    fn any(parts: Vec<Self>) -> Self {
        LocationFilter::Any(parts)
    }
    fn not(part: Self) -> Self {
        LocationFilter::Not(Box::new(part))
    }
}

type Leaf<T> = dyn Fn(&str, &Value) -> Result<T, FilterError>;

/// Parses a predicate object: a logical operator alone, or an expression whose keys are
/// paths handed to `leaf` and AND-ed.
fn parse_tree<T: Tree>(predicate: &Value, leaf: &Leaf<T>) -> Result<T, FilterError> {
    let Value::Object(map) = predicate else {
        return Err(invalid_query(format!("expected a predicate object, got {}", describe(predicate))));
    };
    let mut parts = Vec::with_capacity(map.len());
    for (key, value) in map {
        match key.as_str() {
            "$all" | "$any" | "$not" if map.len() != 1 => {
                return Err(invalid_query(format!("'{key}' must be the only key of its object")));
            }
            "$all" => return Ok(T::all(parse_list(key, value, leaf)?)),
            "$any" => return Ok(T::any(parse_list(key, value, leaf)?)),
            "$not" => return Ok(T::not(parse_tree(value, leaf)?)),
            operator if operator.starts_with('$') => {
                return Err(invalid_query(format!("unknown operator '{operator}'")));
            }
            path => parts.push(leaf(path, value)?),
        }
    }
    Ok(match parts.len() {
        1 => parts.remove(0),
        _ => T::all(parts),
    })
}

fn parse_list<T: Tree>(operator: &str, value: &Value, leaf: &Leaf<T>) -> Result<Vec<T>, FilterError> {
    let Value::Array(items) = value else {
        return Err(invalid_query(format!("'{operator}' expects an array, got {}", describe(value))));
    };
    items.iter().map(|item| parse_tree(item, leaf)).collect()
}

/// An entity value predicate on `path` (§7.3 `ValuePredicate`).
fn entity_leaf(path: &str, value: &Value) -> Result<Filter, FilterError> {
    let key = path.to_lowercase();
    if let Some(text) = primitive(value) {
        return Ok(key_filter(key, Condition::In(vec![text])));
    }
    let (operator, argument) = single_operator(path, value)?;
    let condition = match operator {
        "$exists" => Condition::Exists(exists_argument(argument)?),
        "$in" => Condition::In(in_argument(argument)?),
        "$hasPrefix" => Condition::HasPrefix(has_prefix_argument(argument)?),
        "$contains" => {
            if let Some(text) = primitive(argument) {
                Condition::In(vec![text])
            } else if let (Value::Object(relation), "relations") = (argument, key.as_str()) {
                return relation_contains(relation);
            } else if argument.is_object() {
                return Err(invalid_query(format!(
                    "'$contains' with an object is only supported on 'relations', not '{path}'"
                )));
            } else {
                return Err(invalid_query(format!(
                    "'$contains' expects a string, number, boolean or object, got {}",
                    describe(argument)
                )));
            }
        }
        other => return Err(unknown_value_operator(path, other)),
    };
    Ok(key_filter(key, condition))
}

/// `{"relations": {"$contains": {"type": …, "targetRef": …}}}` becomes a condition on the
/// `relations.<type>` search key.
fn relation_contains(relation: &Map<String, Value>) -> Result<Filter, FilterError> {
    let mut relation_type = None;
    let mut target_ref = None;
    for (field, value) in relation {
        match field.as_str() {
            "type" => match value {
                Value::String(text) => relation_type = Some(text),
                _ => {
                    return Err(invalid_query(format!(
                        "relation 'type' must be a string, got {}",
                        describe(value)
                    )));
                }
            },
            "targetRef" => target_ref = Some(value),
            other => {
                return Err(invalid_query(format!(
                    "unknown relation field '{other}', expected 'type' or 'targetRef'"
                )));
            }
        }
    }
    let Some(relation_type) = relation_type else {
        return Err(invalid_query("'$contains' on 'relations' requires a 'type'".to_owned()));
    };
    let key = format!("relations.{}", relation_type.to_lowercase());
    let Some(target_ref) = target_ref else {
        return Ok(key_filter(key, Condition::Exists(true)));
    };
    if let Some(text) = primitive(target_ref) {
        return Ok(key_filter(key, Condition::In(vec![text])));
    }
    let targets = match target_ref {
        Value::Object(map) if map.len() == 1 => match map.get("$in") {
            Some(argument) => in_argument(argument)?,
            None => return Err(invalid_target_ref()),
        },
        _ => return Err(invalid_target_ref()),
    };
    if targets.is_empty() {
        return Err(invalid_query("relation 'targetRef' '$in' must not be empty".to_owned()));
    }
    Ok(key_filter(key, Condition::In(targets)))
}

/// A location value predicate on `path`.
fn location_leaf(path: &str, value: &Value) -> Result<LocationFilter, FilterError> {
    let field = match path.to_lowercase().as_str() {
        "id" => LocationField::Id,
        "type" => LocationField::Type,
        "target" => LocationField::Target,
        "entityref" => LocationField::EntityRef,
        _ => {
            return Err(invalid_query(format!(
                "unknown location field '{path}', expected one of id, type, target, entityRef"
            )));
        }
    };
    let condition = match primitive(value) {
        Some(text) => LocationCondition::InIgnoreCase(vec![text]),
        None => {
            let (operator, argument) = single_operator(path, value)?;
            match operator {
                "$exists" => LocationCondition::Exists(exists_argument(argument)?),
                // Ids are compared exactly by `$in`, as Backstage does (§7.3).
                "$in" if field == LocationField::Id => {
                    LocationCondition::InExact(in_argument_as_written(argument)?)
                }
                "$in" => LocationCondition::InIgnoreCase(in_argument(argument)?),
                "$hasPrefix" => LocationCondition::HasPrefix(has_prefix_argument(argument)?),
                // Locations have no array fields, so `$contains` can never match.
                "$contains" => return Ok(LocationFilter::Any(Vec::new())),
                other => return Err(unknown_value_operator(path, other)),
            }
        }
    };
    Ok(LocationFilter::Field { field, condition })
}

fn key_filter(key: String, condition: Condition) -> Filter {
    Filter::Key { key, condition }
}

/// A primitive as a lower-cased string; `None` for null, arrays and objects.
fn primitive(value: &Value) -> Option<String> {
    js_primitive_string(value).map(|text| text.to_lowercase())
}

/// The one `$operator` of a value-predicate object.
fn single_operator<'a>(path: &str, value: &'a Value) -> Result<(&'a str, &'a Value), FilterError> {
    let Value::Object(map) = value else {
        return Err(invalid_query(format!(
            "expected a string, number, boolean or operator object for '{path}', got {}",
            describe(value)
        )));
    };
    let mut entries = map.iter();
    let (Some((operator, argument)), None) = (entries.next(), entries.next()) else {
        return Err(invalid_query(format!(
            "expected exactly one operator for '{path}', got {} keys",
            map.len()
        )));
    };
    if !operator.starts_with('$') {
        return Err(invalid_query(format!(
            "expected an operator for '{path}', got key '{operator}' \
             (nested paths are written with dots, as in '{path}.{operator}')"
        )));
    }
    Ok((operator, argument))
}

fn exists_argument(argument: &Value) -> Result<bool, FilterError> {
    match argument {
        Value::Bool(flag) => Ok(*flag),
        other => Err(invalid_query(format!("'$exists' expects a boolean, got {}", describe(other)))),
    }
}

fn in_argument(argument: &Value) -> Result<Vec<String>, FilterError> {
    let mut values = in_argument_as_written(argument)?;
    for value in &mut values {
        *value = value.to_lowercase();
    }
    Ok(values)
}

fn in_argument_as_written(argument: &Value) -> Result<Vec<String>, FilterError> {
    let Value::Array(items) = argument else {
        return Err(invalid_in(argument));
    };
    items.iter().map(|item| js_primitive_string(item).ok_or_else(|| invalid_in(item))).collect()
}

fn has_prefix_argument(argument: &Value) -> Result<String, FilterError> {
    match argument {
        Value::String(prefix) => Ok(prefix.to_lowercase()),
        other => Err(invalid_query(format!("'$hasPrefix' expects a string, got {}", describe(other)))),
    }
}

fn invalid_in(found: &Value) -> FilterError {
    invalid_query(format!("'$in' expects an array of strings, numbers or booleans, got {}", describe(found)))
}

fn invalid_target_ref() -> FilterError {
    invalid_query("relation 'targetRef' must be a string or {\"$in\": [...]}".to_owned())
}

fn unknown_value_operator(path: &str, operator: &str) -> FilterError {
    invalid_query(format!("unknown operator '{operator}' for '{path}'"))
}

fn invalid_query(reason: String) -> FilterError {
    FilterError { message: format!("Invalid query: {reason}") }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
