//! Envelope check, normalisation, policies and kind validation (reference §2.4, §2.5, §4).
//!
//! Backstage stops at the first failing policy; we report every problem at once, because a
//! user fixing a descriptor wants the whole list. To keep that list readable, one cause gives
//! one problem: when a policy check (unknown root field, field format) already reported a
//! field, schema errors about the same field are dropped, and kind-schema errors are dropped
//! for fields the `Entity` schema already reported.
//!
//! The JSON Schemas are Backstage's own data files, embedded and compiled once per process.
use std::collections::HashSet;
use std::sync::LazyLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

use crate::entity_ref::{canonical_of, canonical_ref_of, DEFAULT_NAMESPACE};
use crate::problem::Problem;

/// §2.5: the cheap pre-check (apiVersion, kind, metadata.name non-empty strings, namespace
/// non-empty if present). Returns every problem found.
pub fn check_envelope(entity: &Value) -> Vec<Problem> {
    let schemas = &*SCHEMAS;
    if schemas.envelope.is_valid(entity) {
        return Vec::new();
    }
    schema_problems(&schemas.envelope, entity, "Malformed entity envelope, ")
}

/// §4.3 array sorting plus policy 2 (default namespace). Never fails; leaves odd shapes alone.
pub fn preprocess(entity: &mut Value) {
    let Some(entity) = entity.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(spec)) = entity.get_mut("spec") {
        for field in SORTED_SPEC_FIELDS {
            if let Some(Value::Array(items)) = spec.get_mut(field) {
                if items.iter().all(Value::is_string) {
                    items.sort_by(code_unit_order);
                }
            }
        }
    }
    if let Some(Value::Object(metadata)) = entity.get_mut("metadata") {
        if !metadata.contains_key("namespace") {
            // First position, where Backstage's merge puts it, so output reads the same.
            metadata.shift_insert(0, "namespace".to_owned(), Value::from(DEFAULT_NAMESPACE));
        }
    }
}

/// Policies 1, 3, 4 of §2.4 and the kind validation of §4 (JSON Schemas of
/// `backstage-schemas/`, embedded). Reports every problem, not only the first.
pub fn validate_entity(entity: &Value) -> Vec<Problem> {
    let schemas = &*SCHEMAS;
    let Value::Object(root) = entity else {
        return schema_problems(&schemas.entity, entity, MALFORMED_ENVELOPE);
    };

    let mut policy_problems = Vec::new();
    for key in root.keys() {
        if !ALLOWED_ROOT_FIELDS.contains(&key.as_str()) {
            policy_problems.push(Problem::new(key.as_str(), format!("Unknown field {key}")));
        }
    }
    check_formats(root, &mut policy_problems);

    let mut reported: HashSet<String> = policy_problems.iter().map(|problem| problem.field.clone()).collect();
    let mut problems = Vec::new();
    if !schemas.entity.is_valid(entity) {
        let envelope_problems = schema_problems(&schemas.entity, entity, MALFORMED_ENVELOPE);
        problems.extend(envelope_problems.into_iter().filter(|p| !reported.contains(&p.field)));
        reported.extend(problems.iter().map(|problem| problem.field.clone()));
    }
    problems.append(&mut policy_problems);

    let kind_problems = validate_kind(schemas, entity);
    problems.extend(kind_problems.into_iter().filter(|p| !reported.contains(&p.field)));
    problems
}

/// The `spec` arrays Backstage sorts before validation so that reordering them in a
/// descriptor does not count as a change (§4.3).
const SORTED_SPEC_FIELDS: [&str; 7] =
    ["providesApis", "consumesApis", "dependsOn", "dependencyOf", "memberOf", "children", "members"];

const ALLOWED_ROOT_FIELDS: [&str; 4] = ["apiVersion", "kind", "metadata", "spec"];

const MALFORMED_ENVELOPE: &str = "Malformed envelope, ";

/// JavaScript's default `Array.prototype.sort` compares UTF-16 code units, which differs from
/// Rust's byte (code point) order once characters beyond U+FFFF meet U+E000..U+FFFF.
fn code_unit_order(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::String(a), Value::String(b)) => a.encode_utf16().cmp(b.encode_utf16()),
        _ => std::cmp::Ordering::Equal,
    }
}

