//! How relations are kept. The built-in processor emits each relation with its inverse, so one
//! side of a pair starts at the emitting entity and the other at its peer:
//! - `refresh_state.relations` holds everything an entity emitted, as a JSON array of
//!   `[type, target]` (the entity is the source) or `[type, target, source]`. Writing it adds no
//!   index entries, and a new pass is compared with it to find what changed.
//! - the `relations` table holds only the rows whose source is another entity (its peer), keyed by
//!   `(source, type, target, emitter)`, so stitching reads what others say about an entity in one
//!   range of one B-tree.
//!
//! At 250,000 entities this is about a million peer rows in one B-tree instead of two million
//! rows in a table and two indexes.

use std::collections::HashSet;

use crate::processing::RelationRow;

/// The distinct relations of one pass, in emission order.
pub(crate) fn distinct(relations: &[RelationRow]) -> Vec<&RelationRow> {
    // An entity emits a handful of relations: comparing with those kept beats hashing each
    // one's three strings (this runs for every entity a write stores, on the writer's path).
    if relations.len() <= 32 {
        let mut kept: Vec<&RelationRow> = Vec::with_capacity(relations.len());
        for relation in relations {
            if !kept.contains(&relation) {
                kept.push(relation);
            }
        }
        return kept;
    }
    let mut seen: HashSet<&RelationRow> = HashSet::with_capacity(relations.len());
    relations.iter().filter(|relation| seen.insert(*relation)).collect()
}

/// The JSON text stored in `refresh_state.relations` for `owner`'s emitted relations.
pub(crate) fn encode(owner: &str, relations: &[&RelationRow]) -> String {
    // Written piece by piece: a list of lists would allocate once per relation. Tuples
    // serialize as JSON arrays, so the text is `[[kind, target], [kind, target, source], …]`.
    let mut text = Vec::with_capacity(2 + relations.len() * 64);
    text.push(b'[');
    for (position, relation) in relations.iter().enumerate() {
        if position > 0 {
            text.push(b',');
        }
        let (kind, target) = (relation.kind.as_str(), relation.target.as_str());
        let written = if relation.source == owner {
            serde_json::to_writer(&mut text, &(kind, target))
        } else {
            serde_json::to_writer(&mut text, &(kind, target, relation.source.as_str()))
        };
        if written.is_err() {
            return "[]".to_owned();
        }
    }
    text.push(b']');
    String::from_utf8(text).unwrap_or_else(|_| "[]".to_owned())
}

/// Reads `owner`'s stored list back; `None` when it is unreadable (logged). The column is only
/// ever written by `encode`, so that takes a damaged database: callers then find `owner`'s peer
/// rows by a scan (`delete_peer_relations_of!`) rather than stop processing the entity for good.
pub(crate) fn decode(owner: &str, text: Option<&str>) -> Option<Vec<RelationRow>> {
    let Some(text) = text else { return Some(Vec::new()) };
    let list: Vec<Vec<String>> = match serde_json::from_str(text) {
        Ok(list) => list,
        Err(error) => {
            tracing::warn!(entity_ref = owner, %error, "unreadable stored relations; finding them by a scan");
            return None;
        }
    };
    let rows = list
        .into_iter()
        .filter_map(|entry| {
            let mut entry = entry.into_iter();
            let (kind, target) = (entry.next()?, entry.next()?);
            let source = entry.next().unwrap_or_else(|| owner.to_owned());
            Some(RelationRow { source, kind, target })
        })
        .collect();
    Some(rows)
}

/// Inserts peer rows `(emitter ref, relation)`: relations whose source is not their emitter.
macro_rules! insert_peer_relations {
    ($store:expr, $tx:expr, $rows:expr) => {{
        let mut rows: Vec<(&str, &$crate::processing::RelationRow)> = $rows.to_vec();
        // In key order, so one transaction's inserts walk the B-tree once, page by page.
        rows.sort_unstable_by(|(a_emitter, a), (b_emitter, b)| {
            (&a.source, &a.kind, &a.target, a_emitter).cmp(&(&b.source, &b.kind, &b.target, b_emitter))
        });
        for chunk in rows.chunks($crate::CHUNK) {
            let sql = $store.sql(format!(
                "INSERT INTO relations (source_entity_ref, type, target_entity_ref, originating_entity_ref)
                 VALUES {} ON CONFLICT DO NOTHING",
                $crate::value_tuples(chunk.len(), 4, 1)
            ));
            let mut query = sqlx::query(&sql);
            for (emitter, relation) in chunk {
                query = query.bind(relation.source.as_str()).bind(relation.kind.as_str()).bind(relation.target.as_str()).bind(*emitter);
            }
            query.execute(&mut **$tx).await?;
        }
    }};
}
pub(crate) use insert_peer_relations;

