//! `parse_descriptor` on arbitrary UTF-8, then everything the catalog runs on each document.
//!
//! Properties: nothing panics. For every document: `check_envelope`, `validate_entity`,
//! `relations_of` and `search_rows` on the value as parsed, then again after `preprocess`;
//! `line_of` for the fields diagnostics point at and for every problem reported.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_catalog::descriptor::{parse_descriptor, Document};
use portico_catalog::relations::relations_of;
use portico_catalog::validate::{check_envelope, preprocess, validate_entity};
use portico_query::search::search_rows;

const FIELDS: [&str; 6] = ["", "kind", "metadata.name", "spec.owner", "spec.providesApis.1", "a..b."];

fn check(document: &Document, value: &serde_json::Value) {
    for problem in check_envelope(value).iter().chain(&validate_entity(value)) {
        let _ = document.line_of(&problem.field);
    }
    if let Err(problems) = relations_of(value) {
        for problem in &problems {
            let _ = document.line_of(&problem.field);
        }
    }
    let _ = search_rows(value);
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (documents, _errors) = parse_descriptor(text);
    for document in &documents {
        for field in FIELDS {
            let _ = document.line_of(field);
        }
        check(document, &document.value);
        let mut value = document.value.clone();
        preprocess(&mut value);
        check(document, &value);
    }
});
