//! `portico validate`: the server's validation, offline, with file, line and field for every
//! problem. Exit code 1 when any file has an error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use portico_app::processing::{Processor, ProcessorOptions};
use portico_app::reader::Reader;
use portico_app::rules::Rules;
use portico_catalog::descriptor::parse_descriptor;
use portico_catalog::location_ref::LocationRef;
use portico_catalog::validate::check_envelope;

pub(crate) async fn run(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    for path in paths {
        collect(path, true, &mut files);
    }
    // No URL is ever read by the validator: placeholders pointing at URLs are reported.
    let processor = Processor::new(
        Reader::new(Vec::new()),
        ProcessorOptions { rules: Rules::backstage_default(), allowed_location_types: vec!["url".into()] },
    );
    let mut problems = 0usize;
    let mut entities = 0usize;
    for (file, explicit) in &files {
        let shown = file.display();
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(error) => {
                println_problem(&format!("{shown}: cannot read the file: {error}"));
                problems += 1;
                continue;
            }
        };
        let (documents, syntax_errors) = parse_descriptor(&text);
        if !explicit && !looks_like_descriptor(&documents) {
            continue;
        }
        for error in &syntax_errors {
            println_problem(&format!(
                "{shown}:{}:{}: YAML error: {}",
                error.line, error.column, error.message
            ));
            problems += 1;
        }
        let absolute = std::path::absolute(file).unwrap_or_else(|_| file.clone());
        let location = LocationRef { kind: "file".into(), target: absolute.display().to_string() };
        for document in documents {
            entities += 1;
            let mut entity = document.value.clone();
            let envelope = check_envelope(&entity);
            if !envelope.is_empty() {
                for problem in envelope {
                    report(
                        &shown.to_string(),
                        document.line_of(&problem.field),
                        &problem.field,
                        &problem.message,
                    );
                    problems += 1;
                }
                continue;
            }
            let mut errors = Vec::new();
            processor.resolve_placeholders(&mut entity, &location, &mut errors).await;
            for error in &errors {
                report(&shown.to_string(), document.line, "", &error.message);
                problems += 1;
            }
            for problem in portico_app::validate_offline(&mut entity) {
                report(
                    &shown.to_string(),
                    document.line_of(&problem.field),
                    &problem.field,
                    &problem.message,
                );
                problems += 1;
            }
        }
    }
    let summary = format!("{} files, {} entities, {} problems", files.len(), entities, problems);
    println_problem(&summary);
    Ok(if problems == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn report(file: &str, line: usize, field: &str, message: &str) {
    if field.is_empty() {
        println_problem(&format!("{file}:{line}: {message}"));
    } else {
        println_problem(&format!("{file}:{line}: {field}: {message}"));
    }
}

#[allow(clippy::print_stdout)]
fn println_problem(line: &str) {
    println!("{line}");
}

/// Files named on the command line are always validated; files found in directories only when
/// they hold something shaped like a catalog entity (so OpenAPI documents are skipped).
fn collect(path: &Path, explicit: bool, files: &mut Vec<(PathBuf, bool)>) {
    if path.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else { return };
        let mut entries: Vec<PathBuf> = entries.filter_map(Result::ok).map(|entry| entry.path()).collect();
        entries.sort();
        for entry in entries {
            let name = entry.file_name().and_then(|name| name.to_str()).unwrap_or("");
            if name.starts_with('.') || name == "node_modules" || name == "target" {
                continue;
            }
            if entry.is_dir() || name.ends_with(".yaml") || name.ends_with(".yml") {
                collect(&entry, false, files);
            }
        }
    } else {
        files.push((path.to_path_buf(), explicit));
    }
}

fn looks_like_descriptor(documents: &[portico_catalog::descriptor::Document]) -> bool {
    documents
        .iter()
        .any(|document| document.value.get("apiVersion").is_some() && document.value.get("kind").is_some())
}
