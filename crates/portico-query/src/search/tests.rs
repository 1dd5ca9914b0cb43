use serde_json::{json, Value};

use crate::search::{js_number_string, search_rows};

/// Checks the rows of `entity` against `(key, value, original)` triples, in order.
fn check(entity: Value, expected: &[(&str, Option<&str>, Option<&str>)]) {
    let rows = search_rows(&entity).unwrap();
    let actual: Vec<(&str, Option<&str>, Option<&str>)> =
        rows.iter().map(|row| (row.key.as_str(), row.value.as_deref(), row.original.as_deref())).collect();
    assert_eq!(actual, expected);
}

/// Checks that `entity` has (at least) these `(key, value)` rows.
fn check_contains(entity: Value, expected: &[(&str, &str)]) {
    let rows = search_rows(&entity).unwrap();
    for (key, value) in expected {
        assert!(
            rows.iter().any(|row| row.key == *key && row.value.as_deref() == Some(*value)),
            "missing ({key}, {value}) in {rows:#?}"
        );
    }
}

fn check_error(entity: Value, expected: &str) {
    assert_eq!(search_rows(&entity).unwrap_err(), expected);
}

const NAME_ROWS: [(&str, Option<&str>, Option<&str>); 2] =
    [("metadata.name", Some("n"), Some("n")), ("metadata.namespace", Some("default"), Some("default"))];

#[test]
fn string_arrays_add_element_rows() {
    let mut expected = vec![
        ("a", Some("b"), Some("b")),
        ("a.b", Some("true"), Some("true")),
        ("a", Some("c"), Some("c")),
        ("a.c", Some("true"), Some("true")),
    ];
    expected.extend(NAME_ROWS);
    check(json!({"a": ["b", "c"], "metadata": {"name": "n"}}), &expected);
}

#[test]
fn objects_and_lists_of_objects_are_flattened() {
    let mut expected = vec![
        ("a.b.c", Some("d"), Some("d")),
        ("a.e", Some("f"), Some("f")),
        ("root.list.a", Some("1"), Some("1")),
        ("root.list.a", Some("2"), Some("2")),
    ];
    expected.extend(NAME_ROWS);
    check(
        json!({
            "a": {"b": {"c": "d"}, "e": "f"},
            "root": {"list": [{"a": 1}, {"a": 2}]},
            "metadata": {"name": "n"},
        }),
        &expected,
    );
}

#[test]
fn special_keys_are_skipped_then_added() {
    check(
        json!({
            "status": {"x": 1},
            "attachments": [{"y": 2}],
            "relations": [{"type": "ownedBy", "targetRef": "group:default/Team-A"}],
            "a": "a",
            "metadata": {
                "b": "b",
                "name": "Name",
                "namespace": "NS",
                "uid": "uid-1",
                "etag": "etag",
                "c": "c",
            },
            "d": "d",
            "spec": {"status": "kept", "relations": "kept"},
        }),
        &[
            ("a", Some("a"), Some("a")),
            ("metadata.b", Some("b"), Some("b")),
            ("metadata.c", Some("c"), Some("c")),
            ("d", Some("d"), Some("d")),
            ("spec.status", Some("kept"), Some("kept")),
            ("spec.relations", Some("kept"), Some("kept")),
            ("metadata.name", Some("name"), Some("Name")),
            ("metadata.namespace", Some("ns"), Some("NS")),
            ("metadata.uid", Some("uid-1"), Some("uid-1")),
            ("relations.ownedby", Some("group:default/team-a"), Some("group:default/Team-A")),
        ],
    );
}

#[test]
fn scalars_are_stringified_like_javascript() {
    let mut expected = vec![
        ("a", Some("true"), Some("true")),
        ("b", Some("false"), Some("false")),
        ("c", Some("7"), Some("7")),
        ("d", Some("1.5"), Some("1.5")),
        ("e", None, None),
        ("f", Some("string"), Some("String")),
    ];
    expected.extend(NAME_ROWS);
    check(
        json!({"a": true, "b": false, "c": 7, "d": 1.5, "e": null, "f": "String", "metadata": {"name": "n"}}),
        &expected,
    );
}

