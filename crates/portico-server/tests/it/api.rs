//! The catalog REST API against a small fixture catalog.

use serde_json::{json, Value};

use crate::support::{catalog_with, free_port, Database, Server, Workspace};

pub(crate) const FIXTURE: &str = r#"
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: { name: team-a }
spec: { type: team, children: [] }
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: { name: team-b }
spec: { type: team, children: [] }
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: { name: alice }
spec: { memberOf: [team-a] }
---
apiVersion: backstage.io/v1alpha1
kind: System
metadata: { name: payments }
spec: { owner: team-a }
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: billing
  title: Billing Service
  tags: [java, payments]
spec:
  type: service
  lifecycle: production
  owner: team-a
  system: payments
  providesApis: [billing-api]
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: { name: checkout, tags: [java] }
spec: { type: website, lifecycle: production, owner: team-b, consumesApis: [billing-api], dependsOn: [component:billing] }
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: { name: ledger, tags: [go] }
spec: { type: Service, lifecycle: experimental, owner: team-a }
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata: { name: billing-api }
spec: { type: openapi, lifecycle: production, owner: team-a, definition: "openapi: 3.0.0" }
"#;

/// Starts a server over the fixture and waits until every entity is in.
fn fixture_server(workspace: &Workspace, database: &Database) -> Server {
    workspace.write("catalog/all.yaml", FIXTURE);
    let port = free_port();
    workspace.config_on(database, port, &catalog_with("./catalog/all.yaml"));
    let server = Server::start(workspace.path(), port, &[]);
    server.wait_entity("api", "billing-api");
    server.settle();
    server
}

fn names(items: &Value) -> Vec<String> {
    items
        .as_array()
        .expect("array")
        .iter()
        .map(|item| item["metadata"]["name"].as_str().unwrap_or("").to_owned())
        .collect()
}

crate::on_both_databases! {
    catalog_api_answers_like_backstage => super::catalog_api_answers_like_backstage;
    by_query_pages_with_cursors_both_ways => super::by_query_pages_with_cursors_both_ways;
}

