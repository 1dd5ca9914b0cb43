use crate::location_ref::{is_javascript_url, LocationRef};

/// `expected` is `type|target` or `error: <message>`.
fn check(text: &str, expected: &str) {
    let actual = match LocationRef::parse(text) {
        Ok(location) => format!("{}|{}", location.kind, location.target),
        Err(error) => format!("error: {error}"),
    };
    assert_eq!(actual, expected, "parsing {text:?}");
}

#[test]
fn splits_on_the_first_colon_and_trims() {
    check("url:https://example.com/a.yaml", "url|https://example.com/a.yaml");
    check(" file : /tmp/catalog-info.yaml ", "file|/tmp/catalog-info.yaml");
    check("file:C:/x.yaml", "file|C:/x.yaml");
}

#[test]
fn empty_parts_are_rejected() {
    for text in ["", "url", "url:", ":target", " : ", "url:   "] {
        check(
            text,
            &format!("error: Unable to parse location ref '{text}', expected '<type>:<target>', e.g. 'url:https://host/path'"),
        );
    }
}

#[test]
fn bare_urls_are_rejected_with_a_hint() {
    check(
        "https://example.com/a.yaml",
        "error: Invalid location ref 'https://example.com/a.yaml', please prefix it with 'url:', e.g. 'url:https://example.com/a.yaml'",
    );
    check(
        "http://example.com",
        "error: Invalid location ref 'http://example.com', please prefix it with 'url:', e.g. 'url:http://example.com'",
    );
}

#[test]
fn javascript_targets_are_rejected() {
    check(
        "url:javascript:alert(1)",
        "error: Invalid location ref 'url:javascript:alert(1)', target is a javascript: URL",
    );
    check(
        "url: JavaScript:alert(1)",
        "error: Invalid location ref 'url: JavaScript:alert(1)', target is a javascript: URL",
    );
    check(
        "url:java\tscript:alert(1)",
        "error: Invalid location ref 'url:java\tscript:alert(1)', target is a javascript: URL",
    );
}

#[test]
fn javascript_url_detection() {
    for (value, expected) in [
        ("javascript:x", true),
        ("\u{1}\u{0} JAVASCRIPT:x", true),
        ("jav\nasc\rript:x", true),
        ("javascript", false),
        ("https://javascript:x", false),
        ("xjavascript:x", false),
        ("", false),
    ] {
        assert_eq!(is_javascript_url(value), expected, "{value:?}");
    }
}

#[test]
fn display_round_trips() {
    let location = LocationRef::parse("url:https://example.com/a.yaml").unwrap();
    assert_eq!(location.to_string(), "url:https://example.com/a.yaml");
}
