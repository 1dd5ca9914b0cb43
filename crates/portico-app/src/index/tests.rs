use std::sync::Arc;

use portico_query::filter::{parse_query_filters, Filter};
use portico_query::search::search_rows;
use serde_json::{json, Value};

use crate::index::{Index, OrderKey};
use crate::query::{self, FullTextFilter, OrderField, QueryFilter, QueryRequest, SortOrder};

fn entity(name: &str, kind: &str, spec_type: &str, uid: &str) -> Value {
    json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": kind,
        "metadata": { "name": name, "namespace": "default", "uid": uid, "tags": ["t"] },
        "spec": { "type": spec_type },
        "relations": [],
    })
}

fn index_of(entities: &[Value]) -> Index {
    let mut index = Index::default();
    for entity in entities {
        let entity_ref = format!(
            "{}:default/{}",
            entity["kind"].as_str().unwrap_or("").to_lowercase(),
            entity["metadata"]["name"].as_str().unwrap_or("").to_lowercase()
        );
        let uid = entity["metadata"]["uid"].as_str().unwrap_or("");
        index.upsert(&entity_ref, uid, Arc::from(entity.to_string()), search_rows(entity).unwrap());
    }
    index
}

fn names(items: &[Arc<str>]) -> Vec<String> {
    items
        .iter()
        .map(|item| {
            serde_json::from_str::<Value>(item).unwrap()["metadata"]["name"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn filter(text: &str) -> Option<Filter> {
    parse_query_filters(&[text.to_owned()]).unwrap()
}

#[test]
fn filters_use_lower_cased_values_and_updates_replace_postings() {
    let mut index = index_of(&[
        entity("a", "Component", "Service", "3"),
        entity("b", "Component", "website", "2"),
        entity("c", "API", "openapi", "1"),
    ]);
    assert_eq!(index.eval(filter("kind=component").as_ref()).len(), 2);
    assert_eq!(index.eval(filter("spec.type=service").as_ref()).len(), 1);
    assert_eq!(index.eval(filter("spec.type").as_ref()).len(), 3);

    // Re-inserting an entity moves it between postings.
    let changed = entity("a", "Component", "library", "3");
    index.upsert("component:default/a", "3", Arc::from(changed.to_string()), search_rows(&changed).unwrap());
    assert_eq!(index.eval(filter("spec.type=service").as_ref()).len(), 0);
    assert_eq!(index.eval(filter("spec.type=library").as_ref()).len(), 1);
    assert_eq!(index.len(), 3);

    assert!(index.remove("component:default/a"));
    assert_eq!(index.eval(filter("kind=component").as_ref()).len(), 1);
    assert!(index.by_uid("3").is_none());
    assert!(!index.remove("component:default/a"));
}

#[test]
fn facets_group_by_original_spelling() {
    let index = index_of(&[
        entity("a", "Component", "Service", "1"),
        entity("b", "Component", "service", "2"),
        entity("c", "Component", "service", "3"),
    ]);
    let facet = index.facet("spec.type", &index.universe());
    assert_eq!(facet, vec![("Service".to_owned(), 1), ("service".to_owned(), 2)]);
}

#[test]
fn cursor_pages_cover_everything_once_in_both_directions() {
    let entities: Vec<Value> = (0..57)
        .map(|n| {
            entity(
                &format!("n{:02}", (n * 37) % 57),
                "Component",
                if n % 3 == 0 { "x" } else { "y" },
                &format!("u{n:03}"),
            )
        })
        .collect();
    let index = index_of(&entities);
    for order in [SortOrder::Asc, SortOrder::Desc] {
        let mut seen = Vec::new();
        let mut request = QueryRequest {
            filter: QueryFilter::Params(vec!["spec.type=y".into()]),
            order: Some(OrderField { field: "metadata.name".into(), order }),
            limit: Some(5),
            include_total: true,
            ..QueryRequest::default()
        };
        let mut pages = Vec::new();
        loop {
            let page = query::query_entities(&index, None, request.clone()).unwrap();
            assert_eq!(page.total_items, 38);
            seen.extend(names(&page.items));
            pages.push(page.clone());
            match page.next_cursor {
                Some(cursor) => {
                    request = QueryRequest { cursor: Some(cursor), limit: Some(5), ..QueryRequest::default() }
                }
                None => break,
            }
        }
        let mut expected: Vec<String> = seen.clone();
        expected.sort();
        if order == SortOrder::Desc {
            expected.reverse();
        }
        assert_eq!(seen, expected, "{order:?}: sorted, each once");
        assert_eq!(seen.len(), 38);

        // Walking back from the last page yields the same pages in reverse.
        let mut back = pages.last().unwrap().prev_cursor.clone();
        let mut index_from_end = pages.len() - 1;
        while let Some(cursor) = back {
            index_from_end -= 1;
            let page = query::query_entities(
                &index,
                None,
                QueryRequest { cursor: Some(cursor), limit: Some(5), ..QueryRequest::default() },
            )
            .unwrap();
            assert_eq!(names(&page.items), names(&pages[index_from_end].items));
            back = page.prev_cursor;
        }
        assert_eq!(index_from_end, 0, "prev cursors lead back to the first page");
    }
}

#[test]
fn ordering_drops_entities_without_the_field_and_full_text_matches_substrings() {
    let mut with_title = entity("titled", "Component", "x", "1");
    with_title["metadata"]["title"] = json!("Payments Gateway");
    let index = index_of(&[with_title, entity("plain", "Component", "x", "2")]);
    let page = query::query_entities(
        &index,
        None,
        QueryRequest {
            order: Some(OrderField { field: "metadata.title".into(), order: SortOrder::Asc }),
            include_total: true,
            ..QueryRequest::default()
        },
    )
    .unwrap();
    assert_eq!(names(&page.items), vec!["titled"]);
    assert_eq!(page.total_items, 1);

    let page = query::query_entities(
        &index,
        None,
        QueryRequest {
            full_text: Some(FullTextFilter {
                term: " GATE ".into(),
                fields: Some(vec!["metadata.title".into()]),
            }),
            include_total: true,
            ..QueryRequest::default()
        },
    )
    .unwrap();
    assert_eq!(names(&page.items), vec!["titled"]);
}

#[test]
fn a_count_without_items_equals_the_total_of_a_page_and_sorts_nothing() {
    let mut with_title = entity("titled", "Component", "x", "1");
    with_title["metadata"]["title"] = json!("Payments Gateway");
    let index =
        index_of(&[with_title, entity("plain", "Component", "x", "2"), entity("api", "API", "y", "3")]);
    for order in [None, Some(OrderField { field: "metadata.title".into(), order: SortOrder::Desc })] {
        let request = |limit| QueryRequest {
            order: order.clone(),
            limit: Some(limit),
            include_total: true,
            filter: QueryFilter::Params(vec!["kind=component".into()]),
            ..QueryRequest::default()
        };
        let count = query::query_entities(&index, None, request(0)).unwrap();
        assert!(count.items.is_empty() && count.next_cursor.is_none() && count.prev_cursor.is_none());
        assert!(index.orders.lock().is_empty(), "a count built a sorted order");
        let page = query::query_entities(&index, None, request(10)).unwrap();
        assert_eq!(count.total_items, page.total_items);
        assert_eq!(page.total_items, if order.is_some() { 1 } else { 2 });
        index.orders.lock().clear();
    }
}

#[test]
fn default_order_is_by_uid_and_by_ref_when_paginating_lists() {
    let index = index_of(&[entity("b", "Component", "x", "1"), entity("a", "Component", "x", "2")]);
    let order = index.order(&OrderKey::Uid);
    let (slots, _) = index.page(&order, &index.universe(), None, false, 0, 10);
    let uids: Vec<&str> = slots.iter().map(|&slot| index.uid(slot).unwrap()).collect();
    assert_eq!(uids, vec!["1", "2"]);
    let page = query::list_entities(
        &index,
        None,
        &query::ListRequest { limit: Some(10), ..query::ListRequest::default() },
    )
    .unwrap();
    assert_eq!(names(&page.items), vec!["a", "b"]);
}

#[test]
fn cached_facets_follow_changes_and_warming_refreshes_them() {
    let mut index =
        index_of(&[entity("a", "Component", "service", "1"), entity("b", "Component", "website", "2")]);
    let by_type = |index: &Index| {
        query::facets_within(
            index,
            None,
            &QueryFilter::Params(vec!["kind=component".into()]),
            false,
            1,
            &["spec.type".into()],
        )
        .unwrap()
    };
    assert_eq!(by_type(&index)[0].1, [("service".to_owned(), 1)], "ties keep the first value");
    let extra = entity("c", "Component", "website", "3");
    index.upsert("component:default/c", "3", Arc::from(extra.to_string()), search_rows(&extra).unwrap());
    index.warm();
    assert_eq!(by_type(&index)[0].1, [("website".to_owned(), 2)], "the top value after the change");
    let full =
        query::facets_within(&index, None, &QueryFilter::None, false, usize::MAX, &["spec.type".into()])
            .unwrap();
    assert_eq!(full[0].1, [("service".to_owned(), 1), ("website".to_owned(), 2)]);
}

#[test]
fn bodies_move_to_a_trained_dictionary_without_changing_answers() {
    let entities: Vec<Value> = (0..1_200)
        .map(|i| {
            entity(&format!("service-{i}"), "Component", ["service", "website"][i % 2], &format!("uid-{i}"))
        })
        .collect();
    let mut index = index_of(&entities);
    let before = index.by_ref("component:default/service-7").unwrap();
    let generation = index.generation();

    let samples = index.dictionary_samples().expect("enough entities to train");
    assert!(samples.len() >= 1_000, "{}", samples.len());
    // Asked again before the catalog doubled, it does not train again.
    assert!(index.dictionary_samples().is_none());
    index.set_codec(crate::index::train_codec(&samples).expect("a dictionary"));
    let mut from = 0;
    loop {
        let (outdated, next) = index.outdated_bodies(from, 500);
        let codec = index.codec().clone();
        let recompressed = outdated
            .into_iter()
            .map(|(slot_id, old)| {
                let new = codec.compress(&codec.decompress(&old).unwrap());
                (slot_id, old, new)
            })
            .collect();
        index.replace_bodies(recompressed);
        match next {
            Some(next) => from = next,
            None => break,
        }
    }
    assert!(index.outdated_bodies(0, usize::MAX).0.is_empty());
    assert_eq!(index.by_ref("component:default/service-7").unwrap(), before);
    assert_eq!(index.generation(), generation, "recompression is not a change");
    assert_eq!(index.eval(filter("spec.type=website").as_ref()).len(), 600);

    // Entities written afterwards use the dictionary, and replacing one unindexes the old body.
    let changed = entity("service-7", "Component", "library", "uid-7");
    index.upsert(
        "component:default/service-7",
        "uid-7",
        Arc::from(changed.to_string()),
        search_rows(&changed).unwrap(),
    );
    assert!(index.outdated_bodies(0, usize::MAX).0.is_empty());
    assert_eq!(index.eval(filter("spec.type=website").as_ref()).len(), 599);
    assert_eq!(index.eval(filter("spec.type=library").as_ref()).len(), 1);
    assert_eq!(names(&[index.by_uid("uid-7").unwrap()]), ["service-7"]);
}

#[test]
fn a_snapshot_reads_back_as_the_same_index() {
    use crate::index::{SnapshotError, SnapshotHeader};

    let mut entities: Vec<Value> = (0..1_100)
        .map(|i| {
            entity(&format!("Service-{i}"), "Component", ["Service", "website"][i % 2], &format!("uid-{i}"))
        })
        .collect();
    entities.push(entity("gone", "API", "openapi", "uid-gone"));
    let mut index = index_of(&entities);
    index.remove("api:default/gone");
    // Half the bodies in the trained form, half not: both must survive.
    let samples = index.dictionary_samples().unwrap();
    index.set_codec(crate::index::train_codec(&samples).unwrap());
    let (outdated, _) = index.outdated_bodies(0, 500);
    let codec = index.codec().clone();
    index.replace_bodies(
        outdated
            .into_iter()
            .map(|(slot, old)| (slot, old.clone(), codec.compress(&codec.decompress(&old).unwrap())))
            .collect(),
    );

    let header = SnapshotHeader { instance: "db-1".into(), seq: 42 };
    let mut bytes = Vec::new();
    index.write_snapshot(&header, &mut bytes).unwrap();
    let (read_header, mut read) = Index::read_snapshot(Arc::new(bytes.clone())).unwrap();
    assert_eq!(read_header, header);
    assert_eq!(read.len(), index.len());
    // Keys are read on first use; the rest when asked.
    assert!(read.keys.iter().all(|key| !key.is_read()), "no key is read up front");
    assert_eq!(read.eval(filter("kind=api").as_ref()).len(), 0);
    assert!(read.keys.iter().any(|key| key.is_read()));
    for name in ["Service-0", "Service-7", "Service-1099"] {
        let entity_ref = format!("component:default/{}", name.to_lowercase());
        assert_eq!(read.by_ref(&entity_ref), index.by_ref(&entity_ref));
    }
    assert_eq!(read.by_uid("uid-3"), index.by_uid("uid-3"));
    assert!(read.by_ref("api:default/gone").is_none());
    for text in ["spec.type=service", "kind=component", "metadata.name=service-12", "kind=api"] {
        assert_eq!(read.eval(filter(text).as_ref()), index.eval(filter(text).as_ref()), "{text}");
    }
    for key_id in 0..read.key_slots() {
        read.read_key(key_id);
    }
    assert!(read.keys.iter().all(|key| key.is_read()));
    let all = index.universe();
    assert_eq!(read.facet("spec.type", &all), index.facet("spec.type", &all));
    assert_eq!(read.facet("spec.type", &all), [("Service".to_owned(), 550), ("website".to_owned(), 550)]);
    let order = read.order(&OrderKey::Field("metadata.name".into()));
    let (first, _) = read.page(&order, &read.universe(), None, false, 0, 2);
    assert_eq!(first.len(), 2);

    // The read index keeps working: the freed slot is reused, updates move postings.
    let extra = entity("new", "API", "grpc", "uid-new");
    read.upsert("api:default/new", "uid-new", Arc::from(extra.to_string()), search_rows(&extra).unwrap());
    assert_eq!(read.eval(filter("kind=api").as_ref()).len(), 1);
    assert!(read.remove("component:default/service-7"));
    assert_eq!(read.eval(filter("spec.type=website").as_ref()).len(), 549);

    // Damage of any kind is refused, never half-read.
    for cut in [0, 10, 20, bytes.len() / 2, bytes.len() - 1] {
        assert!(Index::read_snapshot(Arc::new(bytes[..cut].to_vec())).is_err(), "cut at {cut}");
    }
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    assert!(matches!(Index::read_snapshot(Arc::new(flipped)), Err(SnapshotError::Checksum)));
    let mut other_version = bytes.clone();
    other_version[14] = 99;
    assert!(matches!(Index::read_snapshot(Arc::new(other_version)), Err(SnapshotError::Format)));
}

#[test]
fn a_repacked_copy_continues_generations_and_cached_orders() {
    use crate::index::SnapshotHeader;

    let entities: Vec<Value> =
        (0..50).map(|i| entity(&format!("s-{i:02}"), "Component", "service", &format!("u{i:02}"))).collect();
    let mut old = index_of(&entities);
    let order_key = OrderKey::Field("metadata.name".into());
    let before = old.order(&order_key);
    old.remove("component:default/s-00");
    let mut bytes = Vec::new();
    old.write_snapshot(&SnapshotHeader { instance: String::new(), seq: 1 }, &mut bytes).unwrap();
    let (_, mut fresh) = Index::read_snapshot(Arc::new(bytes.clone())).unwrap();
    fresh.take_over_from(&old);
    assert!(fresh.generation() > old.generation(), "a generation never repeats");
    fresh.warm();
    let after = fresh.order(&order_key);
    assert_eq!(after.entries.len(), before.entries.len() - 1, "the order was rebuilt for the copy");
    let (first, _) = fresh.page(&after, &fresh.universe(), None, false, 0, 1);
    assert_eq!(fresh.entity_ref(first[0]), Some("component:default/s-01"));
}

#[test]
fn a_snapshot_written_in_steps_is_refused_when_the_index_changes_between_them() {
    use crate::index::{write_snapshot_in_steps, SnapshotHeader};

    let entities: Vec<Value> =
        (0..20).map(|i| entity(&format!("s-{i:02}"), "Component", "service", &format!("u{i:02}"))).collect();
    let lock = parking_lot::RwLock::new(index_of(&entities));
    let header = SnapshotHeader { instance: "db".into(), seq: 3 };

    // Left alone, the stepped writer gives the same bytes as the one-shot one.
    let mut stepped = Vec::new();
    assert!(write_snapshot_in_steps(&|| Some(lock.read()), &header, &mut stepped).unwrap());
    let mut whole = Vec::new();
    lock.read().write_snapshot(&header, &mut whole).unwrap();
    assert_eq!(stepped, whole);

    // A change between two steps makes the result unusable, and the writer says so.
    let calls = std::cell::Cell::new(0);
    let look = || {
        calls.set(calls.get() + 1);
        if calls.get() == 2 {
            let extra = entity("late", "API", "grpc", "u-late");
            lock.write().upsert(
                "api:default/late",
                "u-late",
                Arc::from(extra.to_string()),
                search_rows(&extra).unwrap(),
            );
        }
        Some(lock.read())
    };
    let mut changed = Vec::new();
    assert!(!write_snapshot_in_steps(&look, &header, &mut changed).unwrap());
}

#[test]
fn a_batch_upsert_answers_as_one_by_one_upserts() {
    let prepared = |entity: &Value, has_errors: bool| {
        let name = entity["metadata"]["name"].as_str().unwrap().to_lowercase();
        let entity_ref = format!("{}:default/{name}", entity["kind"].as_str().unwrap().to_lowercase());
        let uid = entity["metadata"]["uid"].as_str().unwrap().to_owned();
        (entity_ref, uid, Arc::from(entity.to_string()), search_rows(entity).unwrap(), has_errors)
    };
    // Large enough to be filled on several threads; the second batch replaces half the first,
    // gives one ref twice, and spells a value two ways.
    let first: Vec<_> = (0..2_500)
        .map(|i| {
            prepared(
                &entity(&format!("s-{i}"), "Component", ["Service", "website"][i % 2], &format!("u{i}")),
                i % 7 == 0,
            )
        })
        .collect();
    let mut second: Vec<_> = (1_250..3_750)
        .map(|i| {
            prepared(
                &entity(&format!("s-{i}"), "Component", ["service", "library"][i % 2], &format!("u{i}")),
                i % 5 == 0,
            )
        })
        .collect();
    second.push(prepared(&entity("s-1300", "API", "openapi", "u1300"), true));
    assert!(second.iter().map(|entry| entry.3.len()).sum::<usize>() > 20_000, "large enough for threads");

    let mut one_by_one = Index::default();
    for (entity_ref, uid, body, rows, has_errors) in first.iter().chain(&second).cloned() {
        one_by_one.upsert(&entity_ref, &uid, body, rows);
        one_by_one.flag_errors(&entity_ref, has_errors);
    }
    let mut batched = Index::default();
    batched.upsert_many(first);
    batched.upsert_many(second);

    assert_eq!(batched.len(), one_by_one.len());
    for i in (0..3_750).step_by(37).chain([1_300]) {
        let entity_ref = format!("component:default/s-{i}");
        assert_eq!(batched.by_ref(&entity_ref), one_by_one.by_ref(&entity_ref), "{entity_ref}");
        assert_eq!(batched.by_uid(&format!("u{i}")), one_by_one.by_uid(&format!("u{i}")));
    }
    assert_eq!(batched.by_ref("api:default/s-1300"), one_by_one.by_ref("api:default/s-1300"));
    for text in
        ["spec.type=service", "spec.type=website", "kind=api", "metadata.name=s-1300", "metadata.tags=t"]
    {
        assert_eq!(
            batched.eval(filter(text).as_ref()).len(),
            one_by_one.eval(filter(text).as_ref()).len(),
            "{text}"
        );
    }
    for key in ["spec.type", "kind", "metadata.namespace"] {
        assert_eq!(
            batched.facet(key, &batched.universe()),
            one_by_one.facet(key, &one_by_one.universe()),
            "{key}"
        );
    }
    assert_eq!(batched.with_errors().len(), one_by_one.with_errors().len());
}
