//! Orphan deletion, deletion by uid, refresh requests and ancestry (reference §6.13, §6.14).

use std::collections::HashSet;

use crate::processing::{delete_unreachable, enqueue_stitch};
use crate::{dispatch, now_millis, placeholders, transaction, value_tuples, Result, Store, CHUNK};

/// How far `refresh` and `ancestry` walk up the emitter graph; deeper chains are cut off, which
/// also stops a location cycle from looping.
const MAX_DEPTH: usize = 32;

/// One step of an entity's ancestry: the ref and the refs of the entities that emit it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AncestryItem {
    pub entity_ref: String,
    pub parent_refs: Vec<String>,
}

impl Store {
    /// Deletes every entity nothing emits any more, with descendants, in one transaction.
    /// Evaluates to the deleted refs.
    pub async fn delete_orphans(&self) -> Result<Vec<String>> {
        let deleted = transaction!(self, tx => {
            let orphans: Vec<(String,)> = sqlx::query_as(
                "SELECT r.entity_ref FROM refresh_state r WHERE NOT EXISTS
                 (SELECT 1 FROM refresh_state_references e WHERE e.target_entity_ref = r.entity_ref)",
            )
            .fetch_all(&mut *tx)
            .await?;
            let mut stitch = HashSet::new();
            let candidates = orphans.into_iter().map(|(entity_ref,)| entity_ref).collect();
            let deleted = delete_unreachable!(self, &mut tx, candidates, &mut stitch);
            enqueue_stitch!(self, &mut tx, &stitch);
            deleted
        });
        Ok(deleted)
    }

    /// `DELETE /entities/by-uid`: removes the entity, makes its parents process again at once
    /// (so a still-emitted entity comes back), and re-stitches its relation peers.
    /// Evaluates to false when no entity has that uid.
    pub async fn delete_entity_by_uid(&self, uid: &str) -> Result<bool> {
        let now = now_millis();
        let found = transaction!(self, tx => {
            let row: Option<(String,)> =
                sqlx::query_as("SELECT entity_ref FROM refresh_state WHERE entity_id = $1")
                    .bind(uid)
                    .fetch_optional(&mut *tx)
                    .await?;
            match row {
                None => false,
                Some((entity_ref,)) => {
                    let parents: Vec<(Option<String>,)> = sqlx::query_as(
                        "DELETE FROM refresh_state_references WHERE target_entity_ref = $1
                         RETURNING source_entity_ref",
                    )
                    .bind(&entity_ref)
                    .fetch_all(&mut *tx)
                    .await?;
                    let parents: Vec<String> =
                        parents.into_iter().filter_map(|(parent,)| parent).collect();
                    for chunk in parents.chunks(CHUNK) {
                        let sql = format!(
                            "UPDATE refresh_state SET result_hash = NULL, next_update_at = $1
                             WHERE entity_ref IN ({})",
                            placeholders(chunk.len(), 2)
                        );
                        let mut query = sqlx::query(&sql).bind(now);
                        for parent in chunk {
                            query = query.bind(parent);
                        }
                        query.execute(&mut *tx).await?;
                    }
                    let mut stitch = HashSet::new();
                    delete_unreachable!(self, &mut tx, vec![entity_ref], &mut stitch);
                    enqueue_stitch!(self, &mut tx, &stitch);
                    true
                }
            }
        });
        Ok(found)
    }

    /// `POST /refresh`: makes the entity and every `location:` ancestor due now.
    /// Evaluates to false when the entity is unknown or an orphan.
    pub async fn request_refresh(&self, entity_ref: &str) -> Result<bool> {
        if !self.has_parents(entity_ref).await? {
            return Ok(false);
        }
        let ancestry = self.ancestry(entity_ref).await?;
        let mut due: Vec<&str> = vec![entity_ref];
        due.extend(
            ancestry
                .iter()
                .skip(1)
                .map(|item| item.entity_ref.as_str())
                .filter(|ancestor| ancestor.starts_with("location:")),
        );
        self.make_due(&due).await?;
        Ok(true)
    }

    /// Sets `next_update_at = now` for these refs.
    pub async fn make_due(&self, refs: &[&str]) -> Result<()> {
        let now = now_millis();
        dispatch!(self, pool => {
            for chunk in refs.chunks(CHUNK) {
                let sql = format!(
                    "UPDATE refresh_state SET next_update_at = $1 WHERE entity_ref IN ({})",
                    placeholders(chunk.len(), 2)
                );
                let mut query = sqlx::query(&sql).bind(now);
                for entity_ref in chunk {
                    query = query.bind(*entity_ref);
                }
                query.execute(pool).await?;
            }
        });
        Ok(())
    }