// ---------------------------------------------------------------------------------------------
// Compiled schemas.

struct Schemas {
    envelope: Validator,
    entity: Validator,
    kinds: Vec<KindValidator>,
}

/// One built-in kind. Only the kind-specific half of each kind schema (`allOf[1]`) is
/// compiled: the other half is `$ref: Entity`, which policy 1 has already checked, and
/// checking it again would report every envelope error twice.
struct KindValidator {
    kind: String,
    api_versions: Vec<String>,
    validator: Validator,
}

static SCHEMAS: LazyLock<Schemas> = LazyLock::new(compile_schemas);

const ENTITY_SCHEMA: &str = include_str!("../schemas/Entity.schema.json");
const ENVELOPE_SCHEMA: &str = include_str!("../schemas/EntityEnvelope.schema.json");
const ENTITY_META_SCHEMA: &str = include_str!("../schemas/EntityMeta.schema.json");
const COMMON_SCHEMA: &str = include_str!("../schemas/shared/common.schema.json");
const KIND_SCHEMAS: [&str; 9] = [
    include_str!("../schemas/kinds/API.v1alpha1.schema.json"),
    include_str!("../schemas/kinds/Component.v1alpha1.schema.json"),
    include_str!("../schemas/kinds/Domain.v1alpha1.schema.json"),
    include_str!("../schemas/kinds/Group.v1alpha1.schema.json"),
    include_str!("../schemas/kinds/Location.v1alpha1.schema.json"),
    include_str!("../schemas/kinds/Resource.v1alpha1.schema.json"),
    include_str!("../schemas/kinds/System.v1alpha1.schema.json"),
    include_str!("../schemas/kinds/User.v1alpha1.schema.json"),
    include_str!("../schemas/kinds/Template.v1beta3.schema.json"),
];

/// The schemas' `$id`s are bare names (`Entity`, `common`), so they are resolved against the
/// validator's default base URI; registering under the same base lets `$ref: EntityMeta` and
/// `common#relation` find them without any retrieval.
const BASE_URI: &str = "json-schema:///";

fn compile_schemas() -> Schemas {
    // The schemas are embedded constants covered by tests, so failing here is a build defect,
    // never a reaction to input.
    let parse = |text: &str| -> Value { serde_json::from_str(text).expect("embedded schema is valid JSON") };
    let entity_meta = parse(ENTITY_META_SCHEMA);
    let common = parse(COMMON_SCHEMA);
    let registry = jsonschema::Registry::new()
        .add(format!("{BASE_URI}EntityMeta"), &entity_meta)
        .and_then(|builder| builder.add(format!("{BASE_URI}common"), &common))
        .and_then(|builder| builder.prepare())
        .expect("embedded schemas register");
    let build = |schema: &Value| -> Validator {
        jsonschema::draft7::options()
            .with_registry(&registry)
            .build(schema)
            .expect("embedded schema compiles")
    };
    let envelope = build(&parse(ENVELOPE_SCHEMA));
    let entity = build(&parse(ENTITY_SCHEMA));
    let kinds = KIND_SCHEMAS
        .iter()
        .map(|text| {
            let schema = parse(text);
            let kind_part = &schema["allOf"][1];
            let strings = |enum_values: &Value| -> Vec<String> {
                enum_values
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|value| value.as_str().map(str::to_owned))
                    .collect()
            };
            let mut kinds = strings(&kind_part["properties"]["kind"]["enum"]);
            assert_eq!(kinds.len(), 1, "a kind schema names exactly one kind");
            KindValidator {
                kind: kinds.remove(0),
                api_versions: strings(&kind_part["properties"]["apiVersion"]["enum"]),
                validator: build(kind_part),
            }
        })
        .collect();
    Schemas { envelope, entity, kinds }
}

