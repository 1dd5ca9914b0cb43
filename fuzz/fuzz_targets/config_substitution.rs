//! `portico_config::load` on a config file holding the fuzz input.
//!
//! The crate's pure `${VAR}` substitution function is private (`pub(crate)`), so the input
//! goes through the public entry point: it is written to `app-config.yaml` in a scratch
//! directory (and to `app-config.json` too when it starts like a JSON object) and loaded over
//! a fixed base layer with a small fixed environment. The scratch directory also holds files
//! for `$file` and `$include` to find, including one that includes the input back (a cycle).
//!
//! Properties: `load` never panics and, when it succeeds, returns an object;
//! `parse_duration` and `get` never panic on anything in the result.
//!
//! Note: `$file`/`$include` read whatever path the input names (relative to the scratch
//! directory), like the real loader does.
#![no_main]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

struct Scratch {
    base: PathBuf,
    yaml: PathBuf,
    json: PathBuf,
    env: BTreeMap<String, String>,
}

static SCRATCH: LazyLock<Scratch> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("portico-fuzz-config-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("create the scratch directory");
    let files = [
        ("base.yaml", "app:\n  title: Base\n  baseUrl: http://localhost:3000\nbackend:\n  listen:\n    port: 7007\n  cache:\n    defaultTtl: { minutes: 5 }\n"),
        ("inc.yaml", "a:\n  b: [1, 2, ${PORT}]\n  c: ${MISSING:-fallback}\n  d: { $env: SECRET }\n"),
        ("inc.json", "{\"x\": {\"y\": \"${SECRET}\", \"z\": [true, null, 1.5]}}"),
        ("secret.txt", "hunter2\n"),
        ("cycle.yaml", "back:\n  $include: app-config.yaml\n"),
        ("self.yaml", "me:\n  $include: self.yaml\n"),
    ];
    for (name, text) in files {
        fs::write(dir.join(name), text).expect("write a scratch file");
    }
    let env = [
        ("SECRET", "s3cr3t"),
        ("EMPTY", ""),
        ("PORT", "7007"),
        ("NESTED", "${PORT}"),
        ("INCLUDE", "inc.yaml#a"),
        ("APP_CONFIG_backend_listen_host", "0.0.0.0"),
        ("APP_CONFIG_app_limits", "{\"size\": 3}"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    Scratch {
        base: dir.join("base.yaml"),
        yaml: dir.join("app-config.yaml"),
        json: dir.join("app-config.json"),
        env,
    }
});

const PATHS: [&str; 5] = ["", "app", "app.title", "backend.listen.port", "a..b"];

fn load(scratch: &Scratch, file: &Path) {
    let Ok(config) = portico_config::load(&[scratch.base.clone(), file.to_path_buf()], &scratch.env) else {
        return;
    };
    assert!(config.is_object(), "load returned a non-object: {config}");
    for path in PATHS {
        let _ = portico_config::get(&config, path);
    }
    // Every node is a candidate duration (`{ minutes: 5 }`, `PT5M`, `5m`, ...).
    let mut pending = vec![&config];
    let mut budget = 10_000;
    while let Some(value) = pending.pop() {
        let _ = portico_config::parse_duration(value);
        budget -= 1;
        if budget == 0 {
            break;
        }
        match value {
            Value::Array(items) => pending.extend(items),
            Value::Object(map) => pending.extend(map.values()),
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let scratch = &*SCRATCH;
    fs::write(&scratch.yaml, data).expect("write the input");
    load(scratch, &scratch.yaml);
    if data.trim_ascii_start().starts_with(b"{") {
        fs::write(&scratch.json, data).expect("write the input");
        load(scratch, &scratch.json);
    }
});
