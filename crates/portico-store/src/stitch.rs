//! The stitch queue, final entities and the change feed that keeps in-memory indexes current.

use std::collections::{HashMap, HashSet};

use crate::{dispatch, placeholders, transaction, Result, Store, CHUNK};

/// Everything the stitcher needs to build one final entity (reference §6.11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StitchInput {
    pub entity_ref: String,
    /// The claim of this read on the queue row; `write_stitched` only writes results whose
    /// ticket is still current, so a slower stitcher never overwrites a newer one.
    pub ticket: String,
    /// `None` when the entity no longer exists: its final entity must go.
    pub state: Option<StitchState>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StitchState {
    pub entity_id: String,
    /// `None` until the first successful processing pass: the entity stays invisible.
    pub processed: Option<String>,
    /// JSON array of serialized errors, when the last pass failed.
    pub errors: Option<String>,
    /// False for orphans: nothing emits this entity any more.
    pub has_parents: bool,
    /// Distinct `(type, target)` of relations whose source is this entity, sorted.
    pub relations: Vec<(String, String)>,
    /// Hash of the final entity currently stored, if any.
    pub final_hash: Option<String>,
}

/// The stitch input of a child just stored with its inline result (see `WriteSummary::stitch`):
/// `peers` are the `(type, target)` of the peer rows whose source it is. Public so a caller that
/// assembles the same inputs from memory before the write gets an equal value when they agree.
pub fn inline_input(
    entity_id: &str,
    child: &crate::DeferredEntity,
    mut peers: Vec<(String, String)>,
    ticket: &str,
) -> StitchInput {
    let (processed, errors) = match child.processed.as_deref().map(|inline| &inline.outcome) {
        Some(crate::Outcome::Succeeded { processed, relations, .. }) => {
            peers.extend(
                relations
                    .iter()
                    .filter(|relation| relation.source == child.entity_ref)
                    .map(|relation| (relation.kind.clone(), relation.target.clone())),
            );
            (Some(processed.clone()), None)
        }
        Some(crate::Outcome::Failed { errors, .. }) => (None, Some(errors.clone())),
        Some(crate::Outcome::Unchanged) | None => (None, None),
    };
    peers.sort_unstable();
    peers.dedup();
    StitchInput {
        entity_ref: child.entity_ref.clone(),
        ticket: ticket.to_owned(),
        state: Some(StitchState {
            entity_id: entity_id.to_owned(),
            processed,
            errors,
            // Stored just now under the emitter that read it.
            has_parents: true,
            relations: peers,
            final_hash: None,
        }),
    }
}

/// What stitching reads of one entity, in one row.
#[derive(sqlx::FromRow)]
struct StateRow {
    entity_ref: String,
    entity_id: String,
    processed_entity: Option<String>,
    errors: Option<String>,
    /// The entity's own relations list (see `relations.rs`).
    relations: Option<String>,
    /// `[[type, target], …]` of the peer rows whose source it is; `NULL` or `[]` for none.
    peers: Option<String>,
    final_hash: Option<String>,
    has_parents: bool,
}

/// A final entity to store.
#[derive(Debug, Clone)]
pub struct FinalWrite {
    pub entity_ref: String,
    pub entity_id: String,
    pub final_entity: String,
    pub hash: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct FinalRow {
    pub entity_ref: String,
    pub final_entity: String,
}

/// What `write_stitched` did.
#[derive(Debug, Clone, Default)]
pub struct Stitched {
    /// The change sequence number of this write.
    pub seq: i64,
    /// Refs of writes and removals dropped: the entity was deleted meanwhile, or another
    /// stitcher took the ref over.
    pub skipped: Vec<String>,
}

/// Final entities written and deleted after some sequence number.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub upserts: Vec<FinalRow>,
    pub deletes: Vec<String>,
    /// The sequence number these changes bring a reader up to.
    pub seq: i64,
}

