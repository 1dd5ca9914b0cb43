//! Test support for Portico's crates: real services that tests run against instead of mocks.
//!
//! Dev-dependency only. It provides PostgreSQL (`fresh_database`) and headless Chromium
//! (`Browser`); `require` tells a test
//! whether a missing service must fail it rather than skip it.
//!
//! The policy, shared by every service:
//! - A service the machine does not have (no binaries) skips the test with a printed
//!   `skipping: … not available (reason)` line, so `cargo test` passes on a bare laptop.
//! - When `PORTICO_TEST_REQUIRE` names the service (a comma-separated list such as
//!   `postgres,chromium`), the same situation fails the test instead: CI sets it so that a broken
//!   image cannot turn the suite silently green.
//! - A service that is present but fails to start always fails the test.

mod chromium;
mod postgres;

pub use crate::chromium::Browser;
pub use crate::postgres::{fresh_database, PostgresServer};

/// True when `PORTICO_TEST_REQUIRE` (comma-separated, case-insensitive) names `component`, so a
/// test must fail rather than skip when that component is unavailable.
pub fn require(component: &str) -> bool {
    std::env::var("PORTICO_TEST_REQUIRE").is_ok_and(|list| listed(&list, component))
}

fn listed(list: &str, component: &str) -> bool {
    list.split(',').any(|item| item.trim().eq_ignore_ascii_case(component))
}

/// Skips (returns `None` after printing why) or, when `component` is required, panics.
pub(crate) fn unavailable<T>(component: &str, reason: &str) -> Option<T> {
    if require(component) {
        panic!(
            "{component} is required by PORTICO_TEST_REQUIRE={} but not available: {reason}",
            std::env::var("PORTICO_TEST_REQUIRE").unwrap_or_default()
        );
    }
    eprintln!("skipping: {} not available ({reason})", display_name(component));
    None
}

fn display_name(component: &str) -> &str {
    match component {
        "postgres" => "PostgreSQL",
        "chromium" => "Chromium",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::listed;

    #[test]
    fn require_list_is_comma_separated_and_case_insensitive() {
        let cases = [
            ("postgres", true),
            ("postgres,chromium", true),
            (" chromium , Postgres ", true),
            ("", false),
            ("postgresql", false),
            ("chromium", false),
        ];
        for (list, expected) in cases {
            assert_eq!(listed(list, "postgres"), expected, "{list:?}");
        }
    }
}
