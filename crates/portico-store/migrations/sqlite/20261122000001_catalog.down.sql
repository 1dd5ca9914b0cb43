DROP TABLE catalog_seq;
DROP TABLE stitch_queue;
DROP TABLE deleted_entities;
DROP TABLE final_entities;
DROP TABLE relations;
DROP TABLE refresh_state_references;
DROP TABLE refresh_state;
DROP TABLE locations;
