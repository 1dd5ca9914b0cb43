use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use super::{Run, Runner};
use crate::action::{Actions, CatalogService, EventSink, Services};
use crate::render::Renderer;
use crate::template::{TaskUser, Template};

#[derive(Debug, Default)]
struct Catalog;

#[async_trait::async_trait]
impl CatalogService for Catalog {
    async fn register(&self, _kind: &str, target: &str, _dry_run: bool) -> Result<Vec<Value>, String> {
        Ok(vec![json!({ "kind": "Component", "metadata": { "name": target } })])
    }
    async fn entity(&self, entity_ref: &str) -> Result<Option<Value>, String> {
        Ok((entity_ref == "component:default/known")
            .then(|| json!({ "kind": "Component", "metadata": { "name": "known" } })))
    }
}

#[derive(Default)]
struct Events(Mutex<Vec<Value>>, Mutex<Vec<String>>);

impl EventSink for Events {
    fn log(&self, body: Value) {
        self.0.lock().unwrap().push(body);
    }
    fn step_finished(&self, step_id: &str, _outputs: &Value) {
        self.1.lock().unwrap().push(step_id.to_owned());
    }
}

impl Events {
    fn finished(&self) -> Vec<String> {
        self.1.lock().unwrap().clone()
    }
    fn messages(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|event| event["message"].as_str().unwrap_or("").to_owned())
            .collect()
    }
    fn statuses(&self, step: &str) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|event| event["stepId"] == step)
            .filter_map(|event| event["status"].as_str().map(str::to_owned))
            .collect()
    }
}

fn services() -> Services {
    Services {
        guard: Arc::new(crate::action::AllowAll),
        reader: Arc::new(crate::remote::NoReader),
        catalog: Arc::new(Catalog),
        integrations: Vec::new(),
        git_author: ("Scaffolder".into(), "scaffolder@backstage.io".into()),
        commit_message: "Initial commit".into(),
        max_wait: Duration::from_secs(30),
        git_hosts: Vec::new(),
        local_repositories: None,
        scm: Vec::new(),
    }
}

fn runner() -> Runner {
    Runner {
        actions: Actions::builtin(),
        renderer: Renderer::new(Vec::new()),
        environment: json!({ "parameters": { "region": "eu" } }),
    }
}

async fn run_template(
    steps: Value,
    output: Value,
    values: Value,
    secrets: &[(&str, &str)],
) -> (Result<Value, super::RunFailure>, Events) {
    let entity = json!({
        "apiVersion": "scaffolder.backstage.io/v1beta3",
        "kind": "Template",
        "metadata": { "name": "t" },
        "spec": { "type": "service", "steps": steps, "output": output },
    });
    let template = Template::from_entity(&entity).unwrap();
    let spec =
        template.task_spec(values, TaskUser { entity: None, entity_ref: Some("user:default/ada".into()) });
    let workspace = tempfile::tempdir().unwrap();
    let events = Events::default();
    let secrets: BTreeMap<String, String> =
        secrets.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let run = Run {
        task_id: "task-1",
        spec: &spec,
        secrets,
        workspace: workspace.path().to_path_buf(),
        dry_run: false,
        cancel: CancellationToken::new(),
        services: services(),
        finished: Map::new(),
    };
    let result = runner().run(run, &events).await;
    (result, events)
}

#[tokio::test]
async fn steps_run_in_order_with_if_each_and_outputs() {
    let steps = json!([
        { "id": "read", "action": "fs:read", "if": "${{ parameters.missing }}", "input": { "path": "nope" } },
        { "id": "write", "action": "catalog:write", "input": { "entity": { "kind": "Component", "metadata": { "name": "${{ parameters.name }}" } } } },
        { "id": "content", "action": "fs:read", "input": { "path": "catalog-info.yaml" } },
        { "id": "each", "action": "fs:read", "each": "${{ parameters.files }}", "input": { "path": "${{ each.value }}" } },
        { "id": "who", "action": "catalog:fetch", "input": { "entityRef": "component:known" } },
    ]);
    let output = json!({
        "text": "${{ steps.content.output.content }}",
        "count": "${{ steps.each.output.content | length }}",
        "who": "${{ steps.who.output.entity.metadata.name }} for ${{ user.ref }} in ${{ environment.parameters.region }}",
        "skipped": "${{ steps.read.output.content }}",
    });
    let values = json!({ "name": "svc", "files": ["catalog-info.yaml", "catalog-info.yaml"] });
    let (result, events) = run_template(steps, output, values, &[]).await;
    let output = result.unwrap();
    assert!(output["text"].as_str().unwrap().contains("name: svc"), "{output}");
    assert!(
        output["text"].as_str().unwrap().contains("backstage.io/source-template: \"template:default/t\""),
        "{output}"
    );
    assert_eq!(output["count"], 2);
    assert_eq!(output["who"], "known for user:default/ada in eu");
    assert!(output.get("skipped").is_none(), "a skipped step has no outputs: {output}");
    assert_eq!(events.statuses("read"), ["processing", "skipped"]);
    assert_eq!(events.statuses("each"), ["processing", "completed"]);
    assert_eq!(events.messages()[0], "Starting up task with 5 steps");
    assert!(events.messages().iter().any(|message| message.contains("Running step each")));
}

