//! `EntityRef::parse` with arbitrary text and defaults.
//!
//! Input (UTF-8, other inputs are skipped): `<text>[\n<default kind>[\n<default namespace>]]`.
//! A missing line is `None`, a present one (even empty) is `Some`.
//!
//! Properties:
//! - `parse` and `from_value` never panic;
//! - `from_value` of a JSON string agrees with `parse`;
//! - when parsing succeeds with well-formed defaults, the canonical form parses again (without
//!   defaults) to the same canonical form, and the compound `{kind, namespace, name}` form of
//!   the parsed ref gives the same ref back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_catalog::entity_ref::{EntityRef, RefDefaults};
use serde_json::{json, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = input.splitn(3, '\n');
    let text = lines.next().unwrap_or_default();
    let defaults = RefDefaults { kind: lines.next(), namespace: lines.next() };

    let parsed = EntityRef::parse(text, defaults);
    let from_value = EntityRef::from_value(&Value::String(text.to_owned()), defaults);
    assert_eq!(parsed, from_value, "from_value(string) disagrees with parse for {input:?}");

    let Ok(parsed) = parsed else {
        return;
    };
    let canonical = parsed.canonical();
    assert_eq!(parsed.to_string(), canonical);

    // `parse` does not validate the defaults it is handed: a default kind containing `:` or `/`,
    // or an empty default, yields a ref whose canonical form is not on the `kind:namespace/name`
    // form. Callers pass fixed kinds and already-validated namespaces, so only check the
    // round trip for defaults that could themselves have been written in a reference.
    let kind_ok = defaults.kind.is_none_or(|kind| !kind.is_empty() && !kind.contains([':', '/']));
    let namespace_ok =
        defaults.namespace.is_none_or(|namespace| !namespace.is_empty() && !namespace.contains('/'));
    if !(kind_ok && namespace_ok) {
        return;
    }

    let reparsed = EntityRef::parse(&canonical, RefDefaults::default())
        .unwrap_or_else(|error| panic!("canonical form {canonical:?} of {input:?} does not parse: {error}"));
    assert_eq!(reparsed.canonical(), canonical, "canonical form of {input:?} is not stable");

    let compound = json!({"kind": parsed.kind, "namespace": parsed.namespace, "name": parsed.name});
    let from_compound = EntityRef::from_value(&compound, RefDefaults::default())
        .unwrap_or_else(|error| panic!("compound form {compound} of {input:?} does not parse: {error}"));
    assert_eq!(from_compound, parsed, "compound form of {input:?} gives another ref");
});
