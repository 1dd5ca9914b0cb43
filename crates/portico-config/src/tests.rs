//! End-to-end tests of `load` over real files in a temp directory, one group per rule of
//! reference §D.

use std::collections::BTreeMap;
use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::{default_files, get, load, ConfigError};

/// A temp directory holding config files.
struct Fixture {
    dir: TempDir,
}

impl Fixture {
    fn new(files: &[(&str, &str)]) -> Fixture {
        let dir = tempfile::tempdir().expect("create temp dir");
        for (name, contents) in files {
            let path = dir.path().join(name);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).expect("create fixture dir");
            }
            fs::write(&path, contents).expect("write fixture file");
        }
        Fixture { dir }
    }

    /// The files whose name starts with `app-config`, in the order given: the layers to load. Other files
    /// are only there for directives to reach.
    fn layers(&self, files: &[(&str, &str)]) -> Vec<PathBuf> {
        files
            .iter()
            .filter(|(name, _)| {
                Path::new(name)
                    .file_name()
                    .is_some_and(|file_name| file_name.to_string_lossy().starts_with("app-config"))
            })
            .map(|(name, _)| self.dir.path().join(name))
            .collect()
    }

    /// The error chain of `error` as one line, with the temp dir written as `$DIR`.
    fn render(&self, error: &ConfigError) -> String {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        message.replace(&self.dir.path().display().to_string(), "$DIR")
    }
}

fn env_map(env: &[(&str, &str)]) -> BTreeMap<String, String> {
    env.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
}

fn run(files: &[(&str, &str)], env: &[(&str, &str)]) -> (Fixture, Result<Value, ConfigError>) {
    let fixture = Fixture::new(files);
    let result = load(&fixture.layers(files), &env_map(env));
    (fixture, result)
}

/// Loads the `app-config*` files of `files` (in any directory) in order with `env`, and compares the merged config.
fn check(files: &[(&str, &str)], env: &[(&str, &str)], expected: Value) {
    let (fixture, result) = run(files, env);
    match result {
        Ok(actual) => assert_eq!(actual, expected),
        Err(error) => panic!("unexpected error: {}", fixture.render(&error)),
    }
}

/// Like `check`, but loading must fail with `expected` (the whole error chain, temp dir as `$DIR`).
fn check_error(files: &[(&str, &str)], env: &[(&str, &str)], expected: &str) {
    let (fixture, result) = run(files, env);
    match result {
        Ok(actual) => panic!("expected an error, got {actual}"),
        Err(error) => assert_eq!(fixture.render(&error), expected),
    }
}

// ---- parsing ----

#[test]
fn yaml_uses_the_1_2_core_schema() {
    check(
        &[(
            "app-config.yaml",
            "\
values:
  string: hello
  quoted: '123'
  int: 42
  negative: -7
  hex: 0x1F
  octal: 0o17
  leadingZero: 012
  float: 1.5
  exponent: 1e3
  bool: true
  yes: yes
  on: off
  tilde: ~
  date: 2024-01-01
  list: [1, two, { three: 3 }]
  multiline: |
    line one
    line two
  anchor: &shared { a: 1 }
  alias: *shared
  1: numeric key
  !custom tagged: !custom value
",
        )],
        &[],
        json!({
            "values": {
                "string": "hello",
                "quoted": "123",
                "int": 42,
                "negative": -7,
                "hex": 31,
                "octal": 15,
                "leadingZero": 12,
                "float": 1.5,
                "exponent": 1000.0,
                "bool": true,
                "yes": "yes",
                "on": "off",
                "date": "2024-01-01",
                "list": [1, "two", { "three": 3 }],
                "multiline": "line one\nline two\n",
                "anchor": { "a": 1 },
                "alias": { "a": 1 },
                "1": "numeric key",
                "tagged": "value",
            }
        }),
    );
}

