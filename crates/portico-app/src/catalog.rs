//! The read side: the index behind a lock, kept in step with the store's change feed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use portico_query::search::search_rows;
use portico_store::Store;
use serde_json::Value;

use crate::index::{write_snapshot_in_steps, Index, SnapshotError, SnapshotHeader};

/// Rows loaded per query while rebuilding the index at startup.
const LOAD_PAGE: usize = 5_000;

/// Entities indexed before an ingestion in progress trains the body dictionary; smaller
/// catalogs train it when idle (`warm`).
const INGEST_DICTIONARY_AT: usize = 50_000;

/// The shared, always-current view of final entities.
#[derive(Debug, Default)]
pub struct Catalog {
    index: RwLock<Index>,
    /// The store change sequence number the index reflects.
    seq: AtomicI64,
    /// Serializes writers of the index (direct applies and feed syncs) so no change is applied
    /// out of order.
    writer: tokio::sync::Mutex<()>,
    /// Where the index is saved between runs (`None`: rebuilt from the store at every start).
    snapshot: Option<PathBuf>,
    /// The database's instance id, known once `load` ran (snapshots name it).
    instance: parking_lot::Mutex<Option<String>>,
    /// The sequence number of the last snapshot written or read, and when it was written.
    saved: parking_lot::Mutex<(i64, Option<Instant>)>,
    /// Entities written or removed since the index was last built in one go (see `repack`).
    churn: std::sync::atomic::AtomicUsize,
    /// Held while bodies are recompressed, so the engine's background run and an idle pass
    /// never train or recompress twice at once.
    compressing: parking_lot::Mutex<()>,
    /// Refs shown ahead of the store (see `show_ahead`): in the index, not yet in the store's
    /// change feed. While there are any, the index is neither saved nor repacked, since it is
    /// not a state of the store.
    ahead: parking_lot::Mutex<std::collections::HashSet<String>>,
    /// Woken whenever refs leave the ahead state (see `until_stored`).
    left_ahead: tokio::sync::Notify,
}

/// The longest `until_stored` waits: far longer than the write of a processing round, which is
/// what an entity shown ahead waits for.
const AHEAD_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Entities `show_ahead` adds under one hold of the index's write lock.
const SHOW_PART: usize = 2_500;

/// Entities changed before an idle index is repacked (and at least a tenth of the catalog).
const REPACK_MIN_CHURN: usize = 1_000;

/// How often at most an idle server saves a changed index (besides at shutdown).
const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(60);

impl Catalog {
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// A catalog whose index is saved to `path` and read back at the next start.
    pub fn with_snapshot(path: PathBuf) -> Catalog {
        Catalog { snapshot: Some(path), ..Catalog::default() }
    }

