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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    /// `--name: light-dark(#light, #dark)` declarations of the stylesheet.
    fn palette() -> HashMap<String, [String; 2]> {
        let mut colours = HashMap::new();
        for declaration in super::CSS.split(';') {
            let Some((name, value)) = declaration.split_once(':') else { continue };
            let name = name.trim();
            let Some(pair) = value.trim().strip_prefix("light-dark(").and_then(|rest| rest.strip_suffix(')'))
            else {
                continue;
            };
            let Some((light, dark)) = pair.split_once(',') else { continue };
            if let Some(name) = name.strip_prefix("--") {
                colours.insert(name.to_owned(), [light.trim().to_owned(), dark.trim().to_owned()]);
            }
        }
        colours
    }

    fn luminance(hex: &str) -> f64 {
        let channel = |index: usize| {
            let value =
                f64::from(u8::from_str_radix(&hex[1 + index * 2..3 + index * 2], 16).unwrap()) / 255.0;
            if value <= 0.039_28 {
                value / 12.92
            } else {
                ((value + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * channel(0) + 0.7152 * channel(1) + 0.0722 * channel(2)
    }

    fn contrast(a: &str, b: &str) -> f64 {
        let (x, y) = (luminance(a), luminance(b));
        (x.max(y) + 0.05) / (x.min(y) + 0.05)
    }

    /// WCAG AA asks 4.5:1 for normal text; every text colour is checked on every background
    /// it is used on, in both themes.
    #[test]
    fn every_text_colour_meets_wcag_aa_in_both_themes() {
        let colours = palette();
        let pairs = [
            ("text", "bg"),
            ("text", "surface"),
            ("text", "card"),
            ("text", "badge"),
            ("muted", "bg"),
            ("muted", "surface"),
            ("muted", "card"),
            ("link", "bg"),
            ("link", "card"),
            ("link", "surface"),
            ("accent-text", "accent"),
            ("badge-text", "badge"),
            ("danger-text", "danger"),
            ("danger", "surface"),
            ("error-text", "error-bg"),
            ("notice-text", "notice-bg"),
            ("text", "code-bg"),
            ("tok-keyword", "code-bg"),
            ("tok-type", "code-bg"),
            ("tok-string", "code-bg"),
            ("tok-comment", "code-bg"),
        ];
        for (foreground, background) in pairs {
            for theme in 0..2 {
                let (fg, bg) = (&colours[foreground][theme], &colours[background][theme]);
                let ratio = contrast(fg, bg);
                let name = ["light", "dark"][theme];
                assert!(
                    ratio >= 4.5,
                    "{foreground} {fg} on {background} {bg} in the {name} theme: {ratio:.2}:1"
                );
            }
        }
    }
}
