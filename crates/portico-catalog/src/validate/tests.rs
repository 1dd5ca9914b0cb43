use serde_json::{json, Value};

use crate::validate::{check_envelope, preprocess, validate_entity};

const LEARN_MORE: &str =
    " To learn more about the entity file format, visit https://backstage.io/docs/features/software-catalog/descriptor-format";

/// Validates `entity` and compares the problems, one `field: message` per line, with the
/// long "learn more" suffix of format messages trimmed.
fn check(entity: Value, expected: &[&str]) {
    let actual: Vec<String> = validate_entity(&entity)
        .into_iter()
        .map(|problem| {
            let message = problem.message.strip_suffix(LEARN_MORE).unwrap_or(&problem.message);
            format!("{}: {message}", problem.field)
        })
        .collect();
    assert_eq!(actual, expected, "validating {entity:#}");
}

/// A valid Component to start each case from; `edit` changes it.
fn component(edit: impl FnOnce(&mut Value)) -> Value {
    let mut entity = json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": "billing-api", "namespace": "default"},
        "spec": {"type": "service", "lifecycle": "production", "owner": "team-a"}
    });
    edit(&mut entity);
    entity
}

#[test]
fn every_builtin_kind_validates() {
    let cases = [
        json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {"name": "a"},
               "spec": {"type": "service", "lifecycle": "production", "owner": "team-a",
                        "system": "s", "subcomponentOf": "c", "providesApis": ["x"], "consumesApis": [],
                        "dependsOn": ["resource:db"], "dependencyOf": ["component:x"]}}),
        json!({"apiVersion": "backstage.io/v1beta1", "kind": "API", "metadata": {"name": "a"},
               "spec": {"type": "openapi", "lifecycle": "production", "owner": "team-a", "definition": "openapi: 3.0.0"}}),
        json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Resource", "metadata": {"name": "a"},
               "spec": {"type": "database", "owner": "team-a", "dependsOn": ["component:x"]}}),
        json!({"apiVersion": "backstage.io/v1alpha1", "kind": "System", "metadata": {"name": "a"},
               "spec": {"owner": "team-a", "domain": "d"}}),
        json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Domain", "metadata": {"name": "a"},
               "spec": {"owner": "team-a", "subdomainOf": "d"}}),
        json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Group", "metadata": {"name": "a"},
               "spec": {"type": "team", "children": [], "profile": {"displayName": "A"}}}),
        json!({"apiVersion": "backstage.io/v1alpha1", "kind": "User", "metadata": {"name": "jdoe"},
               "spec": {"memberOf": ["team-a"]}}),
        json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Location", "metadata": {"name": "a"},
               "spec": {"type": "url", "targets": ["https://example.com/a.yaml"], "presence": "optional"}}),
        json!({"apiVersion": "scaffolder.backstage.io/v1beta3", "kind": "Template", "metadata": {"name": "a"},
               "spec": {"type": "service", "owner": "team-a",
                        "parameters": [{"properties": {"name": {"type": "string"}}}],
                        "steps": [{"id": "fetch", "action": "fetch:plain", "if": true}],
                        "output": {"links": [{"url": "https://x"}], "extra": "text"}}}),
    ];
    for entity in cases {
        check(entity, &[]);
    }
}

#[test]
fn each_kind_has_its_required_fields() {
    let missing = |api_version: &str, kind: &str, expected: &[&str]| {
        check(
            json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "a"}, "spec": {}}),
            expected,
        );
    };
    missing(
        "backstage.io/v1alpha1",
        "Component",
        &[
            "spec.type: /spec must have required property 'type' - missingProperty: type",
            "spec.lifecycle: /spec must have required property 'lifecycle' - missingProperty: lifecycle",
            "spec.owner: /spec must have required property 'owner' - missingProperty: owner",
        ],
    );
    missing(
        "backstage.io/v1alpha1",
        "API",
        &[
            "spec.type: /spec must have required property 'type' - missingProperty: type",
            "spec.lifecycle: /spec must have required property 'lifecycle' - missingProperty: lifecycle",
            "spec.owner: /spec must have required property 'owner' - missingProperty: owner",
            "spec.definition: /spec must have required property 'definition' - missingProperty: definition",
        ],
    );
    missing(
        "backstage.io/v1alpha1",
        "Resource",
        &[
            "spec.type: /spec must have required property 'type' - missingProperty: type",
            "spec.owner: /spec must have required property 'owner' - missingProperty: owner",
        ],
    );
    missing(
        "backstage.io/v1alpha1",
        "System",
        &["spec.owner: /spec must have required property 'owner' - missingProperty: owner"],
    );
    missing(
        "backstage.io/v1alpha1",
        "Domain",
        &["spec.owner: /spec must have required property 'owner' - missingProperty: owner"],
    );
    missing(
        "backstage.io/v1alpha1",
        "Group",
        &[
            "spec.type: /spec must have required property 'type' - missingProperty: type",
            "spec.children: /spec must have required property 'children' - missingProperty: children",
        ],
    );
    missing(
        "backstage.io/v1alpha1",
        "User",
        &["spec.memberOf: /spec must have required property 'memberOf' - missingProperty: memberOf"],
    );
    missing("backstage.io/v1alpha1", "Location", &[]);
    missing(
        "scaffolder.backstage.io/v1beta3",
        "Template",
        &[
            "spec.type: /spec must have required property 'type' - missingProperty: type",
            "spec.steps: /spec must have required property 'steps' - missingProperty: steps",
        ],
    );
}

