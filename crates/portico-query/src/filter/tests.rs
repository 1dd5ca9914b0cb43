use proptest::prelude::*;
use serde_json::{json, Value};

use crate::filter::{
    matches, matches_location, parse_location_predicate, parse_predicate, parse_query_filters, Condition,
    Filter, LocationCondition, LocationField, LocationFilter,
};
use crate::search::search_rows;

fn key_in(key: &str, values: &[&str]) -> Filter {
    Filter::Key {
        key: key.to_owned(),
        condition: Condition::In(values.iter().map(|value| (*value).to_owned()).collect()),
    }
}

fn key_exists(key: &str, exists: bool) -> Filter {
    Filter::Key { key: key.to_owned(), condition: Condition::Exists(exists) }
}

fn key_prefix(key: &str, prefix: &str) -> Filter {
    Filter::Key { key: key.to_owned(), condition: Condition::HasPrefix(prefix.to_owned()) }
}

fn params(params: &[&str]) -> Vec<String> {
    params.iter().map(|param| (*param).to_owned()).collect()
}

fn check_query(input: &[&str], expected: Option<Filter>) {
    assert_eq!(parse_query_filters(&params(input)).unwrap(), expected, "for {input:?}");
}

fn check_query_error(input: &[&str], expected: &str) {
    let error = parse_query_filters(&params(input)).unwrap_err();
    assert_eq!(error.message, expected, "for {input:?}");
}

fn check_predicate(input: Value, expected: Filter) {
    assert_eq!(parse_predicate(&input).unwrap(), expected, "for {input}");
}

fn check_predicate_error(input: Value, expected: &str) {
    let error = parse_predicate(&input).unwrap_err();
    assert_eq!(error.message, expected, "for {input}");
}

#[test]
fn query_filter_syntax() {
    check_query(&[], None);
    check_query(&[""], None);
    check_query(&[" , ,"], None);
    check_query(&["kind=component"], Some(key_in("kind", &["component"])));
    check_query(
        &["kind=component,spec.type=service"],
        Some(Filter::All(vec![key_in("kind", &["component"]), key_in("spec.type", &["service"])])),
    );
    check_query(
        &["kind=user", "kind=group"],
        Some(Filter::Any(vec![key_in("kind", &["user"]), key_in("kind", &["group"])])),
    );
    check_query(&["metadata.tags.java"], Some(key_exists("metadata.tags.java", true)));
    check_query(
        &["metadata.annotations.backstage.io/orphan=true"],
        Some(key_in("metadata.annotations.backstage.io/orphan", &["true"])),
    );
    check_query(
        &["kind=user,relations.memberof=group:default/ops"],
        Some(Filter::All(vec![
            key_in("kind", &["user"]),
            key_in("relations.memberof", &["group:default/ops"]),
        ])),
    );
    check_query(&["spec.owner"], Some(key_exists("spec.owner", true)));
}

#[test]
fn query_filter_pieces_are_trimmed_and_lower_cased() {
    check_query(&["  Kind = User ,, "], Some(key_in("kind", &["user"])));
    check_query(&["key="], Some(key_in("key", &[""])));
    check_query(&["a=b=c"], Some(key_in("a", &["b=c"])));
    check_query(&["", "kind=x"], Some(key_in("kind", &["x"])));
}

#[test]
fn query_filter_repeated_keys_are_any_of() {
    check_query(&["kind=user,kind=group"], Some(key_in("kind", &["user", "group"])));
    check_query(&["kind=user,KIND=Group,kind=user"], Some(key_in("kind", &["user", "group"])));
    check_query(&["kind,kind=user"], Some(key_in("kind", &["user"])));
    check_query(&["kind=user,kind"], Some(key_in("kind", &["user"])));
    check_query(&["kind,kind"], Some(key_exists("kind", true)));
}

#[test]
fn query_filter_empty_key_is_rejected() {
    check_query_error(
        &["=x"],
        "Invalid filter, '=x' is not a valid statement (expected a string on the form a=b or a= or a)",
    );
    check_query_error(
        &["kind=a", "a=b, = c "],
        "Invalid filter, '= c' is not a valid statement (expected a string on the form a=b or a= or a)",
    );
}

