//! Running a task: the step pipeline of reference §4, independent of where the task is stored.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use crate::action::{redact, ActionContext, ActionError, Actions, EventSink, Services, StepLog};
use crate::render::{is_truthy, Renderer};
use crate::template::{Step, TaskSpec};

/// How a run ended badly: Backstage's `{name, message}` of the completion event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFailure {
    pub name: String,
    pub message: String,
    /// True when the run stopped because it was cancelled.
    pub cancelled: bool,
}

/// One run of a task spec.
#[derive(Debug)]
pub struct Run<'a> {
    pub task_id: &'a str,
    pub spec: &'a TaskSpec,
    pub secrets: BTreeMap<String, String>,
    pub workspace: PathBuf,
    pub dry_run: bool,
    pub cancel: CancellationToken,
    pub services: Services,
    /// Steps that finished in an earlier run of this task, with their outputs
    /// (`{output: {...}}`): a retry starts after them, in the workspace they left.
    pub finished: Map<String, Value>,
}

/// Runs steps with a set of actions and a renderer.
#[derive(Debug)]
pub struct Runner {
    pub actions: Actions,
    pub renderer: Renderer,
    /// `scaffolder.defaultEnvironment`: `{parameters: {...}, secrets: {...}}`.
    pub environment: Value,
}

impl Runner {
    /// Runs every step in order and renders the output. Log events go to `events`.
    pub async fn run(&self, run: Run<'_>, events: &dyn EventSink) -> Result<Value, RunFailure> {
        let steps = &run.spec.steps;
        events.log(json!({ "message": format!("Starting up task with {} steps", steps.len()) }));
        let mut outputs: Map<String, Value> = Map::new();
        let mut last_step = None;
        for step in steps {
            last_step = Some(step);
            if let Some(earlier) = run.finished.get(&step.id) {
                events.log(json!({
                    "message": format!("Step {} finished in an earlier run; its output is reused", step.name),
                    "stepId": step.id,
                    "status": "completed",
                }));
                outputs.insert(step.id.clone(), earlier.clone());
                continue;
            }
            let result = self.run_step(&run, step, &mut outputs, events).await;
            if result.is_ok() && !run.dry_run {
                if let Some(finished) = outputs.get(&step.id) {
                    events.step_finished(&step.id, finished);
                }
            }
            if let Err(error) = result {
                let cancelled = matches!(error, StepError::Cancelled);
                let message = match error {
                    StepError::Cancelled => format!(
                        "Step {} ({}) of task {} has been cancelled.",
                        step.id, step.name, run.task_id
                    ),
                    StepError::Failed(message) => message,
                };
                let message = redact(&message, &self.secret_values(&run.secrets));
                events.log(json!({ "message": message, "stepId": step.id, "status": if cancelled { "cancelled" } else { "failed" } }));
                return Err(RunFailure {
                    name: if cancelled { "Cancelled" } else { "Error" }.to_owned(),
                    message,
                    cancelled,
                });
            }
        }
        let _ = last_step;
        let context = self.context(&run, &outputs, None, false);
        let output =
            self.renderer.render_value(&run.spec.output, &context).value.unwrap_or_else(|| json!({}));
        Ok(output)
    }

