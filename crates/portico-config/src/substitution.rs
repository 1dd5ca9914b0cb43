//! `${NAME}` substitution in one string leaf (reference §D.3).
//!
//! A reference is `${` up to the next `}` with no `{` in between; anything else containing `$`
//! (including an unclosed `${`) is literal text. This mirrors how Backstage tokenizes strings, so
//! odd inputs like `$$${X}` come out the same.

use std::collections::BTreeMap;

/// Expands every `${NAME}` / `${NAME:-fallback}` in `input` and turns `$${...}` into a literal
/// `${...}`.
///
/// Returns `None` when a variable without fallback is unset: Backstage then treats the whole
/// value as undefined rather than leaving a half-substituted string that could pass as valid.
/// A variable set to the empty string is defined (it expands to nothing) unless a fallback is
/// given, in which case the fallback wins.
pub(crate) fn substitute(input: &str, env: &BTreeMap<String, String>) -> Option<String> {
    let mut output = String::with_capacity(input.len());
    let mut rest = input;
    let mut all_defined = true;
    while let Some(dollar) = rest.find('$') {
        output.push_str(&rest[..dollar]);
        let tail = &rest[dollar..];
        if let Some((body, after)) = tail.strip_prefix("$${").and_then(closed_body) {
            output.push_str("${");
            output.push_str(body);
            output.push('}');
            rest = after;
        } else if let Some((body, after)) = tail.strip_prefix("${").and_then(closed_body) {
            match resolve(body, env) {
                Some(value) => output.push_str(value),
                None => all_defined = false,
            }
            rest = after;
        } else {
            output.push('$');
            rest = &tail[1..];
        }
    }
    output.push_str(rest);
    all_defined.then_some(output)
}

/// Splits `NAME}rest` into `("NAME", "rest")`; `None` when a `{` comes before the closing `}` or
/// there is none, which makes the `${` literal.
fn closed_body(after_open: &str) -> Option<(&str, &str)> {
    let end = after_open.find(['{', '}'])?;
    after_open[end..].starts_with('}').then(|| (&after_open[..end], &after_open[end + 1..]))
}

fn resolve<'a>(body: &'a str, env: &'a BTreeMap<String, String>) -> Option<&'a str> {
    let expression = body.trim();
    let (name, fallback) = match expression.split_once(":-") {
        Some((name, fallback)) => (name.trim_end(), Some(fallback)),
        None => (expression, None),
    };
    let value = env.get(name).map(String::as_str);
    match (value, fallback) {
        (Some(""), Some(fallback)) => Some(fallback),
        (Some(value), _) => Some(value),
        (None, fallback) => fallback,
    }
}

#[cfg(test)]
mod tests;
