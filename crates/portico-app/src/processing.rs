//! One processing pass over one entity (reference §6.5): pre-processing, placeholders, policies,
//! validation, reading Location targets, relations and rules.
//!
//! A pass never fails halfway: it returns either a completed entity with its relations and
//! children, or the errors that stopped it. The engine decides what to store.

use std::path::{Path, PathBuf};

use portico_catalog::descriptor::parse_descriptor;
use portico_catalog::entity_ref::canonical_ref_of;
use portico_catalog::location_ref::LocationRef;
use portico_catalog::relations::{relations_of, Relation};
use portico_catalog::validate::{check_envelope, preprocess, validate_entity};
use serde_json::{json, Map, Value};
use sha1::{Digest, Sha1};
use url::Url;

use crate::reader::{ReadError, Reader};
use crate::rules::Rules;

pub const MANAGED_BY_LOCATION: &str = "backstage.io/managed-by-location";
pub const MANAGED_BY_ORIGIN_LOCATION: &str = "backstage.io/managed-by-origin-location";

/// A serialized error as Backstage stores it (`{name, message, cause?}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessingError {
    pub name: String,
    pub message: String,
    /// Where the problem is, when known: `file:line` of the descriptor.
    pub location: Option<String>,
}

impl ProcessingError {
    pub fn new(name: &str, message: impl Into<String>) -> ProcessingError {
        ProcessingError { name: name.to_owned(), message: message.into(), location: None }
    }

    pub fn to_json(&self) -> Value {
        let mut error = json!({ "name": self.name, "message": self.message });
        if let Some(location) = &self.location {
            error["location"] = Value::String(location.clone());
        }
        error
    }
}

impl From<ReadError> for ProcessingError {
    fn from(error: ReadError) -> ProcessingError {
        ProcessingError::new(error.name(), error.to_string())
    }
}

/// A child entity emitted while reading a Location.
#[derive(Debug, Clone)]
pub struct Child {
    pub entity: Value,
    pub entity_ref: String,
    pub location_key: Option<String>,
    /// `entity` serialized once, and its SHA-1: a Location may emit hundreds of thousands of
    /// children, and both the result hash and the store need these.
    pub text: String,
    pub hash: String,
}

impl Child {
    fn new(entity: Value, entity_ref: String, location_key: Option<String>) -> Child {
        let text = entity.to_string();
        let hash = sha1_hex(&text);
        Child { entity, entity_ref, location_key, text, hash }
    }
}

/// The result of one pass.
#[derive(Debug, Clone)]
pub struct Processed {
    /// The completed entity, when the pass succeeded.
    pub entity: Option<Value>,
    pub errors: Vec<ProcessingError>,
    pub relations: Vec<Relation>,
    pub children: Vec<Child>,
}

impl Processed {
    fn failed(errors: Vec<ProcessingError>) -> Processed {
        Processed { entity: None, errors, relations: Vec::new(), children: Vec::new() }
    }

    /// SHA-1 over everything the pass produced, so an unchanged result is not written again.
    pub fn result_hash(&self) -> String {
        let mut hasher = Sha1::new();
        for error in &self.errors {
            hasher.update(error.name.as_bytes());
            hasher.update([0]);
            hasher.update(error.message.as_bytes());
            hasher.update([1]);
        }
        if let Some(entity) = &self.entity {
            // Key order is deterministic (the order of the source), so plain serialization is a
            // stable input for this internal hash.
            hasher.update(entity.to_string().as_bytes());
            for relation in &self.relations {
                hasher.update(relation.source.as_bytes());
                hasher.update([0]);
                hasher.update(relation.kind.as_bytes());
                hasher.update([0]);
                hasher.update(relation.target.as_bytes());
                hasher.update([1]);
            }
            for child in &self.children {
                hasher.update(child.hash.as_bytes());
                hasher.update(child.location_key.as_deref().unwrap_or("").as_bytes());
                hasher.update([2]);
            }
        }
        hex::encode(hasher.finalize())
    }
}