#[test]
fn predicate_logic() {
    check_predicate(json!({}), Filter::All(vec![]));
    check_predicate(json!({"$all": []}), Filter::All(vec![]));
    check_predicate(json!({"$any": []}), Filter::Any(vec![]));
    check_predicate(
        json!({"$all": [{"kind": "component"}, {"$not": {"spec.type": "service"}}]}),
        Filter::All(vec![
            key_in("kind", &["component"]),
            Filter::Not(Box::new(key_in("spec.type", &["service"]))),
        ]),
    );
    check_predicate(
        json!({"$any": [{"kind": "user"}, {"kind": "group"}]}),
        Filter::Any(vec![key_in("kind", &["user"]), key_in("kind", &["group"])]),
    );
    check_predicate(
        json!({"kind": "Component", "spec.type": "service"}),
        Filter::All(vec![key_in("kind", &["component"]), key_in("spec.type", &["service"])]),
    );
}

#[test]
fn predicate_values() {
    check_predicate(json!({"Spec.Replicas": 7}), key_in("spec.replicas", &["7"]));
    check_predicate(json!({"x": 1.5}), key_in("x", &["1.5"]));
    check_predicate(json!({"x": true}), key_in("x", &["true"]));
    check_predicate(json!({"x": {"$exists": true}}), key_exists("x", true));
    check_predicate(json!({"x": {"$exists": false}}), key_exists("x", false));
    check_predicate(
        json!({"kind": {"$in": ["User", "group", 7, false]}}),
        key_in("kind", &["user", "group", "7", "false"]),
    );
    check_predicate(json!({"kind": {"$in": []}}), key_in("kind", &[]));
    check_predicate(
        json!({"metadata.name": {"$hasPrefix": "Billing-"}}),
        key_prefix("metadata.name", "billing-"),
    );
    check_predicate(json!({"metadata.tags": {"$contains": "Java"}}), key_in("metadata.tags", &["java"]));
    check_predicate(json!({"x": {"$contains": 7}}), key_in("x", &["7"]));
}

#[test]
fn predicate_relations_contains() {
    check_predicate(
        json!({"relations": {"$contains": {"type": "ownedBy", "targetRef": "Group:default/A"}}}),
        key_in("relations.ownedby", &["group:default/a"]),
    );
    check_predicate(
        json!({"Relations": {"$contains": {"type": "ownedBy", "targetRef": {"$in": ["group:default/a", "user:default/B"]}}}}),
        key_in("relations.ownedby", &["group:default/a", "user:default/b"]),
    );
    check_predicate(
        json!({"relations": {"$contains": {"type": "partOf"}}}),
        key_exists("relations.partof", true),
    );
}

#[test]
fn predicate_errors() {
    let cases = [
        (json!("kind"), "Invalid query: the root must be an object, got a string"),
        (json!([]), "Invalid query: the root must be an object, got an array"),
        (json!(null), "Invalid query: the root must be an object, got null"),
        (json!({"$all": [], "kind": "x"}), "Invalid query: '$all' must be the only key of its object"),
        (json!({"kind": "x", "$not": {}}), "Invalid query: '$not' must be the only key of its object"),
        (json!({"$any": {}}), "Invalid query: '$any' expects an array, got an object"),
        (json!({"$all": ["kind"]}), "Invalid query: expected a predicate object, got a string"),
        (json!({"$not": 1}), "Invalid query: expected a predicate object, got a number"),
        (json!({"$foo": 1}), "Invalid query: unknown operator '$foo'"),
        (json!({"kind": null}), "Invalid query: expected a string, number, boolean or operator object for 'kind', got null"),
        (json!({"kind": ["a"]}), "Invalid query: expected a string, number, boolean or operator object for 'kind', got an array"),
        (json!({"kind": {}}), "Invalid query: expected exactly one operator for 'kind', got 0 keys"),
        (json!({"kind": {"$in": ["a"], "$exists": true}}), "Invalid query: expected exactly one operator for 'kind', got 2 keys"),
        (json!({"metadata": {"name": "x"}}), "Invalid query: expected an operator for 'metadata', got key 'name' (nested paths are written with dots, as in 'metadata.name')"),
        (json!({"kind": {"$regex": "x"}}), "Invalid query: unknown operator '$regex' for 'kind'"),
        (json!({"kind": {"$exists": "yes"}}), "Invalid query: '$exists' expects a boolean, got a string"),
        (json!({"kind": {"$in": "a"}}), "Invalid query: '$in' expects an array of strings, numbers or booleans, got a string"),
        (json!({"kind": {"$in": [null]}}), "Invalid query: '$in' expects an array of strings, numbers or booleans, got null"),
        (json!({"kind": {"$hasPrefix": 1}}), "Invalid query: '$hasPrefix' expects a string, got a number"),
        (json!({"spec": {"$contains": {"a": 1}}}), "Invalid query: '$contains' with an object is only supported on 'relations', not 'spec'"),
        (json!({"tags": {"$contains": ["a"]}}), "Invalid query: '$contains' expects a string, number, boolean or object, got an array"),
        (json!({"relations": {"$contains": {"targetRef": "a"}}}), "Invalid query: '$contains' on 'relations' requires a 'type'"),
        (json!({"relations": {"$contains": {"type": 1}}}), "Invalid query: relation 'type' must be a string, got a number"),
        (json!({"relations": {"$contains": {"type": "a", "source": "b"}}}), "Invalid query: unknown relation field 'source', expected 'type' or 'targetRef'"),
        (json!({"relations": {"$contains": {"type": "a", "targetRef": {"$in": []}}}}), "Invalid query: relation 'targetRef' '$in' must not be empty"),
        (json!({"relations": {"$contains": {"type": "a", "targetRef": {"$hasPrefix": "x"}}}}), "Invalid query: relation 'targetRef' must be a string or {\"$in\": [...]}"),
        (json!({"relations": {"$contains": {"type": "a", "targetRef": null}}}), "Invalid query: relation 'targetRef' must be a string or {\"$in\": [...]}"),
    ];
    for (input, expected) in cases {
        check_predicate_error(input, expected);
    }
}

