//! Catalog rules: which kinds a location may introduce (reference §6.8).

use globset::{GlobBuilder, GlobMatcher};

/// One `catalog.rules[]` entry or one per-location rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `(kind lower-cased, spec.type lower-cased)` pairs; a missing type allows every type.
    pub allow: Vec<(String, Option<String>)>,
    /// `None` applies the rule everywhere.
    pub locations: Option<Vec<LocationMatcher>>,
}

#[derive(Debug, Clone)]
pub struct LocationMatcher {
    pub kind: String,
    pub exact: Option<String>,
    pub pattern: Option<GlobMatcher>,
}

impl LocationMatcher {
    pub fn new(kind: &str, exact: Option<&str>, pattern: Option<&str>) -> Result<LocationMatcher, String> {
        let pattern = match pattern {
            None => None,
            Some(pattern) => Some(
                GlobBuilder::new(pattern)
                    .case_insensitive(true)
                    .literal_separator(false)
                    .build()
                    .map_err(|error| format!("invalid location pattern {pattern}: {error}"))?
                    .compile_matcher(),
            ),
        };
        Ok(LocationMatcher { kind: kind.to_owned(), exact: exact.map(str::to_owned), pattern })
    }

    fn matches(&self, kind: &str, target: &str) -> bool {
        if self.kind != kind {
            return false;
        }
        match (&self.exact, &self.pattern) {
            (Some(exact), _) => exact == target,
            (None, Some(pattern)) => pattern.is_match(target),
            (None, None) => true,
        }
    }
}

/// The rules in force: global ones plus those attached to single config locations.
#[derive(Debug, Clone)]
pub struct Rules {
    rules: Vec<Rule>,
}

impl Rules {
    /// Backstage's default when `catalog.rules` is absent: Component, API and Location only.
    pub fn backstage_default() -> Rules {
        Rules::new(vec![Rule {
            allow: ["component", "api", "location"].iter().map(|kind| ((*kind).to_owned(), None)).collect(),
            locations: None,
        }])
    }

    pub fn new(rules: Vec<Rule>) -> Rules {
        Rules { rules }
    }

    pub fn push(&mut self, rule: Rule) {
        self.rules.push(rule);
    }

    /// Whether an entity of `kind` and `spec_type` may come from the origin location.
    pub fn is_allowed(
        &self,
        kind: &str,
        spec_type: Option<&str>,
        origin_kind: &str,
        origin_target: &str,
    ) -> bool {
        let kind = kind.to_lowercase();
        let spec_type = spec_type.map(str::to_lowercase);
        self.rules.iter().any(|rule| {
            let location_matches = match &rule.locations {
                None => true,
                Some(matchers) => matchers.iter().any(|matcher| matcher.matches(origin_kind, origin_target)),
            };
            location_matches
                && rule.allow.iter().any(|(allowed_kind, allowed_type)| {
                    *allowed_kind == kind
                        && allowed_type
                            .as_ref()
                            .is_none_or(|allowed| spec_type.as_deref() == Some(allowed.as_str()))
                })
        })
    }
}