#[test]
fn spec_is_required_by_every_kind() {
    check(
        component(|entity| {
            entity.as_object_mut().unwrap().remove("spec");
        }),
        &["spec: <root> must have required property 'spec' - missingProperty: spec"],
    );
}

#[test]
fn kind_schema_type_errors() {
    check(
        component(|entity| {
            entity["spec"]["owner"] = json!({"kind": "Group", "name": "a"});
            entity["spec"]["providesApis"] = json!(["a", 3, ""]);
            entity["spec"]["type"] = json!("");
        }),
        &[
            "spec.type: /spec/type must NOT have fewer than 1 characters - limit: 1",
            "spec.owner: /spec/owner must be string - type: string",
            "spec.providesApis.1: /spec/providesApis/1 must be string - type: string",
            "spec.providesApis.2: /spec/providesApis/2 must NOT have fewer than 1 characters - limit: 1",
        ],
    );
    check(
        json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Location", "metadata": {"name": "a"},
               "spec": {"presence": "sometimes"}}),
        &["spec.presence: /spec/presence must be equal to one of the allowed values - allowedValues: required,optional"],
    );
    check(
        json!({"apiVersion": "scaffolder.backstage.io/v1beta3", "kind": "Template", "metadata": {"name": "a"},
               "spec": {"type": "service", "parameters": "x", "steps": [{"if": 1}], "output": {"extra": 1}}}),
        &[
            "spec.parameters: /spec/parameters must match exactly one schema in oneOf - passingSchemas: null",
            "spec.steps.0.action: /spec/steps/0 must have required property 'action' - missingProperty: action",
            "spec.steps.0.if: /spec/steps/0/if must be boolean,string - type: boolean,string",
            "spec.output.extra: /spec/output/extra must be string - type: string",
        ],
    );
}

#[test]
fn unknown_kinds_and_versions_are_not_recognized() {
    let not_recognized = |entity_ref: &str| {
        format!("kind: No processor recognized the entity {entity_ref} as valid, possibly caused by a foreign kind or apiVersion")
    };
    check(
        component(|entity| entity["kind"] = json!("component")),
        &[&not_recognized("component:default/billing-api")],
    );
    check(
        component(|entity| entity["kind"] = json!("Widget")),
        &[&not_recognized("widget:default/billing-api")],
    );
    check(
        component(|entity| entity["apiVersion"] = json!("backstage.io/v2")),
        &[&not_recognized("component:default/billing-api")],
    );
    check(
        component(|entity| entity["apiVersion"] = json!("backstage.io/v1beta2")),
        &[&not_recognized("component:default/billing-api")],
    );
    check(
        json!({"apiVersion": "backstage.io/v1beta2", "kind": "Template", "metadata": {"name": "T", "namespace": "ns"},
               "spec": {"type": "service", "steps": []}}),
        &[&not_recognized("template:ns/t")],
    );
}

#[test]
fn foreign_root_fields_are_rejected() {
    check(
        component(|entity| {
            entity["relations"] = json!([]);
            entity["status"] = json!({});
            entity["extra"] = json!(1);
        }),
        &["relations: Unknown field relations", "status: Unknown field status", "extra: Unknown field extra"],
    );
}

#[test]
fn names() {
    let name = |value: Value| component(|entity| entity["metadata"]["name"] = value);
    let invalid = |found: &str| {
        format!("metadata.name: \"metadata.name\" is not valid; expected a string that is sequences of [a-zA-Z0-9] separated by any of [-_.], at most 63 characters in total but found \"{found}\".")
    };
    for valid in ["a", "a--b", "a._b", "A1", "x".repeat(63).as_str(), "1.2.3"] {
        check(name(json!(valid)), &[]);
    }
    for bad in ["x y", "-a", "a-", "a_", ".a", "ä", "x".repeat(64).as_str()] {
        check(name(json!(bad)), &[&invalid(bad)]);
    }
    check(name(json!("")), &[&invalid("")]);
    check(name(json!(7)), &[&invalid("7")]);
    check(
        component(|entity| {
            entity["metadata"].as_object_mut().unwrap().remove("name");
        }),
        &["metadata.name: metadata.name must have a value"],
    );
}

