use serde_json::{json, Value};

use crate::relations::relations_of;

/// Compares relations as `source type target` lines, or problems as `error field: message`.
fn check(entity: Value, expected: &[&str]) {
    let actual: Vec<String> = match relations_of(&entity) {
        Ok(relations) => relations
            .into_iter()
            .map(|relation| format!("{} {} {}", relation.source, relation.kind, relation.target))
            .collect(),
        Err(problems) => problems
            .into_iter()
            .map(|problem| format!("error {}: {}", problem.field, problem.message))
            .collect(),
    };
    assert_eq!(actual, expected, "relations of {entity:#}");
}

fn entity(kind: &str, namespace: Option<&str>, spec: Value) -> Value {
    let mut metadata = json!({"name": "Me"});
    if let Some(namespace) = namespace {
        metadata["namespace"] = json!(namespace);
    }
    json!({"apiVersion": "backstage.io/v1alpha1", "kind": kind, "metadata": metadata, "spec": spec})
}

#[test]
fn component_fields() {
    check(
        entity(
            "Component",
            Some("ns"),
            json!({
                "type": "service", "lifecycle": "production",
                "owner": "Team-A",
                "system": "other/Payments",
                "subcomponentOf": "parent",
                "providesApis": ["billing", "api:x/Y"],
                "consumesApis": ["consumed"],
                "dependsOn": ["resource:db", "Component:default/lib"],
                "dependencyOf": ["component:app"]
            }),
        ),
        &[
            "api:ns/billing apiProvidedBy component:ns/me",
            "api:ns/consumed apiConsumedBy component:ns/me",
            "api:x/y apiProvidedBy component:ns/me",
            "component:default/lib dependencyOf component:ns/me",
            "component:ns/app dependsOn component:ns/me",
            "component:ns/me consumesApi api:ns/consumed",
            "component:ns/me dependencyOf component:ns/app",
            "component:ns/me dependsOn component:default/lib",
            "component:ns/me dependsOn resource:ns/db",
            "component:ns/me ownedBy group:ns/team-a",
            "component:ns/me partOf component:ns/parent",
            "component:ns/me partOf system:other/payments",
            "component:ns/me providesApi api:ns/billing",
            "component:ns/me providesApi api:x/y",
            "component:ns/parent hasPart component:ns/me",
            "group:ns/team-a ownerOf component:ns/me",
            "resource:ns/db dependencyOf component:ns/me",
            "system:other/payments hasPart component:ns/me",
        ],
    );
}

#[test]
fn api_resource_system_domain_and_template() {
    check(
        entity(
            "API",
            None,
            json!({"type": "openapi", "lifecycle": "x", "owner": "user:jdoe", "system": "s", "definition": "d"}),
        ),
        &[
            "api:default/me ownedBy user:default/jdoe",
            "api:default/me partOf system:default/s",
            "system:default/s hasPart api:default/me",
            "user:default/jdoe ownerOf api:default/me",
        ],
    );
    check(
        entity(
            "Resource",
            Some("infra"),
            json!({"type": "db", "owner": "o", "dependsOn": ["resource:disk"], "dependencyOf": ["component:default/app"]}),
        ),
        &[
            "component:default/app dependsOn resource:infra/me",
            "group:infra/o ownerOf resource:infra/me",
            "resource:infra/disk dependencyOf resource:infra/me",
            "resource:infra/me dependencyOf component:default/app",
            "resource:infra/me dependsOn resource:infra/disk",
            "resource:infra/me ownedBy group:infra/o",
        ],
    );
    check(
        entity("System", None, json!({"owner": "o", "domain": "d"})),
        &[
            "domain:default/d hasPart system:default/me",
            "group:default/o ownerOf system:default/me",
            "system:default/me ownedBy group:default/o",
            "system:default/me partOf domain:default/d",
        ],
    );
    check(
        entity("Domain", None, json!({"owner": "o", "subdomainOf": "top"})),
        &[
            "domain:default/me ownedBy group:default/o",
            "domain:default/me partOf domain:default/top",
            "domain:default/top hasPart domain:default/me",
            "group:default/o ownerOf domain:default/me",
        ],
    );
    check(
        json!({"apiVersion": "scaffolder.backstage.io/v1beta3", "kind": "Template",
               "metadata": {"name": "t"}, "spec": {"type": "service", "owner": "o", "steps": []}}),
        &["group:default/o ownerOf template:default/t", "template:default/t ownedBy group:default/o"],
    );
    check(
        json!({"apiVersion": "scaffolder.backstage.io/v1beta3", "kind": "Template",
               "metadata": {"name": "t"}, "spec": {"type": "service", "steps": []}}),
        &[],
    );
}

#[test]
fn group_and_user_fields() {
    check(
        entity(
            "Group",
            Some("org"),
            json!({"type": "team", "parent": "root", "children": ["b", "a"], "members": ["jdoe", "user:other/x"]}),
        ),
        &[
            "group:org/a childOf group:org/me",
            "group:org/b childOf group:org/me",
            "group:org/me childOf group:org/root",
            "group:org/me hasMember user:org/jdoe",
            "group:org/me hasMember user:other/x",
            "group:org/me parentOf group:org/a",
            "group:org/me parentOf group:org/b",
            "group:org/root parentOf group:org/me",
            "user:org/jdoe memberOf group:org/me",
            "user:other/x memberOf group:org/me",
        ],
    );
    check(
        entity("User", None, json!({"memberOf": ["team-a", "team-a", "Team-A"]})),
        &["group:default/team-a hasMember user:default/me", "user:default/me memberOf group:default/team-a"],
    );
}

#[test]
fn locations_and_unknown_kinds_have_no_relations() {
    check(entity("Location", None, json!({"type": "url", "target": "https://x"})), &[]);
    check(entity("Widget", None, json!({"owner": "o"})), &[]);
    check(entity("component", None, json!({"owner": "o"})), &[]);
    check(entity("Component", None, json!(null)), &[]);
    check(entity("Component", None, json!({"owner": null})), &[]);
}

#[test]
fn dependencies_need_an_explicit_kind() {
    check(
        entity("Component", None, json!({"owner": "o", "dependsOn": ["db", "resource:ok"], "dependencyOf": ["app"]})),
        &[
            "error spec.dependsOn.0: Entity reference \"db\" had missing or empty kind (e.g. did not start with \"component:\" or similar)",
            "error spec.dependencyOf.0: Entity reference \"app\" had missing or empty kind (e.g. did not start with \"component:\" or similar)",
        ],
    );
}

#[test]
fn bad_references_are_problems() {
    check(
        entity("Component", None, json!({"owner": "group:", "system": ["x"]})),
        &[
            "error spec.owner: Entity reference \"group:\" was not on the form [<kind>:][<namespace>/]<name>",
            "error spec.system: Entity reference must be a string or an object, got array",
        ],
    );
    check(
        json!({"kind": "Component", "metadata": {}}),
        &["error : Entity has no kind or metadata.name to relate from"],
    );
}

#[test]
fn compound_references_are_accepted() {
    check(
        entity("Component", None, json!({"owner": {"kind": "User", "name": "jdoe"}})),
        &["component:default/me ownedBy user:default/jdoe", "user:default/jdoe ownerOf component:default/me"],
    );
}
