//! The Template entity (`scaffolder.backstage.io/v1beta3`) and the task spec built from it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The only template API version Backstage's scaffolder runs.
pub const API_VERSION: &str = "scaffolder.backstage.io/v1beta3";

/// Why an entity is not a runnable template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("entity is not a template: expected kind Template with apiVersion {API_VERSION}, found kind {kind} with apiVersion {api_version}")]
    NotATemplate { kind: String, api_version: String },
    #[error("template field {field} is invalid: {reason}")]
    Invalid { field: String, reason: String },
}

/// A template as the scaffolder uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// `template:<namespace>/<name>`.
    pub entity_ref: String,
    pub title: String,
    pub description: Option<String>,
    /// `metadata['ui:options']`, passed through to the form.
    pub ui_options: Option<Value>,
    pub presentation: Option<Value>,
    pub form_decorators: Option<Value>,
    /// One JSON Schema per form page.
    pub pages: Vec<Value>,
    pub steps: Vec<Step>,
    pub output: Value,
    /// `spec.secrets.schema`, which posted secrets must satisfy.
    pub secrets_schema: Option<Value>,
    /// `EXPERIMENTAL_recovery.EXPERIMENTAL_strategy` is `startOver`.
    pub start_over: bool,
    /// Where relative `url` inputs resolve (reference §1.4).
    pub base_url: Option<String>,
    /// The entity's metadata (stored with the task as `templateInfo.entity.metadata`).
    pub metadata: Value,
}

/// One step, with `id` and `name` filled in as Backstage does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub id: String,
    pub name: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub input: Value,
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub condition: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub each: Option<Value>,
    /// Everything else the step carries (e.g. `backstage:permissions`), kept as written.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What a task runs: Backstage's TaskSpec (v1beta3), stored with the task as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// The submitted form values.
    pub parameters: Value,
    pub steps: Vec<Step>,
    #[serde(default)]
    pub output: Value,
    #[serde(rename = "templateInfo")]
    pub template_info: TemplateInfo,
    #[serde(default)]
    pub user: TaskUser,
    #[serde(rename = "EXPERIMENTAL_recovery", default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateInfo {
    #[serde(rename = "entityRef")]
    pub entity_ref: String,
    #[serde(rename = "baseUrl", default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskUser {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<Value>,
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub entity_ref: Option<String>,
}

impl TaskSpec {
    /// True when the template asks for a run interrupted by a restart to start over.
    pub fn starts_over(&self) -> bool {
        self.recovery
            .as_ref()
            .and_then(|recovery| recovery.get("EXPERIMENTAL_strategy"))
            .and_then(Value::as_str)
            == Some("startOver")
    }
}

impl Template {
    /// Reads a Template entity (the catalog's final JSON, or a dry run's posted entity).
    pub fn from_entity(entity: &Value) -> Result<Template, TemplateError> {
        let text = |pointer: &str| entity.pointer(pointer).and_then(Value::as_str).map(str::to_owned);
        let kind = text("/kind").unwrap_or_default();
        let api_version = text("/apiVersion").unwrap_or_default();
        if !kind.eq_ignore_ascii_case("template") || api_version != API_VERSION {
            return Err(TemplateError::NotATemplate { kind, api_version });
        }
        let name =
            text("/metadata/name").ok_or_else(|| invalid("metadata.name", "a template needs a name"))?;
        let namespace = text("/metadata/namespace").unwrap_or_else(|| "default".to_owned());
        let spec = entity
            .get("spec")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid("spec", "must be an object"))?;

