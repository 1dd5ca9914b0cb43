use serde_json::{json, Value};

use crate::fields::{parse_fields, select_fields};

fn check_parse(input: &[&str], expected: &[&str]) {
    let input: Vec<String> = input.iter().map(|param| (*param).to_owned()).collect();
    assert_eq!(parse_fields(&input).unwrap(), expected, "for {input:?}");
}

fn check_parse_error(input: &[&str], expected: &str) {
    let input: Vec<String> = input.iter().map(|param| (*param).to_owned()).collect();
    assert_eq!(parse_fields(&input).unwrap_err().message, expected, "for {input:?}");
}

fn check_select(fields: &[&str], expected: Value) {
    let fields: Vec<String> = fields.iter().map(|field| (*field).to_owned()).collect();
    let selected = select_fields(&entity(), &fields);
    assert_eq!(selected, expected, "for {fields:?}");
}

fn entity() -> Value {
    json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {
            "name": "billing-api",
            "annotations": {
                "backstage.io/orphan": "true",
                "backstage.io/view-url": "https://example.com",
            },
            "tags": ["go"],
            "description": null,
        },
        "spec": {"type": "service", "owner": "team-billing"},
        "relations": [{"type": "ownedBy", "targetRef": "group:default/team-billing"}],
    })
}

#[test]
fn fields_are_split_trimmed_and_deduplicated() {
    check_parse(&[], &[]);
    check_parse(&["kind,metadata.name", "spec"], &["kind", "metadata.name", "spec"]);
    check_parse(&[" kind , ,kind", "", "spec,kind"], &["kind", "spec"]);
    check_parse(&["metadata.annotations.backstage.io/orphan"], &["metadata.annotations.backstage.io/orphan"]);
}

#[test]
fn array_fields_are_rejected() {
    check_parse_error(
        &["kind,relations[0]"],
        "Invalid field \"relations[0]\", array type fields are not supported",
    );
    check_parse_error(&[" spec.a[ "], "Invalid field \"spec.a[\", array type fields are not supported");
}

#[test]
fn selection_keeps_selected_subtrees() {
    check_select(&[], entity());
    check_select(
        &["kind", "metadata.name"],
        json!({"kind": "Component", "metadata": {"name": "billing-api"}}),
    );
    check_select(
        &["spec", "kind"],
        json!({"kind": "Component", "spec": {"type": "service", "owner": "team-billing"}}),
    );
    check_select(&["metadata.name", "metadata"], json!({"metadata": entity()["metadata"].clone()}));
    check_select(&["metadata.description"], json!({"metadata": {"description": null}}));
    check_select(&["metadata.tags"], json!({"metadata": {"tags": ["go"]}}));
    check_select(&["relations"], json!({"relations": entity()["relations"].clone()}));
}

#[test]
fn missing_paths_are_absent() {
    check_select(&["spec.system"], json!({}));
    check_select(&["nothing", "kind.sub"], json!({}));
    check_select(&["spec.system", "spec.type"], json!({"spec": {"type": "service"}}));
}

#[test]
fn dotted_keys_are_reached_by_joining_segments() {
    check_select(
        &["metadata.annotations.backstage.io/orphan"],
        json!({"metadata": {"annotations": {"backstage.io/orphan": "true"}}}),
    );
    check_select(
        &["metadata.annotations.backstage.io/orphan", "metadata.annotations.backstage.io/view-url"],
        json!({"metadata": {"annotations": {
            "backstage.io/orphan": "true",
            "backstage.io/view-url": "https://example.com",
        }}}),
    );
    check_select(&["metadata.annotations.backstage.io/missing"], json!({}));
}

#[test]
fn arrays_cannot_be_selected_into() {
    check_select(&["relations.type"], json!({}));
    check_select(&["metadata.tags.go"], json!({}));
}

#[test]
fn joined_keys_take_the_shortest_match() {
    let entity = json!({"a": {"b": 1}, "a.b": 2, "x.y": {"z": 3}});
    let select = |fields: &[&str]| {
        let fields: Vec<String> = fields.iter().map(|field| (*field).to_owned()).collect();
        select_fields(&entity, &fields)
    };
    assert_eq!(select(&["a.b"]), json!({"a": {"b": 1}}));
    assert_eq!(select(&["x.y.z"]), json!({"x.y": {"z": 3}}));
}
