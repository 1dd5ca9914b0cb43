use proptest::prelude::*;
use serde_json::{json, Value};

use crate::descriptor::{parse_descriptor, Document, SyntaxError};

/// Parses `text` and compares the documents (as JSON with their line) and the errors
/// (`line:column message`).
fn check(text: &str, expected_documents: &[(usize, Value)], expected_errors: &[&str]) {
    let (documents, errors) = parse_descriptor(text);
    let documents: Vec<(usize, Value)> =
        documents.into_iter().map(|document| (document.line, document.value)).collect();
    let errors: Vec<String> = errors
        .into_iter()
        .map(|SyntaxError { line, column, message }| format!("{line}:{column} {message}"))
        .collect();
    assert_eq!(documents, expected_documents, "documents of {text:?}");
    assert_eq!(errors, expected_errors, "errors of {text:?}");
}

fn only_document(text: &str) -> Document {
    let (mut documents, errors) = parse_descriptor(text);
    assert_eq!(errors, [], "{text:?}");
    assert_eq!(documents.len(), 1, "{text:?}");
    documents.remove(0)
}

/// Checks `line_of` for each `(field, line)`.
fn check_lines(text: &str, expected: &[(&str, usize)]) {
    let document = only_document(text);
    for (field, line) in expected {
        assert_eq!(document.line_of(field), *line, "line of {field:?}");
    }
}

const COMPONENT: &str = "\
# A component
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: billing
  annotations:
    backstage.io/techdocs-ref: dir:.
  tags:
    - java
    - go
spec:
  type: service
  owner:
    team-a
  providesApis: [a, b]
  nested:
    - name: x
      deep:
        - 1
";

#[test]
fn a_component_parses_to_json() {
    check(
        COMPONENT,
        &[(
            2,
            json!({
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "Component",
                "metadata": {
                    "name": "billing",
                    "annotations": {"backstage.io/techdocs-ref": "dir:."},
                    "tags": ["java", "go"]
                },
                "spec": {
                    "type": "service", "owner": "team-a", "providesApis": ["a", "b"],
                    "nested": [{"name": "x", "deep": [1]}]
                }
            }),
        )],
        &[],
    );
}

#[test]
fn lines_of_nested_fields() {
    check_lines(
        COMPONENT,
        &[
            ("", 2),
            ("apiVersion", 2),
            ("kind", 3),
            ("metadata", 4),
            ("metadata.name", 5),
            ("metadata.annotations.backstage.io/techdocs-ref", 7),
            ("metadata.tags", 8),
            ("metadata.tags.0", 9),
            ("metadata.tags.1", 10),
            ("metadata.tags.7", 8),
            ("spec.owner", 13),
            ("spec.providesApis.1", 15),
            ("spec.nested.0", 17),
            ("spec.nested.0.name", 17),
            ("spec.nested.0.deep", 18),
            ("spec.nested.0.deep.0", 19),
            ("spec.lifecycle", 11),
            ("spec.nested.0.deep.0.missing", 19),
            ("nowhere.at.all", 2),
        ],
    );
}

#[test]
fn multiple_documents_with_their_lines() {
    let text = "\
---
kind: A
metadata:
  name: a
---
# nothing but a comment
---
~
---
kind: B
...
---
kind: C
";
    check(
        text,
        &[
            (2, json!({"kind": "A", "metadata": {"name": "a"}})),
            (10, json!({"kind": "B"})),
            (13, json!({"kind": "C"})),
        ],
        &[],
    );
    let (documents, _) = parse_descriptor(text);
    assert_eq!(documents[0].line_of("metadata.name"), 4);
    assert_eq!(documents[2].line_of("kind"), 13);
}

#[test]
fn empty_files_have_no_documents() {
    check("", &[], &[]);
    check("# only a comment\n", &[], &[]);
    check("---\n---\n", &[], &[]);
    check("null\n", &[], &[]);
}

#[test]
fn roots_must_be_mappings() {
    check(
        "kind: A\n---\n- a\n- b\n---\nhello\n---\n3\n---\ntrue\n---\n  'x'\n",
        &[(1, json!({"kind": "A"}))],
        &[
            "3:1 Expected object at root, got array",
            "6:1 Expected object at root, got string",
            "8:1 Expected object at root, got number",
            "10:1 Expected object at root, got boolean",
            "12:3 Expected object at root, got string",
        ],
    );
}

#[test]
fn syntax_errors_keep_earlier_documents() {
    let (documents, errors) = parse_descriptor("kind: A\n---\nkind: B\nmetadata:\n  name: [x\nspec: {}\n");
    assert_eq!(documents.len(), 1);
    assert_eq!(documents[0].value, json!({"kind": "A"}));
    assert_eq!(
        errors,
        [SyntaxError { line: 6, column: 5, message: "illegal placement of ':' indicator".to_owned() }]
    );

    let (documents, errors) = parse_descriptor("a: b\n  c: d\n");
    assert!(documents.is_empty());
    assert_eq!(
        errors,
        [SyntaxError {
            line: 2,
            column: 4,
            message: "mapping values are not allowed in this context".to_owned()
        }]
    );

    let (documents, errors) = parse_descriptor("key: \"unterminated\n");
    assert!(documents.is_empty());
    assert_eq!(
        errors,
        [SyntaxError {
            line: 1,
            column: 6,
            message: "while scanning a quoted scalar, found unexpected end of stream".to_owned()
        }]
    );
}

