//! `fetch:plain`, `fetch:plain:file`, `fetch:template` and `fetch:template:file`.
//!
//! Skeletons are read from beside the template (a `file:` template location, or a dry run's
//! uploaded directory), never from elsewhere on the machine. Remote skeletons (GitHub tree URLs
//! and the like) need the SCM integrations, which are not built yet; asking for one is a clear
//! error.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::action::{Action, ActionContext, ActionError};
use crate::fetch::{copy_tree, template_file, template_tree, TemplateOptions};
use crate::workspace::resolve_inside;

/// Where a `url` input points on this machine (reference §5.1).
fn local_source(context: &ActionContext<'_>, url: &str) -> Result<PathBuf, ActionError> {
    let base = context.template_info.base_url.as_deref();
    let template_dir = base
        .and_then(|base| url::Url::parse(base).ok())
        .filter(|base| base.scheme() == "file")
        .and_then(|base| base.to_file_path().ok())
        .and_then(|path| path.parent().map(std::path::Path::to_path_buf));
    if let Ok(absolute) = url::Url::parse(url) {
        let inside = absolute.to_file_path().ok().filter(|path| {
            absolute.scheme() == "file" && template_dir.as_ref().is_some_and(|dir| path.starts_with(dir))
        });
        return inside.ok_or_else(|| {
            ActionError::Input(format!(
                "cannot fetch {url}: only skeletons next to the template can be read (remote URL readers are not available yet)"
            ))
        });
    }
    let Some(dir) = template_dir else {
        return Err(match base {
            None => ActionError::Input("Failed to fetch, template location could not be determined".to_owned()),
            Some(base) => ActionError::Input(format!(
                "cannot fetch {url} relative to {base}: only templates registered from files can fetch relative skeletons so far"
            )),
        });
    };
    Ok(resolve_inside(&dir, url)?)
}

fn target(context: &ActionContext<'_>, default: Option<&str>) -> Result<(String, PathBuf), ActionError> {
    let relative = match (context.text("targetPath"), default) {
        (Some(path), _) => path.to_owned(),
        (None, Some(default)) => default.to_owned(),
        (None, None) => return Err(ActionError::Input("input targetPath is required".to_owned())),
    };
    let path = resolve_inside(context.workspace, &relative)?;
    Ok((relative, path))
}

fn url_schema(extra: Value) -> Value {
    let mut schema = json!({
        "type": "object",
        "required": ["url"],
        "properties": {
            "url": { "type": "string", "title": "Relative path or absolute URL of the skeleton" },
            "targetPath": { "type": "string", "title": "Target path within the working directory" },
            "token": { "type": "string", "title": "Token for reading the URL" }
        }
    });
    if let (Some(properties), Value::Object(extra)) = (schema["properties"].as_object_mut(), extra) {
        properties.extend(extra);
    }
    schema
}

fn template_properties() -> Value {
    json!({
        "values": { "type": "object", "title": "Values made available to the templates as values" },
        "copyWithoutRender": { "type": "array", "items": { "type": "string" }, "title": "Deprecated: globs of files copied as they are, with their path untouched too" },
        "copyWithoutTemplating": { "type": "array", "items": { "type": "string" }, "title": "Globs of files whose contents are copied as they are" },
        "cookiecutterCompat": { "type": "boolean" },
        "templateFileExtension": { "type": ["string", "boolean"] },
        "replace": { "type": "boolean" },
        "trimBlocks": { "type": "boolean" },
        "lstripBlocks": { "type": "boolean" }
    })
}

#[derive(Debug)]
pub(crate) struct Plain;

