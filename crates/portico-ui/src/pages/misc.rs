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
        section.card aria-labelledby="audit-heading" {
            h2 #audit-heading { "Audit log and permissions" }
            p { "Every registration, refresh, deletion, policy change and sign-in, with who, when and from where: " a href="/settings/audit" { "open the audit log" } "." }
            p { "The permission policy, its editor, and which rule decides for a user: " a href="/settings/policy" { "open the policy" } " (for admins)." }
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
    let back = if crate::view::is_local_path(&form.back) { form.back } else { "/".to_owned() };
    let cookie = format!("portico-theme={theme}; Path=/; Max-Age=31536000; SameSite=Lax");
    ([(header::SET_COOKIE, cookie)], Redirect::to(&back)).into_response()
}

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct AuditParams {
    #[serde(default)]
    before: String,
}

/// `/settings/audit`: the audit log, newest first, 100 records a page.
pub(crate) async fn audit(
    State(ui): State<Ui>,
    chrome: Chrome,
    axum::extract::Query(params): axum::extract::Query<AuditParams>,
) -> Response {
    const PAGE: usize = 100;
    let before = params.before.parse::<i64>().ok();
    let rows = match ui.app.audit_records(&chrome.identity, PAGE, before).await {
        Ok(rows) => rows,
        Err(error) => return crate::pages::error_page(&ui, &chrome, &error),
    };
    let older = (rows.len() == PAGE).then(|| rows.last().map(|row| row.id)).flatten();
    let body = html! {
        h1 { "Audit log" }
        div.table-wrap {
            table.related {
                caption.visually-hidden { "Audit records, newest first" }
                thead { tr { th scope="col" { "When (UTC)" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "Target" } th scope="col" { "From" } th scope="col" { "Details" } } }
                tbody {
                    @for row in &rows {
                        tr {
                            td { (format_time(row.at)) }
                            td { (row.actor) }
                            td { code { (row.action) } }
                            td { (row.target) }
                            td { (row.source) }
                            td { span.description { (row.detail) } }
                        }
                    }
                    @if rows.is_empty() { tr { td.empty colspan="6" { "Nothing recorded yet." } } }
                }
            }
        }
        @if let Some(id) = older {
            nav.pager aria-label="Pagination" { a rel="next" href={ "/settings/audit?before=" (id) } { "Older →" } }
        }
    };
    layout::page(&ui, &chrome, "Audit log", body)
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS`.
/// `YYYY-MM-DD HH:MM:SS` in UTC for milliseconds since the epoch.
pub fn format_time(millis: i64) -> String {
    let seconds = millis.div_euclid(1000);
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_render_as_utc_dates() {
        assert_eq!(super::format_time(0), "1970-01-01 00:00:00");
        assert_eq!(super::format_time(1_796_163_158_000), "2026-12-01 22:12:38");
        assert_eq!(super::format_time(951_782_400_000), "2000-02-29 00:00:00");
    }
}
