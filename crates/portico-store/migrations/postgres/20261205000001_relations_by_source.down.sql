DROP INDEX relations_source;
CREATE INDEX relations_source ON relations (source_entity_ref);
