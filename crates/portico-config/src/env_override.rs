//! `APP_CONFIG_<a>_<b>=<value>` variables, the highest-priority layer (reference §D.2).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::ConfigError;

const PREFIX: &str = "APP_CONFIG_";

/// Builds the override layer from every `APP_CONFIG_*` variable in `env`.
///
/// The key path is the rest of the name split on `_`, case kept, so camelCase keys are written
/// as-is (`APP_CONFIG_app_baseUrl`). Values are JSON when they parse as JSON and raw strings
/// otherwise; empty values are skipped so that `APP_CONFIG_x=` in a shell does not blank a key.
/// Two variables that set the same key, or one nested under another's scalar, are an error
/// rather than a silent winner, because which one wins would depend on iteration order.
pub(crate) fn overrides(env: &BTreeMap<String, String>) -> Result<Map<String, Value>, ConfigError> {
    let mut layer = Map::new();
    for (variable, raw_value) in env {
        let Some(key) = variable.strip_prefix(PREFIX) else {
            continue;
        };
        if raw_value.is_empty() {
            continue;
        }
        let error = |message: String| ConfigError::EnvOverride { variable: variable.clone(), message };
        let parts: Vec<&str> = key.split('_').collect();
        if let Some(part) = parts.iter().find(|part| !is_valid_key_part(part)) {
            return Err(error(format!(
                "invalid key part '{part}': each part must start with a letter and hold only \
                 letters, digits and single dashes"
            )));
        }
        let value = match serde_json::from_str::<Value>(raw_value) {
            Ok(Value::Null) => {
                return Err(error(
                    "value may not be null; to unset a key, set it to null in a config file".to_owned(),
                ))
            }
            Ok(value) => value,
            // Not JSON: the raw text is the value, so `APP_CONFIG_app_title=My Portal` works.
            Err(_) => Value::String(raw_value.clone()),
        };
        let Some((last, parents)) = parts.split_last() else {
            continue;
        };
        let mut object = &mut layer;
        for (depth, part) in parents.iter().enumerate() {
            let slot = object.entry(part.to_string()).or_insert_with(|| Value::Object(Map::new()));
            let Value::Object(child) = slot else {
                return Err(error(format!(
                    "cannot nest config under '{}', which another APP_CONFIG_ variable sets \
                     to a non-object value",
                    parts[..=depth].join(".")
                )));
            };
            object = child;
        }
        if object.contains_key(*last) {
            return Err(error(format!(
                "key '{}' is already set by another APP_CONFIG_ variable",
                parts.join(".")
            )));
        }
        object.insert((*last).to_owned(), value);
    }
    Ok(layer)
}

/// Backstage's `^[a-z][a-z0-9]*(?:[-_][a-z][a-z0-9]*)*$` with the `i` flag: segments separated
/// by single `-` or `_`, each a letter followed by letters and digits.
fn is_valid_key_part(part: &str) -> bool {
    part.split(['-', '_']).all(|segment| {
        let mut chars = segment.chars();
        chars.next().is_some_and(|first| first.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric())
    })
}

#[cfg(test)]
mod tests;