#[test]
fn namespaces() {
    let namespace = |value: &str| component(|entity| entity["metadata"]["namespace"] = json!(value));
    for valid in ["default", "a-b", "a--b", "1"] {
        check(namespace(valid), &[]);
    }
    for bad in ["Foo", "a_b", "a.b", "-a", "a-", ""] {
        check(namespace(bad), &[&format!(
            "metadata.namespace: \"metadata.namespace\" is not valid; expected a string that is sequences of [a-z0-9] separated by [-], at most 63 characters in total but found \"{bad}\"."
        )]);
    }
}

#[test]
fn api_versions_and_kinds() {
    let invalid_api_version = |found: &str| {
        format!("apiVersion: \"apiVersion\" is not valid; expected a valid prefix and/or suffix but found \"{found}\".")
    };
    for bad in ["a/b/c", "Backstage.io/v1", "backstage.io/v1-alpha", "/v1", "backstage.io/"] {
        let problems = validate_entity(&component(|entity| entity["apiVersion"] = json!(bad)));
        let first = format!("{}: {}", problems[0].field, problems[0].message);
        assert!(first.starts_with(&invalid_api_version(bad)), "{bad}: {problems:?}");
    }
    check(
        component(|entity| entity["kind"] = json!("Comp-onent")),
        &[
            "kind: \"kind\" is not valid; expected a string that is a sequence of [a-zA-Z][a-z0-9A-Z], at most 63 characters in total but found \"Comp-onent\".",
        ],
    );
    check(
        component(|entity| entity["kind"] = json!("")),
        &[
            "kind: \"kind\" is not valid; expected a string that is a sequence of [a-zA-Z][a-z0-9A-Z], at most 63 characters in total but found \"\".",
        ],
    );
}

#[test]
fn labels_annotations_tags_and_links() {
    check(
        component(|entity| {
            entity["metadata"]["labels"] = json!({"owner": "", "example.com/team": "Team_A", "bad key": "x", "v": "a b"});
            entity["metadata"]["annotations"] = json!({
                "backstage.io/managed-by-location": "url:https://x",
                "Example.com/x": "any value at all",
                "n": 5
            });
            entity["metadata"]["tags"] = json!(["java", "c++", "a:b#c", "java-", "Java", "a--b"]);
            entity["metadata"]["links"] = json!([
                {"url": "https://example.com", "title": "Home", "icon": "dashboard", "type": "docs"},
                {"url": "/relative", "title": " ", "icon": ""},
                {"title": "no url"}
            ]);
        }),
        &[
            "metadata.labels.bad key: \"labels.bad key\" is not valid; expected a valid prefix and/or suffix but found \"bad key\".",
            "metadata.labels.v: \"labels.v\" is not valid; expected a string that is sequences of [a-zA-Z0-9] separated by any of [-_.], at most 63 characters in total but found \"a b\".",
            "metadata.annotations.Example.com/x: \"annotations.Example.com/x\" is not valid; expected a valid prefix and/or suffix but found \"Example.com/x\".",
            "metadata.annotations.n: \"annotations.n\" is not valid; expected a string but found \"5\".",
            "metadata.tags.3: \"tags.3\" is not valid; expected a string that is sequences of [a-z0-9:+#] separated by [-], at most 63 characters in total but found \"java-\".",
            "metadata.tags.4: \"tags.4\" is not valid; expected a string that is sequences of [a-z0-9:+#] separated by [-], at most 63 characters in total but found \"Java\".",
            "metadata.tags.5: \"tags.5\" is not valid; expected a string that is sequences of [a-z0-9:+#] separated by [-], at most 63 characters in total but found \"a--b\".",
            "metadata.links.1.url: \"links.1.url\" is not valid; expected a string that is a valid url but found \"/relative\".",
            "metadata.links.1.title: \"links.1.title\" is not valid; expected a non empty string but found \" \".",
            "metadata.links.1.icon: \"links.1.icon\" is not valid; expected a non empty string but found \"\".",
            "metadata.links.2.url: links.2.url must have a value",
        ],
    );
}

