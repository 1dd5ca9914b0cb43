//! Software template tasks: creating them, the worker pool that runs them, events, cancel,
//! retry, recovery after a restart, and dry runs.
//!
//! A task's life is in the store (`portico_store` tasks); a run is `portico_scaffolder::run`.
//! Secrets are sealed (ChaCha20-Poly1305) before they are stored and dropped when the task ends.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use portico_scaffolder::action::{Actions, CatalogService, EventSink, Services};
use portico_scaffolder::render::{Integration, Renderer};
use portico_scaffolder::run::{Run, RunFailure, Runner};
use portico_scaffolder::template::{TaskSpec, TaskUser, Template};
use portico_store::{TaskEventRow, TaskQuery, TaskRow};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::identity::Identity;
use crate::{permission, App, Error};

/// `scaffolder.*` configuration.
#[derive(Debug, Clone)]
pub struct ScaffolderOptions {
    /// `scaffolder.concurrentTasksLimit` (0: this server runs no tasks).
    pub concurrency: usize,
    /// Where task workspaces are created (`backend.workingDirectory`, else the OS temp dir).
    pub working_directory: PathBuf,
    /// `scaffolder.defaultEnvironment`: `{parameters, secrets}`.
    pub environment: Value,
    /// `scaffolder.defaultAuthor` name and email.
    pub git_author: (String, String),
    /// `scaffolder.defaultCommitMessage`.
    pub commit_message: String,
    pub integrations: Vec<Integration>,
    /// `integrations.github[]` / `integrations.gitlab[]` with their API URLs and tokens.
    pub scm: Vec<portico_scaffolder::action::ScmHost>,
    /// `scaffolder.publish.git.allowedHosts`.
    pub git_hosts: Vec<String>,
    /// `scaffolder.publish.git.localDirectory`.
    pub local_repositories: Option<PathBuf>,
    /// `scaffolder.taskRecovery.enabled`: interrupted runs of templates that ask to start over
    /// do so; otherwise they fail.
    pub recovery: bool,
    /// How old a running task's heartbeat must be before another replica takes it as lost.
    pub stale_timeout: Duration,
    /// The key secrets are sealed with.
    pub secrets_key: SecretsKey,
    /// The longest `debug:wait`.
    pub max_wait: Duration,
}

impl Default for ScaffolderOptions {
    fn default() -> ScaffolderOptions {
        ScaffolderOptions {
            concurrency: 10,
            working_directory: std::env::temp_dir(),
            environment: json!({}),
            git_author: ("Scaffolder".to_owned(), "scaffolder@backstage.io".to_owned()),
            commit_message: "Initial commit".to_owned(),
            integrations: Vec::new(),
            scm: Vec::new(),
            git_hosts: Vec::new(),
            local_repositories: None,
            recovery: false,
            stale_timeout: Duration::from_secs(30),
            secrets_key: SecretsKey(rand::random()),
            max_wait: Duration::from_secs(30),
        }
    }
}

/// 32 bytes that seal task secrets; never printed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SecretsKey(pub [u8; 32]);

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("SecretsKey(..)")
    }
}

/// The scaffolder's state inside `App`.
#[derive(Debug)]
pub struct Scaffolder {
    options: ScaffolderOptions,
    runner: Runner,
    /// Wakes the workers when a task is created or retried.
    wake: tokio::sync::Notify,
    /// Bumped whenever this server appends an event, so streams answer at once.
    events: tokio::sync::watch::Sender<u64>,
    /// Runs in progress here, to cancel.
    running: parking_lot::Mutex<HashMap<String, CancellationToken>>,
}

/// A task as the API shows it (no secrets).
#[derive(Debug, Clone)]
pub struct TaskView {
    pub row: TaskRow,
    pub spec: Value,
}

/// The result of a dry run.
#[derive(Debug, Clone)]
pub struct DryRunResult {
    pub log: Vec<Value>,
    pub output: Value,
    pub steps: Vec<portico_scaffolder::template::Step>,
    /// `(path, executable, bytes)` of every file the run left in the workspace.
    pub files: Vec<(String, bool, Vec<u8>)>,
}

/// One validation problem of submitted values, in the shape Backstage's validator reports.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueProblem {
    /// Where in the values, as property names and array indexes.
    pub path: Vec<Value>,
    pub message: String,
    pub name: String,
    pub argument: Value,
}

