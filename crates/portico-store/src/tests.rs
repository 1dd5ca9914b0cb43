//! Store contract tests: one suite over the public `Store` API.
//!
//! Every test runs three times, on a fresh in-memory SQLite database, a fresh SQLite file and a
//! fresh PostgreSQL database (`portico_testing::fresh_database`: a private server started once
//! per process, or `PORTICO_TEST_POSTGRES_URL`). `contract_tests!` turns each `async fn name(db)`
//! below into `name::sqlite_memory`, `name::sqlite_file` and `name::postgres`.
//!
//! The helpers play the engine's part in miniature: `process_all` claims and processes whatever
//! is due, each entity emitting the children a tree table gives it; `stitch_all` drains the
//! stitch queue the way the real stitcher does.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::time::Duration;

use tempfile::TempDir;

use crate::{
    AncestryItem, ClaimedEntity, Conflict, DatabaseConfig, DeferredEntity, Error, FinalWrite, InlineResult,
    LocationRow, Outcome, ProcessOutcome, ProviderMutation, RelationRow, StitchState, Store, StoreCounts,
};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    SqliteMemory,
    SqliteFile,
    Postgres,
}

/// A fresh, migrated database for one test.
struct Db {
    store: Store,
    backend: Backend,
    config: DatabaseConfig,
    _dir: Option<TempDir>,
}

impl Db {
    /// `None` when the backend is unavailable here (PostgreSQL missing and not required).
    async fn open(backend: Backend) -> Option<Db> {
        let (config, dir) = match backend {
            Backend::SqliteMemory => (DatabaseConfig::Sqlite { path: None }, None),
            Backend::SqliteFile => {
                let dir = tempfile::tempdir().unwrap();
                (DatabaseConfig::Sqlite { path: Some(dir.path().join("catalog.db")) }, Some(dir))
            }
            Backend::Postgres => {
                (DatabaseConfig::Postgres { url: portico_testing::fresh_database().await? }, None)
            }
        };
        let store = Store::open(&config).await.unwrap();
        Some(Db { store, backend, config, _dir: dir })
    }

    /// An independent pool on the same database, as a second replica would have. The in-memory
    /// database lives in its single connection, so there it is the same pool.
    async fn replica(&self) -> Store {
        match self.backend {
            Backend::SqliteMemory => self.store.clone(),
            Backend::SqliteFile | Backend::Postgres => Store::connect(&self.config).await.unwrap(),
        }
    }
}

async fn run<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some(db) = Db::open(backend).await {
        test(db).await;
    }
}

