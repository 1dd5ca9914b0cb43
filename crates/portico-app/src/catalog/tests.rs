//! Entities shown ahead of the store: added only where the index has nothing, withdrawn or
//! settled without touching what the store put there, and never saved in a snapshot.

use portico_store::{DatabaseConfig, Store};
use serde_json::json;

use super::{prepare_parsed, Catalog, Prepared};

fn entity(name: &str, description: &str) -> Prepared {
    let entity = json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": { "name": name, "namespace": "default", "uid": format!("uid-{name}"), "description": description },
        "spec": { "type": "service", "lifecycle": "production", "owner": "team-a" },
    });
    prepare_parsed(&format!("component:default/{name}"), &entity, entity.to_string()).expect("prepared")
}

fn description(catalog: &Catalog, name: &str) -> Option<String> {
    let body = catalog.read().by_ref(&format!("component:default/{name}"))?;
    let entity: serde_json::Value = serde_json::from_str(&body).ok()?;
    entity["metadata"]["description"].as_str().map(str::to_owned)
}

async fn empty_store(dir: &tempfile::TempDir) -> Store {
    Store::open(&DatabaseConfig::Sqlite { path: Some(dir.path().join("catalog.db")) }).await.unwrap()
}

#[tokio::test]
async fn entities_shown_ahead_are_added_only_where_the_index_has_nothing() {
    let catalog = Catalog::new();
    let shown = catalog.show_ahead(vec![entity("a", "first"), entity("b", "first")]).await;
    assert_eq!(shown, ["component:default/a", "component:default/b"]);
    assert_eq!((catalog.ahead(), catalog.read().len()), (2, 2));

    // Shown again (a later write's view): the entity already in the index keeps its form.
    let shown = catalog.show_ahead(vec![entity("a", "second"), entity("c", "first")]).await;
    assert_eq!(shown, ["component:default/c"]);
    assert_eq!(description(&catalog, "a").as_deref(), Some("first"));

    // Withdrawn: gone from the index, and a ref never shown ahead is left alone.
    catalog.withdraw(&["component:default/a".to_owned(), "component:default/zzz".to_owned()]).await;
    assert_eq!(description(&catalog, "a"), None);
    assert_eq!((catalog.ahead(), catalog.read().len()), (2, 2));
}

#[tokio::test]
async fn a_stored_change_takes_an_entity_out_of_the_ahead_state_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let store = empty_store(&dir).await;
    let catalog = Catalog::new();
    catalog.show_ahead(vec![entity("a", "shown"), entity("b", "shown")]).await;
    // This process wrote change 1: a confirmed as shown, b stored in another form.
    let seq = catalog.seq() + 1;
    catalog
        .apply_written(&store, seq, vec![entity("b", "stored")], &[], &["component:default/a".to_owned()])
        .await
        .unwrap();
    assert_eq!(catalog.ahead(), 0);
    assert_eq!(description(&catalog, "a").as_deref(), Some("shown"));
    assert_eq!(description(&catalog, "b").as_deref(), Some("stored"));
    // A withdrawal arriving late no longer removes them: the store has them.
    catalog.withdraw(&["component:default/a".to_owned(), "component:default/b".to_owned()]).await;
    assert_eq!(catalog.read().len(), 2);
}

#[tokio::test]
async fn settling_keeps_only_what_the_store_holds_and_snapshots_wait_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = empty_store(&dir).await;
    let catalog = Catalog::with_snapshot(dir.path().join("catalog.index"));
    catalog.load(&store).await.unwrap();
    catalog.show_ahead(vec![entity("a", "shown")]).await;
    catalog.apply_written(&store, 1, vec![entity("b", "stored")], &[], &[]).await.unwrap();
    // The index is not a state of the store while anything is shown ahead: it is not saved.
    assert!(!catalog.save_snapshot(true).unwrap());
    assert!(!dir.path().join("catalog.index").exists());

    // The store never got `a` (nothing will settle it otherwise): settling removes it.
    assert_eq!(catalog.settle_ahead(&store).await.unwrap(), 1);
    assert_eq!((catalog.ahead(), catalog.read().len()), (0, 1));
    assert_eq!(catalog.settle_ahead(&store).await.unwrap(), 0);
    assert!(catalog.save_snapshot(true).unwrap());
}

#[tokio::test]
async fn writes_to_an_entity_shown_ahead_wait_until_it_leaves_that_state() {
    let catalog = std::sync::Arc::new(Catalog::new());
    catalog.show_ahead(vec![entity("a", "shown")]).await;
    // Not shown ahead: no wait.
    catalog.until_stored("component:default/other").await;

    let waiter = {
        let catalog = catalog.clone();
        tokio::spawn(async move { catalog.until_stored("component:default/a").await })
    };
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished(), "waits while a is shown ahead");
    catalog.withdraw(&["component:default/a".to_owned()]).await;
    tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
        .await
        .expect("woken when a left the ahead state")
        .unwrap();
}

#[tokio::test]
async fn a_ref_gone_before_its_first_final_entity_is_withdrawn_when_the_feed_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let store = empty_store(&dir).await;
    let catalog = Catalog::new();
    catalog.show_ahead(vec![entity("a", "shown")]).await;
    // Another change took the sequence number in between: the fallback follows the feed, which
    // says nothing of `a` (it never had a final entity), and `gone` takes it back.
    catalog
        .apply_written(&store, catalog.seq() + 2, Vec::new(), &["component:default/a".to_owned()], &[])
        .await
        .unwrap();
    assert_eq!((catalog.ahead(), catalog.read().len()), (0, 0));
}
