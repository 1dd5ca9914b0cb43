//! `portico-bench scaffolder`: the software-template figures of issue 5.
//!
//! - `fetch:template` of a generated skeleton of N files, in process (the algorithm alone);
//! - against a real `portico serve` over loopback: task creation to the first event on the
//!   task's event stream, and T tasks running at once (each renders a skeleton, logs and waits),
//!   checking that every one completes and no event is lost or out of order.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::run::{find_portico, Server};

#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) portico: Option<PathBuf>,
    pub(crate) files: usize,
    pub(crate) tasks: usize,
    pub(crate) samples: usize,
}

/// A skeleton of `files` text files in 50 directories, each with a few `${{ values.x }}` tags,
/// plus a directory that a condition in its name drops.
fn write_skeleton(dir: &Path, files: usize) -> anyhow::Result<()> {
    for index in 0..files {
        let path =
            dir.join(format!("src/module-{:02}/file-{index:04}-${{{{ values.name }}}}.txt", index % 50));
        std::fs::create_dir_all(path.parent().context("a parent")?)?;
        let mut text = String::new();
        for line in 0..20 {
            writeln!(text, "line {line} of ${{{{ values.name }}}} owned by ${{{{ values.owner | upper }}}}{{% if values.flag %}} flagged{{% endif %}}")?;
        }
        std::fs::write(path, text)?;
    }
    let dropped = dir.join("{% if values.never %}never{% endif %}");
    std::fs::create_dir_all(&dropped)?;
    std::fs::write(dropped.join("x.txt"), "x")?;
    Ok(())
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn template_fetch(files: usize, out: &mut String) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let skeleton = dir.path().join("skeleton");
    write_skeleton(&skeleton, files)?;
    let options = portico_scaffolder::fetch::TemplateOptions::from_input(&json!({
        "url": "./skeleton",
        "values": { "name": "bench", "owner": "team-a", "flag": true },
    }))?;
    let mut times = Vec::new();
    for round in 0..5 {
        let target = dir.path().join(format!("out-{round}"));
        let started = Instant::now();
        let written = portico_scaffolder::fetch::template_tree(&skeleton, &target, &options, &[])?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        if written.len() != files {
            bail!("fetch:template wrote {} files, expected {files}", written.len());
        }
    }
    times.sort_by(f64::total_cmp);
    writeln!(
        out,
        "fetch:template, {files}-file skeleton (20 lines, 40 tags each): median {:.0} ms, best {:.0} ms of 5 (target: under 1000 ms)",
        percentile(&times, 0.5),
        times[0]
    )?;
    Ok(())
}

const TEMPLATES: &str = r#"apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata:
  name: quick
spec:
  type: service
  steps:
    - id: log
      action: debug:log
      input:
        message: hello ${{ parameters.n }}
---
apiVersion: scaffolder.backstage.io/v1beta3
kind: Template
metadata:
  name: busy
spec:
  type: service
  steps:
    - id: fetch
      action: fetch:template
      input:
        url: ./skeleton
        values:
          name: ${{ parameters.n }}
          owner: team-a
    - id: say
      action: debug:log
      input:
        message: rendered ${{ parameters.n }}
        listWorkspace: true
    - id: wait
      action: debug:wait
      input:
        milliseconds: 500
    - id: done
      action: debug:log
      input:
        message: done ${{ parameters.n }}
  output:
    n: ${{ parameters.n }}
"#;

/// Creates a task; evaluates to its id.
async fn create(client: &reqwest::Client, root: &str, template: &str, n: usize) -> anyhow::Result<String> {
    let response = client
        .post(format!("{root}/api/scaffolder/v2/tasks"))
        .json(&json!({ "templateRef": template, "values": { "n": n } }))
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    if status != 201 {
        bail!("creating a task: {status} {body}");
    }
    Ok(body["id"].as_str().context("task id")?.to_owned())
}