        let pages = match spec.get("parameters") {
            None | Some(Value::Null) => Vec::new(),
            Some(page @ Value::Object(_)) => vec![page.clone()],
            Some(Value::Array(pages)) => {
                for (index, page) in pages.iter().enumerate() {
                    if !page.is_object() {
                        return Err(invalid(
                            &format!("spec.parameters[{index}]"),
                            "must be an object (a JSON Schema)",
                        ));
                    }
                }
                pages.clone()
            }
            Some(_) => return Err(invalid("spec.parameters", "must be an object or an array of objects")),
        };
        let steps = match spec.get("steps") {
            Some(Value::Array(steps)) => steps
                .iter()
                .enumerate()
                .map(|(index, step)| read_step(index, step))
                .collect::<Result<Vec<_>, _>>()?,
            None => return Err(invalid("spec.steps", "is required")),
            Some(_) => return Err(invalid("spec.steps", "must be an array")),
        };
        if spec.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(invalid("spec.type", "is required and must be a non-empty string"));
        }
        let metadata = entity.get("metadata").cloned().unwrap_or(Value::Null);
        let annotation = |key: &str| {
            metadata.pointer(&format!("/annotations/{}", key.replace('/', "~1"))).and_then(Value::as_str)
        };
        let location = annotation("backstage.io/source-location")
            .or_else(|| annotation("backstage.io/managed-by-location"));
        Ok(Template {
            entity_ref: format!("template:{}/{}", namespace.to_ascii_lowercase(), name.to_ascii_lowercase()),
            title: text("/metadata/title").unwrap_or_else(|| name.clone()),
            description: text("/metadata/description"),
            ui_options: metadata.get("ui:options").cloned(),
            presentation: spec.get("presentation").cloned(),
            form_decorators: spec
                .get("formDecorators")
                .or_else(|| spec.get("EXPERIMENTAL_formDecorators"))
                .cloned(),
            pages,
            steps,
            output: spec.get("output").cloned().unwrap_or_else(|| Value::Object(Map::new())),
            secrets_schema: spec.get("secrets").and_then(|secrets| secrets.get("schema")).cloned(),
            start_over: spec
                .get("EXPERIMENTAL_recovery")
                .and_then(|recovery| recovery.get("EXPERIMENTAL_strategy"))
                .and_then(Value::as_str)
                == Some("startOver"),
            base_url: location.and_then(base_url),
            metadata,
        })
    }

    /// The task spec for a run of this template with the given form values.
    pub fn task_spec(&self, values: Value, user: TaskUser) -> TaskSpec {
        TaskSpec {
            api_version: API_VERSION.to_owned(),
            parameters: values,
            steps: self.steps.clone(),
            output: self.output.clone(),
            template_info: TemplateInfo {
                entity_ref: self.entity_ref.clone(),
                base_url: self.base_url.clone(),
                entity: Some(serde_json::json!({ "metadata": self.metadata })),
            },
            user,
            recovery: self.start_over.then(|| serde_json::json!({ "EXPERIMENTAL_strategy": "startOver" })),
        }
    }
}

/// `<type>:<target>` of a location annotation as a base URL: `url` targets as they are, `file`
/// targets as `file://` URLs.
fn base_url(location: &str) -> Option<String> {
    let (kind, target) = location.split_once(':')?;
    match kind {
        "url" => Some(target.to_owned()),
        "file" => {
            let path = std::path::Path::new(target);
            let absolute = if path.is_absolute() {
                path.to_path_buf()
            } else {
                std::env::current_dir().ok()?.join(path)
            };
            url::Url::from_file_path(absolute).ok().map(String::from)
        }
        _ => None,
    }
}

fn read_step(index: usize, step: &Value) -> Result<Step, TemplateError> {
    let field = |name: &str| format!("spec.steps[{index}].{name}");
    let object =
        step.as_object().ok_or_else(|| invalid(&format!("spec.steps[{index}]"), "must be an object"))?;
    let action = match object.get("action") {
        Some(Value::String(action)) if !action.is_empty() => action.clone(),
        _ => return Err(invalid(&field("action"), "is required and must be a string")),
    };
    let id = match object.get("id") {
        None | Some(Value::Null) => format!("step-{}", index + 1),
        Some(Value::String(id)) => id.clone(),
        Some(_) => return Err(invalid(&field("id"), "must be a string")),
    };
    let name = match object.get("name") {
        Some(Value::String(name)) => name.clone(),
        _ => action.clone(),
    };
    let input = object.get("input").cloned().unwrap_or(Value::Null);
    if !(input.is_null() || input.is_object()) {
        return Err(invalid(&field("input"), "must be an object"));
    }
    let condition = object.get("if").cloned();
    if let Some(condition) = &condition {
        if !(condition.is_boolean() || condition.is_string()) {
            return Err(invalid(&field("if"), "must be a boolean or a string"));
        }
    }
    let mut extra = object.clone();
    for key in ["id", "name", "action", "input", "if", "each"] {
        extra.remove(key);
    }
    Ok(Step { id, name, action, input, condition, each: object.get("each").cloned(), extra })
}

fn invalid(field: &str, reason: &str) -> TemplateError {
    TemplateError::Invalid { field: field.to_owned(), reason: reason.to_owned() }
}

#[cfg(test)]
mod tests;