fn entity() -> Value {
    json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {
            "name": "billing-api",
            "tags": ["Java", "go"],
            "annotations": {"backstage.io/orphan": "true"},
            "description": null,
            "uid": "u1",
        },
        "spec": {"type": "service", "owner": "team-billing", "replicas": 7},
        "relations": [
            {"type": "ownedBy", "targetRef": "group:default/team-billing"},
            {"type": "partOf", "targetRef": "system:default/payments"},
        ],
    })
}

fn check_match_query(filter: &[&str], expected: bool) {
    let rows = search_rows(&entity()).unwrap();
    let parsed = parse_query_filters(&params(filter)).unwrap().unwrap();
    assert_eq!(matches(&parsed, &rows), expected, "for {filter:?}");
}

fn check_match_predicate(predicate: Value, expected: bool) {
    let rows = search_rows(&entity()).unwrap();
    let parsed = parse_predicate(&predicate).unwrap();
    assert_eq!(matches(&parsed, &rows), expected, "for {predicate}");
}

#[test]
fn query_filters_match_search_rows() {
    check_match_query(&["kind=component,spec.type=service"], true);
    check_match_query(&["kind=component,spec.type=website"], false);
    check_match_query(&["kind=user", "kind=component"], true);
    check_match_query(&["kind=user,kind=component"], true);
    check_match_query(&["metadata.tags.java"], true);
    check_match_query(&["metadata.tags=JAVA"], true);
    check_match_query(&["metadata.tags=jav"], false);
    check_match_query(&["metadata.annotations.backstage.io/orphan=true"], true);
    check_match_query(&["relations.ownedby=group:default/team-billing"], true);
    check_match_query(&["spec.owner"], true);
    check_match_query(&["spec.system"], false);
    check_match_query(&["metadata.description"], true);
    check_match_query(&["metadata.description="], false);
    check_match_query(&["metadata.namespace=default"], true);
}

#[test]
fn predicates_match_search_rows() {
    check_match_predicate(json!({}), true);
    check_match_predicate(json!({"$all": []}), true);
    check_match_predicate(json!({"$any": []}), false);
    check_match_predicate(json!({"spec.replicas": 7}), true);
    check_match_predicate(json!({"spec.replicas": "7"}), true);
    check_match_predicate(json!({"metadata.name": {"$hasPrefix": "BILLING"}}), true);
    check_match_predicate(json!({"metadata.name": {"$hasPrefix": "api"}}), false);
    check_match_predicate(json!({"metadata.tags": {"$contains": "go"}}), true);
    check_match_predicate(json!({"spec.system": {"$exists": false}}), true);
    check_match_predicate(json!({"metadata.description": {"$exists": true}}), true);
    check_match_predicate(json!({"$not": {"kind": "component"}}), false);
    check_match_predicate(
        json!({"relations": {"$contains": {"type": "ownedBy", "targetRef": {"$in": ["group:default/x", "GROUP:default/team-billing"]}}}}),
        true,
    );
    check_match_predicate(json!({"relations": {"$contains": {"type": "partOf"}}}), true);
    check_match_predicate(json!({"relations": {"$contains": {"type": "hasPart"}}}), false);
    check_match_predicate(json!({"kind": {"$in": []}}), false);
}