/// The kind validators of §4. A validator whose `kind`/`apiVersion` enums reject the entity
/// answers "not mine"; one whose enums accept it reports every other schema error as a hard
/// problem. Matching the enums up front is equivalent and skips running the other eight
/// validators.
fn validate_kind(schemas: &Schemas, entity: &Value) -> Vec<Problem> {
    let (Some(kind), Some(api_version)) =
        (entity.get("kind").and_then(Value::as_str), entity.get("apiVersion").and_then(Value::as_str))
    else {
        // Already reported by the envelope schema; no validator could claim it.
        return Vec::new();
    };
    let claimed = schemas.kinds.iter().find(|candidate| {
        candidate.kind == kind && candidate.api_versions.iter().any(|version| version == api_version)
    });
    match claimed {
        Some(candidate) if candidate.validator.is_valid(entity) => Vec::new(),
        Some(candidate) => schema_problems(&candidate.validator, entity, ""),
        None => {
            let entity_ref = canonical_ref_of(entity).unwrap_or_else(|| {
                let metadata = entity.get("metadata");
                let part = |key: &str| metadata.and_then(|m| m.get(key)).and_then(Value::as_str);
                canonical_of(kind, part("namespace").unwrap_or(DEFAULT_NAMESPACE), part("name").unwrap_or(""))
            });
            vec![Problem::new(
                "kind",
                format!(
                    "No processor recognized the entity {entity_ref} as valid, possibly caused by a foreign kind or apiVersion"
                ),
            )]
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Schema errors as problems.

/// Every schema error, shaped like Backstage's (ajv's) report:
/// `<instancePath or <root>> <message> - <param>: <value>`.
fn schema_problems(validator: &Validator, entity: &Value, prefix: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    for error in validator.iter_errors(entity) {
        push_schema_problem(&error, prefix, &mut problems);
    }
    problems
}

fn push_schema_problem(error: &ValidationError<'_>, prefix: &str, problems: &mut Vec<Problem>) {
    let pointer = error.instance_path().as_str();
    let location = if pointer.is_empty() { "<root>" } else { pointer };
    let field: String =
        error.instance_path().segments().map(|segment| segment.to_string()).collect::<Vec<_>>().join(".");
    let child = |name: &str| {
        if field.is_empty() {
            name.to_owned()
        } else {
            format!("{field}.{name}")
        }
    };
    let mut push = |field: String, message: String, params: String| {
        let params = if params.is_empty() { String::new() } else { format!(" - {params}") };
        problems.push(Problem::new(field, format!("{prefix}{location} {message}{params}")));
    };
    match error.kind() {
        // ajv reports one error per extra property, and so do we: each is its own field.
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            for property in unexpected {
                push(
                    child(property),
                    "must NOT have additional properties".to_owned(),
                    format!("additionalProperty: {property}"),
                );
            }
        }
        ValidationErrorKind::Required { property } => {
            let property = js_string(property);
            push(
                child(&property),
                format!("must have required property '{property}'"),
                format!("missingProperty: {property}"),
            );
        }
        ValidationErrorKind::Type { kind } => {
            let types = match kind {
                TypeKind::Single(single) => single.to_string(),
                TypeKind::Multiple(set) => set.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(","),
            };
            push(field, format!("must be {types}"), format!("type: {types}"));
        }
        ValidationErrorKind::MinLength { limit } => {
            push(field, format!("must NOT have fewer than {limit} characters"), format!("limit: {limit}"))
        }
        ValidationErrorKind::MaxLength { limit } => {
            push(field, format!("must NOT have more than {limit} characters"), format!("limit: {limit}"))
        }
        ValidationErrorKind::MinItems { limit } => {
            push(field, format!("must NOT have fewer than {limit} items"), format!("limit: {limit}"))
        }
        ValidationErrorKind::MaxItems { limit } => {
            push(field, format!("must NOT have more than {limit} items"), format!("limit: {limit}"))
        }
        ValidationErrorKind::Enum { options } => push(
            field,
            "must be equal to one of the allowed values".to_owned(),
            format!("allowedValues: {}", js_string(options)),
        ),
        ValidationErrorKind::Constant { expected_value } => push(
            field,
            "must be equal to constant".to_owned(),
            format!("allowedValue: {}", js_string(expected_value)),
        ),
        ValidationErrorKind::OneOfNotValid { .. } => push(
            field,
            "must match exactly one schema in oneOf".to_owned(),
            "passingSchemas: null".to_owned(),
        ),
        ValidationErrorKind::OneOfMultipleValid { .. } => {
            push(field, "must match exactly one schema in oneOf".to_owned(), String::new())
        }
        ValidationErrorKind::AnyOf { .. } => {
            push(field, "must match a schema in anyOf".to_owned(), String::new())
        }
        ValidationErrorKind::Pattern { pattern } => {
            push(field, format!("must match pattern \"{pattern}\""), format!("pattern: {pattern}"))
        }
        ValidationErrorKind::Format { format } => {
            push(field, format!("must match format \"{format}\""), format!("format: {format}"))
        }
        _ => push(field, error.to_string(), String::new()),
    }
}

/// How JavaScript's template strings show a value (`${value}`), which is how Backstage's
/// messages show the offending value: strings bare, arrays comma-joined.
fn js_string(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "null".to_owned(),
        Value::Array(items) => items.iter().map(js_string).collect::<Vec<_>>().join(","),
        Value::Object(_) => "[object Object]".to_owned(),
        other => other.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Policy 4: field formats (§2.3).

const LEARN_MORE: &str =
    "To learn more about the entity file format, visit https://backstage.io/docs/features/software-catalog/descriptor-format";

/// What a rule expects, in the words Backstage uses for it.
#[derive(Debug, Clone, Copy)]
enum Rule {
    ApiVersion,
    Kind,
    ObjectName,
    Namespace,
    PrefixedKey,
    LabelValue,
    AnnotationValue,
    Tag,
    Url,
    NonBlank,
}

impl Rule {
    fn accepts(self, value: &Value) -> bool {
        let Value::String(text) = value else {
            return false;
        };
        match self {
            Rule::ApiVersion => is_api_version(text),
            Rule::Kind => is_kind(text),
            Rule::ObjectName => is_object_name(text),
            Rule::Namespace => is_dns_label(text),
            Rule::PrefixedKey => is_prefixed_key(text),
            Rule::LabelValue => text.is_empty() || is_object_name(text),
            Rule::AnnotationValue => true,
            Rule::Tag => is_tag(text),
            Rule::Url => url::Url::parse(text).is_ok(),
            Rule::NonBlank => !text.trim().is_empty(),
        }
    }

    fn expectation(self) -> &'static str {
        match self {
            Rule::ObjectName | Rule::LabelValue => {
                "a string that is sequences of [a-zA-Z0-9] separated by any of [-_.], at most 63 characters in total"
            }
            Rule::ApiVersion | Rule::PrefixedKey => "a valid prefix and/or suffix",
            Rule::Namespace => {
                "a string that is sequences of [a-z0-9] separated by [-], at most 63 characters in total"
            }
            Rule::Tag => {
                "a string that is sequences of [a-z0-9:+#] separated by [-], at most 63 characters in total"
            }
            Rule::AnnotationValue => "a string",
            Rule::Kind => {
                "a string that is a sequence of [a-zA-Z][a-z0-9A-Z], at most 63 characters in total"
            }
            Rule::Url => "a string that is a valid url",
            Rule::NonBlank => "a non empty string",
        }
    }
}

/// Collects format problems. `field` is the dotted path into the entity; `label` is the name
/// Backstage uses in its message (`labels.<key>` rather than `metadata.labels.<key>`).
struct FormatCheck<'a> {
    problems: &'a mut Vec<Problem>,
}

impl FormatCheck<'_> {
    fn require(&mut self, field: &str, label: &str, value: Option<&Value>, rule: Rule) {
        match value {
            None | Some(Value::Null) => {
                self.problems.push(Problem::new(field, format!("{label} must have a value")));
            }
            Some(value) => self.check(field, label, value, rule),
        }
    }

    fn optional(&mut self, field: &str, label: &str, value: Option<&Value>, rule: Rule) {
        if let Some(value) = value {
            self.check(field, label, value, rule);
        }
    }

    fn check(&mut self, field: &str, label: &str, value: &Value, rule: Rule) {
        if rule.accepts(value) {
            return;
        }
        self.problems.push(Problem::new(
            field,
            format!(
                "\"{label}\" is not valid; expected {} but found \"{}\". {LEARN_MORE}",
                rule.expectation(),
                js_string(value)
            ),
        ));
    }
}

