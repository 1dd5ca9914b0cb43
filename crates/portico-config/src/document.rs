//! Turns the text of one config file into a `serde_json::Value`.
//!
//! YAML follows the 1.2 core schema (so `yes`, `on` and `0777`-style octals are not special), as
//! Backstage's `yaml` parser does. JSON files go through `serde_json` rather than the YAML parser
//! so their syntax errors read like JSON errors.

use std::path::Path;

use saphyr::{LoadableYamlNode, Scalar, Yaml};
use serde_json::{Map, Number, Value};

use crate::{ConfigError, KeyPath};

/// Which parser a file needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Yaml,
    Json,
}

impl Format {
    /// The format `$include` requires: only these three extensions are config files.
    pub(crate) fn from_include_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "yaml" | "yml" => Some(Format::Yaml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    /// The format of a file passed to `load`: `.json` is JSON, anything else is read as YAML,
    /// since Backstage accepts `--config` files of any name.
    pub(crate) fn from_config_path(path: &Path) -> Format {
        match path.extension().and_then(|ext| ext.to_str()) {
            Some("json") => Format::Json,
            _ => Format::Yaml,
        }
    }
}

/// Parses `text`; `file` only labels errors.
///
/// An empty YAML document is `null`, which callers treat as "no values".
pub(crate) fn parse(file: &str, text: &str, format: Format) -> Result<Value, ConfigError> {
    match format {
        Format::Yaml => parse_yaml(file, text),
        Format::Json => parse_json(file, text),
    }
}

fn parse_yaml(file: &str, text: &str) -> Result<Value, ConfigError> {
    check_depth(file, text)?;
    let mut documents = Yaml::load_from_str(text).map_err(|error| ConfigError::Syntax {
        file: file.to_owned(),
        line: error.marker().line(),
        column: error.marker().col() + 1,
        message: error.info().to_owned(),
    })?;
    if documents.len() > 1 {
        return Err(ConfigError::Invalid {
            context: file.to_owned(),
            message: format!(
                "contains {} YAML documents, a config file must hold exactly one",
                documents.len()
            ),
        });
    }
    match documents.pop() {
        Some(document) => yaml_to_json(document, file, &KeyPath::default()),
        None => Ok(Value::Null),
    }
}

/// Rejects nesting deeper than `MAX_DEPTH` before a tree is built: building, converting and
/// even dropping a deeper tree recurses once per level and could overflow the stack.
/// Syntax errors are left for the loader to report.
fn check_depth(file: &str, text: &str) -> Result<(), ConfigError> {
    let mut depth = 0usize;
    for event in saphyr_parser::Parser::new_from_str(text) {
        let Ok((event, span)) = event else { return Ok(()) };
        match event {
            saphyr_parser::Event::MappingStart(..) | saphyr_parser::Event::SequenceStart(..) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(ConfigError::Invalid {
                        context: format!("{file}:{}", span.start.line()),
                        message: format!("nesting deeper than {MAX_DEPTH} levels"),
                    });
                }
            }
            saphyr_parser::Event::MappingEnd | saphyr_parser::Event::SequenceEnd => {
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
    }
    Ok(())
}

fn parse_json(file: &str, text: &str) -> Result<Value, ConfigError> {
    serde_json::from_str(text).map_err(|error| {
        // serde_json appends the position to its message; we report it in our own format.
        let full = error.to_string();
        let position = format!(" at line {} column {}", error.line(), error.column());
        let message = full.strip_suffix(&position).unwrap_or(&full).to_owned();
        ConfigError::Syntax { file: file.to_owned(), line: error.line(), column: error.column(), message }
    })
}

/// Deepest nesting accepted in a config file, the same limit serde_json applies to JSON files.
/// Every later pass (substitution, merging) recurses over the tree, so the limit keeps a hostile
/// or broken file from overflowing the stack.
const MAX_DEPTH: usize = 128;

fn yaml_to_json(node: Yaml<'_>, file: &str, key: &KeyPath) -> Result<Value, ConfigError> {
    yaml_to_json_at(node, file, key, 0)
}

fn yaml_to_json_at(node: Yaml<'_>, file: &str, key: &KeyPath, depth: usize) -> Result<Value, ConfigError> {
    let invalid =
        |message: &str| ConfigError::Invalid { context: key.context(file), message: message.to_owned() };
    if depth > MAX_DEPTH {
        return Err(invalid(&format!("nesting deeper than {MAX_DEPTH} levels")));
    }
    let yaml_to_json =
        |node: Yaml<'_>, file: &str, key: &KeyPath| yaml_to_json_at(node, file, key, depth + 1);
    match node {
        Yaml::Value(scalar) => scalar_to_json(scalar)
            .ok_or_else(|| invalid("infinite and NaN numbers cannot be represented in config")),
        Yaml::Representation(raw, style, tag) => {
            match Scalar::parse_from_cow_and_metadata(raw, style, tag.as_ref()) {
                Some(scalar) => yaml_to_json(Yaml::Value(scalar), file, key),
                None => Err(invalid("value does not match its YAML tag")),
            }
        }
        Yaml::Sequence(items) => items
            .into_iter()
            .enumerate()
            .map(|(index, item)| yaml_to_json(item, file, &key.index(index)))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Yaml::Mapping(mapping) => {
            let mut object = Map::new();
            for (yaml_key, yaml_value) in mapping {
                let name = mapping_key(yaml_key)
                    .ok_or_else(|| invalid("mapping keys must be scalars, not sequences or mappings"))?;
                // YAML sees `1` and `"1"` as different keys; as JSON they collide.
                if object.contains_key(&name) {
                    return Err(invalid(&format!("duplicate key '{name}'")));
                }
                let value = yaml_to_json(yaml_value, file, &key.key(&name))?;
                object.insert(name, value);
            }
            Ok(Value::Object(object))
        }
        // Application tags (`!secret foo`) carry no meaning for config: keep the tagged value.
        Yaml::Tagged(_, inner) => yaml_to_json_at(*inner, file, key, depth + 1),
        Yaml::BadValue => Err(invalid("value does not match its YAML tag")),
        Yaml::Alias(_) => Err(invalid("unresolved YAML alias")),
    }
}

/// `None` for infinities and NaN, which JSON cannot hold.
fn scalar_to_json(scalar: Scalar<'_>) -> Option<Value> {
    Some(match scalar {
        Scalar::Null => Value::Null,
        Scalar::Boolean(value) => Value::Bool(value),
        Scalar::Integer(value) => Value::Number(value.into()),
        Scalar::FloatingPoint(value) => Value::Number(Number::from_f64(value.into_inner())?),
        Scalar::String(value) => Value::String(value.into_owned()),
    })
}

/// Object keys are strings in JSON; scalar YAML keys become their plain text, as in JavaScript.
fn mapping_key(node: Yaml<'_>) -> Option<String> {
    match node {
        Yaml::Value(Scalar::String(value)) => Some(value.into_owned()),
        Yaml::Value(Scalar::Null) => Some("null".to_owned()),
        Yaml::Value(Scalar::Boolean(value)) => Some(value.to_string()),
        Yaml::Value(Scalar::Integer(value)) => Some(value.to_string()),
        Yaml::Value(Scalar::FloatingPoint(value)) => Some(value.into_inner().to_string()),
        Yaml::Representation(raw, _, _) => Some(raw.into_owned()),
        Yaml::Tagged(_, inner) => mapping_key(*inner),
        Yaml::Sequence(_) | Yaml::Mapping(_) | Yaml::Alias(_) | Yaml::BadValue => None,
    }
}
