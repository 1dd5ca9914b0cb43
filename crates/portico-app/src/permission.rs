//! Permissions as data: an ordered list of rules read from a YAML policy file, each matching
//! permissions (by name, action or resource type) and callers (by user or group ref), deciding
//! allow, deny, or allow under conditions with Backstage's catalog rules and criteria grammar
//! (`IS_ENTITY_OWNER`, `IS_ENTITY_KIND`, `HAS_ANNOTATION`, `HAS_LABEL`, `HAS_METADATA`,
//! `HAS_SPEC`; `allOf` / `anyOf` / `not`). The first matching rule decides; no match denies.

use portico_query::filter::{Condition, Filter};
use serde_json::Value;

use crate::identity::Identity;

/// A permission being checked: its name, action and resource type (reference §C).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    pub name: &'static str,
    /// `create`, `read`, `update`, `delete`, or empty for none.
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
pub const LOCATION_READ: Permission =
    Permission { name: "catalog.location.read", action: "read", resource_type: None };
pub const LOCATION_ANALYZE: Permission =
    Permission { name: "catalog.location.analyze", action: "", resource_type: None };
pub const ENTITY_CREATE: Permission =
    Permission { name: "catalog.entity.create", action: "create", resource_type: None };
pub const ENTITY_VALIDATE: Permission =
    Permission { name: "catalog.entity.validate", action: "", resource_type: None };
pub const AUDIT_READ: Permission =
    Permission { name: "portico.audit.read", action: "read", resource_type: None };
pub const POLICY_MANAGE: Permission =
    Permission { name: "portico.policy.manage", action: "update", resource_type: None };
pub const TASK_CREATE: Permission =
    Permission { name: "scaffolder.task.create", action: "create", resource_type: None };
/// A task resource: conditions (`IS_TASK_OWNER`) are met by the task's creator.
pub const TASK_READ: Permission =
    Permission { name: "scaffolder.task.read", action: "read", resource_type: Some("scaffolder-task") };
pub const TASK_CANCEL: Permission =
    Permission { name: "scaffolder.task.cancel", action: "", resource_type: Some("scaffolder-task") };
/// Decided once per run for the initiator; conditions (`HAS_ACTION_ID`, `HAS_*_PROPERTY`) are
/// met by each step's action id and rendered input.
pub const ACTION_EXECUTE: Permission =
    Permission { name: "scaffolder.action.execute", action: "", resource_type: Some("scaffolder-action") };
/// Parameter pages and steps of a template: conditions (`HAS_TAG`) are met by the page's or
/// step's `backstage:permissions.tags`; what is refused is removed from the form and the run.
pub const TEMPLATE_PARAMETER_READ: Permission = Permission {
    name: "scaffolder.template.parameter.read",
    action: "read",
    resource_type: Some("scaffolder-template"),
};
pub const TEMPLATE_STEP_READ: Permission = Permission {
    name: "scaffolder.template.step.read",
    action: "read",
    resource_type: Some("scaffolder-template"),
};
/// The template editor (`/create/edit`).
pub const TEMPLATE_MANAGEMENT: Permission =
    Permission { name: "scaffolder.template.management", action: "", resource_type: None };

/// Every permission Portico enforces, in the order `metadata` lists them.
pub const ALL: &[Permission] = &[
    ENTITY_READ,
    ENTITY_CREATE,
    ENTITY_DELETE,
    ENTITY_REFRESH,
    ENTITY_VALIDATE,
    LOCATION_READ,
    LOCATION_CREATE,
    LOCATION_DELETE,
    LOCATION_ANALYZE,
    AUDIT_READ,
    POLICY_MANAGE,
    TASK_CREATE,
    TASK_READ,
    TASK_CANCEL,
    ACTION_EXECUTE,
    TEMPLATE_PARAMETER_READ,
    TEMPLATE_STEP_READ,
    TEMPLATE_MANAGEMENT,
];

/// The permission with this name, if Portico enforces it.
pub fn by_name(name: &str) -> Option<Permission> {
    ALL.iter().copied().find(|permission| permission.name == name)
}

