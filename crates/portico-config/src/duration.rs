//! Backstage's duration values, as `readDurationFromConfig` accepts them.
//!
//! Three forms: an object of units (`{ minutes: 5, seconds: 30 }`), an ISO 8601 duration
//! (`PT5M`, `P1DT12H`) and a short human string in the style of the `ms` package (`5m`,
//! `30 seconds`, `1.5h`; a bare number is milliseconds).

use std::time::Duration;

use serde_json::{Map, Value};

use crate::{type_name, ConfigError};

const SECOND: f64 = 1000.0;
const MINUTE: f64 = 60.0 * SECOND;
const HOUR: f64 = 60.0 * MINUTE;
const DAY: f64 = 24.0 * HOUR;
const WEEK: f64 = 7.0 * DAY;
/// Years and months have no fixed length. The object and ISO forms use 365 and 30 days, the
/// "casual" conversion Backstage gets from luxon; the `ms`-style strings use 365.25 days per
/// year, as that package does.
const YEAR: f64 = 365.0 * DAY;
const MONTH: f64 = 30.0 * DAY;
const JULIAN_YEAR: f64 = 365.25 * DAY;

/// Units of the object form, with their length in milliseconds.
const OBJECT_UNITS: [(&str, f64); 8] = [
    ("years", YEAR),
    ("months", MONTH),
    ("weeks", WEEK),
    ("days", DAY),
    ("hours", HOUR),
    ("minutes", MINUTE),
    ("seconds", SECOND),
    ("milliseconds", 1.0),
];

/// ISO 8601 designators in the order they must appear, before and after the `T`.
const ISO_DATE_UNITS: [(char, f64); 4] = [('Y', YEAR), ('M', MONTH), ('W', WEEK), ('D', DAY)];
const ISO_TIME_UNITS: [(char, f64); 3] = [('H', HOUR), ('M', MINUTE), ('S', SECOND)];

/// Unit words of the human form (matched case-insensitively), with their length in milliseconds.
const HUMAN_UNITS: [(&[&str], f64); 7] = [
    (&["years", "year", "yrs", "yr", "y"], JULIAN_YEAR),
    (&["weeks", "week", "w"], WEEK),
    (&["days", "day", "d"], DAY),
    (&["hours", "hour", "hrs", "hr", "h"], HOUR),
    (&["minutes", "minute", "mins", "min", "m"], MINUTE),
    (&["seconds", "second", "secs", "sec", "s"], SECOND),
    (&["milliseconds", "millisecond", "msecs", "msec", "ms", ""], 1.0),
];

/// Reads a config duration in any of Backstage's forms.
///
/// Object values may also be numeric strings, since `${VAR}` substitution always yields strings.
/// Negative durations are rejected: `std::time::Duration` cannot hold them and no setting wants one.
pub fn parse_duration(value: &Value) -> Result<Duration, ConfigError> {
    let milliseconds = match value {
        Value::Object(units) => from_object(units),
        Value::String(text) => from_string(text),
        other => Err(format!(
            "expected an object like {{ minutes: 5 }} or a string like '5m' or 'PT5M', found {}",
            type_name(other)
        )),
    }
    .and_then(to_duration);
    milliseconds.map_err(|message| ConfigError::InvalidDuration { message })
}

fn from_object(units: &Map<String, Value>) -> Result<f64, String> {
    let unit_names = || OBJECT_UNITS.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ");
    if units.is_empty() {
        return Err(format!("needs at least one of {}", unit_names()));
    }
    let mut total = 0.0;
    for (name, amount) in units {
        let Some((_, unit)) = OBJECT_UNITS.iter().find(|(unit_name, _)| unit_name == name) else {
            return Err(format!("unknown unit '{name}', expected one of {}", unit_names()));
        };
        let amount = match amount {
            Value::Number(number) => number.as_f64(),
            Value::String(text) => text.trim().parse::<f64>().ok(),
            _ => None,
        }
        .filter(|amount| amount.is_finite())
        .ok_or_else(|| format!("'{name}' must be a number"))?;
        if amount < 0.0 {
            return Err(format!("'{name}' must not be negative"));
        }
        total += amount * unit;
    }
    Ok(total)
}