fn check_formats(root: &serde_json::Map<String, Value>, problems: &mut Vec<Problem>) {
    let mut check = FormatCheck { problems };
    check.require("apiVersion", "apiVersion", root.get("apiVersion"), Rule::ApiVersion);
    check.require("kind", "kind", root.get("kind"), Rule::Kind);
    let metadata = root.get("metadata").and_then(Value::as_object);
    let meta = |key: &str| metadata.and_then(|metadata| metadata.get(key));
    check.require("metadata.name", "metadata.name", meta("name"), Rule::ObjectName);
    check.optional("metadata.namespace", "metadata.namespace", meta("namespace"), Rule::Namespace);

    if let Some(Value::Object(labels)) = meta("labels") {
        for (key, value) in labels {
            let (field, label) = (format!("metadata.labels.{key}"), format!("labels.{key}"));
            check.check(&field, &label, &Value::String(key.clone()), Rule::PrefixedKey);
            check.check(&field, &label, value, Rule::LabelValue);
        }
    }
    if let Some(Value::Object(annotations)) = meta("annotations") {
        for (key, value) in annotations {
            let (field, label) = (format!("metadata.annotations.{key}"), format!("annotations.{key}"));
            check.check(&field, &label, &Value::String(key.clone()), Rule::PrefixedKey);
            check.check(&field, &label, value, Rule::AnnotationValue);
        }
    }
    if let Some(Value::Array(tags)) = meta("tags") {
        for (index, tag) in tags.iter().enumerate() {
            check.check(&format!("metadata.tags.{index}"), &format!("tags.{index}"), tag, Rule::Tag);
        }
    }
    if let Some(Value::Array(links)) = meta("links") {
        for (index, link) in links.iter().enumerate() {
            let part = |key: &str| link.get(key);
            for (key, rule, required) in
                [("url", Rule::Url, true), ("title", Rule::NonBlank, false), ("icon", Rule::NonBlank, false)]
            {
                let field = format!("metadata.links.{index}.{key}");
                let label = format!("links.{index}.{key}");
                if required {
                    check.require(&field, &label, part(key), rule);
                } else {
                    check.optional(&field, &label, part(key), rule);
                }
            }
        }
    }
}

