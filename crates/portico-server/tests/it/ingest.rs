//! Ingestion: locations, errors, conflicts, orphans, refresh, rules, placeholders, crashes.

use serde_json::{json, Value};

use crate::support::{catalog_with, free_port, Database, FileServer, Server, Workspace};

crate::on_both_databases! {
    bad_edits_keep_the_last_good_version_and_report_errors => super::bad_edits_keep_the_last_good_version_and_report_errors;
    removed_entities_are_orphaned_then_deleted_and_conflicts_keep_the_first_owner => super::removed_entities_are_orphaned_then_deleted_and_conflicts_keep_the_first_owner;
    url_locations_register_only_from_allowed_hosts => super::url_locations_register_only_from_allowed_hosts;
    a_killed_server_restarts_with_a_consistent_catalog => super::a_killed_server_restarts_with_a_consistent_catalog;
    new_entities_shown_before_their_write_are_what_the_database_then_holds => super::new_entities_shown_before_their_write_are_what_the_database_then_holds;
}

fn component(name: &str, description: &str) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n  description: {description}\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n"
    )
}

/// One file of `count` components named `service-0000`…, owned by `team-a`.
fn bulk_components(count: usize) -> String {
    (0..count).map(|index| format!("{}---\n", component(&format!("service-{index:04}"), "bulk"))).collect()
}

fn status_messages(entity: &Value) -> String {
    entity["status"]["items"].to_string()
}

fn bad_edits_keep_the_last_good_version_and_report_errors(database: &Database) {
    let workspace = Workspace::new();
    workspace.write("catalog/a.yaml", &component("alpha", "first"));
    let port = free_port();
    workspace.config_on(database, port, &catalog_with("./catalog/a.yaml"));
    let server = Server::start(workspace.path(), port, &[]);
    server.wait_entity("component", "alpha");

    // An invalid edit: the entity stays visible as it was, with the problem in status.items.
    workspace.write(
        "catalog/a.yaml",
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: alpha\n  tags: [Not_Valid]\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n",
    );
    let (status, _) = server.post("/api/catalog/refresh", &json!({ "entityRef": "component:default/alpha" }));
    assert_eq!(status, 200);
    let entity = server.wait_for("the processing error to show", |server| {
        let (_, entity) = server.get("/api/catalog/entities/by-name/component/default/alpha");
        entity.get("status").is_some().then_some(entity)
    });
    assert_eq!(entity["metadata"]["description"], "first");
    let messages = status_messages(&entity);
    assert!(messages.contains("backstage.io/catalog-processing"), "{messages}");
    assert!(messages.contains("InputError"), "{messages}");
    assert!(messages.contains("tags"), "{messages}");

    // Broken YAML: the file's Location reports the syntax error; the entity stays.
    workspace.write("catalog/a.yaml", "apiVersion: [unclosed\n");
    server.post("/api/catalog/refresh", &json!({ "entityRef": "component:default/alpha" }));
    let location_ref = server.wait_for("the YAML error on the location", |server| {
        let (_, list) = server.get("/api/catalog/entities?filter=kind=location");
        list.as_array()?.iter().find(|entity| status_messages(entity).contains("YAML")).cloned()
    });
    assert!(status_messages(&location_ref).contains("a.yaml"));
    let (status, _) = server.get("/api/catalog/entities/by-name/component/default/alpha");
    assert_eq!(status, 200, "a failing parent never orphans or deletes its children");

    // Fixed again: visible with the new content, no status.
    workspace.write("catalog/a.yaml", &component("alpha", "second"));
    server.post("/api/catalog/refresh", &json!({ "entityRef": "component:default/alpha" }));
    server.wait_for("the fixed entity", |server| {
        let (_, entity) = server.get("/api/catalog/entities/by-name/component/default/alpha");
        (entity["metadata"]["description"] == "second" && entity.get("status").is_none()).then_some(())
    });
}