fn from_string(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let parsed = match text.strip_prefix(['P', 'p']) {
        Some(components) => from_iso(components),
        None => from_human(text),
    };
    parsed.map_err(|reason| {
        format!(
            "'{text}' is not a duration ({reason}); use an object like {{ minutes: 5 }}, \
             an ISO 8601 string like 'PT5M' or a string like '5m'"
        )
    })
}

/// `components` is an ISO 8601 duration without its leading `P`.
fn from_iso(components: &str) -> Result<f64, String> {
    let (date, time) = match components.split_once(['T', 't']) {
        Some((date, time)) => (date, Some(time)),
        None => (components, None),
    };
    if time == Some("") {
        return Err("'T' must be followed by hours, minutes or seconds".to_owned());
    }
    let (mut total, mut count) = iso_components(date, &ISO_DATE_UNITS)?;
    if let Some(time) = time {
        let (time_total, time_count) = iso_components(time, &ISO_TIME_UNITS)?;
        total += time_total;
        count += time_count;
    }
    if count == 0 {
        return Err("no components".to_owned());
    }
    Ok(total)
}

/// Sums `<number><designator>` pairs whose designators appear in `units` order, each at most once.
fn iso_components(mut text: &str, units: &[(char, f64)]) -> Result<(f64, usize), String> {
    let mut total = 0.0;
    let mut count = 0;
    let mut next_unit = 0;
    while !text.is_empty() {
        let number_end = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
            .ok_or("a number without a unit designator")?;
        let (number, rest) = text.split_at(number_end);
        let mut rest_chars = rest.chars();
        let designator = rest_chars.next().ok_or("a number without a unit designator")?;
        let amount = iso_number(number).ok_or_else(|| format!("bad number '{number}'"))?;
        let position = units[next_unit..]
            .iter()
            .position(|(unit, _)| unit.eq_ignore_ascii_case(&designator))
            .ok_or_else(|| format!("unexpected '{designator}'"))?;
        total += amount * units[next_unit + position].1;
        count += 1;
        next_unit += position + 1;
        text = rest_chars.as_str();
    }
    Ok((total, count))
}

/// `12`, `1.5` or `1,5`: digits with an optional fraction.
fn iso_number(text: &str) -> Option<f64> {
    let (whole, fraction) = match text.split_once(['.', ',']) {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let all_digits = |part: &str| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit());
    if !all_digits(whole) || !fraction.is_none_or(all_digits) {
        return None;
    }
    text.replace(',', ".").parse().ok()
}

/// `5m`, `30 seconds`, `.5h`, `100` (milliseconds).
fn from_human(text: &str) -> Result<f64, String> {
    if text.starts_with('-') {
        return Err("negative durations are not allowed".to_owned());
    }
    let number_end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(number_end);
    let valid_number =
        number.ends_with(|c: char| c.is_ascii_digit()) && number.chars().filter(|c| *c == '.').count() <= 1;
    if !valid_number {
        return Err("expected a number followed by a unit".to_owned());
    }
    let amount: f64 = number.parse().map_err(|_| format!("bad number '{number}'"))?;
    let unit = unit.trim_start_matches(' ').to_ascii_lowercase();
    let (_, length) = HUMAN_UNITS
        .iter()
        .find(|(words, _)| words.contains(&unit.as_str()))
        .ok_or_else(|| format!("unknown unit '{unit}'"))?;
    Ok(amount * length)
}

fn to_duration(milliseconds: f64) -> Result<Duration, String> {
    // Whole milliseconds (nearly every real setting) convert exactly; fractions go through
    // floating-point seconds, which is exact enough at nanosecond resolution.
    if milliseconds.fract() == 0.0 && milliseconds >= 0.0 && milliseconds < u64::MAX as f64 {
        return Ok(Duration::from_millis(milliseconds as u64));
    }
    Duration::try_from_secs_f64(milliseconds / SECOND).map_err(|_| "duration is too long".to_owned())
}

#[cfg(test)]
mod tests;