/// Settings of the processing pipeline that come from configuration.
#[derive(Debug, Clone)]
pub struct ProcessorOptions {
    pub rules: Rules,
    /// Location types a Location entity may point at besides its own (`catalog` default `["url"]`).
    pub allowed_location_types: Vec<String>,
}

/// Runs processing passes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Processor {
    reader: Reader,
    options: ProcessorOptions,
}

impl Processor {
    pub fn new(reader: Reader, options: ProcessorOptions) -> Processor {
        Processor { reader, options }
    }

    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    /// One full pass over an unprocessed entity.
    pub async fn process(&self, unprocessed: &Value) -> Processed {
        let problems = check_envelope(unprocessed);
        if !problems.is_empty() {
            let message = problems.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; ");
            return Processed::failed(vec![ProcessingError::new(
                "InputError",
                format!("Malformed envelope, {message}"),
            )]);
        }
        let mut entity = unprocessed.clone();
        let (location, origin) = match location_context(&entity) {
            Ok(context) => context,
            Err(error) => return Processed::failed(vec![error]),
        };

        // Pre-processing: placeholders, location annotations, normalisation.
        let mut errors = Vec::new();
        self.resolve_placeholders(&mut entity, &location, &mut errors).await;
        if !errors.is_empty() {
            return Processed::failed(errors);
        }
        annotate_location(&mut entity, &location);
        preprocess(&mut entity);

        let entity_ref = canonical_ref_of(&entity).unwrap_or_default();
        let problems = validate_entity(&entity);
        if !problems.is_empty() {
            let causes = problems.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; ");
            return Processed::failed(vec![ProcessingError::new(
                "InputError",
                format!("Policy check failed for {entity_ref}; caused by {causes}"),
            )]);
        }

        let mut children = Vec::new();
        if entity.get("kind").and_then(Value::as_str) == Some("Location") {
            children = match self.read_location(&entity, &location, &origin).await {
                Ok(children) => children,
                Err(errors) => return Processed::failed(errors),
            };
            children.retain(|child| child.entity_ref != entity_ref);
        }

        let relations = match relations_of(&entity) {
            Ok(relations) => relations,
            Err(problems) => {
                return Processed::failed(
                    problems
                        .into_iter()
                        .map(|problem| ProcessingError::new("InputError", problem.message))
                        .collect(),
                )
            }
        };

        // Rules apply to emitted children, judged by this entity's origin location.
        let mut rule_errors = Vec::new();
        for child in &children {
            let kind = child.entity.get("kind").and_then(Value::as_str).unwrap_or("");
            let spec_type = child.entity.pointer("/spec/type").and_then(Value::as_str);
            if !self.options.rules.is_allowed(kind, spec_type, &origin.kind, &origin.target) {
                let child_location = child
                    .entity
                    .pointer("/metadata/annotations")
                    .and_then(|annotations| annotations.get(MANAGED_BY_LOCATION))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                rule_errors.push(ProcessingError::new(
                    "NotAllowedError",
                    format!(
                        "Entity {} at {child_location}, originated at {origin}, is not of an allowed kind for that location",
                        child.entity_ref
                    ),
                ));
            }
        }
        if !rule_errors.is_empty() {
            return Processed::failed(rule_errors);
        }

        Processed { entity: Some(entity), errors: Vec::new(), relations, children }
    }

