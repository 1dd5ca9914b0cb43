//! Backstage's own `@backstage/catalog-client` (from the npm registry), run by Node against a
//! real Portico: any difference from Backstage's API is a failure here.
//!
//! Skipped with a printed reason where Node or the package cannot be had, unless
//! `PORTICO_TEST_REQUIRE` names `node` (CI does), in which case that fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::api::FIXTURE;
use crate::support::{free_port, FileServer, Server, Workspace};

/// The catalog-client release the reference describes.
const PACKAGE: &str = "@backstage/catalog-client@1.16.2";

#[test]
fn backstage_catalog_client_works_unchanged() {
    let Some(modules) = install_client() else { return };
    let workspace = Workspace::new();
    let files = tempfile::tempdir().expect("dir");
    std::fs::write(
        files.path().join("catalog-info.yaml"),
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: remote\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n",
    )
    .expect("write");
    let file_server = FileServer::start(files.path());
    workspace.write("catalog/all.yaml", FIXTURE);
    let port = free_port();
    workspace.config(
        port,
        &format!(
            "  reading:\n    allow:\n      - host: 127.0.0.1:{}\n{}",
            file_server.port,
            crate::support::catalog_with("./catalog/all.yaml")
        ),
    );
    let server = Server::start(workspace.path(), port, &[]);
    server.wait_entity("api", "billing-api");
    server.settle();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/catalog-client/check.js");
    let output = Command::new("node")
        .arg(&script)
        .arg(&server.base)
        .arg(file_server.url("catalog-info.yaml"))
        .env("NODE_PATH", &modules)
        .output()
        .expect("run node");
    assert!(
        output.status.success(),
        "catalog-client check failed:\n{}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        server.log_text()
    );
}

/// Installs the client once into a cache directory; `None` (skipped) when impossible.
fn install_client() -> Option<PathBuf> {
    crate::support::npm_package(PACKAGE, "@backstage/catalog-client/package.json")
}
