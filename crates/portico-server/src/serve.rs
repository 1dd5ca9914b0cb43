//! `portico serve` and `portico migrate`: configuration, wiring, the listener and shutdown.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use portico_app::processing::{Processor, ProcessorOptions};
use portico_app::reader::Reader;
use portico_app::{App, AppOptions};
use portico_store::{DatabaseConfig, Store};
use tokio_util::sync::CancellationToken;

use crate::config::{demo_dir, Config};

/// Where the configuration came from, for the startup message.
#[derive(Debug)]
enum Source {
    Files(Vec<PathBuf>),
    Demo,
}

/// Loads app-config as Backstage does: `--config` files, else `app-config.yaml` and
/// `app-config.local.yaml` from the working directory, else the built-in demo.
fn load_config(configs: &[PathBuf]) -> anyhow::Result<(Config, Source)> {
    let cwd = std::env::current_dir().context("reading the working directory")?;
    let env = crate::environment();
    let (files, source) = if !configs.is_empty() {
        (configs.to_vec(), Source::Files(configs.to_vec()))
    } else {
        let defaults = portico_config::default_files(&cwd);
        if defaults.is_empty() {
            let demo_config = crate::demo::install(&demo_dir(&cwd))?;
            (vec![demo_config], Source::Demo)
        } else {
            (defaults.clone(), Source::Files(defaults))
        }
    };
    let mut merged = portico_config::load(&files, &env).map_err(|error| anyhow::anyhow!("{error:#}"))?;
    if matches!(source, Source::Demo) {
        point_demo_locations(&mut merged, &demo_dir(&cwd));
    }
    let config = Config::from_value(&merged, &cwd).context("invalid configuration")?;
    Ok((config, source))
}

/// The demo config names its files relative to the demo directory; Backstage resolves file
/// targets against the working directory, so rewrite them to absolute paths.
fn point_demo_locations(config: &mut serde_json::Value, demo: &Path) {
    let Some(locations) = config.pointer_mut("/catalog/locations").and_then(serde_json::Value::as_array_mut)
    else {
        return;
    };
    for location in locations {
        if let Some(serde_json::Value::String(target)) = location.get_mut("target") {
            if let Some(relative) = target.strip_prefix("./") {
                *target = demo.join(relative).display().to_string();
            }
        }
    }
}

async fn open_store(database: &DatabaseConfig) -> anyhow::Result<Store> {
    let store = connect(database).await?;
    store.migrate().await.context("applying database migrations")?;
    Ok(store)
}

/// Connects without migrating, creating the SQLite file's directory when needed.
async fn connect(database: &DatabaseConfig) -> anyhow::Result<Store> {
    if let DatabaseConfig::Sqlite { path: Some(path) } = database {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
    }
    Store::connect(database).await.context("connecting to the database")
}

pub(crate) async fn migrate(configs: &[PathBuf], down: bool) -> anyhow::Result<()> {
    let (config, _) = load_config(configs)?;
    let store = connect(&config.database).await?;
    if down {
        store.migrate_down().await.context("reverting migrations")?;
        eprintln!("portico: reverted every migration");
    } else {
        store.migrate().await.context("applying migrations")?;
        let applied = store.applied_migrations().await?;
        eprintln!("portico: database is up to date ({} migrations: {})", applied.len(), applied.join(", "));
    }
    Ok(())
}

/// The key task secrets are sealed with: `scaffolder.secretsKey`, else a key file beside the
/// SQLite database (created once, readable by its owner only), else a key for this run only
/// (secrets of tasks then do not survive a restart, nor reach another replica).
fn secrets_key(config: &Config) -> anyhow::Result<portico_app::scaffolder::SecretsKey> {
    if let Some(key) = config.secrets_key {
        return Ok(key);
    }
    let DatabaseConfig::Sqlite { path: Some(database) } = &config.database else {
        tracing::warn!(
            "scaffolder.secretsKey is not set: task secrets are sealed with a key for this run only"
        );
        return Ok(config.scaffolder.secrets_key);
    };
    let path = database.with_file_name("scaffolder-secrets.key");
    if let Ok(bytes) = std::fs::read(&path) {
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} is damaged: expected 32 bytes", path.display()))?;
        return Ok(portico_app::scaffolder::SecretsKey(bytes));
    }
    let key = config.scaffolder.secrets_key;
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(&key.0).with_context(|| format!("writing {}", path.display()))?;
    Ok(key)
}

