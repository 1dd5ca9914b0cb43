//! The benchmark report: JSON-serializable, with a readable text rendering.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Default, Serialize)]
pub(crate) struct Report {
    pub(crate) entities: usize,
    /// Entities per kind in the generated files (Location entities not included).
    pub(crate) kinds: Vec<KindCount>,
    pub(crate) files: usize,
    pub(crate) catalog_megabytes: f64,
    pub(crate) seed: u64,
    pub(crate) database: String,
    pub(crate) portico: String,
    pub(crate) requests: usize,
    pub(crate) clients: usize,
    /// Every request carried a user token (`--auth`).
    pub(crate) authenticated: bool,
    pub(crate) ingest: Ingest,
    pub(crate) memory_after_ingest: Option<Memory>,
    /// The same, `SETTLE` later: what an idle server holds once finished work is released.
    pub(crate) memory_after_ingest_settled: Option<Memory>,
    /// The same, `IDLE_WORK` after ingest: once the index is saved and repacked.
    pub(crate) memory_after_ingest_idle: Option<Memory>,
    pub(crate) memory_after_load: Option<Memory>,
    pub(crate) checks: Vec<Check>,
    pub(crate) latency: Vec<Latency>,
    pub(crate) throughput: Vec<Throughput>,
    pub(crate) page_weight: Vec<PageWeight>,
    pub(crate) idle_cpu: Vec<IdleCpu>,
    pub(crate) change_visibility: Option<ChangeVisibility>,
    pub(crate) restart: Option<Restart>,
    pub(crate) final_shutdown: Option<Shutdown>,
    /// Anything that went wrong on the server side, verbatim.
    pub(crate) problems: Vec<String>,
    pub(crate) server_log: String,
}

