//! Methods called on values, e.g. `parameters.name.toLowerCase()` or `values.items()`.
//!
//! In Backstage the template values are real JavaScript values, so templates in the wild call
//! string and array methods on them; cookiecutter-style templates call Python methods (nunjucks'
//! Jinja compatibility mode adds those). minijinja has neither, so the common ones are provided
//! through its unknown-method hook. Where the two languages share a name with different
//! meanings (`replace`, `split` without arguments), the Python meaning applies in cookiecutter
//! mode and the JavaScript one otherwise.

use minijinja::value::{Value, ValueKind};
use minijinja::{Error, ErrorKind, State};

use crate::render::filters::invalid;
use crate::render::json::{number_text, to_text};
use crate::render::MAX_OUTPUT_BYTES;

/// Which language's meaning a shared method name has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    JavaScript,
    Python,
}

/// The unknown-method hook: dispatches on the receiver's type.
pub(super) fn call_method(
    dialect: Dialect,
    value: &Value,
    name: &str,
    args: &[Value],
) -> Result<Value, Error> {
    match value.kind() {
        ValueKind::String => string_method(dialect, value.as_str().unwrap_or_default(), name, args),
        ValueKind::Seq => seq_method(value, name, args),
        ValueKind::Map => map_method(value, name, args),
        ValueKind::Number => number_method(value, name, args),
        ValueKind::Undefined | ValueKind::None => {
            Err(invalid(format!("cannot call {name}() on an undefined or null value")))
        }
        _ => Err(Error::from(ErrorKind::UnknownMethod)),
    }
}

/// Adapts [`call_method`] to minijinja's callback signature.
pub(super) fn hook(dialect: Dialect) -> impl Fn(&State, &Value, &str, &[Value]) -> Result<Value, Error> {
    move |_state, value, name, args| call_method(dialect, value, name, args)
}

fn string_method(dialect: Dialect, text: &str, name: &str, args: &[Value]) -> Result<Value, Error> {
    let arg = |index: usize| args.get(index).map(|value| to_text(value).unwrap_or_default());
    let int_arg = |index: usize| args.get(index).and_then(|value| i64::try_from(value.clone()).ok());
    let result = match name {
        "toLowerCase" | "lower" | "toLocaleLowerCase" => Value::from(text.to_lowercase()),
        "toUpperCase" | "upper" | "toLocaleUpperCase" => Value::from(text.to_uppercase()),
        "trim" => Value::from(text.trim()),
        "trimStart" => Value::from(text.trim_start()),
        "trimEnd" => Value::from(text.trim_end()),
        "strip" => Value::from(strip(text, arg(0).as_deref(), Side::Both)),
        "lstrip" => Value::from(strip(text, arg(0).as_deref(), Side::Start)),
        "rstrip" => Value::from(strip(text, arg(0).as_deref(), Side::End)),
        "startsWith" | "startswith" => Value::from(text.starts_with(arg(0).unwrap_or_default().as_str())),
        "endsWith" | "endswith" => Value::from(text.ends_with(arg(0).unwrap_or_default().as_str())),
        "includes" => Value::from(text.contains(arg(0).unwrap_or_default().as_str())),
        "indexOf" | "find" => Value::from(char_index(text, text.find(arg(0).unwrap_or_default().as_str()))),
        "lastIndexOf" | "rfind" => {
            Value::from(char_index(text, text.rfind(arg(0).unwrap_or_default().as_str())))
        }
        "count" => Value::from(count_occurrences(text, &arg(0).unwrap_or_default())),
        "split" => split(dialect, text, arg(0), int_arg(1)),
        "splitlines" => Value::from(text.lines().map(Value::from).collect::<Vec<_>>()),
        "replace" => {
            let (old, new) = (arg(0).unwrap_or_default(), arg(1).unwrap_or_default());
            match dialect {
                Dialect::JavaScript => Value::from(text.replacen(&old, &new, 1)),
                Dialect::Python => Value::from(text.replace(&old, &new)),
            }
        }
        "replaceAll" => Value::from(text.replace(&arg(0).unwrap_or_default(), &arg(1).unwrap_or_default())),
        "slice" | "substring" => {
            let chars: Vec<char> = text.chars().collect();
            let (start, end) = slice_bounds(name == "slice", chars.len(), int_arg(0), int_arg(1));
            Value::from(chars[start..end].iter().collect::<String>())
        }
        "charAt" => char_at(text, int_arg(0).unwrap_or(0)).map_or(Value::from(""), Value::from),
        "at" => {
            let index = int_arg(0).unwrap_or(0);
            let index = if index < 0 { text.chars().count() as i64 + index } else { index };
            char_at(text, index).map_or(Value::UNDEFINED, Value::from)
        }
        "padStart" | "padEnd" => pad(text, name == "padStart", int_arg(0), arg(1))?,
        "repeat" => repeat(text, int_arg(0))?,
        "concat" => {
            let mut out = text.to_owned();
            for index in 0..args.len() {
                out.push_str(&arg(index).unwrap_or_default());
            }
            Value::from(out)
        }
        "join" => {
            let items = args.first().map(Value::try_iter).transpose()?.into_iter().flatten();
            let parts: Vec<String> = items.map(|item| to_text(&item).unwrap_or_default()).collect();
            Value::from(parts.join(text))
        }
        "title" => Value::from(title_case(text)),
        "capitalize" => Value::from(capitalize(text)),
        "toString" | "valueOf" => Value::from(text),
        _ => return Err(Error::from(ErrorKind::UnknownMethod)),
    };
    Ok(result)
}

