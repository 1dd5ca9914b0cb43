//! `portico-bench`: generates a realistic Backstage catalog and benchmarks the real
//! `portico serve` on it over loopback HTTP.
//!
//! - `portico-bench generate --entities N --out DIR [--seed S] [--postgres URL]` writes the
//!   catalog (deterministic for a seed) and an `app-config.yaml` that serves it.
//! - `portico-bench run --entities N [--postgres URL] [--portico BIN] [--requests R] [--json FILE]`
//!   generates into a temp dir, starts `portico serve`, and measures ingest time, latency,
//!   throughput, memory, idle CPU, change visibility and restart time.
//! - `portico-bench scaffolder [--files N] [--tasks T] [--samples S]` measures `fetch:template`
//!   and, against a real `portico serve`, task creation to first event and T tasks at once.

mod generate;
mod report;
mod rng;
mod run;
mod scaffolder;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "portico-bench", version, about = "Catalog generator and benchmark for portico")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Write a deterministic, realistic catalog of N entities plus app-config.yaml into DIR.
    Generate {
        /// Entities to generate (Location entities not counted); at least 20.
        #[arg(long)]
        entities: usize,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Seed; the same seed and N give byte-identical catalog files.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Use this PostgreSQL connection string instead of SQLite in DIR/db.
        #[arg(long)]
        postgres: Option<String>,
        /// backend.listen port written into app-config.yaml.
        #[arg(long, default_value_t = 7007)]
        port: u16,
    },
    /// Generate a catalog into a temp dir, start `portico serve` on it and measure it.
    Run {
        /// Entities to generate (Location entities not counted); at least 20.
        #[arg(long)]
        entities: usize,
        /// PostgreSQL connection string. THE DATABASE IS EMPTIED first (portico migrate --down).
        #[arg(long)]
        postgres: Option<String>,
        /// The portico binary (default: `portico` next to this binary, else on PATH).
        #[arg(long)]
        portico: Option<PathBuf>,
        /// Requests per latency measurement (the streaming list uses R/100, 3..=50).
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        /// Concurrent clients for the throughput measurements.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Seconds per throughput measurement.
        #[arg(long, default_value_t = 3.0)]
        throughput_seconds: f64,
        /// Seconds per idle-CPU measurement.
        #[arg(long, default_value_t = 5.0)]
        idle_seconds: f64,
        /// Give up waiting for ingest after this many seconds (then measure anyway).
        #[arg(long, default_value_t = 900)]
        ingest_timeout: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Also write the report as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Generate into this directory instead of a temp dir (kept afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Keep the temp dir (catalog, database, server log).
        #[arg(long)]
        keep: bool,
        /// Configure sign-in (guest provider) and send a user token with every request, to
        /// measure the cost of authentication. UI pages are skipped (no UI sign-in yet).
        #[arg(long)]
        auth: bool,
    },
    /// Software templates: fetch:template speed, task creation to first event, tasks at once.
    Scaffolder {
        /// The portico binary (default: `portico` next to this binary, else on PATH).
        #[arg(long)]
        portico: Option<PathBuf>,
        /// Files in the fetch:template skeleton.
        #[arg(long, default_value_t = 1000)]
        files: usize,
        /// Tasks started at once.
        #[arg(long, default_value_t = 20)]
        tasks: usize,
        /// Tasks timed from creation to first event.
        #[arg(long, default_value_t = 50)]
        samples: usize,
    },
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("portico-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    match cli.command {
        Cmd::Generate { entities, out, seed, postgres, port } => {
            let generated = generate::generate(&out, &generate::Options { entities, seed, postgres, port })?;
            let kinds = generated
                .kinds
                .iter()
                .map(|(kind, count)| format!("{count} {kind}"))
                .collect::<Vec<_>>()
                .join(", ");
            writeln!(
                stdout,
                "wrote {} entities ({kinds}) in {} files ({:.1} MB) to {}\nroot location: {}\nconfig: {}\nserve with: portico serve --config {}",
                generated.entities,
                generated.files.len() + 1,
                generated.bytes as f64 / 1_048_576.0,
                generated.dir.display(),
                generated.root.display(),
                generated.config.display(),
                generated.config.display()
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Run {
            entities,
            postgres,
            portico,
            requests,
            clients,
            throughput_seconds,
            idle_seconds,
            ingest_timeout,
            seed,
            json,
            dir,
            keep,
            auth,
        } => {
            let options = run::RunOptions {
                entities,
                seed,
                postgres,
                portico,
                requests: requests.max(1),
                clients: clients.clamp(1, 256),
                throughput_seconds: throughput_seconds.clamp(0.1, 600.0),
                idle_seconds: idle_seconds.clamp(0.1, 600.0),
                ingest_timeout: Duration::from_secs(ingest_timeout),
                dir,
                keep,
                auth,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let report = runtime.block_on(run::run(options))?;
            stdout.write_all(report.render().as_bytes())?;
            if let Some(path) = json {
                let text = serde_json::to_string_pretty(&report)?;
                std::fs::write(&path, text + "\n")?;
                writeln!(stdout, "\nJSON report: {}", path.display())?;
            }
            Ok(if report.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) })
        }
        Cmd::Scaffolder { portico, files, tasks, samples } => {
            let options = scaffolder::Options {
                portico,
                files: files.max(1),
                tasks: tasks.max(1),
                samples: samples.max(1),
            };
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let report = runtime.block_on(scaffolder::run(options))?;
            stdout.write_all(report.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