    async fn run_step(
        &self,
        run: &Run<'_>,
        step: &Step,
        outputs: &mut Map<String, Value>,
        events: &dyn EventSink,
    ) -> Result<(), StepError> {
        events.log(json!({ "message": format!("Beginning step {}", step.name), "stepId": step.id, "status": "processing" }));
        if run.cancel.is_cancelled() {
            return Err(StepError::Cancelled);
        }
        let skip = |events: &dyn EventSink| {
            events.log(json!({
                "message": format!("Skipping step {} because its if condition was false", step.id),
                "stepId": step.id,
                "status": "skipped",
            }));
        };
        // `if` sees the secrets, as in Backstage: a condition shows no value.
        if step.each.is_none() && !self.condition_holds(step, &self.context(run, outputs, None, true)) {
            skip(events);
            return Ok(());
        }
        let action = self.actions.get(&step.action).ok_or_else(|| {
            StepError::Failed(format!("Template action with ID '{}' is not registered.", step.action))
        })?;

        if run.dry_run && !action.supports_dry_run() {
            events.log(json!({
                "message": format!("Skipping because {} does not support dry-run", step.action),
                "stepId": step.id,
                "status": "skipped",
            }));
            let invented = invent_outputs(&action.output_schema());
            outputs.insert(step.id.clone(), json!({ "output": invented }));
            return Ok(());
        }

        // Every iteration's input is rendered and validated before any of them runs.
        let iterations = self.iterations(run, step, outputs)?;
        let validator = jsonschema::validator_for(&action.input_schema()).map_err(|error| {
            StepError::Failed(format!("action {} has an invalid input schema: {error}", step.action))
        })?;
        let mut planned = Vec::new();
        for each in iterations {
            let context = self.context(run, outputs, each.as_ref(), true);
            if step.each.is_some() && !self.condition_holds(step, &context) {
                continue;
            }
            let rendered = self.renderer.render_value(&step.input, &context);
            let input = rendered.value.unwrap_or_else(|| json!({}));
            let problems: Vec<String> = validator
                .iter_errors(&input)
                .map(|error| {
                    let path = error.instance_path().to_string();
                    if path.is_empty() {
                        error.to_string()
                    } else {
                        format!("{path}: {error}")
                    }
                })
                .collect();
            if !problems.is_empty() {
                let key = each
                    .as_ref()
                    .map(|each| format!("[{}]", each["key"].as_str().unwrap_or("")))
                    .unwrap_or_default();
                return Err(StepError::Failed(format!(
                    "Invalid input passed to action {}{key}, {}",
                    step.action,
                    problems.join("; ")
                )));
            }
            if let Err(reason) = run.services.guard.allows(&step.action, &input) {
                return Err(StepError::Failed(format!("Unauthorized action: {}. {reason}", step.action)));
            }
            // Strings that change when rendered without secrets carry a secret: redact them too.
            let public =
                self.renderer.render_value(&step.input, &self.context(run, outputs, each.as_ref(), false));
            let mut redactions = self.secret_values(&run.secrets);
            collect_differences(&input, public.value.as_ref(), &mut redactions);
            planned.push((each, input, redactions));
        }

        let mut step_outputs: Map<String, Value> = Map::new();
        let several = step.each.is_some();
        for (each, input, redactions) in planned {
            let log = StepLog::new(events, &step.id, redactions);
            if let Some(each) = &each {
                log.info(&format!("Running step each: {}", each));
            }
            if run.dry_run {
                let shown = log.redact(&input.to_string());
                log.info(&format!(
                    "Running {} in dry-run mode with inputs (secrets redacted): {shown}",
                    step.action
                ));
            }
            let mut context = ActionContext {
                input,
                workspace: &run.workspace,
                log: &log,
                secrets: &run.secrets,
                template_info: &run.spec.template_info,
                user: &run.spec.user,
                dry_run: run.dry_run,
                cancel: &run.cancel,
                task_id: run.task_id,
                step_id: &step.id,
                services: &run.services,
                outputs: Map::new(),
            };
            let result = tokio::select! {
                result = action.run(&mut context) => result,
                () = run.cancel.cancelled() => Err(ActionError::Cancelled),
            };
            match result {
                Ok(()) => {}
                Err(ActionError::Cancelled) => return Err(StepError::Cancelled),
                Err(error) => return Err(StepError::Failed(error.to_string())),
            }
            if run.cancel.is_cancelled() {
                return Err(StepError::Cancelled);
            }
            for (name, value) in context.outputs {
                if several {
                    match step_outputs.entry(name).or_insert_with(|| Value::Array(Vec::new())) {
                        Value::Array(values) => values.push(value),
                        other => *other = Value::Array(vec![value]),
                    }
                } else {
                    step_outputs.insert(name, value);
                }
            }
        }
        outputs.insert(step.id.clone(), json!({ "output": step_outputs }));
        events.log(json!({ "message": format!("Finished step {}", step.name), "stepId": step.id, "status": "completed" }));
        Ok(())
    }

