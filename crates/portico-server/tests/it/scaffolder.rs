//! Software templates over the real API: the demo template end to end (skeleton, local git
//! publish, registration), SSE events, validation, cancel and retry, restarts mid-run, dry runs,
//! and publishing to a real `git daemon` on loopback.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{free_port, Database, Server, Workspace};

/// Reads a task's event stream to its end (the completion event), as an EventSource would.
fn stream_events(server: &Server, task_id: &str) -> Vec<(String, Value)> {
    let response = server
        .client
        .get(format!("{}/api/scaffolder/v2/tasks/{task_id}/eventstream", server.base))
        .timeout(Duration::from_secs(60))
        .send()
        .expect("eventstream");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().expect("stream body");
    let mut events = Vec::new();
    for block in text.split("\n\n") {
        let mut kind = None;
        let mut data = None;
        for line in block.lines() {
            if let Some(value) = line.strip_prefix("event: ") {
                kind = Some(value.to_owned());
            } else if let Some(value) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str::<Value>(value).expect("event data is JSON"));
            }
        }
        if let (Some(kind), Some(data)) = (kind, data) {
            assert_eq!(data["type"], kind.as_str(), "the event line names the data's type");
            events.push((kind, data));
        }
    }
    events
}

fn create_task(server: &Server, template: &str, values: Value) -> String {
    let (status, body) =
        server.post("/api/scaffolder/v2/tasks", &json!({ "templateRef": template, "values": values }));
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("task id").to_owned()
}

fn wait_status(server: &Server, task_id: &str, wanted: &str) -> Value {
    server.wait_for(&format!("task {task_id} to be {wanted}"), |server| {
        let (_, task) = server.get(&format!("/api/scaffolder/v2/tasks/{task_id}"));
        (task["status"] == wanted).then_some(task)
    })
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git").args(args).current_dir(dir).output().expect("git");
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_demo_template_publishes_registers_and_streams_its_log() {
    let workspace = Workspace::new();
    let server = Server::start_demo(workspace.path());
    server.wait_entity("template", "demo-service");

    // The form's schema, as Backstage's frontend asks for it.
    let (status, schema) =
        server.get("/api/scaffolder/v2/templates/default/template/demo-service/parameter-schema");
    assert_eq!(status, 200, "{schema}");
    assert_eq!(schema["title"], "New service");
    assert_eq!(schema["steps"].as_array().map(Vec::len), Some(2));
    assert_eq!(schema["steps"][0]["schema"]["properties"]["owner"]["ui:field"], "OwnerPicker");

    // Invalid values: 400 with every problem, nothing queued.
    let (status, body) = server.post(
        "/api/scaffolder/v2/tasks",
        &json!({ "templateRef": "template:default/demo-service", "values": { "name": "Not Valid!" } }),
    );
    assert_eq!(status, 400, "{body}");
    let errors = body["errors"].to_string();
    assert!(errors.contains("owner"), "{errors}");
    assert!(errors.contains("instance.name"), "{errors}");

    let started = Instant::now();
    let task_id = create_task(
        &server,
        "demo-service",
        json!({ "name": "parcel-tracker", "description": "Tracks parcels", "owner": "group:default/platform-team" }),
    );
    let events = stream_events(&server, &task_id);
    let (kind, completion) = events.last().expect("events");
    assert_eq!(kind, "completion", "{events:?}");
    assert_eq!(completion["body"]["message"], "Run completed with status: completed", "{completion}");
    let messages: Vec<&str> =
        events.iter().filter_map(|(_, event)| event["body"]["message"].as_str()).collect();
    assert_eq!(messages[0], "Starting up task with 3 steps");
    for step in ["fetch", "publish", "register"] {
        let statuses: Vec<&str> = events
            .iter()
            .filter(|(_, event)| event["body"]["stepId"] == step)
            .filter_map(|(_, event)| event["body"]["status"].as_str())
            .collect();
        assert_eq!(statuses, ["processing", "completed"], "step {step}: {messages:?}");
    }
    let ids: Vec<i64> = events.iter().filter_map(|(_, event)| event["id"].as_i64()).collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "event ids grow: {ids:?}");

    // The output links to the repository and the new entity.
    let links = &completion["body"]["output"]["links"];
    assert_eq!(links[1]["entityRef"], "component:default/parcel-tracker", "{links}");
    let contents = links[0]["url"].as_str().expect("repository URL");
    assert!(
        contents.starts_with("file://") && contents.ends_with("/data/repos/parcel-tracker"),
        "{contents}"
    );

    // The repository holds the rendered skeleton, committed by the scaffolder.
    let repository = workspace.path().join("data/repos/parcel-tracker.git");
    let log = git(&repository, &["log", "--format=%an <%ae> %s", "main"]);
    assert_eq!(
        log.trim(),
        "Scaffolder <scaffolder@backstage.io> Create parcel-tracker from the demo-service template"
    );
    let readme = git(&repository, &["show", "main:README.md"]);
    assert!(readme.starts_with("# parcel-tracker\n\nTracks parcels"), "{readme}");
    let info = git(&repository, &["show", "main:catalog-info.yaml"]);
    assert!(info.contains("owner: group:default/platform-team"), "{info}");

    // And the new component is in the catalog, owned and stamped with its template.
    let entity = server.wait_entity("component", "parcel-tracker");
    assert_eq!(
        entity["metadata"]["annotations"]["backstage.io/source-template"],
        "template:default/demo-service"
    );
    assert_eq!(entity["spec"]["owner"], "group:default/platform-team");
    eprintln!("demo template: created to entity visible in {:?}", started.elapsed());

    // The task as the API lists it; secrets never appear.
    let (_, task) = server.get(&format!("/api/scaffolder/v2/tasks/{task_id}"));
    assert_eq!(task["status"], "completed");
    assert_eq!(task["spec"]["templateInfo"]["entityRef"], "template:default/demo-service");
    assert!(task.get("secrets").is_none());
    let (_, list) = server.get("/api/scaffolder/v2/tasks?status=completed&order=desc:created_at");
    assert_eq!(list["totalTasks"], 1);
    assert_eq!(list["tasks"][0]["id"], task_id.as_str());
    let (status, _) = server.get("/api/scaffolder/v2/tasks?order=sideways:created_at");
    assert_eq!(status, 400);

    // The long-poll form answers with the events after a given one.
    let after = ids[ids.len() - 2];
    let (_, tail) = server.get(&format!("/api/scaffolder/v2/tasks/{task_id}/events?after={after}"));
    assert_eq!(tail.as_array().map(Vec::len), Some(1));
    assert_eq!(tail[0]["type"], "completion");

    // Creating the same service again fails: the repository already has other history.
    let again = create_task(
        &server,
        "demo-service",
        json!({ "name": "parcel-tracker", "owner": "group:default/platform-team" }),
    );
    let events = stream_events(&server, &again);
    let completion = &events.last().expect("events").1;
    assert_eq!(completion["body"]["message"], "Run completed with status: failed");
    let message = completion["body"]["error"]["message"].as_str().unwrap_or("");
    assert!(message.starts_with("git push failed") && message.contains("rejected"), "{completion}");
    let failed_step =
        events.iter().rev().find(|(_, event)| event["body"]["status"] == "failed").expect("a failed step");
    assert_eq!(failed_step.1["body"]["stepId"], "publish");
}

