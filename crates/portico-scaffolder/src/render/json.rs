//! Converting template values back to JSON and to text the way JavaScript would.
//!
//! Backstage's templates run in a JavaScript sandbox, so a value leaves a template either through
//! `JSON.stringify` (type-preserving rendering, `dump`) or through `String(value)` (text
//! output). Both conversions are written here once, with the limits that keep a hostile template
//! from exhausting the stack or memory.

use minijinja::value::{Value, ValueKind};
use serde_json::Value as Json;

use crate::render::MAX_OUTPUT_BYTES;

/// Deepest nesting converted to JSON.
///
/// `serde_json` refuses to parse documents nested deeper than 128, so nothing deeper could
/// round-trip through the task store anyway, and the bound keeps our recursion shallow.
pub(super) const MAX_DEPTH: usize = 128;

/// The largest integer a JavaScript number holds exactly (2^53).
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

/// Why a template value could not be turned into JSON or text.
#[derive(Debug)]
pub(super) enum ConvertError {
    TooDeep,
    TooLarge,
    Engine(minijinja::Error),
}

impl ConvertError {
    /// The same problem as an engine error, for use inside filters.
    pub(super) fn into_engine_error(self) -> minijinja::Error {
        match self {
            ConvertError::Engine(err) => err,
            ConvertError::TooDeep => minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("value is nested more than {MAX_DEPTH} levels deep"),
            ),
            ConvertError::TooLarge => minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("value is larger than the {MAX_OUTPUT_BYTES} byte output limit"),
            ),
        }
    }
}

impl From<minijinja::Error> for ConvertError {
    fn from(err: minijinja::Error) -> ConvertError {
        ConvertError::Engine(err)
    }
}

/// `JSON.stringify` semantics: `None` for undefined (and for functions, macros and other
/// non-data objects), undefined object properties dropped, undefined array elements `null`.
pub(super) fn to_json(value: &Value) -> Result<Option<Json>, ConvertError> {
    let mut budget = MAX_OUTPUT_BYTES;
    convert(value, 0, &mut budget)
}

/// `String(value)` semantics, except that objects render as compact JSON rather than
/// JavaScript's useless `[object Object]`.
///
/// Arrays join their elements with `,` as JavaScript does (`[1, 2]` renders `1,2`), with
/// `null`/undefined elements empty. Undefined and `null` render empty, as nunjucks prints them.
pub(super) fn to_text(value: &Value) -> Result<String, ConvertError> {
    let mut out = String::new();
    write_text(value, 0, &mut out)?;
    Ok(out)
}

/// A JavaScript number's text: integral floats print without a fraction (`3.0` is `3`).
pub(super) fn number_text(value: &Value) -> String {
    match number_to_json(value) {
        Json::Number(number) => number.to_string(),
        _ => match f64::try_from(value.clone()) {
            Ok(float) if float.is_nan() => "NaN".to_owned(),
            Ok(float) if float > 0.0 => "Infinity".to_owned(),
            Ok(_) => "-Infinity".to_owned(),
            Err(_) => value.to_string(),
        },
    }
}

/// JavaScript has a single number type, so `10 / 2` is the integer `5`, not `5.0`: integral
/// floats in the exactly representable range become integers. NaN and infinities become `null`
/// as `JSON.stringify` makes them.
pub(super) fn float_to_json(float: f64) -> Json {
    if float.fract() == 0.0 && float.abs() <= MAX_SAFE_INTEGER {
        // The range check above makes the cast exact.
        return Json::from(float as i64);
    }
    serde_json::Number::from_f64(float).map_or(Json::Null, Json::Number)
}

fn number_to_json(value: &Value) -> Json {
    if value.is_integer() {
        if let Ok(int) = i64::try_from(value.clone()) {
            return Json::from(int);
        }
        if let Ok(int) = u64::try_from(value.clone()) {
            return Json::from(int);
        }
    }
    match f64::try_from(value.clone()) {
        Ok(float) => float_to_json(float),
        Err(_) => Json::Null,
    }
}

fn convert(value: &Value, depth: usize, budget: &mut usize) -> Result<Option<Json>, ConvertError> {
    if depth > MAX_DEPTH {
        return Err(ConvertError::TooDeep);
    }
    spend(budget, 1)?;
    let json = match value.kind() {
        ValueKind::None => Json::Null,
        ValueKind::Bool => Json::Bool(value.is_true()),
        ValueKind::Number => number_to_json(value),
        ValueKind::String => {
            let text = value.as_str().unwrap_or_default();
            spend(budget, text.len())?;
            Json::String(text.to_owned())
        }
        ValueKind::Bytes => {
            let bytes = value.as_bytes().unwrap_or_default();
            spend(budget, bytes.len())?;
            Json::String(String::from_utf8_lossy(bytes).into_owned())
        }
        ValueKind::Seq | ValueKind::Iterable => convert_seq(value, depth, budget)?,
        ValueKind::Map => convert_map(value, depth, budget)?,
        // Undefined, functions, macros and engine objects have no JSON form.
        _ => return Ok(None),
    };
    Ok(Some(json))
}

fn convert_seq(value: &Value, depth: usize, budget: &mut usize) -> Result<Json, ConvertError> {
    let mut items = Vec::new();
    for item in value.try_iter()? {
        items.push(convert(&item, depth + 1, budget)?.unwrap_or(Json::Null));
    }
    Ok(Json::Array(items))
}

fn convert_map(value: &Value, depth: usize, budget: &mut usize) -> Result<Json, ConvertError> {
    let mut map = serde_json::Map::new();
    for key in value.try_iter()? {
        let item = value.get_item(&key)?;
        let Some(item) = convert(&item, depth + 1, budget)? else {
            continue;
        };
        let key = match key.as_str() {
            Some(text) => text.to_owned(),
            None => to_text(&key)?,
        };
        spend(budget, key.len())?;
        map.insert(key, item);
    }
    Ok(Json::Object(map))
}

fn spend(budget: &mut usize, amount: usize) -> Result<(), ConvertError> {
    *budget = budget.checked_sub(amount).ok_or(ConvertError::TooLarge)?;
    Ok(())
}

fn write_text(value: &Value, depth: usize, out: &mut String) -> Result<(), ConvertError> {
    if depth > MAX_DEPTH {
        return Err(ConvertError::TooDeep);
    }
    if out.len() > MAX_OUTPUT_BYTES {
        return Err(ConvertError::TooLarge);
    }
    match value.kind() {
        ValueKind::Undefined | ValueKind::None => {}
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&number_text(value)),
        ValueKind::String => out.push_str(value.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => {
            for (index, item) in value.try_iter()?.enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_text(&item, depth + 1, out)?;
            }
        }
        ValueKind::Map => {
            let json = to_json(value)?.unwrap_or(Json::Null);
            out.push_str(&json.to_string());
        }
        _ => out.push_str(&value.to_string()),
    }
    Ok(())
}