    /// §6.7: reads every target of a Location entity into child entities.
    async fn read_location(
        &self,
        entity: &Value,
        own: &LocationRef,
        origin: &LocationRef,
    ) -> Result<Vec<Child>, Vec<ProcessingError>> {
        let spec = entity.get("spec").cloned().unwrap_or(Value::Null);
        let kind = spec.get("type").and_then(Value::as_str).unwrap_or(&own.kind).to_owned();
        let optional = spec.get("presence").and_then(Value::as_str) == Some("optional");
        if kind != own.kind && !self.options.allowed_location_types.contains(&kind) {
            return Err(vec![ProcessingError::new(
                "InputError",
                format!(
                    "Registered locations must be of an allowed type {}",
                    serde_json::to_string(&self.options.allowed_location_types).unwrap_or_default()
                ),
            )]);
        }
        let mut targets: Vec<String> = Vec::new();
        if let Some(target) = spec.get("target").and_then(Value::as_str) {
            targets.push(target.to_owned());
        }
        if let Some(more) = spec.get("targets").and_then(Value::as_array) {
            targets.extend(more.iter().filter_map(Value::as_str).map(str::to_owned));
        }
        let mut children = Vec::new();
        let mut errors = Vec::new();
        for target in targets {
            let resolved = if kind == own.kind {
                resolve_relative(&kind, &own.target, &target)
            } else {
                Ok(target.clone())
            };
            let resolved = match resolved {
                Ok(resolved) => resolved,
                Err(error) => {
                    errors.push(error);
                    continue;
                }
            };
            match self.read_target(&kind, &resolved, origin, optional).await {
                Ok(mut found) => children.append(&mut found),
                Err(mut found) => errors.append(&mut found),
            }
        }
        if errors.is_empty() {
            Ok(children)
        } else {
            Err(errors)
        }
    }

    /// Reads one `{type, target}` and parses every file it names.
    pub async fn read_target(
        &self,
        kind: &str,
        target: &str,
        origin: &LocationRef,
        optional: bool,
    ) -> Result<Vec<Child>, Vec<ProcessingError>> {
        let mut files: Vec<(LocationRef, String)> = Vec::new();
        match kind {
            "file" => {
                if target.ends_with(std::path::MAIN_SEPARATOR) {
                    return Err(vec![ProcessingError::new(
                        "InputError",
                        format!("file target {target} is a directory; name a file or a glob"),
                    )]);
                }
                let paths = self.reader.expand_file_target(target).map_err(|error| vec![error.into()])?;
                if paths.is_empty() && !optional {
                    return Err(vec![ProcessingError::new(
                        "NotFoundError",
                        format!("file {target} does not exist"),
                    )]);
                }
                for path in paths {
                    match self.reader.read_file(&path).await {
                        Ok(text) => files.push((
                            LocationRef { kind: "file".into(), target: path.display().to_string() },
                            text,
                        )),
                        Err(ReadError::NotFound(_)) if optional => {}
                        Err(error) => return Err(vec![error.into()]),
                    }
                }
            }
            "url" => match self.reader.read_url(target).await {
                Ok(text) => files.push((LocationRef { kind: "url".into(), target: target.to_owned() }, text)),
                Err(ReadError::NotFound(_)) if optional => {}
                Err(error) => return Err(vec![error.into()]),
            },
            other => {
                return Err(vec![ProcessingError::new(
                    "InputError",
                    format!("No processor was able to handle reading of {other}:{target}"),
                )])
            }
        }
        let mut children = Vec::new();
        let mut errors = Vec::new();
        for (location, text) in files {
            let (documents, syntax_errors) = parse_descriptor(&text);
            for error in syntax_errors {
                errors.push(ProcessingError {
                    name: "InputError".into(),
                    message: format!(
                        "YAML error at {location}, line {} column {}: {}",
                        error.line, error.column, error.message
                    ),
                    location: Some(format!("{}:{}", location.target, error.line)),
                });
            }
            for document in documents {
                let mut entity = document.value;
                let problems = check_envelope(&entity);
                if !problems.is_empty() {
                    let message = problems.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; ");
                    errors.push(ProcessingError {
                        name: "InputError".into(),
                        message: format!(
                            "Malformed entity envelope at {location} line {}, {message}",
                            document.line
                        ),
                        location: Some(format!("{}:{}", location.target, document.line)),
                    });
                    continue;
                }
                set_annotation(&mut entity, MANAGED_BY_LOCATION, &location.to_string());
                set_annotation(&mut entity, MANAGED_BY_ORIGIN_LOCATION, &origin.to_string());
                let Some(entity_ref) = canonical_ref_of(&entity) else { continue };
                children.push(Child::new(entity, entity_ref, Some(location.to_string())));
            }
        }
        if errors.is_empty() {
            Ok(children)
        } else {
            Err(errors)
        }
    }

