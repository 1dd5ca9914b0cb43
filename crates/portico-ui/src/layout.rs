//! The page shell and small shared widgets.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use portico_app::identity::Identity;

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

/// Per-request page context: the current path (for navigation state), the theme cookie, the
/// caller, and the anti-forgery token every form carries.
#[derive(Debug, Clone)]
pub(crate) struct Chrome {
    pub(crate) path: String,
    pub(crate) path_and_query: String,
    pub(crate) theme: Theme,
    /// The visitor's `portico-csrf` cookie, or a fresh value the page sets.
    pub(crate) csrf: String,
    pub(crate) new_csrf: bool,
    pub(crate) identity: Identity,
}

/// The double-submit anti-forgery cookie: every form echoes its value in `_csrf`, which a page
/// on another site can neither read nor set.
pub(crate) const CSRF_COOKIE: &str = "portico-csrf";

/// The value of a cookie in a request's headers.
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|cookie| cookie.trim().strip_prefix(prefix.as_str()).map(str::to_owned))
        .next_back()
}

/// The hidden anti-forgery field of a form.
pub(crate) fn csrf_field(chrome: &Chrome) -> Markup {
    html! { input type="hidden" name="_csrf" value=(chrome.csrf); }
}

impl<S: Send + Sync> FromRequestParts<S> for Chrome {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Chrome, Self::Rejection> {
        let theme =
            cookie(&parts.headers, "portico-theme").map_or(Theme::System, |value| Theme::parse(&value));
        let existing = cookie(&parts.headers, CSRF_COOKIE).filter(|value| value.len() >= 32);
        let new_csrf = existing.is_none();
        let csrf = existing.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        Ok(Chrome {
            path: parts.uri.path().to_owned(),
            path_and_query: parts.uri.path_and_query().map(|pq| pq.as_str().to_owned()).unwrap_or_default(),
            theme,
            csrf,
            new_csrf,
            identity: parts.extensions.get::<Identity>().cloned().unwrap_or(Identity::Anonymous),
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
    shell(ui, chrome, status, title, body, None)
}

/// A page that reloads itself every `seconds` when script is off (a running task's page).
pub(crate) fn refreshing_page(ui: &Ui, chrome: &Chrome, title: &str, body: Markup, seconds: u32) -> Response {
    shell(ui, chrome, StatusCode::OK, title, body, Some(seconds))
}

fn shell(
    ui: &Ui,
    chrome: &Chrome,
    status: StatusCode,
    title: &str,
    body: Markup,
    refresh: Option<u32>,
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
                @if let Some(seconds) = refresh {
                    // Without script the page reloads itself; with it, the script follows the
                    // page's live data instead (see portico.js).
                    noscript { meta http-equiv="refresh" content=(seconds); }
                }
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
                    @if let Identity::User { user_entity_ref, .. } = &chrome.identity {
                        span.user {
                            "Signed in as "
                            @match crate::view::Ref::parse(user_entity_ref, Some("user"), "default") {
                                Some(user) => a href=(user.href()) title="Your profile" { (user_entity_ref) },
                                None => (user_entity_ref),
                            }
                        }
                        form.theme method="post" action="/sign-out" {
                            (csrf_field(chrome))
                            button type="submit" { "Sign out" }
                        }
                    }
                    form.theme method="post" action="/settings/theme" {
                        (csrf_field(chrome))
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
    let mut response = (status, [(header::CACHE_CONTROL, "no-store")], markup).into_response();
    if chrome.new_csrf {
        let cookie = format!("{CSRF_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", chrome.csrf);
        if let Ok(value) = axum::http::HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
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