impl Store {
    /// The peer rows whose source is one of `refs`, as `(source, type, target, emitter)`, read
    /// outside any transaction: a view of what stitching them would find, good for showing new
    /// entities early (the stitch that stores them reads its own inputs).
    pub async fn peer_rows(&self, refs: &[&str]) -> Result<Vec<(String, String, String, String)>> {
        // One statement with the refs as one array parameter: a read of thousands of new refs
        // mostly finds nothing, and thousands of bound parameters would cost more than the read.
        const COLUMNS: &str =
            "SELECT source_entity_ref, type, target_entity_ref, originating_entity_ref FROM relations";
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        let rows = match &self.backend {
            crate::Backend::Sqlite(pool) => {
                let refs = serde_json::to_string(refs).unwrap_or_default();
                sqlx::query_as(&format!(
                    "{COLUMNS} WHERE source_entity_ref IN (SELECT value FROM json_each($1))"
                ))
                .bind(refs)
                .fetch_all(pool)
                .await?
            }
            crate::Backend::Postgres(pool) => {
                sqlx::query_as(&format!("{COLUMNS} WHERE source_entity_ref = ANY($1)"))
                    .bind(refs)
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(rows)
    }

    /// The stored final entities of those of `refs` that have one.
    pub async fn final_rows(&self, refs: &[&str]) -> Result<Vec<FinalRow>> {
        let rows = dispatch!(self, pool => {
            crate::fetch_in!(
                pool,
                "SELECT entity_ref, final_entity FROM final_entities WHERE entity_ref IN ({})",
                refs,
                FinalRow
            )
        });
        Ok(rows)
    }

    /// Those of `refs` that something emits (or a provider roots): the rest are orphans.
    pub async fn with_parents(&self, refs: &[&str]) -> Result<HashSet<String>> {
        let rows = dispatch!(self, pool => {
            crate::fetch_in!(
                pool,
                "SELECT DISTINCT target_entity_ref FROM refresh_state_references WHERE target_entity_ref IN ({})",
                refs,
                (String,)
            )
        });
        Ok(rows.into_iter().map(|(entity_ref,)| entity_ref).collect())
    }

    /// Reads up to `limit` queued refs with their stitch inputs. Refs stay queued until
    /// `write_stitched` removes them, so a crash in between only means stitching again; a ref
    /// queued again after this read stays queued through that `write_stitched`.
    pub async fn stitch_inputs(&self, limit: usize) -> Result<Vec<StitchInput>> {
        Ok(self.stitch_inputs_after(limit, "").await?.0)
    }

    /// `stitch_inputs` for queued refs after `after` in the database's order of refs only, with
    /// the greatest ref claimed in that order: a stitcher that works through the queue batch by
    /// batch claims the next batch, after that ref, while it writes the last one. (The order is
    /// the column's collation, which on PostgreSQL need not be Rust's byte order.)
    pub async fn stitch_inputs_after(
        &self,
        limit: usize,
        after: &str,
    ) -> Result<(Vec<StitchInput>, Option<String>)> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let inputs = dispatch!(self, pool => {
            let mut conn = pool.acquire().await?;
            let ticket = uuid::Uuid::new_v4().to_string();
            // One statement claims the batch: before any state is read, so an enqueue after it
            // sets `pending` again.
            // On PostgreSQL the rows are locked in ref order, skipping those another claim holds
            // this instant, as every writer of the queue locks them: claims cannot deadlock.
            let lock = if matches!(self.backend, crate::Backend::Postgres(_)) { " FOR UPDATE SKIP LOCKED" } else { "" };
            let sql = format!(
                "UPDATE stitch_queue SET pending = 0, ticket = $1
                 WHERE entity_ref IN (
                     SELECT entity_ref FROM stitch_queue WHERE entity_ref > $3 ORDER BY entity_ref LIMIT $2{lock})
                 RETURNING entity_ref"
            );
            let queued: Vec<(String,)> = sqlx::query_as(&sql)
            .bind(&ticket)
            .bind(limit)
            .bind(after)
            .fetch_all(&mut *conn)
            .await?;
            let mut refs: Vec<String> = queued.into_iter().map(|(entity_ref,)| entity_ref).collect();
            refs.sort_unstable();
            let (last,): (Option<String>,) = if refs.is_empty() {
                (None,)
            } else {
                sqlx::query_as(&self.sql("SELECT MAX(entity_ref) FROM stitch_queue WHERE ticket = $1".to_owned()))
                    .bind(&ticket)
                    .fetch_one(&mut *conn)
                    .await?
            };
            let mut inputs = Vec::with_capacity(refs.len());
            // One row per entity: row by row, each row costs a hop between threads in the
            // driver, so the peer rows come aggregated into one JSON array.
            let peers = match self.backend {
                crate::Backend::Sqlite(_) => "json_group_array(json_array(p.type, p.target_entity_ref))",
                crate::Backend::Postgres(_) => "json_agg(json_build_array(p.type, p.target_entity_ref))::text",
            };
            for chunk in refs.chunks(CHUNK) {
                let sql = self.sql(format!(
                    "SELECT r.entity_ref, r.entity_id, r.processed_entity, r.errors, r.relations,
                         (SELECT {peers} FROM relations p WHERE p.source_entity_ref = r.entity_ref) AS peers,
                         (SELECT f.hash FROM final_entities f WHERE f.entity_ref = r.entity_ref) AS final_hash,
                         EXISTS (SELECT 1 FROM refresh_state_references e WHERE e.target_entity_ref = r.entity_ref)
                             AS has_parents
                     FROM refresh_state r WHERE r.entity_ref IN ({})",
                    placeholders(chunk.len(), 1)
                ));
                let mut query = sqlx::query_as::<_, StateRow>(&sql);
                for entity_ref in chunk {
                    query = query.bind(entity_ref);
                }
                let mut states: HashMap<String, StateRow> = query
                    .fetch_all(&mut *conn)
                    .await?
                    .into_iter()
                    .map(|row| (row.entity_ref.clone(), row))
                    .collect();
                for entity_ref in chunk {
                    let state = states.remove(entity_ref).map(|row| {
                        // What other entities emitted with this source (see `relations.rs`).
                        let mut relations: Vec<(String, String)> = match row.peers.as_deref().map(serde_json::from_str) {
                            None => Vec::new(),
                            Some(Ok(peers)) => peers,
                            // The database built this text; only a damaged one gets here.
                            Some(Err(error)) => {
                                tracing::error!(entity.r#ref = %entity_ref, %error, "unreadable peer relations; stitched without them");
                                Vec::new()
                            }
                        };
                        relations.extend(
                            crate::relations::decode(entity_ref, row.relations.as_deref())
                                .unwrap_or_default()
                                .into_iter()
                                .filter(|relation| relation.source == *entity_ref)
                                .map(|relation| (relation.kind, relation.target)),
                        );
                        relations.sort_unstable();
                        relations.dedup();
                        StitchState {
                            entity_id: row.entity_id,
                            processed: row.processed_entity,
                            errors: row.errors,
                            has_parents: row.has_parents,
                            relations,
                            final_hash: row.final_hash,
                        }
                    });
                    inputs.push(StitchInput { entity_ref: entity_ref.clone(), ticket: ticket.clone(), state });
                }
            }
            (inputs, last)
        });
        Ok(inputs)
    }

    /// Stores final entities, deletes the finals of entities that are gone, and dequeues `done`
    /// (except refs queued again since `stitch_inputs` read them).
    /// Evaluates to the new change sequence number.
    pub async fn write_stitched(
        &self,
        ticket: &str,
        writes: &[FinalWrite],
        gone: &[String],
        done: &[String],
    ) -> Result<Stitched> {
        let stitched = transaction!(self, tx => {
            let tx = &mut tx;
            let seq = next_seq!(tx);
            // Only refs this stitcher still holds: another stitcher that read the same ref later
            // took the queue row over (and read newer state). `FOR UPDATE` on PostgreSQL makes a
            // takeover wait for this transaction, so it reads what this one writes.
            let mut held: HashSet<String> = HashSet::new();
            let mut all_refs: Vec<&String> = writes.iter().map(|write| &write.entity_ref).chain(gone).chain(done).collect();
            all_refs.sort_unstable();
            all_refs.dedup();
            let postgres = matches!(self.backend, crate::Backend::Postgres(_));
            let lock = if postgres { " FOR UPDATE" } else { "" };
            for chunk in all_refs.chunks(CHUNK) {
                // Usually every ref is still held: on SQLite a count says so without sending
                // each back (PostgreSQL locks the rows, which takes the rows themselves).
                if !postgres && count_in!(&mut **tx, "stitch_queue WHERE ticket = $1 AND entity_ref", Some(ticket), chunk) == chunk.len() {
                    held.extend(chunk.iter().map(|entity_ref| (*entity_ref).clone()));
                    continue;
                }
                let sql = self.sql(format!(
                    "SELECT entity_ref FROM stitch_queue WHERE ticket = $1 AND entity_ref IN ({}){lock}",
                    placeholders(chunk.len(), 2)
                ));
                let mut query = sqlx::query_as::<_, (String,)>(&sql).bind(ticket);
                for entity_ref in chunk {
                    query = query.bind(*entity_ref);
                }
                held.extend(query.fetch_all(&mut **tx).await?.into_iter().map(|(entity_ref,)| entity_ref));
            }
            let mut skipped: Vec<String> = writes
                .iter()
                .filter(|write| !held.contains(&write.entity_ref))
                .map(|write| write.entity_ref.clone())
                .collect();
            let writes: Vec<&FinalWrite> = writes.iter().filter(|write| held.contains(&write.entity_ref)).collect();
            skipped.extend(gone.iter().filter(|entity_ref| !held.contains(*entity_ref)).cloned());
            let gone: Vec<&String> = gone.iter().filter(|entity_ref| held.contains(*entity_ref)).collect();
            // Only entities that still exist under the id the stitcher read: one deleted since
            // (perhaps re-created under a new id) must not get its final entity back. Taking the
            // sequence number first orders this read after any deletion that is committing.
            let mut live: HashSet<String> = HashSet::new();
            for chunk in writes.chunks(CHUNK) {
                let ids: Vec<&String> = chunk.iter().map(|write| &write.entity_id).collect();
                if count_in!(&mut **tx, "refresh_state WHERE entity_id", None, &ids) == chunk.len() {
                    live.extend(ids.into_iter().cloned());
                    continue;
                }
                let sql = self.sql(format!(
                    "SELECT entity_id FROM refresh_state WHERE entity_id IN ({})",
                    placeholders(chunk.len(), 1)
                ));
                let mut query = sqlx::query_as::<_, (String,)>(&sql);
                for write in chunk {
                    query = query.bind(write.entity_id.as_str());
                }
                live.extend(query.fetch_all(&mut **tx).await?.into_iter().map(|(id,)| id));
            }
            skipped.extend(
                writes.iter().filter(|write| !live.contains(&write.entity_id)).map(|write| write.entity_ref.clone()),
            );
            let writes: Vec<&FinalWrite> =
                writes.into_iter().filter(|write| live.contains(&write.entity_id)).collect();
            for chunk in writes.chunks(CHUNK) {
                let sql = self.sql(format!(
                    "INSERT INTO final_entities (entity_ref, entity_id, final_entity, hash, seq) VALUES {}
                     ON CONFLICT (entity_ref) DO UPDATE SET entity_id = excluded.entity_id,
                         final_entity = excluded.final_entity, hash = excluded.hash, seq = excluded.seq",
                    crate::value_tuples(chunk.len(), 5, 1)
                ));
                let mut query = sqlx::query(&sql);
                for write in chunk {
                    query = query
                        .bind(write.entity_ref.as_str())
                        .bind(write.entity_id.as_str())
                        .bind(write.final_entity.as_str())
                        .bind(write.hash.as_str())
                        .bind(seq);
                }
                query.execute(&mut **tx).await?;
                let sql = self.sql(format!(
                    "DELETE FROM deleted_entities WHERE entity_ref IN ({})",
                    placeholders(chunk.len(), 1)
                ));
                let mut query = sqlx::query(&sql);
                for write in chunk {
                    query = query.bind(write.entity_ref.as_str());
                }
                query.execute(&mut **tx).await?;
            }
            let gone: Vec<&str> = gone.iter().map(|entity_ref| entity_ref.as_str()).collect();
            delete_final!(self, tx, &gone, seq);
            for chunk in done.chunks(CHUNK) {
                let sql = self.sql(format!(
                    "DELETE FROM stitch_queue WHERE entity_ref IN ({}) AND pending = 0 AND ticket = $1",
                    placeholders(chunk.len(), 2)
                ));
                let mut query = sqlx::query(&sql).bind(ticket);
                for entity_ref in chunk {
                    query = query.bind(entity_ref);
                }
                query.execute(&mut **tx).await?;
            }
            Stitched { seq, skipped }
        });
        Ok(stitched)
    }

    /// The refs waiting to be stitched, without claiming them (for tests and diagnostics).
    pub async fn stitch_queue_refs(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = dispatch!(self, pool => {
            sqlx::query_as("SELECT entity_ref FROM stitch_queue ORDER BY entity_ref").fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(|(entity_ref,)| entity_ref).collect())
    }

    /// The number of refs waiting to be stitched.
    pub async fn stitch_queue_len(&self) -> Result<i64> {
        let (count,): (i64,) = dispatch!(self, pool => {
            sqlx::query_as("SELECT COUNT(*) FROM stitch_queue").fetch_one(pool).await?
        });
        Ok(count)
    }

    /// This database's random id, fixed when its schema was created.
    pub async fn instance_id(&self) -> Result<String> {
        let (instance,): (String,) = dispatch!(self, pool => {
            sqlx::query_as("SELECT instance FROM catalog_instance WHERE id = 1").fetch_one(pool).await?
        });
        Ok(instance)
    }

    /// The current change sequence number.
    pub async fn current_seq(&self) -> Result<i64> {
        let (seq,): (i64,) = dispatch!(self, pool => {
            sqlx::query_as("SELECT value FROM catalog_seq WHERE id = 1").fetch_one(pool).await?
        });
        Ok(seq)
    }

    /// Refs of the most recently written final entities, newest first.
    pub async fn recently_changed(&self, limit: usize) -> Result<Vec<String>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(String,)> = dispatch!(self, pool => {
            sqlx::query_as("SELECT entity_ref FROM final_entities ORDER BY seq DESC, entity_ref LIMIT $1")
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(|(entity_ref,)| entity_ref).collect())
    }

    /// One page of all final entities, ordered by ref, after `after` (keyset pagination), for
    /// loading an index at startup without holding every body in memory at once.
    pub async fn final_entities_page(&self, after: &str, limit: usize) -> Result<Vec<FinalRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT entity_ref, final_entity FROM final_entities WHERE entity_ref > $1
                 ORDER BY entity_ref LIMIT $2",
            )
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// Final entities written or deleted after `since`, up to the current sequence number.
    pub async fn changes_since(&self, since: i64) -> Result<Changes> {
        let changes = dispatch!(self, pool => {
            let mut conn = pool.acquire().await?;
            let (seq,): (i64,) = sqlx::query_as("SELECT value FROM catalog_seq WHERE id = 1")
                .fetch_one(&mut *conn)
                .await?;
            if seq <= since {
                Changes { upserts: Vec::new(), deletes: Vec::new(), seq: since }
            } else {
                let upserts: Vec<FinalRow> = sqlx::query_as(
                    "SELECT entity_ref, final_entity FROM final_entities WHERE seq > $1 AND seq <= $2",
                )
                .bind(since)
                .bind(seq)
                .fetch_all(&mut *conn)
                .await?;
                let deletes: Vec<(String,)> = sqlx::query_as(
                    "SELECT entity_ref FROM deleted_entities WHERE seq > $1 AND seq <= $2",
                )
                .bind(since)
                .bind(seq)
                .fetch_all(&mut *conn)
                .await?;
                Changes { upserts, deletes: deletes.into_iter().map(|(r,)| r).collect(), seq }
            }
        });
        Ok(changes)
    }
}

/// Takes the next change sequence number. The row lock on `catalog_seq` is held until commit, so
/// on PostgreSQL concurrent writers commit in sequence order and a reader following `seq` never
/// skips a change.
/// How many rows of `$from IN (items)` exist, `$from` ending in the column compared; `$ticket`,
/// when `Some`, is bound as `$1` before the items. Evaluates to a `usize`.
macro_rules! count_in {
    ($executor:expr, $from:literal, $ticket:expr, $items:expr) => {{
        let ticket: Option<&str> = $ticket;
        let first = if ticket.is_some() { 2 } else { 1 };
        let sql = format!(
            concat!("SELECT COUNT(*) FROM ", $from, " IN ({})"),
            $crate::placeholders($items.len(), first)
        );
        let mut query = sqlx::query_as::<_, (i64,)>(&sql);
        if let Some(ticket) = ticket {
            query = query.bind(ticket);
        }
        for item in $items.iter() {
            query = query.bind(*item);
        }
        let (count,) = query.fetch_one($executor).await?;
        usize::try_from(count).unwrap_or(0)
    }};
}
use count_in;

macro_rules! next_seq {
    ($tx:expr) => {{
        let (seq,): (i64,) =
            sqlx::query_as("UPDATE catalog_seq SET value = value + 1 WHERE id = 1 RETURNING value")
                .fetch_one(&mut **$tx)
                .await?;
        seq
    }};
}
pub(crate) use next_seq;

/// Removes final entities and records their deletion in the change feed.
macro_rules! delete_final {
    ($store:expr, $tx:expr, $refs:expr, $seq:expr) => {{
        let refs: &[&str] = $refs;
        if !refs.is_empty() {
            let seq: i64 = $seq;
            for chunk in refs.chunks(crate::CHUNK) {
                let sql = $store.sql(format!(
                    "DELETE FROM final_entities WHERE entity_ref IN ({}) RETURNING entity_ref",
                    crate::placeholders(chunk.len(), 1)
                ));
                let mut query = sqlx::query_as::<_, (String,)>(&sql);
                for entity_ref in chunk {
                    query = query.bind(*entity_ref);
                }
                let removed = query.fetch_all(&mut **$tx).await?;
                if !removed.is_empty() {
                    let sql = $store.sql(format!(
                        "INSERT INTO deleted_entities (entity_ref, seq) VALUES {}
                         ON CONFLICT (entity_ref) DO UPDATE SET seq = excluded.seq",
                        crate::value_tuples(removed.len(), 2, 1)
                    ));
                    let mut query = sqlx::query(&sql);
                    for (entity_ref,) in &removed {
                        query = query.bind(entity_ref).bind(seq);
                    }
                    query.execute(&mut **$tx).await?;
                }
            }
        }
    }};
}
pub(crate) use delete_final;
