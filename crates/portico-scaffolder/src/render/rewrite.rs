//! Source rewrites that let nunjucks-flavoured templates run on minijinja.
//!
//! Templates written for Backstage use a few JavaScript and nunjucks idioms that Jinja does not
//! have. Rather than forking the engine, the template source is rewritten before compiling,
//! touching only the code inside `${{ }}` and `{% %}` and never string literals or text:
//!
//! - `===` and `!==` become `==` and `!=` (Jinja equality is already strict enough for JSON data);
//! - `x.length` becomes `x|__js_length` (a filter with JavaScript's meaning of `.length`);
//! - `{% elseif %}` becomes `{% elif %}`, and `{% verbatim %}` becomes `{% raw %}`;
//! - `{% for k, v in obj %}` iterates the object's entries, as nunjucks does, by piping the
//!   iterable through `__js_entries`.

/// Filter that gives `.length` its JavaScript meaning.
pub(super) const LENGTH_FILTER: &str = "__js_length";
/// Filter that turns an object into `[key, value]` pairs for two-variable `for` loops.
pub(super) const ENTRIES_FILTER: &str = "__js_entries";

const BLOCK_START: &str = "{%";
const BLOCK_END: &str = "%}";
const COMMENT_START: &str = "{#";
const COMMENT_END: &str = "#}";
const VARIABLE_END: &str = "}}";

/// Rewrites a whole template whose variables open with `variable_start` (`${{` or `{{`).
pub(super) fn rewrite_template(source: &str, variable_start: &str) -> String {
    let mut out = String::with_capacity(source.len() + 16);
    let mut openers = Openers::new(source, variable_start);
    let mut offset = 0;
    while let Some((start, opener)) = openers.next_from(offset) {
        out.push_str(&source[offset..start]);
        let rest = &source[start + opener.len()..];
        let consumed = match opener {
            COMMENT_START => copy_comment(rest, &mut out),
            BLOCK_START => rewrite_block_tag(rest, &mut out),
            _ => rewrite_variable(rest, opener, &mut out),
        };
        match consumed {
            Some(consumed) => offset = start + opener.len() + consumed,
            // Unterminated tag: leave the rest alone and let the engine report the syntax error.
            None => {
                offset = start;
                break;
            }
        }
    }
    out.push_str(&source[offset..]);
    out
}

/// Finds tag openers in order. Each opener's next position is cached and only searched again
/// once the rewrite has moved past it, so a template with many tags stays linear even when one
/// kind of opener never occurs.
#[derive(Debug)]
struct Openers<'a> {
    source: &'a str,
    openers: [&'a str; 3],
    next: [Option<usize>; 3],
}

impl<'a> Openers<'a> {
    fn new(source: &'a str, variable_start: &'a str) -> Openers<'a> {
        let openers = [COMMENT_START, BLOCK_START, variable_start];
        Openers { source, openers, next: openers.map(|opener| source.find(opener)) }
    }

    /// The earliest opener at or after `offset`, with its absolute position.
    fn next_from(&mut self, offset: usize) -> Option<(usize, &'a str)> {
        for (slot, opener) in self.next.iter_mut().zip(self.openers) {
            if slot.is_some_and(|at| at < offset) {
                *slot = self.source[offset..].find(opener).map(|found| found + offset);
            }
        }
        self.next
            .iter()
            .zip(self.openers)
            .filter_map(|(at, opener)| at.map(|at| (at, opener)))
            .min_by_key(|(at, _)| *at)
    }
}

/// The expression inside `source` when `source` is exactly one `${{ expr }}` and nothing else.
pub(super) fn lone_expression(source: &str) -> Option<&str> {
    let inner = source.strip_prefix("${{")?;
    let end = code_end(inner, VARIABLE_END)?;
    if end + VARIABLE_END.len() != inner.len() {
        return None;
    }
    let code = &inner[..end];
    let code = code.strip_prefix(['-', '+']).unwrap_or(code);
    Some(code.strip_suffix(['-', '+']).unwrap_or(code))
}

