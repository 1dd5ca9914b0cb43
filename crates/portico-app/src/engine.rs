//! The processing engine: claims due entities, processes them, writes results, stitches, and
//! keeps the index current. Several replicas may run it against one PostgreSQL database: claims
//! take row leases, so no entity is processed by two replicas at once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use portico_store::{
    inline_input, ClaimedEntity, DeferredEntity, FinalWrite, InlineResult, Outcome, ProcessOutcome,
    RelationRow, StitchInput, StitchState, Store, WriteSummary,
};
use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::catalog::{prepare_parsed, Catalog, Prepared};
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
/// Entities and emitted children written per transaction, about (one entity's are never split).
const WRITE_ROWS: usize = 10_000;
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
        let mut orphans_collected = std::time::Instant::now();
        loop {
            // Between rounds, not beside them: a deletion waiting for SQLite's write lock
            // through a long ingestion would time out.
            if orphans_collected.elapsed() >= self.options.orphan_interval {
                self.collect_orphans().await;
                orphans_collected = std::time::Instant::now();
            }
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
            // After a round nothing shown ahead is waiting for this replica's write or stitch;
            // what is still shown (deleted before it was stitched) is settled now, not only
            // when a busy catalog finally goes idle.
            if self.catalog.ahead() > 0 {
                self.settle_ahead().await;
            }
            if worked {
                if shutdown.is_cancelled() {
                    break;
                }
                continue;
            }
            self.settle_ahead().await;
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
    }

    /// Processes everything that is due and stitches the results, until nothing is left.
    /// Used by the loop and by `portico` commands that want a settled catalog.
    pub async fn run_until_idle(&self) -> Result<(), portico_store::Error> {
        while self.round().await? {}
        self.catalog.sync(&self.store).await?;
        self.settle_ahead().await;
        Ok(())
    }

    /// With no work left, settles entities still shown ahead of the store with what it holds.
    async fn settle_ahead(&self) {
        match self.catalog.settle_ahead(&self.store).await {
            Ok(0) => {}
            Ok(settled) => tracing::debug!(settled, "entities shown ahead settled from the store"),
            Err(error) => tracing::warn!(%error, "settling entities shown ahead of the store failed"),
        }
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
        let interval_ms = interval_ms(self.options.processing_interval);
        let lease_ms = i64::try_from(LEASE.as_millis()).unwrap_or(15_000);
        let started = std::time::Instant::now();
        let claimed = self.store.claim_due(BATCH, interval_ms, lease_ms).await?;
        let claim_ms = started.elapsed().as_millis();
        let processed_any = !claimed.is_empty();
        let claimed_count = claimed.len();
        if processed_any {
            let ids: Vec<String> = claimed.iter().map(|item| item.entity_id.clone()).collect();
            // During a backlog, later rounds may still add peers to this round's new children.
            let stitch_new = claimed_count < BATCH;
            self.process_and_write(claimed, &ids, lease_ms, stitch_new).await?;
            tracing::debug!(
                claimed = claimed_count,
                claim_ms,
                ms = started.elapsed().as_millis() - claim_ms,
                "processing round"
            );
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

    /// Processes the claimed entities and writes their results as they come, in transactions of
    /// about `WRITE_ROWS` entities and emitted children: each entity's result stays whole in one
    /// transaction, but a round of many Locations neither holds the write lock for all of them
    /// nor waits for the last to be processed before the first is written. Processing tasks run
    /// on while a transaction is written, so the CPU work of parsing and processing overlaps the
    /// database's.
    ///
    /// Leases are renewed every `LEASE_RENEWAL`, between transactions: a renewal waiting for the
    /// write lock while this task holds it would wait for itself.
    ///
    /// With `stitch_new`, the last write's new children are stitched at once, from memory.
    async fn process_and_write(
        &self,
        claimed: Vec<ClaimedEntity>,
        ids: &[String],
        lease_ms: i64,
        stitch_new: bool,
    ) -> Result<(), portico_store::Error> {
        let mut pending = claimed.into_iter();
        let mut tasks: JoinSet<ProcessOutcome> = JoinSet::new();
        let mut ready: Vec<ProcessOutcome> = Vec::new();
        let mut rows = 0;
        let mut renewed = std::time::Instant::now();
        let mut indexing = Indexing::default();
        loop {
            while tasks.len() < IN_FLIGHT {
                let Some(item) = pending.next() else { break };
                let processor = self.processor.clone();
                let interval = self.options.processing_interval;
                tasks.spawn(async move { process_one(&processor, item, interval).await });
            }
            if renewed.elapsed() >= LEASE_RENEWAL {
                if let Err(error) = self.store.renew_leases(ids, lease_ms).await {
                    tracing::warn!(%error, "renewing processing leases failed");
                }
                renewed = std::time::Instant::now();
            }
            let (done, waited) = match tokio::time::timeout(LEASE_RENEWAL, tasks.join_next()).await {
                // Nothing finished for a while (a slow read): write what is ready meanwhile.
                Err(_) => (false, true),
                Ok(None) => (true, false),
                Ok(Some(Err(error))) => {
                    tracing::error!(%error, "a processing task panicked");
                    (false, false)
                }
                Ok(Some(Ok(outcome))) => {
                    self.count(&outcome.entity_ref, &outcome.outcome);
                    rows += 1 + match &outcome.outcome {
                        Outcome::Succeeded { children, .. } => children.len(),
                        _ => 0,
                    };
                    ready.push(outcome);
                    (false, false)
                }
            };
            // The round's last write: nothing in flight, nothing left to start.
            let last = tasks.is_empty() && pending.as_slice().is_empty();
            if !ready.is_empty() && (done || waited || last || rows >= WRITE_ROWS) {
                let writing = std::time::Instant::now();
                // Only the last write stitches its new children at once: a child written
                // earlier may still gain peers from later writes, and would be stitched twice.
                // Those children are built from memory and shown just before the write starts (run
                // beside it, the two shared 2 cores and both finished later).
                let (written, ahead) = if last && stitch_new {
                    let ahead = self.show_ahead(&ready).await;
                    (self.store.write_results_and_claim_new(&ready).await, ahead)
                } else {
                    (self.store.write_results(&ready).await, Ahead::default())
                };
                let mut written = match written {
                    Ok(written) => written,
                    Err(error) => {
                        self.catalog.withdraw(&ahead.all()).await;
                        return Err(error);
                    }
                };
                if !ahead.firsts.is_empty() && !written.dropped.is_empty() {
                    let dropped: HashSet<&String> = written.dropped.iter().collect();
                    let gone: Vec<String> = ahead
                        .firsts
                        .iter()
                        .filter(|entity_ref| dropped.contains(entity_ref))
                        .cloned()
                        .collect();
                    self.catalog.withdraw(&gone).await;
                }
                tracing::debug!(rows, ms = writing.elapsed().as_millis(), "results written");
                self.report(&ready, &written);
                ready.clear();
                rows = 0;
                // New children are stitched from what was just written, not read back. They
                // stay queued until their final entities are written, so a failure here only
                // leaves them to the queue.
                if let Err(error) =
                    self.stitch(std::mem::take(&mut written.stitch), 0, ahead, &mut indexing).await
                {
                    tracing::warn!(%error, "stitching new entities failed; those not written stay queued");
                }
            }
            if done {
                return self.finish_indexing(indexing.0).await;
            }
        }
    }

    /// Builds the final entities of the new entities among `outcomes` from memory and shows
    /// them in the index before the write that stores them commits (see `Catalog::show_ahead`):
    /// children stored with their inline result, and entities on their first successful pass.
    /// Their peer relations come from `outcomes` and, for emitters outside them, from the store.
    ///
    /// `stitch` later checks each child against the inputs the write read back: one that
    /// matches is stored as shown, one that differs is built again, and one the write did not
    /// store (its ref was taken) is withdrawn. The others are stitched from the queue, which
    /// replaces what was shown.
    async fn show_ahead(&self, outcomes: &[ProcessOutcome]) -> Ahead {
        let started = std::time::Instant::now();
        // A ref emitted twice in one write is left to the write to settle.
        let mut emitted: HashMap<&str, usize> = HashMap::new();
        let mut children: Vec<(&str, &DeferredEntity)> = Vec::new();
        let mut firsts: Vec<&ProcessOutcome> = Vec::new();
        for outcome in outcomes {
            let Outcome::Succeeded { children: kids, .. } = &outcome.outcome else { continue };
            firsts.push(outcome);
            for child in kids {
                *emitted.entry(child.entity_ref.as_str()).or_default() += 1;
                if let Some(InlineResult {
                    outcome: Outcome::Succeeded { .. }, entity_id: Some(id), ..
                }) = child.processed.as_deref()
                {
                    children.push((id.as_str(), child));
                }
            }
        }
        {
            let index = self.catalog.read();
            children.retain(|(_, child)| {
                emitted.get(child.entity_ref.as_str()) == Some(&1) && !index.contains_ref(&child.entity_ref)
            });
            firsts.retain(|outcome| {
                !emitted.contains_key(outcome.entity_ref.as_str()) && !index.contains_ref(&outcome.entity_ref)
            });
        }
        if children.is_empty() && firsts.is_empty() {
            return Ahead::default();
        }
        let wanted: HashSet<&str> = children
            .iter()
            .map(|(_, child)| child.entity_ref.as_str())
            .chain(firsts.iter().map(|outcome| outcome.entity_ref.as_str()))
            .collect();
        // Peer relations, by source: what this write's entities emit now (only new children's
        // results are stored with it), and what the store holds from other emitters.
        let mut peers: HashMap<&str, Vec<(String, String)>> = HashMap::new();
        let mut emitters: HashSet<&str> = HashSet::new();
        for outcome in outcomes {
            let Outcome::Succeeded { relations, children: kids, .. } = &outcome.outcome else { continue };
            emitters.insert(&outcome.entity_ref);
            add_peers(&mut peers, &wanted, &outcome.entity_ref, relations);
            for child in kids.iter().filter(|child| wanted.contains(child.entity_ref.as_str())) {
                if let Some(InlineResult { outcome: Outcome::Succeeded { relations, .. }, .. }) =
                    child.processed.as_deref()
                {
                    add_peers(&mut peers, &wanted, &child.entity_ref, relations);
                }
            }
        }
        let refs: Vec<&str> = wanted.iter().copied().collect();
        let first_refs: Vec<&str> = firsts.iter().map(|outcome| outcome.entity_ref.as_str()).collect();
        let (rows, parented) = match tokio::try_join!(
            self.store.peer_rows(&refs),
            self.store.with_parents(&first_refs)
        ) {
            Ok(read) => read,
            Err(error) => {
                tracing::debug!(%error, "reading peer relations to show new entities failed; they show once stored");
                return Ahead::default();
            }
        };
        for (source, kind, target, emitter) in rows {
            let Some(source) = wanted.get(source.as_str()) else { continue };
            if !emitters.contains(emitter.as_str()) && !wanted.contains(emitter.as_str()) {
                peers.entry(source).or_default().push((kind, target));
            }
        }
        let mut inputs: Vec<StitchInput> = children
            .iter()
            .map(|(id, child)| {
                inline_input(id, child, peers.remove(child.entity_ref.as_str()).unwrap_or_default(), "")
            })
            .collect();
        for outcome in &firsts {
            let Outcome::Succeeded { processed, relations, .. } = &outcome.outcome else { continue };
            let mut all = peers.remove(outcome.entity_ref.as_str()).unwrap_or_default();
            all.extend(
                relations
                    .iter()
                    .filter(|relation| relation.source == outcome.entity_ref)
                    .map(|relation| (relation.kind.clone(), relation.target.clone())),
            );
            all.sort_unstable();
            all.dedup();
            inputs.push(StitchInput {
                entity_ref: outcome.entity_ref.clone(),
                ticket: String::new(),
                state: Some(StitchState {
                    entity_id: outcome.entity_id.clone(),
                    processed: Some(processed.clone()),
                    errors: None,
                    has_parents: parented.contains(&outcome.entity_ref),
                    relations: all,
                    final_hash: None,
                }),
            });
        }
        let mut states: HashMap<String, Shape> = inputs
            .iter()
            .take(children.len())
            .filter_map(|input| Some((input.entity_ref.clone(), Shape::of(input.state.as_ref()?))))
            .collect();
        let read_ms = started.elapsed().as_millis();
        let (writes, _, _, built) = build_finals_parallel(inputs).await;
        let build_ms = started.elapsed().as_millis();
        let shown = self.catalog.show_ahead(built).await;
        let mut ahead = Ahead::default();
        for entity_ref in shown {
            if states.contains_key(&entity_ref) {
                ahead.children.push(entity_ref);
            } else {
                ahead.firsts.push(entity_ref);
            }
        }
        for write in writes {
            if let Some(state) = states.remove(&write.entity_ref) {
                ahead.finals.insert(write.entity_ref.clone(), (state, write));
            }
        }
        tracing::debug!(
            children = ahead.children.len(),
            firsts = ahead.firsts.len(),
            read_ms,
            build_ms,
            ms = started.elapsed().as_millis(),
            "new entities shown ahead of their write"
        );
        ahead
    }

    /// Counts and logs what a write stored: conflicts, and the inline results of children it
    /// stored with them (the others were dropped, and are processed on their own claim).
    fn report(&self, outcomes: &[ProcessOutcome], written: &WriteSummary) {
        for conflict in &written.conflicts {
            tracing::warn!(
                entity.r#ref = %conflict.entity_ref,
                existing_location = conflict.existing_location_key.as_deref().unwrap_or(""),
                new_location = conflict.new_location_key.as_deref().unwrap_or(""),
                "detected conflicting entity: the entity already exists from another location and stays there"
            );
        }
        if written.inline.is_empty() {
            return;
        }
        let stored: std::collections::HashSet<&str> = written.inline.iter().map(String::as_str).collect();
        for outcome in outcomes {
            let Outcome::Succeeded { children, .. } = &outcome.outcome else { continue };
            for child in children {
                if let Some(inline) =
                    child.processed.as_ref().filter(|_| stored.contains(child.entity_ref.as_str()))
                {
                    self.count(&child.entity_ref, &inline.outcome);
                }
            }
        }
    }

    fn count(&self, entity_ref: &str, outcome: &Outcome) {
        if let Outcome::Failed { errors, .. } = outcome {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            // Only changed results get here, so each distinct failure is logged once. An entity
            // that never processed successfully is invisible in the API, so the log is where its
            // problem shows (Backstage publishes it as an event).
            tracing::warn!(entity.r#ref = %entity_ref, errors = %errors, "processing failed");
        } else {
            self.stats.processed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Stitches everything queued. Evaluates to whether anything was queued.
    ///
    /// Rounds overlap: while one round's results go into the index (CPU work), the next round
    /// reads, builds and writes (mostly the database's work). Index updates still happen one
    /// after another, in the order of their sequence numbers.
    async fn stitch_pending(&self) -> Result<bool, portico_store::Error> {
        let mut any = false;
        let mut indexing = Indexing::default();
        // Batches go through the queue in ref order; the next one is claimed and read while the
        // last one is built and written (the two use different connections).
        let mut after = String::new();
        let mut next: Option<tokio::task::JoinHandle<Result<StitchBatch, portico_store::Error>>> = None;
        let result = loop {
            let reading = std::time::Instant::now();
            let batch = match next.take() {
                Some(task) => task.await.unwrap_or_else(|error| {
                    tracing::error!(%error, "reading stitch inputs stopped");
                    Ok((Vec::new(), None))
                }),
                None => self.store.stitch_inputs_after(BATCH, &after).await,
            };
            let (inputs, last) = match batch {
                Ok(batch) => batch,
                Err(error) => break Err(error),
            };
            if inputs.is_empty() {
                if after.is_empty() {
                    break Ok(any);
                }
                // Once more from the start, for refs queued meanwhile before `after`.
                after.clear();
                continue;
            }
            any = true;
            after = last.unwrap_or_default();
            let read_ms = reading.elapsed().as_millis();
            if inputs.len() == BATCH {
                let (store, after) = (self.store.clone(), after.clone());
                next = Some(tokio::spawn(async move { store.stitch_inputs_after(BATCH, &after).await }));
            }
            if let Err(error) = self.stitch(inputs, read_ms, Ahead::default(), &mut indexing).await {
                break Err(error);
            }
        };
        // A batch read ahead and not stitched stays queued (claimed), for the next pass.
        if let Some(task) = next {
            let _ = task.await;
        }
        let indexed = self.finish_indexing(indexing.0).await;
        result.and_then(|any| indexed.map(|()| any))
    }

    /// Builds the final entities of claimed stitch inputs, stores them and hands them to the
    /// index, once the previous index update is done.
    ///
    /// Entities in `ahead` (shown before their write) whose inputs are the ones they were shown
    /// with are stored as built then; the others among them are built again, or withdrawn when
    /// they have no inputs here.
    async fn stitch(
        &self,
        inputs: Vec<StitchInput>,
        read_ms: u128,
        mut ahead: Ahead,
        indexing: &mut Indexing,
    ) -> Result<(), portico_store::Error> {
        let Some(ticket) = inputs.first().map(|input| input.ticket.clone()) else {
            self.catalog.withdraw(&ahead.children).await;
            return Ok(());
        };
        let started = std::time::Instant::now();
        let count = inputs.len();
        let mut confirmed = Vec::new();
        let mut confirmed_writes = Vec::new();
        let inputs: Vec<StitchInput> = inputs
            .into_iter()
            .filter_map(|input| match ahead.finals.remove(&input.entity_ref) {
                Some((shape, write)) if input.state.as_ref().map(Shape::of).as_ref() == Some(&shape) => {
                    confirmed.push(input.entity_ref);
                    confirmed_writes.push(write);
                    None
                }
                _ => Some(input),
            })
            .collect();
        let (mut writes, gone, mut done, built) = build_finals_parallel(inputs).await;
        if !ahead.children.is_empty() {
            let settled: HashSet<&str> = confirmed
                .iter()
                .chain(built.iter().map(|prepared| &prepared.0))
                .map(String::as_str)
                .collect();
            let unstored: Vec<String> = ahead
                .children
                .into_iter()
                .filter(|entity_ref| !settled.contains(entity_ref.as_str()))
                .collect();
            self.catalog.withdraw(&unstored).await;
        }
        writes.extend(confirmed_writes);
        done.extend(confirmed.iter().cloned());
        let build_ms = started.elapsed().as_millis();
        let writing = std::time::Instant::now();
        let stitched = self.store.write_stitched(&ticket, &writes, &gone, &done).await?;
        self.stats.stitched.fetch_add(writes.len() as u64, Ordering::Relaxed);
        let (built, gone, confirmed) = if stitched.skipped.is_empty() {
            (built, gone, confirmed)
        } else {
            // A skipped ref shown ahead stays shown until its own stitch lands.
            let skipped: HashSet<&String> = stitched.skipped.iter().collect();
            (
                built.into_iter().filter(|prepared| !skipped.contains(&prepared.0)).collect(),
                gone.into_iter().filter(|entity_ref| !skipped.contains(entity_ref)).collect(),
                confirmed.into_iter().filter(|entity_ref| !skipped.contains(entity_ref)).collect(),
            )
        };
        let write_ms = writing.elapsed().as_millis();
        self.finish_indexing(indexing.0.take()).await?;
        let (catalog, store) = (self.catalog.clone(), self.store.clone());
        let shown_as_stored = confirmed.len();
        indexing.0 = Some(tokio::spawn(async move {
            catalog.apply_written(&store, stitched.seq, built, &gone, &confirmed).await
        }));
        tracing::debug!(count, shown_as_stored, read_ms, build_ms, write_ms, "stitching round written");
        Ok(())
    }

    /// Waits for a round's index update, then trains the body dictionary when it is time.
    async fn finish_indexing(&self, indexing: Option<IndexUpdate>) -> Result<(), portico_store::Error> {
        let Some(indexing) = indexing else { return Ok(()) };
        let started = std::time::Instant::now();
        match indexing.await {
            Ok(result) => result?,
            Err(error) => tracing::error!(%error, "updating the catalog index stopped"),
        }
        if self.catalog.needs_dictionary_now() {
            // In the background: training takes a few hundred milliseconds, and bodies indexed
            // meanwhile are recompressed once it is done.
            let catalog = self.catalog.clone();
            drop(tokio::task::spawn_blocking(move || catalog.compress_bodies()));
        }
        tracing::debug!(wait_ms = started.elapsed().as_millis(), "stitching round indexed");
        Ok(())
    }

    async fn collect_orphans(&self) {
        if !self.options.delete_orphans {
            return;
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

    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// `(final entities to write, refs gone, refs done, index entries of the written)`.
type Built = (Vec<FinalWrite>, Vec<String>, Vec<String>, Vec<Prepared>);

type IndexUpdate = tokio::task::JoinHandle<Result<(), portico_store::Error>>;

/// Claimed stitch inputs, with the greatest ref claimed in the database's order.
type StitchBatch = (Vec<StitchInput>, Option<String>);

/// Entities shown in the index ahead of the write that stores them (see `Engine::show_ahead`).
#[derive(Default)]
struct Ahead {
    /// New children: the write hands back their inputs, which confirm or replace these.
    children: Vec<String>,
    /// Entities on their first pass: stitched from the queue, which replaces these.
    firsts: Vec<String>,
    /// For each child, what it was built from and its final entity.
    finals: HashMap<String, (Shape, FinalWrite)>,
}

/// The stitch inputs of a child shown ahead that the write's own inputs may differ in. Its
/// processed form and errors are not among them: both sides take those from the same child.
#[derive(PartialEq, Eq)]
struct Shape {
    entity_id: String,
    has_parents: bool,
    relations: Vec<(String, String)>,
}

impl Shape {
    fn of(state: &StitchState) -> Shape {
        Shape {
            entity_id: state.entity_id.clone(),
            has_parents: state.has_parents,
            relations: state.relations.clone(),
        }
    }
}

impl Ahead {
    fn all(&self) -> Vec<String> {
        self.children.iter().chain(&self.firsts).cloned().collect()
    }
}

/// Adds what `emitter` says about the `wanted` entities (relations whose source is one of them
/// and not the emitter) to their peer relations.
fn add_peers<'a>(
    peers: &mut HashMap<&'a str, Vec<(String, String)>>,
    wanted: &HashSet<&'a str>,
    emitter: &str,
    relations: &[RelationRow],
) {
    for relation in relations {
        if relation.source == emitter {
            continue;
        }
        if let Some(source) = wanted.get(relation.source.as_str()) {
            peers.entry(source).or_default().push((relation.kind.clone(), relation.target.clone()));
        }
    }
}

/// The index update in flight, if any: stitching rounds hand their results to the index one
/// after another, in the order of their sequence numbers.
#[derive(Default)]
struct Indexing(Option<IndexUpdate>);

/// `build_finals` on every core: building is JSON work, a few tens of microseconds an entity.
async fn build_finals_parallel(mut inputs: Vec<StitchInput>) -> Built {
    let parts = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let size = inputs.len().div_ceil(parts).max(256);
    let mut tasks = Vec::new();
    while inputs.len() > size {
        let rest = inputs.split_off(size);
        let part = std::mem::replace(&mut inputs, rest);
        tasks.push(tokio::task::spawn_blocking(move || build_finals(part)));
    }
    tasks.push(tokio::task::spawn_blocking(move || build_finals(inputs)));
    let mut all = Built::default();
    for task in tasks {
        let (writes, gone, done, built) = task.await.unwrap_or_default();
        all.0.extend(writes);
        all.1.extend(gone);
        all.2.extend(done);
        all.3.extend(built);
    }
    all
}

fn build_finals(inputs: Vec<StitchInput>) -> Built {
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
        built.extend(prepare_parsed(&input.entity_ref, &stitched.entity, stitched.text));
    }
    (writes, gone, done, built)
}

async fn process_one(
    processor: &Processor,
    item: ClaimedEntity,
    interval: Option<Duration>,
) -> ProcessOutcome {
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
    let Processed { entity, errors, relations, children } = processed;
    let outcome = match entity {
        Some(entity) if errors.is_empty() => {
            // Children that are not Locations are processed here, while their parsed form is
            // at hand: a new one is then stored processed in this entity's transaction instead
            // of being written, claimed, read back and written again. Locations read files or
            // URLs, so they keep their own claim.
            //
            // Only on a Location's first pass, when its children are new: a Location read again
            // mostly re-emits existing children, whose inline results would be dropped.
            let first_pass = item.result_hash.is_none();
            let mut deferred = Vec::with_capacity(children.len());
            for (position, child) in children.into_iter().enumerate() {
                let inline =
                    if !first_pass || child.entity.get("kind").and_then(Value::as_str) == Some("Location") {
                        None
                    } else {
                        // A Location may emit thousands of children: let other tasks run between them.
                        if position % 64 == 63 {
                            tokio::task::yield_now().await;
                        }
                        let processed = processor.process(&child.entity).await;
                        let result_hash = processed.result_hash();
                        Some(Box::new(InlineResult {
                            outcome: leaf_outcome(processed, result_hash),
                            next_update_at: next_update_at(interval),
                            entity_id: Some(uuid::Uuid::now_v7().to_string()),
                        }))
                    };
                deferred.push(DeferredEntity {
                    entity_ref: child.entity_ref,
                    hash: child.hash,
                    entity: child.text,
                    location_key: child.location_key,
                    processed: inline,
                });
            }
            Outcome::Succeeded {
                result_hash,
                processed: entity.to_string(),
                relations: relation_rows(relations),
                children: deferred,
            }
        }
        _ => failed(&errors, result_hash),
    };
    ProcessOutcome { entity_id: item.entity_id, entity_ref: item.entity_ref, outcome }
}

/// The outcome of a pass that emitted no children.
fn leaf_outcome(processed: Processed, result_hash: String) -> Outcome {
    match processed.entity {
        Some(entity) if processed.errors.is_empty() => Outcome::Succeeded {
            result_hash,
            processed: entity.to_string(),
            relations: relation_rows(processed.relations),
            children: Vec::new(),
        },
        _ => failed(&processed.errors, result_hash),
    }
}

fn failed(errors: &[crate::processing::ProcessingError], result_hash: String) -> Outcome {
    let errors: Vec<Value> = errors.iter().map(|error| error.to_json()).collect();
    Outcome::Failed { result_hash, errors: Value::Array(errors).to_string() }
}

fn relation_rows(relations: Vec<portico_catalog::relations::Relation>) -> Vec<RelationRow> {
    relations
        .into_iter()
        .map(|relation| RelationRow { source: relation.source, kind: relation.kind, target: relation.target })
        .collect()
}

/// The processing interval in milliseconds; `None` (`processingInterval: false`) is a century.
fn interval_ms(interval: Option<Duration>) -> i64 {
    let interval = interval.unwrap_or(Duration::from_secs(100 * 365 * 24 * 3600));
    i64::try_from(interval.as_millis()).unwrap_or(i64::MAX / 4)
}

/// Milliseconds since the epoch at which an entity processed now is due again: what a claim sets
/// (the interval plus up to half of it again, so refreshes spread out).
fn next_update_at(interval: Option<Duration>) -> i64 {
    let interval_ms = interval_ms(interval);
    let spread = (interval_ms / 2).max(1);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX / 4));
    now.saturating_add(interval_ms).saturating_add(rand::random::<i64>().rem_euclid(spread))
}