#[test]
fn envelope_schema_errors_are_reported_with_format_problems() {
    check(
        json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
               "metadata": {"name": "a b", "title": "", "description": 3, "tags": "java"},
               "spec": {"type": "service", "lifecycle": "production", "owner": "team-a"}}),
        &[
            "metadata.title: Malformed envelope, /metadata/title must NOT have fewer than 1 characters - limit: 1",
            "metadata.description: Malformed envelope, /metadata/description must be string - type: string",
            "metadata.tags: Malformed envelope, /metadata/tags must be array - type: array",
            "metadata.name: \"metadata.name\" is not valid; expected a string that is sequences of [a-zA-Z0-9] separated by any of [-_.], at most 63 characters in total but found \"a b\".",
        ],
    );
    check(
        json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": "x", "spec": 1}),
        &[
            "metadata: Malformed envelope, /metadata must be object - type: object",
            "spec: Malformed envelope, /spec must be object - type: object",
            "metadata.name: metadata.name must have a value",
        ],
    );
    check(json!("Component"), &[": Malformed envelope, <root> must be object - type: object"]);
    // The missing apiVersion and kind are reported once, by the format policy.
    check(
        json!({}),
        &[
            "metadata: Malformed envelope, <root> must have required property 'metadata' - missingProperty: metadata",
            "apiVersion: apiVersion must have a value",
            "kind: kind must have a value",
            "metadata.name: metadata.name must have a value",
        ],
    );
}

#[test]
fn envelope_check() {
    let check = |entity: Value, expected: &[&str]| {
        let actual: Vec<String> = check_envelope(&entity)
            .into_iter()
            .map(|problem| format!("{}: {}", problem.field, problem.message))
            .collect();
        assert_eq!(actual, expected, "{entity}");
    };
    check(json!({"apiVersion": "x", "kind": "y", "metadata": {"name": "z", "other": 1}, "extra": true}), &[]);
    check(
        json!({"apiVersion": "", "kind": 3, "metadata": {"namespace": ""}}),
        &[
            "apiVersion: Malformed entity envelope, /apiVersion must NOT have fewer than 1 characters - limit: 1",
            "kind: Malformed entity envelope, /kind must be string - type: string",
            "metadata.name: Malformed entity envelope, /metadata must have required property 'name' - missingProperty: name",
            "metadata.namespace: Malformed entity envelope, /metadata/namespace must NOT have fewer than 1 characters - limit: 1",
        ],
    );
    check(json!([]), &[": Malformed entity envelope, <root> must be object - type: object"]);
}

#[test]
fn preprocess_sorts_string_arrays_and_defaults_the_namespace() {
    let check = |mut entity: Value, expected: Value| {
        preprocess(&mut entity);
        assert_eq!(entity, expected);
        assert_eq!(entity.to_string(), expected.to_string(), "key order");
    };
    check(
        json!({"metadata": {"name": "a"}, "spec": {
            "providesApis": ["b", "a", "B"], "consumesApis": ["z", "y"], "dependsOn": ["\u{ff5e}", "\u{1f600}"],
            "dependencyOf": ["b", "a"], "memberOf": ["b", "a"], "children": ["b", "a"], "members": ["b", "a"],
            "other": ["b", "a"], "mixed": ["b", 1]}}),
        json!({"metadata": {"namespace": "default", "name": "a"}, "spec": {
            "providesApis": ["B", "a", "b"], "consumesApis": ["y", "z"], "dependsOn": ["\u{1f600}", "\u{ff5e}"],
            "dependencyOf": ["a", "b"], "memberOf": ["a", "b"], "children": ["a", "b"], "members": ["a", "b"],
            "other": ["b", "a"], "mixed": ["b", 1]}}),
    );
    check(
        json!({"metadata": {"name": "a", "namespace": ""}, "spec": {"children": ["b", 1, "a"]}}),
        json!({"metadata": {"name": "a", "namespace": ""}, "spec": {"children": ["b", 1, "a"]}}),
    );
    check(json!({"metadata": 1, "spec": []}), json!({"metadata": 1, "spec": []}));
    check(json!("x"), json!("x"));
}

#[test]
fn relations_and_status_use_the_common_schema() {
    check(
        component(|entity| {
            entity["relations"] = json!([{"type": "owned by", "targetRef": ""}, {"type": "ownedBy", "targetRef": "group:default/a"}]);
            entity["status"] = json!({"items": [{"type": "x", "level": "fatal", "message": "m"}]});
        }),
        &[
            "relations.0.type: Malformed envelope, /relations/0/type must match pattern \"^\\w+$\" - pattern: ^\\w+$",
            "relations.0.targetRef: Malformed envelope, /relations/0/targetRef must NOT have fewer than 1 characters - limit: 1",
            "status.items.0.level: Malformed envelope, /status/items/0/level must be equal to one of the allowed values - allowedValues: info,warning,error",
            "relations: Unknown field relations",
            "status: Unknown field status",
        ],
    );
}
