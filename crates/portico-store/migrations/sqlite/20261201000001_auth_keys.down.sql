DROP TABLE auth_keys;