/// Reads a task's event stream; with `first_only`, returns after the first event.
async fn events(
    client: &reqwest::Client,
    root: &str,
    task: &str,
    first_only: bool,
) -> anyhow::Result<Vec<Value>> {
    let mut response =
        client.get(format!("{root}/api/scaffolder/v2/tasks/{task}/eventstream")).send().await?;
    let mut buffer = String::new();
    let mut events = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if let Some(data) = block.lines().find_map(|line| line.strip_prefix("data: ")) {
                let event: Value = serde_json::from_str(data)?;
                let done = event["type"] == "completion";
                events.push(event);
                if first_only || done {
                    return Ok(events);
                }
            }
        }
    }
    Ok(events)
}

pub(crate) async fn run(options: Options) -> anyhow::Result<String> {
    let mut out = String::new();
    template_fetch(options.files, &mut out)?;

    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("templates.yaml"), TEMPLATES)?;
    write_skeleton(&dir.path().join("skeleton"), 50)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let config = dir.path().join("app-config.yaml");
    std::fs::write(
        &config,
        format!(
            "backend:\n  listen: {{ host: 127.0.0.1, port: {port} }}\n  database:\n    client: better-sqlite3\n    connection:\n      directory: ./db\ncatalog:\n  rules:\n    - allow: [Template]\n  locations:\n    - type: file\n      target: ./templates.yaml\nscaffolder:\n  concurrentTasksLimit: {}\n",
            options.tasks.max(1)
        ),
    )?;
    let portico = find_portico(options.portico.as_deref());
    let _server = Server::start(&portico, &config, &dir.path().join("portico.log"))?;
    let root = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = client
            .get(format!("{root}/api/catalog/entities/by-name/template/default/busy"))
            .send()
            .await
            .is_ok_and(|response| response.status() == 200);
        if ready {
            break;
        }
        if Instant::now() > deadline {
            bail!("the server did not load the templates; see {}", dir.path().join("portico.log").display());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Creation to first event, one task at a time.
    let mut latencies = Vec::new();
    for n in 0..options.samples {
        let started = Instant::now();
        let task = create(&client, &root, "quick", n).await?;
        let first = events(&client, &root, &task, true).await?;
        if first.is_empty() {
            bail!("task {task} streamed no event");
        }
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    writeln!(
        out,
        "task creation to first event (POST, then the event stream), {} tasks: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms (target: under 50 ms)",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        latencies.last().copied().unwrap_or(f64::NAN)
    )?;

    // Many at once: every task completes, with every event, in order.
    let started = Instant::now();
    let mut ids = Vec::new();
    for n in 0..options.tasks {
        ids.push(create(&client, &root, "busy", n).await?);
    }
    let streams = ids.iter().map(|task| events(&client, &root, task, false));
    let results = futures::future::join_all(streams).await;
    let wall = started.elapsed();
    let mut problems = Vec::new();
    for (n, (task, result)) in ids.iter().zip(results).enumerate() {
        let events = match result {
            Ok(events) => events,
            Err(error) => {
                problems.push(format!("task {task}: {error}"));
                continue;
            }
        };
        let ordered = events.windows(2).all(|pair| pair[0]["id"].as_i64() < pair[1]["id"].as_i64());
        let completed = events.last().is_some_and(|event| {
            event["body"]["message"] == "Run completed with status: completed"
                && event["body"]["output"]["n"] == n
        });
        // Start, 4 steps x (beginning, finished), the actions' own lines, completion.
        let finished = events.iter().filter(|event| event["body"]["status"] == "completed").count();
        if !(ordered && completed && finished == 4) {
            problems.push(format!(
                "task {task}: ordered {ordered}, completed {completed}, finished steps {finished}"
            ));
        }
    }
    writeln!(
        out,
        "{} tasks at once (50-file skeleton, logs, a 0.5 s wait each): all done in {:.2} s, {} with a problem{}",
        options.tasks,
        wall.as_secs_f64(),
        problems.len(),
        if problems.is_empty() { String::new() } else { format!(": {}", problems.join("; ")) }
    )?;
    if !problems.is_empty() {
        bail!("{out}");
    }
    Ok(out)
}