    /// `each` resolved to `[{key, value}]`, or one iteration without `each`.
    fn iterations(
        &self,
        run: &Run<'_>,
        step: &Step,
        outputs: &Map<String, Value>,
    ) -> Result<Vec<Option<Value>>, StepError> {
        let Some(each) = &step.each else { return Ok(vec![None]) };
        let context = self.context(run, outputs, None, true);
        let resolved = match each {
            Value::String(text) => self.renderer.render_str(text, &context).ok().flatten(),
            other => self.renderer.render_value(other, &context).value,
        };
        let unresolved = || {
            StepError::Failed(format!(
                "Invalid value on action {}.each parameter, \"{}\" cannot be resolved to a value",
                step.action,
                match each {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                }
            ))
        };
        match resolved {
            Some(Value::Array(items)) if !items.is_empty() => Ok(items
                .into_iter()
                .enumerate()
                .map(|(index, value)| Some(json!({ "key": index.to_string(), "value": value })))
                .collect()),
            Some(Value::Object(entries)) => Ok(entries
                .into_iter()
                .map(|(key, value)| Some(json!({ "key": key, "value": value })))
                .collect()),
            _ => Err(unresolved()),
        }
    }

    fn condition_holds(&self, step: &Step, context: &Value) -> bool {
        match &step.condition {
            None => true,
            Some(Value::Bool(holds)) => *holds,
            Some(Value::String(text)) => match self.renderer.render_str(text, context) {
                Ok(value) => is_truthy(value.as_ref()),
                // Rendering failed: Backstage keeps the raw (non-empty) string, which is truthy.
                Err(_) => true,
            },
            Some(_) => true,
        }
    }

    /// The template context. Secrets (the task's and the environment's) only when rendering
    /// step inputs and `each`.
    fn context(
        &self,
        run: &Run<'_>,
        outputs: &Map<String, Value>,
        each: Option<&Value>,
        with_secrets: bool,
    ) -> Value {
        let mut environment =
            json!({ "parameters": self.environment.get("parameters").cloned().unwrap_or_else(|| json!({})) });
        let mut context = json!({
            "parameters": run.spec.parameters,
            "steps": outputs,
            "user": { "entity": run.spec.user.entity, "ref": run.spec.user.entity_ref },
            "context": { "task": { "id": run.task_id } },
        });
        if with_secrets && !run.dry_run {
            context["secrets"] = json!(run.secrets);
            environment["secrets"] = self.environment.get("secrets").cloned().unwrap_or_else(|| json!({}));
        } else {
            context["secrets"] = json!({});
        }
        context["environment"] = environment;
        if let Some(each) = each {
            context["each"] = each.clone();
        }
        context
    }

    /// Every secret value a log line must not show.
    pub fn secret_values(&self, secrets: &BTreeMap<String, String>) -> Vec<String> {
        let mut values: Vec<String> = secrets.values().cloned().collect();
        if let Some(Value::Object(environment)) = self.environment.get("secrets") {
            values.extend(environment.values().filter_map(Value::as_str).map(str::to_owned));
        }
        values
    }
}

#[derive(Debug)]
enum StepError {
    Cancelled,
    Failed(String),
}

/// Adds every string of `with` that differs from the string at the same place in `without`.
fn collect_differences(with: &Value, without: Option<&Value>, out: &mut Vec<String>) {
    match (with, without) {
        (Value::String(text), Some(Value::String(other))) if text == other => {}
        (Value::String(text), _) => out.push(text.clone()),
        (Value::Array(items), Some(Value::Array(others))) => {
            for (index, item) in items.iter().enumerate() {
                collect_differences(item, others.get(index), out);
            }
        }
        (Value::Array(items), _) => items.iter().for_each(|item| collect_differences(item, None, out)),
        (Value::Object(entries), Some(Value::Object(others))) => {
            for (key, item) in entries {
                collect_differences(item, others.get(key), out);
            }
        }
        (Value::Object(entries), _) => entries.values().for_each(|item| collect_differences(item, None, out)),
        _ => {}
    }
}

/// Outputs a dry run shows for an action it did not run: an example value per declared output.
fn invent_outputs(schema: &Value) -> Value {
    let mut outputs = Map::new();
    if let Some(Value::Object(properties)) = schema.get("properties") {
        for (name, property) in properties {
            outputs.insert(name.clone(), example(property, name));
        }
    }
    Value::Object(outputs)
}

fn example(schema: &Value, name: &str) -> Value {
    match schema.get("type").and_then(Value::as_str) {
        Some("number" | "integer") => json!(0),
        Some("boolean") => json!(false),
        Some("array") => json!([]),
        Some("object") => invent_outputs(schema),
        _ => json!(format!("dry-run-{name}")),
    }
}

#[cfg(test)]
mod tests;