/// A permission rule: its name, the resource type it applies to, a description, the JSON
/// Schema of its params (as the `metadata` endpoints list them), and its params' names in the
/// order older releases sent them positionally.
#[derive(Debug)]
pub struct RuleInfo {
    pub name: &'static str,
    pub resource_type: &'static str,
    pub description: &'static str,
    pub params_schema: &'static str,
    positional: &'static [&'static str],
}

const KEY_VALUE: &str = r#"{"type":"object","properties":{"key":{"type":"string","description":"property path"},"value":{"description":"wanted value"}},"required":["key"],"additionalProperties":false}"#;

/// Every rule Portico evaluates: the catalog's over entities, the scaffolder's over template
/// pages and steps, actions with their input, and tasks.
pub const RULES: &[RuleInfo] = &[
    RuleInfo {
        name: "HAS_ANNOTATION",
        resource_type: "catalog-entity",
        description: "the entity has this annotation (with this value, when one is given)",
        params_schema: r#"{"type":"object","properties":{"annotation":{"type":"string","description":"annotation key"},"value":{"type":"string","description":"wanted value"}},"required":["annotation"],"additionalProperties":false}"#,
        positional: &["annotation", "value"],
    },
    RuleInfo {
        name: "HAS_LABEL",
        resource_type: "catalog-entity",
        description: "the entity has this label",
        params_schema: r#"{"type":"object","properties":{"label":{"type":"string","description":"label key"}},"required":["label"],"additionalProperties":false}"#,
        positional: &["label"],
    },
    RuleInfo {
        name: "HAS_METADATA",
        resource_type: "catalog-entity",
        description: "the entity's metadata has this field (with this value, when one is given)",
        params_schema: r#"{"type":"object","properties":{"key":{"type":"string","description":"path under metadata"},"value":{"type":"string","description":"wanted value"}},"required":["key"],"additionalProperties":false}"#,
        positional: &["key", "value"],
    },
    RuleInfo {
        name: "HAS_SPEC",
        resource_type: "catalog-entity",
        description: "the entity's spec has this field (with this value, when one is given)",
        params_schema: r#"{"type":"object","properties":{"key":{"type":"string","description":"path under spec"},"value":{"type":"string","description":"wanted value"}},"required":["key"],"additionalProperties":false}"#,
        positional: &["key", "value"],
    },
    RuleInfo {
        name: "IS_ENTITY_KIND",
        resource_type: "catalog-entity",
        description: "the entity is of one of these kinds",
        params_schema: r#"{"type":"object","properties":{"kinds":{"type":"array","items":{"type":"string"},"description":"kinds, any of which matches"}},"required":["kinds"],"additionalProperties":false}"#,
        positional: &["kinds"],
    },
    RuleInfo {
        name: "IS_ENTITY_OWNER",
        resource_type: "catalog-entity",
        description: "the entity is owned by one of these refs",
        params_schema: r#"{"type":"object","properties":{"claims":{"type":"array","items":{"type":"string"},"description":"owner refs, any of which matches"}},"required":["claims"],"additionalProperties":false}"#,
        positional: &["claims"],
    },
    RuleInfo {
        name: "HAS_TAG",
        resource_type: "scaffolder-template",
        description: "the parameter page or step lists this tag under backstage:permissions.tags",
        params_schema: r#"{"type":"object","properties":{"tag":{"type":"string","description":"tag"}},"required":["tag"],"additionalProperties":false}"#,
        positional: &["tag"],
    },
    RuleInfo {
        name: "HAS_ACTION_ID",
        resource_type: "scaffolder-action",
        description: "the step runs the action with this id",
        params_schema: r#"{"type":"object","properties":{"actionId":{"type":"string","description":"action id"}},"required":["actionId"],"additionalProperties":false}"#,
        positional: &["actionId"],
    },
    RuleInfo {
        name: "HAS_PROPERTY",
        resource_type: "scaffolder-action",
        description: "the action's input has this property (with this value, when one is given)",
        params_schema: KEY_VALUE,
        positional: &["key", "value"],
    },
    RuleInfo {
        name: "HAS_BOOLEAN_PROPERTY",
        resource_type: "scaffolder-action",
        description: "the action's input has this boolean property (with this value, when one is given)",
        params_schema: KEY_VALUE,
        positional: &["key", "value"],
    },
    RuleInfo {
        name: "HAS_NUMBER_PROPERTY",
        resource_type: "scaffolder-action",
        description: "the action's input has this number property (with this value, when one is given)",
        params_schema: KEY_VALUE,
        positional: &["key", "value"],
    },
    RuleInfo {
        name: "HAS_STRING_PROPERTY",
        resource_type: "scaffolder-action",
        description: "the action's input has this string property (with this value, when one is given)",
        params_schema: KEY_VALUE,
        positional: &["key", "value"],
    },
    RuleInfo {
        name: "IS_TASK_OWNER",
        resource_type: "scaffolder-task",
        description: "the task was created by one of these users",
        params_schema: r#"{"type":"object","properties":{"createdBy":{"type":"array","items":{"type":"string"},"description":"user refs, any of which matches"}},"required":["createdBy"],"additionalProperties":false}"#,
        positional: &["createdBy"],
    },
];

