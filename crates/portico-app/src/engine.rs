//! The processing engine: claims due entities, processes them, writes results, stitches, and
//! keeps the index current. Several replicas may run it against one PostgreSQL database: claims
//! take row leases, so no entity is processed by two replicas at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use portico_store::{ClaimedEntity, DeferredEntity, FinalWrite, Outcome, ProcessOutcome, RelationRow, Store};
use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;
use crate::processing::{Processed, Processor};
use crate::stitcher::stitch;

/// How the engine runs; comes from `catalog.*` configuration.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Base refresh interval; every claim schedules the next pass at a random point in
    /// `[interval, 1.5 × interval]`. `None` disables periodic processing (`processingInterval: false`).
    pub processing_interval: Option<Duration>,
    /// Delete orphans (Backstage's default since catalog-backend 3.0) or keep them.
    pub delete_orphans: bool,
    /// How often orphans are collected (Backstage: 30 s).
    pub orphan_interval: Duration,
    /// How often to look for work and for other replicas' changes when nothing woke us.
    pub poll_interval: Duration,
    /// Called after idle work freed much memory (a repack), on the thread that did it: the
    /// binary asks its allocator to give freed pages back (see `portico-server`'s `main`).
    pub release_memory: Option<fn()>,
}

impl Default for EngineOptions {
    fn default() -> EngineOptions {
        EngineOptions {
            processing_interval: Some(Duration::from_secs(100)),
            delete_orphans: true,
            orphan_interval: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            release_memory: None,
        }
    }
}

/// Entities claimed per round. Large enough that the per-transaction cost is amortized, small
/// enough that a round finishes well within a second.
const BATCH: usize = 2_000;
/// A claimed entity is leased for this long, and the lease is renewed every `LEASE_RENEWAL`
/// while its batch is in flight; work claimed by a replica that died is picked up by another
/// within one lease.
const LEASE: Duration = Duration::from_secs(15);
const LEASE_RENEWAL: Duration = Duration::from_secs(5);
/// The longest stitching waits while a processing backlog is being worked through.
const STITCH_DELAY: Duration = Duration::from_secs(5);
/// Processing tasks in flight at once (most are CPU-only; Location reads wait on IO).
const IN_FLIGHT: usize = 64;

/// Counters for progress reporting.
#[derive(Debug, Default)]
pub struct EngineStats {
    /// True while a processing round runs (a large Location pass can take seconds).
    pub busy: std::sync::atomic::AtomicBool,
    pub processed: AtomicU64,
    pub stitched: AtomicU64,
    pub failed: AtomicU64,
    pub rounds: AtomicU64,
}

#[derive(Debug)]
pub struct Engine {
    store: Store,
    catalog: Arc<Catalog>,
    processor: Processor,
    options: EngineOptions,
    wake: Notify,
    last_stitch: parking_lot::Mutex<std::time::Instant>,
    pub stats: EngineStats,
}

impl Engine {
    pub fn new(store: Store, catalog: Arc<Catalog>, processor: Processor, options: EngineOptions) -> Engine {
        Engine {
            store,
            catalog,
            processor,
            options,
            wake: Notify::new(),
            last_stitch: parking_lot::Mutex::new(std::time::Instant::now()),
            stats: EngineStats::default(),
        }
    }

