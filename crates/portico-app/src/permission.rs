//! Permissions as data: an ordered list of rules read from a YAML policy file, each matching
//! permissions (by name, action or resource type) and callers (by user or group ref), deciding
//! allow, deny, or allow under conditions with Backstage's catalog rules and criteria grammar
//! (`IS_ENTITY_OWNER`, `IS_ENTITY_KIND`, `HAS_ANNOTATION`, `HAS_LABEL`, `HAS_METADATA`,
//! `HAS_SPEC`; `allOf` / `anyOf` / `not`). The first matching rule decides; no match denies.

use serde_json::Value;

use crate::identity::Identity;

/// A permission being checked: its name, action and resource type (reference §C).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    pub name: &'static str,
    pub action: &'static str,
    pub resource_type: Option<&'static str>,
}

pub const ENTITY_READ: Permission =
    Permission { name: "catalog.entity.read", action: "read", resource_type: Some("catalog-entity") };
pub const ENTITY_DELETE: Permission =
    Permission { name: "catalog.entity.delete", action: "delete", resource_type: Some("catalog-entity") };
pub const ENTITY_REFRESH: Permission =
    Permission { name: "catalog.entity.refresh", action: "update", resource_type: Some("catalog-entity") };
pub const LOCATION_CREATE: Permission =
    Permission { name: "catalog.location.create", action: "create", resource_type: None };
pub const LOCATION_DELETE: Permission =
    Permission { name: "catalog.location.delete", action: "delete", resource_type: None };

/// Criteria of a conditional decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Criteria {
    Rule { rule: String, params: Value },
    AllOf(Vec<Criteria>),
    AnyOf(Vec<Criteria>),
    Not(Box<Criteria>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Allow,
    Deny,
    Conditional(Criteria),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub description: String,
    permissions: Vec<String>,
    actions: Vec<String>,
    resource_types: Vec<String>,
    users: Vec<String>,
    groups: Vec<String>,
    pub decision: Decision,
}

/// The policy: rules in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub rules: Vec<Rule>,
}

fn strings(value: Option<&Value>, at: &str) -> Result<Vec<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(one)) => Ok(vec![one.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(|| format!("{at}: expected strings")))
            .collect(),
        Some(_) => Err(format!("{at}: expected a string or a list of strings")),
    }
}

const RULES: &[&str] =
    &["IS_ENTITY_OWNER", "IS_ENTITY_KIND", "HAS_ANNOTATION", "HAS_LABEL", "HAS_METADATA", "HAS_SPEC"];

fn criteria(value: &Value, at: &str) -> Result<Criteria, String> {
    let Value::Object(fields) = value else { return Err(format!("{at}: expected a mapping")) };
    if let Some(items) = fields.get("allOf").or_else(|| fields.get("anyOf")) {
        let Value::Array(items) = items else { return Err(format!("{at}: allOf/anyOf take a list")) };
        let parsed: Vec<Criteria> = items
            .iter()
            .enumerate()
            .map(|(index, item)| criteria(item, &format!("{at}[{index}]")))
            .collect::<Result<_, _>>()?;
        return Ok(if fields.contains_key("allOf") {
            Criteria::AllOf(parsed)
        } else {
            Criteria::AnyOf(parsed)
        });
    }
    if let Some(inner) = fields.get("not") {
        return Ok(Criteria::Not(Box::new(criteria(inner, &format!("{at}.not"))?)));
    }
    let rule = fields.get("rule").and_then(Value::as_str).ok_or_else(|| format!("{at}.rule: required"))?;
    if !RULES.contains(&rule) {
        return Err(format!("{at}.rule: unknown rule {rule:?}; expected one of {}", RULES.join(", ")));
    }
    Ok(Criteria::Rule { rule: rule.to_owned(), params: fields.get("params").cloned().unwrap_or(Value::Null) })
}

