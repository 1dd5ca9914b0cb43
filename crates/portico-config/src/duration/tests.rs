use std::time::Duration;

use serde_json::{json, Value};

use crate::parse_duration;

fn check(input: Value, expected: Duration) {
    match parse_duration(&input) {
        Ok(actual) => assert_eq!(actual, expected, "parsing {input}"),
        Err(error) => panic!("parsing {input}: unexpected error: {error}"),
    }
}

fn check_error(input: Value, expected: &str) {
    match parse_duration(&input) {
        Ok(actual) => panic!("parsing {input}: expected an error, got {actual:?}"),
        Err(error) => assert_eq!(error.to_string(), expected, "parsing {input}"),
    }
}

const fn minutes(count: u64) -> Duration {
    Duration::from_secs(count * 60)
}

const fn days(count: u64) -> Duration {
    Duration::from_secs(count * 86_400)
}

#[test]
fn object_form() {
    check(json!({ "minutes": 5 }), minutes(5));
    check(json!({ "minutes": 5, "seconds": 30 }), Duration::from_secs(330));
    check(json!({ "hours": 1.5 }), minutes(90));
    check(json!({ "milliseconds": 250 }), Duration::from_millis(250));
    check(json!({ "weeks": 1, "days": 1 }), days(8));
    check(json!({ "months": 1 }), days(30));
    check(json!({ "years": 1 }), days(365));
    check(json!({ "seconds": 0 }), Duration::ZERO);
    // `${VAR}` substitution yields strings.
    check(json!({ "minutes": "10" }), minutes(10));
}

#[test]
fn object_form_errors() {
    check_error(
        json!({}),
        "invalid duration: needs at least one of years, months, weeks, days, hours, minutes, \
         seconds, milliseconds",
    );
    check_error(
        json!({ "minute": 5 }),
        "invalid duration: unknown unit 'minute', expected one of years, months, weeks, days, \
         hours, minutes, seconds, milliseconds",
    );
    check_error(json!({ "minutes": "five" }), "invalid duration: 'minutes' must be a number");
    check_error(json!({ "minutes": true }), "invalid duration: 'minutes' must be a number");
    check_error(json!({ "minutes": -1 }), "invalid duration: 'minutes' must not be negative");
}

#[test]
fn iso_8601_form() {
    check(json!("PT5M"), minutes(5));
    check(json!("PT1H30M"), minutes(90));
    check(json!("P1D"), days(1));
    check(json!("P1DT12H"), Duration::from_secs(36 * 3600));
    check(json!("P2W"), days(14));
    check(json!("P1Y2M"), days(365 + 60));
    check(json!("PT0.5S"), Duration::from_millis(500));
    check(json!("PT1,5S"), Duration::from_millis(1500));
    check(json!("pt10s"), Duration::from_secs(10));
}

#[test]
fn iso_8601_errors() {
    let hint = "; use an object like { minutes: 5 }, an ISO 8601 string like 'PT5M' or a string \
                like '5m'";
    check_error(json!("P"), &format!("invalid duration: 'P' is not a duration (no components){hint}"));
    check_error(
        json!("PT"),
        &format!(
            "invalid duration: 'PT' is not a duration ('T' must be followed by hours, minutes \
             or seconds){hint}"
        ),
    );
    check_error(json!("P5H"), &format!("invalid duration: 'P5H' is not a duration (unexpected 'H'){hint}"));
    check_error(
        json!("PT5M1H"),
        &format!("invalid duration: 'PT5M1H' is not a duration (unexpected 'H'){hint}"),
    );
    check_error(
        json!("PT5"),
        &format!("invalid duration: 'PT5' is not a duration (a number without a unit designator){hint}"),
    );
    check_error(
        json!("PT.5S"),
        &format!("invalid duration: 'PT.5S' is not a duration (bad number '.5'){hint}"),
    );
}

#[test]
fn human_form() {
    check(json!("5m"), minutes(5));
    check(json!("30 seconds"), Duration::from_secs(30));
    check(json!("1h"), minutes(60));
    check(json!("2 hours"), minutes(120));
    check(json!("1.5h"), minutes(90));
    check(json!(".5s"), Duration::from_millis(500));
    check(json!("100"), Duration::from_millis(100));
    check(json!("100ms"), Duration::from_millis(100));
    check(json!("3d"), days(3));
    check(json!("1w"), days(7));
    check(json!("2 Mins"), minutes(2));
    check(json!("1y"), Duration::from_secs(31_557_600));
    check(json!(" 10s "), Duration::from_secs(10));
}

#[test]
fn human_form_errors() {
    let hint = "; use an object like { minutes: 5 }, an ISO 8601 string like 'PT5M' or a string \
                like '5m'";
    check_error(
        json!("-5m"),
        &format!("invalid duration: '-5m' is not a duration (negative durations are not allowed){hint}"),
    );
    check_error(
        json!("5 fortnights"),
        &format!("invalid duration: '5 fortnights' is not a duration (unknown unit 'fortnights'){hint}"),
    );
    check_error(
        json!("soon"),
        &format!("invalid duration: 'soon' is not a duration (expected a number followed by a unit){hint}"),
    );
    check_error(
        json!("1.2.3s"),
        &format!("invalid duration: '1.2.3s' is not a duration (expected a number followed by a unit){hint}"),
    );
    check_error(
        json!(""),
        &format!("invalid duration: '' is not a duration (expected a number followed by a unit){hint}"),
    );
}

#[test]
fn other_types_are_rejected() {
    check_error(
        json!(300),
        "invalid duration: expected an object like { minutes: 5 } or a string like '5m' or \
         'PT5M', found a number",
    );
    check_error(
        json!(["5m"]),
        "invalid duration: expected an object like { minutes: 5 } or a string like '5m' or \
         'PT5M', found an array",
    );
}
