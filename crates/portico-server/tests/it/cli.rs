//! The command line: demo mode, `validate`, `migrate`.

use std::process::Command;

use crate::support::{free_port, Server, Workspace};

#[test]
fn serve_without_config_runs_the_demo_catalog() {
    let workspace = Workspace::new();
    let server = Server::start_demo(workspace.path());
    let service = server.wait_entity("component", "order-service");
    assert!(service["relations"].to_string().contains("\"providesApi\""));
    let (_, facets) = server.get("/api/catalog/entity-facets?facet=kind");
    let kinds = facets["facets"]["kind"].to_string();
    for kind in ["API", "Component", "Domain", "Group", "Location", "Resource", "System", "User"] {
        assert!(kinds.contains(&format!("\"{kind}\"")), "{kind} missing in {kinds}");
    }
    let api = server.wait_entity("api", "orders-api");
    assert!(api["spec"]["definition"].as_str().unwrap_or("").contains("openapi"), "$text resolved");
    assert!(workspace.path().join("data/portico.sqlite").exists(), "SQLite under ./data");
}

#[test]
fn validate_reports_file_line_and_field_and_exits_1() {
    let workspace = Workspace::new();
    let good = workspace.write(
        "good/catalog-info.yaml",
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: fine\nspec:\n  type: service\n  lifecycle: production\n  owner: me\n",
    );
    let output =
        Command::new(env!("CARGO_BIN_EXE_portico")).arg("validate").arg(&good).output().expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));

    workspace.write(
        "bad/catalog-info.yaml",
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: fine\nspec:\n  type: service\n  lifecycle: production\n  owner: me\n---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: Not Valid\n  tags:\n    - Bad_Tag\nspec:\n  type: service\n  lifecycle: production\n  owner: me\n  dependsOn: [no-kind]\n",
    );
    workspace.write("bad/openapi.yaml", "openapi: 3.0.0\n");
    let output = Command::new(env!("CARGO_BIN_EXE_portico"))
        .arg("validate")
        .arg(workspace.path().join("bad"))
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("catalog-info.yaml:13: metadata.name:"), "{stdout}");
    assert!(stdout.contains("catalog-info.yaml:15: metadata.tags.0:"), "{stdout}");
    assert!(!stdout.contains("openapi.yaml"), "non-descriptor YAML in a directory is skipped: {stdout}");
}

#[test]
fn migrate_applies_and_reverts() {
    let workspace = Workspace::new();
    let config = workspace.config(free_port(), "");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_portico"))
            .arg("migrate")
            .args(args)
            .arg("--config")
            .arg(&config)
            .current_dir(workspace.path())
            .output()
            .expect("run")
    };
    let up = run(&[]);
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    assert!(String::from_utf8_lossy(&up.stderr).contains("8 migrations"));
    let down = run(&["--down"]);
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    let again = run(&[]);
    assert!(again.status.success());
}
