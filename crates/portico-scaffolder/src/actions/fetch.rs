//! `fetch:plain`, `fetch:plain:file`, `fetch:template` and `fetch:template:file`.
//!
//! A relative `url` resolves against the template's location (reference §5.1). Skeletons beside
//! a `file:` template are read from disk, never from elsewhere on the machine; remote ones are
//! downloaded first (`remote`): directories from configured GitHub and GitLab hosts, files from
//! those or from hosts the reading allowlist lets through.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::action::{Action, ActionContext, ActionError};
use crate::fetch::{copy_tree, template_file, template_tree, TemplateOptions};
use crate::workspace::resolve_inside;

/// A skeleton (file or directory) ready on disk; a downloaded one is removed when dropped.
struct Source {
    path: PathBuf,
    download: Option<PathBuf>,
}

impl Drop for Source {
    fn drop(&mut self) {
        if let Some(dir) = &self.download {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Where a `url` input points: a path beside a `file:` template, or an absolute `http(s)`
/// URL (the `url` itself, or resolved against a template registered from a URL).
enum Location {
    Local(PathBuf),
    Remote(url::Url),
}

fn locate(context: &ActionContext<'_>, url: &str) -> Result<Location, ActionError> {
    let base = context.template_info.base_url.as_deref();
    let parsed_base = base.and_then(|base| url::Url::parse(base).ok());
    let template_dir = parsed_base
        .as_ref()
        .filter(|base| base.scheme() == "file")
        .and_then(|base| base.to_file_path().ok())
        .and_then(|path| path.parent().map(Path::to_path_buf));
    if let Ok(absolute) = url::Url::parse(url) {
        if matches!(absolute.scheme(), "http" | "https") {
            return Ok(Location::Remote(absolute));
        }
        // A `file:` URL inside the template's directory goes through the same check as a
        // relative path (no `..`, no link out), whatever its percent-encoding hides.
        let refused = || {
            ActionError::Input(format!(
                "cannot fetch {url}: only skeletons next to the template, or http(s) URLs, can be read"
            ))
        };
        let path =
            absolute.to_file_path().ok().filter(|_| absolute.scheme() == "file").ok_or_else(refused)?;
        let dir = template_dir.as_ref().ok_or_else(refused)?;
        let relative = path.strip_prefix(dir).map_err(|_| refused())?;
        return Ok(Location::Local(resolve_inside(dir, &relative.to_string_lossy())?));
    }
    if let Some(dir) = template_dir {
        return Ok(Location::Local(resolve_inside(&dir, url)?));
    }
    match parsed_base.filter(|base| matches!(base.scheme(), "http" | "https")) {
        Some(base) => {
            // `./skeleton` beside `…/blob/main/template.yaml` is `…/blob/main/skeleton`.
            let joined = base.join(url.trim_end_matches('/')).map_err(|error| {
                ActionError::Input(format!("cannot resolve {url} against {base}: {error}"))
            })?;
            Ok(Location::Remote(joined))
        }
        None => Err(match base {
            None => {
                ActionError::Input("Failed to fetch, template location could not be determined".to_owned())
            }
            Some(base) => ActionError::Input(format!("cannot fetch {url} relative to {base}")),
        }),
    }
}

/// A fresh directory name for a download, beside the workspace (numbered, so that two
/// fetches of one step, as in `each`, never share one).
fn download_dir(context: &ActionContext<'_>) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let number = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // Step ids are free text: only their letters and digits go into the name.
    let step: String =
        context.step_id.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).take(64).collect();
    let mut name = context.workspace.as_os_str().to_owned();
    name.push(format!("_step-{step}-fetch-{number}"));
    // Left over by an interrupted run of the same task (numbers start again at a restart).
    let dir = PathBuf::from(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The skeleton directory at `url`, on disk.
async fn tree_source(context: &ActionContext<'_>, url: &str) -> Result<Source, ActionError> {
    match locate(context, url)? {
        Location::Local(path) => Ok(Source { path, download: None }),
        Location::Remote(remote) => {
            let dir = download_dir(context);
            let source = Source { path: dir.clone(), download: Some(dir.clone()) };
            let files = crate::remote::read_tree(context.services, &remote, &dir).await?;
            context.log.info(&format!("Downloaded {files} files from {remote}"));
            Ok(source)
        }
    }
}

/// The skeleton file at `url`, on disk.
async fn file_source(context: &ActionContext<'_>, url: &str) -> Result<Source, ActionError> {
    match locate(context, url)? {
        Location::Local(path) => Ok(Source { path, download: None }),
        Location::Remote(remote) => {
            let bytes = crate::remote::read_file(context.services, &remote).await?;
            let dir = download_dir(context);
            let source = Source { path: dir.join("file"), download: Some(dir.clone()) };
            std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(&source.path, bytes))
                .map_err(|error| ActionError::failed(format!("saving {remote}: {error}")))?;
            Ok(source)
        }
    }
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
        let (relative, target) = target(context, Some("./"))?;
        context.log.info(&format!("Fetching plain content from {url} into {relative}"));
        let source = tree_source(context, &url).await?;
        super::blocking(move || copy_tree(&source.path, &target).map_err(ActionError::failed)).await
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
        let (relative, target) = target(context, None)?;
        context.log.info(&format!("Fetching plain file from {url} into {relative}"));
        let source = file_source(context, &url).await?;
        super::blocking(move || {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|error| ActionError::failed(format!("creating {relative}: {error}")))?;
            }
            std::fs::copy(&source.path, &target)
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
        let (relative, target) = target(context, Some("./"))?;
        context.log.info(&format!("Fetching template content from {url} into {relative}"));
        let source = tree_source(context, &url).await?;
        let integrations = context.services.integrations.clone();
        let written = super::blocking(move || {
            template_tree(&source.path, &target, &options, &integrations).map_err(ActionError::failed)
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
        let (relative, target) = target(context, None)?;
        context.log.info(&format!("Fetching template file from {url} into {relative}"));
        let source = file_source(context, &url).await?;
        let integrations = context.services.integrations.clone();
        super::blocking(move || {
            template_file(&source.path, &target, &options, &integrations).map_err(ActionError::failed)
        })
        .await
    }
}
