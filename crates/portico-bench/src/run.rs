//! `portico-bench run`: generates a catalog, starts the real `portico serve` on it and measures
//! it over loopback HTTP. Every loop is bounded in count and in time.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::generate::{self, Generated};
use crate::report::{
    ms, ChangeVisibility, Check, IdleCpu, Ingest, KindCount, Latency, Memory, PageWeight, Report, Restart,
    Shutdown, Throughput,
};

const POLL: Duration = Duration::from_millis(20);
/// Upper bound on any single measurement loop.
const MAX_LOOP: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub(crate) struct RunOptions {
    pub(crate) entities: usize,
    pub(crate) seed: u64,
    pub(crate) postgres: Option<String>,
    pub(crate) portico: Option<PathBuf>,
    pub(crate) requests: usize,
    pub(crate) clients: usize,
    pub(crate) throughput_seconds: f64,
    pub(crate) idle_seconds: f64,
    pub(crate) ingest_timeout: Duration,
    pub(crate) dir: Option<PathBuf>,
    pub(crate) keep: bool,
    pub(crate) auth: bool,
}

/// The `portico serve` child process. Killed on drop if still running.
#[derive(Debug)]
pub(crate) struct Server {
    child: Child,
    started: Instant,
}

impl Server {
    pub(crate) fn start(portico: &Path, config: &Path, log: &Path) -> anyhow::Result<Server> {
        let log_file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let started = Instant::now();
        let child = Command::new(portico)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .current_dir(config.parent().unwrap_or(Path::new(".")))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", portico.display()))?;
        Ok(Server { child, started })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then wait (bounded); SIGKILL if it does not stop in time.
    fn terminate(&mut self, timeout: Duration) -> anyhow::Result<Shutdown> {
        let signalled = Instant::now();
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .context("running kill -TERM")?;
        if !status.success() {
            bail!("kill -TERM {} failed: {status}", self.pid());
        }
        while signalled.elapsed() < timeout {
            if let Some(status) = self.exited() {
                return Ok(Shutdown {
                    signal_to_exit_ms: ms(signalled.elapsed()),
                    exit_status: status.to_string(),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok(Shutdown {
            signal_to_exit_ms: ms(signalled.elapsed()),
            exit_status: format!("did not exit within {timeout:?} of SIGTERM; killed"),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// How long after finished work the "settled" memory sample is taken: the server releases
/// idle worker threads (and with them their allocator pages) one second after their last task.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// When the "after idle work" sample is taken: by then an idle server has saved its index
/// snapshot and repacked the index (seconds at 250,000 entities).
const IDLE_WORK: std::time::Duration = std::time::Duration::from_secs(15);

/// `/proc/<pid>/status` VmRSS and VmHWM.
fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|line| line.starts_with(name))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some((kb / 1024.0 * 10.0).round() / 10.0)
    };
    Some(Memory { rss_mb: field("VmRSS:")?, hwm_mb: field("VmHWM:")? })
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of the process (all threads), in seconds.
fn cpu_seconds(pid: u32, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command name: field 3 (state) is index 0, so utime (14) is 11, stime (15) is 12.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub(crate) fn find_portico(explicit: Option<&Path>) -> PathBuf {
    if let Some(path) = explicit {
        return path.to_path_buf();
    }
    if let Some(sibling) =
        std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join("portico")))
    {
        if sibling.is_file() {
            return sibling;
        }
    }
    PathBuf::from("portico")
}

/// The measured queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Query {
    ByName,
    ListComponents,
    Facets,
    ByRefs,
    FullText,
    StreamAll,
    UiEntity,
    UiTable,
    UiTableByOwner,
    UiGraph,
}

const QUERIES: [Query; 10] = [
    Query::ByName,
    Query::ListComponents,
    Query::Facets,
    Query::ByRefs,
    Query::FullText,
    Query::StreamAll,
    Query::UiEntity,
    Query::UiTable,
    Query::UiTableByOwner,
    Query::UiGraph,
];

impl Query {
    fn label(self) -> &'static str {
        match self {
            Query::ByName => "by-name",
            Query::ListComponents => "query-kind",
            Query::Facets => "facets",
            Query::ByRefs => "by-refs-100",
            Query::FullText => "full-text",
            Query::StreamAll => "all-components",
            Query::UiEntity => "ui-entity",
            Query::UiTable => "ui-table",
            Query::UiTableByOwner => "ui-table-owner",
            Query::UiGraph => "ui-graph",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Query::ByName => "GET /entities/by-name/component/default/<name> (names vary)",
            Query::ListComponents => "GET /entities/by-query?filter=kind=component&limit=100",
            Query::Facets => "GET /entity-facets?facet=spec.type",
            Query::ByRefs => "POST /entities/by-refs with 100 refs of mixed kinds (sets vary)",
            Query::FullText => {
                "GET /entities/by-query?fullTextFilterTerm=<word>&fullTextFilterFields=metadata.name&limit=100"
            }
            Query::StreamAll => "GET /entities?filter=kind=component (every component, streamed)",
            Query::UiEntity => "GET /catalog/default/component/<name> (the entity page, HTML; names vary)",
            Query::UiTable => "GET /catalog?kind=component (first page of the catalog table with every facet, HTML)",
            Query::UiTableByOwner => "GET /catalog?kind=component&owner=<busiest group>&sort=spec.type&dir=desc (HTML)",
            Query::UiGraph => "GET /catalog/default/component/<name>/graph?depth=2 (SVG relations graph, HTML)",
        }
    }
}

/// Shared state of the measuring client.
struct Ctx {
    client: reqwest::Client,
    /// Builds a client like `client` (same settings and headers) for another runtime.
    new_client: Box<dyn Fn() -> reqwest::Result<reqwest::Client> + Send + Sync>,
    root: String,
    api: String,
    generated: Generated,
    by_refs_bodies: Vec<String>,
}

impl Ctx {
    fn component(&self, index: usize) -> &str {
        let names = &self.generated.component_names;
        // A stride that is prime and large spreads consecutive requests over the catalog.
        &names[(index.wrapping_mul(7919)) % names.len()]
    }

    fn request(&self, client: &reqwest::Client, query: Query, index: usize) -> reqwest::RequestBuilder {
        let api = &self.api;
        match query {
            Query::ByName => {
                client.get(format!("{api}/entities/by-name/component/default/{}", self.component(index)))
            }
            Query::ListComponents => {
                client.get(format!("{api}/entities/by-query?filter=kind=component&limit=100"))
            }
            Query::Facets => client.get(format!("{api}/entity-facets?facet=spec.type")),
            Query::ByRefs => client
                .post(format!("{api}/entities/by-refs"))
                .header("content-type", "application/json")
                .body(self.by_refs_bodies[index % self.by_refs_bodies.len()].clone()),
            Query::FullText => {
                let terms = &self.generated.search_terms;
                let term = &terms[index % terms.len()];
                client.get(format!(
                    "{api}/entities/by-query?fullTextFilterTerm={term}&fullTextFilterFields=metadata.name&limit=100"
                ))
            }
            Query::StreamAll => client.get(format!("{api}/entities?filter=kind=component")),
            Query::UiEntity => {
                client.get(format!("{}/catalog/default/component/{}", self.root, self.component(index)))
            }
            Query::UiTable => client.get(format!("{}/catalog?kind=component", self.root)),
            Query::UiTableByOwner => client.get(format!(
                "{}/catalog?kind=component&owner=group%3Adefault%2F{}&sort=spec.type&dir=desc",
                self.root, self.generated.sample_group
            )),
            Query::UiGraph => client.get(format!(
                "{}/catalog/default/component/{}/graph?depth=2",
                self.root,
                self.component(index)
            )),
        }
    }

    /// Sends one request and reads the whole body; returns the body size.
    async fn execute(&self, client: &reqwest::Client, query: Query, index: usize) -> anyhow::Result<usize> {
        let mut response = self.request(client, query, index).send().await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await?;
            bail!("{status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)]));
        }
        // Counted piece by piece: gathering a 184 MB answer into one buffer cost the client
        // more than the server spent sending it.
        let mut size = 0;
        while let Some(piece) = response.chunk().await? {
            size += piece.len();
        }
        Ok(size)
    }

    async fn get_json(&self, url: &str) -> anyhow::Result<(u16, Value)> {
        let response = self.client.get(url).send().await?;
        let status = response.status().as_u16();
        let body = response.bytes().await?;
        let value =
            if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or(Value::Null) };
        Ok((status, value))
    }

    /// `totalItems` of `GET /entities/by-query?limit=0&<filter>`.
    async fn total(&self, filter: &str) -> anyhow::Result<u64> {
        let url = if filter.is_empty() {
            format!("{}/entities/by-query?limit=0", self.api)
        } else {
            format!("{}/entities/by-query?limit=0&filter={filter}", self.api)
        };
        let (status, body) = self.get_json(&url).await?;
        if status != 200 {
            bail!("{url} -> {status}: {body}");
        }
        body.get("totalItems")
            .and_then(Value::as_u64)
            .with_context(|| format!("{url}: no totalItems in {body}"))
    }

    async fn by_name(&self, kind: &str, name: &str) -> anyhow::Result<(u16, Value)> {
        self.get_json(&format!("{}/entities/by-name/{kind}/default/{name}", self.api)).await
    }
}

fn relation_count(entity: &Value, relation: &str) -> usize {
    entity.get("relations").and_then(Value::as_array).map_or(0, |relations| {
        relations.iter().filter(|r| r.get("type").and_then(Value::as_str) == Some(relation)).count()
    })
}

/// The conditions of "relations complete"; returns what is still missing.
async fn relations_missing(ctx: &Ctx) -> Vec<String> {
    let generated = &ctx.generated;
    let mut missing = Vec::new();
    for name in
        [&generated.component_names[0], &generated.component_names[generated.component_names.len() - 1]]
    {
        match ctx.by_name("component", name).await {
            Ok((200, entity)) if relation_count(&entity, "ownedBy") == 1 => {}
            Ok((status, entity)) => missing.push(format!(
                "component {name}: status {status}, {} ownedBy relations",
                relation_count(&entity, "ownedBy")
            )),
            Err(error) => missing.push(format!("component {name}: {error:#}")),
        }
    }
    let components = generated.count("component") as u64;
    match ctx.total("kind=component,relations.ownedBy").await {
        Ok(count) if count == components => {}
        Ok(count) => missing.push(format!("{count} of {components} components have an ownedBy relation")),
        Err(error) => missing.push(format!("{error:#}")),
    }
    let apis = generated.provided_apis as u64;
    match ctx.total("kind=api,relations.apiProvidedBy").await {
        Ok(count) if count == apis => {}
        Ok(count) => missing.push(format!("{count} of {apis} APIs have an apiProvidedBy relation")),
        Err(error) => missing.push(format!("{error:#}")),
    }
    let group = &generated.sample_group;
    match ctx.by_name("group", group).await {
        Ok((200, entity)) if relation_count(&entity, "ownerOf") == generated.sample_group_owns => {}
        Ok((status, entity)) => missing.push(format!(
            "group {group}: status {status}, {} of {} ownerOf relations",
            relation_count(&entity, "ownerOf"),
            generated.sample_group_owns
        )),
        Err(error) => missing.push(format!("group {group}: {error:#}")),
    }
    missing
}

async fn wait_for_ingest(
    ctx: &Ctx,
    server: &mut Server,
    timeout: Duration,
    ticks: f64,
) -> anyhow::Result<Ingest> {
    let n = ctx.generated.entities as u64;
    let mut ingest = Ingest::default();
    let mut last_progress = Instant::now();
    let mut relations_state = Vec::new();
    loop {
        let elapsed = server.started.elapsed();
        if let Some(status) = server.exited() {
            bail!("portico exited during ingest ({status}); log tail:\n{}", log_tail(&log_path(ctx), 30));
        }
        if elapsed > timeout {
            ingest.missing = if ingest.all_entities_ms.is_none() {
                vec![format!(
                    "saw {} entities in total ({} Location entities), expected {n} + Location entities",
                    ingest.last_total_items, ingest.location_entities
                )]
            } else {
                relations_state
            };
            return Ok(ingest);
        }
        if let Ok(total) = ctx.total("").await {
            // Seen when the answer arrived: a request sent earlier may have waited for the
            // index update that made the entities visible.
            let answered = server.started.elapsed();
            ingest.first_answer_ms.get_or_insert(ms(elapsed));
            ingest.last_total_items = total;
            if total > 0 {
                ingest.first_entity_ms.get_or_insert(ms(answered));
            }
            if total >= n {
                if let Ok(locations) = ctx.total("kind=location").await {
                    ingest.location_entities = locations;
                    if total.saturating_sub(locations) == n {
                        ingest.all_entities_ms.get_or_insert(ms(answered));
                    }
                }
            }
            if ingest.all_entities_ms.is_some() {
                relations_state = relations_missing(ctx).await;
                if relations_state.is_empty() {
                    let done = server.started.elapsed();
                    ingest.relations_complete_ms = Some(ms(done));
                    ingest.complete = true;
                    ingest.entities_per_second = Some(n as f64 / done.as_secs_f64());
                    ingest.server_cpu_seconds = cpu_seconds(server.pid(), ticks);
                    return Ok(ingest);
                }
            }
        }
        if last_progress.elapsed() >= Duration::from_secs(2) {
            last_progress = Instant::now();
            let extra =
                relations_state.first().map_or(String::new(), |first| format!("; waiting for: {first}"));
            eprintln!(
                "  ingest {:>6.1} s: {} entities visible{extra}",
                elapsed.as_secs_f64(),
                ingest.last_total_items
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

fn log_path(ctx: &Ctx) -> PathBuf {
    ctx.generated.dir.join("portico.log")
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    ms(sorted[rank - 1])
}

/// Sequential requests from one client on a runtime of its own with one thread, so that a
/// sample holds the server's answer and the loopback round trip, not the hand-offs between the
/// worker threads of a multi-threaded client runtime (about 0.1 ms on 2 cores).
async fn latency(ctx: &Arc<Ctx>, query: Query, count: usize) -> Latency {
    let ctx = ctx.clone();
    let measured = tokio::task::spawn_blocking(move || -> anyhow::Result<Latency> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let client = (ctx.new_client)()?;
        Ok(runtime.block_on(latency_on(&ctx, &client, query, count)))
    })
    .await;
    match measured {
        Ok(Ok(latency)) => latency,
        Ok(Err(error)) => Latency::failed(query, format!("{error:#}")),
        Err(error) => Latency::failed(query, format!("latency thread failed: {error}")),
    }
}

impl Latency {
    fn failed(query: Query, error: String) -> Latency {
        Latency {
            query: query.label().into(),
            request: query.describe().into(),
            requests: 0,
            errors: 1,
            first_error: Some(error),
            p50_ms: 0.0,
            p90_ms: 0.0,
            p99_ms: 0.0,
            mean_ms: 0.0,
            max_ms: 0.0,
            mean_response_kb: 0.0,
        }
    }
}

async fn latency_on(ctx: &Ctx, client: &reqwest::Client, query: Query, count: usize) -> Latency {
    let warmup = (count / 10).min(20);
    for index in 0..warmup {
        let _ = ctx.execute(client, query, index + 1_000_003).await;
    }
    let mut samples = Vec::with_capacity(count);
    let mut errors = 0;
    let mut first_error = None;
    let mut bytes = 0usize;
    let started = Instant::now();
    for index in 0..count {
        if started.elapsed() > MAX_LOOP {
            break;
        }
        let sent = Instant::now();
        match ctx.execute(client, query, index).await {
            Ok(size) => {
                samples.push(sent.elapsed());
                bytes += size;
            }
            Err(error) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("{error:#}"));
            }
        }
    }
    samples.sort_unstable();
    let mean =
        if samples.is_empty() { 0.0 } else { ms(samples.iter().sum::<Duration>() / samples.len() as u32) };
    Latency {
        query: query.label().into(),
        request: query.describe().into(),
        requests: samples.len() + errors,
        errors,
        first_error,
        p50_ms: percentile(&samples, 0.50),
        p90_ms: percentile(&samples, 0.90),
        p99_ms: percentile(&samples, 0.99),
        mean_ms: mean,
        max_ms: samples.last().map_or(0.0, |max| ms(*max)),
        mean_response_kb: if samples.is_empty() { 0.0 } else { bytes as f64 / samples.len() as f64 / 1024.0 },
    }
}

async fn throughput(ctx: &Arc<Ctx>, query: Query, clients: usize, seconds: f64) -> Throughput {
    const MAX_REQUESTS: usize = 10_000_000;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let counter = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let ctx = ctx.clone();
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut errors, mut bytes, mut first_error) = (0usize, 0usize, 0usize, None);
            while Instant::now() < deadline {
                let index = counter.fetch_add(1, Ordering::Relaxed);
                if index >= MAX_REQUESTS {
                    break;
                }
                match tokio::time::timeout(MAX_LOOP, ctx.execute(&ctx.client, query, index)).await {
                    Ok(Ok(size)) => {
                        ok += 1;
                        bytes += size;
                    }
                    Ok(Err(error)) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{error:#}"));
                    }
                    Err(_) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| "timed out".to_owned());
                    }
                }
            }
            (ok, errors, bytes, first_error)
        }));
    }
    let (mut ok, mut errors, mut bytes, mut first_error) = (0, 0, 0, None);
    for task in tasks {
        match task.await {
            Ok((task_ok, task_errors, task_bytes, task_error)) => {
                ok += task_ok;
                errors += task_errors;
                bytes += task_bytes;
                if first_error.is_none() {
                    first_error = task_error;
                }
            }
            Err(error) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("client task failed: {error}"));
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    Throughput {
        query: query.label().into(),
        clients,
        seconds: (elapsed * 100.0).round() / 100.0,
        requests: ok + errors,
        errors,
        first_error,
        requests_per_second: ok as f64 / elapsed,
        megabytes_per_second: bytes as f64 / elapsed / 1_048_576.0,
    }
}