impl Policy {
    /// Reads a policy document; errors name the field (`rules[2].decision`).
    pub fn from_value(value: &Value) -> Result<Policy, String> {
        let Some(Value::Array(items)) = value.get("rules") else {
            return Err("rules: required, a list of rules".into());
        };
        let mut rules = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let at = format!("rules[{index}]");
            let decision = match item.get("decision") {
                Some(Value::String(text)) if text.eq_ignore_ascii_case("allow") => Decision::Allow,
                Some(Value::String(text)) if text.eq_ignore_ascii_case("deny") => Decision::Deny,
                Some(Value::Object(fields)) if fields.contains_key("conditions") => Decision::Conditional(
                    criteria(&fields["conditions"], &format!("{at}.decision.conditions"))?,
                ),
                _ => return Err(format!("{at}.decision: expected allow, deny or {{conditions: …}}")),
            };
            rules.push(Rule {
                description: item.get("description").and_then(Value::as_str).unwrap_or("").to_owned(),
                permissions: strings(item.get("permissions"), &format!("{at}.permissions"))?,
                actions: strings(item.get("actions"), &format!("{at}.actions"))?,
                resource_types: strings(item.get("resourceTypes"), &format!("{at}.resourceTypes"))?,
                users: strings(item.get("users"), &format!("{at}.users"))?,
                groups: strings(item.get("groups"), &format!("{at}.groups"))?,
                decision,
            });
        }
        Ok(Policy { rules })
    }

    /// The first rule matching the permission and the caller, whose groups are `groups` (its
    /// ownership refs and every group those belong to, transitively).
    pub fn rule_for(&self, permission: Permission, identity: &Identity, groups: &[String]) -> Option<&Rule> {
        let user: Option<&str> = match identity {
            Identity::User { user_entity_ref, .. } => Some(user_entity_ref),
            _ => None,
        };
        self.rules.iter().find(|rule| {
            (rule.permissions.is_empty() || rule.permissions.iter().any(|name| name == permission.name))
                && (rule.actions.is_empty() || rule.actions.iter().any(|action| action == permission.action))
                && (rule.resource_types.is_empty()
                    || permission
                        .resource_type
                        .is_some_and(|kind| rule.resource_types.iter().any(|t| t == kind)))
                && (rule.users.is_empty()
                    || user.is_some_and(|user| rule.users.iter().any(|u| u.eq_ignore_ascii_case(user))))
                && (rule.groups.is_empty()
                    || rule
                        .groups
                        .iter()
                        .any(|group| groups.iter().any(|owned| owned.eq_ignore_ascii_case(group))))
        })
    }

    /// Whether the caller may apply the permission to this entity (`None` for permissions that
    /// have no resource): conditional decisions are evaluated against it.
    pub fn allows(
        &self,
        permission: Permission,
        identity: &Identity,
        groups: &[String],
        entity: Option<&Value>,
    ) -> bool {
        match self.rule_for(permission, identity, groups).map(|rule| &rule.decision) {
            Some(Decision::Allow) => true,
            Some(Decision::Conditional(criteria)) => {
                entity.is_some_and(|entity| satisfies(criteria, entity, identity))
            }
            Some(Decision::Deny) | None => false,
        }
    }
}

fn lookup<'a>(entity: &'a Value, prefix: &str, key: &str) -> Option<&'a Value> {
    let mut current = entity.get(prefix)?;
    for part in key.split('.') {
        current = current.get(part)?;
    }
    Some(current)
}

fn matches_value(found: Option<&Value>, wanted: Option<&Value>) -> bool {
    match (found, wanted) {
        (None, _) => false,
        (Some(_), None | Some(Value::Null)) => true,
        (Some(found), Some(wanted)) => match (found, wanted) {
            (Value::String(a), Value::String(b)) => a.eq_ignore_ascii_case(b),
            (Value::Array(items), wanted) => items.iter().any(|item| matches_value(Some(item), Some(wanted))),
            (a, b) => a == b,
        },
    }
}