#[test]
fn actions_are_listed_with_their_schemas() {
    let workspace = Workspace::new();
    let server = Server::start_demo(workspace.path());
    let (status, actions) = server.get("/api/scaffolder/v2/actions");
    assert_eq!(status, 200);
    let ids: Vec<&str> =
        actions.as_array().expect("list").iter().filter_map(|action| action["id"].as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "sorted by id");
    for id in [
        "catalog:fetch",
        "catalog:register",
        "catalog:write",
        "debug:log",
        "debug:wait",
        "fetch:plain",
        "fetch:plain:file",
        "fetch:template",
        "fetch:template:file",
        "fs:delete",
        "fs:read",
        "fs:rename",
        "publish:git",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let fetch = actions.as_array().unwrap().iter().find(|action| action["id"] == "fetch:template").unwrap();
    assert_eq!(fetch["schema"]["input"]["required"], json!(["url"]));
}

const WAIT_TEMPLATES: &str = r#"apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata:
  name: slow
spec:
  type: service
  steps:
    - id: hello
      action: debug:log
      input:
        message: Hello ${{ parameters.who }}
    - id: wait
      name: Wait a while
      action: debug:wait
      input:
        seconds: ${{ parameters.seconds }}
---
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata:
  name: slow-again
spec:
  type: service
  EXPERIMENTAL_recovery:
    EXPERIMENTAL_strategy: startOver
  steps:
    - id: wait
      action: debug:wait
      input:
        seconds: ${{ parameters.seconds }}
"#;

/// The wait templates on `database`. A lost worker is noticed after 1 s of silence (on SQLite
/// at once, at the next start).
fn config_with_templates(workspace: &Workspace, database: &Database, port: u16) {
    workspace.write("templates.yaml", WAIT_TEMPLATES);
    workspace.config_on(
        database,
        port,
        "catalog:\n  rules:\n    - allow: [Template, Component, Location]\n  locations:\n    - type: file\n      target: ./templates.yaml\nscaffolder:\n  taskRecovery:\n    enabled: true\n    staleTimeout: { seconds: 1 }\n",
    );
}

crate::on_both_databases! {
    tasks_can_be_cancelled_and_retried => super::tasks_can_be_cancelled_and_retried;
    a_restart_mid_run_fails_the_task_clearly_or_starts_it_over => super::a_restart_mid_run_fails_the_task_clearly_or_starts_it_over;
}

fn tasks_can_be_cancelled_and_retried(database: &Database) {
    let workspace = Workspace::new();
    let port = free_port();
    config_with_templates(&workspace, database, port);
    let server = Server::start(workspace.path(), port, &[]);
    server.wait_entity("template", "slow");

    let task_id = create_task(&server, "template:default/slow", json!({ "who": "ada", "seconds": 25 }));
    server.wait_for("the wait step to start", |server| {
        let (_, events) = server.get(&format!("/api/scaffolder/v2/tasks/{task_id}/events"));
        events.as_array()?.iter().any(|event| event["body"]["stepId"] == "wait").then_some(())
    });
    let (status, body) = server.post(&format!("/api/scaffolder/v2/tasks/{task_id}/cancel"), &json!({}));
    assert_eq!((status, body), (200, json!({ "status": "cancelled" })));
    let events = stream_events(&server, &task_id);
    let kinds: Vec<&str> = events.iter().map(|(kind, _)| kind.as_str()).collect();
    assert!(kinds.contains(&"cancelled"), "{kinds:?}");
    let cancelled = events.iter().find(|(kind, _)| kind == "cancelled").expect("a cancelled event");
    assert_eq!(cancelled.1["body"]["message"], "Step wait has been cancelled.");
    assert_eq!(events.last().expect("events").1["body"]["message"], "Run completed with status: cancelled");
    wait_status(&server, &task_id, "cancelled");

    // Retry runs it again from the step that did not finish, in the workspace it left; the
    // events that ended it are gone.
    let (_, task) = server.get(&format!("/api/scaffolder/v2/tasks/{task_id}"));
    assert_eq!(task["state"]["steps"]["hello"], json!({ "output": {} }), "{task}");
    let (status, body) = server.post(&format!("/api/scaffolder/v2/tasks/{task_id}/retry"), &json!({}));
    assert_eq!((status, body), (201, json!({ "id": task_id })));
    let events = server.wait_for("the retried run to reach the wait step again", |server| {
        let (_, events) = server.get(&format!("/api/scaffolder/v2/tasks/{task_id}/events"));
        let messages: Vec<String> = events
            .as_array()?
            .iter()
            .filter_map(|event| event["body"]["message"].as_str().map(str::to_owned))
            .collect();
        let waits = messages.iter().filter(|message| *message == "Beginning step Wait a while").count();
        (waits == 2).then_some(messages)
    });
    assert_eq!(
        events.iter().filter(|message| *message == "Beginning step debug:log").count(),
        1,
        "{events:?}"
    );
    assert!(events.contains(&"Step debug:log finished in an earlier run; its output is reused".to_owned()));
    let (_, task) = server.get(&format!("/api/scaffolder/v2/tasks/{task_id}"));
    assert_eq!(task["status"], "processing");
    server.post(&format!("/api/scaffolder/v2/tasks/{task_id}/cancel"), &json!({}));
    wait_status(&server, &task_id, "cancelled");
    // A task that did not end badly cannot be retried; an unknown one is not found.
    let finished = create_task(&server, "template:default/slow", json!({ "who": "bo", "seconds": 0 }));
    wait_status(&server, &finished, "completed");
    let (status, _) = server.post(&format!("/api/scaffolder/v2/tasks/{finished}/retry"), &json!({}));
    assert_eq!(status, 409);
    let (status, body) = server.get("/api/scaffolder/v2/tasks/no-such-task");
    assert_eq!(status, 404);
    assert_eq!(body["error"]["name"], "NotFoundError");
}

fn a_restart_mid_run_fails_the_task_clearly_or_starts_it_over(database: &Database) {
    let workspace = Workspace::new();
    let port = free_port();
    config_with_templates(&workspace, database, port);
    let mut server = Server::start(workspace.path(), port, &[]);
    server.wait_entity("template", "slow-again");
    let failing = create_task(&server, "template:default/slow", json!({ "who": "ada", "seconds": 25 }));
    let recovering = create_task(&server, "template:default/slow-again", json!({ "seconds": 25 }));
    // Killed while each task is in its waiting step.
    for task in [&failing, &recovering] {
        server.wait_for("the wait step to start", |server| {
            let (_, events) = server.get(&format!("/api/scaffolder/v2/tasks/{task}/events"));
            let waiting = events
                .as_array()?
                .iter()
                .any(|event| event["body"]["stepId"] == "wait" && event["body"]["status"] == "processing");
            waiting.then_some(())
        });
    }
    server.kill();

    let server = Server::start(workspace.path(), port, &[]);
    // A template without a recovery strategy: failed, with a completion event saying why.
    let events = stream_events(&server, &failing);
    let completion = &events.last().expect("events").1;
    assert_eq!(completion["body"]["message"], "Run completed with status: failed");
    assert!(
        completion["body"]["error"]["message"].as_str().unwrap_or("").contains("lost connection"),
        "{completion}"
    );
    wait_status(&server, &failing, "failed");
    // `startOver`: back in the queue with a `recovered` event, and running again.
    server.wait_for("the recovered task to run again", |server| {
        let (_, events) = server.get(&format!("/api/scaffolder/v2/tasks/{recovering}/events"));
        let events = events.as_array()?.clone();
        // A `recovered` event, then the steps begin again.
        let recovered = events.iter().position(|event| event["type"] == "recovered")?;
        let restarted =
            events[recovered..].iter().any(|event| event["body"]["message"] == "Beginning step debug:wait");
        restarted.then_some(())
    });
}

#[test]
fn a_dry_run_returns_the_log_and_the_files_it_would_produce() {
    use base64::Engine as _;
    let workspace = Workspace::new();
    let server = Server::start_demo(workspace.path());
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let template = json!({
        "apiVersion": "scaffolder.backstage.io/v1beta3",
        "kind": "Template",
        "metadata": { "name": "draft" },
        "spec": {
            "type": "service",
            "parameters": { "required": ["name"], "properties": { "name": { "type": "string" } } },
            "steps": [
                { "id": "fetch", "action": "fetch:template", "input": { "url": "./skeleton", "values": { "name": "${{ parameters.name }}" } } },
                { "id": "publish", "action": "publish:git", "input": { "remoteUrl": "git://example.com/x.git" } },
                { "id": "log", "action": "debug:log", "input": { "message": "remote ${{ steps.publish.output.remoteUrl }}" } },
            ],
            "output": { "text": [{ "title": "Done", "content": "made ${{ parameters.name }}" }] },
        },
    });
    let body = json!({
        "template": template,
        "values": { "name": "draft-svc" },
        "directoryContents": [
            { "path": "template.yaml", "base64Content": encode("unused") },
            { "path": "skeleton/README.md", "base64Content": encode("# ${{ values.name }}\n") },
            { "path": "skeleton/{% if values.name == 'nope' %}gone{% endif %}/x.txt", "base64Content": encode("x") },
        ],
    });
    let (status, result) = server.post("/api/scaffolder/v2/dry-run", &body);
    assert_eq!(status, 200, "{result}");
    let files = result["directoryContents"].as_array().expect("files");
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0]["path"], "README.md");
    assert_eq!(files[0]["base64Content"], encode("# draft-svc\n"));
    assert_eq!(result["output"]["text"][0]["content"], "made draft-svc");
    let log = result["log"].to_string();
    assert!(log.contains("Skipping because publish:git does not support dry-run"), "{log}");
    assert!(log.contains("remote dry-run-remoteUrl"), "{log}");

    let (status, body) =
        server.post("/api/scaffolder/v2/dry-run", &json!({ "template": { "kind": "Component" } }));
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or("").starts_with("Input template is not a template"));
}

