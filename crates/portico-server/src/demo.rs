//! The built-in demo catalog, embedded in the binary so `portico serve` has content on a fresh
//! machine with no files at all.

use std::path::{Path, PathBuf};

use anyhow::Context;

macro_rules! demo_files {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../demo/", $path)))),*]
    };
}

/// Every demo file, relative to the demo directory.
const FILES: &[(&str, &str)] = demo_files![
    "app-config.yaml",
    "all.yaml",
    "org.yaml",
    "domains.yaml",
    "systems.yaml",
    "components.yaml",
    "apis.yaml",
    "resources.yaml",
    "definitions/orders-api.openapi.yaml",
    "definitions/warehouse-api.swagger.yaml",
    "definitions/shipment-events.asyncapi.yaml",
    "definitions/tracking.graphql",
    "definitions/route_planner.proto",
    "templates/service/template.yaml",
    "templates/service/skeleton/catalog-info.yaml",
    "templates/service/skeleton/README.md",
    "templates/service/skeleton/src/server.py",
];

/// Writes the demo files under `dir` (replacing older copies, so upgrades bring new demo data)
/// and returns the path of the demo `app-config.yaml`.
pub(crate) fn install(dir: &Path) -> anyhow::Result<PathBuf> {
    for (relative, contents) in FILES {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let unchanged = std::fs::read_to_string(&path).is_ok_and(|existing| existing == *contents);
        if !unchanged {
            std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(dir.join("app-config.yaml"))
}
