//! `fs:delete`, `fs:rename` and `fs:read`, all confined to the workspace.

use serde_json::{json, Value};

use crate::action::{Action, ActionContext, ActionError};
use crate::workspace::resolve_inside;

#[derive(Debug)]
pub(crate) struct Delete;

#[async_trait::async_trait]
impl Action for Delete {
    fn id(&self) -> &str {
        "fs:delete"
    }
    fn description(&self) -> &str {
        "Deletes files and directories (glob patterns allowed) from the workspace."
    }
    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "required": ["files"],
            "properties": { "files": { "type": "array", "items": { "type": "string" }, "title": "Files or glob patterns to delete" } }
        })
    }
    fn supports_dry_run(&self) -> bool {
        true
    }
    async fn run(&self, context: &mut ActionContext<'_>) -> Result<(), ActionError> {
        let patterns: Vec<String> = context.input["files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|file| file.as_str().map(str::to_owned))
            .collect();
        let root = context.workspace.to_path_buf();
        let deleted = super::blocking(move || {
            let mut deleted = Vec::new();
            for pattern in &patterns {
                // Checked as a path first, so `../x` is refused even when it would match nothing.
                resolve_inside(&root, pattern)?;
                let matcher = globset::GlobBuilder::new(pattern)
                    .literal_separator(true)
                    .build()
                    .map_err(|error| ActionError::Input(format!("invalid pattern {pattern}: {error}")))?
                    .compile_matcher();
                for relative in walk(&root) {
                    if matcher.is_match(&relative) {
                        let path = resolve_inside(&root, &relative)?;
                        let removed = if path.is_dir() && !path.is_symlink() {
                            std::fs::remove_dir_all(&path)
                        } else {
                            std::fs::remove_file(&path)
                        };
                        match removed {
                            Ok(()) => deleted.push(relative),
                            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                            Err(error) => {
                                return Err(ActionError::failed(format!("deleting {relative}: {error}")))
                            }
                        }
                    }
                }
            }
            Ok(deleted)
        })
        .await?;
        for file in deleted {
            context.log.info(&format!("File {file} deleted successfully"));
        }
        Ok(())
    }
}

/// Every path under `root`, relative, a directory before its contents.
fn walk(root: &std::path::Path) -> Vec<String> {
    crate::workspace::entries(root).into_iter().map(|(path, _)| path).collect()
}

#[derive(Debug)]
pub(crate) struct Rename;

#[async_trait::async_trait]
impl Action for Rename {
    fn id(&self) -> &str {
        "fs:rename"
    }
    fn description(&self) -> &str {
        "Renames (moves) files and directories within the workspace."
    }
    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "required": ["files"],
            "properties": {
                "files": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["from", "to"],
                        "properties": {
                            "from": { "type": "string" },
                            "to": { "type": "string" },
                            "overwrite": { "type": "boolean" }
                        }
                    }
                }
            }
        })
    }
    fn supports_dry_run(&self) -> bool {
        true
    }
    async fn run(&self, context: &mut ActionContext<'_>) -> Result<(), ActionError> {
        let files = context.input["files"].as_array().cloned().unwrap_or_default();
        let root = context.workspace.to_path_buf();
        let moved = super::blocking(move || {
            let mut moved = Vec::new();
            for file in files {
                let (Some(from), Some(to)) = (file["from"].as_str(), file["to"].as_str()) else {
                    return Err(ActionError::Input("each file needs a from and a to path".to_owned()));
                };
                let source = resolve_inside(&root, from)?;
                let target = resolve_inside(&root, to)?;
                if source.symlink_metadata().is_err() {
                    return Err(ActionError::failed(format!("the file {from} does not exist")));
                }
                if target.symlink_metadata().is_ok() && !file["overwrite"].as_bool().unwrap_or(false) {
                    return Err(ActionError::failed(format!(
                        "the file {to} already exists; set overwrite: true to replace it"
                    )));
                }
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|error| ActionError::failed(format!("creating {to}: {error}")))?;
                }
                if target.is_dir() {
                    let _ = std::fs::remove_dir_all(&target);
                }
                std::fs::rename(&source, &target)
                    .map_err(|error| ActionError::failed(format!("renaming {from} to {to}: {error}")))?;
                moved.push(format!("{from} -> {to}"));
            }
            Ok(moved)
        })
        .await?;
        for line in moved {
            context.log.info(&format!("Renamed {line}"));
        }
        Ok(())
    }
}

#[derive(Debug)]
pub(crate) struct Read;

#[async_trait::async_trait]
impl Action for Read {
    fn id(&self) -> &str {
        "fs:read"
    }
    fn description(&self) -> &str {
        "Reads a workspace file into the output content."
    }
    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "required": ["path"],
            "properties": { "path": { "type": "string", "title": "Workspace-relative path of the file" } }
        })
    }
    fn output_schema(&self) -> Value {
        json!({ "type": "object", "properties": { "content": { "type": "string" } } })
    }
    fn supports_dry_run(&self) -> bool {
        true
    }
    async fn run(&self, context: &mut ActionContext<'_>) -> Result<(), ActionError> {
        let relative = context.required_text("path")?.to_owned();
        let path = resolve_inside(context.workspace, &relative)?;
        let content = tokio::fs::read_to_string(&path)
            .await
            .map_err(|error| ActionError::failed(format!("reading {relative}: {error}")))?;
        context.output("content", Value::String(content));
        Ok(())
    }
}
