//! Turns one config file into the layer it contributes: substitutes `${VAR}` in every string and
//! resolves `$env`, `$file` and `$include` directives (reference §D.3, §D.4).
//!
//! Values that come out undefined (an unset variable, an unset `$env`) are dropped: an object
//! loses the key and an array loses the element, so a lower layer's value shows through.
//! `null` is kept here, because only the merge knows what it masks.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::document::{self, Format};
use crate::substitution::substitute;
use crate::{type_name, ConfigError, KeyPath};

/// Keys that turn their object into a directive, when alone in it.
const DIRECTIVES: [&str; 3] = ["$env", "$file", "$include"];

/// Reads, parses and transforms the config file at `path` into one layer.
pub(crate) fn load_file(
    path: &Path,
    env: &BTreeMap<String, String>,
) -> Result<Map<String, Value>, ConfigError> {
    let file = path.display().to_string();
    let text = read(path, String::new())?;
    let parsed = document::parse(&file, &text, Format::from_config_path(path))?;
    let mut walker = Walker { env, open_files: vec![canonical(path)] };
    let source = Source { file: file.clone(), dir: parent_dir(path) };
    match walker.transform(parsed, &source, &KeyPath::default())? {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(layer)) => Ok(layer),
        Some(other) => Err(ConfigError::Invalid {
            context: file,
            message: format!("the top level must be a mapping, found {}", type_name(&other)),
        }),
    }
}

/// The file a value came from: its label for errors and the directory its relative
/// `$file`/`$include` paths resolve against.
#[derive(Debug)]
struct Source {
    file: String,
    dir: PathBuf,
}

#[derive(Debug)]
struct Walker<'a> {
    env: &'a BTreeMap<String, String>,
    /// Canonical paths of the files being transformed, outermost first. Including one of them
    /// again would recurse forever, so that is an error.
    open_files: Vec<PathBuf>,
}

impl Walker<'_> {
    /// `None` means the value is undefined and its key or element must be dropped.
    fn transform(
        &mut self,
        value: Value,
        source: &Source,
        key: &KeyPath,
    ) -> Result<Option<Value>, ConfigError> {
        match value {
            Value::String(text) => Ok(substitute(&text, self.env).map(Value::String)),
            Value::Array(items) => {
                let mut transformed = Vec::with_capacity(items.len());
                for (index, item) in items.into_iter().enumerate() {
                    if let Some(item) = self.transform(item, source, &key.index(index))? {
                        transformed.push(item);
                    }
                }
                Ok(Some(Value::Array(transformed)))
            }
            Value::Object(object) => match directive_of(&object) {
                Some(directive) => self.resolve_directive(directive, object, source, key),
                None => {
                    let mut transformed = Map::with_capacity(object.len());
                    for (name, child) in object {
                        if let Some(child) = self.transform(child, source, &key.key(&name))? {
                            transformed.insert(name, child);
                        }
                    }
                    Ok(Some(Value::Object(transformed)))
                }
            },
            scalar => Ok(Some(scalar)),
        }
    }

    fn resolve_directive(
        &mut self,
        directive: &'static str,
        mut object: Map<String, Value>,
        source: &Source,
        key: &KeyPath,
    ) -> Result<Option<Value>, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { context: key.context(&source.file), message };
        if object.len() > 1 {
            let siblings: Vec<&str> =
                object.keys().map(String::as_str).filter(|name| *name != directive).collect();
            return Err(invalid(format!(
                "{directive} cannot have sibling keys, found: {}",
                siblings.join(", ")
            )));
        }
        // `directive_of` found the key, so the default never applies.
        let raw_argument = match object.shift_remove(directive).unwrap_or_default() {
            Value::String(raw_argument) => raw_argument,
            other => {
                return Err(invalid(format!("{directive} expects a string, found {}", type_name(&other))))
            }
        };
        // An undefined argument makes the whole directive undefined, like any other string.
        let Some(argument) = substitute(&raw_argument, self.env) else {
            return Ok(None);
        };
        match directive {
            "$env" => Ok(self.env.get(&argument).cloned().map(Value::String)),
            "$file" => read_file_directive(&argument, source, key).map(Some),
            _ => self.include(&argument, source, key),
        }
    }

    fn include(
        &mut self,
        argument: &str,
        source: &Source,
        key: &KeyPath,
    ) -> Result<Option<Value>, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            context: key.context(&source.file),
            message: format!("$include of {argument}: {message}"),
        };
        let (file_part, selector) = match argument.split_once('#') {
            Some((file_part, selector)) => (file_part, Some(selector).filter(|s| !s.is_empty())),
            None => (argument, None),
        };
        if file_part.is_empty() {
            return Err(invalid("missing file path".to_owned()));
        }
        let path = normalize(&source.dir.join(file_part));
        let Some(format) = Format::from_include_path(&path) else {
            return Err(invalid("unsupported file extension, expected .json, .yaml or .yml".to_owned()));
        };
        let context = format!("{}: $include of {argument}", key.context(&source.file));
        let text = read(&path, context)?;
        let canonical = canonical(&path);
        if self.open_files.contains(&canonical) {
            return Err(invalid(format!("include cycle, {} is already being loaded", path.display())));
        }
        let file = path.display().to_string();
        let parsed = document::parse(&file, &text, format)?;
        let (selected, inner_key) = select(parsed, selector, &file).map_err(invalid)?;
        let included = Source { file, dir: parent_dir(&path) };
        self.open_files.push(canonical);
        let result = self.transform(selected, &included, &inner_key);
        self.open_files.pop();
        result
    }
}

/// The directive key of `object`, if it has one. With several, the first one is reported.
fn directive_of(object: &Map<String, Value>) -> Option<&'static str> {
    object.keys().find_map(|name| DIRECTIVES.into_iter().find(|directive| name == directive))
}

fn read_file_directive(argument: &str, source: &Source, key: &KeyPath) -> Result<Value, ConfigError> {
    let path = normalize(&source.dir.join(argument));
    let context = format!("{}: $file of {argument}", key.context(&source.file));
    let text = read(&path, context)?;
    // Secrets are usually written with a trailing newline that must not end up in a password.
    Ok(Value::String(text.trim_end().to_owned()))
}

/// The subtree of an included document at `selector` (`a.b`), and its key path there.
/// The error message is completed by the caller, which knows the `$include` argument.
fn select(document: Value, selector: Option<&str>, file: &str) -> Result<(Value, KeyPath), String> {
    let mut key = KeyPath::default();
    let Some(selector) = selector else {
        return Ok((document, key));
    };
    let mut current = document;
    for part in selector.split('.') {
        let Value::Object(mut object) = current else {
            if key.0.is_empty() {
                return Err(format!("the top level of {file} is not a mapping"));
            }
            return Err(format!("value at '{key}' in {file} is not a mapping"));
        };
        key = key.key(part);
        current = object.shift_remove(part).ok_or_else(|| format!("no value at '{key}' in {file}"))?;
    }
    Ok((current, key))
}

fn read(path: &Path, context: String) -> Result<String, ConfigError> {
    fs::read_to_string(path).map_err(|source| ConfigError::Read { context, path: path.to_owned(), source })
}

/// Drops `.` components so messages say `conf/db.yaml`, not `conf/./db.yaml`.
fn normalize(path: &Path) -> PathBuf {
    path.components().collect()
}

fn parent_dir(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The identity of a file for cycle detection; falls back to the path as written when it cannot
/// be resolved (reading it has already succeeded, so that is rare).
fn canonical(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}
