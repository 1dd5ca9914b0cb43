-- Relations are kept where they cost least to write. A built-in processor emits every relation
-- with its inverse: one side starts at the entity itself, the other at its peer.
--   * `refresh_state.relations` lists everything an entity emitted, as a JSON array of
--     [type, target] (the source is the entity itself) or [type, target, source]. Writing them
--     costs no index entries, and replacing them is a diff against the old list.
--   * `relations` keeps only the rows whose source is another entity, keyed by that source, so
--     stitching finds what others say about an entity in one range of one B-tree.
ALTER TABLE refresh_state ADD COLUMN relations TEXT;

UPDATE refresh_state SET relations = emitted.list
FROM (
    SELECT d.originating_entity_id, json_agg(
        CASE WHEN d.source_entity_ref = s.entity_ref
            THEN json_build_array(d.type, d.target_entity_ref)
            ELSE json_build_array(d.type, d.target_entity_ref, d.source_entity_ref)
        END)::text AS list
    FROM (SELECT DISTINCT originating_entity_id, source_entity_ref, type, target_entity_ref FROM relations) d
    JOIN refresh_state s ON s.entity_id = d.originating_entity_id
    GROUP BY d.originating_entity_id
) AS emitted
WHERE refresh_state.entity_id = emitted.originating_entity_id;

CREATE TABLE peer_relations (
    source_entity_ref TEXT NOT NULL,
    type TEXT NOT NULL,
    target_entity_ref TEXT NOT NULL,
    originating_entity_ref TEXT NOT NULL,
    CONSTRAINT relations_key PRIMARY KEY (source_entity_ref, type, target_entity_ref, originating_entity_ref)
);

INSERT INTO peer_relations
    SELECT DISTINCT r.source_entity_ref, r.type, r.target_entity_ref, s.entity_ref
    FROM relations r JOIN refresh_state s ON s.entity_id = r.originating_entity_id
    WHERE r.source_entity_ref <> s.entity_ref;

DROP TABLE relations;
ALTER TABLE peer_relations RENAME TO relations;
