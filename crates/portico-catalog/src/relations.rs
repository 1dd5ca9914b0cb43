//! Relations produced by the built-in kinds (reference §4.1, §4.2).
//!
//! Each reference field yields a pair: the forward relation from this entity to the target
//! and the reverse one from the target back. Both are produced here, while processing the
//! entity that declares the field, so a target that does not exist still gets a (dangling)
//! relation.
use serde_json::Value;

use crate::entity_ref::{canonical_ref_of, EntityRef, RefDefaults, DEFAULT_NAMESPACE};
use crate::problem::Problem;

/// One directed relation between two canonical refs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Relation {
    pub source: String,
    pub kind: String,
    pub target: String,
}

/// Every relation (both directions) the entity's own spec produces. The entity must already
/// be valid. Fails with one problem per bad reference (e.g. `dependsOn` without a kind).
pub fn relations_of(entity: &Value) -> Result<Vec<Relation>, Vec<Problem>> {
    let Some(self_ref) = canonical_ref_of(entity) else {
        return Err(vec![Problem::new("", "Entity has no kind or metadata.name to relate from")]);
    };
    let fields = match entity.get("kind").and_then(Value::as_str) {
        Some(kind) => fields_of(kind),
        None => &[],
    };
    let namespace = entity
        .get("metadata")
        .and_then(|metadata| metadata.get("namespace"))
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_NAMESPACE);
    let spec = entity.get("spec");

    let mut relations = Vec::new();
    let mut problems = Vec::new();
    for field in fields {
        let Some(value) = spec.and_then(|spec| spec.get(field.name)) else {
            continue;
        };
        let defaults = RefDefaults { kind: field.default_kind, namespace: Some(namespace) };
        let mut relate = |path: String, target: &Value| match EntityRef::from_value(target, defaults) {
            Ok(target) => {
                let target = target.canonical();
                relations.push(Relation {
                    source: self_ref.clone(),
                    kind: field.forward.to_owned(),
                    target: target.clone(),
                });
                relations.push(Relation {
                    source: target,
                    kind: field.reverse.to_owned(),
                    target: self_ref.clone(),
                });
            }
            Err(error) => problems.push(Problem::new(path, error.message)),
        };
        match (field.many, value) {
            // An absent value written as `null` (e.g. `system:` with nothing after it).
            (_, Value::Null) => {}
            (true, Value::Array(items)) => {
                for (index, item) in items.iter().enumerate() {
                    relate(format!("spec.{}.{index}", field.name), item);
                }
            }
            (_, value) => relate(format!("spec.{}", field.name), value),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    relations.sort();
    relations.dedup();
    Ok(relations)
}

/// A reference field of a kind's `spec` and the relations it produces.
#[derive(Debug)]
struct RefField {
    name: &'static str,
    /// An array of refs rather than one ref.
    many: bool,
    forward: &'static str,
    reverse: &'static str,
    /// `None` means the author must write the kind (`dependsOn`, `dependencyOf`).
    default_kind: Option<&'static str>,
}

const fn one(
    name: &'static str,
    forward: &'static str,
    reverse: &'static str,
    default_kind: Option<&'static str>,
) -> RefField {
    RefField { name, many: false, forward, reverse, default_kind }
}

const fn many(
    name: &'static str,
    forward: &'static str,
    reverse: &'static str,
    default_kind: Option<&'static str>,
) -> RefField {
    RefField { name, many: true, forward, reverse, default_kind }
}

const OWNER: RefField = one("owner", "ownedBy", "ownerOf", Some("Group"));
const SYSTEM: RefField = one("system", "partOf", "hasPart", Some("System"));
const DEPENDS_ON: RefField = many("dependsOn", "dependsOn", "dependencyOf", None);
const DEPENDENCY_OF: RefField = many("dependencyOf", "dependencyOf", "dependsOn", None);

const COMPONENT: &[RefField] = &[
    OWNER,
    SYSTEM,
    one("subcomponentOf", "partOf", "hasPart", Some("Component")),
    many("providesApis", "providesApi", "apiProvidedBy", Some("API")),
    many("consumesApis", "consumesApi", "apiConsumedBy", Some("API")),
    DEPENDS_ON,
    DEPENDENCY_OF,
];
const API: &[RefField] = &[OWNER, SYSTEM];
const RESOURCE: &[RefField] = &[OWNER, SYSTEM, DEPENDS_ON, DEPENDENCY_OF];
const SYSTEM_KIND: &[RefField] = &[OWNER, one("domain", "partOf", "hasPart", Some("Domain"))];
const DOMAIN: &[RefField] = &[OWNER, one("subdomainOf", "partOf", "hasPart", Some("Domain"))];
const GROUP: &[RefField] = &[
    one("parent", "childOf", "parentOf", Some("Group")),
    many("children", "parentOf", "childOf", Some("Group")),
    many("members", "hasMember", "memberOf", Some("User")),
];
const USER: &[RefField] = &[many("memberOf", "memberOf", "hasMember", Some("Group"))];
const TEMPLATE: &[RefField] = &[OWNER];

/// Kinds are matched exactly, as validation does: `component` is not a built-in kind.
fn fields_of(kind: &str) -> &'static [RefField] {
    match kind {
        "Component" => COMPONENT,
        "API" => API,
        "Resource" => RESOURCE,
        "System" => SYSTEM_KIND,
        "Domain" => DOMAIN,
        "Group" => GROUP,
        "User" => USER,
        "Template" => TEMPLATE,
        _ => &[],
    }
}

#[cfg(test)]
mod tests;
