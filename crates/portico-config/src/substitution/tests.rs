use std::collections::BTreeMap;

use crate::substitution::substitute;

/// Substitutes `input` against a fixed environment and compares; `None` means "undefined".
fn check(input: &str, expected: Option<&str>) {
    let env: BTreeMap<String, String> =
        [("HOST", "db.internal"), ("PORT", "5432"), ("EMPTY", ""), ("SPACED", " padded ")]
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
    assert_eq!(substitute(input, &env).as_deref(), expected, "substituting {input:?}");
}

#[test]
fn plain_strings_are_untouched() {
    check("", Some(""));
    check("no variables here", Some("no variables here"));
    check("costs $5", Some("costs $5"));
    check("trailing $", Some("trailing $"));
}

#[test]
fn variables_are_replaced() {
    check("${HOST}", Some("db.internal"));
    check("postgres://${HOST}:${PORT}/app", Some("postgres://db.internal:5432/app"));
    check("${SPACED}", Some(" padded "));
}

#[test]
fn whitespace_inside_braces_is_trimmed() {
    check("${ HOST }", Some("db.internal"));
    check("${\tPORT\n}", Some("5432"));
    check("${ MISSING :- fallback }", Some(" fallback"));
}

#[test]
fn fallback_applies_when_unset_or_empty() {
    check("${MISSING:-localhost}", Some("localhost"));
    check("${EMPTY:-localhost}", Some("localhost"));
    check("${HOST:-localhost}", Some("db.internal"));
    check("${MISSING:-}", Some(""));
    check("${MISSING:-a:-b}", Some("a:-b"));
}

#[test]
fn set_but_empty_without_fallback_is_empty() {
    check("[${EMPTY}]", Some("[]"));
}

#[test]
fn any_unset_variable_makes_the_whole_value_undefined() {
    check("${MISSING}", None);
    check("http://${HOST}:${MISSING}", None);
    check("${}", None);
}

#[test]
fn double_dollar_escapes() {
    check("$${HOST}", Some("${HOST}"));
    check("$${MISSING}", Some("${MISSING}"));
    check("a $${HOST} b ${PORT}", Some("a ${HOST} b 5432"));
    check("$$${HOST}", Some("$${HOST}"));
    check("$$HOST", Some("$$HOST"));
}

#[test]
fn unclosed_or_nested_braces_are_literal() {
    check("${HOST", Some("${HOST"));
    check("$${HOST", Some("$${HOST"));
    check("${a{b}", Some("${a{b}"));
    check("${{HOST}}", Some("${{HOST}}"));
}
