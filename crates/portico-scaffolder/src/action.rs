//! Actions: the steps' verbs. Built-in ones live in `actions/`; plugins register their own by
//! implementing [`Action`] and adding it to the [`Actions`] registry.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::render::Integration;
use crate::template::{TaskUser, TemplateInfo};
use crate::workspace::PathError;

/// One action: an id, JSON Schemas for its input and output, and the work.
#[async_trait::async_trait]
pub trait Action: Send + Sync + fmt::Debug {
    fn id(&self) -> &str;
    fn description(&self) -> &str;
    /// JSON Schema the rendered input must satisfy before the action runs.
    fn input_schema(&self) -> Value;
    /// JSON Schema of the outputs (also used to invent outputs in a dry run of an action that
    /// does not support dry runs).
    fn output_schema(&self) -> Value {
        serde_json::json!({ "type": "object", "properties": {} })
    }
    /// `[{description, example}]`, examples as YAML text.
    fn examples(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Whether a dry run may call `run` (with `context.dry_run` set).
    fn supports_dry_run(&self) -> bool {
        false
    }
    async fn run(&self, context: &mut ActionContext<'_>) -> Result<(), ActionError>;
}

/// Why an action failed; the message becomes the step's failure event.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Failed(String),
    #[error("the step was cancelled")]
    Cancelled,
    #[error(transparent)]
    Path(#[from] PathError),
}

impl ActionError {
    pub fn failed(message: impl fmt::Display) -> ActionError {
        ActionError::Failed(message.to_string())
    }
}

/// What the catalog offers actions, acting as the task's initiator.
#[async_trait::async_trait]
pub trait CatalogService: Send + Sync + fmt::Debug {
    /// Registers a location (`url`, or `file` for a `file://` URL, which the application may
    /// refuse), or with `dry_run` only reads it, and evaluates to the entities it holds.
    /// Registering a location twice is an error.
    async fn register(&self, kind: &str, target: &str, dry_run: bool) -> Result<Vec<Value>, String>;
    /// The entity with this ref, if the initiator may read it.
    async fn entity(&self, entity_ref: &str) -> Result<Option<Value>, String>;
}

/// Decides whether the initiator may run an action with a rendered input
/// (`scaffolder.action.execute`, checked for every run of every step).
pub trait ActionGuard: Send + Sync + fmt::Debug {
    /// `Err` explains the refusal.
    fn allows(&self, action: &str, input: &Value) -> Result<(), String>;
}

/// A guard that allows everything (no permission policy).
#[derive(Debug, Default)]
pub struct AllowAll;

impl ActionGuard for AllowAll {
    fn allows(&self, _action: &str, _input: &Value) -> Result<(), String> {
        Ok(())
    }
}

/// Everything outside the workspace an action may use, set up per task for its initiator.
#[derive(Debug, Clone)]
pub struct Services {
    pub catalog: Arc<dyn CatalogService>,
    /// Which actions the initiator may run, with which inputs.
    pub guard: Arc<dyn ActionGuard>,
    /// Plain URL reads under the reading allowlist (skeleton files on other hosts).
    pub reader: Arc<dyn crate::remote::UrlReader>,
    pub integrations: Vec<Integration>,
    /// `scaffolder.defaultAuthor` and `scaffolder.defaultCommitMessage`.
    pub git_author: (String, String),
    pub commit_message: String,
    /// The longest `debug:wait` allowed.
    pub max_wait: std::time::Duration,
    /// Hosts (`host` or `host:port`) `publish:git` may push to.
    pub git_hosts: Vec<String>,
    /// The directory under which `publish:git` may create and push to `file://` repositories
    /// (none: local remotes are refused).
    pub local_repositories: Option<std::path::PathBuf>,
    /// SCM hosts with an API the hosted publishers (`publish:github`, `publish:gitlab`) call.
    pub scm: Vec<ScmHost>,
}

/// A configured SCM host: where its REST API is and the token to call it with.
#[derive(Clone, PartialEq, Eq)]
pub struct ScmHost {
    pub kind: crate::render::IntegrationKind,
    pub host: String,
    /// `https://api.github.com`, `https://<host>/api/v3`, `https://<host>/api/v4`, …
    pub api_base_url: String,
    pub token: Option<String>,
}

impl ScmHost {
    /// A client for this host's API (a fresh one per call: publishing is rare) and the URL of
    /// `path_and_query` on it.
    pub(crate) fn api(
        &self,
        path_and_query: &str,
        timeout: std::time::Duration,
    ) -> Result<(reqwest::Client, String), ActionError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent("portico-scaffolder")
            .build()
            .map_err(ActionError::failed)?;
        Ok((client, format!("{}{path_and_query}", self.api_base_url.trim_end_matches('/'))))
    }
}

impl fmt::Debug for ScmHost {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ScmHost")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("api_base_url", &self.api_base_url)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Receives a task's log events, in order.
pub trait EventSink: Send + Sync {
    fn log(&self, body: Value);
    /// A step ran to its end with these outputs (`{output: {...}}`), so a retry may start
    /// after it.
    fn step_finished(&self, _step_id: &str, _outputs: &Value) {}
}

/// A step's logger: every message goes out as a `log` event with the step id, with secret
/// values replaced by `***`.
pub struct StepLog<'a> {
    sink: &'a dyn EventSink,
    step_id: String,
    redactions: Vec<String>,
}

impl fmt::Debug for StepLog<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("StepLog").field("step_id", &self.step_id).finish_non_exhaustive()
    }
}