fn rule_info(name: &str) -> Option<&'static RuleInfo> {
    RULES.iter().find(|rule| rule.name == name)
}

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

impl Decision {
    /// The decision for a permission on `resource_type`: conditions made of another resource
    /// type's rules cannot be met by it and refuse (Backstage rejects such a decision).
    pub fn for_resource_type(self, resource_type: Option<&str>) -> Decision {
        match (&self, resource_type) {
            (Decision::Conditional(criteria), Some(resource_type))
                if criteria
                    .rule_names()
                    .iter()
                    .any(|rule| rule_info(rule).is_some_and(|info| info.resource_type != resource_type)) =>
            {
                Decision::Deny
            }
            _ => self,
        }
    }

    /// Whether the decision allows this resource (conditions are evaluated against it).
    pub fn allows(&self, resource: &Value, identity: &Identity) -> bool {
        match self {
            Decision::Allow => true,
            Decision::Deny => false,
            Decision::Conditional(criteria) => satisfies(criteria, resource, identity),
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decision::Allow => f.write_str("allow"),
            Decision::Deny => f.write_str("deny"),
            Decision::Conditional(criteria) => write!(f, "allow if {}", criteria.to_json()),
        }
    }
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

/// Reads criteria in Backstage's grammar (reference §C.3); errors name the path (`at`).
/// Conditions may carry `resourceType`, which must be their rule's.
pub fn criteria(value: &Value, at: &str) -> Result<Criteria, String> {
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
    let Some(info) = rule_info(rule) else {
        let names: Vec<&str> = RULES.iter().map(|rule| rule.name).collect();
        return Err(format!("{at}.rule: unknown rule {rule:?}; expected one of {}", names.join(", ")));
    };
    if let Some(kind) = fields.get("resourceType") {
        if kind.as_str() != Some(info.resource_type) {
            return Err(format!("{at}.resourceType: {rule} applies to {:?}", info.resource_type));
        }
    }
    let params = match fields.get("params").cloned().unwrap_or(Value::Null) {
        // Older releases sent params positionally, in the order of each rule's schema.
        Value::Array(items) => {
            let named = info.positional.iter().map(|name| (*name).to_owned()).zip(items);
            Value::Object(named.collect())
        }
        params => params,
    };
    Ok(Criteria::Rule { rule: rule.to_owned(), params })
}

impl Criteria {
    /// The criteria as a catalog filter over search rows (Backstage's `toQuery` of each rule),
    /// so that reads are restricted inside the query: totals, facets and pages never count an
    /// entity the caller may not read. `IS_ENTITY_OWNER` without claims uses the caller's.
    pub fn to_filter(&self, identity: &Identity) -> Filter {
        fn key(key: String, value: Option<&Value>) -> Filter {
            let condition = match value.and_then(Value::as_str) {
                Some(value) => Condition::In(vec![value.to_lowercase()]),
                None => Condition::Exists(true),
            };
            Filter::Key { key: key.to_lowercase(), condition }
        }
        fn strings(value: Option<&Value>) -> Vec<String> {
            value
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_lowercase)
                .collect()
        }
        match self {
            Criteria::AllOf(items) => {
                Filter::All(items.iter().map(|item| item.to_filter(identity)).collect())
            }
            Criteria::AnyOf(items) => {
                Filter::Any(items.iter().map(|item| item.to_filter(identity)).collect())
            }
            Criteria::Not(inner) => Filter::Not(Box::new(inner.to_filter(identity))),
            Criteria::Rule { rule, params } => {
                let text = |name: &str| params.get(name).and_then(Value::as_str).unwrap_or("").to_owned();
                match rule.as_str() {
                    "IS_ENTITY_OWNER" => {
                        let claims = match params.get("claims") {
                            Some(claims) => strings(Some(claims)),
                            None => match identity {
                                Identity::User { ownership_entity_refs, .. } => {
                                    ownership_entity_refs.iter().map(|owner| owner.to_lowercase()).collect()
                                }
                                _ => Vec::new(),
                            },
                        };
                        Filter::Key { key: "relations.ownedby".into(), condition: Condition::In(claims) }
                    }
                    "IS_ENTITY_KIND" => Filter::Key {
                        key: "kind".into(),
                        condition: Condition::In(strings(params.get("kinds"))),
                    },
                    "HAS_ANNOTATION" => {
                        key(format!("metadata.annotations.{}", text("annotation")), params.get("value"))
                    }
                    "HAS_LABEL" => key(format!("metadata.labels.{}", text("label")), params.get("value")),
                    "HAS_METADATA" => key(format!("metadata.{}", text("key")), params.get("value")),
                    "HAS_SPEC" => key(format!("spec.{}", text("key")), params.get("value")),
                    _ => Filter::Any(Vec::new()),
                }
            }
        }
    }