macro_rules! contract_tests {
    ($($name:ident)*) => {$(
        mod $name {
            use super::{run, Backend};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_memory() {
                run(Backend::SqliteMemory, super::$name).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_file() {
                run(Backend::SqliteFile, super::$name).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                run(Backend::Postgres, super::$name).await;
            }
        }
    )*};
}

contract_tests! {
    locations_are_listed_in_id_order_and_found_by_id_or_target
    registering_the_same_type_and_target_twice_is_rejected
    deleting_a_location_returns_it_and_unknown_ids_are_not_found

    full_mutation_replaces_everything_the_provider_roots
    delta_mutation_adds_and_removes_roots
    removing_a_root_deletes_every_descendant_nothing_else_emits
    location_cycles_are_not_followed_and_die_with_their_root
    unchanged_input_is_not_due_again_and_changed_input_is_due_at_once
    last_occurrence_of_a_ref_in_one_batch_wins

    conflicting_location_key_keeps_first_owner
    conflicting_child_is_not_adopted_by_a_second_parent

    claimed_entity_is_not_claimed_again_while_leased
    expired_lease_makes_an_entity_claimable_again
    claim_due_respects_the_limit
    expiring_all_leases_makes_claimed_entities_claimable_at_once
    concurrent_claimers_never_get_the_same_entity

    successful_result_stores_processed_entity_relations_and_children
    failed_result_keeps_last_processed_entity_and_records_errors
    new_children_with_an_inline_result_are_stored_processed
    inline_children_come_back_claimed_with_every_stitch_input
    new_entities_can_be_assembled_before_their_write_commits
    reprocessing_replaces_relations_and_orphans_children_no_longer_emitted
    unchanged_result_only_releases_the_lease
    result_for_an_entity_deleted_during_processing_is_dropped

    stitch_queue_keeps_refs_until_they_are_written
    the_next_stitch_batch_is_claimed_while_the_last_is_written
    change_written_while_a_stitch_is_in_flight_is_stitched_again
    entity_deleted_while_a_stitch_is_in_flight_gets_no_final_entity
    a_slower_stitcher_never_overwrites_a_newer_result
    stitch_input_of_a_deleted_entity_has_no_state
    change_feed_reports_upserts_and_deletes_in_sequence
    final_entities_page_paginates_in_ref_order

    delete_orphans_removes_orphans_with_their_descendants
    delete_entity_by_uid_removes_it_and_makes_its_parents_reprocess
    deleting_an_entity_restitches_its_relation_peers
    an_unreadable_relations_list_is_replaced_and_its_peer_rows_found_by_a_scan

    refresh_makes_the_entity_and_its_location_ancestors_due
    refresh_of_an_unknown_or_orphaned_entity_is_refused
    ancestry_lists_the_entity_then_its_emitters_breadth_first
    ancestry_and_refresh_stop_at_emitter_cycles

    signing_keys_are_kept_newest_first_and_pruned_by_age
    audit_records_are_kept_in_order_and_paged_newest_first
    migrations_go_up_down_and_up_again
    relations_survive_the_relations_migration_down_and_up
    migrating_again_or_from_a_second_replica_is_a_no_op
    concurrent_writers_all_succeed
    providers_racing_to_add_the_same_refs_leave_one_owner_each

    tasks_are_claimed_oldest_first_and_only_once
    finishing_a_task_forgets_its_secrets_and_announces_it_once
    tasks_are_listed_filtered_ordered_and_counted
    a_reopened_task_loses_the_events_that_ended_it
    stale_running_tasks_start_over_or_fail
    an_open_task_is_cancelled_only_while_no_worker_has_it
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn location(id: &str, kind: &str, target: &str) -> LocationRow {
    LocationRow {
        id: id.to_owned(),
        kind: kind.to_owned(),
        target: target.to_owned(),
        entity_ref: format!("location:default/generated-{id}"),
    }
}

/// An unprocessed entity owned by no location key.
fn entity(entity_ref: &str) -> DeferredEntity {
    version(entity_ref, None, "v1")
}

fn version(entity_ref: &str, location_key: Option<&str>, version: &str) -> DeferredEntity {
    DeferredEntity {
        entity_ref: entity_ref.to_owned(),
        entity: format!(r#"{{"ref":"{entity_ref}","version":"{version}"}}"#),
        hash: format!("{entity_ref}@{version}"),
        location_key: location_key.map(str::to_owned),
        processed: None,
    }
}

fn add(entities: &[&str]) -> ProviderMutation {
    ProviderMutation::Delta { added: entities.iter().map(|r| entity(r)).collect(), removed: Vec::new() }
}

fn remove(entity_refs: &[&str]) -> ProviderMutation {
    ProviderMutation::Delta {
        added: Vec::new(),
        removed: entity_refs.iter().map(|r| (*r).to_owned()).collect(),
    }
}

fn relation(source: &str, kind: &str, target: &str) -> RelationRow {
    RelationRow { source: source.to_owned(), kind: kind.to_owned(), target: target.to_owned() }
}

fn processed_body(claimed: &ClaimedEntity) -> String {
    format!(r#"{{"processed":{}}}"#, claimed.unprocessed_entity)
}

fn succeeded(
    claimed: &ClaimedEntity,
    children: Vec<DeferredEntity>,
    relations: Vec<RelationRow>,
) -> ProcessOutcome {
    let child_refs: Vec<&str> = children.iter().map(|child| child.hash.as_str()).collect();
    ProcessOutcome {
        entity_id: claimed.entity_id.clone(),
        entity_ref: claimed.entity_ref.clone(),
        outcome: Outcome::Succeeded {
            result_hash: format!("{}|{child_refs:?}|{relations:?}", claimed.unprocessed_entity),
            processed: processed_body(claimed),
            relations,
            children,
        },
    }
}

fn outcome(claimed: &ClaimedEntity, outcome: Outcome) -> ProcessOutcome {
    ProcessOutcome { entity_id: claimed.entity_id.clone(), entity_ref: claimed.entity_ref.clone(), outcome }
}

/// Claims everything due (one hour interval, one minute lease), refs sorted.
async fn claim(store: &Store) -> Vec<ClaimedEntity> {
    let mut claimed = store.claim_due(10_000, HOUR, MINUTE).await.unwrap();
    claimed.sort_by(|a, b| a.entity_ref.cmp(&b.entity_ref));
    claimed
}

fn refs_of(claimed: &[ClaimedEntity]) -> Vec<&str> {
    claimed.iter().map(|claimed| claimed.entity_ref.as_str()).collect()
}

/// Claims the single due entity, which must be `entity_ref`.
async fn claim_only(store: &Store, entity_ref: &str) -> ClaimedEntity {
    let mut claimed = claim(store).await;
    assert_eq!(refs_of(&claimed), [entity_ref]);
    claimed.remove(0)
}

/// Processes until nothing is due; each entity emits the children `tree` lists for it and no
/// relations. Evaluates to entity ids by ref.
async fn process_all(store: &Store, tree: &[(&str, &[&str])]) -> BTreeMap<String, String> {
    let mut ids = BTreeMap::new();
    loop {
        let claimed = claim(store).await;
        if claimed.is_empty() {
            return ids;
        }
        let outcomes: Vec<ProcessOutcome> = claimed
            .iter()
            .map(|claimed| {
                let children = tree
                    .iter()
                    .filter(|(parent, _)| *parent == claimed.entity_ref)
                    .flat_map(|(_, children)| children.iter().map(|child| entity(child)))
                    .collect();
                succeeded(claimed, children, Vec::new())
            })
            .collect();
        let summary = store.write_results(&outcomes).await.unwrap();
        assert_eq!(summary.conflicts, []);
        for claimed in claimed {
            ids.insert(claimed.entity_ref, claimed.entity_id);
        }
    }
}

/// What `stitch_all` stores as the final entity.
fn final_text(state: &StitchState) -> Option<String> {
    let processed = state.processed.as_deref()?;
    let orphan = if state.has_parents { "" } else { " orphan" };
    let errors = state.errors.as_deref().map(|errors| format!(" errors={errors}")).unwrap_or_default();
    Some(format!("{processed} relations={:?}{orphan}{errors}", state.relations))
}

/// Drains the stitch queue like the engine's stitcher. Evaluates to the sequence number after.
async fn stitch_all(store: &Store) -> i64 {
    loop {
        let inputs = store.stitch_inputs(2).await.unwrap();
        if inputs.is_empty() {
            return store.current_seq().await.unwrap();
        }
        write_stitched(store, inputs).await;
    }
}

/// Stores the final entities of claimed stitch inputs, as the engine would.
async fn write_stitched(store: &Store, inputs: Vec<crate::StitchInput>) -> crate::Stitched {
    let ticket = inputs[0].ticket.clone();
    let (mut writes, mut gone, mut done) = (Vec::new(), Vec::new(), Vec::new());
    for input in inputs {
        done.push(input.entity_ref.clone());
        let Some(state) = input.state else {
            gone.push(input.entity_ref);
            continue;
        };
        let Some(text) = final_text(&state) else { continue };
        if state.final_hash.as_deref() != Some(text.as_str()) {
            writes.push(FinalWrite {
                entity_ref: input.entity_ref,
                entity_id: state.entity_id,
                final_entity: text.clone(),
                hash: text,
            });
        }
    }
    store.write_stitched(&ticket, &writes, &gone, &done).await.unwrap()
}

/// Every final entity, by ref.
async fn finals(store: &Store) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    let mut after = String::new();
    loop {
        let page = store.final_entities_page(&after, 3).await.unwrap();
        let Some(last) = page.last() else { return all };
        after = last.entity_ref.clone();
        all.extend(page.into_iter().map(|row| (row.entity_ref, row.final_entity)));
    }
}

/// Refs waiting in the stitch queue, without dequeuing them.
async fn queued(store: &Store) -> Vec<String> {
    store.stitch_queue_refs().await.unwrap()
}

async fn exists(store: &Store, entity_ref: &str) -> bool {
    !store.ancestry(entity_ref).await.unwrap().is_empty()
}

fn sorted(mut refs: Vec<String>) -> Vec<String> {
    refs.sort();
    refs
}

fn strings(refs: &[&str]) -> Vec<String> {
    refs.iter().map(|r| (*r).to_owned()).collect()
}

// ---------------------------------------------------------------------------------------------
// Locations

async fn locations_are_listed_in_id_order_and_found_by_id_or_target(db: Db) {
    let store = &db.store;
    assert_eq!(store.list_locations().await.unwrap(), []);
    let b = location("b", "url", "https://example.com/b.yaml");
    let a = location("a", "file", "/catalog/a.yaml");
    store.insert_location(&b).await.unwrap();
    store.insert_location(&a).await.unwrap();

    assert_eq!(store.list_locations().await.unwrap(), [a.clone(), b.clone()]);
    assert_eq!(store.location("b").await.unwrap(), Some(b.clone()));
    assert_eq!(store.location("missing").await.unwrap(), None);
    assert_eq!(store.location_by_target("url", "https://example.com/b.yaml").await.unwrap(), Some(b));
    assert_eq!(store.location_by_target("file", "https://example.com/b.yaml").await.unwrap(), None);
}

async fn registering_the_same_type_and_target_twice_is_rejected(db: Db) {
    let store = &db.store;
    store.insert_location(&location("a", "url", "https://example.com/x.yaml")).await.unwrap();

    let error = store.insert_location(&location("b", "url", "https://example.com/x.yaml")).await.unwrap_err();
    assert!(
        matches!(&error, Error::LocationExists { kind, target } if kind == "url" && target == "https://example.com/x.yaml"),
        "{error:?}"
    );
    // Another type with the same target is a different location.
    store.insert_location(&location("c", "file", "https://example.com/x.yaml")).await.unwrap();
    let ids: Vec<String> = store.list_locations().await.unwrap().into_iter().map(|l| l.id).collect();
    assert_eq!(ids, ["a", "c"]);
}

async fn deleting_a_location_returns_it_and_unknown_ids_are_not_found(db: Db) {
    let store = &db.store;
    let a = location("a", "url", "https://example.com/x.yaml");
    store.insert_location(&a).await.unwrap();

    assert_eq!(store.delete_location("a").await.unwrap(), a);
    assert_eq!(store.list_locations().await.unwrap(), []);
    let error = store.delete_location("a").await.unwrap_err();
    assert!(matches!(&error, Error::LocationNotFound { id } if id == "a"), "{error:?}");
    // The target is free again.
    store.insert_location(&a).await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Provider mutations

async fn full_mutation_replaces_everything_the_provider_roots(db: Db) {
    let store = &db.store;
    let full = |refs: &[&str]| ProviderMutation::Full { entities: refs.iter().map(|r| entity(r)).collect() };

    let summary =
        store.apply_mutation("p", full(&["component:default/a", "component:default/b"])).await.unwrap();
    assert_eq!((summary.conflicts, summary.deleted), (vec![], vec![]));
    // Another provider's roots are not touched by p's full mutations.
    store.apply_mutation("q", add(&["component:default/q"])).await.unwrap();

    let summary =
        store.apply_mutation("p", full(&["component:default/b", "component:default/c"])).await.unwrap();
    assert_eq!(summary.deleted, ["component:default/a"]);
    assert!(!exists(store, "component:default/a").await);
    assert!(store.has_parents("component:default/b").await.unwrap());
    assert!(store.has_parents("component:default/c").await.unwrap());

    let summary = store.apply_mutation("p", full(&[])).await.unwrap();
    assert_eq!(sorted(summary.deleted), ["component:default/b", "component:default/c"]);
    assert!(exists(store, "component:default/q").await);
    assert_eq!(store.counts().await.unwrap().refresh_state, 1);
}

async fn delta_mutation_adds_and_removes_roots(db: Db) {
    let store = &db.store;
    store.apply_mutation("p", add(&["component:default/a", "component:default/b"])).await.unwrap();

    let summary = store
        .apply_mutation(
            "p",
            ProviderMutation::Delta {
                added: vec![entity("component:default/c")],
                removed: strings(&["component:default/a", "component:default/never-added"]),
            },
        )
        .await
        .unwrap();
    assert_eq!(summary.deleted, ["component:default/a"]);
    assert!(!exists(store, "component:default/a").await);
    assert!(exists(store, "component:default/b").await);
    assert!(exists(store, "component:default/c").await);

    // Removing a ref another provider roots only drops this provider's claim.
    store.apply_mutation("q", add(&["component:default/b"])).await.unwrap();
    let summary = store.apply_mutation("p", remove(&["component:default/b"])).await.unwrap();
    assert_eq!(summary.deleted, Vec::<String>::new());
    assert!(store.has_parents("component:default/b").await.unwrap());
}

async fn removing_a_root_deletes_every_descendant_nothing_else_emits(db: Db) {
    let store = &db.store;
    store.apply_mutation("p", add(&["location:default/root"])).await.unwrap();
    // `shared` is also rooted by provider q, so it survives.
    store.apply_mutation("q", add(&["component:default/shared"])).await.unwrap();
    process_all(
        store,
        &[
            ("location:default/root", &["location:default/child", "component:default/a"]),
            ("location:default/child", &["component:default/b", "component:default/shared"]),
        ],
    )
    .await;
    let seq = stitch_all(store).await;
    assert_eq!(finals(store).await.len(), 5);

    let summary = store.apply_mutation("p", remove(&["location:default/root"])).await.unwrap();
    let expected =
        ["component:default/a", "component:default/b", "location:default/child", "location:default/root"];
    assert_eq!(sorted(summary.deleted), expected);
    assert!(exists(store, "component:default/shared").await);
    assert_eq!(store.counts().await.unwrap().refresh_state, 1);

    // The finals went in the same transaction, and the change feed says so.
    let changes = store.changes_since(seq).await.unwrap();
    assert_eq!(sorted(changes.deletes), expected);
    assert_eq!(finals(store).await.into_keys().collect::<Vec<_>>(), ["component:default/shared"]);
}

async fn location_cycles_are_not_followed_and_die_with_their_root(db: Db) {
    let store = &db.store;
    store.apply_mutation("p", add(&["location:default/a"])).await.unwrap();
    // b emits its own emitter a and itself: neither edge may be stored.
    process_all(
        store,
        &[
            ("location:default/a", &["location:default/b", "component:default/x"]),
            ("location:default/b", &["location:default/a", "location:default/b", "component:default/y"]),
        ],
    )
    .await;
    stitch_all(store).await;
    let all = finals(store).await;
    assert_eq!(all.len(), 4);
    let b = &all["location:default/b"];
    assert!(b.contains("Location cycle: location:default/a already emits location:default/b"), "{b}");
    assert!(b.contains("Location cycle: location:default/b lists itself"), "{b}");
    assert!(!all["location:default/a"].contains("errors="));
    let ancestry = store.ancestry("location:default/a").await.unwrap();
    assert_eq!(ancestry, [AncestryItem { entity_ref: "location:default/a".into(), parent_refs: vec![] }]);

    let summary = store.apply_mutation("p", remove(&["location:default/a"])).await.unwrap();
    assert_eq!(
        sorted(summary.deleted),
        ["component:default/x", "component:default/y", "location:default/a", "location:default/b"]
    );
    assert_eq!(store.counts().await.unwrap().refresh_state, 0);
}

async fn unchanged_input_is_not_due_again_and_changed_input_is_due_at_once(db: Db) {
    let store = &db.store;
    let with = |v: &str| ProviderMutation::Delta {
        added: vec![version("component:default/a", None, v)],
        removed: Vec::new(),
    };
    store.apply_mutation("p", with("v1")).await.unwrap();
    let a = claim_only(store, "component:default/a").await;
    store.write_results(&[succeeded(&a, vec![], vec![])]).await.unwrap();

    store.apply_mutation("p", with("v1")).await.unwrap();
    assert_eq!(refs_of(&claim(store).await), Vec::<&str>::new());

    store.apply_mutation("p", with("v2")).await.unwrap();
    let claimed = claim_only(store, "component:default/a").await;
    assert!(claimed.unprocessed_entity.contains("v2"), "{}", claimed.unprocessed_entity);
}

async fn last_occurrence_of_a_ref_in_one_batch_wins(db: Db) {
    let store = &db.store;
    let added =
        vec![version("component:default/a", None, "first"), version("component:default/a", None, "second")];
    store.apply_mutation("p", ProviderMutation::Delta { added, removed: Vec::new() }).await.unwrap();

    let claimed = claim_only(store, "component:default/a").await;
    assert!(claimed.unprocessed_entity.contains("second"), "{}", claimed.unprocessed_entity);
    assert_eq!(store.counts().await.unwrap().refresh_state, 1);
}

// ---------------------------------------------------------------------------------------------
// Conflicts (first location key wins)

async fn conflicting_location_key_keeps_first_owner(db: Db) {
    let store = &db.store;
    let by = |key: &str, v: &str| ProviderMutation::Delta {
        added: vec![version("component:default/a", Some(key), v)],
        removed: Vec::new(),
    };
    let summary = store.apply_mutation("one", by("url:one", "from-one")).await.unwrap();
    assert_eq!(summary.conflicts, []);

    let summary = store.apply_mutation("two", by("url:two", "from-two")).await.unwrap();
    assert_eq!(
        summary.conflicts,
        [Conflict {
            entity_ref: "component:default/a".into(),
            existing_location_key: Some("url:one".into()),
            new_location_key: Some("url:two".into()),
        }]
    );
    let claimed = claim_only(store, "component:default/a").await;
    assert!(claimed.unprocessed_entity.contains("from-one"), "{}", claimed.unprocessed_entity);

    // The loser holds no claim: when the owner lets go the entity is deleted, and then the
    // other provider can take it.
    let summary = store.apply_mutation("one", remove(&["component:default/a"])).await.unwrap();
    assert_eq!(summary.deleted, ["component:default/a"]);
    let summary = store.apply_mutation("two", by("url:two", "from-two")).await.unwrap();
    assert_eq!(summary.conflicts, []);
    let claimed = claim_only(store, "component:default/a").await;
    assert!(claimed.unprocessed_entity.contains("from-two"), "{}", claimed.unprocessed_entity);
}

async fn conflicting_child_is_not_adopted_by_a_second_parent(db: Db) {
    let store = &db.store;
    store.apply_mutation("p", add(&["location:default/one", "location:default/two"])).await.unwrap();
    let claimed = claim(store).await;
    let [one, two] = &claimed[..] else { panic!("claimed {:?}", refs_of(&claimed)) };

    let child = |key: &str, v: &str| vec![version("component:default/x", Some(key), v)];
    let summary = store.write_results(&[succeeded(one, child("url:one", "v1"), vec![])]).await.unwrap();
    assert_eq!(summary.conflicts, []);
    let summary = store.write_results(&[succeeded(two, child("url:two", "v1"), vec![])]).await.unwrap();
    assert_eq!(
        summary.conflicts,
        [Conflict {
            entity_ref: "component:default/x".into(),
            existing_location_key: Some("url:one".into()),
            new_location_key: Some("url:two".into()),
        }]
    );
    assert_eq!(
        store.ancestry("component:default/x").await.unwrap()[0],
        AncestryItem {
            entity_ref: "component:default/x".into(),
            parent_refs: strings(&["location:default/one"]),
        }
    );

    // The owner may update its child.
    store.make_due(&["location:default/one"]).await.unwrap();
    let claimed = claim(store).await;
    let [x, one] = &claimed[..] else { panic!("claimed {:?}", refs_of(&claimed)) };
    let results = [outcome(x, Outcome::Unchanged), succeeded(one, child("url:one", "v2"), vec![])];
    let summary = store.write_results(&results).await.unwrap();
    assert_eq!(summary.conflicts, []);
    let x = claim(store).await.into_iter().find(|c| c.entity_ref == "component:default/x").unwrap();
    assert!(x.unprocessed_entity.contains("v2"), "{}", x.unprocessed_entity);
}

// ---------------------------------------------------------------------------------------------
// Claims and leases

async fn claimed_entity_is_not_claimed_again_while_leased(db: Db) {
    let store = &db.store;
    store.apply_mutation("p", add(&["component:default/a", "component:default/b"])).await.unwrap();
    // A zero interval keeps them due, so only the lease holds them back.
    let claimed = store.claim_due(10, 0, HOUR).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert_eq!(store.claim_due(10, 0, HOUR).await.unwrap().len(), 0);

    // Writing a result releases the lease.
    let a = claimed.iter().find(|c| c.entity_ref == "component:default/a").unwrap();
    store.write_results(&[outcome(a, Outcome::Unchanged)]).await.unwrap();
    assert_eq!(refs_of(&store.claim_due(10, 0, HOUR).await.unwrap()), ["component:default/a"]);
}

async fn expired_lease_makes_an_entity_claimable_again(db: Db) {
    let store = &db.store;
    // Long enough that a slow machine does not see the lease expire between the first two claims.
    let lease = 2_000;
    store.apply_mutation("p", add(&["component:default/a"])).await.unwrap();
    assert_eq!(store.claim_due(10, HOUR, lease).await.unwrap().len(), 1);
    assert_eq!(store.claim_due(10, HOUR, lease).await.unwrap().len(), 0);

    // The claimer never wrote a result (it died): once the lease has passed the entity is due
    // at once, not an interval later.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(refs_of(&store.claim_due(10, HOUR, lease).await.unwrap()), ["component:default/a"]);
}

async fn claim_due_respects_the_limit(db: Db) {
    let store = &db.store;
    let refs: Vec<String> = (0..5).map(|i| format!("component:default/e{i}")).collect();
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    store.apply_mutation("p", add(&refs)).await.unwrap();

    assert_eq!(store.claim_due(2, HOUR, MINUTE).await.unwrap().len(), 2);
    assert_eq!(store.claim_due(10, HOUR, MINUTE).await.unwrap().len(), 3);
    assert_eq!(store.claim_due(10, HOUR, MINUTE).await.unwrap().len(), 0);
}

async fn expiring_all_leases_makes_claimed_entities_claimable_at_once(db: Db) {
    let store = &db.store;
    store.apply_mutation("p", add(&["component:default/a", "component:default/b"])).await.unwrap();
    let claimed = claim(store).await;
    assert_eq!(claimed.len(), 2);
    // `a` finished its pass, `b` was still in flight when the process died.
    store.write_results(&[outcome(&claimed[0], Outcome::Unchanged)]).await.unwrap();
    assert_eq!(claim(store).await.len(), 0);

    store.expire_all_leases().await.unwrap();
    assert_eq!(refs_of(&claim(store).await), ["component:default/b"]);
}

async fn concurrent_claimers_never_get_the_same_entity(db: Db) {
    let refs: Vec<String> = (0..300).map(|i| format!("component:default/e{i:03}")).collect();
    let added = refs.iter().map(|r| entity(r)).collect();
    db.store.apply_mutation("p", ProviderMutation::Delta { added, removed: Vec::new() }).await.unwrap();

    let mut claimers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let store = db.replica().await;
        claimers.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claimed = store.claim_due(7, HOUR, MINUTE).await.unwrap();
                if claimed.is_empty() {
                    return mine;
                }
                mine.extend(claimed.into_iter().map(|c| c.entity_ref));
                tokio::task::yield_now().await;
            }
        });
    }
    let mut all = Vec::new();
    while let Some(mine) = claimers.join_next().await {
        all.extend(mine.unwrap());
    }
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "an entity was claimed twice");
    assert_eq!(sorted(all), refs);
}