/// Evaluates criteria against one entity, with the caller's ownership as default claims.
pub fn satisfies(criteria: &Criteria, entity: &Value, identity: &Identity) -> bool {
    match criteria {
        Criteria::AllOf(items) => items.iter().all(|item| satisfies(item, entity, identity)),
        Criteria::AnyOf(items) => items.iter().any(|item| satisfies(item, entity, identity)),
        Criteria::Not(inner) => !satisfies(inner, entity, identity),
        Criteria::Rule { rule, params } => match rule.as_str() {
            "IS_ENTITY_OWNER" => {
                let claims: Vec<String> = match params.get("claims").and_then(Value::as_array) {
                    Some(claims) => claims.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
                    None => match identity {
                        Identity::User { ownership_entity_refs, .. } => ownership_entity_refs.clone(),
                        _ => Vec::new(),
                    },
                };
                entity.get("relations").and_then(Value::as_array).is_some_and(|relations| {
                    relations.iter().any(|relation| {
                        relation.get("type").and_then(Value::as_str) == Some("ownedBy")
                            && relation.get("targetRef").and_then(Value::as_str).is_some_and(|target| {
                                claims.iter().any(|claim| claim.eq_ignore_ascii_case(target))
                            })
                    })
                })
            }
            "IS_ENTITY_KIND" => {
                let kind = entity.get("kind").and_then(Value::as_str).unwrap_or("");
                params.get("kinds").and_then(Value::as_array).is_some_and(|kinds| {
                    kinds.iter().filter_map(Value::as_str).any(|wanted| wanted.eq_ignore_ascii_case(kind))
                })
            }
            "HAS_ANNOTATION" | "HAS_LABEL" => {
                let (map, key) = if rule == "HAS_ANNOTATION" {
                    ("annotations", "annotation")
                } else {
                    ("labels", "label")
                };
                let name = params.get(key).and_then(Value::as_str).unwrap_or("");
                let found =
                    entity.get("metadata").and_then(|metadata| metadata.get(map)).and_then(|m| m.get(name));
                matches_value(found, params.get("value"))
            }
            "HAS_METADATA" | "HAS_SPEC" => {
                let prefix = if rule == "HAS_METADATA" { "metadata" } else { "spec" };
                let key = params.get("key").and_then(Value::as_str).unwrap_or("");
                matches_value(lookup(entity, prefix, key), params.get("value"))
            }
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn jane() -> Identity {
        Identity::User {
            user_entity_ref: "user:default/jane".into(),
            ownership_entity_refs: vec!["user:default/jane".into(), "group:default/team-a".into()],
        }
    }

    fn component(owner: &str) -> Value {
        json!({ "kind": "Component", "metadata": { "name": "x", "annotations": { "a/b": "yes" }, "tags": ["t"] },
                "spec": { "type": "service" }, "relations": [{ "type": "ownedBy", "targetRef": owner }] })
    }

    fn policy(text: Value) -> Policy {
        Policy::from_value(&text).unwrap()
    }

    #[test]
    fn the_first_matching_rule_decides_and_no_match_denies() {
        let policy = policy(json!({ "rules": [
            { "groups": ["group:default/admins"], "decision": "allow" },
            { "permissions": ["catalog.entity.delete"], "decision": { "conditions": { "rule": "IS_ENTITY_OWNER" } } },
            { "actions": ["read"], "decision": "allow" },
        ] }));
        let groups = ["user:default/jane".to_owned(), "group:default/team-a".to_owned()];
        assert!(policy.allows(ENTITY_READ, &jane(), &groups, Some(&component("group:default/team-b"))));
        assert!(policy.allows(ENTITY_DELETE, &jane(), &groups, Some(&component("group:default/team-a"))));
        assert!(!policy.allows(ENTITY_DELETE, &jane(), &groups, Some(&component("group:default/team-b"))));
        assert!(!policy.allows(LOCATION_CREATE, &jane(), &groups, None), "nothing matches: deny");
        let inherited = ["group:default/team-a".to_owned(), "group:default/admins".to_owned()];
        assert!(policy.allows(LOCATION_CREATE, &jane(), &inherited, None), "admins through a parent group");
        assert!(!policy.allows(
            ENTITY_DELETE,
            &Identity::Anonymous,
            &[],
            Some(&component("group:default/team-a"))
        ));
    }

    #[test]
    fn criteria_follow_backstages_rules_and_grammar() {
        let entity = component("group:default/team-a");
        let check = |criteria: Value| satisfies(&super::criteria(&criteria, "c").unwrap(), &entity, &jane());
        assert!(check(json!({ "rule": "IS_ENTITY_KIND", "params": { "kinds": ["component"] } })));
        assert!(check(
            json!({ "rule": "HAS_ANNOTATION", "params": { "annotation": "a/b", "value": "yes" } })
        ));
        assert!(!check(
            json!({ "rule": "HAS_ANNOTATION", "params": { "annotation": "a/b", "value": "no" } })
        ));
        assert!(check(json!({ "rule": "HAS_SPEC", "params": { "key": "type", "value": "service" } })));
        assert!(check(json!({ "rule": "HAS_METADATA", "params": { "key": "tags", "value": "t" } })));
        assert!(!check(json!({ "rule": "HAS_LABEL", "params": { "label": "missing" } })));
        assert!(check(
            json!({ "allOf": [{ "rule": "IS_ENTITY_OWNER" }, { "not": { "rule": "HAS_LABEL", "params": { "label": "x" } } }] })
        ));
        assert!(!check(
            json!({ "rule": "IS_ENTITY_OWNER", "params": { "claims": ["group:default/other"] } })
        ));
    }

    #[test]
    fn invalid_policies_name_the_field() {
        let error =
            Policy::from_value(&json!({ "rules": [{ "decision": "allow" }, { "decision": "maybe" }] }))
                .unwrap_err();
        assert_eq!(error, "rules[1].decision: expected allow, deny or {conditions: …}");
        let error = Policy::from_value(
            &json!({ "rules": [{ "decision": { "conditions": { "rule": "IS_COOL" } } }] }),
        )
        .unwrap_err();
        assert!(error.starts_with("rules[0].decision.conditions.rule: unknown rule \"IS_COOL\""), "{error}");
        assert_eq!(Policy::from_value(&json!({})).unwrap_err(), "rules: required, a list of rules");
    }
}