fn check(checks: &mut Vec<Check>, name: &str, ok: bool, detail: String) {
    checks.push(Check { name: name.into(), ok, detail });
}

/// Correctness of the answers the benchmark times: a fast wrong answer is no result.
async fn run_checks(ctx: &Ctx) -> Vec<Check> {
    let mut checks = Vec::new();
    let generated = &ctx.generated;
    let components = generated.count("component");
    let api = &ctx.api;

    // Entity counts per kind, through facets.
    match ctx.get_json(&format!("{api}/entity-facets?facet=kind")).await {
        Ok((200, body)) => {
            let facet = body.pointer("/facets/kind").and_then(Value::as_array).cloned().unwrap_or_default();
            let count_of = |kind: &str| {
                facet
                    .iter()
                    .find(|value| {
                        value
                            .get("value")
                            .and_then(Value::as_str)
                            .is_some_and(|v| v.eq_ignore_ascii_case(kind))
                    })
                    .and_then(|value| value.get("count").and_then(Value::as_u64))
                    .unwrap_or(0)
            };
            let wrong: Vec<String> = generated
                .kinds
                .iter()
                .filter(|(kind, count)| count_of(kind) != *count as u64)
                .map(|(kind, count)| format!("{kind}: {} (expected {count})", count_of(kind)))
                .collect();
            check(
                &mut checks,
                "entity counts per kind (facet kind)",
                wrong.is_empty(),
                if wrong.is_empty() {
                    format!("{} kinds match", generated.kinds.len())
                } else {
                    wrong.join(", ")
                },
            );
        }
        other => check(&mut checks, "entity counts per kind (facet kind)", false, format!("{other:?}")),
    }

    // by-name.
    let name = ctx.component(3);
    match ctx.by_name("component", name).await {
        Ok((200, entity)) => {
            let ok = entity.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
                && relation_count(&entity, "ownedBy") == 1
                && entity.pointer("/metadata/uid").is_some();
            check(
                &mut checks,
                "by-name",
                ok,
                format!(
                    "{name}: {} relations, uid {}",
                    relation_count(&entity, "ownedBy"),
                    entity.pointer("/metadata/uid").is_some()
                ),
            );
        }
        other => check(&mut checks, "by-name", false, format!("{name}: {other:?}")),
    }

    // by-query kind=component.
    match ctx.get_json(&format!("{api}/entities/by-query?filter=kind=component&limit=100")).await {
        Ok((200, body)) => {
            let items = body.get("items").and_then(Value::as_array).map_or(0, Vec::len);
            let total = body.get("totalItems").and_then(Value::as_u64).unwrap_or(0);
            let all_components = body.get("items").and_then(Value::as_array).is_some_and(|items| {
                items.iter().all(|item| item.get("kind").and_then(Value::as_str) == Some("Component"))
            });
            let next = body.pointer("/pageInfo/nextCursor").is_some();
            check(
                &mut checks,
                "by-query kind=component",
                items == 100.min(components) && total == components as u64 && all_components && next,
                format!("{items} items, totalItems {total} (expected {components}), nextCursor {next}"),
            );
        }
        other => check(&mut checks, "by-query kind=component", false, format!("{other:?}")),
    }

    // facets spec.type.
    match ctx.get_json(&format!("{api}/entity-facets?facet=spec.type")).await {
        Ok((200, body)) => {
            let values =
                body.pointer("/facets/spec.type").and_then(Value::as_array).cloned().unwrap_or_default();
            let component_values: Vec<&Value> = values
                .iter()
                .filter(|value| {
                    matches!(
                        value.get("value").and_then(Value::as_str),
                        Some("service" | "website" | "library")
                    )
                })
                .collect();
            let component_sum: u64 =
                component_values.iter().filter_map(|value| value.get("count").and_then(Value::as_u64)).sum();
            check(
                &mut checks,
                "facets spec.type",
                component_sum == components as u64 && component_values.len() == generated.component_types,
                format!(
                    "{} values; service+website+library = {component_sum} (expected {components})",
                    values.len()
                ),
            );
        }
        other => check(&mut checks, "facets spec.type", false, format!("{other:?}")),
    }

    // by-refs.
    let body = ctx.by_refs_bodies[0].clone();
    let expected: Vec<String> = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|value| value.get("entityRefs").cloned())
        .and_then(|refs| serde_json::from_value(refs).ok())
        .unwrap_or_default();
    match ctx
        .client
        .post(format!("{api}/entities/by-refs"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
    {
        Ok(response) => {
            let status = response.status().as_u16();
            let value: Value = response.json().await.unwrap_or(Value::Null);
            let items = value.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
            let matching = items
                .iter()
                .zip(&expected)
                .filter(|(item, wanted)| {
                    let kind = item.get("kind").and_then(Value::as_str).unwrap_or("").to_lowercase();
                    let name = item.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
                    **wanted == format!("{kind}:default/{name}")
                })
                .count();
            check(
                &mut checks,
                "by-refs 100",
                status == 200 && items.len() == expected.len() && matching == expected.len(),
                format!(
                    "status {status}, {} items, {matching} of {} match their ref in order",
                    items.len(),
                    expected.len()
                ),
            );
        }
        Err(error) => check(&mut checks, "by-refs 100", false, format!("{error:#}")),
    }

    // full text.
    let term = &generated.search_terms[0];
    match ctx
        .get_json(&format!(
            "{api}/entities/by-query?fullTextFilterTerm={term}&fullTextFilterFields=metadata.name&limit=100"
        ))
        .await
    {
        Ok((200, body)) => {
            let items = body.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
            let total = body.get("totalItems").and_then(Value::as_u64).unwrap_or(0);
            let expected = generated
                .refs
                .iter()
                .filter(|entity_ref| {
                    entity_ref.rsplit('/').next().is_some_and(|name| name.contains(term.as_str()))
                })
                .count() as u64;
            let all_match = items.iter().all(|item| {
                item.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .is_some_and(|name| name.contains(term.as_str()))
            });
            check(
                &mut checks,
                "full-text",
                all_match && total == expected && items.len() as u64 == expected.min(100),
                format!("term {term:?}: {} items, totalItems {total} (expected {expected}), all names contain it: {all_match}", items.len()),
            );
        }
        other => check(&mut checks, "full-text", false, format!("{other:?}")),
    }

    // all components.
    match ctx.get_json(&format!("{api}/entities?filter=kind=component")).await {
        Ok((200, body)) => {
            let count = body.as_array().map_or(0, Vec::len);
            check(
                &mut checks,
                "GET /entities kind=component",
                count == components,
                format!("{count} entities (expected {components})"),
            );
        }
        other => check(
            &mut checks,
            "GET /entities kind=component",
            false,
            format!("{:?}", other.map(|(status, _)| status)),
        ),
    }

    // Reverse relations on a group.
    match ctx.by_name("group", &generated.sample_group).await {
        Ok((200, entity)) => {
            let owner_of = relation_count(&entity, "ownerOf");
            check(
                &mut checks,
                "group ownerOf relations",
                owner_of == generated.sample_group_owns,
                format!("{}: {owner_of} (expected {})", generated.sample_group, generated.sample_group_owns),
            );
        }
        other => check(&mut checks, "group ownerOf relations", false, format!("{other:?}")),
    }
    checks
}

/// A guest user token, asked for until the server answers (it starts listening after its index
/// is loaded).
async fn guest_token(client: &reqwest::Client, root: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let response = client
            .get(format!("{root}/api/auth/guest/refresh"))
            .header("x-requested-with", "XMLHttpRequest")
            .send()
            .await;
        if let Ok(response) = response {
            if response.status().is_success() {
                let body: Value = response.json().await?;
                if let Some(token) = body.pointer("/backstageIdentity/token").and_then(Value::as_str) {
                    return Ok(token.to_owned());
                }
            }
        }
        if Instant::now() > deadline {
            bail!("no guest token from {root}/api/auth/guest/refresh within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Bytes a browser transfers for the first load of each main page: the compressed HTML plus
/// the stylesheet and script it links (the client asks for gzip and brotli and does not
/// decompress, so body lengths are bytes on the wire).
async fn page_weights(ctx: &Ctx) -> anyhow::Result<Vec<PageWeight>> {
    let component = ctx.component(0);
    let api = ctx
        .generated
        .refs
        .iter()
        .find_map(|entity_ref| entity_ref.strip_prefix("api:default/"))
        .unwrap_or("");
    let pages = [
        ("home", "/".to_owned()),
        ("catalog table", "/catalog?kind=component".to_owned()),
        ("entity page", format!("/catalog/default/component/{component}")),
        ("API definition", format!("/catalog/default/api/{api}/definition")),
        ("relations graph", format!("/catalog/default/component/{component}/graph?depth=2")),
        ("group page", format!("/catalog/default/group/{}", ctx.generated.sample_group)),
    ];
    let fetch = |path: String| async move {
        let response = ctx
            .client
            .get(format!("{}{path}", ctx.root))
            .header("accept-encoding", "br, gzip")
            .send()
            .await?;
        let status = response.status();
        let encoding = response
            .headers()
            .get("content-encoding")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("identity")
            .to_owned();
        let body = response.bytes().await?;
        if !status.is_success() {
            bail!("{path}: {status}");
        }
        Ok::<_, anyhow::Error>((body, encoding))
    };
    // The assets' URLs come from an uncompressed copy of the home page.
    let home = ctx.client.get(format!("{}/", ctx.root)).send().await?.text().await?;
    let assets: Vec<String> = home
        .split("/static/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|name| format!("/static/{name}"))
        .collect();
    let mut asset_bytes = 0usize;
    for asset in &assets {
        asset_bytes += fetch(asset.clone()).await?.0.len();
    }
    let mut weights = Vec::new();
    for (page, path) in pages {
        let (body, encoding) = fetch(path.clone()).await?;
        weights.push(PageWeight {
            page: page.to_owned(),
            path,
            html_bytes: body.len(),
            asset_bytes,
            encoding,
        });
    }
    Ok(weights)
}

async fn idle_cpu(server: &Server, when: &str, seconds: f64, ticks: f64) -> Option<IdleCpu> {
    let before = cpu_seconds(server.pid(), ticks)?;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let after = cpu_seconds(server.pid(), ticks)?;
    let elapsed = started.elapsed().as_secs_f64();
    let used = ((after - before) * 1000.0).round() / 1000.0;
    Some(IdleCpu {
        when: when.into(),
        seconds: (elapsed * 100.0).round() / 100.0,
        cpu_seconds: used,
        cpu_percent: (used / elapsed * 100.0 * 100.0).round() / 100.0,
    })
}

async fn change_visibility(ctx: &Ctx, problems: &mut Vec<String>) -> anyhow::Result<ChangeVisibility> {
    let generated = &ctx.generated;
    let index = generated.component_names.len() / 2;
    let name = &generated.component_names[index];
    let file = &generated.files[generated.component_files[index]];
    let marker = format!(
        "Edited by portico-bench at {}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_millis())
    );
    generate::edit_description(&generated.dir.join(file), name, &marker)?;
    let entity_ref = format!("component:default/{name}");
    let sent = Instant::now();
    let response = ctx
        .client
        .post(format!("{}/refresh", ctx.api))
        .json(&json!({ "entityRef": entity_ref }))
        .send()
        .await
        .context("POST /refresh")?;
    let refresh_status = response.status().as_u16();
    let refresh_request_ms = ms(sent.elapsed());
    if refresh_status != 200 {
        problems.push(format!(
            "POST /refresh {entity_ref} -> {refresh_status}: {}",
            response.text().await.unwrap_or_default()
        ));
    }
    let mut visible_after_ms = None;
    while sent.elapsed() < MAX_LOOP {
        if let Ok((200, entity)) = ctx.by_name("component", name).await {
            if entity.pointer("/metadata/description").and_then(Value::as_str) == Some(marker.as_str()) {
                visible_after_ms = Some(ms(sent.elapsed()));
                break;
            }
        }
        tokio::time::sleep(POLL).await;
    }
    if visible_after_ms.is_none() {
        problems.push(format!(
            "the edited description of {entity_ref} was not visible {MAX_LOOP:?} after POST /refresh"
        ));
    }
    Ok(ChangeVisibility {
        entity_ref,
        file: file.clone(),
        refresh_status,
        refresh_request_ms,
        visible_after_ms,
    })
}

async fn restart(
    ctx: &Ctx,
    server: &mut Server,
    portico: &Path,
    ticks: f64,
    problems: &mut Vec<String>,
) -> anyhow::Result<Restart> {
    let mut restart =
        Restart { shutdown: Some(server.terminate(Duration::from_secs(30))?), ..Restart::default() };
    let log = log_path(ctx);
    *server = Server::start(portico, &ctx.generated.config, &log)?;
    let name = ctx.component(11).to_owned();
    while server.started.elapsed() < MAX_LOOP {
        if let Some(status) = server.exited() {
            bail!("portico exited after restart ({status}); log tail:\n{}", log_tail(&log, 30));
        }
        if restart.ready_ms.is_none() {
            if let Ok(response) =
                ctx.client.get(format!("{}/.backstage/health/v1/readiness", ctx.root)).send().await
            {
                if response.status().as_u16() == 200 {
                    restart.ready_ms = Some(ms(server.started.elapsed()));
                }
            }
        }
        if restart.ready_ms.is_some() {
            if let Ok((200, entity)) = ctx.by_name("component", &name).await {
                if relation_count(&entity, "ownedBy") == 1 {
                    restart.by_name_ms = Some(ms(server.started.elapsed()));
                    restart.server_cpu_seconds_to_ready = cpu_seconds(server.pid(), ticks);
                    break;
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
    if restart.by_name_ms.is_none() {
        problems
            .push(format!("after restart, by-name {name} did not answer with relations within {MAX_LOOP:?}"));
    }
    if let (Ok(total), Ok(locations)) = (ctx.total("").await, ctx.total("kind=location").await) {
        let entities = total.saturating_sub(locations);
        restart.entities_after_restart = Some(entities);
        if entities != ctx.generated.entities as u64 {
            problems.push(format!(
                "right after restart: {entities} entities (total {total}, {locations} locations), expected {}",
                ctx.generated.entities
            ));
        }
    }
    restart.memory = memory(server.pid());
    tokio::time::sleep(SETTLE).await;
    restart.memory_settled = memory(server.pid());
    Ok(restart)
}

pub(crate) async fn run(options: RunOptions) -> anyhow::Result<Report> {
    let temp = match &options.dir {
        Some(_) => None,
        None => {
            Some(tempfile::Builder::new().prefix("portico-bench-").tempdir().context("creating a temp dir")?)
        }
    };
    let dir = match (&options.dir, &temp) {
        (Some(dir), _) => dir.clone(),
        (None, Some(temp)) => temp.path().to_path_buf(),
        (None, None) => bail!("no directory"),
    };
    let result = run_in(&dir, &options).await;
    if let Some(temp) = temp {
        if options.keep || result.is_err() {
            let kept = temp.keep();
            eprintln!("portico-bench: kept {}", kept.display());
        }
    }
    result
}

async fn run_in(dir: &Path, options: &RunOptions) -> anyhow::Result<Report> {
    let portico = find_portico(options.portico.as_deref());
    let port = free_port()?;
    eprintln!("portico-bench: generating {} entities in {}", options.entities, dir.display());
    let generated = generate::generate(
        dir,
        &generate::Options {
            entities: options.entities,
            seed: options.seed,
            postgres: options.postgres.clone(),
            port,
        },
    )?;
    let log = generated.dir.join("portico.log");
    let mut report = Report {
        entities: generated.entities,
        kinds: generated
            .kinds
            .iter()
            .map(|(kind, count)| KindCount { kind: (*kind).into(), count: *count })
            .collect(),
        files: generated.files.len() + 1,
        catalog_megabytes: (generated.bytes as f64 / 1_048_576.0 * 10.0).round() / 10.0,
        seed: options.seed,
        database: if options.postgres.is_some() { "PostgreSQL".into() } else { "SQLite (file)".into() },
        portico: portico.display().to_string(),
        requests: options.requests,
        clients: options.clients,
        server_log: log.display().to_string(),
        ..Report::default()
    };

    if options.postgres.is_some() {
        eprintln!("portico-bench: emptying the PostgreSQL database (portico migrate --down)");
        let log_file = OpenOptions::new().create(true).append(true).open(&log)?;
        let status = Command::new(&portico)
            .args(["migrate", "--down", "--config"])
            .arg(&generated.config)
            .current_dir(&generated.dir)
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .status()
            .with_context(|| format!("running {} migrate --down", portico.display()))?;
        if !status.success() {
            bail!("portico migrate --down failed ({status}); log tail:\n{}", log_tail(&log, 20));
        }
    }

    let clients = options.clients;
    let builder = move || {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(clients.max(1) * 2)
            .tcp_nodelay(true)
    };
    let root = format!("http://127.0.0.1:{port}");
    let by_refs_bodies = (0..64)
        .map(|set| {
            let refs = &generated.refs;
            let refs: Vec<&String> =
                (0..100).map(|item| &refs[(set * 4099 + item * 97) % refs.len()]).collect();
            json!({ "entityRefs": refs }).to_string()
        })
        .collect();
    if options.auth {
        let mut config = std::fs::OpenOptions::new().append(true).open(&generated.config)?;
        std::io::Write::write_all(
            &mut config,
            b"auth:\n  providers:\n    guest:\n      userEntityRef: user:default/portico-bench\n      dangerouslyAllowOutsideDevelopment: true\n",
        )?;
    }
    let ticks = clock_ticks();

    eprintln!("portico-bench: starting {} on port {port}", portico.display());
    let mut server = Server::start(&portico, &generated.config, &log)?;
    let mut headers = reqwest::header::HeaderMap::new();
    if options.auth {
        let token = guest_token(&builder().build()?, &root).await?;
        headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse()?);
        report.authenticated = true;
    }
    let client = builder().default_headers(headers.clone()).build()?;
    let new_client = Box::new(move || builder().default_headers(headers.clone()).build());
    let ctx = Arc::new(Ctx {
        client,
        new_client,
        api: format!("{root}/api/catalog"),
        root,
        generated,
        by_refs_bodies,
    });
    report.ingest = wait_for_ingest(&ctx, &mut server, options.ingest_timeout, ticks).await?;
    report.memory_after_ingest = memory(server.pid());
    tokio::time::sleep(SETTLE).await;
    report.memory_after_ingest_settled = memory(server.pid());
    tokio::time::sleep(IDLE_WORK.saturating_sub(SETTLE)).await;
    report.memory_after_ingest_idle = memory(server.pid());
    if report.ingest.complete {
        eprintln!(
            "portico-bench: ingest complete after {:.2} s",
            report.ingest.relations_complete_ms.unwrap_or(0.0) / 1000.0
        );
    } else {
        report.problems.push(format!(
            "ingest did not complete within {:?}: {}",
            options.ingest_timeout,
            report.ingest.missing.join("; ")
        ));
        eprintln!("portico-bench: ingest INCOMPLETE; measuring anyway");
    }

    report.checks = run_checks(&ctx).await;
    for failed in report.checks.iter().filter(|check| !check.ok) {
        report.problems.push(format!("check {} failed: {}", failed.name, failed.detail));
    }

    let queries: Vec<Query> = QUERIES
        .into_iter()
        .filter(|query| {
            !options.auth
                || !matches!(query, Query::UiEntity | Query::UiTable | Query::UiTableByOwner | Query::UiGraph)
        })
        .collect();
    for &query in &queries {
        let count =
            if query == Query::StreamAll { (options.requests / 100).clamp(3, 50) } else { options.requests };
        eprintln!("portico-bench: latency of {} ({count} requests)", query.label());
        let row = latency(&ctx, query, count).await;
        if row.errors > 0 {
            report.problems.push(format!(
                "{}: {} of {} requests failed, first: {}",
                row.query,
                row.errors,
                row.requests,
                row.first_error.clone().unwrap_or_default()
            ));
        }
        report.latency.push(row);
    }
    for &query in &queries {
        eprintln!(
            "portico-bench: throughput of {} ({} clients, {} s)",
            query.label(),
            options.clients,
            options.throughput_seconds
        );
        let row = throughput(&ctx, query, options.clients, options.throughput_seconds).await;
        if row.errors > 0 {
            report.problems.push(format!(
                "{} with {} clients: {} of {} requests failed, first: {}",
                row.query,
                row.clients,
                row.errors,
                row.requests,
                row.first_error.clone().unwrap_or_default()
            ));
        }
        report.throughput.push(row);
    }
    report.memory_after_load = memory(server.pid());
    if !options.auth {
        eprintln!("portico-bench: UI page weight");
        match page_weights(&ctx).await {
            Ok(weights) => report.page_weight = weights,
            Err(error) => report.problems.push(format!("page weight: {error:#}")),
        }
    }

    eprintln!("portico-bench: idle CPU ({} s)", options.idle_seconds);
    tokio::time::sleep(Duration::from_secs(1)).await;
    report.idle_cpu.extend(idle_cpu(&server, "after the load phases", options.idle_seconds, ticks).await);

    eprintln!("portico-bench: change visibility");
    match change_visibility(&ctx, &mut report.problems).await {
        Ok(change) => report.change_visibility = Some(change),
        Err(error) => report.problems.push(format!("change visibility: {error:#}")),
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    report.idle_cpu.extend(idle_cpu(&server, "after the refresh", options.idle_seconds, ticks).await);

    eprintln!("portico-bench: restart");
    let mut restarted = restart(&ctx, &mut server, &portico, ticks, &mut report.problems).await?;
    if let Some(change) = &report.change_visibility {
        if let Some(name) = change.entity_ref.strip_prefix("component:default/") {
            if let Ok((200, entity)) = ctx.by_name("component", name).await {
                let description =
                    entity.pointer("/metadata/description").and_then(Value::as_str).unwrap_or("");
                restarted.edit_survived = Some(description.starts_with("Edited by portico-bench"));
            }
        }
    }
    report.restart = Some(restarted);
    report.final_shutdown = Some(server.terminate(Duration::from_secs(30))?);
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let errors: Vec<&str> = log_text
        .lines()
        .filter(|line| {
            line.contains("ERROR")
                || line.contains("panicked")
                || (line.contains(" WARN") && !line.contains("no sign-in is configured"))
        })
        .take(10)
        .collect();
    for line in errors {
        report.problems.push(format!("server log: {line}"));
    }
    Ok(report)
}
