//! `${{ }}` templating with the semantics of Backstage's scaffolder (reference §3), on minijinja.
//!
//! Backstage renders with nunjucks inside a JavaScript sandbox. We keep its observable behaviour
//! where templates depend on it:
//!
//! - variables are `${{ … }}`, blocks `{% %}`, comments `{# #}`; no autoescaping; a trailing
//!   newline is kept (nunjucks never strips it, Jinja does by default);
//! - undefined values print empty, and looking up a member of an undefined value gives undefined
//!   rather than an error (`parameters.missing.x`), as nunjucks' member lookup does;
//! - JavaScript idioms in templates (`===`, `!==`, `.length`, `null`, string and array methods)
//!   work, through the source rewrites in `rewrite` and the method hook in `methods`;
//! - values print as JavaScript's `String()` would, except objects, which print as compact JSON
//!   instead of `[object Object]` (see `json::to_text`);
//! - nunjucks filter semantics win where they differ from Jinja's (`filters`).
//!
//! Templates are untrusted: every render runs with a fuel budget, a recursion limit and an output
//! size cap, and no input can make rendering panic.

mod filters;
mod json;
mod methods;
mod repo_url;
mod rewrite;

use std::io;
use std::sync::Arc;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Value;
use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde_json::Value as Json;

pub use crate::render::repo_url::{parse_repo_url, RepoSpec, RepoUrlError};

use crate::render::json::ConvertError;
use crate::render::methods::Dialect;

/// Largest text one render may produce, in bytes.
///
/// Real templates produce kilobytes; 10 MiB leaves room for generated lock files and the like
/// while stopping a template from filling memory or the disk.
pub const MAX_OUTPUT_BYTES: usize = 10 * 1024 * 1024;

/// Instructions one render may execute.
///
/// A skeleton file looping over a thousand items spends tens of thousands; five million stops a
/// runaway loop within about a second.
pub const FUEL: u64 = 5_000_000;

/// Nesting depth of loops, conditions and macro calls (a macro call costs about ten).
///
/// minijinja caps this at 500 without growing the stack; 200 keeps well inside the 2 MiB stacks
/// of tokio and `spawn_blocking` threads.
const RECURSION_LIMIT: usize = 200;

/// Name of every compiled template, so errors read `(in template:3)`.
const TEMPLATE_NAME: &str = "template";

/// One configured SCM integration host, for `parseRepoUrl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integration {
    pub host: String,
    pub kind: IntegrationKind,
}

/// The integration types whose repo URLs `parseRepoUrl` knows the required parts of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrationKind {
    Github,
    Gitlab,
    Bitbucket,
    BitbucketCloud,
    Azure,
    Gitea,
    Gerrit,
    Other,
}

/// Why a template could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A syntax error, a failing filter, an unknown filter...: the engine's message, with the
    /// line (`(in template:<line>)`).
    #[error("template error: {message}")]
    Template { message: String },
    /// The rendered text (or a single value) exceeded [`MAX_OUTPUT_BYTES`].
    #[error("template output exceeds the limit of {limit} bytes")]
    OutputTooLarge { limit: usize },
    /// The template executed more than [`FUEL`] instructions, usually a runaway loop.
    #[error("template did too much work (more than {fuel} steps); check its loops")]
    TooMuchWork { fuel: u64 },
}

/// `${{ }}` templating as Backstage's scaffolder does it (reference §3).
#[derive(Debug)]
pub struct Renderer {
    engine: Engine,
}

/// The result of [`Renderer::render_value`]: the rendered tree (`None` when the whole value
/// rendered empty) and one message per leaf that failed and was kept raw.
#[derive(Debug)]
pub struct Rendered {
    pub value: Option<Json>,
    pub errors: Vec<String>,
}

/// Options of file-content and path templating for `fetch:template` (§5.3).
#[derive(Debug, Clone, Copy, Default)]
pub struct FileOptions {
    /// `{{ }}` delimiters, Python methods, and the `jsonify` filter, for cookiecutter skeletons.
    pub cookiecutter: bool,
    /// Jinja's `trim_blocks`: drop the first newline after a block tag.
    pub trim_blocks: bool,
    /// Jinja's `lstrip_blocks`: strip whitespace before a block tag at the start of a line.
    pub lstrip_blocks: bool,
}

/// File-content and path templating for `fetch:template` (§5.3).
#[derive(Debug)]
pub struct FileTemplates {
    engine: Engine,
}

impl Renderer {
    pub fn new(integrations: Vec<Integration>) -> Renderer {
        Renderer { engine: Engine::new(FileOptions::default(), integrations.into()) }
    }