fn removed_entities_are_orphaned_then_deleted_and_conflicts_keep_the_first_owner(database: &Database) {
    let workspace = Workspace::new();
    workspace
        .write("catalog/one.yaml", &format!("{}---\n{}", component("kept", "x"), component("dropped", "x")));
    workspace.write("catalog/two.yaml", &component("kept", "from two"));
    let port = free_port();
    let catalog = "catalog:\n  orphanStrategy: keep\n  locations:\n    - type: file\n      target: ./catalog/one.yaml\n    - type: file\n      target: ./catalog/two.yaml\n";
    workspace.config_on(database, port, catalog);
    let server = Server::start(workspace.path(), port, &[]);
    server.wait_entity("component", "dropped");
    server.settle();

    // Same ref from two files: the first one processed owns it; the other is ignored.
    let (_, kept) = server.get("/api/catalog/entities/by-name/component/default/kept");
    let owner_file =
        kept["metadata"]["annotations"]["backstage.io/managed-by-location"].as_str().unwrap_or("").to_owned();
    assert!(owner_file.ends_with("one.yaml") || owner_file.ends_with("two.yaml"));
    let (_, all) = server.get("/api/catalog/entities?filter=kind=component");
    assert_eq!(all.as_array().map(Vec::len), Some(2), "one entity per ref: {all}");

    // Dropping an entity from its file makes it an orphan (kept, marked, with orphanStrategy keep).
    workspace.write("catalog/one.yaml", &component("kept", "x"));
    server.post("/api/catalog/refresh", &json!({ "entityRef": "component:default/kept" }));
    let dropped = server.wait_for("the orphan mark", |server| {
        let (_, entity) = server.get("/api/catalog/entities/by-name/component/default/dropped");
        (entity["metadata"]["annotations"]["backstage.io/orphan"] == "true").then_some(entity)
    });
    let (_, orphans) =
        server.get("/api/catalog/entities?filter=metadata.annotations.backstage.io/orphan=true");
    assert_eq!(orphans.as_array().map(Vec::len), Some(1));

    // An orphan cannot be refreshed, and deleting it by uid removes it for good.
    let (status, _) =
        server.post("/api/catalog/refresh", &json!({ "entityRef": "component:default/dropped" }));
    assert_eq!(status, 404);
    let uid = dropped["metadata"]["uid"].as_str().expect("uid");
    assert_eq!(server.delete(&format!("/api/catalog/entities/by-uid/{uid}")), 204);
    let (status, _) = server.get("/api/catalog/entities/by-name/component/default/dropped");
    assert_eq!(status, 404);
}