    /// Asks the loop to look for work now (after a registration or refresh request).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs until cancelled.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let orphans = {
            let engine = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { engine.collect_orphans(shutdown).await })
        };
        loop {
            let worked = match self.round().await {
                Ok(worked) => worked,
                Err(error) => {
                    tracing::error!(%error, "catalog processing round failed; retrying");
                    false
                }
            };
            if let Err(error) = self.catalog.sync(&self.store).await {
                tracing::warn!(%error, "following catalog changes failed");
            }
            if worked {
                if shutdown.is_cancelled() {
                    break;
                }
                continue;
            }
            // Idle: rebuild the sort orders and facets pages asked for before the last change,
            // save and repack the index, off the request path.
            let catalog = self.catalog.clone();
            let release = self.options.release_memory;
            let _ = tokio::task::spawn_blocking(move || {
                // On this thread first: it built the new index and freed much of the old one.
                if let (true, Some(release)) = (catalog.idle(), release) {
                    release();
                }
            })
            .await;
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.options.poll_interval) => {}
            }
        }
        orphans.abort();
    }

    /// Processes everything that is due and stitches the results, until nothing is left.
    /// Used by the loop and by `portico` commands that want a settled catalog.
    pub async fn run_until_idle(&self) -> Result<(), portico_store::Error> {
        while self.round().await? {}
        self.catalog.sync(&self.store).await
    }

    /// One round: claim, process, write, stitch. Evaluates to whether there was any work.
    pub async fn round(&self) -> Result<bool, portico_store::Error> {
        self.stats.rounds.fetch_add(1, Ordering::Relaxed);
        self.stats.busy.store(true, Ordering::Relaxed);
        let result = self.round_inner().await;
        self.stats.busy.store(false, Ordering::Relaxed);
        result
    }

    async fn round_inner(&self) -> Result<bool, portico_store::Error> {
        let interval = self.options.processing_interval.unwrap_or(Duration::from_secs(100 * 365 * 24 * 3600));
        let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX / 4);
        let lease_ms = i64::try_from(LEASE.as_millis()).unwrap_or(15_000);
        let started = std::time::Instant::now();
        let claimed = self.store.claim_due(BATCH, interval_ms, lease_ms).await?;
        let claim_ms = started.elapsed().as_millis();
        let processed_any = !claimed.is_empty();
        let claimed_count = claimed.len();
        if processed_any {
            let ids: Vec<String> = claimed.iter().map(|item| item.entity_id.clone()).collect();
            let outcomes = {
                let processing = self.process_batch(claimed);
                tokio::pin!(processing);
                loop {
                    tokio::select! {
                        outcomes = &mut processing => break outcomes,
                        () = tokio::time::sleep(LEASE_RENEWAL) => {
                            if let Err(error) = self.store.renew_leases(&ids, lease_ms).await {
                                tracing::warn!(%error, "renewing processing leases failed");
                            }
                        }
                    }
                }
            };
            let process_ms = started.elapsed().as_millis() - claim_ms;
            let summary = self.store.write_results(&outcomes).await?;
            tracing::debug!(
                claimed = claimed_count,
                claim_ms,
                process_ms,
                write_ms = started.elapsed().as_millis() - claim_ms - process_ms,
                "processing round"
            );
            for conflict in &summary.conflicts {
                tracing::warn!(
                    entity.r#ref = %conflict.entity_ref,
                    existing_location = conflict.existing_location_key.as_deref().unwrap_or(""),
                    new_location = conflict.new_location_key.as_deref().unwrap_or(""),
                    "detected conflicting entity: the entity already exists from another location and stays there"
                );
            }
        }
        // While a backlog is being worked through (a full batch was claimed), stitching waits
        // up to `STITCH_DELAY`: an entity is then stitched once after its peers' relations are
        // in, instead of once per peer. A lone change is stitched at once.
        let backlog = claimed_count == BATCH;
        let stitch_due = !backlog || self.last_stitch.lock().elapsed() >= STITCH_DELAY;
        let stitched_any = if stitch_due {
            let stitched = self.stitch_pending().await?;
            *self.last_stitch.lock() = std::time::Instant::now();
            stitched
        } else {
            false
        };
        Ok(processed_any || stitched_any)
    }

    async fn process_batch(&self, claimed: Vec<ClaimedEntity>) -> Vec<ProcessOutcome> {
        let mut outcomes = Vec::with_capacity(claimed.len());
        let mut pending = claimed.into_iter();
        let mut tasks: JoinSet<ProcessOutcome> = JoinSet::new();
        loop {
            while tasks.len() < IN_FLIGHT {
                let Some(item) = pending.next() else { break };
                let processor = self.processor.clone();
                tasks.spawn(async move { process_one(&processor, item).await });
            }
            match tasks.join_next().await {
                Some(Ok(outcome)) => outcomes.push(outcome),
                Some(Err(error)) => tracing::error!(%error, "a processing task panicked"),
                None => break,
            }
        }
        for outcome in &outcomes {
            match &outcome.outcome {
                Outcome::Failed { errors, .. } => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    // Only changed results get here, so each distinct failure is logged once.
                    // An entity that never processed successfully is invisible in the API, so
                    // the log is where its problem shows (Backstage publishes it as an event).
                    tracing::warn!(entity.r#ref = %outcome.entity_ref, errors = %errors, "processing failed");
                }
                _ => {
                    self.stats.processed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        outcomes
    }

    /// Stitches everything queued. Evaluates to whether anything was queued.
    ///
    /// Rounds overlap: while one round's results go into the index (CPU work), the next round
    /// reads, builds and writes (mostly the database's work). Index updates still happen one
    /// after another, in the order of their sequence numbers.
    async fn stitch_pending(&self) -> Result<bool, portico_store::Error> {
        let mut any = false;
        let mut indexing: Option<tokio::task::JoinHandle<Result<(), portico_store::Error>>> = None;
        let result = loop {
            let inputs = match self.store.stitch_inputs(BATCH).await {
                Ok(inputs) => inputs,
                Err(error) => break Err(error),
            };
            if inputs.is_empty() {
                break Ok(any);
            }
            any = true;
            let ticket = inputs[0].ticket.clone();
            let started = std::time::Instant::now();
            let count = inputs.len();
            let (writes, gone, done, built) =
                tokio::task::spawn_blocking(move || build_finals(inputs)).await.unwrap_or_default();
            let stitched = match self.store.write_stitched(&ticket, &writes, &gone, &done).await {
                Ok(stitched) => stitched,
                Err(error) => break Err(error),
            };
            self.stats.stitched.fetch_add(writes.len() as u64, Ordering::Relaxed);
            let built = if stitched.skipped.is_empty() {
                built
            } else {
                let skipped: std::collections::HashSet<&String> = stitched.skipped.iter().collect();
                built.into_iter().filter(|(entity_ref, _, _)| !skipped.contains(entity_ref)).collect()
            };
            let write_ms = started.elapsed().as_millis();
            if let Err(error) = self.finish_indexing(indexing.take()).await {
                break Err(error);
            }
            let (catalog, store) = (self.catalog.clone(), self.store.clone());
            indexing =
                Some(tokio::spawn(
                    async move { catalog.apply_written(&store, stitched.seq, built, &gone).await },
                ));
            tracing::debug!(count, write_ms, "stitching round written");
        };
        let indexed = self.finish_indexing(indexing).await;
        result.and_then(|any| indexed.map(|()| any))
    }

    /// Waits for a round's index update, then trains the body dictionary when it is time.
    async fn finish_indexing(
        &self,
        indexing: Option<tokio::task::JoinHandle<Result<(), portico_store::Error>>>,
    ) -> Result<(), portico_store::Error> {
        let Some(indexing) = indexing else { return Ok(()) };
        let started = std::time::Instant::now();
        match indexing.await {
            Ok(result) => result?,
            Err(error) => tracing::error!(%error, "updating the catalog index stopped"),
        }
        if self.catalog.needs_dictionary() {
            let catalog = self.catalog.clone();
            let _ = tokio::task::spawn_blocking(move || catalog.compress_bodies()).await;
        }
        tracing::debug!(wait_ms = started.elapsed().as_millis(), "stitching round indexed");
        Ok(())
    }

    async fn collect_orphans(&self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.options.orphan_interval) => {}
            }
            if !self.options.delete_orphans {
                continue;
            }
            match self.store.delete_orphans().await {
                Ok(deleted) if !deleted.is_empty() => {
                    tracing::info!(count = deleted.len(), "deleted orphaned entities");
                    self.wake();
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "deleting orphaned entities failed"),
            }
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

type Built = (Vec<FinalWrite>, Vec<String>, Vec<String>, Vec<(String, Value, String)>);

fn build_finals(inputs: Vec<portico_store::StitchInput>) -> Built {
    let mut writes = Vec::new();
    let mut gone = Vec::new();
    let mut done = Vec::with_capacity(inputs.len());
    let mut built = Vec::new();
    for input in inputs {
        done.push(input.entity_ref.clone());
        let Some(state) = input.state else {
            gone.push(input.entity_ref);
            continue;
        };
        let Some(processed) = &state.processed else { continue };
        let Some(stitched) =
            stitch(&state.entity_id, processed, state.errors.as_deref(), state.has_parents, &state.relations)
        else {
            tracing::error!(entity.r#ref = %input.entity_ref, "stored processed entity is not valid JSON; skipped");
            continue;
        };
        if state.final_hash.as_deref() == Some(stitched.hash.as_str()) {
            continue;
        }
        writes.push(FinalWrite {
            entity_ref: input.entity_ref.clone(),
            entity_id: state.entity_id.clone(),
            final_entity: stitched.text.clone(),
            hash: stitched.hash,
        });
        built.push((input.entity_ref, stitched.entity, stitched.text));
    }
    (writes, gone, done, built)
}

async fn process_one(processor: &Processor, item: ClaimedEntity) -> ProcessOutcome {
    let entity: Value = match serde_json::from_str(&item.unprocessed_entity) {
        Ok(entity) => entity,
        Err(error) => {
            let errors = serde_json::json!([{ "name": "InputError", "message": format!("stored entity is not valid JSON: {error}") }]);
            return ProcessOutcome {
                entity_id: item.entity_id,
                entity_ref: item.entity_ref,
                outcome: Outcome::Failed { result_hash: String::new(), errors: errors.to_string() },
            };
        }
    };
    let processed = processor.process(&entity).await;
    let result_hash = processed.result_hash();
    if item.result_hash.as_deref() == Some(result_hash.as_str()) {
        return ProcessOutcome {
            entity_id: item.entity_id,
            entity_ref: item.entity_ref,
            outcome: Outcome::Unchanged,
        };
    }
    let outcome = outcome_of(processed, result_hash);
    ProcessOutcome { entity_id: item.entity_id, entity_ref: item.entity_ref, outcome }
}

fn outcome_of(processed: Processed, result_hash: String) -> Outcome {
    let Processed { entity, errors, relations, children } = processed;
    match entity {
        Some(entity) if errors.is_empty() => Outcome::Succeeded {
            result_hash,
            processed: entity.to_string(),
            relations: relations
                .into_iter()
                .map(|relation| RelationRow {
                    source: relation.source,
                    kind: relation.kind,
                    target: relation.target,
                })
                .collect(),
            children: children
                .into_iter()
                .map(|child| DeferredEntity {
                    entity_ref: child.entity_ref,
                    hash: child.hash,
                    entity: child.text,
                    location_key: child.location_key,
                })
                .collect(),
        },
        _ => {
            let errors: Vec<Value> = errors.iter().map(|error| error.to_json()).collect();
            Outcome::Failed { result_hash, errors: Value::Array(errors).to_string() }
        }
    }
}
