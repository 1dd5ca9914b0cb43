//! Small pages: not found, settings (theme), and the places later capabilities will fill.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;

use crate::layout::{self, Chrome, Theme};
use crate::Ui;

pub(crate) async fn not_found(State(ui): State<Ui>, chrome: Chrome) -> Response {
    let body = html! {
        h1 { "Page not found" }
        p { "There is no page at " code { (chrome.path) } "." }
        ul {
            li { a href="/catalog" { "Browse the catalog" } }
            li { a href="/search" { "Search" } }
            li { a href="/" { "Home" } }
        }
    };
    layout::page_with_status(&ui, &chrome, StatusCode::NOT_FOUND, "Page not found", body)
}

fn coming(ui: &Ui, chrome: &Chrome, title: &str, what: &str) -> Response {
    let body = html! {
        h1 { (title) }
        p { (what) }
        p { "Meanwhile the " a href="/catalog" { "catalog" } " and its " a href="/api/catalog/openapi.json" { "API" } " are available." }
    };
    layout::page(ui, chrome, title, body)
}

pub(crate) async fn create(State(ui): State<Ui>, chrome: Chrome) -> Response {
    coming(&ui, &chrome, "Create", "Software templates are not built into Portico yet; Template entities already show their parameters and steps in the catalog.")
}

pub(crate) async fn docs(State(ui): State<Ui>, chrome: Chrome) -> Response {
    coming(&ui, &chrome, "Docs", "TechDocs are not built into Portico yet.")
}

pub(crate) async fn settings(State(ui): State<Ui>, chrome: Chrome) -> Response {
    let body = html! {
        h1 { "Settings" }
        section.card aria-labelledby="theme-heading" {
            h2 #theme-heading { "Appearance" }
            form method="post" action="/settings/theme" {
                (layout::csrf_field(&chrome))
                fieldset {
                    legend { "Theme" }
                    @for (value, label, theme) in [("system", "Follow the system", Theme::System), ("light", "Light", Theme::Light), ("dark", "Dark", Theme::Dark)] {
                        label.choice {
                            input type="radio" name="theme" value=(value) checked[chrome.theme == theme];
                            " " (label)
                        }
                    }
                }
                input type="hidden" name="back" value="/settings";
                button type="submit" { "Save" }
            }
        }
        section.card aria-labelledby="profile-heading" {
            h2 #profile-heading { "Profile" }
            p { "No sign-in is configured: you browse as a guest." }
        }
    };
    layout::page(&ui, &chrome, "Settings", body)
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct ThemeForm {
    theme: String,
    #[serde(default)]
    back: String,
}

/// Remembers the theme in a cookie and goes back where the visitor was (a local path only).
pub(crate) async fn set_theme(Form(form): Form<ThemeForm>) -> Response {
    let theme = match Theme::parse(&form.theme) {
        Theme::Light => "light",
        Theme::Dark => "dark",
        Theme::System => "system",
    };
    let back = if form.back.starts_with('/') && !form.back.starts_with("//") && !form.back.starts_with("/\\")
    {
        form.back
    } else {
        "/".to_owned()
    };
    let cookie = format!("portico-theme={theme}; Path=/; Max-Age=31536000; SameSite=Lax");
    ([(header::SET_COOKIE, cookie)], Redirect::to(&back)).into_response()
}
