use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::cursor::{decode, encode};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PageCursor {
    limit: u64,
    offset: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<String>,
}

fn check_decode(cursor: &str, expected: Value) {
    assert_eq!(decode::<Value>(cursor).unwrap(), expected, "for {cursor}");
}

fn check_decode_error(cursor: &str, expected: &str) {
    assert_eq!(decode::<PageCursor>(cursor).unwrap_err().message, expected, "for {cursor}");
}

#[test]
fn encodes_standard_base64_of_json() {
    let cursor = PageCursor { limit: 2, offset: 4, query: None };
    assert_eq!(encode(&cursor), "eyJsaW1pdCI6Miwib2Zmc2V0Ijo0fQ==");
    assert_eq!(decode::<PageCursor>(&encode(&cursor)).unwrap(), cursor);
}

#[test]
fn decoding_is_lenient_about_padding_and_alphabet() {
    check_decode("eyJsaW1pdCI6Miwib2Zmc2V0Ijo0fQ==", json!({"limit": 2, "offset": 4}));
    check_decode("eyJsaW1pdCI6Miwib2Zmc2V0Ijo0fQ", json!({"limit": 2, "offset": 4}));
    // `{"q":"???"}` encodes with `/` in the standard alphabet and `_` in the URL-safe one.
    let standard = encode(&json!({"q": "???"}));
    assert!(standard.contains('/'), "{standard}");
    check_decode(&standard.replace('/', "_"), json!({"q": "???"}));
}

#[test]
fn malformed_cursors_are_rejected() {
    check_decode_error("not base64!", "Malformed cursor: invalid base64: Invalid symbol 32, offset 3.");
    check_decode_error(
        &encode(&json!({"limit": "two"})),
        "Malformed cursor: invalid content: invalid type: string \"two\", expected u64",
    );
    check_decode_error(&encode(&json!([1])), "Malformed cursor: expected a JSON object");
    check_decode_error("", "Malformed cursor: invalid JSON: EOF while parsing a value at line 1 column 0");
}

proptest! {
    #[test]
    fn decode_inverts_encode(limit in any::<u64>(), offset in any::<u64>(), query in proptest::option::of(".*")) {
        let cursor = PageCursor { limit, offset, query };
        prop_assert_eq!(decode::<PageCursor>(&encode(&cursor)).unwrap(), cursor);
    }

    #[test]
    fn decoding_arbitrary_text_never_panics(text in ".{0,64}") {
        let _ = decode::<PageCursor>(&text);
    }
}
