-- Stitching reads every relation of a batch of sources: with type and target in the index, it
-- reads one contiguous run of index entries per source instead of visiting scattered table rows.
DROP INDEX relations_source;
CREATE INDEX relations_source ON relations (source_entity_ref, type, target_entity_ref);