    /// The names of the rules the criteria use.
    fn rule_names(&self) -> Vec<&str> {
        match self {
            Criteria::AllOf(items) | Criteria::AnyOf(items) => {
                items.iter().flat_map(Criteria::rule_names).collect()
            }
            Criteria::Not(inner) => inner.rule_names(),
            Criteria::Rule { rule, .. } => vec![rule.as_str()],
        }
    }

    /// The criteria in Backstage's wire form (object params, `resourceType` on each condition).
    pub fn to_json(&self) -> Value {
        match self {
            Criteria::AllOf(items) => {
                serde_json::json!({ "allOf": items.iter().map(Criteria::to_json).collect::<Vec<_>>() })
            }
            Criteria::AnyOf(items) => {
                serde_json::json!({ "anyOf": items.iter().map(Criteria::to_json).collect::<Vec<_>>() })
            }
            Criteria::Not(inner) => serde_json::json!({ "not": inner.to_json() }),
            Criteria::Rule { rule, params } => {
                let resource_type = rule_info(rule).map_or("catalog-entity", |info| info.resource_type);
                let mut condition = serde_json::json!({ "rule": rule, "resourceType": resource_type });
                if !params.is_null() {
                    condition["params"] = params.clone();
                }
                condition
            }
        }
    }
}

impl Rule {
    /// What the rule matches, in words (`any permission` when it matches everything).
    pub fn summary(&self) -> String {
        let parts: Vec<String> = [
            ("permissions", &self.permissions),
            ("actions", &self.actions),
            ("resource types", &self.resource_types),
            ("users", &self.users),
            ("groups", &self.groups),
        ]
        .into_iter()
        .filter(|(_, values)| !values.is_empty())
        .map(|(name, values)| format!("{name}: {}", values.join(", ")))
        .collect();
        if parts.is_empty() {
            "everything, for everyone".into()
        } else {
            parts.join("; ")
        }
    }

    /// Whether this rule matches a permission (by name, action and resource type, so also
    /// permissions of other plugins that Portico does not enforce itself) and the caller.
    pub fn matches(
        &self,
        name: &str,
        action: &str,
        resource_type: Option<&str>,
        identity: &Identity,
        groups: &[String],
    ) -> bool {
        let user: Option<&str> = match identity {
            Identity::User { user_entity_ref, .. } => Some(user_entity_ref),
            _ => None,
        };
        (self.permissions.is_empty() || self.permissions.iter().any(|wanted| wanted == name))
            && (self.actions.is_empty() || self.actions.iter().any(|wanted| wanted == action))
            && (self.resource_types.is_empty()
                || resource_type.is_some_and(|kind| self.resource_types.iter().any(|t| t == kind)))
            && (self.users.is_empty()
                || user.is_some_and(|user| self.users.iter().any(|u| u.eq_ignore_ascii_case(user))))
            && (self.groups.is_empty()
                || self
                    .groups
                    .iter()
                    .any(|group| groups.iter().any(|owned| owned.eq_ignore_ascii_case(group))))
    }
}

