//! `debug:log` and `debug:wait`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::action::{Action, ActionContext, ActionError};

#[derive(Debug)]
pub(crate) struct Log;

#[async_trait::async_trait]
impl Action for Log {
    fn id(&self) -> &str {
        "debug:log"
    }
    fn description(&self) -> &str {
        "Writes a message into the log, and optionally lists the workspace."
    }
    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "message": { "type": "string", "title": "Message to output." },
                "listWorkspace": {
                    "title": "List all files in the workspace: true or \"with-filenames\" lists names, \"with-contents\" also prints each file.",
                    "oneOf": [{ "type": "boolean" }, { "type": "string", "enum": ["with-filenames", "with-contents"] }]
                },
                "extra": { "title": "Extra info" }
            }
        })
    }
    fn examples(&self) -> Vec<(String, String)> {
        vec![(
            "Write a message to the log".to_owned(),
            "steps:\n  - action: debug:log\n    id: say-hello\n    name: Say hello\n    input:\n      message: Hello, ${{ parameters.name }}!\n".to_owned(),
        )]
    }
    fn supports_dry_run(&self) -> bool {
        true
    }
    async fn run(&self, context: &mut ActionContext<'_>) -> Result<(), ActionError> {
        context.log.info(&context.input.to_string());
        if let Some(message) = context.text("message") {
            context.log.info(message);
        }
        let listing = match context.input.get("listWorkspace") {
            Some(Value::Bool(true)) => Some(false),
            Some(Value::String(mode)) if mode == "with-filenames" => Some(false),
            Some(Value::String(mode)) if mode == "with-contents" => Some(true),
            _ => None,
        };
        if let Some(with_contents) = listing {
            let root = context.workspace.to_path_buf();
            let files = super::blocking(move || Ok(list_files(&root))).await?;
            let mut text = String::from("Workspace:");
            for file in files {
                text.push_str("\n  - ");
                text.push_str(&file);
                if with_contents {
                    let contents = std::fs::read_to_string(context.workspace.join(&file)).unwrap_or_default();
                    text.push_str(":\n");
                    text.push_str(&contents);
                }
            }
            context.log.info(&text);
        }
        Ok(())
    }
}

/// Workspace-relative file paths, sorted.
fn list_files(root: &std::path::Path) -> Vec<String> {
    crate::workspace::entries(root).into_iter().filter(|(_, is_dir)| !is_dir).map(|(path, _)| path).collect()
}

#[derive(Debug)]
pub(crate) struct Wait;

#[async_trait::async_trait]
impl Action for Wait {
    fn id(&self) -> &str {
        "debug:wait"
    }
    fn description(&self) -> &str {
        "Waits for a while (up to the configured maximum), returning early when the task is cancelled."
    }
    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "minutes": { "type": "number" },
                "seconds": { "type": "number" },
                "milliseconds": { "type": "number" }
            }
        })
    }
    async fn run(&self, context: &mut ActionContext<'_>) -> Result<(), ActionError> {
        let number = |name: &str| context.input.get(name).and_then(Value::as_f64).unwrap_or(0.0).max(0.0);
        let millis = number("minutes") * 60_000.0 + number("seconds") * 1000.0 + number("milliseconds");
        let wait = Duration::from_secs_f64(millis / 1000.0);
        let max = context.services.max_wait;
        if wait > max {
            return Err(ActionError::Input(format!(
                "Waiting duration is longer than the maximum threshold of {} seconds",
                max.as_secs_f64()
            )));
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => Ok(()),
            () = context.cancel.cancelled() => Err(ActionError::Cancelled),
        }
    }
}