    pub fn read(&self) -> parking_lot::RwLockReadGuard<'_, Index> {
        self.index.read()
    }

    pub fn seq(&self) -> i64 {
        self.seq.load(Ordering::Acquire)
    }

    /// Rebuilds the index from every stored final entity.
    ///
    /// Reading, parsing and inserting overlap: one task reads pages from the store while up to
    /// `PARSERS` blocking tasks parse pages into search rows, and this task fills the index.
    pub async fn load(&self, store: &Store) -> Result<usize, portico_store::Error> {
        if let Some(path) = self.snapshot.clone() {
            let instance = store.instance_id().await?;
            *self.instance.lock() = Some(instance.clone());
            let current = store.current_seq().await?;
            let read = tokio::task::spawn_blocking(move || read_snapshot(&path, &instance, current)).await;
            match read {
                Ok(Ok((seq, index))) => {
                    let count = index.len();
                    *self.index.write() = index;
                    self.seq.store(seq, Ordering::Release);
                    // As good as just saved: the next save waits its interval, unless forced.
                    *self.saved.lock() = (seq, Some(Instant::now()));
                    self.sync(store).await?;
                    tracing::info!(entities = count, seq, current, "catalog index read from its snapshot");
                    self.log_memory();
                    return Ok(self.index.read().len());
                }
                Ok(Err(SnapshotError::Io(error))) if error.kind() == std::io::ErrorKind::NotFound => {}
                Ok(Err(reason)) => {
                    tracing::info!(%reason, "catalog index snapshot not used; rebuilding the index")
                }
                Err(error) => tracing::warn!(%error, "reading the catalog index snapshot failed"),
            }
        }
        let count = self.rebuild(store).await?;
        self.log_memory();
        Ok(count)
    }

    /// The index's estimated memory per part, at debug level.
    fn log_memory(&self) {
        if tracing::enabled!(tracing::Level::DEBUG) {
            for (part, bytes) in self.index.read().memory_report() {
                tracing::debug!(part, kib = bytes / 1024, "index memory");
            }
        }
    }

    /// Reads the keys a snapshot left unread, one per read lock, so the snapshot's bytes are
    /// released soon after a start. Blocking: call off the async runtime.
    pub fn read_pending_keys(&self) {
        let started = Instant::now();
        let keys = self.index.read().key_slots();
        let mut read = 0;
        for key_id in 0..keys {
            if self.index.read().read_key(key_id) {
                read += 1;
            }
        }
        if read > 0 {
            tracing::debug!(
                keys,
                read,
                ms = started.elapsed().as_millis(),
                "index keys read from the snapshot"
            );
            self.log_memory();
        }
    }

    /// Work for an idle moment: rebuild cached answers, compress bodies, save the snapshot, and
    /// repack the index after heavy change. Blocking: call off the async runtime.
    /// Evaluates to whether the index was repacked (and much memory freed).
    pub fn idle(&self) -> bool {
        self.warm();
        if let Err(error) = self.save_snapshot(false) {
            tracing::warn!(%error, "saving the catalog index snapshot failed");
        }
        self.repack()
    }

    /// Rebuilds the index in one go from its own snapshot once many entities changed since it
    /// was last built that way. An index filled entity by entity (ingestion) has its long-lived
    /// pieces scattered among the freed temporaries of parsing, which the allocator cannot give
    /// back; a fresh copy is dense, and dropping the old one releases whole pages. The index
    /// keeps serving meanwhile; the copy replaces it only if nothing changed in between.
    fn repack(&self) -> bool {
        let len = self.index.read().len();
        let churn = self.churn.load(Ordering::Relaxed);
        if churn < REPACK_MIN_CHURN.max(len / 10) || !self.ahead.lock().is_empty() {
            return false;
        }
        let started = Instant::now();
        let seq = self.seq();
        // The snapshot just saved is this very index; without one, a copy in memory serves.
        let saved = self.snapshot.as_ref().filter(|_| self.saved.lock().0 == seq);
        let fresh = match saved {
            Some(path) => std::fs::read(path)
                .map_err(SnapshotError::Io)
                .and_then(|bytes| Index::read_snapshot(Arc::new(bytes))),
            None => {
                let header = SnapshotHeader { instance: String::new(), seq };
                let mut bytes = Vec::new();
                let written = self.index.read().write_snapshot(&header, &mut bytes);
                written.map_err(SnapshotError::Io).and_then(|()| Index::read_snapshot(Arc::new(bytes)))
            }
        };
        match fresh {
            Ok((header, mut fresh)) if header.seq == seq => {
                // Every key now, before the swap: a key left to read on first use would keep the
                // whole snapshot's bytes in memory until the last one is read.
                for key_id in 0..fresh.key_slots() {
                    fresh.read_key(key_id);
                }
                // The cached orders and facets pages asked for, ready before the swap.
                fresh.take_over_from(&self.index.read());
                fresh.warm();
                let mut index = self.index.write();
                if self.seq() == seq
                    && index.len() == fresh.len()
                    && index.generation() + 1 == fresh.generation()
                {
                    let old = std::mem::replace(&mut *index, fresh);
                    drop(index);
                    drop(old);
                    self.churn.store(0, Ordering::Relaxed);
                    tracing::debug!(
                        entities = len,
                        ms = started.elapsed().as_millis(),
                        "catalog index repacked"
                    );
                    self.log_memory();
                    return true;
                }
                false
            }
            Ok(_) => false,
            Err(error) => {
                tracing::warn!(%error, "repacking the catalog index failed");
                false
            }
        }
    }

    /// Saves the index when it changed since the last snapshot and `SNAPSHOT_INTERVAL` has
    /// passed (or always, with `force`, as at shutdown). Blocking: call off the async runtime.
    pub fn save_snapshot(&self, force: bool) -> Result<bool, std::io::Error> {
        let (Some(path), Some(instance)) = (&self.snapshot, self.instance.lock().clone()) else {
            return Ok(false);
        };
        if !self.ahead.lock().is_empty() {
            return Ok(false);
        }
        let (saved_seq, saved_at) = *self.saved.lock();
        let recent = saved_at.is_some_and(|at| at.elapsed() < SNAPSHOT_INTERVAL);
        if self.seq() == saved_seq || (recent && !force) {
            return Ok(false);
        }
        let started = Instant::now();
        let temporary = path.with_extension("index.partial");
        // Read before the write starts: a change landing before its first step is then in the
        // file under an older number, and applying it again at the next start is harmless
        // (changes are idempotent); any change after the first step fails the write.
        let seq = {
            let _index = self.index.read();
            self.seq()
        };
        let file = std::fs::File::create(&temporary)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let look = || Some(self.index.read());
        let complete = write_snapshot_in_steps(&look, &SnapshotHeader { instance, seq }, &mut out)?;
        let file = out.into_inner().map_err(|error| error.into_error())?;
        if !complete {
            drop(file);
            let _ = std::fs::remove_file(&temporary);
            tracing::debug!(seq, "the index changed while being saved; saving again when idle");
            return Ok(false);
        }
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        *self.saved.lock() = (seq, Some(Instant::now()));
        tracing::debug!(seq, ms = started.elapsed().as_millis(), "catalog index snapshot saved");
        Ok(true)
    }

    async fn rebuild(&self, store: &Store) -> Result<usize, portico_store::Error> {
        const PARSERS: usize = 2;
        let _writer = self.writer.lock().await;
        let seq = store.current_seq().await?;
        let (pages_tx, mut pages_rx) = tokio::sync::mpsc::channel::<Vec<portico_store::FinalRow>>(PARSERS);
        let reader_store = store.clone();
        let reader = tokio::spawn(async move {
            let mut after = String::new();
            loop {
                let rows = reader_store.final_entities_page(&after, LOAD_PAGE).await?;
                let Some(last) = rows.last() else { return Ok::<(), portico_store::Error>(()) };
                after = last.entity_ref.clone();
                if pages_tx.send(rows).await.is_err() {
                    return Ok(());
                }
            }
        });
        let mut index = Index::default();
        let mut parsing: std::collections::VecDeque<tokio::task::JoinHandle<Vec<Prepared>>> =
            std::collections::VecDeque::new();
        let insert =
            |index: &mut Index, prepared: Result<Vec<Prepared>, tokio::task::JoinError>| match prepared {
                Ok(prepared) => index.upsert_many(prepared),
                Err(error) => {
                    tracing::error!(%error, "parsing stored entities failed; some are missing from the index")
                }
            };
        while let Some(rows) = pages_rx.recv().await {
            parsing.push_back(tokio::task::spawn_blocking(move || {
                rows.into_iter().filter_map(|row| prepare(&row.entity_ref, row.final_entity)).collect()
            }));
            if parsing.len() >= PARSERS {
                if let Some(handle) = parsing.pop_front() {
                    insert(&mut index, handle.await);
                }
            }
        }
        while let Some(handle) = parsing.pop_front() {
            insert(&mut index, handle.await);
        }
        match reader.await {
            Ok(result) => result?,
            Err(error) => tracing::error!(%error, "the index loader's reader task failed"),
        }
        index.shrink();
        let count = index.len();
        // Filled entity by entity: worth repacking once idle.
        self.churn.store(count, Ordering::Relaxed);
        *self.index.write() = index;
        self.seq.store(seq, Ordering::Release);
        Ok(count)
    }

    /// Rebuilds cached orders and facets that the last changes made stale (see `Index::warm`).
    pub fn warm(&self) {
        self.index.read().warm();
        self.compress_bodies();
    }

    /// True once the catalog is large enough for a body dictionary and has none.
    pub fn needs_dictionary(&self) -> bool {
        self.index.read().needs_dictionary()
    }

    /// True when a large ingestion should train the body dictionary now rather than at the next
    /// idle moment, so the rest of it is compressed with the dictionary: training takes a few
    /// hundred milliseconds of CPU that a small ingestion is better off without.
    pub fn needs_dictionary_now(&self) -> bool {
        let index = self.index.read();
        index.len() >= INGEST_DICTIONARY_AT && index.needs_dictionary()
    }

    /// Trains the body dictionary once the catalog is large enough, then recompresses the
    /// bodies stored before it in chunks, off the write lock except for each swap.
    pub fn compress_bodies(&self) {
        const CHUNK: usize = 10_000;
        let Some(_compressing) = self.compressing.try_lock() else { return };
        // The write lock only when there is something to do: this runs at every idle moment.
        let samples = if self.needs_dictionary() { self.index.write().dictionary_samples() } else { None };
        if let Some(samples) = samples {
            let started = std::time::Instant::now();
            match crate::index::train_codec(&samples) {
                Some(codec) => {
                    self.index.write().set_codec(codec);
                    tracing::debug!(
                        samples = samples.len(),
                        ms = started.elapsed().as_millis(),
                        "trained the body dictionary"
                    );
                }
                None => tracing::debug!(
                    samples = samples.len(),
                    "training a body dictionary failed; bodies stay LZ4"
                ),
            }
        }
        let mut from = 0;
        loop {
            let (codec, (outdated, next)) = {
                let index = self.index.read();
                (index.codec().clone(), index.outdated_bodies(from, CHUNK))
            };
            if !outdated.is_empty() {
                let recompressed = outdated
                    .into_iter()
                    .filter_map(|(slot_id, old)| {
                        let text = codec.decompress(&old)?;
                        let new = codec.compress(&text);
                        Some((slot_id, old, new))
                    })
                    .collect();
                self.index.write().replace_bodies(recompressed);
            }
            match next {
                Some(next) => from = next,
                None => break,
            }
        }
    }

    /// Applies every change the store recorded since the index's sequence number.
    pub async fn sync(&self, store: &Store) -> Result<(), portico_store::Error> {
        let _writer = self.writer.lock().await;
        let changes = store.changes_since(self.seq()).await?;
        if changes.seq == self.seq() {
            return Ok(());
        }
        let prepared: Vec<_> = changes
            .upserts
            .into_iter()
            .filter_map(|row| prepare(&row.entity_ref, row.final_entity))
            .collect();
        let mut index = self.index.write();
        self.churn.fetch_add(changes.deletes.len() + prepared.len(), Ordering::Relaxed);
        let mut ahead = self.ahead.lock();
        for entity_ref in &changes.deletes {
            index.remove(entity_ref);
            ahead.remove(entity_ref);
        }
        for prepared in &prepared {
            ahead.remove(&prepared.0);
        }
        index.upsert_many(prepared);
        self.seq.store(changes.seq, Ordering::Release);
        self.left_ahead.notify_waiters();
        Ok(())
    }

    /// Shows new entities before the store has them: the engine builds the final entities of
    /// a write's new children from memory just before that write starts. Only refs the index does not
    /// hold are added (an entity already shown keeps its stored form until its stitch lands).
    /// Evaluates to the refs added; each leaves this state when a stored change of its ref is
    /// applied (`apply_written` confirms it) or `withdraw` takes it back.
    ///
    /// A large batch goes in in parts, handing the index to waiting readers in between, so no
    /// read waits for all of it.
    pub async fn show_ahead(&self, mut prepared: Vec<Prepared>) -> Vec<String> {
        let _writer = self.writer.lock().await;
        let mut shown = Vec::with_capacity(prepared.len());
        while !prepared.is_empty() {
            let rest = prepared.split_off(prepared.len().min(SHOW_PART));
            let part = std::mem::replace(&mut prepared, rest);
            let mut index = self.index.write();
            let part: Vec<Prepared> =
                part.into_iter().filter(|entry| !index.contains_ref(&entry.0)).collect();
            let refs: Vec<String> = part.iter().map(|entry| entry.0.clone()).collect();
            self.ahead.lock().extend(refs.iter().cloned());
            index.upsert_many(part);
            parking_lot::RwLockWriteGuard::unlock_fair(index);
            self.churn.fetch_add(refs.len(), Ordering::Relaxed);
            shown.extend(refs);
        }
        shown
    }

    /// Removes entities shown ahead that the store will not have (their write failed, or their
    /// ref turned out to be taken). A ref a stored change reached since is left alone.
    pub async fn withdraw(&self, refs: &[String]) {
        if refs.is_empty() {
            return;
        }
        let _writer = self.writer.lock().await;
        let mut index = self.index.write();
        let mut ahead = self.ahead.lock();
        for entity_ref in refs {
            if ahead.remove(entity_ref) {
                index.remove(entity_ref);
            }
        }
        self.left_ahead.notify_waiters();
    }

    /// Waits while `entity_ref` is shown ahead of the store (up to `AHEAD_WAIT`), so a write
    /// that acts on stored entities (refresh, delete, ancestry) finds one the API already shows.
    pub async fn until_stored(&self, entity_ref: &str) {
        let deadline = tokio::time::Instant::now() + AHEAD_WAIT;
        loop {
            // Registered before the check: a change in between still wakes this wait.
            let left = self.left_ahead.notified();
            tokio::pin!(left);
            left.as_mut().enable();
            if !self.ahead.lock().contains(entity_ref) {
                return;
            }
            if tokio::time::timeout_at(deadline, left).await.is_err() {
                return;
            }
        }
    }

    /// Settles every entity still shown ahead with what the store holds: its stored final
    /// entity, or nothing. Called when the engine has no work left, so no write or stitch that
    /// would settle them is coming; normally none are left by then, but a ref whose stitch
    /// found nothing to store (it was deleted before it ever had a final entity) leaves no
    /// change in the feed to settle it. Evaluates to how many were settled.
    pub async fn settle_ahead(&self, store: &Store) -> Result<usize, portico_store::Error> {
        if self.ahead.lock().is_empty() {
            return Ok(0);
        }
        let _writer = self.writer.lock().await;
        let refs: Vec<String> = self.ahead.lock().iter().cloned().collect();
        let keys: Vec<&str> = refs.iter().map(String::as_str).collect();
        let rows = store.final_rows(&keys).await?;
        let prepared: Vec<_> =
            rows.into_iter().filter_map(|row| prepare(&row.entity_ref, row.final_entity)).collect();
        let mut index = self.index.write();
        let mut ahead = self.ahead.lock();
        for entity_ref in &refs {
            index.remove(entity_ref);
            ahead.remove(entity_ref);
        }
        index.upsert_many(prepared);
        self.churn.fetch_add(refs.len(), Ordering::Relaxed);
        self.left_ahead.notify_waiters();
        Ok(refs.len())
    }

    /// How many entities are shown ahead of the store.
    pub fn ahead(&self) -> usize {
        self.ahead.lock().len()
    }

    /// Applies changes this process just wrote as change number `seq`, without reading them
    /// back, when nothing else was written in between; otherwise follows the feed. `prepared`
    /// come from `prepare_parsed`, which the caller runs on as many threads as it likes.
    /// `confirmed` are refs shown ahead whose stored final entity is exactly what was shown:
    /// they leave the ahead state without being indexed again.
    pub async fn apply_written(
        &self,
        store: &Store,
        seq: i64,
        prepared: Vec<Prepared>,
        gone: &[String],
        confirmed: &[String],
    ) -> Result<(), portico_store::Error> {
        {
            let _writer = self.writer.lock().await;
            // A confirmed ref that a stored change reached meanwhile shows that change, not this
            // write: then the feed brings the index up to this write.
            let shown = {
                let ahead = self.ahead.lock();
                confirmed.iter().all(|entity_ref| ahead.contains(entity_ref))
            };
            if seq == self.seq() + 1 && shown {
                let mut index = self.index.write();
                let mut ahead = self.ahead.lock();
                self.churn.fetch_add(gone.len() + prepared.len(), Ordering::Relaxed);
                for entity_ref in confirmed {
                    ahead.remove(entity_ref);
                }
                for entity_ref in gone {
                    index.remove(entity_ref);
                    ahead.remove(entity_ref);
                }
                for prepared in &prepared {
                    ahead.remove(&prepared.0);
                }
                index.upsert_many(prepared);
                self.seq.store(seq, Ordering::Release);
                self.left_ahead.notify_waiters();
                return Ok(());
            }
        }
        self.sync(store).await?;
        // A ref gone before it had a final entity leaves nothing in the feed: if it was shown
        // ahead, take it back here.
        self.withdraw(gone).await;
        Ok(())
    }
}