// ---------------------------------------------------------------------------------------------
// Writing results

async fn successful_result_stores_processed_entity_relations_and_children(db: Db) {
    let store = &db.store;
    store.apply_mutation("p", add(&["location:default/root"])).await.unwrap();
    let root = claim_only(store, "location:default/root").await;
    let summary = store
        .write_results(&[succeeded(
            &root,
            vec![entity("component:default/a"), entity("component:default/b")],
            vec![
                relation("location:default/root", "hasPart", "component:default/a"),
                relation("location:default/root", "hasPart", "component:default/a"),
                relation("location:default/root", "hasPart", "component:default/b"),
            ],
        )])
        .await
        .unwrap();
    assert_eq!(summary.conflicts, []);
    // The duplicate relation is stored once.
    assert_eq!(store.counts().await.unwrap().relations, 2);

    let inputs = store.stitch_inputs(100).await.unwrap();
    let by_ref: HashMap<&str, &StitchState> =
        inputs.iter().map(|input| (input.entity_ref.as_str(), input.state.as_ref().unwrap())).collect();
    let mut keys: Vec<&str> = by_ref.keys().copied().collect();
    keys.sort_unstable();
    // The new children are not queued: they have nothing to show until their first pass.
    assert_eq!(keys, ["location:default/root"]);

    let state = by_ref["location:default/root"];
    assert_eq!(state.entity_id, root.entity_id);
    assert_eq!(state.processed.as_deref(), Some(processed_body(&root).as_str()));
    assert_eq!(state.errors, None);
    assert!(state.has_parents);
    // Distinct and sorted.
    let has_part = |target: &str| ("hasPart".to_owned(), target.to_owned());
    assert_eq!(state.relations, [has_part("component:default/a"), has_part("component:default/b")]);
    assert_eq!(state.final_hash, None);

    // Children are parented, unprocessed (invisible until processed) and due at once.
    assert!(store.has_parents("component:default/a").await.unwrap());
    assert_eq!(refs_of(&claim(store).await), ["component:default/a", "component:default/b"]);
    assert_eq!(
        store.ancestry("component:default/a").await.unwrap(),
        [
            AncestryItem {
                entity_ref: "component:default/a".into(),
                parent_refs: strings(&["location:default/root"])
            },
            AncestryItem { entity_ref: "location:default/root".into(), parent_refs: vec![] },
        ]
    );
}

