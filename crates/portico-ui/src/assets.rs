//! The stylesheet and the script, compiled in and served under names that carry a hash of
//! their content, so browsers may cache them forever and still never see a stale one.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use sha1::{Digest, Sha1};

const CSS: &str = include_str!("../assets/portico.css");
const JS: &str = include_str!("../assets/portico.js");

struct Asset {
    name: String,
    body: &'static str,
    content_type: &'static str,
}

fn asset(stem: &str, extension: &str, body: &'static str, content_type: &'static str) -> Asset {
    let hash = hex::encode(Sha1::digest(body.as_bytes()));
    Asset { name: format!("{stem}.{}.{extension}", &hash[..12]), body, content_type }
}

static ASSETS: LazyLock<[Asset; 2]> = LazyLock::new(|| {
    [
        asset("portico", "css", CSS, "text/css; charset=utf-8"),
        asset("portico", "js", JS, "text/javascript; charset=utf-8"),
    ]
});

/// The URL of the stylesheet.
pub(crate) fn css_url() -> String {
    format!("/static/{}", ASSETS[0].name)
}

/// The URL of the script.
pub(crate) fn js_url() -> String {
    format!("/static/{}", ASSETS[1].name)
}

pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.name == file) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            asset.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