    /// Renders one string leaf (§3.2 rules 1-3).
    ///
    /// A string that is exactly one `${{ expr }}` keeps the JSON type of the expression's value
    /// (`${{ parameters.count }}` gives the number 3); otherwise the result is text. `Ok(None)`
    /// means the caller removes the key: the text rendered empty, or the lone expression was
    /// undefined. A lone expression whose value is `""` gives `Some("")`, as Backstage's
    /// dump-and-parse does; `null` stays `null`.
    pub fn render_str(&self, template: &str, context: &Json) -> Result<Option<Json>, RenderError> {
        self.render_leaf(template, &Value::from_serialize(context))
    }

    /// The rendering walk (§3.2): a deep copy in which only string leaves are rendered.
    ///
    /// A leaf rendering empty is removed from its object. In an array it becomes `null`: Backstage
    /// deletes the element, leaving a hole that `JSON.stringify` (and so the stored task and
    /// every action) sees as `null`, and keeping the array's length keeps indexes stable. A leaf
    /// whose rendering fails keeps its raw string and the failure is reported in `errors`
    /// (rule 4), as `<JSON pointer>: <message>`.
    pub fn render_value(&self, value: &Json, context: &Json) -> Rendered {
        let context = Value::from_serialize(context);
        let mut walk = Walk { renderer: self, context: &context, errors: Vec::new() };
        let mut pointer = String::new();
        let value = walk.visit(value, &mut pointer, 0);
        Rendered { value, errors: walk.errors }
    }

    fn render_leaf(&self, template: &str, context: &Value) -> Result<Option<Json>, RenderError> {
        if !has_template_syntax(template) {
            return Ok((!template.is_empty()).then(|| Json::String(template.to_owned())));
        }
        if let Some(expression) = rewrite::lone_expression(template) {
            // Like Backstage, fall back to text rendering when the typed path fails; the text
            // path then reports the error if there really is one. Hitting a limit is final:
            // rendering again would only hit it again, at twice the cost.
            match self.engine.eval(expression, context) {
                Ok(value) => return Ok(value),
                Err(RenderError::Template { .. }) => {}
                Err(limit) => return Err(limit),
            }
        }
        let text = self.engine.render(template, context)?;
        Ok((!text.is_empty()).then_some(Json::String(text)))
    }
}

impl FileTemplates {
    pub fn new(options: FileOptions, integrations: Vec<Integration>) -> FileTemplates {
        FileTemplates { engine: Engine::new(options, integrations.into()) }
    }

    /// Renders a file's contents or one path, with `context` as the template's variables.
    pub fn render(&self, text: &str, context: &Json) -> Result<String, RenderError> {
        self.engine.render(text, &Value::from_serialize(context))
    }
}

/// Falsy per §3.5: `false`, missing (`None`), `null`, `""`, `0` and `[]`. Objects, even empty
/// ones, are truthy, as in JavaScript.
pub fn is_truthy(value: Option<&Json>) -> bool {
    match value {
        None | Some(Json::Null) | Some(Json::Bool(false)) => false,
        Some(Json::String(text)) => !text.is_empty(),
        Some(Json::Number(number)) => number.as_f64().is_some_and(|number| number != 0.0),
        Some(Json::Array(items)) => !items.is_empty(),
        Some(Json::Bool(true)) | Some(Json::Object(_)) => true,
    }
}

/// A configured minijinja environment plus the variable opener its source rewrites look for.
#[derive(Debug)]
struct Engine {
    env: Environment<'static>,
    variable_start: &'static str,
}

impl Engine {
    fn new(options: FileOptions, integrations: Arc<[Integration]>) -> Engine {
        let (variable_start, dialect) =
            if options.cookiecutter { ("{{", Dialect::Python) } else { ("${{", Dialect::JavaScript) };
        let mut env = Environment::new();
        env.set_syntax(syntax(variable_start));
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_keep_trailing_newline(true);
        env.set_trim_blocks(options.trim_blocks);
        env.set_lstrip_blocks(options.lstrip_blocks);
        env.set_fuel(Some(FUEL));
        env.set_recursion_limit(RECURSION_LIMIT);
        env.set_formatter(format_output);
        env.set_unknown_method_callback(methods::hook(dialect));
        // `debug()` would print the whole context, secrets included, into the output.
        env.remove_global("debug");
        env.add_global("null", Value::from(()));
        filters::register(&mut env, integrations);
        Engine { env, variable_start }
    }

    /// Renders `source` as text, within the output limit.
    fn render(&self, source: &str, context: &Value) -> Result<String, RenderError> {
        // Text without any tag renders as itself; most paths and many files are like that.
        let has_tags = [self.variable_start, "{%", "{#"].iter().any(|opener| source.contains(opener));
        if !has_tags {
            return Ok(source.to_owned());
        }
        let source = rewrite::rewrite_template(source, self.variable_start);
        let template = self.env.template_from_named_str(TEMPLATE_NAME, &source).map_err(engine_error)?;
        let mut out = LimitedWriter::default();
        if let Err(err) = template.render_captured_to(context, &mut out) {
            if out.exceeded {
                return Err(RenderError::OutputTooLarge { limit: MAX_OUTPUT_BYTES });
            }
            return Err(engine_error(err));
        }
        String::from_utf8(out.bytes)
            .map_err(|err| RenderError::Template { message: format!("output is not UTF-8: {err}") })
    }