fn url_locations_register_only_from_allowed_hosts(database: &Database) {
    let workspace = Workspace::new();
    let files = tempfile::tempdir().expect("dir");
    std::fs::write(
        files.path().join("catalog-info.yaml"),
        format!(
            "{}---\napiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: remote-api\nspec:\n  type: openapi\n  lifecycle: production\n  owner: team-a\n  definition:\n    $text: ./openapi.yaml\n",
            component("remote", "served over http")
        ),
    )
    .expect("write");
    std::fs::write(files.path().join("openapi.yaml"), "openapi: 3.0.0\ninfo: { title: Remote }\n")
        .expect("write");
    let file_server = FileServer::start(files.path());
    let port = free_port();
    workspace.config_on(
        database,
        port,
        &format!("  reading:\n    allow:\n      - host: 127.0.0.1:{}\ncatalog: {{}}\n", file_server.port),
    );
    let server = Server::start(workspace.path(), port, &[]);
    let target = file_server.url("catalog-info.yaml");

    // Dry run shows what would be registered, stores nothing.
    let (status, dry) =
        server.post("/api/catalog/locations?dryRun=true", &json!({ "type": "url", "target": target }));
    assert_eq!(status, 201, "{dry}");
    assert_eq!(dry["exists"], false);
    let kinds: Vec<&str> =
        dry["entities"].as_array().expect("entities").iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, vec!["Location", "Component", "API"]);

    // Real registration: 201, entities appear with view/source annotations and the $text definition.
    let (status, created) =
        server.post("/api/catalog/locations", &json!({ "type": "url", "target": target }));
    assert_eq!(status, 201, "{created}");
    let id = created["location"]["id"].as_str().expect("id").to_owned();
    assert!(created["location"]["entityRef"]
        .as_str()
        .unwrap_or("")
        .starts_with("location:default/generated-"));
    let api = server.wait_entity("api", "remote-api");
    assert_eq!(api["spec"]["definition"], "openapi: 3.0.0\ninfo: { title: Remote }\n");
    let remote = server.wait_entity("component", "remote");
    assert_eq!(remote["metadata"]["annotations"]["backstage.io/view-url"], target.as_str());
    assert_eq!(
        remote["metadata"]["annotations"]["backstage.io/source-location"],
        format!("url:{}", file_server.url(""))
    );
    let (status, location) = server.get("/api/catalog/locations/by-entity/component/default/remote");
    assert_eq!((status, location["id"].as_str()), (200, Some(id.as_str())));
    let (_, list) = server.get("/api/catalog/locations");
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["data"]["target"], target.as_str());

    // The same location again conflicts.
    let (status, body) = server.post("/api/catalog/locations", &json!({ "type": "url", "target": target }));
    assert_eq!(status, 409);
    assert_eq!(body["error"]["name"], "ConflictError");

    // A host outside backend.reading.allow is never read: the error shows on the Location.
    let (status, _) = server.post(
        "/api/catalog/locations",
        &json!({ "type": "url", "target": "http://127.0.0.2:9/catalog-info.yaml" }),
    );
    assert_eq!(status, 201);
    // Its Location never processes, so it stays invisible (as in Backstage); the log says why.
    server.wait_for("the not-allowed error in the log", |server| {
        server.log_text().contains("127.0.0.2:9/catalog-info.yaml is not allowed").then_some(())
    });

    // Types other than url are refused.
    let (status, body) =
        server.post("/api/catalog/locations", &json!({ "type": "file", "target": "/etc/passwd" }));
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("allowed type"));

    // PUT points the location elsewhere: same id and entity ref, new target processed; what
    // only the old target emitted is orphaned.
    std::fs::write(files.path().join("other.yaml"), component("moved", "from the new target"))
        .expect("write");
    let other = file_server.url("other.yaml");
    let response = server
        .client
        .put(format!("{}/api/catalog/locations/{id}", server.base))
        .json(&json!({ "type": "url", "target": other }))
        .send()
        .expect("PUT");
    assert_eq!(response.status().as_u16(), 200);
    let updated: Value = response.json().expect("json");
    assert_eq!(
        (updated["id"].as_str(), updated["target"].as_str()),
        (Some(id.as_str()), Some(other.as_str()))
    );
    assert_eq!(updated["entityRef"], created["location"]["entityRef"]);
    server.wait_entity("component", "moved");
    server.wait_for("the old entity to be orphaned", |server| {
        let (_, entity) = server.get("/api/catalog/entities/by-name/component/default/remote");
        (entity["metadata"]["annotations"]["backstage.io/orphan"] == "true").then_some(())
    });
    let status = server
        .client
        .put(format!("{}/api/catalog/locations/no-such-id", server.base))
        .json(&json!({ "type": "url", "target": other }))
        .send()
        .expect("PUT")
        .status();
    assert_eq!(status.as_u16(), 404);

    // Deleting the location removes everything it brought in.
    assert_eq!(server.delete(&format!("/api/catalog/locations/{id}")), 204);
    let (status, _) = server.get("/api/catalog/entities/by-name/component/default/moved");
    assert_eq!(status, 404);
    assert_eq!(server.delete(&format!("/api/catalog/locations/{id}")), 404);
}