impl Scaffolder {
    pub fn new(options: ScaffolderOptions) -> Scaffolder {
        let runner = Runner {
            actions: Actions::builtin(),
            renderer: Renderer::new(options.integrations.clone()),
            environment: options.environment.clone(),
        };
        Scaffolder {
            options,
            runner,
            wake: tokio::sync::Notify::new(),
            events: tokio::sync::watch::channel(0).0,
            running: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    pub fn actions(&self) -> &Actions {
        &self.runner.actions
    }

    /// Waits for the next event this server appends (or `timeout`).
    pub async fn next_event(&self, timeout: Duration) {
        let mut receiver = self.events.subscribe();
        let _ = tokio::time::timeout(timeout, receiver.changed()).await;
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(&self.options.secrets_key.0))
    }

    /// Secrets encrypted with the scaffolder's key (ChaCha20-Poly1305, a fresh nonce each time),
    /// as stored with tasks and carried between the form's pages; `None` when there are none.
    pub fn seal(&self, secrets: &BTreeMap<String, String>) -> Option<String> {
        if secrets.is_empty() {
            return None;
        }
        let plain = serde_json::to_vec(secrets).ok()?;
        let nonce: [u8; 12] = rand::random();
        let sealed = self.cipher().encrypt(Nonce::from_slice(&nonce), plain.as_slice()).ok()?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Some(base64_encode(&out))
    }

    /// Sealed secrets back; `None` when damaged or sealed with another key.
    pub fn unseal(&self, sealed: &str) -> Option<BTreeMap<String, String>> {
        let bytes = base64_decode(sealed)?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(12);
        let plain = self.cipher().decrypt(Nonce::from_slice(nonce), sealed).ok()?;
        serde_json::from_slice(&plain).ok()
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// Validates `values` against each form page, as Backstage does: the whole value object against
/// every page schema, stopping at the first page that fails.
pub fn validate_values(pages: &[Value], values: &Value) -> Result<(), Vec<ValueProblem>> {
    for page in pages {
        let schema = strip_ui_keys(page);
        let Ok(validator) = jsonschema::draft7::new(&schema) else { continue };
        let problems: Vec<ValueProblem> = validator
            .iter_errors(values)
            .map(|error| {
                let path: Vec<Value> = error
                    .instance_path()
                    .iter()
                    .map(|segment| match segment {
                        jsonschema::paths::LocationSegment::Property(name) => Value::String(name.to_string()),
                        jsonschema::paths::LocationSegment::Index(index) => json!(index),
                    })
                    .collect();
                let name = error.schema_path().as_str().rsplit('/').next().unwrap_or_default().to_owned();
                let argument = match &error.kind() {
                    jsonschema::error::ValidationErrorKind::Required { property } => property.clone(),
                    _ => Value::Null,
                };
                ValueProblem { path, message: error.to_string(), name, argument }
            })
            .collect();
        let mut problems = problems;
        if problems.is_empty() {
            problems = repo_url_problems(page, values, &mut Vec::new());
        }
        if !problems.is_empty() {
            return Err(problems);
        }
    }
    Ok(())
}

/// `RepoUrlPicker` fields whose submitted `host?owner=…&repo=…` is outside their
/// `allowedHosts`, `allowedOwners`, `allowedRepos`, `allowedOrganizations` or `allowedProjects`:
/// a plain JSON Schema check would let any repository through.
fn repo_url_problems(schema: &Value, values: &Value, path: &mut Vec<Value>) -> Vec<ValueProblem> {
    let mut problems = Vec::new();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else { return problems };
    for (name, property) in properties {
        let value = values.get(name);
        path.push(Value::String(name.clone()));
        if property.get("type").and_then(Value::as_str) == Some("object") {
            if let Some(nested) = value {
                problems.extend(repo_url_problems(property, nested, path));
            }
        } else if property.get("ui:field").and_then(Value::as_str) == Some("RepoUrlPicker") {
            if let Some(text) = value.and_then(Value::as_str) {
                let (host, query) = text.split_once('?').unwrap_or((text, ""));
                let params: std::collections::HashMap<String, String> =
                    url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
                for (option, part) in [
                    ("allowedHosts", Some(host.to_owned())),
                    ("allowedOwners", params.get("owner").cloned()),
                    ("allowedRepos", params.get("repo").cloned()),
                    ("allowedOrganizations", params.get("organization").cloned()),
                    ("allowedProjects", params.get("project").cloned()),
                ] {
                    let Some(allowed) =
                        property.pointer(&format!("/ui:options/{option}")).and_then(Value::as_array)
                    else {
                        continue;
                    };
                    let given = part.unwrap_or_default();
                    if !allowed.iter().any(|item| item.as_str() == Some(given.as_str())) {
                        let names: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
                        problems.push(ValueProblem {
                            path: path.clone(),
                            message: format!("{given:?} is not one of the {option}: {}", names.join(", ")),
                            name: option.to_owned(),
                            argument: json!({ "allowed": names }),
                        });
                    }
                }
            }
        }
        path.pop();
    }
    problems
}

/// A page schema without the form's `ui:` keys and Backstage's own annotations.
fn strip_ui_keys(value: &Value) -> Value {
    match value {
        Value::Object(entries) => Value::Object(
            entries
                .iter()
                .filter(|(key, _)| !key.starts_with("ui:") && !key.starts_with("backstage:"))
                .map(|(key, value)| (key.clone(), strip_ui_keys(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_ui_keys).collect()),
        other => other.clone(),
    }
}

/// The catalog as a task's actions see it: the App, acting as the task's initiator.
#[derive(Debug)]
struct TaskCatalog {
    app: Weak<App>,
    identity: Identity,
}

#[async_trait::async_trait]
impl CatalogService for TaskCatalog {
    async fn register(&self, kind: &str, target: &str, dry_run: bool) -> Result<Vec<Value>, String> {
        let app = self.app.upgrade().ok_or("the server is shutting down")?;
        // A `file` location only for what `publish:git` published into its local directory.
        let local = kind == "file"
            && app
                .scaffolder
                .options
                .local_repositories
                .as_ref()
                .is_some_and(|root| Path::new(target).starts_with(root));
        if kind == "file" && !local {
            return Err(format!("cannot register file {target}: only repositories published into scaffolder.publish.git.localDirectory can be registered as files"));
        }
        let created = app
            .create_location_of_any_type(&self.identity, kind, target, dry_run, local)
            .await
            .map_err(|error| error.to_string())?;
        if !dry_run {
            app.engine.wake();
        }
        Ok(created.entities)
    }

    async fn entity(&self, entity_ref: &str) -> Result<Option<Value>, String> {
        let app = self.app.upgrade().ok_or("the server is shutting down")?;
        Ok(app.readable_entity(&self.identity, entity_ref))
    }
}

/// What a run tells its writer task.
enum Note {
    Log(Value),
    /// A step finished with these outputs: recorded in the task's state for a retry.
    Step(String, Value),
}

/// Sends a run's log events and finished steps to the store, in order, through one writer
/// task. Outputs that hold a secret are not recorded (their step runs again on a retry).
struct ChannelSink {
    sender: tokio::sync::mpsc::UnboundedSender<Note>,
    secrets: Vec<String>,
}

impl EventSink for ChannelSink {
    fn log(&self, body: Value) {
        let _ = self.sender.send(Note::Log(body));
    }

    fn step_finished(&self, step_id: &str, outputs: &Value) {
        let text = outputs.to_string();
        if self.secrets.iter().any(|secret| !secret.is_empty() && text.contains(secret.as_str())) {
            return;
        }
        let _ = self.sender.send(Note::Step(step_id.to_owned(), outputs.clone()));
    }
}

/// Collects a dry run's log.
#[derive(Default)]
struct MemorySink(parking_lot::Mutex<Vec<Value>>);

impl EventSink for MemorySink {
    fn log(&self, body: Value) {
        self.0.lock().push(body);
    }
}

/// Skeleton files on other hosts, read under `backend.reading.allow`.
#[derive(Debug)]
struct AllowlistReader(crate::reader::Reader);

#[async_trait::async_trait]
impl portico_scaffolder::remote::UrlReader for AllowlistReader {
    async fn read(&self, url: &url::Url) -> Result<Vec<u8>, String> {
        self.0.read_url_bytes(url.as_str()).await.map_err(|error| error.to_string())
    }
}

/// `scaffolder.action.execute` for a task's initiator: conditions (`HAS_ACTION_ID`,
/// `HAS_*_PROPERTY`) are met by `{action, input}`.
#[derive(Debug)]
struct TaskGuard {
    decision: permission::Decision,
    identity: Identity,
}

impl portico_scaffolder::action::ActionGuard for TaskGuard {
    fn allows(&self, action: &str, input: &Value) -> Result<(), String> {
        let resource = json!({ "action": action, "input": input });
        if self.decision.allows(&resource, &self.identity) {
            Ok(())
        } else {
            Err(format!(
                "{} is not allowed to scaffolder.action.execute with this input",
                self.identity.actor()
            ))
        }
    }
}

const LOST_WORKER: &str = "The task was cancelled because the task worker lost connection to the task broker";

impl App {
    pub fn scaffolder(&self) -> &Scaffolder {
        &self.scaffolder
    }

    /// The readable Template entity with this ref, without the parameter pages and steps the
    /// caller may not read (`scaffolder.template.parameter.read` and `.step.read`, whose
    /// conditions `HAS_TAG` meet through `backstage:permissions.tags`): refused pages are not
    /// asked for and refused steps do not run.
    pub fn template(&self, identity: &Identity, entity_ref: &str) -> Result<Template, Error> {
        let entity = self
            .readable_entity(identity, &entity_ref.to_lowercase())
            .ok_or_else(|| Error::NotFound(format!("No template found for {entity_ref}")))?;
        let mut template = Template::from_entity(&entity).map_err(|error| Error::Input(error.to_string()))?;
        let pages = self.decision(identity, permission::TEMPLATE_PARAMETER_READ);
        template.pages.retain(|page| pages.allows(page, identity));
        let steps = self.decision(identity, permission::TEMPLATE_STEP_READ);
        template.steps.retain(|step| {
            let resource = serde_json::to_value(step).unwrap_or(Value::Null);
            steps.allows(&resource, identity)
        });
        Ok(template)
    }

    /// Whether the caller may read (or, with `TASK_CANCEL`, cancel) this task: conditions
    /// (`IS_TASK_OWNER`) are met by its creator.
    fn may_on_task(&self, identity: &Identity, permission: permission::Permission, row: &TaskRow) -> bool {
        let resource = json!({ "createdBy": row.created_by });
        self.decision(identity, permission).allows(&resource, identity)
    }

    /// `POST /v2/tasks`: validates the values and queues a run. Evaluates to the task id.
    pub async fn create_task(
        &self,
        identity: &Identity,
        template_ref: &str,
        values: Value,
        secrets: BTreeMap<String, String>,
    ) -> Result<Result<String, Vec<ValueProblem>>, Error> {
        self.check(identity, permission::TASK_CREATE, None)?;
        let entity_ref = full_template_ref(template_ref)?;
        let template = self.template(identity, &entity_ref)?;
        if let Err(problems) = validate_values(&template.pages, &values) {
            return Ok(Err(problems));
        }
        if let Some(schema) = &template.secrets_schema {
            if let Err(problems) = validate_values(std::slice::from_ref(schema), &json!(secrets)) {
                return Ok(Err(problems));
            }
        }
        let user = self.task_user(identity);
        let created_by = user.entity_ref.clone();
        let spec = template.task_spec(values, user);
        let id = uuid::Uuid::new_v4().to_string();
        let spec_text = serde_json::to_string(&spec).map_err(|error| Error::Input(error.to_string()))?;
        let sealed = self.scaffolder.seal(&secrets);
        self.store.create_task(&id, &spec_text, created_by.as_deref(), sealed.as_deref()).await?;
        self.scaffolder.wake.notify_one();
        Ok(Ok(id))
    }

    fn task_user(&self, identity: &Identity) -> TaskUser {
        match identity {
            Identity::User { user_entity_ref, .. } => TaskUser {
                entity: self.readable_entity(identity, user_entity_ref),
                entity_ref: Some(user_entity_ref.clone()),
            },
            _ => TaskUser::default(),
        }
    }

    /// A task the caller may read; one they may not read is not found, as in Backstage.
    pub async fn task(&self, identity: &Identity, task_id: &str) -> Result<TaskView, Error> {
        let decision = self.decision(identity, permission::TASK_READ);
        if decision == permission::Decision::Deny {
            self.check(identity, permission::TASK_READ, None)?;
        }
        let row = self
            .store
            .task(task_id)
            .await?
            .filter(|row| self.may_on_task(identity, permission::TASK_READ, row))
            .ok_or_else(|| Error::NotFound(format!("Task with id {task_id} does not exist")))?;
        let spec = serde_json::from_str(&row.spec).unwrap_or(Value::Null);
        Ok(TaskView { row, spec })
    }

    /// Tasks matching the query that the caller may read, and how many there are.
    pub async fn list_tasks(
        &self,
        identity: &Identity,
        query: &TaskQuery,
    ) -> Result<(Vec<TaskView>, i64), Error> {
        let view = |row: TaskRow| {
            let spec = serde_json::from_str(&row.spec).unwrap_or(Value::Null);
            TaskView { row, spec }
        };
        match self.decision(identity, permission::TASK_READ) {
            permission::Decision::Deny => {
                self.check(identity, permission::TASK_READ, None)?;
                Ok((Vec::new(), 0))
            }
            permission::Decision::Allow => {
                let (rows, total) = self.store.list_tasks(query).await?;
                Ok((rows.into_iter().map(view).collect(), total))
            }
            // Conditions are met task by task, so the page is cut after filtering.
            conditional => {
                let unpaged = TaskQuery { limit: None, offset: None, ..query.clone() };
                let (rows, _) = self.store.list_tasks(&unpaged).await?;
                let readable: Vec<TaskRow> = rows
                    .into_iter()
                    .filter(|row| conditional.allows(&json!({ "createdBy": row.created_by }), identity))
                    .collect();
                let total = readable.len() as i64;
                let offset = query.offset.unwrap_or(0).max(0) as usize;
                let limit = query.limit.map_or(usize::MAX, |limit| limit.max(0) as usize);
                Ok((readable.into_iter().skip(offset).take(limit).map(view).collect(), total))
            }
        }
    }

    pub async fn task_events(
        &self,
        identity: &Identity,
        task_id: &str,
        after: i64,
    ) -> Result<Vec<TaskEventRow>, Error> {
        self.task(identity, task_id).await?;
        Ok(self.store.task_events(task_id, after).await?)
    }

    /// `POST /v2/tasks/:id/cancel`.
    pub async fn cancel_task(&self, identity: &Identity, task_id: &str) -> Result<(), Error> {
        let task = self.task(identity, task_id).await?;
        if !self.may_on_task(identity, permission::TASK_CANCEL, &task.row) {
            return Err(Error::NotAllowed(format!(
                "{} is not allowed to scaffolder.task.cancel on task {task_id}",
                identity.actor()
            )));
        }
        let events = self.store.task_events(task_id, 0).await?;
        let step = events
            .iter()
            .rev()
            .find_map(|event| serde_json::from_str::<Value>(&event.body).ok()?.get("stepId").cloned())
            .unwrap_or(json!(0));
        let step_text = step.as_str().map(str::to_owned).unwrap_or_else(|| step.to_string());
        let body = json!({ "message": format!("Step {step_text} has been cancelled."), "stepId": step, "status": "cancelled" });
        if !matches!(task.row.status.as_str(), "open" | "processing") {
            return Ok(());
        }
        self.store.append_task_event(task_id, "cancelled", &body.to_string()).await?;
        let completion = json!({ "message": "Run completed with status: cancelled" });
        if !self.store.cancel_open_task(task_id, &completion.to_string()).await? {
            // Running (or claimed a moment ago): the worker stops at the cancellation, here at
            // once, elsewhere when it sees the event.
            if let Some(token) = self.scaffolder.running.lock().get(task_id) {
                token.cancel();
            }
        }
        self.scaffolder.events.send_modify(|count| *count += 1);
        Ok(())
    }

    /// `POST /v2/tasks/:id/retry`: a failed or cancelled task runs again from its first step.
    pub async fn retry_task(
        &self,
        identity: &Identity,
        task_id: &str,
        secrets: BTreeMap<String, String>,
    ) -> Result<(), Error> {
        self.task(identity, task_id).await?;
        self.check(identity, permission::TASK_CREATE, None)?;
        let sealed = self.scaffolder.seal(&secrets);
        if !self.store.reopen_task(task_id, sealed.as_deref()).await? {
            return Err(Error::Conflict(format!(
                "Task {task_id} has not failed or been cancelled, so it cannot be retried"
            )));
        }
        self.scaffolder.wake.notify_one();
        self.scaffolder.events.send_modify(|count| *count += 1);
        Ok(())
    }

    /// `POST /v2/dry-run`: runs a posted template against posted files, without side effects
    /// beyond a temporary workspace, and returns the log, output and resulting files.
    pub async fn dry_run_template(
        self: &Arc<Self>,
        identity: &Identity,
        entity: &Value,
        values: Value,
        files: Vec<(String, Vec<u8>)>,
    ) -> Result<Result<DryRunResult, Vec<ValueProblem>>, Error> {
        self.check(identity, permission::TASK_CREATE, None)?;
        let template = Template::from_entity(entity)
            .map_err(|error| Error::Input(format!("Input template is not a template: {error}")))?;
        if let Err(problems) = validate_values(&template.pages, &values) {
            return Ok(Err(problems));
        }
        let root = tempfile_dir(&self.scaffolder.options.working_directory, "dry-run")?;
        let template_dir = root.join("template");
        let workspace = root.join("workspace");
        for dir in [&template_dir, &workspace] {
            std::fs::create_dir_all(dir)
                .map_err(|error| Error::Input(format!("creating a dry-run directory: {error}")))?;
        }
        for (path, bytes) in files {
            let target = portico_scaffolder::workspace::resolve_inside(&template_dir, &path)
                .map_err(|error| Error::Input(error.to_string()))?;
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|error| Error::Input(format!("writing {path}: {error}")))?;
            }
            std::fs::write(&target, bytes)
                .map_err(|error| Error::Input(format!("writing {path}: {error}")))?;
        }
        let mut spec = template.task_spec(values, self.task_user(identity));
        spec.template_info.base_url =
            url::Url::from_file_path(template_dir.join("template.yaml")).ok().map(String::from);
        let sink = MemorySink::default();
        let run = Run {
            task_id: "dry-run",
            spec: &spec,
            secrets: BTreeMap::new(),
            workspace: workspace.clone(),
            dry_run: true,
            cancel: CancellationToken::new(),
            services: self.task_services(identity),
            finished: Map::new(),
        };
        let result = self.scaffolder.runner.run(run, &sink).await;
        let output = match result {
            Ok(output) => output,
            Err(failure) => json!({ "error": { "name": failure.name, "message": failure.message } }),
        };
        let files = read_tree(&workspace);
        let _ = std::fs::remove_dir_all(&root);
        Ok(Ok(DryRunResult { log: sink.0.into_inner(), output, steps: spec.steps, files }))
    }

    fn task_services(self: &Arc<Self>, identity: &Identity) -> Services {
        let options = &self.scaffolder.options;
        Services {
            catalog: Arc::new(TaskCatalog { app: Arc::downgrade(self), identity: identity.clone() }),
            reader: Arc::new(AllowlistReader(self.processor.reader().clone())),
            guard: Arc::new(TaskGuard {
                decision: self.decision(identity, permission::ACTION_EXECUTE),
                identity: identity.clone(),
            }),
            integrations: options.integrations.clone(),
            git_author: options.git_author.clone(),
            commit_message: options.commit_message.clone(),
            max_wait: options.max_wait,
            git_hosts: options.git_hosts.clone(),
            local_repositories: options.local_repositories.clone(),
            scm: options.scm.clone(),
        }
    }

    /// The worker pool: recovers interrupted tasks, then claims and runs open tasks until
    /// shutdown, with heartbeats for running ones.
    pub(crate) async fn run_scaffolder(self: Arc<Self>, shutdown: CancellationToken) {
        let options = self.scaffolder.options.clone();
        if options.concurrency == 0 {
            return;
        }
        // On SQLite this is the only server: whatever ran before it was interrupted.
        let stale = if self.store.is_postgres() { options.stale_timeout } else { Duration::ZERO };
        self.recover_tasks(stale).await;
        self.prune_workspaces().await;
        let mut running: tokio::task::JoinSet<()> = tokio::task::JoinSet::new();
        let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
        let mut janitor = tokio::time::interval(options.stale_timeout.max(Duration::from_secs(5)));
        // A timer that was switched off while idle must not fire its missed ticks all at once.
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        janitor.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Tasks created here wake the pool at once. On PostgreSQL another replica may create
        // them, so the pool also looks every second there; an idle SQLite server does nothing.
        let replicas = self.store.is_postgres();
        let mut look = true;
        loop {
            while look && running.len() < options.concurrency && !shutdown.is_cancelled() {
                match self.store.claim_task().await {
                    Ok(Some(claimed)) => {
                        let app = self.clone();
                        running.spawn(async move { app.run_task(claimed).await });
                    }
                    Ok(None) => break,
                    Err(error) => {
                        tracing::warn!(%error, "claiming a scaffolder task failed");
                        break;
                    }
                }
            }
            look = false;
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.scaffolder.wake.notified() => look = true,
                Some(_) = running.join_next(), if !running.is_empty() => look = true,
                _ = heartbeat.tick(), if replicas || !running.is_empty() => {
                    self.beat().await;
                    look = replicas;
                }
                _ = janitor.tick(), if replicas => self.recover_tasks(options.stale_timeout).await,
            }
        }
        // Shutting down: runs stop; their tasks are recovered (or failed) at the next start.
        for token in self.scaffolder.running.lock().values() {
            token.cancel();
        }
        running.abort_all();
        while running.join_next().await.is_some() {}
    }

    async fn recover_tasks(&self, stale: Duration) {
        let recovery = self.scaffolder.options.recovery;
        let stale_ms = i64::try_from(stale.as_millis()).unwrap_or(i64::MAX);
        let start_over = |task: &TaskRow| {
            recovery && serde_json::from_str::<TaskSpec>(&task.spec).is_ok_and(|spec| spec.starts_over())
        };
        match self.store.recover_tasks(stale_ms, start_over, LOST_WORKER).await {
            Ok(recovered) if !recovered.is_empty() => {
                tracing::info!(tasks = ?recovered, "recovered interrupted scaffolder tasks");
                self.scaffolder.wake.notify_one();
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "recovering scaffolder tasks failed"),
        }
    }

    /// Removes the workspaces that failed runs left for a retry once their task ended more
    /// than a week ago or completed since (at start and after each completed run). Only directories named after a stored task are
    /// touched, as the working directory may be shared (the system's temporary directory).
    async fn prune_workspaces(&self) {
        const KEPT_FOR_MS: i64 = 7 * 24 * 3600 * 1000;
        let Ok(entries) = std::fs::read_dir(&self.scaffolder.options.working_directory) else { return };
        let now = portico_store::now_millis();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if uuid::Uuid::parse_str(&name).is_err() || !entry.path().is_dir() {
                continue;
            }
            let Ok(Some(task)) = self.store.task(&name).await else { continue };
            let ended_long_ago = task.last_heartbeat_at.unwrap_or(task.created_at) < now - KEPT_FOR_MS;
            let done = match task.status.as_str() {
                "completed" => true,
                "failed" | "cancelled" => ended_long_ago,
                _ => false,
            };
            if done {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Heartbeats for this server's runs, and cancellation asked for through another replica.
    async fn beat(&self) {
        let ids: Vec<String> = self.scaffolder.running.lock().keys().cloned().collect();
        if ids.is_empty() {
            return;
        }
        if let Err(error) = self.store.heartbeat_tasks(&ids).await {
            tracing::warn!(%error, "scaffolder task heartbeat failed");
        }
        if self.store.is_postgres() {
            for id in ids {
                let cancelled = self
                    .store
                    .task_events(&id, 0)
                    .await
                    .is_ok_and(|events| events.iter().any(|event| event.event_type == "cancelled"));
                if cancelled {
                    if let Some(token) = self.scaffolder.running.lock().get(&id) {
                        token.cancel();
                    }
                }
            }
        }
    }

    async fn run_task(self: Arc<Self>, claimed: portico_store::ClaimedTask) {
        let task_id = claimed.task.id.clone();
        let cancel = CancellationToken::new();
        self.scaffolder.running.lock().insert(task_id.clone(), cancel.clone());
        // Cancelled between the claim and now: the run stops before its first step.
        let cancelled = self
            .store
            .task_events(&task_id, 0)
            .await
            .is_ok_and(|events| events.iter().any(|event| event.event_type == "cancelled"));
        if cancelled {
            cancel.cancel();
        }
        // A retry starts after the steps an earlier run finished, in the workspace it left;
        // without that workspace (another replica ran it, or it was cleaned up) every step
        // runs again.
        let workspace = self.scaffolder.options.working_directory.join(&task_id);
        let mut state: Value = claimed
            .task
            .state
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        let earlier = state.get("steps").and_then(Value::as_object).cloned().unwrap_or_default();
        let finished = if workspace.is_dir() { earlier.clone() } else { Map::new() };
        state["steps"] = Value::Object(finished.clone());
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<Note>();
        if !earlier.is_empty() && finished.is_empty() {
            // Forgotten in the store too, before anything runs: a later retry must not skip
            // steps whose files this run's workspace lacks.
            if let Err(error) = self.store.save_task_state(&task_id, &state.to_string()).await {
                tracing::warn!(%error, task = %task_id, "resetting a task's recorded steps failed");
            }
            let _ = sender.send(Note::Log(json!({
                "message": "The workspace of the earlier run is gone, so every step runs again"
            })));
        }
        let writer = {
            let app = self.clone();
            let task_id = task_id.clone();
            tokio::spawn(async move {
                while let Some(note) = receiver.recv().await {
                    let written = match note {
                        Note::Log(body) => {
                            let written = app
                                .store
                                .append_task_event(&task_id, "log", &body.to_string())
                                .await
                                .map(drop);
                            app.scaffolder.events.send_modify(|count| *count += 1);
                            written
                        }
                        Note::Step(step_id, outputs) => {
                            state["steps"][step_id] = outputs;
                            app.store.save_task_state(&task_id, &state.to_string()).await
                        }
                    };
                    if let Err(error) = written {
                        tracing::warn!(%error, task = %task_id, "writing a task's progress failed");
                    }
                }
            })
        };
        // The run is a task of its own, so that an action that panics ends the run as failed
        // instead of leaving it `processing` with a live heartbeat forever.
        let run = {
            let app = self.clone();
            tokio::spawn(async move { app.run_claimed(&claimed, sender, finished, cancel).await })
        };
        let outcome = run.await.unwrap_or_else(|error| {
            tracing::error!(%error, task = %task_id, "a scaffolder run panicked");
            Err(RunFailure {
                name: "Error".to_owned(),
                message: format!("the run stopped unexpectedly: {error}"),
                cancelled: false,
            })
        });
        let _ = writer.await;
        // Kept for a retry only when the run failed after finishing a step.
        let keep = outcome.is_err()
            && self.store.task(&task_id).await.ok().flatten().is_some_and(|task| {
                task.state.as_deref().and_then(|text| serde_json::from_str::<Value>(text).ok()).is_some_and(
                    |state| {
                        state.get("steps").and_then(Value::as_object).is_some_and(|steps| !steps.is_empty())
                    },
                )
            });
        if !keep {
            let _ = std::fs::remove_dir_all(&workspace);
        }
        let (status, body) = match outcome {
            Ok(output) => {
                ("completed", json!({ "message": "Run completed with status: completed", "output": output }))
            }
            Err(failure) => {
                let status = if failure.cancelled { "cancelled" } else { "failed" };
                (
                    status,
                    json!({
                        "message": format!("Run completed with status: {status}"),
                        "error": { "name": failure.name, "message": failure.message },
                    }),
                )
            }
        };
        if let Err(error) = self.store.finish_task(&task_id, status, "completion", &body.to_string()).await {
            tracing::warn!(%error, task = %task_id, "recording the end of a task failed");
        }
        self.scaffolder.running.lock().remove(&task_id);
        self.scaffolder.events.send_modify(|count| *count += 1);
        if status == "completed" {
            self.prune_workspaces().await;
        }
    }

    async fn run_claimed(
        self: &Arc<Self>,
        claimed: &portico_store::ClaimedTask,
        sender: tokio::sync::mpsc::UnboundedSender<Note>,
        finished: Map<String, Value>,
        cancel: CancellationToken,
    ) -> Result<Value, RunFailure> {
        let failure = |message: String| RunFailure { name: "Error".to_owned(), message, cancelled: false };
        let spec: TaskSpec = serde_json::from_str(&claimed.task.spec)
            .map_err(|error| failure(format!("the stored task spec cannot be read: {error}")))?;
        let secrets = match &claimed.secrets {
            None => BTreeMap::new(),
            Some(sealed) => self.scaffolder.unseal(sealed).ok_or_else(|| {
                failure("the task's secrets cannot be unsealed: it was created by a server with another scaffolder.secretsKey".to_owned())
            })?,
        };
        let identity = match &claimed.task.created_by {
            Some(user) => Identity::User {
                user_entity_ref: user.clone(),
                ownership_entity_refs: self.ownership_of(user),
            },
            None => Identity::Anonymous,
        };
        // A refusal outright fails before the first step; conditions are met step by step.
        let refused = self.decision(&identity, permission::ACTION_EXECUTE) == permission::Decision::Deny;
        if !spec.steps.is_empty() && refused {
            if let Err(error) = self.check(&identity, permission::ACTION_EXECUTE, None) {
                let action = &spec.steps[0].action;
                return Err(RunFailure {
                    name: "NotAllowedError".to_owned(),
                    message: format!("Unauthorized action: {action}. The action is not allowed: {error}"),
                    cancelled: false,
                });
            }
        }
        let workspace = self.scaffolder.options.working_directory.join(&claimed.task.id);
        if finished.is_empty() {
            let _ = std::fs::remove_dir_all(&workspace);
        }
        std::fs::create_dir_all(&workspace)
            .map_err(|error| failure(format!("creating the workspace {}: {error}", workspace.display())))?;
        let sink = ChannelSink { sender, secrets: self.scaffolder.runner.secret_values(&secrets) };
        let run = Run {
            task_id: &claimed.task.id,
            spec: &spec,
            secrets,
            workspace,
            dry_run: false,
            cancel,
            services: self.task_services(&identity),
            finished,
        };
        self.scaffolder.runner.run(run, &sink).await
    }
}

/// `template:default/x` from `x`, `default/x` or a full ref (kind defaults to template).
fn full_template_ref(text: &str) -> Result<String, Error> {
    let defaults = portico_catalog::entity_ref::RefDefaults { kind: Some("template"), namespace: None };
    portico_catalog::entity_ref::EntityRef::parse(text, defaults)
        .map(|parsed| parsed.canonical())
        .map_err(|error| Error::Input(error.message))
}

fn tempfile_dir(base: &Path, prefix: &str) -> Result<PathBuf, Error> {
    let dir = base.join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)
        .map_err(|error| Error::Input(format!("creating {}: {error}", dir.display())))?;
    Ok(dir)
}

/// Every file under `root`: relative path, executable bit, contents.
fn read_tree(root: &Path) -> Vec<(String, bool, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    portico_scaffolder::workspace::entries(root)
        .into_iter()
        .filter(|(_, is_dir)| !is_dir)
        .filter_map(|(relative, _)| {
            let path = root.join(&relative);
            let metadata = std::fs::symlink_metadata(&path).ok().filter(std::fs::Metadata::is_file)?;
            let executable = metadata.permissions().mode() & 0o111 != 0;
            Some((relative, executable, std::fs::read(&path).unwrap_or_default()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::validate_values;

    #[test]
    fn repo_url_pickers_accept_only_their_allowed_hosts_and_owners() {
        let page = json!({
            "required": ["repoUrl"],
            "properties": {
                "repoUrl": {
                    "type": "string",
                    "ui:field": "RepoUrlPicker",
                    "ui:options": { "allowedHosts": ["github.com"], "allowedOwners": ["acme"] },
                },
            },
        });
        assert!(validate_values(
            std::slice::from_ref(&page),
            &json!({ "repoUrl": "github.com?owner=acme&repo=svc" })
        )
        .is_ok());
        let problems = validate_values(
            std::slice::from_ref(&page),
            &json!({ "repoUrl": "evil.example?owner=other&repo=svc" }),
        )
        .unwrap_err();
        let names: Vec<&str> = problems.iter().map(|problem| problem.name.as_str()).collect();
        assert_eq!(names, ["allowedHosts", "allowedOwners"]);
        assert_eq!(problems[0].path, [json!("repoUrl")]);
        assert_eq!(problems[0].argument, json!({ "allowed": ["github.com"] }));
        // The schema's own problems come first and alone.
        let problems = validate_values(std::slice::from_ref(&page), &json!({})).unwrap_err();
        assert_eq!(problems[0].name, "required");
    }
}
