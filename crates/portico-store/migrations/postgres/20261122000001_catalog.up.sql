-- The catalog's durable state. Table names follow Backstage's processing model
-- (refresh_state, refresh_state_references, relations, final_entities, locations)
-- so that the data flow in the reference maps onto this schema one to one.

CREATE TABLE locations (
    id TEXT PRIMARY KEY NOT NULL,
    type TEXT NOT NULL,
    target TEXT NOT NULL,
    entity_ref TEXT NOT NULL,
    UNIQUE (type, target)
);

CREATE TABLE refresh_state (
    entity_id TEXT PRIMARY KEY NOT NULL,
    entity_ref TEXT NOT NULL UNIQUE,
    unprocessed_entity TEXT NOT NULL,
    unprocessed_hash TEXT NOT NULL,
    processed_entity TEXT,
    result_hash TEXT,
    errors TEXT,
    location_key TEXT,
    next_update_at BIGINT NOT NULL,
    lease_until BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX refresh_state_due ON refresh_state (next_update_at);
CREATE INDEX refresh_state_lease ON refresh_state (lease_until);

-- Emitter edges: who keeps an entity alive. Either a provider (source_key) or a parent entity.
CREATE TABLE refresh_state_references (
    id BIGSERIAL PRIMARY KEY,
    source_key TEXT,
    source_entity_ref TEXT,
    target_entity_ref TEXT NOT NULL
);
CREATE INDEX refresh_state_references_source_key ON refresh_state_references (source_key);
CREATE INDEX refresh_state_references_source_ref ON refresh_state_references (source_entity_ref);
CREATE INDEX refresh_state_references_target ON refresh_state_references (target_entity_ref);

CREATE TABLE relations (
    originating_entity_id TEXT NOT NULL REFERENCES refresh_state (entity_id) ON DELETE CASCADE,
    source_entity_ref TEXT NOT NULL,
    type TEXT NOT NULL,
    target_entity_ref TEXT NOT NULL
);
CREATE INDEX relations_source ON relations (source_entity_ref);
CREATE INDEX relations_origin ON relations (originating_entity_id);

-- What the API serves. seq grows with every write so replicas can follow changes.
CREATE TABLE final_entities (
    entity_ref TEXT PRIMARY KEY NOT NULL,
    entity_id TEXT NOT NULL,
    final_entity TEXT NOT NULL,
    hash TEXT NOT NULL,
    seq BIGINT NOT NULL
);
CREATE INDEX final_entities_seq ON final_entities (seq);

CREATE TABLE deleted_entities (
    entity_ref TEXT PRIMARY KEY NOT NULL,
    seq BIGINT NOT NULL
);
CREATE INDEX deleted_entities_seq ON deleted_entities (seq);

-- pending: 1 until a stitcher reads the ref; every new enqueue sets it again. A stitcher only
-- dequeues refs still at 0, so a change that lands while it works is stitched once more.
CREATE TABLE stitch_queue (
    entity_ref TEXT PRIMARY KEY NOT NULL,
    pending INTEGER NOT NULL DEFAULT 1,
    -- The last stitcher's claim: only that stitcher may write the ref's result.
    ticket TEXT
);

CREATE TABLE catalog_seq (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO catalog_seq (id, value) VALUES (1, 0);