fn catalog_api_answers_like_backstage(database: &Database) {
    let workspace = Workspace::new();
    let server = fixture_server(&workspace, database);

    // by-name is case-insensitive and returns the final entity with relations both ways.
    let (status, billing) = server.get("/api/catalog/entities/by-name/Component/DEFAULT/Billing");
    assert_eq!(status, 200);
    assert_eq!(billing["metadata"]["namespace"], "default");
    assert!(billing["metadata"]["uid"].is_string());
    assert_eq!(billing["metadata"]["etag"].as_str().map(str::len), Some(40));
    let relations = billing["relations"].as_array().expect("relations");
    let has = |relation: &str, target: &str| {
        relations.iter().any(|r| r["type"] == relation && r["targetRef"] == target)
    };
    assert!(has("ownedBy", "group:default/team-a"));
    assert!(has("partOf", "system:default/payments"));
    assert!(has("providesApi", "api:default/billing-api"));
    assert!(has("dependencyOf", "component:default/checkout"), "reverse relation from checkout");
    assert!(billing.get("status").is_none());
    let (_, team) = server.get("/api/catalog/entities/by-name/group/default/team-a");
    let team_relations = team["relations"].to_string();
    assert!(team_relations.contains("\"ownerOf\""));
    assert!(team_relations.contains("component:default/billing"));
    assert!(team_relations.contains("\"hasMember\""));

    // 404 with Backstage's error body.
    let (status, body) = server.get("/api/catalog/entities/by-name/component/default/missing");
    assert_eq!(status, 404);
    assert_eq!(body["error"]["name"], "NotFoundError");
    assert_eq!(
        body["error"]["message"],
        "No entity named 'missing' found, with kind 'component' in namespace 'default'"
    );
    assert_eq!(body["request"]["method"], "GET");
    assert_eq!(body["response"]["statusCode"], 404);

    // The OpenAPI description lists every route.
    let (status, openapi) = server.get("/api/catalog/openapi.json");
    assert_eq!(status, 200);
    assert_eq!(openapi["openapi"], "3.1.0");
    assert!(openapi["paths"]["/entities/by-query"]["post"].is_object());

    // by-uid.
    let uid = billing["metadata"]["uid"].as_str().expect("uid");
    let (status, by_uid) = server.get(&format!("/api/catalog/entities/by-uid/{uid}"));
    assert_eq!(status, 200);
    assert_eq!(by_uid["metadata"]["name"], "billing");

    // Filters: OR between filter parameters, AND inside one, any-of for repeated keys.
    let (_, list) =
        server.get("/api/catalog/entities?filter=kind=component,spec.type=service&order=asc:metadata.name");
    assert_eq!(names(&list), vec!["billing", "ledger"]);
    let (_, list) =
        server.get("/api/catalog/entities?filter=kind=user&filter=kind=system&order=asc:metadata.name");
    assert_eq!(names(&list), vec!["alice", "payments"]);
    let (_, list) = server.get(
        "/api/catalog/entities?filter=metadata.name=billing,metadata.name=ledger&order=asc:metadata.name",
    );
    assert_eq!(names(&list), vec!["billing", "ledger"]);
    let (_, list) = server.get("/api/catalog/entities?filter=metadata.tags.java&order=asc:metadata.name");
    assert_eq!(names(&list), vec!["billing", "checkout"]);
    let (_, list) = server.get("/api/catalog/entities?filter=relations.ownedby=group:default/team-b");
    assert_eq!(names(&list), vec!["checkout"]);

    let (status, empty) = server.get("/api/catalog/entities?filter=kind=nothing");
    assert_eq!((status, empty), (200, json!([])));

    // Field selection keeps the selected subtrees only.
    let (_, list) = server.get("/api/catalog/entities?filter=kind=api&fields=metadata.name,kind");
    assert_eq!(list, json!([{ "kind": "API", "metadata": { "name": "billing-api" } }]));

    // Invalid input gets 400 with the reason.
    let (status, body) = server.get("/api/catalog/entities?filter==x");
    assert_eq!(status, 400);
    assert_eq!(body["error"]["name"], "InputError");
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("not a valid statement"), "{body}");
    let (status, body) = server.get("/api/catalog/entities?order=up:metadata.name");
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["message"],
        "Invalid order parameter \"up:metadata.name\", expected \"<asc or desc>:<field name>\""
    );
    let (status, _) = server.get("/api/catalog/entities?limit=0");
    assert_eq!(status, 400);
    let (status, _) = server.get("/api/catalog/entities?bogus=1");
    assert_eq!(status, 400);

    // Legacy pagination with a Link header.
    let response = server.get_raw("/api/catalog/entities?filter=kind=component&limit=2");
    let link = response.headers().get("link").and_then(|value| value.to_str().ok()).unwrap_or("").to_owned();
    let first: Value = response.json().expect("json");
    assert_eq!(names(&first), vec!["billing", "checkout"], "default paginated order is by ref");
    assert!(link.starts_with("</entities?") && link.ends_with("rel=\"next\""), "{link}");
    let after = link.split("after=").nth(1).and_then(|rest| rest.split('>').next()).expect("after");
    let (_, second) = server.get(&format!("/api/catalog/entities?filter=kind=component&after={after}"));
    assert_eq!(names(&second), vec!["ledger"]);

    // Facets count original-case values.
    let (status, facets) =
        server.get("/api/catalog/entity-facets?facet=spec.type&facet=metadata.tags&filter=kind=component");
    assert_eq!(status, 200);
    assert_eq!(
        facets["facets"]["spec.type"],
        json!([{"value": "Service", "count": 1}, {"value": "service", "count": 1}, {"value": "website", "count": 1}])
    );
    assert_eq!(
        facets["facets"]["metadata.tags"],
        json!([{"value": "go", "count": 1}, {"value": "java", "count": 2}, {"value": "payments", "count": 1}])
    );
    let (status, body) = server.get("/api/catalog/entity-facets");
    assert_eq!((status, body["error"]["message"].clone()), (400, json!("Missing facet parameter")));
    let (status, facets) = server.post(
        "/api/catalog/entity-facets",
        &json!({ "facets": ["kind"], "query": { "kind": { "$in": ["user", "group"] } } }),
    );
    assert_eq!(status, 200);
    assert_eq!(
        facets["facets"]["kind"],
        json!([{"value": "Group", "count": 2}, {"value": "User", "count": 1}])
    );

    // by-refs keeps order and length, null for unknown.
    let (status, body) = server.post(
        "/api/catalog/entities/by-refs",
        &json!({ "entityRefs": ["component:default/ledger", "component:default/nope", "user:default/alice"], "fields": ["metadata.name"] }),
    );
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({ "items": [{ "metadata": { "name": "ledger" } }, null, { "metadata": { "name": "alice" } }] })
    );

    // Ancestry walks up to the config Location entity.
    let (status, ancestry) = server.get("/api/catalog/entities/by-name/component/default/billing/ancestry");
    assert_eq!(status, 200);
    assert_eq!(ancestry["rootEntityRef"], "component:default/billing");
    let items = ancestry["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["entity"]["metadata"]["name"], "billing");
    let parent = items[0]["parentEntityRefs"][0].as_str().expect("parent").to_owned();
    assert!(parent.starts_with("location:default/generated-"), "{parent}");
    assert_eq!(items[1]["parentEntityRefs"], json!([]));
}

