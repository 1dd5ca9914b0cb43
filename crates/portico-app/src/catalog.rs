//! The read side: the index behind a lock, kept in step with the store's change feed.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use portico_query::search::search_rows;
use portico_store::Store;
use serde_json::Value;

use crate::index::Index;

/// Rows loaded per query while rebuilding the index at startup.
const LOAD_PAGE: usize = 5_000;

/// The shared, always-current view of final entities.
#[derive(Debug, Default)]
pub struct Catalog {
    index: RwLock<Index>,
    /// The store change sequence number the index reflects.
    seq: AtomicI64,
    /// Serializes writers of the index (direct applies and feed syncs) so no change is applied
    /// out of order.
    writer: tokio::sync::Mutex<()>,
}

impl Catalog {
    pub fn new() -> Catalog {
        Catalog::default()
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
                Ok(prepared) => {
                    for (entity_ref, uid, body, rows, has_errors) in prepared {
                        index.upsert(&entity_ref, &uid, body, rows);
                        index.flag_errors(&entity_ref, has_errors);
                    }
                }
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
        let count = index.len();
        *self.index.write() = index;
        self.seq.store(seq, Ordering::Release);
        Ok(count)
    }

    /// Rebuilds cached orders and facets that the last changes made stale (see `Index::warm`).
    pub fn warm(&self) {
        self.index.read().warm();
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
        for entity_ref in &changes.deletes {
            index.remove(entity_ref);
        }
        for (entity_ref, uid, body, rows, has_errors) in prepared {
            index.upsert(&entity_ref, &uid, body, rows);
            index.flag_errors(&entity_ref, has_errors);
        }
        self.seq.store(changes.seq, Ordering::Release);
        Ok(())
    }

    /// Applies changes this process just wrote as change number `seq`, without reading them
    /// back, when nothing else was written in between; otherwise follows the feed.
    pub async fn apply_written(
        &self,
        store: &Store,
        seq: i64,
        written: Vec<(String, Value, String)>,
        gone: &[String],
    ) -> Result<(), portico_store::Error> {
        {
            let _writer = self.writer.lock().await;
            if seq == self.seq() + 1 {
                let prepared: Vec<_> = written
                    .into_iter()
                    .filter_map(|(entity_ref, entity, text)| prepare_parsed(&entity_ref, &entity, text))
                    .collect();
                let mut index = self.index.write();
                for entity_ref in gone {
                    index.remove(entity_ref);
                }
                for (entity_ref, uid, body, rows, has_errors) in prepared {
                    index.upsert(&entity_ref, &uid, body, rows);
                    index.flag_errors(&entity_ref, has_errors);
                }
                self.seq.store(seq, Ordering::Release);
                return Ok(());
            }
        }
        self.sync(store).await
    }
}

/// `(ref, uid, body, search rows, has processing errors)`.
type Prepared = (String, String, Arc<str>, Vec<portico_query::search::SearchRow>, bool);

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

fn prepare_parsed(entity_ref: &str, entity: &Value, text: String) -> Option<Prepared> {
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