/// Rewrites the JavaScript operators of one expression (see the module docs).
pub(super) fn rewrite_expression(code: &str) -> String {
    let bytes = code.as_bytes();
    let mut out = String::with_capacity(code.len() + 16);
    let mut copied = 0;
    let mut index = 0;
    while index < bytes.len() {
        let rest = &bytes[index..];
        let replacement = match bytes[index] {
            b'\'' | b'"' => {
                index = string_end(bytes, index);
                continue;
            }
            _ if rest.starts_with(b"!==") => Some(("!=", 3)),
            _ if rest.starts_with(b"===") => Some(("==", 3)),
            b'.' if is_length_access(bytes, index) => Some(("|__js_length", ".length".len())),
            _ => None,
        };
        match replacement {
            Some((text, width)) => {
                out.push_str(&code[copied..index]);
                out.push_str(text);
                index += width;
                copied = index;
            }
            None => index += 1,
        }
    }
    out.push_str(&code[copied..]);
    out
}

fn copy_comment(rest: &str, out: &mut String) -> Option<usize> {
    let end = rest.find(COMMENT_END)? + COMMENT_END.len();
    out.push_str(COMMENT_START);
    out.push_str(&rest[..end]);
    Some(end)
}

fn rewrite_variable(rest: &str, opener: &str, out: &mut String) -> Option<usize> {
    let end = code_end(rest, VARIABLE_END)?;
    out.push_str(opener);
    out.push_str(&rewrite_expression(&rest[..end]));
    out.push_str(VARIABLE_END);
    Some(end + VARIABLE_END.len())
}

fn rewrite_block_tag(rest: &str, out: &mut String) -> Option<usize> {
    let end = code_end(rest, BLOCK_END)?;
    let tag = &rest[..end];
    let consumed = end + BLOCK_END.len();
    match tag_keyword(tag) {
        "raw" | "verbatim" => {
            // Everything up to the closing tag is text, copied untouched.
            let body = &rest[consumed..];
            let (body_len, close_tag, close_len) = find_end_raw(body)?;
            push_block(out, &rename_keyword(tag, "raw"));
            out.push_str(&body[..body_len]);
            out.push_str(&close_tag);
            Some(consumed + body_len + close_len)
        }
        "elseif" => {
            push_block(out, &rewrite_expression(&rename_keyword(tag, "elif")));
            Some(consumed)
        }
        "for" => {
            push_block(out, &rewrite_expression(&rewrite_for_entries(tag)));
            Some(consumed)
        }
        _ => {
            push_block(out, &rewrite_expression(tag));
            Some(consumed)
        }
    }
}

fn push_block(out: &mut String, tag: &str) {
    out.push_str(BLOCK_START);
    out.push_str(tag);
    out.push_str(BLOCK_END);
}

/// The first word of a block tag, after any whitespace-control marker.
fn tag_keyword(tag: &str) -> &str {
    let body = tag.strip_prefix(['-', '+']).unwrap_or(tag).trim_start();
    let end = body.find(|c: char| !is_ident_char(c)).unwrap_or(body.len());
    &body[..end]
}

/// Replaces the tag's first word with `keyword`, keeping whitespace control and spacing.
fn rename_keyword(tag: &str, keyword: &str) -> String {
    let old = tag_keyword(tag);
    match tag.find(old) {
        Some(at) if !old.is_empty() => format!("{}{keyword}{}", &tag[..at], &tag[at + old.len()..]),
        _ => tag.to_owned(),
    }
}

/// Finds the closing `{% endraw %}` (or `endverbatim`), returning the body length, the
/// closing tag rewritten to `endraw`, and the closing tag's original length.
fn find_end_raw(text: &str) -> Option<(usize, String, usize)> {
    let mut offset = 0;
    while let Some(found) = text[offset..].find(BLOCK_START) {
        let at = offset + found;
        let after = &text[at + BLOCK_START.len()..];
        if let Some(end) = after.find(BLOCK_END) {
            let tag = &after[..end];
            if matches!(tag_keyword(tag), "endraw" | "endverbatim") && tag_is_single_word(tag) {
                let close = format!("{BLOCK_START}{}{BLOCK_END}", rename_keyword(tag, "endraw"));
                let close_len = BLOCK_START.len() + end + BLOCK_END.len();
                return Some((at, close, close_len));
            }
        }
        offset = at + BLOCK_START.len();
    }
    None
}

fn tag_is_single_word(tag: &str) -> bool {
    let body = tag.strip_prefix(['-', '+']).unwrap_or(tag);
    let body = body.strip_suffix(['-', '+']).unwrap_or(body);
    body.split_whitespace().count() == 1
}