#[async_trait::async_trait]
impl Action for Plain {
    fn id(&self) -> &str {
        "fetch:plain"
    }
    fn description(&self) -> &str {
        "Copies a directory tree into the workspace as it is."
    }
    fn input_schema(&self) -> Value {
        url_schema(json!({}))
    }
    fn supports_dry_run(&self) -> bool {
        true
    }
    async fn run(&self, context: &mut ActionContext<'_>) -> Result<(), ActionError> {
        let url = context.required_text("url")?.to_owned();
        let source = local_source(context, &url)?;
        let (relative, target) = target(context, Some("./"))?;
        context.log.info(&format!("Fetching plain content from {url} into {relative}"));
        super::blocking(move || copy_tree(&source, &target).map_err(ActionError::failed)).await
    }
}

#[derive(Debug)]
pub(crate) struct PlainFile;

#[async_trait::async_trait]
impl Action for PlainFile {
    fn id(&self) -> &str {
        "fetch:plain:file"
    }
    fn description(&self) -> &str {
        "Copies one file into the workspace as it is."
    }
    fn input_schema(&self) -> Value {
        let mut schema = url_schema(json!({}));
        schema["required"] = json!(["url", "targetPath"]);
        schema
    }
    fn supports_dry_run(&self) -> bool {
        true
    }
    async fn run(&self, context: &mut ActionContext<'_>) -> Result<(), ActionError> {
        let url = context.required_text("url")?.to_owned();
        let source = local_source(context, &url)?;
        let (relative, target) = target(context, None)?;
        context.log.info(&format!("Fetching plain file from {url} into {relative}"));
        super::blocking(move || {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|error| ActionError::failed(format!("creating {relative}: {error}")))?;
            }
            std::fs::copy(&source, &target)
                .map_err(|error| ActionError::failed(format!("copying {url}: {error}")))?;
            Ok(())
        })
        .await
    }
}

#[derive(Debug)]
pub(crate) struct Template;

#[async_trait::async_trait]
impl Action for Template {
    fn id(&self) -> &str {
        "fetch:template"
    }
    fn description(&self) -> &str {
        "Copies a skeleton directory into the workspace, rendering ${{ values.x }} in file contents and paths."
    }
    fn input_schema(&self) -> Value {
        url_schema(template_properties())
    }
    fn supports_dry_run(&self) -> bool {
        true
    }
    async fn run(&self, context: &mut ActionContext<'_>) -> Result<(), ActionError> {
        let options = TemplateOptions::from_input(&context.input)
            .map_err(|error| ActionError::Input(error.to_string()))?;
        let url = context.required_text("url")?.to_owned();
        let source = local_source(context, &url)?;
        let (relative, target) = target(context, Some("./"))?;
        context.log.info(&format!("Fetching template content from {url} into {relative}"));
        let integrations = context.services.integrations.clone();
        let written = super::blocking(move || {
            template_tree(&source, &target, &options, &integrations).map_err(ActionError::failed)
        })
        .await?;
        context.log.info(&format!("Template result written to {relative} ({} entries)", written.len()));
        Ok(())
    }
}

#[derive(Debug)]
pub(crate) struct TemplateFile;

#[async_trait::async_trait]
impl Action for TemplateFile {
    fn id(&self) -> &str {
        "fetch:template:file"
    }
    fn description(&self) -> &str {
        "Copies one file into the workspace, rendering ${{ values.x }} in its contents."
    }
    fn input_schema(&self) -> Value {
        let mut schema = url_schema(template_properties());
        schema["required"] = json!(["url", "targetPath"]);
        schema
    }
    fn supports_dry_run(&self) -> bool {
        true
    }
    async fn run(&self, context: &mut ActionContext<'_>) -> Result<(), ActionError> {
        let options = TemplateOptions::from_input(&context.input)
            .map_err(|error| ActionError::Input(error.to_string()))?;
        let url = context.required_text("url")?.to_owned();
        let source = local_source(context, &url)?;
        let (relative, target) = target(context, None)?;
        context.log.info(&format!("Fetching template file from {url} into {relative}"));
        let integrations = context.services.integrations.clone();
        super::blocking(move || {
            template_file(&source, &target, &options, &integrations).map_err(ActionError::failed)
        })
        .await
    }
}
