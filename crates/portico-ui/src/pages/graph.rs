//! The relations graph: an SVG of the entity's relations to depth 1–3, laid out on the server
//! in columns by distance, filterable by relation type and kind.

use portico_app::identity::Identity;
use std::collections::{BTreeSet, HashMap, VecDeque};

use maud::{html, Markup};
use serde_json::Value;

use crate::view::{self, Ref};
use crate::Ui;

/// Nodes drawn at most; the rest is summarised under the graph.
const MAX_NODES: usize = 80;
const NODE_WIDTH: usize = 210;
const NODE_HEIGHT: usize = 36;
const COLUMN_GAP: usize = 120;
const ROW_GAP: usize = 14;
const MARGIN: usize = 20;

/// Relation pairs are drawn once, named by the first of the pair.
const PAIRS: &[(&str, &str)] = &[
    ("ownedBy", "ownerOf"),
    ("providesApi", "apiProvidedBy"),
    ("consumesApi", "apiConsumedBy"),
    ("dependsOn", "dependencyOf"),
    ("partOf", "hasPart"),
    ("memberOf", "hasMember"),
    ("childOf", "parentOf"),
];

fn canonical_relation(kind: &str) -> &str {
    for (forward, backward) in PAIRS {
        if kind == *backward {
            return forward;
        }
    }
    kind
}

/// What the graph shows, from the query string (`depth`, repeated `relation` and `kind`).
#[derive(Debug, Clone)]
pub(crate) struct GraphParams {
    depth: usize,
    relations: BTreeSet<String>,
    kinds: BTreeSet<String>,
}

impl GraphParams {
    pub(crate) fn parse(query: Option<&str>) -> GraphParams {
        let mut params = GraphParams { depth: 1, relations: BTreeSet::new(), kinds: BTreeSet::new() };
        for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match key.as_ref() {
                "depth" => params.depth = value.parse::<usize>().unwrap_or(1).clamp(1, 3),
                "relation" if !value.is_empty() => {
                    params.relations.insert(value.into_owned());
                }
                "kind" if !value.is_empty() => {
                    params.kinds.insert(value.to_lowercase());
                }
                _ => {}
            }
        }
        params
    }
}

struct Node {
    entity_ref: Ref,
    title: String,
    depth: usize,
}

/// The system diagram of a System's overview: the system, its domain and its parts, and the
/// APIs those parts provide and consume (depth 2 over those relations), without controls.
pub(crate) fn diagram(ui: &Ui, identity: &Identity, entity: &Value) -> Markup {
    let params = GraphParams {
        depth: 2,
        relations: ["partOf", "providesApi", "consumesApi"].into_iter().map(str::to_owned).collect(),
        kinds: BTreeSet::new(),
    };
    draw(ui, identity, entity, &params, false)
}

pub(crate) fn render(ui: &Ui, identity: &Identity, entity: &Value, params: &GraphParams) -> Markup {
    draw(ui, identity, entity, params, true)
}