#[test]
fn json_files_are_config_files_too() {
    check(
        &[
            ("app-config.json", r#"{ "app": { "title": "From JSON", "port": 7007 } }"#),
            ("app-config.local.yaml", "app:\n  port: 8080\n"),
        ],
        &[],
        json!({ "app": { "title": "From JSON", "port": 8080 } }),
    );
}

#[test]
fn empty_and_null_documents_are_empty_layers() {
    check(
        &[
            ("app-config.yaml", "app:\n  title: Portal\n"),
            ("app-config.empty.yaml", ""),
            ("app-config.comment.yaml", "# nothing here\n"),
            ("app-config.null.yaml", "~\n"),
        ],
        &[],
        json!({ "app": { "title": "Portal" } }),
    );
}

#[test]
fn yaml_syntax_error_names_file_and_line() {
    check_error(
        &[("app-config.yaml", "app:\n  title: Portal\n  baseUrl: [unclosed\nbackend: {}\n")],
        &[],
        "$DIR/app-config.yaml: line 4, column 8: illegal placement of ':' indicator",
    );
}

#[test]
fn yaml_duplicate_key_names_file_and_line() {
    check_error(
        &[("app-config.yaml", "app:\n  title: One\n  title: Two\n")],
        &[],
        "$DIR/app-config.yaml: line 3, column 3: duplicated key in mapping",
    );
}

#[test]
fn keys_colliding_as_json_are_rejected() {
    check_error(
        &[("app-config.yaml", "ports:\n  1: a\n  '1': b\n")],
        &[],
        "$DIR/app-config.yaml: ports: duplicate key '1'",
    );
}

#[test]
fn json_syntax_error_names_file_and_line() {
    check_error(
        &[("app-config.json", "{\n  \"app\": {\n    \"title\": \"x\",\n  }\n}\n")],
        &[],
        "$DIR/app-config.json: line 4, column 3: trailing comma",
    );
}

#[test]
fn several_yaml_documents_are_rejected() {
    check_error(
        &[("app-config.yaml", "a: 1\n---\nb: 2\n")],
        &[],
        "$DIR/app-config.yaml: contains 2 YAML documents, a config file must hold exactly one",
    );
}

#[test]
fn top_level_must_be_a_mapping() {
    check_error(
        &[("app-config.yaml", "- a\n- b\n")],
        &[],
        "$DIR/app-config.yaml: the top level must be a mapping, found an array",
    );
}

#[test]
fn unreadable_file_is_named() {
    let fixture = Fixture::new(&[]);
    let missing = fixture.dir.path().join("app-config.yaml");
    let error = load(&[missing], &BTreeMap::new()).expect_err("missing file");
    assert_eq!(
        fixture.render(&error),
        "cannot read $DIR/app-config.yaml: No such file or directory (os error 2)"
    );
}

#[test]
fn non_finite_numbers_are_rejected() {
    check_error(
        &[("app-config.yaml", "limits:\n  max: .inf\n")],
        &[],
        "$DIR/app-config.yaml: limits.max: infinite and NaN numbers cannot be represented in config",
    );
}

// ---- layering ----

#[test]
fn objects_deep_merge_and_later_files_win() {
    check(
        &[
            (
                "app-config.yaml",
                "app:\n  title: Base\n  baseUrl: http://localhost:3000\nbackend:\n  listen:\n    port: 7007\n",
            ),
            ("app-config.production.yaml", "app:\n  title: Production\nbackend:\n  listen:\n    host: 0.0.0.0\n"),
            ("app-config.local.yaml", "app:\n  title: Local\n"),
        ],
        &[],
        json!({
            "app": { "title": "Local", "baseUrl": "http://localhost:3000" },
            "backend": { "listen": { "port": 7007, "host": "0.0.0.0" } },
        }),
    );
}

#[test]
fn arrays_and_scalars_replace_wholesale() {
    check(
        &[
            (
                "app-config.yaml",
                "catalog:\n  locations:\n    - { type: file, target: a.yaml }\n    - { type: file, target: b.yaml }\n  rules: allow-all\n",
            ),
            (
                "app-config.local.yaml",
                "catalog:\n  locations:\n    - { type: url, target: https://example.com/c.yaml }\n  rules:\n    - allow: [Component]\n",
            ),
        ],
        &[],
        json!({
            "catalog": {
                "locations": [{ "type": "url", "target": "https://example.com/c.yaml" }],
                "rules": [{ "allow": ["Component"] }],
            }
        }),
    );
}

#[test]
fn a_scalar_can_replace_an_object() {
    check(
        &[
            ("app-config.yaml", "backend:\n  listen:\n    port: 7007\n"),
            ("app-config.local.yaml", "backend:\n  listen: ':8080'\n"),
        ],
        &[],
        json!({ "backend": { "listen": ":8080" } }),
    );
}

#[test]
fn explicit_null_masks_lower_layers() {
    check(
        &[
            (
                "app-config.yaml",
                "backend:\n  database:\n    client: pg\n    connection: postgres://x\n  cache: { store: memory }\n",
            ),
            ("app-config.local.yaml", "backend:\n  database:\n    connection: null\n  cache: ~\n"),
        ],
        &[],
        json!({ "backend": { "database": { "client": "pg" } } }),
    );
}

#[test]
fn a_higher_layer_can_set_a_masked_key_again() {
    check(
        &[
            ("app-config.yaml", "auth:\n  providers:\n    github: { clientId: a }\n"),
            ("app-config.b.yaml", "auth:\n  providers: null\n"),
            ("app-config.c.yaml", "auth:\n  providers:\n    guest: {}\n"),
        ],
        &[],
        json!({ "auth": { "providers": { "guest": {} } } }),
    );
}

#[test]
fn nulls_without_lower_values_read_absent_but_survive_in_arrays() {
    check(
        &[("app-config.yaml", "a: null\nb:\n  c: ~\n  d: 1\nlist: [1, null]\n")],
        &[],
        json!({ "b": { "d": 1 }, "list": [1, null] }),
    );
}

// ---- ${VAR} substitution ----

#[test]
fn variables_are_substituted_in_string_leaves() {
    check(
        &[(
            "app-config.yaml",
            "\
backend:
  baseUrl: http://${HOST}:${ PORT }
  port: 7007
  enabled: true
  fallback: ${MISSING:-localhost}
  emptyFallback: ${EMPTY:-default}
  empty: '[${EMPTY}]'
  escaped: $${HOST}
  list: ['${HOST}', plain]
  ${HOST}: keys are not substituted
",
        )],
        &[("HOST", "example.com"), ("PORT", "7007"), ("EMPTY", "")],
        json!({
            "backend": {
                "baseUrl": "http://example.com:7007",
                "port": 7007,
                "enabled": true,
                "fallback": "localhost",
                "emptyFallback": "default",
                "empty": "[]",
                "escaped": "${HOST}",
                "list": ["example.com", "plain"],
                "${HOST}": "keys are not substituted",
            }
        }),
    );
}

#[test]
fn undefined_variable_removes_the_key_and_lower_layers_show_through() {
    check(
        &[
            ("app-config.yaml", "backend:\n  secret: from-base\n"),
            (
                "app-config.local.yaml",
                "backend:\n  secret: prefix-${UNSET}\n  other: ${UNSET}\n  list: [a, '${UNSET}', b]\n",
            ),
        ],
        &[],
        json!({ "backend": { "secret": "from-base", "list": ["a", "b"] } }),
    );
}

#[test]
fn substitution_never_reads_the_process_environment() {
    // PATH is set in any test process, but only the map passed to `load` counts.
    check(
        &[("app-config.yaml", "path: ${PATH}\nfallback: ${PATH:-none}\n")],
        &[],
        json!({ "fallback": "none" }),
    );
}

// ---- $env ----

#[test]
fn env_directive_reads_the_variable() {
    check(
        &[(
            "app-config.yaml",
            "auth:\n  secret: { $env: SECRET }\n  unset: { $env: UNSET }\n  indirect: { $env: '${WHICH}' }\n",
        )],
        &[("SECRET", "s3cr3t"), ("WHICH", "SECRET")],
        json!({ "auth": { "secret": "s3cr3t", "indirect": "s3cr3t" } }),
    );
}

#[test]
fn env_directive_with_undefined_argument_is_undefined() {
    check(
        &[("app-config.yaml", "token: base\n"), ("app-config.local.yaml", "token: { $env: '${UNSET}' }\n")],
        &[],
        json!({ "token": "base" }),
    );
}

#[test]
fn directive_argument_must_be_a_string() {
    check_error(
        &[("app-config.yaml", "auth:\n  secret: { $env: [A, B] }\n")],
        &[],
        "$DIR/app-config.yaml: auth.secret: $env expects a string, found an array",
    );
}

#[test]
fn directive_with_sibling_keys_names_file_and_key_path() {
    check_error(
        &[(
            "app-config.yaml",
            "backend:\n  database:\n    connection:\n      $file: ./secret.txt\n      user: admin\n",
        )],
        &[],
        "$DIR/app-config.yaml: backend.database.connection: $file cannot have sibling keys, \
         found: user",
    );
}

#[test]
fn other_dollar_keys_are_ordinary_keys() {
    check(
        &[("app-config.yaml", "schema:\n  $schema: http://json-schema.org/draft-07/schema\n  $ref: '#/a'\n")],
        &[],
        json!({ "schema": { "$schema": "http://json-schema.org/draft-07/schema", "$ref": "#/a" } }),
    );
}

// ---- $file ----

#[test]
fn file_directive_reads_relative_to_the_including_file() {
    check(
        &[
            ("config/app-config.yaml", "backend:\n  auth:\n    key: { $file: ./secrets/key.txt }\n"),
            ("config/secrets/key.txt", "abc123\n\n  \t\n"),
            ("secrets/key.txt", "wrong file\n"),
        ],
        &[],
        json!({ "backend": { "auth": { "key": "abc123" } } }),
    );
}

#[test]
fn file_directive_keeps_leading_whitespace_and_substitutes_its_path() {
    check(
        &[
            ("app-config.yaml", "cert: { $file: 'certs/${ENVIRONMENT}.pem' }\n"),
            ("certs/prod.pem", "  -----BEGIN-----\nxyz\n-----END-----\n"),
        ],
        &[("ENVIRONMENT", "prod")],
        json!({ "cert": "  -----BEGIN-----\nxyz\n-----END-----" }),
    );
}

#[test]
fn file_directive_contents_are_not_substituted() {
    check(
        &[("app-config.yaml", "value: { $file: raw.txt }\n"), ("raw.txt", "${NOT_A_VAR}")],
        &[],
        json!({ "value": "${NOT_A_VAR}" }),
    );
}

#[test]
fn missing_file_directive_target_is_named() {
    check_error(
        &[("app-config.yaml", "backend:\n  secret: { $file: ./missing.txt }\n")],
        &[],
        "$DIR/app-config.yaml: backend.secret: $file of ./missing.txt: cannot read \
         $DIR/missing.txt: No such file or directory (os error 2)",
    );
}

// ---- $include ----

#[test]
fn include_directive_parses_yaml_yml_and_json() {
    check(
        &[
            (
                "app-config.yaml",
                "a: { $include: ./a.yaml }\nb: { $include: b.yml }\nc: { $include: ./data/c.json }\n",
            ),
            ("a.yaml", "x: 1\n"),
            ("b.yml", "- one\n- two\n"),
            ("data/c.json", r#"{ "nested": { "ok": true } }"#),
        ],
        &[],
        json!({
            "a": { "x": 1 },
            "b": ["one", "two"],
            "c": { "nested": { "ok": true } },
        }),
    );
}

#[test]
fn include_directive_selects_a_dotted_subtree() {
    check(
        &[
            ("app-config.yaml", "backend:\n  database: { $include: './environments.yaml#prod.database' }\n"),
            (
                "environments.yaml",
                "dev:\n  database: { client: better-sqlite3 }\nprod:\n  database: { client: pg, pool: { max: 10 } }\n",
            ),
        ],
        &[],
        json!({ "backend": { "database": { "client": "pg", "pool": { "max": 10 } } } }),
    );
}

#[test]
fn included_content_is_transformed_relative_to_the_included_file() {
    check(
        &[
            ("app-config.yaml", "backend: { $include: ./conf/backend.yaml }\n"),
            (
                "conf/backend.yaml",
                "\
baseUrl: http://${HOST:-localhost}:7007
database: { $include: ./db/database.yaml#pg }
secret: { $file: ./secret.txt }
escaped: $${HOST}
",
            ),
            ("conf/secret.txt", "from-conf\n"),
            ("secret.txt", "from-root\n"),
            (
                "conf/db/database.yaml",
                "pg:\n  client: pg\n  password: { $env: DB_PASSWORD }\n  ca: { $file: ca.pem }\n",
            ),
            ("conf/db/ca.pem", "CA\n"),
        ],
        &[("DB_PASSWORD", "hunter2")],
        json!({
            "backend": {
                "baseUrl": "http://localhost:7007",
                "database": { "client": "pg", "password": "hunter2", "ca": "CA" },
                "secret": "from-conf",
                "escaped": "${HOST}",
            }
        }),
    );
}

#[test]
fn include_directive_substitutes_its_argument() {
    check(
        &[
            ("app-config.yaml", "catalog: { $include: 'catalog.${STAGE}.yaml' }\n"),
            ("catalog.prod.yaml", "readonly: true\n"),
        ],
        &[("STAGE", "prod")],
        json!({ "catalog": { "readonly": true } }),
    );
}

#[test]
fn included_null_masks_like_any_other_null() {
    check(
        &[
            ("app-config.yaml", "a: { b: 1, c: 2 }\n"),
            ("app-config.local.yaml", "a: { $include: override.yaml }\n"),
            ("override.yaml", "b: null\n"),
        ],
        &[],
        json!({ "a": { "c": 2 } }),
    );
}

#[test]
fn include_of_an_unsupported_extension_is_rejected() {
    check_error(
        &[
            ("app-config.yaml", "backend:\n  database:\n    connection: { $include: ./x.txt }\n"),
            ("x.txt", "hello"),
        ],
        &[],
        "$DIR/app-config.yaml: backend.database.connection: $include of ./x.txt: unsupported \
         file extension, expected .json, .yaml or .yml",
    );
}

#[test]
fn include_of_a_missing_file_is_named() {
    check_error(
        &[("app-config.yaml", "a: { $include: conf/missing.yaml }\n")],
        &[],
        "$DIR/app-config.yaml: a: $include of conf/missing.yaml: cannot read \
         $DIR/conf/missing.yaml: No such file or directory (os error 2)",
    );
}

#[test]
fn include_errors_for_subtree_paths() {
    let included = ("other.yaml", "a:\n  b: scalar\n");
    check_error(
        &[("app-config.yaml", "x: { $include: 'other.yaml#a.c' }\n"), included],
        &[],
        "$DIR/app-config.yaml: x: $include of other.yaml#a.c: no value at 'a.c' in \
         $DIR/other.yaml",
    );
    check_error(
        &[("app-config.yaml", "x: { $include: 'other.yaml#a.b.c' }\n"), included],
        &[],
        "$DIR/app-config.yaml: x: $include of other.yaml#a.b.c: value at 'a.b' in \
         $DIR/other.yaml is not a mapping",
    );
    check_error(
        &[("app-config.yaml", "x: { $include: '#a' }\n")],
        &[],
        "$DIR/app-config.yaml: x: $include of #a: missing file path",
    );
}

#[test]
fn errors_inside_included_files_name_the_included_file() {
    check_error(
        &[
            ("app-config.yaml", "x: { $include: conf/inner.yaml }\n"),
            ("conf/inner.yaml", "list:\n  - { $env: A, other: 1 }\n"),
        ],
        &[],
        "$DIR/conf/inner.yaml: list[0]: $env cannot have sibling keys, found: other",
    );
    check_error(
        &[
            ("app-config.yaml", "x: { $include: 'conf/inner.yaml#outer' }\n"),
            ("conf/inner.yaml", "outer:\n  deep: { $include: ./nope.txt }\n"),
        ],
        &[],
        "$DIR/conf/inner.yaml: outer.deep: $include of ./nope.txt: unsupported file extension, \
         expected .json, .yaml or .yml",
    );
    check_error(
        &[("app-config.yaml", "x: { $include: inner.yaml }\n"), ("inner.yaml", "a: 1\nb: [\n")],
        &[],
        "$DIR/inner.yaml: line 3, column 1: while parsing a node, did not find expected node \
         content",
    );
}

#[test]
fn include_cycles_are_rejected() {
    check_error(
        &[
            ("app-config.yaml", "x: { $include: a.yaml }\n"),
            ("a.yaml", "y: { $include: ./sub/b.yaml }\n"),
            ("sub/b.yaml", "z: { $include: ../a.yaml }\n"),
        ],
        &[],
        "$DIR/sub/b.yaml: z: $include of ../a.yaml: include cycle, $DIR/sub/../a.yaml is \
         already being loaded",
    );
    check_error(
        &[("app-config.yaml", "self: { $include: app-config.yaml }\n")],
        &[],
        "$DIR/app-config.yaml: self: $include of app-config.yaml: include cycle, \
         $DIR/app-config.yaml is already being loaded",
    );
}

#[test]
fn a_whole_file_can_be_one_directive() {
    check(
        &[
            ("app-config.yaml", "$include: shared/base.yaml\n"),
            ("app-config.local.yaml", "$env: UNSET\n"),
            ("shared/base.yaml", "app: { title: Shared }\n"),
        ],
        &[],
        json!({ "app": { "title": "Shared" } }),
    );
}

#[test]
fn the_same_file_may_be_included_twice() {
    check(
        &[
            ("app-config.yaml", "a: { $include: shared.yaml }\nb: { $include: shared.yaml }\n"),
            ("shared.yaml", "v: 1\n"),
        ],
        &[],
        json!({ "a": { "v": 1 }, "b": { "v": 1 } }),
    );
}

// ---- APP_CONFIG_ overrides ----

#[test]
fn app_config_variables_override_every_file() {
    check(
        &[
            ("app-config.yaml", "app:\n  baseUrl: http://localhost:3000\n  title: Portal\n"),
            ("app-config.local.yaml", "app:\n  baseUrl: http://local:3000\n"),
        ],
        &[
            ("APP_CONFIG_app_baseUrl", "https://portal.example.com"),
            ("APP_CONFIG_backend_listen_port", "8080"),
            ("OTHER_VAR", "ignored"),
        ],
        json!({
            "app": { "baseUrl": "https://portal.example.com", "title": "Portal" },
            "backend": { "listen": { "port": 8080 } },
        }),
    );
}

#[test]
fn app_config_values_are_json_with_raw_string_fallback() {
    check(
        &[],
        &[
            ("APP_CONFIG_a_bool", "false"),
            ("APP_CONFIG_a_string", "\"false\""),
            ("APP_CONFIG_a_raw", "My Portal"),
            ("APP_CONFIG_a_number", "1.5"),
            ("APP_CONFIG_a_list", "[\"x\", 2]"),
            ("APP_CONFIG_a_object", "{\"k\": {\"v\": true}}"),
            ("APP_CONFIG_a_brokenJson", "{not json"),
            ("APP_CONFIG_my-plugin_enabled", "true"),
            ("APP_CONFIG_a_empty", ""),
        ],
        json!({
            "a": {
                "bool": false,
                "string": "false",
                "raw": "My Portal",
                "number": 1.5,
                "list": ["x", 2],
                "object": { "k": { "v": true } },
                "brokenJson": "{not json",
            },
            "my-plugin": { "enabled": true },
        }),
    );
}

#[test]
fn app_config_objects_deep_merge_into_files() {
    check(
        &[("app-config.yaml", "backend:\n  database:\n    client: pg\n    connection: { host: db }\n")],
        &[("APP_CONFIG_backend_database", "{\"connection\": {\"port\": 5432}}")],
        json!({
            "backend": { "database": { "client": "pg", "connection": { "host": "db", "port": 5432 } } }
        }),
    );
}

#[test]
fn app_config_values_are_not_substituted() {
    check(
        &[],
        &[("APP_CONFIG_app_title", "${HOST}"), ("HOST", "x")],
        json!({ "app": { "title": "${HOST}" } }),
    );
}

#[test]
fn app_config_null_is_rejected() {
    check_error(
        &[("app-config.yaml", "app:\n  title: Portal\n")],
        &[("APP_CONFIG_app_title", "null")],
        "environment variable APP_CONFIG_app_title: value may not be null; to unset a key, set it \
         to null in a config file",
    );
}

#[test]
fn app_config_invalid_key_parts_are_rejected() {
    let message = "each part must start with a letter and hold only letters, digits and single \
                   dashes";
    check_error(
        &[],
        &[("APP_CONFIG_app__title", "x")],
        &format!("environment variable APP_CONFIG_app__title: invalid key part '': {message}"),
    );
    check_error(
        &[],
        &[("APP_CONFIG_", "x")],
        &format!("environment variable APP_CONFIG_: invalid key part '': {message}"),
    );
    check_error(
        &[],
        &[("APP_CONFIG_app_2fa", "x")],
        &format!("environment variable APP_CONFIG_app_2fa: invalid key part '2fa': {message}"),
    );
}

#[test]
fn app_config_nesting_under_another_variables_scalar_is_rejected() {
    check_error(
        &[],
        &[("APP_CONFIG_backend", "1"), ("APP_CONFIG_backend_port", "2")],
        "environment variable APP_CONFIG_backend_port: cannot nest config under 'backend', which \
         another APP_CONFIG_ variable sets to a non-object value",
    );
}

#[test]
fn app_config_setting_the_same_key_twice_is_rejected() {
    check_error(
        &[],
        &[("APP_CONFIG_backend", "{\"port\": 1}"), ("APP_CONFIG_backend_port", "2")],
        "environment variable APP_CONFIG_backend_port: key 'backend.port' is already set by \
         another APP_CONFIG_ variable",
    );
}

#[test]
fn app_config_may_nest_under_a_file_scalar() {
    check(
        &[("app-config.yaml", "backend:\n  listen: ':7007'\n")],
        &[("APP_CONFIG_backend_listen_port", "8080")],
        json!({ "backend": { "listen": { "port": 8080 } } }),
    );
}

// ---- default_files ----

#[test]
fn default_files_lists_those_that_exist_in_order() {
    let none = Fixture::new(&[("other.yaml", "")]);
    assert_eq!(default_files(none.dir.path()), Vec::<PathBuf>::new());

    let main_only = Fixture::new(&[("app-config.yaml", "")]);
    assert_eq!(default_files(main_only.dir.path()), vec![main_only.dir.path().join("app-config.yaml")]);

    let local_only = Fixture::new(&[("app-config.local.yaml", "")]);
    assert_eq!(
        default_files(local_only.dir.path()),
        vec![local_only.dir.path().join("app-config.local.yaml")]
    );

    let both = Fixture::new(&[
        ("app-config.local.yaml", ""),
        ("app-config.yaml", ""),
        ("app-config.production.yaml", ""),
    ]);
    assert_eq!(
        default_files(both.dir.path()),
        vec![both.dir.path().join("app-config.yaml"), both.dir.path().join("app-config.local.yaml"),]
    );
}

#[test]
fn load_of_no_files_is_just_the_overrides() {
    let config = load(&[], &env_map(&[("APP_CONFIG_app_title", "T")])).expect("load");
    assert_eq!(config, json!({ "app": { "title": "T" } }));
}

// ---- get ----

#[test]
fn get_walks_dotted_paths() {
    let config = json!({
        "backend": { "database": { "client": "pg" }, "list": [1], "gone": null },
        "a.b": "dotted key",
    });
    let cases: [(&str, Option<Value>); 8] = [
        ("backend.database.client", Some(json!("pg"))),
        ("backend.database", Some(json!({ "client": "pg" }))),
        ("backend.list", Some(json!([1]))),
        ("backend.missing", None),
        ("backend.database.client.deeper", None),
        ("backend.list.0", None),
        ("backend.gone", None),
        ("", Some(config.clone())),
    ];
    for (dotted, expected) in cases {
        assert_eq!(get(&config, dotted), expected.as_ref(), "get {dotted:?}");
    }
}

#[test]
fn deeply_nested_files_are_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app-config.yaml");
    std::fs::write(&path, format!("a: \n{}x\n", "- ".repeat(10_000))).unwrap();
    let error = load(&[path], &std::collections::BTreeMap::new()).unwrap_err();
    assert!(format!("{error:#}").contains("nesting deeper than 128 levels"), "{error:#}");
}
