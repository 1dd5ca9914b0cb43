//! Parsing descriptor files: multi-document YAML with line numbers (reference §6.6).
//!
//! We drive `saphyr-parser`'s event stream ourselves instead of loading a YAML tree and
//! converting it, for four reasons:
//! - every value's line is known while building, so diagnostics can point at `spec.owner`;
//! - documents completed before a syntax error are kept (the loader returns all or nothing);
//! - nesting and alias expansion are bounded here, with an explicit stack, so hostile input
//!   can neither overflow the call stack nor blow up memory;
//! - scalars resolve with the YAML 1.2 core schema and `<<` stays an ordinary key, which is
//!   what Backstage's YAML library does by default.
use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError, Span, Tag};
use serde_json::{Map, Value};

/// One YAML document of a descriptor file.
#[derive(Debug, Clone)]
pub struct Document {
    pub value: Value,
    /// 1-based line where the document's root node starts.
    pub line: usize,
    /// Dotted path (`""` for the root) to the 1-based line of its key (mapping entries) or of
    /// the node itself (sequence items), sorted by path for binary search.
    positions: Vec<(String, usize)>,
}

impl Document {
    /// The 1-based line of a dotted field (`metadata.name`, `spec.providesApis.1`), falling back
    /// to the nearest parent that has a position, then to the document line.
    pub fn line_of(&self, field: &str) -> usize {
        let mut field = field;
        loop {
            if let Ok(index) = self.positions.binary_search_by(|(path, _)| path.as_str().cmp(field)) {
                return self.positions[index].1;
            }
            match field.rfind('.') {
                Some(dot) => field = &field[..dot],
                None => return self.line,
            }
        }
    }
}

/// A problem with the file itself (YAML syntax, a root that is not a mapping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses every document; null documents are skipped. Never panics on any input.
///
/// A syntax error ends parsing (documents before it are returned). Problems confined to one
/// document (a root that is not a mapping, a repeated key, too deep nesting, excessive
/// aliasing) drop that document only.
pub fn parse_descriptor(text: &str) -> (Vec<Document>, Vec<SyntaxError>) {
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder::default();
    while let Some(next) = parser.next_event() {
        match next {
            Ok((event, span)) => builder.on_event(event, span),
            Err(error) => {
                builder.errors.push(scan_error(&error));
                break;
            }
        }
    }
    (builder.documents, builder.errors)
}

/// Deeper nesting than this is refused. Real descriptors stay under 20 levels; the bound
/// keeps later recursive walks over the value (serialisation, validation) safe.
pub const MAX_DEPTH: usize = 256;

/// How many nodes anchors and aliases may copy within one document, against "billion laughs"
/// files whose few lines of nested aliases expand to gigabytes. Anchors count too because
/// each anchored value is kept as a copy for its aliases, and nested anchors copy the same
/// subtree once per level.
pub const MAX_COPIED_NODES: usize = 100_000;

fn scan_error(error: &ScanError) -> SyntaxError {
    SyntaxError {
        line: error.marker().line(),
        column: error.marker().col() + 1,
        message: error.info().to_owned(),
    }
}

#[derive(Debug, Default)]
struct Builder {
    documents: Vec<Document>,
    errors: Vec<SyntaxError>,
    current: Option<DocumentBuilder>,
}

#[derive(Debug, Default)]
struct DocumentBuilder {
    stack: Vec<Frame>,
    root: Option<(Value, Span)>,
    positions: Vec<(String, usize)>,
    /// Anchor id to the finished value and its node count.
    anchors: HashMap<usize, (Value, usize)>,
    nodes: usize,
    copied_nodes: usize,
    /// Set after a problem that invalidates the document; its remaining events are ignored.
    failed: bool,
}

#[derive(Debug)]
struct Frame {
    container: Container,
    /// `None` inside mapping keys, which have no addressable path.
    path: Option<String>,
    anchor: usize,
    start_nodes: usize,
    span: Span,
}

#[derive(Debug)]
enum Container {
    Mapping { map: Map<String, Value>, key: Option<String> },
    Sequence(Vec<Value>),
}

