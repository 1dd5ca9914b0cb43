//! The catalog generator: a deterministic, realistic Backstage catalog of N entities.
//!
//! Shape (for N = 10 000): 1% domains, 5% groups (a tree under one organization), 4% systems,
//! 15% APIs (inline OpenAPI definitions), 10% resources, 15% users and the rest (about half)
//! components. Every reference resolves to a generated entity. Entities are written as
//! multi-document YAML files of at most [`CHUNK`] entities per kind, fanned out by one
//! Location entity per file in `all.yaml`; `app-config.yaml` points a Portico at it.
//!
//! Output depends only on N and the seed (plus the directory, which appears in the config), so
//! the same arguments give byte-identical files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::rng::Rng;

/// Entities per YAML file.
pub(crate) const CHUNK: usize = 500;

/// Name prefix of the Location entities in `all.yaml`.
pub(crate) const ROOT_LOCATION: &str = "bench-catalog";

const AREAS: &[&str] = &[
    "billing",
    "payments",
    "orders",
    "shipping",
    "inventory",
    "search",
    "identity",
    "catalog",
    "checkout",
    "pricing",
    "fraud",
    "analytics",
    "messaging",
    "notifications",
    "recommendations",
    "logistics",
    "fleet",
    "routing",
    "tracking",
    "accounts",
    "ledger",
    "reporting",
    "media",
    "content",
    "support",
    "onboarding",
    "compliance",
    "risk",
    "loyalty",
    "marketing",
];

const QUALIFIERS: &[&str] = &[
    "core",
    "invoice",
    "events",
    "reconciliation",
    "batch",
    "realtime",
    "public",
    "internal",
    "legacy",
    "edge",
    "query",
    "command",
    "audit",
    "export",
    "import",
    "partner",
    "mobile",
    "admin",
    "stream",
    "archive",
];

const SERVICE_SUFFIXES: &[&str] =
    &["service", "worker", "gateway", "processor", "scheduler", "sync", "ingester", "exporter"];
const WEBSITE_SUFFIXES: &[&str] = &["web", "portal", "dashboard", "admin-ui", "frontend"];
const LIBRARY_SUFFIXES: &[&str] = &["lib", "sdk", "client", "utils", "model", "proto"];

const TAGS: &[&str] = &[
    "java",
    "go",
    "rust",
    "python",
    "typescript",
    "kotlin",
    "grpc",
    "rest",
    "graphql",
    "kafka",
    "postgres",
    "redis",
    "frontend",
    "backend",
    "internal",
    "public",
    "pii",
    "tier-1",
    "tier-2",
    "tier-3",
];

const PURPOSES: &[&str] = &[
    "keeps the source of truth for",
    "exposes a stable contract for",
    "runs the nightly jobs behind",
    "streams change events about",
    "reconciles external partner data about",
    "serves the customer-facing views of",
    "validates and enriches",
    "aggregates metrics on",
    "archives and exports",
    "schedules the follow-up work for",
];

const NOUNS: &[&str] = &[
    "invoice",
    "order",
    "shipment",
    "customer",
    "account",
    "payment",
    "product",
    "warehouse",
    "route",
    "vehicle",
    "ticket",
    "campaign",
    "session",
    "report",
    "document",
];

const FIRST_NAMES: &[&str] = &[
    "alice", "bob", "carla", "deepak", "elena", "farid", "greta", "hiro", "ines", "jonas", "kemi", "lars",
    "maya", "nikolai", "olga", "pedro", "quinn", "rosa", "sven", "tariq", "uma", "viktor", "wen", "xavier",
    "yara", "zoe",
];

const LAST_NAMES: &[&str] = &[
    "anders", "baker", "chen", "dubois", "eriksen", "fischer", "garcia", "haddad", "ivanova", "jensen",
    "kowalski", "lopez", "moreau", "nakamura", "okafor", "patel", "rossi", "schmidt", "tanaka", "urban",
    "varga", "weber", "yilmaz", "zhang",
];