/// `<suffix>` or `<dns-subdomain>/<suffix>`, suffix 1–63 ASCII alphanumerics.
fn is_api_version(text: &str) -> bool {
    let (prefix, suffix) = match text.split_once('/') {
        Some((prefix, suffix)) => (Some(prefix), suffix),
        None => (None, text),
    };
    let suffix_ok = (1..=63).contains(&suffix.len()) && suffix.bytes().all(|b| b.is_ascii_alphanumeric());
    suffix_ok && prefix.is_none_or(is_dns_subdomain)
}

/// 1–63 characters, a letter then letters or digits.
fn is_kind(text: &str) -> bool {
    let bytes = text.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes[0].is_ascii_alphabetic()
        && bytes.iter().all(u8::is_ascii_alphanumeric)
}

/// 1–63 characters, alphanumeric at both ends, `-` `_` `.` allowed (even in runs) inside.
fn is_object_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    bytes.len() <= 63
        && first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// 1–63 characters of `[a-z0-9-]`, no `-` at either end.
fn is_dns_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    bytes.len() <= 63
        && *first != b'-'
        && *last != b'-'
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

/// 1–253 characters of dot-separated DNS labels.
fn is_dns_subdomain(text: &str) -> bool {
    (1..=253).contains(&text.len()) && text.split('.').all(is_dns_label)
}

/// `<object-name>` or `<dns-subdomain>/<object-name>` (label and annotation keys).
fn is_prefixed_key(text: &str) -> bool {
    match text.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_object_name(name),
        None => is_object_name(text),
    }
}

/// 1–63 characters of `[a-z0-9:+#]` in groups joined by single `-`.
fn is_tag(text: &str) -> bool {
    (1..=63).contains(&text.len())
        && text.split('-').all(|group| {
            !group.is_empty()
                && group
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b':' | b'+' | b'#'))
        })
}

#[cfg(test)]
mod tests;
