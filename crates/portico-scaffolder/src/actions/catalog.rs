//! `catalog:register`, `catalog:write` and `catalog:fetch`, acting as the task's initiator.

use serde_json::{json, Value};

use crate::action::{Action, ActionContext, ActionError};
use crate::workspace::resolve_inside;

#[derive(Debug)]
pub(crate) struct Register;

#[async_trait::async_trait]
impl Action for Register {
    fn id(&self) -> &str {
        "catalog:register"
    }
    fn description(&self) -> &str {
        "Registers a catalog-info file (usually of the repository just published) in the catalog."
    }
    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "oneOf": [
                { "required": ["catalogInfoUrl"] },
                { "required": ["repoContentsUrl"] }
            ],
            "properties": {
                "catalogInfoUrl": { "type": "string", "title": "URL of the catalog-info file" },
                "repoContentsUrl": { "type": "string", "title": "URL of the repository contents (a publisher's output)" },
                "catalogInfoPath": { "type": "string", "title": "Path of the file in the repository (default /catalog-info.yaml)" },
                "optional": { "type": "boolean", "title": "Do not fail when the location is already registered" }
            }
        })
    }
    fn output_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": { "entityRef": { "type": "string" }, "catalogInfoUrl": { "type": "string" } }
        })
    }
    async fn run(&self, context: &mut ActionContext<'_>) -> Result<(), ActionError> {
        let url = match (context.text("catalogInfoUrl"), context.text("repoContentsUrl")) {
            (Some(url), _) => url.to_owned(),
            (None, Some(contents)) => {
                let path = context.text("catalogInfoPath").unwrap_or("/catalog-info.yaml");
                format!("{}/{}", contents.trim_end_matches('/'), path.trim_start_matches('/'))
            }
            (None, None) => {
                return Err(ActionError::Input("catalogInfoUrl or repoContentsUrl is required".to_owned()))
            }
        };
        let (kind, target) = match url::Url::parse(&url) {
            Ok(parsed) if parsed.scheme() == "file" => {
                let path = parsed
                    .to_file_path()
                    .map_err(|()| ActionError::Input(format!("{url} is not a file path")))?;
                ("file", path.to_string_lossy().into_owned())
            }
            Ok(_) => ("url", url.clone()),
            Err(error) => {
                return Err(ActionError::Input(format!("catalog-info URL {url} is invalid: {error}")))
            }
        };
        context.log.info(&format!("Registering {url} in the catalog"));
        let optional = context.flag("optional");
        let catalog = context.services.catalog.clone();
        if let Err(error) = catalog.register(kind, &target, false).await {
            if !optional {
                return Err(ActionError::failed(error));
            }
            context.log.info(&format!("Registration failed, and the step is optional: {error}"));
        }
        context.output("catalogInfoUrl", Value::String(url.clone()));
        match catalog.register(kind, &target, true).await {
            Ok(entities) => {
                if let Some(entity_ref) = chosen_ref(&entities) {
                    context.output("entityRef", Value::String(entity_ref));
                }
            }
            Err(error) if optional => {
                context.log.info(&format!("Reading the registered entities failed: {error}"))
            }
            Err(error) => return Err(ActionError::failed(error)),
        }
        Ok(())
    }
}

/// The entity the run created: the first Component not named `generated-…`, else the first
/// entity not so named, else the first.
fn chosen_ref(entities: &[Value]) -> Option<String> {
    let generated = |entity: &&Value| {
        entity
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .is_some_and(|name| name.starts_with("generated-"))
    };
    let component = |entity: &&Value| {
        entity.get("kind").and_then(Value::as_str).is_some_and(|kind| kind.eq_ignore_ascii_case("component"))
    };
    let chosen = entities
        .iter()
        .find(|entity| component(entity) && !generated(entity))
        .or_else(|| entities.iter().find(|entity| !generated(entity)))
        .or_else(|| entities.first())?;
    let kind = chosen.get("kind")?.as_str()?.to_ascii_lowercase();
    let namespace = chosen.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default");
    let name = chosen.pointer("/metadata/name")?.as_str()?;
    Some(format!("{kind}:{namespace}/{name}"))
}

#[derive(Debug)]
pub(crate) struct Write;

