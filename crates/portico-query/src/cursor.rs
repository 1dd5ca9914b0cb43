//! Opaque pagination cursors (reference §7.5).
//!
//! A cursor is standard base64 of a JSON object. catalog-client decodes cursors and looks for
//! a top-level `query` key, so the format is opaque to callers but not to that client.
//! Decoding is lenient about padding and also accepts the URL-safe alphabet, since cursors
//! travel in query strings where a careless client may mangle them.
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CursorError {
    /// `Malformed cursor: <reason>`.
    pub message: String,
}

/// Encodes `content` as standard base64 of its JSON form.
///
/// Cursor contents are plain structs whose maps have string keys, so serialization cannot fail.
pub fn encode<T: Serialize>(content: &T) -> String {
    let json = serde_json::to_vec(content).expect("cursor contents serialize to JSON");
    STANDARD.encode(json)
}

/// Decodes a cursor made by [`encode`].
pub fn decode<T: DeserializeOwned>(cursor: &str) -> Result<T, CursorError> {
    let bytes = LENIENT_STANDARD
        .decode(cursor)
        .or_else(|_| LENIENT_URL_SAFE.decode(cursor))
        .map_err(|error| malformed(format!("invalid base64: {error}")))?;
    let content: Value =
        serde_json::from_slice(&bytes).map_err(|error| malformed(format!("invalid JSON: {error}")))?;
    // Serde would also accept an array for a struct; cursors are always objects.
    if !content.is_object() {
        return Err(malformed("expected a JSON object".to_owned()));
    }
    serde_json::from_value(content).map_err(|error| malformed(format!("invalid content: {error}")))
}

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const LENIENT_URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

fn malformed(reason: String) -> CursorError {
    CursorError { message: format!("Malformed cursor: {reason}") }
}

#[cfg(test)]
mod tests;