/// What the benchmark needs to know about a generated catalog.
#[derive(Debug, Clone)]
pub(crate) struct Generated {
    pub(crate) dir: PathBuf,
    pub(crate) config: PathBuf,
    pub(crate) root: PathBuf,
    /// Entities in the data files (not counting Location entities).
    pub(crate) entities: usize,
    /// `(kind, count)` in generation order.
    pub(crate) kinds: Vec<(&'static str, usize)>,
    /// Data files, relative to `dir`.
    pub(crate) files: Vec<String>,
    /// Bytes written (data files and all.yaml).
    pub(crate) bytes: u64,
    pub(crate) component_names: Vec<String>,
    /// Index into `files` for every component.
    pub(crate) component_files: Vec<usize>,
    /// Canonical refs of every entity (for by-refs).
    pub(crate) refs: Vec<String>,
    /// Distinct `spec.type` values of components.
    pub(crate) component_types: usize,
    /// A group that owns much, and how many entities name it as owner.
    pub(crate) sample_group: String,
    pub(crate) sample_group_owns: usize,
    /// APIs provided by some component (each has an `apiProvidedBy` relation once stitched).
    pub(crate) provided_apis: usize,
    /// Words used in names, for full-text queries.
    pub(crate) search_terms: Vec<String>,
}

impl Generated {
    pub(crate) fn count(&self, kind: &str) -> usize {
        self.kinds.iter().find(|(name, _)| *name == kind).map_or(0, |(_, count)| *count)
    }
}

/// Database section of the generated app-config.
#[derive(Debug, Clone)]
pub(crate) enum Database {
    /// better-sqlite3 with `connection.directory`.
    Sqlite(PathBuf),
    Postgres(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) entities: usize,
    pub(crate) seed: u64,
    /// `None`: `<dir>/db`.
    pub(crate) postgres: Option<String>,
    pub(crate) port: u16,
}

fn title_case(name: &str) -> String {
    name.split(['-', '.'])
        .map(|word| match word {
            "api" | "ui" | "sdk" | "db" => word.to_uppercase(),
            _ => {
                let mut chars = word.chars();
                match chars.next() {
                    Some(first) => first.to_uppercase().chain(chars).collect(),
                    None => String::new(),
                }
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A double-quoted YAML scalar (JSON string syntax is valid YAML).
fn q(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

struct Counts {
    domains: usize,
    groups: usize,
    systems: usize,
    apis: usize,
    resources: usize,
    users: usize,
    components: usize,
}

fn counts(total: usize) -> Counts {
    let domains = (total / 100).max(1);
    let groups = (total / 20).max(3);
    let systems = (total / 25).max(2);
    let apis = (total * 3 / 20).max(2);
    let resources = (total / 10).max(2);
    let users = (total * 3 / 20).max(2);
    let components = total - domains - groups - systems - apis - resources - users;
    Counts { domains, groups, systems, apis, resources, users, components }
}

/// The group tree: heap layout with fan-out 5 (`parent(i) = (i - 1) / 5`).
const FANOUT: usize = 5;

fn group_parent(index: usize) -> Option<usize> {
    (index > 0).then(|| (index - 1) / FANOUT)
}

fn group_depth(mut index: usize) -> usize {
    let mut depth = 0;
    while let Some(parent) = group_parent(index) {
        index = parent;
        depth += 1;
    }
    depth
}

struct Names {
    groups: Vec<String>,
    users: Vec<String>,
    domains: Vec<String>,
    systems: Vec<String>,
    apis: Vec<String>,
    resources: Vec<String>,
    components: Vec<String>,
    component_types: Vec<&'static str>,
}

fn names(rng: &mut Rng, counts: &Counts) -> Names {
    let groups = (0..counts.groups)
        .map(|index| match group_depth(index) {
            0 => "acme-corp".to_owned(),
            1 => format!("{}-division-{index}", rng.pick(AREAS)),
            2 => format!("{}-{}-area-{index}", rng.pick(AREAS), rng.pick(QUALIFIERS)),
            _ => format!("{}-{}-team-{index}", rng.pick(AREAS), rng.pick(QUALIFIERS)),
        })
        .collect();
    let users = (0..counts.users)
        .map(|index| format!("{}.{}{index}", rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES)))
        .collect();
    let domains = (0..counts.domains).map(|index| format!("{}-domain-{index}", rng.pick(AREAS))).collect();
    let systems = (0..counts.systems)
        .map(|index| format!("{}-{}-system-{index}", rng.pick(AREAS), rng.pick(QUALIFIERS)))
        .collect();
    let apis = (0..counts.apis)
        .map(|index| format!("{}-{}-api-{index}", rng.pick(AREAS), rng.pick(QUALIFIERS)))
        .collect();
    let resources = (0..counts.resources)
        .map(|index| {
            let kind = rng.pick(&["db", "bucket", "queue", "cache", "cluster", "topic"]);
            format!("{}-{}-{kind}-{index}", rng.pick(AREAS), rng.pick(QUALIFIERS))
        })
        .collect();
    let mut component_types = Vec::with_capacity(counts.components);
    let components = (0..counts.components)
        .map(|index| {
            let component_type = *rng.weighted(&[("service", 60), ("website", 15), ("library", 25)]);
            component_types.push(component_type);
            let suffix = match component_type {
                "service" => rng.pick(SERVICE_SUFFIXES),
                "website" => rng.pick(WEBSITE_SUFFIXES),
                _ => rng.pick(LIBRARY_SUFFIXES),
            };
            format!("{}-{}-{suffix}-{index}", rng.pick(AREAS), rng.pick(QUALIFIERS))
        })
        .collect();
    Names { groups, users, domains, systems, apis, resources, components, component_types }
}

/// One generated entity document.
struct Doc {
    text: String,
}

impl Doc {
    fn new(kind: &str, name: &str, description: &str) -> Doc {
        let mut text = String::with_capacity(1024);
        let _ = writeln!(text, "apiVersion: backstage.io/v1alpha1");
        let _ = writeln!(text, "kind: {kind}");
        let _ = writeln!(text, "metadata:");
        let _ = writeln!(text, "  name: {name}");
        let title = title_case(name);
        // People's names carry a uniqueness suffix that does not belong in a title.
        let title = if kind == "User" { title.trim_end_matches(char::is_numeric) } else { title.as_str() };
        let _ = writeln!(text, "  title: {}", q(title));
        let _ = writeln!(text, "  description: {}", q(description));
        Doc { text }
    }

    fn line(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
    }

    fn tags(&mut self, rng: &mut Rng, max: usize) {
        let count = rng.range(0, max);
        if count == 0 {
            return;
        }
        let tags: Vec<&str> = rng.distinct(count, TAGS.len()).into_iter().map(|index| TAGS[index]).collect();
        self.line(&format!("  tags: [{}]", tags.join(", ")));
    }

    fn list(&mut self, key: &str, items: &[String]) {
        if items.is_empty() {
            return;
        }
        self.line(&format!("  {key}:"));
        for item in items {
            self.line(&format!("    - {item}"));
        }
    }
}

struct Owners {
    /// Group indices eligible as owners (depth ≥ 2 when the tree is that deep).
    groups: Vec<usize>,
    /// Entities naming each group as owner.
    owned: Vec<usize>,
}

impl Owners {
    fn new(group_count: usize) -> Owners {
        let deep: Vec<usize> = (0..group_count).filter(|&index| group_depth(index) >= 2).collect();
        let groups = if deep.is_empty() { (0..group_count).collect() } else { deep };
        Owners { groups, owned: vec![0; group_count] }
    }

    /// An owner reference in one of the spellings people use; `users_ok` allows user owners.
    fn pick(&mut self, rng: &mut Rng, names: &Names, users_ok: bool) -> String {
        if users_ok && rng.chance(8) {
            return format!("user:{}", rng.pick(&names.users));
        }
        let group = *rng.pick(&self.groups);
        self.owned[group] += 1;
        let name = &names.groups[group];
        match rng.below(10) {
            0 => format!("group:default/{name}"),
            1 => format!("group:{name}"),
            _ => name.clone(),
        }
    }
}

fn openapi_definition(rng: &mut Rng, name: &str, description: &str) -> String {
    let noun = rng.pick(NOUNS);
    let type_name = title_case(noun);
    let version = format!("{}.{}.0", rng.range(1, 3), rng.below(10));
    let mut text = String::new();
    let _ = writeln!(text, "openapi: 3.0.3");
    let _ = writeln!(text, "info:");
    let _ = writeln!(text, "  title: {}", title_case(name));
    let _ = writeln!(text, "  version: {version}");
    let _ = writeln!(text, "  description: {}", q(description));
    let _ = writeln!(text, "servers:");
    let _ = writeln!(text, "  - url: https://{name}.example.com/v1");
    let _ = writeln!(text, "paths:");
    let _ = writeln!(text, "  /{noun}s:");
    let _ = writeln!(text, "    get:");
    let _ = writeln!(text, "      summary: List {noun}s");
    let _ = writeln!(text, "      operationId: list{type_name}s");
    let _ = writeln!(text, "      parameters:");
    let _ = writeln!(text, "        - name: limit");
    let _ = writeln!(text, "          in: query");
    let _ = writeln!(text, "          schema:");
    let _ = writeln!(text, "            type: integer");
    let _ = writeln!(text, "      responses:");
    let _ = writeln!(text, "        \"200\":");
    let _ = writeln!(text, "          description: A page of {noun}s");
    let _ = writeln!(text, "          content:");
    let _ = writeln!(text, "            application/json:");
    let _ = writeln!(text, "              schema:");
    let _ = writeln!(text, "                type: array");
    let _ = writeln!(text, "                items:");
    let _ = writeln!(text, "                  $ref: \"#/components/schemas/{type_name}\"");
    let _ = writeln!(text, "  /{noun}s/{{id}}:");
    let _ = writeln!(text, "    get:");
    let _ = writeln!(text, "      summary: Get one {noun}");
    let _ = writeln!(text, "      operationId: get{type_name}");
    let _ = writeln!(text, "      parameters:");
    let _ = writeln!(text, "        - name: id");
    let _ = writeln!(text, "          in: path");
    let _ = writeln!(text, "          required: true");
    let _ = writeln!(text, "          schema:");
    let _ = writeln!(text, "            type: string");
    let _ = writeln!(text, "      responses:");
    let _ = writeln!(text, "        \"200\":");
    let _ = writeln!(text, "          description: The {noun}");
    let _ = writeln!(text, "          content:");
    let _ = writeln!(text, "            application/json:");
    let _ = writeln!(text, "              schema:");
    let _ = writeln!(text, "                $ref: \"#/components/schemas/{type_name}\"");
    let _ = writeln!(text, "        \"404\":");
    let _ = writeln!(text, "          description: No such {noun}");
    let _ = writeln!(text, "components:");
    let _ = writeln!(text, "  schemas:");
    let _ = writeln!(text, "    {type_name}:");
    let _ = writeln!(text, "      type: object");
    let _ = writeln!(text, "      required: [id]");
    let _ = writeln!(text, "      properties:");
    let _ = writeln!(text, "        id:");
    let _ = writeln!(text, "          type: string");
    let _ = writeln!(text, "        status:");
    let _ = writeln!(text, "          type: string");
    let _ = writeln!(text, "          enum: [active, archived]");
    let _ = writeln!(text, "        createdAt:");
    let _ = writeln!(text, "          type: string");
    let _ = writeln!(text, "          format: date-time");
    text
}

fn description(rng: &mut Rng, what: &str, name: &str) -> String {
    let area = name.split('-').next().unwrap_or(name);
    format!("The {area} {what} that {} {}s.", rng.pick(PURPOSES), rng.pick(NOUNS))
}

fn project_annotations(doc: &mut Doc, rng: &mut Rng, name: &str) {
    doc.line("  annotations:");
    doc.line(&format!("    github.com/project-slug: {}", q(&format!("acme/{name}"))));
    if rng.chance(50) {
        doc.line(&format!("    backstage.io/techdocs-ref: {}", q("dir:.")));
    }
    if rng.chance(30) {
        doc.line(&format!("    pagerduty.com/service-id: {}", q(&format!("P{:06X}", rng.below(0xFF_FFFF)))));
    }
}

fn links(doc: &mut Doc, rng: &mut Rng, name: &str) {
    if !rng.chance(30) {
        return;
    }
    doc.line("  links:");
    doc.line(&format!("    - url: {}", q(&format!("https://dashboards.example.com/acme/{name}"))));
    doc.line("      title: Dashboard");
    doc.line("      icon: dashboard");
    if rng.chance(50) {
        doc.line(&format!("    - url: {}", q(&format!("https://wiki.example.com/runbooks/{name}"))));
        doc.line("      title: Runbook");
        doc.line("      icon: docs");
    }
}

/// Generates the catalog into `dir` (created if missing; existing generated files are
/// overwritten) and writes `app-config.yaml`.
pub(crate) fn generate(dir: &Path, options: &Options) -> anyhow::Result<Generated> {
    if options.entities < 20 {
        bail!("--entities must be at least 20");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
    let counts = counts(options.entities);
    let mut rng = Rng::new(options.seed);
    let names = names(&mut rng, &counts);
    let mut owners = Owners::new(counts.groups);

    let mut files: Vec<String> = Vec::new();
    let mut bytes = 0u64;
    let mut component_files = Vec::with_capacity(counts.components);
    let mut refs = Vec::with_capacity(options.entities);

    // Groups: a tree; `parent` and `children` are consistent.
    let mut docs = Vec::with_capacity(counts.groups);
    for (index, name) in names.groups.iter().enumerate() {
        let depth = group_depth(index);
        let group_type = match depth {
            0 => "organization",
            1 => "business-unit",
            2 => "product-area",
            _ => "team",
        };
        let mut doc =
            Doc::new("Group", name, &description(&mut rng, group_type.replace('-', " ").as_str(), name));
        doc.line("spec:");
        doc.line(&format!("  type: {group_type}"));
        doc.line("  profile:");
        doc.line(&format!("    displayName: {}", q(&title_case(name))));
        doc.line(&format!("    email: {}", q(&format!("{name}@acme.example.com"))));
        if let Some(parent) = group_parent(index) {
            doc.line(&format!("  parent: {}", names.groups[parent]));
        }
        let first_child = index * FANOUT + 1;
        let children: Vec<String> = (first_child..(first_child + FANOUT).min(counts.groups))
            .map(|child| names.groups[child].clone())
            .collect();
        if children.is_empty() {
            doc.line("  children: []");
        } else {
            doc.list("children", &children);
        }
        refs.push(format!("group:default/{name}"));
        docs.push(doc.text);
    }
    write_chunks(&dir, "groups", &docs, options.seed, &mut files, &mut bytes)?;

    // Users: members of one or two non-root groups.
    let mut docs = Vec::with_capacity(counts.users);
    for name in &names.users {
        let mut doc = Doc::new("User", name, "A member of the Acme engineering organization.");
        doc.line("spec:");
        doc.line("  profile:");
        doc.line(&format!("    displayName: {}", q(title_case(name).trim_end_matches(char::is_numeric))));
        doc.line(&format!("    email: {}", q(&format!("{name}@acme.example.com"))));
        let how_many = if rng.chance(20) { 2 } else { 1 };
        let member_of: Vec<String> = rng
            .distinct(how_many, counts.groups - 1)
            .into_iter()
            .map(|index| names.groups[index + 1].clone())
            .collect();
        doc.list("memberOf", &member_of);
        refs.push(format!("user:default/{name}"));
        docs.push(doc.text);
    }
    write_chunks(&dir, "users", &docs, options.seed, &mut files, &mut bytes)?;

    // Domains, some nested.
    let mut docs = Vec::with_capacity(counts.domains);
    for (index, name) in names.domains.iter().enumerate() {
        let mut doc = Doc::new("Domain", name, &description(&mut rng, "domain", name));
        doc.tags(&mut rng, 1);
        doc.line("spec:");
        doc.line(&format!("  owner: {}", owners.pick(&mut rng, &names, false)));
        doc.line("  type: product-area");
        if index > 0 && rng.chance(30) {
            doc.line(&format!("  subdomainOf: {}", names.domains[rng.below(index)]));
        }
        refs.push(format!("domain:default/{name}"));
        docs.push(doc.text);
    }
    write_chunks(&dir, "domains", &docs, options.seed, &mut files, &mut bytes)?;

    // Systems, each in a domain.
    let mut docs = Vec::with_capacity(counts.systems);
    for name in &names.systems {
        let mut doc = Doc::new("System", name, &description(&mut rng, "system", name));
        doc.tags(&mut rng, 2);
        links(&mut doc, &mut rng, name);
        doc.line("spec:");
        doc.line(&format!("  owner: {}", owners.pick(&mut rng, &names, false)));
        doc.line(&format!("  domain: {}", rng.pick(&names.domains)));
        doc.line(&format!("  type: {}", rng.pick(&["product", "platform", "internal"])));
        refs.push(format!("system:default/{name}"));
        docs.push(doc.text);
    }
    write_chunks(&dir, "systems", &docs, options.seed, &mut files, &mut bytes)?;

    // Which component provides which API (every API has exactly one provider).
    let mut provides: Vec<Vec<usize>> = vec![Vec::new(); counts.components];
    let services: Vec<usize> =
        (0..counts.components).filter(|&index| names.component_types[index] == "service").collect();
    let providers = if services.is_empty() { (0..counts.components).collect() } else { services };
    for api in 0..counts.apis {
        provides[*rng.pick(&providers)].push(api);
    }
    let provided_apis = counts.apis;

    // APIs with inline OpenAPI definitions.
    let mut docs = Vec::with_capacity(counts.apis);
    for name in &names.apis {
        let text = description(&mut rng, "API", name);
        let mut doc = Doc::new("API", name, &text);
        doc.tags(&mut rng, 2);
        links(&mut doc, &mut rng, name);
        doc.line("spec:");
        doc.line("  type: openapi");
        doc.line(&format!(
            "  lifecycle: {}",
            rng.weighted(&[("production", 70), ("experimental", 20), ("deprecated", 10)])
        ));
        doc.line(&format!("  owner: {}", owners.pick(&mut rng, &names, true)));
        doc.line(&format!("  system: {}", rng.pick(&names.systems)));
        doc.line("  definition: |");
        for line in openapi_definition(&mut rng, name, &text).lines() {
            doc.line(&format!("    {line}"));
        }
        refs.push(format!("api:default/{name}"));
        docs.push(doc.text);
    }
    write_chunks(&dir, "apis", &docs, options.seed, &mut files, &mut bytes)?;

    // Resources.
    let mut docs = Vec::with_capacity(counts.resources);
    for (index, name) in names.resources.iter().enumerate() {
        let resource_type = match name.rsplit('-').nth(1).unwrap_or("db") {
            "db" => "database",
            "bucket" => "s3-bucket",
            "queue" => "queue",
            "cache" => "cache",
            "cluster" => "kubernetes-cluster",
            _ => "kafka-topic",
        };
        let mut doc = Doc::new("Resource", name, &description(&mut rng, resource_type, name));
        doc.tags(&mut rng, 1);
        doc.line("spec:");
        doc.line(&format!("  type: {resource_type}"));
        doc.line(&format!("  owner: {}", owners.pick(&mut rng, &names, false)));
        doc.line(&format!("  system: {}", rng.pick(&names.systems)));
        if index > 0 && rng.chance(20) {
            doc.list("dependsOn", &[format!("resource:{}", names.resources[rng.below(index)])]);
        }
        refs.push(format!("resource:default/{name}"));
        docs.push(doc.text);
    }
    write_chunks(&dir, "resources", &docs, options.seed, &mut files, &mut bytes)?;

    // Components: about half of the catalog.
    let mut docs = Vec::with_capacity(counts.components);
    for (index, name) in names.components.iter().enumerate() {
        let component_type = names.component_types[index];
        let mut doc = Doc::new("Component", name, &description(&mut rng, component_type, name));
        doc.tags(&mut rng, 3);
        project_annotations(&mut doc, &mut rng, name);
        links(&mut doc, &mut rng, name);
        doc.line("spec:");
        doc.line(&format!("  type: {component_type}"));
        doc.line(&format!(
            "  lifecycle: {}",
            rng.weighted(&[("production", 60), ("experimental", 25), ("deprecated", 15)])
        ));
        doc.line(&format!("  owner: {}", owners.pick(&mut rng, &names, true)));
        if rng.chance(90) {
            doc.line(&format!("  system: {}", rng.pick(&names.systems)));
        }
        if index > 0 && rng.chance(5) {
            doc.line(&format!("  subcomponentOf: {}", names.components[rng.below(index)]));
        }
        let provided: Vec<String> = provides[index]
            .iter()
            .map(|&api| {
                if rng.chance(20) {
                    format!("api:default/{}", names.apis[api])
                } else {
                    names.apis[api].clone()
                }
            })
            .collect();
        doc.list("providesApis", &provided);
        let consume_count = rng.range(0, 3);
        let consumed: Vec<String> =
            rng.distinct(consume_count, counts.apis).into_iter().map(|api| names.apis[api].clone()).collect();
        doc.list("consumesApis", &consumed);
        let mut depends = Vec::new();
        if index > 0 {
            let count = rng.range(0, 2);
            for other in rng.distinct(count, index) {
                depends.push(format!("component:{}", names.components[other]));
            }
        }
        let count = rng.range(0, 2);
        for resource in rng.distinct(count, counts.resources) {
            depends.push(format!("resource:default/{}", names.resources[resource]));
        }
        doc.list("dependsOn", &depends);
        refs.push(format!("component:default/{name}"));
        component_files.push(files.len() + index / CHUNK);
        docs.push(doc.text);
    }
    write_chunks(&dir, "components", &docs, options.seed, &mut files, &mut bytes)?;

    // The root file: one Location entity per data file, the way a real catalog registers one
    // location per repository. A refresh of an entity then re-reads only its own file (a single
    // Location listing every file would re-read them all, in Backstage as here).
    let root = dir.join("all.yaml");
    let mut text =
        format!("# Generated by portico-bench: {} entities, seed {}.\n", options.entities, options.seed);
    for file in &files {
        let stem = file.trim_end_matches(".yaml");
        let _ = write!(
            text,
            "---\napiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: {ROOT_LOCATION}-{stem}\n  \
             description: {}\nspec:\n  target: ./{file}\n",
            q(&format!("Generated benchmark entities in {file}."))
        );
    }
    std::fs::write(&root, &text).with_context(|| format!("writing {}", root.display()))?;
    bytes += text.len() as u64;

    let database = match &options.postgres {
        Some(url) => Database::Postgres(url.clone()),
        None => Database::Sqlite(dir.join("db")),
    };
    let config = dir.join("app-config.yaml");
    std::fs::write(&config, app_config(&root, &database, options.port))
        .with_context(|| format!("writing {}", config.display()))?;

    let (sample, owns) = owners
        .owned
        .iter()
        .enumerate()
        .max_by_key(|(index, owned)| (**owned, std::cmp::Reverse(*index)))
        .map_or((0, 0), |(index, owned)| (index, *owned));
    let mut search_terms: Vec<String> =
        AREAS.iter().chain(QUALIFIERS).map(|word| (*word).to_owned()).collect();
    search_terms.sort();
    let mut component_types: Vec<&str> = names.component_types.clone();
    component_types.sort_unstable();
    component_types.dedup();

    Ok(Generated {
        config,
        root,
        entities: options.entities,
        kinds: vec![
            ("group", counts.groups),
            ("user", counts.users),
            ("domain", counts.domains),
            ("system", counts.systems),
            ("api", counts.apis),
            ("resource", counts.resources),
            ("component", counts.components),
        ],
        files,
        bytes,
        component_names: names.components,
        component_files,
        refs,
        component_types: component_types.len(),
        sample_group: names.groups[sample].clone(),
        sample_group_owns: owns,
        provided_apis,
        search_terms,
        dir,
    })
}

fn write_chunks(
    dir: &Path,
    prefix: &str,
    docs: &[String],
    seed: u64,
    files: &mut Vec<String>,
    bytes: &mut u64,
) -> anyhow::Result<()> {
    for (number, chunk) in docs.chunks(CHUNK).enumerate() {
        let file = format!("{prefix}-{:03}.yaml", number + 1);
        let mut text =
            format!("# Generated by portico-bench (seed {seed}): {prefix}, part {}.\n", number + 1);
        for (index, doc) in chunk.iter().enumerate() {
            if index > 0 {
                text.push_str("---\n");
            }
            text.push_str(doc);
        }
        let path = dir.join(&file);
        std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
        *bytes += text.len() as u64;
        files.push(file);
    }
    Ok(())
}

fn app_config(root: &Path, database: &Database, port: u16) -> String {
    let database = match database {
        Database::Sqlite(directory) => format!(
            "  database:\n    client: better-sqlite3\n    connection:\n      directory: {}\n",
            q(&directory.display().to_string())
        ),
        Database::Postgres(url) => format!("  database:\n    client: pg\n    connection: {}\n", q(url)),
    };
    format!(
        "# Generated by portico-bench.\n\
         backend:\n  baseUrl: http://127.0.0.1:{port}\n  listen:\n    host: 127.0.0.1\n    port: {port}\n\
         {database}\
         catalog:\n  rules:\n    - allow: [Component, System, API, Resource, Location, Domain, Group, User]\n  \
         locations:\n    - type: file\n      target: {}\n  processingInterval:\n    minutes: 30\n",
        q(&root.display().to_string())
    )
}

/// Replaces the `metadata.description` of component `name` in `file`.
pub(crate) fn edit_description(file: &Path, name: &str, description: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let marker = format!("\n  name: {name}\n");
    let at = text.find(&marker).with_context(|| format!("{name} not found in {}", file.display()))?;
    let key = "\n  description: ";
    let start = text[at..].find(key).map(|offset| at + offset + key.len()).context("no description line")?;
    let end = text[start..].find('\n').map_or(text.len(), |offset| start + offset);
    let edited = format!("{}{}{}", &text[..start], q(description), &text[end..]);
    std::fs::write(file, edited).with_context(|| format!("writing {}", file.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "yaml"))
            .filter(|entry| entry.file_name() != "app-config.yaml")
            .map(|entry| {
                (
                    entry.file_name().to_string_lossy().into_owned(),
                    std::fs::read(entry.path()).unwrap_or_default(),
                )
            })
            .collect();
        files.sort();
        files
    }

    fn options(entities: usize, seed: u64) -> Options {
        Options { entities, seed, postgres: None, port: 7007 }
    }

    #[test]
    fn deterministic_and_complete() -> anyhow::Result<()> {
        let a = tempfile::tempdir()?;
        let b = tempfile::tempdir()?;
        let generated = generate(a.path(), &options(1200, 3))?;
        generate(b.path(), &options(1200, 3))?;
        let files_a = read_all(a.path());
        assert_eq!(files_a, read_all(b.path()));
        assert_eq!(generated.refs.len(), 1200);
        assert_eq!(generated.kinds.iter().map(|(_, count)| count).sum::<usize>(), 1200);
        assert!(generated.count("component") >= 560);
        // ~500 entities per file, plus all.yaml.
        assert_eq!(files_a.len(), generated.files.len() + 1);

        let c = tempfile::tempdir()?;
        generate(c.path(), &options(1200, 4))?;
        assert_ne!(files_a, read_all(c.path()));
        Ok(())
    }

    #[test]
    fn references_resolve() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let generated = generate(dir.path(), &options(600, 11))?;
        let known: std::collections::BTreeSet<&str> = generated.refs.iter().map(String::as_str).collect();
        let mut checked = 0;
        for file in &generated.files {
            let text = std::fs::read_to_string(generated.dir.join(file))?;
            let mut kind = "";
            let mut key = "";
            for line in text.lines() {
                if let Some(value) = line.strip_prefix("kind: ") {
                    kind = value;
                }
                let trimmed = line.trim_start();
                if line.starts_with("  ") && !line.starts_with("   ") {
                    if let Some(block_key) = trimmed.strip_suffix(':') {
                        key = block_key;
                        continue;
                    }
                }
                let (field, value) = match trimmed.split_once(": ") {
                    Some((field, value)) if line.starts_with("  ") && !line.starts_with("    ") => {
                        key = field;
                        (field, value)
                    }
                    _ if trimmed.starts_with("- ")
                        && line.starts_with("    - ")
                        && !trimmed.contains(": ") =>
                    {
                        (key, &trimmed[2..])
                    }
                    _ => continue,
                };
                let default_kind = match field {
                    "owner" => "group",
                    "system" => "system",
                    "domain" | "subdomainOf" => "domain",
                    "parent" | "children" | "memberOf" => {
                        if field == "memberOf" || kind == "Group" {
                            "group"
                        } else {
                            continue;
                        }
                    }
                    "providesApis" | "consumesApis" => "api",
                    "subcomponentOf" => "component",
                    "dependsOn" => "",
                    _ => continue,
                };
                if value.starts_with('[') {
                    continue;
                }
                let (ref_kind, rest) = match value.split_once(':') {
                    Some((ref_kind, rest)) => (ref_kind, rest),
                    None => (default_kind, value),
                };
                let name = rest.rsplit('/').next().unwrap_or(rest);
                let full = format!("{ref_kind}:default/{name}");
                assert!(known.contains(full.as_str()), "unresolved {field}: {value} ({full}) in {file}");
                checked += 1;
            }
        }
        assert!(checked > 1000, "only {checked} references checked");
        Ok(())
    }

    #[test]
    fn edits_one_description() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let generated = generate(dir.path(), &options(200, 1))?;
        let name = &generated.component_names[5];
        let file = generated.dir.join(&generated.files[generated.component_files[5]]);
        let before = std::fs::read_to_string(&file)?;
        edit_description(&file, name, "changed: by the benchmark")?;
        let after = std::fs::read_to_string(&file)?;
        assert_eq!(before.lines().count(), after.lines().count());
        assert!(after.contains("description: \"changed: by the benchmark\""));
        Ok(())
    }
}