async fn failed_result_keeps_last_processed_entity_and_records_errors(db: Db) {
    let store = &db.store;
    store.apply_mutation("p", add(&["component:default/a"])).await.unwrap();
    let a = claim_only(store, "component:default/a").await;
    let good =
        succeeded(&a, vec![], vec![relation("component:default/a", "dependsOn", "component:default/b")]);
    store.write_results(&[good]).await.unwrap();
    stitch_all(store).await;

    store.make_due(&["component:default/a"]).await.unwrap();
    let a = claim_only(store, "component:default/a").await;
    let failed =
        Outcome::Failed { result_hash: "broken".into(), errors: r#"[{"name":"InputError"}]"#.into() };
    store.write_results(&[outcome(&a, failed)]).await.unwrap();

    let inputs = store.stitch_inputs(10).await.unwrap();
    assert_eq!(inputs.len(), 1);
    let state = inputs[0].state.as_ref().unwrap();
    assert_eq!(state.processed.as_deref(), Some(processed_body(&a).as_str()));
    assert_eq!(state.errors.as_deref(), Some(r#"[{"name":"InputError"}]"#));
    assert_eq!(state.relations, [("dependsOn".to_owned(), "component:default/b".to_owned())]);
    stitch_all(store).await;
    assert!(finals(store).await["component:default/a"].contains("InputError"));

    // The failed result hash is remembered, and the next success clears the errors.
    store.make_due(&["component:default/a"]).await.unwrap();
    let a = claim_only(store, "component:default/a").await;
    assert_eq!(a.result_hash.as_deref(), Some("broken"));
    store.write_results(&[succeeded(&a, vec![], vec![])]).await.unwrap();
    let inputs = store.stitch_inputs(10).await.unwrap();
    let state = inputs[0].state.as_ref().unwrap();
    assert_eq!((state.errors.as_deref(), state.relations.len()), (None, 0));
}

async fn new_children_with_an_inline_result_are_stored_processed(db: Db) {
    let store = &db.store;
    store.apply_mutation("p", add(&["location:default/root"])).await.unwrap();
    let root = claim_only(store, "location:default/root").await;
    let inline = |child: DeferredEntity, outcome: Outcome| DeferredEntity {
        processed: Some(Box::new(InlineResult { outcome, next_update_at: i64::MAX / 2, entity_id: None })),
        ..child
    };
    let good = inline(
        entity("component:default/a"),
        Outcome::Succeeded {
            result_hash: "a1".into(),
            processed: r#"{"processed":"a"}"#.into(),
            relations: vec![
                relation("component:default/a", "ownedBy", "group:default/team"),
                relation("group:default/team", "ownerOf", "component:default/a"),
            ],
            children: Vec::new(),
        },
    );
    let bad = inline(
        entity("component:default/b"),
        Outcome::Failed { result_hash: "b1".into(), errors: r#"[{"name":"InputError"}]"#.into() },
    );
    store.write_results(&[succeeded(&root, vec![good, bad], vec![])]).await.unwrap();

    // Stored processed: not due again until their own next update, and their relations are in.
    assert_eq!(claim(store).await.len(), 0, "inline results are not claimed again");
    let inputs = store.stitch_inputs(10).await.unwrap();
    let mut states: BTreeMap<&str, &StitchState> = BTreeMap::new();
    for input in &inputs {
        if let Some(state) = &input.state {
            states.insert(&input.entity_ref, state);
        }
    }
    assert_eq!(
        states.keys().copied().collect::<Vec<_>>(),
        ["component:default/a", "component:default/b", "location:default/root"],
        "the children are queued; the group is queued too but does not exist"
    );
    assert!(inputs.iter().any(|input| input.entity_ref == "group:default/team" && input.state.is_none()));
    let a = states["component:default/a"];
    assert_eq!(a.processed.as_deref(), Some(r#"{"processed":"a"}"#));
    assert_eq!(a.relations, [("ownedBy".to_owned(), "group:default/team".to_owned())]);
    assert!(a.has_parents);
    let b = states["component:default/b"];
    assert_eq!((b.processed.as_deref(), b.errors.as_deref()), (None, Some(r#"[{"name":"InputError"}]"#)));
    stitch_all(store).await;
    store.make_due(&["component:default/b"]).await.unwrap();
    assert_eq!(claim_only(store, "component:default/b").await.result_hash.as_deref(), Some("b1"));

    // A child that already exists keeps its own claim: the inline result is ignored.
    store.make_due(&["location:default/root"]).await.unwrap();
    let root = claim_only(store, "location:default/root").await;
    let changed = DeferredEntity {
        entity: r#"{"changed":true}"#.into(),
        hash: "a2".into(),
        ..inline(
            entity("component:default/a"),
            Outcome::Succeeded {
                result_hash: "a2".into(),
                processed: r#"{"processed":"a2"}"#.into(),
                relations: vec![relation("component:default/a", "dependsOn", "component:default/c")],
                children: Vec::new(),
            },
        )
    };
    let mut result = succeeded(&root, vec![changed], vec![]);
    if let Outcome::Succeeded { result_hash, .. } = &mut result.outcome {
        result_hash.push_str("|second");
    }
    store.write_results(&[result]).await.unwrap();
    let a = claim_only(store, "component:default/a").await;
    assert_eq!(
        (a.unprocessed_entity.as_str(), a.result_hash.as_deref()),
        (r#"{"changed":true}"#, Some("a1"))
    );
    // A failed pass keeps the stored relations and queues the entity: they are the first ones.
    let failed = Outcome::Failed { result_hash: "a3".into(), errors: "[]".into() };
    store.write_results(&[outcome(&a, failed)]).await.unwrap();
    let inputs = store.stitch_inputs(10).await.unwrap();
    let a = inputs.iter().find(|input| input.entity_ref == "component:default/a").expect("a is queued");
    assert_eq!(
        a.state.as_ref().expect("a exists").relations,
        [("ownedBy".to_owned(), "group:default/team".to_owned())],
        "the dropped result's relations are not stored"
    );
}

async fn inline_children_come_back_claimed_with_every_stitch_input(db: Db) {
    let store = &db.store;
    store
        .apply_mutation("p", add(&["location:default/one", "location:default/three", "location:default/two"]))
        .await
        .unwrap();
    let roots = claim(store).await;
    let root = |name: &str| {
        roots.iter().find(|root| root.entity_ref == format!("location:default/{name}")).expect("claimed")
    };
    let inline = |entity_ref: &str, outcome: Outcome| DeferredEntity {
        processed: Some(Box::new(InlineResult { outcome, next_update_at: i64::MAX / 2, entity_id: None })),
        ..entity(entity_ref)
    };
    let done = |entity_ref: &str, relations: Vec<RelationRow>| Outcome::Succeeded {
        result_hash: format!("{entity_ref}1"),
        processed: format!(r#"{{"processed":"{entity_ref}"}}"#),
        relations,
        children: Vec::new(),
    };
    let (c, d, e) = ("component:default/c", "component:default/d", "component:default/e");
    // c depends on d, which does not exist yet: the peer row about d waits for it.
    let c_child = inline(c, done(c, vec![relation(c, "dependsOn", d), relation(d, "dependencyOf", c)]));
    let first =
        store.write_results_and_claim_new(&[succeeded(root("one"), vec![c_child], vec![])]).await.unwrap();
    let [c_input] = first.stitch.as_slice() else { panic!("one input expected: {:?}", first.stitch) };
    let c_state = c_input.state.clone().expect("c exists");
    assert_eq!(c_input.entity_ref, c);
    assert_eq!(c_state.processed.as_deref(), Some(r#"{"processed":"component:default/c"}"#));
    assert_eq!(c_state.relations, [("dependsOn".to_owned(), d.to_owned())]);
    assert!(c_state.has_parents);

    // d arrives in a later write: its input has the peer row c wrote and its own relations.
    let d_child = inline(
        d,
        done(
            d,
            vec![relation(d, "ownedBy", "group:default/team"), relation("group:default/team", "ownerOf", d)],
        ),
    );
    let e_child =
        inline(e, Outcome::Failed { result_hash: "e1".into(), errors: r#"[{"name":"InputError"}]"#.into() });
    let second = store
        .write_results_and_claim_new(&[succeeded(root("two"), vec![d_child, e_child], vec![])])
        .await
        .unwrap();
    let inputs: BTreeMap<&str, &StitchState> = second
        .stitch
        .iter()
        .map(|input| (input.entity_ref.as_str(), input.state.as_ref().expect("exists")))
        .collect();
    assert_eq!(inputs.keys().copied().collect::<Vec<_>>(), [d, e]);
    assert_eq!(
        inputs[d].relations,
        [("dependencyOf".to_owned(), c.to_owned()), ("ownedBy".to_owned(), "group:default/team".to_owned())]
    );
    assert_eq!(
        (inputs[e].processed.as_deref(), inputs[e].errors.as_deref()),
        (None, Some(r#"[{"name":"InputError"}]"#))
    );
    let d_state = inputs[d].clone();
    let stitched = write_stitched(store, second.stitch).await;
    assert!(stitched.skipped.is_empty());
    // Written and dequeued; what stays queued is read back from the database exactly as it was
    // handed back.
    let queued = store.stitch_queue_refs().await.unwrap();
    assert!(!queued.iter().any(|entity_ref| entity_ref == d || entity_ref == e), "{queued:?}");
    assert!(queued.iter().any(|entity_ref| entity_ref == c), "{queued:?}");
    let finals = store.final_entities_page("", 100).await.unwrap();
    assert_eq!(
        finals.iter().map(|row| row.entity_ref.as_str()).collect::<Vec<_>>(),
        [d],
        "e failed: no final"
    );

    // A plain write hands nothing back: its new children wait in the queue. f depends on d, so
    // d is queued again, and reading it back gives both peer rows, aggregated by the database.
    let f = "component:default/f";
    let f_child = inline(f, done(f, vec![relation(f, "dependsOn", d), relation(d, "dependencyOf", f)]));
    let third = store.write_results(&[succeeded(root("three"), vec![f_child], vec![])]).await.unwrap();
    assert!(third.stitch.is_empty());
    let read = store.stitch_inputs(100).await.unwrap();
    let state_of = |entity_ref: &str| {
        read.iter().find(|input| input.entity_ref == entity_ref).and_then(|input| input.state.clone())
    };
    assert_eq!(state_of(c), Some(c_state));
    assert!(state_of(f).is_some(), "f is queued");
    let d_read = state_of(d).expect("d is queued again");
    assert_eq!(
        d_read.relations,
        [
            ("dependencyOf".to_owned(), c.to_owned()),
            ("dependencyOf".to_owned(), f.to_owned()),
            ("ownedBy".to_owned(), "group:default/team".to_owned())
        ]
    );
    assert_eq!(
        (&d_read.entity_id, &d_read.processed, d_read.has_parents),
        (&d_state.entity_id, &d_state.processed, true)
    );
    assert!(d_read.final_hash.is_some(), "d was stitched");
}

async fn new_entities_can_be_assembled_before_their_write_commits(db: Db) {
    let store = &db.store;
    store.apply_mutation("p", add(&["location:default/one", "location:default/two"])).await.unwrap();
    let roots = claim(store).await;
    let (c, d, team) = ("component:default/c", "component:default/d", "group:default/team");
    // The caller picks the id a new child is stored under.
    let id = uuid::Uuid::now_v7().to_string();
    let c_child = DeferredEntity {
        processed: Some(Box::new(InlineResult {
            outcome: Outcome::Succeeded {
                result_hash: "c1".into(),
                processed: r#"{"processed":"c"}"#.into(),
                relations: vec![relation(c, "dependsOn", d), relation(d, "dependencyOf", c)],
                children: Vec::new(),
            },
            next_update_at: i64::MAX / 2,
            entity_id: Some(id.clone()),
        })),
        ..entity(c)
    };
    let one = &roots[0];
    let written = store
        .write_results_and_claim_new(&[succeeded(one, vec![c_child], vec![relation(team, "ownerOf", c)])])
        .await
        .unwrap();
    let [c_input] = written.stitch.as_slice() else { panic!("one input expected: {:?}", written.stitch) };
    assert_eq!(c_input.state.as_ref().expect("c exists").entity_id, id);
    assert!(written.dropped.is_empty());

    // The peer rows about refs, with who emitted them: c's row about d, the root's about team.
    let mut rows = store.peer_rows(&[d, team, "component:default/nobody"]).await.unwrap();
    rows.sort();
    let row = |source: &str, kind: &str, target: &str, emitter: &str| {
        (source.to_owned(), kind.to_owned(), target.to_owned(), emitter.to_owned())
    };
    assert_eq!(rows, [row(d, "dependencyOf", c, c), row(team, "ownerOf", c, &one.entity_ref)]);
    assert!(store.peer_rows(&[]).await.unwrap().is_empty());

    // Emitted refs have parents; the roots' parent is their provider.
    let parented = store.with_parents(&[c, d, &roots[1].entity_ref]).await.unwrap();
    assert_eq!(parented, [c.to_owned(), roots[1].entity_ref.clone()].into_iter().collect());

    // Final entities are read by ref once stitched.
    assert!(store.final_rows(&[c]).await.unwrap().is_empty());
    write_stitched(store, written.stitch).await;
    let finals = store.final_rows(&[c, d]).await.unwrap();
    assert_eq!(finals.iter().map(|row| row.entity_ref.as_str()).collect::<Vec<_>>(), [c]);
}

async fn the_next_stitch_batch_is_claimed_while_the_last_is_written(db: Db) {
    let store = &db.store;
    let refs = ["component:default/a", "component:default/b", "component:default/c", "component:default/d"];
    store.apply_mutation("p", add(&refs)).await.unwrap();
    let refs_of =
        |inputs: &[crate::StitchInput]| inputs.iter().map(|i| i.entity_ref.clone()).collect::<Vec<_>>();
    let (first, first_last) = store.stitch_inputs_after(2, "").await.unwrap();
    assert_eq!(refs_of(&first), refs[..2]);
    assert_eq!(first_last.as_deref(), Some(refs[1]));
    // The next batch starts after the last one's greatest ref: nothing of it is claimed again.
    let (second, second_last) = store.stitch_inputs_after(2, &first_last.unwrap()).await.unwrap();
    assert_eq!(refs_of(&second), refs[2..]);
    let second_last = second_last.expect("claimed");
    assert!(store.stitch_inputs_after(2, &second_last).await.unwrap().0.is_empty());
    // The first batch still holds its refs, so its write goes through, then the second's.
    assert!(write_stitched(store, first).await.skipped.is_empty());
    assert_eq!(store.stitch_queue_refs().await.unwrap(), refs[2..]);
    assert!(write_stitched(store, second).await.skipped.is_empty());
    assert!(store.stitch_queue_refs().await.unwrap().is_empty());
    // A ref queued meanwhile before the last batch is found by starting over.
    store.apply_mutation("p", add(&["component:default/0"])).await.unwrap();
    assert!(store.stitch_inputs_after(2, &second_last).await.unwrap().0.is_empty());
    let (again, _) = store.stitch_inputs_after(2, "").await.unwrap();
    assert_eq!(refs_of(&again), ["component:default/0"]);
}

async fn reprocessing_replaces_relations_and_orphans_children_no_longer_emitted(db: Db) {
    let store = &db.store;
    store.apply_mutation("p", add(&["location:default/root"])).await.unwrap();
    let root = claim_only(store, "location:default/root").await;
    let result = succeeded(
        &root,
        vec![entity("component:default/a"), entity("component:default/b")],
        vec![
            relation("location:default/root", "hasPart", "component:default/a"),
            relation("location:default/root", "hasPart", "component:default/b"),
        ],
    );
    store.write_results(&[result]).await.unwrap();
    process_all(store, &[]).await;
    stitch_all(store).await;

    store.make_due(&["location:default/root"]).await.unwrap();
    let root = claim_only(store, "location:default/root").await;
    let result = succeeded(
        &root,
        vec![entity("component:default/a")],
        vec![relation("location:default/root", "hasPart", "component:default/a")],
    );
    store.write_results(&[result]).await.unwrap();

    // b stays, as an orphan, and is re-stitched to show it; root lost a relation. a, still
    // emitted with the same relations, is not stitched again.
    assert!(exists(store, "component:default/b").await);
    assert!(!store.has_parents("component:default/b").await.unwrap());
    let inputs = store.stitch_inputs(10).await.unwrap();
    let states: BTreeMap<&str, &StitchState> =
        inputs.iter().map(|input| (input.entity_ref.as_str(), input.state.as_ref().unwrap())).collect();
    assert_eq!(states.keys().copied().collect::<Vec<_>>(), ["component:default/b", "location:default/root"]);
    assert!(!states["component:default/b"].has_parents);
    assert_eq!(states["location:default/root"].relations.len(), 1);
    assert_eq!(store.counts().await.unwrap().relations, 1);
    stitch_all(store).await;
    assert!(finals(store).await["component:default/b"].ends_with("orphan"));
}

async fn unchanged_result_only_releases_the_lease(db: Db) {
    let store = &db.store;
    store.apply_mutation("p", add(&["component:default/a"])).await.unwrap();
    let claimed = store.claim_due(10, 0, HOUR).await.unwrap();
    store.write_results(&[succeeded(&claimed[0], vec![], vec![])]).await.unwrap();
    stitch_all(store).await;
    let before = finals(store).await;

    let claimed = store.claim_due(10, 0, HOUR).await.unwrap();
    assert_eq!(claimed.len(), 1);
    store.write_results(&[outcome(&claimed[0], Outcome::Unchanged)]).await.unwrap();
    assert_eq!(store.stitch_queue_len().await.unwrap(), 0);
    assert_eq!(store.claim_due(10, 0, HOUR).await.unwrap().len(), 1);
    assert_eq!(finals(store).await, before);
}

async fn result_for_an_entity_deleted_during_processing_is_dropped(db: Db) {
    let store = &db.store;
    store.apply_mutation("p", add(&["component:default/a", "component:default/b"])).await.unwrap();
    let claimed = claim(store).await;
    let [a, b] = &claimed[..] else { panic!("claimed {:?}", refs_of(&claimed)) };

    // The provider drops `a` while it is being processed.
    let summary = store.apply_mutation("p", remove(&["component:default/a"])).await.unwrap();
    assert_eq!(summary.deleted, ["component:default/a"]);

    let late = succeeded(
        a,
        vec![entity("component:default/a-child")],
        vec![relation("component:default/a", "dependsOn", "component:default/b")],
    );
    let summary = store.write_results(&[late, succeeded(b, vec![], vec![])]).await.unwrap();
    assert_eq!(summary.dropped, ["component:default/a"], "the caller learns which result was dropped");

    // `b`'s result landed; nothing of `a`'s did, and nothing it emitted exists.
    assert!(!exists(store, "component:default/a").await);
    assert!(!exists(store, "component:default/a-child").await);
    assert_eq!(store.counts().await.unwrap().relations, 0);
    stitch_all(store).await;
    assert_eq!(finals(store).await.into_keys().collect::<Vec<_>>(), ["component:default/b"]);
    assert_eq!(store.delete_orphans().await.unwrap(), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// Stitching and the change feed

async fn stitch_queue_keeps_refs_until_they_are_written(db: Db) {
    let store = &db.store;
    store.apply_mutation("p", add(&["component:default/a", "component:default/b"])).await.unwrap();
    process_all(store, &[]).await;
    assert_eq!(store.stitch_queue_len().await.unwrap(), 2);

    let inputs = store.stitch_inputs(1).await.unwrap();
    let ticket = inputs[0].ticket.clone();
    let first: Vec<String> = inputs.into_iter().map(|i| i.entity_ref).collect();
    assert_eq!(first, ["component:default/a"]);
    // Reading does not dequeue.
    assert_eq!(queued(store).await, ["component:default/a", "component:default/b"]);

    store.write_stitched(&ticket, &[], &[], &first).await.unwrap();
    assert_eq!(queued(store).await, ["component:default/b"]);
    assert_eq!(store.stitch_queue_len().await.unwrap(), 1);
}

async fn change_written_while_a_stitch_is_in_flight_is_stitched_again(db: Db) {
    let store = &db.store;
    store.apply_mutation("p", add(&["component:default/a"])).await.unwrap();
    process_all(store, &[]).await;
    // A stitcher reads the inputs...
    let inputs = store.stitch_inputs(10).await.unwrap();
    let stale = final_text(inputs[0].state.as_ref().unwrap()).unwrap();

    // ...a new result lands meanwhile (another worker or replica)...
    store
        .apply_mutation(
            "p",
            ProviderMutation::Delta {
                added: vec![version("component:default/a", None, "v2")],
                removed: Vec::new(),
            },
        )
        .await
        .unwrap();
    process_all(store, &[]).await;

    // ...and the stitcher writes what it built from the old inputs.
    let state = inputs[0].state.as_ref().unwrap();
    let write = FinalWrite {
        entity_ref: inputs[0].entity_ref.clone(),
        entity_id: state.entity_id.clone(),
        final_entity: stale.clone(),
        hash: stale,
    };
    store.write_stitched(&inputs[0].ticket, &[write], &[], &strings(&["component:default/a"])).await.unwrap();

    // The ref stays queued, so the new result is not lost.
    assert_eq!(queued(store).await, ["component:default/a"]);
    stitch_all(store).await;
    assert!(finals(store).await["component:default/a"].contains("v2"));
}

async fn entity_deleted_while_a_stitch_is_in_flight_gets_no_final_entity(db: Db) {
    let store = &db.store;
    store.apply_mutation("p", add(&["component:default/a", "component:default/b"])).await.unwrap();
    process_all(store, &[]).await;
    let seq = store.current_seq().await.unwrap();
    let inputs = store.stitch_inputs(10).await.unwrap();

    // The provider removes `a` while the stitcher builds it.
    store.apply_mutation("p", remove(&["component:default/a"])).await.unwrap();
    let writes: Vec<FinalWrite> = inputs
        .iter()
        .map(|input| {
            let state = input.state.as_ref().unwrap();
            let text = final_text(state).unwrap();
            FinalWrite {
                entity_ref: input.entity_ref.clone(),
                entity_id: state.entity_id.clone(),
                final_entity: text.clone(),
                hash: text,
            }
        })
        .collect();
    let done: Vec<String> = inputs.iter().map(|input| input.entity_ref.clone()).collect();
    store.write_stitched(&inputs[0].ticket, &writes, &[], &done).await.unwrap();
    stitch_all(store).await;

    assert_eq!(finals(store).await.into_keys().collect::<Vec<_>>(), ["component:default/b"]);
    let changes = store.changes_since(seq).await.unwrap();
    assert_eq!(
        changes.upserts.iter().map(|row| row.entity_ref.as_str()).collect::<Vec<_>>(),
        ["component:default/b"]
    );
}

async fn a_slower_stitcher_never_overwrites_a_newer_result(db: Db) {
    let store = &db.store;
    let write_from = |input: &crate::StitchInput| {
        let state = input.state.as_ref().unwrap();
        let text = final_text(state).unwrap();
        FinalWrite {
            entity_ref: input.entity_ref.clone(),
            entity_id: state.entity_id.clone(),
            final_entity: text.clone(),
            hash: text,
        }
    };
    store.apply_mutation("p", add(&["component:default/a"])).await.unwrap();
    process_all(store, &[]).await;
    let first = store.stitch_inputs(10).await.unwrap();
    let added = vec![version("component:default/a", None, "v2")];
    store.apply_mutation("p", ProviderMutation::Delta { added, removed: Vec::new() }).await.unwrap();
    process_all(store, &[]).await;
    // A second stitcher (another replica) reads the new result and finishes first.
    let second = store.stitch_inputs(10).await.unwrap();
    let done = strings(&["component:default/a"]);
    store.write_stitched(&second[0].ticket, &[write_from(&second[0])], &[], &done).await.unwrap();
    let late = store.write_stitched(&first[0].ticket, &[write_from(&first[0])], &[], &done).await.unwrap();

    // The second read took the queue row over, so the first stitcher's older result is dropped.
    assert_eq!(late.skipped, done);
    assert!(finals(store).await["component:default/a"].contains("v2"));
    assert_eq!(store.stitch_queue_len().await.unwrap(), 0);
}

async fn stitch_input_of_a_deleted_entity_has_no_state(db: Db) {
    let store = &db.store;
    store.apply_mutation("p", add(&["component:default/a"])).await.unwrap();
    process_all(store, &[]).await;
    stitch_all(store).await;
    // Queued again by a failed pass, then deleted before the stitcher gets to it.
    store.make_due(&["component:default/a"]).await.unwrap();
    let a = claim_only(store, "component:default/a").await;
    let failed = Outcome::Failed { result_hash: "x".into(), errors: "[]".into() };
    store.write_results(&[outcome(&a, failed)]).await.unwrap();
    store.apply_mutation("p", remove(&["component:default/a"])).await.unwrap();

    let inputs = store.stitch_inputs(10).await.unwrap();
    assert_eq!(inputs.len(), 1);
    assert_eq!(inputs[0].entity_ref, "component:default/a");
    assert!(inputs[0].state.is_none());
    stitch_all(store).await;
    assert_eq!(store.stitch_queue_len().await.unwrap(), 0);
    assert_eq!(finals(store).await, BTreeMap::new());
}

async fn change_feed_reports_upserts_and_deletes_in_sequence(db: Db) {
    let store = &db.store;
    let changes = store.changes_since(0).await.unwrap();
    assert_eq!((changes.upserts.len(), changes.deletes.len(), changes.seq), (0, 0, 0));
    let upserted =
        |changes: &crate::Changes| sorted(changes.upserts.iter().map(|row| row.entity_ref.clone()).collect());

    store.apply_mutation("p", add(&["component:default/a", "component:default/b"])).await.unwrap();
    process_all(store, &[]).await;
    let seq1 = stitch_all(store).await;
    assert!(seq1 > 0);
    let changes = store.changes_since(0).await.unwrap();
    assert_eq!(upserted(&changes), ["component:default/a", "component:default/b"]);
    assert_eq!(changes.deletes, Vec::<String>::new());
    assert_eq!(changes.seq, seq1);
    assert_eq!(changes.upserts[0].final_entity, finals(store).await[&changes.upserts[0].entity_ref]);

    // Nothing new: same sequence number back.
    let changes = store.changes_since(seq1).await.unwrap();
    assert_eq!((changes.upserts.len(), changes.deletes.len(), changes.seq), (0, 0, seq1));

    // An update is seen after the point a reader had reached, and only it.
    store
        .apply_mutation(
            "p",
            ProviderMutation::Delta {
                added: vec![version("component:default/a", None, "v2")],
                removed: Vec::new(),
            },
        )
        .await
        .unwrap();
    process_all(store, &[]).await;
    let seq2 = stitch_all(store).await;
    assert!(seq2 > seq1);
    let changes = store.changes_since(seq1).await.unwrap();
    assert_eq!(upserted(&changes), ["component:default/a"]);
    assert!(changes.upserts[0].final_entity.contains("v2"));

    // A delete.
    store.apply_mutation("p", remove(&["component:default/b"])).await.unwrap();
    let changes = store.changes_since(seq2).await.unwrap();
    assert_eq!((changes.upserts.len(), changes.deletes.clone()), (0, strings(&["component:default/b"])));
    let seq3 = changes.seq;
    assert!(seq3 > seq2);
    assert_eq!(store.current_seq().await.unwrap(), seq3);
    // A reader starting from scratch sees the current state.
    let changes = store.changes_since(0).await.unwrap();
    assert_eq!(upserted(&changes), ["component:default/a"]);
    assert_eq!(changes.deletes, ["component:default/b"]);

    // Re-created: an upsert again, and no longer a delete.
    store.apply_mutation("p", add(&["component:default/b"])).await.unwrap();
    process_all(store, &[]).await;
    let seq4 = stitch_all(store).await;
    let changes = store.changes_since(seq3).await.unwrap();
    assert_eq!(
        (upserted(&changes), changes.deletes.len(), changes.seq),
        (strings(&["component:default/b"]), 0, seq4)
    );
    let changes = store.changes_since(0).await.unwrap();
    assert_eq!(upserted(&changes), ["component:default/a", "component:default/b"]);
    assert_eq!(changes.deletes, Vec::<String>::new());
}

async fn final_entities_page_paginates_in_ref_order(db: Db) {
    let store = &db.store;
    let refs = [
        "component:default/e",
        "component:default/c",
        "component:default/a",
        "component:default/d",
        "component:default/b",
    ];
    store.apply_mutation("p", add(&refs)).await.unwrap();
    process_all(store, &[]).await;
    stitch_all(store).await;

    let page = |after: &'static str| async move {
        let rows = store.final_entities_page(after, 2).await.unwrap();
        rows.into_iter().map(|row| row.entity_ref).collect::<Vec<_>>()
    };
    assert_eq!(page("").await, ["component:default/a", "component:default/b"]);
    assert_eq!(page("component:default/b").await, ["component:default/c", "component:default/d"]);
    assert_eq!(page("component:default/d").await, ["component:default/e"]);
    assert_eq!(page("component:default/e").await, Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------------
// Deletion

async fn delete_orphans_removes_orphans_with_their_descendants(db: Db) {
    let store = &db.store;
    store.apply_mutation("p", add(&["location:default/root"])).await.unwrap();
    let tree: &[(&str, &[&str])] = &[
        ("location:default/root", &["location:default/x", "component:default/y"]),
        ("location:default/x", &["component:default/x1"]),
    ];
    process_all(store, tree).await;
    let seq = stitch_all(store).await;
    assert_eq!(store.delete_orphans().await.unwrap(), Vec::<String>::new());

    // root stops emitting x: x is an orphan, x1 still has its (orphaned) parent.
    store.make_due(&["location:default/root"]).await.unwrap();
    process_all(store, &[("location:default/root", &["component:default/y"])]).await;
    assert_eq!(store.counts().await.unwrap().refresh_state, 4);

    let deleted = store.delete_orphans().await.unwrap();
    assert_eq!(sorted(deleted), ["component:default/x1", "location:default/x"]);
    assert!(exists(store, "location:default/root").await);
    assert!(exists(store, "component:default/y").await);
    assert_eq!(store.counts().await.unwrap().refresh_state, 2);
    assert_eq!(
        sorted(store.changes_since(seq).await.unwrap().deletes),
        ["component:default/x1", "location:default/x"]
    );
    assert_eq!(store.delete_orphans().await.unwrap(), Vec::<String>::new());
}

async fn delete_entity_by_uid_removes_it_and_makes_its_parents_reprocess(db: Db) {
    let store = &db.store;
    store.apply_mutation("p", add(&["location:default/root"])).await.unwrap();
    let ids = process_all(store, &[("location:default/root", &["component:default/a"])]).await;
    let seq = stitch_all(store).await;
    assert_eq!(claim(store).await.len(), 0);

    let uid = &ids["component:default/a"];
    assert!(store.delete_entity_by_uid(uid).await.unwrap());
    assert!(!exists(store, "component:default/a").await);
    assert_eq!(store.changes_since(seq).await.unwrap().deletes, ["component:default/a"]);
    assert!(!finals(store).await.contains_key("component:default/a"));

    // The parent is due at once and forgets its result hash, so a still-emitted child returns.
    let root = claim_only(store, "location:default/root").await;
    assert_eq!(root.result_hash, None);

    assert!(!store.delete_entity_by_uid(uid).await.unwrap());
    assert!(!store.delete_entity_by_uid("no-such-uid").await.unwrap());
}

async fn deleting_an_entity_restitches_its_relation_peers(db: Db) {
    let store = &db.store;
    store.apply_mutation("p", add(&["component:default/a", "group:default/team"])).await.unwrap();
    let claimed = claim(store).await;
    let [a, team] = &claimed[..] else { panic!("claimed {:?}", refs_of(&claimed)) };
    let a_id = a.entity_id.clone();
    // Processing `a` yields relations in both directions, as the built-in processor does.
    let relations = vec![
        relation("component:default/a", "ownedBy", "group:default/team"),
        relation("group:default/team", "ownerOf", "component:default/a"),
    ];
    store.write_results(&[succeeded(a, vec![], relations), succeeded(team, vec![], vec![])]).await.unwrap();
    stitch_all(store).await;
    assert!(finals(store).await["group:default/team"].contains("ownerOf"));

    assert!(store.delete_entity_by_uid(&a_id).await.unwrap());
    assert_eq!(store.counts().await.unwrap().relations, 0);
    assert_eq!(queued(store).await, ["group:default/team"]);
    stitch_all(store).await;
    assert!(!finals(store).await["group:default/team"].contains("ownerOf"));
}

/// The stored list is only written by the store, so only a damaged database makes it
/// unreadable; the entity still processes, and its peer rows are found by a scan.
async fn an_unreadable_relations_list_is_replaced_and_its_peer_rows_found_by_a_scan(db: Db) {
    let store = &db.store;
    store
        .apply_mutation("p", add(&["component:default/a", "group:default/team", "group:default/other"]))
        .await
        .unwrap();
    let claimed = claim(store).await;
    let [a, other, team] = &claimed[..] else { panic!("claimed {:?}", refs_of(&claimed)) };
    let a_id = a.entity_id.clone();
    let owned_by = |owner: &str| {
        vec![
            relation("component:default/a", "ownedBy", owner),
            relation(owner, "ownerOf", "component:default/a"),
        ]
    };
    let outcomes = [
        succeeded(a, vec![], owned_by("group:default/team")),
        succeeded(team, vec![], vec![]),
        succeeded(other, vec![], vec![]),
    ];
    store.write_results(&outcomes).await.unwrap();
    stitch_all(store).await;
    assert!(finals(store).await["group:default/team"].contains("ownerOf"));

    let damage = "UPDATE refresh_state SET relations = '{oops', next_update_at = 0 WHERE entity_ref = 'component:default/a'";
    store.execute_for_test(damage).await.unwrap();
    let a = claim_only(store, "component:default/a").await;
    store.write_results(&[succeeded(&a, vec![], owned_by("group:default/other"))]).await.unwrap();
    stitch_all(store).await;
    let all = finals(store).await;
    assert!(!all["group:default/team"].contains("ownerOf"), "{}", all["group:default/team"]);
    assert!(all["group:default/other"].contains("ownerOf"), "{}", all["group:default/other"]);

    // Deleting an entity whose list is unreadable takes its peer rows along too.
    store
        .execute_for_test(
            "UPDATE refresh_state SET relations = '[1' WHERE entity_ref = 'component:default/a'",
        )
        .await
        .unwrap();
    assert!(store.delete_entity_by_uid(&a_id).await.unwrap());
    assert_eq!(queued(store).await, ["group:default/other"]);
    stitch_all(store).await;
    assert!(!finals(store).await["group:default/other"].contains("ownerOf"));
}

// ---------------------------------------------------------------------------------------------
// Refresh and ancestry

async fn refresh_makes_the_entity_and_its_location_ancestors_due(db: Db) {
    let store = &db.store;
    store.apply_mutation("p", add(&["location:default/root"])).await.unwrap();
    let tree: &[(&str, &[&str])] = &[
        ("location:default/root", &["location:default/child"]),
        ("location:default/child", &["component:default/service"]),
        ("component:default/service", &["api:default/service-api"]),
    ];
    process_all(store, tree).await;
    assert_eq!(claim(store).await.len(), 0);

    assert!(store.request_refresh("api:default/service-api").await.unwrap());
    // The entity and the locations above it; not the component in between.
    assert_eq!(
        refs_of(&claim(store).await),
        ["api:default/service-api", "location:default/child", "location:default/root"]
    );
}

async fn refresh_of_an_unknown_or_orphaned_entity_is_refused(db: Db) {
    let store = &db.store;
    assert!(!store.request_refresh("component:default/unknown").await.unwrap());

    store.apply_mutation("p", add(&["location:default/root"])).await.unwrap();
    process_all(store, &[("location:default/root", &["component:default/a"])]).await;
    store.make_due(&["location:default/root"]).await.unwrap();
    process_all(store, &[]).await;
    assert!(!store.request_refresh("component:default/a").await.unwrap());
    assert_eq!(claim(store).await.len(), 0);
}

async fn ancestry_lists_the_entity_then_its_emitters_breadth_first(db: Db) {
    let store = &db.store;
    assert_eq!(store.ancestry("component:default/x").await.unwrap(), []);
    store.apply_mutation("p", add(&["location:default/root"])).await.unwrap();
    let tree: &[(&str, &[&str])] = &[
        ("location:default/root", &["location:default/b", "location:default/a"]),
        ("location:default/a", &["component:default/x"]),
        ("location:default/b", &["component:default/x"]),
    ];
    process_all(store, tree).await;

    let item = |entity_ref: &str, parents: &[&str]| AncestryItem {
        entity_ref: entity_ref.to_owned(),
        parent_refs: strings(parents),
    };
    assert_eq!(
        store.ancestry("component:default/x").await.unwrap(),
        [
            item("component:default/x", &["location:default/a", "location:default/b"]),
            item("location:default/a", &["location:default/root"]),
            item("location:default/b", &["location:default/root"]),
            item("location:default/root", &[]),
        ]
    );
}

async fn ancestry_and_refresh_stop_at_emitter_cycles(db: Db) {
    let store = &db.store;
    store.apply_mutation("p", add(&["location:default/a"])).await.unwrap();
    process_all(store, &[("location:default/a", &["location:default/b"])]).await;
    store.insert_edges_for_test(&[("location:default/b", "location:default/a")]).await.unwrap();

    let ancestry = store.ancestry("location:default/a").await.unwrap();
    assert_eq!(
        ancestry,
        [
            AncestryItem {
                entity_ref: "location:default/a".into(),
                parent_refs: strings(&["location:default/b"])
            },
            AncestryItem {
                entity_ref: "location:default/b".into(),
                parent_refs: strings(&["location:default/a"])
            },
        ]
    );
    assert!(store.request_refresh("location:default/b").await.unwrap());
    assert_eq!(refs_of(&claim(store).await), ["location:default/a", "location:default/b"]);
}

// ---------------------------------------------------------------------------------------------
// Migrations and concurrency

async fn signing_keys_are_kept_newest_first_and_pruned_by_age(db: Db) {
    let store = &db.store;
    let key = |kid: &str, created_at: i64| crate::AuthKeyRow {
        kid: kid.to_owned(),
        private_key: format!("private-{kid}"),
        public_jwk: format!(r#"{{"kid":"{kid}"}}"#),
        created_at,
    };
    store.insert_auth_key(&key("old", 1_000)).await.unwrap();
    store.insert_auth_key(&key("new", 2_000)).await.unwrap();
    assert!(store.insert_auth_key(&key("new", 3_000)).await.is_err(), "kids are unique");
    let replica = db.replica().await;
    assert_eq!(replica.auth_keys().await.unwrap(), [key("new", 2_000), key("old", 1_000)]);
    store.prune_auth_keys(1_500).await.unwrap();
    assert_eq!(store.auth_keys().await.unwrap(), [key("new", 2_000)]);
}

async fn audit_records_are_kept_in_order_and_paged_newest_first(db: Db) {
    let store = &db.store;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(
            store
                .record_audit(
                    "user:default/jane",
                    "catalog.entity.refresh",
                    &format!("t{n}"),
                    "127.0.0.1",
                    "{}",
                )
                .await
                .unwrap(),
        );
    }
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
    let page = db.replica().await.audit_records(2, None).await.unwrap();
    assert_eq!(page.iter().map(|row| row.target.as_str()).collect::<Vec<_>>(), ["t4", "t3"]);
    let next = store.audit_records(10, Some(page[1].id)).await.unwrap();
    assert_eq!(next.iter().map(|row| row.target.as_str()).collect::<Vec<_>>(), ["t2", "t1", "t0"]);
    assert_eq!(next[0].actor, "user:default/jane");
    assert_eq!(next[0].source, "127.0.0.1");
}

/// Every migration's description, in order.
const MIGRATIONS: [&str; 8] = [
    "catalog",
    "auth keys",
    "audit log",
    "permission policy",
    "catalog instance",
    "scaffolder tasks",
    "relations by source",
    "relations by emitter",
];

async fn migrations_go_up_down_and_up_again(db: Db) {
    let store = &db.store;
    assert!(store.ping().await);
    assert_eq!(store.is_postgres(), db.backend == Backend::Postgres);
    assert_eq!(store.applied_migrations().await.unwrap(), MIGRATIONS);
    store.insert_location(&location("a", "url", "https://example.com/a.yaml")).await.unwrap();
    store.apply_mutation("p", add(&["component:default/a"])).await.unwrap();

    store.migrate_down().await.unwrap();
    assert_eq!(store.applied_migrations().await.unwrap(), Vec::<String>::new());
    assert!(store.list_locations().await.is_err(), "tables are gone");

    store.migrate().await.unwrap();
    assert_eq!(store.applied_migrations().await.unwrap(), MIGRATIONS);
    assert_eq!(store.list_locations().await.unwrap(), []);
    assert_eq!(store.counts().await.unwrap(), StoreCounts::default());
    assert_eq!(store.current_seq().await.unwrap(), 0);
    // Everything works on the re-created schema.
    store.insert_location(&location("a", "url", "https://example.com/a.yaml")).await.unwrap();
    store.apply_mutation("p", add(&["component:default/a"])).await.unwrap();
    process_all(store, &[]).await;
    assert!(stitch_all(store).await > 0);
}

/// Relations moved from one row per emitted relation to each emitter's list plus peer rows: an
/// existing database is converted both ways without losing one.
async fn relations_survive_the_relations_migration_down_and_up(db: Db) {
    let store = &db.store;
    store.apply_mutation("p", add(&["component:default/a", "group:default/team"])).await.unwrap();
    let claimed = claim(store).await;
    let [a, team] = &claimed[..] else { panic!("claimed {:?}", refs_of(&claimed)) };
    let relations = vec![
        relation("component:default/a", "ownedBy", "group:default/team"),
        relation("group:default/team", "ownerOf", "component:default/a"),
        relation("component:default/a", "dependsOn", "component:default/b"),
        relation("component:default/b", "dependencyOf", "component:default/a"),
    ];
    let team_relations = vec![relation("group:default/team", "childOf", "group:default/org")];
    store
        .write_results(&[succeeded(a, vec![], relations), succeeded(team, vec![], team_relations)])
        .await
        .unwrap();
    let relations_by_ref = || async {
        let inputs = store.stitch_inputs(100).await.unwrap();
        inputs
            .into_iter()
            .map(|input| (input.entity_ref, input.state.map(|state| state.relations)))
            .collect::<BTreeMap<_, _>>()
    };
    let before = relations_by_ref().await;
    assert_eq!(
        before["group:default/team"].as_deref(),
        Some(
            &[
                ("childOf".to_owned(), "group:default/org".to_owned()),
                ("ownerOf".to_owned(), "component:default/a".to_owned())
            ][..]
        )
    );
    assert_eq!(store.counts().await.unwrap().relations, 5);

    store.migrate_down_to(20261205000001).await.unwrap();
    assert_eq!(store.applied_migrations().await.unwrap(), MIGRATIONS[..7]);
    store.migrate().await.unwrap();
    assert_eq!(store.applied_migrations().await.unwrap(), MIGRATIONS);
    assert_eq!(relations_by_ref().await, before);
    assert_eq!(store.counts().await.unwrap().relations, 5);
}

async fn migrating_again_or_from_a_second_replica_is_a_no_op(db: Db) {
    let store = &db.store;
    store.insert_location(&location("a", "url", "https://example.com/a.yaml")).await.unwrap();
    store.migrate().await.unwrap();
    let replica = db.replica().await;
    replica.migrate().await.unwrap();
    assert_eq!(replica.applied_migrations().await.unwrap(), MIGRATIONS);
    assert_eq!(replica.list_locations().await.unwrap().len(), 1);
    let instance = store.instance_id().await.unwrap();
    assert_eq!(instance.len(), 32, "{instance}");
    assert_eq!(replica.instance_id().await.unwrap(), instance, "one database, one id");
}

async fn concurrent_writers_all_succeed(db: Db) {
    // Providers and processing write while the stitcher works, as in a running server.
    let mut writers = tokio::task::JoinSet::new();
    for provider in 0..4 {
        let store = db.replica().await;
        writers.spawn(async move {
            for round in 0..5 {
                let refs: Vec<String> =
                    (0..10).map(|i| format!("component:default/p{provider}-r{round}-e{i}")).collect();
                let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
                store.apply_mutation(&format!("provider-{provider}"), add(&refs)).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
    }
    for _ in 0..2 {
        let store = db.replica().await;
        writers.spawn(async move {
            for _ in 0..20 {
                process_all(&store, &[]).await;
                tokio::task::yield_now().await;
            }
        });
    }
    let stitcher = db.replica().await;
    writers.spawn(async move {
        for _ in 0..40 {
            stitch_all(&stitcher).await;
            tokio::task::yield_now().await;
        }
    });
    while let Some(result) = writers.join_next().await {
        result.unwrap();
    }
    process_all(&db.store, &[]).await;
    stitch_all(&db.store).await;
    assert_eq!(finals(&db.store).await.len(), 4 * 5 * 10);
}

async fn providers_racing_to_add_the_same_refs_leave_one_owner_each(db: Db) {
    let refs: Vec<String> = (0..50).map(|i| format!("component:default/e{i:02}")).collect();
    let mut providers = tokio::task::JoinSet::new();
    for provider in 0..3 {
        let store = db.replica().await;
        let key = format!("url:{provider}");
        let added: Vec<DeferredEntity> = refs.iter().map(|r| version(r, Some(&key), &key)).collect();
        providers.spawn(async move {
            let mutation = ProviderMutation::Delta { added, removed: Vec::new() };
            store.apply_mutation(&format!("provider-{provider}"), mutation).await.unwrap()
        });
    }
    let mut conflicts = Vec::new();
    while let Some(summary) = providers.join_next().await {
        conflicts.extend(summary.unwrap().conflicts.into_iter().map(|c| c.entity_ref));
    }
    // Each ref has one owner; the two others were told of the conflict.
    assert_eq!(db.store.counts().await.unwrap().refresh_state, 50);
    let mut expected: Vec<String> = refs.iter().flat_map(|r| [r.clone(), r.clone()]).collect();
    expected.sort();
    assert_eq!(sorted(conflicts), expected);
    for entity_ref in &refs {
        let ancestry = db.store.ancestry(entity_ref).await.unwrap();
        assert_eq!(ancestry.len(), 1, "{entity_ref}");
    }
}

#[test]
fn in_order_parameters_become_positional_for_sqlite() {
    use crate::positional;
    assert_eq!(
        positional("INSERT INTO t (a, b) VALUES ($1,$2),($3,$4)".into()),
        "INSERT INTO t (a, b) VALUES (?,?),(?,?)"
    );
    assert_eq!(
        positional("SELECT 1 WHERE a = $1 AND b IN ($2,$3,$10)".into()),
        "SELECT 1 WHERE a = $1 AND b IN ($2,$3,$10)"
    );
    let many: Vec<String> = (1..=12).map(|n| format!("${n}")).collect();
    assert_eq!(
        positional(format!("VALUES ({})", many.join(","))),
        format!("VALUES ({})", ["?"; 12].join(","))
    );
    // Reused or reordered parameters keep their numbers.
    assert_eq!(positional("SELECT $1, $1".into()), "SELECT $1, $1");
    assert_eq!(positional("SELECT $2, $1".into()), "SELECT $2, $1");
    assert_eq!(positional("SELECT 'no parameters', $ x".into()), "SELECT 'no parameters', $ x");
}

// ---------------------------------------------------------------------------------------------
// Software template tasks

async fn tasks_are_claimed_oldest_first_and_only_once(db: Db) {
    let store = &db.store;
    for (id, secrets) in [("t1", Some("sealed-1")), ("t2", None), ("t3", None)] {
        store.create_task(id, "{}", Some("user:default/ada"), secrets).await.unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let first = store.claim_task().await.unwrap().unwrap();
    assert_eq!(first.task.id, "t1");
    assert_eq!(first.task.status, "processing");
    assert_eq!(first.secrets.as_deref(), Some("sealed-1"));
    assert!(first.task.last_heartbeat_at.is_some());

    // Two replicas claiming at once never get the same task.
    let replica = db.replica().await;
    let (a, b) = tokio::join!(store.claim_task(), replica.claim_task());
    let mut ids: Vec<String> =
        [a.unwrap(), b.unwrap()].into_iter().flatten().map(|claimed| claimed.task.id).collect();
    ids.sort();
    assert_eq!(ids, ["t2", "t3"]);
    assert!(store.claim_task().await.unwrap().is_none());
}

async fn finishing_a_task_forgets_its_secrets_and_announces_it_once(db: Db) {
    let store = &db.store;
    store.create_task("t1", r#"{"steps":[]}"#, None, Some("sealed")).await.unwrap();
    store.claim_task().await.unwrap().unwrap();
    let log = store.append_task_event("t1", "log", r#"{"message":"hello"}"#).await.unwrap();
    assert!(store.finish_task("t1", "completed", "completion", r#"{"message":"done"}"#).await.unwrap());
    assert!(!store.finish_task("t1", "failed", "completion", r#"{"message":"again"}"#).await.unwrap());

    let task = store.task("t1").await.unwrap().unwrap();
    assert_eq!(task.status, "completed");
    let events = store.task_events("t1", 0).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|event| event.event_type.as_str()).collect();
    assert_eq!(kinds, ["log", "completion"]);
    assert_eq!(events[0].id, log);
    assert!(events[1].id > log);
    assert_eq!(store.task_events("t1", log).await.unwrap().len(), 1);
    // Retrying a completed task is refused; nothing to reopen.
    assert!(!store.reopen_task("t1", None).await.unwrap());
    assert!(store.task("nope").await.unwrap().is_none());
}

async fn tasks_are_listed_filtered_ordered_and_counted(db: Db) {
    let store = &db.store;
    for (id, by) in [("a", "user:default/ada"), ("b", "user:default/bob"), ("c", "user:default/ada")] {
        store.create_task(id, "{}", Some(by), None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    store.claim_task().await.unwrap();
    let ids = |rows: Vec<crate::TaskRow>| rows.into_iter().map(|row| row.id).collect::<Vec<_>>();

    let (rows, total) = store.list_tasks(&crate::TaskQuery::default()).await.unwrap();
    assert_eq!((ids(rows), total), (strings(&["c", "b", "a"]), 3));

    let query = crate::TaskQuery {
        created_by: strings(&["user:default/ada"]),
        order: vec![("created_at", false)],
        ..Default::default()
    };
    let (rows, total) = store.list_tasks(&query).await.unwrap();
    assert_eq!((ids(rows), total), (strings(&["a", "c"]), 2));

    let query = crate::TaskQuery {
        status: strings(&["open"]),
        limit: Some(1),
        offset: Some(1),
        ..Default::default()
    };
    let (rows, total) = store.list_tasks(&query).await.unwrap();
    assert_eq!((ids(rows), total), (strings(&["b"]), 2));
    assert_eq!(crate::TaskQuery::column("createdAt"), Some("created_at"));
    assert_eq!(crate::TaskQuery::column("spec; DROP TABLE x"), None);
}

async fn a_reopened_task_loses_the_events_that_ended_it(db: Db) {
    let store = &db.store;
    store.create_task("t1", "{}", None, Some("old")).await.unwrap();
    store.claim_task().await.unwrap();
    store.append_task_event("t1", "log", r#"{"message":"step"}"#).await.unwrap();
    store.append_task_event("t1", "cancelled", r#"{"message":"Step 0 has been cancelled."}"#).await.unwrap();
    store.finish_task("t1", "cancelled", "completion", r#"{"message":"x"}"#).await.unwrap();

    assert!(store.reopen_task("t1", Some("new")).await.unwrap());
    let task = store.task("t1").await.unwrap().unwrap();
    assert_eq!(task.status, "open");
    let kinds: Vec<String> =
        store.task_events("t1", 0).await.unwrap().into_iter().map(|event| event.event_type).collect();
    assert_eq!(kinds, ["log"]);
    assert_eq!(store.claim_task().await.unwrap().unwrap().secrets.as_deref(), Some("new"));
}

async fn stale_running_tasks_start_over_or_fail(db: Db) {
    let store = &db.store;
    store.create_task("again", r#"{"recover":true}"#, None, None).await.unwrap();
    store.create_task("lost", "{}", None, Some("sealed")).await.unwrap();
    store.create_task("waiting", "{}", None, None).await.unwrap();
    store.claim_task().await.unwrap();
    store.claim_task().await.unwrap();
    // Fresh heartbeats: nothing is stale yet.
    let recovered = store.recover_tasks(60_000, |_| true, "lost").await.unwrap();
    assert!(recovered.is_empty());

    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut recovered =
        store.recover_tasks(10, |task| task.spec.contains("recover"), "The server stopped").await.unwrap();
    recovered.sort_by_key(|recovery| format!("{recovery:?}"));
    assert_eq!(
        recovered,
        [crate::Recovery::Failed("lost".into()), crate::Recovery::Reopened("again".into())]
    );
    assert_eq!(store.task("again").await.unwrap().unwrap().status, "open");
    assert_eq!(store.task("lost").await.unwrap().unwrap().status, "failed");
    assert_eq!(store.task("waiting").await.unwrap().unwrap().status, "open");
    let events = store.task_events("lost", 0).await.unwrap();
    assert_eq!(events.len(), 1);
    assert!(events[0].body.contains("The server stopped"), "{}", events[0].body);
    assert_eq!(store.task_events("again", 0).await.unwrap()[0].event_type, "recovered");
}

async fn an_open_task_is_cancelled_only_while_no_worker_has_it(db: Db) {
    let store = &db.store;
    store.create_task("queued", "{}", None, Some("sealed")).await.unwrap();
    assert!(store
        .cancel_open_task("queued", r#"{"message":"Run completed with status: cancelled"}"#)
        .await
        .unwrap());
    assert_eq!(store.task("queued").await.unwrap().unwrap().status, "cancelled");
    assert_eq!(store.task_events("queued", 0).await.unwrap()[0].event_type, "completion");
    assert!(store.claim_task().await.unwrap().is_none(), "a cancelled task is not claimed");

    store.create_task("running", "{}", None, None).await.unwrap();
    store.claim_task().await.unwrap().unwrap();
    assert!(!store.cancel_open_task("running", "{}").await.unwrap());
    assert_eq!(store.task("running").await.unwrap().unwrap().status, "processing");
}