/// `for a, b in EXPR [if COND] [recursive]` becomes `for a, b in (EXPR)|__js_entries ...`.
///
/// Only the two-variable form is touched: it is the one nunjucks gives object semantics to.
fn rewrite_for_entries(tag: &str) -> String {
    let Some((head, iterable, tail)) = split_two_variable_for(tag) else {
        return tag.to_owned();
    };
    format!("{head} ({})|{ENTRIES_FILTER} {}", iterable.trim(), tail.trim_start())
}

/// Splits a two-variable `for` tag into (`for a, b in`, iterable, trailing `if`/`recursive`).
fn split_two_variable_for(tag: &str) -> Option<(&str, &str, &str)> {
    let in_at = find_keyword(tag, "in")?;
    let targets = tag[..in_at].trim_start_matches(['-', '+']).trim_start();
    let targets = targets.strip_prefix("for")?;
    let names: Vec<&str> = targets.split(',').map(str::trim).collect();
    if names.len() != 2 || !names.iter().all(|name| is_identifier(name)) {
        return None;
    }
    let iterable_start = in_at + "in".len();
    let rest = &tag[iterable_start..];
    let tail_at = [find_keyword(rest, "if"), find_keyword(rest, "recursive")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| trailing_control_start(rest));
    let iterable = &rest[..tail_at];
    if iterable.trim().is_empty() {
        return None;
    }
    Some((&tag[..iterable_start], iterable, &rest[tail_at..]))
}

/// Where a trailing whitespace-control marker (`-%}`) starts, or the end.
fn trailing_control_start(text: &str) -> usize {
    let trimmed = text.trim_end();
    match trimmed.strip_suffix(['-', '+']) {
        Some(without) => without.len(),
        None => text.len(),
    }
}

/// Byte offset of `word` as a whole word at bracket depth 0, outside string literals.
fn find_keyword(code: &str, word: &str) -> Option<usize> {
    let bytes = code.as_bytes();
    let mut depth = 0usize;
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'\'' | b'"' => {
                index = string_end(bytes, index);
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ if depth == 0 && bytes[index..].starts_with(word.as_bytes()) => {
                let before = index.checked_sub(1).map(|at| bytes[at]);
                let after = bytes.get(index + word.len()).copied();
                if !before.is_some_and(is_ident_byte) && !after.is_some_and(is_ident_byte) {
                    return Some(index);
                }
            }
            _ => {}
        }
        index += 1;
    }
    None
}

/// Where the closing delimiter `end` starts: the first one outside string literals and at
/// bracket depth 0, so `${{ {'a': {'b': 1}} }}` closes at the last `}}`.
fn code_end(code: &str, end: &str) -> Option<usize> {
    let bytes = code.as_bytes();
    let mut depth = 0usize;
    let mut index = 0;
    while index < bytes.len() {
        if depth == 0 && bytes[index..].starts_with(end.as_bytes()) {
            return Some(index);
        }
        match bytes[index] {
            b'\'' | b'"' => {
                index = string_end(bytes, index);
                continue;
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        index += 1;
    }
    None
}

/// Index just past the string literal opening at `start` (or the end of input).
fn string_end(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut index = start + 1;
    while index < bytes.len() {
        match bytes[index] {
            b'\\' => index += 2,
            byte if byte == quote => return index + 1,
            _ => index += 1,
        }
    }
    bytes.len()
}

/// `.length` that reads a property: preceded by a name, `)` or `]`, and not itself followed by
/// more name characters (`.lengthy`) or a call (`.length()`).
fn is_length_access(bytes: &[u8], dot: usize) -> bool {
    let name_end = dot + ".length".len();
    if !bytes[dot..].starts_with(b".length") {
        return false;
    }
    let before = dot.checked_sub(1).map(|at| bytes[at]);
    let after = bytes.get(name_end).copied();
    before.is_some_and(|byte| is_ident_byte(byte) || byte == b')' || byte == b']')
        && !after.is_some_and(|byte| is_ident_byte(byte) || byte == b'(')
}

fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|first| first.is_alphabetic() || first == '_') && chars.all(is_ident_char)
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn is_ident_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte >= 0x80
}