#[tokio::test]
async fn failures_name_the_step_and_secrets_never_show() {
    let steps = json!([
        { "id": "say", "action": "debug:log", "input": { "message": "token is ${{ secrets.token }}!" } },
        { "id": "bad", "action": "fs:read", "input": { "path": 3 } },
    ]);
    let (result, events) = run_template(steps, json!({}), json!({}), &[("token", "hunter2")]).await;
    let failure = result.unwrap_err();
    assert!(failure.message.starts_with("Invalid input passed to action fs:read"), "{}", failure.message);
    assert_eq!(events.statuses("bad"), ["processing", "failed"]);
    let all = events.messages().join("\n");
    assert!(!all.contains("hunter2"), "{all}");
    // A rendered input that a secret changed is redacted whole, as Backstage does.
    assert!(all.contains("info: ***"), "{all}");

    let (result, _) =
        run_template(json!([{ "id": "x", "action": "nope:nope" }]), json!({}), json!({}), &[]).await;
    assert_eq!(result.unwrap_err().message, "Template action with ID 'nope:nope' is not registered.");

    let escape = json!([{ "id": "x", "action": "fs:read", "input": { "path": "../../etc/passwd" } }]);
    let (result, _) = run_template(escape, json!({}), json!({}), &[]).await;
    assert!(result.unwrap_err().message.contains("outside its parent"));
}

#[tokio::test]
async fn cancelling_stops_a_waiting_step() {
    let entity = json!({
        "apiVersion": "scaffolder.backstage.io/v1beta3",
        "kind": "Template",
        "metadata": { "name": "t" },
        "spec": { "type": "service", "steps": [{ "id": "wait", "action": "debug:wait", "input": { "seconds": 20 } }] },
    });
    let spec = Template::from_entity(&entity).unwrap().task_spec(json!({}), TaskUser::default());
    let workspace = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    let run = Run {
        task_id: "task-2",
        spec: &spec,
        secrets: BTreeMap::new(),
        workspace: workspace.path().to_path_buf(),
        dry_run: false,
        cancel: cancel.clone(),
        services: services(),
        finished: Map::new(),
    };
    let events = Events::default();
    let canceller = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        cancel.cancel();
    };
    let runner = runner();
    let (result, ()) = tokio::join!(runner.run(run, &events), canceller);
    let failure = result.unwrap_err();
    assert!(failure.cancelled);
    assert_eq!(failure.message, "Step wait (debug:wait) of task task-2 has been cancelled.");
    assert_eq!(events.statuses("wait"), ["processing", "cancelled"]);
}

#[tokio::test]
async fn a_retry_starts_after_the_steps_that_finished() {
    let template = Template::from_entity(&json!({
        "apiVersion": "scaffolder.backstage.io/v1beta3",
        "kind": "Template",
        "metadata": { "name": "t" },
        "spec": { "type": "service", "steps": [
            { "id": "first", "action": "debug:log", "input": { "message": "first" } },
            { "id": "second", "action": "debug:log", "input": { "message": "${{ steps.first.output.said }}" } },
        ], "output": { "text": "${{ steps.first.output.said }}" } },
    }))
    .expect("template");
    let spec = template.task_spec(json!({}), TaskUser::default());
    let workspace = tempfile::tempdir().expect("workspace");
    let events = Events::default();
    let mut finished = Map::new();
    finished.insert("first".into(), json!({ "output": { "said": "earlier" } }));
    let run = Run {
        task_id: "t1",
        spec: &spec,
        secrets: BTreeMap::new(),
        workspace: workspace.path().to_owned(),
        dry_run: false,
        cancel: CancellationToken::new(),
        services: services(),
        finished,
    };
    let output = runner().run(run, &events).await.expect("run");
    assert_eq!(output, json!({ "text": "earlier" }), "the earlier output is reused");
    assert_eq!(events.statuses("first"), ["completed"]);
    assert_eq!(events.statuses("second"), ["processing", "completed"]);
    assert_eq!(events.finished(), ["second"], "only the step that ran is reported");
}
