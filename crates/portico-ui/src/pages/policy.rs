//! `/settings/policy`: the permission policy for admins (`portico.policy.manage`): its rules,
//! an editor that validates before saving, and "which rule decides" for a user and an entity.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use portico_app::permission::ALL;
use portico_app::ActivePolicy;

use crate::layout::{self, Chrome};
use crate::pages::error_page;
use crate::Ui;

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Params {
    #[serde(default)]
    user: String,
    #[serde(default)]
    permission: String,
    #[serde(default)]
    entity: String,
    #[serde(default)]
    notice: String,
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct PolicyForm {
    policy: String,
}

pub(crate) async fn page(State(ui): State<Ui>, chrome: Chrome, Query(params): Query<Params>) -> Response {
    match ui.app.active_policy(&chrome.identity) {
        Ok(Some(active)) => render(&ui, &chrome, &params, &active, None, StatusCode::OK),
        Ok(None) => disabled(&ui, &chrome),
        Err(error) => error_page(&ui, &chrome, &error),
    }
}

/// Saves an edited policy, or shows the editor again with the text and what is wrong with it.
pub(crate) async fn save(State(ui): State<Ui>, chrome: Chrome, Form(form): Form<PolicyForm>) -> Response {
    match ui.app.save_policy(&chrome.identity, &form.policy).await {
        Ok(()) => Redirect::to("/settings/policy?notice=saved").into_response(),
        Err(portico_app::Error::Input(message)) => match ui.app.active_policy(&chrome.identity) {
            Ok(Some(active)) => render(
                &ui,
                &chrome,
                &Params::default(),
                &active,
                Some((&form.policy, &message)),
                StatusCode::BAD_REQUEST,
            ),
            Ok(None) => disabled(&ui, &chrome),
            Err(error) => error_page(&ui, &chrome, &error),
        },
        Err(error) => error_page(&ui, &chrome, &error),
    }
}

pub(crate) async fn reset(State(ui): State<Ui>, chrome: Chrome) -> Response {
    match ui.app.reset_policy(&chrome.identity).await {
        Ok(()) => Redirect::to("/settings/policy?notice=reset").into_response(),
        Err(error) => error_page(&ui, &chrome, &error),
    }
}

fn disabled(ui: &Ui, chrome: &Chrome) -> Response {
    let body = html! {
        h1 { "Permission policy" }
        p { "Permissions are not enabled: every caller may do everything. Set " code { "permission.enabled: true" } " in app-config to enforce a policy." }
    };
    layout::page(ui, chrome, "Permission policy", body)
}

fn render(
    ui: &Ui,
    chrome: &Chrome,
    params: &Params,
    active: &ActivePolicy,
    rejected: Option<(&str, &str)>,
    status: StatusCode,
) -> Response {
    let text = rejected.map_or(active.text.as_str(), |(text, _)| text);
    let body = html! {
        h1 { "Permission policy" }
        @match params.notice.as_str() {
            "saved" => p.notice role="status" { "Policy saved. It applies now, on every replica within seconds." },
            "reset" => p.notice role="status" { "The saved policy was removed: the configured policy applies again." },
            _ => {}
        }
        p {
            @if let Some(saved) = &active.saved {
                "Saved by " (saved.updated_by) " at " (crate::pages::misc::format_time(saved.updated_at)) " (UTC). It takes precedence over the configured policy."
            } @else {
                "The configured policy (" code { "permission.policy" } ", or Portico's default)."
            }
            " The first matching rule decides; when none matches, the answer is deny."
        }
        section.card aria-labelledby="rules-heading" {
            h2 #rules-heading { "Rules" }
            div.table-wrap {
                table.related {
                    thead { tr { th scope="col" { "#" } th scope="col" { "Description" } th scope="col" { "Matches" } th scope="col" { "Decision" } } }
                    tbody {
                        @for (position, rule) in active.policy.rules.iter().enumerate() {
                            tr {
                                td { (position + 1) }
                                td { (rule.description) }
                                td { (rule.summary()) }
                                td { code { (rule.decision) } }
                            }
                        }
                    }
                }
            }
        }
        (explain(ui, chrome, params))
        section.card aria-labelledby="edit-heading" {
            h2 #edit-heading { "Edit" }
            @if let Some((_, message)) = rejected {
                p.error-message role="alert" #policy-error { "Not saved: " (message) }
            }
            form method="post" action="/settings/policy" {
                (layout::csrf_field(chrome))
                label for="policy" { "Policy (YAML)" }
                textarea #policy name="policy" rows="24" spellcheck="false" aria-describedby=[rejected.map(|_| "policy-error")] { (text) }
                button type="submit" { "Validate and save" }
            }
            @if active.saved.is_some() {
                form method="post" action="/settings/policy/reset" {
                    (layout::csrf_field(chrome))
                    button type="submit" { "Go back to the configured policy" }
                }
            }
        }
    };
    let mut response = layout::page(ui, chrome, "Permission policy", body);
    *response.status_mut() = status;
    response
}

/// The "which rule decides" form and, when filled in, its answer.
fn explain(ui: &Ui, chrome: &Chrome, params: &Params) -> Markup {
    let answer = (!params.user.trim().is_empty()).then(|| {
        ui.app.explain(&chrome.identity, params.user.trim(), &params.permission, Some(params.entity.trim()))
    });
    html! {
        section.card aria-labelledby="explain-heading" {
            h2 #explain-heading { "Which rule decides?" }
            form method="get" action="/settings/policy" {
                label for="explain-user" { "User" }
                input #explain-user type="text" name="user" value=(params.user) placeholder="user:default/jane";
                label for="explain-permission" { "Permission" }
                select #explain-permission name="permission" {
                    @for permission in ALL {
                        option value=(permission.name) selected[params.permission == permission.name] { (permission.name) }
                    }
                }
                label for="explain-entity" { "Entity (for catalog.entity.* permissions)" }
                input #explain-entity type="text" name="entity" value=(params.entity) placeholder="component:default/artist-web";
                button type="submit" { "Explain" }
            }
            @match answer {
                None => {}
                Some(Err(error)) => p.error-message role="alert" { (error) },
                Some(Ok(explanation)) => div #explanation role="status" {
                    p.verdict { strong { @if explanation.allowed { "ALLOW" } @else { "DENY" } } }
                    @match &explanation.rule {
                        Some((position, rule)) => p {
                            "Rule " (position + 1)
                            @if !rule.description.is_empty() { " (" (rule.description) ")" }
                            " matched, on " (rule.summary()) ", and decided " code { (rule.decision) } "."
                            @match explanation.conditions_met {
                                Some(true) => " The entity meets the conditions.",
                                Some(false) => " The entity does not meet the conditions.",
                                None => @if matches!(rule.decision, portico_app::permission::Decision::Conditional(_)) { " No entity was given, so the conditions could not be met." },
                            }
                        },
                        None => p { "No rule matched, so the answer is deny." },
                    }
                    p { "The user's groups, as rules see them: " (if explanation.groups.is_empty() { "none".to_owned() } else { explanation.groups.join(", ") }) "." }
                },
            }
        }
    }
}
