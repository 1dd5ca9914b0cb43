use serde_json::{json, Value as Json};

use crate::render::{
    is_truthy, parse_repo_url, FileOptions, FileTemplates, Integration, IntegrationKind, RenderError,
    Renderer, MAX_OUTPUT_BYTES,
};

fn context() -> Json {
    json!({
        "parameters": {
            "name": "My-Service",
            "count": 3,
            "ratio": 1.5,
            "enabled": true,
            "disabled": false,
            "tags": ["a", "b"],
            "owner": {"kind": "group", "name": "team-a"},
            "empty": "",
            "nothing": null,
            "zero": 0,
            "repoUrl": "github.com?owner=acme&repo=svc",
            "items": [
                {"name": "x", "enabled": true, "size": 2, "kind": "lib"},
                {"name": "y", "enabled": false, "size": 3, "kind": "svc"},
                {"name": "z", "enabled": true, "size": 5, "kind": "lib"}
            ],
            "map": {"b": 2, "a": 1},
            "text": "Hello <b>big</b> world"
        },
        "steps": {"fetch-base": {"output": {"url": "https://x"}}}
    })
}

fn integrations() -> Vec<Integration> {
    vec![
        Integration { host: "gitlab.example.com".to_owned(), kind: IntegrationKind::Gitlab },
        Integration { host: "bitbucket.example.com".to_owned(), kind: IntegrationKind::Bitbucket },
        Integration { host: "dev.azure.example.com".to_owned(), kind: IntegrationKind::Azure },
        Integration { host: "gitea.example.com".to_owned(), kind: IntegrationKind::Gitea },
        Integration { host: "gerrit.example.com:8443".to_owned(), kind: IntegrationKind::Gerrit },
    ]
}

fn renderer() -> Renderer {
    Renderer::new(integrations())
}

fn render(template: &str) -> Option<Json> {
    renderer().render_str(template, &context()).unwrap()
}

fn render_err(template: &str) -> RenderError {
    match renderer().render_str(template, &context()) {
        Ok(value) => panic!("{template:?} rendered {value:?} instead of failing"),
        Err(err) => err,
    }
}

/// Each template must render to the expected JSON (`null` in `expected` means "removed").
fn check(cases: &[(&str, Json)]) {
    let renderer = renderer();
    let context = context();
    for (template, expected) in cases {
        let rendered = renderer.render_str(template, &context);
        let rendered = match rendered {
            Ok(rendered) => rendered.unwrap_or(Json::Null),
            Err(err) => panic!("{template:?} failed: {err}"),
        };
        assert_eq!(&rendered, expected, "template {template:?}");
    }
}

/// Like `check`, with text expectations.
fn check_text(cases: &[(&str, &str)]) {
    let cases: Vec<(&str, Json)> = cases.iter().map(|(template, text)| (*template, json!(text))).collect();
    check(&cases);
}

#[test]
fn lone_expression_keeps_the_json_type() {
    check(&[
        ("${{ parameters.count }}", json!(3)),
        ("${{ parameters.ratio }}", json!(1.5)),
        ("${{ parameters.enabled }}", json!(true)),
        ("${{ parameters.tags }}", json!(["a", "b"])),
        ("${{ parameters.owner }}", json!({"kind": "group", "name": "team-a"})),
        ("${{parameters.count}}", json!(3)),
        ("${{ parameters.count + 1 }}", json!(4)),
        ("${{ 10 / 2 }}", json!(5)),
        ("${{ 7 / 2 }}", json!(3.5)),
        ("${{ {'a': 1, 'b': [true, none]} }}", json!({"a": 1, "b": [true, null]})),
        ("${{- parameters.count -}}", json!(3)),
        ("${{ parameters.zero }}", json!(0)),
        ("${{ steps['fetch-base'].output.url }}", json!("https://x")),
    ]);
}