/// Deletes peer rows `(emitter ref, relation)` by their key.
macro_rules! delete_peer_relations {
    ($store:expr, $tx:expr, $rows:expr) => {{
        let rows: &[(&str, &$crate::processing::RelationRow)] = $rows;
        for chunk in rows.chunks($crate::CHUNK) {
            let sql = $store.sql(format!(
                "DELETE FROM relations
                 WHERE (source_entity_ref, type, target_entity_ref, originating_entity_ref) IN (VALUES {})",
                $crate::value_tuples(chunk.len(), 4, 1)
            ));
            let mut query = sqlx::query(&sql);
            for (emitter, relation) in chunk {
                query = query
                    .bind(relation.source.as_str())
                    .bind(relation.kind.as_str())
                    .bind(relation.target.as_str())
                    .bind(*emitter);
            }
            query.execute(&mut **$tx).await?;
        }
    }};
}
pub(crate) use delete_peer_relations;

/// Deletes every peer row of the emitters `$emitters` (refs) by scanning the table, and adds
/// their sources to `$stitch`. Only for emitters whose stored list is unreadable.
macro_rules! delete_peer_relations_of {
    ($tx:expr, $emitters:expr, $stitch:expr) => {{
        let emitters: &[&str] = $emitters;
        let stitch: &mut HashSet<String> = $stitch;
        let sources = $crate::fetch_in!(
            &mut **$tx,
            "DELETE FROM relations WHERE originating_entity_ref IN ({}) RETURNING source_entity_ref",
            emitters,
            (String,)
        );
        stitch.extend(sources.into_iter().map(|(source,)| source));
    }};
}
pub(crate) use delete_peer_relations_of;

#[cfg(test)]
mod tests {
    use super::*;

    fn row(source: &str, kind: &str, target: &str) -> RelationRow {
        RelationRow { source: source.to_owned(), kind: kind.to_owned(), target: target.to_owned() }
    }

    #[test]
    fn the_stored_list_round_trips_and_omits_the_owner_as_source() {
        let own = row("component:default/a", "ownedBy", "group:default/team");
        let peer = row("group:default/team", "ownerOf", "component:default/a");
        let text = encode("component:default/a", &[&own, &peer]);
        assert_eq!(
            text,
            r#"[["ownedBy","group:default/team"],["ownerOf","component:default/a","group:default/team"]]"#
        );
        assert_eq!(decode("component:default/a", Some(&text)), Some(vec![own, peer]));
        assert_eq!(decode("component:default/a", None), Some(vec![]));
        assert_eq!(decode("component:default/a", Some("{oops")), None, "unreadable, not a panic");
        assert_eq!(decode("component:default/a", Some(r#"[["short"]]"#)), Some(vec![]));
        assert_eq!(encode("component:default/a", &[]), "[]");
        let quoted = row("component:default/a", "has\"quote", "x:default/\u{1}");
        let text = encode("component:default/a", &[&quoted]);
        assert_eq!(decode("component:default/a", Some(&text)), Some(vec![quoted]));
    }

    #[test]
    fn distinct_keeps_the_first_of_each_relation_in_order_for_short_and_long_lists() {
        for count in [3, 40] {
            let relations: Vec<RelationRow> =
                (0..count * 2).map(|i| row("a", "dependsOn", &format!("t{}", i % count))).collect();
            let kept: Vec<&str> =
                distinct(&relations).iter().map(|relation| relation.target.as_str()).collect();
            let expected: Vec<String> = (0..count).map(|i| format!("t{i}")).collect();
            assert_eq!(kept, expected);
        }
    }
}