fn char_at(text: &str, index: i64) -> Option<String> {
    let index = usize::try_from(index).ok()?;
    text.chars().nth(index).map(String::from)
}

#[derive(Clone, Copy)]
enum Side {
    Start,
    End,
    Both,
}

/// Python's `strip([chars])`.
fn strip<'a>(text: &'a str, chars: Option<&str>, side: Side) -> &'a str {
    let matches = |c: char| match chars {
        Some(set) => set.contains(c),
        None => c.is_whitespace(),
    };
    match side {
        Side::Start => text.trim_start_matches(matches),
        Side::End => text.trim_end_matches(matches),
        Side::Both => text.trim_matches(matches),
    }
}

/// A byte offset as a character index, `-1` when not found (both languages agree on that).
fn char_index(text: &str, found: Option<usize>) -> i64 {
    match found {
        Some(at) => text[..at].chars().count() as i64,
        None => -1,
    }
}

fn count_occurrences(text: &str, needle: &str) -> usize {
    if needle.is_empty() {
        return text.chars().count() + 1;
    }
    text.matches(needle).count()
}

/// JavaScript `split(sep, limit)` or Python `split(sep, maxsplit)`.
fn split(dialect: Dialect, text: &str, separator: Option<String>, limit: Option<i64>) -> Value {
    let parts: Vec<String> = match (dialect, separator) {
        (Dialect::Python, None) => text.split_whitespace().map(str::to_owned).collect(),
        (Dialect::JavaScript, None) => vec![text.to_owned()],
        (_, Some(separator)) if separator.is_empty() => text.chars().map(String::from).collect(),
        (Dialect::Python, Some(separator)) => match limit.and_then(|limit| usize::try_from(limit).ok()) {
            Some(max_split) => text.splitn(max_split + 1, separator.as_str()).map(str::to_owned).collect(),
            None => text.split(separator.as_str()).map(str::to_owned).collect(),
        },
        (Dialect::JavaScript, Some(separator)) => text.split(separator.as_str()).map(str::to_owned).collect(),
    };
    let parts = match (dialect, limit.and_then(|limit| usize::try_from(limit).ok())) {
        (Dialect::JavaScript, Some(limit)) => parts.into_iter().take(limit).collect(),
        _ => parts,
    };
    Value::from(parts)
}

/// Start and end indexes for `slice` (negative counts from the end) or `substring` (negative is
/// zero, and swapped bounds are put in order).
fn slice_bounds(negative_from_end: bool, len: usize, start: Option<i64>, end: Option<i64>) -> (usize, usize) {
    let len_i = len as i64;
    let clamp = |index: i64| -> usize {
        let index = if negative_from_end && index < 0 { len_i + index } else { index };
        index.clamp(0, len_i) as usize
    };
    let start = clamp(start.unwrap_or(0));
    let end = clamp(end.unwrap_or(len_i));
    match (negative_from_end, start > end) {
        (true, true) => (start, start),
        (false, true) => (end, start),
        _ => (start, end),
    }
}

fn pad(text: &str, at_start: bool, width: Option<i64>, fill: Option<String>) -> Result<Value, Error> {
    let width = usize::try_from(width.unwrap_or(0)).unwrap_or(0);
    guard_size(width)?;
    let fill: Vec<char> = fill.unwrap_or_else(|| " ".to_owned()).chars().collect();
    let len = text.chars().count();
    if len >= width || fill.is_empty() {
        return Ok(Value::from(text));
    }
    let padding: String = fill.iter().cycle().take(width - len).collect();
    Ok(Value::from(if at_start { format!("{padding}{text}") } else { format!("{text}{padding}") }))
}

