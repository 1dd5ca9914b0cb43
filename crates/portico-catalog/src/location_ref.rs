//! Location references `<type>:<target>` (reference §5.1).

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LocationRef {
    pub kind: String,
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LocationRefError {
    pub message: String,
}

impl LocationRef {
    /// Splits on the first `:`, trims both parts, rejects empty parts, `http`/`https` types
    /// and `javascript:` targets, with Backstage's messages.
    pub fn parse(text: &str) -> Result<LocationRef, LocationRefError> {
        let error = |message: String| Err(LocationRefError { message });
        let Some((kind, target)) = text.split_once(':') else {
            return error(expected_form(text));
        };
        let (kind, target) = (kind.trim(), target.trim());
        if kind.is_empty() || target.is_empty() {
            return error(expected_form(text));
        }
        // `https://host/x` looks like a location ref with type `https`; it is almost always a
        // URL pasted without its `url:` prefix, so say how to fix it.
        if kind == "http" || kind == "https" {
            return error(format!(
                "Invalid location ref '{text}', please prefix it with 'url:', e.g. 'url:{text}'"
            ));
        }
        if is_javascript_url(target) {
            return error(format!("Invalid location ref '{text}', target is a javascript: URL"));
        }
        Ok(LocationRef { kind: kind.to_owned(), target: target.to_owned() })
    }
}

impl std::fmt::Display for LocationRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.target)
    }
}

/// Whether a browser would run `value` as a `javascript:` URL.
///
/// A WHATWG URL parser strips leading C0 controls and spaces and drops every tab, CR and LF
/// before reading the scheme, and schemes are case-insensitive, so `" java\tScript:alert(1)"`
/// is still script. Matching the parser's view is what makes the check safe.
pub fn is_javascript_url(value: &str) -> bool {
    let mut scheme =
        value.trim_start_matches(|c: char| c <= ' ').chars().filter(|c| !matches!(c, '\t' | '\r' | '\n'));
    "javascript:".chars().all(|expected| scheme.next().is_some_and(|c| c.to_ascii_lowercase() == expected))
}

fn expected_form(text: &str) -> String {
    format!("Unable to parse location ref '{text}', expected '<type>:<target>', e.g. 'url:https://host/path'")
}

#[cfg(test)]
mod tests;