#[test]
fn default_rules_admit_only_components_apis_and_locations() {
    let workspace = Workspace::new();
    workspace.write(
        "catalog/all.yaml",
        &format!(
            "{}---\napiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: team-a\nspec:\n  type: team\n  children: []\n",
            component("allowed", "x")
        ),
    );
    let port = free_port();
    workspace.config(port, "catalog:\n  locations:\n    - type: file\n      target: ./catalog/all.yaml\n");
    let server = Server::start(workspace.path(), port, &[]);
    // The whole pass of the config Location fails (Backstage semantics), and the log names the
    // entity that broke the rule.
    server.wait_for("the rule violation in the log", |server| {
        let log = server.log_text();
        (log.contains("NotAllowedError") && log.contains("group:default/team-a")).then_some(())
    });
    let (status, _) = server.get("/api/catalog/entities/by-name/group/default/team-a");
    assert_eq!(status, 404);
}

fn a_killed_server_restarts_with_a_consistent_catalog(database: &Database) {
    let workspace = Workspace::new();
    workspace.write("catalog/all.yaml", &bulk_components(2000));
    let port = free_port();
    workspace.config_on(database, port, &catalog_with("./catalog/all.yaml"));
    let mut server = Server::start(workspace.path(), port, &[]);
    // Kill it while ingestion is under way (whatever stage it reached).
    std::thread::sleep(std::time::Duration::from_millis(300));
    let _ = std::process::Command::new("kill").arg("-9").arg(server.child.id().to_string()).status();
    server.kill();

    let server = Server::start(workspace.path(), port, &[]);
    server.wait_for("all 2000 components", |server| {
        let (_, page) = server.get("/api/catalog/entities/by-query?filter=kind=component&limit=0");
        (page["totalItems"] == 2000).then_some(())
    });
    server.settle();
    let (_, list) = server.get("/api/catalog/entities?filter=kind=component&fields=metadata.name,relations");
    let list = list.as_array().expect("list");
    assert_eq!(list.len(), 2000);
    assert!(list.iter().all(|entity| entity["relations"].to_string().contains("group:default/team-a")));
}

/// A catalog where every new entity has peers: groups with parents and members, a system of
/// components that depend on each other and provide and consume APIs.
fn related_catalog(count: usize) -> String {
    let mut text = String::from(
        "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: org\nspec:\n  type: org\n  children: [team-a]\n---\n\
         apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: team-a\nspec:\n  type: team\n  parent: org\n  children: []\n---\n\
         apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata:\n  name: ada\nspec:\n  memberOf: [team-a]\n---\n\
         apiVersion: backstage.io/v1alpha1\nkind: System\nmetadata:\n  name: shop\nspec:\n  owner: team-a\n---\n",
    );
    for index in 0..count {
        let next = (index + 1) % count;
        text.push_str(&format!(
            "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: part-{index}\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n  system: shop\n  dependsOn: [component:part-{next}]\n  providesApis: [api-{index}]\n  consumesApis: [api-{next}]\n---\n\
             apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: api-{index}\nspec:\n  type: openapi\n  lifecycle: production\n  owner: user:ada\n  system: shop\n  definition: 'openapi: 3.0.0'\n---\n"
        ));
    }
    text
}

/// Every entity, keyed by ref, as the server answers it.
fn all_entities(server: &Server) -> std::collections::BTreeMap<String, Value> {
    let (status, list) = server.get("/api/catalog/entities");
    assert_eq!(status, 200);
    let list = list.as_array().expect("list").clone();
    list.into_iter()
        .map(|entity| {
            let field = |value: &Value| value.as_str().unwrap_or_default().to_lowercase();
            let key = format!("{}:{}", field(&entity["kind"]), field(&entity["metadata"]["name"]));
            (key, entity)
        })
        .collect()
}