    /// §6.6 PlaceholderProcessor: `$text`, `$json`, `$yaml` relative to the entity's location.
    pub async fn resolve_placeholders(
        &self,
        entity: &mut Value,
        location: &LocationRef,
        errors: &mut Vec<ProcessingError>,
    ) {
        // Collect pointers first, then resolve: keeps the async reads out of the tree walk.
        let mut found: Vec<(String, String, String)> = Vec::new();
        collect_placeholders(entity, String::new(), &mut found);
        for (pointer, kind, target) in found {
            let text = match self.read_placeholder_target(location, &target).await {
                Ok(text) => text,
                Err(error) => {
                    errors.push(ProcessingError::new(
                        "InputError",
                        format!("Placeholder ${kind} could not read location {target}, {}", error.message),
                    ));
                    continue;
                }
            };
            let value = match kind.as_str() {
                "text" => Value::String(text),
                "json" => match serde_json::from_str(&text) {
                    Ok(value) => value,
                    Err(error) => {
                        errors.push(ProcessingError::new(
                            "InputError",
                            format!("Placeholder $json failed to parse JSON data at {target}, {error}"),
                        ));
                        continue;
                    }
                },
                _ => {
                    let (documents, syntax_errors) = parse_descriptor_any(&text);
                    if let Some(error) = syntax_errors {
                        errors.push(ProcessingError::new(
                            "InputError",
                            format!("Placeholder $yaml failed to parse YAML data at {target}, {error}"),
                        ));
                        continue;
                    }
                    if documents.len() != 1 {
                        errors.push(ProcessingError::new(
                            "InputError",
                            format!("Placeholder $yaml expected to find exactly one document of data at {target}, found {}", documents.len()),
                        ));
                        continue;
                    }
                    documents.into_iter().next().unwrap_or(Value::Null)
                }
            };
            if let Some(slot) = entity.pointer_mut(&pointer) {
                *slot = value;
            }
        }
    }

    async fn read_placeholder_target(
        &self,
        location: &LocationRef,
        target: &str,
    ) -> Result<String, ProcessingError> {
        if let Ok(url) = Url::parse(target) {
            if matches!(url.scheme(), "http" | "https") {
                return Ok(self.reader.read_url(target).await?);
            }
        }
        match location.kind.as_str() {
            "file" => {
                let base = Path::new(&location.target).parent().unwrap_or(Path::new("/"));
                let path: PathBuf = base.join(target);
                Ok(self.reader.read_file(&path).await?)
            }
            "url" => {
                let base = Url::parse(&location.target).map_err(|error| {
                    ProcessingError::new("InputError", format!("invalid location URL: {error}"))
                })?;
                let resolved = base.join(target).map_err(|error| {
                    ProcessingError::new("InputError", format!("invalid placeholder target: {error}"))
                })?;
                Ok(self.reader.read_url(resolved.as_str()).await?)
            }
            other => Err(ProcessingError::new(
                "InputError",
                format!("Placeholders are not supported for entities from {other} locations"),
            )),
        }
    }
}

fn parse_descriptor_any(text: &str) -> (Vec<Value>, Option<String>) {
    let (documents, errors) = parse_descriptor(text);
    let error = errors.first().map(|error| format!("line {}: {}", error.line, error.message));
    (documents.into_iter().map(|document| document.value).collect(), error)
}

fn collect_placeholders(value: &Value, pointer: String, found: &mut Vec<(String, String, String)>) {
    match value {
        Value::Object(map) => {
            if map.len() == 1 {
                if let Some((key, Value::String(target))) = map.iter().next() {
                    if let Some(kind) = key.strip_prefix('$') {
                        if matches!(kind, "text" | "json" | "yaml") {
                            found.push((pointer, kind.to_owned(), target.clone()));
                            return;
                        }
                    }
                }
            }
            for (key, child) in map {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                collect_placeholders(child, format!("{pointer}/{escaped}"), found);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                collect_placeholders(child, format!("{pointer}/{index}"), found);
            }
        }
        _ => {}
    }
}