#[test]
fn numbers_print_as_javascript_would() {
    let cases = [
        ("7", "7"),
        ("-3", "-3"),
        ("1.5", "1.5"),
        ("1.0", "1"),
        ("-0.0", "0"),
        ("0.000001", "0.000001"),
        ("0.0000001", "1e-7"),
        ("1.5e-10", "1.5e-10"),
        ("1e20", "100000000000000000000"),
        ("1e21", "1e+21"),
        ("-1.25e30", "-1.25e+30"),
        ("9007199254740993", "9007199254740992"),
        ("18446744073709551615", "18446744073709552000"),
        ("-9223372036854775808", "-9223372036854776000"),
        ("0.1", "0.1"),
        ("123456.789", "123456.789"),
    ];
    for (json_text, expected) in cases {
        let value: Value = serde_json::from_str(json_text).unwrap();
        let Value::Number(number) = value else {
            panic!("{json_text} is not a number");
        };
        assert_eq!(js_number_string(&number), expected, "for {json_text}");
    }
}

#[test]
fn keys_and_values_are_lower_cased_with_original_kept() {
    let mut expected = vec![("foo", Some("bar"), Some("BaR"))];
    expected.extend(NAME_ROWS);
    check(json!({"fOo": "BaR", "metadata": {"name": "n"}}), &expected);
}

#[test]
fn long_keys_are_dropped() {
    let long_key = "a".repeat(201);
    let max_key = "b".repeat(200);
    let mut expected = vec![(max_key.as_str(), Some("x"), Some("x"))];
    expected.extend(NAME_ROWS);
    check(json!({long_key: "x", max_key.clone(): "x", "metadata": {"name": "n"}}), &expected);
}

#[test]
fn long_values_become_null() {
    let long_value = "a".repeat(201);
    let max_value = "b".repeat(200);
    // Lengths are UTF-16 code units: 100 two-unit characters fit, 101 do not.
    let max_astral = "😀".repeat(100);
    let long_astral = "😀".repeat(101);
    let mut expected = vec![
        ("long", None, None),
        ("max", Some(max_value.as_str()), Some(max_value.as_str())),
        ("maxastral", Some(max_astral.as_str()), Some(max_astral.as_str())),
        ("longastral", None, None),
    ];
    expected.extend(NAME_ROWS);
    check(
        json!({
            "long": long_value,
            "max": max_value,
            "maxAstral": max_astral,
            "longAstral": long_astral,
            "metadata": {"name": "n"},
        }),
        &expected,
    );
}

#[test]
fn missing_namespace_defaults_and_missing_uid_is_absent() {
    check(
        json!({"apiVersion": "a", "kind": "b", "metadata": {"name": "n"}}),
        &[
            ("apiversion", Some("a"), Some("a")),
            ("kind", Some("b"), Some("b")),
            ("metadata.name", Some("n"), Some("n")),
            ("metadata.namespace", Some("default"), Some("default")),
        ],
    );
}

#[test]
fn empty_namespace_also_gets_default() {
    check(
        json!({"metadata": {"name": "n", "namespace": ""}}),
        &[
            ("metadata.name", Some("n"), Some("n")),
            ("metadata.namespace", Some(""), Some("")),
            ("metadata.namespace", Some("default"), Some("default")),
        ],
    );
}

#[test]
fn relations_add_one_row_each() {
    let mut expected = NAME_ROWS.to_vec();
    expected.extend([
        ("relations.t1", Some("k:ns/a"), Some("k:ns/a")),
        ("relations.t2", Some("k:ns/b"), Some("k:ns/b")),
    ]);
    check(
        json!({
            "relations": [
                {"type": "t1", "targetRef": "k:ns/a"},
                {"type": "t2", "targetRef": "k:ns/b"},
            ],
            "metadata": {"name": "n"},
        }),
        &expected,
    );
}