/// New children are shown from memory before the write that stores them commits; the index
/// then keeps what was shown wherever the stored final entity is the same. A restart that
/// rebuilds the index from the database must serve exactly the same entities, byte for byte.
fn new_entities_shown_before_their_write_are_what_the_database_then_holds(database: &Database) {
    let workspace = Workspace::new();
    workspace.write("catalog/all.yaml", &related_catalog(150));
    let port = free_port();
    workspace.config_on(database, port, &catalog_with("./catalog/all.yaml"));
    let log = ("PORTICO_LOG", "info,portico_app::engine=debug".to_owned());
    let mut server = Server::start_with_env(workspace.path(), port, &[], &[log]);
    // 4 + 150 components + 150 APIs + the Location generated for the config location.
    server.wait_for("all 305 entities", |server| {
        let (_, page) = server.get("/api/catalog/entities/by-query?limit=0");
        (page["totalItems"] == 305).then_some(())
    });
    server.settle();
    let shown = all_entities(&server);
    assert_eq!(shown.len(), 305);
    let log = server.log_text();
    assert!(log.contains("new entities shown ahead of their write"), "{log}");
    // At least some were stored exactly as shown (not built again): that is the path the
    // comparison with a rebuilt index below checks.
    let confirmed = log.lines().filter_map(|line| {
        // The log is coloured: `shown_as_stored`, escape codes, `=`, escape codes, the number.
        let rest = line.split("shown_as_stored").nth(1)?.split('=').nth(1)?;
        let rest = rest.strip_prefix("\u{1b}[0m").unwrap_or(rest);
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<usize>().ok()
    });
    assert!(confirmed.sum::<usize>() > 0, "no entity was stored as shown: {log}");
    let part = &shown["component:part-7"];
    let relations = part["relations"].to_string();
    for expected in
        ["component:default/part-8", "component:default/part-6", "api:default/api-7", "system:default/shop"]
    {
        assert!(relations.contains(expected), "part-7 relates to {expected}: {relations}");
    }
    server.stop();

    // Rebuilt from the database alone.
    let _ = std::fs::remove_file(workspace.path().join("db/portico.index"));
    let server = Server::start(workspace.path(), port, &[]);
    assert!(!server.log_text().contains("read from its snapshot"), "{}", server.log_text());
    let stored = all_entities(&server);
    for (key, entity) in &shown {
        assert_eq!(Some(entity), stored.get(key), "{key} differs between what was shown and what was stored");
    }
    assert_eq!(stored.len(), shown.len());
}