fn repeat(text: &str, count: Option<i64>) -> Result<Value, Error> {
    let count =
        usize::try_from(count.unwrap_or(0)).map_err(|_| invalid("repeat count must not be negative"))?;
    guard_size(text.len().saturating_mul(count))?;
    Ok(Value::from(text.repeat(count)))
}

fn guard_size(bytes: usize) -> Result<(), Error> {
    if bytes > MAX_OUTPUT_BYTES {
        return Err(invalid(format!("result would exceed the {MAX_OUTPUT_BYTES} byte output limit")));
    }
    Ok(())
}

/// Python's `str.title()`: upper-case after every non-letter, lower-case elsewhere.
fn title_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut previous_is_letter = false;
    for c in text.chars() {
        if previous_is_letter {
            out.extend(c.to_lowercase());
        } else {
            out.extend(c.to_uppercase());
        }
        previous_is_letter = c.is_alphabetic();
    }
    out
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars.flat_map(char::to_lowercase)).collect(),
        None => String::new(),
    }
}

fn seq_method(value: &Value, name: &str, args: &[Value]) -> Result<Value, Error> {
    let items: Vec<Value> = value.try_iter()?.collect();
    let first = args.first().cloned().unwrap_or_default();
    let result = match name {
        "join" => {
            let separator =
                args.first().map_or(Ok(",".to_owned()), to_text).map_err(|err| err.into_engine_error())?;
            let parts: Vec<String> = items.iter().map(|item| to_text(item).unwrap_or_default()).collect();
            Value::from(parts.join(&separator))
        }
        "includes" => Value::from(items.contains(&first)),
        "indexOf" => Value::from(items.iter().position(|item| *item == first).map_or(-1, |at| at as i64)),
        "index" => match items.iter().position(|item| *item == first) {
            Some(at) => Value::from(at),
            None => return Err(invalid(format!("{} is not in list", to_text(&first).unwrap_or_default()))),
        },
        "count" => Value::from(items.iter().filter(|item| **item == first).count()),
        "slice" => {
            let int_arg = |index: usize| args.get(index).and_then(|value| i64::try_from(value.clone()).ok());
            let (start, end) = slice_bounds(true, items.len(), int_arg(0), int_arg(1));
            Value::from(items[start..end].to_vec())
        }
        "concat" => {
            let mut out = items;
            for arg in args {
                match arg.kind() {
                    ValueKind::Seq => out.extend(arg.try_iter()?),
                    _ => out.push(arg.clone()),
                }
            }
            Value::from(out)
        }
        "toString" => Value::from(to_text(value).map_err(|err| err.into_engine_error())?),
        _ => return Err(Error::from(ErrorKind::UnknownMethod)),
    };
    Ok(result)
}

fn map_method(value: &Value, name: &str, args: &[Value]) -> Result<Value, Error> {
    let result = match name {
        "items" => {
            let mut pairs = Vec::new();
            for key in value.try_iter()? {
                let item = value.get_item(&key)?;
                pairs.push(Value::from(vec![key, item]));
            }
            Value::from(pairs)
        }
        "keys" => Value::from(value.try_iter()?.collect::<Vec<_>>()),
        "values" => {
            let mut items = Vec::new();
            for key in value.try_iter()? {
                items.push(value.get_item(&key)?);
            }
            Value::from(items)
        }
        "get" => {
            let key = args.first().cloned().unwrap_or_default();
            let found = value.get_item(&key)?;
            if found.is_undefined() {
                args.get(1).cloned().unwrap_or(Value::from(()))
            } else {
                found
            }
        }
        "hasOwnProperty" => {
            let key = args.first().cloned().unwrap_or_default();
            Value::from(!value.get_item(&key)?.is_undefined())
        }
        _ => return Err(Error::from(ErrorKind::UnknownMethod)),
    };
    Ok(result)
}

fn number_method(value: &Value, name: &str, args: &[Value]) -> Result<Value, Error> {
    match name {
        "toString" => Ok(Value::from(number_text(value))),
        "toFixed" => {
            let digits =
                args.first().and_then(|digits| usize::try_from(digits.clone()).ok()).unwrap_or(0).min(100);
            let number = f64::try_from(value.clone())?;
            Ok(Value::from(format!("{number:.digits$}")))
        }
        _ => Err(Error::from(ErrorKind::UnknownMethod)),
    }
}
