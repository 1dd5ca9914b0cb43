CREATE TABLE emitted_relations (
    originating_entity_id TEXT NOT NULL REFERENCES refresh_state (entity_id) ON DELETE CASCADE,
    source_entity_ref TEXT NOT NULL,
    type TEXT NOT NULL,
    target_entity_ref TEXT NOT NULL
);
INSERT INTO emitted_relations
    SELECT s.entity_id, COALESCE(json_extract(j.value, '$[2]'), s.entity_ref),
        json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]')
    FROM refresh_state s, json_each(s.relations) j
    WHERE s.relations IS NOT NULL;
DROP TABLE relations;
ALTER TABLE emitted_relations RENAME TO relations;
CREATE INDEX relations_source ON relations (source_entity_ref, type, target_entity_ref);
CREATE INDEX relations_origin ON relations (originating_entity_id);
ALTER TABLE refresh_state DROP COLUMN relations;