fn location_field(field: LocationField, condition: LocationCondition) -> LocationFilter {
    LocationFilter::Field { field, condition }
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| (*value).to_owned()).collect()
}

#[test]
fn location_predicates() {
    let check = |input: Value, expected: LocationFilter| {
        assert_eq!(parse_location_predicate(&input).unwrap(), expected, "for {input}");
    };
    check(json!({}), LocationFilter::All(vec![]));
    check(
        json!({"Type": "URL", "entityRef": {"$hasPrefix": "Location:"}}),
        LocationFilter::All(vec![
            location_field(LocationField::Type, LocationCondition::InIgnoreCase(strings(&["url"]))),
            location_field(LocationField::EntityRef, LocationCondition::HasPrefix("location:".to_owned())),
        ]),
    );
    check(
        json!({"id": {"$in": ["ABC", "def"]}}),
        location_field(LocationField::Id, LocationCondition::InExact(strings(&["ABC", "def"]))),
    );
    check(
        json!({"id": "ABC"}),
        location_field(LocationField::Id, LocationCondition::InIgnoreCase(strings(&["abc"]))),
    );
    check(
        json!({"$not": {"TARGET": {"$exists": true}}}),
        LocationFilter::Not(Box::new(location_field(LocationField::Target, LocationCondition::Exists(true)))),
    );
    check(json!({"target": {"$contains": "x"}}), LocationFilter::Any(vec![]));

    let check_error = |input: Value, expected: &str| {
        assert_eq!(parse_location_predicate(&input).unwrap_err().message, expected, "for {input}");
    };
    check_error(json!("x"), "Invalid query: the root must be an object, got a string");
    check_error(
        json!({"kind": "x"}),
        "Invalid query: unknown location field 'kind', expected one of id, type, target, entityRef",
    );
    check_error(json!({"type": {"$regex": "x"}}), "Invalid query: unknown operator '$regex' for 'type'");
    check_error(json!({"$bad": []}), "Invalid query: unknown operator '$bad'");
}

#[test]
fn location_predicates_match() {
    let value_of = |field: LocationField| match field {
        LocationField::Id => Some("Id-1"),
        LocationField::Type => Some("url"),
        LocationField::Target => Some("https://Example.com/catalog-info.yaml"),
        LocationField::EntityRef => None,
    };
    let check = |input: Value, expected: bool| {
        let filter = parse_location_predicate(&input).unwrap();
        assert_eq!(matches_location(&filter, &value_of), expected, "for {input}");
    };
    check(json!({}), true);
    check(json!({"id": "id-1"}), true);
    check(json!({"id": {"$in": ["id-1"]}}), false);
    check(json!({"id": {"$in": ["Id-1"]}}), true);
    check(json!({"type": {"$in": ["URL", "file"]}}), true);
    check(json!({"target": {"$hasPrefix": "https://example.COM/"}}), true);
    check(json!({"entityRef": {"$exists": false}}), true);
    check(json!({"target": {"$contains": "https"}}), false);
    check(json!({"$any": [{"type": "file"}, {"$not": {"type": "file"}}]}), true);
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("$all".to_owned()),
        Just("$any".to_owned()),
        Just("$not".to_owned()),
        Just("$in".to_owned()),
        Just("$exists".to_owned()),
        Just("$hasPrefix".to_owned()),
        Just("$contains".to_owned()),
        Just("relations".to_owned()),
        Just("type".to_owned()),
        Just("targetRef".to_owned()),
        Just("id".to_owned()),
        ".{0,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..4)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn query_filter_parsing_never_panics(input in prop::collection::vec(".{0,40}", 0..4)) {
        let _ = parse_query_filters(&input);
    }

    #[test]
    fn query_filter_parsing_of_filter_like_text_never_panics(
        input in prop::collection::vec("[a-zA-Z=,. ]{0,30}", 0..4),
    ) {
        if let Ok(Some(filter)) = parse_query_filters(&input) {
            let _ = matches(&filter, &[]);
        }
    }

    #[test]
    fn predicate_parsing_never_panics(input in arbitrary_json()) {
        if let Ok(filter) = parse_predicate(&input) {
            let _ = matches(&filter, &[]);
        }
        let _ = parse_location_predicate(&input);
    }
}