#[test]
fn repeated_keys_drop_their_document() {
    check(
        "a: 1\nb: 2\na: 3\n---\nok: true\n",
        &[(5, json!({"ok": true}))],
        &["3:1 Map keys must be unique; \"a\" is repeated"],
    );
}

#[test]
fn scalars_follow_the_yaml_1_2_core_schema() {
    check(
        "\
null1: null
null2: ~
null3:
bool1: true
bool2: False
yes: yes
no: no
on: on
int: 42
neg: -7
plus: +7
octal: 0o17
octal11: 017
hex: 0x1F
float: 1.5
exp: 1e3
whole: 2.0
dot: .5
inf: .inf
nan: .NaN
big: 123456789012345678901234567890
version: 1.10
quoted: '42'
dquoted: \"true\"
tagged: !!str 12
tagint: !!int \"12\"
custom: !Ref thing
date: 2024-01-01
",
        &[(
            1,
            json!({
                "null1": null, "null2": null, "null3": null,
                "bool1": true, "bool2": false,
                "yes": "yes", "no": "no", "on": "on",
                "int": 42, "neg": -7, "plus": 7, "octal": 15, "octal11": 17, "hex": 31,
                "float": 1.5, "exp": 1000, "whole": 2, "dot": 0.5,
                "inf": null, "nan": null,
                "big": 1.2345678901234568e29,
                "version": 1.1,
                "quoted": "42", "dquoted": "true", "tagged": "12", "tagint": 12,
                "custom": "thing",
                "date": "2024-01-01"
            }),
        )],
        &[],
    );
}

#[test]
fn keys_are_stringified_and_merge_keys_are_plain_keys() {
    check(
        "1: a\ntrue: b\n~: c\n1.5: d\n[x, y]: e\n",
        &[(1, json!({"1": "a", "true": "b", "": "c", "1.5": "d", "[\"x\",\"y\"]": "e"}))],
        &[],
    );
    check(
        "base: &base\n  a: 1\nderived:\n  <<: *base\n  b: 2\n",
        &[(1, json!({"base": {"a": 1}, "derived": {"<<": {"a": 1}, "b": 2}}))],
        &[],
    );
}

#[test]
fn anchors_and_aliases_copy_values() {
    check(
        "owner: &o team-a\nspec:\n  owner: *o\n  list: &l [1, 2]\n  again: *l\n",
        &[(1, json!({"owner": "team-a", "spec": {"owner": "team-a", "list": [1, 2], "again": [1, 2]}}))],
        &[],
    );
}

#[test]
fn alias_bombs_are_refused() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 1..10 {
        let previous = format!("*a{}", level - 1);
        let items = [previous.as_str(); 10].join(", ");
        text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
    }
    text.push_str("---\nafter: 1\n");
    let (documents, errors) = parse_descriptor(&text);
    assert_eq!(documents.len(), 1);
    assert_eq!(documents[0].value, json!({"after": 1}));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].message, "Excessive alias count indicates a resource exhaustion attack");
}

#[test]
fn deep_nesting_is_refused_without_overflowing() {
    for depth in [300, 100_000] {
        let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let (documents, errors) = parse_descriptor(&text);
        assert!(documents.is_empty());
        // The scanner itself caps flow nesting at 255 levels, before our own cap.
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].message, "recursion limit exceeded");
        assert_eq!(errors[0].line, 1);
    }
    for depth in [300, 1_000] {
        let block: String = (0..depth).map(|level| format!("{}k:\n", " ".repeat(level))).collect();
        let (documents, errors) = parse_descriptor(&block);
        assert!(documents.is_empty());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].message, "Nesting is deeper than 256 levels");
        assert_eq!((errors[0].line, errors[0].column), (257, 257));
    }

    let fine = format!("a: {}{}", "[".repeat(200), "]".repeat(200));
    assert_eq!(parse_descriptor(&fine).1, []);
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = parse_descriptor(&text);
    }

    #[test]
    fn yaml_like_text_never_panics(text in "[a-z:\\-\\[\\]{}&*!|>'\"#,?%@` \n\t.0-9~<]{0,80}") {
        let (documents, _) = parse_descriptor(&text);
        for document in documents {
            let _ = document.line_of("a.b.0");
        }
    }
}

#[test]
fn nested_anchors_over_a_large_value_are_refused() {
    let items = vec!["x"; 2_000].join(", ");
    let mut text = String::from("a: ");
    for level in 0..100 {
        text.push_str(&format!("&n{level} ["));
    }
    text.push_str(&items);
    text.push_str(&"]".repeat(100));
    let (documents, errors) = parse_descriptor(&text);
    assert!(documents.is_empty());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].message, "Excessive alias count indicates a resource exhaustion attack");
}
