use proptest::prelude::*;
use serde_json::json;

use crate::entity_ref::{canonical_ref_of, EntityRef, RefDefaults};

/// `expected` is `kind|namespace|name` (author's case kept) or `error: <message>`.
fn check(text: &str, defaults: RefDefaults<'_>, expected: &str) {
    let actual = match EntityRef::parse(text, defaults) {
        Ok(entity_ref) => format!("{}|{}|{}", entity_ref.kind, entity_ref.namespace, entity_ref.name),
        Err(error) => format!("error: {error}"),
    };
    assert_eq!(actual, expected, "parsing {text:?}");
}

const NONE: RefDefaults<'static> = RefDefaults { kind: None, namespace: None };
const GROUP: RefDefaults<'static> = RefDefaults { kind: Some("Group"), namespace: None };
const GROUP_IN_NS: RefDefaults<'static> = RefDefaults { kind: Some("Group"), namespace: Some("ns") };

#[test]
fn full_refs_keep_their_case() {
    check("component:default/foo", NONE, "component|default|foo");
    check("Component:Default/Foo", NONE, "Component|Default|Foo");
    check("kind:ns/name", GROUP_IN_NS, "kind|ns|name");
}

#[test]
fn missing_parts_take_defaults() {
    check("team-a", GROUP, "Group|default|team-a");
    check("team-a", GROUP_IN_NS, "Group|ns|team-a");
    check("other/team-a", GROUP_IN_NS, "Group|other|team-a");
    check("user:jdoe", GROUP_IN_NS, "user|ns|jdoe");
}

#[test]
fn slash_before_colon_makes_the_colon_part_of_the_name() {
    check("a/b:c", GROUP, "Group|a|b:c");
    check("a:b:c", NONE, "a|default|b:c");
    check("a:b/c/d", NONE, "a|b|c/d");
    check("a:b/c:d", NONE, "a|b|c:d");
}

#[test]
fn empty_parts_are_rejected() {
    let form = |text: &str| {
        format!("error: Entity reference \"{text}\" was not on the form [<kind>:][<namespace>/]<name>")
    };
    for text in ["", ":a", "a:", "/a", "a/", "k:/a", "k:ns/", ":/"] {
        check(text, GROUP, &form(text));
    }
}

#[test]
fn missing_kind_without_default_is_an_error() {
    check(
        "foo",
        NONE,
        "error: Entity reference \"foo\" had missing or empty kind (e.g. did not start with \"component:\" or similar)",
    );
    check(
        "ns/foo",
        RefDefaults { kind: None, namespace: Some("x") },
        "error: Entity reference \"ns/foo\" had missing or empty kind (e.g. did not start with \"component:\" or similar)",
    );
}

#[test]
fn canonical_lower_cases_every_part() {
    let entity_ref = EntityRef::parse("component:default/Foo", NONE).unwrap();
    assert_eq!(entity_ref.name, "Foo");
    assert_eq!(entity_ref.canonical(), "component:default/foo");
    let entity_ref = EntityRef::parse("Component:Default/Foo", NONE).unwrap();
    assert_eq!(entity_ref.canonical(), "component:default/foo");
    assert_eq!(entity_ref.to_string(), "component:default/foo");
    let unicode = EntityRef::parse("Gruppe:Straße/ÄÖÜ", NONE).unwrap();
    assert_eq!(unicode.canonical(), "gruppe:straße/äöü");
}

fn check_value(value: serde_json::Value, defaults: RefDefaults<'_>, expected: &str) {
    let actual = match EntityRef::from_value(&value, defaults) {
        Ok(entity_ref) => format!("{}|{}|{}", entity_ref.kind, entity_ref.namespace, entity_ref.name),
        Err(error) => format!("error: {error}"),
    };
    assert_eq!(actual, expected, "parsing {value}");
}

#[test]
fn compound_refs() {
    check_value(json!("user:jdoe"), GROUP, "user|default|jdoe");
    check_value(json!({"kind": "User", "namespace": "x", "name": "jdoe"}), GROUP, "User|x|jdoe");
    check_value(json!({"name": "jdoe"}), GROUP_IN_NS, "Group|ns|jdoe");
    check_value(json!({"name": "jdoe", "namespace": null}), GROUP, "Group|default|jdoe");
    check_value(
        json!({"kind": "User"}),
        GROUP,
        r#"error: Entity reference {"kind":"User"} had a missing or empty name"#,
    );
    check_value(
        json!({"name": "jdoe", "kind": ""}),
        GROUP,
        r#"error: Entity reference {"name":"jdoe","kind":""} had an invalid or empty kind"#,
    );
    check_value(
        json!({"name": "jdoe"}),
        NONE,
        r#"error: Entity reference {"name":"jdoe"} had missing or empty kind (e.g. did not start with "component:" or similar)"#,
    );
    check_value(json!(7), GROUP, "error: Entity reference must be a string or an object, got number");
}

#[test]
fn canonical_ref_of_entities() {
    let check = |entity: serde_json::Value, expected: Option<&str>| {
        assert_eq!(canonical_ref_of(&entity).as_deref(), expected, "{entity}");
    };
    check(json!({"kind": "Component", "metadata": {"name": "Foo"}}), Some("component:default/foo"));
    check(
        json!({"kind": "Component", "metadata": {"name": "Foo", "namespace": "NS"}}),
        Some("component:ns/foo"),
    );
    check(json!({"kind": "Component", "metadata": {}}), None);
    check(json!({"metadata": {"name": "foo"}}), None);
    check(json!({"kind": 1, "metadata": {"name": "foo"}}), None);
    check(json!({"kind": "Component", "metadata": {"name": "foo", "namespace": 3}}), None);
    check(json!("Component"), None);
}

proptest! {
    #[test]
    fn parse_never_panics(text in any::<String>()) {
        let _ = EntityRef::parse(&text, NONE);
        let _ = EntityRef::parse(&text, GROUP_IN_NS);
    }

    #[test]
    fn canonical_is_a_fixed_point(text in "[a-zA-Z:/._-]{0,12}|\\PC{0,12}") {
        if let Ok(entity_ref) = EntityRef::parse(&text, GROUP) {
            // Every part of a parsed ref sits where the split rules put it back, even when
            // the name holds `/` or `:`, so the canonical string is a fixed point.
            let canonical = entity_ref.canonical();
            let reparsed = EntityRef::parse(&canonical, NONE).expect("canonical form parses");
            prop_assert_eq!(reparsed.canonical(), canonical);
        }
    }
}
