//! Provider mutations, claiming due entities under a lease, and writing processing results.

use std::collections::{HashMap, HashSet};

use crate::{dispatch, now_millis, placeholders, transaction, value_tuples, Result, Store, CHUNK};

/// An unprocessed entity handed over by a provider or emitted by a parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeferredEntity {
    pub entity_ref: String,
    /// The entity as received, JSON text.
    pub entity: String,
    /// A hash of `entity`, so unchanged input is not written again.
    pub hash: String,
    /// The owner of this ref; another key writing the same ref is a conflict (first wins).
    pub location_key: Option<String>,
    /// The entity's first processing pass, when the emitter already ran it (see `InlineResult`).
    pub processed: Option<Box<InlineResult>>,
}

/// A child's processing pass run by the engine right after its parent read it. When the child is
/// new, it is stored processed in the parent's transaction: no separate claim, no second write of
/// its row. A child that already exists ignores this and is processed on its own claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineResult {
    /// `Succeeded` (without children) or `Failed`; never `Unchanged`.
    pub outcome: Outcome,
    /// When the next pass is due: what a claim would have set, interval plus jitter.
    pub next_update_at: i64,
    /// The id the entity is inserted under (`None`: a fresh one). The engine chooses it, so it
    /// can show the new entity, uid and all, before this write commits.
    pub entity_id: Option<String>,
}

/// A provider's change to the set of entities it roots (reference §6.3).
#[derive(Debug, Clone)]
pub enum ProviderMutation {
    /// Replace everything the provider roots.
    Full { entities: Vec<DeferredEntity> },
    /// Add or update some entities and remove others (by canonical ref).
    Delta { added: Vec<DeferredEntity>, removed: Vec<String> },
}

/// An entity claimed for processing. Nobody else claims it until `lease_until` passes.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedEntity {
    pub entity_id: String,
    pub entity_ref: String,
    pub unprocessed_entity: String,
    pub result_hash: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RelationRow {
    pub source: String,
    pub kind: String,
    pub target: String,
}

#[derive(Debug, Clone)]
pub struct ProcessOutcome {
    pub entity_id: String,
    pub entity_ref: String,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The result hash equals the stored one: only the lease is released.
    Unchanged,
    /// The pass failed: errors are stored, the last good processed entity stays.
    Failed { result_hash: String, errors: String },
    Succeeded {
        result_hash: String,
        processed: String,
        relations: Vec<RelationRow>,
        children: Vec<DeferredEntity>,
    },
}

/// What `write_results` and mutations report back, mostly for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteSummary {
    pub conflicts: Vec<Conflict>,
    pub deleted: Vec<String>,
    /// Refs of children stored with their inline result (the others' results were dropped).
    pub inline: Vec<String>,
    /// Refs of processed entities whose result was dropped: the entity was deleted meanwhile.
    pub dropped: Vec<String>,
    /// The stitch inputs of those children, claimed by `write_results_and_claim_new`: the
    /// caller stitches them from here, without reading them back, and stores the results with
    /// `write_stitched`. Until then they stay queued, so a caller that stops first loses nothing.
    pub stitch: Vec<crate::StitchInput>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub entity_ref: String,
    pub existing_location_key: Option<String>,
    pub new_location_key: Option<String>,
}

