//! The page shell and small shared widgets.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use crate::assets;
use crate::view::Ref;
use crate::Ui;

/// The theme a visitor chose; `System` follows the browser's preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Theme {
    System,
    Light,
    Dark,
}

impl Theme {
    pub(crate) fn parse(text: &str) -> Theme {
        match text {
            "light" => Theme::Light,
            "dark" => Theme::Dark,
            _ => Theme::System,
        }
    }

    fn attribute(self) -> Option<&'static str> {
        match self {
            Theme::System => None,
            Theme::Light => Some("light"),
            Theme::Dark => Some("dark"),
        }
    }
}

/// Per-request page context: the current path (for navigation state) and the theme cookie.
#[derive(Debug, Clone)]
pub(crate) struct Chrome {
    pub(crate) path: String,
    pub(crate) path_and_query: String,
    pub(crate) theme: Theme,
}

impl<S: Send + Sync> FromRequestParts<S> for Chrome {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Chrome, Self::Rejection> {
        let theme = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|cookies| cookies.split(';'))
            .filter_map(|cookie| cookie.trim().strip_prefix("portico-theme="))
            .map(Theme::parse)
            .next_back()
            .unwrap_or(Theme::System);
        Ok(Chrome {
            path: parts.uri.path().to_owned(),
            path_and_query: parts.uri.path_and_query().map(|pq| pq.as_str().to_owned()).unwrap_or_default(),
            theme,
        })
    }
}

const NAV: &[(&str, &str)] = &[
    ("/", "Home"),
    ("/catalog", "Catalog"),
    ("/api-docs", "APIs"),
    ("/create", "Create"),
    ("/docs", "Docs"),
    ("/search", "Search"),
    ("/settings", "Settings"),
];

fn is_current(path: &str, target: &str) -> bool {
    if target == "/" {
        return path == "/";
    }
    path == target || (target == "/catalog" && path.starts_with("/catalog/"))
}

/// A complete page with status 200.
pub(crate) fn page(ui: &Ui, chrome: &Chrome, title: &str, body: Markup) -> Response {
    page_with_status(ui, chrome, StatusCode::OK, title, body)
}

pub(crate) fn page_with_status(
    ui: &Ui,
    chrome: &Chrome,
    status: StatusCode,
    title: &str,
    body: Markup,
) -> Response {
    let app_title = &ui.options.app_title;
    let next_theme = if chrome.theme == Theme::Dark { "light" } else { "dark" };
    let markup = html! {
        (DOCTYPE)
        html lang="en" data-theme=[chrome.theme.attribute()] {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " | " (app_title) }
                link rel="stylesheet" href=(assets::css_url());
                script src=(assets::js_url()) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { (app_title) }
                    span.org { (ui.options.organization) }
                    form.top-search role="search" action="/search" method="get" {
                        label.visually-hidden for="top-q" { "Search the catalog" }
                        input #top-q type="search" name="q" placeholder="Search the catalog";
                    }
                    form.theme method="post" action="/settings/theme" {
                        input type="hidden" name="theme" value=(next_theme);
                        input type="hidden" name="back" value=(chrome.path_and_query);
                        button type="submit" data-theme-toggle {
                            @if next_theme == "dark" { "Dark theme" } @else { "Light theme" }
                        }
                    }
                }
                div.shell {
                    nav.side aria-label="Main" {
                        ul {
                            @for (target, label) in NAV {
                                li {
                                    a href=(target) aria-current=[is_current(&chrome.path, target).then_some("page")] { (label) }
                                }
                            }
                        }
                    }
                    main #main tabindex="-1" { (body) }
                }
            }
        }
    };
    (status, [(header::CACHE_CONTROL, "no-store")], markup).into_response()
}

/// A link to an entity, named by its ref (short where the kind is implied).
pub(crate) fn entity_link(target: &Ref, implied_kind: Option<&str>) -> Markup {
    html! { a href=(target.href()) { (target.display(implied_kind)) } }
}

/// A list of tags as small labels.
pub(crate) fn tags(tags: &[&str]) -> Markup {
    html! {
        @if !tags.is_empty() {
            ul.tags { @for tag in tags { li { (tag) } } }
        }
    }
}

/// A titled card.
pub(crate) fn card(title: &str, body: Markup) -> Markup {
    html! {
        section.card aria-label=(title) {
            h2 { (title) }
            (body)
        }
    }
}