    /// Evaluates one expression and converts its value to JSON (`None` for undefined).
    fn eval(&self, expression: &str, context: &Value) -> Result<Option<Json>, RenderError> {
        let expression = rewrite::rewrite_expression(expression);
        let compiled = self.env.compile_expression(&expression).map_err(engine_error)?;
        let value = compiled.eval(context).map_err(engine_error)?;
        json::to_json(&value).map_err(convert_error)
    }
}

fn syntax(variable_start: &str) -> SyntaxConfig {
    SyntaxConfig::builder()
        .block_delimiters("{%", "%}")
        .variable_delimiters(variable_start.to_owned(), "}}")
        .comment_delimiters("{#", "#}")
        .build()
        .expect("the fixed delimiters are distinct and non-empty")
}

/// Whether `text` could contain anything the engine would interpret; most input leaves are
/// plain strings, and skipping the compiler for them keeps the walk cheap.
fn has_template_syntax(text: &str) -> bool {
    text.contains("${{") || text.contains("{%") || text.contains("{#")
}

/// Prints values the way JavaScript's `String()` does (see `json::to_text`).
fn format_output(
    out: &mut minijinja::Output,
    _state: &minijinja::State,
    value: &Value,
) -> Result<(), minijinja::Error> {
    if let Some(text) = value.as_str() {
        return out.write_str(text).map_err(|_| minijinja::Error::from(ErrorKind::WriteFailure));
    }
    let text = json::to_text(value).map_err(ConvertError::into_engine_error)?;
    out.write_str(&text).map_err(|_| minijinja::Error::from(ErrorKind::WriteFailure))
}

fn engine_error(err: minijinja::Error) -> RenderError {
    if err.kind() == ErrorKind::OutOfFuel {
        return RenderError::TooMuchWork { fuel: FUEL };
    }
    RenderError::Template { message: describe(&err) }
}

/// The engine's message followed by its causes, e.g. a filter's own error.
fn describe(err: &minijinja::Error) -> String {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn convert_error(err: ConvertError) -> RenderError {
    match err {
        ConvertError::TooLarge => RenderError::OutputTooLarge { limit: MAX_OUTPUT_BYTES },
        ConvertError::Engine(err) => engine_error(err),
        too_deep @ ConvertError::TooDeep => {
            RenderError::Template { message: too_deep.into_engine_error().to_string() }
        }
    }
}

/// Collects output and refuses to grow past [`MAX_OUTPUT_BYTES`].
#[derive(Debug, Default)]
struct LimitedWriter {
    bytes: Vec<u8>,
    exceeded: bool,
}

impl io::Write for LimitedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + data.len() > MAX_OUTPUT_BYTES {
            self.exceeded = true;
            return Err(io::Error::other("template output limit reached"));
        }
        self.bytes.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// State of one [`Renderer::render_value`] walk.
#[derive(Debug)]
struct Walk<'a> {
    renderer: &'a Renderer,
    context: &'a Value,
    errors: Vec<String>,
}

impl Walk<'_> {
    fn visit(&mut self, value: &Json, pointer: &mut String, depth: usize) -> Option<Json> {
        if depth > json::MAX_DEPTH {
            self.errors.push(format!(
                "{pointer}: value is nested more than {} levels deep; left unrendered",
                json::MAX_DEPTH
            ));
            return Some(value.clone());
        }
        match value {
            Json::String(template) => match self.renderer.render_leaf(template, self.context) {
                Ok(rendered) => rendered,
                Err(err) => {
                    self.errors.push(format!("{pointer}: failed to render {template:?}: {err}"));
                    Some(value.clone())
                }
            },
            Json::Array(items) => {
                let mut rendered = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    let rendered_item = self.visit_child(item, &index.to_string(), pointer, depth);
                    rendered.push(rendered_item.unwrap_or(Json::Null));
                }
                Some(Json::Array(rendered))
            }
            Json::Object(object) => {
                let mut rendered = serde_json::Map::with_capacity(object.len());
                for (key, item) in object {
                    if let Some(rendered_item) = self.visit_child(item, key, pointer, depth) {
                        rendered.insert(key.clone(), rendered_item);
                    }
                }
                Some(Json::Object(rendered))
            }
            other => Some(other.clone()),
        }
    }

    fn visit_child(&mut self, item: &Json, key: &str, pointer: &mut String, depth: usize) -> Option<Json> {
        let parent_len = pointer.len();
        pointer.push('/');
        pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
        let rendered = self.visit(item, pointer, depth + 1);
        pointer.truncate(parent_len);
        rendered
    }
}

#[cfg(test)]
mod tests;