#[async_trait::async_trait]
impl Action for Write {
    fn id(&self) -> &str {
        "catalog:write"
    }
    fn description(&self) -> &str {
        "Writes an entity as a catalog-info YAML file into the workspace."
    }
    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "required": ["entity"],
            "properties": {
                "entity": { "type": "object", "title": "The entity to write" },
                "filePath": { "type": "string", "title": "Where to write it (default catalog-info.yaml)" }
            }
        })
    }
    fn supports_dry_run(&self) -> bool {
        true
    }
    async fn run(&self, context: &mut ActionContext<'_>) -> Result<(), ActionError> {
        let relative = context.text("filePath").unwrap_or("catalog-info.yaml").to_owned();
        let path = resolve_inside(context.workspace, &relative)?;
        let mut entity = context.input["entity"].clone();
        // Newer Backstage stamps the template the entity came from.
        if let Some(metadata) = entity.get_mut("metadata").and_then(Value::as_object_mut) {
            let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
            if let Some(annotations) = annotations.as_object_mut() {
                annotations.insert(
                    "backstage.io/source-template".to_owned(),
                    Value::String(context.template_info.entity_ref.clone()),
                );
            }
        }
        context.log.info(&format!("Writing {relative}"));
        let text = portico_catalog::yaml::to_text(&entity);
        super::blocking(move || {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|error| ActionError::failed(format!("creating {relative}: {error}")))?;
            }
            std::fs::write(&path, text)
                .map_err(|error| ActionError::failed(format!("writing {relative}: {error}")))
        })
        .await
    }
}

#[derive(Debug)]
pub(crate) struct Fetch;

#[async_trait::async_trait]
impl Action for Fetch {
    fn id(&self) -> &str {
        "catalog:fetch"
    }
    fn description(&self) -> &str {
        "Reads entities from the catalog by ref."
    }
    fn input_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "entityRef": { "type": "string" },
                "entityRefs": { "type": "array", "items": { "type": "string" } },
                "optional": { "type": "boolean" },
                "defaultKind": { "type": "string" },
                "defaultNamespace": { "type": "string" }
            }
        })
    }
    fn output_schema(&self) -> Value {
        json!({ "type": "object", "properties": { "entity": { "type": "object" }, "entities": { "type": "array" } } })
    }
    fn supports_dry_run(&self) -> bool {
        true
    }
    async fn run(&self, context: &mut ActionContext<'_>) -> Result<(), ActionError> {
        let optional = context.flag("optional");
        let default_kind = context.text("defaultKind").map(str::to_owned);
        let default_namespace = context.text("defaultNamespace").unwrap_or("default").to_owned();
        let full_ref = |raw: &str| -> Result<String, ActionError> {
            let defaults = portico_catalog::entity_ref::RefDefaults {
                kind: default_kind.as_deref(),
                namespace: Some(&default_namespace),
            };
            portico_catalog::entity_ref::EntityRef::parse(raw, defaults)
                .map(|parsed| parsed.canonical())
                .map_err(|error| ActionError::Input(format!("invalid entity ref {raw}: {error}")))
        };
        let catalog = context.services.catalog.clone();
        if let Some(raw) = context.text("entityRef").map(str::to_owned) {
            let entity_ref = full_ref(&raw)?;
            let entity = catalog.entity(&entity_ref).await.map_err(ActionError::failed)?;
            if entity.is_none() && !optional {
                return Err(ActionError::failed(format!("Entity {raw} not found")));
            }
            context.output("entity", entity.unwrap_or(Value::Null));
            return Ok(());
        }
        if let Some(Value::Array(raws)) = context.input.get("entityRefs").cloned() {
            let mut entities = Vec::new();
            for raw in raws.iter().filter_map(Value::as_str) {
                let entity = catalog.entity(&full_ref(raw)?).await.map_err(ActionError::failed)?;
                if entity.is_none() && !optional {
                    return Err(ActionError::failed(format!("Entity {raw} not found")));
                }
                entities.push(entity.unwrap_or(Value::Null));
            }
            context.output("entities", Value::Array(entities));
            return Ok(());
        }
        if optional {
            return Ok(());
        }
        Err(ActionError::Input("Missing entity reference or references".to_owned()))
    }
}
