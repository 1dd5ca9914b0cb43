DROP TABLE catalog_instance;