pub(crate) async fn run(configs: &[PathBuf]) -> anyhow::Result<()> {
    let started = Instant::now();
    let (config, source) = load_config(configs)?;
    let store = open_store(&config.database).await?;
    let processor = Processor::new(
        Reader::new(config.reading_allow.clone()),
        ProcessorOptions { rules: config.rules.clone(), allowed_location_types: vec!["url".into()] },
    );
    let options = AppOptions {
        policy: config.policy.clone().map(|(policy, text)| (Arc::new(policy), text)),
        engine: config.engine.clone(),
        config_locations: config.locations.clone(),
        allowed_location_types: vec!["url".into()],
        readonly: config.readonly,
        refresh_on_conflict: config.refresh_on_conflict,
        // Next to the SQLite file; PostgreSQL replicas rebuild (their restarts are fast at the
        // sizes one machine serves, and a local file would be one more thing to keep per replica).
        index_snapshot: match &config.database {
            DatabaseConfig::Sqlite { path: Some(path) } => Some(path.with_extension("index")),
            _ => None,
        },
        scaffolder: portico_app::scaffolder::ScaffolderOptions {
            secrets_key: secrets_key(&config)?,
            ..config.scaffolder.clone()
        },
    };
    let app =
        App::new(store.clone(), processor, options).await.map_err(|error| anyhow::anyhow!("{error}"))?;
    let auth = portico_auth::Auth::start(store.clone(), config.auth.clone())
        .await
        .map_err(|error| anyhow::anyhow!("starting authentication: {error}"))?;
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {} (set backend.listen to use another address)", config.listen))?;
    let address = listener.local_addr().context("reading the bound address")?;
    let engine = app.start(shutdown.clone()).await.map_err(|error| anyhow::anyhow!("{error}"))?;

    announce(&config, &source, address, started, auth.required());
    tokio::spawn(report_progress(app.clone(), shutdown.clone()));
    tokio::spawn(wait_for_signal(shutdown.clone()));

    tokio::task::spawn_blocking({
        let (app, ui, auth) = (app.clone(), config.ui.clone(), auth.clone());
        move || portico_web::warm_ui(app, ui, auth)
    });
    let router = portico_web::router(app.clone(), config.ui.clone(), auth);
    // Streamed responses (task event streams) write small pieces: without TCP_NODELAY each
    // one after the first waits for the client's delayed acknowledgement, about 40 ms.
    use axum::serve::ListenerExt as _;
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "setting TCP_NODELAY failed");
        }
    });
    axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await
        .context("serving HTTP")?;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), engine).await;
    app.save_index().await;
    store.close().await;
    eprintln!("portico: stopped");
    Ok(())
}

fn announce(
    config: &Config,
    source: &Source,
    address: std::net::SocketAddr,
    started: Instant,
    auth_required: bool,
) {
    let database = match &config.database {
        DatabaseConfig::Sqlite { path: Some(path) } => format!("SQLite {}", path.display()),
        DatabaseConfig::Sqlite { path: None } => "SQLite in memory (lost on exit)".into(),
        DatabaseConfig::Postgres { .. } => "PostgreSQL".into(),
    };
    let source = match source {
        Source::Demo => "the built-in demo configuration and catalog (no app-config.yaml here)".to_owned(),
        Source::Files(files) => {
            files.iter().map(|file| file.display().to_string()).collect::<Vec<_>>().join(", ")
        }
    };
    eprintln!("portico: listening on http://{address} (ready in {} ms)", started.elapsed().as_millis());
    eprintln!("portico: configuration from {source}");
    eprintln!("portico: database {database}; base URL {}", config.base_url);
    if auth_required {
        let mut ways = Vec::new();
        if let Some(guest) = &config.auth.guest {
            ways.push(format!("guest sign-in as {}", guest.user_entity_ref));
        }
        if !config.auth.static_tokens.is_empty() {
            ways.push(format!("{} static external-access token(s)", config.auth.static_tokens.len()));
        }
        eprintln!("portico: every API call needs credentials ({})", ways.join(", "));
    } else {
        eprintln!(
            "portico: WARNING: no sign-in is configured, so every API call is anonymous and allowed. \
             Anyone who can reach http://{address} can read and change the catalog."
        );
    }
}

/// Prints a progress line while ingestion is busy, once per second.
async fn report_progress(app: Arc<App>, shutdown: CancellationToken) {
    let stats = &app.engine().stats;
    let mut last = (0, 0);
    let mut idle_reported = true;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let now = (stats.processed.load(Ordering::Relaxed), stats.stitched.load(Ordering::Relaxed));
        let failed = stats.failed.load(Ordering::Relaxed);
        if now != last {
            let entities = app.catalog().read().len();
            eprintln!(
                "portico: ingest: {} processed (+{}/s), {} failed, {} stitched, {} entities in the catalog",
                now.0,
                now.0 - last.0,
                failed,
                now.1,
                entities
            );
            last = now;
            idle_reported = false;
        } else if stats.busy.load(Ordering::Relaxed) {
            eprintln!("portico: ingest: working ({} processed so far)", now.0);
            idle_reported = false;
        } else if !idle_reported {
            eprintln!("portico: ingest: idle, {} entities in the catalog", app.catalog().read().len());
            idle_reported = true;
        }
    }
}

async fn wait_for_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                shutdown.cancel();
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    eprintln!("portico: shutting down");
    shutdown.cancel();
}