fn by_query_pages_with_cursors_both_ways(database: &Database) {
    let workspace = Workspace::new();
    let server = fixture_server(&workspace, database);

    let (status, page) = server
        .get("/api/catalog/entities/by-query?filter=kind=component&orderField=metadata.name,asc&limit=2");
    assert_eq!(status, 200);
    assert_eq!(names(&page["items"]), vec!["billing", "checkout"]);
    assert_eq!(page["totalItems"], 3);
    assert!(page["pageInfo"].get("prevCursor").is_none());
    let next = page["pageInfo"]["nextCursor"].as_str().expect("next cursor").to_owned();

    let (_, page) = server.get(&format!("/api/catalog/entities/by-query?cursor={next}&limit=2"));
    assert_eq!(names(&page["items"]), vec!["ledger"]);
    assert_eq!(page["totalItems"], 3);
    assert!(page["pageInfo"].get("nextCursor").is_none());
    let prev = page["pageInfo"]["prevCursor"].as_str().expect("prev cursor").to_owned();

    let (_, page) = server.get(&format!("/api/catalog/entities/by-query?cursor={prev}&limit=2"));
    assert_eq!(names(&page["items"]), vec!["billing", "checkout"]);

    // Descending order and full-text filtering.
    let (_, page) = server
        .get("/api/catalog/entities/by-query?filter=kind=component&orderField=metadata.name,desc&limit=10");
    assert_eq!(names(&page["items"]), vec!["ledger", "checkout", "billing"]);
    let (_, page) = server.get(
        "/api/catalog/entities/by-query?fullTextFilterTerm=BILL&fullTextFilterFields=metadata.name,metadata.title&orderField=metadata.name,asc",
    );
    assert_eq!(names(&page["items"]), vec!["billing", "billing-api"]);

    // The POST form, with a predicate; its cursor carries the query for catalog-client.
    let (status, page) = server.post(
        "/api/catalog/entities/by-query",
        &json!({
            "query": { "$all": [{ "kind": "component" }, { "$not": { "spec.lifecycle": "experimental" } }] },
            "orderBy": [{ "field": "metadata.name", "order": "asc" }],
            "limit": 1
        }),
    );
    assert_eq!(status, 200, "{page}");
    assert_eq!(names(&page["items"]), vec!["billing"]);
    assert_eq!(page["totalItems"], 2);
    let next = page["pageInfo"]["nextCursor"].as_str().expect("next").to_owned();
    let decoded = String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &next).expect("base64"),
    )
    .expect("utf8");
    assert!(decoded.contains("\"query\""), "{decoded}");
    let (_, page) = server.post("/api/catalog/entities/by-query", &json!({ "cursor": next }));
    assert_eq!(names(&page["items"]), vec!["checkout"]);

    // Errors.
    let (status, body) = server.get("/api/catalog/entities/by-query?orderField=metadata.name,up");
    assert_eq!(
        (status, body["error"]["message"].clone()),
        (400, json!("Invalid order field order, must be asc or desc"))
    );
    let (status, body) = server.get("/api/catalog/entities/by-query?cursor=notbase64!!");
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap_or("").starts_with("Malformed cursor"), "{body}");
    let (status, body) = server.post("/api/catalog/entities/by-query", &json!({ "cursor": "" }));
    assert_eq!((status, body["error"]["message"].clone()), (400, json!("Cursor cannot be empty")));
    let (status, body) =
        server.post("/api/catalog/entities/by-query", &json!({ "query": { "kind": { "$regex": "x" } } }));
    assert_eq!(status, 400, "{body}");
}

#[test]
fn validate_entity_reports_every_problem() {
    let workspace = Workspace::new();
    let server = fixture_server(&workspace, &Database::Sqlite);
    let valid = json!({
        "entity": { "apiVersion": "backstage.io/v1alpha1", "kind": "Component",
                    "metadata": { "name": "ok" }, "spec": { "type": "service", "lifecycle": "x", "owner": "me" } },
        "location": "url:https://example.com/catalog-info.yaml"
    });
    let (status, _) = server.post("/api/catalog/validate-entity", &valid);
    assert_eq!(status, 200);
    let invalid = json!({
        "entity": { "apiVersion": "backstage.io/v1alpha1", "kind": "Component",
                    "metadata": { "name": "not ok!", "tags": ["Bad_Tag"] }, "spec": { "type": "service" } },
        "location": "url:https://example.com/catalog-info.yaml"
    });
    let (status, body) = server.post("/api/catalog/validate-entity", &invalid);
    assert_eq!(status, 400);
    let errors = body["errors"].as_array().expect("errors");
    let text = body.to_string();
    assert!(!errors.is_empty());
    assert!(text.contains("metadata.name"), "{text}");
    assert!(text.contains("tags.0"), "{text}");
}