impl<'a> StepLog<'a> {
    pub fn new(sink: &'a dyn EventSink, step_id: &str, mut redactions: Vec<String>) -> StepLog<'a> {
        // Longest first, so a secret containing another is replaced whole.
        redactions.retain(|secret| !secret.is_empty());
        redactions.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        redactions.dedup();
        StepLog { sink, step_id: step_id.to_owned(), redactions }
    }

    pub fn info(&self, message: &str) {
        self.sink.log(serde_json::json!({ "message": self.redact(&format!("info: {message}")), "stepId": self.step_id }));
    }

    pub fn redact(&self, text: &str) -> String {
        redact(text, &self.redactions)
    }
}

/// Replaces every occurrence of each secret by `***`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|secret| !secret.is_empty()) {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), "***");
        }
    }
    text
}

/// What an action gets to work with.
#[derive(Debug)]
pub struct ActionContext<'a> {
    /// The rendered, validated input.
    pub input: Value,
    pub workspace: &'a Path,
    pub log: &'a StepLog<'a>,
    pub secrets: &'a BTreeMap<String, String>,
    pub template_info: &'a TemplateInfo,
    pub user: &'a TaskUser,
    pub dry_run: bool,
    pub cancel: &'a CancellationToken,
    pub task_id: &'a str,
    pub step_id: &'a str,
    pub services: &'a Services,
    pub(crate) outputs: Map<String, Value>,
}

impl ActionContext<'_> {
    /// Sets output `name` (`steps.<id>.output.<name>`).
    pub fn output(&mut self, name: &str, value: Value) {
        self.outputs.insert(name.to_owned(), value);
    }

    /// A string input, if present.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.input.get(name).and_then(Value::as_str)
    }

    /// A required string input (the input schema usually guarantees it already).
    pub fn required_text(&self, name: &str) -> Result<&str, ActionError> {
        self.text(name)
            .ok_or_else(|| ActionError::Input(format!("input {name} is required and must be a string")))
    }

    pub fn flag(&self, name: &str) -> bool {
        self.input.get(name).and_then(Value::as_bool).unwrap_or(false)
    }
}

/// The registered actions, by id.
#[derive(Debug, Clone, Default)]
pub struct Actions {
    by_id: BTreeMap<String, Arc<dyn Action>>,
}

impl Actions {
    /// Every built-in action.
    pub fn builtin() -> Actions {
        let mut actions = Actions::default();
        for action in crate::actions::builtin() {
            actions.register(action);
        }
        actions
    }

    /// Adds an action, replacing one with the same id.
    pub fn register(&mut self, action: Arc<dyn Action>) {
        self.by_id.insert(action.id().to_owned(), action);
    }

    pub fn get(&self, id: &str) -> Option<&Arc<dyn Action>> {
        self.by_id.get(id)
    }

    /// In id order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Action>> {
        self.by_id.values()
    }
}