/// Reads the managed-by-location and origin annotations (required for processing).
fn location_context(entity: &Value) -> Result<(LocationRef, LocationRef), ProcessingError> {
    let annotations = entity.pointer("/metadata/annotations");
    let read = |key: &str| -> Result<LocationRef, ProcessingError> {
        let value = annotations.and_then(|a| a.get(key)).and_then(Value::as_str).ok_or_else(|| {
            ProcessingError::new("InputError", format!("Entity is missing the required annotation {key}"))
        })?;
        LocationRef::parse(value).map_err(|error| ProcessingError::new("InputError", error.message))
    };
    Ok((read(MANAGED_BY_LOCATION)?, read(MANAGED_BY_ORIGIN_LOCATION)?))
}

/// §5.1 AnnotateLocationEntityProcessor: view, edit and source URLs for `url` locations.
fn annotate_location(entity: &mut Value, location: &LocationRef) {
    if location.kind != "url" {
        return;
    }
    let Ok(url) = Url::parse(&location.target) else { return };
    let source = url.join("./").map(|dir| format!("url:{dir}")).ok();
    if !has_annotation(entity, "backstage.io/view-url") {
        set_annotation(entity, "backstage.io/view-url", &location.target);
    }
    if let Some(source) = source {
        if !has_annotation(entity, "backstage.io/source-location") {
            set_annotation(entity, "backstage.io/source-location", &source);
        }
    }
}

fn has_annotation(entity: &Value, key: &str) -> bool {
    entity.pointer("/metadata/annotations").and_then(|annotations| annotations.get(key)).is_some()
}

/// Sets an annotation, creating `metadata.annotations` when needed.
pub fn set_annotation(entity: &mut Value, key: &str, value: &str) {
    let Some(metadata) = entity.get_mut("metadata").and_then(Value::as_object_mut) else { return };
    let annotations = metadata.entry("annotations").or_insert_with(|| Value::Object(Map::new()));
    if !annotations.is_object() {
        *annotations = Value::Object(Map::new());
    }
    if let Some(annotations) = annotations.as_object_mut() {
        annotations.insert(key.to_owned(), Value::String(value.to_owned()));
    }
}

/// §6.7 relative target resolution.
fn resolve_relative(kind: &str, own_target: &str, target: &str) -> Result<String, ProcessingError> {
    match kind {
        "file" => {
            if target.starts_with('.') {
                let base = Path::new(own_target).parent().unwrap_or(Path::new("/"));
                Ok(normalize_path(&base.join(target)).display().to_string())
            } else {
                Ok(target.to_owned())
            }
        }
        "url" => {
            let base = Url::parse(own_target).map_err(|error| {
                ProcessingError::new("InputError", format!("invalid location URL {own_target}: {error}"))
            })?;
            base.join(target).map(|url| url.to_string()).map_err(|error| {
                ProcessingError::new("InputError", format!("invalid target {target}: {error}"))
            })
        }
        _ => Ok(target.to_owned()),
    }
}

/// Removes `.` and `..` components lexically (the file may not exist yet).
pub fn normalize_path(path: &Path) -> PathBuf {
    let mut result = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                result.pop();
            }
            other => result.push(other.as_os_str()),
        }
    }
    result
}

/// JSON with object keys sorted, for hashing.
pub fn stable_json(value: &Value) -> String {
    let mut out = String::new();
    write_stable(value, &mut out);
    out
}

fn write_stable(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_stable(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_stable(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The Location entity generated for a registered or configured location (reference §6.3).
pub fn generated_location_entity(location: &LocationRef) -> Value {
    let location_string = location.to_string();
    let name = format!("generated-{}", hex::encode(Sha1::digest(location_string.as_bytes())));
    json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Location",
        "metadata": {
            "name": name,
            "namespace": "default",
            "annotations": {
                MANAGED_BY_LOCATION: location_string,
                MANAGED_BY_ORIGIN_LOCATION: location_string,
            }
        },
        "spec": { "type": location.kind, "target": location.target }
    })
}

/// SHA-1 hex of a text, the hash used for unprocessed entities.
pub fn sha1_hex(text: &str) -> String {
    hex::encode(Sha1::digest(text.as_bytes()))
}