/// The policy the server starts with when `permission.policy` names no file, for the groups
/// in `permission.admins` (none matches nobody rather than everybody).
pub fn default_policy_text(admins: &[String]) -> String {
    let admins = if admins.is_empty() {
        "[group:portico/no-admins-configured]".to_owned()
    } else {
        format!("[{}]", admins.iter().map(|admin| format!("{admin:?}")).collect::<Vec<_>>().join(", "))
    };
    DEFAULT_POLICY.replace("{admins}", &admins)
}

const DEFAULT_POLICY: &str = r#"# Portico's default permission policy: the first matching rule decides, no match denies.
rules:
  - description: admins do everything
    groups: {admins}
    decision: allow
  - description: only admins read the audit log and manage the policy
    permissions: [portico.audit.read, portico.policy.manage]
    decision: deny
  - description: everyone reads
    actions: [read]
    decision: allow
  - description: everyone registers, analyzes and validates
    permissions: [catalog.location.create, catalog.entity.create, catalog.location.analyze, catalog.entity.validate]
    decision: allow
  - description: owners refresh and delete their own entities
    permissions: [catalog.entity.refresh, catalog.entity.delete]
    decision:
      conditions: { rule: IS_ENTITY_OWNER }
  - description: everyone runs software templates
    permissions: [scaffolder.task.create, scaffolder.task.cancel, scaffolder.action.execute, scaffolder.template.management]
    decision: allow
"#;

