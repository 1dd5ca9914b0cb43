-- A random id for this database, written once. Files derived from the database (the saved
-- catalog index) name it, so one is never applied to another database.
CREATE TABLE catalog_instance (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    instance TEXT NOT NULL
);
INSERT INTO catalog_instance (id, instance) VALUES (1, replace(gen_random_uuid()::text, '-', ''));