#[test]
fn exact_duplicates_are_removed_keeping_the_first() {
    let mut expected = vec![
        ("spec.list", Some("a"), Some("A")),
        ("spec.list.a", Some("true"), Some("true")),
        ("spec.nums", Some("1"), Some("1")),
        ("spec.nums.1", Some("true"), Some("true")),
        ("spec.objs.k", Some("x"), Some("X")),
        ("spec.objs.k", None, None),
    ];
    expected.extend(NAME_ROWS);
    expected.push(("relations.dependson", Some("k:ns/a"), Some("k:ns/a")));
    check(
        json!({
            "spec": {
                "list": ["A", "A"],
                "nums": [1, 1.0, "1"],
                "objs": [{"k": "X"}, {"k": "x"}, {"k": null}, {"k": null}],
            },
            "metadata": {"name": "n"},
            "relations": [
                {"type": "dependsOn", "targetRef": "k:ns/a"},
                {"type": "dependsOn", "targetRef": "k:ns/a"},
            ],
        }),
        &expected,
    );
}

#[test]
fn reference_examples() {
    check_contains(
        json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Component",
            "metadata": {
                "name": "billing-api",
                "annotations": {"backstage.io/orphan": "true"},
                "tags": ["java"],
                "links": [{"url": "https://example.com/Dash"}],
            },
            "spec": {"owner": "Group:default/Team-A"},
            "relations": [{"type": "ownedBy", "targetRef": "group:default/team-a"}],
        }),
        &[
            ("kind", "component"),
            ("metadata.annotations.backstage.io/orphan", "true"),
            ("metadata.tags", "java"),
            ("metadata.tags.java", "true"),
            ("spec.owner", "group:default/team-a"),
            ("relations.ownedby", "group:default/team-a"),
            ("metadata.links.url", "https://example.com/dash"),
        ],
    );
}

#[test]
fn keys_differing_only_in_case_are_rejected() {
    check_error(
        json!({"relations": [], "apiVersion": "a", "kind": "b", "metadata": {"name": "n", "Namespace": "ns"}}),
        "Entity has duplicate keys that vary only in casing, 'metadata.namespace'",
    );
    check_error(
        json!({
            "relations": [
                {"type": "dup", "targetRef": "k:ns/a"},
                {"type": "DUP", "targetRef": "k:ns/b"},
            ],
            "metadata": {"name": "n"},
        }),
        "Entity has duplicate keys that vary only in casing, 'relations.dup'",
    );
    check_error(
        json!({
            "metadata": {"name": "n"},
            "spec": {"owner": "o", "OWNER": "o", "lifecycle": "production", "lifeCycle": "production"},
        }),
        "Entity has duplicate keys that vary only in casing, 'spec.owner', 'spec.lifecycle'",
    );
    check_error(
        json!({"metadata": {"name": "n", "tags": ["Java", "java"]}}),
        "Entity has duplicate keys that vary only in casing, 'metadata.tags.java'",
    );
    check_error(
        json!({"metadata": {"name": "n"}, "spec": {"aB": 1, "Ab": 2}}),
        "Entity has duplicate keys that vary only in casing, 'spec.ab'",
    );
}

#[test]
fn repeated_identical_cased_keys_are_not_a_conflict() {
    let mut expected =
        vec![("spec.list.name", Some("a"), Some("a")), ("spec.list.name", Some("b"), Some("b"))];
    expected.extend(NAME_ROWS);
    check(json!({"spec": {"list": [{"Name": "a"}, {"Name": "b"}]}, "metadata": {"name": "n"}}), &expected);
}

#[test]
fn nested_arrays_share_the_path() {
    let mut expected = vec![
        ("a", Some("x"), Some("x")),
        ("a.x", Some("true"), Some("true")),
        ("a", None, None),
        ("a", Some("2"), Some("2")),
    ];
    expected.extend(NAME_ROWS);
    check(json!({"a": [["x"], [null, 2]], "metadata": {"name": "n"}}), &expected);
}
