use serde_json::json;

use super::{Template, TemplateError};

fn template(spec: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "scaffolder.backstage.io/v1beta3",
        "kind": "Template",
        "metadata": {
            "name": "Service",
            "title": "A service",
            "annotations": { "backstage.io/managed-by-location": "url:https://example.com/t/template.yaml" },
        },
        "spec": spec,
    })
}

#[test]
fn steps_get_ids_and_names_and_a_single_page_becomes_a_list() {
    let entity = template(json!({
        "type": "service",
        "parameters": { "title": "Name", "properties": { "name": { "type": "string" } } },
        "steps": [
            { "action": "fetch:template", "input": { "url": "./skeleton" } },
            { "id": "log", "name": "Say it", "action": "debug:log", "if": "${{ parameters.name }}", "backstage:permissions": { "tags": ["x"] } },
        ],
        "output": { "links": [{ "title": "Repo", "url": "${{ steps.publish.output.remoteUrl }}" }] },
        "EXPERIMENTAL_recovery": { "EXPERIMENTAL_strategy": "startOver" },
    }));
    let template = Template::from_entity(&entity).unwrap();
    assert_eq!(template.entity_ref, "template:default/service");
    assert_eq!(template.title, "A service");
    assert_eq!(template.pages.len(), 1);
    assert_eq!(
        (template.steps[0].id.as_str(), template.steps[0].name.as_str()),
        ("step-1", "fetch:template")
    );
    assert_eq!((template.steps[1].id.as_str(), template.steps[1].name.as_str()), ("log", "Say it"));
    assert_eq!(template.steps[1].condition, Some(json!("${{ parameters.name }}")));
    assert!(template.steps[1].extra.contains_key("backstage:permissions"));
    assert_eq!(template.base_url.as_deref(), Some("https://example.com/t/template.yaml"));
    assert!(template.start_over);

    let spec = template.task_spec(json!({ "name": "x" }), Default::default());
    assert!(spec.starts_over());
    let text = serde_json::to_value(&spec).unwrap();
    assert_eq!(text["templateInfo"]["entityRef"], "template:default/service");
    assert_eq!(text["steps"][1]["if"], "${{ parameters.name }}");
    assert_eq!(text["steps"][1]["backstage:permissions"]["tags"][0], "x");
    let back: super::TaskSpec = serde_json::from_value(text).unwrap();
    assert_eq!(back, spec);
}

#[test]
fn file_locations_become_file_urls() {
    let mut entity = template(json!({ "type": "service", "steps": [] }));
    entity["metadata"]["annotations"] =
        json!({ "backstage.io/managed-by-location": "file:/srv/templates/a/template.yaml" });
    let template = Template::from_entity(&entity).unwrap();
    assert_eq!(template.base_url.as_deref(), Some("file:///srv/templates/a/template.yaml"));
}

#[test]
fn problems_name_the_field() {
    let wrong_kind = json!({ "apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": { "name": "a" }, "spec": {} });
    assert!(matches!(Template::from_entity(&wrong_kind), Err(TemplateError::NotATemplate { .. })));
    let cases = [
        (json!({ "type": "service" }), "spec.steps"),
        (json!({ "type": "service", "steps": [{ "input": {} }] }), "spec.steps[0].action"),
        (json!({ "type": "service", "steps": [{ "action": "a", "if": 3 }] }), "spec.steps[0].if"),
        (json!({ "type": "service", "steps": [], "parameters": [1] }), "spec.parameters[0]"),
        (json!({ "steps": [] }), "spec.type"),
    ];
    for (spec, field) in cases {
        let error = Template::from_entity(&template(spec)).unwrap_err();
        assert!(error.to_string().contains(field), "{error} should name {field}");
    }
}