/// `git daemon` serving a directory of bare repositories on a loopback port, push enabled.
struct GitDaemon {
    child: Child,
    port: u16,
}

impl GitDaemon {
    fn start(root: &Path) -> GitDaemon {
        let port = free_port();
        let child = Command::new("git")
            .args(["daemon", "--reuseaddr", "--export-all", "--enable=receive-pack", "--listen=127.0.0.1"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", root.display()))
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        GitDaemon { child, port }
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn publish_git_pushes_to_a_real_git_server_and_refuses_unlisted_remotes() {
    let workspace = Workspace::new();
    let served = workspace.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    git(&served, &["init", "--bare", "--quiet", "library.git"]);
    let daemon = GitDaemon::start(&served);
    workspace.write(
        "publish.yaml",
        r#"apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata:
  name: publish
spec:
  type: library
  steps:
    - id: write
      action: catalog:write
      input:
        entity:
          apiVersion: backstage.io/v1alpha1
          kind: Component
          metadata:
            name: ${{ parameters.name }}
          spec: { type: library, lifecycle: experimental, owner: team-a }
    - id: publish
      action: publish:git
      input:
        remoteUrl: ${{ parameters.remote }}
        gitAuthorName: Ada
        gitAuthorEmail: ada@example.com
  output:
    commit: ${{ steps.publish.output.commitHash }}
"#,
    );
    let port = free_port();
    workspace.config(
        port,
        &format!(
            "catalog:\n  rules:\n    - allow: [Template]\n  locations:\n    - type: file\n      target: ./publish.yaml\nscaffolder:\n  publish:\n    git:\n      allowedHosts: [\"127.0.0.1:{}\"]\n",
            daemon.port
        ),
    );
    let server = Server::start(workspace.path(), port, &[]);
    server.wait_entity("template", "publish");

    let remote = format!("git://127.0.0.1:{}/library.git", daemon.port);
    let task = create_task(&server, "publish", json!({ "name": "library", "remote": remote }));
    let events = stream_events(&server, &task);
    let completion = &events.last().expect("events").1;
    assert_eq!(completion["body"]["message"], "Run completed with status: completed", "{events:?}");
    let commit = completion["body"]["output"]["commit"].as_str().expect("commit hash").to_owned();
    let repository = served.join("library.git");
    assert_eq!(git(&repository, &["rev-parse", "master"]).trim(), commit);
    assert_eq!(git(&repository, &["log", "--format=%an <%ae>", "master"]).trim(), "Ada <ada@example.com>");
    let info = git(&repository, &["show", "master:catalog-info.yaml"]);
    assert!(info.contains("name: library"), "{info}");
    assert!(info.contains("backstage.io/source-template: \"template:default/publish\""), "{info}");

    // Hosts that are not allowed, and local paths without a configured directory, are refused.
    for remote in ["git://example.com/x.git".to_owned(), format!("file://{}", repository.display())] {
        let task = create_task(&server, "publish", json!({ "name": "x", "remote": remote }));
        let events = stream_events(&server, &task);
        let completion = &events.last().expect("events").1;
        let message = completion["body"]["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains("is not allowed"), "{remote}: {message}");
    }
}

/// One recorded exchange with an SCM host's REST API: the request Portico must send (method,
/// path, and fields its JSON body must have) and the answer the host gave.
struct Exchange {
    method: &'static str,
    path: &'static str,
    request: Value,
    status: u16,
    response: String,
}

/// Plays back recorded exchanges (GitHub and GitLab cannot be reached from here): each request
/// must come in the recorded order, carry the token and the recorded body fields; anything else
/// is answered 404 and fails the test through the task.
struct ApiStandIn {
    port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<(String, String, Value)>>>,
}

impl ApiStandIn {
    fn start(token: &'static str, exchanges: Vec<Exchange>) -> ApiStandIn {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        ApiStandIn::serve(listener, token, exchanges, None)
    }

    /// Serves on `listener` (bound by the caller, who may need its port for the exchanges).
    /// Also answers `GET /acme/<repo>/blob/<branch>/<file>` (the web URL of a pushed file) from
    /// the bare repository `<repo>.git` under `repositories`, as the host's web server would.
    fn serve(
        listener: std::net::TcpListener,
        token: &'static str,
        exchanges: Vec<Exchange>,
        repositories: Option<std::path::PathBuf>,
    ) -> ApiStandIn {
        use std::io::Write;
        let port = listener.local_addr().expect("addr").port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            let mut next = exchanges.into_iter();
            for mut stream in listener.incoming().flatten() {
                let (head, body) = crate::support::read_http_request(&mut stream).unwrap_or_default();
                let mut words = head.split_whitespace();
                let method = words.next().unwrap_or("").to_owned();
                let path = words.next().unwrap_or("").to_owned();
                let parts: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
                if let (Some(root), ["acme", repo, "blob", branch, file]) = (&repositories, parts.as_slice())
                {
                    let shown = Command::new("git")
                        .arg(format!("--git-dir={}", root.join(format!("{repo}.git")).display()))
                        .args(["show", &format!("{branch}:{file}")])
                        .output();
                    let (status, text) = match shown {
                        Ok(output) if output.status.success() => {
                            (200, String::from_utf8_lossy(&output.stdout).into_owned())
                        }
                        _ => (404, String::new()),
                    };
                    let response = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                        text.len()
                    );
                    let _ = stream.write_all(response.as_bytes());
                    continue;
                }
                let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let authorized =
                    head.to_ascii_lowercase().contains(&format!("authorization: bearer {token}"));
                record.lock().expect("lock").push((method.clone(), path.clone(), body.clone()));
                let answer = match next.next() {
                    Some(exchange)
                        if authorized
                            && exchange.method == method
                            && exchange.path == path
                            && contains(&body, &exchange.request) =>
                    {
                        (exchange.status, exchange.response)
                    }
                    _ => (404, r#"{"message":"Not Found"}"#.to_owned()),
                };
                let response = format!(
                    "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                    answer.0,
                    answer.1.len(),
                    answer.1
                );
                let _ = stream.write_all(response.as_bytes());
            }
        });
        ApiStandIn { port, seen }
    }

    fn requests(&self) -> Vec<(String, String)> {
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .map(|(method, path, _)| (method.clone(), path.clone()))
            .collect()
    }
}

/// Whether `actual` has every field of `expected` with the same value (recursively for objects).
fn contains(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(actual), Value::Object(expected)) => {
            expected.iter().all(|(key, value)| actual.get(key).is_some_and(|found| contains(found, value)))
        }
        (actual, expected) => actual == expected,
    }
}

#[test]
fn publish_github_and_gitlab_follow_their_recorded_api_exchanges() {
    let workspace = Workspace::new();
    let served = workspace.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    git(&served, &["init", "--bare", "--quiet", "gh.git"]);
    git(&served, &["init", "--bare", "--quiet", "gl.git"]);
    let daemon = GitDaemon::start(&served);
    let github = ApiStandIn::start(
        "ghp_recorded",
        vec![
            Exchange {
                method: "GET",
                path: "/api/v3/users/acme",
                request: Value::Null,
                status: 200,
                response: r#"{"login":"acme","id":1,"type":"Organization"}"#.into(),
            },
            Exchange {
                method: "POST",
                path: "/api/v3/orgs/acme/repos",
                request: json!({ "name": "library", "private": true, "visibility": "private", "description": "A library", "allow_squash_merge": true }),
                status: 201,
                response: json!({
                    "id": 99, "name": "library", "full_name": "acme/library",
                    "html_url": "https://github.example/acme/library",
                    "clone_url": format!("git://127.0.0.1:{}/gh.git", daemon.port),
                })
                .to_string(),
            },
            Exchange {
                method: "PUT",
                path: "/api/v3/repos/acme/library/topics",
                request: json!({ "names": ["rust", "library"] }),
                status: 200,
                response: r#"{"names":["rust","library"]}"#.into(),
            },
            Exchange {
                method: "PUT",
                path: "/api/v3/repos/acme/library/branches/main/protection",
                request: json!({ "enforce_admins": true, "required_pull_request_reviews": { "required_approving_review_count": 1 } }),
                status: 200,
                response:
                    r#"{"url":"https://github.example/api/v3/repos/acme/library/branches/main/protection"}"#
                        .into(),
            },
        ],
    );
    let gitlab = ApiStandIn::start(
        "glpat_recorded",
        vec![
            Exchange {
                method: "GET",
                path: "/api/v4/namespaces/acme",
                request: Value::Null,
                status: 200,
                response: r#"{"id":42,"name":"acme","path":"acme","kind":"group","full_path":"acme"}"#.into(),
            },
            Exchange {
                method: "POST",
                path: "/api/v4/projects",
                request: json!({ "name": "library", "path": "library", "namespace_id": 42, "visibility": "private" }),
                status: 201,
                response: json!({
                    "id": 7, "path_with_namespace": "acme/library",
                    "web_url": "https://gitlab.example/acme/library",
                    "http_url_to_repo": format!("git://127.0.0.1:{}/gl.git", daemon.port),
                })
                .to_string(),
            },
        ],
    );
    workspace.write(
        "publish.yaml",
        r#"apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata:
  name: hosted
spec:
  type: library
  steps:
    - id: write
      action: catalog:write
      input:
        entity:
          apiVersion: backstage.io/v1alpha1
          kind: Component
          metadata: { name: library }
          spec: { type: library, lifecycle: experimental, owner: team-a }
    - id: publish
      if: ${{ parameters.host == 'github.example' }}
      action: publish:github
      input:
        repoUrl: github.example?owner=acme&repo=library
        description: A library
        defaultBranch: main
        topics: [rust, library]
    - id: publish-gitlab
      if: ${{ parameters.host == 'gitlab.example' }}
      action: publish:gitlab
      input:
        repoUrl: gitlab.example?owner=acme&repo=library
        defaultBranch: main
  output:
    remoteUrl: ${{ steps.publish.output.remoteUrl or steps['publish-gitlab'].output.remoteUrl }}
    repoContentsUrl: ${{ steps.publish.output.repoContentsUrl or steps['publish-gitlab'].output.repoContentsUrl }}
    commit: ${{ steps.publish.output.commitHash or steps['publish-gitlab'].output.commitHash }}
"#,
    );
    let port = free_port();
    workspace.config(
        port,
        &format!(
            "integrations:\n  github:\n    - host: github.example\n      apiBaseUrl: http://127.0.0.1:{}/api/v3\n      token: ghp_recorded\n  gitlab:\n    - host: gitlab.example\n      apiBaseUrl: http://127.0.0.1:{}/api/v4\n      token: glpat_recorded\ncatalog:\n  rules:\n    - allow: [Template]\n  locations:\n    - type: file\n      target: ./publish.yaml\n",
            github.port, gitlab.port
        ),
    );
    let server = Server::start(workspace.path(), port, &[]);
    server.wait_entity("template", "hosted");

    for (host, repository, contents) in [
        ("github.example", "gh.git", "https://github.example/acme/library/blob/main"),
        ("gitlab.example", "gl.git", "https://gitlab.example/acme/library/-/blob/main"),
    ] {
        let task = create_task(&server, "hosted", json!({ "host": host }));
        let events = stream_events(&server, &task);
        let completion = &events.last().expect("events").1;
        assert_eq!(
            completion["body"]["message"], "Run completed with status: completed",
            "{host}: {events:?}"
        );
        let output = &completion["body"]["output"];
        assert_eq!(output["repoContentsUrl"], contents, "{output}");
        assert_eq!(output["remoteUrl"], format!("git://127.0.0.1:{}/{repository}", daemon.port));
        let pushed = served.join(repository);
        assert_eq!(git(&pushed, &["rev-parse", "main"]).trim(), output["commit"].as_str().unwrap());
        assert!(git(&pushed, &["show", "main:catalog-info.yaml"]).contains("name: library"));
    }
    let expected = |pairs: &[(&str, &str)]| {
        pairs.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect::<Vec<_>>()
    };
    assert_eq!(
        github.requests(),
        expected(&[
            ("GET", "/api/v3/users/acme"),
            ("POST", "/api/v3/orgs/acme/repos"),
            ("PUT", "/api/v3/repos/acme/library/topics"),
            ("PUT", "/api/v3/repos/acme/library/branches/main/protection"),
        ])
    );
    assert_eq!(
        gitlab.requests(),
        expected(&[("GET", "/api/v4/namespaces/acme"), ("POST", "/api/v4/projects")])
    );
}

/// A template shaped like the example that a new Backstage app ships: a Node.js skeleton,
/// `publish:github` to a `RepoUrlPicker` location, and registration of the pushed
/// `catalog-info.yaml`. It runs as written; only the GitHub integration points at a stand-in
/// that replays GitHub's answers and pushes into a local `git daemon`.
const APP_TEMPLATE: &str = r#"apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata:
  name: example-nodejs-template
  title: Example Node.js Template
  description: A starter Node.js service
spec:
  owner: user:guest
  type: service
  parameters:
    - title: Fill in some steps
      required:
        - name
      properties:
        name:
          title: Name
          type: string
          description: Unique name of the component
          ui:autofocus: true
          ui:options:
            rows: 5
    - title: Choose a location
      required:
        - repoUrl
      properties:
        repoUrl:
          title: Repository Location
          type: string
          ui:field: RepoUrlPicker
          ui:options:
            allowedHosts:
              - github.com
  steps:
    - id: fetch-base
      name: Fetch Base
      action: fetch:template
      input:
        url: ./content
        values:
          name: ${{ parameters.name }}
    - id: publish
      name: Publish
      action: publish:github
      input:
        allowedHosts: ['github.com']
        description: This is ${{ parameters.name }}
        repoUrl: ${{ parameters.repoUrl }}
        defaultBranch: main
    - id: register
      name: Register
      action: catalog:register
      input:
        repoContentsUrl: ${{ steps['publish'].output.repoContentsUrl }}
        catalogInfoPath: '/catalog-info.yaml'
  output:
    links:
      - title: Repository
        url: ${{ steps['publish'].output.remoteUrl }}
      - title: Open in catalog
        icon: catalog
        entityRef: ${{ steps['register'].output.entityRef }}
"#;

#[test]
fn a_backstage_app_style_template_runs_as_written() {
    let workspace = Workspace::new();
    let served = workspace.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    git(&served, &["init", "--bare", "--quiet", "starter.git"]);
    let daemon = GitDaemon::start(&served);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let web_port = listener.local_addr().expect("addr").port();
    let github = ApiStandIn::serve(
        listener,
        "ghp_app",
        vec![
            Exchange {
                method: "GET",
                path: "/api/v3/users/acme",
                request: Value::Null,
                status: 200,
                response: r#"{"login":"acme","type":"User"}"#.into(),
            },
            Exchange {
                method: "POST",
                path: "/api/v3/user/repos",
                request: json!({ "name": "starter", "private": true, "description": "This is starter" }),
                status: 201,
                response: json!({
                    "html_url": format!("http://127.0.0.1:{web_port}/acme/starter"),
                    "clone_url": format!("git://127.0.0.1:{}/starter.git", daemon.port),
                })
                .to_string(),
            },
            Exchange {
                method: "PUT",
                path: "/api/v3/repos/acme/starter/branches/main/protection",
                request: json!({ "enforce_admins": true }),
                status: 200,
                response: "{}".into(),
            },
        ],
        Some(served.clone()),
    );
    workspace.write("templates/app/template.yaml", APP_TEMPLATE);
    workspace.write(
        "templates/app/content/catalog-info.yaml",
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: ${{ values.name | dump }}\nspec:\n  type: service\n  owner: user:guest\n  lifecycle: experimental\n",
    );
    workspace.write("templates/app/content/index.js", "console.log('Hello from ${{ values.name }}!');\n");
    workspace.write(
        "templates/app/content/package.json",
        "{\n  \"name\": \"${{ values.name }}\",\n  \"private\": true\n}\n",
    );
    let port = free_port();
    workspace.config(
        port,
        &format!(
            "  reading:\n    allow:\n      - host: 127.0.0.1:{web_port}\nintegrations:\n  github:\n    - host: github.com\n      apiBaseUrl: http://127.0.0.1:{}/api/v3\n      token: ghp_app\ncatalog:\n  rules:\n    - allow: [Template, Component, Location]\n  locations:\n    - type: file\n      target: ./templates/app/template.yaml\n",
            github.port
        ),
    );
    let server = Server::start(workspace.path(), port, &[]);
    server.wait_entity("template", "example-nodejs-template");
    let task = create_task(
        &server,
        "example-nodejs-template",
        json!({ "name": "starter", "repoUrl": "github.com?owner=acme&repo=starter" }),
    );
    let events = stream_events(&server, &task);
    let completion = &events.last().expect("events").1;
    assert_eq!(completion["body"]["message"], "Run completed with status: completed", "{events:?}");
    let links = &completion["body"]["output"]["links"];
    assert_eq!(links[1]["entityRef"], "component:default/starter", "{links}");
    let repository = served.join("starter.git");
    assert!(git(&repository, &["show", "main:package.json"]).contains("\"name\": \"starter\""));
    let entity = server.wait_entity("component", "starter");
    assert_eq!(entity["spec"]["owner"], "user:guest");
    assert_eq!(
        github.requests(),
        [
            ("GET".to_owned(), "/api/v3/users/acme".to_owned()),
            ("POST".to_owned(), "/api/v3/user/repos".to_owned()),
            ("PUT".to_owned(), "/api/v3/repos/acme/starter/branches/main/protection".to_owned()),
        ]
    );
}

/// Serves skeletons as GitHub's and GitLab's APIs do (archives of a ref, raw files), with the
/// token, and one plain file; records every path asked for.
fn skeleton_host(
    listener: std::net::TcpListener,
    root: std::path::PathBuf,
) -> std::sync::Arc<std::sync::Mutex<Vec<String>>> {
    use std::io::Write;
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = asked.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let (head, _) = crate::support::read_http_request(&mut stream).unwrap_or_default();
            let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
            record.lock().expect("lock").push(path.clone());
            let has =
                |token: &str| head.to_ascii_lowercase().contains(&format!("authorization: bearer {token}"));
            let file = match path.as_str() {
                "/api/v3/repos/acme/skeletons/tarball/main" if has("ghp_recorded") => Some("github.tar.gz"),
                "/api/v3/repos/acme/skeletons/contents/docs/NOTES.md?ref=main" if has("ghp_recorded") => {
                    Some("NOTES.md")
                }
                "/api/v4/projects/acme%2Fskeletons/repository/archive.tar.gz?sha=main&path=service"
                    if has("glpat_recorded") =>
                {
                    Some("gitlab.tar.gz")
                }
                "/plain/LICENSE" => Some("LICENSE"),
                _ => None,
            };
            let (status, body) = match file.and_then(|file| std::fs::read(root.join(file)).ok()) {
                Some(body) => (200, body),
                None => (404, b"not found".to_vec()),
            };
            let head =
                format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    asked
}

#[test]
fn skeletons_are_fetched_from_github_gitlab_and_allowed_hosts() {
    let workspace = Workspace::new();
    // The repository's archives as the hosts would serve them: one top directory each.
    let served = workspace.path().join("served");
    for (top, archive) in
        [("acme-skeletons-0a1b2c3", "github.tar.gz"), ("skeletons-main-0a1b2c3", "gitlab.tar.gz")]
    {
        let service = served.join(top).join("service");
        std::fs::create_dir_all(service.join("src")).unwrap();
        std::fs::write(service.join("README.md"), "# ${{ values.name }}\n").unwrap();
        std::fs::write(service.join("src/main.py"), "print('${{ values.name }}')\n").unwrap();
        std::fs::write(served.join(top).join("OTHER.md"), "not part of the skeleton").unwrap();
        let status =
            Command::new("tar").arg("czf").arg(served.join(archive)).arg("-C").arg(&served).arg(top).status();
        assert!(status.is_ok_and(|status| status.success()), "tar");
    }
    std::fs::write(served.join("NOTES.md"), "notes for ${{ values.name }}\n").unwrap();
    std::fs::write(served.join("LICENSE"), "MIT\n").unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let host = listener.local_addr().expect("addr").port();
    let asked = skeleton_host(listener, served);
    workspace.write(
        "remote.yaml",
        &r#"apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata:
  name: remote
spec:
  type: service
  parameters:
    properties:
      name: { type: string }
  steps:
    - id: github
      action: fetch:template
      input:
        url: https://github.example/acme/skeletons/tree/main/service
        targetPath: from-github
        values: { name: "${{ parameters.name }}" }
    - id: gitlab
      action: fetch:plain
      input:
        url: https://gitlab.example/acme/skeletons/-/tree/main/service
        targetPath: from-gitlab
    - id: notes
      action: fetch:template:file
      input:
        url: https://github.example/acme/skeletons/blob/main/docs/NOTES.md
        targetPath: NOTES.md
        values: { name: "${{ parameters.name }}" }
    - id: license
      action: fetch:plain:file
      input:
        url: http://127.0.0.1:HOST/plain/LICENSE
        targetPath: LICENSE
    - id: elsewhere
      if: ${{ parameters.name == 'sneaky' }}
      action: fetch:plain:file
      input:
        url: http://127.0.0.2:HOST/plain/LICENSE
        targetPath: STOLEN
"#
        .replace("HOST", &host.to_string()),
    );
    let port = free_port();
    workspace.config(
        port,
        &format!(
            "  reading:\n    allow:\n      - host: 127.0.0.1:{host}\nintegrations:\n  github:\n    - host: github.example\n      apiBaseUrl: http://127.0.0.1:{host}/api/v3\n      token: ghp_recorded\n  gitlab:\n    - host: gitlab.example\n      apiBaseUrl: http://127.0.0.1:{host}/api/v4\n      token: glpat_recorded\ncatalog:\n  rules:\n    - allow: [Template]\n  locations:\n    - type: file\n      target: ./remote.yaml\n"
        ),
    );
    let server = Server::start(workspace.path(), port, &[]);
    server.wait_entity("template", "remote");
    let (_, entity) = server.get("/api/catalog/entities/by-name/template/default/remote");

    let (status, result) = server.post(
        "/api/scaffolder/v2/dry-run",
        &json!({ "template": entity, "values": { "name": "far-away" }, "directoryContents": [] }),
    );
    assert_eq!(status, 200, "{result}");
    use base64::Engine as _;
    let files: std::collections::BTreeMap<String, String> = result["directoryContents"]
        .as_array()
        .expect("files")
        .iter()
        .map(|file| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(file["base64Content"].as_str().unwrap_or(""))
                .expect("base64");
            (file["path"].as_str().unwrap_or("").to_owned(), String::from_utf8_lossy(&bytes).into_owned())
        })
        .collect();
    let expected: std::collections::BTreeMap<String, String> = [
        ("LICENSE", "MIT\n"),
        ("NOTES.md", "notes for far-away\n"),
        ("from-github/README.md", "# far-away\n"),
        ("from-github/src/main.py", "print('far-away')\n"),
        ("from-gitlab/README.md", "# ${{ values.name }}\n"),
        ("from-gitlab/src/main.py", "print('${{ values.name }}')\n"),
    ]
    .into_iter()
    .map(|(path, text)| (path.to_owned(), text.to_owned()))
    .collect();
    assert_eq!(files, expected, "{}", result["log"]);

    // A host outside the reading allowlist is refused, and nothing is asked of it.
    let (status, result) = server.post(
        "/api/scaffolder/v2/dry-run",
        &json!({ "template": entity, "values": { "name": "sneaky" }, "directoryContents": [] }),
    );
    assert_eq!(status, 200, "{result}");
    let error = result["output"]["error"]["message"].as_str().unwrap_or("");
    assert!(error.contains("Reading from http://127.0.0.2") && error.contains("not allowed"), "{result}");
    assert!(!asked.lock().expect("lock").iter().any(|path| path.contains("STOLEN")));
}
