//! Signing in and out of the web UI. The session is the user token in an `HttpOnly` cookie,
//! accepted for UI pages only (the API wants it as a bearer token, so a cookie can never
//! authorize an API call from another site).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use axum::Form;
use maud::html;
use portico_app::identity::Identity;

use crate::layout::{self, Chrome};
use crate::Ui;

/// The session cookie: a Backstage user token.
pub(crate) const SESSION_COOKIE: &str = "portico-session";

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Next {
    #[serde(default)]
    next: String,
}

/// Only same-site paths are followed after sign-in: no open redirects.
fn local_path(next: &str) -> String {
    if crate::view::is_local_path(next) {
        next.to_owned()
    } else {
        "/".to_owned()
    }
}

pub(crate) async fn sign_in_page(State(ui): State<Ui>, chrome: Chrome, Query(next): Query<Next>) -> Response {
    let next = local_path(&next.next);
    let guest = ui.auth.options().guest.as_ref();
    let body = html! {
        h1 { "Sign in to " (ui.options.app_title) }
        @if let Some(guest) = guest {
            section.card aria-labelledby="guest-heading" {
                h2 #guest-heading { "Guest" }
                p { "Development sign-in as " code { (guest.user_entity_ref) } "." }
                form method="post" action="/sign-in/guest" {
                    (layout::csrf_field(&chrome))
                    input type="hidden" name="next" value=(next);
                    button type="submit" { "Sign in as guest" }
                }
            }
        } @else {
            p { "No sign-in provider for the browser is configured." }
        }
    };
    layout::page(&ui, &chrome, "Sign in", body)
}

pub(crate) async fn sign_in_guest(
    State(ui): State<Ui>,
    chrome: Chrome,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    Form(next): Form<Next>,
) -> Response {
    let Some(guest) = ui.auth.options().guest.clone() else {
        return layout::page_with_status(
            &ui,
            &chrome,
            StatusCode::NOT_FOUND,
            "Sign in",
            html! { h1 { "The guest provider is not configured" } },
        );
    };
    let ownership = match &guest.ownership_entity_refs {
        Some(refs) => refs.clone(),
        None => ui.app.ownership_of(&guest.user_entity_ref),
    };
    let issued = match ui.auth.issue(&guest.user_entity_ref, &ownership).await {
        Ok(issued) => issued,
        Err(error) => {
            return layout::page_with_status(
                &ui,
                &chrome,
                StatusCode::UNAUTHORIZED,
                "Sign in",
                html! {
                    h1 { "Sign-in failed" } p.error-message { (error) }
                },
            )
        }
    };
    let source = connection
        .map_or_else(|| "unknown".to_owned(), |Extension(ConnectInfo(address))| address.ip().to_string());
    let user =
        Identity::User { user_entity_ref: guest.user_entity_ref.clone(), ownership_entity_refs: ownership };
    if let Err(error) = ui.app.record_audit(&user, "auth.sign-in", "guest", &source, "web UI").await {
        tracing::error!(%error, "writing the audit log failed");
    }
    let secure = if ui.auth.options().issuer.starts_with("https://") { "; Secure" } else { "" };
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
        issued.token, issued.expires_in_seconds
    );
    let mut response = Redirect::to(&local_path(&next.next)).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

pub(crate) async fn sign_out() -> Response {
    let mut response = Redirect::to("/sign-in").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static("portico-session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    response
}