#[test]
fn a_restart_reads_the_saved_index_and_catches_up_with_what_changed_since() {
    let workspace = Workspace::new();
    workspace.write("catalog/all.yaml", &bulk_components(1500));
    workspace.write("catalog/extra.yaml", &component("extra", "first"));
    let port = free_port();
    workspace.config(
        port,
        &format!(
            "{}    - type: file\n      target: ./catalog/extra.yaml\n",
            catalog_with("./catalog/all.yaml")
        ),
    );
    let mut server = Server::start(workspace.path(), port, &[]);
    server.wait_for("all 1501 components", |server| {
        let (_, page) = server.get("/api/catalog/entities/by-query?filter=kind=component&limit=0");
        (page["totalItems"] == 1501).then_some(())
    });
    server.settle();
    let (_, before) = server.get("/api/catalog/entities/by-name/component/default/service-0007");
    let (_, facets_before) = server.get("/api/catalog/entity-facets?facet=spec.type&facet=relations.ownedBy");
    server.stop();
    assert!(workspace.path().join("db/portico.index").exists(), "the index is saved at shutdown");

    let mut server = Server::start(workspace.path(), port, &[]);
    assert!(server.log_text().contains("catalog index read from its snapshot"), "{}", server.log_text());
    let (_, after) = server.get("/api/catalog/entities/by-name/component/default/service-0007");
    assert_eq!(after, before);
    let (_, facets_after) = server.get("/api/catalog/entity-facets?facet=spec.type&facet=relations.ownedBy");
    assert_eq!(facets_after, facets_before);
    let (status, _) = server.get("/api/catalog/entities/by-name/component/default/extra");
    assert_eq!(status, 200);

    // Killed without a chance to save, after a change (an idle server saves at most once a
    // minute): the next start reads the older snapshot and follows the change feed from there.
    workspace.write("catalog/extra.yaml", &component("extra", "second"));
    let (status, _) = server.post("/api/catalog/refresh", &json!({ "entityRef": "component:default/extra" }));
    assert_eq!(status, 200);
    server.wait_for("the changed description", |server| {
        let (_, entity) = server.get("/api/catalog/entities/by-name/component/default/extra");
        (entity["metadata"]["description"] == "second").then_some(())
    });
    server.kill();
    let server = Server::start(workspace.path(), port, &[]);
    assert!(server.log_text().contains("catalog index read from its snapshot"), "{}", server.log_text());
    let (_, entity) = server.get("/api/catalog/entities/by-name/component/default/extra");
    assert_eq!(entity["metadata"]["description"], "second");

    // A damaged snapshot is not used: the index is rebuilt from the database.
    drop(server);
    std::fs::write(workspace.path().join("db/portico.index"), b"PORTICO-INDEX\nnot really").unwrap();
    let server = Server::start(workspace.path(), port, &[]);
    assert!(server.log_text().contains("catalog index snapshot not used"), "{}", server.log_text());
    let (_, page) = server.get("/api/catalog/entities/by-query?filter=kind=component&limit=0");
    assert_eq!(page["totalItems"], 1501);
}

#[test]
fn location_targets_resolve_relatively_with_globs_and_optional_presence() {
    let workspace = Workspace::new();
    workspace.write(
        "catalog/root.yaml",
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: root\nspec:\n  presence: optional\n  targets:\n    - ./parts/*.yaml\n    - ./missing.yaml\n",
    );
    workspace.write("catalog/parts/a.yaml", &component("part-a", "x"));
    workspace.write("catalog/parts/b.yaml", &component("part-b", "x"));
    workspace.write(
        "catalog/strict.yaml",
        "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: strict\nspec:\n  target: ./nowhere.yaml\n",
    );
    let port = free_port();
    workspace.config(
        port,
        "catalog:\n  locations:\n    - type: file\n      target: ./catalog/root.yaml\n    - type: file\n      target: ./catalog/strict.yaml\n",
    );
    let server = Server::start(workspace.path(), port, &[]);
    server.wait_entity("component", "part-a");
    server.wait_entity("component", "part-b");
    // An optional missing target is no error; a required one is reported on its Location.
    let (_, root) = server.get("/api/catalog/entities/by-name/location/default/root");
    assert!(root.get("status").is_none(), "{root}");
    server.wait_for("the missing-file error in the log", |server| {
        server.log_text().contains("nowhere.yaml does not exist").then_some(())
    });
}

#[test]
fn oversized_descriptor_files_are_refused_with_a_clear_error() {
    let workspace = Workspace::new();
    let padding = format!("# {}\n", "x".repeat(1023)).repeat(9 * 1024);
    workspace.write("catalog/huge.yaml", &format!("{}{padding}", component("huge", "x")));
    workspace.write("catalog/small.yaml", &component("small", "x"));
    let port = free_port();
    workspace.config(
        port,
        "catalog:\n  locations:\n    - type: file\n      target: ./catalog/huge.yaml\n    - type: file\n      target: ./catalog/small.yaml\n",
    );
    let server = Server::start(workspace.path(), port, &[]);
    server.wait_entity("component", "small");
    server.wait_for("the size error in the log", |server| {
        server.log_text().contains("is larger than the limit of 8 MiB").then_some(())
    });
    let (status, _) = server.get("/api/catalog/entities/by-name/component/default/huge");
    assert_eq!(status, 404);
}