impl Store {
    /// Applies a provider mutation in one transaction. Removed roots are deleted eagerly with every
    /// descendant nothing else keeps alive.
    pub async fn apply_mutation(&self, provider: &str, mutation: ProviderMutation) -> Result<WriteSummary> {
        let now = now_millis();
        let mut summary = WriteSummary::default();
        transaction!(self, tx => {
            let (added, removed) = match mutation {
                ProviderMutation::Full { entities } => {
                    let existing: Vec<(String,)> = sqlx::query_as(
                        "SELECT target_entity_ref FROM refresh_state_references WHERE source_key = $1",
                    )
                    .bind(provider)
                    .fetch_all(&mut *tx)
                    .await?;
                    let keep: HashSet<&str> =
                        entities.iter().map(|entity| entity.entity_ref.as_str()).collect();
                    let removed: Vec<String> = existing
                        .into_iter()
                        .map(|(entity_ref,)| entity_ref)
                        .filter(|entity_ref| !keep.contains(entity_ref.as_str()))
                        .collect();
                    (entities, removed)
                }
                ProviderMutation::Delta { added, removed } => (added, removed),
            };

            for chunk in removed.chunks(CHUNK) {
                let sql = self.sql(format!(
                    "DELETE FROM refresh_state_references WHERE source_key = $1 AND target_entity_ref IN ({})",
                    placeholders(chunk.len(), 2)
                ));
                let mut query = sqlx::query(&sql).bind(provider);
                for entity_ref in chunk {
                    query = query.bind(entity_ref);
                }
                query.execute(&mut *tx).await?;
            }

            let mut stitch: HashSet<String> = HashSet::new();
            let (accepted, conflicts, _fresh, inline) = upsert_unprocessed!(self, &mut tx, &added.iter().collect::<Vec<_>>(), now);
            summary.conflicts = conflicts;
            store_inline!(self, &mut tx, &inline, &mut stitch);
            summary.inline = inline.iter().map(|(_, child)| child.entity_ref.clone()).collect();
            let accepted_refs: Vec<&str> = accepted.iter().map(String::as_str).collect();
            for chunk in accepted_refs.chunks(CHUNK) {
                let sql = self.sql(format!(
                    "DELETE FROM refresh_state_references WHERE source_key = $1 AND target_entity_ref IN ({})",
                    placeholders(chunk.len(), 2)
                ));
                let mut query = sqlx::query(&sql).bind(provider);
                for entity_ref in chunk {
                    query = query.bind(*entity_ref);
                }
                query.execute(&mut *tx).await?;
                let sql = self.sql(format!(
                    "INSERT INTO refresh_state_references (source_key, target_entity_ref) VALUES {}",
                    value_tuples(chunk.len(), 2, 1)
                ));
                let mut query = sqlx::query(&sql);
                for entity_ref in chunk {
                    query = query.bind(provider).bind(*entity_ref);
                }
                query.execute(&mut *tx).await?;
            }
            // An entity that was an orphan and is now rooted again needs its annotation removed.
            stitch.extend(accepted.iter().cloned());

            summary.deleted = delete_unreachable!(self, &mut tx, removed, &mut stitch);
            enqueue_stitch!(self, &mut tx, &stitch);
        });
        Ok(summary)
    }

