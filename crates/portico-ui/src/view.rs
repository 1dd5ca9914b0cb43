//! Reading entities for display: refs, titles, links and URLs that are safe to put in `href`.

use std::fmt::Write as _;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

/// Characters kept as they are in a path segment or query value we build.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Percent-encodes a path segment or query value.
pub(crate) fn encode(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// A parsed `kind:namespace/name` ref (as found in relations and `spec` fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ref {
    pub(crate) kind: String,
    pub(crate) namespace: String,
    pub(crate) name: String,
}

impl Ref {
    /// Parses a ref, filling in the default kind and namespace like Backstage's `parseEntityRef`.
    pub(crate) fn parse(text: &str, default_kind: Option<&str>, default_namespace: &str) -> Option<Ref> {
        let (kind, rest) = match text.split_once(':') {
            Some((kind, rest)) => (kind.to_owned(), rest),
            None => (default_kind?.to_owned(), text),
        };
        let (namespace, name) = match rest.split_once('/') {
            Some((namespace, name)) => (namespace.to_owned(), name.to_owned()),
            None => (default_namespace.to_owned(), rest.to_owned()),
        };
        if kind.is_empty() || namespace.is_empty() || name.is_empty() {
            return None;
        }
        Some(Ref { kind, namespace, name })
    }

    pub(crate) fn of(entity: &Value) -> Option<Ref> {
        Some(Ref {
            kind: str_at(entity, "/kind")?.to_owned(),
            namespace: str_at(entity, "/metadata/namespace").unwrap_or("default").to_owned(),
            name: str_at(entity, "/metadata/name")?.to_owned(),
        })
    }

    /// The canonical (lower-cased) ref, the catalog's key.
    pub(crate) fn canonical(&self) -> String {
        format!("{}:{}/{}", self.kind.to_lowercase(), self.namespace.to_lowercase(), self.name.to_lowercase())
    }

    /// The entity page, Backstage's path shape.
    pub(crate) fn href(&self) -> String {
        format!(
            "/catalog/{}/{}/{}",
            encode(&self.namespace.to_lowercase()),
            encode(&self.kind.to_lowercase()),
            encode(&self.name)
        )
    }

    /// `name`, or `namespace/name` outside the default namespace; with `kind:` in front when
    /// the kind is not the one the context implies.
    pub(crate) fn display(&self, implied_kind: Option<&str>) -> String {
        let mut text = String::new();
        if !implied_kind.is_some_and(|kind| kind.eq_ignore_ascii_case(&self.kind)) {
            let _ = write!(text, "{}:", self.kind.to_lowercase());
        }
        if !self.namespace.eq_ignore_ascii_case("default") {
            let _ = write!(text, "{}/", self.namespace);
        }
        text.push_str(&self.name);
        text
    }
}

pub(crate) fn str_at<'a>(entity: &'a Value, pointer: &str) -> Option<&'a str> {
    entity.pointer(pointer).and_then(Value::as_str)
}

/// `metadata.title`, else `metadata.name`.
pub(crate) fn title_of(entity: &Value) -> &str {
    str_at(entity, "/metadata/title").or_else(|| str_at(entity, "/metadata/name")).unwrap_or("")
}

/// The string items of an array at `pointer` (non-strings are skipped).
pub(crate) fn strings_at<'a>(entity: &'a Value, pointer: &str) -> Vec<&'a str> {
    match entity.pointer(pointer) {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(one)) => vec![one.as_str()],
        _ => Vec::new(),
    }
}

/// Targets of the entity's relations of one type, in order.
pub(crate) fn relation_targets(entity: &Value, relation: &str) -> Vec<Ref> {
    let Some(Value::Array(relations)) = entity.get("relations") else { return Vec::new() };
    relations
        .iter()
        .filter(|item| item.get("type").and_then(Value::as_str) == Some(relation))
        .filter_map(|item| item.get("targetRef").and_then(Value::as_str))
        .filter_map(|target| Ref::parse(target, None, "default"))
        .collect()
}

