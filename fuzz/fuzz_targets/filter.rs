//! The two filter syntaxes and their reference evaluation.
//!
//! Every input is used twice:
//! - as UTF-8 (other inputs skip this half), split on `\n` into `filter=` query parameters
//!   for `parse_query_filters`;
//! - as JSON (other inputs skip this half) for `parse_predicate` and
//!   `parse_location_predicate`; the JSON value is also flattened with `search_rows`.
//!
//! Properties: nothing panics; every filter that parses is evaluated with `matches` against
//! the search rows of a fixed entity (and of the input JSON, when it flattens), and every
//! location filter with `matches_location` against a fixed location; `Not` inverts `matches`.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use portico_query::filter::{
    matches, matches_location, parse_location_predicate, parse_predicate, parse_query_filters, Filter,
    LocationField,
};
use portico_query::search::{search_rows, SearchRow};
use serde_json::{json, Value};

/// The rows of one realistic final entity: nested objects, string arrays, lists of objects,
/// numbers, booleans, null, non-ASCII and mixed case, an over-long value, and relations.
static ROWS: LazyLock<Vec<SearchRow>> = LazyLock::new(|| {
    let entity = json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {
            "name": "Billing-Service",
            "namespace": "default",
            "uid": "0b5c7a8e-1111-4c2b-9c59-1d3b1d4a0001",
            "title": "Billing Ünïcödé ΣΊΣΥΦΟΣ",
            "description": "x".repeat(300),
            "labels": {"tier": "Gold", "empty": ""},
            "annotations": {"backstage.io/techdocs-ref": "dir:.", "github.com/project-slug": "acme/billing"},
            "tags": ["java", "Go", "payments"],
            "links": [{"url": "https://example.com", "title": "Docs"}, {"url": "https://acme.test"}],
        },
        "spec": {
            "type": "service",
            "lifecycle": "production",
            "owner": "group:default/team-a",
            "system": null,
            "replicas": 3,
            "ratio": 0.5,
            "big": 1e21,
            "enabled": true,
            "providesApis": ["api:billing", "api:Invoices"],
            "nested": {"deep": {"deeper": ["a", {"b": "c"}]}},
        },
        "relations": [
            {"type": "ownedBy", "targetRef": "group:default/team-a"},
            {"type": "providesApi", "targetRef": "api:default/billing"},
            {"type": "partOf", "targetRef": "system:default/payments"},
        ],
    });
    search_rows(&entity).expect("the fixed entity flattens")
});

/// The fields of one fixed location, for `matches_location`.
fn location_value(field: LocationField) -> Option<&'static str> {
    match field {
        LocationField::Id => Some("3f1c1e6a-5b5e-4d3c-9f00-0000000000aa"),
        LocationField::Type => Some("url"),
        LocationField::Target => Some("https://github.com/Acme/Catalog/blob/main/catalog-info.yaml"),
        LocationField::EntityRef => None,
    }
}

fn evaluate(filter: &Filter, rows: &[SearchRow]) {
    let matched = matches(filter, rows);
    let negated = Filter::Not(Box::new(filter.clone()));
    assert_eq!(matches(&negated, rows), !matched, "Not does not invert {filter:?}");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let params: Vec<String> = text.split('\n').map(str::to_owned).collect();
        if let Ok(Some(filter)) = parse_query_filters(&params) {
            evaluate(&filter, &ROWS);
        }
    }

    let Ok(json) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    // Arbitrary JSON may legitimately fail to flatten (keys differing only in case).
    let own_rows = search_rows(&json).ok();
    if let Ok(filter) = parse_predicate(&json) {
        evaluate(&filter, &ROWS);
        if let Some(rows) = &own_rows {
            evaluate(&filter, rows);
        }
    }
    if let Ok(filter) = parse_location_predicate(&json) {
        let _ = matches_location(&filter, &location_value);
    }
});