/// Entities the caller may not read appear as bare refs, never with their titles or relations.
fn draw(ui: &Ui, identity: &Identity, entity: &Value, params: &GraphParams, controls: bool) -> Markup {
    let Some(center) = Ref::of(entity) else { return html! {} };
    let mut nodes: Vec<Node> =
        vec![Node { entity_ref: center.clone(), title: view::title_of(entity).to_owned(), depth: 0 }];
    let mut position: HashMap<String, usize> = HashMap::from([(center.canonical(), 0)]);
    let mut edges: BTreeSet<(usize, usize, String)> = BTreeSet::new();
    let mut all_relations: BTreeSet<String> = BTreeSet::new();
    let mut all_kinds: BTreeSet<String> = BTreeSet::new();
    let mut truncated = 0usize;
    let mut queue: VecDeque<(usize, Value)> = VecDeque::from([(0, entity.clone())]);
    while let Some((from, current)) = queue.pop_front() {
        let depth = nodes[from].depth;
        for (relation, target) in view::relations(&current) {
            let label = canonical_relation(&relation).to_owned();
            all_relations.insert(label.clone());
            all_kinds.insert(target.kind.to_lowercase());
            if !params.relations.is_empty() && !params.relations.contains(&label) {
                continue;
            }
            if !params.kinds.is_empty() && !params.kinds.contains(&target.kind.to_lowercase()) {
                continue;
            }
            let key = target.canonical();
            let to = match position.get(&key) {
                Some(&to) => to,
                None => {
                    if depth + 1 > params.depth {
                        continue;
                    }
                    if nodes.len() >= MAX_NODES {
                        truncated += 1;
                        continue;
                    }
                    let body: Option<Value> = ui.app.readable_entity(identity, &key);
                    let title = body.as_ref().map(view::title_of).unwrap_or(&target.name).to_owned();
                    nodes.push(Node { entity_ref: target.clone(), title, depth: depth + 1 });
                    let to = nodes.len() - 1;
                    position.insert(key, to);
                    if let Some(body) = body {
                        if depth + 1 < params.depth {
                            queue.push_back((to, body));
                        }
                    }
                    to
                }
            };
            if from != to {
                let (a, b) = if from < to { (from, to) } else { (to, from) };
                if !edges.iter().any(|(x, y, _)| *x == a && *y == b) {
                    edges.insert((a, b, label));
                }
            }
        }
    }

    // Columns by distance; rows in discovery order.
    let columns = params.depth + 1;
    let mut rows_per_column = vec![0usize; columns];
    let mut placed: Vec<(usize, usize)> = Vec::with_capacity(nodes.len());
    for node in &nodes {
        let column = node.depth.min(columns - 1);
        placed.push((column, rows_per_column[column]));
        rows_per_column[column] += 1;
    }
    let tallest = rows_per_column.iter().copied().max().unwrap_or(1).max(1);
    let height = MARGIN * 2 + tallest * (NODE_HEIGHT + ROW_GAP);
    let width = MARGIN * 2 + columns * NODE_WIDTH + (columns - 1) * COLUMN_GAP;
    let point = |node: usize| -> (usize, usize) {
        let (column, row) = placed[node];
        let rows = rows_per_column[column];
        let offset = (height - rows * (NODE_HEIGHT + ROW_GAP)) / 2;
        (MARGIN + column * (NODE_WIDTH + COLUMN_GAP), offset + row * (NODE_HEIGHT + ROW_GAP))
    };
    let base = center.href();
    let title = if controls {
        format!("Relations of {}", center.display(None))
    } else {
        format!("System diagram of {}", center.display(None))
    };
    html! {
        section.card.wide.graph aria-labelledby="graph-heading" {
            h2 #graph-heading { (title) }
            @if controls {
            form.graph-controls method="get" action={ (base) "/graph" } aria-label="Graph filters" {
                label { "Depth"
                    select name="depth" {
                        @for depth in 1..=3 { option value=(depth) selected[depth == params.depth] { (depth) } }
                    }
                }
                fieldset {
                    legend { "Relations" }
                    @for relation in &all_relations {
                        label.choice { input type="checkbox" name="relation" value=(relation) checked[params.relations.contains(relation)]; " " (relation) }
                    }
                }
                fieldset {
                    legend { "Kinds" }
                    @for kind in &all_kinds {
                        label.choice { input type="checkbox" name="kind" value=(kind) checked[params.kinds.contains(kind)]; " " (kind) }
                    }
                }
                button type="submit" { "Apply" }
            }
            }
            svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="graph-title"
                viewBox={ "0 0 " (width) " " (height) } width=(width) height=(height) {
                title #graph-title { (title) ": " (nodes.len()) " entities, " (edges.len()) " relations" }
                @for (from, to, label) in &edges {
                    @let (x1, y1) = point(*from);
                    @let (x2, y2) = point(*to);
                    @let (start_x, end_x) = if x1 <= x2 { (x1 + NODE_WIDTH, x2) } else { (x1, x2 + NODE_WIDTH) };
                    @let (start_y, end_y) = (y1 + NODE_HEIGHT / 2, y2 + NODE_HEIGHT / 2);
                    @let middle = (start_x + end_x) / 2;
                    path.edge d={ "M" (start_x) " " (start_y) " C" (middle) " " (start_y) " " (middle) " " (end_y) " " (end_x) " " (end_y) } {}
                    text.edge-label x=(middle) y=((start_y + end_y) / 2 - 3) text-anchor="middle" { (label) }
                }
                @for (number, node) in nodes.iter().enumerate() {
                    @let (x, y) = point(number);
                    g class={ "node" @if number == 0 { " center" } } {
                        a href=(node.entity_ref.href()) {
                            rect x=(x) y=(y) width=(NODE_WIDTH) height=(NODE_HEIGHT) rx="6" {}
                            text x=(x + 10) y=(y + 22) {
                                (node.entity_ref.kind.to_lowercase()) ": " (shorten(&node.title, 24))
                            }
                        }
                    }
                }
            }
            @if truncated > 0 { p { (truncated) " more related entities are not drawn; narrow the filters or the depth." } }
            @if controls {
                h3 { "Entities in the graph" }
                ul.inline { @for node in &nodes { li { a href=(node.entity_ref.href()) { (node.entity_ref.display(None)) } } } }
            }
        }
    }
}

fn shorten(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(limit - 1).collect();
    short.push('…');
    short
}
