//! Backstage `app-config.yaml` loading: layering, `${VAR}` substitution, `$env`/`$file`/`$include`
//! directives and `APP_CONFIG_*` overrides (reference auth-permissions-config.md §D).
//!
//! The crate knows nothing about the portal: it turns files plus an environment into one merged
//! `serde_json::Value`. The typed view of that tree lives in `portico-server`.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    pub message: String,
}

/// Loads and merges `files` in order (later wins), then applies `APP_CONFIG_*` overrides from `env`.
pub fn load(files: &[PathBuf], env: &BTreeMap<String, String>) -> Result<Value, ConfigError> {
    let _ = (files, env);
    unimplemented!()
}

/// The files Backstage loads without `--config`: `app-config.yaml` and `app-config.local.yaml`
/// in `dir`, those that exist, in that order.
pub fn default_files(dir: &Path) -> Vec<PathBuf> {
    let _ = dir;
    unimplemented!()
}