/// Every `(type, target)` relation of the entity.
pub(crate) fn relations(entity: &Value) -> Vec<(String, Ref)> {
    let Some(Value::Array(relations)) = entity.get("relations") else { return Vec::new() };
    relations
        .iter()
        .filter_map(|item| {
            let kind = item.get("type")?.as_str()?;
            let target = Ref::parse(item.get("targetRef")?.as_str()?, None, "default")?;
            Some((kind.to_owned(), target))
        })
        .collect()
}

/// The URL if it is safe to put in an `href`: absolute `http`, `https` or `mailto` URLs and
/// same-site paths. Anything else (`javascript:`, `data:`, protocol-relative `//host`) is shown
/// as text, never as a link.
pub(crate) fn safe_href(text: &str) -> Option<String> {
    let trimmed = text.trim();
    if is_local_path(trimmed) {
        return Some(trimmed.to_owned());
    }
    let url = url::Url::parse(trimmed).ok()?;
    matches!(url.scheme(), "http" | "https" | "mailto").then(|| url.to_string())
}

/// A path on this site (`/x`), not a protocol-relative `//host` or `/\\host` that browsers
/// would follow off-site. Redirects after forms only go to such paths.
pub(crate) fn is_local_path(text: &str) -> bool {
    text.starts_with('/') && !text.starts_with("//") && !text.starts_with("/\\")
}

/// Where to edit or view the entity's source, from the `backstage.io/edit-url`,
/// `backstage.io/view-url` and `backstage.io/source-location` annotations.
pub(crate) fn source_links(entity: &Value) -> (Option<String>, Option<String>) {
    let annotation = |key: &str| {
        entity
            .pointer("/metadata/annotations")
            .and_then(|annotations| annotations.get(key))
            .and_then(Value::as_str)
    };
    let view = annotation("backstage.io/view-url")
        .or_else(|| {
            annotation("backstage.io/source-location").and_then(|location| location.strip_prefix("url:"))
        })
        .or_else(|| {
            annotation("backstage.io/managed-by-location").and_then(|location| location.strip_prefix("url:"))
        })
        .and_then(safe_href);
    let edit = annotation("backstage.io/edit-url").and_then(safe_href);
    (view, edit)
}

/// Builds a query string from pairs, skipping empty values.
pub(crate) fn query_string<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut text = String::new();
    for (key, value) in pairs {
        if value.is_empty() {
            continue;
        }
        text.push(if text.is_empty() { '?' } else { '&' });
        let _ = write!(text, "{}={}", encode(key), encode(value));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_urls_are_not_links() {
        for hostile in [
            "javascript:alert(1)",
            " JavaScript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "//evil.example/x",
            "/\\evil.example",
            "vbscript:msgbox",
            "not a url",
        ] {
            assert_eq!(safe_href(hostile), None, "{hostile}");
        }
        assert_eq!(safe_href("https://example.com/a b").as_deref(), Some("https://example.com/a%20b"));
        assert_eq!(
            safe_href("/catalog/default/component/x").as_deref(),
            Some("/catalog/default/component/x")
        );
        assert_eq!(safe_href("mailto:team@example.com").as_deref(), Some("mailto:team@example.com"));
    }

    #[test]
    fn refs_parse_with_defaults_and_link_in_backstage_path_shape() {
        let parsed = Ref::parse("team-a", Some("Group"), "default").unwrap();
        assert_eq!(parsed.href(), "/catalog/default/group/team-a");
        assert_eq!(parsed.display(Some("group")), "team-a");
        assert_eq!(parsed.display(None), "group:team-a");
        let other = Ref::parse("component:ops/Web Site", None, "default").unwrap();
        assert_eq!(other.href(), "/catalog/ops/component/Web%20Site");
        assert_eq!(other.canonical(), "component:ops/web site");
        assert_eq!(Ref::parse("no-kind", None, "default"), None);
    }

    #[test]
    fn query_strings_encode_and_skip_empty_values() {
        assert_eq!(
            query_string([("kind", "component"), ("q", ""), ("owner", "group:a/b c")]),
            "?kind=component&owner=group%3Aa%2Fb%20c"
        );
    }
}