    /// The entity followed by its emitter ancestors, each once, breadth first.
    /// Empty when the entity has no refresh state.
    pub async fn ancestry(&self, entity_ref: &str) -> Result<Vec<AncestryItem>> {
        let items = dispatch!(self, pool => {
            let mut conn = pool.acquire().await?;
            let exists: Option<(String,)> =
                sqlx::query_as("SELECT entity_ref FROM refresh_state WHERE entity_ref = $1")
                    .bind(entity_ref)
                    .fetch_optional(&mut *conn)
                    .await?;
            let mut items: Vec<AncestryItem> = Vec::new();
            if exists.is_some() {
                let mut seen: HashSet<String> = HashSet::new();
                let mut queue: Vec<String> = vec![entity_ref.to_owned()];
                seen.insert(entity_ref.to_owned());
                let mut depth = 0;
                while !queue.is_empty() && depth <= MAX_DEPTH {
                    depth += 1;
                    let mut next = Vec::new();
                    for current in queue {
                        let parents: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
                            "SELECT source_entity_ref, source_key FROM refresh_state_references
                             WHERE target_entity_ref = $1 ORDER BY source_entity_ref",
                        )
                        .bind(&current)
                        .fetch_all(&mut *conn)
                        .await?;
                        let mut parent_refs = Vec::new();
                        for (parent, _provider) in parents {
                            if let Some(parent) = parent {
                                if seen.insert(parent.clone()) {
                                    next.push(parent.clone());
                                }
                                parent_refs.push(parent);
                            }
                        }
                        parent_refs.dedup();
                        items.push(AncestryItem { entity_ref: current, parent_refs });
                    }
                    queue = next;
                }
            }
            items
        });
        Ok(items)
    }

    /// Refs the entity emits (a Location's targets' entities), sorted.
    pub async fn children_of(&self, entity_ref: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT target_entity_ref FROM refresh_state_references WHERE source_entity_ref = $1
                 ORDER BY target_entity_ref",
            )
            .bind(entity_ref)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(|(entity_ref,)| entity_ref).collect())
    }

    /// True when a provider or a parent still emits the entity.
    pub async fn has_parents(&self, entity_ref: &str) -> Result<bool> {
        let row: Option<(i32,)> = dispatch!(self, pool => {
            sqlx::query_as("SELECT 1 FROM refresh_state_references WHERE target_entity_ref = $1 LIMIT 1")
                .bind(entity_ref)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.is_some())
    }

    /// Extends the leases of entities still being processed (those whose lease was not released).
    pub async fn renew_leases(&self, entity_ids: &[String], lease_ms: i64) -> Result<()> {
        let until = now_millis() + lease_ms;
        dispatch!(self, pool => {
            for chunk in entity_ids.chunks(CHUNK) {
                let sql = format!(
                    "UPDATE refresh_state SET lease_until = $1 WHERE lease_until > 0 AND entity_id IN ({})",
                    placeholders(chunk.len(), 2)
                );
                let mut query = sqlx::query(&sql).bind(until);
                for id in chunk {
                    query = query.bind(id);
                }
                query.execute(pool).await?;
            }
        });
        Ok(())
    }

    /// Expires every lease now, so work a crashed process had claimed is picked up at once.
    /// Only for a single-node database (SQLite); replicas on PostgreSQL wait for the lease.
    pub async fn expire_all_leases(&self) -> Result<()> {
        dispatch!(self, pool => {
            sqlx::query("UPDATE refresh_state SET lease_until = 1 WHERE lease_until > 1")
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Counts rows per table, for progress reporting and tests.
    pub async fn counts(&self) -> Result<StoreCounts> {
        let counts = dispatch!(self, pool => {
            let mut conn = pool.acquire().await?;
            let mut values = [0i64; 4];
            // Relations are counted as emitted: each entity's stored list (see `relations.rs`).
            let relations = match self.backend {
                crate::Backend::Sqlite(_) => "SELECT CAST(COALESCE(SUM(json_array_length(relations)), 0) AS BIGINT) FROM refresh_state",
                crate::Backend::Postgres(_) => "SELECT CAST(COALESCE(SUM(json_array_length(relations::json)), 0) AS BIGINT) FROM refresh_state",
            };
            for (index, sql) in [
                "SELECT COUNT(*) FROM refresh_state",
                "SELECT COUNT(*) FROM final_entities",
                relations,
                "SELECT COUNT(*) FROM stitch_queue",
            ]
            .iter()
            .enumerate()
            {
                let (count,): (i64,) = sqlx::query_as(sql).fetch_one(&mut *conn).await?;
                values[index] = count;
            }
            StoreCounts {
                refresh_state: values[0],
                final_entities: values[1],
                relations: values[2],
                stitch_queue: values[3],
            }
        });
        Ok(counts)
    }

    /// Runs one statement as it is (tests that damage data on purpose).
    #[cfg(test)]
    pub(crate) async fn execute_for_test(&self, sql: &str) -> Result<()> {
        dispatch!(self, pool => {
            sqlx::query(sql).execute(pool).await?;
        });
        Ok(())
    }

    /// Inserts raw emitter edges; used by tests to build graphs directly.
    #[doc(hidden)]
    pub async fn insert_edges_for_test(&self, edges: &[(&str, &str)]) -> Result<()> {
        dispatch!(self, pool => {
            for chunk in edges.chunks(CHUNK) {
                let sql = format!(
                    "INSERT INTO refresh_state_references (source_entity_ref, target_entity_ref) VALUES {}",
                    value_tuples(chunk.len(), 2, 1)
                );
                let mut query = sqlx::query(&sql);
                for (source, target) in chunk {
                    query = query.bind(*source).bind(*target);
                }
                query.execute(pool).await?;
            }
        });
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCounts {
    pub refresh_state: i64,
    pub final_entities: i64,
    pub relations: i64,
    pub stitch_queue: i64,
}
