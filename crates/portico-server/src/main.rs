//! `portico`: the one binary. Parses the command line, loads app-config, sets up tracing, builds
//! the `App` and serves it; the work itself lives in the library crates.
//!
//! This is the only crate that reads environment variables or configuration files.

mod config;
mod demo;
mod serve;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// mimalloc instead of glibc's allocator: ingestion allocates and frees many short-lived JSON
// trees on several threads, and glibc's per-thread arenas kept that memory resident long after
// (RSS roughly 1.5x higher at 10k entities in `portico-bench run`). mimalloc returns it.
// Built with `no_thp`: on kernels with transparent huge pages in `madvise` mode, mimalloc would
// otherwise back its arenas with 2 MB pages, which a freed range cannot give back (about 25 MB
// more resident at 10k entities).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// Memory freed on one thread from blocks another thread allocated goes back to the OS only when
// the owning thread next works in the allocator. After a large ingest, the index is rebuilt
// (repacked) and the old one freed while the runtime's workers sleep, so about 25 MB stayed
// resident at 10k entities until requests came. When idle work has freed much memory, the
// engine bumps this epoch; each worker then collects its heap once, as it next parks.
static RELEASE_EPOCH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Gives the calling thread's freed memory back, and asks every runtime worker to do the same
/// (`EngineOptions::release_memory`, called on the thread that repacked the index).
pub(crate) fn release_freed_memory() {
    collect_heap();
    trim_c_heap();
    RELEASE_EPOCH.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // Wake the workers, so that each parks again soon.
    for _ in 0..4 {
        tokio::spawn(async {});
    }
}

/// Runs as a runtime worker parks: collects once per epoch.
fn collect_when_asked() {
    thread_local! {
        static SEEN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    let epoch = RELEASE_EPOCH.load(std::sync::atomic::Ordering::Relaxed);
    if SEEN.with(|seen| seen.replace(epoch)) != epoch {
        collect_heap();
    }
}

#[allow(unsafe_code)]
fn collect_heap() {
    // SAFETY: `mi_collect` takes no pointers and may run on any thread at any time; it frees
    // the calling thread's empty pages and returns unused memory to the OS.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// SQLite allocates through the C library's `malloc`, not mimalloc. A large ingestion leaves
/// freed pages (page caches, statement journals, big prepared statements) in glibc's arenas,
/// about 13 MB at any catalog size; trimming gives them back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim_c_heap() {
    extern "C" {
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: glibc's `malloc_trim` takes no pointers and is thread-safe; it only releases
    // memory that is already free.
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_c_heap() {}

#[derive(Debug, Parser)]
#[command(name = "portico", version, about = "A Backstage-compatible developer portal in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the portal: the catalog API and its processing engine.
    Serve(ConfigArgs),
    /// Validate catalog descriptor files (files or directories) as the server would.
    Validate {
        /// Files or directories; directories are searched for *.yaml and *.yml descriptors.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Apply (or with --down, revert) database migrations, then exit.
    Migrate {
        #[command(flatten)]
        config: ConfigArgs,
        /// Revert every migration instead.
        #[arg(long)]
        down: bool,
    },
}

#[derive(Debug, clap::Args)]
struct ConfigArgs {
    /// An app-config file; repeat to layer several (later wins). Without it, app-config.yaml and
    /// app-config.local.yaml in the working directory are loaded, or the built-in demo.
    #[arg(long = "config", short = 'c')]
    configs: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    // Blocking-pool threads (file reads, index parsing) end one second after their last task
    // instead of ten: the allocator releases a thread's pages when it ends, so after the index
    // is loaded or a large ingest is parsed, the memory of those temporaries goes back at once.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_keep_alive(std::time::Duration::from_secs(1))
        .on_thread_park(collect_when_asked)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("portico: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(&args.configs).await.map(|()| ExitCode::SUCCESS),
            Command::Validate { paths } => validate::run(&paths).await,
            Command::Migrate { config, down } => {
                serve::migrate(&config.configs, down).await.map(|()| ExitCode::SUCCESS)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("portico: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PORTICO_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let json = std::env::var("PORTICO_LOG_FORMAT").is_ok_and(|format| format == "json");
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The process environment, for config substitution and `APP_CONFIG_*` overrides.
fn environment() -> BTreeMap<String, String> {
    std::env::vars().collect()
}
