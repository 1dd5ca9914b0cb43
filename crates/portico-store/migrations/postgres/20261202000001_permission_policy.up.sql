-- The permission policy as last saved by an admin from the UI or the API: it takes precedence
-- over `permission.policy` until removed, and replicas sharing the database all use it.
CREATE TABLE permission_policy (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    document TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