impl Builder {
    fn on_event(&mut self, event: Event<'_>, span: Span) {
        match event {
            Event::DocumentStart(_) => self.current = Some(DocumentBuilder::default()),
            Event::DocumentEnd => {
                if let Some(document) = self.current.take() {
                    self.finish(document);
                }
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
            event => {
                let Some(document) = self.current.as_mut() else {
                    return;
                };
                if document.failed {
                    return;
                }
                if let Err(error) = document.on_node_event(event, span) {
                    document.failed = true;
                    self.errors.push(error);
                }
            }
        }
    }

    fn finish(&mut self, document: DocumentBuilder) {
        if document.failed {
            return;
        }
        let Some((value, span)) = document.root else {
            return;
        };
        match value {
            Value::Null => {}
            Value::Object(_) => {
                let mut positions = document.positions;
                positions.sort_by(|a, b| a.0.cmp(&b.0));
                // Keys containing dots can spell the same path twice; the first one wins.
                positions.dedup_by(|later, earlier| later.0 == earlier.0);
                self.documents.push(Document { value, line: span.start.line(), positions });
            }
            other => self.errors.push(SyntaxError {
                line: span.start.line(),
                column: span.start.col() + 1,
                message: format!("Expected object at root, got {}", root_type_name(&other)),
            }),
        }
    }
}

impl DocumentBuilder {
    fn on_node_event(&mut self, event: Event<'_>, span: Span) -> Result<(), SyntaxError> {
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                self.start_node(span);
                let value = resolve_scalar(text, style, tag.as_deref());
                self.nodes += 1;
                if anchor != 0 {
                    self.copy_nodes(1, span)?;
                    self.anchors.insert(anchor, (value.clone(), 1));
                }
                self.add_value(value, span)
            }
            Event::Alias(anchor) => {
                let Some(size) = self.anchors.get(&anchor).map(|(_, size)| *size) else {
                    return Err(error_at(span, "Unknown anchor referenced by alias".to_owned()));
                };
                self.copy_nodes(size, span)?;
                let value = self.anchors.get(&anchor).map_or(Value::Null, |(value, _)| value.clone());
                self.start_node(span);
                self.nodes += size;
                self.add_value(value, span)
            }
            Event::MappingStart(anchor, _) => {
                self.open(Container::Mapping { map: Map::new(), key: None }, anchor, span)
            }
            Event::SequenceStart(anchor, _) => self.open(Container::Sequence(Vec::new()), anchor, span),
            Event::MappingEnd | Event::SequenceEnd => self.close(),
            _ => Ok(()),
        }
    }

    fn open(&mut self, container: Container, anchor: usize, span: Span) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(error_at(span, format!("Nesting is deeper than {MAX_DEPTH} levels")));
        }
        let path = self.start_node(span);
        let start_nodes = self.nodes;
        self.nodes += 1;
        self.stack.push(Frame { container, path, anchor, start_nodes, span });
        Ok(())
    }

    fn close(&mut self) -> Result<(), SyntaxError> {
        let Some(frame) = self.stack.pop() else {
            return Ok(());
        };
        let value = match frame.container {
            Container::Mapping { map, .. } => Value::Object(map),
            Container::Sequence(items) => Value::Array(items),
        };
        if frame.anchor != 0 {
            let size = self.nodes - frame.start_nodes;
            self.copy_nodes(size, frame.span)?;
            self.anchors.insert(frame.anchor, (value.clone(), size));
        }
        self.add_value(value, frame.span)
    }

    /// Charges `size` copied nodes to the document's budget, before copying them.
    fn copy_nodes(&mut self, size: usize, span: Span) -> Result<(), SyntaxError> {
        self.copied_nodes += size;
        if self.copied_nodes > MAX_COPIED_NODES {
            return Err(error_at(
                span,
                "Excessive alias count indicates a resource exhaustion attack".to_owned(),
            ));
        }
        Ok(())
    }

    /// Works out where a node that starts now sits, and records its line. Returns its path.
    fn start_node(&mut self, span: Span) -> Option<String> {
        let line = span.start.line();
        let Some(parent) = self.stack.last() else {
            self.positions.push((String::new(), line));
            return Some(String::new());
        };
        let parent_path = parent.path.as_deref()?;
        let (segment, line) = match &parent.container {
            // A node in key position is a key: it has no path of its own.
            Container::Mapping { key: None, .. } => return None,
            // Mapping values are placed at their key's line, recorded when the key ended.
            Container::Mapping { key: Some(key), .. } => (key.clone(), None),
            Container::Sequence(items) => (items.len().to_string(), Some(line)),
        };
        let path = if parent_path.is_empty() { segment } else { format!("{parent_path}.{segment}") };
        if let Some(line) = line {
            self.positions.push((path.clone(), line));
        }
        Some(path)
    }

    /// Hands a finished node to its parent: the document root, a sequence item, a mapping
    /// key or a mapping value.
    fn add_value(&mut self, value: Value, span: Span) -> Result<(), SyntaxError> {
        let Some(parent) = self.stack.last_mut() else {
            self.root = Some((value, span));
            return Ok(());
        };
        match &mut parent.container {
            Container::Sequence(items) => items.push(value),
            Container::Mapping { map, key } => match key.take() {
                Some(key) => {
                    map.insert(key, value);
                }
                None => {
                    let new_key = key_string(value);
                    if map.contains_key(&new_key) {
                        return Err(error_at(
                            span,
                            format!("Map keys must be unique; \"{new_key}\" is repeated"),
                        ));
                    }
                    if let Some(parent_path) = parent.path.as_deref() {
                        let path = if parent_path.is_empty() {
                            new_key.clone()
                        } else {
                            format!("{parent_path}.{new_key}")
                        };
                        self.positions.push((path, span.start.line()));
                    }
                    *key = Some(new_key);
                }
            },
        }
        Ok(())
    }
}