    /// Claims up to `limit` due entities. Each claim pushes `next_update_at` to a random point in
    /// `[interval, 1.5 × interval]` (Backstage's jitter, so refreshes spread out) and takes a lease
    /// so no other replica processes the same entity before `lease_ms` passes or the result lands.
    ///
    /// Writing a result resets the lease to 0, so a lease that is set but expired means the
    /// claimer died mid-pass: such an entity is due at once rather than at its next interval.
    /// The two cases are separate subqueries (not one `OR`) so each uses its index: an idle poll
    /// then costs two index probes, not a scan of every entity.
    pub async fn claim_due(
        &self,
        limit: usize,
        interval_ms: i64,
        lease_ms: i64,
    ) -> Result<Vec<ClaimedEntity>> {
        let now = now_millis();
        let spread = (interval_ms / 2).max(1);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // The dialects differ in `random()` and in row locking; the parameters are the same.
        let sql = match &self.backend {
            crate::Backend::Sqlite(_) => {
                "UPDATE refresh_state
                     SET next_update_at = $1 + $2 + (abs(random()) % $3), lease_until = $1 + $4
                     WHERE entity_id IN (
                         SELECT entity_id FROM (
                             SELECT entity_id FROM refresh_state
                             WHERE next_update_at <= $1 AND lease_until <= $1
                             ORDER BY next_update_at LIMIT $5)
                         UNION
                         SELECT entity_id FROM (
                             SELECT entity_id FROM refresh_state
                             WHERE lease_until > 0 AND lease_until <= $1 LIMIT $5))
                     RETURNING entity_id, entity_ref, unprocessed_entity, result_hash"
            }
            crate::Backend::Postgres(_) => {
                "UPDATE refresh_state
                     SET next_update_at = $1 + $2 + floor(random() * $3)::bigint, lease_until = $1 + $4
                     WHERE entity_id IN (
                         SELECT entity_id FROM refresh_state
                         WHERE next_update_at <= $1 AND lease_until <= $1
                         ORDER BY next_update_at LIMIT $5
                         FOR UPDATE SKIP LOCKED)
                     OR entity_id IN (
                         SELECT entity_id FROM refresh_state
                         WHERE lease_until > 0 AND lease_until <= $1
                         LIMIT $5
                         FOR UPDATE SKIP LOCKED)
                     RETURNING entity_id, entity_ref, unprocessed_entity, result_hash"
            }
        };
        let rows = dispatch!(self, pool => {
            sqlx::query_as(sql)
                .bind(now)
                .bind(interval_ms)
                .bind(spread)
                .bind(lease_ms)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        Ok(rows)
    }

    /// Writes a batch of processing results in one transaction and queues every entity whose
    /// final form may have changed for stitching.
    pub async fn write_results(&self, outcomes: &[ProcessOutcome]) -> Result<WriteSummary> {
        self.write_results_inner(outcomes, false).await
    }

    /// `write_results`, which also hands back the children stored with their inline result,
    /// claimed for stitching (see `WriteSummary::stitch`). Worth it for the last write of a
    /// round: earlier ones would have them stitched again when later writes add peers.
    pub async fn write_results_and_claim_new(&self, outcomes: &[ProcessOutcome]) -> Result<WriteSummary> {
        self.write_results_inner(outcomes, true).await
    }

    async fn write_results_inner(
        &self,
        outcomes: &[ProcessOutcome],
        claim_new: bool,
    ) -> Result<WriteSummary> {
        let now = now_millis();
        let mut summary = WriteSummary::default();
        transaction!(self, tx => {
            let mut stitch: HashSet<String> = HashSet::new();
            let mut parents: Vec<&str> = Vec::new();
            let mut children: Vec<(&str, &DeferredEntity)> = Vec::new();
            let mut unchanged: Vec<&str> = Vec::new();
            // (id, result hash, errors)
            let mut failed_rows: Vec<(&str, &str, &str)> = Vec::new();
            // (id, result hash, processed entity, emitted relations as stored)
            let mut succeeded_rows: Vec<(&str, &str, &str, String)> = Vec::new();
            // The distinct relations of each succeeded outcome, by entity id.
            let mut emitted: HashMap<&str, Vec<&RelationRow>> = HashMap::new();
            for outcome in outcomes {
                match &outcome.outcome {
                    Outcome::Unchanged => unchanged.push(outcome.entity_id.as_str()),
                    Outcome::Failed { result_hash, errors } => {
                        failed_rows.push((&outcome.entity_id, result_hash, errors));
                    }
                    Outcome::Succeeded { result_hash, processed, relations, .. } => {
                        // A processor may emit the same relation twice; it is stored once.
                        let distinct = crate::relations::distinct(relations);
                        let stored = crate::relations::encode(&outcome.entity_ref, &distinct);
                        emitted.insert(&outcome.entity_id, distinct);
                        succeeded_rows.push((&outcome.entity_id, result_hash, processed, stored));
                    }
                }
            }
            let timer = std::time::Instant::now();
            // What the succeeded entities emitted before this pass, to diff against. On PostgreSQL
            // the rows are locked (in id order, as every writer of them): a second writer of the
            // same entity (after a lease ran out) then diffs against what the first one wrote.
            let mut succeeded_ids: Vec<&str> = succeeded_rows.iter().map(|(id, ..)| *id).collect();
            succeeded_ids.sort_unstable();
            let lock = if matches!(self.backend, crate::Backend::Postgres(_)) { " FOR UPDATE" } else { "" };
            let mut old_emitted: HashMap<String, Vec<RelationRow>> = HashMap::new();
            // Refs whose stored list is unreadable: their peer rows are found by a scan.
            let mut unreadable: Vec<String> = Vec::new();
            for chunk in succeeded_ids.chunks(CHUNK) {
                let sql = self.sql(format!(
                    "SELECT entity_id, entity_ref, relations FROM refresh_state WHERE entity_id IN ({}) ORDER BY entity_id{lock}",
                    placeholders(chunk.len(), 1)
                ));
                let mut query = sqlx::query_as::<_, (String, String, Option<String>)>(&sql);
                for id in chunk {
                    query = query.bind(*id);
                }
                for (id, entity_ref, relations) in query.fetch_all(&mut *tx).await? {
                    match crate::relations::decode(&entity_ref, relations.as_deref()) {
                        Some(old) => {
                            old_emitted.insert(id, old);
                        }
                        None => unreadable.push(entity_ref),
                    }
                }
            }
            // One multi-row UPDATE per chunk instead of one statement per entity. RETURNING tells
            // which entities still exist: one deleted while it was being processed (its id is
            // gone even if the ref has come back) must have its result dropped, or its relations
            // and children would hang off an entity that no longer exists.
            let mut updated: HashSet<String> = HashSet::new();
            for chunk in failed_rows.chunks(CHUNK) {
                let sql = self.sql(format!(
                    "UPDATE refresh_state SET result_hash = v.column2, errors = v.column3, lease_until = 0
                     FROM (VALUES {}) AS v WHERE refresh_state.entity_id = v.column1
                     RETURNING refresh_state.entity_id",
                    value_tuples(chunk.len(), 3, 1)
                ));
                let mut query = sqlx::query_as::<_, (String,)>(&sql);
                for (id, hash, errors) in chunk {
                    query = query.bind(*id).bind(*hash).bind(*errors);
                }
                updated.extend(query.fetch_all(&mut *tx).await?.into_iter().map(|(id,)| id));
            }
            for chunk in succeeded_rows.chunks(CHUNK) {
                let sql = self.sql(format!(
                    "UPDATE refresh_state
                     SET result_hash = v.column2, errors = NULL, processed_entity = v.column3,
                         relations = v.column4, lease_until = 0
                     FROM (VALUES {}) AS v WHERE refresh_state.entity_id = v.column1
                     RETURNING refresh_state.entity_id",
                    value_tuples(chunk.len(), 4, 1)
                ));
                let mut query = sqlx::query_as::<_, (String,)>(&sql);
                for (id, hash, body, relations) in chunk {
                    query = query.bind(*id).bind(*hash).bind(*body).bind(relations.as_str());
                }
                updated.extend(query.fetch_all(&mut *tx).await?.into_iter().map(|(id,)| id));
            }
            // Peer rows that this pass removed and added, as (emitter ref, relation).
            let mut peers_gone: Vec<(&str, &RelationRow)> = Vec::new();
            let mut peers_new: Vec<(&str, &RelationRow)> = Vec::new();
            for outcome in outcomes {
                if !updated.contains(&outcome.entity_id) {
                    if !matches!(outcome.outcome, Outcome::Unchanged) {
                        summary.dropped.push(outcome.entity_ref.clone());
                    }
                    continue;
                }
                match &outcome.outcome {
                    Outcome::Unchanged => {}
                    Outcome::Failed { .. } => {
                        stitch.insert(outcome.entity_ref.clone());
                    }
                    Outcome::Succeeded { children: kids, .. } => {
                        stitch.insert(outcome.entity_ref.clone());
                        // Only sources whose relations actually changed are re-stitched: a pass
                        // that keeps its relations (the common case on refresh) touches nobody
                        // else, and writes no peer row.
                        let emitter = outcome.entity_ref.as_str();
                        let new: HashSet<&RelationRow> =
                            emitted.get(outcome.entity_id.as_str()).into_iter().flatten().copied().collect();
                        let old: HashSet<&RelationRow> =
                            old_emitted.get(&outcome.entity_id).into_iter().flatten().collect();
                        for relation in old.difference(&new) {
                            stitch.insert(relation.source.clone());
                            if relation.source != emitter {
                                peers_gone.push((emitter, relation));
                            }
                        }
                        for relation in new.difference(&old) {
                            stitch.insert(relation.source.clone());
                            if relation.source != emitter {
                                peers_new.push((emitter, relation));
                            }
                        }
                        parents.push(&outcome.entity_ref);
                        for child in kids {
                            children.push((&outcome.entity_ref, child));
                        }
                    }
                }
            }

            let t_update = timer.elapsed().as_millis();
            crate::execute_in!(&mut *tx, "UPDATE refresh_state SET lease_until = 0 WHERE entity_id IN ({})", unchanged);
            let unreadable: Vec<&str> = unreadable.iter().map(String::as_str).collect();
            crate::relations::delete_peer_relations_of!(&mut tx, &unreadable, &mut stitch);
            crate::relations::delete_peer_relations!(self, &mut tx, &peers_gone);
            crate::relations::insert_peer_relations!(self, &mut tx, &peers_new);

            let t_relations = timer.elapsed().as_millis();
            // Emitter edges: children no longer emitted become orphans (and are re-stitched so
            // they show it); emitted children are upserted under the conflict rule.
            // Only edges that changed are written: a Location re-read with the same targets (a
            // refresh) touches none of its possibly hundreds of thousands of edges.
            let old_edges: HashSet<(String, String)> = crate::fetch_in!(
                &mut *tx,
                "SELECT source_entity_ref, target_entity_ref FROM refresh_state_references
                 WHERE source_entity_ref IN ({})",
                parents,
                (String, String)
            )
            .into_iter()
            .collect();
            // A Location may not emit one of its own emitters (or itself): such an edge would
            // close a cycle that keeps every entity on it alive after its root is gone. The
            // child is not followed and the emitter shows why.
            let mut cycles: HashMap<&str, Vec<&str>> = HashMap::new();
            let emitting_locations: HashSet<&str> = children
                .iter()
                .filter(|(_, child)| child.entity_ref.starts_with("location:"))
                .map(|(parent, _)| *parent)
                .collect();
            for parent in emitting_locations {
                let ancestors: HashSet<String> = sqlx::query_as::<_, (String,)>(
                    "WITH RECURSIVE up(entity_ref) AS (
                         SELECT CAST($1 AS TEXT)
                         UNION
                         SELECT r.source_entity_ref FROM refresh_state_references r
                         JOIN up ON r.target_entity_ref = up.entity_ref
                         WHERE r.source_entity_ref IS NOT NULL
                     ) SELECT entity_ref FROM up",
                )
                .bind(parent)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|(entity_ref,)| entity_ref)
                .collect();
                for (emitter, child) in &children {
                    if *emitter == parent && ancestors.contains(&child.entity_ref) {
                        cycles.entry(parent).or_default().push(&child.entity_ref);
                    }
                }
            }
            if !cycles.is_empty() {
                children.retain(|(parent, child)| {
                    !cycles.get(parent).is_some_and(|refs| refs.contains(&child.entity_ref.as_str()))
                });
                for outcome in outcomes {
                    let Some(refs) = cycles.get(outcome.entity_ref.as_str()) else { continue };
                    let errors: Vec<serde_json::Value> = refs
                        .iter()
                        .map(|target| {
                            serde_json::json!({
                                "name": "InputError",
                                "message": if *target == outcome.entity_ref {
                                    format!("Location cycle: {target} lists itself as a target; it was not followed again")
                                } else {
                                    format!(
                                        "Location cycle: {target} already emits {} (directly or through other locations), so it was not followed again",
                                        outcome.entity_ref
                                    )
                                },
                            })
                        })
                        .collect();
                    // An empty result hash makes the next pass write again, so the error goes
                    // away once the cycle is broken elsewhere.
                    sqlx::query("UPDATE refresh_state SET errors = $1, result_hash = '' WHERE entity_id = $2")
                        .bind(serde_json::Value::Array(errors).to_string())
                        .bind(&outcome.entity_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            let deferred: Vec<&DeferredEntity> = children.iter().map(|(_, child)| *child).collect();
            let t_cycles = timer.elapsed().as_millis();
            let (accepted, conflicts, fresh, inline) = upsert_unprocessed!(self, &mut tx, &deferred, now);
            let t_upsert = timer.elapsed().as_millis();
            summary.conflicts = conflicts;
            store_inline!(self, &mut tx, &inline, &mut stitch);
            summary.inline = inline.iter().map(|(_, child)| child.entity_ref.clone()).collect();
            let t_inline = timer.elapsed().as_millis();
            let accepted: HashSet<String> = accepted.into_iter().collect();
            let new_edges: HashSet<(String, String)> = children
                .iter()
                .filter(|(_, child)| accepted.contains(&child.entity_ref))
                .map(|(parent, child)| ((*parent).to_owned(), child.entity_ref.clone()))
                .collect();
            let mut removed: HashMap<&str, Vec<&str>> = HashMap::new();
            for (parent, child) in old_edges.difference(&new_edges) {
                removed.entry(parent.as_str()).or_default().push(child.as_str());
            }
            for (parent, children) in &removed {
                for chunk in children.chunks(CHUNK) {
                    let sql = self.sql(format!(
                        "DELETE FROM refresh_state_references
                         WHERE source_entity_ref = $1 AND target_entity_ref IN ({})",
                        placeholders(chunk.len(), 2)
                    ));
                    let mut query = sqlx::query(&sql).bind(*parent);
                    for child in chunk {
                        query = query.bind(*child);
                    }
                    query.execute(&mut *tx).await?;
                }
            }
            let added: Vec<&(String, String)> = new_edges.difference(&old_edges).collect();
            for chunk in added.chunks(CHUNK) {
                let sql = self.sql(format!(
                    "INSERT INTO refresh_state_references (source_entity_ref, target_entity_ref) VALUES {}",
                    value_tuples(chunk.len(), 2, 1)
                ));
                let mut query = sqlx::query(&sql);
                for (parent, child) in chunk {
                    query = query.bind(parent).bind(child);
                }
                query.execute(&mut *tx).await?;
            }
            let t_edges = timer.elapsed().as_millis();
            // Children that lost or gained an emitter edge change their orphan mark; the others
            // are stitched when their own pass changes something.
            for (_, child) in old_edges.symmetric_difference(&new_edges) {
                if !fresh.contains(child) {
                    stitch.insert(child.clone());
                }
            }
            // Children stored with their inline result have every stitch input at hand: their
            // processed form and own relations are in memory, and every peer row about them is
            // written by now, this transaction's and earlier ones'. They are queued claimed
            // under a ticket and handed back (see `WriteSummary::stitch`).
            let ticket = uuid::Uuid::new_v4().to_string();
            let claimed = if claim_new { inline.as_slice() } else { &[] };
            let inline_refs: Vec<&str> = claimed.iter().map(|(_, child)| child.entity_ref.as_str()).collect();
            for entity_ref in &inline_refs {
                stitch.remove(*entity_ref);
            }
            // Queue (and on PostgreSQL lock) first, read after: a concurrent writer that changes
            // these entities' peer rows either committed before the read, which then sees it, or
            // waits for this transaction and sets them pending again.
            enqueue_stitch!(self, &mut tx, &stitch, &inline_refs, &ticket);
            let mut peers: HashMap<String, Vec<(String, String)>> = HashMap::new();
            for (source, kind, target) in crate::fetch_in!(
                &mut *tx,
                "SELECT source_entity_ref, type, target_entity_ref FROM relations WHERE source_entity_ref IN ({})",
                inline_refs,
                (String, String, String)
            ) {
                peers.entry(source).or_default().push((kind, target));
            }
            for (entity_id, child) in claimed {
                summary.stitch.push(crate::stitch::inline_input(
                    entity_id,
                    child,
                    peers.remove(&child.entity_ref).unwrap_or_default(),
                    &ticket,
                ));
            }
            tracing::debug!(t_update, t_relations, t_cycles, t_upsert, t_inline, t_edges, t_stitch = timer.elapsed().as_millis(), stitch = stitch.len(), "write_results phases");
        });
        Ok(summary)
    }
}

/// Inserts or updates unprocessed entities under the first-owner-wins rule (reference §6.10).
/// Evaluates to `(accepted refs, conflicts, refs inserted now, inserted with an inline result)`;
/// the caller stores the relations of the last and stitches them. A macro so one text serves both
/// databases.
macro_rules! upsert_unprocessed {
    ($store:expr, $tx:expr, $entities:expr, $now:expr) => {{
        let tx = $tx;
        let entities: &[&DeferredEntity] = $entities;
        let mut accepted: Vec<String> = Vec::new();
        // Refs inserted now, never processed: nothing to stitch for them yet.
        let mut fresh: HashSet<String> = HashSet::new();
        let mut conflicts: Vec<crate::processing::Conflict> = Vec::new();
        // (new entity id, entity) of fresh rows stored with their inline processing result.
        let mut inline: Vec<(String, &DeferredEntity)> = Vec::new();
        // The last occurrence of a ref wins within one batch, as if written one after another.
        let mut unique: HashMap<&str, &DeferredEntity> = HashMap::new();
        for entity in entities.iter().copied() {
            unique.insert(entity.entity_ref.as_str(), entity);
        }
        let mut ordered: Vec<&DeferredEntity> = unique.into_values().collect();
        ordered.sort_by(|a, b| a.entity_ref.cmp(&b.entity_ref));
        for chunk in ordered.chunks(CHUNK) {
            // Usually one round. On PostgreSQL a concurrent transaction may insert a ref between
            // our SELECT and INSERT; the INSERT then skips it and the next round sees that row
            // and applies the conflict rule to it.
            let mut pending: Vec<&DeferredEntity> = chunk.to_vec();
            while !pending.is_empty() {
                let sql = $store.sql(format!(
                    "SELECT entity_ref, unprocessed_hash, location_key FROM refresh_state WHERE entity_ref IN ({})",
                    placeholders(pending.len(), 1)
                ));
                let mut query = sqlx::query_as::<_, (String, String, Option<String>)>(&sql);
                for entity in &pending {
                    query = query.bind(entity.entity_ref.as_str());
                }
                let existing: HashMap<String, (String, Option<String>)> = query
                    .fetch_all(&mut **tx)
                    .await?
                    .into_iter()
                    .map(|(entity_ref, hash, key)| (entity_ref, (hash, key)))
                    .collect();
                let mut inserts: Vec<&DeferredEntity> = Vec::new();
                for entity in pending {
                    match existing.get(&entity.entity_ref) {
                        None => {
                            inserts.push(entity);
                            continue;
                        }
                        Some((_, Some(key))) if entity.location_key.as_deref() != Some(key.as_str()) => {
                            conflicts.push(crate::processing::Conflict {
                                entity_ref: entity.entity_ref.clone(),
                                existing_location_key: Some(key.clone()),
                                new_location_key: entity.location_key.clone(),
                            });
                            continue;
                        }
                        Some((hash, key)) => {
                            if *hash != entity.hash || *key != entity.location_key {
                                sqlx::query(
                                    "UPDATE refresh_state
                                     SET unprocessed_entity = $1, unprocessed_hash = $2, location_key = $3,
                                         next_update_at = $4
                                     WHERE entity_ref = $5",
                                )
                                .bind(entity.entity.as_str())
                                .bind(entity.hash.as_str())
                                .bind(entity.location_key.as_deref())
                                .bind($now)
                                .bind(entity.entity_ref.as_str())
                                .execute(&mut **tx)
                                .await?;
                            }
                        }
                    }
                    accepted.push(entity.entity_ref.clone());
                }
                pending = Vec::new();
                if !inserts.is_empty() {
                    let sql = $store.sql(format!(
                        "INSERT INTO refresh_state
                         (entity_id, entity_ref, unprocessed_entity, unprocessed_hash, location_key, next_update_at,
                          processed_entity, result_hash, errors, relations)
                         VALUES {}
                         ON CONFLICT (entity_ref) DO NOTHING RETURNING entity_ref",
                        value_tuples(inserts.len(), 10, 1)
                    ));
                    // Time-ordered ids (UUID v7): new rows append at the right edge of the id
                    // indexes instead of landing on random pages.
                    let ids: Vec<String> = inserts
                        .iter()
                        .map(|entity| {
                            entity.processed.as_ref().and_then(|inline| inline.entity_id.clone())
                                .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
                        })
                        .collect();
                    let mut query = sqlx::query_as::<_, (String,)>(&sql);
                    for (entity, id) in inserts.iter().zip(&ids) {
                        let (processed, result_hash, errors, relations, next_update_at) =
                            match entity.processed.as_deref() {
                                Some(crate::processing::InlineResult {
                                    outcome:
                                        crate::processing::Outcome::Succeeded { result_hash, processed, relations, .. },
                                    next_update_at,
                                    ..
                                }) => {
                                    let distinct = crate::relations::distinct(relations);
                                    let stored = crate::relations::encode(&entity.entity_ref, &distinct);
                                    (Some(processed), Some(result_hash), None, Some(stored), *next_update_at)
                                }
                                Some(crate::processing::InlineResult {
                                    outcome: crate::processing::Outcome::Failed { result_hash, errors },
                                    next_update_at,
                                    ..
                                }) => (None, Some(result_hash), Some(errors), None, *next_update_at),
                                _ => (None, None, None, None, $now),
                            };
                        query = query
                            .bind(id.as_str())
                            .bind(entity.entity_ref.as_str())
                            .bind(entity.entity.as_str())
                            .bind(entity.hash.as_str())
                            .bind(entity.location_key.as_deref())
                            .bind(next_update_at)
                            .bind(processed.map(String::as_str))
                            .bind(result_hash.map(String::as_str))
                            .bind(errors.map(String::as_str))
                            .bind(relations);
                    }
                    let inserted: HashSet<String> =
                        query.fetch_all(&mut **tx).await?.into_iter().map(|(entity_ref,)| entity_ref).collect();
                    for (entity, id) in inserts.into_iter().zip(ids) {
                        if inserted.contains(&entity.entity_ref) {
                            accepted.push(entity.entity_ref.clone());
                            fresh.insert(entity.entity_ref.clone());
                            if entity.processed.is_some() {
                                inline.push((id, entity));
                            }
                        } else {
                            pending.push(entity);
                        }
                    }
                }
            }
        }
        (accepted, conflicts, fresh, inline)
    }};
}
pub(crate) use upsert_unprocessed;

/// Stores the relations of entities inserted with an inline result and queues them, and the
/// sources of their relations, for stitching.
macro_rules! store_inline {
    ($store:expr, $tx:expr, $inline:expr, $stitch:expr) => {{
        let inline: &[(String, &DeferredEntity)] = $inline;
        let stitch: &mut HashSet<String> = $stitch;
        // Peer rows (emitter ref, relation); the entity's own list went in with its row.
        let mut peers: Vec<(&str, &RelationRow)> = Vec::new();
        for (_, child) in inline {
            stitch.insert(child.entity_ref.clone());
            let Some(crate::processing::InlineResult {
                outcome: crate::processing::Outcome::Succeeded { relations, .. },
                ..
            }) = child.processed.as_deref()
            else {
                continue;
            };
            for relation in crate::relations::distinct(relations) {
                stitch.insert(relation.source.clone());
                if relation.source != child.entity_ref {
                    peers.push((child.entity_ref.as_str(), relation));
                }
            }
        }
        crate::relations::insert_peer_relations!($store, $tx, &peers);
    }};
}
pub(crate) use store_inline;

/// Adds refs to the durable stitch queue. The form with `claimed` refs and a ticket also queues
/// those as read by a stitcher holding that ticket (see `WriteSummary::stitch`).
macro_rules! enqueue_stitch {
    ($store:expr, $tx:expr, $refs:expr) => {
        crate::processing::enqueue_stitch!($store, $tx, $refs, &[] as &[&str], "")
    };
    ($store:expr, $tx:expr, $refs:expr, $claimed:expr, $ticket:expr) => {{
        let tx = $tx;
        let ticket: &str = $ticket;
        // (ref, claimed)
        let mut refs: Vec<(&str, bool)> =
            $refs.iter().map(|entity_ref: &String| (entity_ref.as_str(), false)).collect();
        refs.extend($claimed.iter().map(|entity_ref: &&str| (*entity_ref, true)));
        // The same row order in every writer, so concurrent transactions do not deadlock on it.
        refs.sort_unstable();
        for chunk in refs.chunks(CHUNK) {
            let sql = $store.sql(format!(
                "INSERT INTO stitch_queue (entity_ref, pending, ticket) VALUES {}
                 ON CONFLICT (entity_ref) DO UPDATE
                 SET pending = excluded.pending, ticket = COALESCE(excluded.ticket, stitch_queue.ticket)",
                value_tuples(chunk.len(), 3, 1)
            ));
            let mut query = sqlx::query(&sql);
            for (entity_ref, claimed) in chunk {
                query = query.bind(*entity_ref).bind(i32::from(!claimed)).bind(claimed.then_some(ticket));
            }
            query.execute(&mut **tx).await?;
        }
    }};
}
pub(crate) use enqueue_stitch;

/// Deletes the given refs and, round by round, every descendant left without an incoming edge
/// (reference §6.3 eager deletion). Evaluates to the deleted refs; peers that had relations with
/// deleted entities are added to `$stitch`.
macro_rules! delete_unreachable {
    ($store:expr, $tx:expr, $candidates:expr, $stitch:expr) => {{
        let tx = $tx;
        let stitch: &mut HashSet<String> = $stitch;
        let mut candidates: Vec<String> = $candidates;
        let mut deleted: Vec<String> = Vec::new();
        let mut rounds = 0;
        while !candidates.is_empty() && rounds < 64 {
            rounds += 1;
            let mut next: Vec<String> = Vec::new();
            for chunk in candidates.chunks(CHUNK) {
                // Only those that nothing references any more.
                let sql = $store.sql(format!(
                    "SELECT r.entity_ref, r.entity_id FROM refresh_state r
                     WHERE r.entity_ref IN ({})
                     AND NOT EXISTS (SELECT 1 FROM refresh_state_references e WHERE e.target_entity_ref = r.entity_ref)",
                    placeholders(chunk.len(), 1)
                ));
                let mut query = sqlx::query_as::<_, (String, String)>(&sql);
                for entity_ref in chunk {
                    query = query.bind(entity_ref);
                }
                let doomed = query.fetch_all(&mut **tx).await?;
                if doomed.is_empty() {
                    continue;
                }
                let refs: Vec<&str> = doomed.iter().map(|(entity_ref, _)| entity_ref.as_str()).collect();
                let ids: Vec<&str> = doomed.iter().map(|(_, id)| id.as_str()).collect();
                let children = crate::fetch_in!(
                    &mut **tx,
                    "DELETE FROM refresh_state_references WHERE source_entity_ref IN ({}) RETURNING target_entity_ref",
                    refs,
                    (String,)
                );
                next.extend(children.into_iter().map(|(child,)| child));
                let removed = crate::fetch_in!(
                    &mut **tx,
                    "DELETE FROM refresh_state WHERE entity_id IN ({}) RETURNING entity_ref, relations",
                    ids,
                    (String, Option<String>)
                );
                // Everything they emitted goes: their peers are stitched without it.
                let mut emitted: Vec<(&str, Vec<crate::processing::RelationRow>)> = Vec::new();
                let mut unreadable: Vec<&str> = Vec::new();
                for (emitter, relations) in &removed {
                    match crate::relations::decode(emitter, relations.as_deref()) {
                        Some(relations) => emitted.push((emitter.as_str(), relations)),
                        None => unreadable.push(emitter.as_str()),
                    }
                }
                crate::relations::delete_peer_relations_of!(tx, &unreadable, stitch);
                let mut peers: Vec<(&str, &crate::processing::RelationRow)> = Vec::new();
                for (emitter, relations) in &emitted {
                    for relation in relations {
                        stitch.insert(relation.source.clone());
                        if relation.source != *emitter {
                            peers.push((*emitter, relation));
                        }
                    }
                }
                crate::relations::delete_peer_relations!($store, tx, &peers);
                let seq = crate::stitch::next_seq!(tx);
                crate::stitch::delete_final!($store, tx, &refs, seq);
                for entity_ref in refs {
                    stitch.remove(entity_ref);
                    deleted.push(entity_ref.to_owned());
                }
            }
            candidates = next;
        }
        // Deleted entities must not be re-stitched; everything else that lost a peer is.
        for entity_ref in &deleted {
            stitch.remove(entity_ref);
        }
        deleted
    }};
}
pub(crate) use delete_unreachable;