/// Reads a snapshot that belongs to this database and to a point of its change feed it has
/// reached (a restored backup may be behind the snapshot).
fn read_snapshot(path: &Path, instance: &str, current: i64) -> Result<(i64, Index), SnapshotError> {
    let started = Instant::now();
    let data = Arc::new(std::fs::read(path)?);
    let read_ms = started.elapsed().as_millis();
    let bytes = data.len();
    let (header, index) = Index::read_snapshot(data)?;
    tracing::debug!(
        bytes,
        read_ms,
        parse_ms = started.elapsed().as_millis() - read_ms,
        "catalog index snapshot read"
    );
    if header.instance != instance || header.seq > current {
        return Err(SnapshotError::Stale);
    }
    Ok((header.seq, index))
}

/// `(ref, uid, body, search rows, has processing errors)`.
pub(crate) type Prepared = crate::index::Upsert;

fn prepare(entity_ref: &str, text: String) -> Option<Prepared> {
    let entity: Value = match serde_json::from_str(&text) {
        Ok(entity) => entity,
        Err(error) => {
            // Only a damaged database gets here; say so rather than serve a partial catalog quietly.
            tracing::error!(entity.r#ref = entity_ref, %error, "stored final entity is not valid JSON; left out of the index");
            return None;
        }
    };
    prepare_parsed(entity_ref, &entity, text)
}

/// An entity's index entry, from its final form and that form's text.
pub(crate) fn prepare_parsed(entity_ref: &str, entity: &Value, text: String) -> Option<Prepared> {
    let uid = entity.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("").to_owned();
    let rows = match search_rows(entity) {
        Ok(rows) => rows,
        Err(error) => {
            tracing::warn!(entity.r#ref = entity_ref, %error, "entity has keys that differ only in case; indexed without search rows");
            Vec::new()
        }
    };
    let has_errors = entity.pointer("/status/items").and_then(Value::as_array).is_some_and(|items| {
        items.iter().any(|item| item.get("level").and_then(Value::as_str) == Some("error"))
    });
    Some((entity_ref.to_owned(), uid, Arc::from(text), rows, has_errors))
}

#[cfg(test)]
mod tests;