/// Reads a policy from YAML text; an error names the line and the field
/// (`line 7: rules[2].decision: expected allow, deny or {conditions: …}`).
pub fn parse_policy(text: &str) -> Result<Policy, String> {
    let (documents, errors) = portico_catalog::descriptor::parse_descriptor(text);
    if let Some(error) = errors.first() {
        return Err(format!("line {}: {}", error.line, error.message));
    }
    let Some(document) = documents.first() else { return Err("the policy is empty".into()) };
    Policy::from_value(&document.value).map_err(|error| {
        // `rules[2].decision.conditions: …` → the dotted path `rules.2.decision.conditions`.
        let field = error.split(": ").next().unwrap_or("");
        let path = field.replace('[', ".").replace(']', "");
        format!("line {}: {error}", document.line_of(&path))
    })
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
                Some(Value::Object(fields)) if fields.contains_key("conditions") => {
                    let at = format!("{at}.decision.conditions");
                    let parsed = criteria(&fields["conditions"], &at)?;
                    let permissions = strings(item.get("permissions"), &format!("{at}.permissions"))?;
                    let mut types = strings(item.get("resourceTypes"), &format!("{at}.resourceTypes"))?;
                    types.extend(
                        permissions.iter().filter_map(|name| by_name(name)?.resource_type.map(str::to_owned)),
                    );
                    if !types.is_empty() {
                        if let Some(rule) = parsed.rule_names().into_iter().find(|rule| {
                            rule_info(rule).is_some_and(|info| !types.iter().any(|t| t == info.resource_type))
                        }) {
                            return Err(format!(
                                "{at}: {rule} does not apply to the rule's resource type ({})",
                                types.join(", ")
                            ));
                        }
                    }
                    Decision::Conditional(parsed)
                }
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
        self.deciding(permission, identity, groups).map(|(_, rule)| rule)
    }

    /// Like `rule_for`, with the rule's position in the policy.
    pub fn deciding(
        &self,
        permission: Permission,
        identity: &Identity,
        groups: &[String],
    ) -> Option<(usize, &Rule)> {
        self.rules.iter().enumerate().find(|(_, rule)| {
            rule.matches(permission.name, permission.action, permission.resource_type, identity, groups)
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

/// A value by a lodash-style path (`a.b`, `list[0].name`).
fn property<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = value;
    for part in path.split(['.', '[', ']']).filter(|part| !part.is_empty()) {
        current = match current {
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            other => other.get(part)?,
        };
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
            // Scaffolder resources: a parameter page or step, `{action, input}`, `{createdBy}`.
            "HAS_TAG" => {
                let tag = params.get("tag").and_then(Value::as_str).unwrap_or("");
                entity
                    .get("backstage:permissions")
                    .and_then(|permissions| permissions.get("tags"))
                    .and_then(Value::as_array)
                    .is_some_and(|tags| tags.iter().any(|item| item.as_str() == Some(tag)))
            }
            "HAS_ACTION_ID" => {
                let id = params.get("actionId").and_then(Value::as_str);
                id.is_some() && entity.get("action").and_then(Value::as_str) == id
            }
            "HAS_PROPERTY" | "HAS_BOOLEAN_PROPERTY" | "HAS_NUMBER_PROPERTY" | "HAS_STRING_PROPERTY" => {
                let key = params.get("key").and_then(Value::as_str).unwrap_or("");
                let found = entity.get("input").and_then(|input| property(input, key));
                let typed = |value: &Value| match rule.as_str() {
                    "HAS_BOOLEAN_PROPERTY" => value.is_boolean(),
                    "HAS_NUMBER_PROPERTY" => value.is_number(),
                    "HAS_STRING_PROPERTY" => value.is_string(),
                    _ => true,
                };
                // As Backstage: the property's type first (any type for `HAS_PROPERTY`), then
                // the value when one is given (`null` included); an array matches by element.
                match (found, params.get("value")) {
                    (Some(found), _) if !typed(found) => false,
                    (Some(Value::Array(items)), Some(wanted)) => items.iter().any(|item| item == wanted),
                    (Some(found), Some(wanted)) => found == wanted,
                    (Some(_), None) => true,
                    (None, _) => false,
                }
            }
            "IS_TASK_OWNER" => {
                let creator = entity.get("createdBy").and_then(Value::as_str).unwrap_or("");
                !creator.is_empty()
                    && params.get("createdBy").and_then(Value::as_array).is_some_and(|owners| {
                        owners
                            .iter()
                            .filter_map(Value::as_str)
                            .any(|owner| owner.eq_ignore_ascii_case(creator))
                    })
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
    fn scaffolder_rules_meet_pages_steps_actions_and_tasks() {
        let check = |criteria: Value, resource: Value| {
            satisfies(&super::criteria(&criteria, "c").unwrap(), &resource, &jane())
        };
        let tagged = json!({ "title": "x", "backstage:permissions": { "tags": ["admin"] } });
        assert!(check(json!({ "rule": "HAS_TAG", "params": { "tag": "admin" } }), tagged.clone()));
        assert!(!check(json!({ "rule": "HAS_TAG", "params": { "tag": "ops" } }), tagged));
        assert!(!check(json!({ "rule": "HAS_TAG", "params": ["admin"] }), json!({ "title": "untagged" })));
        let action = json!({ "action": "publish:github", "input": { "repoUrl": "github.com?owner=o&repo=r",
            "private": true, "settings": { "retries": 3 }, "topics": ["a", "b"] } });
        assert!(check(
            json!({ "rule": "HAS_ACTION_ID", "params": { "actionId": "publish:github" } }),
            action.clone()
        ));
        assert!(!check(
            json!({ "rule": "HAS_ACTION_ID", "params": { "actionId": "fs:delete" } }),
            action.clone()
        ));
        let property = |rule: &str, key: &str, value: Option<Value>| {
            let mut params = json!({ "key": key });
            if let Some(value) = value {
                params["value"] = value;
            }
            check(json!({ "rule": rule, "params": params }), action.clone())
        };
        assert!(property("HAS_BOOLEAN_PROPERTY", "private", Some(json!(true))));
        assert!(!property("HAS_BOOLEAN_PROPERTY", "private", Some(json!(false))));
        assert!(!property("HAS_STRING_PROPERTY", "private", None), "the type must match");
        assert!(property("HAS_NUMBER_PROPERTY", "settings.retries", Some(json!(3))));
        assert!(property("HAS_STRING_PROPERTY", "repoUrl", None));
        assert!(property("HAS_PROPERTY", "topics[1]", Some(json!("b"))));
        assert!(property("HAS_PROPERTY", "topics", Some(json!("a"))), "arrays match by element");
        assert!(!property("HAS_PROPERTY", "missing", None));
        let owner = json!({ "rule": "IS_TASK_OWNER", "params": { "createdBy": ["user:default/jane"] } });
        assert!(check(owner.clone(), json!({ "createdBy": "user:default/Jane" })));
        assert!(!check(owner.clone(), json!({ "createdBy": "user:default/joe" })));
        assert!(!check(owner, json!({ "createdBy": null })));
        // The wire form names each rule's own resource type.
        let wire =
            super::criteria(&json!({ "rule": "HAS_TAG", "params": { "tag": "x" } }), "c").unwrap().to_json();
        assert_eq!(wire["resourceType"], "scaffolder-template");
    }

    #[test]
    fn conditions_of_another_resource_type_refuse() {
        let policy = policy(json!({ "rules": [
            { "actions": ["read"], "decision": { "conditions": { "not": { "rule": "IS_ENTITY_KIND", "params": { "kinds": ["resource"] } } } } },
            { "decision": "allow" },
        ] }));
        let groups = ["user:default/jane".to_owned()];
        assert!(policy.allows(ENTITY_READ, &jane(), &groups, Some(&component("group:default/other"))));
        let rule = policy.rule_for(TEMPLATE_STEP_READ, &jane(), &groups).expect("a rule");
        let decision = rule.decision.clone().for_resource_type(TEMPLATE_STEP_READ.resource_type);
        assert_eq!(decision, Decision::Deny, "catalog conditions cannot be met by a template step");
        let owner = Policy::from_value(
            &json!({ "rules": [{ "decision": { "conditions": { "rule": "IS_TASK_OWNER", "params": { "createdBy": [] } } } }] }),
        )
        .unwrap();
        let rule = owner.rule_for(TASK_READ, &jane(), &groups).expect("a rule");
        assert!(matches!(
            rule.decision.clone().for_resource_type(TASK_READ.resource_type),
            Decision::Conditional(_)
        ));
    }

    #[test]
    fn conditions_must_fit_the_rules_resource_type() {
        let error = Policy::from_value(&json!({ "rules": [{ "permissions": ["catalog.entity.delete"],
            "decision": { "conditions": { "rule": "HAS_TAG", "params": { "tag": "x" } } } }] }))
        .unwrap_err();
        assert!(error.starts_with("rules[0].decision.conditions: HAS_TAG does not apply"), "{error}");
        let error = super::criteria(
            &json!({ "rule": "HAS_TAG", "resourceType": "catalog-entity", "params": { "tag": "x" } }),
            "c",
        )
        .unwrap_err();
        assert_eq!(error, "c.resourceType: HAS_TAG applies to \"scaffolder-template\"");
        assert!(Policy::from_value(&json!({ "rules": [{ "permissions": ["scaffolder.task.read"],
            "decision": { "conditions": { "rule": "IS_TASK_OWNER", "params": { "createdBy": [] } } } }] }))
        .is_ok());
    }

    #[test]
    fn policy_text_errors_name_the_line_and_the_default_policy_parses() {
        let error = parse_policy("rules:\n  - decision: allow\n  - actions: [read]\n    decision: maybe\n")
            .unwrap_err();
        assert_eq!(error, "line 4: rules[1].decision: expected allow, deny or {conditions: …}");
        assert!(parse_policy("rules: [\n").unwrap_err().starts_with("line "));
        let policy = parse_policy(&default_policy_text(&["group:default/admins".into()])).unwrap();
        let admins = ["group:default/admins".to_owned()];
        assert!(policy.allows(POLICY_MANAGE, &jane(), &admins, None));
        assert!(!policy.allows(POLICY_MANAGE, &jane(), &[], None));
        assert!(policy.allows(ENTITY_READ, &jane(), &[], Some(&component("group:default/x"))));
        let nobody = parse_policy(&default_policy_text(&[])).unwrap();
        assert!(!nobody.allows(AUDIT_READ, &jane(), &[], None));
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
