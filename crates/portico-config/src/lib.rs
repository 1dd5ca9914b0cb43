//! Backstage `app-config.yaml` loading: layering, `${VAR}` substitution, `$env`/`$file`/`$include`
//! directives and `APP_CONFIG_*` overrides (reference auth-permissions-config.md §D).
//!
//! The crate knows nothing about the portal: it turns files plus an environment into one merged
//! `serde_json::Value`. The typed view of that tree lives in `portico-server`.
//! It never reads the process environment itself: callers pass the variables in, so tests and
//! embedders decide exactly what a config can see.
//!
//! Layout:
//! - `document`: YAML 1.2 / JSON text to `serde_json::Value`, with file and line in syntax errors.
//! - `substitution`: `${NAME}`, `${NAME:-fallback}` and `$${` in one string (§D.3).
//! - `transform`: walks one file's tree, substituting strings and resolving directives (§D.4).
//! - `merge`: layering of files and overrides, with `null` masking lower layers (§D.1).
//! - `env_override`: `APP_CONFIG_<a>_<b>` variables as the top layer (§D.2).
//! - `duration`: Backstage's duration forms (`{ minutes: 5 }`, `PT5M`, `5m`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

mod document;
mod duration;
mod env_override;
mod merge;
mod substitution;
mod transform;

pub use crate::duration::parse_duration;

/// Why loading or reading config failed.
///
/// Every message names where the problem is: the file (as the caller or the including file spelled
/// it) and, when known, the dotted key path inside it, so an operator can go straight to the line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A config file, or the target of a `$file` or `$include`, could not be read.
    ///
    /// `context` is empty for a file passed to [`load`], and otherwise names the file, key path
    /// and directive that asked for `path`.
    #[error("{}cannot read {}", prefix(.context), .path.display())]
    Read {
        context: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A YAML or JSON syntax error. `line` and `column` are 1-based.
    #[error("{file}: line {line}, column {column}: {message}")]
    Syntax { file: String, line: usize, column: usize, message: String },
    /// Well-formed text whose content is unusable, e.g. a directive with sibling keys.
    /// `context` is `<file>` or `<file>: <dotted.key.path>`.
    #[error("{context}: {message}")]
    Invalid { context: String, message: String },
    /// An `APP_CONFIG_*` variable is malformed or conflicts with another one.
    /// The message never repeats the variable's value, which is often a secret.
    #[error("environment variable {variable}: {message}")]
    EnvOverride { variable: String, message: String },
    /// A value handed to [`parse_duration`] is not one of Backstage's duration forms.
    #[error("invalid duration: {message}")]
    InvalidDuration { message: String },
}

/// Loads and merges `files` in order (later wins), then applies `APP_CONFIG_*` overrides from `env`.
///
/// `env` is used for `${VAR}` substitution, `$env` directives and overrides alike; pass
/// `std::env::vars().collect()` to get Backstage's behavior. The result is always an object, and
/// contains no `null` under any object key: an explicit `null` only exists to mask lower layers.
pub fn load(files: &[PathBuf], env: &BTreeMap<String, String>) -> Result<Value, ConfigError> {
    let mut merged = Map::new();
    for file in files {
        let layer = transform::load_file(file, env)?;
        merge::merge_into(&mut merged, layer);
    }
    let overrides = env_override::overrides(env)?;
    merge::merge_into(&mut merged, overrides);
    Ok(Value::Object(merged))
}

/// The files Backstage loads without `--config`: `app-config.yaml` and `app-config.local.yaml`
/// in `dir`, those that exist, in that order.
pub fn default_files(dir: &Path) -> Vec<PathBuf> {
    ["app-config.yaml", "app-config.local.yaml"]
        .into_iter()
        .map(|name| dir.join(name))
        .filter(|path| path.is_file())
        .collect()
}

/// The value at `dotted` (e.g. `backend.database.client`) inside `config`, walking objects only.
///
/// An empty `dotted` is the root. A `null` reads as absent, matching how layering treats it.
pub fn get<'a>(config: &'a Value, dotted: &str) -> Option<&'a Value> {
    let mut current = config;
    if !dotted.is_empty() {
        for part in dotted.split('.') {
            current = current.as_object()?.get(part)?;
        }
    }
    match current {
        Value::Null => None,
        value => Some(value),
    }
}

/// A dotted key path inside one document, in the form Backstage prints (`a.b[2].c`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct KeyPath(String);

impl KeyPath {
    fn key(&self, key: &str) -> KeyPath {
        if self.0.is_empty() {
            KeyPath(key.to_owned())
        } else {
            KeyPath(format!("{}.{key}", self.0))
        }
    }

    fn index(&self, index: usize) -> KeyPath {
        KeyPath(format!("{}[{index}]", self.0))
    }

    /// `<file>` at the root, `<file>: <path>` below it: the `context` of a [`ConfigError`].
    fn context(&self, file: &str) -> String {
        if self.0.is_empty() {
            file.to_owned()
        } else {
            format!("{file}: {}", self.0)
        }
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn prefix(context: &str) -> String {
    if context.is_empty() {
        String::new()
    } else {
        format!("{context}: ")
    }
}

/// A JSON type name for messages like "expects a string, found an array".
fn type_name(value: &Value) -> &'static str {
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