/// Bytes on the wire for the first load of a UI page (HTML plus the linked CSS and JS).
#[derive(Debug, Serialize)]
pub(crate) struct PageWeight {
    pub(crate) page: String,
    pub(crate) path: String,
    pub(crate) html_bytes: usize,
    pub(crate) asset_bytes: usize,
    pub(crate) encoding: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct KindCount {
    pub(crate) kind: String,
    pub(crate) count: usize,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Ingest {
    pub(crate) complete: bool,
    /// Process start until the HTTP API first answered.
    pub(crate) first_answer_ms: Option<f64>,
    /// Until `totalItems` was first > 0.
    pub(crate) first_entity_ms: Option<f64>,
    /// Until every generated entity was visible (total minus Location entities == N).
    pub(crate) all_entities_ms: Option<f64>,
    /// Until relations were complete too: this is the ingest time.
    pub(crate) relations_complete_ms: Option<f64>,
    pub(crate) location_entities: u64,
    pub(crate) last_total_items: u64,
    /// Entities (excluding locations) per second, over `relations_complete_ms`.
    pub(crate) entities_per_second: Option<f64>,
    /// Server CPU time (user + system) spent by the time ingest completed.
    pub(crate) server_cpu_seconds: Option<f64>,
    /// What was still missing, when not complete.
    pub(crate) missing: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Memory {
    pub(crate) rss_mb: f64,
    pub(crate) hwm_mb: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Check {
    pub(crate) name: String,
    pub(crate) ok: bool,
    pub(crate) detail: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct Latency {
    pub(crate) query: String,
    pub(crate) request: String,
    pub(crate) requests: usize,
    pub(crate) errors: usize,
    pub(crate) first_error: Option<String>,
    pub(crate) p50_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) mean_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) mean_response_kb: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Throughput {
    pub(crate) query: String,
    pub(crate) clients: usize,
    pub(crate) seconds: f64,
    pub(crate) requests: usize,
    pub(crate) errors: usize,
    pub(crate) first_error: Option<String>,
    pub(crate) requests_per_second: f64,
    pub(crate) megabytes_per_second: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct IdleCpu {
    pub(crate) when: String,
    pub(crate) seconds: f64,
    pub(crate) cpu_seconds: f64,
    pub(crate) cpu_percent: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct ChangeVisibility {
    pub(crate) entity_ref: String,
    pub(crate) file: String,
    pub(crate) refresh_status: u16,
    pub(crate) refresh_request_ms: f64,
    /// From the refresh request until by-name showed the new description.
    pub(crate) visible_after_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Shutdown {
    pub(crate) signal_to_exit_ms: f64,
    pub(crate) exit_status: String,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Restart {
    pub(crate) shutdown: Option<Shutdown>,
    /// Process start until readiness answered 200.
    pub(crate) ready_ms: Option<f64>,
    /// Process start until by-name returned the sample component with relations.
    pub(crate) by_name_ms: Option<f64>,
    pub(crate) entities_after_restart: Option<u64>,
    pub(crate) edit_survived: Option<bool>,
    pub(crate) memory: Option<Memory>,
    pub(crate) memory_settled: Option<Memory>,
    pub(crate) server_cpu_seconds_to_ready: Option<f64>,
}

pub(crate) fn ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

fn opt_ms(value: Option<f64>) -> String {
    match value {
        Some(ms) if ms >= 10_000.0 => format!("{:.1} s", ms / 1000.0),
        Some(ms) => format!("{ms:.0} ms"),
        None => "n/a".into(),
    }
}

fn memory(value: Option<Memory>) -> String {
    value.map_or_else(|| "n/a".into(), |m| format!("VmRSS {:.1} MB, VmHWM {:.1} MB", m.rss_mb, m.hwm_mb))
}

impl Report {
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let kinds = self
            .kinds
            .iter()
            .map(|kind| format!("{} {}", kind.count, kind.kind))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(out, "portico-bench report");
        if self.authenticated {
            let _ = writeln!(out, "every request carried a guest user token (--auth)");
        }
        let _ = writeln!(out, "====================");
        let _ = writeln!(
            out,
            "catalog:   {} entities ({kinds}) in {} files, {:.1} MB of YAML, seed {}",
            self.entities, self.files, self.catalog_megabytes, self.seed
        );
        let _ = writeln!(out, "server:    {} ({})", self.portico, self.database);
        let _ = writeln!(out, "server log: {}", self.server_log);
        let _ = writeln!(out);
        let ingest = &self.ingest;
        let _ = writeln!(
            out,
            "ingest:    {} — {} entities + {} Location entities",
            if ingest.complete { "complete" } else { "INCOMPLETE" },
            self.entities,
            ingest.location_entities
        );
        let _ = writeln!(out, "  HTTP answering         {}", opt_ms(ingest.first_answer_ms));
        let _ = writeln!(out, "  first entity visible   {}", opt_ms(ingest.first_entity_ms));
        let _ = writeln!(out, "  all entities visible   {}", opt_ms(ingest.all_entities_ms));
        let _ = writeln!(
            out,
            "  relations complete     {}   <- ingest time{}",
            opt_ms(ingest.relations_complete_ms),
            ingest.entities_per_second.map_or(String::new(), |rate| format!(" ({rate:.0} entities/s)"))
        );
        if let Some(cpu) = ingest.server_cpu_seconds {
            let _ = writeln!(out, "  server CPU during ingest {cpu:.1} s");
        }
        for missing in &ingest.missing {
            let _ = writeln!(out, "  missing: {missing}");
        }
        let _ = writeln!(out, "memory after ingest: {}", memory(self.memory_after_ingest));
        let _ = writeln!(out, "  2 s later (settled): {}", memory(self.memory_after_ingest_settled));
        let _ = writeln!(out, "  15 s later (after idle work): {}", memory(self.memory_after_ingest_idle));
        let _ = writeln!(out, "memory after load:   {}", memory(self.memory_after_load));
        let _ = writeln!(out);
        let failed: Vec<&Check> = self.checks.iter().filter(|check| !check.ok).collect();
        let _ = writeln!(out, "checks: {} of {} passed", self.checks.len() - failed.len(), self.checks.len());
        for check in &self.checks {
            let _ = writeln!(
                out,
                "  [{}] {}: {}",
                if check.ok { "ok" } else { "FAIL" },
                check.name,
                check.detail
            );
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "latency, one keep-alive client on a single-threaded runtime, sequential:");
        let _ = writeln!(
            out,
            "  {:<14} {:>6} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}",
            "query", "n", "err", "p50 ms", "p90 ms", "p99 ms", "mean ms", "max ms", "resp KB"
        );
        for row in &self.latency {
            let _ = writeln!(
                out,
                "  {:<14} {:>6} {:>5} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>10.1}",
                row.query,
                row.requests,
                row.errors,
                row.p50_ms,
                row.p90_ms,
                row.p99_ms,
                row.mean_ms,
                row.max_ms,
                row.mean_response_kb
            );
        }
        if let Some(row) = self.latency.iter().find(|row| row.query == "all-components") {
            let _ = writeln!(
                out,
                "  all-components: {:.2} MB per response, p50 {:.0} ms ({:.0} MB/s)",
                row.mean_response_kb / 1024.0,
                row.p50_ms,
                if row.p50_ms > 0.0 { row.mean_response_kb / 1024.0 / (row.p50_ms / 1000.0) } else { 0.0 }
            );
        }
        for row in &self.latency {
            let _ = writeln!(out, "  {:<14} = {}", row.query, row.request);
            if let Some(error) = &row.first_error {
                let _ = writeln!(out, "  {:<14}   first error: {error}", "");
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "throughput, {} concurrent clients:", self.clients);
        let _ = writeln!(
            out,
            "  {:<14} {:>8} {:>5} {:>8} {:>10} {:>8}",
            "query", "requests", "err", "secs", "req/s", "MB/s"
        );
        for row in &self.throughput {
            let _ = writeln!(
                out,
                "  {:<14} {:>8} {:>5} {:>8.2} {:>10.1} {:>8.1}",
                row.query,
                row.requests,
                row.errors,
                row.seconds,
                row.requests_per_second,
                row.megabytes_per_second
            );
            if let Some(error) = &row.first_error {
                let _ = writeln!(out, "  {:<14}   first error: {error}", "");
            }
        }
        let _ = writeln!(out);
        if !self.page_weight.is_empty() {
            let _ = writeln!(out, "UI first load, bytes on the wire (HTML compressed + CSS and JS):");
            for row in &self.page_weight {
                let _ = writeln!(
                    out,
                    "  {:<16} {:>7.1} KB = {:>6.1} KB HTML ({}) + {:>5.1} KB assets   {}",
                    row.page,
                    (row.html_bytes + row.asset_bytes) as f64 / 1024.0,
                    row.html_bytes as f64 / 1024.0,
                    row.encoding,
                    row.asset_bytes as f64 / 1024.0,
                    row.path
                );
            }
            let _ = writeln!(out);
        }
        for idle in &self.idle_cpu {
            let _ = writeln!(
                out,
                "idle CPU {}: {:.3} CPU-s over {:.1} s ({:.2}% of one core)",
                idle.when, idle.cpu_seconds, idle.seconds, idle.cpu_percent
            );
        }
        if let Some(change) = &self.change_visibility {
            let _ = writeln!(
                out,
                "change visibility: {} edited in {}; POST /refresh -> {} in {:.1} ms; new description visible after {}",
                change.entity_ref,
                change.file,
                change.refresh_status,
                change.refresh_request_ms,
                opt_ms(change.visible_after_ms)
            );
        }
        if let Some(restart) = &self.restart {
            if let Some(shutdown) = &restart.shutdown {
                let _ = writeln!(
                    out,
                    "restart: SIGTERM -> exit in {:.0} ms ({})",
                    shutdown.signal_to_exit_ms, shutdown.exit_status
                );
            }
            let _ = writeln!(
                out,
                "  restart to readiness 200  {}; to by-name with relations {}",
                opt_ms(restart.ready_ms),
                opt_ms(restart.by_name_ms)
            );
            let _ = writeln!(
                out,
                "  entities after restart: {}; edited description survived: {}; server CPU to ready: {}",
                restart.entities_after_restart.map_or("n/a".into(), |count| count.to_string()),
                restart.edit_survived.map_or("n/a".into(), |ok| ok.to_string()),
                restart.server_cpu_seconds_to_ready.map_or("n/a".into(), |cpu| format!("{cpu:.2} s"))
            );
            let _ = writeln!(out, "  memory after restart: {}", memory(restart.memory));
            let _ = writeln!(out, "  2 s later (settled): {}", memory(restart.memory_settled));
        }
        if let Some(shutdown) = &self.final_shutdown {
            let _ = writeln!(
                out,
                "final shutdown: SIGTERM -> exit in {:.0} ms ({})",
                shutdown.signal_to_exit_ms, shutdown.exit_status
            );
        }
        if !self.problems.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(out, "PROBLEMS:");
            for problem in &self.problems {
                let _ = writeln!(out, "  - {problem}");
            }
        }
        out
    }
}