fn error_at(span: Span, message: String) -> SyntaxError {
    SyntaxError { line: span.start.line(), column: span.start.col() + 1, message }
}

/// JSON object keys are strings; other YAML keys are written the way JavaScript's YAML
/// library stringifies them (`1`, `true`, and `""` for a null key).
fn key_string(key: Value) -> String {
    match key {
        Value::String(text) => text,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn root_type_name(value: &Value) -> &'static str {
    match value {
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Null | Value::Object(_) => "object",
    }
}

/// YAML 1.2 core schema: only plain scalars are typed; quoted and block scalars are strings.
/// `!!str` forces a string and the other core tags force their type when the text allows it.
fn resolve_scalar(text: Cow<'_, str>, style: ScalarStyle, tag: Option<&Tag>) -> Value {
    if let Some(tag) = tag {
        let core = tag.is_yaml_core_schema();
        match (core, tag.suffix.as_str()) {
            (true, "str") => return Value::String(text.into_owned()),
            (true, "null") if is_null(&text) => return Value::Null,
            (true, "bool") => {
                if let Some(value) = as_bool(&text) {
                    return Value::Bool(value);
                }
            }
            (true, "int" | "float") => {
                if let Some(value) = as_number(&text) {
                    return value;
                }
            }
            // The non-specific tag `!` marks a scalar as a string.
            (false, "") if tag.handle == "!" => return Value::String(text.into_owned()),
            _ => {}
        }
    }
    if style != ScalarStyle::Plain {
        return Value::String(text.into_owned());
    }
    if is_null(&text) {
        return Value::Null;
    }
    if let Some(value) = as_bool(&text) {
        return Value::Bool(value);
    }
    as_number(&text).unwrap_or_else(|| Value::String(text.into_owned()))
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn as_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

fn as_number(text: &str) -> Option<Value> {
    if let Some(digits) = text.strip_prefix("0x") {
        return radix_number(digits, 16);
    }
    if let Some(digits) = text.strip_prefix("0o") {
        return radix_number(digits, 8);
    }
    match text {
        // JSON has no infinities or NaN; JavaScript's JSON.stringify writes them as null.
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF" | ".nan"
        | ".NaN" | ".NAN" => return Some(Value::Null),
        _ => {}
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(integer) = text.parse::<i64>() {
            return Some(Value::from(integer));
        }
        return text.parse::<f64>().ok().map(float_value);
    }
    if is_core_float(unsigned) {
        return text.parse::<f64>().ok().map(float_value);
    }
    None
}

fn radix_number(digits: &str, radix: u32) -> Option<Value> {
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    match u64::from_str_radix(digits, radix) {
        Ok(integer) => Some(Value::from(integer)),
        // Too big for u64: approximate, as JavaScript numbers do.
        Err(_) => Some(float_value(
            digits
                .chars()
                .filter_map(|c| c.to_digit(radix))
                .fold(0.0, |acc, d| acc * f64::from(radix) + f64::from(d)),
        )),
    }
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` after the sign.
fn is_core_float(text: &str) -> bool {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(index) => (&text[..index], Some(&text[index + 1..])),
        None => (text, None),
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", fraction)) => digits(fraction),
        Some((whole, fraction)) => digits(whole) && (fraction.is_empty() || digits(fraction)),
        None => digits(mantissa),
    };
    let exponent_ok =
        exponent.is_none_or(|exponent| digits(exponent.strip_prefix(['-', '+']).unwrap_or(exponent)));
    mantissa_ok && exponent_ok
}

/// JavaScript has one number type, so `1.0` in YAML is `1` in Backstage's JSON. Keep that:
/// integral values within the exactly representable range become integers.
fn float_value(value: f64) -> Value {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    if !value.is_finite() {
        return Value::Null;
    }
    if value.fract() == 0.0 && value.abs() <= MAX_SAFE {
        // In range and integral, so the conversion is exact.
        return Value::from(value as i64);
    }
    serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests;
