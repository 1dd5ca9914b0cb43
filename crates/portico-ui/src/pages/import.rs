//! `/catalog-import`: register an existing component by the URL of its catalog file (or of a
//! folder holding `catalog-info.yaml`): analyze with a dry run, confirm, land on the entity.

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde_json::Value;

use crate::layout::{self, Chrome};
use crate::view::{str_at, Ref};
use crate::Ui;

/// How long registration waits for the first entity to be processed before showing it.
const SETTLE: Duration = Duration::from_secs(5);

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ImportForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    action: String,
}

fn form_markup(chrome: &Chrome, url: &str, error: Option<&str>) -> Markup {
    html! {
        h1 { "Register an existing component" }
        p { "Enter the URL of a catalog file (" code { "catalog-info.yaml" } ") or of a repository folder that holds one. Portico reads it only from hosts allowed in " code { "backend.reading.allow" } "." }
        @if let Some(error) = error {
            p.error-message role="alert" { (error) }
        }
        form.import method="post" action="/catalog-import" {
            (crate::layout::csrf_field(chrome))
            label for="import-url" { "Repository or file URL" }
            input #import-url type="url" name="url" value=(url) required placeholder="https://example.com/org/repo/blob/main/catalog-info.yaml";
            input type="hidden" name="action" value="analyze";
            button type="submit" { "Analyze" }
        }
    }
}

pub(crate) async fn form(State(ui): State<Ui>, chrome: Chrome) -> Response {
    layout::page(&ui, &chrome, "Register an existing component", form_markup(&chrome, "", None))
}

/// The catalog file a URL names: itself when it names a YAML file, else `catalog-info.yaml`
/// inside it.
fn descriptor_url(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url.trim()).map_err(|error| format!("“{url}” is not a URL: {error}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("Only http and https URLs can be registered, not {}", parsed.scheme()));
    }
    let path = parsed.path();
    if path.ends_with(".yaml") || path.ends_with(".yml") {
        return Ok(parsed.to_string());
    }
    let mut folder = parsed.clone();
    if !path.ends_with('/') {
        folder.set_path(&format!("{path}/"));
    }
    folder.join("catalog-info.yaml").map(|joined| joined.to_string()).map_err(|error| error.to_string())
}

pub(crate) async fn submit(State(ui): State<Ui>, chrome: Chrome, Form(input): Form<ImportForm>) -> Response {
    let identity = chrome.identity.clone();
    let title = "Register an existing component";
    let target = match descriptor_url(&input.url) {
        Ok(target) => target,
        Err(error) => {
            return layout::page(&ui, &chrome, title, form_markup(&chrome, &input.url, Some(&error)))
        }
    };
    let preview = match ui.app.create_location(&identity, "url", &target, true, None).await {
        Ok(preview) => preview,
        Err(error) => {
            return layout::page(
                &ui,
                &chrome,
                title,
                form_markup(&chrome, &input.url, Some(&error.to_string())),
            )
        }
    };
    let entities: Vec<&Value> = preview
        .entities
        .iter()
        .filter(|entity| !str_at(entity, "/kind").is_some_and(|kind| kind.eq_ignore_ascii_case("location")))
        .collect();
    if input.action != "register" {
        let body = html! {
            h1 { (title) }
            p { "Portico read " code { (target) } " and would register:" }
            ul.results {
                @for entity in &entities {
                    @if let Some(entity_ref) = Ref::of(entity) { li { code { (entity_ref.canonical()) } } }
                }
            }
            @if preview.exists == Some(true) {
                p.notice role="status" { "This location is already registered; registering again refreshes it." }
            }
            form method="post" action="/catalog-import" {
                (crate::layout::csrf_field(&chrome))
                input type="hidden" name="url" value=(input.url);
                input type="hidden" name="action" value="register";
                button type="submit" { "Register" }
                " " a href="/catalog-import" { "Start over" }
            }
        };
        return layout::page(&ui, &chrome, title, body);
    }
    let refresh = (preview.exists == Some(true)).then_some(true);
    if let Err(error) = ui.app.create_location(&identity, "url", &target, false, refresh).await {
        return layout::page(&ui, &chrome, title, form_markup(&chrome, &input.url, Some(&error.to_string())));
    }
    let Some(first) = entities.first().and_then(|entity| Ref::of(entity)) else {
        return Redirect::to("/catalog").into_response();
    };
    // Processing runs in the background; give it a moment so the page is there on arrival.
    let deadline = tokio::time::Instant::now() + SETTLE;
    while !ui.app.catalog().read().contains_ref(&first.canonical()) && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Redirect::to(&first.href()).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn folder_urls_get_the_default_file_name() {
        assert_eq!(
            super::descriptor_url("https://h.example/org/repo").unwrap(),
            "https://h.example/org/repo/catalog-info.yaml"
        );
        assert_eq!(
            super::descriptor_url("https://h.example/a/b.yaml").unwrap(),
            "https://h.example/a/b.yaml"
        );
        assert!(super::descriptor_url("javascript:alert(1)").is_err());
        assert!(super::descriptor_url("not a url").is_err());
    }
}