#[test]
fn lone_expression_keeps_object_key_order() {
    let rendered = render("${{ parameters.map }}").unwrap();
    assert_eq!(rendered.to_string(), r#"{"b":2,"a":1}"#);
}

#[test]
fn lone_null_stays_null_and_lone_empty_string_stays() {
    assert_eq!(render("${{ parameters.nothing }}"), Some(Json::Null));
    assert_eq!(render("${{ null }}"), Some(Json::Null));
    assert_eq!(render("${{ parameters.empty }}"), Some(json!("")));
}

#[test]
fn undefined_and_empty_results_remove_the_key() {
    for template in [
        "${{ parameters.missing }}",
        "${{ parameters.missing.deeper.still }}",
        "",
        "${{ parameters.empty }}${{ parameters.missing }}",
        "{% if parameters.disabled %}yes{% endif %}",
        "{# only a comment #}",
    ] {
        assert_eq!(render(template), None, "template {template:?}");
    }
}

#[test]
fn surrounding_text_renders_as_text() {
    check_text(&[
        ("n=${{ parameters.count }}", "n=3"),
        (" ${{ parameters.count }}", " 3"),
        ("${{ parameters.count }} ", "3 "),
        ("${{ parameters.count }}${{ parameters.count }}", "33"),
        ("plain text", "plain text"),
        ("{{ not.a.variable }}", "{{ not.a.variable }}"),
        ("a ${{ parameters.missing.x }} b", "a  b"),
        ("${{ parameters.name }}\n", "My-Service\n"),
        ("{% if parameters.enabled %}${{ parameters.count }}{% endif %}", "3"),
        ("{% for tag in parameters.tags %}[${{ tag }}]{% endfor %}", "[a][b]"),
        ("{% set x = 2 %}${{ x * 2 }}", "4"),
    ]);
}

#[test]
fn text_output_prints_values_like_javascript_except_objects() {
    check_text(&[
        ("v: ${{ parameters.tags }}", "v: a,b"),
        ("v: ${{ parameters.owner }}", r#"v: {"kind":"group","name":"team-a"}"#),
        ("v: ${{ parameters.nothing }}", "v: "),
        ("v: ${{ 3.0 }}", "v: 3"),
        ("v: ${{ 10 / 4 }}", "v: 2.5"),
        ("v: ${{ parameters.enabled }}", "v: true"),
        ("v: ${{ [1, none, [2, 3]] }}", "v: 1,,2,3"),
    ]);
}

#[test]
fn javascript_operators_are_accepted() {
    check(&[
        ("${{ parameters.count === 3 }}", json!(true)),
        ("${{ parameters.count !== 3 }}", json!(false)),
        ("${{ parameters.name.length }}", json!(10)),
        ("${{ parameters.tags.length }}", json!(2)),
        ("${{ parameters.owner.length }}", json!(2)),
        ("${{ parameters.tags.length > 1 and parameters.enabled }}", json!(true)),
        ("${{ parameters.items[0].name.length }}", json!(1)),
        ("${{ parameters.missing.length }}", Json::Null),
        ("${{ 'yes' if parameters.count === 3 else 'no' }}", json!("yes")),
        ("${{ 'a===b' }}", json!("a===b")),
        ("${{ \"x.length\" }}", json!("x.length")),
        ("${{ parameters.enabled or false }}", json!(true)),
        ("${{ parameters.nothing === null }}", json!(true)),
        ("${{ parameters.name + '-x' }}", json!("My-Service-x")),
        ("${{ parameters.name[1:3] }}", json!("y-")),
    ]);
    check_text(&[
        ("{% if parameters.count === 3 %}three{% endif %}", "three"),
        ("{% for t in parameters.tags %}${{ loop.length }}{% endfor %}", "22"),
        ("text.length stays ${{ 'x' }}", "text.length stays x"),
    ]);
}

#[test]
fn length_prefers_an_objects_own_length_key() {
    let context = json!({"o": {"length": 42, "a": 1}});
    let rendered = renderer().render_str("${{ o.length }}", &context).unwrap();
    assert_eq!(rendered, Some(json!(42)));
}

#[test]
fn nunjucks_block_syntax_is_accepted() {
    check_text(&[
        ("{% if parameters.zero %}a{% elseif parameters.count %}b{% else %}c{% endif %}", "b"),
        ("{% raw %}${{ parameters.count === 1 }}{% endraw %}", "${{ parameters.count === 1 }}"),
        ("{% verbatim %}${{ x.length }}{% endverbatim %}", "${{ x.length }}"),
        ("{% for key, value in parameters.map %}${{ key }}=${{ value }};{% endfor %}", "b=2;a=1;"),
        ("{% for k, v in parameters.map if v > 1 %}${{ k }}{% endfor %}", "b"),
        ("{% for k, v in [['x', 1], ['y', 2]] %}${{ k }}${{ v }}{% endfor %}", "x1y2"),
        ("{%- for k, v in parameters.map -%} ${{ k }} {%- endfor %}", "ba"),
    ]);
}

#[test]
fn javascript_string_and_array_methods_work() {
    check(&[
        ("${{ parameters.name.toLowerCase() }}", json!("my-service")),
        ("${{ parameters.name.toUpperCase() }}", json!("MY-SERVICE")),
        ("${{ parameters.name.replace('-', '_') }}", json!("My_Service")),
        ("${{ 'a-b-c'.replace('-', '') }}", json!("ab-c")),
        ("${{ 'a-b-c'.replaceAll('-', '') }}", json!("abc")),
        ("${{ parameters.repoUrl.split('?')[1] }}", json!("owner=acme&repo=svc")),
        ("${{ 'a,b,c'.split(',', 2) }}", json!(["a", "b"])),
        ("${{ parameters.name.startsWith('My') }}", json!(true)),
        ("${{ parameters.name.includes('Serv') }}", json!(true)),
        ("${{ parameters.name.indexOf('S') }}", json!(3)),
        ("${{ parameters.name.slice(-7) }}", json!("Service")),
        ("${{ parameters.name.substring(3, 0) }}", json!("My-")),
        ("${{ '  x '.trim() }}", json!("x")),
        ("${{ '7'.padStart(3, '0') }}", json!("007")),
        ("${{ parameters.tags.join('-') }}", json!("a-b")),
        ("${{ parameters.tags.includes('b') }}", json!(true)),
        ("${{ parameters.tags.concat(['c']) }}", json!(["a", "b", "c"])),
        ("${{ parameters.count.toString() }}", json!("3")),
        ("${{ parameters.ratio.toFixed(2) }}", json!("1.50")),
        ("${{ parameters.owner.hasOwnProperty('kind') }}", json!(true)),
    ]);
}

#[test]
fn backstage_filters() {
    check(&[
        (
            "${{ parameters.repoUrl | parseRepoUrl }}",
            json!({"host": "github.com", "owner": "acme", "repo": "svc"}),
        ),
        ("${{ (parameters.repoUrl | parseRepoUrl).owner }}", json!("acme")),
        ("${{ parameters.repoUrl | projectSlug }}", json!("acme/svc")),
        (
            "${{ 'group:default/team-a' | parseEntityRef }}",
            json!({"kind": "group", "namespace": "default", "name": "team-a"}),
        ),
        (
            "${{ 'team-a' | parseEntityRef({'defaultKind': 'Group', 'defaultNamespace': 'ops'}) }}",
            json!({"kind": "Group", "namespace": "ops", "name": "team-a"}),
        ),
        ("${{ ('user:jane' | parseEntityRef).namespace }}", json!("default")),
        ("${{ parameters | pick('items[1].name') }}", json!("y")),
        ("${{ parameters | pick('owner.kind') }}", json!("group")),
        ("${{ parameters | pick('items[\"0\"].size') }}", json!(2)),
        ("${{ parameters | pick('nope.deeper') }}", Json::Null),
        ("${{ {'a.b': 1} | pick('a.b') }}", json!(1)),
    ]);
}

#[test]
fn parse_entity_ref_without_a_kind_fails() {
    let err = render_err("${{ 'team-a' | parseEntityRef }}");
    assert!(err.to_string().contains("kind"), "{err}");
}

#[test]
fn parse_repo_url_checks_parameters_per_integration() {
    let ok = |url: &str| parse_repo_url(url, &integrations()).map(|spec| spec.to_json());
    let err = |url: &str| parse_repo_url(url, &integrations()).unwrap_err().message;
    assert_eq!(
        ok("github.com?owner=/acme/&repo=svc/").unwrap(),
        json!({"host": "github.com", "owner": "acme", "repo": "svc"})
    );
    assert_eq!(
        ok("gitlab.example.com?project=42").unwrap(),
        json!({"host": "gitlab.example.com", "project": "42"})
    );
    assert_eq!(
        ok("gitlab.com?owner=group/sub&repo=r").unwrap(),
        json!({"host": "gitlab.com", "owner": "group/sub", "repo": "r"})
    );
    assert_eq!(
        ok("bitbucket.example.com?project=P&repo=r").unwrap(),
        json!({"host": "bitbucket.example.com", "repo": "r", "project": "P"})
    );
    assert_eq!(
        ok("bitbucket.org?workspace=w&project=P&repo=r").unwrap(),
        json!({"host": "bitbucket.org", "repo": "r", "workspace": "w", "project": "P"})
    );
    assert_eq!(
        ok("dev.azure.com?organization=o&project=p&repo=r").unwrap(),
        json!({"host": "dev.azure.com", "repo": "r", "organization": "o", "project": "p"})
    );
    assert_eq!(ok("gitea.example.com?repo=r").unwrap(), json!({"host": "gitea.example.com", "repo": "r"}));
    assert_eq!(
        ok("gerrit.example.com:8443?repo=r").unwrap(),
        json!({"host": "gerrit.example.com:8443", "repo": "r"})
    );
    assert_eq!(
        err("unknown.example.com?owner=o&repo=r"),
        "No matching integration configuration for host unknown.example.com, please check your integrations config"
    );
    assert_eq!(
        err("github.com?repo=r"),
        "Invalid repo URL passed to publisher: https://github.com/?repo=r, missing owner"
    );
    assert!(err("github.com?owner=o").ends_with("missing repo"));
    assert!(err("gitlab.example.com?owner=o").ends_with("missing repo"));
    assert!(err("bitbucket.org?project=P&repo=r").ends_with("missing workspace"));
    assert!(err("bitbucket.example.com?repo=r").ends_with("missing project"));
    assert!(err("dev.azure.example.com?repo=r").ends_with("missing project"));
    assert!(err("gitea.example.com?owner=o").ends_with("missing repo"));
    assert!(err("github.com?owner=//&repo=r").ends_with("missing owner"));
}

#[test]
fn parse_repo_url_filter_reports_the_integration_error() {
    let err = render_err("${{ 'nowhere.example.com?owner=o&repo=r' | parseRepoUrl }}");
    assert!(
        err.to_string().contains("No matching integration configuration for host nowhere.example.com"),
        "{err}"
    );
    let err = render_err("${{ parameters.missing | parseRepoUrl }}");
    assert!(err.to_string().contains("parseRepoUrl expects a string"), "{err}");
}

#[test]
fn nunjucks_filters() {
    check(&[
        // Backstage dumps the lone expression's value once more, so this is a string.
        ("${{ parameters.owner | dump }}", json!(r#"{"kind":"group","name":"team-a"}"#)),
        ("${{ parameters.missing | d('fallback') }}", json!("fallback")),
        ("${{ parameters.missing | default('fallback') }}", json!("fallback")),
        ("${{ parameters.count | string }}", json!("3")),
        ("${{ '42px' | int }}", json!(42)),
        ("${{ 'abc' | int }}", json!(0)),
        ("${{ 'abc' | int(7) }}", json!(7)),
        ("${{ 3.9 | int }}", json!(3)),
        ("${{ '2.5e1x' | float }}", json!(25)),
        ("${{ 'x' | float }}", json!(0)),
        ("${{ 'ab' | list }}", json!(["a", "b"])),
        ("${{ parameters.map | list }}", json!([{"key": "b", "value": 2}, {"key": "a", "value": 1}])),
        ("${{ 'hELLO world' | capitalize }}", json!("Hello world")),
        ("${{ 'hello world' | title }}", json!("Hello World")),
        ("${{ 'a-b-c' | replace('-', '+') }}", json!("a+b+c")),
        ("${{ 'a-b-c' | replace('-', '+', 1) }}", json!("a+b-c")),
        ("${{ 'ab' | replace('', '.') }}", json!(".a.b.")),
        ("${{ 'hello big world' | truncate(8) }}", json!("hello...")),
        ("${{ 'hello big world' | truncate(9) }}", json!("hello big...")),
        ("${{ 'hello big world' | truncate(8, true) }}", json!("hello bi...")),
        ("${{ 'hello big world' | truncate(8, false, '~') }}", json!("hello~")),
        ("${{ 'short' | truncate(9) }}", json!("short")),
        ("${{ 'a b/c&d' | urlencode }}", json!("a%20b%2Fc%26d")),
        ("${{ {'q': 'a b', 'n': 1} | urlencode }}", json!("q=a%20b&n=1")),
        ("${{ 'one two_2, three' | wordcount }}", json!(3)),
        ("${{ 'a\nb' | nl2br }}", json!("a<br />\nb")),
        ("${{ parameters.text | striptags }}", json!("Hello big world")),
        ("${{ 'ab' | center(6) }}", json!("  ab  ")),
        ("${{ 'abc' | center(6) }}", json!(" abc  ")),
        ("${{ -3 | abs }}", json!(3)),
        ("${{ 2.5 | round }}", json!(3)),
        ("${{ 2.45 | round(1, 'floor') }}", json!(2.4)),
        ("${{ 2.41 | round(1, 'ceil') }}", json!(2.5)),
        ("${{ [1, 2, 3] | sum }}", json!(6)),
        ("${{ parameters.items | sum('size') }}", json!(10)),
        ("${{ parameters.items | sum('size', 5) }}", json!(15)),
        ("${{ [1, 2, 3, 4] | select('odd') | list }}", json!([1, 3])),
        ("${{ [1, 2, 3, 4] | reject('odd') | list }}", json!([2, 4])),
        ("${{ parameters.items | selectattr('enabled') | map(attribute='name') | list }}", json!(["x", "z"])),
        ("${{ parameters.items | rejectattr('enabled') | map(attribute='name') | join(',') }}", json!("y")),
        ("${{ parameters.map | dictsort }}", json!([["a", 1], ["b", 2]])),
        ("${{ [1, 2, 3] | batch(2) | list }}", json!([[1, 2], [3]])),
        ("${{ [1, 2, 3] | slice(2) | list }}", json!([[1, 2], [3]])),
        ("${{ parameters.tags | join(', ') }}", json!("a, b")),
        ("${{ parameters.tags | first }}", json!("a")),
        ("${{ parameters.tags | last }}", json!("b")),
        ("${{ parameters.tags | length }}", json!(2)),
        ("${{ parameters.missing | length }}", json!(0)),
        // nunjucks filters coerce undefined to "", and a lone "" is kept (see render_str).
        ("${{ parameters.missing | lower }}", json!("")),
        ("${{ parameters.missing | replace('a', 'b') }}", Json::Null),
        ("${{ parameters.nothing | d('z') }}", Json::Null),
        ("${{ parameters.nothing | default('z', true) }}", json!("z")),
        ("${{ parameters.name | lower }}", json!("my-service")),
        ("${{ parameters.name | upper }}", json!("MY-SERVICE")),
        ("${{ '  x  ' | trim }}", json!("x")),
        ("${{ [3, 1, 2] | sort }}", json!([1, 2, 3])),
        ("${{ parameters.tags | reverse | list }}", json!(["b", "a"])),
        ("${{ '<a>' | escape }}", json!("&lt;a&gt;")),
        ("${{ 'x\ny' | indent(2, true) }}", json!("  x\n  y")),
    ]);
    check_text(&[
        ("${{ parameters.owner | dump(2) }}!", "{\n  \"kind\": \"group\",\n  \"name\": \"team-a\"\n}!"),
        ("${{ parameters.owner | dump('\\t') }}!", "{\n\t\"kind\": \"group\",\n\t\"name\": \"team-a\"\n}!"),
        ("${{ parameters.tags | dump }}!", "[\"a\",\"b\"]!"),
        ("${{ parameters.missing | dump }}!", "!"),
        ("{% for group in parameters.items | groupby('kind') %}${{ group.grouper }}:${{ group.list | length }};{% endfor %}", "lib:2;svc:1;"),
        ("{% for kind, items in parameters.items | groupby('kind') %}${{ kind }}{% endfor %}", "libsvc"),
    ]);
}

#[test]
fn wordcount_of_nothing_is_empty() {
    assert_eq!(render("${{ '' | wordcount }}"), Some(Json::Null));
    assert_eq!(render("count: ${{ '--' | wordcount }}"), Some(json!("count: ")));
}

#[test]
fn unknown_filter_error_names_the_filter_and_line() {
    let err = render_err("line one\n${{ parameters.name | nosuchfilter }}");
    let message = err.to_string();
    assert!(message.contains("nosuchfilter"), "{message}");
    assert!(message.contains("template:2"), "{message}");
    let err = render_err("${{ parameters.name | nosuchfilter }}");
    assert!(err.to_string().contains("unknown filter"), "{err}");
}

#[test]
fn syntax_errors_are_reported_not_panicked() {
    for template in [
        "${{ parameters. }}",
        "{% if %}",
        "{% for x in %}{% endfor %}",
        "${{ 'unterminated }}",
        "{% endif %}",
    ] {
        match renderer().render_str(template, &context()) {
            Err(RenderError::Template { message }) => assert!(!message.is_empty()),
            other => panic!("{template:?} gave {other:?}"),
        }
    }
}

#[test]
fn arbitrary_text_never_panics() {
    let samples = [
        "${{",
        "}}",
        "${{ }}",
        "{%",
        "%}",
        "{#",
        "${{ '",
        "${{ \"\\",
        "${{ x.length",
        "{% raw %}",
        "{% for a, b in %}",
        "{% for a, b in x if %}",
        "${{ ((( }}",
        "${{ ]]] }}",
        "é${{ 'ü'.length }}ß",
        "${{ x === }}",
        "{% elseif %}",
        "${{ 1 / 0 }}",
        "${{ 'a' * -1 }}",
        "${{ [].join() }}",
        "${{ 'x'.repeat(-1) }}",
        "${{ none.foo() }}",
    ];
    for sample in samples {
        let _ = renderer().render_str(sample, &context());
        let _ = renderer().render_value(&json!({"k": sample}), &context());
    }
}

#[test]
fn runaway_loops_run_out_of_fuel() {
    let err = render_err("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}");
    assert!(matches!(err, RenderError::TooMuchWork { .. }), "{err:?}");
}

#[test]
fn huge_output_is_refused() {
    let err = render_err("{% for i in range(20000) %}${{ 'x' * 1000 }}{% endfor %}");
    assert!(matches!(err, RenderError::OutputTooLarge { limit } if limit == MAX_OUTPUT_BYTES), "{err:?}");
    let err = render_err("${{ 'x'.repeat(20000000) }}");
    assert!(err.to_string().contains("limit"), "{err}");
}

#[test]
fn deep_recursion_is_refused() {
    let template = "{% macro down(n) %}${{ down(n + 1) }}{% endmacro %}${{ down(0) }}";
    let err = render_err(template);
    assert!(matches!(err, RenderError::Template { .. }), "{err:?}");
}

#[test]
fn deeply_nested_values_are_refused() {
    let template = "{% set ns = namespace(v=1) %}{% for i in range(200) %}{% set ns.v = [ns.v] %}{% endfor %}${{ ns.v | dump }}";
    let err = render_err(template);
    assert!(err.to_string().contains("nested"), "{err}");
}

#[test]
fn debug_function_is_not_available() {
    let err = render_err("${{ debug() }}");
    assert!(err.to_string().contains("debug"), "{err}");
}

#[test]
fn render_value_walks_objects_and_arrays() {
    let input = json!({
        "name": "${{ parameters.name }}",
        "count": "${{ parameters.count }}",
        "literal": 7,
        "flag": false,
        "gone": "${{ parameters.missing }}",
        "emptyLiteral": "",
        "list": ["${{ parameters.count }}", "${{ parameters.missing }}", "x"],
        "nested": {"deeper": {"url": "${{ steps['fetch-base'].output.url }}/path"}},
        "${{ keys are not rendered }}": "k"
    });
    let rendered = renderer().render_value(&input, &context());
    assert!(rendered.errors.is_empty(), "{:?}", rendered.errors);
    assert_eq!(
        rendered.value,
        Some(json!({
            "name": "My-Service",
            "count": 3,
            "literal": 7,
            "flag": false,
            "list": [3, null, "x"],
            "nested": {"deeper": {"url": "https://x/path"}},
            "${{ keys are not rendered }}": "k"
        }))
    );
}

#[test]
fn render_value_keeps_failing_leaves_raw_and_reports_them() {
    let input =
        json!({"ok": "${{ parameters.count }}", "bad": {"a/b": ["${{ parameters.name | nosuchfilter }}"]}});
    let rendered = renderer().render_value(&input, &context());
    assert_eq!(
        rendered.value,
        Some(json!({"ok": 3, "bad": {"a/b": ["${{ parameters.name | nosuchfilter }}"]}}))
    );
    assert_eq!(rendered.errors.len(), 1);
    assert!(rendered.errors[0].starts_with("/bad/a~1b/0: failed to render"), "{}", rendered.errors[0]);
    assert!(rendered.errors[0].contains("nosuchfilter"), "{}", rendered.errors[0]);
}

#[test]
fn render_value_of_a_lone_string() {
    assert_eq!(renderer().render_value(&json!("${{ parameters.count }}"), &context()).value, Some(json!(3)));
    assert_eq!(renderer().render_value(&json!("${{ parameters.missing }}"), &context()).value, None);
    assert_eq!(renderer().render_value(&json!(12), &context()).value, Some(json!(12)));
}

#[test]
fn truthiness_follows_the_reference() {
    let cases = [
        (None, false),
        (Some(json!(false)), false),
        (Some(json!(null)), false),
        (Some(json!("")), false),
        (Some(json!(0)), false),
        (Some(json!(0.0)), false),
        (Some(json!([])), false),
        (Some(json!(true)), true),
        (Some(json!("false")), true),
        (Some(json!(1)), true),
        (Some(json!(-0.5)), true),
        (Some(json!([0])), true),
        (Some(json!({})), true),
    ];
    for (value, expected) in cases {
        assert_eq!(is_truthy(value.as_ref()), expected, "{value:?}");
    }
}

#[test]
fn file_templates_use_dollar_delimiters_by_default() {
    let templates = FileTemplates::new(FileOptions::default(), vec![]);
    let context = json!({"values": {"name": "svc", "port": 8080, "list": ["a", "b"]}});
    let source = "name: ${{ values.name }}\nci: ${{ '${{' }} github.sha }}\nraw: {{ values.name }}\n{% for x in values.list %}- ${{ x }}\n{% endfor %}";
    let rendered = templates.render(source, &context).unwrap();
    assert_eq!(rendered, "name: svc\nci: ${{ github.sha }}\nraw: {{ values.name }}\n- a\n- b\n");
}

#[test]
fn file_templates_keep_the_trailing_newline() {
    let templates = FileTemplates::new(FileOptions::default(), vec![]);
    assert_eq!(templates.render("x\n", &json!({})).unwrap(), "x\n");
    assert_eq!(templates.render("x\n\n", &json!({})).unwrap(), "x\n\n");
}

#[test]
fn file_templates_in_cookiecutter_mode() {
    let options = FileOptions { cookiecutter: true, ..FileOptions::default() };
    let templates = FileTemplates::new(options, vec![]);
    let context = json!({"cookiecutter": {"name": "svc", "tags": ["a", "b"], "env": {"A": "1", "B": "2"}}});
    let source = "{{ cookiecutter.name }} {{ cookiecutter.tags | jsonify }} ${{ cookiecutter.name }}\n\
                  {% for k, v in cookiecutter.env.items() %}{{ k }}={{ v }};{% endfor %}\n\
                  {{ cookiecutter.name.upper() }} {{ 'a-b-c'.replace('-', '') }} {{ ' x '.strip() }} {{ 'a b'.split() }}";
    let rendered = templates.render(source, &context).unwrap();
    assert_eq!(rendered, "svc [\"a\",\"b\"] $svc\nA=1;B=2;\nSVC abc x a,b");
}

#[test]
fn file_templates_trim_and_lstrip_blocks() {
    let source = "list:\n  {% for x in values.xs %}\n  - ${{ x }}\n  {% endfor %}\nend\n";
    let context = json!({"values": {"xs": [1, 2]}});
    let plain = FileTemplates::new(FileOptions::default(), vec![]).render(source, &context).unwrap();
    assert_eq!(plain, "list:\n  \n  - 1\n  \n  - 2\n  \nend\n");
    let options = FileOptions { trim_blocks: true, lstrip_blocks: true, ..FileOptions::default() };
    let trimmed = FileTemplates::new(options, vec![]).render(source, &context).unwrap();
    assert_eq!(trimmed, "list:\n  - 1\n  - 2\nend\n");
}

#[test]
fn file_templates_offer_the_backstage_filters() {
    let templates = FileTemplates::new(FileOptions::default(), integrations());
    let context = json!({"values": {"repoUrl": "gitlab.example.com?owner=g&repo=r"}});
    let rendered = templates.render("${{ values.repoUrl | projectSlug }}", &context).unwrap();
    assert_eq!(rendered, "g/r");
}

#[test]
fn many_tags_in_a_large_template_render_quickly() {
    let source = "${{ values.x }} {% if true %}y{% endif %}\n".repeat(20_000);
    let templates = FileTemplates::new(FileOptions::default(), vec![]);
    let started = std::time::Instant::now();
    let rendered = templates.render(&source, &json!({"values": {"x": 1}})).unwrap();
    assert_eq!(rendered.len(), "1 y\n".len() * 20_000);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn text_without_tags_is_returned_as_is() {
    let templates = FileTemplates::new(FileOptions::default(), vec![]);
    assert_eq!(templates.render("a } b }} c {", &json!({})).unwrap(), "a } b }} c {");
}
